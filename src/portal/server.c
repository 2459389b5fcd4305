/* server.c -- the portal's HTTPS listener: libuv accepts and reads, OpenSSL (memory BIOs, TLS
 * 1.2+) decrypts, http_parser parses (http.c), routes.c answers; one request per connection,
 * every connection bounded in count, bytes and time. Privileges dropped and seccomp installed
 * through net/sandbox.h, as serve does. */
#include "net/sandbox.h"
#include "portal/internal.h"
#include "util/err.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <uv.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define READ_CAP (PORTAL_HEAD_MAX + PORTAL_BODY_MAX)

struct portal_server;

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_shutdown_t shutdown;
    struct portal_server *srv;
    struct conn *next, *prev;
    SSL *ssl;
    BIO *rbio, *wbio; /* network side: rbio takes ciphertext in, wbio holds ciphertext out */
    struct portal_peer peer;
    char *in; /* decrypted request bytes */
    size_t in_len;
    unsigned open_handles;
    unsigned writes_pending;
    bool answered, done, closing;
};

struct portal_server {
    const struct portal_config *cfg;
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sigterm, sigint, sighup;
    SSL_CTX *ctx;
    struct conn *conns;
    unsigned nconns;
    bool stopping;
    struct portal_state state;
};

static void logf_(struct portal_server *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(struct portal_server *s, const char *fmt, ...)
{
    if (s->cfg->log == NULL) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    fputs("sinkd portal: ", s->cfg->log);
    vfprintf(s->cfg->log, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    fputc('\n', s->cfg->log);
    fflush(s->cfg->log);
    va_end(ap);
}

/* ---- TLS context -------------------------------------------------------------------------- */

/* Client certificates are pinned by fingerprint in the authorities file, not chained to a CA:
 * any certificate is accepted here and the fingerprint decides (TLS itself proves the client
 * holds its key). */
static int accept_any_cert(int ok, X509_STORE_CTX *x)
{
    (void)ok;
    (void)x;
    return 1;
}

static bool any_cert_authority(const struct portal_authorities *as)
{
    for (size_t i = 0; i < as->n; i++) {
        if (as->a[i]->has_cert) {
            return true;
        }
    }
    return false;
}

static int tls_context(struct portal_server *s, char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        return err_set(err, errlen, "TLS: cannot make a context");
    }
    /* TLS 1.2 and 1.3 only; no renegotiation (a client could make the server do work without
     * sending a request); no compression (CRIME); session tickets off (no key to rotate). */
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_NO_TICKET |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL") != 1) {
        SSL_CTX_free(ctx);
        return err_set(err, errlen, "TLS: cipher list refused");
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, s->cfg->tls_cert) != 1) {
        SSL_CTX_free(ctx);
        return err_set(err, errlen, "--tls-cert %s: not a PEM certificate chain OpenSSL can read",
                       s->cfg->tls_cert);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, s->cfg->tls_key, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(ctx);
        return err_set(err, errlen, "--tls-key %s: not a PEM private key OpenSSL can read",
                       s->cfg->tls_key);
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return err_set(err, errlen, "--tls-key %s does not match --tls-cert %s", s->cfg->tls_key,
                       s->cfg->tls_cert);
    }
    if (any_cert_authority(s->state.authorities)) {
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, accept_any_cert);
    }
    ERR_clear_error();
    s->ctx = ctx;
    return 0;
}

/* ---- connections -------------------------------------------------------------------------- */

static void conn_free_after_close(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->open_handles == 0) {
        SSL_free(c->ssl); /* frees both BIOs */
        free(c->in);
        free(c);
    }
}

static void conn_close(struct conn *c, bool reset)
{
    if (c->closing) {
        return;
    }
    c->closing = true;
    struct portal_server *s = c->srv;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    s->nconns--;
    if (reset) {
        uv_tcp_close_reset(&c->tcp, conn_free_after_close);
    } else {
        uv_close((uv_handle_t *)&c->tcp, conn_free_after_close);
    }
    uv_close((uv_handle_t *)&c->timer, conn_free_after_close);
}

