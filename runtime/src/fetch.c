/* The client side of docs/registry.md: every file is checked before use,
 * in the order that page gives. */
#define _GNU_SOURCE
#include "internal.h"

#include "mr/digest.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/json.h"
#include "mr/manifest.h"
#include "mr/policy.h"
#include "mr/registry.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define META_MAX (4u << 20)
#define SIG_MAX 4096u
/* Largest jump in snapshot version accepted over the one remembered: a
 * publish adds one, so a million publishes between two fetches is absurd
 * (fast-forward defence; docs/security.md). */
#define MOLT__MAX_VERSION_JUMP 1000000
/* Retries after a network failure or a 5xx (MOLT_FETCH_RETRIES overrides),
 * and the first pause before one; each later pause doubles it. */
#define RETRIES_DEFAULT 3
#define RETRIES_MAX 10
#define BACKOFF_MS 200
/* libcurl's receive buffer for artifacts: fewer, larger writes. */
#define ARTIFACT_BUFFER (512L * 1024)
/* The hasher thread reads the .part back in chunks of this size. */
#define HASH_CHUNK (1u << 20)

/* Sources found unreachable (after their retries) during the current
 * molt__fetch: the later files of that fetch skip them instead of waiting
 * through the same retries again. Bit i is rt->src[i]. */
static _Thread_local unsigned int dead_src;

/* Hashes the artifact on a second thread, behind the writer: the writer
 * appends to the .part and publishes how far it got (`written`); the
 * hasher reads [hashed, written) back with pread (from the page cache) and
 * hashes it, so that receiving and hashing use two cores, as
 * `curl | openssl dgst` does. `hash` belongs to the hasher while it runs. */
typedef struct {
	pthread_t tid;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int fd;
	mr_sha256 *hash;
	uint64_t hashed;   /* file offset hashed up to */
	uint64_t written;  /* file offset written up to (by the writer) */
	int running;       /* the thread was started and not yet joined */
	int done;          /* the writer is finished: hash the rest and stop */
	int cancel;        /* stop now; the hash will not be used */
	int waiting;       /* the hasher sleeps until a chunk or `done` */
	int err;           /* pread failed with this errno (-1: the file shrank) */
} hasher;

typedef struct {
	mr_buf *buf;       /* metadata: kept in memory */
	int fd;            /* the artifact: appended to its .part file (-1: none) */
	mr_sha256 *hash;   /* hashes everything written to fd */
	uint64_t got;      /* bytes of the whole file so far, resumed ones included */
	uint64_t cap;      /* the signed size, or a cap for metadata */
	uint64_t from;     /* the Range start asked for; 0: the whole file */
	int over;          /* the server sent more than `cap` */
	int started;       /* the first bytes of the body were checked */
	int restarted;     /* a Range was ignored (200): the .part restarted at 0 */
	int bad_range;     /* a 206 whose Content-Range does not start at `from` */
	int io_errno;      /* writing the .part failed with this errno */
	int hash_err;      /* the hasher failed: an errno, or -1 (the .part shrank) */
	long range_start;  /* the start in the last Content-Range header (-1: none) */
	hasher *hs;        /* the artifact's hasher thread (NULL: hash inline) */
	const char *part;  /* the .part path, for messages */
	CURL *c;
	molt_runtime *rt;
	const char *what;
} sink;

/* Keeps the start of a Content-Range header; a new status line (e.g. after
 * a redirect) forgets it. */
static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	sink *s = ud;
	size_t len = size * n;
	char line[128];
	char *end;

	if (len >= 5 && !strncmp(p, "HTTP/", 5))
		s->range_start = -1;
	if (len < 21 || len >= sizeof(line) || strncasecmp(p, "content-range:", 14))
		return len;
	memcpy(line, p, len);
	line[len] = '\0';
	p = line + 14;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncmp(p, "bytes ", 6) || p[6] < '0' || p[6] > '9')
		return len;
	errno = 0;
	s->range_start = strtol(p + 6, &end, 10);
	if (errno || *end != '-')
		s->range_start = -1;
	return len;
}

static void *hasher_main(void *arg)
{
	hasher *h = arg;
	unsigned char *chunk = malloc(HASH_CHUNK);
	uint64_t from, to;
	ssize_t n;
	size_t want;
	int e;

	pthread_mutex_lock(&h->mu);
	if (!chunk)
		h->err = ENOMEM;
	for (;;) {
		while (!h->err && !h->cancel && !h->done && h->written - h->hashed < HASH_CHUNK) {
			h->waiting = 1;
			pthread_cond_wait(&h->cv, &h->mu);
		}
		h->waiting = 0;
		if (h->err || h->cancel || h->hashed == h->written)
			break;
		from = h->hashed;
		to = h->written;
		pthread_mutex_unlock(&h->mu);
		want = to - from > HASH_CHUNK ? HASH_CHUNK : (size_t)(to - from);
		do
			n = pread(h->fd, chunk, want, (off_t)from);
		while (n < 0 && errno == EINTR);
		e = n < 0 ? errno : 0;
		if (n > 0)
			mr_sha256_update(h->hash, chunk, (size_t)n);
		pthread_mutex_lock(&h->mu);
		if (n < 0)
			h->err = e ? e : EIO;
		else if (n == 0)
			h->err = -1;
		else
			h->hashed += (uint64_t)n;
	}
	pthread_mutex_unlock(&h->mu);
	free(chunk);
	return NULL;
}

/* Starts hashing `fd` into `hash` from offset `from` on a second thread.
 * If no thread can be started, h->running stays 0 and on_data hashes
 * inline, as before. */
