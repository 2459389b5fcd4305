/* policy_parse_test.c -- a policy with any typo never loads (hundreds of mutated variants of one
 * valid file), errors name file, line and key, and the reload handle keeps the old policy when
 * the new one is bad. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "policy/policy.h"

/* The valid file every variant starts from, one line per entry. */
static const char *const valid[] = {
    "; a valid policy",                            /* 1 */
    "[policy]",                                    /* 2 */
    "name = test policy",                          /* 3 */
    "version = 7",                                 /* 4 */
    "",                                            /* 5 */
    "[authorisation ng-2024]",                     /* 6 */
    "authority = Nigeria Police Force",            /* 7 */
    "legal_reference = Order 2024/1",              /* 8 */
    "countries = NG, GH,",                         /* 9 */
    "  XK",                                        /* 10: continuation */
    "asns = AS100, 200",                           /* 11 */
    "prefixes = 10.0.0.0/8, 2001:db8::/32",        /* 12 */
    "exclude_tags = hospital, school",             /* 13 */
    "exclude_prefixes = 10.9.0.0/16",              /* 14 */
    "not_before = 2024-07-01T00:00:00Z",           /* 15 */
    "not_after = 2024-12-31T23:59:59Z",            /* 16 */
    "rate = 30",                                   /* 17 */
    "once_per_bot = true",                         /* 18 */
    "command = uninstall",                         /* 19 */
    "mode = enforce   ; both keys needed to send", /* 20 */
    "",                                            /* 21 */
    "[authorisation in-2024]",                     /* 22 */
    "authority = CERT-In",                         /* 23 */
    "legal_reference = Direction 7",               /* 24 */
    "countries = IN",                              /* 25 */
    "not_before = 2024-08-01T00:00:00Z",           /* 26 */
    "not_after = 2025-01-01T00:00:00Z",            /* 27 */
    "rate = 0.5",                                  /* 28 */
    "command = uninstall",                         /* 29 */
    "command_id = 64769",                          /* 30: 0xFD01, decimal */
    "",                                            /* 31 */
    "[authorisation ng-collect]",                  /* 32 */
    "authority = Nigeria Police Force",            /* 33 */
    "legal_reference = Order 2024/2",              /* 34 */
    "countries = NG",                              /* 35 */
    "not_before = 2024-07-01T00:00:00Z",           /* 36 */
    "not_after = 2024-12-31T23:59:59Z",            /* 37 */
    "rate = 10",                                   /* 38 */
    "command = collect",                           /* 39 */
    "mode = enforce",                              /* 40 */
};
#define NLINES (sizeof(valid) / sizeof(valid[0]))
/* 1-based line numbers holding a required key */
static const int required_lines[] = {7,  8,  15, 16, 17, 19, 23, 24, 26,
                                     27, 28, 29, 33, 34, 36, 37, 38, 39};

/* The file with line `at` (1-based) replaced by `repl` (NULL: deleted; when `insert`, repl goes
 * before line `at` and nothing is removed). */
static char *variant(int at, const char *repl, int insert, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    for (size_t i = 0; i < NLINES; i++) {
        if ((int)i + 1 == at) {
            if (repl != NULL) {
                fprintf(f, "%s\n", repl);
            }
            if (!insert) {
                continue;
            }
        }
        fprintf(f, "%s\n", valid[i]);
    }
    fclose(f);
    return text;
}

static int parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct policy *p = NULL;
    int rc = policy_parse(text, len, "t.ini", &p, err, errlen);
    if (rc == 0) {
        assert_non_null(p);
        policy_free(p);
    } else {
        assert_null(p);
    }
    return rc;
}

/* The variant must be refused with "t.ini:<line>:" and mention `what` (if given). */
static void expect_refused(int at, const char *repl, int insert, int line, const char *what)
{
    size_t len;
    char *text = variant(at, repl, insert, &len);
    char err[512] = "";
    int rc = parse(text, len, err, sizeof(err));
    if (rc == 0) {
        fail_msg("variant loaded: line %d -> '%s'", at, repl ? repl : "(deleted)");
    }
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "t.ini:%d: ", line);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || (what && strstr(err, what) == NULL)) {
        fail_msg("line %d -> '%s': error '%s' lacks '%s' / '%s'", at, repl ? repl : "(deleted)",
                 err, prefix, what ? what : "");
    }
    free(text);
}

