/* ipcount.h -- connections per source address, shared by all workers (sharded, locked only at
 * connect and close, never per message). */
#ifndef SINKD_NET_IPCOUNT_H
#define SINKD_NET_IPCOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "util/addr.h"

struct ipcount;

struct ipcount *ipcount_new(void);
void ipcount_free(struct ipcount *t);
/* Counts one more connection from addr's IP unless it already has `limit`; returns false then. */
bool ipcount_acquire(struct ipcount *t, const struct net_addr *addr, uint32_t limit);
void ipcount_release(struct ipcount *t, const struct net_addr *addr);

#endif
