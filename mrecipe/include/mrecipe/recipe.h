/* Recipes: loading, linting and the set of recipes in a tree. */
#ifndef MRECIPE_RECIPE_H
#define MRECIPE_RECIPE_H

#include "mr/buf.h"
#include "mr/digest.h"
#include "mr/json.h"
#include "mr/semver.h"

#include <stddef.h>

enum { MR_TARGET_WASM32 = 1, MR_TARGET_NATIVE = 2 };

/* One recipe, loaded from recipes/<name>/recipe.json. The cJSON values
 * point into `doc` and live as long as the recipe. */
typedef struct mr_recipe {
	char *dir;           /* the recipe folder */
	mr_json *doc;        /* the parsed file, with positions */
	const char *name;    /* "hello" */
	const char *version; /* "0.1.0" */
	const char *kind;    /* "module" or "library" */
	unsigned targets;    /* MR_TARGET_* bits */
	char digest[MR_DIGEST_STR_LEN + 1]; /* sha256 of recipe.json's bytes */
} mr_recipe;

/* Validates `doc` against schemas/recipe.v1.json and the rules the schema
 * can't express, appending one line per problem ("file:line:col: path:
 * what was expected, what was found") to `report`. `schemas_dir` is where
 * referenced schema files must exist. Returns the number of problems. */
int mr_recipe_lint(mr_buf *report, const mr_json *doc, const char *dir,
		   const char *schemas_dir);

/* Loads and lints a recipe folder. On lint problems returns MR_EINVALID
 * with every problem in the message, one per line. Caller frees. */
int mr_recipe_load(mr_recipe **out, const char *dir, const char *schemas_dir);

/* Frees a recipe; NULL is a no-op. */
void mr_recipe_free(mr_recipe *r);

/* The recipe's root JSON object. */
const cJSON *mr_recipe_json(const mr_recipe *r);

/* A set of recipes, all the folders of a recipes/ tree. */
typedef struct {
	mr_recipe **items; /* sorted by name */
	size_t n;
} mr_recipe_set;

/* Loads every recipes_dir/<name>/recipe.json; all lint problems of all
 * recipes are reported together (MR_EINVALID). */
int mr_recipe_set_load(mr_recipe_set *out, const char *recipes_dir,
		       const char *schemas_dir);

/* Finds a recipe by name (NULL if absent). */
mr_recipe *mr_recipe_set_find(const mr_recipe_set *set, const char *name);

/* Orders `roots` and everything they depend on so dependencies come first.
 * Fills `order` (caller frees the array, not the recipes). A missing
 * dependency, a version outside its range, or a cycle (named as its path)
 * is MR_EINVALID. */
int mr_recipe_set_plan(const mr_recipe_set *set, mr_recipe **roots,
		       size_t nroots, mr_recipe ***order, size_t *norder);

/* Frees the set and its recipes. */
void mr_recipe_set_free(mr_recipe_set *set);

#endif
