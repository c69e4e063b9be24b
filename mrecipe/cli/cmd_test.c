/* mrecipe test: each recipe's test vectors (docs/testing.md) on the native
 * build, in-process through libmolt, and on the wasm build, through
 * runtime/js/vectors.mjs under Node. Both must return the expected bytes. */
#define _GNU_SOURCE
#include "cmd.h"

#include "molt/molt.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mrecipe/build.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define VECTORS_MAX (16u << 20)   /* one vector file */
#define NODE_OUT_MAX (256u << 20) /* all the Node runner prints */
#define SHOW_MAX 1024u            /* envelope bytes shown as hex */

static const mr_opt opts[] = {
	{ "repo", 'C', "DIR", "the recipes repository (default: .)" },
	{ "all", 'a', NULL, "test every module recipe that has test vectors (the default when none is named)" },
	{ "out", 'o', "DIR", "where 'mrecipe build' put its outputs (default: <repo>/build/out)" },
	{ "target", 't', "TARGET", "only this target: wasm32 or native" },
	{ NULL, 0, NULL, NULL },
};

enum { WASM, NATIVE }; /* index of a target's result */

/* What one target returned for one case. */
typedef struct {
	int ran;            /* 0: no envelope; `why` says why */
	int skipped;        /* the unit did not run at all */
	int is_error;       /* poll status 2: an error envelope */
	unsigned char *env; /* the envelope */
	size_t len;
	char *why;
} result;

/* One case, encoded: the same request bytes go to both targets. */
typedef struct {
	char *name;  /* "greet/ada" */
	char *where; /* "file:line:col" of the case */
	uint32_t fn; /* function id */
	unsigned char *req, *want;
	size_t req_len, want_len;
	int want_error; /* the expected envelope is an error (poll status 2) */
	result got[2];
} tcase;

/* A recipe's cases. */
typedef struct {
	mr_recipe *r;
	tcase *c;
	size_t n, cap;
} suite;

/* Appends "file:line:col: message" for `node` (its key when `key`). */
__attribute__((format(printf, 5, 6))) static void problem(mr_buf *rep, const mr_json *doc,
							   const cJSON *node, int key,
							   const char *fmt, ...)
{
	char msg[2048];
	int line = 0, col = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key)
		mr_json_key_pos(doc, node, &line, &col);
	else
		mr_json_pos(doc, node, &line, &col);
	mr_buf_printf(rep, "%s:%d:%d: %s\n", mr_json_file(doc), line, col, msg);
}

/* Hex (whitespace between digits allowed) to bytes; 0 or -1. */
static int unhex(const char *s, unsigned char **out, size_t *len)
{
	size_t n = 0, digits = 0;
	const char *p;
	int hi = -1;

	for (p = s; *p; p++)
		if (!strchr(" \t\r\n", *p))
			digits++;
	if (digits % 2 || !(*out = malloc(digits / 2 + 1)))
		return -1;
	for (p = s; *p; p++) {
		int v = *p >= '0' && *p <= '9' ? *p - '0'
			: *p >= 'a' && *p <= 'f' ? *p - 'a' + 10
			: *p >= 'A' && *p <= 'F' ? *p - 'A' + 10 : -1;
		if (strchr(" \t\r\n", *p))
			continue;
		if (v < 0) {
			free(*out);
			*out = NULL;
			return -1;
		}
		if (hi < 0)
			hi = v;
		else {
			(*out)[n++] = (unsigned char)(hi << 4 | v);
			hi = -1;
		}
	}
	*len = n;
	return 0;
}

static void put_hex(FILE *f, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		fprintf(f, "%02x", p[i]);
}

/* Loads schemas/<id>.v<version>.json for a reference "id@version" (or id,
 * version) as canonical JSON text (mr_buf keeps it NUL-terminated). */
static int schema_text(mr_buf *out, const char *schemas, const char *ref, const char *id, int v)
{
	char digest[MR_DIGEST_STR_LEN + 1], idbuf[256];
	int rc;

	if (ref && (rc = mr_schema_ref_parse(ref, idbuf, sizeof(idbuf), &v)))
		return rc;
	return mr_schema_load(out, digest, schemas, ref ? idbuf : id, v);
}

static int is_name(const char *s)
{
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *s))
			return 0;
	return 1;
}

