/* The ABI half of every unit (docs/abi.md). One instance per unit: the task
 * table below is the only global state, and it is declared, bounded and
 * owned by the ABI; a function's own progress lives in its task's state. */
#include "molt/module.h"
#include "molt/mpsize.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__wasm__)
#define MOLT_EXPORT(name) __attribute__((export_name(#name), used))
#else
#define MOLT_EXPORT(name) __attribute__((visibility("default"), used))
#endif

#define ABI_VERSION 0x00000001u
/* The most an envelope header takes: fixarray, str32 header, the id,
 * uint32, bin32 header. The result is written after this much room, and
 * the header goes right before it: no copy of the payload. */
#define HEAD_ROOM(idlen) (1 + 5 + (idlen) + 5 + 5)

enum { OUT_OK, OUT_TOO_BIG, OUT_NO_MEMORY };

struct molt_task {
	int64_t id;                 /* 0: slot free */
	const molt_function *fn;
	int cancelled;
	int decoded;                /* input holds the request */
	int zone_live;              /* zone needs destroying */
	msgpack_zone zone;          /* owns input */
	msgpack_object input;       /* the decoded payload */
	unsigned char *raw;         /* the request envelope, copied */
	size_t raw_len;
	uint64_t polls;             /* polls so far, this one included */
	uint32_t left;              /* work units this poll may still do */
	int error_code;
	char error_path[128];
	char error_msg[512];
	void *state;                /* molt_state's block */
	size_t state_size;
	void (*release)(void *);
	int started;                /* out holds the head room */
	int out_status;             /* OUT_* */
	size_t head;                /* head room at the start of out */
	msgpack_sbuffer out;        /* the result, after `head` bytes */
	msgpack_packer pk;          /* writes to out through out_write */
};

/* A slot of the handle table: id 0 when free. */
struct handle {
	uint32_t id;            /* (generation << 8) | slot; 0: free */
	int64_t pending;        /* the task that made it, until that task is done */
	void *obj;
	void (*release)(void *);
};

static struct {
	int initialised;
	uint32_t budget;
	int64_t next_id;
	struct molt_task tasks[MOLT_MAX_TASKS];
	msgpack_sbuffer out; /* the last envelope handed to the host */
	size_t out_at;       /* where in `out` that envelope starts */
	struct handle handles[MOLT_MAX_HANDLES];
	uint32_t generation[MOLT_MAX_HANDLES]; /* the last generation of each slot */
} unit;


/* A small bounded formatter (%s %.*s %d %u %ld %lu %lld %llu %zu %%):
 * wasi-libc's snprintf drags in stdio and, with it, WASI imports a unit
 * must not have. */
static void put(char *out, size_t n, size_t *at, char c)
{
	if (*at + 1 < n)
		out[*at] = c;
	(*at)++;
}

