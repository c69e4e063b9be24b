/* explorer: the four operations as sliced engines over a dataset: filter
 * (a selection), map (derived columns), aggregate (an open-addressing hash
 * on the keys) and paginate (a stable merge sort, or a top-k insertion
 * when offset + limit is small). */
#include "ops.h"

#include <stdlib.h>
#include <string.h>

static int oom(molt_task *t)
{
	return molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
}

static const char *const step_names[] = { "filter", "map", "aggregate", "paginate" };
static const char *const agg_names[] = { "count", "sum", "mean", "min", "max" };

static int str_is(const msgpack_object *o, const char *s)
{
	return o && o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       !memcmp(o->via.str.ptr, s, o->via.str.size);
}

static int col_arg(molt_task *t, const xds *d, const msgpack_object *o, const char *path, int *out)
{
	if (!o || o->type != MSGPACK_OBJECT_STR)
		return molt_fail(t, MOLT_INVALID_INPUT, path, "expected a column name");
	if ((*out = xds_find(d, o->via.str.ptr, o->via.str.size)) < 0)
		return molt_fail(t, MOLT_INVALID_INPUT, path,
				 "expected a column of the dataset, found '%.*s'",
				 (int)(o->via.str.size > 64 ? 64 : o->via.str.size), o->via.str.ptr);
	return 0;
}

static int get_uint(molt_task *t, const msgpack_object *m, const char *key, const char *prefix,
		    uint64_t max, uint32_t *out)
{
	const msgpack_object *v = xget(m, key);
	char p[96];

	if (!v)
		return 0;
	xpath(p, sizeof(p), prefix, key, 0);
	if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > max)
		return molt_fail(t, MOLT_INVALID_INPUT, p, "expected an int from 0 to %llu",
				 (unsigned long long)max);
	*out = (uint32_t)v->via.u64;
	return 0;
}

void xstep_free(xstep *s)
{
	uint32_t k;

	if (!s)
		return;
	xds_unref(s->in);
	xds_unref(s->out);
	xexpr_free(s->x);
	for (k = 0; k < s->nx; k++) {
		xexpr_free(s->xs[k]);
		xcol_unref(s->newcols[k]);
		xbuf_free(&s->texts[k]);
	}
	free(s->xs);
	free(s->newcols);
	free(s->texts);
	free(s->sel);
	free(s->rep);
	free(s->hash);
	free(s->rows);
	free(s->acnt);
	free(s->iacc);
	free(s->facc);
	free(s->slots);
	free(s->order);
	free(s->tmp);
	free(s);
}

/* ---- set up -------------------------------------------------------------- */

