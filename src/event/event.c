/* event.c -- canonical binary encoding, decoding and JSON rendering of sinkd's records. */
#include "event/event.h"
#include "util/err.h"
#include "util/hex.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

enum field_type { F_U8, F_U32, F_U64, F_STR, F_ADDR, F_HASH };

struct field {
    uint8_t tag;
    uint8_t type;
    const char *name; /* JSON key */
    size_t offset;    /* within the kind's struct */
    size_t size;      /* for F_STR: buffer size including NUL */
};

#define FLD(tag, type, name, st, member)                                                           \
    {                                                                                              \
        tag, type, name, offsetof(st, member), sizeof(((st *)0)->member)                           \
    }

/* Tags are shared between kinds so a field means the same thing everywhere; never renumber. */
static const struct field contact_fields[] = {
    FLD(1, F_U64, "time_us", struct contact, time_us),
    FLD(2, F_STR, "node", struct contact, node),
    FLD(3, F_ADDR, "src", struct contact, src),
    FLD(4, F_ADDR, "dst", struct contact, dst),
    FLD(5, F_ADDR, "peer", struct contact, peer),
    FLD(6, F_U8, "transport", struct contact, transport),
    FLD(7, F_STR, "family", struct contact, family),
    FLD(8, F_U32, "command", struct contact, command),
    FLD(9, F_U8, "type", struct contact, msg_type),
    FLD(10, F_STR, "host", struct contact, bot.host),
    FLD(11, F_STR, "user", struct contact, bot.user),
    FLD(12, F_STR, "os", struct contact, bot.os),
    FLD(13, F_STR, "local_ip", struct contact, bot.local_ip),
    FLD(14, F_STR, "campaign", struct contact, bot.campaign),
    FLD(15, F_STR, "version", struct contact, bot.version),
    FLD(16, F_STR, "bot_key", struct contact, bot_key),
    FLD(17, F_HASH, "body_sha256", struct contact, body_sha256),
    FLD(18, F_STR, "cc", struct contact, cc),
    FLD(19, F_U32, "asn", struct contact, asn),
    FLD(20, F_STR, "tags", struct contact, tags),
    FLD(21, F_U32, "enrich_id", struct contact, enrich_id),
    FLD(22, F_U32, "size", struct contact, size),
    FLD(23, F_HASH, "head_sha256", struct contact, head_sha256),
    FLD(24, F_U32, "head_len", struct contact, head_len),
    FLD(25, F_STR, "reason", struct contact, reason),
    FLD(26, F_U32, "suppressed", struct contact, suppressed),
};

static const struct field heartbeats_fields[] = {
    FLD(1, F_U64, "time_us", struct heartbeats, time_us),
    FLD(2, F_STR, "node", struct heartbeats, node),
    FLD(3, F_ADDR, "src", struct heartbeats, src),
    FLD(4, F_ADDR, "dst", struct heartbeats, dst),
    FLD(5, F_ADDR, "peer", struct heartbeats, peer),
    FLD(6, F_U8, "transport", struct heartbeats, transport),
    FLD(7, F_STR, "family", struct heartbeats, family),
    FLD(16, F_STR, "bot_key", struct heartbeats, bot_key),
    FLD(18, F_STR, "cc", struct heartbeats, cc),
    FLD(19, F_U32, "asn", struct heartbeats, asn),
    FLD(20, F_STR, "tags", struct heartbeats, tags),
    FLD(21, F_U32, "enrich_id", struct heartbeats, enrich_id),
    FLD(41, F_U64, "first_time_us", struct heartbeats, first_time_us),
    FLD(42, F_U32, "count", struct heartbeats, count),
    FLD(43, F_HASH, "heartbeats_sha256", struct heartbeats, heartbeats_sha256),
    FLD(53, F_U64, "described_in", struct heartbeats, described_in),
};

static const struct field decision_fields[] = {
    FLD(1, F_U64, "time_us", struct decision, time_us),
    FLD(2, F_STR, "node", struct decision, node),
    FLD(3, F_ADDR, "src", struct decision, src),
    FLD(8, F_U32, "command", struct decision, command),
    FLD(32, F_STR, "bot_key", struct decision, bot_key),
    FLD(33, F_STR, "authorisation", struct decision, authorisation),
    FLD(34, F_U8, "verdict", struct decision, verdict),
    FLD(35, F_HASH, "policy_sha256", struct decision, policy_sha256),
    FLD(44, F_U8, "action", struct decision, action),
};

