#include "mr/minisign.h"

#include "mr/error.h"
#include "mr/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define UNTRUSTED "untrusted comment: "
#define TRUSTED "trusted comment: "
/* minisign reads a trusted comment line into 8192 bytes */
#define TRUSTED_MAX (8192 - sizeof(TRUSTED))
#define PK_TEXT_MAX 4096
#define SK_TEXT_MAX 4096
#define SIG_TEXT_MAX (8192 + 4096)
#define OPSLIMIT_MAX ((uint64_t)1 << 32)
#define MEMLIMIT_MAX ((uint64_t)2 << 30)
#define B64_VARIANT sodium_base64_VARIANT_ORIGINAL
#define B64_LEN(n) sodium_base64_ENCODED_LEN(n, B64_VARIANT)

/* The part of a secret key file that the passphrase encrypts. */
struct keynum_sk {
	unsigned char id[MR_KEYID_LEN];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
	unsigned char chk[crypto_generichash_BYTES];
};

/* The decoded second line of a secret key file. */
struct sk_file {
	unsigned char sig_alg[2];
	unsigned char kdf_alg[2];
	unsigned char chk_alg[2];
	unsigned char salt[crypto_pwhash_scryptsalsa208sha256_SALTBYTES];
	unsigned char opslimit[8];
	unsigned char memlimit[8];
	struct keynum_sk k;
};

/* The decoded second line of a public key file. */
struct pk_file {
	unsigned char alg[2];
	unsigned char id[MR_KEYID_LEN];
	unsigned char pk[MR_PK_LEN];
};

/* The decoded second line of a signature file. */
struct sig_file {
	unsigned char alg[2];
	unsigned char id[MR_KEYID_LEN];
	unsigned char sig[crypto_sign_BYTES];
};

struct mr_seckey {
	unsigned char id[MR_KEYID_LEN];
	unsigned char sk[crypto_sign_SECRETKEYBYTES];
};

_Static_assert(sizeof(struct sk_file) == 158, "secret key layout");
_Static_assert(sizeof(struct pk_file) == 42, "public key layout");
_Static_assert(sizeof(struct sig_file) == 74, "signature layout");
_Static_assert(MR_PK_LEN == crypto_sign_PUBLICKEYBYTES, "Ed25519 key size");

/* Where parsed text comes from, for error messages. */
typedef struct {
	const char *what;  /* path or other name of the source */
	const char *kind;  /* "public key", "secret key", "signature" */
	const char *hint;  /* what to do about malformed input */
	int secret;        /* never quote the text */
} source;

/* One line of text, without its line ending. */
typedef struct {
	const char *p;
	size_t n;
} line;

/* Splits text into lines. */
typedef struct {
	const char *cur, *end;
	int no;  /* number of the line last asked for */
	line l;
} reader;

/* sodium_init is idempotent and thread-safe, so every entry point calls it. */
static int init(void)
{
	if (sodium_init() < 0)
		return mr_error_set(MR_EENV, "libsodium failed to initialize; "
				    "check that /dev/urandom is readable");
	return 0;
}

static int oom(void)
{
	return mr_error_set(MR_ERROR, "out of memory");
}

static uint64_t le64_load(const unsigned char p[8])
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static void le64_store(unsigned char p[8], uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++, v >>= 8)
		p[i] = (unsigned char)v;
}

static void reader_init(reader *r, const char *text, size_t len)
{
	r->cur = text;
	r->end = text + len;
	r->no = 0;
}

/* The next line, or NULL at the end of the text. */
static const line *read_line(reader *r)
{
	const char *nl;

	r->no++;
	if (r->cur >= r->end)
		return NULL;
	nl = memchr(r->cur, '\n', (size_t)(r->end - r->cur));
	r->l.p = r->cur;
	r->l.n = (size_t)((nl ? nl : r->end) - r->cur);
	r->cur = nl ? nl + 1 : r->end;
	while (r->l.n && r->l.p[r->l.n - 1] == '\r')
		r->l.n--;
	return &r->l;
}

