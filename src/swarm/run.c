/* run.c -- the swarm's event loop: a timer heap schedules bot sessions, each session is one TCP
 * connection (PROXY v2, hello, machine information, heartbeats) held only while it is active. */
#include "net/proxy.h"
#include "swarm/swarm.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <uv.h>

#define READ_SLAB 65536
#define PENDING_MAX (2 * 65536 + 8192) /* two full packets plus an HTTP header */
#define HTTP_HEADER_MAX 8192
#define PACKET_MAX 4096 /* hello, poll and machine information all fit */

enum bot_flag {
    BOT_RUN = 1,         /* started at least one connection */
    BOT_ANSWERED = 2,    /* got a reply to its machine information */
    BOT_DONE = 4,        /* never calls again (gone or uninstalled) */
    BOT_UNINSTALLED = 8, /* obeyed the uninstall command */
    BOT_IGNORED = 16,    /* received uninstall and ignored it */
    BOT_CONNECTED = 32,  /* completed at least one TCP connect */
};

enum stage { ST_CONNECTING, ST_HELLO, ST_INFO, ST_WAIT, ST_HEARTBEAT };
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
    uint8_t cipher;
    bool http, compress, fail, gone_after;
    bool awaiting, closing, server_close, sent_proxy;
    uint8_t stage, heartbeats_left, handles_open;
    uint64_t sent_us;
    uint8_t *pending;
    size_t pending_len;
};

struct write_req {
    uv_write_t req;
    uint8_t data[];
};

struct engine {
    uv_loop_t loop;
    const struct swarm_options *o;
    const struct swarm_countries *countries;
    const struct swarm_ranges *ranges;
    struct swarm_summary *sum;
    struct plugx_config pcfg;
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
    uint8_t slab[READ_SLAB];
};

static void conn_start(struct engine *e, uint32_t bot);
static void conn_finish(struct conn *c, enum outcome how);

/* xorshift64* (Vigna 2016): per-run randomness for keys, ports, pauses. */
static uint64_t rnd(struct engine *e)
{
    e->rng ^= e->rng >> 12;
    e->rng ^= e->rng << 25;
    e->rng ^= e->rng >> 27;
    return e->rng * 0x2545F4914F6CDD1Dull;
}

/* mean +-50% */
static uint64_t jitter(struct engine *e, uint64_t mean)
{
    if (mean == 0) {
        return 0;
    }
    return mean / 2 + rnd(e) % (mean + 1);
}

static uint32_t now_ms(struct engine *e)
{
    return (uint32_t)(uv_now(&e->loop) - e->t0_ms);
}

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

/* ---- scheduler: a binary min-heap of (due, bot), one entry per sleeping bot ---- */

static void heap_push(struct engine *e, uint32_t due, uint32_t bot)
{
    size_t i = e->heap_len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (e->heap[parent].due_ms <= due) {
            break;
        }
        e->heap[i] = e->heap[parent];
        i = parent;
    }
    e->heap[i] = (struct slot){due, bot};
}

static struct slot heap_pop(struct engine *e)
{
    struct slot top = e->heap[0];
    struct slot last = e->heap[--e->heap_len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= e->heap_len) {
            break;
        }
        size_t m = (l + 1 < e->heap_len && e->heap[l + 1].due_ms < e->heap[l].due_ms) ? l + 1 : l;
        if (e->heap[m].due_ms >= last.due_ms) {
            break;
        }
        e->heap[i] = e->heap[m];
        i = m;
    }
    if (e->heap_len > 0) {
        e->heap[i] = last;
    }
    return top;
}

static void sched_cb(uv_timer_t *t);

static void sched_arm(struct engine *e)
{
    if (e->stopping || e->heap_len == 0) {
        return;
    }
    uint32_t now = now_ms(e);
    uint32_t due = e->heap[0].due_ms;
    uv_timer_start(&e->sched_timer, sched_cb, due > now ? due - now : 0, 0);
}

static void schedule(struct engine *e, uint32_t bot, uint64_t delay_ms)
{
    uint64_t due = (uint64_t)now_ms(e) + delay_ms;
    if (e->stopping || due >= (uint64_t)e->o->duration_s * 1000) {
        return; /* would fall after the end of the run */
    }
    heap_push(e, (uint32_t)due, bot);
    sched_arm(e);
}

