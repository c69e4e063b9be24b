/* countdown: counts down from n in slices of the host's step budget, so one
 * call stays pending across many polls and a cancel lands between any two.
 * Progress lives in each task's state (molt_state), never in a global: two
 * countdowns in flight never see each other's numbers.
 *
 * count(n) -> {sum, polls}: n + (n-1) + ... + 1, one unit of work a number.
 * list(n)  -> {values}:     [n, ..., 1], written into the result as it goes. */
#include "molt/module.h"

#define COUNT_MAX 1000000000LL /* 10^9: the sum stays below 2^63 */
#define LIST_MAX 10000000LL    /* 10^7 values: a result of about 50 MB */

/* A count task between polls. */
typedef struct {
	int started;
	uint64_t left; /* numbers not counted yet */
	uint64_t sum;
} count_state;

/* A list task between polls. */
typedef struct {
	int started;
	uint64_t next; /* the next value to write; 0 when done */
} list_state;

/* Reads field n of the request, within 0..max. */
static int get_n(molt_task *t, const msgpack_object *in, int64_t max, uint64_t *n)
{
	int64_t v;

	if (molt_get_int(t, in, "n", &v))
		return MOLT_FAILED;
	if (v < 0 || v > max)
		return molt_fail(t, MOLT_INVALID_INPUT, "n", "expected 0 to %lld, found %lld",
				 (long long)max, (long long)v);
	*n = (uint64_t)v;
	return 0;
}

static int count(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	count_state *s = molt_state(t, sizeof(*s));
	uint64_t k, left, sum;

	if (!s)
		return MOLT_FAILED;
	if (!s->started) {
		if (get_n(t, in, COUNT_MAX, &s->left))
			return MOLT_FAILED;
		s->started = 1;
	}
	left = s->left;
	sum = s->sum;
	for (k = molt_step_take(t, left); k; k--) {
		sum += left--;
		/* One real step per number: keeps the compiler from summing the
		 * series in closed form, which would hide the work being sliced. */
		__asm__ volatile("" ::: "memory");
	}
	s->left = left;
	s->sum = sum;
	if (left)
		return MOLT_PENDING;
	msgpack_pack_map(out, 2);
	molt_pack_str(out, "sum");
	msgpack_pack_uint64(out, sum);
	molt_pack_str(out, "polls");
	msgpack_pack_uint64(out, molt_poll_count(t));
	return MOLT_DONE;
}

static int list(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	list_state *s = molt_state(t, sizeof(*s));
	uint64_t k;

	if (!s)
		return MOLT_FAILED;
	if (!s->started) {
		if (get_n(t, in, LIST_MAX, &s->next))
			return MOLT_FAILED;
		s->started = 1;
		msgpack_pack_map(out, 1);
		molt_pack_str(out, "values");
		msgpack_pack_array(out, (size_t)s->next);
	}
	for (k = molt_step_take(t, s->next); k; k--)
		msgpack_pack_uint64(out, s->next--);
	return s->next ? MOLT_PENDING : MOLT_DONE;
}

MOLT_FUNCTIONS({ 1, "count", "countdown.count_request", 1, "countdown.count_response", 1, count },
	       { 2, "list", "countdown.list_request", 1, "countdown.list_response", 1, list });
