#define _GNU_SOURCE
#include "mr/registry.h"

#include "mr/digest.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mr/policy.h"
#include "mr/wasm.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
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

/* Sets entry[key] to {"digest", "size"}, replacing an older value. */
static int set_hint(cJSON *entry, const char *key, const char *digest, double size)
{
	cJSON *h = cJSON_CreateObject();

	if (!h || !cJSON_AddStringToObject(h, "digest", digest) ||
	    !cJSON_AddNumberToObject(h, "size", size)) {
		cJSON_Delete(h);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	if (cJSON_GetObjectItemCaseSensitive(entry, key))
		cJSON_ReplaceItemInObjectCaseSensitive(entry, key, h);
	else
		cJSON_AddItemToObject(entry, key, h);
	return 0;
}

int mr__entry_hints(const char *root, const cJSON *m, cJSON *entry)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "artifact");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, "schemas"), *e;
	const cJSON *asize = cJSON_GetObjectItemCaseSensitive(a, "size");
	const char *ad = mr_json_str(a, "digest");
	char digest[MR_DIGEST_STR_LEN + 1], *text = NULL;
	cJSON *pack = cJSON_CreateArray();
	int rc = 0, n = 0;

	if (!pack)
		return mr_error_set(MR_ERROR, "out of memory");
	if (!ad || !mr_digest_valid(ad) || !mr_json_is_int(asize, 0, 9e15)) {
		rc = mr_error_set(MR_EINVALID, "manifest %s@%s: expected \"artifact\": {\"digest\", \"size\"}, "
				  "found none; the manifest is damaged", mr_json_str(m, "name"),
				  mr_json_str(m, "version"));
		goto done;
	}
	/* The documents exactly as their blobs hold them, in manifest order. */
	for (e = s ? s->child : NULL; e; e = e->next, n++) {
		const char *sd = mr_json_str(e, "digest");
		char *p = sd ? mr_blob_path(root, sd) : NULL, have[MR_DIGEST_STR_LEN + 1];
		mr_buf b = MR_BUF_INIT;
		if (!p)
			rc = mr_error_set(MR_EINVALID, "manifest %s@%s: schema %s: expected a digest, found %s",
					  mr_json_str(m, "name"), mr_json_str(m, "version"),
					  mr_json_str(e, "id") ? mr_json_str(e, "id") : "?", sd ? sd : "none");
		else if (!(rc = mr_fs_read(&b, p, META_MAX))) {
			mr_digest_buf(have, b.data, b.len);
			if (strcmp(have, sd))
				rc = mr_error_set(MR_EVERIFY, "%s: expected content hashing to %s, found %s; "
						  "restore the blob", p, sd, have);
			else if (memchr(b.data, 0, b.len))
				rc = mr_error_set(MR_EVERIFY, "%s: expected a schema document, found a NUL byte", p);
			else if (!cJSON_AddItemToArray(pack, cJSON_CreateString((const char *)b.data)))
				rc = mr_error_set(MR_ERROR, "out of memory");
		}
		mr_buf_free(&b);
		free(p);
		if (rc)
			goto done;
	}
	if ((rc = set_hint(entry, "artifact", ad, asize->valuedouble)))
		goto done;
	if (!n) {
		cJSON_DeleteItemFromObjectCaseSensitive(entry, "schemas_pack");
		goto done;
	}
	if (!(text = cJSON_PrintUnformatted(pack))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = put_blob(root, text, strlen(text), digest)))
		goto done;
	mr__fault("after-pack-blob");
	rc = set_hint(entry, "schemas_pack", digest, (double)strlen(text));
done:
	cJSON_Delete(pack);
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

void mr__fault(const char *point)
{
	static int hits;
	const char *f = getenv("MRECIPE_FAULT");
	size_t n = strlen(point);
	long want = 1;

	if (!f || strncmp(f, point, n) || (f[n] && f[n] != ':'))
		return;
	if (f[n] == ':')
		want = strtol(f + n + 1, NULL, 10);
	/* A crash, not an exit: no atexit handlers, no buffered output, no cleanup. */
	if (++hits == want)
		_exit(99);
}

int mr__reg_read_json(cJSON **out, const char *path, mr_buf *raw)
{
	return read_json(out, path, raw);
}

int mr__txn_put(mr__txn *t, const char *rel, const void *data, size_t len)
{
	size_t i;

	for (i = 0; i < t->n && strcmp(t->rel[i], rel); i++)
		;
	if (i == t->n) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 8;
			char **r = realloc(t->rel, cap * sizeof(*r));
			if (r)
				t->rel = r;
			mr_buf *d = r ? realloc(t->data, cap * sizeof(*d)) : NULL;
			if (!d)
				return mr_error_set(MR_ERROR, "out of memory");
			t->data = d;
			t->cap = cap;
		}
		if (!(t->rel[i] = strdup(rel)))
			return mr_error_set(MR_ERROR, "out of memory");
		t->data[i] = (mr_buf)MR_BUF_INIT;
		t->n++;
	}
	t->data[i].len = 0;
	t->data[i].max = META_MAX;
	return mr_buf_put(&t->data[i], data, len);
}

const mr_buf *mr__txn_get(const mr__txn *t, const char *rel)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		if (!strcmp(t->rel[i], rel))
			return &t->data[i];
	return NULL;
}

void mr__txn_free(mr__txn *t)
{
	size_t i;

	for (i = 0; i < t->n; i++) {
		free(t->rel[i]);
		mr_buf_free(&t->data[i]);
	}
	free(t->rel);
	free(t->data);
	memset(t, 0, sizeof(*t));
}

