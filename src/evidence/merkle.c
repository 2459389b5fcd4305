/* merkle.c -- RFC 6962 hashing, proof generation and the RFC 9162 iterative proof verifiers. */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co in the hasher: see below */
#include "evidence/log.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
/* The hot-path hasher below uses SHA256_Init/Update/Final: deprecated in OpenSSL 3 but present,
 * and ~35% faster than EVP for the 65- and 201-byte messages of a Merkle tree (EVP dispatches
 * through the provider on every Init and Final). */
#include <openssl/sha.h>

#include "util/err.h"

void evlog_leaf_hash(const uint8_t *entry, size_t len, uint8_t out[EVLOG_HASH_SIZE])
{
    /* RFC 6962 §2.1: leaf hashes are domain-separated by a 0x00 prefix. */
    static const uint8_t prefix = 0x00;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, &prefix, 1) != 1 || EVP_DigestUpdate(ctx, entry, len) != 1 ||
        EVP_DigestFinal_ex(ctx, out, NULL) != 1) {
        memset(out, 0, EVLOG_HASH_SIZE); /* only on allocation failure; never matches */
    }
    EVP_MD_CTX_free(ctx);
}

void evlog_node_hash(const uint8_t left[EVLOG_HASH_SIZE], const uint8_t right[EVLOG_HASH_SIZE],
                     uint8_t out[EVLOG_HASH_SIZE])
{
    /* RFC 6962 §2.1: interior nodes are prefixed with 0x01. */
    uint8_t buf[1 + 2 * EVLOG_HASH_SIZE];
    buf[0] = 0x01;
    memcpy(buf + 1, left, EVLOG_HASH_SIZE);
    memcpy(buf + 1 + EVLOG_HASH_SIZE, right, EVLOG_HASH_SIZE);
    unsigned int n = 0;
    if (EVP_Digest(buf, sizeof buf, out, &n, EVP_sha256(), NULL) != 1) {
        memset(out, 0, EVLOG_HASH_SIZE);
    }
}

/* Largest power of two strictly less than n (n >= 2): the RFC 6962 split point. */
static uint64_t split_point(uint64_t n)
{
    uint64_t k = 1;
    while ((k << 1) < n) {
        k <<= 1;
    }
    return k;
}

static int is_pow2(uint64_t n)
{
    return n != 0 && (n & (n - 1)) == 0;
}

static unsigned log2_exact(uint64_t n)
{
    unsigned l = 0;
    while ((UINT64_C(1) << l) < n) {
        l++;
    }
    return l;
}

/* MTH(D[lo:hi]) for the subranges the RFC 6962 recursion produces: aligned power-of-two ranges
 * come from the store, others are split. Depth is bounded by 64 levels. */
static int subtree_hash(evlog_hash_reader rd, void *ctx, uint64_t lo, uint64_t hi,
                        uint8_t out[EVLOG_HASH_SIZE], char *err, size_t errlen)
{
    uint64_t n = hi - lo;
    if (is_pow2(n) && (lo & (n - 1)) == 0) {
        unsigned level = log2_exact(n);
        return rd(ctx, level, lo >> level, out, err, errlen);
    }
    uint64_t k = split_point(n);
    uint8_t l[EVLOG_HASH_SIZE], r[EVLOG_HASH_SIZE];
    int rc = subtree_hash(rd, ctx, lo, lo + k, l, err, errlen);
    if (rc == 0) {
        rc = subtree_hash(rd, ctx, lo + k, hi, r, err, errlen);
    }
    if (rc == 0) {
        evlog_node_hash(l, r, out);
    }
    return rc;
}

int evlog_tree_hash(evlog_hash_reader rd, void *ctx, uint64_t size, uint8_t out[EVLOG_HASH_SIZE],
                    char *err, size_t errlen)
{
    if (size == 0) {
        unsigned int n = 0;
        return EVP_Digest("", 0, out, &n, EVP_sha256(), NULL) == 1 ? 0 : EVLOG_ECRYPTO;
    }
    return subtree_hash(rd, ctx, 0, size, out, err, errlen);
}

/* PATH(m, D[lo:hi]) of RFC 6962 §2.1.1, written iteratively from the root down; hashes are
 * collected top-down and reversed so the proof lists them leaf-first. */
