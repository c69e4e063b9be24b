/* molt serve: a static HTTP server for a registry folder and the demo page,
 * and the native run endpoint (POST /run/NAME@VERSION/FUNCTION) for the
 * units named by --run (docs/serve.md). */
#define _DEFAULT_SOURCE
#include "common.h"

#include "mr/buf.h"
#include "mr/error.h"
#include "mr/json.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#define DEFAULT_PORT "8080"
#define DEFAULT_BIND "127.0.0.1"
#define PATH_CAP 4096 /* longest request path accepted, as received */
#define ETAG_CAP 160
#define BLOB_NAME_MAX 128
#define LOG_CAP 1024 /* a logged path is cut to this many bytes */
#define POOL_THREADS 4
#define MAX_THREADS 64
#define MAX_CONNECTIONS 256
#define IDLE_TIMEOUT_S 60
#define IMMUTABLE "public, max-age=31536000, immutable"
#define SMALL_BODY ((uint64_t)64 << 10) /* bodies up to this size are sent from memory */

#define RUN_PREFIX "/run"
#define ENVELOPE_TYPE "application/x-molt-envelope"
#define MAX_RUN_UNITS 16
#define DEFAULT_MAX_BODY ((size_t)64 << 20)
#define DEFAULT_TIMEOUT_MS 10000
#define PEER_CHECK_US 20000 /* how often a running request's socket is checked */
#define MSG_CAP 1024

/* A unit loaded by --run, with the functions its signed manifest lists. */
typedef struct {
	char name[128];
	char version[64];
	char ref[200];          /* name@version */
	char digest[72];        /* its manifest's, "sha256:..." */
	molt_unit *unit;
	pthread_mutex_t lock;   /* held for each call into the unit (one poll) */
	cJSON *functions;       /* the manifest's "functions" array (owned) */
	char target[64];
} served_unit;

typedef struct run_req run_req;

typedef struct {
	int rootfd; /* the root folder, opened once at start */
	int quiet;  /* no per-request log */
	served_unit *units; /* the --run units, loaded before the first request */
	size_t nunits;
	char *listing;      /* GET /run's JSON body */
	size_t max_body;    /* --max-body */
	uint32_t timeout_ms; /* --timeout-ms (0: none) */
	size_t max_output;  /* --max-output */
	pthread_mutex_t qlock; /* guards the queue, `stopping` and every run_req's state */
	pthread_cond_t qcond;
	run_req *head, *tail; /* runs waiting for their next slice, oldest first */
	int stopping;
	pthread_t runners[MAX_THREADS];
	unsigned nrunners;
} server;

