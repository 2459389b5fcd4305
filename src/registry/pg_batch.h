/* pg_batch.h -- the PostgreSQL write path: a batch of log records applied set-wise. The rows the
 * batch touches are read in a few bulk queries, the records are applied to them in memory in log
 * order by exactly the rules registry.c's per-record statements follow on SQLite, and the changed
 * rows go back in one multi-row statement per table: a handful of round trips per batch instead
 * of one or two per record. Internal to src/registry: pg_batch.c is the in-memory model and its
 * rules, pg_batch_io.c reads and writes the rows through libpq. */
#ifndef SINKD_REGISTRY_PG_BATCH_H
#define SINKD_REGISTRY_PG_BATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "registry/db.h"

#define PGB_NONE UINT32_MAX

/* A row as the batch knows it: looked up and not in the database (ABSENT), there (LIVE), or
 * deleted by the batch (GONE: an address-keyed bot folded into the bot it turned out to be). */
enum pgb_state { PGB_ABSENT = 0, PGB_LIVE = 1, PGB_GONE = 2 };

/* A bot row: every column of table bot. */
struct pgb_bot {
    uint8_t key[16];
    int64_t id;     /* the row's id; for a row the batch made, assigned when it is written */
    uint8_t state;  /* enum pgb_state */
    bool in_db;     /* the row existed before the batch */
    bool dirty;     /* to be written back */
    uint32_t made;  /* rows the batch made: their order of making (ids follow it) */
    uint32_t rem;   /* first of its remediation rows (struct pgb_rem.next), PGB_NONE */
    uint32_t days;  /* first of its day_bot pairs (struct pgb_pair.next), PGB_NONE */
    bool anon;      /* keyed by family and address (event_bot_key of a contact without identity) */
    bool want_rem;  /* a decision or command names it: its remediation rows are read */
    bool days_read; /* all its stored day_bot pairs are in the batch's set (PAIR_PRESENT) */
    char family[16], host[64], user[64], os[32], local_ip[46], campaign[64], version[32];
    char src_ip[NET_ADDR_STRLEN], dst_ip[NET_ADDR_STRLEN], node[32], cc[3], tags[64];
    char authorisation[64];
    int64_t first_seen_us, last_seen_us, src_port, dst_port, transport, asn, contacts;
    int64_t commanded_at_us, last_verdict, last_decision_us, seen_after_command;
    int64_t last_seen_after_command_us;
};

/* A source_ip row; key is 4 or 16 address bytes (len 0: a contact without an address). */
struct pgb_ip {
    uint8_t key[16];
    uint8_t len;
    uint8_t state;
    bool in_db, dirty;
    char cc[3];
    int64_t asn, first_seen_us, last_seen_us, contacts, identified;
};

/* The counters of a remediation row, in the table's column order. */
enum pgb_rem_col {
    REM_SEND_DECISIONS,
    REM_FIRST_SEND,
    REM_DRY_RUNS,
    REM_FIRST_DRY_RUN,
    REM_COMMANDS_SENT,
    REM_FIRST_COMMAND,
    REM_COMMANDS_FAILED,
    REM_FIRST_FAILED,
    REM_SEEN_AFTER,
    REM_FIRST_AFTER,
    REM_LAST_AFTER,
    REM_FIRST_AFTER_1H,
    REM_FIRST_AFTER_24H,
    REM_COLS
};

struct pgb_rem {
    uint32_t bot;  /* index into bots */
    uint32_t next; /* the bot's next remediation row, PGB_NONE */
    bool in_db, dirty;
    char authorisation[64];
    int64_t v[REM_COLS];
};

/* A (day, member) pair of a per-day set (day_bot, day_ip, day_commanded). */
enum pgb_pair_state {
    PAIR_INSERT = 1,  /* new: written by the batch */
    PAIR_PRESENT = 2, /* in the database already */
    PAIR_DROPPED = 3, /* inserted by the batch, then its bot was folded away: never written */
    PAIR_DELETE = 4,  /* in the database, its bot folded away: deleted by the batch */
};

struct pgb_pair {
    int64_t day;
    uint32_t member; /* index into bots or ips */
    uint32_t next;   /* day_bot: the bot's next pair, PGB_NONE */
    uint8_t state;
};

/* Per-day, per-country counters (day_cc) and per-day remediation counters (day_remediation),
 * both added to the stored rows. */
struct pgb_daycc {
    int64_t day;
    char cc[3];
    int64_t bots, ips, contacts;
};

struct pgb_dayrem {
    int64_t day;
    int64_t sent, failed, seen;
};

