/* db_driver.h -- what a registry SQL driver provides (db_sqlite.c, db_postgres.c) and db.c
 * dispatches to. Internal to src/registry. */
#ifndef SINKD_REGISTRY_DB_DRIVER_H
#define SINKD_REGISTRY_DB_DRIVER_H

#include "registry/db.h"

struct db_driver {
    enum db_dialect dialect;
    void (*close)(struct db *db);
    const char *(*errmsg)(struct db *db);
    int (*exec)(struct db *db, const char *sql);
    int (*lock_writers)(struct db *db);
    int (*prepare)(struct db *db, const char *sql, bool persistent, struct db_stmt **out);
    void (*bind_int)(struct db_stmt *st, int i, int64_t v);
    void (*bind_text)(struct db_stmt *st, int i, const char *s);
    void (*bind_blob)(struct db_stmt *st, int i, const void *p, size_t n);
    int (*step)(struct db_stmt *st);
    int (*run_deferred)(struct db_stmt *st);
    int (*send)(struct db_stmt *st);
    int64_t (*col_int)(struct db_stmt *st, int i);
    const char *(*col_text)(struct db_stmt *st, int i);
    size_t (*col_blob)(struct db_stmt *st, int i, const uint8_t **p);
    int64_t (*changes)(const struct db_stmt *st);
    void (*reset)(struct db_stmt *st);
    void (*finalize)(struct db_stmt *st);
    int (*set_cache_mib)(struct db *db, uint32_t mib);
    int64_t (*cache_mib)(struct db *db);
};

/* Every driver's connection and statement begin with these (the driver's own struct has one as
 * its first member and converts the pointer back). */
struct db {
    const struct db_driver *driver;
};
struct db_stmt {
    const struct db_driver *driver;
};

/* PostgreSQL only, for the batch writer (pg_batch.c), which talks to the server itself: the
 * connection with the driver's pipeline drained, or NULL (db_errmsg) when draining it failed. */
struct pg_conn *db_postgres_conn(struct db *db);
/* libpq's message as one line (it may span several, indented with tabs): it ends up in one log
 * line. */
void db_postgres_message(const char *msg, char *out, size_t cap);

int db_sqlite_open(struct db **out, const char *path, char *err, size_t errlen);
int db_postgres_open(struct db **out, const char *url, char *err, size_t errlen);

#endif
