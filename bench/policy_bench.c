/* policy_bench.c -- measures policy_decide throughput on one core and the rate limiter's accuracy
 * across threads; run by bench/policy.sh. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy/policy.h"

static uint64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000ull + (uint64_t)ts.tv_nsec / 1000;
}

static struct policy *load(const char *text)
{
    struct policy *p = NULL;
    char err[512];
    if (policy_parse(text, strlen(text), "bench.ini", &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }
    return p;
}

/* The demo-like policy: two countries from the top of the mix, an exclusion, a third
 * authorisation by network; bots drawn from the swarm's top countries. */
static const char *const policy_text =
    "[authorisation ng]\nauthority = A\nlegal_reference = L\ncountries = NG\n"
    "exclude_tags = hospital\nexclude_prefixes = 10.99.0.0/16\n"
    "not_before = 2020-01-01T00:00:00Z\nnot_after = 2099-01-01T00:00:00Z\n"
    "rate = 1000000\nonce_per_bot = true\ncommand = uninstall\nmode = enforce\n"
    "[authorisation in]\nauthority = B\nlegal_reference = M\ncountries = IN\n"
    "exclude_tags = hospital\n"
    "not_before = 2020-01-01T00:00:00Z\nnot_after = 2099-01-01T00:00:00Z\n"
    "rate = 1000000\ncommand = uninstall\nmode = enforce\n"
    "[authorisation gb-isp]\nauthority = C\nlegal_reference = N\ncountries = GB\n"
    "asns = AS2856, AS5089\nprefixes = 10.0.0.0/8, 2001:db8::/32\n"
    "not_before = 2020-01-01T00:00:00Z\nnot_after = 2099-01-01T00:00:00Z\n"
    "rate = 1000000\ncommand = uninstall\n";

/* mix: bots from the swarm's top eight countries, some tagged, some already sent (most are
 * not authorised). scoped: every bot in NG or IN, untagged, never sent, so every decision walks
 * the whole rule to the rate bucket (an atomic load, and a CAS when a token is due). */
static void bench_decide(double seconds, int scoped)
{
    static const char *const ccs[] = {"NG", "IN", "CN", "IR", "ID", "GB", "IQ", "US"};
    static const char *const tags[] = {"", "", "", "school", "hospital"};
    enum { NBOTS = 4096 };
    struct policy_bot *bots = calloc(NBOTS, sizeof(*bots));
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < NBOTS; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        bots[i].src.family = AF_INET;
        bots[i].src.ip[0] = 10;
        bots[i].src.ip[1] = (uint8_t)(x >> 8) % 128;
        bots[i].src.ip[2] = (uint8_t)(x >> 16);
        bots[i].src.ip[3] = (uint8_t)(x >> 24);
        memcpy(bots[i].cc, ccs[scoped ? (x >> 32) % 2 : (x >> 32) % 8], 3);
        bots[i].asn = (x >> 40) % 2 ? 2856 : 1234;
        bots[i].tags = scoped ? "" : tags[(x >> 48) % 5];
        bots[i].sent = !scoped && (x >> 56) % 4 == 0 ? 1 : 0;
    }
    struct policy *p = load(policy_text);
    struct policy_rate *r = NULL;
    policy_rate_new(p, NULL, &r);
    unsigned long counts[VERDICT_ALREADY_REHEARSED + 1] = {0};
    uint64_t n = 0, now = wall_us(), t0 = now, stop = now + (uint64_t)(seconds * 1e6);
    struct timespec c0, c1;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
    while (now < stop) {
        for (int i = 0; i < NBOTS; i++) {
            struct policy_verdict v;
            /* time advances 1 us per decision, the rate of a busy node's log */
            counts[policy_decide(p, POLICY_COMMAND_UNINSTALL, &bots[i], now + (uint64_t)i, r, false,
                                 &v)]++;
        }
        n += NBOTS;
        now = wall_us();
    }
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
    double cpu = (double)(c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9;
    double wall = (double)(now - t0) / 1e6;
    printf("decide (%s): %llu decisions in %.2f s CPU (%.2f s wall): %.2f M decisions/s per core\n",
           scoped ? "all in scope" : "swarm mix", (unsigned long long)n, cpu, wall, n / cpu / 1e6);
    printf("        verdicts: dry-run %lu, not-authorised %lu, excluded %lu, already-sent %lu, "
           "rate-limited %lu\n",
           counts[VERDICT_DRY_RUN], counts[VERDICT_NOT_AUTHORISED], counts[VERDICT_EXCLUDED],
           counts[VERDICT_ALREADY_SENT], counts[VERDICT_RATE_LIMITED]);
    policy_rate_free(r);
    policy_free(p);
    free(bots);
}

struct shared {
    const struct policy *p;
    struct policy_rate *rate;
    atomic_int go;
    uint64_t count_from_us; /* after the warm-up has drained the initial burst */
    uint64_t stop_us;
};
struct worker {
    struct shared *s;
    unsigned long granted;
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
    for (;;) {
        uint64_t now = wall_us();
        if (now >= w->s->stop_us) {
            break;
        }
        struct policy_verdict v;
        if (policy_decide(w->s->p, POLICY_COMMAND_UNINSTALL, &b, now, w->s->rate, false, &v) ==
                VERDICT_DRY_RUN &&
            now >= w->s->count_from_us) {
            w->granted++;
        }
    }
    return NULL;
}

/* Steady-state accuracy: tokens granted per second while every thread asks as fast as it can,
 * counted after a warm-up, against the configured rate. Returns the relative error. */
static double bench_rate(int threads, double rate, double seconds)
{
    char text[512];
    snprintf(text, sizeof(text),
             "[authorisation ng]\nauthority = A\nlegal_reference = L\ncountries = NG\n"
             "not_before = 2020-01-01T00:00:00Z\nnot_after = 2099-01-01T00:00:00Z\n"
             "rate = %g\nonce_per_bot = false\ncommand = uninstall\n",
             rate);
    struct policy *p = load(text);
    struct shared s = {.p = p};
    policy_rate_new(p, NULL, &s.rate);
    struct worker w[64];
    pthread_t t[64];
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){.s = &s};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    uint64_t start = wall_us() + 20000; /* let the threads reach the start line */
    s.count_from_us = start + 200000;   /* 0.2 s of warm-up drains the quiet bucket's burst */
    s.stop_us = s.count_from_us + (uint64_t)(seconds * 1e6);
    while (wall_us() < start) {
    }
    atomic_store(&s.go, 1);
    unsigned long granted = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        granted += w[i].granted;
    }
    double actual = granted / seconds;
    double e = (actual - rate) / rate;
    printf("rate:   %d threads, configured %8.0f/s: %9lu in %.1f s = %10.1f/s (%+.3f%%)\n", threads,
           rate, granted, seconds, actual, 100 * e);
    policy_rate_free(s.rate);
    policy_free(p);
    return e < 0 ? -e : e;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 3.0;
    if (secs <= 0 || secs > 60) {
        secs = 3.0;
    }
    bench_decide(secs, 0);
    bench_decide(secs, 1);
    double worst = 0;
    static const double rates[] = {100, 1000, 10000, 100000};
    static const int threads[] = {2, 4, 8};
    for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++) {
        for (size_t j = 0; j < sizeof(threads) / sizeof(threads[0]); j++) {
            double e = bench_rate(threads[j], rates[i], secs);
            worst = e > worst ? e : worst;
        }
    }
    printf("rate:   worst error %.3f%% (goal: within 2%%)\n", 100 * worst);
    return worst <= 0.02 ? 0 : 1;
}
