/* server.c -- `sinkd serve` as a whole: start-up in order (bind, drop privileges, tables, log,
 * writer, registry, policy, workers, sandbox), signals and reloads, and the orderly stop. */
#include "net/server_internal.h"

#include "evidence/seal.h"

/* Addresses the undecoded-contact bound remembers at once (~40 bytes each). */
#define UNDECODED_SLOTS 65536

/* How often the main loop looks whether the registry follower stopped on an error. */
#define REGISTRY_TICK_MS 1000

/* A follower that stopped on an error (a lost PostgreSQL connection, a full disk) is said at
 * once, not only at the stop: the sinkhole goes on, the log keeps every contact, and the registry
 * resumes from its applied index when a follower runs again. */
static void on_registry_tick(uv_timer_t *t)
{
    struct server *srv = t->data;
    struct registry_follow_stats st;
    registry_follow_stats(srv->registry, &st);
    if (st.error == 0) {
        return;
    }
    fprintf(srv->cfg->log,
            "sinkd: registry follower stopped: %s; serving and logging go on; restart serve or "
            "run `sinkd registry follow` to resume the registry from entry %llu\n",
            st.error_text, (unsigned long long)st.applied_index);
    uv_timer_stop(t);
}

/* ---- the whole server --------------------------------------------------------------------- */

void server_config_default(struct server_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->node = "sinkd";
    cfg->origin = NULL;
    /* One worker per core. On 2 cores, 1 worker measured ~10 % more connections/s in
     * bench/churn.sh (within its noise) but let attacks on the one event loop push honest bots'
     * p99 to 4.2x the quiet figure in bench/attack.sh, against 3.4x with 2 (docs/scale.md):
     * resilience first. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    cfg->workers = cores > 0 ? (unsigned)cores : 1;
    cfg->limits.max_connections = 16000;
    cfg->limits.max_per_ip = 64;
    cfg->limits.conn_rate_per_ip = 20;
    cfg->limits.conn_burst_per_ip = 40;
    cfg->limits.max_tracked_ips = 1000000;
    cfg->limits.header_timeout_ms = 10000;
    cfg->limits.defer_accept_s = 10;
    cfg->limits.idle_timeout_ms = 180000;
    cfg->limits.max_message = 65536 + 8192;
    cfg->limits.max_inflight = 8;
    cfg->limits.ring_slots = 8192;
    cfg->limits.drain_timeout_ms = 5000;
    cfg->limits.bad_peer_log_per_s = 200;
    cfg->limits.refuse_hold_ms = 10000;
    cfg->limits.refuse_hold_max = 1024;
    cfg->limits.syn_ban_after = 40;
    cfg->limits.syn_ban_s = 60;
    cfg->limits.syn_ban_max = 1024;
    cfg->heartbeat_interval_s = 3600;
    cfg->rollup_max_bots = 4000000;
    cfg->limits.undecoded_per_ip = 6;
    cfg->limits.undecoded_window_s = 60;
    cfg->family = proto_family_at(0); /* the table's first; the CLI names one */
    cfg->checkpoint_every = 100000;
    cfg->checkpoint_interval_ms = 1000;
    cfg->checkpoint_keep_hours = 24;
    cfg->journal_compact_kib = 1024;
    /* Only under load (pipeline.h): bench/churn.sh measured 3-10 % more connections/s and half
     * the writer's CPU per contact, while the demo's moderate load is never delayed
     * (docs/evidence.md). */
    cfg->commit_delay_us = 1000;
    cfg->keep_raw_max_bytes = 4096ull << 20;     /* ~4 M machine-info bodies of ~1 KB */
    cfg->keep_raw_reserve_bytes = 1024ull << 20; /* the log's room when the disk fills */
    cfg->registry = true;
    cfg->registry_cache_mib = REGISTRY_CACHE_MIB_DEFAULT;
    cfg->log = stderr;
}

static int load_tables(const struct server_config *cfg, struct enrich_tables **out, char *err,
                       size_t errlen)
{
    struct enrich_config ec;
    memset(&ec, 0, sizeof(ec));
    ec.mmdb_path = cfg->geoip_path;
    ec.asn_v4_path = cfg->asn_v4_path;
    ec.asn_v6_path = cfg->asn_v6_path;
    ec.tag_paths = cfg->tag_files;
    return enrich_load(out, &ec, err, errlen);
}

