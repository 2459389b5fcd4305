/* attack.c -- hostile loopback peers for bench/attack.sh: slowloris, connection flood, garbage,
 * oversize lengths, decompression bombs and PROXY headers from untrusted peers, each bounded in
 * time and connection count, spread over a loopback source prefix. */
#include <getopt.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include "bench/benchnet.h"
#include "net/proxy.h"
#include "proto/plugx/plugx.h"

#define PAYLOAD_MAX (PLUGX_HEADER_SIZE + PLUGX_BODY_LIMIT + 256)
#define TICK_MS 50

enum mode { M_SLOWLORIS, M_FLOOD, M_GARBAGE, M_OVERSIZE, M_BOMB, M_PROXY, M_COUNT };
static const char *const mode_names[M_COUNT] = {"slowloris", "flood", "garbage",
                                                "oversize",  "bomb",  "proxy"};

enum slot_state { S_FREE, S_CONNECTING, S_SENDING, S_WAITING };

struct slot {
    int fd;
    uint8_t state;
    uint8_t payload;  /* index into the payload table */
    uint32_t sent;    /* bytes of the payload written */
    uint64_t next_us; /* slowloris: next drip; others: give up waiting at this time */
};

struct payload {
    uint8_t *data;
    uint32_t len;
};

struct attack {
    enum mode mode;
    struct sockaddr_in target;
    uint32_t src_first, src_count, src_next;
    uint32_t conns;       /* concurrent connections */
    uint64_t max_total;   /* connection attempts, at most */
    uint64_t deadline_us; /* stop here */
    uint32_t drip_ms;     /* slowloris: one byte this often */
    uint32_t hold_ms;     /* how long to wait for the server to react before closing ourselves */
    bool rst;             /* close with SO_LINGER 0 */
    struct payload payloads[4];
    size_t npayloads;
    int ep;
    struct slot *slots;
    /* what happened */
    uint64_t attempts, connected, refused, connect_errors, closed_by_server, closed_by_us;
    uint64_t replied, bytes_sent, bytes_received, open_now, open_peak;
};

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

/* ---- payloads ------------------------------------------------------------------------------ */

static struct payload payload_copy(const void *p, size_t len)
{
    struct payload out = {malloc(len), (uint32_t)len};
    if (out.data == NULL) {
        perror("malloc");
        exit(1);
    }
    memcpy(out.data, p, len);
    return out;
}

static size_t encode(const struct plugx_config *cfg, uint32_t key, uint16_t cmd,
                     const uint8_t *body, size_t len, uint8_t *out)
{
    ptrdiff_t n =
        plugx_encode(cfg, PLUGX_CIPHER_A, key, cmd, 0, body, len, false, out, PAYLOAD_MAX);
    if (n <= 0) {
        fprintf(stderr, "attack: plugx_encode failed (%td)\n", n);
        exit(1);
    }
    return (size_t)n;
}

/* Rewrites the encrypted header of pkt: header bytes 4..15 are XORed with keystream bytes 4..15
 * (docs/plugx.md, family A), so decrypt, patch flags and sizes, encrypt again. */
static void patch_header(const struct plugx_config *cfg, uint8_t *pkt, uint32_t key,
                         uint32_t clear_flags, int comp, int decomp)
{
    uint8_t ks[PLUGX_HEADER_SIZE];
    plugx_keystream(cfg, PLUGX_CIPHER_A, key, ks, sizeof(ks));
    uint8_t plain[PLUGX_HEADER_SIZE];
    for (int i = 4; i < PLUGX_HEADER_SIZE; i++) {
        plain[i] = pkt[i] ^ ks[i];
    }
    uint32_t flags = (uint32_t)plain[4] | (uint32_t)plain[5] << 8 | (uint32_t)plain[6] << 16 |
                     (uint32_t)plain[7] << 24;
    flags &= ~clear_flags;
    plain[4] = (uint8_t)flags;
    plain[5] = (uint8_t)(flags >> 8);
    plain[6] = (uint8_t)(flags >> 16);
    plain[7] = (uint8_t)(flags >> 24);
    if (comp >= 0) {
        plain[8] = (uint8_t)comp;
        plain[9] = (uint8_t)(comp >> 8);
    }
    if (decomp >= 0) {
        plain[10] = (uint8_t)decomp;
        plain[11] = (uint8_t)(decomp >> 8);
    }
    for (int i = 4; i < PLUGX_HEADER_SIZE; i++) {
        pkt[i] = plain[i] ^ ks[i];
    }
}

