/* util_hex_test.c -- hex encoding round trip and strict decoding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/hex.h"

static void test_round_trip(void **state)
{
    (void)state;
    uint8_t in[16], out[16];
    char text[33];
    for (int i = 0; i < 16; i++) {
        in[i] = (uint8_t)(i * 17 + 3);
    }
    hex_encode(in, sizeof(in), text);
    assert_string_equal(text, "031425364758697a8b9cadbecfe0f102");
    assert_int_equal(hex_decode(text, out, sizeof(out)), 0);
    assert_memory_equal(in, out, sizeof(in));
}

static void test_strict_decoding(void **state)
{
    (void)state;
    uint8_t out[2];
    assert_int_equal(hex_decode("0aff", out, 2), 0);
    assert_int_equal(out[0], 0x0a);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(hex_decode("0AFF", out, 2), -1); /* one spelling per value */
    assert_int_equal(hex_decode("0af", out, 2), -1);
    assert_int_equal(hex_decode("0aff0", out, 2), -1);
    assert_int_equal(hex_decode("0ag0", out, 2), -1);
    assert_int_equal(hex_decode("", out, 2), -1);
    assert_int_equal(hex_decode(NULL, out, 2), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_strict_decoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
