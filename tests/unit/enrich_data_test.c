/* enrich_data_test.c -- the real ip-location-db data: known addresses map to their country, ASN and
 * sector tags; range boundaries and gaps; the flattened IPv4 country table agrees with the MMDB. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "enrich/enrich.h"

#include <maxminddb.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char mmdb_path[4096], asn4_path[4096], asn6_path[4096], tags_path[4096];

static struct enrich_tables *tables; /* loaded once for the whole group (0.3 s) */

static int setup(void **state)
{
    (void)state;
    const char *src = getenv("SINKD_SOURCE_DIR");
    char err[512];
    if (src == NULL) {
        src = ".";
    }
    snprintf(mmdb_path, sizeof(mmdb_path),
             "%s/data/npm/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb", src);
    snprintf(asn4_path, sizeof(asn4_path), "%s/data/npm/asn/asn-ipv4.csv", src);
    snprintf(asn6_path, sizeof(asn6_path), "%s/data/npm/asn/asn-ipv6.csv", src);
    snprintf(tags_path, sizeof(tags_path), "%s/data/tags/example-sectors.csv", src);
    const char *tags[] = {tags_path, NULL};
    struct enrich_config cfg = {mmdb_path, asn4_path, asn6_path, tags, NULL, NULL};
    if (enrich_load(&tables, &cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "load: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    enrich_free(tables);
    return 0;
}

static struct enrich_result look(const char *ip)
{
    struct net_addr a;
    struct enrich_result r;
    assert_int_equal(net_addr_parse_ip(ip, &a), 0);
    enrich_lookup(tables, &a, &r);
    return r;
}

/* Rows taken from asn-ipv4.csv / asn-ipv6.csv and geo-whois-asn-country-ipv*.csv (2.3.2026061719).
 */
static void test_known_addresses(void **state)
{
    (void)state;
    static const struct {
        const char *ip, *cc;
        uint32_t asn;
        const char *name;
    } known[] = {
        {"1.1.1.1", "AU", 13335, "Cloudflare, Inc."}, /* quoted name with a comma */
        {"8.8.8.8", "US", 15169, "Google LLC"},
        {"1.0.197.5", "TH", 23974, "Ministry of Education - EMISC"},
        {"5.180.37.1", "QA", 208944, "Qatar General Electricty and Water Corporation"},
        {"2001:4860:4860::8888", "US", 15169, "Google LLC"},
        {"2606:4700:4700::1111", "US", 13335, "Cloudflare, Inc."},
        {"::ffff:8.8.8.8", "US", 15169, "Google LLC"}, /* IPv4-mapped: looked up as IPv4 */
    };
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        struct enrich_result r = look(known[i].ip);
        assert_string_equal(r.cc, known[i].cc);
        assert_int_equal(r.asn, known[i].asn);
        assert_string_equal(r.as_name, known[i].name);
    }
}

static void test_range_boundaries(void **state)
{
    (void)state;
    /* asn-ipv4.csv: 1.0.0.0-1.0.0.255 AS13335, then nothing until 1.0.4.0-1.0.7.255 AS38803. */
    assert_int_equal(look("1.0.0.0").asn, 13335);
    assert_int_equal(look("1.0.0.255").asn, 13335);
    assert_int_equal(look("1.0.1.0").asn, 0);
    assert_string_equal(look("1.0.1.0").as_name, "");
    assert_int_equal(look("1.0.3.255").asn, 0);
    assert_int_equal(look("1.0.4.0").asn, 38803);
    assert_int_equal(look("1.0.7.255").asn, 38803);
    assert_int_equal(look("0.0.0.0").asn, 0);
    assert_int_equal(look("255.255.255.255").asn, 0);
    /* The one overlap in the data: 214.95.0.0-215.0.255.255 AS749 then 215.0.0.0-215.1.3.255
     * AS721; the later start wins, the earlier row keeps what comes before it. */
    assert_int_equal(look("214.255.255.255").asn, 749);
    assert_int_equal(look("215.0.0.0").asn, 721);
    assert_int_equal(look("215.1.3.255").asn, 721);
    /* asn-ipv6.csv: 2001::/32 AS6939, gap, 2001:4:112::/48 AS112. */
    assert_int_equal(look("2001::").asn, 6939);
    assert_int_equal(look("2001:0:ffff:ffff:ffff:ffff:ffff:ffff").asn, 6939);
    assert_int_equal(look("2001:1::").asn, 0);
    assert_int_equal(look("2001:4:111:ffff:ffff:ffff:ffff:ffff").asn, 0);
    assert_int_equal(look("2001:4:112::").asn, 112);
    assert_int_equal(look("2001:4:112:ffff:ffff:ffff:ffff:ffff").asn, 112);
    assert_int_equal(look("::").asn, 0);
    assert_int_equal(look("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff").asn, 0);
}

static void test_example_tags(void **state)
{
    (void)state;
    assert_string_equal(look("8.14.153.10").tags, "hospital"); /* prefix + same tag by ASN */
    assert_string_equal(look("8.14.152.255").tags, "");        /* AS3356, outside the /24 */
    assert_string_equal(look("1.0.197.5").tags, "government"); /* by ASN only */
    assert_string_equal(look("5.180.37.1").tags, "water,energy");
    assert_string_equal(look("198.51.100.127").tags, "government");
    assert_string_equal(look("198.51.100.128").tags, "energy"); /* longer prefix wins */
    assert_string_equal(look("198.51.100.255").tags, "energy");
    assert_string_equal(look("203.0.113.7").tags, "water");
    assert_string_equal(look("203.0.113.8").tags, "");
    assert_string_equal(look("2001:db8:1::5").tags, "hospital");
    assert_string_equal(look("2001:db8:2::1").tags, "government");
    assert_string_equal(look("2001:db9::").tags, "");
}

/* Every IPv4 country answer comes from the table flattened at load; it must agree with
 * libmaxminddb walking the tree itself. */
static void test_flattened_country_matches_mmdb(void **state)
{
    (void)state;
    MMDB_s db;
    assert_int_equal(MMDB_open(mmdb_path, MMDB_MODE_MMAP, &db), MMDB_SUCCESS);
    uint64_t x = 88172645463325252ULL;
    int with_cc = 0;
    for (int i = 0; i < 200000; i++) {
        char ip[16];
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        snprintf(ip, sizeof(ip), "%u.%u.%u.%u", (unsigned)(x & 255), (unsigned)(x >> 8 & 255),
                 (unsigned)(x >> 16 & 255), (unsigned)(x >> 24 & 255));
        int gai, mmerr;
        MMDB_lookup_result_s res = MMDB_lookup_string(&db, ip, &gai, &mmerr);
        assert_int_equal(mmerr, MMDB_SUCCESS);
        char want[3] = "";
        MMDB_entry_data_s d;
        if (res.found_entry &&
            MMDB_get_value(&res.entry, &d, "country_code", NULL) == MMDB_SUCCESS && d.has_data) {
            assert_int_equal(d.data_size, 2);
            memcpy(want, d.utf8_string, 2);
            want[2] = '\0';
            with_cc++;
        }
        assert_string_equal(look(ip).cc, want);
    }
    assert_true(with_cc > 100000); /* most of the space is allocated */
    MMDB_close(&db);
}

static void hex_sha256_file(const char *path, char hex[65])
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n), md[32];
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    SHA256(buf, (size_t)n, md);
    free(buf);
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
}

