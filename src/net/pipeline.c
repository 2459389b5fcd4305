/* pipeline.c -- the evidence-writer thread: group commit of worker records, then wake-ups. */
#define _GNU_SOURCE /* pthread_setname_np */
#include "net/pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "evidence/log.h"
#include "util/err.h"

struct pipeline {
    struct evlog *log;
    struct pipe_ring *rings; /* nrings worker rings + 1 control ring */
    unsigned nrings;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t work_cv;    /* writer sleeps here when idle */
    pthread_cond_t durable_cv; /* control-thread appenders wait here */
    _Atomic int idle;
    _Atomic int stop;
    _Atomic uint32_t commit_delay_us;
    FILE *logfile;
    struct pipeline_stats stats;
    struct hist durable_us; /* under mu */
};

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int ring_init(struct pipe_ring *ring, uint32_t slots, uv_async_t *wake)
{
    uint64_t n = 1;
    while (n < slots) {
        n <<= 1;
    }
    /* A mapping of its own (zero-filled, page-aligned) rather than the heap: ring_release_tail()
     * hands pages of it back to the kernel. */
    void *m = mmap(NULL, n * sizeof(*ring->slots), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        ring->slots = NULL;
        return -1;
    }
    ring->slots = m;
    ring->high = 0;
    ring->released_ns = 0;
    ring->mask = n - 1;
    atomic_init(&ring->head, 0);
    atomic_init(&ring->durable, 0);
    ring->appended = 0;
    ring->done = 0;
    ring->rewound_at = 0;
    ring->wake = wake;
    return 0;
}

static void ring_destroy(struct pipe_ring *ring)
{
    if (ring->slots != NULL) {
        munmap(ring->slots, (ring->mask + 1) * sizeof(*ring->slots));
        ring->slots = NULL;
    }
}

/* Called once a rewind has completed: the slots from the head to the last lap's highest one are
 * free and will not be touched again unless load builds up that far. A burst (thousands of bots
 * reconnecting at once) may have paged in megabytes there; give them back. Low and steady load
 * keeps to the first PIPE_REWIND_AT slots, which stay. */
static void ring_release_tail(struct pipe_ring *ring)
{
    uint64_t from = atomic_load_explicit(&ring->head, memory_order_relaxed) & ring->mask;
    if (from < PIPE_REWIND_AT) {
        from = PIPE_REWIND_AT;
    }
    uint64_t to = ring->high + 1;
    if (to <= from || to - from < PIPE_RELEASE_MIN) {
        ring->high = from;
        return;
    }
    /* Under sustained load rewinds come every few thousand records and the next lap pages the
     * same slots in again: give them back at most once a second (at most 1/s of refaults). */
    uint64_t now = mono_ns();
    if (ring->released_ns != 0 && now - ring->released_ns < 1000000000u) {
        return;
    }
    ring->released_ns = now;
    ring->high = from;
    /* The mapping starts on a page, so page-aligned offsets are page-aligned addresses. */
    long pagesize = sysconf(_SC_PAGESIZE);
    uint64_t page = pagesize > 0 ? (uint64_t)pagesize : 4096;
    uint64_t a = from * sizeof(*ring->slots), b = to * sizeof(*ring->slots);
    a = (a + page - 1) & ~(page - 1);
    b &= ~(page - 1);
    if (b > a) {
        (void)madvise((char *)ring->slots + a, b - a, MADV_DONTNEED);
    }
}

/* The next multiple of the ring size after position pos. */
static uint64_t next_lap(const struct pipe_ring *ring, uint64_t pos)
{
    return (pos | ring->mask) + 1;
}

/* Whether the last rewind slot has not been completed yet: the slots from `done` to it sit at the
 * end of the ring, the new ones grow from slot 0 towards them. */
static bool rewind_pending(const struct pipe_ring *ring)
{
    return ring->rewound_at != 0 && ring->done <= ring->rewound_at;
}

