/* report_output_test.c -- report: exact Shadowserver CSV header and rows, per-country split,
 * since/until, the flagged-sector section, summary numbers under NAT, and IntelMQ output checked
 * against IntelMQ's harmonization (tests/vectors/intelmq-harmonization.json). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry_target.h"
#include "report/report.h"

#define DAY_US 86400000000ULL
#define T0 (1767225600ULL * 1000000ULL) /* 2026-01-01T00:00:00Z */

static const char EXPECTED_HEADER[] =
    "\"timestamp\",\"protocol\",\"src_ip\",\"src_port\",\"src_asn\",\"src_geo\",\"src_region\","
    "\"src_city\",\"src_hostname\",\"src_naics\",\"src_sector\",\"device_vendor\",\"device_type\","
    "\"device_model\",\"severity\",\"dst_ip\",\"dst_port\",\"dst_asn\",\"dst_geo\",\"dst_region\","
    "\"dst_city\",\"dst_hostname\",\"dst_naics\",\"dst_sector\",\"public_source\",\"infection\","
    "\"family\",\"tag\",\"application\",\"version\",\"event_id\"";

struct fixture {
    char dir[64];
    char db[128];
    struct registry *reg;
    uint64_t idx;
};

/* keyless: a contact as serve records a connection's hello, with no bot key at all (the
 * registry keys it by address); otherwise the key is event_bot_key's. */
static void add_contact(struct fixture *fx, uint64_t t, const char *ip, uint16_t port,
                        const char *host, const char *cc, uint32_t asn, const char *tags,
                        uint8_t transport, bool keyless)
{
    struct record r;
    uint8_t buf[EVENT_RECORD_MAX];
    char err[256];
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = t;
    snprintf(c->node, sizeof(c->node), "node-a");
    assert_int_equal(net_addr_parse_ip(ip, &c->src), 0);
    c->src.port = port;
    assert_int_equal(net_addr_parse_ip("198.51.100.7", &c->dst), 0);
    c->dst.port = 443;
    c->transport = transport;
    snprintf(c->family, sizeof(c->family), "plugx");
    if (host != NULL) {
        snprintf(c->bot.host, sizeof(c->bot.host), "%s", host);
        snprintf(c->bot.user, sizeof(c->bot.user), "Administrator");
        snprintf(c->bot.local_ip, sizeof(c->bot.local_ip), "10.1.2.3");
        snprintf(c->bot.os, sizeof(c->bot.os), "6.1.7601 SP1");
    }
    if (!keyless) {
        event_bot_key(c, c->bot_key);
    }
    snprintf(c->cc, sizeof(c->cc), "%s", cc);
    c->asn = asn;
    snprintf(c->tags, sizeof(c->tags), "%s", tags);
    int n = event_encode(&r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(registry_apply(fx->reg, fx->idx++, buf, (size_t)n, err, sizeof(err)), 1);
}

static void add(struct fixture *fx, uint64_t t, const char *ip, uint16_t port, const char *host,
                const char *cc, uint32_t asn, const char *tags, uint8_t transport)
{
    add_contact(fx, t, ip, port, host, cc, asn, tags, transport, false);
}

/* NAT: PC-A, PC-B, PC-C behind 203.0.113.1 (DE, one a hospital); LAPTOP moving between two FR
 * addresses; an anonymous bot with no country (a header-form HTTP check-in); NL-1 over HTTP
 * (body form), last seen on day 3. */
static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof(*fx));
    char err[256];
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/sinkd-report-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    test_registry_target(fx->db, sizeof(fx->db), fx->dir);
    assert_int_equal(test_registry_open(&fx->reg, fx->db, err, sizeof(err)), 0);
    add(fx, T0 + 1000000, "203.0.113.1", 50001, "PC-A", "DE", 3320, "hospital", 1);
    add(fx, T0 + 2000000, "203.0.113.1", 50002, "PC-B", "DE", 3320, "", 1);
    add(fx, T0 + 3000000, "203.0.113.1", 50003, "PC-C", "DE", 3320, "", 1);
    add(fx, T0 + 4000000, "192.0.2.10", 40000, "LAPTOP", "FR", 3215, "", 1);
    add(fx, T0 + DAY_US + 5000000, "192.0.2.77", 40001, "LAPTOP", "FR", 3215, "", 1);
    add(fx, T0 + DAY_US + 6000000, "2001:db8::5", 1234, NULL, "", 0, "", 3); /* header form */
    add(fx, T0 + 2 * DAY_US + 7000000, "203.0.113.1", 50004, "PC-A", "DE", 3320, "hospital", 1);
    add(fx, T0 + 3 * DAY_US + 8000000, "198.18.0.9", 61000, "NL-1", "NL", 1136, "energy,hospital",
        2);
    assert_int_equal(registry_flush(fx->reg, err, sizeof(err)), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    registry_close(fx->reg);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static char *run(struct fixture *fx, const struct report_options *o, int64_t *rows)
{
    char *buf = NULL, err[256] = "";
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int64_t n = report_write(fx->reg, o, f, err, sizeof(err));
    fclose(f);
    if (n < 0) {
        fail_msg("report_write: %s", err);
    }
    if (rows) {
        *rows = n;
    }
    return buf;
}

/* RFC 4180 field split of one line; returns the number of fields. */
static int csv_fields(const char *line, char out[][96], int max)
{
    int n = 0;
    const char *p = line;
    for (;;) {
        char *o = out[n];
        size_t k = 0;
        if (*p == '"') {
            p++;
            while (*p && !(*p == '"' && p[1] != '"')) {
                if (*p == '"') {
                    p++;
                }
                if (k < 95) {
                    o[k++] = *p;
                }
                p++;
            }
            p++;
        } else {
            while (*p && *p != ',' && *p != '\n') {
                if (k < 95) {
                    o[k++] = *p;
                }
                p++;
            }
        }
        o[k] = '\0';
        n++;
        if (*p != ',' || n == max) {
            return n;
        }
        p++;
    }
}

static int col(const char *name)
{
    for (int i = 0; i < REPORT_CSV_NCOLUMNS; i++) {
        if (strcmp(report_csv_columns[i], name) == 0) {
            return i;
        }
    }
    fail_msg("no column %s", name);
    return -1;
}

/* Splits text into lines (in place). */
static int lines_of(char *text, char **lines, int max)
{
    int n = 0;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l && n < max;
         l = strtok_r(NULL, "\n", &save)) {
        lines[n++] = l;
    }
    return n;
}

