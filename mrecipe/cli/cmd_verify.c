#include "cmd.h"

#include "mr/error.h"
#include "mr/registry.h"

#include <stdio.h>

static const mr_opt opts[] = {
	{ "registry", 'r', "DIR", "the registry folder to check" },
	{ "key", 'k', "FILE", "a trusted public key (.pub); repeatable via several -k" },
	{ NULL, 0, NULL, NULL },
};

/* Checks every blob, signature and index of a registry. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *reg = mr_args_get(cmd, args, "registry");
	const char *key = mr_args_get(cmd, args, "key");
	mr_buf report = MR_BUF_INIT;
	mr_pubkey pk;
	int rc;

	if (!reg || !key) {
		mr_cli_error(PROG, "verify needs --registry DIR and --key FILE");
		return 2;
	}
	if ((rc = mr_pubkey_load(&pk, key)))
		return mr_cli_fail(PROG, rc);
	rc = mr_registry_verify(reg, &pk, 1, &report);
	if (rc < 0)
		return mr_cli_fail(PROG, rc);
	if (rc) {
		fprintf(stderr, "%s", (char *)report.data);
		fprintf(stderr, "%s: %d problem%s in %s\n", PROG, rc, rc == 1 ? "" : "s", reg);
	} else {
		printf("%s: ok\n", reg);
	}
	mr_buf_free(&report);
	return rc ? 1 : 0;
}

const mr_cmd mrecipe_cmd_verify = {
	"verify", "check a registry: blob digests, signatures, index and snapshot",
	"--registry DIR --key FILE", opts, run,
};