uint64_t pipe_in_use(const struct pipe_ring *ring)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    if (rewind_pending(ring)) {
        return (ring->rewound_at + 1 - ring->done) + (head - next_lap(ring, ring->rewound_at));
    }
    return head - ring->done;
}

uint64_t pipe_free_slots(const struct pipe_ring *ring)
{
    if (rewind_pending(ring)) {
        uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
        return (ring->done & ring->mask) - (head & ring->mask);
    }
    return ring->mask + 1 - pipe_in_use(ring);
}

struct pipe_slot *pipe_reserve(struct pipe_ring *ring)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    uint64_t used = head - ring->done;
    if (!rewind_pending(ring) && (head & ring->mask) >= PIPE_REWIND_AT &&
        used <= PIPE_REWIND_INUSE && ring->mask + 1 >= 2 * PIPE_REWIND_AT) {
        /* Few records in flight and far into the ring: continue at slot 0, so the pages at the
         * end of the ring are only touched when load keeps more than PIPE_REWIND_INUSE in flight.
         * The writer skips the rewind slot without appending it. */
        struct pipe_slot *marker = &ring->slots[head & ring->mask];
        marker->rewind = 1;
        marker->owner = NULL;
        marker->record_len = 0;
        marker->reply_len = 0;
        ring->rewound_at = head;
        head = next_lap(ring, head);
        atomic_store_explicit(&ring->head, head, memory_order_release);
    }
    if (pipe_free_slots(ring) == 0) {
        return NULL;
    }
    if ((head & ring->mask) > ring->high) {
        ring->high = head & ring->mask;
    }
    struct pipe_slot *slot = &ring->slots[head & ring->mask];
    slot->rewind = 0;
    slot->describes = 0;
    return slot;
}

void pipe_publish(struct pipeline *p, struct pipe_ring *ring)
{
    uint64_t head = atomic_load_explicit(&ring->head, memory_order_relaxed);
    ring->slots[head & ring->mask].published_ns = mono_ns();
    ring->slots[head & ring->mask].failed = 0;
    atomic_fetch_add_explicit(&ring->head, 1, memory_order_seq_cst);
    /* Only the publisher that flips `idle` signals: the writer, once awake, stages every ring,
     * so further signals in the same idle period would be wasted futex calls. */
    if (atomic_load_explicit(&p->idle, memory_order_seq_cst) &&
        atomic_exchange_explicit(&p->idle, 0, memory_order_seq_cst) == 1) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_signal(&p->work_cv);
        pthread_mutex_unlock(&p->mu);
    }
}

struct pipe_slot *pipe_next_durable(struct pipe_ring *ring)
{
    uint64_t durable = atomic_load_explicit(&ring->durable, memory_order_acquire);
    while (ring->done != durable) {
        struct pipe_slot *slot = &ring->slots[ring->done & ring->mask];
        if (!slot->rewind) {
            return slot;
        }
        ring->done = next_lap(ring, ring->done);
        ring_release_tail(ring);
    }
    return NULL;
}

void pipe_release(struct pipe_ring *ring)
{
    ring->done++;
}

struct pipe_ring *pipeline_ring(struct pipeline *p, unsigned i)
{
    return &p->rings[i];
}

const struct pipeline_stats *pipeline_stats(const struct pipeline *p)
{
    return &p->stats;
}

/* Appends everything published so far; returns how many entries were staged. */
static void commit_until_durable(struct pipeline *p);

