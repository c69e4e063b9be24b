/* The ABI half of every unit (docs/abi.md). One instance per unit: the task
 * table below is the only global state, and it is declared, bounded and
 * owned by the ABI. */
#include "molt/module.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__wasm__)
#define MOLT_EXPORT(name) __attribute__((export_name(#name), used))
#else
#define MOLT_EXPORT(name) __attribute__((visibility("default"), used))
#endif

#define MAX_TASKS 64
#define DEFAULT_BUDGET 65536
#define ABI_VERSION 0x00000001u

struct molt_task {
	int64_t id;                 /* 0: slot free */
	const molt_function *fn;
	int cancelled;
	int decoded;                /* input holds the request */
	msgpack_zone zone;          /* owns input */
	msgpack_object input;       /* the decoded payload */
	unsigned char *raw;         /* the request envelope, copied */
	size_t raw_len;
	int error_code;
	char error_path[128];
	char error_msg[512];
	void *state;
	void (*release)(void *);
};

static struct {
	int initialised;
	uint32_t budget;
	int64_t next_id;
	struct molt_task tasks[MAX_TASKS];
	msgpack_sbuffer out; /* the last envelope handed to the host */
} unit;


/* A small bounded formatter (%s %.*s %d %u %zu %lld %llu %%): wasi-libc's
 * snprintf drags in stdio and, with it, WASI imports a unit must not have. */
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
			for (; *s && prec != 0; s++, prec--)
				put(out, n, &at, *s);
			break;
		}
		case 'd': {
			long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);
			put_u(out, n, &at, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v, v < 0);
			break;
		}
		case 'u':
			put_u(out, n, &at,
			      size ? va_arg(ap, size_t)
				   : longs ? va_arg(ap, unsigned long long) : va_arg(ap, unsigned),
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
	return MOLT_FAILED;
}

uint32_t molt_budget(const molt_task *t)
{
	(void)t;
	return unit.budget;
}

void **molt_state(molt_task *t, void (**release)(void *))
{
	if (release)
		*release = t->release;
	return &t->state;
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

int molt_get_str(molt_task *t, const msgpack_object *map, const char *key,
		 const char **s, uint32_t *len)
{
	uint32_t i;

	if (map->type != MSGPACK_OBJECT_MAP)
		return molt_fail(t, MOLT_INVALID_INPUT, "",
				 "expected a map, found %s", type_name(map->type));
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object_kv *kv = &map->via.map.ptr[i];
		if (!key_is(&kv->key, key))
			continue;
		if (kv->val.type != MSGPACK_OBJECT_STR)
			return molt_fail(t, MOLT_INVALID_INPUT, key,
					 "expected a string, found %s",
					 type_name(kv->val.type));
		*s = kv->val.via.str.ptr;
		*len = kv->val.via.str.size;
		return 0;
	}
	return molt_fail(t, MOLT_INVALID_INPUT, key, "missing required field '%s'", key);
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
	uint32_t i;
	int32_t rc = 0;

	if (!msgpack_zone_init(&zone, 1024))
		return -MOLT_INTERNAL_ERROR;
	if (msgpack_unpack((const char *)cfg, len, &off, &zone, &env) != MSGPACK_UNPACK_SUCCESS ||
	    off != len ||
	    open_envelope(&env, "molt.runtime_config", 1, &p, &plen, why, sizeof(why))) {
		rc = -MOLT_DECODE_ERROR;
		goto done;
	}
	off = 0;
	if (msgpack_unpack(p, plen, &off, &zone, &payload) != MSGPACK_UNPACK_SUCCESS ||
	    off != plen || payload.type != MSGPACK_OBJECT_MAP) {
		rc = -MOLT_DECODE_ERROR;
		goto done;
	}
	unit.budget = DEFAULT_BUDGET;
	for (i = 0; i < payload.via.map.size; i++) {
		const msgpack_object_kv *kv = &payload.via.map.ptr[i];
		if (key_is(&kv->key, "step_budget") &&
		    kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER && kv->val.via.u64 > 0 &&
		    kv->val.via.u64 <= UINT32_MAX)
			unit.budget = (uint32_t)kv->val.via.u64;
		else {
			rc = -MOLT_INVALID_INPUT;
			goto done;
		}
	}
	if (!unit.initialised) {
		msgpack_sbuffer_init(&unit.out);
		unit.next_id = 1;
		unit.initialised = 1;
	}
done:
	msgpack_zone_destroy(&zone);
	return rc;
}

