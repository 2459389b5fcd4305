/* net_rollup_test.c -- the heartbeat roll-up and presence table: a bot's first poll is a leaf,
 * later ones count; a record per interval with the exact count, first and last time and the
 * digest chain; an idle interval ends the presence; a full table leaves polls as leaves; a new
 * policy generation makes a present bot due for a decision; a record names the leaf that describes
 * its bot only while that leaf says the same and is of the record's seal epoch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "net/rollup.h"

#define S 1000000ull /* one second in microseconds */

static struct contact poll_at(uint64_t t, uint8_t body_byte)
{
    struct contact c;
    memset(&c, 0, sizeof(c));
    c.time_us = t;
    net_addr_parse_ip("198.51.100.9", &c.src);
    snprintf(c.family, sizeof(c.family), "plugx");
    snprintf(c.cc, sizeof(c.cc), "NG");
    c.asn = 29465;
    memset(c.body_sha256, body_byte, 32);
    return c;
}

static void test_counts_and_records(void **state)
{
    (void)state;
    struct rollup *r = rollup_new(60 * S, 1000);
    uint8_t key[16] = {1, 2, 3};
    bool due;
    struct contact c = poll_at(100 * S, 0xA1);
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_FIRST);
    assert_false(due);
    uint8_t chain[32] = {0};
    for (int i = 1; i <= 5; i++) {
        c = poll_at(100 * S + (uint64_t)i * S, (uint8_t)i);
        assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_COUNTED);
        assert_false(due);
        uint8_t buf[64];
        memcpy(buf, chain, 32);
        memcpy(buf + 32, c.body_sha256, 32);
        SHA256(buf, 64, chain);
    }
    struct rollup_stats st;
    rollup_stats(r, &st);
    assert_int_equal(st.entries, 1);
    assert_int_equal(st.counted, 5);
    assert_int_equal(st.pending, 5);
    struct rollup_record out[4];
    /* Not due before the interval ends. */
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 150 * S, false, 0, out, 4), 0);
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 161 * S, false, 0, out, 4), 1);
    assert_int_equal(out[0].hb.count, 5);
    assert_int_equal(out[0].hb.first_time_us, 101 * S);
    assert_int_equal(out[0].hb.time_us, 105 * S);
    assert_memory_equal(out[0].hb.heartbeats_sha256, chain, 32);
    assert_string_equal(out[0].hb.cc, "NG");
    rollup_stats(r, &st);
    assert_int_equal(st.pending, 0);
    assert_int_equal(st.entries, 1); /* the presence goes on */
    /* The next poll still counts (same presence); then a whole idle interval ends it. */
    c = poll_at(170 * S, 9);
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_COUNTED);
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 222 * S, false, 0, out, 4), 1);
    assert_int_equal(out[0].hb.count, 1);
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 283 * S, false, 0, out, 4), 0);
    rollup_stats(r, &st);
    assert_int_equal(st.entries, 0);
    c = poll_at(300 * S, 9);
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_FIRST);
    rollup_free(r);
}

static void test_stop_takes_everything(void **state)
{
    (void)state;
    struct rollup *r = rollup_new(3600 * S, 100000);
    bool due;
    uint64_t total = 0;
    for (unsigned b = 0; b < 500; b++) {
        uint8_t key[16] = {(uint8_t)b, (uint8_t)(b >> 8), 7};
        key[8] = (uint8_t)(b * 31);
        for (unsigned p = 0; p <= b % 7; p++) {
            struct contact c = poll_at(10 * S + p, 1);
            if (rollup_poll(r, key, &c, 1, &due) == ROLLUP_COUNTED) {
                total++;
            }
        }
    }
    struct rollup_record out[64];
    uint64_t taken = 0, records = 0;
    size_t n;
    while ((n = rollup_take_due(r, 0, ROLLUP_STRIPES, 11 * S, true, 0, out, 64)) > 0) {
        for (size_t i = 0; i < n; i++) {
            taken += out[i].hb.count;
        }
        records += n;
        if (n < 64) {
            break;
        }
    }
    assert_int_equal(taken, total);
    assert_true(records > 0);
    struct rollup_stats st;
    rollup_stats(r, &st);
    assert_int_equal(st.pending, 0);
    rollup_free(r);
}

