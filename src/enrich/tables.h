/* tables.h -- private to src/enrich/: the layout of struct enrich_tables and the builders the
 * loader calls. Not a contract; other modules include enrich.h only. */
#ifndef SINKD_ENRICH_TABLES_H
#define SINKD_ENRICH_TABLES_H

#include "enrich/enrich.h"

#include <maxminddb.h>
#include <stdbool.h>

#define ENRICH_NONE UINT32_MAX /* "no value" in a range table or pool offset */

/* An IPv6 address as a big-endian pair, so ranges compare and step with integer operations. */
struct u128 {
    uint64_t hi, lo;
};

/* Sorted, non-overlapping IPv4 ranges; value is an index or a pool offset. index[k] is the number
 * of ranges whose first address is below k << 16 (k = 0..65536), so a lookup binary-searches only
 * the ranges starting in its own /16 plus the one before. */
struct range4 {
    uint32_t *first, *last, *value;
    uint32_t *index; /* 65537 entries, or NULL for small tables (plain binary search) */
    size_t n;
};

struct range6 {
    struct u128 *first, *last;
    uint32_t *value;
    size_t n;
};

/* NUL-terminated strings addressed by uint32 offsets (AS names, tag sets). */
struct pool {
    char *buf;
    size_t len, cap;
};

struct enrich_file {
    char role[8];                         /* "mmdb", "asn4", "asn6", "tags" */
    char name[64];                        /* base name */
    char version[ENRICH_VERSION_MAX + 1]; /* package version, "" if none */
    uint8_t sha256[32];
};

#define ENRICH_FILES_MAX (3 + ENRICH_TAG_FILES_MAX)

struct enrich_tables {
    _Atomic int64_t refs; /* see enrich_handle: reader references moved here by a swap */
    bool has_mmdb;
    bool mmdb_iso_first; /* records use country.iso_code (GeoIP2) rather than country_code */
    MMDB_s mmdb;
    /* The MMDB's IPv4 subtree flattened at load into ranges; value (c0 << 8 | c1) of the code. */
    struct range4 cc4;
    struct range4 asn4;
    struct range6 asn6;
    uint32_t *as_number, *as_name; /* AS entries: number and pool offset of the name */
    size_t as_n;
    struct range4 tag4; /* value: pool offset of the comma-joined tag set */
    struct range6 tag6;
    uint32_t *tag_asn, *tag_asn_set; /* sorted ASNs and their tag sets */
    size_t tag_asn_n, tag_rules;
    size_t asn_overlaps; /* rows that started inside the previous one (see ranges.c) */
    struct pool pool;
    uint32_t *intern; /* load-time only: hash slots of AS entry index + 1 (0: empty) */
    size_t intern_cap;
    struct enrich_file files[ENRICH_FILES_MAX];
    size_t n_files;
    uint8_t sha256[32];
};

/* ranges.c */
int enrich_asn_load(struct enrich_tables *t, const char *path, int family, char *buf, size_t len,
                    char *err, size_t errlen);
int enrich_tags_load(struct enrich_tables *t, const char *const *paths, char *const *bufs,
                     const size_t *lens, char *err, size_t errlen);
int enrich_range4_alloc(struct range4 *r, size_t cap);
int enrich_range4_add(struct range4 *r, size_t *cap, uint32_t first, uint32_t last, uint32_t value);
int enrich_range4_index(struct range4 *r);
void enrich_range4_free(struct range4 *r);
uint32_t enrich_range4_find(const struct range4 *r, uint32_t ip);
uint32_t enrich_range6_find(const struct range6 *r, struct u128 ip);
struct u128 enrich_u128_from(const uint8_t ip[16]);
void enrich_ranges_free(struct enrich_tables *t);

/* geo.c */
int enrich_geo_open(struct enrich_tables *t, const char *path, char *err, size_t errlen);
void enrich_geo_country(const struct enrich_tables *t, const struct net_addr *addr, char cc[3]);

#endif
