/* remediate.c -- decisions and commands: one decision per bot session under the loaded policy,
 * recorded durably before anything is encoded, then the command sent and its fate recorded. */
#include "net/server_internal.h"

/* The key of a (bot, authorisation) pair in the decided set. */
void decided_key(const char *bot_key, const char *authorisation, uint8_t out[KEYSET_KEY])
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
/* Fills the bot's sent and rehearsed bits from the server's two sets (issue 19 #5: a dry run never
 * counts as sent, so rehearsed bots stay commandable when enforcement starts). */
static void bot_history(struct server *srv, const struct policy *p, const char *key,
                        struct policy_bot *bot)
{
    size_t nauth = policy_authorisation_count(p);
    for (size_t i = 0; i < nauth && i < POLICY_MAX_AUTHORISATIONS; i++) {
        uint8_t pair[KEYSET_KEY];
        decided_key(key, policy_authorisation_id(p, i), pair);
        if (keyset_shared_contains(srv->sent, pair)) {
            bot->sent |= 1ull << i;
        }
        if (keyset_shared_contains(srv->rehearsed, pair)) {
            bot->rehearsed |= 1ull << i;
        }
    }
}

/* Decides `command` (POLICY_COMMAND_COLLECT or _UNINSTALL) for the bot of contact ct, known by
 * key, and queues the decision record; a send verdict queues the command behind the decision's
 * durability (complete_durable() encodes and sends it). Without --enforce and mode = enforce the
 * policy module never returns send; the check here is a second lock on the same door. Returns
 * the verdict (0 when no policy is loaded or the record could not be queued). */
static uint8_t decide_command(struct conn *c, const struct contact *ct, const char *key,
                              uint8_t command)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    const struct policy_live *live = policy_handle_acquire(srv->policy);
    if (live == NULL) {
        return 0;
    }
    const struct policy *p = policy_live_policy(live);
    struct policy_bot bot;
    memset(&bot, 0, sizeof(bot));
    bot.src = ct->src;
    memcpy(bot.cc, ct->cc, sizeof(bot.cc));
    bot.asn = ct->asn;
    bot.tags = ct->tags;
    bot_history(srv, p, key, &bot);
    struct policy_verdict v;
    policy_decide(p, command, &bot, event_now_us(), policy_live_rate(live), srv->cfg->enforce, &v);
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
    d->action = command == POLICY_COMMAND_COLLECT ? ACTION_COLLECT : ACTION_UNINSTALL;
    if (v.verdict == VERDICT_SEND || v.verdict == VERDICT_DRY_RUN) {
        /* The family's own "describe yourself" for a collection; for a remediation the id the
         * authorisation (or --uninstall-command) names: there is no built-in default. */
        d->command =
            command == POLICY_COMMAND_COLLECT ? srv->family->identify_command : v.command_id;
        if (v.verdict == VERDICT_SEND && d->command == 0) {
            d->verdict = VERDICT_DRY_RUN; /* policy_check_env refuses this; a third lock */
        }
        /* Marked now, not when durable: a second session of the same bot on another worker must
         * see it at once, or it could be sent twice. A send that then fails is unmarked
         * (send_command), so "already sent" means sent. */
        uint8_t pair[KEYSET_KEY];
        decided_key(key, v.authorisation_id, pair);
        keyset_shared_add(d->verdict == VERDICT_SEND ? srv->sent : srv->rehearsed, pair);
    }
    memcpy(d->policy_sha256, policy_sha256(p), 32);
    policy_live_release(live);
    /* Nodes sharing a registry: the send is claimed there first (claims.c), by a thread of its
     * own; the decision is recorded when the claim's outcome comes back. */
    if (d->verdict == VERDICT_SEND && srv->claims != NULL) {
        if (claims_submit(w, c, &rec)) {
            return VERDICT_SEND;
        }
        d->verdict = VERDICT_CLAIM_FAILED; /* out of memory: fail closed */
        uint8_t pair[KEYSET_KEY];
        decided_key(key, d->authorisation, pair);
        keyset_shared_remove(srv->sent, pair);
    }
    if (!publish_decision(w, c, &rec)) {
        bad_peer(c, "internal: cannot queue the decision record; nothing will be sent");
        return 0;
    }
    return d->verdict;
}

bool publish_decision(struct worker *w, struct conn *c, const struct record *rec)
{
    const struct decision *d = &rec->u.decision;
    struct pipe_slot *slot = pipe_reserve(w->ring); /* conn_can_submit() kept room for it */
    if (slot == NULL) {
        return false;
    }
    int rlen = event_encode(rec, slot->record, PIPE_RECORD_MAX);
    if (rlen < 0) {
        return false; /* bounded fields: unreachable; the slot stays unpublished */
    }
    slot->owner = c;
    slot->record_len = (uint16_t)rlen;
    slot->reply_len = 0;
    slot->kind = d->verdict == VERDICT_SEND ? SLOT_SEND : SLOT_RECORD;
    c->inflight++;
    pipe_publish(w->srv->pipe, w->ring);
    w->stats.decisions[d->verdict < VERDICT_COUNT ? d->verdict : 0]++;
    return true;
}

