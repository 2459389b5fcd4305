/* data.c -- what the portal hands an authority, read from the registry and the log and cut to
 * its scope: victim rows (Shadowserver CSV and IntelMQ through report/, n6-style JSON), its
 * statistics, and evidence bundles (evidence/log.h) packed as tar (libarchive). */
/* nftw() is XSI. */
#define _XOPEN_SOURCE 700
#include "evidence/log.h"
#include "enrich/enrich.h"
#include "portal/internal.h"
#include "report/report.h"
#include "util/err.h"

#include <archive.h>
#include <archive_entry.h>
#include <jansson.h>
#include <openssl/rand.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define US_PER_S 1000000ULL
#define US_PER_DAY (86400ULL * US_PER_S)

void portal_scope_text(const struct portal_authority *a, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int n_ = snprintf(out + o, cap - o, __VA_ARGS__);                                          \
        if (n_ < 0 || (size_t)n_ >= cap - o) {                                                     \
            return;                                                                                \
        }                                                                                          \
        o += (size_t)n_;                                                                           \
    } while (0)
    PUT("authority=%s", a->id);
    for (size_t i = 0; i < a->n_countries; i++) {
        PUT("%s%s", i ? "," : " countries=", a->countries[i]);
    }
    for (size_t i = 0; i < a->n_asns; i++) {
        PUT("%sAS%" PRIu32, i ? "," : " asns=", a->asns[i]);
    }
    for (size_t i = 0; i < a->n_networks; i++) {
        struct net_addr m = {.family = a->networks[i].family};
        memcpy(m.ip, a->networks[i].ip, 16);
        char ip[NET_ADDR_STRLEN];
        net_addr_format_ip(&m, ip);
        PUT("%s%s/%u", i ? "," : " networks=", ip, a->networks[i].prefix);
    }
#undef PUT
}

