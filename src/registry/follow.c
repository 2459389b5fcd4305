/* follow.c -- the registry's one writer thread: tails the evidence log and applies it in
 * batches, off every worker's path, plus the synchronous catch-up that rebuild uses. */
#define _GNU_SOURCE /* gettid(), pthread_setname_np */
#include "evidence/log.h"
#include "registry/internal.h"
#include "registry/registry.h"
#include "util/err.h"
#include "util/lockfile.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FOLLOW_BATCH_MAX_DEFAULT 20000
#define FOLLOW_BATCH_MS_DEFAULT 50
/* A shared (PostgreSQL) registry: a batch waits at the log's end for more records for up to this
 * long, because each batch costs the server a fixed ~1.5 ms of CPU (its reads, writes and commit)
 * whatever its size, and several nodes' followers share that server (docs/scale.md). */
#define FOLLOW_BATCH_MS_SHARED 200
#define FOLLOW_IDLE_MS_DEFAULT 20
/* Upper bounds so a mistyped config cannot make a transaction or a stall unbounded. */
#define FOLLOW_BATCH_MAX_LIMIT REGISTRY_AUTOFLUSH_RECORDS
#define FOLLOW_MS_LIMIT 10000

struct registry_follower {
    pthread_t thread;
    pthread_t self; /* set by the thread itself: pthread_create may store `thread` too late */
    bool self_set;
    pthread_mutex_t mu; /* guards stop and stats */
    bool stop;
    struct registry *reg;
    const struct registry_log_ops *ops;
    void *reader;
    size_t batch_max;
    unsigned batch_ms, idle_ms;
    bool linger; /* at the log's end, wait up to batch_ms for more before committing */
    uint64_t start_ns;
    int lock_fd; /* registry_lock_writer(), held while the follower runs */
    struct registry_follow_stats stats;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

bool registry_internal_on_follower_thread(struct registry *reg)
{
    struct registry_follower *f = *registry_internal_follower(reg);
    return f != NULL && f->self_set && pthread_equal(f->self, pthread_self());
}

static void record_batch(struct registry_follower *f, uint64_t n, uint64_t seen)
{
    pthread_mutex_lock(&f->mu);
    struct registry_follow_stats *s = &f->stats;
    s->batches++;
    s->records += n;
    s->batch_last = n;
    if (n > s->batch_max) {
        s->batch_max = n;
    }
    s->batch_avg = (double)s->records / (double)s->batches;
    s->applied_index = registry_applied_index(f->reg);
    if (seen > s->log_size_seen) {
        s->log_size_seen = seen;
    }
    s->lag = s->log_size_seen > s->applied_index ? s->log_size_seen - s->applied_index : 0;
    if (s->lag > s->lag_max) {
        s->lag_max = s->lag;
    }
    s->bad_records = registry_internal_bad_records(f->reg);
    double secs = (double)(now_ns() - f->start_ns) / 1e9;
    s->records_per_s = secs > 0 ? (double)s->records / secs : 0;
    pthread_mutex_unlock(&f->mu);
}

static void record_error(struct registry_follower *f, int code, const char *text)
{
    pthread_mutex_lock(&f->mu);
    f->stats.error = code;
    snprintf(f->stats.error_text, sizeof(f->stats.error_text), "%s", text);
    pthread_mutex_unlock(&f->mu);
}

static void *follow_main(void *arg)
{
    struct registry_follower *f = arg;
    (void)pthread_setname_np(pthread_self(), "sinkd-registry");
    char err[256] = "";
    /* The registry is a derived view: when the box is saturated, the threads that acknowledge
     * bots (workers, evidence writer) get the CPU first and the follower catches up later. */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), 10);
    f->self = pthread_self();
    f->self_set = true;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        bool stopping = f->stop;
        pthread_mutex_unlock(&f->mu);

        uint64_t t0 = now_ns(), n = 0, seen = 0;
        int rc;
        /* One batch: until batch_max records, batch_ms elapsed, or the durable end. */
        for (;;) {
            const uint8_t *entry;
            size_t len;
            uint64_t index;
            rc = f->ops->next(f->reader, &entry, &len, &index, err, sizeof(err));
            if (rc == 0) {
                pthread_mutex_lock(&f->mu);
                f->stats.caught_up_ns = now_ns();
                pthread_mutex_unlock(&f->mu);
            }
            if (rc == 0 && n > 0 && f->linger && !stopping) {
                uint64_t waited_ms = (now_ns() - t0) / 1000000ULL;
                if (waited_ms < f->batch_ms) {
                    uint64_t left = f->batch_ms - waited_ms;
                    sleep_ms(left < f->idle_ms ? (unsigned)left : f->idle_ms);
                    pthread_mutex_lock(&f->mu);
                    stopping = f->stop;
                    pthread_mutex_unlock(&f->mu);
                    continue;
                }
            }
            if (rc <= 0) {
                break;
            }
            seen = index + 1;
            int arc = registry_apply(f->reg, index, entry, len, err, sizeof(err));
            if (arc < 0 && arc != REGISTRY_E_DECODE) {
                rc = arc;
                break;
            }
            n++;
            if (n >= f->batch_max || now_ns() - t0 >= (uint64_t)f->batch_ms * 1000000ULL) {
                break;
            }
        }
        if (rc < 0) {
            record_error(f, rc, err);
            registry_flush(f->reg, NULL, 0);
            return NULL;
        }
        if (n > 0) {
            if (registry_flush(f->reg, err, sizeof(err)) < 0) {
                record_error(f, REGISTRY_ERR, err);
                return NULL;
            }
            if (f->ops->size != NULL) {
                int64_t size = f->ops->size(f->reader);
                if (size > 0 && (uint64_t)size > seen) {
                    seen = (uint64_t)size;
                }
            }
            record_batch(f, n, seen);
        }
        if (rc == 0) {
            /* At the durable end: leave if asked (everything durable is applied), else poll. */
            if (stopping) {
                return NULL;
            }
            sleep_ms(f->idle_ms);
        }
    }
}

