/* lznt1.c -- LZNT1 compression and decompression as specified by Microsoft MS-XCA section 2.5. */
#include "proto/plugx/lznt1.h"

#include <string.h>

#define CHUNK_HDR_COMPRESSED 0x8000u
#define CHUNK_HDR_SIGNATURE 0x3000u /* MS-XCA 2.5: bits 12-14 are always 0b011 */
#define CHUNK_HDR_SIZE_MASK 0x0FFFu
#define MATCH_MIN 3
#define HASH_BITS 12
#define HASH_SIZE (1u << HASH_BITS)
#define CHAIN_DEPTH 64 /* bounds the match search per position */
#define NO_POS 0xFFFFu

/* Length bits of a copy token when pos bytes of the chunk are already output: the offset gets
 * max(4, ceil(log2(pos))) bits of the 16 (MS-XCA 2.5.1.1), the length the rest. */
static unsigned length_bits(size_t pos)
{
    unsigned bits = 12;

    for (size_t i = pos - 1; i >= 0x10; i >>= 1) {
        bits--;
    }
    return bits;
}

static ptrdiff_t decompress_chunk(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap)
{
    size_t ip = 0, op = 0;

    while (ip < in_len) {
        uint8_t flags = in[ip++];
        for (int bit = 0; bit < 8 && ip < in_len; bit++, flags >>= 1) {
            if ((flags & 1) == 0) {
                if (op >= LZNT1_CHUNK_SIZE) {
                    return LZNT1_E_CHUNK;
                }
                if (op >= out_cap) {
                    return LZNT1_E_OVERFLOW;
                }
                out[op++] = in[ip++];
                continue;
            }
            if (in_len - ip < 2) {
                return LZNT1_E_TRUNCATED;
            }
            uint16_t token = (uint16_t)(in[ip] | in[ip + 1] << 8);
            ip += 2;
            if (op == 0) {
                return LZNT1_E_OFFSET; /* nothing in this chunk to copy from */
            }
            unsigned lbits = length_bits(op);
            size_t length = (size_t)(token & ((1u << lbits) - 1)) + MATCH_MIN;
            size_t offset = (size_t)(token >> lbits) + 1;
            if (offset > op) {
                return LZNT1_E_OFFSET;
            }
            if (length > LZNT1_CHUNK_SIZE - op) {
                return LZNT1_E_CHUNK;
            }
            if (length > out_cap - op) {
                return LZNT1_E_OVERFLOW;
            }
            /* Byte by byte: source and destination overlap when offset < length (a run). */
            for (size_t i = 0; i < length; i++, op++) {
                out[op] = out[op - offset];
            }
        }
    }
    return (ptrdiff_t)op;
}

ptrdiff_t lznt1_decompress(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap)
{
    size_t ip = 0, op = 0;

    while (ip < in_len) {
        if (in_len - ip < 2) {
            return LZNT1_E_TRUNCATED;
        }
        uint16_t h = (uint16_t)(in[ip] | in[ip + 1] << 8);
        ip += 2;
        if (h == 0) {
            break; /* MS-XCA 2.5: a zero chunk header ends the buffer */
        }
        if ((h & 0x7000u) != CHUNK_HDR_SIGNATURE) {
            return LZNT1_E_SIGNATURE;
        }
        size_t data_len = (size_t)(h & CHUNK_HDR_SIZE_MASK) + 1;
        if (data_len > in_len - ip) {
            return LZNT1_E_TRUNCATED;
        }
        if (h & CHUNK_HDR_COMPRESSED) {
            ptrdiff_t n = decompress_chunk(in + ip, data_len, out + op, out_cap - op);
            if (n < 0) {
                return n;
            }
            op += (size_t)n;
        } else {
            /* A stored chunk holds at most 4096 bytes: the 12-bit size field guarantees it. */
            if (data_len > out_cap - op) {
                return LZNT1_E_OVERFLOW;
            }
            memcpy(out + op, in + ip, data_len);
            op += data_len;
        }
        ip += data_len;
    }
    return (ptrdiff_t)op;
}