static void hasher_start(hasher *h, int fd, mr_sha256 *hash, uint64_t from)
{
	if (!h)
		return;
	h->fd = fd;
	h->hash = hash;
	h->hashed = h->written = from;
	h->done = h->cancel = h->waiting = h->err = 0;
	h->running = 0;
	if (pthread_mutex_init(&h->mu, NULL))
		return;
	if (pthread_cond_init(&h->cv, NULL)) {
		pthread_mutex_destroy(&h->mu);
		return;
	}
	if (pthread_create(&h->tid, NULL, hasher_main, h)) {
		pthread_cond_destroy(&h->cv);
		pthread_mutex_destroy(&h->mu);
		return;
	}
	h->running = 1;
}

/* Stops the hasher and joins it: with `finish`, once it has hashed all
 * that was written; else at once (the hash is then thrown away). Returns
 * its error (an errno, -1: the file shrank) or 0. */
static int hasher_stop(hasher *h, int finish)
{
	if (!h || !h->running)
		return 0;
	pthread_mutex_lock(&h->mu);
	h->done = 1;
	h->cancel = !finish;
	pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	pthread_join(h->tid, NULL);
	pthread_cond_destroy(&h->cv);
	pthread_mutex_destroy(&h->mu);
	h->running = 0;
	return h->err;
}

/* Publishes the bytes written so far to the hasher; returns its error. */
static int hasher_written(hasher *h, uint64_t written)
{
	int err;

	pthread_mutex_lock(&h->mu);
	h->written = written;
	err = h->err;
	if (h->waiting && h->written - h->hashed >= HASH_CHUNK)
		pthread_cond_signal(&h->cv);
	pthread_mutex_unlock(&h->mu);
	return err;
}

static int hash_error(const sink *s, int err)
{
	if (err < 0)
		return mr_error_set(MR_EIO, "%s shrank while it was being hashed; another "
				    "process may be writing it", s->part);
	return mr_error_set(MR_EIO, "reading %s back to hash it: %s", s->part, strerror(err));
}

/* Sets up a resumed body on its first bytes: a 206 must start where the
 * .part ends; a 200 is the whole file, so the .part starts over. */
static int body_start(sink *s)
{
	long status = 0;

	s->started = 1;
	curl_easy_getinfo(s->c, CURLINFO_RESPONSE_CODE, &status);
	if (status == 206) {
		if (s->range_start < 0 || (uint64_t)s->range_start != s->from) {
			s->bad_range = 1;
			return -1;
		}
		return 0;
	}
	if (status != 200)
		return 0; /* file:// has no status and honours the range */
	hasher_stop(s->hs, 0);
	mr_sha256_free(s->hash);
	s->hash = NULL;
	if (mr_sha256_new(&s->hash) || ftruncate(s->fd, 0) < 0 || lseek(s->fd, 0, SEEK_SET) < 0) {
		s->io_errno = errno ? errno : ENOMEM;
		return -1;
	}
	s->got = 0;
	s->restarted = 1;
	hasher_start(s->hs, s->fd, s->hash, 0);
	return 0;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static size_t on_data(char *p, size_t size, size_t n, void *ud)
{
	sink *s = ud;
	size_t len = size * n;

	if (!s->started && s->fd >= 0 && s->from && body_start(s))
		return 0;
	s->started = 1;
	/* Endless-data defence: never take more than the signed size. */
	if (s->got + len > s->cap) {
		s->over = 1;
		return 0;
	}
	s->got += len;
	if (s->hash && !(s->hs && s->hs->running))
		mr_sha256_update(s->hash, p, len);
	if (s->buf && mr_buf_put(s->buf, p, len))
		return 0;
	if (s->fd >= 0 && write_all(s->fd, p, len)) {
		s->io_errno = errno;
		return 0;
	}
	if (s->hs && s->hs->running && (s->hash_err = hasher_written(s->hs, s->got)))
		return 0;
	if (s->rt->progress && s->fd >= 0)
		s->rt->progress(s->what, s->got, s->cap, s->rt->progress_payload);
	return len;
}

/* Failures worth another try: the network, a timeout, a dropped
 * connection. Not a 4xx, never a verification failure. */
static int transient(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_PARTIAL_FILE:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_GOT_NOTHING:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_SSL_CONNECT_ERROR:
		return 1;
	default:
		return 0;
	}
}

/* One GET of src+rel into the sink (from s->from on, when not 0), refusing
 * more than s->cap bytes in all. *again is set when the failure is one a
 * retry may cure. */
