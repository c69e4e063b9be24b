/* Arrow IPC stream reader and writer (include/molt/arrow.h, docs/arrow.md).
 *
 * The metadata of each message is a FlatBuffers `Message` (Message.fbs and
 * Schema.fbs of the Arrow format); the few tables we need are read and built
 * by hand. Reading: every uoffset, soffset, vtable entry, vector length and
 * body buffer is checked against the bytes it points into before use.
 * Writing: tables are laid out front to back (a parent before its children,
 * so every uoffset points forward as the format requires), with scalars at
 * their natural alignment, as flatc's verifiers expect. */
#include "molt/arrow.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "arrow.c copies native values into little-endian buffers"
#endif

#define CONTINUATION 0xFFFFFFFFu
#define NAME_SHOWN 48 /* bytes of a column name quoted in a message */

/* Message.fbs: MessageHeader union, MetadataVersion. */
enum { H_NONE, H_SCHEMA, H_DICTIONARY, H_RECORD_BATCH, H_TENSOR, H_SPARSE_TENSOR };
enum { V4 = 3, V5 = 4 };
/* Schema.fbs: the Type union members we accept. */
enum { T_INT = 2, T_FLOAT = 3, T_UTF8 = 5, T_BOOL = 6 };

static const char *const type_union[] = {
	"NONE", "Null", "Int", "FloatingPoint", "Binary", "Utf8", "Bool", "Decimal", "Date",
	"Time", "Timestamp", "Interval", "List", "Struct", "Union", "FixedSizeBinary",
	"FixedSizeList", "Map", "Duration", "LargeBinary", "LargeUtf8", "LargeList",
	"RunEndEncoded", "BinaryView", "Utf8View", "ListView", "LargeListView",
};

static const char *const header_union[] = {
	"NONE", "Schema", "DictionaryBatch", "RecordBatch", "Tensor", "SparseTensor",
};

/* ---- messages without printf ------------------------------------------ */

typedef struct {
	char *p;
	size_t n, at;
} sink;

static void put_c(sink *s, char c)
{
	if (s->at + 1 < s->n)
		s->p[s->at++] = c;
}

static void put_s(sink *s, const char *str)
{
	for (; *str; str++)
		put_c(s, *str);
}

static void put_u(sink *s, unsigned long long v, int neg)
{
	char d[24];
	int k = 0;

	if (neg)
		put_c(s, '-');
	do
		d[k++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (k)
		put_c(s, d[--k]);
}

static void put_x(sink *s, unsigned long long v)
{
	int shift = 60;

	while (shift > 0 && !(v >> shift & 15))
		shift -= 4;
	for (; shift >= 0; shift -= 4)
		put_c(s, "0123456789abcdef"[v >> shift & 15]);
}

/* Quotes at most NAME_SHOWN bytes of a column name, controls as '?', never
 * cutting a UTF-8 sequence. */
static void put_name(sink *s, const char *name, size_t len)
{
	size_t n = len;

	if (n > NAME_SHOWN) {
		n = NAME_SHOWN;
		while (n && ((unsigned char)name[n] & 0xC0) == 0x80)
			n--;
	}
	put_c(s, '\'');
	for (size_t i = 0; i < n; i++)
		put_c(s, (unsigned char)name[i] < 0x20 || name[i] == 0x7f ? '?' : name[i]);
	if (n < len)
		put_s(s, "...");
	put_c(s, '\'');
}

/* A bounded formatter: %s %d %u %lld %llu %zu %x %%, nothing else. */
static void vfmt(sink *s, const char *fmt, va_list ap)
{
	for (; *fmt; fmt++) {
		int longs = 0, size = 0;
		if (*fmt != '%') {
			put_c(s, *fmt);
			continue;
		}
		for (fmt++; *fmt == 'l'; fmt++)
			longs++;
		if (*fmt == 'z') {
			size = 1;
			fmt++;
		}
		switch (*fmt) {
		case 's':
			put_s(s, va_arg(ap, const char *));
			break;
		case 'd': {
			long long v = longs ? va_arg(ap, long long) : va_arg(ap, int);
			put_u(s, v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v, v < 0);
			break;
		}
		case 'u':
			put_u(s, size ? va_arg(ap, size_t) : longs ? va_arg(ap, unsigned long long)
								  : va_arg(ap, unsigned), 0);
			break;
		case 'x':
			put_x(s, va_arg(ap, unsigned));
			break;
		case '%':
			put_c(s, '%');
			break;
		default:
			return;
		}
	}
}

/* Where we are, for messages: every index is -1 when it does not apply. */
typedef struct {
	molt_arrow_error *err;
	int32_t message;     /* IPC message index */
	int header;          /* H_* once known */
	int64_t batch;       /* record batch index (reader and writer) */
	int32_t column;
	const char *name;    /* the column's name, if known */
	size_t name_len;
	int64_t row;
} where;

static where where_init(molt_arrow_error *err)
{
	where w = { err, -1, H_NONE, -1, -1, NULL, 0, -1 };

	return w;
}

/* Fills the error: "<message>, <column>, <row>, byte <offset>: <text>" and
 * returns `code`. `offset` < 0: no byte offset. */
__attribute__((format(printf, 4, 5)))
static int fail(const where *w, int code, long long offset, const char *fmt, ...)
{
	molt_arrow_error *e = w->err;
	sink s;
	va_list ap;
	int parts = 0;

	if (!e)
		return code;
	e->code = code;
	e->message = w->message;
	e->column = w->column;
	e->row = w->row;
	e->offset = offset;
	s.p = e->text;
	s.n = sizeof(e->text);
	s.at = 0;
	if (w->message >= 0) {
		put_s(&s, "message ");
		put_u(&s, (unsigned)w->message, 0);
		if (w->header == H_SCHEMA) {
			put_s(&s, " (schema)");
		} else if (w->header == H_RECORD_BATCH && w->batch >= 0) {
			put_s(&s, " (record batch ");
			put_u(&s, (unsigned long long)w->batch, 0);
			put_c(&s, ')');
		}
		parts++;
	} else if (w->batch >= 0) {
		put_s(&s, "batch ");
		put_u(&s, (unsigned long long)w->batch, 0);
		parts++;
	}
	if (w->column >= 0) {
		put_s(&s, parts++ ? ", column " : "column ");
		put_u(&s, (unsigned)w->column, 0);
		if (w->name) {
			put_c(&s, ' ');
			put_name(&s, w->name, w->name_len);
		}
	}
	if (w->row >= 0) {
		put_s(&s, parts++ ? ", row " : "row ");
		put_u(&s, (unsigned long long)w->row, 0);
	}
	if (offset >= 0) {
		put_s(&s, parts++ ? ", byte " : "byte ");
		put_u(&s, (unsigned long long)offset, 0);
	}
	if (parts)
		put_s(&s, ": ");
	va_start(ap, fmt);
	vfmt(&s, fmt, ap);
	va_end(ap);
	s.p[s.at] = '\0';
	return code;
}

static void at_column(where *w, int32_t i, const molt_arrow_field *f)
{
	w->column = i;
	w->name = f ? f->name : NULL;
	w->name_len = f ? strlen(f->name) : 0;
	w->row = -1;
}

/* ---- shared checks ------------------------------------------------------- */

static uint16_t ld16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

#define ld32 molt_arrow__ld32
#define ld64 molt_arrow__ld64

static void st32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static void st64(uint8_t *p, uint64_t v)
{
	st32(p, (uint32_t)v);
	st32(p + 4, (uint32_t)(v >> 32));
}

/* Bytes of a bitmap of `n` (>= 0) bits. */
static uint64_t bitbytes(int64_t n)
{
	return ((uint64_t)n + 7) >> 3;
}

/* Zeros among the first `n` bits. */
static int64_t count_zeros(const uint8_t *bits, int64_t n)
{
	int64_t ones = 0, i = 0;

	for (; i + 64 <= n; i += 64)
		ones += __builtin_popcountll(ld64(bits + (i >> 3)));
	for (; i + 8 <= n; i += 8)
		ones += __builtin_popcount(bits[i >> 3]);
	if (i < n)
		ones += __builtin_popcount(bits[i >> 3] & ((1u << (n - i)) - 1));
	return n - ones;
}

/* The first clear bit below `n` (or n). */
static int64_t first_zero(const uint8_t *bits, int64_t n)
{
	int64_t i = 0;

	while (i < n && (bits[i >> 3] >> (i & 7) & 1))
		i++;
	return i;
}

/* The offset of the first byte that starts no valid UTF-8 sequence (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF), or n. */
static size_t utf8_bad(const uint8_t *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		uint32_t cp, min;
		size_t k;
		uint8_t c = s[i];
		if (n - i >= 8 && !(ld64(s + i) & 0x8080808080808080ull)) {
			i += 8;
			continue;
		}
		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			k = 1, cp = c & 0x1Fu, min = 0x80;
		else if ((c & 0xF0) == 0xE0)
			k = 2, cp = c & 0x0Fu, min = 0x800;
		else if (c >= 0xF0 && c <= 0xF4)
			k = 3, cp = c & 0x07u, min = 0x10000;
		else
			return i;
		if (n - i - 1 < k)
			return i;
		for (size_t j = 1; j <= k; j++) {
			if ((s[i + j] & 0xC0) != 0x80)
				return i;
			cp = cp << 6 | (s[i + j] & 0x3Fu);
		}
		if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return i;
		i += k + 1;
	}
	return n;
}