static int cmp_key(const void *a, const void *b)
{
	char x[17], y[17];
	mr_pubkey pa, pb;

	mr_seckey_pubkey(*(mr_seckey *const *)a, &pa);
	mr_seckey_pubkey(*(mr_seckey *const *)b, &pb);
	mr_keyid_hex(x, pa.id);
	mr_keyid_hex(y, pb.id);
	return strcmp(x, y);
}

/* The keys sorted by key id (as printed); MR_EINVALID on a repeated id. */
static int sort_keys(mr_seckey **out, mr_seckey *const *keys, size_t n)
{
	size_t i;

	if (!n || n > MR_REGISTRY_MAX_KEYS)
		return mr_error_set(MR_EINVALID, "expected 1 to %d signing keys, found %zu",
				    MR_REGISTRY_MAX_KEYS, n);
	memcpy(out, keys, n * sizeof(*out));
	qsort(out, n, sizeof(*out), cmp_key);
	for (i = 1; i < n; i++)
		if (!cmp_key(&out[i - 1], &out[i])) {
			char id[17];
			mr_pubkey pk;
			mr_seckey_pubkey(out[i], &pk);
			mr_keyid_hex(id, pk.id);
			return mr_error_set(MR_EINVALID, "key %s is given twice; pass each signing key once", id);
		}
	return 0;
}

static int cmp_member(const void *a, const void *b)
{
	return strcmp((*(cJSON *const *)a)->string, (*(cJSON *const *)b)->string);
}

/* An object's members in an array sorted by name (*out: caller frees;
 * NULL when there are none). */
static int sorted_members(const cJSON *obj, cJSON ***out, size_t *n)
{
	cJSON *e;
	size_t i = 0;

	*out = NULL;
	*n = 0;
	for (e = obj ? obj->child : NULL; e; e = e->next)
		(*n)++;
	if (!*n)
		return 0;
	if (!(*out = malloc(*n * sizeof(**out))))
		return mr_error_set(MR_ERROR, "out of memory");
	for (e = obj->child; e; e = e->next)
		(*out)[i++] = e;
	qsort(*out, *n, sizeof(**out), cmp_member);
	return 0;
}

static const cJSON *find_member(cJSON **v, size_t n, const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(v[mid]->string, name);
		if (!c)
			return v[mid];
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Sorts an object's members by name, in place. */
static int sort_members(cJSON *obj)
{
	cJSON **v;
	size_t n, i;
	int rc;

	if ((rc = sorted_members(obj, &v, &n)) || n < 2) {
		free(v);
		return rc;
	}
	for (i = 0; i < n; i++) {
		v[i]->prev = i ? v[i - 1] : v[n - 1];
		v[i]->next = i + 1 < n ? v[i + 1] : NULL;
	}
	obj->child = v[0];
	free(v);
	return 0;
}

/* Stages a new snapshot listing every index file (as the commit will leave
 * it) with its digest and size, its signature by each key, and the removal
 * of nothing: stale per-key signatures are deleted after the commit. */
int mr__txn_snapshot(mr__txn *t, const char *root, mr_seckey *const *keys,
		     size_t nkeys, int days)
{
	char *snap = mr_fs_join(root, "snapshot.json"), *idx = mr_fs_join(root, "index");
	char *exp = utc(time(NULL) + (time_t)days * 86400), *text = NULL;
	char comment[160], digest[MR_DIGEST_STR_LEN + 1];
	mr_buf raw = MR_BUF_INIT, sig = MR_BUF_INIT;
	mr_seckey *sorted[MR_REGISTRY_MAX_KEYS];
	cJSON *old = NULL, *s = cJSON_CreateObject(), *list, *signers, **prev_sorted = NULL;
	struct dirent **names = NULL;
	size_t nprev = 0;
	double version = 1;
	int rc = 0, n = 0, i;
	size_t k;

	if (!snap || !idx || !exp || !s) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = sort_keys(sorted, keys, nkeys)))
		goto done;
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
	signers = cJSON_AddArrayToObject(s, "signers");
	for (k = 0; k < nkeys; k++) {
		char id[17];
		mr_pubkey pk;
		mr_seckey_pubkey(sorted[k], &pk);
		mr_keyid_hex(id, pk.id);
		cJSON_AddItemToArray(signers, cJSON_CreateString(id));
	}
	list = cJSON_AddObjectToObject(s, "indexes");
	if ((rc = sorted_members(cJSON_GetObjectItemCaseSensitive(old, "indexes"), &prev_sorted,
				 &nprev)))
		goto done;
	if ((n = scandir(idx, &names, NULL, alphasort)) < 0) {
		rc = mr_error_sys(MR_EIO, "listing %s", idx);
		goto done;
	}
	/* Staged index files that are new names are listed too. */
	for (k = 0; k < t->n; k++) {
		const char *r = t->rel[k];
		size_t len = strlen(r);
		char *p;
		if (strncmp(r, "index/", 6) || len < 12 || strcmp(r + len - 5, ".json"))
			continue;
		if (!(p = mr_fs_join(root, r)) || mr_fs_exists(p)) {
			free(p);
			continue;
		}
		free(p);
		mr_digest_buf(digest, t->data[k].data, t->data[k].len);
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "digest", digest);
		cJSON_AddNumberToObject(e, "size", (double)t->data[k].len);
		char *nm = strndup(r + 6, len - 11);
		if (!nm) {
			cJSON_Delete(e);
			rc = mr_error_set(MR_ERROR, "out of memory");
			goto done;
		}
		cJSON_AddItemToObject(list, nm, e);
		free(nm);
	}
	for (i = 0; !rc && i < n; i++) {
		size_t len = strlen(names[i]->d_name), size;
		char *p = NULL, rel[300];
		const mr_buf *staged;
		const cJSON *prev;
		cJSON *e;
		if (len < 6 || len > 250 || strcmp(names[i]->d_name + len - 5, ".json"))
			continue;
		snprintf(rel, sizeof(rel), "index/%s", names[i]->d_name);
		names[i]->d_name[len - 5] = '\0';
		prev = find_member(prev_sorted, nprev, names[i]->d_name);
		names[i]->d_name[len - 5] = '.';
		if ((staged = mr__txn_get(t, rel))) {
			mr_digest_buf(digest, staged->data, staged->len);
			size = staged->len;
		} else if (mr_json_str(prev, "digest") && mr_digest_valid(mr_json_str(prev, "digest")) &&
			   mr_json_is_int(cJSON_GetObjectItemCaseSensitive(prev, "size"), 0, 9e15)) {
			/* Unchanged under the lock since the last snapshot listed it:
			 * publishing costs the same in a registry of any size. */
			snprintf(digest, sizeof(digest), "%s", mr_json_str(prev, "digest"));
			size = (size_t)cJSON_GetObjectItemCaseSensitive(prev, "size")->valuedouble;
		} else if (!(p = mr_fs_join(idx, names[i]->d_name))) {
			rc = mr_error_set(MR_ERROR, "out of memory");
			break;
		} else if ((rc = mr_digest_file(digest, p, &size))) {
			free(p);
			break;
		}
		free(p);
		names[i]->d_name[len - 5] = '\0';
		e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "digest", digest);
		cJSON_AddNumberToObject(e, "size", (double)size);
		cJSON_AddItemToObject(list, names[i]->d_name, e);
	}
	if (rc)
		goto done;
	/* Keys in byte order, so the listing does not depend on staging order. */
	if ((rc = sort_members(list)))
		goto done;
	if (!(text = cJSON_Print(s))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr__txn_put(t, "snapshot.json", text, strlen(text))))
		goto done;
	mr_digest_buf(digest, text, strlen(text));
	snprintf(comment, sizeof(comment), "molt snapshot %.0f %s", version, digest);
	for (k = 0; !rc && k < nkeys; k++) {
		char id[17], rel[64];
		mr_pubkey pk;
		sig.len = 0;
		mr_seckey_pubkey(sorted[k], &pk);
		mr_keyid_hex(id, pk.id);
		snprintf(rel, sizeof(rel), "snapshot.json.%s.minisig", id);
		if (!(rc = mr_sign(&sig, sorted[k], text, strlen(text), comment)))
			rc = mr__txn_put(t, rel, sig.data, sig.len);
		if (!rc && k == 0)
			rc = mr__txn_put(t, "snapshot.json.minisig", sig.data, sig.len);
	}
