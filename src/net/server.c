/* server.c -- workers, listeners and the life of a bot connection: PROXY, transport detection,
 * decode, record, wait for durability, reply. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "net/server.h"

#include <errno.h>
#include <limits.h>
#ifdef __GLIBC__
#include <malloc.h> /* malloc_trim */
#endif
#include <stddef.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <http_parser.h>
#include <openssl/sha.h>
#include <jansson.h>
#include <uv.h>

#include "enrich/enrich.h"
#include "event/event.h"
#include "evidence/log.h"
#include "net/banlist.h"
#include "net/ipcount.h"
#include "net/metrics.h"
#include "evidence/raw.h"
#include "net/pipeline.h"
#include "net/proxy.h"
#include "net/sandbox.h"
#include "net/synfilter.h"
#include "policy/policy.h"
#include "registry/registry.h"
#include "util/err.h"
#include "util/hex.h"
#include "util/keyset.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#else
#define ASAN_POISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#define ASAN_UNPOISON_MEMORY_REGION(addr, size) ((void)(addr), (void)(size))
#endif

#define READ_SLAB 65536
#define SWEEP_MS 250
#define ACCEPT_RETRY_MS 10    /* after a connection could not be allocated */
#define WRITE_QUEUE_MAX 65536 /* a peer that stops reading its replies is cut off past this */
#define CONN_CHUNK 64         /* connections allocated together by a worker's connection pool */
#define BAN_TICK_MS 1000      /* the listeners' drop set follows the banlist this often */

enum conn_phase {
    PHASE_PROXY,  /* trusted peer: a PROXY header must come first */
    PHASE_DETECT, /* raw PlugX or HTTP? */
    PHASE_RAW,
    PHASE_HTTP,
};

enum slot_kind {
    SLOT_REPLY_RAW = 1,  /* a contact: send the reply once durable */
    SLOT_REPLY_HTTP = 2, /* the same, wrapped in an HTTP response */
    SLOT_RECORD = 3,     /* a record with nothing to do once durable */
    SLOT_SEND = 4,       /* a decision with verdict send: only now may the command be encoded */
};

struct conn_list {
    struct conn *head;
    struct conn *tail;
};

struct http_state {
    http_parser parser;
    uint8_t *body;
    uint32_t body_len;
    uint8_t in_message; /* between the first byte of a request and its end */
    uint8_t complete;   /* a whole request is waiting to be handled */
    uint8_t keep_alive; /* of the request being handled */
    uint8_t is_post;
    /* HTTP cannot push: a durable send decision waits here for the bot's next request and
     * goes out as that response's body. */
    struct decision *pending_command;
};

struct worker;

enum conn_on_list {
    ON_NO_LIST = 0,
    ON_HEADER_LIST = 1,
    ON_IDLE_LIST = 2,
    ON_HOLD_LIST = 3, /* refused, unread, until its reset (limits.refuse_hold_ms) */
};

/* The bot's own endpoints as a trusted proxy's PROXY header gave them. */
struct conn_proxied {
    struct net_addr src; /* the bot */
    struct net_addr dst; /* where it connected to */
};

/* Every idle bot holds one of these, so it is kept small (384 B with Debian 12's libuv; nginx holds
 * ~560 B per idle connection here): the worker is the loop's container, the list is a 2-bit tag,
 * the flags are bits, and only the TCP peer is stored inline: a bot behind a trusted proxy has its
 * endpoints on the side, and our own address is the listener's (conn_dst). */
struct conn {
    uv_tcp_t tcp;      /* first: a handle pointer is the connection pointer */
    struct conn *prev; /* in the worker's header or idle list */
    struct conn *next;
    struct conn *blocked_next; /* in the worker's back-pressure list; free-list link when free */
    uint8_t *buf;              /* bytes of a message not yet complete; NULL while idle */
    struct http_state *http;
    struct conn_proxied *proxied; /* NULL: the bot is the TCP peer */
    /* uv_now() truncated: compared with wrap-around arithmetic, as timeouts stay < 2^31 ms. */
    uint32_t deadline_ms;
    uint32_t len;
    uint32_t cap;
    uint16_t inflight; /* records waiting for durability */
    uint8_t phase : 2;
    uint8_t list : 2; /* enum conn_on_list */
    uint8_t trusted : 1;
    uint8_t closing : 1;
    uint8_t handle_closed : 1;
    uint8_t blocked : 1;
    uint8_t ip_counted : 1;
    uint8_t has_bot_key : 1;
    uint8_t close_after_reply : 1;
    uint8_t held : 1; /* refused and held: not counted in server.nconns */
    uint8_t listener; /* index into the worker's listeners */
    uint8_t bot_key[16];
    struct net_addr peer; /* TCP peer */
    union {
        struct plugx_conn plugx;
        uint64_t align;
        uint8_t bytes[32];
    } proto;
};

struct worker_stats {
    uint64_t accepted;
    uint64_t rejected; /* over a connection limit */
    uint64_t held;     /* refused or bad peers held until their reset (refuse_hold_ms) */
    uint64_t contacts;
    uint64_t by_type[4];
    uint64_t bad_peers;
    uint64_t timeouts;
    uint64_t replies;
    uint64_t decisions[8]; /* by enum decision_verdict */
    uint64_t commands_sent;
    uint64_t commands_failed;
};

struct server;

/* Connections come from per-worker chunks of CONN_CHUNK and go back to a free list: no malloc
 * header or rounding per connection, and the short-lived allocations of set-up exchanges cannot
 * fragment the memory idle connections sit in. Chunks are kept until the server stops, so the
 * pool is bounded by the peak of open connections (max_connections). */
struct conn_pool {
    struct conn *free;  /* linked through blocked_next */
    void *chunks;       /* each chunk starts with the pointer to the next one */
    uint32_t allocated; /* connections in chunks */
};

struct worker {
    unsigned id;
    struct server *srv;
    uv_loop_t loop;
    uv_tcp_t listeners[SERVER_MAX_LISTEN];
    size_t nlisteners;
    uv_async_t wake;
    uv_async_t stop;
    uv_timer_t sweep;
    /* Out of memory for a connection: its listener (bit set in `deferred`) is retried by this
     * timer; meanwhile libuv leaves new connections in the kernel's queue. */
    uv_timer_t accept_retry;
    uint16_t deferred;
    pthread_t thread;
    struct pipe_ring *ring;
    struct conn_list header_list; /* waiting for a PROXY header or a message to complete */
    struct conn_list idle_list;   /* between messages */
    struct conn_list hold_list;   /* refused peers waiting for their reset */
    uint32_t nheld;
    uint32_t hold_max;         /* this worker's share of limits.refuse_hold_max */
    struct conn *blocked_head; /* stopped reading: writer ring or inflight limit full */
    struct conn_pool pool;
    uint32_t nconns;
    unsigned sweep_ticks;
    uint8_t stopping;
    uint64_t stop_deadline_ms;
    uint64_t log_window_ms;
    uint32_t log_count;
    uint32_t log_suppressed;
    uint64_t seed;
    struct worker_stats stats;
    /* A copy of `stats` the sweep timer publishes for GET /metrics (read on the main loop). */
    pthread_mutex_t published_mu;
    struct worker_stats published;
    uint8_t readbuf[READ_SLAB];
    uint8_t scratch[PROTO_SCRATCH_SIZE];
};

