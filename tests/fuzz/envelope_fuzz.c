/* libFuzzer target: arbitrary bytes through envelope decoding and schema
 * validation on both sides of the ABI.
 *
 * Host side (libmolt): the MsgPack pre-scan, msgpack_unpack and
 * molt__schema_decode against several schemas, for the bytes and for the
 * payload of an envelope in them; molt_envelope_to_json.
 * Unit side (the module SDK with the countdown unit, linked in natively):
 * the bytes as a runtime_config (molt_init) and as a request to every
 * function id, polled a bounded number of times and then cancelled.
 *
 * Beyond "no crash, no leak, no undefined behaviour", it checks that what
 * the SDK hands back is a whole envelope: a result that its output schema
 * accepts, or an error that molt.error accepts.
 *
 *   build/tests/envelope_fuzz -max_total_time=15 tests/fuzz/corpus
 *
 * Built by tests/CMakeLists.txt with clang -fsanitize=fuzzer,address,undefined. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The SDK's ABI exports (runtime/sdk/module.c). */
int32_t molt_init(const void *cfg, uint32_t len);
int64_t molt_call(uint32_t fn, const void *env, uint32_t len);
int32_t molt_poll(int64_t task, const void **out, uint32_t *out_len);
int32_t molt_cancel(int64_t task);

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_POLLS 64

/* Schema types to validate against (the "type" of schemas in schemas/). */
static const char *const type_text[] = {
	/* molt.error v1 */
	"{\"record\":[{\"name\":\"class\",\"type\":{\"enum\":[\"validation\",\"runtime\","
	"\"cancellation\"]}},{\"name\":\"code\",\"type\":\"int\"},{\"name\":\"message\","
	"\"type\":\"string\"},{\"name\":\"path\",\"type\":\"string\",\"optional\":true}]}",
	/* countdown.count_request v1 */
	"{\"record\":[{\"name\":\"n\",\"type\":\"int\"}]}",
	/* countdown.count_response v1 */
	"{\"record\":[{\"name\":\"sum\",\"type\":\"int\"},{\"name\":\"polls\",\"type\":\"int\"}]}",
	/* countdown.list_response v1 */
	"{\"record\":[{\"name\":\"values\",\"type\":{\"list\":\"int\"}}]}",
	/* every constructor at once */
	"{\"record\":[{\"name\":\"a\",\"type\":{\"list\":{\"nullable\":\"float\"}}},"
	"{\"name\":\"b\",\"type\":{\"map\":\"bytes\"}},"
	"{\"name\":\"c\",\"type\":{\"enum\":[\"x\",\"y\"]},\"optional\":true},"
	"{\"name\":\"d\",\"type\":{\"list\":{\"record\":[{\"name\":\"e\",\"type\":\"bool\"},"
	"{\"name\":\"f\",\"type\":\"string\"}]}}}]}",
};
enum { T_ERROR, T_COUNT_REQ, T_COUNT_RES, T_LIST_RES, T_MIXED, NTYPES };

static cJSON *types[NTYPES];

/* runtime_config v1 {step_budget: 64}: 64 numbers or values a poll. */
static const unsigned char config[] = { 0x93, 0xb3, 'm', 'o', 'l', 't', '.', 'r', 'u', 'n',
					't', 'i', 'm', 'e', '_', 'c', 'o', 'n', 'f', 'i', 'g',
					0x01, 0xc4, 0x0e, 0x81, 0xab, 's', 't', 'e', 'p', '_',
					'b', 'u', 'd', 'g', 'e', 't', 0x40 };

#define must(cond, what)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "envelope_fuzz: %s (%s:%d)\n", (what),    \
				__FILE__, __LINE__);                              \
			abort();                                                  \
		}                                                                 \
	} while (0)

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	size_t i;

	(void)argc;
	(void)argv;
	for (i = 0; i < NTYPES; i++)
		must((types[i] = cJSON_Parse(type_text[i])) != NULL, "a schema type in this file");
	must(molt_init(config, sizeof(config)) == 0, "molt_init with {step_budget: 64}");
	return 0;
}

/* Decodes p[0..n) as one MsgPack value, as the host does; NULL when it
 * isn't one. The zone owns what it returns. */
static const msgpack_object *unpack(const void *p, size_t n, msgpack_zone *zone,
				    msgpack_object *o)
{
	size_t off = 0;

	if (!n || molt__msgpack_size(p, n) != n)
		return NULL;
	if (msgpack_unpack(p, n, &off, zone, o) != MSGPACK_UNPACK_SUCCESS)
		return NULL; /* nested deeper than msgpack-c's stack */
	must(off == n, "the pre-scan and msgpack_unpack disagree on where the value ends");
	return o;
}