static void put_u(char *out, size_t n, size_t *at, unsigned long long v, int neg)
{
	char digits[24];
	int k = 0;

	if (neg)
		put(out, n, at, '-');
	do
		digits[k++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (k)
		put(out, n, at, digits[--k]);
}

static void vformat(char *out, size_t n, const char *fmt, va_list ap)
{
	size_t at = 0;

	for (; *fmt; fmt++) {
		int prec = -1, longs = 0, size = 0;
		if (*fmt != '%') {
			put(out, n, &at, *fmt);
			continue;
		}
		fmt++;
		if (fmt[0] == '.' && fmt[1] == '*') {
			prec = va_arg(ap, int);
			fmt += 2;
		}
		for (; *fmt == 'l'; fmt++)
			longs++;
		if (*fmt == 'z') {
			size = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's': {
			const char *s = va_arg(ap, const char *);
			for (; prec != 0 && *s; s++, prec--)
				put(out, n, &at, *s);
			break;
		}
		case 'd': {
			long long v = longs > 1 ? va_arg(ap, long long)
				      : longs ? va_arg(ap, long) : va_arg(ap, int);
			put_u(out, n, &at, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v, v < 0);
			break;
		}
		case 'u':
			put_u(out, n, &at,
			      size ? va_arg(ap, size_t)
			      : longs > 1 ? va_arg(ap, unsigned long long)
			      : longs ? va_arg(ap, unsigned long) : va_arg(ap, unsigned),
			      0);
			break;
		case '%':
			put(out, n, &at, '%');
			break;
		default:
			return;
		}
		if (!*fmt)
			break;
	}
	if (n)
		out[at < n ? at : n - 1] = '\0';
}

/* The length of the UTF-8 sequence at s, or 0 if it is not a valid one
 * (RFC 3629: no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_seq(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* Makes s valid UTF-8 in place, each stray byte a '?': messages quote the
 * request (a schema id, say), and hosts refuse an error envelope whose text
 * is not UTF-8. Also mends a sequence cut short by a full buffer. */
static void utf8_clean(char *s)
{
	unsigned char *p = (unsigned char *)s;
	size_t n;

	while (*p) {
		if ((n = utf8_seq(p)))
			p += n;
		else
			*p++ = '?';
	}
}

static void format(char *out, size_t n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vformat(out, n, fmt, ap);
	va_end(ap);
}

MOLT_EXPORT(molt_abi_version) uint32_t molt_abi_version(void);
MOLT_EXPORT(molt_alloc) void *molt_alloc(uint32_t size);
MOLT_EXPORT(molt_free) void molt_free(void *p, uint32_t size);
MOLT_EXPORT(molt_init) int32_t molt_init(const void *cfg, uint32_t len);
MOLT_EXPORT(molt_call) int64_t molt_call(uint32_t fn, const void *env, uint32_t len);
MOLT_EXPORT(molt_poll) int32_t molt_poll(int64_t task, const void **out, uint32_t *out_len);
MOLT_EXPORT(molt_cancel) int32_t molt_cancel(int64_t task);

uint32_t molt_abi_version(void)
{
	return ABI_VERSION;
}

void *molt_alloc(uint32_t size)
{
	return malloc(size ? size : 1);
}

void molt_free(void *p, uint32_t size)
{
	(void)size;
	free(p);
}

int molt_fail(molt_task *t, int code, const char *path, const char *fmt, ...)
{
	va_list ap;

	t->error_code = code;
	format(t->error_path, sizeof(t->error_path), "%s", path ? path : "");
	va_start(ap, fmt);
	vformat(t->error_msg, sizeof(t->error_msg), fmt, ap);
	va_end(ap);
	utf8_clean(t->error_path);
	utf8_clean(t->error_msg);
	return MOLT_FAILED;
}

uint32_t molt_budget(const molt_task *t)
{
	return t->left;
}

uint64_t molt_step_take(molt_task *t, uint64_t want)
{
	uint64_t k = want < t->left ? want : t->left;

	t->left -= (uint32_t)k;
	return k;
}

uint64_t molt_poll_count(const molt_task *t)
{
	return t->polls;
}

void *molt_state(molt_task *t, size_t size)
{
	if (t->state) {
		if (size == t->state_size)
			return t->state;
		molt_fail(t, MOLT_INTERNAL_ERROR, NULL,
			  "%s asked for %zu bytes of task state, after %zu at its first step",
			  t->fn->name, size, t->state_size);
		return NULL;
	}
	if (!(t->state = calloc(1, size ? size : 1))) {
		molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "%s: out of memory for %zu bytes of task state",
			  t->fn->name, size);
		return NULL;
	}
	t->state_size = size;
	return t->state;
}

void molt_state_release(molt_task *t, void (*release)(void *state))
{
	t->release = release;
}

int molt_pack_str(msgpack_packer *pk, const char *s)
{
	size_t n = strlen(s);

	return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int key_is(const msgpack_object *k, const char *s)
{
	size_t n = strlen(s);

	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       !memcmp(k->via.str.ptr, s, n);
}

static const char *type_name(msgpack_object_type t)
{
	switch (t) {
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_BOOLEAN: return "bool";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "int";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return "float";
	case MSGPACK_OBJECT_STR: return "string";
	case MSGPACK_OBJECT_BIN: return "bytes";
	case MSGPACK_OBJECT_ARRAY: return "list";
	case MSGPACK_OBJECT_MAP: return "map";
	default: return "extension";
	}
}

/* The value of `key` in `map`, or NULL with the task failed. */
static const msgpack_object *field(molt_task *t, const msgpack_object *map, const char *key)
{
	uint32_t i;

	if (map->type != MSGPACK_OBJECT_MAP) {
		molt_fail(t, MOLT_INVALID_INPUT, "", "expected a map, found %s", type_name(map->type));
		return NULL;
	}
	for (i = 0; i < map->via.map.size; i++)
		if (key_is(&map->via.map.ptr[i].key, key))
			return &map->via.map.ptr[i].val;
	molt_fail(t, MOLT_INVALID_INPUT, key, "missing required field '%s'", key);
	return NULL;
}

int molt_get_str(molt_task *t, const msgpack_object *map, const char *key,
		 const char **s, uint32_t *len)
{
	const msgpack_object *v = field(t, map, key);

	if (!v)
		return MOLT_FAILED;
	if (v->type != MSGPACK_OBJECT_STR)
		return molt_fail(t, MOLT_INVALID_INPUT, key, "expected a string, found %s",
				 type_name(v->type));
	*s = v->via.str.ptr;
	*len = v->via.str.size;
	return 0;
}

int molt_get_int(molt_task *t, const msgpack_object *map, const char *key, int64_t *out)
{
	const msgpack_object *v = field(t, map, key);

	if (!v)
		return MOLT_FAILED;
	if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
		*out = v->via.i64;
		return 0;
	}
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return molt_fail(t, MOLT_INVALID_INPUT, key, "expected an int, found %s",
				 type_name(v->type));
	if (v->via.u64 > INT64_MAX)
		return molt_fail(t, MOLT_INVALID_INPUT, key, "expected an int64, found %llu",
				 (unsigned long long)v->via.u64);
	*out = (int64_t)v->via.u64;
	return 0;
}

