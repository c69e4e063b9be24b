/* Ed25519 keys and signatures in minisign's file formats (libsodium).
 *
 * We sign with the legacy "Ed" algorithm (Ed25519 over the whole file) so that
 * browsers, which lack BLAKE2b, can verify with WebCrypto; stock `minisign -V`
 * accepts these signatures. Verification also accepts "ED" (prehashed). */
#ifndef MR_MINISIGN_H
#define MR_MINISIGN_H

#include "mr/buf.h"

#include <stddef.h>

#define MR_KEYID_LEN 8
#define MR_PK_LEN 32

/* A public key: its 8-byte id and the Ed25519 key. */
typedef struct {
	unsigned char id[MR_KEYID_LEN];
	unsigned char pk[MR_PK_LEN];
} mr_pubkey;

/* A secret key, held in sodium_malloc'd, guarded memory (opaque). */
typedef struct mr_seckey mr_seckey;

/* Generates a key pair. Writes the secret key to `sk_path` (created 0600,
 * refused if it exists unless `force`) encrypted with scrypt under
 * `passphrase`, or unencrypted when `passphrase` is NULL; writes the public
 * key to `pk_path`. `out` may be NULL; when given it receives the public key. */
int mr_keygen(mr_pubkey *out, const char *sk_path, const char *pk_path,
	      const char *passphrase, int force);

/* Loads a secret key file; `passphrase` is needed when it is encrypted
 * (MR_EVERIFY with a clear message when it is wrong or missing).
 * The caller frees with mr_seckey_free. */
int mr_seckey_load(mr_seckey **out, const char *path, const char *passphrase);

/* Same, from the text of a key file (e.g. an environment variable in CI);
 * `what` names the source in error messages. */
int mr_seckey_parse(mr_seckey **out, const char *text, size_t len,
		    const char *passphrase, const char *what);

/* The public half of a secret key. */
void mr_seckey_pubkey(const mr_seckey *sk, mr_pubkey *out);

/* Wipes and frees; NULL is a no-op. */
void mr_seckey_free(mr_seckey *sk);

/* Parses a public key: the text of a .pub file, or its bare base64 line.
 * `what` names the source in error messages. */
int mr_pubkey_parse(mr_pubkey *out, const char *text, size_t len,
		    const char *what);

/* Reads and parses a .pub file. */
int mr_pubkey_load(mr_pubkey *out, const char *path);

/* Formats the public key file text ("untrusted comment: ...\n<base64>\n"). */
int mr_pubkey_format(mr_buf *out, const mr_pubkey *pk);

/* The key id as uppercase hex, as minisign prints it ("%" PRIX64 of the id
 * read little-endian: up to 16 digits, no leading zeros). */
void mr_keyid_hex(char out[17], const unsigned char id[MR_KEYID_LEN]);

/* Signs `data` with the "Ed" algorithm and appends the whole .minisig text to
 * `out`. `trusted_comment` must be one line. */
int mr_sign(mr_buf *out, const mr_seckey *sk, const void *data, size_t len,
	    const char *trusted_comment);

/* Verifies a .minisig text over `data` against any of `keys` (the one whose
 * id matches): algorithm, key id, signature, then the trusted comment's
 * global signature. On success, if `trusted_comment` is not NULL it receives
 * a malloc'd copy (caller frees). MR_EVERIFY with a precise message when a
 * check fails, MR_EINVALID when the text is not a minisign signature. The
 * message says "signature: ..."; callers wrap it with the signature's path
 * or URL (mr_error_wrap). */
int mr_verify(const mr_pubkey *keys, size_t nkeys, const char *sig, size_t siglen,
	      const void *data, size_t len, char **trusted_comment);

#endif