/* Open-addressing index over a vector's elements: slot holds element index + 1 (0 empty). */
struct pgb_index {
    uint32_t *slot;
    uint64_t *hash;
    size_t cap, n;
};

#define PGB_VEC(type, name)                                                                        \
    type *name;                                                                                    \
    size_t name##_n, name##_cap

enum pgb_set { SET_DAY_BOT, SET_DAY_IP, SET_DAY_COMMANDED, SET_COUNT };

struct pg_batch {
    /* The records, as the log holds them, until the batch is written. */
    uint8_t *entries;
    size_t entries_len, entries_cap;
    PGB_VEC(uint32_t, offsets); /* where each record starts; its length is up to the next */

    PGB_VEC(struct pgb_bot, bots);
    PGB_VEC(struct pgb_ip, ips);
    PGB_VEC(struct pgb_rem, rems);
    PGB_VEC(struct pgb_daycc, daycc);
    PGB_VEC(struct pgb_dayrem, dayrem);
    struct {
        PGB_VEC(struct pgb_pair, pairs);
        struct pgb_index index;
    } set[SET_COUNT];
    struct pgb_index bot_index, ip_index, rem_index, daycc_index, dayrem_index;
    uint32_t made;            /* bots made so far */
    int64_t day_min, day_max; /* of the contacts: what day_commanded is read for */
    uint64_t round_trips;     /* synchronous queries the rules needed (out-of-order days, ...) */
    uint64_t pair_conflicts;  /* batches whose new per-day pairs met stored ones (pairs_copy) */
    bool staged;              /* the staging tables were filled in the open transaction */
    struct pg_conn *conn;
};

/* pg_batch.c: the model. */
uint32_t pgb_bot_find(struct pg_batch *b, const uint8_t key[16]);
uint32_t pgb_bot_add(struct pg_batch *b, const uint8_t key[16]); /* a new ABSENT row */
uint32_t pgb_ip_find(struct pg_batch *b, const uint8_t *key, int len);
uint32_t pgb_ip_add(struct pg_batch *b, const uint8_t *key, int len);
uint32_t pgb_rem_add(struct pg_batch *b, uint32_t bot, const char *authorisation);
/* Adds a pair in `state` (it must not be there yet); returns its index, PGB_NONE when out of
 * memory. */
uint32_t pgb_pair_put(struct pg_batch *b, enum pgb_set s, int64_t day, uint32_t member,
                      uint8_t state);
uint32_t pgb_pair_find(struct pg_batch *b, enum pgb_set s, int64_t day, uint32_t member);
/* The key a contact without identity is counted under (family and source address). */
void pgb_anon_key(const struct contact *c, uint8_t key[16]);
/* The contact apply_heartbeats() (registry.c) applies for a heartbeats record's first poll. */
void pgb_heartbeat_contact(const struct heartbeats *hb, struct contact *c);
/* Record i of the batch, decoded. Returns 0 or -1 with err set. */
int pgb_record(const struct pg_batch *b, size_t i, struct record *rec, char *err, size_t errlen);

/* pg_batch_io.c: the database side. Each returns 0 or -1 with err set. */
/* Reads the source_ip, bot, remediation and day_commanded rows the batch's records touch, and
 * the day_bot pairs of the address-keyed bots among them (what a fold deletes). */
int pgb_load(struct pg_batch *b, char *err, size_t errlen);
/* Writes every changed row back into the open transaction. */
int pgb_store(struct pg_batch *b, char *err, size_t errlen);
/* Whether (day, member) is in the stored per-day set (only asked for a day earlier than the
 * member's last, which a log applied out of time order brings): 1, 0, or -1. */
int pgb_pair_stored(struct pg_batch *b, enum pgb_set s, int64_t day, uint32_t member, char *err,
                    size_t errlen);

/* ---- what registry.c calls ---- */
int pg_batch_new(struct pg_batch **out);
void pg_batch_free(struct pg_batch *b);
/* Keeps one log entry (already decoded once by the caller: it is valid). Returns 0 or -1. */
int pg_batch_add(struct pg_batch *b, const uint8_t *entry, size_t len);
size_t pg_batch_records(const struct pg_batch *b);
/* Applies the kept records into the open transaction of `db` and empties the batch (also on
 * failure, when the caller rolls back). Returns 0 or -1 with err set. */
int pg_batch_write(struct pg_batch *b, struct db *db, char *err, size_t errlen);
/* Drops the kept records: the caller's transaction ended (committed or rolled back). */
void pg_batch_clear(struct pg_batch *b);

#endif
