#include "mr/buf.h"
#include "mr/error.h"
#include "mr/fs.h"
#include "mr/minisign.h"

#include <check.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Made by stock minisign 0.11 (-S and -S -l) over "hello\n" with this key. */
static const char vec_pub[] =
	"untrusted comment: minisign public key EFAADDF54DA38DFE\n"
	"RWT+jaNN9d2q794wKBHIWARlbQTniy7qzPAgqPyzK51b6+EAfZ8X41ZF\n";
static const char vec_sig_ED[] =
	"untrusted comment: signature from minisign secret key\n"
	"RUT+jaNN9d2q70k30x+IY1f7vsJgqTl/qtVk3cemxHvcu32xUsIc8Xr5GjRV3fQtfjAu"
	"VSIjfaTG33srb/AcW/v6Ocld7DD0gws=\n"
	"trusted comment: molt test vector ED\n"
	"4CiOh5hbvXztVxywGKNPP01KtWXW9FjWwCXac7Tte+BVm8c41K+PTRdsq3ZtvjkWVplf"
	"W5FYBolJhOX1gELsAw==\n";
static const char vec_sig_Ed[] =
	"untrusted comment: signature from minisign secret key\n"
	"RWT+jaNN9d2q7/cve/3YIeDjAANw42JMZNboandPgl3qCjlfw9zBLRpbqRi5i2pf9CJ5"
	"b0fkRq2DkgXm5N67MN6dUr4lzhXHLQY=\n"
	"trusted comment: molt test vector Ed\n"
	"pz3d7G5O5XFBllR4GMWuuaDSN7g7RBtMr4+z1WGO930byXrfyyeJPCXcTTIc1V4A0eOF"
	"68VD0Cnybrsle8juDA==\n";
static const char vec_data[] = "hello\n";

static int parse_vec_pub(mr_pubkey *pk)
{
	return mr_pubkey_parse(pk, vec_pub, strlen(vec_pub), "vec_pub");
}

static const char msg[] = "the artifact bytes";
static const char tc[] = "molt unit hello@0.1.0 wasm32-wasi sha256:00";

static char tmp[64];
static char *sk_path, *pk_path;

static void setup(void)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmp, sizeof(tmp), "%s/minisign_test.XXXXXX",
		 base && strlen(base) < 32 ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(tmp));
	sk_path = mr_fs_join(tmp, "k.key");
	pk_path = mr_fs_join(tmp, "k.pub");
}

static void teardown(void)
{
	mr_fs_rm_rf(tmp);
	free(sk_path);
	free(pk_path);
}

/* Generates a key pair in the temp dir and loads its secret key. */
static mr_seckey *make_key(const char *passphrase, mr_pubkey *pk)
{
	mr_seckey *sk = NULL;

	ck_assert_msg(mr_keygen(pk, sk_path, pk_path, passphrase, 0) == 0, "%s",
		      mr_error_last());
	ck_assert_msg(mr_seckey_load(&sk, sk_path, passphrase) == 0, "%s",
		      mr_error_last());
	return sk;
}

/* Signs `msg` with `tc` into `out`. */
static void sign_msg(mr_buf *out, const mr_seckey *sk)
{
	ck_assert_msg(mr_sign(out, sk, msg, strlen(msg), tc) == 0, "%s",
		      mr_error_last());
}

static int verify(const mr_pubkey *pk, const mr_buf *sig, const char *data)
{
	return mr_verify(pk, 1, (const char *)sig->data, sig->len, data,
			 strlen(data), NULL);
}

/* A macro, so that a failure names the line of the call. */
#define assert_error(expr, code, needle)                                     \
	do {                                                                 \
		int rc_ = (expr);                                            \
		ck_assert_msg(rc_ == (code), "got %d, want %d: %s", rc_,     \
			      (code), mr_error_last());                      \
		ck_assert_msg(strstr(mr_error_last(), (needle)),             \
			      "'%s' not in: %s", (needle), mr_error_last()); \
	} while (0)

