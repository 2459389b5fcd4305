/* log_reader.c -- the evidence log's reader: durable entries in order, from any process (sinkd
 * contacts, the registry follower), from the entry bundles below the journal base and from the
 * journal above it, opening sealed entries where their keys are here. */
#include "evidence/log_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evidence/described.h"
#include "util/bigendian.h"
#include "util/err.h"

/* ---- reader ------------------------------------------------------------------------------- */

struct evlog_reader {
    int fd;
    char path[EVLOG_PATH_MAX + 32];
    char state[EVLOG_PATH_MAX];
    struct evlog_unsealer unseal;
    int seal_state; /* of the last entry returned */
    uint64_t off;   /* journal offset of the next batch */
    uint64_t next;  /* index of the next entry to return */
    uint8_t *buf;   /* current batch */
    size_t cap;
    size_t pos, end;     /* payload cursor within buf */
    uint64_t batch_next; /* index of the entry at pos */
    uint32_t left;       /* entries left in the current batch (or entry bundle) */
    /* The journal base (journal_base.c): entries below it are read from the full entry bundles.
     * Read again when the journal shows a hole. */
    uint64_t base_index;
    struct described *described; /* evlog_reader_fill_described: on; NULL: off */
};

/* Reads journal/base again. 1 if it moved past the journal byte the reader is at (the reader
 * follows it), 0 if not, negative on error. */
static int reader_refresh_base(struct evlog_reader *r, char *err, size_t errlen)
{
    struct evlog_journal_base *b = NULL;
    int rc = evlog_base_read(r->state, &b, err, errlen);
    if (rc < 0) {
        return rc;
    }
    if (rc == 1) {
        return 0;
    }
    bool moved = b->offset > r->off;
    if (moved) {
        r->base_index = b->index;
        r->off = b->offset;
        r->left = 0;
    }
    free(b);
    return moved ? 1 : 0;
}

/* Where the last entry of a bundle ends (evlog_entry_bundle_parse's callback). */
struct bundle_end {
    const uint8_t *base;
    size_t end;
};

static int bundle_end_of(void *ctx, uint64_t index, const uint8_t *entry, size_t len)
{
    struct bundle_end *e = ctx;
    (void)index;
    e->end = (size_t)(entry - e->base) + len;
    return 0;
}

/* Loads the full entry bundle holding entry r->next into r->buf, as a batch of 256 entries
 * (its framing is the journal's). */
static int reader_load_bundle(struct evlog_reader *r, char *err, size_t errlen)
{
    uint64_t n = r->next / EVLOG_TILE_WIDTH;
    char rel[160], path[EVLOG_PATH_MAX + 200];
    evlog_tile_path(EVLOG_TILE_ENTRIES, n, EVLOG_TILE_WIDTH, rel, sizeof rel);
    snprintf(path, sizeof path, "%s/log/%s", r->state, rel);
    uint8_t *b = NULL;
    size_t len = 0;
    int rc = evlog_read_whole(path, (size_t)EVLOG_TILE_WIDTH * (2 + EVLOG_ENTRY_MAX), &b, &len, err,
                              errlen);
    if (rc != 0) {
        if (rc == 1) {
            err_set(err, errlen, "%s: missing (entries below %llu are read from the bundles)", path,
                    (unsigned long long)r->base_index);
        }
        return rc == 1 ? EVLOG_ECORRUPT : rc;
    }
    /* The bundle parser verify uses; a full bundle ends with its 256th entry. */
    struct bundle_end end = {.base = b};
    if (evlog_entry_bundle_parse(b, len, EVLOG_TILE_WIDTH, n * EVLOG_TILE_WIDTH, bundle_end_of,
                                 &end, NULL, 0) != 0 ||
        end.end != len) {
        free(b);
        return err_set(err, errlen, "%s: not %u well-framed entries", path, EVLOG_TILE_WIDTH),
               EVLOG_ECORRUPT;
    }
    free(r->buf);
    r->buf = b;
    r->cap = len + 1;
    r->pos = 0;
    r->batch_next = n * EVLOG_TILE_WIDTH;
    r->left = EVLOG_TILE_WIDTH;
    return 0;
}