struct server {
    const struct server_config *cfg;
    /* Each listener's bound address; a connection's own address is read back with getsockname
     * only for wildcard listeners, where it is not known in advance. */
    struct net_addr bound[SERVER_MAX_LISTEN];
    bool bound_wildcard[SERVER_MAX_LISTEN];
    const struct proto_family *family;
    const void *family_cfg;
    struct evlog *log;
    struct pipeline *pipe;
    struct ipcount *ipcount;
    struct ipcount_limits iplimits;
    struct banlist *banlist;     /* NULL: no listener bans (off, or the filter is unavailable) */
    struct synfilter *synfilter; /* on every listener; its set follows the banlist */
    uint64_t ban_generation;     /* the banlist set the filter holds */
    struct synfilter_addr *ban_snapshot; /* on_ban_tick's copy of the set, banlist max entries */
    uv_timer_t ban_tick;
    struct enrich_handle enrich;
    struct registry *registry;     /* derived view, fed by its own follower thread */
    uv_timer_t registry_tick;      /* tells once that the follower stopped (on_registry_tick) */
    struct policy_handle *policy;  /* NULL: no policy loaded, no decisions */
    struct keyset_shared *decided; /* (bot, authorisation) pairs already sent or dry-run */
    struct worker *workers;
    unsigned nworkers;
    _Atomic uint32_t nconns;
    uv_loop_t main_loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_signal_t sighup;
    struct metrics_server *metrics; /* GET /metrics on the main loop; NULL: off */
    struct raw_store *raw;          /* --keep-raw; NULL: off */
    int64_t started_s;              /* POSIX time of the start, for the metrics */
    uv_timer_t trim;                /* hands freed heap back after a burst (on_trim_tick) */
    uint64_t trim_entries;          /* log entries at the last trim */
    uint64_t trim_tick_entries;     /* ... at the last tick */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static struct worker *conn_worker(const struct conn *c)
{
    return (struct worker *)((char *)c->tcp.loop - offsetof(struct worker, loop));
}

/* The bot: the TCP peer, or what a trusted proxy said. */
static const struct net_addr *conn_src(const struct conn *c)
{
    return c->proxied != NULL ? &c->proxied->src : &c->peer;
}

/* Where the bot connected to: what a trusted proxy said, or our listener's address (asked of
 * the socket for a wildcard listener, which has no single one). */
static void conn_dst(const struct conn *c, struct net_addr *out)
{
    const struct server *srv = conn_worker(c)->srv;
    if (c->proxied != NULL) {
        *out = c->proxied->dst;
    } else if (srv->bound_wildcard[c->listener]) {
        struct sockaddr_storage ss;
        int sslen = sizeof(ss);
        memset(out, 0, sizeof(*out));
        if (uv_tcp_getsockname(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
            net_addr_from_sockaddr(out, (struct sockaddr *)&ss);
        }
    } else {
        *out = srv->bound[c->listener];
    }
}

static bool deadline_passed(uint32_t deadline_ms, uint64_t now)
{
    return (int32_t)((uint32_t)now - deadline_ms) >= 0;
}

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

static void list_push(struct conn *c, enum conn_on_list which, uint64_t deadline_ms)
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

static void format_endpoint(const struct net_addr *a, char *out, size_t len)
{
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(a, ip);
    snprintf(out, len, a->family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, a->port);
}

/* Starts a new one-second logging window, first saying how many lines the last one dropped. */
static void flush_suppressed(struct worker *w, uint64_t now)
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
__attribute__((format(printf, 2, 3))) static void bad_peer(struct conn *c, const char *fmt, ...)
{
    struct worker *w = conn_worker(c);
    w->stats.bad_peers++;
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
    va_list ap;
    va_start(ap, fmt);
    /* clang-analyzer loses va_start across the early return above (a false positive). */
    vsnprintf(what, sizeof(what), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
    va_end(ap);
    fprintf(w->srv->cfg->log, "sinkd: bad peer %s%s: %s\n", who, via, what);
}

/* Per-address admission (cap and rate); logs and counts a refusal. */
static bool admit_address(struct conn *c)
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

static struct conn *conn_alloc(struct worker *w)
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

static void conn_free(struct conn *c)
{
    struct conn_pool *pool = &conn_worker(c)->pool;
    free(c->buf);
    free(c->proxied);
    if (c->http != NULL) {
        free(c->http->body);
        free(c->http->pending_command);
        free(c->http);
    }
    c->blocked_next = pool->free;
    pool->free = c;
    /* In sanitizer builds a pooled connection is poisoned, so a use after free still trips. */
    ASAN_POISON_MEMORY_REGION(c, sizeof(*c));
}

static void conn_pool_destroy(struct conn_pool *pool)
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

static void on_conn_closed(uv_handle_t *h)
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

static void send_command(struct worker *w, struct conn *c, const struct decision *d,
                         const char *why_not);

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

static void conn_close(struct conn *c)
{
    conn_close_how(c, false);
}

/* For a peer that was refused or broke the protocol: nothing more is owed to it. */
static void conn_refuse(struct conn *c)
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
static void conn_refuse_held(struct conn *c)
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
static void conn_send(struct conn *c, const uint8_t *data, size_t len)
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

static void conn_send_http(struct conn *c, const uint8_t *body, size_t len, bool keep_alive)
{
    uint8_t out[256 + PIPE_REPLY_MAX];
    int n = snprintf((char *)out, 256,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                     len, keep_alive ? "keep-alive" : "close");
    memcpy(out + n, body, len);
    conn_send(c, out, (size_t)n + len);
}

/* ---- reading ------------------------------------------------------------------------------ */

static void conn_process(struct conn *c, const uint8_t *data, size_t len);

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    /* One slab per worker: read callbacks run one at a time and leave no pointer into it. */
    buf->base = (char *)conn_worker(c)->readbuf;
    buf->len = READ_SLAB;
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
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

static bool conn_can_submit(struct conn *c)
{
    const struct net_limits *lim = &conn_worker(c)->srv->cfg->limits;
    /* Room for the contact and the decision that may follow it. */
    return c->inflight + 2u <= lim->max_inflight && pipe_free_slots(conn_worker(c)->ring) >= 2;
}

static void decide(struct conn *c, const struct contact *ct);

/* Records one decoded message and queues its reply behind the record's durability. */
static void handle_message(struct conn *c, const struct proto_message *msg, uint8_t transport)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_CONTACT;
    struct contact *ct = &rec.u.contact;
    ct->time_us = event_now_us();
    snprintf(ct->node, sizeof(ct->node), "%s", srv->cfg->node);
    ct->src = *conn_src(c);
    conn_dst(c, &ct->dst);
    if (!net_addr_equal_ip(&ct->src, &c->peer) || ct->src.port != c->peer.port) {
        ct->peer = c->peer;
    }
    ct->transport = transport;
    snprintf(ct->family, sizeof(ct->family), "%s", srv->family->name);
    ct->command = msg->command;
    ct->msg_type = msg->msg_type;
    memcpy(ct->body_sha256, msg->body_sha256, 32);
    if (srv->raw != NULL) {
        /* Best effort and counted (raw.h): the record holds the hash either way. */
        (void)raw_store_put(srv->raw, msg->body_sha256, msg->body, msg->body_len);
    }
    const struct enrich_tables *tables = enrich_handle_acquire(&srv->enrich);
    enrich_apply(tables, ct);
    enrich_handle_release(&srv->enrich, tables);
    if (msg->has_identity) {
        ct->bot = msg->bot;
        event_bot_key(ct, ct->bot_key);
        c->has_bot_key = hex_decode(ct->bot_key, c->bot_key, sizeof(c->bot_key)) == 0;
    } else if (c->has_bot_key) {
        hex_encode(c->bot_key, sizeof(c->bot_key), ct->bot_key);
    }

    struct pipe_slot *slot = pipe_reserve(w->ring); /* conn_can_submit() said there is one */
    int rlen = event_encode(&rec, slot->record, PIPE_RECORD_MAX);
    ptrdiff_t reply =
        srv->family->encode_reply(srv->family_cfg, &c->proto, msg, slot->reply, PIPE_REPLY_MAX);
    if (rlen < 0 || reply < 0) {
        /* Bounded fields make this unreachable; refuse the message rather than lose it silently. */
        bad_peer(c, "internal: cannot encode record or reply");
        conn_close(c);
        return;
    }
    slot->owner = c;
    slot->record_len = (uint16_t)rlen;
    slot->reply_len = (uint16_t)reply;
    slot->kind = transport == CONTACT_TRANSPORT_HTTP ? SLOT_REPLY_HTTP : SLOT_REPLY_RAW;
    c->inflight++;
    pipe_publish(srv->pipe, w->ring);
    w->stats.contacts++;
    w->stats.by_type[msg->msg_type & 3]++;
    if (srv->policy != NULL && msg->msg_type == CONTACT_MSG_MACHINE_INFO && ct->bot_key[0]) {
        decide(c, ct);
    }
}

/* The key of a (bot, authorisation) pair in the decided set. */
static void decided_key(const char *bot_key, const char *authorisation, uint8_t out[KEYSET_KEY])
{
    char input[33 + POLICY_ID_MAX + 2];
    uint8_t digest[32];
    int n = snprintf(input, sizeof(input), "%s\n%s", bot_key, authorisation);
    SHA256((const uint8_t *)input, (size_t)n, digest);
    memcpy(out, digest, KEYSET_KEY);
}

/* One decision per session, when the bot identifies itself: the verdict is recorded right behind
 * the contact, and a `send` verdict only queues the command behind the decision's durability
 * (complete_durable() encodes and sends it). Without --enforce and mode = enforce the policy
 * module never returns send; the check here is a second lock on the same door. */
static void decide(struct conn *c, const struct contact *ct)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    const struct policy_live *live = policy_handle_acquire(srv->policy);
    if (live == NULL) {
        return;
    }
    const struct policy *p = policy_live_policy(live);
    struct policy_bot bot;
    memset(&bot, 0, sizeof(bot));
    bot.src = ct->src;
    memcpy(bot.cc, ct->cc, sizeof(bot.cc));
    bot.asn = ct->asn;
    bot.tags = ct->tags;
    size_t nauth = policy_authorisation_count(p);
    for (size_t i = 0; i < nauth && i < 64; i++) {
        uint8_t key[KEYSET_KEY];
        decided_key(ct->bot_key, policy_authorisation_id(p, i), key);
        if (keyset_shared_contains(srv->decided, key)) {
            bot.sent |= 1ull << i;
        }
    }
    struct policy_verdict v;
    policy_decide(p, &bot, event_now_us(), policy_live_rate(live), srv->cfg->enforce, &v);
    if (v.verdict == VERDICT_SEND && !srv->cfg->enforce) {
        v.verdict = VERDICT_DRY_RUN;
    }
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_DECISION;
    struct decision *d = &rec.u.decision;
    d->time_us = event_now_us();
    snprintf(d->node, sizeof(d->node), "%s", srv->cfg->node);
    memcpy(d->bot_key, ct->bot_key, sizeof(d->bot_key));
    d->src = ct->src;
    snprintf(d->authorisation, sizeof(d->authorisation), "%s", v.authorisation_id);
    d->verdict = v.verdict;
    if (v.verdict == VERDICT_SEND || v.verdict == VERDICT_DRY_RUN) {
        d->command = srv->cfg->plugx.uninstall_command;
        /* Marked now, not when durable: a second session of the same bot on another worker must
         * see it at once, or it could be sent twice. A dry run marks too, so it predicts what
         * enforcing would do (once per bot). */
        uint8_t key[KEYSET_KEY];
        decided_key(ct->bot_key, v.authorisation_id, key);
        keyset_shared_add(srv->decided, key);
    }
    memcpy(d->policy_sha256, policy_sha256(p), 32);
    policy_live_release(live);

    struct pipe_slot *slot = pipe_reserve(w->ring); /* conn_can_submit() kept room for it */
    int rlen = slot != NULL ? event_encode(&rec, slot->record, PIPE_RECORD_MAX) : -1;
    if (slot == NULL || rlen < 0) {
        bad_peer(c, "internal: cannot queue the decision record; nothing will be sent");
        return;
    }
    slot->owner = c;
    slot->record_len = (uint16_t)rlen;
    slot->reply_len = 0;
    slot->kind = v.verdict == VERDICT_SEND ? SLOT_SEND : SLOT_RECORD;
    c->inflight++;
    pipe_publish(srv->pipe, w->ring);
    w->stats.decisions[v.verdict < 8 ? v.verdict : 0]++;
}

static bool starts_with_http_method(const uint8_t *p, size_t len, bool *need_more)
{
    static const char *const methods[] = {"POST ",   "GET ",     "PUT ",   "HEAD ", "OPTIONS ",
                                          "DELETE ", "CONNECT ", "PATCH ", "TRACE "};
    *need_more = false;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        size_t m = strlen(methods[i]);
        size_t n = len < m ? len : m;
        if (memcmp(p, methods[i], n) == 0) {
            if (len >= m) {
                return true;
            }
            *need_more = true;
        }
    }
    return false;
}

static int http_on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    c->http->in_message = 1;
    return 0;
}

static int http_on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct http_state *h = c->http;
    uint32_t limit = conn_worker(c)->srv->cfg->limits.max_message;
    if (h->body_len + len > limit) {
        return -1;
    }
    uint8_t *nb = realloc(h->body, h->body_len + len);
    if (nb == NULL) {
        return -1;
    }
    h->body = nb;
    memcpy(h->body + h->body_len, at, len);
    h->body_len += (uint32_t)len;
    return 0;
}

static int http_on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    if (p->content_length != ULLONG_MAX &&
        p->content_length > conn_worker(c)->srv->cfg->limits.max_message) {
        return -1;
    }
    return 0;
}

static int http_on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->http->complete = 1;
    c->http->in_message = 0;
    c->http->keep_alive = (uint8_t)http_should_keep_alive(p);
    c->http->is_post = p->method == HTTP_POST;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings http_settings = {
    .on_message_begin = http_on_message_begin,
    .on_body = http_on_body,
    .on_headers_complete = http_on_headers_complete,
    .on_message_complete = http_on_message_complete,
};

/* Handles a complete HTTP request: its body must be exactly one packet. Returns false when the
 * connection was closed. */
