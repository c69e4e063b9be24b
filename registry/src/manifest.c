#include "mr/manifest.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SCHEMA_MAX (1 << 20)

int mr_schema_ref_parse(const char *ref, char *id, size_t idlen, int *version)
{
	const char *at = strrchr(ref, '@');
	char *end;
	long v;

	if (!at || at == ref || (size_t)(at - ref) >= idlen)
		return mr_error_set(MR_EINVALID,
				    "'%s' is not a schema reference; expected ID@VERSION, "
				    "e.g. hello.greet_request@1", ref);
	v = strtol(at + 1, &end, 10);
	if (*end || v < 1 || v > 1000000)
		return mr_error_set(MR_EINVALID,
				    "'%s': schema version must be a whole number >= 1", ref);
	memcpy(id, ref, (size_t)(at - ref));
	id[at - ref] = '\0';
	*version = (int)v;
	return 0;
}

int mr_schema_load(mr_buf *out, char digest[MR_DIGEST_STR_LEN + 1],
		   const char *schemas_dir, const char *id, int version)
{
	char name[320], *path;
	mr_json *doc = NULL;
	const cJSON *root, *v;
	size_t start = out->len;
	int rc;

	snprintf(name, sizeof(name), "%s.v%d.json", id, version);
	if (!(path = mr_fs_join(schemas_dir, name)))
		return mr_error_set(MR_ERROR, "out of memory");
	if ((rc = mr_json_load(&doc, path, SCHEMA_MAX))) {
		if (rc == MR_ENOTFOUND)
			mr_error_set(rc, "schema %s@%d: expected the file %s", id,
				     version, path);
		goto done;
	}
	root = mr_json_root(doc);
	v = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!mr_json_str(root, "id") || strcmp(mr_json_str(root, "id"), id) ||
	    !mr_json_is_int(v, version, version) ||
	    !cJSON_GetObjectItemCaseSensitive(root, "type")) {
		rc = mr_error_set(MR_EINVALID,
				  "%s: expected a schema with \"id\": \"%s\", \"version\": %d "
				  "and a \"type\" (docs/schemas.md)", path, id, version);
		goto done;
	}
	if (!(rc = mr_json_canonical(out, root)))
		mr_digest_buf(digest, out->data + start, out->len - start);
done:
	mr_json_free(doc);
	free(path);
	return rc;
}

static int field(const cJSON *m, const char *key, const char *want)
{
	const char *have = mr_json_str(m, key);

	if (!have)
		return mr_error_set(MR_EVERIFY, "manifest has no '%s' string", key);
	if (want && strcmp(have, want))
		return mr_error_set(MR_EVERIFY,
				    "wrong software: asked for %s '%s', the signed "
				    "manifest says '%s'", key, want, have);
	return 0;
}

int mr_manifest_check(const cJSON *m, const char *name, const char *version,
		      const char *target)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "artifact");
	const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(m, "format");
	int rc;

	if (!cJSON_IsObject(m) || !mr_json_is_int(fmt, 1, 1))
		return mr_error_set(MR_EVERIFY,
				    "not a format-1 unit manifest; upgrade molt if the "
				    "registry is newer");
	if ((rc = field(m, "name", name)) || (rc = field(m, "version", version)) ||
	    (rc = field(m, "target", target)) || (rc = field(m, "abi_version", NULL)))
		return rc;
	if (!cJSON_IsObject(a) || !mr_json_str(a, "digest") ||
	    !mr_digest_valid(mr_json_str(a, "digest")) ||
	    !mr_json_is_int(cJSON_GetObjectItemCaseSensitive(a, "size"), 0, 9e15))
		return mr_error_set(MR_EVERIFY,
				    "manifest 'artifact' needs a sha256 'digest' and a 'size'");
	return 0;
}

const char *mr_host_triple(void)
{
#if defined(__x86_64__)
	return "x86_64-linux-gnu";
#elif defined(__aarch64__)
	return "aarch64-linux-gnu";
#else
	return "unknown-linux-gnu";
#endif
}
