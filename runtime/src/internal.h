/* libmolt internals shared between its files. */
#ifndef MOLT_INTERNAL_H
#define MOLT_INTERNAL_H

#include "molt/molt.h"

#include "mr/buf.h"
#include "mr/minisign.h"
#include "mr/policy.h"

#include <cjson/cJSON.h>
#include <msgpack.h>
#include <time.h>

#define MOLT__MAX_MIRRORS 8

struct molt_runtime {
	char *base;        /* registry base URL, ending in '/'; names its rollback state */
	char *src[1 + MOLT__MAX_MIRRORS]; /* where files come from: base, then mirrors */
	size_t nsrc;
	char *cache;       /* cache folder */
	mr_policy *policy; /* from molt_options.policy, or from trusted_keys */
	int allow_yanked;
	molt_progress_cb progress;
	void *progress_payload;
	void (*depends)(const char *unit, const char *dependency, void *payload);
};

/* What a verified fetch leaves behind. */
typedef struct {
	cJSON *manifest;   /* the signed manifest */
	char *artifact;    /* path of the verified artifact in the cache */
} molt__fetched;

/* Fetches and verifies a unit (fetch.c). */
int molt__fetch(molt_runtime *rt, const char *name, const char *version,
		const char *target, molt__fetched *out, char manifest_digest[72]);

/* Loads a unit molt__fetch returned (load.c): checks target, ABI, schema
 * digests and run-time depends, then dlopens a private copy. Takes
 * f->manifest, frees f->artifact. */
int molt__unit_load_fetched(molt_unit **out, molt_runtime *rt, molt__fetched *f,
			    const char *manifest_digest);

/* Reads a verified schema blob from the cache into a parsed type (the
 * schema's "type" member lives inside *doc; caller deletes *doc). */
int molt__schema_get(molt_runtime *rt, const cJSON *manifest, const char *id,
		     int version, cJSON **doc);

/* JSON value -> MsgPack, validated against `type` (schema.c). `path` is a
 * scratch buffer naming where a problem is. */
int molt__schema_encode(const cJSON *type, const cJSON *v, msgpack_packer *pk,
			char *path, size_t pathlen);

/* The length of the MsgPack value at the start of p[0..n), or 0 when there
 * is no complete one or a length or count in it claims more than the n
 * bytes hold (load.c). Check `== n` before msgpack_unpack, which reserves
 * room for an array's or map's claimed count before reading any of it:
 * without this, five bytes could make it allocate gigabytes. */
size_t molt__msgpack_size(const unsigned char *p, size_t n);

/* MsgPack value -> JSON, validated against `type`. */
int molt__schema_decode(const cJSON *type, const msgpack_object *o, cJSON **out,
			char *path, size_t pathlen);

#endif
