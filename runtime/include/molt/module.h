/* The module SDK: write a Molt unit's functions; the SDK provides the seven
 * ABI exports (docs/abi.md), decodes and checks envelopes, keeps the task
 * table, and writes result and error envelopes. The same source builds for
 * wasm32 and native. */
#ifndef MOLT_MODULE_H
#define MOLT_MODULE_H

#include <msgpack.h>
#include <stddef.h>
#include <stdint.h>

/* Status codes of Molt spec 0400 (docs/abi.md). */
enum {
	MOLT_INVALID_INPUT = 1,
	MOLT_DECODE_ERROR = 2,
	MOLT_ENCODE_ERROR = 3,
	MOLT_CANCELLED = 4,
	MOLT_TIMEOUT = 5,
	MOLT_CAPABILITY_DENIED = 6,
	MOLT_INTERNAL_ERROR = 7,
};

/* What a function step returns: done (output written), or call me again. */
enum { MOLT_DONE = 0, MOLT_PENDING = 1, MOLT_FAILED = -1 };

/* The running task as a function sees it (opaque). */
typedef struct molt_task molt_task;

/* One step of a function: read `in` (the decoded, schema-checked payload),
 * do at most molt_budget() units of work, and either write the result to
 * `out` and return MOLT_DONE, return MOLT_PENDING to continue at the next
 * poll (keep progress in *molt_state()), or return molt_fail(...). */
typedef int (*molt_step)(molt_task *t, const msgpack_object *in,
			 msgpack_packer *out);

/* A function the unit exports through molt_call. */
typedef struct {
	uint32_t id;               /* function_id, as in recipe.json */
	const char *name;          /* for messages */
	const char *input_schema;  /* schema id of the request payload */
	uint32_t input_version;
	const char *output_schema; /* schema id of the result payload */
	uint32_t output_version;
	molt_step step;
} molt_function;

/* Declares the unit's function table; use exactly once per unit. */
#define MOLT_FUNCTIONS(...)                                                   \
	const molt_function molt__functions[] = { __VA_ARGS__ };              \
	const size_t molt__nfunctions =                                       \
		sizeof(molt__functions) / sizeof(molt__functions[0])

extern const molt_function molt__functions[];
extern const size_t molt__nfunctions;

/* Fails the task with a structured error; `path` names the offending field
 * (or NULL). Returns MOLT_FAILED for `return molt_fail(...)`. */
int molt_fail(molt_task *t, int code, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The work units this step may still do (the host's step_budget). */
uint32_t molt_budget(const molt_task *t);

/* A per-task slot for a step to keep its progress between polls; the SDK
 * calls `release` (if set) when the task ends or is cancelled. */
void **molt_state(molt_task *t, void (**release)(void *));

/* Finds a string field of a map; fails the task (InvalidInput, naming the
 * field and what was found) when it is missing or not a string. */
int molt_get_str(molt_task *t, const msgpack_object *map, const char *key,
		 const char **s, uint32_t *len);

/* Packs a NUL-terminated string. */
int molt_pack_str(msgpack_packer *pk, const char *s);

#endif
