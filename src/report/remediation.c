/* remediation.c -- the remediation (effectiveness) report: per country and per authorisation, how
 * many bots were commanded and how many called again after the command (DESIGN.md "Remediation
 * safety" 5), over an explicitly stated observation window; plus dry-run counts and a per-day
 * curve. Reads the registry through registry.h only. */
#include "report/internal.h"
#include "util/err.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define US_PER_S 1000000ULL
#define US_PER_DAY 86400000000ULL

/* Figures for one country, one authorisation or in total. Per country and in total a bot counts
 * once even when commanded under two authorisations (its after-command figures are those of its
 * first command in the window); per authorisation, each bot under it counts. */
struct rem_counts {
    uint64_t send_decided;    /* bots with a send decision in the window */
    uint64_t commanded;       /* bots whose first command-sent is in the window */
    uint64_t commands_sent;   /* command-sent records of those bots */
    uint64_t commands_failed; /* command-failed records of bots first failing in the window */
    uint64_t seen_after;      /* commanded bots with a contact after the command, before the end */
    uint64_t observed_1h;     /* commanded bots with at least 1 h between command and the end */
    uint64_t seen_after_1h;   /* ... with a contact later than command + 1 h */
    uint64_t observed_24h, seen_after_24h;
    uint64_t dry_run;           /* bots with a dry-run decision in the window */
    uint64_t dry_run_decisions; /* dry-run decision records of those bots */
};

struct rem_group {
    char key[64]; /* country code ("ZZ" unknown) or authorisation id */
    struct rem_counts c;
};

struct rem_groups {
    struct rem_group *g;
    size_t n, cap;
};

struct rem_day_list {
    struct registry_remediation_day *d;
    size_t n, cap;
};

/* [since, end): decisions and commands counted, contacts after a command seen. end is --until
 * or just past the data's last record, whichever is earlier. */
struct rem_window {
    uint64_t since, end;
};

struct rem_state {
    struct rem_window w;
    struct rem_counts total;
    struct rem_groups cc, auth;
    /* the bot whose rows are being read (rows arrive grouped by bot) */
    char bot_key[33];
    char bot_cc[3];
    struct rem_counts bot;
    bool have_bot;
    int error;
};

static bool in_window(const struct rem_window *w, uint64_t t)
{
    return t != 0 && t >= w->since && t < w->end;
}

/* A contact time recorded as "first after ..." counts if it happened before the end. */
static bool before_end(const struct rem_window *w, uint64_t t)
{
    return t != 0 && t < w->end;
}

/* At least `span` of observation after the command: the end lies beyond command + span. */
static bool observed(const struct rem_window *w, uint64_t cmd, uint64_t span)
{
    return cmd + span < w->end;
}

static void row_counts(const struct rem_window *w, const struct registry_remediation *r,
                       struct rem_counts *c)
{
    memset(c, 0, sizeof(*c));
    c->send_decided = in_window(w, r->first_send_us);
    if (in_window(w, r->first_command_us)) {
        c->commanded = 1;
        c->commands_sent = r->commands_sent;
        c->seen_after = before_end(w, r->first_after_us);
        c->observed_1h = observed(w, r->first_command_us, REGISTRY_AFTER_1H_US);
        c->seen_after_1h = before_end(w, r->first_after_1h_us);
        c->observed_24h = observed(w, r->first_command_us, REGISTRY_AFTER_24H_US);
        c->seen_after_24h = before_end(w, r->first_after_24h_us);
    }
    if (in_window(w, r->first_failed_us)) {
        c->commands_failed = r->commands_failed;
    }
    if (in_window(w, r->first_dry_run_us)) {
        c->dry_run = 1;
        c->dry_run_decisions = r->dry_runs;
    }
}

static void counts_add(struct rem_counts *a, const struct rem_counts *b)
{
    a->send_decided += b->send_decided;
    a->commanded += b->commanded;
    a->commands_sent += b->commands_sent;
    a->commands_failed += b->commands_failed;
    a->seen_after += b->seen_after;
    a->observed_1h += b->observed_1h;
    a->seen_after_1h += b->seen_after_1h;
    a->observed_24h += b->observed_24h;
    a->seen_after_24h += b->seen_after_24h;
    a->dry_run += b->dry_run;
    a->dry_run_decisions += b->dry_run_decisions;
}