/* Checks a utf8 column's offsets (length + 1 of them, in `offsets`) against
 * `data_len` bytes of data, and that every string is UTF-8: the data they
 * cover is valid UTF-8 and no non-empty string starts or ends inside a
 * character. */
static int check_utf8(where *w, int code, long long where_off, const uint8_t *offsets,
		      int64_t length, const uint8_t *data, size_t data_len)
{
	int32_t first = (int32_t)ld32(offsets), prev = first, o;
	size_t bad, end;

	if (first < 0 || (size_t)first > data_len)
		return fail(w, code, where_off,
			    "utf8 offset 0 is %d, expected 0 to %zu (the bytes of character data)",
			    first, data_len);
	for (int64_t i = 1; i <= length; i++) {
		o = (int32_t)ld32(offsets + 4 * (size_t)i);
		w->row = i - 1;
		if (o < prev)
			return fail(w, code, where_off,
				    "utf8 offsets go backwards: offset %lld is %d, after %d",
				    (long long)i, o, prev);
		if ((size_t)o > data_len)
			return fail(w, code, where_off,
				    "utf8 offset %lld is %d, past the %zu bytes of character data",
				    (long long)i, o, data_len);
		prev = o;
	}
	w->row = -1;
	end = (size_t)prev;
	bad = (size_t)first + utf8_bad(data + first, end - (size_t)first);
	if (bad == end && length < 2)
		return 0;
	for (int64_t i = 0; i < length; i++) {
		size_t a = ld32(offsets + 4 * (size_t)i), b = ld32(offsets + 4 * (size_t)i + 4);
		int cut = a < b && ((data[a] & 0xC0) == 0x80 || (b < end && (data[b] & 0xC0) == 0x80));
		if (!cut && !(bad >= a && bad < b))
			continue;
		w->row = i;
		if (cut && !(bad >= a && bad < b))
			return fail(w, code, where_off,
				    "the string starts or ends inside a UTF-8 character");
		return fail(w, code, where_off, "the string is not valid UTF-8 (at its byte %zu)",
			    bad - a);
	}
	return 0;
}

/* ---- FlatBuffers reading --------------------------------------------------- */

/* A flatbuffer: one message's metadata, at `base` in the stream. */
typedef struct {
	const uint8_t *p;
	size_t n, base;
} fb;

/* A table: its position, its vtable and their sizes, all inside the buffer. */
typedef struct {
	size_t pos, vt, vtlen, len;
} fbt;

/* The table at `pos`, pointed to from `from` (for the message). */
static int fb_table(where *w, const fb *b, uint64_t pos, size_t from, const char *what, fbt *t)
{
	long long off = (long long)(b->base + from);
	int64_t vt;

	if (pos > b->n || b->n - pos < 4)
		return fail(w, MOLT_ARROW_EINVALID, off,
			    "flatbuffer offset to %s points to %llu, outside the %zu-byte metadata",
			    what, (unsigned long long)pos, b->n);
	vt = (int64_t)pos - (int32_t)ld32(b->p + pos);
	if (vt < 0 || (uint64_t)vt > b->n - 4)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + pos),
			    "the vtable of %s is at %lld, outside the %zu-byte metadata", what,
			    (long long)vt, b->n);
	t->pos = (size_t)pos;
	t->vt = (size_t)vt;
	t->vtlen = ld16(b->p + vt);
	t->len = ld16(b->p + vt + 2);
	if (t->vtlen < 4 || (t->vtlen & 1) || t->vtlen > b->n - t->vt)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + t->vt),
			    "the vtable of %s is %zu bytes, expected an even size from 4 to the %zu "
			    "bytes left in the metadata", what, t->vtlen, b->n - t->vt);
	if (t->len < 4 || t->len > b->n - t->pos)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + t->vt + 2),
			    "%s is %zu bytes, expected 4 to the %zu bytes left in the metadata",
			    what, t->len, b->n - t->pos);
	return 0;
}

/* 1 with *at: field `i` is present, its `size` bytes inside the table;
 * 0: absent (the default applies); < 0: error. */
static int fb_field(where *w, const fb *b, const fbt *t, unsigned i, size_t size,
		    const char *what, size_t *at)
{
	size_t slot = 4 + 2 * (size_t)i, off;

	if (slot + 2 > t->vtlen)
		return 0;
	off = ld16(b->p + t->vt + slot);
	if (!off)
		return 0;
	if (off < 4 || off > t->len || t->len - off < size)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + t->vt + slot),
			    "%s: its %zu bytes at table offset %zu overrun the %zu-byte table", what,
			    size, off, t->len);
	*at = t->pos + off;
	return 1;
}

/* A scalar field of 1, 2, 4 or 8 bytes, or `dflt` when absent. */
static int fb_scalar(where *w, const fb *b, const fbt *t, unsigned i, size_t size,
		     const char *what, uint64_t dflt, uint64_t *v)
{
	size_t at = 0;
	int rc = fb_field(w, b, t, i, size, what, &at);

	*v = dflt;
	if (rc <= 0)
		return rc;
	*v = size == 1 ? b->p[at] : size == 2 ? ld16(b->p + at)
		       : size == 4 ? ld32(b->p + at) : ld64(b->p + at);
	return 0;
}

/* 1 with *target (inside the buffer) and *from: field `i` is a uoffset;
 * 0: absent. */
static int fb_ref(where *w, const fb *b, const fbt *t, unsigned i, const char *what,
		  uint64_t *target, size_t *from)
{
	size_t at = 0;
	int rc = fb_field(w, b, t, i, 4, what, &at);

	if (rc <= 0)
		return rc;
	*from = at;
	*target = (uint64_t)at + ld32(b->p + at);
	if (*target >= b->n)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + at),
			    "flatbuffer offset to %s points to %llu, outside the %zu-byte metadata",
			    what, (unsigned long long)*target, b->n);
	return 1;
}

