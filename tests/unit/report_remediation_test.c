/* report_remediation_test.c -- the remediation report on a constructed record sequence with known
 * answers: bots commanded at tc and seen again at tc + 30 min, + 2 h, + 25 h or never; a command
 * that failed; a dry run; a bot commanded under two authorisations; per country, per
 * authorisation, per day, and the observation window cut by --until / --since. */
#include "record_fixture.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "registry_target.h"
#include "report/report.h"

#define MIN_US 60000000ULL
#define HOUR_US 3600000000ULL
#define DAY_US 86400000000ULL
#define T0 (1767225600ULL * 1000000ULL) /* 2026-01-01T00:00:00Z */
#define TC (T0 + 2000000ULL)            /* the commands */
#define TEND (TC + 30 * HOUR_US)        /* node-stopped: the data's end */

/* A contact of bot `host` from country cc; returns nothing, the key is event_bot_key(). */
static void contact(struct record_fixture *fx, uint64_t t, const char *host, const char *cc)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = t;
    snprintf(c->node, sizeof(c->node), "node-a");
    assert_int_equal(net_addr_parse_ip("192.0.2.9", &c->src), 0);
    c->src.port = 40000;
    assert_int_equal(net_addr_parse_ip("198.51.100.7", &c->dst), 0);
    c->dst.port = 443;
    c->transport = CONTACT_TRANSPORT_TCP;
    snprintf(c->family, sizeof(c->family), "plugx");
    c->msg_type = CONTACT_MSG_MACHINE_INFO;
    snprintf(c->bot.host, sizeof(c->bot.host), "%s", host);
    snprintf(c->bot.user, sizeof(c->bot.user), "user");
    event_bot_key(c, c->bot_key);
    snprintf(c->cc, sizeof(c->cc), "%s", cc);
    c->asn = 64500;
    fixture_put(fx, &r);
}

static void key_of(const char *host, char out[33])
{
    struct contact c;
    memset(&c, 0, sizeof(c));
    snprintf(c.family, sizeof(c.family), "plugx");
    snprintf(c.bot.host, sizeof(c.bot.host), "%s", host);
    snprintf(c.bot.user, sizeof(c.bot.user), "user");
    assert_int_equal(net_addr_parse_ip("192.0.2.9", &c.src), 0);
    event_bot_key(&c, out);
}

static void decision(struct record_fixture *fx, uint64_t t, const char *host, const char *auth,
                     uint8_t verdict)
{
    char key[33];
    key_of(host, key);
    fixture_decision(fx, t, key, auth, verdict);
}

static void command(struct record_fixture *fx, uint64_t t, const char *host, const char *auth,
                    bool sent)
{
    char key[33];
    key_of(host, key);
    fixture_command(fx, t, key, auth, sent ? RECORD_COMMAND_SENT : RECORD_COMMAND_FAILED,
                    sent ? NULL : "connection closed");
}

/* Sent and commanded as serve does it: contact, durable send decision, command-sent. */
static void commanded(struct record_fixture *fx, const char *host, const char *cc, const char *auth,
                      uint64_t tc)
{
    contact(fx, tc - 2000000ULL, host, cc);
    decision(fx, tc - 1000000ULL, host, auth, VERDICT_SEND);
    command(fx, tc, host, auth, true);
}

