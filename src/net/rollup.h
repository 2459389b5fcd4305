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

/* interval_us: how long a heartbeats record covers (> 0). max_entries bounds the memory (336
 * bytes an entry, in tables at most half full); a bot arriving when it is reached is recorded as a
 * first contact every time (nothing is lost, the log only grows faster) and counted in
 * rollup_stats.full. */
struct rollup *rollup_new(uint64_t interval_us, size_t max_entries);
void rollup_free(struct rollup *r);

enum rollup_outcome {
    ROLLUP_FIRST = 0,   /* no presence: record the contact as its own leaf (an entry now exists) */
    ROLLUP_COUNTED = 1, /* counted into the bot's entry: no leaf, reply at once */
};

/* Records may name the leaf that describes their bot instead of repeating its description
 * (heartbeats.described_in: ~90 bytes a record instead of ~175), but only a leaf of the same seal
 * epoch, so that erasing an epoch never leaves a later epoch's polls without who made them.
 * epoch_us: the log's seal epoch length; 0 (the default) turns naming off. */
void rollup_set_seal_epoch(struct rollup *r, uint64_t epoch_us);

/* The digest of what a leaf says of its bot (node, source address without its port, seized
 * address, whether through a proxy, transport, family, bot key, enrichment id): a record names
 * a leaf only while its own is the same. */
uint64_t rollup_contact_desc(const struct contact *ct);

/* Leaf `index`, recorded at record_time_us, now durable (the writer said so at now_us),
 * describes bot `key` as desc says: later records of the bot may name it. A leaf whose seal
 * epoch is not certain (recorded and made durable in different epochs) is not named. */
void rollup_described(struct rollup *r, const uint8_t key[16], uint64_t index, uint64_t desc,
                      uint64_t record_time_us, uint64_t now_us);

/* A poll of bot `key` (event_bot_key bytes: its identity, or its address) described by ct
 * (endpoints, transport, family, enrichment, time, body_sha256). The entry also remembers the
 * policy generation its bot was last decided under: *decide_due is set when a counted poll finds
 * another (a policy loaded since: the bot is decided again, though its presence goes on). */
enum rollup_outcome rollup_poll(struct rollup *r, const uint8_t key[16], const struct contact *ct,
                                uint32_t policy_gen, bool *decide_due);

/* A heartbeats record due, and whom it is about. */
struct rollup_record {
    struct heartbeats hb;
    uint8_t key[16];
    uint64_t desc; /* when hb describes its bot itself (described_in 0): rollup_described() it
                    * once durable, so that later records can name it */
};

/* Moves the heartbeats records due by now_us (intervals ended; all of them when `all`, for a
 * stop) out of stripes [from, to) into out (at most max); entries idle for a whole interval are
 * forgotten. A record whose bot is described by a leaf it may name (rollup_set_seal_epoch) names
 * it and leaves the description out. A record whose polls all came before erased_before_us (an
 * erasure was recorded since they were counted) leaves without its personal fields: its source
 * and bot key are cleared, its count, times, country, AS and digest stay. Returns how many were
 * written; call again while it returns max. */
size_t rollup_take_due(struct rollup *r, unsigned from, unsigned to, uint64_t now_us, bool all,
                       uint64_t erased_before_us, struct rollup_record *out, size_t max);

struct rollup_stats {
    uint64_t entries; /* bots present now */
    uint64_t counted; /* polls rolled up since the start */
    uint64_t pending; /* ... of which not yet in a written record (lost to a kill -9) */
    uint64_t full;    /* first contacts recorded because the table was full */
    uint64_t named;   /* heartbeats records that named the leaf describing their bot */
};
void rollup_stats(struct rollup *r, struct rollup_stats *out);

#endif