typedef struct {
	struct MHD_Connection *conn;
	server *srv;
	const char *method;
	const char *url; /* as received: still escaped, query cut off */
	int head;        /* HEAD: headers only */
	int run;         /* under /run: no Accept-Ranges */
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

	if (r && ((!rq->run && header(r, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes")) ||
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

/* A small body is read into memory and answered from there: MHD then sends
 * the headers and the body in one write (one TCP segment for a registry's
 * metadata) instead of a write for the headers and a sendfile for the body.
 * Takes and closes `fd`. 0 (with *out NULL when out of memory), or an error
 * status. */
static unsigned read_small(int fd, uint64_t off, uint64_t len, struct MHD_Response **out)
{
	char *buf = malloc(len ? (size_t)len : 1);
	size_t got = 0;
	ssize_t n;
	unsigned status = 0;

	*out = NULL;
	if (!buf) {
		close(fd);
		return 0;
	}
	while (got < len) {
		n = pread(fd, buf + got, (size_t)len - got, (off_t)(off + got));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* An error, or the file shrank since fstat: never send a
			 * body shorter than its Content-Length. */
			status = n < 0 ? errno_status(errno) : MHD_HTTP_INTERNAL_SERVER_ERROR;
			if (status == MHD_HTTP_NOT_FOUND)
				status = MHD_HTTP_INTERNAL_SERVER_ERROR;
			break;
		}
		got += (size_t)n;
	}
	close(fd);
	if (status) {
		free(buf);
		return status;
	}
	if (!(*out = MHD_create_response_from_buffer((size_t)len, buf, MHD_RESPMEM_MUST_FREE)))
		free(buf);
	return 0;
}

/* Sends the file, or the one range asked for; takes t->fd. */
static enum MHD_Result reply_file(const request *rq, target *t)
{
	uint64_t size = (uint64_t)t->st.st_size, off = 0, len = size;
	const char *range = rq->head ? NULL : lookup(rq, MHD_HTTP_HEADER_RANGE);
	const char *if_range = lookup(rq, MHD_HTTP_HEADER_IF_RANGE);
	unsigned status = MHD_HTTP_OK, status_err;
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
	if (len <= SMALL_BODY) {
		if ((status_err = read_small(t->fd, off, len, &r)))
			return reply_error(rq, status_err);
	} else if (!(r = MHD_create_response_from_fd_at_offset64(len, t->fd, off))) {
		close(t->fd);
		return MHD_NO;
	}
	if (!r)
		return MHD_NO;
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

/* ---- the run endpoint: POST /run/NAME@VERSION/FUNCTION ------------------
 *
 * A request's body is read into a run_req; the connection is then suspended
 * and the run_req queued. Runner threads take the oldest queued run, run one
 * slice of it (one molt_job_poll, holding its unit's lock) and queue it again
 * at the back, so runs of the same unit interleave poll by poll and a short
 * one is never stuck behind a long one. A finished run resumes its
 * connection, and the access handler, called again, sends the answer. */

enum { RUN_READING, RUN_QUEUED, RUN_DONE };

struct run_req {
	run_req *next; /* in the queue */
	struct MHD_Connection *conn;
	server *srv;
	served_unit *u;
	uint32_t fn;	     /* the function's id */
	char fname[64];	     /* and name */
	char url[LOG_CAP];   /* the path, sanitized, for the log */
	mr_buf body;	     /* the request envelope, capped at --max-body */
	int too_big;	     /* the body passed --max-body: dropped */
	int state;	     /* RUN_*, under srv->qlock */
	int abandoned;	     /* MHD ended the request while queued */
	molt_job *job;	     /* NULL until started, and once finished */
	uint64_t start_us;   /* when the job started */
	uint64_t checked_us; /* when the client's socket was last checked */
	/* The answer, written by a runner before RUN_DONE. */
	unsigned status;
	int result;	    /* 1: a result envelope, 2: an error envelope, 0: JSON */
	int gone;	    /* the client left: no answer */
	int retry;	    /* send Retry-After: 1 */
	unsigned char *out; /* the body (malloc'd) */
	size_t out_len;
	uint64_t polls, time_us;
};

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void run_req_free(run_req *r)
{
	if (!r)
		return;
	if (r->job) {
		pthread_mutex_lock(&r->u->lock);
		molt_job_free(r->job); /* cancels and reaps a pending task */
		pthread_mutex_unlock(&r->u->lock);
	}
	mr_buf_free(&r->body);
	free(r->out);
	free(r);
}

/* "a@1 (f, g), b@2 (h)": what this server runs, for messages. */
static void served_text(const server *s, char *out, size_t cap)
{
	size_t i, n = 0;
	const cJSON *f;
	int w;

	out[0] = '\0';
	if (!s->nunits) {
		snprintf(out, cap, "none (start molt serve with --run NAME@VERSION)");
		return;
	}
	for (i = 0; i < s->nunits && n < cap; i++) {
		w = snprintf(out + n, cap - n, "%s%s (", i ? ", " : "", s->units[i].ref);
		n += w > 0 ? (size_t)w : 0;
		cJSON_ArrayForEach(f, s->units[i].functions)
		{
			if (n >= cap)
				break;
			w = snprintf(out + n, cap - n, "%s%s",
				     f == s->units[i].functions->child ? "" : ", ",
				     mr_json_str(f, "name") ? mr_json_str(f, "name") : "?");
			n += w > 0 ? (size_t)w : 0;
		}
		if (n < cap) {
			w = snprintf(out + n, cap - n, ")");
			n += w > 0 ? (size_t)w : 0;
		}
	}
}

/* {"error": CODE, "message": MSG} (and "served" when asked), malloc'd. */
static __attribute__((format(printf, 4, 5))) char *error_json(const server *s, const char *code,
							      int served, const char *fmt, ...)
{
	char msg[MSG_CAP];
	cJSON *o = cJSON_CreateObject(), *list;
	char *out = NULL;
	va_list ap;
	size_t i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!o || !cJSON_AddStringToObject(o, "error", code) ||
	    !cJSON_AddStringToObject(o, "message", msg))
		goto done;
	if (served) {
		if (!(list = cJSON_AddArrayToObject(o, "served")))
			goto done;
		for (i = 0; i < s->nunits; i++)
			cJSON_AddItemToArray(list, cJSON_CreateString(s->units[i].ref));
	}
	out = cJSON_PrintUnformatted(o);
done:
	cJSON_Delete(o);
	return out;
}

/* Answers with JSON `body` (taken; NULL: out of memory, the connection is
 * closed), plus Allow or Retry-After when given. */
static enum MHD_Result reply_json(const request *rq, unsigned status, char *body, const char *allow,
				  const char *retry)
{
	struct MHD_Response *r;
	size_t n;

	if (!body)
		return MHD_NO;
	n = strlen(body);
	r = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(body);
		return MHD_NO;
	}
	if (header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") ||
	    header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") ||
	    (allow && header(r, MHD_HTTP_HEADER_ALLOW, allow)) ||
	    (retry && header(r, MHD_HTTP_HEADER_RETRY_AFTER, retry)))
		r = drop(r);
	return finish(rq, status, r, n);
}

/* The answer a runner left in `r`. */
static enum MHD_Result reply_run(const request *rq, run_req *r)
{
	struct MHD_Response *resp;
	char polls[24], us[24];
	size_t n = r->out_len;

	if (r->gone)
		return MHD_NO;
	if (!r->out)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(n, r->out, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	r->out = NULL;
	snprintf(polls, sizeof(polls), "%ju", (uintmax_t)r->polls);
	snprintf(us, sizeof(us), "%ju", (uintmax_t)r->time_us);
	if (header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		   r->result ? ENVELOPE_TYPE : "application/json") ||
	    header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") ||
	    (r->result && header(resp, "X-Molt-Result", r->result == 1 ? "result" : "error")) ||
	    header(resp, "X-Molt-Polls", polls) || header(resp, "X-Molt-Time-Us", us) ||
	    (r->retry && header(resp, MHD_HTTP_HEADER_RETRY_AFTER, "1")))
		resp = drop(resp);
	return finish(rq, r->status, resp, n);
}

/* Leaves a JSON error as `r`'s answer; returns 1 (the run is over). */
static __attribute__((format(printf, 4, 5))) int run_fail(run_req *r, unsigned status,
							  const char *code, const char *fmt, ...)
{
	char msg[MSG_CAP];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	free(r->out);
	r->status = status;
	r->result = 0;
	r->out = (unsigned char *)error_json(r->srv, code, 0, "%s", msg);
	r->out_len = r->out ? strlen((char *)r->out) : 0;
	return 1;
}

/* 1 when the client closed its end of the connection: MHD does not watch a
 * suspended connection, so the runner looks, at most every PEER_CHECK_US. */
static int peer_gone(run_req *r)
{
	const union MHD_ConnectionInfo *ci;
	uint64_t now = now_us();
	ssize_t n;
	char c;

	if (now - r->checked_us < PEER_CHECK_US)
		return 0;
	r->checked_us = now;
	ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	if (!ci)
		return 0;
	n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

/* Ends a started job early (the client left, the server stops). */
static void run_drop_job(run_req *r)
{
	pthread_mutex_lock(&r->u->lock);
	r->polls = molt_job_polls(r->job);
	molt_job_free(r->job); /* cancels the task and reaps it: its slot is free */
	pthread_mutex_unlock(&r->u->lock);
	r->job = NULL;
	r->time_us = now_us() - r->start_us;
}

/* Starts `r`'s job (the unit checks the envelope at its first poll). */
static int run_start(run_req *r)
{
	served_unit *u = r->u;
	char msg[MSG_CAP];
	int rc;

	r->start_us = now_us();
	pthread_mutex_lock(&u->lock);
	rc = molt_unit_start_envelope(&r->job, u->unit, r->fn, r->body.data, r->body.len);
	if (rc)
		snprintf(msg, sizeof(msg), "%s", molt_error_last());
	pthread_mutex_unlock(&u->lock);
	mr_buf_free(&r->body);
	if (!rc)
		return 0;
	r->job = NULL;
	if (strstr(msg, "CapabilityDenied")) {
		r->retry = 1;
		return run_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "BUSY",
				"%s: every task slot of %s is taken by requests still running; "
				"retry after a second",
				msg, u->ref);
	}
	return run_fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "START_FAILED", "%s", msg);
}

/* Runs one slice of `r` (or cancels it when the server is `stopping`); 1
 * when its answer is ready. */
static int run_slice(const server *s, run_req *r, int stopping)
{
	served_unit *u = r->u;
	const unsigned char *env;
	char msg[MSG_CAP];
	size_t len = 0;
	int rc, kind = 0, code = 0;

	if (!r->job && run_start(r))
		return 1;
	if (stopping) {
		run_drop_job(r);
		r->retry = 1;
		return run_fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "STOPPING",
				"the server is stopping; the run was cancelled after %ju polls",
				(uintmax_t)r->polls);
	}
	if (peer_gone(r)) {
		run_drop_job(r);
		r->gone = 1;
		if (!s->quiet)
			fprintf(stderr,
				"POST %s: the client closed the connection; job cancelled after "
				"%ju polls (%ju us)\n",
				r->url, (uintmax_t)r->polls, (uintmax_t)r->time_us);
		return 1;
	}
	pthread_mutex_lock(&u->lock);
	rc = molt_job_poll(r->job, NULL);
	if (rc) {
		snprintf(msg, sizeof(msg), "%s", molt_error_last());
		kind = molt_job_envelope(r->job, &env, &len);
		code = molt_job_error_code(r->job);
		r->polls = molt_job_polls(r->job);
		if (kind && (r->out = malloc(len ? len : 1)) && len)
			memcpy(r->out, env, len);
		molt_job_free(r->job);
		r->job = NULL;
	}
	pthread_mutex_unlock(&u->lock);
	if (!rc)
		return 0;
	r->time_us = now_us() - r->start_us;
	if (kind && !r->out)
		return run_fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "OUT_OF_MEMORY",
				"out of memory copying a %zu-byte envelope", len);
	if (kind) {
		r->status = MHD_HTTP_OK;
		r->result = kind;
		r->out_len = len;
		return 1;
	}
	if (code == 5)
		return run_fail(
		    r, MHD_HTTP_GATEWAY_TIMEOUT, "TIMEOUT",
		    "%s; this server's limit is --timeout-ms %u: send a smaller request, "
		    "or restart the server with a larger limit",
		    msg, s->timeout_ms);
	if (code == 6)
		return run_fail(
		    r, MHD_HTTP_BAD_GATEWAY, "OUTPUT_TOO_LARGE",
		    "%s; this server's limit is --max-output %zu bytes: ask for less, or "
		    "restart the server with a larger limit",
		    msg, s->max_output);
	return run_fail(r, MHD_HTTP_BAD_GATEWAY, "UNIT_FAILED", "%s", msg);
}

