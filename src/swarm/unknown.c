/* unknown.c -- what a bot of a variant sinkd does not know sends: bytes that no cipher family of
 * the swarm's PlugX configuration decodes (another build's constants or key, or other framing). */
#include "swarm/swarm.h"

#include <string.h>

#define UNKNOWN_TRIES 16     /* another draw when one happens to decode (about 1 in 10^5) */
#define UNKNOWN_BODY_MAX 64  /* PlugX-shaped: a small body sent as is */
#define FRAME_PAYLOAD_MIN 16 /* other framing: a 32-bit length, then that many bytes */
#define FRAME_PAYLOAD_MAX 256

static uint64_t next(uint64_t *s) /* splitmix64: every call a fresh, well-mixed draw */
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill(uint64_t *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = next(s);
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(out + i, &v, k);
    }
}

/* A PlugX poll carrying a few bytes, sealed with family C constants or an RC4 key that differ
 * from cfg's: the packet shape of a build whose secrets the sinkhole was not given. */
static ptrdiff_t other_build(const struct plugx_config *cfg, uint64_t *s, uint8_t *out, size_t cap)
{
    struct plugx_config other = *cfg;
    enum plugx_cipher cipher;
    if (next(s) & 1) {
        cipher = PLUGX_CIPHER_C;
        for (int i = 0; i < 4; i++) {
            do {
                other.c_consts[i] = (uint32_t)next(s);
            } while (other.c_consts[i] == cfg->c_consts[i]);
        }
    } else {
        cipher = PLUGX_CIPHER_RC4;
        other.rc4_key_len = 16;
        fill(s, other.rc4_key, other.rc4_key_len);
    }
    uint8_t body[UNKNOWN_BODY_MAX];
    size_t body_len = (size_t)(next(s) % (UNKNOWN_BODY_MAX + 1));
    fill(s, body, body_len);
    return plugx_encode(&other, cipher, (uint32_t)next(s), PLUGX_CMD_POLL, 0, body, body_len, false,
                        out, cap);
}

/* A length-prefixed frame of opaque bytes: a wire format that is not PlugX's at all. */
static ptrdiff_t other_framing(uint64_t *s, uint8_t *out, size_t cap)
{
    size_t n = FRAME_PAYLOAD_MIN + (size_t)(next(s) % (FRAME_PAYLOAD_MAX - FRAME_PAYLOAD_MIN + 1));
    if (cap < 4 + n) {
        return PROTO_E_SPACE;
    }
    out[0] = (uint8_t)n;
    out[1] = (uint8_t)(n >> 8);
    out[2] = out[3] = 0;
    fill(s, out + 4, n);
    return (ptrdiff_t)(4 + n);
}

bool swarm_bytes_decode(const struct plugx_config *cfg, const uint8_t *buf, size_t len,
                        uint8_t *scratch, size_t scratch_cap)
{
    struct plugx_conn conn;
    struct plugx_packet pkt;
    memset(&conn, 0, sizeof(conn));
    conn.cipher = -1;
    /* "needs more" counts as decoding: a server would hold the connection for the rest */
    return plugx_decode(cfg, &conn, buf, len, &pkt, scratch, scratch_cap, NULL, 0) >= 0;
}

ptrdiff_t swarm_unknown_bytes(const struct plugx_config *cfg, int kind, uint64_t draw, uint8_t *out,
                              size_t cap, uint8_t *scratch, size_t scratch_cap)
{
    uint64_t s = draw;
    for (int t = 0; t < UNKNOWN_TRIES; t++) {
        ptrdiff_t n = kind == SWARM_UNKNOWN_FRAMING ? other_framing(&s, out, cap)
                                                    : other_build(cfg, &s, out, cap);
        if (n < 0) {
            return n;
        }
        if (!swarm_bytes_decode(cfg, out, (size_t)n, scratch, scratch_cap)) {
            return n;
        }
    }
    return PROTO_E_CIPHER; /* 16 draws in a row decoded: not in this universe */
}
