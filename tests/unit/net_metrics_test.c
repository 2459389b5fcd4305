/* net_metrics_test.c -- request routing (through http_parser) for /metrics, /metrics.json and
 * the dashboard's files; the exposition text (label escaping, its bound) and the same samples
 * as JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

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
    assert_int_equal(route("GET /metric HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    assert_int_equal(route("GET /metrics.json HTTP/1.1\r\n\r\n"), METRICS_SERVE_JSON);
    assert_int_equal(route("GET /metrics.json?x HTTP/1.1\r\n\r\n"), METRICS_SERVE_JSON);
    assert_int_equal(route("GET /metrics.jsonx HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    assert_int_equal(route("GET / HTTP/1.1\r\n\r\n"), METRICS_DASHBOARD);
    assert_int_equal(route("GET /?refresh=1 HTTP/1.1\r\n\r\n"), METRICS_DASHBOARD);
    assert_int_equal(route("GET /index.html HTTP/1.1\r\n\r\n"), METRICS_DASHBOARD);
    assert_int_equal(route("GET /dashboard.js HTTP/1.1\r\n\r\n"), METRICS_DASHBOARD_JS);
    assert_int_equal(route("GET /dashboard.css HTTP/1.1\r\n\r\n"), METRICS_DASHBOARD_CSS);
    assert_int_equal(route("GET /../etc/passwd HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    assert_int_equal(route("GET //metrics HTTP/1.1\r\n\r\n"), METRICS_NOT_FOUND);
    assert_int_equal(route("POST /metrics HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"),
                     METRICS_BAD_METHOD);
    assert_int_equal(route("HEAD /metrics HTTP/1.1\r\n\r\n"), METRICS_SERVE);
    assert_int_equal(route("HEAD / HTTP/1.1\r\n\r\n"), METRICS_DASHBOARD);
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
    metrics_sample(&t, "sinkd_x_total", 7);
    const struct metrics_label a = {"type", "a"};
    metrics_sample_labels(&t, "sinkd_x_total", &a, 1, 18446744073709551615ull);
    /* Label values escaped as the format requires. */
    const struct metrics_label two[] = {{"version", "1\"2\\3\n"}, {"family", "plugx"}};
    metrics_sample_labels(&t, "sinkd_x_total", two, 2, 1);
    assert_string_equal(t.buf, "# HELP sinkd_x_total An x.\n# TYPE sinkd_x_total counter\n"
                               "sinkd_x_total 7\nsinkd_x_total{type=\"a\"} 18446744073709551615\n"
                               "sinkd_x_total{version=\"1\\\"2\\\\3\\n\",family=\"plugx\"} 1\n");
    assert_false(t.truncated);
    /* Bounded: past METRICS_BODY_MAX, lines are dropped whole and it says so. */
    for (int i = 0; i < 100000 && !t.truncated; i++) {
        const struct metrics_label kv = {"k", "v"};
        metrics_sample_labels(&t, "sinkd_filler_with_a_long_name_total", &kv, 1, (uint64_t)i);
    }
    assert_true(t.truncated);
    assert_true(t.len <= METRICS_BODY_MAX);
    assert_int_equal(t.buf[t.len - 1], '\n');
    assert_int_equal(strlen(t.buf), t.len);
    metrics_text_free(&t);
}

/* The JSON form carries the same families and samples, labels as objects. */
static void test_json(void **state)
{
    (void)state;
    struct metrics_text t;
    assert_int_equal(metrics_text_init_json(&t), 0);
    metrics_family(&t, "sinkd_x_total", "counter", "An x.");
    metrics_sample(&t, "sinkd_x_total", 7);
    const struct metrics_label q = {"quantile", "0.99"};
    metrics_family(&t, "sinkd_lat", "gauge", "Latency \"p\".");
    metrics_sample_labels(&t, "sinkd_lat", &q, 1, 18446744073709551615ull);
    metrics_text_finish(&t);
    assert_false(t.truncated);
    assert_int_equal(strlen(t.buf), t.len);
    json_error_t e;
    json_t *root = json_loadb(t.buf, t.len, 0, &e);
    assert_non_null(root);
    json_t *x = json_object_get(root, "sinkd_x_total");
    assert_string_equal(json_string_value(json_object_get(x, "type")), "counter");
    assert_string_equal(json_string_value(json_object_get(x, "help")), "An x.");
    json_t *s0 = json_array_get(json_object_get(x, "samples"), 0);
    assert_int_equal(json_integer_value(json_object_get(s0, "value")), 7);
    assert_int_equal(json_object_size(json_object_get(s0, "labels")), 0);
    json_t *lat = json_array_get(json_object_get(json_object_get(root, "sinkd_lat"), "samples"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(lat, "labels"), "quantile")), "0.99");
    /* Past 2^63 the value is clamped, not wrapped negative. */
    assert_int_equal(json_integer_value(json_object_get(lat, "value")), INT64_MAX);
    json_decref(root);
    metrics_text_free(&t);
    /* A sample of a family never declared cannot be placed: reported, not crashed. */
    assert_int_equal(metrics_text_init_json(&t), 0);
    metrics_sample(&t, "sinkd_undeclared", 1);
    metrics_text_finish(&t);
    assert_true(t.truncated);
    assert_string_equal(t.buf, "{}");
    metrics_text_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_incomplete_and_oversize),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
