/* ipcount.c -- sharded hash table of open connections per source IP. */
#include "net/ipcount.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define IPCOUNT_SHARDS 64
#define IPCOUNT_BUCKETS                                                                            \
    1024 /* per shard; chains grow with distinct IPs, bounded by connections                       \
          */

struct ipcount_node {
    struct ipcount_node *next;
    uint8_t family;
    uint8_t ip[16];
    uint32_t count;
};

struct ipcount_shard {
    pthread_mutex_t mu;
    struct ipcount_node *buckets[IPCOUNT_BUCKETS];
};

struct ipcount {
    struct ipcount_shard shards[IPCOUNT_SHARDS];
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

struct ipcount *ipcount_new(void)
{
    struct ipcount *t = calloc(1, sizeof(*t));
    if (t != NULL) {
        for (size_t i = 0; i < IPCOUNT_SHARDS; i++) {
            pthread_mutex_init(&t->shards[i].mu, NULL);
        }
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

static struct ipcount_node **find(struct ipcount_shard *s, uint64_t h, const struct net_addr *a)
{
    struct ipcount_node **p = &s->buckets[(h >> 8) % IPCOUNT_BUCKETS];
    while (*p != NULL && !((*p)->family == a->family && memcmp((*p)->ip, a->ip, 16) == 0)) {
        p = &(*p)->next;
    }
    return p;
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

bool ipcount_acquire(struct ipcount *t, const struct net_addr *in, uint32_t limit)
{
    struct net_addr key = ip_key(in);
    const struct net_addr *addr = &key;
    uint64_t h = ip_hash(addr);
    struct ipcount_shard *s = &t->shards[h % IPCOUNT_SHARDS];
    bool ok = true;
    pthread_mutex_lock(&s->mu);
    struct ipcount_node **p = find(s, h, addr);
    if (*p == NULL) {
        struct ipcount_node *n = calloc(1, sizeof(*n));
        if (n == NULL) {
            ok = false;
        } else {
            n->family = addr->family;
            memcpy(n->ip, addr->ip, 16);
            n->count = 1;
            *p = n;
        }
    } else if ((*p)->count >= limit) {
        ok = false;
    } else {
        (*p)->count++;
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

void ipcount_release(struct ipcount *t, const struct net_addr *in)
{
    struct net_addr key = ip_key(in);
    const struct net_addr *addr = &key;
    uint64_t h = ip_hash(addr);
    struct ipcount_shard *s = &t->shards[h % IPCOUNT_SHARDS];
    pthread_mutex_lock(&s->mu);
    struct ipcount_node **p = find(s, h, addr);
    if (*p != NULL && --(*p)->count == 0) {
        struct ipcount_node *n = *p;
        *p = n->next;
        free(n);
    }
    pthread_mutex_unlock(&s->mu);
}