/* 1 with *t: field `i` is a table; 0: absent. */
static int fb_subtable(where *w, const fb *b, const fbt *t, unsigned i, const char *what, fbt *sub)
{
	uint64_t target;
	size_t from;
	int rc = fb_ref(w, b, t, i, what, &target, &from);

	if (rc <= 0)
		return rc;
	rc = fb_table(w, b, target, from, what, sub);
	return rc < 0 ? rc : 1;
}

/* 1 with *start and *count: field `i` is a vector of `elem`-byte elements
 * that fits in the buffer; 0: absent (*count = 0). */
static int fb_vector(where *w, const fb *b, const fbt *t, unsigned i, size_t elem, const char *what,
		     size_t *start, size_t *count)
{
	uint64_t target;
	size_t from, n;
	int rc = fb_ref(w, b, t, i, what, &target, &from);

	*count = 0;
	*start = 0;
	if (rc <= 0)
		return rc;
	if (b->n - target < 4)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + from),
			    "%s: its length at %llu overruns the %zu-byte metadata", what,
			    (unsigned long long)target, b->n);
	n = ld32(b->p + target);
	if (n > (b->n - target - 4) / elem)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + target),
			    "%s: %zu elements of %zu bytes overrun the %zu-byte metadata", what, n,
			    elem, b->n);
	*start = (size_t)target + 4;
	*count = n;
	return 1;
}

/* Element `k` of a vector of tables starting at `start`. */
static int fb_vector_table(where *w, const fb *b, size_t start, size_t k, const char *what, fbt *t)
{
	size_t at = start + 4 * k;

	return fb_table(w, b, (uint64_t)at + ld32(b->p + at), at, what, t);
}

/* ---- the reader ------------------------------------------------------------ */

struct molt_arrow_reader {
	const uint8_t *p;
	size_t n, pos;            /* the stream; where the next message starts */
	unsigned flags;
	int32_t message;          /* the next message's index */
	int64_t batches;          /* record batches read */
	int state;                /* 0 reading, 1 ended, < 0 failed with that code */
	size_t ncolumns;
	molt_arrow_field *fields; /* names owned */
	molt_arrow_column *columns;
	molt_arrow_batch batch;
};

/* One encapsulated message. */
typedef struct {
	int eos;        /* the end-of-stream marker, or the end without it */
	fb meta;
	fbt header;     /* the Schema or RecordBatch table */
	int type;       /* H_* */
	const uint8_t *body;
	size_t body_len, body_at;
} msg;

static const char *header_name(unsigned t)
{
	return t < sizeof(header_union) / sizeof(header_union[0]) ? header_union[t] : "unknown";
}

/* Reads the message at r->pos into *m and moves past it. */
static int read_message(molt_arrow_reader *r, where *w, msg *m)
{
	size_t left = r->n - r->pos, at = r->pos;
	uint64_t version, type, body_len;
	int32_t metalen;
	fbt root;
	int rc;

	memset(m, 0, sizeof(*m));
	w->message = r->message;
	w->header = H_NONE;
	if (left == 0) {
		if (r->message == 0)
			return fail(w, MOLT_ARROW_EINVALID, (long long)at,
				    "expected a schema message, found the end of the stream");
		if (!(r->flags & MOLT_ARROW_ALLOW_NO_EOS))
			return fail(w, MOLT_ARROW_EINVALID, (long long)at,
				    "the stream ends without the end-of-stream marker "
				    "(0xffffffff 0x00000000): truncated?");
		m->eos = 1;
		return 0;
	}
	if (left >= 4 && ld32(r->p + at) != CONTINUATION)
		return fail(w, MOLT_ARROW_EINVALID, (long long)at,
			    "expected the continuation marker 0xffffffff, found 0x%x "
			    "(streams in the pre-1.0 format without it are not supported)",
			    (unsigned)ld32(r->p + at));
	if (left < 8)
		return fail(w, MOLT_ARROW_EINVALID, (long long)at,
			    "the stream ends %zu bytes into a message prefix, expected 8 "
			    "(0xffffffff and the metadata length)", left);
	metalen = (int32_t)ld32(r->p + at + 4);
	if (metalen == 0) {
		if (r->message == 0)
			return fail(w, MOLT_ARROW_EINVALID, (long long)at,
				    "expected a schema message, found the end-of-stream marker");
		r->pos += 8;
		if (r->pos != r->n)
			return fail(w, MOLT_ARROW_EINVALID, (long long)r->pos,
				    "expected nothing after the end-of-stream marker, found %zu more bytes",
				    r->n - r->pos);
		m->eos = 1;
		return 0;
	}
	if (metalen < 0 || (size_t)metalen > left - 8)
		return fail(w, MOLT_ARROW_EINVALID, (long long)at + 4,
			    "metadata length %d runs past the end of the stream (%zu bytes left)",
			    metalen, left - 8);
	m->meta.p = r->p + at + 8;
	m->meta.n = (size_t)metalen;
	m->meta.base = at + 8;
	if (metalen < 4)
		return fail(w, MOLT_ARROW_EINVALID, (long long)at + 8,
			    "metadata is %d bytes, too short for a flatbuffer Message", metalen);
	if ((rc = fb_table(w, &m->meta, ld32(m->meta.p), 0, "Message", &root)) ||
	    (rc = fb_scalar(w, &m->meta, &root, 0, 2, "Message.version", 0, &version)) ||
	    (rc = fb_scalar(w, &m->meta, &root, 1, 1, "Message.header_type", 0, &type)) ||
	    (rc = fb_scalar(w, &m->meta, &root, 3, 8, "Message.bodyLength", 0, &body_len)))
		return rc;
	if ((int16_t)version != V4 && (int16_t)version != V5)
		return fail(w, MOLT_ARROW_EUNSUPPORTED, (long long)at + 8,
			    "metadata version V%d is not supported, expected V4 or V5",
			    (int16_t)version + 1);
	m->type = (int)type;
	w->header = m->type;
	if (m->type == H_RECORD_BATCH)
		w->batch = r->batches;
	if (m->type != H_SCHEMA && m->type != H_RECORD_BATCH) {
		int code = m->type == H_DICTIONARY || m->type == H_TENSOR ||
				   m->type == H_SPARSE_TENSOR ? MOLT_ARROW_EUNSUPPORTED : MOLT_ARROW_EINVALID;
		return fail(w, code, (long long)at + 8,
			    "expected a Schema or RecordBatch message, found %s%s", header_name(m->type),
			    m->type == H_DICTIONARY ? " (dictionary encoding is not supported)" : "");
	}
	if ((rc = fb_subtable(w, &m->meta, &root, 2, "Message.header", &m->header)) < 0)
		return rc;
	if (rc == 0)
		return fail(w, MOLT_ARROW_EINVALID, (long long)at + 8,
			    "the message has no header table (header_type %s)", header_name(m->type));
	m->body_at = at + 8 + (size_t)metalen;
	if (body_len > r->n - m->body_at)
		return fail(w, MOLT_ARROW_EINVALID, (long long)m->body_at,
			    "the message body is %lld bytes, past the end of the stream (%zu bytes left)",
			    (long long)body_len, r->n - m->body_at);
	m->body = r->p + m->body_at;
	m->body_len = (size_t)body_len;
	r->pos = m->body_at + m->body_len;
	r->message++;
	return 0;
}

#define WIDE_TYPES "int32, int64, float64, bool or utf8"
#define NARROW_TYPES "int8, int16, int32, int64, float32, float64, bool or utf8"

/* Bytes a value of a fixed-width type takes (utf8: an offset). */
static size_t type_width(molt_arrow_type t)
{
	switch (t) {
	case MOLT_ARROW_INT8: return 1;
	case MOLT_ARROW_INT16: return 2;
	case MOLT_ARROW_INT64:
	case MOLT_ARROW_FLOAT64: return 8;
	default: return 4;
	}
}

