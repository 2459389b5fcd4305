/* evidence_raw_test.c -- the store behind `serve --keep-raw`: names and their parser, a body
 * kept once under its SHA-256 and readable back, the per-run budget and the disk reserve,
 * concurrent stores of one body, and the offline check against a real log (damaged, stray and
 * unreferenced files; contacts whose body is missing). */
#include <fcntl.h>
#include <pthread.h>
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
#include <openssl/sha.h>

#include "event/event.h"
#include "evidence/log.h"
#include "evidence/raw.h"

static char *make_state(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sinkd-raw-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static struct raw_store *open_store(const char *dir, uint64_t max, uint64_t reserve)
{
    struct raw_store *s = NULL;
    char err[256];
    struct raw_store_config cfg = {.max_bytes = max, .reserve_bytes = reserve};
    if (raw_store_open(&s, dir, &cfg, err, sizeof err) != 0) {
        fail_msg("open: %s", err);
    }
    return s;
}

static struct evlog *open_log(const char *dir)
{
    struct evlog *log = NULL;
    char err[256];
    struct evlog_options opt = {.origin = "example.com/rawtest", .create_key = true};
    if (evlog_open(&log, dir, &opt, NULL, err, sizeof err) != 0) {
        fail_msg("evlog_open: %s", err);
    }
    return log;
}

/* Encodes a record and stages it in the log. */
static void append_record(struct evlog *log, const struct record *rec)
{
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(rec, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(evlog_append(log, buf, (size_t)n, NULL), 0);
}

/* A contact record with the fields every test needs. */
static void contact_init(struct record *rec, const char *family, uint8_t msg_type)
{
    memset(rec, 0, sizeof *rec);
    rec->kind = RECORD_CONTACT;
    rec->u.contact.time_us = 1700000000000000ull;
    snprintf(rec->u.contact.node, sizeof rec->u.contact.node, "t");
    snprintf(rec->u.contact.family, sizeof rec->u.contact.family, "%s", family);
    rec->u.contact.transport = CONTACT_TRANSPORT_TCP;
    rec->u.contact.msg_type = msg_type;
}

/* Overwrites the first byte of the kept body named sha (the name no longer fits the content). */
static void damage_body(const char *dir, const uint8_t sha[32])
{
    char name[RAW_NAME_LEN], path[256];
    raw_name(sha, name);
    snprintf(path, sizeof path, "%s/raw/%s", dir, name);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    int first = fgetc(f);
    assert_int_equal(fseek(f, 0, SEEK_SET), 0);
    fputc(first == EOF ? 'X' : first ^ 1, f);
    fclose(f);
}

static size_t read_body(const char *dir, const uint8_t sha[32], uint8_t *out, size_t cap)
{
    char name[RAW_NAME_LEN], path[256];
    raw_name(sha, name);
    snprintf(path, sizeof path, "%s/raw/%s", dir, name);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return SIZE_MAX;
    }
    size_t n = fread(out, 1, cap, f);
    fclose(f);
    return n;
}

static void test_names(void **state)
{
    (void)state;
    uint8_t sha[32], back[32];
    for (int i = 0; i < 32; i++) {
        sha[i] = (uint8_t)(0xA0 + i);
    }
    char name[RAW_NAME_LEN];
    raw_name(sha, name);
    assert_string_equal(name,
                        "a0/a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
    assert_true(raw_parse_name(name, back));
    assert_memory_equal(sha, back, 32);
    char bad[RAW_NAME_LEN + 2];
    snprintf(bad, sizeof bad, "%s", name);
    bad[0] = 'b'; /* subdirectory of another first byte */
    assert_false(raw_parse_name(bad, back));
    snprintf(bad, sizeof bad, "%s", name);
    bad[10] = 'A'; /* uppercase: not the one spelling */
    assert_false(raw_parse_name(bad, back));
    snprintf(bad, sizeof bad, "%s", name);
    bad[2] = 'x';
    assert_false(raw_parse_name(bad, back));
    snprintf(bad, sizeof bad, "%sa", name);
    assert_false(raw_parse_name(bad, back));
    assert_false(raw_parse_name("a0/.tmp-1-2", back));
    assert_false(raw_parse_name("", back));
}

static void test_put_once(void **state)
{
    (void)state;
    char *dir = make_state();
    struct raw_store *s = open_store(dir, 0, 0);
    static const uint8_t body[] = "DESKTOP-1\0alice\0...";
    uint8_t sha[32];
    SHA256(body, sizeof body, sha);
    assert_int_equal(raw_store_put(s, sha, body, sizeof body), 1);
    assert_int_equal(raw_store_put(s, sha, body, sizeof body), 0);
    /* The empty body (a poll) is kept too: every contact can name its body. */
    uint8_t empty[32];
    SHA256((const uint8_t *)"", 0, empty);
    assert_int_equal(raw_store_put(s, empty, NULL, 0), 1);
    uint8_t back[256];
    assert_int_equal(read_body(dir, sha, back, sizeof back), sizeof body);
    assert_memory_equal(back, body, sizeof body);
    assert_int_equal(read_body(dir, empty, back, sizeof back), 0);
    struct raw_store_stats st;
    raw_store_stats(s, &st);
    assert_int_equal(st.stored, 2);
    assert_int_equal(st.stored_bytes, sizeof body);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.skipped, 0);
    assert_false(st.full);
    raw_store_close(s);
    /* Reopened (the next run), the body is still kept: not written again. */
    s = open_store(dir, 0, 0);
    assert_int_equal(raw_store_put(s, sha, body, sizeof body), 0);
    raw_store_close(s);
    rm_rf(dir);
}

static void test_budget_and_reserve(void **state)
{
    (void)state;
    char *dir = make_state();
    struct raw_store *s = open_store(dir, 100, 0);
    uint8_t body[60], sha[32];
    memset(body, 'a', sizeof body);
    SHA256(body, sizeof body, sha);
    assert_int_equal(raw_store_put(s, sha, body, sizeof body), 1);
    body[0] = 'b';
    SHA256(body, sizeof body, sha);
    assert_int_equal(raw_store_put(s, sha, body, sizeof body), -1); /* 120 > 100 */
    assert_int_equal(read_body(dir, sha, body, sizeof body), SIZE_MAX);
    struct raw_store_stats st;
    raw_store_stats(s, &st);
    assert_int_equal(st.stored, 1);
    assert_int_equal(st.skipped, 1);
    assert_true(st.full);
    raw_store_close(s);
    /* A reserve larger than any disk: nothing is written. */
    s = open_store(dir, 0, UINT64_MAX / 4);
    assert_int_equal(raw_store_put(s, sha, body, sizeof body), -1);
    raw_store_stats(s, &st);
    assert_int_equal(st.stored, 0);
    assert_true(st.full);
    raw_store_close(s);
    rm_rf(dir);
}

struct racer {
    struct raw_store *s;
    const uint8_t *body;
    size_t len;
    const uint8_t *sha;
    int stored;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    for (int i = 0; i < 200; i++) {
        r->stored += raw_store_put(r->s, r->sha, r->body, r->len) == 1;
    }
    return NULL;
}

static void test_concurrent_same_body(void **state)
{
    (void)state;
    char *dir = make_state();
    struct raw_store *s = open_store(dir, 0, 0);
    uint8_t body[4000], sha[32];
    for (size_t i = 0; i < sizeof body; i++) {
        body[i] = (uint8_t)(i * 7);
    }
    SHA256(body, sizeof body, sha);
    struct racer r[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct racer){.s = s, .body = body, .len = sizeof body, .sha = sha};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    int stored = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        stored += r[i].stored;
    }
    assert_int_equal(stored, 1);
    uint8_t back[sizeof body];
    assert_int_equal(read_body(dir, sha, back, sizeof back), sizeof body);
    assert_memory_equal(back, body, sizeof body);
    raw_store_close(s);
    /* No temporary file left behind. */
    char cmd[160];
    snprintf(cmd, sizeof cmd, "test $(find '%s/raw' -type f | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    rm_rf(dir);
}

/* Appends one contact record with this body hash to the log. */
static void append_contact(struct evlog *log, const uint8_t sha[32])
{
    struct record rec;
    contact_init(&rec, "plugx", CONTACT_MSG_HEARTBEAT);
    memcpy(rec.u.contact.body_sha256, sha, 32);
    append_record(log, &rec);
}

struct reported {
    int n;
    char last[256];
};

static void on_bad(void *ctx, const char *path, const char *why)
{
    struct reported *r = ctx;
    r->n++;
    snprintf(r->last, sizeof r->last, "%s: %s", path, why);
}

static void test_check_against_log(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[256];
    struct evlog *log = open_log(dir);
    struct raw_store *s = open_store(dir, 0, 0);
    uint8_t bodies[3][40], sha[3][32];
    for (int i = 0; i < 3; i++) {
        memset(bodies[i], 'x' + i, sizeof bodies[i]);
        SHA256(bodies[i], sizeof bodies[i], sha[i]);
    }
    /* Contacts: body 0 twice, body 1 once (never kept); body 2 kept but named by none. */
    append_contact(log, sha[0]);
    append_contact(log, sha[0]);
    append_contact(log, sha[1]);
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    assert_int_equal(raw_store_put(s, sha[0], bodies[0], sizeof bodies[0]), 1);
    assert_int_equal(raw_store_put(s, sha[2], bodies[2], sizeof bodies[2]), 1);
    raw_store_close(s);

    struct raw_check_result r;
    struct reported rep = {0};
    assert_int_equal(raw_check(dir, &r, on_bad, &rep, err, sizeof err), 0);
    assert_int_equal(rep.n, 0);
    assert_int_equal(r.files, 2);
    assert_int_equal(r.bytes, 80);
    assert_int_equal(r.damaged, 0);
    assert_int_equal(r.stray, 0);
    assert_int_equal(r.unreferenced, 1);
    assert_int_equal(r.contacts, 3);
    assert_int_equal(r.with_body, 2);
    assert_int_equal(r.distinct_bodies, 2);
    assert_int_equal(r.distinct_missing, 1);

    /* One byte changed in a kept body: damaged, and named. */
    damage_body(dir, sha[0]);
    char name[RAW_NAME_LEN], path[256];
    raw_name(sha[0], name);
    /* And a temporary file a crash left. */
    snprintf(path, sizeof path, "%s/raw/%.2s/.tmp-1-1", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fclose(f);
    memset(&rep, 0, sizeof rep);
    assert_int_equal(raw_check(dir, &r, on_bad, &rep, err, sizeof err), 0);
    assert_int_equal(r.damaged, 1);
    assert_int_equal(r.stray, 1);
    assert_int_equal(rep.n, 2);
    assert_int_equal(r.files, 1);
    assert_int_equal(r.with_body, 0); /* the damaged body no longer counts as kept */

    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
    /* No raw directory: an error that says why. */
    dir = make_state();
    log = open_log(dir);
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    assert_int_equal(raw_check(dir, &r, on_bad, &rep, err, sizeof err), -1);
    assert_non_null(strstr(err, "--keep-raw"));
    rm_rf(dir);
}

/* A stand-in family parser: the body is "host|user"; "?" bodies yield no identity. */
static int toy_parse(void *ctx, const char *family, const uint8_t *body, size_t len,
                     struct bot_identity *out)
{
    (void)ctx;
    if (strcmp(family, "toy") != 0) {
        return 1;
    }
    if (len == 1 && body[0] == '?') {
        return -1;
    }
    const char *bar = memchr(body, '|', len);
    assert_non_null(bar);
    snprintf(out->host, sizeof out->host, "%.*s", (int)(bar - (const char *)body), body);
    snprintf(out->user, sizeof out->user, "%.*s",
             (int)(len - (size_t)(bar - (const char *)body) - 1), bar + 1);
    return 0;
}

struct mismatches {
    int n;
    uint64_t index[8];
    char field[8][16];
};

static void on_mismatch(void *ctx, uint64_t index, const char *field, const char *recorded,
                        const char *reread)
{
    (void)recorded;
    (void)reread;
    struct mismatches *m = ctx;
    if (m->n < 8) {
        m->index[m->n] = index;
        snprintf(m->field[m->n], sizeof m->field[0], "%s", field);
    }
    m->n++;
}

/* Appends a machine-info contact of `family` recording host/user, whose body is `body`. */
static void append_identified(struct evlog *log, struct raw_store *s, const char *family,
                              const char *host, const char *user, const char *body, bool keep)
{
    struct record rec;
    contact_init(&rec, family, CONTACT_MSG_MACHINE_INFO);
    struct contact *c = &rec.u.contact;
    snprintf(c->bot.host, sizeof c->bot.host, "%s", host);
    snprintf(c->bot.user, sizeof c->bot.user, "%s", user);
    SHA256((const uint8_t *)body, strlen(body), c->body_sha256);
    append_record(log, &rec);
    if (keep) {
        assert_true(raw_store_put(s, c->body_sha256, (const uint8_t *)body, strlen(body)) >= 0);
    }
}

/* --reparse: matched, a field that reads differently, no identity at all, a missing body, a
 * damaged file, an unknown family; heartbeats and hellos are not machine-info and not read. */
static void test_reparse(void **state)
{
    (void)state;
    char *dir = make_state();
    char err[256];
    struct evlog *log = open_log(dir);
    struct raw_store *s = open_store(dir, 0, 0);
    append_identified(log, s, "toy", "PC-1", "alice", "PC-1|alice", true);   /* 0: matched */
    append_identified(log, s, "toy", "PC-2", "bob", "PC-2|mallory", true);   /* 1: user differs */
    append_identified(log, s, "toy", "PC-3", "carol", "?", true);            /* 2: no identity */
    append_identified(log, s, "toy", "PC-4", "dave", "PC-4|dave", false);    /* 3: not kept */
    append_identified(log, s, "toy", "PC-5", "erin", "PC-5|erin", true);     /* 4: damaged below */
    append_identified(log, s, "other", "PC-6", "frank", "PC-6|frank", true); /* 5: unknown family */
    uint8_t empty[32];
    SHA256((const uint8_t *)"", 0, empty);
    append_contact(log, empty); /* 6: a poll: not machine-info */
    assert_int_equal(evlog_commit(log, err, sizeof err), 0);
    raw_store_close(s);
    uint8_t sha[32];
    SHA256((const uint8_t *)"PC-5|erin", 9, sha);
    damage_body(dir, sha);

    struct raw_reparse_result r;
    struct mismatches m = {0};
    assert_int_equal(raw_reparse(dir, toy_parse, NULL, on_mismatch, &m, &r, err, sizeof err), 0);
    assert_int_equal(r.identified, 6);
    assert_int_equal(r.reparsed, 3);
    assert_int_equal(r.matched, 1);
    assert_int_equal(r.mismatched, 2);
    assert_int_equal(r.missing_body, 1);
    assert_int_equal(r.damaged, 1);
    assert_int_equal(r.unknown_family, 1);
    assert_int_equal(m.n, 3); /* two mismatches and the damaged body, in log order */
    assert_int_equal(m.index[0], 1);
    assert_string_equal(m.field[0], "user");
    assert_int_equal(m.index[1], 2);
    assert_string_equal(m.field[1], "identity");
    assert_int_equal(m.index[2], 4);
    assert_string_equal(m.field[2], "body");
    assert_int_equal(evlog_close(log, err, sizeof err), 0);
    rm_rf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_put_once),
        cmocka_unit_test(test_budget_and_reserve),
        cmocka_unit_test(test_concurrent_same_body),
        cmocka_unit_test(test_check_against_log),
        cmocka_unit_test(test_reparse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
