/* conn.c -- the life of one bot connection: admission, buffers, the phases from PROXY header to
 * decoded message, records handed to the evidence writer, replies, teardown and refusals. */
#include "net/server_internal.h"

static struct conn_list *conn_list_of(struct conn *c)
{
    struct worker *w = conn_worker(c);
    switch (c->list) {
    case ON_HEADER_LIST:
        return &w->header_list;
    case ON_IDLE_LIST:
        return &w->idle_list;
    case ON_HOLD_LIST:
        return &w->hold_list;
    default:
        return NULL;
    }
}

static void list_remove(struct conn *c)
{
    struct conn_list *l = conn_list_of(c);
    if (l == NULL) {
        return;
    }
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        l->head = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    } else {
        l->tail = c->prev;
    }
    c->prev = c->next = NULL;
    c->list = ON_NO_LIST;
}

void list_push(struct conn *c, enum conn_on_list which, uint64_t deadline_ms)
{
    struct worker *w = conn_worker(c);
    struct conn_list *l = which == ON_HEADER_LIST ? &w->header_list
                          : which == ON_IDLE_LIST ? &w->idle_list
                                                  : &w->hold_list;
    list_remove(c);
    c->deadline_ms = (uint32_t)deadline_ms;
    c->prev = l->tail;
    c->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = c;
    } else {
        l->head = c;
    }
    l->tail = c;
    c->list = (uint8_t)which;
}

void format_endpoint(const struct net_addr *a, char *out, size_t len)
{
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(a, ip);
    snprintf(out, len, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, a->port);
}

/* Starts a new one-second logging window, first saying how many lines the last one dropped. */
void flush_suppressed(struct worker *w, uint64_t now)
{
    if (now - w->log_window_ms < 1000) {
        return;
    }
    if (w->log_suppressed > 0) {
        fprintf(w->srv->cfg->log, "sinkd: worker %u: %u more bad peers (lines suppressed)\n", w->id,
                w->log_suppressed);
    }
    w->log_window_ms = now;
    w->log_count = 0;
    w->log_suppressed = 0;
}

/* One line per bad peer, with a per-worker budget so a flood cannot turn into a log flood. */
/* One log line about a peer, within the per-worker budget so a flood cannot become a log flood. */
static void peer_line(struct conn *c, const char *what_kind, const char *fmt, va_list ap)
{
    struct worker *w = conn_worker(c);
    flush_suppressed(w, uv_now(&w->loop));
    if (w->log_count >= w->srv->cfg->limits.bad_peer_log_per_s) {
        w->log_suppressed++;
        return;
    }
    w->log_count++;
    char who[80];
    char via[96] = "";
    char what[256];
    const struct net_addr *src = conn_src(c);
    format_endpoint(src, who, sizeof(who));
    if (!net_addr_equal_ip(src, &c->peer)) {
        char peer[80];
        format_endpoint(&c->peer, peer, sizeof(peer));
        snprintf(via, sizeof(via), " (via %s)", peer);
    }
    /* clang-analyzer loses va_start across the caller (a false positive). */
    vsnprintf(what, sizeof(what), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    fprintf(w->srv->cfg->log, "sinkd: %s %s%s: %s\n", what_kind, who, via, what);
}

void bad_peer(struct conn *c, const char *fmt, ...)
{
    conn_worker(c)->stats.bad_peers++;
    va_list ap;
    va_start(ap, fmt);
    peer_line(c, "bad peer", fmt, ap);
    va_end(ap);
}

void undecoded_caller(struct conn *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    peer_line(c, "undecoded caller", fmt, ap);
    va_end(ap);
}

/* Per-address admission (cap and rate); logs and counts a refusal. */
bool admit_address(struct conn *c)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    enum ipcount_verdict v =
        ipcount_acquire(srv->ipcount, conn_src(c), &srv->iplimits, uv_now(&w->loop));
    if (v == IPCOUNT_OK) {
        c->ip_counted = 1;
        return true;
    }
    w->stats.rejected++;
    if (v == IPCOUNT_TOO_MANY) {
        bad_peer(c, "more than %u connections from this address", srv->iplimits.max_open);
    } else if (v == IPCOUNT_TOO_FAST) {
        bad_peer(c, "more than %u new connections per second from this address",
                 srv->iplimits.rate);
        /* Only the TCP peer's own address can be dropped in the kernel; behind a trusted proxy
         * the kernel sees the proxy. The main loop's tick brings the whole set up to date (and
         * lifts bans); adding a new ban here saves the flood up to a second of accepts. */
        if (srv->banlist != NULL && !c->trusted &&
            (c->peer.family == AF_INET || c->peer.family == AF_INET6)) {
            /* Counted and banned by what the filter drops: the address, or its IPv6 /64. */
            struct synfilter_addr a = synfilter_addr_prefix(
                synfilter_addr_bytes(c->peer.ip, c->peer.family == AF_INET ? 4 : 16));
            if (banlist_refused(srv->banlist, &a, uv_now(&w->loop))) {
                synfilter_add(srv->synfilter, &a);
            }
        }
    } else {
        bad_peer(c, "too many distinct addresses to track (%u)", srv->cfg->limits.max_tracked_ips);
    }
    return false;
}

