/* evidence_timestamp_test.c -- RFC 3161 timestamps of checkpoints, against tokens OpenSSL's own
 * `openssl ts -reply` issued (tests/vectors/tsa/make_vectors.sh): requests sinkd builds, every
 * check a reply must pass, a 2024 token whose TSA certificate has expired since (judged at its
 * own time), single-bit changes of a token, and the files under log/timestamps/. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/ts.h>

#include "evidence/log.h"

static char vec_dir[1024];

static uint8_t *read_vec(const char *name, size_t *len)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", vec_dir, name);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint8_t *buf = malloc(64 * 1024);
    assert_non_null(buf);
    *len = fread(buf, 1, 64 * 1024, f);
    fclose(f);
    return buf;
}

static char *vec_path(const char *name)
{
    static char path[1200];
    snprintf(path, sizeof path, "%s/%s", vec_dir, name);
    return path;
}

static void checkpoint_digest(uint8_t d[EVLOG_HASH_SIZE])
{
    size_t len;
    uint8_t *cp = read_vec("checkpoint", &len);
    unsigned int n;
    assert_int_equal(EVP_Digest(cp, len, d, &n, EVP_sha256(), NULL), 1);
    free(cp);
}

/* genTime as make_vectors.sh had `date` compute it from OpenSSL's text (line 2). */
static int64_t vec_time(const char *name)
{
    size_t len;
    char *t = (char *)read_vec(name, &len);
    t[len] = '\0';
    const char *line2 = strchr(t, '\n');
    assert_non_null(line2);
    int64_t v = strtoll(line2 + 1, NULL, 10);
    free(t);
    assert_true(v > 1700000000);
    return v;
}

static int check(const char *req_name, const char *resp_name, const char *ca,
                 struct evlog_timestamp *ts, char *err, size_t errlen)
{
    uint8_t d[EVLOG_HASH_SIZE];
    checkpoint_digest(d);
    size_t ql = 0, rl;
    uint8_t *q = req_name != NULL ? read_vec(req_name, &ql) : NULL;
    uint8_t *r = read_vec(resp_name, &rl);
    int rc = evlog_ts_check(d, q, ql, r, rl, ca != NULL ? vec_path(ca) : NULL, ts, err, errlen);
    free(q);
    free(r);
    return rc;
}

static void test_request_fields(void **state)
{
    (void)state;
    uint8_t d[EVLOG_HASH_SIZE], *a, *b;
    size_t alen, blen;
    char err[256];
    checkpoint_digest(d);
    assert_int_equal(evlog_ts_request(d, &a, &alen, err, sizeof err), 0);
    assert_int_equal(evlog_ts_request(d, &b, &blen, err, sizeof err), 0);
    const unsigned char *p = a;
    TS_REQ *req = d2i_TS_REQ(NULL, &p, (long)alen);
    assert_non_null(req);
    assert_ptr_equal(p, a + alen);
    assert_int_equal(TS_REQ_get_version(req), 1);
    assert_int_equal(TS_REQ_get_cert_req(req), 1);
    assert_non_null(TS_REQ_get_nonce(req));
    const ASN1_OCTET_STRING *m = TS_MSG_IMPRINT_get_msg(TS_REQ_get_msg_imprint(req));
    assert_int_equal(ASN1_STRING_length(m), 32);
    assert_memory_equal(ASN1_STRING_get0_data(m), d, 32);
    TS_REQ_free(req);
    /* Two requests for the same checkpoint differ (the nonce). */
    assert_true(alen != blen || memcmp(a, b, alen) != 0);
    free(a);
    free(b);
}

static void test_good_reply(void **state)
{
    (void)state;
    struct evlog_timestamp ts;
    char err[512] = "";
    assert_int_equal(check("req.tsq", "resp.tsr", "ca.pem", &ts, err, sizeof err), 0);
    assert_true(ts.chain_checked);
    assert_int_equal(ts.time, vec_time("resp.time.txt"));
    assert_string_equal(ts.tsa, "CN=sinkd test TSA,O=sinkd tests");
    assert_string_equal(ts.policy, "1.3.6.1.4.1.99999.1");
    assert_int_equal(strlen(ts.time_text), 20);
    /* Without a CA: the signature with the carried certificate only. */
    assert_int_equal(check("req.tsq", "resp.tsr", NULL, &ts, err, sizeof err), 0);
    assert_false(ts.chain_checked);
    /* Without the request (no nonce to compare): imprint and signature. */
    assert_int_equal(check(NULL, "resp.tsr", "ca.pem", &ts, err, sizeof err), 0);
}

