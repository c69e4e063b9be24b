/* explorer: the Typed Data Explorer unit (docs/explorer.md). Datasets live
 * behind handles (molt_handle_*) made and dropped by explicit calls; every
 * operation is sliced (ops.c, load.c), so a cancel lands within one poll;
 * run does a whole pipeline in one call and keeps nothing. */
#include "explorer.h"
#include "ops.h"

#include <stdlib.h>
#include <string.h>

#define MAX_ERRORS_DEFAULT 10
#define MAX_ERRORS_MAX 1000

enum { FN_LOAD = 1, FN_FILTER, FN_MAP, FN_AGGREGATE, FN_PAGINATE, FN_DESCRIBE, FN_DROP, FN_RUN };
enum { ST_START, ST_LOAD, ST_STEPS, ST_OUT };

/* A task between polls. */
typedef struct {
	int stage;
	xload *load;
	xschema_col *schema;
	xds *cur;           /* the dataset the next step reads (a reference) */
	xstep *step;
	const msgpack_object *steps;
	uint32_t stepi, nsteps, total;
	int last_kind;
	xout *out;
	int arrow;
	uint32_t handle;
} xstate;

static void release(void *p)
{
	xstate *s = p;

	xload_free(s->load);
	free(s->schema);
	xds_unref(s->cur);
	xstep_free(s->step);
	xout_free(s->out);
}

static xstate *state(molt_task *t)
{
	xstate *s = molt_state(t, sizeof(xstate));

	if (s)
		molt_state_release(t, release);
	return s;
}

static int get_bool(const msgpack_object *m, const char *key, int dflt)
{
	const msgpack_object *v = xget(m, key);

	return v && v->type == MSGPACK_OBJECT_BOOLEAN ? v->via.boolean : dflt;
}

static int get_handle(molt_task *t, xstate *s, const msgpack_object *in)
{
	const msgpack_object *h = xget(in, "handle");
	xds *d;

	if (!h || h->type != MSGPACK_OBJECT_POSITIVE_INTEGER || h->via.u64 > UINT32_MAX)
		return molt_fail(t, MOLT_INVALID_INPUT, "handle",
				 "expected a handle (an int from a load, filter, map or aggregate)");
	if (!(d = molt_handle_get(t, (uint32_t)h->via.u64, "handle")))
		return MOLT_FAILED;
	d->refs++;
	s->cur = d;
	s->handle = (uint32_t)h->via.u64;
	return 0;
}

/* 1: arrow, 0: msgpack, for a table of rows x cols. */
static int want_arrow(const msgpack_object *in, const xds *d)
{
	const msgpack_object *f = xget(in, "format");

	if (f && f->type == MSGPACK_OBJECT_STR) {
		if (f->via.str.size == 5 && !memcmp(f->via.str.ptr, "arrow", 5))
			return 1;
		if (f->via.str.size == 7 && !memcmp(f->via.str.ptr, "msgpack", 7))
			return 0;
	}
	return (uint64_t)d->rows * d->ncols > XAUTO_CELLS;
}