/* Starts a connection for bot, or queues it until a slot is free (--concurrency). */
static void dispatch(struct engine *e, uint32_t bot)
{
    if (e->active < e->o->concurrency) {
        conn_start(e, bot);
    } else {
        e->waitq[(e->wq_head + e->wq_len) % e->o->bots] = bot;
        e->wq_len++;
    }
}

static void pump_queue(struct engine *e)
{
    while (!e->stopping && e->wq_len > 0 && e->active < e->o->concurrency) {
        uint32_t bot = e->waitq[e->wq_head];
        e->wq_head = (e->wq_head + 1) % e->o->bots;
        e->wq_len--;
        conn_start(e, bot);
    }
}

static void sched_cb(uv_timer_t *t)
{
    struct engine *e = t->data;
    uint32_t now = now_ms(e);
    /* bounded: each bot has at most one entry */
    while (!e->stopping && e->heap_len > 0 && e->heap[0].due_ms <= now) {
        struct slot s = heap_pop(e);
        dispatch(e, s.bot);
    }
    sched_arm(e);
}

/* ---- connections ---- */

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = req->data;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->closing) {
        c->e->sum->err_reset++;
        conn_finish(c, OUT_ERROR);
    }
}

static void on_timer(uv_timer_t *t);

/* Encodes one PlugX packet (with the PROXY v2 header first on a new connection and the HTTP
 * request head for HTTP bots) and sends it; the reply timeout starts now. */
static int send_packet(struct conn *c, uint16_t command, const uint8_t *body, size_t body_len,
                       bool compress)
{
    struct engine *e = c->e;
    uint8_t packet[PACKET_MAX];
    ptrdiff_t plen = plugx_encode(&e->pcfg, (enum plugx_cipher)c->cipher, (uint32_t)rnd(e), command,
                                  0, body, body_len, compress, packet, sizeof(packet));
    if (plen < 0) {
        e->sum->err_protocol++; /* cannot happen with the bodies we build */
        conn_finish(c, OUT_ERROR);
        return -1;
    }
    size_t cap = 64 + 512 + (size_t)plen; /* PROXY v2 (<= 52) + HTTP head + packet */
    struct write_req *w = malloc(sizeof(*w) + cap);
    if (w == NULL) {
        conn_finish(c, OUT_ERROR);
        return -1;
    }
    size_t n = 0;
    if (!c->sent_proxy) {
        struct swarm_bot b;
        swarm_bot_make(e->o, e->countries, e->ranges, c->bot, &b);
        struct net_addr src = {.family = AF_INET, .port = (uint16_t)(1024 + rnd(e) % 64512)};
        src.ip[0] = (uint8_t)(b.public_ip >> 24);
        src.ip[1] = (uint8_t)(b.public_ip >> 16);
        src.ip[2] = (uint8_t)(b.public_ip >> 8);
        src.ip[3] = (uint8_t)b.public_ip;
        struct net_addr dst = e->o->target;
        if (dst.family != AF_INET) { /* v2 needs one family: name IPv4 loopback as the dest */
            memset(&dst, 0, sizeof(dst));
            dst.family = AF_INET;
            dst.ip[0] = 127;
            dst.ip[3] = 1;
            dst.port = e->o->target.port;
        }
        ptrdiff_t r = proxy_encode_v2(&src, &dst, w->data, cap);
        if (r < 0) {
            free(w);
            conn_finish(c, OUT_ERROR);
            return -1;
        }
        n += (size_t)r;
        c->sent_proxy = true;
    }
    if (c->http) {
        char host[NET_ADDR_STRLEN];
        net_addr_format_ip(&e->o->target, host);
        int r =
            snprintf((char *)w->data + n, cap - n,
                     "POST / HTTP/1.1\r\nHost: %s%s%s:%u\r\n"
                     "User-Agent: Mozilla/4.0 (compatible; MSIE 8.0; Windows NT 6.1)\r\n"
                     "Content-Type: application/octet-stream\r\nContent-Length: %td\r\n"
                     "Connection: Keep-Alive\r\n\r\n",
                     e->o->target.family == AF_INET6 ? "[" : "", host,
                     e->o->target.family == AF_INET6 ? "]" : "", (unsigned)e->o->target.port, plen);
        if (r < 0 || (size_t)r >= cap - n) {
            free(w);
            conn_finish(c, OUT_ERROR);
            return -1;
        }
        n += (size_t)r;
    }
    memcpy(w->data + n, packet, (size_t)plen);
    n += (size_t)plen;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)n);
    w->req.data = c;
    int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc < 0) {
        free(w);
        e->sum->err_reset++;
        conn_finish(c, OUT_ERROR);
        return -1;
    }
    e->sum->contacts_sent++;
    c->awaiting = true;
    c->sent_us = now_us();
    uv_timer_start(&c->timer, on_timer, SWARM_REPLY_TIMEOUT_MS, 0);
    return 0;
}

