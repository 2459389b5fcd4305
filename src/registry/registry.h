/* registry.h -- the victim registry: a derived, rebuildable view of the evidence log (one row per
 * bot, per-source-IP and per-day aggregates) behind one backend-neutral interface. */
#ifndef SINKD_REGISTRY_REGISTRY_H
#define SINKD_REGISTRY_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "util/addr.h"

/* Error codes (all negative; -1 is the generic failure err_set() returns). */
enum registry_error {
    REGISTRY_ERR = -1,       /* database / I/O failure, message in err */
    REGISTRY_E_DECODE = -2,  /* entry is not a valid record; it is counted and skipped */
    REGISTRY_E_GAP = -3,     /* log_index is beyond the next index to apply */
    REGISTRY_E_BUSY = -4,    /* a follower thread owns the registry's writer */
    REGISTRY_E_VERSION = -5, /* database schema is newer than this build knows */
};

/* Schema version this build migrates to (SQLite: PRAGMA user_version; PostgreSQL: the
 * schema_version row of meta; see docs/registry.md). */
#define REGISTRY_SCHEMA_VERSION 4
/* A batch is committed automatically when it reaches this many records even if the caller never
 * calls registry_flush(), so one transaction (and its WAL growth) stays bounded. */
#define REGISTRY_AUTOFLUSH_RECORDS 100000

struct registry;

/* Opens (creating and migrating as needed) the registry at `path`. A libpq URL
 * ("postgresql://..." or "postgres://...") selects the PostgreSQL backend: one database that
 * several nodes write, each applying its own evidence log (registry_set_source); anything else is
 * an SQLite file, which holds one log. One struct registry is used by one thread at a time. */
int registry_open(struct registry **out, const char *path, char *err, size_t errlen);

/* Longest log name registry_set_source() accepts: an origin (EVLOG_NAME_MAX, 200) and its key
 * id, "origin+8 hex digits". */
#define REGISTRY_SOURCE_MAX 209

/* True for a registry that several logs may share (PostgreSQL), and for a target naming one
 * (whose text, a URL, may carry a password and is not to be logged). */
bool registry_is_shared(const struct registry *reg);
bool registry_target_is_shared(const char *target);
/* How log lines and messages name a target: a path as it is, a PostgreSQL URL never (it may hold
 * a password) but as "the PostgreSQL registry given". */
const char *registry_target_name(const char *target);

/* Names the log about to be applied (registry_open_log: "origin+keyid" of its key), before the
 * first registry_apply or registry_follow_start. A shared registry keeps one applied index per
 * name and refuses to apply without one; an SQLite registry holds one log and only checks the
 * name. Returns 0 or REGISTRY_ERR. */
int registry_set_source(struct registry *reg, const char *name, char *err, size_t errlen);

/* Calls fn(ctx, name, applied) for each log the registry has applied entries of: a shared
 * registry's logs by name ("origin+keyid", registry_set_source) in name order, an SQLite
 * registry's one log as "". A non-zero return from fn stops the walk and is returned. */
typedef int (*registry_source_fn)(void *ctx, const char *name, uint64_t applied);
int registry_sources(struct registry *reg, registry_source_fn fn, void *ctx, char *err,
                     size_t errlen);

/* Opens the registry that the evidence log in `state_dir` feeds: `target` (a path or a
 * PostgreSQL URL), or NULL for state_dir/registry.db. A shared registry is told the log's
 * origin and key id, read from state_dir/keys/log.vkey (registry_set_source). What serve, `sinkd
 * registry` and `sinkd report --catch-up` use. */
int registry_open_log(struct registry **out, const char *target, const char *state_dir, char *err,
                      size_t errlen);

/* Deletes a registry so it can be rebuilt from the log(s): an SQLite file and its WAL, or every
 * table sinkd made in a PostgreSQL database (all nodes' rows: each node's log is applied again
 * afterwards). Returns 0 or REGISTRY_ERR. */
