/* log.c -- the append side of the evidence log: journal with group commit, recovery, the
 * background tile writer and checkpoint publication; and the journal reader. Design in
 * docs/evidence.md. */
/* _GNU_SOURCE: syncfs(2), one flush of every tile written since the last checkpoint, and
 * pthread_setname_np. */
#define _GNU_SOURCE
#include "evidence/log.h"

#include <dirent.h>
#include <openssl/crypto.h>
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "event/event.h"
#include "evidence/access.h"
#include "evidence/files.h"
#include "evidence/seal.h"
#include "util/bigendian.h"
#include "util/err.h"

/* A sealed record: the record (< EVENT_RECORD_MAX) and its seal tags. */
#define EVLOG_SEAL_BUF (EVENT_RECORD_MAX + 128)

/* Journal: a 16-byte file header ("SNKDWAL1", durable length u64 BE), then batches:
 *   header  "BTCH" count:u32 first:u64 payload_len:u64                     (24 bytes)
 *   payload count x (len:u16 BE || entry)          -- the tlog-tiles bundle framing
 *   trailer "CMIT" 0:u32 size_after:u64 root:32                            (48 bytes)
 * The trailer is the commit record: the tree root after the batch, so replay detects a torn or
 * altered tail by re-hashing. All integers big-endian. */
#define WAL_MAGIC "SNKDWAL1"
#define WAL_HDR 16
#define BATCH_HDR 24
#define BATCH_TRL 48
#define BATCH_MAX_ENTRIES (1u << 24)
#define STAGE_CAP_START ((size_t)1 << 16) /* the batch buffer, grown by doubling under load */
#define DEFAULT_BATCH_BYTES (64u << 20)
#define DEFAULT_TILE_QUEUE_BYTES (256u << 20)
#define TILE_RETRY_MS 1000 /* the tile writer retries a failed write this often */
#define TILE_WRITER_NICE 5
#define OVERLAP_MIN_BYTES (256u << 10)
#define DEFAULT_CP_ENTRIES 100000u
#define DEFAULT_CP_MS 1000u
#define CHECKPOINTS_MAX 10000000u
#define TILE_LEVELS 8
#define TILE_SLOTS (TILE_LEVELS + 1) /* hash tiles of levels 0..7, then entry bundles */
#define TILE_BYTES (EVLOG_TILE_WIDTH * EVLOG_HASH_SIZE)
#define PARTIALS_UNKNOWN UINT64_MAX

int evlog_journal_parse_batch(const uint8_t *buf, size_t len, uint64_t *first, uint32_t *count)
{
    if (len < BATCH_HDR) {
        return memcmp(buf, "BTCH", len < 4 ? len : 4) == 0 ? 0 : EVLOG_ECORRUPT;
    }
    if (memcmp(buf, "BTCH", 4) != 0) {
        return EVLOG_ECORRUPT;
    }
    uint32_t n = be_get32(buf + 4);
    uint64_t f = be_get64(buf + 8), plen = be_get64(buf + 16);
    if (n == 0 || n > BATCH_MAX_ENTRIES || plen < 2ull * n || plen > 65537ull * n ||
        f > UINT64_MAX - n) {
        return EVLOG_ECORRUPT;
    }
    uint64_t total = BATCH_HDR + plen + BATCH_TRL;
    if (total > INT32_MAX) {
        return EVLOG_ECORRUPT;
    }
    if (len < total) {
        return 0;
    }
    const uint8_t *p = buf + BATCH_HDR;
    uint64_t off = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (off + 2 > plen) {
            return EVLOG_ECORRUPT;
        }
        uint32_t el = (uint32_t)p[off] << 8 | p[off + 1];
        if (off + 2 + el > plen) {
            return EVLOG_ECORRUPT;
        }
        off += 2 + el;
    }
    if (off != plen) {
        return EVLOG_ECORRUPT;
    }
    const uint8_t *t = p + plen;
    if (memcmp(t, "CMIT", 4) != 0 || be_get32(t + 4) != 0 || be_get64(t + 8) != f + n) {
        return EVLOG_ECORRUPT;
    }
    *first = f;
    *count = n;
    return (int)total;
}

struct cp_entry {
    uint64_t size;
    uint8_t root[EVLOG_HASH_SIZE];
};

/* Work for the tile writer: a tile or entry bundle (full or partial) to write, or a signed
 * checkpoint to publish once everything queued before it is on disk. */
enum job_kind { JOB_TILE, JOB_CHECKPOINT };
struct tile_job {
    struct tile_job *next;
    enum job_kind kind;
    int level; /* 0..7, or EVLOG_TILE_ENTRIES for an entry bundle */
    uint64_t n;
    unsigned width;  /* EVLOG_TILE_WIDTH for a full tile */
    uint8_t *data;   /* owned: hashes, bundle bytes or the signed note */
    size_t len, cap; /* cap: allocated bytes (a full bundle buffer is reused on rollback) */
    uint64_t size;   /* JOB_CHECKPOINT: the tree size it commits to */
};

struct job_list {
    struct tile_job *head, *tail;
    size_t bytes;
};

/* The tile writer: a thread that turns the in-memory hashes into C2SP files, so creating files
 * (slow on some file systems) never sits on evlog_commit's path. Durability rests on the
 * journal alone; a checkpoint is published only after the tiles it names are on disk. */
struct tile_writer {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t work; /* jobs queued, or stop */
    pthread_cond_t idle; /* a job finished or failed */
    struct job_list queue;
    bool stop;
    int err;          /* last failure (retried every TILE_RETRY_MS), 0 once a retry succeeds */
    uint64_t err_seq; /* failures so far (reported once each) */
    char msg[256];
    uint64_t published; /* size of the newest checkpoint on disk */
    uint64_t files;     /* tiles and bundles written */
    /* used by one thread at a time: replay during open, then the writer thread */
    uint64_t partials_of[TILE_SLOTS]; /* 1 + tile with partials on disk, 0 none, or unknown */
};

struct evlog {
    /* The latest time an erasure record appended through this handle erased personal data
     * before (evlog_erased_before_us): read by other threads. */
    _Atomic uint64_t erased_before_us;
    char state[EVLOG_PATH_MAX];
    char logdir[EVLOG_PATH_MAX];
    int wal_fd;
    int log_fd; /* the log directory, for syncfs and directory fsync */
    uint64_t wal_len;
    struct evlog_signer signer;
    struct evlog_verifier verifier;
    struct evlog_hasher *hasher;
    struct evlog_frontier tree; /* durable tree (during evlog_commit: including the batch) */
    uint8_t *tile[TILE_LEVELS]; /* the tile being filled at each level (TILE_BYTES each) */
    uint8_t *bundle;            /* entry bundle of the current level-0 tile */
    size_t bundle_len, bundle_cap;
    struct job_list pending; /* full tiles completed by the batch being committed */
    int add_err;             /* allocation failure while hashing a batch */
    /* staged batch: BATCH_HDR reserved, then payload */
    uint8_t *stage;
    size_t stage_len, stage_cap, stage_max;
    uint32_t staged;
    size_t tile_queue_max;
    /* checkpoint policy and state */
    uint64_t cp_entries, cp_ms;
    uint64_t cp_size, cp_time_ms; /* newest checkpoint handed to the tile writer */
    bool cp_time_set;
    uint64_t err_seq_seen;
    bool broken;     /* the journal may be ahead of or behind the in-memory tree */
    bool recovering; /* replaying: write tiles only where missing or after the last checkpoint */
    uint64_t rewrite_from;  /* during replay: tiles ending after this leaf index are rewritten */
    uint64_t tiles_written; /* during replay */
    struct tile_writer tw;
    struct access_drain_state spool; /* records other processes handed in (access.h) */
    struct seal_keyring *seal;       /* NULL: entries stored as given (seal.h) */
    uint8_t seal_buf[EVLOG_SEAL_BUF];
    char seal_err[256]; /* why the last record could not be sealed */
};

