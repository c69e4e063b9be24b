/* molt serve: a static HTTP server for a registry folder and the demo page. */
#define _DEFAULT_SOURCE
#include "cmd.h"

#include "mr/error.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <microhttpd.h>

#define DEFAULT_PORT "8080"
#define DEFAULT_BIND "127.0.0.1"
#define PATH_CAP 4096 /* longest request path accepted, as received */
#define ETAG_CAP 160
#define BLOB_NAME_MAX 128
#define LOG_CAP 1024 /* a logged path is cut to this many bytes */
#define POOL_THREADS 4
#define MAX_CONNECTIONS 256
#define IDLE_TIMEOUT_S 60
#define IMMUTABLE "public, max-age=31536000, immutable"

typedef struct {
	int rootfd; /* the root folder, opened once at start */
	int quiet;  /* no per-request log */
} server;

typedef struct {
	struct MHD_Connection *conn;
	const server *srv;
	const char *method;
	const char *url; /* as received: still escaped, query cut off */
	int head;        /* HEAD: headers only */
} request;

typedef struct {
	int fd;           /* the open file, -1 when none */
	struct stat st;
	const char *name; /* its last path segment */
	int blob;         /* under a blobs/ segment, so immutable */
	char etag[ETAG_CAP];
} target;

enum { RANGE_ALL, RANGE_PART, RANGE_UNSATISFIABLE };

static const struct {
	const char *ext;
	const char *type;
} mime_types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "js", "text/javascript" },
	{ "mjs", "text/javascript" },
	{ "css", "text/css" },
	{ "json", "application/json" },
	{ "wasm", "application/wasm" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "pub", "text/plain; charset=utf-8" },
	{ "minisig", "text/plain; charset=utf-8" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "csv", "text/csv" },
	{ "arrow", "application/vnd.apache.arrow.stream" },
};

static const char *mime_type(const char *name)
{
	const char *dot = strrchr(name, '.');
	size_t i;

	for (i = 0; dot && i < sizeof(mime_types) / sizeof(mime_types[0]); i++)
		if (!strcasecmp(dot + 1, mime_types[i].ext))
			return mime_types[i].type;
	return "application/octet-stream";
}

