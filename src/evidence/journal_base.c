/* journal_base.c -- the journal base and compaction. The journal is the durable store only until
 * the C2SP files holding the same bytes (full entry bundles and hash tiles) are on disk under a
 * published checkpoint; then its prefix is punched out and readers and recovery take those
 * entries from the bundles, so a six-month log stores each entry once, and opening it re-hashes
 * only the journal's live tail. Design: docs/evidence.md "Journal compaction". */
/* _GNU_SOURCE: fallocate(2) and its FALLOC_FL_* flags. */
#define _GNU_SOURCE
#include "evidence/log_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evidence/files.h"
#include "util/bigendian.h"
#include "util/err.h"

/* journal/base: "SNKDBAS1" index:u64 offset:u64 (BE), then the frontier's hashes (one per set
 * bit of index, lowest bit first), then for each level L = 1..7 the (index >> 8L) % 256 hashes
 * of the level-L tile being filled, then SHA-256 of everything before it. */
#define BASE_MAGIC "SNKDBAS1"
#define BASE_HDR 24
#define BASE_NAME "base"
/* Held shared by whoever copies a live state directory (docs/operations.md "Backups"): while it
 * is, compaction waits, so a copy's journal never starts above the bundles copied before it. */
#define COMPACT_LOCK "compact.lock"
#define BASE_MAX                                                                                   \
    (BASE_HDR + 64 * EVLOG_HASH_SIZE + EVLOG_BASE_LEVELS * EVLOG_TILE_WIDTH * EVLOG_HASH_SIZE +    \
     EVLOG_HASH_SIZE)

static size_t upper_count(uint64_t index, int level)
{
    return (size_t)((index >> (EVLOG_TILE_HEIGHT * level)) % EVLOG_TILE_WIDTH);
}

static size_t base_len(uint64_t index)
{
    size_t n = BASE_HDR + (size_t)__builtin_popcountll(index) * EVLOG_HASH_SIZE + EVLOG_HASH_SIZE;
    for (int L = 1; L <= EVLOG_BASE_LEVELS; L++) {
        n += upper_count(index, L) * EVLOG_HASH_SIZE;
    }
    return n;
}

static void sha256(const uint8_t *p, size_t n, uint8_t out[EVLOG_HASH_SIZE])
{
    unsigned int len = 0;
    EVP_Digest(p, n, out, &len, EVP_sha256(), NULL);
}

/* out must hold BASE_MAX bytes; returns the length. */
static size_t base_format(const struct evlog_journal_base *b, uint8_t *out)
{
    /* an 8-byte magic in a binary header, deliberately without NUL */
    memcpy(out, BASE_MAGIC, 8); /* NOLINT(bugprone-not-null-terminated-result) */
    be_put64(out + 8, b->index);
    be_put64(out + 16, b->offset);
    size_t n = BASE_HDR;
    for (unsigned i = 0; i < 64; i++) {
        if ((b->index >> i) & 1) {
            memcpy(out + n, b->tree.hash[i], EVLOG_HASH_SIZE);
            n += EVLOG_HASH_SIZE;
        }
    }
    for (int L = 1; L <= EVLOG_BASE_LEVELS; L++) {
        size_t c = upper_count(b->index, L) * EVLOG_HASH_SIZE;
        memcpy(out + n, b->upper[L - 1], c);
        n += c;
    }
    sha256(out, n, out + n);
    return n + EVLOG_HASH_SIZE;
}

int evlog_journal_base_parse(const uint8_t *buf, size_t len, struct evlog_journal_base *out,
                             char *err, size_t errlen)
{
    if (len < BASE_HDR + EVLOG_HASH_SIZE || memcmp(buf, BASE_MAGIC, 8) != 0) {
        return err_set(err, errlen, "not a journal base (bad magic or %zu bytes)", len),
               EVLOG_ECORRUPT;
    }
    uint64_t index = be_get64(buf + 8), offset = be_get64(buf + 16);
    if (index == 0 || index % EVLOG_TILE_WIDTH != 0) {
        return err_set(err, errlen, "base index %llu is not on an entry bundle's edge",
                       (unsigned long long)index),
               EVLOG_ECORRUPT;
    }
    if (offset < WAL_HDR) {
        return err_set(err, errlen, "base offset %llu is inside the journal header",
                       (unsigned long long)offset),
               EVLOG_ECORRUPT;
    }
    size_t want = base_len(index);
    if (len != want) {
        return err_set(err, errlen, "%zu bytes, a base at entry %llu has %zu", len,
                       (unsigned long long)index, want),
               EVLOG_ECORRUPT;
    }
    uint8_t sum[EVLOG_HASH_SIZE];
    sha256(buf, len - EVLOG_HASH_SIZE, sum);
    if (memcmp(sum, buf + len - EVLOG_HASH_SIZE, EVLOG_HASH_SIZE) != 0) {
        return err_set(err, errlen, "checksum mismatch (the file is damaged)"), EVLOG_ECORRUPT;
    }
    memset(out, 0, sizeof *out);
    out->index = index;
    out->offset = offset;
    out->tree.size = index;
    size_t n = BASE_HDR;
    for (unsigned i = 0; i < 64; i++) {
        if ((index >> i) & 1) {
            memcpy(out->tree.hash[i], buf + n, EVLOG_HASH_SIZE);
            n += EVLOG_HASH_SIZE;
        }
    }
    for (int L = 1; L <= EVLOG_BASE_LEVELS; L++) {
        size_t c = upper_count(index, L) * EVLOG_HASH_SIZE;
        memcpy(out->upper[L - 1], buf + n, c);
        n += c;
    }
    return 0;
}

