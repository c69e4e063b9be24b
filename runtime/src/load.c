#define _GNU_SOURCE
#include "internal.h"

#include "arrowjson.h"
#include "molt/mpsize.h"

#include "mr/digest.h"
#include "mr/error.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mr/semver.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MANIFEST_MAX (1u << 20)

struct molt_unit {
	void *dl;
	molt_runtime *rt;       /* the runtime it was loaded into (NULL: local, bundle) */
	char digest[72];        /* "sha256:<hex>" of its manifest */
	molt_unit *next_live;   /* in `live`, once loaded into a runtime */
	int fd;                 /* the private copy dlopen mapped, or -1 */
	molt_unit_options opts; /* limits for the next jobs */
	cJSON *manifest;
	char *manifest_json; /* `manifest` as compact JSON text, for molt_unit_manifest_json */
	cJSON **schemas; /* parsed documents, in the order of the manifest's "schemas" */
	size_t nschemas;
	uint32_t (*abi_version)(void);
	void *(*alloc)(uint32_t);
	void (*free)(void *, uint32_t);
	int32_t (*init)(const void *, uint32_t);
	int64_t (*call)(uint32_t, const void *, uint32_t);
	int32_t (*poll)(int64_t, const void **, uint32_t *);
	int32_t (*cancel)(int64_t);
};

/* A unit owning `manifest`, with room for the documents of its schemas. */
static int unit_new(molt_unit **out, cJSON *manifest)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(manifest, "schemas");
	molt_unit *u = calloc(1, sizeof(*u));
	size_t n = (size_t)cJSON_GetArraySize(s);

	if (u && (u->schemas = calloc(n ? n : 1, sizeof(*u->schemas))) &&
	    (u->manifest_json = cJSON_PrintUnformatted(manifest))) {
		u->fd = -1;
		u->manifest = manifest;
		u->nschemas = n;
		*out = u;
		return 0;
	}
	if (u)
		free(u->schemas);
	free(u);
	cJSON_Delete(manifest);
	return mr_error_set(MR_ERROR, "out of memory");
}

static const char *unit_name(const molt_unit *u)
{
	return mr_json_str(u->manifest, "name");
}

static const char *unit_version(const molt_unit *u)
{
	return mr_json_str(u->manifest, "version");
}

static int sym(molt_unit *u, const char *name, void **out)
{
	if (!(*out = dlsym(u->dl, name)))
		return mr_error_set(MR_EVERIFY, "%s@%s does not export %s; it is not a Molt ABI v0.1 unit",
				    unit_name(u), unit_version(u), name);
	return 0;
}