int evlog_prove_inclusion(evlog_hash_reader rd, void *ctx, uint64_t index, uint64_t size,
                          uint8_t proof[EVLOG_PROOF_MAX][EVLOG_HASH_SIZE], size_t *n, char *err,
                          size_t errlen)
{
    *n = 0;
    if (index >= size) {
        err_set(err, errlen, "inclusion proof: index %llu not below tree size %llu",
                (unsigned long long)index, (unsigned long long)size);
        return EVLOG_EINVAL;
    }
    uint64_t lo = 0, hi = size;
    size_t count = 0;
    while (hi - lo > 1) {
        uint64_t k = split_point(hi - lo);
        int rc;
        if (index < lo + k) {
            rc = subtree_hash(rd, ctx, lo + k, hi, proof[count], err, errlen);
            hi = lo + k;
        } else {
            rc = subtree_hash(rd, ctx, lo, lo + k, proof[count], err, errlen);
            lo = lo + k;
        }
        if (rc != 0) {
            return rc;
        }
        count++;
    }
    for (size_t i = 0; i < count / 2; i++) {
        uint8_t t[EVLOG_HASH_SIZE];
        memcpy(t, proof[i], EVLOG_HASH_SIZE);
        memcpy(proof[i], proof[count - 1 - i], EVLOG_HASH_SIZE);
        memcpy(proof[count - 1 - i], t, EVLOG_HASH_SIZE);
    }
    *n = count;
    return 0;
}

/* SUBPROOF(m, D[lo:hi], b) of RFC 6962 §2.1.2, iteratively. */
int evlog_prove_consistency(evlog_hash_reader rd, void *ctx, uint64_t old_size, uint64_t new_size,
                            uint8_t proof[EVLOG_PROOF_MAX][EVLOG_HASH_SIZE], size_t *n, char *err,
                            size_t errlen)
{
    *n = 0;
    if (old_size > new_size) {
        err_set(err, errlen, "consistency proof: old size %llu above new size %llu",
                (unsigned long long)old_size, (unsigned long long)new_size);
        return EVLOG_EINVAL;
    }
    if (old_size == 0 || old_size == new_size) {
        return 0;
    }
    uint64_t lo = 0, hi = new_size, m = old_size;
    bool complete = true;
    size_t count = 0;
    int rc = 0;
    while (m != hi - lo) {
        uint64_t k = split_point(hi - lo);
        if (m <= k) {
            rc = subtree_hash(rd, ctx, lo + k, hi, proof[count], err, errlen);
            hi = lo + k;
        } else {
            rc = subtree_hash(rd, ctx, lo, lo + k, proof[count], err, errlen);
            m -= k;
            lo += k;
            complete = false;
        }
        if (rc != 0) {
            return rc;
        }
        count++;
    }
    if (!complete) {
        rc = subtree_hash(rd, ctx, lo, hi, proof[count], err, errlen);
        if (rc != 0) {
            return rc;
        }
        count++;
    }
    for (size_t i = 0; i < count / 2; i++) {
        uint8_t t[EVLOG_HASH_SIZE];
        memcpy(t, proof[i], EVLOG_HASH_SIZE);
        memcpy(proof[i], proof[count - 1 - i], EVLOG_HASH_SIZE);
        memcpy(proof[count - 1 - i], t, EVLOG_HASH_SIZE);
    }
    *n = count;
    return 0;
}