/* ---- connection teardown ------------------------------------------------------------------ */

struct conn *conn_alloc(struct worker *w)
{
    struct conn_pool *pool = &w->pool;
    if (pool->free == NULL) {
        /* One chunk: the link to the previous chunk, then CONN_CHUNK connections. */
        size_t head = (sizeof(void *) + _Alignof(struct conn) - 1) & ~(_Alignof(struct conn) - 1);
        char *chunk = malloc(head + CONN_CHUNK * sizeof(struct conn));
        if (chunk == NULL) {
            return NULL;
        }
        *(void **)chunk = pool->chunks;
        pool->chunks = chunk;
        pool->allocated += CONN_CHUNK;
        struct conn *conns = (struct conn *)(chunk + head);
        for (size_t i = CONN_CHUNK; i-- > 0;) {
            conns[i].blocked_next = pool->free;
            pool->free = &conns[i];
        }
        ASAN_POISON_MEMORY_REGION(conns, CONN_CHUNK * sizeof(struct conn));
    }
    struct conn *c = pool->free;
    ASAN_UNPOISON_MEMORY_REGION(c, sizeof(*c));
    pool->free = c->blocked_next;
    memset(c, 0, sizeof(*c));
    return c;
}

void conn_free(struct conn *c)
{
    struct conn_pool *pool = &conn_worker(c)->pool;
    free(c->buf);
    free(c->proxied);
    http_free(c);
    c->blocked_next = pool->free;
    pool->free = c;
    /* In sanitizer builds a pooled connection is poisoned, so a use after free still trips. */
    ASAN_POISON_MEMORY_REGION(c, sizeof(*c));
}

void conn_pool_destroy(struct conn_pool *pool)
{
    void *chunk = pool->chunks;
    while (chunk != NULL) {
        void *next = *(void **)chunk;
        free(chunk);
        chunk = next;
    }
    pool->chunks = NULL;
    pool->free = NULL;
    pool->allocated = 0;
}

void on_conn_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    struct worker *w = conn_worker(c);
    c->handle_closed = 1;
    w->nconns--;
    if (c->held) {
        w->nheld--; /* left server.nconns when it was held */
    } else {
        atomic_fetch_sub(&w->srv->nconns, 1);
    }
    if (c->inflight == 0) {
        conn_free(c);
    }
}

/* Closes the connection; `reset`: with an RST instead of a FIN (SO_LINGER 0). For refused and
 * bad peers: the kernel sends one segment instead of a FIN exchange and keeps no FIN_WAIT or
 * TIME_WAIT state for them, and whatever was still unsent to them is dropped. */
static void conn_close_how(struct conn *c, bool reset)
{
    if (c->closing) {
        return;
    }
    c->closing = 1;
    if (c->http != NULL && c->http->pending_command != NULL) {
        /* Decided and durable, but the bot never asked again: say so in the log. */
        struct decision *d = c->http->pending_command;
        c->http->pending_command = NULL;
        send_command(conn_worker(c), c, d, "connection closed before the command could be sent");
        free(d);
    }
    list_remove(c);
    if (c->ip_counted) {
        ipcount_release(conn_worker(c)->srv->ipcount, conn_src(c));
        c->ip_counted = 0;
    }
    /* uv_tcp_close_reset() closes only when it could set SO_LINGER. */
    if (!reset || uv_tcp_close_reset(&c->tcp, on_conn_closed) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    }
}

