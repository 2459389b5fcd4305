/* internal.h -- what the registry's own files share (not part of the module contract). */
#ifndef SINKD_REGISTRY_INTERNAL_H
#define SINKD_REGISTRY_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

struct registry;
struct registry_follower;
struct registry_log_ops;
struct net_addr;

uint64_t registry_internal_bad_records(const struct registry *reg);
/* The follower slot of a registry (NULL when none runs). */
struct registry_follower **registry_internal_follower(struct registry *reg);
/* True when called on the registry's follower thread. */
bool registry_internal_on_follower_thread(struct registry *reg);
/* The evidence log's reader as registry_log_ops, or NULL when this build has none. */
const struct registry_log_ops *registry_internal_evlog_ops(void);

/* event_bot_key() text (32 hex digits, either case) -> the 16 bytes stored. */
bool registry_internal_key_from_hex(const char *hex, uint8_t out[16]);
/* An address as a source_ip key: 4 or 16 network-order bytes (0 for no address). */
int registry_internal_ip_key_len(const struct net_addr *a);

struct db;
/* For query.c: the registry's database connection; the check every query makes first (no
 * follower thread owns the connection; this connection's own open batch written so the query
 * sees it), 0 or a REGISTRY_ error with err; a driver error as "registry: WHAT: message"
 * (returns REGISTRY_ERR); a stored key as event_bot_key() text (at most its 16 bytes). */
struct db *registry_internal_db(struct registry *reg);
int registry_internal_reader_ok(struct registry *reg, char *err, size_t errlen);
int registry_internal_db_err(struct registry *reg, char *err, size_t errlen, const char *what);
void registry_internal_key_to_hex(const uint8_t *key, size_t len, char out[33]);

/* An erasure record applied (erase.c): the personal data of bots and source addresses last seen
 * before before_us, and the addresses of the days wholly before it, replaced by random stand-ins
 * that keep every count. Runs inside the caller's transaction. 0 or -1 with err. */
int registry_internal_erase(struct db *db, uint64_t before_us, char *err, size_t errlen);

#endif