static void test_csv_header_and_rows(void **state)
{
    struct fixture *fx = *state;
    struct report_options o = {.format = REPORT_CSV};
    int64_t rows;
    char *out = run(fx, &o, &rows);
    char *whole = strdup(out);
    char *lines[32] = {0};
    int n = lines_of(out, lines, 32);
    assert_string_equal(lines[0], EXPECTED_HEADER);
    assert_int_equal(rows, 6);
    assert_int_equal(n, 7);
    char f[REPORT_CSV_NCOLUMNS + 1][96];
    /* Oldest first: PC-B, then PC-C, ... ; find PC-A's row (last seen day 2) by port. */
    bool found = false;
    for (int i = 1; i < n; i++) {
        assert_int_equal(csv_fields(lines[i], f, REPORT_CSV_NCOLUMNS + 1), REPORT_CSV_NCOLUMNS);
        assert_string_equal(f[col("protocol")], "tcp");
        assert_string_equal(f[col("severity")], "critical");
        assert_string_equal(f[col("public_source")], "sinkd");
        assert_string_equal(f[col("infection")], "plugx");
        assert_string_equal(f[col("family")], "plugx");
        assert_string_equal(f[col("dst_ip")], "198.51.100.7");
        assert_string_equal(f[col("dst_port")], "443");
        if (strcmp(f[col("src_port")], "50004") == 0) {
            found = true;
            assert_string_equal(f[col("timestamp")], "2026-01-03 00:00:07");
            assert_string_equal(f[col("src_ip")], "203.0.113.1");
            assert_string_equal(f[col("src_asn")], "3320");
            assert_string_equal(f[col("src_geo")], "DE");
            assert_string_equal(f[col("tag")], "hospital");
            assert_string_equal(f[col("application")], "");
        }
    }
    assert_true(found);
    /* Empty fields are bare: the anonymous bot (no ASN, no country) has ",," there, and numbers
     * are never quoted. */
    assert_non_null(strstr(whole, "\"2001:db8::5\",1234,,,"));
    /* Both HTTP forms are HTTP to a CERT: the header-form bot's row says so too. */
    const char *v6 = strstr(whole, "\"2001:db8::5\"");
    assert_non_null(v6);
    const char *eol = strchr(v6, '\n');
    assert_non_null(eol);
    assert_true(eol - v6 > 9 && memcmp(eol - 9, ",\"http\",,", 9) == 0);
    /* NL-1 came over HTTP and carries two tags in one quoted field. */
    assert_non_null(strstr(whole, ",\"energy,hospital\",\"http\",,\n"));
    free(whole);
    free(out);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

static void test_split_country(void **state)
{
    struct fixture *fx = *state;
    char out[128], path[256], buf[8192];
    snprintf(out, sizeof(out), "%s/split", fx->dir);
    assert_int_equal(mkdir(out, 0700), 0);
    struct report_options o = {.format = REPORT_CSV, .split = REPORT_SPLIT_COUNTRY, .out_dir = out};
    int64_t rows;
    free(run(fx, &o, &rows));
    assert_int_equal(rows, 6);
    const char *ccs[] = {"DE", "FR", "NL", "ZZ"};
    const int want[] = {3, 1, 1, 1};
    int total = 0;
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof(path), "%s/%s.csv", out, ccs[i]);
        assert_true(read_file(path, buf, sizeof(buf)) > 0);
        char *lines[16] = {0};
        int n = lines_of(buf, lines, 16);
        assert_string_equal(lines[0], EXPECTED_HEADER);
        assert_int_equal(n - 1, want[i]);
        for (int k = 1; k < n; k++) {
            char f[REPORT_CSV_NCOLUMNS + 1][96];
            csv_fields(lines[k], f, REPORT_CSV_NCOLUMNS + 1);
            /* Each national CERT's file holds only its own country's rows. */
            assert_string_equal(f[col("src_geo")], strcmp(ccs[i], "ZZ") ? ccs[i] : "");
        }
        total += n - 1;
    }
    assert_int_equal(total, 6);
    /* No other files. */
    DIR *d = opendir(out);
    int files = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        files += e->d_name[0] != '.';
    }
    closedir(d);
    assert_int_equal(files, 4);

    /* Per ASN, IntelMQ lines. */
    snprintf(out, sizeof(out), "%s/split-asn", fx->dir);
    assert_int_equal(mkdir(out, 0700), 0);
    o.split = REPORT_SPLIT_ASN;
    o.format = REPORT_INTELMQ;
    o.out_dir = out;
    free(run(fx, &o, &rows));
    snprintf(path, sizeof(path), "%s/AS3320.jsonl", out);
    assert_true(read_file(path, buf, sizeof(buf)) > 0);
    char *lines[16];
    assert_int_equal(lines_of(buf, lines, 16), 3);
    for (int k = 0; k < 3; k++) {
        assert_non_null(strstr(lines[k], "\"source.asn\":3320"));
    }
    snprintf(path, sizeof(path), "%s/AS0.jsonl", out);
    assert_true(read_file(path, buf, sizeof(buf)) > 0);
}