static int transfer(molt_runtime *rt, const char *src, const char *rel, sink *s, int *again)
{
	char err[CURL_ERROR_SIZE] = "", range[32], *url = NULL;
	CURL *c = curl_easy_init();
	CURLcode cc;
	long status = 0;
	int rc = 0;

	*again = 0;
	if (!c || asprintf(&url, "%s%s", src, rel) < 0) {
		curl_easy_cleanup(c);
		return mr_error_set(MR_ERROR, "out of memory");
	}
	s->rt = rt;
	s->c = c;
	s->started = s->over = s->bad_range = s->io_errno = s->hash_err = 0;
	s->range_start = -1;
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
	/* An error page must never reach a buffer or a .part file. */
	curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https,file");
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 30L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 60L);
	if (s->fd >= 0)
		curl_easy_setopt(c, CURLOPT_BUFFERSIZE, ARTIFACT_BUFFER);
	if (s->from) {
		snprintf(range, sizeof(range), "%llu-", (unsigned long long)s->from);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
	}
	cc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	if (cc == CURLE_WRITE_ERROR && s->over)
		rc = mr_error_set(MR_EVERIFY,
				  "%s: more than the expected %llu bytes; refusing the rest "
				  "(the server sends more than signed metadata allows)",
				  url, (unsigned long long)s->cap);
	else if (cc == CURLE_WRITE_ERROR && s->io_errno)
		rc = mr_error_set(MR_EIO, "fetching %s: writing the cache: %s", url,
				  strerror(s->io_errno));
	else if (cc == CURLE_WRITE_ERROR && s->hash_err)
		rc = hash_error(s, s->hash_err);
	else if (cc == CURLE_WRITE_ERROR && s->bad_range)
		rc = mr_error_set(MR_EENV, "fetching %s: asked for bytes %llu- and the server "
				  "answered with Content-Range starting at %ld",
				  url, (unsigned long long)s->from, s->range_start);
	else if (cc == CURLE_FILE_COULDNT_READ_FILE || status == 404)
		rc = mr_error_set(MR_ENOTFOUND, "%s: not found", url);
	else if (s->from && (status == 416 || cc == CURLE_BAD_DOWNLOAD_RESUME)) {
		s->bad_range = 1;
		rc = mr_error_set(MR_EENV, "fetching %s: the server refused bytes %llu-", url,
				  (unsigned long long)s->from);
	} else if (cc == CURLE_HTTP_RETURNED_ERROR || (cc == CURLE_OK && status >= 400)) {
		*again = status >= 500;
		rc = mr_error_set(MR_EENV, "fetching %s: HTTP status %ld", url, status);
	} else if (cc != CURLE_OK) {
		*again = transient(cc);
		rc = mr_error_set(MR_EENV, "fetching %s: %s", url,
				  *err ? err : curl_easy_strerror(cc));
	}
	free(url);
	curl_easy_cleanup(c);
	s->c = NULL;
	return rc;
}

/* How many times a failed GET is retried: MOLT_FETCH_RETRIES, else 3. */
static int retries(int *out)
{
	const char *e = getenv("MOLT_FETCH_RETRIES");
	char *end;
	long v;

	*out = RETRIES_DEFAULT;
	if (!e || !*e)
		return 0;
	errno = 0;
	v = strtol(e, &end, 10);
	if (errno || *end || v < 0 || v > RETRIES_MAX)
		return mr_error_set(MR_EINVALID, "MOLT_FETCH_RETRIES is '%s': expected a whole "
				    "number from 0 (no retry) to %d", e, RETRIES_MAX);
	*out = (int)v;
	return 0;
}

/* Waits before retry number `n` (0-based): 0.2 s, 0.4 s, 0.8 s, ... plus
 * up to a quarter more at random, so that clients that failed together do
 * not come back together. */