void conn_close(struct conn *c)
{
    conn_close_how(c, false);
}

/* For a peer that was refused or broke the protocol: nothing more is owed to it. */
void conn_refuse(struct conn *c)
{
    conn_close_how(c, true);
}

/* Refuses a peer the per-address cap or rate turned away, or one that sent what no bot sends
 * (garbage, a bad packet, a PROXY header it may not send). Reset at once, a flooding peer
 * reconnects at once, and every round costs both ends an accept, a reset and the kernel's
 * handshake work (bench/attack.sh one-address phase: ~6,000 rounds a second from 500
 * connections, enough to slow every process's disk flushes on a two-core box); held unread
 * until limits.refuse_hold_ms, the peer waits instead. The hold has its own descriptor budget
 * (server_fit_fd_limit), held peers leave the connection count so they never crowd out bots,
 * their buffered bytes are freed, and the receive buffer shrinks to the kernel's minimum so
 * whatever the peer keeps sending costs little kernel memory. A connection with records still
 * in flight, blocked, or speaking HTTP is reset at once: nothing of it may outlive the hold.
 * Returns with the connection held or closing. */
void conn_refuse_held(struct conn *c)
{
    struct worker *w = conn_worker(c);
    const struct net_limits *lim = &w->srv->cfg->limits;
    if (lim->refuse_hold_ms == 0 || w->nheld >= w->hold_max || w->stopping || c->inflight > 0 ||
        c->blocked || c->http != NULL) {
        conn_refuse(c);
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    /* The caller returns at once, without touching the bytes it was parsing. */
    free(c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
    uv_os_fd_t fd;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
        int smallest = 1; /* the kernel raises it to its minimum */
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &smallest, sizeof(smallest));
    }
    c->held = 1;
    w->nheld++;
    w->stats.held++;
    atomic_fetch_sub(&w->srv->nconns, 1);
    list_push(c, ON_HOLD_LIST, uv_now(&w->loop) + lim->refuse_hold_ms);
}

/* ---- writing ------------------------------------------------------------------------------ */

struct write_req {
    uv_write_t req;
    struct conn *conn;
    size_t len;
    uint8_t data[];
};

static void on_write_done(uv_write_t *req, int status)
{
    struct write_req *wr = (struct write_req *)req;
    struct conn *c = wr->conn;
    free(wr);
    if (status < 0 && !c->closing) {
        conn_close(c);
    }
}

/* Sends bytes, trying the socket directly first (replies are small, so this almost always
 * completes without allocating). */
void conn_send(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->closing || len == 0) {
        return;
    }
    size_t off = 0;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) == 0) {
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n == (int)len) {
            return;
        }
        if (n > 0) {
            off = (size_t)n;
        } else if (n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
    }
    if (uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) + len - off > WRITE_QUEUE_MAX) {
        bad_peer(c, "not reading its replies (%zu bytes queued)",
                 uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp));
        conn_refuse(c);
        return;
    }
    struct write_req *wr = malloc(sizeof(*wr) + len - off);
    if (wr == NULL) {
        conn_close(c);
        return;
    }
    wr->conn = c;
    wr->len = len - off;
    memcpy(wr->data, data + off, len - off);
    uv_buf_t b = uv_buf_init((char *)wr->data, (unsigned)wr->len);
    if (uv_write(&wr->req, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
        free(wr);
        conn_close(c);
    }
}

/* ---- reading ------------------------------------------------------------------------------ */

void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    /* One slab per worker: read callbacks run one at a time and leave no pointer into it. */
    buf->base = (char *)conn_worker(c)->readbuf;
    buf->len = READ_SLAB;
}

void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (n < 0) {
        if (n != UV_EOF && n != UV_ECONNRESET) {
            bad_peer(c, "read error: %s", uv_strerror((int)n));
        }
        conn_close(c);
        return;
    }
    if (n == 0 || c->closing) {
        return;
    }
    conn_process(c, (const uint8_t *)buf->base, (size_t)n);
}