static const struct registry_log_ops *resolve_ops(const struct registry_log_ops *ops, char *err,
                                                  size_t errlen)
{
    if (ops == NULL) {
        ops = registry_internal_evlog_ops();
    }
    if (ops == NULL || ops->open == NULL || ops->next == NULL || ops->close == NULL) {
        err_set(err, errlen, "registry: no evidence log reader in this build");
        return NULL;
    }
    return ops;
}

/* Frees a follower and lets go of the writer lock it holds. */
static void follower_free(struct registry_follower *f)
{
    if (f->lock_fd >= 0) {
        close(f->lock_fd);
    }
    free(f);
}

int registry_lock_writer(const char *state_dir, char *err, size_t errlen)
{
    char why[512];
    int fd = lockfile_take(state_dir, LOCKFILE_REGISTRY, NULL, false, why, sizeof(why));
    if (fd < 0) {
        return err_set(err, errlen,
                       "registry: %s: one registry writer per log (a `sinkd serve` with its "
                       "follower, `sinkd registry follow`, `rebuild` or `report --catch-up`)",
                       why);
    }
    return fd;
}

int registry_follow_start(struct registry *reg, const struct registry_follow_config *cfg, char *err,
                          size_t errlen)
{
    struct registry_follower **slot = registry_internal_follower(reg);
    if (*slot != NULL) {
        err_set(err, errlen, "registry: a follower is already running");
        return REGISTRY_E_BUSY;
    }
    const struct registry_log_ops *ops = resolve_ops(cfg->ops, err, errlen);
    if (ops == NULL) {
        return REGISTRY_ERR;
    }
    /* Commit anything the caller applied by hand so the thread starts on a clean batch. */
    if (registry_flush(reg, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    /* Only the evidence log's state directory is shared with other processes; a caller's own
     * log ops (tests, tools) name no directory to guard. */
    int lock_fd = -1;
    if (cfg->ops == NULL && cfg->state_dir != NULL) {
        lock_fd = registry_lock_writer(cfg->state_dir, err, errlen);
        if (lock_fd < 0) {
            return REGISTRY_E_BUSY;
        }
    }
    struct registry_follower *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        if (lock_fd >= 0) {
            close(lock_fd);
        }
        return err_set(err, errlen, "registry: out of memory");
    }
    f->lock_fd = lock_fd;
    f->reg = reg;
    f->ops = ops;
    f->batch_max = cfg->batch_max ? cfg->batch_max : FOLLOW_BATCH_MAX_DEFAULT;
    if (f->batch_max > FOLLOW_BATCH_MAX_LIMIT) {
        f->batch_max = FOLLOW_BATCH_MAX_LIMIT;
    }
    f->linger = registry_is_shared(reg);
    f->batch_ms = cfg->batch_ms ? cfg->batch_ms
                  : f->linger   ? FOLLOW_BATCH_MS_SHARED
                                : FOLLOW_BATCH_MS_DEFAULT;
    f->idle_ms = cfg->idle_ms ? cfg->idle_ms : FOLLOW_IDLE_MS_DEFAULT;
    if (f->batch_ms > FOLLOW_MS_LIMIT) {
        f->batch_ms = FOLLOW_MS_LIMIT;
    }
    if (f->idle_ms > FOLLOW_MS_LIMIT) {
        f->idle_ms = FOLLOW_MS_LIMIT;
    }
    f->stats.applied_index = registry_applied_index(reg);
    f->stats.log_size_seen = f->stats.applied_index;
    if (ops->open(&f->reader, cfg->state_dir, registry_applied_index(reg), err, errlen) < 0) {
        follower_free(f);
        return REGISTRY_ERR;
    }
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        ops->close(f->reader);
        follower_free(f);
        return err_set(err, errlen, "registry: cannot create a mutex");
    }
    f->start_ns = now_ns();
    /* Publish before the thread starts so registry_apply() on it recognises its owner; the
     * thread id is compared only from the thread itself, after pthread_create has set it. */
    *slot = f;
    if (pthread_create(&f->thread, NULL, follow_main, f) != 0) {
        *slot = NULL;
        pthread_mutex_destroy(&f->mu);
        ops->close(f->reader);
        follower_free(f);
        return err_set(err, errlen, "registry: cannot start the follower thread");
    }
    return 0;
}

