/* timestamp.c -- RFC 3161 timestamps of signed checkpoints: the request sinkd sends a
 * time-stamping authority, the checks a reply must pass, and their place next to the checkpoints
 * (log/timestamps/). A checkpoint signed by the log's own key says what the log contained; a
 * TSA's token says, in a third party's name, that it existed no later than a given time. */
#include "evidence/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/ts.h>
#include <openssl/x509.h>

#include "evidence/files.h"
#include "util/err.h"

#define TS_DIR "timestamps"

/* The newest libcrypto error as text, and the queue cleared so it cannot leak into a later
 * message. */
static int crypto_err(char *err, size_t errlen, int code, const char *what)
{
    char buf[256] = "";
    unsigned long e = ERR_peek_last_error();
    if (e != 0) {
        ERR_error_string_n(e, buf, sizeof buf);
    }
    ERR_clear_error();
    if (buf[0] != '\0') {
        err_set(err, errlen, "%s (%s)", what, buf);
    } else {
        err_set(err, errlen, "%s", what);
    }
    return code;
}

int evlog_ts_request(const uint8_t digest[EVLOG_HASH_SIZE], uint8_t **out, size_t *len, char *err,
                     size_t errlen)
{
    TS_REQ *req = TS_REQ_new();
    TS_MSG_IMPRINT *mi = TS_MSG_IMPRINT_new();
    X509_ALGOR *alg = X509_ALGOR_new();
    BIGNUM *bn = BN_new();
    ASN1_INTEGER *nonce = NULL;
    uint8_t rnd[8];
    int rc = EVLOG_ECRYPTO;
    *out = NULL;
    if (req == NULL || mi == NULL || alg == NULL || bn == NULL) {
        rc = crypto_err(err, errlen, EVLOG_ENOMEM, "timestamp request: out of memory");
        goto done;
    }
    /* The nonce ties the reply to this request: a reply recorded for another request (or
     * replayed) does not carry it. */
    if (RAND_bytes(rnd, sizeof rnd) != 1 || BN_bin2bn(rnd, sizeof rnd, bn) == NULL ||
        (BN_is_zero(bn) && !BN_one(bn)) || (nonce = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
        rc = crypto_err(err, errlen, EVLOG_ECRYPTO, "timestamp request: nonce");
        goto done;
    }
    if (!X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256), V_ASN1_NULL, NULL) ||
        !TS_MSG_IMPRINT_set_algo(mi, alg) ||
        !TS_MSG_IMPRINT_set_msg(mi, (unsigned char *)digest, EVLOG_HASH_SIZE) ||
        !TS_REQ_set_version(req, 1) || !TS_REQ_set_msg_imprint(req, mi) ||
        !TS_REQ_set_nonce(req, nonce) || !TS_REQ_set_cert_req(req, 1)) {
        rc = crypto_err(err, errlen, EVLOG_ECRYPTO, "timestamp request");
        goto done;
    }
    int n = i2d_TS_REQ(req, NULL);
    if (n <= 0 || (*out = malloc((size_t)n)) == NULL) {
        rc = crypto_err(err, errlen, n <= 0 ? EVLOG_ECRYPTO : EVLOG_ENOMEM,
                        "timestamp request: encoding");
        goto done;
    }
    unsigned char *p = *out;
    i2d_TS_REQ(req, &p);
    *len = (size_t)n;
    rc = 0;
done:
    ASN1_INTEGER_free(nonce);
    BN_free(bn);
    X509_ALGOR_free(alg);
    TS_MSG_IMPRINT_free(mi);
    TS_REQ_free(req);
    return rc;
}

/* True if the imprint is SHA-256 of exactly `digest`. */
static bool imprint_is(TS_MSG_IMPRINT *mi, const uint8_t digest[EVLOG_HASH_SIZE])
{
    const ASN1_OBJECT *obj = NULL;
    X509_ALGOR_get0(&obj, NULL, NULL, TS_MSG_IMPRINT_get_algo(mi));
    const ASN1_OCTET_STRING *m = TS_MSG_IMPRINT_get_msg(mi);
    return obj != NULL && OBJ_obj2nid(obj) == NID_sha256 && m != NULL &&
           ASN1_STRING_length(m) == EVLOG_HASH_SIZE &&
           memcmp(ASN1_STRING_get0_data(m), digest, EVLOG_HASH_SIZE) == 0;
}

