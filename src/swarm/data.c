/* data.c -- the swarm's data tables: country weights and per-country IPv4 address ranges. */
#include "swarm/swarm.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Reads one line into buf; 1 on a line, 0 at EOF, -1 if longer than the buffer. */
static int read_line(FILE *in, char *buf, size_t cap)
{
    if (fgets(buf, (int)cap, in) == NULL) {
        return 0;
    }
    size_t n = strlen(buf);
    if (n > 0 && buf[n - 1] == '\n') {
        buf[--n] = '\0';
    } else if (!feof(in)) {
        return -1;
    }
    if (n > 0 && buf[n - 1] == '\r') {
        buf[--n] = '\0';
    }
    return 1;
}

static bool blank_or_comment(const char *s)
{
    while (*s == ' ' || *s == '\t') {
        s++;
    }
    return *s == '\0' || *s == '#';
}

static bool valid_cc(const char *s, size_t n)
{
    return n == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z';
}

int swarm_countries_read(FILE *in, const char *name, struct swarm_countries *out, char *err,
                         size_t errlen)
{
    char line[SWARM_LINE_MAX];
    size_t lineno = 0;
    memset(out, 0, sizeof(*out));
    out->items = calloc(SWARM_MAX_COUNTRIES, sizeof(*out->items));
    if (out->items == NULL) {
        err_set(err, errlen, "%s: out of memory", name);
        return SWARM_E_NOMEM;
    }
    int rc = 0;
    for (;;) {
        int r = read_line(in, line, sizeof(line));
        lineno++;
        if (r == 0) {
            break;
        }
        if (r < 0) {
            err_set(err, errlen, "%s:%zu: line longer than %d bytes", name, lineno,
                    SWARM_LINE_MAX - 2);
            rc = SWARM_E_SYNTAX;
            goto fail;
        }
        if (blank_or_comment(line) || strncmp(line, "cc,", 3) == 0) {
            continue; /* the CSV header names its columns */
        }
        char *c1 = strchr(line, ',');
        if (c1 == NULL || !valid_cc(line, (size_t)(c1 - line))) {
            err_set(err, errlen, "%s:%zu: expected 'CC,weight[,basis]' with a two-letter code",
                    name, lineno);
            rc = SWARM_E_SYNTAX;
            goto fail;
        }
        char *end = NULL;
        errno = 0;
        double w = strtod(c1 + 1, &end);
        if (end == c1 + 1 || errno != 0 || (*end != ',' && *end != '\0') || !(w > 0) || w > 1e9) {
            err_set(err, errlen, "%s:%zu: weight must be a positive number", name, lineno);
            rc = SWARM_E_SYNTAX;
            goto fail;
        }
        for (size_t i = 0; i < out->count; i++) {
            if (memcmp(out->items[i].cc, line, 2) == 0) {
                err_set(err, errlen, "%s:%zu: country '%.2s' listed twice", name, lineno, line);
                rc = SWARM_E_SYNTAX;
                goto fail;
            }
        }
        if (out->count == SWARM_MAX_COUNTRIES) {
            err_set(err, errlen, "%s:%zu: more than %u countries", name, lineno,
                    SWARM_MAX_COUNTRIES);
            rc = SWARM_E_LIMIT;
            goto fail;
        }
        struct swarm_country *c = &out->items[out->count++];
        memcpy(c->cc, line, 2);
        c->cc[2] = '\0';
        c->weight = w;
        out->total += w;
        c->cumulative = out->total;
    }
    if (ferror(in)) {
        err_set(err, errlen, "%s: read error", name);
        rc = SWARM_E_FILE;
        goto fail;
    }
    if (out->count == 0) {
        err_set(err, errlen, "%s: no countries", name);
        rc = SWARM_E_SYNTAX;
        goto fail;
    }
    return 0;
fail:
    swarm_countries_free(out);
    return rc;
}

int swarm_countries_load(const char *path, struct swarm_countries *out, char *err, size_t errlen)
{
    FILE *in = fopen(path, "r");
    if (in == NULL) {
        memset(out, 0, sizeof(*out));
        err_set(err, errlen, "%s: %s", path, strerror(errno));
        return SWARM_E_FILE;
    }
    int rc = swarm_countries_read(in, path, out, err, errlen);
    fclose(in);
    return rc;
}

void swarm_countries_free(struct swarm_countries *c)
{
    free(c->items);
    memset(c, 0, sizeof(*c));
}

