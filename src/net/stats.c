/* stats.c -- the workers' counters summed for the node-stopped record, the stop lines and
 * GET /metrics. */
#include "net/server_internal.h"

void started_detail(const struct server *srv, char *out, size_t len)
{
    json_t *o = json_object();
    json_object_set_new(o, "version", json_string(SINKD_VERSION));
    json_t *listen = json_array();
    for (size_t i = 0; i < srv->cfg->nlisten; i++) {
        char ep[80];
        format_endpoint(&srv->cfg->listen[i], ep, sizeof(ep));
        json_array_append_new(listen, json_string(ep));
    }
    json_object_set_new(o, "listen", listen);
    json_object_set_new(o, "workers", json_integer(srv->nworkers));
    json_object_set_new(o, "family", json_string(srv->family->name));
    json_object_set_new(o, "enforce", json_boolean(srv->cfg->enforce));
    json_object_set_new(o, "uninstall_command", json_integer(srv->cfg->uninstall_command));
    /* Whether message bodies were kept is a fact of the capture a court or a researcher asks. */
    json_object_set_new(o, "keep_raw", json_boolean(srv->raw != NULL));
    char *s = json_dumps(o, JSON_COMPACT);
    snprintf(out, len, "%s", s ? s : "{}");
    free(s);
    json_decref(o);
}

static void stats_add(struct worker_stats *t, const struct worker_stats *s)
{
    t->accepted += s->accepted;
    t->rejected += s->rejected;
    t->held += s->held;
    t->contacts += s->contacts;
    for (int k = 0; k < CONTACT_MSG_TYPES; k++) {
        t->by_type[k] += s->by_type[k];
    }
    t->undecoded_callers += s->undecoded_callers;
    t->rolled_up += s->rolled_up;
    t->heartbeat_records += s->heartbeat_records;
    t->bad_peers += s->bad_peers;
    t->timeouts += s->timeouts;
    t->replies += s->replies;
    for (int k = 0; k < VERDICT_COUNT; k++) {
        t->decisions[k] += s->decisions[k];
    }
    t->commands_sent += s->commands_sent;
    t->commands_failed += s->commands_failed;
}