static int setup(void **state)
{
    struct record_fixture *fx = calloc(1, sizeof(*fx));
    char err[256];
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/sinkd-remrep-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    test_registry_target(fx->db, sizeof(fx->db), fx->dir);
    assert_int_equal(test_registry_open(&fx->reg, fx->db, err, sizeof(err)), 0);

    commanded(fx, "A", "NG", "ng-demo", TC); /* back after 30 min */
    commanded(fx, "B", "NG", "ng-demo", TC); /* back after 2 h */
    commanded(fx, "C", "IN", "in-demo", TC); /* back after 25 h */
    commanded(fx, "D", "IN", "in-demo", TC); /* never back */
    /* G: send decided, the connection closed first: command-failed, never commanded. */
    contact(fx, TC - 2000000ULL, "G", "NG");
    decision(fx, TC - 1000000ULL, "G", "ng-demo", VERDICT_SEND);
    command(fx, TC, "G", "ng-demo", false);
    /* E: a dry run only; F: outside every authorisation. */
    contact(fx, TC - 2000000ULL, "E", "IN");
    decision(fx, TC - 1000000ULL, "E", "in-demo", VERDICT_DRY_RUN);
    contact(fx, TC - 2000000ULL, "F", "DE");
    decision(fx, TC - 1000000ULL, "F", "", VERDICT_NOT_AUTHORISED);
    /* H: commanded under gh-a at tc, under gh-b at tc + 1 h, back at tc + 90 min. */
    commanded(fx, "H", "GH", "gh-a", TC);
    decision(fx, TC + HOUR_US - 1, "H", "gh-b", VERDICT_SEND);
    command(fx, TC + HOUR_US, "H", "gh-b", true);

    contact(fx, TC + 30 * MIN_US, "A", "NG");
    contact(fx, TC + 90 * MIN_US, "H", "GH");
    contact(fx, TC + 2 * HOUR_US, "B", "NG");
    contact(fx, TC + 25 * HOUR_US, "C", "IN");
    contact(fx, TC + 26 * HOUR_US, "C", "IN");

    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_NODE_STOPPED;
    r.u.note.time_us = TEND;
    fixture_put(fx, &r);
    assert_int_equal(registry_flush(fx->reg, err, sizeof(err)), 0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct record_fixture *fx = *state;
    char cmd[160];
    registry_close(fx->reg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    free(fx);
    return 0;
}

static json_t *run_json(struct record_fixture *fx, uint64_t since, uint64_t until)
{
    char *buf = NULL;
    size_t len = 0;
    char err[256];
    FILE *f = open_memstream(&buf, &len);
    struct report_options o = {
        .format = REPORT_SUMMARY_JSON, .remediation = true, .since_us = since, .until_us = until};
    assert_int_equal(report_write(fx->reg, &o, f, err, sizeof(err)), 0);
    fclose(f);
    json_error_t jerr;
    json_t *j = json_loads(buf, 0, &jerr);
    free(buf);
    assert_non_null(j);
    return j;
}

static json_t *find(json_t *arr, const char *field, const char *key)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, field)), key) == 0) {
            return v;
        }
    }
    fail_msg("no %s '%s' in the report", field, key);
    return NULL;
}

