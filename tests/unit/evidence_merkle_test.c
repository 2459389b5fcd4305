/* evidence_merkle_test.c -- RFC 6962 hashing and proofs against the TLOG.md and Go x/mod vectors.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "evidence/log.h"

/* In-memory store: complete subtree hashes computed from the leaf hashes. */
struct mem_tree {
    uint8_t (*leaves)[32];
    uint64_t n;
};

static int mem_hash(void *ctx, unsigned level, uint64_t index, uint8_t out[32], char *err,
                    size_t errlen)
{
    (void)err;
    (void)errlen;
    struct mem_tree *t = ctx;
    if (level == 0) {
        if (index >= t->n) {
            return -1;
        }
        memcpy(out, t->leaves[index], 32);
        return 0;
    }
    uint8_t l[32], r[32];
    if (mem_hash(ctx, level - 1, 2 * index, l, NULL, 0) != 0 ||
        mem_hash(ctx, level - 1, 2 * index + 1, r, NULL, 0) != 0) {
        return -1;
    }
    evlog_node_hash(l, r, out);
    return 0;
}

static void unhex(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
}

static void assert_hex(const uint8_t *h, const char *hex)
{
    uint8_t want[32];
    unhex(hex, want, 32);
    assert_memory_equal(h, want, 32);
}

/* transparency-dev/merkle testonly/constants.go leaf inputs. */
static const char *std_leaves[8] = {"",
                                    "00",
                                    "10",
                                    "2021",
                                    "3031",
                                    "40414243",
                                    "5051525354555657",
                                    "606162636465666768696a6b6c6d6e6f"};
static const char *std_roots[9] = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};
#define H_L0 "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
#define H_L1 "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"
#define H_L2 "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7"
#define H_L3 "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7"
#define H_L4 "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"
#define H_L6 "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"
#define H_N01 "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"
#define H_N23 "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"
#define H_N45 "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"
#define H_N67 "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"
#define H_N03 "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"
#define H_N47 "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"
#define H_X46 "837dbb152e9b079010717e84e865da4ebc0fa198a806d59d31bf15accef22d0e"

static uint8_t std_leaf_hashes[8][32];

static int setup_std(void **state)
{
    (void)state;
    for (int i = 0; i < 8; i++) {
        uint8_t buf[16];
        size_t n = strlen(std_leaves[i]) / 2;
        unhex(std_leaves[i], buf, n);
        evlog_leaf_hash(buf, n, std_leaf_hashes[i]);
    }
    return 0;
}

static void test_std_leaves_and_roots(void **state)
{
    (void)state;
    assert_hex(std_leaf_hashes[0], H_L0);
    assert_hex(std_leaf_hashes[1], H_L1);
    assert_hex(std_leaf_hashes[6], H_L6);
    for (uint64_t n = 0; n <= 8; n++) {
        uint8_t root[32];
        struct mem_tree t = {std_leaf_hashes, n};
        assert_int_equal(evlog_tree_hash(mem_hash, &t, n, root, NULL, 0), 0);
        assert_hex(root, std_roots[n]);
        struct evlog_frontier f;
        evlog_frontier_init(&f);
        for (uint64_t i = 0; i < n; i++) {
            evlog_frontier_push(&f, NULL, std_leaf_hashes[i], NULL, NULL);
        }
        uint8_t froot[32];
        evlog_frontier_root(&f, froot);
        assert_memory_equal(froot, root, 32);
    }
}

struct proof_vec {
    uint64_t a, b; /* index,size or old,new */
    int n;
    const char *h[4];
};

static void check_proof(const uint8_t (*got)[32], size_t n, const struct proof_vec *v)
{
    assert_int_equal(n, (size_t)v->n);
    for (int i = 0; i < v->n; i++) {
        assert_hex(got[i], v->h[i]);
    }
}

