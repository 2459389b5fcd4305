/* db.h -- the registry's SQL driver: one small prepared-statement interface over SQLite and
 * PostgreSQL (libpq), so the registry's logic and queries are written once (registry.c, query.c)
 * and each backend only says how to connect, how its schema is made and how a statement runs.
 * Internal to src/registry; not part of the module contract.
 *
 * SQL is written once, in the dialect both accept: parameters as ?N (the PostgreSQL driver turns
 * them into $N), ON CONFLICT for upserts, CASE instead of the scalar min()/max() SQLite has and
 * PostgreSQL spells LEAST/GREATEST, "user" quoted, instr() (PostgreSQL gets it as a SQL function
 * over strpos() in its schema). */
#ifndef SINKD_REGISTRY_DB_H
#define SINKD_REGISTRY_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum db_dialect { DB_SQLITE, DB_POSTGRES };

enum db_step_result {
    DB_DONE = 0, /* the statement finished; db_changes() tells the rows it changed */
    DB_ROW = 1,  /* a row is readable with db_col_*() until the next step or reset */
};

struct db;
struct db_stmt;

/* True when `target` names a PostgreSQL database (a postgresql:// or postgres:// URL). */
bool db_is_postgres_url(const char *target);

/* Opens a SQLite file or a PostgreSQL URL, creating or migrating the registry schema (the
 * newest version is REGISTRY_SCHEMA_VERSION). Returns 0, REGISTRY_E_VERSION for a schema newer
 * than this build, or REGISTRY_ERR; err names the target and the reason. */
int db_open(struct db **out, const char *target, char *err, size_t errlen);
void db_close(struct db *db);
enum db_dialect db_dialect(const struct db *db);
/* The last error of this connection, without a trailing newline. */
const char *db_errmsg(struct db *db);

/* Runs a script of statements without parameters or rows. Returns 0 or -1 (db_errmsg). */
int db_exec(struct db *db, const char *sql);

/* Inside a transaction: waits until no other writer of this database is inside one (until this
 * transaction ends). SQLite: nothing to do, BEGIN IMMEDIATE took the file's write lock.
 * PostgreSQL: a transaction-scoped advisory lock that every sinkd takes, so the nodes sharing a
 * database apply their batches one at a time. Returns 0 or -1 (db_errmsg). */
int db_lock_writers(struct db *db);

/* Prepares `sql`. A `persistent` statement is run many times (the write path); the others once
 * or a few times (queries). Returns 0 or -1 (db_errmsg). */
int db_prepare(struct db *db, const char *sql, bool persistent, struct db_stmt **out);
/* Parameters are numbered from 1 and keep their value until bound again. Text and blobs are
 * copied. A parameter the statement does not use is ignored. */
void db_bind_int(struct db_stmt *st, int i, int64_t v);
void db_bind_text(struct db_stmt *st, int i, const char *s);
void db_bind_blob(struct db_stmt *st, int i, const void *p, size_t n);
/* Runs the statement or moves to its next row: DB_ROW, DB_DONE, or -1 (db_errmsg). */
int db_step(struct db_stmt *st);
/* Runs a statement whose rows and changes the caller does not need. SQLite: at once, as
 * db_step + db_reset. PostgreSQL: queued in libpq's pipeline and sent without waiting; the next
 * db_step or db_exec on the connection reads its outcome with its own, and an error of a
 * deferred statement is that call's error. Returns 0 or -1 (db_errmsg). */
int db_run_deferred(struct db_stmt *st);
/* Starts a query whose rows the caller reads later with db_step, so that several independent
 * queries cost one round trip. SQLite: nothing to do (db_step runs it). PostgreSQL: queued in
 * the pipeline; the first db_step of any of them reads them all. Nothing may change what it reads
 * between the two calls. Returns 0 or -1 (db_errmsg). */
int db_send(struct db_stmt *st);
/* Columns of the current row, from 0. NULL reads as 0, "" and an empty blob. */
int64_t db_col_int(struct db_stmt *st, int i);
const char *db_col_text(struct db_stmt *st, int i);
size_t db_col_blob(struct db_stmt *st, int i, const uint8_t **p);
/* Rows inserted, updated or deleted by the statement's last run (valid after DB_DONE). */
int64_t db_changes(const struct db_stmt *st);
/* Ends the current run (rows not read are dropped) so the statement can run again. */
void db_reset(struct db_stmt *st);
void db_finalize(struct db_stmt *st);

/* SQLite's private page cache in MiB (PRAGMA cache_size). PostgreSQL keeps its cache in the
 * server: setting succeeds and changes nothing, reading returns -1 ("cannot say"). */
int db_set_cache_mib(struct db *db, uint32_t mib);
int64_t db_cache_mib(struct db *db);

#endif