int registry_destroy(const char *target, char *err, size_t errlen);

/* SQLite's private page cache per open registry, in MiB. Small by default: the kernel's page
 * cache holds the database file anyway, and measured (docs/registry.md) 64 MiB instead of 2 made
 * applying only 3-7% faster (300 k to 1 M bots) while costing every serving process 64 MiB,
 * ~200 B per bot held below that size. */
#define REGISTRY_CACHE_MIB_DEFAULT 2u
#define REGISTRY_CACHE_MIB_MAX 65536u

/* Sets the page cache limit (1..REGISTRY_CACHE_MIB_MAX MiB); call before registry_follow_start.
 * Returns 0, or REGISTRY_ERR with err naming the value. */
int registry_set_cache_mib(struct registry *reg, uint32_t mib, char *err, size_t errlen);
/* The page cache limit in effect, in MiB (rounded down), or -1 if SQLite cannot say. */
int64_t registry_cache_mib(struct registry *reg);

/* Commits any open batch and frees everything. NULL is allowed. */
void registry_close(struct registry *reg);

/* Applies log entry `log_index` (canonical record bytes). Entries must be applied in log order:
 * returns 1 applied, 0 already applied (log_index < registry_applied_index(): re-applying is a
 * no-op, so replay after a crash is safe), REGISTRY_E_GAP if log_index skips ahead,
 * REGISTRY_E_DECODE if the bytes do not decode (the index still advances: an undecodable entry
 * is skipped the same way by every rebuild), or another negative code. Work is batched into one
 * transaction until registry_flush(). */
int registry_apply(struct registry *reg, uint64_t log_index, const uint8_t *entry, size_t len,
                   char *err, size_t errlen);

/* Commits the open batch (together with the applied index, so a restart resumes exactly). */
int registry_flush(struct registry *reg, char *err, size_t errlen);

/* Number of log entries applied so far: the index of the next entry to apply. Includes the
 * uncommitted batch. */
uint64_t registry_applied_index(const struct registry *reg);

/* ---- Following the evidence log ---------------------------------------------------------- */

/* How the follower reads a log. The default (ops == NULL in the config) is the evidence log's
 * reader (evidence/log.h); tests and tools may supply their own. next() returns 1 with an entry
 * (valid until the next call), 0 at the durable end (call again later), < 0 on error. size(),
 * optional, returns the number of entries durable now, for the lag figure. */
struct registry_log_ops {
    int (*open)(void **reader, const char *state_dir, uint64_t start_index, char *err,
                size_t errlen);
    int (*next)(void *reader, const uint8_t **entry, size_t *len, uint64_t *index, char *err,
                size_t errlen);
    void (*close)(void *reader);
    int64_t (*size)(void *reader);
};

struct registry_follow_config {
    const char *state_dir;              /* holds log/ */
    const struct registry_log_ops *ops; /* NULL: the evidence log */
    size_t batch_max;                   /* records per transaction; 0 -> 5000 */
    /* Commit a non-empty batch after this long; 0 -> 50. A shared (PostgreSQL) registry's batch
     * also waits at the log's end until then for more records (0 -> 200): each batch costs the
     * database server a fixed share of CPU whatever its size. */
    unsigned batch_ms;
    unsigned idle_ms; /* poll interval at the end of the log; 0 -> 20 */
};

struct registry_follow_stats {
    uint64_t batches;
    uint64_t records;     /* entries applied by the follower */
    uint64_t bad_records; /* REGISTRY_E_DECODE entries skipped */
    uint64_t batch_last, batch_max;
    double batch_avg;
    uint64_t applied_index; /* committed */
    uint64_t log_size_seen; /* largest durable log size the follower has seen */
    uint64_t lag;           /* log_size_seen - applied_index at the last commit */
    uint64_t lag_max;
    double records_per_s; /* over the follower's life so far */
    /* CLOCK_MONOTONIC time (ns) the follower last read to the durable end of the log: while
     * entries wait and this does not move, the registry is falling behind (metrics: seconds
     * behind). 0 before its first time. */
    uint64_t caught_up_ns;
    int error; /* 0, or the code that stopped the follower */
    char error_text[256];
};

