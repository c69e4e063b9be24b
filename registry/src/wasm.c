#include "mr/wasm.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The allow-list: every import a unit may have, and nothing else. docs/abi.md
 * ("What a unit may import and export") shows the same table. Adding a WASI
 * function is one line here, plus its implementation in the JS host
 * (runtime/js/molt.js instantiates units with no imports today). */
static const struct {
	const char *module, *field;
} allowed_imports[] = {
	{ NULL, NULL } /* end of the list: units import nothing */
};

/* The ABI functions every unit exports, with their wasm32 signatures. */
static const struct {
	const char *name, *sig;
} abi_funcs[] = {
	{ "molt_abi_version", "() -> i32" },
	{ "molt_alloc", "(i32) -> i32" },
	{ "molt_free", "(i32, i32) -> ()" },
	{ "molt_init", "(i32, i32) -> i32" },
	{ "molt_call", "(i32, i32, i32) -> i64" },
	{ "molt_poll", "(i64, i32, i32) -> i32" },
	{ "molt_cancel", "(i64) -> i32" },
};
#define NABI (sizeof(abi_funcs) / sizeof(abi_funcs[0]))
#define INIT_SIG "() -> ()"

#define FILE_MAX ((size_t)1 << 30)
#define PROBLEMS_MAX (1 << 20) /* bytes of report kept from one module */
#define MESSAGE_PROBLEMS 1400  /* bytes of problems quoted in the error message */

struct mr_wasm {
	const unsigned char *b;
	size_t len;
	mr_wasm_import *imports;
	size_t nimports;
	mr_wasm_export *exports;
	size_t nexports;
	uint32_t ntypes, nfunc_imports, nfuncs; /* nfuncs: defined in the module */
	size_t types_at;                        /* first entry of the type section */
	size_t funcs_at;                        /* first entry of the function section */
	size_t code_at;                         /* first entry of the code section */
	int has_start;
	uint32_t start;
};

/* A read position inside [pos, end) of the file; offsets are absolute. */
typedef struct {
	const unsigned char *b;
	size_t pos, end;
	const char *where; /* "import section", ... for messages */
} cur;

static const char *section_name(unsigned id)
{
	static const char *names[] = { "custom section", "type section",
				       "import section", "function section",
				       "table section", "memory section",
				       "global section", "export section",
				       "start section", "element section",
				       "code section", "data section",
				       "data count section", "tag section" };

	return id < sizeof(names) / sizeof(names[0]) ? names[id] : "unknown section";
}

/* Where each known section may appear (the spec's order); 0: unknown. */
static unsigned section_rank(unsigned id)
{
	static const unsigned char rank[] = { 0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 11, 6 };

	return id < sizeof(rank) ? rank[id] : 0;
}

