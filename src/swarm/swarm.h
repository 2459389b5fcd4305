/* swarm.h -- the bot emulator: many emulated PlugX bots on loopback, each with a stable identity
 * and a public-looking source address carried in PROXY v2. Pure parts (identities, country mix,
 * address ranges, latency histogram) are exposed for tests; swarm_run() drives the libuv loop. */
#ifndef SINKD_SWARM_SWARM_H
#define SINKD_SWARM_SWARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "event/event.h"
#include "proto/plugx/plugx.h"
#include "util/addr.h"
#include "util/hist.h"

#define SWARM_MAX_BOTS 10000000u      /* identities are computed, so only the flags scale */
#define SWARM_MAX_CONCURRENCY 100000u /* simultaneous connections (bounded by open files too) */
#define SWARM_MAX_COUNTRIES 300u
#define SWARM_MAX_RANGES 2000000u /* lines in the ranges CSV */
#define SWARM_REPLY_TIMEOUT_MS 10000u
#define SWARM_LINE_MAX 512 /* longest accepted CSV line */

enum swarm_error {
    SWARM_E_FILE = -1,    /* cannot open / read a data file */
    SWARM_E_SYNTAX = -2,  /* bad line in a data file (err names file:line) */
    SWARM_E_LIMIT = -3,   /* a bound above was exceeded */
    SWARM_E_NOMEM = -4,   /* allocation failed */
    SWARM_E_CONFIG = -5,  /* inconsistent configuration */
    SWARM_E_RUNTIME = -6, /* libuv failure */
};

/* ---- country mix: "cc,weight,basis" lines, # comments, optional header "cc,weight,basis" ---- */
struct swarm_country {
    char cc[3];
    double weight;     /* > 0 */
    double cumulative; /* sum of weights up to and including this one */
};

struct swarm_countries {
    struct swarm_country *items;
    size_t count;
    double total;
};

int swarm_countries_load(const char *path, struct swarm_countries *out, char *err, size_t errlen);
/* Parses from an open stream; `name` is used in messages ("name:line: ..."). */
int swarm_countries_read(FILE *in, const char *name, struct swarm_countries *out, char *err,
                         size_t errlen);
void swarm_countries_free(struct swarm_countries *c);
/* Index of the country for a uniform draw u in [0, 1). */
size_t swarm_countries_pick(const struct swarm_countries *c, double u);

/* ---- IPv4 ranges: "start_ip,end_ip,cc" lines (ip-location-db geo-whois-asn-country) ---- */
struct swarm_range {
    uint32_t start, end; /* host byte order, inclusive */
    uint16_t cc;         /* packed two letters: (c0 << 8) | c1 */
};

struct swarm_ranges {
    struct swarm_range *items; /* sorted by (cc, start) */
    uint64_t *cumulative;      /* addresses in items[0..i] of the same cc, inclusive */
    size_t count;
};

int swarm_ranges_load(const char *path, struct swarm_ranges *out, char *err, size_t errlen);
int swarm_ranges_read(FILE *in, const char *name, struct swarm_ranges *out, char *err,
                      size_t errlen);
void swarm_ranges_free(struct swarm_ranges *r);
/* Addresses the ranges give to country cc (0 if none). */
uint64_t swarm_ranges_size(const struct swarm_ranges *r, const char *cc);
/* Picks an address of cc, uniform over all of its addresses, from the 64-bit draw r64.
 * Returns 0 and *ip (host order), or -1 if cc has no ranges. */
int swarm_ranges_pick(const struct swarm_ranges *r, const char *cc, uint64_t r64, uint32_t *ip);

/* ---- bots ---- */
enum swarm_cipher_choice {
    SWARM_CIPHER_MIX = -1, /* per bot, uniform over A, B, C, RC4 */
};

struct swarm_options {
    struct net_addr target;     /* loopback only */
    struct net_cidr source_net; /* bots bind round-robin to hosts of this loopback prefix */
    uint32_t bots;
    uint32_t duration_s;
    uint32_t concurrency;
    uint64_t seed;
    uint32_t heartbeat_ms; /* mean, jittered +-50% */
    double http_share, gone_share, uninstall_fail_share;
    int cipher; /* enum plugx_cipher or SWARM_CIPHER_MIX */
};

/* Fills defaults: 100 bots, 60 s, concurrency 0 (= min(bots, 5000)), source 127.0.1.0/24, seed 1,
 * heartbeat 2000 ms, http 0, gone 0.1, uninstall-fail 0, cipher A. The target is left empty. */
void swarm_options_default(struct swarm_options *o);

/* Everything fixed about one bot, derived from (seed, index) and the data tables. */
struct swarm_bot {
    uint32_t index;
    struct plugx_machine_info info;
    char cc[3];
    uint32_t public_ip; /* host order */
    uint8_t cipher;     /* enum plugx_cipher */
    bool http, gone, uninstall_fail, compress;
    uint32_t start_ms; /* first contact, within the first 40% of the run */
};

void swarm_bot_make(const struct swarm_options *o, const struct swarm_countries *countries,
                    const struct swarm_ranges *ranges, uint32_t index, struct swarm_bot *out);

/* ---- the run ---- */
struct swarm_country_count {
    char cc[3];
    uint32_t bots;
};

struct swarm_summary {
    uint32_t bots, bots_run, bots_answered;
    uint64_t contacts_sent, replies_received;
    uint64_t err_connect, err_reset, err_timeout, err_protocol;
    uint32_t uninstalled, uninstall_ignored;
    uint32_t connected_bots; /* bots that completed at least one TCP connect */
    double duration_s;
    struct hist latency_us;
    /* Only heartbeats on a session already set up: without the connect storms of the first
     * hello and machine information, which every bot sends at the start of a run. */
    struct hist heartbeat_latency_us;
    struct swarm_country_count *per_country; /* bots run, per country, `countries` entries */
    size_t countries;
};

/* Runs the swarm to the end of o->duration_s. Returns 0 (summary filled, free it with
 * swarm_summary_free) or a negative enum swarm_error. */
int swarm_run(const struct swarm_options *o, const struct swarm_countries *countries,
              const struct swarm_ranges *ranges, struct swarm_summary *out, char *err,
              size_t errlen);
void swarm_summary_free(struct swarm_summary *s);

/* Writes the readable summary, and the JSON form (field names in docs/swarm.md). */
void swarm_summary_print(const struct swarm_summary *s, FILE *out);
int swarm_summary_write_json(const struct swarm_summary *s, const char *path, char *err,
                             size_t errlen);

#endif
