/* contact.c -- from what a caller sent to a contact record in the worker's ring: a decoded message
 * (its reply waits for the record's durability), or bytes no family decodes (an undecoded
 * contact, bounded per address, after which the connection ends). */
#include "net/server_internal.h"

/* What every contact of connection c shares: time, node, endpoints, family, enrichment. */
static void contact_begin(struct conn *c, uint8_t transport, struct contact *ct)
{
    struct server *srv = conn_worker(c)->srv;
    ct->time_us = event_now_us();
    snprintf(ct->node, sizeof(ct->node), "%s", srv->cfg->node);
    ct->src = *conn_src(c);
    conn_dst(c, &ct->dst);
    if (!net_addr_equal_ip(&ct->src, &c->peer) || ct->src.port != c->peer.port) {
        ct->peer = c->peer;
    }
    ct->transport = transport;
    snprintf(ct->family, sizeof(ct->family), "%s", srv->family->name);
    const struct enrich_tables *tables = enrich_handle_acquire(&srv->enrich);
    enrich_apply(tables, ct);
    enrich_handle_release(&srv->enrich, tables);
}

/* Encodes rec into a reserved slot and publishes it; conn_can_submit() said there is room. */
static bool submit(struct conn *c, const struct record *rec, struct pipe_slot *slot, uint8_t kind,
                   struct conn *owner)
{
    struct worker *w = conn_worker(c);
    int rlen = event_encode(rec, slot->record, PIPE_RECORD_MAX);
    if (rlen < 0) {
        /* Bounded fields make this unreachable; refuse the message rather than lose it silently. */
        bad_peer(c, "internal: cannot encode the %s record", event_kind_name(rec->kind));
        conn_close(c);
        return false;
    }
    slot->owner = owner;
    slot->record_len = (uint16_t)rlen;
    slot->kind = kind;
    if (owner != NULL) {
        owner->inflight++;
    }
    pipe_publish(w->srv->pipe, w->ring);
    return true;
}

/* The key a bot is known by on this connection: its identity's once it sent one, else its
 * source address's (event_bot_key of a contact without identity), as 32 hex digits. */
static void presence_key(const struct contact *ct, char out[33])
{
    if (ct->bot_key[0] != '\0') {
        memcpy(out, ct->bot_key, 33);
        return;
    }
    struct contact anon = *ct;
    memset(&anon.bot, 0, sizeof(anon.bot));
    event_bot_key(&anon, out);
}

/* A poll counted into the bot's heartbeats entry: answered at once (its count is in the entry,
 * written at the interval's end; rollup.h says what a kill -9 can cost). */
static void reply_now(struct conn *c, const struct proto_message *msg)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    if (c->http != NULL && c->http->pending_command != NULL) {
        /* HTTP cannot push: a waiting command goes out as this response instead. */
        struct decision *d = c->http->pending_command;
        c->http->pending_command = NULL;
        send_command(w, c, d, NULL);
        free(d);
    } else {
        uint8_t reply[PIPE_REPLY_MAX];
        ptrdiff_t n =
            srv->family->encode_reply(srv->family_cfg, &c->proto, msg, reply, sizeof(reply));
        if (n < 0) {
            bad_peer(c, "internal: cannot encode the reply");
            conn_close(c);
            return;
        }
        if (c->http != NULL) {
            conn_send_http(c, reply, (size_t)n, !c->close_after_reply);
        } else {
            conn_send(c, reply, (size_t)n);
        }
    }
    w->stats.replies++;
    if (c->close_after_reply) {
        conn_close(c);
    }
}

