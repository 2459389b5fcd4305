/* floor_server.c -- the cheapest server that still does what the churn exchange asks of sinkd at
 * the socket level: accept (with the peer's address), wait for the bot's 16-byte poll, answer
 * 16 bytes, keep the connection until the bot closes it, then close. No decoding, no log, no
 * libuv: one epoll loop per thread, each with its own SO_REUSEPORT listener, TCP_DEFER_ACCEPT and
 * TCP_NODELAY as sinkd sets them, no EPOLL_CTL_DEL (close drops the registration) and no read of
 * the peer's reset. bench/churn.sh runs it beside sinkd and nginx with the same client: it
 * separates what the exchange itself costs (the client's side included) from what sinkd adds.
 * Loopback only; stops on SIGTERM/SIGINT or after --duration seconds.
 * Usage: floor_server --listen 127.0.0.1:PORT [--threads N] [--duration S] [--ready-file F]
 *                     [--no-defer-accept]   (to measure what deferred accept saves)
 *                     [--close-first]       (close right after the reply, as nginx's `return`
 *                                            does: to measure what leaving the close to the bot
 *                                            costs; a PlugX C2 keeps the session open)
 *                     [--disarm-ms N]       (after the reply, leave the connection out of epoll
 *                                            for N ms (EPOLLONESHOT, then EPOLL_CTL_MOD): a bot
 *                                            that closes meanwhile wakes nobody; to measure what
 *                                            the wake-up on the bot's close costs the bot) */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/epoll.h>

#include "bench/benchnet.h"

#define MAX_THREADS 16
#define POLL_LEN 16
#define EVENTS 512

static atomic_int stop_flag;
static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, 1);
}

struct floor_thread {
    pthread_t thread;
    int listen_fd;
    unsigned duration_s;
    bool close_first;
    unsigned disarm_ms;
    /* --disarm-ms: descriptors answered and out of epoll, oldest first, with their reply time. */
    int *parked;
    uint64_t *parked_at;
    size_t park_head, park_n, park_cap;
    uint64_t answered;
    uint64_t accepted;
    /* Bytes of the poll received so far per descriptor (descriptors are < the open-files limit). */
    uint8_t *got;
    size_t ngot;
};

static int open_listener(const struct sockaddr_in *addr, bool defer_accept)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1, defer = 10;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        (defer_accept &&
         setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer)) != 0) ||
        bind(fd, (const struct sockaddr *)addr, sizeof(*addr)) != 0 || listen(fd, 4096) != 0) {
        perror("floor_server: listen");
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    return fd;
}

static void accept_all(struct floor_thread *t, int ep)
{
    for (;;) {
        struct sockaddr_in peer;
        socklen_t plen = sizeof(peer);
        int fd =
            accept4(t->listen_fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            return; /* EAGAIN, or out of descriptors: the next wake-up retries */
        }
        if ((size_t)fd >= t->ngot) {
            close(fd);
            continue;
        }
        t->accepted++;
        t->got[fd] = 0;
        struct epoll_event ev = {
            .events = EPOLLIN | EPOLLRDHUP | (t->disarm_ms > 0 ? EPOLLONESHOT : 0u), .data.fd = fd};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
            close(fd);
        }
    }
}

static void serve_conn(struct floor_thread *t, int ep, int fd, uint32_t events, bool close_first)
{
    static const uint8_t reply[POLL_LEN] = "0123456789abcdef";
    if (events & (EPOLLHUP | EPOLLERR | EPOLLRDHUP)) {
        close(fd); /* the bot is gone: nothing to read, and close removes the registration */
        return;
    }
    uint8_t buf[4096];
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n <= 0) {
        if (n == 0 || errno != EAGAIN) {
            close(fd);
        } else if (t->disarm_ms > 0) {
            struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.fd = fd};
            epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev); /* nothing yet: armed again */
        }
        return;
    }
    unsigned before = t->got[fd];
    unsigned after = before + (unsigned)n > 255 ? 255 : before + (unsigned)n;
    t->got[fd] = (uint8_t)after;
    if (before < POLL_LEN && after >= POLL_LEN) {
        if (write(fd, reply, sizeof(reply)) == (ssize_t)sizeof(reply)) {
            t->answered++;
        }
        if (close_first) {
            close(fd); /* what nginx's `return` does, and what a PlugX C2 must not do */
            return;
        }
    }
    if (t->disarm_ms > 0) {
        if (before < POLL_LEN && after >= POLL_LEN && t->park_n < t->park_cap) {
            size_t at = (t->park_head + t->park_n++) % t->park_cap;
            t->parked[at] = fd;
            t->parked_at[at] = bn_now_us();
            return; /* stays disarmed (EPOLLONESHOT) until rearm() */
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_MOD, fd, &ev);
    }
}

