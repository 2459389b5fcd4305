/* requests.c -- disinfection requests: reading one from a form or JSON and checking it against
 * the authority's scope, the request store (SQLite, state/portal/requests.db), and the policy
 * section an approval adds. */
#include "policy/policy.h"
#include "portal/portal.h"
#include "util/err.h"

#include <jansson.h>
#include <sqlite3.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define US_PER_S 1000000ULL
#define US_PER_DAY (86400ULL * US_PER_S)

int portal_parse_time(const char *text, bool end_of_day, uint64_t *out_us)
{
    int y, mo, d, h = 0, mi = 0, s = 0, n = 0;
    if (sscanf(text, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3 || n != 10) {
        return -1;
    }
    bool date_only = text[10] == '\0';
    if (!date_only) {
        if (text[10] != 'T' || sscanf(text + 11, "%2d:%2d:%2d%n", &h, &mi, &s, &n) != 3 || n != 8 ||
            strcmp(text + 19, "Z") != 0) {
            return -1;
        }
    }
    if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 ||
        mi > 59 || s < 0 || s > 59) {
        return -1;
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    time_t t = timegm(&tm);
    struct tm back;
    if (t < 0 || gmtime_r(&t, &back) == NULL || back.tm_mday != d || back.tm_mon != mo - 1) {
        return -1; /* 2026-02-31 */
    }
    uint64_t us = (uint64_t)t * US_PER_S;
    if (date_only && end_of_day) {
        us += US_PER_DAY;
    }
    *out_us = us;
    return 0;
}

const char *portal_request_status_name(uint8_t status)
{
    switch (status) {
    case PORTAL_REQ_PENDING:
        return "pending";
    case PORTAL_REQ_APPROVED:
        return "approved";
    case PORTAL_REQ_REJECTED:
        return "rejected";
    default:
        return "unknown";
    }
}

/* ---- reading and checking a request -------------------------------------------------------- */

static int refuse(char *why, size_t whylen, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(char *why, size_t whylen, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (why != NULL && whylen > 0) {
        vsnprintf(why, whylen, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    }
    va_end(ap);
    return code;
}

/* Free text that goes into a policy file line: printable, no ';' or '#' (inih would read the
 * rest as a comment) and bounded. */
static int text_field(const char *name, const char *v, char *dst, size_t cap, bool required,
                      char *why, size_t whylen)
{
    if (v == NULL || v[0] == '\0') {
        if (required) {
            return refuse(why, whylen, -1, "'%s' is required", name);
        }
        dst[0] = '\0';
        return 0;
    }
    size_t n = strlen(v);
    if (n >= cap) {
        return refuse(why, whylen, -1, "'%s' longer than %zu characters", name, cap - 1);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c == 0x7f) {
            return refuse(why, whylen, -1, "control character in '%s'", name);
        }
        if (c == ';' || c == '#') {
            return refuse(why, whylen, -1, "'%s' may not hold ';' or '#'", name);
        }
    }
    memcpy(dst, v, n + 1);
    return 0;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t')) {
        s[--n] = '\0';
    }
    return s;
}

/* Splits a list on commas, newlines and spaces into items handed to `each`. */
static int split_list(const char *text, int (*each)(void *ctx, char *item, char *why, size_t wl),
                      void *ctx, char *why, size_t whylen)
{
    char buf[PORTAL_PARAM_VALUE_MAX + 1];
    size_t n = strlen(text);
    if (n >= sizeof(buf)) {
        return refuse(why, whylen, -1, "list too long");
    }
    memcpy(buf, text, n + 1);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ", \r\n\t", &save); tok != NULL;
         tok = strtok_r(NULL, ", \r\n\t", &save)) {
        int rc = each(ctx, trim(tok), why, whylen);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

struct list_ctx {
    const struct portal_authority *a;
    struct portal_disinfection *r;
};

static int add_country(void *ctx, char *item, char *why, size_t whylen)
{
    struct list_ctx *c = ctx;
    if (strlen(item) != 2 || item[0] < 'A' || item[0] > 'Z' || item[1] < 'A' || item[1] > 'Z') {
        return refuse(why, whylen, -1, "bad country code '%.8s'", item);
    }
    if (!portal_scope_has_country(c->a, item)) {
        return refuse(why, whylen, 1, "country %s is not in authority '%s''s scope", item,
                      c->a->id);
    }
    for (size_t i = 0; i < c->r->n_countries; i++) {
        if (strcmp(c->r->countries[i], item) == 0) {
            return 0;
        }
    }
    if (c->r->n_countries == PORTAL_REQ_COUNTRIES_MAX) {
        return refuse(why, whylen, -1, "more than %d countries", PORTAL_REQ_COUNTRIES_MAX);
    }
    memcpy(c->r->countries[c->r->n_countries++], item, 3);
    return 0;
}

static int add_network(void *ctx, char *item, char *why, size_t whylen)
{
    struct list_ctx *c = ctx;
    struct net_cidr net;
    char e[96];
    if (strchr(item, '/') == NULL || net_cidr_parse(item, &net, e, sizeof(e)) != 0) {
        return refuse(why, whylen, -1, "bad network '%.64s' (CIDR)", item);
    }
    if (!portal_scope_has_network(c->a, &net)) {
        return refuse(why, whylen, 1, "network %.64s is not inside authority '%s''s networks", item,
                      c->a->id);
    }
    if (c->r->n_networks == PORTAL_REQ_NETWORKS_MAX) {
        return refuse(why, whylen, -1, "more than %d networks", PORTAL_REQ_NETWORKS_MAX);
    }
    c->r->networks[c->r->n_networks++] = net;
    return 0;
}

/* The common checks, given each field's text (NULL when absent). */
static int from_fields(const struct portal_authority *a, const char *countries,
                       const char *networks, const char *legal, const char *contact,
                       const char *not_before, const char *not_after, uint64_t now_us,
                       struct portal_disinfection *out, char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    if (!a->may_request) {
        return refuse(why, whylen, 1, "authority '%s' may not request disinfection", a->id);
    }
    snprintf(out->authority, sizeof(out->authority), "%s", a->id);
    struct list_ctx lc = {.a = a, .r = out};
    int rc;
    if (countries != NULL && (rc = split_list(countries, add_country, &lc, why, whylen)) != 0) {
        return rc;
    }
    if (networks != NULL && (rc = split_list(networks, add_network, &lc, why, whylen)) != 0) {
        return rc;
    }
    if (out->n_countries == 0 && out->n_networks == 0) {
        return refuse(why, whylen, -1, "name at least one country or network");
    }
    if (text_field("legal_reference", legal, out->legal_reference, sizeof(out->legal_reference),
                   true, why, whylen) != 0 ||
        text_field("contact", contact, out->contact, sizeof(out->contact), true, why, whylen) !=
            0) {
        return -1;
    }
    if (not_before == NULL || not_after == NULL ||
        portal_parse_time(not_before, false, &out->not_before_us) != 0 ||
        portal_parse_time(not_after, true, &out->not_after_us) != 0) {
        return refuse(why, whylen, -1,
                      "'not_before' and 'not_after' are required, as YYYY-MM-DD or "
                      "YYYY-MM-DDTHH:MM:SSZ");
    }
    if (out->not_after_us <= out->not_before_us || out->not_after_us <= now_us) {
        return refuse(why, whylen, -1, "the window must end after it starts and in the future");
    }
    if (out->not_after_us - out->not_before_us > PORTAL_REQ_WINDOW_MAX_DAYS * US_PER_DAY) {
        return refuse(why, whylen, -1, "a window of at most %d days", PORTAL_REQ_WINDOW_MAX_DAYS);
    }
    out->status = PORTAL_REQ_PENDING;
    return 0;
}

int portal_disinfection_from_params(const struct portal_authority *a,
                                    const struct portal_params *ps, uint64_t now_us,
                                    struct portal_disinfection *out, char *why, size_t whylen)
{
    static const char *const known[] = {
        "countries", "networks", "legal_reference", "contact", "not_before", "not_after", "csrf"};
    for (size_t i = 0; i < ps->n; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
            ok = ok || strcmp(ps->p[i].name, known[k]) == 0;
        }
        if (!ok) {
            return refuse(why, whylen, -1, "unknown field '%s'", ps->p[i].name);
        }
    }
    return from_fields(a, portal_params_get(ps, "countries"), portal_params_get(ps, "networks"),
                       portal_params_get(ps, "legal_reference"), portal_params_get(ps, "contact"),
                       portal_params_get(ps, "not_before"), portal_params_get(ps, "not_after"),
                       now_us, out, why, whylen);
}

