/* enrich.h -- IP -> country (MMDB), ASN + AS name (range tables) and operator sector tags: tables
 * loaded all-or-nothing, immutable afterwards, swapped atomically on reload while workers look up.
 */
#ifndef SINKD_ENRICH_ENRICH_H
#define SINKD_ENRICH_ENRICH_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "util/addr.h"

/* Limits (bounded everything). */
#define ENRICH_TAGS_MAX 64       /* joined tag string incl. NUL; == sizeof(struct contact.tags) */
#define ENRICH_TAG_LEN_MAX 31    /* one tag: [a-z0-9_-]{1,31} */
#define ENRICH_LABEL_LEN_MAX 127 /* optional human label in a tag file */
#define ENRICH_AS_NAME_MAX 255   /* AS organisation name in the ASN CSV (longest seen: 231) */
#define ENRICH_LINE_MAX 1024     /* one CSV / tag-file line */
#define ENRICH_TAG_FILES_MAX 64  /* tag files per load */
#define ENRICH_TAG_RULES_MAX 1000000      /* rules over all tag files */
#define ENRICH_ASN_ROWS_MAX 4000000       /* rows per ASN CSV (2026 data: 412k IPv4, 103k IPv6) */
#define ENRICH_FILE_MAX ((size_t)1 << 30) /* any CSV or tag file */
#define ENRICH_VERSION_MAX 64             /* data package version string */
/* At most this many references may be held on one handle's current tables at once. */
#define ENRICH_HANDLE_HOLDERS_MAX 60000

/* What to load. Every path may be NULL (that source is then absent: cc "" / asn 0 / no tags). */
struct enrich_config {
    const char *mmdb_path;        /* MaxMind DB with country_code or country.iso_code records */
    const char *asn_v4_path;      /* ip-location-db asn-ipv4.csv: first,last,asn,"org name" */
    const char *asn_v6_path;      /* ip-location-db asn-ipv6.csv */
    const char *const *tag_paths; /* NULL-terminated list of tag files, or NULL */
    /* Data package versions for the table-loaded record; NULL: read `.version` (written by
     * scripts/deps.sh) or the "version" of `package.json` in the file's directory. */
    const char *mmdb_version;
    const char *asn_version;
};

/* Loaded data; opaque and immutable, so any number of threads may look up concurrently. */
struct enrich_tables;

struct enrich_result {
    char cc[3];          /* ISO 3166-1 alpha-2, "" if unknown */
    uint32_t asn;        /* 0 if unknown */
    const char *as_name; /* points into the tables (valid while they are held); "" if unknown */
    char tags[ENRICH_TAGS_MAX]; /* longest-prefix tags, then the ASN's tags; "" if none */
};

/* Loads everything cfg names. Returns 0 and *out, or a negative code and a message naming the file
 * (and line for CSVs); on error nothing is returned and nothing leaks. */
int enrich_load(struct enrich_tables **out, const struct enrich_config *cfg, char *err,
                size_t errlen);
void enrich_free(struct enrich_tables *tables);

/* Lock-free, allocation-free, safe from any number of threads. tables may be NULL (all unknown). */
void enrich_lookup(const struct enrich_tables *tables, const struct net_addr *addr,
                   struct enrich_result *out);
/* Fills c->cc, asn, tags and enrich_id from c->src. */
void enrich_apply(const struct enrich_tables *tables, struct contact *c);

/* Identifies the data: first 4 bytes (big-endian) of enrich_tables_sha256(); 0 for NULL tables. */
uint32_t enrich_tables_id(const struct enrich_tables *tables);
/* SHA-256 over the roles, names and SHA-256 of every loaded file, in load order. */
void enrich_tables_sha256(const struct enrich_tables *tables, uint8_t out[32]);
/* Data versions for the table-loaded record: per file its role, name, package version and SHA-256.
 * Writes at most cap bytes (NUL-terminated) and returns the full length, like snprintf. */
int enrich_tables_describe(const struct enrich_tables *tables, char *out, size_t cap);

