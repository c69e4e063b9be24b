/* Separate runtimes on separate threads (docs/runtime.md, "Threads"): four
 * threads each open a runtime on the fixture's registry (scripts/fixture),
 * fetch and load hello and call greet 100 times, with a cache each and with
 * one cache for all; error messages stay on their own thread.
 * The threads also fill one empty cache at once (cold_cache): temporary
 * files are unique per writer (mkostemp) and a blob's download runs under a
 * lock on <blob>.lock, which threads of one process contend for as
 * separate processes do. */
#define _GNU_SOURCE
#include "molt/molt.h"

#include <check.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define THREADS 4
#define CALLS 100

static char registry[PATH_MAX], pubkey[PATH_MAX], base[PATH_MAX];
static pthread_barrier_t start;

static void locate(void)
{
	const char *fixture = getenv("FIXTURE"), *repo = getenv("MOLT_REPO");
	const char *tmp = getenv("TMPDIR");

	if (!repo)
		repo = MOLT_SOURCE_DIR;
	if (fixture)
		snprintf(registry, sizeof(registry), "%s/registry", fixture);
	else
		snprintf(registry, sizeof(registry), "%s/build/test/registry", repo);
	snprintf(pubkey, sizeof(pubkey), "%.*s/dev.pub", (int)(strlen(registry) - 9), registry);
	snprintf(base, sizeof(base), "%s/threads_test.%d", tmp && *tmp ? tmp : "/tmp", (int)getpid());
}

typedef struct {
	int id;
	char cache[PATH_MAX + 16];
	char failure[512]; /* empty when the thread passed */
} job;

static void *worker(void *p)
{
	job *j = p;
	const char *keys[] = { pubkey };
	molt_options o = MOLT_OPTIONS_INIT;
	molt_runtime *rt = NULL;
	molt_unit *u = NULL, *none = NULL;
	char in[64], want[64], *out = NULL, missing[32];
	int i, rc;

	o.registry = registry;
	o.cache_dir = j->cache;
	o.trusted_keys = keys;
	o.trusted_keys_count = 1;
	pthread_barrier_wait(&start);
	if ((rc = molt_runtime_open(&rt, &o)) || (rc = molt_unit_load(&u, rt, "hello", "0.1.0"))) {
		snprintf(j->failure, sizeof(j->failure), "thread %d: load: %d %s", j->id, rc,
			 molt_error_last());
		goto done;
	}
	for (i = 0; i < CALLS; i++) {
		snprintf(in, sizeof(in), "{\"name\":\"t%d-%d\"}", j->id, i);
		snprintf(want, sizeof(want), "{\"greeting\":\"Hello, t%d-%d!\"}", j->id, i);
		if ((rc = molt_unit_call_json(u, "greet", in, &out)) || strcmp(out, want)) {
			snprintf(j->failure, sizeof(j->failure), "thread %d call %d: %d %s %s", j->id, i,
				 rc, out ? out : "", molt_error_last());
			goto done;
		}
		free(out);
		out = NULL;
		if (i % 25 == 0) {
			/* An error of this thread's own: its message is this thread's. */
			snprintf(missing, sizeof(missing), "%d.%d.404", j->id, i);
			if (molt_unit_load(&none, rt, "hello", missing) != MOLT_ENOTFOUND ||
			    !strstr(molt_error_last(), missing)) {
				snprintf(j->failure, sizeof(j->failure), "thread %d: error for %s: %s",
					 j->id, missing, molt_error_last());
				goto done;
			}
		}
	}
	if (strcmp(molt_unit_name(u), "hello") || strcmp(molt_unit_version(u), "0.1.0") ||
	    strncmp(molt_unit_manifest_digest(u), "sha256:", 7))
		snprintf(j->failure, sizeof(j->failure), "thread %d: unit info %s@%s %s", j->id,
			 molt_unit_name(u), molt_unit_version(u), molt_unit_manifest_digest(u));
done:
	free(out);
	molt_unit_free(u);
	molt_runtime_free(rt);
	return NULL;
}

enum { OWN, SHARED_WARM, SHARED_COLD };

/* Fills the shared cache before the threads start (SHARED_WARM). */
static void warm(const char *cache)
{
	const char *keys[] = { pubkey };
	molt_options o = MOLT_OPTIONS_INIT;
	molt_runtime *rt = NULL;

	o.registry = registry;
	o.cache_dir = cache;
	o.trusted_keys = keys;
	o.trusted_keys_count = 1;
	ck_assert_msg(molt_runtime_open(&rt, &o) == 0, "%s", molt_error_last());
	ck_assert_msg(molt_fetch(rt, "hello", "0.1.0", NULL, NULL) == 0, "%s", molt_error_last());
	molt_runtime_free(rt);
}

static void run_threads(int mode)
{
	int shared = mode != OWN;
	pthread_t t[THREADS];
	job jobs[THREADS];
	char cmd[PATH_MAX + 16];
	int i;

	locate();
	ck_assert_msg(access(pubkey, R_OK) == 0, "%s is missing: run scripts/fixture first (with "
						 "FIXTURE set to its folder)", pubkey);
	if (mode == SHARED_WARM) {
		snprintf(cmd, sizeof(cmd), "%s/shared0", base);
		warm(cmd);
	}
	pthread_barrier_init(&start, NULL, THREADS);
	for (i = 0; i < THREADS; i++) {
		jobs[i].id = i;
		jobs[i].failure[0] = '\0';
		snprintf(jobs[i].cache, sizeof(jobs[i].cache), "%s/%s%d", base,
			 shared ? "shared" : "cache", shared ? 0 : i);
		ck_assert_int_eq(pthread_create(&t[i], NULL, worker, &jobs[i]), 0);
	}
	for (i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
	for (i = 0; i < THREADS; i++)
		ck_assert_msg(!jobs[i].failure[0], "%s", jobs[i].failure);
}

START_TEST(separate_caches)
{
	run_threads(OWN);
}
END_TEST

START_TEST(one_cache)
{
	run_threads(SHARED_WARM);
}
END_TEST

START_TEST(cold_cache)
{
	run_threads(SHARED_COLD);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("threads");
	TCase *tc = tcase_create("runtimes");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, separate_caches);
	tcase_add_test(tc, one_cache);
	tcase_add_test(tc, cold_cache);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
