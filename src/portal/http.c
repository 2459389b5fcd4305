/* http.c -- the portal's pure request parsers: one HTTP/1.x request (through http_parser, no
 * hand-written HTTP), query strings and form bodies, cookies. No I/O, no allocation. */
#include "portal/portal.h"

#include <http_parser.h>

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

enum header_id {
    H_NONE = 0,
    H_AUTHORIZATION,
    H_JUSTIFICATION,
    H_COOKIE,
    H_CSRF,
    H_CONTENT_TYPE,
    H_ORIGIN,
    H_TRANSFER_ENCODING,
    H_COUNT
};

struct parse_ctx {
    struct portal_request *req;
    const char *url;
    size_t url_len;
    enum header_id header;
    bool field_open;      /* the last callback was a header field */
    unsigned seen;        /* bit per header_id */
    bool head_done, done; /* headers complete, message complete */
    const char *body;
    size_t body_len;
    int problem; /* PORTAL_PARSE_BAD or _TOO_LARGE found in a callback */
    const char *why;
};

static int stop(struct parse_ctx *c, int problem, const char *why)
{
    if (c->problem == 0) {
        c->problem = problem;
        c->why = why;
    }
    return -1; /* http_parser stops with HPE_CB_* */
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *c = p->data;
    if (c->url == NULL) {
        c->url = at;
    }
    c->url_len = (size_t)(at + len - c->url);
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *c = p->data;
    static const struct {
        const char *name;
        enum header_id id;
    } known[] = {
        {"authorization", H_AUTHORIZATION},
        {"x-justification", H_JUSTIFICATION},
        {"cookie", H_COOKIE},
        {"x-csrf-token", H_CSRF},
        {"content-type", H_CONTENT_TYPE},
        {"origin", H_ORIGIN},
        {"transfer-encoding", H_TRANSFER_ENCODING},
    };
    /* The whole head is parsed in one call, so a field arrives in one piece. */
    c->header = H_NONE;
    c->field_open = true;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i].name) == len && strncasecmp(known[i].name, at, len) == 0) {
            c->header = known[i].id;
            break;
        }
    }
    if (c->header != H_NONE) {
        /* Two Authorization (or Cookie, ...) headers: which one counts would depend on the
         * proxy in front; refuse rather than guess. */
        if (c->seen & (1u << c->header)) {
            return stop(c, PORTAL_PARSE_BAD, "repeated header");
        }
        c->seen |= 1u << c->header;
    }
    return 0;
}

static int copy_value(struct parse_ctx *c, char *dst, size_t cap, const char *at, size_t len)
{
    if (len >= cap) {
        return stop(c, PORTAL_PARSE_TOO_LARGE, "header value too long");
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)at[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
            return stop(c, PORTAL_PARSE_BAD, "control character in a header");
        }
    }
    memcpy(dst, at, len);
    dst[len] = '\0';
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *c = p->data;
    struct portal_request *r = c->req;
    if (!c->field_open) {
        return stop(c, PORTAL_PARSE_BAD, "header value in pieces");
    }
    c->field_open = false;
    switch (c->header) {
    case H_AUTHORIZATION:
        r->has_authorization = true;
        return copy_value(c, r->authorization, sizeof(r->authorization), at, len);
    case H_JUSTIFICATION:
        r->has_justification = true;
        return copy_value(c, r->justification, sizeof(r->justification), at, len);
    case H_COOKIE:
        return copy_value(c, r->cookie, sizeof(r->cookie), at, len);
    case H_CSRF:
        return copy_value(c, r->csrf, sizeof(r->csrf), at, len);
    case H_CONTENT_TYPE:
        return copy_value(c, r->content_type, sizeof(r->content_type), at, len);
    case H_ORIGIN:
        return copy_value(c, r->origin, sizeof(r->origin), at, len);
    case H_TRANSFER_ENCODING:
        /* Bodies come with a Content-Length only: one framing, nothing to smuggle. */
        return stop(c, PORTAL_PARSE_BAD, "Transfer-Encoding is not accepted");
    default:
        return 0;
    }
}