/* Sends molt.runtime_config v1 to the unit: {} or {step_budget}. */
static int send_config(molt_unit *u, uint32_t step_budget)
{
	msgpack_sbuffer payload, env;
	msgpack_packer pk;
	int32_t st = -7;
	void *in;

	msgpack_sbuffer_init(&payload);
	msgpack_sbuffer_init(&env);
	msgpack_packer_init(&pk, &payload, msgpack_sbuffer_write);
	msgpack_pack_map(&pk, step_budget ? 1 : 0);
	if (step_budget) {
		msgpack_pack_str_with_body(&pk, "step_budget", 11);
		msgpack_pack_uint32(&pk, step_budget);
	}
	msgpack_packer_init(&pk, &env, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_str_with_body(&pk, "molt.runtime_config", 19);
	msgpack_pack_uint32(&pk, 1);
	msgpack_pack_bin_with_body(&pk, payload.data, payload.size);
	if (env.data && (in = u->alloc((uint32_t)env.size))) {
		memcpy(in, env.data, env.size);
		st = u->init(in, (uint32_t)env.size);
		u->free(in, (uint32_t)env.size);
	}
	msgpack_sbuffer_destroy(&payload);
	msgpack_sbuffer_destroy(&env);
	if (st)
		return mr_error_set(MR_ERROR, "%s@%s: molt_init failed with status %d for "
					      "runtime_config {step_budget: %u}",
				    unit_name(u), unit_version(u), st, step_budget);
	return 0;
}

/* The manifest's ABI version, checked before anything else is read. */
static int check_abi(const molt_unit *u)
{
	if (strcmp(mr_json_str(u->manifest, "abi_version"), "0.1"))
		return mr_error_set(MR_EVERIFY, "%s@%s needs ABI %s; this libmolt speaks 0.1",
				    unit_name(u), unit_version(u),
				    mr_json_str(u->manifest, "abi_version"));
	return 0;
}

/* Copies the artifact into a private in-memory file, hashing the bytes as
 * they are copied, and returns its descriptor when they still have the
 * manifest's digest. So the bytes dlopen maps are the bytes checked (a
 * cache file changed after the check is refused), and every load is its
 * own copy of the unit: two units loaded from the same cache file, on one
 * thread or several, never share the unit's globals (its task table). */
static int private_copy(const molt_unit *u, const char *artifact, int *fd_out)
{
	const char *want = mr_json_str(cJSON_GetObjectItemCaseSensitive(u->manifest, "artifact"),
				       "digest");
	char have[MR_DIGEST_STR_LEN + 1], buf[65536];
	unsigned char raw[MR_DIGEST_LEN];
	mr_sha256 *h = NULL;
	int in = -1, fd = -1, rc;
	ssize_t n;

	*fd_out = -1;
	if ((rc = mr_sha256_new(&h)))
		return rc;
	if ((in = open(artifact, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = mr_error_sys(MR_EENV, "opening %s", artifact);
		goto done;
	}
	if ((fd = memfd_create("molt-unit", MFD_CLOEXEC)) < 0) {
		rc = mr_error_sys(MR_EENV, "memfd_create for %s", artifact);
		goto done;
	}
	while ((n = read(in, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write(fd, buf, (size_t)n) != n) {
			rc = mr_error_sys(MR_EENV, "copying %s", artifact);
			goto done;
		}
		mr_sha256_update(h, buf, (size_t)n);
	}
	mr_sha256_final(h, raw);
	mr_digest_format(have, raw);
	if (!want || strcmp(have, want))
		rc = mr_error_set(MR_EVERIFY, "%s: the bytes now hash to %s, but the manifest of "
					      "%s@%s says %s; the file changed after it was "
					      "verified; refusing to load it",
				  artifact, have, unit_name(u), unit_version(u), want ? want : "(none)");
done:
	mr_sha256_free(h);
	if (in >= 0)
		close(in);
	if (rc && fd >= 0)
		close(fd);
	else
		*fd_out = fd;
	return rc;
}

/* What every load does once the unit's files are checked: dlopen, the
 * seven symbols, molt_abi_version() and molt_init. */
static int unit_start(molt_unit *u, const char *artifact)
{
	const char *name = unit_name(u), *version = unit_version(u);
	molt_unit_options defaults = MOLT_UNIT_OPTIONS_INIT;
	char self[64];
	uint32_t abi;
	int rc;

	u->opts = defaults;
	if ((rc = private_copy(u, artifact, &u->fd)))
		return rc;
	/* dlopen knows a loaded object by this name: the descriptor stays open
	 * until after dlclose, so no other unit's copy gets the same name. */
	snprintf(self, sizeof(self), "/proc/self/fd/%d", u->fd);
	/* Only now, with the unit's files checked, does any of its code run. */
	if (!(u->dl = dlopen(self, RTLD_NOW | RTLD_LOCAL)))
		return mr_error_set(MR_EENV, "loading %s@%s from %s: %s", name, version, artifact,
				    dlerror());
	if ((rc = sym(u, "molt_abi_version", (void **)&u->abi_version)) ||
	    (rc = sym(u, "molt_alloc", (void **)&u->alloc)) ||
	    (rc = sym(u, "molt_free", (void **)&u->free)) ||
	    (rc = sym(u, "molt_init", (void **)&u->init)) ||
	    (rc = sym(u, "molt_call", (void **)&u->call)) ||
	    (rc = sym(u, "molt_poll", (void **)&u->poll)) ||
	    (rc = sym(u, "molt_cancel", (void **)&u->cancel)))
		return rc;
	if ((abi = u->abi_version()) != 1)
		return mr_error_set(MR_EVERIFY, "%s@%s reports ABI %u.%u; expected 0.1", name, version,
				    abi >> 16, abi & 0xffff);
	return send_config(u, 0);
}

int molt_unit_set_options(molt_unit *u, const molt_unit_options *opts)
{
	int rc;

	if (!opts || opts->version != MOLT_UNIT_OPTIONS_VERSION)
		return mr_error_set(MR_EINVALID, "molt_unit_options version %u; this libmolt knows "
						 "version %d (start from MOLT_UNIT_OPTIONS_INIT)",
				    opts ? opts->version : 0, MOLT_UNIT_OPTIONS_VERSION);
	if (opts->step_budget != u->opts.step_budget && (rc = send_config(u, opts->step_budget)))
		return rc;
	u->opts = *opts;
	return 0;
}

/* Version of a manifest's schema entry (0 if malformed). */
static int entry_version(const cJSON *s)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(s, "version");

	return mr_json_is_int(v, 1, 1000000) ? (int)v->valuedouble : 0;
}

/* ---- the units loaded into each runtime, for run-time depends ----------
 * One list for the process, guarded by a mutex, so that runtimes on
 * different threads never touch each other's units. */

static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static molt_unit *live;

static void live_add(molt_unit *u)
{
	pthread_mutex_lock(&live_lock);
	u->next_live = live;
	live = u;
	pthread_mutex_unlock(&live_lock);
}

static void live_remove(molt_unit *u)
{
	molt_unit **p;

	pthread_mutex_lock(&live_lock);
	for (p = &live; *p && *p != u; p = &(*p)->next_live)
		;
	if (*p)
		*p = u->next_live;
	pthread_mutex_unlock(&live_lock);
}

/* 1 if a unit named `name` whose version satisfies `range` is loaded into rt. */
static int is_loaded(const molt_runtime *rt, const char *name, const char *range)
{
	const molt_unit *u;
	int found = 0;

	pthread_mutex_lock(&live_lock);
	for (u = live; u && !found; u = u->next_live)
		found = u->rt == rt && !strcmp(unit_name(u), name) &&
			mr_semver_satisfies(unit_version(u), range);
	pthread_mutex_unlock(&live_lock);
	return found;
}

/* Every run-time dependency the manifest names must already be loaded into
 * rt: nothing is loaded implicitly, not even a dependency. */
static int check_depends(const molt_unit *u, const molt_runtime *rt)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(u->manifest, "depends");
	char name[128];
	const char *range;

	for (d = cJSON_IsArray(d) ? d->child : NULL; d; d = d->next) {
		if (cJSON_IsString(d) && strchr(d->valuestring, '@') &&
		    (size_t)(strchr(d->valuestring, '@') - d->valuestring) < sizeof(name)) {
			range = strchr(d->valuestring, '@') + 1;
			snprintf(name, sizeof(name), "%.*s",
				 (int)(range - 1 - d->valuestring), d->valuestring);
		} else if (mr_json_str(d, "name") && strlen(mr_json_str(d, "name")) < sizeof(name)) {
			snprintf(name, sizeof(name), "%s", mr_json_str(d, "name"));
			range = mr_json_str(d, "version") ? mr_json_str(d, "version") : "*";
		} else {
			return mr_error_set(MR_EVERIFY, "%s@%s: a \"depends\" entry is neither "
							"NAME@VERSION nor {name, version}",
					    unit_name(u), unit_version(u));
		}
		if (!is_loaded(rt, name, range))
			return mr_error_set(MR_ENOTFOUND,
					    "%s@%s depends on %s@%s at run time, which is not loaded "
					    "in this runtime; load it first (molt_unit_load(rt, \"%s\", "
					    "VERSION), or molt call --with %s@VERSION), then load %s@%s. "
					    "Nothing is loaded implicitly",
					    unit_name(u), unit_version(u), name, range, name, name,
					    unit_name(u), unit_version(u));
	}
	return 0;
}

int molt__unit_load_fetched(molt_unit **out, molt_runtime *rt, molt__fetched *f,
			    const char *manifest_digest)
{
	molt_unit *u = NULL;
	const cJSON *s;
	size_t i;
	int rc;

	*out = NULL;
	rc = unit_new(&u, f->manifest);
	f->manifest = NULL;
	if (rc)
		goto done;
	snprintf(u->digest, sizeof(u->digest), "%s", manifest_digest);
	/* Digests, signature and target were checked by the fetch; then, before
	 * any of the unit's code runs: ABI, schema digests, run-time depends. */
	if ((rc = check_abi(u)))
		goto done;
	s = cJSON_GetObjectItemCaseSensitive(u->manifest, "schemas");
	for (i = 0, s = s ? s->child : NULL; !rc && s; s = s->next, i++)
		rc = molt__schema_get(rt, u->manifest, mr_json_str(s, "id") ? mr_json_str(s, "id") : "",
				      entry_version(s), &u->schemas[i]);
	if (rc || (rc = check_depends(u, rt)) || (rc = unit_start(u, f->artifact)))
		goto done;
	u->rt = rt;
	live_add(u);
done:
	free(f->artifact);
	f->artifact = NULL;
	if (rc)
		molt_unit_free(u);
	else
		*out = u;
	return rc;
}

int molt_unit_load(molt_unit **out, molt_runtime *rt, const char *name,
		   const char *version)
{
	char digest[72];
	molt__fetched f;
	int rc;

	*out = NULL;
	if ((rc = molt__fetch(rt, name, version, molt_host_triple(), &f, digest)))
		return rc;
	return molt__unit_load_fetched(out, rt, &f, digest);
}

const char *molt_unit_name(const molt_unit *u)
{
	return unit_name(u);
}

const char *molt_unit_version(const molt_unit *u)
{
	return unit_version(u);
}

const char *molt_unit_target(const molt_unit *u)
{
	return mr_json_str(u->manifest, "target");
}

const char *molt_unit_manifest_digest(const molt_unit *u)
{
	return u->digest;
}

const char *molt_unit_manifest_json(const molt_unit *u)
{
	return u->manifest_json;
}

/* The local files' checks (molt.h): artifact size and digest, then every
 * schema file's canonical digest, each against the manifest. */
static int check_local(molt_unit *u, const char *artifact, const char *manifest_path,
		       const char *schemas_dir)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(u->manifest, "artifact"), *s;
	const char *want = mr_json_str(a, "digest");
	double want_size = cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble;
	char have[MR_DIGEST_STR_LEN + 1];
	size_t size = 0, i;
	int rc;

	if ((rc = mr_digest_file(have, artifact, &size)))
		return mr_error_wrap(rc, "artifact of %s@%s", unit_name(u), unit_version(u));
	if ((double)size != want_size || strcmp(have, want))
		return mr_error_set(MR_EVERIFY,
				    "%s: expected %.0f bytes with digest %s (from %s), found %zu bytes "
				    "with digest %s; refusing it. The artifact changed after the build, or "
				    "the manifest is another build's: rebuild (mrecipe build %s)",
				    artifact, want_size, want, manifest_path, size, have, unit_name(u));
	if ((rc = check_abi(u)))
		return rc;
	s = cJSON_GetObjectItemCaseSensitive(u->manifest, "schemas");
	for (i = 0, s = s ? s->child : NULL; s; s = s->next, i++) {
		const char *id = mr_json_str(s, "id"), *digest = mr_json_str(s, "digest");
		int v = entry_version(s);
		mr_buf b = MR_BUF_INIT;

		if (!id || !v || !digest)
			return mr_error_set(MR_EVERIFY, "%s: schemas[%zu] needs an id, a version and a digest",
					    manifest_path, i);
		if ((rc = mr_schema_load(&b, have, schemas_dir, id, v))) {
			mr_buf_free(&b);
			return mr_error_wrap(rc, "%s@%s", unit_name(u), unit_version(u));
		}
		if (strcmp(have, digest))
			rc = mr_error_set(MR_EVERIFY,
					  "schema %s@%d in %s has digest %s, but %s lists %s; refusing the "
					  "unit. The schema changed after the build: rebuild (mrecipe build %s)",
					  id, v, schemas_dir, have, manifest_path, digest, unit_name(u));
		else if (!(u->schemas[i] = cJSON_ParseWithLength((const char *)b.data, b.len)))
			rc = mr_error_set(MR_ERROR, "out of memory");
		mr_buf_free(&b);
		if (rc)
			return rc;
	}
	return 0;
}

int molt_unit_load_local(molt_unit **out, const char *artifact, const char *manifest_path,
			 const char *schemas_dir)
{
	const char *host = molt_host_triple(), *target;
	char path[PATH_MAX];
	molt_unit *u = NULL;
	mr_json *doc = NULL;
	cJSON *m;
	int rc;

	*out = NULL;
	if ((rc = mr_json_load(&doc, manifest_path, MANIFEST_MAX)))
		return rc;
	if (!(m = cJSON_Duplicate(mr_json_root(doc), 1))) {
		mr_json_free(doc);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	mr_json_free(doc);
	if ((rc = unit_new(&u, m)))
		return rc;
	if ((rc = mr_manifest_check(u->manifest, NULL, NULL, NULL))) {
		mr_error_wrap(rc, "%s", manifest_path);
		goto done;
	}
	if (strcmp((target = mr_json_str(u->manifest, "target")), host)) {
		rc = mr_error_set(MR_EVERIFY, "%s: target is '%s'; this host loads %s units (pass the "
					      "native build's manifest)", manifest_path, target, host);
		goto done;
	}
	/* dlopen searches the library path for a name without '/': pin the file we hash. */
	if (!realpath(artifact, path)) {
		rc = mr_error_sys(MR_ENOTFOUND, "artifact %s", artifact);
		goto done;
	}
	if ((rc = mr_digest_file(u->digest, manifest_path, NULL)) ||
	    (rc = check_local(u, path, manifest_path, schemas_dir)))
		goto done;
	rc = unit_start(u, path);
done:
	if (rc)
		molt_unit_free(u);
	else
		*out = u;
	return rc;
}

void molt_unit_free(molt_unit *u)
{
	size_t i;

	if (!u)
		return;
	if (u->rt)
		live_remove(u);
	if (u->dl)
		dlclose(u->dl);
	if (u->fd >= 0)
		close(u->fd);
	for (i = 0; i < u->nschemas; i++)
		cJSON_Delete(u->schemas[i]);
	free(u->schemas);
	cJSON_Delete(u->manifest);
	free(u->manifest_json);
	free(u);
}

static const cJSON *find_function(molt_unit *u, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(u->manifest, "functions");

	for (f = f ? f->child : NULL; f; f = f->next)
		if (mr_json_str(f, "name") && !strcmp(mr_json_str(f, "name"), name))
			return f;
	return NULL;
}

int molt_unit_function_id(molt_unit *u, const char *function, uint32_t *id)
{
	const cJSON *f = find_function(u, function);

	if (!f)
		return mr_error_set(MR_ENOTFOUND, "%s@%s has no function '%s'",
				    mr_json_str(u->manifest, "name"),
				    mr_json_str(u->manifest, "version"), function);
	*id = (uint32_t)cJSON_GetObjectItemCaseSensitive(f, "id")->valuedouble;
	return 0;
}

/* The unit's document for a manifest schema reference {id, version}
 * (owned by the unit). */
static int schema_of(molt_unit *u, const cJSON *ref, const cJSON **doc)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(u->manifest, "schemas");
	const char *id = mr_json_str(ref, "id");
	int v = entry_version(ref);
	size_t i;

	for (i = 0, s = s ? s->child : NULL; s && i < u->nschemas; s = s->next, i++)
		if (id && mr_json_str(s, "id") && !strcmp(mr_json_str(s, "id"), id) &&
		    entry_version(s) == v) {
			*doc = u->schemas[i];
			return 0;
		}
	*doc = NULL;
	return mr_error_set(MR_EVERIFY, "%s@%s: the manifest does not list schema %s@%d",
			    unit_name(u), unit_version(u), id ? id : "?", v);
}

/* 1 if a schema document's payloads are Arrow IPC streams. */
static int is_arrow(const cJSON *schema)
{
	const char *codec = mr_json_str(schema, "codec");

	return codec && !strcmp(codec, "arrow");
}

/* Validates `value` against `schema` (a schema document) and packs the
 * envelope [id, version, payload]. */
static int encode_envelope(const cJSON *schema, const char *id, int version,
			   const cJSON *value, unsigned char **out, size_t *out_len)
{
	msgpack_sbuffer payload, env;
	msgpack_packer pk;
	char path[256] = "";
	int rc;

	if (is_arrow(schema))
		return mr_error_set(MR_EINVALID,
				    "schema %s@%d carries Arrow IPC streams, which are not built "
				    "from JSON here; send the envelope's bytes instead "
				    "(molt_unit_start_envelope)", id, version);
	msgpack_sbuffer_init(&payload);
	msgpack_sbuffer_init(&env);
	msgpack_packer_init(&pk, &payload, msgpack_sbuffer_write);
	if (!(rc = molt__schema_encode(cJSON_GetObjectItemCaseSensitive(schema, "type"), value,
				       &pk, path, sizeof(path)))) {
		msgpack_packer_init(&pk, &env, msgpack_sbuffer_write);
		msgpack_pack_array(&pk, 3);
		msgpack_pack_str(&pk, strlen(id));
		msgpack_pack_str_body(&pk, id, strlen(id));
		msgpack_pack_uint32(&pk, (uint32_t)version);
		msgpack_pack_bin(&pk, payload.size);
		msgpack_pack_bin_body(&pk, payload.data, payload.size);
		*out_len = env.size;
		*out = (unsigned char *)msgpack_sbuffer_release(&env);
	}
	msgpack_sbuffer_destroy(&payload);
	msgpack_sbuffer_destroy(&env);
	return rc;
}

int molt_unit_encode_request(molt_unit *u, const char *function, const char *json_in,
			     unsigned char **out, size_t *out_len)
{
	const cJSON *f = find_function(u, function), *in, *schema;
	cJSON *req = NULL;
	int rc;

	*out = NULL;
	if (!f)
		return mr_error_set(MR_ENOTFOUND, "%s@%s has no function '%s'", unit_name(u),
				    unit_version(u), function);
	in = cJSON_GetObjectItemCaseSensitive(f, "input");
	if (!(req = cJSON_Parse(json_in)))
		return mr_error_set(MR_EINVALID, "request is not valid JSON: %.40s", json_in);
	if (!(rc = schema_of(u, in, &schema)) &&
	    (rc = encode_envelope(schema, mr_json_str(in, "id"), entry_version(in), req, out,
				  out_len)))
		mr_error_wrap(rc, "%s request (schema %s@%d)", function, mr_json_str(in, "id"),
			      entry_version(in));
	cJSON_Delete(req);
	return rc;
}

int molt_envelope_encode(const char *schema_json, const char *json_in, unsigned char **out,
			 size_t *out_len)
{
	cJSON *schema = cJSON_Parse(schema_json), *value = cJSON_Parse(json_in);
	const char *id = mr_json_str(schema, "id");
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(schema, "version");
	int rc;

	*out = NULL;
	if (!id || !mr_json_is_int(v, 1, 1000000) || !cJSON_GetObjectItemCaseSensitive(schema, "type"))
		rc = mr_error_set(MR_EINVALID, "not a schema document (docs/schemas.md): %.60s",
				  schema_json);
	else if (!value)
		rc = mr_error_set(MR_EINVALID, "value is not valid JSON: %.40s", json_in);
	else if ((rc = encode_envelope(schema, id, (int)v->valuedouble, value, out, out_len)))
		mr_error_wrap(rc, "schema %s@%d", id, (int)v->valuedouble);
	cJSON_Delete(schema);
	cJSON_Delete(value);
	return rc;
}

static void hex(char *dst, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		dst[2 * i] = digits[p[i] >> 4];
		dst[2 * i + 1] = digits[p[i] & 15];
	}
	dst[2 * n] = '\0';
}

