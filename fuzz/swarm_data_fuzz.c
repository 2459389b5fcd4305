/* swarm_data_fuzz.c -- libFuzzer harness: the swarm's country-weights and address-range file
 * parsers over arbitrary bytes (they read operator-supplied files). */
#include <stdint.h>
#include <stdio.h>

#include "swarm/swarm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    FILE *in = fmemopen((void *)data, size, "r");
    if (in != NULL) {
        struct swarm_countries countries = {0};
        if (swarm_countries_read(in, "fuzz.csv", &countries, err, sizeof(err)) == 0) {
            (void)swarm_countries_pick(&countries, 0.5);
        }
        swarm_countries_free(&countries);
        fclose(in);
    }
    in = fmemopen((void *)data, size, "r");
    if (in != NULL) {
        struct swarm_ranges ranges = {0};
        if (swarm_ranges_read(in, "fuzz.csv", &ranges, err, sizeof(err)) == 0) {
            uint32_t ip;
            (void)swarm_ranges_pick(&ranges, "NG", 12345, &ip);
        }
        swarm_ranges_free(&ranges);
        fclose(in);
    }
    return 0;
}
