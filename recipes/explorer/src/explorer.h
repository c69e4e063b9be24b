/* explorer: the Typed Data Explorer unit's internals (docs/explorer.md).
 *
 * Data model: a dataset (xds) is a list of shared, reference-counted columns
 * (xcol) of one physical length, plus an optional selection (xsel: the
 * physical rows, increasing, that the dataset's logical rows are). A filter
 * makes a new selection over the same columns; a map adds columns of the
 * same physical length; aggregate and paginate make new columns. Every
 * engine works on chunks of XCHUNK rows, so each is sliced across polls. */
#ifndef EXPLORER_H
#define EXPLORER_H

#include "molt/module.h"

#include <stddef.h>
#include <stdint.h>

/* Rows per evaluation chunk. */
#define XCHUNK 1024
/* The most rows a dataset may have, and columns. */
#define XROWS_MAX 50000000u
#define XCOLS_MAX 1024u
/* The most nodes in an expression, derived columns in a map, group keys,
 * aggregates and sort keys. */
#define XNODES_MAX 256u
#define XMAP_MAX 64u
#define XKEYS_MAX 16u
#define XAGGS_MAX 64u
/* A table written as MsgPack by format "auto" has at most this many cells. */
#define XAUTO_CELLS 4096u

/* Column types: the schema language's names. XNULL is an expression's
 * type when it is a null literal and nothing else. */
typedef enum { XINT, XFLOAT, XSTRING, XBOOL, XNULL } xtype;

/* A column: values for `n` physical rows. Shared by datasets (refs). */
typedef struct {
	int refs;
	xtype type;
	int nullable;      /* it may hold nulls (valid != NULL implies it) */
	char *name;        /* NUL-terminated, UTF-8 */
	uint32_t n;
	int64_t *i;        /* XINT */
	double *f;         /* XFLOAT */
	uint8_t *b;        /* XBOOL: 0 or 1 a row */
	uint32_t *off;     /* XSTRING: n + 1 offsets into s */
	char *s;
	uint8_t *valid;    /* 1 a row; NULL: no nulls */
	int ranged;        /* XINT: lo..hi known (the values once written) */
	int64_t lo, hi;    /* the least and greatest valid value (lo > hi: none) */
} xcol;

/* A selection: logical row k is physical row idx[k]; increasing. */
typedef struct {
	int refs;
	uint32_t n;
	uint32_t *idx;
} xsel;

/* A dataset. */
typedef struct {
	int refs;
	uint32_t rows;     /* logical rows */
	uint32_t nphys;    /* the columns' physical length */
	xsel *sel;         /* NULL: logical row k is physical row k */
	uint32_t ncols;
	xcol **cols;
} xds;

/* The physical row of logical row k. */
static inline uint32_t xds_phys(const xds *d, uint32_t k)
{
	return d->sel ? d->sel->idx[k] : k;
}

static inline int xcol_valid(const xcol *c, uint32_t p)
{
	return !c->valid || c->valid[p];
}

const char *xtype_name(xtype t);
/* Parses a type name; -1 if unknown. */
int xtype_parse(const char *s, uint32_t len);

xcol *xcol_new(const char *name, size_t namelen, xtype type, uint32_t n);
void xcol_unref(xcol *c);
xds *xds_new(uint32_t ncols);
void xds_unref(xds *d);
void xds_release(void *d); /* for molt_handle_new */
/* The column named name (len bytes), or -1. */
int xds_find(const xds *d, const char *name, size_t len);

/* A growable byte buffer with a cap. */
typedef struct {
	char *p;
	size_t n, cap;
} xbuf;
int xbuf_put(xbuf *b, const void *p, size_t n);
void xbuf_free(xbuf *b);

/* Formats a double as the shortest text that reads back (cJSON's %1.15g /
 * %1.17g), NaN and infinities as NaN, Infinity, -Infinity. */