/* {"<key>": "<hex of p>"}, for bin and ext values. */
static cJSON *hex_json(const char *key, const char *p, size_t n)
{
	cJSON *o = cJSON_CreateObject();
	char *h = malloc(2 * n + 1);

	if (h && o) {
		hex(h, (const unsigned char *)p, n);
		if (cJSON_AddStringToObject(o, key, h)) {
			free(h);
			return o;
		}
	}
	free(h);
	cJSON_Delete(o);
	return NULL;
}

static cJSON *str_of(const char *p, size_t n)
{
	char *tmp = malloc(n + 1);
	cJSON *j;

	if (!tmp)
		return NULL;
	if (n) /* an empty str may have ptr NULL */
		memcpy(tmp, p, n);
	tmp[n] = '\0';
	j = cJSON_CreateString(tmp);
	free(tmp);
	return j;
}

/* Any MsgPack value as JSON, for messages (no schema). */
static cJSON *mp_json(const msgpack_object *o)
{
	char num[32];
	cJSON *j = NULL, *k, *v;
	uint32_t i;

	switch (o->type) {
	case MSGPACK_OBJECT_NIL:
		return cJSON_CreateNull();
	case MSGPACK_OBJECT_BOOLEAN:
		return cJSON_CreateBool(o->via.boolean);
	case MSGPACK_OBJECT_POSITIVE_INTEGER:
		/* Raw digits: exact beyond 2^53, where a double is not. */
		snprintf(num, sizeof(num), "%" PRIu64, o->via.u64);
		return cJSON_CreateRaw(num);
	case MSGPACK_OBJECT_NEGATIVE_INTEGER:
		snprintf(num, sizeof(num), "%" PRId64, o->via.i64);
		return cJSON_CreateRaw(num);
	case MSGPACK_OBJECT_FLOAT32:
	case MSGPACK_OBJECT_FLOAT64:
		return cJSON_CreateNumber(o->via.f64);
	case MSGPACK_OBJECT_STR:
		return str_of(o->via.str.ptr, o->via.str.size);
	case MSGPACK_OBJECT_BIN:
		return hex_json("bin", o->via.bin.ptr, o->via.bin.size);
	case MSGPACK_OBJECT_ARRAY:
		if (!(j = cJSON_CreateArray()))
			return NULL;
		for (i = 0; i < o->via.array.size; i++) {
			if (!(v = mp_json(&o->via.array.ptr[i]))) {
				cJSON_Delete(j);
				return NULL;
			}
			cJSON_AddItemToArray(j, v);
		}
		return j;
	case MSGPACK_OBJECT_MAP:
		if (!(j = cJSON_CreateObject()))
			return NULL;
		for (i = 0; i < o->via.map.size; i++) {
			const msgpack_object_kv *kv = &o->via.map.ptr[i];
			char *name = NULL;
			/* A key that is not a string is shown as its JSON text. */
			k = kv->key.type == MSGPACK_OBJECT_STR ? str_of(kv->key.via.str.ptr, kv->key.via.str.size)
							       : mp_json(&kv->key);
			if (k && !cJSON_IsString(k)) {
				name = cJSON_PrintUnformatted(k);
				cJSON_Delete(k);
				k = name ? cJSON_CreateString(name) : NULL;
				free(name);
			}
			v = mp_json(&kv->val);
			if (!k || !v) {
				cJSON_Delete(k);
				cJSON_Delete(v);
				cJSON_Delete(j);
				return NULL;
			}
			cJSON_AddItemToObject(j, k->valuestring, v);
			cJSON_Delete(k);
		}
		return j;
	default:
		if (!(j = hex_json("ext", o->via.ext.ptr, o->via.ext.size)))
			return NULL;
		cJSON_AddNumberToObject(j, "type", o->via.ext.type);
		return j;
	}
}

