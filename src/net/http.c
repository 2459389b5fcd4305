/* http.c -- the HTTP transport: requests parsed by libhttp-parser, handed whole to the protocol
 * family, answered with its reply as the response body. */
#include "net/server_internal.h"

void conn_send_http(struct conn *c, const uint8_t *body, size_t len, bool keep_alive)
{
    uint8_t out[256 + PIPE_REPLY_MAX];
    int n = snprintf((char *)out, 256,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                     "Content-Length: %zu\r\nConnection: %s\r\n\r\n",
                     len, keep_alive ? "keep-alive" : "close");
    memcpy(out + n, body, len);
    conn_send(c, out, (size_t)n + len);
}

bool starts_with_http_method(const uint8_t *p, size_t len, bool *need_more)
{
    static const char *const methods[] = {"POST ",   "GET ",     "PUT ",   "HEAD ", "OPTIONS ",
                                          "DELETE ", "CONNECT ", "PATCH ", "TRACE "};
    *need_more = false;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        size_t m = strlen(methods[i]);
        size_t n = len < m ? len : m;
        if (memcmp(p, methods[i], n) == 0) {
            if (len >= m) {
                return true;
            }
            *need_more = true;
        }
    }
    return false;
}

struct http_head {
    uint32_t len;
    uint16_t url_len;
    uint8_t nheaders;
    uint8_t last; /* what the parser gave last: 0 nothing, 1 URL, 2 header name, 3 value */
    uint16_t name_at[PROTO_HTTP_HEADERS_MAX];
    uint16_t value_at[PROTO_HTTP_HEADERS_MAX];
    char data[HTTP_HEAD_MAX];
};

/* Ends the item being collected with its NUL; a header name the parser gave no value for (an
 * empty value) gets an empty one. Leaves room: head_append keeps 2 bytes spare. */
static void head_close_item(struct http_head *hd)
{
    if (hd->last == 0) {
        return;
    }
    hd->data[hd->len++] = '\0';
    if (hd->last == 2) {
        hd->value_at[hd->nheaders - 1] = (uint16_t)hd->len;
        hd->data[hd->len++] = '\0';
    }
    hd->last = 0;
}

/* Appends a piece the parser gave (pieces of one item may come split across reads). A request
 * that breaks a bound is not what a bot sends: it is marked unusable and recorded undecoded. */
static void head_append(struct http_state *h, uint8_t what, const char *at, size_t len,
                        size_t item_max)
{
    struct http_head *hd = h->head;
    if (h->unusable != NULL) {
        return;
    }
    if (hd->last != what) {
        /* A new item starts; a value continues its name's entry. */
        if (!(hd->last == 2 && what == 3)) {
            head_close_item(hd);
        } else {
            hd->data[hd->len++] = '\0';
        }
        if (what == 2) {
            if (hd->nheaders == PROTO_HTTP_HEADERS_MAX) {
                h->unusable = "HTTP request with too many headers";
                return;
            }
            hd->name_at[hd->nheaders++] = (uint16_t)hd->len;
        } else if (what == 3) {
            hd->value_at[hd->nheaders - 1] = (uint16_t)hd->len;
        }
        hd->last = what;
    }
    size_t item = what == 1   ? hd->len
                  : what == 2 ? hd->len - hd->name_at[hd->nheaders - 1]
                              : hd->len - hd->value_at[hd->nheaders - 1];
    if (item + len > item_max) {
        h->unusable = what == 1 ? "HTTP request target too long" : "HTTP header too long";
        return;
    }
    if (hd->len + len + 4 > HTTP_HEAD_MAX) {
        h->unusable = "HTTP request head too large";
        return;
    }
    memcpy(hd->data + hd->len, at, len);
    hd->len += (uint32_t)len;
    if (what == 1) {
        hd->url_len = (uint16_t)hd->len;
    }
}

static int http_on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    struct http_state *h = c->http;
    h->in_message = 1;
    h->unusable = NULL;
    if (h->head == NULL) {
        h->head = malloc(sizeof(*h->head));
        if (h->head == NULL) {
            return -1;
        }
    }
    h->head->len = 0;
    h->head->url_len = 0;
    h->head->nheaders = 0;
    h->head->last = 0;
    return 0;
}

