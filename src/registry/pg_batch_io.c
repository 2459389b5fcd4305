/* pg_batch_io.c -- the PostgreSQL write path's database side: the rows a batch touches read in a
 * few bulk queries, and the changed rows written back in one multi-row statement per table, all
 * of them in one pipeline (one round trip). Rows travel as binary arrays unnested by the server
 * (libpq's binary format: no text escaping, no parsing of numbers). */
#include "registry/db_driver.h"
#include "registry/internal.h"
#include "registry/pg_batch.h"
#include "util/bigendian.h"
#include "util/err.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Array type OIDs of pg_type (fixed in every PostgreSQL) and their element types. */
#define OID_BYTEA 17
#define OID_INT8 20
#define OID_TEXT 25
#define OID_BYTEA_ARRAY 1001
#define OID_TEXT_ARRAY 1009
#define OID_INT8_ARRAY 1016

/* ---- binary arrays ---------------------------------------------------------------------- */

/* One array parameter in PostgreSQL's binary array format: a 20-byte header (one dimension, no
 * NULLs, element type, length, lower bound 1), then each element as a 4-byte length and its
 * bytes. */
struct arr {
    uint8_t *buf;
    size_t len, cap;
    uint32_t n;
    Oid elem;
    bool oom;
};

/* A binary-format int8 column (network order). */
static int64_t pq_int8(const char *s)
{
    return (int64_t)be_get64((const uint8_t *)s);
}

static void arr_begin(struct arr *a, Oid elem)
{
    a->len = 20;
    a->n = 0;
    a->elem = elem;
    a->oom = false;
    if (a->cap < 4096) {
        uint8_t *p = realloc(a->buf, 4096);
        if (p == NULL) {
            a->oom = true;
            return;
        }
        a->buf = p;
        a->cap = 4096;
    }
}

static void arr_put(struct arr *a, const void *p, size_t n)
{
    if (a->oom) {
        return;
    }
    if (a->len + 4 + n > a->cap) {
        size_t cap = a->cap * 2;
        while (a->len + 4 + n > cap) {
            cap *= 2;
        }
        uint8_t *q = realloc(a->buf, cap);
        if (q == NULL) {
            a->oom = true;
            return;
        }
        a->buf = q;
        a->cap = cap;
    }
    be_put32(a->buf + a->len, (uint32_t)n);
    if (n > 0) {
        memcpy(a->buf + a->len + 4, p, n);
    }
    a->len += 4 + n;
    a->n++;
}

static void arr_int8(struct arr *a, int64_t v)
{
    uint8_t be[8];
    be_put64(be, (uint64_t)v);
    arr_put(a, be, 8);
}

static void arr_text(struct arr *a, const char *s)
{
    arr_put(a, s, strlen(s));
}

static void arr_end(struct arr *a)
{
    if (a->oom) {
        return;
    }
    be_put32(a->buf, 1);
    be_put32(a->buf + 4, 0);
    be_put32(a->buf + 8, a->elem);
    be_put32(a->buf + 12, a->n);
    be_put32(a->buf + 16, 1);
}

static Oid array_type(Oid elem)
{
    return elem == OID_INT8 ? OID_INT8_ARRAY : elem == OID_TEXT ? OID_TEXT_ARRAY : OID_BYTEA_ARRAY;
}

/* ---- the columns a batch reads and writes ------------------------------------------------ */

enum col_kind { COL_INT8, COL_TEXT, COL_KEY };

struct col {
    const char *name;
    enum col_kind kind;
    size_t off, size; /* in struct pgb_bot */
};

#define BOT_INT(name)                                                                              \
    {                                                                                              \
        "" #name "", COL_INT8, offsetof(struct pgb_bot, name), 8                                   \
    }
#define BOT_TEXT(sql, name)                                                                        \
    {                                                                                              \
        sql, COL_TEXT, offsetof(struct pgb_bot, name), sizeof(((struct pgb_bot *)0)->name)         \
    }

/* Table bot's columns but id, in the order the loads read them. */
static const struct col bot_cols[] = {
    {"bot_key", COL_KEY, offsetof(struct pgb_bot, key), 16},
    BOT_TEXT("family", family),
    BOT_TEXT("host", host),
    BOT_TEXT("\"user\"", user),
    BOT_TEXT("os", os),
    BOT_TEXT("local_ip", local_ip),
    BOT_TEXT("campaign", campaign),
    BOT_TEXT("version", version),
    BOT_INT(first_seen_us),
    BOT_INT(last_seen_us),
    BOT_TEXT("src_ip", src_ip),
    BOT_INT(src_port),
    BOT_TEXT("dst_ip", dst_ip),
    BOT_INT(dst_port),
    BOT_INT(transport),
    BOT_TEXT("node", node),
    BOT_TEXT("cc", cc),
    BOT_INT(asn),
    BOT_TEXT("tags", tags),
    BOT_INT(contacts),
    BOT_INT(commanded_at_us),
    BOT_TEXT("authorisation", authorisation),
    BOT_INT(last_verdict),
    BOT_INT(last_decision_us),
    BOT_INT(seen_after_command),
    BOT_INT(last_seen_after_command_us),
};
#define BOT_COLS (sizeof(bot_cols) / sizeof(bot_cols[0]))

static const char *const rem_cols[REM_COLS] = {
    "send_decisions",    "first_send_us",    "dry_runs",        "first_dry_run_us",
    "commands_sent",     "first_command_us", "commands_failed", "first_failed_us",
    "seen_after",        "first_after_us",   "last_after_us",   "first_after_1h_us",
    "first_after_24h_us"};

