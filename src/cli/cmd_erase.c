/* cmd_erase.c -- `sinkd erase`: victims' personal data erased on an order or by retention:
 * the epoch keys of every epoch wholly before a time destroyed (crypto-shredding), an erasure
 * record in the log, and the registry scrubbed when its writer applies that record. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "event/event.h"
#include "evidence/access.h"
#include "evidence/seal.h"
#include "registry/registry.h"
#include "report/report.h"
#include "util/lockfile.h"

/* An epoch that ended less than this long ago is left alone: a record the writer sealed just
 * before the epoch ended may still be on its way to the journal. (One sealed after the erasure
 * record is read as erased anyway; the wait only keeps the log in a plain order.) */
#define ERASE_GRACE_S 10u

static const char erase_usage[] =
    "usage: sinkd erase --state DIR (--before TIME | --older-than DAYS) --legal-basis TEXT\n"
    "                   [--operator NAME] [--registry TARGET] [--dry-run]\n"
    "\n"
    "Erases victims' personal data recorded before TIME: destroys the key of every epoch (one\n"
    "UTC day) that ended by then, so the source addresses, host and user names, local IPs and\n"
    "bot keys sealed under it can never be read again (crypto-shredding), and appends an\n"
    "`erasure` record (the range, the epochs, the legal basis, the operator; no victim data).\n"
    "The registry's writer removes the same bots' and addresses' personal data (last seen\n"
    "before the effective time: the start of the epoch holding TIME, which stays readable\n"
    "until a later erase) when it applies that record: serve's follower or `registry follow`\n"
    "if one runs, else this command. The log, its checkpoints, counts and times stay\n"
    "verifiable.\n"
    "Safe while `sinkd serve` runs; an epoch that ended less than 10 s ago is kept.\n"
    "\n"
    "  --state DIR          the sinkd state directory\n"
    "  --before TIME        erase what was recorded before TIME: YYYY-MM-DD (midnight UTC)\n"
    "                       or 'YYYY-MM-DD HH:MM:SS' UTC; not in the future\n"
    "  --older-than DAYS    ... or before now minus DAYS (the retention timer: 180)\n"
    "  --legal-basis TEXT   the order or the retention rule, recorded in the log\n"
    "  --operator NAME      who erases (default: the invoking user)\n"
    "  --registry TARGET    the registry to scrub when no follower runs: DIR/registry.db by\n"
    "                       default; a postgresql:// URL for a shared one\n"
    "  --dry-run            say which epochs would be destroyed; change nothing\n"
    "  --help               this text\n"
    "\n"
    "Keys in backups are keys all the same: the erasure holds only once every backup of\n"
    "DIR/keys/epochs made before it is gone too (docs/evidence.md).\n";

static void iso_day(uint64_t s, char out[32])
{
    char t[32];
    event_format_time(s * 1000000u, t);
    snprintf(out, 32, "%.19sZ", t);
}

/* The effective erasure time (POSIX seconds): what the destroyed keys made unreadable, no
 * more, so that the log and the registry agree. It is the start of the epoch that holds TIME
 * (its key or tombstone file's, else the directory's epoch grid), lowered to the start of any
 * earlier epoch whose key is still there (ended less than ERASE_GRACE_S ago, or not destroyed);
 * 0 when no epoch before it has lost its key: nothing is unreadable, nothing may be scrubbed.
 * An epoch counts as gone when it has a tombstone, or (dry_run) when this run would destroy it. */
static uint64_t effective_before_s(const struct seal_epoch_file *e, size_t n, uint64_t before_s,
                                   uint32_t epoch_s, uint64_t not_after_s, bool dry_run)
{
    uint64_t eff = before_s - before_s % epoch_s;
    for (size_t i = 0; i < n; i++) {
        if (e[i].start <= before_s && before_s < e[i].end) {
            eff = e[i].start;
        }
    }
    for (size_t i = 0; i < n; i++) {
        bool gone = e[i].erased || (dry_run && e[i].end <= before_s && e[i].end <= not_after_s);
        if (!gone && e[i].start < eff) {
            eff = e[i].start;
        }
    }
    for (size_t i = 0; i < n; i++) {
        bool gone = e[i].erased || (dry_run && e[i].end <= before_s && e[i].end <= not_after_s);
        if (gone && e[i].end <= eff) {
            return eff;
        }
    }
    return 0;
}

/* What the result line says about the time: up to when personal data is erased, and that the
 * epoch holding TIME stays readable until a later erase. */
static void erased_up_to(uint64_t asked_us, uint64_t eff_s, char *out, size_t cap)
{
    char asked[32], eff[32];
    event_format_time(asked_us, asked);
    if (eff_s == 0) {
        snprintf(out, cap,
                 "no epoch ended before %s (and over %u s ago) has a key left to destroy or "
                 "destroyed: nothing erased, nothing scrubbed",
                 asked, ERASE_GRACE_S);
        return;
    }
    event_format_time(eff_s * 1000000u, eff);
    if (eff_s * 1000000u >= asked_us) {
        snprintf(out, cap, "personal data recorded before %s erased", eff);
    } else {
        snprintf(out, cap,
                 "personal data recorded before %s erased; %s falls inside an epoch that is not "
                 "over or not erased, so what was recorded from %s on stays readable until a "
                 "later erase",
                 eff, asked, eff);
    }
}

