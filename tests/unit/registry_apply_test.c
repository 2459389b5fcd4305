/* registry_apply_test.c -- registry: migrations, idempotent apply, NAT vs identity counts,
 * per-day counters, remediation columns, follower batching and rebuild == incremental. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evidence/log.h"
#include "registry/registry.h"
#include "registry_target.h"

#define DAY_US 86400000000ULL
#define T0 (1767225600ULL * 1000000ULL) /* 2026-01-01T00:00:00Z */

struct logbuf {
    uint8_t entry[4096][EVENT_RECORD_MAX];
    size_t len[4096];
    size_t n;       /* entries written */
    size_t durable; /* entries a reader may see */
};

/* A new registry for one test (registry_target.h: SQLite, or PostgreSQL under the *_pg run). */
static void tmp_registry(char *out, size_t cap)
{
    char dir[] = "/tmp/sinkd-registry-XXXXXX";
    assert_non_null(mkdtemp(dir));
    test_registry_target(out, cap, dir);
}

static size_t push_contact(struct logbuf *lb, uint64_t t, const char *ip, uint16_t port,
                           const char *host, const char *cc, uint32_t asn, const char *tags)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = t;
    snprintf(c->node, sizeof(c->node), "node-a");
    assert_int_equal(net_addr_parse_ip(ip, &c->src), 0);
    c->src.port = port;
    assert_int_equal(net_addr_parse_ip("198.51.100.7", &c->dst), 0);
    c->dst.port = 443;
    c->transport = CONTACT_TRANSPORT_TCP;
    snprintf(c->family, sizeof(c->family), "plugx");
    c->msg_type = CONTACT_MSG_MACHINE_INFO;
    if (host != NULL) {
        snprintf(c->bot.host, sizeof(c->bot.host), "%s", host);
        snprintf(c->bot.user, sizeof(c->bot.user), "user");
        snprintf(c->bot.local_ip, sizeof(c->bot.local_ip), "10.0.0.5");
    }
    event_bot_key(c, c->bot_key);
    snprintf(c->cc, sizeof(c->cc), "%s", cc);
    c->asn = asn;
    snprintf(c->tags, sizeof(c->tags), "%s", tags);
    int n = event_encode(&r, lb->entry[lb->n], EVENT_RECORD_MAX);
    assert_true(n > 0);
    lb->len[lb->n] = (size_t)n;
    return lb->n++;
}

static void push_command(struct logbuf *lb, uint8_t kind, uint64_t t, const char *bot_key,
                         uint8_t verdict)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = kind;
    if (kind == RECORD_DECISION) {
        r.u.decision.time_us = t;
        snprintf(r.u.decision.bot_key, sizeof(r.u.decision.bot_key), "%s", bot_key);
        snprintf(r.u.decision.authorisation, sizeof(r.u.decision.authorisation), "auth-1");
        r.u.decision.verdict = verdict;
    } else {
        r.u.command.time_us = t;
        snprintf(r.u.command.bot_key, sizeof(r.u.command.bot_key), "%s", bot_key);
        snprintf(r.u.command.authorisation, sizeof(r.u.command.authorisation), "auth-1");
    }
    int n = event_encode(&r, lb->entry[lb->n], EVENT_RECORD_MAX);
    assert_true(n > 0);
    lb->len[lb->n++] = (size_t)n;
}

static const char *key_of(struct logbuf *lb, size_t i)
{
    static struct record r;
    assert_int_equal(event_decode(lb->entry[i], lb->len[i], &r, NULL, 0), 0);
    return r.u.contact.bot_key;
}

/* The NAT data set: three machines behind 203.0.113.1, one machine moving between two dynamic
 * addresses on two days, one bot that never identified itself; a command for one bot. */
static void build_dataset(struct logbuf *lb)
{
    lb->n = 0;
    push_contact(lb, T0 + 1000, "203.0.113.1", 50001, "PC-A", "DE", 3320, "hospital");
    push_contact(lb, T0 + 2000, "203.0.113.1", 50002, "PC-B", "DE", 3320, "");
    push_contact(lb, T0 + 3000, "203.0.113.1", 50003, "PC-C", "DE", 3320, "");
    push_contact(lb, T0 + 4000, "192.0.2.10", 40000, "LAPTOP", "FR", 3215, "");
    push_contact(lb, T0 + DAY_US + 10, "192.0.2.77", 40001, "LAPTOP", "FR", 3215, "energy");
    push_contact(lb, T0 + DAY_US + 20, "2001:db8::5", 1234, NULL, "", 0, "");
    push_contact(lb, T0 + DAY_US + 30, "203.0.113.1", 50004, "PC-A", "DE", 3320, "hospital");
    push_command(lb, RECORD_DECISION, T0 + DAY_US + 40, key_of(lb, 0), VERDICT_SEND);
    push_command(lb, RECORD_COMMAND_SENT, T0 + DAY_US + 50, key_of(lb, 0), 0);
    push_contact(lb, T0 + 2 * DAY_US, "203.0.113.1", 50005, "PC-A", "DE", 3320, "hospital");
    lb->durable = lb->n;
}

static void apply_all(struct registry *reg, struct logbuf *lb, size_t from, size_t to)
{
    char err[256];
    for (size_t i = from; i < to; i++) {
        int rc = registry_apply(reg, i, lb->entry[i], lb->len[i], err, sizeof(err));
        assert_true(rc >= 0);
    }
}

static void push_heartbeats(struct logbuf *lb, uint64_t first, uint64_t last, uint32_t count,
                            const char *ip, const char *bot_key, const char *cc)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_HEARTBEATS;
    struct heartbeats *h = &r.u.heartbeats;
    h->first_time_us = first;
    h->time_us = last;
    h->count = count;
    snprintf(h->node, sizeof(h->node), "node-a");
    assert_int_equal(net_addr_parse_ip(ip, &h->src), 0);
    assert_int_equal(net_addr_parse_ip("198.51.100.7", &h->dst), 0);
    h->transport = CONTACT_TRANSPORT_HTTP_HEADER;
    snprintf(h->family, sizeof(h->family), "plugx");
    snprintf(h->bot_key, sizeof(h->bot_key), "%s", bot_key);
    snprintf(h->cc, sizeof(h->cc), "%s", cc);
    memset(h->heartbeats_sha256, 9, 32);
    int n = event_encode(&r, lb->entry[lb->n], EVENT_RECORD_MAX);
    assert_true(n > 0);
    lb->len[lb->n++] = (size_t)n;
}

static void push_undecoded(struct logbuf *lb, uint64_t t, const char *ip, const char *cc,
                           uint32_t suppressed)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = t;
    assert_int_equal(net_addr_parse_ip(ip, &c->src), 0);
    c->transport = CONTACT_TRANSPORT_TCP;
    snprintf(c->family, sizeof(c->family), "plugx");
    c->msg_type = CONTACT_MSG_UNDECODED;
    c->size = 40;
    c->head_len = 40;
    memset(c->head_sha256, 1, 32);
    snprintf(c->reason, sizeof(c->reason), "no cipher");
    snprintf(c->cc, sizeof(c->cc), "%s", cc);
    c->suppressed = suppressed;
    int n = event_encode(&r, lb->entry[lb->n], EVENT_RECORD_MAX);
    assert_true(n > 0);
    lb->len[lb->n++] = (size_t)n;
}

static int count_group(void *ctx, const struct registry_group_row *row)
{
    *(uint64_t *)ctx += row->count;
    return 0;
}

/* Issue 20 roll-up and issue 18 undecoded callers: a heartbeats record counts exactly its polls
 * (contacts, first and last seen, per-day sets across midnight), for an unidentified bot keyed
 * by address and for an identified one; an undecoded caller is counted apart, with the contacts
 * the per-address bound folded into it, and never as a bot. */
