/* pipeline.h -- hands records from worker threads to the one evidence-writer thread and hands
 * "durable up to here" back, so a bot's reply leaves only after its record is on disk. */
#ifndef SINKD_NET_PIPELINE_H
#define SINKD_NET_PIPELINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uv.h>

#include "util/hist.h"

#define PIPE_RECORD_MAX 1152 /* every record fits: contacts ~700 at most, notes ~1060 */
#define PIPE_REPLY_MAX 96    /* largest reply a worker sends on durability */
/* A worker ring whose head is this many slots in and holds at most PIPE_REWIND_INUSE slots goes
 * back to slot 0, so light and moderate load keep reusing the same ~170 KB instead of paging in
 * the whole ring (1.3 KB x ring_slots per worker). It was 512 (~680 KB per worker, ~75 B per
 * connection of bench/idle.sh's fresh server); a rewind costs one skipped slot per lap. */
#define PIPE_REWIND_AT 128
#define PIPE_REWIND_INUSE 64
/* After a rewind, slots above PIPE_REWIND_AT that the last lap used go back to the kernel if they
 * are at least this many (~330 KB): bursts do not leave their pages behind for good. */
#define PIPE_RELEASE_MIN 256

/* What to do when a slot's record is durable. The worker interprets it. */
struct pipe_slot {
    void *owner; /* the connection, kept alive while it owns slots */
    uint16_t record_len;
    uint16_t reply_len;
    uint8_t kind;          /* worker-defined */
    uint8_t rewind;        /* pipeline-internal: not a record; the ring continues at slot 0 */
    uint64_t published_ns; /* CLOCK_MONOTONIC when the worker published it */
    /* Set by the writer when the log refused the record: it is NOT durable, so the worker must
     * not acknowledge it (no reply, no command). */
    uint8_t failed;
    uint64_t index; /* set by the writer: the record's index in the log */
    /* Worker-defined: the bot whose description the record holds (describes != 0), what it says
     * and when, for the roll-up to name the leaf once durable (net/rollup.h). */
    uint8_t describes;
    uint8_t describes_key[16];
    uint64_t describes_desc;
    uint64_t describes_time_us;
    uint8_t record[PIPE_RECORD_MAX];
    uint8_t reply[PIPE_REPLY_MAX];
};

/* Single producer (a worker), single consumer (the writer) ring of slots with four cursors:
 * head (worker: next free), appended (writer: next to append), durable (writer: everything
 * before it is on disk) and done (worker: next to complete). Cursors only grow; a rewind slot
 * makes both sides skip to the next multiple of the ring size (the skipped slots are never
 * touched, and do not count as in use). */
struct pipe_ring {
    struct pipe_slot *slots;
    uint64_t mask;
    _Atomic uint64_t head;
    _Atomic uint64_t durable;
    uint64_t appended;    /* writer thread only */
    uint64_t done;        /* worker thread only */
    uint64_t rewound_at;  /* worker only: position of the last rewind slot (0: none) */
    uint64_t high;        /* worker only: highest slot index used since the last release */
    uint64_t released_ns; /* worker only: when pages were last given back (0: never) */
    uv_async_t *wake;     /* signalled when durable advances */
};

struct pipeline_stats {
    _Atomic uint64_t entries;
    _Atomic uint64_t batches;
    _Atomic uint64_t max_batch;
    _Atomic uint64_t delayed; /* commits the writer paused before (group-commit delay) */
    _Atomic uint64_t commit_errors;
    _Atomic uint64_t log_size;
    _Atomic uint64_t journal_base; /* entries below it are read from the entry bundles only */
    _Atomic int stalled;           /* 1 while commits fail (disk full, I/O error) */
};

struct evlog;
struct pipeline;

/* Starts the writer thread over an open log. wakes[i] is worker i's async handle. */
int pipeline_start(struct pipeline **out, struct evlog *log, unsigned nrings, uint32_t slots,
                   uv_async_t **wakes, FILE *logfile, char *err, size_t errlen);

struct pipe_ring *pipeline_ring(struct pipeline *p, unsigned i);

/* Group-commit delay: when the last ~8 commits averaged at least PIPE_DELAY_LOADED records
 * (records arrive faster than commits finish) and fewer than PIPE_DELAY_ENOUGH wait, the writer
 * pauses this long before the next commit so that it carries more records per fdatasync
 * (PostgreSQL's commit_delay, made conditional on load as its commit_siblings does). Moderate
 * load commits ~2 records at a time and is never delayed. 0 never pauses; serve sets its
 * --commit-delay-us (default 1000). */
#define PIPE_DELAY_LOADED 8
#define PIPE_DELAY_ENOUGH 64
/* The average starts again once the writer has idled this long (or the delay, if longer):
 * the first contacts after a burst are not delayed. Shorter idle spells are part of the load
 * (bench/churn.sh's writer idles ~1 ms between commits; resetting after 1 ms cut its records
 * per commit from 57 to 23). */
#define PIPE_DELAY_RESET_MS 20u
void pipeline_set_commit_delay(struct pipeline *p, uint32_t delay_us);

/* Worker side. Returns a slot to fill, or NULL when the ring is full (back-pressure). */
struct pipe_slot *pipe_reserve(struct pipe_ring *ring);
/* Publishes the slot filled after pipe_reserve(). */
void pipe_publish(struct pipeline *p, struct pipe_ring *ring);
/* Returns the next completed slot (durable) or NULL; call pipe_release() after handling it. */
struct pipe_slot *pipe_next_durable(struct pipe_ring *ring);
void pipe_release(struct pipe_ring *ring);
/* Slots pipe_reserve() can hand out now. */
uint64_t pipe_free_slots(const struct pipe_ring *ring);
/* Slots in use (published and not yet released). */
uint64_t pipe_in_use(const struct pipe_ring *ring);

/* Appends a record from a non-worker thread before workers start or after they stop (node
 * started/stopped, policy-loaded) and waits until it is durable. */
int pipeline_append_sync(struct pipeline *p, const uint8_t *record, size_t len, char *err,
                         size_t errlen);

const struct pipeline_stats *pipeline_stats(const struct pipeline *p);

/* Publish-to-durable latency of every record so far, in microseconds (a copy). */
void pipeline_durable_latency(struct pipeline *p, struct hist *out);

/* Stops the writer after everything submitted is durable; the rings stay readable so the
 * caller can settle completions, then pipeline_free(). The log stays open (caller closes). */
void pipeline_stop(struct pipeline *p);
void pipeline_free(struct pipeline *p);

#endif
