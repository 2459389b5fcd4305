/* httpreq.h -- one HTTP request's target and headers, as libhttp-parser hands them over in pieces
 * (split anywhere across reads), collected within fixed bounds into the proto_http_request a
 * protocol family decodes. Pure: no I/O, no allocation; fuzzed by fuzz/net_http_request_fuzz.c. */
#ifndef SINKD_NET_HTTPREQ_H
#define SINKD_NET_HTTPREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto/proto.h"

#define HTTPREQ_HEAD_MAX 8192 /* target and headers of one request, NULs included */

enum httpreq_part { HTTPREQ_URL = 1, HTTPREQ_NAME = 2, HTTPREQ_VALUE = 3 };

struct httpreq {
    /* Why the request cannot be handed on (a bound it broke), NULL if it can. A request that
     * breaks a bound is not what a bot sends: it is recorded as undecoded, not parsed further. */
    const char *unusable;
    uint32_t len;
    uint16_t url_len;
    uint8_t nheaders;
    uint8_t last; /* the part given last (enum httpreq_part), 0 at an item boundary */
    uint16_t name_at[PROTO_HTTP_HEADERS_MAX];
    uint16_t value_at[PROTO_HTTP_HEADERS_MAX];
    char data[HTTPREQ_HEAD_MAX]; /* "url\0name\0value\0name\0value\0..." */
};

void httpreq_reset(struct httpreq *r);
/* A piece of the target, a header name or a header value. */
void httpreq_add(struct httpreq *r, enum httpreq_part part, const char *at, size_t len);
/* The headers are complete (on_headers_complete). */
void httpreq_end_headers(struct httpreq *r);
/* The request for the family, pointing into r (valid while r is unchanged). A request that broke
 * a bound is given with its method and body only, and false is returned. */
bool httpreq_view(const struct httpreq *r, const char *method, const uint8_t *body, size_t body_len,
                  struct proto_http_request *req,
                  struct proto_http_header headers[PROTO_HTTP_HEADERS_MAX]);
/* The request as canonical text ("METHOD target\nname: value\n...\n" then the body), cut at cap:
 * what an undecoded HTTP contact's head digest covers. Returns the bytes written; *whole is the
 * uncut length. */
size_t httpreq_text(const struct proto_http_request *req, uint8_t *out, size_t cap,
                    uint64_t *whole);

#endif