/* A JSON member as text: a string as is, an array of strings joined by commas. */
static int json_text(json_t *o, const char *key, char *buf, size_t cap, const char **out)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL || json_is_null(v)) {
        return 0;
    }
    if (json_is_string(v)) {
        if (json_string_length(v) >= cap ||
            memchr(json_string_value(v), 0, json_string_length(v))) {
            return -1;
        }
        snprintf(buf, cap, "%s", json_string_value(v));
        *out = buf;
        return 0;
    }
    if (!json_is_array(v)) {
        return -1;
    }
    size_t o2 = 0, i;
    json_t *item;
    buf[0] = '\0';
    json_array_foreach(v, i, item)
    {
        if (!json_is_string(item) || memchr(json_string_value(item), 0, json_string_length(item))) {
            return -1;
        }
        int n = snprintf(buf + o2, cap - o2, "%s%s", i ? "," : "", json_string_value(item));
        if (n < 0 || (size_t)n >= cap - o2) {
            return -1;
        }
        o2 += (size_t)n;
    }
    *out = buf;
    return 0;
}

int portal_disinfection_from_json(const struct portal_authority *a, const char *text, size_t len,
                                  uint64_t now_us, struct portal_disinfection *out, char *why,
                                  size_t whylen)
{
    json_error_t je;
    json_t *o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL || !json_is_object(o)) {
        json_decref(o);
        return refuse(why, whylen, -1, "body is not a JSON object");
    }
    static const char *const known[] = {"countries", "networks",   "legal_reference",
                                        "contact",   "not_before", "not_after"};
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
            ok = ok || strcmp(k, known[i]) == 0;
        }
        if (!ok) {
            /* The message is made before the object (which owns k) is freed. */
            int rc = refuse(why, whylen, -1, "unknown field '%.32s'", k);
            json_decref(o);
            return rc;
        }
    }
    enum { F_CC, F_NET, F_LEGAL, F_CONTACT, F_NB, F_NA, F_N };
    char *bufs = malloc(F_N * (PORTAL_PARAM_VALUE_MAX + 1));
    const char *vals[F_N];
    if (bufs == NULL) {
        json_decref(o);
        return refuse(why, whylen, -1, "out of memory");
    }
    int rc = 0;
    for (int f = 0; rc == 0 && f < F_N; f++) {
        if (json_text(o, known[f], bufs + (size_t)f * (PORTAL_PARAM_VALUE_MAX + 1),
                      PORTAL_PARAM_VALUE_MAX + 1, &vals[f]) != 0) {
            rc = refuse(why, whylen, -1,
                        "'%s' must be a string (or a list of strings) of at most "
                        "%d characters",
                        known[f], PORTAL_PARAM_VALUE_MAX);
        }
    }
    if (rc == 0) {
        rc = from_fields(a, vals[F_CC], vals[F_NET], vals[F_LEGAL], vals[F_CONTACT], vals[F_NB],
                         vals[F_NA], now_us, out, why, whylen);
    }
    free(bufs);
    json_decref(o);
    return rc;
}

