#define _GNU_SOURCE
#include "mr/registry.h"

#include "mr/digest.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mr/wasm.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define META_MAX (16 << 20)
#define ARTIFACT_MAX ((size_t)1 << 30)

char *mr_blob_path(const char *root, const char *digest)
{
	char *s;

	if (!mr_digest_valid(digest))
		return NULL;
	if (asprintf(&s, "%s/blobs/sha256/%s", root, digest + 7) < 0)
		return NULL;
	return s;
}

void mr_unit_comment(char *out, size_t n, const char *name, const char *version,
		     const char *target, const char *manifest_digest)
{
	snprintf(out, n, "molt unit %s@%s %s %s", name, version, target,
		 manifest_digest);
}

/* Stores bytes as a blob unless present; a present blob is re-checked. */
static int put_blob(const char *root, const void *data, size_t len,
		    char digest[MR_DIGEST_STR_LEN + 1])
{
	char have[MR_DIGEST_STR_LEN + 1], *path;
	int rc = 0;

	mr_digest_buf(digest, data, len);
	if (!(path = mr_blob_path(root, digest)))
		return mr_error_set(MR_ERROR, "out of memory");
	if (mr_fs_exists(path)) {
		if (!(rc = mr_digest_file(have, path, NULL)) && strcmp(have, digest))
			rc = mr_error_set(MR_EVERIFY,
					  "%s is corrupt (its bytes hash to %s); run "
					  "'mrecipe verify' and restore it", path, have);
	} else {
		rc = mr_fs_write_atomic(path, data, len, 0644);
	}
	free(path);
	return rc;
}

static int read_json(cJSON **out, const char *path, mr_buf *raw)
{
	mr_json *doc = NULL;
	int rc;

	*out = NULL;
	if ((rc = mr_fs_read(raw, path, META_MAX)))
		return rc;
	if ((rc = mr_json_parse(&doc, path, (const char *)raw->data, raw->len)))
		return rc;
	*out = cJSON_Duplicate(mr_json_root(doc), 1);
	mr_json_free(doc);
	return *out ? 0 : mr_error_set(MR_ERROR, "out of memory");
}

static int write_json(const char *path, const cJSON *v, mr_buf *bytes)
{
	char *text = cJSON_Print(v);
	int rc;

	if (!text)
		return mr_error_set(MR_ERROR, "out of memory");
	rc = mr_fs_write_atomic(path, text, strlen(text), 0644);
	if (!rc && bytes) {
		bytes->len = 0;
		rc = mr_buf_puts(bytes, text);
	}
	free(text);
	return rc;
}