/* Starts the one writer thread that tails the log from registry_applied_index(). While it runs,
 * only registry_follow_stats() and registry_follow_stop() may be called on `reg` (other calls
 * return REGISTRY_E_BUSY); reports open their own read-only struct registry. */
int registry_follow_start(struct registry *reg, const struct registry_follow_config *cfg, char *err,
                          size_t errlen);
void registry_follow_stats(struct registry *reg, struct registry_follow_stats *out);
/* Drains what is durable now, commits, joins the thread. Returns the follower's error, if any. */
int registry_follow_stop(struct registry *reg, char *err, size_t errlen);

/* The registry has one writer per state directory: `serve`'s follower thread, `sinkd registry
 * follow` or `sinkd registry rebuild`. Takes DIR/registry.lock (flock, released when the
 * returned descriptor is closed or the process ends); returns the descriptor, or < 0 with err
 * naming the reason (another writer holds it). registry_follow_start takes it itself. */
int registry_lock_writer(const char *state_dir, char *err, size_t errlen);

/* Applies every entry durable now, from registry_applied_index(), and commits: what rebuild and
 * a catch-up at start-up do, on the calling thread. Returns the number of entries read or < 0. */
int64_t registry_catch_up(struct registry *reg, const char *state_dir,
                          const struct registry_log_ops *ops, size_t batch_max, char *err,
                          size_t errlen);

/* ---- Queries (what reports use) ----------------------------------------------------------- */

/* One bot: identity, first/last contact, its latest contact's addresses and enrichment, and its
 * remediation state. */
struct registry_bot {
    char bot_key[33];
    char family[16];
    struct bot_identity bot; /* latest non-empty value of each field */
    uint64_t first_seen_us, last_seen_us;
    struct net_addr src; /* latest contact's source address and port */
    struct net_addr dst; /* latest contact's destination (the seized address) */
    uint8_t transport;   /* enum contact_transport of the latest contact */
    char node[32];
    char cc[3];
    uint32_t asn;
    char tags[64];
    uint64_t contacts;
    uint64_t commanded_at_us; /* first command-sent record; 0 if never */
    char authorisation[64];   /* of the last decision or command */
    uint8_t last_verdict;     /* enum decision_verdict of the last decision; 0 if none */
    uint64_t last_decision_us;
    uint64_t seen_after_command; /* contacts later than commanded_at_us */
    uint64_t last_seen_after_command_us;
};

enum registry_order {
    REGISTRY_ORDER_LAST_SEEN = 0, /* oldest first */
    REGISTRY_ORDER_CC = 1,        /* country, then last seen */
    REGISTRY_ORDER_ASN = 2,       /* ASN, then last seen */
};

/* Which bots a query covers. Zero-initialised means "all". */
struct registry_filter {
    uint64_t since_us; /* last_seen_us >= since_us (0: no bound) */
    uint64_t until_us; /* last_seen_us < until_us (0: no bound) */
    const char *cc;    /* only this country ("" = unknown country); NULL: any */
    bool asn_set;      /* only bots whose ASN is `asn` */
    uint32_t asn;
    const char *tag;   /* with tagged_first: bots carrying this tag come first in each group */
    bool tagged_first; /* order flagged bots before the others (within each cc/ASN group) */
    bool tagged_only;  /* only bots carrying `tag` */
    enum registry_order order;
};

/* Calls fn for each matching bot in the requested order; a non-zero return from fn stops the walk
 * and is returned. `flagged` tells whether the bot carries filter->tag. */
typedef int (*registry_bot_fn)(void *ctx, const struct registry_bot *bot, bool flagged);
int registry_bots(struct registry *reg, const struct registry_filter *f, registry_bot_fn fn,
                  void *ctx, char *err, size_t errlen);

