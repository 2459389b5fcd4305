/* metrics.c -- GET /metrics, /metrics.json and the dashboard for the operator (see metrics.h):
 * a small HTTP/1.1 responder on the server's main loop. One request per connection, answered and
 * closed; everything a peer can make grow (connections, request bytes, time) is bounded. */
#include "net/metrics.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <http_parser.h>

#include "net/dashboard_assets.h"
#include "registry/registry.h"
#include "util/err.h"

/* ---- exposition text ---------------------------------------------------------------------- */

static void text_append(struct metrics_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void text_append(struct metrics_text *t, const char *fmt, ...)
{
    if (t->truncated) {
        return;
    }
    char line[512]; /* one exposition line; ours are all far shorter */
    va_list ap;
    va_start(ap, fmt);
    int n =
        vsnprintf(line, sizeof(line), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line)) {
        t->truncated = true;
        return;
    }
    if (t->cap - t->len <= (size_t)n) {
        size_t cap = t->cap == 0 ? 4096 : t->cap * 2;
        char *grown = cap <= METRICS_BODY_MAX ? realloc(t->buf, cap) : NULL;
        if (grown == NULL) {
            t->truncated = true; /* this line and every later one are dropped whole */
            return;
        }
        t->buf = grown;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, line, (size_t)n + 1);
    t->len += (size_t)n;
}

int metrics_text_init_json(struct metrics_text *t)
{
    memset(t, 0, sizeof(*t));
    t->json = json_object();
    return t->json != NULL ? 0 : -1;
}

void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help)
{
    if (t->json == NULL) {
        text_append(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
        return;
    }
    json_t *f = json_pack("{s:s,s:s,s:[]}", "type", type, "help", help, "samples");
    if (f == NULL || json_object_set_new(t->json, name, f) != 0) {
        t->truncated = true;
    }
}

/* Label values escaped as the text format requires: backslash, double quote, newline. */
static size_t escape_label(const char *v, char *out, size_t cap)
{
    size_t o = 0;
    for (; *v != '\0' && o + 3 < cap; v++) {
        if (*v == '\\' || *v == '"' || *v == '\n') {
            out[o++] = '\\';
            out[o++] = *v == '\n' ? 'n' : *v;
        } else {
            out[o++] = *v;
        }
    }
    out[o] = '\0';
    return o;
}

void metrics_sample_labels(struct metrics_text *t, const char *name,
                           const struct metrics_label *labels, size_t n, uint64_t value)
{
    if (t->json != NULL) {
        json_t *samples = json_object_get(json_object_get(t->json, name), "samples");
        json_t *ls = json_object();
        for (size_t i = 0; ls != NULL && i < n; i++) {
            json_object_set_new(ls, labels[i].name, json_string(labels[i].value));
        }
        /* JSON integers are signed 64-bit here; no counter of ours comes near 2^63. */
        json_t *sample = ls == NULL
                             ? NULL
                             : json_pack("{s:O,s:I}", "labels", ls, "value",
                                         (json_int_t)(value > INT64_MAX ? INT64_MAX : value));
        json_decref(ls);
        /* A sample of an undeclared family has nowhere to go: dropped and reported. */
        if (samples == NULL || sample == NULL || json_array_append(samples, sample) != 0) {
            t->truncated = true;
        }
        json_decref(sample);
        return;
    }
    char text[400];
    size_t o = 0;
    for (size_t i = 0; i < n && o < sizeof(text); i++) {
        char v[128];
        escape_label(labels[i].value, v, sizeof(v));
        int w =
            snprintf(text + o, sizeof(text) - o, "%s%s=\"%s\"", i ? "," : "", labels[i].name, v);
        o += w > 0 ? (size_t)w : 0;
    }
    if (o >= sizeof(text)) {
        t->truncated = true;
        return;
    }
    text_append(t, "%s{%s} %llu\n", name, text, (unsigned long long)value);
}

void metrics_sample(struct metrics_text *t, const char *name, uint64_t value)
{
    if (t->json != NULL) {
        metrics_sample_labels(t, name, NULL, 0, value);
        return;
    }
    text_append(t, "%s %llu\n", name, (unsigned long long)value);
}

void metrics_text_finish(struct metrics_text *t)
{
    if (t->json == NULL) {
        return;
    }
    char *text = json_dumps(t->json, JSON_COMPACT | JSON_SORT_KEYS);
    size_t n = text != NULL ? strlen(text) : 0;
    free(t->buf);
    t->buf = NULL;
    t->len = t->cap = 0;
    if (text == NULL || n > METRICS_BODY_MAX) {
        /* A whole JSON document or none: an empty object, and the caller sees truncated. */
        free(text);
        t->truncated = true;
        text = strdup("{}");
        n = text != NULL ? 2 : 0;
    }
    t->buf = text;
    t->len = t->cap = n;
}

void metrics_text_free(struct metrics_text *t)
{
    free(t->buf);
    json_decref(t->json);
    memset(t, 0, sizeof(*t));
}

/* ---- requests ----------------------------------------------------------------------------- */

struct route_state {
    const char *url;
    size_t url_len;
    bool head_done;
};

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct route_state *s = p->data;
    if (s->url == NULL) {
        s->url = at;
    }
    s->url_len = (size_t)(at + len - s->url);
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    struct route_state *s = p->data;
    s->head_done = true;
    http_parser_pause(p, 1); /* the head is all we need; a body is never read */
    return 0;
}

