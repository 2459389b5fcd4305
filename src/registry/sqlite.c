/* sqlite.c -- the registry's embedded SQLite backend: schema migrations, batched upserts from log
 * records, and the queries reports run. */
#include "registry/registry.h"
#include "registry/internal.h"
#include "util/err.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_DAY 86400000000ULL

/* Ordered migrations: migration[i] takes user_version i to i + 1. Never edit a released one;
 * append a new one and bump REGISTRY_SCHEMA_VERSION. */
static const char *const migrations[REGISTRY_SCHEMA_VERSION] = {
    /* 0 -> 1: bots, source IPs, per-day sets and counters, the applied index. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;"
    "INSERT INTO meta(key, value) VALUES('next_index', 0), ('bad_records', 0);"
    "CREATE TABLE bot("
    " bot_key TEXT PRIMARY KEY NOT NULL, family TEXT NOT NULL,"
    " host TEXT NOT NULL, user TEXT NOT NULL, os TEXT NOT NULL, local_ip TEXT NOT NULL,"
    " campaign TEXT NOT NULL, version TEXT NOT NULL,"
    " first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL,"
    " src_ip TEXT NOT NULL, src_port INTEGER NOT NULL, dst_ip TEXT NOT NULL,"
    " dst_port INTEGER NOT NULL, transport INTEGER NOT NULL, node TEXT NOT NULL,"
    " cc TEXT NOT NULL, asn INTEGER NOT NULL, tags TEXT NOT NULL, contacts INTEGER NOT NULL);"
    "CREATE TABLE source_ip(ip TEXT PRIMARY KEY NOT NULL, cc TEXT NOT NULL, asn INTEGER NOT NULL,"
    " first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL, contacts INTEGER NOT NULL)"
    " WITHOUT ROWID;"
    "CREATE TABLE day_bot(day INTEGER NOT NULL, bot_key TEXT NOT NULL,"
    " PRIMARY KEY(day, bot_key)) WITHOUT ROWID;"
    "CREATE TABLE day_ip(day INTEGER NOT NULL, ip TEXT NOT NULL, PRIMARY KEY(day, ip))"
    " WITHOUT ROWID;"
    "CREATE TABLE day_cc(day INTEGER NOT NULL, cc TEXT NOT NULL, bots INTEGER NOT NULL,"
    " ips INTEGER NOT NULL, contacts INTEGER NOT NULL, PRIMARY KEY(day, cc)) WITHOUT ROWID;"
    "CREATE INDEX bot_cc ON bot(cc, last_seen_us);"
    "CREATE INDEX bot_asn ON bot(asn, last_seen_us);"
    "CREATE INDEX bot_last_seen ON bot(last_seen_us);"
    "CREATE INDEX source_ip_cc ON source_ip(cc, last_seen_us);"
    "CREATE INDEX source_ip_asn ON source_ip(asn, last_seen_us);",
    /* 1 -> 2: remediation state, filled from decision and command-sent records. */
    "ALTER TABLE bot ADD COLUMN commanded_at_us INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE bot ADD COLUMN authorisation TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE bot ADD COLUMN last_verdict INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE bot ADD COLUMN last_decision_us INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE bot ADD COLUMN seen_after_command INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE bot ADD COLUMN last_seen_after_command_us INTEGER NOT NULL DEFAULT 0;",
};

/* Identity fields are part of the key (host/user/local_ip/campaign) or may be absent from a
 * heartbeat, so an empty value never overwrites a known one. Location fields follow the latest
 * contact by time, not by log order, so a late-arriving older record cannot move a bot back. */
#define KEEP(col)                                                                                  \
#col " = CASE WHEN excluded." #col " <> '' THEN excluded." #col " ELSE " #col " END"
#define LATEST(col)                                                                                \
#col " = CASE WHEN excluded.last_seen_us >= last_seen_us THEN excluded." #col " ELSE " #col    \
         " END"