static const struct field command_fields[] = {
    FLD(1, F_U64, "time_us", struct command_record, time_us),
    FLD(2, F_STR, "node", struct command_record, node),
    FLD(3, F_ADDR, "src", struct command_record, src),
    FLD(8, F_U32, "command", struct command_record, command),
    FLD(32, F_STR, "bot_key", struct command_record, bot_key),
    FLD(33, F_STR, "authorisation", struct command_record, authorisation),
    FLD(36, F_HASH, "bytes_sha256", struct command_record, bytes_sha256),
    FLD(37, F_STR, "error", struct command_record, error),
    FLD(44, F_U8, "action", struct command_record, action),
};

static const struct field access_fields[] = {
    FLD(1, F_U64, "time_us", struct access_record, time_us),
    FLD(2, F_STR, "node", struct access_record, node),
    FLD(45, F_STR, "operator", struct access_record, operator_name),
    FLD(46, F_STR, "what", struct access_record, what),
    FLD(47, F_STR, "scope", struct access_record, scope),
    FLD(48, F_U64, "rows", struct access_record, rows),
    FLD(49, F_HASH, "output_sha256", struct access_record, output_sha256),
    FLD(50, F_STR, "justification", struct access_record, justification),
};

static const struct field erasure_fields[] = {
    FLD(1, F_U64, "time_us", struct erasure_record, time_us),
    FLD(2, F_STR, "node", struct erasure_record, node),
    FLD(40, F_STR, "detail", struct erasure_record, detail),
    FLD(45, F_STR, "operator", struct erasure_record, operator_name),
    FLD(51, F_U64, "before_us", struct erasure_record, before_us),
    FLD(52, F_STR, "legal_basis", struct erasure_record, legal_basis),
};

/* Tags 60..79 are the portal's (event.h); 45 (operator) is shared with access records. */
static const struct field portal_request_fields[] = {
    FLD(1, F_U64, "time_us", struct portal_request_record, time_us),
    FLD(2, F_STR, "node", struct portal_request_record, node),
    FLD(45, F_STR, "operator", struct portal_request_record, operator_name),
    FLD(60, F_STR, "authority", struct portal_request_record, authority),
    FLD(61, F_U64, "request_id", struct portal_request_record, request_id),
    FLD(62, F_STR, "scope", struct portal_request_record, scope),
    FLD(63, F_U64, "not_before_us", struct portal_request_record, not_before_us),
    FLD(64, F_U64, "not_after_us", struct portal_request_record, not_after_us),
    FLD(65, F_STR, "legal_reference", struct portal_request_record, legal_reference),
    FLD(66, F_U8, "state", struct portal_request_record, state),
    FLD(67, F_STR, "reason", struct portal_request_record, reason),
    FLD(68, F_STR, "authorisation", struct portal_request_record, authorisation),
    FLD(69, F_HASH, "policy_sha256", struct portal_request_record, policy_sha256),
};

static const struct field note_fields[] = {
    FLD(1, F_U64, "time_us", struct note_record, time_us),
    FLD(2, F_STR, "node", struct note_record, node),
    FLD(38, F_HASH, "sha256", struct note_record, sha256),
    FLD(39, F_U32, "id", struct note_record, id),
    FLD(40, F_STR, "detail", struct note_record, detail),
};

struct kind_desc {
    const char *name;
    const struct field *fields;
    size_t nfields;
};