xstep *xstep_new(molt_task *t, int kind, const msgpack_object *m, xds *in, const char *prefix)
{
	xstep *s = calloc(1, sizeof(*s));
	char p[128];
	uint32_t k;

	if (!s) {
		oom(t);
		return NULL;
	}
	s->kind = kind;
	s->in = in;
	in->refs++;
	s->limit = 100;
	if (kind == XS_FILTER) {
		const msgpack_object *w = xget(m, "where");
		xpath(p, sizeof(p), prefix, "where", 0);
		if (!w) {
			molt_fail(t, MOLT_INVALID_INPUT, p, "filter: expected a predicate in where");
			goto fail;
		}
		if (!(s->x = xexpr_compile(t, w, in, p)))
			goto fail;
		if (xexpr_type(s->x) != XBOOL) {
			molt_fail(t, MOLT_INVALID_INPUT, p, "filter: expected a bool predicate, found %s",
				  xtype_name(xexpr_type(s->x)));
			goto fail;
		}
		s->fast = xexpr_compare_lit(s->x, &s->cmp);
	} else if (kind == XS_MAP) {
		const msgpack_object *c = xget(m, "columns");
		xpath(p, sizeof(p), prefix, "columns", 0);
		if (!c || c->type != MSGPACK_OBJECT_ARRAY || !c->via.array.size ||
		    c->via.array.size > XMAP_MAX) {
			molt_fail(t, MOLT_INVALID_INPUT, p,
				  "map: expected 1 to %u derived columns [{name, expr}]", XMAP_MAX);
			goto fail;
		}
		s->nx = c->via.array.size;
		if (!(s->xs = calloc(s->nx, sizeof(*s->xs))) ||
		    !(s->newcols = calloc(s->nx, sizeof(*s->newcols))) ||
		    !(s->texts = calloc(s->nx, sizeof(*s->texts))))
			goto nomem;
		for (k = 0; k < s->nx; k++) {
			const msgpack_object *o = &c->via.array.ptr[k], *nm = xget(o, "name"),
					     *e = xget(o, "expr");
			xcol *col;
			size_t n = in->nphys ? in->nphys : 1;
			xpath(p, sizeof(p), prefix, "columns[%u]", k);
			if (!nm || nm->type != MSGPACK_OBJECT_STR || !nm->via.str.size || !e) {
				molt_fail(t, MOLT_INVALID_INPUT, p,
					  "map: expected a derived column {name, expr} with a non-empty name");
				goto fail;
			}
			{
				char ep[144];
				xpath(ep, sizeof(ep), p, ".expr", 0);
				if (!(s->xs[k] = xexpr_compile(t, e, in, ep)))
					goto fail;
			}
			if (!(col = s->newcols[k] = xcol_new(nm->via.str.ptr, nm->via.str.size,
							     xexpr_type(s->xs[k]), in->nphys)))
				goto nomem;
			if (!(col->valid = calloc(n, 1)) ||
			    (col->type == XINT && !(col->i = calloc(n, 8))) ||
			    (col->type == XFLOAT && !(col->f = calloc(n, 8))) ||
			    (col->type == XBOOL && !(col->b = calloc(n, 1))) ||
			    (col->type == XSTRING && !(col->off = calloc(n + 1, 4))))
				goto nomem;
		}
	} else if (kind == XS_AGGREGATE) {
		const msgpack_object *by = xget(m, "by"), *aggs = xget(m, "aggs");
		if (by && by->type == MSGPACK_OBJECT_ARRAY) {
			if (by->via.array.size > XKEYS_MAX) {
				xpath(p, sizeof(p), prefix, "by", 0);
				molt_fail(t, MOLT_INVALID_INPUT, p, "expected at most %u keys", XKEYS_MAX);
				goto fail;
			}
			for (k = 0; k < by->via.array.size; k++) {
				xpath(p, sizeof(p), prefix, "by[%u]", k);
				if (col_arg(t, in, &by->via.array.ptr[k], p, &s->keys[k]))
					goto fail;
			}
			s->nkeys = by->via.array.size;
		}
		xpath(p, sizeof(p), prefix, "aggs", 0);
		if (!aggs || aggs->type != MSGPACK_OBJECT_ARRAY || aggs->via.array.size > XAGGS_MAX ||
		    (!aggs->via.array.size && !s->nkeys)) {
			molt_fail(t, MOLT_INVALID_INPUT, p,
				  "aggregate: expected up to %u aggregates [{op, column?, as?}] (at least "
				  "one, or keys in by)", XAGGS_MAX);
			goto fail;
		}
		s->naggs = aggs->via.array.size;
		for (k = 0; k < s->naggs; k++) {
			const msgpack_object *o = &aggs->via.array.ptr[k], *op = xget(o, "op"),
					     *c = xget(o, "column"), *as = xget(o, "as");
			xagg *a = &s->aggs[k];
			int q;
			a->op = -1;
			for (q = 0; q < 5; q++)
				if (str_is(op, agg_names[q]))
					a->op = q;
			xpath(p, sizeof(p), prefix, "aggs[%u]", k);
			if (a->op < 0) {
				molt_fail(t, MOLT_INVALID_INPUT, p,
					  "expected op count, sum, mean, min or max");
				goto fail;
			}
			a->col = -1;
			if (c) {
				char cp[144];
				xpath(cp, sizeof(cp), p, ".column", 0);
				if (col_arg(t, in, c, cp, &a->col))
					goto fail;
			} else if (a->op != XA_COUNT) {
				molt_fail(t, MOLT_INVALID_INPUT, p, "%s: expected a column", agg_names[a->op]);
				goto fail;
			}
			if (a->col >= 0 && (a->op == XA_SUM || a->op == XA_MEAN) &&
			    in->cols[a->col]->type != XINT && in->cols[a->col]->type != XFLOAT) {
				molt_fail(t, MOLT_INVALID_INPUT, p, "%s: expected a number column, found %s",
					  agg_names[a->op], xtype_name(in->cols[a->col]->type));
				goto fail;
			}
			if (as && as->type == MSGPACK_OBJECT_STR && as->via.str.size) {
				a->name = as->via.str.ptr;
				a->namelen = as->via.str.size;
			}
		}
	} else {
		const msgpack_object *sort = xget(m, "sort"), *cols = xget(m, "columns");
		if (cols && cols->type == MSGPACK_OBJECT_ARRAY && cols->via.array.size &&
		    cols->via.array.ptr[0].type == MSGPACK_OBJECT_STR) {
			if (cols->via.array.size > XCOLS_MAX) {
				xpath(p, sizeof(p), prefix, "columns", 0);
				molt_fail(t, MOLT_INVALID_INPUT, p, "expected at most %u columns", XCOLS_MAX);
				goto fail;
			}
			for (k = 0; k < cols->via.array.size; k++) {
				xpath(p, sizeof(p), prefix, "columns[%u]", k);
				if (col_arg(t, in, &cols->via.array.ptr[k], p, &s->outcols[k]))
					goto fail;
			}
			s->ncols_out = cols->via.array.size;
		}
		if (get_uint(t, m, "offset", prefix, XROWS_MAX, &s->offset) ||
		    get_uint(t, m, "limit", prefix, 1000000, &s->limit))
			goto fail;
		if (sort && sort->type == MSGPACK_OBJECT_ARRAY) {
			if (sort->via.array.size > XKEYS_MAX) {
				xpath(p, sizeof(p), prefix, "sort", 0);
				molt_fail(t, MOLT_INVALID_INPUT, p, "expected at most %u sort keys", XKEYS_MAX);
				goto fail;
			}
			for (k = 0; k < sort->via.array.size; k++) {
				const msgpack_object *o = &sort->via.array.ptr[k], *d = xget(o, "desc");
				xpath(p, sizeof(p), prefix, "sort[%u].column", k);
				if (col_arg(t, in, xget(o, "column"), p, &s->keys[k]))
					goto fail;
				s->desc[k] = d && d->type == MSGPACK_OBJECT_BOOLEAN && d->via.boolean;
			}
			s->nkeys = sort->via.array.size;
		}
	}
	return s;
nomem:
	oom(t);
fail:
	xstep_free(s);
	return NULL;
}

/* ---- filter --------------------------------------------------------------- */

/* One loop per shape: logical rows [start, start + n), through idx when
 * there is a selection, physical rows to out unless only counted. */