done:
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(prev_sorted);
	cJSON_Delete(old);
	cJSON_Delete(s);
	mr_buf_free(&raw);
	mr_buf_free(&sig);
	free(snap);
	free(idx);
	free(exp);
	free(text);
	return rc;
}

static int rel_ok(const char *r)
{
	return *r && *r != '/' && !strstr(r, "..") && !strchr(r, '\n');
}

/* Renames every <path>.new named by the journal into place, then removes
 * the journal. Safe to repeat: a path whose .new is gone was done. */
static int roll_forward(const char *root, const char *journal)
{
	mr_buf j = MR_BUF_INIT;
	char *line, *save = NULL, *jp = mr_fs_join(root, journal);
	int rc, step = 0;

	if (!jp)
		return mr_error_set(MR_ERROR, "out of memory");
	if ((rc = mr_fs_read(&j, jp, META_MAX)))
		goto done;
	if (strncmp((char *)j.data, "molt-journal 1\n", 15)) {
		rc = mr_error_set(MR_EINVALID, "%s: expected a journal starting 'molt-journal 1'; "
				  "remove it if no publish is running", jp);
		goto done;
	}
	for (line = strtok_r((char *)j.data + 15, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *dst = mr_fs_join(root, line), *src = NULL;
		if (!rel_ok(line) || !dst || asprintf(&src, "%s.new", dst) < 0) {
			free(dst);
			rc = mr_error_set(MR_EINVALID, "%s: bad path '%s' in the journal", jp, line);
			goto done;
		}
		if (mr_fs_exists(src) && rename(src, dst) < 0)
			rc = mr_error_sys(MR_EIO, "renaming %s to %s", src, dst);
		free(src);
		free(dst);
		if (rc)
			goto done;
		step++;
		mr__fault("commit-rename");
	}
	/* Make the renames durable before forgetting them. */
	{
		char *d = mr_fs_join(root, "index");
		int fd = d ? open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
		free(d);
		fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	if (unlink(jp) < 0)
		rc = mr_error_sys(MR_EIO, "removing %s", jp);
done:
	(void)step;
	mr_buf_free(&j);
	free(jp);
	return rc;
}

int mr__reg_recover_locked(const char *root, int *done)
{
	char *jp = mr_fs_join(root, ".pending");
	int rc = 0;

	*done = 0;
	if (!jp)
		return mr_error_set(MR_ERROR, "out of memory");
	if (mr_fs_exists(jp)) {
		*done = 1;
		rc = roll_forward(root, ".pending");
	}
	free(jp);
	return rc;
}

int mr_registry_recover(const char *root, int *done)
{
	int fd = -1, rc;

	*done = 0;
	if ((rc = mr__reg_lock(root, &fd)))
		return rc;
	rc = mr__reg_recover_locked(root, done);
	close(fd);
	return rc;
}

/* Removes snapshot.json.<KEYID>.minisig files of keys that no longer sign. */
static void drop_stale_sigs(const char *root, const mr__txn *t)
{
	DIR *d = opendir(root);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		char rel[300];
		if (strncmp(e->d_name, "snapshot.json.", 14) || len < 22 || len > 250 ||
		    strcmp(e->d_name + len - 8, ".minisig") || !strcmp(e->d_name, "snapshot.json.minisig"))
			continue;
		snprintf(rel, sizeof(rel), "%s", e->d_name);
		if (!mr__txn_get(t, rel)) {
			char *p = mr_fs_join(root, e->d_name);
			if (p)
				unlink(p);
			free(p);
		}
	}
	if (d)
		closedir(d);
}

int mr__txn_commit(mr__txn *t, const char *root)
{
	mr_buf j = MR_BUF_INIT;
	char *jp = mr_fs_join(root, ".pending");
	int rc, dummy;
	size_t i, pass;

	if (!jp)
		return mr_error_set(MR_ERROR, "out of memory");
	if ((rc = mr__reg_recover_locked(root, &dummy)))
		goto done;
	/* Stage: each file complete under <path>.new (itself written atomically). */
	for (i = 0; i < t->n && !rc; i++) {
		char *p = NULL;
		if (!rel_ok(t->rel[i]) || asprintf(&p, "%s/%s.new", root, t->rel[i]) < 0) {
			rc = mr_error_set(MR_ERROR, "out of memory");
			break;
		}
		rc = mr_fs_write_atomic(p, t->data[i].data, t->data[i].len, 0644);
		free(p);
		mr__fault("stage");
	}
	if (rc)
		goto done;
	/* The journal lists index files first, the snapshot's signatures before
	 * snapshot.json itself; its rename is the commit point. */
	mr_buf_puts(&j, "molt-journal 1\n");
	for (pass = 0; pass < 3; pass++)
		for (i = 0; i < t->n; i++) {
			int is_idx = !strncmp(t->rel[i], "index/", 6);
			int is_snap = !strcmp(t->rel[i], "snapshot.json");
			if ((pass == 0 && is_idx) || (pass == 1 && !is_idx && !is_snap) ||
			    (pass == 2 && is_snap))
				mr_buf_printf(&j, "%s\n", t->rel[i]);
		}
	if ((rc = mr_fs_write_atomic(jp, j.data, j.len, 0644)))
		goto done;
	mr__fault("after-journal");
	if ((rc = roll_forward(root, ".pending")))
		goto done;
	mr__fault("after-commit");
	drop_stale_sigs(root, t);
done:
	mr_buf_free(&j);
	free(jp);
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

/* Stages index/<name>.json with the manifest added, with the members of
 * `hints` (with `sigs` NULL, only checks); *same when it is already there
 * with the same manifest. */
static int update_index(mr__txn *t, const char *root, const cJSON *m,
			const char *mdigest, size_t msize, const cJSON *sigs,
			const cJSON *hints, int *same)
{
	const char *name = mr_json_str(m, "name"), *version = mr_json_str(m, "version");
	const char *target = mr_json_str(m, "target");
	char *path = NULL, *rel = NULL, *text = NULL;
	mr_buf raw = MR_BUF_INIT;
	cJSON *idx = NULL, *versions, *v, *tg;
	const cJSON *h;
	int rc = 0;

	*same = 0;
	if (asprintf(&rel, "index/%s.json", name) < 0 || !(path = mr_fs_join(root, rel))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
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
		rc = mr_error_set(MR_EVERIFY, "%s: expected a 'versions' object, found none; "
				  "the index is damaged: run 'mrecipe registry verify'", path);
		goto done;
	}
	if (!(v = cJSON_GetObjectItemCaseSensitive(versions, version)))
		v = cJSON_AddObjectToObject(versions, version);
	if ((tg = cJSON_GetObjectItemCaseSensitive(v, target))) {
		const char *have = mr_json_str(tg, "manifest");
		if (have && !strcmp(have, mdigest)) {
			*same = 1;
			goto done;
		}
		rc = mr_error_set(MR_EEXISTS,
				  "%s@%s for %s is already published with manifest %s "
				  "(%s), found a different manifest %s; published versions "
				  "never change: bump the version in recipe.json",
				  name, version, target, have ? have : "?", path, mdigest);
		goto done;
	}
	if (!sigs || !cJSON_GetArraySize(sigs))
		goto done;
	tg = cJSON_AddObjectToObject(v, target);
	cJSON_AddStringToObject(tg, "manifest", mdigest);
	cJSON_AddNumberToObject(tg, "size", (double)msize);
	cJSON_AddStringToObject(tg, "signature", cJSON_GetArrayItem(sigs, 0)->valuestring);
	cJSON_AddItemToObject(tg, "signatures", cJSON_Duplicate(sigs, 1));
	cJSON_AddBoolToObject(tg, "yanked", 0);
	for (h = hints ? hints->child : NULL; h; h = h->next)
		cJSON_AddItemToObject(tg, h->string, cJSON_Duplicate(h, 1));
	if (!(text = cJSON_Print(idx)))
		rc = mr_error_set(MR_ERROR, "out of memory");
	else
		rc = mr__txn_put(t, rel, text, strlen(text));
done:
	cJSON_Delete(idx);
	mr_buf_free(&raw);
	free(path);
	free(rel);
	free(text);
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

int mr__reg_lock(const char *root, int *fd)
{
	char *p = mr_fs_join(root, ".lock");

	*fd = p ? open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644) : -1;
	free(p);
	if (*fd < 0)
		return mr_error_sys(MR_EIO, "locking registry %s (creating %s/.lock)", root, root);
	if (flock(*fd, LOCK_EX) < 0) {
		close(*fd);
		*fd = -1;
		return mr_error_sys(MR_EIO, "locking registry %s", root);
	}
	return 0;
}

int mr__sign_manifest(const char *root, mr_seckey *const *keys, size_t nkeys,
		      const cJSON *m, const char *mdigest, const mr_buf *mraw,
		      cJSON *sigs)
{
	mr_seckey *sorted[MR_REGISTRY_MAX_KEYS];
	mr_buf sig = MR_BUF_INIT;
	char comment[256], sdigest[MR_DIGEST_STR_LEN + 1];
	size_t k;
	int rc;

	if ((rc = sort_keys(sorted, keys, nkeys)))
		return rc;
	mr_unit_comment(comment, sizeof(comment), mr_json_str(m, "name"),
			mr_json_str(m, "version"), mr_json_str(m, "target"), mdigest);
	for (k = 0; !rc && k < nkeys; k++) {
		sig.len = 0;
		if (!(rc = mr_sign(&sig, sorted[k], mraw->data, mraw->len, comment)) &&
		    !(rc = put_blob(root, sig.data, sig.len, sdigest))) {
			cJSON_AddItemToArray(sigs, cJSON_CreateString(sdigest));
			mr__fault("after-signature-blob");
		}
	}
	mr_buf_free(&sig);
	return rc;
}

int mr_registry_publish(const char *root, mr_seckey *const *keys, size_t nkeys,
			const char *manifest_path, const char *artifact_path,
			const char *schemas_dir, int expires_days, int *unchanged)
{
	mr_buf mraw = MR_BUF_INIT, art = MR_BUF_INIT;
	char mdigest[MR_DIGEST_STR_LEN + 1], adigest[MR_DIGEST_STR_LEN + 1];
	mr_seckey *sorted[MR_REGISTRY_MAX_KEYS];
	const cJSON *a, *s;
	cJSON *m = NULL, *sigs = cJSON_CreateArray(), *hints = cJSON_CreateObject();
	mr__txn txn = { 0 };
	int rc, fd = -1, same = 0;

	*unchanged = 0;
	if (!sigs || !hints) {
		cJSON_Delete(sigs);
		cJSON_Delete(hints);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	if ((rc = sort_keys(sorted, keys, nkeys)) || (rc = read_json(&m, manifest_path, &mraw)) ||
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
	if ((rc = init_layout(root)) || (rc = mr__reg_lock(root, &fd)))
		goto done;
	mr__fault("after-lock");
	mr_digest_buf(mdigest, mraw.data, mraw.len);
	/* Refuse a changed version, or stop on an unchanged one, before writing. */
	if ((rc = update_index(&txn, root, m, mdigest, mraw.len, NULL, NULL, &same)))
		goto done;
	if (same) {
		*unchanged = 1;
		goto done;
	}
	/* Blobs first, index and snapshot last: a reader never sees an index
	 * entry whose blobs are missing. */
	if ((rc = put_blob(root, art.data, art.len, adigest)))
		goto done;
	mr__fault("after-artifact-blob");
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
		mr__fault("after-schema-blob");
	}
	/* Hints, so a client fetches the artifact and all schemas in one round
	 * with the manifest: from the blobs just written. */
	if ((rc = mr__entry_hints(root, m, hints)))
		goto done;
	if ((rc = put_blob(root, mraw.data, mraw.len, mdigest)))
		goto done;
	mr__fault("after-manifest-blob");
	if ((rc = mr__sign_manifest(root, keys, nkeys, m, mdigest, &mraw, sigs)) ||
	    (rc = update_index(&txn, root, m, mdigest, mraw.len, sigs, hints, &same)) ||
	    (rc = mr__txn_snapshot(&txn, root, keys, nkeys, expires_days)))
		goto done;
	mr__fault("before-commit");
	rc = mr__txn_commit(&txn, root);
done:
	if (fd >= 0)
		close(fd);
	mr__txn_free(&txn);
	cJSON_Delete(m);
	cJSON_Delete(sigs);
	cJSON_Delete(hints);
	mr_buf_free(&mraw);
	mr_buf_free(&art);
	return rc;
}

int mr_snapshot_parse(cJSON **out, const mr_buf *snapshot, char *want_comment, size_t n,
		      const char *where)
{
	char digest[MR_DIGEST_STR_LEN + 1];
	const cJSON *v;
	cJSON *s;

	*out = NULL;
	if (!(s = cJSON_ParseWithLength((const char *)snapshot->data, snapshot->len)))
		return mr_error_set(MR_EVERIFY, "%ssnapshot.json: not JSON", where);
	v = cJSON_GetObjectItemCaseSensitive(s, "version");
	if (!mr_json_is_int(cJSON_GetObjectItemCaseSensitive(s, "format"), 1, 1) ||
	    !mr_json_is_int(v, 1, 9e15) ||
	    !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(s, "indexes"))) {
		cJSON_Delete(s);
		return mr_error_set(MR_EVERIFY, "%ssnapshot.json: not a format-1 snapshot", where);
	}
	mr_digest_buf(digest, snapshot->data, snapshot->len);
	snprintf(want_comment, n, "molt snapshot %.0f %s", v->valuedouble, digest);
	*out = s;
	return 0;
}

int mr_snapshot_fresh(const cJSON *snapshot, time_t now, const char *where)
{
	time_t expires;

	if (mr_utc_parse(mr_json_str(snapshot, "expires"), &expires))
		return mr_error_set(MR_EVERIFY, "%ssnapshot.json: 'expires' is not a UTC time", where);
	if (expires <= now)
		return mr_error_set(MR_EVERIFY,
				    "%ssnapshot.json expired at %s: the registry is stale or "
				    "frozen; its publisher must refresh it",
				    where, mr_json_str(snapshot, "expires"));
	return 0;
}

int mr_snapshot_verify(cJSON **out, const mr_pubkey *keys, size_t nkeys,
		       const mr_buf *snapshot, const mr_buf *sig, time_t now)
{
	char *comment = NULL, want[160];
	cJSON *s = NULL;
	int rc;

	*out = NULL;
	if ((rc = mr_verify(keys, nkeys, (const char *)sig->data, sig->len,
			    snapshot->data, snapshot->len, &comment)))
		return mr_error_wrap(rc, "snapshot.json");
	if ((rc = mr_snapshot_parse(&s, snapshot, want, sizeof(want), "")))
		goto done;
	if (strcmp(comment, want)) {
		rc = mr_error_set(MR_EVERIFY,
				  "snapshot.json: signed comment is '%s', expected '%s'",
				  comment, want);
		goto done;
	}
	if (!(rc = mr_snapshot_fresh(s, now, ""))) {
		*out = s;
		s = NULL;
	}
done:
	cJSON_Delete(s);
	free(comment);
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
	if (count)
		(*count)++;
}

/* 1 for names a writer uses before a rename: "<x>.tmp.XXXXXX", "<x>.new". */
static int is_temp_name(const char *n)
{
	size_t len = strlen(n);

	return strstr(n, ".tmp.") || (len > 4 && !strcmp(n + len - 4, ".new"));
}

static void verify_blobs(const char *root, char *const *refs, size_t nrefs,
			 mr_buf *report, int *count)
{
	char *dir = mr_fs_join(root, "blobs/sha256");
	struct dirent *e;
	DIR *d = dir ? opendir(dir) : NULL;

	while (d && (e = readdir(d))) {
		char digest[MR_DIGEST_STR_LEN + 1], *p;
		if (e->d_name[0] == '.')
			continue;
		p = mr_fs_join(dir, e->d_name);
		if (p && is_temp_name(e->d_name))
			problem(report, NULL, "warning: %s: temporary file of an interrupted write; "
				"'mrecipe registry gc --delete' removes it", p);
		else if (p && !mr_digest_file(digest, p, NULL) && strcmp(digest + 7, e->d_name))
			problem(report, count, "%s: content hashes to %s, not its name", p, digest);
		else if (p && refs && !mr__refs_has(refs, nrefs, digest))
			problem(report, NULL, "warning: %s: unreferenced blob (no index entry names it); "
				"'mrecipe registry gc --delete' removes it", p);
		free(p);
	}
	if (d)
		closedir(d);
	free(dir);
}

/* Reads the key id of a minisign signature text; -1 if it is not one. */
static int sig_keyid(const mr_buf *sig, unsigned char id[MR_KEYID_LEN])
{
	const char *s = (const char *)sig->data, *l2 = memchr(s, '\n', sig->len), *end;
	unsigned char bin[2 + MR_KEYID_LEN + 64];
	size_t got;

	if (!l2++ || !(end = memchr(l2, '\n', sig->len - (size_t)(l2 - s))))
		return -1;
	if (sodium_base642bin(bin, sizeof(bin), l2, (size_t)(end - l2), NULL, &got, NULL,
			      sodium_base64_VARIANT_ORIGINAL) || got != sizeof(bin))
		return -1;
	memcpy(id, bin + 2, MR_KEYID_LEN);
	return 0;
}

static int trusted(const mr_pubkey *keys, size_t n, const unsigned char id[MR_KEYID_LEN])
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!memcmp(keys[i].id, id, MR_KEYID_LEN))
			return 1;
	return 0;
}

