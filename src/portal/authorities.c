/* authorities.c -- reads the portal's authorities file with libinih, refusing anything unknown,
 * repeated, missing or out of range with file:line, and answers "is this victim theirs?". */
#include "portal/portal.h"
#include "util/err.h"
#include "util/ini_lines.h"

#include <ini.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_id {
    K_NAME,
    K_COUNTRIES,
    K_ASNS,
    K_NETWORKS,
    K_TOKEN,
    K_CERT,
    K_MAY,
    K_MAX_DAYS_OLD,
    K_COUNT
};

static const struct {
    const char *name;
    bool list;
    bool required;
} keys[K_COUNT] = {
    [K_NAME] = {"name", false, true},
    [K_COUNTRIES] = {"countries", true, false},
    [K_ASNS] = {"asns", true, false},
    [K_NETWORKS] = {"networks", true, false},
    [K_TOKEN] = {"token_sha256", false, false},
    [K_CERT] = {"client_cert_sha256", false, false},
    [K_MAY] = {"may", true, true},
    [K_MAX_DAYS_OLD] = {"max_days_old", false, true},
};

struct parse_state {
    struct ini_lines rd; /* the reader: the line last handed to inih, and whether indented */
    bool failed;
    struct portal_authority *cur; /* NULL outside a section */
    bool in_section;
    int list_key; /* the key whose list is being split */
    int last_key;
    unsigned key_line[K_COUNT];
    struct portal_authorities *as;
    unsigned err_line;
    char msg[400];
};

__attribute__((format(printf, 3, 4))) static int fail_at(struct parse_state *st, unsigned line,
                                                         const char *fmt, ...)
{
    if (st->failed) {
        return 0;
    }
    char text[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    st->failed = true;
    st->err_line = line;
    if (st->cur != NULL) {
        snprintf(st->msg, sizeof(st->msg), "authority '%s': %s", st->cur->id, text);
    } else {
        snprintf(st->msg, sizeof(st->msg), "%s", text);
    }
    return 0;
}

#define FAIL(st, ...) fail_at((st), (st)->rd.line, __VA_ARGS__)

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

static bool check_section(struct parse_state *st, size_t idx);

static void open_section(void *ctx, char *header)
{
    struct parse_state *st = ctx;
    /* The previous section is complete: check it now, so its errors name its lines. */
    if (st->cur != NULL && !check_section(st, st->as->n - 1)) {
        return;
    }
    st->cur = NULL;
    st->in_section = false;
    st->last_key = -1;
    memset(st->key_line, 0, sizeof(st->key_line));
    char *name = NULL;
    int shape = ini_header_name(header, &name);
    if (shape == -1) {
        FAIL(st, "section header without ']'");
        return;
    }
    if (shape == -2) {
        FAIL(st, "text after section header: '%s'", name);
        return;
    }
    const char *kw = "authority";
    size_t kwlen = strlen(kw);
    if (strncmp(name, kw, kwlen) != 0 || (name[kwlen] != '\0' && !ini_blank(name[kwlen]))) {
        FAIL(st, "unknown section '[%s]' (expected [authority <id>])", name);
        return;
    }
    char *id = ini_trim(name + kwlen);
    size_t idlen = strlen(id);
    if (idlen == 0) {
        FAIL(st, "section [authority] needs an id: [authority <id>]");
        return;
    }
    if (idlen > PORTAL_ID_MAX) {
        FAIL(st, "authority id longer than %d characters", PORTAL_ID_MAX);
        return;
    }
    for (size_t i = 0; i < idlen; i++) {
        if (!id_char(id[i])) {
            FAIL(st, "authority id '%s' may hold only letters, digits, '-', '_' and '.'", id);
            return;
        }
    }
    for (size_t i = 0; i < st->as->n; i++) {
        if (strcmp(st->as->a[i]->id, id) == 0) {
            FAIL(st, "duplicate authority id '%s' (first on line %u)", id, st->as->a[i]->line);
            return;
        }
    }
    if (st->as->n >= PORTAL_AUTHORITIES_MAX) {
        FAIL(st, "more than %d authorities", PORTAL_AUTHORITIES_MAX);
        return;
    }
    struct portal_authority *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        FAIL(st, "out of memory");
        return;
    }
    memcpy(a->id, id, idlen + 1);
    a->line = st->rd.line;
    st->as->a[st->as->n++] = a;
    st->cur = a;
    st->in_section = true;
}

