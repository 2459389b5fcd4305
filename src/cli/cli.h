/* cli.h -- small helpers shared by the subcommands: strict number parsing and usage errors. */
#ifndef SINKD_CLI_CLI_H
#define SINKD_CLI_CLI_H

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

/* Parses a decimal (or 0x-prefixed hex) integer within [min, max]. On failure prints
 * "sinkd <cmd>: --<opt>: '<text>' is not ..." and returns false. */
bool cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t min, uint64_t max,
                   uint64_t *out);

/* Prints "sinkd <cmd>: <message>" and "Try 'sinkd <cmd> --help'." and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* getopt_long without its prefix matching: glibc takes "--enf" for "--enforce" and "--pol" for
 * "--policy", so a typo or a truncated script line could switch enforcement on or point at
 * another file. Same signature and results as getopt_long, except that a long option written
 * other than in full ("--enf", "--enf=x") is refused: it returns '?' with optind just past the
 * offending argument, so argv[optind - 1] names it, and, when opterr is set, prints
 * "<argv[0]>: option '--enf' is not written in full (options are never abbreviated)". Every
 * subcommand parses its options with it (tests/e2e/cli_abbrev_test.sh). */
int cli_getopt_long(int argc, char *const argv[], const char *optstring,
                    const struct option *longopts, int *longindex);

/* The data directory: $SINKD_DATA_DIR, else the build's source data/ folder. */
const char *cli_data_dir(void);

#endif
