/* Building recipes for wasm32 and native, and where sources come from. */
#ifndef MRECIPE_BUILD_H
#define MRECIPE_BUILD_H

#include "mrecipe/recipe.h"

/* What a build needs to know about its surroundings. */
typedef struct {
	const char *out_dir;      /* outputs: <out>/<target>/<name>-<version>/ */
	const char *repo_root;    /* holds runtime/ (the module SDK) */
	const char *schemas_dir;  /* schema files referenced by recipes */
	const char *source_cache; /* content-addressed source cache */
	int verbose;              /* echo every command */
} mr_build_opts;

/* Builds one recipe for one target (MR_TARGET_*). Dependencies must have
 * been built into the same out_dir first. Writes the artifact and, for a
 * module, its unsigned manifest.json beside it. On failure the message names
 * the recipe, the target, the log file and ends with the log's tail. */
int mr_build(const mr_build_opts *o, const mr_recipe *r, unsigned target,
	     const mr_recipe_set *set);

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
