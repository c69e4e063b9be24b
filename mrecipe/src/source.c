#define _GNU_SOURCE
#include "mrecipe/build.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SOURCE_MAX ((curl_off_t)512 << 20)

char *mr_source_cache_default(void)
{
	const char *env = getenv("MRECIPE_SOURCE_CACHE");
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");
	char *base, *out;

	if (env && *env)
		return strdup(env);
	if (xdg && *xdg)
		return mr_fs_join(xdg, "mrecipe/sources");
	base = mr_fs_join(home && *home ? home : "/tmp", ".cache");
	out = base ? mr_fs_join(base, "mrecipe/sources") : NULL;
	free(base);
	return out;
}

/* Rejects entry names that could land outside the destination. */
static int unsafe_name(const char *name)
{
	const char *p = name;

	if (*name == '/')
		return 1;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			return 1;
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

static const char *strip_path(const char *name, int strip)
{
	while (strip-- > 0) {
		const char *slash = strchr(name, '/');
		if (!slash)
			return NULL;
		name = slash + 1;
		while (*name == '/')
			name++;
	}
	return *name ? name : NULL;
}

/* A symlink target is safe when, resolved from the link's own folder, it
 * stays inside the tree. */
static int link_escapes(const char *entry, const char *target)
{
	int depth = 0;
	const char *p;

	if (*target == '/')
		return 1;
	for (p = entry; (p = strchr(p, '/')); p++)
		depth++;
	for (p = target; *p;) {
		size_t n = strcspn(p, "/");
		if (n == 2 && p[0] == '.' && p[1] == '.')
			depth--;
		else if (n && !(n == 1 && p[0] == '.'))
			depth++;
		if (depth < 0)
			return 1;
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

int mr_archive_extract(const char *archive, const char *dest, int strip)
{
	struct archive *a = archive_read_new(), *w = archive_write_disk_new();
	struct archive_entry *e;
	int rc = 0, r;

	if (!a || !w) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	archive_write_disk_set_options(w, ARCHIVE_EXTRACT_SECURE_NODOTDOT |
					  ARCHIVE_EXTRACT_SECURE_SYMLINKS |
					  ARCHIVE_EXTRACT_NO_OVERWRITE);
	/* Entry names are checked above and then joined to `dest`, so the
	 * paths written are absolute by construction. */
	if ((rc = mr_fs_mkdir_p(dest)))
		goto done;
	if (archive_read_open_filename(a, archive, 1 << 16) != ARCHIVE_OK) {
		rc = mr_error_set(MR_EINVALID, "%s: not an archive libarchive can read: %s",
				  archive, archive_error_string(a));
		goto done;
	}
	while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
		const char *name = archive_entry_pathname(e), *rel;
		char relbuf[4096];
		const char *lnk = archive_entry_symlink(e);
		const char *hard = archive_entry_hardlink(e);
		mode_t type = archive_entry_filetype(e);
		char *full = NULL;

		if (!name || unsafe_name(name)) {
			rc = mr_error_set(MR_EVERIFY,
					  "%s: refusing entry '%s': absolute paths and '..' are not allowed",
					  archive, name ? name : "(no name)");
			goto done;
		}
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK) {
			rc = mr_error_set(MR_EVERIFY,
					  "%s: refusing entry '%s': only files, folders and "
					  "links are allowed, not device files or FIFOs",
					  archive, name);
			goto done;
		}
		if (!(rel = strip_path(name, strip)))
			continue;
		snprintf(relbuf, sizeof(relbuf), "%s", rel);
		rel = relbuf;
		if ((lnk && link_escapes(rel, lnk)) || (hard && (unsafe_name(hard) || !strip_path(hard, strip)))) {
			rc = mr_error_set(MR_EVERIFY,
					  "%s: refusing link '%s' -> '%s': it points outside the source tree",
					  archive, name, lnk ? lnk : hard);
			goto done;
		}
		if (!(full = mr_fs_join(dest, rel))) {
			rc = mr_error_set(MR_ERROR, "out of memory");
			goto done;
		}
		archive_entry_set_pathname(e, full);
		if (hard) {
			char *h = mr_fs_join(dest, strip_path(hard, strip));
			archive_entry_set_hardlink(e, h);
			free(h);
		}
		free(full);
		/* Fixed times and modes keep outputs independent of the archive's clock. */
		archive_entry_set_mtime(e, 0, 0);
		archive_entry_set_perm(e, type == AE_IFDIR ? 0755 : 0644 | (archive_entry_perm(e) & 0111));
		archive_entry_set_uid(e, getuid());
		archive_entry_set_gid(e, getgid());
		if (archive_write_header(w, e) != ARCHIVE_OK) {
			rc = mr_error_set(MR_EVERIFY, "%s: extracting '%s': %s", archive,
					  rel, archive_error_string(w));
			goto done;
		}
		if (type == AE_IFREG) {
			const void *buf;
			size_t len;
			la_int64_t off;
			while ((r = archive_read_data_block(a, &buf, &len, &off)) == ARCHIVE_OK)
				if (archive_write_data_block(w, buf, len, off) != ARCHIVE_OK)
					break;
			if (r != ARCHIVE_EOF) {
				rc = mr_error_set(MR_EINVALID, "%s: reading '%s': %s", archive,
						  rel, archive_error_string(a));
				goto done;
			}
		}
		archive_write_finish_entry(w);
	}
	if (r != ARCHIVE_EOF)
		rc = mr_error_set(MR_EINVALID, "%s: corrupt archive: %s", archive,
				  archive_error_string(a));
done:
	archive_read_free(a);
	archive_write_free(w);
	return rc;
}

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
	return fwrite(p, size, n, ud);
}

