/* The client side of docs/registry.md: every file is checked before use,
 * in the order that page gives. */
#define _GNU_SOURCE
#include "internal.h"

#include "mr/digest.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mr/registry.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define META_MAX (4u << 20)
#define SIG_MAX 4096u

typedef struct {
	mr_buf *buf;
	FILE *file;
	mr_sha256 *hash;
	uint64_t got, cap;
	int over; /* the server sent more than `cap` */
	molt_runtime *rt;
	const char *what;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	sink *s = ud;
	size_t len = size * n;

	/* Endless-data defence: never take more than the signed size. */
	if (s->got + len > s->cap) {
		s->over = 1;
		return 0;
	}
	s->got += len;
	if (s->hash)
		mr_sha256_update(s->hash, p, len);
	if (s->buf && mr_buf_put(s->buf, p, len))
		return 0;
	if (s->file && fwrite(p, 1, len, s->file) != len)
		return 0;
	if (s->rt->progress && s->file)
		s->rt->progress(s->what, s->got, s->cap, s->rt->progress_payload);
	return len;
}

/* GETs base+rel into the sink, refusing more than s->cap bytes. */
static int get(molt_runtime *rt, const char *rel, sink *s)
{
	char err[CURL_ERROR_SIZE] = "", *url = NULL;
	CURL *c = curl_easy_init();
	CURLcode cc;
	long status = 0;
	int rc = 0;

	if (!c || asprintf(&url, "%s%s", rt->base, rel) < 0) {
		curl_easy_cleanup(c);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	s->rt = rt;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_WRITE_ERROR && s->over)
		rc = mr_error_set(MR_EVERIFY,
				  "%s: more than the expected %llu bytes; refusing the rest "
				  "(the server sends more than signed metadata allows)",
				  url, (unsigned long long)s->cap);
	else if (cc == CURLE_FILE_COULDNT_READ_FILE || status == 404)
		rc = mr_error_set(MR_ENOTFOUND, "%s: not found", url);
	else if (cc != CURLE_OK)
		rc = mr_error_set(MR_EENV, "fetching %s: %s", url,
				  *err ? err : curl_easy_strerror(cc));
	else if (status >= 400)
		rc = mr_error_set(MR_EENV, "fetching %s: HTTP status %ld", url, status);
	free(url);
	curl_easy_cleanup(c);
	return rc;
}

static int get_buf(molt_runtime *rt, const char *rel, mr_buf *out, uint64_t cap)
{
	sink s = { out, NULL, NULL, 0, cap, 0, NULL, rel };

	out->len = 0;
	return get(rt, rel, &s);
}

/* Fetches a small blob and checks its digest (and size, when known). */
static int get_blob(molt_runtime *rt, const char *digest, uint64_t size,
		    uint64_t cap, mr_buf *out)
{
	char rel[128], have[MR_DIGEST_STR_LEN + 1];
	int rc;

	if (!mr_digest_valid(digest))
		return mr_error_set(MR_EVERIFY, "'%s' is not a sha256 digest", digest);
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", digest + 7);
	if ((rc = get_buf(rt, rel, out, size ? size : cap)))
		return rc;
	if (size && out->len != size)
		return mr_error_set(MR_EVERIFY, "%s%s: expected %llu bytes, got %zu", rt->base,
				    rel, (unsigned long long)size, out->len);
	mr_digest_buf(have, out->data, out->len);
	if (strcmp(have, digest))
		return mr_error_set(MR_EVERIFY,
				    "%s%s: digest mismatch: expected %s, got %s; the "
				    "registry copy is corrupt or was tampered with",
				    rt->base, rel, digest, have);
	return 0;
}

static int cache_put(molt_runtime *rt, const char *digest, const mr_buf *b)
{
	char *path = mr_blob_path(rt->cache, digest);
	int rc = path ? 0 : mr_error_set(MR_ERROR, "out of memory");

	if (!rc && !mr_fs_exists(path))
		rc = mr_fs_write_atomic(path, b->data, b->len, 0644);
	free(path);
	return rc;
}

/* The artifact: from the cache when its bytes still hash right, else
 * streamed from the registry with a size cap, hashed as it arrives. */