/* The policy's word on a unit's signatures: thresholds (each key counted
 * once), which names each key may sign, expiry and revocation. */
static void verify_policy(const mr_policy *policy, const char *root, const char *mp,
			  const char *name, const cJSON *t, const mr_buf *m,
			  const char *comment, mr_buf *report, int *count)
{
	const cJSON *sigs = cJSON_GetObjectItemCaseSensitive(t, "signatures"), *e;
	mr_buf texts[MR_POLICY_MAX_SIGS];
	char *paths[MR_POLICY_MAX_SIGS];
	const char *where[MR_POLICY_MAX_SIGS];
	size_t n = 0, i;

	if (!cJSON_IsArray(sigs)) /* an older entry: its one signature */
		sigs = NULL;
	for (e = sigs ? sigs->child : NULL; (sigs ? e != NULL : n == 0) && n < MR_POLICY_MAX_SIGS;
	     e = e ? e->next : NULL) {
		const char *sd = sigs ? (cJSON_IsString(e) ? e->valuestring : NULL)
				      : mr_json_str(t, "signature");
		texts[n] = (mr_buf)MR_BUF_INIT;
		paths[n] = sd ? mr_blob_path(root, sd) : NULL;
		where[n] = paths[n] ? paths[n] : "(a signature)";
		if (paths[n])
			mr_fs_read(&texts[n], paths[n], 1 << 16);
		n++;
		if (!sigs)
			break;
	}
	if (mr_policy_verify(policy, name, texts, where, n, m->data, m->len, comment, time(NULL),
			     NULL))
		problem(report, count, "%s: trust policy: %s", mp, mr_error_last());
	for (i = 0; i < n; i++) {
		mr_buf_free(&texts[i]);
		free(paths[i]);
	}
	mr_error_clear();
}

