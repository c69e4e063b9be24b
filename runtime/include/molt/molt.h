/* libmolt: fetch signed Molt units, verify them, and load them explicitly.
 *
 * Every function that can fail returns 0 or a negative code (MOLT_E*), and
 * molt_error_last() explains the last failure on the calling thread.
 * Nothing is loaded implicitly: a unit is fetched and loaded only when its
 * exact name and version (or lockfile entry, or manifest digest) are asked
 * for, and a unit's run-time dependencies must be loaded first.
 *
 * Threads: separate runtimes may be used on separate threads at once. A
 * runtime, its units and their jobs are used by one thread at a time;
 * error messages are per thread (docs/runtime.md, "Threads"). */
#ifndef MOLT_MOLT_H
#define MOLT_MOLT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MOLT_API __attribute__((visibility("default")))

/* Error codes (the same values as the core's MR_E*). */
enum {
	MOLT_OK = 0,
	MOLT_ERROR = -1,     /* generic */
	MOLT_ENOTFOUND = -2, /* no such unit, version, target or function */
	MOLT_EVERIFY = -3,   /* a digest, signature, size or identity check failed */
	MOLT_EINVALID = -5,  /* bad input, or a validation error from the unit */
	MOLT_EENV = -6,      /* network, cache folder, dlopen */
};

/* Progress of a download: `what` names it, `total` is 0 when unknown. */
typedef void (*molt_progress_cb)(const char *what, uint64_t done, uint64_t total,
				 void *payload);

/* Options for molt_runtime_open; start from MOLT_OPTIONS_INIT. */
typedef struct {
	unsigned int version;           /* MOLT_OPTIONS_VERSION */
	const char *registry;           /* URL (http, https, file) or a folder */
	const char *cache_dir;          /* NULL: $XDG_CACHE_HOME/molt or ~/.cache/molt */
	const char *const *trusted_keys; /* paths of minisign .pub files */
	size_t trusted_keys_count;
	molt_progress_cb progress;      /* optional */
	void *progress_payload;
	const char *policy;             /* trust policy file (keys/policy.json format,
					 * docs/security.md); when set it replaces
					 * trusted_keys, which may then be empty */
	const char *const *mirrors;     /* other base URLs serving the same registry;
					 * every file from them is verified the same way */
	size_t mirrors_count;
	int allow_yanked;               /* 1: fetch yanked entries (e.g. pinned by a lockfile) */
	void (*depends)(const char *unit, const char *dependency,
			void *payload);  /* optional: told each dependency a fetched
					 * manifest names (never fetched implicitly);
					 * payload is progress_payload */
} molt_options;

#define MOLT_OPTIONS_VERSION 1
#define MOLT_OPTIONS_INIT { MOLT_OPTIONS_VERSION, NULL, NULL, NULL, 0, NULL, NULL, NULL, NULL, 0, 0, NULL }

/* A runtime: one registry, one cache, one set of trusted keys (opaque). */
typedef struct molt_runtime molt_runtime;

/* A loaded unit (opaque). */
typedef struct molt_unit molt_unit;

/* Opens a runtime. Copies what it needs from `opts`. Free with
 * molt_runtime_free. */
MOLT_API int molt_runtime_open(molt_runtime **out, const molt_options *opts);

/* Frees a runtime; NULL is a no-op. Units loaded from it must be freed first. */
MOLT_API void molt_runtime_free(molt_runtime *rt);

/* Fetches name@version for `target` (NULL: this host's triple) into the
 * cache, verifying snapshot, index, manifest signature and artifact digest.
 * Writes the manifest digest ("sha256:...") to `manifest_digest` if not NULL. */
MOLT_API int molt_fetch(molt_runtime *rt, const char *name, const char *version,
			const char *target, char manifest_digest[72]);

/* Fetches (as molt_fetch) and loads the native unit name@version. Before
 * any of its code runs it checks, in order: digests and signature (the
 * fetch), target triple, ABI version, the digest of every cached schema,
 * and that each run-time dependency in the manifest's "depends" is already
 * loaded into `rt` (MOLT_ENOTFOUND naming it and saying to load it first).
 * Then it dlopens a private in-memory copy of the artifact, hashed again as
 * it is copied (so each load is its own instance, holding one file
 * descriptor until molt_unit_free), checks molt_abi_version() and calls
 * molt_init. Free with molt_unit_free.
 *
 * A native unit runs in this process, with no sandbox: if it crashes, the
 * process crashes, and a poll that never returns can't be interrupted
 * (timeout_ms is checked between polls). That is why a unit's signature,
 * digest and manifest are checked before any of its code runs. */
