/* report.c -- CERT victim reports: Shadowserver-style CSV, IntelMQ JSON lines, split files and
 * summaries, all read from the registry through registry.h only. */
#include "report/report.h"
#include "report/internal.h"
#include "util/err.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US_PER_S 1000000ULL
#define US_PER_DAY 86400000000ULL
#define REPORT_TOP_DEFAULT 10
#define REPORT_TOP_MAX 1000
/* Distinct country file names one split may create (ISO 3166 has 249 codes, plus "ZZ"). */
#define REPORT_CC_FILES_MAX 1024
/* Shadowserver's page gives sinkhole events a default severity of CRITICAL (REPORTS.md s.1);
 * its CSVs write severities in lower case. */
#define REPORT_SEVERITY "critical"

const char *const report_csv_columns[REPORT_CSV_NCOLUMNS] = {
    "timestamp",     "protocol",     "src_ip",       "src_port",     "src_asn",     "src_geo",
    "src_region",    "src_city",     "src_hostname", "src_naics",    "src_sector",  "device_vendor",
    "device_type",   "device_model", "severity",     "dst_ip",       "dst_port",    "dst_asn",
    "dst_geo",       "dst_region",   "dst_city",     "dst_hostname", "dst_naics",   "dst_sector",
    "public_source", "infection",    "family",       "tag",          "application", "version",
    "event_id",
};

void report_cc_name(const char *cc, char out[3])
{
    if (cc != NULL && isupper((unsigned char)cc[0]) && isupper((unsigned char)cc[1]) &&
        cc[2] == '\0') {
        out[0] = cc[0];
        out[1] = cc[1];
    } else {
        out[0] = 'Z';
        out[1] = 'Z';
    }
    out[2] = '\0';
}

int report_parse_time(const char *text, bool end_of_day, uint64_t *out_us, char *err, size_t errlen)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int y, mo, d, h = 0, mi = 0, s = 0, n = 0;
    bool date_only = false;
    if (sscanf(text, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) {
        return err_set(err, errlen, "bad time '%s' (want YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)", text);
    }
    const char *rest = text + 10;
    if (*rest == '\0') {
        date_only = true;
    } else if ((*rest == ' ' || *rest == 'T') &&
               sscanf(rest + 1, "%2d:%2d:%2d%n", &h, &mi, &s, &n) == 3 && n == 8 &&
               (rest[9] == '\0' || (rest[9] == 'Z' && rest[10] == '\0'))) {
        date_only = false;
    } else {
        return err_set(err, errlen, "bad time '%s' (want YYYY-MM-DD or YYYY-MM-DD HH:MM:SS)", text);
    }
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60 || h < 0 ||
        mi < 0 || s < 0) {
        return err_set(err, errlen, "time '%s' out of range", text);
    }
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    /* timegm normalises 2026-02-31 to March: refuse dates that do not exist. */
    struct tm back;
    if (t < 0 || gmtime_r(&t, &back) == NULL || back.tm_mday != d || back.tm_mon != mo - 1) {
        return err_set(err, errlen, "time '%s' is not a calendar date", text);
    }
    uint64_t us = (uint64_t)t * US_PER_S;
    if (date_only && end_of_day) {
        us += US_PER_DAY;
    }
    *out_us = us;
    return 0;
}

static void format_ts(uint64_t us, const char *fmt, char *out, size_t cap)
{
    time_t t = (time_t)(us / US_PER_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, fmt, &tm);
}

/* ---- writers ------------------------------------------------------------------------------- */

/* A quoted CSV string (RFC 4180: quotes doubled). Control bytes become spaces so one record is
 * always one line for line-oriented CERT tooling. Empty values stay bare (",,"), as Shadowserver
 * writes them. */
static void csv_str(FILE *f, const char *s)
{
    if (s == NULL || s[0] == '\0') {
        return;
    }
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"') {
            fputs("\"\"", f);
        } else if (*p < 0x20 || *p == 0x7f) {
            fputc(' ', f);
        } else {
            fputc(*p, f);
        }
    }
    fputc('"', f);
}

static void csv_header(FILE *f)
{
    for (int i = 0; i < REPORT_CSV_NCOLUMNS; i++) {
        fprintf(f, "%s\"%s\"", i ? "," : "", report_csv_columns[i]);
    }
    fputc('\n', f);
}

static void family_slug(const char *family, char out[16])
{
    size_t i = 0;
    for (; i < 15 && family[i]; i++) {
        out[i] = (char)tolower((unsigned char)family[i]);
    }
    out[i] = '\0';
    if (i == 0) {
        snprintf(out, 16, "plugx");
    }
}

/* Both HTTP forms (the packet as body, the classic header check-in) are HTTP to a CERT. */
static bool over_http(const struct registry_bot *b)
{
    return b->transport == CONTACT_TRANSPORT_HTTP || b->transport == CONTACT_TRANSPORT_HTTP_HEADER;
}

