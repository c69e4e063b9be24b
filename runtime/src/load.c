#include "internal.h"

#include "mr/error.h"
#include "mr/json.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#define OUT_MAX (64u << 20)

struct molt_unit {
	molt_runtime *rt;
	void *dl;
	cJSON *manifest;
	uint32_t (*abi_version)(void);
	void *(*alloc)(uint32_t);
	void (*free)(void *, uint32_t);
	int32_t (*init)(const void *, uint32_t);
	int64_t (*call)(uint32_t, const void *, uint32_t);
	int32_t (*poll)(int64_t, const void **, uint32_t *);
	int32_t (*cancel)(int64_t);
};

static int sym(molt_unit *u, const char *name, void **out)
{
	if (!(*out = dlsym(u->dl, name)))
		return mr_error_set(MR_EVERIFY, "%s@%s does not export %s; it is not a Molt ABI v0.1 unit",
				    mr_json_str(u->manifest, "name"), mr_json_str(u->manifest, "version"), name);
	return 0;
}

int molt_unit_load(molt_unit **out, molt_runtime *rt, const char *name,
		   const char *version)
{
	/* runtime_config v1 with no options: ["molt.runtime_config", 1, bin(map{})]. */
	static const unsigned char cfg[] = { 0x93, 0xb3, 'm', 'o', 'l', 't', '.', 'r', 'u', 'n',
					     't', 'i', 'm', 'e', '_', 'c', 'o', 'n', 'f', 'i',
					     'g', 0x01, 0xc4, 0x01, 0x80 };
	molt__fetched f;
	molt_unit *u;
	uint32_t abi;
	int rc;

	*out = NULL;
	if ((rc = molt__fetch(rt, name, version, molt_host_triple(), &f, NULL)))
		return rc;
	if (!(u = calloc(1, sizeof(*u)))) {
		cJSON_Delete(f.manifest);
		free(f.artifact);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	u->rt = rt;
	u->manifest = f.manifest;
	if (strcmp(mr_json_str(u->manifest, "abi_version"), "0.1")) {
		rc = mr_error_set(MR_EVERIFY, "%s@%s needs ABI %s; this libmolt speaks 0.1", name,
				  version, mr_json_str(u->manifest, "abi_version"));
		goto done;
	}
	/* Only now, with digest, signature, identity and target checked, does
	 * any of the unit's code run. */
	if (!(u->dl = dlopen(f.artifact, RTLD_NOW | RTLD_LOCAL))) {
		rc = mr_error_set(MR_EENV, "loading %s@%s from %s: %s", name, version, f.artifact,
				  dlerror());
		goto done;
	}
	if ((rc = sym(u, "molt_abi_version", (void **)&u->abi_version)) ||
	    (rc = sym(u, "molt_alloc", (void **)&u->alloc)) ||
	    (rc = sym(u, "molt_free", (void **)&u->free)) ||
	    (rc = sym(u, "molt_init", (void **)&u->init)) ||
	    (rc = sym(u, "molt_call", (void **)&u->call)) ||
	    (rc = sym(u, "molt_poll", (void **)&u->poll)) ||
	    (rc = sym(u, "molt_cancel", (void **)&u->cancel)))
		goto done;
	if ((abi = u->abi_version()) != 1) {
		rc = mr_error_set(MR_EVERIFY, "%s@%s reports ABI %u.%u; expected 0.1", name, version,
				  abi >> 16, abi & 0xffff);
		goto done;
	}
	if ((rc = u->init(cfg, sizeof(cfg))) != 0) {
		rc = mr_error_set(MR_ERROR, "%s@%s: molt_init failed with status %d", name, version, rc);
		goto done;
	}
done:
	free(f.artifact);
	if (rc)
		molt_unit_free(u);
	else
		*out = u;
	return rc;
}

void molt_unit_free(molt_unit *u)
{
	if (!u)
		return;
	if (u->dl)
		dlclose(u->dl);
	cJSON_Delete(u->manifest);
	free(u);
}

int molt_unit_call_envelope(molt_unit *u, uint32_t function_id,
			    const unsigned char *env, size_t len, unsigned char **out,
			    size_t *out_len, int *is_error)
{
	const void *res = NULL;
	uint32_t res_len = 0;
	int64_t task;
	int32_t st;
	void *in;

	*out = NULL;
	*out_len = 0;
	if (len > UINT32_MAX || !(in = u->alloc((uint32_t)len)))
		return mr_error_set(MR_EINVALID, "request of %zu bytes does not fit the unit", len);
	memcpy(in, env, len);
	task = u->call(function_id, in, (uint32_t)len);
	u->free(in, (uint32_t)len);
	if (task <= 0)
		return mr_error_set(MR_ERROR, "molt_call refused the request with status %lld",
				    (long long)task);
	while ((st = u->poll(task, &res, &res_len)) == 0)
		;
	if (st != 1 && st != 2)
		return mr_error_set(MR_ERROR, "molt_poll returned status %d", st);
	if (res_len > OUT_MAX)
		return mr_error_set(MR_EVERIFY, "the unit returned %u bytes, over the %u-byte limit",
				    res_len, OUT_MAX);
	if (!(*out = malloc(res_len ? res_len : 1)))
		return mr_error_set(MR_ERROR, "out of memory");
	memcpy(*out, res, res_len);
	*out_len = res_len;
	*is_error = st == 2;
	return 0;
}

static const cJSON *find_function(molt_unit *u, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(u->manifest, "functions");

	for (f = f ? f->child : NULL; f; f = f->next)
		if (mr_json_str(f, "name") && !strcmp(mr_json_str(f, "name"), name))
			return f;
	return NULL;
}

static int schema_of(molt_unit *u, const cJSON *ref, cJSON **doc)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(ref, "version");

	return molt__schema_get(u->rt, u->manifest, mr_json_str(ref, "id"),
				v ? (int)v->valuedouble : 0, doc);
}

