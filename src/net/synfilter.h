/* synfilter.h -- an eBPF socket filter on the listeners that drops segments from a set of source
 * addresses (IPv4) and /64 prefixes (IPv6) kept in BPF hash maps (one for IPv4, one for IPv6, each
 * with its own program). On a listening TCP socket it drops their SYNs before the kernel answers
 * them: a dropped address costs the server no accept, no descriptor and no reset, and its connect
 * waits for retransmits. Sockets accepted from the listener inherit the filter (one hash lookup per
 * segment).
 *
 * Creating the map and loading the program need privileges (root or CAP_BPF, as
 * kernel.unprivileged_bpf_disabled is set on Debian); attaching is done while they are held.
 * Changing the set afterwards only updates the map through its descriptor, which Linux 5.19 and
 * later allow without privileges, so it keeps working after serve drops them. Classic BPF
 * (SO_ATTACH_FILTER, rebuilt per change) would need no map, but some kernels (this project's CI
 * VM) refuse it without CAP_NET_ADMIN, which serve does not keep. */
#ifndef SINKD_NET_SYNFILTER_H
#define SINKD_NET_SYNFILTER_H

#include <stddef.h>
#include <stdint.h>

#define SYNFILTER_MAX_ADDRS 65536

/* A source address, 16 bytes in network order; IPv4 as IPv4-mapped IPv6 (::ffff:a.b.c.d). */
struct synfilter_addr {
    uint8_t b[16];
};

/* From 4 (IPv4) or 16 (IPv6) network-order bytes. */
struct synfilter_addr synfilter_addr_bytes(const uint8_t *ip, size_t len);
/* What the filter drops by: an IPv4 address as it is, an IPv6 address's /64 (its low 64 bits
 * zeroed). An IPv6 attacker gets a /64 from any provider and can send from every address in it;
 * a /64 is also one subscriber's network, so banning it hits nobody else. */
struct synfilter_addr synfilter_addr_prefix(struct synfilter_addr a);
int synfilter_addr_cmp(const struct synfilter_addr *a, const struct synfilter_addr *b);

struct synfilter;

/* Creates the maps for up to max addresses each (1..SYNFILTER_MAX_ADDRS) and loads the
 * programs.
 * Returns NULL with the reason in err (the kernel's verifier log if it refused the program). */
struct synfilter *synfilter_open(uint32_t max, char *err, size_t errlen);
void synfilter_close(struct synfilter *f);

/* Installs the filter for `family` (AF_INET or AF_INET6, an IPV6_V6ONLY socket) on fd.
 * Returns 0 or -errno. */
int synfilter_attach(const struct synfilter *f, int fd, int family);

/* Makes the dropped set exactly addrs (strictly ascending by synfilter_addr_cmp, n <= max,
 * each as synfilter_addr_prefix gives it):
 * deletes the addresses no longer listed, inserts the new ones. Thread-safe. Returns 0,
 * -EINVAL for a bad set, or the -errno of the map update that failed (the set is then whatever
 * part was applied, and the next call retries the rest). */
int synfilter_set(struct synfilter *f, const struct synfilter_addr *addrs, size_t n);

/* Adds one address (for IPv6, its /64) at once (a worker that has just banned it), so the
 * kernel drops it from the next SYN rather than from the next synfilter_set. Thread-safe. Returns 0
 * (also if it was listed), -ENOSPC if max addresses are listed, or the map update's -errno. */
int synfilter_add(struct synfilter *f, const struct synfilter_addr *addr);

/* Addresses currently dropped. */
size_t synfilter_size(struct synfilter *f);

#endif
