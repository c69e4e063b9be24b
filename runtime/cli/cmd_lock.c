#include "common.h"

static const mr_opt opts[] = {
	MOLT_COMMON_OPTS,
	{ NULL, 0, NULL, NULL },
};

static int run(const mr_cmd *cmd, mr_args *args)
{
	(void)cmd;
	(void)args;
	mr_cli_error(PROG, "lock: not implemented yet");
	return 2;
}

const mr_cmd molt_cmd_lock = {
	"lock", "pin exact units (NAME@VERSION) in molt.lock",
	"[options] NAME@VERSION...", opts, run,
};