/* Looks one bot up. Returns 1 found, 0 not found, < 0 error. */
int registry_bot_get(struct registry *reg, const char *bot_key, struct registry_bot *out, char *err,
                     size_t errlen);

/* Totals over the filter's window (since/until/cc/asn/tag): bots by identity (bot rows) and
 * source IPs by address (IP rows), each counted by its last contact. */
struct registry_totals {
    uint64_t bots;
    uint64_t identified; /* of the bots, those known by machine information (the rest
                          * are keyed by source address: a passive sinkhole asks none) */
    uint64_t ips;
    uint64_t contacts;           /* contacts of the counted bots */
    uint64_t commanded;          /* counted bots with a command sent */
    uint64_t seen_after_command; /* commanded bots that called again afterwards */
    /* Callers no family decoded (unknown cipher or framing, other HTTP shapes), by address:
     * counted apart from the bots, never among them. The tag filter does not apply. */
    uint64_t undecoded_ips;
    uint64_t undecoded_contacts;
};
int registry_totals(struct registry *reg, const struct registry_filter *f,
                    struct registry_totals *out, char *err, size_t errlen);

enum registry_group {
    REGISTRY_GROUP_CC = 0,
    REGISTRY_GROUP_ASN = 1,
    REGISTRY_GROUP_TAGS = 2, /* the bot's tag list as stored ("hospital,energy") */
    REGISTRY_GROUP_NODE = 3, /* the node that recorded the bot's latest contact */
};

struct registry_group_row {
    char key[64]; /* country code, decimal ASN, tag list or node name; "" unknown */
    uint32_t asn; /* REGISTRY_GROUP_ASN */
    uint64_t count;
};

/* Counts bots (by identity) or source IPs (by address) per group over the filter's window,
 * largest first, at most `limit` rows (0: all). */
typedef int (*registry_group_fn)(void *ctx, const struct registry_group_row *row);
int registry_group_bots(struct registry *reg, const struct registry_filter *f,
                        enum registry_group g, size_t limit, registry_group_fn fn, void *ctx,
                        char *err, size_t errlen);
/* The same over the undecoded callers (REGISTRY_GROUP_CC or _ASN): addresses per group. */
int registry_group_undecoded(struct registry *reg, const struct registry_filter *f,
                             enum registry_group g, size_t limit, registry_group_fn fn, void *ctx,
                             char *err, size_t errlen);
int registry_group_ips(struct registry *reg, const struct registry_filter *f, enum registry_group g,
                       size_t limit, registry_group_fn fn, void *ctx, char *err, size_t errlen);

/* The per-day curve (UTC days): unique bots, unique source IPs and contacts seen on each day,
 * for one country (cc != NULL) or in total. Days are those overlapping [since_us, until_us). */
struct registry_day {
    int64_t day; /* days since 1970-01-01 */
    uint64_t bots, ips, contacts;
};
typedef int (*registry_day_fn)(void *ctx, const struct registry_day *day);
int registry_days(struct registry *reg, uint64_t since_us, uint64_t until_us, const char *cc,
                  registry_day_fn fn, void *ctx, char *err, size_t errlen);

/* ---- Remediation effectiveness (DESIGN.md "Remediation safety" 5) -------------------------- */

/* The registry records, per bot, the first contact later than its command + 1 h and + 24 h, so a
 * report can tell "seen again after 1 h / 24 h" as of any cut-off time. */
#define REGISTRY_AFTER_1H_US 3600000000ULL
#define REGISTRY_AFTER_24H_US 86400000000ULL

/* One bot under one authorisation: its send and dry-run decisions, the commands that went out or
 * failed, and its contacts after the first command. Times are 0 when there was none. Contacts
 * count as "after" when later than first_command_us and applied after the command-sent record
 * (the server only writes later contacts after it; see docs/registry.md). */