static void test_heartbeats_and_undecoded(void **state)
{
    (void)state;
    static struct logbuf lb;
    char path[256], err[256];
    lb.n = 0;
    /* An unidentified bot: its first contact, then 59 polls rolled up across midnight. */
    struct record first;
    push_contact(&lb, T0 + DAY_US - 1000, "198.51.100.20", 4000, NULL, "NG", 29465, "");
    assert_int_equal(event_decode(lb.entry[0], lb.len[0], &first, NULL, 0), 0);
    /* As the server writes it: a contact without identity carries no bot key. */
    first.u.contact.bot_key[0] = '\0';
    int flen = event_encode(&first, lb.entry[0], EVENT_RECORD_MAX);
    assert_true(flen > 0);
    lb.len[0] = (size_t)flen;
    push_heartbeats(&lb, T0 + DAY_US - 500, T0 + DAY_US + 3600000000ull, 59, "198.51.100.20", "",
                    "NG");
    /* An identified bot: 1 contact and 3 heartbeats records of 60, 1 and 2 polls. */
    size_t pc = push_contact(&lb, T0 + 100, "192.0.2.30", 5000, "PC-Z", "IN", 9829, "");
    const char *zkey = key_of(&lb, pc);
    char zk[33];
    snprintf(zk, sizeof(zk), "%s", zkey);
    push_heartbeats(&lb, T0 + 200, T0 + 300, 60, "192.0.2.30", zk, "IN");
    push_heartbeats(&lb, T0 + 400, T0 + 400, 1, "192.0.2.30", zk, "IN");
    push_heartbeats(&lb, T0 + 500, T0 + 600, 2, "192.0.2.30", zk, "IN");
    /* Undecoded callers: 2 records from one address (the second carrying 4 suppressed), one
     * from another. */
    push_undecoded(&lb, T0 + 700, "203.0.113.50", "CN", 0);
    push_undecoded(&lb, T0 + 800, "203.0.113.50", "CN", 4);
    push_undecoded(&lb, T0 + 900, "203.0.113.51", "IR", 0);
    lb.durable = lb.n;
    tmp_registry(path, sizeof(path));
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    apply_all(reg, &lb, 0, lb.n);
    assert_int_equal(registry_flush(reg, err, sizeof(err)), 0);

    struct registry_filter all = {0};
    struct registry_totals t;
    assert_int_equal(registry_totals(reg, &all, &t, err, sizeof(err)), 0);
    assert_int_equal(t.bots, 2);
    assert_int_equal(t.identified, 1);
    assert_int_equal(t.ips, 2);
    assert_int_equal(t.contacts, (1 + 59) + (1 + 60 + 1 + 2));
    assert_int_equal(t.undecoded_ips, 2);
    assert_int_equal(t.undecoded_contacts, 1 + (1 + 4) + 1);
    uint64_t und = 0;
    assert_int_equal(registry_group_undecoded(reg, &all, REGISTRY_GROUP_CC, 0, count_group, &und,
                                              err, sizeof(err)),
                     0);
    assert_int_equal(und, 2);
    /* The unidentified bot was seen on both days; its last poll is its last seen. */
    struct registry_bot b;
    char anon[33];
    struct contact a = first.u.contact;
    memset(&a.bot, 0, sizeof(a.bot));
    event_bot_key(&a, anon);
    assert_int_equal(registry_bot_get(reg, anon, &b, err, sizeof(err)), 1);
    assert_int_equal(b.first_seen_us, T0 + DAY_US - 1000);
    assert_int_equal(b.last_seen_us, T0 + DAY_US + 3600000000ull);
    assert_int_equal(registry_bot_get(reg, zk, &b, err, sizeof(err)), 1);
    assert_int_equal(b.last_seen_us, T0 + 600);
    registry_close(reg);
}

static void test_migrate_from_v0(void **state)
{
    (void)state;
    if (test_registry_is_pg()) {
        skip(); /* SQLite's file format and migrations; PostgreSQL's schema is made whole */
    }
    char path[256], err[256];
    tmp_registry(path, sizeof(path));
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    registry_close(reg);

    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), REGISTRY_SCHEMA_VERSION);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);
    /* A version-1 file as sinkd 1 wrote it (migration 0 -> 1 verbatim), with one bot in it:
     * opening it runs 1 -> 2 (remediation columns) and 2 -> 3 (blob keys, integer bot ids). */
    unlink(path);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(
            db,
            "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
            "INSERT INTO meta(key, value) VALUES('next_index', 0), ('bad_records', 0);"
            "CREATE TABLE bot("
            " bot_key TEXT PRIMARY KEY NOT NULL, family TEXT NOT NULL,"
            " host TEXT NOT NULL, user TEXT NOT NULL, os TEXT NOT NULL, local_ip TEXT NOT NULL,"
            " campaign TEXT NOT NULL, version TEXT NOT NULL,"
            " first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL,"
            " src_ip TEXT NOT NULL, src_port INTEGER NOT NULL, dst_ip TEXT NOT NULL,"
            " dst_port INTEGER NOT NULL, transport INTEGER NOT NULL, node TEXT NOT NULL,"
            " cc TEXT NOT NULL, asn INTEGER NOT NULL, tags TEXT NOT NULL, contacts INTEGER NOT "
            "NULL);"
            "CREATE TABLE source_ip(ip TEXT PRIMARY KEY NOT NULL, cc TEXT NOT NULL, asn INTEGER "
            "NOT NULL, first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL, contacts "
            "INTEGER NOT NULL) WITHOUT ROWID;"
            "CREATE TABLE day_bot(day INTEGER NOT NULL, bot_key TEXT NOT NULL,"
            " PRIMARY KEY(day, bot_key)) WITHOUT ROWID;"
            "CREATE TABLE day_ip(day INTEGER NOT NULL, ip TEXT NOT NULL, PRIMARY KEY(day, ip))"
            " WITHOUT ROWID;"
            "CREATE TABLE day_cc(day INTEGER NOT NULL, cc TEXT NOT NULL, bots INTEGER NOT NULL,"
            " ips INTEGER NOT NULL, contacts INTEGER NOT NULL, PRIMARY KEY(day, cc)) WITHOUT "
            "ROWID;"
            "CREATE INDEX bot_cc ON bot(cc, last_seen_us);"
            "CREATE INDEX bot_asn ON bot(asn, last_seen_us);"
            "CREATE INDEX bot_last_seen ON bot(last_seen_us);"
            "CREATE INDEX source_ip_cc ON source_ip(cc, last_seen_us);"
            "CREATE INDEX source_ip_asn ON source_ip(asn, last_seen_us);"
            "INSERT INTO bot VALUES('00112233445566778899aabbccddeeff',"
            "'plugx','h','u','','','','',1,2,'192.0.2.1',5,'198.51.100.7',443,1,'n','DE',"
            "3320,'',7); INSERT INTO source_ip VALUES('192.0.2.1','DE',3320,1,2,7);"
            "INSERT INTO day_bot VALUES(0,'00112233445566778899aabbccddeeff');"
            "INSERT INTO day_ip VALUES(0,'192.0.2.1');"
            "PRAGMA user_version = 1;",
            NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    struct registry_bot b;
    assert_int_equal(
        registry_bot_get(reg, "00112233445566778899aabbccddeeff", &b, err, sizeof(err)), 1);
    assert_int_equal(b.contacts, 7);
    assert_string_equal(b.bot_key, "00112233445566778899aabbccddeeff");
    assert_string_equal(b.cc, "DE");
    /* 2 -> 3 carried the source IP over as a blob key. */
    struct registry_totals tot;
    struct registry_filter all = {0};
    assert_int_equal(registry_totals(reg, &all, &tot, err, sizeof(err)), 0);
    assert_int_equal(tot.bots, 1);
    assert_int_equal(tot.ips, 1);
    /* ...and the per-day sets: a contact of the same bot and IP on day 0 is not new that day. */
    registry_close(reg);
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM day_bot JOIN bot ON"
                                        " bot.id = day_bot.bot), (SELECT count(*) FROM day_ip"
                                        " WHERE ip = x'c0000201')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    assert_int_equal(b.commanded_at_us, 0);
    assert_string_equal(b.authorisation, "");
    registry_close(reg);

    /* A schema from the future is refused, not silently used. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), REGISTRY_E_VERSION);
    assert_null(reg);
}

static void test_idempotent_and_resume(void **state)
{
    (void)state;
    static struct logbuf lb;
    char path[256], err[256];
    build_dataset(&lb);
    tmp_registry(path, sizeof(path));
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    apply_all(reg, &lb, 0, 5);
    assert_int_equal(registry_flush(reg, err, sizeof(err)), 0);
    assert_int_equal(registry_applied_index(reg), 5);
    /* Re-applying an applied index changes nothing. */
    assert_int_equal(registry_apply(reg, 0, lb.entry[0], lb.len[0], err, sizeof(err)), 0);
    assert_int_equal(registry_apply(reg, 4, lb.entry[4], lb.len[4], err, sizeof(err)), 0);
    /* Skipping ahead is refused. */
    assert_int_equal(registry_apply(reg, 7, lb.entry[7], lb.len[7], err, sizeof(err)),
                     REGISTRY_E_GAP);
    registry_close(reg);

    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    assert_int_equal(registry_applied_index(reg), 5);
    struct registry_bot b;
    assert_int_equal(registry_bot_get(reg, key_of(&lb, 0), &b, err, sizeof(err)), 1);
    assert_int_equal(b.contacts, 1);
    /* Replaying the whole log after the restart applies only the rest. */
    apply_all(reg, &lb, 0, lb.n);
    assert_int_equal(registry_applied_index(reg), lb.n);
    assert_int_equal(registry_bot_get(reg, key_of(&lb, 0), &b, err, sizeof(err)), 1);
    assert_int_equal(b.contacts, 3);
    /* Undecodable bytes are skipped, counted, and still advance the index. */
    uint8_t junk[3] = {0x7f, 1, 2};
    assert_int_equal(registry_apply(reg, lb.n, junk, sizeof(junk), err, sizeof(err)),
                     REGISTRY_E_DECODE);
    assert_int_equal(registry_applied_index(reg), lb.n + 1);
    registry_close(reg);
}

