/* Arrow IPC stream format: a reader, a writer and a validator for flat tables
 * of int32, int64, float64, bool and utf8 columns, nullable or not, in one or
 * more record batches (docs/arrow.md).
 *
 * Plain C11 for wasm32 and native: no stdio, no global state, memory only
 * through malloc/free. Every offset and length read from a stream is checked
 * against the bytes it points into before it is used, so the reader is safe
 * on untrusted input. Fallible functions return 0 (or a count) or a negative
 * MOLT_ARROW_E* code and, when `err` is not NULL, fill it with what was
 * expected, what was found and where. */
#ifndef MOLT_ARROW_H
#define MOLT_ARROW_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libmolt exports these; inside a unit they stay hidden (a unit exports the
 * ABI and nothing else). */
#ifdef MOLT_ARROW_EXPORT
#define MOLT_ARROW_API __attribute__((visibility("default")))
#else
#define MOLT_ARROW_API
#endif

/* Status codes. */
enum {
	MOLT_ARROW_OK = 0,
	MOLT_ARROW_EINVALID = -1,     /* malformed stream: bounds, lengths, inconsistent counts */
	MOLT_ARROW_EUNSUPPORTED = -2, /* well-formed, outside the subset (type, dictionary, compression) */
	MOLT_ARROW_EMISMATCH = -3,    /* molt_arrow_validate: not the expected columns or nulls */
	MOLT_ARROW_EARG = -4,         /* bad arguments, e.g. writer data that breaks its own field */
	MOLT_ARROW_ENOMEM = -5,       /* malloc failed */
	MOLT_ARROW_ELIMIT = -6,       /* the writer's output would exceed its max_bytes */
};

/* The column types (schema files name them "int32", "int64", ...). */
typedef enum {
	MOLT_ARROW_INT32 = 1,   /* Int(32, signed) */
	MOLT_ARROW_INT64 = 2,   /* Int(64, signed) */
	MOLT_ARROW_FLOAT64 = 3, /* FloatingPoint(DOUBLE) */
	MOLT_ARROW_BOOL = 4,    /* Bool, bit-packed */
	MOLT_ARROW_UTF8 = 5,    /* Utf8, int32 offsets */
	/* Read only, with MOLT_ARROW_NARROW (the writer and schemas keep the
	 * five above): */
	MOLT_ARROW_INT8 = 6,    /* Int(8, signed) */
	MOLT_ARROW_INT16 = 7,   /* Int(16, signed) */
	MOLT_ARROW_FLOAT32 = 8, /* FloatingPoint(SINGLE) */
} molt_arrow_type;

#define MOLT_ARROW_ERROR_MAX 320

/* Where and why the last call failed. Indices are -1 when they do not apply. */
typedef struct {
	int code;          /* the status the call returned */
	int32_t message;   /* IPC message index in the stream (0: the schema) */
	int32_t column;    /* column index */
	int64_t row;       /* row within the record batch (within the writer's batch) */
	int64_t offset;    /* byte offset in the stream */
	char text[MOLT_ARROW_ERROR_MAX]; /* NUL-terminated; may be truncated */
} molt_arrow_error;

/* A column: its name, type and whether it may hold nulls. */
typedef struct {
	const char *name;      /* UTF-8, NUL-terminated */
	molt_arrow_type type;
	int nullable;          /* 0 or 1 */
} molt_arrow_field;

/* One column of one record batch. The reader fills it with pointers into the
 * stream (no copy; little-endian, possibly unaligned: read values with the
 * accessors below); the writer reads it from the caller. */
typedef struct {
	const uint8_t *validity; /* bit i (LSB first) set: row i is valid; NULL: no nulls */
	const uint8_t *values;   /* int32/int64/float64: the values; bool: bits, LSB first; utf8: the bytes */
	const uint8_t *offsets;  /* utf8: length + 1 int32, non-decreasing, within values_len; else NULL */
	size_t values_len;       /* bytes at values (the writer reads it for utf8 only) */
	int64_t null_count;      /* reader: nulls in the column; ignored by the writer */
} molt_arrow_column;

