#include "mr/cli.h"

#include "mr/error.h"

#include <getopt.h>
#include <stdarg.h>
#include <string.h>

#define MAX_OPTS 31

static int count_opts(const mr_opt *opts)
{
	int n = 0;

	while (opts && opts[n].name)
		n++;
	return n;
}

void mr_cli_help(FILE *f, const char *prog, const mr_cmd *cmd)
{
	int i, n = count_opts(cmd->opts);

	fprintf(f, "usage: %s %s %s\n\n%s\n", prog, cmd->name,
		cmd->usage ? cmd->usage : "[options]", cmd->summary);
	if (n)
		fprintf(f, "\noptions:\n");
	for (i = 0; i < n; i++) {
		const mr_opt *o = &cmd->opts[i];
		char left[64];

		snprintf(left, sizeof(left), "%s%c%s--%s%s%s",
			 o->short_name ? "-" : "", o->short_name ? o->short_name : ' ',
			 o->short_name ? ", " : "  ", o->name, o->arg ? " " : "",
			 o->arg ? o->arg : "");
		fprintf(f, "  %-28s %s\n", o->short_name ? left : left + 1, o->help);
	}
	fprintf(f, "  %-28s %s\n", "-h, --help", "show this help");
}

void mr_cli_error(const char *prog, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int mr_cli_fail(const char *prog, int code)
{
	const char *msg = mr_error_last();

	mr_cli_error(prog, "%s", *msg ? msg : "failed");
	return mr_error_exit_code(code);
}

/* A second value for option i: joined to the first when the placeholder
 * names a list separator ("[,", "[:"), else a usage error. */
static int join(const char *prog, const mr_cmd *cmd, const mr_opt *o, mr_args *out, int i,
		const char *v)
{
	const char *sep = o->arg ? strstr(o->arg, "[") : NULL;
	size_t room = sizeof(out->joined) - out->used;
	char *dst = out->joined + out->used;
	int n;

	if (!sep || (sep[1] != ',' && sep[1] != ':')) {
		mr_cli_error(prog, "%s %s: --%s given twice ('%s', then '%s'); give it once",
			     prog, cmd->name, o->name, o->arg ? out->value[i] : "set",
			     o->arg ? v : "set");
		return 2;
	}
	n = snprintf(dst, room, "%s%c%s", out->value[i], sep[1], v);
	if (n < 0 || (size_t)n >= room) {
		mr_cli_error(prog, "%s %s: too many values for --%s", prog, cmd->name, o->name);
		return 2;
	}
	out->value[i] = dst;
	out->used += (size_t)n + 1;
	return 0;
}

int mr_cli_parse(const char *prog, const mr_cmd *cmd, int argc, char **argv,
		 mr_args *out)
{
	struct option lo[MAX_OPTS + 2];
	char so[3 * MAX_OPTS + 4], *s = so;
	int i, n = count_opts(cmd->opts), c, idx;

	memset(out, 0, sizeof(*out));
	if (n > MAX_OPTS)
		n = MAX_OPTS;
	*s++ = ':';
	for (i = 0; i < n; i++) {
		const mr_opt *o = &cmd->opts[i];
		lo[i] = (struct option){ o->name,
					 o->arg ? required_argument : no_argument,
					 NULL, 256 + i };
		if (o->short_name) {
			*s++ = o->short_name;
			if (o->arg)
				*s++ = ':';
		}
	}
	lo[n] = (struct option){ "help", no_argument, NULL, 'h' };
	lo[n + 1] = (struct option){ NULL, 0, NULL, 0 };
	*s++ = 'h';
	*s = '\0';

	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, so, lo, &idx)) != -1) {
		if (c == 'h') {
			mr_cli_help(stdout, prog, cmd);
			return -1;
		}
		if (c == '?' || c == ':') {
			const char *what = argv[optind - 1];
			mr_cli_error(prog, "%s %s: %s '%s'; see '%s %s --help'",
				     prog, cmd->name,
				     c == '?' ? "unknown option" : "missing argument for",
				     what, prog, cmd->name);
			return 2;
		}
		if (c >= 256) {
			i = c - 256;
		} else {
			for (i = 0; i < n && cmd->opts[i].short_name != c; i++)
				;
		}
		if (out->value[i] && join(prog, cmd, &cmd->opts[i], out, i, optarg))
			return 2;
		if (!out->value[i])
			out->value[i] = cmd->opts[i].arg ? optarg : "1";
	}
	out->rest = argv + optind;
	out->nrest = argc - optind;
	return 0;
}

const char *mr_args_get(const mr_cmd *cmd, const mr_args *args,
			const char *name)
{
	int i, n = count_opts(cmd->opts);

	for (i = 0; i < n && i < MAX_OPTS; i++)
		if (!strcmp(cmd->opts[i].name, name))
			return args->value[i];
	return NULL;
}

static void usage(FILE *f, const char *prog, const char *summary,
		  const mr_cmd *cmds)
{
	fprintf(f, "usage: %s COMMAND [options] [args]\n\n%s\n\ncommands:\n",
		prog, summary);
	for (; cmds->name; cmds++)
		fprintf(f, "  %-10s %s\n", cmds->name, cmds->summary);
	fprintf(f, "\nRun '%s COMMAND --help' for a command's options.\n", prog);
}

static const mr_cmd *find(const mr_cmd *cmds, const char *name)
{
	for (; cmds->name; cmds++)
		if (!strcmp(cmds->name, name))
			return cmds;
	return NULL;
}

int mr_cli_main(const char *prog, const char *summary, const mr_cmd *cmds,
		int argc, char **argv)
{
	const mr_cmd *cmd;
	mr_args args;
	int rc;

	if (argc < 2) {
		usage(stderr, prog, summary, cmds);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout, prog, summary, cmds);
		return 0;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("%s %s\n", prog, MOLT_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "help")) {
		if (argc < 3) {
			usage(stdout, prog, summary, cmds);
			return 0;
		}
		if (!(cmd = find(cmds, argv[2]))) {
			mr_cli_error(prog, "no command '%s'; run '%s --help'",
				     argv[2], prog);
			return 2;
		}
		mr_cli_help(stdout, prog, cmd);
		return 0;
	}
	if (!(cmd = find(cmds, argv[1]))) {
		mr_cli_error(prog, "unknown command '%s'; run '%s --help' for the list",
			     argv[1], prog);
		return 2;
	}
	rc = mr_cli_parse(prog, cmd, argc - 1, argv + 1, &args);
	if (rc)
		return rc < 0 ? 0 : rc;
	return cmd->run(cmd, &args);
}
