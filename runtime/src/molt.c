#define _GNU_SOURCE
#include "internal.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/manifest.h"

#include <curl/curl.h>
#include <limits.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int init_failed;

static void global_init(void)
{
	init_failed = curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || sodium_init() < 0;
}

const char *molt_error_last(void)
{
	return mr_error_last();
}

const char *molt_host_triple(void)
{
	return mr_host_triple();
}

static char *registry_base(const char *reg)
{
	char buf[PATH_MAX], *s;

	if (strstr(reg, "://")) {
		size_t n = strlen(reg);
		if (!(s = malloc(n + 2)))
			return NULL;
		memcpy(s, reg, n + 1);
		if (n && reg[n - 1] != '/')
			memcpy(s + n, "/", 2);
		return s;
	}
	if (!realpath(reg, buf))
		return NULL;
	if (asprintf(&s, "file://%s/", buf) < 0)
		return NULL;
	return s;
}

static char *default_cache(void)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	char *s;

	if (xdg && *xdg)
		return mr_fs_join(xdg, "molt");
	if (asprintf(&s, "%s/.cache/molt", home && *home ? home : "/tmp") < 0)
		return NULL;
	return s;
}

int molt_runtime_open(molt_runtime **out, const molt_options *o)
{
	molt_runtime *rt;
	char *blobs;
	size_t i;
	int rc = 0;

	*out = NULL;
	pthread_once(&once, global_init);
	if (init_failed)
		return mr_error_set(MR_EENV, "cannot initialise libcurl or libsodium");
	if (!o || o->version != MOLT_OPTIONS_VERSION)
		return mr_error_set(MR_EINVALID, "molt_options: start from MOLT_OPTIONS_INIT");
	if (!o->registry)
		return mr_error_set(MR_EINVALID, "molt_options: no registry given");
	if (!o->trusted_keys_count && !o->policy)
		return mr_error_set(MR_EINVALID,
				    "no trusted keys: pass the publisher's .pub file or a trust "
				    "policy; molt never loads unsigned units");
	if (o->mirrors_count > MOLT__MAX_MIRRORS)
		return mr_error_set(MR_EINVALID, "molt_options: more than %d mirrors",
				    MOLT__MAX_MIRRORS);
	if (!(rt = calloc(1, sizeof(*rt))))
		return mr_error_set(MR_ERROR, "out of memory");
	if (!(rt->base = registry_base(o->registry))) {
		rc = mr_error_sys(MR_ENOTFOUND, "registry %s", o->registry);
		goto done;
	}
	rt->src[rt->nsrc++] = rt->base;
	for (i = 0; i < o->mirrors_count; i++, rt->nsrc++)
		if (!(rt->src[rt->nsrc] = registry_base(o->mirrors[i]))) {
			rc = mr_error_sys(MR_ENOTFOUND, "mirror %s", o->mirrors[i]);
			goto done;
		}
	rt->cache = o->cache_dir ? strdup(o->cache_dir) : default_cache();
	if (!rt->cache) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if (o->policy) {
		rc = mr_policy_load(&rt->policy, o->policy);
	} else {
		mr_pubkey *keys = calloc(o->trusted_keys_count, sizeof(*keys));
		rc = keys ? 0 : mr_error_set(MR_ERROR, "out of memory");
		for (i = 0; i < o->trusted_keys_count && !rc; i++)
			rc = mr_pubkey_load(&keys[i], o->trusted_keys[i]);
		if (!rc)
			rc = mr_policy_from_keys(&rt->policy, keys, o->trusted_keys_count);
		free(keys);
	}
	rt->allow_yanked = o->allow_yanked;
	rt->depends = o->depends;
	rt->progress = o->progress;
	rt->progress_payload = o->progress_payload;
	if (!rc && !(blobs = mr_fs_join(rt->cache, "blobs/sha256")))
		rc = mr_error_set(MR_ERROR, "out of memory");
	else if (!rc) {
		rc = mr_fs_mkdir_p(blobs);
		free(blobs);
	}
done:
	if (rc)
		molt_runtime_free(rt);
	else
		*out = rt;
	return rc;
}

void molt_runtime_free(molt_runtime *rt)
{
	size_t i;

	if (!rt)
		return;
	for (i = 1; i < rt->nsrc; i++)
		free(rt->src[i]);
	free(rt->base);
	free(rt->cache);
	mr_policy_free(rt->policy);
	free(rt);
}

int molt_fetch(molt_runtime *rt, const char *name, const char *version,
	       const char *target, char manifest_digest[72])
{
	molt__fetched f;
	int rc = molt__fetch(rt, name, version, target ? target : molt_host_triple(), &f,
			     manifest_digest);

	cJSON_Delete(f.manifest);
	free(f.artifact);
	return rc;
}
