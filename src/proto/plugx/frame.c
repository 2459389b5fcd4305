/* frame.c -- PlugX packet framing: the pure stream decoder with cipher detection, and the
 * encoder (PLUGX.md "Packet", public decoders 2013-2015). */
#include <stdbool.h>
#include <string.h>

#include "proto/plugx/frame.h"
#include "proto/plugx/lznt1.h"
#include "util/err.h"

#define FLAGS_ALLOWED_HIGH (PLUGX_FLAG_UNCOMPRESSED | PLUGX_FLAG_SHARED_RUN)

bool plugx_cipher_enabled(const struct plugx_config *cfg, int cipher)
{
    if (cipher < 0 || cipher >= PLUGX_CIPHER_COUNT) {
        return false;
    }
    if ((cfg->ciphers_enabled & (1u << cipher)) == 0) {
        return false;
    }
    return cipher != PLUGX_CIPHER_RC4 || cfg->rc4_key_len > 0;
}

bool plugx_command_known(uint16_t command)
{
    if (command <= 0x8) {
        return true; /* old builds: the core commands numbered 0x0-0x8 */
    }
    if (command >= 0x1000 && command <= 0x1008) {
        return true; /* core commands */
    }
    /* Plugin ranges 0x2000 (options) .. 0xE000 (keylogger): sub-commands sit in the low 9 bits
     * of each 4 KiB block in public decoders (e.g. telnet 0x7100, SQL 0xC000-0xC00x). */
    return command >= 0x2000 && command <= 0xE0FF && (command & 0x0E00) == 0;
}

void plugx_header_decrypt(const struct plugx_config *cfg, int cipher, const uint8_t *buf,
                          struct plugx_ks *ks, uint8_t hdr[12])
{
    /* The keystream starts at the packet's byte 0, whose 4 bytes are the clear key itself. */
    plugx_ks_init(ks, cfg, (enum plugx_cipher)cipher, plugx_le32(buf));
    plugx_ks_skip(ks, 4);
    plugx_ks_xor(ks, buf + 4, hdr, 12);
}

static uint32_t body_limit(const struct plugx_config *cfg)
{
    return cfg->max_body < PLUGX_BODY_LIMIT ? cfg->max_body : PLUGX_BODY_LIMIT;
}

int plugx_header_check(const struct plugx_config *cfg, const uint8_t hdr[12], bool detecting,
                       const char **why)
{
    uint32_t flags = plugx_le32(hdr);
    uint16_t comp = plugx_le16(hdr + 4), decomp = plugx_le16(hdr + 6);

    if ((flags & 0xFFFF0000u & ~FLAGS_ALLOWED_HIGH) != 0) {
        *why = "unknown flag bits";
        return PROTO_E_MALFORMED;
    }
    /* A known command id is what tells the right family from a wrong one while detecting; once
     * the connection's family is known, a packet with another id (a build's own command, such
     * as the seized variant's self-delete) is still that family's packet. */
    if (detecting && !plugx_command_known((uint16_t)flags)) {
        *why = "unknown command id";
        return PROTO_E_MALFORMED;
    }
    if (comp > body_limit(cfg)) {
        *why = "comp_size above max_body";
        return PROTO_E_TOO_LARGE;
    }
    if (decomp > body_limit(cfg)) {
        *why = "decomp_size above max_body";
        return PROTO_E_TOO_LARGE;
    }
    if ((flags & PLUGX_FLAG_UNCOMPRESSED) && comp != decomp) {
        *why = "uncompressed body with comp_size != decomp_size";
        return PROTO_E_DECOMPRESS;
    }
    return 0;
}

static const char *lznt1_reason(ptrdiff_t e)
{
    switch (e) {
    case LZNT1_E_TRUNCATED:
        return "LZNT1 chunk truncated";
    case LZNT1_E_SIGNATURE:
        return "LZNT1 chunk signature";
    case LZNT1_E_OFFSET:
        return "LZNT1 copy before chunk start";
    case LZNT1_E_OVERFLOW:
        return "body decompresses to more than decomp_size";
    default:
        return "LZNT1 chunk larger than 4096 bytes";
    }
}

/* Decrypts and decompresses the body chunk by chunk through a 4 KiB stack buffer, so the only
 * memory is decomp_size bytes of scratch however the peer lies (LZNT1 chunks are independent,
 * MS-XCA 2.5, so per-chunk decompression is exact). */