/* ---- text forms ---------------------------------------------------------------------------- */

static void format_cidr(const struct net_cidr *c, char out[NET_ADDR_STRLEN + 5])
{
    struct net_addr m = {.family = c->family};
    memcpy(m.ip, c->ip, 16);
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(&m, ip);
    snprintf(out, NET_ADDR_STRLEN + 5, "%s/%u", ip, c->prefix);
}

static void join_countries(const struct portal_disinfection *r, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n_countries && o + 4 < cap; i++) {
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? "," : "", r->countries[i]);
    }
}

static void join_networks(const struct portal_disinfection *r, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->n_networks; i++) {
        char c[NET_ADDR_STRLEN + 5];
        format_cidr(&r->networks[i], c);
        int n = snprintf(out + o, cap - o, "%s%s", i ? "," : "", c);
        if (n < 0 || (size_t)n >= cap - o) {
            break;
        }
        o += (size_t)n;
    }
}

void portal_disinfection_scope(const struct portal_disinfection *r, char *out, size_t cap)
{
    char cc[PORTAL_REQ_COUNTRIES_MAX * 3 + 1], nets[PORTAL_REQ_NETWORKS_MAX * 52];
    join_countries(r, cc, sizeof(cc));
    join_networks(r, nets, sizeof(nets));
    snprintf(out, cap, "%s%s%s%s%s", cc[0] ? "countries=" : "", cc, cc[0] && nets[0] ? " " : "",
             nets[0] ? "networks=" : "", nets);
}

