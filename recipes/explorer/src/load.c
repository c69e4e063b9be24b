/* explorer: loading CSV (RFC 4180), JSON (an array of objects, each row
 * parsed with cJSON) and Arrow IPC into columns, sliced per row. Pass 1
 * finds the rows (and cells) and infers types; pass 2 converts and
 * validates. */
#include "explorer.h"

#include "cJSON.h"
#include "molt/arrow.h"

#include <stdlib.h>
#include <string.h>

enum { F_CSV, F_JSON, F_ARROW };
/* Type candidates (CSV) and kinds seen (JSON). */
enum { C_INT = 1, C_FLOAT = 2, C_BOOL = 4 };
enum { K_INT = 1, K_FLOAT = 2, K_BOOL = 4, K_STRING = 8, K_OTHER = 16 };
#define QUOTED_ESC 0x80000000u /* a CSV cell with "" inside: unescape it */
#define QUOTED 0x40000000u     /* a quoted CSV cell: never null */
#define LEN_MASK 0x3fffffffu
#define JSON_DEPTH_MAX 64
#define FOUND_MAX 48

typedef struct {
	char *name;
	uint32_t namelen;
	int cand, kinds, has_null, has_value;
	uint32_t present;  /* JSON: rows that have the key */
	int src;           /* the data column a schema column reads (-1: none) */
	xtype type;
	int nullable;
} lcol;

typedef struct {
	uint32_t row, col;
	char expected[24];
	char found[FOUND_MAX + 4];
} lerr;

struct xload {
	int format;
	const char *data;
	char path[64];      /* the request field, for messages */
	size_t len, pos;
	const xschema_col *schema;
	uint32_t nschema, max_errors;
	int phase;          /* 0: pass 1, 1: set up pass 2, 2: pass 2, 3: done */
	uint32_t line;      /* CSV: the line pos is on (1-based) */
	uint32_t rows, done_rows;
	uint32_t ndata;     /* columns in the data */
	lcol *dcols;        /* the data's columns */
	uint32_t ncols;     /* columns kept (the schema's, or the data's) */
	lcol *cols;
	/* CSV cells: start and length|flags, ndata a row */
	uint32_t *cell;
	size_t ncells, cellcap;
	/* JSON rows: start, length */
	uint32_t *span;
	size_t nspans, spancap;
	int *jmap;          /* JSON: data column -> kept column, -1 */
	/* Arrow */
	molt_arrow_reader *ar;
	const molt_arrow_batch *batch;
	uint32_t batch_row;
	/* pass 2 */
	xds *ds;
	xbuf *text;         /* per kept column: string bytes */
	lerr *errs;
	uint32_t nerrs, error_count;
	xbuf tmp;
};

static int grow(void *pp, size_t *cap, size_t need, size_t size)
{
	void *q;
	size_t c = *cap ? *cap : 1024;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	if (!(q = realloc(*(void **)pp, c * size)))
		return -1;
	*(void **)pp = q;
	*cap = c;
	return 0;
}

xload *xload_new(molt_task *t, int format, const char *data, size_t len,
		 const xschema_col *schema, uint32_t nschema, uint32_t max_errors, const char *path)
{
	xload *l = calloc(1, sizeof(*l));

	if (!l) {
		molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
		return NULL;
	}
	l->format = format;
	l->data = data;
	l->len = len;
	l->schema = schema;
	l->nschema = nschema;
	l->max_errors = max_errors;
	xpath(l->path, sizeof(l->path), path, "", 0);
	l->line = 1;
	if (!(l->errs = calloc(max_errors ? max_errors : 1, sizeof(*l->errs)))) {
		free(l);
		molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory");
		return NULL;
	}
	return l;
}

void xload_free(xload *l)
{
	uint32_t i;

	if (!l)
		return;
	for (i = 0; i < l->ndata; i++)
		free(l->dcols[i].name);
	free(l->dcols);
	if (l->cols != l->dcols)
		free(l->cols);
	free(l->cell);
	free(l->span);
	free(l->jmap);
	molt_arrow_reader_free(l->ar);
	xds_unref(l->ds);
	if (l->text)
		for (i = 0; i < l->ncols; i++)
			xbuf_free(&l->text[i]);
	free(l->text);
	free(l->errs);
	xbuf_free(&l->tmp);
	free(l);
}

static int oom(molt_task *t)
{
	return molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory loading the dataset");
}

/* Adds a data column; -1 on a duplicate name (CSV) or no memory. */
static int add_dcol(xload *l, const char *name, size_t n)
{
	lcol *c;
	size_t cap = l->ndata;

	if (!(c = realloc(l->dcols, (cap + 1) * sizeof(*c))))
		return -1;
	l->dcols = c;
	c = &l->dcols[l->ndata];
	memset(c, 0, sizeof(*c));
	if (!(c->name = malloc(n + 1)))
		return -1;
	memcpy(c->name, name, n);
	c->name[n] = '\0';
	c->namelen = (uint32_t)n;
	c->cand = C_INT | C_FLOAT | C_BOOL;
	l->ndata++;
	return 0;
}

