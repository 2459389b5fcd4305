/* evidence_compact_test.c -- journal compaction: entries whose full entry bundles are on disk
 * under a published checkpoint leave the journal (punched out); readers (also one that was
 * inside the punched bytes) and recovery read on from journal/base and the bundles; a damaged
 * or missing base, or hash tiles that do not lead to the journal's commit root, are refused. */
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

#include "evidence/log.h"
#include "evlog_fixture.h"

static char *make_state(void)
{
    return evlog_fixture_state("evidence_compact_test");
}

static void rm_rf(const char *dir)
{
    evlog_fixture_rm(dir);
}

static int open_log(struct evlog **log, const char *dir, uint64_t compact_bytes, char *err,
                    size_t errlen)
{
    struct evlog_options opt = {.origin = "example.com/testlog",
                                .seal_off = true,
                                .checkpoint_entries = 1,
                                .compact_bytes = compact_bytes};
    return evlog_open(log, dir, &opt, NULL, err, errlen);
}

/* Entry i: its index and a length that varies with it (bundles of uneven entries). */
static size_t entry_bytes(uint64_t i, char *out, size_t cap)
{
    int n = snprintf(out, cap, "entry %llu ", (unsigned long long)i);
    size_t len = (size_t)n + i % 97;
    memset(out + n, 'a' + (int)(i % 26), len - (size_t)n);
    return len;
}

/* Appends entries [from, to) in committed batches of 37 (of 1000 past entry 5000, to keep the
 * fdatasyncs few). */
static void append_range(struct evlog *log, uint64_t from, uint64_t to)
{
    char err[256], e[256];
    for (uint64_t i = from; i < to; i++) {
        uint64_t idx;
        assert_int_equal(evlog_append(log, (uint8_t *)e, entry_bytes(i, e, sizeof e), &idx), 0);
        assert_int_equal(idx, i);
        if (i < 5000 ? i % 37 == 36 : i % 1000 == 999) {
            assert_int_equal(evlog_commit(log, err, sizeof err), 0);
        }
    }
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
}

/* Publishes a checkpoint and waits for it, then lets the checkpoint policy run once (which
 * compacts up to it when due). Returns what evlog_maybe_checkpoint returned. */
static int checkpoint_then_compact(struct evlog *log, uint64_t next, char *err, size_t errlen)
{
    assert_true(evlog_checkpoint(log, 1, err, errlen) >= 0);
    append_range(log, next, next + 1);
    int rc = evlog_maybe_checkpoint(log, 2, err, errlen);
    char e2[256];
    assert_true(evlog_checkpoint(log, 3, e2, sizeof e2) >= 0);
    return rc;
}

static void expect_entries(struct evlog_reader *r, uint64_t from, uint64_t to)
{
    char err[256], want[256];
    for (uint64_t i = from; i < to; i++) {
        const uint8_t *e;
        size_t len;
        uint64_t idx;
        int rc = evlog_reader_next(r, &e, &len, &idx, err, sizeof err);
        if (rc != 1) {
            fail_msg("entry %llu: reader returned %d: %s", (unsigned long long)i, rc, err);
        }
        assert_int_equal(idx, i);
        size_t wl = entry_bytes(i, want, sizeof want);
        assert_int_equal(len, wl);
        assert_memory_equal(e, want, wl);
    }
}

static void read_all(const char *dir, uint64_t from, uint64_t to)
{
    char err[256];
    struct evlog_reader *r;
    if (evlog_reader_open(&r, dir, from, err, sizeof err) != 0) {
        fail_msg("reader: %s", err);
    }
    expect_entries(r, from, to);
    const uint8_t *e;
    size_t len;
    uint64_t idx;
    assert_int_equal(evlog_reader_next(r, &e, &len, &idx, err, sizeof err), 0);
    evlog_reader_close(r);
}

static bool file_exists(const char *dir, const char *rel)
{
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    struct stat st;
    return stat(p, &st) == 0;
}