void registry_follow_stats(struct registry *reg, struct registry_follow_stats *out)
{
    struct registry_follower *f = *registry_internal_follower(reg);
    memset(out, 0, sizeof(*out));
    if (f == NULL) {
        out->applied_index = registry_applied_index(reg);
        return;
    }
    pthread_mutex_lock(&f->mu);
    *out = f->stats;
    pthread_mutex_unlock(&f->mu);
}

int registry_follow_stop(struct registry *reg, char *err, size_t errlen)
{
    struct registry_follower **slot = registry_internal_follower(reg);
    struct registry_follower *f = *slot;
    if (f == NULL) {
        return 0;
    }
    pthread_mutex_lock(&f->mu);
    f->stop = true;
    pthread_mutex_unlock(&f->mu);
    pthread_join(f->thread, NULL);
    int rc = f->stats.error;
    if (rc < 0) {
        err_set(err, errlen, "%s", f->stats.error_text);
    }
    *slot = NULL;
    f->ops->close(f->reader);
    pthread_mutex_destroy(&f->mu);
    follower_free(f);
    return rc;
}

int64_t registry_catch_up(struct registry *reg, const char *state_dir,
                          const struct registry_log_ops *ops, size_t batch_max, char *err,
                          size_t errlen)
{
    if (*registry_internal_follower(reg) != NULL) {
        err_set(err, errlen, "registry: a follower thread owns the writer");
        return REGISTRY_E_BUSY;
    }
    ops = resolve_ops(ops, err, errlen);
    if (ops == NULL) {
        return REGISTRY_ERR;
    }
    if (batch_max == 0 || batch_max > FOLLOW_BATCH_MAX_LIMIT) {
        batch_max = FOLLOW_BATCH_MAX_LIMIT;
    }
    void *reader = NULL;
    if (ops->open(&reader, state_dir, registry_applied_index(reg), err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    int64_t count = 0;
    size_t in_batch = 0;
    int rc;
    for (;;) {
        const uint8_t *entry;
        size_t len;
        uint64_t index;
        rc = ops->next(reader, &entry, &len, &index, err, errlen);
        if (rc <= 0) {
            break;
        }
        int arc = registry_apply(reg, index, entry, len, err, errlen);
        if (arc < 0 && arc != REGISTRY_E_DECODE) {
            rc = arc;
            break;
        }
        count++;
        if (++in_batch >= batch_max) {
            if ((rc = registry_flush(reg, err, errlen)) < 0) {
                break;
            }
            in_batch = 0;
        }
    }
    ops->close(reader);
    if (rc < 0) {
        registry_flush(reg, NULL, 0);
        return rc;
    }
    if (registry_flush(reg, err, errlen) < 0) {
        return REGISTRY_ERR;
    }
    return count;
}

int registry_open_log(struct registry **out, const char *target, const char *state_dir, char *err,
                      size_t errlen)
{
    char path[4096];
    *out = NULL;
    if (target == NULL) {
        snprintf(path, sizeof(path), "%s/registry.db", state_dir);
        target = path;
    }
    struct registry *reg = NULL;
    int rc = registry_open(&reg, target, err, errlen);
    if (rc < 0) {
        return rc;
    }
    if (registry_is_shared(reg)) {
        /* The log's origin and key name it among the nodes (DESIGN.md "Multi-node"). */
        char vkey[4096], why[256];
        struct evlog_verifier v;
        snprintf(vkey, sizeof(vkey), "%s/keys/log.vkey", state_dir);
        if (evlog_verifier_load(vkey, &v, why, sizeof(why)) < 0) {
            registry_close(reg);
            return err_set(err, errlen, "registry: a shared registry needs the log's origin: %s",
                           why);
        }
        /* Origin and key id: two logs that happen to share an origin are still two logs. */
        char source[REGISTRY_SOURCE_MAX + 1];
        snprintf(source, sizeof(source), "%s+%08x", v.name, (unsigned)v.keyid);
        if (registry_set_source(reg, source, err, errlen) < 0) {
            registry_close(reg);
            return REGISTRY_ERR;
        }
    }
    *out = reg;
    return 0;
}