static void describe_token(TS_TST_INFO *tst, PKCS7 *token, struct evlog_timestamp *out)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(TS_TST_INFO_get_serial(tst), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    snprintf(out->serial, sizeof out->serial, "%s", hex != NULL ? hex : "?");
    OPENSSL_free(hex);
    BN_free(bn);
    ASN1_OBJECT *policy = TS_TST_INFO_get_policy_id(tst);
    if (policy == NULL || OBJ_obj2txt(out->policy, sizeof out->policy, policy, 1) <= 0) {
        snprintf(out->policy, sizeof out->policy, "?");
    }
    snprintf(out->tsa, sizeof out->tsa, "?");
    STACK_OF(X509) *signers = PKCS7_get0_signers(token, NULL, 0);
    BIO *mem = BIO_new(BIO_s_mem());
    if (signers != NULL && sk_X509_num(signers) > 0 && mem != NULL &&
        X509_NAME_print_ex(mem, X509_get_subject_name(sk_X509_value(signers, 0)), 0,
                           XN_FLAG_RFC2253) >= 0) {
        char *data;
        long n = BIO_get_mem_data(mem, &data);
        if (n > 0) {
            snprintf(out->tsa, sizeof out->tsa, "%.*s", (int)n, data);
        }
    }
    BIO_free(mem);
    sk_X509_free(signers);
    ERR_clear_error();
}

/* Signer chain, purpose and OpenSSL's RFC 3161 checks against the CAs in ca_file, with the
 * certificates judged at the token's own time: a TSA certificate that expired after it signed
 * does not make older tokens worthless (RFC 3161 §4). */
static int check_chain(TS_RESP *resp, const char *ca_file, time_t gen_time, char *err,
                       size_t errlen)
{
    X509_STORE *store = X509_STORE_new();
    TS_VERIFY_CTX *ctx = TS_VERIFY_CTX_new();
    int rc;
    if (store == NULL || ctx == NULL) {
        X509_STORE_free(store);
        TS_VERIFY_CTX_free(ctx);
        return crypto_err(err, errlen, EVLOG_ENOMEM, "timestamp: out of memory");
    }
    if (X509_STORE_load_file(store, ca_file) != 1) {
        X509_STORE_free(store);
        TS_VERIFY_CTX_free(ctx);
        char what[EVLOG_PATH_MAX + 64];
        snprintf(what, sizeof what, "%s: no CA certificate could be read", ca_file);
        return crypto_err(err, errlen, EVLOG_EINVAL, what);
    }
    X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store), gen_time);
    TS_VERIFY_CTX_set_flags(ctx, TS_VFY_SIGNATURE | TS_VFY_VERSION);
    TS_VERIFY_CTX_set_store(ctx, store); /* the context owns it now */
    rc = TS_RESP_verify_response(ctx, resp) == 1
             ? 0
             : crypto_err(err, errlen, EVLOG_EVERIFY,
                          "reply: the signer does not chain to a CA of the given file at the "
                          "token's time, or may not sign timestamps");
    TS_VERIFY_CTX_free(ctx);
    return rc;
}

