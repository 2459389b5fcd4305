/* swarm_wire_test.c -- the swarm's wire: both HTTP request forms byte for byte, the response
 * reader (whole, split, pipelined, chunked, hostile), unknown-variant bytes and bot kinds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swarm/swarm.h"

#define UA "User-Agent: Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.1; Trident/4.0)\r\n"

static uint8_t scratch[PROTO_SCRATCH_SIZE];

static void expect_bytes(const uint8_t *got, ptrdiff_t n, const char *want, size_t want_len)
{
    if (n != (ptrdiff_t)want_len || memcmp(got, want, want_len) != 0) {
        fprintf(stderr, "got  %.*s\nwant %.*s\n", (int)(n > 0 ? n : 0), (const char *)got,
                (int)want_len, want);
    }
    assert_int_equal(n, (ptrdiff_t)want_len);
    assert_memory_equal(got, want, want_len);
}

static void test_header_request_check_in(void **state)
{
    (void)state;
    uint8_t out[1024];
    const uint32_t uri[3] = {0x0123ABCD, 0xDEADBEEF, 0x00000007};
    const uint32_t first[4] = {0, 0, 61456, 1};
    struct swarm_header_style x = {.names = SWARM_NAMES_X, .uri = SWARM_URI_HEX24};
    static const char want_x[] = "POST /0123ABCDDEADBEEF00000007 HTTP/1.1\r\n"
                                 "Accept: */*\r\n"
                                 "X-Session: 0\r\nX-Status: 0\r\nX-Size: 61456\r\nX-Sn: 1\r\n" UA
                                 "Host: 127.0.0.1:4443\r\nContent-Length: 0\r\n"
                                 "Connection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n";
    ptrdiff_t n =
        swarm_http_header_request(&x, "127.0.0.1:4443", uri, first, NULL, 0, out, sizeof(out));
    expect_bytes(out, n, want_x, sizeof(want_x) - 1);
    assert_null(strstr((const char *)out, "Referer"));

    struct swarm_header_style hhv = {.names = SWARM_NAMES_HHV, .uri = SWARM_URI_UPDATE};
    static const char want_hhv[] = "POST /update?id=0123abcd HTTP/1.1\r\n"
                                   "Accept: */*\r\n"
                                   "HHV1: 0\r\nHHV2: 0\r\nHHV3: 61456\r\nHHV4: 1\r\n" UA
                                   "Host: [::1]:80\r\nContent-Length: 0\r\n"
                                   "Connection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n";
    n = swarm_http_header_request(&hhv, "[::1]:80", uri, first, NULL, 0, out, sizeof(out));
    expect_bytes(out, n, want_hhv, sizeof(want_hhv) - 1);

    /* numbered names from 0, a later request with a body (the machine-information answer) */
    struct swarm_header_style num = {
        .names = SWARM_NAMES_NUMBERED, .uri = SWARM_URI_HEX24, .first_digit = 0, .stem = "QWER"};
    const uint32_t later[4] = {0, 0, 61456, 3};
    static const char want_num[] = "POST /0123ABCDDEADBEEF00000007 HTTP/1.1\r\n"
                                   "Accept: */*\r\n"
                                   "QWER0: 0\r\nQWER1: 0\r\nQWER2: 61456\r\nQWER3: 3\r\n" UA
                                   "Host: h:1\r\nContent-Length: 5\r\n"
                                   "Connection: Keep-Alive\r\nCache-Control: no-cache\r\n\r\n"
                                   "\x01\x02\x00\x04\x05";
    n = swarm_http_header_request(&num, "h:1", uri, later, (const uint8_t *)"\x01\x02\x00\x04\x05",
                                  5, out, sizeof(out));
    expect_bytes(out, n, want_num, sizeof(want_num) - 1);
    num.first_digit = 1;
    n = swarm_http_header_request(&num, "h:1", uri, later, NULL, 0, out, sizeof(out));
    assert_true(n > 0);
    assert_non_null(strstr((const char *)out, "QWER1: 0\r\nQWER2: 0\r\nQWER3: 61456\r\nQWER4: 3"));

    /* too small a buffer is refused at every size, never overrun */
    for (size_t cap = 0; cap < sizeof(want_x) - 1; cap++) {
        assert_int_equal(
            swarm_http_header_request(&x, "127.0.0.1:4443", uri, first, NULL, 0, out, cap), -1);
    }
    assert_int_equal(swarm_http_header_request(&num, "h:1", uri, later, (const uint8_t *)"abcde", 5,
                                               out, sizeof(want_num) - 2),
                     -1);
}

