/* The wasm reader and the unit check (docs/abi.md, "What a unit may import
 * and export"), on modules built here byte by byte. */
#include "mr/buf.h"
#include "mr/error.h"
#include "mr/wasm.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The function types a unit uses, in this order in the type section. */
enum { T_VERSION, T_ALLOC, T_FREE, T_INIT, T_CALL, T_POLL, T_CANCEL, T_VOID, NTYPES };
static const unsigned char types[NTYPES][8] = {
	/* nparams, params..., nresults, results... */
	{ 0, 1, 0x7f },
	{ 1, 0x7f, 1, 0x7f },
	{ 2, 0x7f, 0x7f, 0 },
	{ 2, 0x7f, 0x7f, 1, 0x7f },
	{ 3, 0x7f, 0x7f, 0x7f, 1, 0x7e },
	{ 3, 0x7e, 0x7f, 0x7f, 1, 0x7f },
	{ 1, 0x7e, 1, 0x7f },
	{ 0, 0 },
};

/* The ABI exports, their type, and a body that fits it. */
static const struct {
	const char *name;
	int type;
	const char *body; /* after the local declarations; "" = just `end` */
} abi[] = {
	{ "molt_abi_version", T_VERSION, NULL }, /* the version, from the options */
	{ "molt_alloc", T_ALLOC, "\x41\x00" },
	{ "molt_free", T_FREE, "" },
	{ "molt_init", T_INIT, "\x41\x00" },
	{ "molt_call", T_CALL, "\x42\x00" },
	{ "molt_poll", T_POLL, "\x41\x00" },
	{ "molt_cancel", T_CANCEL, "\x41\x00" },
};
#define NABI 7

/* What to put in a hand-made unit; zeroes make a valid one. */
typedef struct {
	const char *imports[4][2];     /* function imports (module, field) */
	const char *drop;              /* an ABI export to leave out */
	const char *extra_func;        /* one more exported function */
	const char *extra_global;      /* an exported global */
	int no_initialize;             /* leave out _initialize */
	int32_t version;               /* molt_abi_version's constant (0: 1) */
	const unsigned char *abi_body; /* molt_abi_version's body, instead */
	size_t abi_body_len;
	int call_type;                 /* molt_call's type (0: T_CALL) */
	int start;                     /* add a start section */
	int no_memory;                 /* no memory export */
} unit_opts;

/* The module, and where each section ends (a valid prefix). */
typedef struct {
	mr_buf b;
	size_t ends[16];
	size_t nends;
} unit;

static void put(mr_buf *b, const void *p, size_t n)
{
	ck_assert_int_eq(mr_buf_put(b, p, n), 0);
}

static void put_u8(mr_buf *b, unsigned v)
{
	unsigned char c = (unsigned char)v;

	put(b, &c, 1);
}

static void put_leb(mr_buf *b, uint32_t v)
{
	do {
		put_u8(b, (v & 0x7f) | (v > 0x7f ? 0x80 : 0));
		v >>= 7;
	} while (v);
}

static void put_sleb(mr_buf *b, int32_t v)
{
	int more = 1;

	while (more) {
		unsigned char c = (unsigned char)(v & 0x7f);
		v = v < 0 ? ~(~v >> 7) : v >> 7; /* arithmetic shift, portably */
		more = !((v == 0 && !(c & 0x40)) || (v == -1 && (c & 0x40)));
		put_u8(b, c | (more ? 0x80 : 0));
	}
}

static void put_name(mr_buf *b, const char *s)
{
	put_leb(b, (uint32_t)strlen(s));
	put(b, s, strlen(s));
}

static void section(unit *u, unsigned id, mr_buf *content)
{
	put_u8(&u->b, id);
	put_leb(&u->b, (uint32_t)content->len);
	put(&u->b, content->data, content->len);
	u->ends[u->nends++] = u->b.len;
	mr_buf_free(content);
}

