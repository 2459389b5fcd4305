/* proxy.c -- PROXY protocol v1/v2 header parser and encoders (HAProxy doc/proxy-protocol.txt). */
#include "net/proxy.h"
#include "util/err.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

/* proxy-protocol.txt 2.2: the v2 signature; it holds a NUL at byte 5, so never a C string. */
static const uint8_t v2_sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                   0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char v1_sig[6] = {'P', 'R', 'O', 'X', 'Y', ' '};

#define V2_HEADER 16
#define V2_INET_BLOCK 12  /* src(4) dst(4) sport(2) dport(2) */
#define V2_INET6_BLOCK 36 /* src(16) dst(16) sport(2) dport(2) */
#define V2_TLV_CRC32C 0x03
#define V1_TOKEN_MAX 46 /* longest IPv6 text form is 45 characters */

static const uint8_t v4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

int proxy_detect(const uint8_t *buf, size_t len)
{
    if (len == 0) {
        return 0;
    }
    if (buf[0] == v2_sig[0]) {
        size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
        if (memcmp(buf, v2_sig, n) != 0) {
            return -1;
        }
        return n == sizeof(v2_sig) ? 1 : 0;
    }
    size_t n = len < sizeof(v1_sig) ? len : sizeof(v1_sig);
    if (memcmp(buf, v1_sig, n) != 0) {
        return -1;
    }
    return n == sizeof(v1_sig) ? 1 : 0;
}

/* CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as required for the PP2_TYPE_CRC32C TLV
 * (proxy-protocol.txt 2.2.5). Bitwise: headers are short and the TLV is rare. */
static uint32_t crc32c_update(uint32_t crc, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
        }
    }
    return crc;
}

/* Stores an address read from the wire, normalising IPv4-mapped IPv6 to IPv4 as addr.h says. */
static void set_addr(struct net_addr *out, int family, const uint8_t *ip, const uint8_t *port)
{
    memset(out, 0, sizeof(*out));
    out->port = (uint16_t)((port[0] << 8) | port[1]);
    if (family == AF_INET6 && memcmp(ip, v4_mapped_prefix, 12) == 0) {
        out->family = AF_INET;
        memcpy(out->ip, ip + 12, 4);
    } else {
        out->family = (uint8_t)family;
        memcpy(out->ip, ip, family == AF_INET ? 4 : 16);
    }
}

/* Walks the TLVs in hdr[start, total); checks every CRC32C TLV over the whole header with its
 * value zeroed (2.2.5). Unknown types are skipped (2.2). */
static int v2_check_tlvs(const uint8_t *hdr, size_t start, size_t total, char *err, size_t errlen)
{
    size_t off = start;
    while (off < total) {
        if (total - off < 3) {
            return err_set(err, errlen, "PROXY v2: truncated TLV header at offset %zu", off);
        }
        uint8_t type = hdr[off];
        size_t vlen = ((size_t)hdr[off + 1] << 8) | hdr[off + 2];
        size_t value = off + 3;
        if (vlen > total - value) {
            return err_set(err, errlen, "PROXY v2: TLV 0x%02x length %zu overruns the header", type,
                           vlen);
        }
        if (type == V2_TLV_CRC32C) {
            if (vlen != 4) {
                return err_set(err, errlen, "PROXY v2: CRC32C TLV of length %zu (want 4)", vlen);
            }
            static const uint8_t zero[4] = {0, 0, 0, 0};
            uint32_t crc = 0xFFFFFFFFu;
            crc = crc32c_update(crc, hdr, value);
            crc = crc32c_update(crc, zero, 4);
            crc = crc32c_update(crc, hdr + value + 4, total - value - 4);
            crc ^= 0xFFFFFFFFu;
            uint32_t want = ((uint32_t)hdr[value] << 24) | ((uint32_t)hdr[value + 1] << 16) |
                            ((uint32_t)hdr[value + 2] << 8) | hdr[value + 3];
            if (crc != want) {
                return err_set(err, errlen, "PROXY v2: CRC32C mismatch (header 0x%08x, got 0x%08x)",
                               want, crc);
            }
        }
        off = value + vlen;
    }
    return 0;
}

