/* Input digests: what decides whether an output can be reused. Everything
 * that can change an output's bytes goes in; nothing else does, so touching
 * a file without changing it, or moving the tree, rebuilds nothing. */
#define _GNU_SOURCE
#include "mrecipe/build.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/manifest.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Bump when the compiler or linker flags in build.c change. */
#define FLAGS_VERSION "flags-1"

static int cmp_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

/* Feeds every regular file under dir (sorted, relative names, bytes) into h. */
static int hash_tree(mr_sha256 *h, const char *dir, const char *rel)
{
	struct dirent **names = NULL;
	char *path = rel[0] ? mr_fs_join(dir, rel) : strdup(dir);
	int n, i, rc = 0;

	if (!path)
		return mr_error_set(MR_ERROR, "out of memory");
	if ((n = scandir(path, &names, NULL, cmp_name)) < 0) {
		rc = mr_error_sys(MR_EIO, "listing %s", path);
		free(path);
		return rc;
	}
	for (i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		char *sub = NULL, *full = NULL, digest[MR_DIGEST_STR_LEN + 1];
		struct stat st;
		if (!rc && name[0] != '.' &&
		    (sub = rel[0] ? mr_fs_join(rel, name) : strdup(name)) &&
		    (full = mr_fs_join(dir, sub)) && !lstat(full, &st)) {
			if (S_ISDIR(st.st_mode)) {
				rc = hash_tree(h, dir, sub);
			} else if (S_ISREG(st.st_mode) && !(rc = mr_digest_file(digest, full, NULL))) {
				mr_sha256_update(h, sub, strlen(sub) + 1);
				mr_sha256_update(h, digest, sizeof(digest));
			}
		}
		free(sub);
		free(full);
		free(names[i]);
	}
	free(names);
	free(path);
	return rc;
}

static void feed(mr_sha256 *h, const char *label, const char *value)
{
	mr_sha256_update(h, label, strlen(label) + 1);
	mr_sha256_update(h, value ? value : "", strlen(value ? value : "") + 1);
}

int mr_build_key(char key[MR_DIGEST_STR_LEN + 1], const mr_build_opts *o,
		 const mr_recipe *r, unsigned target, const char *toolchain,
		 const char *const *dep_keys, size_t ndeps)
{
	const cJSON *root = mr_recipe_json(r);
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "source");
	const cJSON *p, *f;
	unsigned char raw[MR_DIGEST_LEN];
	mr_sha256 *h = NULL;
	size_t i;
	int rc;

	if ((rc = mr_sha256_new(&h)))
		return rc;
	feed(h, "mrecipe", MOLT_VERSION);
	feed(h, "flags", FLAGS_VERSION);
	feed(h, "target", mr_target_triple(target));
	feed(h, "toolchain", toolchain);
	feed(h, "recipe", r->digest);
	if (mr_json_str(src, "path")) {
		char *dir = mr_fs_join(r->dir, mr_json_str(src, "path"));
		feed(h, "source", "path");
		rc = dir ? hash_tree(h, dir, "") : mr_error_set(MR_ERROR, "out of memory");
		free(dir);
	} else {
		/* Archives and commits name their content already. */
		feed(h, "source", mr_json_str(src, "sha256"));
		feed(h, "commit", mr_json_str(src, "commit"));
	}
	p = cJSON_GetObjectItemCaseSensitive(src, "patches");
	for (p = p ? p->child : NULL; !rc && p; p = p->next) {
		char digest[MR_DIGEST_STR_LEN + 1], *path = mr_fs_join(r->dir, p->valuestring);
		if (!path || (rc = mr_digest_file(digest, path, NULL)))
			rc = rc ? mr_error_wrap(rc, "%s: patch", r->name) : mr_error_set(MR_ERROR, "out of memory");
		else
			feed(h, "patch", digest);
		free(path);
	}
	if (!rc && !strcmp(r->kind, "module")) {
		char *sdk = mr_fs_join(o->repo_root, "runtime");
		feed(h, "sdk", "");
		rc = sdk ? hash_tree(h, sdk, "sdk") : MR_ERROR;
		if (!rc)
			rc = hash_tree(h, sdk, "include/molt");
		free(sdk);
		f = cJSON_GetObjectItemCaseSensitive(root, "functions");
		for (f = f ? f->child : NULL; !rc && f; f = f->next) {
			const char *refs[2] = { mr_json_str(f, "input"), mr_json_str(f, "output") };
			for (int k = 0; k < 2 && !rc; k++) {
				char id[256], digest[MR_DIGEST_STR_LEN + 1];
				mr_buf canon = MR_BUF_INIT;
				int ver;
				if (!(rc = mr_schema_ref_parse(refs[k], id, sizeof(id), &ver)) &&
				    !(rc = mr_schema_load(&canon, digest, o->schemas_dir, id, ver)))
					feed(h, "schema", digest);
				mr_buf_free(&canon);
			}
		}
	}
	for (i = 0; !rc && i < ndeps; i++)
		feed(h, "dep", dep_keys[i]);
	if (!rc) {
		mr_sha256_final(h, raw);
		mr_digest_format(key, raw);
	}
	mr_sha256_free(h);
	return rc;
}
