/* The schema type language of docs/schemas.md, over cJSON and msgpack-c. */
#include "internal.h"

#include "arrowjson.h"
#include "molt/arrow.h"

#include "mr/error.h"
#include "mr/json.h"
#include "mr/schemadoc.h"

#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static const char *kind_of(const cJSON *type, const cJSON **arg)
{
	static const char *const compound[] = { "list", "map", "record", "enum", "nullable" };
	size_t i;

	*arg = NULL;
	if (cJSON_IsString(type))
		return type->valuestring;
	for (i = 0; cJSON_IsObject(type) && i < sizeof(compound) / sizeof(*compound); i++)
		if ((*arg = cJSON_GetObjectItemCaseSensitive(type, compound[i])))
			return compound[i];
	return "?";
}

static int fail(const char *path, const char *want, const char *found)
{
	return mr_error_set(MR_EINVALID, "%s: expected %s, found %s",
			    *path ? path : "(value)", want, found);
}

static const char *json_kind(const cJSON *v)
{
	if (cJSON_IsObject(v)) return "an object";
	if (cJSON_IsArray(v)) return "a list";
	if (cJSON_IsString(v)) return "a string";
	if (cJSON_IsBool(v)) return "a boolean";
	if (cJSON_IsNull(v)) return "null";
	return "a number";
}

/* Extends `path` with a key (".name", or ["a b"] as JS writes it) or
 * "[i]"; returns the old length. */
static size_t push(char *path, size_t n, const char *name, int index)
{
	size_t old = strlen(path);

	if (name)
		return mr_schemadoc_path_key(path, n, name, strlen(name));
	snprintf(path + old, n - old, "[%d]", index);
	return old;
}

int molt__schema_encode(const cJSON *type, const cJSON *v, msgpack_packer *pk,
			char *path, size_t n)
{
	const cJSON *arg, *c, *f;
	const char *k = kind_of(type, &arg);
	size_t old;
	int rc = 0, i = 0, count = 0;

	if (!strcmp(k, "bool")) {
		if (!cJSON_IsBool(v))
			return fail(path, "a boolean", json_kind(v));
		return cJSON_IsTrue(v) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	}
	if (!strcmp(k, "int")) {
		if (!mr_json_is_int(v, -9007199254740991.0, 9007199254740991.0))
			return fail(path, "an integer", json_kind(v));
		return msgpack_pack_int64(pk, (int64_t)v->valuedouble);
	}
	if (!strcmp(k, "float")) {
		if (!cJSON_IsNumber(v))
			return fail(path, "a number", json_kind(v));
		return msgpack_pack_double(pk, v->valuedouble);
	}
	if (!strcmp(k, "string") || !strcmp(k, "enum")) {
		if (!cJSON_IsString(v))
			return fail(path, "a string", json_kind(v));
		if (arg) {
			for (c = arg->child; c && strcmp(c->valuestring, v->valuestring); c = c->next)
				;
			if (!c)
				return mr_error_set(MR_EINVALID, "%s: '%s' is not one of the allowed values",
						    *path ? path : "(value)", v->valuestring);
		}
		size_t len = strlen(v->valuestring);
		return msgpack_pack_str(pk, len) || msgpack_pack_str_body(pk, v->valuestring, len);
	}
	if (!strcmp(k, "bytes")) {
		unsigned char buf[65536];
		size_t len;
		if (!cJSON_IsString(v) ||
		    sodium_base642bin(buf, sizeof(buf), v->valuestring, strlen(v->valuestring),
				      NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL))
			return fail(path, "base64 text (at most 64 KiB of bytes)", json_kind(v));
		return msgpack_pack_bin(pk, len) || msgpack_pack_bin_body(pk, buf, len);
	}
	if (!strcmp(k, "nullable"))
		return cJSON_IsNull(v) ? msgpack_pack_nil(pk)
				       : molt__schema_encode(arg, v, pk, path, n);
	if (!strcmp(k, "list")) {
		if (!cJSON_IsArray(v))
			return fail(path, "a list", json_kind(v));
		msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(v));
		for (c = v->child; !rc && c; c = c->next, i++) {
			old = push(path, n, NULL, i);
			rc = molt__schema_encode(arg, c, pk, path, n);
			if (!rc)
				path[old] = '\0';
		}
		return rc;
	}
	if (!strcmp(k, "map")) {
		if (!cJSON_IsObject(v))
			return fail(path, "an object", json_kind(v));
		msgpack_pack_map(pk, (size_t)cJSON_GetArraySize(v));
		for (c = v->child; !rc && c; c = c->next) {
			size_t len = strlen(c->string);
			msgpack_pack_str(pk, len);
			msgpack_pack_str_body(pk, c->string, len);
			old = push(path, n, c->string, 0);
			rc = molt__schema_encode(arg, c, pk, path, n);
			if (!rc)
				path[old] = '\0';
		}
		return rc;
	}
	if (!strcmp(k, "record")) {
		if (!cJSON_IsObject(v))
			return fail(path, "an object", json_kind(v));
		for (c = v->child; c; c = c->next) {
			for (f = arg->child; f && strcmp(mr_json_str(f, "name"), c->string); f = f->next)
				;
			if (!f) {
				push(path, n, c->string, 0);
				return mr_error_set(MR_EINVALID, "%s: unknown field; the schema does not have it", path);
			}
		}
		for (f = arg->child; f; f = f->next) {
			int opt = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "optional"));
			if (cJSON_GetObjectItemCaseSensitive(v, mr_json_str(f, "name")))
				count++;
			else if (!opt) {
				push(path, n, mr_json_str(f, "name"), 0);
				return mr_error_set(MR_EINVALID, "%s: missing required field", path);
			}
		}
		/* Schema order, so every host encodes the same request identically. */
		msgpack_pack_map(pk, (size_t)count);
		for (f = arg->child; !rc && f; f = f->next) {
			const char *name = mr_json_str(f, "name");
			if (!(c = cJSON_GetObjectItemCaseSensitive(v, name)))
				continue;
			msgpack_pack_str(pk, strlen(name));
			msgpack_pack_str_body(pk, name, strlen(name));
			old = push(path, n, name, 0);
			rc = molt__schema_encode(cJSON_GetObjectItemCaseSensitive(f, "type"), c, pk, path, n);
			if (!rc)
				path[old] = '\0';
		}
		return rc;
	}
	return mr_error_set(MR_EINVALID, "%s: the schema has an unknown type", *path ? path : "(value)");
}

