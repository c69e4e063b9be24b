/* Shared command-line plumbing: one option table drives parsing and --help. */
#ifndef MR_CLI_H
#define MR_CLI_H

#include <stdio.h>

/* One option of a subcommand. */
typedef struct {
	const char *name;  /* long name without "--" */
	char short_name;   /* 0 if none */
	const char *arg;   /* argument placeholder ("DIR"), NULL for a flag */
	const char *help;  /* one line for --help */
} mr_opt;

/* Parsed options: one value per table entry, in table order. An option
 * given twice is a usage error, unless its placeholder says it takes a
 * list ("T[,T]", "FILE[:FILE]"): then the values are joined with that
 * separator, so `--target a --target b` reads as `--target a,b`. */
typedef struct {
	const char *value[32]; /* the argument, "1" for a set flag, or NULL */
	char **rest;           /* positional arguments */
	int nrest;             /* how many */
	char joined[4096];     /* storage for joined list values */
	size_t used;
} mr_args;

/* A subcommand: name, summary, usage tail, options, and its entry point. */
typedef struct mr_cmd {
	const char *name;
	const char *summary;
	const char *usage; /* e.g. "[options] NAME@VERSION" */
	const mr_opt *opts; /* terminated by an entry with name NULL */
	int (*run)(const struct mr_cmd *cmd, mr_args *args);
} mr_cmd;

/* Parses argv for `cmd`. Returns 0, 2 on a usage error (already reported on
 * stderr), or -1 when --help was printed (the caller exits 0). */
int mr_cli_parse(const char *prog, const mr_cmd *cmd, int argc, char **argv,
		 mr_args *out);

/* Prints `cmd`'s usage and options. */
void mr_cli_help(FILE *f, const char *prog, const mr_cmd *cmd);

/* Runs the tool: dispatches argv[1] over `cmds` (terminated by name NULL),
 * handles --help, --version and "help CMD". Returns the exit status. */
int mr_cli_main(const char *prog, const char *summary, const mr_cmd *cmds,
		int argc, char **argv);

/* Looks up an option's value by long name (NULL if absent). */
const char *mr_args_get(const mr_cmd *cmd, const mr_args *args,
			const char *name);

/* Prints "prog: message" on stderr. */
void mr_cli_error(const char *prog, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prints the last core error as "prog: message" and maps `code` to an exit
 * status (STYLE.md rule 7). */
int mr_cli_fail(const char *prog, int code);

#endif
