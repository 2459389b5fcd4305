/* proto_plugx_fuzz.c -- libFuzzer harness: plugx_decode over arbitrary byte streams (with cipher
 * detection, all families enabled), the family's detect/decode/replies, and round trips. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/plugx/plugx.h"

#define MAX_PACKETS 64 /* bounds the loop per input */

static void check_round_trip(const struct plugx_config *cfg, const struct plugx_packet *p)
{
    static uint8_t wire[PLUGX_HEADER_SIZE + 70000], scratch[PROTO_SCRATCH_SIZE];
    struct plugx_conn conn = {.cipher = -1};
    struct plugx_packet q;

    /* Re-encode what was decoded in the same family and flag mode; it must decode to the same
     * body (body bytes are copied first: scratch is reused). */
    static uint8_t body[PROTO_SCRATCH_SIZE];
    memcpy(body, p->body, p->body_len);
    bool compress = (p->flags & PLUGX_FLAG_UNCOMPRESSED) == 0;
    ptrdiff_t n = plugx_encode(cfg, (enum plugx_cipher)p->cipher, p->key, p->flags, p->job, body,
                               p->body_len, compress, wire, sizeof(wire));
    if (n < PLUGX_HEADER_SIZE) {
        abort();
    }
    conn.cipher = (int8_t)p->cipher;
    if (plugx_decode(cfg, &conn, wire, (size_t)n, &q, scratch, sizeof(scratch), NULL, 0) != n) {
        abort();
    }
    if (q.body_len != p->body_len || q.command != p->command || q.job != p->job ||
        memcmp(q.body, body, p->body_len) != 0) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t scratch[PROTO_SCRATCH_SIZE];
    struct plugx_config cfg;
    struct plugx_conn conn = {.cipher = -1};
    uint8_t reply[256];
    char err[128];

    plugx_config_default(&cfg);
    /* Raw decoder over the stream, detection on the first packet. */
    size_t off = 0;
    for (int i = 0; i < MAX_PACKETS && off < size; i++) {
        struct plugx_packet p;
        ptrdiff_t n = plugx_decode(&cfg, &conn, data + off, size - off, &p, scratch,
                                   sizeof(scratch), err, sizeof(err));
        if (n <= 0) {
            break;
        }
        if ((size_t)n > size - off || p.body_len != p.decomp_size || conn.cipher != p.cipher) {
            abort();
        }
        check_round_trip(&cfg, &p);
        off += (size_t)n;
    }

    /* The proto_family view of the same stream, with replies. */
    uint8_t state[64];
    if (plugx_family.conn_state_size > sizeof(state)) {
        abort();
    }
    (void)plugx_family.detect(&cfg, data, size);
    plugx_family.conn_init(&cfg, state, size);
    off = 0;
    for (int i = 0; i < MAX_PACKETS && off < size; i++) {
        struct proto_message msg;
        ptrdiff_t n = plugx_family.decode(&cfg, state, data + off, size - off, &msg, scratch,
                                          sizeof(scratch), err, sizeof(err));
        if (n <= 0) {
            break;
        }
        ptrdiff_t r = plugx_family.encode_reply(&cfg, state, &msg, reply, sizeof(reply));
        if (r < 0 || (size_t)r > plugx_family.max_reply) {
            abort();
        }
        if (msg.has_identity && (memchr(msg.bot.host, 0, sizeof(msg.bot.host)) == NULL ||
                                 memchr(msg.bot.os, 0, sizeof(msg.bot.os)) == NULL)) {
            abort();
        }
        off += (size_t)n;
    }

    /* The machine-information parser on the raw input. */
    struct bot_identity id;
    (void)plugx_machine_info_parse(data, size, &id);
    return 0;
}