int molt_envelope_to_json(const unsigned char *env, size_t len, char **json_out)
{
	msgpack_zone zone;
	msgpack_object e, p;
	const msgpack_object *v;
	cJSON *j = NULL, *payload;
	size_t off = 0;
	int rc = 0;

	*json_out = NULL;
	if (!msgpack_zone_init(&zone, 4096))
		return mr_error_set(MR_ERROR, "out of memory");
	if (!len || (off = molt__msgpack_size(env, len)) != len) {
		if (len && off)
			rc = mr_error_set(MR_EINVALID, "%zu bytes after the envelope", len - off);
		else
			rc = mr_error_set(MR_EINVALID, "not MsgPack: no complete value in %zu bytes",
					  len);
		goto done;
	}
	off = 0;
	if (msgpack_unpack((const char *)env, len, &off, &zone, &e) != MSGPACK_UNPACK_SUCCESS ||
	    off != len) {
		rc = mr_error_set(MR_EINVALID, "not MsgPack: no complete value in %zu bytes", len);
		goto done;
	}
	v = e.type == MSGPACK_OBJECT_ARRAY ? e.via.array.ptr : NULL;
	if (!v || e.via.array.size != 3 || v[0].type != MSGPACK_OBJECT_STR || v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    v[2].type != MSGPACK_OBJECT_BIN) {
		char *what = (j = mp_json(&e)) ? cJSON_PrintUnformatted(j) : NULL;
		rc = mr_error_set(MR_EINVALID, "expected an envelope [str, uint, bin], found %.200s",
				  what ? what : "?");
		free(what);
		goto done;
	}
	off = 0;
	if (molt__msgpack_size((const unsigned char *)v[2].via.bin.ptr, v[2].via.bin.size) != v[2].via.bin.size ||
	    msgpack_unpack(v[2].via.bin.ptr, v[2].via.bin.size, &off, &zone, &p) !=
		    MSGPACK_UNPACK_SUCCESS ||
	    off != v[2].via.bin.size) {
		rc = mr_error_set(MR_EINVALID, "%.*s v%" PRIu64 ": the payload is not one MsgPack value",
				  (int)(v[0].via.str.size > 64 ? 64 : v[0].via.str.size),
				  v[0].via.str.ptr, v[1].via.u64);
		goto done;
	}
	if (!(j = cJSON_CreateObject()) ||
	    !cJSON_AddItemToObject(j, "schema", str_of(v[0].via.str.ptr, v[0].via.str.size)) ||
	    !cJSON_AddItemToObject(j, "version", mp_json(&v[1])) || !(payload = mp_json(&p)) ||
	    !cJSON_AddItemToObject(j, "payload", payload) ||
	    !(*json_out = cJSON_PrintUnformatted(j)))
		rc = mr_error_set(MR_ERROR, "out of memory");
done:
	cJSON_Delete(j);
	msgpack_zone_destroy(&zone);
	return rc;
}