#define SCAN(TEST)                                                   \
	do {                                                         \
		if (!idx && !out)                                    \
			for (r = 0; r < n; r++) {                    \
				p = start + r;                       \
				m += (TEST);                         \
			}                                            \
		else if (!idx)                                       \
			for (r = 0; r < n; r++) {                    \
				p = start + r;                       \
				out[m] = p;                          \
				m += (TEST);                         \
			}                                            \
		else if (!out)                                       \
			for (r = 0; r < n; r++) {                    \
				p = idx[start + r];                  \
				m += (TEST);                         \
			}                                            \
		else                                                 \
			for (r = 0; r < n; r++) {                    \
				p = idx[start + r];                  \
				out[m] = p;                          \
				m += (TEST);                         \
			}                                            \
	} while (0)

/* The rows where column c compares with the literal as q says (nulls never
 * match): their count, and their physical rows in out (NULL: count only).
 * Ints against an int are one unsigned range test; the rest compare as
 * doubles with C's operators, which are IEEE 754's (NaN: only ne holds). */
static uint32_t scan_cmp(const xcmp *q, const xcol *c, const uint32_t *idx, uint32_t start,
			 uint32_t n, uint32_t *out)
{
	const uint8_t *v = c->valid;
	const int64_t *xi = c->i;
	const double *xf = c->f;
	uint32_t m = 0, r, p;
	unsigned neg = q->op == XC_NE;

	if (c->type == XINT && q->type == XINT) {
		int64_t lo = INT64_MIN, hi = INT64_MAX;
		uint64_t ulo, span;
		switch (q->op) {
		case XC_EQ: case XC_NE: lo = hi = q->i; break;
		case XC_LT: if (q->i == INT64_MIN) return 0; hi = q->i - 1; break;
		case XC_LE: hi = q->i; break;
		case XC_GT: if (q->i == INT64_MAX) return 0; lo = q->i + 1; break;
		default: lo = q->i; break;
		}
		ulo = (uint64_t)lo;
		span = (uint64_t)hi - ulo;
		if (v)
			SCAN(((((uint64_t)xi[p] - ulo) <= span) ^ neg) & v[p]);
		else
			SCAN((((uint64_t)xi[p] - ulo) <= span) ^ neg);
	} else {
		double k = q->f;
		unsigned lt = q->op == XC_LT || q->op == XC_LE, gt = q->op == XC_GT || q->op == XC_GE,
			 eq = !lt && !gt ? 1u : q->op != XC_LT && q->op != XC_GT;
#define FT(x) (((((x) < k) & lt) | (((x) == k) & eq) | (((x) > k) & gt)) ^ neg)
		if (c->type == XFLOAT && v)
			SCAN(FT(xf[p]) & v[p]);
		else if (c->type == XFLOAT)
			SCAN(FT(xf[p]));
		else if (v)
			SCAN(FT((double)xi[p]) & v[p]);
		else
			SCAN(FT((double)xi[p]));
#undef FT
	}
	return m;
}

static int run_filter(molt_task *t, xstep *s)
{
	xds *d = s->in;

	if (!s->sel && (!s->fast || !s->count) &&
	    !(s->sel = malloc((d->rows ? d->rows : 1) * sizeof(uint32_t))))
		return oom(t);
	if (s->fast) {
		const xcol *c = d->cols[s->cmp.col];
		while (s->pos < d->rows) {
			uint32_t n = (uint32_t)molt_step_take(t, d->rows - s->pos);
			if (!n)
				return MOLT_PENDING;
			s->nsel += scan_cmp(&s->cmp, c, d->sel ? d->sel->idx : NULL, s->pos, n,
					    s->sel ? s->sel + s->nsel : NULL);
			s->pos += n;
		}
		return MOLT_DONE;
	}
	while (s->pos < d->rows) {
		uint32_t n = d->rows - s->pos, r;
		xvals v;
		if (n > XCHUNK)
			n = XCHUNK;
		if (!molt_step_take(t, n))
			return MOLT_PENDING;
		if (xexpr_eval(t, s->x, d, s->pos, n))
			return MOLT_FAILED;
		xexpr_result(s->x, &v);
		if (v.scalar) {
			if (VALID1(v) && v.b[0])
				for (r = 0; r < n; r++)
					s->sel[s->nsel++] = xds_phys(d, s->pos + r);
		} else if (!d->sel) {
			for (r = 0; r < n; r++) {
				s->sel[s->nsel] = s->pos + r;
				s->nsel += v.b[r] & (!v.valid || v.valid[r]);
			}
		} else {
			for (r = 0; r < n; r++) {
				s->sel[s->nsel] = d->sel->idx[s->pos + r];
				s->nsel += v.b[r] & (!v.valid || v.valid[r]);
			}
		}
		s->pos += n;
	}
	return MOLT_DONE;
}

static int finish_filter(molt_task *t, xstep *s)
{
	xds *o = xds_new(s->count ? 0 : s->in->ncols);
	uint32_t k;

	if (s->count) { /* only rows is read: no selection, no columns */
		if (!o)
			return oom(t);
		o->rows = s->nsel;
		s->out = o;
		return 0;
	}
	if (!o || !(o->sel = calloc(1, sizeof(xsel)))) {
		xds_unref(o);
		return oom(t);
	}
	o->sel->refs = 1;
	o->sel->n = s->nsel;
	o->sel->idx = s->sel;
	s->sel = NULL;
	o->rows = s->nsel;
	o->nphys = s->in->nphys;
	for (k = 0; k < o->ncols; k++) {
		o->cols[k] = s->in->cols[k];
		o->cols[k]->refs++;
	}
	s->out = o;
	return 0;
}

/* ---- map ------------------------------------------------------------------ */

