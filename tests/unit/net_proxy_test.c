/* net_proxy_test.c -- PROXY v1/v2 parser and encoders against proxy-protocol.txt cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "net/proxy.h"

static const uint8_t SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static struct net_addr ip(const char *text, uint16_t port)
{
    struct net_addr a;
    assert_int_equal(net_addr_parse_ip(text, &a), 0);
    a.port = port;
    return a;
}

static ptrdiff_t parse(const void *buf, size_t len, struct proxy_header *h)
{
    char err[128] = "";
    ptrdiff_t r = proxy_parse(buf, len, h, err, sizeof(err));
    if (r < 0) {
        assert_true(err[0] != '\0'); /* every rejection says why */
    }
    return r;
}

static ptrdiff_t parse_str(const char *s, struct proxy_header *h)
{
    return parse(s, strlen(s), h);
}

/* Every strict prefix of a valid header must ask for more, never fail or succeed. */
static void assert_need_more_prefixes(const uint8_t *buf, size_t len)
{
    struct proxy_header h;
    for (size_t i = 0; i < len; i++) {
        ptrdiff_t r = parse(buf, i, &h);
        if (r != 0) {
            fprintf(stderr, "prefix %zu of %zu returned %td\n", i, len, r);
        }
        assert_int_equal(r, 0);
    }
}

static void assert_addr(const struct net_addr *a, const char *text, uint16_t port)
{
    struct net_addr want = ip(text, port);
    assert_true(net_addr_equal_ip(a, &want));
    assert_int_equal(a->port, port);
}

/* Builds a v2 header: ver_cmd, fam, body. */
static size_t v2(uint8_t *out, uint8_t ver_cmd, uint8_t fam, const uint8_t *body, size_t blen)
{
    memcpy(out, SIG, 12);
    out[12] = ver_cmd;
    out[13] = fam;
    out[14] = (uint8_t)(blen >> 8);
    out[15] = (uint8_t)blen;
    if (blen > 0) {
        memcpy(out + 16, body, blen);
    }
    return 16 + blen;
}

static const uint8_t INET_BLOCK[12] = {203, 0, 113, 7, 127, 0, 0, 1, 0xC3, 0x50, 0x1F, 0x90};

static void test_v1_tcp4(void **state)
{
    (void)state;
    const char *s = "PROXY TCP4 192.0.2.1 127.0.0.1 56324 443\r\nhello";
    struct proxy_header h;
    assert_int_equal(parse_str(s, &h), 42);
    assert_int_equal(h.version, 1);
    assert_int_equal(h.local, 0);
    assert_addr(&h.src, "192.0.2.1", 56324);
    assert_addr(&h.dst, "127.0.0.1", 443);
    assert_need_more_prefixes((const uint8_t *)s, 42);
}

static void test_v1_tcp6(void **state)
{
    (void)state;
    const char *s = "PROXY TCP6 2001:db8::1 ::1 0 65535\r\n";
    struct proxy_header h;
    assert_int_equal(parse_str(s, &h), (ptrdiff_t)strlen(s));
    assert_int_equal(h.src.family, AF_INET6);
    assert_addr(&h.src, "2001:db8::1", 0);
    assert_addr(&h.dst, "::1", 65535);
    assert_need_more_prefixes((const uint8_t *)s, strlen(s));
}

static void test_v1_unknown(void **state)
{
    (void)state;
    struct proxy_header h;
    assert_int_equal(parse_str("PROXY UNKNOWN\r\n", &h), 15);
    assert_int_equal(h.local, 1);
    assert_int_equal(h.src.family, 0);
    /* 2.1: the rest of an UNKNOWN line is ignored, even if it is not addresses */
    const char *s = "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_int_equal(parse_str(s, &h), (ptrdiff_t)strlen(s));
    assert_int_equal(h.local, 1);
}