static void csv_row(FILE *f, const struct report_options *o, const struct registry_bot *b)
{
    char ts[32], src[NET_ADDR_STRLEN], dst[NET_ADDR_STRLEN], fam[16];
    format_ts(b->last_seen_us, "%Y-%m-%d %H:%M:%S", ts, sizeof(ts));
    net_addr_format_ip(&b->src, src);
    net_addr_format_ip(&b->dst, dst);
    family_slug(b->family, fam);
    csv_str(f, ts);
    fputs(",\"tcp\",", f); /* both sinkd transports (raw and HTTP) run over TCP */
    csv_str(f, src);
    fprintf(f, ",%u,", (unsigned)b->src.port);
    if (b->asn) {
        fprintf(f, "%" PRIu32, b->asn);
    }
    fputc(',', f);
    csv_str(f, b->cc);
    /* src_region .. device_model: sinkd has none of these; severity follows. */
    fputs(",,,,,,,,,", f);
    csv_str(f, REPORT_SEVERITY);
    fputc(',', f);
    csv_str(f, dst);
    fputc(',', f);
    if (b->dst.family) {
        fprintf(f, "%u", (unsigned)b->dst.port);
    }
    /* dst_asn .. dst_sector: unknown to sinkd (the seized address's own data is not enriched). */
    fputs(",,,,,,,,", f);
    csv_str(f, o->public_source);
    fputc(',', f);
    csv_str(f, fam); /* infection */
    fputc(',', f);
    csv_str(f, fam); /* family */
    fputc(',', f);
    csv_str(f, b->tags);
    fputc(',', f);
    csv_str(f, over_http(b) ? "http" : "");
    fputs(",,\n", f); /* version, event_id */
}

/* jansson refuses invalid UTF-8; bot-reported strings are attacker-controlled, so fall back to
 * an ASCII rendering rather than dropping the field. */
