/* The Arrow IPC stream reader, writer and validator (runtime/sdk/arrow.c):
 * round trips per type, streams written by apache-arrow, and malformed
 * input, each refused with a precise message and never read out of bounds
 * (the ASan+UBSan build runs these too). */
#include "molt/arrow.h"

#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Streams written by the reference implementation (npm apache-arrow 21.2.0),
 * made with tableToIPC(table, "stream"); the Node code is in docs/arrow.md. */
/* apache-arrow 21 tableToIPC(..., "stream"): columns i int32, l int64, d float64, b bool, s utf8 (all nullable); batches of 3 and 1 rows */
static const char js_table[] =
	"ffffffff480100001000000000000a0010000e00070008000a00000000000001"
	"10000000000004000800080000000400080000000400000005000000dc000000"
	"9800000060000000300000000400000048ffffff140000000000000114000000"
	"0000000510000000010000007300000000000000d8ffffff70ffffff14000000"
	"0000000114000000000000061400000001000000620000000000000004000400"
	"040000009cffffff140000000000000114000000000000031800000001000000"
	"640000000000000000000600080006000600000000000200d0ffffff14000000"
	"00000001140000000000000210000000010000006c00000000000000c0ffffff"
	"00000001400000001000180004000b001300140000000c001000000014000000"
	"0000000114000000000000021800000001000000690000000000000008000c00"
	"08000700080000000000000120000000ffffffff580100001400000000000000"
	"0c00160014000f00100004000c000000d8010000000000000000000310000000"
	"04000a0018000c00080004000a00000014000000c80000000300000000000000"
	"000000000b000000000000000000000040000000000000004000000000000000"
	"1000000000000000500000000000000040000000000000009000000000000000"
	"1800000000000000a8000000000000004000000000000000e800000000000000"
	"1800000000000000000100000000000040000000000000004001000000000000"
	"400000000000000080010000000000004000000000000000c001000000000000"
	"1000000000000000d00100000000000008000000000000000000000005000000"
	"0300000000000000010000000000000003000000000000000100000000000000"
	"0300000000000000010000000000000003000000000000000100000000000000"
	"0300000000000000010000000000000005000000000000000000000000000000"
	"0000000000000000000000000000000000000000000000000000000000000000"
	"000000000000000000000000000000000100000000000000fdffffff00000000"
	"0300000000000000000000000000000000000000000000000000000000000000"
	"0000000000000000000000000000000000000000000000000000000000000000"
	"0a00000000000000ecffffffffffffff00000000000000000500000000000000"
	"0000000000000000000000000000000000000000000000000000000000000000"
	"000000000000000000000000000000000000000000000000000000000000e03f"
	"000000000000000000000000000002c003000000000000000000000000000000"
	"0000000000000000000000000000000000000000000000000000000000000000"
	"0000000000000000000000000000000001000000000000000000000000000000"
	"0000000000000000000000000000000000000000000000000000000000000000"
	"0000000000000000000000000000000005000000000000000000000000000000"
	"0000000000000000000000000000000000000000000000000000000000000000"
	"0000000000000000000000000000000000000000010000000100000007000000"
	"6168c3a96c6c6f00ffffffff5801000014000000000000000c00160014000f00"
	"100004000c0000006000000000000000000000031000000004000a0018000c00"
	"080004000a00000014000000c80000000100000000000000000000000b000000"
	"0000000000000000000000000000000000000000000000000800000000000000"
	"0800000000000000000000000000000008000000000000000800000000000000"
	"1000000000000000000000000000000010000000000000000800000000000000"
	"1800000000000000000000000000000018000000000000004000000000000000"
	"5800000000000000000000000000000058000000000000000800000000000000"
	"6000000000000000000000000000000000000000050000000100000000000000"
	"0000000000000000010000000000000000000000000000000100000000000000"
	"0000000000000000010000000000000000000000000000000100000000000000"
	"0000000000000000070000000000000001000000000020009c7500883ce4377e"
	"0100000000000000000000000000000000000000000000000000000000000000"
	"0000000000000000000000000000000000000000000000000000000000000000"
	"0000000000000000ffffffff00000000";

/* a Float32 column "f" */
static const char js_float32[] =
	"ffffffff800000001000000000000a0010000e00070008000a00000000000001"
	"1000000000000400080008000000040008000000040000000100000014000000"
	"1000180004000b001300140000000c0010000000140000000000000114000000"
	"0000000318000000010000006600000000000000000006000800060006000000"
	"0000010000000000ffffffff00000000";

/* a Uint8 column "u" */
static const char js_uint8[] =
	"ffffffff800000001000000000000a0010000e00070008000a00000000000001"
	"1000000000000400080008000000040008000000040000000100000014000000"
	"1000180004000b001300140000000c0010000000140000000000000114000000"
	"0000000218000000010000007500000000000000000006000800040006000000"
	"0800000000000000ffffffff00000000";

/* an Int16 column "h" */
static const char js_int16[] =
	"ffffffff800000001000000000000a0010000e00070008000a00000000000001"
	"1000000000000400080008000000040008000000040000000100000014000000"
	"10001400040000000f0010000000080010000000100000001400000000000002"
	"1800000001000000680000000000000008000c00080007000800000000000001"
	"1000000000000000ffffffff00000000";

/* a Timestamp column "when" */
static const char js_timestamp[] =
	"ffffffff800000001000000000000a0010000e00070008000a00000000000001"
	"1000000000000400080008000000040008000000040000000100000014000000"
	"1000180004000b001300140000000c0010000000140000000000000118000000"
	"0000000a1c000000040000007768656e00000000000000000000060008000600"
	"0600000000000100ffffffff00000000";

/* a List<Int32> column "xs" */
static const char js_list[] =
	"ffffffffb80000001000000000000a0010000e00070008000a00000000000001"
	"1000000000000400080008000000040008000000040000000100000004000000"
	"d8ffffff1400000000000001140000000000000c640000000200000078730000"
	"01000000140000001000180004000b001300140000000c001000000014000000"
	"0000000118000000000000021c000000040000006974656d0000000000000000"
	"08000c0008000700080000000000000120000000040004000400000000000000"
	"ffffffff00000000";

/* a LargeUtf8 column "big" */
static const char js_large_utf8[] =
	"ffffffff780000001000000000000a0010000e00070008000a00000000000001"
	"1000000000000400080008000000040008000000040000000100000014000000"
	"1000180004000b001300140000000c0010000000140000000000000114000000"
	"0000001414000000030000006269670000000000040004000400000000000000"
	"ffffffff00000000";

/* a dictionary-encoded Utf8 column "cat" */
static const char js_dictionary[] =
	"ffffffff980000001000000000000a0010000e00070008000a00000000000001"
	"0800000000000400b0ffffff04000000010000001400000010001c0008000f00"
	"1700180004001000100000003400000014000000000000011400000000000005"
	"1400000003000000636174000000000004000400040000000800080000000400"
	"080000000c00000008000c000800070008000000000000012000000000000000"
	"ffffffff00000000";

/* an int32 column "z" in a record batch with ZSTD compression (a fake codec) */
static const char js_zstd[] =
	"ffffffff800000001000000000000a0010000e00070008000a00000000000001"
	"1000000000000400080008000000040008000000040000000100000014000000"
	"1000180004000b001300140000000c0010000000140000000000000114000000"
	"0000000218000000010000007a0000000000000008000c000800070008000000"
	"0000000120000000ffffffffa000000014000000000000000c00180016000f00"
	"100004000c00000010000000000000000000000314000000000004000c001e00"
	"10000c00080004000c0000002000000024000000480000000800000000000000"
	"0000000000000600080007000600000000000001020000000000000000000000"
	"000000000000000000000000000000000e000000000000000000000001000000"
	"08000000000000000000000000000000060000000000000028b52ffd00000000"
	"ffffffff00000000";


/* ---- helpers ------------------------------------------------------------ */

typedef struct {
	uint8_t *p;
	size_t n;
} bytes;

