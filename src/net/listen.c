/* listen.c -- listening sockets (one per worker and address, SO_REUSEPORT), accepting, trusted
 * proxies, and the kernel SYN filter that follows the ban list. */
#include "net/server_internal.h"

#include <sys/socket.h>
#include <sys/un.h>

static void on_accept_retry(uv_timer_t *t);
static void accept_one(struct worker *w, uv_stream_t *listener);

/* ---- accepting ---------------------------------------------------------------------------- */

static bool is_trusted(const struct server_config *cfg, const struct net_addr *peer)
{
    for (size_t i = 0; i < cfg->ntrusted; i++) {
        if (net_cidr_contains(&cfg->trusted[i], peer)) {
            return true;
        }
    }
    return false;
}

/* Leaves the connection libuv has accepted on `listener` for later. libuv stops watching a
 * listener whose callback did not call uv_accept() and resumes once it is called; without the
 * retry, one failed allocation would silence this worker's listener for good, while the kernel
 * kept routing it its share of new connections. */
static void defer_accept(struct worker *w, uv_stream_t *listener)
{
    size_t li = (size_t)((uv_tcp_t *)listener - w->listeners);
    w->deferred |= (uint16_t)(1u << li);
    if (!uv_is_active((uv_handle_t *)&w->accept_retry)) {
        uv_timer_start(&w->accept_retry, on_accept_retry, ACCEPT_RETRY_MS, 0);
    }
}

void on_connection(uv_stream_t *listener, int status)
{
    struct worker *w = listener->data;
    if (status < 0) {
        /* libuv already sheds the pending connection on EMFILE/ENFILE with its reserve
         * descriptor; say so once per second at most. */
        uint64_t now = uv_now(&w->loop);
        if (now - w->log_window_ms >= 1000) {
            w->log_window_ms = now;
            fprintf(w->srv->cfg->log, "sinkd: worker %u: accept: %s\n", w->id, uv_strerror(status));
        }
        return;
    }
    accept_one(w, listener);
}

static void on_accept_retry(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint16_t pending = w->deferred;
    w->deferred = 0;
    for (size_t li = 0; li < w->nlisteners && !w->stopping; li++) {
        if (pending & (1u << li)) {
            accept_one(w, (uv_stream_t *)&w->listeners[li]);
        }
    }
}

/* Takes the connection libuv accepted on `listener` (uv_accept re-arms the listener). */
static void accept_one(struct worker *w, uv_stream_t *listener)
{
    struct server *srv = w->srv;
    const struct server_config *cfg = srv->cfg;
    struct conn *c = conn_alloc(w);
    if (c == NULL) {
        defer_accept(w, listener); /* out of memory: try again in ACCEPT_RETRY_MS */
        return;
    }
    uv_tcp_init(&w->loop, &c->tcp);
    c->tcp.data = c;
    w->nconns++;
    atomic_fetch_add(&srv->nconns, 1);
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    struct sockaddr_storage ss;
    int sslen = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sslen) == 0) {
        net_addr_from_sockaddr(&c->peer, (struct sockaddr *)&ss);
    }
    c->listener = (uint8_t)((uv_tcp_t *)listener - w->listeners);
    w->stats.accepted++;
    if (w->stopping || atomic_load(&srv->nconns) > cfg->limits.max_connections) {
        w->stats.rejected++;
        if (!w->stopping) {
            bad_peer(c, "connection limit of %u reached", cfg->limits.max_connections);
        }
        /* No conn_refuse() needed: with deferred accept the peer's first bytes are queued and
         * unread, and closing such a socket makes the kernel send an RST itself (RFC 2525). */
        conn_close(c);
        return;
    }
    c->trusted = is_trusted(cfg, &c->peer);
    if (c->trusted) {
        c->phase = PHASE_PROXY;
    } else {
        if (!admit_address(c)) {
            conn_refuse_held(c);
            return;
        }
        c->phase = PHASE_DETECT;
    }
    srv->family->conn_init(srv->family_cfg, &c->proto, w->seed++ * 0x9E3779B97F4A7C15ull);
