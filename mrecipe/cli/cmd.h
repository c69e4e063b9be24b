/* The mrecipe CLI's subcommands, one file each (cmd_<name>.c). */
#ifndef MRECIPE_CLI_CMD_H
#define MRECIPE_CLI_CMD_H

#include "mr/cli.h"
#include "mr/minisign.h"
#include "mrecipe/recipe.h"

#define PROG "mrecipe"

extern const mr_cmd mrecipe_cmd_lint;
extern const mr_cmd mrecipe_cmd_build;
extern const mr_cmd mrecipe_cmd_keygen;
extern const mr_cmd mrecipe_cmd_publish;
extern const mr_cmd mrecipe_cmd_verify;
extern const mr_cmd mrecipe_cmd_registry;
extern const mr_cmd mrecipe_cmd_test;
extern const mr_cmd mrecipe_cmd_schema;
extern const mr_cmd mrecipe_cmd_pack;

/* The repository's folders, as absolute paths. */
typedef struct {
	char *root, *recipes, *schemas, *out;
} repo_paths;

/* Resolves -C (repository, default ".") and --out (default <repo>/build/out). */
int repo_open(repo_paths *p, const char *repo, const char *out);
void repo_close(repo_paths *p);

/* Loads the recipes named in `names` (all when `all` or none named), in
 * dependency order. Prints errors; returns an exit status. */
int plan_recipes(mr_recipe_set *set, mr_recipe ***order, size_t *n,
		 const repo_paths *p, char **names, int nnames);

/* Reads a passphrase: from the file, from $MRECIPE_PASSPHRASE, or NULL. */
int read_passphrase(char **out, const char *file);

/* Asks for a passphrase on the terminal, without echo (caller wipes and
 * frees *out). MR_EINVALID when there is no terminal. */
int prompt_passphrase(char **out, const char *question);

/* Loads one or more signing keys (at most MR_REGISTRY_MAX_KEYS into `out`):
 * $MRECIPE_SECRET_KEY (key texts separated by a blank line) or `files`
 * (paths joined by ':'). The caller frees each with mr_seckey_free. */
int load_signing_keys(mr_seckey **out, size_t *n, const char *files,
		      const char *passfile);

#endif