struct write_req {
    uv_write_t w;
    struct conn *c;
    char data[];
};

#define LINGER_MS 1000

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data, false);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    if (c->closing) {
        return;
    }
    if (status != 0) {
        conn_close(c, true);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, LINGER_MS, 0);
}

/* Once the answer is out: send FIN and keep reading (and dropping) what the client still sends
 * for a moment before closing. Closing with unread bytes makes the kernel answer with a reset,
 * which can destroy an answer (a 413 to a body still on its way) before the client reads it. */
static void linger(struct conn *c)
{
    c->shutdown.data = c;
    if (uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c, false);
    }
}

static void on_written(uv_write_t *w, int status)
{
    struct write_req *wr = (struct write_req *)w;
    struct conn *c = wr->c;
    free(wr);
    c->writes_pending--;
    if (c->closing) {
        return;
    }
    if (status != 0) {
        conn_close(c, true);
        return;
    }
    if (c->done && c->writes_pending == 0) {
        linger(c);
    }
}

/* Sends whatever ciphertext OpenSSL has produced. */
static int flush_tls(struct conn *c)
{
    size_t pending = BIO_ctrl_pending(c->wbio);
    if (pending == 0 || c->closing) {
        return 0;
    }
    struct write_req *wr = malloc(sizeof(*wr) + pending);
    if (wr == NULL) {
        return -1;
    }
    int n = BIO_read(c->wbio, wr->data, (int)pending);
    if (n <= 0) {
        free(wr);
        return -1;
    }
    wr->c = c;
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)n);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
        free(wr);
        return -1;
    }
    c->writes_pending++;
    return 0;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "200 OK";
    case 201:
        return "201 Created";
    case 204:
        return "204 No Content";
    case 400:
        return "400 Bad Request";
    case 401:
        return "401 Unauthorized";
    case 403:
        return "403 Forbidden";
    case 404:
        return "404 Not Found";
    case 405:
        return "405 Method Not Allowed";
    case 409:
        return "409 Conflict";
    case 413:
        return "413 Content Too Large";
    case 429:
        return "429 Too Many Requests";
    case 503:
        return "503 Service Unavailable";
    default:
        return "500 Internal Server Error";
    }
}

/* Writes the answer through TLS and ends the connection once it is sent. Every answer carries
 * the same protective headers: nothing loads from elsewhere (CSP), nothing is cached, the page
 * cannot be framed, and browsers are told to use HTTPS only. */
static void send_answer(struct conn *c, struct portal_answer *a, bool head_only)
{
    char head[2048];
    int n = snprintf(
        head, sizeof(head),
        "HTTP/1.1 %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
        "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
        "Content-Security-Policy: default-src 'none'; script-src 'self'; style-src 'self'; "
        "img-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'\r\n"
        "X-Frame-Options: DENY\r\nReferrer-Policy: no-referrer\r\n"
        "Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Resource-Policy: same-origin\r\n"
        "Strict-Transport-Security: max-age=31536000\r\nConnection: close\r\n\r\n",
        status_text(a->status), a->ctype != NULL ? a->ctype : "text/plain; charset=utf-8", a->len,
        a->headers);
    c->answered = true;
    bool ok = n > 0 && (size_t)n < sizeof(head) && SSL_write(c->ssl, head, n) == n;
    if (ok && !head_only && a->len > 0) {
        ok = SSL_write(c->ssl, a->body, (int)a->len) == (int)a->len;
    }
    if (!a->body_static) {
        free(a->body);
    }
    a->body = NULL;
    if (ok) {
        SSL_shutdown(c->ssl); /* close_notify: the client knows the answer is whole */
    }
    c->done = true;
    if (!ok || flush_tls(c) != 0) {
        conn_close(c, true);
    } else if (c->writes_pending == 0) {
        linger(c);
    }
}

