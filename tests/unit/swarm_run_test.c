/* swarm_run_test.c -- swarm_run() against a tiny in-test PlugX server on 127.0.0.1 that speaks raw
 * TCP, the HTTP body form and the HTTP header form: counts, PROXY v2 source addresses, uninstall
 * obeyed or ignored, machine information only when asked (or volunteered), header-form requests
 * as public IDS rules describe them, unknown-variant bots, unreachable target. */
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
    bool passive;              /* never ask for machine information (a passive sinkhole) */
    int checkin_cipher;        /* family of packets answering a header-form check-in */
    /* results, read after join */
    unsigned packets, hellos, infos, proxy_headers, proxy_public, bad;
    uint32_t sources[64]; /* distinct public source addresses seen in PROXY headers */
    unsigned nsources;
    unsigned undecoded;              /* connections whose first bytes were no PlugX */
    unsigned http_body, http_header; /* requests of each form */
    unsigned header_checkins, header_with_body, header_bad;
    unsigned names_seen[3]; /* X-..., HHV, numbered */
    unsigned uri_hex24, uri_update;
};

struct peer {
    int fd;
    bool proxied, http;
    struct plugx_conn pc;
    unsigned requests; /* HTTP requests on this connection */
    size_t len;
    uint8_t buf[BUF];
};

/* The server's packet: raw, or inside an HTTP response (empty body when command is 0). */
static void reply(struct server *s, struct peer *p, uint16_t command)
{
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    uint8_t out[256];
    size_t n = 0;
    ptrdiff_t plen = 0;
    /* a header-form check-in carries no packet, so no family: answer it in the configured one */
    int cipher = p->pc.cipher >= 0 ? p->pc.cipher : s->checkin_cipher;
    if (command != 0) {
        plen = plugx_encode(&cfg, (enum plugx_cipher)cipher, 0x1234567u + s->packets, command, 0,
                            NULL, 0, false, out + 128, sizeof(out) - 128);
        if (plen <= 0) {
            s->bad++;
            return;
        }
    }
    if (p->http) {
        n = (size_t)snprintf((char *)out, 128, "HTTP/1.1 200 OK\r\nContent-Length: %td\r\n\r\n",
                             plen);
    }
    memmove(out + n, out + 128, (size_t)plen);
    n += (size_t)plen;
    if (send(p->fd, out, n, MSG_NOSIGNAL) != (ssize_t)n) {
        s->bad++;
    }
}

/* Decodes the packets in buf[0, len) and answers each; returns bytes used or -1. */
static ptrdiff_t serve_packets(struct server *s, struct peer *p, const uint8_t *buf, size_t len)
{
    static uint8_t scratch[PROTO_SCRATCH_SIZE];
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    size_t off = 0;
    for (;;) {
        struct plugx_packet pkt;
        ptrdiff_t r = plugx_decode(&cfg, &p->pc, buf + off, len - off, &pkt, scratch,
                                   sizeof(scratch), NULL, 0);
        if (r == 0) {
            break;
        }
        if (r < 0) {
            if (p->pc.packets == 0) {
                s->undecoded++; /* an unknown variant: not an error of the swarm */
            } else {
                s->bad++;
            }
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
            reply(s, p, s->passive ? PLUGX_CMD_POLL : PLUGX_CMD_MACHINE_INFO);
        } else {
            reply(s, p, PLUGX_CMD_POLL);
        }
    }
    return (ptrdiff_t)off;
}

/* Value of the header line that starts with name (case as sent), or -1. */
static long header_value(const char *head, const char *name)
{
    char key[32];
    snprintf(key, sizeof(key), "\r\n%s: ", name);
    const char *v = strstr(head, key);
    return v == NULL ? -1 : strtol(v + strlen(key), NULL, 10);
}

/* Checks a header-form request head against the form public IDS rules describe (docs/plugx.md
 * "HTTP header form"): URI, Accept, no Referer, four names of one style in order, the values. */
