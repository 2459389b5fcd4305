/* evidence_spool_fuzz.c -- libFuzzer harness: what the log's writer checks in DIR/spool/ before
 * it appends anything (a file name, then the file's bytes as a record of an accepted kind). A
 * claimed name's index must be the number written after ".at-", and an accepted record must
 * encode back to the same bytes (the encoding is canonical). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/access.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *name = malloc(size + 1);
    if (name == NULL) {
        return 0;
    }
    memcpy(name, data, size);
    name[size] = '\0';
    bool claimed = false;
    uint64_t at = 0;
    if (access_spool_name_parse(name, &claimed, &at) && claimed) {
        char digits[32];
        snprintf(digits, sizeof(digits), ".at-%llu", (unsigned long long)at);
        const char *tail = strstr(name, ".at-");
        if (tail == NULL || strcmp(tail, digits) != 0) {
            __builtin_trap();
        }
    }
    free(name);
    struct record rec;
    if (access_spool_accepts(data, size, &rec)) {
        uint8_t back[EVENT_RECORD_MAX];
        int n = event_encode(&rec, back, sizeof(back));
        if (n < 0 || (size_t)n != size || memcmp(back, data, size) != 0) {
            __builtin_trap();
        }
    }
    return 0;
}
