/* remediate.c -- decisions and commands: one decision per bot session under the loaded policy,
 * recorded durably before anything is encoded, then the command sent and its fate recorded. */
#include "net/server_internal.h"

/* The key of a (bot, authorisation) pair in the decided set. */
static void decided_key(const char *bot_key, const char *authorisation, uint8_t out[KEYSET_KEY])
{
    char input[33 + POLICY_ID_MAX + 2];
    uint8_t digest[32];
    int n = snprintf(input, sizeof(input), "%s\n%s", bot_key, authorisation);
    SHA256((const uint8_t *)input, (size_t)n, digest);
    memcpy(out, digest, KEYSET_KEY);
}

/* One decision per session, when the bot identifies itself: the verdict is recorded right behind
 * the contact, and a `send` verdict only queues the command behind the decision's durability
 * (complete_durable() encodes and sends it). Without --enforce and mode = enforce the policy
 * module never returns send; the check here is a second lock on the same door. */
void decide(struct conn *c, const struct contact *ct, const char *key)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    const struct policy_live *live = policy_handle_acquire(srv->policy);
    if (live == NULL) {
        return;
    }
    const struct policy *p = policy_live_policy(live);
    struct policy_bot bot;
    memset(&bot, 0, sizeof(bot));
    bot.src = ct->src;
    memcpy(bot.cc, ct->cc, sizeof(bot.cc));
    bot.asn = ct->asn;
    bot.tags = ct->tags;
    size_t nauth = policy_authorisation_count(p);
    for (size_t i = 0; i < nauth && i < 64; i++) {
        uint8_t pair[KEYSET_KEY];
        decided_key(key, policy_authorisation_id(p, i), pair);
        if (keyset_shared_contains(srv->decided, pair)) {
            bot.sent |= 1ull << i;
        }
    }
    struct policy_verdict v;
    policy_decide(p, POLICY_COMMAND_UNINSTALL, &bot, event_now_us(), policy_live_rate(live),
                  srv->cfg->enforce, &v);
    if (v.verdict == VERDICT_SEND && !srv->cfg->enforce) {
        v.verdict = VERDICT_DRY_RUN;
    }
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_DECISION;
    struct decision *d = &rec.u.decision;
    d->time_us = event_now_us();
    snprintf(d->node, sizeof(d->node), "%s", srv->cfg->node);
    snprintf(d->bot_key, sizeof(d->bot_key), "%s", key);
    d->src = ct->src;
    snprintf(d->authorisation, sizeof(d->authorisation), "%s", v.authorisation_id);
    d->verdict = v.verdict;
    if (v.verdict == VERDICT_SEND || v.verdict == VERDICT_DRY_RUN) {
        d->command = srv->cfg->uninstall_command;
        /* Marked now, not when durable: a second session of the same bot on another worker must
         * see it at once, or it could be sent twice. A dry run marks too, so it predicts what
         * enforcing would do (once per bot). */
        uint8_t pair[KEYSET_KEY];
        decided_key(key, v.authorisation_id, pair);
        keyset_shared_add(srv->decided, pair);
    }
    memcpy(d->policy_sha256, policy_sha256(p), 32);
    policy_live_release(live);

    struct pipe_slot *slot = pipe_reserve(w->ring); /* conn_can_submit() kept room for it */
    int rlen = slot != NULL ? event_encode(&rec, slot->record, PIPE_RECORD_MAX) : -1;
    if (slot == NULL || rlen < 0) {
        bad_peer(c, "internal: cannot queue the decision record; nothing will be sent");
        return;
    }
    slot->owner = c;
    slot->record_len = (uint16_t)rlen;
    slot->reply_len = 0;
    slot->kind = v.verdict == VERDICT_SEND ? SLOT_SEND : SLOT_RECORD;
    c->inflight++;
    pipe_publish(srv->pipe, w->ring);
    w->stats.decisions[v.verdict < VERDICT_COUNT ? v.verdict : 0]++;
}

/* The decision in `slot` is durable: encode the command, send it, and record what left (or
 * why nothing did). Called with the decision's slot already released, so a slot is free. */
/* Sends the uninstall command for a durable send decision and records what happened; with
 * why_not (or a closing connection) nothing is sent and command-failed says why. */
