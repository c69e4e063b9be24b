/* Lockfiles (molt.lock) and loading by lockfile entry or manifest digest. */
#define _GNU_SOURCE
#include "internal.h"

#include "mr/digest.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mr/policy.h"
#include "mr/registry.h"

#include <curl/curl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define META_MAX (4u << 20)
#define SIG_MAX 4096u
#define KEYS_MAX (MR_POLICY_MAX_SIGS * 17)

typedef struct {
	char *name, *version, *target, *manifest, *artifact, *keys;
	uint64_t size;
} lock_entry;

struct molt_lockfile {
	char *path; /* for messages */
	lock_entry *e;
	size_t n, cap;
};

static void entry_clear(lock_entry *e)
{
	free(e->name);
	free(e->version);
	free(e->target);
	free(e->manifest);
	free(e->artifact);
	free(e->keys);
	memset(e, 0, sizeof(*e));
}

static void entry_view(molt_lock_entry *out, const lock_entry *e)
{
	out->name = e->name;
	out->version = e->version;
	out->target = e->target;
	out->manifest_digest = e->manifest;
	out->artifact_digest = e->artifact;
	out->artifact_size = e->size;
	out->keys = e->keys;
}

int molt_lockfile_new(molt_lockfile **out, const char *path)
{
	molt_lockfile *lf = calloc(1, sizeof(*lf));

	*out = NULL;
	if (!lf || !(lf->path = strdup(path ? path : "molt.lock"))) {
		free(lf);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	*out = lf;
	return 0;
}

void molt_lockfile_free(molt_lockfile *lf)
{
	size_t i;

	if (!lf)
		return;
	for (i = 0; i < lf->n; i++)
		entry_clear(&lf->e[i]);
	free(lf->e);
	free(lf->path);
	free(lf);
}

size_t molt_lockfile_count(const molt_lockfile *lf)
{
	return lf->n;
}

int molt_lockfile_get(molt_lock_entry *out, const molt_lockfile *lf, size_t i)
{
	if (i >= lf->n)
		return mr_error_set(MR_ENOTFOUND, "%s has %zu entries; there is no entry %zu",
				    lf->path, lf->n, i);
	entry_view(out, &lf->e[i]);
	return 0;
}

static lock_entry *find(const molt_lockfile *lf, const char *name, const char *target)
{
	size_t i;

	for (i = 0; i < lf->n; i++)
		if (!strcmp(lf->e[i].name, name) && !strcmp(lf->e[i].target, target))
			return &lf->e[i];
	return NULL;
}

int molt_lockfile_entry(molt_lock_entry *out, const molt_lockfile *lf, const char *name,
			const char *target)
{
	const lock_entry *e;
	size_t i;

	if (!target)
		target = molt_host_triple();
	if ((e = find(lf, name, target))) {
		entry_view(out, e);
		return 0;
	}
	for (i = 0; i < lf->n && strcmp(lf->e[i].name, name); i++)
		;
	if (i < lf->n)
		return mr_error_set(MR_ENOTFOUND,
				    "%s pins %s@%s for %s, not for %s; add that target (molt lock "
				    "%s@%s --target %s,...)",
				    lf->path, name, lf->e[i].version, lf->e[i].target, target, name,
				    lf->e[i].version, target);
	return mr_error_set(MR_ENOTFOUND,
			    "%s has no entry for %s (%s); pin it first (molt lock %s@VERSION)",
			    lf->path, name, target, name);
}

/* A new slot at the end (the caller fills it). */
static lock_entry *entry_push(molt_lockfile *lf)
{
	if (lf->n == MOLT_LOCK_MAX_ENTRIES) {
		mr_error_set(MR_EINVALID, "%s: more than %d entries", lf->path, MOLT_LOCK_MAX_ENTRIES);
		return NULL;
	}
	if (lf->n == lf->cap) {
		size_t cap = lf->cap ? 2 * lf->cap : 8;
		lock_entry *e = realloc(lf->e, cap * sizeof(*e));
		if (!e) {
			mr_error_set(MR_ERROR, "out of memory");
			return NULL;
		}
		lf->e = e;
		lf->cap = cap;
	}
	memset(&lf->e[lf->n], 0, sizeof(lf->e[0]));
	return &lf->e[lf->n++];
}

/* ---- reading ------------------------------------------------------------ */

static int bad(const mr_json *doc, const cJSON *node, int key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* MR_EINVALID as "file:line:col: <message>"; `key`: at the member's name. */
static int bad(const mr_json *doc, const cJSON *node, int key, const char *fmt, ...)
{
	char msg[512];
	int line = 0, col = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key)
		mr_json_key_pos(doc, node, &line, &col);
	else
		mr_json_pos(doc, node, &line, &col);
	return mr_error_set(MR_EINVALID, "%s:%d:%d: %s", mr_json_file(doc), line, col, msg);
}

static const char *kind(const cJSON *v)
{
	return cJSON_IsString(v)   ? "a string"
	       : cJSON_IsNumber(v) ? "a number"
	       : cJSON_IsArray(v)  ? "a list"
	       : cJSON_IsObject(v) ? "an object"
	       : cJSON_IsBool(v)   ? "a boolean"
				   : "null";
}

static int keyid_ok(const char *s)
{
	size_t n = strlen(s), i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return n && n <= 16;
}

/* One string member of an entry, copied into *dst; `what` says what it holds. */
static int entry_str(const mr_json *doc, const cJSON *m, const char *what, int digest,
		     char **dst)
{
	if (!cJSON_IsString(m) || !*m->valuestring || strlen(m->valuestring) > 255)
		return bad(doc, m, 0, "\"%s\": expected %s, found %s", m->string, what,
			   cJSON_IsString(m) ? "an empty or overlong string" : kind(m));
	if (digest && !mr_digest_valid(m->valuestring))
		return bad(doc, m, 0, "\"%s\": expected a digest \"sha256:<64 hex digits>\", "
				      "found \"%.80s\"", m->string, m->valuestring);
	if (!(*dst = strdup(m->valuestring)))
		return mr_error_set(MR_ERROR, "out of memory");
	return 0;
}

static int entry_keys(const mr_json *doc, const cJSON *m, char **dst)
{
	mr_buf b = MR_BUF_INIT;
	const cJSON *k;
	int rc = 0;

	if (!cJSON_IsArray(m) || !m->child || cJSON_GetArraySize(m) > MR_POLICY_MAX_SIGS)
		return bad(doc, m, 0, "\"keys\": expected a list of 1 to %d key ids, found %s",
			   MR_POLICY_MAX_SIGS, cJSON_IsArray(m) ? "another list" : kind(m));
	for (k = m->child; k && !rc; k = k->next)
		if (!cJSON_IsString(k) || !keyid_ok(k->valuestring))
			rc = bad(doc, k, 0, "\"keys\": expected a key id (up to 16 hex digits, "
					    "upper case), found %s", kind(k));
		else if (mr_buf_printf(&b, "%s%s", k == m->child ? "" : ",", k->valuestring))
			rc = mr_error_set(MR_ERROR, "out of memory");
	if (!rc)
		*dst = (char *)mr_buf_detach(&b, NULL);
	mr_buf_free(&b);
	return rc;
}

static int read_entry(molt_lockfile *lf, const mr_json *doc, const cJSON *o)
{
	static const char *const need[] = { "name", "version", "target", "manifest",
					    "artifact", "artifact_size", "keys" };
	lock_entry *e;
	const cJSON *m;
	size_t i;
	int rc = 0;

	if (!cJSON_IsObject(o))
		return bad(doc, o, 0, "a unit: expected an object {\"name\", \"version\", "
				      "\"target\", \"manifest\", \"artifact\", \"artifact_size\", "
				      "\"keys\"}, found %s", kind(o));
	if (!(e = entry_push(lf)))
		return MR_ERROR;
	for (m = o->child; m && !rc; m = m->next) {
		if (!strcmp(m->string, "name"))
			rc = e->name ? MR_EINVALID : entry_str(doc, m, "a unit name", 0, &e->name);
		else if (!strcmp(m->string, "version"))
			rc = e->version ? MR_EINVALID : entry_str(doc, m, "an exact version", 0, &e->version);
		else if (!strcmp(m->string, "target"))
			rc = e->target ? MR_EINVALID : entry_str(doc, m, "a target triple", 0, &e->target);
		else if (!strcmp(m->string, "manifest"))
			rc = e->manifest ? MR_EINVALID : entry_str(doc, m, "a digest", 1, &e->manifest);
		else if (!strcmp(m->string, "artifact"))
			rc = e->artifact ? MR_EINVALID : entry_str(doc, m, "a digest", 1, &e->artifact);
		else if (!strcmp(m->string, "keys"))
			rc = e->keys ? MR_EINVALID : entry_keys(doc, m, &e->keys);
		else if (!strcmp(m->string, "artifact_size")) {
			if (!mr_json_is_int(m, 0, 9e15))
				rc = bad(doc, m, 0, "\"artifact_size\": expected a byte count, found %s",
					 kind(m));
			else
				e->size = (uint64_t)m->valuedouble;
		} else {
			rc = bad(doc, m, 1, "unknown member \"%s\" in a unit (expected name, version, "
					    "target, manifest, artifact, artifact_size, keys)", m->string);
		}
		if (rc == MR_EINVALID && !strstr(mr_error_last(), mr_json_file(doc)))
			rc = bad(doc, m, 1, "\"%s\" appears twice", m->string);
	}
	if (rc)
		return rc;
	for (i = 0; i < sizeof(need) / sizeof(need[0]); i++)
		if (!cJSON_GetObjectItemCaseSensitive(o, need[i]))
			return bad(doc, o, 0, "a unit lacks \"%s\"; run molt lock again", need[i]);
	for (i = 0; i + 1 < lf->n; i++)
		if (!strcmp(lf->e[i].name, e->name) && !strcmp(lf->e[i].target, e->target))
			return bad(doc, o, 0, "a second entry for %s (%s); a lockfile pins one version "
					      "per name and target", e->name, e->target);
	return 0;
}

static int read_doc(molt_lockfile *lf, const mr_json *doc)
{
	const cJSON *root = mr_json_root(doc), *m, *format = NULL, *units = NULL;
	int rc;

	if (!cJSON_IsObject(root))
		return bad(doc, root, 0, "expected a lockfile {\"format\": %d, \"units\": [...]}, "
					 "found %s", MOLT_LOCK_FORMAT, kind(root));
	for (m = root->child; m; m = m->next)
		if (!strcmp(m->string, "format"))
			format = m;
		else if (!strcmp(m->string, "units"))
			units = m;
		else
			return bad(doc, m, 1, "unknown member \"%s\" (a lockfile has \"format\" and "
					      "\"units\")", m->string);
	if (!format)
		return bad(doc, root, 0, "no \"format\": this is not a molt lockfile");
	if (!mr_json_is_int(format, MOLT_LOCK_FORMAT, MOLT_LOCK_FORMAT)) {
		char found[64];
		if (cJSON_IsNumber(format))
			snprintf(found, sizeof(found), "%g", format->valuedouble);
		else if (cJSON_IsString(format))
			snprintf(found, sizeof(found), "\"%.40s\"", format->valuestring);
		else
			snprintf(found, sizeof(found), "%s", kind(format));
		return bad(doc, format, 0, "unknown lockfile format %s: this molt reads format %d; "
					   "use the molt that wrote it, or run molt lock again",
			   found, MOLT_LOCK_FORMAT);
	}
	if (!units || !cJSON_IsArray(units))
		return bad(doc, units ? units : root, 0, "\"units\": expected a list, found %s",
			   units ? kind(units) : "nothing");
	for (m = units->child; m; m = m->next)
		if ((rc = read_entry(lf, doc, m)))
			return rc;
	return 0;
}

int molt_lockfile_open(molt_lockfile **out, const char *path)
{
	molt_lockfile *lf = NULL;
	mr_json *doc = NULL;
	int rc;

	*out = NULL;
	if ((rc = mr_json_load(&doc, path, MOLT_LOCK_MAX_BYTES))) {
		if (rc == MR_ENOTFOUND)
			mr_error_set(rc, "lockfile %s not found; make one with molt lock NAME@VERSION...",
				     path);
		return rc;
	}
	if (!(rc = molt_lockfile_new(&lf, path)) && !(rc = read_doc(lf, doc)))
		*out = lf;
	else
		molt_lockfile_free(lf);
	mr_json_free(doc);
	return rc;
}

/* ---- writing ------------------------------------------------------------ */

static int entry_cmp(const void *a, const void *b)
{
	const lock_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	return c ? c : strcmp(x->target, y->target);
}

/* A JSON string, escaped by cJSON. */
static int put_str(mr_buf *b, const char *s)
{
	cJSON *j = cJSON_CreateString(s);
	char *t = j ? cJSON_PrintUnformatted(j) : NULL;
	int rc = t ? mr_buf_puts(b, t) : mr_error_set(MR_ERROR, "out of memory");

	free(t);
	cJSON_Delete(j);
	return rc;
}

int molt_lockfile_write(const molt_lockfile *lf, const char *path)
{
	lock_entry *sorted = NULL;
	mr_buf b = MR_BUF_INIT;
	const char *k, *comma;
	size_t i;
	int rc = 0;

	if (lf->n && !(sorted = malloc(lf->n * sizeof(*sorted))))
		return mr_error_set(MR_ERROR, "out of memory");
	if (lf->n)
		memcpy(sorted, lf->e, lf->n * sizeof(*sorted));
	qsort(sorted, lf->n, sizeof(*sorted), entry_cmp);
	rc = mr_buf_printf(&b, "{\n  \"format\": %d,\n  \"units\": [", MOLT_LOCK_FORMAT);
	for (i = 0; i < lf->n && !rc; i++) {
		const lock_entry *e = &sorted[i];
		rc = mr_buf_puts(&b, i ? ",\n    {\n      \"name\": " : "\n    {\n      \"name\": ");
		rc = rc ? rc : put_str(&b, e->name);
		rc = rc ? rc : mr_buf_puts(&b, ",\n      \"version\": ");
		rc = rc ? rc : put_str(&b, e->version);
		rc = rc ? rc : mr_buf_puts(&b, ",\n      \"target\": ");
		rc = rc ? rc : put_str(&b, e->target);
		rc = rc ? rc : mr_buf_printf(&b, ",\n      \"manifest\": \"%s\",\n      \"artifact\": "
						  "\"%s\",\n      \"artifact_size\": %llu,\n      "
						  "\"keys\": [",
					     e->manifest, e->artifact, (unsigned long long)e->size);
		for (k = e->keys; !rc && k && *k; k = comma ? comma + 1 : k + strlen(k)) {
			comma = strchr(k, ',');
			rc = mr_buf_printf(&b, "%s\"%.*s\"", k == e->keys ? "" : ", ",
					   (int)(comma ? (size_t)(comma - k) : strlen(k)), k);
		}
		rc = rc ? rc : mr_buf_puts(&b, "]\n    }");
	}
	if (!rc)
		rc = mr_buf_puts(&b, lf->n ? "\n  ]\n}\n" : "]\n}\n");
	if (rc)
		rc = mr_error_set(MR_ERROR, "out of memory");
	else if ((rc = mr_fs_write_atomic(path, b.data, b.len, 0644)))
		mr_error_wrap(rc, "writing lockfile");
	mr_buf_free(&b);
	free(sorted);
	return rc;
}

/* ---- the registry's view of an entry ------------------------------------- */

typedef struct {
	mr_buf *buf;
	size_t cap;
	int over;
} sink;

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	sink *s = ud;

	if (s->buf->len + size * n > s->cap) {
		s->over = 1;
		return 0;
	}
	return mr_buf_put(s->buf, p, size * n) ? 0 : size * n;
}

