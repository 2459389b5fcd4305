/* enrich_files_test.c -- tag files and ASN CSVs written by the test: line parsers, longest-prefix
 * match, ASN tags, tag-set limits, and bad data rejected all-or-nothing with file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "enrich/enrich.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static char dir[] = "/tmp/enrich_files_test_XXXXXX";

static int setup(void **state)
{
    (void)state;
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to dir/name and returns the path (static buffer per slot). */
static const char *put(int slot, const char *name, const void *text, size_t len)
{
    static char paths[4][4200];
    snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", dir, name);
    FILE *f = fopen(paths[slot], "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    fclose(f);
    return paths[slot];
}
#define PUT(slot, name, text) put(slot, name, text, strlen(text))

static const char asn4_csv[] = "10.0.0.0,10.255.255.255,64500,Example Net\n"
                               "192.0.2.0,192.0.2.255,64501,\"Doc, \"\"Test\"\" Net\"\n";

static struct enrich_tables *load_tags(const char *tags_text, char *err, size_t errlen)
{
    struct enrich_tables *t = NULL;
    const char *tags[] = {PUT(0, "sectors.csv", tags_text), NULL};
    struct enrich_config cfg = {NULL, PUT(1, "asn4.csv", asn4_csv), NULL, tags, NULL, NULL};
    int rc = enrich_load(&t, &cfg, err, errlen);
    assert_true(rc == 0 ? t != NULL : t == NULL);
    return t;
}

static const char *tags_of(const struct enrich_tables *t, const char *ip)
{
    static struct enrich_result r;
    struct net_addr a;
    assert_int_equal(net_addr_parse_ip(ip, &a), 0);
    enrich_lookup(t, &a, &r);
    return r.tags;
}

static void test_asn_parse_line(void **state)
{
    (void)state;
    struct enrich_asn_row row;
    char err[256];
    const char *l = "1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\r";
    assert_int_equal(enrich_asn_parse_line(l, strlen(l), &row, err, sizeof(err)), 1);
    assert_int_equal(row.asn, 13335);
    assert_string_equal(row.name, "Cloudflare, Inc.");
    assert_int_equal(row.first.family, AF_INET);
    l = "2.26.200.0,2.26.215.255,201907,\"LLC \"\"SPUTNIK\"\"\"";
    assert_int_equal(enrich_asn_parse_line(l, strlen(l), &row, err, sizeof(err)), 1);
    assert_string_equal(row.name, "LLC \"SPUTNIK\"");
    l = "2001:4:112::,2001:4:112:ffff:ffff:ffff:ffff:ffff,112,DNS-OARC";
    assert_int_equal(enrich_asn_parse_line(l, strlen(l), &row, err, sizeof(err)), 1);
    assert_int_equal(row.last.family, AF_INET6);
    assert_string_equal(row.name, "DNS-OARC");
    /* Not NUL-terminated: only len bytes are read. */
    l = "1.0.0.0,1.0.0.255,1,AB-garbage";
    assert_int_equal(enrich_asn_parse_line(l, strlen(l) - 8, &row, err, sizeof(err)), 1);
    assert_string_equal(row.name, "AB");

    static const struct {
        const char *line, *msg;
    } bad[] = {
        {"1.0.0.0,1.0.0.255,13335", "expected 4 fields"},
        {"1.0.0,1.0.0.255,1,x", "'1.0.0' is not an IP address"},
        {"1.0.0.9,1.0.0.1,1,x", "ends before it starts"},
        {"1.0.0.0,::1,1,x", "mixes IPv4 and IPv6"},
        {"1.0.0.0,1.0.0.1,4294967296,x", "not an AS number"},
        {"1.0.0.0,1.0.0.1,-1,x", "not an AS number"},
        {"1.0.0.0,1.0.0.1,1,\"open", "unterminated"},
        {"1.0.0.0,1.0.0.1,1,\"a\"b", "after the closing quote"},
        {"1.0.0.0,1.0.0.1,1,a,b", "unquoted name"},
        {"", "expected 4 fields"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            enrich_asn_parse_line(bad[i].line, strlen(bad[i].line), &row, err, sizeof(err)), -1);
        assert_non_null(strstr(err, bad[i].msg));
    }
}

static void test_tag_parse_line(void **state)
{
    (void)state;
    struct enrich_tag_rule r;
    char err[256];
    const char *l = "  192.0.2.0/24 , hospital , St. Example, ward 3 ";
    assert_int_equal(enrich_tag_parse_line(l, strlen(l), &r, err, sizeof(err)), 1);
    assert_int_equal(r.kind, ENRICH_RULE_PREFIX);
    assert_int_equal(r.cidr.prefix, 24);
    assert_string_equal(r.tag, "hospital");
    assert_string_equal(r.label, "St. Example, ward 3");
    l = "AS64500,energy";
    assert_int_equal(enrich_tag_parse_line(l, strlen(l), &r, err, sizeof(err)), 1);
    assert_int_equal(r.kind, ENRICH_RULE_ASN);
    assert_int_equal(r.asn, 64500);
    l = "64501,water_2";
    assert_int_equal(enrich_tag_parse_line(l, strlen(l), &r, err, sizeof(err)), 1);
    assert_int_equal(r.asn, 64501);
    l = "2001:db8::1,x";
    assert_int_equal(enrich_tag_parse_line(l, strlen(l), &r, err, sizeof(err)), 1);
    assert_int_equal(r.cidr.prefix, 128);
    assert_int_equal(enrich_tag_parse_line("  # comment", 11, &r, err, sizeof(err)), 0);
    assert_int_equal(enrich_tag_parse_line("\t\r", 2, &r, err, sizeof(err)), 0);

    static const struct {
        const char *line, *msg;
    } bad[] = {
        {"x.y.z/8,gov", "'x.y.z/8' is not an IP prefix"},
        {"10.1.2.3/8,gov", "bits set after the prefix length"},
        {"10.0.0.0/33,gov", "not an IP prefix"},
        {"10.0.0.0/8", "expected prefix-or-ASN,tag"},
        {"10.0.0.0/8,Hospital", "is not a tag"},
        {"10.0.0.0/8,", "is not a tag"},
        {"10.0.0.0/8,abcdefghijabcdefghijabcdefghijab", "is not a tag"}, /* 32 chars */
        {"AS4294967296,x", "not an IP prefix or AS number"},
        {"10.0.0.0/8,x,bad\x01label", "control character"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
            enrich_tag_parse_line(bad[i].line, strlen(bad[i].line), &r, err, sizeof(err)), -1);
        assert_non_null(strstr(err, bad[i].msg));
    }
}

static void test_longest_prefix_match(void **state)
{
    (void)state;
    char err[256];
    struct enrich_tables *t = load_tags("0.0.0.0/0,world\n"
                                        "10.0.0.0/8,a\n"
                                        "10.1.0.0/16,b\n"
                                        "10.1.2.0/24,c\n"
                                        "10.1.2.3,d\n"
                                        "10.1.3.0/24,e\n"
                                        "10.1.0.0/24,f,same first address as 10.1.0.0/16\n"
                                        "2001:db8::/48,h\n"
                                        "::/0,world6\n"
                                        "2001:db8::/32,g\n"
                                        "ffff::/16,top\n",
                                        err, sizeof(err));
    assert_non_null(t);
    /* 10.0.0.0/8 is AS64500 in asn4.csv (no ASN tags here). */
    assert_string_equal(tags_of(t, "0.0.0.0"), "world");
    assert_string_equal(tags_of(t, "9.255.255.255"), "world");
    assert_string_equal(tags_of(t, "10.0.0.0"), "a");
    assert_string_equal(tags_of(t, "10.0.255.255"), "a");
    assert_string_equal(tags_of(t, "10.1.0.0"), "f");
    assert_string_equal(tags_of(t, "10.1.0.255"), "f");
    assert_string_equal(tags_of(t, "10.1.1.0"), "b");
    assert_string_equal(tags_of(t, "10.1.2.2"), "c");
    assert_string_equal(tags_of(t, "10.1.2.3"), "d");
    assert_string_equal(tags_of(t, "10.1.2.4"), "c");
    assert_string_equal(tags_of(t, "10.1.2.255"), "c");
    assert_string_equal(tags_of(t, "10.1.3.0"), "e");
    assert_string_equal(tags_of(t, "10.1.4.0"), "b");
    assert_string_equal(tags_of(t, "10.255.255.255"), "a");
    assert_string_equal(tags_of(t, "11.0.0.0"), "world");
    assert_string_equal(tags_of(t, "255.255.255.255"), "world");
    assert_string_equal(tags_of(t, "::"), "world6");
    assert_string_equal(tags_of(t, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"), "world6");
    assert_string_equal(tags_of(t, "2001:db8::"), "h");
    assert_string_equal(tags_of(t, "2001:db8:0:ffff:ffff:ffff:ffff:ffff"), "h");
    assert_string_equal(tags_of(t, "2001:db8:1::"), "g");
    assert_string_equal(tags_of(t, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"), "g");
    assert_string_equal(tags_of(t, "2001:db9::"), "world6");
    assert_string_equal(tags_of(t, "fffe:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "world6");
    assert_string_equal(tags_of(t, "ffff::"), "top");
    assert_string_equal(tags_of(t, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), "top");
    struct enrich_stats st;
    enrich_tables_stats(t, &st);
    assert_int_equal(st.tag_rules, 11);
    enrich_free(t);
}

static void test_asn_tags_and_sets(void **state)
{
    (void)state;
    char err[256];
    struct enrich_tables *t = load_tags("# sectors\n"
                                        "\n"
                                        "10.1.0.0/16,hospital\n"
                                        "10.1.0.0/16,research,same prefix twice: both tags\n"
                                        "10.1.0.0/16,hospital,duplicate tag: kept once\n"
                                        "AS64500,government\n"
                                        "64500,hospital\n"
                                        "AS64501,water\n",
                                        err, sizeof(err));
    assert_non_null(t);
    assert_string_equal(tags_of(t, "10.1.2.3"), "hospital,research,government");
    assert_string_equal(tags_of(t, "10.2.0.0"), "government,hospital"); /* ASN only */
    assert_string_equal(tags_of(t, "192.0.2.1"), "water");
    assert_string_equal(tags_of(t, "198.51.100.1"), ""); /* no ASN, no prefix */
    struct net_addr a;
    struct enrich_result r;
    assert_int_equal(net_addr_parse_ip("192.0.2.1", &a), 0);
    enrich_lookup(t, &a, &r);
    assert_int_equal(r.asn, 64501);
    assert_string_equal(r.as_name, "Doc, \"Test\" Net");
    assert_string_equal(r.cc, ""); /* no MMDB configured */
    enrich_free(t);
}

static void test_tag_set_limits(void **state)
{
    (void)state;
    char err[256], text[2048];
    /* 7 tags of 8 chars joined = 62 bytes: fits in 63. An 8th on the same prefix does not. */
    size_t n = 0;
    for (int i = 0; i < 7; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "10.1.0.0/16,tag%05d\n", i);
    }
    n += (size_t)snprintf(text + n, sizeof(text) - n, "AS64500,zzzz\nAS64500,yyy\n");
    struct enrich_tables *t = load_tags(text, err, sizeof(err));
    assert_non_null(t);
    /* 62 + ",zzzz" would be 67: whole ASN tags that do not fit are left out, never cut. */
    assert_string_equal(tags_of(t, "10.1.0.1"),
                        "tag00000,tag00001,tag00002,tag00003,tag00004,tag00005,tag00006");
    assert_string_equal(tags_of(t, "10.2.0.1"), "zzzz,yyy");
    enrich_free(t);
    snprintf(text + n, sizeof(text) - n, "10.1.0.0/16,tag00007\n");
    assert_null(load_tags(text, err, sizeof(err)));
    assert_non_null(strstr(err, "sectors.csv:10: tags for this prefix joined with ',' exceed 63"));
}

static void test_bad_tag_file_names_line(void **state)
{
    (void)state;
    char err[256];
    assert_null(load_tags("# ok\n10.0.0.0/8,gov\n\nx.y.z/8,gov\n", err, sizeof(err)));
    assert_non_null(strstr(err, "sectors.csv:4: 'x.y.z/8' is not an IP prefix"));
    assert_null(load_tags("10.0.0.0/8,gov\r\n10.0.0.1/8,gov\r\n", err, sizeof(err)));
    assert_non_null(strstr(err, "sectors.csv:2: '10.0.0.1/8' has bits set"));
    /* A second, good file does not rescue the bad one; the error names the bad one. */
    const char *tags[] = {PUT(0, "good.csv", "10.0.0.0/8,gov\n"), PUT(2, "bad.csv", "AS1,OK\n"),
                          NULL};
    struct enrich_config cfg = {NULL, NULL, NULL, tags, NULL, NULL};
    struct enrich_tables *t = (struct enrich_tables *)1;
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
    assert_null(t);
    assert_non_null(strstr(err, "bad.csv:1: 'OK' is not a tag"));
}

static void test_bad_asn_files(void **state)
{
    (void)state;
    char err[256];
    struct enrich_tables *t = NULL;
    struct enrich_config cfg = {NULL, NULL, NULL, NULL, NULL, NULL};
    static const struct {
        const char *text, *msg;
    } bad[] = {
        {"1.0.0.0,1.0.0.255,1,a\n1.0.1.0,1.0", "asn.csv:2: expected 4 fields"}, /* truncated */
        {"1.0.0.0,1.0.0.255,1,a\n1.0.1.0,1.0.1.255,2,\"Cut", "asn.csv:2: unterminated"},
        {"1.0.1.0,1.0.1.255,1,a\n1.0.0.0,1.0.0.255,2,b\n", "asn.csv:2: range does not start"},
        {"1.0.0.0,1.0.0.255,1,a\n1.0.0.0,1.0.0.9,2,b\n", "asn.csv:2: range does not start"},
        {"", "asn.csv: no ranges"},
        {"\n\n", "asn.csv: no ranges"},
        {"1.0.0.0,1.0.0.255,1,a\n::1,::2,3,c\n", "asn.csv:2: IPv6 range in an IPv4 file"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cfg.asn_v4_path = PUT(1, "asn.csv", bad[i].text);
        assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
        assert_null(t);
        assert_non_null(strstr(err, bad[i].msg));
    }
    cfg.asn_v4_path = NULL;
    cfg.asn_v6_path = PUT(1, "asn6.csv", "1.0.0.0,1.0.0.255,1,a\n");
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
    assert_non_null(strstr(err, "asn6.csv:1: IPv4 range in an IPv6 file"));
    cfg.asn_v6_path = "/nonexistent/asn-ipv6.csv";
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
    assert_string_equal(err, "/nonexistent/asn-ipv6.csv: No such file or directory");
}

/* A row starting inside the previous one wins the overlap; the earlier row keeps both ends. */
static void test_asn_overlap(void **state)
{
    (void)state;
    char err[256];
    struct enrich_tables *t = NULL;
    struct enrich_config cfg = {NULL,
                                PUT(1, "asn.csv",
                                    "1.0.0.0,1.0.0.255,1,outer\n"
                                    "1.0.0.16,1.0.0.31,2,inner\n"
                                    "1.0.0.200,1.0.1.9,3,tail\n"),
                                NULL,
                                NULL,
                                NULL,
                                NULL};
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)), 0);
    static const struct {
        const char *ip;
        uint32_t asn;
    } want[] = {{"1.0.0.15", 1},  {"1.0.0.16", 2},  {"1.0.0.31", 2}, {"1.0.0.32", 1},
                {"1.0.0.199", 1}, {"1.0.0.200", 3}, {"1.0.1.9", 3},  {"1.0.1.10", 0}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        struct net_addr a;
        struct enrich_result r;
        assert_int_equal(net_addr_parse_ip(want[i].ip, &a), 0);
        enrich_lookup(t, &a, &r);
        assert_int_equal(r.asn, want[i].asn);
    }
    struct enrich_stats st;
    enrich_tables_stats(t, &st);
    assert_int_equal(st.asn_overlaps, 2);
    enrich_free(t);
}

static void copy_prefix(const char *from, const char *to, long keep, long poke_at, int poke_len)
{
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (keep < 0 || keep > n) {
        keep = n;
    }
    unsigned char *buf = malloc((size_t)n);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    if (poke_len > 0) {
        memset(buf + poke_at, 0xff, (size_t)poke_len);
    }
    f = fopen(to, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(buf, 1, (size_t)keep, f), (size_t)keep);
    fclose(f);
    free(buf);
}

static void test_bad_mmdb(void **state)
{
    (void)state;
    const char *src = getenv("SINKD_SOURCE_DIR");
    char real[4096], bad[4200], err[512];
    snprintf(real, sizeof(real),
             "%s/data/npm/geo-whois-asn-country-mmdb/geo-whois-asn-country.mmdb", src ? src : ".");
    snprintf(bad, sizeof(bad), "%s/broken.mmdb", dir);
    struct enrich_tables *t = NULL;
    const char *tags[] = {PUT(0, "sectors.csv", "10.0.0.0/8,x\n"), NULL};
    struct enrich_config cfg = {bad, NULL, NULL, tags, NULL, NULL};

    copy_prefix(real, bad, 4000000, 0, 0); /* truncated: the metadata at the end is gone */
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
    assert_null(t);
    assert_non_null(strstr(err, bad));
    assert_non_null(strstr(err, "not a usable MaxMind DB"));

    copy_prefix(real, bad, -1, 600000, 64); /* search tree overwritten */
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
    assert_null(t);
    assert_non_null(strstr(err, bad));
    assert_non_null(strstr(err, "corrupt"));

    copy_prefix(real, bad, 0, 0, 0); /* empty */
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
    assert_non_null(strstr(err, bad));

    cfg.mmdb_path = PUT(1, "sectors-as-mmdb.mmdb", "10.0.0.0/8,x\n"); /* not an MMDB */
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
    assert_non_null(strstr(err, "sectors-as-mmdb.mmdb: not a usable MaxMind DB"));

    cfg.mmdb_path = "/nonexistent/x.mmdb";
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)) < 0, 1);
    assert_non_null(strstr(err, "/nonexistent/x.mmdb: "));

    copy_prefix(real, bad, -1, 0, 0); /* intact copy loads */
    cfg.mmdb_path = bad;
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)), 0);
    enrich_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_asn_parse_line),
        cmocka_unit_test(test_tag_parse_line),
        cmocka_unit_test(test_longest_prefix_match),
        cmocka_unit_test(test_asn_tags_and_sets),
        cmocka_unit_test(test_tag_set_limits),
        cmocka_unit_test(test_bad_tag_file_names_line),
        cmocka_unit_test(test_bad_asn_files),
        cmocka_unit_test(test_asn_overlap),
        cmocka_unit_test(test_bad_mmdb),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
