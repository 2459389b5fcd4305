/* metrics.h -- the operator's read-only view of a running server: Prometheus text exposition
 * (format 0.0.4) answered to HTTP GET /metrics on a listener of its own, in the server's main
 * event loop. It shows counts and states, never a victim's address or identity. Bounded: at most
 * METRICS_MAX_CONNS connections, METRICS_REQUEST_MAX bytes of request head, METRICS_TIMEOUT_MS
 * per connection, then the connection is closed (docs/metrics.md). */
#ifndef SINKD_NET_METRICS_H
#define SINKD_NET_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "util/addr.h"

#define METRICS_MAX_CONNS 8
#define METRICS_REQUEST_MAX 8192
#define METRICS_TIMEOUT_MS 5000
#define METRICS_BODY_MAX (256 * 1024) /* exposition text; samples past it are dropped */

/* ---- exposition text ---------------------------------------------------------------------- */

struct metrics_text {
    char *buf;
    size_t len, cap;
    bool truncated; /* METRICS_BODY_MAX reached or out of memory: later lines were dropped */
};

/* "# HELP name help" and "# TYPE name type" (type: counter, gauge, summary). */
void metrics_family(struct metrics_text *t, const char *name, const char *type, const char *help);
/* "name{labels} value"; labels is NULL or the inside of the braces, e.g. type="hello". */
void metrics_sample(struct metrics_text *t, const char *name, const char *labels, uint64_t value);
void metrics_text_free(struct metrics_text *t);

/* ---- requests ----------------------------------------------------------------------------- */

enum metrics_route {
    METRICS_NEED_MORE = 0,   /* the request head is not complete yet */
    METRICS_SERVE = 1,       /* GET /metrics (a query string is ignored) */
    METRICS_NOT_FOUND = 2,   /* another path: 404 */
    METRICS_BAD_METHOD = 3,  /* not GET: 405 */
    METRICS_BAD_REQUEST = 4, /* not HTTP/1.x, or a head longer than METRICS_REQUEST_MAX: 400 */
};
/* Pure: what the request whose first len bytes are buf asks for (http_parser does the parsing). */
enum metrics_route metrics_route_request(const char *buf, size_t len);

/* ---- the listener ------------------------------------------------------------------------- */

/* Fills `out` with the current exposition text; called on the loop's thread per request. */
typedef void (*metrics_render_fn)(void *ctx, struct metrics_text *out);

struct metrics_server;
/* Binds and listens (before privileges are dropped, like the bot listeners). *bound_port gets
 * the port (useful with port 0). */
int metrics_server_open(struct metrics_server **out, const struct net_addr *addr,
                        uint16_t *bound_port, char *err, size_t errlen);
/* Starts accepting on `loop`. */
int metrics_server_start(struct metrics_server *m, uv_loop_t *loop, metrics_render_fn render,
                         void *ctx, char *err, size_t errlen);
/* Closes the listener and every open connection; the loop must run afterwards for the close
 * callbacks, then metrics_server_free. Safe to call twice. */
void metrics_server_close(struct metrics_server *m);
void metrics_server_free(struct metrics_server *m);

#endif
