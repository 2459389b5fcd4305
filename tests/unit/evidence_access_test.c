/* evidence_access_test.c -- access records and the spool: what a record holds and refuses,
 * output held back and digested, the digest of a directory as sha256sum lists it, records
 * spooled by other processes drained by the log's writer oldest first, exactly once across a
 * crash between the commit and the removal, files that are not acceptable records set aside,
 * and access_flush appending when no writer runs and leaving the records to one that does. */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "event/event.h"
#include "evidence/access.h"
#include "evidence/log.h"
#include "util/hex.h"
#include "util/lockfile.h"

static char *make_state(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sinkd-access-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static struct evlog *open_log(const char *dir)
{
    struct evlog *log = NULL;
    char err[256];
    struct evlog_options opt = {.origin = "example.com/accesstest", .create_key = true};
    if (evlog_open(&log, dir, &opt, NULL, err, sizeof err) != 0) {
        fail_msg("evlog_open: %s", err);
    }
    return log;
}

static void build(struct record *rec, const char *what, uint64_t rows)
{
    uint8_t sha[32];
    memset(sha, 0xab, sizeof sha);
    char err[256];
    if (access_record_build(rec, "alice", what, "state=x", rows, sha, "case 42: court order", err,
                            sizeof err) != 0) {
        fail_msg("build: %s", err);
    }
}

/* Decodes every durable entry; returns how many, and the kinds and `what` fields in order. */
static size_t read_log(const char *dir, struct record *out, size_t cap)
{
    struct evlog_reader *r = NULL;
    char err[256];
    assert_int_equal(evlog_reader_open(&r, dir, 0, err, sizeof err), 0);
    const uint8_t *e;
    size_t len;
    uint64_t idx;
    size_t n = 0;
    while (evlog_reader_next(r, &e, &len, &idx, err, sizeof err) == 1) {
        assert_true(n < cap);
        assert_int_equal(event_decode(e, len, &out[n], err, sizeof err), 0);
        n++;
    }
    evlog_reader_close(r);
    return n;
}

static size_t spool_files(const char *dir, const char *suffix)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls -A '%s/spool' 2>/dev/null | grep -c -- '%s$' || true", dir,
             suffix);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    unsigned long n = 0;
    assert_int_equal(fscanf(p, "%lu", &n), 1);
    pclose(p);
    return n;
}

static void test_record_fields(void **state)
{
    (void)state;
    struct record rec;
    char err[256];
    uint8_t sha[32] = {1};
    assert_int_equal(access_record_build(&rec, NULL, "contacts", "state=/s", 7, sha,
                                         "request 2026/17 from CERT-NG", err, sizeof err),
                     0);
    assert_int_equal(rec.kind, RECORD_ACCESS);
    assert_true(rec.u.access.operator_name[0] != '\0'); /* the invoking user */
    assert_int_equal(rec.u.access.rows, 7);
    assert_memory_equal(rec.u.access.output_sha256, sha, 32);
    assert_true(rec.u.access.time_us > 1700000000000000ull);
    /* refused: missing, too short, too long, control characters, an over-long operator */
    assert_int_not_equal(access_record_build(&rec, NULL, "c", "", 0, sha, NULL, err, sizeof err),
                         0);
    assert_int_not_equal(access_record_build(&rec, NULL, "c", "", 0, sha, "why", err, sizeof err),
                         0);
    char longer[600];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    assert_int_not_equal(access_record_build(&rec, NULL, "c", "", 0, sha, longer, err, sizeof err),
                         0);
    assert_int_not_equal(
        access_record_build(&rec, NULL, "c", "", 0, sha, "line one\nline two", err, sizeof err), 0);
    longer[100] = '\0';
    assert_int_not_equal(
        access_record_build(&rec, longer, "c", "", 0, sha, "a good reason", err, sizeof err), 0);
    /* scope composed by sinkd is cut to fit, not refused */
    char scope[2000];
    memset(scope, 's', sizeof scope - 1);
    scope[sizeof scope - 1] = '\0';
    assert_int_equal(
        access_record_build(&rec, "bob", "c", scope, 0, sha, "a good reason", err, sizeof err), 0);
    size_t n = strlen(rec.u.access.scope);
    assert_int_equal(n, sizeof rec.u.access.scope - 1);
    assert_string_equal(rec.u.access.scope + n - 3, "...");
}