static unit make_unit(const unit_opts *o)
{
	unit u = { MR_BUF_INIT, { 0 }, 0 };
	mr_buf s = MR_BUF_INIT, body = MR_BUF_INIT;
	uint32_t nimp = 0, nfuncs = 0, nexp = 0, i;
	int t;

	put(&u.b, "\0asm\1\0\0\0", 8);
	u.ends[u.nends++] = 8;
	/* types */
	put_leb(&s, NTYPES);
	for (t = 0; t < NTYPES; t++) {
		const unsigned char *ty = types[t];
		put_u8(&s, 0x60);
		put(&s, ty, 1u + ty[0]);
		put(&s, ty + 1 + ty[0], 1u + ty[1 + ty[0]]);
	}
	section(&u, 1, &s);
	/* imports */
	while (nimp < 4 && o->imports[nimp][0])
		nimp++;
	if (nimp) {
		put_leb(&s, nimp);
		for (i = 0; i < nimp; i++) {
			put_name(&s, o->imports[i][0]);
			put_name(&s, o->imports[i][1]);
			put_u8(&s, 0);
			put_leb(&s, T_VOID);
		}
		section(&u, 2, &s);
	}
	/* functions: the ABI (minus a dropped one), _initialize, the extra one */
	nfuncs = NABI + 2;
	put_leb(&s, nfuncs);
	for (i = 0; i < NABI; i++)
		put_leb(&s, (uint32_t)(i == 4 && o->call_type ? o->call_type : abi[i].type));
	put_leb(&s, T_VOID);
	put_leb(&s, T_VERSION);
	section(&u, 3, &s);
	/* memory */
	put(&s, "\x01\x00\x01", 3);
	section(&u, 5, &s);
	if (o->extra_global) {
		put(&s, "\x01\x7f\x00\x41\x00\x0b", 6);
		section(&u, 6, &s);
	}
	/* exports */
	mr_buf e = MR_BUF_INIT;
	if (!o->no_memory) {
		put_name(&e, "memory");
		put(&e, "\x02\x00", 2);
		nexp++;
	}
	for (i = 0; i < NABI; i++) {
		if (o->drop && !strcmp(o->drop, abi[i].name))
			continue;
		put_name(&e, abi[i].name);
		put_u8(&e, 0);
		put_leb(&e, nimp + i);
		nexp++;
	}
	if (!o->no_initialize) {
		put_name(&e, "_initialize");
		put_u8(&e, 0);
		put_leb(&e, nimp + NABI);
		nexp++;
	}
	if (o->extra_func) {
		put_name(&e, o->extra_func);
		put_u8(&e, 0);
		put_leb(&e, nimp + NABI + 1);
		nexp++;
	}
	if (o->extra_global) {
		put_name(&e, o->extra_global);
		put(&e, "\x03\x00", 2);
		nexp++;
	}
	put_leb(&s, nexp);
	put(&s, e.data, e.len);
	mr_buf_free(&e);
	section(&u, 7, &s);
	if (o->start) {
		put_leb(&s, nimp + NABI);
		section(&u, 8, &s);
	}
	/* code */
	put_leb(&s, nfuncs);
	for (i = 0; i < nfuncs; i++) {
		put_u8(&body, 0); /* no locals */
		if (i == 0 && o->abi_body) {
			body.len = 0;
			put(&body, o->abi_body, o->abi_body_len);
		} else if (i == 0 || i == NABI + 1) {
			put_u8(&body, 0x41);
			put_sleb(&body, o->version ? o->version : 1);
			put_u8(&body, 0x0b);
		} else {
			const char *b = i < NABI ? abi[i].body : "";
			put(&body, b, strlen(b));
			put_u8(&body, 0x0b);
		}
		put_leb(&s, (uint32_t)body.len);
		put(&s, body.data, body.len);
		mr_buf_free(&body);
	}
	section(&u, 10, &s);
	/* a custom section at the end, as linkers write them */
	put_name(&s, "producers");
	put(&s, "\x00", 1);
	section(&u, 0, &s);
	return u;
}

static int check(const unit *u, const char *abi_version, mr_buf *report)
{
	/* An exact-size copy, so that ASan sees any read past the end. */
	unsigned char *copy = malloc(u->b.len);
	int rc;

	ck_assert_ptr_nonnull(copy);
	memcpy(copy, u->b.data, u->b.len);
	rc = mr_wasm_check_unit(copy, u->b.len, abi_version, report);
	free(copy);
	return rc;
}