static bool http_handle_request(struct conn *c)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    struct http_state *h = c->http;
    h->complete = 0;
    if (!h->is_post) {
        bad_peer(c, "HTTP %s instead of POST", http_method_str(h->parser.method));
        static const char resp[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\n"
                                   "Content-Length: 0\r\nConnection: close\r\n\r\n";
        conn_send(c, (const uint8_t *)resp, sizeof(resp) - 1);
        conn_close(c);
        return false;
    }
    struct proto_message msg;
    char err[160] = "";
    ptrdiff_t r = srv->family->decode(srv->family_cfg, &c->proto, h->body, h->body_len, &msg,
                                      w->scratch, sizeof(w->scratch), err, sizeof(err));
    if (r <= 0 || (size_t)r != h->body_len) {
        bad_peer(c, "HTTP body of %u bytes is not one %s packet%s%s", h->body_len,
                 srv->family->name, err[0] ? ": " : "", err);
        conn_refuse(c);
        return false;
    }
    free(h->body);
    h->body = NULL;
    h->body_len = 0;
    if (!h->keep_alive) {
        c->close_after_reply = 1;
    }
    handle_message(c, &msg, CONTACT_TRANSPORT_HTTP);
    return !c->closing;
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
                if (d > 0) {
                    bad_peer(c, "PROXY header from a peer that is not a trusted proxy");
                    conn_refuse_held(c);
                    return -1;
                }
                if (d == 0) {
                    return (ptrdiff_t)pos;
                }
            }
            bool need_more = false;
            if (starts_with_http_method(q, n, &need_more)) {
                c->http = calloc(1, sizeof(*c->http));
                if (c->http == NULL) {
                    conn_close(c);
                    return -1;
                }
                http_parser_init(&c->http->parser, HTTP_REQUEST);
                c->http->parser.data = c;
                c->phase = PHASE_HTTP;
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
                bad_peer(c, "neither HTTP nor %s (first bytes %02x %02x %02x %02x)",
                         srv->family->name, q[0], n > 1 ? q[1] : 0, n > 2 ? q[2] : 0,
                         n > 3 ? q[3] : 0);
                conn_refuse_held(c);
                return -1;
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
                    bad_peer(c, "message larger than %u bytes", srv->cfg->limits.max_message);
                    conn_refuse_held(c);
                    return -1;
                }
                return (ptrdiff_t)pos;
            }
            if (r < 0) {
                /* The codec's message names the family itself ("plugx: ..."). */
                if (err[0] != '\0') {
                    bad_peer(c, "%s", err);
                } else {
                    bad_peer(c, "%s: malformed packet", srv->family->name);
                }
                conn_refuse_held(c);
                return -1;
            }
            pos += (size_t)r;
            handle_message(c, &msg, CONTACT_TRANSPORT_TCP);
            break;
        }
        case PHASE_HTTP: {
            size_t used = http_parser_execute(&c->http->parser, &http_settings, (const char *)q, n);
            enum http_errno e = HTTP_PARSER_ERRNO(&c->http->parser);
            if (e != HPE_OK && e != HPE_PAUSED) {
                bad_peer(c, "HTTP: %s", http_errno_description(e));
                conn_refuse(c);
                return -1;
            }
            if (c->http->parser.upgrade) {
                bad_peer(c, "HTTP upgrade requested");
                conn_refuse(c);
                return -1;
            }
            pos += used;
            if (!c->http->complete && used < n) {
                bad_peer(c, "HTTP parser stopped");
                conn_refuse(c);
                return -1;
            }
            break;
        }
        }
    }
    return c->closing ? -1 : (ptrdiff_t)pos;
}

/* Feeds newly read bytes (or, with len 0, resumes buffered ones) and keeps the leftover. */
static void conn_process(struct conn *c, const uint8_t *data, size_t len)
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

/* ---- durability completions --------------------------------------------------------------- */

static void resume_blocked(struct worker *w)
{
    struct conn *list = w->blocked_head;
    w->blocked_head = NULL;
    while (list != NULL) {
        struct conn *c = list;
        list = c->blocked_next;
        c->blocked_next = NULL;
        c->blocked = 0;
        if (c->closing) {
            continue;
        }
        conn_process(c, NULL, 0);
        if (!c->closing && !c->blocked) {
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
    }
}

/* The decision in `slot` is durable: encode the command, send it, and record what left (or
 * why nothing did). Called with the decision's slot already released, so a slot is free. */
/* Sends the uninstall command for a durable send decision and records what happened; with
 * why_not (or a closing connection) nothing is sent and command-failed says why. */
static void send_command(struct worker *w, struct conn *c, const struct decision *d,
                         const char *why_not)
{
    struct server *srv = w->srv;
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    struct command_record *cr = &rec.u.command;
    uint8_t bytes[PIPE_REPLY_MAX];
    ptrdiff_t n = 0;
    if (c->closing && why_not == NULL) {
        why_not = "connection closed before the command could be sent";
    }
    if (why_not == NULL) {
        n = srv->family->encode_uninstall(srv->family_cfg, &c->proto, bytes, sizeof(bytes));
    }
    cr->time_us = event_now_us();
    snprintf(cr->node, sizeof(cr->node), "%s", srv->cfg->node);
    memcpy(cr->bot_key, d->bot_key, sizeof(cr->bot_key));
    cr->src = d->src;
    memcpy(cr->authorisation, d->authorisation, sizeof(cr->authorisation));
    cr->command = d->command;
    if (n > 0) {
        if (c->http != NULL) {
            conn_send_http(c, bytes, (size_t)n, !c->close_after_reply);
        } else {
            conn_send(c, bytes, (size_t)n);
        }
        SHA256(bytes, (size_t)n, cr->bytes_sha256);
    }
    if (n > 0 && !c->closing) {
        rec.kind = RECORD_COMMAND_SENT;
        w->stats.commands_sent++;
    } else {
        rec.kind = RECORD_COMMAND_FAILED;
        snprintf(cr->error, sizeof(cr->error), "%s",
                 why_not != NULL ? why_not : "the protocol module could not encode the command");
        w->stats.commands_failed++;
    }
    struct pipe_slot *slot = pipe_reserve(w->ring);
    int rlen = slot ? event_encode(&rec, slot->record, PIPE_RECORD_MAX) : -1;
    if (rlen < 0) {
        fprintf(srv->cfg->log, "sinkd: internal: could not queue the %s record\n",
                event_kind_name(rec.kind));
        return;
    }
    slot->owner = NULL;
    slot->record_len = (uint16_t)rlen;
    slot->reply_len = 0;
    slot->kind = SLOT_RECORD;
    pipe_publish(srv->pipe, w->ring);
}

/* The decision is durable. Raw TCP: the command goes out now. HTTP: it waits for the bot's
 * next request (or, if the connection ends first, is recorded as failed when it closes). */
static void command_ready(struct worker *w, struct conn *c, const struct decision *d)
{
    if (c->http == NULL || c->closing) {
        send_command(w, c, d, NULL);
        return;
    }
    if (c->http->pending_command == NULL) {
        c->http->pending_command = malloc(sizeof(*d));
        if (c->http->pending_command == NULL) {
            send_command(w, c, d, "out of memory holding the command for the next HTTP request");
            return;
        }
        *c->http->pending_command = *d;
    }
}

static void complete_durable(struct worker *w)
{
    struct pipe_slot *slot;
    while ((slot = pipe_next_durable(w->ring)) != NULL) {
        struct conn *c = slot->owner;
        if (slot->failed && c != NULL) {
            /* Not in the log: no acknowledgement, no command. The bot will call again. */
            c->inflight--;
            pipe_release(w->ring);
            conn_close(c);
            if (c->handle_closed && c->inflight == 0) {
                conn_free(c);
            }
            continue;
        }
        if (slot->kind == SLOT_SEND && c != NULL) {
            struct record rec;
            int ok = event_decode(slot->record, slot->record_len, &rec, NULL, 0) == 0 &&
                     rec.kind == RECORD_DECISION && rec.u.decision.verdict == VERDICT_SEND;
            c->inflight--;
            pipe_release(w->ring); /* frees the slot send_command() may need */
            if (ok) {
                command_ready(w, c, &rec.u.decision);
            }
            if (c->handle_closed && c->inflight == 0) {
                conn_free(c);
            }
            continue;
        }
        if (c != NULL) {
            c->inflight--;
            if (slot->kind == SLOT_RECORD) {
                if (c->handle_closed && c->inflight == 0) {
                    conn_free(c);
                }
            } else if (!c->closing) {
                if (slot->kind == SLOT_REPLY_HTTP && c->http != NULL &&
                    c->http->pending_command != NULL) {
                    /* This response carries the waiting command instead of the usual reply. */
                    struct decision *d = c->http->pending_command;
                    c->http->pending_command = NULL;
                    pipe_release(w->ring); /* frees the slot send_command() needs */
                    send_command(w, c, d, NULL);
                    free(d);
                    w->stats.replies++;
                    if (c->close_after_reply && c->inflight == 0) {
                        conn_close(c);
                    }
                    if (c->handle_closed && c->inflight == 0) {
                        conn_free(c);
                    }
                    continue;
                }
                if (slot->kind == SLOT_REPLY_HTTP) {
                    conn_send_http(c, slot->reply, slot->reply_len, !c->close_after_reply);
                } else {
                    conn_send(c, slot->reply, slot->reply_len);
                }
                w->stats.replies++;
                if (c->close_after_reply && c->inflight == 0) {
                    conn_close(c);
                }
            } else if (c->handle_closed && c->inflight == 0) {
                conn_free(c);
            }
        }
        pipe_release(w->ring);
    }
}

static void on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    complete_durable(w);
    resume_blocked(w);
}

/* ---- accepting ---------------------------------------------------------------------------- */

static bool is_trusted(const struct server_config *cfg, const struct net_addr *peer)
{
    for (size_t i = 0; i < cfg->ntrusted; i++) {
        if (net_cidr_contains(&cfg->trusted[i], peer)) {
            return true;
        }
    }
    return false;
}

static void on_accept_retry(uv_timer_t *t);
static void accept_one(struct worker *w, uv_stream_t *listener);

/* Leaves the connection libuv has accepted on `listener` for later. libuv stops watching a
 * listener whose callback did not call uv_accept() and resumes once it is called; without the
 * retry, one failed allocation would silence this worker's listener for good, while the kernel
 * kept routing it its share of new connections. */
static void defer_accept(struct worker *w, uv_stream_t *listener)
{
    size_t li = (size_t)((uv_tcp_t *)listener - w->listeners);
    w->deferred |= (uint16_t)(1u << li);
    if (!uv_is_active((uv_handle_t *)&w->accept_retry)) {
        uv_timer_start(&w->accept_retry, on_accept_retry, ACCEPT_RETRY_MS, 0);
    }
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct worker *w = listener->data;
    if (status < 0) {
        /* libuv already sheds the pending connection on EMFILE/ENFILE with its reserve
         * descriptor; say so once per second at most. */
        uint64_t now = uv_now(&w->loop);
        if (now - w->log_window_ms >= 1000) {
            w->log_window_ms = now;
            fprintf(w->srv->cfg->log, "sinkd: worker %u: accept: %s\n", w->id, uv_strerror(status));
        }
        return;
    }
    accept_one(w, listener);
}

