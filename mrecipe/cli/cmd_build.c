#include "cmd.h"

#include "mr/error.h"
#include "mrecipe/build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const mr_opt opts[] = {
	{ "repo", 'C', "DIR", "the recipes repository (default: .)" },
	{ "all", 'a', NULL, "build every recipe (the default when none is named)" },
	{ "out", 'o', "DIR", "output folder (default: <repo>/build/out)" },
	{ "target", 't', "TARGET", "only this target: wasm32 or native" },
	{ "verbose", 'v', NULL, "echo every compiler command" },
	{ NULL, 0, NULL, NULL },
};

/* Builds the named recipes and what they depend on, dependencies first. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *only = mr_args_get(cmd, args, "target");
	mr_build_opts o = { 0 };
	mr_recipe_set set = { 0 };
	mr_recipe **order = NULL;
	char *cache = mr_source_cache_default();
	unsigned mask = MR_TARGET_WASM32 | MR_TARGET_NATIVE, t;
	size_t n = 0, i, done = 0, total = 0;
	repo_paths p;
	int rc;

	if (only) {
		if (!strcmp(only, "wasm32"))
			mask = MR_TARGET_WASM32;
		else if (!strcmp(only, "native"))
			mask = MR_TARGET_NATIVE;
		else {
			mr_cli_error(PROG, "--target: expected wasm32 or native, found '%s'", only);
			free(cache);
			return 2;
		}
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
	for (i = 0; i < n; i++)
		for (t = 1; t <= 2; t <<= 1)
			total += !!(order[i]->targets & mask & t);
	for (i = 0; i < n && !rc; i++) {
		for (t = 1; t <= 2 && !rc; t <<= 1) {
			if (!(order[i]->targets & mask & t))
				continue;
			printf("[%zu/%zu] %s %s (%s)\n", ++done, total, order[i]->name,
			       order[i]->version, mr_target_name(t));
			fflush(stdout);
			if ((rc = mr_build(&o, order[i], t, &set)))
				rc = mr_cli_fail(PROG, rc);
		}
	}
	if (!rc)
		printf("built %zu of %zu into %s\n", done, total, p.out);
done:
	free(order);
	mr_recipe_set_free(&set);
	repo_close(&p);
	free(cache);
	return rc;
}

const mr_cmd mrecipe_cmd_build = {
	"build", "build recipes for wasm32 and native, dependencies first",
	"[options] [NAME...]", opts, run,
};