/* The registry writer's turn: applies the log up to and including the erasure record when no
 * other writer holds the registry, or waits (bounded) for the one that does. */
static void scrub_registry(const char *state, const char *target, char *line, size_t cap)
{
    char err[512];
    int lock_fd = registry_lock_writer(state, err, sizeof(err));
    if (lock_fd < 0) {
        snprintf(line, cap,
                 "the registry's writer scrubs it when it applies the erasure record (%s)", err);
        return;
    }
    struct registry *reg = NULL;
    if (registry_open_log(&reg, target, state, err, sizeof(err)) < 0) {
        snprintf(line, cap, "registry not scrubbed: %s", err);
        lockfile_release(lock_fd);
        return;
    }
    int64_t n = registry_catch_up(reg, state, NULL, 0, err, sizeof(err));
    registry_close(reg);
    lockfile_release(lock_fd);
    if (n < 0) {
        snprintf(line, cap, "registry not scrubbed: %s", err);
    } else {
        snprintf(line, cap,
                 "registry up to date with the erasure (%" PRId64 " log entries applied)", n);
    }
}

int cmd_erase(int argc, char **argv)
{
    enum {
        OPT_STATE = 1,
        OPT_BEFORE,
        OPT_OLDER,
        OPT_BASIS,
        OPT_OPERATOR,
        OPT_REGISTRY,
        OPT_DRY,
        OPT_HELP
    };
    static const struct option options[] = {
        {"state", required_argument, NULL, OPT_STATE},
        {"before", required_argument, NULL, OPT_BEFORE},
        {"older-than", required_argument, NULL, OPT_OLDER},
        {"legal-basis", required_argument, NULL, OPT_BASIS},
        {"operator", required_argument, NULL, OPT_OPERATOR},
        {"registry", required_argument, NULL, OPT_REGISTRY},
        {"dry-run", no_argument, NULL, OPT_DRY},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL, *basis = NULL, *operator_name = NULL, *target = NULL;
    uint64_t before_us = 0, days = 0;
    bool dry_run = false, have_before = false, have_days = false;
    char err[1024];
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = cli_getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_STATE:
            state = optarg;
            break;
        case OPT_BEFORE:
            if (report_parse_time(optarg, false, &before_us, err, sizeof(err)) != 0) {
                return cli_usage_error("erase", "--before: %s", err);
            }
            have_before = true;
            break;
        case OPT_OLDER:
            if (!cli_parse_u64("erase", "older-than", optarg, 1, 36500, &days)) {
                return 2;
            }
            have_days = true;
            break;
        case OPT_BASIS:
            basis = optarg;
            break;
        case OPT_OPERATOR:
            operator_name = optarg;
            break;
        case OPT_REGISTRY:
            target = optarg;
            break;
        case OPT_DRY:
            dry_run = true;
            break;
        case OPT_HELP:
            fputs(erase_usage, stdout);
            return 0;
        default:
            return cli_usage_error("erase", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_usage_error("erase", "unexpected argument '%s'", argv[optind]);
    }
    if (state == NULL || have_before == have_days) {
        return cli_usage_error("erase", "--state and one of --before or --older-than are required");
    }
    if (basis == NULL || strlen(basis) < ACCESS_JUSTIFICATION_MIN ||
        strlen(basis) >= sizeof(((struct erasure_record *)0)->legal_basis)) {
        return cli_usage_error("erase",
                               "--legal-basis: name the order or the retention rule "
                               "(%d to %zu characters)",
                               ACCESS_JUSTIFICATION_MIN,
                               sizeof(((struct erasure_record *)0)->legal_basis) - 1);
    }
    if (operator_name != NULL &&
        strlen(operator_name) >= sizeof(((struct erasure_record *)0)->operator_name)) {
        return cli_usage_error("erase", "--operator: too long");
    }
    /* A mistyped directory is refused before anything is written into it: the spool and the
     * erasure record made there would become entry 0 of a new log under a later serve. */
    if (!cli_state_has_log(state)) {
        fprintf(stderr,
                "sinkd erase: %s holds no evidence log (no %s/journal/wal): not a state "
                "directory\n",
                state, state);
        return 1;
    }
    /* Tombstones, the spool and the log stay the service's. */
    if (cli_act_as_state_owner("erase", state) != 0) {
        return 1;
    }
    uint64_t now_us = event_now_us();
    if (have_days) {
        before_us = now_us - days * 86400ull * 1000000u;
    }
    if (before_us > now_us) {
        return cli_usage_error("erase", "--before: that is in the future");
    }
    uint64_t before_s = before_us / 1000000u, now_s = now_us / 1000000u;
    uint64_t not_after_s = now_s - ERASE_GRACE_S;

    struct seal_epoch_file *epochs = NULL;
    size_t n = 0, doomed = 0;
    if (seal_epochs_list(state, &epochs, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd erase: %s\n", err);
        return 1;
    }
    uint32_t epoch_s = seal_epoch_seconds(state);
    for (size_t i = 0; i < n; i++) {
        bool goes = !epochs[i].erased && epochs[i].end <= before_s && epochs[i].end <= not_after_s;
        doomed += goes;
        if (dry_run && goes) {
            char a[32], b[32];
            iso_day(epochs[i].start, a);
            iso_day(epochs[i].end, b);
            printf("would destroy the key of epoch %s .. %s\n", a, b);
        }
    }
    char upto[512];
    if (dry_run) {
        uint64_t eff_s = effective_before_s(epochs, n, before_s, epoch_s, not_after_s, true);
        free(epochs);
        erased_up_to(before_us, eff_s, upto, sizeof(upto));
        printf("sinkd erase: dry run: %zu epoch key(s) would be destroyed; %s\n", doomed, upto);
        return 0;
    }
    free(epochs);
    epochs = NULL;
    int lock_fd = lockfile_take(state, LOCKFILE_ERASE, NULL, false, err, sizeof(err));
    if (lock_fd < 0) {
        fprintf(stderr, "sinkd erase: %s\n", err);
        return 1;
    }
    size_t erased = 0;
    uint32_t first = 0, last = 0;
    int rc = seal_epochs_erase(state, before_s, not_after_s, now_s, &erased, &first, &last, err,
                               sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "sinkd erase: %s (%zu epoch key(s) destroyed before it)\n", err, erased);
    }
    /* The time every consumer of the record uses (the registry, serve's roll-up) is the
     * effective one, read back from the key files as this run left them. */
    uint64_t eff_s = 0;
    if (seal_epochs_list(state, &epochs, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd erase: %s\n", err);
        rc = -1;
    } else {
        eff_s = effective_before_s(epochs, n, before_s, epoch_s, not_after_s, false);
        free(epochs);
    }
    /* Recorded whatever came of it: an order carried out (or found with nothing left to do) is a
     * fact of the operation. */
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.kind = RECORD_ERASURE;
    struct erasure_record *e = &rec.u.erasure;
    e->time_us = now_us;
    char host[256];
    if (gethostname(host, sizeof(host)) != 0) {
        snprintf(host, sizeof(host), "sinkd");
    }
    host[sizeof(host) - 1] = '\0';
    snprintf(e->node, sizeof(e->node), "%.31s", host);
    if (operator_name != NULL && operator_name[0] != '\0') {
        snprintf(e->operator_name, sizeof(e->operator_name), "%s", operator_name);
    } else {
        access_invoking_user(e->operator_name, sizeof(e->operator_name));
    }
    e->before_us = eff_s * 1000000u;
    char a[32] = "", b[32] = "";
    if (erased > 0) {
        iso_day(first, a);
        iso_day(last, b);
    }
    char asked[32];
    event_format_time(before_us, asked);
    snprintf(e->detail, sizeof(e->detail),
             "{\"epoch_keys_destroyed\":%zu,\"from\":\"%s\",\"to\":\"%s\",\"complete\":%s,"
             "\"asked_before\":\"%s\",\"registry\":\"personal data of bots and addresses last "
             "seen before the time (before_us: the start of the epoch holding asked_before, the "
             "effective erasure time; 0 when no key was gone) removed by the registry's writer on "
             "applying this record\"}",
             erased, a, b, rc == 0 ? "true" : "false", asked);
    snprintf(e->legal_basis, sizeof(e->legal_basis), "%s", basis);
    struct access_receipt receipt;
    if (access_submit(state, &rec, &receipt, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd erase: the erasure record: %s\n", err);
        lockfile_release(lock_fd);
        return 1;
    }
    char registry_line[768];
    if (receipt.appended) {
        char path[4096];
        if (target == NULL) {
            snprintf(path, sizeof(path), "%s/registry.db", state);
            target = path;
        }
        scrub_registry(state, target, registry_line, sizeof(registry_line));
    } else {
        snprintf(registry_line, sizeof(registry_line),
                 "the erasure record is in the spool; %s (pid %ld) appends it and its registry "
                 "follower, if it runs one, scrubs the registry",
                 receipt.writer[0] ? receipt.writer : "the log's writer", receipt.writer_pid);
    }
    lockfile_release(lock_fd);
    erased_up_to(before_us, eff_s, upto, sizeof(upto));
    printf("sinkd erase: %zu epoch key(s) destroyed%s%s%s%s; %s; %s\n", erased, erased ? ", " : "",
           a, erased ? " .. " : "", b, upto, registry_line);
    return rc == 0 ? 0 : 1;
}
