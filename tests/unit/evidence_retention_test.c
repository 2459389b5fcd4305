/* evidence_retention_test.c -- checkpoint retention (issue 20): which checkpoints/<size> files a
 * run removes and which it keeps (inside the window, the newest of each UTC hour, the newest
 * overall, timestamped, cosigned), that the thinned log still verifies and reopens, that a run
 * is bounded, that 0 keeps every checkpoint and that a failed removal is reported once. Age is
 * simulated with utimensat. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "evidence/log.h"
#include "evlog_fixture.h"

#define KEEP_S (24 * 3600)

static char *make_state(void)
{
    return evlog_fixture_state("evidence_retention_test");
}

static void rm_rf(const char *dir)
{
    evlog_fixture_rm(dir);
}

static struct evlog *open_log(const char *dir, uint64_t keep_s, struct evlog_recovery *rec)
{
    struct evlog *log;
    char err[512];
    struct evlog_options opt = {.origin = "example.com/testlog", .checkpoint_keep_s = keep_s};
    if (evlog_open(&log, dir, &opt, rec, err, sizeof err) != 0) {
        fail_msg("open: %s", err);
    }
    return log;
}

static void close_log(struct evlog *log)
{
    char err[512];
    if (evlog_close(log, err, sizeof err) != 0) {
        fail_msg("close: %s", err);
    }
}

/* One entry, then a checkpoint over it. */
static void add_checkpoint(struct evlog *log, int i)
{
    char e[32], err[512];
    int len = snprintf(e, sizeof e, "entry %d", i);
    assert_int_equal(evlog_append(log, (const uint8_t *)e, (size_t)len, NULL), 0);
    if (evlog_checkpoint(log, (uint64_t)i + 1, err, sizeof err) != 1) {
        fail_msg("checkpoint: %s", err);
    }
}

static void cp_path(const char *dir, uint64_t size, char *out, size_t cap)
{
    snprintf(out, cap, "%s/log/checkpoints/%llu", dir, (unsigned long long)size);
}

static bool cp_exists(const char *dir, uint64_t size)
{
    char p[256];
    cp_path(dir, size, p, sizeof p);
    return access(p, F_OK) == 0;
}

static void set_mtime(const char *dir, uint64_t size, time_t t)
{
    char p[256];
    cp_path(dir, size, p, sizeof p);
    struct timespec ts[2] = {{.tv_sec = t}, {.tv_sec = t}};
    if (utimensat(AT_FDCWD, p, ts, 0) != 0) {
        fail_msg("utimensat %s", p);
    }
}

static void touch(const char *dir, const char *sub, const char *name)
{
    char p[256];
    snprintf(p, sizeof p, "%s/log/%s", dir, sub);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/log/%s/%s", dir, sub, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs("handed out\n", f);
    fclose(f);
}

static uint64_t verify_log(const char *dir)
{
    char path[256], err[512];
    snprintf(path, sizeof path, "%s/log", dir);
    struct evlog_signer s;
    struct evlog_verifier v;
    assert_int_equal(evlog_signer_parse(PN_SKEY, strlen(PN_SKEY), &s, NULL, 0), 0);
    evlog_signer_verifier(&s, &v);
    struct evlog_verify_report rep;
    if (evlog_verify_dir(path, &v, &rep, err, sizeof err) != 0) {
        fail_msg("verify: %s", err);
    }
    return rep.checkpoints;
}

/* `sinkd verify` itself, when the binary is at hand (ctest sets SINKD_BINARY). It checks
 * timestamps/ and cosignatures/ too: the stand-ins build_aged_log made go first. */
static void sinkd_verify(const char *dir)
{
    const char *bin = getenv("SINKD_BINARY");
    if (bin == NULL || access(bin, X_OK) != 0) {
        return;
    }
    struct evlog_signer s;
    struct evlog_verifier v;
    assert_int_equal(evlog_signer_parse(PN_SKEY, strlen(PN_SKEY), &s, NULL, 0), 0);
    evlog_signer_verifier(&s, &v);
    char vkey[512], path[256];
    assert_true(evlog_verifier_format(&v, vkey, sizeof vkey) > 0);
    snprintf(path, sizeof path, "%s/test.vkey", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", vkey);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "rm -rf '%s/log/timestamps' '%s/log/cosignatures' && '%s' verify '%s/log' --key '%s' "
             ">/dev/null",
             dir, dir, bin, dir, path);
    int rc = system(cmd);
    if (!WIFEXITED(rc) || WEXITSTATUS(rc) != 0) {
        fail_msg("sinkd verify %s/log failed", dir);
    }
}

/* Checkpoints 0..20 with ages set, a 24-hour window, then one more checkpoint (21) runs the
 * retention. Hours A, B, C are whole UTC hours two days back. */
