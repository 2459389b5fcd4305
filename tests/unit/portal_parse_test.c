/* portal_parse_test.c -- the portal's parsers on good and hostile input: the authorities file
 * (every refusal names file and line), the scope rule, token lookup, HTTP requests (repeated
 * security headers, chunked bodies, oversize heads and bodies), query strings, cookies,
 * disinfection requests outside the scope, and the policy an approval writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"
#include "portal/internal.h" /* sessions: expiry and the failed-login limit */
#include "portal/portal.h"

static char token_hex[65];

static const char *authorities_text(void)
{
    static char text[2048];
    unsigned char d[32];
    EVP_Digest("secret-ng", 9, d, NULL, EVP_sha256(), NULL);
    for (size_t i = 0; i < 32; i++) {
        snprintf(token_hex + 2 * i, 3, "%02x", d[i]);
    }
    snprintf(text, sizeof(text),
             "; two authorities\n"          /* 1 */
             "[authority ng-cert]\n"        /* 2 */
             "name = CERT Nigeria\n"        /* 3 */
             "countries = NG, GH\n"         /* 4 */
             "networks = 198.51.100.0/24\n" /* 5 */
             "token_sha256 = %s\n"          /* 6 */
             "may = read, request\n"        /* 7 */
             "max_days_old = 100\n"         /* 8 */
             "\n"                           /* 9 */
             "[authority as-only]\n"        /* 10 */
             "name = An ISP CERT\n"         /* 11 */
             "asns = AS64500\n"             /* 12 */
             "client_cert_sha256 = %064d\n" /* 13 */
             "may = read\n"                 /* 14 */
             "max_days_old = 30\n",         /* 15 */
             token_hex, 7);
    return text;
}

static struct portal_authorities *load(const char *text, char *err, size_t errlen)
{
    struct portal_authorities *as = NULL;
    if (portal_authorities_parse(text, strlen(text), "auth.ini", &as, err, errlen) != 0) {
        return NULL;
    }
    return as;
}

static void test_valid_file(void **state)
{
    (void)state;
    char err[512] = "";
    struct portal_authorities *as = load(authorities_text(), err, sizeof(err));
    assert_non_null(as);
    assert_int_equal(as->n, 2);
    const struct portal_authority *ng = as->a[0];
    assert_string_equal(ng->id, "ng-cert");
    assert_true(ng->may_read && ng->may_request);
    assert_int_equal(ng->max_days_old, 100);
    assert_true(as->a[1]->has_cert && !as->a[1]->has_token);
    /* The token is found by its digest; a wrong or truncated token is not. */
    assert_ptr_equal(portal_authority_by_token(as, "secret-ng", 9), ng);
    assert_null(portal_authority_by_token(as, "secret-n", 8));
    assert_null(portal_authority_by_token(as, "secret-ng ", 10));
    char *text = portal_authorities_describe(as);
    assert_non_null(strstr(text, "countries NG,GH; networks 198.51.100.0/24"));
    free(text);
    portal_authorities_free(as);
}

static void test_scope_rule(void **state)
{
    (void)state;
    char err[512];
    struct portal_authorities *as = load(authorities_text(), err, sizeof(err));
    assert_non_null(as);
    const struct portal_authority *ng = as->a[0], *isp = as->a[1];
    struct net_addr in_net, out;
    net_addr_parse_ip("198.51.100.9", &in_net);
    net_addr_parse_ip("203.0.113.9", &out);
    /* n6 "inside": country OR AS OR network. */
    assert_true(portal_scope_holds(ng, "NG", 0, &out));
    assert_true(portal_scope_holds(ng, "DE", 0, &in_net));
    assert_false(portal_scope_holds(ng, "DE", 64500, &out));
    assert_false(portal_scope_holds(ng, "", 0, &out)); /* unknown country is nobody's */
    assert_true(portal_scope_holds(isp, "DE", 64500, &out));
    assert_false(portal_scope_holds(isp, "NG", 64501, &in_net));
    struct net_cidr sub, wider, other;
    net_cidr_parse("198.51.100.128/25", &sub, NULL, 0);
    net_cidr_parse("198.51.0.0/16", &wider, NULL, 0);
    net_cidr_parse("2001:db8::/32", &other, NULL, 0);
    assert_true(portal_scope_has_network(ng, &sub));
    assert_false(portal_scope_has_network(ng, &wider));
    assert_false(portal_scope_has_network(ng, &other));
    portal_authorities_free(as);
}

/* Replaces line `n` (1-based) of the valid file by `line` and expects "auth.ini:<want>:" and
 * `what` in the error. */