/* Copies a text value read in binary form (not NUL-terminated) into a column of `cap` bytes. */
static void copy_text(char *out, size_t cap, const char *v, int len)
{
    size_t n = (size_t)len < cap - 1 ? (size_t)len : cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

/* ---- running statements ------------------------------------------------------------------ */

struct query {
    const char *sql;
    int nparams;
    struct arr *params[32];
    /* Called for each result holding rows (a whole result, or one row in single-row mode);
     * NULL for statements without rows. */
    int (*rows)(struct pg_batch *b, const PGresult *r, char *err, size_t errlen);
};

static int pq_error(struct pg_batch *b, const char *what, const PGresult *r, char *err,
                    size_t errlen)
{
    char msg[512];
    db_postgres_message(r != NULL ? PQresultErrorMessage(r) : PQerrorMessage(b->conn), msg,
                        sizeof(msg));
    return err_set(err, errlen, "registry: %s: %s", what, msg);
}

static int send_query(struct pg_batch *b, const struct query *q, char *err, size_t errlen)
{
    Oid types[32];
    const char *values[32];
    int lengths[32], formats[32];
    for (int i = 0; i < q->nparams; i++) {
        if (q->params[i]->oom) {
            return err_set(err, errlen, "registry: out of memory writing a batch");
        }
        types[i] = array_type(q->params[i]->elem);
        values[i] = (const char *)q->params[i]->buf;
        lengths[i] = (int)q->params[i]->len;
        formats[i] = 1;
    }
    if (!PQsendQueryParams(b->conn, q->sql, q->nparams, types, values, lengths, formats, 1)) {
        return pq_error(b, "sending a batch statement", NULL, err, errlen);
    }
    return 0;
}

/* Runs the queries in one pipeline (one round trip) inside the open transaction, handing rows
 * to each one's `rows`. Returns 0, or -1 with the first error (the server skips the rest; the
 * caller rolls back). */
static int run_pipeline(struct pg_batch *b, const struct query *q, int n, const char *what,
                        char *err, size_t errlen)
{
    if (n == 0) {
        return 0;
    }
    if (!PQenterPipelineMode(b->conn)) {
        return pq_error(b, what, NULL, err, errlen);
    }
    int rc = 0, sent = 0;
    for (; sent < n && rc == 0; sent++) {
        rc = send_query(b, &q[sent], err, errlen);
    }
    if (rc < 0) {
        sent--;
    }
    if (!PQpipelineSync(b->conn)) {
        rc = rc < 0 ? rc : pq_error(b, what, NULL, err, errlen);
    }
    /* Each query's results end with a NULL; then comes the sync. A broken connection gives
     * NULLs only: bounded by the queries sent. */
    int done = 0;
    for (int nulls = 0; nulls <= sent;) {
        PGresult *r = PQgetResult(b->conn);
        if (r == NULL) {
            nulls++;
            done++;
            continue;
        }
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_PIPELINE_SYNC) {
            PQclear(r);
            break;
        }
        if (st == PGRES_TUPLES_OK || st == PGRES_SINGLE_TUPLE) {
            if (rc == 0 && done < sent && q[done].rows != NULL) {
                rc = q[done].rows(b, r, err, errlen);
            }
        } else if (st != PGRES_COMMAND_OK && rc == 0) {
            rc = pq_error(b, what, st == PGRES_PIPELINE_ABORTED ? NULL : r, err, errlen);
        }
        PQclear(r);
    }
    if (!PQexitPipelineMode(b->conn) && rc == 0) {
        rc = pq_error(b, what, NULL, err, errlen);
    }
    return rc;
}

/* ---- reading --------------------------------------------------------------------------- */

static int ip_rows(struct pg_batch *b, const PGresult *r, char *err, size_t errlen)
{
    for (int row = 0; row < PQntuples(r); row++) {
        int len = PQgetlength(r, row, 0);
        uint32_t i =
            len <= 16 ? pgb_ip_find(b, (const uint8_t *)PQgetvalue(r, row, 0), len) : PGB_NONE;
        if (i == PGB_NONE) {
            return err_set(err, errlen,
                           "registry: batch: the database returned an address "
                           "that was not asked for");
        }
        struct pgb_ip *ip = &b->ips[i];
        ip->state = PGB_LIVE;
        ip->in_db = true;
        copy_text(ip->cc, sizeof(ip->cc), PQgetvalue(r, row, 1), PQgetlength(r, row, 1));
        int64_t *v[] = {&ip->asn, &ip->first_seen_us, &ip->last_seen_us, &ip->contacts,
                        &ip->identified};
        for (int c = 0; c < 5; c++) {
            *v[c] = pq_int8(PQgetvalue(r, row, 2 + c));
        }
    }
    return 0;
}

static int bot_rows(struct pg_batch *b, const PGresult *r, char *err, size_t errlen)
{
    for (int row = 0; row < PQntuples(r); row++) {
        uint32_t i = PQgetlength(r, row, 1) == 16
                         ? pgb_bot_find(b, (const uint8_t *)PQgetvalue(r, row, 1))
                         : PGB_NONE;
        if (i == PGB_NONE) {
            return err_set(err, errlen,
                           "registry: batch: the database returned a bot that was not asked for");
        }
        struct pgb_bot *bot = &b->bots[i];
        bot->state = PGB_LIVE;
        bot->in_db = true;
        bot->id = pq_int8(PQgetvalue(r, row, 0));
        for (size_t c = 1; c < BOT_COLS; c++) {
            const char *v = PQgetvalue(r, row, (int)c + 1);
            char *field = (char *)bot + bot_cols[c].off;
            if (bot_cols[c].kind == COL_INT8) {
                int64_t x = pq_int8(v);
                memcpy(field, &x, sizeof(x));
            } else {
                copy_text(field, bot_cols[c].size, v, PQgetlength(r, row, (int)c + 1));
            }
        }
    }
    return 0;
}

/* Rows whose first column is a bot's index in the batch. */
static uint32_t row_bot(struct pg_batch *b, const PGresult *r, int row)
{
    uint64_t i = (uint64_t)pq_int8(PQgetvalue(r, row, 0));
    return i < b->bots_n ? (uint32_t)i : PGB_NONE;
}

