/* routes.c -- what each portal path answers: who is asking (Bearer token, session cookie or
 * client certificate), whether they said why (X-Justification), whether the filters stay inside
 * their scope, and an access record for every answered read and every refused reach past it. */
#include "evidence/access.h"
#include "portal/internal.h"
#include "util/err.h"

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define US_PER_S 1000000ULL
#define US_PER_DAY (86400ULL * US_PER_S)

/* The page's files (src/portal/assets/), built into the binary by cmake/embed.cmake. */
extern const unsigned char sinkd_portal_html[], sinkd_portal_js[], sinkd_portal_css[],
    sinkd_portal_map[], sinkd_portal_charts[], sinkd_portal_chartscss[];
extern const size_t sinkd_portal_html_len, sinkd_portal_js_len, sinkd_portal_css_len,
    sinkd_portal_map_len, sinkd_portal_charts_len, sinkd_portal_chartscss_len;

#define SESSION_COOKIE "sinkd_session"
#define LOGIN_CSRF_COOKIE "sinkd_csrf"

void portal_answer_text(struct portal_answer *a, int status, const char *ctype, const char *text)
{
    a->status = status;
    a->ctype = ctype;
    a->body = strdup(text);
    a->len = a->body != NULL ? strlen(a->body) : 0;
    a->body_static = false;
}

void portal_answer_error(struct portal_answer *a, int status, const char *message)
{
    json_t *j = json_pack("{s:s}", "error", message);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    a->status = status;
    a->ctype = "application/json";
    a->body = text;
    a->len = text != NULL ? strlen(text) : 0;
    a->body_static = false;
}

static void add_header(struct portal_answer *a, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void add_header(struct portal_answer *a, const char *fmt, ...)
{
    size_t o = strlen(a->headers);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a->headers + o, sizeof(a->headers) - o, fmt, ap); /* NOLINT */
    va_end(ap);
}

static void answer_static(struct portal_answer *a, const char *ctype, const unsigned char *data,
                          size_t len)
{
    a->status = 200;
    a->ctype = ctype;
    a->body = (char *)data;
    a->len = len;
    a->body_static = true;
}