static void send_machine_info(struct conn *c)
{
    struct engine *e = c->e;
    struct swarm_bot b;
    uint8_t body[2048];
    swarm_bot_make(e->o, e->countries, e->ranges, c->bot, &b);
    /* FILETIME: 100 ns ticks since 1601-01-01 */
    struct timespec ts;
    if (clock_gettime(CLOCK_REALTIME, &ts) == 0) {
        b.info.system_time =
            ((uint64_t)ts.tv_sec + 11644473600ull) * 10000000ull + (uint64_t)ts.tv_nsec / 100;
    }
    ptrdiff_t n = plugx_machine_info_encode(&b.info, body, sizeof(body));
    if (n < 0) {
        e->sum->err_protocol++;
        conn_finish(c, OUT_ERROR);
        return;
    }
    c->stage = ST_INFO;
    send_packet(c, PLUGX_CMD_MACHINE_INFO, body, (size_t)n, c->compress);
}

static void send_poll(struct conn *c, uint8_t stage)
{
    c->stage = stage;
    send_packet(c, PLUGX_CMD_POLL, NULL, 0, false);
}

static void wait_heartbeat(struct conn *c)
{
    c->stage = ST_WAIT;
    uv_timer_start(&c->timer, on_timer, jitter(c->e, c->e->o->heartbeat_ms), 0);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closing) {
        return;
    }
    if (c->stage == ST_WAIT) {
        send_poll(c, ST_HEARTBEAT);
        return;
    }
    /* connect or reply timeout */
    if (c->stage == ST_CONNECTING) {
        c->e->sum->err_connect++;
    } else {
        c->e->sum->err_timeout++;
    }
    conn_finish(c, OUT_ERROR);
}

/* The answer to the packet we are waiting for. */
/* Counts the reply to the packet in flight (latency, answered machine information). */
static void note_reply(struct conn *c)
{
    struct engine *e = c->e;
    c->awaiting = false;
    uv_timer_stop(&c->timer);
    e->sum->replies_received++;
    uint64_t latency = now_us() - c->sent_us;
    hist_add(&e->sum->latency_us, latency);
    if (c->stage == ST_HEARTBEAT) {
        hist_add(&e->sum->heartbeat_latency_us, latency);
    }
    if (c->stage == ST_INFO && !(e->flags[c->bot] & BOT_ANSWERED)) {
        e->flags[c->bot] |= BOT_ANSWERED;
        e->sum->bots_answered++;
    }
}

static void on_reply(struct conn *c, uint16_t command)
{
    note_reply(c);
    if (c->server_close) {
        conn_finish(c, OUT_NORMAL);
        return;
    }
    if (command == PLUGX_CMD_MACHINE_INFO && c->stage != ST_INFO) {
        /* PLUGX.md "Conversation": the server asks, the bot answers (once per request) */
        send_machine_info(c);
        return;
    }
    if (c->stage == ST_HEARTBEAT && --c->heartbeats_left == 0) {
        conn_finish(c, OUT_NORMAL);
        return;
    }
    wait_heartbeat(c);
}