static int run_map(molt_task *t, xstep *s)
{
	xds *d = s->in;
	uint32_t k, r;

	while (s->pos < d->rows) {
		uint32_t n = d->rows - s->pos;
		if (n > XCHUNK)
			n = XCHUNK;
		if (!molt_step_take(t, (uint64_t)n * s->nx))
			return MOLT_PENDING;
		for (k = 0; k < s->nx; k++) {
			xcol *c = s->newcols[k];
			xvals v;
			if (xexpr_eval(t, s->xs[k], d, s->pos, n))
				return MOLT_FAILED;
			xexpr_result(s->xs[k], &v);
			for (r = 0; r < n; r++) {
				uint32_t p = xds_phys(d, s->pos + r), a = v.scalar ? 0 : r;
				uint8_t ok = !v.valid || v.valid[a];
				c->valid[p] = ok;
				switch (c->type) {
				case XINT: c->i[p] = v.i[a]; break;
				case XFLOAT: c->f[p] = v.f[a]; break;
				case XBOOL: c->b[p] = v.b[a]; break;
				default:
					/* Rows the selection skips keep offset 0
					 * until finish_map makes them empty strings. */
					if (ok && xbuf_put(&s->texts[k], v.s[a], v.sl[a]))
						return oom(t);
					c->off[p + 1] = (uint32_t)s->texts[k].n;
				}
			}
		}
		s->pos += n;
	}
	return MOLT_DONE;
}

static int finish_map(molt_task *t, xstep *s)
{
	xds *in = s->in, *o;
	uint32_t k, j, n = in->ncols;

	for (k = 0; k < s->nx; k++)
		if (xds_find(in, s->newcols[k]->name, strlen(s->newcols[k]->name)) < 0)
			n++;
	if (!(o = xds_new(n)))
		return oom(t);
	o->rows = in->rows;
	o->nphys = in->nphys;
	if ((o->sel = in->sel))
		o->sel->refs++;
	for (j = 0; j < in->ncols; j++) {
		o->cols[j] = in->cols[j];
		o->cols[j]->refs++;
	}
	n = o->ncols;
	o->ncols = in->ncols; /* grows as columns are added */
	for (k = 0; k < s->nx; k++) {
		xcol *c = s->newcols[k];
		int at = xds_find(o, c->name, strlen(c->name));
		uint32_t p, any = 0;
		for (p = 0; p < in->rows; p++)
			if (!c->valid[xds_phys(in, p)]) {
				any = 1;
				break;
			}
		if (!any) {
			free(c->valid);
			c->valid = NULL;
		}
		c->nullable = any;
		if (c->type == XSTRING) {
			for (p = 0; p < in->nphys; p++)
				if (c->off[p + 1] < c->off[p])
					c->off[p + 1] = c->off[p];
			c->s = s->texts[k].p;
			s->texts[k].p = NULL;
			s->texts[k].n = s->texts[k].cap = 0;
		}
		if (at >= 0) {
			xcol_unref(o->cols[at]);
			o->cols[at] = c;
		} else {
			o->cols[o->ncols++] = c;
		}
		s->newcols[k] = NULL;
	}
	(void)n;
	s->out = o;
	return 0;
}

/* ---- aggregate ------------------------------------------------------------ */

static uint64_t mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return h;
}

static uint64_t fbits(double f)
{
	uint64_t u;

	if (f == 0)
		f = 0; /* -0.0 groups with 0.0 */
	if (f != f)
		return 0x7ff8000000000000ull;
	memcpy(&u, &f, 8);
	return u;
}

static uint64_t row_hash(const xstep *s, uint32_t p)
{
	uint64_t h = 0x9e3779b97f4a7c15ull;
	uint32_t k;

	for (k = 0; k < s->nkeys; k++) {
		const xcol *c = s->in->cols[s->keys[k]];
		uint64_t v;
		if (!xcol_valid(c, p))
			v = 0x5bd1e995u;
		else if (c->type == XINT)
			v = (uint64_t)c->i[p];
		else if (c->type == XFLOAT)
			v = fbits(c->f[p]);
		else if (c->type == XBOOL)
			v = c->b[p];
		else {
			uint32_t q;
			v = 1469598103934665603ull;
			for (q = c->off[p]; q < c->off[p + 1]; q++)
				v = (v ^ (unsigned char)c->s[q]) * 1099511628211ull;
		}
		h = mix(h ^ v) + k;
	}
	return h;
}

static int same_key(const xstep *s, uint32_t p, uint32_t q)
{
	uint32_t k;

	for (k = 0; k < s->nkeys; k++) {
		const xcol *c = s->in->cols[s->keys[k]];
		int a = xcol_valid(c, p), b = xcol_valid(c, q);
		if (a != b)
			return 0;
		if (!a)
			continue;
		switch (c->type) {
		case XINT: if (c->i[p] != c->i[q]) return 0; break;
		case XFLOAT: if (fbits(c->f[p]) != fbits(c->f[q])) return 0; break;
		case XBOOL: if (c->b[p] != c->b[q]) return 0; break;
		default:
			if (c->off[p + 1] - c->off[p] != c->off[q + 1] - c->off[q] ||
			    memcmp(c->s + c->off[p], c->s + c->off[q], c->off[p + 1] - c->off[p]))
				return 0;
		}
	}
	return 1;
}

static int str_less(const xcol *c, uint32_t p, uint32_t q)
{
	uint32_t a = c->off[p + 1] - c->off[p], b = c->off[q + 1] - c->off[q];
	int r = memcmp(c->s + c->off[p], c->s + c->off[q], a < b ? a : b);

	return r ? r < 0 : a < b;
}