/* The supported type of a Field table, or an error naming the found one. */
static int field_type(where *w, const fb *b, const fbt *field, unsigned flags,
		      molt_arrow_type *out)
{
	int narrow = (flags & MOLT_ARROW_NARROW) != 0;
	uint64_t tt, bits, sign, prec;
	fbt type;
	int rc, has;

	if ((rc = fb_scalar(w, b, field, 2, 1, "Field.type_type", 0, &tt)))
		return rc;
	if ((has = fb_subtable(w, b, field, 3, "Field.type", &type)) < 0)
		return has;
	if ((tt == T_INT || tt == T_FLOAT) && !has)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + field->pos),
			    "type %s has no type table", type_union[tt]);
	switch (tt) {
	case T_INT:
		if ((rc = fb_scalar(w, b, &type, 0, 4, "Int.bitWidth", 0, &bits)) ||
		    (rc = fb_scalar(w, b, &type, 1, 1, "Int.is_signed", 0, &sign)))
			return rc;
		if (sign && (bits == 32 || bits == 64)) {
			*out = bits == 32 ? MOLT_ARROW_INT32 : MOLT_ARROW_INT64;
			return 0;
		}
		if (sign && narrow && (bits == 8 || bits == 16)) {
			*out = bits == 8 ? MOLT_ARROW_INT8 : MOLT_ARROW_INT16;
			return 0;
		}
		return fail(w, MOLT_ARROW_EUNSUPPORTED, -1,
			    "type Int(bitWidth %d, %s) is not supported, expected %s", (int32_t)bits,
			    sign ? "signed" : "unsigned", narrow ? NARROW_TYPES : WIDE_TYPES);
	case T_FLOAT:
		if ((rc = fb_scalar(w, b, &type, 0, 2, "FloatingPoint.precision", 0, &prec)))
			return rc;
		if (prec == 2 || (prec == 1 && narrow)) {
			*out = prec == 2 ? MOLT_ARROW_FLOAT64 : MOLT_ARROW_FLOAT32;
			return 0;
		}
		return fail(w, MOLT_ARROW_EUNSUPPORTED, -1,
			    "type FloatingPoint(%s) is not supported, expected %s",
			    prec == 0 ? "HALF" : prec == 1 ? "SINGLE" : "unknown precision",
			    narrow ? NARROW_TYPES : WIDE_TYPES);
	case T_UTF8:
		*out = MOLT_ARROW_UTF8;
		return 0;
	case T_BOOL:
		*out = MOLT_ARROW_BOOL;
		return 0;
	default:
		if (tt < sizeof(type_union) / sizeof(type_union[0]) && tt != 0)
			return fail(w, MOLT_ARROW_EUNSUPPORTED, -1, "type %s is not supported, expected %s",
				    type_union[tt], narrow ? NARROW_TYPES : WIDE_TYPES);
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + field->pos),
			    "Field.type_type is %u, not a type", (unsigned)tt);
	}
}

static int read_schema(molt_arrow_reader *r, where *w, const msg *m)
{
	const fb *b = &m->meta;
	uint64_t endian, nullable;
	size_t start, n, s, len, kids, kstart;
	fbt field, dict;
	int rc;

	if (m->body_len)
		return fail(w, MOLT_ARROW_EINVALID, (long long)m->body_at,
			    "a schema message has no body, found bodyLength %zu", m->body_len);
	if ((rc = fb_scalar(w, b, &m->header, 0, 2, "Schema.endianness", 0, &endian)))
		return rc;
	if (endian != 0)
		return fail(w, MOLT_ARROW_EUNSUPPORTED, -1,
			    "big-endian streams are not supported, expected Little endianness");
	if ((rc = fb_vector(w, b, &m->header, 1, 4, "Schema.fields", &start, &n)) < 0)
		return rc;
	/* n <= metadata bytes / 4: the allocations are bounded by the input. */
	r->fields = calloc(n ? n : 1, sizeof(*r->fields));
	r->columns = calloc(n ? n : 1, sizeof(*r->columns));
	if (!r->fields || !r->columns)
		return fail(w, MOLT_ARROW_ENOMEM, -1, "out of memory for %zu columns", n);
	for (size_t i = 0; i < n; i++) {
		char *name;
		at_column(w, (int32_t)i, NULL);
		if ((rc = fb_vector_table(w, b, start, i, "Schema.fields[]", &field)) ||
		    (rc = fb_vector(w, b, &field, 0, 1, "Field.name", &s, &len)) < 0)
			return rc;
		if (!(name = malloc(len + 1)))
			return fail(w, MOLT_ARROW_ENOMEM, -1, "out of memory");
		if (len)
			memcpy(name, b->p + s, len);
		name[len] = '\0';
		r->fields[i].name = name;
		r->ncolumns = i + 1;
		if (memchr(name, '\0', len) || utf8_bad((const uint8_t *)name, len) != len)
			return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + s),
				    "the field name is not NUL-free UTF-8");
		w->name = name;
		w->name_len = len;
		if ((rc = field_type(w, b, &field, r->flags, &r->fields[i].type)) ||
		    (rc = fb_scalar(w, b, &field, 1, 1, "Field.nullable", 0, &nullable)))
			return rc;
		if ((rc = fb_subtable(w, b, &field, 4, "Field.dictionary", &dict)) != 0)
			return rc < 0 ? rc : fail(w, MOLT_ARROW_EUNSUPPORTED, -1,
						  "dictionary-encoded %s columns are not supported",
						  molt_arrow_type_name(r->fields[i].type));
		if ((rc = fb_vector(w, b, &field, 5, 4, "Field.children", &kstart, &kids)) < 0)
			return rc;
		if (kids)
			return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + kstart - 4),
				    "a %s field has %zu children, expected none",
				    molt_arrow_type_name(r->fields[i].type), kids);
		r->fields[i].nullable = nullable != 0;
	}
	at_column(w, -1, NULL);
	return 0;
}

/* Body buffer `k` (the Buffer structs start at `start` in the metadata). */
static int body_buffer(where *w, const msg *m, size_t start, size_t k, const char *role,
		       const uint8_t **p, size_t *len)
{
	size_t at = start + 16 * k;
	int64_t off = (int64_t)ld64(m->meta.p + at), n = (int64_t)ld64(m->meta.p + at + 8);

	if (off < 0 || n < 0 || (uint64_t)off > m->body_len || (uint64_t)n > m->body_len - (uint64_t)off)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(m->meta.base + at),
			    "buffer %zu (%s) at body offset %lld, length %lld, lies outside the "
			    "%zu-byte body", k, role, (long long)off, (long long)n, m->body_len);
	*p = m->body + off;
	*len = (size_t)n;
	return 0;
}