static void test_since_until(void **state)
{
    struct fixture *fx = *state;
    char err[128];
    struct report_options o = {.format = REPORT_CSV};
    assert_int_equal(report_parse_time("2026-01-02", false, &o.since_us, err, sizeof(err)), 0);
    assert_int_equal(o.since_us, T0 + DAY_US);
    /* A bare --until date includes that whole day. */
    assert_int_equal(report_parse_time("2026-01-03", true, &o.until_us, err, sizeof(err)), 0);
    assert_int_equal(o.until_us, T0 + 3 * DAY_US);
    int64_t rows;
    char *out = run(fx, &o, &rows);
    /* Last seen on day 1 or 2: LAPTOP, anonymous, PC-A. Not PC-B/C (day 0), not NL-1 (day 3). */
    assert_int_equal(rows, 3);
    assert_null(strstr(out, "50002"));
    assert_null(strstr(out, "198.18.0.9"));
    assert_non_null(strstr(out, "40001"));
    free(out);
    uint64_t t;
    assert_int_equal(report_parse_time("2026-01-02 10:20:30", false, &t, err, sizeof(err)), 0);
    assert_int_equal(t, T0 + DAY_US + (10 * 3600 + 20 * 60 + 30) * 1000000ULL);
    assert_int_equal(report_parse_time("2026-01-02T10:20:30Z", true, &t, err, sizeof(err)), 0);
    assert_int_equal(t, T0 + DAY_US + (10 * 3600 + 20 * 60 + 30) * 1000000ULL);
    assert_int_equal(report_parse_time("2026-02-30", false, &t, err, sizeof(err)), -1);
    assert_int_equal(report_parse_time("yesterday", false, &t, err, sizeof(err)), -1);
    assert_int_equal(report_parse_time("2026-01-02 10:20", false, &t, err, sizeof(err)), -1);
}