static int find_dcol(const xload *l, const char *name, size_t n, uint32_t guess)
{
	uint32_t i;

	if (guess < l->ndata && l->dcols[guess].namelen == n && !memcmp(l->dcols[guess].name, name, n))
		return (int)guess;
	for (i = 0; i < l->ndata; i++)
		if (l->dcols[i].namelen == n && !memcmp(l->dcols[i].name, name, n))
			return (int)i;
	return -1;
}

/* Records a validation error: counted always, listed up to max_errors. */
static void add_error(xload *l, uint32_t row, uint32_t col, const char *expected,
		      const char *found, size_t n)
{
	lerr *e;
	size_t k;

	l->error_count++;
	if (l->nerrs >= l->max_errors)
		return;
	e = &l->errs[l->nerrs++];
	e->row = row;
	e->col = col;
	k = strlen(expected);
	if (k >= sizeof(e->expected))
		k = sizeof(e->expected) - 1;
	memcpy(e->expected, expected, k);
	e->expected[k] = '\0';
	/* Cut on a character boundary; mark the cut. */
	k = n > FOUND_MAX ? FOUND_MAX : n;
	while (k < n && k && ((unsigned char)found[k] & 0xc0) == 0x80)
		k--;
	memcpy(e->found, found, k);
	if (k < n) {
		memcpy(e->found + k, "...", 3);
		k += 3;
	}
	e->found[k] = '\0';
	for (n = 0; n < k; n++)
		if ((unsigned char)e->found[n] < 0x20)
			e->found[n] = ' ';
}

/* ---- CSV ---------------------------------------------------------------- */

/* Reads one record at l->pos into the cell list (ndata cells, or the
 * header when ndata is 0). Returns 1 for a record, 0 at the end, -1 failed. */
static int csv_record(molt_task *t, xload *l, int header)
{
	const char *p = l->data;
	size_t n = l->len, i = l->pos;
	uint32_t fields = 0, start_line = l->line;

	/* Blank lines are skipped. */
	while (i < n && (p[i] == '\n' || (p[i] == '\r' && i + 1 < n && p[i + 1] == '\n'))) {
		i += p[i] == '\r' ? 2 : 1;
		l->line++;
		start_line = l->line;
	}
	if (i >= n) {
		l->pos = i;
		return 0;
	}
	for (;;) {
		size_t s = i, e;
		uint32_t flags = 0;
		if (i < n && p[i] == '"') {
			flags = QUOTED;
			s = ++i;
			for (;;) {
				if (i >= n)
					return molt_fail(t, MOLT_INVALID_INPUT, l->path,
							 "CSV: the quoted field that starts on line %u "
							 "(byte %zu) is never closed: expected a closing \"",
							 (unsigned)start_line, s - 1);
				if (p[i] == '"') {
					if (i + 1 < n && p[i + 1] == '"') {
						flags |= QUOTED_ESC;
						i += 2;
						continue;
					}
					break;
				}
				if (p[i] == '\n')
					l->line++;
				i++;
			}
			e = i++;
			if (i < n && p[i] != ',' && p[i] != '\n' && !(p[i] == '\r' && i + 1 < n && p[i + 1] == '\n'))
				return molt_fail(t, MOLT_INVALID_INPUT, l->path,
						 "CSV line %u, byte %zu: expected a comma or a line end "
						 "after the closing quote, found '%.*s'",
						 (unsigned)l->line, i, 1, p + i);
		} else {
			while (i < n && p[i] != ',' && p[i] != '\n' &&
			       !(p[i] == '\r' && i + 1 < n && p[i + 1] == '\n'))
				i++;
			e = i;
		}
		if (e - s > LEN_MASK)
			return molt_fail(t, MOLT_INVALID_INPUT, l->path, "CSV line %u: a field over 1 GiB",
					 (unsigned)l->line);
		if (header) {
			const char *nm = p + s;
			size_t nl = e - s;
			char gen[24];
			if (flags & QUOTED_ESC) {
				size_t k;
				l->tmp.n = 0;
				for (k = s; k < e; k++)
					if (!(p[k] == '"' && k + 1 < e && p[k + 1] == '"' && (k++, 0)) &&
					    xbuf_put(&l->tmp, p + k, 1))
						return oom(t);
				nm = l->tmp.p;
				nl = l->tmp.n;
			}
			if (!nl) {
				xpath(gen, sizeof(gen), "", "column_%u", fields + 1);
				nm = gen;
				nl = strlen(gen);
			}
			if (find_dcol(l, nm, nl, fields) >= 0)
				return molt_fail(t, MOLT_INVALID_INPUT, l->path,
						 "CSV header: column %u repeats the name '%.*s'; "
						 "expected distinct column names",
						 (unsigned)fields + 1, (int)(nl > 64 ? 64 : nl), nm);
			if (l->ndata >= XCOLS_MAX)
				return molt_fail(t, MOLT_INVALID_INPUT, l->path,
						 "CSV header: expected at most %u columns", XCOLS_MAX);
			if (add_dcol(l, nm, nl))
				return oom(t);
		} else {
			if (fields >= l->ndata)
				return molt_fail(t, MOLT_INVALID_INPUT, l->path,
						 "CSV line %u: expected %u fields (as in the header), found more",
						 (unsigned)start_line, (unsigned)l->ndata);
			if (grow(&l->cell, &l->cellcap, l->ncells + 2, 4))
				return oom(t);
			l->cell[l->ncells++] = (uint32_t)s;
			l->cell[l->ncells++] = (uint32_t)(e - s) | flags;
		}
		fields++;
		if (i >= n)
			break;
		if (p[i] == ',') {
			i++;
			continue;
		}
		i += p[i] == '\r' ? 2 : 1;
		l->line++;
		break;
	}
	l->pos = i;
	if (!header && fields != l->ndata)
		return molt_fail(t, MOLT_INVALID_INPUT, l->path,
				 "CSV line %u: expected %u fields (as in the header), found %u",
				 (unsigned)start_line, (unsigned)l->ndata, (unsigned)fields);
	return 1;
}

