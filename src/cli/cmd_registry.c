/* cmd_registry.c -- `sinkd registry rebuild` (recreate the derived registry from the evidence
 * log) and `sinkd registry follow` (keep it up to date from another process than `serve`). */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "registry/registry.h"

static void registry_usage(FILE *out)
{
    fprintf(out, "usage: sinkd registry rebuild --state DIR\n"
                 "       sinkd registry follow --state DIR [--cache-mib N]\n"
                 "  rebuild: deletes DIR/registry.db and rebuilds it from the evidence log in\n"
                 "  DIR/log (the log is the source of truth; the registry is a derived view).\n"
                 "  follow: applies the log to DIR/registry.db as it grows, until SIGTERM or\n"
                 "  SIGINT, in its own process: for `sinkd serve --no-registry`, so the\n"
                 "  registry can have its own CPU and memory limits (docs/registry.md).\n"
                 "  --cache-mib N: SQLite page cache, 1..65536 MiB (default 2).\n"
                 "  One writer at a time: both refuse to run while `serve`'s own follower or\n"
                 "  another of them holds DIR/registry.lock.\n");
}

static int registry_rebuild(const char *state)
{
    char path[4096], err[512];
    int lock_fd = registry_lock_writer(state, err, sizeof(err));
    if (lock_fd < 0) {
        fprintf(stderr, "sinkd registry rebuild: %s\n", err);
        return 1;
    }
    const char *suffix[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(path, sizeof(path), "%s/registry.db%s", state, suffix[i]);
        if (unlink(path) != 0 && errno != ENOENT) {
            fprintf(stderr, "sinkd registry: %s: %s\n", path, strerror(errno));
            close(lock_fd);
            return 1;
        }
    }
    snprintf(path, sizeof(path), "%s/registry.db", state);
    struct registry *reg = NULL;
    if (registry_open(&reg, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "sinkd registry: %s\n", err);
        close(lock_fd);
        return 1;
    }
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int64_t n = registry_catch_up(reg, state, NULL, 0, err, sizeof(err));
    clock_gettime(CLOCK_MONOTONIC, &b);
    registry_close(reg);
    close(lock_fd);
    if (n < 0) {
        fprintf(stderr, "sinkd registry: rebuild: %s\n", err);
        return 1;
    }
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("registry rebuilt: %" PRId64 " log entries applied in %.2f s -> %s\n", n, s, path);
    return 0;
}

/* Runs the follower thread (the same code `serve` runs in-process) until SIGTERM or SIGINT. */
static int registry_follow(const char *state, uint32_t cache_mib)
{
    char path[4096], err[512];
    snprintf(path, sizeof(path), "%s/registry.db", state);
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    /* Blocked before the thread starts, so it inherits the mask and sigwait() gets them. */
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    struct registry *reg = NULL;
    if (registry_open(&reg, path, err, sizeof(err)) < 0 ||
        registry_set_cache_mib(reg, cache_mib, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd registry follow: %s\n", err);
        registry_close(reg);
        return 1;
    }
    int64_t cache_now = registry_cache_mib(reg);
    struct registry_follow_config fc;
    memset(&fc, 0, sizeof(fc));
    fc.state_dir = state;
    if (registry_follow_start(reg, &fc, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd registry follow: %s\n", err);
        registry_close(reg);
        return 1;
    }
    fprintf(stderr,
            "sinkd registry follow: applying %s/log to %s from entry %" PRIu64
            " (page cache %" PRId64 " MiB)\n",
            state, path, registry_applied_index(reg), cache_now);
    int sig = 0;
    sigwait(&stop, &sig);
    int rc = registry_follow_stop(reg, err, sizeof(err));
    struct registry_follow_stats st;
    registry_follow_stats(reg, &st);
    registry_close(reg);
    if (rc != 0) {
        fprintf(stderr, "sinkd registry follow: %s\n", err);
        return 1;
    }
    fprintf(stderr, "sinkd registry follow: stopped (%s), applied up to entry %" PRIu64 "\n",
            sig == SIGINT ? "SIGINT" : "SIGTERM", st.applied_index);
    return 0;
}

int cmd_registry(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        registry_usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    bool follow = strcmp(argv[1], "follow") == 0;
    if (!follow && strcmp(argv[1], "rebuild") != 0) {
        fprintf(stderr, "sinkd registry: unknown subcommand '%s'\n", argv[1]);
        registry_usage(stderr);
        return 2;
    }
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"cache-mib", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL;
    uint32_t cache_mib = REGISTRY_CACHE_MIB_DEFAULT;
    uint64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc - 1, argv + 1, "s:c:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state = optarg;
            break;
        case 'c':
            if (!follow) {
                fprintf(stderr, "sinkd registry %s: --cache-mib is for follow only\n", argv[1]);
                return 2;
            }
            if (!cli_parse_u64("registry follow", "cache-mib", optarg, 1, REGISTRY_CACHE_MIB_MAX,
                               &v)) {
                return 2;
            }
            cache_mib = (uint32_t)v;
            break;
        case 'h':
            registry_usage(stdout);
            return 0;
        default:
            registry_usage(stderr);
            return 2;
        }
    }
    if (state == NULL) {
        fprintf(stderr, "sinkd registry %s: --state DIR is required\n", argv[1]);
        return 2;
    }
    return follow ? registry_follow(state, cache_mib) : registry_rebuild(state);
}