static int download(const char *url, const char *to, const char *name)
{
	char err[CURL_ERROR_SIZE] = "";
	CURL *c = curl_easy_init();
	FILE *f = fopen(to, "wb");
	CURLcode cc;
	long status = 0;
	int rc = 0;

	if (!c || !f) {
		rc = mr_error_sys(MR_EIO, "creating %s", to);
		goto done;
	}
	fprintf(stderr, "mrecipe: %s: downloading %s\n", name, url);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, SOURCE_MAX);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc != CURLE_OK)
		rc = mr_error_set(MR_EENV,
				  "%s: fetching %s: %s; put the archive in the source "
				  "cache (MRECIPE_SOURCE_CACHE) to build offline",
				  name, url, *err ? err : curl_easy_strerror(cc));
done:
	if (f && fclose(f) && !rc)
		rc = mr_error_sys(MR_EIO, "writing %s", to);
	curl_easy_cleanup(c);
	return rc;
}

/* Finds (or downloads into) cache/sha256/<hex> and checks its digest. */
static int fetch_cached(char **path_out, const mr_build_opts *o,
			const mr_recipe *r, const char *url, const char *hex)
{
	char digest[MR_DIGEST_STR_LEN + 1], *dir = NULL, *path = NULL, *tmp = NULL;
	int rc;

	*path_out = NULL;
	if (!(dir = mr_fs_join(o->source_cache, "sha256")) ||
	    !(path = mr_fs_join(dir, hex)) || (rc = mr_fs_mkdir_p(dir)))
		goto fail;
	if (!mr_fs_exists(path)) {
		size_t n = strlen(path) + 16;
		if (!(tmp = malloc(n)))
			goto fail;
		snprintf(tmp, n, "%s.part", path);
		if ((rc = download(url, tmp, r->name)))
			goto done;
		if ((rc = mr_digest_file(digest, tmp, NULL)))
			goto done;
		if (strcmp(digest + 7, hex)) {
			unlink(tmp);
			rc = mr_error_set(MR_EVERIFY,
					  "%s: %s: sha256 mismatch: recipe expects %s, downloaded "
					  "bytes are %s; the file changed upstream or the recipe "
					  "is wrong",
					  r->name, url, hex, digest + 7);
			goto done;
		}
		if (rename(tmp, path) < 0) {
			rc = mr_error_sys(MR_EIO, "renaming %s", tmp);
			goto done;
		}
	} else {
		if ((rc = mr_digest_file(digest, path, NULL)))
			goto done;
		if (strcmp(digest + 7, hex)) {
			rc = mr_error_set(MR_EVERIFY,
					  "%s: cached source %s is corrupt: expected sha256 %s, "
					  "found %s; delete the file to fetch it again",
					  r->name, path, hex, digest + 7);
			goto done;
		}
	}
	*path_out = path;
	path = NULL;
	rc = 0;
	goto done;
fail:
	rc = mr_error_set(MR_ERROR, "out of memory");
done:
	free(dir);
	free(path);
	free(tmp);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The digest of a path source: its build sources, sorted, name and bytes. */
static int digest_path_source(char out[MR_DIGEST_STR_LEN + 1], const char *dir,
			      const cJSON *sources)
{
	const char *names[512];
	const cJSON *s;
	mr_buf all = MR_BUF_INIT;
	size_t n = 0, i;
	int rc = 0;

	for (s = sources->child; s && n < 512; s = s->next)
		names[n++] = s->valuestring;
	qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; !rc && i < n; i++) {
		char d[MR_DIGEST_STR_LEN + 1], *p = mr_fs_join(dir, names[i]);
		if (!p)
			rc = mr_error_set(MR_ERROR, "out of memory");
		else if (!(rc = mr_digest_file(d, p, NULL)))
			rc = mr_buf_printf(&all, "%s %s\n", d, names[i]);
		free(p);
	}
	if (!rc)
		mr_digest_buf(out, all.data, all.len);
	mr_buf_free(&all);
	return rc;
}

int mr_source_prepare(char **src_dir, char digest[MR_DIGEST_STR_LEN + 1],
		      const mr_build_opts *o, const mr_recipe *r,
		      const char *work_dir)
{
	const cJSON *root = mr_recipe_json(r);
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "source");
	const cJSON *build = cJSON_GetObjectItemCaseSensitive(root, "build");
	const char *path = mr_json_str(src, "path"), *url = mr_json_str(src, "url");
	const cJSON *strip = cJSON_GetObjectItemCaseSensitive(src, "strip_components");
	char *archive = NULL, *dest = NULL;
	int rc;

	*src_dir = NULL;
	if (path) {
		if (!(*src_dir = mr_fs_join(r->dir, path)))
			return mr_error_set(MR_ERROR, "out of memory");
		rc = digest_path_source(digest, *src_dir,
					cJSON_GetObjectItemCaseSensitive(build, "sources"));
		if (rc) {
			free(*src_dir);
			*src_dir = NULL;
		}
		return rc;
	}
	if (!url)
		return mr_error_set(MR_EINVALID,
				    "%s: git sources are not supported yet; use 'path' or 'url'",
				    r->name);
	if ((rc = fetch_cached(&archive, o, r, url, mr_json_str(src, "sha256"))))
		return rc;
	snprintf(digest, MR_DIGEST_STR_LEN + 1, "sha256:%s", mr_json_str(src, "sha256"));
	if (!(dest = mr_fs_join(work_dir, "src"))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr_fs_rm_rf(dest)))
		goto done;
	if ((rc = mr_archive_extract(archive, dest, strip ? (int)strip->valuedouble : 1))) {
		mr_error_wrap(rc, "%s: unpacking source", r->name);
		goto done;
	}
	*src_dir = dest;
	dest = NULL;
done:
	free(archive);
	free(dest);
	return rc;
}
