/* git sources: a bare mirror per URL in the source cache, fetched only when
 * the pinned commit is missing, and the commit's tree written out as plain
 * files (no .git, no checkout filters). */
#define _GNU_SOURCE
#include "source.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* What a fetch and a tree walk need to say where they are. */
typedef struct {
	const char *name;   /* the recipe */
	const char *url;    /* the repository */
	const char *commit; /* the pinned commit, 40 hex */
	FILE *log;          /* where progress goes (NULL: nowhere) */
	int tty;            /* `log` is a terminal: draw a progress line */
	int shown;          /* one is on screen */
	struct timespec at; /* when it was last drawn */
} git_ctx;

/* The libgit2 message of the last failure, never NULL. */
static const char *git_msg(void)
{
	const git_error *e = git_error_last();

	return e && e->message ? e->message : "unknown libgit2 error";
}

static int fetch_progress(const git_indexer_progress *p, void *payload)
{
	git_ctx *c = payload;
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	if (!c->tty || ((ts.tv_sec - c->at.tv_sec) * 1000 +
				(ts.tv_nsec - c->at.tv_nsec) / 1000000 < 100 &&
			p->received_objects != p->total_objects))
		return 0;
	c->at = ts;
	fprintf(c->log, "\r\033[Kmrecipe: %s: %u / %u objects, %.1f MiB", c->name,
		p->received_objects, p->total_objects,
		(double)p->received_bytes / (1 << 20));
	c->shown = 1;
	return 0;
}

/* Fetches every branch and tag of the URL into the mirror. Never prunes, so
 * a commit once fetched stays even if upstream rewrites its history. */
static int fetch(git_ctx *c, git_repository *repo)
{
	char *specs[] = { "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*" };
	git_strarray refspecs = { specs, 2 };
	git_remote_create_options ro;
	git_fetch_options fo;
	git_remote *remote = NULL;
	int rc = 0;

	/* An anonymous remote for exactly the recipe's URL: the user's
	 * url.<base>.insteadOf rewrites don't apply (and libgit2 1.5 leaks
	 * the regex match data of that lookup). */
	git_remote_create_options_init(&ro, GIT_REMOTE_CREATE_OPTIONS_VERSION);
	ro.repository = repo;
	ro.flags = GIT_REMOTE_CREATE_SKIP_INSTEADOF | GIT_REMOTE_CREATE_SKIP_DEFAULT_FETCHSPEC;
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	if (c->log)
		fprintf(c->log, "mrecipe: %s: fetching %s\n", c->name, c->url);
	fo.prune = GIT_FETCH_NO_PRUNE;
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.proxy_opts.type = GIT_PROXY_AUTO;
	fo.callbacks.transfer_progress = fetch_progress;
	fo.callbacks.payload = c;
	if (git_remote_create_with_opts(&remote, c->url, &ro) < 0 ||
	    git_remote_fetch(remote, &refspecs, &fo, NULL) < 0)
		rc = mr_error_set(MR_EENV,
				  "%s: fetching %s: %s; check source.git in recipe.json and "
				  "the network (a warm source cache, MRECIPE_SOURCE_CACHE, "
				  "needs neither)",
				  c->name, c->url, git_msg());
	if (c->shown) {
		fputc('\n', c->log);
		c->shown = 0;
	}
	git_remote_free(remote);
	return rc;
}

/* Opens the mirror, creating it when missing or unreadable (a crash while
 * it was being created leaves something git can't open). */
static int mirror_open(git_repository **repo, const char *path)
{
	if (!git_repository_open_bare(repo, path))
		return 0;
	if (mr_fs_rm_rf(path))
		return MR_EIO;
	if (git_repository_init(repo, path, 1) < 0)
		return mr_error_set(MR_EIO, "creating the git mirror %s: %s", path, git_msg());
	return 0;
}

static const char *kind_name(git_object_t t)
{
	switch (t) {
	case GIT_OBJECT_TREE:
		return "a tree";
	case GIT_OBJECT_BLOB:
		return "a blob (a file's contents)";
	case GIT_OBJECT_TAG:
		return "an annotated tag; use the commit it points to (git rev-parse TAG^{commit})";
	default:
		return "not a commit";
	}
}