static void test_body_request(void **state)
{
    (void)state;
    uint8_t out[512];
    static const char want[] = "POST / HTTP/1.1\r\nHost: 127.0.0.1:9\r\n" UA
                               "Content-Type: application/octet-stream\r\nContent-Length: 3\r\n"
                               "Connection: Keep-Alive\r\n\r\nabc";
    ptrdiff_t n =
        swarm_http_body_request("127.0.0.1:9", (const uint8_t *)"abc", 3, out, sizeof(out));
    expect_bytes(out, n, want, sizeof(want) - 1);
    assert_int_equal(
        swarm_http_body_request("127.0.0.1:9", (const uint8_t *)"abc", 3, out, sizeof(want) - 2),
        -1);
}

/* Feeds text in pieces of `step` bytes; returns complete responses seen, their bodies joined
 * with '|' in bodies. -1 on a reader error. */
static int read_all(const char *text, size_t len, size_t step, char *bodies, size_t cap,
                    bool *keep_alive)
{
    struct swarm_http_reader r;
    swarm_http_reader_init(&r);
    int responses = 0;
    size_t off = 0, out = 0;
    bodies[0] = '\0';
    while (off < len) {
        size_t piece = len - off < step ? len - off : step;
        const uint8_t *p = (const uint8_t *)text + off;
        while (piece > 0) {
            char err[160];
            ptrdiff_t used = swarm_http_reader_feed(&r, p, piece, err, sizeof(err));
            if (used < 0) {
                assert_non_null(strstr(err, "HTTP response"));
                swarm_http_reader_free(&r);
                return -1;
            }
            p += used;
            piece -= (size_t)used;
            off += (size_t)used;
            if (r.complete) {
                responses++;
                *keep_alive = r.keep_alive;
                assert_true(out + r.body_len + 1 < cap);
                memcpy(bodies + out, r.body, r.body_len);
                out += r.body_len;
                bodies[out++] = '|';
                bodies[out] = '\0';
            } else {
                assert_int_equal(piece, 0);
            }
        }
    }
    swarm_http_reader_free(&r);
    return responses;
}