static int rem_rows(struct pg_batch *b, const PGresult *r, char *err, size_t errlen)
{
    for (int row = 0; row < PQntuples(r); row++) {
        uint32_t bi = row_bot(b, r, row);
        char auth[64];
        copy_text(auth, sizeof(auth), PQgetvalue(r, row, 1), PQgetlength(r, row, 1));
        uint32_t ri = bi == PGB_NONE ? PGB_NONE : pgb_rem_add(b, bi, auth);
        if (ri == PGB_NONE) {
            return err_set(err, errlen, "registry: batch: reading remediation rows failed");
        }
        b->rems[ri].in_db = true;
        for (int c = 0; c < REM_COLS; c++) {
            b->rems[ri].v[c] = pq_int8(PQgetvalue(r, row, 2 + c));
        }
    }
    return 0;
}

static int pair_rows(struct pg_batch *b, enum pgb_set s, const PGresult *r, char *err,
                     size_t errlen)
{
    for (int row = 0; row < PQntuples(r); row++) {
        uint32_t bi = row_bot(b, r, row);
        int64_t day = pq_int8(PQgetvalue(r, row, 1));
        if (bi == PGB_NONE || pgb_pair_put(b, s, day, bi, PAIR_PRESENT) == PGB_NONE) {
            return err_set(err, errlen, "registry: batch: reading per-day sets failed");
        }
    }
    return 0;
}

static int day_bot_rows(struct pg_batch *b, const PGresult *r, char *err, size_t errlen)
{
    return pair_rows(b, SET_DAY_BOT, r, err, errlen);
}

static int day_commanded_rows(struct pg_batch *b, const PGresult *r, char *err, size_t errlen)
{
    return pair_rows(b, SET_DAY_COMMANDED, r, err, errlen);
}

/* Keys whose bot rows may be needed: each contact's (its identity's, or its address's when it
 * has none), the address key of an identified contact from an address not known as identified
 * (the row a fold would absorb), every decision's and command's. */
struct want {
    char family[16];     /* what the address key is made of (pgb_anon_key), made only when */
    struct net_addr src; /* the address turns out to be stored and not yet identified */
    uint32_t ip;         /* the contact's source_ip row */
};

static int want_bot(struct pg_batch *b, const uint8_t key[16], bool anon, bool rem)
{
    uint32_t i = pgb_bot_find(b, key);
    if (i == PGB_NONE && (i = pgb_bot_add(b, key)) == PGB_NONE) {
        return -1;
    }
    b->bots[i].anon |= anon;
    b->bots[i].want_rem |= rem;
    return 0;
}

/* First pass over the records: every address and key they name, as rows not yet read. */
static int collect_keys(struct pg_batch *b, struct want **anon_of, size_t *anon_n, char *err,
                        size_t errlen)
{
    struct record rec;
    struct want *w = NULL;
    size_t n = 0, cap = 0;
    b->day_min = INT64_MAX;
    b->day_max = INT64_MIN;
    for (size_t i = 0; i < b->offsets_n; i++) {
        if (pgb_record(b, i, &rec, err, errlen) < 0) {
            free(w);
            return -1;
        }
        uint8_t key[16];
        int rc = 0;
        struct contact polled;
        uint64_t last_poll_us = 0;
        if (rec.kind == RECORD_HEARTBEATS && rec.u.heartbeats.count > 0 &&
            rec.u.heartbeats.src.family != 0) {
            /* Its first and last polls are applied as contacts of the same bot and address. */
            pgb_heartbeat_contact(&rec.u.heartbeats, &polled);
            last_poll_us = rec.u.heartbeats.time_us;
            rec.kind = RECORD_CONTACT;
            rec.u.contact = polled;
        }
        if (rec.kind == RECORD_CONTACT) {
            const struct contact *c = &rec.u.contact;
            int len = registry_internal_ip_key_len(&c->src);
            uint32_t ip = pgb_ip_find(b, c->src.ip, len);
            if (ip == PGB_NONE && (ip = pgb_ip_add(b, c->src.ip, len)) == PGB_NONE) {
                rc = -1;
            }
            int64_t day = (int64_t)(c->time_us / 86400000000ULL);
            int64_t last_day = last_poll_us ? (int64_t)(last_poll_us / 86400000000ULL) : day;
            b->day_min = day < b->day_min ? day : b->day_min;
            b->day_max = last_day > b->day_max ? last_day : b->day_max;
            bool identified = registry_internal_key_from_hex(c->bot_key, key);
            if (rc == 0 && identified) {
                rc = want_bot(b, key, false, false);
                if (rc == 0 && n == cap) {
                    cap = cap ? cap * 2 : 256;
                    struct want *nw = realloc(w, cap * sizeof(*w));
                    rc = nw == NULL ? -1 : 0;
                    w = nw != NULL ? nw : w;
                }
                if (rc == 0) {
                    memcpy(w[n].family, c->family, sizeof(w[n].family));
                    w[n].src = c->src;
                    w[n++].ip = ip;
                }
            } else if (rc == 0) {
                pgb_anon_key(c, key);
                rc = want_bot(b, key, true, false);
            }
        } else if (rec.kind == RECORD_DECISION || rec.kind == RECORD_COMMAND_SENT ||
                   rec.kind == RECORD_COMMAND_FAILED) {
            const char *hex =
                rec.kind == RECORD_DECISION ? rec.u.decision.bot_key : rec.u.command.bot_key;
            if (registry_internal_key_from_hex(hex, key)) {
                rc = want_bot(b, key, false, true);
            }
        }
        if (rc < 0) {
            free(w);
            return err_set(err, errlen, "registry: out of memory reading a batch");
        }
    }
    *anon_of = w;
    *anon_n = n;
    return 0;
}

