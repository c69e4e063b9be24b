#define _GNU_SOURCE
#include "cmd.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <stdio.h>
#include <termios.h>

static char *absolute(const char *path)
{
	char buf[PATH_MAX];

	if (realpath(path, buf))
		return strdup(buf);
	return NULL;
}

int repo_open(repo_paths *p, const char *repo, const char *out)
{
	memset(p, 0, sizeof(*p));
	if (!(p->root = absolute(repo ? repo : ".")))
		return mr_error_sys(MR_ENOTFOUND, "repository folder %s", repo ? repo : ".");
	p->recipes = mr_fs_join(p->root, "recipes");
	p->schemas = mr_fs_join(p->root, "schemas");
	if (out) {
		if (mr_fs_mkdir_p(out))
			return MR_EIO;
		p->out = absolute(out);
	} else {
		p->out = mr_fs_join(p->root, "build/out");
	}
	if (!p->recipes || !p->schemas || !p->out)
		return mr_error_set(MR_ERROR, "out of memory");
	return 0;
}

void repo_close(repo_paths *p)
{
	free(p->root);
	free(p->recipes);
	free(p->schemas);
	free(p->out);
}

int plan_recipes(mr_recipe_set *set, mr_recipe ***order, size_t *n,
		 const repo_paths *p, char **names, int nnames)
{
	mr_recipe **roots;
	int i, rc;

	if ((rc = mr_recipe_set_load(set, p->recipes, p->schemas)))
		return mr_cli_fail(PROG, rc);
	roots = calloc(set->n + (size_t)nnames + 1, sizeof(*roots));
	if (!roots)
		return mr_cli_fail(PROG, mr_error_set(MR_ERROR, "out of memory"));
	for (i = 0; i < nnames; i++) {
		if (!(roots[i] = mr_recipe_set_find(set, names[i]))) {
			free(roots);
			mr_cli_error(PROG, "no recipe named '%s' in %s; run 'ls %s'",
				     names[i], p->recipes, p->recipes);
			return 2;
		}
	}
	if (!nnames)
		for (; (size_t)i < set->n; i++)
			roots[i] = set->items[i];
	rc = mr_recipe_set_plan(set, roots, (size_t)i, order, n);
	free(roots);
	return rc ? mr_cli_fail(PROG, rc) : 0;
}

int read_passphrase(char **out, const char *file)
{
	const char *env = getenv("MRECIPE_PASSPHRASE");
	mr_buf b = MR_BUF_INIT;
	int rc;

	*out = NULL;
	if (file) {
		if ((rc = mr_fs_read(&b, file, 4096)))
			return rc;
		b.len = strcspn((char *)b.data, "\r\n");
		b.data[b.len] = '\0';
		*out = (char *)mr_buf_detach(&b, NULL);
	} else if (env) {
		*out = strdup(env);
	}
	return 0;
}

int prompt_passphrase(char **out, const char *question)
{
	struct termios old, quiet;
	char line[1024];
	FILE *tty = fopen("/dev/tty", "r+");
	int echo_off = 0, rc = 0;

	*out = NULL;
	if (!tty)
		return mr_error_set(MR_EINVALID,
				    "no passphrase and no terminal to ask on: use "
				    "--passphrase-file FILE or MRECIPE_PASSPHRASE");
	fprintf(tty, "%s: ", question);
	fflush(tty);
	if (!tcgetattr(fileno(tty), &old)) {
		quiet = old;
		quiet.c_lflag &= ~(tcflag_t)ECHO;
		echo_off = !tcsetattr(fileno(tty), TCSANOW, &quiet);
	}
	if (!fgets(line, sizeof(line), tty))
		rc = mr_error_set(MR_EINVALID, "no passphrase was typed");
	if (echo_off)
		tcsetattr(fileno(tty), TCSANOW, &old);
	fputc('\n', tty);
	fclose(tty);
	line[strcspn(line, "\r\n")] = '\0';
	if (!rc && !(*out = strdup(line)))
		rc = mr_error_set(MR_ERROR, "out of memory");
	sodium_memzero(line, sizeof(line));
	return rc;
}
