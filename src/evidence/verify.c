/* verify.c -- offline check of a tlog-tiles directory: signatures, entries, tiles, roots and
 * consistency of every checkpoint, reporting the first bad byte by file and entry index. */
#include "evidence/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/err.h"

#define TILE_LEVELS 8
#define CHECKPOINTS_MAX 10000000u

struct vcp {
    uint64_t size;
    uint8_t root[EVLOG_HASH_SIZE];
};

struct vstate {
    const char *dir;
    struct evlog_hasher *hasher;
    struct evlog_frontier tree;
    uint8_t tiles[TILE_LEVELS][EVLOG_TILE_WIDTH][EVLOG_HASH_SIZE];
    int rc;
    char *err;
    size_t errlen;
    uint64_t files;
};

/* Reads a whole file (bounded); returns 0, 1 if missing, negative on error. */
static int slurp(const char *dir, const char *rel, uint8_t **out, size_t *len, size_t max,
                 char *err, size_t errlen)
{
    char path[EVLOG_PATH_MAX + 200];
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            return 1;
        }
        err_set(err, errlen, "%s: %s", rel, strerror(errno));
        return EVLOG_EIO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > max) {
        err_set(err, errlen, "%s: larger than %zu bytes", rel, max);
        close(fd);
        return EVLOG_EVERIFY;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    if (buf == NULL) {
        close(fd);
        return EVLOG_ENOMEM;
    }
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    buf[got] = 0;
    *out = buf;
    *len = got;
    return 0;
}

/* Compares a computed tile with its file; names the first differing byte. */
static int check_tile(struct vstate *vs, int level, uint64_t n, unsigned w, bool must_exist)
{
    char rel[160];
    evlog_tile_path(level, n, w, rel, sizeof rel);
    uint8_t *buf;
    size_t len;
    int rc =
        slurp(vs->dir, rel, &buf, &len, EVLOG_TILE_WIDTH * EVLOG_HASH_SIZE, vs->err, vs->errlen);
    if (rc == 1) {
        if (!must_exist) {
            return 0;
        }
        err_set(vs->err, vs->errlen, "%s: missing", rel);
        return EVLOG_EVERIFY;
    }
    if (rc != 0) {
        return rc;
    }
    vs->files++;
    const uint8_t *want = &vs->tiles[level][0][0];
    size_t wlen = (size_t)w * EVLOG_HASH_SIZE;
    for (size_t i = 0; i < wlen || i < len; i++) {
        if (i >= len || i >= wlen || buf[i] != want[i]) {
            uint64_t hidx = n * EVLOG_TILE_WIDTH + i / EVLOG_HASH_SIZE;
            unsigned sh = EVLOG_TILE_HEIGHT * (unsigned)level;
            err_set(vs->err, vs->errlen,
                    "%s: byte %zu %s (hash %llu of level %d covers entries %llu..%llu)", rel, i,
                    i >= len    ? "missing (file too short)"
                    : i >= wlen ? "is extra (file too long)"
                                : "differs from the hash recomputed from the entries",
                    (unsigned long long)hidx, level, (unsigned long long)hidx << sh,
                    (((unsigned long long)hidx + 1) << sh) - 1);
            free(buf);
            return EVLOG_EVERIFY;
        }
    }
    free(buf);
    return 0;
}

static void on_hash(void *ctx, unsigned level, uint64_t index, const uint8_t h[EVLOG_HASH_SIZE])
{
    struct vstate *vs = ctx;
    if (level == 0 || level >= TILE_LEVELS) {
        return; /* level 0 is compared entry by entry */
    }
    unsigned slot = (unsigned)(index % EVLOG_TILE_WIDTH);
    memcpy(vs->tiles[level][slot], h, EVLOG_HASH_SIZE);
    if (slot == EVLOG_TILE_WIDTH - 1 && vs->rc == 0) {
        vs->rc = check_tile(vs, (int)level, index / EVLOG_TILE_WIDTH, EVLOG_TILE_WIDTH, true);
    }
}

static int cmp_vcp(const void *a, const void *b)
{
    const struct vcp *x = a, *y = b;
    return x->size < y->size ? -1 : x->size > y->size ? 1 : 0;
}

