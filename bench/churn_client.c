/* churn_client.c -- accept-reply-close load for bench/churn.sh: from N concurrent connections,
 * connect, send a PlugX poll, read the whole reply, close; again, as fast as possible. The same
 * client measures sinkd and nginx, so only the server differs. */
#include <getopt.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>

#include "bench/benchnet.h"
#include "bench/benchplugx.h"

#define HIST_US 10    /* latency bucket width */
#define HIST_N 100000 /* up to 1 s */
#define NKEYS 256

struct slot {
    int fd;
    uint8_t busy;
    uint8_t key; /* which of the pre-encoded polls this connection sends */
    uint8_t head_len;
    uint8_t head[PLUGX_HEADER_SIZE];
    uint32_t got;
    uint32_t need; /* 0 until known */
    uint64_t t0;
};

struct churn {
    struct sockaddr_in target;
    uint32_t src_first, src_count, src_next;
    uint32_t conns;
    uint64_t max_total;
    uint32_t expect; /* raw reply length (nginx); 0: a PlugX packet, length from its header */
    bool rst;
    struct plugx_config cfg;
    uint8_t polls[NKEYS][PLUGX_HEADER_SIZE];
    int ep;
    struct slot *slots;
    uint32_t *hist;
    uint64_t attempts, completed, connect_errors, resets, short_replies, hist_over;
};

static volatile sig_atomic_t stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void slot_end(struct slot *s)
{
    close(s->fd); /* with SO_LINGER 0 this is an RST: no TIME_WAIT on either side */
    s->fd = -1;
    s->busy = 0;
}

static void slot_open(struct churn *c, struct slot *s)
{
    if (c->attempts >= c->max_total || stop_flag) {
        return;
    }
    c->attempts++;
    int fd = bn_connect(&c->target, c->src_first + c->src_next++ % c->src_count, c->rst);
    if (fd < 0) {
        c->connect_errors++;
        return;
    }
    memset(s, 0, sizeof(*s));
    s->key = (uint8_t)(c->attempts % NKEYS);
    s->fd = fd;
    s->busy = 1;
    s->need = c->expect;
    s->t0 = bn_now_us();
    struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP,
                             .data.u32 = (uint32_t)(s - c->slots)};
    epoll_ctl(c->ep, EPOLL_CTL_ADD, fd, &ev);
}

static void slot_event(struct churn *c, struct slot *s, uint32_t events)
{
    if (events & EPOLLOUT) {
        int e = bn_socket_error(s->fd);
        if (e != 0) {
            c->connect_errors++;
            slot_end(s);
            return;
        }
        const uint8_t *poll = c->polls[s->key];
        if (send(s->fd, poll, PLUGX_HEADER_SIZE, MSG_NOSIGNAL) != PLUGX_HEADER_SIZE) {
            c->resets++;
            slot_end(s);
            return;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                 .data.u32 = (uint32_t)(s - c->slots)};
        epoll_ctl(c->ep, EPOLL_CTL_MOD, s->fd, &ev);
        return;
    }
    uint8_t buf[4096];
    for (;;) {
        ssize_t n = recv(s->fd, buf, sizeof(buf), 0);
        if (n > 0) {
            for (ssize_t i = 0; i < n && s->head_len < PLUGX_HEADER_SIZE; i++) {
                s->head[s->head_len++] = buf[i];
            }
            s->got += (uint32_t)n;
            if (s->need == 0) {
                s->need = (uint32_t)bp_packet_len(&c->cfg, s->head, s->head_len);
            }
            if (s->need != 0 && s->got >= s->need) {
                uint64_t us = bn_now_us() - s->t0;
                if (us / HIST_US < HIST_N) {
                    c->hist[us / HIST_US]++;
                } else {
                    c->hist_over++;
                }
                c->completed++;
                slot_end(s);
                return;
            }
            continue;
        }
        if (n == 0) {
            c->short_replies++;
            slot_end(s);
        } else if (errno != EAGAIN) {
            c->resets++;
            slot_end(s);
        }
        return;
    }
}

