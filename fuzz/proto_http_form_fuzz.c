/* proto_http_form_fuzz.c -- libFuzzer harness for PlugX's HTTP forms: a request built from the
 * input (method, target, up to PROTO_HTTP_HEADERS_MAX headers, body) through
 * plugx_http_checkin_parse and plugx_family.decode_http, then a reply. Must never crash, read
 * out of bounds or report a body or digest it did not produce. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proto/plugx/plugx.h"

static uint8_t scratch[PROTO_SCRATCH_SIZE];

/* Splits data at '\n' into NUL-terminated fields in buf: method, target, then name/value pairs;
 * after an empty line, the rest is the body. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char buf[16384];
    if (size >= sizeof(buf)) {
        return 0;
    }
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *fields[2 + 2 * PROTO_HTTP_HEADERS_MAX];
    size_t nfields = 0;
    char *p = buf;
    const uint8_t *body = NULL;
    size_t body_len = 0;
    while (nfields < sizeof(fields) / sizeof(fields[0])) {
        char *nl = memchr(p, '\n', size - (size_t)(p - buf));
        if (nl == NULL) {
            fields[nfields++] = p;
            break;
        }
        *nl = '\0';
        if (nl == p && nfields >= 2) {
            body = (const uint8_t *)(nl + 1);
            body_len = size - (size_t)(nl + 1 - buf);
            break;
        }
        fields[nfields++] = p;
        p = nl + 1;
    }
    if (nfields < 2) {
        return 0;
    }
    struct proto_http_header headers[PROTO_HTTP_HEADERS_MAX];
    size_t nh = 0;
    for (size_t i = 2; i + 1 < nfields && nh < PROTO_HTTP_HEADERS_MAX; i += 2) {
        headers[nh].name = fields[i];
        headers[nh].value = fields[i + 1];
        nh++;
    }
    struct proto_http_request req = {.method = fields[0],
                                     .url = fields[1],
                                     .headers = headers,
                                     .nheaders = nh,
                                     .body = body,
                                     .body_len = body_len};
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    struct plugx_http_checkin ck;
    char err[160];
    char text[512];
    if (plugx_http_checkin_parse(&req, &ck, err, sizeof(err)) == 0) {
        if (plugx_http_checkin_text(&ck, text, sizeof(text)) < 0) {
            __builtin_trap(); /* four 32-bit values and an id always fit */
        }
    }
    uint8_t state[64];
    plugx_family.conn_init(&cfg, state, size);
    struct proto_message msg;
    int r = plugx_family.decode_http(&cfg, state, &req, &msg, scratch, sizeof(scratch), err,
                                     sizeof(err));
    if (r == 1) {
        if (msg.body_len > sizeof(scratch)) {
            __builtin_trap();
        }
        uint8_t reply[256];
        ptrdiff_t n = plugx_family.encode_reply(&cfg, state, &msg, reply, sizeof(reply));
        if (n < 0 || (size_t)n > plugx_family.max_reply) {
            __builtin_trap();
        }
    }
    return 0;
}