/* Checks [schema_id, version, payload] and returns the payload bytes. */
static int open_envelope(const msgpack_object *env, const char *id,
			 uint32_t version, const char **payload, size_t *len,
			 char *why, size_t whylen)
{
	const msgpack_object *v;

	if (env->type != MSGPACK_OBJECT_ARRAY || env->via.array.size != 3) {
		format(why, whylen,
			 "expected an envelope [schema_id, schema_version, payload], found %s",
			 type_name(env->type));
		return MOLT_DECODE_ERROR;
	}
	v = env->via.array.ptr;
	if (v[0].type != MSGPACK_OBJECT_STR || v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    v[2].type != MSGPACK_OBJECT_BIN) {
		format(why, whylen,
			 "envelope fields must be [string, uint, bin], found [%s, %s, %s]",
			 type_name(v[0].type), type_name(v[1].type), type_name(v[2].type));
		return MOLT_DECODE_ERROR;
	}
	if (!key_is(&v[0], id) || v[1].via.u64 != version) {
		format(why, whylen, "expected schema %s v%u, found %.*s v%llu", id,
			 (unsigned)version, (int)(v[0].via.str.size > 64 ? 64 : v[0].via.str.size),
			 v[0].via.str.ptr, (unsigned long long)v[1].via.u64);
		return MOLT_INVALID_INPUT;
	}
	*payload = v[2].via.bin.ptr;
	*len = v[2].via.bin.size;
	return 0;
}

int32_t molt_init(const void *cfg, uint32_t len)
{
	msgpack_zone zone;
	msgpack_object env, payload;
	const char *p;
	size_t plen, off = 0;
	char why[256];
	uint32_t i, budget = MOLT_DEFAULT_BUDGET;
	int32_t rc = 0;

	if (!cfg || !msgpack_zone_init(&zone, 1024))
		return cfg ? -MOLT_INTERNAL_ERROR : -MOLT_DECODE_ERROR;
	if (molt__msgpack_size(cfg, len) != len ||
	    msgpack_unpack((const char *)cfg, len, &off, &zone, &env) != MSGPACK_UNPACK_SUCCESS ||
	    off != len ||
	    open_envelope(&env, "molt.runtime_config", 1, &p, &plen, why, sizeof(why))) {
		rc = -MOLT_DECODE_ERROR;
		goto done;
	}
	off = 0;
	if (molt__msgpack_size((const unsigned char *)p, plen) != plen ||
	    msgpack_unpack(p, plen, &off, &zone, &payload) != MSGPACK_UNPACK_SUCCESS ||
	    off != plen || payload.type != MSGPACK_OBJECT_MAP) {
		rc = -MOLT_DECODE_ERROR;
		goto done;
	}
	for (i = 0; i < payload.via.map.size; i++) {
		const msgpack_object_kv *kv = &payload.via.map.ptr[i];
		if (key_is(&kv->key, "step_budget") &&
		    kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER && kv->val.via.u64 > 0 &&
		    kv->val.via.u64 <= UINT32_MAX)
			budget = (uint32_t)kv->val.via.u64;
		else {
			rc = -MOLT_INVALID_INPUT;
			goto done;
		}
	}
	/* A later molt_init changes the budget; tasks in flight keep running. */
	unit.budget = budget;
	if (!unit.initialised) {
		msgpack_sbuffer_init(&unit.out);
		unit.next_id = 1;
		unit.initialised = 1;
	}
done:
	msgpack_zone_destroy(&zone);
	return rc;
}