/* Opens a result or error envelope; checks it names the expected schema. */
static int open_envelope(const unsigned char *b, size_t len, const char *id, int version,
			 msgpack_zone *zone, msgpack_object *payload, const char **raw,
			 size_t *raw_len)
{
	msgpack_object env;
	const msgpack_object *v;
	size_t off = 0;

	if (molt__msgpack_size(b, len) != len ||
	    msgpack_unpack((const char *)b, len, &off, zone, &env) != MSGPACK_UNPACK_SUCCESS ||
	    off != len || env.type != MSGPACK_OBJECT_ARRAY || env.via.array.size != 3)
		return mr_error_set(MR_EVERIFY, "the unit returned a malformed envelope (%zu bytes)", len);
	v = env.via.array.ptr;
	if (v[0].type != MSGPACK_OBJECT_STR || v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    v[2].type != MSGPACK_OBJECT_BIN || v[0].via.str.size != strlen(id) ||
	    memcmp(v[0].via.str.ptr, id, strlen(id)) || v[1].via.u64 != (uint64_t)version)
		return mr_error_set(MR_EVERIFY, "the unit's result envelope does not name schema %s@%d",
				    id, version);
	if (raw) { /* an Arrow payload: the caller reads the bytes */
		*raw = v[2].via.bin.ptr;
		*raw_len = v[2].via.bin.size;
		return 0;
	}
	if (raw) { /* an Arrow payload: the caller reads the bytes */
		*raw = v[2].via.bin.ptr;
		*raw_len = v[2].via.bin.size;
		return 0;
	}
	off = 0;
	if (molt__msgpack_size((const unsigned char *)v[2].via.bin.ptr, v[2].via.bin.size) != v[2].via.bin.size ||
	    msgpack_unpack(v[2].via.bin.ptr, v[2].via.bin.size, &off, zone, payload) !=
		    MSGPACK_UNPACK_SUCCESS ||
	    off != v[2].via.bin.size)
		return mr_error_set(MR_EVERIFY, "the unit's result payload is not one MsgPack value");
	return 0;
}

