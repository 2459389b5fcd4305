/* claims.c -- the remediation once-per-bot rule across nodes (registry.h): a node claims a (bot,
 * authorisation) pair in the shared registry before it may send, and a unique key lets one node
 * hold each pair. PostgreSQL: one statement (insert unless held, then who holds it), waited for
 * with a deadline so a stopped or cut-off database fails the claim instead of hanging the caller.
 * SQLite: the same table in the file, for the one node that writes it. */
#include "registry/db.h"
#include "registry/db_driver.h"
#include "registry/internal.h"
#include "registry/registry.h"
#include "util/err.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLAIM_NODE_MAX 31

struct registry_claims {
    struct db *db;
    char node[CLAIM_NODE_MAX + 1];
    bool pending; /* PostgreSQL: a claim timed out; its answer is still to be read */
    struct db_stmt *insert, *holder; /* SQLite */
};

static const char claim_table_pg[] =
    "CREATE TABLE IF NOT EXISTS command_claim(bot_key BYTEA NOT NULL,"
    " authorisation TEXT COLLATE \"C\" NOT NULL, node TEXT COLLATE \"C\" NOT NULL,"
    " claimed_us BIGINT NOT NULL, PRIMARY KEY(bot_key, authorisation))";
static const char claim_table_sqlite[] =
    "CREATE TABLE IF NOT EXISTS command_claim(bot_key BLOB NOT NULL, authorisation TEXT NOT NULL,"
    " node TEXT NOT NULL, claimed_us INTEGER NOT NULL, PRIMARY KEY(bot_key, authorisation))"
    " WITHOUT ROWID";

/* Inserts the claim unless the pair is held, and answers who holds it. A claim another node
 * commits while this statement waits on it is not in this statement's snapshot: then no row
 * comes back, and the caller asks again (claim_holder_sql). */
static const char claim_sql[] =
    "WITH made AS (INSERT INTO command_claim(bot_key, authorisation, node, claimed_us)"
    " VALUES($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING node)"
    " SELECT node FROM made UNION ALL SELECT node FROM command_claim"
    " WHERE bot_key = $1 AND authorisation = $2 LIMIT 1";
static const char claim_holder_sql[] =
    "SELECT node FROM command_claim WHERE bot_key = $1 AND authorisation = $2";

void registry_claims_close(struct registry_claims *c)
{
    if (c == NULL) {
        return;
    }
    db_finalize(c->insert);
    db_finalize(c->holder);
    db_close(c->db);
    free(c);
}

int registry_claims_open(struct registry_claims **out, const char *target, const char *node,
                         char *err, size_t errlen)
{
    *out = NULL;
    size_t n = strlen(node);
    if (n == 0 || n > CLAIM_NODE_MAX) {
        return err_set(err, errlen, "registry: a claim needs a node name of 1..%d characters",
                       CLAIM_NODE_MAX);
    }
    struct registry_claims *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return err_set(err, errlen, "registry: out of memory");
    }
    memcpy(c->node, node, n + 1);
    int rc = db_open(&c->db, target, err, errlen);
    if (rc < 0) {
        free(c);
        return REGISTRY_ERR;
    }
    const char *what = "making the claims table";
    if (db_dialect(c->db) == DB_POSTGRES) {
        /* Made under the writers' lock, as the schema is: two nodes starting together. The
         * server gives up on a claim after the timeout too (a lock held by a stuck node). */
        char timeout[64];
        snprintf(timeout, sizeof(timeout), "SET statement_timeout = %d", REGISTRY_CLAIM_TIMEOUT_MS);
        if (db_exec(c->db, "BEGIN") < 0 || db_lock_writers(c->db) < 0 ||
            db_exec(c->db, claim_table_pg) < 0 || db_exec(c->db, "COMMIT") < 0 ||
            (what = "setting the claims' timeout", db_exec(c->db, timeout) < 0)) {
            err_set(err, errlen, "registry: %s: %s", what, db_errmsg(c->db));
            registry_claims_close(c);
            return REGISTRY_ERR;
        }
    } else if (db_exec(c->db, claim_table_sqlite) < 0 ||
               db_prepare(c->db,
                          "INSERT INTO command_claim(bot_key, authorisation, node, claimed_us)"
                          " VALUES(?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                          true, &c->insert) < 0 ||
               db_prepare(c->db,
                          "SELECT node FROM command_claim WHERE bot_key = ?1 AND"
                          " authorisation = ?2",
                          true, &c->holder) < 0) {
        err_set(err, errlen, "registry: %s: %s", what, db_errmsg(c->db));
        registry_claims_close(c);
        return REGISTRY_ERR;
    }
    *out = c;
    return 0;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int pq_fail(PGconn *conn, const PGresult *r, const char *what, char *err, size_t errlen)
{
    char msg[512];
    db_postgres_message(r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(conn), msg,
                        sizeof(msg));
    return err_set(err, errlen, "registry: claim: %s: %s", what, msg);
}

/* Waits until the connection's answer is complete or the deadline passes. Returns 0 ready, 1
 * timed out, -1 broken. */
static int wait_answer(PGconn *conn, int64_t deadline)
{
    while (PQisBusy(conn)) {
        int64_t left = deadline - now_ms();
        if (left <= 0) {
            return 1;
        }
        struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
        int n = poll(&p, 1, (int)left);
        if (n < 0 && errno != EINTR) {
            return -1;
        }
        if (n > 0 && !PQconsumeInput(conn)) {
            return -1;
        }
    }
    return 0;
}

/* The answer of an earlier claim that timed out, if it has come: read and dropped. Returns 0
 * when the connection is free again, -1 when it is still waiting. */
static int settle_pending(struct registry_claims *c, PGconn *conn)
{
    if (!c->pending) {
        return 0;
    }
    if (!PQconsumeInput(conn) || PQisBusy(conn)) {
        return -1;
    }
    PGresult *r;
    while ((r = PQgetResult(conn)) != NULL) {
        PQclear(r);
    }
    c->pending = false;
    return 0;
}

/* One statement with the pair's parameters, sent and waited for until the deadline. Returns 1
 * with *holder set (or "" for no row), 0 on a timeout, -1 on an error. */
static int pg_ask(struct registry_claims *c, PGconn *conn, const char *sql, const uint8_t key[16],
                  const char *authorisation, uint64_t now_us, int64_t deadline, char *holder,
                  size_t cap, char *err, size_t errlen)
{
    holder[0] = '\0';
    char when[24];
    snprintf(when, sizeof(when), "%llu", (unsigned long long)now_us);
    const char *values[4] = {(const char *)key, authorisation, c->node, when};
    int lengths[4] = {16, 0, 0, 0}, formats[4] = {1, 0, 0, 0};
    int nparams = sql == claim_sql ? 4 : 2;
    if (!PQsendQueryParams(conn, sql, nparams, NULL, values, lengths, formats, 0)) {
        return pq_fail(conn, NULL, "sending", err, errlen);
    }
    /* The query is small: it leaves libpq's buffer at once unless the socket is full. */
    while (PQflush(conn) == 1) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = PQsocket(conn), .events = POLLOUT};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            c->pending = true;
            return 0;
        }
    }
    int w = wait_answer(conn, deadline);
    if (w == 1) {
        c->pending = true;
        return 0;
    }
    if (w < 0) {
        return pq_fail(conn, NULL, "reading the answer", err, errlen);
    }
    int rc = 1;
    PGresult *r;
    holder[0] = '\0';
    while ((r = PQgetResult(conn)) != NULL) {
        if (rc == 1 && PQresultStatus(r) != PGRES_TUPLES_OK) {
            rc = pq_fail(conn, r, "the database refused it", err, errlen);
        } else if (rc == 1 && PQntuples(r) > 0) {
            snprintf(holder, cap, "%s", PQgetvalue(r, 0, 0));
        }
        PQclear(r);
    }
    return rc;
}

