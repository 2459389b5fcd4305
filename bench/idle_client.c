/* idle_client.c -- holds many idle bot connections for bench/idle.sh: each does the PlugX hello
 * and machine-info exchange (or one HTTP keep-alive request, for the nginx anchor), then sits
 * idle, heartbeating every --heartbeat-s seconds, until --duration ends. */
#include <getopt.h>
#include <signal.h>
#include <sys/epoll.h>

#include "bench/benchnet.h"
#include "bench/benchplugx.h"

enum phase { P_CONNECTING, P_HELLO, P_INFO, P_IDLE, P_BEAT, P_DEAD };

struct conn {
    int fd;
    uint8_t phase;
    uint8_t head_len;
    uint8_t head[PLUGX_HEADER_SIZE]; /* first bytes of the reply being read (or HTTP tail) */
    uint32_t got, need;
    uint64_t next_beat_us;
};

struct idle {
    struct sockaddr_in target;
    uint32_t src_first, src_count;
    uint32_t count, setup_conns;
    bool http;
    uint64_t heartbeat_us;
    struct plugx_config cfg;
    int ep;
    struct conn *conns;
    uint32_t opened, established, in_setup;
    uint64_t failed, closed_by_server, beats_sent, beats_answered;
};

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static const char http_request[] = "GET / HTTP/1.1\r\nHost: bench\r\n\r\n";

static void conn_dead(struct idle *d, struct conn *c, bool by_server)
{
    if (c->phase < P_IDLE) {
        d->in_setup--;
        d->failed++;
    } else if (by_server) {
        d->closed_by_server++;
    }
    if (c->phase >= P_IDLE) {
        d->established--;
    }
    close(c->fd);
    c->fd = -1;
    c->phase = P_DEAD;
}

/* Sends the next request of conn c (hello, machine info, heartbeat or HTTP request). */
static bool conn_request(struct idle *d, struct conn *c, enum phase next)
{
    uint8_t buf[2048];
    size_t n;
    uint32_t i = (uint32_t)(c - d->conns);
    if (d->http) {
        n = sizeof(http_request) - 1;
        memcpy(buf, http_request, n);
    } else if (next == P_INFO) {
        n = bp_machine_info(&d->cfg, 0xA5A50000u + i, i, buf, sizeof(buf));
    } else {
        n = bp_poll(&d->cfg, 0x5A5A0000u + i * 7919u, buf, sizeof(buf));
    }
    if (send(c->fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n) {
        return false; /* small requests fit an empty socket buffer in one go */
    }
    c->phase = (uint8_t)next;
    c->got = c->need = 0;
    c->head_len = 0;
    return true;
}

/* Reads reply bytes; true once the whole reply is in. */
static int conn_read(struct idle *d, struct conn *c)
{
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            return -1;
        }
        if (n < 0) {
            return 0;
        }
        if (d->http) {
            /* 204 No Content: the response ends with its headers */
            for (ssize_t k = 0; k < n; k++) {
                memmove(c->head, c->head + 1, 3);
                c->head[3] = buf[k];
            }
            if (memcmp(c->head, "\r\n\r\n", 4) == 0) {
                return 1;
            }
            continue;
        }
        for (ssize_t k = 0; k < n && c->head_len < PLUGX_HEADER_SIZE; k++) {
            c->head[c->head_len++] = buf[k];
        }
        c->got += (uint32_t)n;
        if (c->need == 0) {
            c->need = (uint32_t)bp_packet_len(&d->cfg, c->head, c->head_len);
        }
        if (c->need != 0 && c->got >= c->need) {
            return 1;
        }
    }
}

static void conn_event(struct idle *d, struct conn *c, uint32_t events, uint64_t now)
{
    if (c->phase == P_CONNECTING) {
        if (bn_socket_error(c->fd) != 0) {
            conn_dead(d, c, false);
            return;
        }
        if (!conn_request(d, c, P_HELLO)) {
            conn_dead(d, c, true);
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                 .data.u32 = (uint32_t)(c - d->conns)};
        epoll_ctl(d->ep, EPOLL_CTL_MOD, c->fd, &ev);
        return;
    }
    (void)events;
    int r = conn_read(d, c);
    if (r < 0) {
        conn_dead(d, c, true);
        return;
    }
    if (r == 0) {
        return;
    }
    if (c->phase == P_HELLO && !d->http) {
        if (!conn_request(d, c, P_INFO)) {
            conn_dead(d, c, true);
        }
        return;
    }
    if (c->phase == P_BEAT) {
        d->beats_answered++;
    } else {
        d->in_setup--;
        d->established++;
    }
    c->phase = P_IDLE;
    /* spread the first heartbeat over one interval, as bots started at different times would */
    c->next_beat_us = now + (uint64_t)(((double)rand() / RAND_MAX) * (double)d->heartbeat_us);
}