/* molt.error v1, known to every host (schemas/molt.error.v1.json). */
static const char error_type[] =
	"{\"record\":[{\"name\":\"class\",\"type\":{\"enum\":[\"validation\",\"runtime\","
	"\"cancellation\"]}},{\"name\":\"code\",\"type\":\"int\"},{\"name\":\"message\","
	"\"type\":\"string\"},{\"name\":\"path\",\"type\":\"string\",\"optional\":true}]}";

/* The unit's molt.error as a libmolt error; *code gets its code (7 when
 * it is not one of 1-7). */
static int unit_error(molt_unit *u, const char *function, const msgpack_object *p, int *code)
{
	cJSON *type = cJSON_Parse(error_type), *e = NULL;
	char path[128] = "";
	int rc;

	if ((rc = molt__schema_decode(type, p, &e, path, sizeof(path)))) {
		mr_error_wrap(MR_EVERIFY, "the unit's error envelope is not a valid molt.error");
		rc = MR_EVERIFY;
	} else {
		const char *cls = mr_json_str(e, "class"), *at = mr_json_str(e, "path");
		double c = cJSON_GetObjectItemCaseSensitive(e, "code")->valuedouble;
		*code = c >= 1 && c <= 7 ? (int)c : 7;
		rc = mr_error_set(!strcmp(cls, "validation") ? MR_EINVALID : MR_ERROR,
				  "%s.%s: %s error %d%s%s: %s", mr_json_str(u->manifest, "name"),
				  function, cls, (int)cJSON_GetObjectItemCaseSensitive(e, "code")->valuedouble,
				  at ? " at " : "", at ? at : "", mr_json_str(e, "message"));
	}
	cJSON_Delete(type);
	cJSON_Delete(e);
	return rc;
}

/* ---------------------------------------------------------------- jobs */

enum { JOB_PENDING, JOB_RESULT, JOB_ERROR, JOB_HOST };

