/* jsoninfo: what a JSON document is. inspect(text) -> {type, depth, count,
 * keys}, parsed inside the unit with cJSON (the cjson recipe) on both
 * targets. */
#include "molt/module.h"

#include "cJSON.h"

#include <string.h>

#define TEXT_MAX_BYTES (1u << 20)
/* cJSON recurses once per level; a wasm stack has no guard page, so the
 * nesting is checked before cJSON sees the text. */
#define NESTING_MAX 256

/* Says where byte `at` of `text` is, as line and column (1-based). */
static void where(const char *text, uint32_t at, uint32_t *line, uint32_t *col)
{
	uint32_t i;

	*line = 1;
	*col = 1;
	for (i = 0; i < at; i++) {
		if (text[i] == '\n') {
			(*line)++;
			*col = 1;
		} else {
			(*col)++;
		}
	}
}

/* The byte at which arrays and objects nest deeper than NESTING_MAX, or
 * `len` if they don't. Brackets inside strings don't count. */
static uint32_t too_deep(const char *text, uint32_t len)
{
	uint32_t i, depth = 0;
	int in_string = 0;

	for (i = 0; i < len; i++) {
		char c = text[i];
		if (in_string) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == '[' || c == '{') {
			if (++depth > NESTING_MAX)
				return i;
		} else if ((c == ']' || c == '}') && depth) {
			depth--;
		}
	}
	return len;
}

static const char *type_name(const cJSON *v)
{
	if (cJSON_IsObject(v))
		return "object";
	if (cJSON_IsArray(v))
		return "array";
	if (cJSON_IsString(v))
		return "string";
	if (cJSON_IsNumber(v))
		return "number";
	if (cJSON_IsBool(v))
		return "bool";
	return "null";
}

/* Levels of arrays and objects: 0 for a scalar, 1 for [] or {}. Recursion
 * is bounded by NESTING_MAX. */
static int depth_of(const cJSON *v)
{
	const cJSON *c;
	int max = 0;

	if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
		return 0;
	for (c = v->child; c; c = c->next) {
		int d = depth_of(c);
		if (d > max)
			max = d;
	}
	return max + 1;
}

static int inspect(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	const char *text, *end = NULL;
	uint32_t len, at, line, col, count = 0;
	const cJSON *c;
	cJSON *doc;

	if (molt_get_str(t, in, "text", &text, &len))
		return MOLT_FAILED;
	if (len > TEXT_MAX_BYTES)
		return molt_fail(t, MOLT_INVALID_INPUT, "text",
				 "expected at most %u bytes of JSON, found %u", TEXT_MAX_BYTES, len);
	if ((at = too_deep(text, len)) < len) {
		where(text, at, &line, &col);
		return molt_fail(t, MOLT_INVALID_INPUT, "text",
				 "expected arrays and objects nested at most %d deep, found "
				 "deeper nesting at byte %u (line %u, column %u)",
				 NESTING_MAX, at, line, col);
	}
	doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
	if (doc) {
		/* cJSON stops after the first value; anything but whitespace
		 * after it is an error too. */
		at = (uint32_t)(end - text);
		while (at < len && strchr(" \t\r\n", text[at]) && text[at])
			at++;
	} else {
		at = end ? (uint32_t)(end - text) : 0;
	}
	if (!doc || at < len) {
		where(text, at, &line, &col);
		cJSON_Delete(doc);
		if (len == 0)
			return molt_fail(t, MOLT_INVALID_INPUT, "text",
					 "expected a JSON document, found an empty text");
		return molt_fail(t, MOLT_INVALID_INPUT, "text",
				 "expected a JSON document, found %s at byte %u (line %u, "
				 "column %u) of %u",
				 doc ? "more text after it" : "invalid JSON: parsing stopped",
				 at, line, col, len);
	}
	for (c = doc->child; c && (cJSON_IsArray(doc) || cJSON_IsObject(doc)); c = c->next)
		count++;
	msgpack_pack_map(out, 4);
	molt_pack_str(out, "type");
	molt_pack_str(out, type_name(doc));
	molt_pack_str(out, "depth");
	msgpack_pack_int(out, depth_of(doc));
	molt_pack_str(out, "count");
	msgpack_pack_unsigned_int(out, count);
	molt_pack_str(out, "keys");
	msgpack_pack_array(out, cJSON_IsObject(doc) ? count : 0);
	for (c = cJSON_IsObject(doc) ? doc->child : NULL; c; c = c->next)
		molt_pack_str(out, c->string);
	cJSON_Delete(doc);
	return MOLT_DONE;
}

MOLT_FUNCTIONS({ 1, "inspect", "jsoninfo.inspect_request", 1, "jsoninfo.inspect_response", 1,
		 inspect });
