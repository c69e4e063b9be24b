/* Schema documents (docs/schemas.md): checking, canonical form, digest, diff. */
#include "mr/schemadoc.h"

#include "mr/buf.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_PROBLEMS 20
#define NAME_MAX_LEN 64
#define PATH_LEN 1024

struct mr_schemadoc {
	mr_json *json;
	const char *id;
	int version;
	const char *codec;
	const cJSON *type;
	mr_buf canonical;
	char digest[MR_DIGEST_STR_LEN + 1];
};

typedef struct {
	const mr_json *doc; /* NULL before the text parses */
	const char *file;
	const char *text;
	mr_buf report;
	int count;
} checker;

static const char *const prims[] = {"bool", "int", "float", "string", "bytes", NULL};
static const char *const columns[] = {"bool", "int", "float", "string", NULL};
static const char *const ctors[] = {"list", "map", "record", "enum", "nullable", NULL};
static const char *const top_keys[] = {"id", "version", "codec", "doc", "type", NULL};
static const char *const field_keys[] = {"name", "type", "optional", NULL};

static int in(const char *const *set, const char *s)
{
	for (; *set; set++)
		if (!strcmp(*set, s))
			return 1;
	return 0;
}

size_t mr_schemadoc_utf8_span(const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t i = 0, len, k;

	while (i < n) {
		unsigned char c = p[i], lo = 0x80, hi = 0xBF;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xC2 && c <= 0xDF)
			len = 2;
		else if (c >= 0xE0 && c <= 0xEF)
			len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
		else if (c >= 0xF0 && c <= 0xF4)
			len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
		else
			return i;
		if (n - i < len || p[i + 1] < lo || p[i + 1] > hi)
			return i;
		for (k = 2; k < len; k++)
			if ((p[i + k] & 0xC0) != 0x80)
				return i;
		i += len;
	}
	return i;
}