static void *runner(void *arg)
{
	server *s = arg;
	struct MHD_Connection *conn;
	run_req *r;
	int stopping;

	pthread_mutex_lock(&s->qlock);
	for (;;) {
		while (!s->head && !s->stopping)
			pthread_cond_wait(&s->qcond, &s->qlock);
		if (!(r = s->head))
			break;
		if (!(s->head = r->next))
			s->tail = NULL;
		r->next = NULL;
		stopping = s->stopping;
		pthread_mutex_unlock(&s->qlock);
		if (!run_slice(s, r, stopping)) {
			pthread_mutex_lock(&s->qlock);
			if (s->tail)
				s->tail->next = r;
			else
				s->head = r;
			s->tail = r;
			continue;
		}
		pthread_mutex_lock(&s->qlock);
		if (r->abandoned) {
			run_req_free(r);
			continue;
		}
		r->state = RUN_DONE;
		conn = r->conn;
		pthread_mutex_unlock(&s->qlock);
		/* From here `r` belongs to MHD again: the handler answers. */
		MHD_resume_connection(conn);
		pthread_mutex_lock(&s->qlock);
	}
	pthread_mutex_unlock(&s->qlock);
	return NULL;
}

/* Queues `r` (its connection suspended); -1 when the server is stopping. */
static int run_submit(server *s, run_req *r)
{
	int rc = 0;

	pthread_mutex_lock(&s->qlock);
	if (s->stopping) {
		rc = -1;
	} else {
		r->state = RUN_QUEUED;
		if (s->tail)
			s->tail->next = r;
		else
			s->head = r;
		s->tail = r;
		pthread_cond_signal(&s->qcond);
	}
	pthread_mutex_unlock(&s->qlock);
	return rc;
}