/* The table-loaded record every later contact's enrich_id refers to. */
static int record_tables(struct server *srv, const struct enrich_tables *tables, char *err,
                         size_t errlen)
{
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_TABLE_LOADED;
    rec.u.note.time_us = event_now_us();
    snprintf(rec.u.note.node, sizeof(rec.u.note.node), "%s", srv->cfg->node);
    rec.u.note.id = enrich_tables_id(tables);
    enrich_tables_sha256(tables, rec.u.note.sha256);
    enrich_tables_describe(tables, rec.u.note.detail, sizeof(rec.u.note.detail));
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&rec, buf, sizeof(buf));
    if (n < 0) {
        return err_set(err, errlen, "cannot encode the table-loaded record");
    }
    return pipeline_append_sync(srv->pipe, buf, (size_t)n, err, errlen);
}

static void reload(struct server *srv)
{
    char err[512];
    if (srv->policy != NULL) {
        reload_policy(srv);
    }
    struct enrich_tables *tables = NULL;
    if (load_tables(srv->cfg, &tables, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log, "sinkd: SIGHUP: enrichment data NOT reloaded, old tables stay: %s\n",
                err);
        return;
    }
    /* Recorded before use, so no contact refers to tables the log has not described. */
    if (record_tables(srv, tables, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log, "sinkd: SIGHUP: %s; old tables stay\n", err);
        enrich_free(tables);
        return;
    }
    fprintf(srv->cfg->log, "sinkd: SIGHUP: enrichment tables %08x loaded\n",
            enrich_tables_id(tables));
    enrich_handle_swap(&srv->enrich, tables);
}

/* A burst (a crowd of bots reconnecting at once, a flood) frees what it needed: the tile
 * writer's queued tiles, the workers' partial-message buffers, SQLite's scratch; glibc keeps
 * those pages in its heaps for good unless asked (start-up alone leaves ~8 MB so, see
 * server_run). Once load has fallen back, give them to the kernel. A trim locks each malloc
 * arena in turn, so it is not done while records still pour in. */
#define TRIM_TICK_MS 2000
#define TRIM_AFTER_ENTRIES 8192 /* at least this many log entries since the last trim ... */
#define TRIM_QUIET_ENTRIES 1024 /* ... and fewer than this many in the last tick */

static void on_trim_tick(uv_timer_t *t)
{
    struct server *srv = t->data;
    uint64_t now = atomic_load(&pipeline_stats(srv->pipe)->entries);
    uint64_t tick = now - srv->trim_tick_entries;
    srv->trim_tick_entries = now;
    if (now - srv->trim_entries < TRIM_AFTER_ENTRIES || tick >= TRIM_QUIET_ENTRIES) {
        return;
    }
    srv->trim_entries = now;
#ifdef __GLIBC__
    (void)malloc_trim(0);
#endif
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct server *srv = s->data;
    if (signum == SIGHUP) {
        reload(srv);
        return;
    }
    fprintf(srv->cfg->log, "sinkd: %s: draining\n", signum == SIGINT ? "SIGINT" : "SIGTERM");
    metrics_server_close(srv->metrics);
    for (unsigned i = 0; i < srv->nworkers; i++) {
        uv_async_send(&srv->workers[i].stop);
    }
    uv_close((uv_handle_t *)&srv->sigint, NULL);
    uv_close((uv_handle_t *)&srv->sigterm, NULL);
    uv_close((uv_handle_t *)&srv->sighup, NULL);
    uv_close((uv_handle_t *)&srv->trim, NULL);
    if (srv->banlist != NULL) {
        uv_close((uv_handle_t *)&srv->ban_tick, NULL);
    }
    if (srv->registry != NULL) {
        uv_close((uv_handle_t *)&srv->registry_tick, NULL);
    }
}

static int append_note(struct server *srv, uint8_t kind, const char *detail, char *err,
                       size_t errlen)
{
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = kind;
    rec.u.note.time_us = event_now_us();
    snprintf(rec.u.note.node, sizeof(rec.u.note.node), "%s", srv->cfg->node);
    snprintf(rec.u.note.detail, sizeof(rec.u.note.detail), "%s", detail);
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&rec, buf, sizeof(buf));
    if (n < 0) {
        return err_set(err, errlen, "cannot encode %s record", event_kind_name(kind));
    }
    return pipeline_append_sync(srv->pipe, buf, (size_t)n, err, errlen);
}

/* The registry is a derived view: its follower thread tails the durable log on its own, so no
 * worker and not the evidence writer ever waits on SQLite. */