static void rfc3339(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / US_PER_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- victims ------------------------------------------------------------------------------ */

struct victims_ctx {
    const struct portal_authority *a;
    const struct portal_victims_query *q;
    struct report_options ro;
    FILE *f;
    uint64_t rows;
    uint64_t now_us;
    bool too_large;
    char *err;
    size_t errlen;
};

static bool in_list_cc(const struct portal_victims_query *q, const char *cc)
{
    for (size_t i = 0; i < q->n_cc; i++) {
        if (strcmp(q->cc[i], cc) == 0) {
            return true;
        }
    }
    return q->n_cc == 0;
}

static bool query_holds(const struct portal_victims_query *q, const struct registry_bot *b)
{
    if (!in_list_cc(q, b->cc)) {
        return false;
    }
    bool asn_ok = q->n_asn == 0;
    for (size_t i = 0; i < q->n_asn; i++) {
        asn_ok = asn_ok || q->asn[i] == b->asn;
    }
    bool net_ok = q->n_net == 0;
    for (size_t i = 0; i < q->n_net; i++) {
        net_ok = net_ok || net_cidr_contains(&q->net[i], &b->src);
    }
    bool ip_ok = q->ip.family == 0 || net_addr_equal_ip(&q->ip, &b->src);
    return asn_ok && net_ok && ip_ok;
}

/* n6 REST API event attributes (CERT Polska n6 docs, "Event Attributes"): one sinkhole hit per
 * bot, its latest contact. */
static int n6_row(struct victims_ctx *c, const struct registry_bot *b)
{
    char t[32], src[NET_ADDR_STRLEN], dst[NET_ADDR_STRLEN], fam[16];
    net_addr_format_ip(&b->src, src);
    net_addr_format_ip(&b->dst, dst);
    size_t i = 0;
    for (; i < sizeof(fam) - 1 && b->family[i]; i++) {
        fam[i] =
            (char)(b->family[i] >= 'A' && b->family[i] <= 'Z' ? b->family[i] + 32 : b->family[i]);
    }
    fam[i] = '\0';
    json_t *addr = json_pack("{s:s}", "ip", src);
    if (addr != NULL && b->cc[0] != '\0') {
        json_object_set_new(addr, "cc", json_string(b->cc));
    }
    if (addr != NULL && b->asn != 0) {
        json_object_set_new(addr, "asn", json_integer(b->asn));
    }
    json_t *o = json_object();
    if (o == NULL || addr == NULL) {
        json_decref(o);
        json_decref(addr);
        return err_set(c->err, c->errlen, "out of memory");
    }
    json_object_set_new(o, "id", json_string(b->bot_key));
    json_object_set_new(o, "source", json_string("sinkd.sinkhole"));
    json_object_set_new(o, "restriction", json_string("need-to-know"));
    json_object_set_new(o, "confidence", json_string("high"));
    json_object_set_new(o, "category", json_string("bots"));
    rfc3339(c->now_us, t);
    json_object_set_new(o, "modified", json_string(t));
    rfc3339(b->last_seen_us, t);
    json_object_set_new(o, "time", json_string(t));
    json_object_set_new(o, "address", json_pack("[o]", addr));
    json_object_set_new(o, "name", json_string(fam[0] ? fam : "plugx"));
    json_object_set_new(o, "origin", json_string("sinkhole"));
    json_object_set_new(o, "proto", json_string("tcp"));
    json_object_set_new(o, "sport", json_integer(b->src.port));
    if (b->dst.family != 0) {
        json_object_set_new(o, "dip", json_string(dst));
        json_object_set_new(o, "dport", json_integer(b->dst.port));
    }
    char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (line == NULL) {
        return err_set(c->err, c->errlen, "out of memory");
    }
    fprintf(c->f, "%s%s", c->rows > 0 ? ",\n" : "\n", line);
    free(line);
    return 0;
}

static int on_victim(void *ctx, const struct registry_bot *b, bool flagged)
{
    (void)flagged;
    struct victims_ctx *c = ctx;
    /* The scope first, always: whatever the query says, nothing outside it goes out. */
    if (!portal_scope_holds(c->a, b->cc, b->asn, &b->src) || !query_holds(c->q, b)) {
        return 0;
    }
    if (c->q->limit != 0 && c->rows >= c->q->limit) {
        return 1;
    }
    int rc =
        c->q->format == PV_N6 ? n6_row(c, b) : report_write_row(&c->ro, b, c->f, c->err, c->errlen);
    if (rc != 0) {
        return rc;
    }
    c->rows++;
    long pos = ftell(c->f);
    if (pos < 0 || (uint64_t)pos > PORTAL_RESPONSE_MAX) {
        c->too_large = true;
        return 1;
    }
    return 0;
}

int portal_victims(struct portal_state *st, const struct portal_authority *a,
                   const struct portal_victims_query *q, char **body, size_t *len, uint64_t *rows,
                   char *err, size_t errlen)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);
    if (f == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    struct victims_ctx c = {
        .a = a, .q = q, .f = f, .now_us = event_now_us(), .err = err, .errlen = errlen};
    c.ro.format = q->format == PV_INTELMQ ? REPORT_INTELMQ : REPORT_CSV;
    c.ro.now_us = c.now_us;
    if (st->cfg->as_names != NULL) { /* the same rows as sinkd report writes */
        c.ro.as_name = enrich_as_name;
        c.ro.as_name_ctx = st->cfg->as_names;
    }
    if (q->format == PV_CSV) {
        report_write_header(&c.ro, f);
    } else if (q->format == PV_N6) {
        fputc('[', f);
    }
    int rc = 0;
    struct registry_filter rf = {.since_us = q->since_us, .until_us = q->until_us};
    if (a->n_asns == 0 && a->n_networks == 0) {
        /* Scoped by country alone (the common case): one indexed query per country instead of
         * a walk over every bot. */
        for (size_t i = 0; rc == 0 && i < a->n_countries; i++) {
            if (!in_list_cc(q, a->countries[i])) {
                continue;
            }
            rf.cc = a->countries[i];
            rc = registry_bots(st->reg, &rf, on_victim, &c, err, errlen);
        }
    } else {
        rc = registry_bots(st->reg, &rf, on_victim, &c, err, errlen);
    }
    if (q->format == PV_N6) {
        fputs(c.rows > 0 ? "\n]\n" : "]\n", f);
    }
    bool werr = ferror(f) != 0;
    fclose(f);
    if (rc < 0 || werr) {
        free(buf);
        return rc < 0 ? rc : err_set(err, errlen, "out of memory");
    }
    if (c.too_large) {
        free(buf);
        return 1;
    }
    *body = buf;
    *len = size;
    *rows = c.rows;
    return 0;
}