enum metrics_route metrics_route_request(const char *buf, size_t len)
{
    http_parser_settings settings;
    memset(&settings, 0, sizeof(settings));
    settings.on_url = on_url;
    settings.on_headers_complete = on_headers_complete;
    struct route_state s = {0};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &s;
    size_t n = len > METRICS_REQUEST_MAX ? METRICS_REQUEST_MAX : len;
    http_parser_execute(&p, &settings, buf, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    if (!s.head_done) {
        return e == HPE_OK && len < METRICS_REQUEST_MAX ? METRICS_NEED_MORE : METRICS_BAD_REQUEST;
    }
    if (p.http_major != 1) {
        return METRICS_BAD_REQUEST;
    }
    /* HEAD is GET without the body (RFC 9110 9.3.2): monitors probe with it. */
    if (p.method != HTTP_GET && p.method != HTTP_HEAD) {
        return METRICS_BAD_METHOD;
    }
    static const struct {
        const char *path;
        enum metrics_route route;
    } routes[] = {
        {"/metrics", METRICS_SERVE},
        {"/metrics.json", METRICS_SERVE_JSON},
        {"/", METRICS_DASHBOARD},
        {"/index.html", METRICS_DASHBOARD},
        {"/dashboard.js", METRICS_DASHBOARD_JS},
        {"/dashboard.css", METRICS_DASHBOARD_CSS},
        {"/countries.json", METRICS_COUNTRIES},
        {"/worldmap.svg", METRICS_WORLDMAP},
        {"/charts.js", METRICS_CHARTS_JS},
        {"/charts.css", METRICS_CHARTS_CSS},
    };
    size_t plen = s.url_len;
    for (size_t i = 0; i < s.url_len; i++) {
        if (s.url[i] == '?') {
            plen = i;
            break;
        }
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strlen(routes[i].path) == plen && memcmp(s.url, routes[i].path, plen) == 0) {
            return routes[i].route;
        }
    }
    return METRICS_NOT_FOUND;
}

/* ---- the listener ------------------------------------------------------------------------- */

struct metrics_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t write;
    struct metrics_server *m;
    struct metrics_conn *next, *prev;
    char head[512];
    struct metrics_text body;
    size_t len;
    unsigned open_handles; /* tcp + timer; freed when both are closed */
    bool answered;
    char req[METRICS_REQUEST_MAX];
};

struct metrics_server {
    int fd;
    uv_tcp_t listener;
    bool listening, closing;
    uv_loop_t *loop;
    metrics_render_fn render;
    void *ctx;
    struct metrics_conn *conns;
    unsigned nconns;
    struct registry *reg; /* reader for /countries.json; NULL without a registry */
    char *countries;      /* the last /countries.json body, reused for the TTL */
    uint64_t countries_at_ms;
};

int metrics_server_open(struct metrics_server **out, const struct net_addr *addr,
                        uint16_t *bound_port, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(addr, ip);
    net_addr_to_sockaddr(addr, &ss, &sslen);
    int fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return err_set(err, errlen, "metrics listen %s:%u: socket: %s", ip, addr->port,
                       strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr->family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 64) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, "metrics listen %s:%u: %s", ip, addr->port, strerror(e));
    }
    struct sockaddr_storage got;
    socklen_t gotlen = sizeof(got);
    struct net_addr g = *addr;
    if (getsockname(fd, (struct sockaddr *)&got, &gotlen) == 0) {
        net_addr_from_sockaddr(&g, (struct sockaddr *)&got);
    }
    struct metrics_server *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        close(fd);
        return err_set(err, errlen, "out of memory");
    }
    m->fd = fd;
    *bound_port = g.port;
    *out = m;
    return 0;
}