#ifndef __linux__
    /* Linux copies TCP_NODELAY from the listener at accept (open_listener sets it there), which
     * saves a setsockopt per connection; elsewhere set it here. */
    uv_tcp_nodelay(&c->tcp, 1);
#endif
    list_push(c, ON_HEADER_LIST, uv_now(&w->loop) + cfg->limits.header_timeout_ms);
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

void on_ban_tick(uv_timer_t *t)
{
    struct server *srv = t->data;
    size_t n = 0;
    if (!banlist_snapshot(srv->banlist, uv_now(t->loop), &srv->ban_generation, srv->ban_snapshot,
                          &n)) {
        return;
    }
    int rc = synfilter_set(srv->synfilter, srv->ban_snapshot, n);
    if (rc != 0) {
        srv->ban_generation = 0; /* retry the rest on the next tick */
        fprintf(srv->cfg->log, "sinkd: listener filter: updating its addresses: %s\n",
                strerror(-rc));
    }
    fprintf(srv->cfg->log,
            "sinkd: listeners now drop SYNs from %zu address%s refused %u+ times in a second "
            "(each ban lasts %u s)\n",
            synfilter_size(srv->synfilter), synfilter_size(srv->synfilter) == 1 ? "" : "es",
            srv->cfg->limits.syn_ban_after, srv->cfg->limits.syn_ban_s);
}

/* ---- listeners ---------------------------------------------------------------------------- */

/* Each worker gets its own socket per listen address (SO_REUSEPORT), so the kernel spreads
 * connections across workers without a shared accept lock. */
/* One server per listen address (issue 19 #4): every worker listens with SO_REUSEPORT, so a second
 * `serve` on the same address would start silently and take half the bots into another log.
 * Before binding, serve holds a lock named after the address (an abstract Unix socket: per network
 * namespace like the port itself, released by the kernel when the process ends, nothing on disk),
 * which names its holder's pid to whoever tries it next; and a probe bind without SO_REUSEPORT
 * finds any other listener on the address or an overlapping one (0.0.0.0 vs 127.0.0.1), sinkd
 * or not. A port of 0 (the kernel picks a free one) needs neither. Returns the lock's descriptor
 * (kept open while serving), -2 when none is needed, or -1 with err. */