static const char *mp_kind(const msgpack_object *o)
{
	switch (o->type) {
	case MSGPACK_OBJECT_NIL: return "nil";
	case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
	case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64: return "a float";
	case MSGPACK_OBJECT_STR: return "a string";
	case MSGPACK_OBJECT_BIN: return "bytes";
	case MSGPACK_OBJECT_ARRAY: return "a list";
	case MSGPACK_OBJECT_MAP: return "a map";
	default: return "an extension";
	}
}

/* Strings are UTF-8 (so every host reads the same text) without NUL (JSON
 * text in cJSON cannot carry one: refuse rather than hand on a shorter one). */
static int bad_text(const msgpack_object_str *s, const char *path)
{
	if (mr_schemadoc_utf8_span(s->ptr, s->size) < s->size)
		return mr_error_set(MR_EINVALID, "%s: a string that is not UTF-8",
				    *path ? path : "(value)");
	if (!s->size || !memchr(s->ptr, '\0', s->size)) /* an empty str may have ptr NULL */
		return 0;
	return mr_error_set(MR_EINVALID, "%s: a string with a NUL byte cannot be shown as JSON",
			    *path ? path : "(value)");
}

static cJSON *str_json(const msgpack_object_str *s)
{
	char *tmp = malloc(s->size + 1);
	cJSON *j;

	if (!tmp)
		return NULL;
	if (s->size)
		memcpy(tmp, s->ptr, s->size);
	tmp[s->size] = '\0';
	j = cJSON_CreateString(tmp);
	free(tmp);
	return j;
}

/* An integer as JSON: a number while a double holds it exactly, else its
 * exact decimal digits as a raw JSON number (cJSON stores doubles). */
static cJSON *int_json(int64_t neg, uint64_t pos)
{
	char digits[24];

	if (neg < 0 ? neg >= -9007199254740992LL : pos <= 9007199254740992ULL)
		return cJSON_CreateNumber(neg < 0 ? (double)neg : (double)pos);
	if (neg < 0)
		snprintf(digits, sizeof(digits), "%lld", (long long)neg);
	else
		snprintf(digits, sizeof(digits), "%llu", (unsigned long long)pos);
	return cJSON_CreateRaw(digits);
}

