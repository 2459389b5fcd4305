/* net_synfilter_test.c -- the listener drop filter, run by the kernel: a listener on loopback
 * with the filter installed, connections from listed and unlisted 127.x source addresses.
 * Loading the filter needs root or CAP_BPF; without them the tests are skipped. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include "net/synfilter.h"

/* The filter's key for an IPv4 address given in host byte order. */
static struct synfilter_addr synfilter_addr_v4(uint32_t host_order)
{
    const uint8_t ip[4] = {(uint8_t)(host_order >> 24), (uint8_t)(host_order >> 16),
                           (uint8_t)(host_order >> 8), (uint8_t)host_order};
    return synfilter_addr_bytes(ip, sizeof(ip));
}

/* 127.9.0.0/16: addresses no other test uses. */
static uint32_t src(uint32_t i)
{
    return ((127u << 24) | (9u << 16)) + i;
}

/* The filter's keys for IPv4 addresses (host order), in the same (ascending) order. */
static struct synfilter_addr *keys_of(const uint32_t *v4, size_t n)
{
    struct synfilter_addr *k = calloc(n ? n : 1, sizeof(*k));
    assert_non_null(k);
    for (size_t i = 0; i < n; i++) {
        k[i] = synfilter_addr_v4(v4[i]);
    }
    return k;
}

/* Replaces the set with the IPv4 addresses v4[0..n). */
static int set_v4(struct synfilter *f, const uint32_t *v4, size_t n)
{
    struct synfilter_addr *k = keys_of(v4, n);
    int rc = synfilter_set(f, k, n);
    free(k);
    return rc;
}

static int add_v4(struct synfilter *f, uint32_t v4)
{
    struct synfilter_addr k = synfilter_addr_v4(v4);
    return synfilter_add(f, &k);
}

static int listen_loopback(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(fd, 1024), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Starts a non-blocking connect from `from` (host order); the caller polls it. */
static int connect_from(uint32_t from, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_in s = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(from)};
    assert_int_equal(bind(fd, (struct sockaddr *)&s, sizeof(s)), 0);
    struct sockaddr_in d = {
        .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK), .sin_port = htons(port)};
    int rc = connect(fd, (struct sockaddr *)&d, sizeof(d));
    assert_true(rc == 0 || errno == EINPROGRESS);
    return fd;
}

/* Connects from each of `from` at once; connected[i] says whether the handshake completed
 * within 300 ms (a dropped SYN is retransmitted only after 1 s). */
static void try_connect(const uint32_t *from, size_t n, uint16_t port, bool *connected)
{
    int *fds = calloc(n, sizeof(int));
    struct pollfd *p = calloc(n, sizeof(*p));
    assert_non_null(fds);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) {
        fds[i] = connect_from(from[i], port);
        p[i] = (struct pollfd){.fd = fds[i], .events = POLLOUT};
    }
    usleep(300 * 1000);
    assert_true(poll(p, n, 0) >= 0);
    for (size_t i = 0; i < n; i++) {
        int soerr = -1;
        socklen_t len = sizeof(soerr);
        getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &soerr, &len);
        connected[i] = (p[i].revents & POLLOUT) != 0 && soerr == 0;
        close(fds[i]);
    }
    free(fds);
    free(p);
}

static void drain_accepts(int lfd)
{
    int fl = fcntl(lfd, F_GETFL);
    fcntl(lfd, F_SETFL, fl | O_NONBLOCK);
    int c;
    while ((c = accept(lfd, NULL, NULL)) >= 0) {
        close(c);
    }
    fcntl(lfd, F_SETFL, fl);
}

static struct synfilter *open_or_skip(uint32_t max)
{
    char err[4096];
    struct synfilter *f = synfilter_open(max, err, sizeof(err));
    if (f == NULL) {
        print_message("skipped: %s\n", err);
        skip();
    }
    return f;
}

/* Probes each of set[0..n) (at most ~40 of them, spread) and the addresses just below and above
 * each (the boundaries of a mistaken range), against the kernel's verdict: `dropped` says
 * whether the set's own addresses should be dropped. */