static int get_artifact(molt_runtime *rt, const cJSON *a, char **path_out,
			const char *label)
{
	const char *digest = mr_json_str(a, "digest");
	uint64_t size = (uint64_t)cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble;
	char have[MR_DIGEST_STR_LEN + 1], rel[128], *path = mr_blob_path(rt->cache, digest);
	char *tmp = NULL;
	unsigned char raw[MR_DIGEST_LEN];
	sink s = { NULL, NULL, NULL, 0, size, 0, NULL, label };
	int rc = 0;

	*path_out = NULL;
	if (!path)
		return mr_error_set(MR_EVERIFY, "manifest artifact digest '%s' is malformed", digest);
	if (mr_fs_exists(path) && !mr_digest_file(have, path, NULL) && !strcmp(have, digest)) {
		*path_out = path;
		return 0;
	}
	if (asprintf(&tmp, "%s.part.%ld", path, (long)getpid()) < 0) {
		free(path);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", digest + 7);
	if (!(s.file = fopen(tmp, "wb"))) {
		rc = mr_error_sys(MR_EENV, "creating %s", tmp);
		goto done;
	}
	if ((rc = mr_sha256_new(&s.hash)) || (rc = get(rt, rel, &s)))
		goto done;
	if (fclose(s.file)) {
		s.file = NULL;
		rc = mr_error_sys(MR_EIO, "writing %s", tmp);
		goto done;
	}
	s.file = NULL;
	mr_sha256_final(s.hash, raw);
	mr_digest_format(have, raw);
	if (s.got != size)
		rc = mr_error_set(MR_EVERIFY, "%s%s: expected %llu bytes (signed manifest), got %llu",
				  rt->base, rel, (unsigned long long)size, (unsigned long long)s.got);
	else if (strcmp(have, digest))
		rc = mr_error_set(MR_EVERIFY,
				  "%s%s: digest mismatch: the signed manifest says %s, the "
				  "bytes hash to %s; refusing the artifact",
				  rt->base, rel, digest, have);
	else if (rename(tmp, path) < 0)
		rc = mr_error_sys(MR_EIO, "renaming %s", tmp);
done:
	if (s.file)
		fclose(s.file);
	mr_sha256_free(s.hash);
	if (rc) {
		unlink(tmp);
		free(path);
	} else {
		*path_out = path;
	}
	free(tmp);
	return rc;
}

static int verify_sig(molt_runtime *rt, const mr_buf *sig, const mr_buf *data,
		      const char *want_comment, const char *where)
{
	char *comment = NULL;
	int rc = mr_verify(rt->keys, rt->nkeys, (const char *)sig->data, sig->len,
			   data->data, data->len, &comment);

	if (rc)
		return mr_error_wrap(rc, "%s%s", rt->base, where);
	if (strcmp(comment, want_comment))
		rc = mr_error_set(MR_EVERIFY,
				  "%s%s: the signature's trusted comment is '%s', expected "
				  "'%s' (wrong or mixed-up metadata)",
				  rt->base, where, comment, want_comment);
	free(comment);
	return rc;
}

int molt__fetch(molt_runtime *rt, const char *name, const char *version,
		const char *target, molt__fetched *out, char manifest_digest[72])
{
	mr_buf snap = MR_BUF_INIT, sig = MR_BUF_INIT, idx = MR_BUF_INIT, m = MR_BUF_INIT;
	cJSON *s = NULL, *index = NULL, *manifest = NULL;
	const cJSON *entry, *t, *sc;
	char rel[300], have[MR_DIGEST_STR_LEN + 1], comment[300], label[300];
	time_t now = time(NULL); /* fixed once: every expiry is checked against it */
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = get_buf(rt, "snapshot.json", &snap, META_MAX)) ||
	    (rc = get_buf(rt, "snapshot.json.minisig", &sig, SIG_MAX)))
		goto done;
	if ((rc = mr_snapshot_verify(&s, rt->keys, rt->nkeys, &snap, &sig, now))) {
		mr_error_wrap(rc, "%s", rt->base);
		goto done;
	}
	entry = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "indexes"), name);
	if (!entry) {
		rc = mr_error_set(MR_ENOTFOUND, "%s: no unit named '%s' in this registry", rt->base, name);
		goto done;
	}
	snprintf(rel, sizeof(rel), "index/%s.json", name);
	if ((rc = get_buf(rt, rel, &idx, META_MAX)))
		goto done;
	mr_digest_buf(have, idx.data, idx.len);
	if (!mr_json_str(entry, "digest") || strcmp(have, mr_json_str(entry, "digest"))) {
		rc = mr_error_set(MR_EVERIFY,
				  "%s%s: digest mismatch: the signed snapshot says %s, got %s",
				  rt->base, rel, mr_json_str(entry, "digest") ? mr_json_str(entry, "digest") : "nothing", have);
		goto done;
	}
	if (!(index = cJSON_ParseWithLength((const char *)idx.data, idx.len))) {
		rc = mr_error_set(MR_EVERIFY, "%s%s: not JSON", rt->base, rel);
		goto done;
	}
	t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(index, "versions"), version);
	if (!t) {
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s is not in %s; see %s%s for the versions it has",
				  name, version, rt->base, rt->base, rel);
		goto done;
	}
	if (!(t = cJSON_GetObjectItemCaseSensitive(t, target))) {
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s has no build for %s in %s", name, version,
				  target, rt->base);
		goto done;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "yanked"))) {
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s (%s) was yanked from %s; pick another version",
				  name, version, target, rt->base);
		goto done;
	}
	const char *md = mr_json_str(t, "manifest"), *sd = mr_json_str(t, "signature");
	const cJSON *msize = cJSON_GetObjectItemCaseSensitive(t, "size");
	if (!md || !sd || !mr_json_is_int(msize, 1, META_MAX)) {
		rc = mr_error_set(MR_EVERIFY, "%s%s: entry for %s/%s lacks manifest, size or signature",
				  rt->base, rel, version, target);
		goto done;
	}
	if ((rc = get_blob(rt, sd, 0, SIG_MAX, &sig)) ||
	    (rc = get_blob(rt, md, (uint64_t)msize->valuedouble, META_MAX, &m)))
		goto done;
	mr_unit_comment(comment, sizeof(comment), name, version, target, md);
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", md + 7);
	if ((rc = verify_sig(rt, &sig, &m, comment, rel)))
		goto done;
	if (!(manifest = cJSON_ParseWithLength((const char *)m.data, m.len)) ||
	    (rc = mr_manifest_check(manifest, name, version, target))) {
		rc = rc ? mr_error_wrap(rc, "%s%s", rt->base, rel)
			: mr_error_set(MR_EVERIFY, "%s%s: manifest is not JSON", rt->base, rel);
		goto done;
	}
	if ((rc = cache_put(rt, md, &m)))
		goto done;
	sc = cJSON_GetObjectItemCaseSensitive(manifest, "schemas");
	for (sc = sc ? sc->child : NULL; sc; sc = sc->next) {
		mr_buf b = MR_BUF_INIT;
		const char *d = mr_json_str(sc, "digest");
		rc = d ? get_blob(rt, d, 0, META_MAX, &b)
		       : mr_error_set(MR_EVERIFY, "manifest schema entry without digest");
		if (!rc)
			rc = cache_put(rt, d, &b);
		mr_buf_free(&b);
		if (rc)
			goto done;
	}
	snprintf(label, sizeof(label), "%s@%s", name, version);
	if ((rc = get_artifact(rt, cJSON_GetObjectItemCaseSensitive(manifest, "artifact"),
			       &out->artifact, label)))
		goto done;
	if (manifest_digest)
		snprintf(manifest_digest, 72, "%s", md);
	out->manifest = manifest;
	manifest = NULL;
