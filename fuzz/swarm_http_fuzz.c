/* swarm_http_fuzz.c -- libFuzzer harness: the swarm's reader of HTTP responses (what a server,
 * or anything at the target address, sends back) over arbitrary bytes fed in arbitrary pieces;
 * and the header-form request builder over arbitrary styles and values. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "swarm/swarm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    /* the first byte picks the piece size, so one input explores many read boundaries */
    size_t step = (size_t)data[0] % 61 + 1;
    data++;
    size--;
    struct swarm_http_reader r;
    swarm_http_reader_init(&r);
    size_t off = 0;
    char err[160];
    while (off < size) {
        size_t piece = size - off < step ? size - off : step;
        ptrdiff_t used = swarm_http_reader_feed(&r, data + off, piece, err, sizeof(err));
        if (used < 0) {
            break;
        }
        if ((size_t)used > piece || r.body_len > SWARM_HTTP_BODY_MAX || r.body_len > r.body_cap) {
            abort();
        }
        if (!r.complete && (size_t)used != piece) {
            abort(); /* the reader stops early only after a complete response */
        }
        off += (size_t)used;
    }
    swarm_http_reader_free(&r);

    if (size >= 28) {
        struct swarm_header_style s = {.names = (uint8_t)(data[0] % 3),
                                       .uri = (uint8_t)(data[1] & 1),
                                       .first_digit = (uint8_t)(data[2] & 1)};
        memcpy(s.stem, data + 3, 4);
        for (int i = 0; i < 4; i++) {
            s.stem[i] = (char)('A' + (uint8_t)s.stem[i] % 26);
        }
        uint32_t uri[3], values[4];
        memcpy(uri, data + 4, sizeof(uri));
        memcpy(values, data + 12, sizeof(values));
        uint8_t out[512];
        size_t cap = (size_t)data[2] * 2 + 1;
        ptrdiff_t n =
            swarm_http_header_request(&s, "127.0.0.1:443", uri, values, data + 28, size - 28, out,
                                      cap < sizeof(out) ? cap : sizeof(out));
        if (n > (ptrdiff_t)sizeof(out)) {
            abort();
        }
    }
    return 0;
}
