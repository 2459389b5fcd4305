/* banlist.c -- refusal counts per one-second window in a fixed open-addressing table, and the
 * banned addresses with their expiry in a fixed array. */
#include "net/banlist.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define WINDOW_SLOTS 4096 /* distinct refused addresses counted per second; a power of two */
#define WINDOW_PROBES 16  /* a full neighbourhood means the address is not counted this second */

struct window_slot {
    struct synfilter_addr addr;
    uint32_t count; /* 0: slot free */
};

struct ban {
    struct synfilter_addr addr;
    uint64_t until_ms;
};

struct banlist {
    pthread_mutex_t mu;
    struct banlist_limits lim;
    uint64_t window_s; /* the second the slots count */
    uint32_t window_used;
    uint64_t generation; /* advances whenever the banned set changes; starts at 1 */
    uint64_t bans;
    uint64_t full;
    uint32_t nbanned;
    struct window_slot slots[WINDOW_SLOTS];
    struct ban banned[]; /* lim.max entries */
};

struct banlist *banlist_new(const struct banlist_limits *lim)
{
    struct banlist *b = calloc(1, sizeof(*b) + (size_t)lim->max * sizeof(struct ban));
    if (b == NULL) {
        return NULL;
    }
    b->lim = *lim;
    pthread_mutex_init(&b->mu, NULL);
    b->generation = 1;
    return b;
}

void banlist_free(struct banlist *b)
{
    if (b == NULL) {
        return;
    }
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static uint32_t slot_hash(const struct synfilter_addr *addr)
{
    /* FNV-1a: attackers choosing addresses only crowd their own neighbourhood out of being
     * counted, which costs them nothing they had (they are still rate-limited). */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < sizeof(addr->b); i++) {
        h = (h ^ addr->b[i]) * 16777619u;
    }
    return h & (WINDOW_SLOTS - 1);
}

static struct ban *find_ban(struct banlist *b, const struct synfilter_addr *addr)
{
    for (uint32_t i = 0; i < b->nbanned; i++) {
        if (synfilter_addr_cmp(&b->banned[i].addr, addr) == 0) {
            return &b->banned[i];
        }
    }
    return NULL;
}

/* Returns true if addr was not banned and now is. */
static bool ban(struct banlist *b, const struct synfilter_addr *addr, uint64_t now_ms)
{
    struct ban *existing = find_ban(b, addr);
    if (existing != NULL) {
        /* Refused again while banned: connections that were already queued (or in flight)
         * when the filter began dropping its SYNs. Extend rather than count a second ban. */
        existing->until_ms = now_ms + b->lim.ban_ms;
        return false;
    }
    if (b->nbanned >= b->lim.max) {
        b->full++;
        return false;
    }
    b->banned[b->nbanned++] = (struct ban){.addr = *addr, .until_ms = now_ms + b->lim.ban_ms};
    b->bans++;
    b->generation++;
    return true;
}

bool banlist_refused(struct banlist *b, const struct synfilter_addr *addr, uint64_t now_ms)
{
    if (b->lim.after == 0) {
        return false;
    }
    bool banned = false;
    pthread_mutex_lock(&b->mu);
    uint64_t now_s = now_ms / 1000;
    if (now_s != b->window_s) {
        if (b->window_used > 0) {
            memset(b->slots, 0, sizeof(b->slots));
            b->window_used = 0;
        }
        b->window_s = now_s;
    }
    uint32_t h = slot_hash(addr);
    for (uint32_t p = 0; p < WINDOW_PROBES; p++) {
        struct window_slot *s = &b->slots[(h + p) & (WINDOW_SLOTS - 1)];
        if (s->count == 0) {
            s->addr = *addr;
            b->window_used++;
        } else if (synfilter_addr_cmp(&s->addr, addr) != 0) {
            continue;
        }
        /* Counting stops at `after`, so an address is banned once per window. */
        if (s->count < b->lim.after && ++s->count == b->lim.after) {
            banned = ban(b, addr, now_ms);
        }
        break;
    }
    pthread_mutex_unlock(&b->mu);
    return banned;
}

static int cmp_addr(const void *a, const void *b)
{
    return synfilter_addr_cmp(a, b);
}

bool banlist_snapshot(struct banlist *b, uint64_t now_ms, uint64_t *gen, struct synfilter_addr *out,
                      size_t *n)
{
    pthread_mutex_lock(&b->mu);
    for (uint32_t i = 0; i < b->nbanned;) {
        if (b->banned[i].until_ms <= now_ms) {
            b->banned[i] = b->banned[--b->nbanned];
            b->generation++;
        } else {
            i++;
        }
    }
    bool changed = *gen != b->generation;
    if (changed) {
        for (uint32_t i = 0; i < b->nbanned; i++) {
            out[i] = b->banned[i].addr;
        }
        *n = b->nbanned;
        *gen = b->generation;
    }
    pthread_mutex_unlock(&b->mu);
    if (changed) {
        qsort(out, *n, sizeof(*out), cmp_addr);
    }
    return changed;
}

void banlist_stats(struct banlist *b, struct banlist_stats *out)
{
    pthread_mutex_lock(&b->mu);
    out->banned = b->nbanned;
    out->bans = b->bans;
    out->full = b->full;
    pthread_mutex_unlock(&b->mu);
}