static int has_prefix(const line *l, const char *prefix)
{
	size_t n = strlen(prefix);

	return l->n >= n && memcmp(l->p, prefix, n) == 0;
}

/* Decodes a base64 line into exactly `n` bytes. */
static int b64_decode(void *out, size_t n, const line *l)
{
	size_t got;

	if (sodium_base642bin(out, n, l->p, l->n, NULL, &got, NULL,
			      B64_VARIANT) != 0)
		return -1;
	return got == n ? 0 : -1;
}

/* Appends base64 of at most a signature block, and a newline. */
static int put_b64_line(mr_buf *out, const void *bin, size_t len)
{
	char b64[B64_LEN(sizeof(struct sig_file))];

	sodium_bin2base64(b64, sizeof(b64), bin, len, B64_VARIANT);
	return mr_buf_printf(out, "%s\n", b64);
}

static int check_text(const source *src, const char *text, size_t len,
		      size_t max)
{
	if (len > max)
		return mr_error_set(MR_EINVALID,
				    "%s: %zu bytes, more than the %zu a "
				    "minisign %s has; %s",
				    src->what, len, max, src->kind, src->hint);
	if (memchr(text, '\0', len))
		return mr_error_set(MR_EINVALID,
				    "%s: contains a NUL byte, so it is not a "
				    "minisign %s; %s",
				    src->what, src->kind, src->hint);
	return 0;
}

/* base64 of "Ed" "\0\0" "B2" and "Ed" "Sc" "B2": a secret key file's line. */
static int looks_secret(const line *l)
{
	return l->n >= 8 && (memcmp(l->p, "RWQAAEIy", 8) == 0 ||
			     memcmp(l->p, "RWRTY0Iy", 8) == 0);
}

/* Reports a malformed line `l` (NULL: the text ended before it). */
static int bad_line(const source *src, const reader *r, const char *expected,
		    const line *l)
{
	char quote[41];
	size_t i, n;

	if (!l)
		return mr_error_set(MR_EINVALID,
				    "%s: line %d: expected %s, found the end "
				    "of the %s; %s",
				    src->what, r->no, expected, src->kind,
				    src->hint);
	if (src->secret)
		return mr_error_set(MR_EINVALID,
				    "%s: line %d: expected %s, found a "
				    "%zu-byte line (not shown: it may be "
				    "secret); %s",
				    src->what, r->no, expected, l->n,
				    src->hint);
	if (looks_secret(l))
		return mr_error_set(MR_EINVALID,
				    "%s: line %d: expected %s, found a "
				    "minisign secret key (not shown); never "
				    "pass a secret key here",
				    src->what, r->no, expected);
	n = l->n < 40 ? l->n : 40;
	for (i = 0; i < n; i++)
		quote[i] = l->p[i] >= 0x20 && l->p[i] < 0x7f ? l->p[i] : '?';
	quote[n] = '\0';
	return mr_error_set(MR_EINVALID,
			    "%s: line %d: expected %s, found '%s'%s; %s",
			    src->what, r->no, expected, quote,
			    l->n > n ? "..." : "", src->hint);
}

void mr_keyid_hex(char out[17], const unsigned char id[MR_KEYID_LEN])
{
	/* minisign prints "%" PRIX64: no leading zeros */
	snprintf(out, 17, "%" PRIX64, le64_load(id));
}

