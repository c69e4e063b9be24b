#include "common.h"

#include "mr/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_KEYS 16

static void progress(const char *what, uint64_t done, uint64_t total, void *payload)
{
	(void)payload;
	fprintf(stderr, "\r%s: %llu / %llu bytes (%3d%%)", what, (unsigned long long)done,
		(unsigned long long)total, total ? (int)(done * 100 / total) : 0);
	if (done == total)
		fputc('\n', stderr);
}

int open_runtime(molt_runtime **rt, const mr_cmd *cmd, const mr_args *args, int show)
{
	molt_options o = MOLT_OPTIONS_INIT;
	const char *keys = mr_args_get(cmd, args, "key");
	const char *paths[MAX_KEYS];
	char *copy, *save = NULL, *k;
	size_t n = 0;
	int rc;

	o.registry = mr_args_get(cmd, args, "registry");
	if (!o.registry)
		o.registry = getenv("MOLT_REGISTRY");
	if (!keys)
		keys = getenv("MOLT_TRUSTED_KEYS");
	if (!o.registry || !keys) {
		mr_cli_error(PROG, "need a registry (--registry or $MOLT_REGISTRY) and trusted "
				   "keys (--key or $MOLT_TRUSTED_KEYS)");
		return 2;
	}
	if (!(copy = strdup(keys)))
		return 3;
	for (k = strtok_r(copy, ":", &save); k && n < MAX_KEYS; k = strtok_r(NULL, ":", &save))
		paths[n++] = k;
	o.trusted_keys = paths;
	o.trusted_keys_count = n;
	o.cache_dir = mr_args_get(cmd, args, "cache");
	if (show && !mr_args_get(cmd, args, "quiet") && isatty(2))
		o.progress = progress;
	rc = molt_runtime_open(rt, &o);
	free(copy);
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
