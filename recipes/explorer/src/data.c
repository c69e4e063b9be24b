/* explorer: columns, datasets, numbers as text, and table output. */
#include "explorer.h"

#include "cJSON.h"
#include "molt/arrow.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const type_names[] = { "int", "float", "string", "bool", "null" };

const char *xtype_name(xtype t)
{
	return t <= XNULL ? type_names[t] : "?";
}

int xtype_parse(const char *s, uint32_t len)
{
	int i;

	for (i = 0; i < 4; i++)
		if (strlen(type_names[i]) == len && !memcmp(type_names[i], s, len))
			return i;
	return -1;
}

xcol *xcol_new(const char *name, size_t namelen, xtype type, uint32_t n)
{
	xcol *c = calloc(1, sizeof(*c));

	if (!c || !(c->name = malloc(namelen + 1))) {
		free(c);
		return NULL;
	}
	memcpy(c->name, name, namelen);
	c->name[namelen] = '\0';
	c->refs = 1;
	c->type = type;
	c->n = n;
	return c;
}

void xcol_unref(xcol *c)
{
	if (!c || --c->refs > 0)
		return;
	free(c->name);
	free(c->i);
	free(c->f);
	free(c->b);
	free(c->off);
	free(c->s);
	free(c->valid);
	free(c);
}

xds *xds_new(uint32_t ncols)
{
	xds *d = calloc(1, sizeof(*d));

	if (!d || !(d->cols = calloc(ncols ? ncols : 1, sizeof(*d->cols)))) {
		free(d);
		return NULL;
	}
	d->refs = 1;
	d->ncols = ncols;
	return d;
}

void xds_unref(xds *d)
{
	uint32_t i;

	if (!d || --d->refs > 0)
		return;
	for (i = 0; i < d->ncols; i++)
		xcol_unref(d->cols[i]);
	if (d->sel && --d->sel->refs == 0) {
		free(d->sel->idx);
		free(d->sel);
	}
	free(d->cols);
	free(d);
}

void xds_release(void *d)
{
	xds_unref(d);
}

int xds_find(const xds *d, const char *name, size_t len)
{
	uint32_t i;

	for (i = 0; i < d->ncols; i++)
		if (strlen(d->cols[i]->name) == len && !memcmp(d->cols[i]->name, name, len))
			return (int)i;
	return -1;
}

int xbuf_put(xbuf *b, const void *p, size_t n)
{
	if (n > (size_t)UINT32_MAX - b->n)
		return -1;
	if (b->n + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *q;
		while (cap < b->n + n)
			cap *= 2;
		if (!(q = realloc(b->p, cap)))
			return -1;
		b->p = q;
		b->cap = cap;
	}
	if (n)
		memcpy(b->p + b->n, p, n);
	b->n += n;
	return 0;
}

void xbuf_free(xbuf *b)
{
	free(b->p);
	b->p = NULL;
	b->n = b->cap = 0;
}

static size_t copy_text(char *out, size_t n, const char *s)
{
	size_t k = strlen(s);

	if (k >= n)
		k = n ? n - 1 : 0;
	if (n) {
		memcpy(out, s, k);
		out[k] = '\0';
	}
	return k;
}

size_t xfmt_int(char *out, size_t n, int64_t v)
{
	char d[24];
	int k = 0, neg = v < 0;
	uint64_t u = neg ? 0 - (uint64_t)v : (uint64_t)v;
	size_t at = 0;

	do
		d[k++] = (char)('0' + u % 10);
	while ((u /= 10));
	if (neg && at + 1 < n)
		out[at++] = '-';
	while (k && at + 1 < n)
		out[at++] = d[--k];
	if (n)
		out[at] = '\0';
	return at;
}

