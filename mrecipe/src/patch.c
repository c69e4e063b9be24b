/* source.patches, applied with GNU patch.
 *
 * Why GNU patch and not libgit2's git_apply: patches come from upstream
 * commits, mailing lists and distributions (Debian's debian/patches) as
 * plain unified diffs, often without git headers, against archives that are
 * not git repositories; git_apply needs a repository and an index or tree to
 * apply to, and reports a failing hunk without its number. GNU patch takes
 * any unified diff, applies it to a plain folder and says "Hunk #2 FAILED
 * at 14", which is what an author needs to fix it. It runs as an argv list,
 * never through a shell, with a fixed environment (LC_ALL=C, so its messages
 * can be read), fuzz 0 (a hunk whose context moved is a failure, never a
 * guess), --unified (so ed scripts, which can run commands, are refused)
 * and no backup or reject files left in the tree. */
#define _GNU_SOURCE
#include "source.h"

#include "mr/buf.h"
#include "mr/error.h"
#include "mr/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define PATCH_OUTPUT_MAX 65536

/* Finds an executable on PATH (caller frees), or NULL. */
static char *find_tool(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL, *full = NULL;

	if (!(copy = strdup(path && *path ? path : "/usr/bin:/bin")))
		return NULL;
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		if ((full = mr_fs_join(dir, name)) && !access(full, X_OK))
			break;
		free(full);
		full = NULL;
	}
	free(copy);
	return full;
}

/* Runs patch, collecting what it says (capped) into `out`. Sets *status to
 * its exit status, or -1 when it died of a signal. */
static int run_patch(mr_buf *out, int *status, const char *tool,
		     const char *file, const char *dir)
{
	char *argv[] = { (char *)tool, "-p1", "--batch", "--forward",
			 "--no-backup-if-mismatch", "--fuzz=0", "--unified",
			 "--reject-file=-", "-d", (char *)dir, "-i", (char *)file,
			 NULL };
	char *envp[4] = { "LC_ALL=C", NULL, NULL, NULL };
	char *path_env = NULL, *tmp_env = NULL;
	posix_spawn_file_actions_t fa;
	int pipefd[2] = { -1, -1 }, rc = 0, st, n = 1;
	pid_t pid;

	if (asprintf(&path_env, "PATH=%s", getenv("PATH") ? getenv("PATH") : "/usr/bin:/bin") < 0)
		return mr_error_set(MR_ERROR, "out of memory");
	envp[n++] = path_env;
	if (getenv("TMPDIR") && asprintf(&tmp_env, "TMPDIR=%s", getenv("TMPDIR")) >= 0)
		envp[n++] = tmp_env;
	posix_spawn_file_actions_init(&fa);
	if (pipe2(pipefd, O_CLOEXEC) < 0) {
		rc = mr_error_sys(MR_EENV, "pipe");
		goto done;
	}
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	if ((errno = posix_spawn(&pid, tool, &fa, NULL, argv, envp))) {
		rc = mr_error_sys(MR_EENV, "running %s", tool);
		goto done;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	for (;;) {
		char chunk[4096];
		ssize_t got = read(pipefd[0], chunk, sizeof(chunk));
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		if (out->len + (size_t)got <= PATCH_OUTPUT_MAX)
			mr_buf_put(out, chunk, (size_t)got);
	}
	mr_buf_put(out, "", 0);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR) {
			rc = mr_error_sys(MR_EENV, "waiting for %s", tool);
			goto done;
		}
	*status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
done:
	posix_spawn_file_actions_destroy(&fa);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	free(path_env);
	free(tmp_env);
	return rc;
}

/* Reads patch's output for the first thing that went wrong, written to
 * `why` as "hunk #2 FAILED at 14 in a.c" or patch's own words. */
static void first_failure(char *why, size_t n, const char *text)
{
	char file[512] = "", last[512] = "";
	const char *line, *next;

	for (line = text; *line; line = next) {
		size_t len = strcspn(line, "\n");
		int hunk, at;
		next = line + len + (line[len] == '\n');
		if (!len)
			continue;
		if (len > 400)
			len = 400;
		/* "/usr/bin/patch: **** Only garbage ..." */
		if (memmem(line, len, ": **** ", 7)) {
			const char *m = (const char *)memmem(line, len, ": **** ", 7) + 7;
			len -= (size_t)(m - line);
			line = m;
		}
		while (len && line[len - 1] == '.')
			len--;
		if (!strncmp(line, "patching file ", 14)) {
			snprintf(file, sizeof(file), "%.*s", (int)len - 14, line + 14);
		} else if (sscanf(line, "Hunk #%d FAILED at %d", &hunk, &at) == 2) {
			snprintf(why, n, "hunk #%d FAILED at %d in %s", hunk, at, *file ? file : "?");
			return;
		} else if (!strncmp(line, "can't find file to patch", 24) ||
			   !strncmp(line, "Reversed (or previously applied) patch detected", 47) ||
			   !strncmp(line, "Only garbage was found", 22) ||
			   strstr(line, "malformed patch") || strstr(line, "Invalid file name") ||
			   strstr(line, "refusing to patch")) {
			snprintf(why, n, "%.*s%s%s", (int)len, line, *file ? " in " : "", file);
			return;
		}
		snprintf(last, sizeof(last), "%.*s", (int)len, line);
	}
	snprintf(why, n, "%s", *last ? last : "patch failed without saying why");
}

int mr__patch_apply(const char *name, const char *file, const char *shown,
		    const char *dir, const char *log)
{
	char *tool = find_tool("patch"), why[600];
	mr_buf out = MR_BUF_INIT;
	int rc, status = -1;

	if (!tool)
		return mr_error_set(MR_EENV,
				    "%s: GNU patch not found (needed for source.patches); "
				    "apt-get install patch (scripts/setup does)",
				    name);
	if ((rc = run_patch(&out, &status, tool, file, dir)))
		goto done;
	if (log) {
		int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dprintf(fd, "== patch %s\n%s", shown, (char *)out.data);
			close(fd);
		}
	}
	if (status == 0)
		goto done;
	first_failure(why, sizeof(why), (char *)out.data);
	rc = mr_error_set(MR_EVERIFY,
			  "%s: patch %s: %s; the patch does not apply to this source: "
			  "regenerate it against the unpacked source, or drop it "
			  "(patch's output is in %s)",
			  name, shown, why, log ? log : "(no log)");
done:
	mr_buf_free(&out);
	free(tool);
	return rc;
}
