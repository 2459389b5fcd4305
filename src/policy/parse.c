/* parse.c -- reads a policy file with libinih and refuses anything unknown, repeated, missing,
 * out of range or ambiguous, naming file, line and key. */
#include "policy/policy_impl.h"
#include "util/err.h"
#include "util/ini_lines.h"

#include <ini.h>
#include <openssl/evp.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum key_id {
    K_AUTHORITY,
    K_LEGAL_REFERENCE,
    K_COUNTRIES,
    K_ASNS,
    K_PREFIXES,
    K_EXCLUDE_TAGS,
    K_EXCLUDE_PREFIXES,
    K_NOT_BEFORE,
    K_NOT_AFTER,
    K_RATE,
    K_BURST,
    K_ONCE_PER_BOT,
    K_COMMAND,
    K_COMMAND_ID,
    K_MODE,
    K_COUNT
};

static const struct {
    const char *name;
    bool list;     /* comma list; may continue on indented lines */
    bool required; /* every authorisation must give it */
} auth_keys[K_COUNT] = {
    [K_AUTHORITY] = {"authority", false, true},
    [K_LEGAL_REFERENCE] = {"legal_reference", false, true},
    [K_COUNTRIES] = {"countries", true, false},
    [K_ASNS] = {"asns", true, false},
    [K_PREFIXES] = {"prefixes", true, false},
    [K_EXCLUDE_TAGS] = {"exclude_tags", true, false},
    [K_EXCLUDE_PREFIXES] = {"exclude_prefixes", true, false},
    [K_NOT_BEFORE] = {"not_before", false, true},
    [K_NOT_AFTER] = {"not_after", false, true},
    [K_RATE] = {"rate", false, true},
    [K_BURST] = {"burst", false, false},
    [K_ONCE_PER_BOT] = {"once_per_bot", false, false},
    [K_COMMAND] = {"command", false, true},
    [K_COMMAND_ID] = {"command_id", false, false},
    [K_MODE] = {"mode", false, false},
};

enum section_kind { SEC_NONE, SEC_POLICY, SEC_AUTH };

/* [policy] keys use ids past the authorisation keys. */
enum { PK_NAME = 0, PK_VERSION = 1 };

struct parse_state {
    const char *name;    /* file name for messages */
    struct ini_lines rd; /* the reader: the line last handed to inih, and whether indented */
    enum section_kind section;
    struct policy_authorisation *cur;
    int list_key;     /* the key whose list is being split */
    int last_key;     /* key of the previous pair in this section, -1 after a header */
    bool policy_seen; /* a [policy] section was opened */
    unsigned policy_key_line[2];
    struct policy *p;
    unsigned auth_key_line[POLICY_MAX_AUTHORISATIONS][K_COUNT];
    bool failed;
    unsigned err_line;
    char msg[400];
};

