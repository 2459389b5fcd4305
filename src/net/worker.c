/* worker.c -- a worker thread: its event loop, durability completions, back-pressure, timeouts
 * and the drain at shutdown. */
#include "net/server_internal.h"

/* ---- durability completions --------------------------------------------------------------- */

static void resume_blocked(struct worker *w)
{
    struct conn *list = w->blocked_head;
    w->blocked_head = NULL;
    while (list != NULL) {
        struct conn *c = list;
        list = c->blocked_next;
        c->blocked_next = NULL;
        c->blocked = 0;
        if (c->closing) {
            continue;
        }
        conn_process(c, NULL, 0);
        if (!c->closing && !c->blocked) {
            uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
        }
    }
}

void complete_durable(struct worker *w)
{
    struct pipe_slot *slot;
    while ((slot = pipe_next_durable(w->ring)) != NULL) {
        struct conn *c = slot->owner;
        if (slot->describes && !slot->failed && w->srv->rollup != NULL) {
            /* Later heartbeats records of this bot may name this leaf instead of repeating it. */
            rollup_described(w->srv->rollup, slot->describes_key, slot->index, slot->describes_desc,
                             slot->describes_time_us, event_now_us());
        }
        if (slot->failed && c != NULL) {
            /* Not in the log: no acknowledgement, no command. The bot will call again. */
            c->inflight--;
            pipe_release(w->ring);
            conn_close(c);
            if (c->handle_closed && c->inflight == 0) {
                conn_free(c);
            }
            continue;
        }
        if (slot->kind == SLOT_SEND && c != NULL) {
            struct record rec;
            int ok = event_decode(slot->record, slot->record_len, &rec, NULL, 0) == 0 &&
                     rec.kind == RECORD_DECISION && rec.u.decision.verdict == VERDICT_SEND;
            c->inflight--;
            pipe_release(w->ring); /* frees the slot send_command() may need */
            if (ok) {
                command_ready(w, c, &rec.u.decision);
            }
            if (c->handle_closed && c->inflight == 0) {
                conn_free(c);
            }
            continue;
        }
        if (c != NULL) {
            c->inflight--;
            if (slot->kind == SLOT_REPLY_CLOSE) {
                /* An undecoded caller: its record is durable; answer (HTTP) and let it go. */
                if (!c->closing) {
                    conn_send(c, slot->reply, slot->reply_len);
                    if (c->inflight == 0) {
                        conn_close(c);
                    }
                }
                if (c->handle_closed && c->inflight == 0) {
                    conn_free(c);
                }
            } else if (slot->kind == SLOT_RECORD) {
                if (c->handle_closed && c->inflight == 0) {
                    conn_free(c);
                }
            } else if (!c->closing) {
                if (slot->kind == SLOT_REPLY_HTTP && c->http != NULL &&
                    c->http->pending_command != NULL) {
                    /* This response carries the waiting command instead of the usual reply. */
                    struct decision *d = c->http->pending_command;
                    c->http->pending_command = NULL;
                    pipe_release(w->ring); /* frees the slot send_command() needs */
                    send_command(w, c, d, NULL);
                    free(d);
                    w->stats.replies++;
                    if (c->close_after_reply && c->inflight == 0) {
                        conn_close(c);
                    }
                    if (c->handle_closed && c->inflight == 0) {
                        conn_free(c);
                    }
                    continue;
                }
                if (slot->kind == SLOT_REPLY_HTTP) {
                    conn_send_http(c, slot->reply, slot->reply_len, !c->close_after_reply);
                } else {
                    conn_send(c, slot->reply, slot->reply_len);
                }
                w->stats.replies++;
                if (c->close_after_reply && c->inflight == 0) {
                    conn_close(c);
                }
            } else if (c->handle_closed && c->inflight == 0) {
                conn_free(c);
            }
        }
        pipe_release(w->ring);
    }
}

static void on_claims_wake(uv_async_t *a)
{
    claims_settle(a->data);
}