/* A macro, so that a failure names the line of the call. */
#define assert_refused(opts, abi_version, line)                                    \
	do {                                                                       \
		unit u_ = make_unit(opts);                                         \
		mr_buf r_ = MR_BUF_INIT;                                           \
		int rc_ = check(&u_, (abi_version), &r_);                          \
		ck_assert_msg(rc_ == MR_EVERIFY, "got %d: %s", rc_, mr_error_last()); \
		ck_assert_msg(r_.data && strstr((char *)r_.data, line),             \
			      "report lacks '%s': %s", line,                       \
			      r_.data ? (char *)r_.data : "");                      \
		ck_assert_msg(strstr(mr_error_last(), line),                       \
			      "message lacks '%s': %s", line, mr_error_last());    \
		mr_buf_free(&r_);                                                  \
		mr_buf_free(&u_.b);                                                \
	} while (0)

#define assert_malformed(bytes, len, needle)                                      \
	do {                                                                       \
		unsigned char *c_ = calloc((len) ? (len) : 1, 1);                  \
		mr_wasm *m_ = (mr_wasm *)1;                                        \
		int rc_;                                                           \
		memcpy(c_, (bytes), (len));                                        \
		rc_ = mr_wasm_parse(&m_, c_, (len));                               \
		free(c_);                                                          \
		ck_assert_msg(rc_ == MR_EINVALID, "got %d: %s", rc_, mr_error_last()); \
		ck_assert_ptr_null(m_);                                            \
		ck_assert_msg(strstr(mr_error_last(), (needle)), "'%s' not in: %s", \
			      (needle), mr_error_last());                          \
	} while (0)

static size_t lines(const mr_buf *b)
{
	size_t n = 0;

	for (size_t i = 0; i < b->len; i++)
		n += b->data[i] == '\n';
	return n;
}

START_TEST(test_valid_unit)
{
	unit_opts o = { 0 };
	unit u = make_unit(&o);
	mr_buf r = MR_BUF_INIT;

	ck_assert_msg(check(&u, "0.1", &r) == 0, "%s", mr_error_last());
	ck_assert_uint_eq(r.len, 0);
	mr_buf_free(&u.b);
	o.no_initialize = 1; /* _initialize is optional */
	u = make_unit(&o);
	ck_assert_msg(check(&u, "0.1", &r) == 0, "%s", mr_error_last());
	mr_buf_free(&u.b);
	mr_buf_free(&r);
}
END_TEST

START_TEST(test_reader)
{
	unit_opts o = { .imports = { { "env", "thing" } }, .version = -2 };
	unit u = make_unit(&o);
	const mr_wasm_export *e;
	mr_wasm *m = NULL;
	char sig[64];
	int32_t v = 0;
	uint32_t f;

	ck_assert_msg(mr_wasm_parse(&m, u.b.data, u.b.len) == 0, "%s", mr_error_last());
	ck_assert_uint_eq(mr_wasm_import_count(m), 1);
	ck_assert_uint_eq(mr_wasm_import_at(m, 0)->kind, MR_WASM_FUNC);
	ck_assert_uint_eq(mr_wasm_import_at(m, 0)->module.len, 3);
	ck_assert(!memcmp(mr_wasm_import_at(m, 0)->field.p, "thing", 5));
	ck_assert_ptr_null(mr_wasm_import_at(m, 1));
	ck_assert_uint_eq(mr_wasm_export_count(m), 9);
	ck_assert_ptr_null(mr_wasm_export_find(m, "molt"));
	ck_assert_ptr_nonnull(e = mr_wasm_export_find(m, "molt_poll"));
	ck_assert_uint_eq(e->index, 1 + 5);
	ck_assert_int_eq(mr_wasm_func_sig(m, e->index, sig, sizeof(sig)), 0);
	ck_assert_str_eq(sig, "(i64, i32, i32) -> i32");
	ck_assert_int_eq(mr_wasm_func_sig(m, 0, sig, sizeof(sig)), 0);
	ck_assert_str_eq(sig, "() -> ()");
	ck_assert_int_eq(mr_wasm_func_sig(m, 1 + 2, sig, sizeof(sig)), 0);
	ck_assert_str_eq(sig, "(i32, i32) -> ()");
	ck_assert_int_eq(mr_wasm_func_sig(m, 1 + 2, sig, 6), 0);
	ck_assert_str_eq(sig, "(i32,"); /* cut to fit */
	ck_assert_int_eq(mr_wasm_func_sig(m, 99, sig, sizeof(sig)), MR_ENOTFOUND);
	e = mr_wasm_export_find(m, "molt_abi_version");
	ck_assert_int_eq(mr_wasm_func_const_i32(m, e->index, &v), 0);
	ck_assert_int_eq(v, -2);
	ck_assert_int_eq(mr_wasm_func_const_i32(m, 0, &v), MR_ENOTFOUND); /* an import */
	ck_assert_int_eq(mr_wasm_func_const_i32(m, 1 + 2, &v), MR_EVERIFY);
	ck_assert_int_eq(mr_wasm_start(m, &f), 0);
	mr_wasm_free(m);
	mr_wasm_free(NULL);
	mr_buf_free(&u.b);
}
END_TEST