static void roundtrip(const char *passphrase)
{
	mr_pubkey gen, loaded, half;
	mr_buf sig = MR_BUF_INIT;
	mr_seckey *sk = make_key(passphrase, &gen);
	char *got = NULL;

	mr_seckey_pubkey(sk, &half);
	ck_assert_mem_eq(&half, &gen, sizeof(gen));
	ck_assert_int_eq(mr_pubkey_load(&loaded, pk_path), 0);
	ck_assert_mem_eq(&loaded, &gen, sizeof(gen));
	sign_msg(&sig, sk);
	ck_assert_msg(mr_verify(&loaded, 1, (const char *)sig.data, sig.len,
				msg, strlen(msg), &got) == 0,
		      "%s", mr_error_last());
	ck_assert_str_eq(got, tc);
	free(got);
	mr_buf_free(&sig);
	mr_seckey_free(sk);
}

START_TEST(test_roundtrip_encrypted)
{
	roundtrip("correct horse");
}
END_TEST

START_TEST(test_roundtrip_unencrypted)
{
	roundtrip(NULL);
}
END_TEST

START_TEST(test_signature_format)
{
	mr_pubkey pk;
	mr_buf sig = MR_BUF_INIT;
	mr_seckey *sk = make_key(NULL, &pk);
	char hex[17], want[64];

	sign_msg(&sig, sk);
	mr_keyid_hex(hex, pk.id);
	snprintf(want, sizeof(want), "signature from minisign secret key %s\n",
		 hex);
	ck_assert_ptr_nonnull(strstr((const char *)sig.data, want));
	/* base64 of "Ed" starts with "RW": the legacy, whole-file algorithm */
	ck_assert_ptr_nonnull(strstr((const char *)sig.data, "\nRW"));
	ck_assert_ptr_nonnull(strstr((const char *)sig.data, tc));
	mr_buf_free(&sig);
	mr_seckey_free(sk);
}
END_TEST

START_TEST(test_wrong_passphrase)
{
	mr_pubkey pk;
	mr_seckey *sk = make_key("right", &pk);

	mr_seckey_free(sk);
	sk = (mr_seckey *)1;
	assert_error(mr_seckey_load(&sk, sk_path, "hunter2-guess"), MR_EVERIFY,
		     "wrong passphrase");
	ck_assert_ptr_null(sk);
	ck_assert_ptr_null(strstr(mr_error_last(), "hunter2"));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), sk_path));
	assert_error(mr_seckey_load(&sk, sk_path, NULL), MR_EVERIFY,
		     "no passphrase was given");
}
END_TEST

START_TEST(test_flipped_data)
{
	mr_pubkey pk;
	mr_buf sig = MR_BUF_INIT;
	mr_seckey *sk = make_key(NULL, &pk);
	char data[sizeof(msg)];

	sign_msg(&sig, sk);
	memcpy(data, msg, sizeof(msg));
	data[3] ^= 1;
	assert_error(verify(&pk, &sig, data), MR_EVERIFY,
		     "signature does not match: the file was changed after "
		     "signing, or was signed by another key");
	mr_buf_free(&sig);
	mr_seckey_free(sk);
}
END_TEST

START_TEST(test_flipped_trusted_comment)
{
	mr_pubkey pk;
	mr_buf sig = MR_BUF_INIT;
	mr_seckey *sk = make_key(NULL, &pk);
	char *c;

	sign_msg(&sig, sk);
	c = strstr((char *)sig.data, "hello@0.1.0");
	ck_assert_ptr_nonnull(c);
	c[6] = '9';
	assert_error(verify(&pk, &sig, msg), MR_EVERIFY,
		     "trusted comment was altered");
	mr_buf_free(&sig);
	mr_seckey_free(sk);
}
END_TEST

START_TEST(test_wrong_key_id)
{
	mr_pubkey pk, other[2];
	mr_buf sig = MR_BUF_INIT;
	mr_seckey *sk = make_key(NULL, &pk);
	char hex[17], other_hex[17];

	sign_msg(&sig, sk);
	mr_keyid_hex(hex, pk.id);
	ck_assert_int_eq(mr_keygen(&other[0], sk_path, pk_path, NULL, 1), 0);
	ck_assert_int_eq(mr_keygen(&other[1], sk_path, pk_path, NULL, 1), 0);
	mr_keyid_hex(other_hex, other[1].id);
	assert_error(mr_verify(other, 2, (const char *)sig.data, sig.len, msg,
			       strlen(msg), NULL),
		     MR_EVERIFY, "expected a signature by a trusted key");
	ck_assert_ptr_nonnull(strstr(mr_error_last(), hex));
	ck_assert_ptr_nonnull(strstr(mr_error_last(), other_hex));
	other[1] = pk;
	ck_assert_int_eq(mr_verify(other, 2, (const char *)sig.data, sig.len,
				   msg, strlen(msg), NULL),
			 0);
	mr_buf_free(&sig);
	mr_seckey_free(sk);
}
END_TEST