/* Starts a loader from {format, data|text, schema?, max_errors?} at `pfx`. */
static int start_load(molt_task *t, xstate *s, const msgpack_object *m, const char *pfx)
{
	static const char *const formats[] = { "csv", "json", "arrow" };
	const msgpack_object *f = xget(m, "format"), *data = xget(m, "data"), *text = xget(m, "text"),
			     *schema = xget(m, "schema"), *me = xget(m, "max_errors");
	const char *bytes;
	size_t len;
	uint32_t max_errors = MAX_ERRORS_DEFAULT, n = 0, i, j;
	int format = -1;
	char p[64];

	for (i = 0; i < 3; i++)
		if (f && f->type == MSGPACK_OBJECT_STR && f->via.str.size == strlen(formats[i]) &&
		    !memcmp(f->via.str.ptr, formats[i], f->via.str.size))
			format = (int)i;
	xpath(p, sizeof(p), pfx, "format", 0);
	if (format < 0)
		return molt_fail(t, MOLT_INVALID_INPUT, p, "expected csv, json or arrow");
	xpath(p, sizeof(p), pfx, "data", 0);
	if (!!data == !!text)
		return molt_fail(t, MOLT_INVALID_INPUT, p,
				 "expected the dataset in exactly one of data (bytes) and text (string), "
				 "found %s", data ? "both" : "neither");
	if (text && format == 2)
		return molt_fail(t, MOLT_INVALID_INPUT, p, "an Arrow stream is binary: send it as data");
	if (data) {
		bytes = data->via.bin.ptr;
		len = data->via.bin.size;
	} else {
		bytes = text->via.str.ptr;
		len = text->via.str.size;
	}
	if (len >= (1u << 30))
		return molt_fail(t, MOLT_INVALID_INPUT, p, "expected at most 1 GiB of data");
	if (me) {
		xpath(p, sizeof(p), pfx, "max_errors", 0);
		if (me->type != MSGPACK_OBJECT_POSITIVE_INTEGER || me->via.u64 > MAX_ERRORS_MAX)
			return molt_fail(t, MOLT_INVALID_INPUT, p, "expected 0 to %u", MAX_ERRORS_MAX);
		max_errors = (uint32_t)me->via.u64;
	}
	if (schema && schema->type == MSGPACK_OBJECT_ARRAY) {
		n = schema->via.array.size;
		xpath(p, sizeof(p), pfx, "schema", 0);
		if (!n || n > XCOLS_MAX)
			return molt_fail(t, MOLT_INVALID_INPUT, p, "expected 1 to %u columns", XCOLS_MAX);
		if (!(s->schema = calloc(n, sizeof(*s->schema))))
			return molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
		for (i = 0; i < n; i++) {
			const msgpack_object *c = &schema->via.array.ptr[i], *nm = xget(c, "name"),
					     *ty = xget(c, "type");
			xschema_col *sc = &s->schema[i];
			int tt = ty && ty->type == MSGPACK_OBJECT_STR ? xtype_parse(ty->via.str.ptr, ty->via.str.size) : -1;
			xpath(p, sizeof(p), pfx, "schema[%u]", i);
			if (!nm || nm->type != MSGPACK_OBJECT_STR || !nm->via.str.size || tt < 0)
				return molt_fail(t, MOLT_INVALID_INPUT, p,
						 "expected {name, type, nullable?} with a non-empty name");
			sc->name = nm->via.str.ptr;
			sc->namelen = nm->via.str.size;
			sc->type = (xtype)tt;
			sc->nullable = get_bool(c, "nullable", 1);
			for (j = 0; j < i; j++)
				if (s->schema[j].namelen == sc->namelen &&
				    !memcmp(s->schema[j].name, sc->name, sc->namelen))
					return molt_fail(t, MOLT_INVALID_INPUT, p,
							 "the schema names column '%.*s' twice",
							 (int)(sc->namelen > 64 ? 64 : sc->namelen), sc->name);
		}
	}
	xpath(p, sizeof(p), pfx, data ? "data" : "text", 0);
	if (!(s->load = xload_new(t, format, bytes, len, s->schema, n, max_errors, p)))
		return MOLT_FAILED;
	s->stage = ST_LOAD;
	return 0;
}

static void pack_bool_map_head(msgpack_packer *pk, uint32_t n)
{
	msgpack_pack_map(pk, n);
}

static int load(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	xstate *s = state(t);
	xds *d;
	int rc;

	if (!s)
		return MOLT_FAILED;
	if (s->stage == ST_START && start_load(t, s, in, ""))
		return MOLT_FAILED;
	if ((rc = xload_step(t, s->load)) != MOLT_DONE)
		return rc;
	d = xload_take(s->load);
	if (d && !(s->handle = molt_handle_new(t, d, xds_release)))
		return MOLT_FAILED;
	pack_bool_map_head(out, 5);
	molt_pack_str(out, "handle");
	msgpack_pack_uint32(out, s->handle);
	molt_pack_str(out, "rows");
	msgpack_pack_uint32(out, xload_rows(s->load));
	molt_pack_str(out, "columns");
	xpack_columns(out, d ? d : xload_shape(s->load));
	molt_pack_str(out, "errors");
	xload_pack_errors(s->load, out);
	molt_pack_str(out, "error_count");
	msgpack_pack_uint32(out, xload_error_count(s->load));
	return MOLT_DONE;
}

/* Runs one operation over the handle in the request; at MOLT_DONE,
 * s->step->out is the result. */
static int one_step(molt_task *t, xstate *s, const msgpack_object *in, int kind)
{
	if (s->stage == ST_START) {
		if (get_handle(t, s, in) || !(s->step = xstep_new(t, kind, in, s->cur, "")))
			return MOLT_FAILED;
		/* A filter that keeps nothing only counts. */
		s->step->count = kind == XS_FILTER && !get_bool(in, "keep", 1);
		s->stage = ST_STEPS;
	}
	return xstep_run(t, s->step);
}

