/* portal_authorities_fuzz.c -- libFuzzer harness: the authorities file parser over arbitrary bytes
 * must never crash or leak; whatever loads must describe itself and answer scope questions. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portal/portal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct portal_authorities *as = NULL;
    char err[512];
    if (portal_authorities_parse((const char *)data, size, "fuzz.ini", &as, err, sizeof(err)) !=
        0) {
        if (err[0] == '\0') {
            abort(); /* a refusal always says why */
        }
        return 0;
    }
    free(portal_authorities_describe(as));
    struct net_addr ip = {.family = AF_INET, .ip = {198, 51, 100, 7}};
    for (size_t i = 0; i < as->n; i++) {
        const struct portal_authority *a = as->a[i];
        if (a->n_countries == 0 && a->n_asns == 0 && a->n_networks == 0) {
            abort(); /* an empty scope must have been refused */
        }
        (void)portal_scope_holds(a, "NG", 64500, &ip);
        if (portal_authority_by_id(as, a->id) != a) {
            abort();
        }
    }
    (void)portal_authority_by_token(as, "token", 5);
    portal_authorities_free(as);
    return 0;
}