/* One JSON value (`v`) through a schema into an envelope, or a problem. */
static int encode(mr_buf *rep, const mr_json *doc, const cJSON *v, const char *at,
		  const char *schema, unsigned char **out, size_t *len)
{
	char *json = cJSON_PrintUnformatted(v);
	int rc = json ? molt_envelope_encode(schema, json, out, len) : MR_ERROR;

	if (rc)
		problem(rep, doc, v, 0, "%s: %s", at, json ? molt_error_last() : "out of memory");
	free(json);
	return rc;
}

static const char *const case_keys[] = { "name", "doc", "function_id", "request", "request_hex",
					 "expect", "expect_error", "expect_hex", NULL };

static int known(const char *const *keys, const char *k)
{
	for (; *keys; keys++)
		if (!strcmp(*keys, k))
			return 1;
	return 0;
}

/* The one member of `c` named a, b or d (d may be NULL), or NULL after a problem. */
static const cJSON *one_of(mr_buf *rep, const mr_json *doc, const cJSON *c, const char *at,
			   const char *a, const char *b, const char *d)
{
	const cJSON *found = NULL, *x;
	const char *names[] = { a, b, d };
	int i, n = 0;

	for (i = 0; i < 3; i++)
		if (names[i] && (x = cJSON_GetObjectItemCaseSensitive(c, names[i]))) {
			found = x;
			n++;
		}
	if (n == 1)
		return found;
	problem(rep, doc, c, 0, "%s: needs exactly one of %s, %s%s%s; it has %d", at, a, b,
		d ? ", " : "", d ? d : "", n);
	return NULL;
}

static tcase *add_case(suite *s)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		tcase *c = realloc(s->c, cap * sizeof(*c));
		if (!c)
			return NULL;
		s->c = c;
		s->cap = cap;
	}
	memset(&s->c[s->n], 0, sizeof(s->c[0]));
	return &s->c[s->n++];
}

/* Reads one case of a vector file into `c`; problems go to `rep`. */
static void load_case(suite *s, tcase *c, mr_buf *rep, const mr_json *doc, const cJSON *k,
		      int i, const cJSON *fn, const char *const texts[3])
{
	const cJSON *name = cJSON_GetObjectItemCaseSensitive(k, "name"), *x, *id;
	char at[64];
	size_t j;
	int line, col;

	snprintf(at, sizeof(at), "cases[%d]", i);
	if (!cJSON_IsObject(k)) {
		problem(rep, doc, k, 0, "%s: expected an object {\"name\", \"request\", \"expect\"}", at);
		return;
	}
	for (x = k->child; x; x = x->next)
		if (!known(case_keys, x->string))
			problem(rep, doc, x, 1, "%s.%s: unknown key; a case has name, doc, function_id, "
				"request or request_hex, and expect, expect_error or expect_hex", at, x->string);
	mr_json_pos(doc, k, &line, &col);
	if (asprintf(&c->where, "%s:%d:%d", mr_json_file(doc), line, col) < 0) {
		c->where = NULL;
		problem(rep, doc, k, 0, "out of memory");
		return;
	}
	if (!cJSON_IsString(name) || !*name->valuestring || !is_name(name->valuestring))
		problem(rep, doc, name ? name : k, 0, "%s.name: expected a name of letters, digits, "
			"'_', '.' or '-'", at);
	else if (asprintf(&c->name, "%s/%s", mr_json_str(fn, "name"), name->valuestring) < 0) {
		c->name = NULL;
		problem(rep, doc, k, 0, "out of memory");
	}
	if ((x = cJSON_GetObjectItemCaseSensitive(k, "doc")) && !cJSON_IsString(x))
		problem(rep, doc, x, 0, "%s.doc: expected a string", at);
	for (j = 0; c->name && j + 1 < s->n; j++)
		if (s->c[j].name && !strcmp(s->c[j].name, c->name))
			problem(rep, doc, name, 0, "%s.name: '%s' is already the name of the case at %s",
				at, name->valuestring, s->c[j].where);
	id = cJSON_GetObjectItemCaseSensitive(k, "function_id");
	if (id && !mr_json_is_int(id, 0, 4294967295.0)) {
		problem(rep, doc, id, 0, "%s.function_id: expected an integer from 0 to 4294967295", at);
		id = NULL;
	}
	c->fn = (uint32_t)(id ? id->valuedouble : cJSON_GetObjectItemCaseSensitive(fn, "id")->valuedouble);
	if ((x = one_of(rep, doc, k, at, "request", "request_hex", NULL))) {
		snprintf(at + strlen(at), sizeof(at) - strlen(at), ".%s", x->string);
		if (!strcmp(x->string, "request"))
			encode(rep, doc, x, at, texts[0], &c->req, &c->req_len);
		else if (!cJSON_IsString(x) || unhex(x->valuestring, &c->req, &c->req_len))
			problem(rep, doc, x, 0, "%s: expected a string of hex digit pairs", at);
	}
	snprintf(at, sizeof(at), "cases[%d]", i);
	if ((x = one_of(rep, doc, k, at, "expect", "expect_error", "expect_hex"))) {
		snprintf(at + strlen(at), sizeof(at) - strlen(at), ".%s", x->string);
		c->want_error = !strcmp(x->string, "expect_error");
		if (strcmp(x->string, "expect_hex"))
			encode(rep, doc, x, at, texts[c->want_error ? 2 : 1], &c->want, &c->want_len);
		else if (!cJSON_IsString(x) || unhex(x->valuestring, &c->want, &c->want_len))
			problem(rep, doc, x, 0, "%s: expected a string of hex digit pairs", at);
		else {
			/* A raw expectation is an error exactly when it is a molt.error envelope. */
			char *json = NULL;
			cJSON *e = NULL;
			if (molt_envelope_to_json(c->want, c->want_len, &json) || !(e = cJSON_Parse(json)))
				problem(rep, doc, x, 0, "%s: not an envelope: %s", at, molt_error_last());
			else
				c->want_error = !strcmp(mr_json_str(e, "schema"), "molt.error");
			cJSON_Delete(e);
			free(json);
		}
	}
}

