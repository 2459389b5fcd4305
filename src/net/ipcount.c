/* ipcount.c -- sharded hash table of per-address connection counts and token buckets. */
#include "net/ipcount.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define IPCOUNT_SHARDS 64
#define IPCOUNT_BUCKETS 1024 /* per shard; chains are bounded by max_tracked overall */

struct ipcount_node {
    struct ipcount_node *next;
    uint8_t family;
    uint8_t ip[16];
    uint32_t open;
    uint64_t tokens_milli; /* tokens x 1000, so refills below one token per ms are not lost */
    uint64_t refill_ms;    /* time of the last refill */
};

struct ipcount_shard {
    pthread_mutex_t mu;
    struct ipcount_node *buckets[IPCOUNT_BUCKETS];
};

struct ipcount {
    struct ipcount_shard shards[IPCOUNT_SHARDS];
    _Atomic uint64_t tracked;
    uint64_t max_tracked;
};

static uint64_t ip_hash(const struct net_addr *a)
{
    /* FNV-1a: distribution only matters for load spreading, not for security, since an attacker
     * choosing addresses only lengthens chains it is itself capped on. */
    uint64_t h = 1469598103934665603ull;
    size_t n = a->family == AF_INET ? 4 : 16;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ a->ip[i]) * 1099511628211ull;
    }
    return h;
}

/* Only the address bytes of the family count: callers may leave junk after an IPv4 address. */
static struct net_addr ip_key(const struct net_addr *a)
{
    struct net_addr key;
    memset(&key, 0, sizeof(key));
    key.family = a->family;
    memcpy(key.ip, a->ip, a->family == AF_INET ? 4 : 16);
    return key;
}

struct ipcount *ipcount_new(uint32_t max_tracked)
{
    struct ipcount *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        for (size_t i = 0; i < IPCOUNT_SHARDS; i++) {
            pthread_mutex_init(&t->shards[i].mu, NULL);
        }
        t->max_tracked = max_tracked;
    }
    return t;
}

void ipcount_free(struct ipcount *t)
{
    if (t == NULL) {
        return;
    }
    for (size_t i = 0; i < IPCOUNT_SHARDS; i++) {
        for (size_t b = 0; b < IPCOUNT_BUCKETS; b++) {
            struct ipcount_node *n = t->shards[i].buckets[b];
            while (n != NULL) {
                struct ipcount_node *next = n->next;
                free(n);
                n = next;
            }
        }
        pthread_mutex_destroy(&t->shards[i].mu);
    }
    free(t);
}

static void refill(struct ipcount_node *n, const struct ipcount_limits *lim, uint64_t now_ms)
{
    if (now_ms > n->refill_ms) {
        uint64_t add = (now_ms - n->refill_ms) * lim->rate; /* tokens x 1000 */
        uint64_t cap = (uint64_t)lim->burst * 1000u;
        n->tokens_milli = n->tokens_milli + add > cap ? cap : n->tokens_milli + add;
        n->refill_ms = now_ms;
    }
}

/* A node with no open connection and a full bucket carries no information: forget it. Done on
 * the chain being walked, so the cost stays with the address's own bucket. */
static bool forgettable(const struct ipcount_node *n, const struct ipcount_limits *lim,
                        uint64_t now_ms)
{
    if (n->open > 0) {
        return false;
    }
    if (lim->rate == 0) {
        return true;
    }
    uint64_t full_at = n->refill_ms + ((uint64_t)lim->burst * 1000u - n->tokens_milli) / lim->rate;
    return now_ms >= full_at;
}

enum ipcount_verdict ipcount_acquire(struct ipcount *t, const struct net_addr *in,
                                     const struct ipcount_limits *lim, uint64_t now_ms)
{
    struct net_addr key = ip_key(in);
    uint64_t h = ip_hash(&key);
    struct ipcount_shard *s = &t->shards[h % IPCOUNT_SHARDS];
    enum ipcount_verdict v = IPCOUNT_OK;
    pthread_mutex_lock(&s->mu);
    struct ipcount_node **p = &s->buckets[(h >> 8) % IPCOUNT_BUCKETS];
    struct ipcount_node *found = NULL;
    while (*p != NULL) {
        struct ipcount_node *n = *p;
        if (n->family == key.family && memcmp(n->ip, key.ip, 16) == 0) {
            found = n;
            p = &n->next;
        } else if (forgettable(n, lim, now_ms)) {
            *p = n->next;
            free(n);
            atomic_fetch_sub(&t->tracked, 1);
        } else {
            p = &n->next;
        }
    }
    if (found == NULL) {
        /* Too many distinct addresses to remember: fail closed for new ones rather than grow
         * without bound (the global connection cap still applies to everyone). */
        if (atomic_load(&t->tracked) >= t->max_tracked ||
            (found = calloc(1, sizeof(*found))) == NULL) {
            v = IPCOUNT_NOMEM;
        } else {
            found->family = key.family;
            memcpy(found->ip, key.ip, 16);
            found->tokens_milli = (uint64_t)lim->burst * 1000u;
            found->refill_ms = now_ms;
            found->next = s->buckets[(h >> 8) % IPCOUNT_BUCKETS];
            s->buckets[(h >> 8) % IPCOUNT_BUCKETS] = found;
            atomic_fetch_add(&t->tracked, 1);
        }
    }
    if (v == IPCOUNT_OK) {
        refill(found, lim, now_ms);
        if (found->open >= lim->max_open) {
            v = IPCOUNT_TOO_MANY;
        } else if (lim->rate > 0 && found->tokens_milli < 1000) {
            v = IPCOUNT_TOO_FAST;
        } else {
            if (lim->rate > 0) {
                found->tokens_milli -= 1000;
            }
            found->open++;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return v;
}

void ipcount_release(struct ipcount *t, const struct net_addr *in)
{
    struct net_addr key = ip_key(in);
    uint64_t h = ip_hash(&key);
    struct ipcount_shard *s = &t->shards[h % IPCOUNT_SHARDS];
    pthread_mutex_lock(&s->mu);
    for (struct ipcount_node *n = s->buckets[(h >> 8) % IPCOUNT_BUCKETS]; n != NULL; n = n->next) {
        if (n->family == key.family && memcmp(n->ip, key.ip, 16) == 0) {
            if (n->open > 0) {
                n->open--;
            }
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
}

uint64_t ipcount_tracked(struct ipcount *t)
{
    return atomic_load(&t->tracked);
}

void ipcount_sweep(struct ipcount *t, const struct ipcount_limits *lim, uint64_t now_ms,
                   unsigned shard)
{
    struct ipcount_shard *s = &t->shards[shard % IPCOUNT_SHARDS];
    pthread_mutex_lock(&s->mu);
    for (size_t b = 0; b < IPCOUNT_BUCKETS; b++) {
        struct ipcount_node **p = &s->buckets[b];
        while (*p != NULL) {
            struct ipcount_node *n = *p;
            if (forgettable(n, lim, now_ms)) {
                *p = n->next;
                free(n);
                atomic_fetch_sub(&t->tracked, 1);
            } else {
                p = &n->next;
            }
        }
    }
    pthread_mutex_unlock(&s->mu);
}
