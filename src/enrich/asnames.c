/* asnames.c -- AS number -> organisation name, for reports that name ASes (IntelMQ rows,
 * summaries): read from the same ASN CSVs as the enrichment tables, with their line parser. */
#include "enrich/enrich.h"
#include "util/err.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* AS number -> organisation name, from the ASN CSVs the enrich module reads (its pure line
 * parser, no range tables: a report needs names by number, not lookups by address). Open
 * addressing keyed by ASN; names interned once per ASN. */
#define AS_NAMES_SLOTS (1u << 19) /* > 4x the ~120k distinct ASNs in the 2026 data */

struct enrich_as_names {
    uint32_t *asn; /* 0 = empty slot (AS0 is never named) */
    uint32_t *off; /* name offset in pool */
    char *pool;
    size_t pool_len, pool_cap, count;
};

static uint32_t *as_slot(const struct enrich_as_names *t, uint32_t asn)
{
    uint32_t h = (asn * 2654435761u) & (AS_NAMES_SLOTS - 1);
    while (t->asn[h] != 0 && t->asn[h] != asn) {
        h = (h + 1) & (AS_NAMES_SLOTS - 1);
    }
    return &t->asn[h];
}

const char *enrich_as_name(void *ctx, uint32_t asn)
{
    const struct enrich_as_names *t = ctx;
    if (asn == 0) {
        return NULL;
    }
    uint32_t *slot = as_slot(t, asn);
    return *slot == asn ? t->pool + t->off[slot - t->asn] : NULL;
}

static int as_names_add(struct enrich_as_names *t, uint32_t asn, const char *name)
{
    uint32_t *slot = as_slot(t, asn);
    if (asn == 0 || *slot == asn || name[0] == '\0') {
        return 0; /* the first name seen for an ASN is kept */
    }
    if (t->count >= AS_NAMES_SLOTS / 2) {
        return -1;
    }
    size_t n = strlen(name) + 1;
    if (t->pool_len + n > t->pool_cap) {
        size_t cap = t->pool_cap ? t->pool_cap * 2 : 1 << 20;
        char *p = realloc(t->pool, cap);
        if (p == NULL) {
            return -1;
        }
        t->pool = p;
        t->pool_cap = cap;
    }
    memcpy(t->pool + t->pool_len, name, n);
    *slot = asn;
    t->off[slot - t->asn] = (uint32_t)t->pool_len;
    t->pool_len += n;
    t->count++;
    return 0;
}

void enrich_as_names_free(struct enrich_as_names *t)
{
    if (t == NULL) {
        return;
    }
    free(t->asn);
    free(t->off);
    free(t->pool);
    free(t);
}

static int as_names_file(struct enrich_as_names *t, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno));
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    unsigned long lineno = 0;
    int rc = 0;
    struct enrich_asn_row row;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) {
            len--;
        }
        char perr[128];
        if (len == 0) {
            continue;
        }
        if (enrich_asn_parse_line(line, (size_t)len, &row, perr, sizeof(perr)) != 1) {
            rc = err_set(err, errlen, "%s:%lu: %s", path, lineno, perr);
            break;
        }
        if (as_names_add(t, row.asn, row.name) < 0) {
            rc = err_set(err, errlen, "%s:%lu: too many AS names", path, lineno);
            break;
        }
    }
    free(line);
    fclose(f);
    return rc;
}

int enrich_as_names_load(struct enrich_as_names **out, const char *data_dir, char *err,
                         size_t errlen)
{
    *out = NULL;
    struct enrich_as_names *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        return err_set(err, errlen, "out of memory");
    }
    t->asn = calloc(AS_NAMES_SLOTS, sizeof(*t->asn));
    t->off = calloc(AS_NAMES_SLOTS, sizeof(*t->off));
    if (t->asn == NULL || t->off == NULL) {
        enrich_as_names_free(t);
        return err_set(err, errlen, "out of memory");
    }
    const char *files[] = {"asn-ipv4.csv", "asn-ipv6.csv"};
    for (size_t i = 0; i < 2; i++) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/npm/asn/%s", data_dir, files[i]);
        if (as_names_file(t, path, err, errlen) < 0) {
            enrich_as_names_free(t);
            return -1;
        }
    }
    *out = t;
    return 0;
}