static bytes unhex(const char *h)
{
	bytes b;
	size_t n = strlen(h) / 2;

	b.p = malloc(n ? n : 1);
	ck_assert_ptr_nonnull(b.p);
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		ck_assert_int_eq(sscanf(h + 2 * i, "%2x", &v), 1);
		b.p[i] = (uint8_t)v;
	}
	b.n = n;
	return b;
}

/* A copy of `n` bytes in an allocation of exactly that size (for ASan). */
static bytes copy(const uint8_t *p, size_t n)
{
	bytes b = { malloc(n ? n : 1), n };

	ck_assert_ptr_nonnull(b.p);
	if (n)
		memcpy(b.p, p, n);
	return b;
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

/* Test-side flatbuffer navigation over a valid stream (positions are
 * absolute: every flatbuffer offset is relative). Field `i` of the table at
 * `t`, or 0 when absent. */
static size_t tfield(const uint8_t *s, size_t t, int i)
{
	size_t vt = (size_t)((int64_t)t - (int32_t)rd32(s + t));
	unsigned vtlen = s[vt] | s[vt + 1] << 8, off;

	if (4 + 2 * (unsigned)i + 2 > vtlen)
		return 0;
	off = s[vt + 4 + 2 * i] | s[vt + 5 + 2 * i] << 8;
	return off ? t + off : 0;
}

static size_t tderef(const uint8_t *s, size_t at)
{
	return at + rd32(s + at);
}

/* Message `k` of a valid stream. */
typedef struct {
	size_t start, meta, metalen, root, header, body, body_len, end;
} loc;

static loc locate(const uint8_t *s, int k)
{
	loc l;
	size_t pos = 0;

	for (int i = 0;; i++) {
		size_t bl;
		l.start = pos;
		l.metalen = rd32(s + pos + 4);
		l.meta = pos + 8;
		l.root = l.meta + rd32(s + l.meta);
		bl = tfield(s, l.root, 3);
		l.body_len = bl ? (size_t)rd64(s + bl) : 0;
		l.header = tderef(s, tfield(s, l.root, 2));
		l.body = l.meta + l.metalen;
		l.end = l.body + l.body_len;
		if (i == k)
			return l;
		pos = l.end;
	}
}

/* The Buffer struct `k` of a record batch message, and FieldNode `k`. */
static size_t buffer_at(const uint8_t *s, loc l, int k)
{
	return tderef(s, tfield(s, l.header, 2)) + 4 + 16 * (size_t)k;
}

static size_t node_at(const uint8_t *s, loc l, int k)
{
	return tderef(s, tfield(s, l.header, 1)) + 4 + 16 * (size_t)k;
}

/* Where buffer `k`'s bytes are in the stream. */
static size_t buffer_data(const uint8_t *s, loc l, int k)
{
	return l.body + (size_t)rd64(s + buffer_at(s, l, k));
}

/* Field table `i` of the schema message. */
static size_t schema_field(const uint8_t *s, int i)
{
	loc l = locate(s, 0);
	size_t v = tderef(s, tfield(s, l.header, 1));

	return tderef(s, v + 4 + 4 * (size_t)i);
}

/* Reads a whole stream: the last status (0 at the end, or an error) and
 * the batches seen. */
static int read_all(const uint8_t *p, size_t n, unsigned flags, molt_arrow_error *e, int *nbatches)
{
	molt_arrow_reader *r = NULL;
	const molt_arrow_batch *b;
	int rc, k = 0;

	memset(e, 0, sizeof(*e));
	if ((rc = molt_arrow_reader_new(&r, p, n, flags, e)))
		return rc;
	while ((rc = molt_arrow_reader_next(r, &b, e)) == 1) {
		ck_assert_ptr_nonnull(b);
		k++;
	}
	molt_arrow_reader_free(r);
	if (nbatches)
		*nbatches = k;
	return rc;
}

/* Reading the stream fails with `code` and a message containing `needle`. */
#define assert_refused(p_, n_, code_, needle_)                                    \
	do {                                                                      \
		molt_arrow_error e_;                                              \
		int rc_ = read_all((p_), (n_), 0, &e_, NULL);                     \
		ck_assert_msg(rc_ == (code_), "got %d, want %d: %s", rc_, (code_), \
			      e_.text);                                           \
		ck_assert_msg(e_.code == rc_, "error code %d", e_.code);          \
		ck_assert_msg(strstr(e_.text, (needle_)) != NULL, "'%s' not in: %s", \
			      (needle_), e_.text);                                \
	} while (0)

/* ---- the standard table --------------------------------------------------- */

static const molt_arrow_field FIELDS[] = {
	{ "i", MOLT_ARROW_INT32, 1 }, { "l", MOLT_ARROW_INT64, 0 }, { "d", MOLT_ARROW_FLOAT64, 1 },
	{ "b", MOLT_ARROW_BOOL, 1 },  { "s", MOLT_ARROW_UTF8, 1 },
};
#define NF 5

static const int32_t B0_I[10] = { INT32_MIN, -1, 12345, 0, 1, 2, 3, 4, 5, INT32_MAX };
static const uint8_t B0_I_VALID[2] = { 0xFB, 0x03 }; /* row 2 null */
static const int64_t B0_L[10] = { INT64_MIN, -1, 0, 1, 9007199254740993LL, 6, 7, 8, 9, INT64_MAX };
static const uint8_t B0_B[2] = { 0x55, 0xFE };       /* bits past row 9 are garbage */
static const uint8_t B0_B_VALID[2] = { 0xFF, 0x01 }; /* row 9 null */
static const char B0_S[] = "zeroone" "three" "four" "\xe4\xba\x94" "six" "seven" "eight" "nine";
static const int32_t B0_S_OFF[11] = { 0, 4, 7, 7, 12, 16, 19, 22, 27, 32, 36 };
static const uint8_t B0_S_VALID[2] = { 0xFF, 0x02 }; /* row 8 null */
static const int32_t B2_I[3] = { 7, 8, 9 };
static const int64_t B2_L[3] = { 70, 80, 90 };
static const double B2_D[3] = { 0.5, -0.0, 1e300 };
static const uint8_t B2_B[1] = { 0x05 };
static const char B2_S[] = "xyz";
static const int32_t B2_S_OFF[4] = { 0, 1, 1, 3 };

static void b0_doubles(double *d)
{
	double v[10] = { NAN, -0.0, 0.0, INFINITY, -INFINITY, DBL_MAX, DBL_MIN, 5e-324, 0.1, -2.5 };

	memcpy(d, v, sizeof(v));
}

static molt_arrow_column column(const void *values, size_t values_len, const void *offsets,
				const uint8_t *validity)
{
	molt_arrow_column c;

	memset(&c, 0, sizeof(c));
	c.values = values;
	c.values_len = values_len;
	c.offsets = offsets;
	c.validity = validity;
	return c;
}

/* Schema; batch 0 (10 rows, nulls); batch 1 (empty); batch 2 (3 rows); EOS. */
static bytes standard(void)
{
	molt_arrow_writer *w;
	molt_arrow_error e;
	molt_arrow_column c[NF];
	double d[10];
	bytes out;

	b0_doubles(d);
	ck_assert_int_eq(molt_arrow_writer_new(&w, FIELDS, NF, 0, &e), 0);
	c[0] = column(B0_I, 0, NULL, B0_I_VALID);
	c[1] = column(B0_L, 0, NULL, NULL);
	c[2] = column(d, 0, NULL, NULL);
	c[3] = column(B0_B, 0, NULL, B0_B_VALID);
	c[4] = column(B0_S, sizeof(B0_S) - 1, B0_S_OFF, B0_S_VALID);
	ck_assert_msg(molt_arrow_writer_append(w, 10, c, &e) == 0, "%s", e.text);
	memset(c, 0, sizeof(c));
	ck_assert_msg(molt_arrow_writer_append(w, 0, c, &e) == 0, "%s", e.text);
	c[0] = column(B2_I, 0, NULL, NULL);
	c[1] = column(B2_L, 0, NULL, NULL);
	c[2] = column(B2_D, 0, NULL, NULL);
	c[3] = column(B2_B, 0, NULL, NULL);
	c[4] = column(B2_S, 3, B2_S_OFF, NULL);
	ck_assert_msg(molt_arrow_writer_append(w, 3, c, &e) == 0, "%s", e.text);
	ck_assert_int_eq(molt_arrow_writer_finish(w, &out.p, &out.n, &e), 0);
	molt_arrow_writer_free(w);
	return out;
}

/* ---- round trips ------------------------------------------------------------ */

START_TEST(test_standard_round_trip)
{
	bytes s = standard();
	molt_arrow_reader *r;
	const molt_arrow_batch *b;
	const molt_arrow_field *f;
	molt_arrow_error e;
	double d[10];
	size_t len;
	const char *str;

	b0_doubles(d);
	ck_assert_msg(molt_arrow_reader_new(&r, s.p, s.n, 0, &e) == 0, "%s", e.text);
	ck_assert_uint_eq(molt_arrow_reader_ncolumns(r), NF);
	f = molt_arrow_reader_fields(r);
	for (int i = 0; i < NF; i++) {
		ck_assert_str_eq(f[i].name, FIELDS[i].name);
		ck_assert_int_eq(f[i].type, FIELDS[i].type);
		ck_assert_int_eq(f[i].nullable, FIELDS[i].nullable);
	}

	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 1);
	ck_assert_int_eq(b->length, 10);
	ck_assert_uint_eq(b->ncolumns, NF);
	ck_assert_int_eq(b->columns[0].null_count, 1);
	ck_assert_int_eq(b->columns[1].null_count, 0);
	ck_assert_ptr_null(b->columns[1].validity);
	ck_assert_ptr_null(b->columns[2].validity);
	ck_assert_int_eq(b->columns[3].null_count, 1);
	ck_assert_int_eq(b->columns[4].null_count, 1);
	for (int i = 0; i < 10; i++) {
		ck_assert_int_eq(molt_arrow_is_valid(&b->columns[0], i), i != 2);
		if (i != 2)
			ck_assert_int_eq(molt_arrow_int32_at(&b->columns[0], i), B0_I[i]);
		ck_assert(molt_arrow_int64_at(&b->columns[1], i) == B0_L[i]);
		if (i == 0)
			ck_assert(isnan(molt_arrow_float64_at(&b->columns[2], i)));
		else
			ck_assert(memcmp(&(double){ molt_arrow_float64_at(&b->columns[2], i) }, &d[i],
					 sizeof(double)) == 0);
		ck_assert_int_eq(molt_arrow_is_valid(&b->columns[3], i), i != 9);
		if (i != 9)
			ck_assert_int_eq(molt_arrow_bool_at(&b->columns[3], i), (B0_B[i / 8] >> (i % 8)) & 1);
		ck_assert_int_eq(molt_arrow_is_valid(&b->columns[4], i), i != 8);
		str = molt_arrow_utf8_at(&b->columns[4], i, &len);
		ck_assert_uint_eq(len, (size_t)(B0_S_OFF[i + 1] - B0_S_OFF[i]));
		ck_assert(memcmp(str, B0_S + B0_S_OFF[i], len) == 0);
	}
	ck_assert(signbit(molt_arrow_float64_at(&b->columns[2], 1)));
	/* The writer clears bitmap bits past the last row. */
	ck_assert_int_eq(b->columns[3].values[1], 0x02);

	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 1);
	ck_assert_int_eq(b->length, 0);
	for (int i = 0; i < NF; i++)
		ck_assert_int_eq(b->columns[i].null_count, 0);

	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 1);
	ck_assert_int_eq(b->length, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(molt_arrow_int32_at(&b->columns[0], i), B2_I[i]);
		ck_assert(molt_arrow_int64_at(&b->columns[1], i) == B2_L[i]);
		ck_assert(molt_arrow_float64_at(&b->columns[2], i) == B2_D[i]);
		ck_assert_int_eq(molt_arrow_bool_at(&b->columns[3], i), i != 1);
	}
	str = molt_arrow_utf8_at(&b->columns[4], 2, &len);
	ck_assert_uint_eq(len, 2);
	ck_assert(memcmp(str, "yz", 2) == 0);

	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 0);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 0);
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

