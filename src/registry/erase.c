/* erase.c -- an erasure record applied to the registry: the personal data of bots and source
 * addresses last seen before a time removed, their counts and times kept (issue 20 #3). The
 * same SQL runs on SQLite and PostgreSQL but for making random bytes. */
#include <stdio.h>
#include <string.h>

#include "registry/db.h"
#include "registry/internal.h"
#include "registry/registry.h"
#include "util/err.h"

#define US_PER_DAY 86400000000ll

/* What stands in for an erased bot key: 16 random bytes. An erased address becomes 17 random
 * bytes (0xEE and 16 on PostgreSQL): no address has that length, so a substitute never meets a
 * real address, and a second erasure knows it. */
static const char *random16(struct db *db)
{
    return db_dialect(db) == DB_POSTGRES ? "uuid_send(gen_random_uuid())" : "randomblob(16)";
}

static int run(struct db *db, const char *sql, int64_t before_us, char *err, size_t errlen)
{
    struct db_stmt *st = NULL;
    if (db_prepare(db, sql, false, &st) < 0) {
        return err_set(err, errlen, "registry: erase: %s", db_errmsg(db));
    }
    db_bind_int(st, 1, before_us);
    db_bind_int(st, 2, before_us / US_PER_DAY);
    int rc = db_step(st);
    db_finalize(st);
    if (rc < 0) {
        return err_set(err, errlen, "registry: erase: %s", db_errmsg(db));
    }
    return 0;
}

int registry_internal_erase(struct db *db, uint64_t before_us, char *err, size_t errlen)
{
    if (before_us > INT64_MAX) {
        return err_set(err, errlen, "registry: erase: time out of range");
    }
    bool pg = db_dialect(db) == DB_POSTGRES;
    const char *rnd = random16(db);
    /* SQLite leaves a changed row's old bytes in the file's free space unless told to overwrite
     * them. (PostgreSQL keeps old row versions until VACUUM: docs/evidence.md.) */
    if (!pg && db_exec(db, "PRAGMA secure_delete = ON") < 0) {
        return err_set(err, errlen, "registry: erase: %s", db_errmsg(db));
    }
    char sql[1024];
    int64_t t = (int64_t)before_us;
    /* ?1 the time, ?2 the first day not wholly before it. Addresses: one substitute per erased
     * address, used for its row and every day it was seen, so unique-address counts stay; an
     * address still active keeps its row, and loses only the days wholly before the time. */
    const char *steps[] = {
        pg ? "CREATE TEMP TABLE erase_src(old BYTEA PRIMARY KEY, new BYTEA NOT NULL)"
           : "CREATE TEMP TABLE erase_src(old BLOB PRIMARY KEY, new BLOB NOT NULL)",
        pg ? "CREATE TEMP TABLE erase_day(old BYTEA PRIMARY KEY, new BYTEA NOT NULL)"
           : "CREATE TEMP TABLE erase_day(old BLOB PRIMARY KEY, new BLOB NOT NULL)",
        NULL, /* erase_src rows */
        NULL, /* erase_day rows */
        "UPDATE day_ip SET ip = (SELECT new FROM erase_src WHERE old = day_ip.ip)"
        " WHERE ip IN (SELECT old FROM erase_src)",
        "UPDATE day_ip SET ip = (SELECT new FROM erase_day WHERE old = day_ip.ip)"
        " WHERE day < ?2 AND ip IN (SELECT old FROM erase_day)",
        "UPDATE source_ip SET ip = (SELECT new FROM erase_src WHERE old = source_ip.ip)"
        " WHERE ip IN (SELECT old FROM erase_src)",
        NULL, /* bots */
        "DROP TABLE erase_src",
        "DROP TABLE erase_day",
    };
    char fill_src[512], fill_day[512], bots[512];
    snprintf(fill_src, sizeof(fill_src),
             "INSERT INTO erase_src(old, new) SELECT ip, %s FROM source_ip"
             " WHERE last_seen_us < ?1 AND length(ip) <> 17",
             pg ? "'\\xee'::bytea || uuid_send(gen_random_uuid())" : "randomblob(17)");
    snprintf(fill_day, sizeof(fill_day),
             "INSERT INTO erase_day(old, new) SELECT ip, %s FROM (SELECT DISTINCT ip FROM day_ip"
             " WHERE day < ?2 AND length(ip) <> 17 AND ip NOT IN (SELECT old FROM erase_src)) d",
             pg ? "'\\xee'::bytea || uuid_send(gen_random_uuid())" : "randomblob(17)");
    /* A bot: its names, addresses and key (a hash of them: for a bot known by address, the
     * address can be found again from it) go; a random key keeps the row and its counts. */
    snprintf(bots, sizeof(bots),
             "UPDATE bot SET host = '', \"user\" = '', local_ip = '', src_ip = '', src_port = 0,"
             " bot_key = %s WHERE last_seen_us < ?1 AND (host <> '' OR \"user\" <> '' OR"
             " local_ip <> '' OR src_ip <> '')",
             rnd);
    steps[2] = fill_src;
    steps[3] = fill_day;
    steps[7] = bots;
    for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
        snprintf(sql, sizeof(sql), "%s", steps[i]);
        if (run(db, sql, t, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}