#define N(a) (sizeof(a) / sizeof((a)[0]))
static const struct kind_desc kinds[] = {
    [RECORD_CONTACT] = {"contact", contact_fields, N(contact_fields)},
    [RECORD_DECISION] = {"decision", decision_fields, N(decision_fields)},
    [RECORD_COMMAND_SENT] = {"command-sent", command_fields, N(command_fields)},
    [RECORD_COMMAND_FAILED] = {"command-failed", command_fields, N(command_fields)},
    [RECORD_POLICY_LOADED] = {"policy-loaded", note_fields, N(note_fields)},
    [RECORD_TABLE_LOADED] = {"table-loaded", note_fields, N(note_fields)},
    [RECORD_NODE_STARTED] = {"node-started", note_fields, N(note_fields)},
    [RECORD_NODE_STOPPED] = {"node-stopped", note_fields, N(note_fields)},
    [RECORD_HEARTBEATS] = {"heartbeats", heartbeats_fields, N(heartbeats_fields)},
    [RECORD_ACCESS] = {"access", access_fields, N(access_fields)},
    [RECORD_ERASURE] = {"erasure", erasure_fields, N(erasure_fields)},
    [RECORD_PORTAL_REQUEST] = {"portal-request", portal_request_fields, N(portal_request_fields)},
    [RECORD_PORTAL_DECISION] = {"portal-decision", portal_request_fields, N(portal_request_fields)},
};

static const struct kind_desc *kind_lookup(uint8_t kind)
{
    if (kind == 0 || kind >= N(kinds)) {
        return NULL;
    }
    return &kinds[kind];
}

void event_heartbeats_describe(struct heartbeats *hb, const struct contact *ct)
{
    hb->src = ct->src;
    hb->dst = ct->dst;
    hb->peer = ct->peer;
    hb->transport = ct->transport;
    memcpy(hb->node, ct->node, sizeof(hb->node));
    memcpy(hb->family, ct->family, sizeof(hb->family));
    memcpy(hb->bot_key, ct->bot_key, sizeof(hb->bot_key));
    memcpy(hb->cc, ct->cc, sizeof(hb->cc));
    hb->asn = ct->asn;
    memcpy(hb->tags, ct->tags, sizeof(hb->tags));
    hb->enrich_id = ct->enrich_id;
}

void event_heartbeats_copy_description(struct heartbeats *to, const struct heartbeats *from)
{
    memcpy(to->node, from->node, sizeof(to->node));
    to->src = from->src;
    to->dst = from->dst;
    to->peer = from->peer;
    to->transport = from->transport;
    memcpy(to->family, from->family, sizeof(to->family));
    memcpy(to->bot_key, from->bot_key, sizeof(to->bot_key));
    to->enrich_id = from->enrich_id;
}

const char *event_kind_name(uint8_t kind)
{
    const struct kind_desc *k = kind_lookup(kind);
    return k ? k->name : "unknown";
}

const char *event_msg_type_name(uint8_t msg_type)
{
    switch (msg_type) {
    case CONTACT_MSG_HELLO:
        return "hello";
    case CONTACT_MSG_MACHINE_INFO:
        return "machine-info";
    case CONTACT_MSG_HEARTBEAT:
        return "heartbeat";
    case CONTACT_MSG_UNDECODED:
        return "undecoded";
    default:
        return "other";
    }
}

const char *event_transport_name(uint8_t transport)
{
    switch (transport) {
    case CONTACT_TRANSPORT_HTTP:
        return "http";
    case CONTACT_TRANSPORT_HTTP_HEADER:
        return "http-header";
    default:
        return "tcp";
    }
}

const char *event_action_name(uint8_t action)
{
    return action == ACTION_COLLECT ? "collect" : "uninstall";
}

const char *event_verdict_name(uint8_t verdict)
{
    static const char *const names[] = {
        [VERDICT_SEND] = "send",
        [VERDICT_DRY_RUN] = "dry-run",
        [VERDICT_NOT_AUTHORISED] = "not-authorised",
        [VERDICT_EXCLUDED] = "excluded",
        [VERDICT_OUTSIDE_WINDOW] = "outside-window",
        [VERDICT_RATE_LIMITED] = "rate-limited",
        [VERDICT_ALREADY_SENT] = "already-sent",
        [VERDICT_ALREADY_REHEARSED] = "already-rehearsed",
        [VERDICT_CLAIM_FAILED] = "claim-failed",
    };
    if (verdict == 0 || verdict >= N(names)) {
        return "unknown";
    }
    return names[verdict];
}

static size_t addr_ip_len(uint8_t family)
{
    return family == AF_INET ? 4 : 16;
}

static const uint8_t zero_hash[32];