static int read_column(molt_arrow_reader *r, where *w, const msg *m, int64_t length, size_t i,
		       size_t node, size_t bstart, size_t *k)
{
	const molt_arrow_field *f = &r->fields[i];
	molt_arrow_column *c = &r->columns[i];
	const fb *b = &m->meta;
	int64_t nlen = (int64_t)ld64(b->p + node), nulls = (int64_t)ld64(b->p + node + 8), zeros;
	const uint8_t *vp, *p;
	size_t vlen, len, width;
	uint64_t need, count;
	long long boff = (long long)(b->base + node);
	int rc;

	memset(c, 0, sizeof(*c));
	if (nlen != length)
		return fail(w, MOLT_ARROW_EINVALID, boff,
			    "the field node has %lld rows, expected %lld like its record batch",
			    (long long)nlen, (long long)length);
	if (nulls < 0 || nulls > length)
		return fail(w, MOLT_ARROW_EINVALID, boff + 8,
			    "null count %lld, expected 0 to %lld (the row count)", (long long)nulls,
			    (long long)length);
	if (nulls && !f->nullable)
		return fail(w, MOLT_ARROW_EINVALID, boff + 8,
			    "the field is not nullable, found a null count of %lld", (long long)nulls);
	if ((rc = body_buffer(w, m, bstart, (*k)++, "validity", &vp, &vlen)))
		return rc;
	if (nulls || vlen) {
		if (vlen < bitbytes(length))
			return fail(w, MOLT_ARROW_EINVALID, (long long)(m->body_at + (size_t)(vp - m->body)),
				    "the validity bitmap is %zu bytes, expected at least %llu for %lld rows",
				    vlen, (unsigned long long)bitbytes(length), (long long)length);
		if ((zeros = count_zeros(vp, length)) != nulls)
			return fail(w, MOLT_ARROW_EINVALID, boff + 8,
				    "null count %lld, but the validity bitmap has %lld nulls",
				    (long long)nulls, (long long)zeros);
	}
	c->validity = nulls ? vp : NULL;
	c->null_count = nulls;
	if ((rc = body_buffer(w, m, bstart, (*k)++, f->type == MOLT_ARROW_UTF8 ? "offsets" : "values",
			      &p, &len)))
		return rc;
	/* An empty utf8 column may come without its single offset, as from C++. */
	width = type_width(f->type);
	count = (uint64_t)length + (f->type == MOLT_ARROW_UTF8 && (length || len));
	if (f->type == MOLT_ARROW_BOOL)
		need = bitbytes(length);
	else
		need = count > UINT64_MAX >> 3 ? UINT64_MAX : count * width;
	if (len < need)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(m->body_at + (size_t)(p - m->body)),
			    "the %s buffer is %zu bytes, expected at least %llu for %lld rows",
			    f->type == MOLT_ARROW_UTF8 ? "offsets" : "values", len,
			    (unsigned long long)need, (long long)length);
	c->values = p;
	c->values_len = len;
	if (f->type != MOLT_ARROW_UTF8)
		return 0;
	c->offsets = need ? p : NULL;
	if ((rc = body_buffer(w, m, bstart, (*k)++, "data", &c->values, &c->values_len)))
		return rc;
	if (need)
		return check_utf8(w, MOLT_ARROW_EINVALID, (long long)(m->body_at + (size_t)(p - m->body)),
				  c->offsets, length, c->values, c->values_len);
	return 0;
}

static int read_batch(molt_arrow_reader *r, where *w, const msg *m)
{
	const fb *b = &m->meta;
	uint64_t length, codec;
	size_t nstart, nn, bstart, nb, vstart, nv, want = 0;
	fbt comp;
	int rc;

	if ((rc = fb_scalar(w, b, &m->header, 0, 8, "RecordBatch.length", 0, &length)) ||
	    (rc = fb_vector(w, b, &m->header, 1, 16, "RecordBatch.nodes", &nstart, &nn)) < 0 ||
	    (rc = fb_vector(w, b, &m->header, 2, 16, "RecordBatch.buffers", &bstart, &nb)) < 0 ||
	    (rc = fb_subtable(w, b, &m->header, 3, "RecordBatch.compression", &comp)) < 0)
		return rc;
	if (rc) {
		if ((rc = fb_scalar(w, b, &comp, 0, 1, "BodyCompression.codec", 0, &codec)))
			return rc;
		return fail(w, MOLT_ARROW_EUNSUPPORTED, -1,
			    "compressed record batches (%s) are not supported",
			    codec == 0 ? "LZ4_FRAME" : codec == 1 ? "ZSTD" : "unknown codec");
	}
	if ((rc = fb_vector(w, b, &m->header, 4, 8, "RecordBatch.variadicBufferCounts", &vstart, &nv)) < 0)
		return rc;
	if (nv)
		return fail(w, MOLT_ARROW_EINVALID, (long long)(b->base + vstart - 4),
			    "%zu variadic buffer counts, expected none (no view types)", nv);
	if ((int64_t)length < 0)
		return fail(w, MOLT_ARROW_EINVALID, -1, "the record batch has %lld rows",
			    (long long)length);
	if (nn != r->ncolumns)
		return fail(w, MOLT_ARROW_EINVALID, -1,
			    "%zu field nodes, expected %zu (one per column)", nn, r->ncolumns);
	for (size_t i = 0; i < r->ncolumns; i++)
		want += r->fields[i].type == MOLT_ARROW_UTF8 ? 3 : 2;
	if (nb != want)
		return fail(w, MOLT_ARROW_EINVALID, -1,
			    "%zu buffers, expected %zu (validity and values per column, and offsets "
			    "for utf8)", nb, want);
	for (size_t i = 0, k = 0; i < r->ncolumns; i++) {
		at_column(w, (int32_t)i, &r->fields[i]);
		if ((rc = read_column(r, w, m, (int64_t)length, i, nstart + 16 * i, bstart, &k)))
			return rc;
	}
	at_column(w, -1, NULL);
	r->batch.length = (int64_t)length;
	r->batch.ncolumns = r->ncolumns;
	r->batch.columns = r->columns;
	return 0;
}

static void free_fields(molt_arrow_field *f, size_t n)
{
	for (size_t i = 0; f && i < n; i++)
		free((char *)f[i].name);
	free(f);
}

void molt_arrow_reader_free(molt_arrow_reader *r)
{
	if (!r)
		return;
	free_fields(r->fields, r->ncolumns);
	free(r->columns);
	free(r);
}

int molt_arrow_reader_new(molt_arrow_reader **out, const void *data, size_t len, unsigned flags,
			  molt_arrow_error *err)
{
	where w = where_init(err);
	molt_arrow_reader *r = NULL;
	msg m;
	int rc;

	if (!out || (!data && len) || (flags & ~(MOLT_ARROW_ALLOW_NO_EOS | MOLT_ARROW_NARROW))) {
		rc = fail(&w, MOLT_ARROW_EARG, -1, "molt_arrow_reader_new: bad arguments");
		goto done;
	}
	*out = NULL;
	if (!(r = calloc(1, sizeof(*r)))) {
		rc = fail(&w, MOLT_ARROW_ENOMEM, -1, "out of memory");
		goto done;
	}
	r->p = data;
	r->n = len;
	r->flags = flags;
	if ((rc = read_message(r, &w, &m)))
		goto done;
	if (m.type != H_SCHEMA) {
		rc = fail(&w, MOLT_ARROW_EINVALID, 0, "expected a schema message first, found %s",
			  header_name(m.type));
		goto done;
	}
	if ((rc = read_schema(r, &w, &m)))
		goto done;
	*out = r;
	r = NULL;
done:
	molt_arrow_reader_free(r);
	return rc;
}

size_t molt_arrow_reader_ncolumns(const molt_arrow_reader *r)
{
	return r->ncolumns;
}

const molt_arrow_field *molt_arrow_reader_fields(const molt_arrow_reader *r)
{
	return r->fields;
}

int molt_arrow_reader_next(molt_arrow_reader *r, const molt_arrow_batch **batch, molt_arrow_error *err)
{
	where w = where_init(err);
	msg m;
	int rc;

	if (batch)
		*batch = NULL;
	if (r->state < 0)
		return fail(&w, r->state, -1, "the stream was refused earlier");
	if (r->state > 0)
		return 0;
	w.batch = r->batches;
	if ((rc = read_message(r, &w, &m)))
		goto done;
	if (m.eos) {
		r->state = 1;
		return 0;
	}
	if (m.type == H_SCHEMA) {
		rc = fail(&w, MOLT_ARROW_EINVALID, (long long)m.meta.base - 8,
			  "expected a record batch, found a second schema message");
		goto done;
	}
	if ((rc = read_batch(r, &w, &m)))
		goto done;
	r->batches++;
	if (batch)
		*batch = &r->batch;
	return 1;
done:
	r->state = rc;
	return rc;
}

