/* net_metrics_test.c -- GET /metrics request routing (through http_parser) and the exposition
 * text builder's bound. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "net/metrics.h"

static enum metrics_route route(const char *req)
{
    return metrics_route_request(req, strlen(req));
}

static void test_routes(void **state)
{
    (void)state;
    assert_int_equal(route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"), METRICS_SERVE);
    assert_int_equal(route("GET /metrics HTTP/1.0\r\n\r\n"), METRICS_SERVE);
    assert_int_equal(route("GET /metrics?name[]=x HTTP/1.1\r\n\r\n"), METRICS_SERVE);
    assert_int_equal(route("GET /metricsx HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    assert_int_equal(route("GET / HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    assert_int_equal(route("GET /metric HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    assert_int_equal(route("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
                     METRICS_BAD_METHOD);
    assert_int_equal(route("HEAD /metrics HTTP/1.1\r\n\r\n"), METRICS_BAD_METHOD);
    assert_int_equal(route("XYZ\r\n\r\n"), METRICS_BAD_REQUEST);
    assert_int_equal(route("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"), METRICS_BAD_REQUEST);
}

static void test_incomplete_and_oversize(void **state)
{
    (void)state;
    static const char full[] = "GET /metrics HTTP/1.1\r\nHost: localhost:9100\r\n\r\n";
    /* Every proper prefix needs more; the whole head is served. */
    for (size_t n = 0; n + 1 < sizeof(full); n++) {
        if (metrics_route_request(full, n) != METRICS_NEED_MORE) {
            fail_msg("prefix of %zu bytes: not 'need more'", n);
        }
    }
    assert_int_equal(metrics_route_request(full, sizeof(full) - 1), METRICS_SERVE);
    /* A head that never ends within METRICS_REQUEST_MAX is refused, not waited for. */
    size_t big = METRICS_REQUEST_MAX + 100;
    char *req = malloc(big);
    assert_non_null(req);
    int n = snprintf(req, big, "GET /metrics HTTP/1.1\r\nX-Pad: ");
    memset(req + n, 'a', big - (size_t)n);
    assert_int_equal(metrics_route_request(req, METRICS_REQUEST_MAX - 1), METRICS_NEED_MORE);
    assert_int_equal(metrics_route_request(req, METRICS_REQUEST_MAX), METRICS_BAD_REQUEST);
    assert_int_equal(metrics_route_request(req, big), METRICS_BAD_REQUEST);
    free(req);
}

static void test_text(void **state)
{
    (void)state;
    struct metrics_text t = {0};
    metrics_family(&t, "sinkd_x_total", "counter", "An x.");
    metrics_sample(&t, "sinkd_x_total", NULL, 7);
    metrics_sample(&t, "sinkd_x_total", "type=\"a\"", 18446744073709551615ull);
    assert_string_equal(t.buf, "# HELP sinkd_x_total An x.\n# TYPE sinkd_x_total counter\n"
                               "sinkd_x_total 7\nsinkd_x_total{type=\"a\"} 18446744073709551615\n");
    assert_false(t.truncated);
    /* Bounded: past METRICS_BODY_MAX, lines are dropped whole and it says so. */
    for (int i = 0; i < 100000 && !t.truncated; i++) {
        metrics_sample(&t, "sinkd_filler_with_a_long_name_total", "k=\"v\"", (uint64_t)i);
    }
    assert_true(t.truncated);
    assert_true(t.len <= METRICS_BODY_MAX);
    assert_int_equal(t.buf[t.len - 1], '\n');
    assert_int_equal(strlen(t.buf), t.len);
    metrics_text_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_incomplete_and_oversize),
        cmocka_unit_test(test_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
