/* evidence_tool.c -- test/bench driver for the evidence log (not installed): builds logs of
 * synthetic records with group commit and measures appends/s; also runs the evidence
 * subcommands when the sinkd binary does not have them yet. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "event/event.h"
#include "evidence/log.h"
#include "evidence/seal.h"

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
    struct evlog_options opt = {.origin = "bench.example/latency",
                                .create_key = true,
                                .seal_off = true /* the bare log: entries are not records */};
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

/* gen STATE ORIGIN COUNT SIZE BATCH CHECKPOINT_EVERY [COMPACT_KIB (0: never; default 1024)]
 * With COMPACT_KIB given, each checkpoint is waited for (as serve's one a second has time to
 * finish), so every CHECKPOINT_EVERY entries one is published and compaction may run. */
static int gen(int argc, char **argv)
{
    if (argc != 8 && argc != 9) {
        fprintf(stderr,
                "usage: evidence_tool gen STATE ORIGIN COUNT SIZE BATCH CP_EVERY [COMPACT_KIB]\n");
        return 2;
    }
    unsigned long long compact_kib = argc == 9 ? strtoull(argv[8], NULL, 10) : 1024;
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
                                .checkpoint_ms = UINT64_MAX,
                                .seal_off = true /* the bare log: entries are not records */,
                                .compact_bytes = compact_kib ? compact_kib << 10 : UINT64_MAX};
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
            int queued = evlog_maybe_checkpoint(log, 0, err, sizeof err);
            if (queued < 0 ||
                (queued > 0 && argc == 9 && evlog_checkpoint(log, 0, err, sizeof err) < 0)) {
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

/* Records as the server writes them: a machine-info contact (the heaviest personal fields) and
 * a heartbeat contact, alternating; index i changes the time and the source port. */
static int swarm_like_record(uint64_t i, uint8_t *out, size_t cap)
{
    struct record rec;
    memset(&rec, 0, sizeof rec);
    rec.kind = RECORD_CONTACT;
    struct contact *c = &rec.u.contact;
    c->time_us = 1796515200000000ull + i * 1000;
    snprintf(c->node, sizeof c->node, "sinkhole-1");
    net_addr_parse_ip("203.0.113.77", &c->src);
    c->src.port = (uint16_t)(1024 + i % 60000);
    net_addr_parse_ip("192.0.2.1", &c->dst);
    c->dst.port = 443;
    net_addr_parse_ip("127.0.1.1", &c->peer);
    c->peer.port = 40000;
    c->transport = CONTACT_TRANSPORT_TCP;
    snprintf(c->family, sizeof c->family, "plugx");
    c->command = i % 2 ? 0x1000 : 0x1001;
    c->msg_type = i % 2 ? CONTACT_MSG_HEARTBEAT : CONTACT_MSG_MACHINE_INFO;
    if (i % 2 == 0) {
        snprintf(c->bot.host, sizeof c->bot.host, "DESKTOP-%06llu", (unsigned long long)i);
        snprintf(c->bot.user, sizeof c->bot.user, "user%llu", (unsigned long long)i);
        snprintf(c->bot.os, sizeof c->bot.os, "10.0.19045 SP0");
        snprintf(c->bot.local_ip, sizeof c->bot.local_ip, "10.1.2.3");
        snprintf(c->bot.campaign, sizeof c->bot.campaign, "usb-worm");
        snprintf(c->bot.version, sizeof c->bot.version, "20230620");
    }
    snprintf(c->bot_key, sizeof c->bot_key, "%032llx", (unsigned long long)(i / 2));
    memset(c->body_sha256, 0xab, 32);
    snprintf(c->cc, sizeof c->cc, "NG");
    c->asn = 37148;
    c->enrich_id = 7;
    return event_encode(&rec, out, cap);
}

/* seal STATE COUNT: the cost of sealing personal fields, per record (alternating machine-info
 * and heartbeat contacts): durable appends in batches of 100 with and without sealing, sealing
 * alone, opening alone, and the leaf sizes. */
static int sealbench(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: evidence_tool seal STATE COUNT\n");
        return 2;
    }
    unsigned long long count = strtoull(argv[3], NULL, 10);
    char err[512], dir[4096];
    double us[2] = {0, 0};
    uint64_t bytes[2] = {0, 0};
    for (int sealed = 0; sealed < 2; sealed++) {
        snprintf(dir, sizeof dir, "%s/%s", argv[2], sealed ? "sealed" : "plain");
        struct evlog_options opt = {
            .origin = "bench.example/seal", .create_key = true, .seal_off = !sealed};
        struct evlog *log;
        if (evlog_open(&log, dir, &opt, NULL, err, sizeof err) != 0) {
            fprintf(stderr, "evidence_tool seal: %s\n", err);
            return 1;
        }
        uint8_t rec[EVENT_RECORD_MAX];
        double t0 = now_s();
        clock_t c0 = clock();
        for (unsigned long long i = 0; i < count; i++) {
            int n = swarm_like_record(i, rec, sizeof rec);
            if (n < 0 || evlog_append(log, rec, (size_t)n, NULL) != 0) {
                fprintf(stderr, "evidence_tool seal: append failed\n");
                return 1;
            }
            if (i % 100 == 99 && evlog_commit(log, err, sizeof err) != 0) {
                fprintf(stderr, "evidence_tool seal: %s\n", err);
                return 1;
            }
        }
        if (evlog_commit(log, err, sizeof err) != 0) {
            return 1;
        }
        us[sealed] = (double)(clock() - c0) / CLOCKS_PER_SEC * 1e6 / (double)count;
        (void)t0;
        if (evlog_close(log, err, sizeof err) != 0) {
            return 1;
        }
        char wal[4200];
        snprintf(wal, sizeof wal, "%s/journal/wal", dir);
        FILE *f = fopen(wal, "rb");
        if (f != NULL) {
            fseek(f, 0, SEEK_END);
            bytes[sealed] = (uint64_t)ftell(f);
            fclose(f);
        }
    }
    /* sealing and opening alone, on the keys the sealed run made */
    struct seal_keyring *w = NULL, *r = NULL;
    if (seal_keyring_open(&w, dir, true, 0, err, sizeof err) != 0 ||
        seal_keyring_open(&r, dir, false, 0, err, sizeof err) != 0) {
        fprintf(stderr, "evidence_tool seal: %s\n", err);
        return 1;
    }
    uint8_t rec[EVENT_RECORD_MAX], sealed[4096], opened[4096];
    size_t slen = 0, olen = 0;
    clock_t c0 = clock();
    for (unsigned long long i = 0; i < count; i++) {
        int n = swarm_like_record(i, rec, sizeof rec);
        (void)seal_record(w, i, 1796515200000000ull + i * 1000, rec, (size_t)n, sealed,
                          sizeof sealed, &slen, err, sizeof err);
    }
    double seal_us = (double)(clock() - c0) / CLOCKS_PER_SEC * 1e6 / (double)count;
    int n = swarm_like_record(0, rec, sizeof rec);
    (void)seal_record(w, 0, 1796515200000000ull, rec, (size_t)n, sealed, sizeof sealed, &slen, err,
                      sizeof err);
    c0 = clock();
    for (unsigned long long i = 0; i < count; i++) {
        (void)seal_open(r, 0, sealed, slen, opened, sizeof opened, &olen, err, sizeof err);
    }
    double open_us = (double)(clock() - c0) / CLOCKS_PER_SEC * 1e6 / (double)count;
    seal_keyring_free(w);
    seal_keyring_free(r);
    printf("seal: %llu records (machine-info and heartbeat contacts alternating), batches of 100\n",
           count);
    printf("  durable append, CPU per record: %.2f us plain, %.2f us sealed (+%.2f us)\n", us[0],
           us[1], us[1] - us[0]);
    printf("  seal_record alone %.2f us, seal_open alone %.2f us per record\n", seal_us, open_us);
    printf("  journal bytes per record: %.1f plain, %.1f sealed (+%.1f)\n",
           (double)bytes[0] / (double)count, (double)bytes[1] / (double)count,
           (double)(bytes[1] - bytes[0]) / (double)count);
    return 0;
}