static void reader_error(void *ctx, const char *msg)
{
    FAIL((struct parse_state *)ctx, "%s", msg);
}

/* ISO 3166-1 alpha-2 shape; whether a code is assigned is the policy module's table, which the
 * portal does not link: two upper-case letters, or "ZZ"-style user-assigned codes refused. */
static bool country_shape(const char *c)
{
    return strlen(c) == 2 && c[0] >= 'A' && c[0] <= 'Z' && c[1] >= 'A' && c[1] <= 'Z' &&
           !(c[0] == 'Z' && c[1] == 'Z') && !(c[0] == 'X');
}

static bool hex32(const char *s, uint8_t out[32])
{
    if (strlen(s) != 64) {
        return false;
    }
    for (size_t i = 0; i < 32; i++) {
        unsigned v = 0;
        for (size_t k = 0; k < 2; k++) {
            char c = s[2 * i + k];
            unsigned d;
            if (c >= '0' && c <= '9') {
                d = (unsigned)(c - '0');
            } else if (c >= 'a' && c <= 'f') {
                d = (unsigned)(c - 'a' + 10);
            } else if (c >= 'A' && c <= 'F') {
                d = (unsigned)(c - 'A' + 10);
            } else {
                return false;
            }
            v = v * 16 + d;
        }
        out[i] = (uint8_t)v;
    }
    return true;
}

static bool add_item(struct parse_state *st, int key, char *item)
{
    struct portal_authority *a = st->cur;
    const char *kn = keys[key].name;
    switch (key) {
    case K_COUNTRIES:
        if (strlen(item) == 2 && item[0] >= 'a' && item[0] <= 'z') {
            return FAIL(st, "country code '%s' in '%s' must be upper case", item, kn);
        }
        if (!country_shape(item)) {
            return FAIL(st, "bad country code '%s' in '%s' (ISO 3166-1 alpha-2, e.g. NG)", item,
                        kn);
        }
        for (size_t i = 0; i < a->n_countries; i++) {
            if (strcmp(a->countries[i], item) == 0) {
                return FAIL(st, "country '%s' listed twice in '%s'", item, kn);
            }
        }
        if (a->n_countries >= PORTAL_COUNTRIES_MAX) {
            return FAIL(st, "more than %d entries in '%s'", PORTAL_COUNTRIES_MAX, kn);
        }
        memcpy(a->countries[a->n_countries++], item, 3);
        return true;
    case K_ASNS: {
        const char *d = item;
        if ((d[0] == 'A' || d[0] == 'a') && (d[1] == 'S' || d[1] == 's')) {
            d += 2;
        }
        uint64_t v = 0;
        size_t n = 0;
        for (; d[n] >= '0' && d[n] <= '9' && n < 11; n++) {
            v = v * 10 + (uint64_t)(d[n] - '0');
        }
        /* AS0 means "unknown" in enrichment: never a scope (RFC 7607 reserves it). */
        if (n == 0 || d[n] != '\0' || v == 0 || v > UINT32_MAX) {
            return FAIL(st, "bad AS number '%s' in '%s' (AS64500 or 64500, 1..4294967295)", item,
                        kn);
        }
        for (size_t i = 0; i < a->n_asns; i++) {
            if (a->asns[i] == v) {
                return FAIL(st, "AS%llu listed twice in '%s'", (unsigned long long)v, kn);
            }
        }
        if (a->n_asns >= PORTAL_ASNS_MAX) {
            return FAIL(st, "more than %d entries in '%s'", PORTAL_ASNS_MAX, kn);
        }
        a->asns[a->n_asns++] = (uint32_t)v;
        return true;
    }
    case K_NETWORKS: {
        struct net_cidr c;
        char e[128] = "";
        if (strchr(item, '/') == NULL || net_cidr_parse(item, &c, e, sizeof(e)) != 0) {
            return FAIL(st, "bad network '%s' in '%s' (CIDR, e.g. 198.51.100.0/24)", item, kn);
        }
        /* Host bits past the prefix are more likely a typo than a wish for the wider network. */
        char addr[NET_ADDR_STRLEN + 1];
        size_t alen = (size_t)(strchr(item, '/') - item);
        struct net_addr ip;
        if (alen >= sizeof(addr)) {
            return FAIL(st, "bad network '%s' in '%s'", item, kn);
        }
        memcpy(addr, item, alen);
        addr[alen] = '\0';
        if (net_addr_parse_ip(addr, &ip) != 0 || ip.family != c.family ||
            memcmp(ip.ip, c.ip, c.family == AF_INET ? 4 : 16) != 0) {
            return FAIL(st, "network '%s' in '%s' has bits set past /%u", item, kn, c.prefix);
        }
        if (c.prefix == 0) {
            return FAIL(st, "network '%s' in '%s' is the whole address space", item, kn);
        }
        for (size_t i = 0; i < a->n_networks; i++) {
            if (a->networks[i].family == c.family && a->networks[i].prefix == c.prefix &&
                memcmp(a->networks[i].ip, c.ip, 16) == 0) {
                return FAIL(st, "network '%s' listed twice in '%s'", item, kn);
            }
        }
        if (a->n_networks >= PORTAL_NETWORKS_MAX) {
            return FAIL(st, "more than %d entries in '%s'", PORTAL_NETWORKS_MAX, kn);
        }
        a->networks[a->n_networks++] = c;
        return true;
    }
    case K_MAY:
        if (strcmp(item, "read") == 0) {
            if (a->may_read) {
                return FAIL(st, "'read' listed twice in 'may'");
            }
            a->may_read = true;
        } else if (strcmp(item, "request") == 0) {
            if (a->may_request) {
                return FAIL(st, "'request' listed twice in 'may'");
            }
            a->may_request = true;
        } else {
            return FAIL(st, "unknown right '%s' in 'may' (read, request)", item);
        }
        return true;
    default:
        return FAIL(st, "internal: '%s' is not a list", kn);
    }
}

