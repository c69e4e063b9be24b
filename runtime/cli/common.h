/* Options shared by the molt subcommands. */
#ifndef MOLT_CLI_COMMON_H
#define MOLT_CLI_COMMON_H

#include "cmd.h"
#include "molt/molt.h"

/* The option-table rows every unit command takes. */
#define MOLT_COMMON_OPTS                                                                   \
	{ "registry", 'r', "URL|DIR", "registry to fetch from (else $MOLT_REGISTRY)" },    \
	{ "key", 'k', "FILE[:FILE]", "trusted public key(s) (else $MOLT_TRUSTED_KEYS)" },  \
	{ "cache", 0, "DIR", "cache folder (default: $XDG_CACHE_HOME/molt)" },             \
	{ "policy", 0, "FILE", "trust policy, e.g. keys/policy.json (else $MOLT_POLICY); replaces --key" }, \
	{ "mirror", 0, "URL[,URL]", "other copies of the registry, tried in order; verified alike" }, \
	{ "allow-yanked", 0, NULL, "accept a yanked version (e.g. one a lockfile pins)" },  \
	{ "quiet", 'q', NULL, "no progress output" },                                     \
	{ "progress", 0, NULL, "show download progress even when stderr is not a terminal" }

/* Opens a runtime from the common options; prints the error and returns an
 * exit status on failure. */
int open_runtime(molt_runtime **rt, const mr_cmd *cmd, const mr_args *args, int progress);

/* Splits "name@version"; prints the error and returns 2 when malformed. */
int split_ref(const char *ref, char *name, size_t nlen, char *version, size_t vlen);

/* The most trusted keys a command takes. */
#define MOLT_CLI_MAX_KEYS 16

/* For --bundle: the trusted keys from --key or $MOLT_TRUSTED_KEYS, split at
 * ':' into `paths` (up to MOLT_CLI_MAX_KEYS, pointing into *copy, which the
 * caller frees). Prints the error and returns 2 when there are none. */
int bundle_keys(const mr_cmd *cmd, const mr_args *args, const char **paths, size_t *n,
		char **copy);

/* molt fetch|verify --locked [FILE] [NAME@VERSION...]: fetches and verifies
 * what the lockfile (default molt.lock) pins for --target (every target
 * when none), all of it or the units named; the registry must agree with
 * every locked digest. Returns the exit status. */
int fetch_locked(const mr_cmd *cmd, mr_args *args);

#endif
