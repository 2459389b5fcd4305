/* registry_remediation_test.c -- registry: the per-(bot, authorisation) remediation rows (send and
 * dry-run decisions, commands sent/failed, contacts after the first command and past +1 h/+24 h),
 * the per-day counts, the data end, and the 3 -> 4 migration of a v3 file. */
#include "record_fixture.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/registry.h"
#include "registry_target.h"

#define MIN_US 60000000ULL
#define HOUR_US 3600000000ULL
#define DAY_US 86400000000ULL
#define T0 (1767225600ULL * 1000000ULL) /* 2026-01-01T00:00:00Z */

static void key_of(const char *host, char out[33])
{
    struct contact c;
    memset(&c, 0, sizeof(c));
    snprintf(c.family, sizeof(c.family), "plugx");
    snprintf(c.bot.host, sizeof(c.bot.host), "%s", host);
    event_bot_key(&c, out);
}

static void contact(struct record_fixture *f, uint64_t t, const char *host)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = t;
    assert_int_equal(net_addr_parse_ip("192.0.2.1", &c->src), 0);
    snprintf(c->family, sizeof(c->family), "plugx");
    snprintf(c->bot.host, sizeof(c->bot.host), "%s", host);
    key_of(host, c->bot_key);
    snprintf(c->cc, sizeof(c->cc), "NG");
    fixture_put(f, &r);
}

static void decision(struct record_fixture *f, uint64_t t, const char *host, const char *auth,
                     uint8_t verdict)
{
    char key[33];
    key_of(host, key);
    fixture_decision(f, t, key, auth, verdict);
}

static void command(struct record_fixture *f, uint64_t t, const char *host, const char *auth,
                    uint8_t kind)
{
    char key[33];
    key_of(host, key);
    fixture_command(f, t, key, auth, kind, NULL);
}

static void open_fx(struct record_fixture *f)
{
    char err[256];
    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/sinkd-regrem-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    test_registry_target(f->db, sizeof(f->db), f->dir);
    assert_int_equal(test_registry_open(&f->reg, f->db, err, sizeof(err)), 0);
}

