#define _GNU_SOURCE
#include "cmd.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mrecipe/build.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const mr_opt opts[] = {
	{ "repo", 'C', "DIR", "the recipes repository (default: .)" },
	{ "all", 'a', NULL, "build every recipe (the default when none is named)" },
	{ "out", 'o', "DIR", "output folder (default: <repo>/build/out)" },
	{ "target", 't', "TARGET", "only this target: wasm32 or native" },
	{ "jobs", 'j', "N", "run N builds at once (default: the number of cores)" },
	{ "force", 'f', NULL, "rebuild even when inputs are unchanged" },
	{ "check", 0, NULL, "rebuild in a fresh folder and compare: proves the outputs are reproducible" },
	{ "cache", 0, "DIR", "shared output cache (default: $MRECIPE_BUILD_CACHE, else none)" },
	{ "wasm-opt", 0, NULL, "run wasm-opt -Oz on wasm32 modules (binaryen)" },
	{ "json", 0, NULL, "print a JSON summary on stdout (progress goes to stderr)" },
	{ "verbose", 'v', NULL, "echo every compiler command" },
	{ NULL, 0, NULL, NULL },
};

static void print_json(const mr_job *jobs, size_t n, const mr_build_opts *o, int rc)
{
	cJSON *root = cJSON_CreateObject(), *list;
	char *text;
	size_t i;

	cJSON_AddBoolToObject(root, "ok", rc == 0);
	list = cJSON_AddArrayToObject(root, "jobs");
	for (i = 0; i < n; i++) {
		cJSON *j = cJSON_CreateObject();
		char *dir = mr_build_outdir(o, jobs[i].recipe, jobs[i].target);
		cJSON_AddStringToObject(j, "name", jobs[i].recipe->name);
		cJSON_AddStringToObject(j, "version", jobs[i].recipe->version);
		cJSON_AddStringToObject(j, "target", mr_target_name(jobs[i].target));
		cJSON_AddStringToObject(j, "status", mr_job_status_name(jobs[i].status));
		cJSON_AddNumberToObject(j, "seconds", (double)(long)(jobs[i].seconds * 1000) / 1000);
		cJSON_AddStringToObject(j, "key", jobs[i].key);
		cJSON_AddStringToObject(j, "output", dir ? dir : "");
		if (jobs[i].error)
			cJSON_AddStringToObject(j, "error", jobs[i].error);
		cJSON_AddItemToArray(list, j);
		free(dir);
	}
	if ((text = cJSON_Print(root)))
		printf("%s\n", text);
	free(text);
	cJSON_Delete(root);
}

static int parse_jobs(const char *s, int *out)
{
	char *end;
	long n;

	if (!s) {
		long cores = sysconf(_SC_NPROCESSORS_ONLN);
		*out = cores > 0 ? (int)cores : 1;
		return 0;
	}
	n = strtol(s, &end, 10);
	if (*end || n < 1 || n > 64) {
		mr_cli_error(PROG, "--jobs: expected a number from 1 to 64, found '%s'", s);
		return 2;
	}
	*out = (int)n;
	return 0;
}

/* Rebuilds everything in a fresh folder and compares it with o->out_dir. */
static int check(mr_build_opts *o, mr_sched_opts *so, const mr_recipe_set *set,
		 mr_recipe **order, size_t n)
{
	char tmpl[] = "/tmp/mrecipe-check-XXXXXX";
	const char *first = o->out_dir;
	mr_buf report = MR_BUF_INIT;
	mr_job *jobs = NULL;
	size_t njobs = 0;
	int rc, diff;

	if (!mkdtemp(tmpl))
		return mr_cli_fail(PROG, mr_error_sys(MR_EIO, "creating a folder for --check"));
	o->out_dir = tmpl;
	so->force = 1;
	so->build_cache = NULL;
	fprintf(stderr, "mrecipe: --check: rebuilding in %s\n", tmpl);
	rc = mr_build_run(o, so, set, order, n, &jobs, &njobs);
	mr_jobs_free(jobs, njobs);
	o->out_dir = first;
	if (rc) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	if ((diff = mr_build_compare(first, tmpl, &report))) {
		fprintf(stderr, "%s", (char *)report.data);
		mr_cli_error(PROG, "not reproducible: %d file%s differ between %s and %s; "
				   "look for timestamps, absolute paths or unsorted inputs",
			     diff, diff == 1 ? "" : "s", first, tmpl);
		rc = 1;
		goto done;
	}
	printf("reproducible: every output of %s equals a fresh rebuild\n", first);
	mr_fs_rm_rf(tmpl);
done:
	mr_buf_free(&report);
	return rc;
}