/* An entry's hints against its manifest `m`: each names exactly what the
 * manifest does, and the schema pack holds exactly its schema documents. */
static void verify_hints(const char *root, const char *where, const cJSON *t, const cJSON *m,
			 mr_buf *report, int *count)
{
	const cJSON *ha = cJSON_GetObjectItemCaseSensitive(t, "artifact");
	const cJSON *hp = cJSON_GetObjectItemCaseSensitive(t, "schemas_pack");
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(m, "artifact");
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(m, "schemas"), *e, *x;
	const char *fix = "the registry is inconsistent: 'mrecipe registry refresh --resign' rewrites the hints";
	const char *d;
	char have[MR_DIGEST_STR_LEN + 1], *pp = NULL;
	mr_buf pack = MR_BUF_INIT;
	cJSON *doc = NULL;
	int i, want_n = cJSON_GetArraySize(s), n;

	if (ha) {
		d = mr_json_str(ha, "digest");
		x = cJSON_GetObjectItemCaseSensitive(ha, "size");
		if (!d || !mr_digest_valid(d) || !mr_json_is_int(x, 0, 9e15))
			problem(report, count, "%s: hint \"artifact\": expected {\"digest\": \"sha256:...\", "
				"\"size\": N}, found something else; %s", where, fix);
		else if (strcmp(d, mr_json_str(a, "digest")) ||
			 x->valuedouble != cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble)
			problem(report, count, "%s: hint \"artifact\" is %s (%.0f bytes), but the signed "
				"manifest names %s (%.0f bytes); %s", where, d, x->valuedouble,
				mr_json_str(a, "digest"),
				cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble, fix);
	}
	if (!hp)
		return;
	d = mr_json_str(hp, "digest");
	x = cJSON_GetObjectItemCaseSensitive(hp, "size");
	if (!d || !mr_digest_valid(d) || !mr_json_is_int(x, 0, 9e15)) {
		problem(report, count, "%s: hint \"schemas_pack\": expected {\"digest\": \"sha256:...\", "
			"\"size\": N}, found something else; %s", where, fix);
		return;
	}
	pp = mr_blob_path(root, d);
	pack.max = META_MAX;
	if (!pp || mr_fs_read(&pack, pp, META_MAX)) {
		problem(report, count, "%s: schema pack blob %s missing or unreadable; %s", where, d, fix);
		goto done;
	}
	mr_digest_buf(have, pack.data, pack.len);
	if ((double)pack.len != x->valuedouble || strcmp(have, d)) {
		problem(report, count, "%s: schema pack %s: expected %.0f bytes hashing to %s (the hint), "
			"found %zu bytes hashing to %s; %s", where, pp, x->valuedouble, d, pack.len, have, fix);
		goto done;
	}
	if (!(doc = cJSON_ParseWithLength((const char *)pack.data, pack.len)) || !cJSON_IsArray(doc)) {
		problem(report, count, "%s: schema pack %s: expected a JSON array of strings, found "
			"something else; %s", where, pp, fix);
		goto done;
	}
	if ((n = cJSON_GetArraySize(doc)) != want_n)
		problem(report, count, "%s: schema pack %s holds %d document%s, but the signed manifest "
			"lists %d schema%s; %s", where, pp, n, n == 1 ? "" : "s", want_n,
			want_n == 1 ? "" : "s", fix);
	for (i = 0, e = doc->child, x = s ? s->child : NULL; e && x; i++, e = e->next, x = x->next) {
		const cJSON *ver = cJSON_GetObjectItemCaseSensitive(x, "version");
		if (!cJSON_IsString(e)) {
			problem(report, count, "%s: schema pack %s: entry %d: expected a string, found "
				"something else; %s", where, pp, i, fix);
			continue;
		}
		mr_digest_buf(have, e->valuestring, strlen(e->valuestring));
		if (!mr_json_str(x, "digest") || strcmp(have, mr_json_str(x, "digest")))
			problem(report, count, "%s: schema pack %s: entry %d hashes to %s, but the signed "
				"manifest lists %s@v%.0f as %s; %s", where, pp, i, have,
				mr_json_str(x, "id") ? mr_json_str(x, "id") : "?", ver ? ver->valuedouble : 0,
				mr_json_str(x, "digest") ? mr_json_str(x, "digest") : "?", fix);
	}
done:
	cJSON_Delete(doc);
	mr_buf_free(&pack);
	free(pp);
}