static void test_tag_section(void **state)
{
    struct fixture *fx = *state;
    /* To one stream: flagged rows first. */
    struct report_options o = {.format = REPORT_CSV, .tag = "hospital"};
    int64_t rows;
    char *out = run(fx, &o, &rows);
    char *lines[16];
    int n = lines_of(out, lines, 16);
    assert_int_equal(n, 7);
    char f[REPORT_CSV_NCOLUMNS + 1][96];
    for (int i = 1; i < n; i++) {
        csv_fields(lines[i], f, REPORT_CSV_NCOLUMNS + 1);
        bool flagged = strstr(f[col("tag")], "hospital") != NULL;
        assert_true(flagged == (i <= 2));
    }
    free(out);
    /* To a directory: the full file (flagged first) plus <name>-flagged.csv, per country. */
    char dir[128], path[256], buf[8192];
    snprintf(dir, sizeof(dir), "%s/tag", fx->dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    o.out_dir = dir;
    o.split = REPORT_SPLIT_COUNTRY;
    free(run(fx, &o, &rows));
    snprintf(path, sizeof(path), "%s/DE-flagged.csv", dir);
    assert_true(read_file(path, buf, sizeof(buf)) > 0);
    n = lines_of(buf, lines, 16);
    assert_string_equal(lines[0], EXPECTED_HEADER);
    assert_int_equal(n, 2);
    assert_non_null(strstr(lines[1], "50004"));
    snprintf(path, sizeof(path), "%s/DE.csv", dir);
    assert_true(read_file(path, buf, sizeof(buf)) > 0);
    n = lines_of(buf, lines, 16);
    assert_int_equal(n, 4);
    assert_non_null(strstr(lines[1], "50004"));
    snprintf(path, sizeof(path), "%s/FR-flagged.csv", dir);
    assert_int_equal(access(path, F_OK), -1);
    snprintf(path, sizeof(path), "%s/NL-flagged.csv", dir);
    assert_int_equal(access(path, F_OK), 0);
}

static void test_summary_numbers(void **state)
{
    struct fixture *fx = *state;
    struct report_options o = {.format = REPORT_SUMMARY_JSON, .tag = "hospital"};
    char *out = run(fx, &o, NULL);
    json_error_t jerr;
    json_t *j = json_loads(out, 0, &jerr);
    assert_non_null(j);
    /* Six machines on five addresses: NAT hides three behind one IP, LAPTOP used two. */
    assert_int_equal(json_integer_value(json_object_get(j, "unique_bots")), 6);
    assert_int_equal(json_integer_value(json_object_get(j, "unique_ips")), 5);
    assert_int_equal(json_integer_value(json_object_get(j, "contacts")), 8);
    json_t *days = json_object_get(j, "days");
    assert_int_equal(json_array_size(days), 4);
    json_t *d0 = json_array_get(days, 0);
    assert_string_equal(json_string_value(json_object_get(d0, "day")), "2026-01-01");
    assert_int_equal(json_integer_value(json_object_get(d0, "bots")), 4);
    assert_int_equal(json_integer_value(json_object_get(d0, "ips")), 2);
    json_t *top = json_array_get(json_object_get(j, "top_countries"), 0);
    assert_string_equal(json_string_value(json_object_get(top, "cc")), "DE");
    assert_int_equal(json_integer_value(json_object_get(top, "bots")), 3);
    assert_int_equal(json_integer_value(json_object_get(top, "ips")), 1);
    json_t *sectors = json_object_get(j, "sectors");
    assert_int_equal(json_integer_value(json_object_get(sectors, "hospital")), 2);
    assert_int_equal(json_integer_value(json_object_get(sectors, "energy")), 1);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "flagged"), "bots")), 2);
    assert_non_null(json_object_get(json_object_get(j, "counted_by"), "unique_ips"));
    json_decref(j);
    free(out);

    o.format = REPORT_SUMMARY;
    out = run(fx, &o, NULL);
    assert_non_null(strstr(out, "unique bots (by bot identity):   6"));
    assert_non_null(strstr(out, "unique source IPs (by address):  5"));
    assert_non_null(strstr(out, "NAT"));
    /* Every contact is attributed to a bot here: no line about unattributed ones. */
    assert_null(strstr(out, "contacts per day add up to"));
    free(out);

    /* A poll without identity from an address identified bots use counts for the address and
     * the day, not for a bot: the summary says where the difference went. */
    char err[256];
    add_contact(fx, T0 + 3 * DAY_US + 9000000, "203.0.113.1", 50009, NULL, "DE", 3320, "", 1, true);
    assert_int_equal(registry_flush(fx->reg, err, sizeof(err)), 0);
    out = run(fx, &o, NULL);
    assert_non_null(strstr(out, "unique bots (by bot identity):   6"));
    assert_non_null(strstr(out, "contacts of these bots:          8\n"));
    assert_non_null(strstr(out, "contacts per day add up to 9: 1 came without identity"));
    free(out);
}