static void on_packet(struct conn *c, uint16_t command)
{
    struct engine *e = c->e;
    if (command == e->pcfg.uninstall_command) {
        if (!c->fail) {
            e->flags[c->bot] |= BOT_UNINSTALLED;
            e->sum->uninstalled++;
            if (c->awaiting) {
                note_reply(c); /* it is also the answer to what we sent */
            }
            conn_finish(c, OUT_DONE);
            return;
        }
        if (!(e->flags[c->bot] & BOT_IGNORED)) {
            e->flags[c->bot] |= BOT_IGNORED;
            e->sum->uninstall_ignored++;
        }
    }
    if (c->awaiting) {
        on_reply(c, command);
    }
}

static int protocol_error(struct conn *c)
{
    c->e->sum->err_protocol++;
    conn_finish(c, OUT_ERROR);
    return -1;
}

/* Decodes every complete packet in buf; returns bytes consumed or -1 (connection finished). */
static ptrdiff_t decode_packets(struct conn *c, const uint8_t *buf, size_t len)
{
    struct engine *e = c->e;
    size_t off = 0;
    while (off < len && !c->closing) {
        struct plugx_packet pkt;
        char err[128];
        ptrdiff_t r = plugx_decode(&e->pcfg, &c->pc, buf + off, len - off, &pkt, e->scratch,
                                   sizeof(e->scratch), err, sizeof(err));
        if (r == PROTO_NEED_MORE) {
            break;
        }
        if (r < 0) {
            return protocol_error(c);
        }
        off += (size_t)r;
        on_packet(c, pkt.command);
    }
    return c->closing ? -1 : (ptrdiff_t)off;
}

static const char *find_crlf2(const char *s, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++) {
        if (s[i] == '\r' && s[i + 1] == '\n' && s[i + 2] == '\r' && s[i + 3] == '\n') {
            return s + i;
        }
    }
    return NULL;
}

/* Header value of `name` in head[0, n) (lines after the status line), or NULL. */
static const char *http_header(const char *head, size_t n, const char *name, size_t *vlen)
{
    size_t nl = strlen(name);
    const char *p = memchr(head, '\n', n);
    while (p != NULL && (size_t)(p + 1 - head) < n) {
        const char *line = p + 1;
        size_t rest = n - (size_t)(line - head);
        const char *eol = memchr(line, '\n', rest);
        size_t llen = eol ? (size_t)(eol - line) : rest;
        if (llen > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            const char *end = line + llen;
            while (v < end && (*v == ' ' || *v == '\t')) {
                v++;
            }
            while (end > v && (end[-1] == '\r' || end[-1] == ' ')) {
                end--;
            }
            *vlen = (size_t)(end - v);
            return v;
        }
        p = eol;
    }
    return NULL;
}

