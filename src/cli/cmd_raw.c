/* cmd_raw.c -- `sinkd raw check`: the bodies `serve --keep-raw` kept, against the log. */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "evidence/access.h"
#include "evidence/raw.h"
#include "proto/plugx/plugx.h"

static const char raw_usage[] =
    "usage: sinkd raw check --state DIR [--require-all]\n"
    "       sinkd raw check --state DIR [--require-all] --reparse --justification TEXT\n"
    "                       [--operator NAME]\n"
    "\n"
    "Checks the message bodies `sinkd serve --keep-raw` kept in DIR/raw/ against DIR's\n"
    "evidence log: every file's SHA-256 must equal its name (the same check as\n"
    "`sha256sum`), and each name is looked up among the body hashes the log's contact\n"
    "records carry. Prints the damaged or stray files, one per line, then the totals as\n"
    "JSON: files, bytes, damaged, stray, unreferenced (kept bodies no contact names),\n"
    "contacts, contacts_with_body, distinct_bodies, distinct_missing.\n"
    "Exit 0 if no file is damaged or stray, 1 otherwise (or if the log or DIR/raw cannot be\n"
    "read), 2 on a usage error.\n"
    "\n"
    "  --state DIR     the sinkhole's state directory\n"
    "  --require-all   also exit 1 if any contact's body is not kept (capture is best\n"
    "                  effort: a budget, the disk reserve or a crash leave gaps)\n"
    "  --reparse       also parse every machine-info contact's kept body again and compare\n"
    "                  host, user, os, local_ip, campaign and version with the record; print\n"
    "                  each difference and add \"reparse\" figures to the JSON; exit 1 on any\n"
    "                  (after a parser change: which records would now read differently);\n"
    "                  this reads victims' host and user names, so it needs --justification\n"
    "                  and its output is printed only once DIR's log records the "
    "access\n" CLI_ACCESS_USAGE "  --help          this text\n";

static void report_bad(void *ctx, const char *path, const char *why)
{
    fprintf(ctx, "%s: %s\n", path, why);
}

/* The identity parsers of the families this build speaks. */
static int parse_identity(void *ctx, const char *family, const uint8_t *body, size_t len,
                          struct bot_identity *out)
{
    (void)ctx;
    if (strcmp(family, plugx_family.name) != 0) {
        return 1;
    }
    return plugx_machine_info_parse(body, len, out);
}

static void report_mismatch(void *ctx, uint64_t index, const char *field, const char *recorded,
                            const char *reread)
{
    fprintf(ctx, "entry %" PRIu64 ": %s recorded '%s', its kept body reads '%s'\n", index, field,
            recorded, reread);
}