static void expect_refused(int n, const char *line, int want, const char *what)
{
    char text[4096] = "";
    const char *src = authorities_text();
    int cur = 1;
    for (const char *p = src; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (cur == n) {
            strcat(text, line);
            strcat(text, "\n");
        } else {
            strncat(text, p, len);
        }
        p += len;
        cur++;
    }
    char err[512] = "";
    struct portal_authorities *as = load(text, err, sizeof(err));
    if (as != NULL) {
        fail_msg("line %d '%s' was accepted", n, line);
    }
    char prefix[32];
    snprintf(prefix, sizeof(prefix), "auth.ini:%d: ", want);
    if (strncmp(err, prefix, strlen(prefix)) != 0 || strstr(err, what) == NULL) {
        fail_msg("line %d '%s': got '%s', want '%s...%s'", n, line, err, prefix, what);
    }
}

static void test_refusals_name_the_line(void **state)
{
    (void)state;
    expect_refused(4, "countries = ng", 4, "upper case");
    expect_refused(4, "countries = NG, NG", 4, "listed twice");
    expect_refused(4, "countrys = NG", 4, "unknown key 'countrys'");
    expect_refused(5, "networks = 198.51.100.1/24", 5, "bits set past /24");
    expect_refused(5, "networks = 0.0.0.0/0", 5, "whole address space");
    expect_refused(5, "networks = 198.51.100.7", 5, "CIDR");
    expect_refused(6, "token_sha256 = abc", 6, "64 hex digits");
    expect_refused(7, "may = read, write", 7, "unknown right 'write'");
    expect_refused(8, "max_days_old = 0", 8, "max_days_old");
    expect_refused(8, "max_days_old = 99999", 8, "max_days_old");
    expect_refused(8, "name = again", 8, "duplicate key 'name' (first on line 3)");
    expect_refused(10, "[authority ng-cert]", 10, "duplicate authority id 'ng-cert'");
    expect_refused(10, "[authorities x]", 10, "unknown section");
    expect_refused(10, "[authority b@d]", 10, "may hold only");
    expect_refused(12, "asns = AS0", 12, "bad AS number");
    expect_refused(12, "asns = 4294967296", 12, "bad AS number");
    expect_refused(13, "client_cert_sha256 = zz", 13, "64 hex digits");
    expect_refused(1, "name = outside", 1, "outside any section");
    expect_refused(9, "garbage line", 9, "syntax error");
    /* A whole section missing its scope or its way to log in names its header. */
    expect_refused(12, "; no scope", 10, "empty scope");
    expect_refused(13, "; no login", 10, "no way to log in");
    expect_refused(14, "; no rights", 10, "missing required key 'may'");
    /* The same token twice would log two authorities in as one. */
    char line[100];
    snprintf(line, sizeof(line), "token_sha256 = %s", token_hex);
    expect_refused(13, line, 13, "same token_sha256 as authority 'ng-cert'");
}