/* ---- IntelMQ harmonization check --------------------------------------------------------- */

static bool is_ip(const char *s)
{
    struct net_addr a;
    return net_addr_parse_ip(s, &a) == 0 && strcmp(s, "0.0.0.0") != 0;
}

static bool matches(const char *re, const char *s, int flags)
{
    regex_t r;
    assert_int_equal(regcomp(&r, re, REG_EXTENDED | REG_NOSUB | flags), 0);
    bool ok = regexec(&r, s, 0, NULL, 0) == 0;
    regfree(&r);
    return ok;
}

static bool in_list(json_t *list, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (strcmp(json_string_value(v), s) == 0) {
            return true;
        }
    }
    return false;
}

static void check_value(const char *key, json_t *spec, json_t *allowed, json_t *v)
{
    const char *type = json_string_value(json_object_get(spec, "type"));
    if (strcmp(type, "Integer") == 0) {
        assert_true(json_is_integer(v));
        return;
    }
    if (!json_is_string(v)) {
        fail_msg("%s: %s must be a JSON string", key, type);
    }
    const char *s = json_string_value(v);
    assert_true(s[0] != '\0'); /* String.is_valid: non-empty */
    json_t *len = json_object_get(spec, "length");
    if (len) {
        assert_true(strlen(s) <= (size_t)json_integer_value(len));
    }
    json_t *re = json_object_get(spec, "regex");
    if (re && !matches(json_string_value(re), s, 0)) {
        fail_msg("%s='%s' fails regex", key, s);
    }
    re = json_object_get(spec, "iregex");
    if (re) {
        /* Anchored alternation list: check membership exactly. */
        const char *alt = json_string_value(re);
        char list[2048];
        snprintf(list, sizeof(list), "^(%.*s)$", (int)strlen(alt) - 2, alt + 1);
        if (!matches(list, s, REG_ICASE)) {
            fail_msg("%s='%s' fails iregex", key, s);
        }
    }
    if (strcmp(type, "IPAddress") == 0) {
        if (!is_ip(s)) {
            fail_msg("%s='%s' is not an IP address", key, s);
        }
    } else if (strcmp(type, "DateTime") == 0) {
        if (!matches("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?"
                     "\\+00:00$",
                     s, 0)) {
            fail_msg("%s='%s' is not IntelMQ DateTime", key, s);
        }
    } else if (strcmp(type, "LowercaseString") == 0) {
        for (const char *p = s; *p; p++) {
            assert_false(isupper((unsigned char)*p));
        }
    } else if (strcmp(type, "UppercaseString") == 0) {
        for (const char *p = s; *p; p++) {
            assert_false(islower((unsigned char)*p));
        }
    } else if (strcmp(type, "ClassificationType") == 0) {
        assert_true(in_list(json_object_get(allowed, key), s));
    } else if (strcmp(type, "String") != 0) {
        fail_msg("%s: type %s not handled by this test", key, type);
    }
    if (json_object_get(allowed, key)) {
        assert_true(in_list(json_object_get(allowed, key), s));
    }
}

