#define _GNU_SOURCE
#include "cmd.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/registry.h"

#include <sodium.h>
#include <stdio.h>
#include "mr/policy.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const mr_opt opts[] = {
	{ "registry", 'r', "DIR", "the registry folder" },
	{ "key", 'k', "FILE[:FILE]", "verify: trusted public key(s) (.pub), several joined by ':'" },
	{ "policy", 0, "FILE", "verify: also check signatures against a trust policy (keys/policy.json)" },
	{ "secret-key", 's', "FILE[:FILE]", "signing key(s), several joined by ':' (or $MRECIPE_SECRET_KEY)" },
	{ "passphrase-file", 0, "FILE", "the keys' passphrase (else $MRECIPE_PASSPHRASE)" },
	{ "expires-days", 0, "N", "days until the new snapshot expires (default: 365)" },
	{ "target", 't', "TRIPLE", "yank/unyank: only this target (default: every target)" },
	{ "delete", 0, NULL, "gc: remove the unreferenced blobs (default: only list them)" },
	{ "resign", 0, NULL, "refresh: re-sign every index entry with exactly the given keys" },
	{ NULL, 0, NULL, NULL },
};

static void free_keys(mr_seckey **keys, size_t n)
{
	while (n)
		mr_seckey_free(keys[--n]);
}

int load_signing_keys(mr_seckey **out, size_t *n, const char *files, const char *passfile)
{
	const char *env = getenv("MRECIPE_SECRET_KEY");
	char *pass = NULL, *copy = NULL, *part, *save = NULL;
	int rc;

	*n = 0;
	if ((rc = read_passphrase(&pass, passfile)))
		return rc;
	if (env && *env) {
		/* Several key texts separated by a blank line. */
		const char *p = env;
		while (!rc && *p) {
			const char *end = strstr(p, "\n\n");
			size_t len = end ? (size_t)(end - p) + 1 : strlen(p);
			if (*n == MR_REGISTRY_MAX_KEYS)
				rc = mr_error_set(MR_EINVALID, "$MRECIPE_SECRET_KEY: more than %d keys",
						  MR_REGISTRY_MAX_KEYS);
			else if (len > 1 || *p != '\n')
				rc = mr_seckey_parse(&out[(*n)++], p, len, pass, "$MRECIPE_SECRET_KEY");
			p += len;
			while (*p == '\n')
				p++;
		}
	} else if (files && (copy = strdup(files))) {
		for (part = strtok_r(copy, ":", &save); !rc && part; part = strtok_r(NULL, ":", &save)) {
			if (*n == MR_REGISTRY_MAX_KEYS)
				rc = mr_error_set(MR_EINVALID, "--secret-key: more than %d keys",
						  MR_REGISTRY_MAX_KEYS);
			else if ((rc = mr_seckey_load(&out[*n], part, pass)) && !pass &&
				 isatty(STDIN_FILENO) && strstr(mr_error_last(), "no passphrase") &&
				 !(rc = prompt_passphrase(&pass, "passphrase for the signing key")))
				rc = mr_seckey_load(&out[*n], part, pass);
			if (rc)
				out[*n] = NULL;
			else
				(*n)++;
		}
	} else {
		rc = mr_error_set(MR_EINVALID,
				  "no signing key: pass --secret-key FILE[:FILE...], or set "
				  "MRECIPE_SECRET_KEY to the key file's text (CI)");
	}
	if (!rc && !*n)
		rc = mr_error_set(MR_EINVALID, "expected at least one signing key, found none");
	if (rc) {
		free_keys(out, *n);
		*n = 0;
	}
	free(copy);
	if (pass) {
		sodium_memzero(pass, strlen(pass));
		free(pass);
	}
	return rc;
}

static int parse_days(const char *s, int *out)
{
	char *end;
	long d;

	*out = 365;
	if (!s)
		return 0;
	d = strtol(s, &end, 10);
	if (*end || d < 1 || d > 3650) {
		mr_cli_error(PROG, "--expires-days: expected 1 to 3650, found '%s'", s);
		return 2;
	}
	*out = (int)d;
	return 0;
}

static int do_verify(const char *reg, const char *keyarg, const char *policy_path)
{
	mr_policy *policy = NULL;
	mr_pubkey pks[MR_REGISTRY_MAX_KEYS];
	mr_buf report = MR_BUF_INIT;
	char *copy, *part, *save = NULL;
	size_t n = 0;
	int rc = 0, done = 0;

	if (!(copy = strdup(keyarg)))
		return mr_cli_fail(PROG, mr_error_set(MR_ERROR, "out of memory"));
	for (part = strtok_r(copy, ":", &save); !rc && part && n < MR_REGISTRY_MAX_KEYS;
	     part = strtok_r(NULL, ":", &save))
		rc = mr_pubkey_load(&pks[n++], part);
	free(copy);
	if (rc)
		return mr_cli_fail(PROG, rc);
	if (!mr_fs_exists(reg)) {
		mr_cli_error(PROG, "%s: expected a registry folder, found nothing", reg);
		return 2;
	}
	/* fsck: a publish that crashed after its commit point is finished first. */
	{
		char *jp = mr_fs_join(reg, ".pending");
		if (jp && mr_fs_exists(jp) && (rc = mr_registry_recover(reg, &done))) {
			free(jp);
			return mr_cli_fail(PROG, rc);
		}
		free(jp);
		if (done)
			fprintf(stderr, "%s: warning: completed a publish interrupted after its commit point\n", PROG);
	}
	if (policy_path && (rc = mr_policy_load(&policy, policy_path)))
		return mr_cli_fail(PROG, rc);
	rc = mr_registry_verify(reg, pks, n, policy, &report);
	mr_policy_free(policy);
	if (rc < 0)
		return mr_cli_fail(PROG, rc);
	if (report.len)
		fprintf(stderr, "%s", (char *)report.data);
	if (rc)
		fprintf(stderr, "%s: %d problem%s in %s\n", PROG, rc, rc == 1 ? "" : "s", reg);
	else
		printf("%s: ok\n", reg);
	mr_buf_free(&report);
	return rc ? 1 : 0;
}