static bool list_item(void *ctx, char *item)
{
    struct parse_state *st = ctx;
    return add_item(st, st->list_key, item);
}

static bool parse_list(struct parse_state *st, int key, const char *value)
{
    char buf[PORTAL_AUTH_LINE_MAX + 1];
    st->list_key = key;
    const char *bad = ini_split_list(value, buf, sizeof(buf), list_item, st);
    if (bad != NULL && *bad != '\0') {
        FAIL(st, "%s '%s'", bad, keys[key].name);
    }
    return bad == NULL;
}

static bool parse_scalar(struct parse_state *st, int key, const char *value)
{
    struct portal_authority *a = st->cur;
    const char *kn = keys[key].name;
    switch (key) {
    case K_NAME: {
        size_t n = strlen(value);
        if (n > PORTAL_NAME_MAX) {
            return FAIL(st, "'name' longer than %d characters", PORTAL_NAME_MAX);
        }
        for (size_t i = 0; i < n; i++) {
            if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
                return FAIL(st, "control character in 'name'");
            }
        }
        memcpy(a->name, value, n + 1);
        return true;
    }
    case K_TOKEN:
    case K_CERT: {
        uint8_t *dst = key == K_TOKEN ? a->token_sha256 : a->cert_sha256;
        if (!hex32(value, dst)) {
            return FAIL(st, "'%s' must be 64 hex digits (a SHA-256), not '%.16s...'", kn, value);
        }
        static const uint8_t zero[32];
        if (memcmp(dst, zero, 32) == 0) {
            return FAIL(st, "'%s' is all zeros", kn);
        }
        *(key == K_TOKEN ? &a->has_token : &a->has_cert) = true;
        return true;
    }
    case K_MAX_DAYS_OLD: {
        uint64_t v = 0;
        size_t n = 0;
        for (; value[n] >= '0' && value[n] <= '9' && n < 6; n++) {
            v = v * 10 + (uint64_t)(value[n] - '0');
        }
        if (n == 0 || value[n] != '\0' || v < 1 || v > PORTAL_MAX_DAYS_OLD_MAX) {
            return FAIL(st, "bad max_days_old '%s' (whole days, 1..%d)", value,
                        PORTAL_MAX_DAYS_OLD_MAX);
        }
        a->max_days_old = (uint32_t)v;
        return true;
    }
    default:
        return FAIL(st, "internal: '%s' is a list", kn);
    }
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;
    (void)section;
    if (st->failed) {
        return 1;
    }
    if (!st->in_section) {
        return FAIL(st, "key '%s' outside any section", name);
    }
    int key = -1;
    for (int k = 0; k < K_COUNT; k++) {
        if (strcmp(keys[k].name, name) == 0) {
            key = k;
            break;
        }
    }
    if (key < 0) {
        return FAIL(st, "unknown key '%s'", name);
    }
    bool continuation = st->rd.indented && st->last_key == key;
    if (continuation && !keys[key].list) {
        return FAIL(st, "indented continuation line for '%s' (only lists may continue)", name);
    }
    if (!continuation && st->key_line[key] != 0) {
        return FAIL(st, "duplicate key '%s' (first on line %u)", name, st->key_line[key]);
    }
    if (!continuation) {
        st->key_line[key] = st->rd.line;
    }
    st->last_key = key;
    if (*value == '\0') {
        return FAIL(st, "empty value for '%s'", name);
    }
    return keys[key].list ? parse_list(st, key, value) : parse_scalar(st, key, value);
}