static uint64_t stage_published(struct pipeline *p, uint64_t *batch_end)
{
    uint64_t staged = 0;
    for (unsigned i = 0; i <= p->nrings; i++) {
        struct pipe_ring *ring = &p->rings[i];
        uint64_t head = atomic_load_explicit(&ring->head, memory_order_acquire);
        while (ring->appended < head) {
            struct pipe_slot *slot = &ring->slots[ring->appended & ring->mask];
            if (slot->rewind) {
                ring->appended = next_lap(ring, ring->appended);
                continue;
            }
            uint64_t index;
            int rc = evlog_append(p->log, slot->record, slot->record_len, &index);
            if (rc != 0) {
                /* The staging area is full: make what is staged durable, then try once more. */
                commit_until_durable(p);
                rc = evlog_append(p->log, slot->record, slot->record_len, &index);
            }
            if (rc != 0) {
                /* Bounded record sizes make this unreachable; if it happens, the record is not
                 * in the log, so its connection must not be acknowledged. */
                slot->failed = 1;
                fprintf(p->logfile, "sinkd: evidence: cannot stage a record of %u bytes (%d)\n",
                        slot->record_len, rc);
            } else {
                slot->index = index;
            }
            ring->appended++;
            staged++;
        }
        batch_end[i] = head;
    }
    return staged;
}

static bool rings_have_work(struct pipeline *p)
{
    for (unsigned i = 0; i <= p->nrings; i++) {
        if (atomic_load_explicit(&p->rings[i].head, memory_order_acquire) != p->rings[i].appended) {
            return true;
        }
    }
    return false;
}