int claim_listen_address(const struct net_addr *addr, char *err, size_t errlen)
{
    if (addr->port == 0) {
        return -2;
    }
    char where[80];
    format_endpoint(addr, where, sizeof(where));
    struct sockaddr_un un;
    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    int n = snprintf(un.sun_path + 1, sizeof(un.sun_path) - 1, "sinkd/listen/%s", where);
    socklen_t unlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n);
    int lock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lock < 0) {
        return err_set(err, errlen, "listen %s: lock socket: %s", where, strerror(errno));
    }
    if (bind(lock, (struct sockaddr *)&un, unlen) != 0 || listen(lock, 8) != 0) {
        int e = errno;
        close(lock);
        if (e != EADDRINUSE) {
            return err_set(err, errlen, "listen %s: lock: %s", where, strerror(e));
        }
        /* Ask the holder who it is: the kernel gives a connected peer's pid. */
        long pid = 0;
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&un, unlen) == 0) {
            struct ucred cred;
            socklen_t clen = sizeof(cred);
            if (getsockopt(probe, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
                pid = (long)cred.pid;
            }
        }
        if (probe >= 0) {
            close(probe);
        }
        if (pid > 0) {
            return err_set(err, errlen,
                           "listen %s: another sinkd serve (pid %ld) already serves this address; "
                           "two would split its bots between two logs",
                           where, pid);
        }
        return err_set(err, errlen, "listen %s: another sinkd serve already serves this address",
                       where);
    }
    struct sockaddr_storage ss;
    socklen_t sslen;
    net_addr_to_sockaddr(addr, &ss, &sslen);
    int tcp = socket(addr->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (tcp < 0) {
        int e = errno;
        close(lock);
        return err_set(err, errlen, "listen %s: socket: %s", where, strerror(e));
    }
    int one = 1;
    if (addr->family == AF_INET6) {
        setsockopt(tcp, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    setsockopt(tcp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)); /* TIME_WAIT is no listener */
    if (bind(tcp, (struct sockaddr *)&ss, sslen) != 0) {
        int e = errno;
        close(tcp);
        close(lock);
        if (e == EADDRINUSE) {
            return err_set(err, errlen,
                           "listen %s: address in use by another process (`ss -tlnp` names it)",
                           where);
        }
        return err_set(err, errlen, "listen %s: %s", where, strerror(e));
    }
    close(tcp);
    return lock;
}

int open_listener(const struct net_addr *addr, uint32_t defer_accept_s, uint16_t *bound_port,
                  char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sslen;
    struct net_addr a = *addr;
    if (*bound_port != 0) {
        a.port = *bound_port;
    }
    net_addr_to_sockaddr(&a, &ss, &sslen);
    char where[80];
    format_endpoint(&a, where, sizeof(where));
    int fd = socket(a.family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return err_set(err, errlen, "listen %s: socket: %s", where, strerror(errno));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) {
        close(fd);
        return err_set(err, errlen, "listen %s: SO_REUSEPORT: %s", where, strerror(errno));
    }
    if (a.family == AF_INET6) {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    /* Replies are single writes that must not wait for the peer's delayed ACK (a command right
     * after a reply would); accepted sockets inherit this on Linux. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
#ifdef TCP_DEFER_ACCEPT
    /* Bots speak first (PlugX hello, HTTP request, PROXY header), so the kernel keeps a
     * connection until its first bytes arrive: a peer that connects and stays silent costs no
     * descriptor, no connection state and no wake-up, and an honest one is accepted with its
     * packet already queued (one trip through epoll fewer per connection). */
    if (defer_accept_s > 0) {
        int secs = defer_accept_s > INT_MAX ? INT_MAX : (int)defer_accept_s;
        if (setsockopt(fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &secs, sizeof(secs)) != 0) {
            int e = errno;
            close(fd);
            return err_set(err, errlen, "listen %s: TCP_DEFER_ACCEPT: %s", where, strerror(e));
        }
    }
#else
    (void)defer_accept_s;
#endif
    if (bind(fd, (struct sockaddr *)&ss, sslen) != 0) {
        int e = errno;
        close(fd);
        return err_set(err, errlen, "listen %s: %s", where, strerror(e));
    }
    if (*bound_port == 0) {
        struct sockaddr_storage got;
        socklen_t gotlen = sizeof(got);
        struct net_addr g;
        getsockname(fd, (struct sockaddr *)&got, &gotlen);
        net_addr_from_sockaddr(&g, (struct sockaddr *)&got);
        *bound_port = g.port;
    }
    return fd;
}

/* Loads the drop filter and installs it on every worker's listeners, while serve still
 * has the privileges loading needs; later only its map changes. */
int attach_synfilter(struct server *srv, int fds[][SERVER_MAX_LISTEN], uint32_t max, char *err,
                     size_t errlen)
{
    const struct server_config *cfg = srv->cfg;
    srv->synfilter = synfilter_open(max, err, errlen);
    if (srv->synfilter == NULL) {
        return -1;
    }
    for (size_t l = 0; l < cfg->nlisten; l++) {
        for (unsigned i = 0; i < srv->nworkers; i++) {
            int rc = synfilter_attach(srv->synfilter, fds[i][l], cfg->listen[l].family);
            if (rc != 0) {
                synfilter_close(srv->synfilter);
                srv->synfilter = NULL;
                return err_set(err, errlen, "listener filter: SO_ATTACH_BPF: %s", strerror(-rc));
            }
        }
    }
    srv->ban_generation = 1; /* the banlist starts empty, as the filter's map does */
    return 0;
}