static void test_reader_responses(void **state)
{
    (void)state;
    char bodies[512];
    bool keep = false;
    static const char two[] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nabcd"
                              "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "3\r\nxyz\r\n2\r\nuv\r\n0\r\n\r\n"
                              "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nZ";
    for (size_t step = 1; step <= sizeof(two); step++) {
        assert_int_equal(read_all(two, sizeof(two) - 1, step, bodies, sizeof(bodies), &keep), 4);
        assert_string_equal(bodies, "abcd||xyzuv|Z|");
        assert_false(keep); /* HTTP/1.0 without keep-alive: the last response ends it */
    }
    static const char close_it[] =
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
    assert_int_equal(read_all(close_it, sizeof(close_it) - 1, 7, bodies, sizeof(bodies), &keep), 1);
    assert_false(keep);
    static const char keep_it[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_int_equal(read_all(keep_it, sizeof(keep_it) - 1, 100, bodies, sizeof(bodies), &keep), 1);
    assert_true(keep);
}

static void test_reader_refuses(void **state)
{
    (void)state;
    char bodies[512];
    bool keep;
    const char *bad[] = {
        "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbody to the end of the connection",
        "HTTP/1.1 200 OK\r\nContent-Length: 999999999\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd",
        "\x16\x03\x01\x02\x00garbage that is no HTTP at all\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int got = read_all(bad[i], strlen(bad[i]), 5, bodies, sizeof(bodies), &keep);
        if (got != -1) {
            fprintf(stderr, "accepted hostile response %zu\n", i);
        }
        assert_int_equal(got, -1);
    }
    /* a chunked body growing past the limit is cut off, not stored */
    struct swarm_http_reader r;
    swarm_http_reader_init(&r);
    static const char head[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
    char err[160];
    assert_int_equal(
        swarm_http_reader_feed(&r, (const uint8_t *)head, sizeof(head) - 1, err, sizeof(err)),
        (ptrdiff_t)(sizeof(head) - 1));
    static char chunk[8 + 65536 + 2];
    int hl = snprintf(chunk, sizeof(chunk), "10000\r\n");
    memset(chunk + hl, 'x', 65536);
    memcpy(chunk + hl + 65536, "\r\n", 2);
    ptrdiff_t rc = 0;
    for (int k = 0; k < 4 && rc >= 0; k++) {
        rc = swarm_http_reader_feed(&r, (const uint8_t *)chunk, (size_t)hl + 65538, err,
                                    sizeof(err));
    }
    assert_int_equal(rc, SWARM_E_PROTOCOL);
    assert_non_null(strstr(err, "limit"));
    assert_true(r.body_len <= SWARM_HTTP_BODY_MAX);
    swarm_http_reader_free(&r);
}

static void test_unknown_bytes_never_decode(void **state)
{
    (void)state;
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    uint8_t out[4096];
    size_t shapes[2] = {0, 0};
    for (uint64_t d = 0; d < 3000; d++) {
        int kind = (int)(d & 1);
        ptrdiff_t n = swarm_unknown_bytes(&cfg, kind, d * 0x9E37ull, out, sizeof(out), scratch,
                                          sizeof(scratch));
        assert_true(n >= 16);
        assert_false(swarm_bytes_decode(&cfg, out, (size_t)n, scratch, sizeof(scratch)));
        if (kind == SWARM_UNKNOWN_FRAMING) {
            assert_int_equal((size_t)(out[0] | out[1] << 8) + 4, (size_t)n);
        }
        shapes[kind]++;
    }
    assert_int_equal(shapes[0], 1500);
    /* the check itself takes real PlugX for PlugX, under every family */
    for (int c = 0; c < PLUGX_CIPHER_COUNT; c++) {
        ptrdiff_t n = plugx_encode(&cfg, (enum plugx_cipher)c, 0xC0FFEE + (uint32_t)c,
                                   PLUGX_CMD_POLL, 0, NULL, 0, false, out, sizeof(out));
        assert_true(swarm_bytes_decode(&cfg, out, (size_t)n, scratch, sizeof(scratch)));
        /* ... and a plausible header still waiting for its body */
        n = plugx_encode(&cfg, (enum plugx_cipher)c, 0xC0FFEE, PLUGX_CMD_POLL, 0,
                         (const uint8_t *)"0123456789", 10, false, out, sizeof(out));
        assert_true(swarm_bytes_decode(&cfg, out, (size_t)n - 3, scratch, sizeof(scratch)));
    }
    /* the C packet sealed with the old default constants, which sinkd no longer has, is unknown */
    struct plugx_config old = cfg;
    old.c_consts[0] = 0x013377BA;
    old.c_consts[1] = 0x1B1;
    old.c_consts[2] = 0x10F1;
    old.c_consts[3] = 0x70C3;
    ptrdiff_t n = plugx_encode(&old, PLUGX_CIPHER_C, 0x55AA55AA, PLUGX_CMD_POLL, 0, NULL, 0, false,
                               out, sizeof(out));
    assert_false(swarm_bytes_decode(&cfg, out, (size_t)n, scratch, sizeof(scratch)));
}

static void test_bot_kinds(void **state)
{
    (void)state;
    struct swarm_countries c;
    struct swarm_ranges r;
    char err[256];
    static const char countries[] = "NG,1\n";
    static const char ranges[] = "41.58.0.0,41.58.255.255,NG\n";
    FILE *in = fmemopen((void *)countries, strlen(countries), "r");
    assert_int_equal(swarm_countries_read(in, "c", &c, err, sizeof(err)), 0);
    fclose(in);
    in = fmemopen((void *)ranges, strlen(ranges), "r");
    assert_int_equal(swarm_ranges_read(in, "r", &r, err, sizeof(err)), 0);
    fclose(in);

    struct swarm_options o;
    swarm_options_default(&o);
    assert_int_equal(o.http_form, SWARM_HTTP_FORM_BODY);
    assert_int_equal(o.unknown_share, 0);
    assert_int_equal(o.volunteer_share, 0);
    assert_int_equal(o.uninstall_command, PLUGX_CMD_UNINSTALL_DEFAULT);
    /* defaults: raw or body form only, nobody volunteers */
    o.http_share = 0.5;
    unsigned kinds[SWARM_KIND_COUNT] = {0};
    for (uint32_t i = 0; i < 2000; i++) {
        struct swarm_bot b;
        swarm_bot_make(&o, &c, &r, i, &b);
        kinds[b.kind]++;
        assert_false(b.volunteer);
        assert_int_equal(b.kind == SWARM_KIND_HTTP_BODY, b.http);
    }
    assert_int_equal(kinds[SWARM_KIND_HTTP_HEADER] + kinds[SWARM_KIND_UNKNOWN], 0);

    /* the worm preset: 80% HTTP half of it header form, 2% unknown */
    swarm_options_preset_worm(&o);
    assert_int_equal(o.cipher, PLUGX_CIPHER_A); /* one build, one family */
    memset(kinds, 0, sizeof(kinds));
    unsigned names[3] = {0}, uris[2] = {0};
    for (uint32_t i = 0; i < 10000; i++) {
        struct swarm_bot b;
        swarm_bot_make(&o, &c, &r, i, &b);
        kinds[b.kind]++;
        if (b.kind == SWARM_KIND_HTTP_HEADER) {
            assert_true(b.header.names <= SWARM_NAMES_NUMBERED);
            names[b.header.names]++;
            uris[b.header.uri]++;
            assert_int_equal(strlen(b.header.stem), 4);
            for (int k = 0; k < 4; k++) {
                assert_true(b.header.stem[k] >= 'A' && b.header.stem[k] <= 'Z');
            }
            assert_true(b.header.first_digit <= 1);
        }
        /* the same index is the same bot */
        struct swarm_bot again;
        swarm_bot_make(&o, &c, &r, i, &again);
        assert_int_equal(again.kind, b.kind);
        assert_memory_equal(&again.header, &b.header, sizeof(b.header));
    }
    assert_in_range(kinds[SWARM_KIND_UNKNOWN], 120, 290);
    assert_in_range(kinds[SWARM_KIND_RAW], 1750, 2250);
    assert_in_range(kinds[SWARM_KIND_HTTP_HEADER], 3600, 4200);
    assert_in_range(kinds[SWARM_KIND_HTTP_BODY], 3600, 4200);
    for (int k = 0; k < 3; k++) {
        assert_in_range(names[k], 1100, 1600); /* mix: a third each */
    }
    assert_int_equal(uris[SWARM_URI_UPDATE], 0); /* default hex24 */
    o.header_uri = SWARM_URI_MIX;
    o.header_names = SWARM_NAMES_HHV;
    o.volunteer_share = 1;
    for (uint32_t i = 0; i < 400; i++) {
        struct swarm_bot b;
        swarm_bot_make(&o, &c, &r, i, &b);
        assert_true(b.volunteer);
        if (b.kind == SWARM_KIND_HTTP_HEADER) {
            assert_int_equal(b.header.names, SWARM_NAMES_HHV);
            uris[b.header.uri]++;
        }
    }
    assert_true(uris[SWARM_URI_UPDATE] > 40);
    swarm_countries_free(&c);
    swarm_ranges_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_request_check_in),    cmocka_unit_test(test_body_request),
        cmocka_unit_test(test_reader_responses),           cmocka_unit_test(test_reader_refuses),
        cmocka_unit_test(test_unknown_bytes_never_decode), cmocka_unit_test(test_bot_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
