/* net_ipcount_test.c -- per-address connection cap and token bucket. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/ipcount.h"

static struct net_addr ip(const char *text)
{
    struct net_addr a;
    net_addr_parse_ip(text, &a);
    a.port = 1234;
    return a;
}

static void test_cap_per_address(void **state)
{
    (void)state;
    struct ipcount *t = ipcount_new(100);
    struct ipcount_limits lim = {.max_open = 3, .rate = 0, .burst = 1};
    struct net_addr a = ip("198.51.100.1"), b = ip("198.51.100.2");
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ipcount_acquire(t, &a, &lim, 0), IPCOUNT_OK);
    }
    assert_int_equal(ipcount_acquire(t, &a, &lim, 0), IPCOUNT_TOO_MANY);
    assert_int_equal(ipcount_acquire(t, &b, &lim, 0), IPCOUNT_OK); /* others unaffected */
    a.port = 9;                                                    /* the port does not matter */
    ipcount_release(t, &a);
    assert_int_equal(ipcount_acquire(t, &a, &lim, 0), IPCOUNT_OK);
    ipcount_free(t);
}

static void test_rate_per_address(void **state)
{
    (void)state;
    struct ipcount *t = ipcount_new(100);
    struct ipcount_limits lim = {.max_open = 1000, .rate = 10, .burst = 5};
    struct net_addr a = ip("2001:db8::1");
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ipcount_acquire(t, &a, &lim, 1000), IPCOUNT_OK);
    }
    assert_int_equal(ipcount_acquire(t, &a, &lim, 1000), IPCOUNT_TOO_FAST);
    assert_int_equal(ipcount_acquire(t, &a, &lim, 1099), IPCOUNT_TOO_FAST);
    assert_int_equal(ipcount_acquire(t, &a, &lim, 1100), IPCOUNT_OK); /* 10/s: one per 100 ms */
    /* Over 10 s at most rate*T + burst are admitted. */
    int admitted = 0;
    for (uint64_t ms = 1100; ms < 11100; ms++) {
        for (int k = 0; k < 3; k++) {
            if (ipcount_acquire(t, &a, &lim, ms) == IPCOUNT_OK) {
                admitted++;
            }
        }
    }
    assert_true(admitted <= 10 * 10 + 5);
    assert_true(admitted >= 10 * 10 - 1);
    ipcount_free(t);
}

static void test_idle_addresses_forgotten_and_bounded(void **state)
{
    (void)state;
    struct ipcount *t = ipcount_new(3);
    struct ipcount_limits lim = {.max_open = 10, .rate = 1000, .burst = 2};
    struct net_addr a = ip("192.0.2.1"), b = ip("192.0.2.2"), c = ip("192.0.2.3"),
                    d = ip("192.0.2.4");
    assert_int_equal(ipcount_acquire(t, &a, &lim, 0), IPCOUNT_OK);
    assert_int_equal(ipcount_acquire(t, &b, &lim, 0), IPCOUNT_OK);
    assert_int_equal(ipcount_acquire(t, &c, &lim, 0), IPCOUNT_OK);
    assert_int_equal(ipcount_tracked(t), 3);
    assert_int_equal(ipcount_acquire(t, &d, &lim, 0), IPCOUNT_NOMEM); /* bounded */
    ipcount_release(t, &a);
    ipcount_release(t, &b);
    /* Idle and refilled (1 ms at 1000/s): a sweep of every shard forgets them. */
    for (unsigned s = 0; s < 64; s++) {
        ipcount_sweep(t, &lim, 10, s);
    }
    assert_int_equal(ipcount_tracked(t), 1); /* c still has a connection open */
    assert_int_equal(ipcount_acquire(t, &d, &lim, 10), IPCOUNT_OK);
    ipcount_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cap_per_address),
        cmocka_unit_test(test_rate_per_address),
        cmocka_unit_test(test_idle_addresses_forgotten_and_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