/* Writes one file of the tree, from its blob. */
static int write_blob(git_ctx *c, git_repository *repo, mr__tree *t,
		      const git_tree_entry *e, const char *full, const char *path)
{
	git_filemode_t mode = git_tree_entry_filemode(e);
	char digest[MR_DIGEST_STR_LEN + 1];
	git_blob *blob = NULL;
	const char *data;
	size_t len;
	int rc = 0, fd = -1;

	if (git_blob_lookup(&blob, repo, git_tree_entry_id(e)) < 0) {
		rc = mr_error_set(MR_EVERIFY,
				  "%s: %s at %s: reading '%s': %s; the mirror is incomplete: "
				  "delete it from the source cache to fetch it again",
				  c->name, c->url, c->commit, path, git_msg());
		goto done;
	}
	data = git_blob_rawcontent(blob);
	if (git_blob_rawsize(blob) > MR__SOURCE_MAX_BYTES ||
	    (t->bytes += git_blob_rawsize(blob)) > MR__SOURCE_MAX_BYTES) {
		rc = mr_error_set(MR_EINVALID,
				  "%s: %s at %s: the tree is larger than the %llu MiB cap (at '%s')",
				  c->name, c->url, c->commit, MR__SOURCE_MAX_BYTES >> 20, path);
		goto done;
	}
	len = (size_t)git_blob_rawsize(blob);
	mr_digest_buf(digest, data, len);
	if (mode == GIT_FILEMODE_LINK) {
		char target[4096];
		if (len == 0 || len >= sizeof(target) || memchr(data, '\0', len)) {
			rc = mr_error_set(MR_EVERIFY, "%s: %s at %s: link '%s' has an invalid target",
					  c->name, c->url, c->commit, path);
			goto done;
		}
		memcpy(target, data, len);
		target[len] = '\0';
		if (mr__link_escapes(path, target)) {
			rc = mr_error_set(MR_EVERIFY,
					  "%s: %s at %s: refusing link '%s' -> '%s': it points "
					  "outside the source tree",
					  c->name, c->url, c->commit, path, target);
			goto done;
		}
		if (symlink(target, full) < 0)
			rc = mr_error_sys(MR_EIO, "creating link %s", full);
		if (!rc)
			rc = mr__tree_add(t, path, 0120000, digest);
		goto done;
	}
	fd = open(full, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0755 : 0644);
	if (fd < 0) {
		rc = mr_error_sys(MR_EIO, "creating %s", full);
		goto done;
	}
	while (len) {
		ssize_t w = write(fd, data, len);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			rc = mr_error_sys(MR_EIO, "writing %s", full);
			goto done;
		}
		data += w;
		len -= (size_t)w;
	}
	rc = mr__tree_add(t, path,
			  mode == GIT_FILEMODE_BLOB_EXECUTABLE ? 0100755 : 0100644, digest);
done:
	if (fd >= 0 && close(fd) < 0 && !rc)
		rc = mr_error_sys(MR_EIO, "writing %s", full);
	git_blob_free(blob);
	return rc;
}

/* Writes `tree` into the new folder `dir` (tree path `rel`, NULL at the top). */
static int write_tree(git_ctx *c, git_repository *repo, mr__tree *t,
		      const git_tree *tree, const char *dir, const char *rel,
		      int depth)
{
	size_t i, n = git_tree_entrycount(tree);
	int rc = 0;

	if (depth > MR__SOURCE_MAX_DEPTH)
		return mr_error_set(MR_EINVALID, "%s: %s at %s: folders nested more than %d deep",
				    c->name, c->url, c->commit, MR__SOURCE_MAX_DEPTH);
	if (mkdir(dir, 0755) < 0)
		return mr_error_sys(MR_EIO, "creating %s", dir);
	for (i = 0; !rc && i < n; i++) {
		const git_tree_entry *e = git_tree_entry_byindex(tree, i);
		const char *name = git_tree_entry_name(e);
		char *full = mr_fs_join(dir, name);
		char *path = rel ? mr_fs_join(rel, name) : strdup(name);
		git_tree *sub = NULL;

		if (!full || !path) {
			rc = mr_error_set(MR_ERROR, "out of memory");
		} else if (mr__name_unsafe(name)) {
			rc = mr_error_set(MR_EVERIFY,
					  "%s: %s at %s: refusing tree entry '%s': '.', '..', "
					  "'.git' and names with '/' could write outside the source",
					  c->name, c->url, c->commit, path);
		} else {
			switch (git_tree_entry_filemode(e)) {
			case GIT_FILEMODE_TREE:
				if (git_tree_lookup(&sub, repo, git_tree_entry_id(e)) < 0)
					rc = mr_error_set(MR_EVERIFY,
							  "%s: %s at %s: reading folder '%s': %s; "
							  "delete the mirror from the source cache to "
							  "fetch it again",
							  c->name, c->url, c->commit, path, git_msg());
				else
					rc = write_tree(c, repo, t, sub, full, path, depth + 1);
				break;
			case GIT_FILEMODE_BLOB:
			case GIT_FILEMODE_BLOB_EXECUTABLE:
			case GIT_FILEMODE_LINK:
				rc = write_blob(c, repo, t, e, full, path);
				break;
			case GIT_FILEMODE_COMMIT: {
				/* A submodule: an empty folder, as `git clone` leaves
				 * it; its commit is still part of the digest. */
				char d[MR_DIGEST_STR_LEN + 1], hex[GIT_OID_HEXSZ + 1];
				git_oid_tostr(hex, sizeof(hex), git_tree_entry_id(e));
				mr_digest_buf(d, hex, strlen(hex));
				if (mkdir(full, 0755) < 0)
					rc = mr_error_sys(MR_EIO, "creating %s", full);
				else
					rc = mr__tree_add(t, path, 0160000, d);
				break;
			}
			default:
				rc = mr_error_set(MR_EVERIFY, "%s: %s at %s: '%s' has an unknown mode %o",
						  c->name, c->url, c->commit, path,
						  (unsigned)git_tree_entry_filemode(e));
			}
		}
		git_tree_free(sub);
		free(full);
		free(path);
	}
	return rc;
}