/* GETs src+rel (at most `cap` bytes) into `out`. */
static int get(const char *src, const char *rel, size_t cap, mr_buf *out)
{
	char err[CURL_ERROR_SIZE] = "", *url = NULL;
	CURL *c = curl_easy_init();
	sink s = { out, cap, 0 };
	CURLcode cc;
	long status = 0;
	int rc = 0;

	out->len = 0;
	if (!c || asprintf(&url, "%s%s", src, rel) < 0) {
		curl_easy_cleanup(c);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_WRITE_ERROR && s.over)
		rc = mr_error_set(MR_EVERIFY, "%s: more than %zu bytes; refusing the rest", url, cap);
	else if (cc == CURLE_FILE_COULDNT_READ_FILE || status == 404)
		rc = mr_error_set(MR_ENOTFOUND, "%s: not found", url);
	else if (cc != CURLE_OK)
		rc = mr_error_set(MR_EENV, "fetching %s: %s", url, *err ? err : curl_easy_strerror(cc));
	else if (status >= 400)
		rc = mr_error_set(MR_EENV, "fetching %s: HTTP status %ld", url, status);
	free(url);
	curl_easy_cleanup(c);
	return rc;
}

/* A blob by digest: from the cache when its bytes hash right, else from
 * the first source whose bytes do. */