static void on_accept_retry(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint16_t pending = w->deferred;
    w->deferred = 0;
    for (size_t li = 0; li < w->nlisteners && !w->stopping; li++) {
        if (pending & (1u << li)) {
            accept_one(w, (uv_stream_t *)&w->listeners[li]);
        }
    }
}

/* Takes the connection libuv accepted on `listener` (uv_accept re-arms the listener). */
static void accept_one(struct worker *w, uv_stream_t *listener)
{
    struct server *srv = w->srv;
    const struct server_config *cfg = srv->cfg;
    struct conn *c = conn_alloc(w);
    if (c == NULL) {
        defer_accept(w, listener); /* out of memory: try again in ACCEPT_RETRY_MS */
        return;
    }
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    w->nconns++;
    atomic_fetch_add(&srv->nconns, 1);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        net_addr_from_sockaddr(&c->peer, (struct sockaddr *)&ss);
    }
    c->listener = (uint8_t)((uv_tcp_t *)listener - w->listeners);
    w->stats.accepted++;
    if (w->stopping || atomic_load(&srv->nconns) > cfg->limits.max_connections) {
        w->stats.rejected++;
        if (!w->stopping) {
            bad_peer(c, "connection limit of %u reached", cfg->limits.max_connections);
        }
        /* No conn_refuse() needed: with deferred accept the peer's first bytes are queued and
         * unread, and closing such a socket makes the kernel send an RST itself (RFC 2525). */
        conn_close(c);
        return;
    }
    c->trusted = is_trusted(cfg, &c->peer);
    if (c->trusted) {
        c->phase = PHASE_PROXY;
    } else {
        if (!admit_address(c)) {
            conn_refuse_held(c);
            return;
        }
        c->phase = PHASE_DETECT;
    }
    srv->family->conn_init(srv->family_cfg, &c->proto, w->seed++ * 0x9E3779B97F4A7C15ull);
#ifndef __linux__
    /* Linux copies TCP_NODELAY from the listener at accept (open_listener sets it there), which
     * saves a setsockopt per connection; elsewhere set it here. */
    uv_tcp_nodelay(&c->tcp, 1);
#endif
    list_push(c, ON_HEADER_LIST, uv_now(&w->loop) + cfg->limits.header_timeout_ms);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

/* ---- timeouts and shutdown ---------------------------------------------------------------- */

static void expire(struct worker *w, struct conn_list *l, uint64_t now, const char *what)
{
    struct conn *c = l->head;
    while (c != NULL && deadline_passed(c->deadline_ms, now)) {
        struct conn *next = c->next;
        if (c->inflight == 0) {
            w->stats.timeouts++;
            if (what != NULL) {
                bad_peer(c, "%s", what);
                conn_refuse(c);
            } else {
                conn_close(c);
            }
        }
        c = next;
    }
}

/* Resets the held refusals whose time is up, or all of them. */
static void release_held(struct worker *w, uint64_t now, bool all)
{
    struct conn *c = w->hold_list.head;
    while (c != NULL && (all || deadline_passed(c->deadline_ms, now))) {
        struct conn *next = c->next;
        conn_refuse(c);
        c = next;
    }
}

static void close_handle_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    close_handle_if_open(h);
}

/* Makes the listeners' drop set the banlist's current one, when it changed. */
#define REGISTRY_TICK_MS 1000

static void on_ban_tick(uv_timer_t *t)
{
    struct server *srv = t->data;
    size_t n = 0;
    if (!banlist_snapshot(srv->banlist, uv_now(t->loop), &srv->ban_generation, srv->ban_snapshot,
                          &n)) {
        return;
    }
    int rc = synfilter_set(srv->synfilter, srv->ban_snapshot, n);
    if (rc != 0) {
        srv->ban_generation = 0; /* retry the rest on the next tick */
        fprintf(srv->cfg->log, "sinkd: listener filter: updating its addresses: %s\n",
                strerror(-rc));
    }
    fprintf(srv->cfg->log,
            "sinkd: listeners now drop SYNs from %zu address%s refused %u+ times in a second "
            "(each ban lasts %u s)\n",
            synfilter_size(srv->synfilter), synfilter_size(srv->synfilter) == 1 ? "" : "es",
            srv->cfg->limits.syn_ban_after, srv->cfg->limits.syn_ban_s);
}

/* A follower that stopped on an error (a lost PostgreSQL connection, a full disk) is said at
 * once, not only at the stop: the sinkhole goes on, the log keeps every contact, and the registry
 * resumes from its applied index when a follower runs again. */
static void on_registry_tick(uv_timer_t *t)
{
    struct server *srv = t->data;
    struct registry_follow_stats st;
    registry_follow_stats(srv->registry, &st);
    if (st.error == 0) {
        return;
    }
    fprintf(srv->cfg->log,
            "sinkd: registry follower stopped: %s; serving and logging go on; restart serve or "
            "run `sinkd registry follow` to resume the registry from entry %llu\n",
            st.error_text, (unsigned long long)st.applied_index);
    uv_timer_stop(t);
}

static void on_sweep(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    if (w->srv->metrics != NULL) {
        pthread_mutex_lock(&w->published_mu);
        w->published = w->stats;
        pthread_mutex_unlock(&w->published_mu);
    }
    flush_suppressed(w, now);
    ipcount_sweep(w->srv->ipcount, &w->srv->iplimits, now, w->sweep_ticks++);
    expire(w, &w->header_list, now, "header timeout: no complete message in time");
    expire(w, &w->idle_list, now, NULL);
    release_held(w, now, w->stopping);
    if (!w->stopping) {
        return;
    }
    /* Draining: close every connection that has nothing in flight; after the drain timeout,
     * close the rest too (their records are durable, only the reply is lost). */
    bool force = now >= w->stop_deadline_ms;
    struct conn_list *lists[] = {&w->header_list, &w->idle_list};
    for (size_t i = 0; i < 2; i++) {
        struct conn *c = lists[i]->head;
        while (c != NULL) {
            struct conn *next = c->next;
            if (c->inflight == 0 || force) {
                conn_close(c);
            }
            c = next;
        }
    }
    for (struct conn *c = w->blocked_head; c != NULL; c = c->blocked_next) {
        if (c->inflight == 0 || force) {
            conn_close(c);
        }
    }
    if (w->nconns == 0 || force) {
        flush_suppressed(w, now + 1000);
        close_handle_if_open((uv_handle_t *)&w->wake);
        close_handle_if_open((uv_handle_t *)&w->stop);
        close_handle_if_open((uv_handle_t *)&w->sweep);
        close_handle_if_open((uv_handle_t *)&w->accept_retry);
    }
}

static void on_stop(uv_async_t *a)
{
    struct worker *w = a->data;
    if (w->stopping) {
        return;
    }
    w->stopping = 1;
    w->stop_deadline_ms = uv_now(&w->loop) + w->srv->cfg->limits.drain_timeout_ms;
    for (size_t i = 0; i < w->nlisteners; i++) {
        close_handle_if_open((uv_handle_t *)&w->listeners[i]);
    }
    w->deferred = 0; /* closing a listener closes the connection libuv held for it */
    uv_timer_stop(&w->accept_retry);
    on_sweep(&w->sweep);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* Named so `top -H` and perf tell the threads apart; failure only loses the name. */
    (void)pthread_setname_np(pthread_self(), "sinkd-worker");
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* ---- listeners ---------------------------------------------------------------------------- */

/* Each worker gets its own socket per listen address (SO_REUSEPORT), so the kernel spreads
 * connections across workers without a shared accept lock. */
static int open_listener(const struct net_addr *addr, uint32_t defer_accept_s, uint16_t *bound_port,
                         char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct net_addr a = *addr;
    if (*bound_port != 0) {
        a.port = *bound_port;
    }
    net_addr_to_sockaddr(&a, &ss, &sslen);
    char where[80];
    format_endpoint(&a, where, sizeof(where));
    int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return err_set(err, errlen, "listen %s: socket: %s", where, strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        close(fd);
        return err_set(err, errlen, "listen %s: SO_REUSEPORT: %s", where, strerror(errno));
    }
    if (a.family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    /* Replies are single writes that must not wait for the peer's delayed ACK (a command right
     * after a reply would); accepted sockets inherit this on Linux. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef TCP_DEFER_ACCEPT
    /* Bots speak first (PlugX hello, HTTP request, PROXY header), so the kernel keeps a
     * connection until its first bytes arrive: a peer that connects and stays silent costs no
     * descriptor, no connection state and no wake-up, and an honest one is accepted with its
     * packet already queued (one trip through epoll fewer per connection). */
    if (defer_accept_s > 0) {
        int secs = defer_accept_s > INT_MAX ? INT_MAX : (int)defer_accept_s;
        if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) != 0) {
            int e = errno;
            close(fd);
            return err_set(err, errlen, "listen %s: TCP_DEFER_ACCEPT: %s", where, strerror(e));
        }
    }
#else
    (void)defer_accept_s;
#endif
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, "listen %s: %s", where, strerror(e));
    }
    if (*bound_port == 0) {
        struct sockaddr_storage got;
        socklen_t gotlen = sizeof(got);
        struct net_addr g;
        getsockname(fd, (struct sockaddr *)&got, &gotlen);
        net_addr_from_sockaddr(&g, (struct sockaddr *)&got);
        *bound_port = g.port;
    }
    return fd;
}

static int worker_init(struct server *srv, struct worker *w, unsigned id, int *fds, char *err,
                       size_t errlen)
{
    w->id = id;
    w->srv = srv;
    pthread_mutex_init(&w->published_mu, NULL);
    w->seed = ((uint64_t)id + 1) * 0x2545F4914F6CDD1Dull ^ event_now_us();
    /* Shares that add up to exactly the budget server_fit_fd_limit kept descriptors for. */
    uint32_t hold_max = srv->cfg->limits.refuse_hold_max;
    w->hold_max = hold_max / srv->nworkers + (id < hold_max % srv->nworkers ? 1u : 0u);
    if (uv_loop_init(&w->loop) != 0) {
        return err_set(err, errlen, "cannot create event loop");
    }
    uv_async_init(&w->loop, &w->wake, on_wake);
    w->wake.data = w;
    uv_async_init(&w->loop, &w->stop, on_stop);
    w->stop.data = w;
    uv_timer_init(&w->loop, &w->sweep);
    w->sweep.data = w;
    uv_timer_init(&w->loop, &w->accept_retry);
    w->accept_retry.data = w;
    for (size_t i = 0; i < srv->cfg->nlisten; i++) {
        uv_tcp_init(&w->loop, &w->listeners[i]);
        w->listeners[i].data = w;
        int rc = uv_tcp_open(&w->listeners[i], fds[i]);
        fds[i] = -1; /* the handle owns it now, and closes it */
        if (rc == 0) {
            rc = uv_listen((uv_stream_t *)&w->listeners[i], 4096, on_connection);
        }
        w->nlisteners = i + 1;
        if (rc != 0) {
            return err_set(err, errlen, "listen: %s", uv_strerror(rc));
        }
    }
    uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    return 0;
}