/* One bot's rows into its bot-level figures: flags once, record counts summed, after-command
 * figures from its first command in the window (rows come earliest command first). */
static void bot_merge(struct rem_counts *bot, const struct rem_counts *row)
{
    bot->send_decided |= row->send_decided;
    bot->dry_run |= row->dry_run;
    bot->commands_sent += row->commands_sent;
    bot->commands_failed += row->commands_failed;
    bot->dry_run_decisions += row->dry_run_decisions;
    if (!bot->commanded && row->commanded) {
        bot->commanded = 1;
        bot->seen_after = row->seen_after;
        bot->observed_1h = row->observed_1h;
        bot->seen_after_1h = row->seen_after_1h;
        bot->observed_24h = row->observed_24h;
        bot->seen_after_24h = row->seen_after_24h;
    }
}

static struct rem_group *group_of(struct rem_groups *l, const char *key)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->g[i].key, key) == 0) {
            return &l->g[i];
        }
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->g, cap * sizeof(*l->g));
        if (p == NULL) {
            return NULL;
        }
        l->g = p;
        l->cap = cap;
    }
    struct rem_group *g = &l->g[l->n++];
    memset(g, 0, sizeof(*g));
    snprintf(g->key, sizeof(g->key), "%s", key);
    return g;
}

static bool counts_empty(const struct rem_counts *c)
{
    return c->send_decided == 0 && c->commanded == 0 && c->commands_failed == 0 && c->dry_run == 0;
}

static int bot_flush(struct rem_state *s)
{
    if (!s->have_bot || counts_empty(&s->bot)) {
        s->have_bot = false;
        return 0;
    }
    s->have_bot = false;
    char cc[3];
    report_cc_name(s->bot_cc, cc);
    struct rem_group *g = group_of(&s->cc, cc);
    if (g == NULL) {
        return -1;
    }
    counts_add(&g->c, &s->bot);
    counts_add(&s->total, &s->bot);
    return 0;
}

static int on_row(void *ctx, const struct registry_remediation *r)
{
    struct rem_state *s = ctx;
    if (!s->have_bot || strcmp(s->bot_key, r->bot_key) != 0) {
        if (bot_flush(s) < 0) {
            return s->error = -1;
        }
        s->have_bot = true;
        memcpy(s->bot_key, r->bot_key, sizeof(s->bot_key));
        memcpy(s->bot_cc, r->cc, sizeof(s->bot_cc));
        memset(&s->bot, 0, sizeof(s->bot));
    }
    struct rem_counts c;
    row_counts(&s->w, r, &c);
    if (counts_empty(&c)) {
        return 0;
    }
    bot_merge(&s->bot, &c);
    struct rem_group *g = group_of(&s->auth, r->authorisation);
    if (g == NULL) {
        return s->error = -1;
    }
    counts_add(&g->c, &c);
    return 0;
}

static int collect_rem_day(void *ctx, const struct registry_remediation_day *d)
{
    struct rem_day_list *l = ctx;
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        void *p = realloc(l->d, cap * sizeof(*l->d));
        if (p == NULL) {
            return -1;
        }
        l->d = p;
        l->cap = cap;
    }
    l->d[l->n++] = *d;
    return 0;
}

/* Countries: most commanded first, then most dry-run, then by code; authorisations by id. */
static int cmp_cc(const void *a, const void *b)
{
    const struct rem_group *x = a, *y = b;
    if (x->c.commanded != y->c.commanded) {
        return x->c.commanded < y->c.commanded ? 1 : -1;
    }
    if (x->c.dry_run != y->c.dry_run) {
        return x->c.dry_run < y->c.dry_run ? 1 : -1;
    }
    return strcmp(x->key, y->key);
}

