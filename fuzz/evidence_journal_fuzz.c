/* evidence_journal_fuzz.c -- libFuzzer harness: the journal batch framing and the journal base
 * (journal/base) used by recovery and the reader, and the evidence bundle manifest parser. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "evidence/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t first = 0;
    uint32_t count = 0;
    int n = evlog_journal_parse_batch(data, size, &first, &count);
    if (n > 0 && ((size_t)n > size || count == 0)) {
        __builtin_trap();
    }
    /* A complete batch is complete in every longer buffer too. */
    if (n > 0 && evlog_journal_parse_batch(data, (size_t)n, &first, &count) != n) {
        __builtin_trap();
    }
    /* A base that parses names a bundle edge and a tree of exactly that size. */
    static struct evlog_journal_base base;
    char why[256];
    if (evlog_journal_base_parse(data, size, &base, why, sizeof why) == 0 &&
        (base.index == 0 || base.index % EVLOG_TILE_WIDTH != 0 || base.tree.size != base.index)) {
        __builtin_trap();
    }
    struct evlog_checkpoint cp;
    uint64_t entries;
    char err[256];
    evlog_bundle_parse_manifest((const char *)data, size, &cp, &entries, err, sizeof err);
    return 0;
}
