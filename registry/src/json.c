#include "mr/json.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	const cJSON *node;
	size_t key; /* where its member name starts (objects' members only) */
	size_t val; /* where its value starts */
} pos_entry;

struct mr_json {
	char *file;
	char *text;
	size_t len;
	cJSON *root;
	pos_entry *pos;
	size_t npos, cappos;
};

static void line_col(const char *text, size_t off, int *line, int *col)
{
	size_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < off; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else if (((unsigned char)text[i] & 0xC0) != 0x80) {
			(*col)++;
		}
	}
}

static int remember(mr_json *d, const cJSON *node, size_t key, size_t val)
{
	if (d->npos == d->cappos) {
		size_t cap = d->cappos ? d->cappos * 2 : 64;
		pos_entry *p = realloc(d->pos, cap * sizeof(*p));
		if (!p)
			return mr_error_set(MR_ERROR, "out of memory");
		d->pos = p;
		d->cappos = cap;
	}
	d->pos[d->npos++] = (pos_entry){ node, key, val };
	return 0;
}

static size_t skip_ws(const mr_json *d, size_t i)
{
	while (i < d->len && strchr(" \t\r\n", d->text[i]) && d->text[i])
		i++;
	return i;
}

static size_t skip_string(const mr_json *d, size_t i)
{
	for (i++; i < d->len && d->text[i] != '"'; i++)
		if (d->text[i] == '\\')
			i++;
	return i + 1;
}

/* Walks the text alongside the tree cJSON already built from it (so the text
 * is known to be valid), recording where each node starts. */
static int scan(mr_json *d, const cJSON *node, size_t *at, size_t key)
{
	size_t i = skip_ws(d, *at);
	const cJSON *c;
	int rc;

	if ((rc = remember(d, node, key == (size_t)-1 ? i : key, i)))
		return rc;
	if (d->text[i] == '{' || d->text[i] == '[') {
		int obj = d->text[i] == '{';
		i++;
		for (c = node->child; c; c = c->next) {
			size_t k = (size_t)-1;
			i = skip_ws(d, i);
			if (obj) {
				k = i;
				i = skip_ws(d, skip_string(d, i)) + 1;
			}
			if ((rc = scan(d, c, &i, k)))
				return rc;
			i = skip_ws(d, i);
			if (d->text[i] == ',')
				i++;
		}
		i = skip_ws(d, i) + 1;
	} else if (d->text[i] == '"') {
		i = skip_string(d, i);
	} else {
		while (i < d->len && !strchr(",]} \t\r\n", d->text[i]))
			i++;
	}
	*at = i;
	return 0;
}

/* A strict RFC 8259 reader used only to say precisely where and why a text
 * is not JSON; cJSON's error pointer is too rough for that. */
typedef struct {
	const char *t;
	size_t len, i;
	const char *why;
} locator;

static int loc_fail(locator *l, const char *why)
{
	if (!l->why)
		l->why = why;
	return -1;
}

static void loc_ws(locator *l)
{
	while (l->i < l->len && strchr(" \t\r\n", l->t[l->i]) && l->t[l->i])
		l->i++;
}

static int loc_value(locator *l, int depth);

