/* Tasks through libmolt's job API (molt.h) and through the raw ABI, on the
 * native countdown unit the fixture builds (scripts/fixture): every status
 * code, cancel in the middle of a sliced task, the host's limits, and the
 * ABI's answers for unknown and finished tasks. */
#include "molt/molt.h"

#include <cjson/cJSON.h>
#include <check.h>
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BILLION "{\"n\":1000000000}"

static char unit_dir[PATH_MAX], so[PATH_MAX + 32], manifest[PATH_MAX + 32], schemas[PATH_MAX];

/* Finds the fixture's native countdown build ($FIXTURE, else build/test). */
static void locate(void)
{
	const char *fixture = getenv("FIXTURE"), *repo = getenv("MOLT_REPO");

	if (!repo)
		repo = MOLT_SOURCE_DIR;
	if (fixture)
		snprintf(unit_dir, sizeof(unit_dir), "%s/out/native/countdown-0.1.0", fixture);
	else
		snprintf(unit_dir, sizeof(unit_dir), "%s/build/test/out/native/countdown-0.1.0", repo);
	snprintf(so, sizeof(so), "%s/libcountdown.so", unit_dir);
	snprintf(manifest, sizeof(manifest), "%s/manifest.json", unit_dir);
	snprintf(schemas, sizeof(schemas), "%s/schemas", repo);
}

static molt_unit *load(void)
{
	molt_unit *u = NULL;

	ck_assert_msg(access(so, R_OK) == 0, "%s is missing: run scripts/fixture first "
					     "(with FIXTURE set to its folder)", so);
	ck_assert_msg(molt_unit_load_local(&u, so, manifest, schemas) == 0, "loading countdown: %s",
		      molt_error_last());
	return u;
}

static void set(molt_unit *u, uint32_t budget, size_t max_output, uint32_t timeout_ms)
{
	molt_unit_options o = MOLT_UNIT_OPTIONS_INIT;

	o.step_budget = budget;
	o.max_output = max_output;
	o.timeout_ms = timeout_ms;
	ck_assert_msg(molt_unit_set_options(u, &o) == 0, "%s", molt_error_last());
}

#define assert_call(u, fn, in, want)                                                  \
	do {                                                                          \
		char *out_ = NULL;                                                    \
		int rc_ = molt_unit_call_json((u), (fn), (in), &out_);                \
		ck_assert_msg(rc_ == 0, "%s %s: %d %s", (fn), (in), rc_, molt_error_last()); \
		ck_assert_str_eq(out_, (want));                                       \
		free(out_);                                                           \
	} while (0)

#define assert_error(expr, want, needle)                                              \
	do {                                                                          \
		int rc_ = (expr);                                                     \
		ck_assert_msg(rc_ == (want), "got %d, want %d: %s", rc_, (want),      \
			      molt_error_last());                                     \
		ck_assert_msg(strstr(molt_error_last(), (needle)), "'%s' not in: %s", \
			      (needle), molt_error_last());                           \
	} while (0)

/* Polls a job to its end; returns what the last poll returned. */
static int finish(molt_job *j, char **json)
{
	int rc;

	while ((rc = molt_job_poll(j, json)) == 0)
		;
	return rc;
}

START_TEST(test_slices_follow_the_step_budget)
{
	molt_unit *u = load();

	assert_call(u, "count", "{\"n\":10}", "{\"sum\":55,\"polls\":1}");
	assert_call(u, "count", "{\"n\":200000}", "{\"sum\":20000100000,\"polls\":4}");
	set(u, 10, 0, 0);
	assert_call(u, "count", "{\"n\":100}", "{\"sum\":5050,\"polls\":10}");
	assert_call(u, "count", "{\"n\":101}", "{\"sum\":5151,\"polls\":11}");
	assert_call(u, "list", "{\"n\":3}", "{\"values\":[3,2,1]}");
	molt_unit_free(u);
}
END_TEST

