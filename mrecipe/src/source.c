#define _GNU_SOURCE
#include "mrecipe/build.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "source.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SOURCE_MAX ((curl_off_t)MR__SOURCE_MAX_BYTES)
#define DOWNLOAD_TRIES 3

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
int mr__link_escapes(const char *entry, const char *target)
{
	int depth = 0, named = 0;
	const char *p;

	if (*target == '/')
		return 1;
	for (p = entry; (p = strchr(p, '/')); p++)
		depth++;
	for (p = target; *p;) {
		size_t n = strcspn(p, "/");
		/* ".." after a name could climb out of a link ("here/.." with
		 * here -> "."): only leading ".." are allowed, and those are
		 * counted against the link's own, real, folders. */
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			if (named)
				return 1;
			depth--;
		} else if (n && !(n == 1 && p[0] == '.')) {
			depth++;
			named = 1;
		}
		if (depth < 0)
			return 1;
		p += n;
		while (*p == '/')
			p++;
	}
	return 0;
}

int mr__name_unsafe(const char *name)
{
	return !*name || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..") ||
	       !strcasecmp(name, ".git");
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
		/* libarchive gives hard links file type 0; their target is checked below. */
		if (type != AE_IFREG && type != AE_IFDIR && type != AE_IFLNK && !hard) {
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
		if ((lnk && mr__link_escapes(rel, lnk)) || (hard && (unsafe_name(hard) || !strip_path(hard, strip)))) {
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

/* --- source trees and their digest ------------------------------------- */

int mr__tree_add(mr__tree *t, const char *path, unsigned mode,
		 const char digest[MR_DIGEST_STR_LEN + 1])
{
	mr__tree_entry *e;

	if (t->n == MR__SOURCE_MAX_ENTRIES)
		return mr_error_set(MR_EINVALID,
				    "more than %d files in the source tree (at '%s'); "
				    "that is the cap for one recipe's source",
				    MR__SOURCE_MAX_ENTRIES, path);
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		mr__tree_entry *v = realloc(t->v, cap * sizeof(*v));
		if (!v)
			return mr_error_set(MR_ERROR, "out of memory");
		t->v = v;
		t->cap = cap;
	}
	e = &t->v[t->n];
	if (!(e->path = strdup(path)))
		return mr_error_set(MR_ERROR, "out of memory");
	e->mode = mode;
	memcpy(e->digest, digest, MR_DIGEST_STR_LEN + 1);
	t->n++;
	return 0;
}

static int cmp_entry(const void *a, const void *b)
{
	return strcmp(((const mr__tree_entry *)a)->path, ((const mr__tree_entry *)b)->path);
}

int mr__tree_digest(char out[MR_DIGEST_STR_LEN + 1], mr__tree *t)
{
	unsigned char raw[MR_DIGEST_LEN];
	mr_sha256 *h = NULL;
	size_t i;
	int rc;

	qsort(t->v, t->n, sizeof(*t->v), cmp_entry);
	if ((rc = mr_sha256_new(&h)))
		return rc;
	for (i = 0; i < t->n; i++) {
		char head[16];
		int n = snprintf(head, sizeof(head), "%06o ", t->v[i].mode);
		mr_sha256_update(h, head, (size_t)n);
		mr_sha256_update(h, t->v[i].digest, MR_DIGEST_STR_LEN);
		mr_sha256_update(h, " ", 1);
		mr_sha256_update(h, t->v[i].path, strlen(t->v[i].path) + 1);
	}
	mr_sha256_final(h, raw);
	mr_sha256_free(h);
	mr_digest_format(out, raw);
	return 0;
}

void mr__tree_free(mr__tree *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->v[i].path);
	free(t->v);
	memset(t, 0, sizeof(*t));
}

/* Hashes a file and, when `to` is set, copies it there (a new file). */
static int hash_copy(char digest[MR_DIGEST_STR_LEN + 1], mr__tree *t,
		     const char *from, const char *to, mode_t mode)
{
	unsigned char chunk[65536], raw[MR_DIGEST_LEN];
	int in = -1, out = -1, rc = 0;
	mr_sha256 *h = NULL;
	ssize_t n;

	if ((in = open(from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		rc = mr_error_sys(MR_EIO, "opening %s", from);
		goto done;
	}
	if (to && (out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
			      mode)) < 0) {
		rc = mr_error_sys(MR_EIO, "creating %s", to);
		goto done;
	}
	if ((rc = mr_sha256_new(&h)))
		goto done;
	while ((n = read(in, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = mr_error_sys(MR_EIO, "reading %s", from);
			goto done;
		}
		if ((t->bytes += (unsigned long long)n) > MR__SOURCE_MAX_BYTES) {
			rc = mr_error_set(MR_EINVALID,
					  "%s: the source tree is larger than the %llu MiB cap",
					  from, MR__SOURCE_MAX_BYTES >> 20);
			goto done;
		}
		mr_sha256_update(h, chunk, (size_t)n);
		if (out >= 0) {
			ssize_t w, off = 0;
			while (off < n) {
				if ((w = write(out, chunk + off, (size_t)(n - off))) < 0) {
					if (errno == EINTR)
						continue;
					rc = mr_error_sys(MR_EIO, "writing %s", to);
					goto done;
				}
				off += w;
			}
		}
	}
	mr_sha256_final(h, raw);
	mr_digest_format(digest, raw);
done:
	mr_sha256_free(h);
	if (in >= 0)
		close(in);
	if (out >= 0 && close(out) < 0 && !rc)
		rc = mr_error_sys(MR_EIO, "writing %s", to);
	return rc;
}

/* Walks the folder `from` (the tree path `rel`, NULL at the top), adding
 * every file to `t` and, when `to` is set, copying it there. */
static int walk_folder(mr__tree *t, const char *from, const char *to,
		       const char *rel, int depth)
{
	DIR *d = NULL;
	struct dirent *e;
	int rc = 0;

	if (depth > MR__SOURCE_MAX_DEPTH)
		return mr_error_set(MR_EINVALID, "%s: folders nested more than %d deep",
				    from, MR__SOURCE_MAX_DEPTH);
	if (!(d = opendir(from)))
		return mr_error_sys(errno == ENOENT ? MR_ENOTFOUND : MR_EIO, "opening folder %s", from);
	if (to && mkdir(to, 0755) < 0) {
		closedir(d);
		return mr_error_sys(MR_EIO, "creating %s", to);
	}
	while (!rc) {
		char *f = NULL, *dst = NULL, *r = NULL, dg[MR_DIGEST_STR_LEN + 1];
		struct stat st;

		errno = 0;
		if (!(e = readdir(d))) {
			if (errno)
				rc = mr_error_sys(MR_EIO, "reading folder %s", from);
			break;
		}
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!(f = mr_fs_join(from, e->d_name)) || (to && !(dst = mr_fs_join(to, e->d_name))) ||
		    !(r = rel ? mr_fs_join(rel, e->d_name) : strdup(e->d_name))) {
			rc = mr_error_set(MR_ERROR, "out of memory");
		} else if (lstat(f, &st) < 0) {
			rc = mr_error_sys(MR_EIO, "reading %s", f);
		} else if (S_ISDIR(st.st_mode)) {
			rc = walk_folder(t, f, dst, r, depth + 1);
		} else if (S_ISREG(st.st_mode)) {
			mode_t m = (st.st_mode & S_IXUSR) ? 0755 : 0644;
			if (!(rc = hash_copy(dg, t, f, dst, m)))
				rc = mr__tree_add(t, r, m == 0755 ? 0100755 : 0100644, dg);
		} else if (S_ISLNK(st.st_mode)) {
			char target[PATH_MAX];
			ssize_t n = readlink(f, target, sizeof(target) - 1);
			if (n < 0) {
				rc = mr_error_sys(MR_EIO, "reading link %s", f);
			} else {
				target[n] = '\0';
				mr_digest_buf(dg, target, (size_t)n);
				if (dst && symlink(target, dst) < 0)
					rc = mr_error_sys(MR_EIO, "creating link %s", dst);
				if (!rc)
					rc = mr__tree_add(t, r, 0120000, dg);
			}
		} else {
			rc = mr_error_set(MR_EINVALID,
					  "%s: only files, folders and links can be in a source "
					  "folder, not device files, FIFOs or sockets",
					  f);
		}
		free(f);
		free(dst);
		free(r);
	}
	closedir(d);
	return rc;
}

/* The tree digest of a folder, copying it to `copy_to` when that is set. */
static int folder_prepare(char digest[MR_DIGEST_STR_LEN + 1], const char *dir,
			  const char *copy_to)
{
	mr__tree t = { 0 };
	int rc = walk_folder(&t, dir, copy_to, NULL, 0);

	if (!rc)
		rc = mr__tree_digest(digest, &t);
	mr__tree_free(&t);
	return rc;
}

/* --- url sources ---------------------------------------------------------- */

/* One download in progress. */
typedef struct {
	FILE *f;            /* the .part file */
	const char *name;   /* the recipe, for the progress line */
	curl_off_t got;     /* bytes written */
	int too_big;        /* the cap was hit */
	FILE *log;          /* where progress goes (NULL: nowhere) */
	int tty;            /* `log` is a terminal: show a progress line */
	int shown;          /* a progress line is on screen */
	struct timespec at; /* when it was last drawn */
} download_state;

static size_t write_cb(char *p, size_t size, size_t n, void *ud)
{
	download_state *s = ud;
	size_t len = size * n;

	if (s->got + (curl_off_t)len > SOURCE_MAX) {
		s->too_big = 1;
		return 0;
	}
	if (fwrite(p, 1, len, s->f) != len)
		return 0;
	s->got += (curl_off_t)len;
	return len;
}

static void human(char *out, size_t n, curl_off_t v)
{
	if (v < 1024)
		snprintf(out, n, "%ld B", (long)v);
	else if (v < (curl_off_t)1 << 20)
		snprintf(out, n, "%.1f KiB", (double)v / 1024);
	else
		snprintf(out, n, "%.1f MiB", (double)v / (1 << 20));
}

/* Redraws the one progress line, at most ten times a second. */
static int progress_cb(void *ud, curl_off_t total, curl_off_t now, curl_off_t ut,
		       curl_off_t un)
{
	download_state *s = ud;
	char a[32], b[32];
	struct timespec ts;

	(void)ut;
	(void)un;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (!s->tty || !now ||
	    ((ts.tv_sec - s->at.tv_sec) * 1000 + (ts.tv_nsec - s->at.tv_nsec) / 1000000 < 100 &&
	     now != total))
		return 0;
	s->at = ts;
	human(a, sizeof(a), now);
	if (total > 0) {
		human(b, sizeof(b), total);
		fprintf(s->log, "\r\033[Kmrecipe: %s: %s / %s (%d%%)", s->name, a, b,
			(int)(now * 100 / total));
	} else {
		fprintf(s->log, "\r\033[Kmrecipe: %s: %s", s->name, a);
	}
	s->shown = 1;
	return 0;
}

/* Whether a failed transfer is worth trying again: the connection, a
 * timeout, or the server's fault (5xx); never the request's (4xx). */
static int retryable(CURLcode cc, long status)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	case CURLE_HTTP_RETURNED_ERROR:
		return status >= 500;
	default:
		return 0;
	}
}