static int hex_value(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes %XX escapes of `raw` into `out`; NULL, or why the path is refused. */
static const char *decode_path(const char *raw, char *out, size_t cap)
{
	size_t n = 0;
	int c, hi, lo;

	if (raw[0] != '/')
		return "the path must start with '/'";
	for (; *raw; raw++) {
		c = (unsigned char)*raw;
		if (c == '%') {
			if ((hi = hex_value(raw[1])) < 0 ||
			    (lo = hex_value(raw[2])) < 0)
				return "bad percent-escape in the path";
			c = hi * 16 + lo;
			raw += 2;
		}
		if (c == '\0')
			return "NUL in the path";
		if (c == '\\')
			return "backslash in the path";
		if (n + 1 >= cap)
			return "the path is too long";
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return NULL;
}

/* NULL, or why the decoded `path` is refused. */
static const char *check_segments(const char *path)
{
	const char *p;

	for (p = path; (p = strstr(p, "..")); p += 2)
		if ((p == path || p[-1] == '/') && (p[2] == '/' || !p[2]))
			return "'..' in the path";
	/* Hidden files (.git, a registry's .lock) are never part of a site. */
	for (p = path; (p = strstr(p, "/.")); p += 2)
		if (p[2] && p[2] != '/')
			return "hidden files are not served";
	return NULL;
}

static unsigned errno_status(int err)
{
	switch (err) {
	case EMFILE:
	case ENFILE:
	case ENOMEM:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	case EIO:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	default:
		return MHD_HTTP_NOT_FOUND;
	}
}

/* Opens `name` in the folder `dir` and closes `dir`; keeps openat's errno. */
static int step(int dir, const char *name, int depth)
{
	int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK, fd, err;

	/* Symbolic links are followed only for an entry at the top of the root:
	 * the operator puts links there on purpose (registry -> /srv/registry).
	 * Below it a link is refused (ELOOP, then 404) wherever it points, so a
	 * link inside a served folder can never lead out of it. Walking one
	 * segment at a time with openat also leaves no window between a check
	 * and the open. */
	if (depth > 0)
		flags |= O_NOFOLLOW;
	fd = openat(dir, name, flags);
	err = errno;
	close(dir);
	errno = err;
	return fd;
}

/* Opens the regular file that the decoded `path` names (cut in place) into
 * `t`. Returns 0, 301 for a folder without its trailing slash, or an error
 * status. */
static unsigned open_target(const server *s, char *path, target *t)
{
	size_t len = strlen(path);
	int slash = len > 0 && path[len - 1] == '/';
	int depth = 0, under_blobs = 0, fd;
	char *seg, *save = NULL;
	unsigned status = 0;

	if ((fd = fcntl(s->rootfd, F_DUPFD_CLOEXEC, 0)) < 0)
		return errno_status(errno);
	for (seg = strtok_r(path, "/", &save); seg;
	     seg = strtok_r(NULL, "/", &save)) {
		if (!strcmp(seg, "."))
			continue;
		if ((fd = step(fd, seg, depth++)) < 0)
			goto fail;
		t->name = seg;
		t->blob = under_blobs;
		under_blobs |= !strcmp(seg, "blobs");
	}
	if (fstat(fd, &t->st) < 0)
		goto fail;
	if (S_ISDIR(t->st.st_mode)) {
		if (!slash) {
			status = MHD_HTTP_MOVED_PERMANENTLY;
			goto done;
		}
		if ((fd = step(fd, "index.html", depth)) < 0 ||
		    fstat(fd, &t->st) < 0)
			goto fail;
		t->name = "index.html";
		t->blob = under_blobs;
	}
	if (!S_ISREG(t->st.st_mode)) {
		status = MHD_HTTP_NOT_FOUND;
		goto done;
	}
	t->fd = fd;
	fd = -1;
	goto done;
fail:
	status = errno_status(errno);
done:
	if (fd >= 0)
		close(fd);
	return status;
}

/* A blob's name is its digest, so it can serve as its ETag when it is a
 * plain token. */
static int is_token(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz"
			     "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

	return n > 0 && n <= BLOB_NAME_MAX && !s[n];
}

static void make_etag(target *t)
{
	if (t->blob && is_token(t->name))
		snprintf(t->etag, sizeof(t->etag), "\"%s\"", t->name);
	else
		snprintf(t->etag, sizeof(t->etag), "\"%jd-%jd%09ld\"",
			 (intmax_t)t->st.st_size,
			 (intmax_t)t->st.st_mtim.tv_sec,
			 (long)t->st.st_mtim.tv_nsec);
}

/* 1 if the If-None-Match list `h` names `etag` or is "*"; weak comparison
 * (RFC 9110 13.1.2), so W/"x" matches "x". */
static int etag_listed(const char *h, const char *etag)
{
	size_t elen = strlen(etag);
	const char *end;

	for (;;) {
		h += strspn(h, " \t,");
		if (*h == '*')
			return 1;
		if (!strncmp(h, "W/", 2))
			h += 2;
		if (*h != '"' || !(end = strchr(h + 1, '"')))
			return 0;
		if ((size_t)(end + 1 - h) == elen && !memcmp(h, etag, elen))
			return 1;
		h = end + 1;
	}
}

/* Reads decimal digits at *p, saturating at INT64_MAX; -1 if there are none. */
static int read_number(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (*s < '0' || *s > '9')
		return -1;
	for (; *s >= '0' && *s <= '9'; s++)
		v = v > (INT64_MAX - 9) / 10 ? (uint64_t)INT64_MAX
					      : v * 10 + (uint64_t)(*s - '0');
	*p = s;
	*out = v;
	return 0;
}

static int at_end(const char *p)
{
	return !p[strspn(p, " \t")];
}

/* Parses a single range ("bytes=a-b", "bytes=a-", "bytes=-n") against `size`.
 * Several ranges or bad syntax give RANGE_ALL: the whole file is sent, as
 * RFC 9110 14.2 allows a server to ignore such a header. */
static int parse_range(const char *h, uint64_t size, uint64_t *off,
		       uint64_t *len)
{
	const char *p = h + 6;
	uint64_t a, b = INT64_MAX;

	if (strncasecmp(h, "bytes=", 6))
		return RANGE_ALL;
	p += strspn(p, " \t");
	if (*p == '-') {
		p++;
		if (read_number(&p, &b) < 0 || !at_end(p))
			return RANGE_ALL;
		if (b == 0 || size == 0)
			return RANGE_UNSATISFIABLE;
		*len = b < size ? b : size;
		*off = size - *len;
		return RANGE_PART;
	}
	if (read_number(&p, &a) < 0 || *p++ != '-')
		return RANGE_ALL;
	if (!at_end(p) && (read_number(&p, &b) < 0 || !at_end(p) || b < a))
		return RANGE_ALL;
	if (a >= size)
		return RANGE_UNSATISFIABLE;
	if (b >= size)
		b = size - 1;
	*off = a;
	*len = b - a + 1;
	return RANGE_PART;
}

/* Copies `in` into `out` with bytes outside printable ASCII as %XX, cut to
 * fit, so a request can't write control sequences to the terminal. */
static void sanitize(const char *in, char *out, size_t cap)
{
	size_t n = 0;
	unsigned char c;

	for (; (c = (unsigned char)*in) && n + 4 <= cap; in++) {
		if (c > 0x20 && c < 0x7f)
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, cap - n, "%%%02X", c);
	}
	out[n] = '\0';
}

static void log_request(const request *rq, unsigned status, uint64_t bytes)
{
	char method[32], url[LOG_CAP];

	if (rq->srv->quiet)
		return;
	sanitize(rq->method, method, sizeof(method));
	sanitize(rq->url, url, sizeof(url));
	fprintf(stderr, "%s %s %u %ju\n", method, url, status,
		(uintmax_t)bytes);
}

static int header(struct MHD_Response *r, const char *name, const char *value)
{
	return MHD_add_response_header(r, name, value) == MHD_YES ? 0 : -1;
}

static struct MHD_Response *drop(struct MHD_Response *r)
{
	MHD_destroy_response(r);
	return NULL;
}

/* Queues `r` (NULL: closes the connection) with the headers every answer
 * carries, logs the request, and releases our reference to `r`. */
static enum MHD_Result finish(const request *rq, unsigned status,
			      struct MHD_Response *r, uint64_t body)
{
	enum MHD_Result ok;

	if (r && (header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes") ||
		  header(r, MHD_HTTP_HEADER_X_CONTENT_TYPE_OPTIONS, "nosniff")))
		r = drop(r);
	if (!r)
		return MHD_NO;
	ok = MHD_queue_response(rq->conn, status, r);
	MHD_destroy_response(r);
	log_request(rq, status, rq->head ? 0 : body);
	return ok;
}

/* Answers with a short plain-text body and one optional extra header. */
static enum MHD_Result reply_text(const request *rq, unsigned status,
				  const char *msg, const char *hname,
				  const char *hvalue)
{
	char body[160];
	int n = snprintf(body, sizeof(body), "%u %s\n", status, msg);
	struct MHD_Response *r;

	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(body))
		n = (int)sizeof(body) - 1;
	r = MHD_create_response_from_buffer((size_t)n, body,
					    MHD_RESPMEM_MUST_COPY);
	if (r && (header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
			 "text/plain; charset=utf-8") ||
		  header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache") ||
		  (hname && header(r, hname, hvalue))))
		r = drop(r);
	return finish(rq, status, r, (uint64_t)n);
}

