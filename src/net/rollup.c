/* rollup.c -- the heartbeat roll-up and presence table (rollup.h). */
#include "net/rollup.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    uint8_t key[16];
    uint8_t used;
    uint32_t policy_gen; /* the policy generation its bot was last decided under */
    uint64_t interval_start_us;
    /* The leaf that describes the bot (0: none known), what it says (rollup_contact_desc) and
     * its seal epoch's number. */
    uint64_t described_in, described_desc, described_epoch;
    struct heartbeats hb; /* count 0: nothing rolled up yet in this interval */
};

struct stripe {
    pthread_mutex_t mu;
    struct entry *slots; /* open addressing, linear probing; a power of two */
    size_t cap;
    size_t n;
};

struct rollup {
    uint64_t interval_us;
    _Atomic uint64_t epoch_us; /* 0: records never name a leaf */
    size_t max_per_stripe;
    struct stripe stripes[ROLLUP_STRIPES];
    _Atomic uint64_t counted;
    _Atomic uint64_t pending;
    _Atomic uint64_t full;
    _Atomic uint64_t named;
};

struct rollup *rollup_new(uint64_t interval_us, size_t max_entries)
{
    struct rollup *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->interval_us = interval_us ? interval_us : 1;
    r->max_per_stripe = max_entries / ROLLUP_STRIPES + 1;
    for (size_t i = 0; i < ROLLUP_STRIPES; i++) {
        pthread_mutex_init(&r->stripes[i].mu, NULL);
    }
    return r;
}

void rollup_free(struct rollup *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < ROLLUP_STRIPES; i++) {
        pthread_mutex_destroy(&r->stripes[i].mu);
        free(r->stripes[i].slots);
    }
    free(r);
}

static size_t slot_of(const struct stripe *s, const uint8_t key[16])
{
    uint64_t h;
    memcpy(&h, key + 8, sizeof(h)); /* keys are SHA-256 output: any 8 bytes are uniform */
    return (size_t)h & (s->cap - 1);
}

static struct entry *find(struct stripe *s, const uint8_t key[16])
{
    if (s->cap == 0) {
        return NULL;
    }
    for (size_t i = slot_of(s, key);; i = (i + 1) & (s->cap - 1)) {
        if (!s->slots[i].used) {
            return NULL;
        }
        if (memcmp(s->slots[i].key, key, 16) == 0) {
            return &s->slots[i];
        }
    }
}

static struct entry *insert_slot(struct stripe *s, const uint8_t key[16])
{
    size_t i = slot_of(s, key);
    while (s->slots[i].used) {
        i = (i + 1) & (s->cap - 1);
    }
    return &s->slots[i];
}

/* Keeps the load at most 1/2 so probes stay short. */
static bool grow(struct stripe *s)
{
    if ((s->n + 1) * 2 <= s->cap) {
        return true;
    }
    size_t cap = s->cap ? s->cap * 2 : 64;
    struct entry *old = s->slots;
    size_t oldcap = s->cap;
    s->slots = calloc(cap, sizeof(*s->slots));
    if (s->slots == NULL) {
        s->slots = old;
        return false;
    }
    s->cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].used) {
            *insert_slot(s, old[i].key) = old[i];
        }
    }
    free(old);
    return true;
}

/* Removes slot e, re-placing the run after it (linear probing's deletion). */
static void erase(struct stripe *s, struct entry *e)
{
    size_t i = (size_t)(e - s->slots);
    s->slots[i].used = 0;
    s->n--;
    for (size_t j = (i + 1) & (s->cap - 1); s->slots[j].used; j = (j + 1) & (s->cap - 1)) {
        struct entry moved = s->slots[j];
        s->slots[j].used = 0;
        *insert_slot(s, moved.key) = moved;
    }
}

void rollup_set_seal_epoch(struct rollup *r, uint64_t epoch_us)
{
    atomic_store(&r->epoch_us, epoch_us);
}

/* What a record says of its bot apart from counts, times and enrichment that may change
 * between polls (country, AS, tags stay in every record). The source port and the proxy's
 * address are left out: a bot that reconnects calls from another port, maybe through another
 * proxy of the pool, and its record would never name a leaf. */
