/* net_banlist_test.c -- which addresses are banned at the listeners, when, and for how long. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "net/banlist.h"

/* The filter's key for an IPv4 address given in host byte order. */
static struct synfilter_addr synfilter_addr_v4(uint32_t host_order)
{
    const uint8_t ip[4] = {(uint8_t)(host_order >> 24), (uint8_t)(host_order >> 16),
                           (uint8_t)(host_order >> 8), (uint8_t)host_order};
    return synfilter_addr_bytes(ip, sizeof(ip));
}

#define A 0xC0000201u /* 192.0.2.1 */
#define B 0xC0000202u

static bool refused(struct banlist *b, uint32_t v4, uint64_t now_ms)
{
    struct synfilter_addr a = synfilter_addr_v4(v4);
    return banlist_refused(b, &a, now_ms);
}

static bool is_v4(const struct synfilter_addr *a, uint32_t v4)
{
    struct synfilter_addr k = synfilter_addr_v4(v4);
    return synfilter_addr_cmp(a, &k) == 0;
}

static void test_bans_after_n_refusals_within_a_second(void **state)
{
    (void)state;
    struct banlist_limits lim = {.after = 5, .ban_ms = 10000, .max = 16};
    struct banlist *b = banlist_new(&lim);
    assert_non_null(b);
    uint64_t gen = 0;
    struct synfilter_addr out[16];
    size_t n = 99;
    assert_true(banlist_snapshot(b, 1000, &gen, out, &n)); /* the first snapshot: empty set */
    assert_int_equal(n, 0);
    assert_false(banlist_snapshot(b, 1000, &gen, out, &n));
    /* 4 refusals a second for 3 seconds: never 5 in one second. */
    for (uint64_t s = 1; s <= 3; s++) {
        for (int i = 0; i < 4; i++) {
            assert_false(refused(b, A, s * 1000 + (uint64_t)i * 200));
        }
    }
    assert_false(banlist_snapshot(b, 3999, &gen, out, &n));
    /* The fifth within one second bans, once. */
    for (int i = 0; i < 4; i++) {
        assert_false(refused(b, A, 5000 + (uint64_t)i));
    }
    assert_true(refused(b, A, 5004));
    assert_false(refused(b, A, 5005));
    assert_false(refused(b, B, 5006)); /* another address has its own count */
    assert_true(banlist_snapshot(b, 5010, &gen, out, &n));
    assert_int_equal(n, 1);
    assert_true(is_v4(&out[0], A));
    struct banlist_stats st;
    banlist_stats(b, &st);
    assert_int_equal(st.banned, 1);
    assert_int_equal(st.bans, 1);
    /* The ban lapses after ban_ms. */
    assert_false(banlist_snapshot(b, 15003, &gen, out, &n));
    assert_true(banlist_snapshot(b, 15004, &gen, out, &n));
    assert_int_equal(n, 0);
    banlist_free(b);
}

static void test_snapshot_is_sorted_and_bounded(void **state)
{
    (void)state;
    struct banlist_limits lim = {.after = 1, .ban_ms = 60000, .max = 3};
    struct banlist *b = banlist_new(&lim);
    uint32_t addrs[] = {0x0A000009u, 0x0A000001u, 0xC0000201u, 0x0A000005u};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(refused(b, addrs[i], 1000), i < 3);
    }
    uint64_t gen = 0;
    struct synfilter_addr out[3];
    size_t n = 0;
    assert_true(banlist_snapshot(b, 1000, &gen, out, &n));
    assert_int_equal(n, 3);
    assert_true(is_v4(&out[0], 0x0A000001u));
    assert_true(is_v4(&out[1], 0x0A000009u));
    assert_true(is_v4(&out[2], 0xC0000201u));
    struct banlist_stats st;
    banlist_stats(b, &st);
    assert_int_equal(st.full, 1);
    banlist_free(b);
}

static void test_refused_again_while_banned_extends(void **state)
{
    (void)state;
    struct banlist_limits lim = {.after = 2, .ban_ms = 1000, .max = 4};
    struct banlist *b = banlist_new(&lim);
    uint64_t gen = 0;
    struct synfilter_addr out[4];
    size_t n = 0;
    refused(b, A, 0);
    assert_true(refused(b, A, 1));
    assert_true(banlist_snapshot(b, 2, &gen, out, &n));
    /* SYNs that slipped through before the filter was installed, the next second. */
    refused(b, A, 1500);
    refused(b, A, 1501);
    assert_false(banlist_snapshot(b, 1100, &gen, out, &n)); /* still banned: no change */
    assert_true(banlist_snapshot(b, 2501, &gen, out, &n));
    assert_int_equal(n, 0);
    struct banlist_stats st;
    banlist_stats(b, &st);
    assert_int_equal(st.bans, 1);
    banlist_free(b);
}

/* IPv6 addresses are counted and banned on their own, and sort after IPv4 (::ffff:0:0/96). */
static void test_ipv6_addresses(void **state)
{
    (void)state;
    struct banlist_limits lim = {.after = 2, .ban_ms = 1000, .max = 4};
    struct banlist *b = banlist_new(&lim);
    uint8_t ip6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    struct synfilter_addr v6 = synfilter_addr_bytes(ip6, 16);
    ip6[15] = 2;
    struct synfilter_addr v6b = synfilter_addr_bytes(ip6, 16);
    assert_false(banlist_refused(b, &v6, 10));
    assert_false(banlist_refused(b, &v6b, 10)); /* one byte apart: its own count */
    assert_false(refused(b, A, 10));
    assert_true(banlist_refused(b, &v6, 11));
    assert_true(refused(b, A, 12));
    uint64_t gen = 0;
    struct synfilter_addr out[4];
    size_t n = 0;
    assert_true(banlist_snapshot(b, 20, &gen, out, &n));
    assert_int_equal(n, 2);
    assert_true(is_v4(&out[0], A));
    assert_int_equal(synfilter_addr_cmp(&out[1], &v6), 0);
    banlist_free(b);
}

static void test_never_bans_when_off(void **state)
{
    (void)state;
    struct banlist_limits lim = {.after = 0, .ban_ms = 1000, .max = 4};
    struct banlist *b = banlist_new(&lim);
    for (int i = 0; i < 1000; i++) {
        assert_false(refused(b, A, 7));
    }
    banlist_free(b);
}

/* Many distinct addresses in one second: memory is fixed, so some are not counted, but those
 * that are counted are banned and the banned set never exceeds max. */
static void test_many_addresses_in_one_second(void **state)
{
    (void)state;
    struct banlist_limits lim = {.after = 2, .ban_ms = 60000, .max = 1024};
    struct banlist *b = banlist_new(&lim);
    size_t banned = 0;
    for (int round = 0; round < 2; round++) {
        for (uint32_t i = 0; i < 20000; i++) {
            banned += refused(b, 0x0B000000u + i, 3000) ? 1 : 0;
        }
    }
    assert_int_equal(banned, 1024);
    struct banlist_stats st;
    banlist_stats(b, &st);
    assert_int_equal(st.banned, 1024);
    assert_true(st.full > 0);
    banlist_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bans_after_n_refusals_within_a_second),
        cmocka_unit_test(test_snapshot_is_sorted_and_bounded),
        cmocka_unit_test(test_refused_again_while_banned_extends),
        cmocka_unit_test(test_ipv6_addresses),
        cmocka_unit_test(test_never_bans_when_off),
        cmocka_unit_test(test_many_addresses_in_one_second),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