START_TEST(test_const_values)
{
	static const int32_t values[] = { 0, 1, 63, 64, -64, -65, 0x10000, INT32_MAX, INT32_MIN };
	unit_opts o = { 0 };

	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		mr_wasm *m = NULL;
		int32_t v = 7;
		o.version = values[i];
		unit u = make_unit(&o);
		ck_assert_int_eq(mr_wasm_parse(&m, u.b.data, u.b.len), 0);
		ck_assert_int_eq(mr_wasm_func_const_i32(m, 0, &v), 0);
		ck_assert_int_eq(v, values[i] ? values[i] : 1);
		mr_wasm_free(m);
		mr_buf_free(&u.b);
	}
}
END_TEST

START_TEST(test_forbidden_import)
{
	unit_opts o = { .imports = { { "wasi_snapshot_preview1", "fd_write" } } };

	assert_refused(&o, "0.1", "import wasi_snapshot_preview1.fd_write is not allowed: "
		       "units may import nothing (docs/abi.md)");
	o.imports[1][0] = "env";
	o.imports[1][1] = "evil";
	assert_refused(&o, "0.1", "import env.evil is not allowed: units may import nothing "
		       "(docs/abi.md)");
	/* bytes that are not printable are shown escaped, never raw */
	o.imports[0][1] = "a\nb\x1b[2J";
	assert_refused(&o, "0.1", "import wasi_snapshot_preview1.a\\x0ab\\x1b[2J is not allowed");
}
END_TEST

START_TEST(test_missing_export)
{
	unit_opts o = { .drop = "molt_cancel" };

	assert_refused(&o, "0.1", "missing export molt_cancel: every unit exports memory and "
		       "the seven molt_* functions (docs/abi.md)");
	o.drop = "molt_abi_version";
	assert_refused(&o, "0.1", "missing export molt_abi_version");
	o.drop = NULL;
	o.no_memory = 1;
	assert_refused(&o, "0.1", "missing export memory");
}
END_TEST

START_TEST(test_extra_exports)
{
	unit_opts o = { .extra_func = "_start" };

	assert_refused(&o, "0.1", "export _start is not allowed: units export only memory, "
		       "_initialize and the seven molt_* functions (docs/abi.md)");
	o.extra_func = "stray";
	assert_refused(&o, "0.1", "export stray is not allowed");
	o.extra_func = NULL;
	o.extra_global = "__heap_base";
	assert_refused(&o, "0.1", "export __heap_base is not allowed");
	/* an ABI name with the wrong kind */
	o.extra_global = "molt_free";
	assert_refused(&o, "0.1", "export molt_free appears 2 times: export names must be unique");
	o.drop = "molt_free";
	assert_refused(&o, "0.1", "export molt_free must be a function, found a global");
}
END_TEST

START_TEST(test_wrong_signature)
{
	unit_opts o = { .call_type = T_INIT };

	assert_refused(&o, "0.1", "export molt_call has type (i32, i32) -> i32, expected "
		       "(i32, i32, i32) -> i64 (docs/abi.md)");
}
END_TEST

START_TEST(test_start_function)
{
	unit_opts o = { .start = 1 };

	assert_refused(&o, "0.1", "the module has a start function (function 7): a unit runs "
		       "no code when instantiated; the host calls _initialize (docs/abi.md)");
}
END_TEST