static void test_counts_nat_days_remediation(void **state)
{
    (void)state;
    static struct logbuf lb;
    char path[256], err[256];
    build_dataset(&lb);
    tmp_registry(path, sizeof(path));
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    apply_all(reg, &lb, 0, lb.n);
    assert_int_equal(registry_flush(reg, err, sizeof(err)), 0);

    struct registry_filter all = {0};
    struct registry_totals t;
    assert_int_equal(registry_totals(reg, &all, &t, err, sizeof(err)), 0);
    /* 5 machines (PC-A, PC-B, PC-C, LAPTOP, the anonymous one) on 4 addresses. */
    assert_int_equal(t.bots, 5);
    assert_int_equal(t.ips, 4);
    assert_int_equal(t.contacts, 8);
    assert_int_equal(t.commanded, 1);
    assert_int_equal(t.seen_after_command, 1);

    /* LAPTOP's row follows its latest contact: new address, new tag. */
    struct registry_bot b;
    assert_int_equal(registry_bot_get(reg, key_of(&lb, 3), &b, err, sizeof(err)), 1);
    assert_int_equal(b.first_seen_us, T0 + 4000);
    assert_int_equal(b.last_seen_us, T0 + DAY_US + 10);
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(&b.src, ip);
    assert_string_equal(ip, "192.0.2.77");
    assert_int_equal(b.src.port, 40001);
    assert_string_equal(b.tags, "energy");
    assert_string_equal(b.bot.host, "LAPTOP");

    /* PC-A: commanded at day 1 + 50us, seen once after (day 2). */
    assert_int_equal(registry_bot_get(reg, key_of(&lb, 0), &b, err, sizeof(err)), 1);
    assert_int_equal(b.commanded_at_us, T0 + DAY_US + 50);
    assert_int_equal(b.last_verdict, VERDICT_SEND);
    assert_string_equal(b.authorisation, "auth-1");
    assert_int_equal(b.seen_after_command, 1);
    assert_int_equal(b.last_seen_after_command_us, T0 + 2 * DAY_US);
    assert_int_equal(b.contacts, 3);

    /* Anonymous bot keyed by its source IP. */
    struct record r;
    assert_int_equal(event_decode(lb.entry[5], lb.len[5], &r, NULL, 0), 0);
    char k[33];
    event_bot_key(&r.u.contact, k);
    assert_int_equal(registry_bot_get(reg, k, &b, err, sizeof(err)), 1);

    struct registry_totals de;
    struct registry_filter fde = {.cc = "DE"};
    assert_int_equal(registry_totals(reg, &fde, &de, err, sizeof(err)), 0);
    assert_int_equal(de.bots, 3);
    assert_int_equal(de.ips, 1);

    registry_close(reg);
}

struct day_capture {
    struct registry_day d[8];
    size_t n;
};

static int cap_day(void *ctx, const struct registry_day *d)
{
    struct day_capture *c = ctx;
    if (c->n < 8) {
        c->d[c->n++] = *d;
    }
    return 0;
}

/* A new registry (tmp_registry) with every entry of lb applied and committed. */
static struct registry *new_registry_with(struct logbuf *lb)
{
    char path[256], err[256];
    tmp_registry(path, sizeof(path));
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    apply_all(reg, lb, 0, lb->n);
    assert_int_equal(registry_flush(reg, err, sizeof(err)), 0);
    return reg;
}