static void test_std_inclusion(void **state)
{
    (void)state;
    static const struct proof_vec vecs[] = {
        {0, 8, 3, {H_L1, H_N23, H_N47}},
        {5, 8, 3, {H_L4, H_N67, H_N03}},
        {2, 3, 1, {H_N01}},
        {1, 5, 3, {H_L0, H_N23, H_L4}},
        {0, 1, 0, {NULL}},
    };
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
        uint8_t proof[EVLOG_PROOF_MAX][32], root[32];
        size_t n;
        struct mem_tree t = {std_leaf_hashes, vecs[i].b};
        assert_int_equal(
            evlog_prove_inclusion(mem_hash, &t, vecs[i].a, vecs[i].b, proof, &n, NULL, 0), 0);
        check_proof((const uint8_t(*)[32])proof, n, &vecs[i]);
        assert_int_equal(evlog_tree_hash(mem_hash, &t, vecs[i].b, root, NULL, 0), 0);
        const uint8_t(*p)[32] = (const uint8_t(*)[32])proof;
        const uint8_t *leaf = std_leaf_hashes[vecs[i].a];
        assert_int_equal(evlog_verify_inclusion(vecs[i].a, vecs[i].b, leaf, p, n, root), 0);
        /* transparency-dev/merkle verify_test.go negative cases */
        if (vecs[i].a > 0) {
            assert_int_not_equal(evlog_verify_inclusion(vecs[i].a - 1, vecs[i].b, leaf, p, n, root),
                                 0);
        }
        assert_int_not_equal(evlog_verify_inclusion(vecs[i].a + 1, vecs[i].b, leaf, p, n, root), 0);
        assert_int_not_equal(evlog_verify_inclusion(vecs[i].a, vecs[i].b * 2, leaf, p, n, root), 0);
        if (vecs[i].b / 2 > vecs[i].a) {
            assert_int_not_equal(evlog_verify_inclusion(vecs[i].a, vecs[i].b / 2, leaf, p, n, root),
                                 0);
        }
        uint8_t ext[EVLOG_PROOF_MAX + 1][32];
        memcpy(ext, proof, n * 32);
        memset(ext[n], 0x42, 32);
        assert_int_not_equal(evlog_verify_inclusion(vecs[i].a, vecs[i].b, leaf,
                                                    (const uint8_t(*)[32])ext, n + 1, root),
                             0);
        memset(ext[0], 0x42, 32);
        memcpy(ext[1], proof, n * 32);
        assert_int_not_equal(evlog_verify_inclusion(vecs[i].a, vecs[i].b, leaf,
                                                    (const uint8_t(*)[32])ext, n + 1, root),
                             0);
        if (n > 0) {
            assert_int_not_equal(evlog_verify_inclusion(vecs[i].a, vecs[i].b, leaf, p, n - 1, root),
                                 0);
            for (size_t k = 0; k < n; k++) {
                memcpy(ext, proof, n * 32);
                ext[k][k % 32] ^= 0x01;
                assert_int_not_equal(evlog_verify_inclusion(vecs[i].a, vecs[i].b, leaf,
                                                            (const uint8_t(*)[32])ext, n, root),
                                     0);
            }
        }
        uint8_t bad[32];
        memcpy(bad, root, 32);
        bad[31] ^= 0x80;
        assert_int_not_equal(evlog_verify_inclusion(vecs[i].a, vecs[i].b, leaf, p, n, bad), 0);
    }
}

