/* session.c -- one bot session: a TCP connection (PROXY v2 first), the bot's requests in its
 * wire form (raw, HTTP body, HTTP header, unknown variant) and what it does with the replies. */
#include "net/proxy.h"
#include "swarm/engine.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PENDING_MAX (2 * 65536 + 8192) /* raw bots: two full packets */
#define PACKET_MAX 4096                /* hello, poll and machine information all fit */
#define REQUEST_HEAD_MAX 1024          /* PROXY v2 (<= 52) and any request head */
#define CHECKIN_SIZE_VALUE 61456u      /* the third value of every header-form check-in */

static uint64_t now_us(void)
{
    return uv_hrtime() / 1000;
}

static void on_write(uv_write_t *req, int status);
static void on_timer(uv_timer_t *t);

struct write_req {
    uv_write_t req;
    uint8_t data[];
};

/* The PROXY v2 header a new connection starts with: the bot's public address as source. */
static ptrdiff_t put_proxy(struct conn *c, uint8_t *out, size_t cap)
{
    struct engine *e = c->e;
    struct swarm_bot b;
    swarm_bot_make(e->o, e->countries, e->ranges, c->bot, &b);
    struct net_addr src = {.family = AF_INET, .port = (uint16_t)(1024 + swarm_rnd(e) % 64512)};
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
    return proxy_encode_v2(&src, &dst, out, cap);
}

/* Frames payload in the bot's wire form (after the PROXY header on a new connection), writes
 * it and starts the reply timeout. payload is a PlugX packet, nothing (a header-form poll) or an
 * unknown variant's bytes. Returns 0, or -1 with the connection finished. */
static int send_wire(struct conn *c, const uint8_t *payload, size_t plen)
{
    struct engine *e = c->e;
    size_t cap = REQUEST_HEAD_MAX + plen;
    struct write_req *w = malloc(sizeof(*w) + cap);
    if (w == NULL) {
        swarm_conn_finish(c, OUT_ERROR);
        return -1;
    }
    size_t n = 0;
    ptrdiff_t r = 0;
    if (!c->sent_proxy) {
        r = put_proxy(c, w->data, cap);
        n = r > 0 ? (size_t)r : 0;
        c->sent_proxy = r > 0;
    }
    if (r >= 0 && c->kind == SWARM_KIND_HTTP_HEADER) {
        uint32_t uri[3] = {(uint32_t)swarm_rnd(e), (uint32_t)swarm_rnd(e), (uint32_t)swarm_rnd(e)};
        c->requests++;
        uint32_t values[4] = {0, 0, CHECKIN_SIZE_VALUE,
                              e->o->header_values == SWARM_VALUES_FIRST ? 1 : c->requests};
        r = swarm_http_header_request(&c->header, e->host, uri, values, payload, plen, w->data + n,
                                      cap - n);
    } else if (r >= 0 && c->http) {
        c->requests++;
        r = swarm_http_body_request(e->host, payload, plen, w->data + n, cap - n);
    } else if (r >= 0) {
        memcpy(w->data + n, payload, plen);
        r = (ptrdiff_t)plen;
    }
    if (r < 0) {
        free(w);
        e->sum->err_protocol++; /* cannot happen with the sizes above */
        swarm_conn_finish(c, OUT_ERROR);
        return -1;
    }
    n += (size_t)r;
    uv_buf_t buf = uv_buf_init((char *)w->data, (unsigned)n);
    w->req.data = c;
    if (uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_write) < 0) {
        free(w);
        if (c->kind == SWARM_KIND_UNKNOWN) {
            e->sum->unknown_closed++;
            swarm_conn_finish(c, OUT_NORMAL);
        } else {
            e->sum->err_reset++;
            swarm_conn_finish(c, OUT_ERROR);
        }
        return -1;
    }
    if (c->kind == SWARM_KIND_UNKNOWN) {
        e->sum->unknown_sent++;
        uv_timer_start(&c->timer, on_timer, e->o->unknown_wait_ms, 0);
        return 0;
    }
    e->sum->contacts_sent++;
    e->sum->contacts_by_kind[c->kind]++;
    c->awaiting = true;
    c->sent_us = now_us();
    uv_timer_start(&c->timer, on_timer, SWARM_REPLY_TIMEOUT_MS, 0);
    return 0;
}