static void on_wake(uv_async_t *a)
{
    struct worker *w = a->data;
    complete_durable(w);
    if (w->claims_waiting != NULL) {
        claims_settle(w); /* durability freed ring slots they were waiting for */
    }
    resume_blocked(w);
}

/* ---- timeouts and shutdown ---------------------------------------------------------------- */

static void expire(struct worker *w, struct conn_list *l, uint64_t now, const char *what)
{
    struct conn *c = l->head;
    while (c != NULL && deadline_passed(c->deadline_ms, now)) {
        struct conn *next = c->next;
        if (c->inflight == 0) {
            w->stats.timeouts++;
            if (what != NULL && c->len > 0 && (c->phase == PHASE_DETECT || c->phase == PHASE_RAW) &&
                conn_can_submit(c)) {
                /* Bytes that never became a message: a slow drip, or a variant whose framing
                 * needs more than it sent. Either way a caller, recorded (bounded per address)
                 * before the timeout refuses it. */
                char why[96];
                snprintf(why, sizeof(why), "%s after %u bytes", what, c->len);
                struct undecoded_input in = {.bytes = c->buf,
                                             .len = c->len,
                                             .total = c->len,
                                             .transport = CONTACT_TRANSPORT_TCP,
                                             .hostile = true,
                                             .reason = why};
                contact_record_undecoded(c, &in);
            } else if (what != NULL) {
                bad_peer(c, "%s", what);
                conn_refuse(c);
            } else {
                conn_close(c);
            }
        }
        c = next;
    }
}

/* Resets the held refusals whose time is up, or all of them. */
static void release_held(struct worker *w, uint64_t now, bool all)
{
    struct conn *c = w->hold_list.head;
    while (c != NULL && (all || deadline_passed(c->deadline_ms, now))) {
        struct conn *next = c->next;
        conn_refuse(c);
        c = next;
    }
}

static void close_handle_if_open(uv_handle_t *h)
{
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    close_handle_if_open(h);
}

/* Ring slots kept free for the connections when heartbeats records are queued. */
#define HEARTBEATS_RING_RESERVE 64
#define HEARTBEATS_BATCH 64

/* Queues the heartbeats records that are due (interval ended; every one when `all`) from this
 * worker's share of the roll-up stripes: one stripe per tick in turn, all of them when `all`.
 * Records are taken only as far as the ring has room, so none is taken and then dropped.
 * Returns true when nothing due is left behind. */
static bool queue_heartbeats(struct server *srv, struct pipe_ring *ring, unsigned from, unsigned to,
                             bool all, uint64_t *queued)
{
    uint64_t now_us = event_now_us();
    struct rollup_record hb[HEARTBEATS_BATCH];
    for (;;) {
        size_t room = pipe_free_slots(ring);
        if (room <= HEARTBEATS_RING_RESERVE) {
            return false;
        }
        size_t max = room - HEARTBEATS_RING_RESERVE;
        max = max < HEARTBEATS_BATCH ? max : HEARTBEATS_BATCH;
        size_t n = rollup_take_due(srv->rollup, from, to, now_us, all,
                                   evlog_erased_before_us(srv->log), hb, max);
        for (size_t i = 0; i < n; i++) {
            struct record rec;
            memset(&rec, 0, sizeof(rec));
            rec.kind = RECORD_HEARTBEATS;
            rec.u.heartbeats = hb[i].hb;
            struct pipe_slot *slot = pipe_reserve(ring);
            int rlen = event_encode(&rec, slot->record, PIPE_RECORD_MAX);
            if (rlen < 0) { /* bounded fields: unreachable */
                fprintf(srv->cfg->log, "sinkd: internal: cannot encode a heartbeats record\n");
                continue;
            }
            slot->owner = NULL;
            slot->record_len = (uint16_t)rlen;
            slot->reply_len = 0;
            slot->kind = SLOT_RECORD;
            if (hb[i].desc != 0) {
                slot->describes = 1;
                memcpy(slot->describes_key, hb[i].key, sizeof(slot->describes_key));
                slot->describes_desc = hb[i].desc;
                slot->describes_time_us = hb[i].hb.time_us;
            }
            pipe_publish(srv->pipe, ring);
            (*queued)++;
        }
        if (n < max) {
            return true;
        }
    }
}