/* Whole-section checks: required keys, a scope, a way to log in. */
static bool check_section(struct parse_state *st, size_t idx)
{
    struct portal_authority *a = st->as->a[idx];
    if (a == NULL) { /* callers pass the section being read, never an empty slot */
        return fail_at(st, 0, "no section to check");
    }
    st->cur = a;
    for (int k = 0; k < K_COUNT; k++) {
        if (keys[k].required && st->key_line[k] == 0) {
            return fail_at(st, a->line, "missing required key '%s'", keys[k].name);
        }
    }
    if (a->n_countries == 0 && a->n_asns == 0 && a->n_networks == 0) {
        return fail_at(st, a->line, "empty scope: give at least one of countries, asns, networks");
    }
    if (!a->has_token && !a->has_cert) {
        return fail_at(st, a->line,
                       "no way to log in: give token_sha256 and/or client_cert_sha256");
    }
    for (size_t i = 0; i < idx; i++) {
        const struct portal_authority *b = st->as->a[i];
        if (a->has_token && b->has_token && memcmp(a->token_sha256, b->token_sha256, 32) == 0) {
            return fail_at(st, st->key_line[K_TOKEN], "same token_sha256 as authority '%s'", b->id);
        }
        if (a->has_cert && b->has_cert && memcmp(a->cert_sha256, b->cert_sha256, 32) == 0) {
            return fail_at(st, st->key_line[K_CERT], "same client_cert_sha256 as authority '%s'",
                           b->id);
        }
    }
    return true;
}

int portal_authorities_parse(const char *text, size_t len, const char *name,
                             struct portal_authorities **out, char *err, size_t errlen)
{
    if (name == NULL) {
        name = "authorities";
    }
    if (text == NULL && len > 0) {
        return err_set(err, errlen, "%s: no text", name);
    }
    if (len > PORTAL_AUTH_FILE_MAX) {
        return err_set(err, errlen, "%s: larger than %u bytes", name, PORTAL_AUTH_FILE_MAX);
    }
    unsigned nul_line = ini_lines_nul_line(text, len);
    if (nul_line != 0) {
        return err_set(err, errlen, "%s:%u: NUL byte in the file", name, nul_line);
    }
    struct parse_state *st = calloc(1, sizeof(*st));
    struct portal_authorities *as = calloc(1, sizeof(*as));
    if (st == NULL || as == NULL) {
        free(st);
        free(as);
        return err_set(err, errlen, "%s: out of memory", name);
    }
    ini_lines_init(&st->rd, text, len, PORTAL_AUTH_LINE_MAX, open_section, reader_error, st);
    st->as = as;
    st->last_key = -1;
    int r = len > 0 ? ini_parse_stream(ini_lines_read, &st->rd, on_pair, st) : 0;
    if (r == -2 && !st->failed) {
        fail_at(st, 0, "out of memory");
    } else if (r > 0 && (!st->failed || (unsigned)r < st->err_line)) {
        st->failed = false;
        st->cur = NULL;
        fail_at(st, (unsigned)r, "syntax error (expected 'key = value', '[section]' or a comment)");
    }
    if (!st->failed && st->cur != NULL) {
        check_section(st, as->n - 1);
    }
    if (!st->failed && as->n == 0) {
        st->cur = NULL;
        fail_at(st, 0, "no [authority <id>] section: nobody could log in");
    }
    if (st->failed) {
        if (st->err_line > 0) {
            err_set(err, errlen, "%s:%u: %s", name, st->err_line, st->msg);
        } else {
            err_set(err, errlen, "%s: %s", name, st->msg);
        }
        free(st);
        portal_authorities_free(as);
        return -1;
    }
    free(st);
    if (EVP_Digest(len > 0 ? text : "", len, as->sha256, NULL, EVP_sha256(), NULL) != 1) {
        portal_authorities_free(as);
        return err_set(err, errlen, "%s: SHA-256 failed", name);
    }
    *out = as;
    return 0;
}