int mr_pubkey_parse(mr_pubkey *out, const char *text, size_t len,
		    const char *what)
{
	static const char expected[] =
		"base64 of a 42-byte minisign public key ('Ed', key id, key)";
	source src = { what, "public key",
		       "use a .pub file as minisign -G writes it, or its "
		       "second line",
		       0 };
	struct pk_file pf;
	const line *l;
	reader r;
	int rc;

	if ((rc = check_text(&src, text, len, PK_TEXT_MAX)))
		return rc;
	reader_init(&r, text, len);
	l = read_line(&r);
	if (l && has_prefix(l, UNTRUSTED))
		l = read_line(&r);
	if (!l || b64_decode(&pf, sizeof(pf), l))
		return bad_line(&src, &r, expected, l);
	if (memcmp(pf.alg, "Ed", 2) != 0)
		return mr_error_set(MR_EINVALID,
				    "%s: line %d: expected an Ed25519 key "
				    "(algorithm 'Ed'), found algorithm "
				    "0x%02x%02x; %s",
				    what, r.no, pf.alg[0], pf.alg[1], src.hint);
	memcpy(out->id, pf.id, sizeof(out->id));
	memcpy(out->pk, pf.pk, sizeof(out->pk));
	return 0;
}

int mr_pubkey_load(mr_pubkey *out, const char *path)
{
	mr_buf b = MR_BUF_INIT;
	int rc;

	if ((rc = mr_fs_read(&b, path, PK_TEXT_MAX)))
		rc = mr_error_wrap(rc, "reading public key");
	else
		rc = mr_pubkey_parse(out, (const char *)b.data, b.len, path);
	mr_buf_free(&b);
	return rc;
}

int mr_pubkey_format(mr_buf *out, const mr_pubkey *pk)
{
	struct pk_file pf;
	char hex[17];
	int rc;

	memcpy(pf.alg, "Ed", 2);
	memcpy(pf.id, pk->id, sizeof(pf.id));
	memcpy(pf.pk, pk->pk, sizeof(pf.pk));
	mr_keyid_hex(hex, pk->id);
	rc = mr_buf_printf(out, UNTRUSTED "minisign public key %s\n", hex);
	if (rc)
		return rc;
	return put_b64_line(out, &pf, sizeof(pf));
}

/* chk = BLAKE2b-256("Ed" || key id || secret key), as minisign computes it. */
static void key_chk(unsigned char out[crypto_generichash_BYTES],
		    const struct keynum_sk *k)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, crypto_generichash_BYTES);
	crypto_generichash_update(&st, (const unsigned char *)"Ed", 2);
	crypto_generichash_update(&st, k->id, sizeof(k->id));
	crypto_generichash_update(&st, k->sk, sizeof(k->sk));
	crypto_generichash_final(&st, out, crypto_generichash_BYTES);
	sodium_memzero(&st, sizeof(st));
}

/* XORs the key block with scrypt(passphrase, salt): encrypts and decrypts. */
static int xor_stream(struct keynum_sk *k, const char *passphrase,
		      const unsigned char *salt, uint64_t ops, uint64_t mem)
{
	unsigned char *stream = sodium_malloc(sizeof(*k));
	unsigned char *p = (unsigned char *)k;
	size_t i;
	int rc = 0;

	if (!stream)
		return oom();
	if (crypto_pwhash_scryptsalsa208sha256(stream, sizeof(*k), passphrase,
					       strlen(passphrase), salt, ops,
					       (size_t)mem) != 0) {
		rc = mr_error_set(MR_EENV,
				  "scrypt key derivation failed (opslimit "
				  "%" PRIu64 ", memlimit %" PRIu64 " bytes); "
				  "free some memory and try again",
				  ops, mem);
		goto done;
	}
	for (i = 0; i < sizeof(*k); i++)
		p[i] ^= stream[i];
done:
	sodium_free(stream);
	return rc;
}

/* Tests set MRECIPE_KDF_FAST=1: minisign's "sensitive" limits take seconds. */
static void kdf_limits(uint64_t *ops, uint64_t *mem)
{
	const char *fast = getenv("MRECIPE_KDF_FAST");

	if (fast && strcmp(fast, "1") == 0) {
		*ops = crypto_pwhash_scryptsalsa208sha256_OPSLIMIT_INTERACTIVE;
		*mem = crypto_pwhash_scryptsalsa208sha256_MEMLIMIT_INTERACTIVE;
	} else {
		*ops = crypto_pwhash_scryptsalsa208sha256_OPSLIMIT_SENSITIVE;
		*mem = crypto_pwhash_scryptsalsa208sha256_MEMLIMIT_SENSITIVE;
	}
}