/* Writes one column of `n` rows and reads it back: the reader's column. */
static molt_arrow_reader *one_column(bytes *s, molt_arrow_field f, int64_t n, molt_arrow_column c,
				     const molt_arrow_batch **b)
{
	molt_arrow_writer *w;
	molt_arrow_reader *r;
	molt_arrow_error e;

	ck_assert_int_eq(molt_arrow_writer_new(&w, &f, 1, 0, &e), 0);
	ck_assert_msg(molt_arrow_writer_append(w, n, &c, &e) == 0, "%s", e.text);
	ck_assert_int_eq(molt_arrow_writer_finish(w, &s->p, &s->n, &e), 0);
	molt_arrow_writer_free(w);
	ck_assert_msg(molt_arrow_reader_new(&r, s->p, s->n, 0, &e) == 0, "%s", e.text);
	ck_assert_msg(molt_arrow_reader_next(r, b, &e) == 1, "%s", e.text);
	ck_assert_int_eq((*b)->length, n);
	return r;
}

START_TEST(test_int32_extremes)
{
	static const int32_t v[5] = { INT32_MIN, -1, 0, 1, INT32_MAX };
	const molt_arrow_batch *b;
	bytes s;
	molt_arrow_reader *r = one_column(&s, (molt_arrow_field){ "x", MOLT_ARROW_INT32, 0 }, 5,
					  column(v, 0, NULL, NULL), &b);

	for (int i = 0; i < 5; i++)
		ck_assert_int_eq(molt_arrow_int32_at(&b->columns[0], i), v[i]);
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

START_TEST(test_int64_extremes)
{
	static const int64_t v[4] = { INT64_MIN, INT64_MAX, 9007199254740993LL, -9007199254740993LL };
	const molt_arrow_batch *b;
	bytes s;
	molt_arrow_reader *r = one_column(&s, (molt_arrow_field){ "x", MOLT_ARROW_INT64, 0 }, 4,
					  column(v, 0, NULL, NULL), &b);

	for (int i = 0; i < 4; i++)
		ck_assert(molt_arrow_int64_at(&b->columns[0], i) == v[i]);
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

START_TEST(test_float64_bits)
{
	double v[8] = { NAN, -NAN, -0.0, INFINITY, -INFINITY, 5e-324, DBL_MAX, -DBL_MIN };
	const molt_arrow_batch *b;
	bytes s;
	molt_arrow_reader *r = one_column(&s, (molt_arrow_field){ "x", MOLT_ARROW_FLOAT64, 0 }, 8,
					  column(v, 0, NULL, NULL), &b);

	for (int i = 0; i < 8; i++) {
		double got = molt_arrow_float64_at(&b->columns[0], i);
		ck_assert_msg(memcmp(&got, &v[i], sizeof(double)) == 0, "row %d", i);
	}
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

START_TEST(test_bool_bits_and_nulls)
{
	uint8_t v[3] = { 0xA5, 0x3C, 0xFF }, valid[3] = { 0xEF, 0xFF, 0xF0 };
	const molt_arrow_batch *b;
	bytes s;
	molt_arrow_reader *r = one_column(&s, (molt_arrow_field){ "x", MOLT_ARROW_BOOL, 1 }, 19,
					  column(v, 0, NULL, valid), &b);
	const molt_arrow_column *c = &b->columns[0];

	ck_assert_int_eq(c->null_count, 4); /* rows 4, 16, 17, 18 */
	for (int i = 0; i < 19; i++) {
		ck_assert_int_eq(molt_arrow_is_valid(c, i), (valid[i / 8] >> (i % 8)) & 1);
		ck_assert_int_eq(molt_arrow_bool_at(c, i), (v[i / 8] >> (i % 8)) & 1);
	}
	ck_assert_int_eq(c->values[2], 0x07);
	ck_assert_int_eq(c->validity[2], 0x00);
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

START_TEST(test_utf8_strings)
{
	/* Offsets need not start at 0: the writer rebases them. */
	static const char data[] = "PREFIX" "" "a" "h\xc3\xa9llo" "\xe6\x97\xa5\xe6\x9c\xac"
				   "\xf0\x9f\x8e\x89" "nul\0in" "";
	static const int32_t off[7] = { 6, 6, 7, 13, 19, 23, 29 };
	const molt_arrow_batch *b;
	bytes s;
	molt_arrow_reader *r = one_column(&s, (molt_arrow_field){ "x", MOLT_ARROW_UTF8, 0 }, 6,
					  column(data, sizeof(data) - 1, off, NULL), &b);
	const molt_arrow_column *c = &b->columns[0];
	size_t len;

	ck_assert_uint_eq(c->values_len, 23); /* without PREFIX */
	ck_assert_int_eq(molt_arrow__ld32(c->offsets), 0);
	for (int i = 0; i < 6; i++) {
		const char *p = molt_arrow_utf8_at(c, i, &len);
		ck_assert_uint_eq(len, (size_t)(off[i + 1] - off[i]));
		ck_assert(memcmp(p, data + off[i], len) == 0);
	}
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

START_TEST(test_all_null_column)
{
	static const int32_t v[9];
	static const uint8_t valid[2];
	const molt_arrow_batch *b;
	bytes s;
	molt_arrow_reader *r = one_column(&s, (molt_arrow_field){ "x", MOLT_ARROW_INT32, 1 }, 9,
					  column(v, 0, NULL, valid), &b);

	ck_assert_int_eq(b->columns[0].null_count, 9);
	for (int i = 0; i < 9; i++)
		ck_assert(!molt_arrow_is_valid(&b->columns[0], i));
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

START_TEST(test_no_batches_and_no_columns)
{
	molt_arrow_writer *w;
	molt_arrow_reader *r;
	const molt_arrow_batch *b;
	molt_arrow_error e;
	bytes s;

	ck_assert_int_eq(molt_arrow_writer_new(&w, FIELDS, NF, 0, &e), 0);
	ck_assert_int_eq(molt_arrow_writer_finish(w, &s.p, &s.n, &e), 0);
	molt_arrow_writer_free(w);
	ck_assert_int_eq(molt_arrow_reader_new(&r, s.p, s.n, 0, &e), 0);
	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 0);
	molt_arrow_reader_free(r);
	free(s.p);

	ck_assert_int_eq(molt_arrow_writer_new(&w, NULL, 0, 0, &e), 0);
	ck_assert_int_eq(molt_arrow_writer_append(w, 5, NULL, &e), 0);
	ck_assert_int_eq(molt_arrow_writer_finish(w, &s.p, &s.n, &e), 0);
	molt_arrow_writer_free(w);
	ck_assert_int_eq(molt_arrow_reader_new(&r, s.p, s.n, 0, &e), 0);
	ck_assert_uint_eq(molt_arrow_reader_ncolumns(r), 0);
	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 1);
	ck_assert_int_eq(b->length, 5);
	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 0);
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

START_TEST(test_layout_is_aligned)
{
	bytes s = standard();
	molt_arrow_reader *r;
	const molt_arrow_batch *b;
	molt_arrow_error e;
	size_t pos = 0;

	/* Every message: 0xFFFFFFFF, a metadata length that keeps the body
	 * 8-aligned, a body of a multiple of 8; then the end-of-stream marker. */
	for (int k = 0; k < 4; k++) {
		loc l = locate(s.p, k);
		ck_assert_uint_eq(l.start, pos);
		ck_assert_uint_eq(rd32(s.p + pos), 0xFFFFFFFFu);
		ck_assert_uint_eq(l.metalen % 8, 0);
		ck_assert_uint_eq(l.body % 8, 0);
		ck_assert_uint_eq(l.body_len % 8, 0);
		ck_assert_int_eq(rd32(s.p + tfield(s.p, l.root, 0)) & 0xFFFF, 4); /* V5 */
		pos = l.end;
	}
	ck_assert_uint_eq(s.n, pos + 8);
	ck_assert_uint_eq(rd32(s.p + pos), 0xFFFFFFFFu);
	ck_assert_uint_eq(rd32(s.p + pos + 4), 0);
	/* Every body buffer starts 8-aligned, and int64 metadata is aligned. */
	ck_assert_int_eq(molt_arrow_reader_new(&r, s.p, s.n, 0, &e), 0);
	while (molt_arrow_reader_next(r, &b, &e) == 1) {
		for (size_t i = 0; i < b->ncolumns; i++) {
			const molt_arrow_column *c = &b->columns[i];
			ck_assert(!c->validity || (c->validity - s.p) % 8 == 0);
			ck_assert(!c->values || (c->values - s.p) % 8 == 0);
			ck_assert(!c->offsets || (c->offsets - s.p) % 8 == 0);
		}
	}
	ck_assert_uint_eq((node_at(s.p, locate(s.p, 1), 0) - 8) % 8, 0);
	ck_assert_uint_eq((buffer_at(s.p, locate(s.p, 1), 0) - 8) % 8, 0);
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

/* ---- streams from apache-arrow ------------------------------------------- */

START_TEST(test_reads_apache_arrow)
{
	bytes s = unhex(js_table);
	molt_arrow_reader *r;
	const molt_arrow_batch *b;
	const molt_arrow_field *f;
	molt_arrow_error e;
	size_t len;
	const char *str;

	ck_assert_msg(molt_arrow_reader_new(&r, s.p, s.n, 0, &e) == 0, "%s", e.text);
	ck_assert_uint_eq(molt_arrow_reader_ncolumns(r), 5);
	f = molt_arrow_reader_fields(r);
	ck_assert_str_eq(f[0].name, "i");
	ck_assert_int_eq(f[0].type, MOLT_ARROW_INT32);
	ck_assert_int_eq(f[1].type, MOLT_ARROW_INT64);
	ck_assert_int_eq(f[2].type, MOLT_ARROW_FLOAT64);
	ck_assert_int_eq(f[3].type, MOLT_ARROW_BOOL);
	ck_assert_int_eq(f[4].type, MOLT_ARROW_UTF8);
	ck_assert_str_eq(f[4].name, "s");
	ck_assert_int_eq(f[4].nullable, 1);

	ck_assert_msg(molt_arrow_reader_next(r, &b, &e) == 1, "%s", e.text);
	ck_assert_int_eq(b->length, 3);
	ck_assert_int_eq(molt_arrow_int32_at(&b->columns[0], 0), 1);
	ck_assert(!molt_arrow_is_valid(&b->columns[0], 1));
	ck_assert_int_eq(molt_arrow_int32_at(&b->columns[0], 2), -3);
	ck_assert(molt_arrow_int64_at(&b->columns[1], 1) == -20);
	ck_assert(!molt_arrow_is_valid(&b->columns[1], 2));
	ck_assert(molt_arrow_float64_at(&b->columns[2], 2) == -2.25);
	ck_assert_int_eq(molt_arrow_bool_at(&b->columns[3], 0), 1);
	ck_assert_int_eq(molt_arrow_bool_at(&b->columns[3], 1), 0);
	ck_assert(!molt_arrow_is_valid(&b->columns[3], 2));
	str = molt_arrow_utf8_at(&b->columns[4], 2, &len);
	ck_assert_uint_eq(len, 6);
	ck_assert(memcmp(str, "h\xc3\xa9llo", 6) == 0);
	ck_assert(!molt_arrow_is_valid(&b->columns[4], 1));

	ck_assert_msg(molt_arrow_reader_next(r, &b, &e) == 1, "%s", e.text);
	ck_assert_int_eq(b->length, 1);
	ck_assert_ptr_null(b->columns[0].validity);
	ck_assert(molt_arrow_int64_at(&b->columns[1], 0) == 9007199254740993LL);
	ck_assert(molt_arrow_float64_at(&b->columns[2], 0) == 1e300);
	molt_arrow_utf8_at(&b->columns[4], 0, &len);
	ck_assert_uint_eq(len, 0);
	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), 0);
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

START_TEST(test_refuses_other_types)
{
	static const struct {
		const char *hex, *needle;
		int code;
	} cases[] = {
		{ js_float32, "column 0 'f': type FloatingPoint(SINGLE) is not supported, expected int32, "
			      "int64, float64, bool or utf8", MOLT_ARROW_EUNSUPPORTED },
		{ js_uint8, "column 0 'u': type Int(bitWidth 8, unsigned) is not supported",
		  MOLT_ARROW_EUNSUPPORTED },
		{ js_int16, "column 0 'h': type Int(bitWidth 16, signed) is not supported",
		  MOLT_ARROW_EUNSUPPORTED },
		{ js_timestamp, "column 0 'when': type Timestamp is not supported", MOLT_ARROW_EUNSUPPORTED },
		{ js_list, "column 0 'xs': type List is not supported", MOLT_ARROW_EUNSUPPORTED },
		{ js_large_utf8, "column 0 'big': type LargeUtf8 is not supported", MOLT_ARROW_EUNSUPPORTED },
		{ js_dictionary, "column 0 'cat': dictionary-encoded utf8 columns are not supported",
		  MOLT_ARROW_EUNSUPPORTED },
		{ js_zstd, "message 1 (record batch 0): compressed record batches (ZSTD) are not supported",
		  MOLT_ARROW_EUNSUPPORTED },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bytes s = unhex(cases[i].hex);
		assert_refused(s.p, s.n, cases[i].code, cases[i].needle);
		free(s.p);
	}
}
END_TEST

/* ---- malformed input ------------------------------------------------------- */

START_TEST(test_truncated_everywhere)
{
	bytes s = standard();
	loc l0 = locate(s.p, 0), l1 = locate(s.p, 1), l3 = locate(s.p, 3);

	/* Every prefix is refused: no crash, no read past it (ASan), a message. */
	for (size_t n = 0; n < s.n; n++) {
		bytes t = copy(s.p, n);
		molt_arrow_error e;
		int rc = read_all(t.p, t.n, 0, &e, NULL);
		ck_assert_msg(rc == MOLT_ARROW_EINVALID, "prefix of %zu bytes: %d %s", n, rc, e.text);
		ck_assert_msg(e.text[0] != '\0', "prefix of %zu bytes: no message", n);
		/* At a message boundary the format allows a missing end marker. */
		rc = read_all(t.p, t.n, MOLT_ARROW_ALLOW_NO_EOS, &e, NULL);
		if (n == l1.start || n == locate(s.p, 2).start || n == l3.start || n == l3.end)
			ck_assert_msg(rc == 0, "boundary %zu: %s", n, e.text);
		else
			ck_assert_msg(rc == MOLT_ARROW_EINVALID, "prefix of %zu bytes: %d", n, rc);
		free(t.p);
	}
	assert_refused(s.p, 0, MOLT_ARROW_EINVALID,
		       "message 0, byte 0: expected a schema message, found the end of the stream");
	assert_refused(s.p, 3, MOLT_ARROW_EINVALID,
		       "message 0, byte 0: the stream ends 3 bytes into a message prefix");
	assert_refused(s.p, l0.end - 1, MOLT_ARROW_EINVALID,
		       "message 0, byte 4: metadata length");
	assert_refused(s.p, l1.start, MOLT_ARROW_EINVALID,
		       "message 1, byte ");
	assert_refused(s.p, l1.start, MOLT_ARROW_EINVALID,
		       "the stream ends without the end-of-stream marker (0xffffffff 0x00000000)");
	assert_refused(s.p, l1.body + 5, MOLT_ARROW_EINVALID,
		       "message 1 (record batch 0), byte ");
	assert_refused(s.p, l1.body + 5, MOLT_ARROW_EINVALID, "past the end of the stream (5 bytes left)");
	assert_refused(s.p, s.n - 4, MOLT_ARROW_EINVALID,
		       "message 4, byte ");
	assert_refused(s.p, s.n - 4, MOLT_ARROW_EINVALID, "the stream ends 4 bytes into a message prefix");
	free(s.p);
}
END_TEST

/* A fresh copy of the standard stream to break. */
#define BROKEN(s) bytes s = standard()

START_TEST(test_bad_framing)
{
	BROKEN(s);
	loc l1 = locate(s.p, 1);
	char want[128];

	s.p[0] = 0x10;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "message 0, byte 0: expected the continuation marker 0xffffffff, found 0xffffff10");
	s.p[0] = 0xFF;

	wr32(s.p + l1.start + 4, 0x7FFFFFF0);
	snprintf(want, sizeof(want), "message 1, byte %zu: metadata length 2147483632 runs past the end "
		 "of the stream (%zu bytes left)", l1.start + 4, s.n - l1.start - 8);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, want);
	wr32(s.p + l1.start + 4, 0xFFFFFFF8);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "metadata length -8 runs past the end");
	wr32(s.p + l1.start + 4, 2);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "metadata is 2 bytes, too short");
	wr32(s.p + l1.start + 4, (uint32_t)l1.metalen);

	/* bodyLength past the end */
	wr64(s.p + tfield(s.p, l1.root, 3), 1u << 30);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the message body is 1073741824 bytes, past the end");
	wr64(s.p + tfield(s.p, l1.root, 3), (uint64_t)-8);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "past the end of the stream");
	free(s.p);
}
END_TEST