MOLT_API int molt_unit_load(molt_unit **out, molt_runtime *rt, const char *name,
			    const char *version);

/* Loads a native unit from local files, without a registry: for authors
 * testing their own builds (mrecipe test) before anything is signed.
 * `manifest_path` is the unsigned manifest.json that mrecipe build wrote
 * beside `artifact`; `schemas_dir` holds the <id>.v<version>.json files the
 * manifest lists. Checks, in order: the manifest's shape and target (this
 * host's triple); the artifact's size and digest against the manifest; each
 * schema file's canonical digest against the manifest. Then loads as
 * molt_unit_load does (ABI version, dlopen, molt_abi_version(), molt_init).
 * No signature is checked, so only load files you built yourself.
 * MOLT_EVERIFY when a check fails, MOLT_ENOTFOUND for a missing file,
 * MOLT_EENV when dlopen fails. Free with molt_unit_free. */
MOLT_API int molt_unit_load_local(molt_unit **out, const char *artifact,
				  const char *manifest_path, const char *schemas_dir);

/* How the host runs a unit's tasks (docs/abi.md, "Limits"). Start from
 * MOLT_UNIT_OPTIONS_INIT and set what you need; 0 means the default. */
typedef struct {
	unsigned int version; /* MOLT_UNIT_OPTIONS_VERSION */
	uint32_t step_budget; /* work units per poll, sent to the unit in
			       * molt.runtime_config; 0: the unit's (65536) */
	size_t max_output;    /* largest envelope taken from the unit, bytes;
			       * 0: MOLT_MAX_OUTPUT_DEFAULT */
	uint32_t timeout_ms;  /* wall clock from start to result, checked at
			       * every poll; 0: no limit */
} molt_unit_options;

#define MOLT_UNIT_OPTIONS_VERSION 1
#define MOLT_UNIT_OPTIONS_INIT { MOLT_UNIT_OPTIONS_VERSION, 0, 0, 0 }
#define MOLT_MAX_OUTPUT_DEFAULT ((size_t)64 << 20)

/* Sets the limits for the unit's next calls (tasks already started keep
 * theirs). A new step budget is sent to the unit at once (molt_init again).
 * MOLT_EINVALID for an unknown options version. */
MOLT_API int molt_unit_set_options(molt_unit *u, const molt_unit_options *opts);

/* One task running in a unit, as the host drives it (opaque): started by
 * molt_unit_start, advanced one slice per molt_job_poll, stopped by
 * molt_job_cancel. A unit runs tasks only while they are polled, and a unit
 * and its jobs are used from one thread at a time. Free every job before
 * its unit. */
typedef struct molt_job molt_job;

/* Starts `function` with a JSON request, validated against the function's
 * input schema; no work is done until the first poll. The unit's options
 * (timeout, max_output) at this moment apply to the job. MOLT_ENOTFOUND for
 * an unknown function, MOLT_EINVALID for a request the schema refuses,
 * MOLT_ERROR when the unit refuses to start a task (its task table is full:
 * CapabilityDenied; it is not initialised: InternalError; the message
 * says). Free with molt_job_free. */
MOLT_API int molt_unit_start(molt_job **out, molt_unit *u, const char *function,
			     const char *json_in);

/* Starts function_id with a raw request envelope, unchecked: for byte-level
 * tests. As molt_unit_start otherwise. */
MOLT_API int molt_unit_start_envelope(molt_job **out, molt_unit *u, uint32_t function_id,
				      const unsigned char *env, size_t len);

/* Runs one slice of the job's task (one molt_poll: at most step_budget
 * units of work). Returns 0 while it is pending; 1 when it finished with a
 * result, and then, if json_out is not NULL, *json_out is the result as
 * JSON, validated against the output schema (caller frees with free()).
 * Returns a negative code when it finished with an error: the unit's error
 * envelope (MOLT_EINVALID for the validation class, else MOLT_ERROR: a
 * cancellation is code 4), the host's (timeout: code 5, the task cancelled
 * in the unit; an envelope over max_output: code 6; an ABI violation: code
 * 7), or, with json_out, a result that breaks its schema (MOLT_EVERIFY,
 * code 3). molt_error_last() says what and where; molt_job_error_code()
 * gives the code. A finished job answers every later poll the same way. */
