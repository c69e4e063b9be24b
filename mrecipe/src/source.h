/* Semi-private helpers shared by the source preparers (source.c, git.c,
 * patch.c). Not installed; nothing outside mrecipe/src includes this. */
#ifndef MRECIPE_SOURCE_H
#define MRECIPE_SOURCE_H

#include "mr/digest.h"

#include <stddef.h>
#include <stdio.h>

/* Caps on a source tree: total bytes, entries, and folder depth. */
#define MR__SOURCE_MAX_BYTES ((unsigned long long)512 << 20)
#define MR__SOURCE_MAX_ENTRIES 100000
#define MR__SOURCE_MAX_DEPTH 64

/* One file of a source tree, as the tree digest sees it. */
typedef struct {
	char *path;                            /* relative, '/'-separated; owned */
	unsigned mode;                         /* 0100644, 0100755 or 0120000 (git's modes) */
	char digest[MR_DIGEST_STR_LEN + 1];    /* sha256 of the bytes, or of a link's target */
} mr__tree_entry;

/* The files of a source tree, in any order until mr__tree_digest sorts them. */
typedef struct {
	mr__tree_entry *v; /* owned */
	size_t n, cap;
	unsigned long long bytes; /* file bytes seen so far, against MR__SOURCE_MAX_BYTES */
} mr__tree;

/* Adds one file (copies `path`). MR_EINVALID past MR__SOURCE_MAX_ENTRIES. */
int mr__tree_add(mr__tree *t, const char *path, unsigned mode,
		 const char digest[MR_DIGEST_STR_LEN + 1]);

/* The tree digest: sha256 over the entries sorted by path (bytewise), each
 * written as "MODE sha256:HEX PATH" (MODE in octal, six digits) and a NUL
 * byte. Sorts `t` in place. The same files give the same digest whether they
 * came from a folder or from a git tree. MR_ERROR only when out of memory. */
int mr__tree_digest(char out[MR_DIGEST_STR_LEN + 1], mr__tree *t);

/* Frees the entries; the struct itself is the caller's. */
void mr__tree_free(mr__tree *t);

/* 1 if a symlink at `entry` (relative path) pointing to `target` would
 * resolve outside the tree. */
int mr__link_escapes(const char *entry, const char *target);

/* 1 if `name` is a single path component that is safe to create: not
 * empty, ".", "..", any case of ".git", and without '/'. */
int mr__name_unsafe(const char *name);

/* Fetches (when the commit is missing from the mirror in
 * `<cache>/git/<sha256 of url>.git`) and writes the tree of `commit` into
 * `dest` (created; must not exist), without a .git folder. `digest` gets the
 * tree digest. `name` is the recipe, for messages. An unknown commit, or an
 * id naming another kind of object, is MR_EVERIFY; a fetch that fails
 * (unreachable URL, network) is MR_EENV. */
int mr__git_prepare(char digest[MR_DIGEST_STR_LEN + 1], FILE *log, const char *cache,
		    const char *name, const char *url, const char *commit,
		    const char *dest);

/* Applies the patch file `file` (shown as `shown`, the path written in the
 * recipe) to the tree in `dir` with GNU patch, appending patch's output to
 * `log`. A patch that does not apply is MR_EVERIFY naming the patch, the
 * hunk and the line ("patch 02-fix.patch: hunk #2 FAILED at 14 in a.c");
 * GNU patch missing is MR_EENV. */
int mr__patch_apply(const char *name, const char *file, const char *shown,
		    const char *dir, const char *log);

#endif
