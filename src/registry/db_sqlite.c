/* db_sqlite.c -- the registry's SQL driver over SQLite (db.h): the embedded default. A thin
 * wrapper over sqlite3's own prepared statements, plus the file's settings and its migrations. */
#include "registry/db.h"
#include "registry/db_driver.h"
#include "registry/internal.h"
#include "registry/registry.h"
#include "util/addr.h"
#include "util/err.h"

#include <inttypes.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
    /* 2 -> 3: compact keys and cheap updates. Bots get an integer row id and a 16-byte blob key
     * (was 32 hex characters); the per-day bot set refers to the row id; source IPs are 4- or
     * 16-byte blobs. The cc/asn indexes lose last_seen_us, which every contact changes: they now
     * move only when a bot changes country or AS. sinkd_unhex16() and sinkd_ipblob() are
     * registered by registry_open(); rows whose key does not convert are dropped (v2 only ever
     * wrote event_bot_key() hex and formatted addresses). */
    "CREATE TABLE bot3(id INTEGER PRIMARY KEY, bot_key BLOB NOT NULL UNIQUE,"
    " family TEXT NOT NULL, host TEXT NOT NULL, user TEXT NOT NULL, os TEXT NOT NULL,"
    " local_ip TEXT NOT NULL, campaign TEXT NOT NULL, version TEXT NOT NULL,"
    " first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL,"
    " src_ip TEXT NOT NULL, src_port INTEGER NOT NULL, dst_ip TEXT NOT NULL,"
    " dst_port INTEGER NOT NULL, transport INTEGER NOT NULL, node TEXT NOT NULL,"
    " cc TEXT NOT NULL, asn INTEGER NOT NULL, tags TEXT NOT NULL, contacts INTEGER NOT NULL,"
    " commanded_at_us INTEGER NOT NULL DEFAULT 0, authorisation TEXT NOT NULL DEFAULT '',"
    " last_verdict INTEGER NOT NULL DEFAULT 0, last_decision_us INTEGER NOT NULL DEFAULT 0,"
    " seen_after_command INTEGER NOT NULL DEFAULT 0,"
    " last_seen_after_command_us INTEGER NOT NULL DEFAULT 0);"
    "INSERT OR IGNORE INTO bot3(bot_key, family, host, user, os, local_ip, campaign, version,"
    " first_seen_us, last_seen_us, src_ip, src_port, dst_ip, dst_port, transport, node, cc, asn,"
    " tags, contacts, commanded_at_us, authorisation, last_verdict, last_decision_us,"
    " seen_after_command, last_seen_after_command_us)"
    " SELECT sinkd_unhex16(bot_key), family, host, user, os, local_ip, campaign, version,"
    " first_seen_us, last_seen_us, src_ip, src_port, dst_ip, dst_port, transport, node, cc, asn,"
    " tags, contacts, commanded_at_us, authorisation, last_verdict, last_decision_us,"
    " seen_after_command, last_seen_after_command_us FROM bot"
    " WHERE sinkd_unhex16(bot_key) IS NOT NULL ORDER BY first_seen_us, bot_key;"
    "CREATE TABLE source_ip3(ip BLOB PRIMARY KEY NOT NULL, cc TEXT NOT NULL,"
    " asn INTEGER NOT NULL, first_seen_us INTEGER NOT NULL, last_seen_us INTEGER NOT NULL,"
    " contacts INTEGER NOT NULL, identified INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
    "INSERT OR IGNORE INTO source_ip3(ip, cc, asn, first_seen_us, last_seen_us, contacts)"
    " SELECT sinkd_ipblob(ip), cc, asn, first_seen_us,"
    " last_seen_us, contacts FROM source_ip WHERE sinkd_ipblob(ip) IS NOT NULL;"
    "UPDATE source_ip3 SET identified = 1 WHERE ip IN (SELECT sinkd_ipblob(src_ip) FROM bot3"
    " WHERE host <> '' OR user <> '' OR local_ip <> '' OR campaign <> '');"
    "CREATE TABLE day_bot3(day INTEGER NOT NULL, bot INTEGER NOT NULL, PRIMARY KEY(day, bot))"
    " WITHOUT ROWID;"
    "INSERT OR IGNORE INTO day_bot3 SELECT d.day, b.id FROM day_bot d JOIN bot3 b"
    " ON b.bot_key = sinkd_unhex16(d.bot_key);"
    "CREATE TABLE day_ip3(day INTEGER NOT NULL, ip BLOB NOT NULL, PRIMARY KEY(day, ip))"
    " WITHOUT ROWID;"
    "INSERT OR IGNORE INTO day_ip3 SELECT day, sinkd_ipblob(ip) FROM day_ip"
    " WHERE sinkd_ipblob(ip) IS NOT NULL;"
    "DROP TABLE bot; DROP TABLE source_ip; DROP TABLE day_bot; DROP TABLE day_ip;"
    "ALTER TABLE bot3 RENAME TO bot; ALTER TABLE source_ip3 RENAME TO source_ip;"
    "ALTER TABLE day_bot3 RENAME TO day_bot; ALTER TABLE day_ip3 RENAME TO day_ip;"
    "CREATE INDEX bot_cc ON bot(cc); CREATE INDEX bot_asn ON bot(asn);"
    "CREATE INDEX source_ip_cc ON source_ip(cc); CREATE INDEX source_ip_asn ON source_ip(asn);",
    /* 3 -> 4: effectiveness (DESIGN.md "Remediation safety" 5). One row per (bot, authorisation)
     * with its send/dry-run decisions, commands sent/failed and its contacts after the first
     * command, including the first contact past +1 h and +24 h so a report can cut at any time;
     * the per-day command counts and commanded-bots-seen sets; the data's end time. A v3 file
     * kept only the bot's first command time, its authorisation, the count and the last contact
     * after it: those are carried over (the first contact after the command, and past 1 h / 24 h,
     * become that last contact, an upper bound); `sinkd registry rebuild` makes them exact. */
    "CREATE TABLE remediation(bot INTEGER NOT NULL, authorisation TEXT NOT NULL,"
    " send_decisions INTEGER NOT NULL DEFAULT 0, first_send_us INTEGER NOT NULL DEFAULT 0,"
    " dry_runs INTEGER NOT NULL DEFAULT 0, first_dry_run_us INTEGER NOT NULL DEFAULT 0,"
    " commands_sent INTEGER NOT NULL DEFAULT 0, first_command_us INTEGER NOT NULL DEFAULT 0,"
    " commands_failed INTEGER NOT NULL DEFAULT 0, first_failed_us INTEGER NOT NULL DEFAULT 0,"
    " seen_after INTEGER NOT NULL DEFAULT 0, first_after_us INTEGER NOT NULL DEFAULT 0,"
    " last_after_us INTEGER NOT NULL DEFAULT 0, first_after_1h_us INTEGER NOT NULL DEFAULT 0,"
    " first_after_24h_us INTEGER NOT NULL DEFAULT 0, PRIMARY KEY(bot, authorisation))"
    " WITHOUT ROWID;"
    "CREATE TABLE day_commanded(day INTEGER NOT NULL, bot INTEGER NOT NULL,"
    " PRIMARY KEY(day, bot)) WITHOUT ROWID;"
    "CREATE TABLE day_remediation(day INTEGER PRIMARY KEY, commands_sent INTEGER NOT NULL"
    " DEFAULT 0, commands_failed INTEGER NOT NULL DEFAULT 0, commanded_seen INTEGER NOT NULL"
    " DEFAULT 0);"
    "INSERT INTO remediation(bot, authorisation, send_decisions, first_send_us, commands_sent,"
    " first_command_us, seen_after, first_after_us, last_after_us, first_after_1h_us,"
    " first_after_24h_us)"
    " SELECT id, authorisation, 1, commanded_at_us, 1, commanded_at_us, seen_after_command,"
    " CASE WHEN seen_after_command > 0 THEN last_seen_after_command_us ELSE 0 END,"
    " last_seen_after_command_us,"
    " CASE WHEN last_seen_after_command_us > commanded_at_us + 3600000000"
    " THEN last_seen_after_command_us ELSE 0 END,"
    " CASE WHEN last_seen_after_command_us > commanded_at_us + 86400000000"
    " THEN last_seen_after_command_us ELSE 0 END FROM bot WHERE commanded_at_us > 0;"
    "INSERT OR IGNORE INTO remediation(bot, authorisation, dry_runs, first_dry_run_us)"
    " SELECT id, authorisation, 1, last_decision_us FROM bot WHERE last_verdict = 2;"
    "INSERT INTO day_remediation(day, commands_sent) SELECT commanded_at_us / 86400000000,"
    " count(*) FROM bot WHERE commanded_at_us > 0 GROUP BY 1;"
    "INSERT INTO meta(key, value) SELECT 'data_end_us', coalesce(max(max(last_seen_us,"
    " last_decision_us, commanded_at_us)), 0) FROM bot;",
};