/* Arms again the parked descriptors answered more than --disarm-ms ago: one that the bot closed
 * meanwhile is reported at once and closed. */
static void rearm(struct floor_thread *t, int ep)
{
    uint64_t now = bn_now_us();
    while (t->park_n > 0 && now - t->parked_at[t->park_head] >= t->disarm_ms * 1000u) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT,
                                 .data.fd = t->parked[t->park_head]};
        epoll_ctl(ep, EPOLL_CTL_MOD, t->parked[t->park_head], &ev);
        t->park_head = (t->park_head + 1) % t->park_cap;
        t->park_n--;
    }
}

static void *thread_main(void *arg)
{
    struct floor_thread *t = arg;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.fd = t->listen_fd};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, t->listen_fd, &lev) != 0) {
        perror("floor_server: epoll");
        return NULL;
    }
    uint64_t end = bn_now_us() + (uint64_t)t->duration_s * 1000000u;
    struct epoll_event evs[EVENTS];
    while (!atomic_load(&stop_flag) && bn_now_us() < end) {
        int n = epoll_wait(ep, evs, EVENTS, t->park_n > 0 ? (int)t->disarm_ms : 100);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == t->listen_fd) {
                accept_all(t, ep);
            } else {
                serve_conn(t, ep, evs[i].data.fd, evs[i].events, t->close_first);
            }
        }
        rearm(t, ep);
    }
    close(ep);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *listen_at = NULL, *ready_file = NULL;
    unsigned nthreads = (unsigned)sysconf(_SC_NPROCESSORS_ONLN), duration_s = 600;
    bool defer_accept = true, close_first = false;
    unsigned disarm_ms = 0;
    struct sockaddr_in addr;
    static const struct option opts[] = {{"listen", 1, 0, 'l'},          {"threads", 1, 0, 't'},
                                         {"duration", 1, 0, 'd'},        {"ready-file", 1, 0, 'r'},
                                         {"no-defer-accept", 0, 0, 'n'}, {"close-first", 0, 0, 'c'},
                                         {"disarm-ms", 1, 0, 'D'},       {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'l':
            listen_at = optarg;
            break;
        case 't':
            nthreads = (unsigned)atoi(optarg);
            break;
        case 'd':
            duration_s = (unsigned)atoi(optarg);
            break;
        case 'r':
            ready_file = optarg;
            break;
        case 'n':
            defer_accept = false;
            break;
        case 'c':
            close_first = true;
            break;
        case 'D':
            disarm_ms = (unsigned)atoi(optarg);
            break;
        default:
            return 2;
        }
    }
    if (listen_at == NULL || bn_parse_target(listen_at, &addr) != 0 || nthreads == 0 ||
        nthreads > MAX_THREADS || duration_s == 0) {
        fprintf(stderr,
                "usage: floor_server --listen 127.x.y.z:PORT [--threads 1..%d] "
                "[--duration S] [--ready-file F] [--no-defer-accept] [--close-first] "
                "[--disarm-ms N]\n",
                MAX_THREADS);
        return 2;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    long fd_limit = sysconf(_SC_OPEN_MAX);
    static struct floor_thread threads[MAX_THREADS];
    for (unsigned i = 0; i < nthreads; i++) {
        threads[i].duration_s = duration_s;
        threads[i].close_first = close_first;
        threads[i].disarm_ms = disarm_ms;
        threads[i].park_cap = 65536;
        threads[i].parked = calloc(threads[i].park_cap, sizeof(int));
        threads[i].parked_at = calloc(threads[i].park_cap, sizeof(uint64_t));
        threads[i].listen_fd = open_listener(&addr, defer_accept);
        threads[i].ngot = fd_limit > 0 ? (size_t)fd_limit : 1024;
        threads[i].got = calloc(threads[i].ngot, 1);
        if (threads[i].listen_fd < 0 || threads[i].got == NULL || threads[i].parked == NULL ||
            threads[i].parked_at == NULL) {
            return 1;
        }
    }
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_create(&threads[i].thread, NULL, thread_main, &threads[i]);
    }
    if (ready_file != NULL) {
        FILE *f = fopen(ready_file, "w");
        if (f != NULL) {
            fputs("ready\n", f);
            fclose(f);
        }
    }
    uint64_t answered = 0, accepted = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        pthread_join(threads[i].thread, NULL);
        answered += threads[i].answered;
        accepted += threads[i].accepted;
        free(threads[i].got);
        free(threads[i].parked);
        free(threads[i].parked_at);
    }
    printf("{\"accepted\": %llu, \"answered\": %llu}\n", (unsigned long long)accepted,
           (unsigned long long)answered);
    return 0;
}
