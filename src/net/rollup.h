/* rollup.h -- a bot's repeated polls rolled up: instead of one log record per poll, one
 * `heartbeats` record per bot per interval (count, first and last time, a digest chain of what
 * was received). The table is also the bot's presence: a poll from a bot without an entry is the
 * first contact of a presence, recorded as a leaf of its own (and decided on, under a policy);
 * later polls only count. An entry ends after a whole interval without polls. Shared by all
 * workers (a reconnecting bot may land on any), in stripes each under its own lock. */
#ifndef SINKD_NET_ROLLUP_H
#define SINKD_NET_ROLLUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"

#define ROLLUP_STRIPES 64

struct rollup;

/* interval_us: how long a heartbeats record covers (> 0). max_entries bounds the memory (~260
 * bytes an entry); a bot arriving when it is reached is recorded as a first contact every time
 * (nothing is lost, the log only grows faster) and counted in rollup_stats.full. */
struct rollup *rollup_new(uint64_t interval_us, size_t max_entries);
void rollup_free(struct rollup *r);

enum rollup_outcome {
    ROLLUP_FIRST = 0,   /* no presence: record the contact as its own leaf (an entry now exists) */
    ROLLUP_COUNTED = 1, /* counted into the bot's entry: no leaf, reply at once */
};

/* A poll of bot `key` (event_bot_key bytes: its identity, or its address) described by ct
 * (endpoints, transport, family, enrichment, time, body_sha256). The entry also remembers the
 * policy generation its bot was last decided under: *decide_due is set when a counted poll finds
 * another (a policy loaded since: the bot is decided again, though its presence goes on). */
enum rollup_outcome rollup_poll(struct rollup *r, const uint8_t key[16], const struct contact *ct,
                                uint32_t policy_gen, bool *decide_due);

/* Moves the heartbeats records due by now_us (intervals ended; all of them when `all`, for a
 * stop) out of stripes [from, to) into out (at most max); entries idle for a whole interval are
 * forgotten. A record whose polls all came before erased_before_us (an erasure was recorded
 * since they were counted) leaves without its personal fields: its source and bot key are
 * cleared, its count, times, country, AS and digest stay. Returns how many were written; call
 * again while it returns max. */
size_t rollup_take_due(struct rollup *r, unsigned from, unsigned to, uint64_t now_us, bool all,
                       uint64_t erased_before_us, struct heartbeats *out, size_t max);

struct rollup_stats {
    uint64_t entries; /* bots present now */
    uint64_t counted; /* polls rolled up since the start */
    uint64_t pending; /* ... of which not yet in a written record (lost to a kill -9) */
    uint64_t full;    /* first contacts recorded because the table was full */
};
void rollup_stats(struct rollup *r, struct rollup_stats *out);

#endif
