/* httpreq.c -- an HTTP request's head collected within bounds (httpreq.h). */
#include "net/httpreq.h"

#include <stdio.h>
#include <string.h>

void httpreq_reset(struct httpreq *r)
{
    r->unusable = NULL;
    r->len = 0;
    r->url_len = 0;
    r->nheaders = 0;
    r->last = 0;
}

/* Ends the item being collected with its NUL; a header name given no value (an empty value)
 * gets an empty one. httpreq_add keeps the room for these bytes. */
static void close_item(struct httpreq *r)
{
    if (r->last == 0) {
        return;
    }
    r->data[r->len++] = '\0';
    if (r->last == HTTPREQ_NAME) {
        r->value_at[r->nheaders - 1] = (uint16_t)r->len;
        r->data[r->len++] = '\0';
    }
    r->last = 0;
}

void httpreq_add(struct httpreq *r, enum httpreq_part part, const char *at, size_t len)
{
    if (r->unusable != NULL) {
        return;
    }
    if (part == HTTPREQ_VALUE && r->last != HTTPREQ_NAME && r->last != HTTPREQ_VALUE) {
        r->unusable = "HTTP header value without a name"; /* libhttp-parser never does this */
        return;
    }
    if (r->last != part) {
        if (r->last == HTTPREQ_NAME && part == HTTPREQ_VALUE) {
            r->data[r->len++] = '\0'; /* the name ends; its value starts */
        } else {
            close_item(r);
        }
        if (part == HTTPREQ_NAME) {
            if (r->nheaders == PROTO_HTTP_HEADERS_MAX) {
                r->unusable = "HTTP request with too many headers";
                return;
            }
            r->name_at[r->nheaders++] = (uint16_t)r->len;
        } else if (part == HTTPREQ_VALUE) {
            r->value_at[r->nheaders - 1] = (uint16_t)r->len;
        }
        r->last = (uint8_t)part;
    }
    size_t item = part == HTTPREQ_URL    ? r->len
                  : part == HTTPREQ_NAME ? r->len - r->name_at[r->nheaders - 1]
                                         : r->len - r->value_at[r->nheaders - 1];
    size_t item_max = part == HTTPREQ_URL ? PROTO_HTTP_URL_MAX : PROTO_HTTP_FIELD_MAX;
    if (item + len > item_max) {
        r->unusable = part == HTTPREQ_URL ? "HTTP request target too long" : "HTTP header too long";
        return;
    }
    /* 3 bytes kept for the NULs close_item may add. */
    if (r->len + len + 3 > HTTPREQ_HEAD_MAX) {
        r->unusable = "HTTP request head too large";
        return;
    }
    memcpy(r->data + r->len, at, len);
    r->len += (uint32_t)len;
    if (part == HTTPREQ_URL) {
        r->url_len = (uint16_t)r->len;
    }
}

void httpreq_end_headers(struct httpreq *r)
{
    if (r->unusable == NULL) {
        close_item(r);
    }
}

bool httpreq_view(const struct httpreq *r, const char *method, const uint8_t *body, size_t body_len,
                  struct proto_http_request *req,
                  struct proto_http_header headers[PROTO_HTTP_HEADERS_MAX])
{
    /* A request that broke a bound has a head cut anywhere: none of it is handed on. */
    bool usable = r->unusable == NULL && r->last == 0;
    req->method = method;
    req->url = usable && r->url_len > 0 ? r->data : "";
    req->headers = headers;
    req->nheaders = usable ? r->nheaders : 0;
    req->body = body;
    req->body_len = body_len;
    for (size_t i = 0; i < req->nheaders; i++) {
        headers[i].name = r->data + r->name_at[i];
        headers[i].value = r->data + r->value_at[i];
    }
    return usable;
}

/* Copies what fits of bytes[0..len) at out[*n..cap). */
static void append(uint8_t *out, size_t cap, size_t *n, const void *bytes, size_t len)
{
    size_t k = len < cap - *n ? len : cap - *n;
    if (k > 0) {
        memcpy(out + *n, bytes, k);
    }
    *n += k;
}

static void append_str(uint8_t *out, size_t cap, size_t *n, const char *s)
{
    append(out, cap, n, s, strlen(s));
}

size_t httpreq_text(const struct proto_http_request *req, uint8_t *out, size_t cap, uint64_t *whole)
{
    *whole = strlen(req->method) + strlen(req->url) + 3 + req->body_len;
    size_t n = 0;
    append_str(out, cap, &n, req->method);
    append_str(out, cap, &n, " ");
    append_str(out, cap, &n, req->url);
    append_str(out, cap, &n, "\n");
    for (size_t i = 0; i < req->nheaders; i++) {
        *whole += strlen(req->headers[i].name) + strlen(req->headers[i].value) + 3;
        append_str(out, cap, &n, req->headers[i].name);
        append_str(out, cap, &n, ": ");
        append_str(out, cap, &n, req->headers[i].value);
        append_str(out, cap, &n, "\n");
    }
    append_str(out, cap, &n, "\n");
    append(out, cap, &n, req->body, req->body_len);
    return n;
}
