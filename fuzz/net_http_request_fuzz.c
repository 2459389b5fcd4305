/* net_http_request_fuzz.c -- libFuzzer harness for the server's HTTP request path: bytes through
 * libhttp-parser (split at a point the input picks, as reads split them) into net/httpreq.h, the
 * request handed to plugx_family.decode_http (header form, body form, anything else) and, as
 * for an undecoded caller, rendered as canonical text. Must never crash, read out of bounds or
 * write past a bound. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <http_parser.h>

#include "net/httpreq.h"
#include "proto/plugx/plugx.h"

#define BODY_MAX 65536

struct request {
    struct httpreq head;
    uint8_t body[BODY_MAX];
    size_t body_len;
    int complete;
};

static int on_begin(http_parser *p)
{
    struct request *r = p->data;
    httpreq_reset(&r->head);
    r->body_len = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t len)
{
    httpreq_add(&((struct request *)p->data)->head, HTTPREQ_URL, at, len);
    return 0;
}

static int on_field(http_parser *p, const char *at, size_t len)
{
    httpreq_add(&((struct request *)p->data)->head, HTTPREQ_NAME, at, len);
    return 0;
}

static int on_value(http_parser *p, const char *at, size_t len)
{
    httpreq_add(&((struct request *)p->data)->head, HTTPREQ_VALUE, at, len);
    return 0;
}

static int on_headers(http_parser *p)
{
    httpreq_end_headers(&((struct request *)p->data)->head);
    return 0;
}

static int on_body(http_parser *p, const char *at, size_t len)
{
    struct request *r = p->data;
    if (r->body_len + len > BODY_MAX) {
        return -1;
    }
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int on_complete(http_parser *p)
{
    ((struct request *)p->data)->complete = 1;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings settings = {
    .on_message_begin = on_begin,
    .on_url = on_url,
    .on_header_field = on_field,
    .on_header_value = on_value,
    .on_headers_complete = on_headers,
    .on_body = on_body,
    .on_message_complete = on_complete,
};

static uint8_t scratch[PROTO_SCRATCH_SIZE];
static uint8_t text[4096];

static void handle(struct request *r, const http_parser *p)
{
    struct proto_http_header headers[PROTO_HTTP_HEADERS_MAX];
    struct proto_http_request req;
    (void)httpreq_view(&r->head, http_method_str(p->method), r->body, r->body_len, &req, headers);
    if (req.nheaders > PROTO_HTTP_HEADERS_MAX || strlen(req.url) > PROTO_HTTP_URL_MAX) {
        __builtin_trap();
    }
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    uint8_t state[64];
    plugx_family.conn_init(&cfg, state, 1);
    struct proto_message msg;
    char err[160];
    (void)plugx_family.decode_http(&cfg, state, &req, &msg, scratch, sizeof(scratch), err,
                                   sizeof(err));
    uint64_t whole = 0;
    size_t n = httpreq_text(&req, text, sizeof(text), &whole);
    if (n > sizeof(text) || n > whole) {
        __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct request r;
    if (size < 1) {
        return 0;
    }
    size_t split = data[0] % size; /* where the first "read" ends */
    data++;
    size--;
    http_parser p;
    http_parser_init(&p, HTTP_REQUEST);
    p.data = &r;
    r.complete = 0;
    size_t pos = 0;
    for (int rounds = 0; rounds < 64 && pos < size; rounds++) {
        size_t end = pos < split ? (split < size ? split : size) : size;
        if (end <= pos) {
            end = size;
        }
        size_t used = http_parser_execute(&p, &settings, (const char *)data + pos, end - pos);
        pos += used;
        if (r.complete) {
            handle(&r, &p);
            r.complete = 0;
            http_parser_pause(&p, 0);
            continue;
        }
        if (HTTP_PARSER_ERRNO(&p) != HPE_OK || used == 0) {
            break;
        }
    }
    return 0;
}
