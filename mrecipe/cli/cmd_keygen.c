#include "cmd.h"

#include "mr/error.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const mr_opt opts[] = {
	{ "secret-key", 's', "FILE", "where to write the secret key (created 0600)" },
	{ "public-key", 'p', "FILE", "where to write the public key (.pub)" },
	{ "passphrase-file", 0, "FILE", "read the passphrase from FILE (else $MRECIPE_PASSPHRASE)" },
	{ "unencrypted", 'W', NULL, "write the secret key without a passphrase (development keys)" },
	{ "force", 'f', NULL, "overwrite an existing secret key" },
	{ NULL, 0, NULL, NULL },
};

/* Writes a minisign-compatible key pair. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *sk = mr_args_get(cmd, args, "secret-key");
	const char *pk = mr_args_get(cmd, args, "public-key");
	int unenc = !!mr_args_get(cmd, args, "unencrypted");
	char *pass = NULL, id[17];
	mr_pubkey pub;
	int rc;

	if (!sk || !pk) {
		mr_cli_error(PROG, "keygen needs --secret-key FILE and --public-key FILE");
		return 2;
	}
	if (!unenc) {
		if ((rc = read_passphrase(&pass, mr_args_get(cmd, args, "passphrase-file"))))
			return mr_cli_fail(PROG, rc);
		if (!pass && isatty(STDIN_FILENO)) {
			char *again = NULL;
			if (!(rc = prompt_passphrase(&pass, "passphrase for the new key")) &&
			    !(rc = prompt_passphrase(&again, "the same passphrase again")) &&
			    strcmp(pass, again))
				rc = mr_error_set(MR_EINVALID, "the two passphrases differ; run keygen again");
			if (again) {
				sodium_memzero(again, strlen(again));
				free(again);
			}
			if (rc) {
				if (pass) {
					sodium_memzero(pass, strlen(pass));
					free(pass);
				}
				return mr_cli_fail(PROG, rc);
			}
		}
		if (!pass || !*pass) {
			free(pass);
			mr_cli_error(PROG, "no passphrase: type one on a terminal, or use "
					   "--passphrase-file FILE or MRECIPE_PASSPHRASE, or "
					   "--unencrypted for a development key");
			return 2;
		}
	}
	rc = mr_keygen(&pub, sk, pk, unenc ? NULL : pass, !!mr_args_get(cmd, args, "force"));
	if (pass) {
		sodium_memzero(pass, strlen(pass));
		free(pass);
	}
	if (rc)
		return mr_cli_fail(PROG, rc);
	mr_keyid_hex(id, pub.id);
	printf("key %s: secret key %s, public key %s\n", id, sk, pk);
	return 0;
}

const mr_cmd mrecipe_cmd_keygen = {
	"keygen", "create a signing key pair in minisign's format",
	"[options] --secret-key FILE --public-key FILE", opts, run,
};
