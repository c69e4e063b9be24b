#include "common.h"

#include "mr/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define MAX_KEYS 16
#define MAX_MIRRORS 8

/* One download's progress line. On a terminal it is rewritten in place
 * (about ten times a second) and cleared at the end; with --progress and no
 * terminal it is a plain line about once a second and one at the end. */
static struct {
	char what[128];  /* the download shown */
	uint64_t first;  /* bytes it had at its first call (resumed ones) */
	uint64_t last;   /* bytes at the last call */
	double start;    /* when it began, seconds */
	double shown;    /* when the line was last written */
	int plain;       /* 1: whole lines, not a terminal line */
} bar;

static double seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "812.0 KiB", "12.3 MiB", ... */
static void human(char *out, size_t n, double v)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;

	while (v >= 1024 && u + 1 < sizeof(unit) / sizeof(*unit)) {
		v /= 1024;
		u++;
	}
	snprintf(out, n, u ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

static int columns(void)
{
	struct winsize w;

	if (ioctl(2, TIOCGWINSZ, &w) == 0 && w.ws_col >= 20)
		return w.ws_col;
	return 80;
}

static void progress(const char *what, uint64_t done, uint64_t total, void *payload)
{
	char d[32], t[32], r[32], eta[32] = "", line[256];
	double now = seconds(), rate, left;
	int n;

	(void)payload;
	if (strncmp(bar.what, what, sizeof(bar.what) - 1) || done < bar.last) {
		snprintf(bar.what, sizeof(bar.what), "%s", what);
		bar.first = done;
		bar.start = now;
		bar.shown = now; /* a download done within the first interval shows no line */
	}
	bar.last = done;
	if (total && done >= total) {
		if (!bar.plain) {
			fputs("\r\033[K", stderr);
		} else {
			human(t, sizeof(t), (double)total);
			human(r, sizeof(r), now > bar.start ? (double)(done - bar.first) / (now - bar.start) : 0);
			fprintf(stderr, "%s: %s in %.1f s (%s/s)\n", what, t, now - bar.start, r);
		}
		bar.what[0] = '\0';
		return;
	}
	if (now - bar.shown < (bar.plain ? 1.0 : 0.1))
		return;
	bar.shown = now;
	rate = now > bar.start ? (double)(done - bar.first) / (now - bar.start) : 0;
	human(d, sizeof(d), (double)done);
	human(t, sizeof(t), (double)total);
	human(r, sizeof(r), rate);
	if (total && rate > 0) {
		left = (double)(total - done) / rate;
		snprintf(eta, sizeof(eta), ", ETA %d:%02d", (int)(left / 60), (int)left % 60);
	}
	if (total)
		n = snprintf(line, sizeof(line), "%s: %s / %s (%d%%), %s/s%s", what, d, t,
			     (int)(done * 100 / total), r, eta);
	else
		n = snprintf(line, sizeof(line), "%s: %s, %s/s", what, d, r);
	if (bar.plain) {
		fprintf(stderr, "%s\n", line);
		return;
	}
	/* One terminal row, cursor left at its start: whatever is printed next
	 * (the result, an error) overwrites it instead of trailing it. */
	if (n >= columns())
		line[columns() - 1] = '\0';
	fprintf(stderr, "\033[K%s\r", line);
}

/* A dependency is reported, never fetched: unless it was named on the same
 * command line, the user has to ask for it. */
static void depends(const char *unit, const char *dep, void *payload)
{
	const mr_args *args = payload;
	int i;

	for (i = 0; i < args->nrest; i++)
		if (!strcmp(args->rest[i], dep))
			return;
	fprintf(stderr, "%s: %s depends on %s, which was not asked for: not fetched (molt "
			"fetches nothing implicitly; name it to fetch it)\n", PROG, unit, dep);
}

int open_runtime(molt_runtime **rt, const mr_cmd *cmd, const mr_args *args, int show)
{
	molt_options o = MOLT_OPTIONS_INIT;
	const char *keys = mr_args_get(cmd, args, "key"), *mirrors = mr_args_get(cmd, args, "mirror");
	const char *paths[MAX_KEYS], *urls[MAX_MIRRORS];
	char *copy = NULL, *mcopy = NULL, *save = NULL, *k;
	size_t n = 0;
	int rc;

	o.registry = mr_args_get(cmd, args, "registry");
	if (!o.registry)
		o.registry = getenv("MOLT_REGISTRY");
	o.policy = mr_args_get(cmd, args, "policy");
	if (!o.policy && !keys)
		o.policy = getenv("MOLT_POLICY");
	if (!keys && !o.policy)
		keys = getenv("MOLT_TRUSTED_KEYS");
	if (!o.registry || (!keys && !o.policy)) {
		mr_cli_error(PROG, "need a registry (--registry or $MOLT_REGISTRY) and trusted "
				   "keys (--key or $MOLT_TRUSTED_KEYS) or a trust policy (--policy "
				   "or $MOLT_POLICY)");
		return 2;
	}
	if ((keys && !(copy = strdup(keys))) || (mirrors && !(mcopy = strdup(mirrors)))) {
		free(copy);
		return 3;
	}
	for (k = copy ? strtok_r(copy, ":", &save) : NULL; k && n < MAX_KEYS;
	     k = strtok_r(NULL, ":", &save))
		paths[n++] = k;
	o.trusted_keys = paths;
	o.trusted_keys_count = o.policy ? 0 : n;
	n = 0;
	for (k = mcopy ? strtok_r(mcopy, ",", &save) : NULL; k && n < MAX_MIRRORS;
	     k = strtok_r(NULL, ",", &save))
		urls[n++] = k;
	o.mirrors = urls;
	o.mirrors_count = n;
	o.allow_yanked = mr_args_get(cmd, args, "allow-yanked") != NULL;
	o.depends = depends;
	o.progress_payload = (void *)args;
	o.cache_dir = mr_args_get(cmd, args, "cache");
	bar.plain = !isatty(2);
	if (show && !mr_args_get(cmd, args, "quiet") &&
	    (!bar.plain || mr_args_get(cmd, args, "progress")))
		o.progress = progress;
	rc = molt_runtime_open(rt, &o);
	free(copy);
	free(mcopy);
	return rc ? mr_cli_fail(PROG, rc) : 0;
}

int split_ref(const char *ref, char *name, size_t nlen, char *version, size_t vlen)
{
	const char *at = strchr(ref, '@');

	if (!at || at == ref || !at[1] || (size_t)(at - ref) >= nlen || strlen(at + 1) >= vlen) {
		mr_cli_error(PROG, "'%s': expected NAME@VERSION, e.g. hello@0.1.0 (exact "
				   "versions only: molt loads nothing implicitly)", ref);
		return 2;
	}
	memcpy(name, ref, (size_t)(at - ref));
	name[at - ref] = '\0';
	memcpy(version, at + 1, strlen(at + 1) + 1);
	return 0;
}

/* For --bundle: the trusted keys from --key or $MOLT_TRUSTED_KEYS, split at
 * ':' into `paths` (pointing into *copy, which the caller frees). Prints the
 * error and returns 2 when there are none. */
int bundle_keys(const mr_cmd *cmd, const mr_args *args, const char **paths, size_t *n,
		       char **copy)
{
	const char *keys = mr_args_get(cmd, args, "key");
	char *save = NULL, *k;

	*n = 0;
	if (!keys)
		keys = getenv("MOLT_TRUSTED_KEYS");
	if (!keys || !*keys) {
		mr_cli_error(PROG, "--bundle needs trusted keys (--key FILE or $MOLT_TRUSTED_KEYS)");
		return 2;
	}
	if (!(*copy = strdup(keys)))
		return 3;
	for (k = strtok_r(*copy, ":", &save); k && *n < MOLT_CLI_MAX_KEYS; k = strtok_r(NULL, ":", &save))
		paths[(*n)++] = k;
	return 0;
}

/* Fetches one lockfile entry; the registry must agree with every digest. */
static int fetch_entry(molt_runtime *rt, const molt_lockfile *lf, const char *file,
		       const molt_lock_entry *e)
{
	char digest[72];
	int rc, yanked = 0;

	if ((rc = molt_fetch_locked(rt, lf, e->name, e->target, digest, &yanked)))
		return mr_cli_fail(PROG, rc);
	if (yanked)
		fprintf(stderr, "%s: warning: %s@%s (%s) is yanked in the registry; fetched because "
				"%s pins it (pick another version and molt lock again when you can)\n",
			PROG, e->name, e->version, e->target, file);
	printf("%s@%s %s verified, manifest %s (locked)\n", e->name, e->version, e->target, digest);
	return 0;
}

/* molt fetch|verify --locked [FILE] [NAME@VERSION...] */
int fetch_locked(const mr_cmd *cmd, mr_args *args)
{
	const char *target = mr_args_get(cmd, args, "target"), *file = "molt.lock";
	char name[128], version[64];
	molt_lockfile *lf = NULL;
	molt_runtime *rt = NULL;
	molt_lock_entry e;
	size_t i;
	int a, rc, first = 0, asked, found;

	/* The optional FILE comes first; units are NAME@VERSION. */
	if (args->nrest && !strchr(args->rest[0], '@'))
		file = args->rest[first++];
	asked = args->nrest - first;
	if ((rc = molt_lockfile_open(&lf, file)))
		return mr_cli_fail(PROG, rc);
	if ((rc = open_runtime(&rt, cmd, args, 1)))
		goto done;
	for (a = first; a < args->nrest && !rc; a++) {
		if ((rc = split_ref(args->rest[a], name, sizeof(name), version, sizeof(version))))
			break;
		for (i = 0, found = 0; i < molt_lockfile_count(lf) && !rc; i++) {
			molt_lockfile_get(&e, lf, i);
			if (strcmp(e.name, name) || (target && strcmp(e.target, target)))
				continue;
			if (strcmp(e.version, version)) {
				mr_cli_error(PROG, "%s pins %s@%s, not %s; fetch the locked version, "
						   "or molt lock %s again", file, e.name, e.version,
					     args->rest[a], args->rest[a]);
				rc = 2;
				break;
			}
			found = 1;
			rc = fetch_entry(rt, lf, file, &e);
		}
		if (!rc && !found) {
			mr_cli_error(PROG, "%s has no entry for %s%s%s; pin it first (molt lock %s%s%s)",
				     file, args->rest[a], target ? " for " : "", target ? target : "",
				     args->rest[a], target ? " --target " : "", target ? target : "");
			rc = 2;
		}
	}
	for (i = 0, found = 0; !asked && !rc && i < molt_lockfile_count(lf); i++) {
		molt_lockfile_get(&e, lf, i);
		if (!target || !strcmp(e.target, target)) {
			found = 1;
			rc = fetch_entry(rt, lf, file, &e);
		}
	}
	if (!asked && !rc && !found) {
		mr_cli_error(PROG, "%s pins nothing%s%s", file, target ? " for " : "",
			     target ? target : "");
		rc = 2;
	}
done:
	molt_lockfile_free(lf);
	molt_runtime_free(rt);
	return rc;
}
