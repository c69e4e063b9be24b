/* The shared schema vectors (tests/vectors/schemas, docs/schemas.md) through
 * the C side: values through msgpack_unpack + molt__schema_decode, schema
 * documents through mr_schemadoc_parse. tests/node/schema-vectors.test.mjs
 * runs the same files through runtime/js/molt.js. */
#include "internal.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/schemadoc.h"

#include <check.h>
#include <dirent.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILES 64

static char *files[MAX_FILES];
static int nfiles;

static const char *const codes[] = {"type", "missing", "unknown",   "enum",	 "nul",
				    "utf8", "key",     "duplicate", "malformed", NULL};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static const char *vectors_dir(void)
{
	static char dir[4096];
	const char *repo = getenv("MOLT_REPO");

	snprintf(dir, sizeof(dir), "%s/tests/vectors/schemas",
		 repo && *repo ? repo : MOLT_SOURCE_DIR);
	return dir;
}

static void list_files(void)
{
	DIR *d = opendir(vectors_dir());
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) && nfiles < MAX_FILES) {
		size_t len = strlen(e->d_name);
		if (len > 5 && !strcmp(e->d_name + len - 5, ".json"))
			files[nfiles++] = mr_fs_join(vectors_dir(), e->d_name);
	}
	closedir(d);
	qsort(files, (size_t)nfiles, sizeof(*files), cmp_str);
}

/* What a C error message is about, in the vectors' words. */
static const char *classify(const char *msg)
{
	if (strstr(msg, "string keys") || strstr(msg, "cannot be \"__proto__\""))
		return "key";
	if (strstr(msg, "repeats the key"))
		return "duplicate";
	if (strstr(msg, "not UTF-8"))
		return "utf8";
	if (strstr(msg, "NUL"))
		return "nul";
	if (strstr(msg, "unknown field"))
		return "unknown";
	if (strstr(msg, "missing required field"))
		return "missing";
	if (strstr(msg, "allowed values"))
		return "enum";
	if (strstr(msg, ": expected "))
		return "type";
	return "?";
}

/* Hex with optional spaces -> bytes; -1 if malformed. */
static int unhex(mr_buf *out, const char *hex)
{
	int hi = -1;

	for (; *hex; hex++) {
		int v = *hex >= '0' && *hex <= '9'   ? *hex - '0'
			: *hex >= 'a' && *hex <= 'f' ? *hex - 'a' + 10
						     : -1;
		if (*hex == ' ')
			continue;
		if (v < 0)
			return -1;
		if (hi < 0) {
			hi = v;
		} else {
			unsigned char b = (unsigned char)(hi << 4 | v);
			if (mr_buf_put(out, &b, 1))
				return -1;
			hi = -1;
		}
	}
	return hi < 0 ? 0 : -1;
}

/* The JSON form: integral numbers within ±2^53 as ints, other numbers as
 * float64, objects as maps in document order. */
static void pack_json(msgpack_packer *pk, const cJSON *v)
{
	const cJSON *c;

	if (cJSON_IsNull(v)) {
		msgpack_pack_nil(pk);
	} else if (cJSON_IsBool(v)) {
		cJSON_IsTrue(v) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
	} else if (cJSON_IsNumber(v)) {
		if (mr_json_is_int(v, -9007199254740992.0, 9007199254740992.0))
			msgpack_pack_int64(pk, (int64_t)v->valuedouble);
		else
			msgpack_pack_double(pk, v->valuedouble);
	} else if (cJSON_IsString(v)) {
		msgpack_pack_str_with_body(pk, v->valuestring, strlen(v->valuestring));
	} else if (cJSON_IsArray(v)) {
		msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(v));
		for (c = v->child; c; c = c->next)
			pack_json(pk, c);
	} else {
		msgpack_pack_map(pk, (size_t)cJSON_GetArraySize(v));
		for (c = v->child; c; c = c->next) {
			msgpack_pack_str_with_body(pk, c->string, strlen(c->string));
			pack_json(pk, c);
		}
	}
}

