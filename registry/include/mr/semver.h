/* Semantic versions: MAJOR.MINOR.PATCH[-prerelease] and the ranges recipes
 * and manifests use (docs/recipes.md). */
#ifndef MR_SEMVER_H
#define MR_SEMVER_H

/* 1 if `version` satisfies `range`: *, X.Y.Z or =X.Y.Z, ^X.Y.Z, ~X.Y.Z; a
 * prerelease only satisfies a range that names it exactly. */
int mr_semver_satisfies(const char *version, const char *range);

#endif