static int check_algs(const source *src, const struct sk_file *sf)
{
	const unsigned char *got = NULL;
	const char *expected = NULL;

	if (memcmp(sf->sig_alg, "Ed", 2) != 0) {
		expected = "signature algorithm 'Ed'";
		got = sf->sig_alg;
	} else if (memcmp(sf->kdf_alg, "Sc", 2) != 0 &&
		   !sodium_is_zero(sf->kdf_alg, 2)) {
		expected = "key derivation 'Sc' (scrypt) or none";
		got = sf->kdf_alg;
	} else if (memcmp(sf->chk_alg, "B2", 2) != 0) {
		expected = "checksum algorithm 'B2'";
		got = sf->chk_alg;
	}
	if (got)
		return mr_error_set(MR_EINVALID,
				    "%s: line 2: expected %s, found "
				    "0x%02x%02x; %s",
				    src->what, expected, got[0], got[1],
				    src->hint);
	return 0;
}

static int decrypt(const source *src, struct sk_file *sf,
		   const char *passphrase)
{
	uint64_t ops = le64_load(sf->opslimit), mem = le64_load(sf->memlimit);

	if (sodium_is_zero(sf->kdf_alg, 2))
		return 0;
	if (!passphrase)
		return mr_error_set(MR_EVERIFY,
				    "%s: the secret key is encrypted and no "
				    "passphrase was given; give the passphrase "
				    "it was created with",
				    src->what);
	if (ops > OPSLIMIT_MAX || mem > MEMLIMIT_MAX)
		return mr_error_set(MR_EINVALID,
				    "%s: expected scrypt limits of at most "
				    "opslimit %" PRIu64 " and memlimit "
				    "%" PRIu64 ", found %" PRIu64 " and "
				    "%" PRIu64 "; re-encrypt the key with "
				    "minisign -C",
				    src->what, OPSLIMIT_MAX, MEMLIMIT_MAX, ops,
				    mem);
	return xor_stream(&sf->k, passphrase, sf->salt, ops, mem);
}

/* 1 if the public half of an Ed25519 secret key derives from its seed. */
static int seed_matches(const unsigned char *sk, int *ok)
{
	unsigned char pk[crypto_sign_PUBLICKEYBYTES];
	unsigned char *sk2 = sodium_malloc(crypto_sign_SECRETKEYBYTES);

	if (!sk2)
		return oom();
	*ok = crypto_sign_seed_keypair(pk, sk2, sk) == 0 &&
	      memcmp(pk, sk + crypto_sign_SEEDBYTES, sizeof(pk)) == 0;
	sodium_free(sk2);
	return 0;
}

/* A wrong passphrase shows as a checksum mismatch. minisign -W writes a zero
 * checksum, so the seed check is what catches a damaged unencrypted key. */
static int check_key(const source *src, const struct sk_file *sf)
{
	unsigned char chk[crypto_generichash_BYTES];
	int encrypted = !sodium_is_zero(sf->kdf_alg, 2), ok = 1, rc = 0;

	key_chk(chk, &sf->k);
	if ((encrypted || !sodium_is_zero(sf->k.chk, sizeof(chk))) &&
	    sodium_memcmp(chk, sf->k.chk, sizeof(chk)) != 0) {
		if (encrypted)
			rc = mr_error_set(MR_EVERIFY,
					  "%s: wrong passphrase for this "
					  "secret key (its checksum does not "
					  "match after decryption); give the "
					  "passphrase it was created with",
					  src->what);
		else
			rc = mr_error_set(MR_EINVALID,
					  "%s: the secret key's checksum does "
					  "not match: the file is damaged; "
					  "restore it from a backup",
					  src->what);
		goto done;
	}
	if ((rc = seed_matches(sf->k.sk, &ok)))
		goto done;
	if (!ok)
		rc = mr_error_set(MR_EINVALID,
				  "%s: the secret key's public half does not "
				  "match its seed: the file is damaged; "
				  "restore it from a backup",
				  src->what);
done:
	sodium_memzero(chk, sizeof(chk));
	return rc;
}