/* Bytes the journal occupies on disk, and its length. */
static void journal_size(const char *dir, uint64_t *disk, uint64_t *length)
{
    char p[256];
    snprintf(p, sizeof p, "%s/journal/wal", dir);
    struct stat st;
    assert_int_equal(stat(p, &st), 0);
    *disk = (uint64_t)st.st_blocks * 512;
    *length = (uint64_t)st.st_size;
}

/* evlog_verify_dir (what `sinkd verify` runs) over the state directory's log/. */
static int verify_log(const char *dir, char *err, size_t errlen)
{
    char ldir[128];
    snprintf(ldir, sizeof ldir, "%s/log", dir);
    struct evlog_signer sk;
    struct evlog_verifier v;
    assert_int_equal(evlog_signer_parse(PN_SKEY, strlen(PN_SKEY), &sk, err, errlen), 0);
    evlog_signer_verifier(&sk, &v);
    struct evlog_verify_report rep;
    return evlog_verify_dir(ldir, &v, &rep, err, errlen);
}

static void test_compact_read_reopen(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    struct evlog *log;
    assert_int_equal(open_log(&log, dir, 1, err, sizeof err), 0);
    append_range(log, 0, 3000);
    /* A reader inside what compaction will punch out, mid-batch. */
    struct evlog_reader *early;
    assert_int_equal(evlog_reader_open(&early, dir, 0, err, sizeof err), 0);
    expect_entries(early, 0, 100);
    assert_false(file_exists(dir, "journal/base"));
    int rc = checkpoint_then_compact(log, 3000, err, sizeof err);
    if (rc < 0) {
        fail_msg("compaction: %s", err);
    }
    assert_true(file_exists(dir, "journal/base"));
    uint64_t disk, length;
    journal_size(dir, &disk, &length);
    /* 3000 entries of 8..104 bytes: ~190 KB of journal; the base is at 2816, so the live part
     * holds fewer than 256 entries (+ the base's batch). */
    assert_true(length > 150000);
    if (disk > 40000) {
        fail_msg("journal still occupies %llu of its %llu bytes after compaction",
                 (unsigned long long)disk, (unsigned long long)length);
    }
    expect_entries(early, 100, 3001); /* on through the hole: bundles, then the journal */
    evlog_reader_close(early);
    read_all(dir, 0, 3001);
    read_all(dir, 2815, 3001); /* the last bundle entry, then the base's batch */
    read_all(dir, 2816, 3001);
    read_all(dir, 2990, 3001);
    uint8_t root[32];
    evlog_root(log, root);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);

    struct evlog_recovery rec;
    struct evlog_options opt = {.origin = "example.com/testlog",
                                .seal_off = true,
                                .checkpoint_entries = 1,
                                .compact_bytes = 1};
    if (evlog_open(&log, dir, &opt, &rec, err, sizeof err) != 0) {
        fail_msg("reopen: %s", err);
    }
    assert_int_equal(rec.base, 2816);
    assert_int_equal(rec.size, 3001);
    uint8_t again[32];
    evlog_root(log, again);
    assert_memory_equal(root, again, 32);
    /* The tree goes on correctly from the base: more entries, a second compaction, reopen. */
    append_range(log, 3001, 70000);
    rc = checkpoint_then_compact(log, 70000, err, sizeof err);
    if (rc < 0) {
        fail_msg("second compaction: %s", err);
    }
    evlog_root(log, root);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    if (evlog_open(&log, dir, &opt, &rec, err, sizeof err) != 0) {
        fail_msg("second reopen: %s", err);
    }
    assert_int_equal(rec.base, 69888);
    evlog_root(log, again);
    assert_memory_equal(root, again, 32);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    read_all(dir, 0, 70001);
    read_all(dir, 65530, 70001);
    /* Every tile made after the reopen from the base (level 1's first full tile among them)
     * agrees with the entries and every checkpoint. */
    if (verify_log(dir, err, sizeof err) != 0) {
        fail_msg("verify: %s", err);
    }
    rm_rf(dir);
}

