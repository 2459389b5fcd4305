/* described.c -- heartbeats records naming the leaf that describes their bot, filled in from it
 * (described.h). */
#include "evidence/described.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/log_internal.h"
#include "evidence/seal.h"
#include "util/err.h"

/* Entry bundles kept at once (each at most ~16 MiB, in practice 20-60 KiB). A stripe of the
 * roll-up writes, within seconds, the records of bots whose presences began (or were described
 * again) within seconds of each other: the leaves they name sit in a few neighbouring bundles,
 * so a few cached bundles serve nearly every record, whatever the number of bots, and the memory
 * does not grow with them. */
#define DESCRIBED_BUNDLES 32

struct bundle {
    uint64_t n;    /* bundle number + 1; 0: empty */
    uint64_t used; /* LRU tick */
    uint8_t *bytes;
    uint32_t off[EVLOG_TILE_WIDTH]; /* where entry j's length prefix is */
};

struct described {
    char state_dir[EVLOG_PATH_MAX];
    struct evlog_unsealer unseal; /* a sealed leaf whose key is not here cannot tell */
    struct bundle bundles[DESCRIBED_BUNDLES];
    uint64_t tick;
    struct described_stats stats;
    struct record leaf, rec;
    uint8_t buf[EVENT_RECORD_MAX];
};

struct described *described_new(const char *state_dir)
{
    struct described *d = calloc(1, sizeof(*d));
    if (d != NULL) {
        snprintf(d->state_dir, sizeof(d->state_dir), "%s", state_dir);
        d->unseal.state = d->state_dir;
    }
    return d;
}

void described_free(struct described *d)
{
    if (d != NULL) {
        for (size_t i = 0; i < DESCRIBED_BUNDLES; i++) {
            free(d->bundles[i].bytes);
        }
        evlog_unsealer_release(&d->unseal);
        free(d);
    }
}

void described_stats(const struct described *d, struct described_stats *out)
{
    *out = d->stats;
}

static bool contact_is_poll(const struct contact *c)
{
    return c->msg_type == CONTACT_MSG_HELLO || c->msg_type == CONTACT_MSG_HEARTBEAT;
}

/* Whether a decoded leaf describes a bot, and then what it says (in out's description). */
static bool desc_of(const struct record *leaf, struct heartbeats *out)
{
    if (leaf->seal.sealed_len > 0) {
        return false; /* still sealed: who it was is not here */
    }
    memset(out, 0, sizeof(*out));
    if (leaf->kind == RECORD_CONTACT && contact_is_poll(&leaf->u.contact)) {
        event_heartbeats_describe(out, &leaf->u.contact);
    } else if (leaf->kind == RECORD_HEARTBEATS && leaf->u.heartbeats.described_in == 0) {
        *out = leaf->u.heartbeats;
    } else {
        return false;
    }
    return out->src.family != 0; /* a record written after an erasure describes nobody */
}

int described_fill(struct heartbeats *hb, const struct record *leaf)
{
    struct heartbeats s;
    if (!desc_of(leaf, &s)) {
        return -1;
    }
    event_heartbeats_copy_description(hb, &s);
    return 0;
}

struct offsets {
    const uint8_t *base;
    uint32_t *off;
};

static int note_offset(void *ctx, uint64_t index, const uint8_t *entry, size_t len)
{
    struct offsets *o = ctx;
    (void)len;
    o->off[index % EVLOG_TILE_WIDTH] = (uint32_t)(entry - 2 - o->base);
    return 0;
}

/* The cached full entry bundle n, loaded if needed. NULL with *rc 1 when it is not on disk
 * (not full yet), or with *rc negative on error. */