static void test_days(void **state)
{
    (void)state;
    static struct logbuf lb;
    char err[256];
    build_dataset(&lb);
    /* A second call of PC-A on day 2, from the same IP: counted once per day. */
    push_contact(&lb, T0 + 2 * DAY_US + 99, "203.0.113.1", 50006, "PC-A", "DE", 3320, "hospital");
    struct registry *reg = new_registry_with(&lb);
    struct day_capture c = {0};
    assert_int_equal(registry_days(reg, 0, 0, NULL, cap_day, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 3);
    /* Day 0: PC-A, PC-B, PC-C behind one IP, LAPTOP on another. */
    assert_int_equal(c.d[0].day, (int64_t)(T0 / DAY_US));
    assert_int_equal(c.d[0].bots, 4);
    assert_int_equal(c.d[0].ips, 2);
    assert_int_equal(c.d[0].contacts, 4);
    /* Day 1: LAPTOP (new IP), anonymous, PC-A. */
    assert_int_equal(c.d[1].bots, 3);
    assert_int_equal(c.d[1].ips, 3);
    assert_int_equal(c.d[2].bots, 1);
    assert_int_equal(c.d[2].ips, 1);
    assert_int_equal(c.d[2].contacts, 2);
    /* Per country, and a window that starts on day 1. */
    memset(&c, 0, sizeof(c));
    assert_int_equal(registry_days(reg, T0 + DAY_US, 0, "DE", cap_day, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.d[0].bots, 1);
    assert_int_equal(c.d[0].ips, 1);
    registry_close(reg);
}

/* Records out of time order (a node's clock, two nodes' logs): a bot and its address seen on
 * day 2, then twice on day 1. Day 1 counts them once each, though neither is new then by its
 * last-seen day: the per-day set's answer, not the shortcut for later days, decides. */
static void test_days_out_of_order(void **state)
{
    (void)state;
    static struct logbuf lb;
    char err[256];
    lb.n = 0;
    push_contact(&lb, T0 + 2 * DAY_US + 10, "192.0.2.44", 1000, "LATE", "FR", 3215, "");
    push_contact(&lb, T0 + DAY_US + 10, "192.0.2.44", 1001, "LATE", "FR", 3215, "");
    push_contact(&lb, T0 + DAY_US + 20, "192.0.2.44", 1002, "LATE", "FR", 3215, "");
    push_contact(&lb, T0 + 2 * DAY_US + 20, "192.0.2.44", 1003, "LATE", "FR", 3215, "");
    struct registry *reg = new_registry_with(&lb);
    struct day_capture c = {0};
    assert_int_equal(registry_days(reg, 0, 0, NULL, cap_day, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(c.d[i].day, (int64_t)(T0 / DAY_US) + 1 + i);
        assert_int_equal(c.d[i].bots, 1);
        assert_int_equal(c.d[i].ips, 1);
        assert_int_equal(c.d[i].contacts, 2);
    }
    registry_close(reg);
}

/* ---- a fake log for the follower --------------------------------------------------------- */

struct fake_reader {
    struct logbuf *lb;
    size_t pos;
};

static int fake_open(void **reader, const char *state_dir, uint64_t start, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    struct fake_reader *r = calloc(1, sizeof(*r));
    r->lb = (struct logbuf *)(uintptr_t)strtoull(state_dir, NULL, 16);
    r->pos = start;
    *reader = r;
    return 0;
}

static int fake_next(void *reader, const uint8_t **entry, size_t *len, uint64_t *index, char *err,
                     size_t errlen)
{
    (void)err;
    (void)errlen;
    struct fake_reader *r = reader;
    if (r->pos >= __atomic_load_n(&r->lb->durable, __ATOMIC_ACQUIRE)) {
        return 0;
    }
    *entry = r->lb->entry[r->pos];
    *len = r->lb->len[r->pos];
    *index = r->pos++;
    return 1;
}

static void fake_close(void *reader)
{
    free(reader);
}

static int64_t fake_size(void *reader)
{
    struct fake_reader *r = reader;
    return (int64_t)__atomic_load_n(&r->lb->durable, __ATOMIC_ACQUIRE);
}

static const struct registry_log_ops fake_ops = {fake_open, fake_next, fake_close, fake_size};

struct dump {
    char *buf;
    size_t len;
    FILE *f;
};

static int dump_bot(void *ctx, const struct registry_bot *b, bool flagged)
{
    (void)flagged;
    FILE *f = ctx;
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(&b->src, ip);
    fprintf(f, "%s %s %s %s %llu %llu %s:%u %s %u %s %llu %llu %s %u %llu\n", b->bot_key, b->family,
            b->bot.host, b->bot.user, (unsigned long long)b->first_seen_us,
            (unsigned long long)b->last_seen_us, ip, b->src.port, b->cc, b->asn, b->tags,
            (unsigned long long)b->contacts, (unsigned long long)b->commanded_at_us,
            b->authorisation, b->last_verdict, (unsigned long long)b->seen_after_command);
    return 0;
}

static int dump_day(void *ctx, const struct registry_day *d)
{
    fprintf(ctx, "day %lld %llu %llu %llu\n", (long long)d->day, (unsigned long long)d->bots,
            (unsigned long long)d->ips, (unsigned long long)d->contacts);
    return 0;
}

static int dump_remediation(void *ctx, const struct registry_remediation *r)
{
    fprintf(ctx, "rem %s %s %s %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu\n",
            r->bot_key, r->cc, r->authorisation, (unsigned long long)r->send_decisions,
            (unsigned long long)r->first_send_us, (unsigned long long)r->dry_runs,
            (unsigned long long)r->first_dry_run_us, (unsigned long long)r->commands_sent,
            (unsigned long long)r->first_command_us, (unsigned long long)r->commands_failed,
            (unsigned long long)r->first_failed_us, (unsigned long long)r->seen_after,
            (unsigned long long)r->first_after_us, (unsigned long long)r->last_after_us,
            (unsigned long long)r->first_after_1h_us, (unsigned long long)r->first_after_24h_us);
    return 0;
}

static int dump_remediation_day(void *ctx, const struct registry_remediation_day *d)
{
    fprintf(ctx, "remday %lld %llu %llu %llu\n", (long long)d->day,
            (unsigned long long)d->commands_sent, (unsigned long long)d->commands_failed,
            (unsigned long long)d->commanded_seen);
    return 0;
}

static char *dump_registry(const char *path)
{
    char err[256];
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, path, err, sizeof(err)), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct registry_filter all = {.order = REGISTRY_ORDER_CC};
    assert_int_equal(registry_bots(reg, &all, dump_bot, f, err, sizeof(err)), 0);
    assert_int_equal(registry_days(reg, 0, 0, NULL, dump_day, f, err, sizeof(err)), 0);
    assert_int_equal(registry_days(reg, 0, 0, "DE", dump_day, f, err, sizeof(err)), 0);
    assert_int_equal(registry_remediation(reg, dump_remediation, f, err, sizeof(err)), 0);
    assert_int_equal(
        registry_remediation_days(reg, 0, 0, dump_remediation_day, f, err, sizeof(err)), 0);
    uint64_t end = 0;
    assert_int_equal(registry_data_end(reg, &end, err, sizeof(err)), 0);
    fprintf(f, "end %llu\n", (unsigned long long)end);
    fprintf(f, "next %llu\n", (unsigned long long)registry_applied_index(reg));
    fclose(f);
    registry_close(reg);
    return buf;
}

static void wait_applied(struct registry *reg, uint64_t want)
{
    struct registry_follow_stats s;
    for (int i = 0; i < 3000; i++) { /* at most 30 s */
        registry_follow_stats(reg, &s);
        if (s.applied_index >= want) {
            return;
        }
        struct timespec ts = {0, 10000000L};
        nanosleep(&ts, NULL);
    }
    fail_msg("follower stuck at %llu of %llu (%s)", (unsigned long long)s.applied_index,
             (unsigned long long)want, s.error ? s.error_text : "no error");
}

static void test_follower_and_rebuild(void **state)
{
    (void)state;
    static struct logbuf lb;
    char inc[256], fol[256], reb[256], err[256], handle[32];
    build_dataset(&lb);
    /* More traffic: 2000 contacts of 300 bots over 3 days, so batches have something to do. */
    for (size_t i = 0; i < 2000; i++) {
        char host[32], ip[32];
        snprintf(host, sizeof(host), "HOST-%zu", i % 300);
        snprintf(ip, sizeof(ip), "192.0.2.%zu", (i * 7) % 250 + 1);
        push_contact(&lb, T0 + (i % 3) * DAY_US + i, ip, (uint16_t)(1024 + i), host,
                     i % 2 ? "DE" : "NL", 64496 + (uint32_t)(i % 5), i % 11 ? "" : "hospital");
    }
    snprintf(handle, sizeof(handle), "%llx", (unsigned long long)(uintptr_t)&lb);

    /* Incremental, applied by hand in odd-sized batches. */
    tmp_registry(inc, sizeof(inc));
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, inc, err, sizeof(err)), 0);
    for (size_t i = 0; i < lb.n; i++) {
        apply_all(reg, &lb, i, i + 1);
        if (i % 7 == 0) {
            assert_int_equal(registry_flush(reg, err, sizeof(err)), 0);
        }
    }
    registry_close(reg);

    /* Follower, with the log growing while it runs. */
    tmp_registry(fol, sizeof(fol));
    assert_int_equal(test_registry_open(&reg, fol, err, sizeof(err)), 0);
    lb.durable = 0;
    struct registry_follow_config cfg = {
        .state_dir = handle, .ops = &fake_ops, .batch_max = 64, .batch_ms = 5, .idle_ms = 1};
    assert_int_equal(registry_follow_start(reg, &cfg, err, sizeof(err)), 0);
    /* The writer is the follower's while it runs. */
    assert_int_equal(registry_apply(reg, 0, lb.entry[0], lb.len[0], err, sizeof(err)),
                     REGISTRY_E_BUSY);
    for (size_t d = 500; d <= lb.n; d += 500) {
        __atomic_store_n(&lb.durable, d, __ATOMIC_RELEASE);
        wait_applied(reg, d);
    }
    __atomic_store_n(&lb.durable, lb.n, __ATOMIC_RELEASE);
    wait_applied(reg, lb.n);
    struct registry_follow_stats s;
    registry_follow_stats(reg, &s);
    assert_int_equal(s.records, lb.n);
    assert_true(s.batch_max <= 64);
    assert_true(s.batch_max >= 1);
    assert_true(s.batches >= lb.n / 64);
    assert_int_equal(s.lag, 0);
    assert_int_equal(s.log_size_seen, lb.n);
    assert_int_equal(registry_follow_stop(reg, err, sizeof(err)), 0);
    registry_close(reg);

    /* Rebuild: everything in one catch-up. */
    tmp_registry(reb, sizeof(reb));
    assert_int_equal(test_registry_open(&reg, reb, err, sizeof(err)), 0);
    assert_int_equal(registry_catch_up(reg, handle, &fake_ops, 0, err, sizeof(err)), (int64_t)lb.n);
    /* A second catch-up has nothing left to do. */
    assert_int_equal(registry_catch_up(reg, handle, &fake_ops, 0, err, sizeof(err)), 0);
    registry_close(reg);

    char *a = dump_registry(inc), *b = dump_registry(fol), *c = dump_registry(reb);
    assert_true(strlen(a) > 1000);
    assert_string_equal(a, b);
    assert_string_equal(a, c);
    free(a);
    free(b);
    free(c);
}

