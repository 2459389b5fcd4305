/* util_conf_test.c -- sinkd.conf sections to option arguments: the good file in order with its
 * lines, and every refusal naming FILE:LINE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/conf.h"

static const struct conf_option opts[] = {
    {"state", true, false},        {"listen", true, true},   {"enforce", false, false},
    {"no-registry", false, false}, {"workers", true, false},
};
#define NOPTS (sizeof(opts) / sizeof(opts[0]))

static int parse(const char *text, struct conf_args *out, char *err, size_t errlen)
{
    return conf_parse(text, strlen(text), "t.conf", "serve", opts, NOPTS, out, err, errlen);
}

static void test_good_file(void **state)
{
    (void)state;
    struct conf_args a;
    char err[256] = "";
    const char *text = "\xEF\xBB\xBF# sinkd.conf\n"
                       "; another comment\n"
                       "\n"
                       "[serve]\n"
                       "state = /var/lib/sinkd\n"
                       "listen = 0.0.0.0:443\n"
                       "listen=[::]:443 ; inline comment\n"
                       "enforce = yes\n"
                       "no-registry = false\n"
                       "workers = 4\n";
    assert_int_equal(parse(text, &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 5);
    assert_string_equal(a.v[0].arg, "--state=/var/lib/sinkd");
    assert_int_equal(a.v[0].line, 5);
    assert_string_equal(a.v[1].arg, "--listen=0.0.0.0:443");
    assert_string_equal(a.v[2].arg, "--listen=[::]:443");
    assert_int_equal(a.v[2].line, 7);
    assert_string_equal(a.v[3].arg, "--enforce"); /* a true switch */
    assert_string_equal(a.v[3].name, "enforce");
    assert_string_equal(a.v[4].arg, "--workers=4"); /* a false switch adds nothing */
    assert_int_equal(a.v[4].line, 10);
    conf_args_free(&a);
    /* an empty file and a section alone are no settings, not errors */
    assert_int_equal(parse("", &a, err, sizeof(err)), 0);
    assert_int_equal(a.n, 0);
    conf_args_free(&a);
    assert_int_equal(parse("[serve]\n", &a, err, sizeof(err)), 0);
    conf_args_free(&a);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *error;
    } cases[] = {
        {"[serve]\nstate = /x\nstaet = /y\n", "t.conf:3: unknown key 'staet'"},
        {"state = /x\n", "t.conf:1: key 'state' outside [serve]"},
        {"[serve]\n[registry]\nstate = /x\n", "t.conf:2: unknown section [registry]"},
        {"[serve]\nstate = /x\nstate = /y\n", "t.conf:3: duplicate key 'state' (first on line 2)"},
        {"[serve]\nworkers =\n", "t.conf:2: empty value for 'workers'"},
        {"[serve]\nenforce = maybe\n", "t.conf:2: 'enforce' is a switch: true or false"},
        {"[serve]\nenforce = 1\n", "t.conf:2: 'enforce' is a switch"},
        {"[serve]\nlisten = a\n  b\n", "t.conf:3: indented line"},
        {"[serve]\nthis line has no equals sign\n", "t.conf:2: syntax error"},
        {"[serve\nstate = /x\n", "t.conf:1: unknown section"},
        {"[serve]\n  [serve]\n", "t.conf:2: indented line"},
        {"[serve]\nhelp = true\n", "t.conf:2: unknown key 'help'"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf_args a;
        char err[256] = "";
        assert_int_equal(parse(cases[i].text, &a, err, sizeof(err)), -1);
        assert_int_equal(a.n, 0);
        assert_null(a.v);
        if (strncmp(err, cases[i].error, strlen(cases[i].error)) != 0) {
            fail_msg("case %zu: got '%s', want '%s...'", i, err, cases[i].error);
        }
    }
}

static void test_hostile(void **state)
{
    (void)state;
    struct conf_args a;
    char err[256] = "";
    /* a NUL byte, named by its line */
    assert_int_equal(conf_parse("[serve]\nstate = /x\0y\n", 19, "t.conf", "serve", opts, NOPTS, &a,
                                err, sizeof(err)),
                     -1);
    assert_string_equal(err, "t.conf:2: NUL byte");
    /* a line longer than inih's buffer */
    char longline[600];
    snprintf(longline, sizeof(longline), "[serve]\nstate = /%0500d\n", 0);
    assert_int_equal(parse(longline, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "t.conf:2: line longer than"));
    /* a file over the size bound */
    static char big[CONF_MAX_FILE_BYTES + 2];
    memset(big, '#', sizeof(big) - 1);
    assert_int_equal(
        conf_parse(big, sizeof(big) - 1, "t.conf", "serve", opts, NOPTS, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "larger than"));
    /* more settings than CONF_MAX_ARGS */
    static char many[(CONF_MAX_ARGS + 2) * 16];
    size_t n = (size_t)snprintf(many, sizeof(many), "[serve]\n");
    for (int i = 0; i <= CONF_MAX_ARGS; i++) {
        n += (size_t)snprintf(many + n, sizeof(many) - n, "listen = %d\n", i);
    }
    assert_int_equal(parse(many, &a, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than"));
    /* a missing file */
    assert_int_equal(
        conf_load_file("/nonexistent/sinkd.conf", "serve", opts, NOPTS, &a, err, sizeof(err)), -1);
    assert_string_equal(err, "/nonexistent/sinkd.conf: No such file or directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