static void iso_time(uint64_t us, char out[32])
{
    time_t t = (time_t)(us / US_PER_S);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

char *portal_disinfection_json(const struct portal_disinfection *r)
{
    json_t *o = json_object();
    json_t *cc = json_array(), *nets = json_array();
    if (o == NULL || cc == NULL || nets == NULL) {
        json_decref(o);
        json_decref(cc);
        json_decref(nets);
        return NULL;
    }
    for (size_t i = 0; i < r->n_countries; i++) {
        json_array_append_new(cc, json_string(r->countries[i]));
    }
    for (size_t i = 0; i < r->n_networks; i++) {
        char c[NET_ADDR_STRLEN + 5];
        format_cidr(&r->networks[i], c);
        json_array_append_new(nets, json_string(c));
    }
    char t[32];
    json_object_set_new(o, "id", json_integer((json_int_t)r->id));
    json_object_set_new(o, "authority", json_string(r->authority));
    json_object_set_new(o, "status", json_string(portal_request_status_name(r->status)));
    json_object_set_new(o, "countries", cc);
    json_object_set_new(o, "networks", nets);
    json_object_set_new(o, "legal_reference", json_string(r->legal_reference));
    json_object_set_new(o, "contact", json_string(r->contact));
    iso_time(r->not_before_us, t);
    json_object_set_new(o, "not_before", json_string(t));
    iso_time(r->not_after_us, t);
    json_object_set_new(o, "not_after", json_string(t));
    iso_time(r->submitted_us, t);
    json_object_set_new(o, "submitted", json_string(t));
    if (r->status != PORTAL_REQ_PENDING) {
        iso_time(r->decided_us, t);
        json_object_set_new(o, "decided", json_string(t));
        json_object_set_new(o, "decided_by", json_string(r->decided_by));
    }
    if (r->status == PORTAL_REQ_REJECTED) {
        json_object_set_new(o, "reason", json_string(r->reason));
    }
    if (r->status == PORTAL_REQ_APPROVED) {
        json_object_set_new(o, "authorisation", json_string(r->authorisation));
        char hex[65];
        for (size_t i = 0; i < 32; i++) {
            snprintf(hex + 2 * i, 3, "%02x", r->policy_sha256[i]);
        }
        json_object_set_new(o, "policy_sha256", json_string(hex));
    }
    char *text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return text;
}

/* ---- the store ----------------------------------------------------------------------------- */

struct portal_store {
    sqlite3 *db;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS request("
    " id INTEGER PRIMARY KEY, authority TEXT NOT NULL, countries TEXT NOT NULL,"
    " networks TEXT NOT NULL, legal_reference TEXT NOT NULL, contact TEXT NOT NULL,"
    " not_before_us INTEGER NOT NULL, not_after_us INTEGER NOT NULL,"
    " submitted_us INTEGER NOT NULL, status INTEGER NOT NULL DEFAULT 0,"
    " decided_us INTEGER NOT NULL DEFAULT 0, decided_by TEXT NOT NULL DEFAULT '',"
    " reason TEXT NOT NULL DEFAULT '', authorisation TEXT NOT NULL DEFAULT '',"
    " policy_sha256 BLOB);"
    "CREATE INDEX IF NOT EXISTS request_authority ON request(authority, id);";

static int db_fail(struct portal_store *s, char *err, size_t errlen, const char *what)
{
    return err_set(err, errlen, "requests.db: %s: %s", what, sqlite3_errmsg(s->db));
}

int portal_store_open(struct portal_store **out, const char *state_dir, char *err, size_t errlen)
{
    char dir[PATH_MAX], path[PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s/portal", state_dir) >= (int)sizeof(dir) ||
        snprintf(path, sizeof(path), "%s/requests.db", dir) >= (int)sizeof(path)) {
        return err_set(err, errlen, "state directory path too long");
    }
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        return err_set(err, errlen, "%s: %s", dir, strerror(errno));
    }
    struct portal_store *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        int rc = err_set(err, errlen, "%s: %s", path, s->db ? sqlite3_errmsg(s->db) : "no memory");
        sqlite3_close(s->db);
        free(s);
        return rc;
    }
    sqlite3_busy_timeout(s->db, 5000);
    if (sqlite3_exec(s->db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(s->db, schema, NULL, NULL, NULL) != SQLITE_OK) {
        int rc = db_fail(s, err, errlen, "schema");
        portal_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void portal_store_close(struct portal_store *s)
{
    if (s != NULL) {
        sqlite3_close(s->db);
        free(s);
    }
}

int portal_store_add(struct portal_store *s, struct portal_disinfection *r, char *err,
                     size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO request(authority, countries, networks, legal_reference,"
                           " contact, not_before_us, not_after_us, submitted_us)"
                           " VALUES(?1,?2,?3,?4,?5,?6,?7,?8)",
                           -1, &st, NULL) != SQLITE_OK) {
        return db_fail(s, err, errlen, "prepare");
    }
    if (r->submitted_us == 0) {
        r->submitted_us = event_now_us();
    }
    char cc[PORTAL_REQ_COUNTRIES_MAX * 3 + 1], nets[PORTAL_REQ_NETWORKS_MAX * 52];
    join_countries(r, cc, sizeof(cc));
    join_networks(r, nets, sizeof(nets));
    sqlite3_bind_text(st, 1, r->authority, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, cc, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 3, nets, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 4, r->legal_reference, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, r->contact, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)r->not_before_us);
    sqlite3_bind_int64(st, 7, (sqlite3_int64)r->not_after_us);
    sqlite3_bind_int64(st, 8, (sqlite3_int64)r->submitted_us);
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return db_fail(s, err, errlen, "insert");
    }
    r->id = (uint64_t)sqlite3_last_insert_rowid(s->db);
    r->status = PORTAL_REQ_PENDING;
    return 0;
}

static void col_text(sqlite3_stmt *st, int col, char *dst, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/* A row back into the struct; lists are re-read from their stored text. */
static void row_to_request(sqlite3_stmt *st, struct portal_disinfection *r)
{
    memset(r, 0, sizeof(*r));
    r->id = (uint64_t)sqlite3_column_int64(st, 0);
    col_text(st, 1, r->authority, sizeof(r->authority));
    char buf[PORTAL_REQ_NETWORKS_MAX * 52];
    col_text(st, 2, buf, sizeof(buf));
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save);
         t != NULL && r->n_countries < PORTAL_REQ_COUNTRIES_MAX; t = strtok_r(NULL, ",", &save)) {
        snprintf(r->countries[r->n_countries++], 3, "%s", t);
    }
    col_text(st, 3, buf, sizeof(buf));
    for (char *t = strtok_r(buf, ",", &save); t != NULL && r->n_networks < PORTAL_REQ_NETWORKS_MAX;
         t = strtok_r(NULL, ",", &save)) {
        if (net_cidr_parse(t, &r->networks[r->n_networks], NULL, 0) == 0) {
            r->n_networks++;
        }
    }
    col_text(st, 4, r->legal_reference, sizeof(r->legal_reference));
    col_text(st, 5, r->contact, sizeof(r->contact));
    r->not_before_us = (uint64_t)sqlite3_column_int64(st, 6);
    r->not_after_us = (uint64_t)sqlite3_column_int64(st, 7);
    r->submitted_us = (uint64_t)sqlite3_column_int64(st, 8);
    r->status = (uint8_t)sqlite3_column_int(st, 9);
    r->decided_us = (uint64_t)sqlite3_column_int64(st, 10);
    col_text(st, 11, r->decided_by, sizeof(r->decided_by));
    col_text(st, 12, r->reason, sizeof(r->reason));
    col_text(st, 13, r->authorisation, sizeof(r->authorisation));
    if (sqlite3_column_bytes(st, 14) == 32) {
        memcpy(r->policy_sha256, sqlite3_column_blob(st, 14), 32);
    }
}

