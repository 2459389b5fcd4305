/* db.c -- db.h's calls, dispatched to the connection's driver. */
#include "registry/db.h"
#include "registry/db_driver.h"

#include <string.h>

bool db_is_postgres_url(const char *target)
{
    return strncmp(target, "postgresql://", 13) == 0 || strncmp(target, "postgres://", 11) == 0;
}

int db_open(struct db **out, const char *target, char *err, size_t errlen)
{
    if (db_is_postgres_url(target)) {
        return db_postgres_open(out, target, err, errlen);
    }
    return db_sqlite_open(out, target, err, errlen);
}

void db_close(struct db *db)
{
    if (db != NULL) {
        db->driver->close(db);
    }
}

enum db_dialect db_dialect(const struct db *db)
{
    return db->driver->dialect;
}

const char *db_errmsg(struct db *db)
{
    return db->driver->errmsg(db);
}

int db_exec(struct db *db, const char *sql)
{
    return db->driver->exec(db, sql);
}

int db_lock_writers(struct db *db)
{
    return db->driver->lock_writers(db);
}

int db_prepare(struct db *db, const char *sql, bool persistent, struct db_stmt **out)
{
    return db->driver->prepare(db, sql, persistent, out);
}

void db_bind_int(struct db_stmt *st, int i, int64_t v)
{
    st->driver->bind_int(st, i, v);
}

void db_bind_text(struct db_stmt *st, int i, const char *s)
{
    st->driver->bind_text(st, i, s);
}

void db_bind_blob(struct db_stmt *st, int i, const void *p, size_t n)
{
    st->driver->bind_blob(st, i, p, n);
}

int db_step(struct db_stmt *st)
{
    return st->driver->step(st);
}

int db_run_deferred(struct db_stmt *st)
{
    return st->driver->run_deferred(st);
}

int db_send(struct db_stmt *st)
{
    return st->driver->send(st);
}

int64_t db_col_int(struct db_stmt *st, int i)
{
    return st->driver->col_int(st, i);
}

const char *db_col_text(struct db_stmt *st, int i)
{
    return st->driver->col_text(st, i);
}

size_t db_col_blob(struct db_stmt *st, int i, const uint8_t **p)
{
    return st->driver->col_blob(st, i, p);
}

int64_t db_changes(const struct db_stmt *st)
{
    return st->driver->changes(st);
}

void db_reset(struct db_stmt *st)
{
    st->driver->reset(st);
}

void db_finalize(struct db_stmt *st)
{
    if (st != NULL) {
        st->driver->finalize(st);
    }
}

int db_set_cache_mib(struct db *db, uint32_t mib)
{
    return db->driver->set_cache_mib(db, mib);
}

int64_t db_cache_mib(struct db *db)
{
    return db->driver->cache_mib(db);
}