static int claim_pg(struct registry_claims *c, const uint8_t key[16], const char *authorisation,
                    uint64_t now_us, char *holder, size_t cap, char *err, size_t errlen)
{
    PGconn *conn = db_postgres_conn(c->db);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        return err_set(err, errlen, "registry: claim: the database connection is lost");
    }
    if (settle_pending(c, conn) < 0) {
        return err_set(err, errlen,
                       "registry: claim: the database has not yet answered an "
                       "earlier claim");
    }
    int64_t deadline = now_ms() + REGISTRY_CLAIM_TIMEOUT_MS;
    int rc =
        pg_ask(c, conn, claim_sql, key, authorisation, now_us, deadline, holder, cap, err, errlen);
    if (rc == 1 && holder[0] == '\0') {
        /* Held by a node whose claim committed while this one waited on it: ask again. */
        rc = pg_ask(c, conn, claim_holder_sql, key, authorisation, now_us, deadline, holder, cap,
                    err, errlen);
    }
    if (rc == 0) {
        return err_set(err, errlen, "registry: claim: no answer from the database within %d ms",
                       REGISTRY_CLAIM_TIMEOUT_MS);
    }
    if (rc == 1 && holder[0] == '\0') {
        return err_set(err, errlen, "registry: claim: the database holds no claim it made");
    }
    return rc < 0 ? REGISTRY_ERR : 0;
}

static int claim_sqlite(struct registry_claims *c, const uint8_t key[16], const char *authorisation,
                        uint64_t now_us, char *holder, size_t cap, char *err, size_t errlen)
{
    db_bind_blob(c->insert, 1, key, 16);
    db_bind_text(c->insert, 2, authorisation);
    db_bind_text(c->insert, 3, c->node);
    db_bind_int(c->insert, 4, (int64_t)now_us);
    int rc = db_step(c->insert);
    db_reset(c->insert);
    if (rc == DB_DONE) {
        db_bind_blob(c->holder, 1, key, 16);
        db_bind_text(c->holder, 2, authorisation);
        rc = db_step(c->holder);
        if (rc == DB_ROW) {
            snprintf(holder, cap, "%s", db_col_text(c->holder, 0));
        }
        db_reset(c->holder);
    }
    if (rc != DB_ROW) {
        return err_set(err, errlen, "registry: claim: %s", db_errmsg(c->db));
    }
    return 0;
}

int registry_claim_command(struct registry_claims *c, const char *bot_key,
                           const char *authorisation, uint64_t now_us, char *holder,
                           size_t holder_cap, char *err, size_t errlen)
{
    uint8_t key[16];
    if (!registry_internal_key_from_hex(bot_key, key)) {
        return err_set(err, errlen, "registry: claim: '%s' is not a bot key", bot_key);
    }
    if (strlen(authorisation) >= 64) {
        return err_set(err, errlen, "registry: claim: authorisation id too long");
    }
    char who[CLAIM_NODE_MAX + 1];
    int rc = db_dialect(c->db) == DB_POSTGRES
                 ? claim_pg(c, key, authorisation, now_us, who, sizeof(who), err, errlen)
                 : claim_sqlite(c, key, authorisation, now_us, who, sizeof(who), err, errlen);
    if (rc < 0) {
        return REGISTRY_ERR;
    }
    if (holder != NULL && holder_cap > 0) {
        snprintf(holder, holder_cap, "%s", who);
    }
    return strcmp(who, c->node) == 0 ? 1 : 0;
}
