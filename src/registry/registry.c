/* registry.c -- the registry's logic, written once over the SQL driver (db.h): batched upserts
 * from log records, on SQLite (the embedded default) or on one PostgreSQL database shared by
 * several nodes (the queries reports run are query.c). */
#include "registry/registry.h"
#include "registry/db.h"
#include "registry/internal.h"
#include "registry/pg_batch.h"
#include "util/err.h"
#include "util/hex.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define US_PER_DAY 86400000000ULL

/* Identity fields are part of the key (host/user/local_ip/campaign) or may be absent from a
 * heartbeat, so an empty value never overwrites a known one. Location fields follow the latest
 * contact by time (?9), not by log order, so a late-arriving older record cannot move a bot back.
 * In an UPDATE every right-hand side reads the row's old values. */
/* Scalar minimum and maximum in the SQL both backends accept (SQLite's min(a, b) is
 * PostgreSQL's LEAST). */
#define SQL_MIN(a, b) "CASE WHEN " a " < " b " THEN " a " ELSE " b " END"
#define SQL_MAX(a, b) "CASE WHEN " a " > " b " THEN " a " ELSE " b " END"
#define KEEP(col, n) col " = CASE WHEN ?" #n " <> '' THEN ?" #n " ELSE " col " END, "
#define LATEST(col, n) col " = CASE WHEN ?9 >= last_seen_us THEN ?" #n " ELSE " col " END, "

/* The columns a contact moves that no index covers. Updating only these leaves the bot_key, cc
 * and asn indexes untouched, which is what makes the common update (a known bot calling again
 * from the same country and AS) one row write instead of one row plus four index writes.
 * ("user" is quoted: PostgreSQL reserves the word.) */
#define BOT_SET_HOT                                                                                \
    "UPDATE bot SET contacts = contacts + 1,"                                                      \
    " first_seen_us = " SQL_MIN(                                                                   \
        "first_seen_us",                                                                           \
        "?9") ","                                                                                  \
              " last_seen_us = " SQL_MAX("last_seen_us", "?9") ", " KEEP("family", 2)              \
                  KEEP("host", 3) KEEP("\"user\"", 4) KEEP("os", 5) KEEP("local_ip", 6)            \
                      KEEP("campaign", 7) KEEP("version", 8) LATEST("src_ip", 10)                  \
                          LATEST("src_port", 11) LATEST("dst_ip", 12) LATEST("dst_port", 13)       \
                              LATEST("transport", 14) LATEST("node", 15) LATEST(                   \
                                  "tags",                                                          \
                                  18) " seen_after_command = seen_after_command + CASE WHEN"       \
                                      " commanded_at_us > 0 AND ?9 > commanded_at_us THEN 1"       \
                                      " ELSE 0 END,"                                               \
                                      " last_seen_after_command_us = CASE WHEN commanded_at_us"    \
                                      " > 0 AND ?9 > commanded_at_us THEN " SQL_MAX(               \
                                          "last_seen_after_command_us",                            \
                                          "?9") " ELSE last_seen_after_command_us END"

/* The earliest non-zero of a stored time and a new one (0 means "none yet"). */
#define FIRST_OF(table, col)                                                                       \
    col " = CASE WHEN excluded." col " = 0 THEN " table "." col " WHEN " table "." col             \
        " = 0 THEN excluded." col " ELSE " SQL_MIN(table "." col, "excluded." col) " END"

/* Undecoded callers (issue 18): made on first write, in a form both SQLite and PostgreSQL take, so
 * a registry made before it needs no migration (the registry is derived: `registry rebuild`
 * fills it from the log). */
#define UNDECODED_TABLE_SQL                                                                        \
    "CREATE TABLE IF NOT EXISTS undecoded_ip(ip BYTEA PRIMARY KEY, cc TEXT NOT NULL,"              \
    " asn BIGINT NOT NULL, first_seen_us BIGINT NOT NULL, last_seen_us BIGINT NOT NULL,"           \
    " contacts BIGINT NOT NULL)"

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
    ST_BOT_ADD_CONTACTS,
    ST_IP_ADD_CONTACTS,
    ST_UNDECODED_UPSERT,
    ST_BEGIN,
    ST_COMMIT,
    ST_COUNT
};

/* Bot statements share one parameter layout: ?1 key (16-byte blob), ?2..?8 family, host, user,
 * os, local_ip, campaign, version, ?9 time, ?10 src_ip, ?11 src_port, ?12 dst_ip, ?13 dst_port,
 * ?14 transport, ?15 node, ?16 cc, ?17 asn, ?18 tags, ?19 row id. Upserts name the stored row by
 * its table (PostgreSQL would call a bare column ambiguous next to excluded's). */