static void check(int lfd, uint16_t port, const uint32_t *set, size_t n, uint32_t step,
                  bool dropped)
{
    size_t stride = n > 40 ? n / 40 : 1;
    uint32_t probe[128];
    bool drop_expected[128], got[128];
    size_t m = 0;
    for (size_t i = 0; i < n && m + 3 <= 120; i += stride) {
        probe[m] = set[i];
        drop_expected[m++] = dropped;
        if (step > 1) {
            probe[m] = set[i] - 1;
            drop_expected[m++] = false;
            probe[m] = set[i] + 1;
            drop_expected[m++] = false;
        }
    }
    probe[m] = src(0);
    drop_expected[m++] = false;
    drain_accepts(lfd);
    try_connect(probe, m, port, got);
    for (size_t i = 0; i < m; i++) {
        if (got[i] == drop_expected[i]) { /* connected where it should be dropped, or not */
            print_error("address %u.%u.%u.%u: %s, expected %s\n", probe[i] >> 24,
                        (probe[i] >> 16) & 255, (probe[i] >> 8) & 255, probe[i] & 255,
                        got[i] ? "connected" : "dropped",
                        drop_expected[i] ? "dropped" : "connected");
            fail();
        }
    }
}

/* Drops every `step`-th address of 127.9.0.1 + [0, n * step), then only the second half of
 * them, then none. */
static void check_set(size_t n, uint32_t step)
{
    struct synfilter *f = open_or_skip((uint32_t)n);
    uint32_t *set = calloc(n, sizeof(uint32_t));
    assert_non_null(set);
    for (size_t i = 0; i < n; i++) {
        set[i] = src(1 + (uint32_t)i * step);
    }
    uint16_t port;
    int lfd = listen_loopback(&port);
    assert_int_equal(synfilter_attach(f, lfd, AF_INET), 0);
    check(lfd, port, set, n, step, false); /* attached, empty: nothing dropped */
    assert_int_equal(set_v4(f, set, n), 0);
    assert_int_equal(synfilter_size(f), n);
    check(lfd, port, set, n, step, true);
    /* The first half leaves, the second stays: a diff, not a rebuild. */
    size_t half = n / 2;
    assert_int_equal(set_v4(f, set + half, n - half), 0);
    assert_int_equal(synfilter_size(f), n - half);
    check(lfd, port, set, half, step, false);
    check(lfd, port, set + half, n - half, step, true);
    assert_int_equal(set_v4(f, NULL, 0), 0);
    check(lfd, port, set, n, step, false);
    close(lfd);
    free(set);
    synfilter_close(f);
}

static void test_one_address(void **state)
{
    (void)state;
    check_set(1, 2);
}

static void test_some_addresses(void **state)
{
    (void)state;
    check_set(37, 2);
}

static void test_adjacent_addresses(void **state)
{
    (void)state;
    check_set(200, 1);
}

static void test_full_map(void **state)
{
    (void)state;
    check_set(1024, 3);
}

/* Accepted sockets inherit the filter: a connection accepted before its address was banned
 * stops receiving once it is. */
static void test_accepted_sockets_inherit(void **state)
{
    (void)state;
    struct synfilter *f = open_or_skip(4);
    uint16_t port;
    int lfd = listen_loopback(&port);
    assert_int_equal(synfilter_attach(f, lfd, AF_INET), 0);
    int c = connect_from(src(500), port);
    int fl = fcntl(c, F_GETFL);
    fcntl(c, F_SETFL, fl & ~O_NONBLOCK);
    struct pollfd p = {.fd = c, .events = POLLOUT};
    assert_int_equal(poll(&p, 1, 2000), 1);
    int a = accept(lfd, NULL, NULL);
    assert_true(a >= 0);
    assert_int_equal(write(c, "x", 1), 1);
    char buf[4];
    assert_int_equal(read(a, buf, sizeof(buf)), 1);
    assert_int_equal(add_v4(f, src(500)), 0);
    assert_int_equal(write(c, "y", 1), 1);
    struct pollfd r = {.fd = a, .events = POLLIN};
    assert_int_equal(poll(&r, 1, 300), 0); /* dropped: nothing arrives */
    close(a);
    close(c);
    close(lfd);
    synfilter_close(f);
}

/* A worker's single addition is dropped at once, counted once, and a later full set that does
 * not list it removes it. */
static void test_add_one(void **state)
{
    (void)state;
    struct synfilter *f = open_or_skip(2);
    uint16_t port;
    int lfd = listen_loopback(&port);
    assert_int_equal(synfilter_attach(f, lfd, AF_INET), 0);
    uint32_t a[] = {src(700)}, b[] = {src(702)};
    assert_int_equal(add_v4(f, a[0]), 0);
    assert_int_equal(add_v4(f, a[0]), 0);
    assert_int_equal(synfilter_size(f), 1);
    check(lfd, port, a, 1, 2, true);
    assert_int_equal(add_v4(f, b[0]), 0);
    assert_int_equal(add_v4(f, src(704)), -ENOSPC); /* max 2 */
    check(lfd, port, b, 1, 2, true);
    assert_int_equal(set_v4(f, b, 1), 0); /* a lapses, b stays */
    assert_int_equal(synfilter_size(f), 1);
    check(lfd, port, a, 1, 2, false);
    check(lfd, port, b, 1, 2, true);
    close(lfd);
    synfilter_close(f);
}