static void verify_target(const char *root, const mr_pubkey *keys, size_t nkeys,
			  const mr_policy *policy, const char *name, const char *version,
			  const char *target, const cJSON *t, mr_buf *report, int *count)
{
	mr_buf m = MR_BUF_INIT;
	const char *md = mr_json_str(t, "manifest"), *first = mr_json_str(t, "signature");
	const cJSON *sigs = cJSON_GetObjectItemCaseSensitive(t, "signatures"), *e;
	char *mp = md ? mr_blob_path(root, md) : NULL;
	char comment_want[256];
	mr_json *doc = NULL;
	int good = 0, seen = 0;

	if (!mp || mr_fs_read(&m, mp, META_MAX)) {
		problem(report, count, "index/%s.json: %s@%s %s: manifest blob %s missing or unreadable",
			name, name, version, target, md ? md : "(none named)");
		goto done;
	}
	if (sigs && (!cJSON_IsArray(sigs) || !cJSON_GetArraySize(sigs) || !first ||
		     !cJSON_IsString(sigs->child) || strcmp(first, sigs->child->valuestring)))
		problem(report, count, "index/%s.json: %s@%s %s: 'signature' must equal the first of "
			"'signatures'", name, name, version, target);
	mr_unit_comment(comment_want, sizeof(comment_want), name, version, target, md);
	for (e = sigs ? sigs->child : NULL; !sigs || e; e = e ? e->next : NULL) {
		const char *sd = sigs ? (cJSON_IsString(e) ? e->valuestring : NULL) : first;
		char *sp = sd ? mr_blob_path(root, sd) : NULL, *comment = NULL;
		unsigned char id[MR_KEYID_LEN];
		mr_buf sig = MR_BUF_INIT;
		seen++;
		if (!sp || mr_fs_read(&sig, sp, 1 << 16)) {
			problem(report, count, "index/%s.json: %s@%s %s: signature blob %s missing or unreadable",
				name, name, version, target, sd ? sd : "(none named)");
		} else if (sig_keyid(&sig, id)) {
			problem(report, count, "%s: expected a minisign signature, found something else", sp);
		} else if (!trusted(keys, nkeys, id)) {
			/* Another key's signature (e.g. during a rotation): not ours to judge. */
		} else if (mr_verify(keys, nkeys, (char *)sig.data, sig.len, m.data, m.len, &comment)) {
			problem(report, count, "%s: signature %s: %s", mp, sp, mr_error_last());
		} else if (strcmp(comment, comment_want)) {
			problem(report, count, "%s: signed comment is '%s', expected '%s'", sp, comment, comment_want);
		} else {
			good++;
		}
		free(comment);
		free(sp);
		mr_buf_free(&sig);
		if (!sigs)
			break;
	}
	if (policy)
		verify_policy(policy, root, mp, name, t, &m, comment_want, report, count);
	if (!good && seen)
		problem(report, count, "%s: %s@%s %s has no valid signature by a trusted key "
			"(%d signature%s checked); sign it with 'mrecipe registry refresh --resign'",
			mp, name, version, target, seen, seen == 1 ? "" : "s");
	if (mr_json_parse(&doc, mp, (char *)m.data, m.len) ||
	    mr_manifest_check(mr_json_root(doc), name, version, target)) {
		problem(report, count, "%s: %s", mp, mr_error_last());
		goto done;
	}
	{
		const cJSON *a = cJSON_GetObjectItemCaseSensitive(mr_json_root(doc), "artifact");
		const cJSON *s = cJSON_GetObjectItemCaseSensitive(mr_json_root(doc), "schemas");
		char *ap = mr_blob_path(root, mr_json_str(a, "digest"));
		if (!ap || !mr_fs_exists(ap))
			problem(report, count, "%s: artifact %s is missing", mp, mr_json_str(a, "digest"));
		free(ap);
		for (s = s ? s->child : NULL; s; s = s->next) {
			const char *sd = mr_json_str(s, "digest");
			char *p = sd ? mr_blob_path(root, sd) : NULL;
			if (!p || !mr_fs_exists(p))
				problem(report, count, "%s: schema %s blob %s is missing", mp,
					mr_json_str(s, "id") ? mr_json_str(s, "id") : "?", sd ? sd : "?");
			free(p);
		}
	}
	{
		char where[600];
		snprintf(where, sizeof(where), "index/%s.json: %s@%s %s", name, name, version, target);
		verify_hints(root, where, t, mr_json_root(doc), report, count);
	}
done:
	mr_json_free(doc);
	mr_buf_free(&m);
	free(mp);
}

