#include "cmd.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <stdio.h>
#include <stdlib.h>

static const mr_opt opts[] = {
	{ "repo", 'C', "DIR", "the recipes repository (default: .)" },
	{ NULL, 0, NULL, NULL },
};

/* Lints the named recipe folders, or every folder under recipes/. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	repo_paths p;
	mr_recipe_set set;
	mr_recipe *r;
	int i, rc, bad = 0;

	if ((rc = repo_open(&p, mr_args_get(cmd, args, "repo"), NULL)))
		return mr_cli_fail(PROG, rc);
	if (!args->nrest) {
		rc = mr_recipe_set_load(&set, p.recipes, p.schemas);
		if (!rc) {
			printf("%zu recipes ok\n", set.n);
			mr_recipe_set_free(&set);
		}
		repo_close(&p);
		return rc ? mr_cli_fail(PROG, rc) : 0;
	}
	for (i = 0; i < args->nrest; i++) {
		if ((rc = mr_recipe_load(&r, args->rest[i], p.schemas))) {
			fprintf(stderr, "%s\n", mr_error_last());
			bad = bad ? bad : rc;
			continue;
		}
		printf("%s: %s %s ok\n", args->rest[i], r->name, r->version);
		mr_recipe_free(r);
	}
	repo_close(&p);
	return mr_error_exit_code(bad);
}

const mr_cmd mrecipe_cmd_lint = {
	"lint", "check recipes against schemas/recipe.v1.json; every problem is reported with file:line:col",
	"[options] [RECIPE_DIR...]", opts, run,
};