/* Operator log lines carry no token and no victim data; a path is cut to printable bytes. */
static void oplog(struct portal_state *st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void oplog(struct portal_state *st, const char *fmt, ...)
{
    if (st->cfg->log == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("sinkd portal: ", st->cfg->log);
    vfprintf(st->cfg->log, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    fputc('\n', st->cfg->log);
    fflush(st->cfg->log);
    va_end(ap);
}

static void printable(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    for (; *in != '\0' && o + 1 < cap; in++) {
        unsigned char c = (unsigned char)*in;
        out[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    out[o] = '\0';
}

/* ---- access records ----------------------------------------------------------------------- */

struct who {
    const struct portal_authority *a;
    struct portal_session *session;
    char justification[PORTAL_JUSTIFICATION_MAX + 1];
};

/* Makes a record durable (DIR/spool, which serve's log writer drains into the log) and puts a
 * copy on the operator log (records hold no victim data and no token). 0 or -1. */
static int put_record(struct portal_state *st, struct record *rec)
{
    char err[256] = "";
    if (st->cfg->node != NULL && st->cfg->node[0] != '\0') {
        snprintf(rec->u.note.node, sizeof(rec->u.note.node), "%s", st->cfg->node);
    }
    int rc = st->cfg->record != NULL ? st->cfg->record(st->cfg->record_ctx, rec, err, sizeof(err))
                                     : access_spool(st->cfg->state_dir, rec, err, sizeof(err));
    if (rc != 0) {
        oplog(st, "%s record NOT written, answer withheld: %s", event_kind_name(rec->kind), err);
        return -1;
    }
    json_t *j = event_to_json(rec);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (text != NULL) {
        oplog(st, "record %s", text);
    }
    free(text);
    return 0;
}

/* The access record of an answer (built by evidence/access.h), durable before the answer goes
 * out. 0, or -1: the caller withholds the answer. */
static int put_access(struct portal_state *st, const struct who *w, const char *what,
                      const char *filters, uint64_t rows, const char *body, size_t len)
{
    struct record *rec = calloc(1, sizeof(*rec));
    if (rec == NULL) {
        oplog(st, "out of memory for an access record");
        return -1;
    }
    uint8_t sha[32];
    EVP_Digest(body != NULL ? body : "", body != NULL ? len : 0, sha, NULL, EVP_sha256(), NULL);
    char scope[400], full[512], op[64], err[256];
    portal_scope_text(w->a, scope, sizeof(scope));
    snprintf(full, sizeof(full), "%s%s%.100s", scope, filters[0] ? " " : "", filters);
    snprintf(op, sizeof(op), "portal:%.56s", w->a->id);
    int rc =
        access_record_build(rec, op, what, full, rows, sha, w->justification, err, sizeof(err));
    if (rc != 0) {
        oplog(st, "access record for %s not built: %s", w->a->id, err);
        rc = -1;
    } else {
        rc = put_record(st, rec);
    }
    free(rec);
    return rc;
}

static void withhold(struct portal_answer *ans)
{
    if (!ans->body_static) {
        free(ans->body);
    }
    memset(ans, 0, sizeof(*ans));
    portal_answer_error(ans, 503,
                        "the access record could not be made durable; nothing was handed out");
}

/* A refused reach past the scope: an access record with no rows, and an operator line. */
static void refuse_scope(struct portal_state *st, const struct who *w, struct portal_answer *ans,
                         int status, const char *what, const char *why)
{
    char filters[300];
    snprintf(filters, sizeof(filters), "refused: %s", why);
    (void)put_access(st, w, what, filters, 0, NULL, 0); /* refused either way */
    oplog(st, "refused %s for authority %s: %s", what, w->a->id, why);
    st->refused++;
    portal_answer_error(ans, status, why);
}

/* ---- who is asking ------------------------------------------------------------------------ */

static bool justification_ok(const char *text)
{
    size_t n = strlen(text);
    if (n == 0 || n > PORTAL_JUSTIFICATION_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)text[i] < 0x20 && text[i] != '\t') {
            return false;
        }
    }
    return true;
}

/* 0 with *w filled, or -1 with the answer set (401, 429). */
static int authenticate(struct portal_state *st, const struct portal_request *req,
                        const struct portal_peer *peer, struct who *w, struct portal_answer *ans)
{
    memset(w, 0, sizeof(*w));
    uint64_t now = event_now_us();
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(&peer->ip, ip);
    if (portal_fail_blocked(st->sessions, &peer->ip, now)) {
        st->refused++;
        portal_answer_error(ans, 429, "too many failed logins from this address; wait");
        return -1;
    }
    const char *failure = NULL;
    bool presented = true;
    if (req->has_authorization) {
        static const char bearer[] = "Bearer ";
        if (strncmp(req->authorization, bearer, sizeof(bearer) - 1) != 0) {
            failure = "Authorization is not 'Bearer TOKEN'";
        } else {
            const char *tok = req->authorization + sizeof(bearer) - 1;
            w->a = portal_authority_by_token(st->authorities, tok, strlen(tok));
            failure = w->a == NULL ? "wrong token" : NULL;
        }
    } else {
        char sid[PORTAL_SESSION_ID_HEX + 2];
        if (portal_cookie_get(req->cookie, SESSION_COOKIE, sid, sizeof(sid)) == 0) {
            w->session = portal_session_find(st->sessions, sid, now);
            w->a = w->session != NULL
                       ? portal_authority_by_id(st->authorities, w->session->authority)
                       : NULL;
            failure = w->a == NULL ? "session unknown or expired" : NULL;
        } else if (peer->has_cert) {
            w->a = portal_authority_by_cert(st->authorities, peer->cert_sha256);
            failure = w->a == NULL ? "client certificate not known" : NULL;
        } else {
            failure = "Authorization: Bearer TOKEN required";
            presented = false;
        }
    }
    if (w->a == NULL) {
        /* Only a credential that was tried and failed counts towards the limit: a page that
         * asks whether it has a session before anyone logged in is not a guess. */
        if (presented) {
            portal_fail_note(st->sessions, &peer->ip, now);
        }
        /* The address is the peer's (a proxy's, behind one); never the token. */
        oplog(st, "refused login from %s: %s", ip, failure);
        st->refused++;
        portal_answer_error(ans, 401, failure);
        add_header(ans, "WWW-Authenticate: Bearer realm=\"sinkd portal\"\r\n");
        return -1;
    }
    if (req->has_justification) {
        snprintf(w->justification, sizeof(w->justification), "%s", req->justification);
    } else if (w->session != NULL) {
        snprintf(w->justification, sizeof(w->justification), "%s", w->session->justification);
    }
    return 0;
}

static bool need_justification(struct portal_state *st, const struct who *w,
                               struct portal_answer *ans)
{
    char err[256];
    if (justification_ok(w->justification) &&
        access_check_args(NULL, w->justification, err, sizeof(err)) == 0) {
        return true;
    }
    st->refused++;
    char msg[400];
    snprintf(msg, sizeof(msg),
             "X-Justification: TEXT is required (why this data is consulted, at least %d "
             "characters; it goes on the record)",
             ACCESS_JUSTIFICATION_MIN);
    portal_answer_error(ans, 400, msg);
    return false;
}

/* A POST made with an ambient credential (the session cookie or a client certificate) must
 * prove it comes from the portal's own page: the session's CSRF token in X-CSRF-Token, or, for
 * a certificate, a JSON body (a cross-site form cannot send one without a preflight, which this
 * server never grants). */
static bool post_allowed(struct portal_state *st, const struct portal_request *req,
                         const struct who *w, struct portal_answer *ans)
{
    if (req->has_authorization) {
        return true;
    }
    if (w->session != NULL) {
        if (strlen(req->csrf) == PORTAL_SESSION_ID_HEX &&
            CRYPTO_memcmp(req->csrf, w->session->csrf, PORTAL_SESSION_ID_HEX) == 0) {
            return true;
        }
    } else if (strncmp(req->content_type, "application/json", 16) == 0) {
        return true;
    }
    st->refused++;
    oplog(st, "refused POST for authority %s: no valid CSRF token", w->a->id);
    portal_answer_error(ans, 403, "missing or wrong X-CSRF-Token");
    return false;
}

/* ---- login -------------------------------------------------------------------------------- */

static void route_csrf(struct portal_answer *ans)
{
    char token[PORTAL_SESSION_ID_HEX + 1];
    if (portal_random_hex(token, 32) != 0) {
        portal_answer_error(ans, 500, "no randomness");
        return;
    }
    json_t *j = json_pack("{s:s}", "csrf", token);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    portal_answer_text(ans, 200, "application/json", text != NULL ? text : "{}");
    free(text);
    add_header(ans,
               "Set-Cookie: " LOGIN_CSRF_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict; "
               "Max-Age=600\r\n",
               token);
}

static void session_json(struct portal_answer *ans, int status, const struct portal_authority *a,
                         const struct portal_session *s)
{
    json_t *cc = json_array();
    for (size_t i = 0; i < a->n_countries; i++) {
        json_array_append_new(cc, json_string(a->countries[i]));
    }
    json_t *nets = json_array();
    for (size_t i = 0; i < a->n_networks; i++) {
        struct net_addr m = {.family = a->networks[i].family};
        memcpy(m.ip, a->networks[i].ip, 16);
        char ip[NET_ADDR_STRLEN], text[NET_ADDR_STRLEN + 5];
        net_addr_format_ip(&m, ip);
        snprintf(text, sizeof(text), "%s/%u", ip, a->networks[i].prefix);
        json_array_append_new(nets, json_string(text));
    }
    json_t *asns = json_array();
    for (size_t i = 0; i < a->n_asns; i++) {
        json_array_append_new(asns, json_integer(a->asns[i]));
    }
    json_t *j = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:b,s:b,s:i,s:s}", "authority", a->id, "name",
                          a->name, "csrf", s->csrf, "countries", cc, "asns", asns, "networks", nets,
                          "may_read", a->may_read, "may_request", a->may_request, "max_days_old",
                          (int)a->max_days_old, "justification", s->justification);
    char *text = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    portal_answer_text(ans, status, "application/json", text != NULL ? text : "{}");
    free(text);
}

static void route_login(struct portal_state *st, const struct portal_request *req,
                        const struct portal_peer *peer, struct portal_answer *ans)
{
    uint64_t now = event_now_us();
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(&peer->ip, ip);
    if (portal_fail_blocked(st->sessions, &peer->ip, now)) {
        st->refused++;
        portal_answer_error(ans, 429, "too many failed logins from this address; wait");
        return;
    }
    /* Double-submit: the token a GET /api/v1/csrf set as a cookie must come back in the header,
     * which a page on another origin can neither read nor send. */
    char cookie_csrf[PORTAL_SESSION_ID_HEX + 2];
    if (portal_cookie_get(req->cookie, LOGIN_CSRF_COOKIE, cookie_csrf, sizeof(cookie_csrf)) != 0 ||
        strlen(cookie_csrf) != PORTAL_SESSION_ID_HEX ||
        strlen(req->csrf) != PORTAL_SESSION_ID_HEX ||
        CRYPTO_memcmp(cookie_csrf, req->csrf, PORTAL_SESSION_ID_HEX) != 0) {
        st->refused++;
        oplog(st, "refused login from %s: no valid CSRF token", ip);
        portal_answer_error(ans, 403, "missing or wrong X-CSRF-Token (GET /api/v1/csrf first)");
        return;
    }
    json_error_t je;
    json_t *j =
        json_loadb(req->body != NULL ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &je);
    const char *token = json_string_value(json_object_get(j, "token"));
    const char *just = json_string_value(json_object_get(j, "justification"));
    char jerr[256];
    if (j == NULL || !json_is_object(j) || just == NULL || !justification_ok(just) ||
        access_check_args(NULL, just, jerr, sizeof(jerr)) != 0) {
        json_decref(j);
        st->refused++;
        portal_answer_error(ans, 400,
                            "body: {\"token\": TOKEN, \"justification\": TEXT} (the "
                            "justification goes on the record of every read of the session)");
        return;
    }
    const struct portal_authority *a = NULL;
    if (token != NULL && token[0] != '\0') {
        a = portal_authority_by_token(st->authorities, token, strlen(token));
    } else if (peer->has_cert) {
        a = portal_authority_by_cert(st->authorities, peer->cert_sha256);
    }
    if (a == NULL) {
        json_decref(j);
        portal_fail_note(st->sessions, &peer->ip, now);
        st->refused++;
        oplog(st, "refused login from %s: wrong token or unknown certificate", ip);
        portal_answer_error(ans, 401, "wrong token");
        return;
    }
    struct portal_session *s = portal_session_new(st->sessions, a->id, just, now);
    json_decref(j);
    if (s == NULL) {
        portal_answer_error(ans, 503, "too many sessions; try again later");
        return;
    }
    oplog(st, "login: authority %s from %s", a->id, ip);
    session_json(ans, 200, a, s);
    add_header(ans,
               "Set-Cookie: " SESSION_COOKIE "=%s; Path=/; Secure; HttpOnly; SameSite=Strict; "
               "Max-Age=%d\r\nSet-Cookie: " LOGIN_CSRF_COOKIE "=; Path=/; Secure; HttpOnly; "
               "SameSite=Strict; Max-Age=0\r\n",
               s->id, PORTAL_SESSION_TTL_S);
}

/* ---- reads -------------------------------------------------------------------------------- */

static uint64_t window_start(const struct portal_authority *a, uint64_t now)
{
    uint64_t span = (uint64_t)a->max_days_old * US_PER_DAY;
    return now > span ? now - span : 0;
}

/* Splits "a,b" values and repeated parameters into fn(item); -1 stops. */
static int each_value(const struct portal_params *ps, const char *name,
                      int (*fn)(void *ctx, const char *item), void *ctx)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->p[i].name, name) != 0) {
            continue;
        }
        char buf[PORTAL_PARAM_VALUE_MAX + 1];
        snprintf(buf, sizeof(buf), "%s", ps->p[i].value);
        char *save = NULL;
        for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
            if (fn(ctx, t) != 0) {
                return -1;
            }
        }
    }
    return 0;
}