static json_t *json_text(const char *s)
{
    json_t *j = json_string(s);
    if (j != NULL) {
        return j;
    }
    char buf[256];
    size_t i = 0;
    for (; i < sizeof(buf) - 1 && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    buf[i] = '\0';
    return json_string(buf);
}

static void jset_str(json_t *o, const char *key, const char *v)
{
    if (v != NULL && v[0] != '\0') {
        json_object_set_new(o, key, json_text(v));
    }
}

static int intelmq_row(FILE *f, const struct report_options *o, uint64_t now_us,
                       const struct registry_bot *b)
{
    char ts[40], src[NET_ADDR_STRLEN], dst[NET_ADDR_STRLEN], fam[16], cc[3];
    json_t *j = json_object();
    if (j == NULL) {
        return -1;
    }
    net_addr_format_ip(&b->src, src);
    net_addr_format_ip(&b->dst, dst);
    family_slug(b->family, fam);
    /* IntelMQ DateTime: ISO 8601 with an explicit UTC offset. time.source is when the bot was
     * last seen; time.observation is when this report observed it (generation time). */
    format_ts(b->last_seen_us, "%Y-%m-%dT%H:%M:%S+00:00", ts, sizeof(ts));
    json_object_set_new(j, "feed.name", json_string(o->feed_name));
    json_object_set_new(j, "time.source", json_string(ts));
    format_ts(now_us, "%Y-%m-%dT%H:%M:%S+00:00", ts, sizeof(ts));
    json_object_set_new(j, "time.observation", json_string(ts));
    /* REPORTS.md s.2: a sinkhole hit is malicious-code / infected-system (ENISA RSIT). */
    json_object_set_new(j, "classification.taxonomy", json_string("malicious-code"));
    json_object_set_new(j, "classification.type", json_string("infected-system"));
    json_object_set_new(j, "classification.identifier", json_string(fam));
    json_object_set_new(j, "malware.name", json_string(fam));
    jset_str(j, "source.ip", src);
    json_object_set_new(j, "source.port", json_integer(b->src.port));
    if (b->asn) {
        json_object_set_new(j, "source.asn", json_integer(b->asn));
        if (o->as_name != NULL) {
            jset_str(j, "source.as_name", o->as_name(o->as_name_ctx, b->asn));
        }
    }
    report_cc_name(b->cc, cc);
    if (strcmp(cc, "ZZ") != 0) {
        json_object_set_new(j, "source.geolocation.cc", json_string(cc));
    }
    /* source.local_ip is typed IPAddress: only a value that parses as one is reported. */
    struct net_addr local;
    if (b->bot.local_ip[0] && net_addr_parse_ip(b->bot.local_ip, &local) == 0) {
        char lip[NET_ADDR_STRLEN];
        net_addr_format_ip(&local, lip);
        json_object_set_new(j, "source.local_ip", json_string(lip));
    }
    if (b->dst.family) {
        json_object_set_new(j, "destination.ip", json_string(dst));
        json_object_set_new(j, "destination.port", json_integer(b->dst.port));
    }
    json_object_set_new(j, "protocol.transport", json_string("tcp"));
    if (over_http(b)) {
        json_object_set_new(j, "protocol.application", json_string("http"));
    }
    jset_str(j, "extra.tag", b->tags);
    json_object_set_new(j, "extra.sinkd.bot_key", json_string(b->bot_key));
    jset_str(j, "extra.sinkd.host", b->bot.host);
    jset_str(j, "extra.sinkd.user", b->bot.user);
    jset_str(j, "extra.sinkd.os", b->bot.os);
    jset_str(j, "extra.sinkd.campaign", b->bot.campaign);
    jset_str(j, "extra.sinkd.version", b->bot.version);
    jset_str(j, "extra.sinkd.node", b->node);
    format_ts(b->first_seen_us, "%Y-%m-%dT%H:%M:%S+00:00", ts, sizeof(ts));
    json_object_set_new(j, "extra.sinkd.first_seen", json_string(ts));
    json_object_set_new(j, "extra.sinkd.contacts", json_integer((json_int_t)b->contacts));
    char *line = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (line == NULL) {
        return -1;
    }
    fputs(line, f);
    fputc('\n', f);
    free(line);
    return 0;
}

/* ---- row reports --------------------------------------------------------------------------- */

struct cc_seen {
    char name[REPORT_CC_FILES_MAX][3];
    size_t n;
};

struct row_ctx {
    const struct report_options *o;
    uint64_t now_us;
    FILE *out;     /* stdout-style single stream, or the current group's file */
    FILE *flagged; /* the current group's -flagged file (opened on the first flagged row) */
    bool own_out;  /* out was opened here */
    char group[32];
    bool have_group;
    bool flagged_written; /* the current group's -flagged file has been created before */
    struct cc_seen *seen;
    int64_t rows;
    char *err;
    size_t errlen;
    int error;
};

static const char *ext_of(enum report_format f)
{
    return f == REPORT_CSV ? "csv" : "jsonl";
}

static void write_header(const struct report_options *o, FILE *f)
{
    if (o->format == REPORT_CSV) {
        csv_header(f);
    }
}

static int close_group(struct row_ctx *c)
{
    int rc = 0;
    if (c->own_out && c->out != NULL && fclose(c->out) != 0) {
        rc = -1;
    }
    if (c->flagged != NULL && fclose(c->flagged) != 0) {
        rc = -1;
    }
    if (c->own_out) {
        c->out = NULL;
    }
    c->flagged = NULL;
    if (rc < 0) {
        c->error = err_set(c->err, c->errlen, "report: writing %s: %s", c->group, strerror(errno));
    }
    return rc;
}

/* Opens <out_dir>/<name><suffix>.<ext>. A country name met a second time (two raw codes that
 * both map to "ZZ") is appended to instead of overwritten. */
static FILE *open_file(struct row_ctx *c, const char *name, const char *suffix, bool append)
{
    char path[PATH_MAX];
    int n = snprintf(path, sizeof(path), "%s/%s%s.%s", c->o->out_dir, name, suffix,
                     ext_of(c->o->format));
    if (n < 0 || (size_t)n >= sizeof(path)) {
        c->error = err_set(c->err, c->errlen, "report: output path too long");
        return NULL;
    }
    FILE *f = fopen(path, append ? "a" : "w");
    if (f == NULL) {
        c->error = err_set(c->err, c->errlen, "report: %s: %s", path, strerror(errno));
        return NULL;
    }
    if (!append) {
        write_header(c->o, f);
    }
    return f;
}

static void group_name(const struct report_options *o, const struct registry_bot *b, char out[32])
{
    if (o->split == REPORT_SPLIT_COUNTRY) {
        char cc[3];
        report_cc_name(b->cc, cc);
        snprintf(out, 32, "%s", cc);
    } else if (o->split == REPORT_SPLIT_ASN) {
        snprintf(out, 32, "AS%" PRIu32, b->asn);
    } else {
        snprintf(out, 32, "sinkhole");
    }
}

static bool seen_before(struct cc_seen *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->name[i], name) == 0) {
            return true;
        }
    }
    if (s->n < REPORT_CC_FILES_MAX) {
        /* names here are report_cc_name() output: exactly two characters */
        memcpy(s->name[s->n], name, 2);
        s->name[s->n++][2] = '\0';
    }
    return false;
}

static int write_row(struct row_ctx *c, FILE *f, const struct registry_bot *b)
{
    if (c->o->format == REPORT_CSV) {
        csv_row(f, c->o, b);
        return 0;
    }
    if (intelmq_row(f, c->o, c->now_us, b) < 0) {
        return c->error = err_set(c->err, c->errlen, "report: out of memory rendering JSON");
    }
    return 0;
}