static int new_group(molt_task *t, xstep *s, uint32_t p, uint64_t h)
{
	uint32_t g = s->ng, a;

	if (g == s->gcap) {
		uint32_t cap = s->gcap ? s->gcap * 2 : 256;
		void *q;
		size_t na = s->naggs ? s->naggs : 1;
		if (!(q = realloc(s->rep, cap * 4)))
			return oom(t);
		s->rep = q;
		if (!(q = realloc(s->hash, cap * 8)))
			return oom(t);
		s->hash = q;
		if (!(q = realloc(s->rows, cap * 8)))
			return oom(t);
		s->rows = q;
		if (!(q = realloc(s->acnt, cap * na * 8)))
			return oom(t);
		s->acnt = q;
		if (!(q = realloc(s->iacc, cap * na * 8)))
			return oom(t);
		s->iacc = q;
		if (!(q = realloc(s->facc, cap * na * 8)))
			return oom(t);
		s->facc = q;
		s->gcap = cap;
	}
	s->rep[g] = p;
	s->hash[g] = h;
	s->rows[g] = 0;
	for (a = 0; a < s->naggs; a++) {
		s->acnt[(size_t)g * s->naggs + a] = 0;
		s->iacc[(size_t)g * s->naggs + a] = 0;
		s->facc[(size_t)g * s->naggs + a] = 0;
	}
	s->ng++;
	return 0;
}

/* Doubles the slot table (load at most 1/2). */
static int rehash(molt_task *t, xstep *s)
{
	uint32_t cap = s->scap ? s->scap * 2 : 1024, g, *q;

	if (!(q = calloc(cap, 4)))
		return oom(t);
	for (g = 0; g < s->ng; g++) {
		uint32_t i = (uint32_t)s->hash[g] & (cap - 1);
		while (q[i])
			i = (i + 1) & (cap - 1);
		q[i] = g + 1;
	}
	free(s->slots);
	s->slots = q;
	s->scap = cap;
	return 0;
}

/* Adds physical row p to group g's accumulator of aggregate a. */
static void accumulate(xstep *s, uint32_t a, uint32_t g, uint32_t p)
{
	const xagg *ag = &s->aggs[a];
	size_t at = (size_t)g * s->naggs + a;
	const xcol *c = s->in->cols[ag->col];
	int first;
	if (!xcol_valid(c, p))
		return;
	first = s->acnt[at]++ == 0;
	switch (ag->op) {
	case XA_SUM:
	case XA_MEAN:
		if (c->type == XINT) {
			s->iacc[at] = (int64_t)((uint64_t)s->iacc[at] + (uint64_t)c->i[p]);
			s->facc[at] += (double)c->i[p];
		} else {
			s->facc[at] += c->f[p];
		}
		break;
	case XA_MIN:
	case XA_MAX: {
		int mx = ag->op == XA_MAX;
		if (c->type == XINT || c->type == XBOOL) {
			int64_t v = c->type == XINT ? c->i[p] : c->b[p];
			if (first || (mx ? v > s->iacc[at] : v < s->iacc[at]))
				s->iacc[at] = v;
		} else if (c->type == XFLOAT) {
			double v = c->f[p];
			if (first || (mx ? v > s->facc[at] : v < s->facc[at]))
				s->facc[at] = v;
		} else if (first || (mx ? str_less(c, (uint32_t)s->iacc[at], p)
				   : str_less(c, p, (uint32_t)s->iacc[at]))) {
			s->iacc[at] = p;
		}
		break;
	}
	default:
		break;
	}
}

/* Adds rows phys[0..n) to their groups gid[0..n), one aggregate at a time
 * (each group still sees its rows in order, so sums are as row by row);
 * count, sum and mean of a column without nulls in tight loops. */
static void accumulate_rows(xstep *s, const uint32_t *gid, const uint32_t *phys, uint32_t n)
{
	uint32_t a, r, na = s->naggs;

	for (r = 0; r < n; r++)
		s->rows[gid[r]]++;
	for (a = 0; a < na; a++) {
		const xagg *ag = &s->aggs[a];
		const xcol *c = ag->col >= 0 ? s->in->cols[ag->col] : NULL;
		int64_t *cnt = s->acnt + a, *ia = s->iacc + a;
		double *fa = s->facc + a;
		if (!c)
			continue;
		if (c->valid || (ag->op != XA_COUNT && ag->op != XA_SUM && ag->op != XA_MEAN)) {
			for (r = 0; r < n; r++)
				accumulate(s, a, gid[r], phys[r]);
		} else if (ag->op == XA_COUNT) {
			for (r = 0; r < n; r++)
				cnt[(size_t)gid[r] * na]++;
		} else if (c->type == XINT) {
			for (r = 0; r < n; r++) {
				size_t at = (size_t)gid[r] * na;
				int64_t v = c->i[phys[r]];
				cnt[at]++;
				ia[at] = (int64_t)((uint64_t)ia[at] + (uint64_t)v);
				fa[at] += (double)v;
			}
		} else {
			for (r = 0; r < n; r++) {
				size_t at = (size_t)gid[r] * na;
				cnt[at]++;
				fa[at] += c->f[phys[r]];
			}
		}
	}
}

/* Decides between the dense table and the hash: one int key whose values
 * span at most 65536 and 4 slots a row goes dense. The range is scanned
 * first (a unit per 8 rows; cached on the column when read in place). */