static void test_expired_tsa_judged_at_its_time(void **state)
{
    (void)state;
    struct evlog_timestamp ts;
    char err[512] = "";
    /* The TSA certificate was valid for March 2024 only; the token is from 2024-03-10. */
    assert_int_equal(check("req.tsq", "resp-2024.tsr", "ca.pem", &ts, err, sizeof err), 0);
    assert_int_equal(ts.time, vec_time("resp-2024.time.txt"));
    assert_string_equal(ts.time_text, "2024-03-10T12:00:00Z");
}

static void expect_fail(const char *req, const char *resp, const char *ca, const char *words)
{
    char err[512] = "";
    int rc = check(req, resp, ca, NULL, err, sizeof err);
    if (rc == 0 || strstr(err, words) == NULL) {
        fail_msg("%s/%s: rc %d, err '%s' (expected '%s')", req ? req : "-", resp, rc, err, words);
    }
}

static void test_bad_replies(void **state)
{
    (void)state;
    expect_fail("req.tsq", "resp.tsr", "other-ca.pem", "does not chain");
    expect_fail("req-other.tsq", "resp.tsr", "ca.pem", "nonce");
    expect_fail("req-nocert.tsq", "resp-nocert.tsr", NULL, "signature does not verify");
    expect_fail("req-sha1.tsq", "resp-rejected.tsr", NULL, "refused");
    expect_fail("req.tsq", "resp.tsr", "no-such-ca.pem", "no CA certificate");
    expect_fail("req.tsq", "checkpoint", NULL, "not a DER TimeStampResp");
    /* Another checkpoint's digest. */
    uint8_t d[EVLOG_HASH_SIZE];
    checkpoint_digest(d);
    d[31] ^= 1;
    size_t rl;
    uint8_t *r = read_vec("resp.tsr", &rl);
    char err[512];
    assert_int_equal(evlog_ts_check(d, NULL, 0, r, rl, NULL, NULL, err, sizeof err), EVLOG_EVERIFY);
    assert_non_null(strstr(err, "imprint"));
    d[31] ^= 1;
    /* One byte after the DER object; an empty reply. */
    r[rl] = 0;
    assert_int_equal(evlog_ts_check(d, NULL, 0, r, rl + 1, NULL, NULL, err, sizeof err),
                     EVLOG_EVERIFY);
    assert_non_null(strstr(err, "after"));
    assert_int_equal(evlog_ts_check(d, NULL, 0, r, 0, NULL, NULL, err, sizeof err), EVLOG_EVERIFY);
    free(r);
}

/* No single-bit change of a token makes it say something else and pass: every flip in what the
 * TSA signed (the TSTInfo, the signed attributes, the signature) or in the certificate the CA
 * signed is rejected. OpenSSL's decoder tolerates a few flips in unsigned framing (a status of
 * grantedWithMods, algorithm parameters, letter case in the signer's issuer name, the SignerInfo's
 * signature algorithm OID); those may pass, but only with the same time, serial, policy and
 * signer, and the imprint and nonce are checked either way. */
static void test_bit_flips(void **state)
{
    (void)state;
    uint8_t d[EVLOG_HASH_SIZE];
    checkpoint_digest(d);
    size_t rl, ql;
    uint8_t *r = read_vec("resp.tsr", &rl), *q = read_vec("req.tsq", &ql);
    char err[512];
    struct evlog_timestamp good, ts;
    assert_int_equal(evlog_ts_check(d, q, ql, r, rl, vec_path("ca.pem"), &good, err, sizeof err),
                     0);
    size_t accepted = 0;
    for (size_t i = 0; i < rl * 8; i++) {
        r[i / 8] ^= (uint8_t)(1u << (i % 8));
        if (evlog_ts_check(d, q, ql, r, rl, vec_path("ca.pem"), &ts, err, sizeof err) == 0) {
            accepted++;
            if (ts.time != good.time || strcmp(ts.serial, good.serial) != 0 ||
                strcmp(ts.policy, good.policy) != 0 || strcmp(ts.tsa, good.tsa) != 0) {
                fail_msg("bit %zu of byte %zu: accepted with other facts (%s %s %s %s)", i % 8,
                         i / 8, ts.time_text, ts.serial, ts.policy, ts.tsa);
            }
        }
        r[i / 8] ^= (uint8_t)(1u << (i % 8));
    }
    /* 957 bytes; the tolerated framing is well under a tenth of the bits. */
    assert_true(accepted * 10 < rl * 8);
    free(r);
    free(q);
}

static void put(const char *dir, const char *rel, const uint8_t *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, len, f), len);
    fclose(f);
}

