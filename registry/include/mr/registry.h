/* The registry: a folder of static files (docs/registry.md). */
#ifndef MR_REGISTRY_H
#define MR_REGISTRY_H

#include "mr/buf.h"
#include "mr/minisign.h"

#include <cjson/cJSON.h>

struct mr_policy;
#include <stddef.h>
#include <time.h>

/* Most keys one publish may sign with. */
#define MR_REGISTRY_MAX_KEYS 16

/* Publishes one built unit: its manifest.json (unsigned, as mrecipe build
 * wrote it) and artifact, plus the schema files the manifest names (from
 * `schemas_dir`). Every key in `keys` (nkeys >= 1, distinct key ids) signs
 * the manifest and the new snapshot. Idempotent: publishing identical bytes
 * again changes nothing and sets *unchanged. A different manifest for a
 * published name@version@target is MR_EEXISTS. `expires_days` sets the new
 * snapshot's expiry. Holds the registry lock throughout; blobs first, then
 * index and snapshot committed through a journal (docs/registry.md). */
int mr_registry_publish(const char *root, mr_seckey *const *keys, size_t nkeys,
			const char *manifest_path, const char *artifact_path,
			const char *schemas_dir, int expires_days, int *unchanged);

/* Sets (yanked = 1) or clears the "yanked" flag of name@version, for one
 * `target` or every target when NULL, and signs a new snapshot. *changed is
 * the number of entries whose flag changed (0: nothing written).
 * MR_ENOTFOUND when no such entry exists. */
int mr_registry_yank(const char *root, mr_seckey *const *keys, size_t nkeys,
		     const char *name, const char *version, const char *target,
		     int yanked, int expires_days, int *changed);

/* Signs a new snapshot (version + 1, new expiry, "signers" = `keys`). With
 * `resign`, also replaces every index entry's signatures with fresh ones by
 * exactly `keys` (key rotation), after checking each manifest blob's digest,
 * and rewrites its hints ("artifact", "schemas_pack") from the manifest. */
int mr_registry_refresh(const char *root, mr_seckey *const *keys, size_t nkeys,
			int expires_days, int resign);

/* Lists blobs no index entry references (and stale temporary files), one
 * line each in `report`; with `remove`, deletes them. Holds the lock.
 * Returns how many were found (or a negative error). */
int mr_registry_gc(const char *root, int remove, mr_buf *report);

/* Completes a publish interrupted after its commit point (the journal
 * `.pending` exists): renames the staged files into place. *done is 1 when
 * there was something to complete. Holds the lock. */
int mr_registry_recover(const char *root, int *done);

/* Parses snapshot bytes and checks their shape (format 1, a version, an
 * index list); writes the trusted comment a signature over them must carry
 * ("molt snapshot <version> <digest>") to `want_comment`. `where` (a URL or
 * folder, may be "") prefixes messages. The caller deletes *out. */
int mr_snapshot_parse(cJSON **out, const mr_buf *snapshot, char *want_comment, size_t n,
		      const char *where);

/* MR_EVERIFY unless the snapshot's `expires` is a UTC time after `now`. */
int mr_snapshot_fresh(const cJSON *snapshot, time_t now, const char *where);

/* Checks a snapshot against the trusted keys and `now`: one signature,
 * shape, trusted comment, expiry. On success *out is the parsed snapshot
 * (caller frees with cJSON_Delete). */
int mr_snapshot_verify(cJSON **out, const mr_pubkey *keys, size_t nkeys,
		       const mr_buf *snapshot, const mr_buf *sig, time_t now);

