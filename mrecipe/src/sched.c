/* Runs builds in dependency order, several at once, reusing outputs whose
 * input digest has not changed. */
#define _GNU_SOURCE
#include "mrecipe/build.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define STAMP ".mrecipe-key"

typedef struct {
	const mr_build_opts *o;
	const mr_sched_opts *so;
	const mr_recipe_set *set;
	mr_job *jobs;
	size_t n, done, started;
	int stop, first_rc;
	size_t first_failed;
	pthread_mutex_t lock;
	pthread_cond_t changed;
} run_ctx;

const char *mr_job_status_name(int status)
{
	static const char *const names[] = { "pending", "running", "built",
					     "cached", "failed", "skipped" };

	return status >= 0 && status <= MR_JOB_SKIPPED ? names[status] : "?";
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Copies a folder tree (regular files and folders), keeping exec bits. */
static int copy_tree(const char *from, const char *to)
{
	struct dirent *e;
	DIR *d = opendir(from);
	int rc = 0;

	if (!d)
		return mr_error_sys(MR_EIO, "opening %s", from);
	if ((rc = mr_fs_mkdir_p(to))) {
		closedir(d);
		return rc;
	}
	while (!rc && (e = readdir(d))) {
		char *a, *b;
		struct stat st;
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		a = mr_fs_join(from, e->d_name);
		b = mr_fs_join(to, e->d_name);
		if (!a || !b)
			rc = mr_error_set(MR_ERROR, "out of memory");
		else if (lstat(a, &st) < 0)
			rc = mr_error_sys(MR_EIO, "reading %s", a);
		else if (S_ISDIR(st.st_mode))
			rc = copy_tree(a, b);
		else if (S_ISREG(st.st_mode))
			rc = mr_fs_copy(a, b, st.st_mode & 0777);
		free(a);
		free(b);
	}
	closedir(d);
	return rc;
}

static int read_stamp(const char *dir, char key[MR_DIGEST_STR_LEN + 1])
{
	char *p = mr_fs_join(dir, STAMP);
	mr_buf b = MR_BUF_INIT;
	int ok = p && !mr_fs_read(&b, p, 256) && b.len == MR_DIGEST_STR_LEN;

	if (ok)
		memcpy(key, b.data, MR_DIGEST_STR_LEN + 1);
	mr_buf_free(&b);
	free(p);
	mr_error_clear();
	return ok ? 0 : -1;
}

static int write_stamp(const char *dir, const char *key)
{
	char *p = mr_fs_join(dir, STAMP);
	int rc = p ? mr_fs_write_atomic(p, key, strlen(key), 0644)
		   : mr_error_set(MR_ERROR, "out of memory");

	free(p);
	return rc;
}

/* Publishes a finished output into the shared cache under its key. A
 * failure to cache is not a failed build. */
static void cache_store(const char *cache, const char *key, const char *out)
{
	char *dst = NULL, *tmp = NULL;

	if (asprintf(&dst, "%s/%s", cache, key + 7) < 0 ||
	    asprintf(&tmp, "%s.tmp.%ld", dst, (long)getpid()) < 0)
		goto done;
	if (mr_fs_exists(dst))
		goto done;
	mr_fs_rm_rf(tmp);
	if (copy_tree(out, tmp) || rename(tmp, dst) < 0)
		mr_fs_rm_rf(tmp);
done:
	mr_error_clear();
	free(dst);
	free(tmp);
}

/* Reuses an output: its own folder when the stamp matches, else a copy
 * from the cache. 1 when reused, 0 when it must be built. */
static int reuse(const run_ctx *cx, const mr_job *j, const char *out)
{
	char have[MR_DIGEST_STR_LEN + 1], *src = NULL;
	int hit = 0;

	if (cx->so->force)
		return 0;
	if (!read_stamp(out, have) && !strcmp(have, j->key))
		return 1;
	if (!cx->so->build_cache || asprintf(&src, "%s/%s", cx->so->build_cache, j->key + 7) < 0)
		return 0;
	if (mr_fs_exists(src) && !mr_fs_rm_rf(out) && !copy_tree(src, out) &&
	    !read_stamp(out, have) && !strcmp(have, j->key))
		hit = 1;
	mr_error_clear();
	free(src);
	return hit;
}

static int run_job(run_ctx *cx, mr_job *j)
{
	char *out = mr_build_outdir(cx->o, j->recipe, j->target);
	int rc = 0;

	if (!out)
		return mr_error_set(MR_ERROR, "out of memory");
	if (reuse(cx, j, out)) {
		j->status = MR_JOB_CACHED;
	} else if (!(rc = mr_build(cx->o, j->recipe, j->target, cx->set)) &&
		   !(rc = write_stamp(out, j->key))) {
		j->status = MR_JOB_BUILT;
		if (cx->so->build_cache)
			cache_store(cx->so->build_cache, j->key, out);
	}
	free(out);
	return rc;
}

static void status_line(run_ctx *cx)
{
	FILE *f = cx->so->progress;
	size_t i, shown = 0;

	if (!f || !cx->so->tty)
		return;
	fprintf(f, "\r\033[K[%zu/%zu]", cx->done, cx->n);
	for (i = 0; i < cx->n && shown < 4; i++)
		if (cx->jobs[i].status == MR_JOB_RUNNING) {
			fprintf(f, "%s %s (%s)", shown++ ? "," : " building", cx->jobs[i].recipe->name,
				mr_target_name(cx->jobs[i].target));
		}
	fflush(f);
}

static void finished_line(run_ctx *cx, const mr_job *j)
{
	FILE *f = cx->so->progress;

	if (!f)
		return;
	if (cx->so->tty)
		fputs("\r\033[K", f);
	fprintf(f, "[%zu/%zu] %s %s (%s) %s", cx->done, cx->n, j->recipe->name,
		j->recipe->version, mr_target_name(j->target), mr_job_status_name(j->status));
	if (j->status == MR_JOB_BUILT || j->status == MR_JOB_FAILED)
		fprintf(f, " in %.1fs", j->seconds);
	fputc('\n', f);
	fflush(f);
}

static void *worker(void *arg)
{
	run_ctx *cx = arg;
	size_t i, k;

	pthread_mutex_lock(&cx->lock);
	for (;;) {
		mr_job *j = NULL;
		for (i = 0; !cx->stop && i < cx->n && !j; i++)
			if (cx->jobs[i].status == MR_JOB_PENDING && !cx->jobs[i].waiting)
				j = &cx->jobs[i];
		if (!j) {
			if (cx->started == cx->done || cx->stop)
				break;
			pthread_cond_wait(&cx->changed, &cx->lock);
			continue;
		}
		j->status = MR_JOB_RUNNING;
		cx->started++;
		status_line(cx);
		pthread_mutex_unlock(&cx->lock);

		double t0 = now();
		int rc = run_job(cx, j);
		char *msg = rc ? strdup(mr_error_last()) : NULL;

		pthread_mutex_lock(&cx->lock);
		j->seconds = now() - t0;
		cx->done++;
		if (rc) {
			j->status = MR_JOB_FAILED;
			j->error = msg;
			if (!cx->stop) {
				cx->stop = 1;
				cx->first_rc = rc;
				cx->first_failed = (size_t)(j - cx->jobs);
			}
		} else {
			for (k = 0; k < cx->n; k++)
				for (size_t d = 0; d < cx->jobs[k].ndeps; d++)
					if (cx->jobs[k].deps[d] == (size_t)(j - cx->jobs))
						cx->jobs[k].waiting--;
		}
		finished_line(cx, j);
		status_line(cx);
		pthread_cond_broadcast(&cx->changed);
	}
	pthread_cond_broadcast(&cx->changed);
	pthread_mutex_unlock(&cx->lock);
	return NULL;
}

static mr_job *find_job(mr_job *jobs, size_t n, const mr_recipe *r, unsigned t)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (jobs[i].recipe == r && jobs[i].target == t)
			return &jobs[i];
	return NULL;
}

