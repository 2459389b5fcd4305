/* described.c -- heartbeats records naming the leaf that describes their bot, filled in from it
 * (described.h). */
#include "evidence/described.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/log.h"
#include "util/err.h"

/* What a leaf says of its bot: what a naming record leaves out (rollup.c, name_leaf). */
struct desc {
    uint64_t index; /* + 1; 0: an empty slot */
    uint64_t time_us;
    char node[32];
    struct net_addr src, dst, peer;
    uint8_t transport;
    char family[16];
    char bot_key[33];
    uint32_t enrich_id;
};

struct described {
    char state_dir[4096];
    struct desc *slots; /* open addressing by index, linear probing; a power of two */
    size_t cap, n;
    uint64_t newest_us; /* the latest time remembered */
    struct record leaf, rec;
    uint8_t buf[EVENT_RECORD_MAX];
};

struct described *described_new(const char *state_dir)
{
    struct described *d = calloc(1, sizeof(*d));
    if (d != NULL) {
        snprintf(d->state_dir, sizeof(d->state_dir), "%s", state_dir);
    }
    return d;
}

void described_free(struct described *d)
{
    if (d != NULL) {
        free(d->slots);
        free(d);
    }
}

static bool contact_is_poll(const struct contact *c)
{
    return c->msg_type == CONTACT_MSG_HELLO || c->msg_type == CONTACT_MSG_HEARTBEAT;
}

/* Whether a decoded leaf describes a bot, and then what it says. */
static bool desc_of(const struct record *leaf, struct desc *out)
{
    if (leaf->seal.sealed_len > 0) {
        return false; /* still sealed: who it was is not here */
    }
    memset(out, 0, sizeof(*out));
    if (leaf->kind == RECORD_CONTACT && contact_is_poll(&leaf->u.contact)) {
        const struct contact *c = &leaf->u.contact;
        out->time_us = c->time_us;
        memcpy(out->node, c->node, sizeof(out->node));
        out->src = c->src;
        out->dst = c->dst;
        out->peer = c->peer;
        out->transport = c->transport;
        memcpy(out->family, c->family, sizeof(out->family));
        memcpy(out->bot_key, c->bot_key, sizeof(out->bot_key));
        out->enrich_id = c->enrich_id;
    } else if (leaf->kind == RECORD_HEARTBEATS && leaf->u.heartbeats.described_in == 0) {
        const struct heartbeats *h = &leaf->u.heartbeats;
        out->time_us = h->time_us;
        memcpy(out->node, h->node, sizeof(out->node));
        out->src = h->src;
        out->dst = h->dst;
        out->peer = h->peer;
        out->transport = h->transport;
        memcpy(out->family, h->family, sizeof(out->family));
        memcpy(out->bot_key, h->bot_key, sizeof(out->bot_key));
        out->enrich_id = h->enrich_id;
    } else {
        return false;
    }
    return out->src.family != 0; /* a record written after an erasure describes nobody */
}

static void fill_from(struct heartbeats *hb, const struct desc *s)
{
    memcpy(hb->node, s->node, sizeof(hb->node));
    hb->src = s->src;
    hb->dst = s->dst;
    hb->peer = s->peer;
    hb->transport = s->transport;
    memcpy(hb->family, s->family, sizeof(hb->family));
    memcpy(hb->bot_key, s->bot_key, sizeof(hb->bot_key));
    hb->enrich_id = s->enrich_id;
}

int described_fill(struct heartbeats *hb, const struct record *leaf)
{
    struct desc s;
    if (!desc_of(leaf, &s)) {
        return -1;
    }
    fill_from(hb, &s);
    return 0;
}

static size_t slot_of(const struct described *d, uint64_t index)
{
    uint64_t h = index * 0x9E3779B97F4A7C15ull; /* Fibonacci hashing: indexes are sequential */
    return (size_t)(h >> 20) & (d->cap - 1);
}

static struct desc *find(struct described *d, uint64_t index)
{
    if (d->cap == 0) {
        return NULL;
    }
    for (size_t i = slot_of(d, index);; i = (i + 1) & (d->cap - 1)) {
        if (d->slots[i].index == 0) {
            return NULL;
        }
        if (d->slots[i].index == index + 1) {
            return &d->slots[i];
        }
    }
}