static int get_blob(molt_runtime *rt, const char *digest, mr_buf *out)
{
	char have[MR_DIGEST_STR_LEN + 1], rel[128], *path = mr_blob_path(rt->cache, digest);
	mr_buf why = MR_BUF_INIT;
	size_t i;
	int rc = MR_ENOTFOUND, worst = 0;

	if (!path)
		return mr_error_set(MR_ERROR, "out of memory");
	out->len = 0;
	if (!mr_fs_read(out, path, META_MAX)) {
		mr_digest_buf(have, out->data, out->len);
		if (!strcmp(have, digest)) {
			free(path);
			return 0;
		}
	}
	free(path);
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", digest + 7);
	for (i = 0; i < rt->nsrc; i++) {
		if (!(rc = get(rt->src[i], rel, META_MAX, out))) {
			mr_digest_buf(have, out->data, out->len);
			if (!strcmp(have, digest))
				break;
			rc = mr_error_set(MR_EVERIFY, "%s%s: digest mismatch: expected %s, got %s; "
						      "the copy is corrupt or was tampered with",
					  rt->src[i], rel, digest, have);
		}
		mr_buf_printf(&why, "%s%s", why.len ? "; " : "", mr_error_last());
		if (!worst || rc == MR_EVERIFY)
			worst = rc;
	}
	if (rc)
		rc = mr_error_set(worst, "%s", why.data ? (const char *)why.data : "no source");
	mr_buf_free(&why);
	return rc;
}