done:
	cJSON_Delete(s);
	cJSON_Delete(index);
	cJSON_Delete(manifest);
	mr_buf_free(&snap);
	mr_buf_free(&sig);
	mr_buf_free(&idx);
	mr_buf_free(&m);
	return rc;
}

int molt__schema_get(molt_runtime *rt, const cJSON *manifest, const char *id,
		     int version, cJSON **doc)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(manifest, "schemas");
	mr_buf b = MR_BUF_INIT;
	char *path, have[MR_DIGEST_STR_LEN + 1];
	int rc;

	*doc = NULL;
	for (s = s ? s->child : NULL; s; s = s->next)
		if (!strcmp(mr_json_str(s, "id"), id) &&
		    mr_json_is_int(cJSON_GetObjectItemCaseSensitive(s, "version"), version, version))
			break;
	if (!s)
		return mr_error_set(MR_EVERIFY, "manifest does not list schema %s@%d", id, version);
	if (!(path = mr_blob_path(rt->cache, mr_json_str(s, "digest"))))
		return mr_error_set(MR_EVERIFY, "schema %s@%d: malformed digest", id, version);
	if (!(rc = mr_fs_read(&b, path, META_MAX))) {
		mr_digest_buf(have, b.data, b.len);
		if (strcmp(have, mr_json_str(s, "digest")))
			rc = mr_error_set(MR_EVERIFY, "%s: cached schema is corrupt (hashes to %s); delete it",
					  path, have);
		else if (!(*doc = cJSON_ParseWithLength((const char *)b.data, b.len)))
			rc = mr_error_set(MR_EVERIFY, "%s: schema is not JSON", path);
	}
	free(path);
	mr_buf_free(&b);
	return rc;
}