void decide(struct conn *c, const struct contact *ct, const char *key, bool presence_start)
{
    struct server *srv = conn_worker(c)->srv;
    /* Decisions made under an earlier policy do not hold this connection back from the one now
     * in force (8 bits of the generation: a connection outliving 256 reloads at once is moot). */
    uint8_t gen = (uint8_t)atomic_load(&srv->policy_gen);
    if (c->decided_gen != gen) {
        c->decided_gen = gen;
        c->collect_decided = 0;
        c->uninstall_decided = 0;
        c->awaiting_identity = 0;
    }
    const struct policy_live *live = policy_handle_acquire(srv->policy);
    if (live == NULL) {
        return;
    }
    bool collect = policy_has_command(policy_live_policy(live), POLICY_COMMAND_COLLECT);
    bool uninstall = policy_has_command(policy_live_policy(live), POLICY_COMMAND_UNINSTALL);
    policy_live_release(live);
    /* A passive sinkhole asks no bot for anything: machine information is asked for only where a
     * collect authorisation covers the bot, decided and recorded like a remediation. */
    if (presence_start && collect && !c->collect_decided) {
        c->collect_decided = 1;
        if (decide_command(c, ct, key, POLICY_COMMAND_COLLECT) == VERDICT_SEND) {
            c->awaiting_identity = 1; /* the remediation decision waits for who it is */
        }
    }
    /* One remediation decision per connection: when it identifies itself, or at the start of its
     * presence when it is not about to (keyed then by its address). */
    bool now =
        ct->msg_type == CONTACT_MSG_MACHINE_INFO || (presence_start && !c->awaiting_identity);
    if (uninstall && now && !c->uninstall_decided) {
        c->uninstall_decided = 1;
        (void)decide_command(c, ct, key, POLICY_COMMAND_UNINSTALL);
    }
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
    cr->action = d->action;
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
        /* Not sent: the bot stays commandable under this authorisation. */
        uint8_t pair[KEYSET_KEY];
        decided_key(d->bot_key, d->authorisation, pair);
        keyset_shared_remove(srv->sent, pair);
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

/* What serve can evaluate and guarantee, for policy_check_env: the tables loaded, --enforce, and
 * --uninstall-command. */
static void policy_env_of(const struct server_config *cfg, struct policy_env *env)
{
    memset(env, 0, sizeof(*env));
    env->country_table = cfg->geoip_path != NULL;
    env->asn_table = cfg->asn_v4_path != NULL || cfg->asn_v6_path != NULL;
    env->tag_table = cfg->tag_files[0] != NULL;
    env->enforce_flag = cfg->enforce;
    env->default_uninstall_id = cfg->uninstall_command;
}

/* Loads the policy file and checks it against what this server can guarantee (fail closed: an
 * exclusion with no table to evaluate it, enforcement with no command id, refuses), then says in
 * one line what it will do. */
int load_policy(struct server *srv, struct policy **out, char *err, size_t errlen)
{
    struct policy *p = NULL;
    struct policy_env env;
    policy_env_of(srv->cfg, &env);
    if (policy_load_file(srv->cfg->policy_path, &p, err, errlen) != 0) {
        return -1;
    }
    if (policy_check_env(p, &env, err, errlen) != 0) {
        policy_free(p);
        return -1;
    }
    char *line = policy_summary_line(p, &env);
    fprintf(srv->cfg->log, "sinkd: %s\n", line != NULL ? line : "policy loaded (no memory)");
    free(line);
    *out = p;
    return 0;
}

int server_check_policy(const struct server_config *cfg, char *err, size_t errlen)
{
    if (cfg->policy_path == NULL) {
        return 0;
    }
    struct policy *p = NULL;
    struct policy_env env;
    policy_env_of(cfg, &env);
    if (policy_load_file(cfg->policy_path, &p, err, errlen) != 0) {
        return -1;
    }
    int rc = policy_check_env(p, &env, err, errlen) != 0 ? -1 : 0;
    policy_free(p);
    return rc;
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
    struct policy_env env;
    policy_env_of(srv->cfg, &env);
    char *line = policy_summary_line(p, &env);
    /* The plain-words line as its tail: the record says what the policy did, not only which. */
    snprintf(rec.u.note.detail, sizeof(rec.u.note.detail),
             "file=%s name=%s version=%s authorisations=%s enforce_flag=%s uninstall_command=%u "
             "summary=%s",
             srv->cfg->policy_path, policy_name(p), policy_version(p), ids,
             srv->cfg->enforce ? "yes" : "no", (unsigned)srv->cfg->uninstall_command,
             line != NULL ? line : "");
    free(line);
    uint8_t buf[EVENT_RECORD_MAX];
    int len = event_encode(&rec, buf, sizeof(buf));
    if (len < 0) {
        return err_set(err, errlen, "cannot encode the policy-loaded record");
    }
    return pipeline_append_sync(srv->pipe, buf, (size_t)len, err, errlen);
}

/* Which (bot, authorisation) pairs were really sent a command (command-sent) and which were
 * rehearsed (dry-run decisions): read back from the log, the only source of truth, so once per
 * bot holds across restarts and a rehearsal never counts as a send. A send decision whose
 * command never left (the node stopped first) counts as neither. */
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
        if (len < 2 || (entry[1] != RECORD_DECISION && entry[1] != RECORD_COMMAND_SENT) ||
            event_decode(entry, len, &rec, NULL, 0)) {
            continue;
        }
        uint8_t key[KEYSET_KEY];
        if (rec.kind == RECORD_COMMAND_SENT) {
            decided_key(rec.u.command.bot_key, rec.u.command.authorisation, key);
            keyset_shared_add(srv->sent, key);
        } else if (rec.u.decision.verdict == VERDICT_DRY_RUN) {
            decided_key(rec.u.decision.bot_key, rec.u.decision.authorisation, key);
            keyset_shared_add(srv->rehearsed, key);
        }
    }
    evlog_reader_close(r);
    return rc < 0 ? -1 : 0;
}

void reload_policy(struct server *srv)
{
    char err[512];
    struct policy *p = NULL;
    if (load_policy(srv, &p, err, sizeof(err)) != 0) {
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
    atomic_fetch_add(&srv->policy_gen, 1); /* present bots are decided again under it */
    fprintf(srv->cfg->log, "sinkd: SIGHUP: policy %s reloaded\n", srv->cfg->policy_path);
}