static void backoff(int n)
{
	unsigned long ms = (unsigned long)BACKOFF_MS << (n < 8 ? n : 8);
	struct timespec ts;

	ms += randombytes_uniform((uint32_t)(ms / 4 + 1));
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Index of `src` in rt->src. */
static size_t src_index(molt_runtime *rt, const char *src)
{
	size_t i;

	for (i = 0; i < rt->nsrc; i++)
		if (rt->src[i] == src)
			return i;
	return 0;
}

/* A source that failed every retry stays skipped for the rest of this fetch. */
static int src_dead(molt_runtime *rt, const char *src, const char *rel)
{
	if (!(dead_src & (1u << src_index(rt, src))))
		return 0;
	return mr_error_set(MR_EENV, "%s%s: not tried, %s failed earlier in this fetch", src, rel,
			    src);
}

static int get_buf(molt_runtime *rt, const char *src, const char *rel, mr_buf *out,
		   uint64_t cap)
{
	sink s = { .buf = out, .fd = -1, .cap = cap, .range_start = -1, .what = rel };
	int n = 0, max, again, rc;

	if ((rc = retries(&max)) || (rc = src_dead(rt, src, rel)))
		return rc;
	for (;;) {
		out->len = 0;
		s.got = 0;
		if (!(rc = transfer(rt, src, rel, &s, &again)) || !again)
			return rc;
		if (n == max)
			break;
		backoff(n++);
	}
	dead_src |= 1u << src_index(rt, src);
	return rc;
}

/* Collects why each source failed, so that with mirrors the message names
 * every one; a verification failure outranks a missing file or network. */
typedef struct {
	mr_buf why;
	int rc;
	size_t n;
} failures;

static void failed(failures *f, int rc)
{
	mr_buf_printf(&f->why, "%s%s", f->n++ ? "; " : "", mr_error_last());
	if (!f->rc || rc == MR_EVERIFY)
		f->rc = rc;
}

static int failures_end(failures *f, size_t nsrc)
{
	int rc = f->rc;

	if (nsrc > 1)
		mr_error_set(rc, "every source failed: %s", (const char *)f->why.data);
	else
		mr_error_set(rc, "%s", (const char *)f->why.data);
	mr_buf_free(&f->why);
	return rc;
}

/* Fetches base-relative `rel` from the first source whose bytes have
 * `digest` (and `size`, when not 0). Only files named by signed metadata
 * are ever fetched: `digest` comes from it. */
static int get_verified(molt_runtime *rt, const char *rel, const char *digest, uint64_t size,
			uint64_t cap, mr_buf *out)
{
	char have[MR_DIGEST_STR_LEN + 1];
	failures f = { MR_BUF_INIT, 0, 0 };
	size_t i;
	int rc;

	for (i = 0; i < rt->nsrc; i++) {
		if ((rc = get_buf(rt, rt->src[i], rel, out, size ? size : cap))) {
			failed(&f, rc);
			continue;
		}
		if (size && out->len != size) {
			failed(&f, mr_error_set(MR_EVERIFY, "%s%s: expected %llu bytes, got %zu",
						rt->src[i], rel, (unsigned long long)size, out->len));
			continue;
		}
		mr_digest_buf(have, out->data, out->len);
		if (strcmp(have, digest)) {
			failed(&f, mr_error_set(MR_EVERIFY,
						"%s%s: digest mismatch: expected %s, got %s; the "
						"copy is corrupt or was tampered with",
						rt->src[i], rel, digest, have));
			continue;
		}
		mr_buf_free(&f.why);
		return 0;
	}
	return failures_end(&f, rt->nsrc);
}

/* Fetches a small blob and checks its digest (and size, when known). */
static int get_blob(molt_runtime *rt, const char *digest, uint64_t size,
		    uint64_t cap, mr_buf *out)
{
	char rel[128];

	if (!mr_digest_valid(digest))
		return mr_error_set(MR_EVERIFY, "'%s' is not a sha256 digest", digest);
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", digest + 7);
	return get_verified(rt, rel, digest, size, cap, out);
}

/* 1 if the cached file at `path` hashes to `digest`: every read of the
 * cache checks the bytes again. */
static int cached_ok(const char *path, const char *digest)
{
	char have[MR_DIGEST_STR_LEN + 1];

	return mr_fs_exists(path) && !mr_digest_file(have, path, NULL) && !strcmp(have, digest);
}

/* Stores a verified small blob, replacing a cached copy that no longer
 * hashes right (a rename: readers see the old file or the new one). */
static int cache_put(molt_runtime *rt, const char *digest, const mr_buf *b)
{
	char *path = mr_blob_path(rt->cache, digest);
	int rc = path ? 0 : mr_error_set(MR_ERROR, "out of memory");

	if (!rc && !cached_ok(path, digest))
		rc = mr_fs_write_atomic(path, b->data, b->len, 0644);
	free(path);
	return rc;
}

/* ---- advisory locks beside the cached files -------------------------- */

/* Takes the exclusive flock on `path` (created when missing), waiting while
 * another process holds it. lock_release removes the file, so after the wait
 * the lock counts only if the file locked is still the one at `path`. */
static int lock_take(const char *path, int *out)
{
	struct stat a, b;
	int fd;

	for (;;) {
		if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
			return mr_error_sys(MR_EIO, "creating the lock %s", path);
		while (flock(fd, LOCK_EX) < 0)
			if (errno != EINTR) {
				close(fd);
				return mr_error_sys(MR_EIO, "locking %s", path);
			}
		if (!fstat(fd, &a) && !stat(path, &b) && a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			break;
		close(fd);
	}
	*out = fd;
	return 0;
}

static void lock_release(const char *path, int fd)
{
	if (fd < 0)
		return;
	unlink(path);
	close(fd);
}

/* ---- the artifact: resumable, retried, one download per blob ---------- */

/* Hashes the bytes a .part already holds (they count; they are not fetched
 * again) and leaves its offset at the end. A .part longer than the signed
 * size is corrupt: it starts over. */
static int part_open(sink *s, const char *part, uint64_t size)
{
	unsigned char *chunk = NULL;
	struct stat st;
	uint64_t at = 0;
	ssize_t n;
	int rc = 0;

	mr_sha256_free(s->hash);
	s->hash = NULL;
	s->got = 0;
	if ((rc = mr_sha256_new(&s->hash)))
		return rc;
	if (fstat(s->fd, &st) < 0)
		return mr_error_sys(MR_EIO, "reading %s", part);
	if ((uint64_t)st.st_size > size && ftruncate(s->fd, 0) < 0)
		return mr_error_sys(MR_EIO, "truncating %s", part);
	if ((uint64_t)st.st_size > 0 && (uint64_t)st.st_size <= size) {
		if (!(chunk = malloc(1 << 20)))
			return mr_error_set(MR_ERROR, "out of memory");
		while ((n = pread(s->fd, chunk, 1 << 20, (off_t)at)) != 0) {
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				rc = mr_error_sys(MR_EIO, "reading %s", part);
				break;
			}
			mr_sha256_update(s->hash, chunk, (size_t)n);
			at += (uint64_t)n;
			if (at > size) {
				rc = mr_error_set(MR_EIO, "%s grew while it was being read", part);
				break;
			}
		}
		free(chunk);
	}
	s->got = at;
	if (!rc && lseek(s->fd, (off_t)at, SEEK_SET) < 0)
		rc = mr_error_sys(MR_EIO, "seeking in %s", part);
	return rc;
}

/* Streams the artifact from one source into `part`, capped and hashed,
 * resuming from what `part` holds; retries network failures (resuming
 * again). A digest or size mismatch in bytes that were put together from
 * more than one response starts over from byte 0 once before it fails, so
 * a corrupt partial download never poisons the cache. */
static int get_artifact_from(molt_runtime *rt, const char *src, const char *rel,
			     const char *digest, uint64_t size, const char *part,
			     const char *label)
{
	char have[MR_DIGEST_STR_LEN + 1];
	unsigned char raw[MR_DIGEST_LEN];
	hasher hs = { .running = 0 };
	sink s = { .fd = -1, .cap = size, .range_start = -1, .what = label, .hs = &hs,
		   .part = part };
	int n = 0, max, again, joined = 0, clean = 0, rc, herr;

	if ((rc = retries(&max)) || (rc = src_dead(rt, src, rel)))
		return rc;
	if ((s.fd = open(part, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
		return mr_error_sys(MR_EIO, "creating %s", part);
	for (;;) {
		if ((rc = part_open(&s, part, size)))
			goto done;
		if (s.got < size) {
			joined |= s.got > 0;
			s.from = s.got;
			s.restarted = 0;
			if (rt->progress)
				rt->progress(label, s.got, size, rt->progress_payload);
			hasher_start(&hs, s.fd, s.hash, s.got);
			rc = transfer(rt, src, rel, &s, &again);
			/* Every way out of a transfer stops the hasher here. */
			herr = hasher_stop(&hs, !rc);
			if (!rc && herr)
				rc = hash_error(&s, herr);
			if (s.restarted)
				joined = 0; /* the server sent the whole file */
			if (rc && s.bad_range && !clean) {
				/* The server does not do ranges right: from byte 0. */
				clean = 1;
				if (ftruncate(s.fd, 0) < 0) {
					rc = mr_error_sys(MR_EIO, "truncating %s", part);
					goto done;
				}
				continue;
			}
			if (rc && again && n < max) {
				backoff(n++);
				continue;
			}
			if (rc) {
				if (again)
					dead_src |= 1u << src_index(rt, src);
				goto done;
			}
		}
		mr_sha256_final(s.hash, raw);
		mr_digest_format(have, raw);
		if (s.got == size && !strcmp(have, digest))
			goto done;
		if (joined && !clean) {
			clean = 1;
			if (ftruncate(s.fd, 0) < 0) {
				rc = mr_error_sys(MR_EIO, "truncating %s", part);
				goto done;
			}
			continue;
		}
		if (s.got != size)
			rc = mr_error_set(MR_EVERIFY, "%s%s: expected %llu bytes (signed manifest), got %llu",
					  src, rel, (unsigned long long)size, (unsigned long long)s.got);
		else
			rc = mr_error_set(MR_EVERIFY,
					  "%s%s: digest mismatch: the signed manifest says %s, the "
					  "bytes hash to %s; refusing the artifact",
					  src, rel, digest, have);
		goto done;
	}
done:
	/* Bytes a source got wrong are dropped; bytes cut short by the network
	 * stay for the next try to resume from. */
	if (rc == MR_EVERIFY)
		unlink(part);
	if (s.fd >= 0 && close(s.fd) < 0 && !rc)
		rc = mr_error_sys(MR_EIO, "writing %s", part);
	mr_sha256_free(s.hash);
	return rc;
}

/* The artifact: from the cache when its bytes still hash right, else
 * streamed into <hex>.part from the first source that gives the signed
 * bytes, under the lock <hex>.lock, so that two processes sharing the cache
 * download it once: the second waits, then finds it cached. */
static int get_artifact(molt_runtime *rt, const cJSON *a, char **path_out,
			const char *label)
{
	const char *digest = mr_json_str(a, "digest");
	const cJSON *sz = cJSON_GetObjectItemCaseSensitive(a, "size");
	char rel[128], *path = NULL, *part = NULL, *lock = NULL;
	failures f = { MR_BUF_INIT, 0, 0 };
	uint64_t size;
	size_t i;
	int rc = 0, fd = -1;

	*path_out = NULL;
	if (!digest || !mr_digest_valid(digest) || !(path = mr_blob_path(rt->cache, digest)))
		return mr_error_set(MR_EVERIFY, "manifest artifact digest '%s' is malformed",
				    digest ? digest : "(none)");
	if (!mr_json_is_int(sz, 0, 9e15)) {
		free(path);
		return mr_error_set(MR_EVERIFY, "manifest artifact size is not a byte count");
	}
	size = (uint64_t)sz->valuedouble;
	/* A blob already in the cache is used only if it hashes to the signed digest. */
	if (cached_ok(path, digest)) {
		*path_out = path;
		return 0;
	}
	if (asprintf(&part, "%s.part", path) < 0 || asprintf(&lock, "%s.lock", path) < 0) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = lock_take(lock, &fd)))
		goto done;
	if (cached_ok(path, digest))
		goto done; /* another process fetched it while this one waited */
	snprintf(rel, sizeof(rel), "blobs/sha256/%s", digest + 7);
	for (i = 0; i < rt->nsrc; i++) {
		if (!(rc = get_artifact_from(rt, rt->src[i], rel, digest, size, part, label)))
			break;
		failed(&f, rc);
	}
	if (rc)
		rc = failures_end(&f, rt->nsrc);
	else if (rename(part, path) < 0)
		rc = mr_error_sys(MR_EIO, "renaming %s", part);
done:
	lock_release(lock, fd);
	mr_buf_free(&f.why);
	if (rc)
		free(path);
	else
		*path_out = path;
	free(part);
	free(lock);
	return rc;
}

/* ---- rollback and fast-forward: <cache>/state/<sha256 of base URL>.json */

static char *state_path(molt_runtime *rt)
{
	char d[MR_DIGEST_STR_LEN + 1], *p = NULL;

	mr_digest_buf(d, rt->base, strlen(rt->base));
	if (asprintf(&p, "%s/state/%s.json", rt->cache, d + 7) < 0)
		return NULL;
	return p;
}

/* The highest snapshot version seen from this registry under the policy's
 * current snapshot keys (0: none). */
static double state_version(molt_runtime *rt, const char *keys)
{
	char *path = state_path(rt);
	mr_buf b = MR_BUF_INIT;
	cJSON *j = NULL;
	double v = 0;

	if (path && !mr_fs_read(&b, path, 4096) &&
	    (j = cJSON_ParseWithLength((const char *)b.data, b.len)) &&
	    mr_json_str(j, "snapshot_keys") && !strcmp(mr_json_str(j, "snapshot_keys"), keys) &&
	    mr_json_is_int(cJSON_GetObjectItemCaseSensitive(j, "version"), 1, 9e15))
		v = cJSON_GetObjectItemCaseSensitive(j, "version")->valuedouble;
	cJSON_Delete(j);
	mr_buf_free(&b);
	free(path);
	return v;
}

/* Remembers `version`, under a lock and only if it is higher than what is
 * remembered now: two fetches at once must never lower the memory. */
static int state_save(molt_runtime *rt, const char *keys, double version)
{
	char *path = state_path(rt), *dir = NULL, *text = NULL, *lock = NULL;
	cJSON *j = cJSON_CreateObject();
	int rc, fd = -1;

	if (path && asprintf(&lock, "%s.lock", path) < 0)
		lock = NULL;
	if (!path || !lock || !j || !(dir = mr_fs_join(rt->cache, "state")) ||
	    !cJSON_AddStringToObject(j, "url", rt->base) ||
	    !cJSON_AddNumberToObject(j, "version", version) ||
	    !cJSON_AddStringToObject(j, "snapshot_keys", keys) || !(text = cJSON_Print(j)))
		rc = mr_error_set(MR_ERROR, "out of memory");
	else if (!(rc = mr_fs_mkdir_p(dir)) && !(rc = lock_take(lock, &fd)) &&
		   state_version(rt, keys) < version)
		rc = mr_fs_write_atomic(path, text, strlen(text), 0644);
	lock_release(lock, fd);
	cJSON_Delete(j);
	free(text);
	free(lock);
	free(dir);
	free(path);
	return rc;
}

static int keyid_ok(const char *s)
{
	size_t n = strlen(s), i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
			return 0;
	return n && n <= 16;
}

/* One source's snapshot: signatures under the policy's snapshot keys and
 * threshold, the signed comment, format, expiry against `now`, and no
 * rollback or fast-forward past what this client has seen. */
static int snapshot_from(molt_runtime *rt, const char *src, time_t now, double seen,
			 cJSON **out)
{
	mr_buf snap = MR_BUF_INIT, sigs[MR_POLICY_MAX_SIGS];
	char want[160], rel[64], *where[MR_POLICY_MAX_SIGS];
	cJSON *s = NULL;
	const cJSON *v, *signer;
	size_t nsigs = 0, i;
	int rc;

	memset(sigs, 0, sizeof(sigs));
	memset(where, 0, sizeof(where));
	*out = NULL;
	if ((rc = get_buf(rt, src, "snapshot.json", &snap, META_MAX)) ||
	    (rc = get_buf(rt, src, "snapshot.json.minisig", &sigs[nsigs], SIG_MAX)))
		goto done;
	if (asprintf(&where[nsigs++], "%ssnapshot.json.minisig", src) < 0) {
		rc = mr_error_set(MR_ERROR, "out of memory");
		goto done;
	}
	if ((rc = mr_snapshot_parse(&s, &snap, want, sizeof(want), src)))
		goto done;
	v = cJSON_GetObjectItemCaseSensitive(s, "version");
	/* More signatures are fetched only when one key is not enough; the
	 * "signers" list is unsigned, so it only says which files to try. */
	signer = cJSON_GetObjectItemCaseSensitive(s, "signers");
	if (mr_policy_threshold(rt->policy, NULL) > 1 && cJSON_IsArray(signer))
		for (signer = signer->child; signer && nsigs < MR_POLICY_MAX_SIGS; signer = signer->next) {
			if (!cJSON_IsString(signer) || !keyid_ok(signer->valuestring)) {
				rc = mr_error_set(MR_EVERIFY, "%ssnapshot.json: a signer is not a key id", src);
				goto done;
			}
			snprintf(rel, sizeof(rel), "snapshot.json.%s.minisig", signer->valuestring);
			if ((rc = get_buf(rt, src, rel, &sigs[nsigs], SIG_MAX))) {
				if (rc == MR_ENOTFOUND)
					continue;
				goto done;
			}
			if (asprintf(&where[nsigs++], "%s%s", src, rel) < 0) {
				rc = mr_error_set(MR_ERROR, "out of memory");
				goto done;
			}
		}
	if ((rc = mr_policy_verify(rt->policy, NULL, sigs, (const char *const *)where, nsigs,
				   snap.data, snap.len, want, now, NULL))) {
		mr_error_wrap(rc, "%ssnapshot.json", src);
		goto done;
	}
	if ((rc = mr_snapshot_fresh(s, now, src)))
		goto done;
	if (v->valuedouble < seen) {
		rc = mr_error_set(MR_EVERIFY,
				  "%ssnapshot.json: rollback: version %.0f is older than version %.0f "
				  "this client has already seen from %s; refusing it (a stale "
				  "mirror or a replay of old metadata)",
				  src, v->valuedouble, seen, rt->base);
		goto done;
	}
	if (seen && v->valuedouble > seen + MOLT__MAX_VERSION_JUMP) {
		rc = mr_error_set(MR_EVERIFY,
				  "%ssnapshot.json: fast-forward: version %.0f is more than %d ahead "
				  "of version %.0f seen before; refusing it (a leaked snapshot key "
				  "could otherwise lock this client out of later snapshots). If the "
				  "publisher confirms, delete the rollback state in %s/state",
				  src, v->valuedouble, MOLT__MAX_VERSION_JUMP, seen, rt->cache);
		goto done;
	}
	*out = s;
	s = NULL;
done:
	for (i = 0; i < MR_POLICY_MAX_SIGS; i++) {
		mr_buf_free(&sigs[i]);
		free(where[i]);
	}
	mr_buf_free(&snap);
	cJSON_Delete(s);
	return rc;
}

static int get_snapshot(molt_runtime *rt, time_t now, cJSON **out)
{
	failures f = { MR_BUF_INIT, 0, 0 };
	mr_buf keys = MR_BUF_INIT;
	double seen, v;
	size_t i;
	int rc;

	*out = NULL;
	if ((rc = mr_policy_snapshot_keys(rt->policy, &keys)))
		return rc;
	seen = state_version(rt, (const char *)keys.data);
	for (i = 0; i < rt->nsrc; i++) {
		if (!(rc = snapshot_from(rt, rt->src[i], now, seen, out)))
			break;
		failed(&f, rc);
	}
	if (rc) {
		rc = failures_end(&f, rt->nsrc);
	} else {
		mr_buf_free(&f.why);
		v = cJSON_GetObjectItemCaseSensitive(*out, "version")->valuedouble;
		if (v > seen && (rc = state_save(rt, (const char *)keys.data, v))) {
			cJSON_Delete(*out);
			*out = NULL;
		}
	}
	mr_buf_free(&keys);
	return rc;
}

/* The manifest's signatures: "signatures" (one per key), else "signature". */
static int unit_signatures(molt_runtime *rt, const cJSON *t, const char *name,
			   const mr_buf *m, const char *comment, const char *where)
{
	const cJSON *list = cJSON_GetObjectItemCaseSensitive(t, "signatures"), *e;
	const cJSON *one = cJSON_GetObjectItemCaseSensitive(t, "signature");
	mr_buf sigs[MR_POLICY_MAX_SIGS];
	char *names[MR_POLICY_MAX_SIGS];
	size_t n = 0, i;
	int rc = 0;

	memset(sigs, 0, sizeof(sigs));
	memset(names, 0, sizeof(names));
	if (list && (!cJSON_IsArray(list) || !list->child))
		return mr_error_set(MR_EVERIFY, "%s: \"signatures\" is not a list of digests", where);
	for (e = list ? list->child : one; e && n < MR_POLICY_MAX_SIGS && !rc;
	     e = list ? e->next : NULL) {
		if (!cJSON_IsString(e) || !mr_digest_valid(e->valuestring))
			rc = mr_error_set(MR_EVERIFY, "%s: a signature is not a sha256 digest", where);
		else if (!(rc = get_blob(rt, e->valuestring, 0, SIG_MAX, &sigs[n])) &&
			 asprintf(&names[n++], "%sblobs/sha256/%s", rt->base, e->valuestring + 7) < 0)
			rc = mr_error_set(MR_ERROR, "out of memory");
	}
	if (!rc && !n)
		rc = mr_error_set(MR_EVERIFY, "%s: entry lacks a signature", where);
	if (!rc && (rc = mr_policy_verify(rt->policy, name, sigs, (const char *const *)names, n,
					  m->data, m->len, comment, time(NULL), NULL)))
		mr_error_wrap(rc, "%s", where);
	for (i = 0; i < MR_POLICY_MAX_SIGS; i++) {
		mr_buf_free(&sigs[i]);
		free(names[i]);
	}
	return rc;
}

/* Reports each dependency the manifest names; none is fetched. */
static int report_depends(molt_runtime *rt, const cJSON *manifest, const char *unit,
			  const char *where)
{
	const cJSON *d = cJSON_GetObjectItemCaseSensitive(manifest, "depends");
	char dep[300];

	if (!d)
		return 0;
	if (!cJSON_IsArray(d))
		return mr_error_set(MR_EVERIFY, "%s: \"depends\" is not a list", where);
	for (d = d->child; d; d = d->next) {
		if (cJSON_IsString(d))
			snprintf(dep, sizeof(dep), "%s", d->valuestring);
		else if (mr_json_str(d, "name") && mr_json_str(d, "version"))
			snprintf(dep, sizeof(dep), "%s@%s", mr_json_str(d, "name"), mr_json_str(d, "version"));
		else
			return mr_error_set(MR_EVERIFY, "%s: a \"depends\" entry is neither NAME@VERSION nor {name, version}",
					    where);
		if (rt->depends)
			rt->depends(unit, dep, rt->progress_payload);
	}
	return 0;
}

int molt__fetch(molt_runtime *rt, const char *name, const char *version,
		const char *target, molt__fetched *out, char manifest_digest[72])
{
	mr_buf idx = MR_BUF_INIT, m = MR_BUF_INIT;
	cJSON *s = NULL, *index = NULL, *manifest = NULL;
	const cJSON *entry, *t, *sc;
	char rel[300], comment[300], label[300], where[400];
	time_t now = time(NULL); /* fixed once: every expiry is checked against it */
	int rc;

	memset(out, 0, sizeof(*out));
	dead_src = 0;
	if ((rc = get_snapshot(rt, now, &s)))
		goto done;
	entry = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "indexes"), name);
	if (!entry) {
		rc = mr_error_set(MR_ENOTFOUND, "%s: no unit named '%s' in this registry", rt->base, name);
		goto done;
	}
	snprintf(rel, sizeof(rel), "index/%s.json", name);
	if (!mr_json_str(entry, "digest") || !mr_digest_valid(mr_json_str(entry, "digest"))) {
		rc = mr_error_set(MR_EVERIFY, "%ssnapshot.json: no digest for %s", rt->base, rel);
		goto done;
	}
	if ((rc = get_verified(rt, rel, mr_json_str(entry, "digest"), 0, META_MAX, &idx))) {
		if (rt->nsrc == 1 && strstr(mr_error_last(), "digest mismatch: expected "))
			mr_error_set(rc, "%s%s: digest mismatch: the signed snapshot says %s, got another file",
				     rt->base, rel, mr_json_str(entry, "digest"));
		goto done;
	}
	if (!(index = cJSON_ParseWithLength((const char *)idx.data, idx.len))) {
		rc = mr_error_set(MR_EVERIFY, "%s%s: not JSON", rt->base, rel);
		goto done;
	}
	t = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(index, "versions"), version);
	if (!t) {
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s is not in %s; see %s%s for the versions it has",
				  name, version, rt->base, rt->base, rel);
		goto done;
	}
	if (!(t = cJSON_GetObjectItemCaseSensitive(t, target))) {
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s has no build for %s in %s", name, version,
				  target, rt->base);
		goto done;
	}
	if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(t, "yanked")) && !rt->allow_yanked) {
		rc = mr_error_set(MR_ENOTFOUND, "%s@%s (%s) was yanked from %s; pick another version "
				  "(or allow yanked units, e.g. molt fetch --allow-yanked, when a "
				  "lockfile pins it)", name, version, target, rt->base);
		goto done;
	}
	const char *md = mr_json_str(t, "manifest");
	const cJSON *msize = cJSON_GetObjectItemCaseSensitive(t, "size");
	if (!md || !mr_digest_valid(md) || !mr_json_is_int(msize, 1, META_MAX)) {
		rc = mr_error_set(MR_EVERIFY, "%s%s: entry for %s/%s lacks manifest, size or signature",
				  rt->base, rel, version, target);
		goto done;
	}
	if ((rc = get_blob(rt, md, (uint64_t)msize->valuedouble, META_MAX, &m)))
		goto done;
	mr_unit_comment(comment, sizeof(comment), name, version, target, md);
	snprintf(where, sizeof(where), "%sblobs/sha256/%s", rt->base, md + 7);
	if ((rc = unit_signatures(rt, t, name, &m, comment, where)))
		goto done;
	if (!(manifest = cJSON_ParseWithLength((const char *)m.data, m.len)) ||
	    (rc = mr_manifest_check(manifest, name, version, target))) {
		rc = rc ? mr_error_wrap(rc, "%s", where)
			: mr_error_set(MR_EVERIFY, "%s: manifest is not JSON", where);
		goto done;
	}
	snprintf(label, sizeof(label), "%s@%s", name, version);
	if ((rc = report_depends(rt, manifest, label, where)) || (rc = cache_put(rt, md, &m)))
		goto done;
	sc = cJSON_GetObjectItemCaseSensitive(manifest, "schemas");
	for (sc = sc ? sc->child : NULL; sc; sc = sc->next) {
		mr_buf b = MR_BUF_INIT;
		const char *d = mr_json_str(sc, "digest");
		rc = d ? get_blob(rt, d, 0, META_MAX, &b)
		       : mr_error_set(MR_EVERIFY, "manifest schema entry without digest");
		if (!rc)
			rc = cache_put(rt, d, &b);
		mr_buf_free(&b);
		if (rc)
			goto done;
	}
	if ((rc = get_artifact(rt, cJSON_GetObjectItemCaseSensitive(manifest, "artifact"),
			       &out->artifact, label)))
		goto done;
	if (manifest_digest)
		snprintf(manifest_digest, 72, "%s", md);
	out->manifest = manifest;
	manifest = NULL;