static int is_ident(const char *s, size_t len)
{
	size_t i;

	if (!len || (s[0] >= '0' && s[0] <= '9'))
		return 0;
	for (i = 0; i < len; i++)
		if (!(s[i] == '_' || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

/* Appends printf output to path, truncating at `n`. */
static void path_add(char *path, size_t n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void path_add(char *path, size_t n, const char *fmt, ...)
{
	size_t old = strlen(path);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(path + old, n - old, fmt, ap);
	va_end(ap);
}

size_t mr_schemadoc_path_key(char *path, size_t n, const char *key, size_t len)
{
	size_t old = strlen(path), i;

	if (is_ident(key, len)) {
		path_add(path, n, "%s%.*s", old ? "." : "", (int)len, key);
		return old;
	}
	/* JSON.stringify's escaping, so C and JS name a key alike. */
	path_add(path, n, "[\"");
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];
		const char *esc = c == '"'    ? "\\\""
				  : c == '\\' ? "\\\\"
				  : c == '\b' ? "\\b"
				  : c == '\f' ? "\\f"
				  : c == '\n' ? "\\n"
				  : c == '\r' ? "\\r"
				  : c == '\t' ? "\\t"
					      : NULL;
		if (esc)
			path_add(path, n, "%s", esc);
		else if (c < 0x20)
			path_add(path, n, "\\u%04x", c);
		else
			path_add(path, n, "%c", c);
	}
	path_add(path, n, "\"]");
	return old;
}

static size_t path_key(char *path, const char *key)
{
	return mr_schemadoc_path_key(path, PATH_LEN, key, strlen(key));
}

static size_t path_index(char *path, int i)
{
	size_t old = strlen(path);

	path_add(path, PATH_LEN, "[%d]", i);
	return old;
}

/* ------------------------------------------------------------ problems */

static void offset_pos(const char *text, size_t off, int *line, int *col)
{
	size_t i;

	*line = *col = 1;
	for (i = 0; i < off; i++) {
		if (text[i] == '\n')
			(*line)++, *col = 1;
		else if (((unsigned char)text[i] & 0xC0) != 0x80)
			(*col)++;
	}
}

static void vproblem(checker *cx, int line, int col, const char *path, const char *fmt, va_list ap)
    __attribute__((format(printf, 5, 0)));
static void vproblem(checker *cx, int line, int col, const char *path, const char *fmt, va_list ap)
{
	char msg[768];

	if (cx->count++ == MAX_PROBLEMS)
		mr_buf_printf(&cx->report, "%s: more problems not shown; fix these first\n",
			      cx->file);
	if (cx->count > MAX_PROBLEMS)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	mr_buf_printf(&cx->report, "%s:%d:%d: %s%s%s\n", cx->file, line, col, path,
		      *path ? ": " : "", msg);
}

/* A problem at `at` (its member name when `key`), or at byte `off` of the
 * text when `at` is NULL. */
static void problem(checker *cx, const cJSON *at, int key, size_t off, const char *path,
		    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void problem(checker *cx, const cJSON *at, int key, size_t off, const char *path,
		    const char *fmt, ...)
{
	int line = 0, col = 0;
	va_list ap;

	if (!at)
		offset_pos(cx->text, off, &line, &col);
	else if (key)
		mr_json_key_pos(cx->doc, at, &line, &col);
	else
		mr_json_pos(cx->doc, at, &line, &col);
	va_start(ap, fmt);
	vproblem(cx, line, col, path, fmt, ap);
	va_end(ap);
}

/* Shows a JSON value briefly, for "found ..." (at most about 60 bytes). */
static const char *show(char *buf, size_t n, const cJSON *v)
{
	mr_buf b = MR_BUF_INIT;

	if (!v) {
		snprintf(buf, n, "nothing");
		return buf;
	}
	b.max = 4096;
	mr_json_canonical(&b, v);
	if (!b.data)
		snprintf(buf, n, "?");
	else if (b.len > 60)
		snprintf(buf, n, "%.57s...", (char *)b.data);
	else
		snprintf(buf, n, "%s", (char *)b.data);
	mr_buf_free(&b);
	return buf;
}

/* ------------------------------------------------------------ checking */

typedef struct {
	const cJSON *at; /* the member, item, or field "name" value */
	const char *s;	 /* the string that must not repeat */
	int index;	 /* position in the object, enum or record */
} member;

static int cmp_member(const void *a, const void *b)
{
	const member *x = a, *y = b;
	int c = strcmp(x->s, y->s);

	return c ? c : (x->index > y->index) - (x->index < y->index);
}

enum { REPEAT_KEY, REPEAT_ITEM, REPEAT_FIELD };

/* Reports entries of `m` whose string repeats an earlier one, at the later
 * one: object keys (path.key), enum items (path[i]), field names
 * (path[i].name). Sorts `m`. */
static void report_repeats(checker *cx, member *m, int n, int mode, char *path)
{
	static const char *const what[] = {"the key", "the value", "the field"};
	int i, line, col;
	size_t old;

	qsort(m, (size_t)n, sizeof(*m), cmp_member);
	for (i = 1; i < n; i++) {
		if (strcmp(m[i - 1].s, m[i].s))
			continue;
		if (mode == REPEAT_KEY)
			mr_json_key_pos(cx->doc, m[i - 1].at, &line, &col);
		else
			mr_json_pos(cx->doc, m[i - 1].at, &line, &col);
		old = mode == REPEAT_KEY ? path_key(path, m[i].s) : path_index(path, m[i].index);
		if (mode == REPEAT_FIELD)
			path_key(path, "name");
		problem(cx, m[i].at, mode == REPEAT_KEY, 0, path,
			"%s \"%s\" appears twice (first at "
			"line %d, column %d)%s",
			what[mode], m[i].s, line, col,
			mode == REPEAT_KEY
			    ? "; JSON readers disagree on which one counts, so remove one"
			    : "");
		path[old] = '\0';
	}
}

/* Collects the strings of `list`'s children (keys, string items, or field
 * names) and reports repeats. */
static void check_repeats(checker *cx, const cJSON *list, int mode, char *path)
{
	const cJSON *c, *s;
	member *m;
	int n = 0, i = 0;

	for (c = list->child; c; c = c->next)
		n++;
	if (n < 2)
		return;
	if (!(m = malloc((size_t)n * sizeof(*m)))) {
		cx->count++;
		mr_buf_printf(&cx->report, "%s: out of memory\n", cx->file);
		return;
	}
	for (n = 0, c = list->child; c; c = c->next, i++) {
		s = mode == REPEAT_FIELD ? cJSON_GetObjectItemCaseSensitive(c, "name") : c;
		if (mode == REPEAT_KEY)
			m[n++] = (member){c, c->string, i};
		else if (cJSON_IsString(s))
			m[n++] = (member){s, s->valuestring, i};
	}
	report_repeats(cx, m, n, mode, path);
	free(m);
}

/* Every object in the document, at any depth: no member name twice. */
static void check_keys(checker *cx, const cJSON *v, char *path)
{
	const cJSON *c;
	size_t old;
	int i = 0;

	if (cJSON_IsObject(v))
		check_repeats(cx, v, REPEAT_KEY, path);
	for (c = v->child; c; c = c->next, i++) {
		old = cJSON_IsObject(v) ? path_key(path, c->string) : path_index(path, i);
		check_keys(cx, c, path);
		path[old] = '\0';
	}
}

static void check_type(checker *cx, const cJSON *t, char *path, int depth);

static void check_column(checker *cx, const cJSON *t, char *path)
{
	const cJSON *inner = cJSON_IsObject(t) && t->child && !t->child->next
				 ? cJSON_GetObjectItemCaseSensitive(t, "nullable")
				 : NULL;
	char found[80];

	if ((cJSON_IsString(t) && in(columns, t->valuestring)) ||
	    (cJSON_IsString(inner) && in(columns, inner->valuestring)))
		return;
	problem(cx, t, 0, 0, path,
		"expected an Arrow column type: \"bool\", \"int\", \"float\", "
		"\"string\", or {\"nullable\": one of them}; found %s",
		show(found, sizeof(found), t));
}

static void check_enum(checker *cx, const cJSON *v, char *path)
{
	const cJSON *c;
	char found[80];
	size_t old;
	int i = 0;

	if (!cJSON_IsArray(v) || !v->child) {
		problem(cx, v, 0, 0, path,
			"expected a non-empty list of distinct strings, found %s",
			show(found, sizeof(found), v));
		return;
	}
	for (c = v->child; c; c = c->next, i++) {
		if (cJSON_IsString(c) && *c->valuestring)
			continue;
		old = path_index(path, i);
		problem(cx, c, 0, 0, path, "expected a non-empty string, found %s",
			show(found, sizeof(found), c));
		path[old] = '\0';
	}
	check_repeats(cx, v, REPEAT_ITEM, path);
}

static void check_field(checker *cx, const cJSON *f, char *path, int depth, int arrow)
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name");
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(f, "type");
	const cJSON *opt = cJSON_GetObjectItemCaseSensitive(f, "optional");
	const cJSON *c;
	char found[80];
	size_t old;

	if (!cJSON_IsObject(f)) {
		problem(cx, f, 0, 0, path,
			"expected a field {\"name\": N, \"type\": T} (and "
			"\"optional\": true if it may be absent), found %s",
			show(found, sizeof(found), f));
		return;
	}
	for (c = f->child; c; c = c->next) {
		if (in(field_keys, c->string))
			continue;
		old = path_key(path, c->string);
		problem(cx, c, 1, 0, path,
			"unknown key \"%s\"; a field has name, type and optional", c->string);
		path[old] = '\0';
	}
	if (!name)
		problem(cx, f, 0, 0, path, "this field has no \"name\"");
	if (!type)
		problem(cx, f, 0, 0, path, "this field has no \"type\"");
	old = path_key(path, "name");
	if (name && (!cJSON_IsString(name) || strlen(name->valuestring) > NAME_MAX_LEN ||
		     !is_ident(name->valuestring, strlen(name->valuestring))))
		problem(cx, name, 0, 0, path,
			"expected a field name: a letter or '_', then letters, "
			"digits or '_', at most %d in all; found %s",
			NAME_MAX_LEN, show(found, sizeof(found), name));
	else if (name && !strcmp(name->valuestring, "__proto__"))
		problem(cx, name, 0, 0, path,
			"\"__proto__\" cannot be a field name: JavaScript "
			"hosts cannot hold it in an object; choose another name");
	path[old] = '\0';
	old = path_key(path, "optional");
	if (opt && !cJSON_IsBool(opt))
		problem(cx, opt, 0, 0, path, "expected true or false, found %s",
			show(found, sizeof(found), opt));
	else if (arrow && cJSON_IsTrue(opt))
		problem(cx, opt, 0, 0, path,
			"an Arrow column is always present; write its type as "
			"{\"nullable\": T} for missing values instead");
	path[old] = '\0';
	if (type) {
		old = path_key(path, "type");
		if (arrow)
			check_column(cx, type, path);
		else
			check_type(cx, type, path, depth);
		path[old] = '\0';
	}
}

static void check_record(checker *cx, const cJSON *v, char *path, int depth, int arrow)
{
	const cJSON *f;
	char found[80];
	size_t old;
	int i = 0;

	if (!cJSON_IsArray(v)) {
		problem(cx, v, 0, 0, path,
			"expected a list of fields [{\"name\": N, \"type\": T}, "
			"...], found %s",
			show(found, sizeof(found), v));
		return;
	}
	for (f = v->child; f; f = f->next, i++) {
		old = path_index(path, i);
		check_field(cx, f, path, depth, arrow);
		path[old] = '\0';
	}
	check_repeats(cx, v, REPEAT_FIELD, path);
}

static void check_type(checker *cx, const cJSON *t, char *path, int depth)
{
	const cJSON *arg;
	char found[80];
	size_t old;

	if (cJSON_IsString(t)) {
		if (!in(prims, t->valuestring))
			problem(cx, t, 0, 0, path,
				"unknown type \"%s\"; expected bool, int, float, "
				"string, bytes, or an object {list|map|record|enum|nullable: ...}",
				t->valuestring);
		return;
	}
	if (!cJSON_IsObject(t) || !t->child) {
		problem(cx, t, 0, 0, path,
			"expected a type: \"bool\", \"int\", \"float\", \"string\", "
			"\"bytes\", or an object with one of list, map, record, enum, nullable; "
			"found %s",
			show(found, sizeof(found), t));
		return;
	}
	arg = t->child;
	if (arg->next) {
		old = path_key(path, arg->next->string);
		problem(cx, arg->next, 1, 0, path,
			"a type object has exactly one member; found "
			"\"%s\" after \"%s\"",
			arg->next->string, arg->string);
		path[old] = '\0';
		return;
	}
	old = path_key(path, arg->string);
	if (!in(ctors, arg->string))
		problem(cx, arg, 1, 0, path,
			"unknown type constructor \"%s\"; expected list, map, "
			"record, enum or nullable",
			arg->string);
	else if (depth >= MR_SCHEMADOC_MAX_DEPTH && strcmp(arg->string, "enum"))
		problem(cx, arg, 1, 0, path,
			"the type nests more than %d levels (each list, map, "
			"record and nullable counts one); flatten it",
			MR_SCHEMADOC_MAX_DEPTH);
	else if (!strcmp(arg->string, "enum"))
		check_enum(cx, arg, path);
	else if (!strcmp(arg->string, "record"))
		check_record(cx, arg, path, depth + 1, 0);
	else
		check_type(cx, arg, path, depth + 1);
	path[old] = '\0';
}

static int id_ok(const char *s)
{
	size_t seg = 0;
	int dots = 0;

	for (; *s; s++) {
		if (*s == '.') {
			if (!seg)
				return 0;
			dots++, seg = 0;
		} else if ((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '_') {
			seg++;
		} else {
			return 0;
		}
	}
	return seg && dots;
}

static void check_doc(checker *cx, mr_schemadoc *d)
{
	const cJSON *root = mr_json_root(cx->doc), *c, *id, *ver, *codec, *doc;
	char path[PATH_LEN] = "", found[80];
	size_t old;

	if (!cJSON_IsObject(root)) {
		problem(cx, root, 0, 0, "",
			"expected a schema: an object with \"id\", \"version\", "
			"\"codec\", \"doc\" and \"type\" (docs/schemas.md); found %s",
			show(found, sizeof(found), root));
		return;
	}
	check_keys(cx, root, path);
	for (c = root->child; c; c = c->next) {
		if (in(top_keys, c->string))
			continue;
		old = path_key(path, c->string);
		problem(cx, c, 1, 0, path,
			"unknown key \"%s\"; a schema has id, version, codec, doc "
			"and type%s",
			c->string,
			c->string[0] == '$' ? " (a JSON Schema is not a payload schema)" : "");
		path[old] = '\0';
	}
	id = cJSON_GetObjectItemCaseSensitive(root, "id");
	ver = cJSON_GetObjectItemCaseSensitive(root, "version");
	codec = cJSON_GetObjectItemCaseSensitive(root, "codec");
	doc = cJSON_GetObjectItemCaseSensitive(root, "doc");
	d->type = cJSON_GetObjectItemCaseSensitive(root, "type");
	if (!cJSON_IsString(id) || !id_ok(id->valuestring))
		problem(cx, id ? id : root, 0, 0, id ? "id" : "",
			"expected \"id\": dotted lowercase "
			"words like \"hello.greet_request\" ([a-z0-9_]+, at least two), found %s",
			show(found, sizeof(found), id));
	else
		d->id = id->valuestring;
	if (!mr_json_is_int(ver, 1, INT_MAX))
		problem(cx, ver ? ver : root, 0, 0, ver ? "version" : "",
			"expected \"version\": an "
			"integer from 1 to %d, found %s",
			INT_MAX, show(found, sizeof(found), ver));
	else
		d->version = (int)ver->valuedouble;
	d->codec = codec ? (cJSON_IsString(codec) ? codec->valuestring : "") : "msgpack";
	if (strcmp(d->codec, "msgpack") && strcmp(d->codec, "arrow"))
		problem(cx, codec, 0, 0, "codec", "expected \"msgpack\" or \"arrow\", found %s",
			show(found, sizeof(found), codec));
	if (doc && !cJSON_IsString(doc))
		problem(cx, doc, 0, 0, "doc", "expected a string, found %s",
			show(found, sizeof(found), doc));
	snprintf(path, sizeof(path), "type");
	if (!d->type) {
		problem(cx, root, 0, 0, "", "this schema has no \"type\"");
	} else if (!strcmp(d->codec, "arrow")) {
		c = cJSON_IsObject(d->type) && d->type->child && !d->type->child->next
			? cJSON_GetObjectItemCaseSensitive(d->type, "record")
			: NULL;
		if (!c)
			problem(cx, d->type, 0, 0, path,
				"an Arrow schema's type is a column list "
				"{\"record\": [{\"name\": N, \"type\": T}, ...]}; found %s",
				show(found, sizeof(found), d->type));
		else {
			path_key(path, "record");
			check_record(cx, c, path, 1, 1);
		}
	} else {
		check_type(cx, d->type, path, 0);
	}
}

/* Text-level rules cJSON cannot see: UTF-8, and no U+0000 escapes (cJSON
 * would cut the string there, so C and JS would read different text). */
static void check_text(checker *cx, const char *text, size_t len)
{
	size_t good = mr_schemadoc_utf8_span(text, len), i;

	if (good < len)
		problem(cx, NULL, 0, good, "",
			"the file is not UTF-8 (byte 0x%02x); save it as UTF-8",
			(unsigned char)text[good]);
	for (i = 0; i + 5 < len; i++) {
		if (text[i] != '\\')
			continue;
		if (!memcmp(text + i + 1, "u0000", 5))
			problem(cx, NULL, 0, i, "",
				"\\u0000 (NUL) inside a string; schema text cannot "
				"hold NUL, remove it");
		i++;
	}
}

int mr_schemadoc_parse(mr_schemadoc **out, const char *file, const char *text, size_t len)
{
	checker cx = {NULL, file, text, MR_BUF_INIT, 0};
	mr_schemadoc *d = calloc(1, sizeof(*d));
	int rc = 0;

	*out = NULL;
	if (!d)
		return mr_error_set(MR_ERROR, "out of memory");
	if ((rc = mr_json_parse(&d->json, file, text, len)))
		goto done;
	cx.doc = d->json;
	check_text(&cx, text, len);
	check_doc(&cx, d);
	if (cx.count) {
		if (cx.report.len && cx.report.data[cx.report.len - 1] == '\n')
			cx.report.data[--cx.report.len] = '\0';
		rc = mr_error_set(MR_EINVALID, "%s", cx.report.data ? (char *)cx.report.data : "?");
		goto done;
	}
	d->canonical.max = 2 * MR_SCHEMADOC_MAX_SIZE;
	if ((rc = mr_json_canonical(&d->canonical, mr_json_root(d->json))))
		goto done;
	mr_digest_buf(d->digest, d->canonical.data, d->canonical.len);
done:
	mr_buf_free(&cx.report);
	if (rc)
		mr_schemadoc_free(d);
	else
		*out = d;
	return rc;
}

int mr_schemadoc_load(mr_schemadoc **out, const char *path)
{
	mr_buf b = MR_BUF_INIT;
	mr_schemadoc *d = NULL;
	const char *base = strrchr(path, '/');
	char want[512];
	int rc, line, col;

	*out = NULL;
	base = base ? base + 1 : path;
	if ((rc = mr_fs_read(&b, path, MR_SCHEMADOC_MAX_SIZE)) ||
	    (rc = mr_schemadoc_parse(&d, path, (const char *)b.data, b.len)))
		goto done;
	snprintf(want, sizeof(want), "%s.v%d.json", d->id, d->version);
	if (strcmp(base, want)) {
		mr_json_pos(d->json, cJSON_GetObjectItemCaseSensitive(mr_json_root(d->json), "id"),
			    &line, &col);
		rc = mr_error_set(MR_EINVALID,
				  "%s:%d:%d: id: the file is named %s, but \"id\" and "
				  "\"version\" say %s; rename the file or fix them",
				  path, line, col, base, want);
		goto done;
	}
	*out = d;
	d = NULL;
done:
	mr_schemadoc_free(d);
	mr_buf_free(&b);
	return rc;
}

const char *mr_schemadoc_id(const mr_schemadoc *d)
{
	return d->id;
}

int mr_schemadoc_version(const mr_schemadoc *d)
{
	return d->version;
}

const char *mr_schemadoc_codec(const mr_schemadoc *d)
{
	return d->codec;
}

const cJSON *mr_schemadoc_type(const mr_schemadoc *d)
{
	return d->type;
}

const char *mr_schemadoc_canonical(const mr_schemadoc *d, size_t *len)
{
	if (len)
		*len = d->canonical.len;
	return (const char *)d->canonical.data;
}

const char *mr_schemadoc_digest(const mr_schemadoc *d)
{
	return d->digest;
}

void mr_schemadoc_free(mr_schemadoc *d)
{
	if (!d)
		return;
	mr_json_free(d->json);
	mr_buf_free(&d->canonical);
	free(d);
}

/* ------------------------------------------------------------ diff */

typedef struct {
	mr_schemadoc_changes *out;
	size_t cap;
	int rc;
} differ;

static void change(differ *df, const char *path, int breaking, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void change(differ *df, const char *path, int breaking, const char *fmt, ...)
{
	mr_schemadoc_changes *c = df->out;
	char what[512];
	va_list ap;

	if (df->rc)
		return;
	if (c->n == df->cap) {
		size_t cap = df->cap ? 2 * df->cap : 8;
		mr_schemadoc_change *p = realloc(c->items, cap * sizeof(*p));
		if (!p) {
			df->rc = mr_error_set(MR_ERROR, "out of memory");
			return;
		}
		c->items = p;
		df->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	c->items[c->n] = (mr_schemadoc_change){strdup(path), strdup(what), breaking};
	if (!c->items[c->n].path || !c->items[c->n].what) {
		free(c->items[c->n].path);
		free(c->items[c->n].what);
		df->rc = mr_error_set(MR_ERROR, "out of memory");
		return;
	}
	c->n++;
	c->breaking |= breaking;
}

static const char *kind(const cJSON *t, const cJSON **arg)
{
	*arg = cJSON_IsObject(t) ? t->child : NULL;
	if (cJSON_IsString(t))
		return t->valuestring;
	return *arg ? (*arg)->string : "?";
}

/* An enum's values or a record's fields, sorted by string for lookups. */
typedef struct {
	member *m;
	int n;
} index_t;

static const char *item_name(const cJSON *c, int fields)
{
	return fields ? mr_json_str(c, "name") : c->valuestring;
}

static int index_make(index_t *ix, const cJSON *list, int fields)
{
	const cJSON *c;
	int i = 0;

	ix->n = cJSON_GetArraySize(list);
	if (!(ix->m = malloc((size_t)(ix->n ? ix->n : 1) * sizeof(*ix->m))))
		return mr_error_set(MR_ERROR, "out of memory");
	for (c = list->child; c; c = c->next, i++)
		ix->m[i] = (member){c, item_name(c, fields), i};
	qsort(ix->m, (size_t)ix->n, sizeof(*ix->m), cmp_member);
	return 0;
}

static int cmp_name(const void *key, const void *m)
{
	return strcmp(key, ((const member *)m)->s);
}

/* The item named `s`, or NULL. */
static const cJSON *index_find(const index_t *ix, const char *s)
{
	const member *m = bsearch(s, ix->m, (size_t)ix->n, sizeof(*ix->m), cmp_name);

	return m ? m->at : NULL;
}

/* 1 if the items both lists share come in a different order. */
static int reordered(const cJSON *a, const index_t *ia, const cJSON *b, const index_t *ib,
		     int fields)
{
	const cJSON *x = a->child, *y = b->child;

	for (;;) {
		while (x && !index_find(ib, item_name(x, fields)))
			x = x->next;
		while (y && !index_find(ia, item_name(y, fields)))
			y = y->next;
		if (!x || !y)
			return 0;
		if (strcmp(item_name(x, fields), item_name(y, fields)))
			return 1;
		x = x->next, y = y->next;
	}
}

static void diff_type(differ *df, const cJSON *a, const cJSON *b, char *path);

static void diff_enum(differ *df, const cJSON *a, const cJSON *b, const char *path)
{
	index_t ia = {NULL, 0}, ib = {NULL, 0};
	const cJSON *c;
	int moved = 0;

	if ((df->rc = index_make(&ia, a, 0)) || (df->rc = index_make(&ib, b, 0)))
		goto done;
	for (c = a->child; c; c = c->next)
		if (!index_find(&ib, c->valuestring))
			change(df, path, 1,
			       "enum value \"%s\" removed: readers of the new version "
			       "refuse it",
			       c->valuestring),
			    moved = 1;
	for (c = b->child; c; c = c->next)
		if (!index_find(&ia, c->valuestring))
			change(df, path, 1,
			       "enum value \"%s\" added: readers of the old version refuse "
			       "it, and code written for the old values cannot know what it means",
			       c->valuestring),
			    moved = 1;
	if (!moved && reordered(a, &ia, b, &ib, 0))
		change(df, path, 0, "enum values reordered (the same values validate)");
done:
	free(ia.m);
	free(ib.m);
}

static void diff_record(differ *df, const cJSON *a, const cJSON *b, char *path)
{
	index_t ia = {NULL, 0}, ib = {NULL, 0};
	const cJSON *fa, *fb;
	char shown[80];
	size_t old;

	if ((df->rc = index_make(&ia, a, 1)) || (df->rc = index_make(&ib, b, 1)))
		goto done;
	for (fa = a->child; fa; fa = fa->next) {
		const char *name = mr_json_str(fa, "name");
		int oa = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fa, "optional")), ob;
		old = path_key(path, name);
		if (!(fb = index_find(&ib, name))) {
			change(df, path, 1,
			       "%s field removed: readers of the new version refuse it as "
			       "unknown",
			       oa ? "optional" : "required");
		} else {
			ob = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fb, "optional"));
			if (oa && !ob)
				change(df, path, 1,
				       "field became required: values of the old version may "
				       "lack it");
			else if (!oa && ob)
				change(df, path, 1,
				       "field became optional: readers of the old version "
				       "require it");
			diff_type(df, cJSON_GetObjectItemCaseSensitive(fa, "type"),
				  cJSON_GetObjectItemCaseSensitive(fb, "type"), path);
		}
		path[old] = '\0';
	}
	for (fb = b->child; fb; fb = fb->next) {
		const char *name = mr_json_str(fb, "name");
		const cJSON *t = cJSON_GetObjectItemCaseSensitive(fb, "type");
		if (index_find(&ia, name))
			continue;
		old = path_key(path, name);
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(fb, "optional")))
			change(df, path, 0, "optional field added (%s)",
			       show(shown, sizeof(shown), t));
		else
			change(df, path, 1,
			       "required field added (%s): values of the old version lack it",
			       show(shown, sizeof(shown), t));
		path[old] = '\0';
	}
	if (reordered(a, &ia, b, &ib, 1))
		change(df, path, 0,
		       "fields reordered (encoders write the new order; readers accept "
		       "any order)");
