/* metrics.h -- the operator's read-only view of a running server, on a listener of its own in
 * the server's main event loop: GET /metrics (Prometheus text exposition, format 0.0.4), GET
 * /metrics.json (the same samples as JSON) and GET / (a dashboard page that polls the JSON;
 * its files are built into the binary). It shows counts and states, never a victim's address or
 * identity. Bounded: at most METRICS_MAX_CONNS connections, METRICS_REQUEST_MAX bytes of request
 * head, METRICS_TIMEOUT_MS per connection, then the connection is closed (docs/metrics.md). */
#ifndef SINKD_NET_METRICS_H
#define SINKD_NET_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <uv.h>

#include "util/addr.h"

#define METRICS_MAX_CONNS 8
#define METRICS_REQUEST_MAX 8192
#define METRICS_TIMEOUT_MS 5000
#define METRICS_BODY_MAX (256 * 1024) /* exposition text; samples past it are dropped */

/* ---- the body: exposition text or JSON ---------------------------------------------------- */

/* One renderer fills either form. Text: lines appended to buf as they come. JSON: json is an
 * object {name: {"type", "help", "samples": [{"labels": {..}, "value": n}]}} that
 * metrics_text_finish() serialises into buf. */
struct metrics_text {
    char *buf;
    size_t len, cap;
    bool truncated; /* METRICS_BODY_MAX reached or out of memory: later lines were dropped */
    json_t *json;   /* set (metrics_text_init_json) for the JSON form */
};

struct metrics_label {
    const char *name, *value; /* value: any text; escaped as each form needs */
};

/* 0, or -1 out of memory. */
int metrics_text_init_json(struct metrics_text *t);
/* "# HELP name help" and "# TYPE name type" (type: counter, gauge, summary). */
void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help);
/* "name value", or "name{l1="v1",...} value" with n labels. */
void metrics_sample(struct metrics_text *t, const char *name, uint64_t value);
void metrics_sample_labels(struct metrics_text *t, const char *name,
                           const struct metrics_label *labels, size_t n, uint64_t value);
/* JSON form: serialises json into buf (compact), bounded by METRICS_BODY_MAX like the text. */
void metrics_text_finish(struct metrics_text *t);
void metrics_text_free(struct metrics_text *t);

/* ---- requests ----------------------------------------------------------------------------- */

enum metrics_route {
    METRICS_NEED_MORE = 0,   /* the request head is not complete yet */
    METRICS_SERVE = 1,       /* GET /metrics (a query string is ignored, on every route) */
    METRICS_NOT_FOUND = 2,   /* another path: 404 */
    METRICS_BAD_METHOD = 3,  /* not GET: 405 */
    METRICS_BAD_REQUEST = 4, /* not HTTP/1.x, or a head longer than METRICS_REQUEST_MAX: 400 */
    METRICS_SERVE_JSON = 5,  /* GET /metrics.json */
    METRICS_DASHBOARD = 6,   /* GET / or /index.html */
    METRICS_DASHBOARD_JS = 7,
    METRICS_DASHBOARD_CSS = 8,
    METRICS_COUNTRIES = 9,  /* GET /countries.json: bots per country and the per-day curves */
    METRICS_WORLDMAP = 10,  /* GET /worldmap.svg, /charts.js, /charts.css (data/web/, shared */
    METRICS_CHARTS_JS = 11, /* with the authorities' portal) */
    METRICS_CHARTS_CSS = 12,
};
#define METRICS_ROUTE_LAST METRICS_CHARTS_CSS
/* /countries.json is computed at most this often (a walk of the registry's country index). */
#define METRICS_COUNTRIES_TTL_MS 10000
#define METRICS_COUNTRIES_DAYS 30
/* Pure: what the request whose first len bytes are buf asks for (http_parser does the parsing). */
enum metrics_route metrics_route_request(const char *buf, size_t len);

/* ---- the listener ------------------------------------------------------------------------- */

/* Fills `out` with the current samples (either form); called on the loop's thread per request. */
typedef void (*metrics_render_fn)(void *ctx, struct metrics_text *out);

struct metrics_server;
/* Binds and listens (before privileges are dropped, like the bot listeners). *bound_port gets
 * the port (useful with port 0). */
int metrics_server_open(struct metrics_server **out, const struct net_addr *addr,
                        uint16_t *bound_port, char *err, size_t errlen);
/* Opens a reader of the registry serve follows (before the sandbox: a PostgreSQL connection
 * cannot be made after it) for GET /countries.json: bots per country (the dashboard's map) and,
 * over the last METRICS_COUNTRIES_DAYS UTC days, unique addresses, bots and bots disinfected
 * (commanded, not heard from since) per day. Aggregates only. Without it the route answers
 * {"registry": false}. */
int metrics_server_open_registry(struct metrics_server *m, const char *target,
                                 const char *state_dir, char *err, size_t errlen);

/* Starts accepting on `loop`. */
int metrics_server_start(struct metrics_server *m, uv_loop_t *loop, metrics_render_fn render,
                         void *ctx, char *err, size_t errlen);
/* Closes the listener and every open connection; the loop must run afterwards for the close
 * callbacks, then metrics_server_free. Safe to call twice. */
void metrics_server_close(struct metrics_server *m);
void metrics_server_free(struct metrics_server *m);

#endif