static void conn_free_after_close(uv_handle_t *h)
{
    struct metrics_conn *c = h->data;
    if (--c->open_handles == 0) {
        metrics_text_free(&c->body);
        free(c);
    }
}

static void conn_close(struct metrics_conn *c, bool reset)
{
    if (uv_is_closing((uv_handle_t *)&c->tcp)) {
        return;
    }
    struct metrics_server *m = c->m;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        m->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    m->nconns--;
    if (reset) {
        uv_tcp_close_reset(&c->tcp, conn_free_after_close);
    } else {
        uv_close((uv_handle_t *)&c->tcp, conn_free_after_close);
    }
    uv_close((uv_handle_t *)&c->timer, conn_free_after_close);
}

static void on_written(uv_write_t *req, int status)
{
    (void)status;
    conn_close(req->data, false);
}

/* The dashboard's files, built into the binary (net/dashboard/). */
static bool static_asset(enum metrics_route route, const char **ctype, const unsigned char **data,
                         size_t *len)
{
    switch (route) {
    case METRICS_DASHBOARD:
        *ctype = "text/html; charset=utf-8";
        *data = sinkd_dashboard_html;
        *len = sinkd_dashboard_html_len;
        return true;
    case METRICS_DASHBOARD_JS:
        *ctype = "text/javascript; charset=utf-8";
        *data = sinkd_dashboard_js;
        *len = sinkd_dashboard_js_len;
        return true;
    case METRICS_DASHBOARD_CSS:
        *ctype = "text/css; charset=utf-8";
        *data = sinkd_dashboard_css;
        *len = sinkd_dashboard_css_len;
        return true;
    case METRICS_WORLDMAP:
        *ctype = "image/svg+xml";
        *data = sinkd_dashboard_map;
        *len = sinkd_dashboard_map_len;
        return true;
    case METRICS_CHARTS_JS:
        *ctype = "text/javascript; charset=utf-8";
        *data = sinkd_dashboard_charts_js;
        *len = sinkd_dashboard_charts_js_len;
        return true;
    case METRICS_CHARTS_CSS:
        *ctype = "text/css; charset=utf-8";
        *data = sinkd_dashboard_charts_css;
        *len = sinkd_dashboard_charts_css_len;
        return true;
    default:
        return false;
    }
}

/* The route's answer; for HEAD (head_only) the same status and headers, Content-Length
 * included, and no body. */
/* ---- the map and the per-day curves (GET /countries.json) --------------------------------- */

int metrics_server_open_registry(struct metrics_server *m, const char *target,
                                 const char *state_dir, char *err, size_t errlen)
{
    return registry_open_log(&m->reg, target, state_dir, err, errlen);
}

static int on_country(void *ctx, const struct registry_group_row *row)
{
    json_object_set_new(ctx, row->key[0] ? row->key : "ZZ", json_integer((json_int_t)row->count));
    return 0;
}

struct curve {
    int64_t first_day;
    uint64_t v[METRICS_COUNTRIES_DAYS][4]; /* ips, bots, contacts, disinfected */
    char last_bot[33];
};

static int on_curve_day(void *ctx, const struct registry_day *d)
{
    struct curve *c = ctx;
    int64_t i = d->day - c->first_day;
    if (i >= 0 && i < METRICS_COUNTRIES_DAYS) {
        c->v[i][0] = d->ips;
        c->v[i][1] = d->bots;
        c->v[i][2] = d->contacts;
    }
    return 0;
}

/* A bot counts as disinfected on the day of its first command when it has not called since
 * (rows come grouped by bot, its first-commanded authorisation first). */
static int on_curve_remediation(void *ctx, const struct registry_remediation *r)
{
    struct curve *c = ctx;
    if (r->first_command_us == 0 || strcmp(c->last_bot, r->bot_key) == 0) {
        return 0;
    }
    snprintf(c->last_bot, sizeof(c->last_bot), "%s", r->bot_key);
    int64_t i = (int64_t)(r->first_command_us / 86400000000ULL) - c->first_day;
    if (r->seen_after == 0 && i >= 0 && i < METRICS_COUNTRIES_DAYS) {
        c->v[i][3]++;
    }
    return 0;
}