START_TEST(test_bad_flatbuffer_offsets)
{
	BROKEN(s);
	loc l0 = locate(s.p, 0), l1 = locate(s.p, 1);
	size_t vt = (size_t)((int64_t)l1.root - (int32_t)rd32(s.p + l1.root)), at;
	uint8_t saved[4];
	char want[160];

	/* The root offset */
	wr32(s.p + l0.meta, 0x7FFFFFFF);
	snprintf(want, sizeof(want), "message 0, byte %zu: flatbuffer offset to Message points to "
		 "2147483647, outside the %zu-byte metadata", l0.meta, l0.metalen);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, want);
	wr32(s.p + l0.meta, (uint32_t)l0.metalen - 2);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "flatbuffer offset to Message points to");
	wr32(s.p + l0.meta, (uint32_t)(l0.root - l0.meta));

	/* The vtable's soffset */
	wr32(s.p + l1.root, 0x80000000u);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the vtable of Message is at ");
	wr32(s.p + l1.root, (uint32_t)(int32_t)-4000);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "outside the");
	wr32(s.p + l1.root, (uint32_t)(l1.root - vt));

	/* The vtable's sizes */
	memcpy(saved, s.p + vt, 4);
	s.p[vt] = 5;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the vtable of Message is 5 bytes, expected an even size");
	s.p[vt] = 0xFE;
	s.p[vt + 1] = 0x7F;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the vtable of Message is 32766 bytes");
	memcpy(s.p + vt, saved, 4);
	s.p[vt + 2] = 0xF0;
	s.p[vt + 3] = 0xFF;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "Message is 65520 bytes, expected 4 to the");
	s.p[vt + 2] = 2;
	s.p[vt + 3] = 0;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "Message is 2 bytes, expected 4 to the");
	memcpy(s.p + vt, saved, 4);

	/* A field offset past its table */
	at = s.p[vt + 4 + 6];
	s.p[vt + 4 + 6] = 200;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "Message.bodyLength: its 8 bytes at table offset 200 overrun");
	s.p[vt + 4 + 6] = (uint8_t)at;

	/* The header's uoffset, a vector's length, a vector element */
	at = tfield(s.p, l1.root, 2);
	wr32(s.p + at, 0xFFFFFF00u);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "flatbuffer offset to Message.header points to");
	wr32(s.p + at, (uint32_t)(l1.header - at));
	at = tderef(s.p, tfield(s.p, l1.header, 2));
	wr32(s.p + at, 1000000);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "RecordBatch.buffers: 1000000 elements of 16 bytes overrun the");
	wr32(s.p + at, 11);
	at = tderef(s.p, tfield(s.p, l0.header, 1));
	wr32(s.p + at, 0x40000000u);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "message 0 (schema), byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "Schema.fields: 1073741824 elements of 4 bytes");
	wr32(s.p + at, NF);
	wr32(s.p + at + 4 + 4 * 3, 0x10000);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "message 0 (schema), column 3, byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "flatbuffer offset to Schema.fields[] points to");
	free(s.p);
}
END_TEST