const char *molt_arrow_type_name(molt_arrow_type t)
{
	switch (t) {
	case MOLT_ARROW_INT32: return "int32";
	case MOLT_ARROW_INT64: return "int64";
	case MOLT_ARROW_FLOAT64: return "float64";
	case MOLT_ARROW_BOOL: return "bool";
	case MOLT_ARROW_UTF8: return "utf8";
	case MOLT_ARROW_INT8: return "int8";
	case MOLT_ARROW_INT16: return "int16";
	case MOLT_ARROW_FLOAT32: return "float32";
	}
	return "?";
}

int molt_arrow_type_parse(molt_arrow_type *out, const char *name, size_t len)
{
	for (int t = MOLT_ARROW_INT32; t <= MOLT_ARROW_UTF8; t++) {
		const char *s = molt_arrow_type_name((molt_arrow_type)t);
		if (strlen(s) == len && !memcmp(s, name, len)) {
			*out = (molt_arrow_type)t;
			return 0;
		}
	}
	return MOLT_ARROW_EARG;
}

/* ---- validation -------------------------------------------------------------- */

static int same_field(const molt_arrow_field *a, const molt_arrow_field *b)
{
	return a->type == b->type && !strcmp(a->name, b->name);
}

/* "column 2: expected 'a' int32, found 'b' utf8" and the like. */
static int mismatch(where *w, size_t i, const molt_arrow_field *want, const molt_arrow_field *got,
		    size_t nwant, size_t ngot)
{
	molt_arrow_error *e = w->err;
	sink s;

	at_column(w, (int32_t)i, NULL);
	fail(w, MOLT_ARROW_EMISMATCH, -1, "expected ");
	if (!e)
		return MOLT_ARROW_EMISMATCH;
	s.p = e->text;
	s.n = sizeof(e->text);
	s.at = strlen(e->text);
	if (want) {
		put_name(&s, want->name, strlen(want->name));
		put_c(&s, ' ');
		put_s(&s, molt_arrow_type_name(want->type));
	} else {
		put_s(&s, "no column (");
		put_u(&s, nwant, 0);
		put_s(&s, " in all)");
	}
	put_s(&s, ", found ");
	if (got) {
		put_name(&s, got->name, strlen(got->name));
		put_c(&s, ' ');
		put_s(&s, molt_arrow_type_name(got->type));
	} else {
		put_s(&s, "no column (");
		put_u(&s, ngot, 0);
		put_s(&s, " in all)");
	}
	s.p[s.at] = '\0';
	return MOLT_ARROW_EMISMATCH;
}

int molt_arrow_validate(const void *data, size_t len, const molt_arrow_field *expected, size_t n,
			int64_t *rows, molt_arrow_error *err)
{
	where w = where_init(err);
	molt_arrow_reader *r = NULL;
	const molt_arrow_batch *b;
	const molt_arrow_field *got;
	int64_t total = 0;
	size_t ngot;
	int rc;

	if (rows)
		*rows = 0;
	for (size_t i = 0; i < n; i++)
		if (!expected || !expected[i].name)
			return fail(&w, MOLT_ARROW_EARG, -1, "molt_arrow_validate: expected column %zu "
				    "has no name", i);
	if ((rc = molt_arrow_reader_new(&r, data, len, 0, err)))
		goto done;
	got = r->fields;
	ngot = r->ncolumns;
	w.message = 0;
	w.header = H_SCHEMA;
	for (size_t i = 0; i < n || i < ngot; i++) {
		if (i < n && i < ngot && same_field(&expected[i], &got[i]))
			continue;
		rc = mismatch(&w, i, i < n ? &expected[i] : NULL, i < ngot ? &got[i] : NULL, n, ngot);
		goto done;
	}
	while ((rc = molt_arrow_reader_next(r, &b, err)) == 1) {
		for (size_t i = 0; i < n; i++) {
			if (expected[i].nullable || !b->columns[i].null_count)
				continue;
			w.message = r->message - 1;
			w.header = H_RECORD_BATCH;
			w.batch = r->batches - 1;
			at_column(&w, (int32_t)i, &expected[i]);
			w.row = first_zero(b->columns[i].validity, b->length);
			rc = fail(&w, MOLT_ARROW_EMISMATCH, -1,
				  "expected a value (the column is not nullable), found null "
				  "(row %lld of the table)", (long long)(total + w.row));
			goto done;
		}
		if (b->length > INT64_MAX - total) {
			rc = fail(&w, MOLT_ARROW_EINVALID, -1, "more than 2^63 rows in all");
			goto done;
		}
		total += b->length;
	}
	if (rows && !rc)
		*rows = total;
done:
	molt_arrow_reader_free(r);
	return rc;
}

/* ---- the writer ---------------------------------------------------------------- */

/* A growable byte buffer that will not grow past `max`. */
typedef struct {
	uint8_t *p;
	size_t n, cap, max;
} buf;

static int buf_reserve(buf *b, where *w, size_t extra)
{
	size_t cap;
	uint8_t *p;

	if (extra > b->max - b->n)
		return fail(w, MOLT_ARROW_ELIMIT, -1,
			    "the stream would grow past its limit of %zu bytes", b->max);
	if (b->n + extra <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->n + extra)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (!(p = realloc(b->p, cap)))
		return fail(w, MOLT_ARROW_ENOMEM, -1, "out of memory for %zu bytes", cap);
	b->p = p;
	b->cap = cap;
	return 0;
}

/* Appends n bytes of `src`, or zeros when src is NULL (reserved already). */
static void buf_put(buf *b, const void *src, size_t n)
{
	if (!n)
		return;
	if (src)
		memcpy(b->p + b->n, src, n);
	else
		memset(b->p + b->n, 0, n);
	b->n += n;
}

/* Pads with zeros until n % align == phase. */
static int buf_align(buf *b, where *w, size_t align, size_t phase)
{
	size_t pad = (phase + align - b->n % align) % align;
	int rc = buf_reserve(b, w, pad);

	if (!rc)
		buf_put(b, NULL, pad);
	return rc;
}

/* ---- FlatBuffers building ---- */

enum { F_ABSENT, F_U8, F_I16, F_I32, F_I64, F_REF };

/* A table field to write: its kind and value; `at` gets where a F_REF is,
 * for fb_patch. */
typedef struct {
	int kind;
	uint64_t v;
	size_t at;
} slot;

/* Writes a vtable then its table (fields by decreasing size, each at its
 * natural alignment: the table starts at 4 mod 8). *table gets its position. */
static int fbb_table(buf *b, where *w, slot *s, unsigned n, size_t *table)
{
	static const size_t size_of[] = { 0, 1, 2, 4, 8, 4 };
	size_t vt, t, vtlen = 4 + 2 * (size_t)n;
	int rc;

	if ((rc = buf_align(b, w, 2, 0)) || (rc = buf_reserve(b, w, vtlen)))
		return rc;
	vt = b->n;
	buf_put(b, NULL, vtlen);
	if ((rc = buf_align(b, w, 8, 4)) || (rc = buf_reserve(b, w, 4 + 8 * (size_t)n)))
		return rc;
	t = b->n;
	st32(b->p + t, (uint32_t)(t - vt));
	b->n += 4;
	for (size_t size = 8; size; size /= 2) {
		for (unsigned i = 0; i < n; i++) {
			if (size_of[s[i].kind] != size)
				continue;
			s[i].at = b->n;
			b->p[vt + 4 + 2 * i] = (uint8_t)(b->n - t);
			b->p[vt + 5 + 2 * i] = (uint8_t)((b->n - t) >> 8);
			for (size_t k = 0; k < size; k++)
				b->p[b->n++] = (uint8_t)(s[i].v >> (8 * k));
		}
	}
	b->p[vt] = (uint8_t)vtlen;
	b->p[vt + 1] = (uint8_t)(vtlen >> 8);
	b->p[vt + 2] = (uint8_t)(b->n - t);
	b->p[vt + 3] = (uint8_t)((b->n - t) >> 8);
	*table = t;
	return 0;
}

