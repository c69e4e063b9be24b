#!/usr/bin/env bash
# Apps link libmolt: install it, build a small C app against it with
# pkg-config and with CMake's find_package, and let the app fetch, verify,
# load and call the fixture's hello unit.
. "$(dirname "$0")/lib.sh"

build=${MOLT_BUILD_DIR:-$here/build}
run cmake --install "$build" --prefix "$T/inst"
expect "cmake --install puts libmolt, headers and the CLI in a prefix" 0
for f in include/molt/molt.h lib/pkgconfig/molt.pc lib/cmake/molt/moltConfig.cmake bin/molt; do
  [ -e "$T/inst/$f" ] && ok "installed $f" || fail "missing $f"
done
mkdir -p "$T/app"
cat > "$T/app/app.c" <<'C'
#include <molt/molt.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	molt_options o = MOLT_OPTIONS_INIT;
	const char *keys[] = { argv[2] };
	molt_runtime *rt = NULL;
	molt_unit *u = NULL;
	char *out = NULL;
	int rc;

	if (argc != 4)
		return 2;
	o.registry = argv[1];
	o.trusted_keys = keys;
	o.trusted_keys_count = 1;
	o.cache_dir = argv[3];
	if ((rc = molt_runtime_open(&rt, &o)) || (rc = molt_unit_load(&u, rt, "hello", "0.1.0")) ||
	    (rc = molt_unit_call_json(u, "greet", "{\"name\":\"app\"}", &out))) {
		fprintf(stderr, "app: %s\n", molt_error_last());
	} else {
		printf("%s\n", out);
	}
	free(out);
	molt_unit_free(u);
	molt_runtime_free(rt);
	return rc ? 1 : 0;
}
C
export PKG_CONFIG_PATH="$T/inst/lib/pkgconfig"
run sh -c "cc -std=c11 -Wall -Werror \$(pkg-config --cflags molt) -o '$T/app/app' '$T/app/app.c' \$(pkg-config --libs molt)"
expect "an app builds with pkg-config --cflags --libs molt" 0
run env LD_LIBRARY_PATH="$T/inst/lib" "$T/app/app" "$FIXTURE/registry" "$FIXTURE/dev.pub" "$T/cache"
expect "and fetches, verifies, loads and calls a unit" 0 '{"greeting":"Hello, app!"}'
cat > "$T/app/CMakeLists.txt" <<'C'
cmake_minimum_required(VERSION 3.25)
project(app C)
find_package(molt REQUIRED)
add_executable(app2 app.c)
target_link_libraries(app2 PRIVATE molt::molt)
C
run cmake -S "$T/app" -B "$T/app/b" -DCMAKE_PREFIX_PATH="$T/inst"
expect "find_package(molt) finds the installed package" 0
run cmake --build "$T/app/b"
expect "an app builds against molt::molt" 0
run env LD_LIBRARY_PATH="$T/inst/lib" "$T/app/b/app2" "$FIXTURE/registry" "$T/nokey.pub" "$T/cache"
expect "and a missing trusted key is an error from the library" 1 "app: "
finish