static unsigned refused_count;

static void test_valid_file_loads(void **state)
{
    (void)state;
    size_t len;
    char *text = variant(0, NULL, 0, &len);
    struct policy *p = NULL;
    char err[512] = "";
    if (policy_parse(text, len, "t.ini", &p, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    assert_string_equal(policy_name(p), "test policy");
    assert_string_equal(policy_version(p), "7");
    assert_int_equal(policy_authorisation_count(p), 3);
    assert_string_equal(policy_authorisation_id(p, 0), "ng-2024");
    assert_string_equal(policy_authorisation_id(p, 1), "in-2024");
    assert_string_equal(policy_authorisation_id(p, 2), "ng-collect");
    assert_null(policy_authorisation_id(p, 3));
    assert_string_equal(policy_source(p), "t.ini");
    assert_int_equal(policy_authorisation_command(p, 0), POLICY_COMMAND_UNINSTALL);
    assert_int_equal(policy_authorisation_command(p, 2), POLICY_COMMAND_COLLECT);
    assert_int_equal(policy_authorisation_command_id(p, 0), 0);
    assert_int_equal(policy_authorisation_command_id(p, 1), 0xFD01);
    assert_int_equal(policy_authorisation_mode(p, 0), POLICY_MODE_ENFORCE);
    assert_int_equal(policy_authorisation_mode(p, 1), POLICY_MODE_DRY_RUN);
    assert_int_equal(policy_authorisation_index(p, "in-2024"), 1);
    assert_int_equal(policy_authorisation_index(p, "fr"), -1);
    uint8_t md[32];
    assert_int_equal(EVP_Digest(text, len, md, NULL, EVP_sha256(), NULL), 1);
    assert_memory_equal(policy_sha256(p), md, 32);
    char *d = policy_describe(p);
    assert_non_null(d);
    const char *must[] = {"ng-2024",
                          "NG, GH, XK",
                          "AS100, AS200",
                          "10.0.0.0/8",
                          "2001:db8::/32",
                          "hospital or school",
                          "10.9.0.0/16",
                          "2024-07-01 00:00:00 UTC",
                          "2024-12-31 23:59:59 UTC",
                          "at most 30 commands per second",
                          "at most 0.5 commands per second",
                          "Nigeria Police Force",
                          "Order 2024/1",
                          "enforce: sends only if the server also runs with",
                          "dry-run: decisions are logged, nothing is sent",
                          "at most once per bot",
                          "uninstall with command id 0xFD01",
                          "uninstall, NO command id: there is no default, so serve refuses",
                          "collect: asks the bot for its machine information"};
    for (size_t i = 0; i < sizeof(must) / sizeof(must[0]); i++) {
        if (strstr(d, must[i]) == NULL) {
            fail_msg("description lacks '%s':\n%s", must[i], d);
        }
    }
    char hex[65];
    for (int i = 0; i < 32; i++) {
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    }
    assert_non_null(strstr(d, hex));
    free(d);
    policy_free(p);
    free(text);
}

static void test_misspelt_keys_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLINES; i++) {
        const char *line = valid[i];
        const char *eq = strchr(line, '=');
        if (line[0] == ';' || line[0] == ' ' || line[0] == '\0') {
            continue;
        }
        size_t klen = eq != NULL ? (size_t)(eq - line) : 0;
        while (klen > 0 && line[klen - 1] == ' ') {
            klen--;
        }
        if (line[0] == '[') { /* the section keyword: "[authorisation x]" / "[policy]" */
            klen = strcspn(line, " ]");
        }
        /* every single-character deletion, adjacent swap, doubling and a few substitutions */
        for (size_t k = (line[0] == '['); k < klen; k++) {
            char m[256];
            for (int op = 0; op < 5; op++) {
                snprintf(m, sizeof(m), "%s", line);
                size_t n = strlen(m);
                if (op == 0) { /* delete */
                    memmove(m + k, m + k + 1, n - k);
                } else if (op == 1) { /* swap */
                    if (k + 1 >= klen || m[k] == m[k + 1]) {
                        continue;
                    }
                    char c = m[k];
                    m[k] = m[k + 1];
                    m[k + 1] = c;
                } else if (op == 2) { /* double */
                    memmove(m + k + 1, m + k, n - k + 1);
                } else if (op == 3) { /* upper case */
                    if (m[k] < 'a' || m[k] > 'z') {
                        continue;
                    }
                    m[k] = (char)(m[k] - 32);
                } else { /* '_' <-> '-', else 'z' is a likely slip? substitute a neighbour */
                    m[k] = m[k] == '_' ? '-' : (m[k] == 'z' ? 'a' : (char)(m[k] + 1));
                }
                expect_refused((int)i + 1, m, 0, (int)i + 1, NULL);
                refused_count++;
            }
        }
    }
}

