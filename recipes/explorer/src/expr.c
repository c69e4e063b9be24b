/* explorer: expressions as node lists ({nodes, root}), type-checked when
 * compiled and evaluated a chunk of rows at a time, vector by vector. */
#include "explorer.h"

#include <stdlib.h>
#include <string.h>

enum {
	O_COL, O_LIT, O_ADD, O_SUB, O_MUL, O_DIV, O_MOD, O_NEG, O_EQ, O_NE, O_LT, O_LE, O_GT, O_GE,
	O_AND, O_OR, O_NOT, O_IS_NULL, O_NOT_NULL, O_CONTAINS, O_PREFIX, O_SUFFIX, O_CAST, O_LEN,
	O_LOWER, O_UPPER, O_COUNT
};

static const char *const op_names[] = {
	"col", "lit", "add", "sub", "mul", "div", "mod", "neg", "eq", "ne", "lt", "le", "gt", "ge",
	"and", "or", "not", "is_null", "not_null", "contains", "prefix", "suffix", "cast", "len",
	"lower", "upper",
};

typedef struct {
	int op;
	xtype type;
	int allnull;       /* every value is null (a null operand) */
	uint32_t nargs;
	uint32_t *args;    /* internal node indices */
	int col;
	xtype cast;
	/* literal */
	int64_t li;
	double lf;
	uint8_t lb, lvalid;
	const char *ls;
	uint32_t lsl;
	/* chunk buffers */
	int64_t *i;
	double *f;
	uint8_t *b, *valid;
	const char **s;
	uint32_t *sl;
	xbuf arena;
	xvals v;
} xnode;

struct xexpr {
	uint32_t n, cap;
	xnode *nodes;
	uint32_t root;
};

static const uint8_t zero_valid[1] = { 0 };
static const char *const empty_s[1] = { "" };
static const uint32_t zero_u32[1] = { 0 };

static int is_binary(int op)
{
	return (op >= O_ADD && op <= O_MOD) || (op >= O_EQ && op <= O_GE) ||
	       (op >= O_CONTAINS && op <= O_SUFFIX);
}

static int is_num(xtype t)
{
	return t == XINT || t == XFLOAT;
}

void xexpr_free(xexpr *x)
{
	uint32_t k;

	if (!x)
		return;
	for (k = 0; k < x->n; k++) {
		xnode *nd = &x->nodes[k];
		free(nd->args);
		free(nd->i);
		free(nd->f);
		free(nd->b);
		free(nd->valid);
		free(nd->s);
		free(nd->sl);
		xbuf_free(&nd->arena);
	}
	free(x->nodes);
	free(x);
}

static xnode *add_node(xexpr *x)
{
	if (x->n == x->cap) {
		uint32_t cap = x->cap ? x->cap * 2 : 8;
		xnode *q = realloc(x->nodes, cap * sizeof(*q));
		if (!q)
			return NULL;
		x->nodes = q;
		x->cap = cap;
	}
	memset(&x->nodes[x->n], 0, sizeof(xnode));
	return &x->nodes[x->n++];
}

/* Reads a node's literal field (int, float, string or bool) into nd; 0
 * if it has none, 1 if one, -1 if several. */
static int literal(const msgpack_object *o, xnode *nd)
{
	const msgpack_object *v;
	int k = 0;

	nd->type = XNULL;
	nd->lvalid = 0;
	if ((v = xget(o, "int")) && v->type != MSGPACK_OBJECT_NIL) {
		nd->type = XINT;
		nd->li = v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER ? v->via.i64 : (int64_t)v->via.u64;
		k++;
	}
	if ((v = xget(o, "float")) && v->type != MSGPACK_OBJECT_NIL) {
		nd->type = XFLOAT;
		nd->lf = v->via.f64;
		k++;
	}
	if ((v = xget(o, "string")) && v->type == MSGPACK_OBJECT_STR) {
		nd->type = XSTRING;
		nd->ls = v->via.str.ptr;
		nd->lsl = v->via.str.size;
		k++;
	}
	if ((v = xget(o, "bool")) && v->type == MSGPACK_OBJECT_BOOLEAN) {
		nd->type = XBOOL;
		nd->lb = v->via.boolean;
		k++;
	}
	nd->op = O_LIT;
	nd->lvalid = k > 0;
	return k > 1 ? -1 : k;
}

