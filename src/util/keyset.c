/* keyset.c -- open-addressing hash set of fixed 16-byte keys, plus a sharded locked variant. */
#include "util/keyset.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static uint64_t key_hash(const uint8_t *k)
{
    /* Keys are SHA-256 prefixes or addresses: FNV-1a spreads both well enough. */
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < KEYSET_KEY; i++) {
        h = (h ^ k[i]) * 1099511628211ull;
    }
    return h;
}

static int grow(struct keyset *s)
{
    size_t cap = s->cap ? s->cap * 2 : 64;
    uint8_t(*slots)[KEYSET_KEY + 1] = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i][0]) {
            size_t j = key_hash(s->slots[i] + 1) & (cap - 1);
            while (slots[j][0]) {
                j = (j + 1) & (cap - 1);
            }
            memcpy(slots[j], s->slots[i], KEYSET_KEY + 1);
        }
    }
    free(s->slots);
    s->slots = slots;
    s->cap = cap;
    return 0;
}

bool keyset_contains(const struct keyset *s, const uint8_t key[KEYSET_KEY])
{
    if (s->cap == 0) {
        return false;
    }
    size_t j = key_hash(key) & (s->cap - 1);
    while (s->slots[j][0]) {
        if (memcmp(s->slots[j] + 1, key, KEYSET_KEY) == 0) {
            return true;
        }
        j = (j + 1) & (s->cap - 1);
    }
    return false;
}

int keyset_add(struct keyset *s, const uint8_t key[KEYSET_KEY])
{
    if ((s->n + 1) * 2 > s->cap && grow(s) != 0) {
        return -1;
    }
    size_t j = key_hash(key) & (s->cap - 1);
    while (s->slots[j][0]) {
        if (memcmp(s->slots[j] + 1, key, KEYSET_KEY) == 0) {
            return 0;
        }
        j = (j + 1) & (s->cap - 1);
    }
    s->slots[j][0] = 1;
    memcpy(s->slots[j] + 1, key, KEYSET_KEY);
    s->n++;
    return 1;
}

int keyset_remove(struct keyset *s, const uint8_t key[KEYSET_KEY])
{
    if (s->cap == 0) {
        return 0;
    }
    size_t mask = s->cap - 1;
    size_t j = key_hash(key) & mask;
    while (s->slots[j][0] && memcmp(s->slots[j] + 1, key, KEYSET_KEY) != 0) {
        j = (j + 1) & mask;
    }
    if (!s->slots[j][0]) {
        return 0;
    }
    /* Backward shift: a later key of the run moves into the hole when its home slot does not
     * lie (cyclically) between the hole and it, so every remaining key stays reachable. */
    size_t hole = j;
    for (size_t k = (j + 1) & mask; s->slots[k][0]; k = (k + 1) & mask) {
        size_t home = key_hash(s->slots[k] + 1) & mask;
        bool stays = hole <= k ? (hole < home && home <= k) : (hole < home || home <= k);
        if (!stays) {
            memcpy(s->slots[hole], s->slots[k], KEYSET_KEY + 1);
            hole = k;
        }
    }
    s->slots[hole][0] = 0;
    s->n--;
    return 1;
}

void keyset_free(struct keyset *s)
{
    free(s->slots);
    memset(s, 0, sizeof(*s));
}

#define KEYSET_SHARDS 64

struct keyset_shared {
    struct {
        pthread_mutex_t mu;
        struct keyset set;
    } shard[KEYSET_SHARDS];
};

struct keyset_shared *keyset_shared_new(void)
{
    struct keyset_shared *s = calloc(1, sizeof(*s));
    if (s != NULL) {
        for (int i = 0; i < KEYSET_SHARDS; i++) {
            pthread_mutex_init(&s->shard[i].mu, NULL);
        }
    }
    return s;
}

void keyset_shared_free(struct keyset_shared *s)
{
    if (s == NULL) {
        return;
    }
    for (int i = 0; i < KEYSET_SHARDS; i++) {
        keyset_free(&s->shard[i].set);
        pthread_mutex_destroy(&s->shard[i].mu);
    }
    free(s);
}

static unsigned shard_of(const uint8_t key[KEYSET_KEY])
{
    return (unsigned)(key_hash(key) >> 58);
}

int keyset_shared_add(struct keyset_shared *s, const uint8_t key[KEYSET_KEY])
{
    unsigned i = shard_of(key);
    pthread_mutex_lock(&s->shard[i].mu);
    int rc = keyset_add(&s->shard[i].set, key);
    pthread_mutex_unlock(&s->shard[i].mu);
    return rc;
}

bool keyset_shared_contains(struct keyset_shared *s, const uint8_t key[KEYSET_KEY])
{
    unsigned i = shard_of(key);
    pthread_mutex_lock(&s->shard[i].mu);
    bool found = keyset_contains(&s->shard[i].set, key);
    pthread_mutex_unlock(&s->shard[i].mu);
    return found;
}

int keyset_shared_remove(struct keyset_shared *s, const uint8_t key[KEYSET_KEY])
{
    unsigned i = shard_of(key);
    pthread_mutex_lock(&s->shard[i].mu);
    int rc = keyset_remove(&s->shard[i].set, key);
    pthread_mutex_unlock(&s->shard[i].mu);
    return rc;
}

size_t keyset_shared_count(struct keyset_shared *s)
{
    size_t n = 0;
    for (int i = 0; i < KEYSET_SHARDS; i++) {
        pthread_mutex_lock(&s->shard[i].mu);
        n += s->shard[i].set.n;
        pthread_mutex_unlock(&s->shard[i].mu);
    }
    return n;
}