static void answer_problem(struct conn *c, int status, const char *why)
{
    struct portal_answer a = {0};
    portal_answer_error(&a, status, why);
    send_answer(c, &a, false);
}

static void peer_certificate(struct conn *c)
{
    X509 *x = SSL_get1_peer_certificate(c->ssl);
    if (x == NULL) {
        return;
    }
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    if (len > 0 &&
        EVP_Digest(der, (size_t)len, c->peer.cert_sha256, NULL, EVP_sha256(), NULL) == 1) {
        c->peer.has_cert = true;
    }
    OPENSSL_free(der);
    X509_free(x);
}

/* Runs the TLS state machine over what has arrived, then parses and answers. */
static void pump(struct conn *c)
{
    if (!SSL_is_init_finished(c->ssl)) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (flush_tls(c) != 0 || (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)) {
                ERR_clear_error();
                conn_close(c, true);
            }
            return;
        }
        peer_certificate(c);
    }
    while (!c->answered && !c->closing) {
        if (c->in_len == READ_CAP) {
            logf_(c->srv, "refused request: larger than %d bytes", READ_CAP);
            answer_problem(c, 413, "request too large");
            return;
        }
        int n = SSL_read(c->ssl, c->in + c->in_len, (int)(READ_CAP - c->in_len));
        if (n <= 0) {
            int e = SSL_get_error(c->ssl, n);
            if (e == SSL_ERROR_WANT_READ) {
                break;
            }
            ERR_clear_error();
            conn_close(c, true); /* closed or broken before a whole request */
            return;
        }
        c->in_len += (size_t)n;
        struct portal_request *req = malloc(sizeof(*req));
        if (req == NULL) {
            conn_close(c, true);
            return;
        }
        char why[96];
        enum portal_parse_result pr = portal_http_parse(c->in, c->in_len, req, why, sizeof(why));
        if (pr == PORTAL_PARSE_DONE) {
            struct portal_answer a = {0};
            portal_route(&c->srv->state, req, &c->peer, &a);
            send_answer(c, &a, req->method == PORTAL_HEAD_METHOD);
        } else if (pr == PORTAL_PARSE_BAD || pr == PORTAL_PARSE_TOO_LARGE) {
            char ip[NET_ADDR_STRLEN];
            net_addr_format_ip(&c->peer.ip, ip);
            logf_(c->srv, "refused request from %s: %s", ip, why[0] ? why : "bad request");
            c->srv->state.refused++;
            answer_problem(c, pr == PORTAL_PARSE_BAD ? 400 : 413, why[0] ? why : "bad request");
        }
        free(req);
    }
    if (!c->closing && !c->done && flush_tls(c) != 0) {
        conn_close(c, true);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char scratch[16384]; /* one loop thread: ciphertext goes straight into the BIO */
    *buf = uv_buf_init(scratch, sizeof(scratch));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    if (n < 0) {
        conn_close(c, !c->answered); /* EOF after the answer is the normal end */
        return;
    }
    if (n == 0 || c->answered) {
        return; /* after the answer: dropped (see linger) */
    }
    if (BIO_write(c->rbio, buf->base, (int)n) != (int)n) {
        conn_close(c, true);
        return;
    }
    pump(c);
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data, true);
}

static unsigned conns_from(struct portal_server *s, const struct net_addr *ip)
{
    unsigned n = 0;
    for (struct conn *c = s->conns; c != NULL; c = c->next) {
        n += net_addr_equal_ip(&c->peer.ip, ip);
    }
    return n;
}