START_TEST(test_bad_schema)
{
	BROKEN(s);
	loc l0 = locate(s.p, 0);
	size_t f1 = schema_field(s.p, 1), at;

	at = tfield(s.p, l0.root, 0);
	s.p[at] = 2;
	assert_refused(s.p, s.n, MOLT_ARROW_EUNSUPPORTED, "metadata version V3 is not supported");
	s.p[at] = 4;
	at = tfield(s.p, l0.header, 0);
	s.p[at] = 1;
	assert_refused(s.p, s.n, MOLT_ARROW_EUNSUPPORTED, "big-endian streams are not supported");
	s.p[at] = 0;
	at = tfield(s.p, f1, 2);
	s.p[at] = 10;
	assert_refused(s.p, s.n, MOLT_ARROW_EUNSUPPORTED, "column 1 'l': type Timestamp is not supported");
	s.p[at] = 99;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "column 1 'l', byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "Field.type_type is 99, not a type");
	s.p[at] = 2;
	at = tfield(s.p, tderef(s.p, tfield(s.p, f1, 3)), 0);
	wr32(s.p + at, 63);
	assert_refused(s.p, s.n, MOLT_ARROW_EUNSUPPORTED, "type Int(bitWidth 63, signed)");
	wr32(s.p + at, 64);
	at = tderef(s.p, tfield(s.p, f1, 0));
	s.p[at + 4] = 0xC0;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "column 1, byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the field name is not NUL-free UTF-8");
	s.p[at + 4] = 0;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the field name is not NUL-free UTF-8");
	s.p[at + 4] = 'l';
	at = tderef(s.p, tfield(s.p, f1, 5));
	wr32(s.p + at, 1);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "a int64 field has 1 children, expected none");
	wr32(s.p + at, 0);
	/* The header type */
	at = tfield(s.p, l0.root, 1);
	s.p[at] = 2;
	assert_refused(s.p, s.n, MOLT_ARROW_EUNSUPPORTED, "found DictionaryBatch (dictionary encoding");
	s.p[at] = 5;
	assert_refused(s.p, s.n, MOLT_ARROW_EUNSUPPORTED, "found SparseTensor");
	s.p[at] = 9;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "found unknown");
	s.p[at] = 3;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "expected a schema message first, found RecordBatch");
	s.p[at] = 1;
	wr64(s.p + tfield(s.p, l0.root, 3), 8);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "a schema message has no body, found bodyLength 8");
	free(s.p);
}
END_TEST

