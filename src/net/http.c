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
    c->http->in_message = 1;
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
    return 0;
}

static int http_on_message_complete(http_parser *p)
{
    struct conn *c = p->data;
    c->http->complete = 1;
    c->http->in_message = 0;
    c->http->keep_alive = (uint8_t)http_should_keep_alive(p);
    c->http->is_post = p->method == HTTP_POST;
    http_parser_pause(p, 1);
    return 0;
}

const http_parser_settings http_settings = {
    .on_message_begin = http_on_message_begin,
    .on_body = http_on_body,
    .on_headers_complete = http_on_headers_complete,
    .on_message_complete = http_on_message_complete,
};

/* Handles a complete HTTP request: its body must be exactly one packet. Returns false when the
 * connection was closed. */
bool http_handle_request(struct conn *c)
{
    struct worker *w = conn_worker(c);
    struct server *srv = w->srv;
    struct http_state *h = c->http;
    h->complete = 0;
    if (!h->is_post) {
        bad_peer(c, "HTTP %s instead of POST", http_method_str(h->parser.method));
        static const char resp[] = "HTTP/1.1 405 Method Not Allowed\r\nAllow: POST\r\n"
                                   "Content-Length: 0\r\nConnection: close\r\n\r\n";
        conn_send(c, (const uint8_t *)resp, sizeof(resp) - 1);
        conn_close(c);
        return false;
    }
    struct proto_message msg;
    char err[160] = "";
    ptrdiff_t r = srv->family->decode(srv->family_cfg, &c->proto, h->body, h->body_len, &msg,
                                      w->scratch, sizeof(w->scratch), err, sizeof(err));
    if (r <= 0 || (size_t)r != h->body_len) {
        bad_peer(c, "HTTP body of %u bytes is not one %s packet%s%s", h->body_len,
                 srv->family->name, err[0] ? ": " : "", err);
        conn_refuse(c);
        return false;
    }
    free(h->body);
    h->body = NULL;
    h->body_len = 0;
    if (!h->keep_alive) {
        c->close_after_reply = 1;
    }
    handle_message(c, &msg, CONTACT_TRANSPORT_HTTP);
    return !c->closing;
}
