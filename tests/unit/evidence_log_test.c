/* evidence_log_test.c -- the append side: tiles against the TLOG.md / x/mod vectors, group
 * commit, the reader, recovery from torn tails and inconsistent checkpoints, a failed journal
 * write (retryable) and a failing tile writer (no checkpoint without its tiles). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "evidence/log.h"
#include "evlog_fixture.h"

static char *make_state(void)
{
    return evlog_fixture_state("evidence_log_test");
}

static void rm_rf(const char *dir)
{
    evlog_fixture_rm(dir);
}

static int file_sha256(const char *dir, const char *rel, char hex[65], long *size)
{
    char path[512];
    snprintf(path, sizeof path, "%s/log/%s", dir, rel);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return -1;
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    uint8_t h[32];
    SHA256(buf, n, h);
    for (int i = 0; i < 32; i++) {
        sprintf(hex + 2 * i, "%02x", h[i]);
    }
    *size = (long)n;
    return 0;
}

static void assert_file(const char *dir, const char *rel, long size, const char *sha)
{
    char hex[65];
    long got;
    if (file_sha256(dir, rel, hex, &got) != 0) {
        fail_msg("missing %s", rel);
    }
    assert_int_equal(got, size);
    assert_string_equal(hex, sha);
}

static struct evlog *open_log(const char *dir)
{
    struct evlog *log;
    char err[512];
    struct evlog_options opt = {.origin = "example.com/testlog"};
    int rc = evlog_open(&log, dir, &opt, NULL, err, sizeof err);
    if (rc != 0) {
        fail_msg("open: %s", err);
    }
    return log;
}

/* TLOG.md §4: the 8-leaf test tree and the 1000-entry log. */
static void test_tlog_md_tiles(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir);
    static const char *leaves[8] = {
        "",
        "\x00",
        "\x10",
        "\x20\x21",
        "\x30\x31",
        "\x40\x41\x42\x43",
        "\x50\x51\x52\x53\x54\x55\x56\x57",
        "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"};
    static const size_t lens[8] = {0, 1, 1, 2, 2, 4, 8, 16};
    for (int i = 0; i < 8; i++) {
        assert_int_equal(evlog_append(log, (const uint8_t *)leaves[i], lens[i], NULL), 0);
    }
    char err[256];
    assert_int_equal(evlog_checkpoint(log, 1, err, sizeof err), 1);
    assert_file(dir, "tile/0/000.p/8", 256,
                "aea2f1bbb5140fd5f8eacb503fdf54c00c3d860c72588e40233addd416bc8f10");
    static const uint8_t bundle[] = {0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x10, 0x00, 0x02,
                                     0x20, 0x21, 0x00, 0x02, 0x30, 0x31, 0x00, 0x04, 0x40, 0x41,
                                     0x42, 0x43, 0x00, 0x08, 0x50, 0x51, 0x52, 0x53, 0x54, 0x55,
                                     0x56, 0x57, 0x00, 0x10, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65,
                                     0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f};
    char bp[256];
    snprintf(bp, sizeof bp, "%s/log/tile/entries/000.p/8", dir);
    FILE *bf = fopen(bp, "rb");
    assert_non_null(bf);
    uint8_t got[128];
    assert_int_equal(fread(got, 1, sizeof got, bf), sizeof bundle);
    fclose(bf);
    assert_memory_equal(got, bundle, sizeof bundle);
    /* Example B of TLOG.md: the checkpoint file is that exact signed note. */
    const char *cpb =
        "example.com/testlog\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
        "\xe2\x80\x94 example.com/testlog OBSjYCxDpu8fyr7NuKXgNXWu25Ks4wrlnX0eQ6wwwqxrq"
        "024FLZEvzeTT+bFbmvjSu2f7p78iGvweJAOSG9YRH8huA0=\n";
    char cpp[256], note[1024];
    snprintf(cpp, sizeof cpp, "%s/log/checkpoint", dir);
    bf = fopen(cpp, "rb");
    assert_non_null(bf);
    size_t nn = fread(note, 1, sizeof note - 1, bf);
    fclose(bf);
    note[nn] = '\0';
    assert_string_equal(note, cpb);
    snprintf(cpp, sizeof cpp, "%s/log/checkpoints/8", dir);
    assert_int_equal(access(cpp, F_OK), 0);
    snprintf(cpp, sizeof cpp, "%s/log/checkpoints/0", dir); /* published at first open */
    assert_int_equal(access(cpp, F_OK), 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);

    dir = make_state();
    log = open_log(dir);
    for (int i = 0; i < 1000; i++) {
        char e[8];
        int n = snprintf(e, sizeof e, "%d", i);
        uint64_t idx;
        assert_int_equal(evlog_append(log, (const uint8_t *)e, (size_t)n, &idx), 0);
        assert_int_equal(idx, (uint64_t)i);
        if (i % 97 == 0) {
            assert_int_equal(evlog_commit(log, err, sizeof err), 0);
        }
    }
    assert_int_equal(evlog_checkpoint(log, 1, err, sizeof err), 1);
    assert_int_equal(evlog_size(log), 1000);
    assert_file(dir, "tile/0/000", 8192,
                "b9704a8bfbee2c61185ceb38904a49f3f703c81e194b5b2ccdc254c2bdaaa62b");
    assert_file(dir, "tile/0/001", 8192,
                "7fa38f76670ec457da625d72c7308a2ff9a6840c7aadd930c35dcd113e270ea6");
    assert_file(dir, "tile/0/002", 8192,
                "79146a292281f1bbd7d731620f2afab9ff699f4accb8610958fb35c850b44509");
    assert_file(dir, "tile/0/003.p/232", 7424,
                "f7e68f240d21b6b483d83c06c072aad13843d6719c78b1120e1faed55395be82");
    assert_file(dir, "tile/1/000.p/3", 96,
                "2bcffebcff63f75d3844eaf07a17e05634b92cf94f63756d6b7add7e9a7882a8");
    assert_file(dir, "tile/entries/000", 1170,
                "94693d5c6d6a0355ec07bac8214516c1ce6a5100b0588f226fd95f26571157d7");
    assert_file(dir, "tile/entries/001", 1280,
                "5fe4aac99b8684b6be75ab07d873a303403af4572a90b57ade35cd9e6fa15dbd");
    assert_file(dir, "tile/entries/002", 1280,
                "12351eddf5dcc0f732428490c084036af6790804a5aeadb7ea584439a01e5f35");
    assert_file(dir, "tile/entries/003.p/232", 1160,
                "2f8721f57382a46f7a5b47367af3d2b29ef86bf281ee3605c6be140565924a17");
    char path[256];
    snprintf(path, sizeof path, "%s/log/tile/2", dir);
    assert_int_not_equal(access(path, F_OK), 0); /* no level-2 tile below 65536 entries */
    uint8_t root[32];
    evlog_root(log, root);
    static const uint8_t want[32] = {0x63, 0x8a, 0xfa, 0x98, 0x02, 0x29, 0x25, 0xba,
                                     0xcf, 0xdd, 0xad, 0xb1, 0x5e, 0xf2, 0x2f, 0xd0,
                                     0x19, 0x9c, 0x1a, 0xc9, 0x9c, 0x29, 0x73, 0xb6,
                                     0x15, 0x82, 0x43, 0xd1, 0x3f, 0xce, 0x05, 0xc2};
    assert_memory_equal(root, want, 32);
    /* The tile reader reproduces the root and proofs from the files alone. */
    struct evlog_tile_reader *tr;
    assert_int_equal(evlog_tile_reader_open(&tr, "", 1000, NULL, 0), 0);
    evlog_tile_reader_close(tr);
    char ld[128];
    snprintf(ld, sizeof ld, "%s/log", dir);
    assert_int_equal(evlog_tile_reader_open(&tr, ld, 1000, NULL, 0), 0);
    uint8_t r2[32], proof[EVLOG_PROOF_MAX][32];
    assert_int_equal(evlog_tree_hash(evlog_tile_reader_hash, tr, 1000, r2, err, sizeof err), 0);
    assert_memory_equal(r2, want, 32);
    size_t pn;
    assert_int_equal(
        evlog_prove_inclusion(evlog_tile_reader_hash, tr, 777, 1000, proof, &pn, err, sizeof err),
        0);
    assert_int_equal(pn, 10); /* TLOG.md: Go's ProveRecord gives 10 hashes */
    uint8_t leaf[32];
    evlog_leaf_hash((const uint8_t *)"777", 3, leaf);
    assert_int_equal(evlog_verify_inclusion(777, 1000, leaf, (const uint8_t(*)[32])proof, pn, root),
                     0);
    evlog_tile_reader_close(tr);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
}

