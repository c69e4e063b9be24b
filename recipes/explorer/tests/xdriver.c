/* xdriver: calls a locally built explorer unit (native) through libmolt, one
 * call per input line, so tests/cli/explorer.sh can keep handles across
 * calls and send datasets too large for a command line.
 *
 *   xdriver ARTIFACT MANIFEST SCHEMAS [TIMEOUT_MS [STEP_BUDGET]] < script
 *
 * Each line: FUNCTION REQUEST, where REQUEST is JSON or @FILE (JSON read
 * from a file); "$H" in it becomes the handle of the last result that had
 * one. Prints one line per call: the result JSON, or "error: <message>". */
#include "molt/molt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *slurp_n(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	char *p;
	long n;

	if (!f || fseek(f, 0, SEEK_END) || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) ||
	    !(p = malloc((size_t)n + 1)) || fread(p, 1, (size_t)n, f) != (size_t)n) {
		if (f)
			fclose(f);
		return NULL;
	}
	p[n] = '\0';
	fclose(f);
	if (len)
		*len = (size_t)n;
	return p;
}

static char *slurp(const char *path)
{
	return slurp_n(path, NULL);
}

static void put_str(unsigned char **w, const char *s)
{
	size_t n = strlen(s);

	*(*w)++ = 0xd9;
	*(*w)++ = (unsigned char)n;
	memcpy(*w, s, n);
	*w += n;
}

static void put_bin32(unsigned char **w, size_t n)
{
	*(*w)++ = 0xc6;
	for (int k = 3; k >= 0; k--)
		*(*w)++ = (unsigned char)(n >> (8 * k));
}

/* load {format, data: the file's bytes}, as a raw envelope. */
static void loadbin(molt_unit *u, const char *format, const char *path, char *handle, size_t hn)
{
	size_t len, plen, elen, rlen;
	char *data = slurp_n(path, &len), *json = NULL, *h;
	unsigned char *env, *w, *payload, *res = NULL;
	uint32_t fn;
	int is_error;

	if (!data || !(env = malloc(len + 256)) || !(payload = malloc(len + 128))) {
		printf("error: cannot read %s\n", path);
		free(data);
		return;
	}
	w = payload;
	*w++ = 0x82;
	put_str(&w, "format");
	put_str(&w, format);
	put_str(&w, "data");
	put_bin32(&w, len);
	memcpy(w, data, len);
	plen = (size_t)(w - payload) + len;
	w = env;
	*w++ = 0x93;
	put_str(&w, "explorer.load_request");
	*w++ = 0x01;
	put_bin32(&w, plen);
	memcpy(w, payload, plen);
	elen = (size_t)(w - env) + plen;
	if (molt_unit_function_id(u, "load", &fn) ||
	    molt_unit_call_envelope(u, fn, env, elen, &res, &rlen, &is_error) ||
	    molt_envelope_to_json(res, rlen, &json))
		printf("error: %s\n", molt_error_last());
	else {
		printf("%s\n", json);
		if (!is_error && (h = strstr(json, "\"handle\":")))
			snprintf(handle, hn, "%ld", strtol(h + 9, NULL, 10));
	}
	free(json);
	free(res);
	free(env);
	free(payload);
	free(data);
}

int main(int argc, char **argv)
{
	molt_unit_options o = MOLT_UNIT_OPTIONS_INIT;
	molt_unit *u;
	static char line[1 << 16];
	char handle[24] = "0";

	if (argc < 4) {
		fprintf(stderr, "usage: xdriver ARTIFACT MANIFEST SCHEMAS [TIMEOUT_MS [STEP_BUDGET]]\n");
		return 2;
	}
	if (molt_unit_load_local(&u, argv[1], argv[2], argv[3])) {
		fprintf(stderr, "xdriver: %s\n", molt_error_last());
		return 1;
	}
	if (argc > 4)
		o.timeout_ms = (uint32_t)strtoul(argv[4], NULL, 10);
	if (argc > 5)
		o.step_budget = (uint32_t)strtoul(argv[5], NULL, 10);
	o.max_output = (size_t)256 << 20;
	molt_unit_set_options(u, &o);
	while (fgets(line, sizeof(line), stdin)) {
		char *sp = strchr(line, ' '), *req, *out = NULL, *h, *fixed;
		size_t n;
		line[strcspn(line, "\n")] = '\0';
		if (!sp)
			continue;
		*sp = '\0';
		if (!strcmp(line, "loadbin")) {
			char *f = sp + 1, *path = strchr(f, ' ');
			if (path) {
				*path = '\0';
				loadbin(u, f, path + 1, handle, sizeof(handle));
			}
			fflush(stdout);
			continue;
		}
		req = sp[1] == '@' ? slurp(sp + 2) : strdup(sp + 1);
		if (!req) {
			printf("error: cannot read %s\n", sp + 1);
			continue;
		}
		/* Every "$H" becomes the last handle: room for each one. */
		n = strlen(req) + 1;
		for (char *q = strstr(req, "$H"); q; q = strstr(q + 2, "$H"))
			n += strlen(handle);
		if (!(fixed = malloc(n)))
			return 3;
		for (char *p = req, *q, *w = fixed; p; p = q ? q + 2 : NULL) {
			size_t k = (q = strstr(p, "$H")) ? (size_t)(q - p) : strlen(p);
			memcpy(w, p, k);
			w += k;
			if (q) {
				memcpy(w, handle, strlen(handle));
				w += strlen(handle);
			}
			*w = '\0';
		}
		if (molt_unit_call_json(u, line, fixed, &out))
			printf("error: %s\n", molt_error_last());
		else {
			printf("%s\n", out);
			if ((h = strstr(out, "\"handle\":")) && strncmp(h + 9, "0,", 2))
				snprintf(handle, sizeof(handle), "%ld", strtol(h + 9, NULL, 10));
		}
		fflush(stdout);
		free(out);
		free(req);
		free(fixed);
	}
	molt_unit_free(u);
	return 0;
}