/* Records the first error only: later ones are usually consequences of it. */
__attribute__((format(printf, 3, 4))) static int fail_at(struct parse_state *st, unsigned line,
                                                         const char *fmt, ...)
{
    if (st->failed) {
        return 0;
    }
    char text[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    st->failed = true;
    st->err_line = line;
    if (st->section == SEC_AUTH && st->cur != NULL) {
        snprintf(st->msg, sizeof(st->msg), "authorisation '%s': %s", st->cur->id, text);
    } else if (st->section == SEC_POLICY) {
        snprintf(st->msg, sizeof(st->msg), "[policy]: %s", text);
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

/* A section header line, seen by the reader (inih does not report headers to the handler, so an
 * empty or misspelt section would otherwise pass unnoticed). */
static void open_section(void *ctx, char *header)
{
    struct parse_state *st = ctx;
    st->last_key = -1;
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
    if (strcmp(name, "policy") == 0) {
        st->section = SEC_POLICY;
        st->cur = NULL;
        if (st->policy_seen) {
            FAIL(st, "duplicate section");
        }
        st->policy_seen = true;
        return;
    }
    st->section = SEC_NONE;
    st->cur = NULL;
    const char *kw = "authorisation";
    size_t kwlen = strlen(kw);
    if (strncmp(name, kw, kwlen) != 0 || (name[kwlen] != '\0' && !ini_blank(name[kwlen]))) {
        if (strncmp(name, "authorization", kwlen) == 0) {
            FAIL(st, "unknown section '[%s]' (the keyword is spelt 'authorisation')", name);
        } else {
            FAIL(st, "unknown section '[%s]' (expected [policy] or [authorisation <id>])", name);
        }
        return;
    }
    char *id = ini_trim(name + kwlen);
    size_t idlen = strlen(id);
    if (idlen == 0) {
        FAIL(st, "section [authorisation] needs an id: [authorisation <id>]");
        return;
    }
    if (idlen > POLICY_ID_MAX) {
        FAIL(st, "authorisation id longer than %d characters", POLICY_ID_MAX);
        return;
    }
    for (size_t i = 0; i < idlen; i++) {
        if (!id_char(id[i])) {
            FAIL(st, "authorisation id '%s' may hold only letters, digits, '-', '_' and '.'", id);
            return;
        }
    }
    for (size_t i = 0; i < st->p->n_auth; i++) {
        if (strcmp(st->p->auth[i]->id, id) == 0) {
            FAIL(st, "duplicate authorisation id '%s' (first on line %u)", id,
                 st->p->auth[i]->line);
            return;
        }
    }
    if (st->p->n_auth >= POLICY_MAX_AUTHORISATIONS) {
        FAIL(st, "more than %d authorisations", POLICY_MAX_AUTHORISATIONS);
        return;
    }
    struct policy_authorisation *a = calloc(1, sizeof(*a));
    if (a == NULL) {
        FAIL(st, "out of memory");
        return;
    }
    memcpy(a->id, id, idlen + 1);
    a->line = st->rd.line;
    a->once_per_bot = true;        /* at most once per bot unless the policy says otherwise */
    a->mode = POLICY_MODE_DRY_RUN; /* dry-run is the default (DESIGN.md, remediation safety 3) */
    st->p->auth[st->p->n_auth++] = a;
    st->cur = a;
    st->section = SEC_AUTH;
}

static void reader_error(void *ctx, const char *msg)
{
    FAIL((struct parse_state *)ctx, "%s", msg);
}

static bool text_ok(struct parse_state *st, const char *key, const char *value, char *dst)
{
    size_t n = strlen(value);
    if (n > POLICY_TEXT_MAX) {
        return FAIL(st, "'%s' longer than %d characters", key, POLICY_TEXT_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)value[i] < 0x20 || value[i] == 0x7f) {
            return FAIL(st, "control character in '%s'", key);
        }
    }
    memcpy(dst, value, n + 1);
    return true;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant, "chrono-compatible low-level
 * date algorithms", days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Exactly "YYYY-MM-DDTHH:MM:SSZ" (RFC 3339 in UTC, no fraction, no offset), 1970..9999. */
static int parse_utc(const char *s, uint64_t *out_us)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof(shape) - 1) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(shape) - 1; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != shape[i]) {
            return -1;
        }
    }
#define NUM2(i) ((unsigned)(s[i] - '0') * 10 + (unsigned)(s[(i) + 1] - '0'))
    unsigned year = NUM2(0) * 100 + NUM2(2);
    unsigned mon = NUM2(5), day = NUM2(8), hh = NUM2(11), mm = NUM2(14), ss = NUM2(17);
#undef NUM2
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (year < 1970 || mon < 1 || mon > 12 || hh > 23 || mm > 59 || ss > 59) {
        return -1;
    }
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    unsigned dim = mdays[mon - 1] + (mon == 2 && leap ? 1 : 0);
    if (day < 1 || day > dim) {
        return -1;
    }
    int64_t days = days_from_civil(year, mon, day);
    *out_us = ((uint64_t)days * 86400 + hh * 3600 + mm * 60 + ss) * 1000000ull;
    return 0;
}

/* "0x1A2B" (hex, 1..8 digits after 0x) or "6699" (decimal, 1..10 digits), at most
 * POLICY_COMMAND_ID_MAX; no sign, no blank. 0 is returned as such for the caller to refuse. */