static void check_header_form(struct server *s, struct peer *p, const char *head, long clen)
{
    static const char *const x[4] = {"X-Session", "X-Status", "X-Size", "X-Sn"};
    const char *names[4];
    char numbered[4][16];
    int style = -1;
    if (strstr(head, "\r\nX-Session: ") != NULL) {
        style = 0;
        memcpy(names, x, sizeof(names));
    } else if (strstr(head, "\r\nHHV1: ") != NULL) {
        style = 1;
        for (int i = 0; i < 4; i++) {
            snprintf(numbered[i], sizeof(numbered[i]), "HHV%d", i + 1);
            names[i] = numbered[i];
        }
    } else {
        /* "<stem><d>: " right after the Accept line */
        const char *l = strstr(head, "Accept: */*\r\n");
        if (l != NULL && sscanf(l + 13, "%4[A-Z]", numbered[0]) == 1 && strlen(numbered[0]) == 4) {
            int d0 = l[17] - '0';
            char stem[8];
            memcpy(stem, numbered[0], 5);
            style = 2;
            for (int i = 0; i < 4; i++) {
                snprintf(numbered[i], sizeof(numbered[i]), "%s%d", stem, d0 + i);
                names[i] = numbered[i];
            }
            if (d0 != 0 && d0 != 1) {
                s->header_bad++;
            }
        }
    }
    if (style < 0) {
        s->header_bad++;
        return;
    }
    s->names_seen[style]++;
    long v[4];
    const char *at[4];
    for (int i = 0; i < 4; i++) {
        char key[32];
        snprintf(key, sizeof(key), "\r\n%s: ", names[i]);
        at[i] = strstr(head, key);
        v[i] = header_value(head, names[i]);
    }
    bool order = at[0] && at[1] && at[2] && at[3] && at[0] < at[1] && at[1] < at[2] &&
                 at[2] < at[3] && strstr(head, "Accept: */*\r\n") < at[0];
    const char *cl = strstr(head, "\r\nContent-Length: ");
    if (!order || cl == NULL || cl < at[3] || strstr(head, "Referer") != NULL) {
        s->header_bad++;
    }
    /* first request of a connection: 0, 0, 61456, 1; then the fourth counts (sequence) */
    if (v[0] != 0 || v[1] != 0 || v[2] != 61456 || v[3] != (long)p->requests) {
        s->header_bad++;
    }
    unsigned hex = 0;
    if (sscanf(head, "POST /update?id=%8x HTTP/1.1", &hex) == 1 && head[24] == ' ') {
        s->uri_update++;
    } else if (strspn(head + 6, "0123456789ABCDEF") == 24 && head[30] == ' ') {
        s->uri_hex24++;
    } else {
        s->header_bad++;
    }
    if (clen == 0) {
        s->header_checkins++;
    } else {
        s->header_with_body++;
    }
}

/* HTTP requests: the body form (a packet in the body) and the header form (an empty-body
 * check-in, or later a packet in the body); returns bytes used or -1. */
static ptrdiff_t serve_http(struct server *s, struct peer *p, const uint8_t *buf, size_t len)
{
    size_t off = 0;
    while (off < len) {
        const char *q = (const char *)buf + off;
        const char *end = NULL;
        for (size_t i = 0; i + 4 <= len - off && end == NULL; i++) {
            end = memcmp(q + i, "\r\n\r\n", 4) == 0 ? q + i : NULL;
        }
        if (end == NULL) {
            break;
        }
        size_t head_len = (size_t)(end - q) + 4;
        char head[2048];
        if (head_len >= sizeof(head) || strncmp(q, "POST /", 6) != 0) {
            s->bad++;
            return -1;
        }
        memcpy(head, q, head_len);
        head[head_len] = '\0';
        long clen = header_value(head, "Content-Length");
        if (clen < 0 || (size_t)clen > len - off - head_len) {
            break; /* the body has not all arrived */
        }
        p->requests++;
        bool header_form = strstr(head, "Accept: */*\r\n") != NULL;
        if (header_form) {
            s->http_header++;
            check_header_form(s, p, head, clen);
        } else {
            s->http_body++;
        }
        const uint8_t *body = buf + off + head_len;
        if (clen == 0) {
            /* a check-in: the first of a connection is a hello, asked who it is unless passive */
            s->packets++;
            if (p->requests == 1) {
                s->hellos++;
            }
            reply(s, p, p->requests == 1 && !s->passive ? PLUGX_CMD_MACHINE_INFO : 0);
        } else if (serve_packets(s, p, body, (size_t)clen) != clen) {
            return -1;
        }
        off += head_len + (size_t)clen;
    }
    return (ptrdiff_t)off;
}

/* Handles what is buffered; returns -1 to drop the peer. */
static int serve_peer(struct server *s, struct peer *p)
{
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
            uint32_t a = (uint32_t)h.src.ip[0] << 24 | (uint32_t)h.src.ip[1] << 16 |
                         (uint32_t)h.src.ip[2] << 8 | h.src.ip[3];
            unsigned k = 0;
            while (k < s->nsources && s->sources[k] != a) {
                k++;
            }
            if (k == s->nsources && k < 64) {
                s->sources[s->nsources++] = a;
            }
        }
        off = (size_t)r;
        p->http = p->len - off >= 5 && memcmp(p->buf + off, "POST ", 5) == 0;
    }
    ptrdiff_t used = p->http ? serve_http(s, p, p->buf + off, p->len - off)
                             : serve_packets(s, p, p->buf + off, p->len - off);
    if (used < 0) {
        return -1;
    }
    off += (size_t)used;
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

