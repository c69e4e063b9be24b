/* File helpers: capped reads, atomic writes, directory creation. */
#ifndef MR_FS_H
#define MR_FS_H

#include "mr/buf.h"

#include <sys/types.h>

/* Reads a whole file into `out` (appending), refusing files over `max` bytes. */
int mr_fs_read(mr_buf *out, const char *path, size_t max);

/* Writes `data` to `path` atomically: temp file in the same folder, fsync,
 * rename, fsync of the folder. `mode` is applied to the new file. */
int mr_fs_write_atomic(const char *path, const void *data, size_t len,
		       mode_t mode);

/* Creates `path` and its missing parents (mode 0755). */
int mr_fs_mkdir_p(const char *path);

/* 1 if `path` exists, 0 if not. */
int mr_fs_exists(const char *path);

/* Joins two path parts into a new malloc'd string (caller frees). */
char *mr_fs_join(const char *a, const char *b);

/* Removes `path` recursively if it exists. */
int mr_fs_rm_rf(const char *path);

/* Copies a file, creating the destination atomically with `mode`. */
int mr_fs_copy(const char *from, const char *to, mode_t mode);

#endif
