/* swarm_data_test.c -- country weights, address ranges, identities and the latency histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "swarm/swarm.h"

static int countries_from(const char *text, struct swarm_countries *c, char *err, size_t errlen)
{
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(in);
    int rc = swarm_countries_read(in, "w.csv", c, err, errlen);
    fclose(in);
    return rc;
}

static int ranges_from(const char *text, struct swarm_ranges *r, char *err, size_t errlen)
{
    FILE *in = fmemopen((void *)text, strlen(text), "r");
    assert_non_null(in);
    int rc = swarm_ranges_read(in, "r.csv", r, err, errlen);
    fclose(in);
    return rc;
}

static void test_countries_parse(void **state)
{
    (void)state;
    struct swarm_countries c;
    char err[256] = "";
    assert_int_equal(countries_from("# comment\ncc,weight,basis\nNG,15,published\r\n\nIN,5\n"
                                    "US,0.5,model\n",
                                    &c, err, sizeof(err)),
                     0);
    assert_int_equal(c.count, 3);
    assert_string_equal(c.items[0].cc, "NG");
    assert_string_equal(c.items[2].cc, "US");
    assert_true(c.total > 20.49 && c.total < 20.51);
    /* the pick follows the cumulative weights */
    assert_int_equal(swarm_countries_pick(&c, 0.0), 0);
    assert_int_equal(swarm_countries_pick(&c, 14.9 / 20.5), 0);
    assert_int_equal(swarm_countries_pick(&c, 15.1 / 20.5), 1);
    assert_int_equal(swarm_countries_pick(&c, 20.4 / 20.5), 2);
    assert_int_equal(swarm_countries_pick(&c, 0.999999), 2);
    swarm_countries_free(&c);
}

static void expect_country_error(const char *text, const char *where)
{
    struct swarm_countries c;
    char err[256] = "";
    assert_true(countries_from(text, &c, err, sizeof(err)) < 0);
    if (strstr(err, where) == NULL) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err, where);
    }
    assert_non_null(strstr(err, where));
    assert_null(c.items);
}

static void test_countries_errors(void **state)
{
    (void)state;
    expect_country_error("NG,15\nXYZ,3\n", "w.csv:2:");
    expect_country_error("NG,15\nng,3\n", "w.csv:2:");
    expect_country_error("# c\nNG,abc\n", "w.csv:2:");
    expect_country_error("NG,15\n\nIN,-1\n", "w.csv:3:");
    expect_country_error("NG,0\n", "w.csv:1:");
    expect_country_error("NG,15x,model\n", "w.csv:1:");
    expect_country_error("NG\n", "w.csv:1:");
    expect_country_error("NG,1\nIN,2\nNG,3\n", "w.csv:3: country 'NG' listed twice");
    expect_country_error("# only comments\n", "no countries");
    char big[SWARM_LINE_MAX + 32];
    memset(big, 'A', sizeof(big));
    memcpy(big, "NG,1,", 5);
    big[sizeof(big) - 1] = '\0';
    expect_country_error(big, "w.csv:1: line longer");
    struct swarm_countries c;
    char err[256];
    assert_int_equal(swarm_countries_load("/nonexistent/w.csv", &c, err, sizeof(err)),
                     SWARM_E_FILE);
    assert_non_null(strstr(err, "/nonexistent/w.csv"));
}

static const char RANGES[] = "1.0.0.0,1.0.0.255,AU\n"
                             "41.58.0.0,41.58.255.255,NG\n"
                             "1.0.1.0,1.0.3.255,CN\n"
                             "102.88.0.0,102.88.0.3,NG\n"
                             "8.8.8.8,8.8.8.8,US\n";

static void test_ranges_pick(void **state)
{
    (void)state;
    struct swarm_ranges r;
    char err[256] = "";
    assert_int_equal(ranges_from(RANGES, &r, err, sizeof(err)), 0);
    assert_int_equal(r.count, 5);
    assert_int_equal(swarm_ranges_size(&r, "NG"), 65536 + 4);
    assert_int_equal(swarm_ranges_size(&r, "CN"), 768);
    assert_int_equal(swarm_ranges_size(&r, "US"), 1);
    assert_int_equal(swarm_ranges_size(&r, "FR"), 0);
    uint32_t ip = 0;
    assert_int_equal(swarm_ranges_pick(&r, "FR", 7, &ip), -1);
    assert_int_equal(swarm_ranges_pick(&r, "US", 12345, &ip), 0);
    assert_int_equal(ip, 0x08080808u);
    /* every draw lands in an NG range, and both NG ranges are reached: the small one exactly at
     * the draws that fall past the big one (ranges are ordered by start) */
    unsigned in_small = 0;
    for (uint64_t k = 0; k < 200000; k += 7) {
        assert_int_equal(swarm_ranges_pick(&r, "NG", k * 2654435761u, &ip), 0);
        bool big = ip >= 0x293A0000u && ip <= 0x293AFFFFu;
        bool small = ip >= 0x66580000u && ip <= 0x66580003u;
        assert_true(big || small);
        in_small += small;
    }
    assert_true(in_small > 0);
    assert_int_equal(swarm_ranges_pick(&r, "NG", 65536, &ip), 0);
    assert_int_equal(ip, 0x66580000u);
    assert_int_equal(swarm_ranges_pick(&r, "NG", 65535, &ip), 0);
    assert_int_equal(ip, 0x293AFFFFu);
    for (uint64_t k = 0; k < 5000; k++) {
        assert_int_equal(swarm_ranges_pick(&r, "CN", k * 0x9E3779B97F4A7C15ull, &ip), 0);
        assert_true(ip >= 0x01000100u && ip <= 0x010003FFu);
    }
    swarm_ranges_free(&r);
}