START_TEST(test_two_tasks_interleave_without_sharing_state)
{
	molt_unit *u = load();
	molt_job *a = NULL, *b = NULL;
	char *ja = NULL, *jb = NULL;
	int ra = 0, rb = 0;

	set(u, 7, 0, 0);
	ck_assert_int_eq(molt_unit_start(&a, u, "count", "{\"n\":100}"), 0);
	ck_assert_int_eq(molt_unit_start(&b, u, "count", "{\"n\":50}"), 0);
	while (ra == 0 || rb == 0) {
		if (ra == 0)
			ra = molt_job_poll(a, &ja);
		if (rb == 0)
			rb = molt_job_poll(b, &jb);
	}
	ck_assert_str_eq(ja, "{\"sum\":5050,\"polls\":15}");
	ck_assert_str_eq(jb, "{\"sum\":1275,\"polls\":8}");
	free(ja);
	free(jb);
	molt_job_free(a);
	molt_job_free(b);
	molt_unit_free(u);
}
END_TEST

START_TEST(test_cancel_mid_task_takes_one_poll)
{
	molt_unit *u = load();
	const unsigned char *env;
	molt_job *j = NULL;
	size_t len;
	int i;

	ck_assert_int_eq(molt_unit_start(&j, u, "count", BILLION), 0);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(molt_job_poll(j, NULL), 0);
	ck_assert_int_eq(molt_job_error_code(j), 0);
	ck_assert_int_eq(molt_job_cancel(j), 0);
	ck_assert_int_eq(molt_job_cancel(j), 0);
	assert_error(molt_job_poll(j, NULL), MOLT_ERROR,
		     "countdown.count: cancellation error 4: task 1 was cancelled");
	ck_assert_int_eq(molt_job_error_code(j), 4);
	ck_assert_uint_eq(molt_job_polls(j), 4);
	ck_assert_int_eq(molt_job_envelope(j, &env, &len), 2);
	assert_error(molt_job_poll(j, NULL), MOLT_ERROR, "was cancelled");
	ck_assert_int_eq(molt_job_cancel(j), 0);
	molt_job_free(j);
	assert_call(u, "count", "{\"n\":10}", "{\"sum\":55,\"polls\":1}");
	molt_unit_free(u);
}
END_TEST

START_TEST(test_free_cancels_a_pending_job)
{
	molt_unit *u = load();
	molt_job *j[64];
	int i;

	/* Fill the table, free the jobs while pending, fill it again: each
	 * free reaped its task in the unit. */
	for (int round = 0; round < 2; round++) {
		for (i = 0; i < 64; i++) {
			ck_assert_int_eq(molt_unit_start(&j[i], u, "count", BILLION), 0);
			ck_assert_int_eq(molt_job_poll(j[i], NULL), 0);
		}
		for (i = 0; i < 64; i++)
			molt_job_free(j[i]);
	}
	molt_job_free(NULL);
	assert_call(u, "count", "{\"n\":3}", "{\"sum\":6,\"polls\":1}");
	molt_unit_free(u);
}
END_TEST

START_TEST(test_timeout_cancels_the_task)
{
	molt_unit *u = load();
	molt_job *j = NULL;
	char *out = NULL;
	int i;

	set(u, 1000, 0, 30);
	assert_error(molt_unit_call_json(u, "count", BILLION, &out), MOLT_ERROR,
		     "countdown.count: runtime error 5: no result after ");
	ck_assert_ptr_null(out);
	ck_assert_ptr_nonnull(strstr(molt_error_last(), "(timeout_ms 30, "));
	ck_assert_int_eq(molt_unit_start(&j, u, "count", BILLION), 0);
	assert_error(finish(j, NULL), MOLT_ERROR, "the host cancelled the task");
	ck_assert_int_eq(molt_job_error_code(j), 5);
	ck_assert_uint_gt(molt_job_polls(j), 1);
	molt_job_free(j);
	/* Each timeout freed its task's slot: 64 fit again. */
	set(u, 0, 0, 0);
	{
		molt_job *all[64];
		for (i = 0; i < 64; i++)
			ck_assert_int_eq(molt_unit_start(&all[i], u, "count", "{\"n\":1}"), 0);
		for (i = 0; i < 64; i++)
			molt_job_free(all[i]);
	}
	assert_call(u, "count", "{\"n\":4}", "{\"sum\":10,\"polls\":1}");
	molt_unit_free(u);
}
END_TEST

