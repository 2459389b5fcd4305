/* proto.h -- the protocol-family interface: how net/ talks to a botnet's wire protocol without
 * knowing it. A family is a table of pure functions over buffers plus a per-connection state
 * blob that net/ allocates and never looks into. */
#ifndef SINKD_PROTO_PROTO_H
#define SINKD_PROTO_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "event/event.h"

/* decode() results: > 0 bytes consumed, PROTO_NEED_MORE, or one of the negative errors. */
#define PROTO_NEED_MORE 0
enum proto_error {
    PROTO_E_MALFORMED = -1,  /* bytes that cannot be this protocol */
    PROTO_E_TOO_LARGE = -2,  /* a declared size above the configured limit */
    PROTO_E_CIPHER = -3,     /* no configured cipher family decrypts this */
    PROTO_E_DECOMPRESS = -4, /* corrupt compressed body, or wrong decompressed size */
    PROTO_E_SPACE = -5,      /* caller's output buffer too small (a sinkd bug, not the peer's) */
};

/* One decoded message, protocol independent. */
struct proto_message {
    uint32_t command; /* family-specific id, as on the wire */
    uint8_t msg_type; /* enum contact_msg_type */
    uint8_t has_identity;
    struct bot_identity bot; /* valid when has_identity */
    uint8_t body_sha256[32]; /* of the decrypted, decompressed body */
    uint32_t body_len;
    /* That body (in the decoder's scratch, or NULL when body_len is 0): valid until the next
     * decode with the same scratch. */
    const uint8_t *body;
};

/* Scratch memory a decoder may use (decompression output); owned per worker thread so a
 * connection holds no buffer while idle. */
#define PROTO_SCRATCH_SIZE 65536

struct proto_family {
    const char *name;       /* "plugx"; recorded in every contact */
    size_t conn_state_size; /* bytes net/ allocates per connection for conn_init() */
    size_t max_reply;       /* upper bound of any encode_*() output */

    /* 1: these first bytes are this family; 0: need more; -1: not this family. */
    int (*detect)(const void *config, const uint8_t *buf, size_t len);

    void (*conn_init)(const void *config, void *state, uint64_t seed);

    /* Decodes one message from the front of buf. Returns bytes consumed (> 0), PROTO_NEED_MORE
     * or a negative enum proto_error, with a short reason in err. Never reads past len. */
    ptrdiff_t (*decode)(const void *config, void *state, const uint8_t *buf, size_t len,
                        struct proto_message *out, uint8_t *scratch, size_t scratch_cap, char *err,
                        size_t errlen);

    /* The server's answer to a decoded message (what a real C2 would say). Returns bytes
     * written, 0 for "no reply", or PROTO_E_SPACE. */
    ptrdiff_t (*encode_reply)(const void *config, void *state, const struct proto_message *msg,
                              uint8_t *out, size_t cap);

    /* The family's uninstall (self-delete) command for this connection. */
    ptrdiff_t (*encode_uninstall)(const void *config, void *state, uint8_t *out, size_t cap);
};

#endif
