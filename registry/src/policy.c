/* The trust policy: parsing keys/policy.json and counting signatures by
 * distinct keys against a threshold. */
#define _GNU_SOURCE
#include "mr/policy.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLICY_MAX (1u << 20)
#define MAX_PATTERNS 64
#define PATTERN_MAX 128

typedef struct {
	mr_pubkey pk;
	char hex[17];
	char *names[MAX_PATTERNS]; /* unit-name globs it may sign */
	size_t nnames;
	time_t expires; /* 0: never */
	char expires_str[32];
	int revoked;
	int snapshot; /* may sign the snapshot */
} pkey;

typedef struct {
	char *pattern;
	unsigned threshold;
} rule;

struct mr_policy {
	pkey keys[MR_POLICY_MAX_KEYS];
	size_t nkeys;
	rule rules[MAX_PATTERNS];
	size_t nrules;
	unsigned snapshot_threshold;
};

int mr_glob_match(const char *p, const char *s)
{
	if (!*p)
		return !*s;
	if (*p == '*') {
		for (;; s++) {
			if (mr_glob_match(p + 1, s))
				return 1;
			if (!*s)
				return 0;
		}
	}
	return *s && (*p == '?' || *p == *s) && mr_glob_match(p + 1, s + 1);
}

int mr_utc_parse(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;

	memset(&tm, 0, sizeof(tm));
	if (!s || !(end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) || *end)
		return mr_error_set(MR_EINVALID, "'%s' is not a UTC time like 2027-01-31T00:00:00Z",
				    s ? s : "(null)");
	*out = timegm(&tm);
	return 0;
}

void mr_policy_free(mr_policy *p)
{
	size_t i, j;

	if (!p)
		return;
	for (i = 0; i < p->nkeys; i++)
		for (j = 0; j < p->keys[i].nnames; j++)
			free(p->keys[i].names[j]);
	for (i = 0; i < p->nrules; i++)
		free(p->rules[i].pattern);
	free(p);
}