static void columns_list(const xds *d, char *out, size_t n)
{
	size_t at = 0, k;
	uint32_t i;

	out[0] = '\0';
	for (i = 0; i < d->ncols && at + 8 < n; i++) {
		k = strlen(d->cols[i]->name);
		if (k > n - at - 8) {
			memcpy(out + at, "...", 4);
			return;
		}
		if (i) {
			memcpy(out + at, ", ", 2);
			at += 2;
		}
		memcpy(out + at, d->cols[i]->name, k);
		at += k;
		out[at] = '\0';
	}
}

static int col_node(molt_task *t, xexpr *x, const xds *d, const msgpack_object *c, const char *path,
		    uint32_t *idx)
{
	char cols[200];
	xnode *nd;
	int j;

	if (c->type != MSGPACK_OBJECT_STR)
		return molt_fail(t, MOLT_INVALID_INPUT, path, "expected a column name");
	j = xds_find(d, c->via.str.ptr, c->via.str.size);
	if (j < 0) {
		columns_list(d, cols, sizeof(cols));
		return molt_fail(t, MOLT_INVALID_INPUT, path,
				 "expected a column of the dataset, found '%.*s'; its columns are: %s",
				 (int)(c->via.str.size > 64 ? 64 : c->via.str.size), c->via.str.ptr, cols);
	}
	if (!(nd = add_node(x)))
		return molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
	nd->op = O_COL;
	nd->col = j;
	nd->type = d->cols[j]->type;
	*idx = x->n - 1;
	return 0;
}

/* The result type of op over the operand types; XNULL with the task
 * failed when they don't fit. */
static xtype check(molt_task *t, const char *path, int op, xtype cast, const xtype *a, uint32_t n,
		   int *allnull)
{
	uint32_t k;
	int nul = 0;

	for (k = 0; k < n; k++)
		nul |= a[k] == XNULL;
	*allnull = nul && op != O_IS_NULL && op != O_NOT_NULL && op != O_AND && op != O_OR;
	switch (op) {
	case O_ADD: case O_SUB: case O_MUL: case O_DIV: case O_MOD: case O_NEG:
		for (k = 0; k < n; k++)
			if (!is_num(a[k]) && a[k] != XNULL)
				goto mismatch;
		if (op == O_DIV)
			return XFLOAT;
		for (k = 0; k < n; k++)
			if (a[k] == XFLOAT)
				return XFLOAT;
		return XINT;
	case O_EQ: case O_NE: case O_LT: case O_LE: case O_GT: case O_GE:
		if (a[0] == XNULL || a[1] == XNULL || a[0] == a[1] || (is_num(a[0]) && is_num(a[1])))
			return XBOOL;
		goto mismatch;
	case O_AND: case O_OR: case O_NOT:
		for (k = 0; k < n; k++)
			if (a[k] != XBOOL && a[k] != XNULL)
				goto mismatch;
		return XBOOL;
	case O_IS_NULL: case O_NOT_NULL:
		return XBOOL;
	case O_CONTAINS: case O_PREFIX: case O_SUFFIX:
		for (k = 0; k < n; k++)
			if (a[k] != XSTRING && a[k] != XNULL)
				goto mismatch;
		return XBOOL;
	case O_LEN:
		if (a[0] != XSTRING && a[0] != XNULL)
			goto mismatch;
		return XINT;
	case O_LOWER: case O_UPPER:
		if (a[0] != XSTRING && a[0] != XNULL)
			goto mismatch;
		return XSTRING;
	case O_CAST:
		return cast;
	}
mismatch:
	molt_fail(t, MOLT_INVALID_INPUT, path, "%s: expected %s operands, found %s%s%s%s%s",
		  op_names[op],
		  op <= O_NEG ? "number" : op <= O_GE ? "comparable (numbers, or two of one type)"
		  : op <= O_NOT ? "bool" : "string",
		  xtype_name(a[0]), n > 1 ? ", " : "", n > 1 ? xtype_name(a[1]) : "",
		  n > 2 ? ", " : "", n > 2 ? "..." : "");
	return XNULL;
}