static ptrdiff_t inflate_body(struct plugx_ks *ks, const uint8_t *body, size_t comp,
                              uint8_t *scratch, size_t decomp, const char **why)
{
    uint8_t chunk[2 + LZNT1_CHUNK_SIZE];
    size_t ip = 0, op = 0;

    while (ip < comp) {
        if (comp - ip < 2) {
            *why = "LZNT1 chunk header truncated";
            return PROTO_E_DECOMPRESS;
        }
        plugx_ks_xor(ks, body + ip, chunk, 2);
        ip += 2;
        uint16_t h = plugx_le16(chunk);
        if (h == 0) {
            break;
        }
        size_t want = (size_t)(h & 0x0FFFu) + 1;
        size_t have = comp - ip < want ? comp - ip : want;
        plugx_ks_xor(ks, body + ip, chunk + 2, have);
        ip += have;
        ptrdiff_t n = lznt1_decompress(chunk, 2 + have, scratch + op, decomp - op);
        if (n < 0) {
            *why = lznt1_reason(n);
            return PROTO_E_DECOMPRESS;
        }
        op += (size_t)n;
    }
    if (op != decomp) {
        *why = "body shorter than decomp_size";
        return PROTO_E_DECOMPRESS;
    }
    return 0;
}

/* Decodes one packet as `cipher`. *plausible tells whether the header passed its checks, so
 * detection can tell "not this cipher" from "this cipher, but a bad body". */
static ptrdiff_t decode_as(const struct plugx_config *cfg, int cipher, bool detecting,
                           const uint8_t *buf, size_t len, struct plugx_packet *out,
                           uint8_t *scratch, size_t scratch_cap, bool *plausible, const char **why)
{
    struct plugx_ks ks;
    uint8_t hdr[12];
    plugx_header_decrypt(cfg, cipher, buf, &ks, hdr);
    int rc = plugx_header_check(cfg, hdr, detecting, why);
    *plausible = rc == 0;
    if (rc < 0) {
        return rc;
    }
    uint32_t flags = plugx_le32(hdr);
    uint16_t comp = plugx_le16(hdr + 4), decomp = plugx_le16(hdr + 6);
    if (len - PLUGX_HEADER_SIZE < comp) {
        return PROTO_NEED_MORE;
    }
    if (scratch_cap < decomp) {
        *why = "scratch buffer smaller than decomp_size";
        return PROTO_E_SPACE;
    }
    if ((flags & PLUGX_FLAG_SHARED_RUN) == 0) {
        plugx_ks_init(&ks, cfg, (enum plugx_cipher)cipher, plugx_le32(buf));
    }
    const uint8_t *body = buf + PLUGX_HEADER_SIZE;
    if (flags & PLUGX_FLAG_UNCOMPRESSED) {
        plugx_ks_xor(&ks, body, scratch, comp); /* comp == decomp: checked with the header */
    } else {
        rc = (int)inflate_body(&ks, body, comp, scratch, decomp, why);
        if (rc < 0) {
            return rc;
        }
    }
    out->key = plugx_le32(buf);
    out->flags = flags;
    out->command = (uint16_t)flags;
    out->comp_size = comp;
    out->decomp_size = decomp;
    out->job = plugx_le32(hdr + 8);
    out->cipher = (uint8_t)cipher;
    out->body = scratch;
    out->body_len = decomp;
    return (ptrdiff_t)(PLUGX_HEADER_SIZE + comp);
}

