/* explorer: one operation over a dataset, sliced (ops.c). */
#ifndef EXPLORER_OPS_H
#define EXPLORER_OPS_H

#include "explorer.h"

enum { XS_FILTER, XS_MAP, XS_AGGREGATE, XS_PAGINATE };
enum { XA_COUNT, XA_SUM, XA_MEAN, XA_MIN, XA_MAX };

#define VALID1(v) (!(v).valid || (v).valid[0])

/* An aggregate: op, source column (-1: count rows), output name. */
typedef struct {
	int op;
	int col;
	const char *name; /* NULL: op_column, or count */
	uint32_t namelen;
} xagg;

typedef struct {
	int kind;
	xds *in, *out;     /* out: made at the end */
	uint32_t pos;      /* the next logical row */
	/* filter */
	xexpr *x;
	int fast;          /* the predicate is cmp: a typed scan */
	xcmp cmp;
	int count;         /* only count the rows (filter with keep false) */
	uint32_t *sel, nsel; /* paginate top-k: nsel rows in order */
	/* map */
	uint32_t nx;
	xexpr **xs;
	xcol **newcols;
	xbuf *texts;
	/* aggregate and paginate keys */
	uint32_t nkeys;
	int keys[XKEYS_MAX];
	int desc[XKEYS_MAX];
	uint32_t naggs;
	xagg aggs[XAGGS_MAX];
	uint32_t ng, gcap, scap;
	uint32_t *rep, *slots;
	uint64_t *hash;
	int dense;         /* 0: undecided; 1: slots indexed by key - dlo (span: null); -1: hash */
	int64_t dlo, dhi;  /* the key's range, while it is scanned (dhi < dlo: no value) */
	uint32_t span, rpos;
	int64_t *rows, *acnt, *iacc;
	double *facc;
	/* paginate */
	uint32_t offset, limit, width, kmax;
	int topk;
	uint32_t *order, *tmp;
	uint32_t ncols_out;
	int outcols[XCOLS_MAX];
} xstep;

/* Parses an operation's fields from map m (a request, or a run step;
 * `prefix` goes before field names in error paths) against dataset in
 * (referenced). NULL with the task failed on a bad request. */
xstep *xstep_new(molt_task *t, int kind, const msgpack_object *m, xds *in, const char *prefix);
/* Runs within the budget; at MOLT_DONE, s->out is the result. */
int xstep_run(molt_task *t, xstep *s);
void xstep_free(xstep *s);
/* XS_* for a step's op name, or -1. */
int xstep_kind(const msgpack_object *op);

#endif
