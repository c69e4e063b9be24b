/* The lockfile API (molt.h): add, write, read back byte for byte, look up,
 * refuse malformed files with file:line:col, and load by lockfile entry and
 * by manifest digest, on the fixture's registry (scripts/fixture). */
#define _GNU_SOURCE
#include "molt/molt.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char registry[PATH_MAX], pubkey[PATH_MAX], dir[PATH_MAX];

static molt_runtime *open_rt(void)
{
	const char *fixture = getenv("FIXTURE"), *repo = getenv("MOLT_REPO"), *tmp = getenv("TMPDIR");
	const char *keys[] = { pubkey };
	molt_options o = MOLT_OPTIONS_INIT;
	char cache[PATH_MAX + 16];
	molt_runtime *rt = NULL;

	if (fixture)
		snprintf(registry, sizeof(registry), "%s/registry", fixture);
	else
		snprintf(registry, sizeof(registry), "%s/build/test/registry",
			 repo ? repo : MOLT_SOURCE_DIR);
	snprintf(pubkey, sizeof(pubkey), "%.*s/dev.pub", (int)(strlen(registry) - 9), registry);
	ck_assert_msg(access(pubkey, R_OK) == 0, "%s is missing: run scripts/fixture first", pubkey);
	snprintf(dir, sizeof(dir), "%s/lock_test.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
	snprintf(cache, sizeof(cache), "%s/cache", dir);
	o.registry = registry;
	o.cache_dir = cache;
	o.trusted_keys = keys;
	o.trusted_keys_count = 1;
	ck_assert_msg(molt_runtime_open(&rt, &o) == 0, "%s", molt_error_last());
	return rt;
}

static void cleanup(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *s = calloc(1, 1 << 16);

	ck_assert_ptr_nonnull(f);
	ck_assert_int_gt(fread(s, 1, (1 << 16) - 1, f), 0);
	fclose(f);
	return s;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");

	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

START_TEST(roundtrip)
{
	molt_runtime *rt = open_rt();
	molt_lockfile *lf = NULL, *back = NULL;
	molt_lock_entry e, f;
	char a[PATH_MAX + 16], b[PATH_MAX + 16], *ta, *tb;
	int yanked = -1;

	snprintf(a, sizeof(a), "%s/a.lock", dir);
	snprintf(b, sizeof(b), "%s/b.lock", dir);
	ck_assert_int_eq(molt_lockfile_new(&lf, a), 0);
	ck_assert_msg(molt_lockfile_add(lf, rt, "hello", "0.1.0", "wasm32-wasi") == 0, "%s",
		      molt_error_last());
	ck_assert_msg(molt_lockfile_add(lf, rt, "countdown", "0.1.0", NULL) == 0, "%s",
		      molt_error_last());
	ck_assert_msg(molt_lockfile_add(lf, rt, "hello", "0.1.0", NULL) == 0, "%s", molt_error_last());
	ck_assert_int_eq(molt_lockfile_add(lf, rt, "hello", "0.1.0", NULL), 0); /* replaces */
	ck_assert_uint_eq(molt_lockfile_count(lf), 3);
	ck_assert_int_eq(molt_lockfile_write(lf, a), 0);
	ck_assert_msg(molt_lockfile_open(&back, a) == 0, "%s", molt_error_last());
	ck_assert_int_eq(molt_lockfile_write(back, b), 0);
	ta = slurp(a);
	tb = slurp(b);
	ck_assert_str_eq(ta, tb);
	ck_assert_ptr_nonnull(strstr(ta, "{\n  \"format\": 1,\n  \"units\": [\n    {\n      \"name\": \"countdown\""));
	ck_assert_int_eq(molt_lockfile_get(&e, back, 0), 0);
	ck_assert_str_eq(e.name, "countdown"); /* sorted by name, then target */
	ck_assert_int_eq(molt_lockfile_get(&e, back, 3), MOLT_ENOTFOUND);
	ck_assert_int_eq(molt_lockfile_entry(&e, back, "hello", NULL), 0);
	ck_assert_int_eq(molt_lockfile_entry(&f, lf, "hello", molt_host_triple()), 0);
	ck_assert_str_eq(e.manifest_digest, f.manifest_digest);
	ck_assert_str_eq(e.artifact_digest, f.artifact_digest);
	ck_assert_uint_eq(e.artifact_size, f.artifact_size);
	ck_assert_uint_eq(strlen(e.keys), 16);
	ck_assert_int_eq(molt_lockfile_entry(&e, back, "jsoninfo", NULL), MOLT_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(molt_error_last(), "pin it first (molt lock jsoninfo@VERSION)"));
	ck_assert_int_eq(molt_lockfile_entry(&e, back, "countdown", "wasm32-wasi"), MOLT_ENOTFOUND);
	ck_assert_ptr_nonnull(strstr(molt_error_last(), "not for wasm32-wasi"));
	ck_assert_msg(molt_fetch_locked(rt, back, "hello", "wasm32-wasi", NULL, &yanked) == 0, "%s",
		      molt_error_last());
	ck_assert_int_eq(yanked, 0);
	free(ta);
	free(tb);
	molt_lockfile_free(lf);
	molt_lockfile_free(back);
	molt_lockfile_free(NULL);
	molt_runtime_free(rt);
	cleanup();
}
END_TEST

START_TEST(load_by_lock_and_digest)
{
	molt_runtime *rt = open_rt();
	molt_lockfile *lf = NULL;
	molt_unit *u = NULL, *v = NULL;
	molt_lock_entry e;
	char *out = NULL;

	ck_assert_int_eq(molt_lockfile_new(&lf, NULL), 0);
	ck_assert_msg(molt_lockfile_add(lf, rt, "hello", "0.1.0", NULL) == 0, "%s", molt_error_last());
	ck_assert_int_eq(molt_lockfile_entry(&e, lf, "hello", NULL), 0);
	ck_assert_msg(molt_unit_load_locked(&u, rt, lf, "hello") == 0, "%s", molt_error_last());
	ck_assert_str_eq(molt_unit_name(u), "hello");
	ck_assert_str_eq(molt_unit_version(u), "0.1.0");
	ck_assert_str_eq(molt_unit_target(u), molt_host_triple());
	ck_assert_str_eq(molt_unit_manifest_digest(u), e.manifest_digest);
	ck_assert_msg(molt_unit_load_digest(&v, rt, e.manifest_digest) == 0, "%s", molt_error_last());
	ck_assert_str_eq(molt_unit_manifest_digest(v), e.manifest_digest);
	/* Two loads of one artifact are two instances: both answer. */
	ck_assert_int_eq(molt_unit_call_json(u, "greet", "{\"name\":\"u\"}", &out), 0);
	ck_assert_str_eq(out, "{\"greeting\":\"Hello, u!\"}");
	free(out);
	ck_assert_int_eq(molt_unit_call_json(v, "greet", "{\"name\":\"v\"}", &out), 0);
	ck_assert_str_eq(out, "{\"greeting\":\"Hello, v!\"}");
	free(out);
	molt_unit_free(v);
	ck_assert_int_eq(molt_unit_load_locked(&v, rt, lf, "countdown"), MOLT_ENOTFOUND);
	ck_assert_ptr_null(v);
	ck_assert_int_eq(molt_unit_load_digest(&v, rt, "sha256:1234"), MOLT_EINVALID);
	molt_unit_free(u);
	molt_lockfile_free(lf);
	molt_runtime_free(rt);
	cleanup();
}
END_TEST

START_TEST(malformed)
{
	static const struct {
		const char *text, *want;
	} cases[] = {
		{ "[1]", ":1:1: expected a lockfile {\"format\": 1" },
		{ "{\"units\": []}", ":1:1: no \"format\"" },
		{ "{\"format\": 7, \"units\": []}", ":1:12: unknown lockfile format 7: this molt reads format 1" },
		{ "{\"format\": 1,\n \"units\": {}}", ":2:11: \"units\": expected a list, found an object" },
		{ "{\"format\": 1, \"extra\": 1, \"units\": []}", ":1:15: unknown member \"extra\"" },
		{ "{\"format\": 1, \"units\": [\n 7]}", ":2:2: a unit: expected an object" },
		{ "{\"format\": 1, \"units\": [{\"name\": \"a\", \"version\": \"1.0.0\", \"target\": \"t\",\n"
		  " \"manifest\": \"sha256:0000000000000000000000000000000000000000000000000000000000000000\",\n"
		  " \"artifact\": \"sha256:0000000000000000000000000000000000000000000000000000000000000000\",\n"
		  " \"artifact_size\": -1, \"keys\": [\"AB\"]}]}",
		  ":4:19: \"artifact_size\": expected a byte count, found a number" },
		{ "{\"format\": 1, \"units\": [", ":1:25: invalid JSON" },
	};
	char path[PATH_MAX + 16];
	molt_lockfile *lf = NULL;
	size_t i;

	molt_runtime_free(open_rt());
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(path, sizeof(path), "%s/bad%zu.lock", dir, i);
		write_file(path, cases[i].text);
		ck_assert_int_eq(molt_lockfile_open(&lf, path), MOLT_EINVALID);
		ck_assert_ptr_null(lf);
		ck_assert_msg(strstr(molt_error_last(), path) && strstr(molt_error_last(), cases[i].want),
			      "case %zu: %s", i, molt_error_last());
	}
	snprintf(path, sizeof(path), "%s/none.lock", dir);
	ck_assert_int_eq(molt_lockfile_open(&lf, path), MOLT_ENOTFOUND);
	cleanup();
}
END_TEST

int main(void)
{
	Suite *s = suite_create("lock");
	TCase *tc = tcase_create("lockfile");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, roundtrip);
	tcase_add_test(tc, load_by_lock_and_digest);
	tcase_add_test(tc, malformed);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
