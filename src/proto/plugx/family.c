/* family.c -- plugx_family: PlugX as a proto_family (detect, decode to proto_message, the
 * modelled C2 conversation and the uninstall command). */
#include <string.h>

#include <openssl/sha.h>

#include "proto/plugx/frame.h"
#include "util/err.h"

/* Replies carry an empty body; the bound leaves room should one ever carry a small body. */
#define PLUGX_REPLY_BODY_MAX 64
#define OLD_COMMAND_MAX 0x8 /* old builds number the core commands 0x0-0x8 */

/* net/ holds one of these per connection, by the hundred thousand. */
_Static_assert(sizeof(struct plugx_conn) <= 32, "struct plugx_conn must stay within 32 bytes");

static int family_detect(const void *config, const uint8_t *buf, size_t len)
{
    const struct plugx_config *cfg = config;
    struct plugx_ks ks;
    uint8_t hdr[12];

    if (len < PLUGX_HEADER_SIZE) {
        return 0;
    }
    for (int c = 0; c < PLUGX_CIPHER_COUNT; c++) {
        const char *why;
        if (!plugx_cipher_enabled(cfg, c)) {
            continue;
        }
        plugx_header_decrypt(cfg, c, buf, &ks, hdr);
        if (plugx_header_check(cfg, hdr, true, &why) == 0) {
            return 1;
        }
    }
    return -1;
}

static void family_conn_init(const void *config, void *state, uint64_t seed)
{
    struct plugx_conn *conn = state;
    (void)config;

    memset(conn, 0, sizeof(*conn));
    conn->cipher = -1;
    /* splitmix64 finaliser: any seed (0, small counters) gives a well-mixed non-zero state. */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    conn->rng = z != 0 ? z : 0x9E3779B97F4A7C15ull;
}

/* xorshift64*: reply keys only need to vary, not to be secret. */
static uint32_t next_key(struct plugx_conn *conn)
{
    uint64_t x = conn->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    conn->rng = x;
    return (uint32_t)((x * 0x2545F4914F6CDD1Dull) >> 32);
}

/* Core command number independent of old (0x0-0x8) or current (0x1000-0x1008) numbering. */
static uint16_t core_command(uint16_t command)
{
    return command <= OLD_COMMAND_MAX ? (uint16_t)(command + 0x1000) : command;
}

/* Speaks the bot's numbering: a bot using old ids gets old ids back. */
static uint16_t bot_command(const struct plugx_conn *conn, uint16_t command)
{
    if (conn->packets > 0 && conn->last_command <= OLD_COMMAND_MAX && command >= 0x1000 &&
        command <= 0x1000 + OLD_COMMAND_MAX) {
        return (uint16_t)(command - 0x1000);
    }
    return command;
}

static ptrdiff_t family_decode(const void *config, void *state, const uint8_t *buf, size_t len,
                               struct proto_message *out, uint8_t *scratch, size_t scratch_cap,
                               char *err, size_t errlen)
{
    struct plugx_conn *conn = state;
    struct plugx_packet pkt;
    bool first = conn->packets == 0;

    ptrdiff_t n = plugx_decode(config, conn, buf, len, &pkt, scratch, scratch_cap, err, errlen);
    if (n <= 0) {
        return n;
    }
    memset(out, 0, sizeof(*out));
    out->command = pkt.command;
    out->body_len = (uint32_t)pkt.body_len;
    out->body = pkt.body_len > 0 ? pkt.body : NULL;
    SHA256(pkt.body, pkt.body_len, out->body_sha256);

    uint16_t core = core_command(pkt.command);
    if (core == PLUGX_CMD_MACHINE_INFO &&
        plugx_machine_info_parse(pkt.body, pkt.body_len, &out->bot) == 0) {
        out->msg_type = CONTACT_MSG_MACHINE_INFO;
        out->has_identity = 1;
        conn->identified = 1;
    } else if (first) {
        out->msg_type = CONTACT_MSG_HELLO;
        memset(&out->bot, 0, sizeof(out->bot));
    } else if (core == PLUGX_CMD_POLL || core == PLUGX_CMD_CHANGE_LEVEL) {
        out->msg_type = CONTACT_MSG_HEARTBEAT;
        memset(&out->bot, 0, sizeof(out->bot));
    } else {
        out->msg_type = CONTACT_MSG_OTHER;
        memset(&out->bot, 0, sizeof(out->bot));
    }
    return n;
}

/* The HTTP forms (PLUGX.md "Transports"): a packet as the body of a POST (decoded like a raw
 * one), or the header-form check-in, an empty-body POST whose values travel in four headers.
 * Anything else is not what a PlugX bot sends (PROTO_E_NOT_THIS: net/ records it undecoded). */