#define SELECT_REQUEST                                                                             \
    "SELECT id, authority, countries, networks, legal_reference, contact, not_before_us,"          \
    " not_after_us, submitted_us, status, decided_us, decided_by, reason, authorisation,"          \
    " policy_sha256 FROM request"

int portal_store_get(struct portal_store *s, uint64_t id, struct portal_disinfection *out,
                     char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, SELECT_REQUEST " WHERE id = ?1", -1, &st, NULL) != SQLITE_OK) {
        return db_fail(s, err, errlen, "prepare");
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)id);
    int rc = sqlite3_step(st);
    int result = 0;
    if (rc == SQLITE_ROW) {
        row_to_request(st, out);
        result = 1;
    } else if (rc != SQLITE_DONE) {
        result = db_fail(s, err, errlen, "select");
    }
    sqlite3_finalize(st);
    return result;
}

int portal_store_list(struct portal_store *s, const char *authority, portal_request_fn fn,
                      void *ctx, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const char *sql = authority != NULL ? SELECT_REQUEST " WHERE authority = ?1 ORDER BY id"
                                        : SELECT_REQUEST " ORDER BY id";
    if (sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) != SQLITE_OK) {
        return db_fail(s, err, errlen, "prepare");
    }
    if (authority != NULL) {
        sqlite3_bind_text(st, 1, authority, -1, SQLITE_TRANSIENT);
    }
    struct portal_disinfection *r = malloc(sizeof(*r));
    if (r == NULL) {
        sqlite3_finalize(st);
        return err_set(err, errlen, "out of memory");
    }
    int rc = 0;
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        row_to_request(st, r);
        rc = fn(ctx, r);
    }
    if (rc == 0 && step != SQLITE_DONE) {
        rc = db_fail(s, err, errlen, "select");
    }
    free(r);
    sqlite3_finalize(st);
    return rc;
}