static int load_cp(const char *dir, const char *rel, const struct evlog_verifier *v,
                   struct evlog_checkpoint *cp, char *err, size_t errlen)
{
    uint8_t *buf;
    size_t len;
    int rc = slurp(dir, rel, &buf, &len, EVLOG_NOTE_MAX, err, errlen);
    if (rc == 1) {
        err_set(err, errlen, "%s: missing", rel);
        return EVLOG_EVERIFY;
    }
    if (rc != 0) {
        return rc;
    }
    char e[256];
    rc = evlog_checkpoint_open((const char *)buf, len, v, cp, e, sizeof e);
    free(buf);
    if (rc != 0) {
        err_set(err, errlen, "%s: %s", rel, e);
        return EVLOG_EVERIFY;
    }
    return 0;
}

/* rel (listed in checkpoints/) no longer exists. */
static bool vanished(const char *dir, const char *rel)
{
    char path[EVLOG_PATH_MAX + 320];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    return lstat(path, &st) != 0 && errno == ENOENT;
}

static int load_all(const char *dir, const struct evlog_verifier *v, struct vcp **out, size_t *n,
                    struct evlog_checkpoint *latest, char *err, size_t errlen)
{
    int rc = load_cp(dir, "checkpoint", v, latest, err, errlen);
    if (rc != 0) {
        return rc;
    }
    char cdir[EVLOG_PATH_MAX + 32];
    snprintf(cdir, sizeof cdir, "%s/checkpoints", dir);
    DIR *d = opendir(cdir);
    if (d == NULL) {
        return err_set(err, errlen, "checkpoints/: %s", strerror(errno)), EVLOG_EVERIFY;
    }
    struct vcp *list = NULL;
    size_t count = 0, cap = 0;
    bool have_latest = false;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        /* A "<size>.tmp" is a checkpoint the writer was still renaming into place when the
         * process died (kill -9): never published, so not part of what is verified. */
        size_t nlen = strlen(de->d_name);
        if (de->d_name[0] == '.' || (nlen > 4 && strcmp(de->d_name + nlen - 4, ".tmp") == 0)) {
            continue;
        }
        char rel[300];
        snprintf(rel, sizeof rel, "checkpoints/%s", de->d_name);
        struct evlog_checkpoint cp;
        rc = load_cp(dir, rel, v, &cp, err, errlen);
        if (rc != 0 && vanished(dir, rel)) {
            /* Listed, then removed by serve's checkpoint retention while this ran: a checkpoint
             * not there is not checked, as one removed before the listing is not. */
            rc = 0;
            continue;
        }
        if (rc != 0) {
            break;
        }
        char name[32];
        snprintf(name, sizeof name, "%llu", (unsigned long long)cp.size);
        if (strcmp(name, de->d_name) != 0) {
            err_set(err, errlen, "%s: holds tree size %s", rel, name);
            rc = EVLOG_EVERIFY;
            break;
        }
        if (cp.size > latest->size) {
            /* Published after this run read `checkpoint` (a live log): not part of the tree
             * verified, as one published after the listing is not. Otherwise `checkpoint` went
             * back to an older size: that is damage. */
            struct evlog_checkpoint now;
            char e[256];
            if (load_cp(dir, "checkpoint", v, &now, e, sizeof e) == 0 && now.size >= cp.size) {
                continue;
            }
            err_set(err, errlen, "%s: larger than the latest checkpoint (%llu)", rel,
                    (unsigned long long)latest->size);
            rc = EVLOG_EVERIFY;
            break;
        }
        if (cp.size == latest->size) {
            if (memcmp(cp.root, latest->root, EVLOG_HASH_SIZE) != 0) {
                err_set(err, errlen, "%s: root differs from checkpoint", rel);
                rc = EVLOG_EVERIFY;
                break;
            }
            have_latest = true;
        }
        if (count == cap) {
            if (cap >= CHECKPOINTS_MAX) {
                rc = EVLOG_EFULL;
                break;
            }
            cap = cap ? cap * 2 : 64;
            struct vcp *l = realloc(list, cap * sizeof *l);
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
    if (rc == 0 && !have_latest) {
        err_set(err, errlen, "checkpoints/%llu: missing (the latest checkpoint is not archived)",
                (unsigned long long)latest->size);
        rc = EVLOG_EVERIFY;
    }
    if (rc != 0) {
        free(list);
        return rc;
    }
    qsort(list, count, sizeof *list, cmp_vcp);
    *out = list;
    *n = count;
    return 0;
}

/* At a checkpoint size: compare the root, and any partial tiles still kept for that size. */
static int at_checkpoint(struct vstate *vs, const struct vcp *cp, const uint8_t *bundle,
                         size_t bundle_len)
{
    uint8_t root[EVLOG_HASH_SIZE];
    evlog_frontier_root(&vs->tree, root);
    if (memcmp(root, cp->root, EVLOG_HASH_SIZE) != 0) {
        err_set(vs->err, vs->errlen,
                "checkpoints/%llu: root does not match the tree recomputed from entries "
                "0..%llu",
                (unsigned long long)cp->size, (unsigned long long)cp->size - 1);
        return EVLOG_EVERIFY;
    }
    for (int level = 0; level < TILE_LEVELS; level++) {
        uint64_t avail = cp->size >> (EVLOG_TILE_HEIGHT * level);
        unsigned w = (unsigned)(avail % EVLOG_TILE_WIDTH);
        if (avail == 0) {
            break;
        }
        if (w == 0) {
            continue;
        }
        int rc = check_tile(vs, level, avail / EVLOG_TILE_WIDTH, w, false);
        if (rc != 0) {
            return rc;
        }
        if (level == 0) {
            char rel[160];
            evlog_tile_path(EVLOG_TILE_ENTRIES, avail / EVLOG_TILE_WIDTH, w, rel, sizeof rel);
            uint8_t *b;
            size_t len;
            rc = slurp(vs->dir, rel, &b, &len, 256u * 65537u, vs->err, vs->errlen);
            if (rc == 1) {
                continue;
            }
            if (rc != 0) {
                return rc;
            }
            vs->files++;
            size_t i = 0;
            while (i < len && i < bundle_len && b[i] == bundle[i]) {
                i++;
            }
            free(b);
            if (i != len || len != bundle_len) {
                err_set(vs->err, vs->errlen,
                        "%s: byte %zu differs from the entries of the full bundle", rel, i);
                return EVLOG_EVERIFY;
            }
        }
    }
    return 0;
}

int evlog_verify_dir(const char *log_dir, const struct evlog_verifier *v,
                     struct evlog_verify_report *rep, char *err, size_t errlen)
{
    struct evlog_verify_report dummy;
    if (rep == NULL) {
        rep = &dummy;
    }
    memset(rep, 0, sizeof *rep);
    struct evlog_checkpoint latest;
    struct vcp *cps = NULL;
    size_t ncp = 0;
    int rc = load_all(log_dir, v, &cps, &ncp, &latest, err, errlen);
    if (rc != 0) {
        return rc;
    }
    struct vstate *vs = calloc(1, sizeof *vs);
    if (vs == NULL || (vs->hasher = evlog_hasher_new()) == NULL) {
        free(vs);
        free(cps);
        return err_set(err, errlen, "out of memory"), EVLOG_ENOMEM;
    }
    vs->dir = log_dir;
    vs->err = err;
    vs->errlen = errlen;
    evlog_frontier_init(&vs->tree);
    uint64_t N = latest.size;
    size_t next_cp = 0;
    while (next_cp < ncp && cps[next_cp].size == 0) {
        uint8_t empty[EVLOG_HASH_SIZE];
        evlog_frontier_root(&vs->tree, empty);
        if (memcmp(empty, cps[next_cp].root, EVLOG_HASH_SIZE) != 0) {
            err_set(err, errlen, "checkpoints/0: root is not the empty tree's");
            rc = EVLOG_EVERIFY;
        }
        next_cp++;
    }
    for (uint64_t n = 0; rc == 0 && n * EVLOG_TILE_WIDTH < N; n++) {
        uint64_t left = N - n * EVLOG_TILE_WIDTH;
        unsigned w = left >= EVLOG_TILE_WIDTH ? EVLOG_TILE_WIDTH : (unsigned)left;
        char brel[160], trel[160];
        evlog_tile_path(EVLOG_TILE_ENTRIES, n, w, brel, sizeof brel);
        evlog_tile_path(0, n, w, trel, sizeof trel);
        uint8_t *bundle = NULL, *tile = NULL;
        size_t blen = 0, tlen = 0;
        rc = slurp(log_dir, brel, &bundle, &blen, 256u * 65537u, err, errlen);
        if (rc == 0) {
            rc =
                slurp(log_dir, trel, &tile, &tlen, EVLOG_TILE_WIDTH * EVLOG_HASH_SIZE, err, errlen);
            if (rc == 1) {
                free(bundle);
                bundle = NULL;
            }
        }
        if (rc == 1) {
            err_set(err, errlen, "%s: missing (entries %llu..%llu)", bundle ? trel : brel,
                    (unsigned long long)n * EVLOG_TILE_WIDTH,
                    (unsigned long long)n * EVLOG_TILE_WIDTH + w - 1);
            rc = EVLOG_EVERIFY;
        }
        if (rc != 0) {
            free(bundle);
            free(tile);
            break;
        }
        vs->files += 2;
        if (tlen != (size_t)w * EVLOG_HASH_SIZE) {
            err_set(err, errlen, "%s: %zu bytes, expected %u (byte %zu)", trel, tlen,
                    w * EVLOG_HASH_SIZE, tlen < (size_t)w * 32 ? tlen : (size_t)w * 32);
            rc = EVLOG_EVERIFY;
        }
        size_t off = 0;
        for (unsigned j = 0; rc == 0 && j < w; j++) {
            uint64_t idx = n * EVLOG_TILE_WIDTH + j;
            if (off + 2 > blen || off + 2 + ((size_t)bundle[off] << 8 | bundle[off + 1]) > blen) {
                err_set(err, errlen, "%s: byte %zu: entry %llu is truncated", brel, off,
                        (unsigned long long)idx);
                rc = EVLOG_EVERIFY;
                break;
            }
            size_t el = (size_t)bundle[off] << 8 | bundle[off + 1];
            evlog_hasher_leaf(vs->hasher, bundle + off + 2, el, vs->tiles[0][j]);
            if (memcmp(vs->tiles[0][j], tile + (size_t)j * EVLOG_HASH_SIZE, EVLOG_HASH_SIZE) != 0) {
                err_set(err, errlen,
                        "entry %llu (%s byte %zu) does not match its leaf hash in %s byte %u",
                        (unsigned long long)idx, brel, off, trel, j * EVLOG_HASH_SIZE);
                rc = EVLOG_EVERIFY;
                break;
            }
            off += 2 + el;
            evlog_frontier_push(&vs->tree, vs->hasher, vs->tiles[0][j], on_hash, vs);
            if (vs->rc != 0) {
                rc = vs->rc;
                break;
            }
            while (rc == 0 && next_cp < ncp && cps[next_cp].size == vs->tree.size) {
                rc = at_checkpoint(vs, &cps[next_cp], bundle, off);
                next_cp++;
            }
        }
        if (rc == 0 && off != blen) {
            err_set(err, errlen, "%s: byte %zu: %zu bytes after entry %llu", brel, off, blen - off,
                    (unsigned long long)n * EVLOG_TILE_WIDTH + w - 1);
            rc = EVLOG_EVERIFY;
        }
        free(bundle);
        free(tile);
    }
    /* Upper-level partial tiles of the latest checkpoint must exist. */
    for (int level = 1; rc == 0 && level < TILE_LEVELS; level++) {
        uint64_t avail = N >> (EVLOG_TILE_HEIGHT * level);
        if (avail == 0) {
            break;
        }
        unsigned w = (unsigned)(avail % EVLOG_TILE_WIDTH);
        if (w > 0) {
            rc = check_tile(vs, level, avail / EVLOG_TILE_WIDTH, w, true);
        }
    }
    /* Consistency proofs between consecutive checkpoints, from the tiles alone. */
    if (rc == 0) {
        struct evlog_tile_reader *tr = NULL;
        rc = evlog_tile_reader_open(&tr, log_dir, N, err, errlen);
        for (size_t i = 0; rc == 0 && i + 1 < ncp; i++) {
            uint8_t proof[EVLOG_PROOF_MAX][EVLOG_HASH_SIZE];
            size_t pn;
            rc = evlog_prove_consistency(evlog_tile_reader_hash, tr, cps[i].size, cps[i + 1].size,
                                         proof, &pn, err, errlen);
            if (rc == 0 &&
                evlog_verify_consistency(cps[i].size, cps[i + 1].size, cps[i].root, cps[i + 1].root,
                                         (const uint8_t(*)[EVLOG_HASH_SIZE])proof, pn) != 0) {
                err_set(err, errlen, "checkpoints/%llu and checkpoints/%llu are not consistent",
                        (unsigned long long)cps[i].size, (unsigned long long)cps[i + 1].size);
                rc = EVLOG_EVERIFY;
            }
        }
        evlog_tile_reader_close(tr);
    }
    rep->entries = rc == 0 ? N : vs->tree.size;
    rep->checkpoints = next_cp;
    rep->tiles = vs->files;
    evlog_hasher_free(vs->hasher);
    free(vs);
    free(cps);
    return rc;
}