static void commit_until_durable(struct pipeline *p)
{
    char err[512];
    unsigned attempt = 0;
    while (evlog_commit(p->log, err, sizeof(err)) != 0) {
        /* Disk full or I/O error: nothing is acknowledged until the commit succeeds; workers
         * see their rings fill and stop reading (back-pressure). Retry with a pause. */
        atomic_fetch_add(&p->stats.commit_errors, 1);
        if (attempt++ == 0) {
            fprintf(p->logfile, "sinkd: evidence: commit failed, not acknowledging: %s\n", err);
            atomic_store(&p->stats.stalled, 1);
        }
        struct timespec pause = {0, 200 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
    if (attempt > 0) {
        fprintf(p->logfile, "sinkd: evidence: commit succeeded again after %u attempts\n", attempt);
        atomic_store(&p->stats.stalled, 0);
    }
}

void pipeline_set_commit_delay(struct pipeline *p, uint32_t delay_us)
{
    atomic_store_explicit(&p->commit_delay_us, delay_us, memory_order_relaxed);
}

/* Records published and not yet staged (a rewind slot counts as one: close enough here). */
static uint64_t rings_pending(struct pipeline *p)
{
    uint64_t n = 0;
    for (unsigned i = 0; i <= p->nrings; i++) {
        n += atomic_load_explicit(&p->rings[i].head, memory_order_acquire) - p->rings[i].appended;
    }
    return n;
}

/* When the group-commit delay applies (pipeline.h): records per commit averaged over recent
 * commits (x16, fixed point, weight 1/8). One large batch is not load, and one small batch in
 * the middle of a burst is not the end of it; the writer idling for PIPE_DELAY_RESET_MS (or the
 * delay, if longer) is, so that resets it. Writer thread only. */
struct commit_load {
    uint64_t avg16;
    uint64_t idle_since_ns; /* 0: the last pass committed something */
};

static bool commit_load_high(const struct commit_load *l)
{
    return l->avg16 >= 16u * PIPE_DELAY_LOADED;
}

static void commit_load_committed(struct commit_load *l, uint64_t records)
{
    l->avg16 = l->avg16 - l->avg16 / 8 + 2 * records;
    l->idle_since_ns = 0;
}

/* Around the writer's wait for work, when a pass found nothing to commit. */
static void commit_load_waiting(struct commit_load *l)
{
    if (l->idle_since_ns == 0) {
        l->idle_since_ns = mono_ns();
    }
}

static void commit_load_woke(struct commit_load *l, uint32_t delay_us)
{
    uint64_t quiet_ns = (uint64_t)delay_us * 1000u;
    if (quiet_ns < PIPE_DELAY_RESET_MS * 1000000u) {
        quiet_ns = PIPE_DELAY_RESET_MS * 1000000u;
    }
    if (mono_ns() - l->idle_since_ns >= quiet_ns) {
        l->avg16 = 0;
    }
}

static void *writer_main(void *arg)
{
    struct pipeline *p = arg;
    (void)pthread_setname_np(pthread_self(), "sinkd-writer");
    uint64_t *batch_end = calloc(p->nrings + 1, sizeof(uint64_t));
    uint64_t *batch_start = calloc(p->nrings + 1, sizeof(uint64_t));
    char err[512];
    struct commit_load load = {0, 0};
    for (;;) {
        uint32_t delay_us = atomic_load_explicit(&p->commit_delay_us, memory_order_relaxed);
        uint64_t pending;
        if (delay_us > 0 && commit_load_high(&load) && (pending = rings_pending(p)) > 0 &&
            pending < PIPE_DELAY_ENOUGH && !atomic_load(&p->stop)) {
            struct timespec pause = {(time_t)(delay_us / 1000000u),
                                     (long)(delay_us % 1000000u) * 1000};
            nanosleep(&pause, NULL);
            atomic_fetch_add(&p->stats.delayed, 1);
        }
        uint64_t staged = stage_published(p, batch_end);
        if (staged > 0) {
            commit_load_committed(&load, staged);
            commit_until_durable(p);
            atomic_fetch_add(&p->stats.entries, staged);
            atomic_fetch_add(&p->stats.batches, 1);
            if (staged > atomic_load(&p->stats.max_batch)) {
                atomic_store(&p->stats.max_batch, staged);
            }
            atomic_store(&p->stats.log_size, evlog_size(p->log));
            /* Latency is read before `durable` moves: after that the worker may reuse slots. */
            pthread_mutex_lock(&p->mu);
            uint64_t now = mono_ns();
            for (unsigned i = 0; i <= p->nrings; i++) {
                struct pipe_ring *ring = &p->rings[i];
                batch_start[i] = atomic_load_explicit(&ring->durable, memory_order_relaxed);
                for (uint64_t s = batch_start[i]; s < batch_end[i]; s++) {
                    const struct pipe_slot *slot = &ring->slots[s & ring->mask];
                    if (slot->rewind) {
                        s = next_lap(ring, s) - 1;
                        continue;
                    }
                    hist_add(&p->durable_us,
                             now > slot->published_ns ? (now - slot->published_ns) / 1000 : 0);
                }
            }
            for (unsigned i = 0; i <= p->nrings; i++) {
                struct pipe_ring *ring = &p->rings[i];
                if (batch_start[i] != batch_end[i]) {
                    atomic_store_explicit(&ring->durable, batch_end[i], memory_order_release);
                    if (ring->wake != NULL) {
                        uv_async_send(ring->wake);
                    }
                }
            }
            pthread_cond_broadcast(&p->durable_cv);
            pthread_mutex_unlock(&p->mu);
        }
        if (evlog_maybe_checkpoint(p->log, now_ms(), err, sizeof(err)) < 0) {
            fprintf(p->logfile, "sinkd: evidence: checkpoint failed: %s\n", err);
        }
        atomic_store(&p->stats.journal_base, evlog_journal_base(p->log));
        if (staged > 0) {
            continue;
        }
        commit_load_waiting(&load);
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->idle, 1);
        if (!rings_have_work(p)) {
            if (atomic_load(&p->stop)) {
                atomic_store(&p->idle, 0);
                pthread_mutex_unlock(&p->mu);
                break;
            }
            struct timespec deadline;
            clock_gettime(CLOCK_REALTIME, &deadline);
            deadline.tv_nsec += 50 * 1000 * 1000;
            if (deadline.tv_nsec >= 1000000000) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&p->work_cv, &p->mu, &deadline);
        }
        atomic_store(&p->idle, 0);
        pthread_mutex_unlock(&p->mu);
        commit_load_woke(&load, delay_us);
    }
    free(batch_end);
    free(batch_start);
    return NULL;
}

