/* policy_env_test.c -- fail closed (issue 19 #6, issue 18 #4): a policy the server cannot
 * evaluate, or could enforce only with a guessed command id, is refused with one line naming
 * file, line, authorisation and why; what it accepts it binds; the one-line summary says what
 * is in force (issue 19 #7). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/policy.h"

/* line numbers matter: the messages name them */
static const char text[] = "[policy]\n"                          /* 1 */
                           "name = env\n"                        /* 2 */
                           "[authorisation ng-demo]\n"           /* 3 */
                           "authority = A\n"                     /* 4 */
                           "legal_reference = L\n"               /* 5 */
                           "countries = NG\n"                    /* 6 */
                           "exclude_tags = hospital\n"           /* 7 */
                           "not_before = 2024-01-01T00:00:00Z\n" /* 8 */
                           "not_after = 2099-01-01T00:00:00Z\n"  /* 9 */
                           "rate = 10\n"                         /* 10 */
                           "command = uninstall\n"               /* 11 */
                           "mode = enforce\n"                    /* 12 */
                           "[authorisation as-collect]\n"        /* 13 */
                           "authority = B\n"                     /* 14 */
                           "legal_reference = M\n"               /* 15 */
                           "asns = AS100\n"                      /* 16 */
                           "not_before = 2024-01-01T00:00:00Z\n" /* 17 */
                           "not_after = 2099-01-01T00:00:00Z\n"  /* 18 */
                           "rate = 10\n"                         /* 19 */
                           "command = collect\n"                 /* 20 */
                           "mode = enforce\n"                    /* 21 */
                           "[authorisation net]\n"               /* 22 */
                           "authority = C\n"                     /* 23 */
                           "legal_reference = N\n"               /* 24 */
                           "prefixes = 192.0.2.0/24\n"           /* 25 */
                           "not_before = 2024-01-01T00:00:00Z\n" /* 26 */
                           "not_after = 2099-01-01T00:00:00Z\n"  /* 27 */
                           "rate = 10\n"                         /* 28 */
                           "command = uninstall\n"               /* 29 */
                           "command_id = 0xFD01\n";              /* 30 */

static struct policy *load(const char *t)
{
    struct policy *p = NULL;
    char err[512] = "";
    if (policy_parse(t, strlen(t), "env.ini", &p, err, sizeof(err)) != 0) {
        fail_msg("%s", err);
    }
    return p;
}

static const struct policy_env full = {.country_table = true,
                                       .asn_table = true,
                                       .tag_table = true,
                                       .enforce_flag = true,
                                       .default_uninstall_id = 0x4242};

/* env refused with exactly `want` */
static void expect_refused(struct policy *p, struct policy_env env, const char *want)
{
    char err[512] = "";
    if (policy_check_env(p, &env, err, sizeof(err)) == 0) {
        fail_msg("accepted, expected: %s", want);
    }
    if (strcmp(err, want) != 0) {
        fail_msg("got  '%s'\nwant '%s'", err, want);
    }
    assert_null(strchr(err, '\n'));
}

static void test_unevaluable_refused(void **state)
{
    (void)state;
    struct policy *p = load(text);
    char err[512];
    assert_int_equal(policy_check_env(p, &full, err, sizeof(err)), 0);
    /* issue 19 #6: exclude_tags while no tag table is loaded */
    struct policy_env env = full;
    env.tag_table = false;
    expect_refused(p, env,
                   "env.ini:7: authorisation 'ng-demo': exclude_tags cannot be evaluated: no tag "
                   "table is loaded (serve --tags FILE); refused rather than exclude nothing");
    env = full;
    env.country_table = false;
    expect_refused(p, env,
                   "env.ini:6: authorisation 'ng-demo': countries cannot be evaluated: no "
                   "country table is loaded (serve without --no-enrich); refused rather than "
                   "cover no bot");
    env = full;
    env.asn_table = false;
    expect_refused(p, env,
                   "env.ini:16: authorisation 'as-collect': asns cannot be evaluated: no ASN "
                   "table is loaded (serve without --no-enrich); refused rather than cover no "
                   "bot");
    /* the same without --enforce: evaluating scope does not depend on sending */
    env.enforce_flag = false;
    assert_int_not_equal(policy_check_env(p, &env, err, sizeof(err)), 0);
    /* a prefix-only policy needs no table at all */
    struct policy *net = load("[authorisation net]\nauthority = C\nlegal_reference = N\n"
                              "prefixes = 192.0.2.0/24\nexclude_prefixes = 192.0.2.128/25\n"
                              "not_before = 2024-01-01T00:00:00Z\n"
                              "not_after = 2099-01-01T00:00:00Z\nrate = 10\n"
                              "command = uninstall\ncommand_id = 0xFD01\nmode = enforce\n");
    struct policy_env bare = {.enforce_flag = true};
    assert_int_equal(policy_check_env(net, &bare, err, sizeof(err)), 0);
    assert_int_equal(policy_check_env(net, NULL, err, sizeof(err)), 0);
    assert_int_not_equal(policy_check_env(p, NULL, err, sizeof(err)), 0);
    assert_int_not_equal(policy_check_env(NULL, &full, err, sizeof(err)), 0);
    policy_free(net);
    policy_free(p);
}

