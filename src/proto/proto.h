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
    PROTO_E_NOT_THIS = -6,   /* an HTTP request of a shape this family never sends */
};

/* One decoded message, protocol independent. */
struct proto_message {
    uint32_t command;  /* family-specific id, as on the wire */
    uint8_t msg_type;  /* enum contact_msg_type */
    uint8_t transport; /* enum contact_transport; decode_http sets which HTTP form it was */
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

/* One whole HTTP request as net/ parsed it (libhttp-parser), handed to the family, which alone
 * knows which shapes its bots send. Every string is NUL-terminated and bounded. */
#define PROTO_HTTP_URL_MAX 512    /* longer request targets are refused by net/ */
#define PROTO_HTTP_HEADERS_MAX 32 /* headers kept per request; more are refused by net/ */
#define PROTO_HTTP_FIELD_MAX 256  /* bytes of one header name or value */
struct proto_http_header {
    const char *name; /* as received (case kept) */
    const char *value;
};
struct proto_http_request {
    const char *method; /* "POST", "GET", ... */
    const char *url;    /* request target as received: "/0A1B.../", "/update?id=..." */
    const struct proto_http_header *headers; /* in the order received */
    size_t nheaders;
    const uint8_t *body;
    size_t body_len;
};

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

    /* Decodes one whole HTTP request (every form the family's bots use over HTTP: a packet as
     * the body, values in headers, ...). Returns 1 and out (out->transport says which form), or
     * a negative enum proto_error with a short reason in err: PROTO_E_NOT_THIS for a request of
     * a shape its bots never send (net/ records it as undecoded), any other for one that looked
     * like the family's but did not decode. */
    int (*decode_http)(const void *config, void *state, const struct proto_http_request *req,
                       struct proto_message *out, uint8_t *scratch, size_t scratch_cap, char *err,
                       size_t errlen);

    /* The server's answer to a decoded message (what a real C2 would say to keep the bot
     * talking, and no more: a passive sinkhole asks a bot for nothing). Returns bytes written,
     * 0 for "no reply", or PROTO_E_SPACE. For HTTP requests, it is the response body. */
    ptrdiff_t (*encode_reply)(const void *config, void *state, const struct proto_message *msg,
                              uint8_t *out, size_t cap);

    /* A server-initiated command with this family-specific id on this connection: the
     * configured self-delete of an authorised remediation, or identify_command for an
     * authorised collection. Returns bytes written, 0 when the connection cannot carry one
     * yet (nothing decoded), or PROTO_E_SPACE. */
    ptrdiff_t (*encode_command)(const void *config, void *state, uint32_t command, uint8_t *out,
                                size_t cap);

    /* The command that asks a bot to describe itself (PlugX 0x1001: host and user names,
     * personal data; sent only under a collect authorisation); 0: the family has none. */
    uint32_t identify_command;
};

/* The family table: every protocol family sinkd speaks. net/ and the CLI find a family here by
 * name, so a new family or wire form lands without net/ naming it. NULL when unknown. */
const struct proto_family *proto_family_find(const char *name);
/* Families in table order, NULL after the last. */
const struct proto_family *proto_family_at(size_t i);

#endif
