/* banlist.h -- which addresses the listeners drop in the kernel (synfilter.h): an address
 * that the per-address rate limit refused `after` times within one second is banned for
 * `ban_ms`. Only untrusted peers are reported here: their address completed a TCP handshake, so
 * it is not spoofed, and it is the address the kernel sees (never a trusted proxy's). Shared by
 * all workers; one lock, taken once per refusal and per snapshot. Memory is fixed at creation. */
#ifndef SINKD_NET_BANLIST_H
#define SINKD_NET_BANLIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/synfilter.h"

/* Each new ban looks for the address among those banned: kept small enough for a linear scan. */
#define BANLIST_MAX 4096

struct banlist_limits {
    uint32_t after;  /* refusals within one second that ban an address; 0: never ban */
    uint32_t ban_ms; /* how long a ban lasts */
    uint32_t max;    /* addresses banned at once (at most BANLIST_MAX) */
};

struct banlist_stats {
    uint64_t banned; /* addresses banned now */
    uint64_t bans;   /* bans made since the start */
    uint64_t full;   /* bans not made: max addresses already banned */
};

struct banlist;

struct banlist *banlist_new(const struct banlist_limits *lim);
void banlist_free(struct banlist *b);

/* Counts one refusal of addr at now_ms; returns true if it banned the address. Within one second at
 * most a fixed number of distinct addresses (4,096) are counted; refusals of further addresses that
 * second are not, so memory stays bounded. */
bool banlist_refused(struct banlist *b, const struct synfilter_addr *addr, uint64_t now_ms);

/* Lifts the bans due by now_ms. If the banned set is no longer the one of generation *gen,
 * writes it to out in ascending order of synfilter_addr_cmp (*n addresses, at most max),
 * updates *gen and returns true; otherwise returns false. Start with *gen = 0. */
bool banlist_snapshot(struct banlist *b, uint64_t now_ms, uint64_t *gen, struct synfilter_addr *out,
                      size_t *n);

void banlist_stats(struct banlist *b, struct banlist_stats *out);

#endif