struct filter_ctx {
    const struct portal_authority *a;
    struct portal_victims_query *q;
    char why[160];
    int status;
};

static int filter_cc(void *ctx, const char *item)
{
    struct filter_ctx *f = ctx;
    if (!portal_scope_has_country(f->a, item)) {
        snprintf(f->why, sizeof(f->why), "country '%.8s' is outside your scope", item);
        f->status = 403;
        return -1;
    }
    if (f->q->n_cc == 16) {
        snprintf(f->why, sizeof(f->why), "at most 16 countries");
        f->status = 400;
        return -1;
    }
    memcpy(f->q->cc[f->q->n_cc++], item, 3);
    return 0;
}

static int filter_asn(void *ctx, const char *item)
{
    struct filter_ctx *f = ctx;
    char *end = NULL;
    unsigned long long v = strtoull(item[0] == 'A' && item[1] == 'S' ? item + 2 : item, &end, 10);
    if (end == NULL || *end != '\0' || v == 0 || v > UINT32_MAX) {
        snprintf(f->why, sizeof(f->why), "bad AS number");
        f->status = 400;
        return -1;
    }
    if (!portal_scope_has_asn(f->a, (uint32_t)v)) {
        snprintf(f->why, sizeof(f->why), "AS%llu is outside your scope", v);
        f->status = 403;
        return -1;
    }
    if (f->q->n_asn == 16) {
        snprintf(f->why, sizeof(f->why), "at most 16 ASNs");
        f->status = 400;
        return -1;
    }
    f->q->asn[f->q->n_asn++] = (uint32_t)v;
    return 0;
}