static void test_full_table_and_policy_generation(void **state)
{
    (void)state;
    struct rollup *r = rollup_new(60 * S, 0); /* room for about one bot per stripe */
    bool due;
    struct contact c = poll_at(S, 1);
    uint64_t full_before;
    struct rollup_stats st;
    unsigned first = 0;
    for (unsigned b = 0; b < 300; b++) {
        uint8_t key[16] = {(uint8_t)b, (uint8_t)(b >> 8)};
        key[8] = (uint8_t)b;
        first += rollup_poll(r, key, &c, 1, &due) == ROLLUP_FIRST;
        first += rollup_poll(r, key, &c, 1, &due) == ROLLUP_FIRST;
    }
    rollup_stats(r, &st);
    full_before = st.full;
    assert_int_equal(st.entries, ROLLUP_STRIPES);              /* one bot a stripe fits ... */
    assert_int_equal(full_before, 2 * (300 - ROLLUP_STRIPES)); /* the others found no room ... */
    assert_int_equal(first, 300 + full_before / 2); /* ... and both their polls stayed leaves */
    /* A bot present under generation 1 is due once under generation 2. */
    uint8_t key[16] = {0};
    key[8] = 0;
    assert_int_equal(rollup_poll(r, key, &c, 2, &due), ROLLUP_COUNTED);
    assert_true(due);
    assert_int_equal(rollup_poll(r, key, &c, 2, &due), ROLLUP_COUNTED);
    assert_false(due);
    rollup_free(r);
}

/* A record whose polls all came before an erasure leaves without source or bot key; one that
 * also has polls after it (the bot is still there) keeps them. */
static void test_erased_counts_lose_who(void **state)
{
    (void)state;
    struct rollup *r = rollup_new(60 * S, 100);
    bool due;
    uint8_t old_key[16] = {1}, live_key[16] = {2};
    struct contact c = poll_at(10 * S, 1);
    snprintf(c.bot_key, sizeof(c.bot_key), "00112233445566778899aabbccddeeff");
    assert_int_equal(rollup_poll(r, old_key, &c, 1, &due), ROLLUP_FIRST);
    assert_int_equal(rollup_poll(r, live_key, &c, 1, &due), ROLLUP_FIRST);
    c.time_us = 20 * S;
    assert_int_equal(rollup_poll(r, old_key, &c, 1, &due), ROLLUP_COUNTED);
    assert_int_equal(rollup_poll(r, live_key, &c, 1, &due), ROLLUP_COUNTED);
    c.time_us = 40 * S; /* after the erasure at 30 s */
    assert_int_equal(rollup_poll(r, live_key, &c, 1, &due), ROLLUP_COUNTED);
    struct rollup_record out[4];
    size_t n = rollup_take_due(r, 0, ROLLUP_STRIPES, 100 * S, true, 30 * S, out, 4);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        if (out[i].hb.time_us < 30 * S) {
            assert_int_equal(out[i].hb.src.family, 0);
            assert_string_equal(out[i].hb.bot_key, "");
            assert_int_equal(out[i].hb.count, 1);
            assert_string_equal(out[i].hb.cc, "NG");
        } else {
            assert_int_not_equal(out[i].hb.src.family, 0);
            assert_string_equal(out[i].hb.bot_key, "00112233445566778899aabbccddeeff");
            assert_int_equal(out[i].hb.count, 2);
        }
    }
    rollup_free(r);
}

/* Records name the durable leaf that describes their bot (described_in) and leave out what it
 * says, but only while the description is the same (ports aside) and the leaf is of the
 * record's seal epoch; a record describing its bot itself is reported for naming. */
