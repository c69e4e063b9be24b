/* arrow_tool: the C Arrow IPC reader and writer (molt/arrow.h) as a small CLI
 * for tests/cli/arrow.sh, which checks it against apache-arrow both ways.
 *
 *   arrow_tool write OUT           the fixed table below, as a stream
 *   arrow_tool read IN             its rows as JSON lines
 *   arrow_tool read-narrow IN      the same, also taking int8, int16 and
 *                                  float32 columns (MOLT_ARROW_NARROW)
 *   arrow_tool info IN             columns and batch lengths, one JSON line
 *   arrow_tool copy IN OUT         read, then write again with the C writer
 *   arrow_tool validate IN COLS    check against COLS: name:type[?],... (? nullable)
 *
 * Exit status: 0 done, 1 the stream was refused (or did not match),
 * 2 usage or unreadable input, 3 the output could not be written. */
#include "molt/arrow.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_INPUT (1u << 30) /* bytes read from a file at most */

static const char *prog = "arrow_tool";

static int usage(void)
{
	fprintf(stderr, "usage: %s write OUT | read IN | read-narrow IN | info IN | copy IN OUT | "
			"validate IN name:type[?],...\n", prog);
	return 2;
}

static int refused(const char *file, const molt_arrow_error *e)
{
	fprintf(stderr, "%s: %s: %s\n", prog, file, e->text);
	return 1;
}

/* Reads a whole file (at most MAX_INPUT bytes) into *out. */
static int slurp(const char *path, uint8_t **out, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *p = NULL, *q;
	size_t n = 0, cap = 0, got;

	if (!f) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return 2;
	}
	do {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			if (cap > MAX_INPUT + 1 || !(q = realloc(p, cap))) {
				fprintf(stderr, "%s: %s: larger than %u bytes\n", prog, path, MAX_INPUT);
				free(p);
				fclose(f);
				return 2;
			}
			p = q;
		}
		got = fread(p + n, 1, cap - n, f);
		n += got;
	} while (got);
	if (ferror(f)) {
		fprintf(stderr, "%s: %s: read error\n", prog, path);
		free(p);
		fclose(f);
		return 2;
	}
	fclose(f);
	*out = p;
	*len = n;
	return 0;
}

static int spill(const char *path, const uint8_t *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (!f || fwrite(p, 1, n, f) != n || fclose(f)) {
		fprintf(stderr, "%s: %s: %s\n", prog, path, strerror(errno));
		return 3;
	}
	return 0;
}

/* ---- write: the fixed table ----------------------------------------------- */

static const molt_arrow_field FIELDS[] = {
	{ "i32", MOLT_ARROW_INT32, 1 }, { "i64", MOLT_ARROW_INT64, 1 },
	{ "f64", MOLT_ARROW_FLOAT64, 1 }, { "flag", MOLT_ARROW_BOOL, 1 },
	{ "name", MOLT_ARROW_UTF8, 1 }, { "id", MOLT_ARROW_INT32, 0 },
};
#define NF (sizeof(FIELDS) / sizeof(FIELDS[0]))

/* Row values of the fixed table, by column; NULL strings and `null` bits
 * mark nulls (tests/cli/arrow.sh holds the same table in JavaScript). */
typedef struct {
	int n, id0;                /* rows; the id of the first */
	int32_t i32[11];
	int64_t i64[11];
	double f64[11];
	int flag[11];
	const char *name[11];
	unsigned null_i32, null_i64, null_f64, null_flag; /* bit r: row r is null */
} batch_def;