MOLT_API int molt_job_poll(molt_job *j, char **json_out);

/* The envelope the unit finished with, owned by the job: returns 1 for a
 * result, 2 for an error envelope, 0 when there is none (still pending, or
 * the host ended the job: timeout, max_output). */
MOLT_API int molt_job_envelope(const molt_job *j, const unsigned char **env, size_t *len);

/* The Molt status code (1-7, docs/abi.md) the job ended with; 0 while it
 * is pending or when it ended with a result. */
MOLT_API int molt_job_error_code(const molt_job *j);

/* How many times the job's task has been polled. */
MOLT_API uint64_t molt_job_polls(const molt_job *j);

/* Cancels the job's task: its next poll finishes it with a cancellation
 * error (code 4), having done no more work. 0 also when it already
 * finished; MOLT_ERROR when the unit refuses (the message says). */
MOLT_API int molt_job_cancel(molt_job *j);

/* Frees a job; a task still pending is cancelled and reaped first, so the
 * unit's task slot is free again. NULL is a no-op. */
MOLT_API void molt_job_free(molt_job *j);

/* Calls `function` with a JSON request, validated against the function's
 * input schema; on success *json_out is the JSON result, validated against
 * the output schema (caller frees with free()). Polls to completion under
 * the unit's options (molt_unit_start, then molt_job_poll). An error from
 * the unit is MOLT_EINVALID (validation class) or MOLT_ERROR, with its
 * class, code, path and message in molt_error_last(); so is a timeout
 * (runtime error 5) or an oversized result (runtime error 6). */
MOLT_API int molt_unit_call_json(molt_unit *u, const char *function,
				 const char *json_in, char **json_out);

/* Encodes a JSON request for `function` into its request envelope
 * (validated); *out is malloc'd (caller frees). */
MOLT_API int molt_unit_encode_request(molt_unit *u, const char *function,
				      const char *json_in, unsigned char **out,
				      size_t *out_len);

/* Runs one raw envelope through the unit: call, then poll to completion
 * under the unit's options. *out (malloc'd, caller frees) is the result or
 * error envelope; *is_error is 1 for an error envelope. No validation: for
 * byte-level tests. A timeout or an envelope over max_output is MOLT_ERROR
 * (no envelope). */
MOLT_API int molt_unit_call_envelope(molt_unit *u, uint32_t function_id,
				     const unsigned char *env, size_t len,
				     unsigned char **out, size_t *out_len,
				     int *is_error);

/* Encodes a JSON value into an envelope [id, version, payload] of the
 * schema whose document is `schema_json` (the text of a
 * schemas/<id>.v<version>.json file), validated, record fields in schema
 * order: the bytes molt_unit_encode_request makes for the same value. For
 * tools that build envelopes without a loaded unit (expected results in
 * mrecipe test). MOLT_EINVALID names the failing path. *out is malloc'd
 * (caller frees). */
MOLT_API int molt_envelope_encode(const char *schema_json, const char *json_in,
				  unsigned char **out, size_t *out_len);

/* Renders any envelope for people, without a schema:
 * {"schema": ID, "version": N, "payload": <the MsgPack payload as JSON>},
 * bin values as {"bin": "<hex>"}, integers exact. MOLT_EINVALID, saying
 * why, when `env` is not one [str, uint, bin] array or its payload is not
 * one MsgPack value. *json_out is malloc'd (caller frees). */
MOLT_API int molt_envelope_to_json(const unsigned char *env, size_t len,
				   char **json_out);

/* The function_id of `function`, from the unit's manifest (MOLT_ENOTFOUND
 * when it has no such function). */
MOLT_API int molt_unit_function_id(molt_unit *u, const char *function, uint32_t *id);

/* Unloads a unit; NULL is a no-op. */
MOLT_API void molt_unit_free(molt_unit *u);

/* The last error message on this thread ("" if none). */
MOLT_API const char *molt_error_last(void);

/* This host's target triple, e.g. "x86_64-linux-gnu". */
MOLT_API const char *molt_host_triple(void);

/* ---- Units by identity --------------------------------------------------- */

/* The loaded unit's name, exact version, target triple and manifest digest
 * ("sha256:<hex>" of the signed manifest; for molt_unit_load_local, of the
 * manifest file). Owned by the unit. */