START_TEST(test_max_output)
{
	molt_unit *u = load();
	const unsigned char *env;
	molt_job *j = NULL;
	char *out = NULL;
	size_t len;

	set(u, 0, 100, 0);
	assert_error(molt_unit_call_json(u, "list", "{\"n\":1000}", &out), MOLT_ERROR,
		     "countdown.list: runtime error 6: the result envelope is 2658 bytes, over the "
		     "max_output limit of 100 bytes");
	ck_assert_int_eq(molt_unit_start(&j, u, "list", "{\"n\":1000}"), 0);
	ck_assert_int_lt(finish(j, NULL), 0);
	ck_assert_int_eq(molt_job_error_code(j), 6);
	ck_assert_int_eq(molt_job_envelope(j, &env, &len), 0);
	molt_job_free(j);
	assert_call(u, "list", "{\"n\":2}", "{\"values\":[2,1]}");
	set(u, 0, 2658, 0);
	ck_assert_int_eq(molt_unit_call_json(u, "list", "{\"n\":1000}", &out), 0);
	free(out);
	molt_unit_free(u);
}
END_TEST

START_TEST(test_table_full_is_capability_denied)
{
	molt_unit *u = load();
	molt_job *j[65];
	int i;

	for (i = 0; i < 64; i++)
		ck_assert_int_eq(molt_unit_start(&j[i], u, "count", "{\"n\":1}"), 0);
	assert_error(molt_unit_start(&j[64], u, "count", "{\"n\":1}"), MOLT_ERROR,
		     "status -6 (CapabilityDenied); the unit holds as many tasks as it can");
	ck_assert_ptr_null(j[64]);
	ck_assert_int_eq(finish(j[0], NULL), 1);
	molt_job_free(j[0]);
	ck_assert_int_eq(molt_unit_start(&j[0], u, "count", "{\"n\":1}"), 0);
	for (i = 0; i < 64; i++)
		molt_job_free(j[i]);
	molt_unit_free(u);
}
END_TEST

/* Raw envelopes: decode and validation errors come back as error envelopes. */
START_TEST(test_status_codes_of_bad_requests)
{
	static const unsigned char truncated[] = { 0x93, 0xb7, 'c', 'o', 'u', 'n', 't', 'd', 'o',
						   'w', 'n', '.', 'c', 'o', 'u', 'n', 't', '_',
						   'r', 'e', 'q', 'u', 'e', 's', 't', 0x01, 0xc4,
						   0x04, 0x81, 0xa1 };
	static const unsigned char v2[] = { 0x93, 0xb7, 'c', 'o', 'u', 'n', 't', 'd', 'o', 'w',
					    'n', '.', 'c', 'o', 'u', 'n', 't', '_', 'r', 'e',
					    'q', 'u', 'e', 's', 't', 0x02, 0xc4, 0x04, 0x81,
					    0xa1, 'n', 0x03 };
	molt_unit *u = load();
	molt_job *j = NULL;

	ck_assert_int_eq(molt_unit_start_envelope(&j, u, 1, truncated, sizeof(truncated)), 0);
	assert_error(finish(j, NULL), MOLT_EINVALID, "validation error 2: request is not one "
						     "complete MsgPack value (30 bytes)");
	ck_assert_int_eq(molt_job_error_code(j), 2);
	molt_job_free(j);
	ck_assert_int_eq(molt_unit_start_envelope(&j, u, 1, v2, sizeof(v2)), 0);
	assert_error(finish(j, NULL), MOLT_EINVALID, "expected schema countdown.count_request "
						     "v1, found countdown.count_request v2");
	ck_assert_int_eq(molt_job_error_code(j), 1);
	molt_job_free(j);
	ck_assert_int_eq(molt_unit_start_envelope(&j, u, 99, v2, sizeof(v2)), 0);
	assert_error(finish(j, NULL), MOLT_EINVALID, "countdown.#99: validation error 1: "
						     "unknown function id 99");
	molt_job_free(j);
	ck_assert_int_eq(molt_unit_start(&j, u, "count", "{\"n\":-1}"), 0);
	assert_error(finish(j, NULL), MOLT_EINVALID, "validation error 1 at n: expected 0 to "
						     "1000000000, found -1");
	ck_assert_int_eq(molt_job_error_code(j), 1);
	molt_job_free(j);
	assert_error(molt_unit_start(&j, u, "count", "{\"n\":\"x\"}"), MOLT_EINVALID, "n");
	assert_error(molt_unit_start(&j, u, "nope", "{}"), MOLT_ENOTFOUND, "no function 'nope'");
	molt_unit_free(u);
}
END_TEST