int mr_seckey_parse(mr_seckey **out, const char *text, size_t len,
		    const char *passphrase, const char *what)
{
	source src = { what, "secret key",
		       "use a key file as minisign -G writes it", 1 };
	struct sk_file *sf = NULL;
	mr_seckey *sk = NULL;
	const line *l;
	reader r;
	int rc;

	*out = NULL;
	if ((rc = init()) || (rc = check_text(&src, text, len, SK_TEXT_MAX)))
		return rc;
	reader_init(&r, text, len);
	if (!(l = read_line(&r)) || !has_prefix(l, UNTRUSTED))
		return bad_line(&src, &r, "'" UNTRUSTED "...'", l);
	if (!(sf = sodium_malloc(sizeof(*sf))) ||
	    !(sk = sodium_malloc(sizeof(*sk)))) {
		rc = oom();
		goto done;
	}
	if (!(l = read_line(&r)) || b64_decode(sf, sizeof(*sf), l)) {
		rc = bad_line(&src, &r,
			      "base64 of a 158-byte minisign secret key", l);
		goto done;
	}
	if ((rc = check_algs(&src, sf)) ||
	    (rc = decrypt(&src, sf, passphrase)) || (rc = check_key(&src, sf)))
		goto done;
	memcpy(sk->id, sf->k.id, sizeof(sk->id));
	memcpy(sk->sk, sf->k.sk, sizeof(sk->sk));
	*out = sk;
	sk = NULL;
done:
	sodium_free(sf);
	sodium_free(sk);
	return rc;
}

/* Reads a key file straight into guarded memory: mr_fs_read would leave
 * copies of an unencrypted key on its stack and in the heap. */
static int read_secret(char **out, size_t *len, const char *path)
{
	char *buf = sodium_malloc(SK_TEXT_MAX + 1);
	size_t n = 0;
	ssize_t got;
	int fd = -1, rc = 0;

	if (!buf)
		return oom();
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		rc = mr_error_sys(errno == ENOENT ? MR_ENOTFOUND : MR_EIO,
				  "opening secret key %s", path);
		goto done;
	}
	while (n <= SK_TEXT_MAX &&
	       (got = read(fd, buf + n, SK_TEXT_MAX + 1 - n)) != 0) {
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			rc = mr_error_sys(MR_EIO, "reading secret key %s",
					  path);
			goto done;
		}
		n += (size_t)got;
	}
	if (n > SK_TEXT_MAX) {
		rc = mr_error_set(MR_EINVALID,
				  "%s: expected a minisign secret key file "
				  "(a few hundred bytes), found more than "
				  "%d bytes; check the path",
				  path, SK_TEXT_MAX);
		goto done;
	}
	*out = buf;
	*len = n;
	buf = NULL;
done:
	if (fd >= 0)
		close(fd);
	sodium_free(buf);
	return rc;
}

int mr_seckey_load(mr_seckey **out, const char *path, const char *passphrase)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	*out = NULL;
	if ((rc = init()) || (rc = read_secret(&text, &len, path)))
		goto done;
	rc = mr_seckey_parse(out, text, len, passphrase, path);
done:
	sodium_free(text);
	return rc;
}

void mr_seckey_pubkey(const mr_seckey *sk, mr_pubkey *out)
{
	memcpy(out->id, sk->id, sizeof(out->id));
	crypto_sign_ed25519_sk_to_pk(out->pk, sk->sk);
}

void mr_seckey_free(mr_seckey *sk)
{
	sodium_free(sk);
}

/* Fills a secret key file with a fresh key pair, encrypted when a passphrase
 * is given; unencrypted, salt and limits stay zero as minisign -W writes. */