int molt_unit_encode_request(molt_unit *u, const char *function, const char *json_in,
			     unsigned char **out, size_t *out_len)
{
	const cJSON *f = find_function(u, function), *in;
	cJSON *req = NULL, *schema = NULL;
	msgpack_sbuffer payload, env;
	msgpack_packer pk;
	char path[256] = "";
	int rc;

	*out = NULL;
	msgpack_sbuffer_init(&payload);
	msgpack_sbuffer_init(&env);
	if (!f) {
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s has no function '%s'",
				  mr_json_str(u->manifest, "name"), mr_json_str(u->manifest, "version"),
				  function);
		goto done;
	}
	in = cJSON_GetObjectItemCaseSensitive(f, "input");
	if (!(req = cJSON_Parse(json_in))) {
		rc = mr_error_set(MR_EINVALID, "request is not valid JSON: %.40s", json_in);
		goto done;
	}
	if ((rc = schema_of(u, in, &schema)))
		goto done;
	msgpack_packer_init(&pk, &payload, msgpack_sbuffer_write);
	if ((rc = molt__schema_encode(cJSON_GetObjectItemCaseSensitive(schema, "type"), req, &pk,
				      path, sizeof(path)))) {
		mr_error_wrap(rc, "%s request (schema %s@%d)", function, mr_json_str(in, "id"),
			      (int)cJSON_GetObjectItemCaseSensitive(in, "version")->valuedouble);
		goto done;
	}
	msgpack_packer_init(&pk, &env, msgpack_sbuffer_write);
	msgpack_pack_array(&pk, 3);
	msgpack_pack_str(&pk, strlen(mr_json_str(in, "id")));
	msgpack_pack_str_body(&pk, mr_json_str(in, "id"), strlen(mr_json_str(in, "id")));
	msgpack_pack_uint32(&pk, (uint32_t)cJSON_GetObjectItemCaseSensitive(in, "version")->valuedouble);
	msgpack_pack_bin(&pk, payload.size);
	msgpack_pack_bin_body(&pk, payload.data, payload.size);
	*out_len = env.size;
	*out = (unsigned char *)msgpack_sbuffer_release(&env);
done:
	cJSON_Delete(req);
	cJSON_Delete(schema);
	msgpack_sbuffer_destroy(&payload);
	msgpack_sbuffer_destroy(&env);
	return rc;
}