static enum MHD_Result reply_error(const request *rq, unsigned status)
{
	switch (status) {
	case MHD_HTTP_NOT_FOUND:
		return reply_text(rq, status, "not found", NULL, NULL);
	case MHD_HTTP_SERVICE_UNAVAILABLE:
		return reply_text(rq, status, "server busy, try again", NULL,
				  NULL);
	default:
		return reply_text(rq, status, "internal error", NULL, NULL);
	}
}

/* A folder asked for without its trailing slash: relative links in its
 * index.html only work from the slashed address. Leading slashes collapse to
 * one, or "//demo" would send the browser to the host "demo". */
static enum MHD_Result reply_redirect(const request *rq)
{
	char loc[PATH_CAP + 2];

	snprintf(loc, sizeof(loc), "/%s/", rq->url + strspn(rq->url, "/"));
	return reply_text(rq, MHD_HTTP_MOVED_PERMANENTLY, "moved", "Location",
			  loc);
}

static int cache_headers(struct MHD_Response *r, const target *t)
{
	return header(r, MHD_HTTP_HEADER_CACHE_CONTROL,
		      t->blob ? IMMUTABLE : "no-cache") ||
	       header(r, MHD_HTTP_HEADER_ETAG, t->etag);
}

static enum MHD_Result reply_not_modified(const request *rq, target *t)
{
	struct MHD_Response *r;