/* Points the uoffset at `at` to `target` (which lies after it). */
static void fbb_patch(buf *b, size_t at, size_t target)
{
	st32(b->p + at, (uint32_t)(target - at));
}

/* Starts a vector of `count` elements of `elem` bytes, aligned for
 * `align`-byte scalars: *vec gets the length's position, and the elements
 * follow it (zeroed, to fill in). */
static int fbb_vector(buf *b, where *w, size_t count, size_t elem, size_t align, size_t *vec)
{
	int rc;

	if ((rc = buf_align(b, w, align, align - 4)) || (rc = buf_reserve(b, w, 4 + count * elem)))
		return rc;
	*vec = b->n;
	st32(b->p + b->n, (uint32_t)count);
	b->n += 4;
	buf_put(b, NULL, count * elem);
	return 0;
}

static int fbb_string(buf *b, where *w, const char *s, size_t len, size_t *at)
{
	int rc;

	if ((rc = fbb_vector(b, w, len + 1, 1, 4, at)))
		return rc;
	st32(b->p + *at, (uint32_t)len);
	memcpy(b->p + *at + 4, s, len);
	return 0;
}

struct molt_arrow_writer {
	buf out;                  /* the stream so far */
	buf meta;                 /* scratch: one message's metadata */
	size_t ncolumns;
	molt_arrow_field *fields; /* names owned */
	int64_t batches;
	int finished;
};

/* Frames meta (one Message) and reserves `body` more bytes after it. */
static int put_message(molt_arrow_writer *wr, where *w, size_t body)
{
	size_t metalen = (wr->meta.n + 7) & ~(size_t)7;
	int rc;

	if (metalen > INT32_MAX)
		return fail(w, MOLT_ARROW_ELIMIT, -1, "metadata of %zu bytes is too large", metalen);
	if (body > SIZE_MAX - 8 - metalen)
		return fail(w, MOLT_ARROW_ELIMIT, -1, "the record batch is too large");
	if ((rc = buf_reserve(&wr->out, w, 8 + metalen + body)))
		return rc;
	st32(wr->out.p + wr->out.n, CONTINUATION);
	st32(wr->out.p + wr->out.n + 4, (uint32_t)metalen);
	wr->out.n += 8;
	buf_put(&wr->out, wr->meta.p, wr->meta.n);
	buf_put(&wr->out, NULL, metalen - wr->meta.n);
	return 0;
}

/* Message { version: V5, header_type, header, bodyLength }; *header gets
 * where the header's uoffset is. */
static int put_message_table(buf *b, where *w, int type, size_t body, size_t *header)
{
	slot s[4] = { { F_I16, V5, 0 }, { F_U8, (uint64_t)type, 0 }, { F_REF, 0, 0 },
		      { F_I64, body, 0 } };
	size_t t;
	int rc;

	b->n = 0;
	if ((rc = buf_reserve(b, w, 4)))
		return rc;
	buf_put(b, NULL, 4);
	if ((rc = fbb_table(b, w, s, 4, &t)))
		return rc;
	fbb_patch(b, 0, t);
	*header = s[2].at;
	return 0;
}

static int write_schema(molt_arrow_writer *wr, where *w)
{
	buf *b = &wr->meta;
	slot sch[2] = { { F_I16, 0, 0 }, { F_REF, 0, 0 } };
	size_t hdr, t, vec, at;
	int rc;

	if ((rc = put_message_table(b, w, H_SCHEMA, 0, &hdr)) || (rc = fbb_table(b, w, sch, 2, &t)))
		return rc;
	fbb_patch(b, hdr, t);
	if ((rc = fbb_vector(b, w, wr->ncolumns, 4, 4, &vec)))
		return rc;
	fbb_patch(b, sch[1].at, vec);
	for (size_t i = 0; i < wr->ncolumns; i++) {
		const molt_arrow_field *f = &wr->fields[i];
		static const uint8_t union_of[] = { 0, T_INT, T_INT, T_FLOAT, T_BOOL, T_UTF8 };
		slot fs[6] = { { F_REF, 0, 0 }, { F_U8, (uint64_t)f->nullable, 0 },
			       { F_U8, union_of[f->type], 0 }, { F_REF, 0, 0 }, { F_ABSENT, 0, 0 },
			       { F_REF, 0, 0 } };
		slot ty[2] = { { F_I32, f->type == MOLT_ARROW_INT32 ? 32 : 64, 0 }, { F_U8, 1, 0 } };
		unsigned nty = f->type == MOLT_ARROW_INT32 || f->type == MOLT_ARROW_INT64 ? 2 : 0;
		if (f->type == MOLT_ARROW_FLOAT64) {
			ty[0].kind = F_I16;
			ty[0].v = 2; /* DOUBLE */
			nty = 1;
		}
		if ((rc = fbb_table(b, w, fs, 6, &t)))
			return rc;
		fbb_patch(b, vec + 4 + 4 * i, t);
		if ((rc = fbb_string(b, w, f->name, strlen(f->name), &at)))
			return rc;
		fbb_patch(b, fs[0].at, at);
		if ((rc = fbb_table(b, w, ty, nty, &t)))
			return rc;
		fbb_patch(b, fs[3].at, t);
		/* An empty children vector, not none: Arrow C++ refuses a null one. */
		if ((rc = fbb_vector(b, w, 0, 4, 4, &at)))
			return rc;
		fbb_patch(b, fs[5].at, at);
	}
	return put_message(wr, w, 0);
}

void molt_arrow_writer_free(molt_arrow_writer *w)
{
	if (!w)
		return;
	free(w->out.p);
	free(w->meta.p);
	free_fields(w->fields, w->ncolumns);
	free(w);
}

int molt_arrow_writer_new(molt_arrow_writer **out, const molt_arrow_field *fields, size_t n,
			  size_t max_bytes, molt_arrow_error *err)
{
	where w = where_init(err);
	molt_arrow_writer *wr = NULL;
	int rc;

	if (!out || (!fields && n) || n > INT32_MAX / 16)
		return fail(&w, MOLT_ARROW_EARG, -1, "molt_arrow_writer_new: bad arguments");
	*out = NULL;
	if (!(wr = calloc(1, sizeof(*wr))) || !(wr->fields = calloc(n ? n : 1, sizeof(*wr->fields)))) {
		rc = fail(&w, MOLT_ARROW_ENOMEM, -1, "out of memory");
		goto done;
	}
	wr->out.max = max_bytes ? max_bytes : SIZE_MAX;
	wr->meta.max = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		size_t len;
		char *name;
		at_column(&w, (int32_t)i, NULL);
		if (!fields[i].name || fields[i].type < MOLT_ARROW_INT32 || fields[i].type > MOLT_ARROW_UTF8 ||
		    (fields[i].nullable != 0 && fields[i].nullable != 1)) {
			rc = fail(&w, MOLT_ARROW_EARG, -1,
				  "expected a name, a type from 1 to 5 and nullable 0 or 1");
			goto done;
		}
		len = strlen(fields[i].name);
		if (utf8_bad((const uint8_t *)fields[i].name, len) != len) {
			rc = fail(&w, MOLT_ARROW_EARG, -1, "the column name is not UTF-8");
			goto done;
		}
		if (!(name = malloc(len + 1))) {
			rc = fail(&w, MOLT_ARROW_ENOMEM, -1, "out of memory");
			goto done;
		}
		memcpy(name, fields[i].name, len + 1);
		wr->fields[i] = fields[i];
		wr->fields[i].name = name;
		wr->ncolumns = i + 1;
	}
	at_column(&w, -1, NULL);
	if ((rc = write_schema(wr, &w)))
		goto done;
	*out = wr;
	wr = NULL;
