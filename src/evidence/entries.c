/* entries.c -- the entries of a published log read back from its entry bundles (tile/entries/),
 * the bytes evlog_verify_dir checks: for tools that recount what a log holds (`sinkd verify`
 * over several nodes' logs and their shared registry). */
#include "evidence/log_internal.h"
#include "evidence/log.h"
#include "util/err.h"

#include <stdlib.h>

int evlog_entry_bundle_parse(const uint8_t *b, size_t len, unsigned w, uint64_t first,
                             int (*fn)(void *ctx, uint64_t index, const uint8_t *entry, size_t len),
                             void *ctx, char *err, size_t errlen)
{
    size_t off = 0;
    for (unsigned j = 0; j < w; j++) {
        if (off + 2 > len || off + 2 + ((size_t)b[off] << 8 | b[off + 1]) > len) {
            return err_set(err, errlen, "byte %zu: entry %llu is truncated", off,
                           (unsigned long long)first + j),
                   EVLOG_EVERIFY;
        }
        size_t el = (size_t)b[off] << 8 | b[off + 1];
        int rc = fn(ctx, first + j, b + off + 2, el);
        if (rc != 0) {
            return rc;
        }
        off += 2 + el;
    }
    return 0;
}

int evlog_entries_walk(const char *log_dir, uint64_t size,
                       int (*fn)(void *ctx, uint64_t index, const uint8_t *entry, size_t len),
                       void *ctx, char *err, size_t errlen)
{
    for (uint64_t n = 0; n * EVLOG_TILE_WIDTH < size; n++) {
        uint64_t left = size - n * EVLOG_TILE_WIDTH;
        unsigned w = left >= EVLOG_TILE_WIDTH ? EVLOG_TILE_WIDTH : (unsigned)left;
        char rel[160], path[EVLOG_PATH_MAX + 200];
        evlog_tile_path(EVLOG_TILE_ENTRIES, n, w, rel, sizeof rel);
        snprintf(path, sizeof path, "%s/%s", log_dir, rel);
        uint8_t *b = NULL;
        size_t blen = 0;
        /* sized to the file (a full bundle's bound, 16 MiB, is only the limit) */
        const size_t max = (size_t)EVLOG_TILE_WIDTH * (2 + EVLOG_ENTRY_MAX);
        int rc = evlog_read_whole(path, max, &b, &blen, err, errlen);
        if (rc != 0 && w < EVLOG_TILE_WIDTH) {
            /* A partial bundle may be gone once its full one exists (as C2SP clients expect). */
            evlog_tile_path(EVLOG_TILE_ENTRIES, n, EVLOG_TILE_WIDTH, rel, sizeof rel);
            snprintf(path, sizeof path, "%s/%s", log_dir, rel);
            rc = evlog_read_whole(path, max, &b, &blen, err, errlen);
        }
        if (rc > 0) {
            return err_set(err, errlen, "%s/%s: missing", log_dir, rel), EVLOG_EVERIFY;
        }
        if (rc < 0) {
            return rc;
        }
        char why[256] = "";
        rc = evlog_entry_bundle_parse(b, blen, w, n * EVLOG_TILE_WIDTH, fn, ctx, why, sizeof why);
        free(b);
        if (rc < 0 && why[0] != '\0') {
            err_set(err, errlen, "%s/%s: %s", log_dir, rel, why);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}
