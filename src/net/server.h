/* server.h -- `sinkd serve`: listeners, workers, connection lifecycle, and the path from a
 * decoded bot message to a durable evidence record and the reply that acknowledges it. */
#ifndef SINKD_NET_SERVER_H
#define SINKD_NET_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "proto/proto.h"
#include "util/addr.h"

#define SERVER_MAX_LISTEN 16
#define SERVER_MAX_TRUSTED 64
#define SERVER_MAX_WORKERS 64
#define SERVER_MAX_TAG_FILES 16

/* Every bound a peer could push against, with its default (docs/limits.md). */
struct net_limits {
    uint32_t max_connections;    /* open bot connections per process; default 16000 */
    uint32_t max_per_ip;         /* per source address (after PROXY); default 64 */
    uint32_t conn_rate_per_ip;   /* new connections per second per address; default 20 */
    uint32_t conn_burst_per_ip;  /* ... back to back; default 40 */
    uint32_t max_tracked_ips;    /* addresses remembered for the two above; default 1000000 */
    uint32_t header_timeout_ms;  /* PROXY header + first full message; default 10000 */
    uint32_t defer_accept_s;     /* kernel holds silent new connections this long; default 10 */
    uint32_t idle_timeout_ms;    /* no complete message for this long; default 180000 */
    uint32_t max_message;        /* bytes of one message incl. headers; default 65536 + 8192 */
    uint32_t max_inflight;       /* records per connection awaiting durability; default 8 */
    uint32_t ring_slots;         /* per-worker queue to the evidence writer; default 8192 */
    uint32_t drain_timeout_ms;   /* on SIGTERM, wait this long for in-flight work; default 5000 */
    uint32_t bad_peer_log_per_s; /* log lines about bad peers per worker per second; default 200 */
    /* A peer refused by the per-address cap or rate is held unread this long before its reset, so
     * a flood from one address waits instead of reconnecting at once; default 10000 (0: reset at
     * once). At most refuse_hold_max such peers per process (default 1024), each a descriptor;
     * beyond that a refusal is reset at once. */
    uint32_t refuse_hold_ms;
    uint32_t refuse_hold_max;
    /* An untrusted peer address the rate limit refused syn_ban_after times within one second
     * (default 40; 0: never) has its SYNs dropped by a filter on the listeners for syn_ban_s
     * (default 60), so a flood that does not wait for verdicts costs no accept; at most
     * syn_ban_max addresses at once (default 1024, at most BANLIST_MAX 4096). */
    uint32_t syn_ban_after;
    uint32_t syn_ban_s;
    uint32_t syn_ban_max;
    /* Callers whose bytes no family decodes are recorded (undecoded contacts), at most
     * undecoded_per_ip records per source address per undecoded_window_s (defaults 6 per 60 s);
     * beyond that they are counted, and the count goes into that address's next record. */
    uint32_t undecoded_per_ip;
    uint32_t undecoded_window_s;
};

struct server_config {
    const char *state_dir;
    const char *node;   /* node name recorded in every record */
    const char *origin; /* evidence log origin (= key name) */
    struct net_addr listen[SERVER_MAX_LISTEN];
    size_t nlisten;
    struct net_cidr trusted[SERVER_MAX_TRUSTED];
    size_t ntrusted;
    unsigned workers;
    struct net_limits limits;
    /* GET /metrics (Prometheus text) on this address when `metrics` is set (docs/metrics.md);
     * off by default. It shows counts, never a victim's address. */
    bool metrics;
    struct net_addr metrics_listen;
    /* The protocol family spoken on the listeners (proto/proto.h's table) and its configuration,
     * which only the family reads. */
    const struct proto_family *family;
    const void *family_config;
    /* --uninstall-command: the family's self-delete id where an authorisation names none. No
     * default (0): the id comes from the seized variant's own analysis (docs/plugx.md). */
    uint32_t uninstall_command;
    /* A bot's polls after the first contact of its presence are rolled up into one heartbeats
     * record per interval (net/rollup.h): seconds, default 3600; 0: every poll its own record.
     * rollup_max_bots bounds the table (default 4,000,000, 336 bytes each, in tables at most half
     * full). */
    uint32_t heartbeat_interval_s;
    uint32_t rollup_max_bots;
    uint32_t checkpoint_every;       /* entries */
    uint32_t checkpoint_interval_ms; /* or this long */
    uint32_t checkpoint_keep_hours;  /* keep every checkpoint this long, then hourly (0: all) */
    uint32_t journal_compact_kib;    /* evlog_options.compact_bytes in KiB; 0: never compact */
    uint32_t commit_delay_us;        /* group-commit pause under load (pipeline.h); default 1000 */
    /* --keep-raw: each message's decrypted body kept under state/raw by its hash (evidence/raw.h);
     * off by default (bodies hold victims' host and user names). At most keep_raw_max_bytes
     * per run (0: no limit of its own), never into the last keep_raw_reserve_bytes of the disk. */
    bool keep_raw;
    uint64_t keep_raw_max_bytes;
    uint64_t keep_raw_reserve_bytes;
    /* Enrichment data; NULL paths disable that part. Reloaded on SIGHUP. */
    const char *geoip_path;
    const char *asn_v4_path;
    const char *asn_v6_path;
    const char *tag_files[SERVER_MAX_TAG_FILES + 1]; /* NULL-terminated */
    /* Remediation. */
    const char *policy_path;     /* NULL: no policy, no decisions, nothing can ever be sent */
    bool enforce;                /* --enforce; needed together with mode = enforce in the policy */
    bool registry;               /* run the registry follower (default on) */
    const char *registry_target; /* its registry: NULL state_dir/registry.db, or a PostgreSQL URL */
    uint32_t registry_cache_mib; /* its SQLite page cache; default REGISTRY_CACHE_MIB_DEFAULT */
    /* Least privilege (docs/hardening.md): the user to become after binding (NULL: stay, but
     * still drop every capability), and the seccomp allow-list installed once all threads run. */
    const char *user;
    enum server_seccomp { SERVER_SECCOMP_KILL, SERVER_SECCOMP_LOG, SERVER_SECCOMP_OFF } seccomp;
    FILE *log; /* operational log lines */
    /* Called once all listeners are bound (tests and the demo wait for it). */
    void (*on_ready)(void *ctx);
    void *ready_ctx;
};

void server_config_default(struct server_config *cfg);

/* Makes the open-files limit hold max_connections and still leave descriptors for the evidence
 * log, tiles, registry and event loops, so a crowd of bots can never starve the log of the files
 * it must create. Raises the soft limit to the hard one; if max_connections is still too many,
 * lowers it. Returns 0 (unchanged), 1 (lowered: `note` says from what to what and why), or -1
 * (err: the limit leaves no room for connections at all). */
int server_fit_fd_limit(struct server_config *cfg, char *note, size_t notelen, char *err,
                        size_t errlen);

/* Loads cfg->policy_path and checks it against what cfg will load (tables, --enforce, the
 * uninstall command) as server_run will, without starting anything: so a bad policy is refused
 * before the log is opened or a port bound. 0 (also when there is no policy) or -1 with err. */
int server_check_policy(const struct server_config *cfg, char *err, size_t errlen);

/* Runs until SIGTERM or SIGINT, then drains and returns 0; SIGHUP reloads enrichment tables and
 * the policy. Returns -1 with a message in err when it cannot start (port in use, unwritable
 * state directory, bad data file, bad policy). */
int server_run(const struct server_config *cfg, char *err, size_t errlen);

#endif
