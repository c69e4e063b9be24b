#include "mr/buf.h"

#include "mr/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX ((size_t)1 << 30)

static int grow(mr_buf *b, size_t need)
{
	size_t max = b->max ? b->max : DEFAULT_MAX;
	size_t cap;
	unsigned char *p;

	if (need > max - b->len)
		return mr_error_set(MR_EINVALID,
				    "input too large: more than %zu bytes", max);
	if (b->len + need + 1 <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + need + 1)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		return mr_error_set(MR_ERROR, "out of memory (%zu bytes)", cap);
	b->data = p;
	b->cap = cap;
	return 0;
}

int mr_buf_put(mr_buf *b, const void *p, size_t n)
{
	int rc = grow(b, n);

	if (rc)
		return rc;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int mr_buf_puts(mr_buf *b, const char *s)
{
	return mr_buf_put(b, s, strlen(s));
}

int mr_buf_printf(mr_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return mr_error_set(MR_ERROR, "formatting failed");
	if ((rc = grow(b, (size_t)n)))
		return rc;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

void mr_buf_free(mr_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

unsigned char *mr_buf_detach(mr_buf *b, size_t *len_out)
{
	unsigned char *p = b->data;

	if (len_out)
		*len_out = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}