int portal_store_decide(struct portal_store *s, const struct portal_disinfection *r, char *err,
                        size_t errlen)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE request SET status=?2, decided_us=?3, decided_by=?4, reason=?5,"
                           " authorisation=?6, policy_sha256=?7 WHERE id=?1 AND status=0",
                           -1, &st, NULL) != SQLITE_OK) {
        return db_fail(s, err, errlen, "prepare");
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)r->id);
    sqlite3_bind_int(st, 2, r->status);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)r->decided_us);
    sqlite3_bind_text(st, 4, r->decided_by, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 5, r->reason, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 6, r->authorisation, -1, SQLITE_TRANSIENT);
    if (r->status == PORTAL_REQ_APPROVED) {
        sqlite3_bind_blob(st, 7, r->policy_sha256, 32, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_null(st, 7);
    }
    int rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        return db_fail(s, err, errlen, "update");
    }
    return sqlite3_changes(s->db) == 1 ? 0 : 1;
}

/* ---- approval into the policy ------------------------------------------------------------- */

int portal_approve_policy(const char *old_text, size_t old_len, const char *policy_name,
                          const struct portal_disinfection *r, const char *authority_name,
                          double rate, uint32_t command_id, const char *const *exclude_tags,
                          size_t n_exclude_tags, char **new_text, size_t *new_len, char *err,
                          size_t errlen)
{
    char *text = malloc(old_len + 1);
    if (text == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    memcpy(text, old_text, old_len);
    text[old_len] = '\0';
    size_t len = old_len;
    /* One authorisation per kind of scope: the policy matches a bot when every key given
     * matches, so countries and networks in one section would mean "in those countries AND
     * those networks", narrower than what was asked. */
    for (int kind = 0; kind < 2; kind++) {
        if ((kind == 0 && r->n_countries == 0) || (kind == 1 && r->n_networks == 0)) {
            continue;
        }
        char id[POLICY_ID_MAX + 1], authority[POLICY_TEXT_MAX + 1], comment[160];
        snprintf(id, sizeof(id), "portal-%" PRIu64 "-%s", r->id, kind == 0 ? "cc" : "net");
        snprintf(authority, sizeof(authority), "%s (portal authority %s)", authority_name,
                 r->authority);
        snprintf(comment, sizeof(comment), "portal request %" PRIu64 " by %s, approved", r->id,
                 r->authority);
        struct policy_authorisation_text a = {
            .id = id,
            .authority = authority,
            .legal_reference = r->legal_reference,
            .countries = kind == 0 ? r->countries : NULL,
            .n_countries = kind == 0 ? r->n_countries : 0,
            .prefixes = kind == 1 ? r->networks : NULL,
            .n_prefixes = kind == 1 ? r->n_networks : 0,
            .not_before_us = r->not_before_us,
            .not_after_us = r->not_after_us,
            .rate = rate,
            .exclude_tags = exclude_tags,
            .n_exclude_tags = n_exclude_tags,
            .command = POLICY_COMMAND_UNINSTALL,
            .command_id = command_id,
            .mode = POLICY_MODE_ENFORCE,
            .comment = comment,
        };
        char *next = NULL;
        size_t next_len = 0;
        if (policy_append_authorisation(text, len, policy_name, &a, &next, &next_len, err,
                                        errlen) != 0) {
            free(text);
            return -1;
        }
        free(text);
        text = next;
        len = next_len;
    }
    *new_text = text;
    *new_len = len;
    return 0;
}
