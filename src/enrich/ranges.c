/* ranges.c -- the ASN range tables, the interned name pool and the flattened sector-tag tables. */
#include "enrich/tables.h"
#include "util/err.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* ---- 128-bit keys ---- */

struct u128 enrich_u128_from(const uint8_t ip[16])
{
    struct u128 v = {0, 0};
    for (int i = 0; i < 8; i++) {
        v.hi = (v.hi << 8) | ip[i];
        v.lo = (v.lo << 8) | ip[8 + i];
    }
    return v;
}

static int u128_cmp(struct u128 a, struct u128 b)
{
    if (a.hi != b.hi) {
        return a.hi < b.hi ? -1 : 1;
    }
    return a.lo < b.lo ? -1 : (a.lo > b.lo ? 1 : 0);
}

static struct u128 u128_inc(struct u128 a)
{
    a.lo++;
    if (a.lo == 0) {
        a.hi++;
    }
    return a;
}

static struct u128 u128_dec(struct u128 a)
{
    if (a.lo == 0) {
        a.hi--;
    }
    a.lo--;
    return a;
}

static int u128_is_max(struct u128 a)
{
    return a.hi == UINT64_MAX && a.lo == UINT64_MAX;
}

static uint32_t ip4_of(const struct net_addr *a)
{
    return (uint32_t)a->ip[0] << 24 | (uint32_t)a->ip[1] << 16 | (uint32_t)a->ip[2] << 8 | a->ip[3];
}

/* ---- lookups (hot path: no allocation, no locks) ---- */

uint32_t enrich_range4_find(const struct range4 *r, uint32_t ip)
{
    size_t lo = 0, hi = r->n;
    if (r->index != NULL) {
        /* The answer is the last range starting at or before ip: it starts in ip's /16 or is the
         * last one starting before it. */
        lo = r->index[ip >> 16];
        hi = r->index[(ip >> 16) + 1];
        if (lo > 0) {
            lo--;
        }
    }
    /* First range in [lo, hi) with first > ip. */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->first[mid] <= ip) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0 || ip > r->last[lo - 1]) {
        return ENRICH_NONE;
    }
    return r->value[lo - 1];
}

uint32_t enrich_range6_find(const struct range6 *r, struct u128 ip)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (u128_cmp(r->first[mid], ip) <= 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo == 0 || u128_cmp(ip, r->last[lo - 1]) > 0) {
        return ENRICH_NONE;
    }
    return r->value[lo - 1];
}

/* ---- the string pool ---- */

static int pool_add(struct pool *p, const char *s, size_t n, uint32_t *off)
{
    if (p->len + n + 1 > UINT32_MAX - 1) {
        return -1;
    }
    if (p->len + n + 1 > p->cap) {
        size_t cap = p->cap ? p->cap : 4096;
        while (cap < p->len + n + 1) {
            cap *= 2;
        }
        char *nb = realloc(p->buf, cap);
        if (nb == NULL) {
            return -1;
        }
        p->buf = nb;
        p->cap = cap;
    }
    memcpy(p->buf + p->len, s, n);
    p->buf[p->len + n] = '\0';
    *off = (uint32_t)p->len;
    p->len += n + 1;
    return 0;
}

/* ---- AS entries: (number, name) interned once ---- */

