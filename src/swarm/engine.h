/* engine.h -- private to swarm/: the run's state shared by the scheduler (run.c) and the bot
 * sessions (session.c). */
#ifndef SINKD_SWARM_ENGINE_H
#define SINKD_SWARM_ENGINE_H

#include "swarm/swarm.h"

#include <uv.h>

#define SWARM_READ_SLAB 65536

enum bot_flag {                      /* one byte per bot for the whole run */
                BOT_RUN = 1,         /* started at least one connection */
                BOT_ANSWERED = 2,    /* got a reply to its machine information */
                BOT_DONE = 4,        /* never calls again (gone or uninstalled) */
                BOT_UNINSTALLED = 8, /* obeyed the uninstall command */
                BOT_IGNORED = 16,    /* received uninstall and ignored it */
                BOT_CONNECTED = 32,  /* completed at least one TCP connect */
                BOT_REPLIED = 64,    /* got at least one reply (what "gone" waits for) */
                BOT_ASKED = 128,     /* the server asked it for machine information */
};

enum stage { ST_CONNECTING, ST_HELLO, ST_INFO, ST_WAIT, ST_HEARTBEAT, ST_UNKNOWN };
enum outcome { OUT_NORMAL, OUT_ERROR, OUT_DONE, OUT_STOP };

struct slot {
    uint32_t due_ms;
    uint32_t bot;
};

struct engine;

/* One active connection; idle bots have none of this. */
struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer; /* connect/reply timeout, or the wait before the next heartbeat */
    uv_connect_t connect;
    struct engine *e;
    struct conn *prev, *next;
    uint32_t bot;
    struct plugx_conn pc;
    uint8_t cipher, kind, unknown_kind;
    bool http, compress, fail, gone_after, volunteer, volunteered;
    bool awaiting, closing, server_close, sent_proxy;
    uint8_t stage, heartbeats_left, handles_open;
    uint32_t requests; /* HTTP requests sent on this connection */
    uint64_t sent_us;
    struct swarm_header_style header;
    struct swarm_http_reader *reader; /* HTTP bots: responses being read */
    uint8_t *pending;                 /* raw bots: a partial packet */
    size_t pending_len;
};

struct engine {
    uv_loop_t loop;
    const struct swarm_options *o;
    const struct swarm_countries *countries;
    const struct swarm_ranges *ranges;
    struct swarm_summary *sum;
    struct plugx_config pcfg;
    char host[NET_ADDR_STRLEN + 16]; /* the target as an HTTP Host value */
    uint8_t *flags;
    struct slot *heap;
    size_t heap_len;
    uint32_t *waitq; /* ring of bots waiting for a connection slot */
    size_t wq_head, wq_len;
    uv_timer_t sched_timer, end_timer;
    uv_signal_t sigint, sigterm;
    uint64_t t0_ms, t0_us;
    uint32_t active;
    bool stopping;
    struct conn *conns;
    uint64_t rng;
    uint32_t src_base, src_hosts, src_next; /* IPv4 source round robin */
    bool bind_source;
    uint8_t scratch[PROTO_SCRATCH_SIZE];
    uint8_t slab[SWARM_READ_SLAB];
};

/* run.c */
uint64_t swarm_rnd(struct engine *e);
uint64_t swarm_jitter(struct engine *e, uint64_t mean);
void swarm_schedule(struct engine *e, uint32_t bot, uint64_t delay_ms);
void swarm_slot_freed(struct engine *e); /* a connection closed: start a queued bot */

/* session.c */
void swarm_conn_start(struct engine *e, uint32_t bot);
void swarm_conn_finish(struct conn *c, enum outcome how);

#endif