static int plan_aggregate(molt_task *t, xstep *s)
{
	xds *d = s->in;
	xcol *c = s->nkeys == 1 ? d->cols[s->keys[0]] : NULL;
	uint32_t len = d->sel ? d->rows : (c ? c->n : 0);
	uint64_t w;

	if (!s->nkeys) { /* one group: the null slot */
		s->dense = 1;
		return (s->slots = calloc(1, 4)) ? MOLT_DONE : (oom(t), MOLT_FAILED);
	}
	if (!c || c->type != XINT || !d->rows) {
		s->dense = -1;
		return MOLT_DONE;
	}
	if (c->ranged) {
		s->dlo = c->lo;
		s->dhi = c->hi;
		s->rpos = len;
	} else if (!s->rpos) {
		s->dlo = INT64_MAX;
		s->dhi = INT64_MIN;
	}
	while (s->rpos < len) {
		uint64_t k = molt_step_take(t, (len - s->rpos + 7) / 8) * 8;
		uint32_t n = k < len - s->rpos ? (uint32_t)k : len - s->rpos, r;
		if (!n)
			return MOLT_PENDING;
		for (r = s->rpos; r < s->rpos + n; r++) {
			uint32_t p = d->sel ? d->sel->idx[r] : r;
			int64_t x = c->i[p];
			if (!xcol_valid(c, p))
				continue;
			s->dlo = x < s->dlo ? x : s->dlo;
			s->dhi = x > s->dhi ? x : s->dhi;
		}
		s->rpos += n;
		if (s->rpos == len && !d->sel) {
			c->ranged = 1;
			c->lo = s->dlo;
			c->hi = s->dhi;
		}
	}
	w = s->dhi < s->dlo ? 0 : (uint64_t)s->dhi - (uint64_t)s->dlo + 1;
	s->dense = s->dhi < s->dlo || (w - 1 < 65536 && w <= (uint64_t)d->rows * 4) ? 1 : -1;
	if (s->dense > 0) {
		s->span = (uint32_t)w;
		if (!(s->slots = calloc((size_t)w + 1, 4)))
			return oom(t), MOLT_FAILED;
	}
	return MOLT_DONE;
}

/* The dense table: slot key - dlo (span: null) holds group + 1. Groups are
 * numbered as they first appear, so their order is the hash path's. */
static int run_dense(molt_task *t, xstep *s)
{
	xds *d = s->in;
	const xcol *c = s->nkeys ? d->cols[s->keys[0]] : NULL;
	uint64_t lo = (uint64_t)s->dlo;
	uint32_t gid[XCHUNK], phys[XCHUNK];

	while (s->pos < d->rows) {
		uint32_t n = (uint32_t)molt_step_take(t, d->rows - s->pos), r, m;
		if (!n)
			return MOLT_PENDING;
		for (; n; n -= m) {
			m = n < XCHUNK ? n : XCHUNK;
			for (r = 0; r < m; r++) {
				uint32_t p = phys[r] = xds_phys(d, s->pos + r), k, g;
				k = c && xcol_valid(c, p) ? (uint32_t)((uint64_t)c->i[p] - lo) : s->span;
				if (!(g = s->slots[k])) {
					if (new_group(t, s, p, 0))
						return MOLT_FAILED;
					g = s->slots[k] = s->ng;
				}
				gid[r] = g - 1;
			}
			accumulate_rows(s, gid, phys, m);
			s->pos += m;
		}
	}
	return MOLT_DONE;
}

static int run_aggregate(molt_task *t, xstep *s)
{
	xds *d = s->in;
	uint32_t gid[XCHUNK], phys[XCHUNK];
	int rc;

	if (!s->dense && (rc = plan_aggregate(t, s)) != MOLT_DONE)
		return rc;
	if (s->dense > 0 && (rc = run_dense(t, s)) != MOLT_DONE)
		return rc;
	if (s->dense > 0)
		goto done;
	if (!s->slots && rehash(t, s))
		return MOLT_FAILED;
	while (s->pos < d->rows) {
		uint32_t n = d->rows - s->pos, r;
		if (n > XCHUNK)
			n = XCHUNK;
		if (!molt_step_take(t, n))
			return MOLT_PENDING;
		for (r = 0; r < n; r++) {
			uint32_t p = phys[r] = xds_phys(d, s->pos + r), i, g;
			uint64_t h = s->nkeys ? row_hash(s, p) : 0;
			for (i = (uint32_t)h & (s->scap - 1);; i = (i + 1) & (s->scap - 1)) {
				if (!s->slots[i]) {
					if (new_group(t, s, p, h))
						return MOLT_FAILED;
					g = s->ng - 1;
					s->slots[i] = s->ng;
					if (s->ng * 2 > s->scap && rehash(t, s))
						return MOLT_FAILED;
					break;
				}
				g = s->slots[i] - 1;
				if (s->hash[g] == h && same_key(s, s->rep[g], p))
					break;
			}
			gid[r] = g;
		}
		accumulate_rows(s, gid, phys, n);
		s->pos += n;
	}
done:
	/* No keys and no rows: still one group (count 0). */
	if (!s->nkeys && !s->ng && new_group(t, s, 0, 0))
		return MOLT_FAILED;
	return MOLT_DONE;
}

/* A new column of n rows with room for values (and validity if nullable). */
static xcol *empty_col(const char *name, size_t namelen, xtype type, uint32_t n, int nullable)
{
	xcol *c = xcol_new(name, namelen, type, n);
	size_t m = n ? n : 1;

	if (!c)
		return NULL;
	c->nullable = nullable;
	if ((nullable && !(c->valid = calloc(m, 1))) || (type == XINT && !(c->i = calloc(m, 8))) ||
	    (type == XFLOAT && !(c->f = calloc(m, 8))) || (type == XBOOL && !(c->b = calloc(m, 1))) ||
	    (type == XSTRING && !(c->off = calloc(m + 1, 4)))) {
		xcol_unref(c);
		return NULL;
	}
	return c;
}