static int start_registry(struct server *srv, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/registry.db", srv->cfg->state_dir);
    if (srv->cfg->registry_target != NULL) {
        snprintf(path, sizeof(path), "%s", registry_target_name(srv->cfg->registry_target));
    }
    if (registry_open_log(&srv->registry, srv->cfg->registry_target, srv->cfg->state_dir, err,
                          errlen) != 0) {
        srv->registry = NULL;
        return -1;
    }
    if (registry_set_cache_mib(srv->registry, srv->cfg->registry_cache_mib, err, errlen) != 0) {
        registry_close(srv->registry);
        srv->registry = NULL;
        return -1;
    }
    struct registry_follow_config fc;
    memset(&fc, 0, sizeof(fc));
    fc.state_dir = srv->cfg->state_dir;
    int64_t cache_mib = registry_cache_mib(srv->registry);
    if (registry_follow_start(srv->registry, &fc, err, errlen) != 0) {
        registry_close(srv->registry);
        srv->registry = NULL;
        return -1;
    }
    char cache[48] = "its cache is the database server's";
    if (cache_mib >= 0) {
        snprintf(cache, sizeof(cache), "page cache %lld MiB", (long long)cache_mib);
    }
    fprintf(srv->cfg->log, "sinkd: registry: following the log into %s (%s)\n", path, cache);
    return 0;
}

static void stop_registry(struct server *srv)
{
    char err[256];
    struct registry_follow_stats st;
    /* Figures of the running follower (stop drains the rest and ends its statistics). */
    registry_follow_stats(srv->registry, &st);
    if (registry_follow_stop(srv->registry, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log,
                "sinkd: registry follower: %s (the registry resumes from its applied index when "
                "a follower runs again; `sinkd registry rebuild` recreates it)\n",
                err);
    }
    st.applied_index = registry_applied_index(srv->registry);
    fprintf(srv->cfg->log,
            "sinkd: registry: %llu records in %llu batches (avg %.0f, max %llu), lag max %llu, "
            "applied up to %llu\n",
            (unsigned long long)st.records, (unsigned long long)st.batches, st.batch_avg,
            (unsigned long long)st.batch_max, (unsigned long long)st.lag_max,
            (unsigned long long)st.applied_index);
    registry_close(srv->registry);
    srv->registry = NULL;
}

/* Descriptors serve holds besides bot connections and held refusals: per worker its listeners,
 * epoll instance, eventfd and libuv's EMFILE reserve; then the log journal, the tile or checkpoint
 * file being written, the registry's database, WAL, shared memory and lock, the follower's log
 * reader, enrichment files while they are (re)loaded, the standard streams, and headroom. */
static uint64_t fd_reserve(const struct server_config *cfg)
{
    uint64_t workers = cfg->workers ? cfg->workers : 1;
    return 64u + workers * ((uint64_t)cfg->nlisten + 4u);
}

int server_fit_fd_limit(struct server_config *cfg, char *note, size_t notelen, char *err,
                        size_t errlen)
{
    note[0] = '\0';
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return err_set(err, errlen, "cannot read the open-files limit: %s", strerror(errno));
    }
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < rl.rlim_max) {
        /* Linux refuses an infinite RLIMIT_NOFILE; fs.nr_open's default is 2^20. */
        struct rlimit want = {rl.rlim_max == RLIM_INFINITY ? 1048576 : rl.rlim_max, rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &want) == 0) {
            rl.rlim_cur = want.rlim_cur;
        }
    }
    uint64_t limit = rl.rlim_cur == RLIM_INFINITY ? UINT32_MAX : (uint64_t)rl.rlim_cur;
    uint64_t reserve = fd_reserve(cfg);
    if (limit < reserve + 16) {
        return err_set(err, errlen,
                       "the open-files limit of %llu leaves no room for connections: %llu are "
                       "kept for the log, registry and event loops (raise it: ulimit -n, or "
                       "LimitNOFILE= in the unit)",
                       (unsigned long long)limit, (unsigned long long)reserve);
    }
    uint64_t room = limit - reserve;
    struct net_limits *lim = &cfg->limits;
    /* Bots first: refusals are held only with descriptors that connections do not need. */
    uint64_t hold = lim->max_connections >= room ? 0 : room - lim->max_connections;
    if (hold > lim->refuse_hold_max) {
        hold = lim->refuse_hold_max;
    }
    if (lim->max_connections <= room && hold == lim->refuse_hold_max) {
        return 0;
    }
    size_t at = 0;
    if (lim->max_connections > room) {
        at = (size_t)snprintf(note, notelen,
                              "--max-connections %u lowered to %llu: the open-files limit is %llu "
                              "and %llu descriptors are kept for the evidence log, registry and "
                              "event loops",
                              lim->max_connections, (unsigned long long)room,
                              (unsigned long long)limit, (unsigned long long)reserve);
        lim->max_connections = (uint32_t)room;
    }
    if (hold < lim->refuse_hold_max && lim->refuse_hold_ms > 0 && at < notelen) {
        at += (size_t)snprintf(note + at, notelen - at,
                               "%s--refuse-hold-max %u lowered to %llu: no descriptors left "
                               "beyond --max-connections %u",
                               at > 0 ? "; " : "", lim->refuse_hold_max, (unsigned long long)hold,
                               lim->max_connections);
    }
    lim->refuse_hold_max = (uint32_t)hold;
    if (at > 0 && at < notelen) {
        snprintf(note + at, notelen - at, " (raise it: ulimit -n, or LimitNOFILE= in the unit)");
    }
    return at > 0 ? 1 : 0;
}