/* LZNT1 chunks that each expand 5 bytes into 4096: a literal, then one maximal back-reference
 * (the same bomb as tests/e2e/hostile.py). */
static size_t lznt1_bomb(uint8_t *out, size_t chunks)
{
    size_t n = 0;
    for (size_t i = 0; i < chunks; i++) {
        uint16_t chunk_header = 0xB000 | (4 - 1);
        uint16_t token = 4095 - 3; /* displacement 1, length 4095 */
        uint8_t c[] = {(uint8_t)chunk_header, (uint8_t)(chunk_header >> 8), 0x02, 'A',
                       (uint8_t)token,        (uint8_t)(token >> 8)};
        memcpy(out + n, c, sizeof(c));
        n += sizeof(c);
    }
    return n;
}

static void build_payloads(struct attack *a)
{
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    uint8_t *buf = malloc(PAYLOAD_MAX);
    uint8_t *body = calloc(1, PLUGX_BODY_LIMIT);
    if (buf == NULL || body == NULL) {
        perror("malloc");
        exit(1);
    }
    switch (a->mode) {
    case M_SLOWLORIS: /* a valid poll, one byte at a time */
        a->payloads[a->npayloads++] =
            payload_copy(buf, encode(&cfg, 0x5105105, 0x1000, NULL, 0, buf));
        break;
    case M_FLOOD:
        break;
    case M_GARBAGE: { /* no HTTP method, no plausible PlugX header under any family */
        for (size_t i = 0; i < 512; i++) {
            buf[i] = (uint8_t)(i * 37 + 11);
            if (buf[i] == 'P' || buf[i] == 'G' || buf[i] == 'H' || buf[i] == 'O' || buf[i] == 'D' ||
                buf[i] == 'C' || buf[i] == 'T') {
                buf[i] ^= 0x80;
            }
        }
        a->payloads[a->npayloads++] = payload_copy(buf, 512);
        break;
    }
    case M_OVERSIZE: {
        /* 1: an HTTP request announcing a 4 GiB body */
        static const char http[] = "POST /update HTTP/1.1\r\nHost: c2\r\n"
                                   "Content-Length: 4294967295\r\n\r\n";
        a->payloads[a->npayloads++] = payload_copy(http, sizeof(http) - 1);
        /* 2: a PlugX header declaring 65535-byte sizes, then 1 KiB of the body and silence */
        size_t n = encode(&cfg, 0x0BADF00D, 0x1001, body, 2048, buf);
        patch_header(&cfg, buf, 0x0BADF00D, 0, 0xFFFF, 0xFFFF);
        a->payloads[a->npayloads++] = payload_copy(buf, n - 1024);
        /* 3: a complete maximum-size packet (legal on the wire: the server must cope) */
        n = encode(&cfg, 0x0BADF11D, 0x1001, body, PLUGX_BODY_LIMIT, buf);
        a->payloads[a->npayloads++] = payload_copy(buf, n);
        break;
    }
    case M_BOMB: { /* 16 chunks of 5 bytes that inflate to 64 KiB, declared as 100 bytes */
        size_t blen = lznt1_bomb(body, 16);
        size_t n = encode(&cfg, 0x0B0B0B0B, 0x1001, body, blen, buf);
        patch_header(&cfg, buf, 0x0B0B0B0B, PLUGX_FLAG_UNCOMPRESSED, -1, 100);
        a->payloads[a->npayloads++] = payload_copy(buf, n);
        break;
    }
    case M_PROXY: { /* PROXY v2 claiming a public source, from a peer that is not trusted */
        struct net_addr src = {.family = AF_INET, .port = 1234, .ip = {8, 8, 8, 8}};
        struct net_addr dst = {.family = AF_INET, .port = ntohs(a->target.sin_port)};
        memcpy(dst.ip, &a->target.sin_addr, 4);
        ptrdiff_t h = proxy_encode_v2(&src, &dst, buf, PAYLOAD_MAX);
        if (h <= 0) {
            fprintf(stderr, "attack: proxy_encode_v2 failed\n");
            exit(1);
        }
        size_t n = encode(&cfg, 0x7E57AB1E, 0x1000, NULL, 0, buf + h);
        a->payloads[a->npayloads++] = payload_copy(buf, (size_t)h + n);
        break;
    }
    default:
        break;
    }
    free(buf);
    free(body);
}

/* ---- connections --------------------------------------------------------------------------- */

static void slot_close(struct attack *a, struct slot *s, bool by_server)
{
    if (by_server) {
        a->closed_by_server++;
    } else {
        a->closed_by_us++;
    }
    close(s->fd);
    s->fd = -1;
    s->state = S_FREE;
    a->open_now--;
}