#define HANDLE_SLOTS_BITS 8
#define HANDLE_GEN_MAX 0xffffffu

uint32_t molt_handle_new(molt_task *t, void *obj, void (*release)(void *obj))
{
	struct handle *h = NULL;
	uint32_t i, best = 0;

	/* The free slot whose generation is lowest: ids stay unused longest. */
	for (i = 0; i < MOLT_MAX_HANDLES; i++)
		if (!unit.handles[i].id && unit.generation[i] < HANDLE_GEN_MAX &&
		    (!h || unit.generation[i] < unit.generation[best])) {
			h = &unit.handles[i];
			best = i;
		}
	if (!h) {
		if (release)
			release(obj);
		molt_fail(t, MOLT_CAPABILITY_DENIED, NULL,
			  "%s: all %u handles are open; drop some first", t->fn->name,
			  (unsigned)MOLT_MAX_HANDLES);
		return 0;
	}
	h->id = ++unit.generation[best] << HANDLE_SLOTS_BITS | best;
	h->pending = t->id;
	h->obj = obj;
	h->release = release;
	return h->id;
}

static struct handle *find_handle(const molt_task *t, uint32_t id)
{
	struct handle *h = &unit.handles[id & (MOLT_MAX_HANDLES - 1)];

	if (!id || h->id != id || (h->pending && h->pending != t->id))
		return NULL;
	return h;
}

void *molt_handle_get(molt_task *t, uint32_t id, const char *path)
{
	struct handle *h = find_handle(t, id);

	if (!h) {
		molt_fail(t, MOLT_INVALID_INPUT, path,
			  "handle %u is not open (dropped, or never made by this instance)",
			  (unsigned)id);
		return NULL;
	}
	return h->obj;
}

static void release_handle(struct handle *h)
{
	void *obj = h->obj;
	void (*release)(void *) = h->release;

	h->id = 0;
	h->pending = 0;
	h->obj = NULL;
	h->release = NULL;
	if (release)
		release(obj);
}

int molt_handle_drop(molt_task *t, uint32_t id, const char *path)
{
	struct handle *h = find_handle(t, id);

	if (!h)
		return molt_fail(t, MOLT_INVALID_INPUT, path,
				 "handle %u is not open (dropped, or never made by this instance)",
				 (unsigned)id);
	release_handle(h);
	return 0;
}

uint32_t molt_handle_count(void)
{
	uint32_t i, n = 0;

	for (i = 0; i < MOLT_MAX_HANDLES; i++)
		n += unit.handles[i].id != 0;
	return n;
}

/* Ends the handles task `t` made: kept when it finished with a result,
 * released otherwise. */
static void settle_handles(const molt_task *t, int done)
{
	uint32_t i;

	for (i = 0; i < MOLT_MAX_HANDLES; i++) {
		struct handle *h = &unit.handles[i];
		if (h->id && h->pending == t->id) {
			if (done)
				h->pending = 0;
			else
				release_handle(h);
		}
	}
}

static molt_task *find_task(int64_t id)
{
	int i;

	if (id <= 0)
		return NULL;
	for (i = 0; i < MOLT_MAX_TASKS; i++)
		if (unit.tasks[i].id == id)
			return &unit.tasks[i];
	return NULL;
}

static void end_task(molt_task *t)
{
	if (t->release && t->state)
		t->release(t->state);
	free(t->state);
	if (t->zone_live)
		msgpack_zone_destroy(&t->zone);
	free(t->raw);
	msgpack_sbuffer_destroy(&t->out);
	memset(t, 0, sizeof(*t));
}

int64_t molt_call(uint32_t fn, const void *env, uint32_t len)
{
	molt_task *t = NULL;
	size_t i;

	if (!unit.initialised)
		return -MOLT_INTERNAL_ERROR;
	for (i = 0; i < MOLT_MAX_TASKS && !t; i++)
		if (!unit.tasks[i].id)
			t = &unit.tasks[i];
	if (!t)
		return -MOLT_CAPABILITY_DENIED;
	memset(t, 0, sizeof(*t));
	t->id = unit.next_id++;
	for (i = 0; i < molt__nfunctions; i++)
		if (molt__functions[i].id == fn)
			t->fn = &molt__functions[i];
	if (!t->fn) {
		molt_fail(t, MOLT_INVALID_INPUT, NULL,
			  "unknown function id %u; see the unit's manifest for its functions",
			  (unsigned)fn);
		return t->id;
	}
	if (!(t->raw = malloc(len ? len : 1)) || !msgpack_zone_init(&t->zone, 2048)) {
		molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory copying the request");
		return t->id;
	}
	t->zone_live = 1;
	if (len)
		memcpy(t->raw, env, len);
	t->raw_len = len;
	return t->id;
}

