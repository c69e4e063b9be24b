#include "mrecipe/recipe.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generated at build time from schemas/recipe.v1.json (cmake/embed.cmake). */
extern const char mr_recipe_schema_json[];

typedef struct {
	mr_buf *report;
	const mr_json *doc;
	const cJSON *schema_root;
	int count;
} lint_ctx;

static void vproblem(lint_ctx *cx, const cJSON *at, int key, const char *path,
		     const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));

static void vproblem(lint_ctx *cx, const cJSON *at, int key, const char *path,
		     const char *fmt, va_list ap)
{
	char msg[1024];
	int line, col;

	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (key)
		mr_json_key_pos(cx->doc, at, &line, &col);
	else
		mr_json_pos(cx->doc, at, &line, &col);
	mr_buf_printf(cx->report, "%s:%d:%d: %s: %s\n", mr_json_file(cx->doc),
		      line, col, *path ? path : "(top level)", msg);
	cx->count++;
}

/* A problem with a value: points at the value. */
static void problem(lint_ctx *cx, const cJSON *at, const char *path,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void problem(lint_ctx *cx, const cJSON *at, const char *path,
		    const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vproblem(cx, at, 0, path, fmt, ap);
	va_end(ap);
}

/* A problem with a member's name: points at the name. */
static void key_problem(lint_ctx *cx, const cJSON *at, const char *path,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void key_problem(lint_ctx *cx, const cJSON *at, const char *path,
			const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vproblem(cx, at, 1, path, fmt, ap);
	va_end(ap);
}

static const char *type_name(const cJSON *v)
{
	if (cJSON_IsObject(v))
		return "object";
	if (cJSON_IsArray(v))
		return "array";
	if (cJSON_IsString(v))
		return "string";
	if (cJSON_IsBool(v))
		return "boolean";
	if (cJSON_IsNull(v))
		return "null";
	if (mr_json_is_int(v, -1e300, 1e300))
		return "integer";
	return "number";
}

/* A short rendering of a found value for messages. */
static void describe(char *out, size_t n, const cJSON *v)
{
	if (cJSON_IsString(v))
		snprintf(out, n, "\"%.60s\"", v->valuestring);
	else if (cJSON_IsNumber(v))
		snprintf(out, n, "%g", v->valuedouble);
	else
		snprintf(out, n, "%s", type_name(v));
}

static int type_ok(const char *want, const cJSON *v)
{
	const char *t = type_name(v);

	return !strcmp(want, t) || (!strcmp(want, "number") && !strcmp(t, "integer"));
}

static const cJSON *resolve(lint_ctx *cx, const cJSON *s)
{
	const char *ref = mr_json_str(s, "$ref");

	if (ref && !strncmp(ref, "#/$defs/", 8))
		return cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(cx->schema_root, "$defs"),
			ref + 8);
	return s;
}

static void check(lint_ctx *cx, const cJSON *s, const cJSON *v, const char *path);

static void check_object(lint_ctx *cx, const cJSON *s, const cJSON *v,
			 const char *path)
{
	const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
	const cJSON *req = cJSON_GetObjectItemCaseSensitive(s, "required");
	const cJSON *addl = cJSON_GetObjectItemCaseSensitive(s, "additionalProperties");
	const cJSON *c, *d;
	char sub[512];

	for (c = v->child; c; c = c->next) {
		const cJSON *ps = cJSON_GetObjectItemCaseSensitive(props, c->string);
		snprintf(sub, sizeof(sub), "%s%s%s", path, *path ? "." : "", c->string);
		for (d = v->child; d != c; d = d->next)
			if (!strcmp(d->string, c->string))
				break;
		if (d != c) {
			key_problem(cx, c, sub, "duplicate field; keep one");
			continue;
		}
		if (ps) {
			check(cx, ps, c, sub);
		} else if (cJSON_IsFalse(addl)) {
			mr_buf valid = MR_BUF_INIT;
			for (d = props ? props->child : NULL; d; d = d->next)
				mr_buf_printf(&valid, "%s%s", valid.len ? ", " : "", d->string);
			key_problem(cx, c, sub, "unknown field '%s'; valid fields here are: %s",
				c->string, valid.data ? (char *)valid.data : "(none)");
			mr_buf_free(&valid);
		}
	}
	for (c = req ? req->child : NULL; c; c = c->next)
		if (cJSON_IsString(c) &&
		    !cJSON_GetObjectItemCaseSensitive(v, c->valuestring))
			problem(cx, v, path, "missing required field '%s'",
				c->valuestring);
}

static void check_scalar(lint_ctx *cx, const cJSON *s, const cJSON *v,
			 const char *path)
{
	const cJSON *k;
	char found[96];

	describe(found, sizeof(found), v);
	if (cJSON_IsString(v)) {
		const char *pat = mr_json_str(s, "pattern");
		k = cJSON_GetObjectItemCaseSensitive(s, "minLength");
		if (cJSON_IsNumber(k) && strlen(v->valuestring) < (size_t)k->valuedouble)
			problem(cx, v, path, "expected a non-empty string, found \"\"");
		if (pat) {
			regex_t re;
			if (!regcomp(&re, pat, REG_EXTENDED | REG_NOSUB)) {
				const char *why = mr_json_str(s, "description");
				if (regexec(&re, v->valuestring, 0, NULL, 0))
					problem(cx, v, path,
						"expected a string matching %s%s%s%s, found %s",
						pat, why ? " (" : "", why ? why : "",
						why ? ")" : "", found);
				regfree(&re);
			}
		}
	}
	if (cJSON_IsNumber(v)) {
		k = cJSON_GetObjectItemCaseSensitive(s, "minimum");
		if (cJSON_IsNumber(k) && v->valuedouble < k->valuedouble)
			problem(cx, v, path, "expected at least %g, found %s",
				k->valuedouble, found);
		k = cJSON_GetObjectItemCaseSensitive(s, "maximum");
		if (cJSON_IsNumber(k) && v->valuedouble > k->valuedouble)
			problem(cx, v, path, "expected at most %g, found %s",
				k->valuedouble, found);
	}
}

static void check(lint_ctx *cx, const cJSON *s, const cJSON *v, const char *path)
{
	const cJSON *t, *e, *items, *k;
	char found[96], sub[512];
	int i = 0;

	s = resolve(cx, s);
	if (!s)
		return;
	describe(found, sizeof(found), v);
	if ((e = cJSON_GetObjectItemCaseSensitive(s, "enum"))) {
		mr_buf valid = MR_BUF_INIT;
		const cJSON *c;
		int hit = 0;
		for (c = e->child; c; c = c->next) {
			mr_buf_printf(&valid, "%s\"%s\"", valid.len ? ", " : "",
				      c->valuestring);
			hit |= cJSON_IsString(v) && !strcmp(c->valuestring, v->valuestring);
		}
		if (!hit)
			problem(cx, v, path, "expected one of %s, found %s",
				(char *)valid.data, found);
		mr_buf_free(&valid);
		return;
	}
	if ((t = cJSON_GetObjectItemCaseSensitive(s, "type")) && cJSON_IsString(t) &&
	    !type_ok(t->valuestring, v)) {
		problem(cx, v, path, "expected %s %s, found %s",
			strchr("aeiou", t->valuestring[0]) ? "an" : "a",
			t->valuestring, found);
		return;
	}
	if (cJSON_IsObject(v)) {
		check_object(cx, s, v, path);
	} else if (cJSON_IsArray(v)) {
		k = cJSON_GetObjectItemCaseSensitive(s, "minItems");
		if (cJSON_IsNumber(k) && cJSON_GetArraySize(v) < (int)k->valuedouble)
			problem(cx, v, path, "expected at least %d item%s, found %d",
				(int)k->valuedouble, k->valuedouble == 1 ? "" : "s",
				cJSON_GetArraySize(v));
		items = cJSON_GetObjectItemCaseSensitive(s, "items");
		for (e = v->child; items && e; e = e->next, i++) {
			snprintf(sub, sizeof(sub), "%s[%d]", path, i);
			check(cx, items, e, sub);
		}
	} else {
		check_scalar(cx, s, v, path);
	}
}

/* Rules the JSON Schema subset does not say. */
static void check_rules(lint_ctx *cx, const cJSON *r, const char *dir,
			const char *schemas_dir)
{
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(r, "source");
	const cJSON *fns = cJSON_GetObjectItemCaseSensitive(r, "functions");
	const char *kind = mr_json_str(r, "kind");
	const cJSON *f, *g;
	char path[256];
	int i = 0, n;

	if (cJSON_IsObject(src)) {
		n = !!cJSON_GetObjectItemCaseSensitive(src, "path") +
		    !!cJSON_GetObjectItemCaseSensitive(src, "url") +
		    !!cJSON_GetObjectItemCaseSensitive(src, "git");
		if (n != 1)
			problem(cx, src, "source",
				"expected exactly one of 'path', 'url' or 'git', found %d", n);
		if (cJSON_GetObjectItemCaseSensitive(src, "url") &&
		    !cJSON_GetObjectItemCaseSensitive(src, "sha256"))
			problem(cx, src, "source",
				"a 'url' source needs 'sha256' (the sha256 of the archive); "
				"run sha256sum on the file you expect");
		if (cJSON_GetObjectItemCaseSensitive(src, "git") &&
		    !cJSON_GetObjectItemCaseSensitive(src, "commit"))
			problem(cx, src, "source",
				"a 'git' source needs 'commit' (a full 40-hex commit id)");
		const char *p = mr_json_str(src, "path");
		if (p) {
			char *full = mr_fs_join(dir, p);
			if (full && !mr_fs_exists(full))
				problem(cx, cJSON_GetObjectItemCaseSensitive(src, "path"),
					"source.path", "folder %s does not exist", full);
			free(full);
		}
	}
	if (kind && !strcmp(kind, "module")) {
		if (!cJSON_GetObjectItemCaseSensitive(r, "abi_version"))
			problem(cx, r, "", "missing required field 'abi_version' (modules implement an ABI; use \"0.1\")");
		if (!cJSON_GetArraySize(fns))
			problem(cx, fns ? fns : r, "functions",
				"a module needs at least one function");
	}
	for (f = fns ? fns->child : NULL; f; f = f->next, i++) {
		const char *keys[] = { "input", "output" };
		for (g = fns->child; g != f; g = g->next)
			if (mr_json_is_int(cJSON_GetObjectItemCaseSensitive(f, "id"), 1, 65535) &&
			    cJSON_GetObjectItemCaseSensitive(g, "id") &&
			    cJSON_GetObjectItemCaseSensitive(g, "id")->valuedouble ==
				    cJSON_GetObjectItemCaseSensitive(f, "id")->valuedouble) {
				snprintf(path, sizeof(path), "functions[%d].id", i);
				problem(cx, cJSON_GetObjectItemCaseSensitive(f, "id"), path,
					"function id %g is used twice; ids must be unique",
					cJSON_GetObjectItemCaseSensitive(f, "id")->valuedouble);
			}
		for (n = 0; n < 2; n++) {
			const char *ref = mr_json_str(f, keys[n]);
			const char *at = ref ? strrchr(ref, '@') : NULL;
			char file[300], *full;
			if (!at)
				continue;
			snprintf(file, sizeof(file), "%.*s.v%s.json", (int)(at - ref), ref, at + 1);
			full = mr_fs_join(schemas_dir, file);
			if (full && !mr_fs_exists(full)) {
				snprintf(path, sizeof(path), "functions[%d].%s", i, keys[n]);
				problem(cx, cJSON_GetObjectItemCaseSensitive(f, keys[n]), path,
					"schema %s not found: expected the file %s", ref, full);
			}
			free(full);
		}
	}
}

int mr_recipe_lint(mr_buf *report, const mr_json *doc, const char *dir,
		   const char *schemas_dir)
{
	lint_ctx cx = { report, doc, NULL, 0 };
	cJSON *schema = cJSON_Parse(mr_recipe_schema_json);

	if (!schema) {
		mr_buf_puts(report, "internal error: the embedded recipe schema does not parse\n");
		return 1;
	}
	cx.schema_root = schema;
	check(&cx, schema, mr_json_root(doc), "");
	if (!cx.count)
		check_rules(&cx, mr_json_root(doc), dir, schemas_dir);
	cJSON_Delete(schema);
	return cx.count;
}
