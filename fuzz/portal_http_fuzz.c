/* portal_http_fuzz.c -- libFuzzer harness: one HTTP request through portal_http_parse, then its
 * query string through portal_params_parse and its Cookie header through portal_cookie_get, must
 * never crash, read past the buffer or break the request's bounds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "portal/portal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly `size` bytes, so ASan catches any read past the end. */
    char *buf = malloc(size ? size : 1);
    if (buf == NULL) {
        return 0;
    }
    memcpy(buf, data, size);
    static struct portal_request req;
    static struct portal_params ps;
    char why[96];
    enum portal_parse_result r = portal_http_parse(buf, size, &req, why, sizeof(why));
    if (r == PORTAL_PARSE_DONE) {
        if (req.path[0] != '/' || strlen(req.path) > PORTAL_PATH_MAX ||
            strlen(req.query) > PORTAL_QUERY_MAX || req.body_len > PORTAL_BODY_MAX ||
            req.consumed > size ||
            (req.body != NULL && (req.body < buf || req.body + req.body_len > buf + size))) {
            abort();
        }
        if (portal_params_parse(req.query, strlen(req.query), &ps, why, sizeof(why)) == 0) {
            for (size_t i = 0; i < ps.n; i++) {
                if (strlen(ps.p[i].name) > PORTAL_PARAM_NAME_MAX ||
                    strlen(ps.p[i].value) > PORTAL_PARAM_VALUE_MAX) {
                    abort();
                }
            }
        }
        char cookie[80];
        (void)portal_cookie_get(req.cookie, "sinkd_session", cookie, sizeof(cookie));
    }
    free(buf);
    return 0;
}
