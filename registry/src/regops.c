/* Registry maintenance: yank/unyank, refresh (and re-signing), gc, and the
 * set of referenced blobs they share with verify. */
#define _GNU_SOURCE
#include "mr/registry.h"

#include "mr/digest.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define META_MAX (16 << 20)
#define REFS_MAX ((size_t)1 << 24)

typedef struct {
	char **v;
	size_t n, cap;
} strs;

static int strs_add(strs *s, const char *d)
{
	if (!d || !mr_digest_valid(d))
		return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		char **v = cap <= REFS_MAX ? realloc(s->v, cap * sizeof(*v)) : NULL;
		if (!v)
			return mr_error_set(MR_ERROR, "out of memory listing referenced blobs");
		s->v = v;
		s->cap = cap;
	}
	if (!(s->v[s->n] = strdup(d)))
		return mr_error_set(MR_ERROR, "out of memory");
	s->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int mr__refs_has(char *const *refs, size_t n, const char *digest)
{
	return bsearch(&digest, refs, n, sizeof(*refs), cmp_str) != NULL;
}

/* Adds what one manifest blob names: its artifact and schemas. */
static int add_manifest_refs(strs *s, const char *root, const char *md)
{
	char *p = mr_blob_path(root, md);
	mr_json *doc = NULL;
	const cJSON *e;
	int rc = 0;

	/* A missing or broken manifest is verify's to report; gc keeps going. */
	if (p && mr_fs_exists(p) && !mr_json_load(&doc, p, META_MAX)) {
		rc = strs_add(s, mr_json_str(cJSON_GetObjectItemCaseSensitive(mr_json_root(doc), "artifact"), "digest"));
		e = cJSON_GetObjectItemCaseSensitive(mr_json_root(doc), "schemas");
		for (e = e ? e->child : NULL; !rc && e; e = e->next)
			rc = strs_add(s, mr_json_str(e, "digest"));
	}
	mr_json_free(doc);
	free(p);
	return rc;
}

int mr__reg_refs(const char *root, char ***out, size_t *n)
{
	char *dir = mr_fs_join(root, "index");
	strs s = { 0 };
	DIR *d = dir ? opendir(dir) : NULL;
	struct dirent *de;
	int rc = 0;

	*out = NULL;
	*n = 0;
	while (!rc && d && (de = readdir(d))) {
		size_t len = strlen(de->d_name);
		mr_buf raw = MR_BUF_INIT;
		cJSON *idx = NULL;
		const cJSON *v, *t, *sg;
		char *p;
		if (len < 6 || strcmp(de->d_name + len - 5, ".json"))
			continue;
		if (!(p = mr_fs_join(dir, de->d_name))) {
			rc = mr_error_set(MR_ERROR, "out of memory");
			break;
		}
		if (!mr__reg_read_json(&idx, p, &raw)) {
			v = cJSON_GetObjectItemCaseSensitive(idx, "versions");
			for (v = v ? v->child : NULL; !rc && v; v = v->next)
				for (t = v->child; !rc && t; t = t->next) {
					rc = strs_add(&s, mr_json_str(t, "manifest"));
					if (!rc)
						rc = strs_add(&s, mr_json_str(t, "signature"));
					sg = cJSON_GetObjectItemCaseSensitive(t, "signatures");
					for (sg = sg ? sg->child : NULL; !rc && sg; sg = sg->next)
						rc = strs_add(&s, cJSON_IsString(sg) ? sg->valuestring : NULL);
					if (!rc && mr_json_str(t, "manifest"))
						rc = add_manifest_refs(&s, root, mr_json_str(t, "manifest"));
					/* Hints name blobs too: the schema pack above all. */
					if (!rc)
						rc = strs_add(&s, mr_json_str(cJSON_GetObjectItemCaseSensitive(t, "artifact"), "digest"));
					if (!rc)
						rc = strs_add(&s, mr_json_str(cJSON_GetObjectItemCaseSensitive(t, "schemas_pack"), "digest"));
				}
		}
		cJSON_Delete(idx);
		mr_buf_free(&raw);
		free(p);
	}
	if (d)
		closedir(d);
	free(dir);
	if (rc) {
		while (s.n)
			free(s.v[--s.n]);
		free(s.v);
		return rc;
	}
	qsort(s.v, s.n, sizeof(*s.v), cmp_str);
	*out = s.v;
	*n = s.n;
	return 0;
}

static int is_temp_name(const char *n)
{
	size_t len = strlen(n);

	return strstr(n, ".tmp.") || (len > 4 && !strcmp(n + len - 4, ".new"));
}