/* What the registry's index says of name@version for target: the manifest
 * digest, its signature digests and the yanked flag. This reads the
 * snapshot and index without checking the snapshot's signature: callers
 * use it only next to molt__fetch, which checks everything, to compare
 * digests before a download, to learn of a yank and to find the signatures
 * whose keys they then verify themselves. */
typedef struct {
	char manifest[MR_DIGEST_STR_LEN + 1];
	char sigs[MR_POLICY_MAX_SIGS][MR_DIGEST_STR_LEN + 1];
	size_t nsigs;
	int yanked;
} index_entry;

static int index_entry_get(molt_runtime *rt, const char *name, const char *version,
			   const char *target, index_entry *out)
{
	mr_buf b = MR_BUF_INIT;
	cJSON *snap = NULL, *index = NULL;
	const cJSON *e, *sig;
	char rel[300], have[MR_DIGEST_STR_LEN + 1];
	size_t i;
	int rc = MR_ENOTFOUND;

	memset(out, 0, sizeof(*out));
	snprintf(rel, sizeof(rel), "index/%s.json", name);
	for (i = 0; i < rt->nsrc && rc; i++) {
		cJSON_Delete(snap);
		cJSON_Delete(index);
		snap = index = NULL;
		if ((rc = get(rt->src[i], "snapshot.json", META_MAX, &b)))
			continue;
		if (!(snap = cJSON_ParseWithLength((const char *)b.data, b.len))) {
			rc = mr_error_set(MR_EVERIFY, "%ssnapshot.json: not JSON", rt->src[i]);
			continue;
		}
		e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(snap, "indexes"),
						     name);
		if (!mr_json_str(e, "digest")) {
			rc = mr_error_set(MR_ENOTFOUND, "%s: no unit named '%s' in this registry",
					  rt->src[i], name);
			continue;
		}
		if ((rc = get(rt->src[i], rel, META_MAX, &b)))
			continue;
		mr_digest_buf(have, b.data, b.len);
		if (strcmp(have, mr_json_str(e, "digest")) ||
		    !(index = cJSON_ParseWithLength((const char *)b.data, b.len)))
			rc = mr_error_set(MR_EVERIFY, "%s%s does not match its snapshot", rt->src[i], rel);
	}
	if (rc)
		goto done;
	e = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(index, "versions"), version);
	if (!(e = cJSON_GetObjectItemCaseSensitive(e, target))) {
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s has no build for %s in %s", name, version, target,
				  rt->base);
		goto done;
	}
	if (!mr_json_str(e, "manifest") || !mr_digest_valid(mr_json_str(e, "manifest"))) {
		rc = mr_error_set(MR_EVERIFY, "%s%s: the entry for %s/%s has no manifest digest",
				  rt->base, rel, version, target);
		goto done;
	}
	snprintf(out->manifest, sizeof(out->manifest), "%s", mr_json_str(e, "manifest"));
	out->yanked = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "yanked"));
	sig = cJSON_GetObjectItemCaseSensitive(e, "signatures");
	for (sig = sig ? sig->child : cJSON_GetObjectItemCaseSensitive(e, "signature");
	     sig && out->nsigs < MR_POLICY_MAX_SIGS; sig = sig->next)
		if (cJSON_IsString(sig) && mr_digest_valid(sig->valuestring))
			snprintf(out->sigs[out->nsigs++], sizeof(out->sigs[0]), "%s", sig->valuestring);
