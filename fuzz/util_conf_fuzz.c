/* util_conf_fuzz.c -- libFuzzer harness: conf_parse over arbitrary bytes must never crash, leak
 * or return an argument that is not "--<known key>" or "--<key>=<value>". */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/conf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct conf_option opts[] = {
        {"state", true, false},   {"listen", true, true}, {"enforce", false, false},
        {"workers", true, false}, {"tags", true, true},
    };
    struct conf_args out;
    char err[512];
    if (conf_parse((const char *)data, size, "fuzz.conf", "serve", opts, 5, &out, err,
                   sizeof(err)) != 0) {
        if (out.n != 0 || out.v != NULL || strncmp(err, "fuzz.conf", 9) != 0) {
            abort();
        }
        return 0;
    }
    for (size_t i = 0; i < out.n; i++) {
        size_t k = 0;
        while (k < 5 && strcmp(opts[k].name, out.v[i].name) != 0) {
            k++;
        }
        size_t n = strlen(out.v[i].name);
        if (k == 5 || strncmp(out.v[i].arg, "--", 2) != 0 ||
            strncmp(out.v[i].arg + 2, out.v[i].name, n) != 0 ||
            out.v[i].arg[2 + n] != (opts[k].takes_value ? '=' : '\0') || out.v[i].line == 0) {
            abort();
        }
    }
    conf_args_free(&out);
    return 0;
}