static char *utc(time_t t)
{
	struct tm tm;
	char *s = malloc(32);

	if (s && gmtime_r(&t, &tm))
		strftime(s, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return s;
}

static int parse_utc(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (!s || !(end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) || *end)
		return -1;
	*out = timegm(&tm);
	return 0;
}

/* Writes a new snapshot listing every index file with its digest and size. */
static int write_snapshot(const char *root, const mr_seckey *sk, int days)
{
	char *snap = mr_fs_join(root, "snapshot.json"), *sigp = NULL, *idx = NULL;
	char *exp = NULL, comment[160], digest[MR_DIGEST_STR_LEN + 1];
	mr_buf raw = MR_BUF_INIT, sig = MR_BUF_INIT, bytes = MR_BUF_INIT;
	cJSON *old = NULL, *s = cJSON_CreateObject(), *list;
	struct dirent **names = NULL;
	double version = 1;
	int rc = 0, n = 0, i;

	if (!snap || !s || asprintf(&sigp, "%s.minisig", snap) < 0 ||
	    !(idx = mr_fs_join(root, "index")) || !(exp = utc(time(NULL) + (time_t)days * 86400))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if (mr_fs_exists(snap)) {
		if ((rc = read_json(&old, snap, &raw)))
			goto done;
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(old, "version");
		if (mr_json_is_int(v, 1, 9e15))
			version = v->valuedouble + 1;
	}
	cJSON_AddNumberToObject(s, "format", 1);
	cJSON_AddNumberToObject(s, "version", version);
	cJSON_AddStringToObject(s, "expires", exp);
	list = cJSON_AddObjectToObject(s, "indexes");
	if ((n = scandir(idx, &names, NULL, alphasort)) < 0) {
		rc = mr_error_sys(MR_EIO, "listing %s", idx);
		goto done;
	}
	for (i = 0; !rc && i < n; i++) {
		size_t len = strlen(names[i]->d_name), size;
		char *p;
		cJSON *e;
		if (len < 6 || strcmp(names[i]->d_name + len - 5, ".json"))
			continue;
		if (!(p = mr_fs_join(idx, names[i]->d_name))) {
			rc = mr_error_set(MR_ERROR, "out of memory");
			break;
		}
		if (!(rc = mr_digest_file(digest, p, &size))) {
			names[i]->d_name[len - 5] = '\0';
			e = cJSON_AddObjectToObject(list, names[i]->d_name);
			cJSON_AddStringToObject(e, "digest", digest);
			cJSON_AddNumberToObject(e, "size", (double)size);
		}
		free(p);
	}
	if (rc || (rc = write_json(snap, s, &bytes)))
		goto done;
	mr_digest_buf(digest, bytes.data, bytes.len);
	snprintf(comment, sizeof(comment), "molt snapshot %.0f %s", version, digest);
	if (!(rc = mr_sign(&sig, sk, bytes.data, bytes.len, comment)))
		rc = mr_fs_write_atomic(sigp, sig.data, sig.len, 0644);
done:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	cJSON_Delete(old);
	cJSON_Delete(s);
	mr_buf_free(&raw);
	mr_buf_free(&sig);
	mr_buf_free(&bytes);
	free(snap);
	free(sigp);
	free(idx);
	free(exp);
	return rc;
}

static int init_layout(const char *root)
{
	static const char meta[] = "{\n\t\"format\":\t1,\n\t\"hash\":\t\"sha256\"\n}";
	char *p = mr_fs_join(root, "blobs/sha256"), *q = mr_fs_join(root, "index");
	char *r = mr_fs_join(root, "registry.json");
	int rc = 0;

	if (!p || !q || !r)
		rc = mr_error_set(MR_ERROR, "out of memory");
	if (!rc)
		rc = mr_fs_mkdir_p(p);
	if (!rc)
		rc = mr_fs_mkdir_p(q);
	if (!rc && !mr_fs_exists(r))
		rc = mr_fs_write_atomic(r, meta, sizeof(meta) - 1, 0644);
	free(p);
	free(q);
	free(r);
	return rc;
}

/* Adds the manifest to index/<name>.json; *same when it is already there. */
static int update_index(const char *root, const cJSON *m, const char *mdigest,
			size_t msize, const char *sdigest, int *same)
{
	const char *name = mr_json_str(m, "name"), *version = mr_json_str(m, "version");
	const char *target = mr_json_str(m, "target");
	char *path = NULL;
	mr_buf raw = MR_BUF_INIT;
	cJSON *idx = NULL, *versions, *v, *t;
	int rc = 0;

	*same = 0;
	if (asprintf(&path, "%s/index/%s.json", root, name) < 0)
		return mr_error_set(MR_ERROR, "out of memory");
	if (mr_fs_exists(path)) {
		if ((rc = read_json(&idx, path, &raw)))
			goto done;
	} else {
		idx = cJSON_CreateObject();
		cJSON_AddNumberToObject(idx, "format", 1);
		cJSON_AddStringToObject(idx, "name", name);
		cJSON_AddObjectToObject(idx, "versions");
	}
	versions = cJSON_GetObjectItemCaseSensitive(idx, "versions");
	if (!cJSON_IsObject(versions)) {
		rc = mr_error_set(MR_EVERIFY, "%s: no 'versions' object; the index is damaged", path);
		goto done;
	}
	if (!(v = cJSON_GetObjectItemCaseSensitive(versions, version)))
		v = cJSON_AddObjectToObject(versions, version);
	if ((t = cJSON_GetObjectItemCaseSensitive(v, target))) {
		const char *have = mr_json_str(t, "manifest");
		if (have && !strcmp(have, mdigest)) {
			*same = 1;
			goto done;
		}
		rc = mr_error_set(MR_EEXISTS,
				  "%s@%s for %s is already published with manifest %s; "
				  "published versions never change: bump the version in "
				  "recipe.json", name, version, target, have ? have : "?");
		goto done;
	}
	t = cJSON_AddObjectToObject(v, target);
	cJSON_AddStringToObject(t, "manifest", mdigest);
	cJSON_AddNumberToObject(t, "size", (double)msize);
	cJSON_AddStringToObject(t, "signature", sdigest);
	cJSON_AddBoolToObject(t, "yanked", 0);
	rc = write_json(path, idx, NULL);
done:
	cJSON_Delete(idx);
	mr_buf_free(&raw);
	free(path);
	return rc;
}

/* 1 for a wasm unit, however its manifest labels it: a different media type
 * or target must not skip the checks of docs/abi.md. */
static int is_wasm(const cJSON *m, const mr_buf *art)
{
	const char *mt = mr_json_str(cJSON_GetObjectItemCaseSensitive(m, "artifact"), "media_type");
	const char *t = mr_json_str(m, "target");

	return (mt && !strcmp(mt, "application/wasm")) || (t && !strncmp(t, "wasm", 4)) ||
	       (art->len >= 4 && !memcmp(art->data, "\0asm", 4));
}

static int lock_registry(const char *root, int *fd)
{
	char *p = mr_fs_join(root, ".lock");

	*fd = p ? open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
	free(p);
	if (*fd < 0)
		return mr_error_sys(MR_EIO, "locking registry %s", root);
	if (flock(*fd, LOCK_EX) < 0)
		return mr_error_sys(MR_EIO, "locking registry %s", root);
	return 0;
}

int mr_registry_publish(const char *root, const mr_seckey *sk,
			const char *manifest_path, const char *artifact_path,
			const char *schemas_dir, int expires_days, int *unchanged)
{
	mr_buf mraw = MR_BUF_INIT, art = MR_BUF_INIT, sig = MR_BUF_INIT;
	char mdigest[MR_DIGEST_STR_LEN + 1], adigest[MR_DIGEST_STR_LEN + 1];
	char sdigest[MR_DIGEST_STR_LEN + 1], comment[256];
	const cJSON *a, *s;
	cJSON *m = NULL;
	int rc, fd = -1, same = 0;

	*unchanged = 0;
	if ((rc = read_json(&m, manifest_path, &mraw)) ||
	    (rc = mr_manifest_check(m, NULL, NULL, NULL)))
		goto done;
	art.max = ARTIFACT_MAX;
	if ((rc = mr_fs_read(&art, artifact_path, ARTIFACT_MAX)))
		goto done;
	a = cJSON_GetObjectItemCaseSensitive(m, "artifact");
	mr_digest_buf(adigest, art.data, art.len);
	if (strcmp(adigest, mr_json_str(a, "digest")) ||
	    (double)art.len != cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble) {
		rc = mr_error_set(MR_EVERIFY,
				  "%s does not match %s (manifest says %s, file is %s); "
				  "rebuild with 'mrecipe build'", artifact_path,
				  manifest_path, mr_json_str(a, "digest"), adigest);
		goto done;
	}
	/* What a unit may import and export (docs/abi.md): every problem, one per line. */
	if (is_wasm(m, &art) &&
	    (rc = mr_wasm_check_unit(art.data, art.len, mr_json_str(m, "abi_version"), NULL))) {
		mr_error_wrap(rc, "%s", artifact_path);
		goto done;
	}
	if ((rc = init_layout(root)) || (rc = lock_registry(root, &fd)))
		goto done;
	/* Blobs first, index and snapshot last: a reader never sees an index
	 * entry whose blobs are missing. */
	if ((rc = put_blob(root, art.data, art.len, adigest)))
		goto done;
	s = cJSON_GetObjectItemCaseSensitive(m, "schemas");
	for (s = s ? s->child : NULL; s; s = s->next) {
		mr_buf canon = MR_BUF_INIT;
		char d[MR_DIGEST_STR_LEN + 1], stored[MR_DIGEST_STR_LEN + 1];
		const cJSON *ver = cJSON_GetObjectItemCaseSensitive(s, "version");
		rc = mr_schema_load(&canon, d, schemas_dir, mr_json_str(s, "id"),
				    ver ? (int)ver->valuedouble : 0);
		if (!rc && strcmp(d, mr_json_str(s, "digest")))
			rc = mr_error_set(MR_EVERIFY,
					  "schema %s changed since the unit was built "
					  "(manifest %s, file %s); rebuild",
					  mr_json_str(s, "id"), mr_json_str(s, "digest"), d);
		if (!rc)
			rc = put_blob(root, canon.data, canon.len, stored);
		mr_buf_free(&canon);
		if (rc)
			goto done;
	}
	if ((rc = put_blob(root, mraw.data, mraw.len, mdigest)))
		goto done;
	mr_unit_comment(comment, sizeof(comment), mr_json_str(m, "name"),
			mr_json_str(m, "version"), mr_json_str(m, "target"), mdigest);
	if ((rc = mr_sign(&sig, sk, mraw.data, mraw.len, comment)) ||
	    (rc = put_blob(root, sig.data, sig.len, sdigest)))
		goto done;
	if ((rc = update_index(root, m, mdigest, mraw.len, sdigest, &same)))
		goto done;
	if (same)
		*unchanged = 1;
	else
		rc = write_snapshot(root, sk, expires_days);
done:
	if (fd >= 0)
		close(fd);
	cJSON_Delete(m);
	mr_buf_free(&mraw);
	mr_buf_free(&art);
	mr_buf_free(&sig);
	return rc;
}

int mr_snapshot_verify(cJSON **out, const mr_pubkey *keys, size_t nkeys,
		       const mr_buf *snapshot, const mr_buf *sig, time_t now)
{
	char *comment = NULL, want[160], digest[MR_DIGEST_STR_LEN + 1];
	mr_json *doc = NULL;
	const cJSON *root, *v;
	time_t expires;
	int rc;

	*out = NULL;
	if ((rc = mr_verify(keys, nkeys, (const char *)sig->data, sig->len,
			    snapshot->data, snapshot->len, &comment)))
		return mr_error_wrap(rc, "snapshot.json");
	if ((rc = mr_json_parse(&doc, "snapshot.json", (const char *)snapshot->data,
				snapshot->len)))
		goto done;
	root = mr_json_root(doc);
	v = cJSON_GetObjectItemCaseSensitive(root, "version");
	if (!mr_json_is_int(cJSON_GetObjectItemCaseSensitive(root, "format"), 1, 1) ||
	    !mr_json_is_int(v, 1, 9e15) ||
	    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "indexes"))) {
		rc = mr_error_set(MR_EVERIFY, "snapshot.json: not a format-1 snapshot");
		goto done;
	}
	mr_digest_buf(digest, snapshot->data, snapshot->len);
	snprintf(want, sizeof(want), "molt snapshot %.0f %s", v->valuedouble, digest);
	if (strcmp(comment, want)) {
		rc = mr_error_set(MR_EVERIFY,
				  "snapshot.json: signed comment is '%s', expected '%s'",
				  comment, want);
		goto done;
	}
	if (parse_utc(mr_json_str(root, "expires"), &expires)) {
		rc = mr_error_set(MR_EVERIFY, "snapshot.json: 'expires' is not a UTC time");
		goto done;
	}
	if (expires <= now) {
		rc = mr_error_set(MR_EVERIFY,
				  "snapshot.json expired at %s: the registry is stale or "
				  "frozen; its publisher must refresh it",
				  mr_json_str(root, "expires"));
		goto done;
	}
	*out = cJSON_Duplicate(root, 1);
done:
	free(comment);
	mr_json_free(doc);
	return rc;
}