size_t lznt1_compress_bound(size_t in_len)
{
    return in_len + 2 * ((in_len + LZNT1_CHUNK_SIZE - 1) / LZNT1_CHUNK_SIZE);
}

static unsigned hash3(const uint8_t *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
    return (v * 2654435761u) >> (32 - HASH_BITS);
}

/* Greedy LZ77 over one chunk with hash chains. Writes the compressed chunk data (no header) to
 * out and returns its length, or 0 when it would not be smaller than n (store the chunk). */
static size_t compress_chunk(const uint8_t *in, size_t n, uint8_t *out)
{
    uint16_t head[HASH_SIZE];
    uint16_t prev[LZNT1_CHUNK_SIZE];
    size_t op = 0, pos = 0;

    memset(head, 0xFF, sizeof(head));
    while (pos < n) {
        if (op + 1 > n) {
            return 0;
        }
        size_t flag_at = op++;
        uint8_t flags = 0;
        for (int bit = 0; bit < 8 && pos < n; bit++) {
            size_t best_len = 0;
            if (pos > 0 && n - pos >= MATCH_MIN) {
                size_t best_off = 0;
                unsigned lbits = length_bits(pos);
                size_t max_len = ((size_t)1 << lbits) - 1 + MATCH_MIN;
                if (max_len > n - pos) {
                    max_len = n - pos;
                }
                uint16_t cand = head[hash3(in + pos)];
                for (int depth = 0; cand != NO_POS && depth < CHAIN_DEPTH; depth++) {
                    size_t len = 0;
                    while (len < max_len && in[cand + len] == in[pos + len]) {
                        len++;
                    }
                    if (len > best_len) {
                        best_len = len;
                        best_off = pos - cand;
                        if (len == max_len) {
                            break;
                        }
                    }
                    cand = prev[cand];
                }
                if (best_len >= MATCH_MIN) {
                    if (op + 2 > n) {
                        return 0;
                    }
                    uint16_t token = (uint16_t)(((best_off - 1) << lbits) | (best_len - MATCH_MIN));
                    out[op++] = (uint8_t)token;
                    out[op++] = (uint8_t)(token >> 8);
                    flags |= (uint8_t)(1u << bit);
                }
            }
            size_t advance = best_len >= MATCH_MIN ? best_len : 1;
            if (best_len < MATCH_MIN) {
                if (op + 1 > n) {
                    return 0;
                }
                out[op++] = in[pos];
            }
            /* Index every position we pass so later matches can start anywhere. */
            for (size_t k = 0; k < advance; k++, pos++) {
                if (n - pos >= MATCH_MIN) {
                    unsigned hv = hash3(in + pos);
                    prev[pos] = head[hv];
                    head[hv] = (uint16_t)pos;
                }
            }
        }
        out[flag_at] = flags;
    }
    return op < n ? op : 0;
}

ptrdiff_t lznt1_compress(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap)
{
    uint8_t tmp[LZNT1_CHUNK_SIZE];
    size_t ip = 0, op = 0;

    while (ip < in_len) {
        size_t n = in_len - ip < LZNT1_CHUNK_SIZE ? in_len - ip : LZNT1_CHUNK_SIZE;
        size_t clen = compress_chunk(in + ip, n, tmp);
        const uint8_t *data = clen > 0 ? tmp : in + ip;
        size_t dlen = clen > 0 ? clen : n;
        uint16_t h = (uint16_t)(CHUNK_HDR_SIGNATURE | (dlen - 1));
        if (clen > 0) {
            h |= CHUNK_HDR_COMPRESSED;
        }
        if (out_cap - op < 2 + dlen) {
            return LZNT1_E_OVERFLOW;
        }
        out[op] = (uint8_t)h;
        out[op + 1] = (uint8_t)(h >> 8);
        memcpy(out + op + 2, data, dlen);
        op += 2 + dlen;
        ip += n;
    }
    return (ptrdiff_t)op;
}
