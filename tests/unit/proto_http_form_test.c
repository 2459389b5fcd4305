/* proto_http_form_test.c -- PlugX over HTTP: the header-form check-in (every header naming a
 * build uses, both paths), the body form, and requests a PlugX bot never sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "proto/plugx/plugx.h"

static uint8_t scratch[PROTO_SCRATCH_SIZE];

static struct proto_http_request checkin(const struct proto_http_header *h, size_t n,
                                         const char *url)
{
    struct proto_http_request r = {.method = "POST", .url = url, .headers = h, .nheaders = n};
    return r;
}

/* The classic first check-in (ET Open sid 2017714 and kin): values 0, 0, 61456, 1. */
static const struct proto_http_header x_headers[] = {
    {"Accept", "*/*"},       {"X-Session", "0"},
    {"X-Status", "0"},       {"X-Size", "61456"},
    {"X-Sn", "1"},           {"User-Agent", "Mozilla/4.0 (compatible; MSIE 8.0)"},
    {"Content-Length", "0"},
};

static void test_parse_every_naming(void **state)
{
    (void)state;
    struct plugx_http_checkin ck;
    char err[128];
    struct proto_http_request r =
        checkin(x_headers, sizeof(x_headers) / sizeof(x_headers[0]), "/0A1B2C3D4E5F60718293A4B5");
    assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), 0);
    assert_int_equal(ck.url, PLUGX_HTTP_URL_HEX24);
    assert_string_equal(ck.id, "0A1B2C3D4E5F60718293A4B5");
    assert_int_equal(ck.names, PLUGX_HTTP_NAMES_X);
    assert_int_equal(ck.values[0], 0);
    assert_int_equal(ck.values[2], 61456);
    assert_int_equal(ck.values[3], 1);

    static const struct proto_http_header hhv[] = {
        {"HHV1", "7"}, {"HHV2", "0"}, {"HHV3", "61456"}, {"HHV4", "1"}};
    r = checkin(hhv, 4, "/update?id=00ab12cd");
    assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), 0);
    assert_int_equal(ck.url, PLUGX_HTTP_URL_UPDATE_ID);
    assert_string_equal(ck.id, "00ab12cd");
    assert_int_equal(ck.names, PLUGX_HTTP_NAMES_HHV);
    assert_int_equal(ck.values[0], 7);

    /* One common name followed by a digit, 0-based or 1-based. */
    static const struct proto_http_header digits0[] = {
        {"Host", "c2"}, {"Jvqx0", "0"}, {"Jvqx1", "0"}, {"Jvqx2", "61456"}, {"Jvqx3", "1"}};
    r = checkin(digits0, 5, "/FFFFFFFFFFFFFFFFFFFFFFFF");
    assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), 0);
    assert_int_equal(ck.names, PLUGX_HTTP_NAMES_DIGIT);
    assert_string_equal(ck.name_stem, "Jvqx");
    assert_int_equal(ck.values[2], 61456);
    static const struct proto_http_header digits1[] = {
        {"Ab1", "1"}, {"Ab2", "2"}, {"Ab3", "3"}, {"Ab4", "4"}};
    r = checkin(digits1, 4, "/FFFFFFFFFFFFFFFFFFFFFFFF");
    assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), 0);
    assert_int_equal(ck.values[3], 4);
}

static void test_parse_refuses_other_shapes(void **state)
{
    (void)state;
    struct plugx_http_checkin ck;
    char err[128];
    size_t nx = sizeof(x_headers) / sizeof(x_headers[0]);
    struct proto_http_request r = checkin(x_headers, nx, "/0A1B2C3D4E5F60718293A4B5");
    r.method = "GET";
    assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "GET"));
    /* Paths: 23 or 25 hex digits, a non-hex digit, another page. */
    const char *paths[] = {"/0A1B2C3D4E5F60718293A4B",
                           "/0A1B2C3D4E5F60718293A4B55",
                           "/0A1B2C3D4E5F60718293A4BZ",
                           "/index.html",
                           "/update?id=1234567",
                           "/update?id=123456789",
                           ""};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        r = checkin(x_headers, nx, paths[i]);
        assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), -1);
    }
    /* Three of four headers, out of order, or a value that is not a 32-bit decimal. */
    r = checkin(x_headers, 4, "/0A1B2C3D4E5F60718293A4B5");
    assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), -1);
    static const struct proto_http_header swapped[] = {
        {"X-Status", "0"}, {"X-Session", "0"}, {"X-Size", "61456"}, {"X-Sn", "1"}};
    r = checkin(swapped, 4, "/0A1B2C3D4E5F60718293A4B5");
    assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), -1);
    static const struct proto_http_header bad_values[][4] = {
        {{"X-Session", "-1"}, {"X-Status", "0"}, {"X-Size", "61456"}, {"X-Sn", "1"}},
        {{"X-Session", "0x10"}, {"X-Status", "0"}, {"X-Size", "61456"}, {"X-Sn", "1"}},
        {{"X-Session", "4294967296"}, {"X-Status", "0"}, {"X-Size", "61456"}, {"X-Sn", "1"}},
        {{"X-Session", ""}, {"X-Status", "0"}, {"X-Size", "61456"}, {"X-Sn", "1"}},
        {{"HHV1", "1"}, {"HHV2", "2"}, {"HHV4", "3"}, {"HHV3", "4"}},
        {{"Ab2", "1"}, {"Ab3", "2"}, {"Ab4", "3"}, {"Ab5", "4"}},
    };
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        r = checkin(bad_values[i], 4, "/0A1B2C3D4E5F60718293A4B5");
        assert_int_equal(plugx_http_checkin_parse(&r, &ck, err, sizeof(err)), -1);
    }
}