int pgb_load(struct pg_batch *b, char *err, size_t errlen)
{
    struct want *anon_of = NULL;
    size_t anon_n = 0;
    if (collect_keys(b, &anon_of, &anon_n, err, errlen) < 0) {
        return -1;
    }
    struct arr a[7] = {{0}};
    int rc = -1;
    /* The addresses. */
    arr_begin(&a[0], OID_BYTEA);
    for (size_t i = 0; i < b->ips_n; i++) {
        arr_put(&a[0], b->ips[i].key, b->ips[i].len);
    }
    arr_end(&a[0]);
    /* Every statement of the batch finds its rows by key, one index probe each. Without
     * statistics on the keys given (an array, a staging table) the planner may prefer hashing a
     * whole table, which costs the table's size at every batch, however small the batch:
     * measured 0.8 ms of a 20-record batch's UPDATE at 5,000 bots, and growing with the table.
     * Hashing is off until the transaction ends. */
    struct query q[3] = {
        {.sql = "SET LOCAL enable_hashjoin = off", .nparams = 0},
        {.sql = "SET LOCAL enable_mergejoin = off", .nparams = 0},
        {
            .sql = "SELECT ip, cc, asn, first_seen_us, last_seen_us, contacts, identified"
                   " FROM source_ip WHERE ip IN (SELECT unnest($1::bytea[]))",
            .nparams = 1,
            .params = {&a[0]},
            .rows = ip_rows,
        }};
    if (run_pipeline(b, q, b->ips_n > 0 ? 3 : 2, "reading addresses", err, errlen) < 0) {
        goto out;
    }
    /* Address keys an identified contact may fold: from a stored address not yet known as
     * identified. (An address not stored has no address-keyed bot stored either: the contact
     * that made such a row made the address's row too. One made by this batch is found as the
     * batch's own.) */
    for (size_t i = 0; i < anon_n; i++) {
        const struct pgb_ip *ip = &b->ips[anon_of[i].ip];
        if (!(ip->state == PGB_LIVE && !ip->identified)) {
            continue;
        }
        struct contact c;
        memset(&c, 0, sizeof(c));
        memcpy(c.family, anon_of[i].family, sizeof(c.family));
        c.src = anon_of[i].src;
        uint8_t key[16];
        pgb_anon_key(&c, key);
        if (want_bot(b, key, true, false) < 0) {
            err_set(err, errlen, "registry: out of memory reading a batch");
            goto out;
        }
    }
    /* The bots. */
    arr_begin(&a[0], OID_BYTEA);
    for (size_t i = 0; i < b->bots_n; i++) {
        arr_put(&a[0], b->bots[i].key, 16);
    }
    arr_end(&a[0]);
    char sql[1024];
    size_t n = (size_t)snprintf(sql, sizeof(sql), "SELECT id");
    for (size_t c = 0; c < BOT_COLS; c++) {
        n += (size_t)snprintf(sql + n, sizeof(sql) - n, ", %s", bot_cols[c].name);
    }
    snprintf(sql + n, sizeof(sql) - n, " FROM bot WHERE bot_key IN (SELECT unnest($1::bytea[]))");
    q[0] = (struct query){.sql = sql, .nparams = 1, .params = {&a[0]}, .rows = bot_rows};
    if (run_pipeline(b, q, b->bots_n > 0 ? 1 : 0, "reading bots", err, errlen) < 0) {
        goto out;
    }
    /* What the rules need of some bots: the remediation rows of every bot commanded or named by
     * a decision or command, and its day_commanded pairs on the batch's days (only a commanded
     * one has any); all day_bot pairs of the address-keyed ones (what a fold deletes). */
    for (int k = 0; k < 7; k++) {
        arr_begin(&a[k], OID_INT8);
    }
    for (size_t i = 0; i < b->bots_n; i++) {
        struct pgb_bot *bot = &b->bots[i];
        if (!bot->in_db) {
            continue;
        }
        if (bot->commanded_at_us > 0 || bot->want_rem) {
            arr_int8(&a[0], (int64_t)i);
            arr_int8(&a[1], bot->id);
        }
        if (bot->anon) {
            bot->days_read = true;
            arr_int8(&a[3], (int64_t)i);
            arr_int8(&a[4], bot->id);
            arr_int8(&a[5], (int64_t)(bot->first_seen_us / 86400000000LL));
            arr_int8(&a[6], (int64_t)(bot->last_seen_us / 86400000000LL));
        }
    }
    arr_int8(&a[2], b->day_min == INT64_MAX ? 0 : b->day_min);
    arr_int8(&a[2], b->day_max == INT64_MIN ? 0 : b->day_max);
    for (int k = 0; k < 7; k++) {
        arr_end(&a[k]);
    }
    int nq = 0;
    char remsql[1024];
    if (a[0].n > 0) {
        n = (size_t)snprintf(remsql, sizeof(remsql), "SELECT a.i, r.authorisation");
        for (int c = 0; c < REM_COLS; c++) {
            n += (size_t)snprintf(remsql + n, sizeof(remsql) - n, ", r.%s", rem_cols[c]);
        }
        snprintf(remsql + n, sizeof(remsql) - n,
                 " FROM unnest($1::int8[], $2::int8[]) AS a(i, id)"
                 " JOIN remediation r ON r.bot = a.id");
        q[nq++] =
            (struct query){.sql = remsql, .nparams = 2, .params = {&a[0], &a[1]}, .rows = rem_rows};
        /* $3: the batch's first and last day. */
        q[nq++] = (struct query){
            .sql = "SELECT a.i, g.d FROM unnest($1::int8[], $2::int8[]) AS a(i, id),"
                   " generate_series(($3::int8[])[1], ($3::int8[])[2]) AS g(d)"
                   " WHERE EXISTS (SELECT 1 FROM day_commanded WHERE day = g.d AND bot = a.id)",
            .nparams = 3,
            .params = {&a[0], &a[1], &a[2]},
            .rows = day_commanded_rows};
    }
    if (a[3].n > 0) {
        q[nq++] = (struct query){
            .sql = "SELECT a.i, g.d FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[])"
                   " AS a(i, id, f, l), generate_series(a.f, a.l) AS g(d)"
                   " WHERE EXISTS (SELECT 1 FROM day_bot WHERE day = g.d AND bot = a.id)",
            .nparams = 4,
            .params = {&a[3], &a[4], &a[5], &a[6]},
            .rows = day_bot_rows};
    }
    rc = run_pipeline(b, q, nq, "reading remediation and per-day rows", err, errlen);
out:
    for (int k = 0; k < 7; k++) {
        free(a[k].buf);
    }
    free(anon_of);
    return rc;
}