static void test_run_header_form(void **state)
{
    (void)state;
    struct tables t;
    tables_load(&t);
    struct server s = {.checkin_cipher = PLUGX_CIPHER_B};
    pthread_t th;
    server_start(&s, &th);
    struct swarm_options o;
    options(&o, s.port, 24);
    o.http_share = 1;
    o.http_form = SWARM_HTTP_FORM_HEADER;
    o.header_uri = SWARM_URI_MIX;
    o.cipher = PLUGX_CIPHER_B; /* the family the server answers check-ins in */
    struct swarm_summary sum;
    char err[256] = "";
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s, th);
    assert_int_equal(sum.bots_run, 24);
    assert_int_equal(sum.bots_by_kind[SWARM_KIND_HTTP_HEADER], 24);
    assert_int_equal(sum.err_connect + sum.err_reset + sum.err_timeout + sum.err_protocol, 0);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.header_bad, 0); /* names, order, values, URI, no Referer */
    assert_int_equal(s.http_body, 0);
    assert_int_equal(s.http_header, sum.contacts_sent);
    assert_int_equal(sum.contacts_by_kind[SWARM_KIND_HTTP_HEADER], sum.contacts_sent);
    /* the server asked on each connection's check-in: each answer went in a request body */
    assert_int_equal(sum.bots_asked, 24);
    assert_int_equal(sum.bots_answered, 24);
    assert_int_equal(s.header_with_body, s.infos);
    assert_int_equal(sum.info_sent, s.infos);
    assert_int_equal(sum.info_volunteered, 0);
    assert_int_equal(s.hellos, s.proxy_headers); /* one check-in opens every connection */
    assert_true(s.header_checkins > 3 * 24u);    /* check-ins and polls, several sessions */
    for (int k = 0; k < 3; k++) {
        assert_true(s.names_seen[k] > 0); /* X-..., HHV, numbered */
    }
    assert_true(s.uri_hex24 > 0 && s.uri_update > 0);
    swarm_summary_free(&sum);

    /* a server answering check-ins in a family the bots do not use is not understood */
    struct server s2 = {.checkin_cipher = PLUGX_CIPHER_A};
    server_start(&s2, &th);
    options(&o, s2.port, 6);
    o.http_share = 1;
    o.http_form = SWARM_HTTP_FORM_HEADER;
    o.cipher = PLUGX_CIPHER_C;
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s2, th);
    assert_true(sum.err_protocol >= 6);
    assert_int_equal(sum.bots_asked + sum.info_sent, 0);
    swarm_summary_free(&sum);
    swarm_countries_free(&t.c);
    swarm_ranges_free(&t.r);
}

static void test_run_header_answer_none(void **state)
{
    (void)state;
    struct tables t;
    tables_load(&t);
    struct server s = {0};
    pthread_t th;
    server_start(&s, &th);
    struct swarm_options o;
    options(&o, s.port, 10);
    o.http_share = 1;
    o.http_form = SWARM_HTTP_FORM_HEADER;
    o.header_answer = SWARM_ANSWER_NONE;
    o.header_values = SWARM_VALUES_FIRST; /* the server then sees 4th value 1 after the first */
    o.cipher = PLUGX_CIPHER_A;            /* the family the server answers check-ins in */
    struct swarm_summary sum;
    char err[256] = "";
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s, th);
    assert_int_equal(sum.bots_asked, 10);
    assert_int_equal(sum.info_sent + sum.bots_answered + s.header_with_body + s.infos, 0);
    assert_int_equal(sum.err_connect + sum.err_reset + sum.err_timeout + sum.err_protocol, 0);
    /* every request after a connection's first is "wrong" for the sequence check: 4th value 1 */
    assert_int_equal(s.header_bad, s.http_header - s.hellos);
    assert_true(s.http_header > s.hellos);
    swarm_summary_free(&sum);
    swarm_countries_free(&t.c);
    swarm_ranges_free(&t.r);
}

