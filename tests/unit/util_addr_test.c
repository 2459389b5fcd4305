/* util_addr_test.c -- endpoint and CIDR parsing, formatting and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <netinet/in.h>

#include "util/addr.h"

static void test_hostport(void **state)
{
    (void)state;
    struct net_addr a;
    char err[128];
    char ip[NET_ADDR_STRLEN];
    assert_int_equal(net_addr_parse_hostport("127.0.0.1:443", &a, err, sizeof(err)), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.port, 443);
    net_addr_format_ip(&a, ip);
    assert_string_equal(ip, "127.0.0.1");
    assert_int_equal(net_addr_parse_hostport("[::1]:8443", &a, err, sizeof(err)), 0);
    assert_int_equal(a.family, AF_INET6);
    assert_int_equal(a.port, 8443);
    const char *bad[] = {"127.0.0.1",     "::1:443",     "[::1]443",
                         "1.2.3.4:65536", "1.2.3.4:-1",  "host:80",
                         "[::1]:",        "1.2.3.4:80x", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(net_addr_parse_hostport(bad[i], &a, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
    }
}

static void test_v4_mapped_normalised(void **state)
{
    (void)state;
    struct sockaddr_in6 sin6;
    memset(&sin6, 0, sizeof(sin6));
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(99);
    inet_pton(AF_INET6, "::ffff:192.0.2.5", &sin6.sin6_addr);
    struct net_addr a;
    assert_int_equal(net_addr_from_sockaddr(&a, (struct sockaddr *)&sin6), 0);
    assert_int_equal(a.family, AF_INET);
    assert_int_equal(a.port, 99);
    struct net_addr b;
    net_addr_parse_ip("192.0.2.5", &b);
    assert_true(net_addr_equal_ip(&a, &b));
}

static void test_cidr(void **state)
{
    (void)state;
    struct net_cidr c;
    struct net_addr a;
    char err[128];
    assert_int_equal(net_cidr_parse("127.0.1.0/24", &c, err, sizeof(err)), 0);
    net_addr_parse_ip("127.0.1.200", &a);
    assert_true(net_cidr_contains(&c, &a));
    net_addr_parse_ip("127.0.2.1", &a);
    assert_false(net_cidr_contains(&c, &a));
    assert_int_equal(net_cidr_parse("10.1.2.3/9", &c, err, sizeof(err)), 0);
    net_addr_parse_ip("10.127.255.255", &a);
    assert_true(net_cidr_contains(&c, &a));
    net_addr_parse_ip("10.128.0.0", &a);
    assert_false(net_cidr_contains(&c, &a));
    assert_int_equal(net_cidr_parse("2001:db8::/33", &c, err, sizeof(err)), 0);
    net_addr_parse_ip("2001:db8:7fff::1", &a);
    assert_true(net_cidr_contains(&c, &a));
    net_addr_parse_ip("2001:db8:8000::1", &a);
    assert_false(net_cidr_contains(&c, &a));
    net_addr_parse_ip("10.0.0.1", &a);
    assert_false(net_cidr_contains(&c, &a)); /* family mismatch */
    assert_int_equal(net_cidr_parse("0.0.0.0/0", &c, err, sizeof(err)), 0);
    assert_true(net_cidr_contains(&c, &a));
    assert_int_equal(net_cidr_parse("192.0.2.1", &c, err, sizeof(err)), 0);
    assert_int_equal(c.prefix, 32);
    const char *bad[] = {"1.2.3.4/33", "::/129", "1.2.3.4/", "1.2.3.4/x", "x/8", "1.2.3.4/8/8"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(net_cidr_parse(bad[i], &c, err, sizeof(err)), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostport),
        cmocka_unit_test(test_v4_mapped_normalised),
        cmocka_unit_test(test_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