static int sys_err(char *err, size_t errlen, const char *what, const char *path)
{
    err_set(err, errlen, "%s %s: %s", what, path, strerror(errno));
    return EVLOG_EIO;
}

static int mkdirs(const char *path)
{
    char tmp[EVLOG_PATH_MAX];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s", path) >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p != '\0'; p++) {
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) {
                return -1;
            }
            *p = '/';
        }
    }
    return (mkdir(tmp, 0755) != 0 && errno != EEXIST) ? -1 : 0;
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* A batch buffer (the writer's, a reader's) grows by doubling with the largest batch, up to
 * megabytes in a burst of thousands of records; once batches of `used` bytes are small again,
 * it goes back to STAGE_CAP_START instead of being kept for good. */
static void shrink_after_burst(uint8_t **buf, size_t *cap, size_t used)
{
    if (*cap <= STAGE_CAP_START || used > STAGE_CAP_START / 2) {
        return;
    }
    uint8_t *b = realloc(*buf, STAGE_CAP_START);
    if (b != NULL) {
        *buf = b;
        *cap = STAGE_CAP_START;
    }
}

/* Writes path (relative to the log dir) via a temporary file and rename; durable if sync. */
static int write_file_atomic(struct evlog *log, const char *rel, const void *buf, size_t len,
                             bool sync, char *err, size_t errlen)
{
    char path[EVLOG_PATH_MAX + 160], tmp[EVLOG_PATH_MAX + 170];
    snprintf(path, sizeof path, "%s/%s", log->logdir, rel);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    if (mkdirs(path) != 0) {
        return sys_err(err, errlen, "mkdir", path);
    }
    *slash = '/';
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        return sys_err(err, errlen, "create", tmp);
    }
    if (evfile_write_all(fd, buf, len) != 0 || (sync && fsync(fd) != 0)) {
        int rc = sys_err(err, errlen, "write", tmp);
        close(fd);
        unlink(tmp);
        return rc;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int rc = sys_err(err, errlen, "rename", tmp);
        unlink(tmp);
        return rc;
    }
    if (sync) {
        *slash = '\0';
        int rc = fsync_dir(path);
        *slash = '/';
        if (rc != 0) {
            return sys_err(err, errlen, "fsync", path);
        }
    }
    return 0;
}

/* Removes tile/<L>/<N>.p/ once the full tile exists (C2SP tlog-tiles allows it). */
static void remove_partials(struct evlog *log, int level, uint64_t n)
{
    char rel[160], dir[EVLOG_PATH_MAX + 200];
    evlog_tile_path(level, n, EVLOG_TILE_WIDTH, rel, sizeof rel);
    snprintf(dir, sizeof dir, "%s/%s.p", log->logdir, rel);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *de;
    int guard = 0;
    while ((de = readdir(d)) != NULL && guard++ < 1000) {
        if (de->d_name[0] == '.') {
            continue;
        }
        char f[EVLOG_PATH_MAX + 480];
        snprintf(f, sizeof f, "%s/%s", dir, de->d_name);
        unlink(f);
    }
    closedir(d);
    rmdir(dir);
}

static int slot_of(int level)
{
    return level < 0 ? TILE_LEVELS : level;
}

/* Writes one tile or bundle in place (no temporary file: no client asks for a tile before a
 * checkpoint names it, and the checkpoint is written only after a syncfs). Full tiles that an
 * existing checkpoint already covers are only repaired during replay, if missing or short. */