static void test_v1_worst_case_length(void **state)
{
    (void)state;
    /* 107 bytes including CRLF is accepted; one more byte before the CRLF is not. */
    char line[160];
    const char *v6 = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
    int n = snprintf(line, sizeof(line), "PROXY UNKNOWN %s %s 65535 65535\r\n", v6, v6);
    assert_int_equal(n, 107);
    struct proxy_header h;
    assert_int_equal(parse(line, (size_t)n, &h), 107);
    n = snprintf(line, sizeof(line), "PROXY UNKNOWN %s %s 65535 655351\r\n", v6, v6);
    assert_int_equal(n, 108);
    assert_int_equal(parse(line, (size_t)n, &h), PROXY_E_INVALID);
    /* and a line that never ends is refused once 107 bytes are in */
    memset(line, 'A', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    assert_int_equal(parse(line, 106, &h), 0);
    assert_int_equal(parse(line, 107, &h), PROXY_E_INVALID);
    /* a TCP6 line at its 104-byte maximum */
    n = snprintf(line, sizeof(line), "PROXY TCP6 %s %s 65535 65535\r\n", v6, v6);
    assert_int_equal(n, 104);
    assert_int_equal(parse(line, (size_t)n, &h), 104);
}

static void test_v1_malformed(void **state)
{
    (void)state;
    static const char *bad[] = {
        "PROXY  TCP4 192.0.2.1 127.0.0.1 1 2\r\n",     /* double space */
        "PROXY TCP4  192.0.2.1 127.0.0.1 1 2\r\n",     /* double space */
        "PROXY TCP4 192.0.2.1 127.0.0.1 1  2\r\n",     /* double space */
        "PROXY TCP4 192.0.2.1 127.0.0.1 1 2 \r\n",     /* trailing space */
        "PROXY TCP4 192.0.2.1 127.0.0.1 01 2\r\n",     /* leading zero */
        "PROXY TCP4 192.0.2.1 127.0.0.1 1 0443\r\n",   /* leading zero */
        "PROXY TCP4 192.0.2.1 127.0.0.1 1 65536\r\n",  /* port > 65535 */
        "PROXY TCP4 192.0.2.1 127.0.0.1 99999 1\r\n",  /* port > 65535 */
        "PROXY TCP4 192.0.2.1 127.0.0.1 100000 1\r\n", /* six digits */
        "PROXY TCP4 192.0.2.1 127.0.0.1 -1 1\r\n",     /* sign */
        "PROXY TCP4 192.0.2.1 127.0.0.1 1\r\n",        /* missing field */
        "PROXY TCP4 192.0.2.1 127.0.0.1 1 2 3\r\n",    /* extra field */
        "PROXY TCP4 192.0.2.256 127.0.0.1 1 2\r\n",    /* bad IPv4 */
        "PROXY TCP4 192.0.2 127.0.0.1 1 2\r\n",        /* bad IPv4 */
        "PROXY TCP4 192.0.2.01 127.0.0.1 1 2\r\n",     /* leading zero in IPv4 */
        "PROXY TCP4 ::1 127.0.0.1 1 2\r\n",            /* IPv6 under TCP4 */
        "PROXY TCP6 192.0.2.1 ::1 1 2\r\n",            /* IPv4 under TCP6 */
        "PROXY TCP6 2001:db8:::1 ::1 1 2\r\n",         /* bad IPv6 */
        "PROXY TCP5 192.0.2.1 127.0.0.1 1 2\r\n",      /* unknown protocol */
        "PROXY UNKNOWNX\r\n",                          /* unknown protocol */
        "PROXY \r\n",                                  /* nothing */
        "PROXY TCP4 192.0.2.1 127.0.0.1 1 2\n",        /* bare LF */
        "PROXY TCP4 192.0.2.1 127.0.0.1 1 2\rX",       /* bare CR */
        "PROXY TCP4 192.0.2.1\n127.0.0.1 1 2\r\n",     /* bare LF inside */
        "PROXY TCP4 192.0.2.1\t127.0.0.1 1 2\r\n",     /* tab */
        "proxy TCP4 192.0.2.1 127.0.0.1 1 2\r\n",      /* case */
        "PROXYTCP4 192.0.2.1 127.0.0.1 1 2\r\n",       /* missing space */
        "GET / HTTP/1.1\r\n",                          /* not PROXY at all */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct proxy_header h;
        ptrdiff_t r = parse_str(bad[i], &h);
        if (r != PROXY_E_INVALID) {
            fprintf(stderr, "accepted or wrong error %td: %s\n", r, bad[i]);
        }
        assert_int_equal(r, PROXY_E_INVALID);
    }
}

static void test_v1_missing_crlf_needs_more(void **state)
{
    (void)state;
    struct proxy_header h;
    assert_int_equal(parse_str("PROXY TCP4 192.0.2.1 127.0.0.1 1 2", &h), 0);
    assert_int_equal(parse_str("PROXY TCP4 192.0.2.1 127.0.0.1 1 2\r", &h), 0);
}

static void test_v2_inet(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = v2(buf, 0x21, 0x11, INET_BLOCK, sizeof(INET_BLOCK));
    buf[n] = 0x99; /* application data after the header is not consumed */
    struct proxy_header h;
    assert_int_equal(parse(buf, n + 1, &h), 28);
    assert_int_equal(h.version, 2);
    assert_int_equal(h.local, 0);
    assert_addr(&h.src, "203.0.113.7", 50000);
    assert_addr(&h.dst, "127.0.0.1", 8080);
    assert_need_more_prefixes(buf, n);
}

static void test_v2_inet6(void **state)
{
    (void)state;
    uint8_t block[36] = {0};
    struct net_addr s = ip("2001:db8::7", 1), d = ip("::1", 2);
    memcpy(block, s.ip, 16);
    memcpy(block + 16, d.ip, 16);
    block[33] = 1;
    block[35] = 2;
    uint8_t buf[64];
    size_t n = v2(buf, 0x21, 0x21, block, sizeof(block));
    struct proxy_header h;
    assert_int_equal(parse(buf, n, &h), 52);
    assert_int_equal(h.src.family, AF_INET6);
    assert_addr(&h.src, "2001:db8::7", 1);
    assert_addr(&h.dst, "::1", 2);
    assert_need_more_prefixes(buf, n);
}

static void test_v2_local(void **state)
{
    (void)state;
    uint8_t buf[64];
    struct proxy_header h;
    /* LOCAL with UNSPEC and no body: a health check */
    size_t n = v2(buf, 0x20, 0x00, NULL, 0);
    assert_int_equal(parse(buf, n, &h), 16);
    assert_int_equal(h.local, 1);
    assert_int_equal(h.src.family, 0);
    /* LOCAL with an address block and UNIX family: still accepted, len bytes skipped */
    n = v2(buf, 0x20, 0x31, INET_BLOCK, 12);
    assert_int_equal(parse(buf, n, &h), 28);
    assert_int_equal(h.local, 1);
    assert_need_more_prefixes(buf, n);
}

static void test_v2_unsupported(void **state)
{
    (void)state;
    uint8_t buf[300] = {0};
    uint8_t body[216] = {0};
    struct proxy_header h;
    static const uint8_t fams[] = {0x00, 0x12, 0x22, 0x31, 0x32, 0x10, 0x20, 0x01};
    for (size_t i = 0; i < sizeof(fams); i++) {
        size_t n = v2(buf, 0x21, fams[i], body, sizeof(body));
        assert_int_equal(parse(buf, n, &h), PROXY_E_UNSUPPORTED);
    }
}

static void test_v2_malformed(void **state)
{
    (void)state;
    uint8_t buf[128];
    struct proxy_header h;
    size_t n;

    n = v2(buf, 0x21, 0x11, INET_BLOCK, 12);
    buf[3] ^= 0x01; /* bad signature */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    assert_int_equal(parse(buf, 4, &h), PROXY_E_INVALID); /* known bad before 16 bytes */

    n = v2(buf, 0x11, 0x11, INET_BLOCK, 12); /* version 1 nibble */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    n = v2(buf, 0x31, 0x11, INET_BLOCK, 12); /* version 3 */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    n = v2(buf, 0x22, 0x11, INET_BLOCK, 12); /* command 0x2 */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    n = v2(buf, 0x2F, 0x11, INET_BLOCK, 12); /* command 0xF */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    n = v2(buf, 0x21, 0x41, INET_BLOCK, 12); /* family 0x4 */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    n = v2(buf, 0x21, 0x13, INET_BLOCK, 12); /* transport 0x3 */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    n = v2(buf, 0x21, 0x11, INET_BLOCK, 11);               /* short address block */
    assert_int_equal(parse(buf, 16, &h), PROXY_E_INVALID); /* refused from the fixed part */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    uint8_t block6[36] = {0};
    n = v2(buf, 0x21, 0x21, block6, 12); /* an IPv4-sized block under INET6 */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);

    /* TLVs: a TLV header cut short, and a TLV value running past len */
    uint8_t body[32];
    memcpy(body, INET_BLOCK, 12);
    body[12] = 0x04;
    body[13] = 0x00;
    n = v2(buf, 0x21, 0x11, body, 14);
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    body[14] = 0x05; /* NOOP of 5 bytes, only 2 present */
    body[15] = 0xAA;
    body[16] = 0xAA;
    n = v2(buf, 0x21, 0x11, body, 17);
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    body[14] = 0x02; /* now it fits exactly */
    n = v2(buf, 0x21, 0x11, body, 17);
    assert_int_equal(parse(buf, n, &h), (ptrdiff_t)n);
}