/* Loads the drop filter and installs it on every worker's listeners, while serve still
 * has the privileges loading needs; later only its map changes. */
static int attach_synfilter(struct server *srv, int fds[][SERVER_MAX_LISTEN], uint32_t max,
                            char *err, size_t errlen)
{
    const struct server_config *cfg = srv->cfg;
    srv->synfilter = synfilter_open(max, err, errlen);
    if (srv->synfilter == NULL) {
        return -1;
    }
    for (size_t l = 0; l < cfg->nlisten; l++) {
        for (unsigned i = 0; i < srv->nworkers; i++) {
            int rc = synfilter_attach(srv->synfilter, fds[i][l], cfg->listen[l].family);
            if (rc != 0) {
                synfilter_close(srv->synfilter);
                srv->synfilter = NULL;
                return err_set(err, errlen, "listener filter: SO_ATTACH_BPF: %s", strerror(-rc));
            }
        }
    }
    srv->ban_generation = 1; /* the banlist starts empty, as the filter's map does */
    return 0;
}

/* ---- the whole server --------------------------------------------------------------------- */

void server_config_default(struct server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->node = "sinkd";
    cfg->origin = NULL;
    /* One worker per core. On 2 cores, 1 worker measured ~10 % more connections/s in
     * bench/churn.sh (within its noise) but let attacks on the one event loop push honest bots'
     * p99 to 4.2x the quiet figure in bench/attack.sh, against 3.4x with 2 (docs/scale.md):
     * resilience first. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cores > 0 ? (unsigned)cores : 1;
    cfg->limits.max_connections = 16000;
    cfg->limits.max_per_ip = 64;
    cfg->limits.conn_rate_per_ip = 20;
    cfg->limits.conn_burst_per_ip = 40;
    cfg->limits.max_tracked_ips = 1000000;
    cfg->limits.header_timeout_ms = 10000;
    cfg->limits.defer_accept_s = 10;
    cfg->limits.idle_timeout_ms = 180000;
    cfg->limits.max_message = 65536 + 8192;
    cfg->limits.max_inflight = 8;
    cfg->limits.ring_slots = 8192;
    cfg->limits.drain_timeout_ms = 5000;
    cfg->limits.bad_peer_log_per_s = 200;
    cfg->limits.refuse_hold_ms = 10000;
    cfg->limits.refuse_hold_max = 1024;
    cfg->limits.syn_ban_after = 40;
    cfg->limits.syn_ban_s = 60;
    cfg->limits.syn_ban_max = 1024;
    plugx_config_default(&cfg->plugx);
    cfg->checkpoint_every = 100000;
    cfg->checkpoint_interval_ms = 1000;
    /* Only under load (pipeline.h): bench/churn.sh measured 3-10 % more connections/s and half
     * the writer's CPU per contact, while the demo's moderate load is never delayed
     * (docs/evidence.md). */
    cfg->commit_delay_us = 1000;
    cfg->keep_raw_max_bytes = 4096ull << 20;     /* ~4 M machine-info bodies of ~1 KB */
    cfg->keep_raw_reserve_bytes = 1024ull << 20; /* the log's room when the disk fills */
    cfg->registry = true;
    cfg->registry_cache_mib = REGISTRY_CACHE_MIB_DEFAULT;
    cfg->log = stderr;
}

static int append_note(struct server *srv, uint8_t kind, const char *detail, char *err,
                       size_t errlen);

static int load_tables(const struct server_config *cfg, struct enrich_tables **out, char *err,
                       size_t errlen)
{
    struct enrich_config ec;
    memset(&ec, 0, sizeof(ec));
    ec.mmdb_path = cfg->geoip_path;
    ec.asn_v4_path = cfg->asn_v4_path;
    ec.asn_v6_path = cfg->asn_v6_path;
    ec.tag_paths = cfg->tag_files;
    return enrich_load(out, &ec, err, errlen);
}

/* The table-loaded record every later contact's enrich_id refers to. */
static int record_tables(struct server *srv, const struct enrich_tables *tables, char *err,
                         size_t errlen)
{
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_TABLE_LOADED;
    rec.u.note.time_us = event_now_us();
    snprintf(rec.u.note.node, sizeof(rec.u.note.node), "%s", srv->cfg->node);
    rec.u.note.id = enrich_tables_id(tables);
    enrich_tables_sha256(tables, rec.u.note.sha256);
    enrich_tables_describe(tables, rec.u.note.detail, sizeof(rec.u.note.detail));
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&rec, buf, sizeof(buf));
    if (n < 0) {
        return err_set(err, errlen, "cannot encode the table-loaded record");
    }
    return pipeline_append_sync(srv->pipe, buf, (size_t)n, err, errlen);
}

static int record_policy(struct server *srv, const struct policy *p, char *err, size_t errlen)
{
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_POLICY_LOADED;
    rec.u.note.time_us = event_now_us();
    snprintf(rec.u.note.node, sizeof(rec.u.note.node), "%s", srv->cfg->node);
    memcpy(rec.u.note.sha256, policy_sha256(p), 32);
    char ids[256] = "";
    size_t n = policy_authorisation_count(p);
    for (size_t i = 0, used = 0; i < n && used < sizeof(ids) - 1; i++) {
        used += (size_t)snprintf(ids + used, sizeof(ids) - used, "%s%s", i ? "," : "",
                                 policy_authorisation_id(p, i));
    }
    snprintf(rec.u.note.detail, sizeof(rec.u.note.detail),
             "file=%s name=%s version=%s authorisations=%s enforce_flag=%s", srv->cfg->policy_path,
             policy_name(p), policy_version(p), ids, srv->cfg->enforce ? "yes" : "no");
    uint8_t buf[EVENT_RECORD_MAX];
    int len = event_encode(&rec, buf, sizeof(buf));
    if (len < 0) {
        return err_set(err, errlen, "cannot encode the policy-loaded record");
    }
    return pipeline_append_sync(srv->pipe, buf, (size_t)len, err, errlen);
}

/* Which (bot, authorisation) pairs were already decided send or dry-run: read back from the
 * log, the only source of truth, so once-per-bot holds across restarts. */
static int rebuild_decided(struct server *srv, char *err, size_t errlen)
{
    struct evlog_reader *r = NULL;
    if (evlog_reader_open(&r, srv->cfg->state_dir, 0, err, errlen) != 0) {
        return -1;
    }
    int rc;
    const uint8_t *entry;
    size_t len;
    uint64_t index;
    while ((rc = evlog_reader_next(r, &entry, &len, &index, err, errlen)) == 1) {
        struct record rec;
        if (len < 2 || entry[1] != RECORD_DECISION || event_decode(entry, len, &rec, NULL, 0)) {
            continue;
        }
        const struct decision *d = &rec.u.decision;
        if (d->verdict == VERDICT_SEND || d->verdict == VERDICT_DRY_RUN) {
            uint8_t key[KEYSET_KEY];
            decided_key(d->bot_key, d->authorisation, key);
            keyset_shared_add(srv->decided, key);
        }
    }
    evlog_reader_close(r);
    return rc < 0 ? -1 : 0;
}

static void reload_policy(struct server *srv)
{
    char err[512];
    struct policy *p = NULL;
    if (policy_load_file(srv->cfg->policy_path, &p, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log,
                "sinkd: SIGHUP: policy NOT reloaded, the old one stays in force: %s\n", err);
        return;
    }
    /* Recorded before it is used: every decision refers to a policy the log already holds. */
    if (record_policy(srv, p, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log, "sinkd: SIGHUP: policy NOT reloaded: %s\n", err);
        policy_free(p);
        return;
    }
    if (policy_handle_replace(srv->policy, p, err, sizeof(err)) != 0) { /* owns p even then */
        fprintf(srv->cfg->log, "sinkd: SIGHUP: policy NOT reloaded: %s\n", err);
        return;
    }
    fprintf(srv->cfg->log, "sinkd: SIGHUP: policy %s reloaded\n", srv->cfg->policy_path);
}

static void reload(struct server *srv)
{
    char err[512];
    if (srv->policy != NULL) {
        reload_policy(srv);
    }
    struct enrich_tables *tables = NULL;
    if (load_tables(srv->cfg, &tables, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log, "sinkd: SIGHUP: enrichment data NOT reloaded, old tables stay: %s\n",
                err);
        return;
    }
    /* Recorded before use, so no contact refers to tables the log has not described. */
    if (record_tables(srv, tables, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log, "sinkd: SIGHUP: %s; old tables stay\n", err);
        enrich_free(tables);
        return;
    }
    fprintf(srv->cfg->log, "sinkd: SIGHUP: enrichment tables %08x loaded\n",
            enrich_tables_id(tables));
    enrich_handle_swap(&srv->enrich, tables);
}

/* A burst (a crowd of bots reconnecting at once, a flood) frees what it needed: the tile
 * writer's queued tiles, the workers' partial-message buffers, SQLite's scratch; glibc keeps
 * those pages in its heaps for good unless asked (start-up alone leaves ~8 MB so, see
 * server_run). Once load has fallen back, give them to the kernel. A trim locks each malloc
 * arena in turn, so it is not done while records still pour in. */
#define TRIM_TICK_MS 2000
#define TRIM_AFTER_ENTRIES 8192 /* at least this many log entries since the last trim ... */
#define TRIM_QUIET_ENTRIES 1024 /* ... and fewer than this many in the last tick */

static void on_trim_tick(uv_timer_t *t)
{
    struct server *srv = t->data;
    uint64_t now = atomic_load(&pipeline_stats(srv->pipe)->entries);
    uint64_t tick = now - srv->trim_tick_entries;
    srv->trim_tick_entries = now;
    if (now - srv->trim_entries < TRIM_AFTER_ENTRIES || tick >= TRIM_QUIET_ENTRIES) {
        return;
    }
    srv->trim_entries = now;
#ifdef __GLIBC__
    (void)malloc_trim(0);
#endif
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct server *srv = s->data;
    if (signum == SIGHUP) {
        reload(srv);
        return;
    }
    fprintf(srv->cfg->log, "sinkd: %s: draining\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    metrics_server_close(srv->metrics);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        uv_async_send(&srv->workers[i].stop);
    }
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    uv_close((uv_handle_t *)&srv->trim, NULL);
    if (srv->banlist != NULL) {
        uv_close((uv_handle_t *)&srv->ban_tick, NULL);
    }
    if (srv->registry != NULL) {
        uv_close((uv_handle_t *)&srv->registry_tick, NULL);
    }
}

static int append_note(struct server *srv, uint8_t kind, const char *detail, char *err,
                       size_t errlen)
{
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = kind;
    rec.u.note.time_us = event_now_us();
    snprintf(rec.u.note.node, sizeof(rec.u.note.node), "%s", srv->cfg->node);
    snprintf(rec.u.note.detail, sizeof(rec.u.note.detail), "%s", detail);
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&rec, buf, sizeof(buf));
    if (n < 0) {
        return err_set(err, errlen, "cannot encode %s record", event_kind_name(kind));
    }
    return pipeline_append_sync(srv->pipe, buf, (size_t)n, err, errlen);
}

