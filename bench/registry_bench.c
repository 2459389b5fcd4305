/* registry_bench.c -- registry figures: follower batch size / lag / rate while records stream into
 * the evidence log, bulk apply throughput, and the per-country summary query time. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "evidence/log.h"
#include "registry/registry.h"
#include "report/report.h"

#define T0 (1767225600ULL * 1000000ULL) /* 2026-01-01T00:00:00Z */
#define DAY_US 86400000000ULL

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Country mix: a skewed list, as real infections are. */
static const char *const CCS[] = {"CN", "IN", "US", "VN", "ID", "BR", "RU", "DE", "TH", "PH",
                                  "MX", "TR", "IR", "EG", "PK", "FR", "GB", "IT", "JP", "KR"};

/* Synthetic contact number i of bot b: one bot in 8 shares its IP with the next (NAT), days
 * spread over 30, ~1% hospitals. */
static int make_contact(uint64_t b, uint64_t i, uint64_t t, uint8_t *out)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = t;
    snprintf(c->node, sizeof(c->node), "bench");
    uint64_t ipn = b - (b % 8 == 1);
    c->src.family = AF_INET;
    c->src.ip[0] = (uint8_t)(11 + (ipn >> 24) % 200);
    c->src.ip[1] = (uint8_t)(ipn >> 16);
    c->src.ip[2] = (uint8_t)(ipn >> 8);
    c->src.ip[3] = (uint8_t)ipn;
    c->src.port = (uint16_t)(1024 + i % 60000);
    c->dst.family = AF_INET;
    c->dst.ip[0] = 198;
    c->dst.ip[1] = 51;
    c->dst.ip[2] = 100;
    c->dst.ip[3] = 7;
    c->dst.port = 443;
    c->transport = CONTACT_TRANSPORT_TCP;
    snprintf(c->family, sizeof(c->family), "plugx");
    c->msg_type = CONTACT_MSG_MACHINE_INFO;
    snprintf(c->bot.host, sizeof(c->bot.host), "WIN-%08" PRIx64, b);
    snprintf(c->bot.user, sizeof(c->bot.user), "user%" PRIu64, b % 97);
    snprintf(c->bot.local_ip, sizeof(c->bot.local_ip), "10.0.%u.%u", (unsigned)(b >> 8) & 255,
             (unsigned)b & 255);
    event_bot_key(c, c->bot_key);
    unsigned k = (unsigned)((b * 2654435761u) % 100);
    snprintf(c->cc, sizeof(c->cc), "%s", CCS[k < 30 ? 0 : k < 45 ? 1 : k < 55 ? 2 : k % 20]);
    c->asn = 1000 + (uint32_t)(b % 5000);
    if (b % 100 == 0) {
        snprintf(c->tags, sizeof(c->tags), "hospital");
    }
    return event_encode(&r, out, EVENT_RECORD_MAX);
}

/* Opens the registry with the page cache REGISTRY_BENCH_CACHE_MIB asks for (default: sinkd's). A
 * shared (PostgreSQL) registry is told which log is applied, as registry_open_log does: one fixed
 * name ("origin+keyid"), so bulk and summary work on a PostgreSQL URL. */
static int open_registry(struct registry **reg, const char *db, char *err, size_t errlen)
{
    if (registry_open(reg, db, err, errlen) < 0) {
        return -1;
    }
    if (registry_is_shared(*reg) &&
        registry_set_source(*reg, "bench.sinkd/registry+00000000", err, errlen) != 0) {
        registry_close(*reg);
        return -1;
    }
    const char *mib = getenv("REGISTRY_BENCH_CACHE_MIB");
    if (mib != NULL &&
        registry_set_cache_mib(*reg, (uint32_t)strtoul(mib, NULL, 10), err, errlen) != 0) {
        registry_close(*reg);
        return -1;
    }
    return 0;
}

