/* proxy.h -- PROXY protocol v1 (text) and v2 (binary) headers, as in HAProxy's
 * doc/proxy-protocol.txt: a pure parser for the receiving side and encoders for the swarm. */
#ifndef SINKD_NET_PROXY_H
#define SINKD_NET_PROXY_H

#include <stddef.h>
#include <stdint.h>

#include "util/addr.h"

#define PROXY_V1_MAX 107 /* worst case "PROXY UNKNOWN ..." line including CRLF */
#define PROXY_V2_MAX (16 + 65535)

enum proxy_error {
    PROXY_E_INVALID = -1,     /* not a well-formed PROXY header */
    PROXY_E_UNSUPPORTED = -2, /* well-formed but a family/command we must drop */
};

struct proxy_header {
    uint8_t version; /* 1 or 2 */
    uint8_t local;   /* v2 LOCAL command or v1 UNKNOWN: use the socket's own addresses */
    struct net_addr src;
    struct net_addr dst;
};

/* 1: buf starts with (a prefix of) a PROXY v1 or v2 signature; 0: too short to tell; -1: it
 * does not. Needs at most 12 bytes to decide. */
int proxy_detect(const uint8_t *buf, size_t len);

/* Parses one complete header from the front of buf. Returns bytes consumed (> 0), 0 when more
 * bytes are needed, or a negative enum proxy_error with a reason in err. v2 TLVs are skipped,
 * except CRC32C, which is checked. */
ptrdiff_t proxy_parse(const uint8_t *buf, size_t len, struct proxy_header *out, char *err,
                      size_t errlen);

/* Encoders (TCP over IPv4/IPv6; src and dst must be the same family). Return bytes written or
 * -1 if cap is too small or the families differ. */
ptrdiff_t proxy_encode_v1(const struct net_addr *src, const struct net_addr *dst, uint8_t *out,
                          size_t cap);
ptrdiff_t proxy_encode_v2(const struct net_addr *src, const struct net_addr *dst, uint8_t *out,
                          size_t cap);

#endif
