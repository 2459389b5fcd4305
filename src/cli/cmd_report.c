/* cmd_report.c -- `sinkd report`: victim reports for CERTs from the registry (docs/reports.md). */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sys/types.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "enrich/enrich.h"
#include "event/event.h"
#include "evidence/access.h"
#include "report/report.h"
#include "util/err.h"

static void report_usage(FILE *out)
{
    fprintf(out,
            "usage: sinkd report --state DIR [options]\n"
            "       sinkd report --registry TARGET [options]\n"
            "  --registry TARGET       the registry to read: DIR/registry.db by default; a\n"
            "                          postgresql:// URL reads the one several nodes share\n"
            "  --remediation           the remediation (effectiveness) report instead of bot\n"
            "                          rows: csv, summary or summary-json; --since/--until then\n"
            "                          select decisions and commands by time and cut the\n"
            "                          observation off at --until (docs/reports.md)\n"
            "  --format csv|intelmq|summary|summary-json   (default csv)\n"
            "  --split country|asn     one file per country (<CC>.csv, unknown ZZ) or per ASN\n"
            "                          (AS<n>.csv) in --out DIR\n"
            "  --out DIR               write files into DIR (created if missing) instead of\n"
            "                          stdout\n"
            "  --since T, --until T    bots last seen in [since, until); T is YYYY-MM-DD or\n"
            "                          'YYYY-MM-DD HH:MM:SS' UTC; a bare --until date includes\n"
            "                          that day\n"
            "  --tag TAG               flagged sector: its bots first, and (with --out) also in\n"
            "                          <name>-flagged.csv/jsonl\n"
            "  --public-source NAME    CSV public_source (default sinkd)\n"
            "  --feed-name NAME        IntelMQ feed.name (default sinkd-plugx)\n"
            "  --top N                 summary table rows (default 10)\n"
            "  --catch-up              apply the evidence log's new entries to the registry first\n"
            "                          (needs --state: the log of DIR)\n"
            "  --no-as-names           do not load AS names (source.as_name, summary ASN names)\n"
            "                          from DATA/npm/asn/asn-ipv{4,6}.csv\n"
            "  --data-dir DATA         where the pinned data lives (default $SINKD_DATA_DIR, else\n"
            "                          the installed share/sinkd; docs/operations.md)\n"
            "%s"
            "  csv and intelmq name victims: they need --justification and --state DIR, whose\n"
            "  evidence log records the access before anything is written out; the summaries\n"
            "  and the remediation report are counts by country, ASN, day and authorisation\n"
            "  (no address, host or user name) and need neither\n"
            "  --help                  this text\n",
            CLI_ACCESS_USAGE);
}

static int parse_split(const char *v, enum report_split *out)
{
    if (strcmp(v, "country") == 0) {
        *out = REPORT_SPLIT_COUNTRY;
    } else if (strcmp(v, "asn") == 0) {
        *out = REPORT_SPLIT_ASN;
    } else if (strcmp(v, "none") == 0) {
        *out = REPORT_SPLIT_NONE;
    } else {
        return -1;
    }
    return 0;
}

static int parse_format(const char *v, enum report_format *out)
{
    static const struct {
        const char *name;
        enum report_format f;
    } names[] = {{"csv", REPORT_CSV},
                 {"intelmq", REPORT_INTELMQ},
                 {"summary", REPORT_SUMMARY},
                 {"summary-json", REPORT_SUMMARY_JSON}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcmp(v, names[i].name) == 0) {
            *out = names[i].f;
            return 0;
        }
    }
    return -1;
}

/* report_recorded's "the access record could not be made" (after printing why). */
#define REPORT_NOT_RECORDED (-1000)

static const char *format_name(const struct report_options *o)
{
    static const char *const names[] = {"csv", "intelmq", "summary", "summary-json"};
    return o->format <= REPORT_SUMMARY_JSON ? names[o->format] : "?";
}