/* Copies physical rows src[0..n) of c into a new column named as c. */
static xcol *gather(const xcol *c, const uint32_t *src, uint32_t n, const char *name)
{
	xcol *o = empty_col(name, strlen(name), c->type, n, c->nullable);
	xbuf text = { 0 };
	uint32_t r;

	if (!o)
		return NULL;
	for (r = 0; r < n; r++) {
		uint32_t p = src[r];
		if (o->valid)
			o->valid[r] = (uint8_t)xcol_valid(c, p);
		switch (c->type) {
		case XINT: o->i[r] = c->i[p]; break;
		case XFLOAT: o->f[r] = c->f[p]; break;
		case XBOOL: o->b[r] = c->b[p]; break;
		default:
			if (xbuf_put(&text, c->s + c->off[p], c->off[p + 1] - c->off[p])) {
				xbuf_free(&text);
				xcol_unref(o);
				return NULL;
			}
			o->off[r + 1] = (uint32_t)text.n;
		}
	}
	o->s = text.p;
	return o;
}

static int finish_aggregate(molt_task *t, xstep *s)
{
	xds *o = xds_new(s->nkeys + s->naggs);
	uint32_t k, g;

	if (!o)
		return oom(t);
	s->out = o;
	o->rows = o->nphys = s->ng;
	for (k = 0; k < s->nkeys; k++) {
		const xcol *c = s->in->cols[s->keys[k]];
		if (!(o->cols[k] = gather(c, s->rep, s->ng, c->name)))
			return oom(t);
	}
	for (k = 0; k < s->naggs; k++) {
		const xagg *a = &s->aggs[k];
		const xcol *src = a->col >= 0 ? s->in->cols[a->col] : NULL;
		char name[160];
		xtype ty = a->op == XA_COUNT ? XINT : a->op == XA_MEAN ? XFLOAT : src->type;
		int nullable = a->op != XA_COUNT && src->nullable;
		xcol *c;
		uint32_t *rows = NULL;
		if (a->name) {
			xpath(name, sizeof(name), "", "", 0);
			memcpy(name, a->name, a->namelen < sizeof(name) - 1 ? a->namelen : sizeof(name) - 1);
			name[a->namelen < sizeof(name) - 1 ? a->namelen : sizeof(name) - 1] = '\0';
		} else if (src) {
			xpath(name, sizeof(name), agg_names[a->op], "_", 0);
			memcpy(name + strlen(name), src->name,
			       strlen(src->name) < 100 ? strlen(src->name) + 1 : 101);
			name[sizeof(name) - 1] = '\0';
		} else {
			xpath(name, sizeof(name), "count", "", 0);
		}
		if (ty == XSTRING) {
			if (!(rows = malloc((s->ng ? s->ng : 1) * 4)))
				return oom(t);
			for (g = 0; g < s->ng; g++)
				rows[g] = (uint32_t)s->iacc[(size_t)g * s->naggs + k];
			/* No input rows (so no group had one): nothing to copy. */
			c = src->n ? gather(src, rows, s->ng, name)
				   : empty_col(name, strlen(name), XSTRING, s->ng, src->nullable);
			free(rows);
			if (!c)
				return oom(t);
			for (g = 0; g < s->ng && c->valid; g++)
				c->valid[g] = s->acnt[(size_t)g * s->naggs + k] > 0;
			o->cols[s->nkeys + k] = c;
			continue;
		}
		if (!(c = o->cols[s->nkeys + k] = empty_col(name, strlen(name), ty, s->ng, nullable)))
			return oom(t);
		for (g = 0; g < s->ng; g++) {
			size_t at = (size_t)g * s->naggs + k;
			int64_t cnt = s->acnt[at];
			if (c->valid)
				c->valid[g] = a->op == XA_COUNT || cnt > 0;
			switch (a->op) {
			case XA_COUNT:
				c->i[g] = a->col >= 0 ? cnt : s->rows[g];
				break;
			case XA_MEAN:
				c->f[g] = cnt ? s->facc[at] / (double)cnt : 0;
				break;
			default:
				if (ty == XINT)
					c->i[g] = s->iacc[at];
				else if (ty == XBOOL)
					c->b[g] = (uint8_t)s->iacc[at];
				else
					c->f[g] = s->facc[at];
			}
		}
	}
	/* Names must stay distinct: a later duplicate is an error. */
	for (k = 1; k < o->ncols; k++)
		for (g = 0; g < k; g++)
			if (!strcmp(o->cols[k]->name, o->cols[g]->name))
				return molt_fail(t, MOLT_INVALID_INPUT, "aggs",
						 "aggregate: two output columns are named '%s'; give "
						 "one another name with as", o->cols[k]->name);
	return 0;
}

/* ---- paginate ------------------------------------------------------------- */