/* Pass 1 inference for the cells of the last record. */
static void csv_infer(xload *l)
{
	const uint32_t *cell = l->cell + l->ncells - 2 * (size_t)l->ndata;
	uint32_t j;

	for (j = 0; j < l->ndata; j++) {
		lcol *c = &l->dcols[j];
		const char *s = l->data + cell[2 * j];
		uint32_t n = cell[2 * j + 1] & LEN_MASK;
		int64_t iv;
		double fv;
		uint8_t bv;
		if (!n && !(cell[2 * j + 1] & QUOTED)) {
			c->has_null = 1;
			continue;
		}
		c->has_value = 1;
		if ((c->cand & C_INT) && xparse_int(s, n, &iv))
			c->cand &= ~C_INT;
		if ((c->cand & C_FLOAT) && !(c->cand & C_INT) && xparse_float(s, n, &fv))
			c->cand &= ~C_FLOAT;
		if ((c->cand & C_BOOL) && xparse_bool(s, n, &bv))
			c->cand &= ~C_BOOL;
	}
}

static int csv_pass1(molt_task *t, xload *l)
{
	int rc;

	if (l->pos == 0 && l->len >= 3 && !memcmp(l->data, "\xef\xbb\xbf", 3))
		l->pos = 3;
	if (!l->ndata) {
		if ((rc = csv_record(t, l, 1)) < 0)
			return MOLT_FAILED;
		if (rc == 0)
			return molt_fail(t, MOLT_INVALID_INPUT, l->path,
					 "CSV: expected a header line naming the columns, found no text");
	}
	while (molt_step_take(t, l->ndata)) {
		if ((rc = csv_record(t, l, 0)) < 0)
			return MOLT_FAILED;
		if (rc == 0)
			return MOLT_DONE;
		if (++l->rows > XROWS_MAX)
			return molt_fail(t, MOLT_INVALID_INPUT, l->path, "expected at most %u rows",
					 XROWS_MAX);
		if (!l->schema)
			csv_infer(l);
	}
	return MOLT_PENDING;
}

/* ---- JSON --------------------------------------------------------------- */

static size_t skip_ws(const char *p, size_t n, size_t i)
{
	while (i < n && (p[i] == ' ' || p[i] == '\t' || p[i] == '\n' || p[i] == '\r'))
		i++;
	return i;
}

static const char *json_found(const char *p, size_t n, size_t i)
{
	if (i >= n)
		return "the end of the text";
	switch (p[i]) {
	case '[': return "an array";
	case '"': return "a string";
	case 't': case 'f': return "a bool";
	case 'n': return "null";
	case ',': return "','";
	case ']': return "']'";
	case '}': return "'}'";
	default: return (p[i] == '-' || (p[i] >= '0' && p[i] <= '9')) ? "a number" : "invalid JSON";
	}
}

/* Finds the end of the object at l->pos (just past its '}'). */
static int json_object_end(molt_task *t, xload *l, size_t *end)
{
	const char *p = l->data;
	size_t n = l->len, i = l->pos;
	int depth = 0, in_str = 0;

	for (; i < n; i++) {
		char c = p[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"') {
			in_str = 1;
		} else if (c == '{' || c == '[') {
			if (++depth > JSON_DEPTH_MAX)
				return molt_fail(t, MOLT_INVALID_INPUT, l->path,
						 "JSON row %u (byte %zu): expected values nested at most %d "
						 "deep", (unsigned)l->rows, i, JSON_DEPTH_MAX);
		} else if (c == '}' || c == ']') {
			if (--depth == 0) {
				*end = i + 1;
				return 0;
			}
		}
	}
	return molt_fail(t, MOLT_INVALID_INPUT, l->path,
			 "JSON row %u (byte %zu): the object is never closed: the text ends inside it",
			 (unsigned)l->rows, l->pos);
}

static int json_kind(const cJSON *v)
{
	if (cJSON_IsNumber(v)) {
		double d = v->valuedouble;
		return d >= -9007199254740992.0 && d <= 9007199254740992.0 && d == (double)(int64_t)d
			       ? K_INT
			       : K_FLOAT;
	}
	if (cJSON_IsBool(v))
		return K_BOOL;
	if (cJSON_IsString(v))
		return K_STRING;
	if (cJSON_IsNull(v))
		return 0;
	return K_OTHER;
}