static int parse_command_id(const char *s, uint32_t *out)
{
    uint64_t v = 0;
    size_t n = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        s += 2;
        for (; n < 9 && s[n] != '\0'; n++) {
            char c = s[n];
            int d = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
            if (d < 0) {
                return -1;
            }
            v = v * 16 + (uint64_t)d;
        }
        if (n == 0 || n > 8) {
            return -1;
        }
    } else {
        for (; n < 11 && s[n] >= '0' && s[n] <= '9'; n++) {
            v = v * 10 + (uint64_t)(s[n] - '0');
        }
        if (n == 0 || n > 10 || s[n] != '\0') {
            return -1;
        }
    }
    if (v > POLICY_COMMAND_ID_MAX) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

/* A decimal "30", "0.5", "2500.25": no sign, no exponent, at most 6 fraction digits. */
static int parse_rate(const char *s, double *out)
{
    double v = 0;
    size_t i = 0, digits = 0;
    for (; s[i] >= '0' && s[i] <= '9'; i++, digits++) {
        if (digits > 7) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (digits == 0) {
        return -1;
    }
    if (s[i] == '.') {
        double scale = 0.1;
        size_t frac = 0;
        for (i++; s[i] >= '0' && s[i] <= '9'; i++, frac++) {
            if (frac >= 6) {
                return -1;
            }
            v += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (frac == 0) {
            return -1;
        }
    }
    if (s[i] != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

static bool cidr_equal(const struct net_cidr *a, const struct net_cidr *b)
{
    return a->family == b->family && a->prefix == b->prefix && memcmp(a->ip, b->ip, 16) == 0;
}

/* CIDR text via net_cidr_parse, refusing host bits beyond the prefix: "10.1.2.3/8" is more
 * likely a typo than a wish for 10.0.0.0/8. */
static bool parse_prefix(struct parse_state *st, const char *key, const char *item,
                         struct net_cidr *out)
{
    char e[128] = "";
    if (net_cidr_parse(item, out, e, sizeof(e)) != 0) {
        return FAIL(st, "bad prefix '%s' in '%s'%s%s", item, key, e[0] ? ": " : "", e);
    }
    char addr[NET_ADDR_STRLEN + 1];
    const char *slash = strchr(item, '/');
    size_t alen = slash != NULL ? (size_t)(slash - item) : strlen(item);
    if (alen >= sizeof(addr)) {
        return FAIL(st, "bad prefix '%s' in '%s'", item, key);
    }
    memcpy(addr, item, alen);
    addr[alen] = '\0';
    struct net_addr a;
    if (net_addr_parse_ip(addr, &a) != 0 || a.family != out->family) {
        return FAIL(st, "bad prefix '%s' in '%s'", item, key);
    }
    size_t width = out->family == AF_INET ? 4 : 16;
    if (memcmp(a.ip, out->ip, width) != 0) {
        char fixed[NET_ADDR_STRLEN];
        struct net_addr m = {.family = out->family};
        memcpy(m.ip, out->ip, 16);
        net_addr_format_ip(&m, fixed);
        return FAIL(st, "prefix '%s' in '%s' has bits set past /%u (did you mean %s/%u?)", item,
                    key, out->prefix, fixed, out->prefix);
    }
    return true;
}

static bool add_item(struct parse_state *st, int key, char *item)
{
    struct policy_authorisation *a = st->cur;
    const char *kn = auth_keys[key].name;
    switch (key) {
    case K_COUNTRIES: {
        if (a->n_countries >= POLICY_MAX_COUNTRIES) {
            return FAIL(st, "more than %d entries in '%s'", POLICY_MAX_COUNTRIES, kn);
        }
        if (strlen(item) == 2 && item[0] >= 'a' && item[0] <= 'z') {
            return FAIL(st, "country code '%s' in '%s' must be upper case", item, kn);
        }
        if (!policy_country_assigned(item)) {
            return FAIL(st, "unknown country code '%s' in '%s'", item, kn);
        }
        unsigned bit = (unsigned)(item[0] - 'A') * 26 + (unsigned)(item[1] - 'A');
        if (a->country_bits[bit / 8] & (1u << (bit % 8))) {
            return FAIL(st, "country '%s' listed twice in '%s'", item, kn);
        }
        a->country_bits[bit / 8] |= (uint8_t)(1u << (bit % 8));
        memcpy(a->countries[a->n_countries++], item, 3);
        return true;
    }
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
        /* AS0 is reserved (RFC 7607) and means "unknown" in enrichment: never a scope. */
        if (n == 0 || d[n] != '\0' || v == 0 || v > UINT32_MAX) {
            return FAIL(st, "bad AS number '%s' in '%s' (AS64500 or 64500, 1..4294967295)", item,
                        kn);
        }
        for (size_t i = 0; i < a->n_asns; i++) {
            if (a->asns[i] == v) {
                return FAIL(st, "AS%llu listed twice in '%s'", (unsigned long long)v, kn);
            }
        }
        if (a->n_asns >= POLICY_MAX_ASNS) {
            return FAIL(st, "more than %d entries in '%s'", POLICY_MAX_ASNS, kn);
        }
        a->asns[a->n_asns++] = (uint32_t)v;
        return true;
    }
    case K_PREFIXES:
    case K_EXCLUDE_PREFIXES: {
        struct net_cidr *list = key == K_PREFIXES ? a->prefixes : a->exclude_prefixes;
        size_t *n = key == K_PREFIXES ? &a->n_prefixes : &a->n_exclude_prefixes;
        struct net_cidr c;
        if (!parse_prefix(st, kn, item, &c)) {
            return false;
        }
        for (size_t i = 0; i < *n; i++) {
            if (cidr_equal(&list[i], &c)) {
                return FAIL(st, "prefix '%s' listed twice in '%s'", item, kn);
            }
        }
        if (*n >= POLICY_MAX_PREFIXES) {
            return FAIL(st, "more than %d entries in '%s'", POLICY_MAX_PREFIXES, kn);
        }
        list[(*n)++] = c;
        return true;
    }
    case K_EXCLUDE_TAGS: {
        size_t n = strlen(item);
        if (n > POLICY_TAG_MAX) {
            return FAIL(st, "tag '%s' in '%s' longer than %d characters", item, kn, POLICY_TAG_MAX);
        }
        for (size_t i = 0; i < n; i++) {
            char c = item[i];
            if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
                return FAIL(st, "tag '%s' in '%s' may hold only a-z, 0-9, '-' and '_'", item, kn);
            }
        }
        for (size_t i = 0; i < a->n_exclude_tags; i++) {
            if (strcmp(a->exclude_tags[i], item) == 0) {
                return FAIL(st, "tag '%s' listed twice in '%s'", item, kn);
            }
        }
        if (a->n_exclude_tags >= POLICY_MAX_TAGS) {
            return FAIL(st, "more than %d entries in '%s'", POLICY_MAX_TAGS, kn);
        }
        memcpy(a->exclude_tags[a->n_exclude_tags++], item, n + 1);
        return true;
    }
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
    char buf[POLICY_MAX_LINE + 1];
    st->list_key = key;
    const char *bad = ini_split_list(value, buf, sizeof(buf), list_item, st);
    if (bad != NULL && *bad != '\0') {
        FAIL(st, "%s '%s'", bad, auth_keys[key].name);
    }
    return bad == NULL;
}

static bool parse_scalar(struct parse_state *st, int key, const char *value)
{
    struct policy_authorisation *a = st->cur;
    const char *kn = auth_keys[key].name;
    switch (key) {
    case K_AUTHORITY:
        return text_ok(st, kn, value, a->authority);
    case K_LEGAL_REFERENCE:
        return text_ok(st, kn, value, a->legal_reference);
    case K_NOT_BEFORE:
    case K_NOT_AFTER:
        if (parse_utc(value, key == K_NOT_BEFORE ? &a->not_before_us : &a->not_after_us) != 0) {
            return FAIL(st, "bad time '%s' in '%s' (expected UTC as YYYY-MM-DDTHH:MM:SSZ)", value,
                        kn);
        }
        return true;
    case K_RATE:
        if (parse_rate(value, &a->rate) != 0 || !(a->rate > 0) || a->rate > POLICY_RATE_MAX) {
            return FAIL(st, "bad rate '%s' (commands per second, a number > 0 and <= %.0f)", value,
                        POLICY_RATE_MAX);
        }
        a->interval_ns = (uint64_t)(1e9 / a->rate + 0.5);
        return true;
    case K_BURST: {
        uint64_t v = 0;
        size_t n = 0;
        for (; value[n] >= '0' && value[n] <= '9' && n < 8; n++) {
            v = v * 10 + (uint64_t)(value[n] - '0');
        }
        if (n == 0 || value[n] != '\0' || v < 1 || v > POLICY_BURST_MAX) {
            return FAIL(st, "bad burst '%s' (a whole number of commands, 1..%u)", value,
                        POLICY_BURST_MAX);
        }
        a->burst = (uint32_t)v;
        return true;
    }
    case K_ONCE_PER_BOT:
        if (strcmp(value, "true") == 0) {
            a->once_per_bot = true;
        } else if (strcmp(value, "false") == 0) {
            a->once_per_bot = false;
        } else {
            return FAIL(st, "bad value '%s' for '%s' (true or false)", value, kn);
        }
        return true;
    case K_COMMAND:
        if (strcmp(value, "uninstall") == 0) {
            a->command = POLICY_COMMAND_UNINSTALL;
        } else if (strcmp(value, "collect") == 0) {
            a->command = POLICY_COMMAND_COLLECT;
        } else {
            return FAIL(st, "unknown command '%s' (uninstall or collect)", value);
        }
        return true;
    case K_COMMAND_ID: {
        uint32_t id = 0;
        if (parse_command_id(value, &id) != 0) {
            return FAIL(st,
                        "bad command_id '%s' (the seized variant's own self-delete id, 1..0x%X, "
                        "as 0x-prefixed hex or decimal)",
                        value, POLICY_COMMAND_ID_MAX);
        }
        if (id == 0) {
            return FAIL(st, "command_id 0 is no command: give the seized variant's own "
                            "self-delete id");
        }
        const char *meaning = policy_command_id_meaning(id);
        if (meaning != NULL) {
            return FAIL(st,
                        "command_id 0x%04X is '%s' in public PlugX command tables, not a "
                        "self-delete: give the seized variant's own id (docs/policy.md)",
                        id, meaning);
        }
        a->command_id = id;
        return true;
    }
    case K_MODE:
        if (strcmp(value, "dry-run") == 0) {
            a->mode = POLICY_MODE_DRY_RUN;
        } else if (strcmp(value, "enforce") == 0) {
            a->mode = POLICY_MODE_ENFORCE;
        } else {
            return FAIL(st, "bad mode '%s' (dry-run or enforce)", value);
        }
        return true;
    default:
        return FAIL(st, "internal: '%s' is a list", kn);
    }
}

static int on_policy_key(struct parse_state *st, const char *name, const char *value)
{
    int k = strcmp(name, "name") == 0 ? PK_NAME : strcmp(name, "version") == 0 ? PK_VERSION : -1;
    if (k < 0) {
        return FAIL(st, "unknown key '%s' (expected name or version)", name);
    }
    if (st->rd.indented && st->last_key == k) {
        return FAIL(st, "indented continuation line for '%s' (only lists may continue)", name);
    }
    if (st->policy_key_line[k] != 0) {
        return FAIL(st, "duplicate key '%s' (first on line %u)", name, st->policy_key_line[k]);
    }
    st->policy_key_line[k] = st->rd.line;
    st->last_key = k;
    if (*value == '\0') {
        return FAIL(st, "empty value for '%s'", name);
    }
    return text_ok(st, name, value, k == PK_NAME ? st->p->name : st->p->version);
}

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    struct parse_state *st = user;
    (void)section; /* the reader tracks sections itself, including empty ones */
    if (st->failed) {
        return 1; /* report the first error only */
    }
    if (st->section == SEC_NONE) {
        return FAIL(st, "key '%s' outside any section", name);
    }
    if (st->section == SEC_POLICY) {
        return on_policy_key(st, name, value);
    }
    int key = -1;
    for (int k = 0; k < K_COUNT; k++) {
        if (strcmp(auth_keys[k].name, name) == 0) {
            key = k;
            break;
        }
    }
    if (key < 0) {
        return FAIL(st, "unknown key '%s'", name);
    }
    struct policy_authorisation *a = st->cur;
    size_t idx = st->p->n_auth - 1;
    bool continuation = st->rd.indented && st->last_key == key;
    if (continuation && !auth_keys[key].list) {
        return FAIL(st, "indented continuation line for '%s' (only lists may continue)", name);
    }
    if (!continuation && (a->keys_seen & (1u << key))) {
        return FAIL(st, "duplicate key '%s' (first on line %u)", name, st->auth_key_line[idx][key]);
    }
    if (!continuation) {
        a->keys_seen |= 1u << key;
        st->auth_key_line[idx][key] = st->rd.line;
        unsigned *line = key == K_COUNTRIES      ? &a->countries_line
                         : key == K_ASNS         ? &a->asns_line
                         : key == K_EXCLUDE_TAGS ? &a->exclude_tags_line
                         : key == K_COMMAND      ? &a->command_line
                                                 : NULL;
        if (line != NULL) {
            *line = st->rd.line;
        }
    }
    st->last_key = key;
    if (*value == '\0') {
        return FAIL(st, "empty value for '%s'", name);
    }
    return auth_keys[key].list ? parse_list(st, key, value) : parse_scalar(st, key, value);
}

/* Checks that need the whole section: required keys, a scope, a window. */
static bool check_authorisation(struct parse_state *st, size_t idx)
{
    struct policy_authorisation *a = st->p->auth[idx];
    st->section = SEC_AUTH;
    st->cur = a;
    for (int k = 0; k < K_COUNT; k++) {
        if (auth_keys[k].required && !(a->keys_seen & (1u << k))) {
            return fail_at(st, a->line, "missing required key '%s'", auth_keys[k].name);
        }
    }
    if (a->n_countries == 0 && a->n_asns == 0 && a->n_prefixes == 0) {
        return fail_at(st, a->line, "empty scope: give at least one of countries, asns, prefixes");
    }
    if (a->burst == 0) {
        /* default: a tenth of a second's worth, so a worker descheduled for a moment, or a clock
         * read in whole microseconds, does not lose tokens; at least 1 */
        double b = a->rate / 10;
        a->burst = b <= 1 ? 1 : (uint32_t)(b + 0.999999);
    }
    a->tolerance_ns = (uint64_t)(a->burst - 1) * a->interval_ns;
    if (a->command == POLICY_COMMAND_COLLECT && (a->keys_seen & (1u << K_COMMAND_ID))) {
        return fail_at(st, st->auth_key_line[idx][K_COMMAND_ID],
                       "'command_id' is for command = uninstall only (collect always sends the "
                       "family's own machine-information request)");
    }
    if (a->not_after_us <= a->not_before_us) {
        return fail_at(st, st->auth_key_line[idx][K_NOT_AFTER],
                       "'not_after' must be later than 'not_before'");
    }
    return true;
}

int policy_parse(const char *text, size_t len, const char *name, struct policy **out, char *err,
                 size_t errlen)
{
    if (name == NULL) {
        name = "policy";
    }
    if (text == NULL && len > 0) {
        return err_set(err, errlen, "%s: no text", name);
    }
    if (len > POLICY_MAX_FILE_BYTES) {
        return err_set(err, errlen, "%s: larger than %u bytes", name, POLICY_MAX_FILE_BYTES);
    }
    unsigned nul_line = ini_lines_nul_line(text, len);
    if (nul_line != 0) {
        return err_set(err, errlen, "%s:%u: NUL byte in policy text", name, nul_line);
    }
    struct parse_state *st = calloc(1, sizeof(*st));
    struct policy *p = calloc(1, sizeof(*p));
    if (st == NULL || p == NULL) {
        free(st);
        free(p);
        return err_set(err, errlen, "%s: out of memory", name);
    }
    p->source = strdup(name);
    if (p->source == NULL) {
        free(st);
        policy_free(p);
        return err_set(err, errlen, "%s: out of memory", name);
    }
    st->name = name;
    ini_lines_init(&st->rd, text, len, POLICY_MAX_LINE, open_section, reader_error, st);
    st->p = p;
    st->last_key = -1;

    int r = len > 0 ? ini_parse_stream(ini_lines_read, &st->rd, on_pair, st) : 0;
    if (r == -2 && !st->failed) {
        fail_at(st, 0, "out of memory");
    } else if (r > 0 && (!st->failed || (unsigned)r < st->err_line)) {
        /* inih found a line that is neither a section, a pair nor a comment before any error
         * of ours: report it instead. */
        st->failed = false;
        st->section = SEC_NONE;
        fail_at(st, (unsigned)r, "syntax error (expected 'key = value', '[section]' or a comment)");
    }
    for (size_t i = 0; !st->failed && i < p->n_auth; i++) {
        check_authorisation(st, i);
    }
    if (!st->failed && p->n_auth == 0) {
        st->section = SEC_NONE;
        fail_at(st, 0, "no [authorisation <id>] section: the policy authorises nothing");
    }
    if (st->failed) {
        if (st->err_line > 0) {
            err_set(err, errlen, "%s:%u: %s", name, st->err_line, st->msg);
        } else {
            err_set(err, errlen, "%s: %s", name, st->msg);
        }
        free(st);
        policy_free(p);
        return -1;
    }
    free(st);
    if (EVP_Digest(len > 0 ? text : "", len, p->sha256, NULL, EVP_sha256(), NULL) != 1) {
        policy_free(p);
        return err_set(err, errlen, "%s: SHA-256 failed", name);
    }
    *out = p;
    return 0;
}

int policy_load_file(const char *path, struct policy **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        return err_set(err, errlen, "%s: %s", path, strerror(errno));
    }
    char *buf = malloc(POLICY_MAX_FILE_BYTES + 1);
    if (buf == NULL) {
        fclose(f);
        return err_set(err, errlen, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, POLICY_MAX_FILE_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return err_set(err, errlen, "%s: read error", path);
    }
    if (n > POLICY_MAX_FILE_BYTES) {
        free(buf);
        return err_set(err, errlen, "%s: larger than %u bytes", path, POLICY_MAX_FILE_BYTES);
    }
    int rc = policy_parse(buf, n, path, out, err, errlen);
    free(buf);
    return rc;
}

void policy_free(struct policy *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->n_auth; i++) {
        free(p->auth[i]);
    }
    free(p->source);
    free(p);
}

const uint8_t *policy_sha256(const struct policy *p)
{
    return p->sha256;
}

const char *policy_name(const struct policy *p)
{
    return p->name;
}

const char *policy_version(const struct policy *p)
{
    return p->version;
}

size_t policy_authorisation_count(const struct policy *p)
{
    return p == NULL ? 0 : p->n_auth;
}

const char *policy_authorisation_id(const struct policy *p, size_t i)
{
    return p == NULL || i >= p->n_auth ? NULL : p->auth[i]->id;
}

int policy_authorisation_index(const struct policy *p, const char *id)
{
    for (size_t i = 0; p != NULL && id != NULL && i < p->n_auth; i++) {
        if (strcmp(p->auth[i]->id, id) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *policy_source(const struct policy *p)
{
    return p->source;
}

uint8_t policy_authorisation_command(const struct policy *p, size_t i)
{
    return p == NULL || i >= p->n_auth ? 0 : p->auth[i]->command;
}

uint32_t policy_authorisation_command_id(const struct policy *p, size_t i)
{
    return p == NULL || i >= p->n_auth ? 0 : p->auth[i]->command_id;
}

const char *policy_authorisation_exclude_tag(const struct policy *p, size_t i, size_t k)
{
    return p == NULL || i >= p->n_auth || k >= p->auth[i]->n_exclude_tags
               ? NULL
               : p->auth[i]->exclude_tags[k];
}

uint8_t policy_authorisation_mode(const struct policy *p, size_t i)
{
    return p == NULL || i >= p->n_auth ? POLICY_MODE_DRY_RUN : p->auth[i]->mode;
}

bool policy_has_command(const struct policy *p, uint8_t command)
{
    for (size_t i = 0; p != NULL && i < p->n_auth; i++) {
        if (p->auth[i]->command == command) {
            return true;
        }
    }
    return false;
}

const char *policy_command_name(uint8_t command)
{
    return command == POLICY_COMMAND_UNINSTALL ? "uninstall"
           : command == POLICY_COMMAND_COLLECT ? "collect"
                                               : "none";
}

const char *policy_mode_name(uint8_t mode)
{
    return mode == POLICY_MODE_ENFORCE ? "enforce" : "dry-run";
}