done:
	cJSON_Delete(s);
	cJSON_Delete(index);
	cJSON_Delete(manifest);
	mr_buf_free(&idx);
	mr_buf_free(&m);
	return rc;
}

int molt__schema_get(molt_runtime *rt, const cJSON *manifest, const char *id,
		     int version, cJSON **doc)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(manifest, "schemas");
	mr_buf b = MR_BUF_INIT;
	char *path, have[MR_DIGEST_STR_LEN + 1];
	int rc;

	*doc = NULL;
	for (s = s ? s->child : NULL; s; s = s->next)
		if (!strcmp(mr_json_str(s, "id"), id) &&
		    mr_json_is_int(cJSON_GetObjectItemCaseSensitive(s, "version"), version, version))
			break;
	if (!s)
		return mr_error_set(MR_EVERIFY, "manifest does not list schema %s@%d", id, version);
	if (!(path = mr_blob_path(rt->cache, mr_json_str(s, "digest"))))
		return mr_error_set(MR_EVERIFY, "schema %s@%d: malformed digest", id, version);
	if (!(rc = mr_fs_read(&b, path, META_MAX))) {
		mr_digest_buf(have, b.data, b.len);
		if (strcmp(have, mr_json_str(s, "digest")))
			rc = mr_error_set(MR_EVERIFY, "%s: cached schema is corrupt (hashes to %s); delete it",
					  path, have);
		else if (!(*doc = cJSON_ParseWithLength((const char *)b.data, b.len)))
			rc = mr_error_set(MR_EVERIFY, "%s: schema is not JSON", path);
	}
	free(path);
	mr_buf_free(&b);
	return rc;
}