static void test_enforce_needs_an_id(void **state)
{
    (void)state;
    struct policy *p = load(text);
    char err[512];
    /* issue 18 #4: mode = enforce, --enforce, no command_id, no --uninstall-command */
    struct policy_env env = full;
    env.default_uninstall_id = 0;
    expect_refused(p, env,
                   "env.ini:11: authorisation 'ng-demo': mode = enforce under --enforce needs "
                   "the seized variant's self-delete id: give command_id here or serve "
                   "--uninstall-command ID (there is no default: 0x1005 is 'install new copy / "
                   "restart self')");
    /* without --enforce it loads (dry runs record command id 0: nothing is guessed) */
    env.enforce_flag = false;
    assert_int_equal(policy_check_env(p, &env, err, sizeof(err)), 0);
    /* the default may not be an id with another public meaning, nor out of range */
    env = full;
    env.default_uninstall_id = 0x1005;
    expect_refused(p, env,
                   "env.ini: --uninstall-command 0x1005 is 'install new copy / restart self' in "
                   "public PlugX command tables, not a self-delete: give the seized variant's "
                   "own id");
    env.default_uninstall_id = 0x10000;
    expect_refused(p, env, "env.ini: --uninstall-command 65536 is out of range (1..0xFFFF)");
    /* a collect authorisation in enforce mode needs no id; an uninstall one in dry-run mode
     * neither */
    struct policy *c = load("[authorisation c]\nauthority = C\nlegal_reference = N\n"
                            "countries = NG\nnot_before = 2024-01-01T00:00:00Z\n"
                            "not_after = 2099-01-01T00:00:00Z\nrate = 10\ncommand = collect\n"
                            "mode = enforce\n[authorisation u]\nauthority = C\n"
                            "legal_reference = N\ncountries = NG\n"
                            "not_before = 2024-01-01T00:00:00Z\n"
                            "not_after = 2099-01-01T00:00:00Z\nrate = 10\ncommand = uninstall\n");
    env = full;
    env.default_uninstall_id = 0;
    assert_int_equal(policy_check_env(c, &env, err, sizeof(err)), 0);
    policy_free(c);
    policy_free(p);
}

static void test_summary_line(void **state)
{
    (void)state;
    struct policy *p = load(text);
    char sha[65];
    for (int i = 0; i < 32; i++) {
        snprintf(sha + 2 * i, 3, "%02x", policy_sha256(p)[i]);
    }
    char want[1024];
    /* enforcing with the default id bound */
    char err[512];
    assert_int_equal(policy_check_env(p, &full, err, sizeof(err)), 0);
    char *line = policy_summary_line(p, &full);
    assert_non_null(line);
    snprintf(want, sizeof(want),
             "policy env.ini sha256 %s: 3 authorisations: ng-demo uninstall 0x4242 "
             "(--uninstall-command) ENFORCE (commands are sent); as-collect collect ENFORCE "
             "(commands are sent); net uninstall 0xFD01 dry-run (mode = dry-run)",
             sha);
    assert_string_equal(line, want);
    free(line);
    /* without --enforce and without a default id */
    struct policy_env env = full;
    env.enforce_flag = false;
    env.default_uninstall_id = 0;
    line = policy_summary_line(p, &env);
    snprintf(want, sizeof(want),
             "policy env.ini sha256 %s: 3 authorisations: ng-demo uninstall (no command id) "
             "dry-run (mode = enforce, serve without --enforce); as-collect collect dry-run "
             "(mode = enforce, serve without --enforce); net uninstall 0xFD01 dry-run (mode = "
             "dry-run)",
             sha);
    assert_string_equal(line, want);
    free(line);
    /* enforce without an id (a summary of a policy the check would refuse) never says ENFORCE
     * for that authorisation */
    env.enforce_flag = true;
    line = policy_summary_line(p, &env);
    assert_non_null(strstr(line, "ng-demo uninstall (no command id) dry-run (mode = enforce, "
                                 "but no command id)"));
    free(line);
    /* the description names the bound default */
    char *d = policy_describe(p);
    assert_non_null(strstr(d, "uninstall with command id 0x4242 (no command_id here"));
    assert_non_null(strstr(d, "uninstall with command id 0xFD01 (the seized variant's"));
    assert_non_null(strstr(d, "serve refuses this policy without one"));
    free(d);
    assert_null(policy_summary_line(NULL, &full));
    policy_free(p);
}

static void test_meanings(void **state)
{
    (void)state;
    assert_string_equal(policy_command_id_meaning(0x1005), "install new copy / restart self");
    assert_non_null(policy_command_id_meaning(0x1001));
    assert_non_null(policy_command_id_meaning(0x1000));
    assert_null(policy_command_id_meaning(0x1004));
    assert_null(policy_command_id_meaning(0xFD01));
    assert_null(policy_command_id_meaning(0));
    assert_string_equal(policy_command_name(POLICY_COMMAND_UNINSTALL), "uninstall");
    assert_string_equal(policy_command_name(POLICY_COMMAND_COLLECT), "collect");
    assert_string_equal(policy_command_name(0), "none");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unevaluable_refused),
        cmocka_unit_test(test_enforce_needs_an_id),
        cmocka_unit_test(test_summary_line),
        cmocka_unit_test(test_meanings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