static int on_headers_complete(http_parser *p)
{
    struct parse_ctx *c = p->data;
    c->head_done = true;
    if (p->content_length != ULLONG_MAX && p->content_length > PORTAL_BODY_MAX) {
        return stop(c, PORTAL_PARSE_TOO_LARGE, "body too large");
    }
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *c = p->data;
    if (c->body == NULL) {
        c->body = at;
    }
    c->body_len = (size_t)(at + len - c->body);
    return 0;
}

static int on_message_complete(http_parser *p)
{
    struct parse_ctx *c = p->data;
    c->done = true;
    http_parser_pause(p, 1); /* one request per connection: anything after it is ignored */
    return 0;
}

enum portal_parse_result portal_http_parse(const char *buf, size_t len, struct portal_request *out,
                                           char *why, size_t whylen)
{
    memset(out, 0, sizeof(*out));
    http_parser_settings s;
    memset(&s, 0, sizeof(s));
    s.on_url = on_url;
    s.on_header_field = on_header_field;
    s.on_header_value = on_header_value;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    struct parse_ctx c = {.req = out};
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &c;
    size_t limit = PORTAL_HEAD_MAX + PORTAL_BODY_MAX;
    size_t n = len > limit ? limit : len;
    size_t used = http_parser_execute(&p, &s, buf, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&p);
    const char *reason = NULL;
    enum portal_parse_result result;
    if (c.problem != 0) {
        result = (enum portal_parse_result)c.problem;
        reason = c.why;
    } else if (e != HPE_OK && e != HPE_PAUSED) {
        result = PORTAL_PARSE_BAD;
        reason = http_errno_description(e);
    } else if (!c.head_done) {
        /* The head must fit its bound whatever the peer sends. */
        if (len >= PORTAL_HEAD_MAX) {
            result = PORTAL_PARSE_TOO_LARGE;
            reason = "request head too large";
        } else {
            result = PORTAL_PARSE_NEED_MORE;
        }
    } else if (!c.done) {
        result = len >= limit ? PORTAL_PARSE_TOO_LARGE : PORTAL_PARSE_NEED_MORE;
        reason = result == PORTAL_PARSE_TOO_LARGE ? "request too large" : NULL;
    } else if (p.http_major != 1) {
        result = PORTAL_PARSE_BAD;
        reason = "not HTTP/1.x";
    } else {
        result = PORTAL_PARSE_DONE;
    }
    if (result == PORTAL_PARSE_DONE) {
        /* The head alone must fit too, body or not. */
        size_t head_len = c.body != NULL ? (size_t)(c.body - buf) : used;
        if (head_len > PORTAL_HEAD_MAX) {
            result = PORTAL_PARSE_TOO_LARGE;
            reason = "request head too large";
        }
    }
    if (result == PORTAL_PARSE_DONE) {
        switch (p.method) {
        case HTTP_GET:
            out->method = PORTAL_GET;
            break;
        case HTTP_POST:
            out->method = PORTAL_POST;
            break;
        case HTTP_HEAD:
            out->method = PORTAL_HEAD_METHOD;
            break;
        default:
            out->method = PORTAL_OTHER;
            break;
        }
        /* The request target: origin-form only ("/path?query"); an absolute URL or '*' is not
         * something this server answers. */
        const char *q = c.url != NULL ? memchr(c.url, '?', c.url_len) : NULL;
        size_t plen = q != NULL ? (size_t)(q - c.url) : c.url_len;
        size_t qlen = q != NULL ? c.url_len - plen - 1 : 0;
        if (c.url == NULL || plen == 0 || c.url[0] != '/') {
            result = PORTAL_PARSE_BAD;
            reason = "request target is not a path";
        } else if (plen > PORTAL_PATH_MAX || qlen > PORTAL_QUERY_MAX) {
            result = PORTAL_PARSE_TOO_LARGE;
            reason = "path or query too long";
        } else {
            memcpy(out->path, c.url, plen);
            out->path[plen] = '\0';
            if (q != NULL) {
                memcpy(out->query, q + 1, qlen);
                out->query[qlen] = '\0';
            }
            out->body = c.body;
            out->body_len = c.body_len;
            out->consumed = used;
        }
    }
    if (result != PORTAL_PARSE_DONE) {
        /* Nothing half-filled leaks to a caller that ignores the result. */
        memset(out, 0, sizeof(*out));
    }
    if (why != NULL && whylen > 0) {
        snprintf(why, whylen, "%s", reason != NULL ? reason : "");
    }
    return result;
}