/* A manifest that names the wrong output schema for count: the unit's
 * (correct) result breaks it, which the host reports as EncodeError. */
START_TEST(test_result_breaking_its_schema_is_encode_error)
{
	char path[PATH_MAX], *text;
	cJSON *m, *f;
	molt_unit *u = NULL;
	molt_job *j = NULL;
	FILE *fp;
	long n;

	locate();
	ck_assert_ptr_nonnull(fp = fopen(manifest, "rb"));
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	ck_assert_ptr_nonnull(text = calloc(1, (size_t)n + 1));
	ck_assert_int_eq(fread(text, 1, (size_t)n, fp), (size_t)n);
	fclose(fp);
	ck_assert_ptr_nonnull(m = cJSON_Parse(text));
	free(text);
	f = cJSON_GetArrayItem(cJSON_GetObjectItem(m, "functions"), 0);
	cJSON_ReplaceItemInObject(cJSON_GetObjectItem(f, "output"), "id",
				  cJSON_CreateString("countdown.list_response"));
	snprintf(path, sizeof(path), "%s/task_test_manifest_%d.json",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", (int)getpid());
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	text = cJSON_Print(m);
	fputs(text, fp);
	fclose(fp);
	free(text);
	cJSON_Delete(m);
	ck_assert_msg(molt_unit_load_local(&u, so, path, schemas) == 0, "%s", molt_error_last());
	unlink(path);
	ck_assert_int_eq(molt_unit_start(&j, u, "count", "{\"n\":3}"), 0);
	assert_error(finish(j, &text), MOLT_EVERIFY, "countdown.count: runtime error 3: the "
						     "unit's result envelope does not name schema "
						     "countdown.list_response@1");
	ck_assert_int_eq(molt_job_error_code(j), 3);
	molt_job_free(j);
	molt_unit_free(u);
}
END_TEST

START_TEST(test_options_version)
{
	molt_unit *u = load();
	molt_unit_options o = MOLT_UNIT_OPTIONS_INIT;

	o.version = 99;
	assert_error(molt_unit_set_options(u, &o), MOLT_EINVALID, "molt_unit_options version 99");
	assert_error(molt_unit_set_options(u, NULL), MOLT_EINVALID, "MOLT_UNIT_OPTIONS_INIT");
	molt_unit_free(u);
}
END_TEST

/* The ABI itself, with the unit dlopened here and no libmolt in between. */
typedef struct {
	void *dl;
	int32_t (*init)(const void *, uint32_t);
	int64_t (*call)(uint32_t, const void *, uint32_t);
	int32_t (*poll)(int64_t, const void **, uint32_t *);
	int32_t (*cancel)(int64_t);
} raw_unit;

static void raw_open(raw_unit *r)
{
	ck_assert_msg((r->dl = dlopen(so, RTLD_NOW | RTLD_LOCAL)) != NULL, "%s", dlerror());
	*(void **)&r->init = dlsym(r->dl, "molt_init");
	*(void **)&r->call = dlsym(r->dl, "molt_call");
	*(void **)&r->poll = dlsym(r->dl, "molt_poll");
	*(void **)&r->cancel = dlsym(r->dl, "molt_cancel");
	ck_assert(r->init && r->call && r->poll && r->cancel);
}

static const unsigned char cfg_empty[] = { 0x93, 0xb3, 'm', 'o', 'l', 't', '.', 'r', 'u',
					   'n', 't', 'i', 'm', 'e', '_', 'c', 'o', 'n', 'f',
					   'i', 'g', 0x01, 0xc4, 0x01, 0x80 };
/* {step_budget: 0}, {stepbudget: 5} */
static const unsigned char cfg_zero[] = { 0x93, 0xb3, 'm', 'o', 'l', 't', '.', 'r', 'u', 'n',
					  't', 'i', 'm', 'e', '_', 'c', 'o', 'n', 'f', 'i',
					  'g', 0x01, 0xc4, 0x0e, 0x81, 0xab, 's', 't', 'e',
					  'p', '_', 'b', 'u', 'd', 'g', 'e', 't', 0x00 };
static const unsigned char count3[] = { 0x93, 0xb7, 'c', 'o', 'u', 'n', 't', 'd', 'o', 'w',
					'n', '.', 'c', 'o', 'u', 'n', 't', '_', 'r', 'e',
					'q', 'u', 'e', 's', 't', 0x01, 0xc4, 0x04, 0x81,
					0xa1, 'n', 0x03 };

START_TEST(test_raw_abi_statuses)
{
	raw_unit r;
	const void *out;
	uint32_t len;
	int64_t t;

	locate();
	raw_open(&r);
	ck_assert_int_eq(r.call(1, count3, sizeof(count3)), -7); /* not initialised */
	ck_assert_int_eq(r.init(cfg_empty, sizeof(cfg_empty) - 1), -2);
	ck_assert_int_eq(r.init(count3, sizeof(count3)), -2);
	ck_assert_int_eq(r.init(cfg_zero, sizeof(cfg_zero)), -1);
	ck_assert_int_eq(r.init(cfg_empty, sizeof(cfg_empty)), 0);
	ck_assert_int_eq(r.init(cfg_empty, sizeof(cfg_empty)), 0); /* idempotent */
	ck_assert_int_eq(r.poll(12345, &out, &len), -1);
	ck_assert_int_eq(r.poll(0, &out, &len), -1);
	ck_assert_int_eq(r.poll(-3, &out, &len), -1);
	ck_assert_int_eq(r.cancel(12345), -1);
	t = r.call(1, count3, sizeof(count3));
	ck_assert_int_gt(t, 0);
	ck_assert_int_eq(r.poll(t, NULL, &len), -1);
	ck_assert_int_eq(r.poll(t, &out, &len), 1);
	ck_assert_int_eq(r.poll(t, &out, &len), -1); /* finished: the id is dead */
	ck_assert_int_eq(r.cancel(t), -1);
	ck_assert_int_gt(r.call(1, count3, sizeof(count3)), t); /* ids are not reused */
	dlclose(r.dl);
}
END_TEST

static Suite *task_suite(void)
{
	Suite *s = suite_create("task");
	TCase *tc = tcase_create("jobs");
	TCase *raw = tcase_create("raw");

	tcase_add_unchecked_fixture(tc, locate, NULL);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_slices_follow_the_step_budget);
	tcase_add_test(tc, test_two_tasks_interleave_without_sharing_state);
	tcase_add_test(tc, test_cancel_mid_task_takes_one_poll);
	tcase_add_test(tc, test_free_cancels_a_pending_job);
	tcase_add_test(tc, test_timeout_cancels_the_task);
	tcase_add_test(tc, test_max_output);
	tcase_add_test(tc, test_table_full_is_capability_denied);
	tcase_add_test(tc, test_status_codes_of_bad_requests);
	tcase_add_test(tc, test_result_breaking_its_schema_is_encode_error);
	tcase_add_test(tc, test_options_version);
	tcase_add_test(raw, test_raw_abi_statuses);
	suite_add_tcase(s, tc);
	suite_add_tcase(s, raw);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(task_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