int pgb_pair_stored(struct pg_batch *b, enum pgb_set s, int64_t day, uint32_t member, char *err,
                    size_t errlen)
{
    uint8_t dayv[8], id[8];
    be_put64(dayv, (uint64_t)day);
    const char *values[2] = {(const char *)dayv, (const char *)id};
    int lengths[2] = {8, 8}, formats[2] = {1, 1};
    Oid types[2] = {OID_INT8, OID_INT8};
    const char *sql = "SELECT 1 FROM day_bot WHERE day = $1 AND bot = $2";
    if (s == SET_DAY_IP) {
        sql = "SELECT 1 FROM day_ip WHERE day = $1 AND ip = $2";
        types[1] = OID_BYTEA;
        values[1] = (const char *)b->ips[member].key;
        lengths[1] = b->ips[member].len;
    } else {
        be_put64(id, (uint64_t)b->bots[member].id);
    }
    b->round_trips++;
    PGresult *r = PQexecParams(b->conn, sql, 2, types, values, lengths, formats, 1);
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK
                 ? PQntuples(r) > 0
                 : pq_error(b, "reading a per-day set", r, err, errlen);
    PQclear(r);
    return rc;
}

/* ---- writing ----------------------------------------------------------------------------- */

/* Rows in COPY's binary format: a 19-byte header, each row as a 2-byte field count and its
 * fields (4-byte length, bytes), a 2-byte trailer of -1. */
struct copybuf {
    uint8_t *buf;
    size_t len, cap;
    uint32_t rows;
    bool oom;
};

static void cb_raw(struct copybuf *c, const void *p, size_t n)
{
    if (c->oom) {
        return;
    }
    if (c->len + n > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 65536;
        while (c->len + n > cap) {
            cap *= 2;
        }
        uint8_t *q = realloc(c->buf, cap);
        if (q == NULL) {
            c->oom = true;
            return;
        }
        c->buf = q;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, p, n);
    c->len += n;
}