struct registry_remediation {
    char bot_key[33];
    char cc[3];   /* the bot's latest contact */
    uint32_t asn; /* the bot's latest contact */
    char authorisation[64];
    uint64_t send_decisions, first_send_us;    /* decision records with verdict send */
    uint64_t dry_runs, first_dry_run_us;       /* decision records with verdict dry-run */
    uint64_t commands_sent, first_command_us;  /* command-sent records */
    uint64_t commands_failed, first_failed_us; /* command-failed records */
    uint64_t seen_after;                       /* contacts later than first_command_us */
    uint64_t first_after_us, last_after_us;
    uint64_t first_after_1h_us;  /* first contact later than first_command_us + 1 h */
    uint64_t first_after_24h_us; /* first contact later than first_command_us + 24 h */
};

/* Calls fn for every (bot, authorisation) with a send or dry-run decision or a command record,
 * grouped by bot; within a bot, the authorisation commanded first comes first (then those never
 * commanded). A non-zero return from fn stops the walk and is returned. */
typedef int (*registry_remediation_fn)(void *ctx, const struct registry_remediation *row);
int registry_remediation(struct registry *reg, registry_remediation_fn fn, void *ctx, char *err,
                         size_t errlen);

/* Per UTC day: command-sent and command-failed records, and commanded bots seen that day after
 * their first command (each bot once a day). Days overlapping [since_us, until_us). */
struct registry_remediation_day {
    int64_t day; /* days since 1970-01-01 */
    uint64_t commands_sent, commands_failed, commanded_seen;
};
typedef int (*registry_remediation_day_fn)(void *ctx, const struct registry_remediation_day *day);
int registry_remediation_days(struct registry *reg, uint64_t since_us, uint64_t until_us,
                              registry_remediation_day_fn fn, void *ctx, char *err, size_t errlen);

/* The latest time of any record applied (contact, decision, command, note such as node-stopped):
 * how far the data reaches, the end of every bot's observation window. 0 when empty. */
int registry_data_end(struct registry *reg, uint64_t *out_us, char *err, size_t errlen);

/* ---- Remediation across nodes: one command per bot and authorisation ------------------------ */

/* Nodes behind one address (or several seized addresses) each decide for the bots that call
 * them, and a bot moves between nodes. The policy's once-per-bot rule holds per node (the server's
 * decided set); across nodes it holds through a claim in the shared registry: before a node
 * decides to send a command to a bot under an authorisation it claims the pair, and only the
 * node holding the claim may send (docs/scale.md, "Cross-node views"). A claim is never given
 * back, whatever became of the command, as a local decision is not. Claims are coordination,
 * not derived from the logs: `registry rebuild` keeps them. */
struct registry_claims;

/* Opens a connection of its own to `target` for claims made on behalf of node `node` (1..31
 * characters, the node name serve records). A PostgreSQL registry holds the claims of every node
 * (table command_claim, made if missing); an SQLite file the one node's. Every claim fails
 * after REGISTRY_CLAIM_TIMEOUT_MS instead of waiting longer on the database. Returns 0, or
 * REGISTRY_ERR with err naming the reason. Under seccomp, open it before the sandbox: a lost
 * connection is not made again, and every later claim fails (closed: nothing is sent). */
#define REGISTRY_CLAIM_TIMEOUT_MS 2000
int registry_claims_open(struct registry_claims **out, const char *target, const char *node,
                         char *err, size_t errlen);
void registry_claims_close(struct registry_claims *c);

/* Claims (bot_key, authorisation) for this node at time now_us. Returns 1 when this node holds
 * the claim (made now, or earlier by this node: asking again is safe), 0 when another node holds
 * it (its name in holder, if given), or < 0 when the claim cannot be made or read (a bad key,
 * the database down or slow past the timeout): the caller must then not send. Blocks for one or
 * two round trips to the database: not for an event-loop thread. One thread at a time per
 * struct registry_claims. */
int registry_claim_command(struct registry_claims *c, const char *bot_key,
                           const char *authorisation, uint64_t now_us, char *holder,
                           size_t holder_cap, char *err, size_t errlen);

#endif
