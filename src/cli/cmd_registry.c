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

#define REBUILD_STATES_MAX 64

static void registry_usage(FILE *out)
{
    fprintf(out,
            "usage: sinkd registry rebuild --state DIR [--registry TARGET [--state DIR2 ...]]\n"
            "       sinkd registry follow --state DIR [--registry TARGET] [--cache-mib N]\n"
            "  rebuild: deletes the registry and rebuilds it from the evidence log in DIR/log\n"
            "  (the log is the source of truth; the registry is a derived view).\n"
            "  follow: applies the log to the registry as it grows, until SIGTERM or SIGINT, in\n"
            "  its own process: for `sinkd serve --no-registry`, so the registry can have its\n"
            "  own CPU and memory limits (docs/registry.md).\n"
            "  --registry TARGET: DIR/registry.db by default; a postgresql:// URL names the\n"
            "  database several nodes share, each applying its own log (its origin names it).\n"
            "  Rebuilding a shared registry deletes every node's rows: give every node's state\n"
            "  directory (--state once per node), with no node's follower running.\n"
            "  --cache-mib N: SQLite page cache, 1..65536 MiB (default 2).\n"
            "  One writer per log: both refuse to run while `serve`'s own follower or\n"
            "  another of them holds DIR/registry.lock.\n");
}

static int registry_rebuild(const char *const *states, size_t nstates, const char *target)
{
    char path[4096], err[512];
    int lock_fd[REBUILD_STATES_MAX];
    size_t locked = 0;
    int rc = 1;
    for (; locked < nstates; locked++) {
        lock_fd[locked] = registry_lock_writer(states[locked], err, sizeof(err));
        if (lock_fd[locked] < 0) {
            fprintf(stderr, "sinkd registry rebuild: %s\n", err);
            goto out;
        }
    }
    if (target == NULL) {
        snprintf(path, sizeof(path), "%s/registry.db", states[0]);
        target = path;
    }
    if (registry_destroy(target, err, sizeof(err)) < 0) {
        fprintf(stderr, "sinkd registry rebuild: %s\n", err);
        goto out;
    }
    struct timespec a, b;
    int64_t total = 0;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (size_t i = 0; i < nstates; i++) {
        struct registry *reg = NULL;
        if (registry_open_log(&reg, target, states[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "sinkd registry rebuild: %s\n", err);
            goto out;
        }
        int64_t n = registry_catch_up(reg, states[i], NULL, 0, err, sizeof(err));
        registry_close(reg);
        if (n < 0) {
            fprintf(stderr, "sinkd registry rebuild: %s: %s\n", states[i], err);
            goto out;
        }
        total += n;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("registry rebuilt: %" PRId64 " log entries from %zu log(s) applied in %.2f s -> %s\n",
           total, nstates, s, registry_target_name(target));
    rc = 0;
out:
    for (size_t i = 0; i < locked; i++) {
        close(lock_fd[i]);
    }
    return rc;
}

/* Runs the follower thread (the same code `serve` runs in-process) until SIGTERM or SIGINT. */
static int registry_follow(const char *state, const char *target, uint32_t cache_mib)
{
    char path[4096], err[512];
    /* A URL may carry a password: a shared registry is named by its kind only. */
    if (target == NULL) {
        snprintf(path, sizeof(path), "%s/registry.db", state);
    } else {
        snprintf(path, sizeof(path), "%s", registry_target_name(target));
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    /* Blocked before the thread starts, so it inherits the mask and sigwait() gets them. */
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    struct registry *reg = NULL;
    if (registry_open_log(&reg, target, state, err, sizeof(err)) < 0 ||
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
    char cache[48] = "its cache is the database server's";
    if (cache_now >= 0) {
        snprintf(cache, sizeof(cache), "page cache %" PRId64 " MiB", cache_now);
    }
    fprintf(stderr, "sinkd registry follow: applying %s/log to %s from entry %" PRIu64 " (%s)\n",
            state, path, registry_applied_index(reg), cache);
    /* Until a signal, or until the follower stops on an error (a lost database connection, a
     * full disk): then it says so and exits non-zero, for its supervisor to restart it. */
    int sig = 0;
    for (;;) {
        struct timespec tick = {1, 0};
        sig = sigtimedwait(&stop, NULL, &tick);
        if (sig > 0) {
            break;
        }
        struct registry_follow_stats now;
        registry_follow_stats(reg, &now);
        if (now.error != 0) {
            break;
        }
    }
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
    if (argc < 2) {
        return cli_usage_error("registry", "missing subcommand: rebuild or follow");
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        registry_usage(stdout);
        return 0;
    }
    bool follow = strcmp(argv[1], "follow") == 0;
    if (!follow && strcmp(argv[1], "rebuild") != 0) {
        return cli_usage_error("registry", "unknown subcommand '%s' (rebuild or follow)", argv[1]);
    }
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"cache-mib", required_argument, NULL, 'c'},
        {"registry", required_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *states[REBUILD_STATES_MAX], *target = NULL;
    size_t nstates = 0;
    uint32_t cache_mib = REGISTRY_CACHE_MIB_DEFAULT;
    uint64_t v;
    int c;
    optind = 1;
    while ((c = cli_getopt_long(argc - 1, argv + 1, "s:c:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            if (nstates == REBUILD_STATES_MAX) {
                fprintf(stderr, "sinkd registry %s: more than %d --state directories\n", argv[1],
                        REBUILD_STATES_MAX);
                return 2;
            }
            states[nstates++] = optarg;
            break;
        case 'r':
            target = optarg;
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
            return cli_usage_error("registry", "unknown or incomplete option '%s'", argv[optind]);
        }
    }
    if (nstates == 0) {
        fprintf(stderr, "sinkd registry %s: --state DIR is required\n", argv[1]);
        return 2;
    }
    if (nstates > 1 && (follow || target == NULL || !registry_target_is_shared(target))) {
        fprintf(stderr,
                "sinkd registry %s: one --state only (several are for rebuilding a shared "
                "PostgreSQL registry)\n",
                argv[1]);
        return 2;
    }
    /* A directory without an evidence log is a mistyped path: opening its default registry
     * would leave an empty registry.db (and a lock file) behind. */
    for (size_t i = 0; i < nstates; i++) {
        if (!cli_state_has_log(states[i])) {
            fprintf(stderr, "sinkd registry %s: %s holds no evidence log (no %s/journal/wal)\n",
                    argv[1], states[i], states[i]);
            return 1;
        }
    }
    for (size_t i = 0; i < nstates; i++) {
        if (cli_act_as_state_owner(follow ? "registry follow" : "registry rebuild", states[i]) !=
            0) {
            return 1;
        }
    }
    return follow ? registry_follow(states[0], target, cache_mib)
                  : registry_rebuild(states, nstates, target);
}