/* Lists (and with `remove` deletes) the temporary files left in `dir`. */
static void gc_temps(const char *dir, int remove, mr_buf *report, int *count)
{
	DIR *d = opendir(dir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char *p;
		if (e->d_name[0] == '.' || !is_temp_name(e->d_name) || !(p = mr_fs_join(dir, e->d_name)))
			continue;
		mr_buf_printf(report, "%s %s (temporary file)\n", remove ? "removed" : "would remove", p);
		if (remove)
			unlink(p);
		(*count)++;
		free(p);
	}
	if (d)
		closedir(d);
}

int mr_registry_gc(const char *root, int remove, mr_buf *report)
{
	char **refs = NULL, *dir = mr_fs_join(root, "blobs/sha256"), *idx = mr_fs_join(root, "index");
	size_t nrefs = 0, i;
	struct dirent *e;
	DIR *d = NULL;
	int rc, fd = -1, count = 0, done;

	if (!dir || !idx) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto out;
	}
	if (!mr_fs_exists(dir)) {
		rc = mr_error_set(MR_ENOTFOUND, "%s: expected a registry (blobs/sha256), found none", root);
		goto out;
	}
	/* Under the lock no publish is between its blob writes and its commit,
	 * so every blob not referenced now is garbage, and every temp file stale. */
	if ((rc = mr__reg_lock(root, &fd)) || (rc = mr__reg_recover_locked(root, &done)) ||
	    (rc = mr__reg_refs(root, &refs, &nrefs)))
		goto out;
	if (!(d = opendir(dir))) {
		rc = mr_error_sys(MR_EIO, "listing %s", dir);
		goto out;
	}
	while ((e = readdir(d))) {
		char digest[MR_DIGEST_STR_LEN + 1], *p;
		if (e->d_name[0] == '.' || is_temp_name(e->d_name) || strlen(e->d_name) != 64)
			continue;
		snprintf(digest, sizeof(digest), "sha256:%.64s", e->d_name);
		if (mr__refs_has(refs, nrefs, digest) || !(p = mr_fs_join(dir, e->d_name)))
			continue;
		mr_buf_printf(report, "%s %s\n", remove ? "removed" : "would remove", p);
		if (remove && unlink(p) < 0)
			rc = mr_error_sys(MR_EIO, "removing %s", p);
		free(p);
		count++;
		if (rc)
			goto out;
	}
	gc_temps(dir, remove, report, &count);
	gc_temps(idx, remove, report, &count);
	gc_temps(root, remove, report, &count);
out:
	if (d)
		closedir(d);
	if (fd >= 0)
		close(fd);
	for (i = 0; i < nrefs; i++)
		free(refs[i]);
	free(refs);
	free(dir);
	free(idx);
	return rc ? rc : count;
}

/* Rewrites the yanked flag of matching entries into `t`. */
int mr_registry_yank(const char *root, mr_seckey *const *keys, size_t nkeys,
		     const char *name, const char *version, const char *target,
		     int yanked, int expires_days, int *changed)
{
	char *rel = NULL, *path = NULL, *text = NULL;
	mr_buf raw = MR_BUF_INIT;
	mr__txn txn = { 0 };
	cJSON *idx = NULL, *v, *t;
	int rc, fd = -1, found = 0;

	*changed = 0;
	if (asprintf(&rel, "index/%s.json", name) < 0 || !(path = mr_fs_join(root, rel))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr__reg_lock(root, &fd)))
		goto done;
	if ((rc = mr__reg_read_json(&idx, path, &raw))) {
		if (rc == MR_ENOTFOUND)
			mr_error_set(rc, "%s: no unit named '%s' in this registry", path, name);
		goto done;
	}
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(idx, "versions"), version);
	for (t = v ? v->child : NULL; t; t = t->next) {
		cJSON *y;
		if (target && strcmp(target, t->string))
			continue;
		found++;
		y = cJSON_GetObjectItemCaseSensitive(t, "yanked");
		if (cJSON_IsTrue(y) == !!yanked)
			continue;
		cJSON_ReplaceItemInObjectCaseSensitive(t, "yanked", cJSON_CreateBool(yanked));
		if (!y)
			cJSON_AddBoolToObject(t, "yanked", yanked);
		(*changed)++;
	}
	if (!found) {
		rc = mr_error_set(MR_ENOTFOUND, "%s: expected %s@%s%s%s, found no such entry; "
				  "'cat %s' lists what is published", path, name, version,
				  target ? " for " : "", target ? target : "", path);
		goto done;
	}
	if (!*changed)
		goto done;
	if (!(text = cJSON_Print(idx))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if (!(rc = mr__txn_put(&txn, rel, text, strlen(text))) &&
	    !(rc = mr__txn_snapshot(&txn, root, keys, nkeys, expires_days)))
		rc = mr__txn_commit(&txn, root);
done:
	if (fd >= 0)
		close(fd);
	mr__txn_free(&txn);
	cJSON_Delete(idx);
	mr_buf_free(&raw);
	free(rel);
	free(path);
	free(text);
	return rc;
}

