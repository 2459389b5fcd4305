/* swarm_run_test.c -- swarm_run() against a tiny in-test PlugX server on 127.0.0.1: counts,
 * PROXY v2 source addresses, uninstall obeyed or ignored, unreachable target. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/proxy.h"
#include "swarm/swarm.h"

#define MAX_CONNS 64
#define BUF 8192

struct server {
    int listen_fd;
    uint16_t port;
    volatile int stop;
    bool uninstall_after_info; /* answer machine information with the uninstall command */
    /* results, read after join */
    unsigned packets, hellos, infos, proxy_headers, proxy_public, bad;
};

struct peer {
    int fd;
    bool proxied;
    struct plugx_conn pc;
    size_t len;
    uint8_t buf[BUF];
};

static void reply(struct server *s, struct peer *p, uint16_t command)
{
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    uint8_t out[64];
    ptrdiff_t n = plugx_encode(&cfg, (enum plugx_cipher)p->pc.cipher, 0x1234567u + s->packets,
                               command, 0, NULL, 0, false, out, sizeof(out));
    if (n <= 0 || send(p->fd, out, (size_t)n, MSG_NOSIGNAL) != n) {
        s->bad++;
    }
}

/* Handles what is buffered; returns -1 to drop the peer. */
static int serve_peer(struct server *s, struct peer *p)
{
    static uint8_t scratch[PROTO_SCRATCH_SIZE];
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    size_t off = 0;
    if (!p->proxied) {
        struct proxy_header h;
        ptrdiff_t r = proxy_parse(p->buf, p->len, &h, NULL, 0);
        if (r == 0) {
            return 0;
        }
        if (r < 0 || h.version != 2) {
            s->bad++;
            return -1;
        }
        p->proxied = true;
        s->proxy_headers++;
        if (h.src.family == AF_INET && h.src.ip[0] != 127 && h.dst.port == s->port) {
            s->proxy_public++;
        }
        off = (size_t)r;
    }
    for (;;) {
        struct plugx_packet pkt;
        ptrdiff_t r = plugx_decode(&cfg, &p->pc, p->buf + off, p->len - off, &pkt, scratch,
                                   sizeof(scratch), NULL, 0);
        if (r == 0) {
            break;
        }
        if (r < 0) {
            s->bad++;
            return -1;
        }
        off += (size_t)r;
        s->packets++;
        if (pkt.command == PLUGX_CMD_MACHINE_INFO) {
            struct bot_identity id;
            if (plugx_machine_info_parse(pkt.body, pkt.body_len, &id) != 0 || id.host[0] == 0) {
                s->bad++;
            }
            s->infos++;
            reply(s, p, s->uninstall_after_info ? PLUGX_CMD_UNINSTALL_DEFAULT : PLUGX_CMD_POLL);
        } else if (p->pc.packets == 1) {
            s->hellos++;
            reply(s, p, PLUGX_CMD_MACHINE_INFO); /* ask who it is */
        } else {
            reply(s, p, PLUGX_CMD_POLL);
        }
    }
    memmove(p->buf, p->buf + off, p->len - off);
    p->len -= off;
    return 0;
}

static void *server_main(void *arg)
{
    struct server *s = arg;
    struct peer *peers = calloc(MAX_CONNS, sizeof(*peers));
    struct pollfd fds[MAX_CONNS + 1];
    size_t n = 0;
    while (!s->stop) { /* bounded by the test's swarm duration plus the stop flag */
        fds[0] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
        for (size_t i = 0; i < n; i++) {
            fds[i + 1] = (struct pollfd){.fd = peers[i].fd, .events = POLLIN};
        }
        if (poll(fds, n + 1, 50) <= 0) {
            continue;
        }
        for (size_t i = n; i-- > 0;) {
            if (!(fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR))) {
                continue;
            }
            struct peer *p = &peers[i];
            ssize_t r = recv(p->fd, p->buf + p->len, BUF - p->len, 0);
            if (r <= 0 || serve_peer(s, (p->len += (size_t)r, p)) != 0) {
                close(p->fd);
                peers[i] = peers[--n];
            }
        }
        if ((fds[0].revents & POLLIN) && n < MAX_CONNS) {
            int fd = accept(s->listen_fd, NULL, NULL);
            if (fd >= 0) {
                memset(&peers[n], 0, sizeof(peers[n]));
                peers[n].fd = fd;
                peers[n].pc.cipher = -1;
                n++;
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        close(peers[i].fd);
    }
    free(peers);
    return NULL;
}

static void server_start(struct server *s, pthread_t *t)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    s->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s->listen_fd >= 0);
    assert_int_equal(bind(s->listen_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s->listen_fd, 128), 0);
    assert_int_equal(getsockname(s->listen_fd, (struct sockaddr *)&sin, &len), 0);
    s->port = ntohs(sin.sin_port);
    assert_int_equal(pthread_create(t, NULL, server_main, s), 0);
}

static void server_stop(struct server *s, pthread_t t)
{
    usleep(200000); /* let the server read what the swarm sent before it closed */
    s->stop = 1;
    pthread_join(t, NULL);
    close(s->listen_fd);
}

struct tables {
    struct swarm_countries c;
    struct swarm_ranges r;
};