static int filter_net(void *ctx, const char *item)
{
    struct filter_ctx *f = ctx;
    struct net_cidr c;
    if (strchr(item, '/') == NULL || net_cidr_parse(item, &c, NULL, 0) != 0) {
        snprintf(f->why, sizeof(f->why), "bad network (ip.net=CIDR)");
        f->status = 400;
        return -1;
    }
    if (!portal_scope_has_network(f->a, &c)) {
        snprintf(f->why, sizeof(f->why), "network %.64s is outside your networks", item);
        f->status = 403;
        return -1;
    }
    if (f->q->n_net == 16) {
        snprintf(f->why, sizeof(f->why), "at most 16 networks");
        f->status = 400;
        return -1;
    }
    f->q->net[f->q->n_net++] = c;
    return 0;
}

/* The query of GET /api/v1/victims, names as n6's where n6 has them. Unknown names are refused
 * (a typo must not silently widen what is handed out). Returns 0, or the status to answer. */
static int victims_query(const struct portal_authority *a, const struct portal_params *ps,
                         struct portal_victims_query *q, char *why, size_t whylen)
{
    static const char *const known[] = {"format",   "cc",       "asn",       "ip.net", "ip",
                                        "time.min", "time.max", "opt.limit", "since",  "until"};
    for (size_t i = 0; i < ps->n; i++) {
        bool ok = false;
        for (size_t k = 0; k < sizeof(known) / sizeof(known[0]); k++) {
            ok = ok || strcmp(ps->p[i].name, known[k]) == 0;
        }
        if (!ok) {
            snprintf(why, whylen, "unknown parameter '%.32s'", ps->p[i].name);
            return 400;
        }
    }
    memset(q, 0, sizeof(*q));
    const char *fmt = portal_params_get(ps, "format");
    if (fmt == NULL || strcmp(fmt, "csv") == 0) {
        q->format = PV_CSV;
    } else if (strcmp(fmt, "intelmq") == 0) {
        q->format = PV_INTELMQ;
    } else if (strcmp(fmt, "n6") == 0) {
        q->format = PV_N6;
    } else {
        snprintf(why, whylen, "format is csv, intelmq or n6");
        return 400;
    }
    struct filter_ctx f = {.a = a, .q = q};
    if (each_value(ps, "cc", filter_cc, &f) != 0 || each_value(ps, "asn", filter_asn, &f) != 0 ||
        each_value(ps, "ip.net", filter_net, &f) != 0) {
        snprintf(why, whylen, "%s", f.why);
        return f.status;
    }
    const char *ip = portal_params_get(ps, "ip");
    if (ip != NULL && net_addr_parse_ip(ip, &q->ip) != 0) {
        snprintf(why, whylen, "bad ip");
        return 400;
    }
    const char *since = portal_params_get(ps, "time.min");
    const char *until = portal_params_get(ps, "time.max");
    since = since != NULL ? since : portal_params_get(ps, "since");
    until = until != NULL ? until : portal_params_get(ps, "until");
    if ((since != NULL && portal_parse_time(since, false, &q->since_us) != 0) ||
        (until != NULL && portal_parse_time(until, true, &q->until_us) != 0)) {
        snprintf(why, whylen, "times are YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ");
        return 400;
    }
    const char *limit = portal_params_get(ps, "opt.limit");
    if (limit != NULL) {
        char *end = NULL;
        q->limit = strtoull(limit, &end, 10);
        if (end == NULL || *end != '\0' || q->limit == 0) {
            snprintf(why, whylen, "opt.limit is a whole number > 0");
            return 400;
        }
    }
    return 0;
}

