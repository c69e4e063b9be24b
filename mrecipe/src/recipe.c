#include "mrecipe/recipe.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECIPE_MAX (1 << 20)

int mr_recipe_load(mr_recipe **out, const char *dir, const char *schemas_dir)
{
	mr_recipe *r = calloc(1, sizeof(*r));
	mr_buf text = MR_BUF_INIT, report = MR_BUF_INIT;
	char *file = mr_fs_join(dir, "recipe.json");
	const cJSON *root, *t;
	int rc = 0;

	*out = NULL;
	if (!r || !file || !(r->dir = strdup(dir))) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr_fs_read(&text, file, RECIPE_MAX))) {
		if (rc == MR_ENOTFOUND)
			rc = mr_error_set(MR_ENOTFOUND,
					  "%s: no recipe.json in this folder; every "
					  "recipe folder needs one (docs/recipes.md)",
					  file);
		goto done;
	}
	mr_digest_buf(r->digest, text.data, text.len);
	if ((rc = mr_json_parse(&r->doc, file, (const char *)text.data, text.len)))
		goto done;
	if (mr_recipe_lint(&report, r->doc, dir, schemas_dir)) {
		report.data[--report.len] = '\0';
		rc = mr_error_set(MR_EINVALID, "%s", (char *)report.data);
		goto done;
	}
	root = mr_json_root(r->doc);
	r->name = mr_json_str(root, "name");
	r->version = mr_json_str(root, "version");
	r->kind = mr_json_str(root, "kind");
	t = cJSON_GetObjectItemCaseSensitive(root, "targets");
	for (t = t->child; t; t = t->next)
		r->targets |= !strcmp(t->valuestring, "wasm32") ? MR_TARGET_WASM32
								: MR_TARGET_NATIVE;
done:
	free(file);
	mr_buf_free(&text);
	mr_buf_free(&report);
	if (rc)
		mr_recipe_free(r);
	else
		*out = r;
	return rc;
}

void mr_recipe_free(mr_recipe *r)
{
	if (!r)
		return;
	mr_json_free(r->doc);
	free(r->dir);
	free(r);
}

const cJSON *mr_recipe_json(const mr_recipe *r)
{
	return mr_json_root(r->doc);
}

static int cmp_recipe(const void *a, const void *b)
{
	return strcmp((*(mr_recipe *const *)a)->name,
		      (*(mr_recipe *const *)b)->name);
}

int mr_recipe_set_load(mr_recipe_set *out, const char *recipes_dir,
		       const char *schemas_dir)
{
	mr_buf errors = MR_BUF_INIT;
	struct dirent *e;
	DIR *d = opendir(recipes_dir);
	size_t cap = 0, i;
	int rc = 0, bad = 0;

	memset(out, 0, sizeof(*out));
	if (!d)
		return mr_error_sys(MR_ENOTFOUND, "opening recipes folder %s",
				    recipes_dir);
	while ((e = readdir(d))) {
		char *dir;
		mr_recipe *r;
		if (e->d_name[0] == '.')
			continue;
		if (!(dir = mr_fs_join(recipes_dir, e->d_name))) {
			rc = mr_error_set(MR_ERROR, "out of memory");
			break;
		}
		rc = mr_recipe_load(&r, dir, schemas_dir);
		free(dir);
		if (rc) {
			mr_buf_printf(&errors, "%s%s", errors.len ? "\n" : "",
				      mr_error_last());
			bad = rc;
			rc = 0;
			continue;
		}
		if (out->n == cap) {
			mr_recipe **p = realloc(out->items, (cap = cap ? cap * 2 : 16) * sizeof(*p));
			if (!p) {
				mr_recipe_free(r);
				rc = mr_error_set(MR_ERROR, "out of memory");
				break;
			}
			out->items = p;
		}
		out->items[out->n++] = r;
	}
	closedir(d);
	if (!rc && bad)
		rc = mr_error_set(bad, "%s", (char *)errors.data);
	mr_buf_free(&errors);
	if (!rc && out->n)
		qsort(out->items, out->n, sizeof(*out->items), cmp_recipe);
	for (i = 1; !rc && i < out->n; i++)
		if (!strcmp(out->items[i]->name, out->items[i - 1]->name))
			rc = mr_error_set(MR_EINVALID,
					  "recipes %s and %s are both named '%s'; names must be unique",
					  out->items[i - 1]->dir, out->items[i]->dir,
					  out->items[i]->name);
	if (rc)
		mr_recipe_set_free(out);
	return rc;
}

