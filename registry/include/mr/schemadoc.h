/* Schema documents (docs/schemas.md): checking a schema file completely,
 * its canonical form and digest, and what changed between two versions. */
#ifndef MR_SCHEMADOC_H
#define MR_SCHEMADOC_H

#include "mr/digest.h"

#include <cjson/cJSON.h>
#include <stddef.h>

/* A schema file is refused past this size. */
#define MR_SCHEMADOC_MAX_SIZE (1 << 20)

/* How many list, map, record and nullable a type may nest (MsgPack readers
 * such as msgpack-c stop at 32 nested containers). */
#define MR_SCHEMADOC_MAX_DEPTH 32

/* A checked schema document (opaque). */
typedef struct mr_schemadoc mr_schemadoc;

/* Parses and checks `text` as a schema document: id, version, codec, doc,
 * the type language (every type form, field names, enum values, depth), no
 * unknown or repeated keys, UTF-8 text without U+0000. `file` names the text
 * in messages. On problems returns MR_EINVALID with one line per problem,
 * "file:line:col: path: what was expected, what was found". The file name
 * is not checked (see mr_schemadoc_load). The caller frees *out with
 * mr_schemadoc_free. */
int mr_schemadoc_parse(mr_schemadoc **out, const char *file, const char *text, size_t len);

/* Reads `path` (at most MR_SCHEMADOC_MAX_SIZE bytes) and parses it as
 * above; its base name must also be "<id>.v<version>.json". MR_ENOTFOUND
 * if the file does not exist. */
int mr_schemadoc_load(mr_schemadoc **out, const char *path);

/* The schema's id, e.g. "hello.greet_request" (owned by the document). */
const char *mr_schemadoc_id(const mr_schemadoc *d);

/* The schema's version (≥ 1). */
int mr_schemadoc_version(const mr_schemadoc *d);

/* "msgpack" or "arrow" (owned by the document). */
const char *mr_schemadoc_codec(const mr_schemadoc *d);

/* The "type" member (owned by the document). */
const cJSON *mr_schemadoc_type(const mr_schemadoc *d);

/* The canonical JSON (mr_json_canonical) and its length (owned by the
 * document; NUL-terminated). */
const char *mr_schemadoc_canonical(const mr_schemadoc *d, size_t *len);

/* The digest of the canonical JSON, "sha256:<hex>" (owned by the
 * document); equal to what mr_schema_load writes into manifests. */
const char *mr_schemadoc_digest(const mr_schemadoc *d);

/* Frees a document; NULL is a no-op. */
void mr_schemadoc_free(mr_schemadoc *d);

/* One difference between two versions of a schema. */
typedef struct {
	char *path;   /* where in the type, e.g. "rows[].name": fields joined
			 by ".", "[]" list items, "{}" map values, "" the
			 root; or "codec", "doc" (owned) */
	char *what;   /* what changed, for people (owned) */
	int breaking; /* 0 only for an added optional field, or what does not
			 change which values validate (doc text, order) */
} mr_schemadoc_change;

/* Every difference, in type-tree order. */
typedef struct {
	mr_schemadoc_change *items; /* owned */
	size_t n;                   /* how many items */
	int breaking;               /* 1 if any item is breaking */
} mr_schemadoc_changes;

/* Compares two versions of one schema (docs/schemas.md, Evolution). Fills
 * `out` (the caller frees it with mr_schemadoc_changes_free, also after an
 * error). MR_EINVALID if the ids differ. */
int mr_schemadoc_diff(mr_schemadoc_changes *out, const mr_schemadoc *old_doc,
		      const mr_schemadoc *new_doc);

/* Frees the items of `c` and zeroes it; NULL is a no-op. */
void mr_schemadoc_changes_free(mr_schemadoc_changes *c);

/* The length of the longest well-formed UTF-8 prefix of `s` (Unicode
 * Table 3-7: no overlong forms, surrogates or code points past U+10FFFF);
 * `n` when all of it is well-formed. */
size_t mr_schemadoc_utf8_span(const void *s, size_t n);

/* Appends a map key or field name (`len` bytes) to the NUL-terminated value
 * path in `path` (`n` bytes), as both validators write paths: ".key" ("key"
 * at the start) for an identifier [A-Za-z_][A-Za-z0-9_]*, otherwise
 * ["key"] escaped as JSON.stringify does. Truncates to fit. Returns the
 * old length, so the caller can cut the path back. */
size_t mr_schemadoc_path_key(char *path, size_t n, const char *key, size_t len);

#endif