/* Reads one vector file into the suite; problems go to `rep`. */
static void load_file(suite *s, mr_buf *rep, const char *path, const repo_paths *p)
{
	static const char *const file_keys[] = { "function", "doc", "cases", NULL };
	const cJSON *root, *fn = NULL, *f, *cases, *k, *x;
	mr_buf texts[3] = { MR_BUF_INIT, MR_BUF_INIT, MR_BUF_INIT };
	const char *name;
	mr_json *doc = NULL;
	int i = 0;

	if (mr_json_load(&doc, path, VECTORS_MAX)) {
		mr_buf_printf(rep, "%s\n", mr_error_last());
		return;
	}
	root = mr_json_root(doc);
	if (!cJSON_IsObject(root)) {
		problem(rep, doc, root, 0, "expected an object {\"function\", \"cases\"} (docs/testing.md)");
		goto done;
	}
	for (x = root->child; x; x = x->next)
		if (!known(file_keys, x->string))
			problem(rep, doc, x, 1, "%s: unknown key; a vector file has function, doc and cases",
				x->string);
	if ((x = cJSON_GetObjectItemCaseSensitive(root, "doc")) && !cJSON_IsString(x))
		problem(rep, doc, x, 0, "doc: expected a string");
	f = cJSON_GetObjectItemCaseSensitive(root, "function");
	name = cJSON_IsString(f) ? f->valuestring : "";
	x = cJSON_GetObjectItemCaseSensitive(mr_recipe_json(s->r), "functions");
	for (x = x ? x->child : NULL; x && !fn; x = x->next)
		if (!strcmp(mr_json_str(x, "name"), name))
			fn = x;
	if (!fn) {
		mr_buf have = MR_BUF_INIT;
		x = cJSON_GetObjectItemCaseSensitive(mr_recipe_json(s->r), "functions");
		for (x = x ? x->child : NULL; x; x = x->next)
			mr_buf_printf(&have, "%s%s", have.len ? ", " : "", mr_json_str(x, "name"));
		problem(rep, doc, f ? f : root, 0, "function: expected one of %s's functions (%s), found %s%s%s",
			s->r->name, have.len ? (char *)have.data : "none", f ? "'" : "nothing", name,
			f ? "'" : "");
		mr_buf_free(&have);
		goto done;
	}
	if (schema_text(&texts[0], p->schemas, mr_json_str(fn, "input"), NULL, 0) ||
	    schema_text(&texts[1], p->schemas, mr_json_str(fn, "output"), NULL, 0) ||
	    schema_text(&texts[2], p->schemas, NULL, "molt.error", 1)) {
		problem(rep, doc, f, 0, "function %s: %s", name, mr_error_last());
		goto done;
	}
	cases = cJSON_GetObjectItemCaseSensitive(root, "cases");
	if (!cJSON_IsArray(cases) || !cases->child) {
		problem(rep, doc, cases ? cases : root, 0, "cases: expected a non-empty list of cases");
		goto done;
	}
	for (k = cases->child; k; k = k->next, i++) {
		tcase *c = add_case(s);
		const char *t[3] = { (const char *)texts[0].data, (const char *)texts[1].data,
				     (const char *)texts[2].data };
		if (!c) {
			problem(rep, doc, k, 0, "out of memory");
			break;
		}
		load_case(s, c, rep, doc, k, i, fn, t);
	}
done:
	for (i = 0; i < 3; i++)
		mr_buf_free(&texts[i]);
	mr_json_free(doc);
}