mr_recipe *mr_recipe_set_find(const mr_recipe_set *set, const char *name)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		if (!strcmp(set->items[i]->name, name))
			return set->items[i];
	return NULL;
}

void mr_recipe_set_free(mr_recipe_set *set)
{
	size_t i;

	for (i = 0; i < set->n; i++)
		mr_recipe_free(set->items[i]);
	free(set->items);
	memset(set, 0, sizeof(*set));
}

typedef struct {
	const mr_recipe_set *set;
	mr_recipe **order;
	size_t n;
	unsigned char *state; /* 0 new, 1 on the stack, 2 done */
	mr_recipe **stack;
	size_t depth;
} plan_ctx;

static size_t index_of(const mr_recipe_set *set, const mr_recipe *r)
{
	size_t i;

	for (i = 0; set->items[i] != r; i++)
		;
	return i;
}

static int visit(plan_ctx *p, mr_recipe *r)
{
	size_t k = index_of(p->set, r), i;
	const cJSON *deps = cJSON_GetObjectItemCaseSensitive(mr_recipe_json(r), "depends");
	const cJSON *d;
	int rc;

	if (p->state[k] == 2)
		return 0;
	if (p->state[k] == 1) {
		mr_buf cycle = MR_BUF_INIT;
		for (i = 0; p->stack[i] != r; i++)
			;
		for (; i < p->depth; i++)
			mr_buf_printf(&cycle, "%s -> ", p->stack[i]->name);
		mr_buf_puts(&cycle, r->name);
		rc = mr_error_set(MR_EINVALID,
				  "dependency cycle: %s; remove one of these depends",
				  (char *)cycle.data);
		mr_buf_free(&cycle);
		return rc;
	}
	p->state[k] = 1;
	p->stack[p->depth++] = r;
	for (d = deps ? deps->child : NULL; d; d = d->next) {
		const char *name = mr_json_str(d, "name");
		const char *range = mr_json_str(d, "version");
		mr_recipe *dep = mr_recipe_set_find(p->set, name);
		if (!dep)
			return mr_error_set(MR_EINVALID,
					    "%s/recipe.json: %s depends on '%s', but no recipe has that name",
					    r->dir, r->name, name);
		if (range && !mr_semver_satisfies(dep->version, range))
			return mr_error_set(MR_EINVALID,
					    "%s/recipe.json: %s needs %s %s, but the recipe has version %s",
					    r->dir, r->name, name, range, dep->version);
		if ((rc = visit(p, dep)))
			return rc;
	}
	p->depth--;
	p->state[k] = 2;
	p->order[p->n++] = r;
	return 0;
}

int mr_recipe_set_plan(const mr_recipe_set *set, mr_recipe **roots,
		       size_t nroots, mr_recipe ***order, size_t *norder)
{
	plan_ctx p = { set, NULL, 0, NULL, NULL, 0 };
	size_t i;
	int rc = 0;

	*order = NULL;
	*norder = 0;
	p.order = calloc(set->n + 1, sizeof(*p.order));
	p.state = calloc(set->n + 1, 1);
	p.stack = calloc(set->n + 1, sizeof(*p.stack));
	if (!p.order || !p.state || !p.stack)
		rc = mr_error_set(MR_ERROR, "out of memory");
	for (i = 0; !rc && i < nroots; i++)
		rc = visit(&p, roots[i]);
	free(p.state);
	free(p.stack);
	if (rc) {
		free(p.order);
		return rc;
	}
	*order = p.order;
	*norder = p.n;
	return 0;
}
