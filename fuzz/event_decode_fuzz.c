/* event_decode_fuzz.c -- libFuzzer harness: the record decoder over arbitrary log entries; what
 * decodes must re-encode to the same bytes (the encoding is canonical). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct record rec;
    char err[256];
    if (event_decode(data, size, &rec, err, sizeof(err)) != 0) {
        return 0;
    }
    uint8_t again[EVENT_RECORD_MAX];
    int n = event_encode(&rec, again, sizeof(again));
    if (n < 0 || (size_t)n != size || memcmp(again, data, size) != 0) {
        abort();
    }
    json_t *o = event_to_json(&rec);
    json_decref(o);
    return 0;
}