done:
	free(ia.m);
	free(ib.m);
}

static void diff_type(differ *df, const cJSON *a, const cJSON *b, char *path)
{
	const cJSON *xa, *xb;
	const char *ka = kind(a, &xa), *kb = kind(b, &xb);
	char sa[80], sb[80];
	size_t old = strlen(path);

	if (strcmp(ka, kb)) {
		if (!strcmp(ka, "nullable")) {
			change(df, path, 1,
			       "no longer nullable: readers of the new version refuse the "
			       "nil that the old version allows");
			diff_type(df, xa, b, path);
		} else if (!strcmp(kb, "nullable")) {
			change(df, path, 1,
			       "became nullable: readers of the old version refuse nil");
			diff_type(df, a, xb, path);
		} else {
			change(df, path, 1, "type changed from %s to %s", show(sa, sizeof(sa), a),
			       show(sb, sizeof(sb), b));
		}
		return;
	}
	if (!xa)
		return;
	if (!strcmp(ka, "list") || !strcmp(ka, "map")) {
		path_add(path, PATH_LEN, "%s", !strcmp(ka, "list") ? "[]" : "{}");
		diff_type(df, xa, xb, path);
	} else if (!strcmp(ka, "nullable")) {
		diff_type(df, xa, xb, path);
	} else if (!strcmp(ka, "enum")) {
		diff_enum(df, xa, xb, path);
	} else if (!strcmp(ka, "record")) {
		diff_record(df, xa, xb, path);
	}
	path[old] = '\0';
}

