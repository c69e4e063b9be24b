#define _GNU_SOURCE
#include "mr/fs.h"

#include "mr/error.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mr_fs_read(mr_buf *out, const char *path, size_t max)
{
	unsigned char chunk[65536];
	size_t start = out->len;
	ssize_t n;
	int fd, rc = 0;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return mr_error_sys(errno == ENOENT ? MR_ENOTFOUND : MR_EIO,
				    "opening %s", path);
	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = mr_error_sys(MR_EIO, "reading %s", path);
			break;
		}
		if (out->len - start + (size_t)n > max) {
			rc = mr_error_set(MR_EINVALID,
					  "%s: file is larger than the %zu-byte limit",
					  path, max);
			break;
		}
		if ((rc = mr_buf_put(out, chunk, (size_t)n)))
			break;
	}
	close(fd);
	if (!rc && !out->data)
		rc = mr_buf_put(out, "", 0);
	return rc;
}

static int fsync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (!copy)
		return mr_error_set(MR_ERROR, "out of memory");
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) < 0 && errno != EINVAL)
			rc = mr_error_sys(MR_EIO, "syncing folder of %s", path);
		close(fd);
	}
	free(copy);
	return rc;
}

int mr_fs_write_atomic(const char *path, const void *data, size_t len,
		       mode_t mode)
{
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 32);
	const unsigned char *p = data;
	int fd = -1, rc = 0;

	if (!tmp)
		return mr_error_set(MR_ERROR, "out of memory");
	/* A unique name per writer, threads included: "<path>.tmp.XXXXXX". */
	snprintf(tmp, plen + 32, "%s.tmp.XXXXXX", path);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		rc = mr_error_sys(MR_EIO, "creating %s", tmp);
		goto done;
	}
	if (fchmod(fd, mode) < 0) {
		rc = mr_error_sys(MR_EIO, "setting mode of %s", tmp);
		goto done;
	}
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = mr_error_sys(MR_EIO, "writing %s", tmp);
			goto done;
		}
		p += n;
		len -= (size_t)n;
	}
	if (fsync(fd) < 0) {
		rc = mr_error_sys(MR_EIO, "syncing %s", tmp);
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		rc = mr_error_sys(MR_EIO, "closing %s", tmp);
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		rc = mr_error_sys(MR_EIO, "renaming %s to %s", tmp, path);
		goto done;
	}
	rc = fsync_dir(path);
done:
	if (fd >= 0)
		close(fd);
	if (rc)
		unlink(tmp);
	free(tmp);
	return rc;
}

int mr_fs_mkdir_p(const char *path)
{
	char *copy = strdup(path), *p;
	int rc = 0;

	if (!copy)
		return mr_error_set(MR_ERROR, "out of memory");
	for (p = copy + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(copy, 0755) < 0 && errno != EEXIST) {
			rc = mr_error_sys(MR_EIO, "creating folder %s", copy);
			break;
		}
		*p = c;
		if (!c)
			break;
	}
	free(copy);
	return rc;
}

int mr_fs_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

char *mr_fs_join(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	char *s = malloc(la + lb + 2);

	if (!s)
		return NULL;
	memcpy(s, a, la);
	if (la && a[la - 1] != '/')
		s[la++] = '/';
	memcpy(s + la, b, lb + 1);
	return s;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path) < 0 ? -1 : 0;
}

int mr_fs_rm_rf(const char *path)
{
	if (!mr_fs_exists(path))
		return 0;
	if (nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS) < 0)
		return mr_error_sys(MR_EIO, "removing %s", path);
	return 0;
}

int mr_fs_copy(const char *from, const char *to, mode_t mode)
{
	mr_buf b = MR_BUF_INIT;
	int rc;

	b.max = (size_t)4 << 30;
	if (!(rc = mr_fs_read(&b, from, b.max)))
		rc = mr_fs_write_atomic(to, b.data, b.len, mode);
	mr_buf_free(&b);
	return rc;
}