/* Re-signs every entry of one index with exactly `keys`, and rewrites its
 * hints from the manifest (adding them to entries published without),
 * staging it. */
static int resign_index(mr__txn *t, const char *root, mr_seckey *const *keys,
			size_t nkeys, const char *fname)
{
	char *rel = NULL, *path = NULL, *text = NULL;
	mr_buf raw = MR_BUF_INIT;
	cJSON *idx = NULL, *v, *tg;
	int rc = 0;

	if (asprintf(&rel, "index/%s", fname) < 0 || !(path = mr_fs_join(root, rel))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr__reg_read_json(&idx, path, &raw)))
		goto done;
	v = cJSON_GetObjectItemCaseSensitive(idx, "versions");
	for (v = v ? v->child : NULL; !rc && v; v = v->next)
		for (tg = v->child; !rc && tg; tg = tg->next) {
			const char *md = mr_json_str(tg, "manifest");
			char *mp = md ? mr_blob_path(root, md) : NULL, have[MR_DIGEST_STR_LEN + 1];
			mr_buf m = MR_BUF_INIT;
			mr_json *doc = NULL;
			cJSON *sigs = cJSON_CreateArray();
			if (!mp || !sigs || (rc = mr_fs_read(&m, mp, META_MAX))) {
				rc = mr_error_wrap(rc ? rc : MR_ERROR, "%s: %s@%s %s", path,
						   mr_json_str(idx, "name") ? mr_json_str(idx, "name") : "?",
						   v->string, tg->string);
			} else if (mr_digest_buf(have, m.data, m.len), strcmp(have, md)) {
				rc = mr_error_set(MR_EVERIFY, "%s: expected content hashing to %s, found %s; "
						  "refusing to sign it: restore the blob", mp, md, have);
			} else if (!(rc = mr_json_parse(&doc, mp, (char *)m.data, m.len)) &&
				   !(rc = mr__sign_manifest(root, keys, nkeys, mr_json_root(doc), md, &m, sigs)) &&
				   !(rc = mr__entry_hints(root, mr_json_root(doc), tg))) {
				cJSON_ReplaceItemInObjectCaseSensitive(tg, "signature",
								       cJSON_CreateString(sigs->child->valuestring));
				if (cJSON_GetObjectItemCaseSensitive(tg, "signatures"))
					cJSON_ReplaceItemInObjectCaseSensitive(tg, "signatures", sigs);
				else
					cJSON_AddItemToObject(tg, "signatures", sigs);
				sigs = NULL;
			}
			cJSON_Delete(sigs);
			mr_json_free(doc);
			mr_buf_free(&m);
			free(mp);
		}
	if (!rc && !(text = cJSON_Print(idx)))
		rc = mr_error_set(MR_ERROR, "out of memory");
	if (!rc)
		rc = mr__txn_put(t, rel, text, strlen(text));
done:
	cJSON_Delete(idx);
	mr_buf_free(&raw);
	free(rel);
	free(path);
	free(text);
	return rc;
}

int mr_registry_refresh(const char *root, mr_seckey *const *keys, size_t nkeys,
			int expires_days, int resign)
{
	char *idx = mr_fs_join(root, "index"), *snap = mr_fs_join(root, "snapshot.json");
	mr__txn txn = { 0 };
	struct dirent **names = NULL;
	int rc = 0, fd = -1, n = 0, i;

	if (!idx || !snap) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if (!mr_fs_exists(snap)) {
		rc = mr_error_set(MR_ENOTFOUND, "%s: expected a registry with a snapshot, found none; "
				  "publish into it first", root);
		goto done;
	}
	if ((rc = mr__reg_lock(root, &fd)))
		goto done;
	if (resign) {
		if ((n = scandir(idx, &names, NULL, alphasort)) < 0) {
			rc = mr_error_sys(MR_EIO, "listing %s", idx);
			n = 0;
			goto done;
		}
		for (i = 0; !rc && i < n; i++) {
			size_t len = strlen(names[i]->d_name);
			if (len > 5 && !strcmp(names[i]->d_name + len - 5, ".json"))
				rc = resign_index(&txn, root, keys, nkeys, names[i]->d_name);
		}
	}
	if (!rc && !(rc = mr__txn_snapshot(&txn, root, keys, nkeys, expires_days)))
		rc = mr__txn_commit(&txn, root);
done:
	if (fd >= 0)
		close(fd);
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	mr__txn_free(&txn);
	free(idx);
	free(snap);
	return rc;
}