static uint64_t desc_of(const struct heartbeats *hb)
{
    /* Fixed-size fields one after another, strings zero-padded: one encoding per description. */
    uint8_t buf[sizeof(hb->node) + 2 * (1 + 16) + 1 + 2 + 1 + sizeof(hb->family) +
                sizeof(hb->bot_key) + 4];
    memset(buf, 0, sizeof(buf));
    size_t pos = 0;
    memcpy(buf, hb->node, strnlen(hb->node, sizeof(hb->node) - 1));
    pos += sizeof(hb->node);
    const struct net_addr *a[] = {&hb->src, &hb->dst};
    for (size_t i = 0; i < 2; i++) {
        buf[pos] = a[i]->family;
        memcpy(buf + pos + 1, a[i]->ip, 16);
        pos += 1 + 16;
    }
    buf[pos++] = hb->peer.family != 0;         /* through a proxy or not; which one may change */
    buf[pos++] = (uint8_t)(hb->dst.port >> 8); /* the seized address's port does not change */
    buf[pos++] = (uint8_t)hb->dst.port;
    buf[pos++] = hb->transport;
    memcpy(buf + pos, hb->family, strnlen(hb->family, sizeof(hb->family) - 1));
    pos += sizeof(hb->family);
    memcpy(buf + pos, hb->bot_key, strnlen(hb->bot_key, sizeof(hb->bot_key) - 1));
    pos += sizeof(hb->bot_key);
    for (int i = 0; i < 4; i++) {
        buf[pos++] = (uint8_t)(hb->enrich_id >> (24 - 8 * i));
    }
    uint8_t d[SHA256_DIGEST_LENGTH];
    SHA256(buf, pos, d);
    uint64_t v;
    memcpy(&v, d, sizeof(v));
    return v;
}

uint64_t rollup_contact_desc(const struct contact *ct)
{
    struct heartbeats hb;
    memset(&hb, 0, sizeof(hb));
    event_heartbeats_describe(&hb, ct);
    return desc_of(&hb);
}

void rollup_described(struct rollup *r, const uint8_t key[16], uint64_t index, uint64_t desc,
                      uint64_t record_time_us, uint64_t now_us)
{
    uint64_t epoch_us = atomic_load(&r->epoch_us);
    /* The writer sealed the leaf in the epoch of some moment between the two: only when both
     * are in one epoch is it certain. Leaf 0 is a log's node-started record, never a bot's. */
    if (epoch_us == 0 || index == 0 || record_time_us / epoch_us != now_us / epoch_us) {
        return;
    }
    struct stripe *s = &r->stripes[key[0] % ROLLUP_STRIPES];
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(s, key);
    /* Writers on several rings may report out of order: the latest leaf wins. */
    if (e != NULL && index > e->described_in) {
        e->described_in = index;
        e->described_desc = desc;
        e->described_epoch = record_time_us / epoch_us;
    }
    pthread_mutex_unlock(&s->mu);
}

enum rollup_outcome rollup_poll(struct rollup *r, const uint8_t key[16], const struct contact *ct,
                                uint32_t policy_gen, bool *decide_due)
{
    *decide_due = false;
    struct stripe *s = &r->stripes[key[0] % ROLLUP_STRIPES];
    pthread_mutex_lock(&s->mu);
    struct entry *e = find(s, key);
    if (e == NULL) {
        if (s->n >= r->max_per_stripe || !grow(s)) {
            pthread_mutex_unlock(&s->mu);
            atomic_fetch_add(&r->full, 1);
            return ROLLUP_FIRST; /* no room to remember it: its polls stay leaves of their own */
        }
        e = insert_slot(s, key);
        memset(e, 0, sizeof(*e));
        e->used = 1;
        memcpy(e->key, key, 16);
        e->interval_start_us = ct->time_us;
        e->policy_gen = policy_gen;
        event_heartbeats_describe(&e->hb, ct);
        s->n++;
        pthread_mutex_unlock(&s->mu);
        return ROLLUP_FIRST;
    }
    struct heartbeats *hb = &e->hb;
    if (hb->count == 0) {
        hb->first_time_us = ct->time_us;
    }
    hb->time_us = ct->time_us;
    hb->count++;
    /* Chain: H = SHA-256(H || body_sha256), from 32 zero bytes at each interval's start, so the
     * record vouches for every poll's content in order without holding them. */
    uint8_t chain[64];
    memcpy(chain, hb->heartbeats_sha256, 32);
    memcpy(chain + 32, ct->body_sha256, 32);
    SHA256(chain, sizeof(chain), hb->heartbeats_sha256);
    event_heartbeats_describe(hb, ct); /* the bot's latest endpoints and enrichment */
    if (e->policy_gen != policy_gen) {
        e->policy_gen = policy_gen;
        *decide_due = true;
    }
    pthread_mutex_unlock(&s->mu);
    atomic_fetch_add(&r->counted, 1);
    atomic_fetch_add(&r->pending, 1);
    return ROLLUP_COUNTED;
}