static int loc_string(locator *l)
{
	size_t start = l->i;

	for (l->i++; l->i < l->len; l->i++) {
		unsigned char c = (unsigned char)l->t[l->i];
		if (c == '"') {
			l->i++;
			return 0;
		}
		if (c == '\n') {
			l->i = start;
			return loc_fail(l, "this string is not closed on its line; check for a missing '\"'");
		}
		if (c < 0x20)
			return loc_fail(l, "a control character inside a string; escape it (\\n, \\t, \\u00XX)");
		if (c == '\\') {
			if (++l->i >= l->len)
				break;
			if (!strchr("\"\\/bfnrtu", l->t[l->i]) || !l->t[l->i])
				return loc_fail(l, "an unknown escape; valid ones are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
		}
	}
	return loc_fail(l, "unexpected end of file inside a string; check for a missing '\"'");
}

static int loc_number(locator *l)
{
	size_t start = l->i;

	if (l->t[l->i] == '-')
		l->i++;
	if (l->i < l->len && l->t[l->i] == '0')
		l->i++;
	else if (l->i < l->len && l->t[l->i] >= '1' && l->t[l->i] <= '9')
		while (l->i < l->len && l->t[l->i] >= '0' && l->t[l->i] <= '9')
			l->i++;
	else {
		l->i = start;
		return loc_fail(l, "a malformed number");
	}
	if (l->i < l->len && l->t[l->i] == '.') {
		if (++l->i >= l->len || l->t[l->i] < '0' || l->t[l->i] > '9')
			return loc_fail(l, "a malformed number: digits must follow '.'");
		while (l->i < l->len && l->t[l->i] >= '0' && l->t[l->i] <= '9')
			l->i++;
	}
	if (l->i < l->len && (l->t[l->i] == 'e' || l->t[l->i] == 'E')) {
		if (++l->i < l->len && (l->t[l->i] == '+' || l->t[l->i] == '-'))
			l->i++;
		if (l->i >= l->len || l->t[l->i] < '0' || l->t[l->i] > '9')
			return loc_fail(l, "a malformed number: digits must follow the exponent");
		while (l->i < l->len && l->t[l->i] >= '0' && l->t[l->i] <= '9')
			l->i++;
	}
	return 0;
}

static int loc_items(locator *l, int depth, char close)
{
	int obj = close == '}';

	l->i++;
	loc_ws(l);
	if (l->i < l->len && l->t[l->i] == close) {
		l->i++;
		return 0;
	}
	for (;;) {
		loc_ws(l);
		if (l->i >= l->len)
			break;
		if (obj) {
			if (l->t[l->i] != '"')
				return loc_fail(l, l->t[l->i] == '}' ? "a trailing comma before '}'; remove it"
								     : "expected a member name in double quotes");
			if (loc_string(l))
				return -1;
			loc_ws(l);
			if (l->i >= l->len)
				break;
			if (l->t[l->i] != ':')
				return loc_fail(l, "expected ':' after the member name");
			l->i++;
		}
		loc_ws(l);
		if (!obj && l->i < l->len && l->t[l->i] == ']')
			return loc_fail(l, "a trailing comma before ']'; remove it");
		if (loc_value(l, depth + 1))
			return -1;
		loc_ws(l);
		if (l->i >= l->len)
			break;
		if (l->t[l->i] == close) {
			l->i++;
			return 0;
		}
		if (l->t[l->i] != ',')
			return loc_fail(l, obj ? "expected ',' or '}' after a member; check for a missing comma"
					       : "expected ',' or ']' after an item; check for a missing comma");
		l->i++;
	}
	return loc_fail(l, obj ? "unexpected end of file; check for a missing '}'"
			       : "unexpected end of file; check for a missing ']'");
}

static int loc_value(locator *l, int depth)
{
	static const char *const words[] = { "true", "false", "null" };
	size_t k;

	loc_ws(l);
	if (depth > 512)
		return loc_fail(l, "nested more than 512 levels deep");
	if (l->i >= l->len)
		return loc_fail(l, "unexpected end of file; expected a value");
	switch (l->t[l->i]) {
	case '{':
		return loc_items(l, depth, '}');
	case '[':
		return loc_items(l, depth, ']');
	case '"':
		return loc_string(l);
	}
	if (l->t[l->i] == '-' || (l->t[l->i] >= '0' && l->t[l->i] <= '9'))
		return loc_number(l);
	for (k = 0; k < 3; k++)
		if (l->len - l->i >= strlen(words[k]) &&
		    !memcmp(l->t + l->i, words[k], strlen(words[k]))) {
			l->i += strlen(words[k]);
			return 0;
		}
	return loc_fail(l, "expected a value: an object, array, string, number, true, false or null");
}

static int syntax_error(const mr_json *d)
{
	locator l = { d->text, d->len, 0, NULL };
	char near[24];
	int line, col;
	size_t n = 0;

	if (!loc_value(&l, 0)) {
		loc_ws(&l);
		if (l.i < l.len)
			loc_fail(&l, "unexpected text after the JSON value");
	}
	if (!l.why) /* valid to us, refused by cJSON (e.g. its depth limit) */
		l.why = "the JSON parser refused this document";
	line_col(d->text, l.i, &line, &col);
	if (l.i >= d->len)
		return mr_error_set(MR_EINVALID, "%s:%d:%d: invalid JSON: %s", d->file,
				    line, col, l.why);
	while (n < sizeof(near) - 1 && l.i + n < d->len && d->text[l.i + n] != '\n' &&
	       d->text[l.i + n])
		n++;
	memcpy(near, d->text + l.i, n);
	near[n] = '\0';
	if (!d->text[l.i])
		return mr_error_set(MR_EINVALID, "%s:%d:%d: invalid JSON: a NUL byte", d->file,
				    line, col);
	return mr_error_set(MR_EINVALID, "%s:%d:%d: invalid JSON at '%s': %s", d->file, line,
			    col, near, l.why);
}

int mr_json_parse(mr_json **out, const char *file, const char *text,
		  size_t len)
{
	mr_json *d = calloc(1, sizeof(*d));
	const char *end = NULL;
	size_t at = 0;
	int rc = 0;

	*out = NULL;
	if (!d || !(d->file = strdup(file)) || !(d->text = malloc(len + 1))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	memcpy(d->text, text, len);
	d->text[len] = '\0';
	d->len = len;
	d->root = memchr(text, '\0', len) ? NULL : cJSON_ParseWithLengthOpts(d->text, len, &end, 0);
	if (!d->root || skip_ws(d, (size_t)(end - d->text)) < len) {
		rc = syntax_error(d);
		goto done;
	}
	rc = scan(d, d->root, &at, (size_t)-1);
done:
	if (rc)
		mr_json_free(d);
	else
		*out = d;
	return rc;
}

int mr_json_load(mr_json **out, const char *path, size_t max)
{
	mr_buf b = MR_BUF_INIT;
	int rc;

	*out = NULL;
	if (!(rc = mr_fs_read(&b, path, max)))
		rc = mr_json_parse(out, path, (const char *)b.data, b.len);
	mr_buf_free(&b);
	return rc;
}

cJSON *mr_json_root(const mr_json *doc)
{
	return doc->root;
}

const char *mr_json_file(const mr_json *doc)
{
	return doc->file;
}

static void find_pos(const mr_json *doc, const cJSON *node, int key, int *line,
		     int *col)
{
	size_t i;

	*line = *col = 0;
	for (i = 0; i < doc->npos; i++)
		if (doc->pos[i].node == node) {
			line_col(doc->text, key ? doc->pos[i].key : doc->pos[i].val, line, col);
			return;
		}
}

void mr_json_pos(const mr_json *doc, const cJSON *node, int *line, int *col)
{
	find_pos(doc, node, 0, line, col);
}

void mr_json_key_pos(const mr_json *doc, const cJSON *node, int *line, int *col)
{
	find_pos(doc, node, 1, line, col);
}

void mr_json_free(mr_json *doc)
{
	if (!doc)
		return;
	cJSON_Delete(doc->root);
	free(doc->pos);
	free(doc->text);
	free(doc->file);
	free(doc);
}

static int put_string(mr_buf *out, const char *s)
{
	int rc = mr_buf_put(out, "\"", 1);

	for (; !rc && *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			rc = mr_buf_printf(out, "\\%c", c);
		else if (c < 0x20)
			rc = mr_buf_printf(out, "\\u%04x", c);
		else
			rc = mr_buf_put(out, s, 1);
	}
	return rc ? rc : mr_buf_put(out, "\"", 1);
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp((*(const cJSON *const *)a)->string,
		      (*(const cJSON *const *)b)->string);
}

int mr_json_canonical(mr_buf *out, const cJSON *v)
{
	const cJSON *c;
	const cJSON **kids = NULL;
	size_t n = 0, i;
	int rc = 0;

	if (cJSON_IsObject(v)) {
		for (c = v->child; c; c = c->next)
			n++;
		if (n && !(kids = malloc(n * sizeof(*kids))))
			return mr_error_set(MR_ERROR, "out of memory");
		for (i = 0, c = v->child; c; c = c->next)
			kids[i++] = c;
		if (n > 1)
			qsort(kids, n, sizeof(*kids), cmp_keys);
		rc = mr_buf_put(out, "{", 1);
		for (i = 0; !rc && i < n; i++) {
			if (i)
				rc = mr_buf_put(out, ",", 1);
			if (!rc)
				rc = put_string(out, kids[i]->string);
			if (!rc)
				rc = mr_buf_put(out, ":", 1);
			if (!rc)
				rc = mr_json_canonical(out, kids[i]);
		}
		free(kids);
		return rc ? rc : mr_buf_put(out, "}", 1);
	}
	if (cJSON_IsArray(v)) {
		rc = mr_buf_put(out, "[", 1);
		for (c = v->child; !rc && c; c = c->next) {
			if (c != v->child)
				rc = mr_buf_put(out, ",", 1);
			if (!rc)
				rc = mr_json_canonical(out, c);
		}
		return rc ? rc : mr_buf_put(out, "]", 1);
	}
	if (cJSON_IsString(v))
		return put_string(out, v->valuestring);
	if (cJSON_IsNumber(v)) {
		if (mr_json_is_int(v, -1e21, 1e21))
			return mr_buf_printf(out, "%.0f", v->valuedouble);
		return mr_buf_printf(out, "%.17g", v->valuedouble);
	}
	if (cJSON_IsBool(v))
		return mr_buf_puts(out, cJSON_IsTrue(v) ? "true" : "false");
	return mr_buf_puts(out, "null");
}

const char *mr_json_str(const cJSON *obj, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);

	return cJSON_IsString(v) ? v->valuestring : NULL;
}

int mr_json_is_int(const cJSON *v, double lo, double hi)
{
	double d;

	if (!cJSON_IsNumber(v))
		return 0;
	d = v->valuedouble;
	return isfinite(d) && floor(d) == d && d >= lo && d <= hi;
}