/* A worker's share of the stripes, one stripe per sweep in turn. */
static void flush_heartbeats(struct worker *w)
{
    struct server *srv = w->srv;
    if (srv->rollup == NULL) {
        return;
    }
    unsigned from = w->id * ROLLUP_STRIPES / srv->nworkers;
    unsigned to = (w->id + 1) * ROLLUP_STRIPES / srv->nworkers;
    if (to <= from) {
        return;
    }
    /* Enough stripes a sweep that each is looked at at least once per interval (one a sweep,
     * every 16 s with 2 workers, for the default hour), so a record is at most one cycle late. */
    unsigned owned = to - from;
    uint64_t interval_ms = (uint64_t)srv->cfg->heartbeat_interval_s * 1000u;
    unsigned per_sweep = (unsigned)((owned * (uint64_t)SWEEP_MS + interval_ms - 1) / interval_ms);
    per_sweep = per_sweep < 1 ? 1 : per_sweep > owned ? owned : per_sweep;
    for (unsigned k = 0; k < per_sweep; k++) {
        unsigned st = from + (w->heartbeat_cursor++ % owned);
        (void)queue_heartbeats(srv, w->ring, st, st + 1, false, &w->stats.heartbeat_records);
    }
}

/* Once the workers have stopped (no poll can be counted any more), every count still held goes
 * into the log through worker 0's ring, which the main thread now owns; waits for room at most
 * the drain timeout, and says what it could not queue. */