done:
	cJSON_Delete(snap);
	cJSON_Delete(index);
	mr_buf_free(&b);
	return rc;
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The ids of the keys whose signatures over the manifest `md` (in the
 * cache since molt__fetch) verify under the runtime's policy, sorted and
 * comma-separated into `out`. */
static int signers_of(molt_runtime *rt, const char *name, const char *version,
		      const char *target, const char *md, const index_entry *ie, char *out,
		      size_t n)
{
	mr_buf m = MR_BUF_INIT, got = MR_BUF_INIT, sigs[MR_POLICY_MAX_SIGS];
	char comment[300], *where[MR_POLICY_MAX_SIGS], *ids[MR_POLICY_MAX_SIGS], *save = NULL, *k;
	size_t i, nids = 0;
	int rc;

	memset(sigs, 0, sizeof(sigs));
	memset(where, 0, sizeof(where));
	*out = '\0';
	rc = get_blob(rt, md, &m);
	for (i = 0; i < ie->nsigs && !rc; i++)
		if (!(rc = get_blob(rt, ie->sigs[i], &sigs[i])) &&
		    asprintf(&where[i], "%sblobs/sha256/%s", rt->base, ie->sigs[i] + 7) < 0)
			rc = mr_error_set(MR_ERROR, "out of memory");
	mr_unit_comment(comment, sizeof(comment), name, version, target, md);
	if (!rc && (rc = mr_policy_verify(rt->policy, name, sigs, (const char *const *)where,
					  ie->nsigs, m.data, m.len, comment, time(NULL), &got)))
		mr_error_wrap(rc, "%s@%s (%s)", name, version, target);
	for (k = got.data ? strtok_r((char *)got.data, ",", &save) : NULL;
	     !rc && k && nids < MR_POLICY_MAX_SIGS; k = strtok_r(NULL, ",", &save))
		ids[nids++] = k;
	qsort(ids, nids, sizeof(ids[0]), id_cmp);
	for (i = 0; !rc && i < nids; i++)
		snprintf(out + strlen(out), n - strlen(out), "%s%s", i ? "," : "", ids[i]);
	if (!rc && !nids)
		rc = mr_error_set(MR_EVERIFY, "%s@%s (%s): no signing key counted", name, version,
				  target);
	for (i = 0; i < MR_POLICY_MAX_SIGS; i++) {
		mr_buf_free(&sigs[i]);
		free(where[i]);
	}
	mr_buf_free(&m);
	mr_buf_free(&got);
	return rc;
}

