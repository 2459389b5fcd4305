/* cli.h -- small helpers shared by the subcommands: strict number parsing and usage errors. */
#ifndef SINKD_CLI_CLI_H
#define SINKD_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

/* Parses a decimal (or 0x-prefixed hex) integer within [min, max]. On failure prints
 * "sinkd <cmd>: --<opt>: '<text>' is not ..." and returns false. */
bool cli_parse_u64(const char *cmd, const char *opt, const char *text, uint64_t min, uint64_t max,
                   uint64_t *out);

/* Prints "sinkd <cmd>: <message>" and "Try 'sinkd <cmd> --help'." and returns 2. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The data directory: $SINKD_DATA_DIR, else the build's source data/ folder. */
const char *cli_data_dir(void);

#endif