static int send_packet(struct conn *c, uint16_t command, const uint8_t *body, size_t body_len,
                       bool compress)
{
    struct engine *e = c->e;
    uint8_t packet[PACKET_MAX];
    ptrdiff_t plen = plugx_encode(&e->pcfg, (enum plugx_cipher)c->cipher, (uint32_t)swarm_rnd(e),
                                  command, 0, body, body_len, compress, packet, sizeof(packet));
    if (plen < 0) {
        e->sum->err_protocol++; /* cannot happen with the bodies we build */
        swarm_conn_finish(c, OUT_ERROR);
        return -1;
    }
    return send_wire(c, packet, (size_t)plen);
}

static void send_machine_info(struct conn *c, bool asked)
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
        swarm_conn_finish(c, OUT_ERROR);
        return;
    }
    c->stage = ST_INFO;
    e->sum->info_sent++;
    if (!asked) {
        e->sum->info_volunteered++;
        c->volunteered = true;
    }
    send_packet(c, PLUGX_CMD_MACHINE_INFO, body, (size_t)n, c->compress);
}

/* A poll: PlugX 0x1000, or for a header-form bot an empty-body check-in. */
static void send_poll(struct conn *c, uint8_t stage)
{
    c->stage = stage;
    if (c->kind == SWARM_KIND_HTTP_HEADER) {
        send_wire(c, NULL, 0);
    } else {
        send_packet(c, PLUGX_CMD_POLL, NULL, 0, false);
    }
}

static void send_unknown(struct conn *c)
{
    struct engine *e = c->e;
    uint8_t bytes[PACKET_MAX];
    ptrdiff_t n = swarm_unknown_bytes(&e->pcfg, c->unknown_kind, swarm_rnd(e), bytes, sizeof(bytes),
                                      e->scratch, sizeof(e->scratch));
    if (n < 0) {
        e->sum->err_protocol++;
        swarm_conn_finish(c, OUT_ERROR);
        return;
    }
    c->stage = ST_UNKNOWN;
    send_wire(c, bytes, (size_t)n);
}

static void wait_heartbeat(struct conn *c)
{
    c->stage = ST_WAIT;
    uv_timer_start(&c->timer, on_timer, swarm_jitter(c->e, c->e->o->heartbeat_ms), 0);
}

static void on_write(uv_write_t *req, int status)
{
    struct write_req *w = (struct write_req *)req;
    struct conn *c = req->data;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !c->closing) {
        if (c->kind == SWARM_KIND_UNKNOWN) {
            c->e->sum->unknown_closed++;
            swarm_conn_finish(c, OUT_NORMAL);
        } else {
            c->e->sum->err_reset++;
            swarm_conn_finish(c, OUT_ERROR);
        }
    }
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closing) {
        return;
    }
    switch (c->stage) {
    case ST_WAIT:
        send_poll(c, ST_HEARTBEAT);
        return;
    case ST_UNKNOWN: /* waited long enough; it comes back at its beacon */
        c->e->sum->unknown_silent++;
        swarm_conn_finish(c, OUT_NORMAL);
        return;
    case ST_CONNECTING:
        c->e->sum->err_connect++;
        break;
    default:
        c->e->sum->err_timeout++;
        break;
    }
    swarm_conn_finish(c, OUT_ERROR);
}

/* Counts the reply to the request in flight (latency, answered machine information). */
static void note_reply(struct conn *c)
{
    struct engine *e = c->e;
    c->awaiting = false;
    uv_timer_stop(&c->timer);
    e->sum->replies_received++;
    if (!(e->flags[c->bot] & BOT_REPLIED)) {
        e->sum->bots_replied++;
    }
    e->flags[c->bot] |= BOT_REPLIED;
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
    uint8_t stage = c->stage;
    note_reply(c);
    if (c->server_close) {
        swarm_conn_finish(c, OUT_NORMAL);
        return;
    }
    /* PLUGX.md "Conversation": the server asks, the bot answers (once per request); a
     * header-form bot without a way to send packets (--header-answer none) cannot. */
    bool can_send =
        !(c->kind == SWARM_KIND_HTTP_HEADER && c->e->o->header_answer == SWARM_ANSWER_NONE);
    if (command == PLUGX_CMD_MACHINE_INFO && stage != ST_INFO && can_send) {
        send_machine_info(c, true);
        return;
    }
    if (stage == ST_HELLO && c->volunteer && !c->volunteered && can_send) {
        send_machine_info(c, false);
        return;
    }
    if (stage == ST_HEARTBEAT && --c->heartbeats_left == 0) {
        swarm_conn_finish(c, OUT_NORMAL);
        return;
    }
    wait_heartbeat(c);
}

