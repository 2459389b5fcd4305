/* cmd_report.c -- `sinkd report`: victim reports for CERTs from the registry (docs/reports.md). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "report/report.h"

static void report_usage(FILE *out)
{
    fprintf(
        out,
        "usage: sinkd report --state DIR [options]\n"
        "  --format csv|intelmq|summary|summary-json   (default csv)\n"
        "  --split country|asn     one file per country (<CC>.csv, unknown ZZ) or per ASN\n"
        "                          (AS<n>.csv) in --out DIR\n"
        "  --out DIR               write files into DIR instead of stdout\n"
        "  --since T, --until T    bots last seen in [since, until); T is YYYY-MM-DD or\n"
        "                          'YYYY-MM-DD HH:MM:SS' UTC; a bare --until date includes\n"
        "                          that day\n"
        "  --tag TAG               flagged sector: its bots first, and (with --out) also in\n"
        "                          <name>-flagged.csv/jsonl\n"
        "  --public-source NAME    CSV public_source (default sinkd)\n"
        "  --feed-name NAME        IntelMQ feed.name (default sinkd-plugx)\n"
        "  --top N                 summary table rows (default 10)\n"
        "  --catch-up              apply the evidence log's new entries to the registry first\n");
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

int cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        {"state", required_argument, NULL, 's'},
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
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct report_options o = {0};
    const char *state = NULL;
    bool catch_up = false;
    char err[512];
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
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
        case 'h':
            report_usage(stdout);
            return 0;
        default:
            report_usage(stderr);
            return 2;
        }
    }
    if (state == NULL) {
        fprintf(stderr, "sinkd report: --state DIR is required\n");
        return 2;
    }
    if (o.split != REPORT_SPLIT_NONE && o.out_dir == NULL) {
        fprintf(stderr, "sinkd report: --split needs --out DIR\n");
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/registry.db", state);
    struct registry *reg;
    if (registry_open(&reg, path, err, sizeof(err)) < 0) {
        fprintf(stderr, "sinkd report: %s\n", err);
        return 1;
    }
    if (catch_up && registry_catch_up(reg, state, NULL, 0, err, sizeof(err)) < 0) {
        fprintf(stderr, "sinkd report: catch-up: %s\n", err);
        registry_close(reg);
        return 1;
    }
    int64_t rows = report_write(reg, &o, stdout, err, sizeof(err));
    registry_close(reg);
    if (rows < 0) {
        fprintf(stderr, "sinkd report: %s\n", err);
        return 1;
    }
    if (fflush(stdout) != 0) {
        fprintf(stderr, "sinkd report: stdout: %s\n", strerror(errno));
        return 1;
    }
    if (o.out_dir != NULL && (o.format == REPORT_CSV || o.format == REPORT_INTELMQ)) {
        fprintf(stderr, "sinkd report: %" PRId64 " bots written to %s\n", rows, o.out_dir);
    }
    return 0;
}