static molt_task *find_task(int64_t id)
{
	int i;

	if (id <= 0)
		return NULL;
	for (i = 0; i < MAX_TASKS; i++)
		if (unit.tasks[i].id == id)
			return &unit.tasks[i];
	return NULL;
}

static void end_task(molt_task *t)
{
	if (t->release && t->state)
		t->release(t->state);
	if (t->fn && t->raw)
		msgpack_zone_destroy(&t->zone);
	free(t->raw);
	memset(t, 0, sizeof(*t));
}

int64_t molt_call(uint32_t fn, const void *env, uint32_t len)
{
	molt_task *t = NULL;
	size_t i;

	if (!unit.initialised)
		return -MOLT_INTERNAL_ERROR;
	for (i = 0; i < MAX_TASKS && !t; i++)
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
		free(t->raw);
		t->raw = NULL;
		molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory copying the request");
		return t->id;
	}
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

	if (msgpack_unpack((const char *)t->raw, t->raw_len, &off, &t->zone, &env) !=
		    MSGPACK_UNPACK_SUCCESS ||
	    off != t->raw_len)
		return molt_fail(t, MOLT_DECODE_ERROR, NULL,
				 "request is not one complete MsgPack value (%zu bytes)",
				 t->raw_len);
	if ((code = open_envelope(&env, t->fn->input_schema, t->fn->input_version, &p,
				  &plen, why, sizeof(why))))
		return molt_fail(t, code, NULL, "%s: %s", t->fn->name, why);
	off = 0;
	if (msgpack_unpack(p, plen, &off, &t->zone, &t->input) != MSGPACK_UNPACK_SUCCESS ||
	    off != plen)
		return molt_fail(t, MOLT_DECODE_ERROR, NULL,
				 "%s: payload is not one complete MsgPack value", t->fn->name);
	return 0;
}

static void pack_envelope(const char *id, uint32_t version, const char *payload,
			  size_t len)
{
	msgpack_packer pk;

	msgpack_sbuffer_clear(&unit.out);
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

int32_t molt_poll(int64_t task, const void **out, uint32_t *out_len)
{
	molt_task *t = find_task(task);
	msgpack_sbuffer sb;
	msgpack_packer pk;
	int rc;

	if (!t || !out || !out_len)
		return -MOLT_INVALID_INPUT;
	if (t->cancelled)
		molt_fail(t, MOLT_CANCELLED, NULL, "task %lld was cancelled",
			  (long long)t->id);
	if (!t->error_code && !t->decoded && decode_input(t) == 0)
		t->decoded = 1;
	if (t->error_code) {
		pack_error(t);
		end_task(t);
		*out = unit.out.data;
		*out_len = (uint32_t)unit.out.size;
		return 2;
	}
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	rc = t->fn->step(t, &t->input, &pk);
	if (rc == MOLT_PENDING) {
		msgpack_sbuffer_destroy(&sb);
		return 0;
	}
	if (rc == MOLT_DONE)
		pack_envelope(t->fn->output_schema, t->fn->output_version, sb.data, sb.size);
	else
		pack_error(t);
	msgpack_sbuffer_destroy(&sb);
	end_task(t);
	*out = unit.out.data;
	*out_len = (uint32_t)unit.out.size;
	return rc == MOLT_DONE ? 1 : 2;
}

#if !defined(__wasm__)
/* A native unit can be unloaded (dlclose); give its memory back then. */
__attribute__((destructor)) static void unload(void)
{
	int i;

	for (i = 0; i < MAX_TASKS; i++)
		if (unit.tasks[i].id)
			end_task(&unit.tasks[i]);
	if (unit.initialised)
		msgpack_sbuffer_destroy(&unit.out);
	unit.initialised = 0;
}
#endif

int32_t molt_cancel(int64_t task)
{
	molt_task *t = find_task(task);

	if (!t)
		return -MOLT_INVALID_INPUT;
	t->cancelled = 1;
	return 0;
}
