#define _GNU_SOURCE
#include "cmd.h"

#include "molt/molt.h"
#include "mr/digest.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mr/registry.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KEYS 16
#define MAX_BLOBS 64
#define INDEX_MAX ((size_t)16 << 20)
#define SMALL_MAX ((size_t)1 << 20)

static const mr_opt opts[] = {
	{ "registry", 'r', "DIR", "the registry folder to take the unit from" },
	{ "target", 't', "TRIPLE", "target triple (default: this host's)" },
	{ "key", 'k', "FILE[:FILE]", "trusted public key(s): check the manifest's signature "
				     "while packing and the bundle once written" },
	{ "output", 'o', "FILE", "the bundle to write (conventionally NAME-VERSION.molt)" },
	{ NULL, 0, NULL, NULL },
};

/* One blob going into the bundle. */
typedef struct {
	char digest[MR_DIGEST_STR_LEN + 1];
	mr_buf data;
} blob;

typedef struct {
	blob b[MAX_BLOBS];
	size_t n;
} blobs;

/* Reads registry blob `digest` (at most `max` bytes), checks its digest and,
 * when `size` >= 0, its size, and adds it once. */
static int take(blobs *bs, const char *reg, const char *digest, size_t max, double size,
		mr_buf **out)
{
	char have[MR_DIGEST_STR_LEN + 1], *path;
	blob *b;
	size_t i;
	int rc;

	for (i = 0; i < bs->n; i++)
		if (!strcmp(bs->b[i].digest, digest)) {
			*out = &bs->b[i].data;
			return 0;
		}
	if (!mr_digest_valid(digest))
		return mr_error_set(MR_EVERIFY, "%s: '%s' is not a sha256:<hex> digest", reg, digest);
	if (bs->n == MAX_BLOBS)
		return mr_error_set(MR_EINVALID, "more than %d blobs for one unit", MAX_BLOBS);
	if (!(path = mr_blob_path(reg, digest)))
		return mr_error_set(MR_ERROR, "out of memory");
	b = &bs->b[bs->n];
	b->data = (mr_buf)MR_BUF_INIT;
	b->data.max = max;
	if (!(rc = mr_fs_read(&b->data, path, max))) {
		mr_digest_buf(have, b->data.data, b->data.len);
		if (strcmp(have, digest))
			rc = mr_error_set(MR_EVERIFY, "%s: digest mismatch: expected %s, the bytes hash "
						      "to %s; repair the registry (mrecipe verify) "
						      "before packing", path, digest, have);
		else if (size >= 0 && (double)b->data.len != size)
			rc = mr_error_set(MR_EVERIFY, "%s: expected %.0f bytes, found %zu", path, size,
					  b->data.len);
	}
	free(path);
	if (rc) {
		mr_buf_free(&b->data);
		return rc;
	}
	snprintf(b->digest, sizeof(b->digest), "%s", digest);
	*out = &b->data;
	bs->n++;
	return 0;
}

/* The index entry versions[version][target] of unit `name`. */
static int find_entry(cJSON **index, const cJSON **entry, const char *reg, const char *name,
		      const char *version, const char *target)
{
	char *path = NULL;
	mr_json *doc = NULL;
	const cJSON *v;
	int rc;

	*index = NULL;
	if (!*name || strchr(name, '/') || name[0] == '.')
		return mr_error_set(MR_EINVALID, "'%s' is not a unit name", name);
	if (asprintf(&path, "%s/index/%s.json", reg, name) < 0)
		return mr_error_set(MR_ERROR, "out of memory");
	if (!mr_fs_exists(path)) {
		rc = mr_error_set(MR_ENOTFOUND, "no unit named '%s' in registry %s (%s is missing)",
				  name, reg, path);
		goto done;
	}
	if ((rc = mr_json_load(&doc, path, INDEX_MAX)))
		goto done;
	if (!(*index = cJSON_Duplicate(mr_json_root(doc), 1))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(*index, "versions"),
					     version);
	if (!v)
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s is not in registry %s (see %s for its versions)",
				  name, version, reg, path);
	else if (!(*entry = cJSON_GetObjectItemCaseSensitive(v, target)))
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s has no build for %s in registry %s (pass "
						"--target with one %s lists)", name, version, target,
				  reg, path);
	else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(*entry, "yanked")))
		rc = mr_error_set(MR_EINVALID, "%s@%s (%s) is yanked in %s; refusing to pack it", name,
				  version, target, reg);
done:
	mr_json_free(doc);
	free(path);
	return rc;
}

static int by_digest(const void *a, const void *b)
{
	return strcmp(((const blob *)a)->digest, ((const blob *)b)->digest);
}