static void route_victims(struct portal_state *st, const struct who *w,
                          const struct portal_request *req, struct portal_answer *ans)
{
    struct portal_params *ps = malloc(sizeof(*ps));
    struct portal_victims_query *q = malloc(sizeof(*q));
    char why[200] = "";
    if (ps == NULL || q == NULL) {
        free(ps);
        free(q);
        portal_answer_error(ans, 500, "out of memory");
        return;
    }
    char what[128];
    snprintf(what, sizeof(what), "GET /api/v1/victims");
    if (portal_params_parse(req->query, strlen(req->query), ps, why, sizeof(why)) != 0) {
        portal_answer_error(ans, 400, why);
        goto out;
    }
    int status = victims_query(w->a, ps, q, why, sizeof(why));
    if (status == 403) {
        refuse_scope(st, w, ans, 403, what, why);
        goto out;
    }
    if (status != 0) {
        portal_answer_error(ans, status, why);
        goto out;
    }
    uint64_t floor = window_start(w->a, event_now_us());
    if (q->since_us < floor) {
        q->since_us = floor; /* max_days_old: older rows are not handed out */
    }
    char *body = NULL;
    size_t len = 0;
    uint64_t rows = 0;
    char err[256];
    int rc = portal_victims(st, w->a, q, &body, &len, &rows, err, sizeof(err));
    if (rc < 0) {
        oplog(st, "victims for %s: %s", w->a->id, err);
        portal_answer_error(ans, 500, "registry error");
        goto out;
    }
    if (rc == 1) {
        portal_answer_error(ans, 413, "more than the largest answer; narrow it with time.min");
        goto out;
    }
    static const char *const fmt_name[] = {"csv", "intelmq", "n6"};
    char filters[300];
    snprintf(filters, sizeof(filters), "format=%s since=%" PRIu64, fmt_name[q->format],
             (uint64_t)(q->since_us / US_PER_S));
    /* Filters name parts of the scope (countries, ASNs, networks), never a victim; an `ip`
     * filter is recorded as its digest. */
    if (q->n_cc || q->n_asn || q->n_net || q->ip.family) {
        size_t o = strlen(filters);
        snprintf(filters + o, sizeof(filters) - o, " filtered");
    }
    if (put_access(st, w, what, filters, rows, body, len) != 0) {
        free(body);
        withhold(ans);
        goto out;
    }
    ans->status = 200;
    ans->ctype = q->format == PV_CSV       ? "text/csv; charset=utf-8"
                 : q->format == PV_INTELMQ ? "application/x-ndjson"
                                           : "application/json";
    ans->body = body;
    ans->len = len;
    add_header(ans, "Content-Disposition: attachment; filename=\"sinkd-%s-victims.%s\"\r\n",
               w->a->id,
               q->format == PV_CSV       ? "csv"
               : q->format == PV_INTELMQ ? "jsonl"
                                         : "json");
    add_header(ans, "X-Sinkd-Rows: %" PRIu64 "\r\n", rows);
    st->answered++;
out:
    free(ps);
    free(q);
}