static int family_decode_http(const void *config, void *state, const struct proto_http_request *req,
                              struct proto_message *out, uint8_t *scratch, size_t scratch_cap,
                              char *err, size_t errlen)
{
    struct plugx_conn *conn = state;
    struct plugx_http_checkin checkin;
    int is_checkin = plugx_http_checkin_parse(req, &checkin, NULL, 0) == 0;

    if (req->body_len > 0) {
        if (strcmp(req->method, "POST") != 0) {
            err_set(err, errlen, "HTTP %s with a body is not a plugx request", req->method);
            return PROTO_E_NOT_THIS;
        }
        ptrdiff_t r = family_decode(config, state, req->body, req->body_len, out, scratch,
                                    scratch_cap, err, errlen);
        if (r == PROTO_NEED_MORE || (r > 0 && (size_t)r != req->body_len)) {
            err_set(err, errlen, "plugx: HTTP body of %zu bytes is not exactly one packet",
                    req->body_len);
            return PROTO_E_MALFORMED;
        }
        if (r < 0) {
            return (int)r;
        }
        out->transport = is_checkin ? CONTACT_TRANSPORT_HTTP_HEADER : CONTACT_TRANSPORT_HTTP;
        return 1;
    }
    if (!is_checkin) {
        (void)plugx_http_checkin_parse(req, &checkin, err, errlen); /* for its reason */
        return PROTO_E_NOT_THIS;
    }
    /* The check-in carries no packet: its four values and path are the message. What they mean
     * on the binary header is not confirmed (docs/plugx.md), so they are kept as sent: as the
     * body the contact's digest covers, and the second value (X-Status) as its command. */
    int n = plugx_http_checkin_text(&checkin, (char *)scratch, scratch_cap);
    if (n < 0) {
        err_set(err, errlen, "plugx: internal: scratch too small for a check-in");
        return PROTO_E_SPACE;
    }
    memset(out, 0, sizeof(*out));
    out->transport = CONTACT_TRANSPORT_HTTP_HEADER;
    out->command = checkin.values[1];
    out->msg_type =
        conn->packets == 0 && conn->http_checkins == 0 ? CONTACT_MSG_HELLO : CONTACT_MSG_HEARTBEAT;
    out->body = scratch;
    out->body_len = (uint32_t)n;
    SHA256(scratch, (size_t)n, out->body_sha256);
    if (conn->http_checkins < UINT8_MAX) {
        conn->http_checkins++;
    }
    return 1;
}

/* The cipher this connection speaks: the bot's own once a packet was decoded; for a bot that
 * only ever checked in by headers, the configured variant's (plugx_config.http_reply_cipher). */
static int reply_cipher(const struct plugx_config *cfg, const struct plugx_conn *conn)
{
    if (conn->cipher >= 0) {
        return conn->cipher;
    }
    return conn->http_checkins > 0 ? cfg->http_reply_cipher : -1;
}

static ptrdiff_t send_command(const struct plugx_config *cfg, struct plugx_conn *conn,
                              uint16_t command, uint32_t job, uint8_t *out, size_t cap)
{
    int cipher = reply_cipher(cfg, conn);
    if (cipher < 0) {
        return 0; /* nothing decoded yet: no cipher to speak */
    }
    uint32_t flags = bot_command(conn, command);
    if (conn->shared_run) {
        flags |= PLUGX_FLAG_SHARED_RUN; /* mirror the bot's keystream mode */
    }
    return plugx_encode(cfg, (enum plugx_cipher)cipher, next_key(conn), flags, job, NULL, 0, false,
                        out, cap);
}

/* PLUGX.md "Conversation": a passive sinkhole answers everything with "nothing to do" (0x1000)
 * and asks for nothing; machine information is asked for only by an authorised collection
 * (encode_command with identify_command, decided and recorded by net/). */
static ptrdiff_t family_encode_reply(const void *config, void *state,
                                     const struct proto_message *msg, uint8_t *out, size_t cap)
{
    struct plugx_conn *conn = state;
    (void)msg;
    return send_command(config, conn, PLUGX_CMD_POLL, conn->last_job, out, cap);
}

static ptrdiff_t family_encode_command(const void *config, void *state, uint32_t command,
                                       uint8_t *out, size_t cap)
{
    if (command == 0 || command > UINT16_MAX) {
        return PROTO_E_MALFORMED; /* PlugX ids are 16 bits; 0 is no command at all */
    }
    /* A server-initiated command: job 0, since there is nothing to echo. */
    return send_command(config, state, (uint16_t)command, 0, out, cap);
}

const struct proto_family plugx_family = {
    .name = "plugx",
    .conn_state_size = sizeof(struct plugx_conn),
    .max_reply = PLUGX_HEADER_SIZE + PLUGX_REPLY_BODY_MAX,
    .detect = family_detect,
    .conn_init = family_conn_init,
    .decode = family_decode,
    .decode_http = family_decode_http,
    .encode_reply = family_encode_reply,
    .encode_command = family_encode_command,
    .identify_command = PLUGX_CMD_MACHINE_INFO,
};
