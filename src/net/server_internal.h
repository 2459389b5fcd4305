/* server_internal.h -- what the files of `sinkd serve` (server.c, listen.c, worker.c, conn.c,
 * http.c, remediate.c, stats.c) share: the server, worker and connection structures and the
 * functions one file calls in another. Not a module contract: nothing outside src/net/ includes
 * it (net/server.h is the contract). */
#ifndef SINKD_NET_SERVER_INTERNAL_H
#define SINKD_NET_SERVER_INTERNAL_H

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
#include "net/httpreq.h"
#include "net/ipcount.h"
#include "net/metrics.h"
#include "evidence/raw.h"
#include "net/pipeline.h"
#include "net/proxy.h"
#include "net/sandbox.h"
#include "net/synfilter.h"
#include "net/rollup.h"
#include "net/undecoded.h"
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
#define BAN_TICK_MS 1000
/* A family's per-connection state (proto_family.conn_state_size) lives inline in struct conn. */
#define CONN_PROTO_STATE_MAX 32 /* the listeners' drop set follows the banlist this often */

enum conn_phase {
    PHASE_PROXY,  /* trusted peer: a PROXY header must come first */
    PHASE_DETECT, /* raw PlugX or HTTP? */
    PHASE_RAW,
    PHASE_HTTP,
};

enum slot_kind {
    SLOT_REPLY_RAW = 1,   /* a contact: send the reply once durable */
    SLOT_REPLY_HTTP = 2,  /* the same, wrapped in an HTTP response */
    SLOT_RECORD = 3,      /* a record with nothing to do once durable */
    SLOT_SEND = 4,        /* a decision with verdict send: only now may the command be encoded */
    SLOT_REPLY_CLOSE = 5, /* an undecoded contact: send the ready-made reply (if any), then close */
};

/* Bytes no family decoded, as contact_record_undecoded() records them. */
struct undecoded_input {
    const uint8_t *bytes; /* the first of them (at most CONTACT_HEAD_MAX are digested) */
    size_t len;
    uint64_t total;       /* bytes received in all, >= len */
    uint8_t transport;    /* enum contact_transport */
    bool hostile;         /* a size or rate broken: refuse; otherwise end the connection gently */
    const char *reason;   /* for the record and the log line */
    const uint8_t *reply; /* sent once the record is durable (HTTP: a whole response), or NULL */
    size_t reply_len;
};

struct conn_list {
    struct conn *head;
    struct conn *tail;
};

struct http_state {
    http_parser parser;
    uint8_t *body;
    uint32_t body_len;
    /* The target and headers of the request being parsed: allocated at its first byte, freed
     * once it is handled, so an idle keep-alive connection holds none. */
    struct httpreq *head;
    uint8_t in_message; /* between the first byte of a request and its end */
    uint8_t complete;   /* a whole request is waiting to be handled */
    uint8_t keep_alive; /* of the request being handled */
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
    uint8_t held : 1;              /* refused and held: not counted in server.nconns */
    uint8_t uninstall_decided : 1; /* the policy decided remediation for this connection's bot */
    uint8_t collect_decided : 1;   /* ... and collection */
    uint8_t awaiting_identity : 1; /* machine information was asked for (collect send) */
    uint8_t listener;              /* index into the worker's listeners */
    uint8_t decided_gen; /* policy generation the decided bits refer to (its low 8 bits) */
    uint8_t bot_key[16];
    struct net_addr peer; /* TCP peer */
    union {
        uint64_t align;
        uint8_t bytes[CONN_PROTO_STATE_MAX];
    } proto;
};