static int add_entry(struct archive *a, const char *name, const void *data, size_t len)
{
	struct archive_entry *e = archive_entry_new();
	int rc = 0;

	if (!e)
		return mr_error_set(MR_ERROR, "out of memory");
	/* Fixed metadata: the same unit always packs to the same bytes. */
	archive_entry_set_pathname(e, name);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, (la_int64_t)len);
	archive_entry_set_mtime(e, 0, 0);
	archive_entry_set_uid(e, 0);
	archive_entry_set_gid(e, 0);
	if (archive_write_header(a, e) != ARCHIVE_OK ||
	    (len && archive_write_data(a, data, len) != (la_ssize_t)len))
		rc = mr_error_set(MR_EIO, "writing bundle entry %s: %s", name, archive_error_string(a));
	archive_entry_free(e);
	return rc;
}

/* Writes the tar to `out` atomically: blobs sorted by digest, then bundle.json. */
static int write_bundle(const char *out, blobs *bs, const char *index_json)
{
	struct archive *a = archive_write_new();
	char *tmp = NULL, name[96];
	size_t i;
	int rc = 0;

	if (!a || asprintf(&tmp, "%s.tmp.%ld", out, (long)getpid()) < 0) {
		tmp = NULL;
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	qsort(bs->b, bs->n, sizeof(bs->b[0]), by_digest);
	archive_write_set_format_ustar(a);
	archive_write_add_filter_none(a);
	if (archive_write_open_filename(a, tmp) != ARCHIVE_OK) {
		rc = mr_error_set(MR_EIO, "creating %s: %s", tmp, archive_error_string(a));
		goto done;
	}
	for (i = 0; !rc && i < bs->n; i++) {
		snprintf(name, sizeof(name), "blobs/sha256/%s", bs->b[i].digest + 7);
		rc = add_entry(a, name, bs->b[i].data.data, bs->b[i].data.len);
	}
	if (!rc)
		rc = add_entry(a, "bundle.json", index_json, strlen(index_json));
	if (!rc && archive_write_close(a) != ARCHIVE_OK)
		rc = mr_error_set(MR_EIO, "writing %s: %s", tmp, archive_error_string(a));
	if (!rc && rename(tmp, out))
		rc = mr_error_sys(MR_EIO, "renaming %s to %s", tmp, out);
done:
	if (a)
		archive_write_free(a);
	if (rc && tmp)
		unlink(tmp);
	free(tmp);
	return rc;
}

/* bundle.json: which blob is what (docs/bundles.md), canonical JSON. */
static int describe(mr_buf *out, const cJSON *m, const char *mdigest, const char *sdigest)
{
	cJSON *j = cJSON_CreateObject(), *list;
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, "schemas");
	int rc;

	if (!j)
		return mr_error_set(MR_ERROR, "out of memory");
	cJSON_AddNumberToObject(j, "format", 1);
	cJSON_AddStringToObject(j, "name", mr_json_str(m, "name"));
	cJSON_AddStringToObject(j, "version", mr_json_str(m, "version"));
	cJSON_AddStringToObject(j, "target", mr_json_str(m, "target"));
	cJSON_AddStringToObject(j, "manifest", mdigest);
	cJSON_AddStringToObject(j, "signature", sdigest);
	cJSON_AddStringToObject(j, "artifact",
				mr_json_str(cJSON_GetObjectItemCaseSensitive(m, "artifact"), "digest"));
	list = cJSON_AddArrayToObject(j, "schemas");
	for (s = s ? s->child : NULL; s; s = s->next)
		cJSON_AddItemToArray(list, cJSON_CreateString(mr_json_str(s, "digest")));
	rc = mr_json_canonical(out, j);
	cJSON_Delete(j);
	return rc;
}

/* Takes the manifest, signature, artifact and schemas from the registry,
 * checking each. */
static int collect(blobs *bs, cJSON **manifest, const char *reg, const cJSON *entry,
		   const char *name, const char *version, const char *target,
		   const mr_pubkey *keys, size_t nkeys)
{
	const char *mdigest = mr_json_str(entry, "manifest"), *sdigest = mr_json_str(entry, "signature");
	const cJSON *a, *s;
	mr_buf *mb, *sb, *xb;
	char *tc = NULL, want[512];
	cJSON *m = NULL;
	int rc;

	*manifest = NULL;
	if ((rc = take(bs, reg, mdigest ? mdigest : "", SMALL_MAX, -1, &mb)) ||
	    (rc = take(bs, reg, sdigest ? sdigest : "", SMALL_MAX, -1, &sb)))
		return rc;
	if (!(m = cJSON_ParseWithLength((const char *)mb->data, mb->len)))
		return mr_error_set(MR_EVERIFY, "%s: manifest %s is not JSON", reg, mdigest);
	if ((rc = mr_manifest_check(m, name, version, target))) {
		mr_error_wrap(rc, "%s: manifest %s", reg, mdigest);
		goto done;
	}
	if (nkeys) {
		if ((rc = mr_verify(keys, nkeys, (const char *)sb->data, sb->len, mb->data, mb->len, &tc))) {
			mr_error_wrap(rc, "%s: signature %s of manifest %s", reg, sdigest, mdigest);
			goto done;
		}
		mr_unit_comment(want, sizeof(want), name, version, target, mdigest);
		if (strcmp(tc, want)) {
			rc = mr_error_set(MR_EVERIFY, "%s: signature %s: trusted comment is '%s', "
						      "expected '%s'", reg, sdigest, tc, want);
			goto done;
		}
	}
	a = cJSON_GetObjectItemCaseSensitive(m, "artifact");
	if ((rc = take(bs, reg, mr_json_str(a, "digest"), (size_t)MOLT_BUNDLE_MAX_ENTRY,
		       cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble, &xb)))
		goto done;
	s = cJSON_GetObjectItemCaseSensitive(m, "schemas");
	for (s = s ? s->child : NULL; !rc && s; s = s->next)
		rc = take(bs, reg, mr_json_str(s, "digest") ? mr_json_str(s, "digest") : "",
			  SMALL_MAX, -1, &xb);
done:
	free(tc);
	if (rc)
		cJSON_Delete(m);
	else
		*manifest = m;
	return rc;
}