START_TEST(test_bad_message_order)
{
	bytes s = standard(), t;
	loc l0 = locate(s.p, 0), l1 = locate(s.p, 1);

	/* schema, schema, ... */
	t.n = s.n + l0.end;
	t.p = malloc(t.n);
	memcpy(t.p, s.p, l0.end);
	memcpy(t.p + l0.end, s.p, s.n);
	assert_refused(t.p, t.n, MOLT_ARROW_EINVALID,
		       "expected a record batch, found a second schema message");
	free(t.p);
	/* a record batch first */
	t = copy(s.p + l1.start, s.n - l1.start);
	assert_refused(t.p, t.n, MOLT_ARROW_EINVALID,
		       "message 0 (record batch 0), byte 0: expected a schema message first, found RecordBatch");
	free(t.p);
	/* the end-of-stream marker first, trailing bytes */
	t = copy(s.p + s.n - 8, 8);
	assert_refused(t.p, t.n, MOLT_ARROW_EINVALID, "expected a schema message, found the end-of-stream marker");
	free(t.p);
	t.n = s.n + 3;
	t.p = calloc(1, t.n);
	memcpy(t.p, s.p, s.n);
	{
		char want[120];
		snprintf(want, sizeof(want), "message 4, byte %zu: expected nothing after the end-of-stream "
			 "marker, found 3 more bytes", s.n);
		assert_refused(t.p, t.n, MOLT_ARROW_EINVALID, want);
	}
	free(t.p);
	free(s.p);
}
END_TEST

START_TEST(test_bad_record_batch)
{
	BROKEN(s);
	loc l1 = locate(s.p, 1);
	size_t at, nodes = tderef(s.p, tfield(s.p, l1.header, 1));
	uint64_t v;
	char want[200];

	/* counts */
	wr32(s.p + nodes, 4);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "message 1 (record batch 0): 4 field nodes, expected 5 (one per column)");
	wr32(s.p + nodes, 5);
	at = tderef(s.p, tfield(s.p, l1.header, 2));
	wr32(s.p + at, 10);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "10 buffers, expected 11");
	wr32(s.p + at, 11);
	at = tfield(s.p, l1.header, 0);
	wr64(s.p + at, (uint64_t)-1);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the record batch has -1 rows");
	wr64(s.p + at, 11);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "column 0 'i', byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the field node has 10 rows, expected 11 like its record batch");
	wr64(s.p + at, 10);

	/* null counts */
	at = node_at(s.p, l1, 0) + 8;
	wr64(s.p + at, 11);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "null count 11, expected 0 to 10");
	wr64(s.p + at, 2);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "column 0 'i', byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "null count 2, but the validity bitmap has 1 nulls");
	wr64(s.p + at, 1);
	wr64(s.p + node_at(s.p, l1, 1) + 8, 1);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "column 1 'l', byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the field is not nullable, found a null count of 1");
	wr64(s.p + node_at(s.p, l1, 1) + 8, 0);

	/* a validity bitmap shorter than the rows */
	at = buffer_at(s.p, l1, 0) + 8;
	v = rd64(s.p + at);
	wr64(s.p + at, 1);
	snprintf(want, sizeof(want), "message 1 (record batch 0), column 0 'i', byte %zu: the validity "
		 "bitmap is 1 bytes, expected at least 2 for 10 rows", buffer_data(s.p, l1, 0));
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, want);
	wr64(s.p + at, v);

	/* buffers outside the body */
	at = buffer_at(s.p, l1, 3);
	v = rd64(s.p + at);
	wr64(s.p + at, l1.body_len - 8);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "column 1 'l'");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "buffer 3 (values) at body offset ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "lies outside the");
	wr64(s.p + at, (uint64_t)-8);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "buffer 3 (values) at body offset -8, length 80");
	wr64(s.p + at, v);
	wr64(s.p + at + 8, 0x7FFFFFFFFFFFFFFFull);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "lies outside the");
	wr64(s.p + at + 8, 79);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the values buffer is 79 bytes, expected at least 80 for 10 rows");
	wr64(s.p + at + 8, 80);
	at = buffer_at(s.p, l1, 7) + 8;
	wr64(s.p + at, 1);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "column 3 'b'");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the values buffer is 1 bytes, expected at least 2 for 10 rows");
	free(s.p);
}
END_TEST

START_TEST(test_bad_utf8)
{
	BROKEN(s);
	loc l1 = locate(s.p, 1);
	size_t off = buffer_data(s.p, l1, 9), data = buffer_data(s.p, l1, 10);
	char want[200];

	/* offsets going backwards */
	wr32(s.p + off + 4 * 4, 6);
	snprintf(want, sizeof(want), "message 1 (record batch 0), column 4 's', row 3, byte %zu: utf8 "
		 "offsets go backwards: offset 4 is 6, after 7", off);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, want);
	wr32(s.p + off + 4 * 4, 12);
	/* past the data */
	wr32(s.p + off + 4 * 10, 1000);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "column 4 's', row 9, byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "utf8 offset 10 is 1000, past the 36 bytes of character data");
	wr32(s.p + off + 4 * 10, 36);
	wr32(s.p + off, (uint32_t)-1);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "utf8 offset 0 is -1, expected 0 to 36");
	wr32(s.p + off, 0);
	/* the offsets buffer shorter than rows + 1 */
	wr64(s.p + buffer_at(s.p, l1, 9) + 8, 40);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the offsets buffer is 40 bytes, expected at least 44 for 10 rows");
	wr64(s.p + buffer_at(s.p, l1, 9) + 8, 44);
	/* invalid UTF-8: a stray continuation byte, an overlong form, a surrogate */
	s.p[data + 13] = 0x80;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "column 4 's', row 4, byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the string is not valid UTF-8 (at its byte 1)");
	s.p[data + 13] = 0xC0;
	s.p[data + 14] = 0x80;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "row 4, byte ");
	s.p[data + 13] = 0xED;
	s.p[data + 14] = 0xA0;
	s.p[data + 15] = 0x80;
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "row 4, byte ");
	memcpy(s.p + data + 13, "our", 3);
	/* a string ending inside a character: 五 is 3 bytes at 16..18 */
	wr32(s.p + off + 4 * 6, 17);
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID,
		       "row 5, byte ");
	assert_refused(s.p, s.n, MOLT_ARROW_EINVALID, "the string starts or ends inside a UTF-8 character");
	free(s.p);
}
END_TEST