MOLT_API const char *molt_unit_name(const molt_unit *u);
MOLT_API const char *molt_unit_version(const molt_unit *u);
MOLT_API const char *molt_unit_target(const molt_unit *u);
MOLT_API const char *molt_unit_manifest_digest(const molt_unit *u);

/* Loads the unit whose signed manifest has digest `manifest_digest`
 * ("sha256:<hex>"): takes the manifest blob from the cache or the registry
 * (blobs/sha256/<hex>, its bytes hashed before use), reads its name,
 * version and target (this host's triple, else MOLT_EVERIFY), then fetches
 * and loads as molt_unit_load does, and requires the registry's signed
 * index to name exactly this manifest for that name@version (MOLT_EVERIFY
 * otherwise, both digests in the message). MOLT_EINVALID for a malformed
 * digest, MOLT_ENOTFOUND when no source has the blob. */
MOLT_API int molt_unit_load_digest(molt_unit **out, molt_runtime *rt,
				   const char *manifest_digest);

/* ---- Lockfiles (molt.lock, docs/runtime.md) ----------------------------------
 * A lockfile pins exact units: one entry per name and target, holding the
 * version, the manifest digest, the artifact's digest and size, and the ids
 * of the keys whose signatures over the manifest verified. It is JSON,
 * format 1, written with sorted entries and stable bytes, so locking the
 * same units from the same registry again gives an identical file. */

#define MOLT_LOCK_FORMAT 1                 /* the format this libmolt reads and writes */
#define MOLT_LOCK_MAX_BYTES (4u << 20)     /* largest lockfile read */
#define MOLT_LOCK_MAX_ENTRIES 4096         /* most entries in one lockfile */

/* A lockfile in memory (opaque). Not thread-safe: use it from one thread
 * at a time, or only read it (every const function) from several. */
typedef struct molt_lockfile molt_lockfile;

/* One entry; every pointer is owned by the lockfile and valid until it is
 * changed (molt_lockfile_add) or freed. */
typedef struct {
	const char *name;
	const char *version;         /* exact */
	const char *target;          /* triple, e.g. "x86_64-linux-gnu" or "wasm32-wasi" */
	const char *manifest_digest; /* "sha256:<hex>" of the signed manifest */
	const char *artifact_digest; /* "sha256:<hex>" of the artifact */
	uint64_t artifact_size;      /* bytes */
	const char *keys;            /* signing key ids, sorted, comma-separated */
} molt_lock_entry;

/* An empty lockfile, to fill with molt_lockfile_add. `path` (may be NULL:
 * "molt.lock") names it in messages. Free with molt_lockfile_free. */
MOLT_API int molt_lockfile_new(molt_lockfile **out, const char *path);

/* Reads a lockfile. MOLT_EINVALID with "file:line:col: ..." for malformed
 * JSON, a member of the wrong type, an unknown member, a duplicate name and
 * target, or a format other than MOLT_LOCK_FORMAT; MOLT_ENOTFOUND for a
 * missing file. Free with molt_lockfile_free. */
MOLT_API int molt_lockfile_open(molt_lockfile **out, const char *path);

/* Frees a lockfile; NULL is a no-op. */
MOLT_API void molt_lockfile_free(molt_lockfile *lf);

/* How many entries it holds. */
MOLT_API size_t molt_lockfile_count(const molt_lockfile *lf);

/* Entry i (0 <= i < count), in the file's order (sorted by name, then
 * target, once written). MOLT_ENOTFOUND past the end. */
MOLT_API int molt_lockfile_get(molt_lock_entry *out, const molt_lockfile *lf, size_t i);

/* The entry for `name` and `target` (NULL: this host's triple).
 * MOLT_ENOTFOUND, saying how to pin it, when there is none. */
MOLT_API int molt_lockfile_entry(molt_lock_entry *out, const molt_lockfile *lf,
				 const char *name, const char *target);

/* Fetches and verifies name@version for `target` (NULL: this host's) as
 * molt_fetch does, and records it, replacing an entry for the same name
 * and target. The keys are those whose signatures over the manifest verify
 * under the runtime's keys or policy. */
MOLT_API int molt_lockfile_add(molt_lockfile *lf, molt_runtime *rt, const char *name,
			       const char *version, const char *target);

/* Writes the lockfile to `path` atomically (temporary file, fsync,
 * rename), entries sorted by name then target. */
MOLT_API int molt_lockfile_write(const molt_lockfile *lf, const char *path);