static void drop_connection(struct portal_server *s, uv_stream_t *server)
{
    uv_tcp_t *drop = malloc(sizeof(*drop));
    if (drop != NULL && uv_tcp_init(s->loop, drop) == 0) {
        if (uv_accept(server, (uv_stream_t *)drop) == 0) {
            uv_tcp_close_reset(drop, (uv_close_cb)free);
        } else {
            uv_close((uv_handle_t *)drop, (uv_close_cb)free);
        }
    } else {
        free(drop);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct portal_server *s = server->data;
    if (status < 0) {
        return;
    }
    struct conn *c = s->nconns < PORTAL_MAX_CONNS && !s->stopping ? calloc(1, sizeof(*c)) : NULL;
    if (c == NULL) {
        drop_connection(s, server); /* over the bound: taken and reset at once */
        return;
    }
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->open_handles = 2;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->nconns++;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        conn_close(c, false);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) != 0 ||
        net_addr_from_sockaddr(&c->peer.ip, (struct sockaddr *)&ss) != 0 ||
        conns_from(s, &c->peer.ip) > PORTAL_MAX_CONNS_PER_IP) {
        conn_close(c, true);
        return;
    }
    c->in = malloc(READ_CAP);
    c->ssl = SSL_new(s->ctx);
    c->rbio = BIO_new(BIO_s_mem());
    c->wbio = BIO_new(BIO_s_mem());
    if (c->in == NULL || c->ssl == NULL || c->rbio == NULL || c->wbio == NULL) {
        BIO_free(c->rbio);
        BIO_free(c->wbio);
        conn_close(c, true);
        return;
    }
    SSL_set_bio(c->ssl, c->rbio, c->wbio);
    SSL_set_accept_state(c->ssl);
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0) {
        conn_close(c, true);
        return;
    }
    uv_timer_start(&c->timer, on_timeout, PORTAL_TIMEOUT_MS, 0);
}

/* ---- signals ------------------------------------------------------------------------------ */

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct portal_server *s = h->data;
    logf_(s, "signal %d: stopping", signum);
    s->stopping = true;
    uv_close((uv_handle_t *)&s->listener, NULL);
    while (s->conns != NULL) {
        conn_close(s->conns, true);
    }
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
    uv_close((uv_handle_t *)&s->sighup, NULL);
}

static void on_hup(uv_signal_t *h, int signum)
{
    (void)signum;
    struct portal_server *s = h->data;
    struct portal_authorities *next = NULL;
    char err[512];
    if (portal_authorities_load(s->cfg->authorities_path, &next, err, sizeof(err)) != 0) {
        logf_(s, "SIGHUP: authorities NOT reloaded, the old file stays in force: %s", err);
        return;
    }
    if (any_cert_authority(next) != any_cert_authority(s->state.authorities)) {
        /* Whether clients are asked for a certificate is fixed with the TLS context. */
        logf_(s, "SIGHUP: authorities reloaded; restart the portal to %s client certificates",
              any_cert_authority(next) ? "ask for" : "stop asking for");
    }
    portal_authorities_free(s->state.authorities);
    s->state.authorities = next;
    portal_sessions_prune(s->state.sessions, next);
    logf_(s, "SIGHUP: authorities reloaded (%zu)", next->n);
}

/* ---- start-up ----------------------------------------------------------------------------- */

static int bind_listener(const struct net_addr *addr, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(addr, ip);
    net_addr_to_sockaddr(addr, &ss, &sslen);
    int fd = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return err_set(err, errlen, "listen %s:%u: socket: %s", ip, addr->port, strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (addr->family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0 || listen(fd, 128) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, "listen %s:%u: %s", ip, addr->port, strerror(e));
    }
    return fd;
}

