/* undecoded.c -- the per-address bound on undecoded contacts (undecoded.h). */
#include "net/undecoded.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define PROBES 8 /* slots looked at per address: open addressing over a short run */

struct slot {
    uint8_t ip[16];
    uint8_t family; /* 0: free */
    uint32_t count; /* recorded in the current window */
    uint32_t suppressed;
    uint64_t window_start_ms;
};

struct undecoded_limit {
    pthread_mutex_t mu;
    struct slot *slots;
    uint32_t nslots; /* a power of two */
    uint32_t per_window;
    uint32_t window_ms;
    struct undecoded_limit_stats stats;
};

struct undecoded_limit *undecoded_limit_new(uint32_t slots, uint32_t per_window, uint32_t window_ms)
{
    struct undecoded_limit *l = calloc(1, sizeof(*l));
    if (l == NULL) {
        return NULL;
    }
    uint32_t n = 16;
    while (n < slots && n < (1u << 24)) {
        n <<= 1;
    }
    l->slots = calloc(n, sizeof(*l->slots));
    if (l->slots == NULL) {
        free(l);
        return NULL;
    }
    l->nslots = n;
    l->per_window = per_window;
    l->window_ms = window_ms;
    pthread_mutex_init(&l->mu, NULL);
    return l;
}

void undecoded_limit_free(struct undecoded_limit *l)
{
    if (l == NULL) {
        return;
    }
    pthread_mutex_destroy(&l->mu);
    free(l->slots);
    free(l);
}

static uint32_t hash_ip(const struct net_addr *a)
{
    /* FNV-1a over the address bytes: spread, not secrecy (a flood choosing addresses that
     * collide only evicts its own counts earlier). */
    uint32_t h = 2166136261u;
    size_t n = a->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ a->ip[i]) * 16777619u;
    }
    return h;
}

static bool same_ip(const struct slot *s, const struct net_addr *a)
{
    size_t n = a->family == AF_INET ? 4 : 16;
    return s->family == a->family && memcmp(s->ip, a->ip, n) == 0;
}

bool undecoded_limit_admit(struct undecoded_limit *l, const struct net_addr *addr, uint64_t now_ms,
                           uint32_t *suppressed)
{
    *suppressed = 0;
    if (l->per_window == 0) {
        return true; /* no bound configured */
    }
    pthread_mutex_lock(&l->mu);
    uint32_t mask = l->nslots - 1;
    uint32_t h = hash_ip(addr);
    struct slot *found = NULL;
    struct slot *victim = NULL;
    for (uint32_t i = 0; i < PROBES; i++) {
        struct slot *s = &l->slots[(h + i) & mask];
        if (s->family != 0 && same_ip(s, addr)) {
            found = s;
            break;
        }
        /* Should addr be new: a free slot, else the one whose window started longest ago. */
        bool better =
            victim == NULL || (victim->family != 0 &&
                               (s->family == 0 || s->window_start_ms < victim->window_start_ms));
        if (better) {
            victim = s;
        }
    }
    if (found == NULL) {
        if (victim->family != 0) {
            l->stats.forgotten += victim->suppressed;
        }
        memset(victim, 0, sizeof(*victim));
        victim->family = (uint8_t)addr->family;
        memcpy(victim->ip, addr->ip, addr->family == AF_INET ? 4 : 16);
        victim->window_start_ms = now_ms;
        found = victim;
    }
    if (now_ms - found->window_start_ms >= l->window_ms) {
        found->window_start_ms = now_ms;
        found->count = 0;
    }
    bool admit = found->count < l->per_window;
    if (admit) {
        found->count++;
        *suppressed = found->suppressed;
        found->suppressed = 0;
        l->stats.recorded++;
    } else {
        if (found->suppressed < UINT32_MAX) {
            found->suppressed++;
        }
        l->stats.suppressed++;
    }
    pthread_mutex_unlock(&l->mu);
    return admit;
}

void undecoded_limit_stats(struct undecoded_limit *l, struct undecoded_limit_stats *out)
{
    if (l == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    pthread_mutex_lock(&l->mu);
    *out = l->stats;
    pthread_mutex_unlock(&l->mu);
}