/* 0 when `o` is valid for types[t]. */
static int decode(int t, const msgpack_object *o)
{
	char path[256] = "";
	cJSON *out = NULL;
	int rc = molt__schema_decode(types[t], o, &out, path, sizeof(path));

	must(rc == 0 ? out != NULL : out == NULL, "molt__schema_decode's result and output agree");
	cJSON_Delete(out);
	return rc;
}

/* The payload of [str, uint, bin], if `o` is one. */
static const msgpack_object *payload_of(const msgpack_object *o)
{
	const msgpack_object *v = o->via.array.ptr;

	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != 3 ||
	    v[0].type != MSGPACK_OBJECT_STR || v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    v[2].type != MSGPACK_OBJECT_BIN)
		return NULL;
	return &v[2];
}

static void host_side(const uint8_t *data, size_t size)
{
	msgpack_zone zone;
	msgpack_object o, p;
	const msgpack_object *env, *bin;
	char *json = NULL;
	int t;

	must(msgpack_zone_init(&zone, 1024), "a zone");
	if ((env = unpack(data, size, &zone, &o))) {
		for (t = 0; t < NTYPES; t++)
			decode(t, env);
		if ((bin = payload_of(env)) &&
		    unpack(bin->via.bin.ptr, bin->via.bin.size, &zone, &p))
			for (t = 0; t < NTYPES; t++)
				decode(t, &p);
	}
	msgpack_zone_destroy(&zone);
	if (molt_envelope_to_json(data, size, &json) == 0)
		must(json != NULL, "molt_envelope_to_json's JSON");
	free(json);
}

/* Checks an envelope the SDK handed back (status 1 or 2). */
static void check_answer(int st, uint32_t fn, const void *out, uint32_t len)
{
	static const char *const ids[] = { NULL, "countdown.count_response",
					   "countdown.list_response" };
	const msgpack_object *env, *bin, *v;
	msgpack_object o, p;
	msgpack_zone zone;
	const char *id = st == 2 ? "molt.error" : ids[fn];

	must(msgpack_zone_init(&zone, 1024), "a zone");
	must((env = unpack(out, len, &zone, &o)) != NULL, "the unit's envelope is one MsgPack value");
	must((bin = payload_of(env)) != NULL, "the unit's envelope is [str, uint, bin]");
	v = env->via.array.ptr;
	must(v[0].via.str.size == strlen(id) && !memcmp(v[0].via.str.ptr, id, v[0].via.str.size) &&
		     v[1].via.u64 == 1,
	     "the unit's envelope names the schema expected");
	must(unpack(bin->via.bin.ptr, bin->via.bin.size, &zone, &p) != NULL,
	     "the unit's payload is one MsgPack value");
	must(decode(st == 2 ? T_ERROR : fn == 1 ? T_COUNT_RES : T_LIST_RES, &p) == 0,
	     "the unit's payload is valid for its schema");
	msgpack_zone_destroy(&zone);
}

static void unit_side(const uint8_t *data, size_t size)
{
	const void *out;
	uint32_t len, fn;
	int64_t task;
	int st, i;

	if (size > UINT32_MAX)
		return;
	/* As a runtime_config; then back to the budget the rest assumes. */
	st = molt_init(data, (uint32_t)size);
	must(st == 0 || st == -1 || st == -2, "molt_init's status");
	must(molt_init(config, sizeof(config)) == 0, "molt_init again");
	for (fn = 0; fn <= 3; fn++) {
		must((task = molt_call(fn, data, (uint32_t)size)) > 0, "molt_call starts a task");
		for (i = 0; i < MAX_POLLS && (st = molt_poll(task, &out, &len)) == 0; i++)
			;
		if (st == 0) {
			must(molt_cancel(task) == 0, "molt_cancel of a pending task");
			must(molt_poll(task, &out, &len) == 2, "a cancelled task ends at its next poll");
			st = 2;
		}
		must(st == 1 || st == 2, "molt_poll's status");
		must(st == 2 || fn == 1 || fn == 2, "only known functions answer with a result");
		check_answer(st, fn, out, len);
		must(molt_poll(task, &out, &len) == -1, "a finished task's id is dead");
		must(molt_cancel(task) == -1, "a finished task can't be cancelled");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	host_side(data, size);
	unit_side(data, size);
	return 0;
}