int portal_authorities_load(const char *path, struct portal_authorities **out, char *err,
                            size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno));
    }
    char *buf = malloc(PORTAL_AUTH_FILE_MAX + 1);
    if (buf == NULL) {
        fclose(f);
        return err_set(err, errlen, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, PORTAL_AUTH_FILE_MAX + 1, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr) {
        rc = err_set(err, errlen, "%s: read error", path);
    } else if (n > PORTAL_AUTH_FILE_MAX) {
        rc = err_set(err, errlen, "%s: larger than %u bytes", path, PORTAL_AUTH_FILE_MAX);
    } else {
        rc = portal_authorities_parse(buf, n, path, out, err, errlen);
    }
    free(buf);
    return rc;
}

void portal_authorities_free(struct portal_authorities *as)
{
    if (as == NULL) {
        return;
    }
    for (size_t i = 0; i < as->n; i++) {
        OPENSSL_cleanse(as->a[i], sizeof(*as->a[i]));
        free(as->a[i]);
    }
    free(as);
}

/* ---- scope -------------------------------------------------------------------------------- */

bool portal_scope_has_country(const struct portal_authority *a, const char *cc)
{
    if (cc == NULL || cc[0] == '\0') {
        return false; /* an unknown country is nobody's by country */
    }
    for (size_t i = 0; i < a->n_countries; i++) {
        if (strcmp(a->countries[i], cc) == 0) {
            return true;
        }
    }
    return false;
}

bool portal_scope_has_asn(const struct portal_authority *a, uint32_t asn)
{
    for (size_t i = 0; asn != 0 && i < a->n_asns; i++) {
        if (a->asns[i] == asn) {
            return true;
        }
    }
    return false;
}

bool portal_scope_has_network(const struct portal_authority *a, const struct net_cidr *net)
{
    for (size_t i = 0; i < a->n_networks; i++) {
        const struct net_cidr *n = &a->networks[i];
        if (n->family != net->family || n->prefix > net->prefix) {
            continue;
        }
        struct net_addr first = {.family = net->family};
        memcpy(first.ip, net->ip, 16);
        if (net_cidr_contains(n, &first)) {
            return true;
        }
    }
    return false;
}

bool portal_scope_holds(const struct portal_authority *a, const char *cc, uint32_t asn,
                        const struct net_addr *ip)
{
    if (portal_scope_has_country(a, cc) || portal_scope_has_asn(a, asn)) {
        return true;
    }
    for (size_t i = 0; ip != NULL && ip->family != 0 && i < a->n_networks; i++) {
        if (net_cidr_contains(&a->networks[i], ip)) {
            return true;
        }
    }
    return false;
}

const struct portal_authority *portal_authority_by_token(const struct portal_authorities *as,
                                                         const char *token, size_t len)
{
    uint8_t digest[32];
    if (as == NULL || EVP_Digest(token, len, digest, NULL, EVP_sha256(), NULL) != 1) {
        return NULL;
    }
    /* Every authority is compared, in constant time each, so the answer's timing says nothing
     * about which (or whether any) stored digest shares a prefix with the presented one. */
    const struct portal_authority *found = NULL;
    for (size_t i = 0; i < as->n; i++) {
        const struct portal_authority *a = as->a[i];
        int diff = CRYPTO_memcmp(digest, a->token_sha256, 32);
        if (a->has_token && diff == 0 && found == NULL) {
            found = a;
        }
    }
    OPENSSL_cleanse(digest, sizeof(digest));
    return found;
}