START_TEST(test_version_mismatch)
{
	unit_opts o = { .version = 0x00000002 };

	assert_refused(&o, "0.1", "molt_abi_version returns 0x00000002 (ABI 0.2), but the "
		       "manifest says abi_version \"0.1\" (0x00000001)");
	o.version = 0x00010000;
	assert_refused(&o, "0.1", "returns 0x00010000 (ABI 1.0)");
	o.version = 0;
	assert_refused(&o, "1.0", "molt_abi_version returns 0x00000001 (ABI 0.1), but the "
		       "manifest says abi_version \"1.0\" (0x00010000)");
	assert_refused(&o, "banana", "the manifest's abi_version is 'banana', expected "
		       "MAJOR.MINOR such as \"0.1\"");
	assert_refused(&o, NULL, "the manifest's abi_version is '(none)'");
}
END_TEST

START_TEST(test_version_not_constant)
{
	/* i32.const 1; i32.const 0; i32.add; end */
	static const unsigned char add[] = { 0, 0x41, 1, 0x41, 0, 0x6a, 0x0b };
	/* i32.const 1; return; end */
	static const unsigned char ret[] = { 0, 0x41, 1, 0x0f, 0x0b };
	/* a local declaration is fine: (local i32) i32.const 1; end */
	static const unsigned char local[] = { 1, 1, 0x7f, 0x41, 1, 0x0b };
	/* padded immediate, as linkers write them: i32.const 1; end */
	static const unsigned char padded[] = { 0, 0x41, 0x81, 0x80, 0x80, 0x80, 0x00, 0x0b };
	static const char *line =
		"molt_abi_version does not return a constant (its body must be exactly "
		"'i32.const N; end', as the module SDK's is), so its ABI version cannot be "
		"checked against the manifest (docs/abi.md)";
	unit_opts o = { .abi_body = add, .abi_body_len = sizeof(add) };
	unit u;

	assert_refused(&o, "0.1", "molt_abi_version does not return a constant");
	o.abi_body = ret;
	o.abi_body_len = sizeof(ret);
	assert_refused(&o, "0.1", "molt_abi_version does not return a constant");
	o.abi_body = local;
	o.abi_body_len = sizeof(local);
	u = make_unit(&o);
	ck_assert_msg(check(&u, "0.1", NULL) == 0, "%s", mr_error_last());
	mr_buf_free(&u.b);
	o.abi_body = padded;
	o.abi_body_len = sizeof(padded);
	u = make_unit(&o);
	ck_assert_msg(check(&u, "0.1", NULL) == 0, "%s", mr_error_last());
	mr_buf_free(&u.b);
	o.abi_body = add;
	o.abi_body_len = sizeof(add);
	u = make_unit(&o);
	ck_assert_int_eq(check(&u, "0.1", NULL), MR_EVERIFY);
	ck_assert_msg(strstr(mr_error_last(), line), "%s", mr_error_last());
	mr_buf_free(&u.b);
}
END_TEST

START_TEST(test_all_problems_listed)
{
	unit_opts o = { .imports = { { "wasi_snapshot_preview1", "fd_write" }, { "env", "evil" } },
			.extra_func = "_start", .drop = "molt_init", .version = 2 };
	unit u = make_unit(&o);
	mr_buf r = MR_BUF_INIT;

	ck_assert_int_eq(check(&u, "0.1", &r), MR_EVERIFY);
	ck_assert_uint_eq(lines(&r), 5);
	ck_assert_msg(!strncmp(mr_error_last(), "5 problems with its imports and exports:\n  import "
			       "wasi_snapshot_preview1.fd_write", 80), "%s", mr_error_last());
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "\n  import env.evil"));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "\n  export _start"));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "\n  missing export molt_init"));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "\n  molt_abi_version returns 0x00000002"));
	mr_buf_free(&r);
	mr_buf_free(&u.b);
}
END_TEST

