/* Unit bundles (docs/bundles.md): one tar holding a unit's signed manifest,
 * its signature, artifact and schemas, checked and loaded offline. */
#define _GNU_SOURCE
#include "internal.h"

#include "mr/digest.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mr/minisign.h"
#include "mr/registry.h"

#include <archive.h>
#include <archive_entry.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOB_PREFIX "blobs/sha256/"

typedef struct {
	char name[96];  /* "bundle.json" or "blobs/sha256/<hex>" */
	mr_buf data;    /* the entry's bytes */
	int referenced; /* named by bundle.json */
} entry;

typedef struct {
	entry e[MOLT_BUNDLE_MAX_ENTRIES];
	size_t n;
} bundle;

static void bundle_free(bundle *b)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		mr_buf_free(&b->e[i].data);
	b->n = 0;
}

static int is_blob_name(const char *s)
{
	size_t i;

	if (strncmp(s, BLOB_PREFIX, sizeof(BLOB_PREFIX) - 1))
		return 0;
	s += sizeof(BLOB_PREFIX) - 1;
	for (i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return s[64] == '\0';
}

/* Checks one header before any of its bytes are read. */
static int check_header(const char *path, struct archive_entry *ae, const bundle *b)
{
	const char *name = archive_entry_pathname(ae);
	size_t i;

	if (!name)
		return mr_error_set(MR_EVERIFY, "%s: refusing an entry without a name", path);
	if (name[0] == '/' || strstr(name, ".."))
		return mr_error_set(MR_EVERIFY, "%s: refusing entry '%s': absolute paths and '..' "
						"are not allowed in a bundle", path, name);
	if (archive_entry_filetype(ae) != AE_IFREG || archive_entry_hardlink(ae) ||
	    archive_entry_symlink(ae))
		return mr_error_set(MR_EVERIFY, "%s: refusing entry '%s': a bundle holds regular "
						"files only, not links, folders or devices", path, name);
	if (strcmp(name, "bundle.json") && !is_blob_name(name))
		return mr_error_set(MR_EVERIFY, "%s: refusing unknown entry '%s': a bundle holds only "
						"bundle.json and blobs/sha256/<64 hex> (docs/bundles.md)",
				    path, name);
	if (!archive_entry_size_is_set(ae) || archive_entry_size(ae) < 0 ||
	    (uint64_t)archive_entry_size(ae) > MOLT_BUNDLE_MAX_ENTRY)
		return mr_error_set(MR_EVERIFY, "%s: refusing entry '%s': its size is unknown or over "
						"the %llu-byte cap", path, name,
				    (unsigned long long)MOLT_BUNDLE_MAX_ENTRY);
	for (i = 0; i < b->n; i++)
		if (!strcmp(b->e[i].name, name))
			return mr_error_set(MR_EVERIFY, "%s: refusing a second entry named '%s'", path,
					    name);
	if (b->n == MOLT_BUNDLE_MAX_ENTRIES)
		return mr_error_set(MR_EVERIFY, "%s: more than %d entries; a bundle holds one unit",
				    path, MOLT_BUNDLE_MAX_ENTRIES);
	return 0;
}

/* Reads every entry into memory, refusing anything unexpected. */
static int bundle_read(bundle *b, const char *path)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	size_t total = 0;
	int rc = 0, r;

	if (!a)
		return mr_error_set(MR_ERROR, "out of memory");
	archive_read_support_format_tar(a);
	if (!mr_fs_exists(path)) {
		rc = mr_error_set(MR_ENOTFOUND, "bundle %s: no such file", path);
		goto done;
	}
	if (archive_read_open_filename(a, path, 1 << 16) != ARCHIVE_OK) {
		rc = mr_error_set(MR_EINVALID, "bundle %s: %s; it is not a tar written by 'mrecipe "
					       "pack', or it is truncated: copy or pack it again",
				  path, archive_error_string(a));
		goto done;
	}
	while ((r = archive_read_next_header(a, &ae)) == ARCHIVE_OK) {
		entry *e = &b->e[b->n];
		unsigned char chunk[1 << 16];
		la_ssize_t got;

		if ((rc = check_header(path, ae, b)))
			goto done;
		snprintf(e->name, sizeof(e->name), "%s", archive_entry_pathname(ae));
		e->data = (mr_buf)MR_BUF_INIT;
		e->data.max = (size_t)archive_entry_size(ae);
		e->referenced = 0;
		b->n++;
		total += (size_t)archive_entry_size(ae);
		if (total > MOLT_BUNDLE_MAX_TOTAL) {
			rc = mr_error_set(MR_EVERIFY, "%s: entries add up to more than the %llu-byte cap",
					  path, (unsigned long long)MOLT_BUNDLE_MAX_TOTAL);
			goto done;
		}
		while ((got = archive_read_data(a, chunk, sizeof(chunk))) > 0)
			if (mr_buf_put(&e->data, chunk, (size_t)got)) {
				rc = mr_error_set(MR_EVERIFY, "%s: entry '%s' holds more bytes than its header says",
					     path, e->name);
				goto done;
			}
		if (got < 0 || e->data.len != (size_t)archive_entry_size(ae)) {
			rc = mr_error_set(MR_EINVALID, "%s: entry '%s' is cut short (%s); the bundle is "
						       "truncated or damaged: copy or pack it again",
					  path, e->name, got < 0 ? archive_error_string(a) : "short read");
			goto done;
		}
	}
	if (r != ARCHIVE_EOF)
		rc = mr_error_set(MR_EINVALID, "%s: not a complete bundle: %s; the file is truncated or "
					       "not a tar written by 'mrecipe pack': copy or pack it again",
				  path, archive_error_string(a));
done:
	archive_read_free(a);
	return rc;
}