static cJSON *json_parse_row(molt_task *t, xload *l, uint32_t row, size_t at, size_t len)
{
	const char *end = NULL;
	cJSON *o = cJSON_ParseWithLengthOpts(l->data + at, len, &end, 0);

	if (!o) {
		size_t b = end ? (size_t)(end - l->data) : at;
		molt_fail(t, MOLT_INVALID_INPUT, l->path,
			  "JSON row %u: invalid JSON at byte %zu (the row starts at byte %zu)",
			  (unsigned)row, b, at);
	}
	return o;
}

static int json_pass1(molt_task *t, xload *l)
{
	const char *p = l->data;
	size_t n = l->len, end = 0;

	if (l->pos == 0) {
		size_t i = l->len >= 3 && !memcmp(p, "\xef\xbb\xbf", 3) ? 3 : 0;
		i = skip_ws(p, n, i);
		if (i >= n || p[i] != '[')
			return molt_fail(t, MOLT_INVALID_INPUT, l->path,
					 "JSON: expected an array of objects, found %s at byte %zu",
					 json_found(p, n, i), i);
		i = skip_ws(p, n, i + 1);
		if (i < n && p[i] == ']') {
			i = skip_ws(p, n, i + 1);
			if (i < n)
				return molt_fail(t, MOLT_INVALID_INPUT, l->path,
						 "JSON: expected the end of the text after the array, "
						 "found more at byte %zu", i);
			l->pos = n;
			return MOLT_DONE;
		}
		l->pos = i;
	}
	while (l->pos < n && molt_step_take(t, 1)) {
		size_t i = l->pos;
		cJSON *o, *m;
		if (p[i] != '{')
			return molt_fail(t, MOLT_INVALID_INPUT, l->path,
					 "JSON row %u: expected an object, found %s at byte %zu",
					 (unsigned)l->rows, json_found(p, n, i), i);
		if (json_object_end(t, l, &end))
			return MOLT_FAILED;
		if (end - i > UINT32_MAX || l->rows >= XROWS_MAX)
			return molt_fail(t, MOLT_INVALID_INPUT, l->path, "JSON: expected at most %u rows",
					 XROWS_MAX);
		if (grow(&l->span, &l->spancap, l->nspans + 2, 4))
			return oom(t);
		l->span[l->nspans++] = (uint32_t)i;
		l->span[l->nspans++] = (uint32_t)(end - i);
		if (!(o = json_parse_row(t, l, l->rows, i, end - i)))
			return MOLT_FAILED;
		if (!l->schema) {
			uint32_t k = 0;
			for (m = o->child; m; m = m->next, k++) {
				size_t kl = strlen(m->string);
				int j = find_dcol(l, m->string, kl, k);
				if (j < 0) {
					if (l->ndata >= XCOLS_MAX) {
						cJSON_Delete(o);
						return molt_fail(t, MOLT_INVALID_INPUT, l->path,
								 "JSON: expected at most %u distinct keys",
								 XCOLS_MAX);
					}
					if (add_dcol(l, m->string, kl)) {
						cJSON_Delete(o);
						return oom(t);
					}
					j = (int)l->ndata - 1;
				}
				l->dcols[j].present++;
				if (!(l->dcols[j].kinds |= json_kind(m), json_kind(m)))
					l->dcols[j].has_null = 1;
				else
					l->dcols[j].has_value = 1;
			}
		}
		cJSON_Delete(o);
		l->rows++;
		i = skip_ws(p, n, end);
		if (i < n && p[i] == ',') {
			l->pos = skip_ws(p, n, i + 1);
			if (l->pos < n && p[l->pos] == ']')
				return molt_fail(t, MOLT_INVALID_INPUT, l->path,
						 "JSON: expected a row after the comma at byte %zu, found ']'", i);
			continue;
		}
		if (i < n && p[i] == ']') {
			i = skip_ws(p, n, i + 1);
			if (i < n)
				return molt_fail(t, MOLT_INVALID_INPUT, l->path,
						 "JSON: expected the end of the text after the array, "
						 "found more at byte %zu", i);
			l->pos = n;
			return MOLT_DONE;
		}
		return molt_fail(t, MOLT_INVALID_INPUT, l->path,
				 "JSON row %u: expected ',' or ']' after the object, found %s at byte %zu",
				 (unsigned)l->rows - 1, json_found(p, n, i), i);
	}
	if (l->pos >= n)
		return molt_fail(t, MOLT_INVALID_INPUT, l->path,
				 "JSON: the array is never closed: expected ']' at byte %zu", n);
	return MOLT_PENDING;
}

/* ---- Arrow -------------------------------------------------------------- */

static xtype arrow_xtype(molt_arrow_type a)
{
	switch (a) {
	case MOLT_ARROW_FLOAT32:
	case MOLT_ARROW_FLOAT64: return XFLOAT;
	case MOLT_ARROW_BOOL: return XBOOL;
	case MOLT_ARROW_UTF8: return XSTRING;
	default: return XINT;
	}
}