/* Verifies snapshot.json against each of its signature files; *out is the
 * parsed snapshot when at least one trusted key's signature holds. */
static void verify_snapshot(cJSON **out, const char *root, const mr_pubkey *keys,
			    size_t nkeys, mr_buf *report, int *count)
{
	char *sp = mr_fs_join(root, "snapshot.json");
	mr_buf snap = MR_BUF_INIT;
	struct dirent **names = NULL;
	int n = 0, i, good = 0, tried = 0;

	*out = NULL;
	if (!sp || mr_fs_read(&snap, sp, META_MAX)) {
		problem(report, count, "%s: %s", sp ? sp : root, mr_error_last());
		goto done;
	}
	n = scandir(root, &names, NULL, alphasort);
	for (i = 0; i < n; i++) {
		const char *nm = names[i]->d_name;
		size_t len = strlen(nm);
		mr_buf sig = MR_BUF_INIT;
		unsigned char id[MR_KEYID_LEN];
		cJSON *s = NULL;
		char *p;
		if (strncmp(nm, "snapshot.json.", 14) || len < 22 || strcmp(nm + len - 8, ".minisig"))
			continue;
		if (!(p = mr_fs_join(root, nm)))
			break;
		if (mr_fs_read(&sig, p, 1 << 16) || sig_keyid(&sig, id)) {
			problem(report, count, "%s: expected a minisign signature, found none", p);
		} else if (trusted(keys, nkeys, id)) {
			tried++;
			if (mr_snapshot_verify(&s, keys, nkeys, &snap, &sig, time(NULL)))
				problem(report, count, "%s: %s", p, mr_error_last());
			else if (!*out)
				*out = s, s = NULL, good++;
			else
				good++;
		}
		cJSON_Delete(s);
		mr_buf_free(&sig);
		free(p);
	}
	if (!good && !tried)
		problem(report, count, "%s: expected a signature by a trusted key in "
			"snapshot.json.minisig or snapshot.json.<KEYID>.minisig, found none; "
			"check the -k keys, or re-sign with 'mrecipe registry refresh'", sp);
done:
	if (!good) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	mr_buf_free(&snap);
	free(sp);
}