struct molt_job {
	molt_unit *u;
	int64_t task;          /* the unit's task id; 0 once it is over there */
	char function[96];     /* for messages: the name, or "#<id>" */
	const cJSON *output;   /* the manifest's output schema ref, or NULL */
	uint64_t start_ms;     /* monotonic, at molt_unit_start */
	uint32_t timeout_ms;   /* 0: none */
	size_t max_output;
	uint64_t polls;
	int state;             /* JOB_* */
	int cancelled;
	int code;              /* 1-7 once it ended in an error */
	unsigned char *env;    /* JOB_RESULT, JOB_ERROR: the envelope, copied */
	size_t env_len;
	char message[512];     /* JOB_HOST: what the host saw */
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static const char *const status_names[] = { "", "InvalidInput", "DecodeError", "EncodeError",
					     "Cancelled", "Timeout", "CapabilityDenied",
					     "InternalError" };

static const char *status_name(long long st)
{
	return st < 0 && st >= -7 ? status_names[-st] : "not a Molt status";
}

static const cJSON *function_by_id(molt_unit *u, uint32_t id)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(u->manifest, "functions");

	for (f = f ? f->child : NULL; f; f = f->next)
		if (cJSON_GetObjectItemCaseSensitive(f, "id") &&
		    cJSON_GetObjectItemCaseSensitive(f, "id")->valuedouble == (double)id)
			return f;
	return NULL;
}