done:
	molt_arrow_writer_free(wr);
	return rc;
}

/* A body buffer to write: its bytes (or an action), length and offset. */
typedef struct {
	const uint8_t *src;
	size_t len, off;
	int how; /* 0 copy, 1 bitmap (clear the bits past `bits`), 2 rebase int32 offsets */
	int64_t bits;
} part;

/* Checks a column the caller gives and fills its buffers (2 or 3 parts). */
static int plan_column(where *w, const molt_arrow_field *f, const molt_arrow_column *c,
		       int64_t length, int64_t *nulls, part *p)
{
	size_t width = f->type == MOLT_ARROW_INT32 ? 4 : 8;
	int rc;

	*nulls = c->validity ? count_zeros(c->validity, length) : 0;
	if (*nulls && !f->nullable) {
		w->row = first_zero(c->validity, length);
		return fail(w, MOLT_ARROW_EARG, -1,
			    "the column is not nullable, found %lld nulls in its validity bitmap",
			    (long long)*nulls);
	}
	p[0] = (part){ *nulls ? c->validity : NULL, *nulls ? (size_t)bitbytes(length) : 0, 0, 1, length };
	if (f->type == MOLT_ARROW_BOOL) {
		p[1] = (part){ c->values, (size_t)bitbytes(length), 0, 1, length };
	} else if (f->type != MOLT_ARROW_UTF8) {
		p[1] = (part){ c->values, (size_t)length * width, 0, 0, 0 };
	} else {
		static const uint8_t zero[4];
		const uint8_t *o = c->offsets ? c->offsets : zero;
		int32_t first, last;
		if (!c->offsets && length)
			return fail(w, MOLT_ARROW_EARG, -1, "a utf8 column needs offsets");
		if (c->values_len > INT32_MAX)
			return fail(w, MOLT_ARROW_EARG, -1, "%zu bytes of strings, more than int32 offsets "
				    "can address", c->values_len);
		if (!c->values && c->values_len)
			return fail(w, MOLT_ARROW_EARG, -1, "values_len is %zu but values is NULL",
				    c->values_len);
		if ((rc = check_utf8(w, MOLT_ARROW_EARG, -1, o, length,
				     c->values ? c->values : zero, c->values_len)))
			return rc;
		first = (int32_t)ld32(o);
		last = (int32_t)ld32(o + 4 * (size_t)length);
		p[1] = (part){ o, 4 * ((size_t)length + 1), 0, 2, first };
		p[2] = (part){ c->values ? c->values + first : NULL, (size_t)(last - first), 0, 0, 0 };
		return 0;
	}
	if (!c->values && p[1].len)
		return fail(w, MOLT_ARROW_EARG, -1, "values is NULL for %lld rows", (long long)length);
	return 0;
}

static void put_part(buf *b, const part *p)
{
	uint8_t *d = b->p + b->n;

	buf_put(b, p->src, p->len);
	if (p->how == 1 && p->len && (p->bits & 7))
		d[p->len - 1] &= (uint8_t)((1u << (p->bits & 7)) - 1);
	if (p->how == 2)
		for (size_t i = 0; i < p->len; i += 4)
			st32(d + i, ld32(d + i) - (uint32_t)p->bits);
	buf_put(b, NULL, (8 - p->len % 8) % 8);
}

int molt_arrow_writer_append(molt_arrow_writer *wr, int64_t length, const molt_arrow_column *columns,
			     molt_arrow_error *err)
{
	where w = where_init(err);
	size_t nparts = 0, body = 0, hdr, t, nodes, bufs, start = wr ? wr->out.n : 0;
	part *parts = NULL;
	int64_t *nulls = NULL;
	slot rb[3] = { { F_I64, (uint64_t)length, 0 }, { F_REF, 0, 0 }, { F_REF, 0, 0 } };
	buf *b;
	int rc;

	if (!wr || (!columns && wr->ncolumns) || wr->finished || length < 0 ||
	    (uint64_t)length > SIZE_MAX / 16 - 1)
		return fail(&w, MOLT_ARROW_EARG, -1, "molt_arrow_writer_append: bad arguments%s",
			    wr && wr->finished ? " (the stream is finished)" : "");
	b = &wr->meta;
	w.batch = wr->batches;
	if (!(parts = calloc(3 * wr->ncolumns + 1, sizeof(*parts))) ||
	    !(nulls = calloc(wr->ncolumns + 1, sizeof(*nulls)))) {
		rc = fail(&w, MOLT_ARROW_ENOMEM, -1, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < wr->ncolumns; i++) {
		at_column(&w, (int32_t)i, &wr->fields[i]);
		if ((rc = plan_column(&w, &wr->fields[i], &columns[i], length, &nulls[i], parts + nparts)))
			goto done;
		nparts += wr->fields[i].type == MOLT_ARROW_UTF8 ? 3 : 2;
	}
	at_column(&w, -1, NULL);
	for (size_t i = 0; i < nparts; i++) {
		size_t padded = parts[i].len + (8 - parts[i].len % 8) % 8;
		if (parts[i].len > SIZE_MAX - 8 || padded > SIZE_MAX - body) {
			rc = fail(&w, MOLT_ARROW_ELIMIT, -1, "the record batch is too large");
			goto done;
		}
		parts[i].off = body;
		body += padded;
	}
	if ((rc = put_message_table(b, &w, H_RECORD_BATCH, body, &hdr)) ||
	    (rc = fbb_table(b, &w, rb, 3, &t)))
		goto done;
	fbb_patch(b, hdr, t);
	if ((rc = fbb_vector(b, &w, wr->ncolumns, 16, 8, &nodes)))
		goto done;
	fbb_patch(b, rb[1].at, nodes);
	for (size_t i = 0; i < wr->ncolumns; i++) {
		st64(b->p + nodes + 4 + 16 * i, (uint64_t)length);
		st64(b->p + nodes + 12 + 16 * i, (uint64_t)nulls[i]);
	}
	if ((rc = fbb_vector(b, &w, nparts, 16, 8, &bufs)))
		goto done;
	fbb_patch(b, rb[2].at, bufs);
	for (size_t i = 0; i < nparts; i++) {
		st64(b->p + bufs + 4 + 16 * i, parts[i].off);
		st64(b->p + bufs + 12 + 16 * i, parts[i].len);
	}
	if ((rc = put_message(wr, &w, body)))
		goto done;
	for (size_t i = 0; i < nparts; i++)
		put_part(&wr->out, &parts[i]);
	wr->batches++;
done:
	if (rc && wr)
		wr->out.n = start;
	free(parts);
	free(nulls);
	return rc;
}

int molt_arrow_writer_finish(molt_arrow_writer *wr, uint8_t **out, size_t *out_len,
			     molt_arrow_error *err)
{
	where w = where_init(err);
	int rc;

	if (!wr || !out || !out_len || wr->finished)
		return fail(&w, MOLT_ARROW_EARG, -1, "molt_arrow_writer_finish: bad arguments%s",
			    wr && wr->finished ? " (the stream is finished)" : "");
	if ((rc = buf_reserve(&wr->out, &w, 8)))
		return rc;
	st32(wr->out.p + wr->out.n, CONTINUATION);
	st32(wr->out.p + wr->out.n + 4, 0);
	wr->out.n += 8;
	*out = wr->out.p;
	*out_len = wr->out.n;
	wr->out.p = NULL;
	wr->out.n = wr->out.cap = 0;
	wr->finished = 1;
	return 0;
}