START_TEST(test_many_problems_capped)
{
	/* 300 imports: the report has every one, the message a readable part. */
	mr_buf b = MR_BUF_INIT, s = MR_BUF_INIT, r = MR_BUF_INIT;
	unit_opts o = { 0 };
	unit u = make_unit(&o);
	char field[16];
	size_t after_types = u.ends[1];

	put(&b, u.b.data, after_types);
	put_leb(&s, 300);
	for (int i = 0; i < 300; i++) {
		snprintf(field, sizeof(field), "f%d", i);
		put_name(&s, "env");
		put_name(&s, field);
		put(&s, "\x00\x07", 2);
	}
	put_u8(&b, 2);
	put_leb(&b, (uint32_t)s.len);
	put(&b, s.data, s.len);
	mr_buf_free(&s);
	/* the rest, with function indices moved by 300: rebuild with no imports
	 * and keep only what does not name a function */
	mr_buf_free(&u.b);
	put(&b, "\x03\x02\x01\x00", 4); /* one defined function, type 0 */
	put(&b, "\x05\x03\x01\x00\x01", 5);
	put(&b, "\x07\x0a\x01\x06memory\x02\x00", 12);
	put(&b, "\x0a\x06\x01\x04\x00\x41\x01\x0b", 8);
	ck_assert_int_eq(mr_wasm_check_unit(b.data, b.len, "0.1", &r), MR_EVERIFY);
	ck_assert_uint_eq(lines(&r), 300 + NABI);
	ck_assert_ptr_nonnull(strstr((char *)r.data, "import env.f299 is not allowed"));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "307 problems"));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "\n  ... and "));
	ck_assert_uint_lt(strlen(mr_error_last()), 1600);
	mr_buf_free(&b);
	mr_buf_free(&r);
}
END_TEST

START_TEST(test_truncated)
{
	unit_opts o = { .imports = { { "wasi_snapshot_preview1", "fd_write" } },
			.extra_global = "g", .start = 1 };
	unit u = make_unit(&o);
	size_t len, k, invalid = 0;

	for (len = 0; len < u.b.len; len++) {
		unsigned char *c = malloc(len ? len : 1);
		int boundary = 0, rc;
		memcpy(c, u.b.data, len);
		for (k = 0; k < u.nends; k++)
			boundary |= u.ends[k] == len;
		rc = mr_wasm_check_unit(c, len, "0.1", NULL);
		free(c);
		/* A prefix ending between sections is a (bad) module, unless it
		 * declares functions without their code; any other is malformed. */
		if (boundary && !strstr(mr_error_last(), "there is no code section")) {
			ck_assert_msg(rc == MR_EVERIFY, "prefix of %zu: %d %s", len, rc, mr_error_last());
		} else {
			ck_assert_msg(rc == MR_EINVALID, "prefix of %zu: %d %s", len, rc, mr_error_last());
			ck_assert_msg(!strncmp(mr_error_last(), "malformed wasm at byte ", 23),
				      "prefix of %zu: %s", len, mr_error_last());
			invalid++;
		}
	}
	ck_assert_uint_ge(invalid, u.b.len - (u.nends - 1));
	mr_buf_free(&u.b);
}
END_TEST

START_TEST(test_flipped_bytes)
{
	/* Every byte changed three ways: the reader answers, never crashes. */
	static const unsigned char xors[] = { 0x01, 0x80, 0xff };
	unit_opts o = { .imports = { { "env", "x" } }, .extra_global = "g" };
	unit u = make_unit(&o);

	for (size_t i = 0; i < u.b.len; i++)
		for (size_t k = 0; k < sizeof(xors); k++) {
			unsigned char *c = malloc(u.b.len);
			int rc;
			memcpy(c, u.b.data, u.b.len);
			c[i] ^= xors[k];
			rc = mr_wasm_check_unit(c, u.b.len, "0.1", NULL);
			free(c);
			ck_assert_msg(rc == 0 || rc == MR_EVERIFY || rc == MR_EINVALID,
				      "byte %zu ^ 0x%02x: %d %s", i, xors[k], rc, mr_error_last());
		}
	mr_buf_free(&u.b);
}
END_TEST

START_TEST(test_section_past_end)
{
	unit_opts o = { .imports = { { "env", "x" } } };
	unit u = make_unit(&o);
	size_t at = u.ends[1]; /* the import section's id */
	char want[160];

	ck_assert_uint_eq(u.b.data[at], 2);
	u.b.data[at + 1] += 60;
	/* the module cut after the import section: its size runs past the end */
	snprintf(want, sizeof(want), "malformed wasm at byte %zu (import section): section "
		 "is 69 bytes, but the file ends 9 bytes after its header", at);
	assert_malformed(u.b.data, u.ends[2], want);
	/* with the whole module after it, the import section swallows what follows */
	assert_malformed(u.b.data, u.b.len, "60 unexpected bytes before the end of the section");
	u.b.data[at + 1] -= 60;
	/* a name whose length runs past its section */
	u.b.data[at + 3] = 0x7f;
	assert_malformed(u.b.data, u.b.len, "(import section): import module name: length 127 "
			 "runs past the end of the import section");
	mr_buf_free(&u.b);
}
END_TEST