/* HTTP/1.1 responses: status 200 and Content-Length required; the body holds whole packets. */
static ptrdiff_t decode_http(struct conn *c, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len && !c->closing) {
        const char *s = (const char *)buf + off;
        size_t n = len - off;
        const char *end = find_crlf2(s, n < HTTP_HEADER_MAX ? n : HTTP_HEADER_MAX);
        if (end == NULL) {
            if (n >= HTTP_HEADER_MAX) {
                return protocol_error(c);
            }
            break;
        }
        size_t head = (size_t)(end - s);
        if (head < 12 || memcmp(s, "HTTP/1.", 7) != 0 || memcmp(s + 8, " 200", 4) != 0) {
            return protocol_error(c);
        }
        size_t vlen = 0;
        const char *v = http_header(s, head, "Content-Length", &vlen);
        if (v == NULL || vlen == 0 || vlen > 6) {
            return protocol_error(c);
        }
        size_t body = 0;
        for (size_t i = 0; i < vlen; i++) {
            if (v[i] < '0' || v[i] > '9') {
                return protocol_error(c);
            }
            body = body * 10 + (size_t)(v[i] - '0');
        }
        if (body > PENDING_MAX - HTTP_HEADER_MAX) {
            return protocol_error(c);
        }
        if (n < head + 4 + body) {
            break;
        }
        const char *conn_hdr = http_header(s, head, "Connection", &vlen);
        c->server_close = conn_hdr != NULL && vlen == 5 && strncasecmp(conn_hdr, "close", 5) == 0;
        const uint8_t *b = (const uint8_t *)s + head + 4;
        ptrdiff_t used = decode_packets(c, b, body);
        if (used < 0) {
            return -1;
        }
        if ((size_t)used != body) {
            return protocol_error(c); /* a partial packet in a complete body */
        }
        off += head + 4 + body;
        if (c->awaiting) { /* an empty body (or one ignored uninstall) still answers */
            on_reply(c, PLUGX_CMD_POLL);
            if (c->closing) {
                return -1;
            }
        }
    }
    return (ptrdiff_t)off;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    /* one slab per loop: libuv fills it and calls on_read before the next alloc */
    *buf = uv_buf_init((char *)c->e->slab, READ_SLAB);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (c->closing || nread == 0) {
        return;
    }
    if (nread < 0) {
        c->e->sum->err_reset++; /* EOF or reset: the server went away mid-session */
        conn_finish(c, OUT_ERROR);
        return;
    }
    const uint8_t *data = c->e->slab;
    size_t len = (size_t)nread;
    if (c->pending_len > 0) {
        if (c->pending_len + len > PENDING_MAX) {
            protocol_error(c);
            return;
        }
        uint8_t *p = realloc(c->pending, c->pending_len + len);
        if (p == NULL) {
            conn_finish(c, OUT_ERROR);
            return;
        }
        memcpy(p + c->pending_len, data, len);
        c->pending = p;
        c->pending_len += len;
        data = c->pending;
        len = c->pending_len;
    }
    ptrdiff_t used = c->http ? decode_http(c, data, len) : decode_packets(c, data, len);
    if (used < 0) {
        return; /* finished; conn_finish released pending */
    }
    size_t rest = len - (size_t)used;
    if (rest == 0) {
        free(c->pending); /* nothing held while idle */
        c->pending = NULL;
        c->pending_len = 0;
    } else if (data == c->pending) {
        memmove(c->pending, c->pending + used, rest);
        c->pending_len = rest;
    } else {
        c->pending = malloc(rest);
        if (c->pending == NULL) {
            conn_finish(c, OUT_ERROR);
            return;
        }
        memcpy(c->pending, data + used, rest);
        c->pending_len = rest;
    }
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct engine *e = c->e;
    if (c->closing || status == UV_ECANCELED) {
        return;
    }
    uv_timer_stop(&c->timer);
    if (status < 0) {
        e->sum->err_connect++;
        conn_finish(c, OUT_ERROR);
        return;
    }
    if (!(e->flags[c->bot] & BOT_CONNECTED)) {
        e->flags[c->bot] |= BOT_CONNECTED;
        e->sum->connected_bots++;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        e->sum->err_reset++;
        conn_finish(c, OUT_ERROR);
        return;
    }
    send_poll(c, ST_HELLO);
}

static void on_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles_open > 0) {
        return;
    }
    struct engine *e = c->e;
    free(c->pending);
    free(c);
    e->active--;
    pump_queue(e);
}

static void conn_finish(struct conn *c, enum outcome how)
{
    struct engine *e = c->e;
    if (c->closing) {
        return;
    }
    c->closing = true;
    uv_timer_stop(&c->timer);
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_close);
    uv_close((uv_handle_t *)&c->timer, on_close);
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        e->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    uint8_t *flags = &e->flags[c->bot];
    switch (how) {
    case OUT_DONE:
        *flags |= BOT_DONE;
        break;
    case OUT_NORMAL:
    case OUT_ERROR:
        if ((*flags & BOT_ANSWERED) && c->gone_after) {
            *flags |= BOT_DONE; /* "gone": never comes back after a session that worked */
            break;
        }
        schedule(e, c->bot, jitter(e, (how == OUT_ERROR ? 2ull : 1ull) * e->o->heartbeat_ms));
        break;
    case OUT_STOP:
        break;
    }
}