/* Loads every vector file of a recipe; problems go to `rep`. */
static void load_suite(suite *s, mr_buf *rep, const repo_paths *p)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(
		cJSON_GetObjectItemCaseSensitive(mr_recipe_json(s->r), "test"), "vectors");
	char *path;

	for (v = v ? v->child : NULL; v; v = v->next) {
		const char *rel = cJSON_IsString(v) ? v->valuestring : "";
		/* The schema keeps paths relative; keep them inside the recipe too. */
		if (!strcmp(rel, "..") || !strncmp(rel, "../", 3) || strstr(rel, "/../") ||
		    (strlen(rel) >= 3 && !strcmp(rel + strlen(rel) - 3, "/.."))) {
			problem(rep, s->r->doc, v, 0, "test.vectors: '%s' leaves the recipe folder; "
				"keep vector files inside it", rel);
			continue;
		}
		if (!(path = mr_fs_join(s->r->dir, rel))) {
			mr_buf_puts(rep, "out of memory\n");
			return;
		}
		if (!mr_fs_exists(path))
			problem(rep, s->r->doc, v, 0, "test.vectors: %s does not exist", path);
		else
			load_file(s, rep, path, p);
		free(path);
	}
}

static void result_free(result *r)
{
	free(r->env);
	free(r->why);
	memset(r, 0, sizeof(*r));
}

static void suite_free(suite *s)
{
	size_t i;

	for (i = 0; i < s->n; i++) {
		free(s->c[i].name);
		free(s->c[i].where);
		free(s->c[i].req);
		free(s->c[i].want);
		result_free(&s->c[i].got[WASM]);
		result_free(&s->c[i].got[NATIVE]);
	}
	free(s->c);
}

/* The build outputs of a recipe for a target (caller frees both). */
static int outputs(const repo_paths *p, const mr_recipe *r, unsigned t, char **artifact,
		   char **manifest)
{
	mr_build_opts o = { 0 };
	char *dir;
	int rc = 0;

	o.out_dir = p->out;
	*artifact = *manifest = NULL;
	if (!(dir = mr_build_outdir(&o, r, t)))
		return mr_error_set(MR_ERROR, "out of memory");
	if (!(*manifest = mr_fs_join(dir, "manifest.json")) ||
	    asprintf(artifact, t == MR_TARGET_WASM32 ? "%s/%s.wasm" : "%s/lib%s.so", dir, r->name) < 0) {
		*artifact = NULL;
		rc = mr_error_set(MR_ERROR, "out of memory");
	} else if (!mr_fs_exists(*manifest) || !mr_fs_exists(*artifact)) {
		rc = mr_error_set(MR_ENOTFOUND, "%s %s is not built for %s (%s is missing); run "
				  "'mrecipe build --out %s %s' first", r->name, r->version,
				  mr_target_name(t), mr_fs_exists(*manifest) ? *artifact : *manifest,
				  p->out, r->name);
	}
	free(dir);
	if (rc) {
		free(*artifact);
		free(*manifest);
		*artifact = *manifest = NULL;
	}
	return rc;
}

/* Marks the cases of `s` without a result on target `ti` as not run. */
static void not_run(suite *s, int ti)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		if (!s->c[i].got[ti].ran && !s->c[i].got[ti].why)
			s->c[i].got[ti].skipped = 1;
}