/* Encoded value length of one field, 0 when the field is empty and therefore omitted. */
static size_t field_len(const struct field *f, const uint8_t *base)
{
    const uint8_t *p = base + f->offset;
    switch (f->type) {
    case F_U8:
        return *p ? 1 : 0;
    case F_U32: {
        uint32_t v;
        memcpy(&v, p, 4);
        return v ? 4 : 0;
    }
    case F_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        return v ? 8 : 0;
    }
    case F_STR:
        return strnlen((const char *)p, f->size - 1);
    case F_ADDR: {
        const struct net_addr *a = (const struct net_addr *)p;
        if (a->family != AF_INET && a->family != AF_INET6) {
            return 0;
        }
        return 1 + addr_ip_len(a->family) + 2;
    }
    case F_HASH:
        return memcmp(p, zero_hash, 32) ? 32 : 0;
    }
    return 0;
}

static void put_be(uint8_t *out, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        out[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    }
}

static uint64_t get_be(const uint8_t *in, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        v = (v << 8) | in[i];
    }
    return v;
}

static void field_write(const struct field *f, const uint8_t *base, uint8_t *out, size_t len)
{
    const uint8_t *p = base + f->offset;
    switch (f->type) {
    case F_U8:
        out[0] = *p;
        break;
    case F_U32: {
        uint32_t v;
        memcpy(&v, p, 4);
        put_be(out, v, 4);
        break;
    }
    case F_U64: {
        uint64_t v;
        memcpy(&v, p, 8);
        put_be(out, v, 8);
        break;
    }
    case F_STR:
    case F_HASH:
        memcpy(out, p, len);
        break;
    case F_ADDR: {
        const struct net_addr *a = (const struct net_addr *)p;
        out[0] = a->family == AF_INET ? 4 : 6;
        memcpy(out + 1, a->ip, addr_ip_len(a->family));
        put_be(out + 1 + addr_ip_len(a->family), a->port, 2);
        break;
    }
    }
}

int event_encode(const struct record *rec, uint8_t *out, size_t cap)
{
    const struct kind_desc *k = kind_lookup(rec->kind);
    if (k == NULL || cap < 2) {
        return -1;
    }
    const uint8_t *base = (const uint8_t *)&rec->u;
    size_t pos = 0;
    out[pos++] = EVENT_RECORD_VERSION;
    out[pos++] = rec->kind;
    for (size_t i = 0; i < k->nfields; i++) {
        const struct field *f = &k->fields[i];
        size_t len = field_len(f, base);
        if (len == 0) {
            continue;
        }
        if (pos + 3 + len > cap) {
            return -1;
        }
        out[pos] = f->tag;
        put_be(out + pos + 1, len, 2);
        field_write(f, base, out + pos + 3, len);
        pos += 3 + len;
    }
    const struct record_seal *sl = &rec->seal;
    if (sl->epoch != 0) {
        size_t need = 3 + 8 + (sl->has_bot_ref ? 3 + EVENT_SEAL_BOT_REF_SIZE : 0) +
                      (sl->sealed_len ? 3 + (size_t)sl->sealed_len : 0);
        if (pos + need > cap || sl->sealed_len > EVENT_SEALED_MAX) {
            return -1;
        }
        out[pos] = EVENT_TAG_SEAL_EPOCH;
        put_be(out + pos + 1, 8, 2);
        put_be(out + pos + 3, sl->epoch, 4);
        put_be(out + pos + 7, sl->key_id, 4);
        pos += 11;
        if (sl->has_bot_ref) {
            out[pos] = EVENT_TAG_SEAL_BOT_REF;
            put_be(out + pos + 1, EVENT_SEAL_BOT_REF_SIZE, 2);
            memcpy(out + pos + 3, sl->bot_ref, EVENT_SEAL_BOT_REF_SIZE);
            pos += 3 + EVENT_SEAL_BOT_REF_SIZE;
        }
        if (sl->sealed_len > 0) {
            out[pos] = EVENT_TAG_SEALED;
            put_be(out + pos + 1, sl->sealed_len, 2);
            memcpy(out + pos + 3, sl->sealed, sl->sealed_len);
            pos += 3 + sl->sealed_len;
        }
    }
    return (int)pos;
}

/* The seal tags (80..82), after every field of the kind: epoch first and required, bot_ref
 * exactly 8 bytes, the sealed fields at least a GCM tag long. */
