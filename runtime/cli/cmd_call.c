#define _GNU_SOURCE
#include "common.h"

#include "mr/buf.h"
#include "mr/error.h"
#include "mr/fs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The largest request read from a file or standard input. */
#define REQUEST_MAX ((size_t)256 << 20)

static const mr_opt opts[] = {
	MOLT_COMMON_OPTS,
	{ "envelope-hex", 0, NULL, "print the raw result envelope as hex (for byte-level checks)" },
	{ "timeout-ms", 0, "MS", "cancel the call after MS milliseconds: runtime error 5 (default: none)" },
	{ "step-budget", 0, "N", "work units per poll, sent to the unit (default: the unit's, 65536)" },
	{ "max-output", 0, "BYTES", "refuse a result envelope over BYTES: runtime error 6 (default: 64 MiB)" },
	{ "bundle", 'b', "FILE", "load the unit from a bundle (mrecipe pack) offline, without a registry" },
	{ "locked", 0, NULL, "load exactly what molt.lock pins for NAME (the digests must agree)" },
	{ "lock", 0, "FILE", "as --locked, with this lockfile" },
	{ "digest", 0, "SHA256", "load the unit whose signed manifest has this digest: FUNCTION JSON follow" },
	{ "with", 0, "NAME@VERSION[,...]", "load these units first, in order: the unit's run-time depends" },
	{ NULL, 0, NULL, NULL },
};


static void print_hex(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", p[i]);
	putchar('\n');
}

/* Reads option `name` as an integer in 1..max into *v (left alone when the
 * option is absent); prints the error and returns 2 when malformed. */
static int number_opt(const mr_cmd *cmd, const mr_args *args, const char *name,
		      unsigned long long max, unsigned long long *v)
{
	const char *s = mr_args_get(cmd, args, name);
	unsigned long long n;
	char *end;

	if (!s)
		return 0;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || n < 1 || n > max) {
		mr_cli_error(PROG, "--%s: expected a whole number from 1 to %llu, found '%s'", name,
			     max, s);
		return 2;
	}
	*v = n;
	return 0;
}

/* The limits from the command line (molt_unit_options). */
static int limits(const mr_cmd *cmd, const mr_args *args, molt_unit_options *o)
{
	unsigned long long timeout = 0, budget = 0, max = 0;
	int rc;

	if ((rc = number_opt(cmd, args, "timeout-ms", UINT32_MAX, &timeout)) ||
	    (rc = number_opt(cmd, args, "step-budget", UINT32_MAX, &budget)) ||
	    (rc = number_opt(cmd, args, "max-output", SIZE_MAX, &max)))
		return rc;
	o->timeout_ms = (uint32_t)timeout;
	o->step_budget = (uint32_t)budget;
	o->max_output = (size_t)max;
	return 0;
}

/* Loads each --with unit into rt first (the run-time depends of the unit
 * called: nothing is loaded implicitly). They stay loaded until *deps is
 * freed by the caller, unit by unit. */
static int load_with(const mr_cmd *cmd, const mr_args *args, molt_runtime *rt,
		     molt_unit **deps, size_t max, size_t *n)
{
	const char *list = mr_args_get(cmd, args, "with");
	char name[128], version[64], *copy, *save = NULL, *k;
	int rc = 0;

	*n = 0;
	if (!list)
		return 0;
	if (!(copy = strdup(list)))
		return 3;
	for (k = strtok_r(copy, ",", &save); k && !rc; k = strtok_r(NULL, ",", &save)) {
		if (*n == max) {
			mr_cli_error(PROG, "--with: at most %zu units", max);
			rc = 2;
		} else if (!(rc = split_ref(k, name, sizeof(name), version, sizeof(version))) &&
			   (rc = molt_unit_load(&deps[*n], rt, name, version))) {
			rc = mr_cli_fail(PROG, rc);
		} else if (!rc) {
			(*n)++;
		}
	}
	free(copy);
	return rc;
}

/* Loads the unit the command line names: by NAME@VERSION, by lockfile
 * entry (--locked, --lock FILE; the version must be the locked one) or by
 * manifest digest (--digest). */
static int load_named(const mr_cmd *cmd, const mr_args *args, molt_runtime *rt,
		      const char *ref, molt_unit **u)
{
	const char *lock = mr_args_get(cmd, args, "lock"), *digest = mr_args_get(cmd, args, "digest");
	char name[128], version[64];
	molt_lockfile *lf = NULL;
	molt_lock_entry e;
	int rc;

	if (digest)
		return (rc = molt_unit_load_digest(u, rt, digest)) ? mr_cli_fail(PROG, rc) : 0;
	if ((rc = split_ref(ref, name, sizeof(name), version, sizeof(version))))
		return rc;
	if (!lock && !mr_args_get(cmd, args, "locked"))
		return (rc = molt_unit_load(u, rt, name, version)) ? mr_cli_fail(PROG, rc) : 0;
	if ((rc = molt_lockfile_open(&lf, lock ? lock : "molt.lock")) ||
	    (rc = molt_lockfile_entry(&e, lf, name, NULL))) {
		rc = mr_cli_fail(PROG, rc);
	} else if (strcmp(e.version, version)) {
		mr_cli_error(PROG, "%s pins %s@%s, not %s; call the locked version, or molt lock %s "
				   "again", lock ? lock : "molt.lock", name, e.version, ref, ref);
		rc = 2;
	} else if ((rc = molt_unit_load_locked(u, rt, lf, name))) {
		rc = mr_cli_fail(PROG, rc);
	}
	molt_lockfile_free(lf);
	return rc;
}

