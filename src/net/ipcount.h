/* ipcount.h -- per source address: open connections (a cap) and new connections per second (a
 * token bucket), shared by all workers; locked per shard, only at connect and close. */
#ifndef SINKD_NET_IPCOUNT_H
#define SINKD_NET_IPCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/addr.h"

struct ipcount_limits {
    uint32_t max_open; /* open connections per address */
    uint32_t rate;     /* new connections per second per address (0: unlimited) */
    uint32_t burst;    /* ... of which this many back to back */
};

enum ipcount_verdict {
    IPCOUNT_OK = 0,
    IPCOUNT_TOO_MANY = 1, /* max_open reached */
    IPCOUNT_TOO_FAST = 2, /* the address's bucket is empty */
    IPCOUNT_NOMEM = 3,
};

struct ipcount;

/* max_tracked bounds the addresses remembered (idle buckets are forgotten first). */
struct ipcount *ipcount_new(uint32_t max_tracked);
void ipcount_free(struct ipcount *t);
/* Counts one more connection from addr's IP at now_ms if the limits allow it. */
enum ipcount_verdict ipcount_acquire(struct ipcount *t, const struct net_addr *addr,
                                     const struct ipcount_limits *lim, uint64_t now_ms);
void ipcount_release(struct ipcount *t, const struct net_addr *addr);
/* Forgets idle addresses of one shard (of 64); workers call it from their timers in turn. */
void ipcount_sweep(struct ipcount *t, const struct ipcount_limits *lim, uint64_t now_ms,
                   unsigned shard);
/* Addresses currently remembered (open connections or a bucket still refilling). */
uint64_t ipcount_tracked(struct ipcount *t);

#endif