/* Fetches exactly the entry for `name` and `target` (NULL: this host's)
 * into the cache, verifying it as molt_fetch does, and requires the
 * registry to agree with the lockfile: manifest digest, artifact digest and
 * size. MOLT_EVERIFY otherwise, the message naming the unit, the field, the
 * locked value, the registry's value and what to do. A yanked entry is
 * fetched all the same (the lockfile pins it); *yanked (if not NULL) is
 * set to 1 then, else 0. Writes the manifest digest when `manifest_digest`
 * is not NULL. */
MOLT_API int molt_fetch_locked(molt_runtime *rt, const molt_lockfile *lf, const char *name,
			       const char *target, char manifest_digest[72], int *yanked);

/* Loads the lockfile's entry for `name` and this host's triple: fetched as
 * molt_fetch_locked (the locked digests checked before any code runs),
 * then loaded as molt_unit_load. Free with molt_unit_free. */
MOLT_API int molt_unit_load_locked(molt_unit **out, molt_runtime *rt,
				   const molt_lockfile *lf, const char *name);

/* ---- Unit bundles (docs/bundles.md) --------------------------------------
 * A bundle is one tar file (written by `mrecipe pack`) holding a unit's
 * signed manifest, its minisign signature, its artifact and its schemas,
 * each named by digest, plus bundle.json naming which is which. It is
 * checked and loaded offline, with no registry and no cache. */

#define MOLT_BUNDLE_MAX_ENTRIES 64                   /* entries in one bundle */
#define MOLT_BUNDLE_MAX_ENTRY ((uint64_t)256 << 20)  /* bytes in one entry */
#define MOLT_BUNDLE_MAX_TOTAL ((uint64_t)512 << 20)  /* bytes in all entries */
#define MOLT_BUNDLE_JSON_MAX (64u << 10)            /* bytes of bundle.json */

/* What a verified bundle holds (all NUL-terminated). */
typedef struct {
	char name[128];           /* the unit's name */
	char version[64];         /* its exact version */
	char target[64];          /* its target triple */
	char manifest_digest[72]; /* "sha256:<hex>" of the signed manifest */
} molt_bundle_info;

/* Checks the bundle at `bundle` against the trusted keys (paths of minisign
 * .pub files; at least one), in order: every entry is a regular file named
 * bundle.json or blobs/sha256/<hex> within the caps above (no absolute
 * paths, "..", links, folders or devices, no duplicates); every blob's
 * SHA-256 equals its name; the manifest's signature (key id among the
 * trusted keys, Ed25519, trusted comment "molt unit <name>@<version>
 * <target> <manifest digest>"); the manifest's shape; the artifact's digest
 * and size and every schema against the signed manifest; no entry that the
 * manifest does not name. Any target is accepted. Fills `out` when it is not
 * NULL. MOLT_EVERIFY when a check fails, MOLT_EINVALID for a truncated or
 * malformed bundle, MOLT_ENOTFOUND when the file can't be opened. */
MOLT_API int molt_bundle_verify(molt_bundle_info *out, const char *bundle,
				const char *const *trusted_keys, size_t nkeys);

/* Checks the bundle as molt_bundle_verify does, then that its target is
 * this host's triple, writes its files into a private folder (mode 0700,
 * under $TMPDIR or /tmp), loads them with molt_unit_load_local (which
 * re-checks the digests and runs the unit's molt_init) and removes the
 * folder before returning, whether or not the load succeeded. Free the unit
 * with molt_unit_free. MOLT_EENV when the folder can't be made or dlopen
 * fails. */
MOLT_API int molt_unit_load_bundle(molt_unit **out, const char *bundle,
				   const char *const *trusted_keys, size_t nkeys);

/* ---- A loaded unit's manifest ---------------------------------------------- */

/* The loaded unit's manifest as compact JSON text (one line, NUL-terminated):
 * every member and value of the signed manifest that was verified before the
 * unit was loaded (for molt_unit_load_local and bundles, of the manifest
 * file), re-serialized once at load time, so member order is kept but
 * whitespace is not: its bytes are not the signed bytes, whose digest
 * molt_unit_manifest_digest gives. Lists the unit's "functions" (name, id,
 * input and output schemas), "schemas", "artifact" and "depends" without
 * reading the cache again. Owned by the unit; valid until molt_unit_free. */
MOLT_API const char *molt_unit_manifest_json(const molt_unit *u);

#ifdef __cplusplus
}
#endif

#endif