START_TEST(test_same_id_other_key)
{
	mr_pubkey pk, other;
	mr_buf sig = MR_BUF_INIT;
	mr_seckey *sk = make_key(NULL, &pk);

	sign_msg(&sig, sk);
	ck_assert_int_eq(mr_keygen(&other, sk_path, pk_path, NULL, 1), 0);
	memcpy(other.id, pk.id, sizeof(pk.id));
	assert_error(verify(&other, &sig, msg), MR_EVERIFY,
		     "signature does not match");
	mr_buf_free(&sig);
	mr_seckey_free(sk);
}
END_TEST

START_TEST(test_truncated_signature)
{
	mr_pubkey pk;
	mr_buf sig = MR_BUF_INIT;
	mr_seckey *sk = make_key(NULL, &pk);
	size_t n;

	sign_msg(&sig, sk);
	/* every cut short of the last newline breaks a line or drops one */
	for (n = 0; n + 1 < sig.len; n++)
		ck_assert_msg(mr_verify(&pk, 1, (const char *)sig.data, n, msg,
					strlen(msg), NULL) == MR_EINVALID,
			      "cut at %zu: %s", n, mr_error_last());
	ck_assert_int_eq(mr_verify(&pk, 1, (const char *)sig.data, n, msg,
				   strlen(msg), NULL),
			 0);
	mr_buf_free(&sig);
	mr_seckey_free(sk);
}
END_TEST

START_TEST(test_garbage_signature)
{
	static const char html[] = "<!DOCTYPE html>\n<p>Not Found</p>\n";
	static const char bad_b64[] = "untrusted comment: x\nRWT***\n"
				      "trusted comment: y\nAAAA\n";
	static const char nul[] = "untrusted comment: x\0\n";
	mr_pubkey pk;

	ck_assert_int_eq(parse_vec_pub(&pk), 0);
	assert_error(mr_verify(&pk, 1, html, strlen(html), "", 0, NULL),
		     MR_EINVALID, "signature: line 1: expected 'untrusted "
				  "comment: ...', found '<!DOCTYPE html>'");
	assert_error(mr_verify(&pk, 1, bad_b64, strlen(bad_b64), "", 0, NULL),
		     MR_EINVALID, "line 2: expected base64 of a 74-byte");
	assert_error(mr_verify(&pk, 1, nul, sizeof(nul) - 1, "", 0, NULL),
		     MR_EINVALID, "NUL byte");
	assert_error(mr_verify(&pk, 1, "", 0, "", 0, NULL), MR_EINVALID,
		     "found the end of the signature");
}
END_TEST

START_TEST(test_unknown_algorithm)
{
	mr_pubkey pk;
	char sig[sizeof(vec_sig_Ed)];
	char *b64;

	ck_assert_int_eq(parse_vec_pub(&pk), 0);
	memcpy(sig, vec_sig_Ed, sizeof(sig));
	b64 = strstr(sig, "\nRWT") + 1;
	b64[1] = 'X'; /* "Ed" becomes "Et" */
	assert_error(mr_verify(&pk, 1, sig, strlen(sig), vec_data,
			       strlen(vec_data), NULL),
		     MR_EVERIFY, "expected algorithm 'Ed' or 'ED'");
}
END_TEST

START_TEST(test_stock_minisign_vectors)
{
	mr_pubkey pk;
	char *got = NULL;

	ck_assert_int_eq(parse_vec_pub(&pk), 0);
	ck_assert_msg(mr_verify(&pk, 1, vec_sig_ED, strlen(vec_sig_ED),
				vec_data, strlen(vec_data), &got) == 0,
		      "%s", mr_error_last());
	ck_assert_str_eq(got, "molt test vector ED");
	free(got);
	ck_assert_msg(mr_verify(&pk, 1, vec_sig_Ed, strlen(vec_sig_Ed),
				vec_data, strlen(vec_data), NULL) == 0,
		      "%s", mr_error_last());
	assert_error(mr_verify(&pk, 1, vec_sig_ED, strlen(vec_sig_ED), "hello",
			       5, NULL),
		     MR_EVERIFY, "signature does not match");
}
END_TEST