size_t xfmt_double(char *out, size_t n, double d);
/* Formats an int64. */
size_t xfmt_int(char *out, size_t n, int64_t v);
/* Parses all of s as an int64 / a decimal float / true|false (any case). */
int xparse_int(const char *s, size_t n, int64_t *v);
int xparse_float(const char *s, size_t n, double *v);
int xparse_bool(const char *s, size_t n, uint8_t *v);

/* A small bounded formatter for paths: prefix + text with one %u. */
void xpath(char *out, size_t n, const char *prefix, const char *fmt, uint32_t k);

/* ---- msgpack request helpers ------------------------------------------- */

/* The value of key in map, or NULL. */
const msgpack_object *xget(const msgpack_object *map, const char *key);

/* ---- loading ------------------------------------------------------------ */

/* A column of an explicit schema. */
typedef struct {
	const char *name;
	uint32_t namelen;
	xtype type;
	int nullable;
} xschema_col;

typedef struct xload xload;
/* Starts a loader over data (borrowed: it must outlive the loader). `path`
 * names the request field for messages ("data", "dataset.data"). */
xload *xload_new(molt_task *t, int format, const char *data, size_t len,
		 const xschema_col *schema, uint32_t nschema, uint32_t max_errors,
		 const char *path);
/* Runs within the budget: MOLT_DONE (then xload_take), MOLT_PENDING or
 * MOLT_FAILED. */
int xload_step(molt_task *t, xload *l);
/* The dataset made (a reference the caller owns), NULL if validation
 * failed; rows, errors and the count. */
xds *xload_take(xload *l);
uint32_t xload_rows(const xload *l);
const xds *xload_shape(const xload *l); /* columns, also when invalid */
uint32_t xload_error_count(const xload *l);
/* The listed errors, written as load_response's errors list. */
void xload_pack_errors(const xload *l, msgpack_packer *pk);
/* The first error, as one line, for run's message. */
void xload_first_error(const xload *l, char *out, size_t n);
void xload_free(xload *l);

/* ---- expressions -------------------------------------------------------- */

typedef struct xexpr xexpr;
/* Compiles an expression ({nodes, root}) against d's columns; fails the
 * task naming the node (path + ".nodes[i]"). */
xexpr *xexpr_compile(molt_task *t, const msgpack_object *e, const xds *d, const char *path);
xtype xexpr_type(const xexpr *x);
/* Evaluates rows [start, start + n) (logical, n <= XCHUNK) of d. Results of
 * the root: xexpr_result. */
int xexpr_eval(molt_task *t, xexpr *x, const xds *d, uint32_t start, uint32_t n);
/* The root's values for the chunk: one of i/f/b/s+sl set (scalar: one
 * value for every row), valid NULL when no row is null. */
typedef struct {
	xtype type;
	int scalar;
	const int64_t *i;
	const double *f;
	const uint8_t *b;
	const char *const *s;
	const uint32_t *sl;
	const uint8_t *valid;
} xvals;
void xexpr_result(const xexpr *x, xvals *out);
/* A predicate `column OP literal` over numbers, for filter's typed scan. */
enum { XC_EQ, XC_NE, XC_LT, XC_LE, XC_GT, XC_GE };
typedef struct {
	int col;           /* the column (int or float) */
	int op;            /* XC_* */
	xtype type;        /* the literal's: XINT (i, and f = (double)i) or XFLOAT (f) */
	int64_t i;
	double f;
} xcmp;
/* 1 and *out filled if x is one comparison of a number column with a
 * non-null number literal, else 0. */
int xexpr_compare_lit(const xexpr *x, xcmp *out);
void xexpr_free(xexpr *x);

/* ---- output ------------------------------------------------------------- */

/* Writes a dataset's rows [0, rows) as the table fields columns, data or
 * arrow (sliced): the caller writes total and rows first. */
typedef struct xout xout;
xout *xout_new(const xds *d, int arrow);
int xout_step(molt_task *t, xout *o, msgpack_packer *pk);
void xout_free(xout *o);
/* Packs a dataset's column descriptions. */
void xpack_columns(msgpack_packer *pk, const xds *d);

#endif