/* Removes a held directory of report files (flat: reports write no subdirectories). */
static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                (void)unlinkat(dirfd(d), e->d_name, 0);
            }
        }
        closedir(d);
    }
    (void)rmdir(dir);
}

/* Moves every entry of `from` into `to` (after the access record is durable). */
static int hand_out_dir(const char *from, const char *to, char *err, size_t errlen)
{
    DIR *d = opendir(from);
    if (d == NULL) {
        return err_set(err, errlen, "%s: %s", from, strerror(errno));
    }
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        char a[8192 + 260], b[8192 + 260];
        if ((size_t)snprintf(a, sizeof(a), "%.8191s/%s", from, e->d_name) >= sizeof(a) ||
            (size_t)snprintf(b, sizeof(b), "%.8191s/%s", to, e->d_name) >= sizeof(b)) {
            rc = err_set(err, errlen, "%s: path too long", to);
        } else if (rename(a, b) != 0) {
            rc = err_set(err, errlen, "%s: %s", b, strerror(errno));
        }
    }
    closedir(d);
    if (rc == 0 && rmdir(from) != 0) {
        rc = err_set(err, errlen, "%s: %s", from, strerror(errno));
    }
    return rc;
}

/* The report written where nobody sees it yet (an unnamed file in DIR/spool, or a hidden
 * directory inside --out), its access record made durable, then handed out. */