/* Lists the jobs, links each to its dependencies' jobs and computes keys
 * (in dependency order, so a dependency's key is known first). */
static int plan_jobs(const mr_build_opts *o, const mr_sched_opts *so,
		     const mr_recipe_set *set, mr_recipe **order, size_t n,
		     mr_job *jobs, size_t *njobs)
{
	char tool[2][1024] = { "", "" };
	size_t i, m = 0;
	unsigned t;
	int rc = 0;

	for (t = 1; t <= 2; t <<= 1) {
		for (i = 0; i < n && (so->targets & t); i++)
			if (order[i]->targets & t)
				break;
		if (i < n && (so->targets & t) &&
		    (rc = mr_toolchain_identity(t, tool[t - 1], sizeof(tool[0]))))
			return rc;
		if (o->wasm_opt && t == MR_TARGET_WASM32) {
			size_t len = strlen(tool[0]);
			snprintf(tool[0] + len, sizeof(tool[0]) - len, "|wasm-opt -Oz");
		}
	}
	for (i = 0; i < n && !rc; i++) {
		for (t = 1; t <= 2 && !rc; t <<= 1) {
			const cJSON *d = cJSON_GetObjectItemCaseSensitive(mr_recipe_json(order[i]), "depends");
			const char *keys[64];
			mr_job *j;
			if (!(order[i]->targets & so->targets & t))
				continue;
			j = &jobs[m++];
			j->recipe = order[i];
			j->target = t;
			j->deps = calloc(64, sizeof(*j->deps));
			if (!j->deps)
				return mr_error_set(MR_ERROR, "out of memory");
			for (d = d ? d->child : NULL; d && j->ndeps < 64; d = d->next) {
				mr_recipe *dep = mr_recipe_set_find(set, mr_json_str(d, "name"));
				mr_job *dj = dep ? find_job(jobs, m, dep, t) : NULL;
				if (dep && strcmp(dep->kind, "library"))
					continue;
				if (!dj) {
					rc = mr_error_set(MR_EINVALID,
							  "%s needs %s for %s, but %s does not build for %s; add "
							  "\"%s\" to its targets",
							  order[i]->name, dep ? dep->name : "?", mr_target_name(t),
							  dep ? dep->name : "?", mr_target_name(t), mr_target_name(t));
					break;
				}
				keys[j->ndeps] = dj->key;
				j->deps[j->ndeps++] = (size_t)(dj - jobs);
			}
			j->waiting = j->ndeps;
			if (!rc)
				rc = mr_build_key(j->key, o, order[i], t, tool[t - 1], keys, j->ndeps);
		}
	}
	*njobs = m;
	return rc;
}

