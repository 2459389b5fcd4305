/* main.c -- the sinkd command line: dispatch to one subcommand. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"

struct subcommand {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct subcommand subcommands[] = {
    {"serve", cmd_serve, "run the sinkhole"},
    {"swarm", cmd_swarm, "emulate infected machines calling a sinkhole (loopback only)"},
    {"contacts", cmd_contacts, "print recorded contacts as JSON lines"},
    {"report", cmd_report, "victim reports for CERTs (Shadowserver CSV, IntelMQ JSON, summary)"},
    {"registry", cmd_registry, "the victim registry (registry rebuild, registry follow)"},
    {"policy", cmd_policy, "remediation policy files (policy check)"},
    {"portal", cmd_portal, "the authorities' portal (HTTPS; portal check, approve, reject)"},
    {"keygen", cmd_keygen, "create an evidence-log signing key"},
    {"verify", cmd_verify, "verify an evidence log offline"},
    {"prove", cmd_prove, "write an evidence bundle for a bot, an address or an entry"},
    {"verify-bundle", cmd_verify_bundle, "verify an evidence bundle offline"},
    {"timestamp", cmd_timestamp, "have a TSA timestamp a checkpoint (RFC 3161)"},
    {"cosign", cmd_cosign, "have a witness cosign a checkpoint (C2SP tlog-witness)"},
    {"erase", cmd_erase, "erase victims' personal data recorded before a time (retention, orders)"},
    {"raw", cmd_raw, "check the message bodies serve --keep-raw kept (raw check)"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sinkd <command> [options]   (sinkd <command> --help for details)\n\n");
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        fprintf(out, "  %-14s %s\n", subcommands[i].name, subcommands[i].summary);
    }
    fprintf(out, "\n  --version      print the version and exit\n"
                 "  --help         this text\n"
                 "\nEvery line sinkd writes to stderr starts with its UTC time "
                 "(2026-01-31T12:34:56.789Z).\n");
}

int main(int argc, char **argv)
{
    cli_stderr_timestamps();
    /* getopt's own messages are a second line: every subcommand says it in its one line. */
    opterr = 0;
    if (argc < 2) {
        fprintf(stderr, "sinkd: missing command (see 'sinkd --help')\n");
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("sinkd %s\n", SINKD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        if (strcmp(argv[1], subcommands[i].name) == 0) {
            return subcommands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "sinkd: unknown command '%s' (see 'sinkd --help')\n", argv[1]);
    return 2;
}
