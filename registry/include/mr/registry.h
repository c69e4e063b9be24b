/* The registry: a folder of static files (docs/registry.md). */
#ifndef MR_REGISTRY_H
#define MR_REGISTRY_H

#include "mr/buf.h"
#include "mr/minisign.h"

#include <cjson/cJSON.h>
#include <time.h>

/* Publishes one built unit: its manifest.json (unsigned, as mrecipe build
 * wrote it) and artifact, plus the schema files the manifest names (from
 * `schemas_dir`). Signs the manifest and a new snapshot with `sk`.
 * Idempotent: publishing identical bytes again changes nothing and sets
 * *unchanged. A different manifest for a published name@version@target is
 * MR_EEXISTS. `expires_days` sets the new snapshot's expiry. */
int mr_registry_publish(const char *root, const mr_seckey *sk,
			const char *manifest_path, const char *artifact_path,
			const char *schemas_dir, int expires_days, int *unchanged);

/* Checks a snapshot against the trusted keys and `now`; on success *out is
 * the parsed snapshot (caller frees with cJSON_Delete). */
int mr_snapshot_verify(cJSON **out, const mr_pubkey *keys, size_t nkeys,
		       const mr_buf *snapshot, const mr_buf *sig, time_t now);

/* Checks a whole registry folder: every blob's digest, the snapshot's
 * signature and expiry, each index against the snapshot, every manifest's
 * size, digest and signature, and that every artifact and schema it names
 * is present. Problems are appended to `report`, one line each with the
 * path; returns the number of problems (or a negative error). */
int mr_registry_verify(const char *root, const mr_pubkey *keys, size_t nkeys,
		       mr_buf *report);

/* Path of a blob in a registry or cache: <root>/blobs/sha256/<hex> (caller frees). */
char *mr_blob_path(const char *root, const char *digest);

/* The trusted comment a unit's manifest signature carries. */
void mr_unit_comment(char *out, size_t n, const char *name, const char *version,
		     const char *target, const char *manifest_digest);

#endif