static int http_on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    head_append(c->http, 1, at, len, PROTO_HTTP_URL_MAX);
    return 0;
}

static int http_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    head_append(c->http, 2, at, len, PROTO_HTTP_FIELD_MAX);
    return 0;
}

static int http_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct http_state *h = c->http;
    if (h->head->last != 3 && h->head->last != 2) {
        h->unusable = "HTTP header value without a name"; /* http_parser never does this */
        return 0;
    }
    head_append(h, 3, at, len, PROTO_HTTP_FIELD_MAX);
    return 0;
}

static int http_on_body(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    struct http_state *h = c->http;
    uint32_t limit = conn_worker(c)->srv->cfg->limits.max_message;
    if (h->body_len + len > limit) {
        return -1;
    }
    uint8_t *nb = realloc(h->body, h->body_len + len);
    if (nb == NULL) {
        return -1;
    }
    h->body = nb;
    memcpy(h->body + h->body_len, at, len);
    h->body_len += (uint32_t)len;
    return 0;
}

static int http_on_headers_complete(http_parser *p)
{
    struct conn *c = p->data;
    if (p->content_length != ULLONG_MAX &&
        p->content_length > conn_worker(c)->srv->cfg->limits.max_message) {
        return -1;
    }
    if (c->http->unusable == NULL) {
        head_close_item(c->http->head);
    }
    return 0;
}

static int http_on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->http->complete = 1;
    c->http->in_message = 0;
    c->http->keep_alive = (uint8_t)http_should_keep_alive(p);
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings http_settings = {
    .on_message_begin = http_on_message_begin,
    .on_url = http_on_url,
    .on_header_field = http_on_header_field,
    .on_header_value = http_on_header_value,
    .on_body = http_on_body,
    .on_headers_complete = http_on_headers_complete,
    .on_message_complete = http_on_message_complete,
};

bool http_start(struct conn *c)
{
    c->http = calloc(1, sizeof(*c->http));
    if (c->http == NULL) {
        conn_close(c);
        return false;
    }
    http_parser_init(&c->http->parser, HTTP_REQUEST);
    c->http->parser.data = c;
    c->phase = PHASE_HTTP;
    return true;
}

void http_free(struct conn *c)
{
    if (c->http != NULL) {
        free(c->http->body);
        free(c->http->head);
        free(c->http->pending_command);
        free(c->http);
        c->http = NULL;
    }
}

/* A parser error is a size or a protocol breach of HTTP itself (oversize body, garbage where a
 * request line belongs): hostile only for sizes; otherwise the caller is recorded undecoded. */