static void count_each(void *ctx, uint64_t size, const struct evlog_timestamp *ts)
{
    assert_int_equal(size, 8);
    assert_true(ts->chain_checked);
    (*(int *)ctx)++;
}

static void test_log_dir(void **state)
{
    (void)state;
    char dir[64] = "/tmp/evidence_ts_test.XXXXXX", sub[128], err[512];
    assert_non_null(mkdtemp(dir));
    snprintf(sub, sizeof sub, "%s/checkpoints", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    size_t cl, rl, ql;
    uint8_t *cp = read_vec("checkpoint", &cl), *r = read_vec("resp.tsr", &rl);
    uint8_t *q = read_vec("req.tsq", &ql);
    put(dir, "checkpoint", cp, cl);
    put(dir, "checkpoints/8", cp, cl);
    /* No timestamps/ yet: nothing to check, nothing pending. */
    uint64_t size = 0;
    assert_int_equal(evlog_ts_verify_dir(dir, NULL, NULL, NULL, err, sizeof err), 0);
    assert_int_equal(evlog_ts_pending(dir, &size, err, sizeof err), EVLOG_EINVAL);
    /* A request for the latest checkpoint, then the vector's reply: its nonce is another's. */
    uint8_t *req;
    size_t req_len;
    assert_int_equal(evlog_ts_prepare(dir, 0, &size, &req, &req_len, err, sizeof err), 0);
    assert_int_equal(size, 8);
    free(req);
    size = 0;
    assert_int_equal(evlog_ts_pending(dir, &size, err, sizeof err), 0);
    assert_int_equal(size, 8);
    assert_int_equal(evlog_ts_store(dir, 8, r, rl, NULL, NULL, err, sizeof err), EVLOG_EVERIFY);
    assert_non_null(strstr(err, "timestamps/8.tsr: reply: its nonce"));
    /* With the request the reply answers, it is stored, once. */
    put(dir, "timestamps/8.tsq", q, ql);
    struct evlog_timestamp ts;
    assert_int_equal(evlog_ts_store(dir, 8, r, rl, vec_path("ca.pem"), &ts, err, sizeof err), 0);
    assert_int_equal(evlog_ts_store(dir, 8, r, rl, NULL, NULL, err, sizeof err), EVLOG_EINVAL);
    assert_non_null(strstr(err, "exists already"));
    size = 0;
    assert_int_equal(evlog_ts_prepare(dir, 0, &size, &req, &req_len, err, sizeof err), 1);
    assert_int_equal(size, 8);
    assert_null(req);
    assert_non_null(strstr(err, "timestamped already"));
    assert_int_equal(evlog_ts_pending(dir, &size, err, sizeof err), EVLOG_EINVAL);
    /* A size nobody published. */
    assert_true(evlog_ts_prepare(dir, 9, &size, &req, &req_len, err, sizeof err) < 0);
    assert_non_null(strstr(err, "checkpoints/9"));
    int seen = 0;
    assert_int_equal(
        evlog_ts_verify_dir(dir, vec_path("ca.pem"), count_each, &seen, err, sizeof err), 1);
    assert_int_equal(seen, 1);
    /* The timestamped checkpoint edited: named by the reply that no longer fits it. */
    cp[cl - 2] ^= 1;
    put(dir, "checkpoints/8", cp, cl);
    assert_int_equal(evlog_ts_verify_dir(dir, NULL, NULL, NULL, err, sizeof err), EVLOG_EVERIFY);
    assert_non_null(strstr(err, "timestamps/8.tsr: reply: the token's imprint"));
    cp[cl - 2] ^= 1;
    put(dir, "checkpoints/8", cp, cl);
    /* A reply for a checkpoint that is not there. */
    put(dir, "timestamps/16.tsr", r, rl);
    assert_int_equal(evlog_ts_verify_dir(dir, NULL, NULL, NULL, err, sizeof err), EVLOG_EVERIFY);
    assert_non_null(strstr(err, "timestamps/16.tsr: "));
    free(cp);
    free(r);
    free(q);
    char cmd[200];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const char *src = getenv("SINKD_SOURCE_DIR");
    snprintf(vec_dir, sizeof vec_dir, "%s/tests/vectors/tsa", src != NULL ? src : ".");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_fields),
        cmocka_unit_test(test_good_reply),
        cmocka_unit_test(test_expired_tsa_judged_at_its_time),
        cmocka_unit_test(test_bad_replies),
        cmocka_unit_test(test_bit_flips),
        cmocka_unit_test(test_log_dir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