	close(t->fd);
	r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
	if (r && cache_headers(r, t))
		r = drop(r);
	return finish(rq, MHD_HTTP_NOT_MODIFIED, r, 0);
}

static const char *lookup(const request *rq, const char *name)
{
	return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

/* Sends the file, or the one range asked for; takes t->fd. */
static enum MHD_Result reply_file(const request *rq, target *t)
{
	uint64_t size = (uint64_t)t->st.st_size, off = 0, len = size;
	const char *range = rq->head ? NULL : lookup(rq, MHD_HTTP_HEADER_RANGE);
	const char *if_range = lookup(rq, MHD_HTTP_HEADER_IF_RANGE);
	unsigned status = MHD_HTTP_OK;
	struct MHD_Response *r;
	char cr[96];

	if (range && if_range && strcmp(if_range, t->etag))
		range = NULL;
	switch (range ? parse_range(range, size, &off, &len) : RANGE_ALL) {
	case RANGE_UNSATISFIABLE:
		close(t->fd);
		snprintf(cr, sizeof(cr), "bytes */%ju", (uintmax_t)size);
		return reply_text(rq, MHD_HTTP_RANGE_NOT_SATISFIABLE,
				  "range not satisfiable",
				  MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	case RANGE_PART:
		status = MHD_HTTP_PARTIAL_CONTENT;
		snprintf(cr, sizeof(cr), "bytes %ju-%ju/%ju", (uintmax_t)off,
			 (uintmax_t)(off + len - 1), (uintmax_t)size);
		break;
	default:
		off = 0;
		len = size;
	}
	if (!(r = MHD_create_response_from_fd_at_offset64(len, t->fd, off))) {
		close(t->fd);
		return MHD_NO;
	}
	if (cache_headers(r, t) ||
	    header(r, MHD_HTTP_HEADER_CONTENT_TYPE, mime_type(t->name)) ||
	    (status == MHD_HTTP_PARTIAL_CONTENT &&
	     header(r, MHD_HTTP_HEADER_CONTENT_RANGE, cr)))
		r = drop(r);
	return finish(rq, status, r, len);
}

static enum MHD_Result serve(const request *rq, char *path)
{
	target t = { .fd = -1, .name = "" };
	const char *inm;
	unsigned status = open_target(rq->srv, path, &t);

	if (status == MHD_HTTP_MOVED_PERMANENTLY)
		return reply_redirect(rq);
	if (status)
		return reply_error(rq, status);
	make_etag(&t);
	inm = lookup(rq, MHD_HTTP_HEADER_IF_NONE_MATCH);
	if (inm && etag_listed(inm, t.etag))
		return reply_not_modified(rq, &t);
	return reply_file(rq, &t);
}

static int seen; /* its address marks a request whose headers were read */

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn,
				  const char *url, const char *method,
				  const char *version, const char *upload_data,
				  size_t *upload_size, void **req_cls)
{
	request rq = { conn, cls, method, url, !strcmp(method, "HEAD") };
	char path[PATH_CAP];
	const char *why;

	(void)version;
	(void)upload_data;
	(void)upload_size;
	if (!rq.head && strcmp(method, "GET"))
		return reply_text(&rq, MHD_HTTP_METHOD_NOT_ALLOWED,
				  "method not allowed", MHD_HTTP_HEADER_ALLOW,
				  "GET, HEAD");
	/* MHD closes the connection after an answer queued on the first call
	 * (the request may still be arriving): wait for the second to keep it
	 * alive. A refused method above is answered at once, body unread. */
	if (!*req_cls) {
		*req_cls = &seen;
		return MHD_YES;
	}
	if (strnlen(url, PATH_CAP) >= PATH_CAP)
		return reply_text(&rq, MHD_HTTP_URI_TOO_LONG, "path too long",
				  NULL, NULL);
	if ((why = decode_path(url, path, sizeof(path))) ||
	    (why = check_segments(path)))
		return reply_text(&rq, MHD_HTTP_BAD_REQUEST, why, NULL, NULL);
	return serve(&rq, path);
}

/* Leaves the path escaped: decode_path must see "%00" and "%2e%2e" itself. */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static __attribute__((format(printf, 2, 0))) void
log_mhd(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	fprintf(stderr, "%s serve: ", PROG);
	vfprintf(stderr, fmt, ap);
}

static int parse_port(const char *s, unsigned *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (!*s || *end || errno || v < 0 || v > 65535)
		return mr_error_set(MR_EINVALID,
				    "--port: expected a number from 0 to 65535, found '%s'",
				    s);
	*out = (unsigned)v;
	return 0;
}

static int open_root(const char *dir, char **real_out, int *fd_out)
{
	char *real = realpath(dir, NULL);
	int fd;

	if (!real)
		return mr_error_sys(errno == ENOENT ? MR_ENOTFOUND : MR_EIO,
				    "--root %s", dir);
	if ((fd = open(real, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		free(real);
		return mr_error_sys(errno == ENOTDIR ? MR_EINVALID : MR_EIO,
				    "--root %s: expected a folder", dir);
	}
	*real_out = real;
	*fd_out = fd;
	return 0;
}

static int bind_error(const char *addr, unsigned port)
{
	const char *l = strchr(addr, ':') ? "[" : "", *r = *l ? "]" : "";

	if (errno == EADDRINUSE)
		return mr_error_set(MR_EENV,
				    "%s%s%s:%u is already in use; stop what listens there or "
				    "pick another port with --port (--port 0 picks a free one)",
				    l, addr, r, port);
	return mr_error_sys(MR_EENV, "listening on %s%s%s:%u", l, addr, r,
			    port);
}

/* Opens a listening socket on `addr`:`port` (numeric address only). */
static int listen_on(const char *addr, unsigned port, int *fd_out)
{
	struct addrinfo hints = { 0 }, *ai = NULL;
	char service[8];
	int fd = -1, one = 1, rc = 0, err;

	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(service, sizeof(service), "%u", port);
	if ((err = getaddrinfo(addr, service, &hints, &ai)))
		return mr_error_set(MR_EINVALID,
				    "--bind: expected an IP address such as 127.0.0.1 "
				    "or ::1, found '%s' (%s)",
				    addr, gai_strerror(err));
	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		rc = mr_error_sys(MR_EENV, "creating a socket for %s", addr);
		goto done;
	}
	/* Lets a restart bind while old connections sit in TIME_WAIT; a live
	 * listener still makes bind fail with EADDRINUSE. */
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		rc = bind_error(addr, port);
		goto done;
	}
	/* The pool's threads all accept on this socket: none may block. */
	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		rc = mr_error_sys(MR_EENV, "configuring the socket");
		goto done;
	}
	*fd_out = fd;
	fd = -1;
done:
	if (fd >= 0)
		close(fd);
	freeaddrinfo(ai);
	return rc;
}

