/* addr.c -- conversions between sockaddr, text and sinkd's compact endpoint values. */
#include "util/addr.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int net_addr_from_sockaddr(struct net_addr *out, const struct sockaddr *sa)
{
    memset(out, 0, sizeof(*out));
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        out->family = AF_INET;
        out->port = ntohs(sin->sin_port);
        memcpy(out->ip, &sin->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        out->port = ntohs(sin6->sin6_port);
        if (memcmp(sin6->sin6_addr.s6_addr, v4_mapped_prefix, 12) == 0) {
            out->family = AF_INET;
            memcpy(out->ip, sin6->sin6_addr.s6_addr + 12, 4);
        } else {
            out->family = AF_INET6;
            memcpy(out->ip, sin6->sin6_addr.s6_addr, 16);
        }
        return 0;
    }
    return -1;
}

int net_addr_to_sockaddr(const struct net_addr *addr, struct sockaddr_storage *out, socklen_t *len)
{
    memset(out, 0, sizeof(*out));
    if (addr->family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)out;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(addr->port);
        memcpy(&sin->sin_addr, addr->ip, 4);
        *len = sizeof(*sin);
        return 0;
    }
    if (addr->family == AF_INET6) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)out;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(addr->port);
        memcpy(&sin6->sin6_addr, addr->ip, 16);
        *len = sizeof(*sin6);
        return 0;
    }
    return -1;
}

void net_addr_format_ip(const struct net_addr *addr, char out[NET_ADDR_STRLEN])
{
    out[0] = '\0';
    if (addr->family == AF_INET || addr->family == AF_INET6) {
        inet_ntop(addr->family, addr->ip, out, NET_ADDR_STRLEN);
    }
}

int net_addr_parse_ip(const char *text, struct net_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->ip) == 1) {
        out->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, out->ip) == 1) {
        out->family = AF_INET6;
        if (memcmp(out->ip, v4_mapped_prefix, 12) == 0) {
            memmove(out->ip, out->ip + 12, 4);
            memset(out->ip + 4, 0, 12);
            out->family = AF_INET;
        }
        return 0;
    }
    return -1;
}

static int parse_port(const char *text, uint16_t *port)
{
    char *end = NULL;
    if (*text < '0' || *text > '9') {
        return -1;
    }
    unsigned long v = strtoul(text, &end, 10);
    if (*end != '\0' || v > 65535) {
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

int net_addr_parse_hostport(const char *text, struct net_addr *out, char *err, size_t errlen)
{
    char host[NET_ADDR_STRLEN + 2];
    const char *port_text;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':' || (size_t)(close - text - 1) >= sizeof(host)) {
            return err_set(err, errlen, "'%s': expected [IPv6]:PORT", text);
        }
        memcpy(host, text + 1, (size_t)(close - text - 1));
        host[close - text - 1] = '\0';
        port_text = close + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof(host) || strchr(text, ':') != colon) {
            return err_set(err, errlen, "'%s': expected HOST:PORT (IPv6 in brackets)", text);
        }
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
    }
    if (net_addr_parse_ip(host, out) != 0) {
        return err_set(err, errlen, "'%s': '%s' is not an IP address", text, host);
    }
    if (parse_port(port_text, &out->port) != 0) {
        return err_set(err, errlen, "'%s': '%s' is not a port number (0-65535)", text, port_text);
    }
    return 0;
}

int net_cidr_parse(const char *text, struct net_cidr *out, char *err, size_t errlen)
{
    char host[NET_ADDR_STRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t host_len = slash ? (size_t)(slash - text) : strlen(text);
    struct net_addr addr;
    if (host_len >= sizeof(host)) {
        return err_set(err, errlen, "'%s': not a CIDR prefix", text);
    }
    memcpy(host, text, host_len);
    host[host_len] = '\0';
    if (net_addr_parse_ip(host, &addr) != 0) {
        return err_set(err, errlen, "'%s': '%s' is not an IP address", text, host);
    }
    unsigned max = addr.family == AF_INET ? 32 : 128;
    unsigned long prefix = max;
    if (slash != NULL) {
        char *end = NULL;
        if (slash[1] < '0' || slash[1] > '9') {
            return err_set(err, errlen, "'%s': missing prefix length after '/'", text);
        }
        prefix = strtoul(slash + 1, &end, 10);
        if (*end != '\0' || prefix > max) {
            return err_set(err, errlen, "'%s': prefix length must be 0-%u", text, max);
        }
    }
    memset(out, 0, sizeof(*out));
    out->family = addr.family;
    out->prefix = (uint8_t)prefix;
    for (unsigned i = 0; i < max / 8; i++) {
        unsigned bits = prefix > i * 8 ? prefix - i * 8 : 0;
        uint8_t mask = bits >= 8 ? 0xff : (uint8_t)(0xff << (8 - bits));
        out->ip[i] = addr.ip[i] & mask;
    }
    return 0;
}

bool net_cidr_contains(const struct net_cidr *cidr, const struct net_addr *addr)
{
    if (cidr->family != addr->family) {
        return false;
    }
    unsigned full = cidr->prefix / 8;
    unsigned rest = cidr->prefix % 8;
    if (memcmp(cidr->ip, addr->ip, full) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (addr->ip[full] & mask) == cidr->ip[full];
}

bool net_addr_equal_ip(const struct net_addr *a, const struct net_addr *b)
{
    size_t n = a->family == AF_INET ? 4 : 16;
    return a->family == b->family && memcmp(a->ip, b->ip, n) == 0;
}