struct enrich_stats {
    size_t cc_v4_ranges;                 /* the MMDB's IPv4 part, flattened at load */
    size_t asn_v4_ranges, asn_v6_ranges; /* rows in the range tables */
    size_t as_entries;                   /* distinct (ASN, name) pairs */
    size_t asn_overlaps;    /* CSV rows starting inside the previous row (later start wins) */
    size_t name_pool_bytes; /* interned AS names and tag strings */
    size_t tag_rules, tag_v4_ranges, tag_v6_ranges, tag_asns;
    size_t memory_bytes; /* heap held by the tables (the MMDB itself is mmap'ed, not counted) */
    size_t mmdb_bytes;   /* size of the mapped MMDB file */
};
void enrich_tables_stats(const struct enrich_tables *tables, struct enrich_stats *out);

/* The current tables, swapped on SIGHUP while workers keep looking up. Readers never block:
 * acquire is one atomic add, release one compare-and-swap loop that only retries when another
 * reader raced it. The word packs the tables pointer (aligned to 64 KiB) with the number of
 * references taken on it through this handle; a swap moves that number into the old tables' own
 * count, and the old tables are freed by whoever drops the last reference. */
struct enrich_handle {
    _Atomic uintptr_t word;
};

/* Takes ownership of tables (may be NULL). */
void enrich_handle_init(struct enrich_handle *h, struct enrich_tables *tables);
/* Returns the current tables with a reference held (NULL if none, or if
 * ENRICH_HANDLE_HOLDERS_MAX references are already out). Pair with enrich_handle_release(). */
const struct enrich_tables *enrich_handle_acquire(struct enrich_handle *h);
void enrich_handle_release(struct enrich_handle *h, const struct enrich_tables *tables);
/* Installs tables (ownership passes to the handle); the previous tables are freed once their last
 * reader releases them. Safe to call concurrently with readers and with other swaps. */
void enrich_handle_swap(struct enrich_handle *h, struct enrich_tables *tables);
/* Drops the handle's tables (freed when their last reader releases). The handle's memory must
 * outlive every outstanding enrich_handle_release() call. */
void enrich_handle_destroy(struct enrich_handle *h);

/* Pure line parsers, shared by the loader, the tests and the fuzzers: no I/O, no allocation.
 * line need not be NUL-terminated and must not contain the newline. Return 1 and *out for a row,
 * 0 for a blank or comment line (tag files only), or -1 with a message (no file:line prefix). */
struct enrich_asn_row {
    struct net_addr first, last; /* same family, first <= last */
    uint32_t asn;
    char name[ENRICH_AS_NAME_MAX + 1]; /* unquoted ("" doubled quotes undone) */
};
int enrich_asn_parse_line(const char *line, size_t len, struct enrich_asn_row *out, char *err,
                          size_t errlen);

/* AS names by number, for reports (IntelMQ source.as_name, summaries): loaded from
 * DATA_DIR/npm/asn/asn-ipv{4,6}.csv; the first name seen for an ASN is kept; AS0 is never named.
 * enrich_as_name(ctx = the table, asn) fits report_options.as_name; NULL when not known. */
struct enrich_as_names;
int enrich_as_names_load(struct enrich_as_names **out, const char *data_dir, char *err,
                         size_t errlen);
const char *enrich_as_name(void *ctx, uint32_t asn);
void enrich_as_names_free(struct enrich_as_names *t);

enum enrich_rule_kind {
    ENRICH_RULE_PREFIX = 1,
    ENRICH_RULE_ASN = 2,
};
struct enrich_tag_rule {
    uint8_t kind;         /* enum enrich_rule_kind */
    struct net_cidr cidr; /* ENRICH_RULE_PREFIX: host bits zero */
    uint32_t asn;         /* ENRICH_RULE_ASN */
    char tag[ENRICH_TAG_LEN_MAX + 1];
    char label[ENRICH_LABEL_LEN_MAX + 1]; /* "" if absent */
};
int enrich_tag_parse_line(const char *line, size_t len, struct enrich_tag_rule *out, char *err,
                          size_t errlen);

#endif
