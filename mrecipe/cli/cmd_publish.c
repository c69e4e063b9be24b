#define _GNU_SOURCE
#include "cmd.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/registry.h"
#include "mrecipe/build.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const mr_opt opts[] = {
	{ "repo", 'C', "DIR", "the recipes repository (default: .)" },
	{ "registry", 'r', "DIR", "the registry folder to publish into (created if missing)" },
	{ "out", 'o', "DIR", "where 'mrecipe build' put its outputs (default: <repo>/build/out)" },
	{ "secret-key", 's', "FILE[:FILE]", "signing key(s), several joined by ':' (or $MRECIPE_SECRET_KEY: key texts separated by a blank line)" },
	{ "passphrase-file", 0, "FILE", "the key's passphrase (else $MRECIPE_PASSPHRASE)" },
	{ "expires-days", 0, "N", "days until the new snapshot expires (default: 365)" },
	{ "all", 'a', NULL, "publish every module recipe (the default when none is named)" },
	{ NULL, 0, NULL, NULL },
};

/* Signs built modules and puts them into the registry. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *reg = mr_args_get(cmd, args, "registry");
	const char *days_s = mr_args_get(cmd, args, "expires-days");
	mr_build_opts o = { 0 };
	mr_recipe_set set = { 0 };
	mr_recipe **order = NULL;
	mr_seckey *keys[MR_REGISTRY_MAX_KEYS];
	size_t nkeys = 0;
	size_t n = 0, i;
	long days = 365;
	repo_paths p;
	unsigned t;
	int rc, count = 0;

	if (!reg) {
		mr_cli_error(PROG, "publish needs --registry DIR");
		return 2;
	}
	if (days_s) {
		char *end;
		days = strtol(days_s, &end, 10);
		if (*end || days < 1 || days > 3650) {
			mr_cli_error(PROG, "--expires-days: expected 1 to 3650, found '%s'", days_s);
			return 2;
		}
	}
	if ((rc = repo_open(&p, mr_args_get(cmd, args, "repo"), mr_args_get(cmd, args, "out"))))
		return mr_cli_fail(PROG, rc);
	if ((rc = load_signing_keys(keys, &nkeys, mr_args_get(cmd, args, "secret-key"),
				    mr_args_get(cmd, args, "passphrase-file")))) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	if ((rc = plan_recipes(&set, &order, &n, &p, args->rest,
			       mr_args_get(cmd, args, "all") ? 0 : args->nrest)))
		goto done;
	o.out_dir = p.out;
	for (i = 0; i < n && !rc; i++) {
		if (strcmp(order[i]->kind, "module"))
			continue;
		for (t = 1; t <= 2 && !rc; t <<= 1) {
			char *dir, *manifest = NULL, *artifact = NULL;
			int same = 0;
			if (!(order[i]->targets & t))
				continue;
			dir = mr_build_outdir(&o, order[i], t);
			manifest = dir ? mr_fs_join(dir, "manifest.json") : NULL;
			if (dir && (t == MR_TARGET_WASM32
					    ? asprintf(&artifact, "%s/%s.wasm", dir, order[i]->name)
					    : asprintf(&artifact, "%s/lib%s.so", dir, order[i]->name)) < 0)
				artifact = NULL;
			if (!artifact || !manifest) {
				rc = mr_cli_fail(PROG, mr_error_set(MR_ERROR, "out of memory"));
			} else if (!mr_fs_exists(manifest)) {
				mr_cli_error(PROG, "%s %s for %s is not built (%s is missing); "
						   "run 'mrecipe build %s' first",
					     order[i]->name, order[i]->version, mr_target_name(t),
					     manifest, order[i]->name);
				rc = 2;
			} else if ((rc = mr_registry_publish(reg, keys, nkeys, manifest, artifact, p.schemas,
							     (int)days, &same))) {
				mr_error_wrap(rc, "publishing %s %s (%s)", order[i]->name,
					      order[i]->version, mr_target_name(t));
				rc = mr_cli_fail(PROG, rc);
			} else {
				printf("%s %s@%s (%s)\n", same ? "unchanged" : "published",
				       order[i]->name, order[i]->version, mr_target_triple(t));
				count++;
			}
			free(dir);
			free(manifest);
			free(artifact);
		}
	}
	if (!rc)
		printf("%d units in %s\n", count, reg);
done:
	while (nkeys)
		mr_seckey_free(keys[--nkeys]);
	free(order);
	mr_recipe_set_free(&set);
	repo_close(&p);
	return rc;
}

const mr_cmd mrecipe_cmd_publish = {
	"publish", "sign built modules and publish them into a registry folder",
	"[options] --registry DIR [NAME...]", opts, run,
};