static int tile_store(struct evlog *log, const struct tile_job *j, char *err, size_t errlen)
{
    struct tile_writer *tw = &log->tw;
    int slot = slot_of(j->level);
    char rel[160], path[EVLOG_PATH_MAX + 200];
    evlog_tile_path(j->level, j->n, j->width, rel, sizeof rel);
    snprintf(path, sizeof path, "%s/%s", log->logdir, rel);
    if (log->recovering && j->width == EVLOG_TILE_WIDTH) {
        unsigned shift = EVLOG_TILE_HEIGHT * (unsigned)(j->level < 0 ? 0 : j->level) + 8;
        uint64_t end_leaf =
            shift >= 64 || (j->n + 1) > (UINT64_MAX >> shift) ? UINT64_MAX : (j->n + 1) << shift;
        struct stat st;
        if (end_leaf <= log->rewrite_from && stat(path, &st) == 0 && (size_t)st.st_size == j->len) {
            return 0; /* covered by a published checkpoint, so synced before it */
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 && errno == ENOENT) {
        /* A new directory every 1000 tiles: make it only when the file cannot be created */
        char *slash = strrchr(path, '/');
        *slash = '\0';
        if (mkdirs(path) != 0) {
            return sys_err(err, errlen, "mkdir", path);
        }
        *slash = '/';
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    }
    if (fd < 0) {
        return sys_err(err, errlen, "create", path);
    }
    if (evfile_write_all(fd, j->data, j->len) != 0) {
        int rc = sys_err(err, errlen, "write", path);
        close(fd);
        return rc;
    }
    if (close(fd) != 0) {
        return sys_err(err, errlen, "close", path);
    }
    if (j->width == EVLOG_TILE_WIDTH) {
        if (tw->partials_of[slot] == j->n + 1 || tw->partials_of[slot] == PARTIALS_UNKNOWN) {
            remove_partials(log, j->level, j->n);
            tw->partials_of[slot] = 0;
        }
    } else {
        tw->partials_of[slot] = j->n + 1;
    }
    if (log->recovering) {
        log->tiles_written++;
    }
    return 0;
}

/* Publishes a checkpoint whose tiles were written by the jobs before it. */
static int checkpoint_store(struct evlog *log, const struct tile_job *j, char *err, size_t errlen)
{
    /* Every tile written since the last checkpoint reaches the disk before the checkpoint that
     * commits to them is published. */
    if (syncfs(log->log_fd) != 0) {
        return sys_err(err, errlen, "syncfs", log->logdir);
    }
    char rel[64];
    snprintf(rel, sizeof rel, "checkpoints/%llu", (unsigned long long)j->size);
    int rc = write_file_atomic(log, rel, j->data, j->len, true, err, errlen);
    if (rc == 0) {
        rc = write_file_atomic(log, "checkpoint", j->data, j->len, true, err, errlen);
    }
    return rc;
}

static int job_run(struct evlog *log, const struct tile_job *j, char *err, size_t errlen)
{
    return j->kind == JOB_TILE ? tile_store(log, j, err, errlen)
                               : checkpoint_store(log, j, err, errlen);
}

static size_t job_bytes(const struct tile_job *j)
{
    return sizeof *j + j->cap;
}

static void job_free(struct tile_job *j)
{
    if (j != NULL) {
        free(j->data);
        free(j);
    }
}

static void list_push(struct job_list *l, struct tile_job *j)
{
    j->next = NULL;
    if (l->tail != NULL) {
        l->tail->next = j;
    } else {
        l->head = j;
    }
    l->tail = j;
    l->bytes += job_bytes(j);
}

static void list_free(struct job_list *l)
{
    while (l->head != NULL) {
        struct tile_job *j = l->head;
        l->head = j->next;
        job_free(j);
    }
    l->tail = NULL;
    l->bytes = 0;
}

static void *tile_writer_main(void *arg)
{
    struct evlog *log = arg;
    struct tile_writer *tw = &log->tw;
    (void)pthread_setname_np(pthread_self(), "sinkd-tiles");
    /* Background work: when the CPUs are busy the thread that commits (and so answers bots)
     * goes first. Linux nice values are per thread; back-pressure bounds how far this one may
     * fall behind. Failure is harmless (the thread just keeps the default priority). */
    (void)setpriority(PRIO_PROCESS, (id_t)gettid(), TILE_WRITER_NICE);
    pthread_mutex_lock(&tw->mu);
    for (;;) {
        while (tw->queue.head == NULL && !tw->stop) {
            pthread_cond_wait(&tw->work, &tw->mu);
        }
        if (tw->queue.head == NULL) {
            break;
        }
        /* The head stays queued while it is written: evlog_* only ever appends at the tail. */
        struct tile_job *j = tw->queue.head;
        pthread_mutex_unlock(&tw->mu);
        char msg[sizeof tw->msg];
        int rc = job_run(log, j, msg, sizeof msg);
        pthread_mutex_lock(&tw->mu);
        if (rc == 0) {
            tw->queue.head = j->next;
            if (tw->queue.head == NULL) {
                tw->queue.tail = NULL;
            }
            tw->queue.bytes -= job_bytes(j);
            if (j->kind == JOB_CHECKPOINT) {
                tw->published = j->size;
            } else {
                tw->files++;
            }
            tw->err = 0;
            job_free(j);
            pthread_cond_broadcast(&tw->idle);
            continue;
        }
        /* Disk full or an I/O error: keep the job and everything after it (a checkpoint must
         * never be published without its tiles), say so, and retry later. */
        tw->err = rc;
        tw->err_seq++;
        memcpy(tw->msg, msg, sizeof msg);
        pthread_cond_broadcast(&tw->idle);
        if (tw->stop) {
            break;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += TILE_RETRY_MS / 1000;
        pthread_cond_timedwait(&tw->work, &tw->mu, &until);
        if (tw->stop) {
            break;
        }
    }
    pthread_mutex_unlock(&tw->mu);
    return NULL;
}

/* Hands a list of jobs to the tile writer (or, during replay, writes them now). */
static int tw_submit(struct evlog *log, struct job_list *l, char *err, size_t errlen)
{
    struct tile_writer *tw = &log->tw;
    if (l->head == NULL) {
        return 0;
    }
    if (!tw->started) {
        int rc = 0;
        for (struct tile_job *j = l->head; j != NULL && rc == 0; j = j->next) {
            rc = job_run(log, j, err, errlen);
        }
        list_free(l);
        return rc;
    }
    pthread_mutex_lock(&tw->mu);
    if (tw->queue.tail != NULL) {
        tw->queue.tail->next = l->head;
    } else {
        tw->queue.head = l->head;
    }
    tw->queue.tail = l->tail;
    tw->queue.bytes += l->bytes;
    pthread_cond_signal(&tw->work);
    pthread_mutex_unlock(&tw->mu);
    memset(l, 0, sizeof *l);
    return 0;
}

/* Waits until the tile writer has written everything queued; a failure is returned (not
 * waited out: the writer keeps retrying on its own). */
static int tw_wait_idle(struct evlog *log, char *err, size_t errlen)
{
    struct tile_writer *tw = &log->tw;
    if (!tw->started) {
        return 0;
    }
    pthread_mutex_lock(&tw->mu);
    while (tw->queue.head != NULL && tw->err == 0) {
        pthread_cond_wait(&tw->idle, &tw->mu);
    }
    int rc = tw->queue.head != NULL ? tw->err : 0;
    if (rc != 0) {
        err_set(err, errlen, "tile writer: %s", tw->msg);
    }
    pthread_mutex_unlock(&tw->mu);
    return rc;
}

static void tw_stop(struct evlog *log)
{
    struct tile_writer *tw = &log->tw;
    if (tw->started) {
        pthread_mutex_lock(&tw->mu);
        tw->stop = true;
        pthread_cond_broadcast(&tw->work);
        pthread_mutex_unlock(&tw->mu);
        pthread_join(tw->thread, NULL);
        tw->started = false;
    }
    list_free(&tw->queue);
}

static struct tile_job *job_new(enum job_kind kind, int level, uint64_t n, unsigned width)
{
    struct tile_job *j = calloc(1, sizeof *j);
    if (j != NULL) {
        j->kind = kind;
        j->level = level;
        j->n = n;
        j->width = width;
    }
    return j;
}

/* Moves the completed tile (or bundle) at `level` into a job on the batch's pending list and
 * starts a fresh buffer; nothing is copied. */
static void emit_full(struct evlog *log, int level, uint64_t n)
{
    bool bundle = level < 0;
    size_t cap = bundle ? log->bundle_cap : TILE_BYTES;
    struct tile_job *j = job_new(JOB_TILE, level, n, EVLOG_TILE_WIDTH);
    uint8_t *fresh = malloc(cap);
    if (j == NULL || fresh == NULL) {
        free(j);
        free(fresh);
        log->add_err = EVLOG_ENOMEM;
        return;
    }
    j->cap = cap;
    if (bundle) {
        j->data = log->bundle;
        j->len = log->bundle_len;
        log->bundle = fresh;
        log->bundle_len = 0;
    } else {
        j->data = log->tile[level];
        j->len = TILE_BYTES;
        log->tile[level] = fresh;
    }
    list_push(&log->pending, j);
}

static void on_tile_hash(void *ctx, unsigned level, uint64_t index,
                         const uint8_t hash[EVLOG_HASH_SIZE])
{
    struct evlog *log = ctx;
    if (level >= TILE_LEVELS) {
        return;
    }
    unsigned slot = (unsigned)(index % EVLOG_TILE_WIDTH);
    memcpy(log->tile[level] + (size_t)slot * EVLOG_HASH_SIZE, hash, EVLOG_HASH_SIZE);
    if (slot == EVLOG_TILE_WIDTH - 1) {
        uint64_t n = index / EVLOG_TILE_WIDTH;
        emit_full(log, (int)level, n);
        if (level == 0) {
            emit_full(log, EVLOG_TILE_ENTRIES, n);
        }
    }
}

/* Adds one entry to the in-memory tree, bundle and tiles. `framed` is the entry with its
 * 2-byte length prefix (the journal and bundle framing). */
static int tree_add(struct evlog *log, const uint8_t *framed, size_t len)
{
    if (log->bundle_len + 2 + len > log->bundle_cap) {
        size_t cap = log->bundle_cap * 2 + 2 + len;
        uint8_t *b = realloc(log->bundle, cap);
        if (b == NULL) {
            return EVLOG_ENOMEM;
        }
        log->bundle = b;
        log->bundle_cap = cap;
    }
    memcpy(log->bundle + log->bundle_len, framed, 2 + len);
    log->bundle_len += 2 + len;
    uint8_t leaf[EVLOG_HASH_SIZE];
    evlog_hasher_leaf(log->hasher, framed + 2, len, leaf);
    evlog_frontier_push(&log->tree, log->hasher, leaf, on_tile_hash, log);
    int rc = log->add_err;
    log->add_err = 0;
    return rc;
}

/* Undoes the hashing of a batch that did not reach the journal: the tree goes back to
 * `before`, and each level takes back the buffer it had at the start of the batch (the first
 * full tile the batch completed at that level; later slots are overwritten on the next try). */
static void batch_rollback(struct evlog *log, const struct evlog_frontier *before,
                           size_t bundle_before)
{
    bool restored[TILE_SLOTS] = {false};
    for (struct tile_job *j = log->pending.head; j != NULL; j = j->next) {
        int slot = slot_of(j->level);
        if (restored[slot]) {
            continue;
        }
        restored[slot] = true;
        if (slot == TILE_LEVELS) {
            free(log->bundle);
            log->bundle = j->data;
            log->bundle_cap = j->cap;
        } else {
            free(log->tile[slot]);
            log->tile[slot] = j->data;
        }
        j->data = NULL;
    }
    list_free(&log->pending);
    log->tree = *before;
    log->bundle_len = bundle_before;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

static int read_file(const char *path, char *buf, size_t cap, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        if (got == cap) {
            break;
        }
    }
    close(fd);
    *len = got;
    return 0;
}

static int cmp_cp(const void *a, const void *b)
{
    const struct cp_entry *x = a, *y = b;
    return x->size < y->size ? -1 : x->size > y->size ? 1 : 0;
}

/* Loads and verifies every published checkpoint (log/checkpoints/<size> and log/checkpoint). */
static int load_checkpoints(struct evlog *log, struct cp_entry **out, size_t *n, char *err,
                            size_t errlen)
{
    char dir[EVLOG_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/checkpoints", log->logdir);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return sys_err(err, errlen, "open", dir);
    }
    struct cp_entry *list = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    struct dirent *de;
    bool latest_done = false;
    for (;;) {
        char path[EVLOG_PATH_MAX + 300];
        if (!latest_done) {
            latest_done = true;
            snprintf(path, sizeof path, "%s/checkpoint", log->logdir);
            if (access(path, F_OK) != 0) {
                continue;
            }
        } else {
            de = readdir(d);
            if (de == NULL) {
                break;
            }
            if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp") != NULL) {
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        }
        char note[EVLOG_NOTE_MAX];
        size_t len;
        struct evlog_checkpoint cp;
        char e[256];
        if (read_file(path, note, sizeof note, &len) != 0) {
            rc = sys_err(err, errlen, "read", path);
            break;
        }
        if (evlog_checkpoint_open(note, len, &log->verifier, &cp, e, sizeof e) != 0) {
            err_set(err, errlen, "%s: %s", path, e);
            rc = EVLOG_ECORRUPT;
            break;
        }
        if (count == cap) {
            if (cap >= CHECKPOINTS_MAX) {
                err_set(err, errlen, "%s: more than %u checkpoints", dir, CHECKPOINTS_MAX);
                rc = EVLOG_EFULL;
                break;
            }
            cap = cap ? cap * 2 : 64;
            struct cp_entry *l = realloc(list, cap * sizeof *l);
            if (l == NULL) {
                rc = EVLOG_ENOMEM;
                break;
            }
            list = l;
        }
        list[count].size = cp.size;
        memcpy(list[count].root, cp.root, EVLOG_HASH_SIZE);
        count++;
    }
    closedir(d);
    if (rc != 0) {
        free(list);
        return rc;
    }
    if (count > 0) {
        qsort(list, count, sizeof *list, cmp_cp);
    }
    *out = list;
    *n = count;
    return 0;
}

/* Queues the partial tiles for the current size, then the signed checkpoint, behind every full
 * tile already queued. The tile writer publishes it once they are all on disk. */
static int publish_checkpoint(struct evlog *log, uint64_t now_ms, char *err, size_t errlen)
{
    uint64_t size = log->tree.size;
    struct job_list jobs = {0};
    int rc = 0;
    /* Partial tiles for this size (C2SP: logs MUST serve them for published sizes). */
    for (int level = 0; level < TILE_LEVELS && rc == 0; level++) {
        uint64_t avail = size >> (EVLOG_TILE_HEIGHT * level);
        unsigned w = (unsigned)(avail % EVLOG_TILE_WIDTH);
        if (avail == 0) {
            break;
        }
        if (w == 0) {
            continue;
        }
        uint64_t n = avail / EVLOG_TILE_WIDTH;
        for (int b = 0; b < (level == 0 ? 2 : 1) && rc == 0; b++) {
            const uint8_t *src = b == 0 ? log->tile[level] : log->bundle;
            size_t len = b == 0 ? (size_t)w * EVLOG_HASH_SIZE : log->bundle_len;
            struct tile_job *j = job_new(JOB_TILE, b == 0 ? level : EVLOG_TILE_ENTRIES, n, w);
            uint8_t *copy = malloc(len ? len : 1);
            if (j == NULL || copy == NULL) {
                free(j);
                free(copy);
                rc = EVLOG_ENOMEM;
                break;
            }
            memcpy(copy, src, len);
            j->data = copy;
            j->len = j->cap = len;
            list_push(&jobs, j);
        }
    }
    struct evlog_checkpoint cp;
    snprintf(cp.origin, sizeof cp.origin, "%s", log->signer.name);
    cp.size = size;
    evlog_frontier_root(&log->tree, cp.root);
    char text[512], note[1024];
    int tl = evlog_checkpoint_format(&cp, text, sizeof text);
    int nl = tl < 0
                 ? tl
                 : evlog_note_sign(&log->signer, text, (size_t)tl, note, sizeof note, err, errlen);
    if (rc == 0 && nl < 0) {
        rc = nl;
        if (tl < 0) {
            err_set(err, errlen, "checkpoint text too long");
        }
    }
    struct tile_job *j = rc == 0 ? job_new(JOB_CHECKPOINT, 0, 0, 0) : NULL;
    if (rc == 0 && (j == NULL || (j->data = malloc((size_t)nl)) == NULL)) {
        free(j);
        rc = EVLOG_ENOMEM;
    }
    if (rc != 0) {
        if (rc == EVLOG_ENOMEM) {
            err_set(err, errlen, "out of memory");
        }
        list_free(&jobs);
        return rc;
    }
    memcpy(j->data, note, (size_t)nl);
    j->len = j->cap = (size_t)nl;
    j->size = size;
    list_push(&jobs, j);
    rc = tw_submit(log, &jobs, err, errlen);
    if (rc == 0) {
        log->cp_size = size;
        log->cp_time_ms = now_ms;
        log->cp_time_set = true;
    }
    return rc;
}

/* ---- journal replay ----------------------------------------------------------------------- */

static int set_durable_len(struct evlog *log)
{
    uint8_t b[8];
    be_put64(b, log->wal_len);
    return pwrite(log->wal_fd, b, 8, 8) == 8 ? 0 : -1;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] != 0) {
            return false;
        }
    }
    return true;
}