struct worker_stats {
    uint64_t accepted;
    uint64_t rejected; /* over a connection limit */
    uint64_t held;     /* refused or bad peers held until their reset (refuse_hold_ms) */
    uint64_t contacts;
    uint64_t by_type[CONTACT_MSG_TYPES];
    uint64_t undecoded_callers; /* connections whose bytes no family decoded (not hostile) */
    uint64_t rolled_up;         /* polls counted into a heartbeats entry, answered at once */
    uint64_t heartbeat_records; /* heartbeats records handed to the writer */
    uint64_t bad_peers;
    uint64_t timeouts;
    uint64_t replies;
    uint64_t decisions[VERDICT_COUNT]; /* by enum decision_verdict */
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
    unsigned heartbeat_cursor; /* the next roll-up stripe of its share to look at */
    /* Claims (claims.c) answered by the claims thread, and those the ring had no room for. */
    uv_async_t claims_wake;
    pthread_mutex_t claims_mu;
    struct claim_req *claims_done;    /* under claims_mu */
    bool claims_closed;               /* under claims_mu: claims_wake is closed */
    struct claim_req *claims_waiting; /* worker only */
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
    int listen_locks[SERVER_MAX_LISTEN]; /* claim_listen_address()'s locks, -1 when none */
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
    struct registry *registry;    /* derived view, fed by its own follower thread */
    uv_timer_t registry_tick;     /* tells once that the follower stopped (on_registry_tick) */
    struct policy_handle *policy; /* NULL: no policy loaded, no decisions */
    _Atomic uint32_t policy_gen;  /* bumped by every policy put in force (start: 1) */
    struct claims *claims;      /* sends claimed in a shared registry (claims.c); NULL: one node */
    struct keyset_shared *sent; /* (bot, authorisation) pairs a command was sent to */
    struct keyset_shared *rehearsed; /* ... and pairs decided dry-run (never counted as sent) */
    struct worker *workers;
    unsigned nworkers;
    _Atomic uint32_t nconns;
    uv_loop_t main_loop;
    uv_signal_t sigint;
    uv_signal_t sigterm;
    uv_signal_t sighup;
    struct metrics_server *metrics;    /* GET /metrics on the main loop; NULL: off */
    struct raw_store *raw;             /* --keep-raw; NULL: off */
    struct undecoded_limit *undecoded; /* per-address bound on undecoded contacts */
    struct rollup *rollup;             /* heartbeat roll-up and bot presence; NULL: off */
    int64_t started_s;                 /* POSIX time of the start, for the metrics */
    uv_timer_t trim;                   /* hands freed heap back after a burst (on_trim_tick) */
    uint64_t trim_entries;             /* log entries at the last trim */
    uint64_t trim_tick_entries;        /* ... at the last tick */
};

/* ---- small helpers ------------------------------------------------------------------------ */

static inline struct worker *conn_worker(const struct conn *c)
{
    return (struct worker *)((char *)c->tcp.loop - offsetof(struct worker, loop));
}

/* The bot: the TCP peer, or what a trusted proxy said. */
static inline const struct net_addr *conn_src(const struct conn *c)
{
    return c->proxied != NULL ? &c->proxied->src : &c->peer;
}

/* Where the bot connected to: what a trusted proxy said, or our listener's address (asked of
 * the socket for a wildcard listener, which has no single one). */
static inline void conn_dst(const struct conn *c, struct net_addr *out)
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

static inline bool deadline_passed(uint32_t deadline_ms, uint64_t now)
{
    return (int32_t)((uint32_t)now - deadline_ms) >= 0;
}

/* ---- shared between the files ---- */
bool admit_address(struct conn *c);
/* One line per bad peer, with a per-worker budget so a flood cannot turn into a log flood. */
__attribute__((format(printf, 2, 3))) void bad_peer(struct conn *c, const char *fmt, ...);
/* The same for a caller whose bytes no family decodes (recorded, not hostile). */
__attribute__((format(printf, 2, 3))) void undecoded_caller(struct conn *c, const char *fmt, ...);
bool conn_can_submit(struct conn *c);
struct conn *conn_alloc(struct worker *w);
void conn_close(struct conn *c);
void conn_free(struct conn *c);
void conn_pool_destroy(struct conn_pool *pool);
void conn_process(struct conn *c, const uint8_t *data, size_t len);
void conn_refuse(struct conn *c);
void conn_refuse_held(struct conn *c);
void conn_send(struct conn *c, const uint8_t *data, size_t len);
void flush_suppressed(struct worker *w, uint64_t now);
void format_endpoint(const struct net_addr *a, char *out, size_t len);
/* Records one decoded message and queues its reply behind the record's durability. */
void handle_message(struct conn *c, const struct proto_message *msg, uint8_t transport);
/* Records an undecoded contact (within the per-address bound) and ends the connection: after the
 * record is durable and the reply sent, or at once when hostile or not recorded. Needs room as
 * conn_can_submit() says. Returns false (the connection is done). */