static void test_describe_and_apply(void **state)
{
    (void)state;
    char desc[1024], hex[65], want[256];
    int n = enrich_tables_describe(tables, desc, sizeof(desc));
    assert_int_equal(n, (int)strlen(desc));
    hex_sha256_file(asn4_path, hex);
    snprintf(want, sizeof(want), "asn4=asn-ipv4.csv@2.3.2026061719:%s", hex);
    assert_non_null(strstr(desc, want));
    hex_sha256_file(mmdb_path, hex);
    snprintf(want, sizeof(want), "mmdb=geo-whois-asn-country.mmdb@2.3.2026061719:%s", hex);
    assert_non_null(strstr(desc, want));
    hex_sha256_file(tags_path, hex);
    snprintf(want, sizeof(want), "tags=example-sectors.csv:%s", hex);
    assert_non_null(strstr(desc, want));
    /* A short buffer is truncated and NUL-terminated; the full length is still returned. */
    char small[16];
    assert_int_equal(enrich_tables_describe(tables, small, sizeof(small)), n);
    assert_int_equal(strlen(small), sizeof(small) - 1);

    uint8_t sha[32];
    enrich_tables_sha256(tables, sha);
    uint32_t id = enrich_tables_id(tables);
    assert_int_equal(id, (uint32_t)sha[0] << 24 | (uint32_t)sha[1] << 16 | sha[2] << 8 | sha[3]);
    assert_int_not_equal(id, 0);

    struct contact c;
    memset(&c, 0, sizeof(c));
    assert_int_equal(net_addr_parse_ip("5.180.37.1", &c.src), 0);
    enrich_apply(tables, &c);
    assert_string_equal(c.cc, "QA");
    assert_int_equal(c.asn, 208944);
    assert_string_equal(c.tags, "water,energy");
    assert_int_equal(c.enrich_id, id);
}

/* The id names the data: same files, same id; another tag file, another id. */
static void test_id_follows_data(void **state)
{
    (void)state;
    char err[512], path[] = "/tmp/enrich_data_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "10.0.0.0/8,lab\n", 15), 15);
    close(fd);
    const char *same[] = {tags_path, NULL}, *other[] = {path, NULL};
    struct enrich_config a = {NULL, asn4_path, NULL, same, NULL, NULL};
    struct enrich_config b = {NULL, asn4_path, NULL, same, NULL, NULL};
    struct enrich_config c = {NULL, asn4_path, NULL, other, NULL, NULL};
    struct enrich_tables *ta, *tb, *tc;
    assert_int_equal(enrich_load(&ta, &a, err, sizeof(err)), 0);
    assert_int_equal(enrich_load(&tb, &b, err, sizeof(err)), 0);
    assert_int_equal(enrich_load(&tc, &c, err, sizeof(err)), 0);
    assert_int_equal(enrich_tables_id(ta), enrich_tables_id(tb));
    assert_int_not_equal(enrich_tables_id(ta), enrich_tables_id(tc));
    assert_int_not_equal(enrich_tables_id(ta), enrich_tables_id(tables));
    enrich_free(ta);
    enrich_free(tb);
    enrich_free(tc);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_addresses),
        cmocka_unit_test(test_range_boundaries),
        cmocka_unit_test(test_example_tags),
        cmocka_unit_test(test_flattened_country_matches_mmdb),
        cmocka_unit_test(test_describe_and_apply),
        cmocka_unit_test(test_id_follows_data),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