int evlog_ts_check(const uint8_t digest[EVLOG_HASH_SIZE], const uint8_t *req, size_t req_len,
                   const uint8_t *resp, size_t resp_len, const char *ca_file,
                   struct evlog_timestamp *out, char *err, size_t errlen)
{
    if (resp_len == 0 || resp_len > EVLOG_TS_RESP_MAX) {
        return err_set(err, errlen, "reply: %zu bytes (expected 1..%u)", resp_len,
                       (unsigned)EVLOG_TS_RESP_MAX),
               EVLOG_EVERIFY;
    }
    const unsigned char *p = resp;
    TS_RESP *r = d2i_TS_RESP(NULL, &p, (long)resp_len);
    TS_REQ *q = NULL;
    int rc = EVLOG_EVERIFY;
    if (r == NULL) {
        return crypto_err(err, errlen, EVLOG_EVERIFY, "reply: not a DER TimeStampResp");
    }
    if (p != resp + resp_len) {
        err_set(err, errlen, "reply: %zu bytes after the TimeStampResp",
                (size_t)(resp + resp_len - p));
        goto done;
    }
    long status = ASN1_INTEGER_get(TS_STATUS_INFO_get0_status(TS_RESP_get_status_info(r)));
    if (status != TS_STATUS_GRANTED && status != TS_STATUS_GRANTED_WITH_MODS) {
        err_set(err, errlen, "reply: the TSA refused the request (PKIStatus %ld)", status);
        goto done;
    }
    PKCS7 *token = TS_RESP_get_token(r);
    TS_TST_INFO *tst = TS_RESP_get_tst_info(r);
    if (token == NULL || tst == NULL) {
        err_set(err, errlen, "reply: granted but carries no timestamp token");
        goto done;
    }
    if (TS_TST_INFO_get_version(tst) != 1) {
        err_set(err, errlen, "reply: token version %ld (RFC 3161 has 1)",
                TS_TST_INFO_get_version(tst));
        goto done;
    }
    if (!imprint_is(TS_TST_INFO_get_msg_imprint(tst), digest)) {
        err_set(err, errlen, "reply: the token's imprint is not SHA-256 of this checkpoint");
        goto done;
    }
    if (req != NULL) {
        const unsigned char *qp = req;
        q = d2i_TS_REQ(NULL, &qp, (long)req_len);
        if (q == NULL || qp != req + req_len) {
            rc = crypto_err(err, errlen, EVLOG_EVERIFY, "request: not one DER TimeStampReq");
            goto done;
        }
        if (!imprint_is(TS_REQ_get_msg_imprint(q), digest)) {
            err_set(err, errlen, "request: its imprint is not SHA-256 of this checkpoint");
            goto done;
        }
        const ASN1_INTEGER *qn = TS_REQ_get_nonce(q), *tn = TS_TST_INFO_get_nonce(tst);
        if (qn != NULL && (tn == NULL || ASN1_INTEGER_cmp(qn, tn) != 0)) {
            err_set(err, errlen,
                    "reply: its nonce is not the request's (a reply to another "
                    "request)");
            goto done;
        }
    }
    struct tm tm;
    const ASN1_GENERALIZEDTIME *gt = TS_TST_INFO_get_time(tst);
    if (gt == NULL || ASN1_TIME_to_tm(gt, &tm) != 1) {
        rc = crypto_err(err, errlen, EVLOG_EVERIFY, "reply: unreadable genTime");
        goto done;
    }
    time_t when = timegm(&tm);
    /* The token's own signature, with the certificate it carries; whose certificate that is
     * only a CA can say (check_chain). */
    if (PKCS7_verify(token, NULL, NULL, NULL, NULL, PKCS7_NOVERIFY) != 1) {
        rc = crypto_err(err, errlen, EVLOG_EVERIFY,
                        "reply: the token's signature does not verify with the certificate it "
                        "carries");
        goto done;
    }
    bool chained = false;
    if (ca_file != NULL) {
        rc = check_chain(r, ca_file, when, err, errlen);
        if (rc != 0) {
            goto done;
        }
        chained = true;
    }
    if (out != NULL) {
        memset(out, 0, sizeof *out);
        out->time = (int64_t)when;
        strftime(out->time_text, sizeof out->time_text, "%Y-%m-%dT%H:%M:%SZ", &tm);
        out->chain_checked = chained;
        describe_token(tst, token, out);
    }
    rc = 0;
done:
    TS_REQ_free(q);
    TS_RESP_free(r);
    ERR_clear_error();
    return rc;
}

/* ---- log/timestamps/ ------------------------------------------------------------------------ */

/* SHA-256 of checkpoints/<size>, the bytes a timestamp covers. */
static int checkpoint_digest(const char *log_dir, uint64_t size, uint8_t digest[EVLOG_HASH_SIZE],
                             char *err, size_t errlen)
{
    char rel[64], *note;
    size_t len;
    snprintf(rel, sizeof rel, "checkpoints/%llu", (unsigned long long)size);
    int rc = evfile_read(log_dir, rel, &note, &len, EVLOG_NOTE_MAX, err, errlen);
    if (rc != 0) {
        return rc;
    }
    unsigned int dlen = 0;
    int ok = EVP_Digest(note, len, digest, &dlen, EVP_sha256(), NULL);
    free(note);
    return ok == 1 && dlen == EVLOG_HASH_SIZE
               ? 0
               : crypto_err(err, errlen, EVLOG_ECRYPTO, "SHA-256 of the checkpoint");
}