/* Downloads `url` to `to`: up to DOWNLOAD_TRIES tries, 1 s then 2 s apart,
 * capped at SOURCE_MAX bytes, with a progress line on a terminal. */
static int download(FILE *log, const char *url, const char *to, const char *name)
{
	char err[CURL_ERROR_SIZE] = "", why[CURL_ERROR_SIZE + 64];
	download_state s = { 0 };
	CURL *c = curl_easy_init();
	CURLcode cc = CURLE_OK;
	long status = 0;
	int rc = 0, try;

	s.name = name;
	s.log = log;
	s.tty = log && isatty(fileno(log));
	if (!c || !(s.f = fopen(to, "wb"))) {
		rc = c ? mr_error_sys(MR_EIO, "creating %s", to)
		       : mr_error_set(MR_ERROR, "cannot start libcurl");
		goto done;
	}
	if (log)
		fprintf(log, "mrecipe: %s: downloading %s\n", name, url);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, progress_cb);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, &s);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, SOURCE_MAX);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	/* A stalled transfer (under 1 byte/s for a minute) is a timeout. */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	for (try = 1;; try++) {
		rewind(s.f);
		if (ftruncate(fileno(s.f), 0) < 0) {
			rc = mr_error_sys(MR_EIO, "truncating %s", to);
			goto done;
		}
		s.got = 0;
		err[0] = '\0';
		cc = curl_easy_perform(c);
		status = 0;
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
		if (s.shown) {
			fputc('\n', log);
			s.shown = 0;
		}
		if (cc == CURLE_OK)
			break;
		if (s.too_big || cc == CURLE_FILESIZE_EXCEEDED) {
			rc = mr_error_set(MR_EINVALID,
					  "%s: fetching %s: the file is larger than the %lld MiB "
					  "cap for a source archive",
					  name, url, (long long)(SOURCE_MAX >> 20));
			goto done;
		}
		if (cc == CURLE_HTTP_RETURNED_ERROR)
			snprintf(why, sizeof(why), "HTTP %ld", status);
		else
			snprintf(why, sizeof(why), "%s", *err ? err : curl_easy_strerror(cc));
		if (!retryable(cc, status) || try == DOWNLOAD_TRIES) {
			rc = mr_error_set(MR_EENV,
					  "%s: fetching %s: %s (%s); check source.url in "
					  "recipe.json and the network, or put the archive in "
					  "the source cache (MRECIPE_SOURCE_CACHE) to build offline",
					  name, url, why,
					  retryable(cc, status) ? "gave up after 3 tries"
								: "not retried: a retry would fail the same way");
			goto done;
		}
		if (log)
			fprintf(log, "mrecipe: %s: fetching %s: %s; retrying in %d s (try %d of %d)\n",
				name, url, why, 1 << (try - 1), try + 1, DOWNLOAD_TRIES);
		sleep(1u << (try - 1));
	}
