/* util_keyset_test.c -- the 16-byte key set against a plain model: random adds, lookups and
 * removals (removal's backward shift keeps every remaining key reachable, wrap-around included),
 * and the shared variant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "util/keyset.h"

#define UNIVERSE 300 /* few distinct keys, so adds, hits and removals all happen often */

static void key_of(unsigned i, uint8_t k[KEYSET_KEY])
{
    memset(k, 0, KEYSET_KEY);
    /* Similar keys: collisions and long runs in a small table. */
    k[0] = (uint8_t)i;
    k[1] = (uint8_t)(i >> 8);
    k[15] = (uint8_t)(i * 7);
}

static void test_against_model(void **state)
{
    (void)state;
    struct keyset s = {0};
    bool model[UNIVERSE] = {false};
    size_t n = 0;
    uint64_t x = 88172645463325252ull;
    for (int step = 0; step < 200000; step++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned i = (unsigned)(x % UNIVERSE);
        uint8_t k[KEYSET_KEY];
        key_of(i, k);
        switch ((x >> 32) % 3) {
        case 0:
            assert_int_equal(keyset_add(&s, k), model[i] ? 0 : 1);
            n += !model[i];
            model[i] = true;
            break;
        case 1:
            assert_int_equal(keyset_remove(&s, k), model[i] ? 1 : 0);
            n -= model[i];
            model[i] = false;
            break;
        default:
            break;
        }
        if (step % 997 == 0) {
            for (unsigned j = 0; j < UNIVERSE; j++) {
                key_of(j, k);
                assert_int_equal(keyset_contains(&s, k), model[j]);
            }
        }
        assert_int_equal(s.n, n);
    }
    keyset_free(&s);
}

static void test_shared(void **state)
{
    (void)state;
    struct keyset_shared *s = keyset_shared_new();
    assert_non_null(s);
    uint8_t k[KEYSET_KEY];
    for (unsigned i = 0; i < 1000; i++) {
        key_of(i, k);
        assert_int_equal(keyset_shared_add(s, k), 1);
    }
    assert_int_equal(keyset_shared_count(s), 1000);
    for (unsigned i = 0; i < 1000; i += 2) {
        key_of(i, k);
        assert_int_equal(keyset_shared_remove(s, k), 1);
        assert_int_equal(keyset_shared_remove(s, k), 0);
    }
    for (unsigned i = 0; i < 1000; i++) {
        key_of(i, k);
        assert_int_equal(keyset_shared_contains(s, k), i % 2 == 1);
    }
    assert_int_equal(keyset_shared_count(s), 500);
    keyset_shared_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_model),
        cmocka_unit_test(test_shared),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