static int perr(const mr_json *doc, const cJSON *node, int key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* "file:line:col: message" for a policy problem at `node`. */
static int perr(const mr_json *doc, const cJSON *node, int key, const char *fmt, ...)
{
	char msg[512];
	int line = 0, col = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (node && key)
		mr_json_key_pos(doc, node, &line, &col);
	else if (node)
		mr_json_pos(doc, node, &line, &col);
	return mr_error_set(MR_EINVALID, "%s:%d:%d: %s", mr_json_file(doc), line, col, msg);
}

static int pattern_ok(const char *s)
{
	size_t n = strlen(s), i;

	if (!n || n >= PATTERN_MAX)
		return 0;
	for (i = 0; i < n; i++)
		if (!(s[i] == '*' || s[i] == '?' || s[i] == '-' || s[i] == '_' || s[i] == '.' ||
		      (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

static pkey *find_key(mr_policy *p, const char *hex)
{
	size_t i;

	for (i = 0; i < p->nkeys; i++)
		if (!strcmp(p->keys[i].hex, hex))
			return &p->keys[i];
	return NULL;
}

static int check_members(const mr_json *doc, const cJSON *obj, const char *const *allowed)
{
	const cJSON *m;
	size_t i;

	for (m = obj->child; m; m = m->next) {
		for (i = 0; allowed[i] && strcmp(allowed[i], m->string); i++)
			;
		if (!allowed[i])
			return perr(doc, m, 1, "unknown member \"%s\"", m->string);
	}
	return 0;
}

static int parse_key(mr_policy *p, const mr_json *doc, const cJSON *k, const char *dir)
{
	static const char *const members[] = { "id", "pub", "names", "expires", "revoked",
					       "comment", NULL };
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(k, "id");
	const cJSON *pub = cJSON_GetObjectItemCaseSensitive(k, "pub");
	const cJSON *names = cJSON_GetObjectItemCaseSensitive(k, "names");
	const cJSON *exp = cJSON_GetObjectItemCaseSensitive(k, "expires");
	const cJSON *rev = cJSON_GetObjectItemCaseSensitive(k, "revoked");
	const cJSON *n;
	pkey *key;
	char *path;
	int rc;

	if (!cJSON_IsObject(k))
		return perr(doc, k, 0, "expected a key object {\"id\", \"pub\", \"names\"}");
	if ((rc = check_members(doc, k, members)))
		return rc;
	if (!cJSON_IsString(id) || !cJSON_IsString(pub))
		return perr(doc, k, 0, "a key needs \"id\" (as minisign prints it) and \"pub\" (its .pub file)");
	if (p->nkeys == MR_POLICY_MAX_KEYS)
		return perr(doc, k, 0, "more than %d keys", MR_POLICY_MAX_KEYS);
	if (find_key(p, id->valuestring))
		return perr(doc, id, 0, "key %s is listed twice", id->valuestring);
	key = &p->keys[p->nkeys];
	memset(key, 0, sizeof(*key));
	if (!(path = pub->valuestring[0] == '/' ? strdup(pub->valuestring)
						: mr_fs_join(dir, pub->valuestring)))
		return mr_error_set(MR_ERROR, "out of memory");
	rc = mr_pubkey_load(&key->pk, path);
	free(path);
	if (rc)
		return perr(doc, pub, 0, "%s", mr_error_last());
	mr_keyid_hex(key->hex, key->pk.id);
	if (strcmp(key->hex, id->valuestring))
		return perr(doc, id, 0, "id is %s, but %s holds key %s", id->valuestring,
			    pub->valuestring, key->hex);
	p->nkeys++; /* from here on, mr_policy_free frees its names */
	if (names && !cJSON_IsArray(names))
		return perr(doc, names, 0, "\"names\" must be a list of unit-name globs, e.g. [\"*\"]");
	for (n = names ? names->child : NULL; n; n = n->next) {
		if (!cJSON_IsString(n) || !pattern_ok(n->valuestring))
			return perr(doc, n, 0, "expected a unit-name glob (a-z 0-9 - _ . * ?), found %s",
				    cJSON_IsString(n) ? n->valuestring : "a non-string");
		if (key->nnames == MAX_PATTERNS)
			return perr(doc, n, 0, "more than %d names", MAX_PATTERNS);
		if (!(key->names[key->nnames++] = strdup(n->valuestring)))
			return mr_error_set(MR_ERROR, "out of memory");
	}
	if (exp) {
		if (!cJSON_IsString(exp) || mr_utc_parse(exp->valuestring, &key->expires))
			return perr(doc, exp, 0, "\"expires\" must be a UTC time like 2027-01-31T00:00:00Z");
		snprintf(key->expires_str, sizeof(key->expires_str), "%s", exp->valuestring);
	}
	if (rev && !cJSON_IsBool(rev))
		return perr(doc, rev, 0, "\"revoked\" must be true or false");
	key->revoked = cJSON_IsTrue(rev);
	return 0;
}

static int parse_threshold(const mr_json *doc, const cJSON *v, unsigned nkeys, unsigned *out)
{
	if (!mr_json_is_int(v, 1, MR_POLICY_MAX_KEYS))
		return perr(doc, v, 0, "a threshold must be an integer from 1 to %d", MR_POLICY_MAX_KEYS);
	if ((unsigned)v->valuedouble > nkeys)
		return perr(doc, v, 0, "threshold %d can never be met: the policy has %u usable key(s)",
			    v->valueint, nkeys);
	*out = (unsigned)v->valuedouble;
	return 0;
}

static int parse_policy(mr_policy *p, const mr_json *doc, const char *dir)
{
	static const char *const members[] = { "format", "keys", "thresholds", "snapshot",
					       "comment", NULL };
	static const char *const snap_members[] = { "keys", "threshold", NULL };
	const cJSON *root = mr_json_root(doc), *keys, *th, *snap, *k;
	int rc;

	if (!cJSON_IsObject(root))
		return perr(doc, root, 0, "expected a policy object");
	if ((rc = check_members(doc, root, members)))
		return rc;
	if (!mr_json_is_int(cJSON_GetObjectItemCaseSensitive(root, "format"), 1, 1))
		return perr(doc, root, 0, "expected \"format\": 1");
	keys = cJSON_GetObjectItemCaseSensitive(root, "keys");
	if (!cJSON_IsArray(keys) || !keys->child)
		return perr(doc, keys ? keys : root, 0, "\"keys\" must be a non-empty list of keys");
	for (k = keys->child; k; k = k->next)
		if ((rc = parse_key(p, doc, k, dir)))
			return rc;
	th = cJSON_GetObjectItemCaseSensitive(root, "thresholds");
	if (th && !cJSON_IsObject(th))
		return perr(doc, th, 0, "\"thresholds\" must map unit-name globs to thresholds, e.g. {\"*\": 1}");
	for (k = th ? th->child : NULL; k; k = k->next) {
		if (!pattern_ok(k->string))
			return perr(doc, k, 1, "\"%s\" is not a unit-name glob", k->string);
		if (p->nrules == MAX_PATTERNS)
			return perr(doc, k, 1, "more than %d thresholds", MAX_PATTERNS);
		if ((rc = parse_threshold(doc, k, (unsigned)p->nkeys, &p->rules[p->nrules].threshold)))
			return rc;
		if (!(p->rules[p->nrules++].pattern = strdup(k->string)))
			return mr_error_set(MR_ERROR, "out of memory");
	}
	snap = cJSON_GetObjectItemCaseSensitive(root, "snapshot");
	if (!cJSON_IsObject(snap))
		return perr(doc, snap ? snap : root, 0,
			    "\"snapshot\" must say which keys sign the snapshot: {\"keys\": [ID...], \"threshold\": 1}");
	if ((rc = check_members(doc, snap, snap_members)))
		return rc;
	keys = cJSON_GetObjectItemCaseSensitive(snap, "keys");
	if (!cJSON_IsArray(keys) || !keys->child)
		return perr(doc, keys ? keys : snap, 0, "\"snapshot\".\"keys\" must list key ids");
	for (k = keys->child; k; k = k->next) {
		pkey *key = cJSON_IsString(k) ? find_key(p, k->valuestring) : NULL;
		if (!key)
			return perr(doc, k, 0, "%s is not a key listed under \"keys\"",
				    cJSON_IsString(k) ? k->valuestring : "this");
		key->snapshot = 1;
	}
	p->snapshot_threshold = 1;
	k = cJSON_GetObjectItemCaseSensitive(snap, "threshold");
	if (k && (rc = parse_threshold(doc, k, (unsigned)cJSON_GetArraySize(keys),
				       &p->snapshot_threshold)))
		return rc;
	return 0;
}

int mr_policy_parse(mr_policy **out, const char *file, const char *text, size_t len,
		    const char *dir)
{
	mr_policy *p = calloc(1, sizeof(*p));
	mr_json *doc = NULL;
	int rc;

	*out = NULL;
	if (!p)
		return mr_error_set(MR_ERROR, "out of memory");
	if (!(rc = mr_json_parse(&doc, file, text, len)))
		rc = parse_policy(p, doc, dir ? dir : ".");
	mr_json_free(doc);
	if (rc)
		mr_policy_free(p);
	else
		*out = p;
	return rc;
}

int mr_policy_load(mr_policy **out, const char *path)
{
	mr_buf b = MR_BUF_INIT;
	char *dir = strdup(path), *slash;
	int rc;

	*out = NULL;
	if (!dir)
		return mr_error_set(MR_ERROR, "out of memory");
	slash = strrchr(dir, '/');
	if (slash)
		*slash = '\0';
	if (!(rc = mr_fs_read(&b, path, POLICY_MAX)))
		rc = mr_policy_parse(out, path, (const char *)b.data, b.len, slash ? dir : ".");
	else
		rc = mr_error_wrap(rc, "trust policy");
	mr_buf_free(&b);
	free(dir);
	return rc;
}

int mr_policy_from_keys(mr_policy **out, const mr_pubkey *keys, size_t n)
{
	mr_policy *p = calloc(1, sizeof(*p));
	size_t i;

	*out = NULL;
	if (!p)
		return mr_error_set(MR_ERROR, "out of memory");
	if (n > MR_POLICY_MAX_KEYS) {
		free(p);
		return mr_error_set(MR_EINVALID, "more than %d trusted keys", MR_POLICY_MAX_KEYS);
	}
	for (i = 0; i < n; i++) {
		pkey *k = &p->keys[p->nkeys++];
		k->pk = keys[i];
		mr_keyid_hex(k->hex, k->pk.id);
		k->snapshot = 1;
		if (!(k->names[k->nnames++] = strdup("*"))) {
			mr_policy_free(p);
			return mr_error_set(MR_ERROR, "out of memory");
		}
	}
	p->snapshot_threshold = 1;
	*out = p;
	return 0;
}

unsigned mr_policy_threshold(const mr_policy *p, const char *name)
{
	unsigned t = 1;
	size_t i;

	if (!name)
		return p->snapshot_threshold;
	/* The strictest matching rule wins, so rule order cannot weaken one. */
	for (i = 0; i < p->nrules; i++)
		if (mr_glob_match(p->rules[i].pattern, name) && p->rules[i].threshold > t)
			t = p->rules[i].threshold;
	return t;
}

static int may_sign(const pkey *k, const char *name)
{
	size_t i;

	if (!name)
		return k->snapshot;
	for (i = 0; i < k->nnames; i++)
		if (mr_glob_match(k->names[i], name))
			return 1;
	return 0;
}

int mr_policy_snapshot_keys(const mr_policy *p, mr_buf *out)
{
	const char *ids[MR_POLICY_MAX_KEYS];
	size_t i, j, n = 0;
	int rc = 0;

	for (i = 0; i < p->nkeys; i++)
		if (p->keys[i].snapshot) {
			for (j = n; j > 0 && strcmp(ids[j - 1], p->keys[i].hex) > 0; j--)
				ids[j] = ids[j - 1];
			ids[j] = p->keys[i].hex;
			n++;
		}
	for (i = 0; i < n && !rc; i++)
		rc = mr_buf_printf(out, "%s%s", i ? "," : "", ids[i]);
	return rc ? mr_error_set(MR_ERROR, "out of memory") : 0;
}

int mr_policy_verify(const mr_policy *p, const char *name, const mr_buf *sigs,
		     const char *const *where, size_t nsigs, const void *data, size_t len,
		     const char *want_comment, time_t now, mr_buf *signers)
{
	const pkey *counted[MR_POLICY_MAX_SIGS];
	mr_buf why = MR_BUF_INIT, who = MR_BUF_INIT;
	unsigned need = mr_policy_threshold(p, name);
	size_t ncounted = 0, i, j;
	const char *what = name ? name : "the snapshot";
	int rc = 0;

	if (nsigs > MR_POLICY_MAX_SIGS)
		nsigs = MR_POLICY_MAX_SIGS;
	for (i = 0; i < nsigs; i++) {
		const pkey *k = NULL;
		char *comment = NULL;
		for (j = 0; j < p->nkeys && !k; j++)
			if (!mr_verify(&p->keys[j].pk, 1, (const char *)sigs[i].data, sigs[i].len, data,
				       len, &comment))
				k = &p->keys[j];
		if (!k) {
			mr_pubkey all[MR_POLICY_MAX_KEYS];
			for (j = 0; j < p->nkeys; j++)
				all[j] = p->keys[j].pk;
			mr_verify(all, p->nkeys, (const char *)sigs[i].data, sigs[i].len, data, len, NULL);
			mr_buf_printf(&why, "; %s: %s", where[i], mr_error_last());
			continue;
		}
		for (j = 0; j < ncounted && counted[j] != k; j++)
			;
		if (strcmp(comment, want_comment))
			mr_buf_printf(&why, "; %s: the trusted comment is '%s', expected '%s' (wrong or mixed-up metadata)",
				      where[i], comment, want_comment);
		else if (k->revoked)
			mr_buf_printf(&why, "; %s: key %s is revoked by the trust policy", where[i], k->hex);
		else if (k->expires && k->expires <= now)
			mr_buf_printf(&why, "; %s: key %s expired at %s (trust policy)", where[i], k->hex,
				      k->expires_str);
		else if (!may_sign(k, name))
			mr_buf_printf(&why, "; %s: key %s may not sign %s under the trust policy", where[i],
				      k->hex, what);
		else if (j < ncounted)
			mr_buf_printf(&why, "; %s: another signature by key %s, already counted (each key counts once)",
				      where[i], k->hex);
		else {
			counted[ncounted++] = k;
			mr_buf_printf(&who, "%s%s", ncounted > 1 ? "," : "", k->hex);
		}
		free(comment);
	}
	if (ncounted < need) {
		if (need == 1 && nsigs == 1 && why.len > 2)
			rc = mr_error_set(MR_EVERIFY, "%.*s", (int)why.len - 2, (const char *)why.data + 2);
		else
			rc = mr_error_set(MR_EVERIFY,
					  "%s needs signatures by %u distinct trusted key(s); found %zu "
					  "(%s) among %zu signature(s)%.*s",
					  what, need, ncounted, ncounted ? (const char *)who.data : "none",
					  nsigs, (int)why.len, why.data ? (const char *)why.data : "");
	} else if (signers && who.len) {
		mr_buf_put(signers, who.data, who.len);
	}
	mr_buf_free(&why);
	mr_buf_free(&who);
	return rc;
}
