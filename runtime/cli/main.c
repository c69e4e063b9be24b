#include "cmd.h"

#include <stddef.h>

static const mr_cmd *const table[] = {
	&molt_cmd_fetch, &molt_cmd_lock, &molt_cmd_call, &molt_cmd_verify, &molt_cmd_serve,
};

int main(int argc, char **argv)
{
	mr_cmd cmds[sizeof(table) / sizeof(table[0]) + 1];
	size_t i;

	for (i = 0; i < sizeof(table) / sizeof(table[0]); i++)
		cmds[i] = *table[i];
	cmds[i] = (mr_cmd){ 0 };
	return mr_cli_main(PROG,
			   "molt: fetch, verify and explicitly load signed Molt units.",
			   cmds, argc, argv);
}