static entry *find(bundle *b, const char *name)
{
	size_t i;

	for (i = 0; i < b->n; i++)
		if (!strcmp(b->e[i].name, name))
			return &b->e[i];
	return NULL;
}

/* The blob entry holding `digest`, marked as referenced; NULL if absent. */
static entry *blob(bundle *b, const char *digest)
{
	char name[96];
	entry *e;

	if (!mr_digest_valid(digest))
		return NULL;
	snprintf(name, sizeof(name), BLOB_PREFIX "%s", digest + 7);
	if ((e = find(b, name)))
		e->referenced = 1;
	return e;
}

static int check_digests(bundle *b, const char *path)
{
	char have[MR_DIGEST_STR_LEN + 1];
	size_t i;

	for (i = 0; i < b->n; i++) {
		const char *hex = b->e[i].name + sizeof(BLOB_PREFIX) - 1;
		if (!is_blob_name(b->e[i].name))
			continue;
		mr_digest_buf(have, b->e[i].data.data, b->e[i].data.len);
		if (strcmp(have + 7, hex))
			return mr_error_set(MR_EVERIFY, "%s: %s: digest mismatch: the name says sha256:%s, "
							"the bytes hash to %s; the bundle was altered "
							"after packing: refusing it",
					    path, b->e[i].name, hex, have);
	}
	return 0;
}

/* Everything but the host check: names, digests, signature, manifest. On
 * success *manifest is the parsed signed manifest (caller deletes). */