static void test_run_passive_and_volunteer(void **state)
{
    (void)state;
    struct tables t;
    tables_load(&t);
    struct server s = {.passive = true};
    pthread_t th;
    server_start(&s, &th);
    struct swarm_options o;
    options(&o, s.port, 20);
    o.http_share = 0.5;
    o.http_form = SWARM_HTTP_FORM_MIX;
    o.gone_share = 1; /* every bot leaves after its first session that got a reply */
    struct swarm_summary sum;
    char err[256] = "";
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s, th);
    /* a passive sinkhole never asks, so nobody sends machine information */
    assert_int_equal(s.infos, 0);
    assert_int_equal(sum.info_sent + sum.info_requests + sum.bots_asked + sum.bots_answered, 0);
    assert_int_equal(sum.err_connect + sum.err_reset + sum.err_timeout + sum.err_protocol, 0);
    assert_int_equal(s.hellos, 20); /* gone after one session: "worked" is any reply now */
    assert_int_equal(sum.replies_received, sum.contacts_sent);
    assert_true(sum.bots_by_kind[SWARM_KIND_RAW] > 0 &&
                sum.bots_by_kind[SWARM_KIND_HTTP_BODY] > 0 &&
                sum.bots_by_kind[SWARM_KIND_HTTP_HEADER] > 0);
    swarm_summary_free(&sum);

    /* --volunteer-share 1: each session's hello is followed by machine information unasked */
    struct server s2 = {.passive = true};
    server_start(&s2, &th);
    options(&o, s2.port, 12);
    o.volunteer_share = 1;
    o.http_share = 0.5;
    o.http_form = SWARM_HTTP_FORM_MIX;
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s2, th);
    assert_int_equal(sum.bots_asked, 0);
    assert_int_equal(sum.bots_answered, 12);
    assert_int_equal(s2.infos, sum.info_sent);
    assert_int_equal(sum.info_volunteered, sum.info_sent);
    assert_true(s2.infos >= s2.hellos - 8); /* one per session, <= one unsent per slot */
    assert_int_equal(s2.bad + s2.header_bad, 0);
    swarm_summary_free(&sum);
    swarm_countries_free(&t.c);
    swarm_ranges_free(&t.r);
}

/* Bots draw their public address independently: with a country of two addresses they share
 * them, as bots behind a NAT do, and addresses_replied counts the addresses, not the bots. */
static void test_run_shared_addresses(void **state)
{
    (void)state;
    static const char countries[] = "NG,1\n";
    static const char ranges[] = "41.58.0.0,41.58.0.1,NG\n";
    struct tables t;
    char err[256] = "";
    FILE *in = fmemopen((void *)countries, strlen(countries), "r");
    assert_int_equal(swarm_countries_read(in, "c", &t.c, err, sizeof(err)), 0);
    fclose(in);
    in = fmemopen((void *)ranges, strlen(ranges), "r");
    assert_int_equal(swarm_ranges_read(in, "r", &t.r, err, sizeof(err)), 0);
    fclose(in);
    struct server s = {.passive = true};
    pthread_t th;
    server_start(&s, &th);
    struct swarm_options o;
    options(&o, s.port, 12);
    struct swarm_summary sum;
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s, th);
    assert_int_equal(sum.bots_replied, 12);
    assert_int_equal(s.nsources, 2); /* the server saw both addresses, and only those */
    assert_int_equal(sum.addresses_replied, s.nsources);
    assert_int_equal(sum.addresses_unknown, 0);
    swarm_summary_free(&sum);
    swarm_countries_free(&t.c);
    swarm_ranges_free(&t.r);
}

static void test_run_unknown_variant(void **state)
{
    (void)state;
    struct tables t;
    tables_load(&t);
    struct server s = {0};
    pthread_t th;
    server_start(&s, &th);
    struct swarm_options o;
    options(&o, s.port, 16);
    o.unknown_share = 1;
    o.http_share = 0.5;
    o.unknown_wait_ms = 200;
    struct swarm_summary sum;
    char err[256] = "";
    assert_int_equal(swarm_run(&o, &t.c, &t.r, &sum, err, sizeof(err)), 0);
    server_stop(&s, th);
    assert_int_equal(sum.bots_by_kind[SWARM_KIND_UNKNOWN], 16);
    assert_int_equal(sum.contacts_sent + sum.replies_received + sum.bots_answered, 0);
    assert_int_equal(sum.err_connect + sum.err_reset + sum.err_timeout + sum.err_protocol, 0);
    /* every unknown contact reached the server and none decoded; the server dropped each one,
     * and every bot came back at its beacon (several contacts per bot) */
    assert_int_equal(s.packets, 0);
    assert_int_equal(s.bad, 0);
    assert_int_equal(s.undecoded, sum.unknown_sent);
    assert_true(sum.unknown_sent > 2 * 16u);
    assert_true(sum.unknown_closed <= sum.unknown_sent);
    assert_true(sum.unknown_closed + sum.unknown_replied + sum.unknown_silent + 8 >=
                sum.unknown_sent);
    assert_true(s.http_body > 0); /* some through HTTP bodies */
    assert_int_equal(sum.addresses_replied, 0);
    assert_true(sum.addresses_unknown >= 1 && sum.addresses_unknown <= 16);
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
        cmocka_unit_test(test_run_header_form),
        cmocka_unit_test(test_run_header_answer_none),
        cmocka_unit_test(test_run_passive_and_volunteer),
        cmocka_unit_test(test_run_shared_addresses),
        cmocka_unit_test(test_run_unknown_variant),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