enum stmt_id {
    ST_BOT_UPSERT,
    ST_IP_UPSERT,
    ST_DAY_BOT,
    ST_DAY_IP,
    ST_DAY_CC,
    ST_DECISION,
    ST_COMMAND,
    ST_META_SET,
    ST_BEGIN,
    ST_COMMIT,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_BOT_UPSERT] =
        "INSERT INTO bot(bot_key, family, host, user, os, local_ip, campaign, version,"
        " first_seen_us, last_seen_us, src_ip, src_port, dst_ip, dst_port, transport, node, cc,"
        " asn, tags, contacts) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13,"
        " ?14, ?15, ?16, ?17, ?18, 1)"
        " ON CONFLICT(bot_key) DO UPDATE SET contacts = contacts + 1,"
        " first_seen_us = min(first_seen_us, excluded.first_seen_us),"
        " last_seen_us = max(last_seen_us, excluded.last_seen_us), " KEEP(family) ", " KEEP(host) ", " KEEP(user) ", " KEEP(os) ", " KEEP(local_ip) ", " KEEP(campaign) ", " KEEP(version) ", " LATEST(
            src_ip) ", " LATEST(src_port) ", " LATEST(dst_ip) ", " LATEST(dst_port) ", " LATEST(transport) ", " LATEST(node) ", " LATEST(cc) ", " LATEST(asn) ", " LATEST(tags) ","
                                                                                                                                                                                " seen_after_command = seen_after_command +"
                                                                                                                                                                                "  (commanded_at_us > 0 AND excluded.last_seen_us > commanded_at_us),"
                                                                                                                                                                                " last_seen_after_command_us = CASE WHEN commanded_at_us > 0 AND"
                                                                                                                                                                                "  excluded.last_seen_us > commanded_at_us THEN max(last_seen_after_command_us,"
                                                                                                                                                                                "  excluded.last_seen_us) ELSE last_seen_after_command_us END",
    [ST_IP_UPSERT] =
        "INSERT INTO source_ip(ip, cc, asn, first_seen_us, last_seen_us, contacts)"
        " VALUES(?1, ?2, ?3, ?4, ?4, 1) ON CONFLICT(ip) DO UPDATE SET"
        " contacts = contacts + 1,"
        " first_seen_us = min(first_seen_us, excluded.first_seen_us),"
        " last_seen_us = max(last_seen_us, excluded.last_seen_us), " LATEST(cc) ", " LATEST(asn),
    [ST_DAY_BOT] = "INSERT OR IGNORE INTO day_bot(day, bot_key) VALUES(?1, ?2)",
    [ST_DAY_IP] = "INSERT OR IGNORE INTO day_ip(day, ip) VALUES(?1, ?2)",
    [ST_DAY_CC] = "INSERT INTO day_cc(day, cc, bots, ips, contacts) VALUES(?1, ?2, ?3, ?4, 1)"
                  " ON CONFLICT(day, cc) DO UPDATE SET bots = bots + excluded.bots,"
                  " ips = ips + excluded.ips, contacts = contacts + 1",
    [ST_DECISION] = "UPDATE bot SET last_verdict = ?2, last_decision_us = ?3,"
                    " authorisation = CASE WHEN ?4 <> '' THEN ?4 ELSE authorisation END"
                    " WHERE bot_key = ?1",
    [ST_COMMAND] = "UPDATE bot SET commanded_at_us = CASE WHEN commanded_at_us = 0 THEN ?2"
                   " ELSE min(commanded_at_us, ?2) END,"
                   " authorisation = CASE WHEN ?3 <> '' THEN ?3 ELSE authorisation END"
                   " WHERE bot_key = ?1",
    [ST_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
};

struct registry {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT];
    uint64_t next_index;  /* including the open batch */
    uint64_t bad_records; /* including the open batch */
    size_t batch_records; /* records in the open transaction */
    bool in_txn;
    struct registry_follower *follower; /* follow.c */
};

static int db_err(struct registry *reg, char *err, size_t errlen, const char *what)
{
    err_set(err, errlen, "registry: %s: %s", what, sqlite3_errmsg(reg->db));
    return REGISTRY_ERR;
}

static int exec_sql(struct registry *reg, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(reg->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(err, errlen, "registry: %s", msg ? msg : sqlite3_errmsg(reg->db));
        sqlite3_free(msg);
        return REGISTRY_ERR;
    }
    return 0;
}