/* ---- statistics --------------------------------------------------------------------------- */

struct bot_point {
    char cc[3];
    uint8_t ip[17]; /* family byte, then the address */
};

struct count_row {
    char key[64];
    uint64_t n;
};

struct stats_ctx {
    const struct portal_authority *a;
    struct bot_point *points;
    size_t n, cap;
    struct count_row cc[256], asn[512], tag[64];
    size_t ncc, nasn, ntag;
    uint64_t bots, contacts, commanded, seen_after;
    int error;
};

static void count_key(struct count_row *rows, size_t *n, size_t cap, const char *key)
{
    for (size_t i = 0; i < *n; i++) {
        if (strcmp(rows[i].key, key) == 0) {
            rows[i].n++;
            return;
        }
    }
    if (*n < cap) {
        snprintf(rows[*n].key, sizeof(rows[*n].key), "%s", key);
        rows[(*n)++].n = 1;
    }
}

static int on_stats_bot(void *ctx, const struct registry_bot *b, bool flagged)
{
    (void)flagged;
    struct stats_ctx *c = ctx;
    if (!portal_scope_holds(c->a, b->cc, b->asn, &b->src)) {
        return 0;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        void *p = realloc(c->points, cap * sizeof(*c->points));
        if (p == NULL) {
            c->error = -1;
            return 1;
        }
        c->points = p;
        c->cap = cap;
    }
    struct bot_point *p = &c->points[c->n++];
    memset(p, 0, sizeof(*p));
    snprintf(p->cc, sizeof(p->cc), "%s", b->cc);
    p->ip[0] = b->src.family;
    memcpy(p->ip + 1, b->src.ip, 16);
    c->bots++;
    c->contacts += b->contacts;
    if (b->commanded_at_us != 0) {
        c->commanded++;
        c->seen_after += b->seen_after_command > 0;
    }
    count_key(c->cc, &c->ncc, 256, b->cc[0] ? b->cc : "ZZ");
    char asn[16];
    snprintf(asn, sizeof(asn), "%" PRIu32, b->asn);
    count_key(c->asn, &c->nasn, 512, asn);
    char tags[64];
    snprintf(tags, sizeof(tags), "%s", b->tags);
    char *save = NULL;
    for (char *t = strtok_r(tags, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        count_key(c->tag, &c->ntag, 64, t);
    }
    return 0;
}

static int cmp_point(const void *x, const void *y)
{
    const struct bot_point *a = x, *b = y;
    int r = strcmp(a->cc, b->cc);
    return r != 0 ? r : memcmp(a->ip, b->ip, sizeof(a->ip));
}

static int cmp_count(const void *x, const void *y)
{
    const struct count_row *a = x, *b = y;
    if (a->n != b->n) {
        return a->n < b->n ? 1 : -1;
    }
    return strcmp(a->key, b->key);
}

struct day_sum {
    int64_t first_day;
    size_t ndays;
    uint64_t (*v)[5]; /* bots, ips, contacts, commanded, disinfected */
};

static int on_day(void *ctx, const struct registry_day *d)
{
    struct day_sum *s = ctx;
    if (d->day < s->first_day || (size_t)(d->day - s->first_day) >= s->ndays) {
        return 0;
    }
    uint64_t *v = s->v[d->day - s->first_day];
    v[0] += d->bots;
    v[1] += d->ips;
    v[2] += d->contacts;
    return 0;
}

struct remediation_ctx {
    struct portal_state *st;
    const struct portal_authority *a;
    struct day_sum *days;
    char last_bot[33];
    char (*need_lookup)[33]; /* commanded bots whose scope needs their address */
    size_t n_lookup, cap_lookup;
    struct remediation_row_ref {
        char bot[33];
        uint64_t first_command_us;
        bool silent;
    } * pending;
    uint64_t commanded, silent, seen_after;
    struct req_eff {
        uint64_t id;
        char last_bot[33];
        uint64_t commanded, seen_after, silent;
    } req[64];
    size_t nreq;
    int error;
};

static void count_commanded(struct remediation_ctx *c, uint64_t first_command_us, bool silent)
{
    c->commanded++;
    c->silent += silent;
    c->seen_after += !silent;
    int64_t day = (int64_t)(first_command_us / US_PER_DAY);
    if (day >= c->days->first_day && (size_t)(day - c->days->first_day) < c->days->ndays) {
        c->days->v[day - c->days->first_day][3]++;
        c->days->v[day - c->days->first_day][4] += silent;
    }
}

static int on_remediation(void *ctx, const struct registry_remediation *r)
{
    struct remediation_ctx *c = ctx;
    /* Its own approved requests: authorisations portal-<id>-cc / -net. */
    uint64_t rid = 0;
    int used = 0;
    if (r->first_command_us != 0 &&
        sscanf(r->authorisation, "portal-%" SCNu64 "-%*[a-z]%n", &rid, &used) == 1 && used > 0) {
        for (size_t i = 0; i < c->nreq; i++) {
            struct req_eff *e = &c->req[i];
            if (e->id == rid && strcmp(e->last_bot, r->bot_key) != 0) {
                snprintf(e->last_bot, sizeof(e->last_bot), "%s", r->bot_key);
                e->commanded++;
                e->seen_after += r->seen_after > 0;
                e->silent += r->seen_after == 0;
            }
        }
    }
    /* Rows come grouped by bot, the first-commanded authorisation first: count a bot once. */
    if (r->first_command_us == 0 || strcmp(c->last_bot, r->bot_key) == 0) {
        return 0;
    }
    snprintf(c->last_bot, sizeof(c->last_bot), "%s", r->bot_key);
    bool silent = r->seen_after == 0;
    if (portal_scope_has_country(c->a, r->cc) || portal_scope_has_asn(c->a, r->asn)) {
        count_commanded(c, r->first_command_us, silent);
    } else if (c->a->n_networks > 0) {
        /* Its address is not in this row; look the bot up once the walk is over. */
        if (c->n_lookup == c->cap_lookup) {
            size_t cap = c->cap_lookup ? c->cap_lookup * 2 : 256;
            void *p = realloc(c->pending, cap * sizeof(*c->pending));
            if (p == NULL) {
                c->error = -1;
                return 1;
            }
            c->pending = p;
            c->cap_lookup = cap;
        }
        struct remediation_row_ref *p = &c->pending[c->n_lookup++];
        snprintf(p->bot, sizeof(p->bot), "%s", r->bot_key);
        p->first_command_us = r->first_command_us;
        p->silent = silent;
    }
    return 0;
}

static int collect_requests(void *ctx, const struct portal_disinfection *r)
{
    struct remediation_ctx *c = ctx;
    if (r->status == PORTAL_REQ_APPROVED && c->nreq < 64) {
        c->req[c->nreq].id = r->id;
        c->nreq++;
    }
    return 0;
}

static json_t *day_json(int64_t day, const uint64_t v[5])
{
    char d[16];
    time_t t = (time_t)(day * 86400);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(d, sizeof(d), "%Y-%m-%d", &tm);
    return json_pack("{s:s,s:I,s:I,s:I,s:I,s:I}", "day", d, "bots", (json_int_t)v[0], "ips",
                     (json_int_t)v[1], "contacts", (json_int_t)v[2], "commanded", (json_int_t)v[3],
                     "disinfected", (json_int_t)v[4]);
}

int portal_stats(struct portal_state *st, const struct portal_authority *a, uint64_t since_us,
                 char **body, size_t *len, uint64_t *rows, char *err, size_t errlen)
{
    uint64_t now_us = event_now_us();
    struct stats_ctx *c = calloc(1, sizeof(*c));
    struct day_sum days = {.first_day = (int64_t)(since_us / US_PER_DAY)};
    days.ndays = (size_t)((int64_t)(now_us / US_PER_DAY) - days.first_day + 1);
    days.v = calloc(days.ndays, sizeof(*days.v));
    struct remediation_ctx *rc_ = calloc(1, sizeof(*rc_));
    if (c == NULL || days.v == NULL || rc_ == NULL) {
        free(c);
        free(days.v);
        free(rc_);
        return err_set(err, errlen, "out of memory");
    }
    c->a = a;
    struct registry_filter rf = {.since_us = since_us};
    int rc = registry_bots(st->reg, &rf, on_stats_bot, c, err, errlen);
    if (rc == 0 && c->error != 0) {
        rc = err_set(err, errlen, "out of memory");
    }
    /* The per-day curve: the registry counts per country and day (day_cc), so the curve covers
     * the authority's countries; ASN- or network-only scopes have none (docs/portal.md). */
    for (size_t i = 0; rc == 0 && i < a->n_countries; i++) {
        rc = registry_days(st->reg, since_us, 0, a->countries[i], on_day, &days, err, errlen);
    }
    rc_->st = st;
    rc_->a = a;
    rc_->days = &days;
    if (rc == 0) {
        rc = portal_store_list(st->store, a->id, collect_requests, rc_, err, errlen);
    }
    if (rc == 0) {
        rc = registry_remediation(st->reg, on_remediation, rc_, err, errlen);
        if (rc == 0 && rc_->error != 0) {
            rc = err_set(err, errlen, "out of memory");
        }
    }
    for (size_t i = 0; rc == 0 && i < rc_->n_lookup; i++) {
        struct registry_bot *b = malloc(sizeof(*b));
        int got = b == NULL ? -1 : registry_bot_get(st->reg, rc_->pending[i].bot, b, err, errlen);
        if (got < 0) {
            rc = b == NULL ? err_set(err, errlen, "out of memory") : got;
        } else if (got == 1 && portal_scope_holds(a, b->cc, b->asn, &b->src)) {
            count_commanded(rc_, rc_->pending[i].first_command_us, rc_->pending[i].silent);
        }
        free(b);
    }
    json_t *j = NULL;
    if (rc == 0) {
        /* Distinct addresses, in all and per country. */
        qsort(c->points, c->n, sizeof(*c->points), cmp_point);
        uint64_t ips = 0;
        json_t *countries = json_array();
        for (size_t i = 0; i < c->n;) {
            size_t k = i;
            uint64_t cc_ips = 0, cc_bots = 0;
            while (k < c->n && strcmp(c->points[k].cc, c->points[i].cc) == 0) {
                cc_bots++;
                if (k == i || memcmp(c->points[k].ip, c->points[k - 1].ip, 17) != 0) {
                    cc_ips++;
                }
                k++;
            }
            ips += cc_ips;
            json_array_append_new(countries,
                                  json_pack("{s:s,s:I,s:I}", "cc",
                                            c->points[i].cc[0] ? c->points[i].cc : "ZZ", "bots",
                                            (json_int_t)cc_bots, "ips", (json_int_t)cc_ips));
            i = k;
        }
        qsort(c->asn, c->nasn, sizeof(c->asn[0]), cmp_count);
        qsort(c->tag, c->ntag, sizeof(c->tag[0]), cmp_count);
        json_t *asns = json_array(), *tags = json_array(), *dj = json_array(), *reqs = json_array();
        for (size_t i = 0; i < c->nasn && i < 20; i++) {
            json_array_append_new(asns, json_pack("{s:I,s:I}", "asn",
                                                  (json_int_t)strtoull(c->asn[i].key, NULL, 10),
                                                  "bots", (json_int_t)c->asn[i].n));
        }
        for (size_t i = 0; i < c->ntag; i++) {
            json_array_append_new(tags, json_pack("{s:s,s:I}", "tag", c->tag[i].key, "bots",
                                                  (json_int_t)c->tag[i].n));
        }
        for (size_t i = 0; i < days.ndays; i++) {
            json_array_append_new(dj, day_json(days.first_day + (int64_t)i, days.v[i]));
        }
        for (size_t i = 0; i < rc_->nreq; i++) {
            const struct req_eff *e = &rc_->req[i];
            json_array_append_new(reqs, json_pack("{s:I,s:I,s:I,s:I}", "id", (json_int_t)e->id,
                                                  "commanded", (json_int_t)e->commanded,
                                                  "seen_after", (json_int_t)e->seen_after, "silent",
                                                  (json_int_t)e->silent));
        }
        char since[32], gen[32];
        rfc3339(since_us, since);
        rfc3339(now_us, gen);
        j = json_pack("{s:s,s:s,s:s,s:s,s:{s:I,s:I,s:I},s:o,s:o,s:o,s:o,s:{s:I,s:I,s:I},s:o}",
                      "authority", a->id, "name", a->name, "since", since, "generated", gen,
                      "totals", "bots", (json_int_t)c->bots, "ips", (json_int_t)ips, "contacts",
                      (json_int_t)c->contacts, "countries", countries, "asns", asns, "sectors",
                      tags, "days", dj, "remediation", "commanded", (json_int_t)rc_->commanded,
                      "seen_after", (json_int_t)rc_->seen_after, "silent", (json_int_t)rc_->silent,
                      "requests", reqs);
        if (j == NULL) {
            rc = err_set(err, errlen, "out of memory");
        }
    }
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (rc == 0 && text == NULL) {
        rc = err_set(err, errlen, "out of memory");
    }
    if (rc == 0) {
        *body = text;
        *len = strlen(text);
        *rows = c->bots;
    } else {
        free(text);
    }
    free(c->points);
    free(c);
    free(days.v);
    free(rc_->pending);
    free(rc_);
    return rc < 0 ? rc : 0;
}

/* ---- evidence bundles --------------------------------------------------------------------- */

struct owner_ctx {
    const struct portal_authority *a;
    const struct net_addr *ip;
    bool mine, foreign;
};

static int on_owner(void *ctx, const struct registry_bot *b, bool flagged)
{
    (void)flagged;
    struct owner_ctx *c = ctx;
    if (!net_addr_equal_ip(&b->src, c->ip)) {
        return 0;
    }
    if (portal_scope_holds(c->a, b->cc, b->asn, &b->src)) {
        c->mine = true;
    } else {
        c->foreign = true;
    }
    return 0;
}

static const struct net_addr *record_src(const struct record *r)
{
    switch (r->kind) {
    case RECORD_CONTACT:
        return &r->u.contact.src;
    case RECORD_HEARTBEATS:
        return &r->u.heartbeats.src;
    case RECORD_DECISION:
        return &r->u.decision.src;
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED:
        return &r->u.command.src;
    default:
        return NULL;
    }
}

static uint64_t record_time(const struct record *r)
{
    switch (r->kind) {
    case RECORD_CONTACT:
        return r->u.contact.time_us;
    case RECORD_HEARTBEATS:
        return r->u.heartbeats.time_us;
    case RECORD_DECISION:
        return r->u.decision.time_us;
    case RECORD_COMMAND_SENT:
    case RECORD_COMMAND_FAILED:
        return r->u.command.time_us;
    default:
        return 0;
    }
}

/* nftw has no context argument: the archive being written is handed over in this variable,
 * set and cleared around the one walk (the portal serves one request at a time). */
static struct {
    struct archive *ar;
    size_t root_len;
    int error;
} tar_walk;

static int add_to_tar(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)ftw;
    if (type != FTW_F || !S_ISREG(sb->st_mode) || strlen(path) <= tar_walk.root_len) {
        return 0;
    }
    struct archive_entry *e = archive_entry_new();
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (e == NULL || fd < 0) {
        archive_entry_free(e);
        if (fd >= 0) {
            close(fd);
        }
        tar_walk.error = -1;
        return 1;
    }
    archive_entry_set_pathname(e, path + tar_walk.root_len);
    archive_entry_set_size(e, sb->st_size);
    archive_entry_set_filetype(e, AE_IFREG);
    archive_entry_set_perm(e, 0644);
    archive_entry_set_mtime(e, sb->st_mtime, 0);
    int rc = archive_write_header(tar_walk.ar, e) == ARCHIVE_OK ? 0 : -1;
    char buf[16384];
    ssize_t n;
    while (rc == 0 && (n = read(fd, buf, sizeof(buf))) > 0) {
        if (archive_write_data(tar_walk.ar, buf, (size_t)n) != n) {
            rc = -1;
        }
    }
    close(fd);
    archive_entry_free(e);
    if (rc != 0) {
        tar_walk.error = -1;
        return 1;
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)sb;
    (void)ftw;
    if (type == FTW_DP) {
        rmdir(path);
    } else {
        unlink(path);
    }
    return 0;
}