static void test_hostile_files(void **state)
{
    (void)state;
    char err[512];
    struct portal_authorities *as = NULL;
    assert_int_equal(portal_authorities_parse("", 0, "auth.ini", &as, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no [authority"));
    const char nul[] = "[authority a]\nname = x\0y\n";
    assert_int_equal(
        portal_authorities_parse(nul, sizeof(nul) - 1, "auth.ini", &as, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "auth.ini:2: NUL byte"));
    char *longline = malloc(3000);
    memset(longline, 'a', 2999);
    memcpy(longline, "[authority a]\nname = ", 21);
    longline[2999] = '\0';
    assert_int_equal(portal_authorities_parse(longline, 2999, "auth.ini", &as, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "auth.ini:2: "));
    assert_non_null(strstr(err, "longer than"));
    free(longline);
}

/* ---- HTTP ---- */

static enum portal_parse_result parse(const char *text, struct portal_request *r)
{
    char why[96];
    return portal_http_parse(text, strlen(text), r, why, sizeof(why));
}

static void test_http_requests(void **state)
{
    (void)state;
    struct portal_request *r = malloc(sizeof(*r));
    assert_int_equal(parse("GET /api/v1/victims?format=n6&cc=NG HTTP/1.1\r\nHost: a\r\n"
                           "authorization: Bearer abc\r\nX-Justification: case 7\r\n\r\n",
                           r),
                     PORTAL_PARSE_DONE);
    assert_int_equal(r->method, PORTAL_GET);
    assert_string_equal(r->path, "/api/v1/victims");
    assert_string_equal(r->query, "format=n6&cc=NG");
    assert_string_equal(r->authorization, "Bearer abc");
    assert_string_equal(r->justification, "case 7");
    /* Incomplete heads ask for more; a complete one with a body waits for all of it. */
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: a\r\n", r), PORTAL_PARSE_NEED_MORE);
    assert_int_equal(parse("POST /api/v1/requests HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc", r),
                     PORTAL_PARSE_NEED_MORE);
    assert_int_equal(parse("POST /api/v1/requests HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", r),
                     PORTAL_PARSE_DONE);
    assert_int_equal(r->body_len, 3);
    assert_memory_equal(r->body, "abc", 3);
    /* Two Authorization headers: which one a proxy forwards is not for us to guess. */
    assert_int_equal(parse("GET / HTTP/1.1\r\nAuthorization: Bearer a\r\nAuthorization: Bearer "
                           "b\r\n\r\n",
                           r),
                     PORTAL_PARSE_BAD);
    assert_int_equal(parse("GET / HTTP/1.1\r\nCookie: a=1\r\ncookie: b=2\r\n\r\n", r),
                     PORTAL_PARSE_BAD);
    assert_int_equal(parse("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0"
                           "\r\n\r\n",
                           r),
                     PORTAL_PARSE_BAD);
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", r), PORTAL_PARSE_BAD);
    assert_int_equal(parse("GET http://evil/ HTTP/1.1\r\n\r\n", r), PORTAL_PARSE_BAD);
    assert_int_equal(parse("NONSENSE\r\n\r\n", r), PORTAL_PARSE_BAD);
    assert_int_equal(parse("GET / HTTP/1.1\r\nX-Justification: a\x01z\r\n\r\n", r),
                     PORTAL_PARSE_BAD);
    char big[PORTAL_BODY_MAX + 200];
    snprintf(big, sizeof(big), "POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n",
             PORTAL_BODY_MAX + 1);
    assert_int_equal(parse(big, r), PORTAL_PARSE_TOO_LARGE);
    /* A head that never ends is cut at its bound. */
    char *head = malloc(PORTAL_HEAD_MAX + 100);
    strcpy(head, "GET / HTTP/1.1\r\n");
    size_t o = strlen(head);
    while (o < PORTAL_HEAD_MAX + 50) {
        memcpy(head + o, "X-A: aaaaaaaaaaaaaaaaaaaaaaaaaa\r\n", 33);
        o += 33;
    }
    head[o] = '\0';
    assert_int_equal(parse(head, r), PORTAL_PARSE_TOO_LARGE);
    free(head);
    char longjust[2000];
    memset(longjust, 'j', sizeof(longjust));
    memcpy(longjust, "GET / HTTP/1.1\r\nX-Justification: ", 33);
    strcpy(longjust + 1000, "\r\n\r\n");
    assert_int_equal(parse(longjust, r), PORTAL_PARSE_TOO_LARGE);
    free(r);
}

static void test_params_and_cookies(void **state)
{
    (void)state;
    struct portal_params *ps = malloc(sizeof(*ps));
    char why[96];
    const char *q = "cc=NG%2CGH&ip.net=198.51.100.0%2F24&x+y=a+b&empty=&flag";
    assert_int_equal(portal_params_parse(q, strlen(q), ps, why, sizeof(why)), 0);
    assert_int_equal(ps->n, 5);
    assert_string_equal(portal_params_get(ps, "cc"), "NG,GH");
    assert_string_equal(portal_params_get(ps, "ip.net"), "198.51.100.0/24");
    assert_string_equal(portal_params_get(ps, "x y"), "a b");
    assert_string_equal(portal_params_get(ps, "empty"), "");
    assert_string_equal(portal_params_get(ps, "flag"), "");
    assert_int_equal(portal_params_parse("a=%zz", 5, ps, why, sizeof(why)), -1);
    assert_int_equal(portal_params_parse("a=%4", 4, ps, why, sizeof(why)), -1);
    assert_int_equal(portal_params_parse("a=%00", 5, ps, why, sizeof(why)), -1);
    assert_int_equal(portal_params_parse("=x", 2, ps, why, sizeof(why)), -1);
    char many[2000] = "";
    for (int i = 0; i < PORTAL_PARAMS_MAX + 1; i++) {
        strcat(many, "a=1&");
    }
    assert_int_equal(portal_params_parse(many, strlen(many), ps, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "too many"));
    char v[80];
    assert_int_equal(
        portal_cookie_get("a=1; sinkd_session=abc; b=2", "sinkd_session", v, sizeof(v)), 0);
    assert_string_equal(v, "abc");
    assert_int_equal(portal_cookie_get("xsinkd_session=abc", "sinkd_session", v, sizeof(v)), -1);
    assert_int_equal(portal_cookie_get("sinkd_session=abc", "sinkd_session", v, 3), -1);
    free(ps);
}

/* ---- disinfection requests ---- */

static void test_requests_stay_in_scope(void **state)
{
    (void)state;
    char err[512], why[256];
    struct portal_authorities *as = load(authorities_text(), err, sizeof(err));
    assert_non_null(as);
    const struct portal_authority *ng = as->a[0], *isp = as->a[1];
    struct portal_disinfection *r = malloc(sizeof(*r));
    const uint64_t now = 1767225600000000ull; /* 2026-01-01 */
    const char *ok = "{\"countries\":[\"NG\"],\"networks\":\"198.51.100.0/25\","
                     "\"legal_reference\":\"Order 5\",\"contact\":\"a@b\","
                     "\"not_before\":\"2026-01-01\",\"not_after\":\"2026-03-01\"}";
    assert_int_equal(portal_disinfection_from_json(ng, ok, strlen(ok), now, r, why, sizeof(why)),
                     0);
    assert_int_equal(r->n_countries, 1);
    assert_int_equal(r->n_networks, 1);
    /* Outside the scope: 1 (a 403), never 0. */
    const char *other = "{\"countries\":[\"DE\"],\"legal_reference\":\"x\",\"contact\":\"y\","
                        "\"not_before\":\"2026-01-01\",\"not_after\":\"2026-03-01\"}";
    assert_int_equal(
        portal_disinfection_from_json(ng, other, strlen(other), now, r, why, sizeof(why)), 1);
    const char *wide =
        "{\"networks\":[\"198.51.0.0/16\"],\"legal_reference\":\"x\","
        "\"contact\":\"y\",\"not_before\":\"2026-01-01\",\"not_after\":\"2026-03-01\"}";
    assert_int_equal(
        portal_disinfection_from_json(ng, wide, strlen(wide), now, r, why, sizeof(why)), 1);
    /* An authority without the right may not ask at all. */
    assert_int_equal(portal_disinfection_from_json(isp, ok, strlen(ok), now, r, why, sizeof(why)),
                     1);
    /* Malformed: -1. */
    const char *semi = "{\"countries\":\"NG\",\"legal_reference\":\"x; y\",\"contact\":\"y\","
                       "\"not_before\":\"2026-01-01\",\"not_after\":\"2026-03-01\"}";
    assert_int_equal(
        portal_disinfection_from_json(ng, semi, strlen(semi), now, r, why, sizeof(why)), -1);
    const char *past = "{\"countries\":\"NG\",\"legal_reference\":\"x\",\"contact\":\"y\","
                       "\"not_before\":\"2025-01-01\",\"not_after\":\"2025-03-01\"}";
    assert_int_equal(
        portal_disinfection_from_json(ng, past, strlen(past), now, r, why, sizeof(why)), -1);
    const char *extra = "{\"countries\":\"NG\",\"mode\":\"enforce\"}";
    assert_int_equal(
        portal_disinfection_from_json(ng, extra, strlen(extra), now, r, why, sizeof(why)), -1);
    struct portal_params *ps = malloc(sizeof(*ps));
    const char *form = "countries=GH&legal_reference=Order+9&contact=c&not_before=2026-01-02&"
                       "not_after=2026-01-30";
    assert_int_equal(portal_params_parse(form, strlen(form), ps, why, sizeof(why)), 0);
    assert_int_equal(portal_disinfection_from_params(ng, ps, now, r, why, sizeof(why)), 0);
    assert_string_equal(r->countries[0], "GH");

    /* The approval writes a policy the policy parser accepts, one authorisation per kind. */
    assert_int_equal(portal_disinfection_from_json(ng, ok, strlen(ok), now, r, why, sizeof(why)),
                     0);
    r->id = 12;
    const char *old = "[policy]\nname = p\n\n[authorisation a]\nauthority = A\nlegal_reference = "
                      "L\ncountries = IN\nnot_before = 2024-01-01T00:00:00Z\nnot_after = "
                      "2099-01-01T00:00:00Z\nrate = 5\ncommand = uninstall\n";
    const char *tags[] = {"hospital"};
    char *next = NULL;
    size_t next_len = 0;
    assert_int_equal(portal_approve_policy(old, strlen(old), "policy.ini", r, "CERT Nigeria", 10, 0,
                                           tags, 1, &next, &next_len, err, sizeof(err)),
                     0);
    struct policy *p = NULL;
    assert_int_equal(policy_parse(next, next_len, "policy.ini", &p, err, sizeof(err)), 0);
    assert_int_equal(policy_authorisation_count(p), 3);
    assert_string_equal(policy_authorisation_id(p, 1), "portal-12-cc");
    assert_string_equal(policy_authorisation_id(p, 2), "portal-12-net");
    /* The cc authorisation covers NG bots, the net one the network; a DE bot outside it none. */
    /* as serve would check it: its tag table, --enforce and --uninstall-command (there is no
     * default self-delete id; the approval writes none) */
    struct policy_env env = {true, true, true, true, 0xFD01};
    assert_int_equal(policy_check_env(p, &env, err, sizeof(err)), 0);
    struct policy_rate *rate = NULL;
    assert_int_equal(policy_rate_new(p, NULL, &rate), 0);
    struct policy_bot bot = {.cc = "NG"};
    net_addr_parse_ip("203.0.113.5", &bot.src);
    struct policy_verdict v;
    policy_decide(p, POLICY_COMMAND_UNINSTALL, &bot, now + 1000000, rate, true, &v);
    assert_int_equal(v.verdict, VERDICT_SEND);
    assert_string_equal(v.authorisation_id, "portal-12-cc");
    memcpy(bot.cc, "DE", 3);
    net_addr_parse_ip("198.51.100.5", &bot.src);
    policy_decide(p, POLICY_COMMAND_UNINSTALL, &bot, now + 1000000, rate, true, &v);
    assert_string_equal(v.authorisation_id, "portal-12-net");
    net_addr_parse_ip("198.51.100.200", &bot.src);
    policy_decide(p, POLICY_COMMAND_UNINSTALL, &bot, now + 1000000, rate, true, &v);
    assert_int_equal(v.verdict, VERDICT_NOT_AUTHORISED);
    policy_rate_free(rate);
    policy_free(p);
    free(next);
    free(ps);
    free(r);
    portal_authorities_free(as);
}

/* ---- sessions ---- */

static void test_sessions_expire(void **state)
{
    (void)state;
    struct portal_sessions *t = calloc(1, sizeof(*t));
    const uint64_t t0 = 1767225600000000ull, s = 1000000ull;
    struct portal_session *a = portal_session_new(t, "ng-cert", "case 1", t0);
    assert_non_null(a);
    char id[PORTAL_SESSION_ID_HEX + 1];
    strcpy(id, a->id);
    assert_int_equal(strlen(id), PORTAL_SESSION_ID_HEX);
    assert_ptr_equal(portal_session_find(t, id, t0 + 60 * s), a);
    /* Idle too long: gone, and stays gone. */
    assert_null(portal_session_find(t, id, t0 + 60 * s + (PORTAL_SESSION_TTL_S + 1) * s));
    assert_null(portal_session_find(t, id, t0 + 61 * s));
    /* Kept busy, it still ends PORTAL_SESSION_MAX_S after login. */
    struct portal_session *b = portal_session_new(t, "ng-cert", "case 2", t0);
    strcpy(id, b->id);
    uint64_t now = t0;
    while (now + 600 * s < t0 + PORTAL_SESSION_MAX_S * s) {
        now += 600 * s;
        assert_non_null(portal_session_find(t, id, now));
    }
    assert_null(portal_session_find(t, id, t0 + (PORTAL_SESSION_MAX_S + 1) * s));
    /* A logged-out session cannot be replayed; a wrong id of the right length finds nothing. */
    struct portal_session *c = portal_session_new(t, "in-cert", "case 3", t0);
    strcpy(id, c->id);
    portal_session_end(c);
    assert_null(portal_session_find(t, id, t0 + s));
    id[0] = id[0] == 'a' ? 'b' : 'a';
    assert_null(portal_session_find(t, id, t0 + s));
    /* Ten failures from one address block it for the window, not another address. */
    struct net_addr ip, other;
    net_addr_parse_ip("192.0.2.1", &ip);
    net_addr_parse_ip("192.0.2.2", &other);
    for (int i = 0; i < PORTAL_FAIL_MAX; i++) {
        assert_false(portal_fail_blocked(t, &ip, t0));
        portal_fail_note(t, &ip, t0);
    }
    assert_true(portal_fail_blocked(t, &ip, t0 + s));
    assert_false(portal_fail_blocked(t, &other, t0 + s));
    assert_false(portal_fail_blocked(t, &ip, t0 + (PORTAL_FAIL_WINDOW_S + 1) * s));
    free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_file),
        cmocka_unit_test(test_scope_rule),
        cmocka_unit_test(test_refusals_name_the_line),
        cmocka_unit_test(test_hostile_files),
        cmocka_unit_test(test_http_requests),
        cmocka_unit_test(test_params_and_cookies),
        cmocka_unit_test(test_requests_stay_in_scope),
        cmocka_unit_test(test_sessions_expire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