void send_command(struct worker *w, struct conn *c, const struct decision *d, const char *why_not)
{
    struct server *srv = w->srv;
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    struct command_record *cr = &rec.u.command;
    uint8_t bytes[PIPE_REPLY_MAX];
    ptrdiff_t n = 0;
    if (c->closing && why_not == NULL) {
        why_not = "connection closed before the command could be sent";
    }
    if (why_not == NULL) {
        n = srv->family->encode_command(srv->family_cfg, &c->proto, d->command, bytes,
                                        sizeof(bytes));
    }
    cr->time_us = event_now_us();
    snprintf(cr->node, sizeof(cr->node), "%s", srv->cfg->node);
    memcpy(cr->bot_key, d->bot_key, sizeof(cr->bot_key));
    cr->src = d->src;
    memcpy(cr->authorisation, d->authorisation, sizeof(cr->authorisation));
    cr->command = d->command;
    if (n > 0) {
        if (c->http != NULL) {
            conn_send_http(c, bytes, (size_t)n, !c->close_after_reply);
        } else {
            conn_send(c, bytes, (size_t)n);
        }
        SHA256(bytes, (size_t)n, cr->bytes_sha256);
    }
    if (n > 0 && !c->closing) {
        rec.kind = RECORD_COMMAND_SENT;
        w->stats.commands_sent++;
    } else {
        rec.kind = RECORD_COMMAND_FAILED;
        snprintf(cr->error, sizeof(cr->error), "%s",
                 why_not != NULL ? why_not : "the protocol module could not encode the command");
        w->stats.commands_failed++;
    }
    struct pipe_slot *slot = pipe_reserve(w->ring);
    int rlen = slot ? event_encode(&rec, slot->record, PIPE_RECORD_MAX) : -1;
    if (rlen < 0) {
        fprintf(srv->cfg->log, "sinkd: internal: could not queue the %s record\n",
                event_kind_name(rec.kind));
        return;
    }
    slot->owner = NULL;
    slot->record_len = (uint16_t)rlen;
    slot->reply_len = 0;
    slot->kind = SLOT_RECORD;
    pipe_publish(srv->pipe, w->ring);
}

/* The decision is durable. Raw TCP: the command goes out now. HTTP: it waits for the bot's
 * next request (or, if the connection ends first, is recorded as failed when it closes). */
void command_ready(struct worker *w, struct conn *c, const struct decision *d)
{
    if (c->http == NULL || c->closing) {
        send_command(w, c, d, NULL);
        return;
    }
    if (c->http->pending_command == NULL) {
        c->http->pending_command = malloc(sizeof(*d));
        if (c->http->pending_command == NULL) {
            send_command(w, c, d, "out of memory holding the command for the next HTTP request");
            return;
        }
        *c->http->pending_command = *d;
    }
}

int record_policy(struct server *srv, const struct policy *p, char *err, size_t errlen)
{
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_POLICY_LOADED;
    rec.u.note.time_us = event_now_us();
    snprintf(rec.u.note.node, sizeof(rec.u.note.node), "%s", srv->cfg->node);
    memcpy(rec.u.note.sha256, policy_sha256(p), 32);
    char ids[256] = "";
    size_t n = policy_authorisation_count(p);
    for (size_t i = 0, used = 0; i < n && used < sizeof(ids) - 1; i++) {
        used += (size_t)snprintf(ids + used, sizeof(ids) - used, "%s%s", i ? "," : "",
                                 policy_authorisation_id(p, i));
    }
    snprintf(rec.u.note.detail, sizeof(rec.u.note.detail),
             "file=%s name=%s version=%s authorisations=%s enforce_flag=%s", srv->cfg->policy_path,
             policy_name(p), policy_version(p), ids, srv->cfg->enforce ? "yes" : "no");
    uint8_t buf[EVENT_RECORD_MAX];
    int len = event_encode(&rec, buf, sizeof(buf));
    if (len < 0) {
        return err_set(err, errlen, "cannot encode the policy-loaded record");
    }
    return pipeline_append_sync(srv->pipe, buf, (size_t)len, err, errlen);
}

/* Which (bot, authorisation) pairs were already decided send or dry-run: read back from the
 * log, the only source of truth, so once-per-bot holds across restarts. */
int rebuild_decided(struct server *srv, char *err, size_t errlen)
{
    struct evlog_reader *r = NULL;
    if (evlog_reader_open(&r, srv->cfg->state_dir, 0, err, errlen) != 0) {
        return -1;
    }
    int rc;
    const uint8_t *entry;
    size_t len;
    uint64_t index;
    while ((rc = evlog_reader_next(r, &entry, &len, &index, err, errlen)) == 1) {
        struct record rec;
        if (len < 2 || entry[1] != RECORD_DECISION || event_decode(entry, len, &rec, NULL, 0)) {
            continue;
        }
        const struct decision *d = &rec.u.decision;
        if (d->verdict == VERDICT_SEND || d->verdict == VERDICT_DRY_RUN) {
            uint8_t key[KEYSET_KEY];
            decided_key(d->bot_key, d->authorisation, key);
            keyset_shared_add(srv->decided, key);
        }
    }
    evlog_reader_close(r);
    return rc < 0 ? -1 : 0;
}

void reload_policy(struct server *srv)
{
    char err[512];
    struct policy *p = NULL;
    if (policy_load_file(srv->cfg->policy_path, &p, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log,
                "sinkd: SIGHUP: policy NOT reloaded, the old one stays in force: %s\n", err);
        return;
    }
    /* Recorded before it is used: every decision refers to a policy the log already holds. */
    if (record_policy(srv, p, err, sizeof(err)) != 0) {
        fprintf(srv->cfg->log, "sinkd: SIGHUP: policy NOT reloaded: %s\n", err);
        policy_free(p);
        return;
    }
    if (policy_handle_replace(srv->policy, p, err, sizeof(err)) != 0) { /* owns p even then */
        fprintf(srv->cfg->log, "sinkd: SIGHUP: policy NOT reloaded: %s\n", err);
        return;
    }
    fprintf(srv->cfg->log, "sinkd: SIGHUP: policy %s reloaded\n", srv->cfg->policy_path);
}