/* Writes "http://ADDR:PORT/" for the socket as bound (port 0 resolved). */
static int bound_url(int fd, char *url, size_t cap)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[64], port[8];
	int v6;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return mr_error_sys(MR_EENV, "reading the bound address");
	if (getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), port,
			sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV))
		return mr_error_set(MR_EENV,
				    "reading the bound address failed");
	v6 = ss.ss_family == AF_INET6;
	snprintf(url, cap, "http://%s%s%s:%s/", v6 ? "[" : "", host,
		 v6 ? "]" : "", port);
	return 0;
}

static struct MHD_Daemon *start_daemon(server *srv, int lfd)
{
	unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD;

	if (!srv->quiet)
		flags |= MHD_USE_ERROR_LOG;
	return MHD_start_daemon(
		flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
		MHD_OPTION_LISTEN_SOCKET, lfd,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned)POOL_THREADS,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
		MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
		MHD_OPTION_END);
}

/* Blocks SIGINT and SIGTERM (the server's threads inherit the mask) so that
 * only wait_for_stop receives them; a closed client never kills us. */
static void block_signals(sigset_t *stop, sigset_t *old)
{
	struct sigaction ign = { 0 };

	ign.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &ign, NULL);
	sigemptyset(stop);
	sigaddset(stop, SIGINT);
	sigaddset(stop, SIGTERM);
	pthread_sigmask(SIG_BLOCK, stop, old);
}