static const char *const stmt_sql[ST_COUNT] = {
    [ST_BOT_FIND] = "SELECT id, last_seen_us, cc, asn, commanded_at_us FROM bot WHERE bot_key = ?1",
    [ST_BOT_INSERT] =
        "INSERT INTO bot(bot_key, family, host, \"user\", os, local_ip, campaign, version,"
        " first_seen_us, last_seen_us, src_ip, src_port, dst_ip, dst_port, transport, node, cc,"
        " asn, tags, contacts) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?9, ?10, ?11, ?12, ?13,"
        " ?14, ?15, ?16, ?17, ?18, 1) RETURNING id",
    [ST_BOT_UPDATE_HOT] = BOT_SET_HOT " WHERE id = ?19",
    /* Only used when this contact is the bot's latest and its country or AS changed. */
    [ST_BOT_UPDATE_MOVED] = BOT_SET_HOT ", cc = ?16, asn = ?17 WHERE id = ?19",
    [ST_IP_FIND] = "SELECT last_seen_us, cc, asn, identified FROM source_ip WHERE ip = ?1",
    [ST_IP_INSERT] = "INSERT INTO source_ip(ip, cc, asn, first_seen_us, last_seen_us, contacts,"
                     " identified) VALUES(?1, ?2, ?3, ?4, ?4, 1, ?5)",
    [ST_IP_UPDATE_HOT] =
        "UPDATE source_ip SET contacts = contacts + 1,"
        " first_seen_us = " SQL_MIN("first_seen_us",
                                    "?4") ","
                                          " last_seen_us = " SQL_MAX(
                                              "last_seen_us",
                                              "?4") ","
                                                    " identified = " SQL_MAX("identified",
                                                                             "?5") " WHERE ip = ?1",
    [ST_IP_UPDATE_MOVED] =
        "UPDATE source_ip SET contacts = contacts + 1,"
        " first_seen_us = " SQL_MIN("first_seen_us",
                                    "?4") ","
                                          " last_seen_us = " SQL_MAX(
                                              "last_seen_us",
                                              "?4") ", cc = ?2, asn = ?3,"
                                                    " identified = " SQL_MAX("identified",
                                                                             "?5") " WHERE ip = ?1",
    [ST_DAY_BOT] = "INSERT INTO day_bot(day, bot) VALUES(?1, ?2) ON CONFLICT DO NOTHING",
    [ST_DAY_IP] = "INSERT INTO day_ip(day, ip) VALUES(?1, ?2) ON CONFLICT DO NOTHING",
    [ST_DAY_CC] = "INSERT INTO day_cc(day, cc, bots, ips, contacts) VALUES(?1, ?2, ?3, ?4, ?5)"
                  " ON CONFLICT(day, cc) DO UPDATE SET bots = day_cc.bots + excluded.bots,"
                  " ips = day_cc.ips + excluded.ips,"
                  " contacts = day_cc.contacts + excluded.contacts",
    /* An unidentified first message (a hello before machine-info) is keyed by source IP; once
     * the same IP identifies itself that row was the identified bot all along and is folded
     * into it (contacts, first seen, per-day sets and counters). */
    [ST_BOT_GET_ANON] = "SELECT id, contacts, first_seen_us, last_seen_us, cc FROM bot"
                        " WHERE bot_key = ?1",
    [ST_BOT_DELETE] = "DELETE FROM bot WHERE id = ?1",
    [ST_DAY_BOT_DELETE] = "DELETE FROM day_bot WHERE day = ?1 AND bot = ?2",
    [ST_BOT_ABSORB] = "UPDATE bot SET contacts = contacts + ?2,"
                      " first_seen_us = " SQL_MIN("first_seen_us", "?3") " WHERE id = ?1",
    [ST_DECISION] = "UPDATE bot SET last_verdict = ?2, last_decision_us = ?3,"
                    " authorisation = CASE WHEN ?4 <> '' THEN ?4 ELSE authorisation END"
                    " WHERE bot_key = ?1",
    [ST_COMMAND] =
        "UPDATE bot SET commanded_at_us = CASE WHEN commanded_at_us = 0 THEN ?2"
        " ELSE " SQL_MIN("commanded_at_us",
                         "?2") " END,"
                               " authorisation = CASE WHEN ?3 <> '' THEN ?3 ELSE authorisation END"
                               " WHERE bot_key = ?1",
    /* ?1 key, ?2 authorisation, ?3 send decisions, ?4 dry runs, ?5 time. A decision for a key
     * with no bot row inserts nothing (SELECT finds no bot). */
    [ST_REM_DECISION] =
        "INSERT INTO remediation(bot, authorisation, send_decisions, first_send_us, dry_runs,"
        " first_dry_run_us) SELECT id, ?2, ?3, ?3 * ?5, ?4, ?4 * ?5 FROM bot WHERE bot_key = ?1"
        " ON CONFLICT(bot, authorisation) DO UPDATE SET"
        " send_decisions = remediation.send_decisions + excluded.send_decisions, " FIRST_OF(
            "remediation",
            "first_send_us") ","
                             " dry_runs = remediation.dry_runs + excluded.dry_runs, " FIRST_OF(
                                 "remediation", "first_dry_run_us"),
    /* ?1 key, ?2 authorisation, ?3 sent (0/1), ?4 failed (0/1), ?5 time. */
    [ST_REM_COMMAND] =
        "INSERT INTO remediation(bot, authorisation, commands_sent, first_command_us,"
        " commands_failed, first_failed_us) SELECT id, ?2, ?3, ?3 * ?5, ?4, ?4 * ?5 FROM bot"
        " WHERE bot_key = ?1 ON CONFLICT(bot, authorisation) DO UPDATE SET"
        " commands_sent = remediation.commands_sent + excluded.commands_sent, " FIRST_OF(
            "remediation", "first_command_us") ","
                                               " commands_failed = remediation.commands_failed +"
                                               " excluded.commands_failed, " FIRST_OF(
                                                   "remediation", "first_failed_us"),
    /* A contact of a commanded bot (?1 row id) at ?2: every authorisation it was commanded
     * under before ?2 counts it; minimums, not "first applied", so log order does not matter. */
    [ST_REM_CONTACT] =
        "UPDATE remediation SET seen_after = seen_after + 1,"
        " first_after_us = CASE WHEN first_after_us = 0 OR ?2 < first_after_us THEN ?2"
        " ELSE first_after_us END, last_after_us = " SQL_MAX(
            "last_after_us",
            "?2") ","
                  " first_after_1h_us = CASE WHEN ?2 > first_command_us + 3600000000 AND"
                  " (first_after_1h_us = 0 OR ?2 < first_after_1h_us) THEN ?2 ELSE "
                  "first_after_1h_us END,"
                  " first_after_24h_us = CASE WHEN ?2 > first_command_us + 86400000000 AND"
                  " (first_after_24h_us = 0 OR ?2 < first_after_24h_us) THEN ?2"
                  " ELSE first_after_24h_us END"
                  " WHERE bot = ?1 AND first_command_us > 0 AND ?2 > first_command_us",
    [ST_DAY_COMMANDED] =
        "INSERT INTO day_commanded(day, bot) VALUES(?1, ?2) ON CONFLICT DO NOTHING",
    [ST_DAY_REM] = "INSERT INTO day_remediation(day, commands_sent, commands_failed,"
                   " commanded_seen) VALUES(?1, ?2, ?3, ?4) ON CONFLICT(day) DO UPDATE SET"
                   " commands_sent = day_remediation.commands_sent + excluded.commands_sent,"
                   " commands_failed = day_remediation.commands_failed + excluded.commands_failed,"
                   " commanded_seen = day_remediation.commanded_seen + excluded.commanded_seen",
    [ST_META_SET] = "INSERT INTO meta(key, value) VALUES(?1, ?2)"
                    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    /* A heartbeats record's polls beyond the two applied as contacts (apply_heartbeats). */
    [ST_BOT_ADD_CONTACTS] = "UPDATE bot SET contacts = contacts + ?2 WHERE bot_key = ?1",
    [ST_IP_ADD_CONTACTS] = "UPDATE source_ip SET contacts = contacts + ?2 WHERE ip = ?1",
    /* Callers no family decoded, by source address, apart from the bots: ?1 address, ?2 cc,
     * ?3 asn, ?4 time, ?5 contacts (1 + those suppressed by the per-address bound). */
    [ST_UNDECODED_UPSERT] =
        "INSERT INTO undecoded_ip(ip, cc, asn, first_seen_us, last_seen_us, contacts)"
        " VALUES(?1, ?2, ?3, ?4, ?4, ?5) ON CONFLICT(ip) DO UPDATE SET"
        " contacts = undecoded_ip.contacts + excluded.contacts,"
        " first_seen_us = " SQL_MIN(
            "undecoded_ip.first_seen_us",
            "excluded.first_seen_us") ","
                                      " cc = CASE WHEN excluded.last_seen_us >= "
                                      "undecoded_ip.last_seen_us THEN excluded.cc"
                                      " ELSE undecoded_ip.cc END,"
                                      " asn = CASE WHEN excluded.last_seen_us >= "
                                      "undecoded_ip.last_seen_us THEN excluded.asn"
                                      " ELSE undecoded_ip.asn END,"
                                      " last_seen_us = " SQL_MAX("undecoded_ip.last_seen_us",
                                                                 "excluded.last_seen_us"),
    /* SQLite: take the write lock now, so the applied index read next cannot go stale.
     * PostgreSQL: the same with a transaction-scoped advisory lock (registry_begin), which
     * makes the nodes sharing one database apply their batches one at a time: each batch's
     * read-then-write of bot and day rows sees the other nodes' committed batches whole. */
    [ST_BEGIN] = "BEGIN",
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
    struct db *db;
    struct db_stmt *stmt[ST_COUNT]; /* prepared on the first apply: readers never need them */
    bool writer_ready;
    /* The meta key of this log's applied index: "next_index", or "next_index:ORIGIN" when the
     * registry is shared (registry_set_source). */
    char next_key[16 + REGISTRY_SOURCE_MAX];
    uint64_t next_index;  /* including the open batch */
    uint64_t bad_records; /* including the open batch */
    uint64_t data_end_us; /* latest record time applied, including the open batch */
    size_t batch_records; /* records in the open transaction */
    bool in_txn;          /* a batch is open (records applied or kept since the last commit) */
    bool txn_open; /* its database transaction has begun (PostgreSQL: only when it is written) */
    /* PostgreSQL keeps a batch's records before it begins the transaction, so the writers' lock
     * is held while the batch is written, not while it is gathered (registry_apply): what the
     * batch itself brought to the counters, merged into the stored ones when it begins. */
    uint64_t batch_start, batch_bad, batch_end_us;
    struct daycc *daycc; /* DAYCC_SLOTS, allocated with the writer statements */
    size_t daycc_n;
    /* PostgreSQL: the open batch's records, applied set-wise when it is written (pg_batch.h);
     * NULL on SQLite, which applies each record at once. */
    struct pg_batch *pgb;
    struct registry_follower *follower; /* follow.c */
};