static void conn_block(struct conn *c)
{
    if (!c->blocked) {
        c->blocked = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->blocked_next = conn_worker(c)->blocked_head;
        conn_worker(c)->blocked_head = c;
    }
}

bool conn_can_submit(struct conn *c)
{
    const struct net_limits *lim = &conn_worker(c)->srv->cfg->limits;
    /* Room for the contact and the decisions that may follow it (collection and remediation). */
    return c->inflight + 3u <= lim->max_inflight && pipe_free_slots(conn_worker(c)->ring) >= 3;
}

/* Records the bytes q[0..n) that no family decodes on a raw connection (contact.c) once there is
 * room for the record; returns true (the connection is done), or false when it must wait for
 * room (back-pressure: blocked, the bytes stay buffered). */
static bool record_undecoded(struct conn *c, const uint8_t *q, size_t n, bool hostile,
                             const char *why)
{
    if (!conn_can_submit(c)) {
        conn_block(c);
        return false;
    }
    struct undecoded_input in = {.bytes = q,
                                 .len = n,
                                 .total = n,
                                 .transport = CONTACT_TRANSPORT_TCP,
                                 .hostile = hostile,
                                 .reason = why};
    contact_record_undecoded(c, &in);
    return true;
}

/* Consumes what it can from p[0..len); returns bytes consumed or -1 if the connection closed.
 * Stops early (returning fewer bytes) when it must wait for more input or for durability. */
static ptrdiff_t conn_consume(struct conn *c, const uint8_t *p, size_t len)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    size_t pos = 0;
    char err[160];
    while (!c->closing) {
        if (c->phase == PHASE_HTTP && c->http->complete) {
            if (!conn_can_submit(c)) {
                conn_block(c);
                return (ptrdiff_t)pos;
            }
            if (!http_handle_request(c)) {
                return -1;
            }
            http_parser_pause(&c->http->parser, 0);
            continue;
        }
        if (pos == len) {
            break;
        }
        const uint8_t *q = p + pos;
        size_t n = len - pos;
        switch (c->phase) {
        case PHASE_PROXY: {
            struct proxy_header hdr;
            err[0] = '\0';
            ptrdiff_t r = proxy_parse(q, n, &hdr, err, sizeof(err));
            if (r == 0) {
                return (ptrdiff_t)pos;
            }
            if (r < 0) {
                bad_peer(c, "trusted proxy sent a bad PROXY header: %s", err);
                conn_refuse(c);
                return -1;
            }
            if (!hdr.local) {
                c->proxied = malloc(sizeof(*c->proxied));
                if (c->proxied == NULL) {
                    bad_peer(c, "out of memory for the PROXY header's addresses");
                    conn_close(c);
                    return -1;
                }
                c->proxied->src = hdr.src;
                c->proxied->dst = hdr.dst;
            }
            if (!admit_address(c)) {
                conn_refuse_held(c);
                return -1;
            }
            c->phase = PHASE_DETECT;
            pos += (size_t)r;
            break;
        }
        case PHASE_DETECT: {
            if (!c->trusted) {
                int d = proxy_detect(q, n);
                if (d == 0) {
                    return (ptrdiff_t)pos;
                }
                if (d > 0) {
                    return record_undecoded(c, q, n, false,
                                            "PROXY header from a peer that is not a trusted proxy")
                               ? -1
                               : (ptrdiff_t)pos;
                }
            }
            bool need_more = false;
            if (starts_with_http_method(q, n, &need_more)) {
                if (!http_start(c)) {
                    return -1;
                }
                break;
            }
            if (need_more) {
                return (ptrdiff_t)pos;
            }
            int d = srv->family->detect(srv->family_cfg, q, n);
            if (d == 0) {
                return (ptrdiff_t)pos;
            }
            if (d < 0) {
                char why[96];
                snprintf(why, sizeof(why), "neither HTTP nor %s (first bytes %02x %02x %02x %02x)",
                         srv->family->name, q[0], n > 1 ? q[1] : 0, n > 2 ? q[2] : 0,
                         n > 3 ? q[3] : 0);
                return record_undecoded(c, q, n, false, why) ? -1 : (ptrdiff_t)pos;
            }
            c->phase = PHASE_RAW;
            break;
        }
        case PHASE_RAW: {
            if (!conn_can_submit(c)) {
                conn_block(c);
                return (ptrdiff_t)pos;
            }
            struct proto_message msg;
            err[0] = '\0';
            ptrdiff_t r = srv->family->decode(srv->family_cfg, &c->proto, q, n, &msg, w->scratch,
                                              sizeof(w->scratch), err, sizeof(err));
            if (r == PROTO_NEED_MORE) {
                if (n >= srv->cfg->limits.max_message) {
                    char why[96];
                    snprintf(why, sizeof(why), "message larger than %u bytes",
                             srv->cfg->limits.max_message);
                    return record_undecoded(c, q, n, true, why) ? -1 : (ptrdiff_t)pos;
                }
                return (ptrdiff_t)pos;
            }
            if (r < 0) {
                /* Only sizes make a peer hostile (a declared size past the limit, a body that
                 * decompresses wrong or too large); bytes that merely do not decode are a caller
                 * this sinkd has no cipher or framing for. The codec's message names the family
                 * itself ("plugx: ..."). */
                bool hostile = r == PROTO_E_TOO_LARGE || r == PROTO_E_DECOMPRESS;
                if (err[0] == '\0') {
                    snprintf(err, sizeof(err), "%s: malformed packet", srv->family->name);
                }
                return record_undecoded(c, q, n, hostile, err) ? -1 : (ptrdiff_t)pos;
            }
            pos += (size_t)r;
            handle_message(c, &msg, CONTACT_TRANSPORT_TCP);
            break;
        }
        case PHASE_HTTP: {
            ptrdiff_t used = http_feed(c, q, n);
            if (used < 0) {
                return -1;
            }
            pos += (size_t)used;
            break;
        }
        }
    }
    return c->closing ? -1 : (ptrdiff_t)pos;
}