static int replay(struct evlog *log, const struct cp_entry *cps, size_t ncp,
                  struct evlog_recovery *rec, char *err, size_t errlen)
{
    char wal[EVLOG_PATH_MAX + 32];
    snprintf(wal, sizeof wal, "%s/journal/wal", log->state);
    struct stat st;
    if (fstat(log->wal_fd, &st) != 0) {
        return sys_err(err, errlen, "stat", wal);
    }
    uint64_t flen = (uint64_t)st.st_size;
    if (flen < WAL_HDR) {
        uint8_t h[WAL_HDR] = WAL_MAGIC;
        be_put64(h + 8, WAL_HDR);
        if (pwrite(log->wal_fd, h, WAL_HDR, 0) != WAL_HDR || ftruncate(log->wal_fd, WAL_HDR) != 0 ||
            fsync(log->wal_fd) != 0) {
            return sys_err(err, errlen, "initialise", wal);
        }
        flen = WAL_HDR;
    } else {
        uint8_t h[WAL_HDR];
        if (pread(log->wal_fd, h, WAL_HDR, 0) != WAL_HDR || memcmp(h, WAL_MAGIC, 8) != 0) {
            err_set(err, errlen, "%s: not a sinkd journal (bad magic)", wal);
            return EVLOG_ECORRUPT;
        }
    }
    size_t cap = 1 << 20, next_cp = 0;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        return EVLOG_ENOMEM;
    }
    uint64_t off = WAL_HDR;
    int rc = 0;
    bool torn = false;
    while (next_cp < ncp && cps[next_cp].size == 0) {
        next_cp++; /* the empty tree's root is checked after replay */
    }
    while (off < flen && rc == 0) {
        size_t have = flen - off < BATCH_HDR ? (size_t)(flen - off) : BATCH_HDR;
        if (pread(log->wal_fd, buf, have, (off_t)off) != (ssize_t)have) {
            rc = sys_err(err, errlen, "read", wal);
            break;
        }
        uint64_t total = have == BATCH_HDR ? BATCH_HDR + be_get64(buf + 16) + BATCH_TRL : 0;
        if (have < BATCH_HDR || memcmp(buf, "BTCH", 4) != 0 || total > INT32_MAX ||
            off + total > flen) {
            /* Cannot be a complete batch: a torn tail is a prefix of a batch (kill -9) or zeros
             * (power loss on some file systems); anything else is damage. */
            size_t cmp = have < 4 ? have : 4;
            size_t rest = (size_t)(flen - off);
            bool batch_prefix = memcmp(buf, "BTCH", cmp) == 0;
            if (batch_prefix ||
                (rest <= cap && pread(log->wal_fd, buf, rest, (off_t)off) == (ssize_t)rest &&
                 all_zero(buf, rest))) {
                torn = true;
            } else {
                err_set(err, errlen, "%s: damaged batch header at byte %llu (not a torn tail)", wal,
                        (unsigned long long)off);
                rc = EVLOG_ECORRUPT;
            }
            break;
        }
        if (total > cap) {
            uint8_t *b = realloc(buf, total);
            if (b == NULL) {
                rc = EVLOG_ENOMEM;
                break;
            }
            buf = b;
            cap = total;
        }
        if (pread(log->wal_fd, buf, total, (off_t)off) != (ssize_t)total) {
            rc = sys_err(err, errlen, "read", wal);
            break;
        }
        uint64_t first;
        uint32_t count;
        int n = evlog_journal_parse_batch(buf, total, &first, &count);
        bool last = off + total == flen;
        if (n <= 0 || first != log->tree.size) {
            if (last) {
                torn = true;
            } else {
                err_set(err, errlen, "%s: malformed batch at byte %llu (entry %llu)", wal,
                        (unsigned long long)off, (unsigned long long)log->tree.size);
                rc = EVLOG_ECORRUPT;
            }
            break;
        }
        /* Re-hash the batch on a copy of the tree; keep it only if the commit root matches. */
        struct evlog_frontier before = log->tree;
        size_t bundle_before = log->bundle_len;
        const uint8_t *p = buf + BATCH_HDR;
        for (uint32_t i = 0; i < count && rc == 0; i++) {
            size_t el = (size_t)p[0] << 8 | p[1];
            rc = tree_add(log, p, el);
            p += 2 + el;
            while (rc == 0 && next_cp < ncp && cps[next_cp].size == log->tree.size) {
                uint8_t root[EVLOG_HASH_SIZE];
                evlog_frontier_root(&log->tree, root);
                if (memcmp(root, cps[next_cp].root, EVLOG_HASH_SIZE) != 0) {
                    err_set(err, errlen,
                            "published checkpoint %llu does not match the journal's tree: "
                            "refusing to open (log/checkpoints/%llu)",
                            (unsigned long long)cps[next_cp].size,
                            (unsigned long long)cps[next_cp].size);
                    rc = EVLOG_ECORRUPT;
                }
                next_cp++;
            }
        }
        if (rc != 0) {
            list_free(&log->pending);
            break;
        }
        uint8_t root[EVLOG_HASH_SIZE];
        evlog_frontier_root(&log->tree, root);
        if (memcmp(root, buf + total - EVLOG_HASH_SIZE, EVLOG_HASH_SIZE) != 0) {
            if (!last) {
                err_set(err, errlen,
                        "%s: batch at byte %llu (entries %llu..%llu) fails its "
                        "commit root",
                        wal, (unsigned long long)off, (unsigned long long)first,
                        (unsigned long long)(first + count - 1));
                rc = EVLOG_ECORRUPT;
                list_free(&log->pending);
                break;
            }
            batch_rollback(log, &before, bundle_before);
            torn = true;
            break;
        }
        /* The batch is part of the tree: (re)write its full tiles now, before the tile writer
         * starts, so the files match the journal when open returns. */
        rc = tw_submit(log, &log->pending, err, errlen);
        off += total;
    }
    free(buf);
    if (rc != 0) {
        return rc;
    }
    if (torn) {
        if (ftruncate(log->wal_fd, (off_t)off) != 0 || fsync(log->wal_fd) != 0) {
            return sys_err(err, errlen, "truncate", wal);
        }
        rec->cut_bytes = flen - off;
    }
    if (ncp > 0 && cps[ncp - 1].size > log->tree.size) {
        err_set(err, errlen,
                "checkpoint %llu was published but the journal holds only %llu durable "
                "entries: refusing to open",
                (unsigned long long)cps[ncp - 1].size, (unsigned long long)log->tree.size);
        return EVLOG_ECORRUPT;
    }
    for (size_t i = 0; i < ncp; i++) {
        if (cps[i].size == 0) {
            static const uint8_t empty[EVLOG_HASH_SIZE] = {
                0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4,
                0xc8, 0x99, 0x6f, 0xb9, 0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b,
                0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
            if (memcmp(cps[i].root, empty, EVLOG_HASH_SIZE) != 0) {
                err_set(err, errlen, "published checkpoint 0 has a non-empty root");
                return EVLOG_ECORRUPT;
            }
        }
    }
    log->wal_len = off;
    if (set_durable_len(log) != 0 || fsync(log->wal_fd) != 0) {
        return sys_err(err, errlen, "write", wal);
    }
    return 0;
}