static int runners_start(server *s, unsigned n)
{
	int err;

	for (s->nrunners = 0; s->nrunners < n; s->nrunners++)
		if ((err = pthread_create(&s->runners[s->nrunners], NULL, runner, s))) {
			errno = err;
			return mr_error_sys(MR_EENV, "starting a runner thread");
		}
	return 0;
}

/* Cancels every queued run (each answers 503), then joins the runners. */
static void runners_stop(server *s)
{
	unsigned i;

	pthread_mutex_lock(&s->qlock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->qcond);
	pthread_mutex_unlock(&s->qlock);
	for (i = 0; i < s->nrunners; i++)
		pthread_join(s->runners[i], NULL);
	s->nrunners = 0;
}

static served_unit *find_unit(server *s, const char *ref)
{
	size_t i;

	for (i = 0; i < s->nunits; i++)
		if (!strcmp(s->units[i].ref, ref))
			return &s->units[i];
	return NULL;
}

/* The function `name` of `u` with its id in *id (NULL when there is none). */
static const cJSON *find_function(const served_unit *u, const char *name, uint32_t *id)
{
	const cJSON *f, *v;

	cJSON_ArrayForEach(f, u->functions)
	{
		v = cJSON_GetObjectItemCaseSensitive(f, "id");
		if (mr_json_str(f, "name") && !strcmp(mr_json_str(f, "name"), name) &&
		    mr_json_is_int(v, 0, UINT32_MAX)) {
			*id = (uint32_t)v->valuedouble;
			return f;
		}
	}
	return NULL;
}

/* 1 if the Content-Type `ct` is one a run accepts (or absent). */
static int envelope_type(const char *ct)
{
	size_t n;

	if (!ct)
		return 1;
	n = strcspn(ct, "; \t");
	return (n == strlen(ENVELOPE_TYPE) && !strncasecmp(ct, ENVELOPE_TYPE, n)) ||
	       (n == strlen("application/octet-stream") &&
		!strncasecmp(ct, "application/octet-stream", n));
}

/* Reads a whole decimal Content-Length; -1 if malformed. */
static int content_length(const char *s, uint64_t *out)
{
	const char *p = s;

	if (!s || read_number(&p, out) < 0 || !at_end(p))
		return -1;
	return 0;
}

/* The first call for POST /run/REF/FUNCTION: checks what can be checked
 * before the body is read and sets up its run_req. */
static enum MHD_Result run_begin(const request *rq, char *rest, void **req_cls)
{
	server *s = rq->srv;
	char served[MSG_CAP], url[LOG_CAP];
	char *ref = rest, *fname, *extra;
	const char *ct, *cl;
	served_unit *u;
	const cJSON *f;
	uint64_t len;
	uint32_t id;
	run_req *r;