static void started_detail(const struct server *srv, char *out, size_t len)
{
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(SINKD_VERSION));
    json_t *listen = json_array();
    for (size_t i = 0; i < srv->cfg->nlisten; i++) {
        char ep[80];
        format_endpoint(&srv->cfg->listen[i], ep, sizeof(ep));
        json_array_append_new(listen, json_string(ep));
    }
    json_object_set_new(o, "listen", listen);
    json_object_set_new(o, "workers", json_integer(srv->nworkers));
    json_object_set_new(o, "family", json_string(srv->family->name));
    json_object_set_new(o, "enforce", json_boolean(srv->cfg->enforce));
    json_object_set_new(o, "uninstall_command", json_integer(srv->cfg->plugx.uninstall_command));
    /* Whether message bodies were kept is a fact of the capture a court or a researcher asks. */
    json_object_set_new(o, "keep_raw", json_boolean(srv->raw != NULL));
    char *s = json_dumps(o, JSON_COMPACT);
    snprintf(out, len, "%s", s ? s : "{}");
    free(s);
    json_decref(o);
}

static void stats_add(struct worker_stats *t, const struct worker_stats *s)
{
    t->accepted += s->accepted;
    t->rejected += s->rejected;
    t->held += s->held;
    t->contacts += s->contacts;
    for (int k = 0; k < 4; k++) {
        t->by_type[k] += s->by_type[k];
    }
    t->bad_peers += s->bad_peers;
    t->timeouts += s->timeouts;
    t->replies += s->replies;
    for (int k = 0; k < 8; k++) {
        t->decisions[k] += s->decisions[k];
    }
    t->commands_sent += s->commands_sent;
    t->commands_failed += s->commands_failed;
}

static void stopped_detail(const struct server *srv, char *out, size_t len)
{
    struct worker_stats t;
    memset(&t, 0, sizeof(t));
    uint64_t pool_peak = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        pool_peak += srv->workers[i].pool.allocated;
        stats_add(&t, &srv->workers[i].stats);
    }
    const struct pipeline_stats *ps = pipeline_stats(srv->pipe);
    struct hist lat;
    pipeline_durable_latency(srv->pipe, &lat);
    struct banlist_stats bs = {0};
    if (srv->banlist != NULL) {
        banlist_stats(srv->banlist, &bs);
    }
    struct raw_store_stats rs;
    raw_store_stats(srv->raw, &rs);
    snprintf(
        out, len,
        "{\"connections\":%llu,\"rejected\":%llu,\"held\":%llu,\"contacts\":%llu,"
        "\"hello\":%llu,"
        "\"machine_info\":%llu,\"heartbeat\":%llu,\"other\":%llu,\"replies\":%llu,"
        "\"bad_peers\":%llu,\"timeouts\":%llu,\"batches\":%llu,\"max_batch\":%llu,"
        "\"delayed_commits\":%llu,"
        "\"commit_errors\":%llu,\"durable_us\":{\"p50\":%llu,\"p99\":%llu,\"max\":%llu},"
        "\"decisions\":{\"send\":%llu,\"dry_run\":%llu,\"not_authorised\":%llu,"
        "\"excluded\":%llu,\"outside_window\":%llu,\"rate_limited\":%llu,"
        "\"already_sent\":%llu},\"commands_sent\":%llu,\"commands_failed\":%llu,"
        "\"syn_banned\":%llu,\"syn_bans\":%llu,\"syn_bans_full\":%llu,"
        "\"raw_stored\":%llu,\"raw_stored_bytes\":%llu,\"raw_skipped\":%llu}",
        (unsigned long long)t.accepted, (unsigned long long)t.rejected, (unsigned long long)t.held,
        (unsigned long long)t.contacts, (unsigned long long)t.by_type[CONTACT_MSG_HELLO],
        (unsigned long long)t.by_type[CONTACT_MSG_MACHINE_INFO],
        (unsigned long long)t.by_type[CONTACT_MSG_HEARTBEAT],
        (unsigned long long)t.by_type[CONTACT_MSG_OTHER], (unsigned long long)t.replies,
        (unsigned long long)t.bad_peers, (unsigned long long)t.timeouts,
        (unsigned long long)atomic_load(&ps->batches),
        (unsigned long long)atomic_load(&ps->max_batch),
        (unsigned long long)atomic_load(&ps->delayed),
        (unsigned long long)atomic_load(&ps->commit_errors),
        (unsigned long long)hist_percentile(&lat, 0.50),
        (unsigned long long)hist_percentile(&lat, 0.99), (unsigned long long)lat.max,
        (unsigned long long)t.decisions[VERDICT_SEND],
        (unsigned long long)t.decisions[VERDICT_DRY_RUN],
        (unsigned long long)t.decisions[VERDICT_NOT_AUTHORISED],
        (unsigned long long)t.decisions[VERDICT_EXCLUDED],
        (unsigned long long)t.decisions[VERDICT_OUTSIDE_WINDOW],
        (unsigned long long)t.decisions[VERDICT_RATE_LIMITED],
        (unsigned long long)t.decisions[VERDICT_ALREADY_SENT], (unsigned long long)t.commands_sent,
        (unsigned long long)t.commands_failed, (unsigned long long)bs.banned,
        (unsigned long long)bs.bans, (unsigned long long)bs.full, (unsigned long long)rs.stored,
        (unsigned long long)rs.stored_bytes, (unsigned long long)rs.skipped);
    if (srv->raw != NULL) {
        fprintf(srv->cfg->log,
                "sinkd: keep-raw: %llu bodies kept (%llu bytes), %llu already kept, %llu not "
                "kept%s%s\n",
                (unsigned long long)rs.stored, (unsigned long long)rs.stored_bytes,
                (unsigned long long)rs.duplicates, (unsigned long long)rs.skipped,
                rs.full ? " (budget or disk reserve reached)" : "",
                rs.last_errno ? ", last error: " : "");
        if (rs.last_errno) {
            fprintf(srv->cfg->log, "sinkd: keep-raw: %s\n", strerror(rs.last_errno));
        }
    }
    fprintf(srv->cfg->log,
            "sinkd: contact-to-durable latency p50 %llu us, p99 %llu us, max %llu us over %llu "
            "records\n",
            (unsigned long long)hist_percentile(&lat, 0.50),
            (unsigned long long)hist_percentile(&lat, 0.99), (unsigned long long)lat.max,
            (unsigned long long)lat.count);
    uint64_t batches = atomic_load(&ps->batches);
    fprintf(srv->cfg->log,
            "sinkd: group commits: %llu for %llu records (avg %.1f, max %llu), %llu after a "
            "commit delay; connection pool peak %llu\n",
            (unsigned long long)batches, (unsigned long long)atomic_load(&ps->entries),
            batches ? (double)atomic_load(&ps->entries) / (double)batches : 0.0,
            (unsigned long long)atomic_load(&ps->max_batch),
            (unsigned long long)atomic_load(&ps->delayed), (unsigned long long)pool_peak);
    if (bs.bans > 0) {
        fprintf(srv->cfg->log,
                "sinkd: listener bans: %llu made, %llu in force at the stop, %llu not made "
                "(--syn-ban-max reached)\n",
                (unsigned long long)bs.bans, (unsigned long long)bs.banned,
                (unsigned long long)bs.full);
    }
}

/* GET /metrics: the workers' counters as of their last sweep (<= SWEEP_MS old), the evidence
 * writer's and the registry follower's as of now. Counts and states only (docs/metrics.md). */