static int str_eq(const msgpack_object *o, const char *s)
{
	return o->type == MSGPACK_OBJECT_STR && o->via.str.size == strlen(s) &&
	       (!o->via.str.size || !memcmp(o->via.str.ptr, s, o->via.str.size));
}

static int cmp_keys(const void *a, const void *b)
{
	const msgpack_object_kv *x = *(const msgpack_object_kv *const *)a;
	const msgpack_object_kv *y = *(const msgpack_object_kv *const *)b;
	uint32_t n = x->key.via.str.size < y->key.via.str.size ? x->key.via.str.size : y->key.via.str.size;
	int c = n ? memcmp(x->key.via.str.ptr, y->key.via.str.ptr, n) : 0;

	if (!c)
		c = (x->key.via.str.size > y->key.via.str.size) - (x->key.via.str.size < y->key.via.str.size);
	return c ? c : (x > y) - (x < y);
}

/* A map's keys, in wire order: strings, UTF-8 without NUL, not "__proto__"
 * (JS hosts cannot hold it in an object), none repeating an earlier one.
 * Reported at the map's path, as the JS host does. */
static int check_keys(const msgpack_object_map *m, const char *path)
{
	const char *at = *path ? path : "(value)";
	const msgpack_object_kv **v = NULL;
	unsigned char *again = NULL;
	uint32_t i, n = 0;
	int rc = 0;

	if (m->size > 1 && (!(v = malloc(m->size * sizeof(*v))) || !(again = calloc(m->size, 1)))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	for (i = 0; v && i < m->size; i++)
		if (m->ptr[i].key.type == MSGPACK_OBJECT_STR)
			v[n++] = &m->ptr[i];
	if (n > 1)
		qsort(v, n, sizeof(*v), cmp_keys);
	for (i = 1; i < n; i++)
		if (v[i - 1]->key.via.str.size == v[i]->key.via.str.size &&
		    (!v[i]->key.via.str.size ||
		     !memcmp(v[i - 1]->key.via.str.ptr, v[i]->key.via.str.ptr, v[i]->key.via.str.size)))
			again[v[i] - m->ptr] = 1;
	for (i = 0; !rc && i < m->size; i++) {
		const msgpack_object *k = &m->ptr[i].key;
		if (k->type != MSGPACK_OBJECT_STR)
			rc = fail(path, "string keys", mp_kind(k));
		else if ((rc = bad_text(&k->via.str, path)))
			;
		else if (str_eq(k, "__proto__"))
			rc = mr_error_set(MR_EINVALID, "%s: a map key cannot be \"__proto__\"; JavaScript "
					  "hosts cannot hold it in an object", at);
		else if (again && again[i])
			rc = mr_error_set(MR_EINVALID, "%s: the map repeats the key \"%.*s\"", at,
					  (int)k->via.str.size, k->via.str.ptr);
	}
done:
	free(v);
	free(again);
	return rc;
}

int molt__schema_decode(const cJSON *type, const msgpack_object *o, cJSON **out,
			char *path, size_t n)
{
	const cJSON *arg, *f;
	const char *k = kind_of(type, &arg);
	uint32_t i;
	size_t old;
	int rc = 0;

	*out = NULL;
	if (!strcmp(k, "bool")) {
		if (o->type != MSGPACK_OBJECT_BOOLEAN)
			return fail(path, "a boolean", mp_kind(o));
		*out = cJSON_CreateBool(o->via.boolean);
	} else if (!strcmp(k, "int")) {
		if (o->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
			*out = int_json(0, o->via.u64);
		else if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
			*out = int_json(o->via.i64, 0);
		else
			return fail(path, "an integer", mp_kind(o));
	} else if (!strcmp(k, "float")) {
		if (o->type != MSGPACK_OBJECT_FLOAT32 && o->type != MSGPACK_OBJECT_FLOAT64)
			return fail(path, "a float", mp_kind(o));
		*out = isfinite(o->via.f64) ? cJSON_CreateNumber(o->via.f64) : cJSON_CreateNull();
	} else if (!strcmp(k, "string") || !strcmp(k, "enum")) {
		if (o->type != MSGPACK_OBJECT_STR)
			return fail(path, "a string", mp_kind(o));
		if (bad_text(&o->via.str, path))
			return MR_EINVALID;
		if (arg) {
			const cJSON *c;
			for (c = arg->child; c && !str_eq(o, c->valuestring); c = c->next)
				;
			if (!c)
				return mr_error_set(MR_EINVALID, "%s: not one of the allowed values",
						    *path ? path : "(value)");
		}
		*out = str_json(&o->via.str);
	} else if (!strcmp(k, "bytes")) {
		size_t len = sodium_base64_ENCODED_LEN(o->via.bin.size, sodium_base64_VARIANT_ORIGINAL);
		char *b64;
		if (o->type != MSGPACK_OBJECT_BIN)
			return fail(path, "bytes", mp_kind(o));
		if (!(b64 = malloc(len)))
			return mr_error_set(MR_ERROR, "out of memory");
		sodium_bin2base64(b64, len, (const unsigned char *)o->via.bin.ptr, o->via.bin.size,
				  sodium_base64_VARIANT_ORIGINAL);
		*out = cJSON_CreateString(b64);
		free(b64);
	} else if (!strcmp(k, "nullable")) {
		if (o->type == MSGPACK_OBJECT_NIL)
			*out = cJSON_CreateNull();
		else
			return molt__schema_decode(arg, o, out, path, n);
	} else if (!strcmp(k, "list")) {
		if (o->type != MSGPACK_OBJECT_ARRAY)
			return fail(path, "a list", mp_kind(o));
		*out = cJSON_CreateArray();
		for (i = 0; !rc && i < o->via.array.size; i++) {
			cJSON *item;
			old = push(path, n, NULL, (int)i);
			if (!(rc = molt__schema_decode(arg, &o->via.array.ptr[i], &item, path, n))) {
				cJSON_AddItemToArray(*out, item);
				path[old] = '\0';
			}
		}
	} else if (!strcmp(k, "map") || !strcmp(k, "record")) {
		int record = !strcmp(k, "record");
		if (o->type != MSGPACK_OBJECT_MAP)
			return fail(path, "a map", mp_kind(o));
		if ((rc = check_keys(&o->via.map, path)))
			return rc;
		*out = cJSON_CreateObject();
		for (i = 0; !rc && i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			const cJSON *ft = arg;
			cJSON *val, *key;
			key = str_json(&kv->key.via.str);
			old = push(path, n, key ? key->valuestring : "?", 0);
			if (record) {
				for (f = arg->child; f && !str_eq(&kv->key, mr_json_str(f, "name")); f = f->next)
					;
				if (!f) {
					cJSON_Delete(key);
					rc = mr_error_set(MR_EINVALID, "%s: unknown field; the schema does not have it", path);
					break;
				}
				ft = cJSON_GetObjectItemCaseSensitive(f, "type");
			}
			if (!(rc = molt__schema_decode(ft, &kv->val, &val, path, n))) {
				cJSON_AddItemToObject(*out, key->valuestring, val);
				path[old] = '\0';
			}
			cJSON_Delete(key);
		}
		for (f = record && !rc ? arg->child : NULL; f; f = f->next)
			if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(f, "optional")) &&
			    !cJSON_GetObjectItemCaseSensitive(*out, mr_json_str(f, "name"))) {
				push(path, n, mr_json_str(f, "name"), 0);
				rc = mr_error_set(MR_EINVALID, "%s: missing required field", path);
				break;
			}
	} else {
		return mr_error_set(MR_EINVALID, "%s: the schema has an unknown type", *path ? path : "(value)");
	}
	if (rc) {
		cJSON_Delete(*out);
		*out = NULL;
		return rc;
	}
	return *out ? 0 : mr_error_set(MR_ERROR, "out of memory");
}