static void open_more(struct idle *d)
{
    while (d->opened < d->count && d->in_setup < d->setup_conns && !stop_flag) {
        struct conn *c = &d->conns[d->opened];
        int fd = bn_connect(&d->target, d->src_first + d->opened % d->src_count, false);
        d->opened++;
        if (fd < 0) {
            c->phase = P_DEAD;
            c->fd = -1;
            d->failed++;
            continue;
        }
        c->fd = fd;
        c->phase = P_CONNECTING;
        d->in_setup++;
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
                                 .data.u32 = (uint32_t)(c - d->conns)};
        epoll_ctl(d->ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

int main(int argc, char **argv)
{
    static struct idle d = {.count = 1000, .setup_conns = 256, .heartbeat_us = 60000000};
    struct bn_common common = {.net = "127.0.5.0/24", .duration = 30};
    const char *ready = NULL;
    static const struct option opts[] = {BN_COMMON_OPTIONS,         {"count", 1, 0, 'n'},
                                         {"http", 0, 0, 'H'},       {"heartbeat-s", 1, 0, 'b'},
                                         {"ready-file", 1, 0, 'r'}, {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (bn_common_option(o, optarg, &common)) {
            continue;
        }
        switch (o) {
        case 'n':
            d.count = (uint32_t)atol(optarg);
            break;
        case 'H':
            d.http = true;
            break;
        case 'b':
            d.heartbeat_us = (uint64_t)(atof(optarg) * 1e6);
            break;
        case 'r':
            ready = optarg;
            break;
        default:
            return 2;
        }
    }
    if (bn_common_finish(&common, 900, &d.target, &d.src_first, &d.src_count) != 0 ||
        d.count == 0 || d.count > 19500 || d.heartbeat_us == 0) {
        fprintf(stderr, "usage: idle_client --target IP:PORT --count N (<= 19500, the fd limit) "
                        "--duration S [--http] [--heartbeat-s S] [--source-net CIDR] "
                        "[--sources K] [--ready-file F]\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    srand(1);
    plugx_config_default(&d.cfg);
    d.ep = epoll_create1(EPOLL_CLOEXEC);
    d.conns = calloc(d.count, sizeof(*d.conns));
    if (d.ep < 0 || d.conns == NULL) {
        perror("idle_client");
        return 1;
    }
    uint64_t start = bn_now_us(), deadline = start + (uint64_t)(common.duration * 1e6);
    uint64_t next_scan = 0, setup_us = 0;
    struct epoll_event evs[1024];
    while (!stop_flag && bn_now_us() < deadline) {
        open_more(&d);
        int n = epoll_wait(d.ep, evs, 1024, 50);
        uint64_t now = bn_now_us();
        for (int i = 0; i < n; i++) {
            struct conn *c = &d.conns[evs[i].data.u32];
            if (c->phase != P_DEAD) {
                conn_event(&d, c, evs[i].events, now);
            }
        }
        if (setup_us == 0 && d.opened == d.count && d.in_setup == 0) {
            setup_us = now - start;
            printf("established %u of %u in %.1f s\n", d.established, d.count, setup_us / 1e6);
            fflush(stdout);
            if (ready != NULL) {
                FILE *f = fopen(ready, "w");
                if (f != NULL) {
                    fprintf(f, "%u\n", d.established);
                    fclose(f);
                }
            }
        }
        if (now >= next_scan) {
            next_scan = now + 100000;
            for (uint32_t i = 0; i < d.opened; i++) {
                struct conn *c = &d.conns[i];
                if (c->phase == P_IDLE && now >= c->next_beat_us) {
                    d.beats_sent++;
                    if (!conn_request(&d, c, P_BEAT)) {
                        conn_dead(&d, c, true);
                    }
                }
            }
        }
    }
    uint32_t still = d.established;
    for (uint32_t i = 0; i < d.opened; i++) {
        if (d.conns[i].phase != P_DEAD) {
            close(d.conns[i].fd);
        }
    }
    printf("{\"count\":%u,\"established_at_end\":%u,\"setup_s\":%.1f,\"failed\":%llu,"
           "\"closed_by_server\":%llu,\"heartbeats_sent\":%llu,\"heartbeats_answered\":%llu}\n",
           d.count, still, setup_us / 1e6, (unsigned long long)d.failed,
           (unsigned long long)d.closed_by_server, (unsigned long long)d.beats_sent,
           (unsigned long long)d.beats_answered);
    return 0;
}
