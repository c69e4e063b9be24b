#include "cmd.h"

#include <curl/curl.h>
#include <stddef.h>

static const mr_cmd *const table[] = {
	&mrecipe_cmd_lint,    &mrecipe_cmd_build,  &mrecipe_cmd_test,
	&mrecipe_cmd_keygen,  &mrecipe_cmd_publish, &mrecipe_cmd_verify,
	&mrecipe_cmd_registry, &mrecipe_cmd_schema,  &mrecipe_cmd_pack,
};

int main(int argc, char **argv)
{
	mr_cmd cmds[sizeof(table) / sizeof(table[0]) + 1];
	size_t i;
	int rc;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		cmds[i] = *table[i];
	cmds[i] = (mr_cmd){ 0 };
	curl_global_init(CURL_GLOBAL_DEFAULT);
	rc = mr_cli_main(PROG,
			 "mrecipe: lint and build Molt recipes for wasm32 and native, "
			 "then sign and publish them.",
			 cmds, argc, argv);
	curl_global_cleanup();
	return rc;
}
