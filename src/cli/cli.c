/* cli.c -- strict option-value parsing and uniform usage errors for the subcommands. */
#include "cli/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SINKD_DATA_DIR
#define SINKD_DATA_DIR "data"
#endif

bool cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t min, uint64_t max,
                   uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    if (text == NULL || text[0] == '\0' || text[0] == '-' || text[0] == '+') {
        cli_usage_error(cmd, "--%s: '%s' is not a number", opt, text ? text : "");
        return false;
    }
    unsigned long long v = strtoull(text, &end, 0);
    if (errno != 0 || *end != '\0') {
        cli_usage_error(cmd, "--%s: '%s' is not a number", opt, text);
        return false;
    }
    if (v < min || v > max) {
        cli_usage_error(cmd, "--%s: %llu is out of range (%llu-%llu)", opt, v,
                        (unsigned long long)min, (unsigned long long)max);
        return false;
    }
    *out = v;
    return true;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "sinkd %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'sinkd %s --help'.\n", cmd);
    return 2;
}

const char *cli_data_dir(void)
{
    const char *env = getenv("SINKD_DATA_DIR");
    return env != NULL && env[0] != '\0' ? env : SINKD_DATA_DIR;
}

int cli_getopt_long(int argc, char *const argv[], const char *optstring,
                    const struct option *longopts, int *longindex)
{
    int idx = -1;
    optarg = NULL;
    int c = getopt_long(argc, argv, optstring, longopts, &idx);
    if (longindex != NULL) {
        *longindex = idx;
    }
    if (c == -1 || c == '?' || c == ':' || idx < 0 || optind < 1 || optind > argc) {
        return c; /* a short option, the end, or an error getopt_long already reported */
    }
    /* A long option matched. GNU getopt has just consumed it: it is argv[optind - 1], or
     * argv[optind - 2] when its value was the separate argument after it. */
    int at = optind - 1;
    if (optarg != NULL && optarg == argv[at] && at > 0) {
        at--;
    }
    const char *text = argv[at];
    const char *name = strncmp(text, "--", 2) == 0 ? text + 2 : NULL;
    size_t len = name != NULL ? strcspn(name, "=") : 0;
    if (name != NULL && strlen(longopts[idx].name) == len &&
        strncmp(name, longopts[idx].name, len) == 0) {
        return c;
    }
    optind = at + 1; /* so argv[optind - 1] is the refused argument, whatever followed it */
    optopt = 0;
    if (opterr) {
        fprintf(stderr, "%s: option '%s' is not written in full (options are never abbreviated)\n",
                argv[0], text);
    }
    return '?';
}