static long long num(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static double share(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    if (json_is_null(v)) {
        return -1;
    }
    assert_true(json_is_real(v));
    return json_real_value(v);
}

/* {send_decided, commanded, sent, failed, seen, obs1h, seen1h, obs24h, seen24h, silent,
 *  dry_run, dry_run_decisions} */
static void expect(json_t *o, const long long want[12])
{
    static const char *const keys[12] = {"send_decided",    "commanded",    "commands_sent",
                                         "commands_failed", "seen_after",   "observed_1h",
                                         "seen_after_1h",   "observed_24h", "seen_after_24h",
                                         "silent",          "dry_run",      "dry_run_decisions"};
    for (int i = 0; i < 12; i++) {
        if (num(o, keys[i]) != want[i]) {
            fail_msg("%s: %lld, want %lld", keys[i], num(o, keys[i]), want[i]);
        }
    }
}

static void test_whole_data(void **state)
{
    struct record_fixture *fx = *state;
    json_t *j = run_json(fx, 0, 0);
    json_t *t = json_object_get(j, "totals");
    /* Bots: A B C D H commanded (H once, though under two authorisations); A B C H back; B, C
     * and H past 1 h (H: 90 min after its first command); C alone past 24 h; D silent. */
    const long long total[12] = {6, 5, 6, 1, 4, 5, 3, 5, 1, 1, 1, 1};
    expect(t, total);
    assert_true(share(t, "share_after_24h") > 0.199 && share(t, "share_after_24h") < 0.201);
    assert_true(share(t, "silent_share") > 0.199 && share(t, "silent_share") < 0.201);

    json_t *cc = json_object_get(j, "countries");
    const long long ng[12] = {3, 2, 2, 1, 2, 2, 1, 2, 0, 0, 0, 0};
    const long long in[12] = {2, 2, 2, 0, 1, 2, 1, 2, 1, 1, 1, 1};
    const long long gh[12] = {1, 1, 2, 0, 1, 1, 1, 1, 0, 0, 0, 0};
    expect(find(cc, "cc", "NG"), ng);
    expect(find(cc, "cc", "IN"), in);
    expect(find(cc, "cc", "GH"), gh);
    /* No remediation for DE (not authorised): no row. */
    assert_int_equal(json_array_size(cc), 3);
    assert_true(share(find(cc, "cc", "IN"), "share_after_24h") > 0.499);

    json_t *auth = json_object_get(j, "authorisations");
    assert_int_equal(json_array_size(auth), 4);
    expect(find(auth, "authorisation", "ng-demo"), ng);
    expect(find(auth, "authorisation", "in-demo"), in);
    /* Per authorisation each command is its own start: gh-b's came at tc + 1 h, so H's contact
     * at tc + 90 min is after it but not 1 h after it. */
    const long long gha[12] = {1, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0};
    const long long ghb[12] = {1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0};
    expect(find(auth, "authorisation", "gh-a"), gha);
    expect(find(auth, "authorisation", "gh-b"), ghb);

    /* Per day: 6 commands and 1 failure on day 0; commanded bots seen after their command
     * A, H, B on day 0, C on day 1 (twice, counted once). */
    json_t *days = json_object_get(j, "days");
    assert_int_equal(json_array_size(days), 2);
    json_t *d0 = find(days, "day", "2026-01-01"), *d1 = find(days, "day", "2026-01-02");
    assert_int_equal(num(d0, "commands_sent"), 6);
    assert_int_equal(num(d0, "commands_failed"), 1);
    assert_int_equal(num(d0, "commanded_seen"), 3);
    assert_int_equal(num(d1, "commands_sent"), 0);
    assert_int_equal(num(d1, "commanded_seen"), 1);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "window"), "data_end")),
        "2026-01-02T06:00:02+00:00");
    json_decref(j);
}

static void test_until_cuts_observation(void **state)
{
    struct record_fixture *fx = *state;
    /* As of tc + 3 h: all five observed 1 h, none 24 h (no 24 h share at all); back so far: A
     * (30 min), H (90 min), B (2 h); past 1 h: B and H; C and D silent so far. */
    json_t *j = run_json(fx, 0, TC + 3 * HOUR_US);
    json_t *t = json_object_get(j, "totals");
    const long long total[12] = {6, 5, 6, 1, 3, 5, 2, 0, 0, 2, 1, 1};
    expect(t, total);
    assert_true(share(t, "share_after_24h") < 0);
    assert_true(share(t, "share_after_1h") > 0.399 && share(t, "share_after_1h") < 0.401);
    json_decref(j);

    /* As of tc + 40 min: nobody observed a whole hour (gh-b's command is after the end too). */
    j = run_json(fx, 0, TC + 40 * MIN_US);
    t = json_object_get(j, "totals");
    const long long early[12] = {6, 5, 5, 1, 1, 0, 0, 0, 0, 4, 1, 1};
    expect(t, early);
    assert_true(share(t, "share_after_1h") < 0);
    /* gh-b has nothing in the window, so no row. */
    json_t *auth = json_object_get(j, "authorisations");
    assert_int_equal(json_array_size(auth), 3);
    json_decref(j);
}

