/* geo.c -- country lookups in a MaxMind DB (ip-location-db country_code or GeoIP2
 * country.iso_code). */
#include "enrich/tables.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

/* Addresses whose country any real country database knows; used to check a database at load. */
static const char *const probe_addrs[] = {"1.1.1.1", "8.8.8.8", "9.9.9.9", "2001:4860:4860::8888"};

static int cc_valid(const char *s, uint32_t n)
{
    return n == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

/* Reads the two-letter code from an entry under one of the two key layouts. */
static int entry_country(MMDB_entry_s *entry, bool iso_first, char cc[3])
{
    MMDB_entry_data_s d;
    for (int pass = 0; pass < 2; pass++) {
        int iso = (pass == 0) == iso_first;
        int st = iso ? MMDB_get_value(entry, &d, "country", "iso_code", NULL)
                     : MMDB_get_value(entry, &d, "country_code", NULL);
        if (st == MMDB_SUCCESS && d.has_data && d.type == MMDB_DATA_TYPE_UTF8_STRING &&
            cc_valid(d.utf8_string, d.data_size)) {
            cc[0] = d.utf8_string[0];
            cc[1] = d.utf8_string[1];
            cc[2] = '\0';
            return iso ? 2 : 1;
        }
    }
    return 0;
}

static int lookup(const MMDB_s *db, const struct net_addr *addr, MMDB_lookup_result_s *res)
{
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    const struct sockaddr *sa;
    int mmerr = MMDB_SUCCESS;
    if (addr->family == AF_INET) {
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        memcpy(&sin.sin_addr, addr->ip, 4);
        sa = (const struct sockaddr *)&sin;
    } else if (addr->family == AF_INET6) {
        memset(&sin6, 0, sizeof(sin6));
        sin6.sin6_family = AF_INET6;
        memcpy(&sin6.sin6_addr, addr->ip, 16);
        sa = (const struct sockaddr *)&sin6;
    } else {
        return MMDB_INVALID_DATA_ERROR;
    }
    /* libmaxminddb lookups only read the mapped file, so they are safe from many threads. */
    *res = MMDB_lookup_sockaddr(db, sa, &mmerr);
    return mmerr;
}

void enrich_geo_country(const struct enrich_tables *t, const struct net_addr *addr, char cc[3])
{
    MMDB_lookup_result_s res;
    cc[0] = '\0';
    if (!t->has_mmdb) {
        return;
    }
    if (addr->family == AF_INET && t->cc4.index != NULL) {
        uint32_t ip = (uint32_t)addr->ip[0] << 24 | (uint32_t)addr->ip[1] << 16 |
                      (uint32_t)addr->ip[2] << 8 | addr->ip[3];
        uint32_t v = enrich_range4_find(&t->cc4, ip);
        if (v != ENRICH_NONE) {
            cc[0] = (char)(v >> 8);
            cc[1] = (char)(v & 0xff);
            cc[2] = '\0';
        }
        return;
    }
    if (lookup(&t->mmdb, addr, &res) != MMDB_SUCCESS || !res.found_entry) {
        return;
    }
    entry_country(&res.entry, t->mmdb_iso_first, cc);
}

/* Data offset -> country, so each distinct record is decoded (and checked) once while flattening.
 */
struct cc_cache {
    uint32_t *offset, *value; /* value: code, or ENRICH_NONE for a record without one */
    size_t cap, n;
};

static int cache_get(struct cc_cache *c, MMDB_entry_s *entry, bool iso_first, uint32_t *value)
{
    if ((c->n + 1) * 2 > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        uint32_t *off = malloc(cap * sizeof(*off)), *val = malloc(cap * sizeof(*val));
        if (off == NULL || val == NULL) {
            free(off);
            free(val);
            return -1;
        }
        memset(off, 0xff, cap * sizeof(*off));
        for (size_t i = 0; i < c->cap; i++) {
            if (c->offset[i] != UINT32_MAX) {
                size_t j = (c->offset[i] * 2654435761u) & (cap - 1);
                while (off[j] != UINT32_MAX) {
                    j = (j + 1) & (cap - 1);
                }
                off[j] = c->offset[i];
                val[j] = c->value[i];
            }
        }
        free(c->offset);
        free(c->value);
        c->offset = off;
        c->value = val;
        c->cap = cap;
    }
    size_t j = (entry->offset * 2654435761u) & (c->cap - 1);
    while (c->offset[j] != UINT32_MAX) {
        if (c->offset[j] == entry->offset) {
            *value = c->value[j];
            return 0;
        }
        j = (j + 1) & (c->cap - 1);
    }
    MMDB_entry_data_list_s *list = NULL;
    int st = MMDB_get_entry_data_list(entry, &list);
    MMDB_free_entry_data_list(list);
    if (st != MMDB_SUCCESS) {
        return -2;
    }
    char cc[3];
    *value = entry_country(entry, iso_first, cc) ? (uint32_t)(uint8_t)cc[0] << 8 | (uint8_t)cc[1]
                                                 : ENRICH_NONE;
    c->offset[j] = entry->offset;
    c->value[j] = *value;
    c->n++;
    return 0;
}

/* Walks the IPv4 part of the search tree (MaxMind DB spec: in an IPv6 tree, IPv4 addresses are
 * ::a.b.c.d, 96 zero bits below the root) depth-first, left before right, so the leaves come out
 * in address order; each data leaf becomes one range. IPv4 lookups are then one binary search,
 * about 3x faster than walking the tree and decoding the record per lookup (docs/enrich.md). */
static int flatten_v4(struct enrich_tables *t, const char *path, char *err, size_t errlen)
{
    const MMDB_s *db = &t->mmdb;
    struct item {
        uint64_t record;
        MMDB_entry_s entry;
        uint32_t prefix;
        uint8_t type;
        uint8_t depth;
    } stack[70];
    size_t sp = 0, cap = 1 << 16;
    struct cc_cache cache = {0};
    struct range4 r = {0};
    MMDB_search_node_s node;
    int rc = -1;
    struct item root = {.record = 0,
                        .entry = {db, 0},
                        .prefix = 0,
                        .type = MMDB_RECORD_TYPE_SEARCH_NODE,
                        .depth = 0};
    if (db->metadata.ip_version == 6) {
        for (int i = 0; i < 96 && root.type == MMDB_RECORD_TYPE_SEARCH_NODE; i++) {
            if (MMDB_read_node(db, (uint32_t)root.record, &node) != MMDB_SUCCESS) {
                return err_set(err, errlen, "%s: corrupt: cannot read the IPv4 subtree", path);
            }
            root.record = node.left_record;
            root.type = node.left_record_type;
            root.entry = node.left_record_entry;
        }
    }
    if (enrich_range4_alloc(&r, cap) != 0) {
        err_set(err, errlen, "%s: out of memory", path);
        goto out;
    }
    stack[sp++] = root;
    while (sp > 0) {
        struct item it = stack[--sp];
        if (it.type == MMDB_RECORD_TYPE_SEARCH_NODE) {
            if (it.depth >= 32 || MMDB_read_node(db, (uint32_t)it.record, &node) != MMDB_SUCCESS) {
                err_set(err, errlen, "%s: corrupt: IPv4 search tree deeper than 32 bits", path);
                goto out;
            }
            uint8_t d = (uint8_t)(it.depth + 1);
            /* Right pushed first so the left (lower) half is emitted first. */
            stack[sp++] = (struct item){.record = node.right_record,
                                        .entry = node.right_record_entry,
                                        .prefix = it.prefix | (uint32_t)1 << (31 - it.depth),
                                        .type = node.right_record_type,
                                        .depth = d};
            stack[sp++] = (struct item){.record = node.left_record,
                                        .entry = node.left_record_entry,
                                        .prefix = it.prefix,
                                        .type = node.left_record_type,
                                        .depth = d};
            continue;
        }
        if (it.type != MMDB_RECORD_TYPE_DATA) {
            continue; /* empty: no data for these addresses */
        }
        /* A record at depth d covers prefix/d; d is 0..32 (shifting a uint32_t by 32 is UB). */
        uint32_t value, last = it.depth >= 32 ? it.prefix : it.prefix | (UINT32_MAX >> it.depth);
        int st = cache_get(&cache, &it.entry, t->mmdb_iso_first, &value);
        if (st != 0) {
            err_set(err, errlen, st == -1 ? "%s: out of memory" : "%s: corrupt: undecodable record",
                    path);
            goto out;
        }
        if (value == ENRICH_NONE) {
            continue;
        }
        if (r.n > 0 && r.value[r.n - 1] == value && r.last[r.n - 1] == it.prefix - 1) {
            r.last[r.n - 1] = last; /* adjacent and same country: one range */
        } else if (enrich_range4_add(&r, &cap, it.prefix, last, value) != 0) {
            err_set(err, errlen, "%s: out of memory", path);
            goto out;
        }
    }
    if (enrich_range4_index(&r) != 0) {
        err_set(err, errlen, "%s: out of memory", path);
        goto out;
    }
    t->cc4 = r;
    memset(&r, 0, sizeof(r));
    rc = 0;
out:
    enrich_range4_free(&r);
    free(cache.offset);
    free(cache.value);
    return rc;
}

/* mmdbverify-style walk: every search-tree record must point at a node, the empty marker or the
 * data section (MaxMind DB spec, "Search Tree Section"), so corruption is found at load, not on
 * some later lookup. */
static int check_tree(MMDB_s *db, const char *path, char *err, size_t errlen)
{
    MMDB_search_node_s node;
    for (uint32_t i = 0; i < db->metadata.node_count; i++) {
        int st = MMDB_read_node(db, i, &node);
        if (st != MMDB_SUCCESS) {
            return err_set(err, errlen, "%s: search tree node %u: %s", path, i, MMDB_strerror(st));
        }
        if (node.left_record_type == MMDB_RECORD_TYPE_INVALID ||
            node.right_record_type == MMDB_RECORD_TYPE_INVALID) {
            return err_set(err, errlen, "%s: corrupt: search tree node %u points outside the file",
                           path, i);
        }
    }
    return 0;
}

int enrich_geo_open(struct enrich_tables *t, const char *path, char *err, size_t errlen)
{
    int st = MMDB_open(path, MMDB_MODE_MMAP, &t->mmdb);
    if (st != MMDB_SUCCESS) {
        if (st == MMDB_IO_ERROR) {
            return err_set(err, errlen, "%s: %s", path, strerror(errno));
        }
        return err_set(err, errlen, "%s: not a usable MaxMind DB: %s", path, MMDB_strerror(st));
    }
    t->has_mmdb = true;
    if (check_tree(&t->mmdb, path, err, errlen) != 0) {
        return -1;
    }
    int found = 0, with_cc = 0, iso = 0;
    for (size_t i = 0; i < sizeof(probe_addrs) / sizeof(probe_addrs[0]); i++) {
        struct net_addr a;
        MMDB_lookup_result_s res;
        char cc[3];
        if (net_addr_parse_ip(probe_addrs[i], &a) != 0) {
            continue;
        }
        int mmerr = lookup(&t->mmdb, &a, &res);
        if (mmerr == MMDB_IPV6_LOOKUP_IN_IPV4_DATABASE_ERROR) {
            continue;
        }
        if (mmerr != MMDB_SUCCESS) {
            return err_set(err, errlen, "%s: corrupt: looking up %s: %s", path, probe_addrs[i],
                           MMDB_strerror(mmerr));
        }
        if (!res.found_entry) {
            continue;
        }
        found++;
        /* Decoding the whole entry checks the data section it points at. */
        MMDB_entry_data_list_s *list = NULL;
        st = MMDB_get_entry_data_list(&res.entry, &list);
        MMDB_free_entry_data_list(list);
        if (st != MMDB_SUCCESS) {
            return err_set(err, errlen, "%s: corrupt: record for %s: %s", path, probe_addrs[i],
                           MMDB_strerror(st));
        }
        int how = entry_country(&res.entry, false, cc);
        with_cc += how != 0;
        iso += how == 2;
    }
    if (found == 0 || with_cc == 0) {
        return err_set(err, errlen,
                       "%s: no country_code or country.iso_code for any of %zu well-known "
                       "addresses: not a country database (type '%s')",
                       path, sizeof(probe_addrs) / sizeof(probe_addrs[0]),
                       t->mmdb.metadata.database_type ? t->mmdb.metadata.database_type : "?");
    }
    t->mmdb_iso_first = iso * 2 > with_cc;
    return flatten_v4(t, path, err, errlen);
}