static int bench_stream(const char *state, uint64_t n, uint64_t bots)
{
    char err[512], db[4096];
    struct evlog_options opt = {.origin = "bench.sinkd/registry", .create_key = true};
    struct evlog *log;
    if (evlog_open(&log, state, &opt, NULL, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    snprintf(db, sizeof(db), "%s/registry.db", state);
    struct registry *reg;
    if (open_registry(&reg, db, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    struct registry_follow_config cfg = {.state_dir = state};
    if (registry_follow_start(reg, &cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint8_t buf[EVENT_RECORD_MAX];
    uint64_t seed = 88172645463325252ULL, lag_sampled = 0;
    double t0 = now_s(), last_sample = t0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t b = i < bots ? i : rng(&seed) % bots;
        int len = make_contact(b, i, T0 + i * (30 * DAY_US / n), buf);
        if (evlog_append(log, buf, (size_t)len, NULL) < 0) {
            fprintf(stderr, "append failed\n");
            return 1;
        }
        /* Group commit like the evidence writer: every 1000 records. */
        if (i % 1000 == 999 || i + 1 == n) {
            if (evlog_commit(log, err, sizeof(err)) < 0) {
                fprintf(stderr, "%s\n", err);
                return 1;
            }
            double t = now_s();
            if (t - last_sample >= 0.1) {
                struct registry_follow_stats s;
                registry_follow_stats(reg, &s);
                uint64_t lag = evlog_size(log) - s.applied_index;
                if (lag > lag_sampled) {
                    lag_sampled = lag;
                }
                last_sample = t;
            }
        }
    }
    double t_log = now_s() - t0;
    struct registry_follow_stats s;
    for (int k = 0; k < 6000; k++) { /* at most 600 s */
        registry_follow_stats(reg, &s);
        if (s.applied_index >= n || s.error) {
            break;
        }
        struct timespec ts = {0, 100000000L};
        nanosleep(&ts, NULL);
    }
    double t_all = now_s() - t0;
    registry_follow_stop(reg, err, sizeof(err));
    registry_close(reg);
    evlog_close(log, err, sizeof(err));
    printf("stream: %" PRIu64 " records (%" PRIu64 " bots) appended+committed in %.2f s (%.0f/s); "
           "registry caught up at %.2f s\n",
           n, bots, t_log, (double)n / t_log, t_all);
    printf("stream: follower %.0f records/s, batches %" PRIu64 ", batch size last %" PRIu64
           " avg %.1f max %" PRIu64 ", lag at commits max %" PRIu64
           " (sampled vs durable log size: max %" PRIu64 "), error %d\n",
           s.records_per_s, s.batches, s.batch_last, s.batch_avg, s.batch_max, s.lag_max,
           lag_sampled, s.error);
    return s.applied_index == n ? 0 : 1;
}

static int bench_bulk(const char *db, uint64_t bots, uint64_t contacts)
{
    char err[512];
    struct registry *reg;
    if (open_registry(&reg, db, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    uint8_t buf[EVENT_RECORD_MAX];
    uint64_t seed = 88172645463325252ULL;
    /* Records per transaction, like the follower's batch_max (REGISTRY_BENCH_BATCH). */
    const char *bs = getenv("REGISTRY_BENCH_BATCH");
    uint64_t batch = bs ? strtoull(bs, NULL, 10) : 20000;
    if (batch == 0) {
        batch = 20000;
    }
    double t0 = now_s();
    uint64_t base = registry_applied_index(reg);
    for (uint64_t i = 0; i < contacts; i++) {
        uint64_t b = i < bots ? i : rng(&seed) % bots;
        int len = make_contact(b, i, T0 + i * (30 * DAY_US / contacts), buf);
        if (registry_apply(reg, base + i, buf, (size_t)len, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (i % batch == batch - 1 && registry_flush(reg, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        if (i % 1000000 == 999999) {
            fprintf(stderr, "bulk: %" PRIu64 " applied, %.0f/s\n", i + 1,
                    (double)(i + 1) / (now_s() - t0));
        }
    }
    registry_close(reg);
    double t = now_s() - t0;
    printf("bulk apply: %" PRIu64 " contacts of %" PRIu64 " bots in %.1f s: %.0f records/s "
           "(registry_apply, %" PRIu64 " per transaction)\n",
           contacts, bots, t, (double)contacts / t, batch);
    return 0;
}

static int count_row(void *ctx, const struct registry_group_row *row)
{
    (*(uint64_t *)ctx) += row->count;
    return 0;
}

static int bench_summary(const char *db, const char *what)
{
    char err[512];
    struct registry *reg;
    double t0 = now_s();
    if (open_registry(&reg, db, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    int rc = 0;
    if (strcmp(what, "cc") == 0) {
        /* The same GROUP BY the sqlite3 CLI runs in bench/registry.sh. */
        uint64_t total = 0;
        struct registry_filter all = {0};
        double q0 = now_s();
        rc = registry_group_bots(reg, &all, REGISTRY_GROUP_CC, 0, count_row, &total, err,
                                 sizeof(err));
        /* The query alone (prepare, step, rows), as the sqlite3 CLI's .timer reports it. */
        printf("%" PRIu64 " bots, query %.3f ms\n", total, (now_s() - q0) * 1000);
    } else {
        struct report_options o = {.format = REPORT_SUMMARY};
        FILE *f = fopen("/dev/null", "w");
        rc = report_write(reg, &o, f, err, sizeof(err)) < 0;
        fclose(f);
    }
    registry_close(reg);
    if (rc != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    fprintf(stderr, "summary %s: %.3f s\n", what, now_s() - t0);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && strcmp(argv[1], "stream") == 0) {
        return bench_stream(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
    }
    if (argc == 5 && strcmp(argv[1], "bulk") == 0) {
        return bench_bulk(argv[2], strtoull(argv[3], NULL, 10), strtoull(argv[4], NULL, 10));
    }
    if (argc == 4 && strcmp(argv[1], "summary") == 0) {
        return bench_summary(argv[2], argv[3]);
    }
    fprintf(stderr, "usage: registry_bench stream STATE N BOTS | bulk DB BOTS CONTACTS |"
                    " summary DB cc|full\n");
    return 2;
}
