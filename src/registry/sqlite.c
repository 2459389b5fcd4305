/* sqlite.c -- the registry's embedded SQLite backend: schema migrations, batched upserts from log
 * records, and the queries reports run. */
#include "registry/registry.h"
#include "registry/internal.h"
#include "util/err.h"

#include <errno.h>
#include <inttypes.h>
#include <sqlite3.h>
#include <sys/socket.h>
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

/* Identity fields are part of the key (host/user/local_ip/campaign) or may be absent from a
 * heartbeat, so an empty value never overwrites a known one. Location fields follow the latest
 * contact by time (?9), not by log order, so a late-arriving older record cannot move a bot back.
 * In an UPDATE every right-hand side reads the row's old values. */
#define KEEP(col, n) #col " = CASE WHEN ?" #n " <> '' THEN ?" #n " ELSE " #col " END, "
#define LATEST(col, n) #col " = CASE WHEN ?9 >= last_seen_us THEN ?" #n " ELSE " #col " END, "

/* The columns a contact moves that no index covers. Updating only these leaves the bot_key, cc
 * and asn indexes untouched, which is what makes the common update (a known bot calling again
 * from the same country and AS) one row write instead of one row plus four index writes. */
#define BOT_SET_HOT                                                                                \
    "UPDATE bot SET contacts = contacts + 1, first_seen_us = min(first_seen_us, ?9),"              \
    " last_seen_us = max(last_seen_us, ?9), " KEEP(family, 2) KEEP(host, 3) KEEP(user, 4) KEEP(    \
        os, 5) KEEP(local_ip, 6) KEEP(campaign, 7) KEEP(version,                                   \
                                                        8) LATEST(src_ip, 10) LATEST(src_port, 11) \
        LATEST(dst_ip, 12) LATEST(dst_port, 13) LATEST(transport, 14) LATEST(node, 15) LATEST(     \
            tags,                                                                                  \
            18) " seen_after_command = seen_after_command + (commanded_at_us > 0 AND ?9 > "        \
                "commanded_at_us),"                                                                \
                " last_seen_after_command_us = CASE WHEN commanded_at_us > 0 AND ?9 > "            \
                "commanded_at_us"                                                                  \
                " THEN max(last_seen_after_command_us, ?9) ELSE last_seen_after_command_us END"

enum stmt_id {
    ST_BOT_FIND,
    ST_BOT_INSERT,
    ST_BOT_UPDATE_HOT,
    ST_BOT_UPDATE_MOVED,
    ST_IP_FIND,
    ST_IP_INSERT,
    ST_IP_UPDATE_HOT,
    ST_IP_UPDATE_MOVED,
    ST_DAY_BOT,
    ST_DAY_IP,
    ST_BOT_GET_ANON,
    ST_BOT_DELETE,
    ST_DAY_BOT_DELETE,
    ST_BOT_ABSORB,
    ST_DAY_CC,
    ST_DECISION,
    ST_COMMAND,
    ST_REM_DECISION,
    ST_REM_COMMAND,
    ST_REM_CONTACT,
    ST_DAY_COMMANDED,
    ST_DAY_REM,
    ST_META_SET,
    ST_BEGIN,
    ST_COMMIT,
    ST_COUNT
};

