/* http.c -- the swarm's HTTP wire: the two request forms a PlugX bot sends (packet in the body;
 * values in four custom headers) and the reader of the server's responses (http_parser). */
#include "swarm/swarm.h"
#include "util/err.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Browser-like and fixed, as a bot's would be; the server must not depend on it. */
#define USER_AGENT "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/4.0)"

/* The four header names of a build (docs/plugx.md "HTTP header form"): X-Session/X-Status/
 * X-Size/X-Sn (IDS rules ET 2017714 / Talos 31693), HHV1..HHV4 (Snort MALWARE-CNC
 * Win.Trojan.Plugx "HHV3: 61456"), or one common name followed by a digit (ET 2018169). */
static void header_name(const struct swarm_header_style *s, int i, char *out, size_t cap)
{
    static const char *const x_names[4] = {"X-Session", "X-Status", "X-Size", "X-Sn"};
    switch (s->names) {
    case SWARM_NAMES_X:
        snprintf(out, cap, "%s", x_names[i]);
        break;
    case SWARM_NAMES_HHV:
        snprintf(out, cap, "HHV%d", i + 1);
        break;
    default:
        snprintf(out, cap, "%s%d", s->stem, s->first_digit + i);
        break;
    }
}

/* Appends with bounds; returns false when out of room. */
static bool put(char *out, size_t cap, size_t *n, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static bool put(char *out, size_t cap, size_t *n, const char *fmt, ...)
{
    if (*n >= cap) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    /* clang-analyzer loses va_start across the early return above (a false positive). */
    int r =
        vsnprintf(out + *n, cap - *n, fmt, ap); /* NOLINT(clang-analyzer-valist.Uninitialized) */
    va_end(ap);
    if (r < 0 || (size_t)r >= cap - *n) {
        return false;
    }
    *n += (size_t)r;
    return true;
}

static ptrdiff_t with_body(char *out, size_t cap, size_t n, const uint8_t *body, size_t body_len)
{
    if (cap - n < body_len) {
        return -1;
    }
    if (body_len > 0) {
        memcpy(out + n, body, body_len);
    }
    return (ptrdiff_t)(n + body_len);
}

ptrdiff_t swarm_http_body_request(const char *host, const uint8_t *body, size_t body_len,
                                  uint8_t *out, size_t cap)
{
    char *o = (char *)out;
    size_t n = 0;
    if (!put(o, cap, &n,
             "POST / HTTP/1.1\r\nHost: %s\r\nUser-Agent: " USER_AGENT "\r\n"
             "Content-Type: application/octet-stream\r\nContent-Length: %zu\r\n"
             "Connection: Keep-Alive\r\n\r\n",
             host, body_len)) {
        return -1;
    }
    return with_body(o, cap, n, body, body_len);
}

ptrdiff_t swarm_http_header_request(const struct swarm_header_style *s, const char *host,
                                    const uint32_t uri_draw[3], const uint32_t values[4],
                                    const uint8_t *body, size_t body_len, uint8_t *out, size_t cap)
{
    char *o = (char *)out;
    size_t n = 0;
    bool ok;
    if (s->uri == SWARM_URI_UPDATE) {
        ok = put(o, cap, &n, "POST /update?id=%08x HTTP/1.1\r\n", (unsigned)uri_draw[0]);
    } else {
        ok = put(o, cap, &n, "POST /%08X%08X%08X HTTP/1.1\r\n", (unsigned)uri_draw[0],
                 (unsigned)uri_draw[1], (unsigned)uri_draw[2]);
    }
    ok = ok && put(o, cap, &n, "Accept: */*\r\n");
    for (int i = 0; ok && i < 4; i++) {
        char name[SWARM_HEADER_STEM_MAX + 4];
        header_name(s, i, name, sizeof(name));
        ok = put(o, cap, &n, "%s: %u\r\n", name, (unsigned)values[i]);
    }
    ok = ok && put(o, cap, &n,
                   "User-Agent: " USER_AGENT "\r\nHost: %s\r\nContent-Length: %zu\r\n"
                   "Connection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n",
                   host, body_len);
    if (!ok) {
        return -1;
    }
    return with_body(o, cap, n, body, body_len);
}

/* ---- responses ---- */

static int on_message_begin(http_parser *p)
{
    struct swarm_http_reader *r = p->data;
    r->body_len = 0;
    r->complete = false;
    return 0;
}

static int on_headers_complete(http_parser *p)
{
    /* refusals return -1: 1 and 2 mean "no body" and "upgrade" to http_parser */
    struct swarm_http_reader *r = p->data;
    if (p->status_code != 200) {
        r->why = "status is not 200";
        return -1;
    }
    /* A body running to the end of the connection cannot be told from a cut reply. */
    if (!(p->flags & F_CHUNKED) && p->content_length == ULLONG_MAX) {
        r->why = "response has neither Content-Length nor chunked encoding";
        return -1;
    }
    if (!(p->flags & F_CHUNKED) && p->content_length > SWARM_HTTP_BODY_MAX) {
        r->why = "Content-Length above the swarm's limit";
        return -1;
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct swarm_http_reader *r = p->data;
    if (len > SWARM_HTTP_BODY_MAX - r->body_len) {
        r->why = "body above the swarm's limit";
        return 1;
    }
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap == 0 ? 4096 : r->body_cap;
        while (cap < r->body_len + len) {
            cap *= 2;
        }
        if (cap > SWARM_HTTP_BODY_MAX) {
            cap = SWARM_HTTP_BODY_MAX;
        }
        uint8_t *b = realloc(r->body, cap);
        if (b == NULL) {
            r->why = "out of memory for the body";
            return 1;
        }
        r->body = b;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct swarm_http_reader *r = p->data;
    r->complete = true;
    r->keep_alive = http_should_keep_alive(p) != 0;
    http_parser_pause(p, 1); /* one response at a time: the caller acts on it first */
    return 0;
}

static const http_parser_settings response_settings = {
    .on_message_begin = on_message_begin,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void swarm_http_reader_init(struct swarm_http_reader *r)
{
    memset(r, 0, sizeof(*r));
    http_parser_init(&r->parser, HTTP_RESPONSE);
    r->parser.data = r;
}

ptrdiff_t swarm_http_reader_feed(struct swarm_http_reader *r, const uint8_t *buf, size_t len,
                                 char *err, size_t errlen)
{
    if (r->complete) {
        /* the caller acted on the last response: go on with the next one */
        r->complete = false;
        r->body_len = 0;
        http_parser_pause(&r->parser, 0);
    }
    r->parser.data = r; /* the reader may have been moved since init */
    r->why = NULL;
    size_t used = http_parser_execute(&r->parser, &response_settings, (const char *)buf, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&r->parser);
    if (e == HPE_OK || (e == HPE_PAUSED && r->complete)) {
        return (ptrdiff_t)used;
    }
    if (r->why != NULL) {
        err_set(err, errlen, "HTTP response: %s", r->why);
    } else {
        err_set(err, errlen, "HTTP response: %s", http_errno_description(e));
    }
    return SWARM_E_PROTOCOL;
}

void swarm_http_reader_free(struct swarm_http_reader *r)
{
    free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
}