static int arrow_fail(molt_task *t, xload *l, const molt_arrow_error *e)
{
	return molt_fail(t, e->code == MOLT_ARROW_ENOMEM ? MOLT_INTERNAL_ERROR : MOLT_INVALID_INPUT,
			 l->path, "Arrow: %s", e->text);
}

static int arrow_open(molt_task *t, xload *l)
{
	molt_arrow_error err;
	const molt_arrow_field *f;
	size_t i, n;

	const char *p = l->data;
	size_t len = l->len;
	unsigned flags = MOLT_ARROW_NARROW;

	/* The IPC file format: "ARROW1\0\0", the stream's messages, a footer,
	 * its int32 length and "ARROW1". Read the messages as a stream (a file
	 * may omit the end-of-stream marker). */
	if (len >= 6 && !memcmp(p, "ARROW1", 6)) {
		uint32_t foot;
		if (len < 8 + 10 || memcmp(p + len - 6, "ARROW1", 6))
			return molt_fail(t, MOLT_INVALID_INPUT, l->path,
					 "Arrow file: expected ARROW1 at its end too (%zu bytes)", len);
		foot = molt_arrow__ld32((const uint8_t *)p + len - 10);
		if (foot > len - 18)
			return molt_fail(t, MOLT_INVALID_INPUT, l->path,
					 "Arrow file: the footer length %u runs past its start",
					 (unsigned)foot);
		len = len - 10 - foot - 8;
		p += 8;
		flags |= MOLT_ARROW_ALLOW_NO_EOS;
	}
	if (molt_arrow_reader_new(&l->ar, p, len, flags, &err))
		return arrow_fail(t, l, &err);
	n = molt_arrow_reader_ncolumns(l->ar);
	f = molt_arrow_reader_fields(l->ar);
	if (n > XCOLS_MAX)
		return molt_fail(t, MOLT_INVALID_INPUT, l->path, "Arrow: expected at most %u columns",
				 XCOLS_MAX);
	for (i = 0; i < n; i++) {
		if (find_dcol(l, f[i].name, strlen(f[i].name), (uint32_t)i) >= 0)
			return molt_fail(t, MOLT_INVALID_INPUT, l->path,
					 "Arrow: column %zu repeats the name '%s'", i, f[i].name);
		if (add_dcol(l, f[i].name, strlen(f[i].name)))
			return oom(t);
		l->dcols[i].type = arrow_xtype(f[i].type);
		l->dcols[i].nullable = f[i].nullable;
	}
	return 0;
}

/* ---- pass 2 ------------------------------------------------------------- */

/* Sets up the kept columns: the schema's (matched by name) or the data's
 * with their inferred types. */
static int shape(molt_task *t, xload *l)
{
	uint32_t i;

	if (l->schema) {
		if (!(l->cols = calloc(l->nschema ? l->nschema : 1, sizeof(*l->cols))))
			return oom(t);
		l->ncols = l->nschema;
		for (i = 0; i < l->nschema; i++) {
			const xschema_col *s = &l->schema[i];
			lcol *c = &l->cols[i];
			c->name = (char *)s->name;
			c->namelen = s->namelen;
			c->type = s->type;
			c->nullable = s->nullable;
			c->src = find_dcol(l, s->name, s->namelen, i);
			if (c->src < 0 && l->format != F_JSON) {
				char path[64];
				xpath(path, sizeof(path), "", "schema[%u].name", i);
				return molt_fail(t, MOLT_INVALID_INPUT, path,
						 "expected a column of the data, found '%.*s', which "
						 "the data does not have",
						 (int)(s->namelen > 64 ? 64 : s->namelen), s->name);
			}
			if (l->format == F_ARROW && c->src >= 0 && l->dcols[c->src].type != c->type &&
			    !(c->type == XFLOAT && l->dcols[c->src].type == XINT)) {
				char path[64];
				xpath(path, sizeof(path), "", "schema[%u].type", i);
				return molt_fail(t, MOLT_INVALID_INPUT, path,
						 "column '%s' is %s in the Arrow stream, which can't be "
						 "read as %s",
						 l->dcols[c->src].name, xtype_name(l->dcols[c->src].type),
						 xtype_name(c->type));
			}
		}
	} else {
		l->cols = l->dcols;
		l->ncols = l->ndata;
		for (i = 0; i < l->ndata; i++) {
			lcol *c = &l->dcols[i];
			c->src = (int)i;
			if (l->format == F_CSV) {
				c->type = !c->has_value ? XSTRING
					  : (c->cand & C_INT) ? XINT
					  : (c->cand & C_FLOAT) ? XFLOAT
					  : (c->cand & C_BOOL) ? XBOOL : XSTRING;
				c->nullable = c->has_null;
			} else if (l->format == F_JSON) {
				int k = c->kinds;
				c->type = k == K_INT ? XINT
					  : k && !(k & ~(K_INT | K_FLOAT)) ? XFLOAT
					  : k == K_BOOL ? XBOOL : XSTRING;
				c->nullable = c->has_null || c->present < l->rows;
			}
		}
	}
	return 0;
}