/* tests/vectors/tlog-vectors.txt tile_data_sha256: full tiles and partial tiles at every width
 * (x/mod computed them). Each partial tile is checked right after the checkpoint at its size. */
static void test_go_tile_vectors(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir);
    char err[256];
    struct {
        unsigned L, N, W;
        char hex[65];
        uint64_t size;
    } vec[128];
    int nvec = 0;
    const char *src = getenv("SINKD_SOURCE_DIR");
    char vp[512];
    snprintf(vp, sizeof vp, "%s/tests/vectors/tlog-vectors.txt", src ? src : ".");
    FILE *f = fopen(vp, "r");
    assert_non_null(f);
    char line[512];
    while (fgets(line, sizeof line, f) != NULL && nvec < 128) {
        if (sscanf(line, "tile_data_sha256 L=%u N=%u W=%u %64s", &vec[nvec].L, &vec[nvec].N,
                   &vec[nvec].W, vec[nvec].hex) == 4) {
            /* the tree size at which this tile (at this width) is the newest one */
            uint64_t unit = vec[nvec].L == 0 ? 1 : 256;
            vec[nvec].size = ((uint64_t)vec[nvec].N * 256 + vec[nvec].W) * unit;
            nvec++;
        }
    }
    fclose(f);
    assert_int_equal(nvec, 84);
    int checked = 0;
    for (int i = 0; i < 1100; i++) {
        char e[64];
        int n = snprintf(e, sizeof e, "sinkd test entry %d\n", i);
        assert_int_equal(evlog_append(log, (const uint8_t *)e, (size_t)n, NULL), 0);
        uint64_t size = (uint64_t)i + 1;
        for (int v = 0; v < nvec; v++) {
            if (vec[v].size != size) {
                continue;
            }
            assert_true(evlog_checkpoint(log, 1, err, sizeof err) >= 0);
            char rel[64], hex[65];
            long sz;
            evlog_tile_path((int)vec[v].L, vec[v].N, vec[v].W, rel, sizeof rel);
            if (file_sha256(dir, rel, hex, &sz) != 0) {
                fail_msg("missing %s at size %llu", rel, (unsigned long long)size);
            }
            assert_int_equal(sz, (long)vec[v].W * 32);
            assert_string_equal(hex, vec[v].hex);
            checked++;
        }
    }
    assert_int_equal(checked, 84);
    /* Partial tiles superseded by a full tile are removed (C2SP allows it); the full one stays. */
    char path[256];
    snprintf(path, sizeof path, "%s/log/tile/0/003.p", dir);
    assert_int_not_equal(access(path, F_OK), 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
}

