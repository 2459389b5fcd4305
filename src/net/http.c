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

static int http_on_message_begin(http_parser *p)
{
    struct conn *c = p->data;
    struct http_state *h = c->http;
    h->in_message = 1;
    if (h->head == NULL) {
        h->head = malloc(sizeof(*h->head));
        if (h->head == NULL) {
            return -1;
        }
    }
    httpreq_reset(h->head);
    return 0;
}

static int http_on_url(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    httpreq_add(c->http->head, HTTPREQ_URL, at, len);
    return 0;
}

static int http_on_header_field(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    httpreq_add(c->http->head, HTTPREQ_NAME, at, len);
    return 0;
}

static int http_on_header_value(http_parser *p, const char *at, size_t len)
{
    struct conn *c = p->data;
    httpreq_add(c->http->head, HTTPREQ_VALUE, at, len);
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
    httpreq_end_headers(c->http->head);
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

/* Handles a complete request: the family decodes it (body form, header form, ...); what it does
 * not recognise is recorded as an undecoded contact and answered 404. Returns false when the
 * connection is done. */
bool http_handle_request(struct conn *c)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    struct http_state *h = c->http;
    h->complete = 0;
    struct proto_http_header headers[PROTO_HTTP_HEADERS_MAX];
    struct proto_http_request req;
    bool usable = httpreq_view(h->head, http_method_str(h->parser.method), h->body, h->body_len,
                               &req, headers);
    struct proto_message msg;
    char err[160] = "";
    int r = PROTO_E_NOT_THIS;
    if (usable) {
        r = srv->family->decode_http(srv->family_cfg, &c->proto, &req, &msg, w->scratch,
                                     sizeof(w->scratch), err, sizeof(err));
    } else {
        snprintf(err, sizeof(err), "%s",
                 h->head->unusable ? h->head->unusable : "HTTP request head incomplete");
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
    uint64_t whole = 0;
    size_t len = httpreq_text(&req, text, CONTACT_HEAD_MAX, &whole);
    char reason[sizeof(((struct contact *)0)->reason)];
    snprintf(reason, sizeof(reason), "%.95s", err[0] ? err : "HTTP request not decoded");
    struct undecoded_input in = {.bytes = text,
                                 .len = len,
                                 .total = whole,
                                 .transport = CONTACT_TRANSPORT_HTTP,
                                 .hostile = r == PROTO_E_TOO_LARGE || r == PROTO_E_DECOMPRESS,
                                 .reason = reason,
                                 .reply = not_found,
                                 .reply_len = sizeof(not_found) - 1};
    return contact_record_undecoded(c, &in);
}
