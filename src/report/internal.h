/* internal.h -- what the report module's own files share (not part of the module contract). */
#ifndef SINKD_REPORT_INTERNAL_H
#define SINKD_REPORT_INTERNAL_H

#include <stddef.h>
#include <stdio.h>

#include "report/report.h"

/* The remediation report (remediation.c): report_write() with opt->remediation set. Returns 0 or
 * < 0 with a message. */
int report_remediation_write(struct registry *reg, const struct report_options *o, FILE *out,
                             char *err, size_t errlen);

#endif
