/* net_undecoded_test.c -- the per-address bound on undecoded contacts: per_window records per
 * address per window, the rest counted into the address's next record, a new window admits
 * again, addresses are independent, and eviction under a flood of addresses is accounted. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "net/undecoded.h"

static struct net_addr ip(const char *s)
{
    struct net_addr a;
    assert_int_equal(net_addr_parse_ip(s, &a), 0);
    return a;
}

static void test_bound_and_suppressed(void **state)
{
    (void)state;
    struct undecoded_limit *l = undecoded_limit_new(1024, 3, 60000);
    struct net_addr a = ip("203.0.113.5"), b = ip("2001:db8::5");
    uint32_t sup;
    for (int i = 0; i < 3; i++) {
        assert_true(undecoded_limit_admit(l, &a, 1000 + i, &sup));
        assert_int_equal(sup, 0);
    }
    for (int i = 0; i < 7; i++) {
        assert_false(undecoded_limit_admit(l, &a, 2000 + i, &sup));
    }
    /* Another address is not affected. */
    assert_true(undecoded_limit_admit(l, &b, 2500, &sup));
    assert_int_equal(sup, 0);
    /* A new window: admitted again, carrying the 7 suppressed. */
    assert_true(undecoded_limit_admit(l, &a, 61001, &sup));
    assert_int_equal(sup, 7);
    assert_true(undecoded_limit_admit(l, &a, 61002, &sup));
    assert_int_equal(sup, 0);
    struct undecoded_limit_stats st;
    undecoded_limit_stats(l, &st);
    assert_int_equal(st.recorded, 6);
    assert_int_equal(st.suppressed, 7);
    undecoded_limit_free(l);
    /* per_window 0: no bound. */
    l = undecoded_limit_new(16, 0, 1000);
    for (int i = 0; i < 100; i++) {
        assert_true(undecoded_limit_admit(l, &a, 5, &sup));
    }
    undecoded_limit_free(l);
}

static void test_address_flood_is_bounded(void **state)
{
    (void)state;
    struct undecoded_limit *l = undecoded_limit_new(64, 1, 60000);
    uint32_t sup;
    uint64_t admitted = 0;
    /* 5,000 addresses, twice each, in a 64-slot table: memory stays bounded; each address's
     * second contact is suppressed while it is remembered, and evicted counts are accounted. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 5000; i++) {
            char s[32];
            snprintf(s, sizeof(s), "10.%d.%d.1", i / 250, i % 250);
            struct net_addr a = ip(s);
            admitted += undecoded_limit_admit(l, &a, 1000 + (uint64_t)i, &sup);
        }
    }
    struct undecoded_limit_stats st;
    undecoded_limit_stats(l, &st);
    assert_int_equal(st.recorded + st.suppressed, 10000);
    assert_int_equal(st.recorded, admitted);
    assert_true(st.forgotten <= st.suppressed);
    undecoded_limit_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bound_and_suppressed),
        cmocka_unit_test(test_address_flood_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