static int new_key(struct sk_file *sf, mr_pubkey *pk, const char *passphrase)
{
	uint64_t ops, mem;

	memset(sf, 0, sizeof(*sf));
	memcpy(sf->sig_alg, "Ed", 2);
	memcpy(sf->chk_alg, "B2", 2);
	randombytes_buf(sf->k.id, sizeof(sf->k.id));
	crypto_sign_keypair(pk->pk, sf->k.sk);
	memcpy(pk->id, sf->k.id, sizeof(pk->id));
	key_chk(sf->k.chk, &sf->k);
	if (!passphrase)
		return 0;
	kdf_limits(&ops, &mem);
	memcpy(sf->kdf_alg, "Sc", 2);
	randombytes_buf(sf->salt, sizeof(sf->salt));
	le64_store(sf->opslimit, ops);
	le64_store(sf->memlimit, mem);
	return xor_stream(&sf->k, passphrase, sf->salt, ops, mem);
}

/* Formats a secret key file in guarded memory: unencrypted, its base64 is
 * the key itself. */
static int sk_format(char **out, size_t *len, const struct sk_file *sf)
{
	const char *comment = sodium_is_zero(sf->kdf_alg, 2) ?
		UNTRUSTED "minisign unencrypted secret key\n" :
		UNTRUSTED "minisign encrypted secret key\n";
	size_t clen = strlen(comment), n;
	char *text = sodium_malloc(clen + B64_LEN(sizeof(*sf)));

	if (!text)
		return oom();
	memcpy(text, comment, clen);
	sodium_bin2base64(text + clen, B64_LEN(sizeof(*sf)),
			  (const unsigned char *)sf, sizeof(*sf), B64_VARIANT);
	n = strlen(text);
	text[n++] = '\n';
	*out = text;
	*len = n;
	return 0;
}

/* Creates an empty placeholder, so that keygen never replaces a key that
 * appeared meanwhile; the atomic write then replaces the placeholder. */
static int claim(const char *path, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);

	if (fd < 0 && errno == EEXIST)
		return mr_error_set(MR_EEXISTS,
				    "%s already exists; refusing to overwrite "
				    "a key: move it away, or force",
				    path);
	if (fd < 0)
		return mr_error_sys(MR_EIO, "creating %s", path);
	close(fd);
	return 0;
}

int mr_keygen(mr_pubkey *out, const char *sk_path, const char *pk_path,
	      const char *passphrase, int force)
{
	struct sk_file *sf = NULL;
	char *sk_text = NULL;
	mr_buf pk_text = MR_BUF_INIT;
	mr_pubkey pk;
	size_t sk_len = 0;
	int claimed = 0, rc;

	if ((rc = init()))
		return rc;
	if (!force) {
		if ((rc = claim(sk_path, 0600)))
			goto done;
		claimed = 1;
		if ((rc = claim(pk_path, 0644)))
			goto done;
		claimed = 2;
	}
	if (!(sf = sodium_malloc(sizeof(*sf)))) {
		rc = oom();
		goto done;
	}
	if ((rc = new_key(sf, &pk, passphrase)) ||
	    (rc = sk_format(&sk_text, &sk_len, sf)) ||
	    (rc = mr_fs_write_atomic(sk_path, sk_text, sk_len, 0600)) ||
	    (rc = mr_pubkey_format(&pk_text, &pk)) ||
	    (rc = mr_fs_write_atomic(pk_path, pk_text.data, pk_text.len, 0644)))
		goto done;
	if (out)
		*out = pk;
done:
	if (rc && claimed >= 1)
		unlink(sk_path);
	if (rc && claimed >= 2)
		unlink(pk_path);
	sodium_free(sf);
	sodium_free(sk_text);
	mr_buf_free(&pk_text);
	return rc;
}