size_t xfmt_double(char *out, size_t n, double d)
{
	cJSON *num;
	char *s;
	size_t k;

	if (isnan(d))
		return copy_text(out, n, "NaN");
	if (isinf(d))
		return copy_text(out, n, d < 0 ? "-Infinity" : "Infinity");
	if (!(num = cJSON_CreateNumber(d)))
		return copy_text(out, n, "?");
	s = cJSON_PrintUnformatted(num);
	k = copy_text(out, n, s ? s : "?");
	cJSON_free(s);
	cJSON_Delete(num);
	return k;
}

int xparse_int(const char *s, size_t n, int64_t *v)
{
	uint64_t u = 0, lim;
	size_t i = 0;
	int neg = 0;

	if (n && (s[0] == '-' || s[0] == '+')) {
		neg = s[0] == '-';
		i = 1;
	}
	if (i == n)
		return -1;
	lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
	for (; i < n; i++) {
		unsigned dgt = (unsigned char)s[i] - '0';
		if (dgt > 9 || u > (lim - dgt) / 10)
			return -1;
		u = u * 10 + dgt;
	}
	*v = neg ? (int64_t)(0 - u) : (int64_t)u;
	return 0;
}

int xparse_float(const char *s, size_t n, double *v)
{
	char tmp[128], *end;
	size_t i = 0, digits = 0;

	/* Decimal syntax only: strtod also takes hex, inf and nan. */
	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		digits++;
	if (i < n && s[i] == '.')
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			digits++;
	if (!digits)
		return -1;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		size_t e = 0;
		if (++i < n && (s[i] == '-' || s[i] == '+'))
			i++;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			e++;
		if (!e)
			return -1;
	}
	if (i != n || n >= sizeof(tmp))
		return -1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	*v = strtod(tmp, &end);
	return end == tmp + n ? 0 : -1;
}

static int eq_nocase(const char *s, size_t n, const char *w)
{
	size_t i;

	if (strlen(w) != n)
		return 0;
	for (i = 0; i < n; i++)
		if ((s[i] | 0x20) != w[i])
			return 0;
	return 1;
}

int xparse_bool(const char *s, size_t n, uint8_t *v)
{
	if (eq_nocase(s, n, "true"))
		*v = 1;
	else if (eq_nocase(s, n, "false"))
		*v = 0;
	else
		return -1;
	return 0;
}

void xpath(char *out, size_t n, const char *prefix, const char *fmt, uint32_t k)
{
	size_t at = copy_text(out, n, prefix);

	for (; *fmt && at + 1 < n; fmt++) {
		if (fmt[0] == '%' && fmt[1] == 'u') {
			at += xfmt_int(out + at, n - at, k);
			fmt++;
		} else {
			out[at++] = *fmt;
		}
	}
	if (n)
		out[at < n ? at : n - 1] = '\0';
}

const msgpack_object *xget(const msgpack_object *map, const char *key)
{
	size_t n = strlen(key);
	uint32_t i;

	if (map->type != MSGPACK_OBJECT_MAP)
		return NULL;
	for (i = 0; i < map->via.map.size; i++) {
		const msgpack_object *k = &map->via.map.ptr[i].key;
		if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
		    !memcmp(k->via.str.ptr, key, n))
			return &map->via.map.ptr[i].val;
	}
	return NULL;
}

void xpack_columns(msgpack_packer *pk, const xds *d)
{
	uint32_t i;

	msgpack_pack_array(pk, d->ncols);
	for (i = 0; i < d->ncols; i++) {
		const xcol *c = d->cols[i];
		msgpack_pack_map(pk, 3);
		molt_pack_str(pk, "name");
		molt_pack_str(pk, c->name);
		molt_pack_str(pk, "type");
		molt_pack_str(pk, xtype_name(c->type));
		molt_pack_str(pk, "nullable");
		if (c->nullable)
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
	}
}

/* ---- table output ------------------------------------------------------- */

struct xout {
	const xds *d;
	int arrow;
	int started;
	uint32_t col, row;           /* msgpack: where the next value is */
	int head;                    /* msgpack: the column's head is written */
	molt_arrow_writer *w;        /* arrow */
	molt_arrow_field *fields;
	int64_t *ibuf;               /* a chunk gathered for the writer */
	double *fbuf;
	uint8_t *bbits, *vbits;
	int32_t *offs;
	xbuf text;
};