static void test_output_and_dir_digest(void **state)
{
    (void)state;
    char *dir = make_state();
    struct access_output *o = NULL;
    char err[256];
    assert_int_equal(access_output_open(&o, dir, err, sizeof err), 0);
    fputs("line 1\nline 2\n", access_output_stream(o));
    uint8_t sha[32], want[32];
    uint64_t bytes = 0;
    assert_int_equal(access_output_digest(o, sha, &bytes, err, sizeof err), 0);
    SHA256((const uint8_t *)"line 1\nline 2\n", 14, want);
    assert_memory_equal(sha, want, 32);
    assert_int_equal(bytes, 14);
    char path[128];
    snprintf(path, sizeof path, "%s/copy", dir);
    FILE *f = fopen(path, "w+");
    assert_int_equal(access_output_copy(o, f, err, sizeof err), 0);
    rewind(f);
    char buf[64] = "";
    assert_int_equal(fread(buf, 1, sizeof buf, f), 14);
    fclose(f);
    assert_memory_equal(buf, "line 1\nline 2\n", 14);
    access_output_close(o);
    /* nothing named was left in the spool by the held output */
    assert_int_equal(spool_files(dir, ""), 0);

    /* the digest of a directory is what sha256sum's listing hashes to */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "mkdir -p %s/b/sub && printf a > %s/b/A.csv && printf bb > %s/b/sub/x && "
             "(cd %s/b && find . -type f -printf '%%P\\n' | LC_ALL=C sort | xargs -d '\\n' "
             "sha256sum) | sha256sum | cut -c1-64 > %s/want",
             dir, dir, dir, dir, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/want", dir);
    f = fopen(path, "r");
    char hex[65] = "";
    assert_int_equal(fscanf(f, "%64s", hex), 1);
    fclose(f);
    snprintf(path, sizeof path, "%s/b", dir);
    uint64_t files = 0;
    assert_int_equal(access_dir_digest(path, sha, &files, err, sizeof err), 0);
    char got[65];
    hex_encode(sha, 32, got);
    assert_string_equal(got, hex);
    assert_int_equal(files, 2);
    rm_rf(dir);
}