/* The Arrow type a record column of an arrow-codec schema allows, by its
 * schema type name (docs/schemas.md: int is Int32 or Int64). */
static int arrow_type_ok(const char *kind, molt_arrow_type t)
{
	if (!strcmp(kind, "int"))
		return t == MOLT_ARROW_INT32 || t == MOLT_ARROW_INT64;
	if (!strcmp(kind, "float"))
		return t == MOLT_ARROW_FLOAT64;
	if (!strcmp(kind, "bool"))
		return t == MOLT_ARROW_BOOL;
	return !strcmp(kind, "string") && t == MOLT_ARROW_UTF8;
}

static cJSON *arrow_value(const molt_arrow_column *c, molt_arrow_type t, int64_t row)
{
	char *tmp;
	size_t len;
	const char *p;
	cJSON *j;

	switch (t) {
	case MOLT_ARROW_INT32:
		return cJSON_CreateNumber(molt_arrow_int32_at(c, row));
	case MOLT_ARROW_INT64: {
		int64_t v = molt_arrow_int64_at(c, row);
		return v < 0 ? int_json(v, 0) : int_json(0, (uint64_t)v);
	}
	case MOLT_ARROW_FLOAT64: {
		double d = molt_arrow_float64_at(c, row);
		return isfinite(d) ? cJSON_CreateNumber(d) : cJSON_CreateNull();
	}
	case MOLT_ARROW_BOOL:
		return cJSON_CreateBool(molt_arrow_bool_at(c, row));
	default:
		p = molt_arrow_utf8_at(c, row, &len);
		if (!(tmp = malloc(len + 1)))
			return NULL;
		if (len)
			memcpy(tmp, p, len);
		tmp[len] = '\0';
		j = cJSON_CreateString(tmp);
		free(tmp);
		return j;
	}
}