/* Opens a result or error envelope; checks it names the expected schema. */
static int open_envelope(const unsigned char *b, size_t len, const char *id, int version,
			 msgpack_zone *zone, msgpack_object *payload)
{
	msgpack_object env;
	const msgpack_object *v;
	size_t off = 0;

	if (msgpack_unpack((const char *)b, len, &off, zone, &env) != MSGPACK_UNPACK_SUCCESS ||
	    off != len || env.type != MSGPACK_OBJECT_ARRAY || env.via.array.size != 3)
		return mr_error_set(MR_EVERIFY, "the unit returned a malformed envelope (%zu bytes)", len);
	v = env.via.array.ptr;
	if (v[0].type != MSGPACK_OBJECT_STR || v[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER ||
	    v[2].type != MSGPACK_OBJECT_BIN || v[0].via.str.size != strlen(id) ||
	    memcmp(v[0].via.str.ptr, id, strlen(id)) || v[1].via.u64 != (uint64_t)version)
		return mr_error_set(MR_EVERIFY, "the unit's result envelope does not name schema %s@%d",
				    id, version);
	off = 0;
	if (msgpack_unpack(v[2].via.bin.ptr, v[2].via.bin.size, &off, zone, payload) !=
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

static int unit_error(molt_unit *u, const char *function, const msgpack_object *p)
{
	cJSON *type = cJSON_Parse(error_type), *e = NULL;
	char path[128] = "";
	int rc;

	if ((rc = molt__schema_decode(type, p, &e, path, sizeof(path)))) {
		mr_error_wrap(MR_EVERIFY, "the unit's error envelope is not a valid molt.error");
		rc = MR_EVERIFY;
	} else {
		const char *cls = mr_json_str(e, "class"), *at = mr_json_str(e, "path");
		rc = mr_error_set(!strcmp(cls, "validation") ? MR_EINVALID : MR_ERROR,
				  "%s.%s: %s error %d%s%s: %s", mr_json_str(u->manifest, "name"),
				  function, cls, (int)cJSON_GetObjectItemCaseSensitive(e, "code")->valuedouble,
				  at ? " at " : "", at ? at : "", mr_json_str(e, "message"));
	}
	cJSON_Delete(type);
	cJSON_Delete(e);
	return rc;
}

int molt_unit_call_json(molt_unit *u, const char *function, const char *json_in,
			char **json_out)
{
	const cJSON *f = find_function(u, function), *o;
	unsigned char *env = NULL, *res = NULL;
	size_t env_len = 0, res_len = 0;
	cJSON *schema = NULL, *result = NULL;
	msgpack_zone zone;
	msgpack_object payload;
	char path[256] = "";
	int rc, is_error = 0;

	*json_out = NULL;
	msgpack_zone_init(&zone, 4096);
	if ((rc = molt_unit_encode_request(u, function, json_in, &env, &env_len)))
		goto done;
	o = cJSON_GetObjectItemCaseSensitive(f, "output");
	if ((rc = molt_unit_call_envelope(u, (uint32_t)cJSON_GetObjectItemCaseSensitive(f, "id")->valuedouble,
					  env, env_len, &res, &res_len, &is_error)))
		goto done;
	if (is_error) {
		if (!(rc = open_envelope(res, res_len, "molt.error", 1, &zone, &payload)))
			rc = unit_error(u, function, &payload);
		goto done;
	}
	if ((rc = open_envelope(res, res_len, mr_json_str(o, "id"),
				(int)cJSON_GetObjectItemCaseSensitive(o, "version")->valuedouble, &zone,
				&payload)) ||
	    (rc = schema_of(u, o, &schema)))
		goto done;
	if ((rc = molt__schema_decode(cJSON_GetObjectItemCaseSensitive(schema, "type"), &payload,
				      &result, path, sizeof(path)))) {
		mr_error_wrap(MR_EVERIFY, "%s result breaks its schema %s", function, mr_json_str(o, "id"));
		rc = MR_EVERIFY;
		goto done;
	}
	if (!(*json_out = cJSON_PrintUnformatted(result)))
		rc = mr_error_set(MR_ERROR, "out of memory");
done:
	msgpack_zone_destroy(&zone);
	free(env);
	free(res);
	cJSON_Delete(schema);
	cJSON_Delete(result);
	return rc;
}