static void test_missing_required_refused(void **state)
{
    (void)state;
    static const char *const names[] = {"authority", "legal_reference", "not_before", "not_after",
                                        "rate",      "command"};
    for (size_t i = 0; i < sizeof(required_lines) / sizeof(required_lines[0]); i++) {
        int at = required_lines[i];
        int section = at < 22 ? 6 : at < 32 ? 22 : 32;
        const char *key = NULL;
        for (size_t k = 0; k < 6; k++) {
            if (strncmp(valid[at - 1], names[k], strlen(names[k])) == 0) {
                key = names[k];
            }
        }
        assert_non_null(key);
        char what[64];
        snprintf(what, sizeof(what), "missing required key '%s'", key);
        expect_refused(at, NULL, 0, section, what);
        refused_count++;
    }
    /* scope: all of countries, asns, prefixes gone from the first section */
    size_t len;
    char *text = variant(25, NULL, 0, &len); /* the second section's only scope line */
    char err[512];
    assert_int_not_equal(parse(text, len, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "t.ini:22: authorisation 'in-2024': empty scope"));
    free(text);
}

static void test_duplicates_refused(void **state)
{
    (void)state;
    for (size_t i = 0; i < NLINES; i++) {
        if (valid[i][0] == ';' || valid[i][0] == '\0' || valid[i][0] == ' ') {
            continue;
        }
        /* the same line twice: a repeated key, a repeated [policy] or authorisation id */
        expect_refused((int)i + 1, valid[i], 1, (int)i + 2, valid[i][0] == '[' ? "duplicate" : "");
        refused_count++;
    }
}