static struct bundle *bundle_of(struct described *d, uint64_t n, int *rc, char *err, size_t errlen)
{
    struct bundle *lru = &d->bundles[0];
    for (size_t i = 0; i < DESCRIBED_BUNDLES; i++) {
        struct bundle *b = &d->bundles[i];
        if (b->n == n + 1) {
            b->used = ++d->tick;
            return b;
        }
        if (b->used < lru->used) {
            lru = b;
        }
    }
    char rel[160], path[EVLOG_PATH_MAX + 200];
    evlog_tile_path(EVLOG_TILE_ENTRIES, n, EVLOG_TILE_WIDTH, rel, sizeof(rel));
    snprintf(path, sizeof(path), "%s/log/%s", d->state_dir, rel);
    uint8_t *bytes = NULL;
    size_t len = 0;
    *rc = evlog_read_whole(path, (size_t)EVLOG_TILE_WIDTH * (2 + EVLOG_ENTRY_MAX), &bytes, &len,
                           err, errlen);
    if (*rc != 0) {
        return NULL;
    }
    struct offsets o = {bytes, lru->off};
    char why[128];
    if (evlog_entry_bundle_parse(bytes, len, EVLOG_TILE_WIDTH, n * EVLOG_TILE_WIDTH, note_offset,
                                 &o, why, sizeof(why)) != 0) {
        free(bytes);
        *rc = err_set(err, errlen, "%s: %s", path, why);
        return NULL;
    }
    free(lru->bytes);
    lru->bytes = bytes;
    lru->n = n + 1;
    lru->used = ++d->tick;
    d->stats.bundle_reads++;
    return lru;
}

/* Decodes leaf `index` from its bytes as the log holds them into d->leaf, opening it if sealed.
 * 1 when decoded with its personal fields, 0 when they are not here (erased, no key), negative
 * when the leaf is damaged. */
static int decode_stored(struct described *d, uint64_t index, const uint8_t *e, size_t len,
                         char *err, size_t errlen)
{
    int st = evlog_unseal(&d->unseal, index, &e, &len, err, errlen);
    if (st < 0) {
        return st;
    }
    if (st != SEAL_PLAIN && st != SEAL_OPENED) {
        return 0;
    }
    return event_decode(e, len, &d->leaf, NULL, 0) == 0 ? 1 : 0;
}

/* What leaf `index` says of its bot: from its full entry bundle, or, while it has none yet, from
 * a reader of the journal. 1 with *out set, 0 when it does not say (not a bot's description,
 * its personal fields not here, not in the log), negative on error. */
static int read_leaf(struct described *d, uint64_t index, struct heartbeats *out, char *err,
                     size_t errlen)
{
    int rc = 0;
    struct bundle *b = bundle_of(d, index / EVLOG_TILE_WIDTH, &rc, err, errlen);
    if (b != NULL) {
        size_t at = b->off[index % EVLOG_TILE_WIDTH];
        size_t len = (size_t)b->bytes[at] << 8 | b->bytes[at + 1];
        rc = decode_stored(d, index, b->bytes + at + 2, len, err, errlen);
        return rc == 1 ? desc_of(&d->leaf, out) : rc;
    }
    if (rc < 0) {
        return rc;
    }
    /* Not in a full bundle yet: the journal (a reader opens sealed entries itself). */
    struct evlog_reader *r = NULL;
    rc = evlog_reader_open(&r, d->state_dir, index, err, errlen);
    if (rc < 0) {
        return rc;
    }
    d->stats.journal_reads++;
    const uint8_t *entry;
    size_t len;
    uint64_t got;
    rc = evlog_reader_next(r, &entry, &len, &got, err, errlen);
    int found = 0;
    if (rc == 1 && got == index && evlog_reader_seal_state(r) <= SEAL_OPENED &&
        event_decode(entry, len, &d->leaf, NULL, 0) == 0) {
        found = desc_of(&d->leaf, out);
    }
    evlog_reader_close(r);
    return rc < 0 ? rc : found;
}

int described_pass(struct described *d, uint64_t index, const uint8_t **entry, size_t *len,
                   char *err, size_t errlen)
{
    if (*len < 2 || (*entry)[1] != RECORD_HEARTBEATS ||
        event_decode(*entry, *len, &d->rec, NULL, 0) != 0 ||
        d->rec.u.heartbeats.described_in == 0) {
        return 1; /* not a naming record (a reader reports what is wrong with a damaged one) */
    }
    uint64_t named = d->rec.u.heartbeats.described_in;
    struct heartbeats s;
    int rc = named < index ? read_leaf(d, named, &s, err, errlen) : 0;
    if (rc <= 0) {
        if (rc == 0) {
            d->stats.unfilled++;
        }
        return rc < 0 ? rc : 1;
    }
    event_heartbeats_copy_description(&d->rec.u.heartbeats, &s);
    int n = event_encode(&d->rec, d->buf, sizeof(d->buf));
    if (n < 0) {
        return err_set(err, errlen, "entry %llu: cannot encode it filled in",
                       (unsigned long long)index);
    }
    d->stats.filled++;
    *entry = d->buf;
    *len = (size_t)n;
    return 1;
}