/* A record batch as the reader returns it (owned by the reader). */
typedef struct {
	int64_t length;                   /* rows */
	size_t ncolumns;                  /* as in the schema */
	const molt_arrow_column *columns; /* in schema order */
} molt_arrow_batch;

/* "int32", "int64", "float64", "bool", "utf8", "int8", "int16", "float32",
 * or "?" for anything else. */
MOLT_ARROW_API const char *molt_arrow_type_name(molt_arrow_type t);

/* Parses a type name (`len` bytes) into *out; MOLT_ARROW_EARG if unknown. */
MOLT_ARROW_API int molt_arrow_type_parse(molt_arrow_type *out, const char *name, size_t len);

/* ---- reading --------------------------------------------------------- */

typedef struct molt_arrow_reader molt_arrow_reader;

/* Accept a stream that stops at a message boundary without the
 * end-of-stream marker (the format allows it; by default such a stream is
 * refused as truncated). */
#define MOLT_ARROW_ALLOW_NO_EOS 1u

/* Also accept Int(8/16, signed) and FloatingPoint(SINGLE) columns
 * (MOLT_ARROW_INT8, _INT16, _FLOAT32; read them with molt_arrow_int_at and
 * molt_arrow_float_at, which widen). Without this flag they are refused as
 * before, so callers that know only the five writer types never see them. */
#define MOLT_ARROW_NARROW 2u

/* Opens the stream in `data` (`len` bytes) and reads its schema message.
 * `data` is borrowed: it must outlive the reader and every batch it returns.
 * The caller frees *out with molt_arrow_reader_free. */
MOLT_ARROW_API int molt_arrow_reader_new(molt_arrow_reader **out, const void *data, size_t len,
					 unsigned flags, molt_arrow_error *err);

/* The number of columns in the schema. */
MOLT_ARROW_API size_t molt_arrow_reader_ncolumns(const molt_arrow_reader *r);

/* The schema's columns (ncolumns of them), owned by the reader. */
MOLT_ARROW_API const molt_arrow_field *molt_arrow_reader_fields(const molt_arrow_reader *r);

/* Reads the next record batch, fully checked (bounds, counts, offsets, UTF-8,
 * null counts): returns 1 and sets *batch (valid until the next call or the
 * free), 0 at the end of the stream, or a negative code; after an error
 * every later call fails too. */
MOLT_ARROW_API int molt_arrow_reader_next(molt_arrow_reader *r, const molt_arrow_batch **batch,
					  molt_arrow_error *err);

/* Frees the reader and its batches; NULL is a no-op. */
MOLT_ARROW_API void molt_arrow_reader_free(molt_arrow_reader *r);

/* Reads the whole stream in `data` and checks it against `expected`
 * (`n` columns): same names in the same order, same types, and no null in a
 * column that is not nullable (the stream's own nullable flags are not
 * compared: values are). Sets *rows (if not NULL) to the total row count.
 * MOLT_ARROW_EMISMATCH when the stream is well-formed but does not match. */
MOLT_ARROW_API int molt_arrow_validate(const void *data, size_t len, const molt_arrow_field *expected,
				       size_t n, int64_t *rows, molt_arrow_error *err);

/* ---- writing --------------------------------------------------------- */

typedef struct molt_arrow_writer molt_arrow_writer;

/* Starts a stream with these columns (copied) and writes its schema message.
 * The stream may not grow past `max_bytes` (0: no limit) - appends beyond it
 * fail with MOLT_ARROW_ELIMIT. The caller frees *out with
 * molt_arrow_writer_free. */
MOLT_ARROW_API int molt_arrow_writer_new(molt_arrow_writer **out, const molt_arrow_field *fields,
					 size_t n, size_t max_bytes, molt_arrow_error *err);

/* Appends a record batch of `length` rows from `columns` (one per field, in
 * order; read, not kept): int32/int64/float64 `values` hold length native
 * values; bool `values` holds length bits; utf8 needs `offsets` (length + 1
 * int32; may be NULL when length is 0) into `values` (`values_len` bytes).
 * `validity` may be NULL (no nulls). The data is checked (offsets, UTF-8,
 * nulls in a non-nullable field: MOLT_ARROW_EARG) so the stream is always
 * readable. On failure nothing is appended. */
