/* query.c -- what reports, the portal and verify read from the registry: bots by filter, totals,
 * per-country, per-AS and per-day counts, remediation effectiveness, the logs applied. Written
 * once over the SQL driver (db.h) for SQLite and PostgreSQL. */
#include "registry/db.h"
#include "registry/internal.h"
#include "registry/registry.h"
#include "util/err.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_DAY 86400000000ULL

/* ---- queries ----------------------------------------------------------------------------- */

/* Appends the WHERE clause for a filter on table alias-less `bot`-like tables. Parameters are
 * numbered ?1..?6 in a fixed layout so one bind function serves every query:
 * ?1 since, ?2 until, ?3 cc, ?4 asn, ?5 tag. */
static void where_clause(const struct registry_filter *f, bool with_tag, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, " WHERE 1 = 1");
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

static void bind_filter(struct db_stmt *st, const struct registry_filter *f)
{
    /* Binding a parameter the SQL does not use is harmless (db.h). */
    db_bind_int(st, 1, (int64_t)f->since_us);
    db_bind_int(st, 2, (int64_t)f->until_us);
    if (f->cc) {
        db_bind_text(st, 3, f->cc);
    }
    db_bind_int(st, 4, f->asn);
    if (f->tag) {
        db_bind_text(st, 5, f->tag);
    }
}

static int prepare(struct registry *reg, const char *sql, struct db_stmt **st, char *err,
                   size_t errlen)
{
    if (db_prepare(registry_internal_db(reg), sql, false, st) != 0) {
        return registry_internal_db_err(reg, err, errlen, "query");
    }
    return 0;
}

static void col_str(struct db_stmt *st, int i, char *out, size_t cap)
{
    snprintf(out, cap, "%s", db_col_text(st, i));
}

static void col_addr(struct db_stmt *st, int ip, int port, struct net_addr *out)
{
    const char *s = db_col_text(st, ip);
    memset(out, 0, sizeof(*out));
    if (s[0] == '\0' || net_addr_parse_ip(s, out) < 0) {
        memset(out, 0, sizeof(*out));
        return;
    }
    out->port = (uint16_t)db_col_int(st, port);
}

#define BOT_COLUMNS                                                                                \
    "bot_key, family, host, \"user\", os, local_ip, campaign, version, first_seen_us, "            \
    "last_seen_us,"                                                                                \
    " src_ip, src_port, dst_ip, dst_port, transport, node, cc, asn, tags, contacts,"               \
    " commanded_at_us, authorisation, last_verdict, last_decision_us, seen_after_command,"         \
    " last_seen_after_command_us"

static void row_to_bot(struct db_stmt *st, struct registry_bot *b)
{
    memset(b, 0, sizeof(*b));
    const uint8_t *key = NULL;
    size_t keylen = db_col_blob(st, 0, &key);
    registry_internal_key_to_hex(key, keylen, b->bot_key);
    col_str(st, 1, b->family, sizeof(b->family));
    col_str(st, 2, b->bot.host, sizeof(b->bot.host));
    col_str(st, 3, b->bot.user, sizeof(b->bot.user));
    col_str(st, 4, b->bot.os, sizeof(b->bot.os));
    col_str(st, 5, b->bot.local_ip, sizeof(b->bot.local_ip));
    col_str(st, 6, b->bot.campaign, sizeof(b->bot.campaign));
    col_str(st, 7, b->bot.version, sizeof(b->bot.version));
    b->first_seen_us = (uint64_t)db_col_int(st, 8);
    b->last_seen_us = (uint64_t)db_col_int(st, 9);
    col_addr(st, 10, 11, &b->src);
    col_addr(st, 12, 13, &b->dst);
    b->transport = (uint8_t)db_col_int(st, 14);
    col_str(st, 15, b->node, sizeof(b->node));
    col_str(st, 16, b->cc, sizeof(b->cc));
    b->asn = (uint32_t)db_col_int(st, 17);
    col_str(st, 18, b->tags, sizeof(b->tags));
    b->contacts = (uint64_t)db_col_int(st, 19);
    b->commanded_at_us = (uint64_t)db_col_int(st, 20);
    col_str(st, 21, b->authorisation, sizeof(b->authorisation));
    b->last_verdict = (uint8_t)db_col_int(st, 22);
    b->last_decision_us = (uint64_t)db_col_int(st, 23);
    b->seen_after_command = (uint64_t)db_col_int(st, 24);
    b->last_seen_after_command_us = (uint64_t)db_col_int(st, 25);
}

