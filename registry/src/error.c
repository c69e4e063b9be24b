#include "mr/error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define MSG_MAX 2048

static _Thread_local char last[MSG_MAX];

int mr_error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last, sizeof(last), fmt, ap);
	va_end(ap);
	return code;
}

int mr_error_sys(int code, const char *fmt, ...)
{
	int err = errno;
	size_t n;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last, sizeof(last), fmt, ap);
	va_end(ap);
	n = strlen(last);
	snprintf(last + n, sizeof(last) - n, ": %s", strerror(err));
	return code;
}

int mr_error_wrap(int code, const char *fmt, ...)
{
	char prefix[MSG_MAX], old[MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, last, sizeof(old));
	/* Truncation is fine: the message is for people, and capped. */
	size_t n = strlen(prefix);
	if (n > sizeof(last) - 3)
		n = sizeof(last) - 3;
	memcpy(last, prefix, n);
	memcpy(last + n, ": ", 2);
	n += 2;
	size_t m = strlen(old);
	if (m > sizeof(last) - 1 - n)
		m = sizeof(last) - 1 - n;
	memcpy(last + n, old, m);
	last[n + m] = '\0';
	return code;
}

const char *mr_error_last(void)
{
	return last;
}

void mr_error_clear(void)
{
	last[0] = '\0';
}

int mr_error_exit_code(int code)
{
	switch (code) {
	case MR_OK:
		return 0;
	case MR_EVERIFY:
		return 1;
	case MR_EINVALID:
	case MR_ENOTFOUND:
	case MR_EEXISTS:
		return 2;
	case MR_EENV:
	case MR_EIO:
		return 3;
	default:
		return 1;
	}
}