struct mem_out {
    FILE *f;
};

static la_ssize_t tar_write(struct archive *ar, void *ctx, const void *buf, size_t n)
{
    (void)ar;
    struct mem_out *m = ctx;
    if (fwrite(buf, 1, n, m->f) != n) {
        return -1;
    }
    long pos = ftell(m->f);
    if (pos < 0 || (uint64_t)pos > PORTAL_RESPONSE_MAX) {
        return -1;
    }
    return (la_ssize_t)n;
}

static int tar_dir(const char *dir, char **body, size_t *len, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t size = 0;
    struct mem_out m = {.f = open_memstream(&buf, &size)};
    struct archive *ar = archive_write_new();
    if (m.f == NULL || ar == NULL) {
        if (m.f != NULL) {
            fclose(m.f);
        }
        free(buf);
        archive_write_free(ar);
        return err_set(err, errlen, "out of memory");
    }
    archive_write_set_format_pax_restricted(ar);
    int rc = archive_write_open(ar, &m, NULL, tar_write, NULL) == ARCHIVE_OK ? 0 : -1;
    if (rc == 0) {
        tar_walk.ar = ar;
        tar_walk.root_len = strlen(dir) - strlen("bundle");
        tar_walk.error = 0;
        rc = nftw(dir, add_to_tar, 16, FTW_PHYS) != 0 || tar_walk.error != 0 ? -1 : 0;
        tar_walk.ar = NULL;
    }
    if (archive_write_close(ar) != ARCHIVE_OK) {
        rc = -1;
    }
    archive_write_free(ar);
    fclose(m.f);
    if (rc != 0) {
        free(buf);
        return err_set(err, errlen, "packing the bundle failed (or it passed %u bytes)",
                       PORTAL_RESPONSE_MAX);
    }
    *body = buf;
    *len = size;
    return 0;
}