enum { REMOVED, KEPT };
struct cp_case {
    uint64_t size;
    int64_t at; /* seconds after the start of hour A, or, if negative, before now */
    int want;
    const char *why;
};
#define HOUR 3600
static const struct cp_case cases[] = {
    {0, 60, REMOVED, "older in hour A"},
    {1, 120, REMOVED, "older in hour A"},
    {2, 180, REMOVED, "older in hour A"},
    {3, 240, REMOVED, "older in hour A"},
    {4, 300, KEPT, "newest of hour A"},
    {5, HOUR + 10, REMOVED, "older in hour B"},
    {6, HOUR + 20, KEPT, "timestamps/6.tsq"},
    {7, HOUR + 30, KEPT, "timestamps/7.tsr"},
    {8, HOUR + 40, KEPT, "cosignatures/8"},
    {9, HOUR + 50, REMOVED, "older in hour B"},
    {10, HOUR + 3599, KEPT, "newest of hour B"},
    {11, 5 * HOUR + 100, REMOVED, "older in hour C"},
    {12, 5 * HOUR + 200, REMOVED, "older in hour C"},
    {13, 5 * HOUR + 300, REMOVED, "older in hour C"},
    {14, 5 * HOUR + 400, KEPT, "newest of hour C"},
    {15, -(KEEP_S - 600), KEPT, "inside the window"},
    {16, -(KEEP_S - 660), KEPT, "inside the window"},
    {17, -(KEEP_S - 720), KEPT, "inside the window"},
    {18, -(3 * HOUR), KEPT, "inside the window"},
    {19, -(3 * HOUR - 60), KEPT, "inside the window"},
    {20, -120, KEPT, "inside the window"},
    {21, 0, KEPT, "the newest, just published"},
};
#define NCASES (sizeof cases / sizeof cases[0])

/* Builds checkpoints 0..20 (closed log) with the ages of `cases`. */
static void build_aged_log(const char *dir)
{
    struct evlog *log = open_log(dir, 0, NULL); /* publishes checkpoint 0 */
    for (int i = 0; i < 20; i++) {
        add_checkpoint(log, i);
    }
    close_log(log);
    time_t now = time(NULL);
    time_t hour_a = (now / HOUR) * HOUR - 48 * HOUR;
    for (size_t i = 0; i + 1 < NCASES; i++) {
        set_mtime(dir, cases[i].size, cases[i].at < 0 ? now + cases[i].at : hour_a + cases[i].at);
    }
    touch(dir, "timestamps", "6.tsq");
    touch(dir, "timestamps", "7.tsr");
    touch(dir, "cosignatures", "8");
}

static void test_keeps_what_evidence_needs(void **state)
{
    (void)state;
    char *dir = make_state();
    build_aged_log(dir);
    assert_int_equal(verify_log(dir), NCASES - 1);
    struct evlog *log = open_log(dir, KEEP_S, NULL);
    add_checkpoint(log, 20); /* publishes 21: the run follows it in the tile writer */
    uint64_t removed = 0;
    for (size_t i = 0; i < NCASES; i++) {
        bool there = cp_exists(dir, cases[i].size);
        if (there != (cases[i].want == KEPT)) {
            fail_msg("checkpoints/%llu (%s): %s", (unsigned long long)cases[i].size, cases[i].why,
                     there ? "kept, should be removed" : "removed, should be kept");
        }
        removed += cases[i].want == REMOVED;
    }
    assert_int_equal(evlog_checkpoints_removed(log), removed);
    close_log(log);
    /* What is left verifies (signatures, roots, consistency between consecutive kept ones)... */
    assert_int_equal(verify_log(dir), NCASES - removed);
    sinkd_verify(dir);
    /* ... and the log reopens: its tree matches every checkpoint that is left. */
    struct evlog_recovery rec;
    log = open_log(dir, KEEP_S, &rec);
    assert_int_equal(rec.checkpoints, NCASES - removed + 1); /* + log/checkpoint */
    assert_int_equal(rec.size, 21);
    add_checkpoint(log, 21);
    close_log(log);
    /* This handle's first run: without their timestamp and cosignature stand-ins (sinkd_verify
     * removed them, if it ran) 6, 7 and 8 are ordinary old checkpoints now. */
    bool stand_ins = cp_exists(dir, 6);
    assert_true(stand_ins == cp_exists(dir, 7) && stand_ins == cp_exists(dir, 8));
    assert_true(cp_exists(dir, 4) && cp_exists(dir, 10) && cp_exists(dir, 15));
    assert_int_equal(verify_log(dir), NCASES - removed + 1 - (stand_ins ? 0 : 3));
    rm_rf(dir);
}

