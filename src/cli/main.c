/* main.c -- the sinkd command line: dispatch to one subcommand. */
#include <stdio.h>
#include <string.h>

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
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sinkd <command> [options]   (sinkd <command> --help for details)\n\n");
    for (size_t i = 0; i < sizeof(subcommands) / sizeof(subcommands[0]); i++) {
        fprintf(out, "  %-14s %s\n", subcommands[i].name, subcommands[i].summary);
    }
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
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
    fprintf(stderr, "sinkd: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