START_TEST(test_bad_header)
{
	assert_malformed("", 0, "malformed wasm at byte 0 (header): expected the magic "
			 "00 61 73 6d (\\0asm), found an empty file");
	assert_malformed("\x7f" "ELF\2\1\1\0", 8, "found 7f 45 4c 46");
	assert_malformed("\0as", 3, "found 00 61 73 and the end");
	assert_malformed("\0asm\1\0", 6, "at byte 6 (header): the file ends inside the version");
	assert_malformed("\0asm\2\0\0\0", 8, "at byte 4 (header): expected version 01 00 00 00 "
			 "(a core module), found 02 00 00 00");
	/* a component (the component model's layer 1) */
	assert_malformed("\0asm\x0d\0\1\0", 8, "found 0d 00 01 00");
}
END_TEST

START_TEST(test_leb_overflow)
{
	unsigned char m[32];

	memcpy(m, "\0asm\1\0\0\0", 8);
	/* a section size whose fifth byte sets bits past 32 */
	memcpy(m + 8, "\x01\x80\x80\x80\x80\x10", 6);
	assert_malformed(m, 14, "at byte 9 (type section): section size: LEB128 number "
			 "overflows 32 bits");
	/* a sixth byte */
	memcpy(m + 8, "\x01\x80\x80\x80\x80\x80\x00", 7);
	assert_malformed(m, 15, "section size: LEB128 number longer than 5 bytes");
	/* a LEB128 number cut by the end of the file */
	memcpy(m + 8, "\x01\x80\x80", 3);
	assert_malformed(m, 11, "section size: LEB128 number runs past the end");
	/* padded, but within 5 bytes: fine (an empty custom section named "") */
	memcpy(m + 8, "\x00\x81\x80\x80\x80\x00\x00", 7);
	{
		mr_wasm *w = NULL;
		ck_assert_msg(mr_wasm_parse(&w, m, 15) == 0, "%s", mr_error_last());
		mr_wasm_free(w);
	}
	/* an import count that overflows */
	memcpy(m + 8, "\x02\x05\xff\xff\xff\xff\x7f", 7);
	assert_malformed(m, 15, "at byte 10 (import section): imports: LEB128 number overflows");
	/* i32.const's immediate: 5 bytes whose top bits disagree with the sign */
	{
		static const unsigned char body[] = { 0, 0x41, 0x80, 0x80, 0x80, 0x80, 0x40, 0x0b };
		unit_opts o = { .abi_body = body, .abi_body_len = sizeof(body) };
		unit u = make_unit(&o);
		ck_assert_int_eq(check(&u, "0.1", NULL), MR_EINVALID);
		ck_assert_msg(strstr(mr_error_last(), "i32.const immediate: LEB128 number overflows 32 bits"),
			      "%s", mr_error_last());
		mr_buf_free(&u.b);
	}
}
END_TEST