	served_text(s, served, sizeof(served));
	fname = strchr(ref, '/');
	if (!*ref || !fname || !fname[1] || (extra = strchr(fname + 1, '/'))) {
		sanitize(rq->url, url, sizeof(url));
		return reply_json(rq, MHD_HTTP_NOT_FOUND,
				  error_json(s, "NOT_FOUND", 1,
					     "%s: expected /run/NAME@VERSION/FUNCTION (or GET /run "
					     "for the list); served here: %s",
					     url, served),
				  NULL, NULL);
	}
	*fname++ = '\0';
	if (!(u = find_unit(s, ref))) {
		sanitize(ref, url, sizeof(url));
		return reply_json(rq, MHD_HTTP_NOT_FOUND,
				  error_json(s, "UNIT_NOT_SERVED", 1,
					     "%s is not served here; served: %s. molt serve loads "
					     "only the units named by --run NAME@VERSION",
					     url, served),
				  NULL, NULL);
	}
	if (!(f = find_function(u, fname, &id))) {
		sanitize(fname, url, sizeof(url));
		return reply_json(rq, MHD_HTTP_NOT_FOUND,
				  error_json(s, "NO_SUCH_FUNCTION", 1,
					     "%s has no function '%s'; served: %s", u->ref, url,
					     served),
				  NULL, NULL);
	}
	if (strcmp(rq->method, "POST")) {
		sanitize(rq->method, url, 32);
		return reply_json(rq, MHD_HTTP_METHOD_NOT_ALLOWED,
				  error_json(s, "METHOD_NOT_ALLOWED", 0,
					     "%s /run/%s/%s: expected POST, with the request "
					     "envelope as the body",
					     url, u->ref, fname),
				  "POST", NULL);
	}
	ct = lookup(rq, MHD_HTTP_HEADER_CONTENT_TYPE);
	if (!envelope_type(ct)) {
		sanitize(ct, url, 200);
		return reply_json(
		    rq, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
		    error_json(s, "UNSUPPORTED_MEDIA_TYPE", 0,
			       "expected Content-Type " ENVELOPE_TYPE
			       " or application/octet-stream, found '%s'; with curl, "
			       "send --data-binary @FILE -H 'Content-Type: " ENVELOPE_TYPE "'",
			       url),
		    NULL, NULL);
	}
	cl = lookup(rq, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl && !content_length(cl, &len) && len > s->max_body)
		return reply_json(
		    rq, MHD_HTTP_CONTENT_TOO_LARGE,
		    error_json(s, "BODY_TOO_LARGE", 0,
			       "the request envelope is %ju bytes, over this server's "
			       "limit of %zu bytes (--max-body); send less, or restart "
			       "the server with a larger --max-body",
			       (uintmax_t)len, s->max_body),
		    NULL, NULL);
	if (!(r = calloc(1, sizeof(*r))))
		return MHD_NO;
	r->conn = rq->conn;
	r->srv = s;
	r->u = u;
	r->fn = id;
	snprintf(r->fname, sizeof(r->fname), "%s", fname);
	sanitize(rq->url, r->url, sizeof(r->url));
	r->body.max = s->max_body;
	r->state = RUN_READING;
	*req_cls = r;
	return MHD_YES;
}

