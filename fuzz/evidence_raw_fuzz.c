/* evidence_raw_fuzz.c -- libFuzzer harness: the name parser `sinkd raw check` applies to every
 * file it finds under state/raw/ (anyone with access to the directory can put names there). A
 * name is accepted only in its one spelling: what raw_name() writes for the parsed hash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/raw.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name = malloc(size + 1);
    if (name == NULL) {
        return 0;
    }
    memcpy(name, data, size);
    name[size] = '\0';
    uint8_t sha[32];
    if (raw_parse_name(name, sha)) {
        char back[RAW_NAME_LEN];
        raw_name(sha, back);
        if (strcmp(back, name) != 0) {
            __builtin_trap();
        }
    }
    free(name);
    return 0;
}