static void test_bad_values_refused(void **state)
{
    (void)state;
    static const struct {
        int at;
        const char *line;
        const char *what;
    } cases[] = {
        {9, "countries = XX", "unknown country code 'XX' in 'countries'"},
        {9, "countries = NG, QQ", "unknown country code 'QQ'"},
        {9, "countries = UK", "unknown country code 'UK'"},
        {9, "countries = EU", "unknown country code"},
        {9, "countries = ZZ", "unknown country code"},
        {9, "countries = AA", "unknown country code"},
        {9, "countries = YU", "unknown country code"},
        {9, "countries = AN", "unknown country code"},
        {9, "countries = ng", "must be upper case"},
        {9, "countries = NGA", "unknown country code 'NGA'"},
        {9, "countries = N", "unknown country code"},
        {9, "countries = N1", "unknown country code"},
        {9, "countries = NG,,GH", "empty entry in 'countries'"},
        {9, "countries = NG, NG", "listed twice"},
        {9, "countries = NG GH", "unknown country code 'NG GH'"},
        {11, "asns = AS0", "bad AS number"},
        {11, "asns = ASX", "bad AS number"},
        {11, "asns = 4294967296", "bad AS number"},
        {11, "asns = -5", "bad AS number"},
        {11, "asns = AS100, 100", "listed twice"},
        {12, "prefixes = 10.0.0.1/8", "bits set past /8"},
        {12, "prefixes = 300.0.0.0/8", "bad prefix"},
        {12, "prefixes = 10.0.0.0/33", "bad prefix"},
        {12, "prefixes = example.com", "bad prefix"},
        {13, "exclude_tags = Hospital", "may hold only"},
        {13, "exclude_tags = intensive care", "may hold only"},
        {14, "exclude_prefixes = 10.9.0.0/", "bad prefix"},
        {15, "not_before = 2024-07-01", "bad time"},
        {15, "not_before = 2024-07-01 00:00:00Z", "bad time"},
        {15, "not_before = 2024-07-01T00:00:00", "bad time"},
        {15, "not_before = 2024-07-01T00:00:00+02:00", "bad time"},
        {15, "not_before = 2024-07-01T00:00:00.5Z", "bad time"},
        {15, "not_before = 2024-07-01t00:00:00z", "bad time"},
        {15, "not_before = 2024-13-01T00:00:00Z", "bad time"},
        {15, "not_before = 2024-00-10T00:00:00Z", "bad time"},
        {15, "not_before = 2023-02-29T00:00:00Z", "bad time"},
        {15, "not_before = 2024-04-31T00:00:00Z", "bad time"},
        {15, "not_before = 2024-07-01T24:00:00Z", "bad time"},
        {15, "not_before = 2024-07-01T00:60:00Z", "bad time"},
        {15, "not_before = 2024-07-01T00:00:60Z", "bad time"},
        {15, "not_before = 1969-12-31T23:59:59Z", "bad time"},
        {15, "not_before = 01/07/2024", "bad time"},
        {16, "not_after = 2024-07-01T00:00:00Z", "'not_after' must be later than 'not_before'"},
        {16, "not_after = 2024-06-30T23:59:59Z", "'not_after' must be later"},
        {17, "rate = 0", "bad rate"},
        {17, "rate = 0.000000", "bad rate"},
        {17, "rate = -1", "bad rate"},
        {17, "rate = 1e3", "bad rate"},
        {17, "rate = 30/s", "bad rate"},
        {17, "rate = 1000001", "bad rate"},
        {17, "rate = .5", "bad rate"},
        {17, "rate = 5.", "bad rate"},
        {18, "burst = 0", "bad burst"},
        {18, "burst = 1.5", "bad burst"},
        {18, "burst = 1000001", "bad burst"},
        {18, "once_per_bot = yes", "true or false"},
        {18, "once_per_bot = TRUE", "true or false"},
        {19, "command = delete", "unknown command 'delete' (uninstall or collect)"},
        {19, "command = Collect", "unknown command"},
        {30, "command_id = 0", "command_id 0 is no command"},
        {30, "command_id = 0x0", "command_id 0 is no command"},
        {30, "command_id = 0x10000", "bad command_id '0x10000'"},
        {30, "command_id = 65536", "bad command_id"},
        {30, "command_id = 0x", "bad command_id"},
        {30, "command_id = 0xFG", "bad command_id"},
        {30, "command_id = -1", "bad command_id"},
        {30, "command_id = +5", "bad command_id"},
        {30, "command_id = 0x1005 5", "bad command_id"},
        {30, "command_id = 1e3", "bad command_id"},
        {30, "command_id = 0x000000001", "bad command_id"},
        {30, "command_id = 99999999999", "bad command_id"},
        {30, "command_id = 0x1005", "'install new copy / restart self' in public PlugX command"},
        {30, "command_id = 4101", "'install new copy / restart self'"},
        {30, "command_id = 0x1001", "'machine information (host and user names)'"},
        {30, "command_id = 0x1000", "'poll / nothing to do'"},
        {30, "command_id = 5", "(old builds)"},
        {30, "command_id =", "empty value for 'command_id'"},
        {40, "command_id = 0xFD01", "'command_id' is for command = uninstall only"},
        {20, "mode = Enforce", "bad mode"},
        {20, "mode = enforced", "bad mode"},
        {20, "mode = dryrun", "bad mode"},
        {20, "mode =", "empty value for 'mode'"},
        {7, "authority =", "empty value"},
        {6, "[authorisation]", "needs an id"},
        {6, "[authorisation ng 2024]", "may hold only"},
        {6, "[authorization ng-2024]", "spelt 'authorisation'"},
        {6, "[authorisation ng-2024] extra", "text after section header"},
        {6, "[authorisation ng-2024", "without ']'"},
        {6, " [authorisation ng-2024]", "beginning of the line"},
        {2, "[Policy]", "unknown section"},
        {3, "nme = test", "unknown key 'nme'"},
        {17, "  rate = 30", "continuation"},
        {18, "  true", "continuation line for 'rate'"},
        {10, "  XK,, GH", "empty entry"},
        {10, "XK", "syntax error"},
        {10, "  QQ", "unknown country code 'QQ'"},
        {1, "rate = 5", "outside any section"},
        {12, "prefixes = 10.0.0.0/8, 10.0.0.0/8", "listed twice"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        expect_refused(cases[i].at, cases[i].line, 0, cases[i].at, cases[i].what);
        refused_count++;
    }
    /* accepted spellings, to show the refusals above are about the value */
    static const struct {
        int at;
        const char *line;
    } ok[] = {{9, "countries = GB, US, AX, SS, BQ"},
              {9, "countries=NG"},
              {9, "countries = NG ,GH"},
              {11, "asns = as100, AS4294967295"},
              {30, "command_id = 0xfd01"},
              {30, "command_id = 0XFD01"},
              {30, "command_id = 0x0000FFFF"},
              {30, "command_id = 9"},
              {30, "command_id = 0x1004"},
              {30, "command_id = 65535"}};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        size_t len;
        char *text = variant(ok[i].at, ok[i].line, 0, &len);
        char err[512] = "";
        if (parse(text, len, err, sizeof(err)) != 0) {
            fail_msg("'%s' refused: %s", ok[i].line, err);
        }
        free(text);
    }
}