static int64_t report_recorded(struct registry *reg, const struct report_options *opt,
                               const char *state, const struct cli_access *access, char *err,
                               size_t errlen)
{
    struct report_options o = *opt;
    uint8_t sha[32];
    char scope[1024];
    char since[32] = "", until[32] = "";
    if (o.since_us != 0) {
        event_format_time(o.since_us, since);
    }
    if (o.until_us != 0) {
        event_format_time(o.until_us, until);
    }
    snprintf(scope, sizeof(scope), "state=%s format=%s%s%s%s%s%s%s%s%s", state, format_name(&o),
             o.remediation ? " remediation" : "",
             o.split == REPORT_SPLIT_COUNTRY ? " split=country"
             : o.split == REPORT_SPLIT_ASN   ? " split=asn"
                                             : "",
             since[0] ? " since=" : "", since, until[0] ? " until=" : "", until,
             o.tag != NULL ? " tag=" : "", o.tag != NULL ? o.tag : "");
    char what[128];
    snprintf(what, sizeof(what), "report --format %s%s%s", format_name(&o),
             o.remediation ? " --remediation" : "", o.out_dir != NULL ? " --out" : "");
    if (o.out_dir == NULL) {
        struct access_output *held = NULL;
        if (access_output_open(&held, state, err, errlen) != 0) {
            return -1;
        }
        int64_t rows = report_write(reg, &o, access_output_stream(held), err, errlen);
        if (rows < 0 || access_output_digest(held, sha, NULL, err, errlen) != 0) {
            access_output_close(held);
            return -1;
        }
        if (cli_access_record("report", state, access, what, scope, (uint64_t)rows, sha) != 0) {
            access_output_close(held);
            return REPORT_NOT_RECORDED;
        }
        int rc = access_output_copy(held, stdout, err, errlen);
        access_output_close(held);
        return rc != 0 ? -1 : rows;
    }
    char held_dir[8192];
    snprintf(held_dir, sizeof(held_dir), "%s/.sinkd-held-XXXXXX", opt->out_dir);
    if (mkdtemp(held_dir) == NULL) {
        return err_set(err, errlen, "--out: %s: %s%s", opt->out_dir, strerror(errno),
                       cli_acting_as());
    }
    o.out_dir = held_dir;
    int64_t rows = report_write(reg, &o, stdout, err, errlen);
    uint64_t files = 0;
    if (rows >= 0 && access_dir_digest(held_dir, sha, &files, err, errlen) != 0) {
        rows = -1;
    }
    if (rows >= 0 &&
        cli_access_record("report", state, access, what, scope, (uint64_t)rows, sha) != 0) {
        rows = REPORT_NOT_RECORDED;
    }
    if (rows >= 0 && hand_out_dir(held_dir, opt->out_dir, err, errlen) != 0) {
        rows = -1;
    }
    if (rows < 0) {
        remove_tree(held_dir); /* nothing of an unrecorded report stays behind */
    }
    return rows;
}

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
        {"registry", required_argument, NULL, 'r'},
        {"format", required_argument, NULL, 'f'},
        {"split", required_argument, NULL, 'p'},
        {"out", required_argument, NULL, 'o'},
        {"since", required_argument, NULL, 'S'},
        {"until", required_argument, NULL, 'U'},
        {"tag", required_argument, NULL, 't'},
        {"public-source", required_argument, NULL, 'P'},
        {"feed-name", required_argument, NULL, 'F'},
        {"top", required_argument, NULL, 'n'},
        {"catch-up", no_argument, NULL, 'c'},
        {"no-as-names", no_argument, NULL, 'N'},
        {"remediation", no_argument, NULL, 'R'},
        {"data-dir", required_argument, NULL, 'D'},
        {"justification", required_argument, NULL, 'j'},
        {"operator", required_argument, NULL, 'O'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct report_options o = {0};
    const char *state = NULL, *target = NULL, *data_dir = cli_data_dir();
    bool catch_up = false;
    bool as_names = true;
    struct cli_access access = {0};
    char err[512];
    int c;
    optind = 1;
    while ((c = cli_getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 's':
            state = optarg;
            break;
        case 'f':
            if (parse_format(optarg, &o.format) < 0) {
                fprintf(stderr, "sinkd report: --format: unknown format '%s'\n", optarg);
                return 2;
            }
            break;
        case 'p':
            if (parse_split(optarg, &o.split) < 0) {
                fprintf(stderr, "sinkd report: --split: want country or asn, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'o':
            o.out_dir = optarg;
            break;
        case 'S':
        case 'U':
            if (report_parse_time(optarg, c == 'U', c == 'S' ? &o.since_us : &o.until_us, err,
                                  sizeof(err)) < 0) {
                fprintf(stderr, "sinkd report: --%s: %s\n", c == 'S' ? "since" : "until", err);
                return 2;
            }
            break;
        case 't':
            o.tag = optarg;
            break;
        case 'P':
            o.public_source = optarg;
            break;
        case 'F':
            o.feed_name = optarg;
            break;
        case 'n': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end != '\0' || v == 0 || v > 1000) {
                fprintf(stderr, "sinkd report: --top: want 1..1000, not '%s'\n", optarg);
                return 2;
            }
            o.top = v;
            break;
        }
        case 'c':
            catch_up = true;
            break;
        case 'N':
            as_names = false;
            break;
        case 'r':
            target = optarg;
            break;
        case 'R':
            o.remediation = true;
            break;
        case 'D':
            data_dir = optarg;
            break;
        case 'j':
            access.justification = optarg;
            break;
        case 'O':
            access.operator_name = optarg;
            break;
        case 'h':
            report_usage(stdout);
            return 0;
        default:
            return cli_usage_error("report", "unknown or incomplete option '%s'", argv[optind - 1]);
        }
    }
    if (state == NULL && (target == NULL || catch_up)) {
        fprintf(stderr, "sinkd report: --state DIR is required%s\n",
                catch_up ? " with --catch-up" : " (or --registry TARGET)");
        return 2;
    }
    if (o.split != REPORT_SPLIT_NONE && o.out_dir == NULL) {
        fprintf(stderr, "sinkd report: --split needs --out DIR\n");
        return 2;
    }
    if (optind < argc) {
        return cli_usage_error("report", "unexpected argument '%s'", argv[optind]);
    }
    /* Victim rows go on the record; counts (summaries, remediation) name nobody. */
    bool victims = !o.remediation && (o.format == REPORT_CSV || o.format == REPORT_INTELMQ);
    bool recorded = victims || access.justification != NULL;
    if (recorded) {
        int urc = cli_access_check("report", &access);
        if (urc != 0) {
            return urc;
        }
        if (state == NULL) {
            return cli_usage_error("report", "--state DIR is required with victims' rows: its "
                                             "evidence log records the access");
        }
        if (!cli_state_has_log(state)) {
            fprintf(stderr, "sinkd report: %s holds no evidence log to record the access in\n",
                    state);
            return 1;
        }
        if (cli_act_as_state_owner("report", state) != 0) {
            return 1; /* the access record goes into the state directory, as its owner */
        }
    }
    /* The default registry lives in the state directory: a directory without an evidence log
     * is a mistyped path, and opening it would leave an empty registry.db behind. */
    if (state != NULL && (target == NULL || catch_up) && !cli_state_has_log(state)) {
        fprintf(stderr,
                "sinkd report: %s holds no evidence log (no %s/journal/wal): not a "
                "state directory\n",
                state, state);
        return 1;
    }
    /* registry.db (and SQLite's -wal and -shm beside it) must stay the service's. */
    if (state != NULL && (target == NULL || catch_up) &&
        cli_act_as_state_owner("report", state) != 0) {
        return 1;
    }
    if (o.out_dir != NULL && cli_make_dirs(o.out_dir, 0750, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd report: --out: %s%s\n", err, cli_acting_as());
        return 1;
    }
    /* A SQLite registry named by path is read, never made: a mistyped path would otherwise
     * leave an empty database behind and report zeros. */
    struct stat target_st;
    if (target != NULL && !catch_up && !registry_target_is_shared(target) &&
        stat(target, &target_st) != 0) {
        fprintf(stderr, "sinkd report: --registry %s: no such registry (%s)\n", target,
                strerror(errno));
        return 1;
    }
    struct registry *reg;
    /* Catching up writes this log's entries, so the registry must know which log it is; a
     * report that only reads a target given needs no state directory. */
    int rc = catch_up || target == NULL ? registry_open_log(&reg, target, state, err, sizeof(err))
                                        : registry_open(&reg, target, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "sinkd report: %s\n", err);
        return 1;
    }
    if (catch_up) {
        /* Two writers would apply the same entries twice. A follower that holds the lock keeps
         * the registry current anyway, so the report goes on with what it has applied. */
        int lock_fd = registry_lock_writer(state, err, sizeof(err));
        if (lock_fd < 0) {
            fprintf(stderr, "sinkd report: catch-up skipped: %s\n", err);
        } else {
            int64_t n = registry_catch_up(reg, state, NULL, 0, err, sizeof(err));
            close(lock_fd);
            if (n < 0) {
                fprintf(stderr, "sinkd report: catch-up: %s\n", err);
                registry_close(reg);
                return 1;
            }
        }
    }
    /* Only IntelMQ rows and summaries name ASes; Shadowserver's CSV has no such column. A
     * missing or unreadable data file leaves names out rather than failing the report. */
    struct enrich_as_names *names = NULL;
    if (as_names && o.format != REPORT_CSV && !o.remediation) {
        if (enrich_as_names_load(&names, data_dir, err, sizeof(err)) < 0) {
            fprintf(stderr, "sinkd report: AS names left out: %s\n", err);
        } else {
            o.as_name = enrich_as_name;
            o.as_name_ctx = names;
        }
    }
    int64_t rows = recorded ? report_recorded(reg, &o, state, &access, err, sizeof(err))
                            : report_write(reg, &o, stdout, err, sizeof(err));
    registry_close(reg);
    enrich_as_names_free(names);
    if (rows == REPORT_NOT_RECORDED) {
        return 1; /* said why */
    }
    if (rows < 0) {
        fprintf(stderr, "sinkd report: %s\n", err);
        return 1;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "sinkd report: stdout: %s\n", strerror(errno));
        return 1;
    }
    if (o.out_dir != NULL && !o.remediation &&
        (o.format == REPORT_CSV || o.format == REPORT_INTELMQ)) {
        fprintf(stderr, "sinkd report: %" PRId64 " bots written to %s\n", rows, o.out_dir);
    }
    return 0;
}