/* <0, 0, >0: logical rows a and b in sort order (ties: 0). */
static int row_cmp(const xstep *s, uint32_t a, uint32_t b)
{
	const xds *d = s->in;
	uint32_t p = xds_phys(d, a), q = xds_phys(d, b), k;

	for (k = 0; k < s->nkeys; k++) {
		const xcol *c = d->cols[s->keys[k]];
		int va = xcol_valid(c, p), vb = xcol_valid(c, q), r = 0;
		if (va != vb)
			return va ? -1 : 1; /* nulls last */
		if (!va)
			continue;
		switch (c->type) {
		case XINT: r = (c->i[p] > c->i[q]) - (c->i[p] < c->i[q]); break;
		case XFLOAT: {
			double x = c->f[p], y = c->f[q];
			/* NaN after every number */
			r = x != x ? (y != y ? 0 : 1) : y != y ? -1 : (x > y) - (x < y);
			break;
		}
		case XBOOL: r = c->b[p] - c->b[q]; break;
		default: r = str_less(c, p, q) ? -1 : str_less(c, q, p) ? 1 : 0;
		}
		if (r)
			return s->desc[k] ? -r : r;
	}
	return 0;
}

static int run_paginate(molt_task *t, xstep *s)
{
	uint32_t n = s->in->rows, want;

	want = s->offset >= n ? 0 : n - s->offset < s->limit ? n - s->offset : s->limit;
	if (!s->order) {
		uint32_t k = s->offset + want;
		s->topk = s->nkeys && k < n / 4 && k <= 100000;
		if (!(s->order = malloc(((s->topk ? k : n) + 1) * 4)) ||
		    (!s->topk && s->nkeys && !(s->tmp = malloc((n ? n : 1) * 4))))
			return oom(t);
		s->kmax = k;
		if (!s->topk)
			for (k = 0; k < n; k++)
				s->order[k] = k;
		s->width = 1;
	}
	if (!s->nkeys || !n)
		return MOLT_DONE;
	if (s->topk) {
		while (s->pos < n) {
			uint32_t m = n - s->pos, r;
			if (m > XCHUNK)
				m = XCHUNK;
			if (!molt_step_take(t, m))
				return MOLT_PENDING;
			for (r = s->pos; r < s->pos + m; r++) {
				uint32_t lo = 0, hi = s->nsel;
				if (s->nsel == s->kmax && (!s->kmax || row_cmp(s, r, s->order[s->nsel - 1]) >= 0))
					continue;
				while (lo < hi) { /* after equal keys: stable */
					uint32_t mid = (lo + hi) / 2;
					if (row_cmp(s, r, s->order[mid]) < 0)
						hi = mid;
					else
						lo = mid + 1;
				}
				memmove(s->order + lo + 1, s->order + lo,
					(s->nsel - lo - (s->nsel == s->kmax)) * 4);
				s->order[lo] = r;
				if (s->nsel < s->kmax)
					s->nsel++;
			}
			s->pos += m;
		}
		return MOLT_DONE;
	}
	/* Bottom-up merge sort: one pair of runs at a time. */
	while (s->width < n) {
		while (s->pos < n) {
			uint32_t lo = s->pos, mid = lo + s->width < n ? lo + s->width : n,
				 hi = mid + s->width < n ? mid + s->width : n, i = lo, j = mid, k = lo;
			molt_step_take(t, hi - lo);
			while (i < mid && j < hi)
				s->tmp[k++] = row_cmp(s, s->order[j], s->order[i]) < 0 ? s->order[j++]
											  : s->order[i++];
			while (i < mid)
				s->tmp[k++] = s->order[i++];
			while (j < hi)
				s->tmp[k++] = s->order[j++];
			s->pos = hi;
			if (!molt_budget(t) && s->pos < n)
				return MOLT_PENDING;
		}
		{
			uint32_t *q = s->order;
			s->order = s->tmp;
			s->tmp = q;
		}
		s->pos = 0;
		s->width = s->width > n / 2 ? n : s->width * 2;
		if (!molt_budget(t) && s->width < n)
			return MOLT_PENDING;
	}
	return MOLT_DONE;
}

static int finish_paginate(molt_task *t, xstep *s)
{
	const xds *d = s->in;
	uint32_t n = d->rows, want, k, *phys;
	xds *o = xds_new(s->ncols_out ? s->ncols_out : d->ncols);

	want = s->offset >= n ? 0 : n - s->offset < s->limit ? n - s->offset : s->limit;
	if (!o || !(phys = malloc((want ? want : 1) * 4))) {
		xds_unref(o);
		return oom(t);
	}
	s->out = o;
	for (k = 0; k < want; k++)
		phys[k] = xds_phys(d, s->order[s->offset + k]);
	o->rows = o->nphys = want;
	for (k = 0; k < o->ncols; k++) {
		const xcol *c = d->cols[s->ncols_out ? s->outcols[k] : (int)k];
		if (!(o->cols[k] = gather(c, phys, want, c->name))) {
			free(phys);
			return oom(t);
		}
	}
	free(phys);
	return 0;
}

/* ---- driver --------------------------------------------------------------- */

int xstep_run(molt_task *t, xstep *s)
{
	int rc;

	switch (s->kind) {
	case XS_FILTER: rc = run_filter(t, s); break;
	case XS_MAP: rc = run_map(t, s); break;
	case XS_AGGREGATE: rc = run_aggregate(t, s); break;
	default: rc = run_paginate(t, s); break;
	}
	if (rc != MOLT_DONE)
		return rc;
	switch (s->kind) {
	case XS_FILTER: rc = finish_filter(t, s); break;
	case XS_MAP: rc = finish_map(t, s); break;
	case XS_AGGREGATE: rc = finish_aggregate(t, s); break;
	default: rc = finish_paginate(t, s); break;
	}
	return rc ? MOLT_FAILED : MOLT_DONE;
}

int xstep_kind(const msgpack_object *op)
{
	int k;

	for (k = 0; k < 4; k++)
		if (str_is(op, step_names[k]))
			return k;
	return -1;
}