static int bundle_check(bundle *b, cJSON **manifest, char mdigest[MR_DIGEST_STR_LEN + 1],
			const char *path, const mr_pubkey *keys, size_t nkeys)
{
	cJSON *index = NULL, *m = NULL;
	const cJSON *s, *a;
	entry *ej, *em, *es, *ea;
	char *tc = NULL, want[512];
	size_t i;
	int rc;

	*manifest = NULL;
	if ((rc = check_digests(b, path)))
		return rc;
	if (!(ej = find(b, "bundle.json")) || ej->data.len > MOLT_BUNDLE_JSON_MAX ||
	    !(index = cJSON_ParseWithLength((const char *)ej->data.data, ej->data.len)) ||
	    !mr_json_is_int(cJSON_GetObjectItemCaseSensitive(index, "format"), 1, 1)) {
		rc = mr_error_set(MR_EINVALID, "%s: bundle.json is missing, over %u bytes, not JSON or "
					       "not format 1; pack the unit again with 'mrecipe pack'",
				  path, MOLT_BUNDLE_JSON_MAX);
		goto done;
	}
	ej->referenced = 1;
	if (!(em = blob(b, mr_json_str(index, "manifest"))) ||
	    !(es = blob(b, mr_json_str(index, "signature"))) ||
	    !(ea = blob(b, mr_json_str(index, "artifact")))) {
		rc = mr_error_set(MR_EVERIFY, "%s: bundle.json names a manifest, signature or artifact "
					      "blob the bundle does not hold", path);
		goto done;
	}
	snprintf(mdigest, MR_DIGEST_STR_LEN + 1, "%s", mr_json_str(index, "manifest"));
	if ((rc = mr_verify(keys, nkeys, (const char *)es->data.data, es->data.len, em->data.data,
			    em->data.len, &tc))) {
		mr_error_wrap(rc, "%s: manifest %s", path, mdigest);
		goto done;
	}
	if (!(m = cJSON_ParseWithLength((const char *)em->data.data, em->data.len))) {
		rc = mr_error_set(MR_EVERIFY, "%s: manifest %s is signed but is not JSON", path, mdigest);
		goto done;
	}
	if ((rc = mr_manifest_check(m, NULL, NULL, NULL))) {
		mr_error_wrap(rc, "%s: manifest %s", path, mdigest);
		goto done;
	}
	mr_unit_comment(want, sizeof(want), mr_json_str(m, "name"), mr_json_str(m, "version"),
			mr_json_str(m, "target"), mdigest);
	if (strcmp(tc, want)) {
		rc = mr_error_set(MR_EVERIFY, "%s: the signature's trusted comment is '%s'; expected "
					      "'%s': the signature is another unit's", path, tc, want);
		goto done;
	}
	a = cJSON_GetObjectItemCaseSensitive(m, "artifact");
	if (strcmp(mr_json_str(a, "digest"), mr_json_str(index, "artifact")) ||
	    cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble != (double)ea->data.len) {
		rc = mr_error_set(MR_EVERIFY, "%s: the signed manifest's artifact is %s (%.0f bytes); "
					      "bundle.json names %s (%zu bytes)", path,
				  mr_json_str(a, "digest"),
				  cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble,
				  mr_json_str(index, "artifact"), ea->data.len);
		goto done;
	}
	s = cJSON_GetObjectItemCaseSensitive(m, "schemas");
	for (s = s ? s->child : NULL; s; s = s->next)
		if (!blob(b, mr_json_str(s, "digest"))) {
			rc = mr_error_set(MR_EVERIFY, "%s: schema %s (%s) named by the manifest is "
						      "missing from the bundle", path,
					  mr_json_str(s, "id") ? mr_json_str(s, "id") : "?",
					  mr_json_str(s, "digest") ? mr_json_str(s, "digest") : "?");
			goto done;
		}
	for (i = 0; i < b->n; i++)
		if (!b->e[i].referenced) {
			rc = mr_error_set(MR_EVERIFY, "%s: refusing unknown entry '%s': neither the "
						      "signed manifest nor its signature names it",
					  path, b->e[i].name);
			goto done;
		}
	*manifest = m;
	m = NULL;
done:
	free(tc);
	cJSON_Delete(m);
	cJSON_Delete(index);
	return rc;
}

static int load_keys(mr_pubkey **out, const char *const *paths, size_t n)
{
	size_t i;
	int rc;

	*out = NULL;
	if (!n)
		return mr_error_set(MR_EINVALID, "no trusted keys: a bundle is checked against at "
						 "least one minisign public key");
	if (!(*out = calloc(n, sizeof(**out))))
		return mr_error_set(MR_ERROR, "out of memory");
	for (i = 0; i < n; i++)
		if ((rc = mr_pubkey_load(&(*out)[i], paths[i]))) {
			free(*out);
			*out = NULL;
			return rc;
		}
	return 0;
}

/* Reads and checks a bundle; on success *m is its signed manifest. */
static int open_checked(bundle *b, cJSON **m, char mdigest[MR_DIGEST_STR_LEN + 1],
			const char *path, const char *const *trusted_keys, size_t nkeys)
{
	mr_pubkey *keys = NULL;
	int rc;

	if (!(rc = load_keys(&keys, trusted_keys, nkeys)) && !(rc = bundle_read(b, path)))
		rc = bundle_check(b, m, mdigest, path, keys, nkeys);
	free(keys);
	return rc;
}