void stopped_detail(const struct server *srv, char *out, size_t len)
{
    struct worker_stats t;
    memset(&t, 0, sizeof(t));
    uint64_t pool_peak = 0;
    for (unsigned i = 0; i < srv->nworkers; i++) {
        pool_peak += srv->workers[i].pool.allocated;
        stats_add(&t, &srv->workers[i].stats);
    }
    const struct pipeline_stats *ps = pipeline_stats(srv->pipe);
    struct hist lat;
    pipeline_durable_latency(srv->pipe, &lat);
    struct banlist_stats bs = {0};
    if (srv->banlist != NULL) {
        banlist_stats(srv->banlist, &bs);
    }
    struct raw_store_stats rs;
    raw_store_stats(srv->raw, &rs);
    struct undecoded_limit_stats us;
    undecoded_limit_stats(srv->undecoded, &us);
    snprintf(
        out, len,
        "{\"connections\":%llu,\"rejected\":%llu,\"held\":%llu,\"contacts\":%llu,"
        "\"hello\":%llu,"
        "\"machine_info\":%llu,\"heartbeat\":%llu,\"other\":%llu,\"undecoded\":%llu,"
        "\"undecoded_callers\":%llu,\"undecoded_suppressed\":%llu,\"rolled_up\":%llu,"
        "\"heartbeat_records\":%llu,\"replies\":%llu,"
        "\"bad_peers\":%llu,\"timeouts\":%llu,\"batches\":%llu,\"max_batch\":%llu,"
        "\"delayed_commits\":%llu,"
        "\"commit_errors\":%llu,\"durable_us\":{\"p50\":%llu,\"p99\":%llu,\"max\":%llu},"
        "\"decisions\":{\"send\":%llu,\"dry_run\":%llu,\"not_authorised\":%llu,"
        "\"excluded\":%llu,\"outside_window\":%llu,\"rate_limited\":%llu,"
        "\"already_sent\":%llu},\"commands_sent\":%llu,\"commands_failed\":%llu,"
        "\"syn_banned\":%llu,\"syn_bans\":%llu,\"syn_bans_full\":%llu,"
        "\"raw_stored\":%llu,\"raw_stored_bytes\":%llu,\"raw_skipped\":%llu}",
        (unsigned long long)t.accepted, (unsigned long long)t.rejected, (unsigned long long)t.held,
        (unsigned long long)t.contacts, (unsigned long long)t.by_type[CONTACT_MSG_HELLO],
        (unsigned long long)t.by_type[CONTACT_MSG_MACHINE_INFO],
        (unsigned long long)t.by_type[CONTACT_MSG_HEARTBEAT],
        (unsigned long long)t.by_type[CONTACT_MSG_OTHER],
        (unsigned long long)t.by_type[CONTACT_MSG_UNDECODED],
        (unsigned long long)t.undecoded_callers, (unsigned long long)us.suppressed,
        (unsigned long long)t.rolled_up, (unsigned long long)t.heartbeat_records,
        (unsigned long long)t.replies, (unsigned long long)t.bad_peers,
        (unsigned long long)t.timeouts, (unsigned long long)atomic_load(&ps->batches),
        (unsigned long long)atomic_load(&ps->max_batch),
        (unsigned long long)atomic_load(&ps->delayed),
        (unsigned long long)atomic_load(&ps->commit_errors),
        (unsigned long long)hist_percentile(&lat, 0.50),
        (unsigned long long)hist_percentile(&lat, 0.99), (unsigned long long)lat.max,
        (unsigned long long)t.decisions[VERDICT_SEND],
        (unsigned long long)t.decisions[VERDICT_DRY_RUN],
        (unsigned long long)t.decisions[VERDICT_NOT_AUTHORISED],
        (unsigned long long)t.decisions[VERDICT_EXCLUDED],
        (unsigned long long)t.decisions[VERDICT_OUTSIDE_WINDOW],
        (unsigned long long)t.decisions[VERDICT_RATE_LIMITED],
        (unsigned long long)t.decisions[VERDICT_ALREADY_SENT], (unsigned long long)t.commands_sent,
        (unsigned long long)t.commands_failed, (unsigned long long)bs.banned,
        (unsigned long long)bs.bans, (unsigned long long)bs.full, (unsigned long long)rs.stored,
        (unsigned long long)rs.stored_bytes, (unsigned long long)rs.skipped);
    if (srv->raw != NULL) {
        fprintf(srv->cfg->log,
                "sinkd: keep-raw: %llu bodies kept (%llu bytes), %llu already kept, %llu not "
                "kept%s%s\n",
                (unsigned long long)rs.stored, (unsigned long long)rs.stored_bytes,
                (unsigned long long)rs.duplicates, (unsigned long long)rs.skipped,
                rs.full ? " (budget or disk reserve reached)" : "",
                rs.last_errno ? ", last error: " : "");
        if (rs.last_errno) {
            fprintf(srv->cfg->log, "sinkd: keep-raw: %s\n", strerror(rs.last_errno));
        }
    }
    fprintf(srv->cfg->log,
            "sinkd: contact-to-durable latency p50 %llu us, p99 %llu us, max %llu us over %llu "
            "records\n",
            (unsigned long long)hist_percentile(&lat, 0.50),
            (unsigned long long)hist_percentile(&lat, 0.99), (unsigned long long)lat.max,
            (unsigned long long)lat.count);
    uint64_t batches = atomic_load(&ps->batches);
    fprintf(srv->cfg->log,
            "sinkd: group commits: %llu for %llu records (avg %.1f, max %llu), %llu after a "
            "commit delay; connection pool peak %llu\n",
            (unsigned long long)batches, (unsigned long long)atomic_load(&ps->entries),
            batches ? (double)atomic_load(&ps->entries) / (double)batches : 0.0,
            (unsigned long long)atomic_load(&ps->max_batch),
            (unsigned long long)atomic_load(&ps->delayed), (unsigned long long)pool_peak);
    if (bs.bans > 0) {
        fprintf(srv->cfg->log,
                "sinkd: listener bans: %llu made, %llu in force at the stop, %llu not made "
                "(--syn-ban-max reached)\n",
                (unsigned long long)bs.bans, (unsigned long long)bs.banned,
                (unsigned long long)bs.full);
    }
}