size_t swarm_countries_pick(const struct swarm_countries *c, double u)
{
    double x = u * c->total;
    size_t lo = 0, hi = c->count - 1;
    while (lo < hi) { /* first item whose cumulative weight exceeds x */
        size_t mid = lo + (hi - lo) / 2;
        if (c->items[mid].cumulative > x) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    return lo;
}

static uint16_t pack_cc(const char *cc)
{
    return (uint16_t)(((uint8_t)cc[0] << 8) | (uint8_t)cc[1]);
}

static int parse_ipv4(const char *s, size_t n, uint32_t *out)
{
    char text[16];
    struct in_addr a;
    if (n == 0 || n >= sizeof(text)) {
        return -1;
    }
    memcpy(text, s, n);
    text[n] = '\0';
    if (inet_pton(AF_INET, text, &a) != 1) {
        return -1;
    }
    *out = ntohl(a.s_addr);
    return 0;
}

static int range_cmp(const void *a, const void *b)
{
    const struct swarm_range *x = a, *y = b;
    if (x->cc != y->cc) {
        return x->cc < y->cc ? -1 : 1;
    }
    return x->start < y->start ? -1 : x->start > y->start;
}

int swarm_ranges_read(FILE *in, const char *name, struct swarm_ranges *out, char *err,
                      size_t errlen)
{
    char line[SWARM_LINE_MAX];
    size_t lineno = 0, cap = 0;
    int rc = 0;
    memset(out, 0, sizeof(*out));
    for (;;) {
        int r = read_line(in, line, sizeof(line));
        lineno++;
        if (r == 0) {
            break;
        }
        if (r < 0) {
            err_set(err, errlen, "%s:%zu: line longer than %d bytes", name, lineno,
                    SWARM_LINE_MAX - 2);
            rc = SWARM_E_SYNTAX;
            goto fail;
        }
        if (blank_or_comment(line)) {
            continue;
        }
        char *c1 = strchr(line, ',');
        char *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
        struct swarm_range rg;
        if (c2 == NULL || parse_ipv4(line, (size_t)(c1 - line), &rg.start) != 0 ||
            parse_ipv4(c1 + 1, (size_t)(c2 - c1 - 1), &rg.end) != 0 ||
            !valid_cc(c2 + 1, strlen(c2 + 1)) || rg.end < rg.start) {
            err_set(err, errlen, "%s:%zu: expected 'start_ipv4,end_ipv4,CC' with start <= end",
                    name, lineno);
            rc = SWARM_E_SYNTAX;
            goto fail;
        }
        rg.cc = pack_cc(c2 + 1);
        if (out->count == cap) {
            if (cap == SWARM_MAX_RANGES) {
                err_set(err, errlen, "%s:%zu: more than %u ranges", name, lineno, SWARM_MAX_RANGES);
                rc = SWARM_E_LIMIT;
                goto fail;
            }
            size_t ncap = cap ? cap * 2 : 4096;
            if (ncap > SWARM_MAX_RANGES) {
                ncap = SWARM_MAX_RANGES;
            }
            struct swarm_range *n = realloc(out->items, ncap * sizeof(*n));
            if (n == NULL) {
                err_set(err, errlen, "%s: out of memory", name);
                rc = SWARM_E_NOMEM;
                goto fail;
            }
            out->items = n;
            cap = ncap;
        }
        out->items[out->count++] = rg;
    }
    if (ferror(in)) {
        err_set(err, errlen, "%s: read error", name);
        rc = SWARM_E_FILE;
        goto fail;
    }
    if (out->count == 0) {
        err_set(err, errlen, "%s: no ranges", name);
        rc = SWARM_E_SYNTAX;
        goto fail;
    }
    qsort(out->items, out->count, sizeof(*out->items), range_cmp);
    out->cumulative = malloc(out->count * sizeof(*out->cumulative));
    if (out->cumulative == NULL) {
        err_set(err, errlen, "%s: out of memory", name);
        rc = SWARM_E_NOMEM;
        goto fail;
    }
    for (size_t i = 0; i < out->count; i++) {
        uint64_t size = (uint64_t)out->items[i].end - out->items[i].start + 1;
        bool same = i > 0 && out->items[i - 1].cc == out->items[i].cc;
        out->cumulative[i] = (same ? out->cumulative[i - 1] : 0) + size;
    }
    return 0;
fail:
    swarm_ranges_free(out);
    return rc;
}

int swarm_ranges_load(const char *path, struct swarm_ranges *out, char *err, size_t errlen)
{
    FILE *in = fopen(path, "r");
    if (in == NULL) {
        memset(out, 0, sizeof(*out));
        err_set(err, errlen, "%s: %s", path, strerror(errno));
        return SWARM_E_FILE;
    }
    int rc = swarm_ranges_read(in, path, out, err, errlen);
    fclose(in);
    return rc;
}

void swarm_ranges_free(struct swarm_ranges *r)
{
    free(r->items);
    free(r->cumulative);
    memset(r, 0, sizeof(*r));
}

/* [first, last) of the ranges of cc; first == last when there are none. */
static void cc_span(const struct swarm_ranges *r, uint16_t cc, size_t *first, size_t *last)
{
    size_t lo = 0, hi = r->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->items[mid].cc < cc) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *first = lo;
    hi = r->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->items[mid].cc <= cc) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *last = lo;
}

uint64_t swarm_ranges_size(const struct swarm_ranges *r, const char *cc)
{
    size_t first, last;
    cc_span(r, pack_cc(cc), &first, &last);
    return first == last ? 0 : r->cumulative[last - 1];
}

int swarm_ranges_pick(const struct swarm_ranges *r, const char *cc, uint64_t r64, uint32_t *ip)
{
    size_t first, last;
    cc_span(r, pack_cc(cc), &first, &last);
    if (first == last) {
        return -1;
    }
    uint64_t x = r64 % r->cumulative[last - 1];
    size_t lo = first, hi = last - 1;
    while (lo < hi) { /* first range whose cumulative count exceeds x */
        size_t mid = lo + (hi - lo) / 2;
        if (r->cumulative[mid] > x) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    uint64_t before = lo == first ? 0 : r->cumulative[lo - 1];
    *ip = r->items[lo].start + (uint32_t)(x - before);
    return 0;
}