int pipeline_start(struct pipeline **out, struct evlog *log, unsigned nrings, uint32_t slots,
                   uv_async_t **wakes, FILE *logfile, char *err, size_t errlen)
{
    struct pipeline *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    p->log = log;
    p->nrings = nrings;
    p->logfile = logfile;
    p->rings = calloc(nrings + 1, sizeof(*p->rings));
    if (p->rings == NULL) {
        free(p);
        return err_set(err, errlen, "out of memory");
    }
    for (unsigned i = 0; i <= nrings; i++) {
        if (ring_init(&p->rings[i], i < nrings ? slots : 64, i < nrings ? wakes[i] : NULL) != 0) {
            for (unsigned j = 0; j < i; j++) {
                ring_destroy(&p->rings[j]);
            }
            free(p->rings);
            free(p);
            return err_set(err, errlen, "out of memory for %u writer slots", slots);
        }
    }
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->work_cv, NULL);
    pthread_cond_init(&p->durable_cv, NULL);
    atomic_store(&p->stats.log_size, evlog_size(log));
    atomic_store(&p->stats.journal_base, evlog_journal_base(log));
    int rc = pthread_create(&p->thread, NULL, writer_main, p);
    if (rc != 0) {
        for (unsigned j = 0; j <= nrings; j++) {
            ring_destroy(&p->rings[j]);
        }
        free(p->rings);
        free(p);
        return err_set(err, errlen, "cannot start the evidence writer: %s", strerror(rc));
    }
    *out = p;
    return 0;
}

void pipeline_durable_latency(struct pipeline *p, struct hist *out)
{
    pthread_mutex_lock(&p->mu);
    *out = p->durable_us;
    pthread_mutex_unlock(&p->mu);
}

int pipeline_append_sync(struct pipeline *p, const uint8_t *record, size_t len, char *err,
                         size_t errlen)
{
    struct pipe_ring *ring = &p->rings[p->nrings];
    if (len > PIPE_RECORD_MAX) {
        return err_set(err, errlen, "record of %zu bytes is too large", len);
    }
    pthread_mutex_lock(&p->mu);
    struct pipe_slot *slot;
    while ((slot = pipe_reserve(ring)) == NULL) {
        /* Control records are rare; reclaim what is already durable. */
        while (pipe_next_durable(ring) != NULL) {
            pipe_release(ring);
        }
        if (pipe_reserve(ring) == NULL) {
            pthread_cond_wait(&p->durable_cv, &p->mu);
        }
    }
    memcpy(slot->record, record, len);
    slot->record_len = (uint16_t)len;
    slot->reply_len = 0;
    slot->owner = NULL;
    slot->published_ns = mono_ns();
    slot->failed = 0;
    uint64_t target = atomic_load(&ring->head) + 1;
    atomic_store_explicit(&ring->head, target, memory_order_release);
    pthread_cond_signal(&p->work_cv);
    while (atomic_load_explicit(&ring->durable, memory_order_acquire) < target) {
        pthread_cond_wait(&p->durable_cv, &p->mu);
    }
    while (pipe_next_durable(ring) != NULL) {
        pipe_release(ring);
    }
    pthread_mutex_unlock(&p->mu);
    return 0;
}

void pipeline_stop(struct pipeline *p)
{
    if (p == NULL) {
        return;
    }
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_signal(&p->work_cv);
    pthread_mutex_unlock(&p->mu);
    pthread_join(p->thread, NULL);
}

void pipeline_free(struct pipeline *p)
{
    if (p == NULL) {
        return;
    }
    for (unsigned i = 0; i <= p->nrings; i++) {
        ring_destroy(&p->rings[i]);
    }
    free(p->rings);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->work_cv);
    pthread_cond_destroy(&p->durable_cv);
    free(p);
}