static int bad(const cur *c, size_t at, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(const cur *c, size_t at, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return mr_error_set(MR_EINVALID, "malformed wasm at byte %zu (%s): %s", at,
			    c->where, msg);
}

static int byte(cur *c, unsigned char *out, const char *what)
{
	*out = 0;
	if (c->pos >= c->end)
		return bad(c, c->pos, "unexpected end of the %s reading %s", c->where, what);
	*out = c->b[c->pos++];
	return 0;
}

/* Unsigned LEB128 of at most `bits` bits (32 or 64), in at most
 * ceil(bits / 7) bytes, with the unused bits of the last byte zero. */
static int leb(cur *c, unsigned bits, uint64_t *out, const char *what)
{
	unsigned max = (bits + 6) / 7, shift = 0, i;
	size_t at = c->pos;
	uint64_t v = 0;

	*out = 0;
	for (i = 0;; i++, shift += 7) {
		unsigned char b;
		if (c->pos >= c->end)
			return bad(c, at, "%s: LEB128 number runs past the end of the %s",
				   what, c->where);
		b = c->b[c->pos++];
		if (i == max - 1) {
			if (b & 0x80)
				return bad(c, at, "%s: LEB128 number longer than %u bytes",
					   what, max);
			if (b >> (bits - shift))
				return bad(c, at, "%s: LEB128 number overflows %u bits",
					   what, bits);
		}
		v |= (uint64_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	*out = v;
	return 0;
}

static int u32(cur *c, uint32_t *out, const char *what)
{
	uint64_t v;
	int rc = leb(c, 32, &v, what);

	*out = (uint32_t)v;
	return rc;
}

/* Signed LEB128, 32 bits (the immediate of i32.const). */
static int s32(cur *c, int32_t *out, const char *what)
{
	size_t at = c->pos;
	unsigned shift = 0, i;
	uint32_t v = 0;

	*out = 0;
	for (i = 0;; i++) {
		unsigned char b;
		if (c->pos >= c->end)
			return bad(c, at, "%s: LEB128 number runs past the end of the %s",
				   what, c->where);
		b = c->b[c->pos++];
		if (i == 4) {
			if (b & 0x80)
				return bad(c, at, "%s: LEB128 number longer than 5 bytes", what);
			/* bits 4-6 only repeat the sign (bit 3, the value's bit 31) */
			if ((b & 0x70) != ((b & 0x08) ? 0x70 : 0))
				return bad(c, at, "%s: LEB128 number overflows 32 bits", what);
			v |= (uint32_t)(b & 0x0f) << 28;
			break;
		}
		v |= (uint32_t)(b & 0x7f) << shift;
		shift += 7;
		if (!(b & 0x80)) {
			if (b & 0x40)
				v |= ~(uint32_t)0 << shift;
			break;
		}
	}
	*out = v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
	return 0;
}

/* A vector's element count, refused above `max` or when even one byte per
 * element would run past the end. */
static int count(cur *c, uint32_t *out, uint32_t max, const char *what)
{
	size_t at = c->pos;
	int rc = u32(c, out, what);

	if (!rc && *out > max)
		rc = bad(c, at, "%u %s: more than the limit of %u", *out, what, max);
	else if (!rc && *out > c->end - c->pos)
		rc = bad(c, at, "%u %s cannot fit in the %zu bytes left in the %s", *out,
			 what, c->end - c->pos, c->where);
	return rc;
}

static int name(cur *c, mr_wasm_name *out, const char *what)
{
	size_t at = c->pos;
	uint32_t n;
	int rc;

	if ((rc = u32(c, &n, what)))
		return rc;
	if (n > c->end - c->pos)
		return bad(c, at, "%s: length %u runs past the end of the %s (%zu bytes left)",
			   what, n, c->where, c->end - c->pos);
	out->p = c->b + c->pos;
	out->len = n;
	c->pos += n;
	return 0;
}

static const char *valtype_name(unsigned char t)
{
	switch (t) {
	case 0x7f: return "i32";
	case 0x7e: return "i64";
	case 0x7d: return "f32";
	case 0x7c: return "f64";
	case 0x7b: return "v128";
	case 0x70: return "funcref";
	case 0x6f: return "externref";
	default: return NULL;
	}
}

static int valtype(cur *c, unsigned char *out, const char *what)
{
	size_t at = c->pos;
	int rc = byte(c, out, what);

	if (!rc && !valtype_name(*out))
		rc = bad(c, at, "%s: unknown or unsupported value type 0x%02x", what, *out);
	return rc;
}

static int limits(cur *c)
{
	size_t at = c->pos;
	unsigned char flags;
	uint64_t v;
	int rc;

	if ((rc = byte(c, &flags, "limits")))
		return rc;
	if (flags & ~7u)
		return bad(c, at, "unknown limits flags 0x%02x", flags);
	if ((rc = leb(c, flags & 4 ? 64 : 32, &v, "limits minimum")))
		return rc;
	return flags & 1 ? leb(c, flags & 4 ? 64 : 32, &v, "limits maximum") : 0;
}

/* Appends to a fixed buffer, always NUL-terminated; cuts what does not fit. */
static void cat(char *out, size_t n, size_t *used, const char *s)
{
	size_t k = strlen(s);

	if (*used + 1 >= n)
		return;
	if (k > n - 1 - *used)
		k = n - 1 - *used;
	memcpy(out + *used, s, k);
	*used += k;
	out[*used] = '\0';
}

/* Reads one function type; if `out`, writes it as text: "(i64, i32) -> i32",
 * "() -> ()", "(i32) -> (i32, i32)". */
static int functype(cur *c, uint32_t index, char *out, size_t n)
{
	size_t at = c->pos, used = 0;
	unsigned char form, t;
	uint32_t k[2], i;
	int rc, part;

	if ((rc = byte(c, &form, "type form")))
		return rc;
	if (form != 0x60)
		return bad(c, at, "type %u: expected a function type (0x60), found 0x%02x",
			   index, form);
	for (part = 0; part < 2; part++) {
		int parens;
		if ((rc = count(c, &k[part], 1000, part ? "results" : "parameters")))
			return rc;
		parens = part == 0 || k[part] != 1;
		if (out)
			cat(out, n, &used, part ? (parens ? " -> (" : " -> ") : "(");
		for (i = 0; i < k[part]; i++) {
			if ((rc = valtype(c, &t, part ? "result type" : "parameter type")))
				return rc;
			if (out) {
				cat(out, n, &used, i ? ", " : "");
				cat(out, n, &used, valtype_name(t));
			}
		}
		if (out && parens)
			cat(out, n, &used, ")");
	}
	return 0;
}

static int parse_types(mr_wasm *m, cur *c)
{
	uint32_t i;
	int rc;

	if ((rc = count(c, &m->ntypes, MR_WASM_MAX_TYPES, "types")))
		return rc;
	m->types_at = c->pos;
	for (i = 0; i < m->ntypes; i++)
		if ((rc = functype(c, i, NULL, 0)))
			return rc;
	return 0;
}

static int parse_imports(mr_wasm *m, cur *c)
{
	uint32_t n, i, v32;
	unsigned char b;
	int rc;

	if ((rc = count(c, &n, MR_WASM_MAX_IMPORTS, "imports")))
		return rc;
	if (n && !(m->imports = calloc(n, sizeof(*m->imports))))
		return mr_error_set(MR_ERROR, "out of memory");
	for (i = 0; i < n; i++) {
		mr_wasm_import *e = &m->imports[i];
		size_t at;
		e->offset = c->pos;
		if ((rc = name(c, &e->module, "import module name")) ||
		    (rc = name(c, &e->field, "import field name")))
			return rc;
		at = c->pos;
		if ((rc = byte(c, &e->kind, "import kind")))
			return rc;
		m->nimports = i + 1;
		switch (e->kind) {
		case MR_WASM_FUNC:
			at = c->pos;
			if ((rc = u32(c, &e->type, "import type index")))
				return rc;
			if (e->type >= m->ntypes)
				return bad(c, at, "import %u names type %u, but there are %u types",
					   i, e->type, m->ntypes);
			if (m->nfunc_imports >= MR_WASM_MAX_FUNCS)
				return bad(c, e->offset, "more than %u functions", MR_WASM_MAX_FUNCS);
			m->nfunc_imports++;
			break;
		case MR_WASM_TABLE:
			at = c->pos;
			if ((rc = byte(c, &b, "table element type")))
				return rc;
			if (b != 0x70 && b != 0x6f)
				return bad(c, at, "unsupported table element type 0x%02x", b);
			if ((rc = limits(c)))
				return rc;
			break;
		case MR_WASM_MEMORY:
			if ((rc = limits(c)))
				return rc;
			break;
		case MR_WASM_GLOBAL:
			if ((rc = valtype(c, &b, "global type")))
				return rc;
			at = c->pos;
			if ((rc = byte(c, &b, "global mutability")))
				return rc;
			if (b > 1)
				return bad(c, at, "global mutability must be 0 or 1, found %u", b);
			break;
		case MR_WASM_TAG:
			if ((rc = byte(c, &b, "tag attribute")) ||
			    (rc = u32(c, &v32, "tag type index")))
				return rc;
			break;
		default:
			return bad(c, at, "unknown import kind 0x%02x", e->kind);
		}
	}
	return 0;
}

static int parse_functions(mr_wasm *m, cur *c)
{
	uint32_t i, t;
	int rc;

	if ((rc = count(c, &m->nfuncs, MR_WASM_MAX_FUNCS - m->nfunc_imports, "functions")))
		return rc;
	m->funcs_at = c->pos;
	for (i = 0; i < m->nfuncs; i++) {
		size_t at = c->pos;
		if ((rc = u32(c, &t, "function type index")))
			return rc;
		if (t >= m->ntypes)
			return bad(c, at, "function %u has type %u, but there are %u types",
				   m->nfunc_imports + i, t, m->ntypes);
	}
	return 0;
}

static int parse_exports(mr_wasm *m, cur *c)
{
	uint32_t n, i;
	int rc;

	if ((rc = count(c, &n, MR_WASM_MAX_EXPORTS, "exports")))
		return rc;
	if (n && !(m->exports = calloc(n, sizeof(*m->exports))))
		return mr_error_set(MR_ERROR, "out of memory");
	for (i = 0; i < n; i++) {
		mr_wasm_export *e = &m->exports[i];
		size_t at;
		e->offset = c->pos;
		if ((rc = name(c, &e->name, "export name")))
			return rc;
		at = c->pos;
		if ((rc = byte(c, &e->kind, "export kind")))
			return rc;
		if (e->kind > MR_WASM_TAG)
			return bad(c, at, "unknown export kind 0x%02x", e->kind);
		at = c->pos;
		if ((rc = u32(c, &e->index, "export index")))
			return rc;
		m->nexports = i + 1;
		if (e->kind == MR_WASM_FUNC && e->index >= m->nfunc_imports + m->nfuncs)
			return bad(c, at, "export %u names function %u, but there are %u",
				   i, e->index, m->nfunc_imports + m->nfuncs);
	}
	return 0;
}

static int parse_code(mr_wasm *m, cur *c)
{
	size_t at = c->pos;
	uint32_t n, i, size;
	int rc;

	if ((rc = count(c, &n, MR_WASM_MAX_FUNCS, "function bodies")))
		return rc;
	if (n != m->nfuncs)
		return bad(c, at, "%u function bodies, but the function section declares %u",
			   n, m->nfuncs);
	m->code_at = c->pos;
	for (i = 0; i < n; i++) {
		at = c->pos;
		if ((rc = u32(c, &size, "function body size")))
			return rc;
		if (size > c->end - c->pos)
			return bad(c, at, "body of function %u is %u bytes, but only %zu are left "
				   "in the section", m->nfunc_imports + i, size, c->end - c->pos);
		c->pos += size;
	}
	return 0;
}

static int parse_sections(mr_wasm *m)
{
	cur c = { m->b, 8, m->len, "module" };
	unsigned last = 0, last_id = 0, seen_code = 0;
	int rc = 0;

	while (!rc && c.pos < c.end) {
		size_t at = c.pos;
		unsigned char id;
		uint32_t size;
		cur s;

		c.where = "section header";
		if ((rc = byte(&c, &id, "section id")))
			break;
		if (id && !section_rank(id))
			return bad(&c, at, "unknown section id %u", id);
		c.where = section_name(id);
		if ((rc = u32(&c, &size, "section size")))
			break;
		if (size > c.end - c.pos)
			return bad(&c, at, "section is %u bytes, but the file ends %zu bytes "
				   "after its header", size, c.end - c.pos);
		s = (cur){ m->b, c.pos, c.pos + size, section_name(id) };
		c.pos += size;
		if (id) {
			if (section_rank(id) <= last)
				return bad(&s, at, "the section is repeated or out of order "
					   "(it comes after the %s)", section_name(last_id));
			last = section_rank(id);
			last_id = id;
		}
		switch (id) {
		case 0: {
			mr_wasm_name n;
			rc = name(&s, &n, "custom section name");
			s.pos = s.end;
			break;
		}
		case 1: rc = parse_types(m, &s); break;
		case 2: rc = parse_imports(m, &s); break;
		case 3: rc = parse_functions(m, &s); break;
		case 7: rc = parse_exports(m, &s); break;
		case 8: {
			size_t fat = s.pos;
			if (!(rc = u32(&s, &m->start, "start function")) &&
			    m->start >= m->nfunc_imports + m->nfuncs)
				rc = bad(&s, fat, "start function %u does not exist", m->start);
			m->has_start = 1;
			break;
		}
		case 10: rc = parse_code(m, &s); seen_code = 1; break;
		default: s.pos = s.end; break; /* not needed for the checks */
		}
		if (!rc && s.pos != s.end)
			rc = bad(&s, s.pos, "%zu unexpected bytes before the end of the section",
				 s.end - s.pos);
	}
	if (!rc && m->nfuncs && !seen_code)
		rc = bad(&c, c.pos, "the function section declares %u functions, but there "
			 "is no code section", m->nfuncs);
	return rc;
}

int mr_wasm_parse(mr_wasm **out, const void *bytes, size_t len)
{
	static const unsigned char magic[4] = { 0, 'a', 's', 'm' };
	const unsigned char *b = bytes;
	cur c = { b, 0, len, "header" };
	mr_wasm *m;
	int rc;

	*out = NULL;
	if (len < 4 || memcmp(b, magic, 4)) {
		char found[16] = "", hex[4];
		size_t used = 0;
		for (size_t i = 0; i < 4 && i < len; i++) {
			snprintf(hex, sizeof(hex), "%02x", b[i]);
			cat(found, sizeof(found), &used, i ? " " : "");
			cat(found, sizeof(found), &used, hex);
		}
		return bad(&c, 0, "expected the magic 00 61 73 6d (\\0asm), found %s%s",
			   len ? found : "an empty file", len && len < 4 ? " and the end" : "");
	}
	if (len < 8)
		return bad(&c, len, "the file ends inside the version (%zu bytes)", len);
	if (memcmp(b + 4, "\1\0\0\0", 4))
		return bad(&c, 4, "expected version 01 00 00 00 (a core module), found "
			   "%02x %02x %02x %02x", b[4], b[5], b[6], b[7]);
	if (!(m = calloc(1, sizeof(*m))))
		return mr_error_set(MR_ERROR, "out of memory");
	m->b = b;
	m->len = len;
	if ((rc = parse_sections(m))) {
		mr_wasm_free(m);
		return rc;
	}
	*out = m;
	return 0;
}

void mr_wasm_free(mr_wasm *m)
{
	if (!m)
		return;
	free(m->imports);
	free(m->exports);
	free(m);
}

size_t mr_wasm_import_count(const mr_wasm *m)
{
	return m->nimports;
}

const mr_wasm_import *mr_wasm_import_at(const mr_wasm *m, size_t i)
{
	return i < m->nimports ? &m->imports[i] : NULL;
}

size_t mr_wasm_export_count(const mr_wasm *m)
{
	return m->nexports;
}

const mr_wasm_export *mr_wasm_export_at(const mr_wasm *m, size_t i)
{
	return i < m->nexports ? &m->exports[i] : NULL;
}

static int name_is(const mr_wasm_name *n, const char *s)
{
	size_t len = strlen(s);

	return n->len == len && !memcmp(n->p, s, len);
}

const mr_wasm_export *mr_wasm_export_find(const mr_wasm *m, const char *s)
{
	for (size_t i = 0; i < m->nexports; i++)
		if (name_is(&m->exports[i].name, s))
			return &m->exports[i];
	return NULL;
}

int mr_wasm_start(const mr_wasm *m, uint32_t *func)
{
	if (m->has_start && func)
		*func = m->start;
	return m->has_start;
}

int mr_wasm_func_sig(const mr_wasm *m, uint32_t func, char *out, size_t n)
{
	cur c = { m->b, 0, m->len, "type section" };
	uint32_t type = 0, i, k;
	int rc;

	if (n)
		out[0] = '\0';
	if (func < m->nfunc_imports) {
		for (i = 0, k = 0; i < m->nimports; i++)
			if (m->imports[i].kind == MR_WASM_FUNC && k++ == func)
				type = m->imports[i].type;
	} else if (func - m->nfunc_imports < m->nfuncs) {
		/* The sections were checked by mr_wasm_parse: these reads stay inside. */
		c.pos = m->funcs_at;
		c.where = "function section";
		for (i = 0; i <= func - m->nfunc_imports; i++)
			if ((rc = u32(&c, &type, "function type index")))
				return rc;
	} else {
		return mr_error_set(MR_ENOTFOUND, "no function %u", func);
	}
	c.pos = m->types_at;
	c.where = "type section";
	for (i = 0; i < type; i++)
		if ((rc = functype(&c, i, NULL, 0)))
			return rc;
	return functype(&c, type, out, n);
}

int mr_wasm_func_const_i32(const mr_wasm *m, uint32_t func, int32_t *value)
{
	cur c = { m->b, m->code_at, m->len, "code section" };
	uint32_t size = 0, i, k, nlocals, nl;
	unsigned char op, t;
	int rc;

	if (func < m->nfunc_imports || func - m->nfunc_imports >= m->nfuncs)
		return mr_error_set(MR_ENOTFOUND, "function %u is not defined in the module", func);
	k = func - m->nfunc_imports;
	for (i = 0; i <= k; i++) {
		if ((rc = u32(&c, &size, "function body size")))
			return rc;
		if (size > c.end - c.pos)
			return bad(&c, c.pos, "function body runs past the end of the file");
		if (i < k)
			c.pos += size;
	}
	c.end = c.pos + size;
	if ((rc = u32(&c, &nlocals, "local declarations")))
		return rc;
	for (i = 0; i < nlocals; i++)
		if ((rc = u32(&c, &nl, "local count")) || (rc = byte(&c, &t, "local type")))
			return rc;
	if (c.pos < c.end && c.b[c.pos] == 0x41) {
		c.pos++;
		if ((rc = s32(&c, value, "i32.const immediate")))
			return rc;
		if (!byte(&c, &op, "end") && op == 0x0b && c.pos == c.end)
			return 0;
	}
	return mr_error_set(MR_EVERIFY, "function %u's body is not exactly 'i32.const N; end'",
			    func);
}

int mr_wasm_abi_parse(const char *text, uint32_t *out)
{
	unsigned long part[2] = { 0, 0 };
	const char *s = text;
	int k = 0, digits = 0;

	for (; s && *s; s++) {
		if (*s == '.' && k == 0 && digits) {
			k = 1;
			digits = 0;
		} else if (*s >= '0' && *s <= '9' && digits < 5) {
			part[k] = part[k] * 10 + (unsigned long)(*s - '0');
			digits++;
		} else {
			break;
		}
	}
	if (!s || *s || k != 1 || !digits || part[0] > 0xffff || part[1] > 0xffff)
		return mr_error_set(MR_EINVALID, "abi_version '%s': expected MAJOR.MINOR",
				    text ? text : "(none)");
	*out = (uint32_t)(part[0] << 16 | part[1]);
	return 0;
}

/* Writes a name from the file for a message: printable ASCII as is, other
 * bytes as \xNN, long names cut with "...". */
static void show(char *out, size_t n, const mr_wasm_name *nm)
{
	size_t o = 0, i;

	for (i = 0; i < nm->len && o + 8 < n; i++) {
		unsigned char ch = nm->p[i];
		if (ch > 0x20 && ch < 0x7f && ch != '\\')
			out[o++] = (char)ch;
		else
			o += (size_t)snprintf(out + o, n - o, "\\x%02x", ch);
	}
	if (i < nm->len)
		o += (size_t)snprintf(out + o, n - o, "...");
	out[o < n ? o : n - 1] = '\0';
}

static void problem(mr_buf *p, size_t *np, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(mr_buf *p, size_t *np, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* Past the cap the count still grows: the message says how many. */
	mr_buf_printf(p, "%s\n", line);
	(*np)++;
}

static const char *kind_name(unsigned k)
{
	static const char *names[] = { "a function", "a table", "a memory", "a global", "a tag" };

	return k < 5 ? names[k] : "unknown";
}

/* What units may import, for messages: "nothing" or "only a.b, c.d". */
static void allowed_text(char *out, size_t n)
{
	size_t o = 0, i;

	if (!allowed_imports[0].module) {
		snprintf(out, n, "nothing");
		return;
	}
	o = (size_t)snprintf(out, n, "only");
	for (i = 0; allowed_imports[i].module && o < n; i++)
		o += (size_t)snprintf(out + o, n - o, "%s %s.%s", i ? "," : "",
				      allowed_imports[i].module, allowed_imports[i].field);
}

static void check_imports(const mr_wasm *m, mr_buf *p, size_t *np)
{
	char mod[256], field[256], allowed[512];
	size_t i, k;

	allowed_text(allowed, sizeof(allowed));
	for (i = 0; i < m->nimports; i++) {
		const mr_wasm_import *e = &m->imports[i];
		for (k = 0; allowed_imports[k].module; k++)
			if (e->kind == MR_WASM_FUNC && name_is(&e->module, allowed_imports[k].module) &&
			    name_is(&e->field, allowed_imports[k].field))
				break;
		if (allowed_imports[k].module)
			continue;
		show(mod, sizeof(mod), &e->module);
		show(field, sizeof(field), &e->field);
		problem(p, np, "import %s.%s is not allowed: units may import %s (docs/abi.md)",
			mod, field, allowed);
	}
}

/* Checks one allowed export name: present once, of the right kind and type. */
static void check_export(const mr_wasm *m, const char *nm, unsigned kind,
			 const char *sig, int required, mr_buf *p, size_t *np)
{
	const mr_wasm_export *e = NULL;
	char have[256];
	size_t i, n = 0;

	for (i = 0; i < m->nexports; i++)
		if (name_is(&m->exports[i].name, nm) && !n++)
			e = &m->exports[i];
	if (!e) {
		if (required)
			problem(p, np, "missing export %s: every unit exports memory and the "
				"seven molt_* functions (docs/abi.md)", nm);
		return;
	}
	if (n > 1)
		problem(p, np, "export %s appears %zu times: export names must be unique", nm, n);
	if (e->kind != kind) {
		problem(p, np, "export %s must be %s, found %s", nm, kind_name(kind),
			kind_name(e->kind));
		return;
	}
	if (sig && !mr_wasm_func_sig(m, e->index, have, sizeof(have)) && strcmp(have, sig))
		problem(p, np, "export %s has type %s, expected %s (docs/abi.md)", nm, have, sig);
}

static int allowed_export(const mr_wasm_name *n)
{
	size_t i;

	if (name_is(n, "memory") || name_is(n, "_initialize"))
		return 1;
	for (i = 0; i < NABI; i++)
		if (name_is(n, abi_funcs[i].name))
			return 1;
	return 0;
}

static int check_version(const mr_wasm *m, const char *abi_version, mr_buf *p,
			 size_t *np)
{
	const mr_wasm_export *e = mr_wasm_export_find(m, "molt_abi_version");
	uint32_t want;
	int32_t have;
	int rc;

	if (mr_wasm_abi_parse(abi_version, &want)) {
		problem(p, np, "the manifest's abi_version is '%s', expected MAJOR.MINOR "
			"such as \"0.1\"", abi_version ? abi_version : "(none)");
		return 0;
	}
	if (!e || e->kind != MR_WASM_FUNC)
		return 0; /* already reported */
	rc = mr_wasm_func_const_i32(m, e->index, &have);
	if (rc == MR_ENOTFOUND) {
		problem(p, np, "molt_abi_version is an imported function: a unit defines "
			"it, returning its ABI version as a constant (docs/abi.md)");
	} else if (rc == MR_EVERIFY) {
		problem(p, np, "molt_abi_version does not return a constant (its body must be "
			"exactly 'i32.const N; end', as the module SDK's is), so its ABI "
			"version cannot be checked against the manifest (docs/abi.md)");
	} else if (rc) {
		return rc;
	} else if ((uint32_t)have != want) {
		problem(p, np, "molt_abi_version returns 0x%08x (ABI %u.%u), but the manifest "
			"says abi_version \"%s\" (0x%08x)", (uint32_t)have,
			(uint32_t)have >> 16, (uint32_t)have & 0xffff, abi_version, want);
	}
	return 0;
}

/* Sets the error message: a count, then the problem lines, indented, as
 * many whole lines as fit in MESSAGE_PROBLEMS bytes (the report has all). */
static int refuse(const mr_buf *p, size_t np)
{
	mr_buf msg = MR_BUF_INIT;
	size_t i = 0, shown = 0;
	int rc;

	mr_buf_printf(&msg, "%zu problem%s with its imports and exports:", np,
		      np == 1 ? "" : "s");
	while (i < p->len) {
		const unsigned char *nl = memchr(p->data + i, '\n', p->len - i);
		size_t n = nl ? (size_t)(nl - (p->data + i)) : p->len - i;
		if (i + n > MESSAGE_PROBLEMS)
			break;
		mr_buf_printf(&msg, "\n  %.*s", (int)n, (const char *)p->data + i);
		shown++;
		i += n + 1;
	}
	if (shown < np)
		mr_buf_printf(&msg, "\n  ... and %zu more", np - shown);
	rc = mr_error_set(MR_EVERIFY, "%s", msg.data ? (const char *)msg.data : "");
	mr_buf_free(&msg);
	return rc;
}

int mr_wasm_check_unit(const void *bytes, size_t len, const char *abi_version,
		       mr_buf *report)
{
	mr_buf p = MR_BUF_INIT;
	mr_wasm *m = NULL;
	char nm[256];
	size_t np = 0, i;
	uint32_t start;
	int rc;

	p.max = PROBLEMS_MAX;
	if ((rc = mr_wasm_parse(&m, bytes, len)))
		return rc;
	check_imports(m, &p, &np);
	for (i = 0; i < m->nexports; i++) {
		if (allowed_export(&m->exports[i].name))
			continue;
		show(nm, sizeof(nm), &m->exports[i].name);
		problem(&p, &np, "export %s is not allowed: units export only memory, "
			"_initialize and the seven molt_* functions (docs/abi.md)", nm);
	}
	check_export(m, "memory", MR_WASM_MEMORY, NULL, 1, &p, &np);
	for (i = 0; i < NABI; i++)
		check_export(m, abi_funcs[i].name, MR_WASM_FUNC, abi_funcs[i].sig, 1, &p, &np);
	check_export(m, "_initialize", MR_WASM_FUNC, INIT_SIG, 0, &p, &np);
	if (mr_wasm_start(m, &start))
		problem(&p, &np, "the module has a start function (function %u): a unit "
			"runs no code when instantiated; the host calls _initialize "
			"(docs/abi.md)", start);
	if ((rc = check_version(m, abi_version, &p, &np)))
		goto done;
	if (!np)
		goto done;
	if (report)
		mr_buf_put(report, p.data, p.len);
	rc = refuse(&p, np);
done:
	mr_wasm_free(m);
	mr_buf_free(&p);
	return rc;
}

int mr_wasm_check_file(const char *path, const char *abi_version, mr_buf *report)
{
	mr_buf b = MR_BUF_INIT;
	int rc;

	b.max = FILE_MAX;
	if (!(rc = mr_fs_read(&b, path, FILE_MAX)) &&
	    (rc = mr_wasm_check_unit(b.data, b.len, abi_version, report)))
		mr_error_wrap(rc, "%s", path); /* mr_fs_read's message names it already */
	mr_buf_free(&b);
	return rc;
}