static int alloc_columns(molt_task *t, xload *l, uint32_t rows)
{
	uint32_t i;

	if (!(l->ds = xds_new(l->ncols)) || !(l->text = calloc(l->ncols ? l->ncols : 1, sizeof(xbuf))))
		return oom(t);
	l->ds->rows = l->ds->nphys = rows;
	for (i = 0; i < l->ncols; i++) {
		lcol *s = &l->cols[i];
		xcol *c = xcol_new(s->name, s->namelen, s->type, rows);
		size_t n = rows ? rows : 1;
		if (!c)
			return oom(t);
		l->ds->cols[i] = c;
		c->nullable = s->nullable;
		if (!(c->valid = malloc(n)))
			return oom(t);
		if ((s->type == XINT && !(c->i = malloc(n * 8))) ||
		    (s->type == XFLOAT && !(c->f = malloc(n * 8))) ||
		    (s->type == XBOOL && !(c->b = malloc(n))) ||
		    (s->type == XSTRING && !(c->off = malloc((n + 1) * 4))))
			return oom(t);
		if (c->off)
			c->off[0] = 0;
	}
	return 0;
}

/* Row r of kept column j is null (no error: the caller reports any). */
static void set_null(xload *l, uint32_t j, uint32_t r)
{
	xcol *c = l->ds->cols[j];

	c->valid[r] = 0;
	if (c->i)
		c->i[r] = 0;
	if (c->f)
		c->f[r] = 0;
	if (c->b)
		c->b[r] = 0;
	if (c->off)
		c->off[r + 1] = (uint32_t)l->text[j].n;
}

static void null_error(xload *l, uint32_t j, uint32_t r, const char *found)
{
	char exp[24];
	const char *tn = xtype_name(l->ds->cols[j]->type);
	size_t k = strlen(tn);

	memcpy(exp, tn, k);
	memcpy(exp + k, " (not null)", 12);
	add_error(l, r, j, exp, found, strlen(found));
}

/* Stores a value given as text (CSV, or JSON text for a string column). */
static int put_text(xload *l, uint32_t j, uint32_t r, const char *s, size_t n, int null,
		    const char *found_null)
{
	xcol *c = l->ds->cols[j];
	int ok = 1;

	if (null) {
		if (!c->nullable)
			null_error(l, j, r, found_null);
		set_null(l, j, r);
		return 0;
	}
	switch (c->type) {
	case XINT: ok = !xparse_int(s, n, &c->i[r]); break;
	case XFLOAT: ok = !xparse_float(s, n, &c->f[r]); break;
	case XBOOL: ok = !xparse_bool(s, n, &c->b[r]); break;
	default:
		if (xbuf_put(&l->text[j], s, n))
			return -1;
	}
	if (!ok) {
		add_error(l, r, j, xtype_name(c->type), s, n);
		set_null(l, j, r);
		return 0;
	}
	c->valid[r] = 1;
	if (c->off)
		c->off[r + 1] = (uint32_t)l->text[j].n;
	return 0;
}

static int csv_pass2(molt_task *t, xload *l)
{
	uint64_t w = l->ncols ? l->ncols : 1;
	uint64_t k = molt_step_take(t, (uint64_t)(l->rows - l->done_rows) * w);

	/* k / w rows now; at least one whenever any budget was granted. */
	for (k = k ? (k + w - 1) / w : 0; k && l->done_rows < l->rows; k--) {
		uint32_t r = l->done_rows++, j;
		const uint32_t *cell = l->cell + 2 * (size_t)r * l->ndata;
		for (j = 0; j < l->ncols; j++) {
			int src = l->cols[j].src;
			uint32_t at = cell[2 * src], fl = cell[2 * src + 1], n = fl & LEN_MASK;
			const char *s = l->data + at;
			if (fl & QUOTED_ESC) {
				uint32_t q;
				l->tmp.n = 0;
				for (q = 0; q < n; q++) {
					if (xbuf_put(&l->tmp, s + q, 1))
						return oom(t);
					if (s[q] == '"')
						q++;
				}
				s = l->tmp.p;
				n = (uint32_t)l->tmp.n;
			}
			if (put_text(l, j, r, s, n, !n && !(fl & QUOTED), "empty"))
				return oom(t);
		}
	}
	return l->done_rows < l->rows ? MOLT_PENDING : MOLT_DONE;
}

static int json_put(molt_task *t, xload *l, uint32_t j, uint32_t r, const cJSON *v)
{
	xcol *c = l->ds->cols[j];
	int kind = v ? json_kind(v) : 0;
	char *text;

	if (!v || cJSON_IsNull(v))
		return put_text(l, j, r, NULL, 0, 1, v ? "null" : "missing") ? oom(t) : 0;
	if (c->type == XSTRING && kind == K_STRING)
		return put_text(l, j, r, v->valuestring, strlen(v->valuestring), 0, NULL) ? oom(t) : 0;
	if ((c->type == XINT && kind == K_INT) || (c->type == XFLOAT && (kind & (K_INT | K_FLOAT))) ||
	    (c->type == XBOOL && kind == K_BOOL)) {
		if (c->type == XINT)
			c->i[r] = (int64_t)v->valuedouble;
		else if (c->type == XFLOAT)
			c->f[r] = v->valuedouble;
		else
			c->b[r] = cJSON_IsTrue(v);
		c->valid[r] = 1;
		return 0;
	}
	/* A string column takes any value as its JSON text; other mismatches
	 * are errors quoting that text. */
	if (!(text = cJSON_PrintUnformatted(v)))
		return oom(t);
	if (c->type == XSTRING) {
		if (put_text(l, j, r, text, strlen(text), 0, NULL)) {
			cJSON_free(text);
			return oom(t);
		}
	} else {
		add_error(l, r, j, xtype_name(c->type), text, strlen(text));
		set_null(l, j, r);
	}
	cJSON_free(text);
	return 0;
}

