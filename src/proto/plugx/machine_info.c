/* machine_info.c -- sinkd's modelled PlugX machine-information body (docs/plugx.md): encoder,
 * parser, and the UTF-16LE string fallback for bodies that do not follow the model. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "proto/plugx/keystream.h"

/* Fixed little-endian header of the modelled layout; the four strings follow it. */
#define MI_OS_MAJOR 0
#define MI_OS_MINOR 4
#define MI_OS_BUILD 8
#define MI_SERVICE_PACK 12
#define MI_CPU_MHZ 16
#define MI_MEMORY_MB 20
#define MI_SYSTEM_TIME 24
#define MI_LOCAL_IPV4 32 /* network byte order */
#define MI_FIXED 36
#define MI_STRINGS 4 /* host, user, campaign, version */
/* Bounds that make a header plausible: reject the model rather than render nonsense. */
#define MI_MAX_VERSION 100u
#define MI_MAX_BUILD 999999u
#define FALLBACK_MIN_UNITS 2

/* Writes code point cp as UTF-8 into out[*o..cap-1) (room kept for the NUL). Returns false,
 * writing nothing, when it does not fit: truncation never splits a sequence. */
static bool put_utf8(char *out, size_t cap, size_t *o, uint32_t cp)
{
    uint8_t b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    if (*o + n >= cap) {
        return false;
    }
    memcpy(out + *o, b, n);
    *o += n;
    return true;
}

/* Converts units UTF-16LE code units at p (stopping at a NUL unit) to NUL-terminated UTF-8 in
 * out[cap]. Lone surrogates become U+FFFD; output is truncated at a code point boundary. */
static void utf16le_to_utf8(const uint8_t *p, size_t units, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < units; i++) {
        uint32_t u = plugx_le16(p + 2 * i);
        if (u == 0) {
            break;
        }
        uint32_t cp = u;
        if (u >= 0xD800 && u <= 0xDBFF && i + 1 < units) {
            uint32_t lo = plugx_le16(p + 2 * (i + 1));
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                i++;
            } else {
                cp = 0xFFFD;
            }
        } else if (u >= 0xD800 && u <= 0xDFFF) {
            cp = 0xFFFD;
        }
        if (!put_utf8(out, cap, &o, cp)) {
            break;
        }
    }
    out[o] = '\0';
}

/* Decodes one code point from NUL-terminated UTF-8 at s[*i]; malformed input gives U+FFFD and
 * advances by one byte. */
static uint32_t next_utf8(const char *s, size_t *i)
{
    const uint8_t *p = (const uint8_t *)s + *i;
    uint32_t cp;
    size_t n;

    if (p[0] < 0x80) {
        *i += 1;
        return p[0];
    } else if ((p[0] & 0xE0) == 0xC0) {
        cp = p[0] & 0x1Fu;
        n = 2;
    } else if ((p[0] & 0xF0) == 0xE0) {
        cp = p[0] & 0x0Fu;
        n = 3;
    } else if ((p[0] & 0xF8) == 0xF0) {
        cp = p[0] & 0x07u;
        n = 4;
    } else {
        *i += 1;
        return 0xFFFD;
    }
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80) { /* also stops at the NUL */
            *i += 1;
            return 0xFFFD;
        }
        cp = cp << 6 | (p[k] & 0x3Fu);
    }
    static const uint32_t min_cp[5] = {0, 0, 0x80, 0x800, 0x10000};
    *i += n;
    if (cp < min_cp[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0xFFFD; /* overlong, out of range or an encoded surrogate */
    }
    return cp;
}

/* Appends s (UTF-8, at most srcmax bytes) as NUL-terminated UTF-16LE at out[*o]. */
static int put_utf16(const char *s, size_t srcmax, uint8_t *out, size_t cap, size_t *o)
{
    size_t i = 0;
    size_t n = strnlen(s, srcmax);

    while (i < n) {
        uint32_t cp = next_utf8(s, &i);
        if (cp >= 0x10000) {
            if (cap - *o < 4) {
                return PROTO_E_SPACE;
            }
            cp -= 0x10000;
            plugx_put_le16(out + *o, (uint16_t)(0xD800 + (cp >> 10)));
            plugx_put_le16(out + *o + 2, (uint16_t)(0xDC00 + (cp & 0x3FF)));
            *o += 4;
        } else {
            if (cap - *o < 2) {
                return PROTO_E_SPACE;
            }
            plugx_put_le16(out + *o, (uint16_t)cp);
            *o += 2;
        }
    }
    if (cap - *o < 2) {
        return PROTO_E_SPACE;
    }
    plugx_put_le16(out + *o, 0);
    *o += 2;
    return 0;
}

ptrdiff_t plugx_machine_info_encode(const struct plugx_machine_info *info, uint8_t *out, size_t cap)
{
    const struct bot_identity *id = &info->id;
    struct in_addr ip4 = {0};
    size_t o = MI_FIXED;

    if (cap < MI_FIXED) {
        return PROTO_E_SPACE;
    }
    plugx_put_le32(out + MI_OS_MAJOR, info->os_major);
    plugx_put_le32(out + MI_OS_MINOR, info->os_minor);
    plugx_put_le32(out + MI_OS_BUILD, info->os_build);
    plugx_put_le32(out + MI_SERVICE_PACK, info->service_pack);
    plugx_put_le32(out + MI_CPU_MHZ, info->cpu_mhz);
    plugx_put_le32(out + MI_MEMORY_MB, info->memory_mb);
    plugx_put_le32(out + MI_SYSTEM_TIME, (uint32_t)info->system_time);
    plugx_put_le32(out + MI_SYSTEM_TIME + 4, (uint32_t)(info->system_time >> 32));
    char ipbuf[sizeof(id->local_ip)];
    memcpy(ipbuf, id->local_ip, sizeof(ipbuf));
    ipbuf[sizeof(ipbuf) - 1] = '\0';
    if (inet_pton(AF_INET, ipbuf, &ip4) != 1) {
        ip4.s_addr = 0; /* the model carries IPv4 only; anything else is sent as 0.0.0.0 */
    }
    memcpy(out + MI_LOCAL_IPV4, &ip4.s_addr, 4);

    const char *strings[MI_STRINGS] = {id->host, id->user, id->campaign, id->version};
    const size_t sizes[MI_STRINGS] = {sizeof(id->host), sizeof(id->user), sizeof(id->campaign),
                                      sizeof(id->version)};
    for (int s = 0; s < MI_STRINGS; s++) {
        if (put_utf16(strings[s], sizes[s], out, cap, &o) < 0) {
            return PROTO_E_SPACE;
        }
    }
    return (ptrdiff_t)o;
}