static void test_std_consistency(void **state)
{
    (void)state;
    static const struct proof_vec vecs[] = {
        {1, 8, 3, {H_L1, H_N23, H_N47}},
        {6, 8, 3, {H_N45, H_N67, H_N03}},
        {2, 5, 2, {H_N23, H_L4}},
        {6, 7, 3, {H_N45, H_L6, H_N03}},
        {3, 7, 4, {H_L2, H_L3, H_N01, H_X46}},
        {4, 7, 1, {H_X46}},
        {5, 5, 0, {NULL}},
        {0, 6, 0, {NULL}},
    };
    for (size_t i = 0; i < sizeof vecs / sizeof vecs[0]; i++) {
        uint8_t proof[EVLOG_PROOF_MAX][32], r1[32], r2[32];
        size_t n;
        struct mem_tree t = {std_leaf_hashes, vecs[i].b};
        assert_int_equal(
            evlog_prove_consistency(mem_hash, &t, vecs[i].a, vecs[i].b, proof, &n, NULL, 0), 0);
        check_proof((const uint8_t(*)[32])proof, n, &vecs[i]);
        assert_int_equal(evlog_tree_hash(mem_hash, &t, vecs[i].a, r1, NULL, 0), 0);
        assert_int_equal(evlog_tree_hash(mem_hash, &t, vecs[i].b, r2, NULL, 0), 0);
        const uint8_t(*p)[32] = (const uint8_t(*)[32])proof;
        assert_int_equal(evlog_verify_consistency(vecs[i].a, vecs[i].b, r1, r2, p, n), 0);
        if (vecs[i].a == vecs[i].b || vecs[i].a == 0) {
            continue;
        }
        /* swapped roots, truncated, extended, bit flips, empty proof, wrong sizes */
        assert_int_not_equal(evlog_verify_consistency(vecs[i].a, vecs[i].b, r2, r1, p, n), 0);
        assert_int_not_equal(evlog_verify_consistency(vecs[i].a, vecs[i].b, r1, r2, p, n - 1), 0);
        assert_int_not_equal(evlog_verify_consistency(vecs[i].a, vecs[i].b, r1, r2, p, 0), 0);
        assert_int_not_equal(evlog_verify_consistency(vecs[i].a - 1, vecs[i].b, r1, r2, p, n), 0);
        assert_int_not_equal(evlog_verify_consistency(vecs[i].b, vecs[i].a, r1, r2, p, n), 0);
        uint8_t ext[EVLOG_PROOF_MAX + 1][32];
        memcpy(ext, proof, n * 32);
        memset(ext[n], 0x17, 32);
        assert_int_not_equal(evlog_verify_consistency(vecs[i].a, vecs[i].b, r1, r2,
                                                      (const uint8_t(*)[32])ext, n + 1),
                             0);
        for (size_t k = 0; k < n; k++) {
            memcpy(ext, proof, n * 32);
            ext[k][3] ^= 0x04;
            assert_int_not_equal(evlog_verify_consistency(vecs[i].a, vecs[i].b, r1, r2,
                                                          (const uint8_t(*)[32])ext, n),
                                 0);
        }
    }
}

/* All n <= 40, all m: generated proofs verify; a frontier agrees with MTH. */
static void test_exhaustive(void **state)
{
    (void)state;
    uint8_t leaves[40][32];
    for (int i = 0; i < 40; i++) {
        uint8_t b = (uint8_t)i;
        evlog_leaf_hash(&b, 1, leaves[i]);
    }
    uint8_t roots[41][32];
    for (uint64_t n = 0; n <= 40; n++) {
        struct mem_tree t = {leaves, n};
        assert_int_equal(evlog_tree_hash(mem_hash, &t, n, roots[n], NULL, 0), 0);
    }
    for (uint64_t n = 1; n <= 40; n++) {
        struct mem_tree t = {leaves, n};
        for (uint64_t m = 0; m < n; m++) {
            uint8_t proof[EVLOG_PROOF_MAX][32];
            size_t pn;
            assert_int_equal(evlog_prove_inclusion(mem_hash, &t, m, n, proof, &pn, NULL, 0), 0);
            assert_int_equal(
                evlog_verify_inclusion(m, n, leaves[m], (const uint8_t(*)[32])proof, pn, roots[n]),
                0);
            assert_int_not_equal(evlog_verify_inclusion(m, n, leaves[(m + 1) % n],
                                                        (const uint8_t(*)[32])proof, pn, roots[n]),
                                 n == 1 ? 1 : 0);
        }
        for (uint64_t m = 0; m <= n; m++) {
            uint8_t proof[EVLOG_PROOF_MAX][32];
            size_t pn;
            assert_int_equal(evlog_prove_consistency(mem_hash, &t, m, n, proof, &pn, NULL, 0), 0);
            assert_int_equal(
                evlog_verify_consistency(m, n, roots[m], roots[n], (const uint8_t(*)[32])proof, pn),
                0);
        }
    }
}

/* Go x/mod vectors in tests/vectors/tlog-vectors.txt. */
static char *vectors_path(void)
{
    static char path[4096];
    const char *src = getenv("SINKD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/vectors/tlog-vectors.txt", src != NULL ? src : ".");
    return path;
}

static size_t parse_path_list(const char *s, uint8_t out[EVLOG_PROOF_MAX][32])
{
    const char *p = strchr(s, '[');
    assert_non_null(p);
    p++;
    size_t n = 0;
    while (*p != ']') {
        unhex(p, out[n++], 32);
        p += 64;
        if (*p == ',') {
            p++;
        }
    }
    return n;
}

