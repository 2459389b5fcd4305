/* evidence_entries_fuzz.c -- libFuzzer harness: the entry bundle parser `sinkd verify` reads a
 * published log's entries back with (evlog_entry_bundle_parse): every entry it hands out lies
 * inside the buffer, in order, and a truncated bundle is refused, never read past. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "evidence/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct seen {
    const uint8_t *base;
    size_t size;
    uint64_t next;
    size_t bytes;
};

static int each(void *ctx, uint64_t index, const uint8_t *entry, size_t len)
{
    struct seen *s = ctx;
    if (index != s->next++ || entry < s->base || entry + len > s->base + s->size) {
        __builtin_trap();
    }
    s->bytes += 2 + len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    unsigned w = 1 + data[0]; /* 1..256 entries, as a bundle holds */
    struct seen s = {.base = data + 1, .size = size - 1, .next = 1000};
    char err[256];
    int rc = evlog_entry_bundle_parse(data + 1, size - 1, w, 1000, each, &s, err, sizeof err);
    if ((rc == 0 && (s.next != 1000 + w || s.bytes > size - 1)) || rc > 0) {
        __builtin_trap();
    }
    return 0;
}