/* Which policy is in force and what it really does (issue 19 #7): --enforce, and the
 * authorisations by command and effect, so a dashboard never says "dry-run" under enforcement. */
static void render_policy_metrics(struct server *srv, struct metrics_text *m)
{
    metrics_family(m, "sinkd_enforce", "gauge", "1 when serve runs with --enforce.");
    metrics_sample(m, "sinkd_enforce", srv->cfg->enforce ? 1 : 0);
    const struct policy_live *live =
        srv->policy != NULL ? policy_handle_acquire(srv->policy) : NULL;
    if (live == NULL) {
        return;
    }
    const struct policy *p = policy_live_policy(live);
    uint64_t n[2][2] = {{0, 0}, {0, 0}}; /* [collect?][enforce?] */
    for (size_t i = 0; i < policy_authorisation_count(p); i++) {
        bool collect = policy_authorisation_command(p, i) == POLICY_COMMAND_COLLECT;
        bool has_id = collect || policy_authorisation_command_id(p, i) != 0 ||
                      srv->cfg->uninstall_command != 0;
        bool enforce =
            srv->cfg->enforce && has_id && policy_authorisation_mode(p, i) == POLICY_MODE_ENFORCE;
        n[collect][enforce]++;
    }
    char sha[65];
    hex_encode(policy_sha256(p), 32, sha);
    policy_live_release(live);
    const struct metrics_label info = {"sha256", sha};
    metrics_family(m, "sinkd_policy_info", "gauge", "The policy in force (its SHA-256); always 1.");
    metrics_sample_labels(m, "sinkd_policy_info", &info, 1, 1);
    metrics_family(m, "sinkd_policy_authorisations", "gauge",
                   "Authorisations in force by command and by what they really do "
                   "(enforce: commands are sent).");
    static const char *const cmd[2] = {"uninstall", "collect"};
    static const char *const eff[2] = {"dry-run", "enforce"};
    for (int c = 0; c < 2; c++) {
        for (int e = 0; e < 2; e++) {
            const struct metrics_label l[2] = {{"command", cmd[c]}, {"effect", eff[e]}};
            metrics_sample_labels(m, "sinkd_policy_authorisations", l, 2, n[c][e]);
        }
    }
}

/* GET /metrics: the workers' counters as of their last sweep (<= SWEEP_MS old), the evidence
 * writer's and the registry follower's as of now. Counts and states only (docs/metrics.md). */
