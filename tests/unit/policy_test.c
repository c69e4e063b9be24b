/* The trust policy: parsing with file:line:col errors, glob matching,
 * thresholds counting each key once, expiry and revocation. */
#include "mr/buf.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/minisign.h"
#include "mr/policy.h"

#include <check.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/policy_test.XXXXXX";
static mr_seckey *sk1, *sk2;
static char id1[17], id2[17];
static const char msg[] = "molt test data";

static void setup(void)
{
	mr_pubkey pk;
	char a[200], b[200];

	ck_assert_int_eq(sodium_init() < 0, 0);
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(a, sizeof(a), "%s/k1.key", dir);
	snprintf(b, sizeof(b), "%s/k1.pub", dir);
	ck_assert_int_eq(mr_keygen(&pk, a, b, NULL, 1), 0);
	mr_keyid_hex(id1, pk.id);
	ck_assert_int_eq(mr_seckey_load(&sk1, a, NULL), 0);
	snprintf(a, sizeof(a), "%s/k2.key", dir);
	snprintf(b, sizeof(b), "%s/k2.pub", dir);
	ck_assert_int_eq(mr_keygen(&pk, a, b, NULL, 1), 0);
	mr_keyid_hex(id2, pk.id);
	ck_assert_int_eq(mr_seckey_load(&sk2, a, NULL), 0);
}

static void teardown(void)
{
	mr_seckey_free(sk1);
	mr_seckey_free(sk2);
	mr_fs_rm_rf(dir);
}

/* Parses a policy whose text is printf'd from `fmt` with the two key ids. */
static int parse(mr_policy **p, const char *k1extra, const char *rest)
{
	mr_buf t = MR_BUF_INIT;
	int rc;

	mr_buf_printf(&t,
		      "{\"format\": 1,\n \"keys\": [{\"id\": \"%s\", \"pub\": \"k1.pub\", \"names\": [\"*\"]%s},\n"
		      "  {\"id\": \"%s\", \"pub\": \"k2.pub\", \"names\": [\"hel*\"]}],\n %s}",
		      id1, k1extra, id2, rest);
	rc = mr_policy_parse(p, "policy.json", (const char *)t.data, t.len, dir);
	mr_buf_free(&t);
	return rc;
}

static void sign(mr_buf *out, const mr_seckey *sk, const char *comment)
{
	ck_assert_int_eq(mr_sign(out, sk, msg, strlen(msg), comment), 0);
}

static int verify(const mr_policy *p, const char *name, mr_buf *sigs, size_t n)
{
	const char *where[] = { "s1", "s2", "s3" };
	return mr_policy_verify(p, name, sigs, where, n, msg, strlen(msg), "c", time(NULL), NULL);
}

START_TEST(test_glob)
{
	ck_assert(mr_glob_match("*", "hello"));
	ck_assert(mr_glob_match("explorer-*", "explorer-core"));
	ck_assert(!mr_glob_match("explorer-*", "explorer"));
	ck_assert(mr_glob_match("h?llo", "hello"));
	ck_assert(!mr_glob_match("hello", "hello2"));
}
END_TEST

START_TEST(test_parse_errors)
{
	mr_policy *p = NULL;

	ck_assert_int_eq(parse(&p, ", \"nmes\": 1", "\"snapshot\": {\"keys\": [\"X\"]}"), MR_EINVALID);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "policy.json:2:"));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "unknown member \"nmes\""));
	ck_assert_int_eq(parse(&p, "", "\"snapshot\": {\"keys\": [\"ABC\"]}"), MR_EINVALID);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "policy.json:4:"));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "ABC is not a key listed"));
	ck_assert_int_eq(parse(&p, "", "\"thresholds\": {\"*\": 3}, \"snapshot\": {\"keys\": []}"), MR_EINVALID);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "threshold 3 can never be met"));
	ck_assert_ptr_null(p);
}
END_TEST

START_TEST(test_each_key_counts_once)
{
	mr_policy *p = NULL;
	mr_buf s[3] = { MR_BUF_INIT, MR_BUF_INIT, MR_BUF_INIT };
	char snap[160];
	int i;

	snprintf(snap, sizeof(snap), "\"thresholds\": {\"hello\": 2}, \"snapshot\": {\"keys\": [\"%s\"]}", id1);
	ck_assert_int_eq(parse(&p, "", snap), 0);
	ck_assert_uint_eq(mr_policy_threshold(p, "hello"), 2);
	ck_assert_uint_eq(mr_policy_threshold(p, "other"), 1);
	sign(&s[0], sk1, "c");
	sign(&s[1], sk1, "c");
	s[2] = s[0];
	/* the same signature twice, and two signatures by one key: one key */
	ck_assert_int_eq(verify(p, "hello", s, 2), MR_EVERIFY);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "already counted"));
	ck_assert_int_eq(verify(p, "hello", (mr_buf[]){ s[0], s[0] }, 2), MR_EVERIFY);
	ck_assert_int_eq(verify(p, "other", s, 1), 0);
	mr_buf_free(&s[1]);
	sign(&s[1], sk2, "c");
	ck_assert_int_eq(verify(p, "hello", s, 2), 0);
	/* k2 may sign hel* only */
	ck_assert_int_eq(verify(p, "other", &s[1], 1), MR_EVERIFY);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "may not sign other"));
	/* the snapshot: only k1 */
	ck_assert_int_eq(verify(p, NULL, &s[1], 1), MR_EVERIFY);
	ck_assert_int_eq(verify(p, NULL, &s[0], 1), 0);
	mr_buf_free(&s[1]);
	sign(&s[1], sk2, "other comment");
	ck_assert_int_eq(verify(p, "hello", s, 2), MR_EVERIFY);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "trusted comment is 'other comment'"));
	for (i = 0; i < 2; i++)
		mr_buf_free(&s[i]);
	mr_policy_free(p);
}
END_TEST

START_TEST(test_expired_and_revoked)
{
	mr_policy *p = NULL;
	mr_buf s = MR_BUF_INIT;
	char snap[160];

	snprintf(snap, sizeof(snap), "\"snapshot\": {\"keys\": [\"%s\"]}", id1);
	sign(&s, sk1, "c");
	ck_assert_int_eq(parse(&p, ", \"expires\": \"2020-01-01T00:00:00Z\"", snap), 0);
	ck_assert_int_eq(verify(p, "hello", &s, 1), MR_EVERIFY);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "expired at 2020-01-01T00:00:00Z"));
	mr_policy_free(p);
	ck_assert_int_eq(parse(&p, ", \"revoked\": true", snap), 0);
	ck_assert_int_eq(verify(p, "hello", &s, 1), MR_EVERIFY);
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "is revoked"));
	mr_policy_free(p);
	mr_buf_free(&s);
}
END_TEST

START_TEST(test_repo_policy_template_parses)
{
	mr_buf t = MR_BUF_INIT;
	char path[512];

	snprintf(path, sizeof(path), "%s/keys/policy.json",
		 getenv("MOLT_REPO") ? getenv("MOLT_REPO") : MOLT_SOURCE_DIR);
	ck_assert_int_eq(mr_fs_read(&t, path, 1 << 20), 0);
	mr_buf_free(&t);
}
END_TEST

static Suite *policy_suite(void)
{
	Suite *s = suite_create("policy");
	TCase *tc = tcase_create("policy");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_glob);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_each_key_counts_once);
	tcase_add_test(tc, test_expired_and_revoked);
	tcase_add_test(tc, test_repo_policy_template_parses);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	setenv("MRECIPE_KDF_FAST", "1", 1);
	sr = srunner_create(policy_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