/* The real evidence log: the follower (default ops) applies what the log writer made durable. */
static void test_evidence_log_follow(void **state)
{
    (void)state;
    static struct logbuf lb;
    char dir[] = "/tmp/sinkd-registry-state-XXXXXX", db[256], err[256];
    assert_non_null(mkdtemp(dir));
    build_dataset(&lb);
    struct evlog_options opt = {.origin = "sinkd.test/registry", .create_key = true};
    struct evlog *log;
    assert_int_equal(evlog_open(&log, dir, &opt, NULL, err, sizeof(err)), 0);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(evlog_append(log, lb.entry[i], lb.len[i], NULL), 0);
    }
    assert_int_equal(evlog_commit(log, err, sizeof(err)), 0);

    test_registry_target(db, sizeof(db), dir);
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, db, err, sizeof(err)), 0);
    struct registry_follow_config cfg = {.state_dir = dir, .idle_ms = 1};
    assert_int_equal(registry_follow_start(reg, &cfg, err, sizeof(err)), 0);
    wait_applied(reg, 5);
    for (size_t i = 5; i < lb.n; i++) {
        assert_int_equal(evlog_append(log, lb.entry[i], lb.len[i], NULL), 0);
    }
    assert_int_equal(evlog_commit(log, err, sizeof(err)), 0);
    wait_applied(reg, lb.n);
    assert_int_equal(registry_follow_stop(reg, err, sizeof(err)), 0);
    assert_int_equal(evlog_close(log, err, sizeof(err)), 0);
    struct registry_totals t;
    struct registry_filter all = {0};
    assert_int_equal(registry_totals(reg, &all, &t, err, sizeof(err)), 0);
    assert_int_equal(t.bots, 5);
    assert_int_equal(t.ips, 4);
    registry_close(reg);
}

/* Everything but the last line ("next N": the applied index of the log the dump was opened for). */
static void assert_same_rows(const char *a, const char *b)
{
    const char *ea = strstr(a, "\nnext "), *eb = strstr(b, "\nnext ");
    assert_non_null(ea);
    assert_non_null(eb);
    assert_int_equal(ea - a, eb - b);
    assert_memory_equal(a, b, (size_t)(ea - a));
}

static struct registry *open_source(const char *target, const char *source)
{
    char err[256];
    struct registry *reg;
    assert_int_equal(registry_open(&reg, target, err, sizeof(err)), 0);
    assert_int_equal(registry_set_source(reg, source, err, sizeof(err)), 0);
    return reg;
}

/* 2000 contacts of 300 bots over 3 days, appended to lb, `offset_us` into each second: what a
 * second seized address sees of the same bots. A bot or address on a day counts under the
 * country of its first contact that day in the order records are applied, so each bot and
 * address keeps one country here: with two logs applied in turns, that order is the turns'. */
static void add_traffic(struct logbuf *lb, uint64_t offset_us)
{
    for (size_t i = 0; i < 2000; i++) {
        char host[32], ip[32];
        size_t h = i % 300;
        snprintf(host, sizeof(host), "HOST-%zu", h);
        snprintf(ip, sizeof(ip), "198.51.100.%zu", h % 250 + 1); /* hosts h, h + 250 share one */
        push_contact(lb, T0 + (i % 3) * DAY_US + i * 1000 + offset_us, ip, (uint16_t)(1024 + i),
                     host, h % 2 ? "DE" : "NL", 64496 + (uint32_t)(h % 5),
                     i % 11 ? "" : "hospital");
    }
    lb->durable = lb->n;
}

/* PostgreSQL only: one database shared by two nodes' logs (DESIGN.md "Multi-node"), both of
 * which see the same 300 bots. Each log keeps its own applied index; the rows are those of one
 * SQLite registry fed both logs, whether the two logs are applied in turns or by two followers
 * at once (each its own connection, contending for the same bot rows). */