/* Whether `index` is among the n sorted indexes of idx. */
static bool index_listed(const uint64_t *idx, size_t n, uint64_t index)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (idx[mid] < index) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo < n && idx[lo] == index;
}

/* Puts `index` in its place among the n sorted indexes of idx (room for one more). */
static void insert_sorted(uint64_t *idx, size_t *n, uint64_t index)
{
    size_t i = *n;
    while (i > 0 && idx[i - 1] > index) {
        idx[i] = idx[i - 1];
        i--;
    }
    idx[i] = index;
    (*n)++;
}

int portal_bundle(struct portal_state *st, const struct portal_authority *a,
                  const struct net_addr *ip, uint64_t since_us, char **body, size_t *len,
                  uint64_t *rows, bool *foreign, char *err, size_t errlen)
{
    *foreign = false;
    struct owner_ctx oc = {.a = a, .ip = ip};
    struct registry_filter rf = {.since_us = since_us};
    int rc = registry_bots(st->reg, &rf, on_owner, &oc, err, errlen);
    if (rc < 0) {
        return rc;
    }
    if (!oc.mine) {
        *foreign = oc.foreign;
        return 1;
    }
    /* The entries naming the address: its contacts, heartbeats, decisions and commands. */
    uint64_t *idx = calloc(PORTAL_BUNDLE_ENTRIES_MAX, sizeof(*idx));
    struct record *rec = malloc(sizeof(*rec));
    struct evlog_reader *r = NULL;
    if (idx == NULL || rec == NULL) {
        free(idx);
        free(rec);
        return err_set(err, errlen, "out of memory");
    }
    if (evlog_reader_open(&r, st->cfg->state_dir, 0, err, errlen) != 0 ||
        evlog_reader_fill_described(r) != 0) {
        if (r != NULL) {
            evlog_reader_close(r);
            err_set(err, errlen, "out of memory");
        }
        free(idx);
        free(rec);
        return -1;
    }
    size_t n = 0;
    const uint8_t *entry;
    size_t elen;
    uint64_t index;
    int got;
    while ((got = evlog_reader_next(r, &entry, &elen, &index, err, errlen)) == 1 &&
           n < PORTAL_BUNDLE_ENTRIES_MAX) {
        char derr[64];
        if (event_decode(entry, elen, rec, derr, sizeof(derr)) != 0) {
            continue;
        }
        const struct net_addr *src = record_src(rec);
        if (src != NULL && net_addr_equal_ip(src, ip) && record_time(rec) >= since_us) {
            /* A heartbeats record naming the leaf that describes its bot goes with that leaf
             * (what says who polled), unless it is in already. */
            uint64_t named = rec->kind == RECORD_HEARTBEATS ? rec->u.heartbeats.described_in : 0;
            if (named != 0 && !index_listed(idx, n, named)) {
                if (n + 2 > PORTAL_BUNDLE_ENTRIES_MAX) {
                    break;
                }
                insert_sorted(idx, &n, named);
            }
            idx[n++] = index;
        }
    }
    evlog_reader_close(r);
    free(rec);
    if (got < 0) {
        free(idx);
        return -1;
    }
    char dir[PATH_MAX], rnd[17];
    if (portal_random_hex(rnd, 8) != 0 ||
        snprintf(dir, sizeof(dir), "%s/portal/tmp-%s", st->cfg->state_dir, rnd) >=
            (int)sizeof(dir) - 8) {
        free(idx);
        return err_set(err, errlen, "bundle directory");
    }
    if (mkdir(dir, 0700) != 0) {
        free(idx);
        return err_set(err, errlen, "%s: %s", dir, strerror(errno));
    }
    char bundle[PATH_MAX + 8];
    snprintf(bundle, sizeof(bundle), "%s/bundle", dir);
    rc = n == 0 ? err_set(err, errlen, "no log entries name that address")
                : evlog_bundle_write(st->cfg->state_dir, 0, idx, n, bundle, event_describe_json,
                                     NULL, err, errlen);
    free(idx);
    if (rc == 0) {
        rc = tar_dir(bundle, body, len, err, errlen);
    }
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc == 0) {
        *rows = n;
    }
    return rc < 0 ? rc : 0;
}
