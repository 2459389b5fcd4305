/* keystream.h -- private to proto/plugx: streaming keystream generators shared by the framing
 * code, so a packet is decrypted in one pass without a keystream buffer. */
#ifndef SINKD_PROTO_PLUGX_KEYSTREAM_H
#define SINKD_PROTO_PLUGX_KEYSTREAM_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/rc4.h> /* RC4_KEY only; the (deprecated) calls live in rc4.c */

#include "proto/plugx/plugx.h"

/* One keystream run for one packet key; position 0 is the packet's byte 0 (the clear key). */
struct plugx_ks {
    uint8_t cipher; /* enum plugx_cipher */
    uint32_t r[4];  /* A, B: k0..k3; C: a, c, C2, C3 */
    RC4_KEY rc4;    /* PLUGX_CIPHER_RC4 only */
};

void plugx_ks_init(struct plugx_ks *ks, const struct plugx_config *cfg, enum plugx_cipher cipher,
                   uint32_t key);
/* out[i] = in[i] ^ next keystream byte, for n bytes; in == out is allowed. */
void plugx_ks_xor(struct plugx_ks *ks, const uint8_t *in, uint8_t *out, size_t n);
/* Advances the run by n bytes. */
void plugx_ks_skip(struct plugx_ks *ks, size_t n);

/* rc4.c: the only code touching OpenSSL's low-level RC4. The key is the configured key string
 * followed by the 4 packet-key bytes (little-endian): sinkd's model, see docs/plugx.md. */
void plugx_rc4_init(RC4_KEY *rc4, const uint8_t *cfg_key, size_t cfg_key_len, uint32_t key);
void plugx_rc4_xor(RC4_KEY *rc4, const uint8_t *in, uint8_t *out, size_t n);

static inline uint32_t plugx_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint16_t plugx_le16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static inline void plugx_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline void plugx_put_le16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

#endif