/* open STATE: how long opening (recovery) takes, and what it found. */
static int open_log(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: evidence_tool open STATE\n");
        return 2;
    }
    struct evlog_options opt = {
        .checkpoint_ms = UINT64_MAX, .checkpoint_entries = UINT64_MAX, .seal_off = true};
    struct evlog *log;
    struct evlog_recovery rec;
    char err[512];
    double t0 = now_s();
    if (evlog_open(&log, argv[2], &opt, &rec, err, sizeof err) != 0) {
        fprintf(stderr, "evidence_tool open: %s\n", err);
        return 1;
    }
    double t1 = now_s();
    printf("open_s=%.3f entries=%llu base=%llu checkpoints_checked=%llu\n", t1 - t0,
           (unsigned long long)rec.size, (unsigned long long)rec.base,
           (unsigned long long)rec.checkpoints);
    return evlog_close(log, err, sizeof err) == 0 ? 0 : 1;
}

/* retention STATE KEEP_S: opens the log with checkpoint retention, then times one checkpoint
 * whose publication runs retention (the first of this handle) and one that does not (the next
 * run is 10 minutes away): the difference is the run. */
static int retention(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: evidence_tool retention STATE KEEP_S\n");
        return 2;
    }
    struct evlog_options opt = {.checkpoint_keep_s = strtoull(argv[3], NULL, 10),
                                .checkpoint_ms = UINT64_MAX,
                                .checkpoint_entries = UINT64_MAX,
                                .seal_off = true};
    struct evlog *log;
    char err[512];
    double t0 = now_s();
    if (evlog_open(&log, argv[2], &opt, NULL, err, sizeof err) != 0) {
        fprintf(stderr, "evidence_tool retention: %s\n", err);
        return 1;
    }
    double open_s = now_s() - t0, cp_s[2];
    uint8_t rec[64];
    fill_record(rec, sizeof rec, 0);
    for (int i = 0; i < 2; i++) {
        set_index(rec, evlog_size(log));
        double c0 = now_s();
        if (evlog_append(log, rec, sizeof rec, NULL) != 0 ||
            evlog_checkpoint(log, 0, err, sizeof err) != 1) {
            fprintf(stderr, "evidence_tool retention: checkpoint: %s\n", err);
            return 1;
        }
        cp_s[i] = now_s() - c0;
        if (i == 0) {
            printf("retention: open %.3f s; checkpoint with the run %.3f s, %llu files removed\n",
                   open_s, cp_s[0], (unsigned long long)evlog_checkpoints_removed(log));
        }
    }
    printf("retention: checkpoint without a run %.3f s: the run took ~%.3f s\n", cp_s[1],
           cp_s[0] - cp_s[1]);
    return evlog_close(log, err, sizeof err) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(
            stderr,
            "usage: evidence_tool "
            "gen|latency|hashbench|seal|retention|open|keygen|verify|prove|verify-bundle ...\n");
        return 2;
    }
    const char *c = argv[1];
    if (strcmp(c, "gen") == 0) {
        return gen(argc, argv);
    }
    if (strcmp(c, "latency") == 0) {
        return latency(argc, argv);
    }
    if (strcmp(c, "seal") == 0) {
        return sealbench(argc, argv);
    }
    if (strcmp(c, "retention") == 0) {
        return retention(argc, argv);
    }
    if (strcmp(c, "open") == 0) {
        return open_log(argc, argv);
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