START_TEST(test_pubkey_parse)
{
	static const char bare[] =
		"RWT+jaNN9d2q794wKBHIWARlbQTniy7qzPAgqPyzK51b6+EAfZ8X41ZF";
	mr_pubkey a, b;
	mr_buf text = MR_BUF_INIT;
	char hex[17];

	ck_assert_int_eq(parse_vec_pub(&a), 0);
	ck_assert_int_eq(mr_pubkey_parse(&b, bare, strlen(bare), "v"), 0);
	ck_assert_mem_eq(&a, &b, sizeof(a));
	mr_keyid_hex(hex, a.id);
	ck_assert_str_eq(hex, "EFAADDF54DA38DFE");
	ck_assert_int_eq(mr_pubkey_format(&text, &a), 0);
	ck_assert_str_eq((const char *)text.data, vec_pub);
	mr_buf_free(&text);
}
END_TEST

START_TEST(test_pubkey_parse_errors)
{
	static const char short_key[] =
		"untrusted comment: x\nRWT+jaNN9d2q794wKBHIWARlbQTniy7q\n";
	static const char long_key[] =
		"untrusted comment: x\n"
		"RWT+jaNN9d2q794wKBHIWARlbQTniy7qzPAgqPyzK51b6+EAfZ8X41ZF"
		"AAAA\n";
	static const char other_alg[] =
		"untrusted comment: x\n"
		"RUT+jaNN9d2q794wKBHIWARlbQTniy7qzPAgqPyzK51b6+EAfZ8X41ZF\n";
	static const char comment_only[] = "untrusted comment: x\n";
	mr_pubkey pk;

	assert_error(mr_pubkey_parse(&pk, "", 0, "keys/dev.pub"), MR_EINVALID,
		     "keys/dev.pub: line 1: expected base64 of a 42-byte");
	assert_error(mr_pubkey_parse(&pk, comment_only, strlen(comment_only),
				     "keys/dev.pub"),
		     MR_EINVALID, "line 2: expected base64 of a 42-byte "
				  "minisign public key ('Ed', key id, key), "
				  "found the end of the public key");
	assert_error(mr_pubkey_parse(&pk, short_key, strlen(short_key), "k"),
		     MR_EINVALID, "found 'RWT+jaNN9d2q794wKBHIWARlbQTniy7q'");
	assert_error(mr_pubkey_parse(&pk, long_key, strlen(long_key), "k"),
		     MR_EINVALID, "line 2: expected base64");
	assert_error(mr_pubkey_parse(&pk, other_alg, strlen(other_alg), "k"),
		     MR_EINVALID, "expected an Ed25519 key (algorithm 'Ed'), "
				  "found algorithm 0x4544");
	assert_error(mr_pubkey_parse(&pk, "a\0b", 3, "k"), MR_EINVALID,
		     "NUL byte");
	assert_error(mr_pubkey_load(&pk, "/nonexistent/k.pub"), MR_ENOTFOUND,
		     "/nonexistent/k.pub");
}
END_TEST

START_TEST(test_pubkey_given_seckey)
{
	mr_pubkey pk;
	mr_buf text = MR_BUF_INIT;
	char *b64;

	ck_assert_int_eq(mr_keygen(NULL, sk_path, pk_path, NULL, 0), 0);
	ck_assert_int_eq(mr_fs_read(&text, sk_path, 4096), 0);
	assert_error(mr_pubkey_load(&pk, sk_path), MR_EINVALID,
		     "found a minisign secret key (not shown)");
	b64 = strchr((char *)text.data, '\n') + 1;
	b64[8] = '\0';
	ck_assert_ptr_null(strstr(mr_error_last(), b64));
	sodium_memzero(text.data, text.len);
	mr_buf_free(&text);
}
END_TEST