static void on_packet(struct conn *c, uint16_t command)
{
    struct engine *e = c->e;
    if (command == PLUGX_CMD_MACHINE_INFO) {
        e->sum->info_requests++;
        if (!(e->flags[c->bot] & BOT_ASKED)) {
            e->flags[c->bot] |= BOT_ASKED;
            e->sum->bots_asked++;
        }
    }
    if (e->o->uninstall_command >= 0 && command == (uint16_t)e->o->uninstall_command) {
        if (!c->fail) {
            e->flags[c->bot] |= BOT_UNINSTALLED;
            e->sum->uninstalled++;
            if (c->awaiting) {
                note_reply(c); /* it is also the answer to what we sent */
            }
            swarm_conn_finish(c, OUT_DONE);
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
    swarm_conn_finish(c, OUT_ERROR);
    return -1;
}

/* Decodes every complete packet in buf; returns bytes consumed or -1 (connection finished). */
static ptrdiff_t decode_packets(struct conn *c, const uint8_t *buf, size_t len)
{
    struct engine *e = c->e;
    size_t off = 0;
    while (off < len && !c->closing) {
        struct plugx_packet pkt;
        ptrdiff_t r = plugx_decode(&e->pcfg, &c->pc, buf + off, len - off, &pkt, e->scratch,
                                   sizeof(e->scratch), NULL, 0);
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

/* HTTP bots: each complete response's body holds whole packets (possibly none). */
static void read_http(struct conn *c, const uint8_t *data, size_t len)
{
    struct swarm_http_reader *r = c->reader;
    while (!c->closing) {
        char err[160];
        ptrdiff_t used = swarm_http_reader_feed(r, data, len, err, sizeof(err));
        if (used < 0) {
            protocol_error(c);
            return;
        }
        data += used;
        len -= (size_t)used;
        if (!r->complete) {
            return; /* everything consumed, the response continues in a later read */
        }
        c->server_close = !r->keep_alive;
        ptrdiff_t n = decode_packets(c, r->body, r->body_len);
        if (n < 0) {
            return;
        }
        if ((size_t)n != r->body_len) {
            protocol_error(c); /* a partial packet in a complete body */
            return;
        }
        if (c->awaiting) { /* an empty body (or one ignored uninstall) still answers */
            on_reply(c, PLUGX_CMD_POLL);
        } else if (c->server_close && !c->closing) {
            swarm_conn_finish(c, OUT_NORMAL);
        }
        if (len == 0) {
            return;
        }
    }
}

/* Raw bots: packets back to back; a partial one is kept until the rest arrives. */
static void read_raw(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->pending_len > 0) {
        if (c->pending_len + len > PENDING_MAX) {
            protocol_error(c);
            return;
        }
        uint8_t *p = realloc(c->pending, c->pending_len + len);
        if (p == NULL) {
            swarm_conn_finish(c, OUT_ERROR);
            return;
        }
        memcpy(p + c->pending_len, data, len);
        c->pending = p;
        c->pending_len += len;
        data = c->pending;
        len = c->pending_len;
    }
    ptrdiff_t used = decode_packets(c, data, len);
    if (used < 0) {
        return; /* finished; swarm_conn_finish released pending */
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
            swarm_conn_finish(c, OUT_ERROR);
            return;
        }
        memcpy(c->pending, data + used, rest);
        c->pending_len = rest;
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct conn *c = h->data;
    /* one slab per loop: libuv fills it and calls on_read before the next alloc */
    *buf = uv_buf_init((char *)c->e->slab, SWARM_READ_SLAB);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    (void)buf;
    if (c->closing || nread == 0) {
        return;
    }
    if (c->kind == SWARM_KIND_UNKNOWN) {
        /* whatever the server does is its answer; the bot leaves and comes back later */
        if (nread < 0) {
            c->e->sum->unknown_closed++;
        } else {
            c->e->sum->unknown_replied++;
        }
        swarm_conn_finish(c, OUT_NORMAL);
        return;
    }
    if (nread < 0) {
        c->e->sum->err_reset++; /* EOF or reset: the server went away mid-session */
        swarm_conn_finish(c, OUT_ERROR);
        return;
    }
    if (c->reader != NULL) {
        read_http(c, c->e->slab, (size_t)nread);
    } else {
        read_raw(c, c->e->slab, (size_t)nread);
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
        swarm_conn_finish(c, OUT_ERROR);
        return;
    }
    if (!(e->flags[c->bot] & BOT_CONNECTED)) {
        e->flags[c->bot] |= BOT_CONNECTED;
        e->sum->connected_bots++;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
        e->sum->err_reset++;
        swarm_conn_finish(c, OUT_ERROR);
        return;
    }
    if (c->kind == SWARM_KIND_UNKNOWN) {
        send_unknown(c);
    } else {
        send_poll(c, ST_HELLO);
    }
}

static void on_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles_open > 0) {
        return;
    }
    struct engine *e = c->e;
    if (c->reader != NULL) {
        swarm_http_reader_free(c->reader);
        free(c->reader);
    }
    free(c->pending);
    free(c);
    e->active--;
    swarm_slot_freed(e);
}

void swarm_conn_finish(struct conn *c, enum outcome how)
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
        if ((*flags & BOT_REPLIED) && c->gone_after) {
            *flags |= BOT_DONE; /* "gone": never comes back after a session that worked */
            break;
        }
        swarm_schedule(e, c->bot,
                       swarm_jitter(e, (how == OUT_ERROR ? 2ull : 1ull) * e->o->heartbeat_ms));
        break;
    case OUT_STOP:
        break;
    }
}