/* Bot statements share one parameter layout: ?1 key (16-byte blob), ?2..?8 family, host, user,
 * os, local_ip, campaign, version, ?9 time, ?10 src_ip, ?11 src_port, ?12 dst_ip, ?13 dst_port,
 * ?14 transport, ?15 node, ?16 cc, ?17 asn, ?18 tags, ?19 row id. */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_BOT_FIND] = "SELECT id, last_seen_us, cc, asn, commanded_at_us FROM bot WHERE bot_key = ?1",
    [ST_BOT_INSERT] =
        "INSERT INTO bot(bot_key, family, host, user, os, local_ip, campaign, version,"
        " first_seen_us, last_seen_us, src_ip, src_port, dst_ip, dst_port, transport, node, cc,"
        " asn, tags, contacts) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13,"
        " ?14, ?15, ?16, ?17, ?18, 1)",
    [ST_BOT_UPDATE_HOT] = BOT_SET_HOT " WHERE id = ?19",
    /* Only used when this contact is the bot's latest and its country or AS changed. */
    [ST_BOT_UPDATE_MOVED] = BOT_SET_HOT ", cc = ?16, asn = ?17 WHERE id = ?19",
    [ST_IP_FIND] = "SELECT last_seen_us, cc, asn, identified FROM source_ip WHERE ip = ?1",
    [ST_IP_INSERT] = "INSERT INTO source_ip(ip, cc, asn, first_seen_us, last_seen_us, contacts,"
                     " identified) VALUES(?1, ?2, ?3, ?4, ?4, 1, ?5)",
    [ST_IP_UPDATE_HOT] = "UPDATE source_ip SET contacts = contacts + 1,"
                         " first_seen_us = min(first_seen_us, ?4),"
                         " last_seen_us = max(last_seen_us, ?4), identified = max(identified, ?5)"
                         " WHERE ip = ?1",
    [ST_IP_UPDATE_MOVED] = "UPDATE source_ip SET contacts = contacts + 1,"
                           " first_seen_us = min(first_seen_us, ?4),"
                           " last_seen_us = max(last_seen_us, ?4), cc = ?2, asn = ?3,"
                           " identified = max(identified, ?5) WHERE ip = ?1",
    [ST_DAY_BOT] = "INSERT OR IGNORE INTO day_bot(day, bot) VALUES(?1, ?2)",
    [ST_DAY_IP] = "INSERT OR IGNORE INTO day_ip(day, ip) VALUES(?1, ?2)",
    [ST_DAY_CC] = "INSERT INTO day_cc(day, cc, bots, ips, contacts) VALUES(?1, ?2, ?3, ?4, ?5)"
                  " ON CONFLICT(day, cc) DO UPDATE SET bots = bots + excluded.bots,"
                  " ips = ips + excluded.ips, contacts = contacts + excluded.contacts",
    /* An unidentified first message (a hello before machine-info) is keyed by source IP; once
     * the same IP identifies itself that row was the identified bot all along and is folded
     * into it (contacts, first seen, per-day sets and counters). */
    [ST_BOT_GET_ANON] = "SELECT id, contacts, first_seen_us, last_seen_us, cc FROM bot"
                        " WHERE bot_key = ?1",
    [ST_BOT_DELETE] = "DELETE FROM bot WHERE id = ?1",
    [ST_DAY_BOT_DELETE] = "DELETE FROM day_bot WHERE day = ?1 AND bot = ?2",
    [ST_BOT_ABSORB] = "UPDATE bot SET contacts = contacts + ?2,"
                      " first_seen_us = min(first_seen_us, ?3) WHERE id = ?1",
    [ST_DECISION] = "UPDATE bot SET last_verdict = ?2, last_decision_us = ?3,"
                    " authorisation = CASE WHEN ?4 <> '' THEN ?4 ELSE authorisation END"
                    " WHERE bot_key = ?1",
    [ST_COMMAND] = "UPDATE bot SET commanded_at_us = CASE WHEN commanded_at_us = 0 THEN ?2"
                   " ELSE min(commanded_at_us, ?2) END,"
                   " authorisation = CASE WHEN ?3 <> '' THEN ?3 ELSE authorisation END"
                   " WHERE bot_key = ?1",
    /* ?1 key, ?2 authorisation, ?3 send decisions, ?4 dry runs, ?5 time. A decision for a key
     * with no bot row inserts nothing (SELECT finds no bot). */
    [ST_REM_DECISION] =
        "INSERT INTO remediation(bot, authorisation, send_decisions, first_send_us, dry_runs,"
        " first_dry_run_us) SELECT id, ?2, ?3, ?3 * ?5, ?4, ?4 * ?5 FROM bot WHERE bot_key = ?1"
        " ON CONFLICT(bot, authorisation) DO UPDATE SET"
        " send_decisions = send_decisions + excluded.send_decisions,"
        " first_send_us = CASE WHEN excluded.first_send_us = 0 THEN first_send_us"
        " WHEN first_send_us = 0 THEN excluded.first_send_us"
        " ELSE min(first_send_us, excluded.first_send_us) END,"
        " dry_runs = dry_runs + excluded.dry_runs,"
        " first_dry_run_us = CASE WHEN excluded.first_dry_run_us = 0 THEN first_dry_run_us"
        " WHEN first_dry_run_us = 0 THEN excluded.first_dry_run_us"
        " ELSE min(first_dry_run_us, excluded.first_dry_run_us) END",
    /* ?1 key, ?2 authorisation, ?3 sent (0/1), ?4 failed (0/1), ?5 time. */
    [ST_REM_COMMAND] =
        "INSERT INTO remediation(bot, authorisation, commands_sent, first_command_us,"
        " commands_failed, first_failed_us) SELECT id, ?2, ?3, ?3 * ?5, ?4, ?4 * ?5 FROM bot"
        " WHERE bot_key = ?1 ON CONFLICT(bot, authorisation) DO UPDATE SET"
        " commands_sent = commands_sent + excluded.commands_sent,"
        " first_command_us = CASE WHEN excluded.first_command_us = 0 THEN first_command_us"
        " WHEN first_command_us = 0 THEN excluded.first_command_us"
        " ELSE min(first_command_us, excluded.first_command_us) END,"
        " commands_failed = commands_failed + excluded.commands_failed,"
        " first_failed_us = CASE WHEN excluded.first_failed_us = 0 THEN first_failed_us"
        " WHEN first_failed_us = 0 THEN excluded.first_failed_us"
        " ELSE min(first_failed_us, excluded.first_failed_us) END",
    /* A contact of a commanded bot (?1 row id) at ?2: every authorisation it was commanded
     * under before ?2 counts it; minimums, not "first applied", so log order does not matter. */
    [ST_REM_CONTACT] =
        "UPDATE remediation SET seen_after = seen_after + 1,"
        " first_after_us = CASE WHEN first_after_us = 0 OR ?2 < first_after_us THEN ?2"
        " ELSE first_after_us END, last_after_us = max(last_after_us, ?2),"
        " first_after_1h_us = CASE WHEN ?2 > first_command_us + 3600000000 AND"
        " (first_after_1h_us = 0 OR ?2 < first_after_1h_us) THEN ?2 ELSE first_after_1h_us END,"
        " first_after_24h_us = CASE WHEN ?2 > first_command_us + 86400000000 AND"
        " (first_after_24h_us = 0 OR ?2 < first_after_24h_us) THEN ?2"
        " ELSE first_after_24h_us END"
        " WHERE bot = ?1 AND first_command_us > 0 AND ?2 > first_command_us",
    [ST_DAY_COMMANDED] = "INSERT OR IGNORE INTO day_commanded(day, bot) VALUES(?1, ?2)",
    [ST_DAY_REM] = "INSERT INTO day_remediation(day, commands_sent, commands_failed,"
                   " commanded_seen) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(day) DO UPDATE SET"
                   " commands_sent = commands_sent + excluded.commands_sent,"
                   " commands_failed = commands_failed + excluded.commands_failed,"
                   " commanded_seen = commanded_seen + excluded.commanded_seen",
    [ST_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
};