static int64_t pragma_int(struct registry *reg, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(reg->db, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static int migrate(struct registry *reg, char *err, size_t errlen)
{
    int64_t version = pragma_int(reg, "PRAGMA user_version");
    if (version < 0) {
        return db_err(reg, err, errlen, "reading user_version");
    }
    if (version > REGISTRY_SCHEMA_VERSION) {
        err_set(err, errlen,
                "registry: schema version %" PRId64 " is newer than this build's %d; rebuild it "
                "with `sinkd registry rebuild` or upgrade sinkd",
                version, REGISTRY_SCHEMA_VERSION);
        return REGISTRY_E_VERSION;
    }
    for (int64_t v = version; v < REGISTRY_SCHEMA_VERSION; v++) {
        char sql[64];
        /* Each step and its version bump commit together: a crash leaves a whole step or none. */
        if (exec_sql(reg, "BEGIN IMMEDIATE", err, errlen) < 0) {
            return REGISTRY_ERR;
        }
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64, v + 1);
        if (exec_sql(reg, migrations[v], err, errlen) < 0 || exec_sql(reg, sql, err, errlen) < 0) {
            exec_sql(reg, "ROLLBACK", NULL, 0);
            return REGISTRY_ERR;
        }
        if (exec_sql(reg, "COMMIT", err, errlen) < 0) {
            return REGISTRY_ERR;
        }
    }
    return 0;
}

static int64_t meta_get(struct registry *reg, const char *key)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(reg->db, "SELECT value FROM meta WHERE key = ?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW) {
            v = sqlite3_column_int64(st, 0);
        }
    }
    sqlite3_finalize(st);
    return v;
}

int registry_open(struct registry **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    if (strncmp(path, "postgresql://", 13) == 0 || strncmp(path, "postgres://", 11) == 0) {
        return err_set(err, errlen, "registry: the PostgreSQL backend is not built yet");
    }
    struct registry *reg = calloc(1, sizeof(*reg));
    if (reg == NULL) {
        return err_set(err, errlen, "registry: out of memory");
    }
    int rc = REGISTRY_ERR;
    if (sqlite3_open_v2(path, &reg->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        err_set(err, errlen, "registry: %s: %s", path,
                reg->db ? sqlite3_errmsg(reg->db) : "cannot open");
        goto fail;
    }
    /* A report may read while the follower writes: wait for its commit rather than fail. */
    sqlite3_busy_timeout(reg->db, 10000);
    /* WAL: readers never block the writer; synchronous=NORMAL: a power cut may lose the last
     * batches but never corrupts, and the log (the source of truth) replays them. */
    if (exec_sql(reg,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                 " PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
                 " PRAGMA cache_size=-65536;",
                 err, errlen) < 0) {
        goto fail;
    }
    rc = migrate(reg, err, errlen);
    if (rc < 0) {
        goto fail;
    }
    rc = REGISTRY_ERR;
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(reg->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &reg->stmt[i],
                               NULL) != SQLITE_OK) {
            db_err(reg, err, errlen, "preparing statements");
            goto fail;
        }
    }
    int64_t next = meta_get(reg, "next_index");
    int64_t bad = meta_get(reg, "bad_records");
    if (next < 0 || bad < 0) {
        err_set(err, errlen, "registry: %s: meta table is missing its rows", path);
        goto fail;
    }
    reg->next_index = (uint64_t)next;
    reg->bad_records = (uint64_t)bad;
    *out = reg;
    return 0;
fail:
    registry_close(reg);
    return rc;
}

void registry_close(struct registry *reg)
{
    if (reg == NULL) {
        return;
    }
    if (reg->follower != NULL) {
        registry_follow_stop(reg, NULL, 0);
    }
    if (reg->in_txn) {
        registry_flush(reg, NULL, 0);
    }
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(reg->stmt[i]);
    }
    sqlite3_close(reg->db);
    free(reg);
}

static int step_done(struct registry *reg, sqlite3_stmt *st, char *err, size_t errlen,
                     const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        return db_err(reg, err, errlen, what);
    }
    return 0;
}

static int meta_set(struct registry *reg, const char *key, uint64_t value, char *err, size_t errlen)
{
    sqlite3_stmt *st = reg->stmt[ST_META_SET];
    sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (int64_t)value);
    return step_done(reg, st, err, errlen, "saving the applied index");
}

