/* Arrow IPC payloads as the C host sees them (schema.c). */
#ifndef MOLT_ARROWJSON_H
#define MOLT_ARROWJSON_H

#include <cjson/cJSON.h>
#include <stddef.h>

/* Reads an Arrow IPC stream `data` against an arrow-codec schema's type
 * (a record whose fields are the columns, docs/schemas.md) and returns its
 * rows as a JSON array of objects in *out (caller deletes). MR_EINVALID
 * names the column or row (`[12].delay`) when the stream does not match. */
int molt__arrow_decode(const cJSON *type, const void *data, size_t len, cJSON **out,
		       char *path, size_t pathlen);

#endif
