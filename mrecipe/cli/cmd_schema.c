#include "cmd.h"

#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/schemadoc.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const mr_opt opts[] = {
    {"repo", 'C', "DIR", "the repository whose schemas/ 'check' reads (default: .)"},
    {NULL, 0, NULL, NULL},
};

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The .json files of `dir`, sorted (caller frees each and the list). */
static int list_json(char ***out, size_t *n, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char **v = NULL, **grown;
	size_t cap = 0;
	int rc = 0;

	*out = NULL;
	*n = 0;
	if (!d)
		return mr_error_sys(MR_ENOTFOUND, "cannot read the schemas folder %s", dir);
	while (!rc && (e = readdir(d))) {
		size_t len = strlen(e->d_name);
		if (len < 6 || strcmp(e->d_name + len - 5, ".json"))
			continue;
		if (*n == cap) {
			cap = cap ? 2 * cap : 16;
			if (!(grown = realloc(v, cap * sizeof(*v)))) {
				rc = mr_error_set(MR_ERROR, "out of memory");
				break;
			}
			v = grown;
		}
		if (!(v[*n] = mr_fs_join(dir, e->d_name)))
			rc = mr_error_set(MR_ERROR, "out of memory");
		else
			(*n)++;
	}
	closedir(d);
	if (*n > 1)
		qsort(v, *n, sizeof(*v), cmp_names);
	*out = v;
	return rc;
}

/* 1 if the file is a JSON Schema (it has "$schema"), such as recipe.v1.json,
 * which mrecipe lint applies; 0 if not; negative if it is not even JSON. */
static int is_json_schema(const char *path)
{
	mr_json *doc;
	int rc = mr_json_load(&doc, path, MR_SCHEMADOC_MAX_SIZE);

	if (rc)
		return rc;
	rc = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(mr_json_root(doc), "$schema"));
	mr_json_free(doc);
	return rc;
}

static int check(char **files, int nfiles, const repo_paths *p)
{
	char **listed = NULL;
	size_t n = 0, i;
	int rc, bad = 0, good = 0, skipped = 0;
	mr_schemadoc *d;

	if (!nfiles) {
		if ((rc = list_json(&listed, &n, p->schemas)))
			return mr_cli_fail(PROG, rc);
		files = listed;
	} else {
		n = (size_t)nfiles;
	}
	for (i = 0; i < n; i++) {
		if ((rc = is_json_schema(files[i])) == 1) {
			printf("%s: a JSON Schema (\"$schema\"), not a payload schema; skipped "
			       "(mrecipe lint applies it)\n",
			       files[i]);
			skipped++;
			continue;
		}
		if (rc >= 0)
			rc = mr_schemadoc_load(&d, files[i]);
		if (rc) {
			fprintf(stderr, "%s\n", mr_error_last());
			bad = bad ? bad : rc;
			continue;
		}
		printf("%s: %s@%d ok\n", files[i], mr_schemadoc_id(d), mr_schemadoc_version(d));
		good++;
		mr_schemadoc_free(d);
	}
	for (i = 0; listed && i < n; i++)
		free(listed[i]);
	free(listed);
	if (bad)
		fprintf(stderr, "%s: %d of %zu schema files have problems (docs/schemas.md)\n",
			PROG, (int)n - good - skipped, n);
	else if (skipped)
		printf("%d schema%s ok, %d skipped\n", good, good == 1 ? "" : "s", skipped);
	else
		printf("%d schema%s ok\n", good, good == 1 ? "" : "s");
	return mr_error_exit_code(bad);
}

static int digest(char **files, int nfiles)
{
	mr_schemadoc *d;
	int i, rc, bad = 0;

	for (i = 0; i < nfiles; i++) {
		if ((rc = mr_schemadoc_load(&d, files[i]))) {
			fprintf(stderr, "%s\n", mr_error_last());
			bad = bad ? bad : rc;
			continue;
		}
		printf("%s %s@%d\n", mr_schemadoc_digest(d), mr_schemadoc_id(d),
		       mr_schemadoc_version(d));
		mr_schemadoc_free(d);
	}
	return mr_error_exit_code(bad);
}

/* Reads a schema for diff: fully checked, but under any file name, so an
 * old version can come from `git show` into a temporary file. */
static int read_doc(mr_schemadoc **out, const char *path)
{
	mr_buf b = MR_BUF_INIT;
	int rc = mr_fs_read(&b, path, MR_SCHEMADOC_MAX_SIZE);

	if (!rc)
		rc = mr_schemadoc_parse(out, path, (const char *)b.data, b.len);
	mr_buf_free(&b);
	return rc;
}

static int diff(const char *old_path, const char *new_path)
{
	mr_schemadoc *a = NULL, *b = NULL;
	mr_schemadoc_changes ch = {NULL, 0, 0};
	size_t i;
	int rc;

	if ((rc = read_doc(&a, old_path)) || (rc = read_doc(&b, new_path)) ||
	    (rc = mr_schemadoc_diff(&ch, a, b))) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	printf("%s: v%d -> v%d\n", mr_schemadoc_id(a), mr_schemadoc_version(a),
	       mr_schemadoc_version(b));
	if (!ch.n)
		printf("no changes\n");
	for (i = 0; i < ch.n; i++)
		printf("%-10s  %s: %s\n", ch.items[i].breaking ? "breaking" : "compatible",
		       *ch.items[i].path ? ch.items[i].path : "(root)", ch.items[i].what);
	printf("%s\n", ch.breaking ? "breaking" : "compatible");
	rc = ch.breaking ? 1 : 0;
done:
	mr_schemadoc_changes_free(&ch);
	mr_schemadoc_free(a);
	mr_schemadoc_free(b);
	return rc;
}

/* Dispatches check, digest and diff. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *verb = args->nrest ? args->rest[0] : "";
	char **rest = args->rest + 1;
	int nrest = args->nrest - 1, rc;
	repo_paths p;

	if (!strcmp(verb, "check")) {
		if ((rc = repo_open(&p, mr_args_get(cmd, args, "repo"), NULL)))
			return mr_cli_fail(PROG, rc);
		rc = check(rest, nrest, &p);
		repo_close(&p);
		return rc;
	}
	if (!strcmp(verb, "digest") && nrest >= 1)
		return digest(rest, nrest);
	if (!strcmp(verb, "diff") && nrest == 2)
		return diff(rest[0], rest[1]);
	mr_cli_error(PROG,
		     "%s: expected 'check [FILE...]', 'digest FILE...' or 'diff OLD NEW', "
		     "found '%s'%s; see '%s schema --help'",
		     cmd->name, verb,
		     !strcmp(verb, "digest") || !strcmp(verb, "diff")
			 ? " with the wrong number of files"
			 : "",
		     PROG);
	return 2;
}

const mr_cmd mrecipe_cmd_schema = {
    "schema",
    "check schema files, print their digests, or say whether a new version is "
    "compatible (docs/schemas.md)",
    "check [-C DIR] [FILE...] | digest FILE... | diff OLD NEW\n\n"
    "  check    checks each FILE (default: every schemas/*.json); problems are\n"
    "           reported with file:line:col; exit 2 if any\n"
    "  digest   prints 'sha256:<hex> id@version', the digest manifests record\n"
    "  diff     lists each change with its path, then 'compatible' (exit 0) or\n"
    "           'breaking' (exit 1); exit 2 if a file is not a valid schema",
    opts,
    run,
};