static int on_bot(void *ctx, const struct registry_bot *b, bool flagged)
{
    struct row_ctx *c = ctx;
    if (c->o->out_dir != NULL) {
        char name[32];
        group_name(c->o, b, name);
        if (!c->have_group || strcmp(name, c->group) != 0) {
            if (c->have_group && close_group(c) < 0) {
                return c->error;
            }
            bool again = c->o->split == REPORT_SPLIT_COUNTRY && seen_before(c->seen, name);
            snprintf(c->group, sizeof(c->group), "%s", name);
            c->have_group = true;
            c->flagged_written = again;
            c->own_out = true;
            c->out = open_file(c, name, "", again);
            if (c->out == NULL) {
                return c->error;
            }
        }
        if (flagged && c->flagged == NULL) {
            c->flagged = open_file(c, c->group, "-flagged", c->flagged_written);
            if (c->flagged == NULL) {
                return c->error;
            }
            c->flagged_written = true;
        }
        if (flagged && write_row(c, c->flagged, b) < 0) {
            return c->error;
        }
    }
    if (write_row(c, c->out, b) < 0) {
        return c->error;
    }
    c->rows++;
    return 0;
}

static int64_t rows_report(struct registry *reg, const struct report_options *o, uint64_t now_us,
                           FILE *out, char *err, size_t errlen)
{
    struct registry_filter f = {
        .since_us = o->since_us,
        .until_us = o->until_us,
        .tag = o->tag,
        .tagged_first = o->tag != NULL,
        .order = o->split == REPORT_SPLIT_COUNTRY ? REGISTRY_ORDER_CC
                 : o->split == REPORT_SPLIT_ASN   ? REGISTRY_ORDER_ASN
                                                  : REGISTRY_ORDER_LAST_SEEN,
    };
    struct row_ctx c = {.o = o, .now_us = now_us, .err = err, .errlen = errlen};
    if (o->out_dir == NULL) {
        c.out = out;
        write_header(o, out);
    } else {
        c.seen = calloc(1, sizeof(*c.seen));
        if (c.seen == NULL) {
            return err_set(err, errlen, "report: out of memory");
        }
    }
    int rc = registry_bots(reg, &f, on_bot, &c, err, errlen);
    if (c.have_group && close_group(&c) < 0 && rc == 0) {
        rc = c.error;
    }
    /* Without a single row there is still one (header-only) file when writing unsplit to a
     * directory, so a CERT's pipeline sees "nothing today" rather than a missing file. */
    if (rc == 0 && o->out_dir != NULL && o->split == REPORT_SPLIT_NONE && !c.have_group) {
        FILE *fh = open_file(&c, "sinkhole", "", false);
        if (fh == NULL || fclose(fh) != 0) {
            rc = c.error ? c.error : err_set(err, errlen, "report: writing sinkhole file");
        }
    }
    free(c.seen);
    if (rc == 0 && out != NULL && o->out_dir == NULL && ferror(out)) {
        rc = err_set(err, errlen, "report: write error");
    }
    return rc < 0 ? rc : (rc > 0 ? c.error : c.rows);
}

/* ---- summaries ----------------------------------------------------------------------------- */

struct group_list {
    struct registry_group_row *rows;
    size_t n, cap;
};

static int collect_group(void *ctx, const struct registry_group_row *row)
{
    struct group_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->rows, cap * sizeof(*l->rows));
        if (p == NULL) {
            return -1;
        }
        l->rows = p;
        l->cap = cap;
    }
    l->rows[l->n++] = *row;
    return 0;
}

struct day_list {
    struct registry_day *days;
    size_t n, cap;
};

static int collect_day(void *ctx, const struct registry_day *d)
{
    struct day_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->days, cap * sizeof(*l->days));
        if (p == NULL) {
            return -1;
        }
        l->days = p;
        l->cap = cap;
    }
    l->days[l->n++] = *d;
    return 0;
}

/* Tag lists are stored per bot ("hospital,energy"): split them and add up per tag. */
struct tag_count {
    char tag[64];
    uint64_t bots;
};

static void add_tags(struct tag_count *t, size_t *n, size_t cap, const char *list, uint64_t cnt)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", list);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        size_t i = 0;
        while (i < *n && strcmp(t[i].tag, tok) != 0) {
            i++;
        }
        if (i == *n) {
            if (*n == cap) {
                continue;
            }
            snprintf(t[i].tag, sizeof(t[i].tag), "%s", tok);
            t[i].bots = 0;
            (*n)++;
        }
        t[i].bots += cnt;
    }
}

