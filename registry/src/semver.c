/* Versions and ranges, as recipes and run-time depends write them. */
#include "mr/semver.h"

#include <stdlib.h>
#include <string.h>

/* Parses MAJOR.MINOR.PATCH with an optional -prerelease; *pre points at
 * the prerelease ("" if none). Anything else is refused. */
static int parse_semver(const char *s, long v[3], const char **pre)
{
	int i;

	for (i = 0; i < 3; i++) {
		char *end;
		if (*s < '0' || *s > '9')
			return -1;
		v[i] = strtol(s, &end, 10);
		if (v[i] < 0 || (*s == '0' && end - s > 1))
			return -1;
		s = end;
		if (i < 2 && *s++ != '.')
			return -1;
	}
	if (*s && *s != '-')
		return -1;
	*pre = s;
	for (s += *s == '-'; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z') || *s == '.' || *s == '-'))
			return -1;
	return 0;
}

int mr_semver_satisfies(const char *version, const char *range)
{
	long have[3], want[3];
	const char *hpre, *wpre;
	char op = range[0];
	int i;

	if (parse_semver(version, have, &hpre))
		return 0;
	if (!strcmp(range, "*"))
		return !*hpre;
	if (op == '^' || op == '~' || op == '=')
		range++;
	else
		op = '=';
	if (parse_semver(range, want, &wpre))
		return 0;
	/* A prerelease only satisfies a range that names it exactly. */
	if (*hpre || *wpre)
		return op == '=' && !strcmp(version, range);
	for (i = 0; i < 3 && have[i] == want[i]; i++)
		;
	if (i == 3)
		return 1;
	if (op == '=' || have[i] < want[i])
		return 0;
	if (op == '~')
		return i == 2;
	/* ^: compatible within the leftmost non-zero component. */
	if (want[0])
		return i > 0;
	if (want[1])
		return i > 1;
	return 0;
}