static void test_spool_drain(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir);
    char err[512];
    struct record rec;
    /* only records others may write */
    memset(&rec, 0, sizeof rec);
    rec.kind = RECORD_CONTACT;
    rec.u.contact.time_us = 1;
    assert_int_not_equal(access_spool(dir, &rec, err, sizeof err), 0);
    const char *whats[3] = {"first", "second", "third"};
    for (int i = 0; i < 3; i++) {
        build(&rec, whats[i], (uint64_t)i);
        assert_int_equal(access_spool(dir, &rec, err, sizeof err), 0);
    }
    assert_int_equal(spool_files(dir, ".rec"), 3);
    struct stat st;
    char sp[128];
    snprintf(sp, sizeof sp, "%s/spool", dir);
    assert_int_equal(stat(sp, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* a contact record put there by hand is set aside, not appended */
    uint8_t buf[EVENT_RECORD_MAX];
    memset(&rec, 0, sizeof rec);
    rec.kind = RECORD_CONTACT;
    rec.u.contact.time_us = 5;
    int n = event_encode(&rec, buf, sizeof buf);
    char path[256];
    snprintf(path, sizeof path, "%s/spool/9999999999999999-1-00000000.rec", dir);
    FILE *f = fopen(path, "w");
    fwrite(buf, 1, (size_t)n, f);
    fclose(f);
    struct access_drain_state ds = {0};
    assert_int_equal(access_spool_drain(log, dir, &ds, 0, err, sizeof err), EVLOG_EINVAL);
    assert_non_null(strstr(err, "is not a record the spool accepts"));
    assert_int_equal(spool_files(dir, ".bad"), 1);
    assert_int_equal(spool_files(dir, ".rec"), 0);
    assert_int_equal(evlog_size(log), 3);
    /* nothing new: a timed look finds nothing to do */
    assert_int_equal(access_spool_drain(log, dir, &ds, 10000, err, sizeof err), 0);
    char cerr[256];
    assert_int_equal(evlog_close(log, cerr, sizeof cerr), 0);
    struct record got[8];
    assert_int_equal(read_log(dir, got, 8), 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(got[i].kind, RECORD_ACCESS);
        assert_string_equal(got[i].u.access.what, whats[i]); /* oldest first */
        assert_string_equal(got[i].u.access.operator_name, "alice");
    }
    rm_rf(dir);
}

/* A crash after the commit and before the files were removed: a claimed file whose entry is in
 * the log is removed, not appended again; one whose index holds something else is appended. */
static void test_drain_exactly_once(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir);
    char err[512];
    struct record rec;
    build(&rec, "kept", 1);
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&rec, buf, sizeof buf);
    assert_int_equal(evlog_append(log, buf, (size_t)n, NULL), 0); /* entry 0 */
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/spool", dir);
    mkdir(path, 0700);
    /* claimed at 0 and equal to entry 0: already in */
    snprintf(path, sizeof path, "%s/spool/0000000000000001-1-00000000.rec.at-0", dir);
    FILE *f = fopen(path, "w");
    fwrite(buf, 1, (size_t)n, f);
    fclose(f);
    /* claimed at 0 but entry 0 is another record: it never got in */
    struct record other;
    build(&other, "lost", 2);
    uint8_t obuf[EVENT_RECORD_MAX];
    int on = event_encode(&other, obuf, sizeof obuf);
    snprintf(path, sizeof path, "%s/spool/0000000000000002-1-00000000.rec.at-0", dir);
    f = fopen(path, "w");
    fwrite(obuf, 1, (size_t)on, f);
    fclose(f);
    struct access_drain_state ds = {0};
    assert_int_equal(access_spool_drain(log, dir, &ds, 0, err, sizeof err), 1);
    assert_int_equal(evlog_size(log), 2);
    assert_int_equal(spool_files(dir, ""), 0);
    char cerr[256];
    assert_int_equal(evlog_close(log, cerr, sizeof cerr), 0);
    struct record got[4];
    assert_int_equal(read_log(dir, got, 4), 2);
    assert_string_equal(got[0].u.access.what, "kept");
    assert_string_equal(got[1].u.access.what, "lost");
    rm_rf(dir);
}

/* With no writer, access_submit appends at once; with one holding log.lock, it leaves the
 * record in the spool and names the holder; the holder's next checkpoint pass drains it. */
static void test_submit_and_flush(void **state)
{
    (void)state;
    char *dir = make_state();
    struct evlog *log = open_log(dir);
    char err[512];
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    struct record rec;
    build(&rec, "alone", 3);
    struct access_receipt rc;
    assert_int_equal(access_submit(dir, &rec, &rc, err, sizeof err), 0);
    assert_true(rc.appended);
    assert_int_equal(rc.appended_n, 1);
    struct record got[4];
    assert_int_equal(read_log(dir, got, 4), 1);
    assert_string_equal(got[0].u.access.what, "alone");

    int lock = lockfile_take(dir, LOCKFILE_LOG, "sinkd serve", false, err, sizeof err);
    assert_true(lock >= 0);
    log = open_log(dir);
    build(&rec, "queued", 4);
    assert_int_equal(access_submit(dir, &rec, &rc, err, sizeof err), 0);
    assert_false(rc.appended);
    assert_int_equal(rc.writer_pid, (long)getpid());
    assert_string_equal(rc.writer, "sinkd serve");
    assert_int_equal(spool_files(dir, ".rec"), 1);
    assert_int_equal(evlog_maybe_checkpoint(log, 1000000, err, sizeof err) >= 0, 1);
    assert_int_equal(evlog_size(log), 2);
    assert_int_equal(spool_files(dir, ""), 0);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    lockfile_release(lock);
    assert_int_equal(read_log(dir, got, 4), 2);
    assert_string_equal(got[1].u.access.what, "queued");
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_record_fields),    cmocka_unit_test(test_output_and_dir_digest),
        cmocka_unit_test(test_spool_drain),      cmocka_unit_test(test_drain_exactly_once),
        cmocka_unit_test(test_submit_and_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