/* Runs every case in-process on the native build. */
static int run_native(suite *s, const repo_paths *p)
{
	char *artifact, *manifest;
	molt_unit *u = NULL;
	size_t i;
	int rc;

	if ((rc = outputs(p, s->r, MR_TARGET_NATIVE, &artifact, &manifest)))
		return rc;
	if ((rc = molt_unit_load_local(&u, artifact, manifest, p->schemas))) {
		mr_error_wrap(rc, "%s %s (native)", s->r->name, s->r->version);
		goto done;
	}
	for (i = 0; i < s->n; i++) {
		tcase *c = &s->c[i];
		result *g = &c->got[NATIVE];
		if (molt_unit_call_envelope(u, c->fn, c->req, c->req_len, &g->env, &g->len,
					    &g->is_error))
			g->why = strdup(molt_error_last());
		else
			g->ran = 1;
	}
done:
	molt_unit_free(u);
	free(artifact);
	free(manifest);
	return rc;
}

/* Writes the requests file vectors.mjs reads: one JSON object a line. */
static int write_requests(const suite *s, char *path)
{
	int fd = mkstemp(path);
	FILE *f = fd < 0 ? NULL : fdopen(fd, "w");
	size_t i;

	if (!f) {
		if (fd >= 0)
			close(fd);
		return mr_error_sys(MR_EENV, "creating %s", path);
	}
	for (i = 0; i < s->n; i++) {
		fprintf(f, "{\"function_id\":%u,\"request_hex\":\"", (unsigned)s->c[i].fn);
		put_hex(f, s->c[i].req, s->c[i].req_len);
		fputs("\"}\n", f);
	}
	if (ferror(f) | fclose(f))
		return mr_error_sys(MR_EIO, "writing %s", path);
	return 0;
}

/* Fills the cases' wasm results from vectors.mjs's output lines. */
static void read_results(suite *s, char *text)
{
	char *line, *save = NULL;

	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		cJSON *j = cJSON_Parse(line);
		const cJSON *k = cJSON_GetObjectItemCaseSensitive(j, "case");
		const cJSON *st = cJSON_GetObjectItemCaseSensitive(j, "status");
		const char *hex = mr_json_str(j, "envelope_hex"), *err = mr_json_str(j, "error");
		result *g;

		if (!mr_json_is_int(k, 0, (double)s->n - 1)) {
			cJSON_Delete(j);
			continue;
		}
		g = &s->c[(size_t)k->valuedouble].got[WASM];
		result_free(g);
		if (hex && mr_json_is_int(st, 1, 2) && !unhex(hex, &g->env, &g->len)) {
			g->ran = 1;
			g->is_error = st->valuedouble == 2;
		} else {
			g->why = strdup(err ? err : "vectors.mjs printed a malformed result line");
		}
		cJSON_Delete(j);
	}
}

/* Runs every case on the wasm build: node runtime/js/vectors.mjs. */
static int run_wasm(suite *s, const repo_paths *p)
{
	const char *tmp = getenv("TMPDIR");
	char *artifact = NULL, *manifest = NULL, *script = NULL, *reqs = NULL;
	char *argv[11] = { "node" };
	posix_spawn_file_actions_t fa;
	mr_buf out = MR_BUF_INIT;
	int pipefd[2] = { -1, -1 }, status, rc, over = 0;
	pid_t pid;

	if ((rc = outputs(p, s->r, MR_TARGET_WASM32, &artifact, &manifest)))
		return rc;
	posix_spawn_file_actions_init(&fa);
	if (!(script = mr_fs_join(p->root, "runtime/js/vectors.mjs")) ||
	    asprintf(&reqs, "%s/mrecipe-test-XXXXXX", tmp && *tmp ? tmp : "/tmp") < 0) {
		reqs = NULL;
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = write_requests(s, reqs))) {
		free(reqs);
		reqs = NULL;
		goto done;
	}
	argv[1] = script;
	argv[2] = "--wasm";
	argv[3] = artifact;
	argv[4] = "--manifest";
	argv[5] = manifest;
	argv[6] = "--schemas";
	argv[7] = p->schemas;
	argv[8] = "--requests";
	argv[9] = reqs;
	if (pipe(pipefd) < 0) {
		rc = mr_error_sys(MR_EENV, "pipe");
		goto done;
	}
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_addclose(&fa, pipefd[0]);
	posix_spawn_file_actions_addclose(&fa, pipefd[1]);
	if ((errno = posix_spawnp(&pid, "node", &fa, NULL, argv, environ))) {
		rc = mr_error_sys(MR_EENV, "running node %s", script);
		goto done;
	}
	close(pipefd[1]);
	pipefd[1] = -1;
	out.max = NODE_OUT_MAX;
	for (;;) {
		char chunk[65536];
		ssize_t n = read(pipefd[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Past the cap, keep draining so Node can finish. */
		if (!over && mr_buf_put(&out, chunk, (size_t)n))
			over = 1;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			rc = mr_error_sys(MR_EENV, "waiting for node");
			goto done;
		}
	if (out.len)
		read_results(s, (char *)out.data);
	if (over)
		rc = mr_error_set(MR_ERROR, "node %s printed more than %u bytes; the rest was dropped",
				  script, NODE_OUT_MAX);
	else if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
		rc = mr_error_set(code == 3 ? MR_EENV : code == 2 ? MR_EINVALID : code == 1 ? MR_EVERIFY : MR_ERROR,
				  "%s %s (wasm32): node %s %s %d (its message is above)", s->r->name,
				  s->r->version, script, WIFEXITED(status) ? "exited with status" : "died of signal",
				  WIFEXITED(status) ? code : WTERMSIG(status));
	}
done:
	posix_spawn_file_actions_destroy(&fa);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	if (reqs)
		unlink(reqs);
	mr_buf_free(&out);
	free(reqs);
	free(script);
	free(artifact);
	free(manifest);
	return rc;
}