static void append_n(struct evlog *log, int from, int n)
{
    for (int i = from; i < from + n; i++) {
        char e[64];
        int len = snprintf(e, sizeof e, "entry %d", i);
        assert_int_equal(evlog_append(log, (const uint8_t *)e, (size_t)len, NULL), 0);
    }
}

/* The reader returns exactly the durable entries, in order, and later ones as they commit. */
static void test_reader(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir);
    char err[256];
    append_n(log, 0, 300);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    append_n(log, 300, 5); /* staged only: must not be visible */
    struct evlog_reader *r;
    assert_int_equal(evlog_reader_open(&r, dir, 0, err, sizeof err), 0);
    const uint8_t *e;
    size_t len;
    uint64_t idx;
    for (int i = 0; i < 300; i++) {
        assert_int_equal(evlog_reader_next(r, &e, &len, &idx, err, sizeof err), 1);
        char want[64];
        int n = snprintf(want, sizeof want, "entry %d", i);
        assert_int_equal(idx, (uint64_t)i);
        assert_int_equal(len, (size_t)n);
        assert_memory_equal(e, want, len);
    }
    assert_int_equal(evlog_reader_next(r, &e, &len, &idx, err, sizeof err), 0);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    assert_int_equal(evlog_reader_next(r, &e, &len, &idx, err, sizeof err), 1);
    assert_int_equal(idx, 300);
    evlog_reader_close(r);
    /* start in the middle of a batch */
    assert_int_equal(evlog_reader_open(&r, dir, 299, err, sizeof err), 0);
    assert_int_equal(evlog_reader_next(r, &e, &len, &idx, err, sizeof err), 1);
    assert_int_equal(idx, 299);
    assert_memory_equal(e, "entry 299", 9);
    evlog_reader_close(r);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
}

/* A batch header whose payload length wraps the batch size to 0 (plen = 2^64 - 72) is damage:
 * the reader reports it instead of taking an unparsed batch (garbage first index and count). */