START_TEST(test_keyid_hex)
{
	static const unsigned char id[MR_KEYID_LEN] = {
		0xfe, 0x8d, 0xa3, 0x4d, 0xf5, 0xdd, 0xaa, 0x0f
	};
	static const unsigned char one[MR_KEYID_LEN] = { 1 };
	char hex[17];

	/* minisign prints "%" PRIX64: no zero padding */
	mr_keyid_hex(hex, id);
	ck_assert_str_eq(hex, "FAADDF54DA38DFE");
	mr_keyid_hex(hex, one);
	ck_assert_str_eq(hex, "1");
}
END_TEST

START_TEST(test_seckey_mode)
{
	mr_pubkey pk;
	struct stat st;
	mr_seckey *sk = make_key("pw", &pk);

	ck_assert_int_eq(stat(sk_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(mr_keygen(NULL, sk_path, pk_path, NULL, 1), 0);
	ck_assert_int_eq(stat(sk_path, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	mr_seckey_free(sk);
}
END_TEST

START_TEST(test_keygen_no_overwrite)
{
	mr_pubkey first, second;
	mr_buf before = MR_BUF_INIT, after = MR_BUF_INIT;
	char *other_sk = mr_fs_join(tmp, "other.key");

	ck_assert_int_eq(mr_keygen(&first, sk_path, pk_path, NULL, 0), 0);
	ck_assert_int_eq(mr_fs_read(&before, sk_path, 4096), 0);
	assert_error(mr_keygen(&second, sk_path, pk_path, NULL, 0), MR_EEXISTS,
		     "already exists");
	/* the public key existing alone is also a refusal, and leaves no
	 * stray secret key behind */
	assert_error(mr_keygen(&second, other_sk, pk_path, NULL, 0),
		     MR_EEXISTS, pk_path);
	ck_assert_int_eq(mr_fs_exists(other_sk), 0);
	ck_assert_int_eq(mr_fs_read(&after, sk_path, 4096), 0);
	ck_assert_uint_eq(before.len, after.len);
	ck_assert_mem_eq(before.data, after.data, before.len);
	ck_assert_int_eq(mr_keygen(&second, sk_path, pk_path, NULL, 1), 0);
	ck_assert_int_ne(memcmp(first.pk, second.pk, MR_PK_LEN), 0);
	mr_buf_free(&before);
	mr_buf_free(&after);
	free(other_sk);
}
END_TEST

/* Rewrites the key file's memlimit, as a hostile or damaged file would. */
static void set_memlimit(const char *path, uint64_t mem)
{
	mr_buf text = MR_BUF_INIT, out = MR_BUF_INIT;
	unsigned char bin[158];
	char b64[256], *nl;
	size_t n;
	int i, rc;

	ck_assert_int_eq(mr_fs_read(&text, path, 4096), 0);
	nl = strchr((char *)text.data, '\n');
	rc = sodium_base642bin(bin, sizeof(bin), nl + 1, strcspn(nl + 1, "\n"),
			       NULL, &n, NULL, sodium_base64_VARIANT_ORIGINAL);
	ck_assert_int_eq(rc, 0);
	for (i = 0; i < 8; i++)
		bin[46 + i] = (unsigned char)(mem >> (8 * i));
	sodium_bin2base64(b64, sizeof(b64), bin, n,
			  sodium_base64_VARIANT_ORIGINAL);
	mr_buf_printf(&out, "untrusted comment: x\n%s\n", b64);
	ck_assert_int_eq(mr_fs_write_atomic(path, out.data, out.len, 0600), 0);
	sodium_memzero(bin, sizeof(bin));
	mr_buf_free(&text);
	mr_buf_free(&out);
}

START_TEST(test_seckey_memlimit_cap)
{
	mr_pubkey pk;
	mr_seckey *sk = make_key("pw", &pk);

	mr_seckey_free(sk);
	set_memlimit(sk_path, (uint64_t)4 << 30);
	assert_error(mr_seckey_load(&sk, sk_path, "pw"), MR_EINVALID,
		     "memlimit");
	ck_assert_ptr_nonnull(strstr(mr_error_last(), "4294967296"));
}
END_TEST

START_TEST(test_seckey_parse_errors)
{
	static const char garbage[] = "untrusted comment: x\nRWQAAEIyAAAA\n";
	static const char no_comment[] = "RWQAAEIyAAAA\n";
	mr_seckey *sk = NULL;

	assert_error(mr_seckey_parse(&sk, garbage, strlen(garbage), NULL,
				     "$SIGNING_KEY"),
		     MR_EINVALID, "$SIGNING_KEY: line 2: expected base64 of a "
				  "158-byte minisign secret key");
	/* the text of a secret key never appears in a message */
	ck_assert_ptr_null(strstr(mr_error_last(), "RWQA"));
	assert_error(mr_seckey_parse(&sk, no_comment, strlen(no_comment), NULL,
				     "$SIGNING_KEY"),
		     MR_EINVALID, "line 1: expected 'untrusted comment: ...'");
	ck_assert_ptr_null(strstr(mr_error_last(), "RWQA"));
	assert_error(mr_seckey_load(&sk, "/nonexistent/k.key", NULL),
		     MR_ENOTFOUND, "/nonexistent/k.key");
	ck_assert_ptr_null(sk);
}
END_TEST

START_TEST(test_seckey_parse_text)
{
	mr_pubkey pk, half;
	mr_buf text = MR_BUF_INIT;
	mr_seckey *sk = make_key(NULL, &pk);

	mr_seckey_free(sk);
	ck_assert_int_eq(mr_fs_read(&text, sk_path, 4096), 0);
	ck_assert_int_eq(mr_seckey_parse(&sk, (const char *)text.data, text.len,
					 NULL, "$SIGNING_KEY"),
			 0);
	mr_seckey_pubkey(sk, &half);
	ck_assert_mem_eq(&half, &pk, sizeof(pk));
	mr_seckey_free(sk);
	mr_seckey_free(NULL);
	sodium_memzero(text.data, text.len);
	mr_buf_free(&text);
}
END_TEST

START_TEST(test_sign_rejects_multiline_comment)
{
	mr_pubkey pk;
	mr_buf sig = MR_BUF_INIT;
	mr_seckey *sk = make_key(NULL, &pk);

	assert_error(mr_sign(&sig, sk, msg, strlen(msg), "a\nb"), MR_EINVALID,
		     "expected one line");
	ck_assert_uint_eq(sig.len, 0);
	mr_seckey_free(sk);
}
END_TEST

static Suite *minisign_suite(void)
{
	Suite *s = suite_create("minisign");
	TCase *tc_keys = tcase_create("keys");
	TCase *tc_sig = tcase_create("signatures");

	tcase_add_checked_fixture(tc_keys, setup, teardown);
	tcase_add_checked_fixture(tc_sig, setup, teardown);
	tcase_set_timeout(tc_keys, 60);
	tcase_set_timeout(tc_sig, 60);
	tcase_add_test(tc_keys, test_roundtrip_encrypted);
	tcase_add_test(tc_keys, test_roundtrip_unencrypted);
	tcase_add_test(tc_keys, test_wrong_passphrase);
	tcase_add_test(tc_keys, test_pubkey_parse);
	tcase_add_test(tc_keys, test_pubkey_parse_errors);
	tcase_add_test(tc_keys, test_pubkey_given_seckey);
	tcase_add_test(tc_keys, test_keyid_hex);
	tcase_add_test(tc_keys, test_seckey_mode);
	tcase_add_test(tc_keys, test_keygen_no_overwrite);
	tcase_add_test(tc_keys, test_seckey_memlimit_cap);
	tcase_add_test(tc_keys, test_seckey_parse_errors);
	tcase_add_test(tc_keys, test_seckey_parse_text);
	tcase_add_test(tc_sig, test_signature_format);
	tcase_add_test(tc_sig, test_flipped_data);
	tcase_add_test(tc_sig, test_flipped_trusted_comment);
	tcase_add_test(tc_sig, test_wrong_key_id);
	tcase_add_test(tc_sig, test_same_id_other_key);
	tcase_add_test(tc_sig, test_truncated_signature);
	tcase_add_test(tc_sig, test_garbage_signature);
	tcase_add_test(tc_sig, test_unknown_algorithm);
	tcase_add_test(tc_sig, test_stock_minisign_vectors);
	tcase_add_test(tc_sig, test_sign_rejects_multiline_comment);
	suite_add_tcase(s, tc_keys);
	suite_add_tcase(s, tc_sig);
	return s;
}

int main(void)
{
	SRunner *sr;
	int failed;

	/* minisign's "sensitive" scrypt limits cost seconds and 1 GiB a key */
	setenv("MRECIPE_KDF_FAST", "1", 1);
	sr = srunner_create(minisign_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
