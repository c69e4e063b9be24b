/* The module SDK: write a Molt unit's functions; the SDK provides the seven
 * ABI exports (docs/abi.md), decodes and checks envelopes, keeps the task
 * table, slices long work across polls, and writes result and error
 * envelopes. The same source builds for wasm32 and native.
 *
 * A function is a step: the SDK calls it once per poll of its task until it
 * returns MOLT_DONE or fails. Each call may do at most the host's step
 * budget of work, so a long loop is written as a resumable one, with its
 * progress in per-task state:
 *
 *     typedef struct { int started; uint64_t left, sum; } count_state;
 *
 *     static int count(molt_task *t, const msgpack_object *in, msgpack_packer *out)
 *     {
 *             count_state *s = molt_state(t, sizeof(*s));
 *             uint64_t k;
 *
 *             if (!s)
 *                     return MOLT_FAILED;
 *             if (!s->started) {            // first poll: read the request
 *                     int64_t n;
 *                     if (molt_get_int(t, in, "n", &n))
 *                             return MOLT_FAILED;
 *                     s->left = (uint64_t)n;
 *                     s->started = 1;
 *             }
 *             for (k = molt_step_take(t, s->left); k; k--)  // this poll's share
 *                     s->sum += s->left--;
 *             if (s->left)
 *                     return MOLT_PENDING;   // resume here at the next poll
 *             msgpack_pack_map(out, 1);
 *             molt_pack_str(out, "sum");
 *             msgpack_pack_uint64(out, s->sum);
 *             return MOLT_DONE;
 *     }
 *
 * The rule (docs/abi.md, "State"): a unit keeps no writable globals. What a
 * task needs between polls lives in molt_state; the request stays decoded
 * in `in` for the task's whole life; the result is written to `out`, which
 * also persists across polls. Tasks interleave (one slice of one task per
 * poll) and a cancelled task is dropped between two slices, so a global
 * would be shared by tasks and outlive the ones that set it. */
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

/* What a step returns: done (result written), call me again, or failed. */
enum { MOLT_DONE = 0, MOLT_PENDING = 1, MOLT_FAILED = -1 };

/* Tasks a unit holds at once; molt_call refuses more (CapabilityDenied). */
#define MOLT_MAX_TASKS 64

/* Work units per poll when the host's runtime_config names none. */
#define MOLT_DEFAULT_BUDGET 65536

/* The largest result payload a step may write: past it the task fails with
 * EncodeError instead of exhausting memory (hosts set lower limits). */
#define MOLT_RESULT_MAX (256u << 20)

/* The running task as a function sees it (opaque). */
typedef struct molt_task molt_task;

/* One step of a function (see the top of this file): read `in` (the
 * decoded payload, checked against the function's input schema id and
 * version; the same object at every step), do at most the budget's work,
 * append to `out`, and return MOLT_DONE, MOLT_PENDING or molt_fail(...).
 * What a step writes to `out` is kept across polls; at MOLT_DONE it must
 * be exactly one MsgPack value, the result payload. */
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
 * (or NULL). Formats %s %.*s %d %u %lld %llu %zu %%, bounded (no printf:
 * wasm units must not import stdio). Returns MOLT_FAILED for
 * `return molt_fail(...)`. */
int molt_fail(molt_task *t, int code, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* The task's state: `size` bytes, zeroed at the task's first call, the
 * same block at every later step, freed by the SDK when the task ends
 * (done, failed or cancelled). Returns NULL, with the task failed
 * (InternalError), when out of memory or when `size` differs from the
 * first call's: `if (!s) return MOLT_FAILED;`. */
void *molt_state(molt_task *t, size_t size);

/* Runs `release(state)` when the task ends, before the state is freed:
 * for state that owns memory of its own (e.g. a buffer it grew). */
void molt_state_release(molt_task *t, void (*release)(void *state));

/* Takes up to `want` work units from this poll's budget and returns how
 * many it may do now (0 once the budget is spent: return MOLT_PENDING).
 * One unit is one iteration of the function's inner loop, whatever that
 * is; the host's step_budget bounds the units per poll. */
uint64_t molt_step_take(molt_task *t, uint64_t want);

/* The work units this poll may still do. */
uint32_t molt_budget(const molt_task *t);

/* The number of this poll within the task: 1 at the first step. */
uint64_t molt_poll_count(const molt_task *t);

/* Finds a string field of a map; fails the task (InvalidInput, naming the
 * field and what was found) when it is missing or not a string. */
int molt_get_str(molt_task *t, const msgpack_object *map, const char *key,
		 const char **s, uint32_t *len);

/* Finds an integer field of a map (within int64); fails the task as
 * molt_get_str does. */
int molt_get_int(molt_task *t, const msgpack_object *map, const char *key,
		 int64_t *v);

/* ---- handles: unit-scoped objects made and dropped by explicit calls ----
 *
 * The only state that outlives a task (docs/abi.md, "State"). A function
 * makes an object, registers it with molt_handle_new and returns the id; a
 * later call finds it with molt_handle_get and another drops it with
 * molt_handle_drop. The table is bounded (MOLT_MAX_HANDLES) and ids carry a
 * generation, so a dropped id is refused for a long time (2^24 reuses of
 * its slot) instead of finding whatever took the slot.
 *
 * A handle made by a task is pending until that task finishes with a
 * result: other tasks can't see it, and if the task fails or is cancelled
 * the SDK releases it, so a half-made dataset is never left behind. */

/* Open handles a unit holds at once; molt_handle_new refuses more. */
#define MOLT_MAX_HANDLES 256

/* Registers `obj` (owned by the handle from now on; `release(obj)` frees it
 * when the handle is dropped, when the task that made it fails or is
 * cancelled, or when a native unit is unloaded) and returns its id, > 0.
 * Returns 0 with the task failed (CapabilityDenied, naming the limit) when
 * the table is full; `obj` is then released too. */
uint32_t molt_handle_new(molt_task *t, void *obj, void (*release)(void *obj));

/* The object of handle `id`, or NULL with the task failed (InvalidInput at
 * `path`, naming the id) when no such handle is open: never made, dropped,
 * or still pending in another task. The pointer stays valid until the
 * handle is dropped: a step that keeps it across polls must hold its own
 * reference (objects may be reference-counted by their owner). */
void *molt_handle_get(molt_task *t, uint32_t id, const char *path);

/* Drops handle `id` (releasing its object); fails the task as
 * molt_handle_get does. */
int molt_handle_drop(molt_task *t, uint32_t id, const char *path);

/* How many handles are open (pending ones included). */
uint32_t molt_handle_count(void);

/* Packs a NUL-terminated string. */
int molt_pack_str(msgpack_packer *pk, const char *s);

#endif