/* Leaves out of hb what the leaf it names says (source port and proxy too: see desc_of), but
 * its transport (one byte, the same as the leaf's). */
static void name_leaf(struct heartbeats *hb, uint64_t index)
{
    static const struct heartbeats none;
    uint8_t transport = hb->transport; /* kept: a clear count by transport survives erasure */
    event_heartbeats_copy_description(hb, &none);
    hb->transport = transport;
    hb->described_in = index;
}

size_t rollup_take_due(struct rollup *r, unsigned from, unsigned to, uint64_t now_us, bool all,
                       uint64_t erased_before_us, struct rollup_record *out, size_t max)
{
    size_t n = 0;
    uint64_t epoch_us = atomic_load(&r->epoch_us);
    for (unsigned st = from; st < to && st < ROLLUP_STRIPES && n < max; st++) {
        struct stripe *s = &r->stripes[st];
        pthread_mutex_lock(&s->mu);
        for (size_t i = 0; i < s->cap && n < max; i++) {
            struct entry *e = &s->slots[i];
            if (!e->used || (!all && now_us - e->interval_start_us < r->interval_us)) {
                continue;
            }
            if (e->hb.count == 0) {
                if (!all) {
                    erase(s, e); /* a whole interval without a poll: the presence ended */
                    i--;         /* the run after it moved up by one (or stays empty) */
                }
                continue;
            }
            struct rollup_record *o = &out[n];
            o->hb = e->hb;
            memcpy(o->key, e->key, sizeof(o->key));
            o->desc = desc_of(&e->hb);
            if (e->hb.time_us < erased_before_us) {
                /* Erased since counted: who it was must not come back through this record. */
                memset(&o->hb.src, 0, sizeof(o->hb.src));
                memset(&o->hb.peer, 0, sizeof(o->hb.peer));
                o->hb.bot_key[0] = '\0';
                o->desc = 0; /* describes nobody */
            } else if (epoch_us != 0 && e->described_in != 0 && e->described_desc == o->desc &&
                       e->described_epoch == e->hb.time_us / epoch_us) {
                /* Every poll counted is before the end of the named leaf's epoch: erasing that
                 * epoch erases these polls' "who" with their own. */
                name_leaf(&o->hb, e->described_in);
                o->desc = 0;
                atomic_fetch_add(&r->named, 1);
            }
            n++;
            atomic_fetch_sub(&r->pending, e->hb.count);
            e->hb.count = 0;
            e->hb.first_time_us = 0;
            memset(e->hb.heartbeats_sha256, 0, 32);
            e->interval_start_us = now_us;
        }
        pthread_mutex_unlock(&s->mu);
    }
    return n;
}

void rollup_stats(struct rollup *r, struct rollup_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < ROLLUP_STRIPES; i++) {
        pthread_mutex_lock(&r->stripes[i].mu);
        out->entries += r->stripes[i].n;
        pthread_mutex_unlock(&r->stripes[i].mu);
    }
    out->counted = atomic_load(&r->counted);
    out->pending = atomic_load(&r->pending);
    out->full = atomic_load(&r->full);
    out->named = atomic_load(&r->named);
}