static void test_structure_refused(void **state)
{
    (void)state;
    char err[512];
    /* no authorisation at all */
    const char *none = "[policy]\nname = x\n";
    assert_int_not_equal(parse(none, strlen(none), err, sizeof(err)), 0);
    assert_non_null(strstr(err, "authorises nothing"));
    assert_int_not_equal(parse("", 0, err, sizeof(err)), 0);
    /* a NUL byte */
    size_t len;
    char *text = variant(0, NULL, 0, &len);
    text[100] = '\0';
    assert_int_not_equal(parse(text, len, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "NUL"));
    free(text);
    /* an over-long line is refused, not split */
    char longline[400];
    memset(longline, ' ', sizeof(longline));
    memcpy(longline, "legal_reference = x", 19);
    longline[sizeof(longline) - 2] = 'y';
    longline[sizeof(longline) - 1] = '\0';
    expect_refused(8, longline, 0, 8, "longer than");
    /* more authorisations than the bound */
    char *big = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&big, &blen);
    for (int i = 0; i <= POLICY_MAX_AUTHORISATIONS; i++) {
        fprintf(f,
                "[authorisation a%d]\nauthority = A\nlegal_reference = L\ncountries = NG\n"
                "not_before = 2024-01-01T00:00:00Z\nnot_after = 2025-01-01T00:00:00Z\n"
                "rate = 1\ncommand = uninstall\n",
                i);
    }
    fclose(f);
    assert_int_not_equal(parse(big, blen, err, sizeof(err)), 0);
    assert_non_null(strstr(err, "more than 64 authorisations"));
    free(big);
    /* the file loader: missing file, and the same bytes as policy_parse */
    struct policy *p = NULL;
    assert_int_not_equal(policy_load_file("/nonexistent/policy.ini", &p, err, sizeof(err)), 0);
    assert_null(p);
    assert_non_null(strstr(err, "/nonexistent/policy.ini"));
}

