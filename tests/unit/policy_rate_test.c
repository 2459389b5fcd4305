/* policy_rate_test.c -- the rate limit holds across worker threads: never more than rate x T +
 * burst tokens, and (loosely here, precisely in bench/policy.sh) close to the configured rate. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"

#define THREADS 4
#define RATE 2000
#define RUN_US 1000000ull
/* A tenth of a second's worth (the policy default): on a loaded, sanitised box every worker
 * thread can be descheduled for tens of milliseconds, and a bucket of 2 would lose the tokens
 * falling due meanwhile (seen: 34% of the rate at load 8.6 on 2 cores). */
#define BURST (RATE / 10)

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

struct shared {
    const struct policy *p;
    struct policy_rate *rate;
    atomic_int go;
    uint64_t stop_us;
};

struct worker {
    struct shared *s;
    unsigned granted, limited, other;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    struct policy_bot b;
    memset(&b, 0, sizeof(b));
    memcpy(b.cc, "NG", 3);
    b.src.family = AF_INET;
    while (!atomic_load(&w->s->go)) {
    }
    /* bounded by time, and by count in case the clock misbehaves */
    for (unsigned i = 0; i < 50000000u; i++) {
        uint64_t now = wall_us();
        if (now >= w->s->stop_us) {
            break;
        }
        struct policy_verdict v;
        int r = policy_decide(w->s->p, POLICY_COMMAND_UNINSTALL, &b, now, w->s->rate, true, &v);
        if (r == VERDICT_SEND) {
            w->granted++;
        } else if (r == VERDICT_RATE_LIMITED) {
            w->limited++;
        } else {
            w->other++;
        }
    }
    return NULL;
}

static void test_rate_across_threads(void **state)
{
    (void)state;
    char text[512];
    snprintf(text, sizeof(text),
             "[authorisation ng]\nauthority = A\nlegal_reference = L\ncountries = NG\n"
             "not_before = 2020-01-01T00:00:00Z\nnot_after = 2099-01-01T00:00:00Z\n"
             "rate = %d\nburst = %d\nonce_per_bot = false\ncommand = uninstall\n"
             "command_id = 0xFD01\nmode = enforce\n",
             RATE, BURST);
    struct policy *p = NULL;
    char err[256];
    assert_int_equal(policy_parse(text, strlen(text), "rate.ini", &p, err, sizeof(err)), 0);
    struct shared s = {.p = p};
    assert_int_equal(policy_rate_new(p, NULL, &s.rate), 0);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.s = &s};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    uint64_t start = wall_us();
    s.stop_us = start + RUN_US;
    atomic_store(&s.go, 1);
    unsigned granted = 0, limited = 0, other = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        granted += w[i].granted;
        limited += w[i].limited;
        other += w[i].other;
    }
    uint64_t end = wall_us();
    double expect = RATE * (double)(end - start) / 1e6;
    print_message("%d threads, rate %d/s over %.3f s: %u granted (%.2f%% of rate x time), %u "
                  "limited\n",
                  THREADS, RATE, (end - start) / 1e6, granted, 100.0 * granted / expect, limited);
    assert_int_equal(other, 0);
    assert_true(limited > granted); /* demand exceeded the rate, or the test shows nothing */
    /* the hard bound: never more than rate x elapsed + burst */
    assert_true(granted <= (unsigned)expect + BURST);
    /* the loose lower bound for a shared, sanitised test machine */
    assert_true(granted >= (unsigned)(0.9 * RATE * (double)RUN_US / 1e6));
    policy_rate_free(s.rate);
    policy_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rate_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