static void conn_start(struct engine *e, uint32_t bot)
{
    struct swarm_bot b;
    if (e->flags[bot] & BOT_DONE) {
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        e->sum->err_connect++;
        schedule(e, bot, jitter(e, 2ull * e->o->heartbeat_ms));
        return;
    }
    swarm_bot_make(e->o, e->countries, e->ranges, bot, &b);
    c->e = e;
    c->bot = bot;
    c->cipher = b.cipher;
    c->http = b.http;
    c->compress = b.compress;
    c->fail = b.uninstall_fail;
    c->gone_after = b.gone;
    c->pc.cipher = -1;
    c->heartbeats_left = (uint8_t)(2 + rnd(e) % 5); /* 2..6 */
    c->stage = ST_CONNECTING;
    if (!(e->flags[bot] & BOT_RUN)) {
        e->flags[bot] |= BOT_RUN;
        e->sum->bots_run++;
        for (size_t i = 0; i < e->sum->countries; i++) {
            if (memcmp(e->sum->per_country[i].cc, b.cc, 2) == 0) {
                e->sum->per_country[i].bots++;
                break;
            }
        }
    }
    if (uv_tcp_init(&e->loop, &c->tcp) < 0) {
        free(c);
        e->sum->err_connect++;
        schedule(e, bot, jitter(e, 2ull * e->o->heartbeat_ms));
        return;
    }
    uv_timer_init(&e->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->connect.data = c;
    c->handles_open = 2;
    e->active++;
    c->next = e->conns;
    if (e->conns) {
        e->conns->prev = c;
    }
    e->conns = c;

    struct sockaddr_storage ss;
    socklen_t sl;
    if (e->bind_source) {
        struct sockaddr_in sin = {.sin_family = AF_INET};
        uint32_t ip = e->src_base + e->src_next;
        e->src_next = (e->src_next + 1) % e->src_hosts;
        sin.sin_addr.s_addr = htonl(ip);
        if (uv_tcp_bind(&c->tcp, (const struct sockaddr *)&sin, 0) < 0) {
            e->sum->err_connect++;
            conn_finish(c, OUT_ERROR);
            return;
        }
    }
    net_addr_to_sockaddr(&e->o->target, &ss, &sl);
    if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&ss, on_connect) < 0) {
        e->sum->err_connect++;
        conn_finish(c, OUT_ERROR);
        return;
    }
    uv_timer_start(&c->timer, on_timer, SWARM_REPLY_TIMEOUT_MS, 0);
}

static void close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

static void stop_all(struct engine *e)
{
    if (e->stopping) {
        return;
    }
    e->stopping = true;
    e->wq_len = 0;
    uv_timer_stop(&e->sched_timer);
    uv_close((uv_handle_t *)&e->sched_timer, NULL);
    uv_close((uv_handle_t *)&e->end_timer, NULL);
    uv_close((uv_handle_t *)&e->sigint, NULL);
    uv_close((uv_handle_t *)&e->sigterm, NULL);
    while (e->conns != NULL) {
        conn_finish(e->conns, OUT_STOP); /* unlinks itself */
    }
}

static void end_cb(uv_timer_t *t)
{
    stop_all(t->data);
}

static void signal_cb(uv_signal_t *s, int signum)
{
    (void)signum;
    stop_all(s->data);
}

void swarm_options_default(struct swarm_options *o)
{
    memset(o, 0, sizeof(*o));
    o->bots = 100;
    o->duration_s = 60;
    o->concurrency = 0;
    net_cidr_parse("127.0.1.0/24", &o->source_net, NULL, 0);
    o->seed = 1;
    o->heartbeat_ms = 2000;
    o->gone_share = 0.1;
    o->cipher = PLUGX_CIPHER_A;
}

void swarm_summary_free(struct swarm_summary *s)
{
    free(s->per_country);
    s->per_country = NULL;
    s->countries = 0;
}

static int setup_sources(struct engine *e, char *err, size_t errlen)
{
    const struct net_cidr *sn = &e->o->source_net;
    if (sn->family != AF_INET || e->o->target.family != AF_INET) {
        e->bind_source = false; /* IPv6 target: let the kernel pick ::1 */
        return 0;
    }
    if (sn->ip[0] != 127) {
        return err_set(err, errlen, "--source-net must be inside 127.0.0.0/8");
    }
    uint32_t base = ((uint32_t)sn->ip[0] << 24) | ((uint32_t)sn->ip[1] << 16) |
                    ((uint32_t)sn->ip[2] << 8) | sn->ip[3];
    uint64_t hosts = 1ull << (32 - sn->prefix);
    if (sn->prefix <= 30) { /* skip the network and broadcast addresses */
        base += 1;
        hosts -= 2;
    }
    if (hosts > (1u << 20)) {
        hosts = 1u << 20;
    }
    e->src_base = base;
    e->src_hosts = (uint32_t)hosts;
    e->bind_source = true;
    return 0;
}