int mr__git_prepare(char digest[MR_DIGEST_STR_LEN + 1], FILE *log, const char *cache,
		    const char *name, const char *url, const char *commit,
		    const char *dest)
{
	git_ctx c = { name, url, commit, log, log && isatty(fileno(log)), 0, { 0, 0 } };
	char key[MR_DIGEST_STR_LEN + 1], *dir = NULL, *mirror = NULL, *lock = NULL;
	git_repository *repo = NULL;
	git_object *obj = NULL;
	git_tree *tree = NULL;
	mr__tree t = { 0 };
	git_oid oid;
	int rc = 0, fd = -1, e;

	git_libgit2_init();
	if (!commit || strlen(commit) != GIT_OID_HEXSZ || git_oid_fromstr(&oid, commit) < 0) {
		rc = mr_error_set(MR_EINVALID, "%s: source.commit: expected 40 hex digits, found '%s'",
				  name, commit ? commit : "");
		goto done;
	}
	mr_digest_buf(key, url, strlen(url));
	if (!(dir = mr_fs_join(cache, "git")) ||
	    asprintf(&mirror, "%s/%s.git", dir, key + 7) < 0 ||
	    asprintf(&lock, "%s/%s.lock", dir, key + 7) < 0) {
		mirror = lock = NULL;
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr_fs_mkdir_p(dir)))
		goto done;
	/* Parallel builds of one recipe share the mirror: one fetches, the
	 * others wait and then find the commit. */
	if ((fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0 || flock(fd, LOCK_EX) < 0) {
		rc = mr_error_sys(MR_EIO, "locking %s", lock);
		goto done;
	}
	if ((rc = mirror_open(&repo, mirror)))
		goto done;
	if ((e = git_object_lookup(&obj, repo, &oid, GIT_OBJECT_ANY)) == GIT_ENOTFOUND) {
		if ((rc = fetch(&c, repo)))
			goto done;
		e = git_object_lookup(&obj, repo, &oid, GIT_OBJECT_ANY);
		if (e == GIT_ENOTFOUND) {
			rc = mr_error_set(MR_EVERIFY,
					  "%s: commit %s is not in %s: none of its branches or "
					  "tags contains it; check source.commit in recipe.json "
					  "(a full 40-hex id of a pushed commit)",
					  name, commit, url);
			goto done;
		}
	}
	if (e < 0) {
		rc = mr_error_set(MR_EIO,
				  "%s: reading commit %s from the mirror %s: %s; delete the "
				  "mirror to fetch it again",
				  name, commit, mirror, git_msg());
		goto done;
	}
	close(fd);
	fd = -1;
	/* libgit2 checks every object it reads against its id (strict hash
	 * verification is on by default), so what we write is what was pinned. */
	if (git_object_type(obj) != GIT_OBJECT_COMMIT) {
		rc = mr_error_set(MR_EVERIFY, "%s: %s in %s is %s, not a commit; "
				  "source.commit must name a commit",
				  name, commit, url, kind_name(git_object_type(obj)));
		goto done;
	}
	if (git_commit_tree(&tree, (git_commit *)obj) < 0) {
		rc = mr_error_set(MR_EVERIFY,
				  "%s: %s at %s: reading the commit's tree: %s; delete the "
				  "mirror %s to fetch it again",
				  name, url, commit, git_msg(), mirror);
		goto done;
	}
	if ((rc = write_tree(&c, repo, &t, tree, dest, NULL, 0))) {
		if (rc != MR_EIO && rc != MR_ERROR)
			goto done;
		mr_error_wrap(rc, "%s: writing %s at %s", name, url, commit);
		goto done;
	}
	rc = mr__tree_digest(digest, &t);
done:
	if (fd >= 0)
		close(fd);
	mr__tree_free(&t);
	git_tree_free(tree);
	git_object_free(obj);
	git_repository_free(repo);
	git_libgit2_shutdown();
	free(dir);
	free(mirror);
	free(lock);
	return rc;
}
