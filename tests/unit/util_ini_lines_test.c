/* util_ini_lines_test.c -- the shared INI line reader and list splitter: line counting, a byte
 * order mark, indented continuations, headers shown to the owner only when they start a line,
 * a too-long line stopping the read, and every way a comma list can be malformed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "util/ini_lines.h"

struct seen {
    char headers[4][64];
    unsigned header_line[4];
    size_t n_headers;
    char error[INI_LINES_MSG_MAX];
    unsigned error_line;
    struct ini_lines *rd;
};

static void on_header(void *ctx, char *header)
{
    struct seen *s = ctx;
    if (s->n_headers < 4) {
        snprintf(s->headers[s->n_headers], sizeof(s->headers[0]), "%s", header);
        s->header_line[s->n_headers++] = s->rd->line;
    }
}

static void on_error(void *ctx, const char *msg)
{
    struct seen *s = ctx;
    if (s->error[0] == '\0') {
        snprintf(s->error, sizeof(s->error), "%s", msg);
        s->error_line = s->rd->line;
    }
}

/* Reads every line of text as inih would, noting which lines were indented. */
static unsigned read_all(const char *text, size_t line_max, struct seen *s, bool indented[16])
{
    struct ini_lines rd;
    memset(s, 0, sizeof(*s));
    s->rd = &rd;
    ini_lines_init(&rd, text, strlen(text), line_max, on_header, on_error, s);
    char buf[200];
    unsigned n = 0;
    while (ini_lines_read(buf, sizeof(buf), &rd) != NULL) {
        if (n < 16) {
            indented[n] = rd.indented;
        }
        n++;
    }
    return n;
}

static void test_lines_and_headers(void **state)
{
    (void)state;
    struct seen s;
    bool ind[16] = {false};
    const char *text = "\xEF\xBB\xBF[first] ; note\n"
                       "k = a,\n"
                       "   b\n"
                       "  ; an indented comment is no continuation\n"
                       "  [indented]\n"
                       "[second]";
    assert_int_equal(read_all(text, 100, &s, ind), 6);
    assert_int_equal(s.n_headers, 2); /* the indented one is an error, not a header */
    assert_string_equal(s.headers[0], "[first] ; note");
    assert_int_equal(s.header_line[0], 1);
    assert_string_equal(s.headers[1], "[second]");
    assert_int_equal(s.header_line[1], 6);
    assert_false(ind[1]);
    assert_true(ind[2]);
    assert_false(ind[3]);
    assert_string_equal(s.error, "section header must start at the beginning of the line");
    assert_int_equal(s.error_line, 5);
}

static void test_long_line_stops(void **state)
{
    (void)state;
    struct seen s;
    bool ind[16] = {false};
    assert_int_equal(read_all("a = 1\nb = 0123456789\nc = 2\n", 10, &s, ind), 1);
    assert_int_equal(s.error_line, 2);
    assert_non_null(strstr(s.error, "longer than 10 characters"));
    /* A line of exactly line_max characters plus its newline is accepted. */
    assert_int_equal(read_all("b = 012345\n", 10, &s, ind), 1);
    assert_string_equal(s.error, "");
}

static void test_header_name(void **state)
{
    (void)state;
    char h1[] = "[ authority cert-fr ] ; x";
    char *name = NULL;
    assert_int_equal(ini_header_name(h1, &name), 0);
    assert_string_equal(name, "authority cert-fr");
    char h2[] = "[policy";
    assert_int_equal(ini_header_name(h2, &name), -1);
    char h3[] = "[policy] junk";
    assert_int_equal(ini_header_name(h3, &name), -2);
    assert_string_equal(name, "junk");
}

struct items {
    char v[8][16];
    size_t n;
    const char *refuse;
};

static bool collect(void *ctx, char *item)
{
    struct items *it = ctx;
    if (it->refuse != NULL && strcmp(item, it->refuse) == 0) {
        return false;
    }
    snprintf(it->v[it->n++ % 8], sizeof(it->v[0]), "%s", item);
    return true;
}

static void test_split_list(void **state)
{
    (void)state;
    char buf[32];
    struct items it = {0};
    assert_null(ini_split_list(" NG , FR,\tDE ; comment, XX", buf, sizeof(buf), collect, &it));
    assert_int_equal(it.n, 3);
    assert_string_equal(it.v[0], "NG");
    assert_string_equal(it.v[2], "DE");
    memset(&it, 0, sizeof(it));
    assert_null(ini_split_list("NG,", buf, sizeof(buf), collect, &it));
    assert_int_equal(it.n, 1);
    assert_string_equal(ini_split_list("NG,,FR", buf, sizeof(buf), collect, &it), "empty entry in");
    assert_string_equal(ini_split_list(",NG", buf, sizeof(buf), collect, &it), "empty entry in");
    it.refuse = "FR";
    assert_string_equal(ini_split_list("NG,FR", buf, sizeof(buf), collect, &it), "");
    char big[40];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_string_equal(ini_split_list(big, buf, sizeof(buf), collect, &it), "value too long for");
}

static void test_nul_line(void **state)
{
    (void)state;
    assert_int_equal(ini_lines_nul_line("a\nb\n", 4), 0);
    assert_int_equal(ini_lines_nul_line("a\nb\n\0c", 6), 3);
    assert_int_equal(ini_lines_nul_line(NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lines_and_headers), cmocka_unit_test(test_long_line_stops),
        cmocka_unit_test(test_header_name),       cmocka_unit_test(test_split_list),
        cmocka_unit_test(test_nul_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