static void cb_begin(struct copybuf *c)
{
    static const uint8_t header[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n', 0};
    c->len = 0;
    c->rows = 0;
    c->oom = false;
    cb_raw(c, header, sizeof(header));
}

static void cb_row(struct copybuf *c, int fields)
{
    uint8_t v[2] = {(uint8_t)(fields >> 8), (uint8_t)fields};
    cb_raw(c, v, 2);
    c->rows++;
}

static void cb_field(struct copybuf *c, const void *p, size_t n)
{
    uint8_t be[4];
    be_put32(be, (uint32_t)n);
    cb_raw(c, be, 4);
    cb_raw(c, p, n);
}

static void cb_int8(struct copybuf *c, int64_t v)
{
    uint8_t be[8];
    be_put64(be, (uint64_t)v);
    cb_field(c, be, 8);
}

static void cb_text(struct copybuf *c, const char *s)
{
    cb_field(c, s, strlen(s));
}

static void cb_end(struct copybuf *c)
{
    static const uint8_t trailer[2] = {0xff, 0xff};
    cb_raw(c, trailer, 2);
}

/* Runs `COPY ... FROM STDIN (FORMAT binary)` with the rows in c. Returns 0, or -1 with err set
 * and *sqlstate (when given) the server's error code. */
static int copy_in(struct pg_batch *b, const char *sql, struct copybuf *c, char *sqlstate,
                   char *err, size_t errlen)
{
    if (c->oom) {
        return err_set(err, errlen, "registry: out of memory writing a batch");
    }
    PGresult *r = PQexec(b->conn, sql);
    if (PQresultStatus(r) != PGRES_COPY_IN) {
        int rc = pq_error(b, "writing a batch (COPY)", r, err, errlen);
        PQclear(r);
        return rc;
    }
    PQclear(r);
    int ok = PQputCopyData(b->conn, (const char *)c->buf, (int)c->len) == 1;
    ok = PQputCopyEnd(b->conn, ok ? NULL : "sinkd could not send the rows") == 1 && ok;
    int rc = 0;
    while ((r = PQgetResult(b->conn)) != NULL) {
        if (PQresultStatus(r) != PGRES_COMMAND_OK && rc == 0) {
            const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            if (sqlstate != NULL) {
                snprintf(sqlstate, 6, "%s", state != NULL ? state : "");
            }
            rc = pq_error(b, "writing a batch (COPY)", r, err, errlen);
        }
        PQclear(r);
    }
    if (!ok && rc == 0) {
        rc = pq_error(b, "writing a batch (COPY)", NULL, err, errlen);
    }
    return rc;
}

static int exec_simple(struct pg_batch *b, const char *sql, const char *what, char *err,
                       size_t errlen)
{
    PGresult *r = PQexec(b->conn, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? 0 : pq_error(b, what, r, err, errlen);
    PQclear(r);
    return rc;
}

/* Ids for the bots the batch made, from the table's own sequence, in the order they were made
 * (as one insert after the other would take them): one call takes the whole range, which is
 * safe because every writer holds the writers' lock (db_lock_writers) while it writes. */
static int assign_ids(struct pg_batch *b, char *err, size_t errlen)
{
    if (b->made == 0) {
        return 0;
    }
    char count[24];
    snprintf(count, sizeof(count), "%u", b->made);
    const char *values[1] = {count};
    b->round_trips++;
    PGresult *r = PQexecParams(b->conn,
                               "SELECT setval(s, nextval(s) + $1::int8 - 1)"
                               " FROM pg_get_serial_sequence('bot', 'id') AS s",
                               1, NULL, values, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        int rc = pq_error(b, "numbering new bots", r, err, errlen);
        PQclear(r);
        return rc;
    }
    int64_t last = pq_int8(PQgetvalue(r, 0, 0));
    PQclear(r);
    for (size_t i = 0; i < b->bots_n; i++) {
        struct pgb_bot *bot = &b->bots[i];
        if (!bot->in_db && bot->state != PGB_ABSENT) {
            bot->id = last - (int64_t)b->made + 1 + (int64_t)bot->made;
        }
    }
    return 0;
}

/* "(id, bot_key, family, ...)": the columns the bot rows are copied with. */
static void bot_column_list(char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "(id");
    for (size_t c = 0; c < BOT_COLS; c++) {
        n += (size_t)snprintf(out + n, cap - n, ", %s", bot_cols[c].name);
    }
    snprintf(out + n, cap - n, ")");
}

/* The bot rows `pick` selects, as COPY rows of bot_column_list(). */
static void bot_copy(struct pg_batch *b, struct copybuf *c, bool (*pick)(const struct pgb_bot *))
{
    cb_begin(c);
    for (size_t i = 0; i < b->bots_n; i++) {
        const struct pgb_bot *bot = &b->bots[i];
        if (!pick(bot)) {
            continue;
        }
        cb_row(c, (int)BOT_COLS + 1);
        cb_int8(c, bot->id);
        for (size_t k = 0; k < BOT_COLS; k++) {
            const char *field = (const char *)bot + bot_cols[k].off;
            if (bot_cols[k].kind == COL_INT8) {
                int64_t v;
                memcpy(&v, field, sizeof(v));
                cb_int8(c, v);
            } else if (bot_cols[k].kind == COL_TEXT) {
                cb_text(c, field);
            } else {
                cb_field(c, field, bot_cols[k].size);
            }
        }
    }
    cb_end(c);
}

static bool bot_changed(const struct pgb_bot *bot)
{
    return bot->in_db && bot->state == PGB_LIVE && bot->dirty;
}

static bool bot_made(const struct pgb_bot *bot)
{
    return !bot->in_db && bot->state == PGB_LIVE;
}

/* The changed (in_db) or new address rows as COPY rows of source_ip's columns. */
static void ip_copy(struct pg_batch *b, struct copybuf *c, bool in_db)
{
    cb_begin(c);
    for (size_t i = 0; i < b->ips_n; i++) {
        const struct pgb_ip *ip = &b->ips[i];
        if (ip->state != PGB_LIVE || !ip->dirty || ip->in_db != in_db) {
            continue;
        }
        cb_row(c, 7);
        cb_field(c, ip->key, ip->len);
        cb_text(c, ip->cc);
        cb_int8(c, ip->asn);
        cb_int8(c, ip->first_seen_us);
        cb_int8(c, ip->last_seen_us);
        cb_int8(c, ip->contacts);
        cb_int8(c, ip->identified);
    }
    cb_end(c);
}

/* The pairs of set s in `state` as (day, member) COPY rows: bot ids, or address bytes. */
static void pair_copy(struct pg_batch *b, enum pgb_set s, uint8_t state, struct copybuf *c)
{
    cb_begin(c);
    for (size_t i = 0; i < b->set[s].pairs_n; i++) {
        const struct pgb_pair *pair = &b->set[s].pairs[i];
        if (pair->state != state) {
            continue;
        }
        cb_row(c, 2);
        cb_int8(c, pair->day);
        if (s == SET_DAY_IP) {
            cb_field(c, b->ips[pair->member].key, b->ips[pair->member].len);
        } else {
            cb_int8(c, b->bots[pair->member].id);
        }
    }
    cb_end(c);
}

/* The same pairs as (day, member) arrays, for the ON CONFLICT form. */
static void pair_arrays(struct pg_batch *b, enum pgb_set s, uint8_t state, struct arr *p)
{
    arr_begin(&p[0], OID_INT8);
    arr_begin(&p[1], s == SET_DAY_IP ? OID_BYTEA : OID_INT8);
    for (size_t i = 0; i < b->set[s].pairs_n; i++) {
        const struct pgb_pair *pair = &b->set[s].pairs[i];
        if (pair->state != state) {
            continue;
        }
        arr_int8(&p[0], pair->day);
        if (s == SET_DAY_IP) {
            arr_put(&p[1], b->ips[pair->member].key, b->ips[pair->member].len);
        } else {
            arr_int8(&p[1], b->bots[pair->member].id);
        }
    }
    arr_end(&p[0]);
    arr_end(&p[1]);
}

/* Everything the store sends, kept together so one function frees it. */
struct store {
    struct copybuf copy;
    struct arr gone[3]; /* day_bot pairs to delete (day, id); bot ids to delete */
    struct arr pairs[SET_COUNT][2];
    struct arr daycc[5], dayrem[4], rem[REM_COLS + 2];
    char cols[1024], sql[4096], rem_sql[2048];
};

static void store_free(struct store *s)
{
    free(s->copy.buf);
    struct arr *all[] = {s->gone,  s->pairs[0], s->pairs[1], s->pairs[2],
                         s->daycc, s->dayrem,   s->rem};
    size_t counts[] = {3, 2, 2, 2, 5, 4, REM_COLS + 2};
    for (size_t k = 0; k < sizeof(all) / sizeof(all[0]); k++) {
        for (size_t i = 0; i < counts[k]; i++) {
            free(all[k][i].buf);
        }
    }
    free(s);
}

#define Q(sqltext, ...)                                                                            \
    do {                                                                                           \
        struct arr *ps_[] = {__VA_ARGS__};                                                         \
        if (ps_[0]->n > 0) {                                                                       \
            q[nq].sql = (sqltext);                                                                 \
            q[nq].nparams = (int)(sizeof(ps_) / sizeof(ps_[0]));                                   \
            memcpy(q[nq].params, ps_, sizeof(ps_));                                                \
            q[nq++].rows = NULL;                                                                   \
        }                                                                                          \
    } while (0)

static const char *const set_table[SET_COUNT] = {"day_bot", "day_ip", "day_commanded"};

/* New pairs, copied straight into their tables: none can be there already (a member's stored
 * days end at its last contact, and the batch asked about every earlier day), so the fast COPY
 * path is taken under a savepoint. Should one be there all the same (a registry edited by hand),
 * the savepoint is rolled back and the pairs go in by INSERT ... ON CONFLICT DO NOTHING, as the
 * per-record path does. Returns 1 copied, 0 left to the ON CONFLICT form, -1 error. */
static int pairs_copy(struct pg_batch *b, struct store *s, char *err, size_t errlen)
{
    bool any = false;
    for (int k = 0; k < SET_COUNT; k++) {
        for (size_t i = 0; i < b->set[k].pairs_n && !any; i++) {
            any = b->set[k].pairs[i].state == PAIR_INSERT;
        }
    }
    if (!any) {
        return 1;
    }
    if (exec_simple(b, "SAVEPOINT sinkd_pairs", "writing a batch", err, errlen) < 0) {
        return -1;
    }
    char state[6] = "";
    int rc = 0;
    for (int k = 0; k < SET_COUNT && rc == 0; k++) {
        pair_copy(b, (enum pgb_set)k, PAIR_INSERT, &s->copy);
        if (s->copy.rows > 0) {
            snprintf(s->sql, sizeof(s->sql), "COPY %s(day, %s) FROM STDIN (FORMAT binary)",
                     set_table[k], k == SET_DAY_IP ? "ip" : "bot");
            rc = copy_in(b, s->sql, &s->copy, state, err, errlen);
        }
    }
    if (rc == 0) {
        return exec_simple(b, "RELEASE SAVEPOINT sinkd_pairs", "writing a batch", err, errlen) < 0
                   ? -1
                   : 1;
    }
    if (strcmp(state, "23505") != 0) {
        return -1;
    }
    b->pair_conflicts++;
    return exec_simple(b, "ROLLBACK TO SAVEPOINT sinkd_pairs", "writing a batch", err, errlen) < 0
               ? -1
               : 0;
}

int pgb_store(struct pg_batch *b, char *err, size_t errlen)
{
    if (assign_ids(b, err, errlen) < 0) {
        return -1;
    }
    struct store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return err_set(err, errlen, "registry: out of memory writing a batch");
    }
    struct query q[16];
    int nq = 0, rc = -1;

    /* Folded address-keyed bots first (a key folded and made again is inserted below). */
    pair_arrays(b, SET_DAY_BOT, PAIR_DELETE, s->gone);
    Q("DELETE FROM day_bot USING unnest($1::int8[], $2::int8[]) AS u(day, bot)"
      " WHERE day_bot.day = u.day AND day_bot.bot = u.bot",
      &s->gone[0], &s->gone[1]);
    arr_begin(&s->gone[2], OID_INT8);
    for (size_t i = 0; i < b->bots_n; i++) {
        if (b->bots[i].in_db && b->bots[i].state == PGB_GONE) {
            arr_int8(&s->gone[2], b->bots[i].id);
        }
    }
    arr_end(&s->gone[2]);
    Q("DELETE FROM bot WHERE id IN (SELECT unnest($1::int8[]))", &s->gone[2]);
    if (run_pipeline(b, q, nq, "writing a batch", err, errlen) < 0) {
        goto out;
    }
    nq = 0;

    /* Changed rows go through staging tables of this session (no WAL), new rows straight into
     * their tables: COPY is the server's cheapest way in. A second write in one transaction (a
     * reader's query inside the open batch) finds the staging tables still full. */
    bot_column_list(s->cols, sizeof(s->cols));
    if (exec_simple(b,
                    b->staged ? "TRUNCATE sinkd_stage_bot, sinkd_stage_ip"
                              : "CREATE TEMP TABLE IF NOT EXISTS sinkd_stage_bot (LIKE bot)"
                                " ON COMMIT DELETE ROWS;"
                                " CREATE TEMP TABLE IF NOT EXISTS sinkd_stage_ip (LIKE source_ip)"
                                " ON COMMIT DELETE ROWS",
                    "making the staging tables", err, errlen) < 0) {
        goto out;
    }
    b->staged = true;
    bot_copy(b, &s->copy, bot_changed);
    snprintf(s->sql, sizeof(s->sql), "COPY sinkd_stage_bot%s FROM STDIN (FORMAT binary)", s->cols);
    if (s->copy.rows > 0 && copy_in(b, s->sql, &s->copy, NULL, err, errlen) < 0) {
        goto out;
    }
    bool bots_staged = s->copy.rows > 0;
    bot_copy(b, &s->copy, bot_made);
    snprintf(s->sql, sizeof(s->sql), "COPY bot%s FROM STDIN (FORMAT binary)", s->cols);
    if (s->copy.rows > 0 && copy_in(b, s->sql, &s->copy, NULL, err, errlen) < 0) {
        goto out;
    }
    const char *ip_cols = "(ip, cc, asn, first_seen_us, last_seen_us, contacts, identified) FROM "
                          "STDIN (FORMAT binary)";
    ip_copy(b, &s->copy, true);
    snprintf(s->sql, sizeof(s->sql), "COPY sinkd_stage_ip%s", ip_cols);
    if (s->copy.rows > 0 && copy_in(b, s->sql, &s->copy, NULL, err, errlen) < 0) {
        goto out;
    }
    bool ips_staged = s->copy.rows > 0;
    ip_copy(b, &s->copy, false);
    snprintf(s->sql, sizeof(s->sql), "COPY source_ip%s", ip_cols);
    if (s->copy.rows > 0 && copy_in(b, s->sql, &s->copy, NULL, err, errlen) < 0) {
        goto out;
    }
    int copied = pairs_copy(b, s, err, errlen);
    if (copied < 0) {
        goto out;
    }

    /* One pipeline for the rest: merges from the staging tables, counters, remediation. */
    if (bots_staged) {
        size_t n = (size_t)snprintf(s->sql, sizeof(s->sql), "UPDATE bot SET ");
        for (size_t c = 1; c < BOT_COLS; c++) {
            n += (size_t)snprintf(s->sql + n, sizeof(s->sql) - n, "%s%s = s.%s", c > 1 ? ", " : "",
                                  bot_cols[c].name, bot_cols[c].name);
        }
        snprintf(s->sql + n, sizeof(s->sql) - n, " FROM sinkd_stage_bot s WHERE bot.id = s.id");
        q[nq++] = (struct query){.sql = s->sql, .nparams = 0};
    }
    if (ips_staged) {
        q[nq++] = (struct query){
            .sql = "UPDATE source_ip SET cc = s.cc, asn = s.asn, first_seen_us = s.first_seen_us,"
                   " last_seen_us = s.last_seen_us, contacts = s.contacts,"
                   " identified = s.identified FROM sinkd_stage_ip s WHERE source_ip.ip = s.ip",
            .nparams = 0};
    }
    if (copied == 0) {
        for (int k = 0; k < SET_COUNT; k++) {
            pair_arrays(b, (enum pgb_set)k, PAIR_INSERT, s->pairs[k]);
        }
        Q("INSERT INTO day_bot(day, bot) SELECT * FROM unnest($1::int8[], $2::int8[])"
          " ON CONFLICT DO NOTHING",
          &s->pairs[SET_DAY_BOT][0], &s->pairs[SET_DAY_BOT][1]);
        Q("INSERT INTO day_ip(day, ip) SELECT * FROM unnest($1::int8[], $2::bytea[])"
          " ON CONFLICT DO NOTHING",
          &s->pairs[SET_DAY_IP][0], &s->pairs[SET_DAY_IP][1]);
        Q("INSERT INTO day_commanded(day, bot) SELECT * FROM unnest($1::int8[], $2::int8[])"
          " ON CONFLICT DO NOTHING",
          &s->pairs[SET_DAY_COMMANDED][0], &s->pairs[SET_DAY_COMMANDED][1]);
    }

    /* Counters, added to the stored ones. */
    Oid cct[5] = {OID_INT8, OID_TEXT, OID_INT8, OID_INT8, OID_INT8};
    for (int c = 0; c < 5; c++) {
        arr_begin(&s->daycc[c], cct[c]);
    }
    for (size_t i = 0; i < b->daycc_n; i++) {
        arr_int8(&s->daycc[0], b->daycc[i].day);
        arr_text(&s->daycc[1], b->daycc[i].cc);
        arr_int8(&s->daycc[2], b->daycc[i].bots);
        arr_int8(&s->daycc[3], b->daycc[i].ips);
        arr_int8(&s->daycc[4], b->daycc[i].contacts);
    }
    for (int c = 0; c < 5; c++) {
        arr_end(&s->daycc[c]);
    }
    Q("INSERT INTO day_cc(day, cc, bots, ips, contacts) SELECT * FROM unnest($1::int8[],"
      " $2::text[], $3::int8[], $4::int8[], $5::int8[]) ON CONFLICT(day, cc) DO UPDATE SET"
      " bots = day_cc.bots + excluded.bots, ips = day_cc.ips + excluded.ips,"
      " contacts = day_cc.contacts + excluded.contacts",
      &s->daycc[0], &s->daycc[1], &s->daycc[2], &s->daycc[3], &s->daycc[4]);
    for (int c = 0; c < 4; c++) {
        arr_begin(&s->dayrem[c], OID_INT8);
    }
    for (size_t i = 0; i < b->dayrem_n; i++) {
        arr_int8(&s->dayrem[0], b->dayrem[i].day);
        arr_int8(&s->dayrem[1], b->dayrem[i].sent);
        arr_int8(&s->dayrem[2], b->dayrem[i].failed);
        arr_int8(&s->dayrem[3], b->dayrem[i].seen);
    }
    for (int c = 0; c < 4; c++) {
        arr_end(&s->dayrem[c]);
    }
    Q("INSERT INTO day_remediation(day, commands_sent, commands_failed, commanded_seen)"
      " SELECT * FROM unnest($1::int8[], $2::int8[], $3::int8[], $4::int8[])"
      " ON CONFLICT(day) DO UPDATE SET"
      " commands_sent = day_remediation.commands_sent + excluded.commands_sent,"
      " commands_failed = day_remediation.commands_failed + excluded.commands_failed,"
      " commanded_seen = day_remediation.commanded_seen + excluded.commanded_seen",
      &s->dayrem[0], &s->dayrem[1], &s->dayrem[2], &s->dayrem[3]);

    /* Remediation rows: their whole state (every row of their bots was read). */
    arr_begin(&s->rem[0], OID_INT8);
    arr_begin(&s->rem[1], OID_TEXT);
    for (int c = 0; c < REM_COLS; c++) {
        arr_begin(&s->rem[c + 2], OID_INT8);
    }
    for (size_t i = 0; i < b->rems_n; i++) {
        const struct pgb_rem *r = &b->rems[i];
        if (!r->dirty) {
            continue;
        }
        arr_int8(&s->rem[0], b->bots[r->bot].id);
        arr_text(&s->rem[1], r->authorisation);
        for (int c = 0; c < REM_COLS; c++) {
            arr_int8(&s->rem[c + 2], r->v[c]);
        }
    }
    for (int c = 0; c < REM_COLS + 2; c++) {
        arr_end(&s->rem[c]);
    }
    size_t n = (size_t)snprintf(s->rem_sql, sizeof(s->rem_sql),
                                "INSERT INTO remediation(bot, authorisation");
    for (int c = 0; c < REM_COLS; c++) {
        n += (size_t)snprintf(s->rem_sql + n, sizeof(s->rem_sql) - n, ", %s", rem_cols[c]);
    }
    n += (size_t)snprintf(s->rem_sql + n, sizeof(s->rem_sql) - n,
                          ") SELECT * FROM unnest($1::int8[], $2::text[]");
    for (int c = 0; c < REM_COLS; c++) {
        n += (size_t)snprintf(s->rem_sql + n, sizeof(s->rem_sql) - n, ", $%d::int8[]", c + 3);
    }
    n += (size_t)snprintf(s->rem_sql + n, sizeof(s->rem_sql) - n,
                          ") ON CONFLICT(bot, authorisation) DO UPDATE SET ");
    for (int c = 0; c < REM_COLS; c++) {
        n += (size_t)snprintf(s->rem_sql + n, sizeof(s->rem_sql) - n, "%s%s = excluded.%s",
                              c > 0 ? ", " : "", rem_cols[c], rem_cols[c]);
    }
    if (s->rem[0].n > 0) {
        q[nq++] = (struct query){.sql = s->rem_sql, .nparams = REM_COLS + 2};
        for (int c = 0; c < REM_COLS + 2; c++) {
            q[nq - 1].params[c] = &s->rem[c];
        }
    }
    rc = run_pipeline(b, q, nq, "writing a batch", err, errlen);
out:
    store_free(s);
    return rc;
}