static void test_reader_wrapping_length(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir);
    char err[256];
    append_n(log, 0, 3);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    char p[256];
    snprintf(p, sizeof p, "%s/journal/wal", dir);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    /* journal header 16 bytes, then the batch header: BTCH, count, first, payload length */
    static const uint8_t plen[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xb8};
    assert_int_equal(fseek(f, 16 + 16, SEEK_SET), 0);
    assert_int_equal(fwrite(plen, 1, sizeof plen, f), sizeof plen);
    fclose(f);
    struct evlog_reader *r;
    assert_int_equal(evlog_reader_open(&r, dir, 0, err, sizeof err), 0);
    const uint8_t *e;
    size_t len;
    uint64_t idx;
    assert_int_equal(evlog_reader_next(r, &e, &len, &idx, err, sizeof err), EVLOG_ECORRUPT);
    assert_non_null(strstr(err, "bad batch at byte 16"));
    evlog_reader_close(r);
    rm_rf(dir);
}

static long wal_size(const char *dir)
{
    char p[256];
    struct stat st;
    snprintf(p, sizeof p, "%s/journal/wal", dir);
    assert_int_equal(stat(p, &st), 0);
    return (long)st.st_size;
}

static void truncate_wal(const char *dir, long len)
{
    char p[256];
    snprintf(p, sizeof p, "%s/journal/wal", dir);
    assert_int_equal(truncate(p, len), 0);
}

/* kill -9 during a commit leaves a prefix of the last batch: every such prefix is cut on open,
 * the tree equals the previous durable one and stays consistent with published checkpoints. */
static void test_recovery_torn_tail(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    struct evlog *log = open_log(dir);
    append_n(log, 0, 600);
    assert_int_equal(evlog_checkpoint(log, 1, err, sizeof err), 1);
    append_n(log, 600, 7);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    uint8_t root607[32];
    evlog_root(log, root607);
    long before = wal_size(dir);
    append_n(log, 607, 11);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    long after = wal_size(dir);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    /* the close published checkpoint 618; remove it so a cut to 607 is legal */
    char p[256];
    snprintf(p, sizeof p, "%s/log/checkpoints/618", dir);
    assert_int_equal(unlink(p), 0);
    snprintf(p, sizeof p, "%s/log/checkpoint", dir);
    assert_int_equal(unlink(p), 0);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf %s.snap && cp -a %s %s.snap", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    for (long cut = before; cut < after; cut++) {
        snprintf(cmd, sizeof cmd, "rm -rf %s && cp -a %s.snap %s", dir, dir, dir);
        assert_int_equal(system(cmd), 0);
        truncate_wal(dir, cut);
        struct evlog *l2;
        struct evlog_recovery rec;
        struct evlog_options opt = {.origin = "example.com/testlog"};
        int rc = evlog_open(&l2, dir, &opt, &rec, err, sizeof err);
        if (rc != 0) {
            fail_msg("cut at %ld: %s", cut, err);
        }
        assert_int_equal(rec.size, 607);
        assert_int_equal(rec.cut_bytes, (uint64_t)(cut - before));
        uint8_t r[32];
        evlog_root(l2, r);
        assert_memory_equal(r, root607, 32);
        assert_int_equal(wal_size(dir), before);
        /* the recovered log keeps working */
        append_n(l2, 607, 1);
        assert_int_equal(evlog_commit(l2, err, sizeof err), 0);
        assert_int_equal(evlog_size(l2), 608);
        assert_int_equal(evlog_close(l2, err, sizeof err), 0);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s.snap", dir);
    assert_int_equal(system(cmd), 0);
    rm_rf(dir);
}

static void expect_refuse(const char *dir, const char *what)
{
    struct evlog *l2;
    char err[512] = "";
    struct evlog_options opt = {.origin = "example.com/testlog"};
    int rc = evlog_open(&l2, dir, &opt, NULL, err, sizeof err);
    if (rc == 0) {
        fail_msg("%s: open accepted it", what);
    }
    assert_true(strlen(err) > 10);
}

/* One writer per journal (issue 19 #3): a second open while the first is open is refused and
 * leaves the first working; once the first is closed the log opens again. */
static void test_one_writer(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir);
    append_n(log, 0, 3);
    char err[512] = "";
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    struct evlog *second = NULL;
    struct evlog_options opt = {.origin = "example.com/testlog"};
    assert_int_not_equal(evlog_open(&second, dir, &opt, NULL, err, sizeof err), 0);
    assert_non_null(strstr(err, "open by another writer"));
    append_n(log, 3, 1);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    log = open_log(dir);
    assert_int_equal(evlog_size(log), 4);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
}