void flush_heartbeats_at_stop(struct server *srv)
{
    if (srv->rollup == NULL || srv->nworkers == 0 || srv->workers[0].ring == NULL) {
        return;
    }
    struct worker *w = &srv->workers[0];
    uint64_t deadline = event_now_us() + (uint64_t)srv->cfg->limits.drain_timeout_ms * 1000u;
    while (!queue_heartbeats(srv, w->ring, 0, ROLLUP_STRIPES, true, &w->stats.heartbeat_records)) {
        settle_after_stop(srv);
        if (event_now_us() > deadline) {
            struct rollup_stats rs;
            rollup_stats(srv->rollup, &rs);
            fprintf(srv->cfg->log,
                    "sinkd: drain timeout: %llu rolled-up polls not written to the log\n",
                    (unsigned long long)rs.pending);
            return;
        }
        struct timespec pause = {0, 2 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

static void on_sweep(uv_timer_t *t)
{
    struct worker *w = t->data;
    uint64_t now = uv_now(&w->loop);
    if (w->srv->metrics != NULL) {
        pthread_mutex_lock(&w->published_mu);
        w->published = w->stats;
        pthread_mutex_unlock(&w->published_mu);
    }
    flush_suppressed(w, now);
    ipcount_sweep(w->srv->ipcount, &w->srv->iplimits, now, w->sweep_ticks++);
    expire(w, &w->header_list, now, "header timeout: no complete message in time");
    expire(w, &w->idle_list, now, NULL);
    release_held(w, now, w->stopping);
    if (!w->stopping) {
        flush_heartbeats(w);
        return;
    }
    /* Draining: close every connection that has nothing in flight; after the drain timeout,
     * close the rest too (their records are durable, only the reply is lost). */
    bool force = now >= w->stop_deadline_ms;
    struct conn_list *lists[] = {&w->header_list, &w->idle_list};
    for (size_t i = 0; i < 2; i++) {
        struct conn *c = lists[i]->head;
        while (c != NULL) {
            struct conn *next = c->next;
            if (c->inflight == 0 || force) {
                conn_close(c);
            }
            c = next;
        }
    }
    for (struct conn *c = w->blocked_head; c != NULL; c = c->blocked_next) {
        if (c->inflight == 0 || force) {
            conn_close(c);
        }
    }
    if (w->nconns == 0 || force) {
        flush_suppressed(w, now + 1000);
        close_handle_if_open((uv_handle_t *)&w->wake);
        pthread_mutex_lock(&w->claims_mu);
        w->claims_closed = true;
        pthread_mutex_unlock(&w->claims_mu);
        close_handle_if_open((uv_handle_t *)&w->claims_wake);
        close_handle_if_open((uv_handle_t *)&w->stop);
        close_handle_if_open((uv_handle_t *)&w->sweep);
        close_handle_if_open((uv_handle_t *)&w->accept_retry);
    }
}

static void on_stop(uv_async_t *a)
{
    struct worker *w = a->data;
    if (w->stopping) {
        return;
    }
    w->stopping = 1;
    w->stop_deadline_ms = uv_now(&w->loop) + w->srv->cfg->limits.drain_timeout_ms;
    for (size_t i = 0; i < w->nlisteners; i++) {
        close_handle_if_open((uv_handle_t *)&w->listeners[i]);
    }
    w->deferred = 0; /* closing a listener closes the connection libuv held for it */
    uv_timer_stop(&w->accept_retry);
    on_sweep(&w->sweep);
}

void *worker_main(void *arg)
{
    struct worker *w = arg;
    /* Named so `top -H` and perf tell the threads apart; failure only loses the name. */
    (void)pthread_setname_np(pthread_self(), "sinkd-worker");
    uv_run(&w->loop, UV_RUN_DEFAULT);
    return NULL;
}

int worker_init(struct server *srv, struct worker *w, unsigned id, int *fds, char *err,
                size_t errlen)
{
    w->id = id;
    w->srv = srv;
    pthread_mutex_init(&w->published_mu, NULL);
    w->seed = ((uint64_t)id + 1) * 0x2545F4914F6CDD1Dull ^ event_now_us();
    /* Shares that add up to exactly the budget server_fit_fd_limit kept descriptors for. */
    uint32_t hold_max = srv->cfg->limits.refuse_hold_max;
    w->hold_max = hold_max / srv->nworkers + (id < hold_max % srv->nworkers ? 1u : 0u);
    if (uv_loop_init(&w->loop) != 0) {
        return err_set(err, errlen, "cannot create event loop");
    }
    uv_async_init(&w->loop, &w->wake, on_wake);
    pthread_mutex_init(&w->claims_mu, NULL);
    uv_async_init(&w->loop, &w->claims_wake, on_claims_wake);
    w->claims_wake.data = w;
    w->wake.data = w;
    uv_async_init(&w->loop, &w->stop, on_stop);
    w->stop.data = w;
    uv_timer_init(&w->loop, &w->sweep);
    w->sweep.data = w;
    uv_timer_init(&w->loop, &w->accept_retry);
    w->accept_retry.data = w;
    for (size_t i = 0; i < srv->cfg->nlisten; i++) {
        uv_tcp_init(&w->loop, &w->listeners[i]);
        w->listeners[i].data = w;
        int rc = uv_tcp_open(&w->listeners[i], fds[i]);
        fds[i] = -1; /* the handle owns it now, and closes it */
        if (rc == 0) {
            rc = uv_listen((uv_stream_t *)&w->listeners[i], 4096, on_connection);
        }
        w->nlisteners = i + 1;
        if (rc != 0) {
            return err_set(err, errlen, "listen: %s", uv_strerror(rc));
        }
    }
    uv_timer_start(&w->sweep, on_sweep, SWEEP_MS, SWEEP_MS);
    return 0;
}

/* After the workers have stopped, settle what the writer finished for them. */
void settle_after_stop(struct server *srv)
{
    for (unsigned i = 0; i < srv->nworkers; i++) {
        struct worker *w = &srv->workers[i];
        struct pipe_slot *slot;
        if (w->ring == NULL) {
            continue; /* start-up failed before this worker got its ring */
        }
        while ((slot = pipe_next_durable(w->ring)) != NULL) {
            struct conn *c = slot->owner;
            if (c != NULL && --c->inflight == 0 && c->handle_closed) {
                conn_free(c);
            }
            pipe_release(w->ring);
        }
    }
}
