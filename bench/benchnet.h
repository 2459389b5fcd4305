/* benchnet.h -- loopback-only socket helpers shared by the bench clients and attack tools. */
#ifndef SINKD_BENCH_BENCHNET_H
#define SINKD_BENCH_BENCHNET_H

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static inline uint64_t bn_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Parses "127.x.y.z:PORT"; anything outside 127.0.0.0/8 is refused, so no bench tool can be
 * pointed at another machine. */
static inline int bn_parse_target(const char *s, struct sockaddr_in *out)
{
    char ip[64];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof(ip)) {
        return -1;
    }
    memcpy(ip, s, (size_t)(colon - s));
    ip[colon - s] = '\0';
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    char *end = NULL;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || port <= 0 || port > 65535 || inet_pton(AF_INET, ip, &out->sin_addr) != 1) {
        return -1;
    }
    out->sin_port = htons((uint16_t)port);
    if ((ntohl(out->sin_addr.s_addr) >> 24) != 127) {
        return -1;
    }
    return 0;
}

/* Parses "127.a.b.0/24"-style prefixes (loopback only) into first host and host count. */
static inline int bn_parse_net(const char *s, uint32_t *first, uint32_t *count)
{
    char ip[64];
    const char *slash = strchr(s, '/');
    if (slash == NULL || (size_t)(slash - s) >= sizeof(ip)) {
        return -1;
    }
    memcpy(ip, s, (size_t)(slash - s));
    ip[slash - s] = '\0';
    struct in_addr a;
    int bits = atoi(slash + 1);
    if (inet_pton(AF_INET, ip, &a) != 1 || bits < 8 || bits > 30) {
        return -1;
    }
    uint32_t base = ntohl(a.s_addr) & (0xFFFFFFFFu << (32 - bits));
    if ((base >> 24) != 127) {
        return -1;
    }
    *first = base + 1;
    *count = (1u << (32 - bits)) - 2;
    return 0;
}

/* Starts a non-blocking connect from source address src (host order, port chosen at connect
 * time so that one source address can use the whole ephemeral range per destination).
 * Returns the descriptor or -errno. */
/* The options every client and attack tool takes: --target IP:PORT, --duration S,
 * --source-net CIDR and --sources K (how many addresses of the net to use; 0: all). */
struct bn_common {
    const char *target, *net;
    double duration;
    uint32_t sources;
};
#define BN_COMMON_OPTIONS                                                                          \
    {"target", 1, 0, 't'}, {"duration", 1, 0, 'd'}, {"source-net", 1, 0, 's'},                     \
    {                                                                                              \
        "sources", 1, 0, 'k'                                                                       \
    }

/* Takes getopt's option o if it is a common one; true if it was. */
static inline bool bn_common_option(int o, const char *arg, struct bn_common *c)
{
    switch (o) {
    case 't':
        c->target = arg;
        return true;
    case 'd':
        c->duration = atof(arg);
        return true;
    case 's':
        c->net = arg;
        return true;
    case 'k':
        c->sources = (uint32_t)atol(arg);
        return true;
    default:
        return false;
    }
}

/* Checks and converts the common options: 0, or -1 when the target or net does not parse or the
 * duration is outside (0, max_duration]. */
static inline int bn_common_finish(const struct bn_common *c, double max_duration,
                                   struct sockaddr_in *target, uint32_t *src_first,
                                   uint32_t *src_count)
{
    if (c->target == NULL || bn_parse_target(c->target, target) != 0 ||
        bn_parse_net(c->net, src_first, src_count) != 0 || c->duration <= 0 ||
        c->duration > max_duration) {
        return -1;
    }
    if (c->sources > 0 && c->sources < *src_count) {
        *src_count = c->sources;
    }
    return 0;
}

static inline int bn_connect(const struct sockaddr_in *target, uint32_t src, bool linger0)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (linger0) {
        /* Close with RST: no TIME_WAIT on our side, so the 4-tuples are reusable at once. */
        struct linger l = {.l_onoff = 1, .l_linger = 0};
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        int e = errno;
        close(fd);
        return -e;
    }
    if (connect(fd, (const struct sockaddr *)target, sizeof(*target)) != 0 &&
        errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        return -e;
    }
    return fd;
}

/* Error pending on a socket after a non-blocking connect (0 = connected). */
static inline int bn_socket_error(int fd)
{
    int e = 0;
    socklen_t len = sizeof(e);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len) != 0) {
        return errno;
    }
    return e;
}

#endif