static void render_metrics(void *ctx, struct metrics_text *m)
{
    struct server *srv = ctx;
    struct worker_stats t;
    memset(&t, 0, sizeof(t));
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        pthread_mutex_lock(&w->published_mu);
        stats_add(&t, &w->published);
        pthread_mutex_unlock(&w->published_mu);
    }
    const struct metrics_label build[] = {{"version", SINKD_VERSION},
                                          {"family", srv->family->name}};
    metrics_family(m, "sinkd_build_info", "gauge", "Version and protocol family; always 1.");
    metrics_sample_labels(m, "sinkd_build_info", build, 2, 1);
    metrics_family(m, "sinkd_start_time_seconds", "gauge", "When serve started (POSIX time).");
    metrics_sample(m, "sinkd_start_time_seconds", (uint64_t)srv->started_s);
    metrics_family(m, "sinkd_connections_open", "gauge", "Bot connections open now.");
    metrics_sample(m, "sinkd_connections_open", atomic_load(&srv->nconns));
    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"sinkd_connections_accepted_total", "Bot connections accepted.",
         offsetof(struct worker_stats, accepted)},
        {"sinkd_connections_rejected_total",
         "Connections refused by a limit (max connections, per address, rate).",
         offsetof(struct worker_stats, rejected)},
        {"sinkd_connections_held_total", "Refused or bad peers held until their reset.",
         offsetof(struct worker_stats, held)},
        {"sinkd_bad_peers_total", "Connections closed for breaking the protocol.",
         offsetof(struct worker_stats, bad_peers)},
        {"sinkd_timeouts_total", "Connections closed by the header or idle timeout.",
         offsetof(struct worker_stats, timeouts)},
        {"sinkd_replies_total", "Replies sent to bots, each after its record was durable.",
         offsetof(struct worker_stats, replies)},
        {"sinkd_commands_sent_total",
         "Remediation commands sent (each behind a durable send "
         "decision).",
         offsetof(struct worker_stats, commands_sent)},
        {"sinkd_commands_failed_total", "Remediation commands decided but not delivered.",
         offsetof(struct worker_stats, commands_failed)},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        uint64_t v;
        memcpy(&v, (const char *)&t + counters[i].offset, sizeof(v));
        metrics_family(m, counters[i].name, "counter", counters[i].help);
        metrics_sample(m, counters[i].name, v);
    }
    metrics_family(m, "sinkd_contacts_total", "counter", "Bot messages recorded, by type.");
    for (unsigned k = CONTACT_MSG_OTHER; k <= CONTACT_MSG_HEARTBEAT; k++) {
        const struct metrics_label type = {"type", event_msg_type_name((uint8_t)k)};
        metrics_sample_labels(m, "sinkd_contacts_total", &type, 1, t.by_type[k]);
    }
    metrics_family(m, "sinkd_decisions_total", "counter",
                   "Remediation decisions made durable, by verdict.");
    for (unsigned k = VERDICT_SEND; k <= VERDICT_ALREADY_SENT; k++) {
        const struct metrics_label verdict = {"verdict", event_verdict_name((uint8_t)k)};
        metrics_sample_labels(m, "sinkd_decisions_total", &verdict, 1, t.decisions[k]);
    }
    const struct pipeline_stats *ps = pipeline_stats(srv->pipe);
    metrics_family(m, "sinkd_log_entries", "gauge", "Durable entries in the evidence log.");
    metrics_sample(m, "sinkd_log_entries", atomic_load(&ps->log_size));
    metrics_family(m, "sinkd_log_commits_total", "counter", "Group commits (one fdatasync each).");
    metrics_sample(m, "sinkd_log_commits_total", atomic_load(&ps->batches));
    metrics_family(m, "sinkd_log_commit_errors_total", "counter",
                   "Failed commits (disk full, I/O error); nothing is acknowledged meanwhile.");
    metrics_sample(m, "sinkd_log_commit_errors_total", atomic_load(&ps->commit_errors));
    metrics_family(m, "sinkd_log_stalled", "gauge",
                   "1 while commits fail and bots get no replies (alert on this).");
    metrics_sample(m, "sinkd_log_stalled", atomic_load(&ps->stalled) != 0);
    struct hist lat;
    pipeline_durable_latency(srv->pipe, &lat);
    metrics_family(m, "sinkd_log_durable_latency_microseconds", "gauge",
                   "Contact-to-durable latency over all records since the start, by quantile.");
    const struct metrics_label p50 = {"quantile", "0.5"}, p99 = {"quantile", "0.99"};
    metrics_sample_labels(m, "sinkd_log_durable_latency_microseconds", &p50, 1,
                          hist_percentile(&lat, 0.50));
    metrics_sample_labels(m, "sinkd_log_durable_latency_microseconds", &p99, 1,
                          hist_percentile(&lat, 0.99));
    metrics_family(m, "sinkd_log_durable_latency_max_microseconds", "gauge",
                   "The largest contact-to-durable latency since the start.");
    metrics_sample(m, "sinkd_log_durable_latency_max_microseconds", lat.max);
    if (srv->registry != NULL) {
        struct registry_follow_stats rs;
        registry_follow_stats(srv->registry, &rs);
        metrics_family(m, "sinkd_registry_up", "gauge",
                       "1 while the registry follower runs, 0 once it stopped on an error.");
        metrics_sample(m, "sinkd_registry_up", rs.error == 0);
        metrics_family(m, "sinkd_registry_applied_entries", "gauge",
                       "Log entries the victim registry has applied.");
        metrics_sample(m, "sinkd_registry_applied_entries", rs.applied_index);
        metrics_family(m, "sinkd_registry_lag_entries", "gauge",
                       "Durable entries not yet applied to the registry at its last commit.");
        metrics_sample(m, "sinkd_registry_lag_entries", rs.lag);
    }
    if (srv->raw != NULL) {
        struct raw_store_stats rs;
        raw_store_stats(srv->raw, &rs);
        metrics_family(m, "sinkd_raw_bodies_kept_total", "counter",
                       "Message bodies --keep-raw stored (new files) since the start.");
        metrics_sample(m, "sinkd_raw_bodies_kept_total", rs.stored);
        metrics_family(m, "sinkd_raw_bodies_skipped_total", "counter",
                       "Bodies not kept (budget, disk reserve or a write error).");
        metrics_sample(m, "sinkd_raw_bodies_skipped_total", rs.skipped);
        metrics_family(m, "sinkd_raw_full", "gauge",
                       "1 while capture is stopped (budget spent, or disk short of its reserve).");
        metrics_sample(m, "sinkd_raw_full", rs.full);
    }
    if (srv->banlist != NULL) {
        struct banlist_stats bs;
        banlist_stats(srv->banlist, &bs);
        metrics_family(m, "sinkd_listener_bans", "gauge",
                       "Addresses whose SYNs the listeners drop now.");
        metrics_sample(m, "sinkd_listener_bans", bs.banned);
        metrics_family(m, "sinkd_listener_bans_total", "counter", "Listener bans made.");
        metrics_sample(m, "sinkd_listener_bans_total", bs.bans);
    }
}

/* The registry is a derived view: its follower thread tails the durable log on its own, so no
 * worker and not the evidence writer ever waits on SQLite. */
static int start_registry(struct server *srv, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/registry.db", srv->cfg->state_dir);
    if (srv->cfg->registry_target != NULL) {
        snprintf(path, sizeof(path), "%s", registry_target_name(srv->cfg->registry_target));
    }
    if (registry_open_log(&srv->registry, srv->cfg->registry_target, srv->cfg->state_dir, err,
                          errlen) != 0) {
        srv->registry = NULL;
        return -1;
    }
    if (registry_set_cache_mib(srv->registry, srv->cfg->registry_cache_mib, err, errlen) != 0) {
        registry_close(srv->registry);
        srv->registry = NULL;
        return -1;
    }
    struct registry_follow_config fc;
    memset(&fc, 0, sizeof(fc));
    fc.state_dir = srv->cfg->state_dir;
    int64_t cache_mib = registry_cache_mib(srv->registry);
    if (registry_follow_start(srv->registry, &fc, err, errlen) != 0) {
        registry_close(srv->registry);
        srv->registry = NULL;
        return -1;
    }
    char cache[48] = "its cache is the database server's";
    if (cache_mib >= 0) {
        snprintf(cache, sizeof(cache), "page cache %lld MiB", (long long)cache_mib);
    }
    fprintf(srv->cfg->log, "sinkd: registry: following the log into %s (%s)\n", path, cache);
    return 0;
}

static void stop_registry(struct server *srv)
{
    char err[256];
    struct registry_follow_stats st;
    /* Figures of the running follower (stop drains the rest and ends its statistics). */
    registry_follow_stats(srv->registry, &st);
    if (registry_follow_stop(srv->registry, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log,
                "sinkd: registry follower: %s (the registry resumes from its applied index when "
                "a follower runs again; `sinkd registry rebuild` recreates it)\n",
                err);
    }
    st.applied_index = registry_applied_index(srv->registry);
    fprintf(srv->cfg->log,
            "sinkd: registry: %llu records in %llu batches (avg %.0f, max %llu), lag max %llu, "
            "applied up to %llu\n",
            (unsigned long long)st.records, (unsigned long long)st.batches, st.batch_avg,
            (unsigned long long)st.batch_max, (unsigned long long)st.lag_max,
            (unsigned long long)st.applied_index);
    registry_close(srv->registry);
    srv->registry = NULL;
}

/* After the workers have stopped, settle what the writer finished for them. */
static void settle_after_stop(struct server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        struct pipe_slot *slot;
        if (w->ring == NULL) {
            continue; /* start-up failed before this worker got its ring */
        }
        while ((slot = pipe_next_durable(w->ring)) != NULL) {
            struct conn *c = slot->owner;
            if (c != NULL && --c->inflight == 0 && c->handle_closed) {
                conn_free(c);
            }
            pipe_release(w->ring);
        }
    }
}

/* Descriptors serve holds besides bot connections and held refusals: per worker its listeners,
 * epoll instance, eventfd and libuv's EMFILE reserve; then the log journal, the tile or checkpoint
 * file being written, the registry's database, WAL, shared memory and lock, the follower's log
 * reader, enrichment files while they are (re)loaded, the standard streams, and headroom. */
static uint64_t fd_reserve(const struct server_config *cfg)
{
    uint64_t workers = cfg->workers ? cfg->workers : 1;
    return 64u + workers * ((uint64_t)cfg->nlisten + 4u);
}

int server_fit_fd_limit(struct server_config *cfg, char *note, size_t notelen, char *err,
                        size_t errlen)
{
    note[0] = '\0';
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return err_set(err, errlen, "cannot read the open-files limit: %s", strerror(errno));
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
        /* Linux refuses an infinite RLIMIT_NOFILE; fs.nr_open's default is 2^20. */
        struct rlimit want = {rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
            rl.rlim_cur = want.rlim_cur;
        }
    }
    uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : (uint64_t)rl.rlim_cur;
    uint64_t reserve = fd_reserve(cfg);
    if (limit < reserve + 16) {
        return err_set(err, errlen,
                       "the open-files limit of %llu leaves no room for connections: %llu are "
                       "kept for the log, registry and event loops (raise it: ulimit -n, or "
                       "LimitNOFILE= in the unit)",
                       (unsigned long long)limit, (unsigned long long)reserve);
    }
    uint64_t room = limit - reserve;
    struct net_limits *lim = &cfg->limits;
    /* Bots first: refusals are held only with descriptors that connections do not need. */
    uint64_t hold = lim->max_connections >= room ? 0 : room - lim->max_connections;
    if (hold > lim->refuse_hold_max) {
        hold = lim->refuse_hold_max;
    }
    if (lim->max_connections <= room && hold == lim->refuse_hold_max) {
        return 0;
    }
    size_t at = 0;
    if (lim->max_connections > room) {
        at = (size_t)snprintf(note, notelen,
                              "--max-connections %u lowered to %llu: the open-files limit is %llu "
                              "and %llu descriptors are kept for the evidence log, registry and "
                              "event loops",
                              lim->max_connections, (unsigned long long)room,
                              (unsigned long long)limit, (unsigned long long)reserve);
        lim->max_connections = (uint32_t)room;
    }
    if (hold < lim->refuse_hold_max && lim->refuse_hold_ms > 0 && at < notelen) {
        at += (size_t)snprintf(note + at, notelen - at,
                               "%s--refuse-hold-max %u lowered to %llu: no descriptors left "
                               "beyond --max-connections %u",
                               at > 0 ? "; " : "", lim->refuse_hold_max, (unsigned long long)hold,
                               lim->max_connections);
    }
    lim->refuse_hold_max = (uint32_t)hold;
    if (at > 0 && at < notelen) {
        snprintf(note + at, notelen - at, " (raise it: ulimit -n, or LimitNOFILE= in the unit)");
    }
    return at > 0 ? 1 : 0;
}