/* Counts a bot's first connection in bots_run, by kind and by country. */
static void count_run(struct engine *e, const struct swarm_bot *b)
{
    if (e->flags[b->index] & BOT_RUN) {
        return;
    }
    e->flags[b->index] |= BOT_RUN;
    e->sum->bots_run++;
    e->sum->bots_by_kind[b->kind]++;
    for (size_t i = 0; i < e->sum->countries; i++) {
        if (memcmp(e->sum->per_country[i].cc, b->cc, 2) == 0) {
            e->sum->per_country[i].bots++;
            break;
        }
    }
}

void swarm_conn_start(struct engine *e, uint32_t bot)
{
    struct swarm_bot b;
    if (e->flags[bot] & BOT_DONE) {
        return;
    }
    struct conn *c = calloc(1, sizeof(*c));
    swarm_bot_make(e->o, e->countries, e->ranges, bot, &b);
    bool http = b.http && b.kind != SWARM_KIND_RAW;
    if (c != NULL && http && b.kind != SWARM_KIND_UNKNOWN) { /* an unknown one reads nothing */
        c->reader = malloc(sizeof(*c->reader));
        if (c->reader == NULL) {
            free(c);
            c = NULL;
        } else {
            swarm_http_reader_init(c->reader);
        }
    }
    if (c == NULL) {
        e->sum->err_connect++;
        swarm_schedule(e, bot, swarm_jitter(e, 2ull * e->o->heartbeat_ms));
        return;
    }
    c->e = e;
    c->bot = bot;
    c->cipher = b.cipher;
    c->kind = b.kind;
    c->unknown_kind = b.unknown_kind;
    c->http = http;
    c->header = b.header;
    c->compress = b.compress;
    c->fail = b.uninstall_fail;
    c->gone_after = b.gone;
    c->volunteer = b.volunteer;
    /* A bot reads replies with its own family only: a server that answers in another one
     * (say to a header-form check-in, which reveals no family) is a protocol error. */
    c->pc.cipher = (int8_t)b.cipher;
    c->heartbeats_left = (uint8_t)(2 + swarm_rnd(e) % 5); /* 2..6 */
    c->stage = ST_CONNECTING;
    count_run(e, &b);
    if (uv_tcp_init(&e->loop, &c->tcp) < 0) {
        if (c->reader != NULL) {
            swarm_http_reader_free(c->reader);
            free(c->reader);
        }
        free(c);
        e->sum->err_connect++;
        swarm_schedule(e, bot, swarm_jitter(e, 2ull * e->o->heartbeat_ms));
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
            swarm_conn_finish(c, OUT_ERROR);
            return;
        }
    }
    net_addr_to_sockaddr(&e->o->target, &ss, &sl);
    if (uv_tcp_connect(&c->connect, &c->tcp, (const struct sockaddr *)&ss, on_connect) < 0) {
        e->sum->err_connect++;
        swarm_conn_finish(c, OUT_ERROR);
        return;
    }
    uv_timer_start(&c->timer, on_timer, SWARM_REPLY_TIMEOUT_MS, 0);
}