/* Hands a raw envelope to molt_call: the unit copies what it needs. */
static int job_begin(molt_job **out, molt_unit *u, uint32_t function_id,
		     const unsigned char *env, size_t len)
{
	const cJSON *f = function_by_id(u, function_id);
	molt_job *j;
	void *in;

	*out = NULL;
	if (len > UINT32_MAX || !(in = u->alloc((uint32_t)len)))
		return mr_error_set(MR_EINVALID, "%s@%s: a request of %zu bytes does not fit the unit",
				    unit_name(u), unit_version(u), len);
	if (!(j = calloc(1, sizeof(*j)))) {
		u->free(in, (uint32_t)len);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	j->u = u;
	if (f && mr_json_str(f, "name"))
		snprintf(j->function, sizeof(j->function), "%s", mr_json_str(f, "name"));
	else
		snprintf(j->function, sizeof(j->function), "#%u", function_id);
	j->output = f ? cJSON_GetObjectItemCaseSensitive(f, "output") : NULL;
	j->timeout_ms = u->opts.timeout_ms;
	j->max_output = u->opts.max_output ? u->opts.max_output : MOLT_MAX_OUTPUT_DEFAULT;
	j->start_ms = now_ms();
	if (len)
		memcpy(in, env, len);
	j->task = u->call(function_id, in, (uint32_t)len);
	u->free(in, (uint32_t)len);
	if (j->task <= 0) {
		long long st = (long long)j->task;
		int rc = mr_error_set(MR_ERROR, "%s.%s: molt_call refused to start a task: status %lld "
						"(%s)%s",
				      unit_name(u), j->function, st, status_name(st),
				      st == -6 ? "; the unit holds as many tasks as it can: poll "
						 "some to completion or cancel them first"
				      : st == -7 ? "; the unit is not initialised" : "");
		free(j);
		return rc;
	}
	*out = j;
	return 0;
}

int molt_unit_start_envelope(molt_job **out, molt_unit *u, uint32_t function_id,
			     const unsigned char *env, size_t len)
{
	return job_begin(out, u, function_id, env, len);
}

int molt_unit_start(molt_job **out, molt_unit *u, const char *function, const char *json_in)
{
	unsigned char *env = NULL;
	size_t len = 0;
	uint32_t id;
	int rc;

	*out = NULL;
	if (!(rc = molt_unit_function_id(u, function, &id)) &&
	    !(rc = molt_unit_encode_request(u, function, json_in, &env, &len)))
		rc = job_begin(out, u, id, env, len);
	free(env);
	return rc;
}

/* Ends the job on the host's side: the task, if still live in the unit, is
 * cancelled and reaped (one more poll), so its slot is free again. */
static void job_end_host(molt_job *j, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void job_end_host(molt_job *j, int code, const char *fmt, ...)
{
	const void *res;
	uint32_t res_len;
	va_list ap;

	if (j->task > 0 && j->u->cancel(j->task) == 0)
		j->u->poll(j->task, &res, &res_len);
	j->task = 0;
	j->state = JOB_HOST;
	j->code = code;
	va_start(ap, fmt);
	vsnprintf(j->message, sizeof(j->message), fmt, ap);
	va_end(ap);
}

static int timed_out(const molt_job *j)
{
	return j->timeout_ms && now_ms() - j->start_ms >= j->timeout_ms;
}

static void job_timeout(molt_job *j)
{
	job_end_host(j, 5, "no result after %llu ms (timeout_ms %u, %llu polls); the host "
			   "cancelled the task",
		     (unsigned long long)(now_ms() - j->start_ms), j->timeout_ms,
		     (unsigned long long)j->polls);
}

/* One molt_poll, and what the host checks around it. */
static void job_step(molt_job *j)
{
	const void *res = NULL;
	uint32_t res_len = 0;
	int32_t st;

	if (timed_out(j)) {
		job_timeout(j);
		return;
	}
	st = j->u->poll(j->task, &res, &res_len);
	j->polls++;
	if (st == 0) {
		if (timed_out(j))
			job_timeout(j);
		return;
	}
	if (st != 1 && st != 2) {
		/* The unit says the task is not live: nothing to cancel. */
		j->task = 0;
		job_end_host(j, 7, "molt_poll returned %d (%s) for live task; the unit breaks the "
				   "ABI (docs/abi.md)", st, status_name(st));
		return;
	}
	j->task = 0;
	if (res_len > j->max_output) {
		job_end_host(j, 6, "the %s envelope is %u bytes, over the max_output limit of %zu "
				   "bytes; it was dropped",
			     st == 1 ? "result" : "error", res_len, j->max_output);
		return;
	}
	if (!res && res_len) {
		job_end_host(j, 7, "molt_poll returned %u bytes at NULL; the unit breaks the ABI",
			     res_len);
		return;
	}
	if (!(j->env = malloc(res_len ? res_len : 1))) {
		job_end_host(j, 7, "out of memory copying a %u-byte envelope", res_len);
		return;
	}
	if (res_len)
		memcpy(j->env, res, res_len);
	j->env_len = res_len;
	j->state = st == 1 ? JOB_RESULT : JOB_ERROR;
}

/* What a finished job says: 1 with the JSON result, or an error. */
static int job_report(molt_job *j, char **json_out)
{
	molt_unit *u = j->u;
	const cJSON *schema = NULL;
	cJSON *result = NULL;
	msgpack_zone zone;
	msgpack_object payload;
	const char *raw = NULL;
	size_t raw_len = 0;
	char path[256] = "";
	int rc = 1;

	if (j->state == JOB_HOST)
		return mr_error_set(MR_ERROR, "%s.%s: runtime error %d: %s", unit_name(u),
				    j->function, j->code, j->message);
	if (!msgpack_zone_init(&zone, 4096))
		return mr_error_set(MR_ERROR, "out of memory");
	if (j->state == JOB_ERROR) {
		if (!(rc = open_envelope(j->env, j->env_len, "molt.error", 1, &zone, &payload, NULL, NULL)))
			rc = unit_error(u, j->function, &payload, &j->code);
		if (rc == MR_EVERIFY)
			j->code = 7;
		goto done;
	}
	if (!json_out)
		goto done;
	if (!j->output) {
		rc = mr_error_set(MR_EVERIFY, "the manifest has no such function, so its result "
					      "can't be checked");
	} else if (!(rc = schema_of(u, j->output, &schema)) &&
		   !(rc = open_envelope(j->env, j->env_len, mr_json_str(j->output, "id"),
					entry_version(j->output), &zone, &payload,
					is_arrow(schema) ? &raw : NULL, &raw_len))) {
		const cJSON *type = cJSON_GetObjectItemCaseSensitive(schema, "type");
		if ((rc = raw ? molt__arrow_decode(type, raw, raw_len, &result, path, sizeof(path))
			      : molt__schema_decode(type, &payload, &result, path, sizeof(path)))) {
			mr_error_wrap(MR_EVERIFY, "the result breaks its schema %s",
				      mr_json_str(j->output, "id"));
			rc = MR_EVERIFY;
		} else if (!(*json_out = cJSON_PrintUnformatted(result))) {
			rc = mr_error_set(MR_ERROR, "out of memory");
		} else {
			rc = 1;
		}
	}
	if (rc < 0) {
		/* The unit could not encode a result its manifest promises. */
		mr_error_wrap(rc, "%s.%s: runtime error 3", unit_name(u), j->function);
		j->code = 3;
	}
done:
	msgpack_zone_destroy(&zone);
	cJSON_Delete(result);
	return rc;
}

int molt_job_poll(molt_job *j, char **json_out)
{
	if (json_out)
		*json_out = NULL;
	if (j->state == JOB_PENDING) {
		job_step(j);
		if (j->state == JOB_PENDING)
			return 0;
	}
	return job_report(j, json_out);
}

int molt_job_envelope(const molt_job *j, const unsigned char **env, size_t *len)
{
	*env = NULL;
	*len = 0;
	if (j->state != JOB_RESULT && j->state != JOB_ERROR)
		return 0;
	*env = j->env;
	*len = j->env_len;
	return j->state == JOB_RESULT ? 1 : 2;
}

int molt_job_error_code(const molt_job *j)
{
	return j->code;
}

uint64_t molt_job_polls(const molt_job *j)
{
	return j->polls;
}

int molt_job_cancel(molt_job *j)
{
	int32_t st;

	if (j->state != JOB_PENDING || j->cancelled)
		return 0;
	if ((st = j->u->cancel(j->task)) != 0)
		return mr_error_set(MR_ERROR, "%s.%s: molt_cancel(%lld) returned %d (%s)",
				    unit_name(j->u), j->function, (long long)j->task, st,
				    status_name(st));
	j->cancelled = 1;
	return 0;
}

void molt_job_free(molt_job *j)
{
	if (!j)
		return;
	if (j->state == JOB_PENDING)
		job_end_host(j, 4, "freed while pending");
	free(j->env);
	free(j);
}

int molt_unit_call_envelope(molt_unit *u, uint32_t function_id, const unsigned char *env,
			    size_t len, unsigned char **out, size_t *out_len, int *is_error)
{
	const unsigned char *e;
	molt_job *j = NULL;
	size_t n;
	int rc, kind;

	*out = NULL;
	*out_len = 0;
	if ((rc = molt_unit_start_envelope(&j, u, function_id, env, len)))
		return rc;
	while ((rc = molt_job_poll(j, NULL)) == 0)
		;
	if ((kind = molt_job_envelope(j, &e, &n))) {
		if ((*out = malloc(n ? n : 1))) {
			memcpy(*out, e, n);
			*out_len = n;
			*is_error = kind == 2;
			rc = 0;
		} else {
			rc = mr_error_set(MR_ERROR, "out of memory");
		}
	}
	molt_job_free(j);
	return rc;
}

int molt_unit_call_json(molt_unit *u, const char *function, const char *json_in,
			char **json_out)
{
	molt_job *j = NULL;
	int rc;

	*json_out = NULL;
	if ((rc = molt_unit_start(&j, u, function, json_in)))
		return rc;
	while ((rc = molt_job_poll(j, json_out)) == 0)
		;
	molt_job_free(j);
	return rc == 1 ? 0 : rc;
}
