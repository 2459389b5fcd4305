/* parse.c -- pure line parsers for the ASN range CSVs and the operator tag files. */
#include "enrich/enrich.h"
#include "util/err.h"

#include <string.h>
#include <sys/socket.h>

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* Strips the spaces, tabs and CR (from CRLF files) around [*s, *s + *n). */
static void trim(const char **s, size_t *n)
{
    while (*n > 0 && is_space(**s)) {
        (*s)++;
        (*n)--;
    }
    while (*n > 0 && is_space((*s)[*n - 1])) {
        (*n)--;
    }
}

/* Copies a field into a NUL-terminated buffer; -1 if it does not fit. */
static int field_copy(const char *s, size_t n, char *out, size_t cap)
{
    if (n >= cap) {
        return -1;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return 0;
}

static int parse_u32(const char *s, size_t n, uint32_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 10) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v > UINT32_MAX) {
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int parse_ip(const char *s, size_t n, struct net_addr *out)
{
    char buf[NET_ADDR_STRLEN];
    if (field_copy(s, n, buf, sizeof(buf)) != 0 || memchr(buf, '/', n) != NULL) {
        return -1;
    }
    return net_addr_parse_ip(buf, out);
}

/* Compares the IPs of two addresses of the same family. */
static int ip_cmp(const struct net_addr *a, const struct net_addr *b)
{
    return memcmp(a->ip, b->ip, a->family == AF_INET ? 4 : 16);
}

/* Next unquoted field: [*pos, comma or end). */
static void next_field(const char *line, size_t len, size_t *pos, const char **f, size_t *fn)
{
    size_t start = *pos;
    const char *comma = memchr(line + start, ',', len - start);
    size_t end = comma ? (size_t)(comma - line) : len;
    *f = line + start;
    *fn = end - start;
    *pos = comma ? end + 1 : len + 1; /* len + 1: no further field */
}

/* CSV as written by ip-location-db (RFC 4180 quoting in the last field only):
 * first,last,asn,name  or  first,last,asn,"name, with ""quotes""". */
int enrich_asn_parse_line(const char *line, size_t len, struct enrich_asn_row *out, char *err,
                          size_t errlen)
{
    const char *f;
    size_t fn, pos = 0;
    memset(out, 0, sizeof(*out));
    if (len > 0 && line[len - 1] == '\r') {
        len--;
    }
    if (len > ENRICH_LINE_MAX) {
        return err_set(err, errlen, "line longer than %d bytes", ENRICH_LINE_MAX);
    }
    static const char fields_msg[] = "expected 4 fields: first,last,asn,name";
    next_field(line, len, &pos, &f, &fn);
    if (pos > len) {
        return err_set(err, errlen, "%s", fields_msg);
    }
    if (parse_ip(f, fn, &out->first) != 0) {
        return err_set(err, errlen, "'%.*s' is not an IP address", (int)(fn > 64 ? 64 : fn), f);
    }
    next_field(line, len, &pos, &f, &fn);
    if (pos > len) {
        return err_set(err, errlen, "%s", fields_msg);
    }
    if (parse_ip(f, fn, &out->last) != 0) {
        return err_set(err, errlen, "'%.*s' is not an IP address", (int)(fn > 64 ? 64 : fn), f);
    }
    if (out->first.family != out->last.family) {
        return err_set(err, errlen, "range mixes IPv4 and IPv6");
    }
    if (ip_cmp(&out->first, &out->last) > 0) {
        return err_set(err, errlen, "range ends before it starts");
    }
    next_field(line, len, &pos, &f, &fn);
    if (pos > len) {
        return err_set(err, errlen, "%s", fields_msg);
    }
    if (parse_u32(f, fn, &out->asn) != 0) {
        return err_set(err, errlen, "'%.*s' is not an AS number", (int)(fn > 16 ? 16 : fn), f);
    }
    /* The name: the rest of the line, quoted if it holds a comma or a quote. */
    f = line + pos;
    fn = len - pos;
    size_t o = 0;
    if (fn > 0 && f[0] == '"') {
        size_t i = 1;
        for (;;) {
            if (i >= fn) {
                return err_set(err, errlen, "unterminated quoted name");
            }
            if (f[i] == '"') {
                if (i + 1 < fn && f[i + 1] == '"') {
                    i++;
                } else {
                    break;
                }
            }
            if (o >= ENRICH_AS_NAME_MAX) {
                return err_set(err, errlen, "AS name longer than %d bytes", ENRICH_AS_NAME_MAX);
            }
            out->name[o++] = f[i++];
        }
        if (i + 1 != fn) {
            return err_set(err, errlen, "text after the closing quote of the name");
        }
    } else {
        if (memchr(f, ',', fn) != NULL || memchr(f, '"', fn) != NULL) {
            return err_set(err, errlen, "unquoted name contains ',' or '\"'");
        }
        if (fn > ENRICH_AS_NAME_MAX) {
            return err_set(err, errlen, "AS name longer than %d bytes", ENRICH_AS_NAME_MAX);
        }
        memcpy(out->name, f, fn);
        o = fn;
    }
    for (size_t i = 0; i < o; i++) {
        if ((unsigned char)out->name[i] < 0x20 || out->name[i] == 0x7f) {
            return err_set(err, errlen, "control character in AS name");
        }
    }
    out->name[o] = '\0';
    return 1;
}

static int valid_tag(const char *s, size_t n)
{
    if (n == 0 || n > ENRICH_TAG_LEN_MAX) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* "AS64500", "as64500" or "64500". */
static int parse_asn_key(const char *s, size_t n, uint32_t *asn)
{
    if (n >= 2 && (s[0] == 'A' || s[0] == 'a') && (s[1] == 'S' || s[1] == 's')) {
        s += 2;
        n -= 2;
    }
    return parse_u32(s, n, asn);
}

/* Tag file line: prefix-or-ASN,tag[,label]; '#' starts a comment line. */
int enrich_tag_parse_line(const char *line, size_t len, struct enrich_tag_rule *out, char *err,
                          size_t errlen)
{
    const char *key, *tag, *label;
    size_t keyn, tagn, labeln, pos = 0;
    memset(out, 0, sizeof(*out));
    if (len > ENRICH_LINE_MAX) {
        return err_set(err, errlen, "line longer than %d bytes", ENRICH_LINE_MAX);
    }
    trim(&line, &len);
    if (len == 0 || line[0] == '#') {
        return 0;
    }
    next_field(line, len, &pos, &key, &keyn);
    trim(&key, &keyn);
    if (pos > len) {
        return err_set(err, errlen, "expected prefix-or-ASN,tag[,label]");
    }
    next_field(line, len, &pos, &tag, &tagn);
    trim(&tag, &tagn);
    label = pos <= len ? line + pos : line + len;
    labeln = pos <= len ? len - pos : 0;
    trim(&label, &labeln);

    if (keyn > 0 && key[0] != '-' && parse_asn_key(key, keyn, &out->asn) == 0) {
        out->kind = ENRICH_RULE_ASN;
    } else {
        char buf[NET_ADDR_STRLEN + 8];
        char sub[128];
        int shown = (int)(keyn > 64 ? 64 : keyn);
        if (field_copy(key, keyn, buf, sizeof(buf)) != 0 ||
            net_cidr_parse(buf, &out->cidr, sub, sizeof(sub)) != 0) {
            return err_set(err, errlen, "'%.*s' is not an IP prefix or AS number", shown, key);
        }
        struct net_addr host;
        const char *slash = strchr(buf, '/');
        if (slash != NULL) {
            buf[slash - buf] = '\0';
        }
        if (net_addr_parse_ip(buf, &host) != 0 || host.family != out->cidr.family ||
            memcmp(host.ip, out->cidr.ip, sizeof(host.ip)) != 0) {
            return err_set(err, errlen, "'%.*s' has bits set after the prefix length", shown, key);
        }
        out->kind = ENRICH_RULE_PREFIX;
    }
    if (!valid_tag(tag, tagn)) {
        return err_set(err, errlen, "'%.*s' is not a tag ([a-z0-9_-]{1,%d})",
                       (int)(tagn > 64 ? 64 : tagn), tag, ENRICH_TAG_LEN_MAX);
    }
    memcpy(out->tag, tag, tagn);
    out->tag[tagn] = '\0';
    if (labeln > ENRICH_LABEL_LEN_MAX) {
        return err_set(err, errlen, "label longer than %d bytes", ENRICH_LABEL_LEN_MAX);
    }
    for (size_t i = 0; i < labeln; i++) {
        if ((unsigned char)label[i] < 0x20 || label[i] == 0x7f) {
            return err_set(err, errlen, "control character in label");
        }
    }
    memcpy(out->label, label, labeln);
    out->label[labeln] = '\0';
    return 1;
}