static int seal_field_read(struct record *out, uint8_t tag, const uint8_t *v, size_t len,
                           size_t pos, char *err, size_t errlen)
{
    struct record_seal *sl = &out->seal;
    if (tag == EVENT_TAG_SEAL_EPOCH) {
        uint32_t epoch = len == 8 ? (uint32_t)get_be(v, 4) : 0;
        if (epoch == 0) {
            return err_set(err, errlen, "seal epoch at byte %zu: bad value", pos);
        }
        sl->epoch = epoch;
        sl->key_id = (uint32_t)get_be(v + 4, 4);
        return 0;
    }
    if (sl->epoch == 0) {
        return err_set(err, errlen, "field tag %u at byte %zu: sealed fields without an epoch", tag,
                       pos);
    }
    if (tag == EVENT_TAG_SEAL_BOT_REF) {
        if (len != EVENT_SEAL_BOT_REF_SIZE) {
            return err_set(err, errlen, "seal bot_ref at byte %zu: length %zu", pos, len);
        }
        memcpy(sl->bot_ref, v, len);
        sl->has_bot_ref = true;
        return 0;
    }
    if (len <= 16 || len > EVENT_SEALED_MAX) {
        return err_set(err, errlen, "sealed fields at byte %zu: length %zu", pos, len);
    }
    memcpy(sl->sealed, v, len);
    sl->sealed_len = (uint16_t)len;
    return 0;
}

static int field_read(const struct field *f, uint8_t *base, const uint8_t *v, size_t len, char *err,
                      size_t errlen)
{
    uint8_t *p = base + f->offset;
    switch (f->type) {
    case F_U8:
        if (len != 1 || v[0] == 0) {
            return err_set(err, errlen, "field '%s': bad u8", f->name);
        }
        *p = v[0];
        return 0;
    case F_U32: {
        if (len != 4) {
            return err_set(err, errlen, "field '%s': length %zu, expected 4", f->name, len);
        }
        uint32_t x = (uint32_t)get_be(v, 4);
        if (x == 0) {
            return err_set(err, errlen, "field '%s': zero must be omitted", f->name);
        }
        memcpy(p, &x, 4);
        return 0;
    }
    case F_U64: {
        if (len != 8) {
            return err_set(err, errlen, "field '%s': length %zu, expected 8", f->name, len);
        }
        uint64_t x = get_be(v, 8);
        if (x == 0) {
            return err_set(err, errlen, "field '%s': zero must be omitted", f->name);
        }
        memcpy(p, &x, 8);
        return 0;
    }
    case F_STR:
        if (len >= f->size || memchr(v, '\0', len) != NULL) {
            return err_set(err, errlen, "field '%s': string too long or holds NUL", f->name);
        }
        memcpy(p, v, len);
        p[len] = '\0';
        return 0;
    case F_HASH:
        if (len != 32 || memcmp(v, zero_hash, 32) == 0) {
            return err_set(err, errlen, "field '%s': bad hash", f->name);
        }
        memcpy(p, v, 32);
        return 0;
    case F_ADDR: {
        struct net_addr *a = (struct net_addr *)p;
        if (len == 7 && v[0] == 4) {
            a->family = AF_INET;
        } else if (len == 19 && v[0] == 6) {
            a->family = AF_INET6;
        } else {
            return err_set(err, errlen, "field '%s': bad address", f->name);
        }
        memcpy(a->ip, v + 1, addr_ip_len(a->family));
        a->port = (uint16_t)get_be(v + 1 + addr_ip_len(a->family), 2);
        return 0;
    }
    }
    return err_set(err, errlen, "field '%s': unknown type", f->name);
}

