/* The trust policy (keys/policy.json, docs/security.md): which keys a
 * client trusts, which unit names each may sign, how many distinct keys
 * must sign a unit or the snapshot, and when keys expire or are revoked. */
#ifndef MR_POLICY_H
#define MR_POLICY_H

#include "mr/buf.h"
#include "mr/minisign.h"

#include <stddef.h>
#include <time.h>

#define MR_POLICY_MAX_KEYS 64   /* keys in one policy */
#define MR_POLICY_MAX_SIGS 16   /* signatures looked at for one file */

/* A parsed policy (opaque). */
typedef struct mr_policy mr_policy;

/* Reads and parses a policy file; `.pub` paths in it are relative to the
 * policy's folder. MR_EINVALID with "file:line:col: ..." for a bad policy,
 * MR_ENOTFOUND for a missing file. The caller frees with mr_policy_free. */
int mr_policy_load(mr_policy **out, const char *path);

/* Parses a policy from `text` (`file` names it in messages, `dir` is where
 * relative .pub paths start). As mr_policy_load otherwise. */
int mr_policy_parse(mr_policy **out, const char *file, const char *text, size_t len,
		    const char *dir);

/* The policy `-k` keys stand for: every key may sign every name and the
 * snapshot, threshold 1, no expiry. Copies `keys`. */
int mr_policy_from_keys(mr_policy **out, const mr_pubkey *keys, size_t n);

/* Frees; NULL is a no-op. */
void mr_policy_free(mr_policy *p);

/* The number of distinct keys that must sign unit `name` (NULL: the
 * snapshot): the largest threshold of the patterns that match, default 1. */
unsigned mr_policy_threshold(const mr_policy *p, const char *name);

/* Checks `nsigs` minisign signature texts over `data` for unit `name`
 * (NULL: the snapshot). Each signature that verifies under a policy key,
 * carries exactly `want_comment`, and whose key is allowed for `name`,
 * not revoked and not expired at `now`, counts its KEY once; at least the
 * threshold of keys must count. Otherwise MR_EVERIFY, the message saying
 * the threshold, the keys counted and why each other signature did not
 * count. `where[i]` names signature i in messages. If `signers` is not
 * NULL it receives the key ids counted, comma-separated. */
int mr_policy_verify(const mr_policy *p, const char *name, const mr_buf *sigs,
		     const char *const *where, size_t nsigs, const void *data, size_t len,
		     const char *want_comment, time_t now, mr_buf *signers);

/* The snapshot keys' ids, sorted, comma-separated (for remembering which
 * keys a snapshot version was seen under). */
int mr_policy_snapshot_keys(const mr_policy *p, mr_buf *out);

/* 1 if `s` matches the glob `pat` ('*' any run, '?' one byte). */
int mr_glob_match(const char *pat, const char *s);

/* Parses "YYYY-MM-DDTHH:MM:SSZ" into *out; MR_EINVALID otherwise. */
int mr_utc_parse(const char *s, time_t *out);

#endif