static int txn_begin(struct registry *reg, char *err, size_t errlen);

int registry_internal_db_err(struct registry *reg, char *err, size_t errlen, const char *what)
{
    err_set(err, errlen, "registry: %s: %s", what, db_errmsg(reg->db));
    return REGISTRY_ERR;
}

static int exec_sql(struct registry *reg, const char *sql, char *err, size_t errlen)
{
    if (db_exec(reg->db, sql) < 0) {
        return registry_internal_db_err(reg, err, errlen, sql);
    }
    return 0;
}

int registry_set_cache_mib(struct registry *reg, uint32_t mib, char *err, size_t errlen)
{
    if (mib < 1 || mib > REGISTRY_CACHE_MIB_MAX) {
        return err_set(err, errlen, "registry: page cache of %u MiB is outside 1..%u", mib,
                       REGISTRY_CACHE_MIB_MAX);
    }
    if (db_set_cache_mib(reg->db, mib) < 0) {
        return registry_internal_db_err(reg, err, errlen, "setting the page cache");
    }
    return 0;
}

int64_t registry_cache_mib(struct registry *reg)
{
    return db_cache_mib(reg->db);
}

static int64_t meta_get(struct registry *reg, const char *key)
{
    struct db_stmt *st = NULL;
    int64_t v = -1;
    if (db_prepare(reg->db, "SELECT value FROM meta WHERE key = ?1", false, &st) == 0) {
        db_bind_text(st, 1, key);
        int rc = db_step(st);
        if (rc == DB_ROW) {
            v = db_col_int(st, 0);
        } else if (rc == DB_DONE && strncmp(key, "next_index:", 11) == 0) {
            v = 0; /* a log this shared registry has not seen yet (not: a failed read) */
        }
    }
    db_finalize(st);
    return v;
}

/* Reads the committed position of this registry's log. Returns 0 or -1. */
static int read_position(struct registry *reg)
{
    int64_t next = meta_get(reg, reg->next_key);
    int64_t bad = meta_get(reg, "bad_records");
    int64_t end = meta_get(reg, "data_end_us");
    if (next < 0 || bad < 0 || end < 0) {
        return -1;
    }
    reg->next_index = (uint64_t)next;
    reg->bad_records = (uint64_t)bad;
    reg->data_end_us = (uint64_t)end;
    return 0;
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

bool registry_internal_key_from_hex(const char *hex, uint8_t out[16])
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

void registry_internal_key_to_hex(const uint8_t *key, size_t len, char out[33])
{
    hex_encode(key, len < 16 ? len : 16, out);
}

int registry_internal_ip_key_len(const struct net_addr *a)
{
    return a->family == AF_INET ? 4 : a->family == AF_INET6 ? 16 : 0;
}

int registry_open(struct registry **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    struct registry *reg = calloc(1, sizeof(*reg));
    if (reg == NULL) {
        err_set(err, errlen, "registry: out of memory");
        return REGISTRY_ERR;
    }
    snprintf(reg->next_key, sizeof(reg->next_key), "next_index");
    int rc = db_open(&reg->db, path, err, errlen);
    if (rc < 0) {
        goto fail;
    }
    rc = REGISTRY_ERR;
    if (read_position(reg) < 0) {
        err_set(err, errlen, "registry: %s: meta table is missing its rows", path);
        goto fail;
    }
    *out = reg;
    return 0;
fail:
    registry_close(reg);
    return rc;
}

int registry_destroy(const char *target, char *err, size_t errlen)
{
    if (!db_is_postgres_url(target)) {
        static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
        for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
            char path[4096];
            snprintf(path, sizeof(path), "%s%s", target, suffix[i]);
            if (unlink(path) != 0 && errno != ENOENT) {
                return err_set(err, errlen, "registry: %s: %s", path, strerror(errno));
            }
        }
        return 0;
    }
    struct registry *reg = NULL;
    int rc = registry_open(&reg, target, err, errlen);
    if (rc < 0) {
        return rc;
    }
    rc = exec_sql(reg,
                  "BEGIN; DROP TABLE meta, bot, source_ip, day_bot, day_ip, day_cc, remediation,"
                  " day_commanded, day_remediation; DROP FUNCTION instr(text, text); COMMIT",
                  err, errlen);
    registry_close(reg);
    return rc;
}