int event_decode(const uint8_t *buf, size_t len, struct record *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof(*out));
    if (len < 2) {
        return err_set(err, errlen, "record truncated (%zu bytes)", len);
    }
    if (buf[0] != EVENT_RECORD_VERSION) {
        return err_set(err, errlen, "unknown record version %u", buf[0]);
    }
    const struct kind_desc *k = kind_lookup(buf[1]);
    if (k == NULL) {
        return err_set(err, errlen, "unknown record kind %u", buf[1]);
    }
    out->kind = buf[1];
    uint8_t *base = (uint8_t *)&out->u;
    size_t pos = 2;
    size_t next_field = 0;
    unsigned next_seal_tag = EVENT_TAG_SEAL_EPOCH;
    while (pos < len) {
        if (len - pos < 3) {
            return err_set(err, errlen, "field header truncated at byte %zu", pos);
        }
        uint8_t tag = buf[pos];
        size_t flen = (size_t)get_be(buf + pos + 1, 2);
        if (flen == 0 || flen > len - pos - 3) {
            return err_set(err, errlen, "field tag %u at byte %zu: bad length %zu", tag, pos, flen);
        }
        if (tag >= EVENT_TAG_SEAL_EPOCH && tag <= EVENT_TAG_SEALED) {
            if (tag < next_seal_tag) {
                return err_set(err, errlen, "field tag %u at byte %zu: repeated or out of order",
                               tag, pos);
            }
            next_seal_tag = tag + 1;
            next_field = k->nfields; /* nothing of the kind may follow */
            if (seal_field_read(out, tag, buf + pos + 3, flen, pos, err, errlen) != 0) {
                return -1;
            }
            pos += 3 + flen;
            continue;
        }
        while (next_field < k->nfields && k->fields[next_field].tag < tag) {
            next_field++;
        }
        if (next_field == k->nfields || k->fields[next_field].tag != tag) {
            return err_set(err, errlen,
                           "field tag %u at byte %zu: unknown, repeated or out of order", tag, pos);
        }
        if (field_read(&k->fields[next_field], base, buf + pos + 3, flen, err, errlen) != 0) {
            return -1;
        }
        next_field++;
        pos += 3 + flen;
    }
    if (out->seal.epoch != 0 && out->seal.sealed_len == 0) {
        return err_set(err, errlen, "a seal epoch without sealed fields");
    }
    return 0;
}