static char *countries_json(struct registry *reg)
{
    json_t *j = json_object(), *cc = json_object(), *days = json_array();
    struct curve *c = calloc(1, sizeof(*c));
    char err[256];
    int rc = j == NULL || cc == NULL || days == NULL || c == NULL ? -1 : 0;
    if (rc == 0) {
        c->first_day = (int64_t)(event_now_us() / 86400000000ULL) - (METRICS_COUNTRIES_DAYS - 1);
        struct registry_filter all = {0};
        rc = registry_group_bots(reg, &all, REGISTRY_GROUP_CC, 0, on_country, cc, err, sizeof(err));
    }
    if (rc == 0) {
        rc = registry_days(reg, (uint64_t)c->first_day * 86400000000ULL, 0, NULL, on_curve_day, c,
                           err, sizeof(err));
    }
    if (rc == 0) {
        rc = registry_remediation(reg, on_curve_remediation, c, err, sizeof(err));
    }
    for (int i = 0; rc == 0 && i < METRICS_COUNTRIES_DAYS; i++) {
        char d[16];
        time_t t = (time_t)((c->first_day + i) * 86400);
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(d, sizeof(d), "%Y-%m-%d", &tm);
        json_array_append_new(
            days, json_pack("{s:s,s:I,s:I,s:I,s:I}", "day", d, "ips", (json_int_t)c->v[i][0],
                            "bots", (json_int_t)c->v[i][1], "contacts", (json_int_t)c->v[i][2],
                            "disinfected", (json_int_t)c->v[i][3]));
    }
    free(c);
    char *text = NULL;
    if (rc == 0) {
        json_object_set_new(j, "registry", json_true());
        json_object_set_new(j, "countries", cc);
        json_object_set_new(j, "days", days);
        text = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    } else {
        json_decref(cc);
        json_decref(days);
    }
    json_decref(j);
    return text;
}

/* Computed at most every METRICS_COUNTRIES_TTL_MS on the loop's thread: a scraper polling fast
 * costs one registry walk per TTL, not one per request. */
static void countries_body(struct metrics_server *m, struct metrics_text *out)
{
    uint64_t now_ms = event_now_us() / 1000;
    if (m->reg != NULL &&
        (m->countries == NULL || now_ms - m->countries_at_ms >= METRICS_COUNTRIES_TTL_MS)) {
        char *fresh = countries_json(m->reg);
        if (fresh != NULL) {
            free(m->countries);
            m->countries = fresh;
            m->countries_at_ms = now_ms;
        }
    }
    free(out->buf);
    out->buf = strdup(m->countries != NULL ? m->countries : "{\"registry\":false}");
    out->len = out->cap = out->buf != NULL ? strlen(out->buf) : 0;
}

