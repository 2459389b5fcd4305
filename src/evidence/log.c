/* log.c -- the append side of the evidence log: journal with group commit, recovery and
 * checkpoint signing (the tile writer is tile_writer.c, the journal reader log_reader.c). Design
 * in docs/evidence.md. */
/* _GNU_SOURCE: sync_file_range(2), which starts the journal's writeback early. */
#define _GNU_SOURCE
#include "evidence/log_internal.h"

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

int evlog_sys_err(char *err, size_t errlen, const char *what, const char *path)
{
    err_set(err, errlen, "%s %s: %s", what, path, strerror(errno));
    return EVLOG_EIO;
}

int evlog_mkdirs(const char *path)
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

int evlog_fsync_dir(const char *dir)
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
void evlog_shrink_after_burst(uint8_t **buf, size_t *cap, size_t used)
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

/* Moves the completed tile (or bundle) at `level` into a job on the batch's pending list and
 * starts a fresh buffer; nothing is copied. */
static void emit_full(struct evlog *log, int level, uint64_t n)
{
    bool bundle = level < 0;
    size_t cap = bundle ? log->bundle_cap : TILE_BYTES;
    struct tile_job *j = evlog_job_new(JOB_TILE, level, n, EVLOG_TILE_WIDTH);
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
    evlog_jobs_push(&log->pending, j);
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
        int slot = evlog_tile_slot(j->level);
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
    evlog_jobs_free(&log->pending);
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
/* Every checkpoint at or above min_size (the journal base: recovery checks those against the
 * tree it rebuilds; older ones were checked when the base was made, and `sinkd verify` checks them
 * all), and the latest, each opened with the log's key. */
static int load_checkpoints(struct evlog *log, uint64_t min_size, struct cp_entry **out, size_t *n,
                            char *err, size_t errlen)
{
    char dir[EVLOG_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/checkpoints", log->logdir);
    DIR *d = opendir(dir);
    if (d == NULL) {
        return evlog_sys_err(err, errlen, "open", dir);
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
            uint64_t named = 0;
            if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp") != NULL ||
                (evfile_parse_sized_name(de->d_name, "", &named) && named < min_size)) {
                continue;
            }
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        }
        char note[EVLOG_NOTE_MAX];
        size_t len;
        struct evlog_checkpoint cp;
        char e[256];
        if (read_file(path, note, sizeof note, &len) != 0) {
            rc = evlog_sys_err(err, errlen, "read", path);
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
            struct tile_job *j = evlog_job_new(JOB_TILE, b == 0 ? level : EVLOG_TILE_ENTRIES, n, w);
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
            evlog_jobs_push(&jobs, j);
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
    struct tile_job *j = rc == 0 ? evlog_job_new(JOB_CHECKPOINT, 0, 0, 0) : NULL;
    if (rc == 0 && (j == NULL || (j->data = malloc((size_t)nl)) == NULL)) {
        free(j);
        rc = EVLOG_ENOMEM;
    }
    if (rc != 0) {
        if (rc == EVLOG_ENOMEM) {
            err_set(err, errlen, "out of memory");
        }
        evlog_jobs_free(&jobs);
        return rc;
    }
    memcpy(j->data, note, (size_t)nl);
    j->len = j->cap = (size_t)nl;
    j->size = size;
    evlog_jobs_push(&jobs, j);
    rc = evlog_tw_submit(log, &jobs, err, errlen);
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

/* The recovered tree must have the root a published checkpoint of its size signed. */
static int check_checkpoint_root(const struct evlog *log, const struct cp_entry *cp, char *err,
                                 size_t errlen)
{
    uint8_t root[EVLOG_HASH_SIZE];
    evlog_frontier_root(&log->tree, root);
    if (memcmp(root, cp->root, EVLOG_HASH_SIZE) != 0) {
        err_set(err, errlen,
                "published checkpoint %llu does not match the journal's tree: refusing to open "
                "(log/checkpoints/%llu)",
                (unsigned long long)cp->size, (unsigned long long)cp->size);
        return EVLOG_ECORRUPT;
    }
    return 0;
}

static int replay(struct evlog *log, const struct cp_entry *cps, size_t ncp,
                  const struct evlog_journal_base *base, struct evlog_recovery *rec, char *err,
                  size_t errlen)
{
    char wal[EVLOG_PATH_MAX + 32];
    snprintf(wal, sizeof wal, "%s/journal/wal", log->state);
    struct stat st;
    if (fstat(log->wal_fd, &st) != 0) {
        return evlog_sys_err(err, errlen, "stat", wal);
    }
    uint64_t flen = (uint64_t)st.st_size;
    if (flen < WAL_HDR) {
        uint8_t h[WAL_HDR] = WAL_MAGIC;
        be_put64(h + 8, WAL_HDR);
        if (pwrite(log->wal_fd, h, WAL_HDR, 0) != WAL_HDR || ftruncate(log->wal_fd, WAL_HDR) != 0 ||
            fsync(log->wal_fd) != 0) {
            return evlog_sys_err(err, errlen, "initialise", wal);
        }
        flen = WAL_HDR;
    } else {
        uint8_t h[WAL_HDR];
        if (pread(log->wal_fd, h, WAL_HDR, 0) != WAL_HDR || memcmp(h, WAL_MAGIC, 8) != 0) {
            err_set(err, errlen, "%s: not a sinkd journal (bad magic)", wal);
            return EVLOG_ECORRUPT;
        }
    }
    /* A compacted journal starts at its base: the tree and upper tiles of that size come from
     * journal/base; entries below it are in the entry bundles (journal_base.c). */
    int rc = 0;
    uint64_t off = WAL_HDR, skip_below = 0;
    size_t next_cp = 0;
    if (base != NULL) {
        if (base->offset >= flen) {
            err_set(err, errlen,
                    "%s/journal/base starts the journal at byte %llu, beyond its end (%llu): "
                    "refusing to open",
                    log->state, (unsigned long long)base->offset, (unsigned long long)flen);
            return EVLOG_ECORRUPT;
        }
        log->tree = base->tree;
        for (int L = 1; L <= EVLOG_BASE_LEVELS; L++) {
            memcpy(log->tile[L], base->upper[L - 1], TILE_BYTES);
        }
        log->base_index = skip_below = base->index;
        log->base_off = off = base->offset;
        rec->base = base->index;
        /* Checkpoints below the base were checked when the base was made (its tree reproduced
         * the commit root of the journal's next batch); `sinkd verify` checks them all. */
        while (next_cp < ncp && cps[next_cp].size < skip_below) {
            next_cp++;
        }
    }
    size_t cap = 1 << 20;
    uint8_t *buf = malloc(cap);
    if (buf == NULL) {
        return EVLOG_ENOMEM;
    }
    bool torn = false;
    while (next_cp < ncp && cps[next_cp].size == 0) {
        next_cp++; /* the empty tree's root is checked after replay */
    }
    while (rc == 0 && next_cp < ncp && cps[next_cp].size == log->tree.size) {
        rc = check_checkpoint_root(log, &cps[next_cp++], err, errlen); /* one at the base */
    }
    while (off < flen && rc == 0) {
        size_t have = flen - off < BATCH_HDR ? (size_t)(flen - off) : BATCH_HDR;
        if (pread(log->wal_fd, buf, have, (off_t)off) != (ssize_t)have) {
            rc = evlog_sys_err(err, errlen, "read", wal);
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
                /* Zeros where a batch must start, with batches after them: a compacted journal
                 * (its start punched out) without its journal/base, or with an older one. */
                uint8_t head[BATCH_HDR];
                bool hole = have == BATCH_HDR &&
                            pread(log->wal_fd, head, BATCH_HDR, (off_t)off) == BATCH_HDR &&
                            all_zero(head, BATCH_HDR);
                if (hole) {
                    err_set(err, errlen,
                            "%s: zeros at byte %llu where a batch must start, with batches after "
                            "them: the journal was compacted but journal/base is missing or older "
                            "than it. Restore journal/base with journal/wal from the same copy "
                            "(docs/operations.md \"Backups\"): refusing to open",
                            wal, (unsigned long long)off);
                } else {
                    err_set(err, errlen, "%s: damaged batch header at byte %llu (not a torn tail)",
                            wal, (unsigned long long)off);
                }
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
            rc = evlog_sys_err(err, errlen, "read", wal);
            break;
        }
        uint64_t first = 0;
        uint32_t count = 0;
        int n = evlog_journal_parse_batch(buf, total, &first, &count);
        bool last = off + total == flen;
        bool in_place = skip_below > 0 ? first <= log->tree.size && log->tree.size - first < count
                                       : first == log->tree.size;
        if (n <= 0 || !in_place) {
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
            if (first + i >= skip_below) { /* the base's batch: entries below it are in bundles */
                rc = tree_add(log, p, el);
            }
            p += 2 + el;
            while (rc == 0 && next_cp < ncp && cps[next_cp].size == log->tree.size) {
                rc = check_checkpoint_root(log, &cps[next_cp++], err, errlen);
            }
        }
        skip_below = 0;
        if (rc != 0) {
            evlog_jobs_free(&log->pending);
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
                evlog_jobs_free(&log->pending);
                break;
            }
            batch_rollback(log, &before, bundle_before);
            torn = true;
            break;
        }
        /* The batch is part of the tree: (re)write its full tiles now, before the tile writer
         * starts, so the files match the journal when open returns. */
        rc = evlog_tw_submit(log, &log->pending, err, errlen);
        if (rc == 0) {
            rc = evlog_mark_batch(log, first, count, off);
        }
        off += total;
    }
    free(buf);
    if (rc != 0) {
        return rc;
    }
    if (torn) {
        if (ftruncate(log->wal_fd, (off_t)off) != 0 || fsync(log->wal_fd) != 0) {
            return evlog_sys_err(err, errlen, "truncate", wal);
        }
        rec->cut_bytes = flen - off;
    }
    if (ncp > 0 && cps[ncp - 1].size > log->tree.size) {
        err_set(err, errlen,
                "checkpoint %llu was published but the journal holds only %llu durable "
                "entries: refusing to open (a copy whose journal was taken before its log/? "
                "docs/operations.md \"Backups\")",
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
        return evlog_sys_err(err, errlen, "write", wal);
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
    evlog_tw_stop(log);
    if (log->wal_fd >= 0) {
        close(log->wal_fd);
    }
    if (log->log_fd >= 0) {
        close(log->log_fd);
    }
    if (log->compact_lock_fd >= 0) {
        close(log->compact_lock_fd);
    }
    evlog_hasher_free(log->hasher);
    evlog_jobs_free(&log->pending);
    for (int i = 0; i < TILE_LEVELS; i++) {
        free(log->tile[i]);
    }
    free(log->bundle);
    free(log->stage);
    free(log->marks);
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
    log->compact_lock_fd = -1;
    pthread_mutex_init(&log->tw.mu, NULL);
    pthread_cond_init(&log->tw.work, NULL);
    pthread_cond_init(&log->tw.idle, NULL);
    for (int i = 0; i < TILE_SLOTS; i++) {
        log->tw.partials_of[i] = PARTIALS_UNKNOWN;
    }
    int rc = 0;
    struct cp_entry *cps = NULL;
    size_t ncp = 0;
    struct evlog_journal_base *base = NULL;
    if ((size_t)snprintf(log->state, sizeof log->state, "%s", state_dir) >= 3000) {
        err_set(err, errlen, "state directory path too long");
        rc = EVLOG_EINVAL;
        goto fail;
    }
    snprintf(log->logdir, sizeof log->logdir, "%s/log", state_dir);
    log->cp_entries = opt->checkpoint_entries ? opt->checkpoint_entries : DEFAULT_CP_ENTRIES;
    log->cp_ms = opt->checkpoint_ms ? opt->checkpoint_ms : DEFAULT_CP_MS;
    log->retention.keep_s = opt->checkpoint_keep_s;
    log->compact_bytes = opt->compact_bytes ? opt->compact_bytes : DEFAULT_COMPACT_BYTES;
    log->base_off = WAL_HDR;
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
        if (evlog_mkdirs(d) != 0) {
            rc = evlog_sys_err(err, errlen, "mkdir", d);
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
        rc = evlog_sys_err(err, errlen, "open", log->wal_fd < 0 ? wal : log->logdir);
        goto fail;
    }
    /* One writer per journal, whoever opens it: a second one (another process, or this one by
     * mistake) would interleave batches and damage the log for good (issue 19 #3). Commands
     * take DIR/log.lock first, which names the holder; this is the last line of defence. */
    if (flock(log->wal_fd, LOCK_EX | LOCK_NB) != 0) {
        rc = errno == EWOULDBLOCK
                 ? (err_set(err, errlen, "%s is open by another writer (one writer per log)", wal),
                    EVLOG_EIO)
                 : evlog_sys_err(err, errlen, "flock", wal);
        goto fail;
    }
    char jdir[EVLOG_PATH_MAX + 16];
    snprintf(jdir, sizeof jdir, "%s/journal", state_dir);
    evlog_fsync_dir(jdir);
    /* A compacted journal starts at its base (journal_base.c). */
    rc = evlog_base_read(state_dir, &base, err, errlen);
    if (rc < 0) {
        goto fail;
    }
    rc = load_checkpoints(log, base != NULL ? base->index : 0, &cps, &ncp, err, errlen);
    if (rc != 0) {
        goto fail;
    }
    log->recovering = true;
    log->rewrite_from = ncp > 0 ? cps[ncp - 1].size : 0;
    rc = replay(log, cps, ncp, base, rec, err, errlen);
    log->recovering = false;
    free(base);
    base = NULL;
    if (rc == 0) {
        rc = evlog_base_bundles_present(log, err, errlen);
    }
    if (rc == 0 && log->compact_bytes != UINT64_MAX) {
        rc = evlog_compact_lock_open(log, err, errlen); /* before any sandbox, with its owner */
    }
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
    rc = pthread_create(&log->tw.thread, NULL, evlog_tile_writer_main, log);
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
            rc = evlog_tw_wait_idle(log, err, errlen);
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
    free(base);
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
    uint64_t batch_off = log->wal_len;
    log->wal_len += total;
    /* Readers trust only bytes below the durable length, set after the fdatasync. */
    if (set_durable_len(log) != 0) {
        log->broken = true;
        return err_set(err, errlen, "journal header write failed: %s", strerror(errno)), EVLOG_EIO;
    }
    (void)evlog_mark_batch(log, first, log->staged, batch_off); /* lost: compaction waits */
    log->staged = 0;
    log->stage_len = BATCH_HDR;
    evlog_shrink_after_burst(&log->stage, &log->stage_cap, total);
    return evlog_tw_submit(log, &log->pending, err, errlen);
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
    rc = evlog_tw_wait_idle(log, err, errlen);
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
    if (rc >= 0 && spooled >= 0) {
        int pruned = evlog_cp_retention_error(log, err, errlen); /* after publishing: once */
        rc = pruned < 0 ? pruned : rc;
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
    uint64_t published = log->tw.published;
    pthread_mutex_unlock(&log->tw.mu);
    if (published != log->cp_size) {
        return 0; /* the previous one is still being written: the next one will cover these */
    }
    /* Everything the previous checkpoint names is on disk: entries in its full bundles may
     * leave the journal. */
    int compacted = evlog_compact(log, published, err, errlen);
    rc = publish_checkpoint(log, now_ms, err, errlen);
    if (rc != 0) {
        return rc;
    }
    return compacted < 0 ? compacted : 1; /* a failed compaction is reported, once per base */
}

uint64_t evlog_size(const struct evlog *log)
{
    return log->tree.size;
}

uint64_t evlog_journal_base(const struct evlog *log)
{
    return log->base_index;
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