static int op_parse(const msgpack_object *o)
{
	int k;

	if (o && o->type == MSGPACK_OBJECT_STR)
		for (k = 0; k < O_COUNT; k++)
			if (strlen(op_names[k]) == o->via.str.size &&
			    !memcmp(op_names[k], o->via.str.ptr, o->via.str.size))
				return k;
	return -1;
}

xexpr *xexpr_compile(molt_task *t, const msgpack_object *e, const xds *d, const char *path)
{
	const msgpack_object *nodes = xget(e, "nodes"), *root = xget(e, "root");
	uint32_t *map = NULL, i, nn;
	xexpr *x = calloc(1, sizeof(*x));
	char p[160];

	if (!x) {
		molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
		return NULL;
	}
	xpath(p, sizeof(p), path, ".nodes", 0);
	if (!nodes || nodes->type != MSGPACK_OBJECT_ARRAY || !nodes->via.array.size) {
		molt_fail(t, MOLT_INVALID_INPUT, p, "expected a non-empty list of nodes");
		goto fail;
	}
	nn = nodes->via.array.size;
	if (nn > XNODES_MAX) {
		molt_fail(t, MOLT_INVALID_INPUT, p, "expected at most %u nodes, found %u", XNODES_MAX,
			  (unsigned)nn);
		goto fail;
	}
	if (!(map = calloc(nn, sizeof(*map)))) {
		molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
		goto fail;
	}
	for (i = 0; i < nn; i++) {
		const msgpack_object *o = &nodes->via.array.ptr[i], *args = xget(o, "args"),
				     *column = xget(o, "column"), *ty = xget(o, "type");
		int op = op_parse(xget(o, "op")), nlit, allnull;
		uint32_t ops[XNODES_MAX + 2], nops = 0, k, nargs = args && args->type == MSGPACK_OBJECT_ARRAY ? args->via.array.size : 0;
		xtype types[XNODES_MAX + 2], rt;
		xnode lit, *nd;

		xpath(p, sizeof(p), path, ".nodes[%u]", i);
		if (op < 0) {
			molt_fail(t, MOLT_INVALID_INPUT, p, "expected an op");
			goto fail;
		}
		memset(&lit, 0, sizeof(lit));
		if ((nlit = literal(o, &lit)) < 0) {
			molt_fail(t, MOLT_INVALID_INPUT, p,
				  "expected at most one of int, float, string and bool, found several");
			goto fail;
		}
		if (op == O_COL) {
			char cp[176];
			xpath(cp, sizeof(cp), p, ".column", 0);
			if (!column) {
				molt_fail(t, MOLT_INVALID_INPUT, cp, "col: expected a column name");
				goto fail;
			}
			if (col_node(t, x, d, column, cp, &map[i]))
				goto fail;
			continue;
		}
		if (op == O_LIT) {
			if (!(nd = add_node(x))) {
				molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
				goto fail;
			}
			*nd = lit;
			map[i] = x->n - 1;
			continue;
		}
		if (nargs > XNODES_MAX) {
			molt_fail(t, MOLT_INVALID_INPUT, p, "expected at most %u args", XNODES_MAX);
			goto fail;
		}
		/* Shorthand: `column` is the first operand, a literal the last. */
		if (column && !nargs) {
			char cp[176];
			xpath(cp, sizeof(cp), p, ".column", 0);
			if (col_node(t, x, d, column, cp, &ops[nops]))
				goto fail;
			nops++;
		}
		for (k = 0; k < nargs; k++) {
			const msgpack_object *a = &args->via.array.ptr[k];
			if (a->type != MSGPACK_OBJECT_POSITIVE_INTEGER || a->via.u64 >= i) {
				char ap[176];
				xpath(ap, sizeof(ap), p, ".args[%u]", k);
				if (a->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
					molt_fail(t, MOLT_INVALID_INPUT, ap,
						  "expected the index of an earlier node (0 to %lld), found %llu",
						  (long long)i - 1, (unsigned long long)a->via.u64);
				else
					molt_fail(t, MOLT_INVALID_INPUT, ap,
						  "expected the index of an earlier node (0 to %lld)",
						  (long long)i - 1);
				goto fail;
			}
			ops[nops++] = map[a->via.u64];
		}
		if (nlit && (is_binary(op) && nops == 1)) {
			if (!(nd = add_node(x))) {
				molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
				goto fail;
			}
			*nd = lit;
			ops[nops++] = x->n - 1;
		}
		{
			uint32_t want = is_binary(op) ? 2 : (op == O_AND || op == O_OR) ? 0 : 1;
			if ((want && nops != want) || (!want && nops < 1)) {
				if (want)
					molt_fail(t, MOLT_INVALID_INPUT, p,
						  "%s: expected %u operand%s (args, or column and a literal), "
						  "found %u", op_names[op], want, want > 1 ? "s" : "", nops);
				else
					molt_fail(t, MOLT_INVALID_INPUT, p,
						  "%s: expected at least one operand in args", op_names[op]);
				goto fail;
			}
		}
		if (op == O_CAST) {
			int ct = ty && ty->type == MSGPACK_OBJECT_STR ? xtype_parse(ty->via.str.ptr, ty->via.str.size) : -1;
			if (ct < 0) {
				char tp[176];
				xpath(tp, sizeof(tp), p, ".type", 0);
				molt_fail(t, MOLT_INVALID_INPUT, tp,
					  "cast: expected a type (int, float, string or bool)");
				goto fail;
			}
			lit.cast = (xtype)ct;
		}
		for (k = 0; k < nops; k++)
			types[k] = x->nodes[ops[k]].type;
		if ((rt = check(t, p, op, lit.cast, types, nops, &allnull)) == XNULL && !(op == O_CAST))
			goto fail;
		if (!(nd = add_node(x)) || !(nd->args = malloc(nops * sizeof(uint32_t)))) {
			molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
			goto fail;
		}
		nd->op = op;
		nd->type = rt;
		nd->cast = lit.cast;
		nd->allnull = allnull;
		nd->nargs = nops;
		memcpy(nd->args, ops, nops * sizeof(uint32_t));
		map[i] = x->n - 1;
	}
	x->root = map[nn - 1];
	if (root) {
		xpath(p, sizeof(p), path, ".root", 0);
		if (root->type != MSGPACK_OBJECT_POSITIVE_INTEGER || root->via.u64 >= nn) {
			molt_fail(t, MOLT_INVALID_INPUT, p, "expected a node index, 0 to %u",
				  (unsigned)nn - 1);
			goto fail;
		}
		x->root = map[root->via.u64];
	}
	/* Chunk buffers. */
	for (i = 0; i < x->n; i++) {
		xnode *nd = &x->nodes[i];
		int ok = 1;
		if (nd->op == O_LIT) {
			if (nd->type == XSTRING) {
				ok = (nd->s = malloc(sizeof(char *))) && (nd->sl = malloc(4));
				if (ok) {
					nd->s[0] = nd->ls;
					nd->sl[0] = nd->lsl;
				}
			}
			continue;
		}
		ok = (nd->valid = malloc(XCHUNK)) != NULL;
		switch (nd->type) {
		case XINT: ok = ok && (nd->i = malloc(XCHUNK * 8)); break;
		case XFLOAT: ok = ok && (nd->f = malloc(XCHUNK * 8)); break;
		case XBOOL: ok = ok && (nd->b = malloc(XCHUNK)); break;
		default: ok = ok && (nd->s = malloc(XCHUNK * sizeof(char *))) && (nd->sl = malloc(XCHUNK * 4));
		}
		if (!ok) {
			molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
			goto fail;
		}
	}
	free(map);
	return x;
fail:
	free(map);
	xexpr_free(x);
	return NULL;
}

xtype xexpr_type(const xexpr *x)
{
	xtype t = x->nodes[x->root].type;

	return t == XNULL ? XSTRING : t;
}

int xexpr_compare_lit(const xexpr *x, xcmp *out)
{
	const xnode *nd = &x->nodes[x->root], *a, *b;

	if (nd->op < O_EQ || nd->op > O_GE || nd->allnull || nd->nargs != 2)
		return 0;
	a = &x->nodes[nd->args[0]];
	b = &x->nodes[nd->args[1]];
	if (a->op != O_COL || !is_num(a->type) || b->op != O_LIT || !b->lvalid || !is_num(b->type))
		return 0;
	out->col = a->col;
	out->op = nd->op - O_EQ;
	out->type = b->type;
	out->i = b->li;
	out->f = b->type == XINT ? (double)b->li : b->lf;
	return 1;
}

void xexpr_result(const xexpr *x, xvals *out)
{
	*out = x->nodes[x->root].v;
}

/* ---- evaluation ---------------------------------------------------------- */

#define AT(v, r) ((v)->scalar ? 0 : (r))
#define VALID(v, r) (!(v)->valid || (v)->valid[AT(v, r)])

static double num(const xvals *v, uint32_t r)
{
	return v->type == XINT ? (double)v->i[AT(v, r)] : v->f[AT(v, r)];
}

/* nd->v.valid = every operand valid at each row (NULL if none has nulls). */
static void and_valid(xnode *nd, const xvals *a, const xvals *b, uint32_t n)
{
	uint32_t r;

	if (!a->valid && (!b || !b->valid)) {
		nd->v.valid = NULL;
		return;
	}
	for (r = 0; r < n; r++)
		nd->valid[r] = VALID(a, r) && (!b || VALID(b, r));
	nd->v.valid = nd->valid;
}

static int strcmp_n(const char *a, uint32_t al, const char *b, uint32_t bl)
{
	int c = memcmp(a, b, al < bl ? al : bl);

	return c ? c : (al > bl) - (al < bl);
}

static int find(const char *h, uint32_t hl, const char *nd, uint32_t nl)
{
	uint32_t k;

	if (nl > hl)
		return 0;
	if (!nl)
		return 1;
	for (k = 0; k + nl <= hl; k++)
		if (h[k] == nd[0] && !memcmp(h + k, nd, nl))
			return 1;
	return 0;
}

static int cmp_result(int op, int c)
{
	switch (op) {
	case O_EQ: return c == 0;
	case O_NE: return c != 0;
	case O_LT: return c < 0;
	case O_LE: return c <= 0;
	case O_GT: return c > 0;
	default: return c >= 0;
	}
}

static void eval_compare(xnode *nd, const xvals *a, const xvals *b, uint32_t n)
{
	uint32_t r;
	int op = nd->op;

	if (a->type == XINT && b->type == XINT) {
		const int64_t *x = a->i, *y = b->i;
		if (b->scalar && !a->scalar) {
			int64_t c = y[0];
			switch (op) {
			case O_GT: for (r = 0; r < n; r++) nd->b[r] = x[r] > c; return;
			case O_GE: for (r = 0; r < n; r++) nd->b[r] = x[r] >= c; return;
			case O_LT: for (r = 0; r < n; r++) nd->b[r] = x[r] < c; return;
			case O_LE: for (r = 0; r < n; r++) nd->b[r] = x[r] <= c; return;
			case O_EQ: for (r = 0; r < n; r++) nd->b[r] = x[r] == c; return;
			default: for (r = 0; r < n; r++) nd->b[r] = x[r] != c; return;
			}
		}
		for (r = 0; r < n; r++) {
			int64_t u = x[AT(a, r)], w = y[AT(b, r)];
			nd->b[r] = (uint8_t)cmp_result(op, (u > w) - (u < w));
		}
	} else if (is_num(a->type)) {
		for (r = 0; r < n; r++) {
			double u = num(a, r), w = num(b, r);
			/* NaN compares false (ne: true), as in IEEE 754. */
			nd->b[r] = u != u || w != w ? op == O_NE : (uint8_t)cmp_result(op, (u > w) - (u < w));
		}
	} else if (a->type == XBOOL) {
		for (r = 0; r < n; r++)
			nd->b[r] = (uint8_t)cmp_result(op, a->b[AT(a, r)] - b->b[AT(b, r)]);
	} else {
		for (r = 0; r < n; r++)
			nd->b[r] = (uint8_t)cmp_result(op, strcmp_n(a->s[AT(a, r)], a->sl[AT(a, r)],
								      b->s[AT(b, r)], b->sl[AT(b, r)]));
	}
}

/* fmod without libm (native units link no -lm): u - w * trunc(u / w). */
static double fmod_(double u, double w)
{
	double q = u / w;

	if (w == 0 || q != q || u - u != 0)
		return __builtin_nan("");
	if (w - w != 0)
		return u;
	if (q > -9.2e18 && q < 9.2e18)
		q = (double)(int64_t)q;
	return u - w * q;
}

static void eval_arith(xnode *nd, const xvals *a, const xvals *b, uint32_t n)
{
	uint32_t r;
	int op = nd->op;

	if (nd->type == XINT) {
		for (r = 0; r < n; r++) {
			uint64_t u = (uint64_t)a->i[AT(a, r)], w = b ? (uint64_t)b->i[AT(b, r)] : 0;
			switch (op) {
			case O_ADD: nd->i[r] = (int64_t)(u + w); break;
			case O_SUB: nd->i[r] = (int64_t)(u - w); break;
			case O_MUL: nd->i[r] = (int64_t)(u * w); break;
			case O_NEG: nd->i[r] = (int64_t)(0 - u); break;
			default:
				if (w == 0) {
					nd->i[r] = 0;
					nd->valid[r] = 0;
				} else {
					nd->i[r] = (int64_t)w == -1 ? 0 : (int64_t)u % (int64_t)w;
				}
			}
		}
		return;
	}
	for (r = 0; r < n; r++) {
		double u = num(a, r), w = b ? num(b, r) : 0;
		switch (op) {
		case O_ADD: nd->f[r] = u + w; break;
		case O_SUB: nd->f[r] = u - w; break;
		case O_MUL: nd->f[r] = u * w; break;
		case O_DIV: nd->f[r] = u / w; break;
		case O_NEG: nd->f[r] = -u; break;
		default: nd->f[r] = fmod_(u, w); break;
		}
	}
}

/* Sets the string pointers of rows [0, n) once the arena is complete. */
static void arena_strings(xnode *nd, const uint32_t *start, uint32_t n)
{
	uint32_t r;

	for (r = 0; r < n; r++)
		nd->s[r] = nd->arena.p ? nd->arena.p + start[r] : "";
}

static int eval_cast(xnode *nd, const xvals *a, uint32_t n)
{
	uint32_t r, start[XCHUNK];
	char tmp[40];

	nd->arena.n = 0;
	for (r = 0; r < n; r++) {
		uint32_t k = AT(a, r);
		int ok = VALID(a, r);
		if (!ok) {
			nd->valid[r] = 0;
			if (nd->type == XSTRING) {
				start[r] = (uint32_t)nd->arena.n;
				nd->sl[r] = 0;
			}
			continue;
		}
		switch (nd->type) {
		case XINT:
			if (a->type == XINT)
				nd->i[r] = a->i[k];
			else if (a->type == XFLOAT) {
				double d = a->f[k];
				ok = d == d && d >= -9223372036854775808.0 && d < 9223372036854775808.0;
				nd->i[r] = ok ? (int64_t)d : 0;
			} else if (a->type == XBOOL)
				nd->i[r] = a->b[k];
			else
				ok = !xparse_int(a->s[k], a->sl[k], &nd->i[r]);
			break;
		case XFLOAT:
			if (a->type == XSTRING)
				ok = !xparse_float(a->s[k], a->sl[k], &nd->f[r]);
			else
				nd->f[r] = a->type == XBOOL ? a->b[k] : num(a, r);
			break;
		case XBOOL:
			if (a->type == XSTRING)
				ok = !xparse_bool(a->s[k], a->sl[k], &nd->b[r]);
			else
				nd->b[r] = a->type == XBOOL ? a->b[k] : num(a, r) != 0;
			break;
		default: {
			const char *s = tmp;
			size_t len;
			if (a->type == XSTRING) {
				s = a->s[k];
				len = a->sl[k];
			} else if (a->type == XINT)
				len = xfmt_int(tmp, sizeof(tmp), a->i[k]);
			else if (a->type == XFLOAT)
				len = xfmt_double(tmp, sizeof(tmp), a->f[k]);
			else {
				s = a->b[k] ? "true" : "false";
				len = strlen(s);
			}
			start[r] = (uint32_t)nd->arena.n;
			nd->sl[r] = (uint32_t)len;
			if (xbuf_put(&nd->arena, s, len))
				return -1;
		}
		}
		nd->valid[r] = (uint8_t)ok;
	}
	if (nd->type == XSTRING)
		arena_strings(nd, start, n);
	nd->v.valid = nd->valid;
	return 0;
}

static int eval_node(xnode *nd, xnode *all, const xds *d, uint32_t start, uint32_t n)
{
	const xvals *a = nd->nargs ? &all[nd->args[0]].v : NULL;
	const xvals *b = nd->nargs > 1 ? &all[nd->args[1]].v : NULL;
	uint32_t r, k;

	memset(&nd->v, 0, sizeof(nd->v));
	nd->v.type = nd->type;
	nd->v.i = nd->i;
	nd->v.f = nd->f;
	nd->v.b = nd->b;
	nd->v.s = nd->s;
	nd->v.sl = nd->sl;
	if (nd->op == O_LIT || nd->allnull) {
		nd->v.scalar = 1;
		nd->v.i = &nd->li;
		nd->v.f = &nd->lf;
		nd->v.b = &nd->lb;
		nd->v.valid = nd->lvalid && !nd->allnull ? NULL : zero_valid;
		if (nd->allnull || nd->type != XSTRING) {
			nd->v.s = (const char *const *)empty_s;
			nd->v.sl = zero_u32;
		}
		return 0;
	}
	if (nd->op == O_COL) {
		const xcol *c = d->cols[nd->col];
		if (!d->sel && c->type != XSTRING) {
			nd->v.i = c->i ? c->i + start : NULL;
			nd->v.f = c->f ? c->f + start : NULL;
			nd->v.b = c->b ? c->b + start : NULL;
			nd->v.valid = c->valid ? c->valid + start : NULL;
			return 0;
		}
		for (r = 0; r < n; r++) {
			uint32_t p = xds_phys(d, start + r);
			switch (c->type) {
			case XINT: nd->i[r] = c->i[p]; break;
			case XFLOAT: nd->f[r] = c->f[p]; break;
			case XBOOL: nd->b[r] = c->b[p]; break;
			default:
				nd->s[r] = c->s ? c->s + c->off[p] : "";
				nd->sl[r] = c->off[p + 1] - c->off[p];
			}
			if (c->valid)
				nd->valid[r] = c->valid[p];
		}
		nd->v.valid = c->valid ? nd->valid : NULL;
		return 0;
	}
	switch (nd->op) {
	case O_ADD: case O_SUB: case O_MUL: case O_DIV: case O_MOD: case O_NEG:
		and_valid(nd, a, b, n);
		if (nd->op == O_MOD && nd->type == XINT && !nd->v.valid) {
			memset(nd->valid, 1, n);
			nd->v.valid = nd->valid;
		}
		eval_arith(nd, a, b, n);
		break;
	case O_EQ: case O_NE: case O_LT: case O_LE: case O_GT: case O_GE:
		and_valid(nd, a, b, n);
		eval_compare(nd, a, b, n);
		break;
	case O_AND: case O_OR: {
		int isand = nd->op == O_AND, anynull = 0;
		for (r = 0; r < n; r++) {
			int res = isand, unknown = 0;
			for (k = 0; k < nd->nargs; k++) {
				const xvals *v = &all[nd->args[k]].v;
				if (!VALID(v, r))
					unknown = 1;
				else if (v->b[AT(v, r)] != isand) {
					res = !isand;
					unknown = 0;
					break;
				}
			}
			nd->b[r] = (uint8_t)res;
			nd->valid[r] = (uint8_t)!unknown;
			anynull |= unknown;
		}
		nd->v.valid = anynull ? nd->valid : NULL;
		break;
	}
	case O_NOT:
		and_valid(nd, a, NULL, n);
		for (r = 0; r < n; r++)
			nd->b[r] = !a->b[AT(a, r)];
		break;
	case O_IS_NULL: case O_NOT_NULL:
		for (r = 0; r < n; r++)
			nd->b[r] = (uint8_t)(VALID(a, r) == (nd->op == O_NOT_NULL));
		nd->v.valid = NULL;
		break;
	case O_CONTAINS: case O_PREFIX: case O_SUFFIX:
		and_valid(nd, a, b, n);
		for (r = 0; r < n; r++) {
			const char *h = a->s[AT(a, r)], *nd2 = b->s[AT(b, r)];
			uint32_t hl = a->sl[AT(a, r)], nl = b->sl[AT(b, r)];
			if (nd->v.valid && !nd->valid[r]) {
				nd->b[r] = 0;
				continue;
			}
			nd->b[r] = (uint8_t)(nd->op == O_CONTAINS ? find(h, hl, nd2, nl)
					      : nl > hl ? 0
					      : nd->op == O_PREFIX ? !memcmp(h, nd2, nl)
					      : !memcmp(h + hl - nl, nd2, nl));
		}
		break;
	case O_LEN:
		and_valid(nd, a, NULL, n);
		for (r = 0; r < n; r++) {
			const unsigned char *s = (const unsigned char *)a->s[AT(a, r)];
			uint32_t sl = a->sl[AT(a, r)], cp = 0;
			if (nd->v.valid && !nd->valid[r]) {
				nd->i[r] = 0;
				continue;
			}
			for (k = 0; k < sl; k++)
				cp += (s[k] & 0xc0) != 0x80;
			nd->i[r] = cp;
		}
		break;
	case O_LOWER: case O_UPPER: {
		uint32_t st[XCHUNK];
		and_valid(nd, a, NULL, n);
		nd->arena.n = 0;
		for (r = 0; r < n; r++) {
			const char *s = a->s[AT(a, r)];
			uint32_t sl = (nd->v.valid && !nd->valid[r]) ? 0 : a->sl[AT(a, r)];
			st[r] = (uint32_t)nd->arena.n;
			nd->sl[r] = sl;
			if (xbuf_put(&nd->arena, s, sl))
				return -1;
			for (k = st[r]; k < st[r] + sl; k++) {
				char c = nd->arena.p[k];
				if (nd->op == O_LOWER && c >= 'A' && c <= 'Z')
					nd->arena.p[k] = (char)(c + 32);
				else if (nd->op == O_UPPER && c >= 'a' && c <= 'z')
					nd->arena.p[k] = (char)(c - 32);
			}
		}
		arena_strings(nd, st, n);
		break;
	}
	case O_CAST:
		return eval_cast(nd, a, n);
	}
	return 0;
}

int xexpr_eval(molt_task *t, xexpr *x, const xds *d, uint32_t start, uint32_t n)
{
	uint32_t k;

	for (k = 0; k < x->n; k++)
		if (eval_node(&x->nodes[k], x->nodes, d, start, n))
			return molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory evaluating an expression");
	return 0;
}
