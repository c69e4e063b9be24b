/* JSON documents (cJSON) that remember where each value stands in the text,
 * so errors can say file:line:col. */
#ifndef MR_JSON_H
#define MR_JSON_H

#include "mr/buf.h"

#include <cjson/cJSON.h>

/* A parsed JSON file with source positions (opaque). */
typedef struct mr_json mr_json;

/* Parses `text` (from `file`, for messages). On a syntax error returns
 * MR_EINVALID with "file:line:col: ..." as the message. The caller frees
 * with mr_json_free. */
int mr_json_parse(mr_json **out, const char *file, const char *text,
		  size_t len);

/* Reads and parses a file (refusing files over `max` bytes). */
int mr_json_load(mr_json **out, const char *path, size_t max);

/* The root value (owned by the document). */
cJSON *mr_json_root(const mr_json *doc);

/* The file name given at parse time. */
const char *mr_json_file(const mr_json *doc);

/* Writes the 1-based line and column where `node`'s value starts in the
 * text. 0,0 if unknown. */
void mr_json_pos(const mr_json *doc, const cJSON *node, int *line, int *col);

/* Same, but for an object member, where its name starts. */
void mr_json_key_pos(const mr_json *doc, const cJSON *node, int *line, int *col);

/* Frees the document; NULL is a no-op. */
void mr_json_free(mr_json *doc);

/* Appends the canonical form of `v` (keys sorted by byte value, no
 * whitespace) to `out`. */
int mr_json_canonical(mr_buf *out, const cJSON *v);

/* Returns a string member, or NULL if absent or not a string. */
const char *mr_json_str(const cJSON *obj, const char *key);

/* 1 if `v` is a number holding an integer in [lo, hi]. */
int mr_json_is_int(const cJSON *v, double lo, double hi);

#endif
