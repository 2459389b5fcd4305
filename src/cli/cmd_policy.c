/* cmd_policy.c -- `sinkd policy check FILE`: validate a remediation policy and say in plain
 * words what it would do. */
#include "cli/commands.h"
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: sinkd policy check FILE\n"
               "\n"
               "Validates the remediation policy FILE and prints what it would do: which bots\n"
               "each authorisation covers, its exclusions, its window in UTC, its rate, whether\n"
               "a bot is commanded once or repeatedly, its mode, authority, legal reference and\n"
               "the file's SHA-256. Exit status: 0 valid, 1 invalid (the error names file, line\n"
               "and key), 2 usage error. See docs/policy.md.\n");
}

int cmd_policy(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc < 2) {
        fprintf(stderr, "sinkd policy: missing subcommand (try 'sinkd policy check FILE')\n");
        return 2;
    }
    if (strcmp(argv[1], "check") != 0) {
        fprintf(stderr, "sinkd policy: unknown subcommand '%s' (try --help)\n", argv[1]);
        return 2;
    }
    const char *path = NULL;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "sinkd policy check: unknown option '%s'\n", argv[i]);
            return 2;
        }
        if (path != NULL) {
            fprintf(stderr, "sinkd policy check: more than one FILE ('%s')\n", argv[i]);
            return 2;
        }
        path = argv[i];
    }
    if (path == NULL) {
        fprintf(stderr, "sinkd policy check: missing FILE\n");
        return 2;
    }
    char err[512];
    struct policy *p = NULL;
    if (policy_load_file(path, &p, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd policy check: invalid policy: %s\n", err);
        return 1;
    }
    char *text = policy_describe(p);
    policy_free(p);
    if (text == NULL) {
        fprintf(stderr, "sinkd policy check: out of memory\n");
        return 1;
    }
    printf("%s: valid.\n%s", path, text);
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}