static int check_trusted_comment(const char *tc, size_t len)
{
	if (strpbrk(tc, "\r\n"))
		return mr_error_set(MR_EINVALID,
				    "trusted comment: expected one line, found "
				    "a line break; remove it");
	if (len >= TRUSTED_MAX)
		return mr_error_set(MR_EINVALID,
				    "trusted comment: expected fewer than %zu "
				    "bytes (minisign's limit), found %zu; "
				    "shorten it",
				    TRUSTED_MAX, len);
	return 0;
}

/* The global signature covers the signature and the trusted comment. */
static int sig_and_comment(unsigned char **out, const unsigned char *sig,
			   const char *tc, size_t tclen)
{
	unsigned char *m = malloc(crypto_sign_BYTES + tclen);

	if (!m)
		return oom();
	memcpy(m, sig, crypto_sign_BYTES);
	memcpy(m + crypto_sign_BYTES, tc, tclen);
	*out = m;
	return 0;
}

static int put_sig(mr_buf *out, const struct sig_file *sf,
		   const unsigned char *global, const char *trusted_comment)
{
	char hex[17];
	int rc;

	mr_keyid_hex(hex, sf->id);
	if ((rc = mr_buf_printf(out, UNTRUSTED "signature from minisign secret "
				"key %s\n", hex)) ||
	    (rc = put_b64_line(out, sf, sizeof(*sf))) ||
	    (rc = mr_buf_printf(out, TRUSTED "%s\n", trusted_comment)))
		return rc;
	return put_b64_line(out, global, crypto_sign_BYTES);
}

int mr_sign(mr_buf *out, const mr_seckey *sk, const void *data, size_t len,
	    const char *trusted_comment)
{
	struct sig_file sf;
	unsigned char global[crypto_sign_BYTES], *m = NULL;
	size_t tclen = strlen(trusted_comment), start = out->len;
	int rc;

	if ((rc = init()) ||
	    (rc = check_trusted_comment(trusted_comment, tclen)))
		return rc;
	memcpy(sf.alg, "Ed", 2);
	memcpy(sf.id, sk->id, sizeof(sf.id));
	crypto_sign_detached(sf.sig, NULL, data, len, sk->sk);
	if ((rc = sig_and_comment(&m, sf.sig, trusted_comment, tclen)))
		goto done;
	crypto_sign_detached(global, NULL, m, crypto_sign_BYTES + tclen,
			     sk->sk);
	rc = put_sig(out, &sf, global, trusted_comment);
done:
	if (rc && out->data) {
		out->len = start;
		out->data[start] = '\0';
	}
	free(m);
	return rc;
}

/* A signature file's parts; `tc` points into the signature text. */
typedef struct {
	struct sig_file s;
	unsigned char global[crypto_sign_BYTES];
	line tc;
} parsed_sig;

static int parse_sig(parsed_sig *ps, const char *text, size_t len)
{
	source src = { "signature", "signature",
		       "fetch it again, or sign the file again", 0 };
	const line *l;
	reader r;
	int rc;

	if ((rc = check_text(&src, text, len, SIG_TEXT_MAX)))
		return rc;
	reader_init(&r, text, len);
	if (!(l = read_line(&r)) || !has_prefix(l, UNTRUSTED))
		return bad_line(&src, &r, "'" UNTRUSTED "...'", l);
	if (!(l = read_line(&r)) || b64_decode(&ps->s, sizeof(ps->s), l))
		return bad_line(&src, &r,
				"base64 of a 74-byte signature (algorithm, "
				"key id, Ed25519 signature)",
				l);
	if (!(l = read_line(&r)) || !has_prefix(l, TRUSTED))
		return bad_line(&src, &r, "'" TRUSTED "...'", l);
	ps->tc.p = l->p + strlen(TRUSTED);
	ps->tc.n = l->n - strlen(TRUSTED);
	if (ps->tc.n >= TRUSTED_MAX)
		return mr_error_set(MR_EINVALID,
				    "signature: line 3: expected a trusted "
				    "comment under %zu bytes, found %zu; %s",
				    TRUSTED_MAX, ps->tc.n, src.hint);
	if (!(l = read_line(&r)) ||
	    b64_decode(ps->global, sizeof(ps->global), l))
		return bad_line(&src, &r,
				"base64 of the 64-byte signature of the "
				"trusted comment",
				l);
	return 0;
}