static void tables_load(struct tables *t)
{
    static const char countries[] = "NG,3\nCN,1\n";
    static const char ranges[] = "41.58.0.0,41.58.255.255,NG\n1.0.1.0,1.0.3.255,CN\n";
    char err[256];
    FILE *in = fmemopen((void *)countries, strlen(countries), "r");
    assert_int_equal(swarm_countries_read(in, "c", &t->c, err, sizeof(err)), 0);
    fclose(in);
    in = fmemopen((void *)ranges, strlen(ranges), "r");
    assert_int_equal(swarm_ranges_read(in, "r", &t->r, err, sizeof(err)), 0);
    fclose(in);
}

static void options(struct swarm_options *o, uint16_t port, uint32_t bots)
{
    swarm_options_default(o);
    assert_int_equal(net_addr_parse_hostport("127.0.0.1:1", &o->target, NULL, 0), 0);
    o->target.port = port;
    o->bots = bots;
    o->concurrency = 8; /* below bots: the queue is exercised */
    o->duration_s = 2;
    o->heartbeat_ms = 50;
    o->gone_share = 0;
    o->cipher = SWARM_CIPHER_MIX;
}

static void test_run_counts(void **state)
{
    (void)state;
    struct tables t;
    tables_load(&t);
    struct server s = {0};
    pthread_t th;
    server_start(&s, &th);
    struct swarm_options o;
    options(&o, s.port, 20);
    struct swarm_summary sum;
    char err[256] = "";
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s, th);
    assert_int_equal(sum.bots, 20);
    assert_int_equal(sum.bots_run, 20);
    assert_int_equal(sum.bots_answered, 20);
    assert_int_equal(sum.connected_bots, 20);
    assert_int_equal(sum.err_connect + sum.err_reset + sum.err_timeout + sum.err_protocol, 0);
    assert_int_equal(s.bad, 0);
    /* every packet sent reached the server; every reply counted was one the server sent */
    assert_int_equal(s.packets, sum.contacts_sent);
    assert_true(sum.replies_received <= sum.contacts_sent);
    assert_true(sum.replies_received + 8 >= sum.contacts_sent); /* <= one in flight per slot */
    assert_true(sum.contacts_sent > 60); /* hello + info + heartbeats, several sessions */
    assert_int_equal(s.infos >= 20, 1);
    assert_int_equal(s.proxy_headers, s.hellos);
    assert_int_equal(s.proxy_public, s.proxy_headers); /* public source, our port as dest */
    assert_int_equal(sum.latency_us.count, sum.replies_received);
    assert_true(hist_percentile(&sum.latency_us, 0.5) > 0);
    /* heartbeats only: every packet after a session's hello and machine information */
    unsigned heartbeats = s.packets - s.hellos - s.infos;
    assert_true(heartbeats > 0);
    assert_true(sum.heartbeat_latency_us.count <= heartbeats);
    assert_true(sum.heartbeat_latency_us.count + 8 >= heartbeats); /* <= one in flight per slot */
    uint32_t per_country = 0;
    for (size_t i = 0; i < sum.countries; i++) {
        per_country += sum.per_country[i].bots;
    }
    assert_int_equal(per_country, 20);
    assert_int_equal(sum.uninstalled + sum.uninstall_ignored, 0);
    swarm_summary_free(&sum);
    swarm_countries_free(&t.c);
    swarm_ranges_free(&t.r);
}

static void test_run_uninstall(void **state)
{
    (void)state;
    struct tables t;
    tables_load(&t);
    struct server s = {.uninstall_after_info = true};
    pthread_t th;
    server_start(&s, &th);
    struct swarm_options o;
    options(&o, s.port, 40);
    o.uninstall_fail_share = 0.5;
    struct swarm_summary sum;
    char err[256] = "";
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s, th);
    assert_int_equal(sum.bots_answered, 40);
    assert_int_equal(sum.uninstalled + sum.uninstall_ignored, 40);
    assert_true(sum.uninstalled > 5 && sum.uninstall_ignored > 5);
    /* an obeying bot calls exactly once: hello + machine information; the ignoring ones keep
     * calling and are asked again on every connection */
    assert_true(s.infos > 40);
    assert_int_equal(sum.err_connect + sum.err_reset + sum.err_timeout + sum.err_protocol, 0);
    unsigned expected_min = 2 * sum.uninstalled + 2 * sum.uninstall_ignored;
    assert_true(s.packets >= expected_min);
    swarm_summary_free(&sum);

    /* with nobody ignoring it, every bot stops after its one session */
    struct server s2 = {.uninstall_after_info = true};
    server_start(&s2, &th);
    options(&o, s2.port, 30);
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s2, th);
    assert_int_equal(sum.uninstalled, 30);
    assert_int_equal(s2.hellos, 30);
    assert_int_equal(s2.packets, 60);
    assert_int_equal(sum.contacts_sent, 60);
    swarm_summary_free(&sum);
    swarm_countries_free(&t.c);
    swarm_ranges_free(&t.r);
}

static void test_run_unreachable(void **state)
{
    (void)state;
    struct tables t;
    tables_load(&t);
    /* a port nobody listens on: bind, read the port, close */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    struct swarm_options o;
    options(&o, ntohs(sin.sin_port), 5);
    o.duration_s = 1;
    struct swarm_summary sum;
    char err[256] = "";
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    assert_int_equal(sum.bots_run, 5);
    assert_int_equal(sum.connected_bots, 0);
    assert_true(sum.err_connect >= 5);
    assert_int_equal(sum.bots_answered, 0);
    swarm_summary_free(&sum);
    swarm_countries_free(&t.c);
    swarm_ranges_free(&t.r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_counts),
        cmocka_unit_test(test_run_uninstall),
        cmocka_unit_test(test_run_unreachable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
