/* addr.h -- compact IPv4/IPv6 endpoint and CIDR values shared by net, proto, enrich and event. */
#ifndef SINKD_UTIL_ADDR_H
#define SINKD_UTIL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* An endpoint. IPv4 addresses live in ip[0..3]; IPv4-mapped IPv6 is normalised to IPv4.
 * family == 0 means "no address". */
struct net_addr {
    uint8_t family; /* AF_INET, AF_INET6 or 0 */
    uint16_t port;  /* host byte order */
    uint8_t ip[16]; /* network byte order */
};

#define NET_ADDR_STRLEN 46 /* INET6_ADDRSTRLEN */

struct net_cidr {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t prefix; /* 0..32 or 0..128 */
    uint8_t ip[16]; /* masked to the prefix */
};

int net_addr_from_sockaddr(struct net_addr *out, const struct sockaddr *sa);
int net_addr_to_sockaddr(const struct net_addr *addr, struct sockaddr_storage *out, socklen_t *len);

/* Text form of the IP only ("192.0.2.1", "2001:db8::1"); "" for family 0. */
void net_addr_format_ip(const struct net_addr *addr, char out[NET_ADDR_STRLEN]);

/* Parses an IP literal without port. Returns 0 or -1. */
int net_addr_parse_ip(const char *text, struct net_addr *out);

/* Parses "HOST:PORT" where HOST is an IPv4 literal or a bracketed IPv6 literal ("[::1]:443"). */
int net_addr_parse_hostport(const char *text, struct net_addr *out, char *err, size_t errlen);

/* Parses "192.0.2.0/24", "2001:db8::/32" or a bare address (a host prefix). */
int net_cidr_parse(const char *text, struct net_cidr *out, char *err, size_t errlen);
bool net_cidr_contains(const struct net_cidr *cidr, const struct net_addr *addr);

bool net_addr_equal_ip(const struct net_addr *a, const struct net_addr *b);

#endif