static void set_bit(uint8_t *bits, int i, int v)
{
	if (v)
		bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static int append(molt_arrow_writer *w, const batch_def *d, molt_arrow_error *e)
{
	uint8_t valid[5][2] = { { 0 } }, flags[2] = { 0 };
	int32_t off[12] = { 0 }, id[11];
	char text[512];
	size_t used = 0;
	molt_arrow_column c[NF];
	unsigned nulls[4] = { d->null_i32, d->null_i64, d->null_f64, d->null_flag };

	memset(c, 0, sizeof(c));
	for (int r = 0; r < d->n; r++) {
		for (int k = 0; k < 4; k++)
			set_bit(valid[k], r, !(nulls[k] >> r & 1));
		set_bit(valid[4], r, d->name[r] != NULL);
		set_bit(flags, r, d->flag[r]);
		if (d->name[r]) {
			size_t len = strlen(d->name[r]);
			memcpy(text + used, d->name[r], len);
			used += len;
		}
		off[r + 1] = (int32_t)used;
		id[r] = (int32_t)(d->id0 + r);
	}
	c[0].values = (const uint8_t *)d->i32;
	c[1].values = (const uint8_t *)d->i64;
	c[2].values = (const uint8_t *)d->f64;
	c[3].values = flags;
	c[4].values = (const uint8_t *)text;
	c[4].values_len = used;
	c[4].offsets = (const uint8_t *)off;
	c[5].values = (const uint8_t *)id;
	for (int k = 0; k < 5; k++)
		c[k].validity = valid[k];
	return molt_arrow_writer_append(w, d->n, c, e);
}

static int cmd_write(const char *out)
{
	static const batch_def batches[] = {
		{ 5, 0,
		  { INT32_MIN, -1, 0, 0, INT32_MAX },
		  { INT64_MIN, 0, 0, 9007199254740993LL, INT64_MAX },
		  { NAN, -0.0, 0, INFINITY, 0.1 },
		  { 1, 0, 0, 1, 0 },
		  { "", "h\xc3\xa9llo", NULL, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x8e\x89",
		    "quote\" backslash\\ newline\n tab\t" },
		  1u << 2, 1u << 1, 1u << 2, 1u << 2 },
		{ 0, 5, { 0 }, { 0 }, { 0 }, { 0 }, { NULL }, 0, 0, 0, 0 },
		{ 11, 5,
		  { -5000, -4000, -3000, 0, -1000, 0, 1000, 2000, 3000, 0, 5000 },
		  { 0, -9223372036854775807LL, 1000000000000000000LL, -1, 1, 4294967296LL,
		    -4294967297LL, 123456789012345678LL, 0, 42, -42 },
		  { -INFINITY, 5e-324, 1.7976931348623157e308, -2.2250738585072014e-308, 1.5,
		    -0.0, 3.141592653589793, 1e-7, 123456789.125, -1e21, 0 },
		  { 1, 0, 1, 0, 1, 0, 1, 0, 0, 0, 1 },
		  { "r0", "r1", "r2", "r3", "\xf0\x9f\xa6\x80", "", "ctl\x01\x1f", NULL, "r8",
		    "\xc3\xa9\xc3\xa9", "r10" },
		  1u << 3 | 1u << 9, 1u << 0, 1u << 10, 1u << 8 },
		{ 3, 16, { 0 }, { 0 }, { 0 }, { 0 }, { NULL, NULL, NULL }, 7, 7, 7, 7 },
	};
	molt_arrow_writer *w = NULL;
	molt_arrow_error e;
	uint8_t *bytes = NULL;
	size_t n = 0;
	int rc = 0;

	if (molt_arrow_writer_new(&w, FIELDS, NF, 0, &e)) {
		rc = refused(out, &e);
		goto done;
	}
	for (size_t i = 0; i < sizeof(batches) / sizeof(batches[0]); i++) {
		if (append(w, &batches[i], &e)) {
			rc = refused(out, &e);
			goto done;
		}
	}
	if (molt_arrow_writer_finish(w, &bytes, &n, &e)) {
		rc = refused(out, &e);
		goto done;
	}
	rc = spill(out, bytes, n);
done:
	free(bytes);
	molt_arrow_writer_free(w);
	return rc;
}

/* ---- read, info -------------------------------------------------------------- */

static void json_string(const char *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\')
			printf("\\%c", c);
		else if (c == '\n')
			fputs("\\n", stdout);
		else if (c == '\t')
			fputs("\\t", stdout);
		else if (c < 0x20)
			printf("\\u%04x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void json_double(double d)
{
	if (isnan(d))
		fputs("\"NaN\"", stdout);
	else if (isinf(d))
		fputs(d > 0 ? "\"Infinity\"" : "\"-Infinity\"", stdout);
	else
		printf("%.17g", d);
}

static void print_row(const molt_arrow_field *f, const molt_arrow_batch *b, int64_t r)
{
	putchar('{');
	for (size_t i = 0; i < b->ncolumns; i++) {
		const molt_arrow_column *c = &b->columns[i];
		size_t len;
		const char *s;
		if (i)
			putchar(',');
		json_string(f[i].name, strlen(f[i].name));
		putchar(':');
		if (!molt_arrow_is_valid(c, r)) {
			fputs("null", stdout);
			continue;
		}
		switch (f[i].type) {
		case MOLT_ARROW_INT32:
			printf("%d", (int)molt_arrow_int32_at(c, r));
			break;
		case MOLT_ARROW_INT64:
			printf("\"%lld\"", (long long)molt_arrow_int64_at(c, r));
			break;
		case MOLT_ARROW_FLOAT64:
			json_double(molt_arrow_float64_at(c, r));
			break;
		case MOLT_ARROW_BOOL:
			fputs(molt_arrow_bool_at(c, r) ? "true" : "false", stdout);
			break;
		case MOLT_ARROW_UTF8:
			s = molt_arrow_utf8_at(c, r, &len);
			json_string(s, len);
			break;
		case MOLT_ARROW_INT8:
		case MOLT_ARROW_INT16:
			printf("%lld", (long long)molt_arrow_int_at(c, f[i].type, r));
			break;
		case MOLT_ARROW_FLOAT32:
			json_double(molt_arrow_float_at(c, f[i].type, r));
			break;
		}
	}
	puts("}");
}

/* read, info and copy: walks the stream; `out` (copy) gets it rewritten. */
static int walk(const char *cmd, const char *in, const char *out)
{
	molt_arrow_reader *r = NULL;
	molt_arrow_writer *w = NULL;
	const molt_arrow_batch *b;
	const molt_arrow_field *f;
	molt_arrow_error e;
	uint8_t *data = NULL, *bytes = NULL;
	size_t len, n = 0;
	int rc, info = !strcmp(cmd, "info"), copy = !strcmp(cmd, "copy"), first = 1;

	if ((rc = slurp(in, &data, &len)))
		return rc;
	if (molt_arrow_reader_new(&r, data, len, !strcmp(cmd, "read-narrow") ? MOLT_ARROW_NARROW : 0,
				  &e)) {
		rc = refused(in, &e);
		goto done;
	}
	f = molt_arrow_reader_fields(r);
	if (copy && molt_arrow_writer_new(&w, f, molt_arrow_reader_ncolumns(r), 0, &e)) {
		rc = refused(out, &e);
		goto done;
	}
	if (info) {
		fputs("{\"columns\":[", stdout);
		for (size_t i = 0; i < molt_arrow_reader_ncolumns(r); i++) {
			fputs(i ? ",{\"name\":" : "{\"name\":", stdout);
			json_string(f[i].name, strlen(f[i].name));
			printf(",\"type\":\"%s\",\"nullable\":%s}", molt_arrow_type_name(f[i].type),
			       f[i].nullable ? "true" : "false");
		}
		fputs("],\"batches\":[", stdout);
	}
	while ((rc = molt_arrow_reader_next(r, &b, &e)) == 1) {
		if (info)
			printf(first ? "%lld" : ",%lld", (long long)b->length);
		else if (copy && molt_arrow_writer_append(w, b->length, b->columns, &e))
			break;
		else if (!copy)
			for (int64_t i = 0; i < b->length; i++)
				print_row(f, b, i);
		first = 0;
	}
	if (info)
		puts("]}");
	if (rc) {
		rc = refused(rc == 1 ? out : in, &e);
		goto done;
	}
	if (copy) {
		if (molt_arrow_writer_finish(w, &bytes, &n, &e)) {
			rc = refused(out, &e);
			goto done;
		}
		rc = spill(out, bytes, n);
	}
done:
	fflush(stdout);
	free(bytes);
	free(data);
	molt_arrow_writer_free(w);
	molt_arrow_reader_free(r);
	return rc;
}

/* ---- validate ------------------------------------------------------------------ */

static int cmd_validate(const char *in, const char *spec)
{
	molt_arrow_field want[64];
	char names[64][128];
	size_t n = 0;
	const char *p = spec;
	molt_arrow_error e;
	uint8_t *data;
	size_t len;
	int64_t rows;
	int rc;

	while (*p) {
		const char *end = strchr(p, ','), *colon;
		size_t l = end ? (size_t)(end - p) : strlen(p), tl;
		if (n == 64 || !(colon = memchr(p, ':', l)) || (size_t)(colon - p) >= sizeof(names[0]))
			return usage();
		memcpy(names[n], p, (size_t)(colon - p));
		names[n][colon - p] = '\0';
		tl = l - (size_t)(colon - p) - 1;
		want[n].name = names[n];
		want[n].nullable = tl && colon[tl] == '?';
		if (molt_arrow_type_parse(&want[n].type, colon + 1, tl - (size_t)want[n].nullable)) {
			fprintf(stderr, "%s: unknown type in '%.*s': expected int32, int64, float64, "
					"bool or utf8\n", prog, (int)l, p);
			return 2;
		}
		n++;
		p += l + (end != NULL);
	}
	if ((rc = slurp(in, &data, &len)))
		return rc;
	if (molt_arrow_validate(data, len, want, n, &rows, &e))
		rc = refused(in, &e);
	else
		printf("%lld rows\n", (long long)rows);
	free(data);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "write"))
		return cmd_write(argv[2]);
	if (argc == 3 && (!strcmp(argv[1], "read") || !strcmp(argv[1], "read-narrow") ||
			  !strcmp(argv[1], "info")))
		return walk(argv[1], argv[2], NULL);
	if (argc == 4 && !strcmp(argv[1], "copy"))
		return walk(argv[1], argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "validate"))
		return cmd_validate(argv[2], argv[3]);
	return usage();
}
