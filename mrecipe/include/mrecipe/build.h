/* Building recipes for wasm32 and native, and where sources come from. */
#ifndef MRECIPE_BUILD_H
#define MRECIPE_BUILD_H

#include "mrecipe/recipe.h"

#include <stdio.h>

/* What a build needs to know about its surroundings. */
typedef struct {
	const char *out_dir;      /* outputs: <out>/<target>/<name>-<version>/ */
	const char *repo_root;    /* holds runtime/ (the module SDK) */
	const char *schemas_dir;  /* schema files referenced by recipes */
	const char *source_cache; /* content-addressed source cache */
	int verbose;              /* echo every command */
	int wasm_opt;             /* run wasm-opt -Oz on wasm32 modules */
	FILE *log;                /* download and fetch progress (NULL: quiet) */
} mr_build_opts;

/* How a set of builds is scheduled. */
typedef struct {
	int jobs;                /* how many builds may run at once (>= 1) */
	int force;               /* rebuild even when an output's inputs are unchanged */
	unsigned targets;        /* MR_TARGET_* bits to build */
	const char *build_cache; /* shared input-addressed output cache, or NULL */
	FILE *progress;          /* where progress lines go, or NULL */
	int tty;                 /* `progress` is a terminal: keep a live status line */
} mr_sched_opts;

/* What happened to one recipe x target. */
enum { MR_JOB_PENDING, MR_JOB_RUNNING, MR_JOB_BUILT, MR_JOB_CACHED, MR_JOB_FAILED, MR_JOB_SKIPPED };

/* One recipe x target in a build run. */
typedef struct {
	const mr_recipe *recipe;
	unsigned target;
	int status;                         /* MR_JOB_* */
	double seconds;                     /* wall time spent on it */
	char key[MR_DIGEST_STR_LEN + 1];    /* its input digest */
	char *error;                        /* the failure message (malloc'd) */
	size_t *deps;                       /* indexes of the jobs it needs */
	size_t ndeps;
	size_t waiting;                     /* deps not finished yet */
} mr_job;

/* Builds `order` (dependencies first, as mr_recipe_set_plan returns it) for
 * the targets in `so`, running up to so->jobs builds at once. An output
 * whose input digest is unchanged is reused (from its folder or from the
 * build cache) unless so->force. After the first failure nothing new starts;
 * running builds finish. *jobs (free with mr_jobs_free) says what happened
 * to each. Returns 0, or the first failure's code with its message. */
int mr_build_run(const mr_build_opts *o, const mr_sched_opts *so,
		 const mr_recipe_set *set, mr_recipe **order, size_t n,
		 mr_job **jobs, size_t *njobs);

/* Compares two output folders file by file (their work/ folders aside),
 * appending one line per differing file to `report`; returns the count. */
int mr_build_compare(const char *a, const char *b, mr_buf *report);

/* Frees what mr_build_run returned. */
void mr_jobs_free(mr_job *jobs, size_t n);

/* The name of a job status ("built", "cached", ...). */
const char *mr_job_status_name(int status);

/* Builds one recipe for one target (MR_TARGET_*). Dependencies must have
 * been built into the same out_dir first. Writes the artifact and, for a
 * module, its unsigned manifest.json beside it. On failure the message names
 * the recipe, the target, the log file and ends with the log's tail. */
int mr_build(const mr_build_opts *o, const mr_recipe *r, unsigned target,
	     const mr_recipe_set *set);

/* Describes the toolchain for `target` (compiler and archiver paths and
 * version) into `out`; MR_EENV naming what to install when it is missing. */
int mr_toolchain_identity(unsigned target, char *out, size_t n);

/* The input digest of one recipe x target: recipe, sources, patches, the
 * module SDK, schemas, dependency keys (`dep_keys`, in depends order),
 * toolchain identity and mrecipe's flag set. Same inputs, same key. */
int mr_build_key(char key[MR_DIGEST_STR_LEN + 1], const mr_build_opts *o,
		 const mr_recipe *r, unsigned target, const char *toolchain,
		 const char *const *dep_keys, size_t ndeps);

/* The folder a recipe's outputs go to for `target` (caller frees). */
char *mr_build_outdir(const mr_build_opts *o, const mr_recipe *r,
		      unsigned target);

/* "wasm32" or "native". */
const char *mr_target_name(unsigned target);

/* The concrete triple: "wasm32-wasi", or the host's, e.g. "x86_64-linux-gnu". */
const char *mr_target_triple(unsigned target);

/* Makes the recipe's source tree available, returning its folder (caller
 * frees) and the source digest. `path` sources are used in place; `url`
 * sources come from the cache by sha256 (downloaded into it when missing)
 * and are unpacked under `work_dir`. */
int mr_source_prepare(char **src_dir, char digest[MR_DIGEST_STR_LEN + 1],
		      const mr_build_opts *o, const mr_recipe *r,
		      const char *work_dir);

/* Unpacks an archive into `dest`, dropping `strip` leading path components,
 * refusing absolute paths, "..", links that leave `dest`, and device files. */
int mr_archive_extract(const char *archive, const char *dest, int strip);

/* The default source cache: $MRECIPE_SOURCE_CACHE, else
 * $XDG_CACHE_HOME/mrecipe/sources, else ~/.cache/mrecipe/sources. */
char *mr_source_cache_default(void);

#endif