void render_metrics(void *ctx, struct metrics_text *m)
{
    struct server *srv = ctx;
    struct worker_stats t;
    memset(&t, 0, sizeof(t));
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        pthread_mutex_lock(&w->published_mu);
        stats_add(&t, &w->published);
        pthread_mutex_unlock(&w->published_mu);
    }
    const struct metrics_label build[] = {{"version", SINKD_VERSION},
                                          {"family", srv->family->name}};
    metrics_family(m, "sinkd_build_info", "gauge", "Version and protocol family; always 1.");
    metrics_sample_labels(m, "sinkd_build_info", build, 2, 1);
    metrics_family(m, "sinkd_start_time_seconds", "gauge", "When serve started (POSIX time).");
    metrics_sample(m, "sinkd_start_time_seconds", (uint64_t)srv->started_s);
    metrics_family(m, "sinkd_connections_open", "gauge", "Bot connections open now.");
    metrics_sample(m, "sinkd_connections_open", atomic_load(&srv->nconns));
    static const struct {
        const char *name, *help;
        size_t offset;
    } counters[] = {
        {"sinkd_connections_accepted_total", "Bot connections accepted.",
         offsetof(struct worker_stats, accepted)},
        {"sinkd_connections_rejected_total",
         "Connections refused by a limit (max connections, per address, rate).",
         offsetof(struct worker_stats, rejected)},
        {"sinkd_connections_held_total", "Refused or bad peers held until their reset.",
         offsetof(struct worker_stats, held)},
        {"sinkd_bad_peers_total", "Connections closed for breaking the protocol.",
         offsetof(struct worker_stats, bad_peers)},
        {"sinkd_timeouts_total", "Connections closed by the header or idle timeout.",
         offsetof(struct worker_stats, timeouts)},
        {"sinkd_replies_total", "Replies sent to bots, each after its record was durable.",
         offsetof(struct worker_stats, replies)},
        {"sinkd_commands_sent_total",
         "Remediation commands sent (each behind a durable send "
         "decision).",
         offsetof(struct worker_stats, commands_sent)},
        {"sinkd_commands_failed_total", "Remediation commands decided but not delivered.",
         offsetof(struct worker_stats, commands_failed)},
    };
    for (size_t i = 0; i < sizeof(counters) / sizeof(counters[0]); i++) {
        uint64_t v;
        memcpy(&v, (const char *)&t + counters[i].offset, sizeof(v));
        metrics_family(m, counters[i].name, "counter", counters[i].help);
        metrics_sample(m, counters[i].name, v);
    }
    metrics_family(m, "sinkd_contacts_total", "counter", "Bot messages recorded, by type.");
    for (unsigned k = CONTACT_MSG_OTHER; k < CONTACT_MSG_TYPES; k++) {
        const struct metrics_label type = {"type", event_msg_type_name((uint8_t)k)};
        metrics_sample_labels(m, "sinkd_contacts_total", &type, 1, t.by_type[k]);
    }
    struct undecoded_limit_stats us;
    undecoded_limit_stats(srv->undecoded, &us);
    metrics_family(m, "sinkd_undecoded_suppressed_total", "counter",
                   "Undecoded contacts past the per-address bound: counted, not recorded one by "
                   "one.");
    metrics_sample(m, "sinkd_undecoded_suppressed_total", us.suppressed);
    metrics_family(m, "sinkd_heartbeats_rolled_up_total", "counter",
                   "Polls counted into a bot's heartbeats record instead of a record each.");
    metrics_sample(m, "sinkd_heartbeats_rolled_up_total", t.rolled_up);
    if (srv->rollup != NULL) {
        struct rollup_stats ro;
        rollup_stats(srv->rollup, &ro);
        metrics_family(m, "sinkd_bots_present", "gauge",
                       "Bots (by identity or address) polling within the heartbeat interval.");
        metrics_sample(m, "sinkd_bots_present", ro.entries);
        metrics_family(m, "sinkd_heartbeats_pending", "gauge",
                       "Rolled-up polls not yet in a written record (what a kill -9 would lose).");
        metrics_sample(m, "sinkd_heartbeats_pending", ro.pending);
        metrics_family(m, "sinkd_heartbeats_named_total", "counter",
                       "Heartbeats records that named the leaf describing their bot instead of "
                       "repeating it.");
        metrics_sample(m, "sinkd_heartbeats_named_total", ro.named);
    }
    metrics_family(m, "sinkd_decisions_total", "counter",
                   "Remediation decisions made durable, by verdict.");
    for (unsigned k = VERDICT_SEND; k <= VERDICT_ALREADY_REHEARSED; k++) {
        const struct metrics_label verdict = {"verdict", event_verdict_name((uint8_t)k)};
        metrics_sample_labels(m, "sinkd_decisions_total", &verdict, 1, t.decisions[k]);
    }
    render_policy_metrics(srv, m);
    const struct pipeline_stats *ps = pipeline_stats(srv->pipe);
    metrics_family(m, "sinkd_log_entries", "gauge", "Durable entries in the evidence log.");
    metrics_sample(m, "sinkd_log_entries", atomic_load(&ps->log_size));
    metrics_family(m, "sinkd_log_journal_base", "gauge",
                   "Entries compacted out of the journal (stored once, in the entry bundles).");
    metrics_sample(m, "sinkd_log_journal_base", atomic_load(&ps->journal_base));
    metrics_family(m, "sinkd_log_checkpoints_removed_total", "counter",
                   "Old checkpoint files removed by retention (--checkpoint-keep-hours).");
    metrics_sample(m, "sinkd_log_checkpoints_removed_total", evlog_checkpoints_removed(srv->log));
    metrics_family(m, "sinkd_log_commits_total", "counter", "Group commits (one fdatasync each).");
    metrics_sample(m, "sinkd_log_commits_total", atomic_load(&ps->batches));
    metrics_family(m, "sinkd_log_commit_errors_total", "counter",
                   "Failed commits (disk full, I/O error); nothing is acknowledged meanwhile.");
    metrics_sample(m, "sinkd_log_commit_errors_total", atomic_load(&ps->commit_errors));
    metrics_family(m, "sinkd_log_stalled", "gauge",
                   "1 while commits fail and bots get no replies (alert on this).");
    metrics_sample(m, "sinkd_log_stalled", atomic_load(&ps->stalled) != 0);
    struct hist lat;
    pipeline_durable_latency(srv->pipe, &lat);
    metrics_family(m, "sinkd_log_durable_latency_microseconds", "gauge",
                   "Contact-to-durable latency over all records since the start, by quantile.");
    const struct metrics_label p50 = {"quantile", "0.5"}, p99 = {"quantile", "0.99"};
    metrics_sample_labels(m, "sinkd_log_durable_latency_microseconds", &p50, 1,
                          hist_percentile(&lat, 0.50));
    metrics_sample_labels(m, "sinkd_log_durable_latency_microseconds", &p99, 1,
                          hist_percentile(&lat, 0.99));
    metrics_family(m, "sinkd_log_durable_latency_max_microseconds", "gauge",
                   "The largest contact-to-durable latency since the start.");
    metrics_sample(m, "sinkd_log_durable_latency_max_microseconds", lat.max);
    if (srv->registry != NULL) {
        struct registry_follow_stats rs;
        registry_follow_stats(srv->registry, &rs);
        metrics_family(m, "sinkd_registry_up", "gauge",
                       "1 while the registry follower runs, 0 once it stopped on an error.");
        metrics_sample(m, "sinkd_registry_up", rs.error == 0);
        metrics_family(m, "sinkd_registry_applied_entries", "gauge",
                       "Log entries the victim registry has applied.");
        metrics_sample(m, "sinkd_registry_applied_entries", rs.applied_index);
        /* Against the log's durable size now, not the follower's own view at its last commit:
         * a follower waiting on its database (PostgreSQL paused, a lock) does not move that. */
        uint64_t durable = atomic_load(&ps->log_size);
        uint64_t lag = durable > rs.applied_index ? durable - rs.applied_index : 0;
        metrics_family(m, "sinkd_registry_lag_entries", "gauge",
                       "Durable log entries the registry has not applied yet.");
        metrics_sample(m, "sinkd_registry_lag_entries", lag);
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t now_ns = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
        metrics_family(m, "sinkd_registry_behind_seconds", "gauge",
                       "While entries wait: seconds since the registry last read to the log's "
                       "durable end (0 when it has applied everything).");
        metrics_sample(m, "sinkd_registry_behind_seconds",
                       lag > 0 && rs.caught_up_ns > 0 && now_ns > rs.caught_up_ns
                           ? (now_ns - rs.caught_up_ns) / 1000000000ULL
                           : 0);
    }
    if (srv->raw != NULL) {
        struct raw_store_stats rs;
        raw_store_stats(srv->raw, &rs);
        metrics_family(m, "sinkd_raw_bodies_kept_total", "counter",
                       "Message bodies --keep-raw stored (new files) since the start.");
        metrics_sample(m, "sinkd_raw_bodies_kept_total", rs.stored);
        metrics_family(m, "sinkd_raw_bodies_skipped_total", "counter",
                       "Bodies not kept (budget, disk reserve or a write error).");
        metrics_sample(m, "sinkd_raw_bodies_skipped_total", rs.skipped);
        metrics_family(m, "sinkd_raw_full", "gauge",
                       "1 while capture is stopped (budget spent, or disk short of its reserve).");
        metrics_sample(m, "sinkd_raw_full", rs.full);
    }
    if (srv->banlist != NULL) {
        struct banlist_stats bs;
        banlist_stats(srv->banlist, &bs);
        metrics_family(m, "sinkd_listener_bans", "gauge",
                       "Addresses whose SYNs the listeners drop now.");
        metrics_sample(m, "sinkd_listener_bans", bs.banned);
        metrics_family(m, "sinkd_listener_bans_total", "counter", "Listener bans made.");
        metrics_sample(m, "sinkd_listener_bans_total", bs.bans);
    }
}