const struct portal_authority *portal_authority_by_cert(const struct portal_authorities *as,
                                                        const uint8_t fingerprint[32])
{
    const struct portal_authority *found = NULL;
    for (size_t i = 0; as != NULL && i < as->n; i++) {
        const struct portal_authority *a = as->a[i];
        int diff = CRYPTO_memcmp(fingerprint, a->cert_sha256, 32);
        if (a->has_cert && diff == 0 && found == NULL) {
            found = a;
        }
    }
    return found;
}

const struct portal_authority *portal_authority_by_id(const struct portal_authorities *as,
                                                      const char *id)
{
    for (size_t i = 0; as != NULL && id != NULL && i < as->n; i++) {
        if (strcmp(as->a[i]->id, id) == 0) {
            return as->a[i];
        }
    }
    return NULL;
}

/* ---- description -------------------------------------------------------------------------- */

struct text {
    char *buf;
    size_t len, cap;
    bool failed;
};

__attribute__((format(printf, 2, 3))) static void add(struct text *t, const char *fmt, ...)
{
    if (t->failed) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char line[1024];
    int n =
        vsnprintf(line, sizeof(line), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    if (n < 0) {
        t->failed = true;
        return;
    }
    size_t w = (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (t->len + w + 1 > t->cap) {
        size_t cap = (t->cap + w + 1) * 2;
        char *g = realloc(t->buf, cap);
        if (g == NULL) {
            t->failed = true;
            return;
        }
        t->buf = g;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, line, w + 1);
    t->len += w;
}

char *portal_authorities_describe(const struct portal_authorities *as)
{
    struct text t = {0};
    add(&t,
        "%zu authorit%s. A victim is an authority's when its country, its AS or its address\n"
        "(the latest contact's) is in that authority's scope.\n",
        as->n, as->n == 1 ? "y" : "ies");
    for (size_t i = 0; i < as->n; i++) {
        const struct portal_authority *a = as->a[i];
        add(&t, "\n[%s] %s\n  scope:", a->id, a->name);
        if (a->n_countries > 0) {
            add(&t, " countries");
            for (size_t k = 0; k < a->n_countries; k++) {
                add(&t, "%s%s", k ? "," : " ", a->countries[k]);
            }
        }
        if (a->n_asns > 0) {
            add(&t, "%s asns", a->n_countries ? ";" : "");
            for (size_t k = 0; k < a->n_asns; k++) {
                add(&t, "%sAS%u", k ? "," : " ", (unsigned)a->asns[k]);
            }
        }
        if (a->n_networks > 0) {
            add(&t, "%s networks", a->n_countries || a->n_asns ? ";" : "");
            for (size_t k = 0; k < a->n_networks; k++) {
                struct net_addr m = {.family = a->networks[k].family};
                memcpy(m.ip, a->networks[k].ip, 16);
                char ip[NET_ADDR_STRLEN];
                net_addr_format_ip(&m, ip);
                add(&t, "%s%s/%u", k ? "," : " ", ip, a->networks[k].prefix);
            }
        }
        add(&t, "\n  logs in with: %s%s%s\n", a->has_token ? "a Bearer token" : "",
            a->has_token && a->has_cert ? " or " : "", a->has_cert ? "a client certificate" : "");
        add(&t, "  may: %s%s%s; rows last seen within %u days\n", a->may_read ? "read" : "",
            a->may_read && a->may_request ? ", " : "", a->may_request ? "request disinfection" : "",
            (unsigned)a->max_days_old);
    }
    add(&t, "\nSHA-256 of the file: ");
    for (size_t i = 0; i < 32; i++) {
        add(&t, "%02x", as->sha256[i]);
    }
    add(&t, "\n");
    if (t.failed) {
        free(t.buf);
        return NULL;
    }
    return t.buf;
}
