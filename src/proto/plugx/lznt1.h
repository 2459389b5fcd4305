/* lznt1.h -- LZNT1 compression and decompression (Microsoft MS-XCA section 2.5). */
#ifndef SINKD_PROTO_PLUGX_LZNT1_H
#define SINKD_PROTO_PLUGX_LZNT1_H

#include <stddef.h>
#include <stdint.h>

#define LZNT1_CHUNK_SIZE 4096

enum lznt1_error {
    LZNT1_E_TRUNCATED = -1, /* chunk header or data runs past the input */
    LZNT1_E_SIGNATURE = -2, /* chunk header signature bits are not 0b011 */
    LZNT1_E_OFFSET = -3,    /* copy token reaches before the start of its chunk */
    LZNT1_E_OVERFLOW = -4,  /* output would exceed out_cap (decompression bomb guard) */
    LZNT1_E_CHUNK = -5,     /* a chunk decompresses to more than 4096 bytes */
};

/* Decompresses in[0..in_len) into out. A zero chunk header or the end of input ends the stream.
 * Returns bytes written (>= 0) or a negative enum lznt1_error. Never writes past out_cap. */
ptrdiff_t lznt1_decompress(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap);

/* Compresses in into out (stored chunks where compression does not pay). Returns bytes written
 * or LZNT1_E_OVERFLOW. lznt1_compress_bound() bytes are always enough. */
ptrdiff_t lznt1_compress(const uint8_t *in, size_t in_len, uint8_t *out, size_t out_cap);
size_t lznt1_compress_bound(size_t in_len);

#endif