static void test_family_decode_http(void **state)
{
    (void)state;
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    cfg.http_reply_cipher = PLUGX_CIPHER_B;
    struct plugx_conn conn;
    plugx_family.conn_init(&cfg, &conn, 7);
    struct proto_message msg;
    char err[160];

    /* Header form: HELLO, then HEARTBEAT; the digest covers the canonical check-in text. */
    struct proto_http_request r =
        checkin(x_headers, sizeof(x_headers) / sizeof(x_headers[0]), "/0A1B2C3D4E5F60718293A4B5");
    assert_int_equal(
        plugx_family.decode_http(&cfg, &conn, &r, &msg, scratch, sizeof(scratch), err, sizeof(err)),
        1);
    assert_int_equal(msg.transport, CONTACT_TRANSPORT_HTTP_HEADER);
    assert_int_equal(msg.msg_type, CONTACT_MSG_HELLO);
    assert_int_equal(msg.has_identity, 0);
    const char want[] = "hex24 0A1B2C3D4E5F60718293A4B5\nX-Session: 0\nX-Status: 0\n"
                        "X-Size: 61456\nX-Sn: 1\n";
    assert_int_equal(msg.body_len, strlen(want));
    assert_memory_equal(msg.body, want, strlen(want));
    uint8_t sha[32];
    SHA256((const uint8_t *)want, strlen(want), sha);
    assert_memory_equal(msg.body_sha256, sha, 32);
    /* The reply is a poll in the configured cipher, decodable by a bot of that variant. */
    uint8_t reply[128];
    ptrdiff_t n = plugx_family.encode_reply(&cfg, &conn, &msg, reply, sizeof(reply));
    assert_true(n >= PLUGX_HEADER_SIZE);
    struct plugx_conn bot;
    memset(&bot, 0, sizeof(bot));
    bot.cipher = -1;
    struct plugx_packet pkt;
    assert_int_equal(
        plugx_decode(&cfg, &bot, reply, (size_t)n, &pkt, scratch, sizeof(scratch), NULL, 0), n);
    assert_int_equal(pkt.cipher, PLUGX_CIPHER_B);
    assert_int_equal(pkt.command, 0x1000);
    assert_int_equal(
        plugx_family.decode_http(&cfg, &conn, &r, &msg, scratch, sizeof(scratch), err, sizeof(err)),
        1);
    assert_int_equal(msg.msg_type, CONTACT_MSG_HEARTBEAT);

    /* Body form: one packet as the body; with the check-in headers it is the header form's
     * data request. */
    plugx_family.conn_init(&cfg, &conn, 8);
    uint8_t packet[64];
    ptrdiff_t plen =
        plugx_encode(&cfg, PLUGX_CIPHER_A, 77, 0x1000, 5, NULL, 0, false, packet, sizeof(packet));
    struct proto_http_request body = {
        .method = "POST", .url = "/anything", .body = packet, .body_len = (size_t)plen};
    assert_int_equal(plugx_family.decode_http(&cfg, &conn, &body, &msg, scratch, sizeof(scratch),
                                              err, sizeof(err)),
                     1);
    assert_int_equal(msg.transport, CONTACT_TRANSPORT_HTTP);
    assert_int_equal(msg.command, 0x1000);
    /* A body that is a packet and a bit more, or garbage: not decoded (net/ records it). */
    body.body_len = (size_t)plen - 1;
    assert_true(plugx_family.decode_http(&cfg, &conn, &body, &msg, scratch, sizeof(scratch), err,
                                         sizeof(err)) < 0);
    memset(packet, 0x41, sizeof(packet));
    body.body_len = sizeof(packet);
    plugx_family.conn_init(&cfg, &conn, 9);
    int rc = plugx_family.decode_http(&cfg, &conn, &body, &msg, scratch, sizeof(scratch), err,
                                      sizeof(err));
    assert_true(rc < 0 && rc != PROTO_E_NOT_THIS);

    /* What a scanner or a browser sends is not this family's. */
    static const struct proto_http_header browser[] = {{"Host", "c2.example"},
                                                       {"User-Agent", "curl/8"}};
    struct proto_http_request get = {
        .method = "GET", .url = "/", .headers = browser, .nheaders = 2};
    assert_int_equal(plugx_family.decode_http(&cfg, &conn, &get, &msg, scratch, sizeof(scratch),
                                              err, sizeof(err)),
                     PROTO_E_NOT_THIS);
    get.method = "POST";
    get.url = "/login.php";
    assert_int_equal(plugx_family.decode_http(&cfg, &conn, &get, &msg, scratch, sizeof(scratch),
                                              err, sizeof(err)),
                     PROTO_E_NOT_THIS);
}

static void test_family_table(void **state)
{
    (void)state;
    assert_ptr_equal(proto_family_find("plugx"), &plugx_family);
    assert_null(proto_family_find("plugX"));
    assert_null(proto_family_find(""));
    assert_ptr_equal(proto_family_at(0), &plugx_family);
    assert_null(proto_family_at(1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_every_naming),
        cmocka_unit_test(test_parse_refuses_other_shapes),
        cmocka_unit_test(test_family_decode_http),
        cmocka_unit_test(test_family_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