static void place(struct described *d, const struct desc *s)
{
    size_t i = slot_of(d, s->index - 1);
    while (d->slots[i].index != 0) {
        i = (i + 1) & (d->cap - 1);
    }
    d->slots[i] = *s;
    d->n++;
}

/* Makes room for one more: the table doubles up to DESCRIBED_MAX entries; at it, descriptions
 * older than a week and a day go (a record names only a leaf of its own seal epoch, a week at
 * most), and all of them if that frees less than a quarter. Keeps the load at most 1/2. */
static bool make_room(struct described *d)
{
    if ((d->n + 1) * 2 <= d->cap) {
        return true;
    }
    size_t cap = d->cap ? d->cap * 2 : 1024;
    uint64_t keep_after = 0;
    if (d->n + 1 > DESCRIBED_MAX) {
        cap = d->cap;
        const uint64_t span_us = 8ull * 86400 * 1000000;
        keep_after = d->newest_us > span_us ? d->newest_us - span_us : 0;
    }
    struct desc *old = d->slots;
    size_t oldcap = d->cap;
    struct desc *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return false;
    }
    d->slots = slots;
    d->cap = cap;
    d->n = 0;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].index != 0 && old[i].time_us >= keep_after) {
            place(d, &old[i]);
        }
    }
    free(old);
    if ((d->n + 1) * 2 > d->cap) {
        memset(d->slots, 0, d->cap * sizeof(*d->slots));
        d->n = 0;
    }
    return true;
}

static void remember(struct described *d, uint64_t index, const struct desc *s)
{
    struct desc *e = find(d, index);
    if (e == NULL) {
        if (!make_room(d)) {
            return; /* out of memory: a record naming it reads the leaf from the log */
        }
        struct desc copy = *s;
        copy.index = index + 1;
        place(d, &copy);
    } else {
        *e = *s;
        e->index = index + 1;
    }
    if (s->time_us > d->newest_us) {
        d->newest_us = s->time_us;
    }
}

/* Reads leaf `index` from the log (a reader that started after it). 1 with *out set, 0 when it
 * does not describe a bot (or is not there), negative on error. */
static int read_leaf(struct described *d, uint64_t index, struct desc *out, char *err,
                     size_t errlen)
{
    struct evlog_reader *r = NULL;
    int rc = evlog_reader_open(&r, d->state_dir, index, err, errlen);
    if (rc < 0) {
        return rc;
    }
    const uint8_t *entry;
    size_t len;
    uint64_t got;
    rc = evlog_reader_next(r, &entry, &len, &got, err, errlen);
    int found = 0;
    if (rc == 1 && got == index && event_decode(entry, len, &d->leaf, NULL, 0) == 0 &&
        desc_of(&d->leaf, out)) {
        found = 1;
    }
    evlog_reader_close(r);
    return rc < 0 ? rc : found;
}

int described_pass(struct described *d, uint64_t index, const uint8_t **entry, size_t *len,
                   char *err, size_t errlen)
{
    if (*len < 2 || ((*entry)[1] != RECORD_CONTACT && (*entry)[1] != RECORD_HEARTBEATS)) {
        return 1;
    }
    if (event_decode(*entry, *len, &d->rec, NULL, 0) != 0) {
        return 1; /* its reader reports what is wrong with it */
    }
    struct desc s;
    if (desc_of(&d->rec, &s)) {
        remember(d, index, &s);
        return 1;
    }
    if (d->rec.kind != RECORD_HEARTBEATS || d->rec.u.heartbeats.described_in == 0) {
        return 1;
    }
    uint64_t named = d->rec.u.heartbeats.described_in;
    if (named >= index) {
        return 1; /* names no earlier leaf: nothing to fill it from (verify reports it) */
    }
    const struct desc *found = find(d, named);
    if (found == NULL) {
        int rc = read_leaf(d, named, &s, err, errlen);
        if (rc < 0) {
            return rc;
        }
        if (rc == 0) {
            return 1;
        }
        remember(d, named, &s);
        found = &s;
    }
    fill_from(&d->rec.u.heartbeats, found);
    int n = event_encode(&d->rec, d->buf, sizeof(d->buf));
    if (n < 0) {
        return err_set(err, errlen, "entry %llu: cannot encode it filled in",
                       (unsigned long long)index);
    }
    *entry = d->buf;
    *len = (size_t)n;
    return 1;
}