static ptrdiff_t parse_v2(const uint8_t *buf, size_t len, struct proxy_header *out, char *err,
                          size_t errlen)
{
    size_t n = len < sizeof(v2_sig) ? len : sizeof(v2_sig);
    if (memcmp(buf, v2_sig, n) != 0) {
        err_set(err, errlen, "PROXY v2: bad signature");
        return PROXY_E_INVALID;
    }
    if (len < V2_HEADER) {
        return 0;
    }
    uint8_t ver = buf[12] >> 4, cmd = buf[12] & 0x0F;
    uint8_t fam = buf[13] >> 4, proto = buf[13] & 0x0F;
    size_t body = ((size_t)buf[14] << 8) | buf[15];
    size_t total = V2_HEADER + body;
    /* 2.2: the version nibble must be 0x2; commands other than LOCAL/PROXY mean drop. */
    if (ver != 2) {
        err_set(err, errlen, "PROXY v2: version %u (want 2)", ver);
        return PROXY_E_INVALID;
    }
    if (cmd > 1) {
        err_set(err, errlen, "PROXY v2: unknown command 0x%x", cmd);
        return PROXY_E_INVALID;
    }
    if (fam > 3 || proto > 2) {
        err_set(err, errlen, "PROXY v2: invalid family/transport byte 0x%02x", buf[13]);
        return PROXY_E_INVALID;
    }
    size_t block = 0;
    if (cmd == 1) {
        if (fam == 1 && proto == 1) {
            block = V2_INET_BLOCK;
        } else if (fam == 2 && proto == 1) {
            block = V2_INET6_BLOCK;
        } else {
            err_set(err, errlen, "PROXY v2: unsupported family/transport 0x%02x", buf[13]);
            return PROXY_E_UNSUPPORTED;
        }
        if (body < block) {
            err_set(err, errlen, "PROXY v2: address block of %zu bytes (want %zu)", body, block);
            return PROXY_E_INVALID;
        }
    }
    if (len < total) {
        return 0;
    }
    memset(out, 0, sizeof(*out));
    out->version = 2;
    if (cmd == 0) {
        /* 2.2: LOCAL (health checks): use the real endpoints, skip len bytes whatever they
         * hold -- HAProxy's receiver does not look at them either. */
        out->local = 1;
        return (ptrdiff_t)total;
    }
    if (v2_check_tlvs(buf, V2_HEADER + block, total, err, errlen) != 0) {
        return PROXY_E_INVALID;
    }
    const uint8_t *a = buf + V2_HEADER;
    if (block == V2_INET_BLOCK) {
        set_addr(&out->src, AF_INET, a, a + 8);
        set_addr(&out->dst, AF_INET, a + 4, a + 10);
    } else {
        set_addr(&out->src, AF_INET6, a, a + 32);
        set_addr(&out->dst, AF_INET6, a + 16, a + 34);
    }
    return (ptrdiff_t)total;
}