int mr_registry_verify(const char *root, const mr_pubkey *keys, size_t nkeys,
		       const mr_policy *policy, mr_buf *report)
{
	char **refs = NULL, *jp = mr_fs_join(root, ".pending");
	size_t nrefs = 0, i;
	cJSON *s = NULL;
	const cJSON *e;
	int count = 0;

	if (!jp)
		return mr_error_set(MR_ERROR, "out of memory");
	if (mr_fs_exists(jp))
		problem(report, &count, "%s: a publish was interrupted after its commit point; "
			"'mrecipe registry verify' (the command) completes it", jp);
	if (mr__reg_refs(root, &refs, &nrefs)) {
		problem(report, &count, "%s: %s", root, mr_error_last());
		refs = NULL;
	}
	verify_blobs(root, refs, nrefs, report, &count);
	verify_snapshot(&s, root, keys, nkeys, report, &count);
	if (!s)
		goto done;
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
					verify_target(root, keys, nkeys, policy, e->string,
						      v->string, t->string, t, report, &count);
		}
		cJSON_Delete(idx);
		mr_buf_free(&raw);
		free(ip);
	}
done:
	for (i = 0; i < nrefs; i++)
		free(refs[i]);
	free(refs);
	free(jp);
	cJSON_Delete(s);
	return count;
}
