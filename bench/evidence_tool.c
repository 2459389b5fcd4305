/* evidence_tool.c -- test/bench driver for the evidence log (not installed): builds logs of
 * synthetic records with group commit and measures appends/s; also runs the evidence
 * subcommands when the sinkd binary does not have them yet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "evidence/log.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A record-like entry: version byte, big-endian index, filler. Only the index changes between
 * entries, so the loop measures the log and not the generator. */
static void fill_record(uint8_t *rec, size_t size, unsigned long long index)
{
    rec[0] = 1;
    for (size_t k = 9; k < size; k++) {
        rec[k] = (uint8_t)(k * 31);
    }
    for (int b = 0; b < 8; b++) {
        rec[1 + b] = (uint8_t)(index >> (56 - 8 * b));
    }
}

static void set_index(uint8_t *rec, unsigned long long index)
{
    for (int b = 0; b < 8; b++) {
        rec[1 + b] = (uint8_t)(index >> (56 - 8 * b));
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y ? 1 : 0;
}

/* latency STATE BATCH COMMITS: evlog_commit latency (the journal pwrite + fdatasync a bot's
 * reply waits for) for batches of BATCH 200-byte records, with the server's checkpoint policy
 * (100000 entries / 1 s) running as in serve. Prints p50, p99, max in microseconds. */
static int latency(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: evidence_tool latency STATE BATCH COMMITS\n");
        return 2;
    }
    unsigned long batch = strtoul(argv[3], NULL, 10), commits = strtoul(argv[4], NULL, 10);
    if (batch == 0 || commits == 0) {
        return 2;
    }
    struct evlog_options opt = {.origin = "bench.example/latency", .create_key = true};
    struct evlog *log;
    char err[512];
    if (evlog_open(&log, argv[2], &opt, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "evidence_tool latency: %s\n", err);
        return 1;
    }
    uint8_t rec[200];
    fill_record(rec, sizeof rec, 0);
    double *us = malloc(commits * sizeof *us);
    unsigned long long index = evlog_size(log);
    double t_start = now_s();
    for (unsigned long c = 0; c < commits; c++) {
        for (unsigned long i = 0; i < batch; i++) {
            set_index(rec, index++);
            evlog_append(log, rec, sizeof rec, NULL);
        }
        double c0 = now_s();
        if (evlog_commit(log, err, sizeof err) != 0) {
            fprintf(stderr, "evidence_tool latency: %s\n", err);
            return 1;
        }
        us[c] = (now_s() - c0) * 1e6;
        if (evlog_maybe_checkpoint(log, (uint64_t)((now_s() - t_start) * 1000), err, sizeof err) <
            0) {
            fprintf(stderr, "evidence_tool latency: %s\n", err);
            return 1;
        }
    }
    qsort(us, commits, sizeof *us, cmp_double);
    printf("batch=%lu commits=%lu commit_us p50=%.0f p90=%.0f p99=%.0f max=%.0f\n", batch, commits,
           us[commits / 2], us[commits * 9 / 10], us[commits * 99 / 100], us[commits - 1]);
    free(us);
    return evlog_close(log, err, sizeof err) == 0 ? 0 : 1;
}