int cmd_raw(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0) {
        fputs(raw_usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "check") != 0) {
        return cli_usage_error("raw", "unknown subcommand '%s' (only: check)", argv[1]);
    }
    enum { OPT_STATE = 1, OPT_REQUIRE_ALL, OPT_REPARSE, OPT_JUSTIFICATION, OPT_OPERATOR, OPT_HELP };
    static const struct option options[] = {
        {"state", required_argument, NULL, OPT_STATE},
        {"require-all", no_argument, NULL, OPT_REQUIRE_ALL},
        {"reparse", no_argument, NULL, OPT_REPARSE},
        {"justification", required_argument, NULL, OPT_JUSTIFICATION},
        {"operator", required_argument, NULL, OPT_OPERATOR},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *state = NULL;
    bool require_all = false, reparse = false;
    struct cli_access access = {0};
    int opt;
    optind = 1;
    opterr = 0;
    argc--;
    argv++;
    while ((opt = cli_getopt_long(argc, argv, "", options, NULL)) != -1) {
        switch (opt) {
        case OPT_STATE:
            state = optarg;
            break;
        case OPT_REQUIRE_ALL:
            require_all = true;
            break;
        case OPT_REPARSE:
            reparse = true;
            break;
        case OPT_JUSTIFICATION:
            access.justification = optarg;
            break;
        case OPT_OPERATOR:
            access.operator_name = optarg;
            break;
        case OPT_HELP:
            fputs(raw_usage, stdout);
            return 0;
        default:
            return cli_usage_error("raw check", "unknown or incomplete option '%s'",
                                   argv[optind - 1]);
        }
    }
    if (optind < argc) {
        return cli_usage_error("raw check", "unexpected argument '%s'", argv[optind]);
    }
    if (state == NULL) {
        return cli_usage_error("raw check", "--state DIR is required");
    }
    /* --reparse reads host and user names back: on the record. The plain check prints hashes
     * and counts. */
    bool recorded = reparse || access.justification != NULL;
    if (recorded) {
        int urc = cli_access_check("raw check", &access);
        if (urc != 0) {
            return urc;
        }
    }
    if (recorded && cli_act_as_state_owner("raw check", state) != 0) {
        return 1;
    }
    struct raw_check_result r;
    char err[512];
    struct access_output *held = NULL;
    FILE *out = stdout;
    if (recorded) {
        if (access_output_open(&held, state, err, sizeof(err)) != 0) {
            fprintf(stderr, "sinkd raw check: %s\n", err);
            return 1;
        }
        out = access_output_stream(held);
    }
    struct raw_reparse_result p = {0};
    if (raw_check(state, &r, report_bad, out, err, sizeof(err)) != 0 ||
        (reparse && raw_reparse(state, parse_identity, NULL, report_mismatch, out, &p, err,
                                sizeof(err)) != 0)) {
        fprintf(stderr, "sinkd raw check: %s\n", err);
        access_output_close(held);
        return 1;
    }
    fprintf(out,
            "{\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"damaged\":%" PRIu64
            ",\"stray\":%" PRIu64 ",\"unreferenced\":%" PRIu64 ",\"contacts\":%" PRIu64
            ",\"contacts_with_body\":%" PRIu64 ",\"distinct_bodies\":%" PRIu64
            ",\"distinct_missing\":%" PRIu64,
            r.files, r.bytes, r.damaged, r.stray, r.unreferenced, r.contacts, r.with_body,
            r.distinct_bodies, r.distinct_missing);
    if (reparse) {
        fprintf(out,
                ",\"reparse\":{\"machine_info_contacts\":%" PRIu64 ",\"reparsed\":%" PRIu64
                ",\"matched\":%" PRIu64 ",\"mismatched\":%" PRIu64 ",\"missing_body\":%" PRIu64
                ",\"damaged\":%" PRIu64 ",\"unknown_family\":%" PRIu64 "}",
                p.identified, p.reparsed, p.matched, p.mismatched, p.missing_body, p.damaged,
                p.unknown_family);
    }
    fprintf(out, "}\n");
    if (held != NULL) {
        uint8_t sha[32];
        char scope[4200];
        snprintf(scope, sizeof(scope), "state=%s%s", state, reparse ? " reparse" : "");
        if (access_output_digest(held, sha, NULL, err, sizeof(err)) != 0) {
            fprintf(stderr, "sinkd raw check: %s\n", err);
            access_output_close(held);
            return 1;
        }
        if (cli_access_record("raw check", state, &access,
                              reparse ? "raw check --reparse" : "raw check", scope, p.reparsed,
                              sha) != 0) {
            access_output_close(held);
            return 1;
        }
        int crc = access_output_copy(held, stdout, err, sizeof(err));
        access_output_close(held);
        if (crc != 0) {
            fprintf(stderr, "sinkd raw check: %s\n", err);
            return 1;
        }
    }
    if (r.damaged > 0 || r.stray > 0) {
        fprintf(stderr, "sinkd raw check: %" PRIu64 " damaged and %" PRIu64 " stray file(s)\n",
                r.damaged, r.stray);
        return 1;
    }
    if (reparse && (p.mismatched > 0 || p.damaged > 0)) {
        fprintf(stderr,
                "sinkd raw check: %" PRIu64 " machine-info record(s) differ from their kept body, "
                "%" PRIu64 " body file(s) damaged\n",
                p.mismatched, p.damaged);
        return 1;
    }
    if (require_all && r.with_body < r.contacts) {
        fprintf(stderr, "sinkd raw check: %" PRIu64 " of %" PRIu64 " contacts have no body kept\n",
                r.contacts - r.with_body, r.contacts);
        return 1;
    }
    return 0;
}