static void test_records_name_the_describing_leaf(void **state)
{
    (void)state;
    struct rollup *r = rollup_new(60 * S, 100);
    rollup_set_seal_epoch(r, 1000 * S);
    uint8_t key[16] = {5, 6, 7};
    bool due;
    struct contact c = poll_at(100 * S, 1);
    snprintf(c.node, sizeof(c.node), "n1");
    c.transport = CONTACT_TRANSPORT_TCP;
    c.src.port = 40000;
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_FIRST);
    uint64_t desc = rollup_contact_desc(&c);
    /* Recorded and made durable in different epochs: not certain, not named. */
    rollup_described(r, key, 7, desc, 999 * S, 1000 * S);
    /* Leaf 0 is never a bot's. */
    rollup_described(r, key, 0, desc, 100 * S, 100 * S);
    c.time_us = 110 * S;
    c.src.port = 40001; /* reconnected: another port, the same bot */
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_COUNTED);
    struct rollup_record out[4];
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 161 * S, false, 0, out, 4), 1);
    assert_int_equal(out[0].hb.described_in, 0); /* nothing certain to name yet */
    assert_string_equal(out[0].hb.node, "n1");
    assert_int_equal(out[0].desc, desc); /* ports are not in the description */
    assert_memory_equal(out[0].key, key, 16);

    rollup_described(r, key, 9, desc, 100 * S, 101 * S);
    rollup_described(r, key, 8, desc, 100 * S, 101 * S); /* reported late: the latest wins */
    c.time_us = 170 * S;
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_COUNTED);
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 222 * S, false, 0, out, 4), 1);
    assert_int_equal(out[0].hb.described_in, 9);
    assert_int_equal(out[0].desc, 0);
    assert_int_equal(out[0].hb.count, 1);
    assert_string_equal(out[0].hb.cc, "NG"); /* counts, times and enrichment stay */
    assert_string_equal(out[0].hb.node, "");
    assert_string_equal(out[0].hb.family, "");
    assert_int_equal(out[0].hb.src.family, 0);
    assert_int_equal(out[0].hb.transport, CONTACT_TRANSPORT_TCP); /* clear, kept */

    /* Another description (a new enrichment table): the record describes the bot again. */
    c.time_us = 230 * S;
    c.enrich_id = 2;
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_COUNTED);
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 283 * S, false, 0, out, 4), 1);
    assert_int_equal(out[0].hb.described_in, 0);
    assert_int_equal(out[0].desc, rollup_contact_desc(&c));
    rollup_described(r, key, 20, out[0].desc, out[0].hb.time_us, 290 * S);

    /* Polls in the next epoch do not name a leaf of the previous one. */
    c.time_us = 1001 * S;
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_COUNTED);
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 1100 * S, false, 0, out, 4), 1);
    assert_int_equal(out[0].hb.described_in, 0);
    struct rollup_stats st;
    rollup_stats(r, &st);
    assert_int_equal(st.named, 1);
    rollup_free(r);

    /* Off (no seal epoch set): never named. */
    r = rollup_new(60 * S, 100);
    c.time_us = 100 * S;
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_FIRST);
    rollup_described(r, key, 9, rollup_contact_desc(&c), 100 * S, 100 * S);
    c.time_us = 110 * S;
    assert_int_equal(rollup_poll(r, key, &c, 1, &due), ROLLUP_COUNTED);
    assert_int_equal(rollup_take_due(r, 0, ROLLUP_STRIPES, 161 * S, false, 0, out, 4), 1);
    assert_int_equal(out[0].hb.described_in, 0);
    rollup_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_and_records),
        cmocka_unit_test(test_stop_takes_everything),
        cmocka_unit_test(test_full_table_and_policy_generation),
        cmocka_unit_test(test_erased_counts_lose_who),
        cmocka_unit_test(test_records_name_the_describing_leaf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
