/* cipher.c -- the PlugX keystream families (A, B, C, RC4) and the module's default config. */
#include <string.h>

#include "proto/plugx/keystream.h"

void plugx_config_default(struct plugx_config *cfg)
{
    static const char demo_key[] = "sinkd-demo-rc4-key";

    memset(cfg, 0, sizeof(*cfg));
    cfg->ciphers_enabled = (1u << PLUGX_CIPHER_A) | (1u << PLUGX_CIPHER_B) |
                           (1u << PLUGX_CIPHER_C) | (1u << PLUGX_CIPHER_RC4);
    /* The default set of the public decoder MITRE chopshop plugx_tcp_decode (2014), crypt():
     * (comptime, var1, var2, var3). The worm's own set is not confirmed: configuration. */
    cfg->c_consts[0] = 0x0133543Cu;
    cfg->c_consts[1] = 0x0000000Du;
    cfg->c_consts[2] = 0x00000077u;
    cfg->c_consts[3] = 0x000059F5u;
    memcpy(cfg->rc4_key, demo_key, sizeof(demo_key) - 1);
    cfg->rc4_key_len = sizeof(demo_key) - 1;
    cfg->uninstall_command = PLUGX_CMD_UNINSTALL_DEFAULT;
    cfg->max_body = PLUGX_BODY_LIMIT;
}

void plugx_ks_init(struct plugx_ks *ks, const struct plugx_config *cfg, enum plugx_cipher cipher,
                   uint32_t key)
{
    ks->cipher = (uint8_t)cipher;
    switch (cipher) {
    case PLUGX_CIPHER_C:
        ks->r[0] = key ^ cfg->c_consts[0];
        ks->r[1] = key ^ cfg->c_consts[1];
        ks->r[2] = cfg->c_consts[2];
        ks->r[3] = cfg->c_consts[3];
        break;
    case PLUGX_CIPHER_RC4:
        plugx_rc4_init(&ks->rc4, cfg->rc4_key, cfg->rc4_key_len, key);
        break;
    default:
        ks->r[0] = ks->r[1] = ks->r[2] = ks->r[3] = key;
        break;
    }
}

/* Public decoders 2013-2015 (classic PlugX): four registers seeded with the key. */
static uint8_t ks_next_a(uint32_t *r)
{
    r[0] += (r[0] >> 3) - 0x11111111u;
    r[1] += (r[1] >> 5) - 0x22222222u;
    r[2] += 0x44444444u - (r[2] << 9);
    r[3] += 0x33333333u - (r[3] << 7);
    return (uint8_t)(r[0] + r[1] + r[2] + r[3]);
}

/* Variant B of the same decoders: multiplicative registers. */
static uint8_t ks_next_b(uint32_t *r)
{
    r[0] += (r[0] >> 3) + 3u;
    r[1] += (r[1] >> 5) + 5u;
    r[2] = r[2] * 0xFFFFFF81u - 7u;
    r[3] = r[3] * 0xFFFFFE01u - 9u;
    return (uint8_t)(r[0] + r[1] + r[2] + r[3]);
}

/* Family C (chopshop plugx_tcp_decode crypt()): a = key ^ C0 and c = key ^ C1 step by C2 and
 * -C3 per byte; the byte is a0 - a1 ^ a2 - a3 ^ c0 - c1 ^ c2 - c3, left to right, in 8-bit
 * arithmetic (so uint8_t). Its run starts at the packet's byte 0 like A and B, and the body
 * restarts it unless the shared-run flag, as the decoder does (docs/plugx.md). */
static uint8_t ks_next_c(uint32_t *r)
{
    r[0] += r[2];
    r[1] -= r[3];
    uint32_t a = r[0], c = r[1];
    uint8_t b = (uint8_t)((uint8_t)a - (uint8_t)(a >> 8));
    b ^= (uint8_t)(a >> 16);
    b = (uint8_t)(b - (uint8_t)(a >> 24));
    b ^= (uint8_t)c;
    b = (uint8_t)(b - (uint8_t)(c >> 8));
    b ^= (uint8_t)(c >> 16);
    b = (uint8_t)(b - (uint8_t)(c >> 24));
    return b;
}

void plugx_ks_xor(struct plugx_ks *ks, const uint8_t *in, uint8_t *out, size_t n)
{
    size_t i;

    switch (ks->cipher) {
    case PLUGX_CIPHER_A:
        for (i = 0; i < n; i++) {
            out[i] = in[i] ^ ks_next_a(ks->r);
        }
        break;
    case PLUGX_CIPHER_B:
        for (i = 0; i < n; i++) {
            out[i] = in[i] ^ ks_next_b(ks->r);
        }
        break;
    case PLUGX_CIPHER_C:
        for (i = 0; i < n; i++) {
            out[i] = in[i] ^ ks_next_c(ks->r);
        }
        break;
    default:
        plugx_rc4_xor(&ks->rc4, in, out, n);
        break;
    }
}

void plugx_ks_skip(struct plugx_ks *ks, size_t n)
{
    uint8_t sink[64];

    while (n > 0) {
        size_t step = n < sizeof(sink) ? n : sizeof(sink);
        memset(sink, 0, step);
        plugx_ks_xor(ks, sink, sink, step);
        n -= step;
    }
}

void plugx_keystream(const struct plugx_config *cfg, enum plugx_cipher cipher, uint32_t key,
                     uint8_t *out, size_t n)
{
    struct plugx_ks ks;

    plugx_ks_init(&ks, cfg, cipher, key);
    memset(out, 0, n);
    plugx_ks_xor(&ks, out, out, n);
}
