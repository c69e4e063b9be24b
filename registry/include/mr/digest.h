/* SHA-256 digests, written "sha256:<64 hex>" everywhere. */
#ifndef MR_DIGEST_H
#define MR_DIGEST_H

#include <stddef.h>

#define MR_DIGEST_LEN 32
#define MR_DIGEST_STR_LEN (7 + 64) /* "sha256:" + hex, without NUL */

/* Streaming SHA-256 state (opaque). */
typedef struct mr_sha256 mr_sha256;

/* Creates a hashing state; the caller frees with mr_sha256_free. */
int mr_sha256_new(mr_sha256 **out);
/* Feeds bytes. */
void mr_sha256_update(mr_sha256 *h, const void *data, size_t len);
/* Writes the 32-byte digest; the state cannot be fed afterwards. */
void mr_sha256_final(mr_sha256 *h, unsigned char out[MR_DIGEST_LEN]);
/* Frees the state; NULL is a no-op. */
void mr_sha256_free(mr_sha256 *h);

/* Hashes a buffer into `out` as "sha256:<hex>" (NUL-terminated). */
void mr_digest_buf(char out[MR_DIGEST_STR_LEN + 1], const void *data,
		   size_t len);

/* Hashes a file into `out` as "sha256:<hex>"; `size_out` may be NULL. */
int mr_digest_file(char out[MR_DIGEST_STR_LEN + 1], const char *path,
		   size_t *size_out);

/* Formats a raw digest as "sha256:<hex>". */
void mr_digest_format(char out[MR_DIGEST_STR_LEN + 1],
		      const unsigned char raw[MR_DIGEST_LEN]);

/* 1 if `s` is exactly "sha256:" followed by 64 lowercase hex digits. */
int mr_digest_valid(const char *s);

#endif
