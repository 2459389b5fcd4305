/* keyset.h -- a set of 16-byte keys (bot keys, addresses, bot+authorisation pairs). The plain
 * set is for one thread; the sharded variant may be shared by worker threads. */
#ifndef SINKD_UTIL_KEYSET_H
#define SINKD_UTIL_KEYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYSET_KEY 16

struct keyset {
    uint8_t (*slots)[KEYSET_KEY + 1]; /* byte 0: used */
    size_t cap;                       /* power of two, or 0 */
    size_t n;
};

/* 1 added, 0 already present, -1 out of memory. */
int keyset_add(struct keyset *s, const uint8_t key[KEYSET_KEY]);
bool keyset_contains(const struct keyset *s, const uint8_t key[KEYSET_KEY]);
/* 1 removed, 0 was not there. */
int keyset_remove(struct keyset *s, const uint8_t key[KEYSET_KEY]);
void keyset_free(struct keyset *s);

/* Thread-safe set: 64 shards, each a keyset under its own mutex. */
struct keyset_shared;
struct keyset_shared *keyset_shared_new(void);
void keyset_shared_free(struct keyset_shared *s);
int keyset_shared_add(struct keyset_shared *s, const uint8_t key[KEYSET_KEY]);
bool keyset_shared_contains(struct keyset_shared *s, const uint8_t key[KEYSET_KEY]);
int keyset_shared_remove(struct keyset_shared *s, const uint8_t key[KEYSET_KEY]);
size_t keyset_shared_count(struct keyset_shared *s);

#endif
