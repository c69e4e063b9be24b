/* Unit manifests and schema files (docs/registry.md, docs/schemas.md). */
#ifndef MR_MANIFEST_H
#define MR_MANIFEST_H

#include "mr/buf.h"
#include "mr/digest.h"

#include <cjson/cJSON.h>

/* Loads schemas_dir/<id>.v<version>.json and appends its canonical JSON to
 * `out`; writes its digest. MR_ENOTFOUND names the expected file; a file
 * whose id or version disagree with its name is MR_EINVALID. */
int mr_schema_load(mr_buf *out, char digest[MR_DIGEST_STR_LEN + 1],
		   const char *schemas_dir, const char *id, int version);

/* Splits "id@version" into `id` (caller-provided, `idlen` bytes) and a
 * version. MR_EINVALID if malformed. */
int mr_schema_ref_parse(const char *ref, char *id, size_t idlen, int *version);

/* Checks a parsed manifest's shape and that it names `name`, `version` and
 * `target` when those are not NULL ("wrong software" defence). The message
 * says which field differs, expected and found. */
int mr_manifest_check(const cJSON *m, const char *name, const char *version,
		      const char *target);

/* This host's target triple for native units, e.g. "x86_64-linux-gnu". */
const char *mr_host_triple(void);

#endif