/* v1 port: decimal, no leading zeros (2.1), 0..65535. */
static int v1_port(const char *tok, size_t n, uint16_t *port)
{
    if (n == 0 || n > 5 || (n > 1 && tok[0] == '0')) {
        return -1;
    }
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (tok[i] < '0' || tok[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint32_t)(tok[i] - '0');
    }
    if (v > 65535) {
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

static int v1_ip(const char *tok, size_t n, int family, struct net_addr *out)
{
    char text[V1_TOKEN_MAX];
    uint8_t ip[16];
    if (n == 0 || n >= sizeof(text)) {
        return -1;
    }
    memcpy(text, tok, n);
    text[n] = '\0';
    /* inet_pton(AF_INET) takes exactly dotted-quad decimal, as 2.1 requires. */
    if (inet_pton(family, text, ip) != 1) {
        return -1;
    }
    uint8_t zero_port[2] = {0, 0};
    set_addr(out, family, ip, zero_port);
    return 0;
}

static ptrdiff_t parse_v1(const uint8_t *buf, size_t len, struct proxy_header *out, char *err,
                          size_t errlen)
{
    size_t n = len < sizeof(v1_sig) ? len : sizeof(v1_sig);
    if (memcmp(buf, v1_sig, n) != 0) {
        err_set(err, errlen, "PROXY v1: bad signature");
        return PROXY_E_INVALID;
    }
    /* 2.1: CRLF within the first 107 bytes; a bare CR or LF is not accepted. */
    size_t scan = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    size_t eol = 0;
    bool found = false;
    for (size_t i = 0; i < scan; i++) {
        if (buf[i] == '\n') {
            err_set(err, errlen, "PROXY v1: bare LF at offset %zu", i);
            return PROXY_E_INVALID;
        }
        if (buf[i] == '\r') {
            if (i + 1 >= scan) {
                break; /* the LF may still come (or the 107 limit is hit below) */
            }
            if (buf[i + 1] != '\n') {
                err_set(err, errlen, "PROXY v1: bare CR at offset %zu", i);
                return PROXY_E_INVALID;
            }
            eol = i;
            found = true;
            break;
        }
        if (buf[i] < 0x20 || buf[i] > 0x7E) {
            err_set(err, errlen, "PROXY v1: control or non-ASCII byte at offset %zu", i);
            return PROXY_E_INVALID;
        }
    }
    if (!found) {
        if (len >= PROXY_V1_MAX) {
            err_set(err, errlen, "PROXY v1: no CRLF within %d bytes", PROXY_V1_MAX);
            return PROXY_E_INVALID;
        }
        return 0;
    }
    /* Split the line after "PROXY " into single-space separated tokens. */
    const char *line = (const char *)buf;
    const char *tok[6];
    size_t tlen[6];
    size_t ntok = 0;
    size_t pos = sizeof(v1_sig);
    while (pos <= eol) {
        size_t start = pos;
        while (pos < eol && line[pos] != ' ') {
            pos++;
        }
        if (ntok == 1 && tlen[0] == 7 && memcmp(tok[0], "UNKNOWN", 7) == 0) {
            break; /* 2.1: with UNKNOWN the rest of the line is ignored */
        }
        if (pos == start) {
            err_set(err, errlen, "PROXY v1: empty field at offset %zu (fields take one space)",
                    start);
            return PROXY_E_INVALID;
        }
        if (ntok == 6) {
            err_set(err, errlen, "PROXY v1: too many fields");
            return PROXY_E_INVALID;
        }
        tok[ntok] = line + start;
        tlen[ntok] = pos - start;
        ntok++;
        pos++; /* skip the space, or step past eol */
    }
    memset(out, 0, sizeof(*out));
    out->version = 1;
    ptrdiff_t consumed = (ptrdiff_t)(eol + 2);
    if (ntok >= 1 && tlen[0] == 7 && memcmp(tok[0], "UNKNOWN", 7) == 0) {
        out->local = 1;
        return consumed;
    }
    int family;
    if (ntok >= 1 && tlen[0] == 4 && memcmp(tok[0], "TCP4", 4) == 0) {
        family = AF_INET;
    } else if (ntok >= 1 && tlen[0] == 4 && memcmp(tok[0], "TCP6", 4) == 0) {
        family = AF_INET6;
    } else {
        err_set(err, errlen, "PROXY v1: protocol must be TCP4, TCP6 or UNKNOWN");
        return PROXY_E_INVALID;
    }
    if (ntok != 5) {
        err_set(err, errlen, "PROXY v1: %zu fields after the protocol (want 4)", ntok - 1);
        return PROXY_E_INVALID;
    }
    if (v1_ip(tok[1], tlen[1], family, &out->src) != 0) {
        err_set(err, errlen, "PROXY v1: bad source address");
        return PROXY_E_INVALID;
    }
    if (v1_ip(tok[2], tlen[2], family, &out->dst) != 0) {
        err_set(err, errlen, "PROXY v1: bad destination address");
        return PROXY_E_INVALID;
    }
    if (v1_port(tok[3], tlen[3], &out->src.port) != 0) {
        err_set(err, errlen, "PROXY v1: bad source port");
        return PROXY_E_INVALID;
    }
    if (v1_port(tok[4], tlen[4], &out->dst.port) != 0) {
        err_set(err, errlen, "PROXY v1: bad destination port");
        return PROXY_E_INVALID;
    }
    return consumed;
}

ptrdiff_t proxy_parse(const uint8_t *buf, size_t len, struct proxy_header *out, char *err,
                      size_t errlen)
{
    if (len == 0) {
        return 0;
    }
    if (buf[0] == v2_sig[0]) {
        return parse_v2(buf, len, out, err, errlen);
    }
    return parse_v1(buf, len, out, err, errlen);
}

/* Writes an address for the wire; a v4 address paired with a v6 one is never mixed (2.2). */
static bool encodable(const struct net_addr *src, const struct net_addr *dst)
{
    return src->family == dst->family && (src->family == AF_INET || src->family == AF_INET6);
}

ptrdiff_t proxy_encode_v1(const struct net_addr *src, const struct net_addr *dst, uint8_t *out,
                          size_t cap)
{
    char s[NET_ADDR_STRLEN], d[NET_ADDR_STRLEN];
    char line[PROXY_V1_MAX + 1];
    if (!encodable(src, dst)) {
        return -1;
    }
    net_addr_format_ip(src, s);
    net_addr_format_ip(dst, d);
    int n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n",
                     src->family == AF_INET ? "TCP4" : "TCP6", s, d, (unsigned)src->port,
                     (unsigned)dst->port);
    if (n < 0 || (size_t)n >= sizeof(line) || (size_t)n > cap) {
        return -1;
    }
    memcpy(out, line, (size_t)n);
    return n;
}

ptrdiff_t proxy_encode_v2(const struct net_addr *src, const struct net_addr *dst, uint8_t *out,
                          size_t cap)
{
    if (!encodable(src, dst)) {
        return -1;
    }
    size_t alen = src->family == AF_INET ? 4 : 16;
    size_t block = 2 * alen + 4;
    if (cap < V2_HEADER + block) {
        return -1;
    }
    memcpy(out, v2_sig, sizeof(v2_sig));
    out[12] = 0x21; /* version 2, PROXY */
    out[13] = src->family == AF_INET ? 0x11 : 0x21;
    out[14] = 0;
    out[15] = (uint8_t)block;
    uint8_t *a = out + V2_HEADER;
    memcpy(a, src->ip, alen);
    memcpy(a + alen, dst->ip, alen);
    a[2 * alen] = (uint8_t)(src->port >> 8);
    a[2 * alen + 1] = (uint8_t)src->port;
    a[2 * alen + 2] = (uint8_t)(dst->port >> 8);
    a[2 * alen + 3] = (uint8_t)dst->port;
    return (ptrdiff_t)(V2_HEADER + block);
}
