#define _GNU_SOURCE
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const mr_opt opts[] = {
	MOLT_COMMON_OPTS,
	{ "target", 't', "TRIPLE", "target triple (default: this host's)" },
	{ "bundle", 'b', "FILE", "verify a unit bundle (mrecipe pack) offline, without a registry" },
	{ "locked", 0, NULL, "verify what a lockfile pins ([FILE], default molt.lock): every entry, or the NAME@VERSION given" },
	{ NULL, 0, NULL, NULL },
};


/* Checks a bundle file offline (molt_bundle_verify) and says what it holds. */
static int verify_bundle(const mr_cmd *cmd, const mr_args *args, const char *file)
{
	const char *paths[MOLT_CLI_MAX_KEYS];
	molt_bundle_info info;
	char *copy = NULL;
	size_t n;
	int rc;

	if (args->nrest) {
		mr_cli_error(PROG, "verify --bundle FILE takes no NAME@VERSION: the bundle names its unit");
		return 2;
	}
	if ((rc = bundle_keys(cmd, args, paths, &n, &copy)))
		return rc;
	if ((rc = molt_bundle_verify(&info, file, paths, n)))
		rc = mr_cli_fail(PROG, rc);
	else
		printf("ok: %s@%s for %s in %s, manifest %s, signature, sizes and digests verified\n",
		       info.name, info.version, info.target, file, info.manifest_digest);
	free(copy);
	return rc;
}

/* Checks a unit end to end (snapshot, index, signature, digests) and says so. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *target = mr_args_get(cmd, args, "target");
	char name[128], version[64], digest[72];
	molt_runtime *rt = NULL;
	int rc;

	if (mr_args_get(cmd, args, "bundle"))
		return verify_bundle(cmd, args, mr_args_get(cmd, args, "bundle"));
	if (mr_args_get(cmd, args, "locked"))
		return fetch_locked(cmd, args);
	if (args->nrest != 1) {
		mr_cli_error(PROG, "verify: expected one NAME@VERSION");
		return 2;
	}
	if ((rc = split_ref(args->rest[0], name, sizeof(name), version, sizeof(version))) ||
	    (rc = open_runtime(&rt, cmd, args, 0)))
		return rc;
	if ((rc = molt_fetch(rt, name, version, target, digest)))
		rc = mr_cli_fail(PROG, rc);
	else
		printf("ok: %s@%s for %s, manifest %s, signature, size and digests verified\n",
		       name, version, target ? target : molt_host_triple(), digest);
	molt_runtime_free(rt);
	return rc;
}

const mr_cmd molt_cmd_verify = {
	"verify", "verify a unit's signature and digests against the trusted keys",
	"[options] NAME@VERSION | --locked [FILE] [NAME@VERSION...] | --bundle FILE -k KEY", opts, run,
};