/* Appends one failure line to `fails`. */
static void bad(mr_buf *fails, int *n, const char *file, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void bad(mr_buf *fails, int *n, const char *file, const char *name, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	mr_buf_printf(fails, "\n  %s: %s: %s", strrchr(file, '/') + 1, name, msg);
	(*n)++;
}

/* The outcome a case expects: valid (want_code NULL) or an error. Checks
 * the case's shape; returns -1 (after reporting) if it is malformed. */
static int expected(const cJSON *c, const char **path, const char **code, mr_buf *fails, int *n,
		    const char *file, const char *name, int need_code)
{
	const cJSON *valid = cJSON_GetObjectItemCaseSensitive(c, "valid");
	const cJSON *err = cJSON_GetObjectItemCaseSensitive(c, "error");

	*path = *code = NULL;
	if (!!cJSON_IsTrue(valid) == !!err) {
		bad(fails, n, file, name, "a case needs either \"valid\": true or an \"error\"");
		return -1;
	}
	if (!err)
		return 0;
	*path = mr_json_str(err, "path");
	*code = mr_json_str(err, "code");
	if (!*path || (need_code && !*code)) {
		bad(fails, n, file, name, "\"error\" needs a \"path\"%s",
		    need_code ? " and a \"code\"" : "");
		return -1;
	}
	if (need_code) {
		int i;
		for (i = 0; codes[i] && strcmp(codes[i], *code); i++)
			;
		if (!codes[i]) {
			bad(fails, n, file, name, "unknown error code \"%s\"", *code);
			return -1;
		}
	}
	return 0;
}

static void run_value_case(const cJSON *type, const cJSON *c, const char *file, mr_buf *fails,
			   int *nfail)
{
	const char *name = mr_json_str(c, "name"), *hex = mr_json_str(c, "msgpack");
	const cJSON *json = cJSON_GetObjectItemCaseSensitive(c, "json");
	const char *want_path, *want_code, *got_code = NULL;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_zone zone;
	msgpack_object obj;
	mr_buf bytes = MR_BUF_INIT;
	char path[1024] = "";
	cJSON *out = NULL;
	size_t off = 0;

	name = name ? name : "(unnamed)";
	if (expected(c, &want_path, &want_code, fails, nfail, file, name, 1))
		return;
	if (!!hex == !!json) {
		bad(fails, nfail, file, name, "a case needs either \"msgpack\" (hex) or \"json\"");
		return;
	}
	msgpack_sbuffer_init(&sb);
	if (hex && unhex(&bytes, hex)) {
		bad(fails, nfail, file, name, "\"msgpack\" is not hex: %s", hex);
		goto done;
	}
	if (json) {
		msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
		pack_json(&pk, json);
		mr_buf_put(&bytes, sb.data, sb.size);
	}
	msgpack_zone_init(&zone, 2048);
	mr_error_clear();
	if (msgpack_unpack(bytes.data ? (const char *)bytes.data : "", bytes.len, &off, &zone,
			   &obj) != MSGPACK_UNPACK_SUCCESS) {
		got_code = "malformed";
	} else if (molt__schema_decode(type, &obj, &out, path, sizeof(path))) {
		got_code = classify(mr_error_last());
	}
	msgpack_zone_destroy(&zone);
	cJSON_Delete(out);
	if (!want_code && got_code)
		bad(fails, nfail, file, name, "expected valid; the C validator says (%s) %s",
		    got_code, got_code[0] == 'm' ? "not one MsgPack value" : mr_error_last());
	else if (want_code && !got_code)
		bad(fails, nfail, file, name, "expected %s at '%s'; the C validator accepts it",
		    want_code, want_path);
	else if (want_code && (strcmp(want_code, got_code) || strcmp(want_path, path)))
		bad(fails, nfail, file, name,
		    "expected %s at '%s'; the C validator says %s at '%s': %s", want_code,
		    want_path, got_code, path, mr_error_last());
done:
	mr_buf_free(&bytes);
	msgpack_sbuffer_destroy(&sb);
}

/* A vector's inline type must itself be a valid type. */
static int check_type(const cJSON *type, const char *file, mr_buf *fails, int *nfail)
{
	cJSON *doc = cJSON_CreateObject();
	mr_schemadoc *d = NULL;
	char *text;
	int rc;

	cJSON_AddStringToObject(doc, "id", "vectors.type");
	cJSON_AddNumberToObject(doc, "version", 1);
	cJSON_AddItemToObject(doc, "type", cJSON_Duplicate(type, 1));
	text = cJSON_PrintUnformatted(doc);
	rc = mr_schemadoc_parse(&d, file, text, strlen(text));
	if (rc)
		bad(fails, nfail, file, "type", "the vector's type is not a valid schema type: %s",
		    mr_error_last());
	mr_schemadoc_free(d);
	free(text);
	cJSON_Delete(doc);
	return rc;
}

static void run_document_case(const cJSON *c, const char *file, mr_buf *fails, int *nfail)
{
	const char *name = mr_json_str(c, "name"), *want_path, *code;
	const cJSON *schema = cJSON_GetObjectItemCaseSensitive(c, "schema");
	mr_schemadoc *d = NULL;
	char *text, needle[1200];
	int rc;

	name = name ? name : "(unnamed)";
	if (expected(c, &want_path, &code, fails, nfail, file, name, 0))
		return;
	if (!schema) {
		bad(fails, nfail, file, name, "a document case needs a \"schema\"");
		return;
	}
	text = cJSON_Print(schema);
	rc = mr_schemadoc_parse(&d, "doc.json", text, strlen(text));
	mr_schemadoc_free(d);
	if (!want_path && rc)
		bad(fails, nfail, file, name, "expected valid; mr_schemadoc_parse says: %s",
		    mr_error_last());
	else if (want_path && !rc)
		bad(fails, nfail, file, name,
		    "expected a problem at '%s'; mr_schemadoc_parse accepts it", want_path);
	else if (want_path) {
		/* The first problem: "doc.json:L:C: <path>: what" ("doc.json:L:C: what"
		 * at the root, where messages start with "expected" or "this"). */
		const char *msg = mr_error_last(), *what = msg;
		int colons = 0;
		while (*what && colons < 3)
			colons += *what++ == ':';
		what += *what == ' ';
		snprintf(needle, sizeof(needle), "%s: ", want_path);
		if (*want_path ? strncmp(what, needle, strlen(needle))
			       : strncmp(what, "expected", 8) && strncmp(what, "this", 4))
			bad(fails, nfail, file, name, "expected the first problem at '%s'; got: %s",
			    want_path, msg);
	}
	free(text);
}

START_TEST(test_vector_file)
{
	const char *file = files[_i];
	mr_json *doc = NULL;
	mr_buf fails = MR_BUF_INIT;
	const cJSON *root, *type, *cases, *docs, *c;
	int nfail = 0, ncases = 0;

	fails.max = 1 << 20;
	ck_assert_msg(!mr_json_load(&doc, file, 4 << 20), "%s", mr_error_last());
	root = mr_json_root(doc);
	type = cJSON_GetObjectItemCaseSensitive(root, "type");
	cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
	docs = cJSON_GetObjectItemCaseSensitive(root, "documents");
	ck_assert_msg(mr_json_str(root, "about"), "%s: needs an \"about\" line", file);
	for (c = root->child; c; c = c->next)
		ck_assert_msg(!strcmp(c->string, "about") || !strcmp(c->string, "type") ||
				  !strcmp(c->string, "cases") || !strcmp(c->string, "documents"),
			      "%s: unknown key \"%s\"", file, c->string);
	if (docs) {
		ck_assert_msg(!type && !cases && cJSON_IsArray(docs),
			      "%s: \"documents\" is a list, alone", file);
		for (c = docs->child; c; c = c->next, ncases++)
			run_document_case(c, file, &fails, &nfail);
	} else {
		ck_assert_msg(type && cJSON_IsArray(cases),
			      "%s: needs \"type\" and a \"cases\" list", file);
		if (!check_type(type, file, &fails, &nfail))
			for (c = cases->child; c; c = c->next, ncases++)
				run_value_case(type, c, file, &fails, &nfail);
	}
	printf("%s: %d cases, %d failed\n", strrchr(file, '/') + 1, ncases, nfail);
	ck_assert_msg(ncases > 0, "%s: no cases", file);
	ck_assert_msg(!nfail, "%d of %d vectors in %s disagree with the C side:%s", nfail, ncases,
		      file, fails.data ? (char *)fails.data : "");
	mr_buf_free(&fails);
	mr_json_free(doc);
}
END_TEST

/* Every error code of docs/schemas.md is exercised by some vector. */
START_TEST(test_every_code_covered)
{
	int seen[sizeof(codes) / sizeof(*codes)] = {0}, i, f;

	for (f = 0; f < nfiles; f++) {
		mr_json *doc = NULL;
		const cJSON *c, *cases;
		ck_assert(!mr_json_load(&doc, files[f], 4 << 20));
		cases = cJSON_GetObjectItemCaseSensitive(mr_json_root(doc), "cases");
		for (c = cases ? cases->child : NULL; c; c = c->next) {
			const char *code =
			    mr_json_str(cJSON_GetObjectItemCaseSensitive(c, "error"), "code");
			for (i = 0; code && codes[i]; i++)
				if (!strcmp(code, codes[i]))
					seen[i] = 1;
		}
		mr_json_free(doc);
	}
	for (i = 0; codes[i]; i++)
		ck_assert_msg(seen[i], "no vector expects the error code \"%s\"", codes[i]);
}
END_TEST

START_TEST(test_files_found)
{
	ck_assert_msg(nfiles >= 10, "found %d vector files in %s", nfiles, vectors_dir());
}
END_TEST

int main(void)
{
	Suite *s = suite_create("schema_vectors");
	TCase *tc = tcase_create("vectors");
	SRunner *sr;
	int failed, i;

	list_files();
	tcase_add_test(tc, test_files_found);
	tcase_add_loop_test(tc, test_vector_file, 0, nfiles);
	tcase_add_test(tc, test_every_code_covered);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	for (i = 0; i < nfiles; i++)
		free(files[i]);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