/* Packs one unit of a registry into a single bundle file. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *reg = mr_args_get(cmd, args, "registry"), *out = mr_args_get(cmd, args, "output");
	const char *target = mr_args_get(cmd, args, "target"), *keyarg = mr_args_get(cmd, args, "key");
	const char *paths[MAX_KEYS];
	char name[128], version[64], *at, *copy = NULL, *save = NULL, *k;
	mr_pubkey keys[MAX_KEYS];
	mr_buf desc = MR_BUF_INIT;
	cJSON *index = NULL, *m = NULL;
	const cJSON *entry = NULL;
	molt_bundle_info info;
	blobs *bs = NULL;
	size_t nkeys = 0, i;
	int rc = 0;

	if (!reg || !out || args->nrest != 1) {
		mr_cli_error(PROG, "pack needs --registry DIR, -o FILE and one NAME@VERSION, e.g. "
				   "mrecipe pack -r build/registry -k dev.pub hello@0.1.0 -o hello.molt");
		return 2;
	}
	at = strchr(args->rest[0], '@');
	if (!at || at == args->rest[0] || !at[1] || (size_t)(at - args->rest[0]) >= sizeof(name) ||
	    strlen(at + 1) >= sizeof(version)) {
		mr_cli_error(PROG, "'%s': expected NAME@VERSION with an exact version, e.g. hello@0.1.0",
			     args->rest[0]);
		return 2;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(at - args->rest[0]), args->rest[0]);
	snprintf(version, sizeof(version), "%s", at + 1);
	if (!target)
		target = mr_host_triple();
	if (keyarg) {
		if (!(copy = strdup(keyarg)))
			return mr_cli_fail(PROG, mr_error_set(MR_ERROR, "out of memory"));
		for (k = strtok_r(copy, ":", &save); k && nkeys < MAX_KEYS; k = strtok_r(NULL, ":", &save)) {
			paths[nkeys] = k;
			if ((rc = mr_pubkey_load(&keys[nkeys++], k))) {
				rc = mr_cli_fail(PROG, rc);
				goto done;
			}
		}
	} else {
		fprintf(stderr, "%s: note: no --key given: digests are checked but the manifest's "
				"signature is not\n", PROG);
	}
	if (!(bs = calloc(1, sizeof(*bs)))) {
		rc = mr_cli_fail(PROG, mr_error_set(MR_ERROR, "out of memory"));
		goto done;
	}
	if ((rc = find_entry(&index, &entry, reg, name, version, target)) ||
	    (rc = collect(bs, &m, reg, entry, name, version, target, keys, nkeys)) ||
	    (rc = describe(&desc, m, mr_json_str(entry, "manifest"), mr_json_str(entry, "signature"))) ||
	    (rc = write_bundle(out, bs, (const char *)desc.data))) {
		mr_error_wrap(rc, "packing %s@%s (%s)", name, version, target);
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	/* Read back what was written, through the same checks molt makes. */
	if (nkeys && (rc = molt_bundle_verify(&info, out, paths, nkeys))) {
		mr_error_wrap(rc, "checking the bundle just written");
		rc = mr_cli_fail(PROG, rc);
		unlink(out);
		goto done;
	}
	printf("packed %s@%s (%s) into %s: manifest %s, %zu blobs%s\n", name, version, target, out,
	       mr_json_str(entry, "manifest"), bs->n, nkeys ? ", signature verified" : "");
done:
	if (bs)
		for (i = 0; i < bs->n; i++)
			mr_buf_free(&bs->b[i].data);
	free(bs);
	free(copy);
	mr_buf_free(&desc);
	cJSON_Delete(index);
	cJSON_Delete(m);
	return rc;
}

const mr_cmd mrecipe_cmd_pack = {
	"pack", "pack one unit of a registry into a single verifiable bundle file",
	"--registry DIR [--key FILE] [--target TRIPLE] -o FILE NAME@VERSION", opts, run,
};
