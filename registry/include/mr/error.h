/* Error codes and the per-thread "last error" message shared by every core. */
#ifndef MR_ERROR_H
#define MR_ERROR_H

#include <stdarg.h>

/* Every fallible core function returns 0 or one of these negative codes. */
enum {
	MR_OK = 0,
	MR_ERROR = -1,     /* generic failure */
	MR_ENOTFOUND = -2, /* a named thing does not exist */
	MR_EVERIFY = -3,   /* a digest, signature or policy check failed */
	MR_EEXISTS = -4,   /* refusing to overwrite something that exists */
	MR_EINVALID = -5,  /* input is malformed or violates a schema */
	MR_EENV = -6,      /* environment: missing tool, network, permissions */
	MR_EIO = -7,       /* a read or write failed */
};

/* Sets the calling thread's last error message and returns `code`. */
int mr_error_set(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Like mr_error_set, appending ": strerror(errno)". */
int mr_error_sys(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Prefixes the current message with context ("fetching X: <old>"); returns `code`. */
int mr_error_wrap(int code, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The calling thread's last message; never NULL, "" when none was set. */
const char *mr_error_last(void);

/* Clears the calling thread's last message. */
void mr_error_clear(void);

/* Maps a core error code to a CLI exit status (STYLE.md rule 7). */
int mr_error_exit_code(int code);

#endif