int evlog_read_whole(const char *path, size_t max, uint8_t **out, size_t *len, char *err,
                     size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? 1 : evlog_sys_err(err, errlen, "open", path);
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int rc = evlog_sys_err(err, errlen, "stat", path);
        close(fd);
        return rc;
    }
    if ((uint64_t)st.st_size > max) {
        close(fd);
        return err_set(err, errlen, "%s: %lld bytes, more than %zu", path, (long long)st.st_size,
                       max),
               EVLOG_ECORRUPT;
    }
    size_t want = (size_t)st.st_size;
    uint8_t *buf = malloc(want + 1);
    if (buf == NULL) {
        close(fd);
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    size_t got = 0;
    while (got < want) {
        ssize_t n = pread(fd, buf + got, want - got, (off_t)got);
        if (n <= 0) {
            int rc = n < 0 ? evlog_sys_err(err, errlen, "read", path)
                           : (err_set(err, errlen, "%s: shorter than it was", path), EVLOG_EIO);
            free(buf);
            close(fd);
            return rc;
        }
        got += (size_t)n;
    }
    close(fd);
    *out = buf;
    *len = want;
    return 0;
}

int evlog_base_read(const char *state, struct evlog_journal_base **out, char *err, size_t errlen)
{
    char dir[EVLOG_PATH_MAX + 16], path[EVLOG_PATH_MAX + 32];
    snprintf(dir, sizeof dir, "%s/journal", state);
    snprintf(path, sizeof path, "%s/%s", dir, BASE_NAME);
    uint8_t *buf = NULL;
    size_t len = 0;
    char why[256] = "";
    int rc = evlog_read_whole(path, BASE_MAX, &buf, &len, err, errlen);
    if (rc != 0) {
        return rc;
    }
    struct evlog_journal_base *b = malloc(sizeof *b);
    if (b == NULL) {
        free(buf);
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    rc = evlog_journal_base_parse(buf, len, b, why, sizeof why);
    free(buf);
    if (rc != 0) {
        free(b);
        return err_set(err, errlen, "%s/%s: %s", dir, BASE_NAME, why), rc;
    }
    *out = b;
    return 0;
}

int evlog_mark_batch(struct evlog *log, uint64_t first, uint32_t count, uint64_t off)
{
    uint64_t edge = (first + EVLOG_TILE_WIDTH - 1) / EVLOG_TILE_WIDTH * EVLOG_TILE_WIDTH;
    if (count == 0 || edge >= first + count || log->compact_bytes == UINT64_MAX) {
        return 0;
    }
    if (log->nmarks == log->marks_cap) {
        size_t cap = log->marks_cap ? log->marks_cap * 2 : 64;
        struct batch_mark *m = realloc(log->marks, cap * sizeof *m);
        if (m == NULL) {
            return EVLOG_ENOMEM;
        }
        log->marks = m;
        log->marks_cap = cap;
    }
    log->marks[log->nmarks++] = (struct batch_mark){.first = first, .count = count, .off = off};
    return 0;
}

/* The tree of size index and the partly filled upper tiles at that size, from the hash tiles on
 * disk under the checkpoint of size `published`. */
static int base_from_tiles(struct evlog *log, uint64_t published, struct evlog_journal_base *b,
                           char *err, size_t errlen)
{
    struct evlog_tile_reader *tr = NULL;
    int rc = evlog_tile_reader_open(&tr, log->logdir, published, err, errlen);
    if (rc != 0) {
        return rc;
    }
    uint64_t start = 0;
    evlog_frontier_init(&b->tree);
    b->tree.size = b->index;
    for (int i = 63; i >= 0 && rc == 0; i--) {
        if ((b->index >> i) & 1) {
            rc = evlog_tile_reader_hash(tr, (unsigned)i, start >> i, b->tree.hash[i], err, errlen);
            start += UINT64_C(1) << i;
        }
    }
    for (int L = 1; L <= EVLOG_BASE_LEVELS && rc == 0; L++) {
        size_t c = upper_count(b->index, L);
        uint64_t k0 = (b->index >> (EVLOG_TILE_HEIGHT * L)) - c;
        for (size_t j = 0; j < c && rc == 0; j++) {
            rc = evlog_tile_reader_hash(tr, (unsigned)(EVLOG_TILE_HEIGHT * L), k0 + j,
                                        b->upper[L - 1][j], err, errlen);
        }
    }
    evlog_tile_reader_close(tr);
    return rc;
}

/* Recovery will start from b at the batch of mark m: check now, while the journal still holds
 * everything, that the entries of that batch from b->index on lead from b's tree to the root the
 * batch's commit record names. */
static int base_check(struct evlog *log, const struct evlog_journal_base *b,
                      const struct batch_mark *m, char *err, size_t errlen)
{
    uint8_t h[BATCH_HDR];
    if (pread(log->wal_fd, h, BATCH_HDR, (off_t)m->off) != BATCH_HDR) {
        return err_set(err, errlen, "journal: cannot read the batch at byte %llu",
                       (unsigned long long)m->off),
               EVLOG_EIO;
    }
    uint64_t plen = be_get64(h + 16);
    if (plen > INT32_MAX - BATCH_HDR - BATCH_TRL) {
        return err_set(err, errlen, "journal: bad batch at byte %llu", (unsigned long long)m->off),
               EVLOG_ECORRUPT;
    }
    size_t total = BATCH_HDR + (size_t)plen + BATCH_TRL;
    uint8_t *buf = malloc(total);
    if (buf == NULL) {
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    uint64_t first = 0;
    uint32_t count = 0;
    int rc = 0;
    if (pread(log->wal_fd, buf, total, (off_t)m->off) != (ssize_t)total ||
        evlog_journal_parse_batch(buf, total, &first, &count) != (int)total || first != m->first ||
        count != m->count) {
        rc = EVLOG_ECORRUPT;
        err_set(err, errlen, "journal: the batch at byte %llu is not the one committed there",
                (unsigned long long)m->off);
    }
    struct evlog_frontier f = b->tree;
    const uint8_t *p = buf + BATCH_HDR;
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        size_t el = (size_t)p[0] << 8 | p[1];
        if (first + i >= b->index) {
            uint8_t leaf[EVLOG_HASH_SIZE];
            evlog_hasher_leaf(log->hasher, p + 2, el, leaf);
            evlog_frontier_push(&f, log->hasher, leaf, NULL, NULL);
        }
        p += 2 + el;
    }
    uint8_t root[EVLOG_HASH_SIZE];
    evlog_frontier_root(&f, root);
    if (rc == 0 && memcmp(root, buf + total - EVLOG_HASH_SIZE, EVLOG_HASH_SIZE) != 0) {
        rc = EVLOG_ECORRUPT;
        err_set(err, errlen,
                "the hash tiles at entry %llu do not lead to the commit root of the journal "
                "batch at byte %llu: not compacted",
                (unsigned long long)b->index, (unsigned long long)m->off);
    }
    free(buf);
    return rc;
}

int evlog_compact_lock_open(struct evlog *log, char *err, size_t errlen)
{
    if (log->compact_lock_fd < 0) {
        char path[EVLOG_PATH_MAX + 32];
        snprintf(path, sizeof path, "%s/journal/%s", log->state, COMPACT_LOCK);
        /* read-only: the lock works on it, and a copy run as root may have made the file */
        log->compact_lock_fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
        if (log->compact_lock_fd < 0) {
            return evlog_sys_err(err, errlen, "open", path);
        }
    }
    return 0;
}

/* Takes the compaction lock without waiting: 1 taken, 0 a copy holds it, negative on error. */
static int compact_lock(struct evlog *log, char *err, size_t errlen)
{
    int rc = evlog_compact_lock_open(log, err, errlen);
    if (rc != 0) {
        return rc;
    }
    if (flock(log->compact_lock_fd, LOCK_EX | LOCK_NB) != 0) {
        return errno == EWOULDBLOCK
                   ? 0
                   : (err_set(err, errlen, "flock journal/%s: %s", COMPACT_LOCK, strerror(errno)),
                      EVLOG_EIO);
    }
    return 1;
}

int evlog_base_bundles_present(const struct evlog *log, char *err, size_t errlen)
{
    if (log->base_index == 0) {
        return 0;
    }
    uint64_t n = log->base_index / EVLOG_TILE_WIDTH - 1;
    char rel[160], path[EVLOG_PATH_MAX + 200];
    struct stat st;
    for (int level = EVLOG_TILE_ENTRIES; level <= 0; level++) {
        evlog_tile_path(level, n, EVLOG_TILE_WIDTH, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", log->logdir, rel);
        if (stat(path, &st) != 0) {
            return err_set(err, errlen,
                           "%s is missing, but the journal starts above it (journal/base: entry "
                           "%llu): the entries below the base are only in the bundles. A copy of "
                           "a running node taken without holding journal/%s? (docs/operations.md "
                           "\"Backups\"): refusing to open",
                           path, (unsigned long long)log->base_index, COMPACT_LOCK),
                   EVLOG_ECORRUPT;
        }
    }
    return 0;
}

static int compact_locked(struct evlog *log, uint64_t published, uint64_t index, size_t i,
                          char *err, size_t errlen);

int evlog_compact(struct evlog *log, uint64_t published, char *err, size_t errlen)
{
    uint64_t index = published / EVLOG_TILE_WIDTH * EVLOG_TILE_WIDTH;
    if (log->compact_bytes == UINT64_MAX || index <= log->base_index ||
        index == log->compact_failed_at) {
        return 0;
    }
    size_t i = log->nmarks;
    while (i > 0 && log->marks[i - 1].first > index) {
        i--;
    }
    if (i == 0) {
        return 0;
    }
    struct batch_mark m = log->marks[i - 1];
    if (index >= m.first + m.count || m.off - log->base_off < log->compact_bytes) {
        return 0;
    }
    int locked = compact_lock(log, err, errlen);
    if (locked <= 0) {
        return locked; /* a copy of the state directory is being taken: later */
    }
    int rc = compact_locked(log, published, index, i, err, errlen);
    (void)flock(log->compact_lock_fd, LOCK_UN);
    return rc;
}

/* evlog_compact once the lock is held; marks[i - 1] is the batch that holds entry `index`. */
static int compact_locked(struct evlog *log, uint64_t published, uint64_t index, size_t i,
                          char *err, size_t errlen)
{
    struct batch_mark m = log->marks[i - 1];
    struct evlog_journal_base *b = calloc(1, sizeof *b);
    uint8_t *buf = malloc(BASE_MAX);
    int rc = b == NULL || buf == NULL ? (err_set(err, errlen, "out of memory"), EVLOG_ENOMEM) : 0;
    if (rc == 0) {
        b->index = index;
        b->offset = m.off;
        rc = base_from_tiles(log, published, b, err, errlen);
    }
    if (rc == 0) {
        rc = base_check(log, b, &m, err, errlen);
    }
    if (rc == 0) {
        char dir[EVLOG_PATH_MAX + 16];
        snprintf(dir, sizeof dir, "%s/journal", log->state);
        rc = evfile_write_durable(dir, BASE_NAME, buf, base_format(b, buf), 1, err, errlen);
    }
    free(b);
    free(buf);
    if (rc != 0) {
        log->compact_failed_at = index;
        return rc;
    }
    log->base_index = index;
    log->base_off = m.off;
    memmove(log->marks, log->marks + (i - 1), (log->nmarks - (i - 1)) * sizeof *log->marks);
    log->nmarks -= i - 1;
    /* The base is durable: the bytes before it are no longer read by anyone (readers that were
     * inside them find the hole and move to the entry bundles). Punching from the journal header
     * on each time is idempotent and covers a punch an earlier crash left undone. */
    if (!log->punch_unsupported &&
        fallocate(log->wal_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, WAL_HDR,
                  (off_t)(m.off - WAL_HDR)) != 0) {
        if (errno == EOPNOTSUPP || errno == ENOSYS) {
            log->punch_unsupported = true;
            return err_set(err, errlen,
                           "journal compaction: this file system cannot punch holes, so the "
                           "journal keeps its bytes (the base still bounds recovery)"),
                   EVLOG_EIO;
        }
        return err_set(err, errlen, "journal compaction: punching the journal: %s",
                       strerror(errno)),
               EVLOG_EIO;
    }
    return 1;
}