/* NAME@VERSION into its parts (pointing into `s`, which is modified). */
static int split_ref(char *s, char **name, char **version)
{
	char *at = strrchr(s, '@');

	if (!at || at == s || !at[1]) {
		mr_cli_error(PROG, "expected NAME@VERSION, found '%s'", s);
		return 2;
	}
	*at = '\0';
	*name = s;
	*version = at + 1;
	return 0;
}

static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *reg = mr_args_get(cmd, args, "registry");
	const char *op = args->nrest ? args->rest[0] : NULL;
	mr_seckey *keys[MR_REGISTRY_MAX_KEYS];
	size_t nkeys = 0;
	int rc = 0, days;

	if (!op || !reg) {
		mr_cli_error(PROG, "usage: %s registry verify|yank|unyank|gc|refresh --registry DIR ...; "
			     "see '%s registry --help'", PROG, PROG);
		return 2;
	}
	if ((rc = parse_days(mr_args_get(cmd, args, "expires-days"), &days)))
		return rc;
	if (!strcmp(op, "verify")) {
		if (!mr_args_get(cmd, args, "key")) {
			mr_cli_error(PROG, "registry verify needs --key FILE (a trusted .pub)");
			return 2;
		}
		return do_verify(reg, mr_args_get(cmd, args, "key"), mr_args_get(cmd, args, "policy"));
	}
	if (!strcmp(op, "gc")) {
		mr_buf report = MR_BUF_INIT;
		int del = mr_args_get(cmd, args, "delete") != NULL;
		rc = mr_registry_gc(reg, del, &report);
		if (rc < 0)
			return mr_cli_fail(PROG, rc);
		if (report.len)
			printf("%s", (char *)report.data);
		printf("%d unreferenced file%s %s in %s\n", rc, rc == 1 ? "" : "s",
		       del ? "removed" : "found (dry run; --delete removes them)", reg);
		mr_buf_free(&report);
		return 0;
	}
	if (strcmp(op, "yank") && strcmp(op, "unyank") && strcmp(op, "refresh")) {
		mr_cli_error(PROG, "unknown registry operation '%s'; expected verify, yank, unyank, gc or refresh", op);
		return 2;
	}
	if (strcmp(op, "refresh") && args->nrest != 2) {
		mr_cli_error(PROG, "registry %s expects one NAME@VERSION, found %d arguments", op, args->nrest - 1);
		return 2;
	}
	if ((rc = load_signing_keys(keys, &nkeys, mr_args_get(cmd, args, "secret-key"),
				    mr_args_get(cmd, args, "passphrase-file"))))
		return mr_cli_fail(PROG, rc);
	if (!strcmp(op, "refresh")) {
		if ((rc = mr_registry_refresh(reg, keys, nkeys, days, mr_args_get(cmd, args, "resign") != NULL)))
			rc = mr_cli_fail(PROG, rc);
		else
			printf("refreshed %s%s\n", reg, mr_args_get(cmd, args, "resign") ? " (every entry re-signed)" : "");
	} else {
		char *name, *version;
		int changed = 0, y = !strcmp(op, "yank");
		if (!(rc = split_ref(args->rest[1], &name, &version))) {
			if ((rc = mr_registry_yank(reg, keys, nkeys, name, version,
						   mr_args_get(cmd, args, "target"), y, days, &changed)))
				rc = mr_cli_fail(PROG, rc);
			else
				printf("%s %s@%s (%d entr%s changed)\n", y ? "yanked" : "unyanked",
				       name, version, changed, changed == 1 ? "y" : "ies");
		}
	}
	free_keys(keys, nkeys);
	return rc;
}

/* `mrecipe verify`: the older spelling of `mrecipe registry verify`. */
static int run_verify(const mr_cmd *cmd, mr_args *args)
{
	const char *reg = mr_args_get(cmd, args, "registry"), *key = mr_args_get(cmd, args, "key");

	if (!reg || !key) {
		mr_cli_error(PROG, "verify needs --registry DIR and --key FILE");
		return 2;
	}
	return do_verify(reg, key, NULL);
}

static const mr_opt verify_opts[] = {
	{ "registry", 'r', "DIR", "the registry folder to check" },
	{ "key", 'k', "FILE[:FILE]", "trusted public key(s) (.pub), several joined by ':'" },
	{ NULL, 0, NULL, NULL },
};

const mr_cmd mrecipe_cmd_registry = {
	"registry", "maintain a registry: verify, yank, unyank, gc, refresh",
	"verify|yank|unyank|gc|refresh [NAME@VERSION] --registry DIR [options]", opts, run,
};

const mr_cmd mrecipe_cmd_verify = {
	"verify", "check a registry: blob digests, signatures, index and snapshot",
	"--registry DIR --key FILE", verify_opts, run_verify,
};
