/* undecoded.h -- how many undecoded contacts each source address may add to the log: callers whose
 * bytes no family decodes are recorded, but a garbage flood must not balloon the log. A fixed
 * table of slots keyed by address, shared by all workers (undecoded callers are rare, so one
 * lock is enough); memory is bounded by the slot count, whatever the addresses. */
#ifndef SINKD_NET_UNDECODED_H
#define SINKD_NET_UNDECODED_H

#include <stdbool.h>
#include <stdint.h>

#include "util/addr.h"

struct undecoded_limit;

/* per_window records per address per window_ms; slots addresses remembered at once (a new
 * address takes the slot of an old one whose window has ended, or else the oldest). */
struct undecoded_limit *undecoded_limit_new(uint32_t slots, uint32_t per_window,
                                            uint32_t window_ms);
void undecoded_limit_free(struct undecoded_limit *l);

/* Whether one more undecoded contact from addr's IP (port ignored) at now_ms is recorded. true:
 * record it, with *suppressed = the contacts from that address not recorded since its last
 * record (0 if none or forgotten). false: counted as suppressed, not recorded. */
bool undecoded_limit_admit(struct undecoded_limit *l, const struct net_addr *addr, uint64_t now_ms,
                           uint32_t *suppressed);

struct undecoded_limit_stats {
    uint64_t recorded;   /* admitted */
    uint64_t suppressed; /* not recorded one by one */
    uint64_t forgotten;  /* suppressed counts lost with their slot to a newer address */
};
void undecoded_limit_stats(struct undecoded_limit *l, struct undecoded_limit_stats *out);

#endif