/* Deterministic xorshift, for the mutation test. */
static uint32_t next_rand(uint32_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 17;
	*x ^= *x << 5;
	return *x;
}

START_TEST(test_random_mutations)
{
	bytes s = standard(), j = unhex(js_table);
	uint32_t seed = 0x2545F491u;
	int ok = 0, refused = 0;

	for (int round = 0; round < 20000; round++) {
		const bytes *src = round % 2 ? &j : &s;
		bytes t = copy(src->p, src->n);
		molt_arrow_error e;
		int rc, flips = 1 + (int)(next_rand(&seed) % 4);
		for (int k = 0; k < flips; k++) {
			uint32_t r = next_rand(&seed);
			t.p[r % t.n] = (uint8_t)(r >> 24 & 3 ? next_rand(&seed) : 0xFF);
		}
		if (round % 7 == 0)
			t.n -= next_rand(&seed) % t.n;
		rc = read_all(t.p, t.n, 0, &e, NULL);
		ck_assert_msg(rc == 0 || (rc < 0 && e.code == rc && e.text[0]), "round %d: %d", round, rc);
		rc ? refused++ : ok++;
		free(t.p);
	}
	ck_assert_int_gt(refused, 10000);
	free(s.p);
	free(j.p);
}
END_TEST

START_TEST(test_failed_reader_stays_failed)
{
	BROKEN(s);
	molt_arrow_reader *r;
	const molt_arrow_batch *b;
	molt_arrow_error e;

	wr64(s.p + node_at(s.p, locate(s.p, 1), 0) + 8, 3);
	ck_assert_int_eq(molt_arrow_reader_new(&r, s.p, s.n, 0, &e), 0);
	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), MOLT_ARROW_EINVALID);
	ck_assert_int_eq(molt_arrow_reader_next(r, &b, &e), MOLT_ARROW_EINVALID);
	ck_assert_str_eq(e.text, "the stream was refused earlier");
	ck_assert_ptr_null(b);
	molt_arrow_reader_free(r);
	molt_arrow_reader_free(NULL);
	ck_assert_int_eq(molt_arrow_reader_new(&r, s.p, s.n, 99, &e), MOLT_ARROW_EARG);
	ck_assert_int_eq(molt_arrow_reader_new(&r, s.p, s.n, 0, NULL), 0);
	ck_assert_int_eq(molt_arrow_reader_next(r, &b, NULL), MOLT_ARROW_EINVALID);
	molt_arrow_reader_free(r);
	free(s.p);
}
END_TEST

/* ---- the writer's checks ---------------------------------------------------- */

START_TEST(test_writer_refuses_bad_data)
{
	molt_arrow_writer *w;
	molt_arrow_error e;
	molt_arrow_column c[NF];
	static const int32_t i[2] = { 1, 2 };
	static const int64_t l[2] = { 1, 2 };
	static const uint8_t none_valid[1] = { 0x01 }, bits[1] = { 1 };
	static const int32_t back[3] = { 0, 2, 1 }, past[3] = { 0, 1, 9 };
	static const char bad[] = "a\xff";
	uint8_t *out;
	size_t n;
	molt_arrow_field bad_field = { "x", (molt_arrow_type)9, 0 };
	molt_arrow_field bad_name = { "\xc3", MOLT_ARROW_INT32, 0 };

	ck_assert_int_eq(molt_arrow_writer_new(&w, &bad_field, 1, 0, &e), MOLT_ARROW_EARG);
	ck_assert_str_eq(e.text, "column 0: expected a name, a type from 1 to 5 and nullable 0 or 1");
	ck_assert_int_eq(molt_arrow_writer_new(&w, &bad_name, 1, 0, &e), MOLT_ARROW_EARG);
	ck_assert_str_eq(e.text, "column 0: the column name is not UTF-8");

	ck_assert_int_eq(molt_arrow_writer_new(&w, FIELDS, NF, 0, &e), 0);
	c[0] = column(i, 0, NULL, NULL);
	c[1] = column(l, 0, NULL, none_valid);
	c[2] = column(l, 0, NULL, NULL);
	c[3] = column(bits, 0, NULL, NULL);
	c[4] = column("ab", 2, back, NULL);
	ck_assert_int_eq(molt_arrow_writer_append(w, 2, c, &e), MOLT_ARROW_EARG);
	ck_assert_str_eq(e.text, "batch 0, column 1 'l', row 1: the column is not nullable, found 1 "
				 "nulls in its validity bitmap");
	c[1].validity = NULL;
	ck_assert_int_eq(molt_arrow_writer_append(w, 2, c, &e), MOLT_ARROW_EARG);
	ck_assert_str_eq(e.text, "batch 0, column 4 's', row 1: utf8 offsets go backwards: offset 2 is "
				 "1, after 2");
	c[4] = column("ab", 2, past, NULL);
	ck_assert_int_eq(molt_arrow_writer_append(w, 2, c, &e), MOLT_ARROW_EARG);
	ck_assert(strstr(e.text, "utf8 offset 2 is 9, past the 2 bytes of character data"));
	c[4] = column(bad, 2, (int32_t[3]){ 0, 1, 2 }, NULL);
	ck_assert_int_eq(molt_arrow_writer_append(w, 2, c, &e), MOLT_ARROW_EARG);
	ck_assert_str_eq(e.text, "batch 0, column 4 's', row 1: the string is not valid UTF-8 (at its byte 0)");
	c[4] = column(NULL, 0, NULL, NULL);
	ck_assert_int_eq(molt_arrow_writer_append(w, 2, c, &e), MOLT_ARROW_EARG);
	ck_assert_str_eq(e.text, "batch 0, column 4 's': a utf8 column needs offsets");
	c[4] = column("ab", 2, (int32_t[3]){ 0, 1, 2 }, NULL);
	c[0].values = NULL;
	ck_assert_int_eq(molt_arrow_writer_append(w, 2, c, &e), MOLT_ARROW_EARG);
	ck_assert_str_eq(e.text, "batch 0, column 0 'i': values is NULL for 2 rows");
	c[0].values = (const uint8_t *)i;
	ck_assert_int_eq(molt_arrow_writer_append(w, -1, c, &e), MOLT_ARROW_EARG);
	/* Nothing half-written: the good batch after the bad ones reads fine. */
	ck_assert_msg(molt_arrow_writer_append(w, 2, c, &e) == 0, "%s", e.text);
	ck_assert_int_eq(molt_arrow_writer_finish(w, &out, &n, &e), 0);
	ck_assert_int_eq(molt_arrow_writer_finish(w, &out, &n, &e), MOLT_ARROW_EARG);
	ck_assert(strstr(e.text, "(the stream is finished)"));
	ck_assert_int_eq(molt_arrow_writer_append(w, 2, c, &e), MOLT_ARROW_EARG);
	{
		molt_arrow_error re;
		int nb = 0;
		ck_assert_int_eq(read_all(out, n, 0, &re, &nb), 0);
		ck_assert_int_eq(nb, 1);
	}
	free(out);
	molt_arrow_writer_free(w);
	molt_arrow_writer_free(NULL);
}
END_TEST

