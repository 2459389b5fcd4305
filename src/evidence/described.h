/* described.h -- heartbeats records that name the leaf describing their bot, made whole for
 * their readers. A roll-up record (event.h, struct heartbeats) whose bot is described by an
 * earlier leaf of the same seal epoch names it (described_in) and holds only its counts, times,
 * country, AS and sector tags: ~90 bytes instead of ~175 (net/rollup.h). The registry, `contacts`,
 * `prove` and the portal read who it was from that leaf: this module reads the named leaf from
 * its entry bundle (a few recent bundles cached: memory does not grow with the bots), or from
 * the journal while its bundle is not full, opens it with the epoch keys and fills the naming
 * record in. Used through evlog_reader_fill_described (log.h). */
#ifndef SINKD_EVIDENCE_DESCRIBED_H
#define SINKD_EVIDENCE_DESCRIBED_H

#include <stddef.h>
#include <stdint.h>

#include "event/event.h"

struct described;
/* state_dir: the log the named leaves are read from. */
struct described *described_new(const char *state_dir);
void described_free(struct described *d);

struct described_stats {
    uint64_t filled;        /* naming records filled in */
    uint64_t unfilled;      /* ... left as they are: their leaf cannot tell */
    uint64_t bundle_reads;  /* entry bundles read (a cache miss) */
    uint64_t journal_reads; /* leaves read from the journal (their bundle not full yet) */
};
void described_stats(const struct described *d, struct described_stats *out);

/* Entry `index`, as a reader hands it out (opened when its key is here). If it is a heartbeats
 * record naming an earlier leaf, *entry and *len are replaced by the
 * record with the leaf's description filled in (node, endpoints with the leaf's ports,
 * transport, family, bot key, enrichment id; described_in stays), valid until the next call.
 * Returns 1, or negative on error (err says which). A named leaf that cannot tell (its personal
 * data erased or not readable here, or not a description of a bot) leaves the entry as it is:
 * its polls count for their day and country, as an erased record's do. */
int described_pass(struct described *d, uint64_t index, const uint8_t **entry, size_t *len,
                   char *err, size_t errlen);

/* Pure: fills hb (a record naming a leaf) from `leaf`, the named leaf decoded. 0, or -1 when the
 * leaf does not describe a bot (not a poll's contact record or a heartbeats record describing
 * its bot, or its personal fields are not here). */
int described_fill(struct heartbeats *hb, const struct record *leaf);

#endif