xout *xout_new(const xds *d, int arrow)
{
	xout *o = calloc(1, sizeof(*o));

	if (o) {
		o->d = d;
		o->arrow = arrow;
	}
	return o;
}

void xout_free(xout *o)
{
	if (!o)
		return;
	molt_arrow_writer_free(o->w);
	free(o->fields);
	free(o->ibuf);
	free(o->fbuf);
	free(o->bbits);
	free(o->vbits);
	free(o->offs);
	xbuf_free(&o->text);
	free(o);
}

static void pack_value(msgpack_packer *pk, const xcol *c, uint32_t p)
{
	if (!xcol_valid(c, p)) {
		msgpack_pack_nil(pk);
		return;
	}
	switch (c->type) {
	case XINT:
		msgpack_pack_int64(pk, c->i[p]);
		break;
	case XFLOAT:
		msgpack_pack_double(pk, c->f[p]);
		break;
	case XBOOL:
		if (c->b[p])
			msgpack_pack_true(pk);
		else
			msgpack_pack_false(pk);
		break;
	default:
		msgpack_pack_str(pk, c->off[p + 1] - c->off[p]);
		msgpack_pack_str_body(pk, c->s + c->off[p], c->off[p + 1] - c->off[p]);
		break;
	}
}

static int out_msgpack(molt_task *t, xout *o, msgpack_packer *pk)
{
	const xds *d = o->d;

	if (!o->started) {
		molt_pack_str(pk, "data");
		msgpack_pack_array(pk, d->ncols);
		o->started = 1;
	}
	while (o->col < d->ncols) {
		const xcol *c = d->cols[o->col];
		uint64_t k;
		if (!o->head) {
			msgpack_pack_map(pk, 1);
			molt_pack_str(pk, xtype_name(c->type));
			msgpack_pack_array(pk, d->rows);
			o->head = 1;
		}
		k = molt_step_take(t, d->rows - o->row);
		for (; k; k--, o->row++)
			pack_value(pk, c, xds_phys(d, o->row));
		if (o->row < d->rows)
			return MOLT_PENDING;
		o->col++;
		o->row = 0;
		o->head = 0;
	}
	return MOLT_DONE;
}

static int arrow_fail(molt_task *t, const molt_arrow_error *e)
{
	return molt_fail(t, e->code == MOLT_ARROW_ELIMIT ? MOLT_ENCODE_ERROR : MOLT_INTERNAL_ERROR,
			 NULL, "writing the Arrow result: %s", e->text);
}