static int keep(molt_task *t, xstate *s, xds *d)
{
	d->refs++;
	return (s->handle = molt_handle_new(t, d, xds_release)) ? 0 : MOLT_FAILED;
}

static int filter(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	xstate *s = state(t);
	int rc;

	if (!s)
		return MOLT_FAILED;
	if ((rc = one_step(t, s, in, XS_FILTER)) != MOLT_DONE)
		return rc;
	s->handle = 0;
	if (get_bool(in, "keep", 1) && keep(t, s, s->step->out))
		return MOLT_FAILED;
	msgpack_pack_map(out, 2);
	molt_pack_str(out, "handle");
	msgpack_pack_uint32(out, s->handle);
	molt_pack_str(out, "rows");
	msgpack_pack_uint32(out, s->step->out->rows);
	return MOLT_DONE;
}

static int map(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	xstate *s = state(t);
	int rc;

	if (!s)
		return MOLT_FAILED;
	if ((rc = one_step(t, s, in, XS_MAP)) != MOLT_DONE)
		return rc;
	s->handle = 0;
	if (get_bool(in, "keep", 1) && keep(t, s, s->step->out))
		return MOLT_FAILED;
	msgpack_pack_map(out, 3);
	molt_pack_str(out, "handle");
	msgpack_pack_uint32(out, s->handle);
	molt_pack_str(out, "rows");
	msgpack_pack_uint32(out, s->step->out->rows);
	molt_pack_str(out, "columns");
	xpack_columns(out, s->step->out);
	return MOLT_DONE;
}

/* Writes the table fields of d (total, rows, columns, data|arrow), sliced. */
static int table(molt_task *t, xstate *s, const msgpack_object *in, const xds *d, msgpack_packer *out)
{
	if (!s->out) {
		if (!(s->out = xout_new(d, want_arrow(in, d))))
			return molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
		molt_pack_str(out, "total");
		msgpack_pack_uint32(out, s->total);
		molt_pack_str(out, "rows");
		msgpack_pack_uint32(out, d->rows);
		molt_pack_str(out, "columns");
		xpack_columns(out, d);
	}
	return xout_step(t, s->out, out);
}

static int aggregate(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	xstate *s = state(t);
	int rc;

	if (!s)
		return MOLT_FAILED;
	if (s->stage != ST_OUT) {
		if ((rc = one_step(t, s, in, XS_AGGREGATE)) != MOLT_DONE)
			return rc;
		s->handle = 0;
		if (get_bool(in, "keep", 0) && keep(t, s, s->step->out))
			return MOLT_FAILED;
		s->total = s->step->out->rows;
		s->stage = ST_OUT;
		msgpack_pack_map(out, 5);
		molt_pack_str(out, "handle");
		msgpack_pack_uint32(out, s->handle);
	}
	return table(t, s, in, s->step->out, out);
}

static int paginate(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	xstate *s = state(t);
	int rc;

	if (!s)
		return MOLT_FAILED;
	if (s->stage != ST_OUT) {
		if ((rc = one_step(t, s, in, XS_PAGINATE)) != MOLT_DONE)
			return rc;
		s->total = s->step->in->rows;
		s->stage = ST_OUT;
		msgpack_pack_map(out, 4);
	}
	return table(t, s, in, s->step->out, out);
}

static int describe(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	xstate *s = state(t);

	if (!s || get_handle(t, s, in))
		return MOLT_FAILED;
	msgpack_pack_map(out, 3);
	molt_pack_str(out, "handle");
	msgpack_pack_uint32(out, s->handle);
	molt_pack_str(out, "rows");
	msgpack_pack_uint32(out, s->cur->rows);
	molt_pack_str(out, "columns");
	xpack_columns(out, s->cur);
	return MOLT_DONE;
}

static int drop(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	const msgpack_object *h = xget(in, "handle");

	if (!h || h->type != MSGPACK_OBJECT_POSITIVE_INTEGER || h->via.u64 > UINT32_MAX)
		return molt_fail(t, MOLT_INVALID_INPUT, "handle", "expected a handle");
	if (molt_handle_drop(t, (uint32_t)h->via.u64, "handle"))
		return MOLT_FAILED;
	msgpack_pack_map(out, 2);
	molt_pack_str(out, "handle");
	msgpack_pack_uint32(out, (uint32_t)h->via.u64);
	molt_pack_str(out, "open");
	msgpack_pack_uint32(out, molt_handle_count());
	return MOLT_DONE;
}