/* Recovery never accepts what it cannot explain as a torn tail. */
static void test_recovery_refuses(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512], cmd[512];
    struct evlog *log = open_log(dir);
    append_n(log, 0, 300);
    assert_int_equal(evlog_checkpoint(log, 1, err, sizeof err), 1);
    long mid = wal_size(dir);
    append_n(log, 300, 50);
    assert_int_equal(evlog_close(log, err, sizeof err), 0); /* checkpoint 350 */
    snprintf(cmd, sizeof cmd, "cp -a %s %s.snap", dir, dir);
    assert_int_equal(system(cmd), 0);

    /* 1. journal shorter than a published checkpoint */
    truncate_wal(dir, mid + 10);
    expect_refuse(dir, "journal behind checkpoint 350");

    /* 2. a validly signed checkpoint whose root disagrees with the journal */
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -a %s.snap %s", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    struct evlog_signer s;
    const char *sk = PN_SKEY;
    assert_int_equal(evlog_signer_parse(sk, strlen(sk), &s, NULL, 0), 0);
    struct evlog_checkpoint cp = {.origin = "example.com/testlog", .size = 200};
    memset(cp.root, 0x5a, 32);
    char text[256], note[1024], path[256];
    int tl = evlog_checkpoint_format(&cp, text, sizeof text);
    int nl = evlog_note_sign(&s, text, (size_t)tl, note, sizeof note, NULL, 0);
    snprintf(path, sizeof path, "%s/log/checkpoints/200", dir);
    FILE *f = fopen(path, "w");
    fwrite(note, 1, (size_t)nl, f);
    fclose(f);
    expect_refuse(dir, "forged checkpoint 200");

    /* 3. a checkpoint with a bad signature */
    snprintf(cmd, sizeof cmd,
             "rm -rf %s && cp -a %s.snap %s && sed -i 's/^350$/351/' %s/log/checkpoints/350", dir,
             dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    expect_refuse(dir, "checkpoint with a broken signature");

    /* 4. a flipped byte inside an earlier (complete) batch */
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -a %s.snap %s", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/journal/wal", dir);
    f = fopen(path, "r+b");
    fseek(f, 200, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 200, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
    expect_refuse(dir, "flipped byte in batch 1");

    /* 5. garbage appended after the last batch is damage, not a torn tail */
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -a %s.snap %s && printf 'garbage' >> %s/journal/wal",
             dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    expect_refuse(dir, "garbage tail");

    /* and the untouched copy opens */
    snprintf(cmd, sizeof cmd, "rm -rf %s && cp -a %s.snap %s", dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    log = open_log(dir);
    assert_int_equal(evlog_size(log), 350);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s.snap", dir);
    assert_int_equal(system(cmd), 0);
    rm_rf(dir);
}

static void verify_log(const char *dir, uint64_t want_entries)
{
    char path[256], err[512];
    struct evlog_verifier v;
    snprintf(path, sizeof path, "%s/log", dir);
    struct evlog_signer s;
    assert_int_equal(evlog_signer_parse(PN_SKEY, strlen(PN_SKEY), &s, NULL, 0), 0);
    evlog_signer_verifier(&s, &v);
    struct evlog_verify_report rep;
    if (evlog_verify_dir(path, &v, &rep, err, sizeof err) != 0) {
        fail_msg("verify: %s", err);
    }
    assert_int_equal(rep.entries, want_entries);
}

/* A journal write that fails (here: RLIMIT_FSIZE, as a full disk would) changes nothing: the
 * batch stays staged, the tree and the tiles it would have completed are rolled back, and the
 * commit succeeds once space returns. The batch crosses two tile boundaries. */
static void test_commit_retry_after_write_failure(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    struct evlog *log = open_log(dir);
    append_n(log, 0, 250);
    assert_int_equal(evlog_checkpoint(log, 1, err, sizeof err), 1);
    uint8_t root250[32];
    evlog_root(log, root250);
    append_n(log, 250, 300);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)wal_size(dir) + 100;
    signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    assert_int_equal(evlog_commit(log, err, sizeof err), EVLOG_EIO);
    assert_int_equal(evlog_commit(log, err, sizeof err), EVLOG_EIO);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, SIG_DFL);
    assert_int_equal(evlog_size(log), 250);
    assert_int_equal(evlog_staged(log), 300);
    uint8_t r[32];
    evlog_root(log, r);
    assert_memory_equal(r, root250, 32);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    assert_int_equal(evlog_size(log), 550);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    verify_log(dir, 550);
    log = open_log(dir);
    assert_int_equal(evlog_size(log), 550);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
}

