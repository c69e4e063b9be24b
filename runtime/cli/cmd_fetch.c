#include "common.h"

#include <stdio.h>
#include <string.h>

static const mr_opt opts[] = {
	MOLT_COMMON_OPTS,
	{ "target", 't', "TRIPLE", "target triple (default: this host's; wasm32-wasi for browsers)" },
	{ "locked", 0, NULL, "fetch what a lockfile pins ([FILE], default molt.lock): every entry, or the NAME@VERSION given" },
	{ NULL, 0, NULL, NULL },
};

/* Fetches one lockfile entry; the registry must agree with every digest. */
static int fetch_entry(molt_runtime *rt, const molt_lockfile *lf, const char *file,
		       const molt_lock_entry *e)
{
	char digest[72];
	int rc, yanked = 0;

	if ((rc = molt_fetch_locked(rt, lf, e->name, e->target, digest, &yanked)))
		return mr_cli_fail(PROG, rc);
	if (yanked)
		fprintf(stderr, "%s: warning: %s@%s (%s) is yanked in the registry; fetched because "
				"%s pins it (pick another version and molt lock again when you can)\n",
			PROG, e->name, e->version, e->target, file);
	printf("%s@%s %s verified, manifest %s (locked)\n", e->name, e->version, e->target, digest);
	return 0;
}

/* molt fetch --locked [FILE] [NAME@VERSION...] */
static int run_locked(const mr_cmd *cmd, mr_args *args)
{
	const char *target = mr_args_get(cmd, args, "target"), *file = "molt.lock";
	char name[128], version[64];
	molt_lockfile *lf = NULL;
	molt_runtime *rt = NULL;
	molt_lock_entry e;
	size_t i;
	int a, rc, first = 0, asked, found;

	/* The optional FILE comes first; units are NAME@VERSION. */
	if (args->nrest && !strchr(args->rest[0], '@'))
		file = args->rest[first++];
	asked = args->nrest - first;
	if ((rc = molt_lockfile_open(&lf, file)))
		return mr_cli_fail(PROG, rc);
	if ((rc = open_runtime(&rt, cmd, args, 1)))
		goto done;
	for (a = first; a < args->nrest && !rc; a++) {
		if ((rc = split_ref(args->rest[a], name, sizeof(name), version, sizeof(version))))
			break;
		for (i = 0, found = 0; i < molt_lockfile_count(lf) && !rc; i++) {
			molt_lockfile_get(&e, lf, i);
			if (strcmp(e.name, name) || (target && strcmp(e.target, target)))
				continue;
			if (strcmp(e.version, version)) {
				mr_cli_error(PROG, "%s pins %s@%s, not %s; fetch the locked version, "
						   "or molt lock %s again", file, e.name, e.version,
					     args->rest[a], args->rest[a]);
				rc = 2;
				break;
			}
			found = 1;
			rc = fetch_entry(rt, lf, file, &e);
		}
		if (!rc && !found) {
			mr_cli_error(PROG, "%s has no entry for %s%s%s; pin it first (molt lock %s%s%s)",
				     file, args->rest[a], target ? " for " : "", target ? target : "",
				     args->rest[a], target ? " --target " : "", target ? target : "");
			rc = 2;
		}
	}
	for (i = 0, found = 0; !asked && !rc && i < molt_lockfile_count(lf); i++) {
		molt_lockfile_get(&e, lf, i);
		if (!target || !strcmp(e.target, target)) {
			found = 1;
			rc = fetch_entry(rt, lf, file, &e);
		}
	}
	if (!asked && !rc && !found) {
		mr_cli_error(PROG, "%s pins nothing%s%s", file, target ? " for " : "",
			     target ? target : "");
		rc = 2;
	}
done:
	molt_lockfile_free(lf);
	molt_runtime_free(rt);
	return rc;
}

/* Fetches and verifies exact units into the cache. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *target = mr_args_get(cmd, args, "target");
	char name[128], version[64], digest[72];
	molt_runtime *rt = NULL;
	int i, rc;

	if (mr_args_get(cmd, args, "locked"))
		return run_locked(cmd, args);
	if (!args->nrest) {
		mr_cli_error(PROG, "fetch: name at least one unit, e.g. molt fetch hello@0.1.0");
		return 2;
	}
	if ((rc = open_runtime(&rt, cmd, args, 1)))
		return rc;
	for (i = 0; i < args->nrest && !rc; i++) {
		if ((rc = split_ref(args->rest[i], name, sizeof(name), version, sizeof(version))))
			break;
		if ((rc = molt_fetch(rt, name, version, target, digest)))
			rc = mr_cli_fail(PROG, rc);
		else
			printf("%s@%s %s verified, manifest %s\n", name, version,
			       target ? target : molt_host_triple(), digest);
	}
	molt_runtime_free(rt);
	return rc;
}

const mr_cmd molt_cmd_fetch = {
	"fetch", "fetch exact units (NAME@VERSION) into the cache, verifying every byte",
	"[options] NAME@VERSION... | --locked [FILE] [NAME@VERSION...]", opts, run,
};