/* ---- query strings and form bodies ------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Percent-decodes text[0..len) into out (cap bytes with the NUL); '+' is a space. Refuses a bad
 * escape, a NUL (decoded or raw) and control bytes other than tab, CR and LF. */
static int decode(const char *text, size_t len, char *out, size_t cap, const char **why)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int ch = (unsigned char)text[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            int hi = i + 2 < len ? hexval(text[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(text[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                *why = "bad percent escape";
                return -1;
            }
            ch = hi * 16 + lo;
            i += 2;
        }
        if (ch == 0 || (ch < 0x20 && ch != '\t' && ch != '\r' && ch != '\n') || ch == 0x7f) {
            *why = "control character in a parameter";
            return -1;
        }
        if (o + 1 >= cap) {
            *why = "parameter too long";
            return -1;
        }
        out[o++] = (char)ch;
    }
    out[o] = '\0';
    return 0;
}

int portal_params_parse(const char *text, size_t len, struct portal_params *out, char *why,
                        size_t whylen)
{
    out->n = 0;
    const char *reason = NULL;
    size_t i = 0;
    while (i < len) {
        const char *amp = memchr(text + i, '&', len - i);
        size_t end = amp != NULL ? (size_t)(amp - text) : len;
        if (end > i) {
            if (out->n == PORTAL_PARAMS_MAX) {
                reason = "too many parameters";
                break;
            }
            const char *eq = memchr(text + i, '=', end - i);
            size_t name_end = eq != NULL ? (size_t)(eq - text) : end;
            struct portal_param *pp = &out->p[out->n];
            if (name_end == i) {
                reason = "parameter without a name";
                break;
            }
            if (decode(text + i, name_end - i, pp->name, sizeof(pp->name), &reason) != 0) {
                break;
            }
            size_t vstart = eq != NULL ? name_end + 1 : end;
            if (decode(text + vstart, end - vstart, pp->value, sizeof(pp->value), &reason) != 0) {
                break;
            }
            out->n++;
        }
        i = end + 1;
    }
    if (reason != NULL) {
        out->n = 0;
        if (why != NULL && whylen > 0) {
            snprintf(why, whylen, "%s", reason);
        }
        return -1;
    }
    return 0;
}

const char *portal_params_get(const struct portal_params *ps, const char *name)
{
    for (size_t i = 0; i < ps->n; i++) {
        if (strcmp(ps->p[i].name, name) == 0) {
            return ps->p[i].value;
        }
    }
    return NULL;
}

int portal_cookie_get(const char *header, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    const char *p = header;
    while (p != NULL && *p != '\0') {
        while (*p == ' ' || *p == ';') {
            p++;
        }
        const char *end = strchr(p, ';');
        size_t plen = end != NULL ? (size_t)(end - p) : strlen(p);
        if (plen > nlen && strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            size_t vlen = plen - nlen - 1;
            while (vlen > 0 && p[nlen + 1 + vlen - 1] == ' ') {
                vlen--;
            }
            if (vlen + 1 > cap) {
                return -1;
            }
            memcpy(out, p + nlen + 1, vlen);
            out[vlen] = '\0';
            return 0;
        }
        p = end;
    }
    return -1;
}
