/* synfilter.h -- an eBPF socket filter on the listeners that drops IPv4 segments from a set of
 * source addresses kept in a BPF hash map. On a listening TCP socket it drops their SYNs before
 * the kernel answers them: a dropped address costs the server no accept, no descriptor and no
 * reset, and its connect waits for retransmits. Sockets accepted from the listener inherit the
 * filter (one hash lookup per segment).
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

struct synfilter;

/* Creates the map for up to max addresses (1..SYNFILTER_MAX_ADDRS) and loads the program.
 * Returns NULL with the reason in err (the kernel's verifier log if it refused the program). */
struct synfilter *synfilter_open(uint32_t max, char *err, size_t errlen);
void synfilter_close(struct synfilter *f);

/* Installs the filter on the IPv4 socket fd. Returns 0 or -errno. */
int synfilter_attach(const struct synfilter *f, int fd);

/* Makes the dropped set exactly addrs (IPv4, host byte order, strictly ascending, n <= max):
 * deletes the addresses no longer listed, inserts the new ones. Thread-safe. Returns 0,
 * -EINVAL for a bad set, or the -errno of the map update that failed (the set is then whatever
 * part was applied, and the next call retries the rest). */
int synfilter_set(struct synfilter *f, const uint32_t *addrs, size_t n);

/* Adds one address at once (a worker that has just banned it), so the kernel drops it from the
 * next SYN rather than from the next synfilter_set. Thread-safe. Returns 0 (also if it was
 * listed), -ENOSPC if max addresses are listed, or the map update's -errno. */
int synfilter_add(struct synfilter *f, uint32_t addr);

/* Addresses currently dropped. */
size_t synfilter_size(struct synfilter *f);

#endif