/* 1 if `prog` is an executable file in $PATH. */
static int in_path(const char *prog)
{
	const char *p = getenv("PATH"), *end;
	char buf[4096];

	for (; p && *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		/* An empty entry is the current folder. */
		snprintf(buf, sizeof(buf), "%.*s/%s", end > p ? (int)(end - p) : 1, end > p ? p : ".",
			 prog);
		if (!access(buf, X_OK))
			return 1;
	}
	return 0;
}

/* Prints an envelope: its JSON rendering, then its hex. */
static void show(const char *label, int is_error, const unsigned char *env, size_t len)
{
	char *json = NULL;

	printf("  %-8s %s envelope: ", label, is_error ? "error" : "result");
	if (molt_envelope_to_json(env, len, &json))
		printf("(not an envelope: %s)\n", molt_error_last());
	else
		printf("%s\n", json);
	printf("  %-8s hex (%zu bytes): ", "", len);
	put_hex(stdout, env, len < SHOW_MAX ? len : SHOW_MAX);
	printf("%s\n", len > SHOW_MAX ? "..." : "");
	free(json);
}

/* Prints one case's line for target `ti`; returns 1 if it failed. */
static int report(const suite *s, const tcase *c, int ti)
{
	const result *g = &c->got[ti];
	const char *target = ti == WASM ? "wasm32" : "native";
	int pass = g->ran && g->is_error == c->want_error && g->len == c->want_len &&
		   !memcmp(g->env, c->want, c->want_len);

	printf("%s %s %s %s%s\n", pass ? "ok" : "not ok", s->r->name, c->name, target,
	       g->skipped ? " (not run: the unit did not load or run; see above)" : "");
	if (pass || g->skipped)
		return !pass;
	printf("  case at %s\n", c->where);
	show("expected", c->want_error, c->want, c->want_len);
	if (g->ran)
		show("actual", g->is_error, g->env, g->len);
	else
		printf("  %-8s no envelope: %s\n", "actual", g->why ? g->why : "no result");
	return 1;
}

/* 1 if a recipe lists test vector files. */
static int has_vectors(const mr_recipe *r)
{
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(mr_recipe_json(r), "test");

	return !strcmp(r->kind, "module") &&
	       cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(t, "vectors")) > 0;
}

/* Collects the recipes to test; an exit status. */
static int pick(suite **out, size_t *n, const mr_recipe_set *set, const mr_args *args, int all)
{
	suite *s = calloc(set->n + 1, sizeof(*s));
	size_t i;
	int j;

	*out = s;
	*n = 0;
	if (!s)
		return mr_cli_fail(PROG, mr_error_set(MR_ERROR, "out of memory"));
	for (j = 0; !all && j < args->nrest; j++) {
		mr_recipe *r = mr_recipe_set_find(set, args->rest[j]);
		if (!r) {
			mr_cli_error(PROG, "no recipe named '%s'", args->rest[j]);
			return 2;
		}
		if (!has_vectors(r)) {
			mr_cli_error(PROG, "%s has no test vectors: add \"test\": {\"vectors\": "
					   "[\"tests/vectors/FUNCTION.json\"]} to %s/recipe.json "
					   "(docs/testing.md)", r->name, r->dir);
			return 2;
		}
		s[(*n)++].r = r;
	}
	for (i = 0; (all || !args->nrest) && i < set->n; i++) {
		mr_recipe *r = set->items[i];
		if (strcmp(r->kind, "module"))
			continue;
		if (has_vectors(r))
			s[(*n)++].r = r;
		else
			printf("skip %s: no test vectors\n", r->name);
	}
	return 0;
}