START_TEST(test_writer_limit)
{
	molt_arrow_writer *w;
	molt_arrow_error e;
	static const int64_t v[64];
	molt_arrow_field f = { "x", MOLT_ARROW_INT64, 0 };
	molt_arrow_column c = column(v, 0, NULL, NULL);
	uint8_t *out;
	size_t n;
	int nb = 0;

	ck_assert_int_eq(molt_arrow_writer_new(&w, &f, 1, 64, &e), MOLT_ARROW_ELIMIT);
	ck_assert_str_eq(e.text, "the stream would grow past its limit of 64 bytes");
	ck_assert_int_eq(molt_arrow_writer_new(&w, &f, 1, 600, &e), 0);
	ck_assert_int_eq(molt_arrow_writer_append(w, 8, &c, &e), 0);
	ck_assert_int_eq(molt_arrow_writer_append(w, 64, &c, &e), MOLT_ARROW_ELIMIT);
	ck_assert_str_eq(e.text, "batch 1: the stream would grow past its limit of 600 bytes");
	ck_assert_int_eq(molt_arrow_writer_finish(w, &out, &n, &e), 0);
	ck_assert_uint_le(n, 600);
	ck_assert_int_eq(read_all(out, n, 0, &e, &nb), 0);
	ck_assert_int_eq(nb, 1);
	free(out);
	molt_arrow_writer_free(w);
}
END_TEST

/* ---- validation --------------------------------------------------------------- */

START_TEST(test_validate)
{
	bytes s = standard();
	molt_arrow_field want[NF + 1];
	molt_arrow_error e;
	int64_t rows = -1;

	memcpy(want, FIELDS, sizeof(FIELDS));
	ck_assert_msg(molt_arrow_validate(s.p, s.n, want, NF, &rows, &e) == 0, "%s", e.text);
	ck_assert_int_eq(rows, 13);

	want[2].name = "dd";
	ck_assert_int_eq(molt_arrow_validate(s.p, s.n, want, NF, &rows, &e), MOLT_ARROW_EMISMATCH);
	ck_assert_str_eq(e.text, "message 0 (schema), column 2: expected 'dd' float64, found 'd' float64");
	ck_assert_int_eq(e.column, 2);
	ck_assert_int_eq(rows, 0);
	want[2].name = "d";
	want[3].type = MOLT_ARROW_INT32;
	ck_assert_int_eq(molt_arrow_validate(s.p, s.n, want, NF, NULL, &e), MOLT_ARROW_EMISMATCH);
	ck_assert_str_eq(e.text, "message 0 (schema), column 3: expected 'b' int32, found 'b' bool");
	want[3].type = MOLT_ARROW_BOOL;
	ck_assert_int_eq(molt_arrow_validate(s.p, s.n, want, NF - 1, NULL, &e), MOLT_ARROW_EMISMATCH);
	ck_assert_str_eq(e.text, "message 0 (schema), column 4: expected no column (4 in all), found 's' utf8");
	want[NF] = (molt_arrow_field){ "extra", MOLT_ARROW_UTF8, 1 };
	ck_assert_int_eq(molt_arrow_validate(s.p, s.n, want, NF + 1, NULL, &e), MOLT_ARROW_EMISMATCH);
	ck_assert_str_eq(e.text, "message 0 (schema), column 5: expected 'extra' utf8, found no column (5 in all)");
	/* Values, not declarations: nulls in a column the schema says is not nullable. */
	want[4].nullable = 0;
	ck_assert_int_eq(molt_arrow_validate(s.p, s.n, want, NF, NULL, &e), MOLT_ARROW_EMISMATCH);
	ck_assert_str_eq(e.text, "message 1 (record batch 0), column 4 's', row 8: expected a value (the "
				 "column is not nullable), found null (row 8 of the table)");
	ck_assert_int_eq(e.row, 8);
	ck_assert_int_eq(e.message, 1);
	want[4].nullable = 1;
	/* A malformed stream: the reader's error. */
	s.p[0] = 0;
	ck_assert_int_eq(molt_arrow_validate(s.p, s.n, want, NF, NULL, &e), MOLT_ARROW_EINVALID);
	ck_assert(strstr(e.text, "expected the continuation marker"));
	free(s.p);
}
END_TEST

START_TEST(test_type_names)
{
	molt_arrow_type t;

	for (int i = MOLT_ARROW_INT32; i <= MOLT_ARROW_UTF8; i++) {
		const char *n = molt_arrow_type_name((molt_arrow_type)i);
		ck_assert_int_eq(molt_arrow_type_parse(&t, n, strlen(n)), 0);
		ck_assert_int_eq(t, i);
	}
	ck_assert_str_eq(molt_arrow_type_name(MOLT_ARROW_FLOAT64), "float64");
	ck_assert_str_eq(molt_arrow_type_name((molt_arrow_type)0), "?");
	ck_assert_int_eq(molt_arrow_type_parse(&t, "int3", 4), MOLT_ARROW_EARG);
	ck_assert_int_eq(molt_arrow_type_parse(&t, "int32x", 6), MOLT_ARROW_EARG);
}
END_TEST

START_TEST(test_long_names_are_cut_in_messages)
{
	char name[200];
	molt_arrow_field f = { name, MOLT_ARROW_INT32, 0 };
	molt_arrow_writer *w;
	molt_arrow_error e;
	static const uint8_t valid[1] = { 0 };
	static const int32_t v[1];
	molt_arrow_column c = column(v, 0, NULL, valid);

	memset(name, 'n', sizeof(name));
	memcpy(name + 46, "\xe6\x97\xa5", 3); /* a character across the cut */
	name[10] = '\n';
	name[199] = '\0';
	ck_assert_int_eq(molt_arrow_writer_new(&w, &f, 1, 0, &e), 0);
	ck_assert_int_eq(molt_arrow_writer_append(w, 1, &c, &e), MOLT_ARROW_EARG);
	ck_assert_msg(strstr(e.text, "column 0 'nnnnnnnnnn?nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...', row 0:"),
		      "%s", e.text);
	molt_arrow_writer_free(w);
}
END_TEST

static Suite *arrow_suite(void)
{
	Suite *s = suite_create("arrow");
	TCase *tc_rt = tcase_create("round_trip");
	TCase *tc_js = tcase_create("apache_arrow");
	TCase *tc_bad = tcase_create("malformed");
	TCase *tc_w = tcase_create("writer");
	TCase *tc_v = tcase_create("validate");

	tcase_add_test(tc_rt, test_standard_round_trip);
	tcase_add_test(tc_rt, test_int32_extremes);
	tcase_add_test(tc_rt, test_int64_extremes);
	tcase_add_test(tc_rt, test_float64_bits);
	tcase_add_test(tc_rt, test_bool_bits_and_nulls);
	tcase_add_test(tc_rt, test_utf8_strings);
	tcase_add_test(tc_rt, test_all_null_column);
	tcase_add_test(tc_rt, test_no_batches_and_no_columns);
	tcase_add_test(tc_rt, test_layout_is_aligned);
	tcase_add_test(tc_js, test_reads_apache_arrow);
	tcase_add_test(tc_js, test_refuses_other_types);
	tcase_add_test(tc_bad, test_truncated_everywhere);
	tcase_add_test(tc_bad, test_bad_framing);
	tcase_add_test(tc_bad, test_bad_flatbuffer_offsets);
	tcase_add_test(tc_bad, test_bad_schema);
	tcase_add_test(tc_bad, test_bad_message_order);
	tcase_add_test(tc_bad, test_bad_record_batch);
	tcase_add_test(tc_bad, test_bad_utf8);
	tcase_add_test(tc_bad, test_random_mutations);
	tcase_add_test(tc_bad, test_failed_reader_stays_failed);
	tcase_set_timeout(tc_bad, 120);
	tcase_add_test(tc_w, test_writer_refuses_bad_data);
	tcase_add_test(tc_w, test_writer_limit);
	tcase_add_test(tc_w, test_long_names_are_cut_in_messages);
	tcase_add_test(tc_v, test_validate);
	tcase_add_test(tc_v, test_type_names);
	suite_add_tcase(s, tc_rt);
	suite_add_tcase(s, tc_js);
	suite_add_tcase(s, tc_bad);
	suite_add_tcase(s, tc_w);
	suite_add_tcase(s, tc_v);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(arrow_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