static int cmp_tag(const void *a, const void *b)
{
    const struct tag_count *x = a, *y = b;
    if (x->bots != y->bots) {
        return x->bots < y->bots ? 1 : -1;
    }
    return strcmp(x->tag, y->tag);
}

static uint64_t lookup(const struct group_list *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->rows[i].key, key) == 0) {
            return l->rows[i].count;
        }
    }
    return 0;
}

#define SUMMARY_TAGS_MAX 256

struct summary {
    struct registry_totals totals;
    struct registry_totals flagged; /* bots carrying opt->tag */
    struct day_list days;
    struct group_list cc_bots, cc_ips, asn_bots, asn_ips, tags, nodes, cc_undecoded;
    struct tag_count tag_counts[SUMMARY_TAGS_MAX];
    size_t ntags;
};

static void summary_free(struct summary *s)
{
    free(s->days.days);
    free(s->cc_bots.rows);
    free(s->cc_ips.rows);
    free(s->asn_bots.rows);
    free(s->asn_ips.rows);
    free(s->tags.rows);
    free(s->nodes.rows);
    free(s->cc_undecoded.rows);
}

static int summary_load(struct registry *reg, const struct report_options *o, size_t top,
                        struct summary *s, char *err, size_t errlen)
{
    struct registry_filter f = {.since_us = o->since_us, .until_us = o->until_us};
    if (registry_totals(reg, &f, &s->totals, err, errlen) < 0 ||
        registry_days(reg, o->since_us, o->until_us, NULL, collect_day, &s->days, err, errlen) <
            0 ||
        registry_group_bots(reg, &f, REGISTRY_GROUP_CC, top, collect_group, &s->cc_bots, err,
                            errlen) < 0 ||
        /* IP counts for every country/ASN (not only the top ones) so the bot-ranked table can
         * show each row's IP figure. */
        registry_group_ips(reg, &f, REGISTRY_GROUP_CC, 0, collect_group, &s->cc_ips, err, errlen) <
            0 ||
        registry_group_bots(reg, &f, REGISTRY_GROUP_ASN, top, collect_group, &s->asn_bots, err,
                            errlen) < 0 ||
        registry_group_bots(reg, &f, REGISTRY_GROUP_TAGS, 0, collect_group, &s->tags, err, errlen) <
            0 ||
        /* Several nodes sharing one registry: which node last heard each bot. */
        registry_group_bots(reg, &f, REGISTRY_GROUP_NODE, 0, collect_group, &s->nodes, err,
                            errlen) < 0) {
        return -1;
    }
    if (s->totals.undecoded_ips > 0 &&
        registry_group_undecoded(reg, &f, REGISTRY_GROUP_CC, top, collect_group, &s->cc_undecoded,
                                 err, errlen) < 0) {
        return -1;
    }
    /* ASN IP counts only for the top ASNs: there can be tens of thousands of ASNs. */
    for (size_t i = 0; i < s->asn_bots.n; i++) {
        struct registry_filter fa = f;
        struct registry_totals t;
        fa.asn_set = true;
        fa.asn = s->asn_bots.rows[i].asn;
        if (registry_totals(reg, &fa, &t, err, errlen) < 0) {
            return -1;
        }
        struct registry_group_row row = s->asn_bots.rows[i];
        row.count = t.ips;
        if (collect_group(&s->asn_ips, &row) < 0) {
            return err_set(err, errlen, "report: out of memory");
        }
    }
    for (size_t i = 0; i < s->tags.n; i++) {
        add_tags(s->tag_counts, &s->ntags, SUMMARY_TAGS_MAX, s->tags.rows[i].key,
                 s->tags.rows[i].count);
    }
    qsort(s->tag_counts, s->ntags, sizeof(s->tag_counts[0]), cmp_tag);
    if (o->tag != NULL) {
        struct registry_filter ft = f;
        ft.tag = o->tag;
        ft.tagged_only = true;
        if (registry_totals(reg, &ft, &s->flagged, err, errlen) < 0) {
            return -1;
        }
    }
    return 0;
}

static void day_str(int64_t day, char out[16])
{
    format_ts((uint64_t)day * US_PER_DAY, "%Y-%m-%d", out, 16);
}

#define AS_UNKNOWN_NAME "unknown"

static const char COUNT_NOTE[] =
    "bots are counted by bot identity (bot_key: family + host, user, internal IP, campaign) "
    "where a bot sent its machine information, and by source IP where it did not (a passive "
    "sinkhole asks no bot for it: the worm's polls carry no victim id, so without a collect "
    "authorisation every bot is counted by address, as the first sinkhole of this worm did); "
    "IPs are counted by source address. NAT puts many bots behind one IP (IPs < bots) and "
    "dynamic addressing gives one bot many IPs (IPs > bots). Undecoded callers (bytes no "
    "configured cipher or framing decodes: another variant, or a scanner) are counted apart, "
    "by address, never among the bots.";