int molt_bundle_verify(molt_bundle_info *out, const char *path,
		       const char *const *trusted_keys, size_t nkeys)
{
	char mdigest[MR_DIGEST_STR_LEN + 1];
	bundle *b = calloc(1, sizeof(*b));
	cJSON *m = NULL;
	int rc;

	if (!b)
		return mr_error_set(MR_ERROR, "out of memory");
	if (!(rc = open_checked(b, &m, mdigest, path, trusted_keys, nkeys)) && out) {
		snprintf(out->name, sizeof(out->name), "%s", mr_json_str(m, "name"));
		snprintf(out->version, sizeof(out->version), "%s", mr_json_str(m, "version"));
		snprintf(out->target, sizeof(out->target), "%s", mr_json_str(m, "target"));
		snprintf(out->manifest_digest, sizeof(out->manifest_digest), "%s", mdigest);
	}
	cJSON_Delete(m);
	bundle_free(b);
	free(b);
	return rc;
}

static int put(const char *dir, const char *name, const mr_buf *data)
{
	char *p = mr_fs_join(dir, name);
	int rc = p ? mr_fs_write_atomic(p, data->data, data->len, 0600)
		   : mr_error_set(MR_ERROR, "out of memory");

	free(p);
	return rc;
}

/* Writes the checked files into `dir` as molt_unit_load_local reads them. */
static int extract(bundle *b, const cJSON *m, const char *mdigest, const char *dir)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, "schemas");
	const char *art = mr_json_str(cJSON_GetObjectItemCaseSensitive(m, "artifact"), "digest");
	char name[300];
	int rc;

	if ((rc = put(dir, "manifest.json", &blob(b, mdigest)->data)) ||
	    (rc = put(dir, "unit.so", &blob(b, art)->data)))
		return rc;
	for (s = s ? s->child : NULL; s; s = s->next) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "version");
		const char *id = mr_json_str(s, "id");
		if (!id || strchr(id, '/') || id[0] == '.' || !mr_json_is_int(v, 1, 1000000))
			return mr_error_set(MR_EVERIFY, "manifest %s: a schema entry has a bad id or "
							"version", mdigest);
		snprintf(name, sizeof(name), "%s.v%d.json", id, (int)v->valuedouble);
		if ((rc = put(dir, name, &blob(b, mr_json_str(s, "digest"))->data)))
			return rc;
	}
	return 0;
}

int molt_unit_load_bundle(molt_unit **out, const char *path,
			  const char *const *trusted_keys, size_t nkeys)
{
	char mdigest[MR_DIGEST_STR_LEN + 1], *dir = NULL, *mpath = NULL, *apath = NULL;
	const char *tmp = getenv("TMPDIR");
	bundle *b = calloc(1, sizeof(*b));
	cJSON *m = NULL;
	int rc;

	*out = NULL;
	if (!b)
		return mr_error_set(MR_ERROR, "out of memory");
	if ((rc = open_checked(b, &m, mdigest, path, trusted_keys, nkeys)))
		goto done;
	if (strcmp(mr_json_str(m, "target"), molt_host_triple())) {
		rc = mr_error_set(MR_EVERIFY, "%s: %s@%s is built for %s; this host loads %s units "
					      "(pack the native build: mrecipe pack --target %s)",
				  path, mr_json_str(m, "name"), mr_json_str(m, "version"),
				  mr_json_str(m, "target"), molt_host_triple(), molt_host_triple());
		goto done;
	}
	/* mkdtemp makes the folder 0700: nobody else can swap the files between
	 * our checks and dlopen. */
	if (asprintf(&dir, "%s/molt-bundle-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		dir = NULL;
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if (!mkdtemp(dir)) {
		rc = mr_error_sys(MR_EENV, "creating a private folder %s (set TMPDIR to a writable "
					   "folder)", dir);
		free(dir);
		dir = NULL;
		goto done;
	}
	if (!(mpath = mr_fs_join(dir, "manifest.json")) || !(apath = mr_fs_join(dir, "unit.so"))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if (!(rc = extract(b, m, mdigest, dir)) &&
	    (rc = molt_unit_load_local(out, apath, mpath, dir)))
		mr_error_wrap(rc, "loading %s", path);
done:
	if (dir) {
		mr_fs_rm_rf(dir);
		free(dir);
	}
	free(mpath);
	free(apath);
	cJSON_Delete(m);
	bundle_free(b);
	free(b);
	return rc;
}