static const mr_pubkey *find_key(const mr_pubkey *keys, size_t nkeys,
				 const unsigned char id[MR_KEYID_LEN])
{
	size_t i;

	for (i = 0; i < nkeys; i++)
		if (memcmp(keys[i].id, id, MR_KEYID_LEN) == 0)
			return &keys[i];
	return NULL;
}

static int untrusted_key(const mr_pubkey *keys, size_t nkeys,
			 const unsigned char id[MR_KEYID_LEN])
{
	char list[8 * 18 + 8] = "none", found[17], hex[17];
	size_t i, n = 0;

	for (i = 0; i < nkeys && i < 8; i++) {
		mr_keyid_hex(hex, keys[i].id);
		n += (size_t)snprintf(list + n, sizeof(list) - n, "%s%s",
				      i ? ", " : "", hex);
	}
	if (nkeys > 8)
		snprintf(list + n, sizeof(list) - n, ", ...");
	mr_keyid_hex(found, id);
	return mr_error_set(MR_EVERIFY,
			    "signature: expected a signature by a trusted key "
			    "(%s), found one by key %s; add that key's .pub "
			    "to the trusted keys if you trust it, or sign "
			    "with a trusted key",
			    list, found);
}

static int check_global(const parsed_sig *ps, const mr_pubkey *key)
{
	unsigned char *m = NULL;
	char hex[17];
	int rc;

	if ((rc = sig_and_comment(&m, ps->s.sig, ps->tc.p, ps->tc.n)))
		goto done;
	if (crypto_sign_verify_detached(ps->global, m,
					crypto_sign_BYTES + ps->tc.n,
					key->pk) != 0) {
		mr_keyid_hex(hex, key->id);
		rc = mr_error_set(MR_EVERIFY,
				  "trusted comment was altered: its signature "
				  "by key %s does not match; fetch the "
				  "signature again",
				  hex);
	}
done:
	free(m);
	return rc;
}

int mr_verify(const mr_pubkey *keys, size_t nkeys, const char *sig,
	      size_t siglen, const void *data, size_t len,
	      char **trusted_comment)
{
	unsigned char hash[crypto_generichash_BYTES_MAX];
	const unsigned char *msg = data;
	const mr_pubkey *key;
	parsed_sig ps;
	char hex[17];
	int rc;

	if (trusted_comment)
		*trusted_comment = NULL;
	if ((rc = init()) || (rc = parse_sig(&ps, sig, siglen)))
		return rc;
	if (memcmp(ps.s.alg, "ED", 2) == 0) {
		crypto_generichash(hash, sizeof(hash), data, len, NULL, 0);
		msg = hash;
		len = sizeof(hash);
	} else if (memcmp(ps.s.alg, "Ed", 2) != 0) {
		return mr_error_set(MR_EVERIFY,
				    "signature: expected algorithm 'Ed' or "
				    "'ED', found 0x%02x%02x; sign the file "
				    "again with minisign",
				    ps.s.alg[0], ps.s.alg[1]);
	}
	if (!(key = find_key(keys, nkeys, ps.s.id)))
		return untrusted_key(keys, nkeys, ps.s.id);
	if (crypto_sign_verify_detached(ps.s.sig, msg, len, key->pk) != 0) {
		mr_keyid_hex(hex, key->id);
		return mr_error_set(MR_EVERIFY,
				    "signature does not match: the file was "
				    "changed after signing, or was signed by "
				    "another key (expected key %s); fetch both "
				    "again",
				    hex);
	}
	if ((rc = check_global(&ps, key)))
		return rc;
	if (trusted_comment && !(*trusted_comment = strndup(ps.tc.p, ps.tc.n)))
		return oom();
	return 0;
}