static uint64_t percentile(const struct churn *c, double q)
{
    uint64_t total = c->hist_over;
    for (size_t i = 0; i < HIST_N; i++) {
        total += c->hist[i];
    }
    uint64_t want = (uint64_t)(q * (double)total), seen = 0;
    for (size_t i = 0; i < HIST_N; i++) {
        seen += c->hist[i];
        if (seen > want) {
            return (uint64_t)(i + 1) * HIST_US;
        }
    }
    return (uint64_t)HIST_N * HIST_US;
}

int main(int argc, char **argv)
{
    static struct churn c = {.conns = 200, .max_total = 100000000, .rst = true};
    struct bn_common common = {.net = "127.0.4.0/24", .duration = 10, .sources = 16};
    static const struct option opts[] = {BN_COMMON_OPTIONS,        {"conns", 1, 0, 'c'},
                                         {"max-conns", 1, 0, 'n'}, {"expect", 1, 0, 'e'},
                                         {"fin", 0, 0, 'f'},       {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        if (bn_common_option(o, optarg, &common)) {
            continue;
        }
        switch (o) {
        case 'c':
            c.conns = (uint32_t)atol(optarg);
            break;
        case 'n':
            c.max_total = (uint64_t)atoll(optarg);
            break;
        case 'e':
            c.expect = (uint32_t)atol(optarg);
            break;
        case 'f':
            c.rst = false;
            break;
        default:
            return 2;
        }
    }
    if (bn_common_finish(&common, 600, &c.target, &c.src_first, &c.src_count) != 0 ||
        c.conns == 0 || c.conns > 18000) {
        fprintf(stderr, "usage: churn_client --target IP:PORT --duration S [--conns N] "
                        "[--max-conns N] [--source-net CIDR] [--sources K] [--expect BYTES] "
                        "[--fin]\n");
        return 2;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    plugx_config_default(&c.cfg);
    for (uint32_t k = 0; k < NKEYS; k++) {
        bp_poll(&c.cfg, 0x9E3779B9u * (k + 1), c.polls[k], PLUGX_HEADER_SIZE);
    }
    c.ep = epoll_create1(EPOLL_CLOEXEC);
    c.slots = calloc(c.conns, sizeof(*c.slots));
    c.hist = calloc(HIST_N, sizeof(*c.hist));
    if (c.ep < 0 || c.slots == NULL || c.hist == NULL) {
        perror("churn_client");
        return 1;
    }
    uint64_t start = bn_now_us();
    uint64_t deadline = start + (uint64_t)(common.duration * 1e6);
    struct epoll_event evs[1024];
    while (!stop_flag && bn_now_us() < deadline) {
        for (uint32_t i = 0; i < c.conns; i++) {
            if (!c.slots[i].busy) {
                slot_open(&c, &c.slots[i]);
            }
        }
        int n = epoll_wait(c.ep, evs, 1024, 20);
        for (int i = 0; i < n; i++) {
            struct slot *s = &c.slots[evs[i].data.u32];
            if (s->busy) {
                slot_event(&c, s, evs[i].events);
            }
        }
        if (c.attempts >= c.max_total) {
            bool any = false;
            for (uint32_t i = 0; i < c.conns && !any; i++) {
                any = c.slots[i].busy;
            }
            if (!any) {
                break;
            }
        }
    }
    /* Connections still in flight at the deadline are abandoned, not counted. */
    uint64_t abandoned = 0;
    for (uint32_t i = 0; i < c.conns; i++) {
        if (c.slots[i].busy) {
            abandoned++;
            slot_end(&c.slots[i]);
        }
    }
    double secs = (double)(bn_now_us() - start) / 1e6;
    printf("{\"seconds\":%.2f,\"conns\":%u,\"attempts\":%llu,\"completed\":%llu,"
           "\"per_second\":%.0f,\"connect_errors\":%llu,\"resets\":%llu,\"short_replies\":%llu,"
           "\"abandoned\":%llu,\"latency_us\":{\"p50\":%llu,\"p99\":%llu}}\n",
           secs, c.conns, (unsigned long long)c.attempts, (unsigned long long)c.completed,
           (double)c.completed / secs, (unsigned long long)c.connect_errors,
           (unsigned long long)c.resets, (unsigned long long)c.short_replies,
           (unsigned long long)abandoned, (unsigned long long)percentile(&c, 0.50),
           (unsigned long long)percentile(&c, 0.99));
    return 0;
}