/* 0 is the old behaviour: every checkpoint stays, however old. */
static void test_zero_keeps_every_checkpoint(void **state)
{
    (void)state;
    char *dir = make_state();
    build_aged_log(dir);
    struct evlog *log = open_log(dir, 0, NULL);
    add_checkpoint(log, 20);
    for (size_t i = 0; i < NCASES; i++) {
        assert_true(cp_exists(dir, cases[i].size));
    }
    assert_int_equal(evlog_checkpoints_removed(log), 0);
    close_log(log);
    assert_int_equal(verify_log(dir), NCASES);
    rm_rf(dir);
}

/* A run removes at most 4096 files (log_internal.h CP_PRUNE_UNLINKS_MAX); the rest waits for the
 * next run. The extra files are copies of one checkpoint (evlog_open reads each one's tree size
 * from its content, so the log still opens); all in one hour, older than the window. */
static void test_run_is_bounded(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir, 0, NULL);
    char e[32];
    for (int i = 0; i < 6000; i++) {
        int len = snprintf(e, sizeof e, "entry %d", i);
        assert_int_equal(evlog_append(log, (const uint8_t *)e, (size_t)len, NULL), 0);
    }
    close_log(log); /* checkpoint 6000 */
    char src[256], cmd[1024];
    cp_path(dir, 6000, src, sizeof src);
    snprintf(cmd, sizeof cmd,
             "cd '%s/log/checkpoints' && for i in $(seq 1 5000); do cp 6000 $i; done && "
             "touch -d '@%lld' $(seq 1 5000)",
             dir, (long long)((time(NULL) / HOUR) * HOUR - 48 * HOUR + 60));
    assert_int_equal(system(cmd), 0);
    log = open_log(dir, KEEP_S, NULL);
    add_checkpoint(log, 6000);
    assert_int_equal(evlog_checkpoints_removed(log), 4096);
    close_log(log);
    int left = 0;
    for (uint64_t i = 1; i <= 5000; i++) {
        left += cp_exists(dir, i);
    }
    assert_int_equal(left, 5000 - 4096);
    assert_true(cp_exists(dir, 5000)); /* the newest of that hour */
    rm_rf(dir);
}

/* A file that cannot be removed (immutable flag: needs root with CAP_LINUX_IMMUTABLE, else
 * skipped; a read-only directory would refuse the checkpoint itself too): the run goes on with
 * the others, the failure is reported once by evlog_maybe_checkpoint, and checkpoints go on
 * being published. */
static void test_failure_reported_once(void **state)
{
    (void)state;
    char *dir = make_state();
    build_aged_log(dir);
    char p[256];
    cp_path(dir, 0, p, sizeof p);
    int fd = open(p, O_RDONLY);
    assert_true(fd >= 0);
    int flags = 0;
    int immutable = flags;
    if (ioctl(fd, FS_IOC_GETFLAGS, &flags) != 0 ||
        (immutable = flags | FS_IMMUTABLE_FL, ioctl(fd, FS_IOC_SETFLAGS, &immutable) != 0)) {
        close(fd);
        rm_rf(dir);
        skip();
    }
    struct evlog *log = open_log(dir, KEEP_S, NULL);
    char e[32] = "entry 20", err[512] = "";
    assert_int_equal(evlog_append(log, (const uint8_t *)e, strlen(e), NULL), 0);
    int rc = evlog_checkpoint(log, 10000000, err, sizeof err); /* publishes 21, then the run */
    ioctl(fd, FS_IOC_SETFLAGS, &flags);
    close(fd);
    assert_int_equal(rc, 1);
    assert_true(cp_exists(dir, 21));
    assert_true(cp_exists(dir, 0));  /* could not be removed */
    assert_false(cp_exists(dir, 1)); /* the others were */
    assert_int_equal(evlog_checkpoints_removed(log), 8);
    rc = evlog_maybe_checkpoint(log, 10000001, err, sizeof err);
    assert_int_equal(rc, EVLOG_EIO);
    assert_non_null(strstr(err, "checkpoints/0"));
    err[0] = '\0';
    assert_int_equal(evlog_append(log, (const uint8_t *)e, strlen(e), NULL), 0);
    rc = evlog_maybe_checkpoint(log, 20000000, err, sizeof err);
    if (rc != 1) {
        fail_msg("reported twice, or no checkpoint after the failure: %d %s", rc, err);
    }
    close_log(log);
    assert_true(cp_exists(dir, 22));
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keeps_what_evidence_needs),
        cmocka_unit_test(test_zero_keeps_every_checkpoint),
        cmocka_unit_test(test_run_is_bounded),
        cmocka_unit_test(test_failure_reported_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