static void problem(mr_buf *report, int *count, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void problem(mr_buf *report, int *count, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	mr_buf_printf(report, "%s\n", line);
	(*count)++;
}

static void verify_blobs(const char *root, mr_buf *report, int *count)
{
	char *dir = mr_fs_join(root, "blobs/sha256");
	struct dirent *e;
	DIR *d = dir ? opendir(dir) : NULL;

	while (d && (e = readdir(d))) {
		char digest[MR_DIGEST_STR_LEN + 1], *p;
		if (e->d_name[0] == '.')
			continue;
		p = mr_fs_join(dir, e->d_name);
		if (p && !mr_digest_file(digest, p, NULL) && strcmp(digest + 7, e->d_name))
			problem(report, count, "%s: content hashes to %s, not its name", p, digest);
		free(p);
	}
	if (d)
		closedir(d);
	free(dir);
}

static void verify_target(const char *root, const mr_pubkey *keys, size_t nkeys,
			  const char *name, const char *version, const char *target,
			  const cJSON *t, mr_buf *report, int *count)
{
	mr_buf m = MR_BUF_INIT, sig = MR_BUF_INIT;
	const char *md = mr_json_str(t, "manifest"), *sd = mr_json_str(t, "signature");
	char *mp = md ? mr_blob_path(root, md) : NULL, *sp = sd ? mr_blob_path(root, sd) : NULL;
	char comment_want[256], *comment = NULL;
	mr_json *doc = NULL;

	if (!mp || !sp || mr_fs_read(&m, mp, META_MAX) || mr_fs_read(&sig, sp, 1 << 16)) {
		problem(report, count, "index/%s.json: %s@%s %s: manifest or signature blob missing or unreadable",
			name, name, version, target);
		goto done;
	}
	mr_unit_comment(comment_want, sizeof(comment_want), name, version, target, md);
	if (mr_verify(keys, nkeys, (char *)sig.data, sig.len, m.data, m.len, &comment)) {
		problem(report, count, "%s: %s", mp, mr_error_last());
		goto done;
	}
	if (strcmp(comment, comment_want))
		problem(report, count, "%s: signed comment is '%s', expected '%s'", sp, comment, comment_want);
	if (mr_json_parse(&doc, mp, (char *)m.data, m.len) ||
	    mr_manifest_check(mr_json_root(doc), name, version, target)) {
		problem(report, count, "%s: %s", mp, mr_error_last());
		goto done;
	}
	{
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(mr_json_root(doc), "artifact");
		char *ap = mr_blob_path(root, mr_json_str(a, "digest"));
		if (!ap || !mr_fs_exists(ap))
			problem(report, count, "%s: artifact %s is missing", mp, mr_json_str(a, "digest"));
		free(ap);
	}
done:
	free(comment);
	mr_json_free(doc);
	mr_buf_free(&m);
	mr_buf_free(&sig);
	free(mp);
	free(sp);
}

int mr_registry_verify(const char *root, const mr_pubkey *keys, size_t nkeys,
		       mr_buf *report)
{
	mr_buf snap = MR_BUF_INIT, sig = MR_BUF_INIT;
	char *sp = mr_fs_join(root, "snapshot.json"), *sigp = NULL;
	cJSON *s = NULL;
	const cJSON *e;
	int count = 0;

	if (!sp || asprintf(&sigp, "%s.minisig", sp) < 0) {
		free(sp);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	verify_blobs(root, report, &count);
	if (mr_fs_read(&snap, sp, META_MAX) || mr_fs_read(&sig, sigp, 1 << 16) ||
	    mr_snapshot_verify(&s, keys, nkeys, &snap, &sig, time(NULL))) {
		problem(report, &count, "%s: %s", sp, mr_error_last());
		goto done;
	}
	for (e = cJSON_GetObjectItemCaseSensitive(s, "indexes")->child; e; e = e->next) {
		char *ip = NULL, digest[MR_DIGEST_STR_LEN + 1];
		mr_buf raw = MR_BUF_INIT;
		cJSON *idx = NULL;
		const cJSON *v, *t;
		if (asprintf(&ip, "%s/index/%s.json", root, e->string) < 0)
			break;
		if (read_json(&idx, ip, &raw)) {
			problem(report, &count, "%s: %s", ip, mr_error_last());
		} else {
			mr_digest_buf(digest, raw.data, raw.len);
			if (!mr_json_str(e, "digest") || strcmp(digest, mr_json_str(e, "digest")))
				problem(report, &count, "%s: hashes to %s, but snapshot.json says %s",
					ip, digest, mr_json_str(e, "digest") ? mr_json_str(e, "digest") : "nothing");
			v = cJSON_GetObjectItemCaseSensitive(idx, "versions");
			for (v = v ? v->child : NULL; v; v = v->next)
				for (t = v->child; t; t = t->next)
					verify_target(root, keys, nkeys, e->string, v->string,
						      t->string, t, report, &count);
		}
		cJSON_Delete(idx);
		mr_buf_free(&raw);
		free(ip);
	}
done:
	cJSON_Delete(s);
	mr_buf_free(&snap);
	mr_buf_free(&sig);
	free(sp);
	free(sigp);
	return count;
}