bool registry_target_is_shared(const char *target)
{
    return db_is_postgres_url(target);
}

const char *registry_target_name(const char *target)
{
    return db_is_postgres_url(target) ? "the PostgreSQL registry given" : target;
}

bool registry_is_shared(const struct registry *reg)
{
    return db_dialect(reg->db) == DB_POSTGRES;
}

int registry_set_source(struct registry *reg, const char *name, char *err, size_t errlen)
{
    if (reg->in_txn || reg->follower != NULL) {
        return err_set(err, errlen, "registry: the source is set before anything is applied");
    }
    size_t n = strlen(name);
    if (n == 0 || n > REGISTRY_SOURCE_MAX) {
        return err_set(err, errlen, "registry: a log name of 1..%d characters is needed, not '%s'",
                       REGISTRY_SOURCE_MAX, name);
    }
    char key[sizeof(reg->next_key)];
    snprintf(key, sizeof(key), "%s", reg->next_key);
    /* A SQLite registry holds one log (its state directory's): the name is only checked. */
    if (registry_is_shared(reg)) {
        snprintf(reg->next_key, sizeof(reg->next_key), "next_index:%s", name);
        if (read_position(reg) < 0) {
            snprintf(reg->next_key, sizeof(reg->next_key), "%s", key);
            return registry_internal_db_err(reg, err, errlen, "reading the applied index");
        }
    }
    return 0;
}

/* The write path's statements and batch counters, made on the first apply so a report's open
 * costs no statement compilation it will never use. */
