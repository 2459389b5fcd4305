/* net_proxy_fuzz.c -- libFuzzer harness: proxy_parse on arbitrary bytes, then encode/parse
 * round trip of every accepted PROXY TCP header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_same(const struct net_addr *a, const struct net_addr *b)
{
    if (!net_addr_equal_ip(a, b) || a->port != b->port) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_header h;
    char err[128];
    ptrdiff_t r = proxy_parse(data, size, &h, err, sizeof(err));
    if (r > (ptrdiff_t)size) {
        abort(); /* consumed more than it was given */
    }
    if (r <= 0) {
        return 0;
    }
    /* A complete header is also complete in any longer buffer: the prefix that was accepted
     * must parse to the same length on its own. */
    struct proxy_header again;
    if (proxy_parse(data, (size_t)r, &again, err, sizeof(err)) != r) {
        abort();
    }
    if (h.local || h.src.family != h.dst.family) {
        return 0; /* LOCAL/UNKNOWN carry no addresses; mixed v4-mapped pairs cannot re-encode */
    }
    uint8_t buf[PROXY_V1_MAX + 64];
    for (int version = 1; version <= 2; version++) {
        ptrdiff_t n = version == 1 ? proxy_encode_v1(&h.src, &h.dst, buf, sizeof(buf))
                                   : proxy_encode_v2(&h.src, &h.dst, buf, sizeof(buf));
        if (n <= 0 || proxy_parse(buf, (size_t)n, &again, err, sizeof(err)) != n) {
            abort();
        }
        if (again.version != version || again.local) {
            abort();
        }
        check_same(&h.src, &again.src);
        check_same(&h.dst, &again.dst);
    }
    return 0;
}