/* CRC32C reference value for "123456789" is 0xE3069283 (RFC 3720 B.4 / iSCSI); we check it
 * through a header by computing the TLV over a known layout. */
static uint32_t crc32c_ref(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc & 1) ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
    }
    return ~crc;
}

static void test_v2_crc32c(void **state)
{
    (void)state;
    assert_int_equal(crc32c_ref((const uint8_t *)"123456789", 9), 0xE3069283u);
    uint8_t body[64];
    memcpy(body, INET_BLOCK, 12);
    /* ALPN "h2" then CRC32C */
    uint8_t tlvs[] = {0x01, 0x00, 0x02, 'h', '2', 0x03, 0x00, 0x04, 0, 0, 0, 0};
    memcpy(body + 12, tlvs, sizeof(tlvs));
    uint8_t buf[128];
    size_t n = v2(buf, 0x21, 0x11, body, 12 + sizeof(tlvs));
    uint32_t crc = crc32c_ref(buf, n); /* over the header with the CRC value zeroed */
    buf[n - 4] = (uint8_t)(crc >> 24);
    buf[n - 3] = (uint8_t)(crc >> 16);
    buf[n - 2] = (uint8_t)(crc >> 8);
    buf[n - 1] = (uint8_t)crc;
    struct proxy_header h;
    assert_int_equal(parse(buf, n, &h), (ptrdiff_t)n);
    assert_addr(&h.src, "203.0.113.7", 50000);
    assert_need_more_prefixes(buf, n);

    buf[n - 1] ^= 0x01; /* CRC mismatch */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    buf[n - 1] ^= 0x01;
    buf[16] ^= 0x80; /* a flipped address bit is caught by the CRC */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
    buf[16] ^= 0x80;
    assert_int_equal(parse(buf, n, &h), (ptrdiff_t)n);
    buf[n - 5] = 0x05; /* a CRC TLV must be 4 bytes long */
    assert_int_equal(parse(buf, n, &h), PROXY_E_INVALID);
}