static void wait_for_stop(const sigset_t *stop)
{
	int sig;

	while (sigwait(stop, &sig))
		;
}

static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *root = mr_args_get(cmd, args, "root");
	const char *port_s = mr_args_get(cmd, args, "port");
	const char *bind_addr = mr_args_get(cmd, args, "bind");
	server srv = { -1, mr_args_get(cmd, args, "quiet") != NULL };
	struct MHD_Daemon *d = NULL;
	char *real = NULL, url[128];
	int lfd = -1, rc;
	unsigned port = 0;
	sigset_t stop, old;

	if (args->nrest) {
		mr_cli_error(PROG,
			     "serve takes no arguments, found '%s'; see '%s serve --help'",
			     args->rest[0], PROG);
		return 2;
	}
	if (!port_s)
		port_s = DEFAULT_PORT;
	if (!bind_addr)
		bind_addr = DEFAULT_BIND;
	if ((rc = parse_port(port_s, &port)) ||
	    (rc = open_root(root ? root : ".", &real, &srv.rootfd)) ||
	    (rc = listen_on(bind_addr, port, &lfd)) ||
	    (rc = bound_url(lfd, url, sizeof(url))))
		goto done;
	block_signals(&stop, &old);
	if (!(d = start_daemon(&srv, lfd))) {
		rc = mr_error_set(MR_EENV,
				  "starting the HTTP server on %s failed", url);
		goto unblock;
	}
	lfd = -1; /* MHD_stop_daemon closes it */
	printf("serving %s on %s\n", real, url);
	fflush(stdout);
	wait_for_stop(&stop);
	MHD_stop_daemon(d);
unblock:
	pthread_sigmask(SIG_SETMASK, &old, NULL);
done:
	if (lfd >= 0)
		close(lfd);
	if (srv.rootfd >= 0)
		close(srv.rootfd);
	free(real);
	return rc ? mr_cli_fail(PROG, rc) : 0;
}

static const mr_opt serve_opts[] = {
	{ "root", 'r', "DIR", "folder to serve (default: the current folder)" },
	{ "port", 'p', "N", "TCP port (default: 8080; 0 picks a free one)" },
	{ "bind", 'b', "ADDR", "IP address to listen on (default: 127.0.0.1)" },
	{ "quiet", 'q', NULL, "do not log requests on stderr" },
	{ NULL, 0, NULL, NULL },
};

const mr_cmd molt_cmd_serve = {
	"serve",
	"serve a registry folder and the demo page over HTTP",
	"[options]",
	serve_opts,
	run,
};
