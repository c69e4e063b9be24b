/* A small, bounds-checked WebAssembly binary reader, and the check that a
 * wasm unit imports and exports only what docs/abi.md allows ("What a unit
 * may import and export"). */
#ifndef MR_WASM_H
#define MR_WASM_H

#include "mr/buf.h"

#include <stddef.h>
#include <stdint.h>

/* External kinds of imports and exports, as the binary format numbers them. */
enum {
	MR_WASM_FUNC = 0,
	MR_WASM_TABLE = 1,
	MR_WASM_MEMORY = 2,
	MR_WASM_GLOBAL = 3,
	MR_WASM_TAG = 4,
};

/* Limits of the JS embedding (anything larger could not be instantiated by
 * the browser host, so the reader refuses it rather than allocate for it). */
#define MR_WASM_MAX_IMPORTS 100000
#define MR_WASM_MAX_EXPORTS 100000
#define MR_WASM_MAX_FUNCS 1000000
#define MR_WASM_MAX_TYPES 1000000

/* A name inside the module's bytes: `len` bytes at `p`, not NUL-terminated. */
typedef struct {
	const unsigned char *p; /* borrowed from the module's bytes */
	uint32_t len;
} mr_wasm_name;

/* One entry of the import section. */
typedef struct {
	mr_wasm_name module; /* e.g. "wasi_snapshot_preview1" */
	mr_wasm_name field;  /* e.g. "fd_write" */
	uint8_t kind;        /* MR_WASM_FUNC, ... */
	uint32_t type;       /* MR_WASM_FUNC: its type index; else 0 */
	size_t offset;       /* byte offset of the entry in the file */
} mr_wasm_import;

/* One entry of the export section. */
typedef struct {
	mr_wasm_name name;
	uint8_t kind;   /* MR_WASM_FUNC, ... */
	uint32_t index; /* into the kind's index space (imports first) */
	size_t offset;  /* byte offset of the entry in the file */
} mr_wasm_export;

/* A parsed module (opaque). It borrows the bytes it was parsed from: they
 * must outlive it. */
typedef struct mr_wasm mr_wasm;

/* Parses `len` bytes: the header, every section's id and size, the type,
 * import, function, export, start and code sections (others are skipped by
 * their size). Every length and offset is checked against the buffer before
 * use. On success *out is the module (caller frees with mr_wasm_free); a
 * malformed file is MR_EINVALID, with a message naming the section and the
 * byte offset ("malformed wasm at byte 42 (import section): ..."). */
int mr_wasm_parse(mr_wasm **out, const void *bytes, size_t len);

/* Frees a module; NULL is a no-op. */
void mr_wasm_free(mr_wasm *m);

/* The number of imports; and import `i` (< the count), owned by `m`. */
size_t mr_wasm_import_count(const mr_wasm *m);
const mr_wasm_import *mr_wasm_import_at(const mr_wasm *m, size_t i);

/* The number of exports; and export `i` (< the count), owned by `m`. */
size_t mr_wasm_export_count(const mr_wasm *m);
const mr_wasm_export *mr_wasm_export_at(const mr_wasm *m, size_t i);

/* The export called `name` (the first, if the file repeats it), or NULL. */
const mr_wasm_export *mr_wasm_export_find(const mr_wasm *m, const char *name);

/* 1 if the module has a start section (a function run at instantiation),
 * and its function index in *func (may be NULL); else 0. */
int mr_wasm_start(const mr_wasm *m, uint32_t *func);

/* Writes function `func`'s signature (index space: imports first) as text,
 * e.g. "(i64, i32, i32) -> i32" or "() -> nil", into `out` (`n` bytes,
 * always NUL-terminated). MR_ENOTFOUND if there is no such function. */
int mr_wasm_func_sig(const mr_wasm *m, uint32_t func, char *out, size_t n);

/* If defined function `func`'s body is exactly `i32.const N; end` (local
 * declarations allowed), writes N to *value and returns 0. MR_ENOTFOUND if
 * `func` is not a function defined in the module (e.g. an import);
 * MR_EVERIFY, with a message, if the body is anything else. */
int mr_wasm_func_const_i32(const mr_wasm *m, uint32_t func, int32_t *value);

/* Parses "MAJOR.MINOR" (decimal, each 0..65535) into (major << 16) | minor;
 * MR_EINVALID if malformed. */
int mr_wasm_abi_parse(const char *s, uint32_t *out);

/* Checks a wasm unit against docs/abi.md: it exports exactly memory
 * `memory` and the seven molt_* functions with their signatures, plus
 * optionally `_initialize` () -> nil; imports only names on the allow-list;
 * has no start function; and molt_abi_version is the constant that
 * `abi_version` (the manifest's "MAJOR.MINOR") names. Each problem is
 * appended to `report` (may be NULL) as one line ending in "\n". Returns 0
 * if the unit passes; MR_EVERIFY if it has problems, a malformed or missing
 * `abi_version` being one (the message counts them and lists them, one per
 * indented line, up to a cap); MR_EINVALID if the bytes are not a
 * well-formed module (the message names the section and byte offset). */
int mr_wasm_check_unit(const void *bytes, size_t len, const char *abi_version,
		       mr_buf *report);

/* mr_wasm_check_unit on the file at `path` (read with a 1 GiB cap); every
 * message names the path. */
int mr_wasm_check_file(const char *path, const char *abi_version,
		       mr_buf *report);

#endif