/* Decodes the request on the first poll, so a bad envelope becomes an error
 * envelope rather than a bare status. */
static int decode_input(molt_task *t)
{
	msgpack_object env;
	const char *p;
	size_t plen, off = 0;
	char why[256];
	int code;

	if (molt__msgpack_size(t->raw, t->raw_len) != t->raw_len ||
	    msgpack_unpack((const char *)t->raw, t->raw_len, &off, &t->zone, &env) !=
		    MSGPACK_UNPACK_SUCCESS ||
	    off != t->raw_len)
		return molt_fail(t, MOLT_DECODE_ERROR, NULL,
				 "request is not one complete MsgPack value (%zu bytes)",
				 t->raw_len);
	if ((code = open_envelope(&env, t->fn->input_schema, t->fn->input_version, &p,
				  &plen, why, sizeof(why))))
		return molt_fail(t, code, NULL, "%s: %s", t->fn->name, why);
	off = 0;
	if (molt__msgpack_size((const unsigned char *)p, plen) != plen ||
	    msgpack_unpack(p, plen, &off, &t->zone, &t->input) != MSGPACK_UNPACK_SUCCESS ||
	    off != plen)
		return molt_fail(t, MOLT_DECODE_ERROR, NULL,
				 "%s: payload is not one complete MsgPack value", t->fn->name);
	return 0;
}

/* The step's packer writes here: bounded by MOLT_RESULT_MAX, and a failed
 * write is remembered, so a step that ignores the packer's return values
 * still can't hand over a truncated result. */
static int out_write(void *data, const char *buf, size_t len)
{
	molt_task *t = data;

	if (t->out_status != OUT_OK)
		return -1;
	if (len > MOLT_RESULT_MAX - (t->out.size - t->head)) {
		t->out_status = OUT_TOO_BIG;
		return -1;
	}
	if (msgpack_sbuffer_write(&t->out, buf, len)) {
		t->out_status = OUT_NO_MEMORY;
		return -1;
	}
	return 0;
}

/* Sets up the task's result buffer: head room for the envelope header. */
static int start_output(molt_task *t)
{
	static const char zeros[16];
	size_t left;

	t->head = HEAD_ROOM(strlen(t->fn->output_schema));
	msgpack_sbuffer_init(&t->out);
	for (left = t->head; left; left -= left < 16 ? left : 16)
		if (msgpack_sbuffer_write(&t->out, zeros, left < 16 ? left : 16))
			return molt_fail(t, MOLT_INTERNAL_ERROR, NULL,
					 "%s: out of memory for the result", t->fn->name);
	msgpack_packer_init(&t->pk, t, out_write);
	t->started = 1;
	return 0;
}

/* Hands the result to the host: the header goes into the head room, and
 * the task's buffer becomes the unit's output buffer. */
static int finish_output(molt_task *t)
{
	msgpack_sbuffer h;
	msgpack_packer pk;
	size_t len = t->out.size - t->head;
	int rc = 0;

	msgpack_sbuffer_init(&h);
	msgpack_packer_init(&pk, &h, msgpack_sbuffer_write);
	if (msgpack_pack_array(&pk, 3) || molt_pack_str(&pk, t->fn->output_schema) ||
	    msgpack_pack_uint32(&pk, t->fn->output_version) || msgpack_pack_bin(&pk, len) ||
	    h.size > t->head) {
		rc = molt_fail(t, MOLT_ENCODE_ERROR, NULL, "%s: cannot write the result envelope",
			       t->fn->name);
	} else {
		memcpy(t->out.data + t->head - h.size, h.data, h.size);
		msgpack_sbuffer_destroy(&unit.out);
		unit.out = t->out;
		unit.out_at = t->head - h.size;
		msgpack_sbuffer_init(&t->out);
	}
	msgpack_sbuffer_destroy(&h);
	return rc;
}