/* ---- the reload handle ---- */
static char *write_temp(const char *text, size_t len)
{
    char *path = strdup("/tmp/sinkd-policy-test-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

struct reader_arg {
    struct policy_handle *h;
    volatile int stop;
    unsigned decisions;
};

static void *reader(void *arg)
{
    struct reader_arg *ra = arg;
    struct policy_bot b = {.cc = "NG", .asn = 100};
    b.src.family = AF_INET;
    b.src.ip[0] = 10;
    /* bounded: stops when asked or after 10 million decisions */
    while (!ra->stop && ra->decisions < 10000000) {
        const struct policy_live *live = policy_handle_acquire(ra->h);
        struct policy_verdict v;
        policy_decide(policy_live_policy(live), POLICY_COMMAND_UNINSTALL, &b, 1725000000000000ull,
                      policy_live_rate(live), false, &v);
        assert_true(v.verdict >= VERDICT_SEND && v.verdict <= VERDICT_ALREADY_REHEARSED);
        policy_live_release(live);
        ra->decisions++;
    }
    return NULL;
}

static void test_handle_reload(void **state)
{
    (void)state;
    size_t len1, len2, len3;
    char *good1 = variant(0, NULL, 0, &len1);
    char *good2 = variant(17, "rate = 31", 0, &len2);
    char *bad = variant(9, "countries = XX", 0, &len3);
    char *p1 = write_temp(good1, len1), *p2 = write_temp(good2, len2), *pb = write_temp(bad, len3);
    char err[512] = "";
    struct policy *p = NULL;
    assert_int_equal(policy_load_file(p1, &p, err, sizeof(err)), 0);
    uint8_t sha1[32], sha2[32];
    memcpy(sha1, policy_sha256(p), 32);
    struct policy_handle *h = NULL;
    assert_int_equal(policy_handle_new(p, &h, err, sizeof(err)), 0);

    /* a bad file: error returned with file and line, the old policy stays */
    const struct policy_live *held = policy_handle_acquire(h);
    assert_int_not_equal(policy_handle_reload_file(h, pb, err, sizeof(err)), 0);
    assert_non_null(strstr(err, pb));
    assert_non_null(strstr(err, ":9: authorisation 'ng-2024': unknown country code 'XX'"));
    const struct policy_live *now = policy_handle_acquire(h);
    assert_ptr_equal(now, held);
    assert_memory_equal(policy_sha256(policy_live_policy(now)), sha1, 32);
    policy_live_release(now);

    /* a good file replaces it; a reference held across the swap stays usable */
    assert_int_equal(policy_handle_reload_file(h, p2, err, sizeof(err)), 0);
    now = policy_handle_acquire(h);
    assert_ptr_not_equal(now, held);
    memcpy(sha2, policy_sha256(policy_live_policy(now)), 32);
    assert_memory_not_equal(sha1, sha2, 32);
    assert_string_equal(policy_authorisation_id(policy_live_policy(held), 0), "ng-2024");
    policy_live_release(held);
    policy_live_release(now);

    /* swaps under concurrent readers: AddressSanitizer catches any use after free */
    struct reader_arg ra[2] = {{.h = h}, {.h = h}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, reader, &ra[i]), 0);
    }
    for (int i = 0; i < 300; i++) {
        const char *path = i % 3 == 2 ? pb : i % 2 ? p1 : p2;
        int rc = policy_handle_reload_file(h, path, err, sizeof(err));
        assert_int_equal(rc != 0, path == pb);
    }
    for (int i = 0; i < 2; i++) {
        ra[i].stop = 1;
        pthread_join(t[i], NULL);
        assert_true(ra[i].decisions > 0);
    }
    policy_handle_free(h);
    unlink(p1);
    unlink(p2);
    unlink(pb);
    free(p1);
    free(p2);
    free(pb);
    free(good1);
    free(good2);
    free(bad);
}

static void test_count(void **state)
{
    (void)state;
    print_message("%u variants refused\n", refused_count);
    assert_true(refused_count > 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file_loads),
        cmocka_unit_test(test_misspelt_keys_refused),
        cmocka_unit_test(test_missing_required_refused),
        cmocka_unit_test(test_duplicates_refused),
        cmocka_unit_test(test_bad_values_refused),
        cmocka_unit_test(test_structure_refused),
        cmocka_unit_test(test_handle_reload),
        cmocka_unit_test(test_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