done:
	if (s.f && fclose(s.f) && !rc)
		rc = mr_error_sys(MR_EIO, "writing %s", to);
	curl_easy_cleanup(c);
	return rc;
}

/* Finds (or downloads into) cache/sha256/<hex> and checks its digest. */
static int fetch_cached(char **path_out, const mr_build_opts *o,
			const mr_recipe *r, const char *url, const char *hex)
{
	char digest[MR_DIGEST_STR_LEN + 1], *dir = NULL, *path = NULL, *tmp = NULL;
	int rc, fd;

	*path_out = NULL;
	if (!(dir = mr_fs_join(o->source_cache, "sha256")) ||
	    !(path = mr_fs_join(dir, hex)))
		goto fail;
	if ((rc = mr_fs_mkdir_p(dir)))
		goto done;
	if (!mr_fs_exists(path)) {
		/* A name of its own, so parallel builds of one recipe don't
		 * write the same .part file. */
		if (asprintf(&tmp, "%s.part-XXXXXX", path) < 0) {
			tmp = NULL;
			goto fail;
		}
		if ((fd = mkstemp(tmp)) < 0) {
			rc = mr_error_sys(MR_EIO, "creating a file in %s", dir);
			goto done;
		}
		/* Sources are public: readable like any other cached file. */
		fchmod(fd, 0644);
		close(fd);
		if ((rc = download(o->log, url, tmp, r->name)) ||
		    (rc = mr_digest_file(digest, tmp, NULL))) {
			unlink(tmp);
			goto done;
		}
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
			unlink(tmp);
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

/* --- patches -------------------------------------------------------------- */

/* Resolves every patch file (relative to the recipe folder) before any work
 * is done, so a typo costs no download. Fills files[] (caller frees each). */
static int patches_find(char **files, size_t *n, const mr_recipe *r,
			const cJSON *patches)
{
	const cJSON *p;
	size_t i = 0;

	*n = 0;
	for (p = patches ? patches->child : NULL; p; p = p->next, i++) {
		const char *rel = cJSON_IsString(p) ? p->valuestring : "";
		char *joined, *full;
		struct stat st;

		if (i == 256)
			return mr_error_set(MR_EINVALID, "%s: source.patches: more than 256 patches",
					    r->name);
		if (!*rel || unsafe_name(rel)) {
			return mr_error_set(MR_EINVALID,
					    "%s: source.patches[%zu]: expected a file inside the "
					    "recipe folder, found '%s'",
					    r->name, i, rel);
		}
		if (!(joined = mr_fs_join(r->dir, rel)))
			return mr_error_set(MR_ERROR, "out of memory");
		full = realpath(joined, NULL);
		if (!full || stat(full, &st) < 0 || !S_ISREG(st.st_mode)) {
			mr_error_set(MR_EINVALID,
				     "%s: source.patches[%zu]: %s is not a file; patches are "
				     "paths relative to the recipe folder (%s)",
				     r->name, i, joined, r->dir);
			free(joined);
			free(full);
			return MR_EINVALID;
		}
		free(joined);
		files[(*n)++] = full;
	}
	return 0;
}

/* The digest of a patched source: sha256 over "source BASE\n" and one
 * "patch DIGEST PATH\n" line per patch, in the order they apply. */
static int digest_with_patches(char digest[MR_DIGEST_STR_LEN + 1],
			       const char *base, char **files,
			       const cJSON *patches, size_t n)
{
	mr_buf text = MR_BUF_INIT;
	const cJSON *p = patches ? patches->child : NULL;
	size_t i;
	int rc = mr_buf_printf(&text, "source %s\n", base);

	for (i = 0; !rc && i < n; i++, p = p->next) {
		char d[MR_DIGEST_STR_LEN + 1];
		if (!(rc = mr_digest_file(d, files[i], NULL)))
			rc = mr_buf_printf(&text, "patch %s %s\n", d, p->valuestring);
	}
	if (!rc)
		mr_digest_buf(digest, text.data, text.len);
	mr_buf_free(&text);
	return rc;
}

/* --- the three kinds -------------------------------------------------------- */

int mr_source_prepare(char **src_dir, char digest[MR_DIGEST_STR_LEN + 1],
		      const mr_build_opts *o, const mr_recipe *r,
		      const char *work_dir)
{
	const cJSON *root = mr_recipe_json(r);
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(root, "source");
	const cJSON *patches = cJSON_GetObjectItemCaseSensitive(src, "patches");
	const char *path = mr_json_str(src, "path"), *url = mr_json_str(src, "url");
	const char *git = mr_json_str(src, "git");
	const cJSON *strip = cJSON_GetObjectItemCaseSensitive(src, "strip_components");
	char *archive = NULL, *dest = NULL, *dir = NULL, *log = NULL, *files[256];
	char base[MR_DIGEST_STR_LEN + 1];
	size_t npatches = 0, i;
	int rc;

	*src_dir = NULL;
	if ((rc = patches_find(files, &npatches, r, patches)))
		goto done;
	if (!(dest = mr_fs_join(work_dir, "src")) || !(log = mr_fs_join(work_dir, "build.log"))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr_fs_rm_rf(dest)) || (rc = mr_fs_mkdir_p(work_dir)))
		goto done;
	if (path) {
		/* Used in place, unless patches need a copy to change. */
		if (!(dir = mr_fs_join(r->dir, path))) {
			rc = mr_error_set(MR_ERROR, "out of memory");
			goto done;
		}
		if ((rc = folder_prepare(base, dir, npatches ? dest : NULL))) {
			mr_error_wrap(rc, "%s: source.path", r->name);
			goto done;
		}
		if (!npatches) {
			memcpy(digest, base, sizeof(base));
			*src_dir = dir;
			dir = NULL;
			goto done;
		}
	} else if (url) {
		const char *hex = mr_json_str(src, "sha256");
		if ((rc = fetch_cached(&archive, o, r, url, hex)))
			goto done;
		snprintf(base, sizeof(base), "sha256:%s", hex);
		if ((rc = mr_archive_extract(archive, dest, strip ? (int)strip->valuedouble : 1))) {
			mr_error_wrap(rc, "%s: unpacking source", r->name);
			goto done;
		}
	} else if (git) {
		if ((rc = mr__git_prepare(base, o->log, o->source_cache, r->name, git,
					  mr_json_str(src, "commit"), dest)))
			goto done;
	} else {
		rc = mr_error_set(MR_EINVALID, "%s: source: expected one of 'path', 'url' or 'git'",
				  r->name);
		goto done;
	}
	for (i = 0; i < npatches; i++) {
		const cJSON *p = cJSON_GetArrayItem(patches, (int)i);
		if ((rc = mr__patch_apply(r->name, files[i], p->valuestring, dest, log)))
			goto done;
	}
	if (npatches) {
		if ((rc = digest_with_patches(digest, base, files, patches, npatches)))
			goto done;
	} else {
		memcpy(digest, base, sizeof(base));
	}
	*src_dir = dest;
	dest = NULL;
done:
	for (i = 0; i < npatches; i++)
		free(files[i]);
	free(archive);
	free(dest);
	free(dir);
	free(log);
	return rc;
}