static void pack_envelope(const char *id, uint32_t version, const char *payload,
			  size_t len)
{
	msgpack_packer pk;

	/* Don't keep a large result's buffer alive for a small envelope. */
	if (unit.out.alloc > (64u << 10)) {
		msgpack_sbuffer_destroy(&unit.out);
		msgpack_sbuffer_init(&unit.out);
	}
	msgpack_sbuffer_clear(&unit.out);
	unit.out_at = 0;
	msgpack_packer_init(&pk, &unit.out, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	molt_pack_str(&pk, id);
	msgpack_pack_uint32(&pk, version);
	msgpack_pack_bin(&pk, len);
	msgpack_pack_bin_body(&pk, payload, len);
}

static void pack_error(const molt_task *t)
{
	static const char *const classes[] = { "runtime", "validation", "validation",
					       "runtime", "cancellation", "runtime",
					       "runtime", "runtime" };
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int code = t->error_code >= 1 && t->error_code <= 7 ? t->error_code : 7;

	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, t->error_path[0] ? 4 : 3);
	molt_pack_str(&pk, "class");
	molt_pack_str(&pk, classes[code]);
	molt_pack_str(&pk, "code");
	msgpack_pack_int(&pk, code);
	molt_pack_str(&pk, "message");
	molt_pack_str(&pk, t->error_msg);
	if (t->error_path[0]) {
		molt_pack_str(&pk, "path");
		molt_pack_str(&pk, t->error_path);
	}
	pack_envelope("molt.error", 1, sb.data, sb.size);
	msgpack_sbuffer_destroy(&sb);
}

/* Runs one step; the task has no error yet. */
static int step(molt_task *t)
{
	int rc;

	if (!t->started && start_output(t))
		return MOLT_FAILED;
	t->left = unit.budget;
	rc = t->fn->step(t, &t->input, &t->pk);
	if (t->error_code)
		return MOLT_FAILED;
	if (t->out_status == OUT_TOO_BIG)
		return molt_fail(t, MOLT_ENCODE_ERROR, NULL,
				 "%s: the result grew past %u bytes, the most a unit writes",
				 t->fn->name, MOLT_RESULT_MAX);
	if (t->out_status == OUT_NO_MEMORY)
		return molt_fail(t, MOLT_ENCODE_ERROR, NULL,
				 "%s: out of memory writing the result (%zu bytes so far)",
				 t->fn->name, t->out.size - t->head);
	if (rc == MOLT_PENDING)
		return MOLT_PENDING;
	if (rc != MOLT_DONE)
		return molt_fail(t, MOLT_INTERNAL_ERROR, NULL,
				 "%s returned %d without saying why (use molt_fail)",
				 t->fn->name, rc);
	if (t->out.size == t->head)
		return molt_fail(t, MOLT_ENCODE_ERROR, NULL,
				 "%s returned MOLT_DONE without writing a result", t->fn->name);
	return finish_output(t) ? MOLT_FAILED : MOLT_DONE;
}

int32_t molt_poll(int64_t task, const void **out, uint32_t *out_len)
{
	molt_task *t = find_task(task);
	int rc = MOLT_FAILED;

	if (!t || !out || !out_len)
		return -MOLT_INVALID_INPUT;
	t->polls++;
	if (t->cancelled && !t->error_code)
		molt_fail(t, MOLT_CANCELLED, NULL, "task %lld was cancelled", (long long)t->id);
	if (!t->error_code && !t->decoded && decode_input(t) == 0)
		t->decoded = 1;
	if (!t->error_code && (rc = step(t)) == MOLT_PENDING)
		return 0;
	if (rc != MOLT_DONE)
		pack_error(t);
	settle_handles(t, rc == MOLT_DONE);
	end_task(t);
	*out = unit.out.data + unit.out_at;
	*out_len = (uint32_t)(unit.out.size - unit.out_at);
	return rc == MOLT_DONE ? 1 : 2;
}

int32_t molt_cancel(int64_t task)
{
	molt_task *t = find_task(task);

	if (!t)
		return -MOLT_INVALID_INPUT;
	t->cancelled = 1;
	return 0;
}

#if !defined(__wasm__)
/* A native unit can be unloaded (dlclose); give its memory back then. */
__attribute__((destructor)) static void unload(void)
{
	int i;

	for (i = 0; i < MOLT_MAX_TASKS; i++)
		if (unit.tasks[i].id)
			end_task(&unit.tasks[i]);
	for (i = 0; i < MOLT_MAX_HANDLES; i++)
		if (unit.handles[i].id)
			release_handle(&unit.handles[i]);
	if (unit.initialised)
		msgpack_sbuffer_destroy(&unit.out);
	unit.initialised = 0;
}
#endif