int evlog_ts_prepare(const char *log_dir, uint64_t size, uint64_t *size_out, uint8_t **req,
                     size_t *req_len, char *err, size_t errlen)
{
    *req = NULL;
    if (size == 0) {
        int rc = evfile_latest_size(log_dir, &size, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    uint8_t digest[EVLOG_HASH_SIZE];
    int rc = checkpoint_digest(log_dir, size, digest, err, errlen);
    if (rc != 0) {
        return rc;
    }
    char rel[64];
    snprintf(rel, sizeof rel, TS_DIR "/%llu.tsr", (unsigned long long)size);
    if (evfile_exists(log_dir, rel)) {
        *size_out = size;
        err_set(err, errlen, "%s/%s: checkpoint %llu is timestamped already", log_dir, rel,
                (unsigned long long)size);
        return 1;
    }
    char dir[EVLOG_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/" TS_DIR, log_dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        return err_set(err, errlen, "%s: %s", dir, strerror(errno)), EVLOG_EIO;
    }
    rc = evlog_ts_request(digest, req, req_len, err, errlen);
    snprintf(rel, sizeof rel, "%llu.tsq", (unsigned long long)size);
    if (rc == 0) {
        rc = evfile_write_durable(dir, rel, *req, *req_len, 1, err, errlen);
    }
    if (rc != 0) {
        free(*req);
        *req = NULL;
        return rc;
    }
    *size_out = size;
    return 0;
}

/* Sizes of the files "<size><suffix>" in log/timestamps/, sorted. */
static int list_sized(const char *log_dir, const char *suffix, uint64_t **out, size_t *n, char *err,
                      size_t errlen)
{
    char dir[EVLOG_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/" TS_DIR, log_dir);
    return evfile_list_sizes(dir, suffix, out, n, err, errlen);
}

int evlog_ts_pending(const char *log_dir, uint64_t *size_out, char *err, size_t errlen)
{
    uint64_t *sizes;
    size_t n;
    int rc = list_sized(log_dir, ".tsq", &sizes, &n, err, errlen);
    if (rc != 0) {
        return rc;
    }
    rc = EVLOG_EINVAL;
    for (size_t i = n; i-- > 0;) {
        char rel[64];
        snprintf(rel, sizeof rel, TS_DIR "/%llu.tsr", (unsigned long long)sizes[i]);
        if (!evfile_exists(log_dir, rel)) {
            *size_out = sizes[i];
            rc = 0;
            break;
        }
    }
    free(sizes);
    if (rc != 0) {
        err_set(err, errlen, "%s/" TS_DIR ": no request is waiting for a reply", log_dir);
    }
    return rc;
}

/* Checks timestamps/<size>.tsr bytes (resp) against checkpoints/<size> and, if kept or
 * `need_req`, <size>.tsq. Errors name the reply file. */
static int check_stored(const char *log_dir, uint64_t size, const uint8_t *resp, size_t resp_len,
                        bool need_req, const char *ca_file, struct evlog_timestamp *out, char *err,
                        size_t errlen)
{
    char e[512], rel[64];
    uint8_t digest[EVLOG_HASH_SIZE];
    snprintf(rel, sizeof rel, TS_DIR "/%llu.tsr", (unsigned long long)size);
    int rc = checkpoint_digest(log_dir, size, digest, e, sizeof e);
    if (rc != 0) {
        return err_set(err, errlen, "%s: %s", rel, e), rc == EVLOG_EIO ? EVLOG_EVERIFY : rc;
    }
    char qrel[64], *req = NULL;
    size_t req_len = 0;
    snprintf(qrel, sizeof qrel, TS_DIR "/%llu.tsq", (unsigned long long)size);
    if (need_req || evfile_exists(log_dir, qrel)) {
        rc = evfile_read(log_dir, qrel, &req, &req_len, EVLOG_TS_REQ_MAX, e, sizeof e);
        if (rc != 0) {
            return err_set(err, errlen, "%s: %s", rel, e), rc;
        }
    }
    rc = evlog_ts_check(digest, (const uint8_t *)req, req_len, resp, resp_len, ca_file, out, e,
                        sizeof e);
    free(req);
    if (rc != 0) {
        return err_set(err, errlen, "%s: %s", rel, e), rc;
    }
    return 0;
}

int evlog_ts_store(const char *log_dir, uint64_t size, const uint8_t *resp, size_t resp_len,
                   const char *ca_file, struct evlog_timestamp *out, char *err, size_t errlen)
{
    int rc = check_stored(log_dir, size, resp, resp_len, true, ca_file, out, err, errlen);
    if (rc != 0) {
        return rc;
    }
    char dir[EVLOG_PATH_MAX + 16], rel[64];
    snprintf(dir, sizeof dir, "%s/" TS_DIR, log_dir);
    snprintf(rel, sizeof rel, "%llu.tsr", (unsigned long long)size);
    return evfile_write_durable(dir, rel, resp, resp_len, 0, err, errlen);
}

int evlog_ts_verify_dir(const char *log_dir, const char *ca_file,
                        void (*each)(void *ctx, uint64_t size, const struct evlog_timestamp *ts),
                        void *ctx, char *err, size_t errlen)
{
    uint64_t *sizes;
    size_t n;
    int rc = list_sized(log_dir, ".tsr", &sizes, &n, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char rel[64], *resp;
        size_t len;
        snprintf(rel, sizeof rel, TS_DIR "/%llu.tsr", (unsigned long long)sizes[i]);
        rc = evfile_read(log_dir, rel, &resp, &len, EVLOG_TS_RESP_MAX, err, errlen);
        if (rc != 0) {
            break;
        }
        struct evlog_timestamp ts;
        rc = check_stored(log_dir, sizes[i], (const uint8_t *)resp, len, false, ca_file, &ts, err,
                          errlen);
        free(resp);
        if (rc == 0 && each != NULL) {
            each(ctx, sizes[i], &ts);
        }
    }
    free(sizes);
    return rc != 0 ? rc : (int)n; /* n <= evfile_list_sizes' bound, far below INT_MAX */
}