void event_format_time(uint64_t time_us, char out[32])
{
    time_t secs = (time_t)(time_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char date[24];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%06uZ", date, (unsigned)(time_us % 1000000));
}

uint64_t event_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void json_set_addr(json_t *obj, const char *prefix, const struct net_addr *a)
{
    char key[32];
    char ip[NET_ADDR_STRLEN];
    net_addr_format_ip(a, ip);
    snprintf(key, sizeof(key), "%s_ip", prefix);
    json_object_set_new(obj, key, json_string(ip));
    snprintf(key, sizeof(key), "%s_port", prefix);
    json_object_set_new(obj, key, json_integer(a->port));
}

/* A record still sealed (its epoch key erased, or not readable here): when it was sealed and
 * the per-epoch pseudonym; its personal fields are not shown because they are not there. */
static void json_set_seal(json_t *obj, const struct record_seal *sl)
{
    json_t *o = json_object();
    char when[32];
    event_format_time((uint64_t)sl->epoch * 1000000u, when);
    json_object_set_new(o, "epoch", json_string(when));
    char id[9];
    snprintf(id, sizeof(id), "%08x", (unsigned)sl->key_id);
    json_object_set_new(o, "key_id", json_string(id));
    if (sl->has_bot_ref) {
        char h[2 * EVENT_SEAL_BOT_REF_SIZE + 1];
        hex_encode(sl->bot_ref, EVENT_SEAL_BOT_REF_SIZE, h);
        json_object_set_new(o, "bot_ref", json_string(h));
    }
    json_object_set_new(o, "personal_data",
                        json_string("sealed: no key (erased, or not readable here)"));
    json_object_set_new(obj, "sealed", o);
}

json_t *event_to_json(const struct record *rec)
{
    const struct kind_desc *k = kind_lookup(rec->kind);
    if (k == NULL) {
        return NULL;
    }
    json_t *obj = json_object();
    json_object_set_new(obj, "kind", json_string(k->name));
    if (rec->seal.epoch != 0) {
        json_set_seal(obj, &rec->seal);
    }
    const uint8_t *base = (const uint8_t *)&rec->u;
    for (size_t i = 0; i < k->nfields; i++) {
        const struct field *f = &k->fields[i];
        const uint8_t *p = base + f->offset;
        /* The fields of an undecoded caller appear only on undecoded contacts. */
        if (rec->kind == RECORD_CONTACT && f->tag >= 22 && f->tag <= 26 &&
            rec->u.contact.msg_type != CONTACT_MSG_UNDECODED) {
            continue;
        }
        switch (f->type) {
        case F_U8:
            if ((rec->kind == RECORD_CONTACT || rec->kind == RECORD_HEARTBEATS) && f->tag == 6) {
                json_object_set_new(obj, "transport", json_string(event_transport_name(*p)));
            } else if (rec->kind == RECORD_CONTACT && f->tag == 9) {
                json_object_set_new(obj, "type", json_string(event_msg_type_name(*p)));
            } else if (f->tag == 34) {
                json_object_set_new(obj, "verdict", json_string(event_verdict_name(*p)));
            } else if (f->tag == 44) {
                json_object_set_new(obj, "action", json_string(event_action_name(*p)));
            } else if (f->tag == 66) {
                static const char *const states[] = {"submitted", "approved", "rejected"};
                json_object_set_new(obj, "state", json_string(*p < 3 ? states[*p] : "unknown"));
            } else {
                json_object_set_new(obj, f->name, json_integer(*p));
            }
            break;
        case F_U32: {
            uint32_t v;
            memcpy(&v, p, 4);
            if (f->tag == 8) {
                char cmd[16];
                snprintf(cmd, sizeof(cmd), "0x%04x", v);
                json_object_set_new(obj, "command", json_string(cmd));
            } else {
                json_object_set_new(obj, f->name, json_integer(v));
            }
            break;
        }
        case F_U64: {
            uint64_t v;
            memcpy(&v, p, 8);
            /* access: rows; portal: request id; heartbeats: the leaf named */
            if (f->tag == 48 || f->tag == 61 || f->tag == 53) {
                json_object_set_new(obj, f->name, json_integer((json_int_t)v));
                break;
            }
            /* Times: "time_us" renders as "time", "first_time_us" as "first_time", ... */
            char key[32];
            snprintf(key, sizeof(key), "%.*s", (int)(strlen(f->name) - 3), f->name);
            if (v == 0) {
                json_object_set_new(obj, key, json_string(""));
                break;
            }
            char when[32];
            event_format_time(v, when);
            json_object_set_new(obj, key, json_string(when));
            break;
        }
        case F_STR:
            json_object_set_new(obj, f->name, json_string((const char *)p));
            break;
        case F_ADDR:
            if (((const struct net_addr *)p)->family != 0) {
                json_set_addr(obj, f->name, (const struct net_addr *)p);
            }
            break;
        case F_HASH: {
            char h[65];
            hex_encode(p, 32, h);
            json_object_set_new(obj, f->name, json_string(memcmp(p, zero_hash, 32) ? h : ""));
            break;
        }
        }
    }
    return obj;
}

int event_describe_json(void *ctx, const uint8_t *entry, size_t len, char **out)
{
    (void)ctx;
    struct record *rec = malloc(sizeof(*rec)); /* large: the heap, not a worker's stack */
    char err[128];
    json_t *j = NULL;
    if (rec != NULL && event_decode(entry, len, rec, err, sizeof(err)) == 0) {
        j = event_to_json(rec);
    }
    free(rec);
    if (j == NULL) {
        return -1;
    }
    *out = json_dumps(j, JSON_INDENT(2));
    json_decref(j);
    return *out != NULL ? 0 : -1;
}

void event_bot_key(const struct contact *c, char out[33])
{
    /* family + host + user + local_ip + campaign: the fields a bot reports about itself that do
     * not change between its calls. Each is bounded, so the buffer cannot overflow. */
    char input[sizeof(c->family) + sizeof(c->bot) + 16];
    uint8_t digest[32];
    const struct bot_identity *b = &c->bot;
    int n;
    if (b->host[0] == '\0' && b->user[0] == '\0') {
        char ip[NET_ADDR_STRLEN];
        net_addr_format_ip(&c->src, ip);
        n = snprintf(input, sizeof(input), "%s\nip:%s", c->family, ip);
    } else {
        n = snprintf(input, sizeof(input), "%s\n%s\n%s\n%s\n%s\n", c->family, b->host, b->user,
                     b->local_ip, b->campaign);
    }
    SHA256((const uint8_t *)input, (size_t)n, digest);
    hex_encode(digest, 16, out);
}
