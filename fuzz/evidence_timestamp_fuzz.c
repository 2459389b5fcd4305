/* evidence_timestamp_fuzz.c -- libFuzzer harness: RFC 3161 reply and request checks
 * (evlog_ts_check) on hostile bytes, as a TSA or a tampered timestamps/ file could deliver them.
 * The first byte picks what the rest is: a reply alone, a reply with a request, or a request
 * paired with a fixed token (tests/vectors/tsa/resp.tsr's shape is in the seed corpus). */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "evidence/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t digest[EVLOG_HASH_SIZE] = {0x5d, 0xc9, 0xda, 0x79};
    if (size < 1) {
        return 0;
    }
    const uint8_t *body = data + 1;
    size_t len = size - 1;
    struct evlog_timestamp ts;
    char err[512];
    int rc;
    switch (data[0] % 3) {
    case 0:
        rc = evlog_ts_check(digest, NULL, 0, body, len, NULL, &ts, err, sizeof err);
        break;
    case 1: { /* split: request first (length in the next byte), then the reply */
        size_t qlen = len > 0 ? body[0] : 0;
        if (qlen + 1 > len) {
            return 0;
        }
        rc = evlog_ts_check(digest, body + 1, qlen, body + 1 + qlen, len - 1 - qlen, NULL, &ts, err,
                            sizeof err);
        break;
    }
    default:
        rc = evlog_ts_check(digest, body, len, body, len, NULL, &ts, err, sizeof err);
        break;
    }
    /* The digest above is nobody's checkpoint: nothing may pass. */
    if (rc == 0) {
        __builtin_trap();
    }
    if (memchr(err, '\0', sizeof err) == NULL) {
        __builtin_trap();
    }
    return 0;
}
