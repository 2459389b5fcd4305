/* tiles.c -- C2SP tlog-tiles paths and a hash reader over a tiles directory. */
#include "evidence/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util/err.h"

int evlog_tile_path(int level, uint64_t n, unsigned width, char *out, size_t cap)
{
    if (level < EVLOG_TILE_ENTRIES || level > 63 || width == 0 || width > EVLOG_TILE_WIDTH) {
        return EVLOG_EINVAL;
    }
    /* C2SP tlog-tiles: N as zero-padded 3-digit groups, all but the last prefixed with 'x'. */
    unsigned groups[8];
    int ng = 0;
    do {
        groups[ng++] = (unsigned)(n % 1000);
        n /= 1000;
    } while (n > 0 && ng < 8);
    char nbuf[64];
    size_t o = 0;
    for (int i = ng - 1; i >= 0; i--) {
        o += (size_t)snprintf(nbuf + o, sizeof nbuf - o, i > 0 ? "x%03u/" : "%03u", groups[i]);
    }
    char lbuf[16];
    if (level == EVLOG_TILE_ENTRIES) {
        snprintf(lbuf, sizeof lbuf, "entries");
    } else {
        snprintf(lbuf, sizeof lbuf, "%d", level);
    }
    int len;
    if (width == EVLOG_TILE_WIDTH) {
        len = snprintf(out, cap, "tile/%s/%s", lbuf, nbuf);
    } else {
        /* C2SP tlog-tiles: partial tile width is 1..255 */
        len = snprintf(out, cap, "tile/%s/%s.p/%u", lbuf, nbuf, width);
    }
    return (len < 0 || (size_t)len >= cap) ? EVLOG_EINVAL : len;
}

#define TILE_LEVELS 8 /* 256^8 = 2^64 leaves */

struct evlog_tile_reader {
    char dir[EVLOG_PATH_MAX];
    uint64_t size;
    struct {
        bool valid;
        uint64_t n;
        unsigned width;
        uint8_t hashes[EVLOG_TILE_WIDTH][EVLOG_HASH_SIZE];
    } cache[TILE_LEVELS];
};

int evlog_tile_reader_open(struct evlog_tile_reader **out, const char *log_dir, uint64_t size,
                           char *err, size_t errlen)
{
    struct evlog_tile_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        err_set(err, errlen, "out of memory");
        return EVLOG_ENOMEM;
    }
    if ((size_t)snprintf(r->dir, sizeof r->dir, "%s", log_dir) >= sizeof r->dir) {
        free(r);
        err_set(err, errlen, "log directory path too long");
        return EVLOG_EINVAL;
    }
    r->size = size;
    *out = r;
    return 0;
}

void evlog_tile_reader_close(struct evlog_tile_reader *r)
{
    free(r);
}

/* Reads exactly want bytes of a file; returns 0, 1 if missing, or a negative code. */
static int read_exact(const char *path, uint8_t *buf, size_t want, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 1;
        }
        err_set(err, errlen, "%s: %s", path, strerror(errno));
        return EVLOG_EIO;
    }
    size_t got = 0;
    while (got < want + 1) {
        uint8_t extra;
        ssize_t n = got < want ? read(fd, buf + got, want - got) : read(fd, &extra, 1);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            err_set(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            return EVLOG_EIO;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (got != want) {
        err_set(err, errlen, "%s: %zu bytes, expected %zu", path, got > want ? want + 1 : got,
                want);
        return EVLOG_EVERIFY;
    }
    return 0;
}

static int load_tile(struct evlog_tile_reader *r, unsigned L, uint64_t n, unsigned width, char *err,
                     size_t errlen)
{
    if (r->cache[L].valid && r->cache[L].n == n && r->cache[L].width >= width) {
        return 0;
    }
    char rel[128], path[EVLOG_PATH_MAX + 128];
    evlog_tile_path((int)L, n, width, rel, sizeof rel);
    snprintf(path, sizeof path, "%s/%s", r->dir, rel);
    int rc =
        read_exact(path, &r->cache[L].hashes[0][0], (size_t)width * EVLOG_HASH_SIZE, err, errlen);
    unsigned got = width;
    if (rc == 1 && width < EVLOG_TILE_WIDTH) {
        /* C2SP tlog-tiles: a partial tile may be gone once the full tile exists. */
        evlog_tile_path((int)L, n, EVLOG_TILE_WIDTH, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", r->dir, rel);
        rc = read_exact(path, &r->cache[L].hashes[0][0], EVLOG_TILE_WIDTH * EVLOG_HASH_SIZE, err,
                        errlen);
        got = EVLOG_TILE_WIDTH;
    }
    if (rc == 1) {
        err_set(err, errlen, "%s: missing", path);
        rc = EVLOG_EVERIFY;
    }
    if (rc != 0) {
        r->cache[L].valid = false;
        return rc;
    }
    r->cache[L].valid = true;
    r->cache[L].n = n;
    r->cache[L].width = got;
    return 0;
}

int evlog_tile_reader_hash(void *reader, unsigned level, uint64_t index,
                           uint8_t out[EVLOG_HASH_SIZE], char *err, size_t errlen)
{
    struct evlog_tile_reader *r = reader;
    unsigned L = level / EVLOG_TILE_HEIGHT, h = level % EVLOG_TILE_HEIGHT;
    if (L >= TILE_LEVELS || (h > 0 && index > (UINT64_MAX >> h))) {
        return err_set(err, errlen, "hash level %u index %llu out of range", level,
                       (unsigned long long)index),
               EVLOG_EINVAL;
    }
    /* The subtree is 2^h consecutive hashes of tile level L, all inside one tile. */
    uint64_t first = index << h, count = UINT64_C(1) << h;
    uint64_t avail = L == 0 ? r->size : r->size >> (EVLOG_TILE_HEIGHT * L);
    if (L * EVLOG_TILE_HEIGHT >= 64 || first + count > avail) {
        return err_set(err, errlen, "hash level %u index %llu beyond tree size %llu", level,
                       (unsigned long long)index, (unsigned long long)r->size),
               EVLOG_EINVAL;
    }
    uint64_t n = first / EVLOG_TILE_WIDTH;
    unsigned off = (unsigned)(first % EVLOG_TILE_WIDTH);
    uint64_t width = avail - n * EVLOG_TILE_WIDTH;
    if (width > EVLOG_TILE_WIDTH) {
        width = EVLOG_TILE_WIDTH;
    }
    int rc = load_tile(r, L, n, (unsigned)width, err, errlen);
    if (rc != 0) {
        return rc;
    }
    uint8_t buf[128][EVLOG_HASH_SIZE];
    memcpy(buf, r->cache[L].hashes[off],
           (size_t)count * EVLOG_HASH_SIZE > sizeof buf ? sizeof buf
                                                        : (size_t)count * EVLOG_HASH_SIZE);
    if (count == 1) {
        memcpy(out, r->cache[L].hashes[off], EVLOG_HASH_SIZE);
        return 0;
    }
    /* Hash the intra-tile levels (C2SP: tiles store only their bottom row). */
    for (uint64_t w = count; w > 1; w /= 2) {
        for (uint64_t i = 0; i < w / 2; i++) {
            evlog_node_hash(buf[2 * i], buf[2 * i + 1], buf[i]);
        }
    }
    memcpy(out, buf[0], EVLOG_HASH_SIZE);
    return 0;
}