int mr_schemadoc_diff(mr_schemadoc_changes *out, const mr_schemadoc *old_doc,
		      const mr_schemadoc *new_doc)
{
	differ df = {out, 0, 0};
	const char *da = mr_json_str(mr_json_root(old_doc->json), "doc");
	const char *db = mr_json_str(mr_json_root(new_doc->json), "doc");
	char path[PATH_LEN] = "";

	memset(out, 0, sizeof(*out));
	if (strcmp(old_doc->id, new_doc->id))
		return mr_error_set(MR_EINVALID,
				    "%s and %s are different schemas (%s, %s); diff "
				    "compares two versions of one id",
				    mr_json_file(old_doc->json), mr_json_file(new_doc->json),
				    old_doc->id, new_doc->id);
	if (strcmp(old_doc->codec, new_doc->codec))
		change(&df, "codec", 1, "codec changed from %s to %s", old_doc->codec,
		       new_doc->codec);
	if (strcmp(da ? da : "", db ? db : ""))
		change(&df, "doc", 0, "doc text changed");
	diff_type(&df, old_doc->type, new_doc->type, path);
	return df.rc;
}

void mr_schemadoc_changes_free(mr_schemadoc_changes *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n; i++) {
		free(c->items[i].path);
		free(c->items[i].what);
	}
	free(c->items);
	memset(c, 0, sizeof(*c));
}
