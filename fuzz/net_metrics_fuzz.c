/* net_metrics_fuzz.c -- libFuzzer harness: the GET /metrics request router (http_parser under
 * it) on hostile request bytes: always a known route, served only when the request names
 * /metrics (http_parser tolerates some noise around it), never left waiting past
 * METRICS_REQUEST_MAX. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "net/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *req = (const char *)data;
    enum metrics_route r = metrics_route_request(req, size);
    if (r < METRICS_NEED_MORE || r > METRICS_BAD_REQUEST) {
        __builtin_trap();
    }
    /* Served only for a request that names the path. */
    if (r == METRICS_SERVE) {
        static const char path[] = "/metrics";
        bool found = false;
        for (size_t i = 0; !found && i + sizeof(path) - 1 <= size; i++) {
            found = memcmp(req + i, path, sizeof(path) - 1) == 0;
        }
        if (!found) {
            __builtin_trap();
        }
    }
    if (size >= METRICS_REQUEST_MAX && r == METRICS_NEED_MORE) {
        __builtin_trap();
    }
    return 0;
}