void handle_message(struct conn *c, const struct proto_message *msg, uint8_t transport)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_CONTACT;
    struct contact *ct = &rec.u.contact;
    contact_begin(c, transport, ct);
    ct->command = msg->command;
    ct->msg_type = msg->msg_type;
    memcpy(ct->body_sha256, msg->body_sha256, 32);
    if (srv->raw != NULL) {
        /* Best effort and counted (raw.h): the record holds the hash either way. */
        (void)raw_store_put(srv->raw, msg->body_sha256, msg->body, msg->body_len);
    }
    if (msg->has_identity) {
        ct->bot = msg->bot;
        event_bot_key(ct, ct->bot_key);
        c->has_bot_key = hex_decode(ct->bot_key, c->bot_key, sizeof(c->bot_key)) == 0;
    } else if (c->has_bot_key) {
        hex_encode(c->bot_key, sizeof(c->bot_key), ct->bot_key);
    }
    w->stats.contacts++;
    w->stats.by_type[msg->msg_type < CONTACT_MSG_TYPES ? msg->msg_type : 0]++;
    char key[33];
    presence_key(ct, key);

    /* Polls: the first of a bot's presence is a leaf of its own (and the moment a policy
     * decides for it); later ones are rolled up, unless replies are still owed on this
     * connection (answering now would overtake them). */
    bool poll = msg->msg_type == CONTACT_MSG_HELLO || msg->msg_type == CONTACT_MSG_HEARTBEAT;
    bool presence_start = msg->msg_type == CONTACT_MSG_HELLO;
    uint8_t k[16];
    bool keyed = poll && srv->rollup != NULL && hex_decode(key, k, sizeof(k)) == 0;
    if (keyed && c->inflight == 0) {
        bool due = false;
        uint32_t gen = atomic_load(&srv->policy_gen);
        if (rollup_poll(srv->rollup, k, ct, gen, &due) == ROLLUP_COUNTED) {
            w->stats.rolled_up++;
            if (due && srv->policy != NULL) {
                /* A policy loaded during the bot's presence decides for it now, not only at
                 * its next presence (a bot that never stops polling would never get one). */
                decide(c, ct, key, true);
            }
            reply_now(c, msg);
            return;
        }
        presence_start = true;
    }

    struct pipe_slot *slot = pipe_reserve(w->ring); /* conn_can_submit() said there is one */
    ptrdiff_t reply =
        srv->family->encode_reply(srv->family_cfg, &c->proto, msg, slot->reply, PIPE_REPLY_MAX);
    if (reply < 0) {
        bad_peer(c, "internal: cannot encode the reply");
        conn_close(c);
        return;
    }
    slot->reply_len = (uint16_t)reply;
    if (keyed) {
        /* A poll's leaf describes its bot: the roll-up's later records may name it. */
        slot->describes = 1;
        memcpy(slot->describes_key, k, sizeof(k));
        slot->describes_desc = rollup_contact_desc(ct);
        slot->describes_time_us = ct->time_us;
    }
    if (!submit(c, &rec, slot, c->http != NULL ? SLOT_REPLY_HTTP : SLOT_REPLY_RAW, c)) {
        return;
    }
    if (srv->policy != NULL && (presence_start || msg->msg_type == CONTACT_MSG_MACHINE_INFO)) {
        decide(c, ct, key, presence_start);
    }
}

bool contact_record_undecoded(struct conn *c, const struct undecoded_input *in)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    uint32_t suppressed = 0;
    bool admitted =
        undecoded_limit_admit(srv->undecoded, conn_src(c), uv_now(&w->loop), &suppressed);
    if (in->hostile) {
        bad_peer(c, "%s", in->reason);
    } else {
        w->stats.undecoded_callers++;
        undecoded_caller(c, "%s%s", in->reason, admitted ? "" : " (past the per-address bound)");
    }
    if (admitted) {
        struct record rec;
        memset(&rec, 0, sizeof(rec));
        rec.kind = RECORD_CONTACT;
        struct contact *ct = &rec.u.contact;
        contact_begin(c, in->transport, ct);
        ct->msg_type = CONTACT_MSG_UNDECODED;
        ct->size = in->total > UINT32_MAX ? UINT32_MAX : (uint32_t)in->total;
        ct->head_len = (uint32_t)(in->len < CONTACT_HEAD_MAX ? in->len : CONTACT_HEAD_MAX);
        SHA256(in->bytes, ct->head_len, ct->head_sha256);
        snprintf(ct->reason, sizeof(ct->reason), "%s", in->reason);
        ct->suppressed = suppressed;
        if (srv->raw != NULL && ct->head_len > 0) {
            /* Under --keep-raw the bytes themselves, named by the digest the record carries. */
            (void)raw_store_put(srv->raw, ct->head_sha256, in->bytes, ct->head_len);
        }
        struct pipe_slot *slot = pipe_reserve(w->ring); /* the caller checked for room */
        size_t reply_len = in->reply != NULL && in->reply_len < PIPE_REPLY_MAX ? in->reply_len : 0;
        if (reply_len > 0) {
            memcpy(slot->reply, in->reply, reply_len);
        }
        slot->reply_len = (uint16_t)reply_len;
        /* A hostile peer is owed nothing: its record stands alone and it is refused now. */
        if (!submit(c, &rec, slot, in->hostile ? SLOT_RECORD : SLOT_REPLY_CLOSE,
                    in->hostile ? NULL : c)) {
            return false;
        }
        w->stats.contacts++;
        w->stats.by_type[CONTACT_MSG_UNDECODED]++;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    if (in->hostile) {
        conn_refuse_held(c);
    } else if (!admitted) {
        /* Not recorded one by one (counted into the address's next record): end it now. */
        conn_send(c, in->reply, in->reply_len);
        conn_close(c);
    } else {
        c->close_after_reply = 1; /* SLOT_REPLY_CLOSE: reply (if any) and FIN once durable */
    }
    return false;
}