static uint64_t hash_as(uint32_t asn, const char *name)
{
    uint64_t h = 1469598103934665603ULL ^ asn; /* FNV-1a */
    for (; *name; name++) {
        h = (h ^ (uint8_t)*name) * 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int intern_grow(struct enrich_tables *t)
{
    size_t cap = t->intern_cap ? t->intern_cap * 2 : 1 << 16;
    uint32_t *slots = calloc(cap, sizeof(*slots));
    if (slots == NULL) {
        return -1;
    }
    for (size_t i = 0; i < t->intern_cap; i++) {
        uint32_t e = t->intern[i];
        if (e != 0) {
            size_t j = hash_as(t->as_number[e - 1], t->pool.buf + t->as_name[e - 1]) & (cap - 1);
            while (slots[j] != 0) {
                j = (j + 1) & (cap - 1);
            }
            slots[j] = e;
        }
    }
    free(t->intern);
    t->intern = slots;
    t->intern_cap = cap;
    return 0;
}

/* Returns the AS entry index for (asn, name), adding it if new; ENRICH_NONE when out of memory. */
static uint32_t as_intern(struct enrich_tables *t, uint32_t asn, const char *name)
{
    if ((t->as_n + 1) * 2 > t->intern_cap && intern_grow(t) != 0) {
        return ENRICH_NONE;
    }
    size_t j = hash_as(asn, name) & (t->intern_cap - 1);
    while (t->intern[j] != 0) {
        uint32_t e = t->intern[j] - 1;
        if (t->as_number[e] == asn && strcmp(t->pool.buf + t->as_name[e], name) == 0) {
            return e;
        }
        j = (j + 1) & (t->intern_cap - 1);
    }
    /* intern_cap is a power of two >= 2 * (as_n + 1), so the arrays grow with it. */
    if (t->as_n % 4096 == 0) {
        size_t cap = t->as_n + 4096;
        uint32_t *num = realloc(t->as_number, cap * sizeof(*num));
        if (num == NULL) {
            return ENRICH_NONE;
        }
        t->as_number = num;
        uint32_t *nm = realloc(t->as_name, cap * sizeof(*nm));
        if (nm == NULL) {
            return ENRICH_NONE;
        }
        t->as_name = nm;
    }
    uint32_t off;
    if (pool_add(&t->pool, name, strlen(name), &off) != 0) {
        return ENRICH_NONE;
    }
    t->as_number[t->as_n] = asn;
    t->as_name[t->as_n] = off;
    t->intern[j] = (uint32_t)t->as_n + 1;
    return (uint32_t)t->as_n++;
}

/* ---- building range tables ---- */

int enrich_range4_alloc(struct range4 *r, size_t cap)
{
    r->first = malloc((cap ? cap : 1) * sizeof(uint32_t));
    r->last = malloc((cap ? cap : 1) * sizeof(uint32_t));
    r->value = malloc((cap ? cap : 1) * sizeof(uint32_t));
    return r->first && r->last && r->value ? 0 : -1;
}

static int range6_alloc(struct range6 *r, size_t cap)
{
    r->first = malloc((cap ? cap : 1) * sizeof(struct u128));
    r->last = malloc((cap ? cap : 1) * sizeof(struct u128));
    r->value = malloc((cap ? cap : 1) * sizeof(uint32_t));
    return r->first && r->last && r->value ? 0 : -1;
}

int enrich_range4_index(struct range4 *r)
{
    r->index = malloc(65537 * sizeof(uint32_t));
    if (r->index == NULL) {
        return -1;
    }
    size_t i = 0;
    for (uint32_t k = 0; k <= 65536; k++) {
        uint64_t bound = (uint64_t)k << 16;
        while (i < r->n && r->first[i] < bound) {
            i++;
        }
        r->index[k] = (uint32_t)i;
    }
    return 0;
}

void enrich_range4_free(struct range4 *r)
{
    free(r->first);
    free(r->last);
    free(r->value);
    free(r->index);
    memset(r, 0, sizeof(*r));
}

static void range6_free(struct range6 *r)
{
    free(r->first);
    free(r->last);
    free(r->value);
    memset(r, 0, sizeof(*r));
}

void enrich_ranges_free(struct enrich_tables *t)
{
    enrich_range4_free(&t->asn4);
    range6_free(&t->asn6);
    enrich_range4_free(&t->tag4);
    enrich_range4_free(&t->cc4);
    range6_free(&t->tag6);
    free(t->as_number);
    free(t->as_name);
    free(t->tag_asn);
    free(t->tag_asn_set);
    free(t->pool.buf);
    free(t->intern);
    t->as_number = t->as_name = t->tag_asn = t->tag_asn_set = t->intern = NULL;
    t->pool.buf = NULL;
}

static size_t count_lines(const char *buf, size_t len)
{
    size_t n = 1;
    for (const char *p = buf; (p = memchr(p, '\n', len - (size_t)(p - buf))) != NULL; p++) {
        n++;
    }
    return n;
}

static int range4_grow(struct range4 *r, size_t *cap)
{
    size_t nc = *cap * 2;
    uint32_t *a = realloc(r->first, nc * sizeof(*a));
    if (a != NULL) {
        r->first = a;
    }
    uint32_t *b = realloc(r->last, nc * sizeof(*b));
    if (b != NULL) {
        r->last = b;
    }
    uint32_t *v = realloc(r->value, nc * sizeof(*v));
    if (v != NULL) {
        r->value = v;
    }
    if (a == NULL || b == NULL || v == NULL) {
        return -1;
    }
    *cap = nc;
    return 0;
}

static int range6_grow(struct range6 *r, size_t *cap)
{
    size_t nc = *cap * 2;
    struct u128 *a = realloc(r->first, nc * sizeof(*a));
    if (a != NULL) {
        r->first = a;
    }
    struct u128 *b = realloc(r->last, nc * sizeof(*b));
    if (b != NULL) {
        r->last = b;
    }
    uint32_t *v = realloc(r->value, nc * sizeof(*v));
    if (v != NULL) {
        r->value = v;
    }
    if (a == NULL || b == NULL || v == NULL) {
        return -1;
    }
    *cap = nc;
    return 0;
}

/* Appends [first, last] to a table kept sorted and disjoint. Rows must come in ascending order of
 * their first address. The 2026 data has one row starting inside the one before it
 * (asn-ipv4.csv: 214.95.0.0-215.0.255.255 AS749, then 215.0.0.0-215.1.3.255 AS721); the later,
 * more specific start wins the overlap: the earlier row is cut short, and if it reached past the
 * new row, its remainder follows it. Returns 0, 1 if an overlap was resolved, -1 if out of order,
 * -2 if out of memory. */
int enrich_range4_add(struct range4 *r, size_t *cap, uint32_t first, uint32_t last, uint32_t value)
{
    int overlap = 0;
    uint32_t rest_last = 0, rest_value = 0;
    if (r->n > 0 && first <= r->last[r->n - 1]) {
        if (first <= r->first[r->n - 1]) {
            return -1;
        }
        overlap = 1;
        if (last < r->last[r->n - 1]) {
            overlap = 2;
            rest_last = r->last[r->n - 1];
            rest_value = r->value[r->n - 1];
        }
        r->last[r->n - 1] = first - 1;
    }
    if (r->n + 2 > *cap && range4_grow(r, cap) != 0) {
        return -2;
    }
    r->first[r->n] = first, r->last[r->n] = last, r->value[r->n] = value;
    r->n++;
    if (overlap == 2) {
        r->first[r->n] = last + 1, r->last[r->n] = rest_last, r->value[r->n] = rest_value;
        r->n++;
    }
    return overlap ? 1 : 0;
}

static int range6_add(struct range6 *r, size_t *cap, struct u128 first, struct u128 last,
                      uint32_t value)
{
    int overlap = 0;
    struct u128 rest_last = {0, 0};
    uint32_t rest_value = 0;
    if (r->n > 0 && u128_cmp(first, r->last[r->n - 1]) <= 0) {
        if (u128_cmp(first, r->first[r->n - 1]) <= 0) {
            return -1;
        }
        overlap = 1;
        if (u128_cmp(last, r->last[r->n - 1]) < 0) {
            overlap = 2;
            rest_last = r->last[r->n - 1];
            rest_value = r->value[r->n - 1];
        }
        r->last[r->n - 1] = u128_dec(first);
    }
    if (r->n + 2 > *cap && range6_grow(r, cap) != 0) {
        return -2;
    }
    r->first[r->n] = first, r->last[r->n] = last, r->value[r->n] = value;
    r->n++;
    if (overlap == 2) {
        r->first[r->n] = u128_inc(last), r->last[r->n] = rest_last, r->value[r->n] = rest_value;
        r->n++;
    }
    return overlap ? 1 : 0;
}

/* Loads one ip-location-db ASN CSV (already read into buf) into the family's range table; the
 * table is only attached to t when the whole file parsed. */
int enrich_asn_load(struct enrich_tables *t, const char *path, int family, char *buf, size_t len,
                    char *err, size_t errlen)
{
    char msg[192];
    struct enrich_asn_row row;
    struct range4 r4 = {0};
    struct range6 r6 = {0};
    size_t cap = count_lines(buf, len) + 2, lineno = 0;
    int rc = -1;
    if (cap > ENRICH_ASN_ROWS_MAX + 3) {
        return err_set(err, errlen, "%s: more than %d rows", path, ENRICH_ASN_ROWS_MAX);
    }
    if ((family == AF_INET ? enrich_range4_alloc(&r4, cap) : range6_alloc(&r6, cap)) != 0) {
        err_set(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (size_t pos = 0; pos < len;) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + 1;
        lineno++;
        if (ll == 0 || (ll == 1 && line[0] == '\r')) {
            continue;
        }
        if (enrich_asn_parse_line(line, ll, &row, msg, sizeof(msg)) < 0) {
            err_set(err, errlen, "%s:%zu: %s", path, lineno, msg);
            goto out;
        }
        if (row.first.family != family) {
            err_set(err, errlen, "%s:%zu: %s range in an %s file", path, lineno,
                    row.first.family == AF_INET ? "IPv4" : "IPv6",
                    family == AF_INET ? "IPv4" : "IPv6");
            goto out;
        }
        uint32_t as = as_intern(t, row.asn, row.name);
        if (as == ENRICH_NONE) {
            err_set(err, errlen, "%s: out of memory", path);
            goto out;
        }
        int added = family == AF_INET
                        ? enrich_range4_add(&r4, &cap, ip4_of(&row.first), ip4_of(&row.last), as)
                        : range6_add(&r6, &cap, enrich_u128_from(row.first.ip),
                                     enrich_u128_from(row.last.ip), as);
        if (added == -1) {
            err_set(err, errlen, "%s:%zu: range does not start after the one before it", path,
                    lineno);
            goto out;
        }
        if (added == -2) {
            err_set(err, errlen, "%s: out of memory", path);
            goto out;
        }
        t->asn_overlaps += (size_t)added;
    }
    if (r4.n + r6.n == 0) {
        err_set(err, errlen, "%s: no ranges (empty or truncated file)", path);
        goto out;
    }
    if (family == AF_INET) {
        if (enrich_range4_index(&r4) != 0) {
            err_set(err, errlen, "%s: out of memory", path);
            goto out;
        }
        enrich_range4_free(&t->asn4);
        t->asn4 = r4;
        memset(&r4, 0, sizeof(r4));
    } else {
        range6_free(&t->asn6);
        t->asn6 = r6;
        memset(&r6, 0, sizeof(r6));
    }
    rc = 0;
out:
    enrich_range4_free(&r4);
    range6_free(&r6);
    return rc;
}

/* ---- sector tags ---- */

/* One parsed rule, remembered with where it came from for error messages. */
struct tag_rule {
    struct u128 first, last;
    uint32_t asn;
    uint8_t family, plen;
    uint32_t order; /* position over all files: tags keep the operator's order */
    uint16_t file;
    uint32_t line;
    char tag[ENRICH_TAG_LEN_MAX + 1];
};

static int rule_cmp_prefix(const void *pa, const void *pb)
{
    const struct tag_rule *a = pa, *b = pb;
    if (a->family != b->family) {
        return a->family < b->family ? -1 : 1;
    }
    int c = u128_cmp(a->first, b->first);
    if (c != 0) {
        return c;
    }
    if (a->plen != b->plen) {
        return a->plen < b->plen ? -1 : 1; /* enclosing prefixes first */
    }
    return a->order < b->order ? -1 : (a->order > b->order ? 1 : 0);
}

static int rule_cmp_asn(const void *pa, const void *pb)
{
    const struct tag_rule *a = pa, *b = pb;
    if (a->asn != b->asn) {
        return a->asn < b->asn ? -1 : 1;
    }
    return a->order < b->order ? -1 : (a->order > b->order ? 1 : 0);
}

/* Appends tag to the comma-joined set unless present; -1 if the set would not fit. */
static int set_add(char set[ENRICH_TAGS_MAX], const char *tag)
{
    size_t n = strlen(set), tl = strlen(tag);
    for (const char *p = set; *p;) {
        const char *comma = strchr(p, ',');
        size_t pl = comma ? (size_t)(comma - p) : strlen(p);
        if (pl == tl && memcmp(p, tag, tl) == 0) {
            return 0;
        }
        p += pl + (comma ? 1 : 0);
    }
    if (n + (n ? 1 : 0) + tl > ENRICH_TAGS_MAX - 1) {
        return -1;
    }
    if (n) {
        set[n++] = ',';
    }
    memcpy(set + n, tag, tl + 1);
    return 0;
}

/* Groups rules [i, j) that share a key into one tag set stored in the pool. */
static int group_set(struct enrich_tables *t, const struct tag_rule *rules, size_t i, size_t j,
                     const char *const *paths, uint32_t *off, char *err, size_t errlen)
{
    char set[ENRICH_TAGS_MAX] = "";
    for (size_t k = i; k < j; k++) {
        if (set_add(set, rules[k].tag) != 0) {
            err_set(err, errlen, "%s:%u: tags for this %s joined with ',' exceed %d bytes",
                    paths[rules[k].file], (unsigned)rules[k].line,
                    rules[k].family ? "prefix" : "AS", ENRICH_TAGS_MAX - 1);
            return -1;
        }
    }
    if (pool_add(&t->pool, set, strlen(set), off) != 0) {
        err_set(err, errlen, "tag tables: out of memory");
        return -1;
    }
    return 0;
}

struct flat {
    struct u128 *first, *last;
    uint32_t *value;
    size_t n, cap;
};

static int flat_emit(struct flat *f, struct u128 first, struct u128 last, uint32_t value)
{
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 64;
        struct u128 *a = realloc(f->first, cap * sizeof(*a));
        if (a == NULL) {
            return -1;
        }
        f->first = a;
        struct u128 *b = realloc(f->last, cap * sizeof(*b));
        if (b == NULL) {
            return -1;
        }
        f->last = b;
        uint32_t *v = realloc(f->value, cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        f->value = v;
        f->cap = cap;
    }
    f->first[f->n] = first;
    f->last[f->n] = last;
    f->value[f->n] = value;
    f->n++;
    return 0;
}

/* Turns nested CIDR prefixes (sorted by first address, enclosing ones first, one per prefix) into
 * disjoint ranges where each address carries the set of its longest matching prefix, so a lookup
 * is one binary search. A sweep with a stack of open prefixes (depth <= 129). */
static int flatten(const struct u128 *first, const struct u128 *last, const uint32_t *set, size_t n,
                   struct flat *out)
{
    struct {
        struct u128 last;
        uint32_t set;
    } stack[130];
    size_t depth = 0;
    struct u128 pos = {0, 0};
    for (size_t i = 0; i < n; i++) {
        while (depth > 0 && u128_cmp(stack[depth - 1].last, first[i]) < 0) {
            if (u128_cmp(pos, stack[depth - 1].last) <= 0 &&
                flat_emit(out, pos, stack[depth - 1].last, stack[depth - 1].set) != 0) {
                return -1;
            }
            pos = u128_inc(stack[depth - 1].last); /* < first[i], so no overflow */
            depth--;
        }
        if (depth > 0 && u128_cmp(pos, first[i]) < 0 &&
            flat_emit(out, pos, u128_dec(first[i]), stack[depth - 1].set) != 0) {
            return -1;
        }
        if (depth >= sizeof(stack) / sizeof(stack[0])) {
            return -1; /* cannot happen: prefixes nest at most 129 deep */
        }
        pos = first[i];
        stack[depth].last = last[i];
        stack[depth].set = set[i];
        depth++;
    }
    bool done = false;
    while (depth > 0) {
        struct u128 end = stack[depth - 1].last;
        if (!done && u128_cmp(pos, end) <= 0 &&
            flat_emit(out, pos, end, stack[depth - 1].set) != 0) {
            return -1;
        }
        if (u128_is_max(end)) {
            done = true;
        } else if (!done) {
            pos = u128_inc(end);
        }
        depth--;
    }
    return 0;
}

static void flat_free(struct flat *f)
{
    free(f->first);
    free(f->last);
    free(f->value);
    memset(f, 0, sizeof(*f));
}

/* Builds the tag tables of one family from the prefix rules [i, j) (sorted). */
static int build_family(struct enrich_tables *t, const struct tag_rule *rules, size_t i, size_t j,
                        int family, const char *const *paths, char *err, size_t errlen)
{
    struct flat keys = {0}, f = {0};
    int rc = -1;
    for (size_t k = i; k < j;) {
        size_t e = k + 1;
        while (e < j && rules[e].plen == rules[k].plen &&
               u128_cmp(rules[e].first, rules[k].first) == 0) {
            e++;
        }
        uint32_t off;
        if (group_set(t, rules, k, e, paths, &off, err, errlen) != 0) {
            goto out;
        }
        if (flat_emit(&keys, rules[k].first, rules[k].last, off) != 0) {
            err_set(err, errlen, "tag tables: out of memory");
            goto out;
        }
        k = e;
    }
    if (flatten(keys.first, keys.last, keys.value, keys.n, &f) != 0) {
        err_set(err, errlen, "tag tables: out of memory");
        goto out;
    }
    if (family == AF_INET) {
        struct range4 *r = &t->tag4;
        if (enrich_range4_alloc(r, f.n) != 0) {
            err_set(err, errlen, "tag tables: out of memory");
            goto out;
        }
        for (size_t k = 0; k < f.n; k++) {
            r->first[k] = (uint32_t)f.first[k].lo;
            r->last[k] = (uint32_t)f.last[k].lo;
            r->value[k] = f.value[k];
        }
        r->n = f.n;
    } else {
        t->tag6.first = f.first;
        t->tag6.last = f.last;
        t->tag6.value = f.value;
        t->tag6.n = f.n;
        memset(&f, 0, sizeof(f));
    }
    rc = 0;
out:
    flat_free(&keys);
    flat_free(&f);
    return rc;
}

static int parse_tag_buffer(const char *path, uint16_t file, const char *buf, size_t len,
                            struct tag_rule **rules, size_t *n, size_t *cap, char *err,
                            size_t errlen)
{
    char msg[192];
    struct enrich_tag_rule r;
    uint32_t lineno = 0;
    for (size_t pos = 0; pos < len;) {
        const char *line = buf + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + 1;
        lineno++;
        int got = enrich_tag_parse_line(line, ll, &r, msg, sizeof(msg));
        if (got < 0) {
            return err_set(err, errlen, "%s:%u: %s", path, (unsigned)lineno, msg);
        }
        if (got == 0) {
            continue;
        }
        if (*n >= ENRICH_TAG_RULES_MAX) {
            return err_set(err, errlen, "%s:%u: more than %d tag rules in all", path,
                           (unsigned)lineno, ENRICH_TAG_RULES_MAX);
        }
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 256;
            struct tag_rule *nr = realloc(*rules, nc * sizeof(*nr));
            if (nr == NULL) {
                return err_set(err, errlen, "%s: out of memory", path);
            }
            *rules = nr;
            *cap = nc;
        }
        struct tag_rule *o = &(*rules)[*n];
        memset(o, 0, sizeof(*o));
        o->order = (uint32_t)*n;
        o->file = file;
        o->line = lineno;
        memcpy(o->tag, r.tag, sizeof(o->tag));
        if (r.kind == ENRICH_RULE_ASN) {
            o->asn = r.asn;
        } else {
            uint8_t ip[16] = {0}, hi[16];
            struct u128 first;
            o->plen = r.cidr.prefix;
            if (r.cidr.family == AF_INET) {
                o->family = 4;
                ip[12] = r.cidr.ip[0], ip[13] = r.cidr.ip[1];
                ip[14] = r.cidr.ip[2], ip[15] = r.cidr.ip[3];
                o->plen = (uint8_t)(r.cidr.prefix + 96); /* as a /96-relative key */
            } else {
                o->family = 6;
                memcpy(ip, r.cidr.ip, 16);
            }
            first = enrich_u128_from(ip);
            memcpy(hi, ip, 16);
            for (unsigned b = o->plen; b < 128; b++) {
                hi[b / 8] |= (uint8_t)(0x80 >> (b % 8));
            }
            o->first = first;
            o->last = enrich_u128_from(hi);
        }
        (*n)++;
    }
    return 0;
}

/* Parses every tag file (already read into bufs) and builds the longest-prefix tables for both
 * families and the ASN table; attached to t only when all files parsed. */
int enrich_tags_load(struct enrich_tables *t, const char *const *paths, char *const *bufs,
                     const size_t *lens, char *err, size_t errlen)
{
    struct tag_rule *rules = NULL;
    size_t n = 0, cap = 0;
    int rc = -1;
    for (uint16_t f = 0; paths[f] != NULL; f++) {
        if (parse_tag_buffer(paths[f], f, bufs[f], lens[f], &rules, &n, &cap, err, errlen) != 0) {
            goto out;
        }
    }
    t->tag_rules = n;
    /* Prefix rules sort before ASN rules (family 4/6 vs 0 after the partition below). */
    size_t np = 0;
    for (size_t i = 0; i < n; i++) {
        if (rules[i].family != 0) {
            struct tag_rule tmp = rules[np];
            rules[np++] = rules[i];
            rules[i] = tmp;
        }
    }
    if (n > 0) { /* qsort(NULL, 0, ...) is undefined */
        qsort(rules, np, sizeof(*rules), rule_cmp_prefix);
        qsort(rules + np, n - np, sizeof(*rules), rule_cmp_asn);
    }
    size_t split = 0;
    while (split < np && rules[split].family == 4) {
        split++;
    }
    if (build_family(t, rules, 0, split, AF_INET, paths, err, errlen) != 0 ||
        build_family(t, rules, split, np, AF_INET6, paths, err, errlen) != 0) {
        goto out;
    }
    size_t groups = 0;
    for (size_t i = np; i < n; i++) {
        groups += (i == np || rules[i].asn != rules[i - 1].asn);
    }
    t->tag_asn = malloc((groups ? groups : 1) * sizeof(uint32_t));
    t->tag_asn_set = malloc((groups ? groups : 1) * sizeof(uint32_t));
    if (t->tag_asn == NULL || t->tag_asn_set == NULL) {
        err_set(err, errlen, "tag tables: out of memory");
        goto out;
    }
    for (size_t i = np; i < n;) {
        size_t e = i + 1;
        while (e < n && rules[e].asn == rules[i].asn) {
            e++;
        }
        uint32_t off;
        if (group_set(t, rules, i, e, paths, &off, err, errlen) != 0) {
            goto out;
        }
        t->tag_asn[t->tag_asn_n] = rules[i].asn;
        t->tag_asn_set[t->tag_asn_n++] = off;
        i = e;
    }
    rc = 0;
out:
    free(rules);
    return rc;
}
