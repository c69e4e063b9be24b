/* A growable byte buffer with a hard cap, for anything filled from outside. */
#ifndef MR_BUF_H
#define MR_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
	unsigned char *data; /* owned; NUL-terminated past `len` for convenience */
	size_t len;          /* bytes in use */
	size_t cap;          /* bytes allocated */
	size_t max;          /* refuse to grow past this many bytes (0: 1 GiB) */
} mr_buf;

#define MR_BUF_INIT { NULL, 0, 0, 0 }

/* Appends `n` bytes; MR_EINVALID if the buffer would pass `max`. */
int mr_buf_put(mr_buf *b, const void *p, size_t n);

/* Appends a NUL-terminated string. */
int mr_buf_puts(mr_buf *b, const char *s);

/* Appends printf-formatted text. */
int mr_buf_printf(mr_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Releases the storage and resets the buffer (keeps `max`). */
void mr_buf_free(mr_buf *b);

/* Transfers ownership of the data to the caller (who frees it with free()). */
unsigned char *mr_buf_detach(mr_buf *b, size_t *len_out);

#endif
