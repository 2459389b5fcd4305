/* registry_erase_test.c -- an erasure record applied to the registry (SQLite here, PostgreSQL in
 * the _pg run): bots and addresses last seen before its time lose host, user, local IP, address
 * and key; bots seen since keep everything; totals and the per-day curve are the same as before;
 * a bot seen again after the erasure starts a new row; a second erasure changes nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/registry.h"
#include "registry_target.h"

#define DAY_US 86400000000ULL
#define T0 (1767225600ULL * 1000000ULL) /* 2026-01-01T00:00:00Z */

struct fixture {
    struct registry *reg;
    uint64_t idx;
};

static void put(struct fixture *fx, const struct record *r)
{
    uint8_t buf[EVENT_RECORD_MAX];
    char err[256];
    int n = event_encode(r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(registry_apply(fx->reg, fx->idx++, buf, (size_t)n, err, sizeof(err)), 1);
}

static void contact(struct fixture *fx, uint64_t t, const char *ip, const char *host,
                    char key_out[33])
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = t;
    snprintf(c->node, sizeof(c->node), "node-a");
    assert_int_equal(net_addr_parse_ip(ip, &c->src), 0);
    c->src.port = 50000;
    assert_int_equal(net_addr_parse_ip("198.51.100.7", &c->dst), 0);
    c->dst.port = 443;
    c->transport = CONTACT_TRANSPORT_TCP;
    snprintf(c->family, sizeof(c->family), "plugx");
    c->msg_type = CONTACT_MSG_MACHINE_INFO;
    snprintf(c->bot.host, sizeof(c->bot.host), "%s", host);
    snprintf(c->bot.user, sizeof(c->bot.user), "user-of-%s", host);
    snprintf(c->bot.local_ip, sizeof(c->bot.local_ip), "10.0.0.5");
    event_bot_key(c, c->bot_key);
    snprintf(c->cc, sizeof(c->cc), "DE");
    c->asn = 3320;
    if (key_out != NULL) {
        memcpy(key_out, c->bot_key, 33);
    }
    put(fx, &r);
}

static void erasure(struct fixture *fx, uint64_t before_us)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_ERASURE;
    r.u.erasure.time_us = before_us + 3 * DAY_US;
    r.u.erasure.before_us = before_us;
    snprintf(r.u.erasure.legal_basis, sizeof(r.u.erasure.legal_basis), "retention 180 days");
    put(fx, &r);
}

struct seen {
    char text[8192];
    size_t len;
    int bots;
};

static int collect(void *ctx, const struct registry_bot *b, bool flagged)
{
    (void)flagged;
    struct seen *s = ctx;
    char ip[NET_ADDR_STRLEN] = "";
    if (b->src.family != 0) {
        net_addr_format_ip(&b->src, ip);
    }
    s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len,
                               "[%s|%s|%s|%s|%s|%llu]\n", b->bot_key, b->bot.host, b->bot.user,
                               b->bot.local_ip, ip, (unsigned long long)b->contacts);
    s->bots++;
    return 0;
}

static int collect_day(void *ctx, const struct registry_day *d)
{
    struct seen *s = ctx;
    s->len += (size_t)snprintf(s->text + s->len, sizeof(s->text) - s->len, "%lld %llu %llu %llu\n",
                               (long long)d->day, (unsigned long long)d->bots,
                               (unsigned long long)d->ips, (unsigned long long)d->contacts);
    return 0;
}

static void snapshot(struct registry *reg, struct seen *bots, struct seen *days,
                     struct registry_totals *tot)
{
    char err[256];
    struct registry_filter f;
    memset(&f, 0, sizeof(f));
    memset(bots, 0, sizeof(*bots));
    memset(days, 0, sizeof(*days));
    assert_int_equal(registry_bots(reg, &f, collect, bots, err, sizeof(err)), 0);
    assert_int_equal(registry_days(reg, 0, 0, NULL, collect_day, days, err, sizeof(err)), 0);
    assert_int_equal(registry_totals(reg, &f, tot, err, sizeof(err)), 0);
}

static void test_erasure_applied(void **state)
{
    (void)state;
    char dir[] = "/tmp/sinkd-registry-erase-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char target[512], err[256];
    test_registry_target(target, sizeof(target), dir);
    struct fixture fx = {NULL, 0};
    assert_int_equal(test_registry_open(&fx.reg, target, err, sizeof(err)), 0);
    char old_a[33], old_b[33], kept[33];
    contact(&fx, T0 + 1000, "203.0.113.10", "OLD-PC-ALPHA", old_a);
    contact(&fx, T0 + 2000, "203.0.113.11", "OLD-PC-BRAVO", old_b);
    contact(&fx, T0 + 3000, "203.0.113.12", "KEPT-PC-CHARLIE", kept);
    contact(&fx, T0 + 3 * DAY_US, "203.0.113.12", "KEPT-PC-CHARLIE", NULL); /* seen since */
    assert_int_equal(registry_flush(fx.reg, err, sizeof(err)), 0);
    struct seen b0, d0, b1, d1;
    struct registry_totals t0, t1;
    snapshot(fx.reg, &b0, &d0, &t0);
    assert_non_null(strstr(b0.text, "OLD-PC-ALPHA"));

    erasure(&fx, T0 + 2 * DAY_US);
    assert_int_equal(registry_flush(fx.reg, err, sizeof(err)), 0);
    snapshot(fx.reg, &b1, &d1, &t1);
    /* gone: names, user, local IP, address, key; kept: the bot seen since, and every count */
    assert_null(strstr(b1.text, "OLD-PC"));
    assert_null(strstr(b1.text, "user-of-OLD"));
    assert_null(strstr(b1.text, "203.0.113.10"));
    assert_null(strstr(b1.text, "203.0.113.11"));
    assert_null(strstr(b1.text, old_a));
    assert_null(strstr(b1.text, old_b));
    assert_non_null(strstr(b1.text, "KEPT-PC-CHARLIE"));
    assert_non_null(strstr(b1.text, kept));
    assert_non_null(strstr(b1.text, "203.0.113.12"));
    assert_int_equal(b1.bots, b0.bots);
    assert_string_equal(d1.text, d0.text);
    assert_int_equal(t1.bots, t0.bots);
    assert_int_equal(t1.ips, t0.ips);
    assert_int_equal(t1.contacts, t0.contacts);
    struct registry_bot bot;
    assert_int_equal(registry_bot_get(fx.reg, old_a, &bot, err, sizeof(err)), 0);

    /* the same machine after the erasure: a new row, its data kept */
    contact(&fx, T0 + 4 * DAY_US, "203.0.113.10", "OLD-PC-ALPHA", NULL);
    /* a second erasure with the same time changes nothing more */
    erasure(&fx, T0 + 2 * DAY_US);
    assert_int_equal(registry_flush(fx.reg, err, sizeof(err)), 0);
    struct seen b2, d2;
    struct registry_totals t2;
    snapshot(fx.reg, &b2, &d2, &t2);
    assert_non_null(strstr(b2.text, "OLD-PC-ALPHA"));
    assert_int_equal(b2.bots, b0.bots + 1);
    assert_int_equal(registry_bot_get(fx.reg, old_a, &bot, err, sizeof(err)), 1);
    registry_close(fx.reg);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erasure_applied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
