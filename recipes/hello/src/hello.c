/* hello: the smallest real Molt unit. greet(name) -> "Hello, <name>!" */
#include "molt/module.h"

#include <string.h>

#define NAME_MAX_BYTES 256

static int greet(molt_task *t, const msgpack_object *in, msgpack_packer *out)
{
	static const char pre[] = "Hello, ";
	const char *name;
	uint32_t len;

	if (molt_get_str(t, in, "name", &name, &len))
		return MOLT_FAILED;
	if (len == 0)
		return molt_fail(t, MOLT_INVALID_INPUT, "name",
				 "expected a non-empty name, found \"\"");
	if (len > NAME_MAX_BYTES)
		return molt_fail(t, MOLT_INVALID_INPUT, "name",
				 "expected at most %d bytes, found %u", NAME_MAX_BYTES,
				 (unsigned)len);
	msgpack_pack_map(out, 1);
	molt_pack_str(out, "greeting");
	msgpack_pack_str(out, sizeof(pre) - 1 + len + 1);
	msgpack_pack_str_body(out, pre, sizeof(pre) - 1);
	msgpack_pack_str_body(out, name, len);
	msgpack_pack_str_body(out, "!", 1);
	return MOLT_DONE;
}

MOLT_FUNCTIONS({ 1, "greet", "hello.greet_request", 1, "hello.greet_response", 1,
		 greet });