/* Builds the named recipes and what they depend on, dependencies first. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *only = mr_args_get(cmd, args, "target");
	int json = !!mr_args_get(cmd, args, "json");
	mr_build_opts o = { 0 };
	mr_sched_opts so = { 0 };
	mr_recipe_set set = { 0 };
	mr_recipe **order = NULL;
	mr_job *jobs = NULL;
	char *cache = mr_source_cache_default();
	size_t n = 0, njobs = 0, i, built = 0, cached = 0;
	repo_paths p;
	int rc;

	so.targets = MR_TARGET_WASM32 | MR_TARGET_NATIVE;
	if (only && !strcmp(only, "wasm32"))
		so.targets = MR_TARGET_WASM32;
	else if (only && !strcmp(only, "native"))
		so.targets = MR_TARGET_NATIVE;
	else if (only) {
		mr_cli_error(PROG, "--target: expected wasm32 or native, found '%s'", only);
		free(cache);
		return 2;
	}
	if ((rc = parse_jobs(mr_args_get(cmd, args, "jobs"), &so.jobs))) {
		free(cache);
		return rc;
	}
	if ((rc = repo_open(&p, mr_args_get(cmd, args, "repo"), mr_args_get(cmd, args, "out")))) {
		free(cache);
		return mr_cli_fail(PROG, rc);
	}
	if ((rc = plan_recipes(&set, &order, &n, &p, args->rest,
			       mr_args_get(cmd, args, "all") ? 0 : args->nrest)))
		goto done;
	o.out_dir = p.out;
	o.repo_root = p.root;
	o.schemas_dir = p.schemas;
	o.source_cache = cache;
	o.verbose = !!mr_args_get(cmd, args, "verbose");
	o.wasm_opt = !!mr_args_get(cmd, args, "wasm-opt");
	o.log = stderr;
	so.force = !!mr_args_get(cmd, args, "force");
	so.build_cache = mr_args_get(cmd, args, "cache");
	if (!so.build_cache && getenv("MRECIPE_BUILD_CACHE") && *getenv("MRECIPE_BUILD_CACHE"))
		so.build_cache = getenv("MRECIPE_BUILD_CACHE");
	if (so.build_cache && (rc = mr_fs_mkdir_p(so.build_cache))) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	so.progress = json ? stderr : stdout;
	so.tty = isatty(fileno(so.progress));
	rc = mr_build_run(&o, &so, &set, order, n, &jobs, &njobs);
	for (i = 0; i < njobs; i++) {
		built += jobs[i].status == MR_JOB_BUILT;
		cached += jobs[i].status == MR_JOB_CACHED;
	}
	if (json)
		print_json(jobs, njobs, &o, rc);
	if (rc) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	if (!json)
		printf("%zu outputs in %s: %zu built, %zu up to date\n", njobs, p.out, built, cached);
	if (mr_args_get(cmd, args, "check"))
		rc = check(&o, &so, &set, order, n);
done:
	mr_jobs_free(jobs, njobs);
	free(order);
	mr_recipe_set_free(&set);
	repo_close(&p);
	free(cache);
	return rc;
}

const mr_cmd mrecipe_cmd_build = {
	"build", "build recipes for wasm32 and native, dependencies first, reusing unchanged outputs",
	"[options] [NAME...]", opts, run,
};
