/* registry_target.h -- where a registry test keeps its registry. Run directly, a fresh SQLite
 * file; run by tests/pg/with_postgres.sh (SINKD_PG_URL set: the *_pg ctest entries), a fresh,
 * empty database on that real PostgreSQL server, so every behaviour these tests assert is
 * asserted of both backends. */
#ifndef SINKD_TESTS_REGISTRY_TARGET_H
#define SINKD_TESTS_REGISTRY_TARGET_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry/registry.h"

static inline bool test_registry_is_pg(void)
{
    return getenv("SINKD_PG_URL") != NULL;
}

/* dir/registry.db, or the URL of a database made for this call on SINKD_PG_URL's server. */
static inline void test_registry_target(char *out, size_t cap, const char *dir)
{
    const char *url = getenv("SINKD_PG_URL");
    if (url == NULL) {
        snprintf(out, cap, "%s/registry.db", dir);
        return;
    }
    static unsigned made;
    char name[64], sql[128];
    snprintf(name, sizeof(name), "t%ld_%u", (long)getpid(), made++);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    PGconn *conn = PQconnectdb(url);
    PGresult *r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "test: %s: %s", sql, PQerrorMessage(conn));
        abort();
    }
    PQclear(r);
    PQfinish(conn);
    /* with_postgres.sh's URL is postgresql:///sinkd?...: the same server, another database. */
    const char *query = strchr(url, '?');
    snprintf(out, cap, "postgresql:///%s%s", name, query != NULL ? query : "");
}

/* registry_open, naming the log when the registry is shared (as registry_open_log does). */
static inline int test_registry_open(struct registry **reg, const char *target, char *err,
                                     size_t errlen)
{
    int rc = registry_open(reg, target, err, errlen);
    if (rc == 0 && registry_is_shared(*reg)) {
        rc = registry_set_source(*reg, "test.example/log", err, errlen);
    }
    return rc;
}

#endif