bool contact_record_undecoded(struct conn *c, const struct undecoded_input *in);
void list_push(struct conn *c, enum conn_on_list which, uint64_t deadline_ms);
void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void on_conn_closed(uv_handle_t *h);
void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);
/* The HTTP transport (http.c). http_start: the connection's first bytes are an HTTP request
 * (returns false when out of memory and closed). http_feed: parses from q[0..n), stopping at the
 * end of a whole request; returns bytes used, or -1 when the connection is done. A whole request
 * waits in c->http until http_handle_request() hands it to the family (false: done). */
bool http_start(struct conn *c);
ptrdiff_t http_feed(struct conn *c, const uint8_t *q, size_t n);
bool http_handle_request(struct conn *c);
void http_free(struct conn *c);
bool starts_with_http_method(const uint8_t *p, size_t len, bool *need_more);
void conn_send_http(struct conn *c, const uint8_t *body, size_t len, bool keep_alive);
int attach_synfilter(struct server *srv, int fds[][SERVER_MAX_LISTEN], uint32_t max, char *err,
                     size_t errlen);
int claim_listen_address(const struct net_addr *addr, char *err, size_t errlen);
int open_listener(const struct net_addr *addr, uint32_t defer_accept_s, uint16_t *bound_port,
                  char *err, size_t errlen);
void on_connection(uv_stream_t *listener, int status);
/* Makes the listeners' drop set the banlist's current one, when it changed. */
void on_ban_tick(uv_timer_t *t);
int rebuild_decided(struct server *srv, char *err, size_t errlen);
int load_policy(struct server *srv, struct policy **out, char *err, size_t errlen);
int record_policy(struct server *srv, const struct policy *p, char *err, size_t errlen);
void command_ready(struct worker *w, struct conn *c, const struct decision *d);
/* Decides for the bot of contact ct, known by key (32 hex digits: identity or address), under the
 * policy in force: collection at the start of its presence, remediation once per connection; each
 * decision record queued (and, for send, the command behind it). */
void decide(struct conn *c, const struct contact *ct, const char *key, bool presence_start);
/* Queues a decision record (and, for send, the command behind it); false when the ring is full. */
bool publish_decision(struct worker *w, struct conn *c, const struct record *rec);
/* The key of a (bot, authorisation) pair in the sent and rehearsed sets. */
void decided_key(const char *bot_key, const char *authorisation, uint8_t out[KEYSET_KEY]);
/* claims.c: the once-per-bot rule across nodes sharing a PostgreSQL registry. */
struct claims;
struct claim_req;
int claims_start(struct server *srv, char *err, size_t errlen);
void claims_stop(struct server *srv);
bool claims_submit(struct worker *w, struct conn *c, const struct record *rec);
void claims_settle(struct worker *w);
void claims_worker_free(struct worker *w);
void reload_policy(struct server *srv);
void send_command(struct worker *w, struct conn *c, const struct decision *d, const char *why_not);
void render_metrics(void *ctx, struct metrics_text *m);
void started_detail(const struct server *srv, char *out, size_t len);
void stopped_detail(const struct server *srv, char *out, size_t len);
int worker_init(struct server *srv, struct worker *w, unsigned id, int *fds, char *err,
                size_t errlen);
void *worker_main(void *arg);
void complete_durable(struct worker *w);
void settle_after_stop(struct server *srv);
void flush_heartbeats_at_stop(struct server *srv);
void walk_close(uv_handle_t *h, void *arg);

#endif
