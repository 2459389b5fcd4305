/* family.c -- plugx_family: PlugX as a proto_family (detect, decode to proto_message, the
 * modelled C2 conversation and the uninstall command). */
#include <string.h>

#include <openssl/sha.h>

#include "proto/plugx/frame.h"

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
        if (plugx_header_check(cfg, hdr, &why) == 0) {
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
    if (conn->last_command <= OLD_COMMAND_MAX && command >= 0x1000 &&
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

static ptrdiff_t send_command(const struct plugx_config *cfg, struct plugx_conn *conn,
                              uint16_t command, uint32_t job, uint8_t *out, size_t cap)
{
    if (conn->cipher < 0) {
        return 0; /* nothing decoded yet: no cipher to speak */
    }
    uint32_t flags = bot_command(conn, command);
    if (conn->shared_run) {
        flags |= PLUGX_FLAG_SHARED_RUN; /* mirror the bot's keystream mode */
    }
    return plugx_encode(cfg, (enum plugx_cipher)conn->cipher, next_key(conn), flags, job, NULL, 0,
                        false, out, cap);
}

static ptrdiff_t family_encode_reply(const void *config, void *state,
                                     const struct proto_message *msg, uint8_t *out, size_t cap)
{
    struct plugx_conn *conn = state;
    uint16_t command = PLUGX_CMD_POLL;

    /* PLUGX.md "Conversation": ask an unidentified bot for its machine information, answer
     * everything else with "nothing to do". */
    if (msg->msg_type != CONTACT_MSG_MACHINE_INFO && !conn->identified) {
        command = PLUGX_CMD_MACHINE_INFO;
    }
    return send_command(config, conn, command, conn->last_job, out, cap);
}

static ptrdiff_t family_encode_uninstall(const void *config, void *state, uint8_t *out, size_t cap)
{
    const struct plugx_config *cfg = config;

    /* A server-initiated command: job 0, since there is nothing to echo. */
    return send_command(cfg, state, cfg->uninstall_command, 0, out, cap);
}

const struct proto_family plugx_family = {
    .name = "plugx",
    .conn_state_size = sizeof(struct plugx_conn),
    .max_reply = PLUGX_HEADER_SIZE + PLUGX_REPLY_BODY_MAX,
    .detect = family_detect,
    .conn_init = family_conn_init,
    .decode = family_decode,
    .encode_reply = family_encode_reply,
    .encode_uninstall = family_encode_uninstall,
};