int server_run(const struct server_config *cfg, char *err, size_t errlen)
{
    if (cfg->nlisten == 0) {
        return err_set(err, errlen, "no listen address");
    }
    struct server *srv = calloc(1, sizeof(*srv));
    if (srv == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    srv->cfg = cfg;
    for (size_t l = 0; l < SERVER_MAX_LISTEN; l++) {
        srv->listen_locks[l] = -1;
    }
    if (cfg->family == NULL || cfg->family_config == NULL) {
        free(srv);
        return err_set(err, errlen, "no protocol family configured");
    }
    if (cfg->family->conn_state_size > CONN_PROTO_STATE_MAX) {
        free(srv);
        return err_set(err, errlen, "protocol family %s needs %zu bytes per connection, at most %d",
                       cfg->family->name, cfg->family->conn_state_size, CONN_PROTO_STATE_MAX);
    }
    srv->family = cfg->family;
    srv->family_cfg = cfg->family_config;
    srv->nworkers = cfg->workers ? cfg->workers : 1;
    if (srv->nworkers > SERVER_MAX_WORKERS) {
        srv->nworkers = SERVER_MAX_WORKERS;
    }
    int rc = -1;
    int fds[SERVER_MAX_WORKERS][SERVER_MAX_LISTEN];
    memset(fds, -1, sizeof(fds));
    uv_async_t *wakes[SERVER_MAX_WORKERS];
    unsigned started = 0;
    bool main_loop_ready = false;
    bool enrich_ready = false;
    char detail[1024];

    srv->ipcount = ipcount_new(cfg->limits.max_tracked_ips);
    srv->undecoded = undecoded_limit_new(UNDECODED_SLOTS, cfg->limits.undecoded_per_ip,
                                         cfg->limits.undecoded_window_s * 1000u);
    srv->iplimits.max_open = cfg->limits.max_per_ip;
    srv->iplimits.rate = cfg->limits.conn_rate_per_ip;
    srv->iplimits.burst = cfg->limits.conn_burst_per_ip;
    /* The CLI bounds syn_ban_max to BANLIST_MAX; a library caller is clamped here, once. */
    uint32_t ban_max =
        cfg->limits.syn_ban_max < BANLIST_MAX ? cfg->limits.syn_ban_max : BANLIST_MAX;
    if (cfg->limits.syn_ban_after > 0 && cfg->limits.conn_rate_per_ip > 0 && ban_max > 0) {
        struct banlist_limits bl = {.after = cfg->limits.syn_ban_after,
                                    .ban_ms = cfg->limits.syn_ban_s * 1000,
                                    .max = ban_max};
        srv->banlist = banlist_new(&bl);
        srv->ban_snapshot = calloc(ban_max, sizeof(*srv->ban_snapshot));
        if (srv->banlist == NULL || srv->ban_snapshot == NULL) {
            err_set(err, errlen, "out of memory");
            goto out;
        }
    }
    srv->workers = calloc(srv->nworkers, sizeof(*srv->workers));
    if (cfg->heartbeat_interval_s > 0) {
        srv->rollup =
            rollup_new((uint64_t)cfg->heartbeat_interval_s * 1000000u, cfg->rollup_max_bots);
        if (srv->rollup == NULL) {
            err_set(err, errlen, "out of memory");
            goto out;
        }
        /* Records name a leaf only of the epoch the writer seals in (evidence/seal.h). */
        rollup_set_seal_epoch(srv->rollup, (uint64_t)seal_epoch_seconds(cfg->state_dir) * 1000000u);
    }
    if (srv->ipcount == NULL || srv->workers == NULL || srv->undecoded == NULL) {
        err_set(err, errlen, "out of memory");
        goto out;
    }
    /* Bind first: a port in use should fail before anything is written to the log. */
    for (size_t l = 0; l < cfg->nlisten; l++) {
        srv->listen_locks[l] = claim_listen_address(&cfg->listen[l], err, errlen);
        if (srv->listen_locks[l] == -1) {
            goto out;
        }
        uint16_t port = cfg->listen[l].port;
        for (unsigned i = 0; i < srv->nworkers; i++) {
            fds[i][l] =
                open_listener(&cfg->listen[l], cfg->limits.defer_accept_s, &port, err, errlen);
            if (fds[i][l] < 0) {
                goto out;
            }
        }
        srv->bound[l] = cfg->listen[l];
        srv->bound[l].port = port;
        static const uint8_t any[16];
        srv->bound_wildcard[l] =
            memcmp(cfg->listen[l].ip, any, cfg->listen[l].family == AF_INET ? 4 : 16) == 0;
    }
    if (cfg->metrics) {
        uint16_t mport = 0;
        if (metrics_server_open(&srv->metrics, &cfg->metrics_listen, &mport, err, errlen) != 0) {
            goto out;
        }
        char ip[NET_ADDR_STRLEN];
        net_addr_format_ip(&cfg->metrics_listen, ip);
        fprintf(cfg->log, "sinkd: metrics on http://%s%s%s:%u/metrics\n",
                cfg->metrics_listen.family == AF_INET6 ? "[" : "", ip,
                cfg->metrics_listen.family == AF_INET6 ? "]" : "", mport);
    }
    if (srv->banlist != NULL && attach_synfilter(srv, fds, ban_max, detail, sizeof(detail)) != 0) {
        fprintf(cfg->log, "sinkd: listener bans off: %s\n", detail);
        banlist_free(srv->banlist);
        srv->banlist = NULL;
    }
    /* Bound (ports below 1024 need root): now give privilege up for good, while the process
     * still has one thread (no-new-privs and capabilities are per thread). */
    if (sandbox_drop_privileges(cfg->user, cfg->state_dir, err, errlen) != 0) {
        goto out;
    }
    struct enrich_tables *tables = NULL;
    if (load_tables(cfg, &tables, err, errlen) != 0) {
        goto out;
    }
    enrich_handle_init(&srv->enrich, tables);
    enrich_ready = true;
    if (cfg->keep_raw) {
        /* After the drop, so the files belong to the service user; before the sandbox, which
         * allows no directory to be made by then. */
        struct raw_store_config rcfg = {.max_bytes = cfg->keep_raw_max_bytes,
                                        .reserve_bytes = cfg->keep_raw_reserve_bytes};
        if (raw_store_open(&srv->raw, cfg->state_dir, &rcfg, err, errlen) != 0) {
            goto out;
        }
    }
    struct evlog_options lopt;
    memset(&lopt, 0, sizeof(lopt));
    lopt.origin = cfg->origin;
    lopt.create_key = true;
    lopt.checkpoint_entries = cfg->checkpoint_every;
    lopt.checkpoint_ms = cfg->checkpoint_interval_ms;
    lopt.checkpoint_keep_s = (uint64_t)cfg->checkpoint_keep_hours * 3600;
    lopt.compact_bytes =
        cfg->journal_compact_kib == 0 ? UINT64_MAX : (uint64_t)cfg->journal_compact_kib << 10;
    struct evlog_recovery recovery;
    if (evlog_open(&srv->log, cfg->state_dir, &lopt, &recovery, err, errlen) != 0) {
        goto out;
    }
    fprintf(cfg->log, "sinkd: evidence log: %llu entries", (unsigned long long)recovery.size);
    if (recovery.base > 0) {
        fprintf(cfg->log, " (the %llu below the journal base read from the entry bundles)",
                (unsigned long long)recovery.base);
    }
    fprintf(cfg->log, "%s", recovery.cut_bytes ? "" : "\n");
    if (recovery.cut_bytes) {
        fprintf(cfg->log, ", torn tail of %llu bytes cut (an unacknowledged batch)\n",
                (unsigned long long)recovery.cut_bytes);
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        wakes[i] = &srv->workers[i].wake;
    }
    if (pipeline_start(&srv->pipe, srv->log, srv->nworkers, cfg->limits.ring_slots, wakes, cfg->log,
                       err, errlen) != 0) {
        goto out;
    }
    pipeline_set_commit_delay(srv->pipe, cfg->commit_delay_us);
    if (cfg->registry && start_registry(srv, err, errlen) != 0) {
        goto out;
    }
    /* The dashboard's map reads the registry through a reader of its own (metrics.h). */
    if (cfg->registry && srv->metrics != NULL &&
        metrics_server_open_registry(srv->metrics, cfg->registry_target, cfg->state_dir, err,
                                     errlen) != 0) {
        goto out;
    }
    if (cfg->policy_path != NULL) {
        struct policy *p = NULL;
        srv->sent = keyset_shared_new();
        srv->rehearsed = keyset_shared_new();
        if (srv->sent == NULL || srv->rehearsed == NULL || rebuild_decided(srv, err, errlen) != 0 ||
            load_policy(srv, &p, err, errlen) != 0) {
            goto out;
        }
        if (record_policy(srv, p, err, errlen) != 0) {
            policy_free(p);
            goto out;
        }
        if (policy_handle_new(p, &srv->policy, err, errlen) != 0) { /* owns p even then */
            srv->policy = NULL;
            goto out;
        }
        atomic_store(&srv->policy_gen, 1);
        /* Several nodes counting into one PostgreSQL registry: a bot moving between them must
         * not be commanded twice, so sends are claimed there (claims.c). Opened now: once the
         * sandbox is on, no socket can be made. */
        if (cfg->registry_target != NULL && registry_target_is_shared(cfg->registry_target) &&
            claims_start(srv, err, errlen) != 0) {
            goto out;
        }
    }
    for (unsigned i = 0; i < srv->nworkers; i++) {
        srv->workers[i].ring = pipeline_ring(srv->pipe, i);
        if (worker_init(srv, &srv->workers[i], i, fds[i], err, errlen) != 0) {
            goto out;
        }
    }
    started_detail(srv, detail, sizeof(detail));
    if (append_note(srv, RECORD_NODE_STARTED, detail, err, errlen) != 0 ||
        record_tables(srv, tables, err, errlen) != 0) {
        goto out;
    }

    uv_loop_init(&srv->main_loop);
    main_loop_ready = true;
    uv_signal_init(&srv->main_loop, &srv->sigint);
    uv_signal_init(&srv->main_loop, &srv->sigterm);
    uv_signal_init(&srv->main_loop, &srv->sighup);
    srv->sigint.data = srv->sigterm.data = srv->sighup.data = srv;
    uv_signal_start(&srv->sigint, on_signal, SIGINT);
    uv_signal_start(&srv->sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv->sighup, on_signal, SIGHUP);
    srv->started_s = (int64_t)(event_now_us() / 1000000);
    if (srv->metrics != NULL && metrics_server_start(srv->metrics, &srv->main_loop, render_metrics,
                                                     srv, err, errlen) != 0) {
        goto out;
    }
    uv_timer_init(&srv->main_loop, &srv->trim);
    srv->trim.data = srv;
    uv_timer_start(&srv->trim, on_trim_tick, TRIM_TICK_MS, TRIM_TICK_MS);
    if (srv->banlist != NULL) {
        uv_timer_init(&srv->main_loop, &srv->ban_tick);
        srv->ban_tick.data = srv;
        uv_timer_start(&srv->ban_tick, on_ban_tick, BAN_TICK_MS, BAN_TICK_MS);
    }
    if (srv->registry != NULL) {
        uv_timer_init(&srv->main_loop, &srv->registry_tick);
        srv->registry_tick.data = srv;
        uv_timer_start(&srv->registry_tick, on_registry_tick, REGISTRY_TICK_MS, REGISTRY_TICK_MS);
    }

    for (; started < srv->nworkers; started++) {
        if (pthread_create(&srv->workers[started].thread, NULL, worker_main,
                           &srv->workers[started]) != 0) {
            err_set(err, errlen, "cannot start worker thread");
            goto out;
        }
    }
    /* Start-up is over and every thread exists: confine them all (TSYNC). */
    if (cfg->seccomp != SERVER_SECCOMP_OFF) {
        if (!sandbox_seccomp_supported()) {
            fprintf(cfg->log, "sinkd: seccomp is not supported here; running without it\n");
        } else if (sandbox_install_seccomp_mode(cfg->seccomp == SERVER_SECCOMP_LOG
                                                    ? SANDBOX_SECCOMP_LOG
                                                    : SANDBOX_SECCOMP_KILL,
                                                err, errlen) != 0) {
            for (unsigned i = 0; i < started; i++) {
                uv_async_send(&srv->workers[i].stop);
            }
            goto out;
        }
    }
#ifdef __GLIBC__
    /* Start-up freed its own scratch (enrichment tables parsed, keys and policy read): ~8 MB
     * that glibc would otherwise keep (bench/idle.sh: 41.4 -> 32.9 MB before any connection). */
    (void)malloc_trim(0);
#endif
    if (cfg->on_ready != NULL) {
        cfg->on_ready(cfg->ready_ctx);
    }
    uv_run(&srv->main_loop, UV_RUN_DEFAULT);
    rc = 0;

out:
    if (started < srv->nworkers && started > 0) {
        for (unsigned i = 0; i < started; i++) {
            uv_async_send(&srv->workers[i].stop);
        }
    }
    for (unsigned i = 0; i < started; i++) {
        pthread_join(srv->workers[i].thread, NULL);
    }
    if (srv->pipe != NULL) {
        if (started > 0) {
            flush_heartbeats_at_stop(srv);
            char stop_err[256];
            stopped_detail(srv, detail, sizeof(detail));
            if (append_note(srv, RECORD_NODE_STOPPED, detail, stop_err, sizeof(stop_err)) != 0) {
                fprintf(cfg->log, "sinkd: %s\n", stop_err);
            }
        }
        pipeline_stop(srv->pipe);
        settle_after_stop(srv);
        pipeline_free(srv->pipe);
    }
    claims_stop(srv);
    if (srv->registry != NULL) {
        stop_registry(srv);
    }
    if (srv->workers != NULL) {
        for (unsigned i = 0; i < srv->nworkers; i++) {
            struct worker *w = &srv->workers[i];
            if (w->srv == NULL) {
                continue;
            }
            if (started == 0) {
                /* Never ran: close what worker_init opened so the loop can be freed. */
                uv_walk(&w->loop, walk_close, NULL);
                uv_run(&w->loop, UV_RUN_DEFAULT);
            }
            uv_loop_close(&w->loop);
            claims_worker_free(w);
            pthread_mutex_destroy(&w->claims_mu);
            conn_pool_destroy(&w->pool);
            pthread_mutex_destroy(&w->published_mu);
        }
    }
    if (main_loop_ready) {
        metrics_server_close(srv->metrics);
        uv_walk(&srv->main_loop, walk_close, NULL);
        uv_run(&srv->main_loop, UV_RUN_DEFAULT);
        uv_loop_close(&srv->main_loop);
    }
    metrics_server_free(srv->metrics);
    raw_store_close(srv->raw);
    if (srv->log != NULL) {
        char close_err[256];
        if (evlog_close(srv->log, close_err, sizeof(close_err)) != 0) {
            fprintf(cfg->log, "sinkd: closing the evidence log: %s\n", close_err);
            rc = -1;
            err_set(err, errlen, "closing the evidence log: %s", close_err);
        }
    }
    for (unsigned i = 0; i < SERVER_MAX_WORKERS && i < srv->nworkers; i++) {
        for (size_t l = 0; l < cfg->nlisten; l++) {
            if (fds[i][l] >= 0) {
                close(fds[i][l]);
            }
        }
    }
    if (enrich_ready) {
        enrich_handle_destroy(&srv->enrich);
    }
    policy_handle_free(srv->policy);
    keyset_shared_free(srv->sent);
    keyset_shared_free(srv->rehearsed);
    for (size_t l = 0; l < SERVER_MAX_LISTEN; l++) {
        if (srv->listen_locks[l] >= 0) {
            close(srv->listen_locks[l]);
        }
    }
    ipcount_free(srv->ipcount);
    undecoded_limit_free(srv->undecoded);
    rollup_free(srv->rollup);
    banlist_free(srv->banlist);
    free(srv->ban_snapshot);
    synfilter_close(srv->synfilter);
    free(srv->workers);
    free(srv);
    return rc;
}