int evlog_reader_open(struct evlog_reader **out, const char *state_dir, uint64_t start_index,
                      char *err, size_t errlen)
{
    struct evlog_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    snprintf(r->path, sizeof r->path, "%s/journal/wal", state_dir);
    snprintf(r->state, sizeof r->state, "%s", state_dir);
    r->unseal.state = r->state;
    r->fd = open(r->path, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) {
        int rc = evlog_sys_err(err, errlen, "open", r->path);
        free(r);
        return rc;
    }
    r->off = WAL_HDR;
    r->next = start_index;
    int rc = reader_refresh_base(r, err, errlen);
    if (rc < 0) {
        evlog_reader_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void evlog_reader_close(struct evlog_reader *r)
{
    if (r != NULL) {
        close(r->fd);
        free(r->buf);
        described_free(r->described);
        evlog_unsealer_release(&r->unseal);
        free(r);
    }
}

int evlog_reader_fill_described(struct evlog_reader *r)
{
    if (r->described == NULL && (r->described = described_new(r->state)) == NULL) {
        return EVLOG_ENOMEM;
    }
    return 0;
}

int evlog_reader_seal_state(const struct evlog_reader *r)
{
    return r->seal_state;
}

int evlog_unseal(struct evlog_unsealer *u, uint64_t idx, const uint8_t **entry, size_t *len,
                 char *err, size_t errlen)
{
    uint32_t epoch = 0;
    uint64_t t = 0;
    if (*len >= EVENT_RECORD_MAX || seal_inspect(*entry, *len, &epoch, &t) != 1) {
        return SEAL_PLAIN;
    }
    if (u->seal == NULL && !u->failed &&
        seal_keyring_open(&u->seal, u->state, false, 0, NULL, 0) != 0) {
        u->failed = true;
    }
    if (u->seal == NULL) {
        return SEAL_NO_KEY;
    }
    size_t olen = 0;
    char why[256];
    int st =
        seal_open(u->seal, idx, *entry, *len, u->opened, sizeof u->opened, &olen, why, sizeof why);
    if (st < 0) {
        return err_set(err, errlen, "entry %llu: %s", (unsigned long long)idx, why), EVLOG_ECORRUPT;
    }
    *entry = u->opened;
    *len = olen;
    return st;
}

void evlog_unsealer_release(struct evlog_unsealer *u)
{
    seal_keyring_free(u->seal);
    u->seal = NULL;
    OPENSSL_cleanse(u->opened, sizeof u->opened);
}

/* A sealed entry is opened with the state directory's epoch keys (seal.h); one that cannot be
 * (key erased, or not readable by this user) is handed out as it is. A sealed entry whose seal
 * does not open with its own key is damage: an error naming the journal and the entry. */
static int reader_open_sealed(struct evlog_reader *r, const uint8_t **entry, size_t *len,
                              uint64_t idx, char *err, size_t errlen)
{
    char why[320];
    int st = evlog_unseal(&r->unseal, idx, entry, len, why, sizeof why);
    if (st < 0) {
        return err_set(err, errlen, "%s: %s", r->path, why), st;
    }
    r->seal_state = st;
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
                int rc = reader_open_sealed(r, entry, len, idx, err, errlen);
                if (rc == 1 && r->described != NULL) {
                    rc = described_pass(r->described, idx, entry, len, err, errlen);
                }
                return rc;
            }
        }
        if (r->next < r->base_index) {
            int rc = reader_load_bundle(r, err, errlen);
            if (rc != 0) {
                return rc;
            }
            continue;
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
            return evlog_sys_err(err, errlen, "read", r->path);
        }
        uint32_t count = be_get32(bh + 4);
        uint64_t first = be_get64(bh + 8);
        uint64_t plen = be_get64(bh + 16);
        /* plen is bounded before the sum: a damaged length near UINT64_MAX would wrap total to
         * 0, which evlog_journal_parse_batch answers with 0 ("need more") and no batch. */
        uint64_t total =
            plen <= INT32_MAX - BATCH_HDR - BATCH_TRL ? BATCH_HDR + plen + BATCH_TRL : UINT64_MAX;
        if (memcmp(bh, "BTCH", 4) != 0 || total > INT32_MAX || r->off + total > durable) {
            /* A hole: compaction moved the journal base past this byte meanwhile. */
            int moved = reader_refresh_base(r, err, errlen);
            if (moved != 0) {
                if (moved < 0) {
                    return moved;
                }
                continue;
            }
            static const uint8_t zeros[4] = {0};
            return err_set(err, errlen, "%s: bad batch at byte %llu%s", r->path,
                           (unsigned long long)r->off,
                           memcmp(bh, zeros, 4) == 0
                               ? " (zeros: a compacted journal whose journal/base is missing or "
                                 "older than it; restore both from the same copy)"
                               : ""),
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
            evlog_shrink_after_burst(&r->buf, &r->cap, total);
        }
        if (pread(r->fd, r->buf, total, (off_t)r->off) != (ssize_t)total) {
            return evlog_sys_err(err, errlen, "read", r->path);
        }
        uint64_t f2;
        uint32_t c2;
        if (evlog_journal_parse_batch(r->buf, total, &f2, &c2) != (int)total) {
            int moved = reader_refresh_base(r, err, errlen);
            if (moved != 0) {
                if (moved < 0) {
                    return moved;
                }
                continue;
            }
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
