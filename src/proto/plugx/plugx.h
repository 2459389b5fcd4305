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
    /* The emulated bots' self-delete id (src/swarm/). The server has no default: its command id
     * comes from the policy or --uninstall-command (docs/plugx.md, "Commands"). */
    uint16_t uninstall_command;
    uint32_t max_body; /* largest comp_size / decomp_size accepted, <= PLUGX_BODY_LIMIT */
    /* The cipher of replies to a header-form HTTP check-in, which carries no packet to detect
     * one from: the seized variant's own (configuration, docs/plugx.md); default A. */
    uint8_t http_reply_cipher;
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
    uint8_t http_checkins; /* header-form check-ins seen (saturates at 255) */
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

/* The HTTP header-form check-in (docs/plugx.md "HTTP forms"): an empty-body POST to
 * /<24 hex> or /update?id=<8 hex> with four decimal values in custom headers. */
#define PLUGX_HTTP_VALUES 4
#define PLUGX_HTTP_ID_MAX 24
#define PLUGX_HTTP_STEM_MAX 31
enum plugx_http_url { PLUGX_HTTP_URL_HEX24 = 1, PLUGX_HTTP_URL_UPDATE_ID = 2 };
enum plugx_http_names {
    PLUGX_HTTP_NAMES_X = 1,     /* X-Session, X-Status, X-Size, X-Sn */
    PLUGX_HTTP_NAMES_HHV = 2,   /* HHV1..HHV4 */
    PLUGX_HTTP_NAMES_DIGIT = 3, /* one common name followed by consecutive digits */
};
struct plugx_http_checkin {
    uint8_t url;                             /* enum plugx_http_url */
    uint8_t names;                           /* enum plugx_http_names */
    char id[PLUGX_HTTP_ID_MAX + 1];          /* the hex digits of the path, as sent */
    char name_stem[PLUGX_HTTP_STEM_MAX + 1]; /* PLUGX_HTTP_NAMES_DIGIT: the common name */
    uint32_t values[PLUGX_HTTP_VALUES];      /* in the bot's header order */
};

/* Pure: 0 and out when req is a header-form check-in (POST, path and the four headers; the body
 * is not looked at), else -1 with the reason in err. */
int plugx_http_checkin_parse(const struct proto_http_request *req, struct plugx_http_checkin *out,
                             char *err, size_t errlen);
/* The check-in as canonical text ("hex24 <id>\nX-Session: 0\n..."): what its contact's
 * body_sha256 covers and --keep-raw keeps. Returns its length, or -1 if cap is too small. */
int plugx_http_checkin_text(const struct plugx_http_checkin *in, char *out, size_t cap);

/* The proto_family implementation; its config pointer is a struct plugx_config. */
extern const struct proto_family plugx_family;

#endif