int registry_flush(struct registry *reg, char *err, size_t errlen)
{
    if (!reg->in_txn) {
        return 0;
    }
    if (meta_set(reg, "next_index", reg->next_index, err, errlen) < 0 ||
        meta_set(reg, "bad_records", reg->bad_records, err, errlen) < 0 ||
        step_done(reg, reg->stmt[ST_COMMIT], err, errlen, "commit") < 0) {
        /* The batch is lost as a whole; re-read the committed position so the caller can
         * replay from the log. */
        exec_sql(reg, "ROLLBACK", NULL, 0);
        reg->in_txn = false;
        reg->batch_records = 0;
        int64_t next = meta_get(reg, "next_index");
        int64_t bad = meta_get(reg, "bad_records");
        reg->next_index = next < 0 ? 0 : (uint64_t)next;
        reg->bad_records = bad < 0 ? 0 : (uint64_t)bad;
        return REGISTRY_ERR;
    }
    reg->in_txn = false;
    reg->batch_records = 0;
    return 0;
}

uint64_t registry_applied_index(const struct registry *reg)
{
    return reg->next_index;
}

uint64_t registry_internal_bad_records(const struct registry *reg)
{
    return reg->bad_records;
}

struct registry_follower **registry_internal_follower(struct registry *reg)
{
    return &reg->follower;
}

static void bind_str(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT);
}

static int apply_contact(struct registry *reg, const struct contact *c, char *err, size_t errlen)
{
    char key[33], src[NET_ADDR_STRLEN], dst[NET_ADDR_STRLEN];
    /* "" means the connection never identified itself: key it by source IP as event_bot_key()
     * does, so the bot is still counted once per address. */
    if (c->bot_key[0] != '\0') {
        memcpy(key, c->bot_key, sizeof(key));
    } else {
        event_bot_key(c, key);
    }
    net_addr_format_ip(&c->src, src);
    net_addr_format_ip(&c->dst, dst);
    int64_t t = (int64_t)c->time_us;
    int64_t day = (int64_t)(c->time_us / US_PER_DAY);

    sqlite3_stmt *st = reg->stmt[ST_BOT_UPSERT];
    bind_str(st, 1, key);
    bind_str(st, 2, c->family);
    bind_str(st, 3, c->bot.host);
    bind_str(st, 4, c->bot.user);
    bind_str(st, 5, c->bot.os);
    bind_str(st, 6, c->bot.local_ip);
    bind_str(st, 7, c->bot.campaign);
    bind_str(st, 8, c->bot.version);
    sqlite3_bind_int64(st, 9, t);
    bind_str(st, 10, src);
    sqlite3_bind_int(st, 11, c->src.port);
    bind_str(st, 12, dst);
    sqlite3_bind_int(st, 13, c->dst.port);
    sqlite3_bind_int(st, 14, c->transport);
    bind_str(st, 15, c->node);
    bind_str(st, 16, c->cc);
    sqlite3_bind_int64(st, 17, c->asn);
    bind_str(st, 18, c->tags);
    if (step_done(reg, st, err, errlen, "bot upsert") < 0) {
        return REGISTRY_ERR;
    }

    st = reg->stmt[ST_IP_UPSERT];
    bind_str(st, 1, src);
    bind_str(st, 2, c->cc);
    sqlite3_bind_int64(st, 3, c->asn);
    sqlite3_bind_int64(st, 4, t);
    if (step_done(reg, st, err, errlen, "source ip upsert") < 0) {
        return REGISTRY_ERR;
    }

    /* Per-day distinct counts kept incrementally: the set insert tells whether this is the
     * bot's (IP's) first contact of the day, and only then the counter moves. */
    st = reg->stmt[ST_DAY_BOT];
    sqlite3_bind_int64(st, 1, day);
    bind_str(st, 2, key);
    if (step_done(reg, st, err, errlen, "day_bot insert") < 0) {
        return REGISTRY_ERR;
    }
    int new_bot = sqlite3_changes(reg->db) > 0;
    st = reg->stmt[ST_DAY_IP];
    sqlite3_bind_int64(st, 1, day);
    bind_str(st, 2, src);
    if (step_done(reg, st, err, errlen, "day_ip insert") < 0) {
        return REGISTRY_ERR;
    }
    int new_ip = sqlite3_changes(reg->db) > 0;
    st = reg->stmt[ST_DAY_CC];
    sqlite3_bind_int64(st, 1, day);
    bind_str(st, 2, c->cc);
    sqlite3_bind_int(st, 3, new_bot);
    sqlite3_bind_int(st, 4, new_ip);
    return step_done(reg, st, err, errlen, "day_cc upsert");
}

