/* plugx.h -- the PlugX wire protocol: framing, keystream ciphers, machine-information bodies,
 * and the proto_family that plugs PlugX into net/. See docs/plugx.md for what is established
 * and what is modelled. */
#ifndef SINKD_PROTO_PLUGX_PLUGX_H
#define SINKD_PROTO_PLUGX_PLUGX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "proto/proto.h"

#define PLUGX_HEADER_SIZE 16
#define PLUGX_FLAG_UNCOMPRESSED 0x01000000u /* body not LZNT1-compressed */
#define PLUGX_FLAG_SHARED_RUN 0x02000000u   /* header and body share one keystream run */
#define PLUGX_BODY_LIMIT 65535u             /* sizes are 16-bit on the wire */

enum plugx_command {
    PLUGX_CMD_POLL = 0x1000,
    PLUGX_CMD_MACHINE_INFO = 0x1001,
    PLUGX_CMD_CHANGE_LEVEL = 0x1002,
    PLUGX_CMD_PLUGIN_MANAGER = 0x1003,
    PLUGX_CMD_UNINSTALL_DEFAULT = 0x1005,
};

enum plugx_cipher {
    PLUGX_CIPHER_A = 0,   /* classic four-register keystream */
    PLUGX_CIPHER_B = 1,   /* variant with multiplicative registers */
    PLUGX_CIPHER_C = 2,   /* per-build constants C0..C3 */
    PLUGX_CIPHER_RC4 = 3, /* RC4 with a configured key string */
    PLUGX_CIPHER_COUNT = 4,
};

struct plugx_config {
    uint8_t ciphers_enabled; /* bit (1 << enum plugx_cipher); detection tries them in enum order */
    uint32_t c_consts[4];    /* family C constants */
    uint8_t rc4_key[64];     /* family RC4 key */
    size_t rc4_key_len;      /* 0 disables RC4 even when enabled */
    uint16_t uninstall_command; /* default PLUGX_CMD_UNINSTALL_DEFAULT */
    uint32_t max_body;          /* largest comp_size / decomp_size accepted, <= PLUGX_BODY_LIMIT */
};

/* Defaults: all of A, B, C (constants 0x0133543C, 0xD, 0x77, 0x59F5: the default set of the
 * public decoder MITRE chopshop plugx_tcp_decode) enabled; RC4 enabled with key
 * "sinkd-demo-rc4-key" (a placeholder: the real key is per build); uninstall 0x1005;
 * max_body 65535. */
void plugx_config_default(struct plugx_config *cfg);

/* Per-connection state, kept small: connections are held by the hundred thousand. */
struct plugx_conn {
    int8_t cipher;      /* detected enum plugx_cipher, -1 before the first packet */
    uint8_t identified; /* a machine-information message was seen on this connection */
    uint32_t packets;   /* packets decoded so far */
    uint64_t rng;       /* xorshift state for reply keys */
    /* Added by the codec (struct stays at 24 bytes): what the replies echo and mirror. */
    uint32_t last_job;     /* job field of the last packet decoded, echoed in replies */
    uint16_t last_command; /* command of the last packet decoded */
    uint8_t shared_run;    /* the bot's last packet used PLUGX_FLAG_SHARED_RUN */
};

/* A decoded packet. body points into the caller's scratch buffer (decrypted, decompressed). */
struct plugx_packet {
    uint32_t key;
    uint32_t flags;
    uint16_t command; /* low 16 bits of flags */
    uint16_t comp_size;
    uint16_t decomp_size;
    uint32_t job;
    uint8_t cipher; /* enum plugx_cipher used */
    const uint8_t *body;
    size_t body_len;
};

/* Writes n keystream bytes starting at keystream position 0 for `key`. */
void plugx_keystream(const struct plugx_config *cfg, enum plugx_cipher cipher, uint32_t key,
                     uint8_t *out, size_t n);

/* Pure decoder over a byte stream. Returns bytes consumed (> 0), PROTO_NEED_MORE, or a negative
 * enum proto_error with a reason in err. On the first packet of a connection it detects the
 * cipher family and stores it in conn->cipher. */
ptrdiff_t plugx_decode(const struct plugx_config *cfg, struct plugx_conn *conn, const uint8_t *buf,
                       size_t len, struct plugx_packet *out, uint8_t *scratch, size_t scratch_cap,
                       char *err, size_t errlen);

/* Encodes one packet. flags carries the command in its low 16 bits plus PLUGX_FLAG_* bits;
 * PLUGX_FLAG_UNCOMPRESSED is added automatically when compress is false. Returns bytes written
 * or PROTO_E_SPACE / PROTO_E_TOO_LARGE. */
ptrdiff_t plugx_encode(const struct plugx_config *cfg, enum plugx_cipher cipher, uint32_t key,
                       uint32_t flags, uint32_t job, const uint8_t *body, size_t body_len,
                       bool compress, uint8_t *out, size_t cap);

/* sinkd's modelled machine-information body (documented in docs/plugx.md). */
struct plugx_machine_info {
    struct bot_identity id;
    uint32_t os_major, os_minor, os_build, service_pack;
    uint32_t cpu_mhz, memory_mb;
    uint64_t system_time; /* Windows FILETIME */
};

ptrdiff_t plugx_machine_info_encode(const struct plugx_machine_info *info, uint8_t *out,
                                    size_t cap);
/* Parses the modelled layout; when it does not match, falls back to the UTF-16LE strings found
 * in the body (first = host, second = user). Returns 0 if an identity was found, -1 if not. */
int plugx_machine_info_parse(const uint8_t *body, size_t len, struct bot_identity *out);

/* The proto_family implementation; its config pointer is a struct plugx_config. */
extern const struct proto_family plugx_family;

#endif