/* Whether a connection from ::1 to the IPv6 listener on port completes within 300 ms. */
static bool connects_v6(uint16_t port)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    struct sockaddr_in6 d = {
        .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT, .sin6_port = htons(port)};
    int rc = connect(fd, (struct sockaddr *)&d, sizeof(d));
    assert_true(rc == 0 || errno == EINPROGRESS);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int soerr = -1;
    socklen_t len = sizeof(soerr);
    bool ok = poll(&p, 1, 300) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0 &&
              soerr == 0;
    close(fd);
    return ok;
}

/* IPv6 has its own map and program, keyed by /64. Loopback has one IPv6 address (::1), in the
 * /64 ::/64. The checks: other /64s listed (1::/64, ffff::/64, and the IPv4 address with the
 * same last bytes, 0.0.0.1) do not drop ::1; adding ::2 bans its /64, which drops ::1; the set
 * holds that /64 as :: and refuses an IPv6 entry that is not a /64; lifting it lets ::1 in. */
static void test_ipv6(void **state)
{
    (void)state;
    struct synfilter *f = open_or_skip(8);
    int lfd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    int one = 1;
    setsockopt(lfd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
    if (bind(lfd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        print_message("skipped: no IPv6 loopback here\n");
        close(lfd);
        synfilter_close(f);
        skip();
    }
    assert_int_equal(listen(lfd, 64), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &len), 0);
    uint16_t port = ntohs(a.sin6_port);
    assert_int_equal(synfilter_attach(f, lfd, AF_INET6), 0);
    uint8_t ip[16] = {0};
    ip[1] = 1; /* 1:: */
    struct synfilter_addr others[3] = {synfilter_addr_bytes(ip, 16), synfilter_addr_v4(1)};
    ip[0] = ip[1] = 0xff; /* ffff:: */
    others[2] = synfilter_addr_bytes(ip, 16);
    qsort(others, 3, sizeof(others[0]), (int (*)(const void *, const void *))synfilter_addr_cmp);
    assert_int_equal(synfilter_set(f, others, 3), 0);
    assert_true(connects_v6(port));
    memset(ip, 0, sizeof(ip));
    ip[15] = 2; /* ::2, a neighbour of ::1 in its /64 */
    struct synfilter_addr two = synfilter_addr_bytes(ip, 16);
    assert_int_equal(synfilter_add(f, &two), 0);
    assert_false(connects_v6(port));
    assert_int_equal(synfilter_size(f), 4);
    /* In a set, an IPv6 entry must be a /64 (its low half zero): ::2 is refused, :: taken. */
    struct synfilter_addr prefix = synfilter_addr_prefix(two);
    assert_int_equal(synfilter_set(f, &two, 1), -EINVAL);
    assert_int_equal(synfilter_set(f, &prefix, 1), 0);
    assert_false(connects_v6(port));
    assert_int_equal(synfilter_set(f, NULL, 0), 0);
    assert_true(connects_v6(port));
    close(lfd);
    synfilter_close(f);
}

static void test_rejects_bad_sets(void **state)
{
    (void)state;
    char err[256];
    assert_null(synfilter_open(0, err, sizeof(err)));
    assert_null(synfilter_open(SYNFILTER_MAX_ADDRS + 1, err, sizeof(err)));
    assert_non_null(strstr(err, "out of range"));
    struct synfilter *f = open_or_skip(2);
    uint32_t three[] = {src(1), src(2), src(3)};
    assert_int_equal(set_v4(f, three, 3), -EINVAL);
    uint32_t unsorted[] = {src(5), src(3)};
    assert_int_equal(set_v4(f, unsorted, 2), -EINVAL);
    uint32_t dup[] = {src(3), src(3)};
    assert_int_equal(set_v4(f, dup, 2), -EINVAL);
    assert_int_equal(synfilter_size(f), 0);
    assert_true(synfilter_attach(f, -1, AF_INET) < 0); /* not a socket: the error comes back */
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(synfilter_attach(f, u, AF_UNIX), -EAFNOSUPPORT);
    close(u);
    synfilter_close(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_address),
        cmocka_unit_test(test_some_addresses),
        cmocka_unit_test(test_adjacent_addresses),
        cmocka_unit_test(test_full_map),
        cmocka_unit_test(test_accepted_sockets_inherit),
        cmocka_unit_test(test_add_one),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_rejects_bad_sets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