int portal_run(const struct portal_config *cfg, char *err, size_t errlen)
{
    struct portal_server *s = calloc(1, sizeof(*s));
    uv_loop_t *loop = malloc(sizeof(*loop));
    if (s == NULL || loop == NULL) {
        free(s);
        free(loop);
        return err_set(err, errlen, "out of memory");
    }
    s->cfg = cfg;
    s->state.cfg = cfg;
    s->state.sessions = calloc(1, sizeof(*s->state.sessions));
    int rc = s->state.sessions == NULL ? err_set(err, errlen, "out of memory") : 0;
    int fd = -1;
    if (rc == 0) {
        rc = portal_authorities_load(cfg->authorities_path, &s->state.authorities, err, errlen);
    }
    if (rc == 0) {
        rc = sandbox_check_user(cfg->user, cfg->allow_root, err, errlen);
    }
    /* The key file may be readable by root only: load it before dropping privileges. */
    if (rc == 0) {
        rc = tls_context(s, err, errlen);
    }
    if (rc == 0 && (fd = bind_listener(&cfg->listen, err, errlen)) < 0) {
        rc = -1;
    }
    if (rc == 0) {
        rc = sandbox_drop_privileges(cfg->user, cfg->state_dir, err, errlen);
    }
    /* Opened before the sandbox: a PostgreSQL registry's connection cannot be made after it. */
    if (rc == 0) {
        rc = registry_open_log(&s->state.reg, cfg->registry, cfg->state_dir, err, errlen);
    }
    if (rc == 0) {
        rc = portal_store_open(&s->state.store, cfg->state_dir, err, errlen);
    }
    if (rc == 0 && uv_loop_init(loop) != 0) {
        rc = err_set(err, errlen, "event loop");
    }
    bool loop_up = rc == 0;
    if (rc == 0) {
        s->loop = loop;
        uv_tcp_init(loop, &s->listener);
        s->listener.data = s;
        if (uv_tcp_open(&s->listener, fd) != 0 ||
            uv_listen((uv_stream_t *)&s->listener, 128, on_connection) != 0) {
            rc = err_set(err, errlen, "listener");
        }
        fd = -1;
        uv_signal_init(loop, &s->sigterm);
        uv_signal_init(loop, &s->sigint);
        uv_signal_init(loop, &s->sighup);
        s->sigterm.data = s->sigint.data = s->sighup.data = s;
        uv_signal_start(&s->sigterm, on_stop_signal, SIGTERM);
        uv_signal_start(&s->sigint, on_stop_signal, SIGINT);
        uv_signal_start(&s->sighup, on_hup, SIGHUP);
    }
    if (rc == 0 && cfg->seccomp) {
        if (!sandbox_seccomp_supported()) {
            rc = err_set(err, errlen,
                         "seccomp is not available on this kernel; --seccomp off to run without");
        } else {
            rc = sandbox_install_seccomp(err, errlen);
        }
    }
    if (rc == 0) {
        char ip[NET_ADDR_STRLEN];
        net_addr_format_ip(&cfg->listen, ip);
        logf_(s, "listening on https://%s%s%s:%u (%zu authorities, registry %s%s)",
              cfg->listen.family == AF_INET6 ? "[" : "", ip,
              cfg->listen.family == AF_INET6 ? "]" : "", cfg->listen.port, s->state.authorities->n,
              cfg->registry != NULL ? registry_target_name(cfg->registry) : "registry.db",
              cfg->seccomp ? ", seccomp on" : "");
        if (cfg->ready_file != NULL) {
            FILE *f = fopen(cfg->ready_file, "w");
            if (f != NULL) {
                fclose(f);
            }
        }
        uv_run(loop, UV_RUN_DEFAULT);
        logf_(s, "stopped: %llu answered, %llu refused", (unsigned long long)s->state.answered,
              (unsigned long long)s->state.refused);
    } else if (loop_up) {
        on_stop_signal(&s->sigterm, 0);
        uv_run(loop, UV_RUN_DEFAULT);
    }
    if (loop_up) {
        uv_loop_close(loop);
    }
    if (fd >= 0) {
        close(fd);
    }
    SSL_CTX_free(s->ctx);
    registry_close(s->state.reg);
    portal_store_close(s->state.store);
    portal_authorities_free(s->state.authorities);
    free(s->state.sessions);
    free(s);
    free(loop);
    return rc;
}