static void test_detect(void **state)
{
    (void)state;
    assert_int_equal(proxy_detect((const uint8_t *)"", 0), 0);
    assert_int_equal(proxy_detect((const uint8_t *)"PRO", 3), 0);
    assert_int_equal(proxy_detect((const uint8_t *)"PROXY T", 7), 1);
    assert_int_equal(proxy_detect((const uint8_t *)"GET /", 5), -1);
    assert_int_equal(proxy_detect((const uint8_t *)"PROXX", 5), -1);
    assert_int_equal(proxy_detect(SIG, 6), 0);
    assert_int_equal(proxy_detect(SIG, 12), 1);
    uint8_t bad[12];
    memcpy(bad, SIG, 12);
    bad[11] = 0;
    assert_int_equal(proxy_detect(bad, 12), -1);
}

static void roundtrip(const char *s, const char *d, uint16_t sp, uint16_t dp)
{
    struct net_addr src = ip(s, sp), dst = ip(d, dp);
    uint8_t buf[PROXY_V1_MAX + 64];
    struct proxy_header h;
    for (int version = 1; version <= 2; version++) {
        ptrdiff_t n = version == 1 ? proxy_encode_v1(&src, &dst, buf, sizeof(buf))
                                   : proxy_encode_v2(&src, &dst, buf, sizeof(buf));
        assert_true(n > 0);
        assert_int_equal(parse(buf, (size_t)n, &h), n);
        assert_int_equal(h.version, version);
        assert_int_equal(h.local, 0);
        assert_addr(&h.src, s, sp);
        assert_addr(&h.dst, d, dp);
        assert_need_more_prefixes(buf, (size_t)n);
        /* too small a buffer is refused, not overrun */
        assert_int_equal(version == 1 ? proxy_encode_v1(&src, &dst, buf, (size_t)n - 1)
                                      : proxy_encode_v2(&src, &dst, buf, (size_t)n - 1),
                         -1);
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    roundtrip("203.0.113.7", "127.0.0.1", 50000, 8080);
    roundtrip("0.0.0.0", "255.255.255.255", 0, 65535);
    roundtrip("2001:db8::1", "::1", 1234, 443);
    roundtrip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe80::1", 65535, 65535);
    struct net_addr a = ip("192.0.2.1", 1), b = ip("::1", 2);
    uint8_t buf[128];
    assert_int_equal(proxy_encode_v1(&a, &b, buf, sizeof(buf)), -1); /* mixed families */
    assert_int_equal(proxy_encode_v2(&a, &b, buf, sizeof(buf)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_tcp4),      cmocka_unit_test(test_v1_tcp6),
        cmocka_unit_test(test_v1_unknown),   cmocka_unit_test(test_v1_worst_case_length),
        cmocka_unit_test(test_v1_malformed), cmocka_unit_test(test_v1_missing_crlf_needs_more),
        cmocka_unit_test(test_v2_inet),      cmocka_unit_test(test_v2_inet6),
        cmocka_unit_test(test_v2_local),     cmocka_unit_test(test_v2_unsupported),
        cmocka_unit_test(test_v2_malformed), cmocka_unit_test(test_v2_crc32c),
        cmocka_unit_test(test_detect),       cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