static void route_stats(struct portal_state *st, const struct who *w, struct portal_answer *ans)
{
    char *body = NULL;
    size_t len = 0;
    uint64_t rows = 0;
    char err[256];
    if (portal_stats(st, w->a, window_start(w->a, event_now_us()), &body, &len, &rows, err,
                     sizeof(err)) != 0) {
        oplog(st, "stats for %s: %s", w->a->id, err);
        portal_answer_error(ans, 500, "registry error");
        return;
    }
    if (put_access(st, w, "GET /api/v1/stats", "counts only", rows, body, len) != 0) {
        free(body);
        withhold(ans);
        return;
    }
    ans->status = 200;
    ans->ctype = "application/json";
    ans->body = body;
    ans->len = len;
    st->answered++;
}

static void route_bundle(struct portal_state *st, const struct who *w,
                         const struct portal_request *req, struct portal_answer *ans)
{
    struct portal_params *ps = malloc(sizeof(*ps));
    char why[128];
    if (ps == NULL) {
        portal_answer_error(ans, 500, "out of memory");
        return;
    }
    struct net_addr ip;
    int bad = portal_params_parse(req->query, strlen(req->query), ps, why, sizeof(why)) != 0 ||
              portal_params_get(ps, "ip") == NULL || ps->n != 1 ||
              net_addr_parse_ip(portal_params_get(ps, "ip"), &ip) != 0;
    free(ps);
    if (bad) {
        portal_answer_error(ans, 400, "GET /api/v1/bundle?ip=ADDRESS");
        return;
    }
    /* The address goes on the record as its SHA-256 (an auditor who knows it can check). */
    uint8_t d[32];
    EVP_Digest(ip.ip, ip.family == AF_INET ? 4 : 16, d, NULL, EVP_sha256(), NULL);
    char filters[96];
    snprintf(filters, sizeof(filters), "ip_sha256=");
    for (size_t i = 0; i < 8; i++) {
        snprintf(filters + strlen(filters), 3, "%02x", d[i]);
    }
    char *body = NULL;
    size_t len = 0;
    uint64_t rows = 0;
    bool foreign = false;
    char err[256];
    int rc = portal_bundle(st, w->a, &ip, window_start(w->a, event_now_us()), &body, &len, &rows,
                           &foreign, err, sizeof(err));
    if (rc < 0) {
        oplog(st, "bundle for %s: %s", w->a->id, err);
        portal_answer_error(ans, 500, "bundle error");
        return;
    }
    if (rc == 1) {
        /* One answer whether the address is nobody's or another authority's: the refusal must
         * not tell an authority where other countries' victims are. */
        if (foreign) {
            char what[128];
            snprintf(what, sizeof(what), "GET /api/v1/bundle %s", filters);
            (void)put_access(st, w, what, "refused: address outside the scope", 0, NULL, 0);
            oplog(st, "refused GET /api/v1/bundle for authority %s: address outside its scope",
                  w->a->id);
            st->refused++;
        }
        portal_answer_error(ans, 404, "no victim of yours at that address");
        return;
    }
    if (put_access(st, w, "GET /api/v1/bundle", filters, rows, body, len) != 0) {
        free(body);
        withhold(ans);
        return;
    }
    ans->status = 200;
    ans->ctype = "application/x-tar";
    ans->body = body;
    ans->len = len;
    add_header(ans, "Content-Disposition: attachment; filename=\"sinkd-bundle-%s.tar\"\r\n",
               w->a->id);
    st->answered++;
}

/* ---- requests ----------------------------------------------------------------------------- */

struct list_out {
    json_t *arr;
};