static int run(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	xstate *s = state(t);
	int rc;

	if (!s)
		return MOLT_FAILED;
	if (s->stage == ST_START) {
		const msgpack_object *ds = xget(in, "dataset"), *h = xget(in, "handle");
		s->steps = xget(in, "steps");
		if (!!ds == !!h)
			return molt_fail(t, MOLT_INVALID_INPUT, "dataset",
					 "expected exactly one of dataset and handle, found %s",
					 ds ? "both" : "neither");
		if (!s->steps || s->steps->type != MSGPACK_OBJECT_ARRAY || s->steps->via.array.size > 64)
			return molt_fail(t, MOLT_INVALID_INPUT, "steps", "expected a list of at most 64 steps");
		s->nsteps = s->steps->via.array.size;
		if (ds) {
			if (start_load(t, s, ds, "dataset."))
				return MOLT_FAILED;
		} else {
			if (get_handle(t, s, in))
				return MOLT_FAILED;
			s->stage = ST_STEPS;
		}
	}
	if (s->stage == ST_LOAD) {
		if ((rc = xload_step(t, s->load)) != MOLT_DONE)
			return rc;
		if (!(s->cur = xload_take(s->load))) {
			char first[256];
			xload_first_error(s->load, first, sizeof(first));
			return molt_fail(t, MOLT_INVALID_INPUT, "dataset",
					 "the dataset does not match its schema: %s (%u error%s in all)",
					 first, (unsigned)xload_error_count(s->load),
					 xload_error_count(s->load) == 1 ? "" : "s");
		}
		xload_free(s->load);
		s->load = NULL;
		s->stage = ST_STEPS;
	}
	while (s->stage == ST_STEPS) {
		if (!s->step) {
			const msgpack_object *st;
			char pfx[32];
			int kind;
			if (s->stepi == s->nsteps) {
				s->total = s->last_kind == XS_PAGINATE ? s->total : s->cur->rows;
				s->stage = ST_OUT;
				msgpack_pack_map(out, 4);
				break;
			}
			st = &s->steps->via.array.ptr[s->stepi];
			xpath(pfx, sizeof(pfx), "steps[%u].", "", 0);
			xpath(pfx, sizeof(pfx), "", "steps[%u].", s->stepi);
			if ((kind = xstep_kind(xget(st, "op"))) < 0) {
				xpath(pfx, sizeof(pfx), "", "steps[%u].op", s->stepi);
				return molt_fail(t, MOLT_INVALID_INPUT, pfx,
						 "expected filter, map, aggregate or paginate");
			}
			if (!(s->step = xstep_new(t, kind, st, s->cur, pfx)))
				return MOLT_FAILED;
			s->last_kind = kind;
		}
		if ((rc = xstep_run(t, s->step)) != MOLT_DONE)
			return rc;
		if (s->last_kind == XS_PAGINATE)
			s->total = s->cur->rows;
		xds_unref(s->cur);
		s->cur = s->step->out;
		s->step->out = NULL;
		xstep_free(s->step);
		s->step = NULL;
		s->stepi++;
	}
	return table(t, s, in, s->cur, out);
}

MOLT_FUNCTIONS(
	{ FN_LOAD, "load", "explorer.load_request", 1, "explorer.load_response", 1, load },
	{ FN_FILTER, "filter", "explorer.filter_request", 1, "explorer.filter_response", 1, filter },
	{ FN_MAP, "map", "explorer.map_request", 1, "explorer.map_response", 1, map },
	{ FN_AGGREGATE, "aggregate", "explorer.aggregate_request", 1, "explorer.aggregate_response", 1,
	  aggregate },
	{ FN_PAGINATE, "paginate", "explorer.paginate_request", 1, "explorer.paginate_response", 1,
	  paginate },
	{ FN_DESCRIBE, "describe", "explorer.describe_request", 1, "explorer.describe_response", 1,
	  describe },
	{ FN_DROP, "drop", "explorer.drop_request", 1, "explorer.drop_response", 1, drop },
	{ FN_RUN, "run", "explorer.run_request", 1, "explorer.run_response", 1, run });
