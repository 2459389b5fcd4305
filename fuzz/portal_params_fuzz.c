/* portal_params_fuzz.c -- libFuzzer harness: query strings and form bodies (portal_params_parse)
 * and a disinfection request read from them and from JSON (portal_disinfection_from_params,
 * _from_json) must never crash, and whatever is accepted must stay inside the authority's scope. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portal/portal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_inside(const struct portal_authority *a, const struct portal_disinfection *r)
{
    for (size_t i = 0; i < r->n_countries; i++) {
        if (!portal_scope_has_country(a, r->countries[i])) {
            abort();
        }
    }
    for (size_t i = 0; i < r->n_networks; i++) {
        if (!portal_scope_has_network(a, &r->networks[i])) {
            abort();
        }
    }
    if (r->n_countries + r->n_networks == 0 || r->not_after_us <= r->not_before_us) {
        abort();
    }
    free(portal_disinfection_json(r));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct portal_authority a;
    if (a.n_countries == 0) {
        memcpy(a.countries[0], "NG", 3);
        memcpy(a.countries[1], "GH", 3);
        a.n_countries = 2;
        net_cidr_parse("198.51.100.0/24", &a.networks[0], NULL, 0);
        a.n_networks = 1;
        a.may_request = true;
        memcpy(a.id, "ng", 3);
    }
    char *buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    static struct portal_params ps;
    static struct portal_disinfection r;
    char why[256];
    const uint64_t now = 1767225600000000ull; /* 2026-01-01 */
    if (portal_params_parse(buf, size, &ps, why, sizeof(why)) == 0 &&
        portal_disinfection_from_params(&a, &ps, now, &r, why, sizeof(why)) == 0) {
        check_inside(&a, &r);
    }
    if (portal_disinfection_from_json(&a, buf, size, now, &r, why, sizeof(why)) == 0) {
        check_inside(&a, &r);
    }
    free(buf);
    return 0;
}