static void close_fx(struct record_fixture *f)
{
    char cmd[128];
    registry_close(f->reg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
}

struct rows {
    struct registry_remediation r[8]; /* enough for every test's rows */
    size_t n;
};

static int grab(void *ctx, const struct registry_remediation *r)
{
    struct rows *rows = ctx;
    assert_true(rows->n < 8);
    rows->r[rows->n++] = *r;
    return 0;
}

static const struct registry_remediation *row_of(const struct rows *rows, const char *host,
                                                 const char *auth)
{
    char key[33];
    key_of(host, key);
    for (size_t i = 0; i < rows->n; i++) {
        if (strcmp(rows->r[i].bot_key, key) == 0 && strcmp(rows->r[i].authorisation, auth) == 0) {
            return &rows->r[i];
        }
    }
    return NULL;
}

struct days {
    struct registry_remediation_day d[4];
    size_t n;
};

static int grab_day(void *ctx, const struct registry_remediation_day *d)
{
    struct days *days = ctx;
    assert_true(days->n < 4);
    days->d[days->n++] = *d;
    return 0;
}

/* Bot A: commanded at tc; contacts at tc - 1 s (before: not counted), tc + 30 min, tc + 25 h,
 * tc + 2 h (applied out of time order: the firsts are minimums). Bot B: dry run only. Bot C:
 * command failed, then sent on the next session. A decision and a command for a key with no
 * contact make no row. */
static void test_rows(void **state)
{
    (void)state;
    struct record_fixture f;
    char err[256];
    open_fx(&f);
    uint64_t tc = T0 + 10 * MIN_US;
    contact(&f, tc - 2000000ULL, "A");
    decision(&f, tc - 1000000ULL, "A", "ng", VERDICT_SEND);
    command(&f, tc, "A", "ng", RECORD_COMMAND_SENT);
    contact(&f, tc - 1000000ULL, "A"); /* a late record of an earlier contact */
    contact(&f, tc + 30 * MIN_US, "A");
    contact(&f, tc + 25 * HOUR_US, "A");
    contact(&f, tc + 2 * HOUR_US, "A");
    contact(&f, tc, "B");
    decision(&f, tc + 1, "B", "ng", VERDICT_DRY_RUN);
    decision(&f, tc + 2, "B", "ng", VERDICT_DRY_RUN);
    contact(&f, tc, "C");
    decision(&f, tc + 1, "C", "ng", VERDICT_SEND);
    command(&f, tc + 2, "C", "ng", RECORD_COMMAND_FAILED);
    command(&f, tc + DAY_US, "C", "ng", RECORD_COMMAND_SENT);
    decision(&f, tc, "NOBODY", "ng", VERDICT_SEND);
    command(&f, tc, "NOBODY", "ng", RECORD_COMMAND_SENT);
    decision(&f, tc, "A", "", VERDICT_ALREADY_SENT); /* not a send: no new row */
    /* D: a dry run under "a", commanded under "z" at tc and under "m" at tc + 1 h. */
    contact(&f, tc, "D");
    decision(&f, tc, "D", "a", VERDICT_DRY_RUN);
    command(&f, tc + HOUR_US, "D", "m", RECORD_COMMAND_SENT);
    command(&f, tc, "D", "z", RECORD_COMMAND_SENT);
    assert_int_equal(registry_flush(f.reg, err, sizeof(err)), 0);

    struct rows rows = {0};
    assert_int_equal(registry_remediation(f.reg, grab, &rows, err, sizeof(err)), 0);
    assert_int_equal(rows.n, 6);
    /* Within a bot: the authorisation commanded first, then later ones, then never commanded. */
    assert_string_equal(rows.r[3].authorisation, "z");
    assert_string_equal(rows.r[4].authorisation, "m");
    assert_string_equal(rows.r[5].authorisation, "a");
    const struct registry_remediation *a = row_of(&rows, "A", "ng");
    assert_non_null(a);
    assert_string_equal(a->cc, "NG");
    assert_int_equal(a->send_decisions, 1);
    assert_int_equal(a->first_send_us, tc - 1000000ULL);
    assert_int_equal(a->commands_sent, 1);
    assert_int_equal(a->first_command_us, tc);
    assert_int_equal(a->seen_after, 3);
    assert_int_equal(a->first_after_us, tc + 30 * MIN_US);
    assert_int_equal(a->last_after_us, tc + 25 * HOUR_US);
    assert_int_equal(a->first_after_1h_us, tc + 2 * HOUR_US);
    assert_int_equal(a->first_after_24h_us, tc + 25 * HOUR_US);
    const struct registry_remediation *b = row_of(&rows, "B", "ng");
    assert_non_null(b);
    assert_int_equal(b->dry_runs, 2);
    assert_int_equal(b->first_dry_run_us, tc + 1);
    assert_int_equal(b->send_decisions, 0);
    assert_int_equal(b->first_command_us, 0);
    const struct registry_remediation *c = row_of(&rows, "C", "ng");
    assert_non_null(c);
    assert_int_equal(c->commands_failed, 1);
    assert_int_equal(c->first_failed_us, tc + 2);
    assert_int_equal(c->commands_sent, 1);
    assert_int_equal(c->first_command_us, tc + DAY_US);
    assert_int_equal(c->seen_after, 0);
    /* Grouped by bot (A, B, C as they were first seen). */
    assert_ptr_equal(a, &rows.r[0]);
    assert_ptr_equal(b, &rows.r[1]);
    assert_ptr_equal(c, &rows.r[2]);

    /* Day 0: A's command, C's failure, A seen after (three contacts, one bot); day 1: C's
     * command, A seen again. NOBODY's command has no bot and is not counted. */
    struct days days = {0};
    assert_int_equal(registry_remediation_days(f.reg, 0, 0, grab_day, &days, err, sizeof(err)), 0);
    assert_int_equal(days.n, 2);
    assert_int_equal(days.d[0].day, (int64_t)(T0 / DAY_US));
    assert_int_equal(days.d[0].commands_sent, 3); /* A, D under z and m */
    assert_int_equal(days.d[0].commands_failed, 1);
    assert_int_equal(days.d[0].commanded_seen, 1);
    assert_int_equal(days.d[1].commands_sent, 1);
    assert_int_equal(days.d[1].commands_failed, 0);
    assert_int_equal(days.d[1].commanded_seen, 1);
    /* until is exclusive: the first day alone. */
    days.n = 0;
    assert_int_equal(
        registry_remediation_days(f.reg, 0, T0 + DAY_US, grab_day, &days, err, sizeof(err)), 0);
    assert_int_equal(days.n, 1);

    uint64_t end;
    assert_int_equal(registry_data_end(f.reg, &end, err, sizeof(err)), 0);
    assert_int_equal(end, tc + 25 * HOUR_US);
    /* The data end is committed with the batch: a reopened registry has it. */
    registry_close(f.reg);
    assert_int_equal(test_registry_open(&f.reg, f.db, err, sizeof(err)), 0);
    assert_int_equal(registry_data_end(f.reg, &end, err, sizeof(err)), 0);
    assert_int_equal(end, tc + 25 * HOUR_US);
    close_fx(&f);
}

/* A v3 file: the v4 schema less what 3 -> 4 adds (the bot table did not change). Opening it
 * migrates and carries over what v3 knew: the command time, authorisation, the count and last
 * contact after it (standing in for the first contacts, an upper bound), the last dry-run
 * decision, per-day command counts and the data end. */
static void test_migrate_from_v3(void **state)
{
    if (test_registry_is_pg()) {
        skip(); /* SQLite's migrations; PostgreSQL's schema is made whole */
    }
    (void)state;
    struct record_fixture f;
    char err[256];
    open_fx(&f);
    uint64_t tc = T0 + 10 * MIN_US;
    contact(&f, tc - 2000000ULL, "A");
    decision(&f, tc - 1000000ULL, "A", "ng", VERDICT_SEND);
    command(&f, tc, "A", "ng", RECORD_COMMAND_SENT);
    contact(&f, tc + 30 * MIN_US, "A");
    contact(&f, tc + 2 * HOUR_US, "A");
    contact(&f, tc, "B");
    decision(&f, tc + 1, "B", "in", VERDICT_DRY_RUN);
    registry_close(f.reg);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(f.db, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "DROP TABLE remediation; DROP TABLE day_commanded;"
                                  " DROP TABLE day_remediation;"
                                  " DELETE FROM meta WHERE key = 'data_end_us';"
                                  " PRAGMA user_version = 3;",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(test_registry_open(&f.reg, f.db, err, sizeof(err)), 0);
    struct rows rows = {0};
    assert_int_equal(registry_remediation(f.reg, grab, &rows, err, sizeof(err)), 0);
    assert_int_equal(rows.n, 2);
    const struct registry_remediation *a = row_of(&rows, "A", "ng");
    assert_non_null(a);
    assert_int_equal(a->first_command_us, tc);
    assert_int_equal(a->commands_sent, 1);
    assert_int_equal(a->send_decisions, 1);
    assert_int_equal(a->seen_after, 2);
    assert_int_equal(a->last_after_us, tc + 2 * HOUR_US);
    assert_int_equal(a->first_after_us, tc + 2 * HOUR_US);
    assert_int_equal(a->first_after_1h_us, tc + 2 * HOUR_US);
    assert_int_equal(a->first_after_24h_us, 0);
    const struct registry_remediation *b = row_of(&rows, "B", "in");
    assert_non_null(b);
    assert_int_equal(b->dry_runs, 1);
    assert_int_equal(b->first_dry_run_us, tc + 1);
    struct days days = {0};
    assert_int_equal(registry_remediation_days(f.reg, 0, 0, grab_day, &days, err, sizeof(err)), 0);
    assert_int_equal(days.n, 1);
    assert_int_equal(days.d[0].commands_sent, 1);
    uint64_t end;
    assert_int_equal(registry_data_end(f.reg, &end, err, sizeof(err)), 0);
    assert_int_equal(end, tc + 2 * HOUR_US);

    /* The migrated file takes new records: A again past 24 h. */
    f.idx = registry_applied_index(f.reg);
    contact(&f, tc + 26 * HOUR_US, "A");
    assert_int_equal(registry_flush(f.reg, err, sizeof(err)), 0);
    rows.n = 0;
    assert_int_equal(registry_remediation(f.reg, grab, &rows, err, sizeof(err)), 0);
    a = row_of(&rows, "A", "ng");
    assert_int_equal(a->seen_after, 3);
    assert_int_equal(a->first_after_24h_us, tc + 26 * HOUR_US);
    assert_int_equal(registry_data_end(f.reg, &end, err, sizeof(err)), 0);
    assert_int_equal(end, tc + 26 * HOUR_US);
    close_fx(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_migrate_from_v3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