static int list_request(void *ctx, const struct portal_disinfection *r)
{
    struct list_out *l = ctx;
    char *text = portal_disinfection_json(r);
    json_error_t je;
    json_t *j = text != NULL ? json_loads(text, 0, &je) : NULL;
    free(text);
    if (j == NULL) {
        return -1;
    }
    json_array_append_new(l->arr, j);
    return 0;
}

static void route_requests_get(struct portal_state *st, const struct who *w,
                               struct portal_answer *ans)
{
    struct list_out l = {.arr = json_array()};
    char err[256];
    if (l.arr == NULL ||
        portal_store_list(st->store, w->a->id, list_request, &l, err, sizeof(err)) != 0) {
        json_decref(l.arr);
        portal_answer_error(ans, 500, "request store error");
        return;
    }
    char *text = json_dumps(l.arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t rows = json_array_size(l.arr);
    json_decref(l.arr);
    if (text == NULL) {
        portal_answer_error(ans, 500, "out of memory");
        return;
    }
    if (put_access(st, w, "GET /api/v1/requests", "its own requests", rows, text, strlen(text)) !=
        0) {
        free(text);
        withhold(ans);
        return;
    }
    ans->status = 200;
    ans->ctype = "application/json";
    ans->body = text;
    ans->len = strlen(text);
    st->answered++;
}

/* The portal-request record of a stored request (event.h): no contact, no victim data. */
static int put_request_record(struct portal_state *st, const struct who *w,
                              const struct portal_disinfection *r)
{
    struct record *rec = calloc(1, sizeof(*rec));
    if (rec == NULL) {
        return -1;
    }
    rec->kind = RECORD_PORTAL_REQUEST;
    struct portal_request_record *p = &rec->u.portal_request;
    p->time_us = event_now_us();
    snprintf(p->operator_name, sizeof(p->operator_name), "portal:%.56s", w->a->id);
    snprintf(p->authority, sizeof(p->authority), "%s", w->a->id);
    p->request_id = r->id;
    portal_disinfection_scope(r, p->scope, sizeof(p->scope));
    p->not_before_us = r->not_before_us;
    p->not_after_us = r->not_after_us;
    snprintf(p->legal_reference, sizeof(p->legal_reference), "%s", r->legal_reference);
    p->state = PORTAL_REQUEST_SUBMITTED;
    int rc = put_record(st, rec);
    free(rec);
    return rc;
}

static void route_requests_post(struct portal_state *st, const struct who *w,
                                const struct portal_request *req, struct portal_answer *ans)
{
    struct portal_disinfection *r = malloc(sizeof(*r));
    struct portal_params *ps = malloc(sizeof(*ps));
    char why[256] = "";
    if (r == NULL || ps == NULL) {
        free(r);
        free(ps);
        portal_answer_error(ans, 500, "out of memory");
        return;
    }
    uint64_t now = event_now_us();
    int rc;
    if (strncmp(req->content_type, "application/json", 16) == 0) {
        rc = portal_disinfection_from_json(w->a, req->body != NULL ? req->body : "", req->body_len,
                                           now, r, why, sizeof(why));
    } else if (portal_params_parse(req->body != NULL ? req->body : "", req->body_len, ps, why,
                                   sizeof(why)) == 0) {
        rc = portal_disinfection_from_params(w->a, ps, now, r, why, sizeof(why));
    } else {
        rc = -1;
    }
    char err[256];
    if (rc == 1) {
        refuse_scope(st, w, ans, 403, "POST /api/v1/requests", why);
    } else if (rc != 0) {
        portal_answer_error(ans, 400, why);
    } else if (portal_store_add(st->store, r, err, sizeof(err)) != 0) {
        oplog(st, "request of %s not stored: %s", w->a->id, err);
        portal_answer_error(ans, 500, "request store error");
    } else if (put_request_record(st, w, r) != 0) {
        portal_answer_error(ans, 503,
                            "the request is stored but its log record could not be "
                            "made durable; tell the operator");
    } else {
        char *text = portal_disinfection_json(r);
        portal_answer_text(ans, 201, "application/json", text != NULL ? text : "{}");
        free(text);
        oplog(st, "disinfection request %" PRIu64 " stored for authority %s", r->id, w->a->id);
        st->answered++;
    }
    free(r);
    free(ps);
}

/* ---- the router --------------------------------------------------------------------------- */

void portal_route(struct portal_state *st, const struct portal_request *req,
                  const struct portal_peer *peer, struct portal_answer *ans)
{
    const char *path = req->path;
    bool get = req->method == PORTAL_GET || req->method == PORTAL_HEAD_METHOD;
    bool post = req->method == PORTAL_POST;
    static const struct {
        const char *path, *ctype;
        const unsigned char *data;
        const size_t *len;
    } assets[] = {
        {"/", "text/html; charset=utf-8", sinkd_portal_html, &sinkd_portal_html_len},
        {"/index.html", "text/html; charset=utf-8", sinkd_portal_html, &sinkd_portal_html_len},
        {"/portal.js", "text/javascript; charset=utf-8", sinkd_portal_js, &sinkd_portal_js_len},
        {"/portal.css", "text/css; charset=utf-8", sinkd_portal_css, &sinkd_portal_css_len},
        {"/worldmap.svg", "image/svg+xml", sinkd_portal_map, &sinkd_portal_map_len},
        {"/charts.js", "text/javascript; charset=utf-8", sinkd_portal_charts,
         &sinkd_portal_charts_len},
        {"/charts.css", "text/css; charset=utf-8", sinkd_portal_chartscss,
         &sinkd_portal_chartscss_len},
    };
    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++) {
        if (strcmp(path, assets[i].path) == 0) {
            if (!get) {
                portal_answer_error(ans, 405, "GET only");
                add_header(ans, "Allow: GET, HEAD\r\n");
                return;
            }
            answer_static(ans, assets[i].ctype, assets[i].data, *assets[i].len);
            return;
        }
    }
    if (strcmp(path, "/favicon.ico") == 0) {
        ans->status = 204; /* no icon, and no 404 in every browser's console */
        return;
    }
    if (strncmp(path, "/api/v1/", 8) != 0) {
        char shown[96];
        printable(path, shown, sizeof(shown));
        if (strstr(path, "..") != NULL || strchr(path, '%') != NULL || strstr(path, "//")) {
            oplog(st, "refused path '%s' (nothing is served from the file system)", shown);
            st->refused++;
        }
        portal_answer_error(ans, 404, "not found");
        return;
    }
    const char *route = path + 8;
    if (strcmp(route, "csrf") == 0 && get) {
        route_csrf(ans);
        return;
    }
    if (strcmp(route, "login") == 0 && post) {
        route_login(st, req, peer, ans);
        return;
    }
    static const char *const known[] = {"csrf",  "login",   "logout", "session",
                                        "stats", "victims", "bundle", "requests"};
    bool is_known = false;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        is_known = is_known || strcmp(route, known[i]) == 0;
    }
    if (!is_known) {
        portal_answer_error(ans, 404, "no such API route");
        return;
    }
    if (!get && !post) {
        portal_answer_error(ans, 405, "GET or POST");
        add_header(ans, "Allow: GET, POST\r\n");
        return;
    }
    char sid_probe[PORTAL_SESSION_ID_HEX + 2];
    if (strcmp(route, "session") == 0 && get && !req->has_authorization && !peer->has_cert &&
        portal_cookie_get(req->cookie, SESSION_COOKIE, sid_probe, sizeof(sid_probe)) != 0) {
        /* The page asks whether it has a session before anyone logged in: not an error. */
        portal_answer_text(ans, 200, "application/json", "{\"logged_in\":false}");
        return;
    }
    struct who w;
    if (authenticate(st, req, peer, &w, ans) != 0) {
        return;
    }
    if (post && !post_allowed(st, req, &w, ans)) {
        return;
    }
    if (strcmp(route, "session") == 0 && get && w.session != NULL) {
        session_json(ans, 200, w.a, w.session);
        return;
    }
    if (strcmp(route, "logout") == 0 && post && w.session != NULL) {
        oplog(st, "logout: authority %s", w.a->id);
        portal_session_end(w.session);
        portal_answer_text(ans, 200, "application/json", "{\"ok\":true}");
        add_header(ans, "Set-Cookie: " SESSION_COOKIE "=; Path=/; Secure; HttpOnly; "
                        "SameSite=Strict; Max-Age=0\r\n");
        return;
    }
    bool read_route = get && (strcmp(route, "victims") == 0 || strcmp(route, "stats") == 0 ||
                              strcmp(route, "bundle") == 0 || strcmp(route, "requests") == 0);
    bool request_post = post && strcmp(route, "requests") == 0;
    if (!read_route && !request_post) {
        portal_answer_error(ans, 405, "method not allowed on this route");
        return;
    }
    if (!need_justification(st, &w, ans)) {
        return;
    }
    if (read_route && !w.a->may_read && strcmp(route, "requests") != 0) {
        refuse_scope(st, &w, ans, 403, path, "this authority may not read victims' data");
        return;
    }
    if (strcmp(route, "victims") == 0) {
        route_victims(st, &w, req, ans);
    } else if (strcmp(route, "stats") == 0) {
        route_stats(st, &w, ans);
    } else if (strcmp(route, "bundle") == 0) {
        route_bundle(st, &w, req, ans);
    } else if (get) {
        route_requests_get(st, &w, ans);
    } else {
        route_requests_post(st, &w, req, ans);
    }
}
