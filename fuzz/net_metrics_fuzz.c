/* net_metrics_fuzz.c -- libFuzzer harness: the metrics listener's request router (http_parser
 * under it) on hostile request bytes: always a known route, a page or file served only when the
 * request names its path (http_parser tolerates some noise around it), never left waiting past
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
    if (r < METRICS_NEED_MORE || r > METRICS_ROUTE_LAST) {
        __builtin_trap();
    }
    /* Served only for a request that names the path ("/" for the dashboard). */
    const char *path = r == METRICS_SERVE           ? "/metrics"
                       : r == METRICS_SERVE_JSON    ? "/metrics.json"
                       : r == METRICS_DASHBOARD_JS  ? "/dashboard.js"
                       : r == METRICS_DASHBOARD_CSS ? "/dashboard.css"
                       : r == METRICS_DASHBOARD     ? "/"
                                                    : NULL;
    if (path != NULL) {
        size_t plen = strlen(path);
        bool found = false;
        for (size_t i = 0; !found && i + plen <= size; i++) {
            found = memcmp(req + i, path, plen) == 0;
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