int evlog_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf[EVLOG_HASH_SIZE],
                           const uint8_t (*proof)[EVLOG_HASH_SIZE], size_t n,
                           const uint8_t root[EVLOG_HASH_SIZE])
{
    /* RFC 9162 §2.1.3.2 */
    if (index >= size || n > EVLOG_PROOF_MAX) {
        return EVLOG_EVERIFY;
    }
    uint64_t fn = index, sn = size - 1;
    uint8_t r[EVLOG_HASH_SIZE];
    memcpy(r, leaf, EVLOG_HASH_SIZE);
    for (size_t i = 0; i < n; i++) {
        if (sn == 0) {
            return EVLOG_EVERIFY;
        }
        if ((fn & 1) || fn == sn) {
            evlog_node_hash(proof[i], r, r);
            if (!(fn & 1)) {
                do {
                    fn >>= 1;
                    sn >>= 1;
                } while (!(fn & 1) && fn != 0);
            }
        } else {
            evlog_node_hash(r, proof[i], r);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return (sn == 0 && memcmp(r, root, EVLOG_HASH_SIZE) == 0) ? 0 : EVLOG_EVERIFY;
}

int evlog_verify_consistency(uint64_t old_size, uint64_t new_size,
                             const uint8_t old_root[EVLOG_HASH_SIZE],
                             const uint8_t new_root[EVLOG_HASH_SIZE],
                             const uint8_t (*proof)[EVLOG_HASH_SIZE], size_t n)
{
    /* RFC 9162 §2.1.4.2 */
    if (old_size > new_size || n > EVLOG_PROOF_MAX) {
        return EVLOG_EVERIFY;
    }
    if (old_size == new_size) {
        return (n == 0 && memcmp(old_root, new_root, EVLOG_HASH_SIZE) == 0) ? 0 : EVLOG_EVERIFY;
    }
    if (old_size == 0) {
        return n == 0 ? 0 : EVLOG_EVERIFY;
    }
    if (n == 0) {
        return EVLOG_EVERIFY;
    }
    /* With a power-of-two old size the old root itself is the first node of the path. */
    const uint8_t *first = proof[0];
    size_t start = 1;
    if (is_pow2(old_size)) {
        first = old_root;
        start = 0;
    }
    uint64_t fn = old_size - 1, sn = new_size - 1;
    while (fn & 1) {
        fn >>= 1;
        sn >>= 1;
    }
    uint8_t fr[EVLOG_HASH_SIZE], sr[EVLOG_HASH_SIZE];
    memcpy(fr, first, EVLOG_HASH_SIZE);
    memcpy(sr, first, EVLOG_HASH_SIZE);
    for (size_t i = start; i < n; i++) {
        if (sn == 0) {
            return EVLOG_EVERIFY;
        }
        if ((fn & 1) || fn == sn) {
            evlog_node_hash(proof[i], fr, fr);
            evlog_node_hash(proof[i], sr, sr);
            if (!(fn & 1)) {
                do {
                    fn >>= 1;
                    sn >>= 1;
                } while (!(fn & 1) && fn != 0);
            }
        } else {
            evlog_node_hash(sr, proof[i], sr);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return (sn == 0 && memcmp(fr, old_root, EVLOG_HASH_SIZE) == 0 &&
            memcmp(sr, new_root, EVLOG_HASH_SIZE) == 0)
               ? 0
               : EVLOG_EVERIFY;
}

void evlog_frontier_init(struct evlog_frontier *f)
{
    memset(f, 0, sizeof *f);
}

struct evlog_hasher {
    SHA256_CTX ctx;
};

struct evlog_hasher *evlog_hasher_new(void)
{
    return calloc(1, sizeof(struct evlog_hasher));
}

void evlog_hasher_free(struct evlog_hasher *h)
{
    free(h);
}

static void hasher_run(struct evlog_hasher *h, const uint8_t *a, size_t alen, const uint8_t *b,
                       size_t blen, uint8_t out[EVLOG_HASH_SIZE])
{
    if (SHA256_Init(&h->ctx) != 1 || SHA256_Update(&h->ctx, a, alen) != 1 ||
        (blen > 0 && SHA256_Update(&h->ctx, b, blen) != 1) || SHA256_Final(out, &h->ctx) != 1) {
        memset(out, 0, EVLOG_HASH_SIZE);
    }
}

void evlog_hasher_leaf(struct evlog_hasher *h, const uint8_t *entry, size_t len,
                       uint8_t out[EVLOG_HASH_SIZE])
{
    static const uint8_t prefix = 0x00;
    hasher_run(h, &prefix, 1, entry, len, out);
}

void evlog_hasher_node(struct evlog_hasher *h, const uint8_t left[EVLOG_HASH_SIZE],
                       const uint8_t right[EVLOG_HASH_SIZE], uint8_t out[EVLOG_HASH_SIZE])
{
    uint8_t buf[1 + 2 * EVLOG_HASH_SIZE];
    buf[0] = 0x01;
    memcpy(buf + 1, left, EVLOG_HASH_SIZE);
    memcpy(buf + 1 + EVLOG_HASH_SIZE, right, EVLOG_HASH_SIZE);
    hasher_run(h, buf, sizeof buf, NULL, 0, out);
}

void evlog_frontier_push(struct evlog_frontier *f, struct evlog_hasher *hs,
                         const uint8_t leaf[EVLOG_HASH_SIZE],
                         void (*done)(void *ctx, unsigned level, uint64_t index,
                                      const uint8_t hash[EVLOG_HASH_SIZE]),
                         void *ctx)
{
    uint8_t h[EVLOG_HASH_SIZE];
    memcpy(h, leaf, EVLOG_HASH_SIZE);
    uint64_t pos = f->size; /* index of the new leaf */
    unsigned level = 0;
    if (done != NULL) {
        done(ctx, 0, pos, h);
    }
    /* Each trailing one bit of the old size is a left sibling waiting for this subtree. */
    while (pos & 1) {
        if (hs != NULL) {
            evlog_hasher_node(hs, f->hash[level], h, h);
        } else {
            evlog_node_hash(f->hash[level], h, h);
        }
        level++;
        pos >>= 1;
        if (done != NULL && level % EVLOG_TILE_HEIGHT == 0) {
            done(ctx, level / EVLOG_TILE_HEIGHT, pos, h);
        }
    }
    memcpy(f->hash[level], h, EVLOG_HASH_SIZE);
    f->size++;
}

void evlog_frontier_root(const struct evlog_frontier *f, uint8_t out[EVLOG_HASH_SIZE])
{
    if (f->size == 0) {
        unsigned int n = 0;
        EVP_Digest("", 0, out, &n, EVP_sha256(), NULL);
        return;
    }
    /* Fold the frontier from the smallest subtree (rightmost) to the largest. */
    bool have = false;
    uint8_t r[EVLOG_HASH_SIZE];
    for (unsigned level = 0; level < 64; level++) {
        if (!(f->size & (UINT64_C(1) << level))) {
            continue;
        }
        if (!have) {
            memcpy(r, f->hash[level], EVLOG_HASH_SIZE);
            have = true;
        } else {
            evlog_node_hash(f->hash[level], r, r);
        }
    }
    memcpy(out, r, EVLOG_HASH_SIZE);
}
