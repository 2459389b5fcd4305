/* proto_detect_test.c -- cipher detection on a connection's first packet must not be fooled by a
 * header that merely looks plausible under an earlier family (about 1 in 20,000 keys do). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/plugx/plugx.h"

/* The e2e swarm hit this: a family-C hello whose header also decrypted plausibly under family A
 * was taken for A, and the connection's next packet failed. */
static void test_first_packet_detection_never_misses(void **state)
{
    (void)state;
    struct plugx_config cfg;
    plugx_config_default(&cfg);
    static uint8_t scratch[PROTO_SCRATCH_SIZE];
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    int wrong = 0;
    for (int cipher = PLUGX_CIPHER_B; cipher < PLUGX_CIPHER_COUNT; cipher++) {
        for (int i = 0; i < 400000; i++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            uint8_t pkt[64];
            ptrdiff_t n = plugx_encode(&cfg, (enum plugx_cipher)cipher, (uint32_t)rng,
                                       PLUGX_CMD_POLL, 0, NULL, 0, false, pkt, sizeof(pkt));
            assert_true(n == PLUGX_HEADER_SIZE);
            struct plugx_conn conn;
            memset(&conn, 0, sizeof(conn));
            conn.cipher = -1;
            struct plugx_packet out;
            ptrdiff_t r =
                plugx_decode(&cfg, &conn, pkt, (size_t)n, &out, scratch, sizeof(scratch), NULL, 0);
            if (r != n || conn.cipher != cipher || out.command != PLUGX_CMD_POLL) {
                wrong++;
            }
        }
    }
    assert_int_equal(wrong, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_packet_detection_never_misses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