MOLT_ARROW_API int molt_arrow_writer_append(molt_arrow_writer *w, int64_t length,
					    const molt_arrow_column *columns, molt_arrow_error *err);

/* Ends the stream (end-of-stream marker) and hands it over: the caller frees
 * *out with free(). The writer accepts nothing more, except the free. */
MOLT_ARROW_API int molt_arrow_writer_finish(molt_arrow_writer *w, uint8_t **out, size_t *out_len,
					    molt_arrow_error *err);

/* Frees the writer (and the stream, if not handed over); NULL is a no-op. */
MOLT_ARROW_API void molt_arrow_writer_free(molt_arrow_writer *w);

/* ---- reading values (no checks: `row` < the batch's length) --------------- */

/* A little-endian 32-bit load from a possibly unaligned address. */
static inline uint32_t molt_arrow__ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A little-endian 64-bit load from a possibly unaligned address. */
static inline uint64_t molt_arrow__ld64(const uint8_t *p)
{
	return (uint64_t)molt_arrow__ld32(p) | (uint64_t)molt_arrow__ld32(p + 4) << 32;
}

/* 1 if the row holds a value, 0 if it is null. */
static inline int molt_arrow_is_valid(const molt_arrow_column *c, int64_t row)
{
	return !c->validity || (c->validity[row >> 3] >> (row & 7) & 1);
}

/* The value of an int32 column (unspecified at a null row). */
static inline int32_t molt_arrow_int32_at(const molt_arrow_column *c, int64_t row)
{
	return (int32_t)molt_arrow__ld32(c->values + 4 * (size_t)row);
}

/* The value of an int64 column. */
static inline int64_t molt_arrow_int64_at(const molt_arrow_column *c, int64_t row)
{
	return (int64_t)molt_arrow__ld64(c->values + 8 * (size_t)row);
}

/* The value of a float64 column. */
static inline double molt_arrow_float64_at(const molt_arrow_column *c, int64_t row)
{
	uint64_t u = molt_arrow__ld64(c->values + 8 * (size_t)row);
	double d;

	memcpy(&d, &u, sizeof(d));
	return d;
}

/* The value of an int8/int16/int32/int64 column, widened to int64. */
static inline int64_t molt_arrow_int_at(const molt_arrow_column *c, molt_arrow_type t, int64_t row)
{
	switch (t) {
	case MOLT_ARROW_INT8: return (int8_t)c->values[row];
	case MOLT_ARROW_INT16:
		return (int16_t)(uint16_t)(c->values[2 * (size_t)row] |
					   (unsigned)c->values[2 * (size_t)row + 1] << 8);
	case MOLT_ARROW_INT32: return molt_arrow_int32_at(c, row);
	default: return molt_arrow_int64_at(c, row);
	}
}

/* The value of a float32/float64 column, widened to double (exactly). */
static inline double molt_arrow_float_at(const molt_arrow_column *c, molt_arrow_type t, int64_t row)
{
	if (t == MOLT_ARROW_FLOAT32) {
		uint32_t u = molt_arrow__ld32(c->values + 4 * (size_t)row);
		float f;

		memcpy(&f, &u, sizeof(f));
		return (double)f;
	}
	return molt_arrow_float64_at(c, row);
}

/* The value of a bool column, 0 or 1. */
static inline int molt_arrow_bool_at(const molt_arrow_column *c, int64_t row)
{
	return c->values[row >> 3] >> (row & 7) & 1;
}

/* The bytes of a utf8 value (not NUL-terminated); *len gets their count. */
static inline const char *molt_arrow_utf8_at(const molt_arrow_column *c, int64_t row, size_t *len)
{
	uint32_t a = molt_arrow__ld32(c->offsets + 4 * (size_t)row);
	uint32_t b = molt_arrow__ld32(c->offsets + 4 * (size_t)row + 4);

	*len = b - a;
	return (const char *)c->values + a;
}

#ifdef __cplusplus
}
#endif

#endif