int molt__arrow_decode(const cJSON *type, const void *data, size_t len, cJSON **out,
		       char *path, size_t n)
{
	const cJSON *cols = cJSON_GetObjectItemCaseSensitive(type, "record"), *f;
	const molt_arrow_field *fields;
	const molt_arrow_batch *b;
	molt_arrow_reader *r = NULL;
	molt_arrow_error err;
	int64_t base = 0, row;
	size_t i, ncols = (size_t)cJSON_GetArraySize(cols);
	int rc = 0, got;

	*out = NULL;
	if (molt_arrow_reader_new(&r, data, len, 0, &err)) {
		rc = mr_error_set(MR_EINVALID, "(payload): not an Arrow IPC stream: %s", err.text);
		goto done;
	}
	fields = molt_arrow_reader_fields(r);
	if (molt_arrow_reader_ncolumns(r) != ncols) {
		rc = mr_error_set(MR_EINVALID, "(payload): expected %zu columns, found %zu", ncols,
				  molt_arrow_reader_ncolumns(r));
		goto done;
	}
	for (i = 0, f = cols->child; f; f = f->next, i++) {
		const cJSON *arg, *ft = cJSON_GetObjectItemCaseSensitive(f, "type");
		const char *kind = kind_of(ft, &arg);
		if (!strcmp(kind, "nullable"))
			kind = kind_of(arg, &arg);
		if (strcmp(fields[i].name, mr_json_str(f, "name")) ||
		    !arrow_type_ok(kind, fields[i].type)) {
			rc = mr_error_set(MR_EINVALID,
					  "(payload): column %zu: expected %s of type %s, found %s of "
					  "type %s", i, mr_json_str(f, "name"), kind, fields[i].name,
					  molt_arrow_type_name(fields[i].type));
			goto done;
		}
	}
	*out = cJSON_CreateArray();
	while (*out && (got = molt_arrow_reader_next(r, &b, &err)) == 1) {
		for (row = 0; row < b->length; row++) {
			cJSON *o = cJSON_CreateObject();
			cJSON_AddItemToArray(*out, o);
			for (i = 0, f = cols->child; f; f = f->next, i++) {
				const molt_arrow_column *c = &b->columns[i];
				const cJSON *ft = cJSON_GetObjectItemCaseSensitive(f, "type");
				cJSON *v;
				if (!molt_arrow_is_valid(c, row)) {
					if (!cJSON_GetObjectItemCaseSensitive(ft, "nullable")) {
						snprintf(path, n, "[%lld].%s", (long long)(base + row),
							 fields[i].name);
						rc = mr_error_set(MR_EINVALID, "%s: expected a value, found null "
								  "in a column that is not nullable", path);
						goto done;
					}
					v = cJSON_CreateNull();
				} else {
					v = arrow_value(c, fields[i].type, row);
				}
				if (!v) {
					rc = mr_error_set(MR_ERROR, "out of memory");
					goto done;
				}
				cJSON_AddItemToObject(o, fields[i].name, v);
			}
		}
		base += b->length;
	}
	if (!*out)
		rc = mr_error_set(MR_ERROR, "out of memory");
	else if (got < 0)
		rc = mr_error_set(MR_EINVALID, "(payload): %s", err.text);
done:
	molt_arrow_reader_free(r);
	if (rc) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	return rc;
}