/* A torn last batch that crossed a tile boundary is cut, and the entries written after it
 * produce correct tiles and bundles (the rollback restores the buffers the batch replaced). */
static void test_torn_batch_across_tiles(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    long before = 0;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* a writer that dies without closing (kill -9 after the commit) */
        struct evlog *log;
        struct evlog_options opt = {.origin = "example.com/testlog"};
        if (evlog_open(&log, dir, &opt, NULL, err, sizeof err) != 0) {
            _exit(1);
        }
        for (int i = 0; i < 270; i++) {
            char e[64];
            int n = snprintf(e, sizeof e, "first %d", i);
            evlog_append(log, (const uint8_t *)e, (size_t)n, NULL);
            if (i == 249 && evlog_checkpoint(log, 1, err, sizeof err) != 1) {
                _exit(2);
            }
        }
        _exit(evlog_commit(log, err, sizeof err) == 0 ? 0 : 3);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* damage the last entry of the last batch: its commit root no longer matches */
    long len = wal_size(dir);
    char p[256];
    snprintf(p, sizeof p, "%s/journal/wal", dir);
    FILE *f = fopen(p, "r+b");
    assert_non_null(f);
    fseek(f, len - 48 - 1, SEEK_SET);
    fputc('X', f);
    fclose(f);
    struct evlog *log;
    struct evlog_recovery rec;
    struct evlog_options opt = {.origin = "example.com/testlog"};
    if (evlog_open(&log, dir, &opt, &rec, err, sizeof err) != 0) {
        fail_msg("open: %s", err);
    }
    before = len - (long)rec.cut_bytes;
    assert_true(rec.cut_bytes > 0);
    assert_int_equal(wal_size(dir), before);
    assert_int_equal(evlog_size(log), 250);
    append_n(log, 250, 300);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    verify_log(dir, 550);
    rm_rf(dir);
}

/* The tile writer cannot write (tile/entries is a file): commits still succeed and readers see
 * every committed entry, but no checkpoint is published without its tiles; once the obstacle
 * is gone the writer's retry publishes it. */
static void test_tile_writer_failure(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512], path[256];
    struct evlog *log = open_log(dir);
    snprintf(path, sizeof path, "%s/log/tile/entries", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fclose(f);
    append_n(log, 0, 300);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    assert_true(evlog_checkpoint(log, 1, err, sizeof err) < 0);
    assert_non_null(strstr(err, "tile/entries"));
    /* reported to the server's loop, once per failed attempt */
    assert_true(evlog_maybe_checkpoint(log, 1, err, sizeof err) < 0);
    assert_int_equal(evlog_maybe_checkpoint(log, 1, err, sizeof err), 0);
    append_n(log, 300, 10);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    struct evlog_reader *r;
    assert_int_equal(evlog_reader_open(&r, dir, 0, err, sizeof err), 0);
    const uint8_t *e;
    size_t len;
    uint64_t idx;
    int got = 0;
    while (evlog_reader_next(r, &e, &len, &idx, err, sizeof err) == 1) {
        got++;
    }
    evlog_reader_close(r);
    assert_int_equal(got, 310);
    char cp[256], note[1024];
    snprintf(cp, sizeof cp, "%s/log/checkpoint", dir);
    f = fopen(cp, "rb");
    assert_non_null(f);
    size_t nn = fread(note, 1, sizeof note - 1, f);
    fclose(f);
    note[nn] = '\0';
    assert_non_null(strstr(note, "\n0\n")); /* still the empty tree */
    assert_int_equal(unlink(path), 0);
    int rc = -1;
    for (int i = 0; i < 50 && rc < 0; i++) {
        usleep(100 * 1000);
        rc = evlog_checkpoint(log, 2, err, sizeof err);
    }
    if (rc < 0) {
        fail_msg("tile writer did not recover: %s", err);
    }
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    verify_log(dir, 310);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tlog_md_tiles),
        cmocka_unit_test(test_go_tile_vectors),
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_reader_wrapping_length),
        cmocka_unit_test(test_recovery_torn_tail),
        cmocka_unit_test(test_recovery_refuses),
        cmocka_unit_test(test_one_writer),
        cmocka_unit_test(test_commit_retry_after_write_failure),
        cmocka_unit_test(test_torn_batch_across_tiles),
        cmocka_unit_test(test_tile_writer_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
