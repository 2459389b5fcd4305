/* report_time_fuzz.c -- libFuzzer harness for report_parse_time(), the --since/--until parser. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "report/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* The parser takes a C string (argv): give it one, NUL-terminated at the input's end. */
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    char err[128];
    uint64_t a = 0, b = 0;
    int ra = report_parse_time(text, false, &a, err, sizeof(err));
    int rb = report_parse_time(text, true, &b, err, sizeof(err));
    /* Invariants: both bounds accept the same texts; an end bound is never before a start. */
    if ((ra == 0) != (rb == 0) || (ra == 0 && b < a)) {
        abort();
    }
    char cc[3];
    report_cc_name(text, cc);
    if (strlen(cc) != 2) {
        abort();
    }
    free(text);
    return 0;
}