static void test_go_vectors(void **state)
{
    (void)state;
    enum { N = 1100 };
    static uint8_t leaves[N][32];
    for (int i = 0; i < N; i++) {
        char e[64];
        int len = snprintf(e, sizeof e, "sinkd test entry %d\n", i);
        evlog_leaf_hash((const uint8_t *)e, (size_t)len, leaves[i]);
    }
    FILE *f = fopen(vectors_path(), "r");
    assert_non_null(f);
    char line[8192];
    int roots = 0, incl = 0, cons = 0, paths = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        unsigned long long a, b;
        char hex[65], pbuf[128];
        unsigned L, W;
        uint8_t proof[EVLOG_PROOF_MAX][32], want[EVLOG_PROOF_MAX][32];
        size_t n;
        if (sscanf(line, "root size=%llu %64s", &a, hex) == 2) {
            uint8_t root[32];
            struct mem_tree t = {leaves, a};
            assert_int_equal(evlog_tree_hash(mem_hash, &t, a, root, NULL, 0), 0);
            assert_hex(root, hex);
            roots++;
        } else if (sscanf(line, "leaf_hash entry=%llu %64s", &a, hex) == 2) {
            assert_hex(leaves[a], hex);
        } else if (sscanf(line, "inclusion index=%llu size=%llu", &a, &b) == 2) {
            struct mem_tree t = {leaves, b};
            assert_int_equal(evlog_prove_inclusion(mem_hash, &t, a, b, proof, &n, NULL, 0), 0);
            size_t wn = parse_path_list(line, want);
            assert_int_equal(n, wn);
            assert_memory_equal(proof, want, n * 32);
            incl++;
        } else if (sscanf(line, "consistency old=%llu new=%llu", &a, &b) == 2) {
            struct mem_tree t = {leaves, b};
            assert_int_equal(evlog_prove_consistency(mem_hash, &t, a, b, proof, &n, NULL, 0), 0);
            size_t wn = parse_path_list(line, want);
            assert_int_equal(n, wn);
            assert_memory_equal(proof, want, n * 32);
            uint8_t r1[32], r2[32];
            evlog_tree_hash(mem_hash, &t, a, r1, NULL, 0);
            evlog_tree_hash(mem_hash, &t, b, r2, NULL, 0);
            assert_int_equal(evlog_verify_consistency(a, b, r1, r2, (const uint8_t(*)[32])proof, n),
                             0);
            cons++;
        } else if (sscanf(line, "tile_path L=%u N=%llu W=%u %127s", &L, &a, &W, pbuf) == 4) {
            char got[128], want_c2sp[128];
            assert_true(evlog_tile_path((int)L, a, W, got, sizeof got) > 0);
            /* Go paths carry the height: tile/8/... ; C2SP drops it (TLOG.md §4). */
            assert_int_equal(strncmp(pbuf, "tile/8/", 7), 0);
            snprintf(want_c2sp, sizeof want_c2sp, "tile/%s", pbuf + 7);
            assert_string_equal(got, want_c2sp);
            paths++;
        }
    }
    fclose(f);
    assert_int_equal(roots, 18);
    assert_int_equal(incl, 6);
    assert_int_equal(cons, 6);
    assert_int_equal(paths, 5);
}

static void test_tile_paths(void **state)
{
    (void)state;
    char p[128];
    evlog_tile_path(0, 0, 256, p, sizeof p);
    assert_string_equal(p, "tile/0/000");
    evlog_tile_path(0, 1000, 256, p, sizeof p);
    assert_string_equal(p, "tile/0/x001/000");
    evlog_tile_path(3, 1234067, 256, p, sizeof p);
    assert_string_equal(p, "tile/3/x001/x234/067");
    evlog_tile_path(0, 123456789, 17, p, sizeof p);
    assert_string_equal(p, "tile/0/x123/x456/789.p/17");
    evlog_tile_path(EVLOG_TILE_ENTRIES, 3, 232, p, sizeof p);
    assert_string_equal(p, "tile/entries/003.p/232");
    assert_true(evlog_tile_path(0, 1, 0, p, sizeof p) < 0);
    assert_true(evlog_tile_path(0, 1, 257, p, sizeof p) < 0);
    assert_true(evlog_tile_path(64, 1, 3, p, sizeof p) < 0);
    assert_true(evlog_tile_path(0, 1, 3, p, 5) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_std_leaves_and_roots, setup_std),
        cmocka_unit_test_setup(test_std_inclusion, setup_std),
        cmocka_unit_test_setup(test_std_consistency, setup_std),
        cmocka_unit_test(test_exhaustive),
        cmocka_unit_test(test_go_vectors),
        cmocka_unit_test(test_tile_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