int server_run(const struct server_config *cfg, char *err, size_t errlen)
{
    if (cfg->nlisten == 0) {
        return err_set(err, errlen, "no listen address");
    }
    struct server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    srv->cfg = cfg;
    srv->family = &plugx_family;
    srv->family_cfg = &cfg->plugx;
    srv->nworkers = cfg->workers ? cfg->workers : 1;
    if (srv->nworkers > SERVER_MAX_WORKERS) {
        srv->nworkers = SERVER_MAX_WORKERS;
    }
    int rc = -1;
    int fds[SERVER_MAX_WORKERS][SERVER_MAX_LISTEN];
    memset(fds, -1, sizeof(fds));
    uv_async_t *wakes[SERVER_MAX_WORKERS];
    unsigned started = 0;
    bool main_loop_ready = false;
    bool enrich_ready = false;
    char detail[1024];

    srv->ipcount = ipcount_new(cfg->limits.max_tracked_ips);
    srv->iplimits.max_open = cfg->limits.max_per_ip;
    srv->iplimits.rate = cfg->limits.conn_rate_per_ip;
    srv->iplimits.burst = cfg->limits.conn_burst_per_ip;
    /* The CLI bounds syn_ban_max to BANLIST_MAX; a library caller is clamped here, once. */
    uint32_t ban_max =
        cfg->limits.syn_ban_max < BANLIST_MAX ? cfg->limits.syn_ban_max : BANLIST_MAX;
    if (cfg->limits.syn_ban_after > 0 && cfg->limits.conn_rate_per_ip > 0 && ban_max > 0) {
        struct banlist_limits bl = {.after = cfg->limits.syn_ban_after,
                                    .ban_ms = cfg->limits.syn_ban_s * 1000,
                                    .max = ban_max};
        srv->banlist = banlist_new(&bl);
        srv->ban_snapshot = calloc(ban_max, sizeof(*srv->ban_snapshot));
        if (srv->banlist == NULL || srv->ban_snapshot == NULL) {
            err_set(err, errlen, "out of memory");
            goto out;
        }
    }
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    if (srv->ipcount == NULL || srv->workers == NULL) {
        err_set(err, errlen, "out of memory");
        goto out;
    }
    /* Bind first: a port in use should fail before anything is written to the log. */
    for (size_t l = 0; l < cfg->nlisten; l++) {
        uint16_t port = cfg->listen[l].port;
        for (unsigned i = 0; i < srv->nworkers; i++) {
            fds[i][l] =
                open_listener(&cfg->listen[l], cfg->limits.defer_accept_s, &port, err, errlen);
            if (fds[i][l] < 0) {
                goto out;
            }
        }
        srv->bound[l] = cfg->listen[l];
        srv->bound[l].port = port;
        static const uint8_t any[16];
        srv->bound_wildcard[l] =
            memcmp(cfg->listen[l].ip, any, cfg->listen[l].family == AF_INET ? 4 : 16) == 0;
    }
    if (cfg->metrics) {
        uint16_t mport = 0;
        if (metrics_server_open(&srv->metrics, &cfg->metrics_listen, &mport, err, errlen) != 0) {
            goto out;
        }
        char ip[NET_ADDR_STRLEN];
        net_addr_format_ip(&cfg->metrics_listen, ip);
        fprintf(cfg->log, "sinkd: metrics on http://%s%s%s:%u/metrics\n",
                cfg->metrics_listen.family == AF_INET6 ? "[" : "", ip,
                cfg->metrics_listen.family == AF_INET6 ? "]" : "", mport);
    }
    if (srv->banlist != NULL && attach_synfilter(srv, fds, ban_max, detail, sizeof(detail)) != 0) {
        fprintf(cfg->log, "sinkd: listener bans off: %s\n", detail);
        banlist_free(srv->banlist);
        srv->banlist = NULL;
    }
    /* Bound (ports below 1024 need root): now give privilege up for good, while the process
     * still has one thread (no-new-privs and capabilities are per thread). */
    if (sandbox_drop_privileges(cfg->user, cfg->state_dir, err, errlen) != 0) {
        goto out;
    }
    struct enrich_tables *tables = NULL;
    if (load_tables(cfg, &tables, err, errlen) != 0) {
        goto out;
    }
    enrich_handle_init(&srv->enrich, tables);
    enrich_ready = true;
    if (cfg->keep_raw) {
        /* After the drop, so the files belong to the service user; before the sandbox, which
         * allows no directory to be made by then. */
        struct raw_store_config rcfg = {.max_bytes = cfg->keep_raw_max_bytes,
                                        .reserve_bytes = cfg->keep_raw_reserve_bytes};
        if (raw_store_open(&srv->raw, cfg->state_dir, &rcfg, err, errlen) != 0) {
            goto out;
        }
    }
    struct evlog_options lopt;
    memset(&lopt, 0, sizeof(lopt));
    lopt.origin = cfg->origin;
    lopt.create_key = true;
    lopt.checkpoint_entries = cfg->checkpoint_every;
    lopt.checkpoint_ms = cfg->checkpoint_interval_ms;
    struct evlog_recovery recovery;
    if (evlog_open(&srv->log, cfg->state_dir, &lopt, &recovery, err, errlen) != 0) {
        goto out;
    }
    fprintf(cfg->log, "sinkd: evidence log: %llu entries%s", (unsigned long long)recovery.size,
            recovery.cut_bytes ? "" : "\n");
    if (recovery.cut_bytes) {
        fprintf(cfg->log, ", torn tail of %llu bytes cut (an unacknowledged batch)\n",
                (unsigned long long)recovery.cut_bytes);
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        wakes[i] = &srv->workers[i].wake;
    }
    if (pipeline_start(&srv->pipe, srv->log, srv->nworkers, cfg->limits.ring_slots, wakes, cfg->log,
                       err, errlen) != 0) {
        goto out;
    }
    pipeline_set_commit_delay(srv->pipe, cfg->commit_delay_us);
    if (cfg->registry && start_registry(srv, err, errlen) != 0) {
        goto out;
    }
    if (cfg->policy_path != NULL) {
        struct policy *p = NULL;
        srv->decided = keyset_shared_new();
        if (srv->decided == NULL || rebuild_decided(srv, err, errlen) != 0 ||
            policy_load_file(cfg->policy_path, &p, err, errlen) != 0) {
            goto out;
        }
        if (record_policy(srv, p, err, errlen) != 0) {
            policy_free(p);
            goto out;
        }
        if (policy_handle_new(p, &srv->policy, err, errlen) != 0) { /* owns p even then */
            srv->policy = NULL;
            goto out;
        }
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        srv->workers[i].ring = pipeline_ring(srv->pipe, i);
        if (worker_init(srv, &srv->workers[i], i, fds[i], err, errlen) != 0) {
            goto out;
        }
    }
    started_detail(srv, detail, sizeof(detail));
    if (append_note(srv, RECORD_NODE_STARTED, detail, err, errlen) != 0 ||
        record_tables(srv, tables, err, errlen) != 0) {
        goto out;
    }

    uv_loop_init(&srv->main_loop);
    main_loop_ready = true;
    uv_signal_init(&srv->main_loop, &srv->sigint);
    uv_signal_init(&srv->main_loop, &srv->sigterm);
    uv_signal_init(&srv->main_loop, &srv->sighup);
    srv->sigint.data = srv->sigterm.data = srv->sighup.data = srv;
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sighup, on_signal, SIGHUP);
    srv->started_s = (int64_t)(event_now_us() / 1000000);
    if (srv->metrics != NULL && metrics_server_start(srv->metrics, &srv->main_loop, render_metrics,
                                                     srv, err, errlen) != 0) {
        goto out;
    }
    uv_timer_init(&srv->main_loop, &srv->trim);
    srv->trim.data = srv;
    uv_timer_start(&srv->trim, on_trim_tick, TRIM_TICK_MS, TRIM_TICK_MS);
    if (srv->banlist != NULL) {
        uv_timer_init(&srv->main_loop, &srv->ban_tick);
        srv->ban_tick.data = srv;
        uv_timer_start(&srv->ban_tick, on_ban_tick, BAN_TICK_MS, BAN_TICK_MS);
    }
    if (srv->registry != NULL) {
        uv_timer_init(&srv->main_loop, &srv->registry_tick);
        srv->registry_tick.data = srv;
        uv_timer_start(&srv->registry_tick, on_registry_tick, REGISTRY_TICK_MS, REGISTRY_TICK_MS);
    }

    for (; started < srv->nworkers; started++) {
        if (pthread_create(&srv->workers[started].thread, NULL, worker_main,
                           &srv->workers[started]) != 0) {
            err_set(err, errlen, "cannot start worker thread");
            goto out;
        }
    }
    /* Start-up is over and every thread exists: confine them all (TSYNC). */
    if (cfg->seccomp != SERVER_SECCOMP_OFF) {
        if (!sandbox_seccomp_supported()) {
            fprintf(cfg->log, "sinkd: seccomp is not supported here; running without it\n");
        } else if (sandbox_install_seccomp_mode(cfg->seccomp == SERVER_SECCOMP_LOG
                                                    ? SANDBOX_SECCOMP_LOG
                                                    : SANDBOX_SECCOMP_KILL,
                                                err, errlen) != 0) {
            for (unsigned i = 0; i < started; i++) {
                uv_async_send(&srv->workers[i].stop);
            }
            goto out;
        }
    }
#ifdef __GLIBC__
    /* Start-up freed its own scratch (enrichment tables parsed, keys and policy read): ~8 MB
     * that glibc would otherwise keep (bench/idle.sh: 41.4 -> 32.9 MB before any connection). */
    (void)malloc_trim(0);
#endif
    if (cfg->on_ready != NULL) {
        cfg->on_ready(cfg->ready_ctx);
    }
    uv_run(&srv->main_loop, UV_RUN_DEFAULT);
    rc = 0;

out:
    if (started < srv->nworkers && started > 0) {
        for (unsigned i = 0; i < started; i++) {
            uv_async_send(&srv->workers[i].stop);
        }
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(srv->workers[i].thread, NULL);
    }
    if (srv->pipe != NULL) {
        if (started > 0) {
            char stop_err[256];
            stopped_detail(srv, detail, sizeof(detail));
            if (append_note(srv, RECORD_NODE_STOPPED, detail, stop_err, sizeof(stop_err)) != 0) {
                fprintf(cfg->log, "sinkd: %s\n", stop_err);
            }
        }
        pipeline_stop(srv->pipe);
        settle_after_stop(srv);
        pipeline_free(srv->pipe);
    }
    if (srv->registry != NULL) {
        stop_registry(srv);
    }
    if (srv->workers != NULL) {
        for (unsigned i = 0; i < srv->nworkers; i++) {
            struct worker *w = &srv->workers[i];
            if (w->srv == NULL) {
                continue;
            }
            if (started == 0) {
                /* Never ran: close what worker_init opened so the loop can be freed. */
                uv_walk(&w->loop, walk_close, NULL);
                uv_run(&w->loop, UV_RUN_DEFAULT);
            }
            uv_loop_close(&w->loop);
            conn_pool_destroy(&w->pool);
            pthread_mutex_destroy(&w->published_mu);
        }
    }
    if (main_loop_ready) {
        metrics_server_close(srv->metrics);
        uv_walk(&srv->main_loop, walk_close, NULL);
        uv_run(&srv->main_loop, UV_RUN_DEFAULT);
        uv_loop_close(&srv->main_loop);
    }
    metrics_server_free(srv->metrics);
    raw_store_close(srv->raw);
    if (srv->log != NULL) {
        char close_err[256];
        if (evlog_close(srv->log, close_err, sizeof(close_err)) != 0) {
            fprintf(cfg->log, "sinkd: closing the evidence log: %s\n", close_err);
            rc = -1;
            err_set(err, errlen, "closing the evidence log: %s", close_err);
        }
    }
    for (unsigned i = 0; i < SERVER_MAX_WORKERS && i < srv->nworkers; i++) {
        for (size_t l = 0; l < cfg->nlisten; l++) {
            if (fds[i][l] >= 0) {
                close(fds[i][l]);
            }
        }
    }
    if (enrich_ready) {
        enrich_handle_destroy(&srv->enrich);
    }
    policy_handle_free(srv->policy);
    keyset_shared_free(srv->decided);
    ipcount_free(srv->ipcount);
    banlist_free(srv->banlist);
    free(srv->ban_snapshot);
    synfilter_close(srv->synfilter);
    free(srv->workers);
    free(srv);
    return rc;
}