static void test_shared_registry(void **state)
{
    (void)state;
    if (!test_registry_is_pg()) {
        skip();
    }
    static struct logbuf x, y, both;
    char err[256], lite[256], seq[256], par[256], hx[32], hy[32];
    build_dataset(&x);
    add_traffic(&x, 100);
    y.n = 0;
    add_traffic(&y, 300);
    both.n = 0;
    for (size_t i = 0; i < x.n + y.n; i++) {
        const struct logbuf *from = i < x.n ? &x : &y;
        size_t k = i < x.n ? i : i - x.n;
        memcpy(both.entry[i], from->entry[k], from->len[k]);
        both.len[i] = from->len[k];
    }
    both.n = both.durable = x.n + y.n;

    /* The reference: both logs, one after the other, in one SQLite file. */
    char dir[] = "/tmp/sinkd-registry-lite-XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(lite, sizeof(lite), "%s/registry.db", dir);
    struct registry *reg;
    assert_int_equal(registry_open(&reg, lite, err, sizeof(err)), 0);
    assert_false(registry_is_shared(reg));
    apply_all(reg, &both, 0, both.n);
    registry_close(reg);

    /* In turns: 400 records of node a, then 400 of node b, ... */
    tmp_registry(seq, sizeof(seq));
    struct registry *a = open_source(seq, "node-a.example/log");
    struct registry *b = open_source(seq, "node-b.example/log");
    assert_true(registry_is_shared(a));
    for (size_t i = 0; i < x.n || i < y.n; i += 400) {
        apply_all(a, &x, i < x.n ? i : x.n, i + 400 < x.n ? i + 400 : x.n);
        assert_int_equal(registry_flush(a, err, sizeof(err)), 0);
        apply_all(b, &y, i < y.n ? i : y.n, i + 400 < y.n ? i + 400 : y.n);
        assert_int_equal(registry_flush(b, err, sizeof(err)), 0);
    }
    registry_close(a);
    registry_close(b);

    /* Each log's applied index is its own; a log never seen starts at 0. */
    a = open_source(seq, "node-a.example/log");
    b = open_source(seq, "node-b.example/log");
    struct registry *c = open_source(seq, "node-c.example/log");
    assert_int_equal(registry_applied_index(a), x.n);
    assert_int_equal(registry_applied_index(b), y.n);
    assert_int_equal(registry_applied_index(c), 0);
    /* Re-applying what a log already gave changes nothing. */
    assert_int_equal(registry_apply(a, 0, x.entry[0], x.len[0], err, sizeof(err)), 0);
    registry_close(a);
    registry_close(b);
    registry_close(c);

    /* A shared registry refuses a log it cannot name. */
    assert_int_equal(registry_open(&reg, seq, err, sizeof(err)), 0);
    assert_int_equal(registry_apply(reg, 0, x.entry[0], x.len[0], err, sizeof(err)), REGISTRY_ERR);
    assert_non_null(strstr(err, "shared by nodes"));
    assert_int_equal(registry_set_source(reg, "", err, sizeof(err)), REGISTRY_ERR);
    registry_close(reg);

    /* At once: two followers, two connections, small batches so they contend for the lock. */
    tmp_registry(par, sizeof(par));
    a = open_source(par, "node-a.example/log");
    b = open_source(par, "node-b.example/log");
    snprintf(hx, sizeof(hx), "%llx", (unsigned long long)(uintptr_t)&x);
    snprintf(hy, sizeof(hy), "%llx", (unsigned long long)(uintptr_t)&y);
    struct registry_follow_config cx = {
        .state_dir = hx, .ops = &fake_ops, .batch_max = 10, .batch_ms = 1, .idle_ms = 1};
    struct registry_follow_config cy = {
        .state_dir = hy, .ops = &fake_ops, .batch_max = 50, .batch_ms = 1, .idle_ms = 1};
    assert_int_equal(registry_follow_start(a, &cx, err, sizeof(err)), 0);
    assert_int_equal(registry_follow_start(b, &cy, err, sizeof(err)), 0);
    wait_applied(a, x.n);
    wait_applied(b, y.n);
    assert_int_equal(registry_follow_stop(a, err, sizeof(err)), 0);
    assert_int_equal(registry_follow_stop(b, err, sizeof(err)), 0);
    registry_close(a);
    registry_close(b);

    char *want = dump_registry(lite), *got_seq = dump_registry(seq), *got_par = dump_registry(par);
    assert_true(strlen(want) > 1000);
    assert_same_rows(want, got_seq);
    assert_same_rows(want, got_par);
    free(want);
    free(got_seq);
    free(got_par);

    /* registry_destroy empties the database; the next open makes the schema again. */
    assert_int_equal(registry_destroy(seq, err, sizeof(err)), 0);
    a = open_source(seq, "node-a.example/log");
    assert_int_equal(registry_applied_index(a), 0);
    struct registry_totals t;
    struct registry_filter all = {0};
    assert_int_equal(registry_totals(a, &all, &t, err, sizeof(err)), 0);
    assert_int_equal(t.bots, 0);
    registry_close(a);

    /* A schema newer than this build is refused, naming its version. */
    PGconn *conn = PQconnectdb(seq);
    PQclear(PQexec(conn, "UPDATE meta SET value = 99 WHERE key = 'schema_version'"));
    PQfinish(conn);
    assert_int_equal(registry_open(&reg, seq, err, sizeof(err)), REGISTRY_E_VERSION);
    assert_non_null(strstr(err, "schema version 99"));
}

/* PostgreSQL only: the batch copies new per-day pairs straight in; one already stored (a
 * registry edited by hand) must not fail the batch but take the ON CONFLICT form, counted as the
 * per-record path counts it. */
static void test_batch_pair_already_stored(void **state)
{
    (void)state;
    if (!test_registry_is_pg()) {
        skip();
    }
    static struct logbuf lb;
    char err[256], target[256];
    lb.n = 0;
    size_t first = push_contact(&lb, T0 + 10, "192.0.2.1", 1000, "PC-1", "DE", 3320, "");
    push_contact(&lb, T0 + DAY_US + 10, "192.0.2.1", 1001, "PC-1", "DE", 3320, "");
    push_contact(&lb, T0 + DAY_US + 20, "192.0.2.2", 1002, "PC-2", "DE", 3320, "");
    tmp_registry(target, sizeof(target));
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, target, err, sizeof(err)), 0);
    apply_all(reg, &lb, 0, 1);
    assert_int_equal(registry_flush(reg, err, sizeof(err)), 0);
    PGconn *conn = PQconnectdb(target);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "INSERT INTO day_bot(day, bot) SELECT %llu, id FROM bot WHERE bot_key ="
             " decode('%s', 'hex')",
             (unsigned long long)(T0 / DAY_US + 1), key_of(&lb, first));
    PGresult *r = PQexec(conn, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    assert_string_equal(PQcmdTuples(r), "1");
    PQclear(r);
    PQfinish(conn);
    apply_all(reg, &lb, 1, 3);
    assert_int_equal(registry_flush(reg, err, sizeof(err)), 0);
    struct day_capture c = {0};
    assert_int_equal(registry_days(reg, 0, 0, NULL, cap_day, &c, err, sizeof(err)), 0);
    assert_int_equal(c.n, 2);
    assert_int_equal(c.d[1].bots, 2);
    assert_int_equal(c.d[1].contacts, 2);
    registry_close(reg);
}

/* PostgreSQL only: a database made by an earlier build (per-country and per-AS indexes, no
 * fillfactor) is brought to the batch writer's layout when opened. */