static int json_pass2(molt_task *t, xload *l)
{
	uint32_t j;

	if (!l->jmap) {
		if (!(l->jmap = malloc((l->ndata ? l->ndata : 1) * sizeof(int))))
			return oom(t);
		for (j = 0; j < l->ndata; j++)
			l->jmap[j] = -1;
		for (j = 0; j < l->ncols; j++)
			if (l->cols[j].src >= 0)
				l->jmap[l->cols[j].src] = (int)j;
	}
	while (l->done_rows < l->rows && molt_step_take(t, l->ncols ? l->ncols : 1)) {
		uint32_t r = l->done_rows++, k = 0;
		const cJSON **seen;
		cJSON *o = json_parse_row(t, l, r, l->span[2 * r], l->span[2 * r + 1]), *m;
		if (!o)
			return MOLT_FAILED;
		if (!(seen = calloc(l->ncols ? l->ncols : 1, sizeof(*seen)))) {
			cJSON_Delete(o);
			return oom(t);
		}
		for (m = o->child; m; m = m->next, k++) {
			int d;
			if (l->schema) {
				/* Keys are matched against the schema directly. */
				for (d = 0; d < (int)l->ncols; d++)
					if (l->cols[d].namelen == strlen(m->string) &&
					    !memcmp(l->cols[d].name, m->string, l->cols[d].namelen))
						break;
				if (d < (int)l->ncols)
					seen[d] = m;
			} else if ((d = find_dcol(l, m->string, strlen(m->string), k)) >= 0 && l->jmap[d] >= 0) {
				seen[l->jmap[d]] = m;
			}
		}
		for (j = 0; j < l->ncols; j++)
			if (json_put(t, l, j, r, seen[j])) {
				free(seen);
				cJSON_Delete(o);
				return MOLT_FAILED;
			}
		free(seen);
		cJSON_Delete(o);
	}
	return l->done_rows < l->rows ? MOLT_PENDING : MOLT_DONE;
}

/* Arrow: makes room for `rows` rows in every column. */
static int grow_rows(molt_task *t, xload *l, uint32_t rows)
{
	uint32_t j, cap = l->ds->nphys ? l->ds->nphys : 1024;
	void *q;

	while (cap < rows)
		cap = cap > UINT32_MAX / 2 ? rows : cap * 2;
	for (j = 0; j < l->ncols; j++) {
		xcol *c = l->ds->cols[j];
		if (!(q = realloc(c->valid, cap)))
			return oom(t);
		c->valid = q;
		if (c->i && (q = realloc(c->i, (size_t)cap * 8)))
			c->i = q;
		else if (c->f && (q = realloc(c->f, (size_t)cap * 8)))
			c->f = q;
		else if (c->b && (q = realloc(c->b, cap)))
			c->b = q;
		else if (c->off && (q = realloc(c->off, ((size_t)cap + 1) * 4)))
			c->off = q;
		else
			return oom(t);
	}
	l->ds->nphys = cap;
	return 0;
}

static int arrow_pass(molt_task *t, xload *l)
{
	const molt_arrow_field *f = molt_arrow_reader_fields(l->ar);
	molt_arrow_error err;
	int rc;

	for (;;) {
		uint32_t j, r, n;
		if (!l->batch || l->batch_row >= l->batch->length) {
			if ((rc = molt_arrow_reader_next(l->ar, &l->batch, &err)) < 0)
				return arrow_fail(t, l, &err);
			l->batch_row = 0;
			if (rc == 0)
				return MOLT_DONE;
			if ((uint64_t)l->rows + (uint64_t)l->batch->length > XROWS_MAX)
				return molt_fail(t, MOLT_INVALID_INPUT, l->path, "expected at most %u rows",
						 XROWS_MAX);
			if (l->ds->nphys < l->rows + l->batch->length && grow_rows(t, l, l->rows + (uint32_t)l->batch->length))
				return MOLT_FAILED;
			continue;
		}
		n = (uint32_t)(l->batch->length - l->batch_row);
		if (n > XCHUNK)
			n = XCHUNK;
		if (!molt_step_take(t, (uint64_t)n * (l->ncols ? l->ncols : 1)))
			return MOLT_PENDING;
		for (j = 0; j < l->ncols; j++) {
			xcol *c = l->ds->cols[j];
			int src = l->cols[j].src;
			const molt_arrow_column *a = &l->batch->columns[src];
			molt_arrow_type at = f[src].type;
			for (r = 0; r < n; r++) {
				int64_t br = l->batch_row + r;
				uint32_t row = l->rows + r;
				int ok = molt_arrow_is_valid(a, br);
				c->valid[row] = (uint8_t)ok;
				if (!ok) {
					if (!c->nullable)
						null_error(l, j, row, "null");
					set_null(l, j, row);
					continue;
				} else if (c->type == XINT) {
					c->i[row] = molt_arrow_int_at(a, at, br);
				} else if (c->type == XFLOAT) {
					c->f[row] = at == MOLT_ARROW_FLOAT32 || at == MOLT_ARROW_FLOAT64
							    ? molt_arrow_float_at(a, at, br)
							    : (double)molt_arrow_int_at(a, at, br);
				} else if (c->type == XBOOL) {
					c->b[row] = (uint8_t)molt_arrow_bool_at(a, br);
				} else {
					size_t sl;
					const char *s = molt_arrow_utf8_at(a, br, &sl);
					if (xbuf_put(&l->text[j], s, sl))
						return oom(t);
				}
				if (c->off)
					c->off[row + 1] = (uint32_t)l->text[j].n;
			}
		}
		l->batch_row += n;
		l->rows += n;
	}
}