static char *dup_artifact(const cJSON *manifest, uint64_t *size)
{
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(manifest, "artifact");

	*size = (uint64_t)cJSON_GetObjectItemCaseSensitive(a, "size")->valuedouble;
	return strdup(mr_json_str(a, "digest"));
}

int molt_lockfile_add(molt_lockfile *lf, molt_runtime *rt, const char *name,
		      const char *version, const char *target)
{
	char md[72], keys[KEYS_MAX];
	molt__fetched f;
	index_entry ie;
	lock_entry e, *slot;
	int rc;

	memset(&e, 0, sizeof(e));
	if (!target)
		target = molt_host_triple();
	if ((rc = molt__fetch(rt, name, version, target, &f, md)))
		return rc;
	if ((rc = index_entry_get(rt, name, version, target, &ie)))
		goto done;
	if (strcmp(ie.manifest, md)) {
		rc = mr_error_set(MR_EVERIFY, "%s@%s (%s): the registry changed while it was "
					      "being locked (manifest %s, then %s); run molt lock again",
				  name, version, target, md, ie.manifest);
		goto done;
	}
	if ((rc = signers_of(rt, name, version, target, md, &ie, keys, sizeof(keys))))
		goto done;
	if (!(e.name = strdup(name)) || !(e.version = strdup(version)) ||
	    !(e.target = strdup(target)) || !(e.manifest = strdup(md)) ||
	    !(e.artifact = dup_artifact(f.manifest, &e.size)) || !(e.keys = strdup(keys))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((slot = find(lf, name, target)))
		entry_clear(slot);
	else if (!(slot = entry_push(lf))) {
		rc = MR_EINVALID;
		goto done;
	}
	*slot = e;
	memset(&e, 0, sizeof(e));
done:
	entry_clear(&e);
	cJSON_Delete(f.manifest);
	free(f.artifact);
	return rc;
}

/* ---- fetching and loading what a lockfile pins --------------------------- */

static int disagree(const molt_lockfile *lf, const lock_entry *e, const char *field,
		    const char *locked, const char *registry)
{
	return mr_error_set(MR_EVERIFY,
			    "%s@%s (%s): %s pins %s %s, but the registry has %s; refusing it. If "
			    "the change is intended, run molt lock %s@%s again (then review and "
			    "commit %s); if not, the registry was changed or tampered with",
			    e->name, e->version, e->target, lf->path, field, locked, registry,
			    e->name, e->version, lf->path);
}

/* molt_fetch_locked, keeping what the fetch leaves for a load. */
static int fetch_locked(molt_runtime *rt, const molt_lockfile *lf, const char *name,
			const char *target, molt__fetched *f, char md[72], int *yanked)
{
	molt_runtime pinned = *rt; /* a copy: rt stays as the caller made it */
	const lock_entry *e;
	molt_lock_entry view;
	index_entry ie;
	char have[32];
	uint64_t size;
	char *art;
	int rc;

	memset(f, 0, sizeof(*f));
	if (yanked)
		*yanked = 0;
	if (!target)
		target = molt_host_triple();
	if ((rc = molt_lockfile_entry(&view, lf, name, target)))
		return rc;
	e = find(lf, name, target);
	/* Before any download: does the index still name the locked manifest? */
	if (!index_entry_get(rt, e->name, e->version, e->target, &ie)) {
		if (strcmp(ie.manifest, e->manifest))
			return disagree(lf, e, "manifest", e->manifest, ie.manifest);
		if (yanked)
			*yanked = ie.yanked;
	}
	pinned.allow_yanked = 1;
	if ((rc = molt__fetch(&pinned, e->name, e->version, e->target, f, md)))
		return rc;
	if (strcmp(md, e->manifest)) {
		rc = disagree(lf, e, "manifest", e->manifest, md);
	} else if (!(art = dup_artifact(f->manifest, &size))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
	} else {
		if (strcmp(art, e->artifact))
			rc = disagree(lf, e, "artifact", e->artifact, art);
		else if (size != e->size) {
			snprintf(have, sizeof(have), "%llu", (unsigned long long)size);
			char locked[32];
			snprintf(locked, sizeof(locked), "%llu", (unsigned long long)e->size);
			rc = disagree(lf, e, "artifact_size", locked, have);
		}
		free(art);
	}
	if (rc) {
		cJSON_Delete(f->manifest);
		free(f->artifact);
		memset(f, 0, sizeof(*f));
	}
	return rc;
}

int molt_fetch_locked(molt_runtime *rt, const molt_lockfile *lf, const char *name,
		      const char *target, char manifest_digest[72], int *yanked)
{
	molt__fetched f;
	char md[72];
	int rc = fetch_locked(rt, lf, name, target, &f, md, yanked);

	if (!rc && manifest_digest)
		snprintf(manifest_digest, 72, "%s", md);
	cJSON_Delete(f.manifest);
	free(f.artifact);
	return rc;
}

int molt_unit_load_locked(molt_unit **out, molt_runtime *rt, const molt_lockfile *lf,
			  const char *name)
{
	molt__fetched f;
	char md[72];
	int rc;

	*out = NULL;
	if ((rc = fetch_locked(rt, lf, name, NULL, &f, md, NULL)))
		return rc;
	return molt__unit_load_fetched(out, rt, &f, md);
}

int molt_unit_load_digest(molt_unit **out, molt_runtime *rt, const char *manifest_digest)
{
	const char *host = molt_host_triple(), *name, *version, *target;
	mr_buf b = MR_BUF_INIT;
	cJSON *m = NULL;
	molt__fetched f;
	char md[72];
	int rc;

	*out = NULL;
	memset(&f, 0, sizeof(f));
	if (!manifest_digest || !mr_digest_valid(manifest_digest))
		return mr_error_set(MR_EINVALID, "'%s': expected a manifest digest "
						 "\"sha256:<64 hex digits>\"",
				    manifest_digest ? manifest_digest : "(null)");
	if ((rc = get_blob(rt, manifest_digest, &b))) {
		mr_error_wrap(rc, "no source has manifest %s (is it from this registry?)",
			      manifest_digest);
		goto done;
	}
	if (!(m = cJSON_ParseWithLength((const char *)b.data, b.len)) ||
	    (rc = mr_manifest_check(m, NULL, NULL, NULL))) {
		rc = rc ? mr_error_wrap(rc, "manifest %s", manifest_digest)
			: mr_error_set(MR_EVERIFY, "manifest %s is not JSON", manifest_digest);
		goto done;
	}
	name = mr_json_str(m, "name");
	version = mr_json_str(m, "version");
	target = mr_json_str(m, "target");
	if (strcmp(target, host)) {
		rc = mr_error_set(MR_EVERIFY, "manifest %s is %s@%s for %s; this host loads %s units "
					      "(ask for the digest of the %s build)",
				  manifest_digest, name, version, target, host, host);
		goto done;
	}
	/* The blob only says what to ask for; trust comes from the signed path. */
	if ((rc = molt__fetch(rt, name, version, host, &f, md)))
		goto done;
	if (strcmp(md, manifest_digest)) {
		rc = mr_error_set(MR_EVERIFY, "%s@%s (%s): the registry's signed index names manifest "
					      "%s, not the requested %s; refusing it (the digest is "
					      "of another publish of this version, or was never signed)",
				  name, version, host, md, manifest_digest);
		goto done;
	}
	rc = molt__unit_load_fetched(out, rt, &f, md);
done:
	if (rc) {
		cJSON_Delete(f.manifest);
		free(f.artifact);
	}
	cJSON_Delete(m);
	mr_buf_free(&b);
	return rc;
}