static void test_pg_layout_upgrade(void **state)
{
    (void)state;
    if (!test_registry_is_pg()) {
        skip();
    }
    char err[256], target[256];
    tmp_registry(target, sizeof(target));
    struct registry *reg;
    assert_int_equal(test_registry_open(&reg, target, err, sizeof(err)), 0);
    registry_close(reg);
    PGconn *conn = PQconnectdb(target);
    PQclear(PQexec(conn, "CREATE INDEX bot_cc ON bot(cc); CREATE INDEX source_ip_asn ON"
                         " source_ip(asn); ALTER TABLE bot RESET (fillfactor)"));
    const char *check = "SELECT (SELECT count(*) FROM pg_indexes WHERE indexname IN ('bot_cc',"
                        " 'source_ip_asn')) || ' ' || (SELECT count(*) FROM pg_class WHERE relname"
                        " IN ('bot', 'source_ip') AND reloptions @> '{fillfactor=80}')";
    PGresult *r = PQexec(conn, check);
    assert_string_equal(PQgetvalue(r, 0, 0), "2 1");
    PQclear(r);
    assert_int_equal(test_registry_open(&reg, target, err, sizeof(err)), 0);
    registry_close(reg);
    r = PQexec(conn, check);
    assert_string_equal(PQgetvalue(r, 0, 0), "0 2");
    PQclear(r);
    PQfinish(conn);
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* PostgreSQL only: a batch being gathered holds no lock (another node commits meanwhile without
 * waiting), and a batch whose log another writer applied meanwhile is refused, not applied twice.
 */
static void test_pg_batch_begins_late(void **state)
{
    (void)state;
    if (!test_registry_is_pg()) {
        skip();
    }
    static struct logbuf x, y;
    char err[256], target[256];
    build_dataset(&x);
    y.n = 0;
    add_traffic(&y, 300);
    tmp_registry(target, sizeof(target));
    struct registry *a = open_source(target, "node-a.example/log");
    struct registry *b = open_source(target, "node-b.example/log");
    apply_all(a, &x, 0, 6);
    /* a gathers; b writes and commits a batch of its own at once. */
    double t0 = mono_s();
    apply_all(b, &y, 0, 500);
    assert_int_equal(registry_flush(b, err, sizeof(err)), 0);
    assert_true(mono_s() - t0 < 5);
    assert_int_equal(registry_flush(a, err, sizeof(err)), 0);
    /* A second writer of node a's log applies it further while a gathers more. */
    struct registry *a2 = open_source(target, "node-a.example/log");
    apply_all(a, &x, 6, 8);
    apply_all(a2, &x, 6, 7);
    assert_int_equal(registry_flush(a2, err, sizeof(err)), 0);
    assert_int_equal(registry_flush(a, err, sizeof(err)), REGISTRY_ERR);
    assert_non_null(strstr(err, "another writer applied this log"));
    /* The batch was dropped; a resumes from what the database holds. */
    assert_int_equal(registry_applied_index(a), 7);
    apply_all(a, &x, 7, x.n);
    assert_int_equal(registry_flush(a, err, sizeof(err)), 0);
    assert_int_equal(registry_applied_index(a), x.n);
    registry_close(a);
    registry_close(a2);
    registry_close(b);
}

/* ---- PostgreSQL's batch writer against SQLite's per-record statements ------------------------ */

static uint64_t mix(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* A log that exercises every rule: identified bots behind shared addresses (NAT), hellos without
 * identity before (and after) their machine-info, times out of order across days, bots moving
 * country and AS, tags, empty identity fields that must not overwrite known ones, decisions of
 * every verdict under several authorisations (one empty), commands sent and failed (some for
 * keys with no bot, some malformed), contacts after commands (+1 h, +24 h), notes. */
static void build_random_log(struct logbuf *lb, uint64_t seed)
{
    static const char *const cc[] = {"DE", "FR", "", "NL"};
    static const char *const auth[] = {"auth-1", "auth-2", ""};
    lb->n = 0;
    uint64_t s = seed;
    char hosts[160][33];
    uint64_t last_t[160] = {0};
    memset(hosts, 0, sizeof(hosts));
    for (size_t i = 0; i < 3600; i++) {
        uint64_t r = mix(&s);
        unsigned h = (unsigned)(r % 160), kind = (unsigned)((r >> 8) % 100);
        /* Mostly forward in time, sometimes back by up to two days. */
        uint64_t t = T0 + i * 60000000ULL + (kind % 7 == 0 ? 0 : (r >> 20) % (3 * DAY_US)) -
                     (kind % 13 == 0 ? (r >> 24) % (2 * DAY_US) : 0);
        if (kind % 5 == 0 && last_t[h] != 0) {
            t = last_t[h]; /* the same time as this host's last record: ties decide "latest" */
        }
        last_t[h] = t;
        char ip[40], host[32];
        snprintf(ip, sizeof(ip), kind % 17 == 0 ? "2001:db8::%x" : "192.0.2.%u",
                 (unsigned)(h / 3 + (kind % 19 == 0 ? 50 : 0)));
        snprintf(host, sizeof(host), "PC-%u", h);
        if (kind >= 55 && kind < 62) {
            /* A bot's polls rolled up (RECORD_HEARTBEATS): 0..6 of them, its first a while
             * before its last; some from a connection that never identified itself, some
             * written without who it was (counted before an erasure). */
            struct record rec;
            memset(&rec, 0, sizeof(rec));
            rec.kind = RECORD_HEARTBEATS;
            struct heartbeats *hb = &rec.u.heartbeats;
            hb->time_us = t;
            hb->first_time_us = t - (r >> 44) % (DAY_US / 2);
            hb->count = (uint32_t)((r >> 50) % 7);
            snprintf(hb->node, sizeof(hb->node), "node-a");
            if (kind != 61) {
                assert_int_equal(net_addr_parse_ip(ip, &hb->src), 0);
                hb->src.port = (uint16_t)(4000 + i);
            }
            assert_int_equal(net_addr_parse_ip("198.51.100.7", &hb->dst), 0);
            hb->dst.port = 443;
            hb->transport = CONTACT_TRANSPORT_TCP;
            snprintf(hb->family, sizeof(hb->family), "plugx");
            snprintf(hb->bot_key, sizeof(hb->bot_key), "%s", kind % 2 ? hosts[h] : "");
            snprintf(hb->cc, sizeof(hb->cc), "%s", cc[(h + i / 900) % 4]);
            hb->asn = 64496 + (h + (unsigned)i / 1200) % 3;
            int n = event_encode(&rec, lb->entry[lb->n], EVENT_RECORD_MAX);
            assert_true(n > 0);
            lb->len[lb->n++] = (size_t)n;
        } else if (kind >= 70 && kind < 72) {
            /* A caller no family decoded: counted by address in its own table. */
            size_t k = push_contact(lb, t, ip, (uint16_t)(5000 + i), NULL, cc[h % 4], 64500, "");
            struct record rec;
            assert_int_equal(event_decode(lb->entry[k], lb->len[k], &rec, NULL, 0), 0);
            rec.u.contact.bot_key[0] = '\0';
            rec.u.contact.msg_type = CONTACT_MSG_UNDECODED;
            rec.u.contact.size = 100;
            rec.u.contact.head_len = 100;
            rec.u.contact.head_sha256[0] = 1;
            snprintf(rec.u.contact.reason, sizeof(rec.u.contact.reason), "no family");
            int n = event_encode(&rec, lb->entry[k], EVENT_RECORD_MAX);
            assert_true(n > 0);
            lb->len[k] = (size_t)n;
        } else if (kind < 62) {
            size_t k = push_contact(lb, t, ip, (uint16_t)(1000 + i), host, cc[(h + i / 900) % 4],
                                    64496 + (h + (unsigned)i / 1200) % 3,
                                    (r >> 40) % 9 == 0 ? "hospital" : "");
            snprintf(hosts[h], sizeof(hosts[h]), "%s", key_of(lb, k));
        } else if (kind < 80) {
            /* A hello: the connection has not identified itself (bot_key ""). */
            size_t k = push_contact(lb, t, ip, (uint16_t)(2000 + i), NULL, cc[h % 4], 64500, "");
            struct record rec;
            assert_int_equal(event_decode(lb->entry[k], lb->len[k], &rec, NULL, 0), 0);
            rec.u.contact.bot_key[0] = '\0';
            int n = event_encode(&rec, lb->entry[k], EVENT_RECORD_MAX);
            assert_true(n > 0);
            lb->len[k] = (size_t)n;
        } else if (kind < 92) {
            struct record rec;
            memset(&rec, 0, sizeof(rec));
            bool decision = kind < 88;
            rec.kind = decision ? RECORD_DECISION
                                : (kind % 3 ? RECORD_COMMAND_SENT : RECORD_COMMAND_FAILED);
            const char *key = hosts[h][0] ? hosts[h] : (kind % 2 ? "not-a-key" : "");
            const char *a = auth[(r >> 33) % 3];
            if (decision) {
                rec.u.decision.time_us = t;
                snprintf(rec.u.decision.bot_key, sizeof(rec.u.decision.bot_key), "%s", key);
                snprintf(rec.u.decision.authorisation, sizeof(rec.u.decision.authorisation), "%s",
                         a);
                rec.u.decision.verdict = (uint8_t)(1 + (r >> 36) % 8);
            } else {
                rec.u.command.time_us = t;
                snprintf(rec.u.command.bot_key, sizeof(rec.u.command.bot_key), "%s", key);
                snprintf(rec.u.command.authorisation, sizeof(rec.u.command.authorisation), "%s", a);
            }
            int n = event_encode(&rec, lb->entry[lb->n], EVENT_RECORD_MAX);
            assert_true(n > 0);
            lb->len[lb->n++] = (size_t)n;
        } else if (kind < 97) {
            /* A bot calling again a day or more after its command. */
            push_contact(lb, t + DAY_US + (r >> 30) % DAY_US, ip, 3000, host, cc[h % 4], 64496, "");
        } else {
            struct record rec;
            memset(&rec, 0, sizeof(rec));
            rec.kind = RECORD_NODE_STOPPED;
            rec.u.note.time_us = t;
            int n = event_encode(&rec, lb->entry[lb->n], EVENT_RECORD_MAX);
            assert_true(n > 0);
            lb->len[lb->n++] = (size_t)n;
        }
    }
    lb->durable = lb->n;
}

static int dump_bot_full(void *ctx, const struct registry_bot *b, bool flagged)
{
    (void)flagged;
    char src[NET_ADDR_STRLEN], dst[NET_ADDR_STRLEN];
    net_addr_format_ip(&b->src, src);
    net_addr_format_ip(&b->dst, dst);
    fprintf(ctx,
            "bot %s %s|%s|%s|%s|%s|%s|%s %llu %llu %s:%u %s:%u %u %s %s %u %s %llu %llu %s %u "
            "%llu %llu %llu\n",
            b->bot_key, b->family, b->bot.host, b->bot.user, b->bot.os, b->bot.local_ip,
            b->bot.campaign, b->bot.version, (unsigned long long)b->first_seen_us,
            (unsigned long long)b->last_seen_us, src, b->src.port, dst, b->dst.port, b->transport,
            b->node, b->cc, b->asn, b->tags, (unsigned long long)b->contacts,
            (unsigned long long)b->commanded_at_us, b->authorisation, b->last_verdict,
            (unsigned long long)b->last_decision_us, (unsigned long long)b->seen_after_command,
            (unsigned long long)b->last_seen_after_command_us);
    return 0;
}

static int dump_group(void *ctx, const struct registry_group_row *row)
{
    fprintf(ctx, "group %s %llu\n", row->key, (unsigned long long)row->count);
    return 0;
}

/* Every row a report can read, in a fixed order. */
static char *dump_full(struct registry *reg)
{
    char err[256];
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    struct registry_filter all = {.order = REGISTRY_ORDER_LAST_SEEN};
    assert_int_equal(registry_bots(reg, &all, dump_bot_full, f, err, sizeof(err)), 0);
    struct registry_totals t;
    assert_int_equal(registry_totals(reg, &all, &t, err, sizeof(err)), 0);
    fprintf(f, "totals %llu %llu %llu %llu %llu\n", (unsigned long long)t.bots,
            (unsigned long long)t.ips, (unsigned long long)t.contacts,
            (unsigned long long)t.commanded, (unsigned long long)t.seen_after_command);
    for (int g = REGISTRY_GROUP_CC; g <= REGISTRY_GROUP_ASN; g++) {
        assert_int_equal(registry_group_ips(reg, &all, (enum registry_group)g, 0, dump_group, f,
                                            err, sizeof(err)),
                         0);
    }
    static const char *const cc[] = {"DE", "FR", "", "NL"};
    assert_int_equal(registry_days(reg, 0, 0, NULL, dump_day, f, err, sizeof(err)), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(registry_days(reg, 0, 0, cc[i], dump_day, f, err, sizeof(err)), 0);
    }
    assert_int_equal(registry_remediation(reg, dump_remediation, f, err, sizeof(err)), 0);
    assert_int_equal(
        registry_remediation_days(reg, 0, 0, dump_remediation_day, f, err, sizeof(err)), 0);
    uint64_t end = 0;
    assert_int_equal(registry_data_end(reg, &end, err, sizeof(err)), 0);
    fprintf(f, "end %llu\nnext %llu\n", (unsigned long long)end,
            (unsigned long long)registry_applied_index(reg));
    fclose(f);
    return buf;
}

/* PostgreSQL only: the batch writer (src/registry/pg_batch.c) gives exactly the rows SQLite's
 * per-record statements give, whatever the batch boundaries: a few records a batch, tens, hundreds,
 * all; and with reads inside an open batch (a report on the writer's own connection). */
static void test_batch_matches_sqlite(void **state)
{
    (void)state;
    if (!test_registry_is_pg()) {
        skip();
    }
    static struct logbuf lb;
    char err[256], lite[256], target[256];
    for (uint64_t seed = 1; seed <= 2; seed++) {
        build_random_log(&lb, 0x9e3779b97f4a7c15ULL * seed);
        char dir[] = "/tmp/sinkd-registry-lite-XXXXXX";
        assert_non_null(mkdtemp(dir));
        snprintf(lite, sizeof(lite), "%s/registry.db", dir);
        struct registry *reg;
        assert_int_equal(registry_open(&reg, lite, err, sizeof(err)), 0);
        apply_all(reg, &lb, 0, lb.n);
        char *want = dump_full(reg);
        registry_close(reg);
        assert_true(strlen(want) > 10000);
        static const size_t every[] = {3, 40, 250, 4096};
        for (size_t k = 0; k < sizeof(every) / sizeof(every[0]); k++) {
            tmp_registry(target, sizeof(target));
            assert_int_equal(test_registry_open(&reg, target, err, sizeof(err)), 0);
            for (size_t i = 0; i < lb.n; i++) {
                assert_true(registry_apply(reg, i, lb.entry[i], lb.len[i], err, sizeof(err)) >= 0);
                if (i % every[k] == every[k] - 1) {
                    assert_int_equal(registry_flush(reg, err, sizeof(err)), 0);
                }
                if (every[k] == 250 && i % 1000 == 500) {
                    /* A read inside the open batch sees it, and the batch goes on. */
                    free(dump_full(reg));
                }
            }
            char *got = dump_full(reg);
            if (strcmp(want, got) != 0) {
                const char *a = want, *b = got;
                while (*a && *a == *b) {
                    a++;
                    b++;
                }
                while (a > want && a[-1] != '\n') {
                    a--;
                    b--;
                }
                fail_msg("seed %llu, a batch every %zu records: first difference:\n  sqlite: "
                         "%.200s\n  pg:     %.200s",
                         (unsigned long long)seed, every[k], a, b);
            }
            free(got);
            registry_close(reg);
        }
        free(want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_from_v0),
        cmocka_unit_test(test_idempotent_and_resume),
        cmocka_unit_test(test_counts_nat_days_remediation),
        cmocka_unit_test(test_days),
        cmocka_unit_test(test_days_out_of_order),
        cmocka_unit_test(test_follower_and_rebuild),
        cmocka_unit_test(test_evidence_log_follow),
        cmocka_unit_test(test_shared_registry),
        cmocka_unit_test(test_batch_matches_sqlite),
        cmocka_unit_test(test_batch_pair_already_stored),
        cmocka_unit_test(test_pg_layout_upgrade),
        cmocka_unit_test(test_pg_batch_begins_late),
        cmocka_unit_test(test_heartbeats_and_undecoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