static int cmp_key(const void *a, const void *b)
{
    const struct rem_group *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* ---- output --------------------------------------------------------------------------------- */

static void fmt_time(uint64_t us, const char *fmt, char *out, size_t cap)
{
    time_t t = (time_t)(us / US_PER_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, fmt, &tm);
}

static const char RULE[] =
    "a commanded bot is observed from its first command to the end of the data (its latest "
    "record) or --until, whichever is earlier; 'seen after 1 h / 24 h' means a contact later "
    "than the command + 1 h / + 24 h, and those shares are computed over the commanded bots "
    "observed at least 1 h / 24 h only. 'fell silent' is every commanded bot with no contact "
    "after its command, however short its observation.";

/* "observed >= 24 h after command: 40, seen after 24 h: 10 (25.0% of those observed)" */
static void share_line(FILE *out, const char *span, uint64_t observed_n, uint64_t seen)
{
    fprintf(out, "observed >= %-4s after command: %" PRIu64 ", seen after %s: %" PRIu64, span,
            observed_n, span, seen);
    if (observed_n == 0) {
        fprintf(out, " (no share: no commanded bot observed that long yet)\n");
    } else {
        fprintf(out, " (%.1f%% of those observed)\n", 100.0 * (double)seen / (double)observed_n);
    }
}

/* "25.0%" or "n/a" when the denominator is 0. */
static void pct(uint64_t num, uint64_t den, char out[16])
{
    if (den == 0) {
        snprintf(out, 16, "n/a");
    } else {
        snprintf(out, 16, "%.1f%%", 100.0 * (double)num / (double)den);
    }
}

static void text_header(FILE *out, const char *first)
{
    fprintf(out, "  %-16s %8s %9s %6s %6s %6s %7s %7s %7s %7s %7s %7s %7s %7s %7s %8s\n", first,
            "decided", "commanded", "sent", "failed", "seen", "obs1h", "seen1h", "share1h",
            "obs24h", "seen24h", "shr24h", "silent", "silent%", "dry-run", "dry-dec");
}

static void text_row(FILE *out, const char *key, const struct rem_counts *c)
{
    char s1[16], s24[16], sil[16];
    pct(c->seen_after_1h, c->observed_1h, s1);
    pct(c->seen_after_24h, c->observed_24h, s24);
    pct(c->commanded - c->seen_after, c->commanded, sil);
    fprintf(out,
            "  %-16s %8" PRIu64 " %9" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %7" PRIu64
            " %7" PRIu64 " %7s %7" PRIu64 " %7" PRIu64 " %7s %7" PRIu64 " %7s %7" PRIu64
            " %8" PRIu64 "\n",
            key, c->send_decided, c->commanded, c->commands_sent, c->commands_failed, c->seen_after,
            c->observed_1h, c->seen_after_1h, s1, c->observed_24h, c->seen_after_24h, s24,
            c->commanded - c->seen_after, sil, c->dry_run, c->dry_run_decisions);
}

static void window_text(const struct report_options *o, uint64_t data_end, char a[32], char b[32],
                        char e[32])
{
    snprintf(a, 32, "start");
    snprintf(b, 32, "end of data");
    snprintf(e, 32, "(no records)");
    if (o->since_us) {
        fmt_time(o->since_us, "%Y-%m-%d %H:%M:%S", a, 32);
    }
    if (o->until_us) {
        fmt_time(o->until_us, "%Y-%m-%d %H:%M:%S", b, 32);
    }
    if (data_end) {
        fmt_time(data_end, "%Y-%m-%d %H:%M:%S", e, 32);
    }
}

/* Prints prefix + text wrapped at 100 columns, continuation lines indented by two spaces. */
static void wrap(FILE *out, const char *prefix, const char *text)
{
    size_t col = (size_t)fprintf(out, "%s", prefix);
    const char *p = text;
    while (*p) {
        size_t word = strcspn(p, " ");
        if (col > 2 && col + 1 + word > 100) {
            fputs("\n ", out);
            col = 1;
        }
        fprintf(out, "%s%.*s", col > 0 && p != text ? " " : "", (int)word, p);
        col += word + 1;
        p += word;
        p += strspn(p, " ");
    }
    fputc('\n', out);
}

static void write_text(FILE *out, const struct report_options *o, uint64_t data_end,
                       const struct rem_state *s, const struct rem_day_list *days)
{
    char a[32], b[32], e[32], p[16];
    window_text(o, data_end, a, b, e);
    const struct rem_counts *t = &s->total;
    fprintf(out, "sinkd remediation report, decisions and commands in [%s, %s) UTC\n", a, b);
    fprintf(out, "data end (latest record):       %s UTC\n", e);
    wrap(out, "observation rule: ", RULE);
    fputc('\n', out);
    fprintf(out, "bots decided send:              %" PRIu64 "\n", t->send_decided);
    fprintf(out, "bots commanded:                 %" PRIu64 "\n", t->commanded);
    fprintf(out, "commands sent / failed:         %" PRIu64 " / %" PRIu64 "\n", t->commands_sent,
            t->commands_failed);
    fprintf(out, "seen again after the command:   %" PRIu64 "\n", t->seen_after);
    share_line(out, "1 h", t->observed_1h, t->seen_after_1h);
    share_line(out, "24 h", t->observed_24h, t->seen_after_24h);
    pct(t->commanded - t->seen_after, t->commanded, p);
    fprintf(out, "fell silent:                    %" PRIu64 " of %" PRIu64 " commanded (%s)\n",
            t->commanded - t->seen_after, t->commanded, p);
    fprintf(out, "dry-run (would be commanded):   %" PRIu64 " bots, %" PRIu64 " decisions\n\n",
            t->dry_run, t->dry_run_decisions);

    fprintf(out, "per country (bots; country of each bot's latest contact)\n");
    text_header(out, "cc");
    for (size_t i = 0; i < s->cc.n; i++) {
        text_row(out, s->cc.g[i].key, &s->cc.g[i].c);
    }
    if (s->cc.n == 0) {
        fprintf(out, "  (none)\n");
    }
    fprintf(out, "\nper authorisation (bots under each)\n");
    text_header(out, "authorisation");
    for (size_t i = 0; i < s->auth.n; i++) {
        text_row(out, s->auth.g[i].key[0] ? s->auth.g[i].key : "(none)", &s->auth.g[i].c);
    }
    if (s->auth.n == 0) {
        fprintf(out, "  (none)\n");
    }
    fprintf(out, "\nper day (UTC; commanded bots seen = bots seen that day after their command)\n");
    fprintf(out, "  %-10s %14s %16s %20s\n", "day", "commands sent", "commands failed",
            "commanded bots seen");
    for (size_t i = 0; i < days->n; i++) {
        char d[16];
        fmt_time((uint64_t)days->d[i].day * US_PER_DAY, "%Y-%m-%d", d, sizeof(d));
        fprintf(out, "  %-10s %14" PRIu64 " %16" PRIu64 " %20" PRIu64 "\n", d,
                days->d[i].commands_sent, days->d[i].commands_failed, days->d[i].commanded_seen);
    }
    if (days->n == 0) {
        fprintf(out, "  (none)\n");
    }
}

static json_t *share_json(uint64_t num, uint64_t den)
{
    return den ? json_real((double)num / (double)den) : json_null();
}

static json_t *counts_json(const char *name, const char *key, const struct rem_counts *c)
{
    json_t *r = json_object();
    if (name != NULL) {
        json_object_set_new(r, name, json_string(key));
    }
#define JI(k, v) json_object_set_new(r, k, json_integer((json_int_t)(v)))
    JI("send_decided", c->send_decided);
    JI("commanded", c->commanded);
    JI("commands_sent", c->commands_sent);
    JI("commands_failed", c->commands_failed);
    JI("seen_after", c->seen_after);
    JI("observed_1h", c->observed_1h);
    JI("seen_after_1h", c->seen_after_1h);
    json_object_set_new(r, "share_after_1h", share_json(c->seen_after_1h, c->observed_1h));
    JI("observed_24h", c->observed_24h);
    JI("seen_after_24h", c->seen_after_24h);
    json_object_set_new(r, "share_after_24h", share_json(c->seen_after_24h, c->observed_24h));
    JI("silent", c->commanded - c->seen_after);
    json_object_set_new(r, "silent_share", share_json(c->commanded - c->seen_after, c->commanded));
    JI("dry_run", c->dry_run);
    JI("dry_run_decisions", c->dry_run_decisions);
#undef JI
    return r;
}

static void iso_time(json_t *o, const char *key, uint64_t us)
{
    char t[32];
    fmt_time(us, "%Y-%m-%dT%H:%M:%S+00:00", t, sizeof(t));
    json_object_set_new(o, key, json_string(t));
}

static int write_json(FILE *out, const struct report_options *o, uint64_t data_end,
                      const struct rem_state *s, const struct rem_day_list *days)
{
    json_t *j = json_object();
    json_t *win = json_object();
    if (o->since_us) {
        iso_time(win, "since", o->since_us);
    }
    if (o->until_us) {
        iso_time(win, "until", o->until_us);
    }
    if (data_end) {
        iso_time(win, "data_end", data_end);
    }
    json_object_set_new(win, "rule", json_string(RULE));
    json_object_set_new(j, "window", win);
    json_object_set_new(j, "totals", counts_json(NULL, NULL, &s->total));
    json_t *arr = json_array();
    for (size_t i = 0; i < s->cc.n; i++) {
        json_array_append_new(arr, counts_json("cc", s->cc.g[i].key, &s->cc.g[i].c));
    }
    json_object_set_new(j, "countries", arr);
    arr = json_array();
    for (size_t i = 0; i < s->auth.n; i++) {
        json_array_append_new(arr, counts_json("authorisation", s->auth.g[i].key, &s->auth.g[i].c));
    }
    json_object_set_new(j, "authorisations", arr);
    arr = json_array();
    for (size_t i = 0; i < days->n; i++) {
        char d[16];
        fmt_time((uint64_t)days->d[i].day * US_PER_DAY, "%Y-%m-%d", d, sizeof(d));
        json_t *r = json_object();
        json_object_set_new(r, "day", json_string(d));
        json_object_set_new(r, "commands_sent", json_integer((json_int_t)days->d[i].commands_sent));
        json_object_set_new(r, "commands_failed",
                            json_integer((json_int_t)days->d[i].commands_failed));
        json_object_set_new(r, "commanded_seen",
                            json_integer((json_int_t)days->d[i].commanded_seen));
        json_array_append_new(arr, r);
    }
    json_object_set_new(j, "days", arr);
    int rc = json_dumpf(j, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    fputc('\n', out);
    json_decref(j);
    return rc;
}

static const char CSV_HEADER[] =
    "group,key,send_decided,commanded,commands_sent,commands_failed,seen_after,observed_1h,"
    "seen_after_1h,share_after_1h,observed_24h,seen_after_24h,share_after_24h,silent,"
    "silent_share,dry_run,dry_run_decisions,commanded_seen";

static void csv_share(FILE *out, uint64_t num, uint64_t den)
{
    if (den) {
        fprintf(out, "%.4f", (double)num / (double)den);
    }
}

/* Keys are country codes, authorisation ids (policy identifiers) and dates: quoted, with quotes
 * doubled, in case an id ever holds a comma. */
static void csv_key(FILE *out, const char *k)
{
    fputc('"', out);
    for (; *k; k++) {
        if (*k == '"') {
            fputc('"', out);
        }
        fputc(*k, out);
    }
    fputc('"', out);
}

static void csv_counts(FILE *out, const char *group, const char *key, const struct rem_counts *c)
{
    fprintf(out, "%s,", group);
    csv_key(out, key);
    fprintf(out,
            ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",%" PRIu64 ",",
            c->send_decided, c->commanded, c->commands_sent, c->commands_failed, c->seen_after,
            c->observed_1h, c->seen_after_1h);
    csv_share(out, c->seen_after_1h, c->observed_1h);
    fprintf(out, ",%" PRIu64 ",%" PRIu64 ",", c->observed_24h, c->seen_after_24h);
    csv_share(out, c->seen_after_24h, c->observed_24h);
    fprintf(out, ",%" PRIu64 ",", c->commanded - c->seen_after);
    csv_share(out, c->commanded - c->seen_after, c->commanded);
    fprintf(out, ",%" PRIu64 ",%" PRIu64 ",\n", c->dry_run, c->dry_run_decisions);
}

static void write_csv(FILE *out, const struct rem_state *s, const struct rem_day_list *days)
{
    fprintf(out, "%s\n", CSV_HEADER);
    csv_counts(out, "total", "", &s->total);
    for (size_t i = 0; i < s->cc.n; i++) {
        csv_counts(out, "country", s->cc.g[i].key, &s->cc.g[i].c);
    }
    for (size_t i = 0; i < s->auth.n; i++) {
        csv_counts(out, "authorisation", s->auth.g[i].key, &s->auth.g[i].c);
    }
    /* Day rows fill only the columns a day has: commands sent/failed and bots seen. */
    for (size_t i = 0; i < days->n; i++) {
        char d[16];
        fmt_time((uint64_t)days->d[i].day * US_PER_DAY, "%Y-%m-%d", d, sizeof(d));
        fprintf(out, "day,\"%s\",,,%" PRIu64 ",%" PRIu64 ",,,,,,,,,,,,%" PRIu64 "\n", d,
                days->d[i].commands_sent, days->d[i].commands_failed, days->d[i].commanded_seen);
    }
}

int report_remediation_write(struct registry *reg, const struct report_options *o, FILE *out,
                             char *err, size_t errlen)
{
    if (o->format != REPORT_CSV && o->format != REPORT_SUMMARY &&
        o->format != REPORT_SUMMARY_JSON) {
        return err_set(err, errlen, "report: --remediation writes csv, summary or summary-json");
    }
    if (o->split != REPORT_SPLIT_NONE) {
        return err_set(err, errlen, "report: --split does not apply to --remediation");
    }
    uint64_t data_end = 0;
    if (registry_data_end(reg, &data_end, err, errlen) < 0) {
        return -1;
    }
    struct rem_state *s = calloc(1, sizeof(*s));
    struct rem_day_list days = {0};
    if (s == NULL) {
        return err_set(err, errlen, "report: out of memory");
    }
    s->w.since = o->since_us;
    s->w.end = data_end + 1;
    if (o->until_us && o->until_us < s->w.end) {
        s->w.end = o->until_us;
    }
    int rc = registry_remediation(reg, on_row, s, err, errlen);
    if (rc == 0 && bot_flush(s) < 0) {
        rc = -1;
    }
    if (rc != 0 && s->error) {
        rc = err_set(err, errlen, "report: out of memory");
    }
    if (rc == 0 && registry_remediation_days(reg, o->since_us, o->until_us, collect_rem_day, &days,
                                             err, errlen) != 0) {
        rc = -1;
    }
    FILE *dst = out;
    bool own = false;
    if (rc == 0 && o->out_dir != NULL) {
        char path[PATH_MAX];
        const char *ext = o->format == REPORT_CSV       ? "csv"
                          : o->format == REPORT_SUMMARY ? "txt"
                                                        : "json";
        snprintf(path, sizeof(path), "%s/remediation.%s", o->out_dir, ext);
        dst = fopen(path, "w");
        own = true;
        if (dst == NULL) {
            rc = err_set(err, errlen, "report: %s: %s", path, strerror(errno));
        }
    }
    if (rc == 0 && dst == NULL) {
        rc = err_set(err, errlen, "report: no output");
    }
    if (rc == 0) {
        /* qsort's array may not be NULL even with no elements (C11 7.22.5). */
        if (s->cc.n > 0) {
            qsort(s->cc.g, s->cc.n, sizeof(*s->cc.g), cmp_cc);
        }
        if (s->auth.n > 0) {
            qsort(s->auth.g, s->auth.n, sizeof(*s->auth.g), cmp_key);
        }
        if (o->format == REPORT_SUMMARY) {
            write_text(dst, o, data_end, s, &days);
        } else if (o->format == REPORT_CSV) {
            write_csv(dst, s, &days);
        } else if (write_json(dst, o, data_end, s, &days) < 0) {
            rc = err_set(err, errlen, "report: writing JSON failed");
        }
        if (rc == 0 && ferror(dst)) {
            rc = err_set(err, errlen, "report: write error");
        }
    }
    if (own && dst != NULL && fclose(dst) != 0 && rc == 0) {
        rc = err_set(err, errlen, "report: closing the remediation report: %s", strerror(errno));
    }
    free(s->cc.g);
    free(s->auth.g);
    free(s);
    free(days.d);
    return rc < 0 ? rc : 0;
}