int mr_build_run(const mr_build_opts *o, const mr_sched_opts *so,
		 const mr_recipe_set *set, mr_recipe **order, size_t n,
		 mr_job **jobs_out, size_t *njobs)
{
	run_ctx cx;
	pthread_t threads[64];
	int i, nthreads = so->jobs < 1 ? 1 : so->jobs > 64 ? 64 : so->jobs, rc;
	size_t k;

	memset(&cx, 0, sizeof(cx));
	*jobs_out = NULL;
	*njobs = 0;
	if (!(cx.jobs = calloc(2 * n + 1, sizeof(*cx.jobs))))
		return mr_error_set(MR_ERROR, "out of memory");
	if ((rc = plan_jobs(o, so, set, order, n, cx.jobs, &cx.n))) {
		mr_jobs_free(cx.jobs, cx.n);
		return rc;
	}
	cx.o = o;
	cx.so = so;
	cx.set = set;
	pthread_mutex_init(&cx.lock, NULL);
	pthread_cond_init(&cx.changed, NULL);
	for (i = 0; i < nthreads; i++)
		if (pthread_create(&threads[i], NULL, worker, &cx))
			break;
	if (i == 0)
		worker(&cx);
	while (i-- > 0)
		pthread_join(threads[i], NULL);
	pthread_mutex_destroy(&cx.lock);
	pthread_cond_destroy(&cx.changed);
	for (k = 0; k < cx.n; k++)
		if (cx.jobs[k].status == MR_JOB_PENDING)
			cx.jobs[k].status = MR_JOB_SKIPPED;
	if (so->progress && so->tty) {
		fputs("\r\033[K", so->progress);
		fflush(so->progress);
	}
	*jobs_out = cx.jobs;
	*njobs = cx.n;
	if (cx.stop)
		return mr_error_set(cx.first_rc, "%s", cx.jobs[cx.first_failed].error ?
						       cx.jobs[cx.first_failed].error : "build failed");
	return 0;
}

void mr_jobs_free(mr_job *jobs, size_t n)
{
	size_t i;

	for (i = 0; jobs && i < n; i++) {
		free(jobs[i].error);
		free(jobs[i].deps);
	}
	free(jobs);
}

/* Appends to `report` every file that differs between two output trees
 * (work/ folders and stamps aside); returns how many differ. */
static int compare(const char *a, const char *b, const char *rel, mr_buf *report)
{
	char *da = rel[0] ? mr_fs_join(a, rel) : strdup(a);
	struct dirent *e;
	DIR *d = da ? opendir(da) : NULL;
	int diff = 0;

	while (d && (e = readdir(d))) {
		char *sub, *pa, *pb, ha[MR_DIGEST_STR_LEN + 1], hb[MR_DIGEST_STR_LEN + 1];
		struct stat st;
		if (e->d_name[0] == '.' || (!rel[0] && !strcmp(e->d_name, "work")))
			continue;
		sub = rel[0] ? mr_fs_join(rel, e->d_name) : strdup(e->d_name);
		pa = sub ? mr_fs_join(a, sub) : NULL;
		pb = sub ? mr_fs_join(b, sub) : NULL;
		if (pa && pb && !lstat(pa, &st)) {
			if (S_ISDIR(st.st_mode)) {
				diff += compare(a, b, sub, report);
			} else if (mr_digest_file(ha, pa, NULL) || mr_digest_file(hb, pb, NULL)) {
				mr_buf_printf(report, "%s: missing from one of the builds\n", sub);
				diff++;
			} else if (strcmp(ha, hb)) {
				mr_buf_printf(report, "%s: %s vs %s\n", sub, ha, hb);
				diff++;
			}
		}
		free(sub);
		free(pa);
		free(pb);
	}
	if (d)
		closedir(d);
	free(da);
	mr_error_clear();
	return diff;
}

int mr_build_compare(const char *a, const char *b, mr_buf *report)
{
	return compare(a, b, "", report);
}