/* ---- open / append / commit ----------------------------------------------------------------- */

static int load_or_create_key(struct evlog *log, const struct evlog_options *opt, char *err,
                              size_t errlen)
{
    char keys[EVLOG_PATH_MAX + 16], kpath[EVLOG_PATH_MAX + 32];
    snprintf(keys, sizeof keys, "%s/keys", log->state);
    snprintf(kpath, sizeof kpath, "%s/log.key", keys);
    if (access(kpath, F_OK) != 0) {
        /* Never a new key pair beside a published public key or for a log already signed:
         * checkpoints under a new key would no longer verify with the key verifiers hold. */
        char vpath[EVLOG_PATH_MAX + 32], cpath[EVLOG_PATH_MAX + 32];
        snprintf(vpath, sizeof vpath, "%s/log.vkey", keys);
        snprintf(cpath, sizeof cpath, "%s/checkpoint", log->logdir);
        if (access(vpath, F_OK) == 0) {
            err_set(err, errlen,
                    "%s: the private key is missing, but its public key %s is there: put the "
                    "private key back (from its offline copy); a new key would not match the "
                    "published one",
                    kpath, vpath);
            return EVLOG_EINVAL;
        }
        if (access(cpath, F_OK) == 0) {
            err_set(err, errlen,
                    "%s: the private key is missing, and %s holds checkpoints it signed: put "
                    "the key back; a new key would not verify this log",
                    kpath, log->logdir);
            return EVLOG_EINVAL;
        }
        if (!opt->create_key) {
            err_set(err, errlen, "%s: no signing key (run `sinkd keygen`)", kpath);
            return EVLOG_EINVAL;
        }
        if (opt->origin == NULL) {
            err_set(err, errlen, "%s: no signing key and no origin to create one", kpath);
            return EVLOG_EINVAL;
        }
        int rc = evlog_keygen(keys, opt->origin, err, errlen);
        if (rc != 0) {
            return rc;
        }
    }
    int rc = evlog_signer_load(kpath, &log->signer, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (opt->origin != NULL && strcmp(opt->origin, log->signer.name) != 0) {
        err_set(err, errlen, "%s: key is named '%s' but the log origin is '%s'", kpath,
                log->signer.name, opt->origin);
        return EVLOG_EINVAL;
    }
    evlog_signer_verifier(&log->signer, &log->verifier);
    return 0;
}

/* Frees everything (the tile writer is stopped first; what it had not written yet is rebuilt
 * from the journal at the next open). */
static void log_free(struct evlog *log)
{
    tw_stop(log);
    if (log->wal_fd >= 0) {
        close(log->wal_fd);
    }
    if (log->log_fd >= 0) {
        close(log->log_fd);
    }
    evlog_hasher_free(log->hasher);
    list_free(&log->pending);
    for (int i = 0; i < TILE_LEVELS; i++) {
        free(log->tile[i]);
    }
    free(log->bundle);
    free(log->stage);
    seal_keyring_free(log->seal);
    pthread_mutex_destroy(&log->tw.mu);
    pthread_cond_destroy(&log->tw.work);
    pthread_cond_destroy(&log->tw.idle);
    memset(&log->signer, 0, sizeof log->signer);
    free(log);
}

int evlog_open(struct evlog **out, const char *state_dir, const struct evlog_options *opt,
               struct evlog_recovery *rec, char *err, size_t errlen)
{
    static const struct evlog_options defaults = {0};
    struct evlog_recovery dummy;
    if (opt == NULL) {
        opt = &defaults;
    }
    if (rec == NULL) {
        rec = &dummy;
    }
    memset(rec, 0, sizeof *rec);
    *out = NULL;
    struct evlog *log = calloc(1, sizeof *log);
    if (log == NULL) {
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    log->wal_fd = -1;
    log->log_fd = -1;
    pthread_mutex_init(&log->tw.mu, NULL);
    pthread_cond_init(&log->tw.work, NULL);
    pthread_cond_init(&log->tw.idle, NULL);
    for (int i = 0; i < TILE_SLOTS; i++) {
        log->tw.partials_of[i] = PARTIALS_UNKNOWN;
    }
    int rc = 0;
    struct cp_entry *cps = NULL;
    size_t ncp = 0;
    if ((size_t)snprintf(log->state, sizeof log->state, "%s", state_dir) >= 3000) {
        err_set(err, errlen, "state directory path too long");
        rc = EVLOG_EINVAL;
        goto fail;
    }
    snprintf(log->logdir, sizeof log->logdir, "%s/log", state_dir);
    log->cp_entries = opt->checkpoint_entries ? opt->checkpoint_entries : DEFAULT_CP_ENTRIES;
    log->cp_ms = opt->checkpoint_ms ? opt->checkpoint_ms : DEFAULT_CP_MS;
    log->stage_max = opt->max_batch_bytes ? opt->max_batch_bytes : DEFAULT_BATCH_BYTES;
    if (log->stage_max > INT32_MAX / 2) {
        log->stage_max = INT32_MAX / 2;
    }
    log->tile_queue_max =
        opt->max_tile_queue_bytes ? opt->max_tile_queue_bytes : DEFAULT_TILE_QUEUE_BYTES;
    for (int i = 0; i < TILE_LEVELS; i++) {
        log->tile[i] = malloc(TILE_BYTES);
    }
    log->bundle_cap = 1 << 16;
    log->bundle = malloc(log->bundle_cap);
    log->stage_cap = STAGE_CAP_START;
    log->stage = malloc(log->stage_cap);
    for (int i = 0; i < TILE_LEVELS; i++) {
        if (log->tile[i] == NULL) {
            log->bundle_cap = 0;
        }
    }
    if (log->bundle == NULL || log->stage == NULL || log->bundle_cap == 0) {
        err_set(err, errlen, "out of memory");
        rc = EVLOG_ENOMEM;
        goto fail;
    }
    log->stage_len = BATCH_HDR;
    const char *sub[] = {"", "/journal", "/log", "/log/tile", "/log/checkpoints"};
    for (size_t i = 0; i < sizeof sub / sizeof sub[0]; i++) {
        char d[EVLOG_PATH_MAX + 32];
        snprintf(d, sizeof d, "%s%s", state_dir, sub[i]);
        if (mkdirs(d) != 0) {
            rc = sys_err(err, errlen, "mkdir", d);
            goto fail;
        }
    }
    rc = load_or_create_key(log, opt, err, errlen);
    if (rc != 0) {
        goto fail;
    }
    if (!opt->seal_off) {
        rc = seal_keyring_open(&log->seal, state_dir, true, opt->seal_epoch_s, err, errlen);
        if (rc != 0) {
            goto fail;
        }
    }
    log->hasher = evlog_hasher_new();
    if (log->hasher == NULL) {
        err_set(err, errlen, "libcrypto: cannot fetch SHA-256");
        rc = EVLOG_ECRYPTO;
        goto fail;
    }
    char wal[EVLOG_PATH_MAX + 32];
    snprintf(wal, sizeof wal, "%s/journal/wal", state_dir);
    log->wal_fd = open(wal, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    log->log_fd = open(log->logdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (log->wal_fd < 0 || log->log_fd < 0) {
        rc = sys_err(err, errlen, "open", log->wal_fd < 0 ? wal : log->logdir);
        goto fail;
    }
    /* One writer per journal, whoever opens it: a second one (another process, or this one by
     * mistake) would interleave batches and damage the log for good (issue 19 #3). Commands
     * take DIR/log.lock first, which names the holder; this is the last line of defence. */
    if (flock(log->wal_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? (err_set(err, errlen, "%s is open by another writer (one writer per log)", wal),
                    EVLOG_EIO)
                 : sys_err(err, errlen, "flock", wal);
        goto fail;
    }
    char jdir[EVLOG_PATH_MAX + 16];
    snprintf(jdir, sizeof jdir, "%s/journal", state_dir);
    fsync_dir(jdir);
    rc = load_checkpoints(log, &cps, &ncp, err, errlen);
    if (rc != 0) {
        goto fail;
    }
    log->recovering = true;
    log->rewrite_from = ncp > 0 ? cps[ncp - 1].size : 0;
    rc = replay(log, cps, ncp, rec, err, errlen);
    log->recovering = false;
    if (rc != 0) {
        goto fail;
    }
    log->cp_size = ncp > 0 ? cps[ncp - 1].size : 0;
    log->tw.published = log->cp_size;
    free(cps);
    cps = NULL;
    rec->size = log->tree.size;
    rec->checkpoints = ncp;
    rec->tiles_written = log->tiles_written;
    rc = pthread_create(&log->tw.thread, NULL, tile_writer_main, log);
    if (rc != 0) {
        err_set(err, errlen, "cannot start the tile writer: %s", strerror(rc));
        rc = EVLOG_EIO;
        goto fail;
    }
    log->tw.started = true;
    if (ncp == 0 || log->cp_size != log->tree.size) {
        /* Publish what recovery found, so every durable entry is committed to by a signature. */
        rc = publish_checkpoint(log, 0, err, errlen);
        if (rc == 0) {
            rc = tw_wait_idle(log, err, errlen);
        }
        if (rc != 0) {
            goto fail;
        }
        log->cp_time_set = false;
    }
    *out = log;
    return 0;
fail:
    free(cps);
    log->broken = true;
    log_free(log);
    return rc;
}

uint64_t evlog_erased_before_us(struct evlog *log)
{
    return atomic_load(&log->erased_before_us);
}

int evlog_append(struct evlog *log, const uint8_t *entry, size_t len, uint64_t *index_out)
{
    if (log->broken) {
        return EVLOG_EIO;
    }
    if (len > EVLOG_ENTRY_MAX || (entry == NULL && len > 0)) {
        return EVLOG_EINVAL;
    }
    if (len >= 2 && entry[1] == RECORD_ERASURE) {
        struct record rec;
        if (event_decode(entry, len, &rec, NULL, 0) == 0 &&
            rec.u.erasure.before_us > atomic_load(&log->erased_before_us)) {
            atomic_store(&log->erased_before_us, rec.u.erasure.before_us);
        }
    }
    if (log->seal != NULL && len > 0 && len < EVENT_RECORD_MAX) {
        /* Personal fields sealed here, where the entry's index is known. A record that cannot
         * be sealed (no epoch key could be made) is not stored in clear: it is not stored. */
        size_t sealed_len = 0;
        int sr = seal_record(log->seal, log->tree.size + log->staged, event_now_us(), entry, len,
                             log->seal_buf, sizeof log->seal_buf, &sealed_len, log->seal_err,
                             sizeof log->seal_err);
        if (sr < 0) {
            return EVLOG_EIO;
        }
        if (sr == 1) {
            entry = log->seal_buf;
            len = sealed_len;
        }
    }
    if (log->stage_len + 2 + len > log->stage_max || log->staged >= BATCH_MAX_ENTRIES) {
        return EVLOG_EFULL;
    }
    if (log->stage_len + 2 + len + BATCH_TRL > log->stage_cap) {
        size_t cap = log->stage_cap * 2;
        while (cap < log->stage_len + 2 + len + BATCH_TRL) {
            cap *= 2;
        }
        uint8_t *b = realloc(log->stage, cap);
        if (b == NULL) {
            return EVLOG_ENOMEM;
        }
        log->stage = b;
        log->stage_cap = cap;
    }
    uint8_t *p = log->stage + log->stage_len;
    p[0] = (uint8_t)(len >> 8);
    p[1] = (uint8_t)len;
    if (len > 0) {
        memcpy(p + 2, entry, len);
    }
    log->stage_len += 2 + len;
    if (index_out != NULL) {
        *index_out = log->tree.size + log->staged;
    }
    log->staged++;
    return 0;
}

/* Waits while the tile writer is more than tile_queue_max bytes behind (memory stays bounded
 * when files cannot be created as fast as entries arrive). If it is behind because writes
 * fail, returns the failure instead: nothing has changed, the caller may retry the commit. */
static int tile_backpressure(struct evlog *log, char *err, size_t errlen)
{
    struct tile_writer *tw = &log->tw;
    int rc = 0;
    pthread_mutex_lock(&tw->mu);
    while (tw->queue.bytes > log->tile_queue_max && tw->err == 0) {
        pthread_cond_wait(&tw->idle, &tw->mu);
    }
    if (tw->queue.bytes > log->tile_queue_max) {
        rc = tw->err;
        err_set(err, errlen, "tile writer is %zu bytes behind and failing: %s", tw->queue.bytes,
                tw->msg);
    }
    pthread_mutex_unlock(&tw->mu);
    return rc;
}

/* A journal write failed (nothing hashed, or rolled back): drop what was written past the
 * durable end, so the next batch is not followed by leftovers, and let the caller retry. */
static int journal_write_failed(struct evlog *log, ssize_t n, char *err, size_t errlen)
{
    int e = n < 0 ? errno : ENOSPC;
    if (ftruncate(log->wal_fd, (off_t)log->wal_len) != 0) {
        log->broken = true;
    }
    return err_set(err, errlen, "journal write failed: %s", strerror(e)), EVLOG_EIO;
}

int evlog_commit(struct evlog *log, char *err, size_t errlen)
{
    if (log->broken) {
        return err_set(err, errlen, "evidence log is unusable after an earlier write error"),
               EVLOG_EIO;
    }
    if (log->staged == 0) {
        return 0;
    }
    int rc = tile_backpressure(log, err, errlen);
    if (rc != 0) {
        return rc;
    }
    uint64_t first = log->tree.size;
    uint8_t *h = log->stage;
    /* a 4-byte magic in a binary batch header, deliberately without NUL */
    memcpy(h, "BTCH", 4); /* NOLINT(bugprone-not-null-terminated-result) */
    be_put32(h + 4, log->staged);
    be_put64(h + 8, first);
    be_put64(h + 16, log->stage_len - BATCH_HDR);
    /* The commit record carries the tree root after the batch. A large batch's entries go to
     * the journal before they are hashed, so the device transfers them while the CPU hashes
     * (sync_file_range starts the writeback); a small one is written in one piece after (its
     * trailer shares the last page, which would otherwise be written twice). If a journal
     * write fails the batch is rolled back and stays staged, so the call can be retried (disk
     * full); only a failed fdatasync makes the log unusable (the kernel may have dropped the
     * pages it could not write, so a retry would prove nothing). */
    bool overlap = log->stage_len >= OVERLAP_MIN_BYTES;
    ssize_t n;
    if (overlap) {
        n = pwrite(log->wal_fd, log->stage, log->stage_len, (off_t)log->wal_len);
        if (n != (ssize_t)log->stage_len) {
            return journal_write_failed(log, n, err, errlen);
        }
        (void)sync_file_range(log->wal_fd, (off_t)log->wal_len, (off_t)log->stage_len,
                              SYNC_FILE_RANGE_WRITE);
    }
    struct evlog_frontier before = log->tree;
    size_t bundle_before = log->bundle_len;
    const uint8_t *p = log->stage + BATCH_HDR;
    for (uint32_t i = 0; i < log->staged; i++) {
        size_t el = (size_t)p[0] << 8 | p[1];
        if (tree_add(log, p, el) != 0) {
            batch_rollback(log, &before, bundle_before);
            (void)journal_write_failed(log, 0, err, errlen);
            return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
        }
        p += 2 + el;
    }
    uint8_t *t = log->stage + log->stage_len;
    /* a 4-byte magic in a binary commit trailer, deliberately without NUL */
    memcpy(t, "CMIT", 4); /* NOLINT(bugprone-not-null-terminated-result) */
    be_put32(t + 4, 0);
    be_put64(t + 8, log->tree.size);
    evlog_frontier_root(&log->tree, t + 16);
    size_t total = log->stage_len + BATCH_TRL;
    if (overlap) {
        n = pwrite(log->wal_fd, t, BATCH_TRL, (off_t)(log->wal_len + log->stage_len)) == BATCH_TRL
                ? (ssize_t)total
                : -1;
    } else {
        n = pwrite(log->wal_fd, log->stage, total, (off_t)log->wal_len);
    }
    if (n != (ssize_t)total) {
        batch_rollback(log, &before, bundle_before);
        return journal_write_failed(log, n, err, errlen);
    }
    if (fdatasync(log->wal_fd) != 0) {
        log->broken = true;
        return err_set(err, errlen, "journal fdatasync failed: %s", strerror(errno)), EVLOG_EIO;
    }
    log->wal_len += total;
    /* Readers trust only bytes below the durable length, set after the fdatasync. */
    if (set_durable_len(log) != 0) {
        log->broken = true;
        return err_set(err, errlen, "journal header write failed: %s", strerror(errno)), EVLOG_EIO;
    }
    log->staged = 0;
    log->stage_len = BATCH_HDR;
    shrink_after_burst(&log->stage, &log->stage_cap, total);
    return tw_submit(log, &log->pending, err, errlen);
}

/* A tile writer failure not reported yet (each is reported once; it keeps retrying). */
static int tile_writer_error(struct evlog *log, char *err, size_t errlen)
{
    struct tile_writer *tw = &log->tw;
    int rc = 0;
    pthread_mutex_lock(&tw->mu);
    if (tw->err != 0 && tw->err_seq != log->err_seq_seen) {
        log->err_seq_seen = tw->err_seq;
        rc = tw->err;
        err_set(err, errlen, "tile writer (retrying): %s", tw->msg);
    }
    pthread_mutex_unlock(&tw->mu);
    return rc;
}

int evlog_checkpoint(struct evlog *log, uint64_t now_ms, char *err, size_t errlen)
{
    int rc = evlog_commit(log, err, errlen);
    if (rc != 0) {
        return rc;
    }
    int published = 0;
    if (log->tree.size != log->cp_size) {
        rc = publish_checkpoint(log, now_ms, err, errlen);
        if (rc != 0) {
            return rc;
        }
        published = 1;
    }
    rc = tw_wait_idle(log, err, errlen);
    return rc != 0 ? rc : published;
}

static int maybe_publish(struct evlog *log, uint64_t now_ms, char *err, size_t errlen);

int evlog_maybe_checkpoint(struct evlog *log, uint64_t now_ms, char *err, size_t errlen)
{
    int rc = evlog_commit(log, err, errlen);
    if (rc != 0) {
        return rc;
    }
    /* Records other processes spooled (access, erasure): appended by whoever writes the log. */
    char spool_err[512];
    int spooled = access_spool_drain(log, log->state, &log->spool, now_ms ? now_ms : 1, spool_err,
                                     sizeof spool_err);
    rc = tile_writer_error(log, err, errlen);
    if (rc == 0) {
        rc = maybe_publish(log, now_ms, err, errlen);
    }
    if (rc >= 0 && spooled < 0) {
        err_set(err, errlen, "%s", spool_err);
        return spooled;
    }
    return rc;
}

/* The checkpoint policy of evlog_maybe_checkpoint, once everything is committed. */
static int maybe_publish(struct evlog *log, uint64_t now_ms, char *err, size_t errlen)
{
    int rc;
    if (!log->cp_time_set) {
        log->cp_time_ms = now_ms;
        log->cp_time_set = true;
    }
    uint64_t pending = log->tree.size - log->cp_size;
    if (pending == 0 || (pending < log->cp_entries && now_ms - log->cp_time_ms < log->cp_ms)) {
        return 0;
    }
    pthread_mutex_lock(&log->tw.mu);
    bool behind = log->tw.published != log->cp_size;
    pthread_mutex_unlock(&log->tw.mu);
    if (behind) {
        return 0; /* the previous one is still being written: the next one will cover these */
    }
    rc = publish_checkpoint(log, now_ms, err, errlen);
    return rc != 0 ? rc : 1;
}

uint64_t evlog_size(const struct evlog *log)
{
    return log->tree.size;
}

uint64_t evlog_staged(const struct evlog *log)
{
    return log->staged;
}

void evlog_root(const struct evlog *log, uint8_t out[EVLOG_HASH_SIZE])
{
    evlog_frontier_root(&log->tree, out);
}

int evlog_close(struct evlog *log, char *err, size_t errlen)
{
    if (log == NULL) {
        return 0;
    }
    int rc = 0;
    if (!log->broken) {
        /* What was spooled up to now goes in before the last checkpoint. A failure here leaves
         * the files in the spool for the next writer; it is no reason to fail the close. */
        char spool_err[512];
        (void)access_spool_drain(log, log->state, &log->spool, 0, spool_err, sizeof spool_err);
        rc = evlog_checkpoint(log, log->cp_time_ms, err, errlen);
        if (rc > 0) {
            rc = 0;
        }
    }
    log_free(log);
    return rc;
}

/* ---- reader ------------------------------------------------------------------------------- */

struct evlog_reader {
    int fd;
    char path[EVLOG_PATH_MAX + 32];
    char state[EVLOG_PATH_MAX];
    struct seal_keyring *seal; /* opened at the first sealed entry */
    bool seal_failed;          /* no keyring here: sealed entries are handed out as they are */
    int seal_state;            /* of the last entry returned */
    uint8_t opened[EVLOG_SEAL_BUF];
    uint64_t off;  /* journal offset of the next batch */
    uint64_t next; /* index of the next entry to return */
    uint8_t *buf;  /* current batch */
    size_t cap;
    size_t pos, end;     /* payload cursor within buf */
    uint64_t batch_next; /* index of the entry at pos */
    uint32_t left;       /* entries left in the current batch */
};

int evlog_reader_open(struct evlog_reader **out, const char *state_dir, uint64_t start_index,
                      char *err, size_t errlen)
{
    struct evlog_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    snprintf(r->path, sizeof r->path, "%s/journal/wal", state_dir);
    snprintf(r->state, sizeof r->state, "%s", state_dir);
    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int rc = sys_err(err, errlen, "open", r->path);
        free(r);
        return rc;
    }
    r->off = WAL_HDR;
    r->next = start_index;
    *out = r;
    return 0;
}

void evlog_reader_close(struct evlog_reader *r)
{
    if (r != NULL) {
        close(r->fd);
        free(r->buf);
        seal_keyring_free(r->seal);
        OPENSSL_cleanse(r->opened, sizeof r->opened);
        free(r);
    }
}

int evlog_reader_seal_state(const struct evlog_reader *r)
{
    return r->seal_state;
}

/* A sealed entry is opened with the state directory's epoch keys (seal.h); one that cannot be
 * (key erased, or not readable by this user) is handed out as it is. A sealed entry whose seal
 * does not open with its own key is damage: an error naming the entry. */
static int reader_open_sealed(struct evlog_reader *r, const uint8_t **entry, size_t *len,
                              uint64_t idx, char *err, size_t errlen)
{
    uint32_t epoch = 0;
    uint64_t t = 0;
    r->seal_state = SEAL_PLAIN;
    if (*len >= EVENT_RECORD_MAX || seal_inspect(*entry, *len, &epoch, &t) != 1) {
        return 1;
    }
    if (r->seal == NULL && !r->seal_failed &&
        seal_keyring_open(&r->seal, r->state, false, 0, NULL, 0) != 0) {
        r->seal_failed = true;
    }
    if (r->seal == NULL) {
        r->seal_state = SEAL_NO_KEY;
        return 1;
    }
    size_t olen = 0;
    char why[256];
    int st =
        seal_open(r->seal, idx, *entry, *len, r->opened, sizeof r->opened, &olen, why, sizeof why);
    if (st < 0) {
        return err_set(err, errlen, "%s: entry %llu: %s", r->path, (unsigned long long)idx, why),
               EVLOG_ECORRUPT;
    }
    r->seal_state = st;
    *entry = r->opened;
    *len = olen;
    return 1;
}

int evlog_reader_next(struct evlog_reader *r, const uint8_t **entry, size_t *len, uint64_t *index,
                      char *err, size_t errlen)
{
    for (;;) {
        while (r->left > 0) {
            size_t el = (size_t)r->buf[r->pos] << 8 | r->buf[r->pos + 1];
            const uint8_t *e = r->buf + r->pos + 2;
            uint64_t idx = r->batch_next;
            r->pos += 2 + el;
            r->batch_next++;
            r->left--;
            if (idx >= r->next) {
                r->next = idx + 1;
                *entry = e;
                *len = el;
                *index = idx;
                return reader_open_sealed(r, entry, len, idx, err, errlen);
            }
        }
        uint8_t h[WAL_HDR];
        if (pread(r->fd, h, WAL_HDR, 0) != WAL_HDR || memcmp(h, WAL_MAGIC, 8) != 0) {
            return err_set(err, errlen, "%s: not a sinkd journal", r->path), EVLOG_ECORRUPT;
        }
        uint64_t durable = be_get64(h + 8);
        if (r->off + BATCH_HDR > durable) {
            return 0;
        }
        uint8_t bh[BATCH_HDR];
        if (pread(r->fd, bh, BATCH_HDR, (off_t)r->off) != BATCH_HDR) {
            return sys_err(err, errlen, "read", r->path);
        }
        uint32_t count = be_get32(bh + 4);
        uint64_t first = be_get64(bh + 8);
        uint64_t plen = be_get64(bh + 16);
        /* plen is bounded before the sum: a damaged length near UINT64_MAX would wrap total to
         * 0, which evlog_journal_parse_batch answers with 0 ("need more") and no batch. */
        uint64_t total =
            plen <= INT32_MAX - BATCH_HDR - BATCH_TRL ? BATCH_HDR + plen + BATCH_TRL : UINT64_MAX;
        if (memcmp(bh, "BTCH", 4) != 0 || total > INT32_MAX || r->off + total > durable) {
            return err_set(err, errlen, "%s: bad batch at byte %llu", r->path,
                           (unsigned long long)r->off),
                   EVLOG_ECORRUPT;
        }
        if (first + count <= r->next) {
            r->off += total; /* skip whole batches before the start index */
            continue;
        }
        if (total > r->cap) {
            uint8_t *b = realloc(r->buf, total);
            if (b == NULL) {
                return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
            }
            r->buf = b;
            r->cap = total;
        } else {
            shrink_after_burst(&r->buf, &r->cap, total);
        }
        if (pread(r->fd, r->buf, total, (off_t)r->off) != (ssize_t)total) {
            return sys_err(err, errlen, "read", r->path);
        }
        uint64_t f2;
        uint32_t c2;
        if (evlog_journal_parse_batch(r->buf, total, &f2, &c2) != (int)total) {
            return err_set(err, errlen, "%s: malformed batch at byte %llu", r->path,
                           (unsigned long long)r->off),
                   EVLOG_ECORRUPT;
        }
        r->off += total;
        r->pos = BATCH_HDR;
        r->batch_next = f2;
        r->left = c2;
    }
}
