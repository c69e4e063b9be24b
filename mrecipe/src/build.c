#define _GNU_SOURCE
#include "mrecipe/build.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/manifest.h"
#include "mr/wasm.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define ARGV_MAX 1024

/* An argv under construction; strings are owned. */
typedef struct {
	char *v[ARGV_MAX + 1];
	int n;
} argv_t;

static int arg(argv_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int arg(argv_t *a, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	if (a->n >= ARGV_MAX)
		return mr_error_set(MR_EINVALID, "command line longer than %d arguments", ARGV_MAX);
	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		return mr_error_set(MR_ERROR, "out of memory");
	a->v[a->n++] = s;
	a->v[a->n] = NULL;
	return 0;
}

static void argv_free(argv_t *a)
{
	while (a->n)
		free(a->v[--a->n]);
}

const char *mr_target_name(unsigned target)
{
	return target == MR_TARGET_WASM32 ? "wasm32" : "native";
}

const char *mr_target_triple(unsigned target)
{
	return target == MR_TARGET_WASM32 ? "wasm32-wasi" : mr_host_triple();
}

char *mr_build_outdir(const mr_build_opts *o, const mr_recipe *r,
		      unsigned target)
{
	char *s;

	if (asprintf(&s, "%s/%s/%s-%s", o->out_dir, mr_target_name(target),
		     r->name, r->version) < 0)
		return NULL;
	return s;
}

/* Finds `name` on PATH; returns a malloc'd full path or NULL. */
static char *which(const char *name)
{
	const char *path = getenv("PATH");
	char *copy, *dir, *save = NULL, *full = NULL;

	if (strchr(name, '/'))
		return access(name, X_OK) ? NULL : strdup(name);
	if (!path || !(copy = strdup(path)))
		return NULL;
	for (dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		full = mr_fs_join(dir, name);
		if (full && !access(full, X_OK))
			break;
		free(full);
		full = NULL;
	}
	free(copy);
	return full;
}

/* The environment of every build command: the caller's, with a fixed
 * SOURCE_DATE_EPOCH (so __DATE__ and __TIME__ cannot vary) and the C locale. */
static char **build_env;
static pthread_once_t env_once = PTHREAD_ONCE_INIT;

static void make_env(void)
{
	static char epoch[] = "SOURCE_DATE_EPOCH=0", lc[] = "LC_ALL=C";
	size_t n = 0, i, k = 0;

	while (environ[n])
		n++;
	if (!(build_env = calloc(n + 3, sizeof(*build_env))))
		return;
	for (i = 0; i < n; i++)
		if (strncmp(environ[i], "SOURCE_DATE_EPOCH=", 18) && strncmp(environ[i], "LC_ALL=", 7))
			build_env[k++] = environ[i];
	build_env[k++] = epoch;
	build_env[k++] = lc;
}

/* Runs argv with output appended to `log` (or captured into `capture`). */
static int run(argv_t *a, const char *log, mr_buf *capture, FILE *echo)
{
	posix_spawn_file_actions_t fa;
	int pipefd[2] = { -1, -1 }, status, i, rc = 0;
	pid_t pid;

	if (echo) {
		flockfile(echo);
		for (i = 0; i < a->n; i++)
			fprintf(echo, "%s%s", i ? " " : "  $ ", a->v[i]);
		fputc('\n', echo);
		funlockfile(echo);
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (capture) {
		if (pipe2(pipefd, O_CLOEXEC) < 0)
			return mr_error_sys(MR_EENV, "pipe");
		posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
		posix_spawn_file_actions_addclose(&fa, pipefd[0]);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	} else {
		posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_APPEND | O_CREAT, 0644);
		posix_spawn_file_actions_adddup2(&fa, 1, 2);
	}
	pthread_once(&env_once, make_env);
	if ((errno = posix_spawnp(&pid, a->v[0], &fa, NULL, a->v, build_env ? build_env : environ))) {
		rc = mr_error_sys(MR_EENV, "running %s", a->v[0]);
		goto done;
	}
	if (capture) {
		char chunk[4096];
		ssize_t n;
		close(pipefd[1]);
		pipefd[1] = -1;
		while ((n = read(pipefd[0], chunk, sizeof(chunk))) > 0)
			if (capture->len < 65536)
				mr_buf_put(capture, chunk, (size_t)n);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			rc = mr_error_sys(MR_EENV, "waiting for %s", a->v[0]);
			goto done;
		}
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		rc = mr_error_set(MR_ERROR, "%s failed (%s %d)", a->v[0],
				  WIFEXITED(status) ? "exit status" : "signal",
				  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
done:
	posix_spawn_file_actions_destroy(&fa);
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	return rc;
}

/* The compiler, archiver and flags for one target. */
typedef struct {
	char *cc, *ar;
	char *sysroot_inc; /* wasm32 without wasi-sdk: Debian's wasi-libc headers */
	char *resource_inc;
	char *sysroot;     /* wasm32 with wasi-sdk */
	char ident[256];   /* first line of `cc --version` */
} toolchain;

static void toolchain_free(toolchain *t)
{
	free(t->cc);
	free(t->ar);
	free(t->sysroot_inc);
	free(t->resource_inc);
	free(t->sysroot);
}

static int missing_tool(const char *what, const char *install)
{
	return mr_error_set(MR_EENV, "%s not found; %s", what, install);
}

static int toolchain_find(toolchain *t, unsigned target)
{
	const char *sdk = getenv("WASI_SDK_PATH");
	mr_buf out = MR_BUF_INIT;
	argv_t a = { { 0 }, 0 };
	int rc = 0;

	memset(t, 0, sizeof(*t));
	if (target == MR_TARGET_NATIVE) {
		const char *cc = getenv("CC");
		if (!(t->cc = which(cc && *cc ? cc : "cc")))
			return missing_tool("the host C compiler (cc)", "install gcc or clang (scripts/setup does)");
		if (!(t->ar = which("ar")))
			return missing_tool("ar", "install binutils");
	} else if (sdk && *sdk) {
		if (asprintf(&t->cc, "%s/bin/clang", sdk) < 0 ||
		    asprintf(&t->ar, "%s/bin/llvm-ar", sdk) < 0 ||
		    asprintf(&t->sysroot, "%s/share/wasi-sysroot", sdk) < 0)
			return mr_error_set(MR_ERROR, "out of memory");
		if (access(t->cc, X_OK))
			return missing_tool(t->cc, "WASI_SDK_PATH must point at a wasi-sdk install");
	} else {
		if (!(t->cc = which("clang")))
			return missing_tool("clang (for wasm32)", "run scripts/setup, or apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32");
		if (!(t->ar = which("llvm-ar")) && !(t->ar = which("llvm-ar-14")))
			return missing_tool("llvm-ar (for wasm32)", "apt-get install llvm");
		if (!mr_fs_exists("/usr/include/wasm32-wasi/stdlib.h"))
			return missing_tool("the WASI libc headers (/usr/include/wasm32-wasi)", "apt-get install wasi-libc, or set WASI_SDK_PATH");
		if (!(t->sysroot_inc = strdup("/usr/include/wasm32-wasi")))
			return mr_error_set(MR_ERROR, "out of memory");
		arg(&a, "%s", t->cc);
		arg(&a, "-print-resource-dir");
		if ((rc = run(&a, NULL, &out, NULL)))
			goto done;
		out.data[strcspn((char *)out.data, "\n")] = '\0';
		if (asprintf(&t->resource_inc, "%s/include", (char *)out.data) < 0)
			rc = mr_error_set(MR_ERROR, "out of memory");
		argv_free(&a);
	}
	arg(&a, "%s", t->cc);
	arg(&a, "--version");
	out.len = 0;
	if (!rc && !(rc = run(&a, NULL, &out, NULL)) && out.data) {
		out.data[strcspn((char *)out.data, "\n")] = '\0';
		snprintf(t->ident, sizeof(t->ident), "%s", (char *)out.data);
	}
done:
	argv_free(&a);
	mr_buf_free(&out);
	return rc;
}

int mr_toolchain_identity(unsigned target, char *out, size_t n)
{
	toolchain t;
	int rc = toolchain_find(&t, target);

	if (!rc)
		snprintf(out, n, "%s|%s|%s|%s|%s", t.ident, t.cc ? t.cc : "",
			 t.ar ? t.ar : "", t.sysroot ? t.sysroot : "",
			 t.sysroot_inc ? t.sysroot_inc : "");
	toolchain_free(&t);
	return rc;
}

static int log_tail(const char *log, const char *what)
{
	mr_buf b = MR_BUF_INIT;
	const char *p;
	int lines = 0;

	mr_fs_read(&b, log, 1 << 22);
	p = b.data ? (char *)b.data + b.len : "";
	while (b.data && p > (char *)b.data && lines <= 25)
		if (*--p == '\n')
			lines++;
	if (b.data && *p == '\n')
		p++;
	char cause[512];
	snprintf(cause, sizeof(cause), "%s", mr_error_last());
	mr_error_set(MR_ERROR, "%s: %s\n--- last lines of %s ---\n%s", what, cause,
		     log, b.data ? p : "(empty)\n");
	mr_buf_free(&b);
	return MR_ERROR;
}

/* Fills @VAR@ templates (build.configure), writing under gen/. */
static int configure_files(const cJSON *cfg, const char *src, const char *gen)
{
	const cJSON *c;
	int rc = 0;

	for (c = cfg ? cfg->child : NULL; !rc && c; c = c->next) {
		char *in = mr_fs_join(src, mr_json_str(c, "input"));
		char *out = mr_fs_join(gen, mr_json_str(c, "output"));
		const cJSON *vars = cJSON_GetObjectItemCaseSensitive(c, "vars");
		mr_buf text = MR_BUF_INIT, res = MR_BUF_INIT;
		const char *p, *q;

		if (!in || !out)
			rc = mr_error_set(MR_ERROR, "out of memory");
		if (!rc)
			rc = mr_fs_read(&text, in, 1 << 22);
		for (p = text.data ? (char *)text.data : ""; !rc && *p; p = q) {
			const char *end;
			q = strchr(p, '@');
			if (!q) {
				rc = mr_buf_puts(&res, p);
				break;
			}
			rc = mr_buf_put(&res, p, (size_t)(q - p));
			end = strchr(q + 1, '@');
			const cJSON *v = NULL;
			if (end) {
				char key[128];
				snprintf(key, sizeof(key), "%.*s", (int)(end - q - 1), q + 1);
				v = cJSON_GetObjectItemCaseSensitive(vars, key);
			}
			if (!rc && v && cJSON_IsString(v)) {
				rc = mr_buf_puts(&res, v->valuestring);
				q = end + 1;
			} else if (!rc) {
				rc = mr_buf_put(&res, "@", 1);
				q++;
			}
		}
		if (!rc) {
			char *slash = strrchr(out, '/');
			*slash = '\0';
			rc = mr_fs_mkdir_p(out);
			*slash = '/';
		}
		if (!rc)
			rc = mr_fs_write_atomic(out, res.data ? res.data : (unsigned char *)"", res.len, 0644);
		mr_buf_free(&text);
		mr_buf_free(&res);
		free(in);
		free(out);
	}
	return rc;
}

/* Appends the flags every compile for `target` gets. */
static int common_flags(argv_t *a, const toolchain *t, unsigned target,
			const mr_build_opts *o, const char *src,
			const char *name)
{
	int rc = 0;

	rc |= arg(a, "%s", t->cc);
	if (target == MR_TARGET_WASM32) {
		rc |= arg(a, "--target=wasm32-wasi");
		if (t->sysroot) {
			rc |= arg(a, "--sysroot=%s", t->sysroot);
		} else {
			/* Debian's clang also searches /usr/include for wasm32:
			 * keep host headers out. */
			rc |= arg(a, "-nostdinc");
			rc |= arg(a, "-isystem");
			rc |= arg(a, "%s", t->resource_inc);
			rc |= arg(a, "-isystem");
			rc |= arg(a, "%s", t->sysroot_inc);
		}
	} else {
		rc |= arg(a, "-fPIC");
		rc |= arg(a, "-fvisibility=hidden");
	}
	rc |= arg(a, "-O2");
	/* Release builds: assert() would pull stdio, and WASI imports, into units. */
	rc |= arg(a, "-DNDEBUG");
	rc |= arg(a, "-ffunction-sections");
	rc |= arg(a, "-fdata-sections");
	rc |= arg(a, "-ffile-prefix-map=%s=/molt/src/%s", src, name);
	rc |= arg(a, "-ffile-prefix-map=%s=/molt/out", o->out_dir);
	rc |= arg(a, "-ffile-prefix-map=%s=/molt/repo", o->repo_root);
	return rc ? mr_error_set(MR_EINVALID, "%s", mr_error_last()) : 0;
}

static int add_list(argv_t *a, const cJSON *list, const char *prefix)
{
	const cJSON *c;

	for (c = list ? list->child : NULL; c; c = c->next)
		if (arg(a, "%s%s", prefix, c->valuestring))
			return MR_EINVALID;
	return 0;
}

/* Collects each library the recipe depends on, transitively, deps after
 * their dependents (link order). */
static int collect_libs(const mr_build_opts *o, const mr_recipe *r,
			unsigned target, const mr_recipe_set *set,
			char **dirs, const char **names, size_t *n, size_t max)
{
	const cJSON *deps = cJSON_GetObjectItemCaseSensitive(mr_recipe_json(r), "depends");
	const cJSON *d;
	size_t i;

	for (d = deps ? deps->child : NULL; d; d = d->next) {
		mr_recipe *dep = mr_recipe_set_find(set, mr_json_str(d, "name"));
		char *dir;
		if (!dep || strcmp(dep->kind, "library"))
			continue;
		if (!(dir = mr_build_outdir(o, dep, target)))
			return mr_error_set(MR_ERROR, "out of memory");
		for (i = 0; i < *n && strcmp(dirs[i], dir); i++)
			;
		if (i < *n || *n == max) {
			free(dir);
			continue;
		}
		names[*n] = dep->name;
		dirs[(*n)++] = dir;
		if (!mr_fs_exists(dir))
			return mr_error_set(MR_ENOTFOUND,
					    "%s needs %s built for %s first (%s is missing)",
					    r->name, dep->name, mr_target_name(target), dir);
		int rc = collect_libs(o, dep, target, set, dirs, names, n, max);
		if (rc)
			return rc;
	}
	return 0;
}

static int write_manifest(const char *path, const mr_recipe *r, unsigned target,
			  const char *artifact, const char *src_digest,
			  const toolchain *t, const char *schemas_dir,
			  const mr_recipe_set *set)
{
	const cJSON *root = mr_recipe_json(r), *f;
	cJSON *m = cJSON_CreateObject(), *a, *fns, *schemas, *deps, *prov, *linked, *d;
	char digest[MR_DIGEST_STR_LEN + 1];
	char *text = NULL;
	size_t size;
	int rc;

	if ((rc = mr_digest_file(digest, artifact, &size)))
		goto done;
	cJSON_AddNumberToObject(m, "format", 1);
	cJSON_AddStringToObject(m, "name", r->name);
	cJSON_AddStringToObject(m, "version", r->version);
	cJSON_AddStringToObject(m, "kind", r->kind);
	cJSON_AddStringToObject(m, "target", mr_target_triple(target));
	cJSON_AddStringToObject(m, "abi_version", mr_json_str(root, "abi_version"));
	a = cJSON_AddObjectToObject(m, "artifact");
	cJSON_AddStringToObject(a, "digest", digest);
	cJSON_AddNumberToObject(a, "size", (double)size);
	cJSON_AddStringToObject(a, "media_type",
				target == MR_TARGET_WASM32 ? "application/wasm"
							   : "application/vnd.molt.native-unit");
	fns = cJSON_AddArrayToObject(m, "functions");
	schemas = cJSON_AddArrayToObject(m, "schemas");
	f = cJSON_GetObjectItemCaseSensitive(root, "functions");
	for (f = f ? f->child : NULL; !rc && f; f = f->next) {
		cJSON *fn = cJSON_CreateObject();
		const char *keys[] = { "input", "output" };
		int k;
		cJSON_AddItemToArray(fns, fn);
		cJSON_AddNumberToObject(fn, "id", cJSON_GetObjectItemCaseSensitive(f, "id")->valuedouble);
		cJSON_AddStringToObject(fn, "name", mr_json_str(f, "name"));
		for (k = 0; !rc && k < 2; k++) {
			char id[256], sd[MR_DIGEST_STR_LEN + 1];
			mr_buf canon = MR_BUF_INIT;
			int ver;
			cJSON *s, *e;
			if ((rc = mr_schema_ref_parse(mr_json_str(f, keys[k]), id, sizeof(id), &ver)))
				break;
			s = cJSON_AddObjectToObject(fn, keys[k]);
			cJSON_AddStringToObject(s, "id", id);
			cJSON_AddNumberToObject(s, "version", ver);
			rc = mr_schema_load(&canon, sd, schemas_dir, id, ver);
			mr_buf_free(&canon);
			for (e = schemas->child; !rc && e; e = e->next)
				if (!strcmp(mr_json_str(e, "digest"), sd))
					break;
			if (!rc && !e) {
				e = cJSON_CreateObject();
				cJSON_AddStringToObject(e, "id", id);
				cJSON_AddNumberToObject(e, "version", ver);
				cJSON_AddStringToObject(e, "digest", sd);
				cJSON_AddItemToArray(schemas, e);
			}
		}
	}
	/* A unit's depends are the units it needs at run time (loaded
	 * explicitly, never implicitly); libraries are linked in, so they are
	 * provenance, with the exact version used. */
	deps = cJSON_AddArrayToObject(m, "depends");
	prov = cJSON_AddObjectToObject(m, "provenance");
	linked = cJSON_AddArrayToObject(prov, "linked");
	f = cJSON_GetObjectItemCaseSensitive(root, "depends");
	for (f = f ? f->child : NULL; f; f = f->next) {
		const mr_recipe *dep = mr_recipe_set_find(set, mr_json_str(f, "name"));
		int lib = dep && !strcmp(dep->kind, "library");
		d = cJSON_CreateObject();
		cJSON_AddStringToObject(d, "name", mr_json_str(f, "name"));
		cJSON_AddStringToObject(d, "version",
					lib ? dep->version
					    : mr_json_str(f, "version") ? mr_json_str(f, "version") : "*");
		cJSON_AddItemToArray(lib ? linked : deps, d);
	}
	cJSON_AddStringToObject(prov, "recipe", r->digest);
	cJSON_AddStringToObject(prov, "source", src_digest);
	cJSON_AddStringToObject(prov, "toolchain", t->ident);
	if (rc)
		goto done;
	if (!(text = cJSON_Print(m))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	rc = mr_fs_write_atomic(path, text, strlen(text), 0644);
done:
	free(text);
	cJSON_Delete(m);
	return rc;
}

int mr_build(const mr_build_opts *o, const mr_recipe *r, unsigned target,
	     const mr_recipe_set *set)
{
	const cJSON *root = mr_recipe_json(r);
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(root, "build");
	const cJSON *cflags = cJSON_GetObjectItemCaseSensitive(b, "cflags");
	const cJSON *s;
	int module = !strcmp(r->kind, "module");
	char *work = NULL, *src = NULL, *gen = NULL, *obj = NULL, *log = NULL;
	char *out = NULL, *artifact = NULL, *sdk = NULL, *libdirs[64];
	const char *libnames[64];
	char src_digest[MR_DIGEST_STR_LEN + 1], what[256];
	size_t nlibs = 0, i, nsdk = 0;
	argv_t objs = { { 0 }, 0 }, a = { { 0 }, 0 };
	toolchain t;
	int rc, k = 0;

	memset(&t, 0, sizeof(t));
	snprintf(what, sizeof(what), "building %s %s for %s", r->name, r->version,
		 mr_target_name(target));
	if ((rc = toolchain_find(&t, target)))
		goto done;
	if (asprintf(&work, "%s/work/%s/%s", o->out_dir, mr_target_name(target), r->name) < 0 ||
	    asprintf(&gen, "%s/gen", work) < 0 || asprintf(&obj, "%s/obj", work) < 0 ||
	    asprintf(&log, "%s/build.log", work) < 0 ||
	    asprintf(&sdk, "%s/runtime", o->repo_root) < 0 ||
	    !(out = mr_build_outdir(o, r, target))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr_fs_rm_rf(obj)) || (rc = mr_fs_rm_rf(gen)) || (rc = mr_fs_rm_rf(out)) ||
	    (rc = mr_fs_mkdir_p(obj)) || (rc = mr_fs_mkdir_p(gen)) || (rc = mr_fs_mkdir_p(out)))
		goto done;
	unlink(log);
	if ((rc = mr_source_prepare(&src, src_digest, o, r, work)))
		goto done;
	/* An unpacked archive is our own copy: fill templates in place, where
	 * the sources' relative includes expect them. */
	if ((rc = configure_files(cJSON_GetObjectItemCaseSensitive(b, "configure"), src,
				  strncmp(src, work, strlen(work)) ? gen : src)))
		goto done;
	if ((rc = collect_libs(o, r, target, set, libdirs, libnames, &nlibs, 64)))
		goto done;

	/* Compile: the recipe's sources, then (for modules) the SDK; what a
	 * unit does not use, --gc-sections drops. */
	s = cJSON_GetObjectItemCaseSensitive(b, "sources")->child;
	for (;; k++) {
		static const char *const sdk_files[] = { "sdk/module.c", "sdk/mpsize.c",
							 "sdk/arrow.c" };
		char *file;
		if (s)
			file = mr_fs_join(src, s->valuestring);
		else if (module && nsdk < sizeof(sdk_files) / sizeof(*sdk_files))
			file = mr_fs_join(sdk, sdk_files[nsdk++]);
		else
			break;
		argv_free(&a);
		rc = common_flags(&a, &t, target, o, src, r->name);
		rc |= add_list(&a, cJSON_GetObjectItemCaseSensitive(cflags, "all"), "");
		rc |= add_list(&a, cJSON_GetObjectItemCaseSensitive(cflags, mr_target_name(target)), "");
		rc |= add_list(&a, cJSON_GetObjectItemCaseSensitive(b, "defines"), "-D");
		for (const cJSON *inc = cJSON_GetObjectItemCaseSensitive(b, "include_dirs") ?
				cJSON_GetObjectItemCaseSensitive(b, "include_dirs")->child : NULL;
		     inc; inc = inc->next) {
			rc |= arg(&a, "-I%s/%s", gen, inc->valuestring);
			rc |= arg(&a, "-I%s/%s", src, inc->valuestring);
		}
		for (i = 0; i < nlibs; i++)
			rc |= arg(&a, "-I%s/include", libdirs[i]);
		if (module)
			rc |= arg(&a, "-I%s/include", sdk);
		rc |= arg(&a, "-c");
		rc |= arg(&a, "%s", file);
		rc |= arg(&a, "-o");
		rc |= arg(&a, "%s/%03d.o", obj, k);
		free(file);
		if (rc || (rc = arg(&objs, "%s/%03d.o", obj, k)))
			goto done;
		if ((rc = run(&a, log, NULL, o->verbose ? o->log : NULL))) {
			log_tail(log, what);
			goto done;
		}
		if (s)
			s = s->next;
	}

	argv_free(&a);
	if (!module) {
		const cJSON *pub = cJSON_GetObjectItemCaseSensitive(b, "public_include_dirs");
		char *libdir;
		if (asprintf(&libdir, "%s/lib", out) < 0 || (rc = mr_fs_mkdir_p(libdir))) {
			free(libdir);
			rc = rc ? rc : mr_error_set(MR_ERROR, "out of memory");
			goto done;
		}
		rc = arg(&a, "%s", t.ar) | arg(&a, "rcsD") | arg(&a, "%s/lib%s.a", libdir, r->name);
		free(libdir);
		for (i = 0; !rc && i < (size_t)objs.n; i++)
			rc = arg(&a, "%s", objs.v[i]);
		if (rc || (rc = run(&a, log, NULL, o->verbose ? o->log : NULL))) {
			log_tail(log, what);
			goto done;
		}
		for (pub = pub ? pub->child : NULL; pub; pub = pub->next) {
			argv_t cp = { { 0 }, 0 };
			const char *roots[2] = { src, gen };
			for (int j = 0; j < 2 && !rc; j++) {
				char *from = mr_fs_join(roots[j], pub->valuestring);
				if (from && mr_fs_exists(from)) {
					rc = arg(&cp, "cp") | arg(&cp, "-R") | arg(&cp, "--no-preserve=all") |
					     arg(&cp, "%s/.", from) | arg(&cp, "%s/include/", out);
					mr_fs_mkdir_p(cp.v[4]);
					if (!rc)
						rc = run(&cp, log, NULL, o->verbose ? o->log : NULL);
					argv_free(&cp);
				}
				free(from);
			}
			if (rc)
				goto done;
		}
		goto done;
	}

	if (target == MR_TARGET_WASM32) {
		rc = asprintf(&artifact, "%s/%s.wasm", out, r->name) < 0;
		rc |= arg(&a, "%s", t.cc) | arg(&a, "--target=wasm32-wasi");
		if (t.sysroot)
			rc |= arg(&a, "--sysroot=%s", t.sysroot);
		rc |= arg(&a, "-mexec-model=reactor") | arg(&a, "-Wl,--strip-all") |
		      arg(&a, "-Wl,--gc-sections");
	} else {
		rc = asprintf(&artifact, "%s/lib%s.so", out, r->name) < 0;
		rc |= arg(&a, "%s", t.cc) | arg(&a, "-shared") | arg(&a, "-Wl,--build-id=none") |
		      arg(&a, "-Wl,-z,defs") | arg(&a, "-Wl,--gc-sections") | arg(&a, "-s");
	}
	rc |= arg(&a, "-o") | arg(&a, "%s", artifact);
	for (i = 0; !rc && i < (size_t)objs.n; i++)
		rc = arg(&a, "%s", objs.v[i]);
	for (i = 0; !rc && i < nlibs; i++)
		rc = arg(&a, "%s/lib/lib%s.a", libdirs[i], libnames[i]);
	if (rc) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = run(&a, log, NULL, o->verbose ? o->log : NULL))) {
		log_tail(log, what);
		goto done;
	}
	if (target == MR_TARGET_WASM32 && o->wasm_opt) {
		argv_t opt = { { 0 }, 0 };
		char *wo = which("wasm-opt");
		if (!wo) {
			rc = missing_tool("wasm-opt (asked for by --wasm-opt)", "apt-get install binaryen");
			goto done;
		}
		rc = arg(&opt, "%s", wo) | arg(&opt, "-Oz") | arg(&opt, "--strip-debug") |
		     arg(&opt, "--strip-producers") | arg(&opt, "%s", artifact) | arg(&opt, "-o") |
		     arg(&opt, "%s", artifact);
		free(wo);
		if (!rc && (rc = run(&opt, log, NULL, o->verbose ? o->log : NULL)))
			log_tail(log, what);
		argv_free(&opt);
		if (rc)
			goto done;
	}
	/* What a unit may import and export (docs/abi.md): the check 'mrecipe
	 * publish' makes, so a bad unit fails here first, with the same message. */
	if (target == MR_TARGET_WASM32 &&
	    (rc = mr_wasm_check_file(artifact, mr_json_str(root, "abi_version"), NULL)))
		goto done;
	{
		char *mpath = mr_fs_join(out, "manifest.json");
		rc = mpath ? write_manifest(mpath, r, target, artifact, src_digest, &t,
					    o->schemas_dir, set)
			   : mr_error_set(MR_ERROR, "out of memory");
		free(mpath);
	}
done:
	if (rc && rc != MR_ERROR && strncmp(mr_error_last(), "building", 8))
		mr_error_wrap(rc, "%s", what);
	argv_free(&a);
	argv_free(&objs);
	for (i = 0; i < nlibs; i++)
		free(libdirs[i]);
	toolchain_free(&t);
	free(work);
	free(src);
	free(gen);
	free(obj);
	free(log);
	free(out);
	free(artifact);
	free(sdk);
	return rc;
}