/* gen STATE ORIGIN COUNT SIZE BATCH CHECKPOINT_EVERY */
static int gen(int argc, char **argv)
{
    if (argc != 8) {
        fprintf(stderr, "usage: evidence_tool gen STATE ORIGIN COUNT SIZE BATCH CP_EVERY\n");
        return 2;
    }
    const char *state = argv[2], *origin = argv[3];
    unsigned long long count = strtoull(argv[4], NULL, 10);
    size_t size = strtoul(argv[5], NULL, 10);
    unsigned long long batch = strtoull(argv[6], NULL, 10), cp = strtoull(argv[7], NULL, 10);
    if (size < 16 || size > EVLOG_ENTRY_MAX || batch == 0) {
        fprintf(stderr, "evidence_tool gen: bad size or batch\n");
        return 2;
    }
    struct evlog_options opt = {.origin = origin,
                                .create_key = true,
                                .checkpoint_entries = cp ? cp : UINT64_MAX,
                                .checkpoint_ms = UINT64_MAX};
    struct evlog *log;
    char err[512];
    if (evlog_open(&log, state, &opt, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "evidence_tool gen: %s\n", err);
        return 1;
    }
    uint8_t *rec = malloc(size);
    unsigned long long start = evlog_size(log);
    double t0 = now_s(), commit_s = 0;
    unsigned long long commits = 0;
    fill_record(rec, size, 0);
    for (unsigned long long i = 0; i < count; i++) {
        set_index(rec, start + i);
        if (evlog_append(log, rec, size, NULL) != 0) {
            fprintf(stderr, "evidence_tool gen: append failed\n");
            return 1;
        }
        if ((i + 1) % batch == 0 || i + 1 == count) {
            double c0 = now_s();
            if (evlog_maybe_checkpoint(log, 0, err, sizeof err) < 0) {
                fprintf(stderr, "evidence_tool gen: %s\n", err);
                return 1;
            }
            commit_s += now_s() - c0;
            commits++;
        }
    }
    double t1 = now_s();
    if (evlog_close(log, err, sizeof err) != 0) {
        fprintf(stderr, "evidence_tool gen: %s\n", err);
        return 1;
    }
    double t2 = now_s();
    free(rec);
    printf("appended=%llu size=%zu batch=%llu commits=%llu seconds=%.3f appends_per_s=%.0f "
           "close_s=%.3f\n",
           count, size, batch, commits, t1 - t0, (double)count / (t1 - t0), t2 - t1);
    return 0;
}

/* hashbench SIZE N: leaf+node hashing rate of the tree alone (what the SHA-256 limit bounds) */
static int hashbench(int argc, char **argv)
{
    if (argc != 4) {
        return 2;
    }
    size_t size = strtoul(argv[2], NULL, 10);
    unsigned long long n = strtoull(argv[3], NULL, 10);
    uint8_t *rec = calloc(1, size);
    struct evlog_hasher *h = evlog_hasher_new();
    struct evlog_frontier *f = malloc(sizeof *f);
    evlog_frontier_init(f);
    double t0 = now_s();
    for (unsigned long long i = 0; i < n; i++) {
        uint8_t leaf[32];
        rec[0] = (uint8_t)i;
        evlog_hasher_leaf(h, rec, size, leaf);
        evlog_frontier_push(f, h, leaf, NULL, NULL);
    }
    double t = now_s() - t0;
    printf("hashed=%llu size=%zu seconds=%.3f entries_per_s=%.0f\n", n, size, t, (double)n / t);
    evlog_hasher_free(h);
    free(f);
    free(rec);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(
            stderr,
            "usage: evidence_tool gen|latency|hashbench|keygen|verify|prove|verify-bundle ...\n");
        return 2;
    }
    const char *c = argv[1];
    if (strcmp(c, "gen") == 0) {
        return gen(argc, argv);
    }
    if (strcmp(c, "latency") == 0) {
        return latency(argc, argv);
    }
    if (strcmp(c, "hashbench") == 0) {
        return hashbench(argc, argv);
    }
    if (strcmp(c, "keygen") == 0) {
        return cmd_keygen(argc - 1, argv + 1);
    }
    if (strcmp(c, "verify") == 0) {
        return cmd_verify(argc - 1, argv + 1);
    }
    if (strcmp(c, "prove") == 0) {
        return cmd_prove(argc - 1, argv + 1);
    }
    if (strcmp(c, "verify-bundle") == 0) {
        return cmd_verify_bundle(argc - 1, argv + 1);
    }
    fprintf(stderr, "evidence_tool: unknown command '%s'\n", c);
    return 2;
}