static int writer_prepare(struct registry *reg, char *err, size_t errlen)
{
    if (reg->writer_ready) {
        return 0;
    }
    /* Named: the applied index's key carries the log's name (registry_set_source). */
    if (registry_is_shared(reg) && strchr(reg->next_key, ':') == NULL) {
        return err_set(err, errlen,
                       "registry: a PostgreSQL registry is shared by nodes: name the log "
                       "being applied (registry_set_source)");
    }
    reg->daycc = calloc(DAYCC_SLOTS, sizeof(*reg->daycc));
    if (reg->daycc == NULL || (db_dialect(reg->db) == DB_POSTGRES && pg_batch_new(&reg->pgb) < 0)) {
        return err_set(err, errlen, "registry: out of memory");
    }
    /* Under the writers' lock: nodes sharing one PostgreSQL would otherwise race on creating it
     * ("duplicate key value" in PostgreSQL's own catalog). */
    if (exec_sql(reg, "BEGIN", err, errlen) != 0) {
        return -1;
    }
    if (db_lock_writers(reg->db) < 0 || db_exec(reg->db, UNDECODED_TABLE_SQL) < 0) {
        registry_internal_db_err(reg, err, errlen, "creating table undecoded_ip");
        (void)db_exec(reg->db, "ROLLBACK");
        return -1;
    }
    if (exec_sql(reg, "COMMIT", err, errlen) != 0) {
        return -1;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        const char *sql = stmt_sql[i];
        if (i == ST_BEGIN && db_dialect(reg->db) == DB_SQLITE) {
            sql = "BEGIN IMMEDIATE";
        }
        if (db_prepare(reg->db, sql, true, &reg->stmt[i]) != 0) {
            return registry_internal_db_err(reg, err, errlen, "preparing statements");
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
        db_finalize(reg->stmt[i]);
    }
    db_close(reg->db);
    free(reg->daycc);
    pg_batch_free(reg->pgb);
    free(reg);
}

static int step_done(struct registry *reg, struct db_stmt *st, char *err, size_t errlen,
                     const char *what)
{
    int rc = db_step(st);
    db_reset(st);
    if (rc != DB_DONE) {
        return registry_internal_db_err(reg, err, errlen, what);
    }
    return 0;
}

/* Runs an INSERT ... RETURNING id and reads the new row's id. */
static int insert_returning_id(struct registry *reg, struct db_stmt *st, int64_t *id, char *err,
                               size_t errlen)
{
    int rc = db_step(st);
    if (rc == DB_ROW) {
        *id = db_col_int(st, 0);
        rc = db_step(st);
    }
    db_reset(st);
    if (rc != DB_DONE) {
        return registry_internal_db_err(reg, err, errlen, "bot insert");
    }
    return 0;
}

/* Runs a write whose outcome this code does not read: on PostgreSQL it travels in the pipeline
 * with the next statement that needs an answer (db.h), and its error, if any, is that one's. */
static int run_deferred(struct registry *reg, struct db_stmt *st, char *err, size_t errlen,
                        const char *what)
{
    if (db_run_deferred(st) < 0) {
        return registry_internal_db_err(reg, err, errlen, what);
    }
    return 0;
}

static int meta_set(struct registry *reg, const char *key, uint64_t value, char *err, size_t errlen)
{
    struct db_stmt *st = reg->stmt[ST_META_SET];
    db_bind_text(st, 1, key);
    db_bind_int(st, 2, (int64_t)value);
    return run_deferred(reg, st, err, errlen, "saving the applied index");
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
    struct db_stmt *st = reg->stmt[ST_DAY_CC];
    for (size_t i = 0; i < DAYCC_SLOTS; i++) {
        const struct daycc *d = &reg->daycc[i];
        if (!d->used) {
            continue;
        }
        db_bind_int(st, 1, d->day);
        db_bind_text(st, 2, d->cc);
        db_bind_int(st, 3, d->bots);
        db_bind_int(st, 4, d->ips);
        db_bind_int(st, 5, d->contacts);
        if (run_deferred(reg, st, err, errlen, "day_cc upsert") < 0) {
            return REGISTRY_ERR;
        }
    }
    daycc_clear(reg);
    return 0;
}

/* PostgreSQL: applies the records kept so far into the open transaction. */
static int batch_write(struct registry *reg, char *err, size_t errlen)
{
    if (reg->pgb == NULL || pg_batch_records(reg->pgb) == 0) {
        return 0;
    }
    return pg_batch_write(reg->pgb, reg->db, err, errlen) < 0 ? REGISTRY_ERR : 0;
}

/* Drops the open batch: rolls back and re-reads the committed position so the caller can replay
 * from the log. */
static void batch_abort(struct registry *reg)
{
    if (reg->txn_open) {
        exec_sql(reg, "ROLLBACK", NULL, 0);
    }
    reg->txn_open = false;
    reg->in_txn = false;
    reg->batch_records = 0;
    daycc_clear(reg);
    if (reg->pgb != NULL) {
        pg_batch_clear(reg->pgb);
    }
    if (read_position(reg) < 0) {
        /* Unreadable now (a lost PostgreSQL connection, say): the next batch's BEGIN re-reads
         * it before anything is applied. */
        reg->next_index = reg->bad_records = reg->data_end_us = 0;
    }
}

int registry_flush(struct registry *reg, char *err, size_t errlen)
{
    if (!reg->in_txn) {
        return 0;
    }
    if (txn_begin(reg, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    if (batch_write(reg, err, errlen) < 0 || daycc_write(reg, err, errlen) < 0 ||
        meta_set(reg, reg->next_key, reg->next_index, err, errlen) < 0 ||
        meta_set(reg, "bad_records", reg->bad_records, err, errlen) < 0 ||
        meta_set(reg, "data_end_us", reg->data_end_us, err, errlen) < 0 ||
        step_done(reg, reg->stmt[ST_COMMIT], err, errlen, "commit") < 0) {
        batch_abort(reg);
        return REGISTRY_ERR;
    }
    if (reg->pgb != NULL) {
        pg_batch_clear(reg->pgb);
    }
    reg->in_txn = false;
    reg->txn_open = false;
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

static void bind_str(struct db_stmt *st, int i, const char *s)
{
    db_bind_text(st, i, s);
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

static int find_row(struct registry *reg, struct db_stmt *st, bool has_id, struct found_row *out,
                    char *err, size_t errlen)
{
    int rc = db_step(st);
    if (rc == DB_ROW) {
        int off = has_id ? 1 : 0;
        out->id = has_id ? db_col_int(st, 0) : 0;
        out->last_seen_us = db_col_int(st, off);
        snprintf(out->cc, sizeof(out->cc), "%s", db_col_text(st, off + 1));
        out->asn = (uint32_t)db_col_int(st, off + 2);
        out->identified = !has_id && db_col_int(st, 3) != 0;
        out->commanded_at_us = has_id ? db_col_int(st, 4) : 0;
    }
    db_reset(st);
    if (rc == DB_ROW) {
        return 1;
    }
    if (rc == DB_DONE) {
        return 0;
    }
    return registry_internal_db_err(reg, err, errlen, "lookup");
}

/* Adds (day, member) to a per-day set unless the member's last contact was already on that day:
 * every bot/IP's last-seen day is always in its set (the contact that set it inserted it), so
 * the insert and its lookup are needed only for the first contact of a day. Returns 1 when the
 * member is new for the day, 0 if not, < 0 on error. The set holds no day after the member's
 * last-seen day, so for a new member or a later day the answer is known without asking: only a
 * contact older than the member's last one (logs applied out of time order) waits for the
 * insert's outcome. */
static int day_set_add(struct registry *reg, enum stmt_id id, int64_t day, bool known,
                       int64_t last_seen_us, const void *member, int member_len, int64_t member_id,
                       char *err, size_t errlen)
{
    if (known && last_seen_us >= 0 && (uint64_t)last_seen_us / US_PER_DAY == (uint64_t)day) {
        return 0;
    }
    struct db_stmt *st = reg->stmt[id];
    db_bind_int(st, 1, day);
    if (member != NULL) {
        db_bind_blob(st, 2, member_len ? member : "", member_len);
    } else {
        db_bind_int(st, 2, member_id);
    }
    if (!known || last_seen_us < 0 || day > (int64_t)((uint64_t)last_seen_us / US_PER_DAY)) {
        return run_deferred(reg, st, err, errlen, "per-day set insert") < 0 ? REGISTRY_ERR : 1;
    }
    if (step_done(reg, st, err, errlen, "per-day set insert") < 0) {
        return REGISTRY_ERR;
    }
    return db_changes(st) > 0;
}

static int day_rem_add(struct registry *reg, int64_t day, int sent, int failed, int seen, char *err,
                       size_t errlen)
{
    struct db_stmt *st = reg->stmt[ST_DAY_REM];
    db_bind_int(st, 1, day);
    db_bind_int(st, 2, sent);
    db_bind_int(st, 3, failed);
    db_bind_int(st, 4, seen);
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
    if (!registry_internal_key_from_hex(hex, key)) {
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
    struct db_stmt *st = reg->stmt[ST_BOT_GET_ANON];
    db_bind_blob(st, 1, key, sizeof(key));
    int rc = db_step(st);
    if (rc != DB_ROW) {
        db_reset(st);
        return rc == DB_DONE ? 0 : registry_internal_db_err(reg, err, errlen, "address-keyed bot");
    }
    int64_t id = db_col_int(st, 0), contacts = db_col_int(st, 1);
    int64_t first = db_col_int(st, 2), last = db_col_int(st, 3);
    char cc[3];
    snprintf(cc, sizeof(cc), "%s", db_col_text(st, 4));
    db_reset(st);
    if (id == into) {
        return 0;
    }
    /* The row lived from its first to its last contact: its days are in that range. */
    for (int64_t d = first / (int64_t)US_PER_DAY; d <= last / (int64_t)US_PER_DAY; d++) {
        st = reg->stmt[ST_DAY_BOT_DELETE];
        db_bind_int(st, 1, d);
        db_bind_int(st, 2, id);
        if (step_done(reg, st, err, errlen, "per-day set delete") < 0) {
            return REGISTRY_ERR;
        }
        if (db_changes(st) > 0) {
            daycc_add(reg, d, cc, -1, 0, 0);
        }
    }
    st = reg->stmt[ST_BOT_DELETE];
    db_bind_int(st, 1, id);
    if (step_done(reg, st, err, errlen, "bot delete") < 0) {
        return REGISTRY_ERR;
    }
    st = reg->stmt[ST_BOT_ABSORB];
    db_bind_int(st, 1, into);
    db_bind_int(st, 2, contacts);
    db_bind_int(st, 3, first);
    return step_done(reg, st, err, errlen, "bot absorb");
}

/* A contact at t of commanded bot `id`, later than its first command: the per-authorisation
 * after-command figures and, on its first such contact of the day, the per-day seen count. */
static int after_command(struct registry *reg, int64_t id, int64_t t, int64_t day, char *err,
                         size_t errlen)
{
    struct db_stmt *st = reg->stmt[ST_REM_CONTACT];
    db_bind_int(st, 1, id);
    db_bind_int(st, 2, t);
    if (run_deferred(reg, st, err, errlen, "remediation contact") < 0) {
        return REGISTRY_ERR;
    }
    st = reg->stmt[ST_DAY_COMMANDED];
    db_bind_int(st, 1, day);
    db_bind_int(st, 2, id);
    if (step_done(reg, st, err, errlen, "commanded-seen set insert") < 0) {
        return REGISTRY_ERR;
    }
    if (db_changes(st) == 0) {
        return 0;
    }
    return day_rem_add(reg, day, 0, 0, 1, err, errlen);
}

/* A caller no family decoded: counted by address in its own table, never as a bot. */
static int apply_undecoded(struct registry *reg, const struct contact *c, char *err, size_t errlen)
{
    int iplen = registry_internal_ip_key_len(&c->src);
    struct db_stmt *st = reg->stmt[ST_UNDECODED_UPSERT];
    db_bind_blob(st, 1, iplen ? (const void *)c->src.ip : "", iplen);
    bind_str(st, 2, c->cc);
    db_bind_int(st, 3, c->asn);
    db_bind_int(st, 4, (int64_t)c->time_us);
    db_bind_int(st, 5, 1 + (int64_t)c->suppressed);
    return run_deferred(reg, st, err, errlen, "undecoded caller upsert") < 0 ? REGISTRY_ERR : 0;
}

static int apply_contact(struct registry *reg, const struct contact *c, char *err, size_t errlen)
{
    char src[NET_ADDR_STRLEN], dst[NET_ADDR_STRLEN];
    uint8_t key[16];
    if (c->msg_type == CONTACT_MSG_UNDECODED) {
        return apply_undecoded(reg, c, err, errlen);
    }
    /* "" (or anything not a key) means the connection never identified itself: key it by source
     * IP as event_bot_key() does, so the bot is still counted once per address. */
    bool identified = registry_internal_key_from_hex(c->bot_key, key);
    if (!identified && anon_key(c, key, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    net_addr_format_ip(&c->src, src);
    net_addr_format_ip(&c->dst, dst);
    int64_t t = (int64_t)c->time_us;
    int64_t day = (int64_t)(c->time_us / US_PER_DAY);

    int iplen = registry_internal_ip_key_len(&c->src);
    struct found_row ip = {0};
    enum stmt_id which;
    struct db_stmt *st = reg->stmt[ST_IP_FIND];
    db_bind_blob(st, 1, iplen ? (const void *)c->src.ip : "", iplen);
    db_bind_blob(reg->stmt[ST_BOT_FIND], 1, key, sizeof(key));
    if (identified) {
        /* Both lookups at once: one round trip on PostgreSQL (db_send). */
        if (db_send(st) < 0 || db_send(reg->stmt[ST_BOT_FIND]) < 0) {
            return registry_internal_db_err(reg, err, errlen, "lookup");
        }
    }
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
        db_bind_blob(st, 1, key, sizeof(key));
        bind_str(st, 2, c->family);
        bind_str(st, 3, c->bot.host);
        bind_str(st, 4, c->bot.user);
        bind_str(st, 5, c->bot.os);
        bind_str(st, 6, c->bot.local_ip);
        bind_str(st, 7, c->bot.campaign);
        bind_str(st, 8, c->bot.version);
        db_bind_int(st, 9, t);
        bind_str(st, 10, src);
        db_bind_int(st, 11, c->src.port);
        bind_str(st, 12, dst);
        db_bind_int(st, 13, c->dst.port);
        db_bind_int(st, 14, c->transport);
        bind_str(st, 15, c->node);
        bind_str(st, 16, c->cc);
        db_bind_int(st, 17, c->asn);
        bind_str(st, 18, c->tags);
        if (known) {
            db_bind_int(st, 19, bot.id);
        }
        if (known) {
            if (run_deferred(reg, st, err, errlen, "bot update") < 0) {
                return REGISTRY_ERR;
            }
        } else if (insert_returning_id(reg, st, &bot.id, err, errlen) < 0) {
            return REGISTRY_ERR;
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
    db_bind_blob(st, 1, iplen ? (const void *)c->src.ip : "", iplen);
    bind_str(st, 2, c->cc);
    db_bind_int(st, 3, c->asn);
    db_bind_int(st, 4, t);
    db_bind_int(st, 5, identified);
    if (run_deferred(reg, st, err, errlen, "source ip upsert") < 0) {
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

/* A bot's rolled-up polls: its first and last poll of the interval are applied as contacts (so
 * first and last seen, the per-day sets and a commanded bot's return are exactly as if every
 * poll had been a record), and the polls between only add to the contact counts. */
static int apply_heartbeats(struct registry *reg, const struct heartbeats *hb, char *err,
                            size_t errlen)
{
    struct contact c;
    memset(&c, 0, sizeof(c));
    memcpy(c.node, hb->node, sizeof(c.node));
    c.src = hb->src;
    c.dst = hb->dst;
    c.peer = hb->peer;
    c.transport = hb->transport;
    memcpy(c.family, hb->family, sizeof(c.family));
    c.msg_type = CONTACT_MSG_HEARTBEAT;
    memcpy(c.bot_key, hb->bot_key, sizeof(c.bot_key));
    memcpy(c.cc, hb->cc, sizeof(c.cc));
    c.asn = hb->asn;
    memcpy(c.tags, hb->tags, sizeof(c.tags));
    c.enrich_id = hb->enrich_id;
    if (hb->count == 0) {
        return 0;
    }
    if (hb->src.family == 0) {
        /* Counted before an erasure and written after it (docs/evidence.md): who it was is gone,
         * the polls still count for their day and country. */
        daycc_add(reg, (int64_t)(hb->time_us / US_PER_DAY), hb->cc, 0, 0, (int)hb->count);
        return 0;
    }
    c.time_us = hb->first_time_us != 0 ? hb->first_time_us : hb->time_us;
    if (apply_contact(reg, &c, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    if (hb->count == 1) {
        return 0;
    }
    c.time_us = hb->time_us;
    if (apply_contact(reg, &c, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    int64_t extra = (int64_t)hb->count - 2;
    if (extra == 0) {
        return 0;
    }
    uint8_t key[16];
    if (!registry_internal_key_from_hex(c.bot_key, key) && anon_key(&c, key, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    /* The bot row the two contacts above counted in, if any (an unidentified poll from an
     * address an identified bot uses counts for the address only, as in apply_contact). */
    struct db_stmt *st = reg->stmt[ST_BOT_ADD_CONTACTS];
    db_bind_blob(st, 1, key, sizeof(key));
    db_bind_int(st, 2, extra);
    if (run_deferred(reg, st, err, errlen, "bot contacts") < 0) {
        return REGISTRY_ERR;
    }
    int iplen = registry_internal_ip_key_len(&c.src);
    st = reg->stmt[ST_IP_ADD_CONTACTS];
    db_bind_blob(st, 1, iplen ? (const void *)c.src.ip : "", iplen);
    db_bind_int(st, 2, extra);
    if (run_deferred(reg, st, err, errlen, "source ip contacts") < 0) {
        return REGISTRY_ERR;
    }
    daycc_add(reg, (int64_t)(hb->time_us / US_PER_DAY), c.cc, 0, 0, (int)extra);
    return 0;
}

/* Send and dry-run decisions and command records into the per-(bot, authorisation) row; a
 * command also into the per-day counts. Returns 0 or REGISTRY_ERR. */
static int remediation_record(struct registry *reg, enum stmt_id id, const uint8_t key[16],
                              const char *authorisation, int a, int b, uint64_t time_us, char *err,
                              size_t errlen)
{
    struct db_stmt *st = reg->stmt[id];
    db_bind_blob(st, 1, key, 16);
    bind_str(st, 2, authorisation);
    db_bind_int(st, 3, a);
    db_bind_int(st, 4, b);
    db_bind_int(st, 5, (int64_t)time_us);
    if (step_done(reg, st, err, errlen, "remediation update") < 0) {
        return REGISTRY_ERR;
    }
    /* No row changed: the key has no bot (see the decision case below); count nothing. */
    if (id == ST_REM_COMMAND && db_changes(st) > 0) {
        return day_rem_add(reg, (int64_t)(time_us / US_PER_DAY), a, b, 0, err, errlen);
    }
    return 0;
}

static uint64_t record_time(const struct record *rec)
{
    switch (rec->kind) {
    case RECORD_ACCESS:
    case RECORD_ERASURE:
    case RECORD_PORTAL_REQUEST:
    case RECORD_PORTAL_DECISION:
        /* What people did with the data, months later perhaps: not the sinkhole observing. */
        return 0;
    case RECORD_CONTACT:
        return rec->u.contact.time_us;
    case RECORD_HEARTBEATS:
        return rec->u.heartbeats.time_us;
    case RECORD_DECISION:
        return rec->u.decision.time_us;
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED:
        return rec->u.command.time_us;
    default:
        return rec->u.note.time_us;
    }
}

/* The kinds that change rows; the others (operational notes) only move the data end. */
static bool record_changes_rows(uint8_t kind)
{
    return kind == RECORD_CONTACT || kind == RECORD_HEARTBEATS || kind == RECORD_DECISION ||
           kind == RECORD_COMMAND_SENT || kind == RECORD_COMMAND_FAILED || kind == RECORD_ERASURE;
}

/* The kinds the PostgreSQL batch applies (pg_batch.c). A kind that changes rows and is not one
 * of them is applied by apply_record once the batch so far is written, so log order holds. */
static bool batch_applies(const struct record *rec)
{
    uint8_t kind = rec->kind;
    /* Undecoded callers (issue 18) are applied by apply_record: the batch's in-memory model
     * knows bots, addresses and remediation, not their table. Sealed records too. */
    if (rec->seal.epoch != 0 ||
        (kind == RECORD_CONTACT && rec->u.contact.msg_type == CONTACT_MSG_UNDECODED)) {
        return false;
    }
    return kind == RECORD_CONTACT || kind == RECORD_HEARTBEATS || kind == RECORD_DECISION ||
           kind == RECORD_COMMAND_SENT || kind == RECORD_COMMAND_FAILED;
}

/* Records whose apply_record touches no row the batch holds: an undecoded caller (table
 * undecoded_ip only) and a still-sealed record (per-day counters only, which add up in any
 * order). They are applied at once, without writing the batch first: a scanner's flood of
 * undecoded callers among the bots does not cut the batch into pieces. */
static bool apart_from_batch(const struct record *rec)
{
    return rec->seal.epoch != 0 ||
           (rec->kind == RECORD_CONTACT && rec->u.contact.msg_type == CONTACT_MSG_UNDECODED);
}

static int apply_record(struct registry *reg, const struct record *rec, char *err, size_t errlen)
{
    struct db_stmt *st;
    uint8_t key[16];
    if (rec->seal.epoch != 0) {
        /* Still sealed: its epoch key was erased (or is not readable here). Who it was is gone;
         * a contact still counts for its day and country. */
        if (rec->kind == RECORD_CONTACT && rec->u.contact.msg_type != CONTACT_MSG_UNDECODED) {
            daycc_add(reg, (int64_t)(rec->u.contact.time_us / US_PER_DAY), rec->u.contact.cc, 0, 0,
                      1);
        } else if (rec->kind == RECORD_HEARTBEATS) {
            /* A bot's rolled-up polls count for the day of their last, as every poll would. */
            daycc_add(reg, (int64_t)(rec->u.heartbeats.time_us / US_PER_DAY), rec->u.heartbeats.cc,
                      0, 0, (int)rec->u.heartbeats.count);
        }
        return 0;
    }
    switch (rec->kind) {
    case RECORD_ERASURE:
        /* Within the batch's transaction, in log order: what was applied before it is scrubbed,
         * what comes after it (bots seen again) is kept. */
        if (registry_internal_erase(reg->db, rec->u.erasure.before_us, err, errlen) != 0) {
            return REGISTRY_ERR;
        }
        return 0;
    case RECORD_CONTACT:
        return apply_contact(reg, &rec->u.contact, err, errlen);
    case RECORD_HEARTBEATS:
        return apply_heartbeats(reg, &rec->u.heartbeats, err, errlen);
    case RECORD_DECISION: {
        /* A decision always follows a contact of the same bot, so the row exists; a decision
         * for an unknown (or malformed) key updates nothing rather than inventing a bot with no
         * contact. */
        const struct decision *d = &rec->u.decision;
        /* Collection decisions ask a bot for its details: they remediate nothing. */
        if (d->action == ACTION_COLLECT || !registry_internal_key_from_hex(d->bot_key, key)) {
            return 0;
        }
        st = reg->stmt[ST_DECISION];
        db_bind_blob(st, 1, key, sizeof(key));
        db_bind_int(st, 2, d->verdict);
        db_bind_int(st, 3, (int64_t)d->time_us);
        bind_str(st, 4, d->authorisation);
        if (run_deferred(reg, st, err, errlen, "decision update") < 0) {
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
        if (c->action == ACTION_COLLECT || !registry_internal_key_from_hex(c->bot_key, key)) {
            return 0;
        }
        if (sent) {
            st = reg->stmt[ST_COMMAND];
            db_bind_blob(st, 1, key, sizeof(key));
            db_bind_int(st, 2, (int64_t)c->time_us);
            bind_str(st, 3, c->authorisation);
            if (run_deferred(reg, st, err, errlen, "command update") < 0) {
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

/* Opens a batch: takes the write lock, then re-reads the applied position under it. Another
 * writer (a `sinkd report --catch-up` next to a running server; on PostgreSQL, every other node)
 * may have moved it, and applying from a stale position would count entries twice. */
static int registry_begin(struct registry *reg, char *err, size_t errlen)
{
    if (step_done(reg, reg->stmt[ST_BEGIN], err, errlen, "begin") < 0) {
        return REGISTRY_ERR;
    }
    reg->in_txn = true;
    reg->txn_open = true;
    if (db_lock_writers(reg->db) < 0) {
        registry_internal_db_err(reg, err, errlen, "taking the writers' lock");
        batch_abort(reg);
        return REGISTRY_ERR;
    }
    if (read_position(reg) < 0) {
        registry_internal_db_err(reg, err, errlen, "reading the applied index");
        batch_abort(reg);
        return REGISTRY_ERR;
    }
    return 0;
}

/* PostgreSQL: begins the transaction of a batch gathered so far, under the writers' lock, once
 * something is to be written. The log's applied index must still be where the batch started
 * (one writer per log: registry_lock_writer); the counters the nodes share are merged. */
static int txn_begin(struct registry *reg, char *err, size_t errlen)
{
    if (reg->txn_open) {
        return 0;
    }
    uint64_t start = reg->batch_start, bad = reg->batch_bad, end = reg->batch_end_us;
    uint64_t next = reg->next_index;
    if (registry_begin(reg, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    if (reg->next_index != start) {
        err_set(err, errlen,
                "registry: another writer applied this log meanwhile (its applied index is %" PRIu64
                ", this batch began at %" PRIu64 ")",
                reg->next_index, start);
        batch_abort(reg);
        return REGISTRY_ERR;
    }
    reg->next_index = next;
    reg->bad_records += bad;
    if (end > reg->data_end_us) {
        reg->data_end_us = end;
    }
    return 0;
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
        if (reg->pgb == NULL) {
            if (registry_begin(reg, err, errlen) < 0) {
                return REGISTRY_ERR;
            }
        } else {
            reg->in_txn = true;
            reg->batch_start = reg->next_index;
            reg->batch_bad = reg->batch_end_us = 0;
        }
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
        reg->batch_bad++;
        err_set(err, errlen, "registry: log entry %" PRIu64 " skipped: %s", log_index, derr);
        rc = REGISTRY_E_DECODE;
    } else {
        /* Every record, node-stopped included, shows the sinkhole was observing until then. */
        uint64_t t = record_time(&rec);
        if (t > reg->data_end_us) {
            reg->data_end_us = t;
        }
        if (t > reg->batch_end_us) {
            reg->batch_end_us = t;
        }
        int arc = 0;
        if (!record_changes_rows(rec.kind)) {
            arc = 0;
        } else if (reg->pgb != NULL && batch_applies(&rec)) {
            if (pg_batch_add(reg->pgb, entry, len) < 0) {
                arc = err_set(err, errlen, "registry: out of memory keeping a batch");
            }
        } else if (reg->pgb != NULL && apart_from_batch(&rec)) {
            arc = txn_begin(reg, err, errlen) < 0 ? -1 : apply_record(reg, &rec, err, errlen);
        } else {
            arc = txn_begin(reg, err, errlen) < 0 || batch_write(reg, err, errlen) < 0
                      ? -1
                      : apply_record(reg, &rec, err, errlen);
        }
        if (arc < 0) {
            /* Statement failures leave the transaction open but this record half-applied: roll
             * the whole batch back so the registry stays a function of a log prefix. */
            batch_abort(reg);
            return REGISTRY_ERR;
        }
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

struct db *registry_internal_db(struct registry *reg)
{
    return reg->db;
}

int registry_internal_reader_ok(struct registry *reg, char *err, size_t errlen)
{
    if (reg->follower != NULL) {
        err_set(err, errlen, "registry: a follower thread owns this connection; open another");
        return REGISTRY_E_BUSY;
    }
    /* A query inside this connection's own open batch sees the batch's day counters too. */
    if (reg->in_txn && (txn_begin(reg, err, errlen) < 0 || batch_write(reg, err, errlen) < 0 ||
                        daycc_write(reg, err, errlen) < 0)) {
        batch_abort(reg);
        return REGISTRY_ERR;
    }
    return 0;
}

int registry_data_end(struct registry *reg, uint64_t *out_us, char *err, size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
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
        return registry_internal_db_err(reg, err, errlen, "reading the data end");
    }
    *out_us = (uint64_t)v;
    return 0;
}