static int apply_record(struct registry *reg, const struct record *rec, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    switch (rec->kind) {
    case RECORD_CONTACT:
        return apply_contact(reg, &rec->u.contact, err, errlen);
    case RECORD_DECISION:
        /* A decision always follows a contact of the same bot, so the row exists; a decision
         * for an unknown key updates nothing rather than inventing a bot with no contact. */
        st = reg->stmt[ST_DECISION];
        bind_str(st, 1, rec->u.decision.bot_key);
        sqlite3_bind_int(st, 2, rec->u.decision.verdict);
        sqlite3_bind_int64(st, 3, (int64_t)rec->u.decision.time_us);
        bind_str(st, 4, rec->u.decision.authorisation);
        return step_done(reg, st, err, errlen, "decision update");
    case RECORD_COMMAND_SENT:
        st = reg->stmt[ST_COMMAND];
        bind_str(st, 1, rec->u.command.bot_key);
        sqlite3_bind_int64(st, 2, (int64_t)rec->u.command.time_us);
        bind_str(st, 3, rec->u.command.authorisation);
        return step_done(reg, st, err, errlen, "command update");
    default:
        /* command-failed and operational notes do not change a bot's row. */
        return 0;
    }
}

int registry_apply(struct registry *reg, uint64_t log_index, const uint8_t *entry, size_t len,
                   char *err, size_t errlen)
{
    if (reg->follower != NULL && !registry_internal_on_follower_thread(reg)) {
        err_set(err, errlen, "registry: a follower thread owns the writer");
        return REGISTRY_E_BUSY;
    }
    if (!reg->in_txn) {
        /* Take the write lock, then re-read the applied index under it: another writer (a
         * `sinkd report --catch-up` next to a running server) may have moved it, and applying
         * from a stale index would count entries twice. */
        if (step_done(reg, reg->stmt[ST_BEGIN], err, errlen, "begin") < 0) {
            return REGISTRY_ERR;
        }
        reg->in_txn = true;
        int64_t next = meta_get(reg, "next_index");
        int64_t bad = meta_get(reg, "bad_records");
        if (next < 0 || bad < 0) {
            exec_sql(reg, "ROLLBACK", NULL, 0);
            reg->in_txn = false;
            return db_err(reg, err, errlen, "reading the applied index");
        }
        reg->next_index = (uint64_t)next;
        reg->bad_records = (uint64_t)bad;
    }
    if (log_index < reg->next_index) {
        return 0;
    }
    if (log_index > reg->next_index) {
        err_set(err, errlen, "registry: log index %" PRIu64 " given, %" PRIu64 " expected",
                log_index, reg->next_index);
        return REGISTRY_E_GAP;
    }
    struct record rec;
    char derr[128];
    int rc = 1;
    if (event_decode(entry, len, &rec, derr, sizeof(derr)) < 0) {
        reg->bad_records++;
        err_set(err, errlen, "registry: log entry %" PRIu64 " skipped: %s", log_index, derr);
        rc = REGISTRY_E_DECODE;
    } else if (apply_record(reg, &rec, err, errlen) < 0) {
        /* Statement failures leave the transaction open but this record half-applied: roll the
         * whole batch back so the registry stays a function of a log prefix. */
        exec_sql(reg, "ROLLBACK", NULL, 0);
        reg->in_txn = false;
        reg->batch_records = 0;
        int64_t next = meta_get(reg, "next_index");
        int64_t bad = meta_get(reg, "bad_records");
        reg->next_index = next < 0 ? 0 : (uint64_t)next;
        reg->bad_records = bad < 0 ? 0 : (uint64_t)bad;
        return REGISTRY_ERR;
    }
    reg->next_index++;
    reg->batch_records++;
    if (reg->batch_records >= REGISTRY_AUTOFLUSH_RECORDS) {
        int frc = registry_flush(reg, err, errlen);
        if (frc < 0) {
            return frc;
        }
    }
    return rc;
}

