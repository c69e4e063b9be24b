/* The C host reading Arrow results against arrow-codec schemas. */
#include "arrowjson.h"

#include "molt/arrow.h"
#include "mr/error.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

static const molt_arrow_field fields[] = {
	{ "id", MOLT_ARROW_INT64, 0 },
	{ "delay", MOLT_ARROW_FLOAT64, 1 },
	{ "carrier", MOLT_ARROW_UTF8, 0 },
};

/* Two rows: (1, 2.5, "AA"), (9007199254740993, null, "B"). */
static uint8_t *stream(size_t *len, int null_in_id)
{
	static const int64_t ids[] = { 1, 9007199254740993LL };
	static const double delays[] = { 2.5, 0 };
	static const int32_t offs[] = { 0, 2, 3 };
	static const uint8_t one_valid = 0x01;
	molt_arrow_column cols[3] = { { 0 } };
	molt_arrow_writer *w = NULL;
	molt_arrow_field f[3];
	uint8_t *out = NULL;

	memcpy(f, fields, sizeof(f));
	if (null_in_id)
		f[0].nullable = 1;
	cols[0].values = (const uint8_t *)ids;
	cols[0].validity = null_in_id ? &one_valid : NULL;
	cols[1].values = (const uint8_t *)delays;
	cols[1].validity = &one_valid;
	cols[2].values = (const uint8_t *)"AAB";
	cols[2].values_len = 3;
	cols[2].offsets = (const uint8_t *)offs;
	ck_assert_int_eq(molt_arrow_writer_new(&w, f, 3, 0, NULL), 0);
	ck_assert_int_eq(molt_arrow_writer_append(w, 2, cols, NULL), 0);
	ck_assert_int_eq(molt_arrow_writer_finish(w, &out, len, NULL), 0);
	molt_arrow_writer_free(w);
	return out;
}

static cJSON *type(const char *json)
{
	cJSON *t = cJSON_Parse(json);

	ck_assert_ptr_nonnull(t);
	return t;
}

static const char schema[] =
	"{\"record\":[{\"name\":\"id\",\"type\":\"int\"},"
	"{\"name\":\"delay\",\"type\":{\"nullable\":\"float\"}},"
	"{\"name\":\"carrier\",\"type\":\"string\"}]}";

START_TEST(test_rows)
{
	size_t len;
	uint8_t *s = stream(&len, 0);
	cJSON *t = type(schema), *rows = NULL;
	char path[64] = "", *text;

	ck_assert_msg(molt__arrow_decode(t, s, len, &rows, path, sizeof(path)) == 0, "%s",
		      mr_error_last());
	text = cJSON_PrintUnformatted(rows);
	ck_assert_str_eq(text, "[{\"id\":1,\"delay\":2.5,\"carrier\":\"AA\"},"
			       "{\"id\":9007199254740993,\"delay\":null,\"carrier\":\"B\"}]");
	free(text);
	cJSON_Delete(rows);
	cJSON_Delete(t);
	free(s);
}
END_TEST

START_TEST(test_mismatches)
{
	size_t len;
	uint8_t *s = stream(&len, 0), *n = NULL;
	cJSON *rows = NULL, *t;
	char path[64] = "";

	t = type("{\"record\":[{\"name\":\"id\",\"type\":\"int\"}]}");
	ck_assert_int_eq(molt__arrow_decode(t, s, len, &rows, path, sizeof(path)), MR_EINVALID);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "expected 1 columns, found 3"));
	cJSON_Delete(t);
	t = type("{\"record\":[{\"name\":\"id\",\"type\":\"string\"},"
		 "{\"name\":\"delay\",\"type\":\"float\"},{\"name\":\"carrier\",\"type\":\"string\"}]}");
	ck_assert_int_eq(molt__arrow_decode(t, s, len, &rows, path, sizeof(path)), MR_EINVALID);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "expected id of type string, found id of type int64"));
	cJSON_Delete(t);
	/* delay holds a null, but this schema says it may not */
	t = type("{\"record\":[{\"name\":\"id\",\"type\":\"int\"},"
		 "{\"name\":\"delay\",\"type\":\"float\"},{\"name\":\"carrier\",\"type\":\"string\"}]}");
	ck_assert_int_eq(molt__arrow_decode(t, s, len, &rows, path, sizeof(path)), MR_EINVALID);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "[1].delay: expected a value, found null"));
	ck_assert_ptr_null(rows);
	cJSON_Delete(t);
	t = type(schema);
	ck_assert_int_eq(molt__arrow_decode(t, s, len - 9, &rows, path, sizeof(path)), MR_EINVALID);
	ck_assert_int_eq(molt__arrow_decode(t, "\x93\x01", 2, &rows, path, sizeof(path)), MR_EINVALID);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "not an Arrow IPC stream"));
	cJSON_Delete(t);
	free(s);
	free(n);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("arrowjson");
	TCase *tc = tcase_create("decode");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_rows);
	tcase_add_test(tc, test_mismatches);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