static void test_intelmq_harmonization(void **state)
{
    struct fixture *fx = *state;
    const char *src = getenv("SINKD_SOURCE_DIR");
    char path[512];
    if (src != NULL) {
        snprintf(path, sizeof(path), "%s/tests/vectors/intelmq-harmonization.json", src);
    } else {
        /* Run by hand: find the vectors next to this source file. */
        snprintf(path, sizeof(path), "%.*s/tests/vectors/intelmq-harmonization.json",
                 (int)(strlen(__FILE__) - strlen("/tests/unit/report_output_test.c")), __FILE__);
    }
    json_error_t jerr;
    json_t *h = json_load_file(path, 0, &jerr);
    if (h == NULL) {
        fail_msg("%s: %s", path, jerr.text);
    }
    json_t *event = json_object_get(h, "event");
    json_t *allowed = json_object_get(h, "allowed_values");
    struct report_options o = {.format = REPORT_INTELMQ, .now_us = T0 + 10 * DAY_US};
    int64_t rows;
    char *out = run(fx, &o, &rows);
    assert_int_equal(rows, 6);
    char *lines[16];
    int n = lines_of(out, lines, 16);
    assert_int_equal(n, 6);
    size_t seen_local = 0, seen_http = 0;
    for (int i = 0; i < n; i++) {
        json_t *row = json_loads(lines[i], 0, &jerr);
        assert_non_null(row);
        const char *key;
        json_t *v;
        json_object_foreach(row, key, v)
        {
            json_t *spec = json_object_get(event, key);
            if (spec == NULL && strncmp(key, "extra.", 6) == 0) {
                spec = json_object_get(event, "extra");
                continue; /* extra.* live in the JSON-typed 'extra' */
            }
            if (spec == NULL) {
                fail_msg("key '%s' is not in IntelMQ's harmonization", key);
            }
            check_value(key, spec, allowed, v);
        }
        /* IntelMQ's minimum recommended event (REPORTS.md s.2). */
        const char *need[] = {"feed.name",   "classification.type", "classification.taxonomy",
                              "time.source", "time.observation",    "source.ip"};
        for (size_t k = 0; k < sizeof(need) / sizeof(need[0]); k++) {
            assert_non_null(json_object_get(row, need[k]));
        }
        assert_string_equal(json_string_value(json_object_get(row, "classification.taxonomy")),
                            "malicious-code");
        assert_string_equal(json_string_value(json_object_get(row, "classification.type")),
                            "infected-system");
        assert_string_equal(json_string_value(json_object_get(row, "time.observation")),
                            "2026-01-11T00:00:00+00:00");
        seen_local += json_object_get(row, "source.local_ip") != NULL;
        if (json_object_get(row, "protocol.application")) {
            seen_http++;
            const char *ip = json_string_value(json_object_get(row, "source.ip"));
            assert_true(strcmp(ip, "198.18.0.9") == 0 || strcmp(ip, "2001:db8::5") == 0);
        }
        assert_non_null(json_object_get(row, "extra.sinkd.bot_key"));
        json_decref(row);
    }
    assert_int_equal(seen_local, 5); /* the anonymous bot reported no internal address */
    assert_int_equal(seen_http, 2);  /* body form and header form */
    free(out);
    json_decref(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_csv_header_and_rows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_split_country, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since_until, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tag_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summary_numbers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intelmq_harmonization, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