/* Runs the vectors of the named recipes (all by default) on both targets. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *only = mr_args_get(cmd, args, "target");
	unsigned mask = MR_TARGET_WASM32 | MR_TARGET_NATIVE;
	mr_recipe_set set = { 0 };
	mr_buf rep = MR_BUF_INIT;
	suite *suites = NULL;
	size_t n = 0, i, j, cases = 0, failed = 0;
	int rc, worst = 0, wasm = 0;
	repo_paths p;

	if (only) {
		if (!strcmp(only, "wasm32"))
			mask = MR_TARGET_WASM32;
		else if (!strcmp(only, "native"))
			mask = MR_TARGET_NATIVE;
		else {
			mr_cli_error(PROG, "--target: expected wasm32 or native, found '%s'", only);
			return 2;
		}
	}
	if ((rc = repo_open(&p, mr_args_get(cmd, args, "repo"), mr_args_get(cmd, args, "out"))))
		return mr_cli_fail(PROG, rc);
	if ((rc = mr_recipe_set_load(&set, p.recipes, p.schemas))) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	if ((rc = pick(&suites, &n, &set, args, !!mr_args_get(cmd, args, "all"))))
		goto done;
	rep.max = 4u << 20;
	/* Every vector file is read and encoded before anything runs. */
	for (i = 0; i < n; i++)
		load_suite(&suites[i], &rep, &p);
	if (rep.len) {
		fputs((char *)rep.data, stderr);
		mr_cli_error(PROG, "bad test vectors; nothing was run (the format is in docs/testing.md)");
		rc = 2;
		goto done;
	}
	for (i = 0; i < n; i++) {
		for (j = 1; j <= 2; j <<= 1) {
			char *a, *m;
			if (!(suites[i].r->targets & mask & j))
				continue;
			if ((rc = outputs(&p, suites[i].r, (unsigned)j, &a, &m))) {
				rc = mr_cli_fail(PROG, rc);
				goto done;
			}
			free(a);
			free(m);
			wasm |= j == MR_TARGET_WASM32;
		}
	}
	if (wasm && !in_path("node")) {
		mr_cli_error(PROG, "node not found in PATH: the wasm32 half of 'mrecipe test' runs "
				   "under Node.js 20 or newer. Install nodejs (scripts/setup does), or "
				   "pass --target native");
		rc = 3;
		goto done;
	}
	for (i = 0; i < n; i++) {
		suite *s = &suites[i];
		for (j = 1; j <= 2; j <<= 1) {
			int ti = j == MR_TARGET_WASM32 ? WASM : NATIVE;
			if (!(s->r->targets & mask & j))
				continue;
			fflush(stdout);
			if ((rc = ti == WASM ? run_wasm(s, &p) : run_native(s, &p))) {
				mr_cli_error(PROG, "%s", mr_error_last());
				not_run(s, ti);
				if (mr_error_exit_code(rc) == 3 || !worst)
					worst = mr_error_exit_code(rc) == 3 ? 3 : 1;
			}
		}
		for (j = 0; j < s->n; j++) {
			int bad = 0;
			if (s->r->targets & mask & MR_TARGET_NATIVE)
				bad |= report(s, &s->c[j], NATIVE);
			if (s->r->targets & mask & MR_TARGET_WASM32)
				bad |= report(s, &s->c[j], WASM);
			failed += (size_t)bad;
			cases++;
		}
	}
	printf("%zu case%s, %zu failed\n", cases, cases == 1 ? "" : "s", failed);
	rc = worst ? worst : failed ? 1 : 0;
done:
	for (i = 0; i < n; i++)
		suite_free(&suites[i]);
	free(suites);
	mr_buf_free(&rep);
	mr_recipe_set_free(&set);
	repo_close(&p);
	return rc;
}

const mr_cmd mrecipe_cmd_test = {
	"test", "run recipes' test vectors on the native build (libmolt) and the wasm build (Node)",
	"[options] [NAME...]", opts, run,
};