/* Per-day, per-country counters of the open batch, kept in memory and written once per batch:
 * thousands of contacts a batch land on a few hundred (day, country) rows. Open addressing over
 * a power-of-two table; written out early when half full so probing stays short. */
#define DAYCC_SLOTS 4096
#define DAYCC_FLUSH_AT (DAYCC_SLOTS / 2)

struct daycc {
    int64_t day;
    char cc[3];
    bool used;
    int64_t bots, ips, contacts;
};

struct registry {
    sqlite3 *db;
    sqlite3_stmt *stmt[ST_COUNT]; /* prepared on the first apply: readers never need them */
    bool writer_ready;
    uint64_t next_index;  /* including the open batch */
    uint64_t bad_records; /* including the open batch */
    uint64_t data_end_us; /* latest record time applied, including the open batch */
    size_t batch_records; /* records in the open transaction */
    bool in_txn;
    struct daycc *daycc; /* DAYCC_SLOTS, allocated with the writer statements */
    size_t daycc_n;
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

int registry_set_cache_mib(struct registry *reg, uint32_t mib, char *err, size_t errlen)
{
    if (mib < 1 || mib > REGISTRY_CACHE_MIB_MAX) {
        return err_set(err, errlen, "registry: page cache of %u MiB is outside 1..%u", mib,
                       REGISTRY_CACHE_MIB_MAX);
    }
    char sql[64];
    /* A negative cache_size is in KiB, whatever the page size. */
    snprintf(sql, sizeof(sql), "PRAGMA cache_size=-%u", mib * 1024u);
    return exec_sql(reg, sql, err, errlen);
}

int64_t registry_cache_mib(struct registry *reg)
{
    int64_t v = pragma_int(reg, "PRAGMA cache_size");
    if (v < 0 && v != -1) {
        return -v / 1024;
    }
    int64_t page = pragma_int(reg, "PRAGMA page_size");
    return v > 0 && page > 0 ? v * page / (1024 * 1024) : -1;
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

/* ---- keys and addresses as stored ----------------------------------------------------------- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* event_bot_key() text (32 hex characters) -> the 16 bytes the bot table stores. */
static bool key_from_hex(const char *hex, uint8_t out[16])
{
    for (int i = 0; i < 16; i++) {
        int hi = hex_value(hex[2 * i]);
        int lo = hi < 0 ? -1 : hex_value(hex[2 * i + 1]);
        if (lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return hex[32] == '\0';
}

static void key_to_hex(const uint8_t *key, int len, char out[33])
{
    static const char digits[] = "0123456789abcdef";
    int n = 0;
    for (int i = 0; i < len && i < 16; i++) {
        out[n++] = digits[key[i] >> 4];
        out[n++] = digits[key[i] & 15];
    }
    out[n] = '\0';
}

/* An address as a source_ip key: 4 or 16 network-order bytes (0 for no address). */
static int ip_key_len(const struct net_addr *a)
{
    return a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;
}

/* SQL functions for the 2 -> 3 migration: NULL when the text does not convert. */
static void sql_unhex16(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const unsigned char *t = sqlite3_value_text(argv[0]);
    uint8_t key[16];
    if (t == NULL || !key_from_hex((const char *)t, key)) {
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
    sqlite3_result_blob(ctx, a.ip, ip_key_len(&a), SQLITE_TRANSIENT);
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
     * batches but never corrupts, and the log (the source of truth) replays them.
     * No mmap: measured, a 1 GiB map made the per-country report 1.09x (300 k bots) to 1.27x
     * (3 M bots) the sqlite3 CLI's time, because every new report process takes a page fault
     * per page it touches, and it did not speed up applying; without it 1.01x. A 64 MiB WAL between
     * checkpoints lets a page rewritten by several batches be copied back once; the file is cut
     * back to that size afterwards. */
    if (exec_sql(reg,
                 "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                 " PRAGMA foreign_keys=OFF; PRAGMA temp_store=MEMORY;"
                 " PRAGMA wal_autocheckpoint=16384; PRAGMA journal_size_limit=67108864;",
                 err, errlen) < 0) {
        goto fail;
    }
    if (registry_set_cache_mib(reg, REGISTRY_CACHE_MIB_DEFAULT, err, errlen) != 0) {
        goto fail;
    }
    if (sqlite3_create_function(reg->db, "sinkd_unhex16", 1,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                sql_unhex16, NULL, NULL) != SQLITE_OK ||
        sqlite3_create_function(reg->db, "sinkd_ipblob", 1,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL,
                                sql_ipblob, NULL, NULL) != SQLITE_OK) {
        db_err(reg, err, errlen, "registering functions");
        goto fail;
    }
    rc = migrate(reg, err, errlen);
    if (rc < 0) {
        goto fail;
    }
    rc = REGISTRY_ERR;
    int64_t next = meta_get(reg, "next_index");
    int64_t bad = meta_get(reg, "bad_records");
    int64_t end = meta_get(reg, "data_end_us");
    if (next < 0 || bad < 0 || end < 0) {
        err_set(err, errlen, "registry: %s: meta table is missing its rows", path);
        goto fail;
    }
    reg->next_index = (uint64_t)next;
    reg->bad_records = (uint64_t)bad;
    reg->data_end_us = (uint64_t)end;
    *out = reg;
    return 0;
fail:
    registry_close(reg);
    return rc;
}

/* The write path's statements and batch counters, made on the first apply so a report's open
 * costs no statement compilation it will never use. */
static int writer_prepare(struct registry *reg, char *err, size_t errlen)
{
    if (reg->writer_ready) {
        return 0;
    }
    reg->daycc = calloc(DAYCC_SLOTS, sizeof(*reg->daycc));
    if (reg->daycc == NULL) {
        return err_set(err, errlen, "registry: out of memory");
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(reg->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &reg->stmt[i],
                               NULL) != SQLITE_OK) {
            return db_err(reg, err, errlen, "preparing statements");
        }
    }
    reg->writer_ready = true;
    return 0;
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
    free(reg->daycc);
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

static void daycc_add(struct registry *reg, int64_t day, const char *cc, int bots, int ips,
                      int contacts)
{
    size_t h =
        ((size_t)day * 31u + (unsigned char)cc[0] * 131u + (unsigned char)(cc[0] ? cc[1] : 0)) &
        (DAYCC_SLOTS - 1);
    for (;;) {
        struct daycc *d = &reg->daycc[h];
        if (!d->used) {
            d->used = true;
            d->day = day;
            snprintf(d->cc, sizeof(d->cc), "%s", cc);
            reg->daycc_n++;
            d->bots = bots;
            d->ips = ips;
            d->contacts = contacts;
            return;
        }
        if (d->day == day && strcmp(d->cc, cc) == 0) {
            d->bots += bots;
            d->ips += ips;
            d->contacts += contacts;
            return;
        }
        h = (h + 1) & (DAYCC_SLOTS - 1);
    }
}

static void daycc_clear(struct registry *reg)
{
    if (reg->daycc != NULL && reg->daycc_n > 0) {
        memset(reg->daycc, 0, DAYCC_SLOTS * sizeof(*reg->daycc));
    }
    reg->daycc_n = 0;
}

/* Writes the batch's day counters into the open transaction. */
static int daycc_write(struct registry *reg, char *err, size_t errlen)
{
    if (reg->daycc_n == 0) {
        return 0;
    }
    sqlite3_stmt *st = reg->stmt[ST_DAY_CC];
    for (size_t i = 0; i < DAYCC_SLOTS; i++) {
        const struct daycc *d = &reg->daycc[i];
        if (!d->used) {
            continue;
        }
        sqlite3_bind_int64(st, 1, d->day);
        sqlite3_bind_text(st, 2, d->cc, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, d->bots);
        sqlite3_bind_int64(st, 4, d->ips);
        sqlite3_bind_int64(st, 5, d->contacts);
        if (step_done(reg, st, err, errlen, "day_cc upsert") < 0) {
            return REGISTRY_ERR;
        }
    }
    daycc_clear(reg);
    return 0;
}

/* Drops the open batch: rolls back and re-reads the committed position so the caller can replay
 * from the log. */
static void batch_abort(struct registry *reg)
{
    exec_sql(reg, "ROLLBACK", NULL, 0);
    reg->in_txn = false;
    reg->batch_records = 0;
    daycc_clear(reg);
    int64_t next = meta_get(reg, "next_index");
    int64_t bad = meta_get(reg, "bad_records");
    int64_t end = meta_get(reg, "data_end_us");
    reg->next_index = next < 0 ? 0 : (uint64_t)next;
    reg->bad_records = bad < 0 ? 0 : (uint64_t)bad;
    reg->data_end_us = end < 0 ? 0 : (uint64_t)end;
}

int registry_flush(struct registry *reg, char *err, size_t errlen)
{
    if (!reg->in_txn) {
        return 0;
    }
    if (daycc_write(reg, err, errlen) < 0 ||
        meta_set(reg, "next_index", reg->next_index, err, errlen) < 0 ||
        meta_set(reg, "bad_records", reg->bad_records, err, errlen) < 0 ||
        meta_set(reg, "data_end_us", reg->data_end_us, err, errlen) < 0 ||
        step_done(reg, reg->stmt[ST_COMMIT], err, errlen, "commit") < 0) {
        batch_abort(reg);
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

/* Reads the FIND statement's row (if any) and resets it. Returns 1 found, 0 not, < 0 error. */
struct found_row {
    int64_t id;
    int64_t last_seen_us;
    char cc[3];
    uint32_t asn;
    bool identified;         /* source_ip rows */
    int64_t commanded_at_us; /* bot rows */
};

static int find_row(struct registry *reg, sqlite3_stmt *st, bool has_id, struct found_row *out,
                    char *err, size_t errlen)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        int off = has_id ? 1 : 0;
        out->id = has_id ? sqlite3_column_int64(st, 0) : 0;
        out->last_seen_us = sqlite3_column_int64(st, off);
        const unsigned char *cc = sqlite3_column_text(st, off + 1);
        snprintf(out->cc, sizeof(out->cc), "%s", cc ? (const char *)cc : "");
        out->asn = (uint32_t)sqlite3_column_int64(st, off + 2);
        out->identified = !has_id && sqlite3_column_int(st, 3) != 0;
        out->commanded_at_us = has_id ? sqlite3_column_int64(st, 4) : 0;
    }
    sqlite3_reset(st);
    if (rc == SQLITE_ROW) {
        return 1;
    }
    if (rc == SQLITE_DONE) {
        return 0;
    }
    return db_err(reg, err, errlen, "lookup");
}

/* Adds (day, member) to a per-day set unless the member's last contact was already on that day:
 * every bot/IP's last-seen day is always in its set (the contact that set it inserted it), so
 * the insert and its lookup are needed only for the first contact of a day. Returns 1 when the
 * member is new for the day, 0 if not, < 0 on error. */
static int day_set_add(struct registry *reg, enum stmt_id id, int64_t day, bool known,
                       int64_t last_seen_us, const void *member, int member_len, int64_t member_id,
                       char *err, size_t errlen)
{
    if (known && last_seen_us >= 0 && (uint64_t)last_seen_us / US_PER_DAY == (uint64_t)day) {
        return 0;
    }
    sqlite3_stmt *st = reg->stmt[id];
    sqlite3_bind_int64(st, 1, day);
    if (member != NULL) {
        sqlite3_bind_blob(st, 2, member_len ? member : "", member_len, SQLITE_STATIC);
    } else {
        sqlite3_bind_int64(st, 2, member_id);
    }
    if (step_done(reg, st, err, errlen, "per-day set insert") < 0) {
        return REGISTRY_ERR;
    }
    return sqlite3_changes(reg->db) > 0;
}

static int day_rem_add(struct registry *reg, int64_t day, int sent, int failed, int seen, char *err,
                       size_t errlen)
{
    sqlite3_stmt *st = reg->stmt[ST_DAY_REM];
    sqlite3_bind_int64(st, 1, day);
    sqlite3_bind_int(st, 2, sent);
    sqlite3_bind_int(st, 3, failed);
    sqlite3_bind_int(st, 4, seen);
    return step_done(reg, st, err, errlen, "per-day remediation counts");
}

/* The key event_bot_key() gives a contact that carries no identity: family and source IP. */
static int anon_key(const struct contact *c, uint8_t key[16], char *err, size_t errlen)
{
    struct contact anon = *c;
    char hex[33];
    memset(&anon.bot, 0, sizeof(anon.bot));
    anon.bot_key[0] = '\0';
    event_bot_key(&anon, hex);
    if (!key_from_hex(hex, key)) {
        return err_set(err, errlen, "registry: bot key '%s' is not 32 hex digits", hex);
    }
    return 0;
}

/* First identified contact from an address: fold the address-keyed row made by that address's
 * earlier unidentified contacts into bot `into` and take it out of the per-day bot counts. */
static int absorb_anon(struct registry *reg, const struct contact *c, int64_t into, char *err,
                       size_t errlen)
{
    uint8_t key[16];
    if (anon_key(c, key, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    sqlite3_stmt *st = reg->stmt[ST_BOT_GET_ANON];
    sqlite3_bind_blob(st, 1, key, sizeof(key), SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : db_err(reg, err, errlen, "address-keyed bot");
    }
    int64_t id = sqlite3_column_int64(st, 0), contacts = sqlite3_column_int64(st, 1);
    int64_t first = sqlite3_column_int64(st, 2), last = sqlite3_column_int64(st, 3);
    char cc[3];
    const unsigned char *t = sqlite3_column_text(st, 4);
    snprintf(cc, sizeof(cc), "%s", t ? (const char *)t : "");
    sqlite3_reset(st);
    if (id == into) {
        return 0;
    }
    /* The row lived from its first to its last contact: its days are in that range. */
    for (int64_t d = first / (int64_t)US_PER_DAY; d <= last / (int64_t)US_PER_DAY; d++) {
        st = reg->stmt[ST_DAY_BOT_DELETE];
        sqlite3_bind_int64(st, 1, d);
        sqlite3_bind_int64(st, 2, id);
        if (step_done(reg, st, err, errlen, "per-day set delete") < 0) {
            return REGISTRY_ERR;
        }
        if (sqlite3_changes(reg->db) > 0) {
            daycc_add(reg, d, cc, -1, 0, 0);
        }
    }
    st = reg->stmt[ST_BOT_DELETE];
    sqlite3_bind_int64(st, 1, id);
    if (step_done(reg, st, err, errlen, "bot delete") < 0) {
        return REGISTRY_ERR;
    }
    st = reg->stmt[ST_BOT_ABSORB];
    sqlite3_bind_int64(st, 1, into);
    sqlite3_bind_int64(st, 2, contacts);
    sqlite3_bind_int64(st, 3, first);
    return step_done(reg, st, err, errlen, "bot absorb");
}

/* A contact at t of commanded bot `id`, later than its first command: the per-authorisation
 * after-command figures and, on its first such contact of the day, the per-day seen count. */
static int after_command(struct registry *reg, int64_t id, int64_t t, int64_t day, char *err,
                         size_t errlen)
{
    sqlite3_stmt *st = reg->stmt[ST_REM_CONTACT];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, t);
    if (step_done(reg, st, err, errlen, "remediation contact") < 0) {
        return REGISTRY_ERR;
    }
    st = reg->stmt[ST_DAY_COMMANDED];
    sqlite3_bind_int64(st, 1, day);
    sqlite3_bind_int64(st, 2, id);
    if (step_done(reg, st, err, errlen, "commanded-seen set insert") < 0) {
        return REGISTRY_ERR;
    }
    if (sqlite3_changes(reg->db) == 0) {
        return 0;
    }
    return day_rem_add(reg, day, 0, 0, 1, err, errlen);
}

static int apply_contact(struct registry *reg, const struct contact *c, char *err, size_t errlen)
{
    char src[NET_ADDR_STRLEN], dst[NET_ADDR_STRLEN];
    uint8_t key[16];
    /* "" (or anything not a key) means the connection never identified itself: key it by source
     * IP as event_bot_key() does, so the bot is still counted once per address. */
    bool identified = key_from_hex(c->bot_key, key);
    if (!identified && anon_key(c, key, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    net_addr_format_ip(&c->src, src);
    net_addr_format_ip(&c->dst, dst);
    int64_t t = (int64_t)c->time_us;
    int64_t day = (int64_t)(c->time_us / US_PER_DAY);

    int iplen = ip_key_len(&c->src);
    struct found_row ip = {0};
    enum stmt_id which;
    sqlite3_stmt *st = reg->stmt[ST_IP_FIND];
    sqlite3_bind_blob(st, 1, iplen ? (const void *)c->src.ip : "", iplen, SQLITE_STATIC);
    int ip_known = find_row(reg, st, false, &ip, err, errlen);
    if (ip_known < 0) {
        return REGISTRY_ERR;
    }
    /* An unidentified contact from an address an identified bot has called from belongs to that
     * bot (its hello before its machine-info): it counts for the IP, not as another bot. */
    bool bot_row = identified || !(ip_known && ip.identified);
    struct found_row bot = {0};
    int known = 0;
    if (bot_row) {
        st = reg->stmt[ST_BOT_FIND];
        sqlite3_bind_blob(st, 1, key, sizeof(key), SQLITE_STATIC);
        known = find_row(reg, st, true, &bot, err, errlen);
        if (known < 0) {
            return REGISTRY_ERR;
        }
        which = ST_BOT_INSERT;
        if (known) {
            bool moved = t >= bot.last_seen_us && (strcmp(bot.cc, c->cc) != 0 || bot.asn != c->asn);
            which = moved ? ST_BOT_UPDATE_MOVED : ST_BOT_UPDATE_HOT;
        }
        st = reg->stmt[which];
        sqlite3_bind_blob(st, 1, key, sizeof(key), SQLITE_STATIC);
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
        if (known) {
            sqlite3_bind_int64(st, 19, bot.id);
        }
        if (step_done(reg, st, err, errlen, "bot upsert") < 0) {
            return REGISTRY_ERR;
        }
        if (!known) {
            bot.id = sqlite3_last_insert_rowid(reg->db);
        }
        /* Only a commanded bot's later contacts touch the remediation tables: the common
         * contact costs nothing more. */
        if (known && bot.commanded_at_us > 0 && t > bot.commanded_at_us &&
            after_command(reg, bot.id, t, day, err, errlen) < 0) {
            return REGISTRY_ERR;
        }
    }
    which = ST_IP_INSERT;
    if (ip_known) {
        bool moved = t >= ip.last_seen_us && (strcmp(ip.cc, c->cc) != 0 || ip.asn != c->asn);
        which = moved ? ST_IP_UPDATE_MOVED : ST_IP_UPDATE_HOT;
    }
    st = reg->stmt[which];
    sqlite3_bind_blob(st, 1, iplen ? (const void *)c->src.ip : "", iplen, SQLITE_STATIC);
    bind_str(st, 2, c->cc);
    sqlite3_bind_int64(st, 3, c->asn);
    sqlite3_bind_int64(st, 4, t);
    sqlite3_bind_int(st, 5, identified);
    if (step_done(reg, st, err, errlen, "source ip upsert") < 0) {
        return REGISTRY_ERR;
    }
    if (identified && ip_known && !ip.identified && absorb_anon(reg, c, bot.id, err, errlen) < 0) {
        return REGISTRY_ERR;
    }

    /* Per-day distinct counts kept incrementally: the set insert tells whether this is the
     * bot's (IP's) first contact of the day, and only then the counter moves. */
    int new_bot = !bot_row ? 0
                           : day_set_add(reg, ST_DAY_BOT, day, known, bot.last_seen_us, NULL, 0,
                                         bot.id, err, errlen);
    if (new_bot < 0) {
        return REGISTRY_ERR;
    }
    int new_ip = day_set_add(reg, ST_DAY_IP, day, ip_known, ip.last_seen_us, c->src.ip, iplen, 0,
                             err, errlen);
    if (new_ip < 0) {
        return REGISTRY_ERR;
    }
    daycc_add(reg, day, c->cc, new_bot, new_ip, 1);
    if (reg->daycc_n >= DAYCC_FLUSH_AT) {
        return daycc_write(reg, err, errlen);
    }
    return 0;
}

/* Send and dry-run decisions and command records into the per-(bot, authorisation) row; a
 * command also into the per-day counts. Returns 0 or REGISTRY_ERR. */
static int remediation_record(struct registry *reg, enum stmt_id id, const uint8_t key[16],
                              const char *authorisation, int a, int b, uint64_t time_us, char *err,
                              size_t errlen)
{
    sqlite3_stmt *st = reg->stmt[id];
    sqlite3_bind_blob(st, 1, key, 16, SQLITE_STATIC);
    bind_str(st, 2, authorisation);
    sqlite3_bind_int(st, 3, a);
    sqlite3_bind_int(st, 4, b);
    sqlite3_bind_int64(st, 5, (int64_t)time_us);
    if (step_done(reg, st, err, errlen, "remediation update") < 0) {
        return REGISTRY_ERR;
    }
    /* No row changed: the key has no bot (see the decision case below); count nothing. */
    if (id == ST_REM_COMMAND && sqlite3_changes(reg->db) > 0) {
        return day_rem_add(reg, (int64_t)(time_us / US_PER_DAY), a, b, 0, err, errlen);
    }
    return 0;
}

static uint64_t record_time(const struct record *rec)
{
    switch (rec->kind) {
    case RECORD_CONTACT:
        return rec->u.contact.time_us;
    case RECORD_DECISION:
        return rec->u.decision.time_us;
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED:
        return rec->u.command.time_us;
    default:
        return rec->u.note.time_us;
    }
}

static int apply_record(struct registry *reg, const struct record *rec, char *err, size_t errlen)
{
    sqlite3_stmt *st;
    uint8_t key[16];
    /* Every record, node-stopped included, shows the sinkhole was observing until then. */
    uint64_t t = record_time(rec);
    if (t > reg->data_end_us) {
        reg->data_end_us = t;
    }
    switch (rec->kind) {
    case RECORD_CONTACT:
        return apply_contact(reg, &rec->u.contact, err, errlen);
    case RECORD_DECISION: {
        /* A decision always follows a contact of the same bot, so the row exists; a decision
         * for an unknown (or malformed) key updates nothing rather than inventing a bot with no
         * contact. */
        const struct decision *d = &rec->u.decision;
        if (!key_from_hex(d->bot_key, key)) {
            return 0;
        }
        st = reg->stmt[ST_DECISION];
        sqlite3_bind_blob(st, 1, key, sizeof(key), SQLITE_STATIC);
        sqlite3_bind_int(st, 2, d->verdict);
        sqlite3_bind_int64(st, 3, (int64_t)d->time_us);
        bind_str(st, 4, d->authorisation);
        if (step_done(reg, st, err, errlen, "decision update") < 0) {
            return REGISTRY_ERR;
        }
        if (d->verdict != VERDICT_SEND && d->verdict != VERDICT_DRY_RUN) {
            return 0;
        }
        return remediation_record(reg, ST_REM_DECISION, key, d->authorisation,
                                  d->verdict == VERDICT_SEND, d->verdict == VERDICT_DRY_RUN,
                                  d->time_us, err, errlen);
    }
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED: {
        const struct command_record *c = &rec->u.command;
        bool sent = rec->kind == RECORD_COMMAND_SENT;
        if (!key_from_hex(c->bot_key, key)) {
            return 0;
        }
        if (sent) {
            st = reg->stmt[ST_COMMAND];
            sqlite3_bind_blob(st, 1, key, sizeof(key), SQLITE_STATIC);
            sqlite3_bind_int64(st, 2, (int64_t)c->time_us);
            bind_str(st, 3, c->authorisation);
            if (step_done(reg, st, err, errlen, "command update") < 0) {
                return REGISTRY_ERR;
            }
        }
        return remediation_record(reg, ST_REM_COMMAND, key, c->authorisation, sent, !sent,
                                  c->time_us, err, errlen);
    }
    default:
        /* Operational notes do not change a bot's row. */
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
    if (writer_prepare(reg, err, errlen) < 0) {
        return REGISTRY_ERR;
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
        int64_t end = meta_get(reg, "data_end_us");
        if (next < 0 || bad < 0 || end < 0) {
            exec_sql(reg, "ROLLBACK", NULL, 0);
            reg->in_txn = false;
            return db_err(reg, err, errlen, "reading the applied index");
        }
        reg->next_index = (uint64_t)next;
        reg->bad_records = (uint64_t)bad;
        reg->data_end_us = (uint64_t)end;
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
        batch_abort(reg);
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
    key_to_hex(sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0), b->bot_key);
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
    /* A query inside this connection's own open batch sees the batch's day counters too. */
    if (reg->in_txn && daycc_write(reg, err, errlen) < 0) {
        return REGISTRY_ERR;
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
    uint8_t key[16];
    if (!key_from_hex(bot_key, key)) {
        sqlite3_finalize(st);
        return 0;
    }
    sqlite3_bind_blob(st, 1, key, sizeof(key), SQLITE_STATIC);
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

/* ---- remediation effectiveness ------------------------------------------------------------ */

int registry_remediation(struct registry *reg, registry_remediation_fn fn, void *ctx, char *err,
                         size_t errlen)
{
    int rc = reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    if (prepare(reg,
                "SELECT b.bot_key, b.cc, b.asn, r.authorisation, r.send_decisions,"
                " r.first_send_us, r.dry_runs, r.first_dry_run_us, r.commands_sent,"
                " r.first_command_us, r.commands_failed, r.first_failed_us, r.seen_after,"
                " r.first_after_us, r.last_after_us, r.first_after_1h_us, r.first_after_24h_us"
                " FROM remediation r JOIN bot b ON b.id = r.bot"
                " ORDER BY r.bot, r.first_command_us = 0, r.first_command_us, r.authorisation",
                &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct registry_remediation r;
        memset(&r, 0, sizeof(r));
        key_to_hex(sqlite3_column_blob(st, 0), sqlite3_column_bytes(st, 0), r.bot_key);
        col_str(st, 1, r.cc, sizeof(r.cc));
        r.asn = (uint32_t)sqlite3_column_int64(st, 2);
        col_str(st, 3, r.authorisation, sizeof(r.authorisation));
        uint64_t *v[] = {&r.send_decisions,    &r.first_send_us,   &r.dry_runs,
                         &r.first_dry_run_us,  &r.commands_sent,   &r.first_command_us,
                         &r.commands_failed,   &r.first_failed_us, &r.seen_after,
                         &r.first_after_us,    &r.last_after_us,   &r.first_after_1h_us,
                         &r.first_after_24h_us};
        for (int i = 0; i < (int)(sizeof(v) / sizeof(v[0])); i++) {
            *v[i] = (uint64_t)sqlite3_column_int64(st, 4 + i);
        }
        rc = fn(ctx, &r);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = db_err(reg, err, errlen, "reading remediation rows");
    }
    sqlite3_finalize(st);
    return rc;
}

int registry_remediation_days(struct registry *reg, uint64_t since_us, uint64_t until_us,
                              registry_remediation_day_fn fn, void *ctx, char *err, size_t errlen)
{
    int rc = reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    sqlite3_stmt *st = NULL;
    if (prepare(reg,
                "SELECT day, commands_sent, commands_failed, commanded_seen FROM day_remediation"
                " WHERE day >= ?1 AND day <= ?2 ORDER BY day",
                &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    /* until is exclusive, as in registry_days(). */
    sqlite3_bind_int64(st, 1, (int64_t)(since_us / US_PER_DAY));
    sqlite3_bind_int64(st, 2, until_us ? (int64_t)((until_us - 1) / US_PER_DAY) : INT64_MAX);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        struct registry_remediation_day d = {
            .day = sqlite3_column_int64(st, 0),
            .commands_sent = (uint64_t)sqlite3_column_int64(st, 1),
            .commands_failed = (uint64_t)sqlite3_column_int64(st, 2),
            .commanded_seen = (uint64_t)sqlite3_column_int64(st, 3),
        };
        rc = fn(ctx, &d);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = db_err(reg, err, errlen, "reading remediation days");
    }
    sqlite3_finalize(st);
    return rc;
}

int registry_data_end(struct registry *reg, uint64_t *out_us, char *err, size_t errlen)
{
    int rc = reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    /* Inside this connection's own batch the in-memory value is ahead of the meta row. */
    if (reg->in_txn) {
        *out_us = reg->data_end_us;
        return 0;
    }
    int64_t v = meta_get(reg, "data_end_us");
    if (v < 0) {
        return db_err(reg, err, errlen, "reading the data end");
    }
    *out_us = (uint64_t)v;
    return 0;
}