/* Frees validity arrays without a null, and (inferring) marks those
 * columns not nullable. */
static void settle(xload *l)
{
	uint32_t j, r;

	l->ds->rows = l->ds->nphys = l->rows;
	for (j = 0; j < l->ncols; j++) {
		xcol *c = l->ds->cols[j];
		c->n = l->rows;
		for (r = 0; r < l->rows && c->valid[r]; r++)
			;
		if (r == l->rows) {
			free(c->valid);
			c->valid = NULL;
			if (!l->schema)
				c->nullable = 0;
		} else if (!l->schema) {
			c->nullable = 1;
		}
		if (c->type == XSTRING) {
			c->s = l->text[j].p;
			l->text[j].p = NULL;
			l->text[j].n = l->text[j].cap = 0;
		}
	}
}

int xload_step(molt_task *t, xload *l)
{
	int rc;

	switch (l->phase) {
	case 0:
		if (l->format == F_ARROW) {
			if (arrow_open(t, l) || shape(t, l) || alloc_columns(t, l, 0))
				return MOLT_FAILED;
			l->phase = 2;
			return MOLT_PENDING;
		}
		rc = l->format == F_CSV ? csv_pass1(t, l) : json_pass1(t, l);
		if (rc != MOLT_DONE)
			return rc;
		if (shape(t, l) || alloc_columns(t, l, l->rows))
			return MOLT_FAILED;
		l->phase = 2;
		return MOLT_PENDING;
	case 2:
		rc = l->format == F_ARROW ? arrow_pass(t, l)
		     : l->format == F_CSV ? csv_pass2(t, l) : json_pass2(t, l);
		if (rc != MOLT_DONE)
			return rc;
		settle(l);
		l->phase = 3;
		return MOLT_DONE;
	default:
		return MOLT_DONE;
	}
}

xds *xload_take(xload *l)
{
	xds *d = l->error_count ? NULL : l->ds;

	if (d)
		l->ds = NULL;
	return d;
}

uint32_t xload_rows(const xload *l)
{
	return l->rows;
}

const xds *xload_shape(const xload *l)
{
	return l->ds;
}

uint32_t xload_error_count(const xload *l)
{
	return l->error_count;
}

void xload_pack_errors(const xload *l, msgpack_packer *pk)
{
	uint32_t i;

	msgpack_pack_array(pk, l->nerrs);
	for (i = 0; i < l->nerrs; i++) {
		const lerr *e = &l->errs[i];
		msgpack_pack_map(pk, 4);
		molt_pack_str(pk, "row");
		msgpack_pack_uint32(pk, e->row);
		molt_pack_str(pk, "column");
		molt_pack_str(pk, l->ds->cols[e->col]->name);
		molt_pack_str(pk, "expected");
		molt_pack_str(pk, e->expected);
		molt_pack_str(pk, "found");
		molt_pack_str(pk, e->found);
	}
}

void xload_first_error(const xload *l, char *out, size_t n)
{
	const lerr *e = &l->errs[0];
	size_t at = 0;
	const char *parts[8];
	char row[16];
	int i;

	xfmt_int(row, sizeof(row), e->row);
	parts[0] = "row ";
	parts[1] = row;
	parts[2] = ", column '";
	parts[3] = l->ds->cols[e->col]->name;
	parts[4] = "': expected ";
	parts[5] = e->expected;
	parts[6] = ", found ";
	parts[7] = e->found;
	for (i = 0; i < 8; i++) {
		size_t k = strlen(parts[i]);
		if (i == 7 && at + 2 < n)
			out[at++] = '"';
		if (at + 2 >= n)
			k = 0;
		else if (k > n - 2 - at)
			k = n - 2 - at;
		memcpy(out + at, parts[i], k);
		at += k;
	}
	if (at + 1 < n)
		out[at++] = '"';
	out[at] = '\0';
}