static void slot_open(struct attack *a, struct slot *s, uint64_t now)
{
    if (a->attempts >= a->max_total || stop_flag || now >= a->deadline_us) {
        return;
    }
    uint32_t src = a->src_first + a->src_next++ % a->src_count;
    a->attempts++;
    int fd = bn_connect(&a->target, src, a->rst);
    if (fd < 0) {
        if (fd == -ECONNREFUSED || fd == -EAGAIN || fd == -EADDRNOTAVAIL) {
            a->refused++;
        } else {
            a->connect_errors++;
        }
        return;
    }
    s->fd = fd;
    s->state = S_CONNECTING;
    s->sent = 0;
    s->payload = a->npayloads ? (uint8_t)(a->attempts % a->npayloads) : 0;
    s->next_us = now + (uint64_t)a->hold_ms * 1000;
    a->open_now++;
    if (a->open_now > a->open_peak) {
        a->open_peak = a->open_now;
    }
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
                             .data.u32 = (uint32_t)(s - a->slots)};
    epoll_ctl(a->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void want(struct attack *a, struct slot *s, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.u32 = (uint32_t)(s - a->slots)};
    epoll_ctl(a->ep, EPOLL_CTL_MOD, s->fd, &ev);
}

/* Writes what this slot may write now: everything, or one byte for slowloris. */
static void slot_send(struct attack *a, struct slot *s, uint64_t now)
{
    const struct payload *p = &a->payloads[s->payload];
    uint32_t chunk = p->len - s->sent;
    if (a->mode == M_SLOWLORIS) {
        if (now < s->next_us) {
            return;
        }
        chunk = 1;
        s->next_us = now + (uint64_t)a->drip_ms * 1000;
    }
    ssize_t n = send(s->fd, p->data + s->sent, chunk, MSG_NOSIGNAL);
    if (n < 0) {
        if (errno != EAGAIN) {
            slot_close(a, s, true);
        }
        return;
    }
    a->bytes_sent += (uint64_t)n;
    s->sent += (uint32_t)n;
    if (s->sent == p->len) {
        if (a->mode == M_SLOWLORIS) {
            s->sent = 0; /* start over: the drip never ends on its own */
            return;
        }
        s->state = S_WAITING;
        s->next_us = now + (uint64_t)a->hold_ms * 1000;
        want(a, s, EPOLLIN | EPOLLRDHUP);
    }
}

static void slot_event(struct attack *a, struct slot *s, uint32_t events, uint64_t now)
{
    if (s->state == S_CONNECTING) {
        int e = bn_socket_error(s->fd);
        if (e != 0) {
            if (e == ECONNREFUSED) {
                a->refused++;
            } else {
                a->connect_errors++;
            }
            close(s->fd);
            s->fd = -1;
            s->state = S_FREE;
            a->open_now--;
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLIN | EPOLLRDHUP | EPOLLHUP))) {
            return;
        }
        a->connected++;
        if (a->mode == M_FLOOD) {
            slot_close(a, s, false);
            return;
        }
        s->state = S_SENDING;
        if (a->mode == M_SLOWLORIS) {
            s->next_us = now;
            want(a, s, EPOLLIN | EPOLLRDHUP);
        }
    }
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
        uint8_t buf[4096];
        for (;;) {
            ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
            if (n > 0) {
                a->bytes_received += (uint64_t)n;
                continue;
            }
            if (n == 0 || errno != EAGAIN) {
                slot_close(a, s, true);
                return;
            }
            break;
        }
        if (s->state == S_WAITING) {
            /* The server answered instead of closing (a legal maximum-size packet): done. */
            a->replied++;
            slot_close(a, s, false);
            return;
        }
    }
    if (s->state == S_SENDING && (events & EPOLLOUT)) {
        slot_send(a, s, now);
    }
}

/* Periodic work: slowloris drips, waits that ran out, refilling free slots. */
static void tick(struct attack *a, uint64_t now)
{
    for (uint32_t i = 0; i < a->conns; i++) {
        struct slot *s = &a->slots[i];
        if (s->state == S_FREE) {
            slot_open(a, s, now);
        } else if (a->mode == M_SLOWLORIS && s->state == S_SENDING) {
            slot_send(a, s, now);
        } else if (s->state == S_WAITING && now >= s->next_us) {
            slot_close(a, s, false);
            slot_open(a, s, now);
        }
    }
}