static int out_arrow(molt_task *t, xout *o, msgpack_packer *pk)
{
	static const molt_arrow_type at[] = { MOLT_ARROW_INT64, MOLT_ARROW_FLOAT64,
					       MOLT_ARROW_UTF8, MOLT_ARROW_BOOL };
	const xds *d = o->d;
	molt_arrow_error err;
	molt_arrow_column *cols;
	uint32_t i;

	if (!o->started) {
		if (!(o->fields = calloc(d->ncols ? d->ncols : 1, sizeof(*o->fields))) ||
		    !(o->ibuf = malloc(XCHUNK * 8 * (size_t)(d->ncols ? d->ncols : 1))) ||
		    !(o->vbits = malloc(XCHUNK / 8 * (size_t)(d->ncols ? d->ncols : 1))) ||
		    !(o->bbits = malloc(XCHUNK / 8 * (size_t)(d->ncols ? d->ncols : 1))) ||
		    !(o->offs = malloc((XCHUNK + 1) * 4 * (size_t)(d->ncols ? d->ncols : 1))))
			return molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory for the Arrow result");
		for (i = 0; i < d->ncols; i++) {
			o->fields[i].name = d->cols[i]->name;
			o->fields[i].type = at[d->cols[i]->type];
			o->fields[i].nullable = d->cols[i]->nullable;
		}
		if (molt_arrow_writer_new(&o->w, o->fields, d->ncols, MOLT_RESULT_MAX, &err))
			return arrow_fail(t, &err);
		o->started = 1;
	}
	if (!(cols = calloc(d->ncols ? d->ncols : 1, sizeof(*cols))))
		return molt_fail(t, MOLT_INTERNAL_ERROR, NULL, "out of memory for the Arrow result");
	while (o->row < d->rows) {
		uint32_t n = d->rows - o->row, r;
		uint64_t want = (uint64_t)(n > XCHUNK ? XCHUNK : n) * (d->ncols ? d->ncols : 1);
		if (!molt_step_take(t, want)) {
			free(cols);
			return MOLT_PENDING;
		}
		if (n > XCHUNK)
			n = XCHUNK;
		o->text.n = 0;
		for (i = 0; i < d->ncols; i++) {
			const xcol *c = d->cols[i];
			int64_t *iv = o->ibuf + (size_t)i * XCHUNK;
			uint8_t *vb = o->vbits + (size_t)i * (XCHUNK / 8);
			uint8_t *bb = o->bbits + (size_t)i * (XCHUNK / 8);
			int32_t *of = o->offs + (size_t)i * (XCHUNK + 1);
			int nulls = 0;
			memset(vb, 0, XCHUNK / 8);
			memset(bb, 0, XCHUNK / 8);
			if (c->type == XSTRING)
				of[0] = (int32_t)o->text.n;
			for (r = 0; r < n; r++) {
				uint32_t p = xds_phys(d, o->row + r);
				int ok = xcol_valid(c, p);
				if (ok)
					vb[r >> 3] |= (uint8_t)(1u << (r & 7));
				else
					nulls = 1;
				switch (c->type) {
				case XINT:
					iv[r] = ok ? c->i[p] : 0;
					break;
				case XFLOAT:
					((double *)iv)[r] = ok ? c->f[p] : 0;
					break;
				case XBOOL:
					if (ok && c->b[p])
						bb[r >> 3] |= (uint8_t)(1u << (r & 7));
					break;
				default:
					if (ok && xbuf_put(&o->text, c->s + c->off[p], c->off[p + 1] - c->off[p])) {
						free(cols);
						return molt_fail(t, MOLT_INTERNAL_ERROR, NULL,
								 "out of memory for the Arrow result");
					}
					of[r + 1] = (int32_t)o->text.n;
				}
			}
			cols[i].validity = nulls ? vb : NULL;
			cols[i].values = c->type == XBOOL ? bb : (const uint8_t *)iv;
			if (c->type == XSTRING) {
				cols[i].offsets = (const uint8_t *)of;
				cols[i].values = (const uint8_t *)o->text.p;
				cols[i].values_len = o->text.n;
			}
		}
		/* Offsets of later string columns start where the earlier ones
		 * end, in the one text buffer: the writer rebases them. */
		for (i = 0; i < d->ncols; i++)
			if (d->cols[i]->type == XSTRING) {
				static const uint8_t none[1];
				cols[i].values = o->text.p ? (const uint8_t *)o->text.p : none;
				cols[i].values_len = o->text.n;
			}
		if (molt_arrow_writer_append(o->w, n, cols, &err)) {
			free(cols);
			return arrow_fail(t, &err);
		}
		o->row += n;
	}
	free(cols);
	{
		uint8_t *bytes;
		size_t len;
		if (molt_arrow_writer_finish(o->w, &bytes, &len, &err))
			return arrow_fail(t, &err);
		molt_pack_str(pk, "arrow");
		msgpack_pack_bin(pk, len);
		msgpack_pack_bin_body(pk, bytes, len);
		free(bytes);
	}
	return MOLT_DONE;
}

int xout_step(molt_task *t, xout *o, msgpack_packer *pk)
{
	return o->arrow ? out_arrow(t, o, pk) : out_msgpack(t, o, pk);
}