static void summary_text(FILE *out, const struct report_options *o, const struct summary *s)
{
    char a[32] = "start", b[32] = "now";
    if (o->since_us) {
        format_ts(o->since_us, "%Y-%m-%d %H:%M:%S", a, sizeof(a));
    }
    if (o->until_us) {
        format_ts(o->until_us, "%Y-%m-%d %H:%M:%S", b, sizeof(b));
    }
    fprintf(out, "sinkd summary, bots last seen in [%s, %s) UTC\n\n", a, b);
    fprintf(out, "unique bots (by bot identity):   %" PRIu64 "\n", s->totals.bots);
    fprintf(out, "  identified by machine info:    %" PRIu64 " (the rest by source address)\n",
            s->totals.identified);
    fprintf(out, "unique source IPs (by address):  %" PRIu64 "\n", s->totals.ips);
    fprintf(out, "contacts of these bots:          %" PRIu64 "\n", s->totals.contacts);
    uint64_t all = 0;
    for (size_t i = 0; i < s->days.n; i++) {
        all += s->days.days[i].contacts;
    }
    if (o->since_us == 0 && o->until_us == 0 && all > s->totals.contacts) { /* same scope */
        /* docs/registry.md, "Hello before machine-info": an identified bot's address may poll
         * without identity again; such polls count for the address and the day, not a bot. */
        fprintf(out,
                "  contacts per day add up to %" PRIu64 ": %" PRIu64 " came without identity from "
                "addresses of identified bots\n",
                all, all - s->totals.contacts);
    }
    fprintf(out, "commanded bots:                  %" PRIu64 " (seen again after: %" PRIu64 ")\n",
            s->totals.commanded, s->totals.seen_after_command);
    fprintf(out, "undecoded callers (by address):  %" PRIu64 " (%" PRIu64 " contacts)\n",
            s->totals.undecoded_ips, s->totals.undecoded_contacts);
    fprintf(out, "note: %s\n\n", COUNT_NOTE);
    fprintf(out, "per day (UTC; a bot or IP counts once on each day it called)\n");
    fprintf(out, "  %-10s %10s %10s %12s\n", "day", "bots", "ips", "contacts");
    for (size_t i = 0; i < s->days.n; i++) {
        char d[16];
        day_str(s->days.days[i].day, d);
        fprintf(out, "  %-10s %10" PRIu64 " %10" PRIu64 " %12" PRIu64 "\n", d, s->days.days[i].bots,
                s->days.days[i].ips, s->days.days[i].contacts);
    }
    fprintf(out, "\ntop countries (country of each bot's / IP's latest contact)\n");
    fprintf(out, "  %-4s %10s %10s\n", "cc", "bots", "ips");
    for (size_t i = 0; i < s->cc_bots.n; i++) {
        char cc[3];
        report_cc_name(s->cc_bots.rows[i].key, cc);
        fprintf(out, "  %-4s %10" PRIu64 " %10" PRIu64 "\n", cc, s->cc_bots.rows[i].count,
                lookup(&s->cc_ips, s->cc_bots.rows[i].key));
    }
    fprintf(out, "\ntop ASNs\n");
    fprintf(out, "  %-12s %10s %10s  %s\n", "asn", "bots", "ips", "name");
    for (size_t i = 0; i < s->asn_bots.n; i++) {
        char name[24];
        uint32_t asn = s->asn_bots.rows[i].asn;
        /* AS 0: the address lies in no announced range of the ASN data (or no data was
         * loaded), which must not read as an AS of its own. */
        const char *org = asn == 0     ? AS_UNKNOWN_NAME
                          : o->as_name ? o->as_name(o->as_name_ctx, asn)
                                       : NULL;
        snprintf(name, sizeof(name), "AS%" PRIu32, asn);
        fprintf(out, "  %-12s %10" PRIu64 " %10" PRIu64 "  %s\n", name, s->asn_bots.rows[i].count,
                s->asn_ips.rows[i].count, org ? org : "");
    }
    fprintf(out, "\nnodes (the node that recorded each bot's latest contact)\n");
    fprintf(out, "  %-31s %10s\n", "node", "bots");
    for (size_t i = 0; i < s->nodes.n; i++) {
        fprintf(out, "  %-31s %10" PRIu64 "\n", s->nodes.rows[i].key, s->nodes.rows[i].count);
    }
    fprintf(out, "\nflagged sectors (bots by tag)\n");
    for (size_t i = 0; i < s->ntags; i++) {
        fprintf(out, "  %-20s %10" PRIu64 "%s\n", s->tag_counts[i].tag, s->tag_counts[i].bots,
                o->tag && strcmp(o->tag, s->tag_counts[i].tag) == 0 ? "  <- --tag" : "");
    }
    if (s->ntags == 0) {
        fprintf(out, "  (none)\n");
    }
    if (o->tag != NULL) {
        fprintf(out, "\nflagged '%s': %" PRIu64 " bots, %" PRIu64 " contacts\n", o->tag,
                s->flagged.bots, s->flagged.contacts);
    }
    if (s->cc_undecoded.n > 0) {
        fprintf(out, "\nundecoded callers by country (addresses; not counted as bots)\n");
        for (size_t i = 0; i < s->cc_undecoded.n; i++) {
            char cc[3];
            report_cc_name(s->cc_undecoded.rows[i].key, cc);
            fprintf(out, "  %-4s %10" PRIu64 "\n", cc, s->cc_undecoded.rows[i].count);
        }
    }
}