START_TEST(test_structure)
{
	unsigned char m[64];
	mr_wasm *w = NULL;

	memcpy(m, "\0asm\1\0\0\0", 8);
	/* the same section twice */
	memcpy(m + 8, "\x01\x01\x00\x01\x01\x00", 6);
	assert_malformed(m, 14, "at byte 11 (type section): the section is repeated or out of "
			 "order (it comes after the type section)");
	/* export before import */
	memcpy(m + 8, "\x07\x01\x00\x02\x01\x00", 6);
	assert_malformed(m, 14, "(import section): the section is repeated or out of order");
	/* an unknown section id */
	memcpy(m + 8, "\x63\x00", 2);
	assert_malformed(m, 10, "at byte 8 (section header): unknown section id 99");
	/* bytes left over inside a section */
	memcpy(m + 8, "\x01\x02\x00\x00", 4);
	assert_malformed(m, 12, "at byte 11 (type section): 1 unexpected bytes before the end");
	/* functions without a code section */
	memcpy(m + 8, "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00", 10);
	assert_malformed(m, 18, "declares 1 functions, but there is no code section");
	/* a function whose type does not exist */
	memcpy(m + 8, "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x05", 10);
	assert_malformed(m, 18, "at byte 17 (function section): function 0 has type 5, but "
			 "there are 1 types");
	/* a count larger than the bytes that could hold it */
	memcpy(m + 8, "\x02\x02\x7f\x00", 4);
	assert_malformed(m, 12, "127 imports cannot fit in the 1 bytes left");
	/* an export naming a function that does not exist */
	memcpy(m + 8, "\x07\x05\x01\x01\x66\x00\x03", 7);
	assert_malformed(m, 15, "export 0 names function 3, but there are 0");
	/* an unknown value type */
	memcpy(m + 8, "\x01\x05\x01\x60\x01\x55\x00", 7);
	assert_malformed(m, 15, "at byte 13 (type section): parameter type: unknown or "
			 "unsupported value type 0x55");
	/* a code section with the wrong number of bodies */
	memcpy(m + 8, "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x01\x00", 13);
	assert_malformed(m, 21, "(code section): 0 function bodies, but the function section "
			 "declares 1");
	/* a body longer than its section */
	memcpy(m + 8, "\x01\x04\x01\x60\x00\x00\x03\x02\x01\x00\x0a\x03\x01\x09\x00", 15);
	assert_malformed(m, 23, "body of function 0 is 9 bytes, but only 1 are left");
	/* header only: a well-formed, empty module */
	ck_assert_int_eq(mr_wasm_parse(&w, m, 8), 0);
	ck_assert_uint_eq(mr_wasm_export_count(w), 0);
	mr_wasm_free(w);
}
END_TEST

START_TEST(test_abi_parse)
{
	static const char *bad[] = { "", "1", "1.", ".1", "a.b", "70000.0", "0.65536",
				     "0.1.2", "-1.0", "0.1 ", "000001.0" };
	uint32_t v;

	ck_assert_int_eq(mr_wasm_abi_parse("0.1", &v), 0);
	ck_assert_uint_eq(v, 1);
	ck_assert_int_eq(mr_wasm_abi_parse("1.2", &v), 0);
	ck_assert_uint_eq(v, 0x00010002);
	ck_assert_int_eq(mr_wasm_abi_parse("65535.65535", &v), 0);
	ck_assert_uint_eq(v, 0xffffffffu);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(mr_wasm_abi_parse(bad[i], &v) == MR_EINVALID, "'%s' accepted", bad[i]);
	ck_assert_str_eq(mr_error_last(), "abi_version '000001.0': expected MAJOR.MINOR");
	ck_assert_int_eq(mr_wasm_abi_parse(NULL, &v), MR_EINVALID);
}
END_TEST

START_TEST(test_check_file)
{
	ck_assert_int_eq(mr_wasm_check_file("/nonexistent/x.wasm", "0.1", NULL) < 0, 1);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "/nonexistent/x.wasm"));
}
END_TEST

static Suite *wasm_suite(void)
{
	Suite *s = suite_create("wasm");
	TCase *tc_read = tcase_create("reader");
	TCase *tc_check = tcase_create("check");

	tcase_add_test(tc_read, test_reader);
	tcase_add_test(tc_read, test_const_values);
	tcase_add_test(tc_read, test_truncated);
	tcase_add_test(tc_read, test_flipped_bytes);
	tcase_add_test(tc_read, test_section_past_end);
	tcase_add_test(tc_read, test_bad_header);
	tcase_add_test(tc_read, test_leb_overflow);
	tcase_add_test(tc_read, test_structure);
	tcase_add_test(tc_read, test_abi_parse);
	tcase_add_test(tc_check, test_valid_unit);
	tcase_add_test(tc_check, test_forbidden_import);
	tcase_add_test(tc_check, test_missing_export);
	tcase_add_test(tc_check, test_extra_exports);
	tcase_add_test(tc_check, test_wrong_signature);
	tcase_add_test(tc_check, test_start_function);
	tcase_add_test(tc_check, test_version_mismatch);
	tcase_add_test(tc_check, test_version_not_constant);
	tcase_add_test(tc_check, test_all_problems_listed);
	tcase_add_test(tc_check, test_many_problems_capped);
	tcase_add_test(tc_check, test_check_file);
	suite_add_tcase(s, tc_read);
	suite_add_tcase(s, tc_check);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(wasm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