/* Every later call for a run: body chunks, the end of the body, the answer. */
static enum MHD_Result run_continue(const request *rq, run_req *r, const char *upload,
				    size_t *upload_size)
{
	server *s = rq->srv;
	int state;

	pthread_mutex_lock(&s->qlock);
	state = r->state;
	pthread_mutex_unlock(&s->qlock);
	if (state == RUN_DONE)
		return reply_run(rq, r);
	if (state != RUN_READING)
		return MHD_YES;
	if (*upload_size) {
		/* Past the limit the body is dropped at once and the rest is
		 * read without being kept (MHD can't answer in mid-upload). */
		if (!r->too_big && (r->body.len + *upload_size > s->max_body ||
				    mr_buf_put(&r->body, upload, *upload_size))) {
			r->too_big = 1;
			mr_buf_free(&r->body);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->too_big)
		return reply_json(rq, MHD_HTTP_CONTENT_TOO_LARGE,
				  error_json(s, "BODY_TOO_LARGE", 0,
					     "the request envelope is over this server's limit of "
					     "%zu bytes (--max-body); send less, or restart the "
					     "server with a larger --max-body",
					     s->max_body),
				  NULL, NULL);
	if (!r->body.len)
		return reply_json(
		    rq, MHD_HTTP_BAD_REQUEST,
		    error_json(s, "EMPTY_BODY", 0,
			       "POST /run/%s/%s: expected the request envelope as the "
			       "body ([schema_id, version, payload] in MsgPack), found "
			       "an empty body",
			       r->u->ref, r->fname),
		    NULL, NULL);
	MHD_suspend_connection(rq->conn);
	if (run_submit(s, r)) {
		MHD_resume_connection(rq->conn);
		return reply_json(rq, MHD_HTTP_SERVICE_UNAVAILABLE,
				  error_json(s, "STOPPING", 0, "the server is stopping"), NULL,
				  "1");
	}
	return MHD_YES;
}

/* GET /run: the units served and their functions. */
static enum MHD_Result reply_listing(const request *rq)
{
	const server *s = rq->srv;
	char *body = strdup(s->listing);
	struct MHD_Response *r;
	size_t n;

	if (!body)
		return MHD_NO;
	n = strlen(body);
	if (!(r = MHD_create_response_from_buffer(n, body, MHD_RESPMEM_MUST_FREE))) {
		free(body);
		return MHD_NO;
	}
	if (header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") ||
	    header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache"))
		r = drop(r);
	return finish(rq, MHD_HTTP_OK, r, n);
}

static int seen; /* its address marks a request whose headers were read */

/* 1 for /run and everything under /run/. */
static int is_run_path(const char *path)
{
	return !strncmp(path, RUN_PREFIX, strlen(RUN_PREFIX)) &&
	       (!path[strlen(RUN_PREFIX)] || path[strlen(RUN_PREFIX)] == '/');
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload_data,
				  size_t *upload_size, void **req_cls)
{
	request rq = { conn, cls, method, url, !strcmp(method, "HEAD"), 0 };
	char path[PATH_CAP];
	const char *why;

	(void)version;
	if (*req_cls && *req_cls != &seen) {
		rq.run = 1;
		return run_continue(&rq, *req_cls, upload_data, upload_size);
	}
	if (strnlen(url, PATH_CAP) >= PATH_CAP)
		return reply_text(&rq, MHD_HTTP_URI_TOO_LONG, "path too long", NULL, NULL);
	if ((why = decode_path(url, path, sizeof(path))) || (why = check_segments(path)))
		return reply_text(&rq, MHD_HTTP_BAD_REQUEST, why, NULL, NULL);
	rq.run = is_run_path(path);
	if (rq.run && !*req_cls && path[strlen(RUN_PREFIX)] && path[strlen(RUN_PREFIX) + 1])
		return run_begin(&rq, path + strlen(RUN_PREFIX) + 1, req_cls);
	if (!rq.head && strcmp(method, "GET"))
		return rq.run ? reply_json(&rq, MHD_HTTP_METHOD_NOT_ALLOWED,
					   error_json(rq.srv, "METHOD_NOT_ALLOWED", 0,
						      "/run lists the served units: expected GET; "
						      "runs are POST /run/NAME@VERSION/FUNCTION"),
					   "GET, HEAD", NULL)
			      : reply_text(&rq, MHD_HTTP_METHOD_NOT_ALLOWED, "method not allowed",
					   MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
	/* MHD closes the connection after an answer queued on the first call
	 * (the request may still be arriving): wait for the second to keep it
	 * alive. A refused method above is answered at once, body unread. */
	if (!*req_cls) {
		*req_cls = &seen;
		return MHD_YES;
	}
	if (rq.run)
		return reply_listing(&rq);
	return serve(&rq, path);
}

/* A request is over (answered, or the client left): frees its run_req, or
 * leaves it to the runner that holds it. */
static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	server *s = cls;
	run_req *r = *req_cls;

	(void)conn;
	(void)toe;
	if (!r || *req_cls == (void *)&seen)
		return;
	*req_cls = NULL;
	pthread_mutex_lock(&s->qlock);
	if (r->state == RUN_QUEUED) {
		r->abandoned = 1;
		r = NULL;
	}
	pthread_mutex_unlock(&s->qlock);
	run_req_free(r);
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

/* Reads option `name` as a whole number in min..max into *v (left alone when
 * absent). */
static int number_opt(const mr_cmd *cmd, const mr_args *args, const char *name,
		      unsigned long long min, unsigned long long max, unsigned long long *v)
{
	const char *s = mr_args_get(cmd, args, name);
	unsigned long long n;
	char *end;

	if (!s)
		return 0;
	errno = 0;
	n = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || n < min || n > max)
		return mr_error_set(MR_EINVALID,
				    "--%s: expected a whole number from %llu to %llu, found '%s'",
				    name, min, max, s);
	*v = n;
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
	/* Accepted sockets inherit it: a response's last small segment never
	 * waits for the ACK of the one before (Nagle against delayed ACK). */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
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

static struct MHD_Daemon *start_daemon(server *srv, int lfd, unsigned threads)
{
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME;

	if (!srv->quiet)
		flags |= MHD_USE_ERROR_LOG;
	return MHD_start_daemon(
	    flags, 0, NULL, NULL, on_request, srv, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
	    MHD_OPTION_LISTEN_SOCKET, lfd, MHD_OPTION_THREAD_POOL_SIZE, threads,
	    MHD_OPTION_CONNECTION_LIMIT, (unsigned)MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned)IDLE_TIMEOUT_S, MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
	    MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_END);
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

/* Splits the --run value into `refs` (pointing into *copy, which the caller
 * frees): a repeated --run reaches us joined with ',' (mr_cli_parse joins a
 * repeated list option), and a comma list is accepted as it is. */
static int run_refs(const mr_cmd *cmd, const mr_args *args, const char **refs, size_t *n,
		    char **copy)
{
	const char *v = mr_args_get(cmd, args, "run");
	char *save = NULL, *t;

	*n = 0;
	*copy = NULL;
	if (!v)
		return 0;
	if (!(*copy = strdup(v)))
		return mr_error_set(MR_ERROR, "out of memory");
	for (t = strtok_r(*copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		if (*n == MAX_RUN_UNITS)
			return mr_error_set(MR_EINVALID, "--run: expected at most %d units, found more",
					    MAX_RUN_UNITS);
		refs[(*n)++] = t;
	}
	if (!*n)
		return mr_error_set(MR_EINVALID, "--run: expected NAME@VERSION, found '%s'", v);
	return 0;
}

/* Takes the functions and target of the loaded unit's signed manifest
 * (kept by libmolt, verified before the unit was loaded). */
static int read_functions(served_unit *u)
{
	const char *text = molt_unit_manifest_json(u->unit);
	cJSON *m = text ? cJSON_Parse(text) : NULL;
	int rc = 0;

	snprintf(u->digest, sizeof(u->digest), "%s", molt_unit_manifest_digest(u->unit));
	if (!m || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(m, "functions"))) {
		rc = mr_error_set(MR_EVERIFY, "the manifest %s of %s lists no functions", u->digest,
				  u->ref);
		goto done;
	}
	snprintf(u->target, sizeof(u->target), "%s",
		 molt_unit_target(u->unit) ? molt_unit_target(u->unit) : molt_host_triple());
	u->functions = cJSON_DetachItemFromObjectCaseSensitive(m, "functions");
done:
	cJSON_Delete(m);
	return rc;
}

/* "id@version" of a manifest's schema entry. */
static cJSON *schema_ref(const cJSON *e)
{
	char s[200];
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "version");

	snprintf(s, sizeof(s), "%s@%d", mr_json_str(e, "id") ? mr_json_str(e, "id") : "?",
		 cJSON_IsNumber(v) ? v->valueint : 0);
	return cJSON_CreateString(s);
}

/* GET /run's body, made once. */
static int make_listing(server *s)
{
	cJSON *o = cJSON_CreateObject(), *units, *u, *fns, *fn;
	const cJSON *f;
	size_t i;
	int rc = mr_error_set(MR_ERROR, "out of memory");

	if (!o || !(units = cJSON_AddArrayToObject(o, "units")))
		goto done;
	for (i = 0; i < s->nunits; i++) {
		served_unit *su = &s->units[i];
		if (!(u = cJSON_CreateObject()))
			goto done;
		cJSON_AddItemToArray(units, u);
		if (!cJSON_AddStringToObject(u, "name", su->name) ||
		    !cJSON_AddStringToObject(u, "version", su->version) ||
		    !cJSON_AddStringToObject(u, "target", su->target) ||
		    !cJSON_AddStringToObject(u, "manifest", su->digest) ||
		    !(fns = cJSON_AddArrayToObject(u, "functions")))
			goto done;
		cJSON_ArrayForEach(f, su->functions)
		{
			const cJSON *id = cJSON_GetObjectItemCaseSensitive(f, "id");
			if (!(fn = cJSON_CreateObject()))
				goto done;
			cJSON_AddItemToArray(fns, fn);
			cJSON_AddNumberToObject(fn, "id", cJSON_IsNumber(id) ? id->valuedouble : 0);
			cJSON_AddStringToObject(
			    fn, "name", mr_json_str(f, "name") ? mr_json_str(f, "name") : "");
			cJSON_AddItemToObject(
			    fn, "input", schema_ref(cJSON_GetObjectItemCaseSensitive(f, "input")));
			cJSON_AddItemToObject(
			    fn, "output",
			    schema_ref(cJSON_GetObjectItemCaseSensitive(f, "output")));
		}
	}
	if ((s->listing = cJSON_PrintUnformatted(o)))
		rc = 0;
done:
	cJSON_Delete(o);
	return rc;
}

/* Fetches, verifies and loads every --run unit, before any request is taken.
 * Returns an exit status (the error already printed). */
static int load_units(server *s, const mr_cmd *cmd, const mr_args *args, molt_runtime **rt,
		      uint32_t step_budget)
{
	molt_unit_options o = MOLT_UNIT_OPTIONS_INIT;
	const char *refs[MAX_RUN_UNITS];
	char *ref_copy = NULL;
	size_t i, n;
	int rc;

	if ((rc = run_refs(cmd, args, refs, &n, &ref_copy))) {
		rc = mr_cli_fail(PROG, rc);
		goto done;
	}
	if (n && !(s->units = calloc(n, sizeof(*s->units)))) {
		rc = 3;
		goto done;
	}
	for (i = 0; i < n; i++) {
		served_unit *u = &s->units[i];
		if ((rc = split_ref(refs[i], u->name, sizeof(u->name), u->version,
				    sizeof(u->version))))
			goto done;
		snprintf(u->ref, sizeof(u->ref), "%s@%s", u->name, u->version);
		if (find_unit(s, u->ref)) {
			mr_cli_error(PROG, "--run %s: named twice; name each unit once", u->ref);
			rc = 2;
			goto done;
		}
		pthread_mutex_init(&u->lock, NULL);
		s->nunits++;
	}
	if (!n) {
		rc = make_listing(s) ? mr_cli_fail(PROG, MR_ERROR) : 0;
		goto done;
	}
	if ((rc = open_runtime(rt, cmd, args, 1)))
		goto done;
	o.step_budget = step_budget;
	o.timeout_ms = s->timeout_ms;
	o.max_output = s->max_output;
	for (i = 0; i < n; i++) {
		served_unit *u = &s->units[i];
		if ((rc = molt_unit_load(&u->unit, *rt, u->name, u->version)) ||
		    (rc = molt_unit_set_options(u->unit, &o)) || (rc = read_functions(u))) {
			mr_error_wrap(rc, "--run %s", u->ref);
			rc = mr_cli_fail(PROG, rc);
			goto done;
		}
	}
	rc = make_listing(s) ? mr_cli_fail(PROG, MR_ERROR) : 0;
done:
	free(ref_copy);
	return rc;
}

static void free_units(server *s)
{
	size_t i;

	for (i = 0; i < s->nunits; i++) {
		molt_unit_free(s->units[i].unit);
		cJSON_Delete(s->units[i].functions);
		pthread_mutex_destroy(&s->units[i].lock);
	}
	free(s->units);
	free(s->listing);
}

/* The limits from the command line. */
static int limits(const mr_cmd *cmd, const mr_args *args, server *s, unsigned *threads,
		  uint32_t *budget)
{
	unsigned long long body = DEFAULT_MAX_BODY, timeout = DEFAULT_TIMEOUT_MS,
			   out = MOLT_MAX_OUTPUT_DEFAULT, t = POOL_THREADS, b = 0;
	int rc;

	if ((rc = number_opt(cmd, args, "max-body", 1, SIZE_MAX, &body)) ||
	    (rc = number_opt(cmd, args, "timeout-ms", 0, UINT32_MAX, &timeout)) ||
	    (rc = number_opt(cmd, args, "max-output", 1, SIZE_MAX, &out)) ||
	    (rc = number_opt(cmd, args, "threads", 1, MAX_THREADS, &t)) ||
	    (rc = number_opt(cmd, args, "step-budget", 1, UINT32_MAX, &b)))
		return rc;
	s->max_body = (size_t)body;
	s->timeout_ms = (uint32_t)timeout;
	s->max_output = (size_t)out;
	*threads = (unsigned)t;
	*budget = (uint32_t)b;
	return 0;
}

static int run(const mr_cmd *cmd, mr_args *args)
{
	const char *root = mr_args_get(cmd, args, "root");
	const char *port_s = mr_args_get(cmd, args, "port");
	const char *bind_addr = mr_args_get(cmd, args, "bind");
	server srv = { .rootfd = -1, .quiet = mr_args_get(cmd, args, "quiet") != NULL };
	struct MHD_Daemon *d = NULL;
	molt_runtime *rt = NULL;
	char *real = NULL, url[128];
	int lfd = -1, rc = 0, status = 0;
	unsigned port = 0, threads = POOL_THREADS;
	uint32_t budget = 0;
	sigset_t stop, old;

	if (args->nrest) {
		mr_cli_error(PROG,
			     "serve takes no arguments, found '%s'; units to run are named "
			     "with --run NAME@VERSION; see '%s serve --help'",
			     args->rest[0], PROG);
		return 2;
	}
	pthread_mutex_init(&srv.qlock, NULL);
	pthread_cond_init(&srv.qcond, NULL);
	if (!port_s)
		port_s = DEFAULT_PORT;
	if (!bind_addr)
		bind_addr = DEFAULT_BIND;
	if ((rc = parse_port(port_s, &port)) || (rc = limits(cmd, args, &srv, &threads, &budget)) ||
	    (rc = open_root(root ? root : ".", &real, &srv.rootfd)))
		goto done;
	/* Every unit is verified and loaded before the port is even opened. */
	if ((status = load_units(&srv, cmd, args, &rt, budget)))
		goto done;
	if ((rc = listen_on(bind_addr, port, &lfd)) || (rc = bound_url(lfd, url, sizeof(url))))
		goto done;
	block_signals(&stop, &old);
	if ((rc = runners_start(&srv, threads)))
		goto unblock;
	if (!(d = start_daemon(&srv, lfd, threads))) {
		rc = mr_error_set(MR_EENV, "starting the HTTP server on %s failed", url);
		goto unblock;
	}
	lfd = -1; /* MHD owns it now; quiescing hands it back */
	printf("serving %s on %s\n", real, url);
	fflush(stdout);
	wait_for_stop(&stop);
	/* Runs still queued are cancelled and their connections resumed: MHD
	 * must not be stopped with a connection suspended. */
	lfd = MHD_quiesce_daemon(d); /* ours to close, after MHD_stop_daemon */
	runners_stop(&srv);
	MHD_stop_daemon(d);
unblock:
	runners_stop(&srv);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
done:
	if (lfd >= 0)
		close(lfd);
	if (srv.rootfd >= 0)
		close(srv.rootfd);
	free_units(&srv);
	molt_runtime_free(rt);
	pthread_cond_destroy(&srv.qcond);
	pthread_mutex_destroy(&srv.qlock);
	free(real);
	if (status)
		return status;
	return rc ? mr_cli_fail(PROG, rc) : 0;
}

static const mr_opt serve_opts[] = {
	{ "root", 'r', "DIR", "folder to serve (default: the current folder)" },
	{ "port", 'p', "N", "TCP port (default: 8080; 0 picks a free one)" },
	{ "bind", 'b', "ADDR", "IP address to listen on (default: 127.0.0.1)" },
	{ "quiet", 'q', NULL, "do not log requests on stderr" },
	{ "threads", 0, "N", "HTTP threads, and threads running units (default: 4)" },
	{ "run", 0, "REF[,REF]", "load native unit(s) NAME@VERSION at start, for POST /run/NAME@VERSION/FUNCTION (repeatable)" },
	{ "registry", 0, "URL|DIR", "registry for --run (else $MOLT_REGISTRY)" },
	{ "key", 'k', "FILE[:FILE]", "trusted public key(s) (else $MOLT_TRUSTED_KEYS)" },
	{ "policy", 0, "FILE", "trust policy, e.g. keys/policy.json (else $MOLT_POLICY); replaces --key" },
	{ "cache", 0, "DIR", "cache folder (default: $XDG_CACHE_HOME/molt)" },
	{ "mirror", 0, "URL[,URL]", "other copies of the registry, tried in order; verified alike" },
	{ "allow-yanked", 0, NULL, "accept a yanked version (e.g. one a lockfile pins)" },
	{ "max-body", 0, "BYTES", "largest request envelope: 413 past it (default: 64 MiB)" },
	{ "timeout-ms", 0, "MS", "cancel a run after MS milliseconds: 504 (default: 10000; 0: none)" },
	{ "max-output", 0, "BYTES", "largest result envelope: 502 past it (default: 64 MiB)" },
	{ "step-budget", 0, "N", "work units per poll, sent to each unit (default: the unit's, 65536)" },
	{ NULL, 0, NULL, NULL },
};

const mr_cmd molt_cmd_serve = {
	"serve",
	"serve a registry folder and the demo page over HTTP, and run --run units natively",
	"[options] [--run NAME@VERSION ...]",
	serve_opts,
	run,
};