static void test_ranges_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text, *where;
    } cases[] = {
        {"1.0.0.0,1.0.0.255,AU\n1.0.0.x,1.0.0.255,AU\n", "r.csv:2:"},
        {"1.0.0.9,1.0.0.1,AU\n", "r.csv:1:"},    /* end before start */
        {"1.0.0.0,1.0.0.255\n", "r.csv:1:"},     /* missing cc */
        {"1.0.0.0,1.0.0.255,AUS\n", "r.csv:1:"}, /* bad cc */
        {"::1,::2,AU\n", "r.csv:1:"},            /* not IPv4 */
        {"\n# nothing\n", "no ranges"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct swarm_ranges r;
        char err[256] = "";
        assert_true(ranges_from(cases[i].text, &r, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, cases[i].where));
        assert_null(r.items);
    }
}

static void test_bot_identity(void **state)
{
    (void)state;
    struct swarm_countries c;
    struct swarm_ranges r;
    char err[256];
    assert_int_equal(countries_from("NG,3\nCN,1\n", &c, err, sizeof(err)), 0);
    assert_int_equal(ranges_from(RANGES, &r, err, sizeof(err)), 0);
    struct swarm_options o;
    swarm_options_default(&o);
    o.seed = 42;
    o.duration_s = 100;
    o.http_share = 0.25;
    o.cipher = SWARM_CIPHER_MIX;
    unsigned ng = 0, http = 0, gone = 0, ciphers[PLUGX_CIPHER_COUNT] = {0};
    const unsigned n = 4000;
    for (uint32_t i = 0; i < n; i++) {
        struct swarm_bot a, b;
        swarm_bot_make(&o, &c, &r, i, &a);
        swarm_bot_make(&o, &c, &r, i, &b);
        assert_memory_equal(&a, &b, sizeof(a)); /* same (seed, index): same bot */
        assert_int_equal(a.index, i);
        assert_true(strlen(a.info.id.host) >= 9 && strlen(a.info.id.host) < 20);
        assert_true(a.info.id.user[0] != '\0' && a.info.id.os[0] != '\0');
        assert_true(strncmp(a.info.id.local_ip, "192.168.", 8) == 0 ||
                    strncmp(a.info.id.local_ip, "10.", 3) == 0);
        assert_true(a.start_ms < 40000); /* first 40% of 100 s */
        if (strcmp(a.cc, "NG") == 0) {
            ng++;
            assert_true((a.public_ip >= 0x293A0000u && a.public_ip <= 0x293AFFFFu) ||
                        (a.public_ip >= 0x66580000u && a.public_ip <= 0x66580003u));
        } else {
            assert_string_equal(a.cc, "CN");
            assert_true(a.public_ip >= 0x01000100u && a.public_ip <= 0x010003FFu);
        }
        http += a.http;
        gone += a.gone;
        ciphers[a.cipher]++;
    }
    /* shares follow the weights (3:1), --http-share 0.25 and the default gone share 0.1 */
    assert_true(ng > n * 70 / 100 && ng < n * 80 / 100);
    assert_true(http > n * 20 / 100 && http < n * 30 / 100);
    assert_true(gone > n * 7 / 100 && gone < n * 13 / 100);
    for (int k = 0; k < PLUGX_CIPHER_COUNT; k++) {
        assert_true(ciphers[k] > n / 5);
    }
    /* a different seed gives a different bot at the same index */
    struct swarm_bot a, b;
    swarm_bot_make(&o, &c, &r, 7, &a);
    o.seed = 43;
    swarm_bot_make(&o, &c, &r, 7, &b);
    assert_true(strcmp(a.info.id.host, b.info.id.host) != 0 || a.public_ip != b.public_ip);
    /* a fixed cipher is used by every bot */
    o.cipher = PLUGX_CIPHER_RC4;
    swarm_bot_make(&o, &c, &r, 7, &b);
    assert_int_equal(b.cipher, PLUGX_CIPHER_RC4);
    swarm_countries_free(&c);
    swarm_ranges_free(&r);
}

static void test_hist(void **state)
{
    (void)state;
    struct hist *h = calloc(1, sizeof(*h));
    assert_non_null(h);
    assert_int_equal(hist_percentile(h, 0.5), 0);
    for (uint64_t v = 1; v <= 1000; v++) {
        hist_add(h, v * 100); /* 100 us .. 100 ms, uniform */
    }
    assert_int_equal(h->count, 1000);
    assert_int_equal(h->max, 100000);
    struct {
        double p;
        uint64_t exact;
    } want[] = {{0.5, 50000}, {0.9, 90000}, {0.99, 99000}, {0.001, 100}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        uint64_t got = hist_percentile(h, want[i].p);
        /* an upper bucket bound: never below the exact value, at most 1/16 above */
        assert_true(got >= want[i].exact);
        assert_true(got <= want[i].exact + want[i].exact / 16);
    }
    assert_int_equal(hist_percentile(h, 1.0), 100000);
    /* small values are exact; huge ones land in the last bucket without overflow */
    memset(h, 0, sizeof(*h));
    hist_add(h, 3);
    hist_add(h, 7);
    assert_int_equal(hist_percentile(h, 0.5), 3);
    hist_add(h, UINT64_MAX);
    assert_int_equal(hist_percentile(h, 1.0), UINT64_MAX);
    assert_int_equal(h->max, UINT64_MAX);
    free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_countries_parse), cmocka_unit_test(test_countries_errors),
        cmocka_unit_test(test_ranges_pick),     cmocka_unit_test(test_ranges_errors),
        cmocka_unit_test(test_bot_identity),    cmocka_unit_test(test_hist),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