/* ---- queries ----------------------------------------------------------------------------- */

/* Appends the WHERE clause for a filter on table alias-less `bot`-like tables. Parameters are
 * numbered ?1..?6 in a fixed layout so one bind function serves every query:
 * ?1 since, ?2 until, ?3 cc, ?4 asn, ?5 tag. */
static void where_clause(const struct registry_filter *f, bool with_tag, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, " WHERE 1");
    if (f->since_us) {
        n += (size_t)snprintf(out + n, cap - n, " AND last_seen_us >= ?1");
    }
    if (f->until_us) {
        n += (size_t)snprintf(out + n, cap - n, " AND last_seen_us < ?2");
    }
    if (f->cc) {
        n += (size_t)snprintf(out + n, cap - n, " AND cc = ?3");
    }
    if (f->asn_set) {
        n += (size_t)snprintf(out + n, cap - n, " AND asn = ?4");
    }
    if (with_tag && f->tagged_only && f->tag) {
        snprintf(out + n, cap - n, " AND instr(',' || tags || ',', ',' || ?5 || ',') > 0");
    }
}

static void bind_filter(sqlite3_stmt *st, const struct registry_filter *f)
{
    /* Binding a parameter the SQL does not use is harmless (SQLITE_RANGE is ignored here). */
    sqlite3_bind_int64(st, 1, (int64_t)f->since_us);
    sqlite3_bind_int64(st, 2, (int64_t)f->until_us);
    if (f->cc) {
        sqlite3_bind_text(st, 3, f->cc, -1, SQLITE_STATIC);
    }
    sqlite3_bind_int64(st, 4, f->asn);
    if (f->tag) {
        sqlite3_bind_text(st, 5, f->tag, -1, SQLITE_STATIC);
    }
}

static int prepare(struct registry *reg, const char *sql, sqlite3_stmt **st, char *err,
                   size_t errlen)
{
    if (sqlite3_prepare_v2(reg->db, sql, -1, st, NULL) != SQLITE_OK) {
        return db_err(reg, err, errlen, "query");
    }
    return 0;
}

static void col_str(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", s ? (const char *)s : "");
}

static void col_addr(sqlite3_stmt *st, int ip, int port, struct net_addr *out)
{
    const unsigned char *s = sqlite3_column_text(st, ip);
    memset(out, 0, sizeof(*out));
    if (s == NULL || s[0] == '\0' || net_addr_parse_ip((const char *)s, out) < 0) {
        memset(out, 0, sizeof(*out));
        return;
    }
    out->port = (uint16_t)sqlite3_column_int(st, port);
}

#define BOT_COLUMNS                                                                                \
    "bot_key, family, host, user, os, local_ip, campaign, version, first_seen_us, last_seen_us,"   \
    " src_ip, src_port, dst_ip, dst_port, transport, node, cc, asn, tags, contacts,"               \
    " commanded_at_us, authorisation, last_verdict, last_decision_us, seen_after_command,"         \
    " last_seen_after_command_us"

static void row_to_bot(sqlite3_stmt *st, struct registry_bot *b)
{
    memset(b, 0, sizeof(*b));
    col_str(st, 0, b->bot_key, sizeof(b->bot_key));
    col_str(st, 1, b->family, sizeof(b->family));
    col_str(st, 2, b->bot.host, sizeof(b->bot.host));
    col_str(st, 3, b->bot.user, sizeof(b->bot.user));
    col_str(st, 4, b->bot.os, sizeof(b->bot.os));
    col_str(st, 5, b->bot.local_ip, sizeof(b->bot.local_ip));
    col_str(st, 6, b->bot.campaign, sizeof(b->bot.campaign));
    col_str(st, 7, b->bot.version, sizeof(b->bot.version));
    b->first_seen_us = (uint64_t)sqlite3_column_int64(st, 8);
    b->last_seen_us = (uint64_t)sqlite3_column_int64(st, 9);
    col_addr(st, 10, 11, &b->src);
    col_addr(st, 12, 13, &b->dst);
    b->transport = (uint8_t)sqlite3_column_int(st, 14);
    col_str(st, 15, b->node, sizeof(b->node));
    col_str(st, 16, b->cc, sizeof(b->cc));
    b->asn = (uint32_t)sqlite3_column_int64(st, 17);
    col_str(st, 18, b->tags, sizeof(b->tags));
    b->contacts = (uint64_t)sqlite3_column_int64(st, 19);
    b->commanded_at_us = (uint64_t)sqlite3_column_int64(st, 20);
    col_str(st, 21, b->authorisation, sizeof(b->authorisation));
    b->last_verdict = (uint8_t)sqlite3_column_int(st, 22);
    b->last_decision_us = (uint64_t)sqlite3_column_int64(st, 23);
    b->seen_after_command = (uint64_t)sqlite3_column_int64(st, 24);
    b->last_seen_after_command_us = (uint64_t)sqlite3_column_int64(st, 25);
}