static void respond(struct metrics_conn *c, enum metrics_route route, bool head_only)
{
    static const char *const status[] = {
        [METRICS_SERVE] = "200 OK",
        [METRICS_NOT_FOUND] = "404 Not Found",
        [METRICS_BAD_METHOD] = "405 Method Not Allowed",
        [METRICS_BAD_REQUEST] = "400 Bad Request",
        [METRICS_SERVE_JSON] = "200 OK",
        [METRICS_DASHBOARD] = "200 OK",
        [METRICS_DASHBOARD_JS] = "200 OK",
        [METRICS_DASHBOARD_CSS] = "200 OK",
        [METRICS_COUNTRIES] = "200 OK",
        [METRICS_WORLDMAP] = "200 OK",
        [METRICS_CHARTS_JS] = "200 OK",
        [METRICS_CHARTS_CSS] = "200 OK",
    };
    c->answered = true;
    uv_read_stop((uv_stream_t *)&c->tcp);
    const char *ctype = "text/plain; charset=utf-8";
    const unsigned char *data = NULL;
    size_t len = 0;
    if (route == METRICS_SERVE) {
        c->m->render(c->m->ctx, &c->body);
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    } else if (route == METRICS_SERVE_JSON) {
        if (metrics_text_init_json(&c->body) == 0) {
            c->m->render(c->m->ctx, &c->body);
        }
        metrics_text_finish(&c->body);
        ctype = "application/json";
    } else if (route == METRICS_COUNTRIES) {
        countries_body(c->m, &c->body);
        ctype = "application/json";
    } else if (!static_asset(route, &ctype, &data, &len)) {
        text_append(&c->body, "%s\n", status[route]);
    }
    if (data == NULL) {
        data = (const unsigned char *)c->body.buf;
        len = c->body.len;
    }
    /* The page loads only its own files and talks only to this listener; nothing is cached,
     * since every answer is a snapshot. */
    snprintf(c->head, sizeof(c->head),
             "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
             "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
             "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
             "connect-src 'self'; frame-ancestors 'none'\r\nConnection: close\r\n\r\n",
             status[route], ctype, len, route == METRICS_BAD_METHOD ? "Allow: GET, HEAD\r\n" : "");
    uv_buf_t bufs[2] = {uv_buf_init(c->head, (unsigned)strlen(c->head)),
                        uv_buf_init(data != NULL ? (char *)data : c->head, (unsigned)len)};
    c->write.data = c;
    if (uv_write(&c->write, (uv_stream_t *)&c->tcp, bufs, len > 0 && !head_only ? 2 : 1,
                 on_written) != 0) {
        conn_close(c, true);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct metrics_conn *c = h->data;
    *buf = uv_buf_init(c->req + c->len, (unsigned)(sizeof(c->req) - c->len));
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    (void)buf;
    struct metrics_conn *c = s->data;
    if (n < 0) {
        conn_close(c, true);
        return;
    }
    c->len += (size_t)n;
    enum metrics_route r = metrics_route_request(c->req, c->len);
    if (r == METRICS_NEED_MORE && c->len == sizeof(c->req)) {
        r = METRICS_BAD_REQUEST;
    }
    if (r != METRICS_NEED_MORE) {
        size_t at = 0; /* the parser lets CRLFs precede a request line */
        while (at < c->len && (c->req[at] == '\r' || c->req[at] == '\n')) {
            at++;
        }
        respond(c, r, c->len - at >= 5 && memcmp(c->req + at, "HEAD ", 5) == 0);
    }
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data, true);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct metrics_server *m = server->data;
    if (status < 0) {
        return;
    }
    struct metrics_conn *c = m->nconns < METRICS_MAX_CONNS ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL) {
        /* Over the bound (or out of memory): take the connection and drop it at once. */
        uv_tcp_t *drop = malloc(sizeof(*drop));
        if (drop != NULL && uv_tcp_init(m->loop, drop) == 0) {
            if (uv_accept(server, (uv_stream_t *)drop) == 0) {
                uv_tcp_close_reset(drop, (uv_close_cb)free);
            } else {
                uv_close((uv_handle_t *)drop, (uv_close_cb)free);
            }
        } else {
            free(drop);
        }
        return;
    }
    c->m = m;
    uv_tcp_init(m->loop, &c->tcp);
    uv_timer_init(m->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = m->conns;
    if (m->conns != NULL) {
        m->conns->prev = c;
    }
    m->conns = c;
    m->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c, false);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, METRICS_TIMEOUT_MS, 0);
}

int metrics_server_start(struct metrics_server *m, uv_loop_t *loop, metrics_render_fn render,
                         void *ctx, char *err, size_t errlen)
{
    m->loop = loop;
    m->render = render;
    m->ctx = ctx;
    int rc = uv_tcp_init(loop, &m->listener);
    if (rc == 0) {
        m->listener.data = m;
        rc = uv_tcp_open(&m->listener, m->fd);
        if (rc != 0) {
            uv_close((uv_handle_t *)&m->listener, NULL);
        }
    }
    if (rc == 0) {
        m->fd = -1; /* the handle owns it */
        m->listening = true;
        rc = uv_listen((uv_stream_t *)&m->listener, 64, on_connection);
    }
    if (rc != 0) {
        return err_set(err, errlen, "metrics listener: %s", uv_strerror(rc));
    }
    return 0;
}

void metrics_server_close(struct metrics_server *m)
{
    if (m == NULL || m->closing) {
        return;
    }
    m->closing = true;
    while (m->conns != NULL) {
        conn_close(m->conns, true);
    }
    if (m->listening && !uv_is_closing((uv_handle_t *)&m->listener)) {
        uv_close((uv_handle_t *)&m->listener, NULL);
    }
}

void metrics_server_free(struct metrics_server *m)
{
    if (m == NULL) {
        return;
    }
    if (m->fd >= 0) {
        close(m->fd);
    }
    registry_close(m->reg);
    free(m->countries);
    free(m);
}