/* Number of code units before the NUL unit of the string at body[off], or -1 if unterminated. */
static ptrdiff_t utf16_strlen(const uint8_t *body, size_t len, size_t off)
{
    for (size_t i = off; len - i >= 2; i += 2) {
        if (plugx_le16(body + i) == 0) {
            return (ptrdiff_t)((i - off) / 2);
        }
    }
    return -1;
}

static int parse_model(const uint8_t *body, size_t len, struct bot_identity *out)
{
    size_t off[MI_STRINGS], units[MI_STRINGS];

    if (len < MI_FIXED + 2 * MI_STRINGS || (len - MI_FIXED) % 2 != 0) {
        return -1;
    }
    uint32_t major = plugx_le32(body + MI_OS_MAJOR), minor = plugx_le32(body + MI_OS_MINOR);
    uint32_t build = plugx_le32(body + MI_OS_BUILD), sp = plugx_le32(body + MI_SERVICE_PACK);
    if (major > MI_MAX_VERSION || minor > MI_MAX_VERSION || sp > MI_MAX_VERSION ||
        build > MI_MAX_BUILD) {
        return -1;
    }
    size_t at = MI_FIXED;
    for (int s = 0; s < MI_STRINGS; s++) {
        ptrdiff_t n = utf16_strlen(body, len, at);
        if (n < 0) {
            return -1;
        }
        off[s] = at;
        units[s] = (size_t)n;
        at += 2 * ((size_t)n + 1);
    }
    if (at != len || (units[0] == 0 && units[1] == 0)) {
        return -1; /* trailing bytes or no name at all: not sinkd's layout */
    }

    memset(out, 0, sizeof(*out));
    utf16le_to_utf8(body + off[0], units[0], out->host, sizeof(out->host));
    utf16le_to_utf8(body + off[1], units[1], out->user, sizeof(out->user));
    utf16le_to_utf8(body + off[2], units[2], out->campaign, sizeof(out->campaign));
    utf16le_to_utf8(body + off[3], units[3], out->version, sizeof(out->version));
    char os[64];
    snprintf(os, sizeof(os), "%u.%u.%u SP%u", (unsigned)major, (unsigned)minor, (unsigned)build,
             (unsigned)sp);
    memcpy(out->os, os, sizeof(out->os) - 1); /* bounded above: at most 22 characters */
    out->os[sizeof(out->os) - 1] = '\0';
    uint8_t ip[4];
    memcpy(ip, body + MI_LOCAL_IPV4, 4);
    if (ip[0] | ip[1] | ip[2] | ip[3]) {
        inet_ntop(AF_INET, ip, out->local_ip, sizeof(out->local_ip));
    }
    return 0;
}

/* Length in code units of a run of text-like UTF-16LE units at body[i] (alignment kept), and
 * how many of them are printable ASCII. */
static size_t text_run(const uint8_t *body, size_t len, size_t i, size_t *ascii)
{
    size_t n = 0;

    *ascii = 0;
    while (len - i >= 2) {
        uint16_t u = plugx_le16(body + i);
        if (u >= 0x20 && u <= 0x7E) {
            (*ascii)++;
        } else if (u >= 0xD800 && u <= 0xDBFF && len - i >= 4 &&
                   plugx_le16(body + i + 2) >= 0xDC00 && plugx_le16(body + i + 2) <= 0xDFFF) {
            n++;
            i += 2;
        } else if (!((u >= 0xA0 && u <= 0xD7FF) || (u >= 0xE000 && u <= 0xFFFD))) {
            break;
        }
        n++;
        i += 2;
    }
    return n;
}

/* Fallback: the first two text-like UTF-16LE strings (at least FALLBACK_MIN_UNITS units, half
 * of them printable ASCII) at even, then odd, alignment. */
static int parse_fallback(const uint8_t *body, size_t len, struct bot_identity *out)
{
    for (size_t align = 0; align < 2; align++) {
        int found = 0;
        size_t i = align;
        memset(out, 0, sizeof(*out));
        while (found < 2 && i < len && len - i >= 2) {
            size_t ascii;
            size_t n = text_run(body, len, i, &ascii);
            if (n >= FALLBACK_MIN_UNITS && 2 * ascii >= n) {
                char *dst = out->host;
                size_t cap = sizeof(out->host);
                if (found == 1) {
                    dst = out->user;
                    cap = sizeof(out->user);
                }
                utf16le_to_utf8(body + i, n, dst, cap);
                found++;
            }
            i += 2 * (n > 0 ? n : 1);
        }
        if (found > 0) {
            return 0;
        }
    }
    memset(out, 0, sizeof(*out));
    return -1;
}

int plugx_machine_info_parse(const uint8_t *body, size_t len, struct bot_identity *out)
{
    if (parse_model(body, len, out) == 0) {
        return 0;
    }
    return parse_fallback(body, len, out);
}
