#define _GNU_SOURCE
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_TARGETS 16

static const mr_opt opts[] = {
	MOLT_COMMON_OPTS,
	{ "target", 't', "TRIPLE[,TRIPLE]", "targets to pin, e.g. wasm32-wasi,x86_64-linux-gnu (default: this host's)" },
	{ "output", 'o', "FILE", "the lockfile to write (default: molt.lock)" },
	{ "add", 0, NULL, "keep the lockfile's other entries (default: it pins exactly the units named)" },
	{ NULL, 0, NULL, NULL },
};

/* Splits --target at ',' into `t` (pointing into *copy); 2 when malformed. */
static int targets(const char *list, const char **t, size_t *n, char **copy)
{
	char *save = NULL, *k;

	*n = 0;
	if (!list) {
		t[(*n)++] = molt_host_triple();
		return 0;
	}
	if (!(*copy = strdup(list)))
		return 3;
	for (k = strtok_r(*copy, ",", &save); k; k = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_TARGETS) {
			mr_cli_error(PROG, "--target: at most %d targets", MAX_TARGETS);
			return 2;
		}
		t[(*n)++] = k;
	}
	if (!*n) {
		mr_cli_error(PROG, "--target: expected TRIPLE[,TRIPLE], e.g. wasm32-wasi,%s, found '%s'",
			     molt_host_triple(), list);
		return 2;
	}
	return 0;
}

/* A lockfile pins one version per name: the same name twice is a usage error. */
static int one_version_each(const mr_args *args)
{
	char n1[128], v1[64], n2[128], v2[64];
	int i, j, rc;

	for (i = 0; i < args->nrest; i++) {
		if ((rc = split_ref(args->rest[i], n1, sizeof(n1), v1, sizeof(v1))))
			return rc;
		for (j = 0; j < i; j++)
			if (!split_ref(args->rest[j], n2, sizeof(n2), v2, sizeof(v2)) && !strcmp(n1, n2)) {
				mr_cli_error(PROG, "lock: %s and %s: a lockfile pins one version of each "
						   "unit; name one", args->rest[j], args->rest[i]);
				return 2;
			}
	}
	return 0;
}

/* Fetches and verifies each unit for each target and writes the lockfile. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *path = mr_args_get(cmd, args, "output"), *t[MAX_TARGETS];
	char name[128], version[64], *tcopy = NULL;
	molt_lockfile *lf = NULL;
	molt_runtime *rt = NULL;
	molt_lock_entry e;
	size_t nt = 0, i, k;
	int rc;

	if (!path)
		path = "molt.lock";
	if (!args->nrest) {
		mr_cli_error(PROG, "lock: name at least one unit, e.g. molt lock hello@0.1.0 "
				   "--target wasm32-wasi,%s", molt_host_triple());
		return 2;
	}
	if ((rc = one_version_each(args)) ||
	    (rc = targets(mr_args_get(cmd, args, "target"), t, &nt, &tcopy)))
		goto done;
	if (mr_args_get(cmd, args, "add") && access(path, F_OK) == 0)
		rc = molt_lockfile_open(&lf, path);
	else
		rc = molt_lockfile_new(&lf, path);
	if (rc) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	if ((rc = open_runtime(&rt, cmd, args, 1)))
		goto done;
	for (i = 0; i < (size_t)args->nrest && !rc; i++) {
		split_ref(args->rest[i], name, sizeof(name), version, sizeof(version));
		for (k = 0; k < nt && !rc; k++) {
			if ((rc = molt_lockfile_add(lf, rt, name, version, t[k])) ||
			    (rc = molt_lockfile_entry(&e, lf, name, t[k])))
				rc = mr_cli_fail(PROG, rc);
			else
				printf("locked %s@%s %s manifest %s keys %s\n", e.name, e.version,
				       e.target, e.manifest_digest, e.keys);
		}
	}
	if (!rc && (rc = molt_lockfile_write(lf, path)))
		rc = mr_cli_fail(PROG, rc);
	else if (!rc)
		printf("wrote %s: %zu entries\n", path, molt_lockfile_count(lf));
done:
	molt_lockfile_free(lf);
	molt_runtime_free(rt);
	free(tcopy);
	return rc;
}

const mr_cmd molt_cmd_lock = {
	"lock", "pin exact units (NAME@VERSION) in molt.lock",
	"[options] NAME@VERSION...", opts, run,
};