static json_t *group_json(const struct report_options *o, const struct group_list *bots,
                          const struct group_list *ips, bool cc, bool ips_parallel)
{
    json_t *arr = json_array();
    for (size_t i = 0; i < bots->n; i++) {
        json_t *r = json_object();
        if (cc) {
            char name[3];
            report_cc_name(bots->rows[i].key, name);
            json_object_set_new(r, "cc", json_string(name));
        } else {
            json_object_set_new(r, "asn", json_integer(bots->rows[i].asn));
            if (bots->rows[i].asn == 0) {
                jset_str(r, "as_name", AS_UNKNOWN_NAME);
            } else if (o->as_name != NULL) {
                jset_str(r, "as_name", o->as_name(o->as_name_ctx, bots->rows[i].asn));
            }
        }
        json_object_set_new(r, "bots", json_integer((json_int_t)bots->rows[i].count));
        uint64_t nip = ips_parallel ? ips->rows[i].count : lookup(ips, bots->rows[i].key);
        json_object_set_new(r, "ips", json_integer((json_int_t)nip));
        json_array_append_new(arr, r);
    }
    return arr;
}

static int summary_json(FILE *out, const struct report_options *o, const struct summary *s)
{
    char t[32];
    json_t *j = json_object();
    json_t *win = json_object();
    if (o->since_us) {
        format_ts(o->since_us, "%Y-%m-%dT%H:%M:%S+00:00", t, sizeof(t));
        json_object_set_new(win, "since", json_string(t));
    }
    if (o->until_us) {
        format_ts(o->until_us, "%Y-%m-%dT%H:%M:%S+00:00", t, sizeof(t));
        json_object_set_new(win, "until", json_string(t));
    }
    json_object_set_new(j, "window", win);
    json_object_set_new(j, "unique_bots", json_integer((json_int_t)s->totals.bots));
    json_object_set_new(j, "identified_bots", json_integer((json_int_t)s->totals.identified));
    json_object_set_new(j, "unique_ips", json_integer((json_int_t)s->totals.ips));
    json_object_set_new(j, "undecoded_ips", json_integer((json_int_t)s->totals.undecoded_ips));
    json_object_set_new(j, "undecoded_contacts",
                        json_integer((json_int_t)s->totals.undecoded_contacts));
    json_object_set_new(j, "contacts", json_integer((json_int_t)s->totals.contacts));
    json_object_set_new(j, "commanded", json_integer((json_int_t)s->totals.commanded));
    json_object_set_new(j, "seen_after_command",
                        json_integer((json_int_t)s->totals.seen_after_command));
    json_t *basis = json_object();
    json_object_set_new(basis, "unique_bots", json_string("bot identity (bot_key)"));
    json_object_set_new(basis, "unique_ips", json_string("source IP address"));
    json_object_set_new(basis, "note", json_string(COUNT_NOTE));
    json_object_set_new(j, "counted_by", basis);
    json_t *days = json_array();
    for (size_t i = 0; i < s->days.n; i++) {
        char d[16];
        day_str(s->days.days[i].day, d);
        json_t *r = json_object();
        json_object_set_new(r, "day", json_string(d));
        json_object_set_new(r, "bots", json_integer((json_int_t)s->days.days[i].bots));
        json_object_set_new(r, "ips", json_integer((json_int_t)s->days.days[i].ips));
        json_object_set_new(r, "contacts", json_integer((json_int_t)s->days.days[i].contacts));
        json_array_append_new(days, r);
    }
    json_object_set_new(j, "days", days);
    json_object_set_new(j, "top_countries", group_json(o, &s->cc_bots, &s->cc_ips, true, false));
    json_object_set_new(j, "top_asns", group_json(o, &s->asn_bots, &s->asn_ips, false, true));
    json_t *tags = json_object();
    for (size_t i = 0; i < s->ntags; i++) {
        json_object_set_new(tags, s->tag_counts[i].tag,
                            json_integer((json_int_t)s->tag_counts[i].bots));
    }
    json_object_set_new(j, "sectors", tags);
    json_t *nodes = json_array();
    for (size_t i = 0; i < s->nodes.n; i++) {
        json_t *r = json_object();
        jset_str(r, "node", s->nodes.rows[i].key);
        json_object_set_new(r, "bots", json_integer((json_int_t)s->nodes.rows[i].count));
        json_array_append_new(nodes, r);
    }
    json_object_set_new(j, "nodes", nodes);
    if (o->tag != NULL) {
        json_t *fl = json_object();
        json_object_set_new(fl, "tag", json_string(o->tag));
        json_object_set_new(fl, "bots", json_integer((json_int_t)s->flagged.bots));
        json_object_set_new(fl, "contacts", json_integer((json_int_t)s->flagged.contacts));
        json_object_set_new(j, "flagged", fl);
    }
    int rc = json_dumpf(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(j);
    return rc;
}

int64_t report_write(struct registry *reg, const struct report_options *opt, FILE *out, char *err,
                     size_t errlen)
{
    struct report_options o = *opt;
    if (o.public_source == NULL) {
        o.public_source = "sinkd";
    }
    if (o.feed_name == NULL) {
        o.feed_name = "sinkd-plugx";
    }
    if (o.tag != NULL && o.tag[0] == '\0') {
        o.tag = NULL;
    }
    if (o.since_us && o.until_us && o.until_us <= o.since_us) {
        return err_set(err, errlen, "report: --until must be later than --since");
    }
    if (o.remediation) {
        if (o.tag != NULL) {
            return err_set(err, errlen, "report: --tag does not apply to --remediation");
        }
        if (o.out_dir == NULL && out == NULL) {
            return err_set(err, errlen, "report: no output");
        }
        return report_remediation_write(reg, &o, out, err, errlen);
    }
    uint64_t now_us = o.now_us ? o.now_us : event_now_us();
    if (o.format == REPORT_CSV || o.format == REPORT_INTELMQ) {
        if (o.split != REPORT_SPLIT_NONE && o.out_dir == NULL) {
            return err_set(err, errlen, "report: --split needs --out DIR");
        }
        if (o.out_dir == NULL && out == NULL) {
            return err_set(err, errlen, "report: no output");
        }
        return rows_report(reg, &o, now_us, out, err, errlen);
    }
    if (o.format != REPORT_SUMMARY && o.format != REPORT_SUMMARY_JSON) {
        return err_set(err, errlen, "report: unknown format");
    }
    if (o.split != REPORT_SPLIT_NONE) {
        return err_set(err, errlen, "report: --split applies to csv and intelmq only");
    }
    size_t top = o.top ? o.top : REPORT_TOP_DEFAULT;
    if (top > REPORT_TOP_MAX) {
        top = REPORT_TOP_MAX;
    }
    struct summary *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return err_set(err, errlen, "report: out of memory");
    }
    FILE *dst = out;
    bool own = false;
    int rc = summary_load(reg, &o, top, s, err, errlen);
    if (rc == 0 && o.out_dir != NULL) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/summary.%s", o.out_dir,
                 o.format == REPORT_SUMMARY ? "txt" : "json");
        dst = fopen(path, "w");
        own = true;
        if (dst == NULL) {
            rc = err_set(err, errlen, "report: %s: %s", path, strerror(errno));
        }
    }
    if (rc == 0) {
        if (o.format == REPORT_SUMMARY) {
            summary_text(dst, &o, s);
        } else if (summary_json(dst, &o, s) < 0) {
            rc = err_set(err, errlen, "report: writing JSON failed");
        }
        if (ferror(dst)) {
            rc = err_set(err, errlen, "report: write error");
        }
    }
    if (own && dst != NULL && fclose(dst) != 0 && rc == 0) {
        rc = err_set(err, errlen, "report: closing summary: %s", strerror(errno));
    }
    summary_free(s);
    free(s);
    return rc < 0 ? rc : 0;
}

/* ---- one row at a time --------------------------------------------------------------------- */

void report_write_header(const struct report_options *opt, FILE *out)
{
    write_header(opt, out);
}

int report_write_row(const struct report_options *opt, const struct registry_bot *bot, FILE *out,
                     char *err, size_t errlen)
{
    struct report_options o = *opt;
    if (o.public_source == NULL) {
        o.public_source = "sinkd";
    }
    if (o.feed_name == NULL) {
        o.feed_name = "sinkd-plugx";
    }
    if (o.format == REPORT_CSV) {
        csv_row(out, &o, bot);
        return 0;
    }
    if (o.format != REPORT_INTELMQ) {
        return err_set(err, errlen, "report: rows are csv or intelmq");
    }
    if (intelmq_row(out, &o, o.now_us ? o.now_us : event_now_us(), bot) < 0) {
        return err_set(err, errlen, "report: out of memory rendering JSON");
    }
    return 0;
}