/* Feeds newly read bytes (or, with len 0, resumes buffered ones) and keeps the leftover. */
void conn_process(struct conn *c, const uint8_t *data, size_t len)
{
    struct worker *w = conn_worker(c);
    const struct net_limits *lim = &w->srv->cfg->limits;
    const uint8_t *view = data;
    size_t view_len = len;
    if (c->len > 0) {
        if (len > 0) {
            if ((size_t)c->len + len > lim->max_message + PROXY_V2_MAX) {
                bad_peer(c, "more than %u bytes without a complete message", lim->max_message);
                conn_refuse_held(c);
                return;
            }
            if (c->len + len > c->cap) {
                uint32_t cap = c->cap ? c->cap : 256;
                while (cap < c->len + len) {
                    cap *= 2;
                }
                uint8_t *nb = realloc(c->buf, cap);
                if (nb == NULL) {
                    conn_close(c);
                    return;
                }
                c->buf = nb;
                c->cap = cap;
            }
            memcpy(c->buf + c->len, data, len);
            c->len += (uint32_t)len;
        }
        view = c->buf;
        view_len = c->len;
    }
    ptrdiff_t used = conn_consume(c, view, view_len);
    if (used < 0) {
        return;
    }
    size_t rest = view_len - (size_t)used;
    if (rest == 0) {
        free(c->buf);
        c->buf = NULL;
        c->len = c->cap = 0;
    } else if (view == c->buf) {
        memmove(c->buf, c->buf + used, rest);
        c->len = (uint32_t)rest;
    } else if (data != NULL) { /* view == data: keep the unconsumed tail of this read */
        c->buf = malloc(rest);
        if (c->buf == NULL) {
            conn_close(c);
            return;
        }
        memcpy(c->buf, data + used, rest);
        c->len = c->cap = (uint32_t)rest;
    }
    /* A message that has started must finish within the header timeout (slow-drip peers);
     * between messages the idle timeout applies. */
    uint64_t now = uv_now(&w->loop);
    bool mid_message =
        c->len > 0 || c->phase == PHASE_PROXY || (c->phase == PHASE_HTTP && c->http->in_message);
    if (mid_message) {
        if (c->list != ON_HEADER_LIST) {
            list_push(c, ON_HEADER_LIST, now + lim->header_timeout_ms);
        }
    } else {
        list_push(c, ON_IDLE_LIST, now + lim->idle_timeout_ms);
    }
}