ptrdiff_t http_feed(struct conn *c, const uint8_t *q, size_t n)
{
    struct http_state *h = c->http;
    size_t used = http_parser_execute(&h->parser, &http_settings, (const char *)q, n);
    enum http_errno e = HTTP_PARSER_ERRNO(&h->parser);
    if (e == HPE_CB_body || e == HPE_CB_headers_complete || e == HPE_HEADER_OVERFLOW) {
        bad_peer(c, "HTTP: request larger than %u bytes",
                 conn_worker(c)->srv->cfg->limits.max_message);
        conn_refuse(c);
        return -1;
    }
    if (e == HPE_CB_message_begin) {
        conn_close(c); /* out of memory for the request head */
        return -1;
    }
    if ((e != HPE_OK && e != HPE_PAUSED) || h->parser.upgrade || (!h->complete && used < n)) {
        char reason[96];
        snprintf(reason, sizeof(reason), "not HTTP a bot sends: %s",
                 h->parser.upgrade ? "upgrade requested" : http_errno_description(e));
        if (!conn_can_submit(c)) {
            /* No room to record it now, and the parser cannot resume: it is let go. */
            conn_close(c);
            return -1;
        }
        static const uint8_t bad[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n"
                                     "Connection: close\r\n\r\n";
        struct undecoded_input in = {.bytes = q,
                                     .len = n,
                                     .total = n,
                                     .transport = CONTACT_TRANSPORT_HTTP,
                                     .reason = reason,
                                     .reply = bad,
                                     .reply_len = sizeof(bad) - 1};
        contact_record_undecoded(c, &in);
        return -1;
    }
    return (ptrdiff_t)used;
}

/* The request as canonical text ("METHOD target\nname: value\n...\n" then the body, cut at
 * CONTACT_HEAD_MAX): what an undecoded HTTP contact's head digest covers. */
static size_t request_text(const struct proto_http_request *req, uint8_t *out, size_t cap)
{
    size_t n = (size_t)snprintf((char *)out, cap, "%s %s\n", req->method, req->url);
    for (size_t i = 0; i < req->nheaders && n < cap; i++) {
        n += (size_t)snprintf((char *)out + n, cap - n, "%s: %s\n", req->headers[i].name,
                              req->headers[i].value);
    }
    if (n < cap) {
        n += (size_t)snprintf((char *)out + n, cap - n, "\n");
    }
    if (n < cap) {
        size_t body = req->body_len < cap - n ? req->body_len : cap - n;
        memcpy(out + n, req->body, body);
        n += body;
    }
    return n < cap ? n : cap;
}

/* Handles a complete request: the family decodes it (body form, header form, ...); what it does
 * not recognise is recorded as an undecoded contact and answered 404. Returns false when the
 * connection is done. */
bool http_handle_request(struct conn *c)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    struct http_state *h = c->http;
    struct http_head *hd = h->head;
    h->complete = 0;
    struct proto_http_header headers[PROTO_HTTP_HEADERS_MAX];
    /* A request that broke a bound has a head cut anywhere: none of it is handed on. */
    bool usable = h->unusable == NULL;
    struct proto_http_request req = {.method = http_method_str(h->parser.method),
                                     .url = usable && hd->url_len > 0 ? hd->data : "",
                                     .headers = headers,
                                     .nheaders = usable ? hd->nheaders : 0,
                                     .body = h->body,
                                     .body_len = h->body_len};
    for (size_t i = 0; i < req.nheaders; i++) {
        headers[i].name = hd->data + hd->name_at[i];
        headers[i].value = hd->data + hd->value_at[i];
    }
    struct proto_message msg;
    char err[160] = "";
    int r = PROTO_E_NOT_THIS;
    if (usable) {
        r = srv->family->decode_http(srv->family_cfg, &c->proto, &req, &msg, w->scratch,
                                     sizeof(w->scratch), err, sizeof(err));
    } else {
        snprintf(err, sizeof(err), "%s", h->unusable);
    }
    if (!h->keep_alive) {
        c->close_after_reply = 1;
    }
    if (r == 1) {
        /* Nothing of the request stays while the bot is idle between requests. */
        free(h->body);
        h->body = NULL;
        h->body_len = 0;
        free(h->head);
        h->head = NULL;
        handle_message(c, &msg, msg.transport);
        return !c->closing;
    }
    /* Not a request this family's bots send, or one that did not decode: the caller is still
     * recorded, and only sizes and rates make it hostile (PROTO_E_TOO_LARGE, PROTO_E_DECOMPRESS).
     */
    static const uint8_t not_found[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                       "Connection: close\r\n\r\n";
    uint8_t *text = w->scratch;
    size_t len = request_text(&req, text, CONTACT_HEAD_MAX);
    char reason[96];
    snprintf(reason, sizeof(reason), "%s", err[0] ? err : "HTTP request not decoded");
    struct undecoded_input in = {.bytes = text,
                                 .len = len,
                                 .total = (uint64_t)hd->len + h->body_len,
                                 .transport = CONTACT_TRANSPORT_HTTP,
                                 .hostile = r == PROTO_E_TOO_LARGE || r == PROTO_E_DECOMPRESS,
                                 .reason = reason,
                                 .reply = not_found,
                                 .reply_len = sizeof(not_found) - 1};
    return contact_record_undecoded(c, &in);
}
