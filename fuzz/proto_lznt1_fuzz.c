/* proto_lznt1_fuzz.c -- libFuzzer harness: LZNT1 decompression of arbitrary input under a small
 * output cap, and compress-then-decompress round trips that must reproduce the input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto/plugx/lznt1.h"

#define SMALL_CAP 8192
#define MAX_INPUT 70000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t out[SMALL_CAP + 16], comp[MAX_INPUT + 64], back[MAX_INPUT];

    /* Canary past the cap: the decoder must never write beyond out_cap. */
    memset(out + SMALL_CAP, 0x5A, 16);
    ptrdiff_t n = lznt1_decompress(data, size, out, SMALL_CAP);
    if (n > SMALL_CAP || n < LZNT1_E_CHUNK) {
        abort();
    }
    for (int i = 0; i < 16; i++) {
        if (out[SMALL_CAP + i] != 0x5A) {
            abort();
        }
    }
    /* What decompressed must decompress the same with an exact cap, and fail with one less. */
    if (n > 0) {
        static uint8_t again[SMALL_CAP];
        if (lznt1_decompress(data, size, again, (size_t)n) != n ||
            memcmp(again, out, (size_t)n) != 0) {
            abort();
        }
        if (lznt1_decompress(data, size, again, (size_t)n - 1) != LZNT1_E_OVERFLOW) {
            abort();
        }
    }

    if (size > MAX_INPUT) {
        return 0;
    }
    size_t bound = lznt1_compress_bound(size);
    ptrdiff_t c = lznt1_compress(data, size, comp, bound);
    if (c < 0 || (size_t)c > bound) {
        abort();
    }
    ptrdiff_t d = lznt1_decompress(comp, (size_t)c, back, size);
    if (d != (ptrdiff_t)size || memcmp(back, data, size) != 0) {
        abort();
    }
    return 0;
}