/* Checks a whole registry folder: every blob's digest, the snapshot's
 * signatures (snapshot.json.minisig and snapshot.json.<KEYID>.minisig: at
 * least one by a trusted key, none by a trusted key failing) and expiry,
 * each index against the snapshot, every manifest's size, digest and
 * signatures, that every artifact and schema it names is present, and that
 * an entry's hints agree with its manifest (the schema pack present and
 * holding exactly the manifest's schemas, in its order).
 * Problems are appended to `report`, one line each with the path; lines
 * starting "warning: " (unreferenced blobs, stale temporary files, an
 * interrupted publish) are not problems. With a `policy`, each unit's
 * signatures must also satisfy it (thresholds counting each key once, the
 * names each key may sign, expiry, revocation). Returns the number of
 * problems (or a negative error). */
int mr_registry_verify(const char *root, const mr_pubkey *keys, size_t nkeys,
		       const struct mr_policy *policy, mr_buf *report);

/* Path of a blob in a registry or cache: <root>/blobs/sha256/<hex> (caller frees). */
char *mr_blob_path(const char *root, const char *digest);

/* The trusted comment a unit's manifest signature carries. */
void mr_unit_comment(char *out, size_t n, const char *name, const char *version,
		     const char *target, const char *manifest_digest);

/* --- semi-private: shared by registry.c and regops.c ------------------- */

/* Metadata files replaced together: staged in memory, written as
 * <path>.new, committed by the journal <root>/.pending, then renamed. */
typedef struct {
	char **rel;   /* paths relative to the root (owned) */
	mr_buf *data; /* their new bytes (owned) */
	size_t n, cap;
} mr__txn;

/* Takes the registry's exclusive lock (<root>/.lock); release with close(). */
int mr__reg_lock(const char *root, int *fd);
/* mr_registry_recover for a caller already holding the lock. */
int mr__reg_recover_locked(const char *root, int *done);
/* Reads and parses a JSON file; `raw` receives its bytes (caller frees both). */
int mr__reg_read_json(cJSON **out, const char *path, mr_buf *raw);
/* Stages `rel` with `len` bytes, replacing an earlier staging of it. */
int mr__txn_put(mr__txn *t, const char *rel, const void *data, size_t len);
/* The staged bytes of `rel`, or NULL. */
const mr_buf *mr__txn_get(const mr__txn *t, const char *rel);
/* Stages a new signed snapshot over index/ as it will be after the commit. */
int mr__txn_snapshot(mr__txn *t, const char *root, mr_seckey *const *keys,
		     size_t nkeys, int days);
/* Writes, journals and renames every staged file; completes an earlier
 * interrupted commit first. The caller holds the lock. */
int mr__txn_commit(mr__txn *t, const char *root);
/* Frees the staged data; the struct may be reused. */
void mr__txn_free(mr__txn *t);
/* Signs `m` (the manifest's bytes) with every key; stores each signature as
 * a blob and sets `sigs` (a cJSON array, sorted by key id) to their digests. */
int mr__sign_manifest(const char *root, mr_seckey *const *keys, size_t nkeys,
		      const cJSON *manifest, const char *mdigest,
		      const mr_buf *m, cJSON *sigs);
/* Sets an index entry's hints from manifest `m` (docs/registry.md, "Hints"):
 * "artifact" {digest, size}, and "schemas_pack" {digest, size} naming a blob
 * (written unless present) that packs the manifest's schema documents, read
 * from their blobs in `root` and checked against their digests. Replaces
 * older hints; a manifest with no schemas gets no "schemas_pack". */
int mr__entry_hints(const char *root, const cJSON *m, cJSON *entry);
/* Every digest the index files reference (manifests, signatures, artifacts,
 * schemas, hinted artifacts and schema packs), as a sorted array of
 * "sha256:..." strings (caller frees each and the array). */
int mr__reg_refs(const char *root, char ***out, size_t *n);
/* 1 if the sorted `refs` holds `digest`. */
int mr__refs_has(char *const *refs, size_t n, const char *digest);
/* Fault injection for the crash tests: when $MRECIPE_FAULT is "point" or
 * "point:N", the N-th (default first) time `point` is reached the process
 * ends at once with _exit(99), as a crash would. */
void mr__fault(const char *point);

#endif