int registry_bots(struct registry *reg, const struct registry_filter *f, registry_bot_fn fn,
                  void *ctx, char *err, size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    char where[512], sql[1536];
    where_clause(f, true, where, sizeof(where));
    const char *flag =
        f->tag ? "CASE WHEN instr(',' || tags || ',', ',' || ?5 || ',') > 0 THEN 1 ELSE 0 END"
               : "0";
    const char *group = f->order == REGISTRY_ORDER_CC    ? "cc, "
                        : f->order == REGISTRY_ORDER_ASN ? "asn, "
                                                         : "";
    snprintf(sql, sizeof(sql),
             "SELECT " BOT_COLUMNS ", %s FROM bot%s ORDER BY %s%s last_seen_us,"
             " bot_key",
             flag, where, group, f->tagged_first && f->tag ? "27 DESC," : "");
    struct db_stmt *st = NULL;
    if (prepare(reg, sql, &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    bind_filter(st, f);
    rc = 0;
    int step;
    while ((step = db_step(st)) == DB_ROW) {
        struct registry_bot b;
        row_to_bot(st, &b);
        rc = fn(ctx, &b, db_col_int(st, 26) != 0);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != DB_DONE) {
        rc = registry_internal_db_err(reg, err, errlen, "reading bots");
    }
    db_finalize(st);
    return rc;
}

int registry_bot_get(struct registry *reg, const char *bot_key, struct registry_bot *out, char *err,
                     size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    struct db_stmt *st = NULL;
    if (prepare(reg, "SELECT " BOT_COLUMNS " FROM bot WHERE bot_key = ?1", &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    uint8_t key[16];
    if (!registry_internal_key_from_hex(bot_key, key)) {
        db_finalize(st);
        return 0;
    }
    db_bind_blob(st, 1, key, sizeof(key));
    int step = db_step(st);
    if (step == DB_ROW) {
        row_to_bot(st, out);
        rc = 1;
    } else if (step != DB_DONE) {
        rc = registry_internal_db_err(reg, err, errlen, "reading a bot");
    }
    db_finalize(st);
    return rc;
}

static int query_u64s(struct registry *reg, const char *sql, const struct registry_filter *f,
                      uint64_t *out, int n, char *err, size_t errlen)
{
    struct db_stmt *st = NULL;
    if (prepare(reg, sql, &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    bind_filter(st, f);
    int rc = 0;
    if (db_step(st) == DB_ROW) {
        for (int i = 0; i < n; i++) {
            out[i] = (uint64_t)db_col_int(st, i);
        }
    } else {
        rc = registry_internal_db_err(reg, err, errlen, "totals");
    }
    db_finalize(st);
    return rc;
}

int registry_totals(struct registry *reg, const struct registry_filter *f,
                    struct registry_totals *out, char *err, size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    char where[512], sql[1024];
    uint64_t v[5] = {0};
    memset(out, 0, sizeof(*out));
    where_clause(f, true, where, sizeof(where));
    snprintf(sql, sizeof(sql),
             "SELECT count(*), coalesce(sum(contacts), 0),"
             " coalesce(sum(CASE WHEN commanded_at_us > 0 THEN 1 ELSE 0 END), 0),"
             " coalesce(sum(CASE WHEN commanded_at_us > 0 AND seen_after_command > 0 THEN 1"
             " ELSE 0 END), 0),"
             " coalesce(sum(CASE WHEN host <> '' OR \"user\" <> '' THEN 1 ELSE 0 END), 0)"
             " FROM bot%s",
             where);
    if (query_u64s(reg, sql, f, v, 5, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    out->bots = v[0];
    out->contacts = v[1];
    out->commanded = v[2];
    out->seen_after_command = v[3];
    out->identified = v[4];
    /* Source IPs carry no tags: the tag filter does not apply to the IP count. */
    where_clause(f, false, where, sizeof(where));
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM source_ip%s", where);
    if (query_u64s(reg, sql, f, v, 1, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    out->ips = v[0];
    /* A registry no follower of this version has written to has no undecoded table yet: it
     * holds no undecoded caller (`registry rebuild` counts them from the log). */
    snprintf(sql, sizeof(sql), "SELECT count(*), coalesce(sum(contacts), 0) FROM undecoded_ip%s",
             where);
    char ignored[256];
    if (query_u64s(reg, sql, f, v, 2, ignored, sizeof(ignored)) == 0) {
        out->undecoded_ips = v[0];
        out->undecoded_contacts = v[1];
    }
    return 0;
}

static int group_query(struct registry *reg, const char *table, const struct registry_filter *f,
                       enum registry_group g, size_t limit, registry_group_fn fn, void *ctx,
                       char *err, size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    const char *col = g == REGISTRY_GROUP_CC     ? "cc"
                      : g == REGISTRY_GROUP_ASN  ? "asn"
                      : g == REGISTRY_GROUP_NODE ? "node"
                                                 : "tags";
    char where[512], sql[1024], lim[32] = "";
    where_clause(f, strcmp(table, "bot") == 0, where, sizeof(where));
    if (limit > 0) {
        snprintf(lim, sizeof(lim), " LIMIT %zu", limit);
    }
    snprintf(sql, sizeof(sql),
             "SELECT %s, count(*) AS n FROM %s%s%s GROUP BY %s ORDER BY n DESC,"
             " %s%s",
             col, table, where, g == REGISTRY_GROUP_TAGS ? " AND tags <> ''" : "", col, col, lim);
    struct db_stmt *st = NULL;
    if (prepare(reg, sql, &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    bind_filter(st, f);
    int step;
    while ((step = db_step(st)) == DB_ROW) {
        struct registry_group_row row;
        memset(&row, 0, sizeof(row));
        if (g == REGISTRY_GROUP_ASN) {
            row.asn = (uint32_t)db_col_int(st, 0);
            snprintf(row.key, sizeof(row.key), "%" PRIu32, row.asn);
        } else {
            col_str(st, 0, row.key, sizeof(row.key));
        }
        row.count = (uint64_t)db_col_int(st, 1);
        rc = fn(ctx, &row);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != DB_DONE) {
        rc = registry_internal_db_err(reg, err, errlen, "grouping");
    }
    db_finalize(st);
    return rc;
}

int registry_group_bots(struct registry *reg, const struct registry_filter *f,
                        enum registry_group g, size_t limit, registry_group_fn fn, void *ctx,
                        char *err, size_t errlen)
{
    return group_query(reg, "bot", f, g, limit, fn, ctx, err, errlen);
}

int registry_group_undecoded(struct registry *reg, const struct registry_filter *f,
                             enum registry_group g, size_t limit, registry_group_fn fn, void *ctx,
                             char *err, size_t errlen)
{
    if (g == REGISTRY_GROUP_TAGS) {
        return err_set(err, errlen, "registry: undecoded callers are not grouped by tags");
    }
    return group_query(reg, "undecoded_ip", f, g, limit, fn, ctx, err, errlen);
}

int registry_group_ips(struct registry *reg, const struct registry_filter *f, enum registry_group g,
                       size_t limit, registry_group_fn fn, void *ctx, char *err, size_t errlen)
{
    if (g == REGISTRY_GROUP_TAGS || g == REGISTRY_GROUP_NODE) {
        return err_set(err, errlen, "registry: source IPs are grouped by country or AS only");
    }
    return group_query(reg, "source_ip", f, g, limit, fn, ctx, err, errlen);
}

int registry_days(struct registry *reg, uint64_t since_us, uint64_t until_us, const char *cc,
                  registry_day_fn fn, void *ctx, char *err, size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    struct db_stmt *st = NULL;
    const char *sql = cc ? "SELECT day, sum(bots), sum(ips), sum(contacts) FROM day_cc"
                           " WHERE day >= ?1 AND day <= ?2 AND cc = ?3 GROUP BY day ORDER BY day"
                         : "SELECT day, sum(bots), sum(ips), sum(contacts) FROM day_cc"
                           " WHERE day >= ?1 AND day <= ?2 GROUP BY day ORDER BY day";
    if (prepare(reg, sql, &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    /* until is exclusive: the last day included is the one holding until_us - 1. */
    db_bind_int(st, 1, (int64_t)(since_us / US_PER_DAY));
    db_bind_int(st, 2, until_us ? (int64_t)((until_us - 1) / US_PER_DAY) : INT64_MAX);
    if (cc) {
        db_bind_text(st, 3, cc);
    }
    int step;
    while ((step = db_step(st)) == DB_ROW) {
        struct registry_day d = {
            .day = db_col_int(st, 0),
            .bots = (uint64_t)db_col_int(st, 1),
            .ips = (uint64_t)db_col_int(st, 2),
            .contacts = (uint64_t)db_col_int(st, 3),
        };
        rc = fn(ctx, &d);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != DB_DONE) {
        rc = registry_internal_db_err(reg, err, errlen, "reading days");
    }
    db_finalize(st);
    return rc;
}

/* ---- remediation effectiveness ------------------------------------------------------------ */

int registry_remediation(struct registry *reg, registry_remediation_fn fn, void *ctx, char *err,
                         size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    struct db_stmt *st = NULL;
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
    while ((step = db_step(st)) == DB_ROW) {
        struct registry_remediation r;
        memset(&r, 0, sizeof(r));
        const uint8_t *key = NULL;
        size_t keylen = db_col_blob(st, 0, &key);
        registry_internal_key_to_hex(key, keylen, r.bot_key);
        col_str(st, 1, r.cc, sizeof(r.cc));
        r.asn = (uint32_t)db_col_int(st, 2);
        col_str(st, 3, r.authorisation, sizeof(r.authorisation));
        uint64_t *v[] = {&r.send_decisions,    &r.first_send_us,   &r.dry_runs,
                         &r.first_dry_run_us,  &r.commands_sent,   &r.first_command_us,
                         &r.commands_failed,   &r.first_failed_us, &r.seen_after,
                         &r.first_after_us,    &r.last_after_us,   &r.first_after_1h_us,
                         &r.first_after_24h_us};
        for (int i = 0; i < (int)(sizeof(v) / sizeof(v[0])); i++) {
            *v[i] = (uint64_t)db_col_int(st, 4 + i);
        }
        rc = fn(ctx, &r);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != DB_DONE) {
        rc = registry_internal_db_err(reg, err, errlen, "reading remediation rows");
    }
    db_finalize(st);
    return rc;
}

int registry_remediation_days(struct registry *reg, uint64_t since_us, uint64_t until_us,
                              registry_remediation_day_fn fn, void *ctx, char *err, size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    struct db_stmt *st = NULL;
    if (prepare(reg,
                "SELECT day, commands_sent, commands_failed, commanded_seen FROM day_remediation"
                " WHERE day >= ?1 AND day <= ?2 ORDER BY day",
                &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    /* until is exclusive, as in registry_days(). */
    db_bind_int(st, 1, (int64_t)(since_us / US_PER_DAY));
    db_bind_int(st, 2, until_us ? (int64_t)((until_us - 1) / US_PER_DAY) : INT64_MAX);
    int step;
    while ((step = db_step(st)) == DB_ROW) {
        struct registry_remediation_day d = {
            .day = db_col_int(st, 0),
            .commands_sent = (uint64_t)db_col_int(st, 1),
            .commands_failed = (uint64_t)db_col_int(st, 2),
            .commanded_seen = (uint64_t)db_col_int(st, 3),
        };
        rc = fn(ctx, &d);
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != DB_DONE) {
        rc = registry_internal_db_err(reg, err, errlen, "reading remediation days");
    }
    db_finalize(st);
    return rc;
}

int registry_sources(struct registry *reg, registry_source_fn fn, void *ctx, char *err,
                     size_t errlen)
{
    int rc = registry_internal_reader_ok(reg, err, errlen);
    if (rc < 0) {
        return rc;
    }
    bool shared = registry_is_shared(reg);
    struct db_stmt *st = NULL;
    if (prepare(reg,
                shared ? "SELECT key, value FROM meta WHERE key LIKE 'next\\_index:%' ORDER BY key"
                       : "SELECT key, value FROM meta WHERE key = 'next_index'",
                &st, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    int step;
    while ((step = db_step(st)) == DB_ROW) {
        const char *key = db_col_text(st, 0);
        rc = fn(ctx, shared ? key + strlen("next_index:") : "", (uint64_t)db_col_int(st, 1));
        if (rc != 0) {
            break;
        }
    }
    if (rc == 0 && step != DB_DONE) {
        rc = registry_internal_db_err(reg, err, errlen, "reading the applied logs");
    }
    db_finalize(st);
    return rc;
}
