/* cli_access.c -- the access record of a command that outputs victims' data: checked options,
 * then the record made durable before the output is handed out. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "evidence/access.h"

int cli_access_check(const char *cmd, const struct cli_access *a)
{
    char err[256];
    if (a->justification == NULL) {
        return cli_usage_error(cmd, "--justification TEXT is required: this outputs victims' "
                                    "data, and every such read is recorded");
    }
    if (access_check_args(a->operator_name, a->justification, err, sizeof(err)) != 0) {
        return cli_usage_error(cmd, "%s", err);
    }
    return 0;
}

int cli_access_record(const char *cmd, const char *state_dir, const struct cli_access *a,
                      const char *what, const char *scope, uint64_t rows,
                      const uint8_t output_sha256[32])
{
    char err[512];
    struct record rec;
    struct access_receipt receipt;
    if (access_record_build(&rec, a->operator_name, what, scope, rows, output_sha256,
                            a->justification, err, sizeof(err)) != 0 ||
        access_submit(state_dir, &rec, &receipt, err, sizeof(err)) != 0) {
        fprintf(stderr, "sinkd %s: access record: %s (nothing was output)\n", cmd, err);
        return 1;
    }
    return 0;
}