ptrdiff_t plugx_decode(const struct plugx_config *cfg, struct plugx_conn *conn, const uint8_t *buf,
                       size_t len, struct plugx_packet *out, uint8_t *scratch, size_t scratch_cap,
                       char *err, size_t errlen)
{
    const char *why = "no enabled cipher";
    bool plausible = false;
    ptrdiff_t r;

    if (len < PLUGX_HEADER_SIZE) {
        return PROTO_NEED_MORE;
    }
    if (conn->cipher >= 0) {
        if (!plugx_cipher_enabled(cfg, conn->cipher)) {
            err_set(err, errlen, "plugx: connection's cipher %d is not enabled", conn->cipher);
            return PROTO_E_CIPHER;
        }
        r = decode_as(cfg, conn->cipher, false, buf, len, out, scratch, scratch_cap, &plausible,
                      &why);
    } else {
        /* Detection: a 16-byte header decrypts to something plausible under a wrong family about
         * once in 20,000 tries, so a family is chosen only when the WHOLE packet decodes under
         * it (sizes, LZNT1 stream, exact decomp_size); families are tried in enum order. If
         * none decodes yet but one is plausible and incomplete, wait for more bytes (bounded by
         * max_body and the header timeout). Otherwise report the first plausible family's error,
         * else an over-limit size, else "no cipher". */
        ptrdiff_t first_err = 0;
        const char *first_why = NULL;
        ptrdiff_t size_err = 0;
        const char *size_why = NULL;
        bool need_more = false;
        r = PROTO_E_CIPHER;
        for (int c = 0; c < PLUGX_CIPHER_COUNT; c++) {
            if (!plugx_cipher_enabled(cfg, c)) {
                continue;
            }
            const char *cwhy = NULL;
            ptrdiff_t cr =
                decode_as(cfg, c, true, buf, len, out, scratch, scratch_cap, &plausible, &cwhy);
            if (cr > 0) {
                r = cr;
                break;
            }
            if (cr == PROTO_NEED_MORE) {
                need_more = true;
            } else if (cr == PROTO_E_SPACE) {
                err_set(err, errlen, "plugx: %s", cwhy);
                return cr;
            } else if (plausible && first_err == 0) {
                first_err = cr;
                first_why = cwhy;
            } else if (cr == PROTO_E_TOO_LARGE && size_err == 0) {
                size_err = cr;
                size_why = cwhy;
            }
        }
        if (r <= 0) {
            if (need_more) {
                return PROTO_NEED_MORE;
            }
            if (first_err != 0) {
                r = first_err;
                why = first_why;
            } else if (size_err != 0) {
                r = size_err;
                why = size_why;
            } else {
                r = PROTO_E_CIPHER;
                why = "no enabled cipher yields a plausible header";
            }
        }
    }
    if (r <= 0) {
        if (r < 0) {
            err_set(err, errlen, "plugx: %s", why);
        }
        return r;
    }
    conn->cipher = (int8_t)out->cipher;
    if (conn->packets < UINT32_MAX) {
        conn->packets++;
    }
    conn->last_job = out->job;
    conn->last_command = out->command;
    conn->shared_run = (out->flags & PLUGX_FLAG_SHARED_RUN) != 0;
    return r;
}

ptrdiff_t plugx_encode(const struct plugx_config *cfg, enum plugx_cipher cipher, uint32_t key,
                       uint32_t flags, uint32_t job, const uint8_t *body, size_t body_len,
                       bool compress, uint8_t *out, size_t cap)
{
    struct plugx_ks ks;
    size_t comp = 0;

    if ((int)cipher < 0 || cipher >= PLUGX_CIPHER_COUNT) {
        return PROTO_E_CIPHER;
    }
    if (body_len > PLUGX_BODY_LIMIT) {
        return PROTO_E_TOO_LARGE;
    }
    if (cap < PLUGX_HEADER_SIZE) {
        return PROTO_E_SPACE;
    }
    if (!compress) {
        flags |= PLUGX_FLAG_UNCOMPRESSED;
    }
    if ((flags & PLUGX_FLAG_UNCOMPRESSED) == 0) {
        ptrdiff_t n =
            lznt1_compress(body, body_len, out + PLUGX_HEADER_SIZE, cap - PLUGX_HEADER_SIZE);
        if (n < 0) {
            return PROTO_E_SPACE;
        }
        if ((size_t)n > PLUGX_BODY_LIMIT) {
            /* Incompressible near-64 KiB body: chunk headers pushed it past the 16-bit field. */
            flags |= PLUGX_FLAG_UNCOMPRESSED;
        }
        comp = (size_t)n;
    }
    if (flags & PLUGX_FLAG_UNCOMPRESSED) {
        if (cap - PLUGX_HEADER_SIZE < body_len) {
            return PROTO_E_SPACE;
        }
        if (body_len > 0) {
            memcpy(out + PLUGX_HEADER_SIZE, body, body_len);
        }
        comp = body_len;
    }

    plugx_put_le32(out, key);
    plugx_put_le32(out + 4, flags);
    plugx_put_le16(out + 8, (uint16_t)comp);
    plugx_put_le16(out + 10, (uint16_t)body_len);
    plugx_put_le32(out + 12, job);

    plugx_ks_init(&ks, cfg, cipher, key);
    plugx_ks_skip(&ks, 4);
    plugx_ks_xor(&ks, out + 4, out + 4, 12);
    if ((flags & PLUGX_FLAG_SHARED_RUN) == 0) {
        plugx_ks_init(&ks, cfg, cipher, key);
    }
    plugx_ks_xor(&ks, out + PLUGX_HEADER_SIZE, out + PLUGX_HEADER_SIZE, comp);
    return (ptrdiff_t)(PLUGX_HEADER_SIZE + comp);
}
