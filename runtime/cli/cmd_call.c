#include "common.h"

#include "mr/error.h"

#include <stdio.h>
#include <stdlib.h>

static const mr_opt opts[] = {
	MOLT_COMMON_OPTS,
	{ "envelope-hex", 0, NULL, "print the raw result envelope as hex (for byte-level checks)" },
	{ NULL, 0, NULL, NULL },
};

static void print_hex(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", p[i]);
	putchar('\n');
}

/* Loads a native unit explicitly and calls one function with JSON. */
static int run(const mr_cmd *cmd, mr_args *args)
{
	char name[128], version[64], *out = NULL;
	unsigned char *env = NULL, *res = NULL;
	size_t env_len, res_len;
	molt_runtime *rt = NULL;
	molt_unit *u = NULL;
	int rc, is_error;

	if (args->nrest != 3) {
		mr_cli_error(PROG, "call: expected NAME@VERSION FUNCTION JSON, e.g. "
				   "molt call hello@0.1.0 greet '{\"name\":\"Ada\"}'");
		return 2;
	}
	if ((rc = split_ref(args->rest[0], name, sizeof(name), version, sizeof(version))) ||
	    (rc = open_runtime(&rt, cmd, args, 1)))
		return rc;
	if ((rc = molt_unit_load(&u, rt, name, version))) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	if (mr_args_get(cmd, args, "envelope-hex")) {
		uint32_t fn;
		if (!(rc = molt_unit_function_id(u, args->rest[1], &fn)) &&
		    !(rc = molt_unit_encode_request(u, args->rest[1], args->rest[2], &env, &env_len)))
			rc = molt_unit_call_envelope(u, fn, env, env_len, &res, &res_len, &is_error);
		if (rc)
			rc = mr_cli_fail(PROG, rc);
		else
			print_hex(res, res_len);
		goto done;
	}
	if ((rc = molt_unit_call_json(u, args->rest[1], args->rest[2], &out)))
		rc = mr_cli_fail(PROG, rc);
	else
		printf("%s\n", out);
done:
	free(out);
	free(env);
	free(res);
	molt_unit_free(u);
	molt_runtime_free(rt);
	return rc;
}

const mr_cmd molt_cmd_call = {
	"call", "load a native unit explicitly and call a function: JSON in, JSON out",
	"[options] NAME@VERSION FUNCTION JSON", opts, run,
};