struct sqlite_db {
    struct db base; /* first: a struct db pointer is a struct sqlite_db pointer */
    sqlite3 *conn;
};

struct sqlite_stmt {
    struct db_stmt base;
    struct sqlite_db *db;
    sqlite3_stmt *st;
    int64_t changes;
};

static const struct db_driver sqlite_driver;
static void sqlite_close(struct db *db);
static int sqlite_set_cache_mib(struct db *db, uint32_t mib);

static struct sqlite_db *sdb(struct db *db)
{
    return (struct sqlite_db *)db;
}

static struct sqlite_stmt *sst(struct db_stmt *st)
{
    return (struct sqlite_stmt *)st;
}

static int exec_script(sqlite3 *conn, const char *sql, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec(conn, sql, NULL, NULL, &msg) != SQLITE_OK) {
        err_set(err, errlen, "registry: %s", msg ? msg : sqlite3_errmsg(conn));
        sqlite3_free(msg);
        return REGISTRY_ERR;
    }
    return 0;
}

static int64_t pragma_int(sqlite3 *conn, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(conn, sql, -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
        v = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
    return v;
}

static int migrate(sqlite3 *conn, char *err, size_t errlen)
{
    int64_t version = pragma_int(conn, "PRAGMA user_version");
    if (version < 0) {
        return err_set(err, errlen, "registry: reading user_version: %s", sqlite3_errmsg(conn));
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
        if (exec_script(conn, "BEGIN IMMEDIATE", err, errlen) < 0) {
            return REGISTRY_ERR;
        }
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %" PRId64, v + 1);
        if (exec_script(conn, migrations[v], err, errlen) < 0 ||
            exec_script(conn, sql, err, errlen) < 0) {
            exec_script(conn, "ROLLBACK", NULL, 0);
            return REGISTRY_ERR;
        }
        if (exec_script(conn, "COMMIT", err, errlen) < 0) {
            return REGISTRY_ERR;
        }
    }
    return 0;
}

/* SQL functions for the 2 -> 3 migration: NULL when the text does not convert. */
static void sql_unhex16(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const unsigned char *t = sqlite3_value_text(argv[0]);
    uint8_t key[16];
    if (t == NULL || !registry_internal_key_from_hex((const char *)t, key)) {
        sqlite3_result_null(ctx);
        return;
    }
    sqlite3_result_blob(ctx, key, sizeof(key), SQLITE_TRANSIENT);
}

static void sql_ipblob(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const unsigned char *t = sqlite3_value_text(argv[0]);
    struct net_addr a;
    if (t == NULL || net_addr_parse_ip((const char *)t, &a) < 0) {
        sqlite3_result_null(ctx);
        return;
    }
    sqlite3_result_blob(ctx, a.ip, registry_internal_ip_key_len(&a), SQLITE_TRANSIENT);
}

int db_sqlite_open(struct db **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    struct sqlite_db *db = calloc(1, sizeof(*db));
    if (db == NULL) {
        return err_set(err, errlen, "registry: out of memory");
    }
    db->base.driver = &sqlite_driver;
    int rc = REGISTRY_ERR;
    if (sqlite3_open_v2(path, &db->conn,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        err_set(err, errlen, "registry: %s: %s", path,
                db->conn ? sqlite3_errmsg(db->conn) : "cannot open");
        goto fail;
    }
    /* A report may read while the follower writes: wait for its commit rather than fail. */
    sqlite3_busy_timeout(db->conn, 10000);
    /* WAL: readers never block the writer; synchronous=NORMAL: a power cut may lose the last
     * batches but never corrupts, and the log (the source of truth) replays them.
     * No mmap: measured, a 1 GiB map made the per-country report 1.09x (300 k bots) to 1.27x
     * (3 M bots) the sqlite3 CLI's time, because every new report process takes a page fault
     * per page it touches, and it did not speed up applying; without it 1.01x. A 64 MiB WAL between
     * checkpoints lets a page rewritten by several batches be copied back once; the file is cut
     * back to that size afterwards. */
    if (exec_script(db->conn,
                    "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                    " PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
                    " PRAGMA wal_autocheckpoint=16384; PRAGMA journal_size_limit=67108864;",
                    err, errlen) < 0) {
        goto fail;
    }
    if (sqlite_set_cache_mib(&db->base, REGISTRY_CACHE_MIB_DEFAULT) != 0) {
        err_set(err, errlen, "registry: %s: %s", path, sqlite3_errmsg(db->conn));
        goto fail;
    }
    if (sqlite3_create_function(db->conn, "sinkd_unhex16", 1,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                sql_unhex16, NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function(db->conn, "sinkd_ipblob", 1,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                sql_ipblob, NULL, NULL) != SQLITE_OK) {
        err_set(err, errlen, "registry: registering functions: %s", sqlite3_errmsg(db->conn));
        goto fail;
    }
    rc = migrate(db->conn, err, errlen);
    if (rc < 0) {
        goto fail;
    }
    *out = &db->base;
    return 0;
fail:
    sqlite_close(&db->base);
    return rc;
}

static void sqlite_close(struct db *db)
{
    if (db != NULL) {
        sqlite3_close(sdb(db)->conn);
        free(sdb(db));
    }
}

static const char *sqlite_errmsg(struct db *db)
{
    return sqlite3_errmsg(sdb(db)->conn);
}

static int sqlite_exec(struct db *db, const char *sql)
{
    return sqlite3_exec(sdb(db)->conn, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

static int sqlite_lock_writers(struct db *db)
{
    (void)db;
    return 0;
}

static int sqlite_prepare(struct db *db, const char *sql, bool persistent, struct db_stmt **out)
{
    *out = NULL;
    struct sqlite_stmt *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return -1;
    }
    st->base.driver = &sqlite_driver;
    st->db = sdb(db);
    if (sqlite3_prepare_v3(st->db->conn, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0,
                           &st->st, NULL) != SQLITE_OK) {
        free(st);
        return -1;
    }
    *out = &st->base;
    return 0;
}

/* Binding a parameter the SQL does not use is harmless (SQLITE_RANGE is ignored here). */
static void sqlite_bind_int(struct db_stmt *st, int i, int64_t v)
{
    sqlite3_bind_int64(sst(st)->st, i, v);
}

static void sqlite_bind_text(struct db_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(sst(st)->st, i, s, -1, SQLITE_TRANSIENT);
}

static void sqlite_bind_blob(struct db_stmt *st, int i, const void *p, size_t n)
{
    sqlite3_bind_blob(sst(st)->st, i, n ? p : "", (int)n, SQLITE_TRANSIENT);
}

static int sqlite_step(struct db_stmt *st)
{
    int rc = sqlite3_step(sst(st)->st);
    if (rc == SQLITE_ROW) {
        return DB_ROW;
    }
    if (rc == SQLITE_DONE) {
        sst(st)->changes = sqlite3_changes(sst(st)->db->conn);
        return DB_DONE;
    }
    return -1;
}

static int sqlite_run_deferred(struct db_stmt *st)
{
    int rc = sqlite_step(st);
    sqlite3_reset(sst(st)->st);
    return rc == DB_DONE ? 0 : -1;
}

static int sqlite_send(struct db_stmt *st)
{
    (void)st;
    return 0;
}

static int64_t sqlite_col_int(struct db_stmt *st, int i)
{
    return sqlite3_column_int64(sst(st)->st, i);
}

static const char *sqlite_col_text(struct db_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(sst(st)->st, i);
    return s ? (const char *)s : "";
}

static size_t sqlite_col_blob(struct db_stmt *st, int i, const uint8_t **p)
{
    *p = sqlite3_column_blob(sst(st)->st, i);
    int n = sqlite3_column_bytes(sst(st)->st, i);
    return *p != NULL && n > 0 ? (size_t)n : 0;
}

static int64_t sqlite_changes(const struct db_stmt *st)
{
    return ((const struct sqlite_stmt *)st)->changes;
}

static void sqlite_reset(struct db_stmt *st)
{
    sqlite3_reset(sst(st)->st);
}

static void sqlite_finalize(struct db_stmt *st)
{
    sqlite3_finalize(sst(st)->st);
    free(sst(st));
}

static int sqlite_set_cache_mib(struct db *db, uint32_t mib)
{
    char sql[64];
    /* A negative cache_size is in KiB, whatever the page size. */
    snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%u", mib * 1024u);
    return sqlite_exec(db, sql);
}

static int64_t sqlite_cache_mib(struct db *db)
{
    int64_t v = pragma_int(sdb(db)->conn, "PRAGMA cache_size");
    if (v < 0 && v != -1) {
        return -v / 1024;
    }
    int64_t page = pragma_int(sdb(db)->conn, "PRAGMA page_size");
    return v > 0 && page > 0 ? v * page / (1024 * 1024) : -1;
}

static const struct db_driver sqlite_driver = {
    .dialect = DB_SQLITE,
    .close = sqlite_close,
    .errmsg = sqlite_errmsg,
    .exec = sqlite_exec,
    .lock_writers = sqlite_lock_writers,
    .prepare = sqlite_prepare,
    .bind_int = sqlite_bind_int,
    .bind_text = sqlite_bind_text,
    .bind_blob = sqlite_bind_blob,
    .step = sqlite_step,
    .run_deferred = sqlite_run_deferred,
    .send = sqlite_send,
    .col_int = sqlite_col_int,
    .col_text = sqlite_col_text,
    .col_blob = sqlite_col_blob,
    .changes = sqlite_changes,
    .reset = sqlite_reset,
    .finalize = sqlite_finalize,
    .set_cache_mib = sqlite_set_cache_mib,
    .cache_mib = sqlite_cache_mib,
};