static void test_since_selects_commands(void **state)
{
    struct record_fixture *fx = *state;
    /* From tc + 1 s: only gh-b's command (tc + 1 h) and its decision are in the window. */
    json_t *j = run_json(fx, TC + 1000000ULL, 0);
    json_t *t = json_object_get(j, "totals");
    const long long total[12] = {1, 1, 1, 0, 1, 1, 0, 1, 0, 0, 0, 0};
    expect(t, total);
    json_t *days = json_object_get(j, "days");
    /* The day curve covers the days overlapping the window: both. */
    assert_int_equal(json_array_size(days), 2);
    json_decref(j);
}

static void test_text_and_csv(void **state)
{
    struct record_fixture *fx = *state;
    char *buf = NULL;
    size_t len = 0;
    char err[256];
    FILE *f = open_memstream(&buf, &len);
    struct report_options o = {.format = REPORT_SUMMARY, .remediation = true};
    assert_int_equal(report_write(fx->reg, &o, f, err, sizeof(err)), 0);
    fclose(f);
    assert_non_null(strstr(buf, "bots commanded:                 5\n"));
    assert_non_null(strstr(buf, "observed >= 24 h after command: 5, seen after 24 h: 1 (20.0% of"));
    assert_non_null(strstr(buf, "fell silent:                    1 of 5 commanded (20.0%)"));
    assert_non_null(strstr(buf, "data end (latest record):       2026-01-02 06:00:02 UTC"));
    assert_non_null(strstr(buf, "observation rule: "));
    free(buf);

    f = open_memstream(&buf, &len);
    o.format = REPORT_CSV;
    assert_int_equal(report_write(fx->reg, &o, f, err, sizeof(err)), 0);
    fclose(f);
    const char *want_head =
        "group,key,send_decided,commanded,commands_sent,commands_failed,seen_after,observed_1h,"
        "seen_after_1h,share_after_1h,observed_24h,seen_after_24h,share_after_24h,silent,"
        "silent_share,dry_run,dry_run_decisions,commanded_seen\n"
        "total,\"\",6,5,6,1,4,5,3,0.6000,5,1,0.2000,1,0.2000,1,1,\n";
    assert_memory_equal(buf, want_head, strlen(want_head));
    assert_non_null(strstr(buf, "\nday,\"2026-01-02\",,,0,0,,,,,,,,,,,,1\n"));
    /* Every line has the header's 18 columns. */
    int lines = 0;
    for (char *line = buf; *line; lines++) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        int commas = 0;
        for (char *p = line; p < nl; p++) {
            commas += *p == ',';
        }
        assert_int_equal(commas, 17);
        line = nl + 1;
    }
    /* total, 3 countries, 4 authorisations, 2 days, header */
    assert_int_equal(lines, 11);
    free(buf);

    /* Formats that have no remediation form are refused. */
    f = open_memstream(&buf, &len);
    o.format = REPORT_INTELMQ;
    assert_true(report_write(fx->reg, &o, f, err, sizeof(err)) < 0);
    fclose(f);
    free(buf);
}

static void test_empty_registry(void **state)
{
    (void)state;
    char dir[] = "/tmp/sinkd-remrep-empty-XXXXXX", path[128], err[256];
    assert_non_null(mkdtemp(dir));
    test_registry_target(path, sizeof(path), dir);
    struct record_fixture fx = {0};
    assert_int_equal(test_registry_open(&fx.reg, path, err, sizeof(err)), 0);
    json_t *j = run_json(&fx, 0, 0);
    const long long zero[12] = {0};
    expect(json_object_get(j, "totals"), zero);
    assert_int_equal(json_array_size(json_object_get(j, "countries")), 0);
    json_decref(j);
    registry_close(fx.reg);
    snprintf(path, sizeof(path), "rm -rf '%s'", dir);
    assert_int_equal(system(path), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_whole_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_until_cuts_observation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_since_selects_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_and_csv, setup, teardown),
        cmocka_unit_test(test_empty_registry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
