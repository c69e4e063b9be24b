/* The molt CLI's subcommands, one file each (cmd_<name>.c). */
#ifndef MOLT_CLI_CMD_H
#define MOLT_CLI_CMD_H

#include "mr/cli.h"

#define PROG "molt"

extern const mr_cmd molt_cmd_fetch;
extern const mr_cmd molt_cmd_lock;
extern const mr_cmd molt_cmd_call;
extern const mr_cmd molt_cmd_verify;
extern const mr_cmd molt_cmd_serve;

#endif
