/* evidence_bundle_fuzz.c -- libFuzzer harness: the evidence bundle manifest (bundle.json) parser
 * and proof checker over arbitrary text; it must reject or verify, never crash or leak. */
#include <stddef.h>
#include <stdint.h>

#include "evidence/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct evlog_checkpoint cp;
    uint64_t entries = 0;
    char err[256];
    (void)evlog_bundle_parse_manifest((const char *)data, size, &cp, &entries, err, sizeof(err));
    return 0;
}