/* Loads a native unit explicitly and calls one function with JSON. */
/* The request: JSON text as given, or read from "@FILE" or "-" (standard
 * input) when it is too big for a command line. NUL-terminated in `buf`. */
static int request_text(const char *arg, mr_buf *buf, const char **json)
{
	const char *path = !strcmp(arg, "-") ? "/dev/stdin" : arg[0] == '@' ? arg + 1 : NULL;
	const char *what = path && arg[0] == '-' ? "standard input" : path;
	int rc;

	*json = arg;
	if (!path)
		return 0;
	if ((rc = mr_fs_read(buf, path, REQUEST_MAX)) || (rc = mr_buf_put(buf, "", 1)))
		return mr_error_wrap(rc, "reading the request (%s)", arg);
	if (strlen((const char *)buf->data) != buf->len - 1)
		return mr_error_set(MR_EINVALID, "%s: the request holds a NUL byte; expected JSON text",
				    what);
	*json = (const char *)buf->data;
	return 0;
}

static int run(const mr_cmd *cmd, mr_args *args)
{
	molt_unit_options o = MOLT_UNIT_OPTIONS_INIT;
	char name[128], version[64], *out = NULL;
	unsigned char *env = NULL, *res = NULL;
	size_t env_len, res_len;
	molt_runtime *rt = NULL;
	molt_unit *u = NULL, *deps[16];
	size_t ndeps = 0;
	int by_digest = mr_args_get(cmd, args, "digest") != NULL;
	const char *bundle = mr_args_get(cmd, args, "bundle"), *func, *json;
	mr_buf req = MR_BUF_INIT;
	const char *paths[MOLT_CLI_MAX_KEYS];
	char *keys = NULL;
	size_t nkeys;
	int rc, is_error;

	if (bundle) {
		if (args->nrest != 2) {
			mr_cli_error(PROG, "call --bundle FILE: expected FUNCTION JSON, e.g. molt call "
					   "--bundle hello.molt -k dev.pub greet '{\"name\":\"Ada\"}'");
			return 2;
		}
		func = args->rest[0];
		if ((rc = request_text(args->rest[1], &req, &json))) {
			rc = mr_cli_fail(PROG, rc);
			goto done;
		}
		if ((rc = limits(cmd, args, &o)) || (rc = bundle_keys(cmd, args, paths, &nkeys, &keys)))
			goto done;
		rc = molt_unit_load_bundle(&u, bundle, paths, nkeys);
		free(keys);
		if (rc || (rc = molt_unit_set_options(u, &o))) {
			rc = mr_cli_fail(PROG, rc);
			goto done;
		}
		goto loaded;
	}
	if (args->nrest != 3 - by_digest) {
		mr_cli_error(PROG, by_digest ? "call --digest SHA256: expected FUNCTION JSON"
					     : "call: expected NAME@VERSION FUNCTION JSON, e.g. "
					       "molt call hello@0.1.0 greet '{\"name\":\"Ada\"}'");
		return 2;
	}
	func = args->rest[1 - by_digest];
	if ((rc = request_text(args->rest[2 - by_digest], &req, &json))) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	if ((!by_digest &&
	     (rc = split_ref(args->rest[0], name, sizeof(name), version, sizeof(version)))) ||
	    (rc = limits(cmd, args, &o)) || (rc = open_runtime(&rt, cmd, args, 1)))
		goto done;
	if ((rc = load_with(cmd, args, rt, deps, sizeof(deps) / sizeof(deps[0]), &ndeps)) ||
	    (rc = load_named(cmd, args, rt, by_digest ? NULL : args->rest[0], &u)))
		goto done;
	if ((rc = molt_unit_set_options(u, &o))) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
loaded:
	if (mr_args_get(cmd, args, "envelope-hex")) {
		uint32_t fn;
		if (!(rc = molt_unit_function_id(u, func, &fn)) &&
		    !(rc = molt_unit_encode_request(u, func, json, &env, &env_len)))
			rc = molt_unit_call_envelope(u, fn, env, env_len, &res, &res_len, &is_error);
		if (rc)
			rc = mr_cli_fail(PROG, rc);
		else
			print_hex(res, res_len);
		goto done;
	}
	if ((rc = molt_unit_call_json(u, func, json, &out)))
		rc = mr_cli_fail(PROG, rc);
	else
		printf("%s\n", out);
done:
	mr_buf_free(&req);
	free(out);
	free(env);
	free(res);
	molt_unit_free(u);
	while (ndeps)
		molt_unit_free(deps[--ndeps]);
	molt_runtime_free(rt);
	return rc;
}

const mr_cmd molt_cmd_call = {
	"call", "load a native unit explicitly and call a function: JSON in, JSON out",
	"[options] NAME@VERSION FUNCTION JSON|@FILE|- | --digest SHA256 FUNCTION JSON | --bundle FILE -k KEY FUNCTION JSON", opts, run,
};
