#include "common.h"

#include <stdio.h>
#include <string.h>

static const mr_opt opts[] = {
	MOLT_COMMON_OPTS,
	{ "target", 't', "TRIPLE", "target triple (default: this host's; wasm32-wasi for browsers)" },
	{ "locked", 0, NULL, "fetch what a lockfile pins ([FILE], default molt.lock): every entry, or the NAME@VERSION given" },
	{ NULL, 0, NULL, NULL },
};

/* Fetches and verifies exact units into the cache. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *target = mr_args_get(cmd, args, "target");
	char name[128], version[64], digest[72];
	molt_runtime *rt = NULL;
	int i, rc;

	if (mr_args_get(cmd, args, "locked"))
		return fetch_locked(cmd, args);
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