int swarm_run(const struct swarm_options *o, const struct swarm_countries *countries,
              const struct swarm_ranges *ranges, struct swarm_summary *out, char *err,
              size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (o->bots == 0 || o->bots > SWARM_MAX_BOTS || o->concurrency == 0 ||
        o->concurrency > SWARM_MAX_CONCURRENCY || o->duration_s == 0) {
        err_set(err, errlen, "swarm: bots, concurrency and duration must be within limits");
        return SWARM_E_CONFIG;
    }
    for (size_t i = 0; i < countries->count; i++) {
        if (swarm_ranges_size(ranges, countries->items[i].cc) == 0) {
            err_set(err, errlen, "country '%s' has no address ranges", countries->items[i].cc);
            return SWARM_E_CONFIG;
        }
    }
    struct engine *e = calloc(1, sizeof(*e));
    int rc = SWARM_E_NOMEM;
    if (e == NULL) {
        return err_set(err, errlen, "swarm: out of memory"), SWARM_E_NOMEM;
    }
    e->o = o;
    e->countries = countries;
    e->ranges = ranges;
    e->sum = out;
    e->rng = o->seed * 0x9E3779B97F4A7C15ull + 0x1234567ull;
    if (e->rng == 0) {
        e->rng = 1;
    }
    plugx_config_default(&e->pcfg);
    e->flags = calloc(o->bots, 1);
    e->heap = calloc(o->bots, sizeof(*e->heap));
    e->waitq = calloc(o->bots, sizeof(*e->waitq));
    out->per_country = calloc(countries->count, sizeof(*out->per_country));
    if (e->flags == NULL || e->heap == NULL || e->waitq == NULL || out->per_country == NULL) {
        err_set(err, errlen, "swarm: out of memory for %u bots", o->bots);
        goto done;
    }
    out->countries = countries->count;
    for (size_t i = 0; i < countries->count; i++) {
        memcpy(out->per_country[i].cc, countries->items[i].cc, 3);
    }
    out->bots = o->bots;
    rc = setup_sources(e, err, errlen);
    if (rc != 0) {
        rc = SWARM_E_CONFIG;
        goto done;
    }
    int uvrc = uv_loop_init(&e->loop);
    if (uvrc < 0) {
        err_set(err, errlen, "swarm: uv_loop_init: %s", uv_strerror(uvrc));
        rc = SWARM_E_RUNTIME;
        goto done;
    }
    e->t0_ms = uv_now(&e->loop);
    e->t0_us = now_us();
    uv_timer_init(&e->loop, &e->sched_timer);
    uv_timer_init(&e->loop, &e->end_timer);
    uv_signal_init(&e->loop, &e->sigint);
    uv_signal_init(&e->loop, &e->sigterm);
    e->sched_timer.data = e->end_timer.data = e->sigint.data = e->sigterm.data = e;
    uv_signal_start(&e->sigint, signal_cb, SIGINT);
    uv_signal_start(&e->sigterm, signal_cb, SIGTERM);
    uv_timer_start(&e->end_timer, end_cb, (uint64_t)o->duration_s * 1000, 0);
    for (uint32_t i = 0; i < o->bots; i++) {
        struct swarm_bot b;
        swarm_bot_make(o, countries, ranges, i, &b);
        heap_push(e, b.start_ms, i);
    }
    sched_arm(e);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_walk(&e->loop, close_walk, NULL); /* nothing should be left; be safe */
    uv_run(&e->loop, UV_RUN_DEFAULT);
    uv_loop_close(&e->loop);
    out->duration_s = (double)(now_us() - e->t0_us) / 1e6;
    rc = 0;
done:
    if (rc != 0) {
        swarm_summary_free(out);
    }
    free(e->flags);
    free(e->heap);
    free(e->waitq);
    free(e);
    return rc;
}