/* Below the threshold nothing moves; UINT64_MAX never compacts. */
static void test_compact_threshold(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    struct evlog *log;
    assert_int_equal(open_log(&log, dir, 1u << 20, err, sizeof err), 0);
    append_range(log, 0, 3000);
    assert_true(checkpoint_then_compact(log, 3000, err, sizeof err) >= 0);
    assert_false(file_exists(dir, "journal/base"));
    append_range(log, 3001, 25000); /* ~1.4 MB of journal */
    assert_true(checkpoint_then_compact(log, 25000, err, sizeof err) >= 0);
    assert_true(file_exists(dir, "journal/base"));
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    read_all(dir, 0, 25001);
    rm_rf(dir);

    dir = make_state();
    assert_int_equal(open_log(&log, dir, UINT64_MAX, err, sizeof err), 0);
    append_range(log, 0, 12000);
    assert_true(checkpoint_then_compact(log, 12000, err, sizeof err) >= 0);
    assert_false(file_exists(dir, "journal/base"));
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
}

static void corrupt_byte(const char *dir, const char *rel, long at)
{
    evlog_fixture_flip(dir, rel, at);
}

/* A damaged or missing base is refused by the writer and the reader; the journal is not cut. */
static void test_compact_damaged_base(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    struct evlog *log;
    assert_int_equal(open_log(&log, dir, 1, err, sizeof err), 0);
    append_range(log, 0, 3000);
    assert_true(checkpoint_then_compact(log, 3000, err, sizeof err) >= 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    uint64_t disk, length;
    journal_size(dir, &disk, &length);

    corrupt_byte(dir, "journal/base", 40);
    assert_int_equal(open_log(&log, dir, 1, err, sizeof err), EVLOG_ECORRUPT);
    assert_non_null(strstr(err, "journal/base"));
    assert_non_null(strstr(err, "checksum"));
    struct evlog_reader *r;
    assert_int_equal(evlog_reader_open(&r, dir, 0, err, sizeof err), EVLOG_ECORRUPT);
    corrupt_byte(dir, "journal/base", 40);
    read_all(dir, 0, 3001);

    char p[256], q[256];
    snprintf(p, sizeof p, "%s/journal/base", dir);
    snprintf(q, sizeof q, "%s/base.saved", dir);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(open_log(&log, dir, 1, err, sizeof err), EVLOG_ECORRUPT);
    assert_non_null(strstr(err, "journal/base is missing or older"));
    uint64_t disk2, length2;
    journal_size(dir, &disk2, &length2);
    assert_int_equal(length2, length); /* a missing base is no torn tail: nothing was cut */
    assert_int_equal(evlog_reader_open(&r, dir, 0, err, sizeof err), 0);
    const uint8_t *e;
    size_t len;
    uint64_t idx;
    assert_int_equal(evlog_reader_next(r, &e, &len, &idx, err, sizeof err), EVLOG_ECORRUPT);
    evlog_reader_close(r);
    assert_int_equal(rename(q, p), 0);
    assert_int_equal(open_log(&log, dir, 1, err, sizeof err), 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
}

/* Hash tiles that do not lead to the journal's commit root (here: the level-1 tile the base's
 * tree is read from, altered on disk) make compaction refuse before anything is written or
 * punched. */
static void test_compact_checks_tiles(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    struct evlog *log;
    assert_int_equal(open_log(&log, dir, 1, err, sizeof err), 0);
    append_range(log, 0, 700);
    assert_true(evlog_checkpoint(log, 2, err, sizeof err) >= 0);
    corrupt_byte(dir, "log/tile/1/000.p/2", 5);
    append_range(log, 700, 701);
    assert_true(evlog_maybe_checkpoint(log, 3, err, sizeof err) < 0);
    assert_non_null(strstr(err, "not compacted"));
    assert_false(file_exists(dir, "journal/base"));
    uint64_t disk, length;
    journal_size(dir, &disk, &length);
    assert_true(disk >= length - 4096); /* nothing punched */
    evlog_close(log, err, sizeof err);
    rm_rf(dir);
}

/* Opening reads only the checkpoints at or above the base (recovery checks those against the
 * tree it rebuilds): a damaged one below the base does not stop serve, `sinkd verify` names it;
 * a damaged one above the base is refused at open. */
static void test_compact_open_checkpoints(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    struct evlog *log;
    assert_int_equal(open_log(&log, dir, 1, err, sizeof err), 0);
    append_range(log, 0, 1000);
    assert_true(evlog_checkpoint(log, 1, err, sizeof err) >= 0); /* checkpoints/1000 */
    append_range(log, 1000, 3000);
    assert_true(checkpoint_then_compact(log, 3000, err, sizeof err) >= 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    corrupt_byte(dir, "log/checkpoints/1000", 3);
    struct evlog_recovery rec;
    struct evlog_options opt = {.origin = "example.com/testlog", .seal_off = true};
    if (evlog_open(&log, dir, &opt, &rec, err, sizeof err) != 0) {
        fail_msg("open with a damaged checkpoint below the base: %s", err);
    }
    assert_int_equal(rec.base, 2816);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    assert_true(verify_log(dir, err, sizeof err) < 0);
    assert_non_null(strstr(err, "checkpoints/1000"));
    corrupt_byte(dir, "log/checkpoints/1000", 3);
    corrupt_byte(dir, "log/checkpoints/3000", 3);
    assert_true(evlog_open(&log, dir, &opt, &rec, err, sizeof err) < 0);
    assert_non_null(strstr(err, "checkpoints/3000"));
    rm_rf(dir);
}

/* `checkpoint` set back to an older checkpoint is damage: verify names the newer archived one
 * (a newer one published while verify runs is not: it re-reads `checkpoint` first). */
static void test_verify_checkpoint_rolled_back(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[512];
    struct evlog *log;
    assert_int_equal(open_log(&log, dir, UINT64_MAX, err, sizeof err), 0);
    append_range(log, 0, 100);
    assert_true(evlog_checkpoint(log, 1, err, sizeof err) >= 0);
    append_range(log, 100, 200);
    assert_true(evlog_checkpoint(log, 2, err, sizeof err) >= 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    assert_int_equal(verify_log(dir, err, sizeof err), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "cp '%s/log/checkpoints/100' '%s/log/checkpoint'", dir, dir);
    assert_int_equal(system(cmd), 0);
    assert_true(verify_log(dir, err, sizeof err) < 0);
    assert_non_null(strstr(err, "checkpoints/200: larger than the latest checkpoint (100)"));
    rm_rf(dir);
}

/* The parser refuses what is not a base (the fuzzer explores the rest). */
static void test_base_parse(void **state)
{
    (void)state;
    struct evlog_journal_base *b = malloc(sizeof *b);
    char err[256];
    uint8_t buf[24 + 32 + 32 + 32] = "SNKDBAS1";
    assert_int_equal(evlog_journal_base_parse(buf, 10, b, err, sizeof err), EVLOG_ECORRUPT);
    buf[15] = 1; /* index 1: not a bundle edge */
    buf[23] = 16;
    assert_int_equal(evlog_journal_base_parse(buf, sizeof buf, b, err, sizeof err), EVLOG_ECORRUPT);
    assert_non_null(strstr(err, "edge"));
    buf[15] = 0;
    buf[14] = 1; /* index 256: a frontier hash, a level-1 hash, the sum (which is wrong) */
    assert_int_equal(evlog_journal_base_parse(buf, sizeof buf, b, err, sizeof err), EVLOG_ECORRUPT);
    assert_non_null(strstr(err, "checksum"));
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_compact_read_reopen),
        cmocka_unit_test(test_compact_threshold),
        cmocka_unit_test(test_compact_damaged_base),
        cmocka_unit_test(test_compact_checks_tiles),
        cmocka_unit_test(test_compact_open_checkpoints),
        cmocka_unit_test(test_verify_checkpoint_rolled_back),
        cmocka_unit_test(test_base_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