static void usage(void)
{
    fprintf(stderr,
            "usage: attack --mode slowloris|flood|garbage|oversize|bomb|proxy --target IP:PORT\n"
            "              --duration S [--conns N] [--max-conns N] [--source-net CIDR]\n"
            "              [--sources K] [--drip-ms MS] [--hold-ms MS] [--rst]\n"
            "Loopback only. Stops after --duration seconds or --max-conns attempts.\n");
}

int main(int argc, char **argv)
{
    struct attack a = {
        .mode = M_COUNT, .conns = 100, .max_total = 1000000, .drip_ms = 1000, .hold_ms = 20000};
    struct bn_common common = {.net = "127.0.3.0/24", .duration = 10};
    static const struct option opts[] = {{"mode", 1, 0, 'm'},    BN_COMMON_OPTIONS,
                                         {"conns", 1, 0, 'c'},   {"max-conns", 1, 0, 'n'},
                                         {"drip-ms", 1, 0, 'r'}, {"hold-ms", 1, 0, 'h'},
                                         {"rst", 0, 0, 'R'},     {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (bn_common_option(o, optarg, &common)) {
            continue;
        }
        switch (o) {
        case 'm':
            for (int i = 0; i < M_COUNT; i++) {
                if (strcmp(optarg, mode_names[i]) == 0) {
                    a.mode = (enum mode)i;
                }
            }
            break;
        case 'c':
            a.conns = (uint32_t)atol(optarg);
            break;
        case 'n':
            a.max_total = (uint64_t)atoll(optarg);
            break;
        case 'r':
            a.drip_ms = (uint32_t)atol(optarg);
            break;
        case 'h':
            a.hold_ms = (uint32_t)atol(optarg);
            break;
        case 'R':
            a.rst = true;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (a.mode == M_COUNT ||
        bn_common_finish(&common, 3600, &a.target, &a.src_first, &a.src_count) != 0 ||
        a.conns == 0 || a.conns > 60000) {
        usage();
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && a.conns + 16 > rl.rlim_cur) {
        fprintf(stderr, "attack: --conns %u exceeds the open-files limit %llu\n", a.conns,
                (unsigned long long)rl.rlim_cur);
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    build_payloads(&a);
    a.ep = epoll_create1(EPOLL_CLOEXEC);
    a.slots = calloc(a.conns, sizeof(*a.slots));
    if (a.ep < 0 || a.slots == NULL) {
        perror("attack");
        return 1;
    }
    uint64_t start = bn_now_us();
    a.deadline_us = start + (uint64_t)(common.duration * 1e6);
    struct epoll_event evs[512];
    uint64_t next_tick = 0;
    while (!stop_flag) {
        uint64_t now = bn_now_us();
        if (now >= a.deadline_us) {
            break;
        }
        if (now >= next_tick) {
            tick(&a, now);
            next_tick = now + TICK_MS * 1000;
            if (a.open_now == 0 && a.attempts >= a.max_total) {
                break;
            }
        }
        int n = epoll_wait(a.ep, evs, 512, TICK_MS);
        now = bn_now_us();
        for (int i = 0; i < n; i++) {
            struct slot *s = &a.slots[evs[i].data.u32];
            if (s->state == S_FREE) {
                continue;
            }
            slot_event(&a, s, evs[i].events, now);
            if (s->state == S_FREE && a.mode != M_SLOWLORIS) {
                slot_open(&a, s, now); /* keep the pressure on without waiting for the tick */
            }
        }
    }
    uint64_t still_open = a.open_now;
    for (uint32_t i = 0; i < a.conns; i++) {
        if (a.slots[i].state != S_FREE) {
            close(a.slots[i].fd);
        }
    }
    double secs = (double)(bn_now_us() - start) / 1e6;
    printf("{\"mode\":\"%s\",\"seconds\":%.1f,\"attempts\":%llu,\"connected\":%llu,"
           "\"refused\":%llu,\"connect_errors\":%llu,\"closed_by_server\":%llu,"
           "\"closed_by_us\":%llu,\"answered\":%llu,\"open_at_end\":%llu,\"open_peak\":%llu,"
           "\"bytes_sent\":%llu,\"bytes_received\":%llu}\n",
           mode_names[a.mode], secs, (unsigned long long)a.attempts,
           (unsigned long long)a.connected, (unsigned long long)a.refused,
           (unsigned long long)a.connect_errors, (unsigned long long)a.closed_by_server,
           (unsigned long long)a.closed_by_us, (unsigned long long)a.replied,
           (unsigned long long)still_open, (unsigned long long)a.open_peak,
           (unsigned long long)a.bytes_sent, (unsigned long long)a.bytes_received);
    return 0;
}