static int reader_ok(struct registry *reg, char *err, size_t errlen)
{
    if (reg->follower != NULL) {
        err_set(err, errlen, "registry: a follower thread owns this connection; open another");
        return REGISTRY_E_BUSY;
    }
    return 0;
}

int registry_bots(struct registry *reg, const struct registry_filter *f, registry_bot_fn fn,
                  void *ctx, char *err, size_t errlen)
{
    int rc = reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    char where[512], sql[1536];
    where_clause(f, true, where, sizeof(where));
    const char *flag = f->tag ? "instr(',' || tags || ',', ',' || ?5 || ',') > 0" : "0";
    const char *group = f->order == REGISTRY_ORDER_CC    ? "cc, "
                        : f->order == REGISTRY_ORDER_ASN ? "asn, "
                                                         : "";
    snprintf(sql, sizeof(sql),
             "SELECT " BOT_COLUMNS ", %s FROM bot%s ORDER BY %s%s last_seen_us,"
             " bot_key",
             flag, where, group, f->tagged_first && f->tag ? "27 DESC," : "");
    sqlite3_stmt *st = NULL;
    if (prepare(reg, sql, &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    bind_filter(st, f);
    rc = 0;
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct registry_bot b;
        row_to_bot(st, &b);
        rc = fn(ctx, &b, sqlite3_column_int(st, 26) != 0);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = db_err(reg, err, errlen, "reading bots");
    }
    sqlite3_finalize(st);
    return rc;
}

int registry_bot_get(struct registry *reg, const char *bot_key, struct registry_bot *out, char *err,
                     size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (prepare(reg, "SELECT " BOT_COLUMNS " FROM bot WHERE bot_key = ?1", &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    sqlite3_bind_text(st, 1, bot_key, -1, SQLITE_STATIC);
    int step = sqlite3_step(st);
    int rc = 0;
    if (step == SQLITE_ROW) {
        row_to_bot(st, out);
        rc = 1;
    } else if (step != SQLITE_DONE) {
        rc = db_err(reg, err, errlen, "reading a bot");
    }
    sqlite3_finalize(st);
    return rc;
}

static int query_u64s(struct registry *reg, const char *sql, const struct registry_filter *f,
                      uint64_t *out, int n, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (prepare(reg, sql, &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    bind_filter(st, f);
    int rc = 0;
    if (sqlite3_step(st) == SQLITE_ROW) {
        for (int i = 0; i < n; i++) {
            out[i] = (uint64_t)sqlite3_column_int64(st, i);
        }
    } else {
        rc = db_err(reg, err, errlen, "totals");
    }
    sqlite3_finalize(st);
    return rc;
}

int registry_totals(struct registry *reg, const struct registry_filter *f,
                    struct registry_totals *out, char *err, size_t errlen)
{
    int rc = reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    char where[512], sql[1024];
    uint64_t v[4] = {0};
    memset(out, 0, sizeof(*out));
    where_clause(f, true, where, sizeof(where));
    snprintf(sql, sizeof(sql),
             "SELECT count(*), coalesce(sum(contacts), 0), coalesce(sum(commanded_at_us > 0), 0),"
             " coalesce(sum(commanded_at_us > 0 AND seen_after_command > 0), 0) FROM bot%s",
             where);
    if (query_u64s(reg, sql, f, v, 4, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    out->bots = v[0];
    out->contacts = v[1];
    out->commanded = v[2];
    out->seen_after_command = v[3];
    /* Source IPs carry no tags: the tag filter does not apply to the IP count. */
    where_clause(f, false, where, sizeof(where));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM source_ip%s", where);
    if (query_u64s(reg, sql, f, v, 1, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    out->ips = v[0];
    return 0;
}

static int group_query(struct registry *reg, const char *table, const struct registry_filter *f,
                       enum registry_group g, size_t limit, registry_group_fn fn, void *ctx,
                       char *err, size_t errlen)
{
    int rc = reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    const char *col = g == REGISTRY_GROUP_CC ? "cc" : g == REGISTRY_GROUP_ASN ? "asn" : "tags";
    char where[512], sql[1024], lim[32] = "";
    where_clause(f, strcmp(table, "bot") == 0, where, sizeof(where));
    if (limit > 0) {
        snprintf(lim, sizeof(lim), " LIMIT %zu", limit);
    }
    snprintf(sql, sizeof(sql),
             "SELECT %s, count(*) AS n FROM %s%s%s GROUP BY %s ORDER BY n DESC,"
             " %s%s",
             col, table, where, g == REGISTRY_GROUP_TAGS ? " AND tags <> ''" : "", col, col, lim);
    sqlite3_stmt *st = NULL;
    if (prepare(reg, sql, &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    bind_filter(st, f);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct registry_group_row row;
        memset(&row, 0, sizeof(row));
        if (g == REGISTRY_GROUP_ASN) {
            row.asn = (uint32_t)sqlite3_column_int64(st, 0);
            snprintf(row.key, sizeof(row.key), "%" PRIu32, row.asn);
        } else {
            col_str(st, 0, row.key, sizeof(row.key));
        }
        row.count = (uint64_t)sqlite3_column_int64(st, 1);
        rc = fn(ctx, &row);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = db_err(reg, err, errlen, "grouping");
    }
    sqlite3_finalize(st);
    return rc;
}

int registry_group_bots(struct registry *reg, const struct registry_filter *f,
                        enum registry_group g, size_t limit, registry_group_fn fn, void *ctx,
                        char *err, size_t errlen)
{
    return group_query(reg, "bot", f, g, limit, fn, ctx, err, errlen);
}

int registry_group_ips(struct registry *reg, const struct registry_filter *f, enum registry_group g,
                       size_t limit, registry_group_fn fn, void *ctx, char *err, size_t errlen)
{
    if (g == REGISTRY_GROUP_TAGS) {
        return err_set(err, errlen, "registry: source IPs are not grouped by tags");
    }
    return group_query(reg, "source_ip", f, g, limit, fn, ctx, err, errlen);
}

int registry_days(struct registry *reg, uint64_t since_us, uint64_t until_us, const char *cc,
                  registry_day_fn fn, void *ctx, char *err, size_t errlen)
{
    int rc = reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    const char *sql = cc ? "SELECT day, sum(bots), sum(ips), sum(contacts) FROM day_cc"
                           " WHERE day >= ?1 AND day <= ?2 AND cc = ?3 GROUP BY day ORDER BY day"
                         : "SELECT day, sum(bots), sum(ips), sum(contacts) FROM day_cc"
                           " WHERE day >= ?1 AND day <= ?2 GROUP BY day ORDER BY day";
    if (prepare(reg, sql, &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    /* until is exclusive: the last day included is the one holding until_us - 1. */
    sqlite3_bind_int64(st, 1, (int64_t)(since_us / US_PER_DAY));
    sqlite3_bind_int64(st, 2, until_us ? (int64_t)((until_us - 1) / US_PER_DAY) : INT64_MAX);
    if (cc) {
        sqlite3_bind_text(st, 3, cc, -1, SQLITE_STATIC);
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct registry_day d = {
            .day = sqlite3_column_int64(st, 0),
            .bots = (uint64_t)sqlite3_column_int64(st, 1),
            .ips = (uint64_t)sqlite3_column_int64(st, 2),
            .contacts = (uint64_t)sqlite3_column_int64(st, 3),
        };
        rc = fn(ctx, &d);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = db_err(reg, err, errlen, "reading days");
    }
    sqlite3_finalize(st);
    return rc;
}
