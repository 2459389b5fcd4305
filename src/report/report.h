/* report.h -- victim reports for CERTs from the registry: Shadowserver-style "Sinkhole Events"
 * CSV, IntelMQ JSON lines, per-country / per-ASN split files, and summary tables. */
#ifndef SINKD_REPORT_REPORT_H
#define SINKD_REPORT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "registry/registry.h"

enum report_format {
    REPORT_CSV = 0,          /* Shadowserver event4_sinkhole layout (docs/reports.md) */
    REPORT_INTELMQ = 1,      /* one JSON object per line, IntelMQ harmonization keys */
    REPORT_SUMMARY = 2,      /* human-readable tables */
    REPORT_SUMMARY_JSON = 3, /* the same numbers as one JSON object */
};

enum report_split {
    REPORT_SPLIT_NONE = 0,
    REPORT_SPLIT_COUNTRY = 1, /* <CC>.csv / <CC>.jsonl, unknown country "ZZ" */
    REPORT_SPLIT_ASN = 2,     /* AS<n>.csv / AS<n>.jsonl, unknown ASN "AS0" */
};

/* Optional AS-name lookup (enrich); returns "" or NULL when unknown. */
typedef const char *(*report_as_name_fn)(void *ctx, uint32_t asn);

struct report_options {
    enum report_format format;
    enum report_split split;   /* csv and intelmq only; needs out_dir */
    const char *out_dir;       /* write files here; NULL: write everything to `out` */
    const char *public_source; /* CSV public_source; NULL -> "sinkd" */
    const char *feed_name;     /* IntelMQ feed.name; NULL -> "sinkd-plugx" */
    uint64_t since_us;         /* rows: bots last seen at or after (0: no bound) */
    uint64_t until_us;         /* rows: bots last seen before (0: no bound) */
    const char *tag;           /* flagged sector: these bots first, and in <name>-flagged files */
    uint64_t now_us;           /* IntelMQ time.observation; 0 -> the current time */
    size_t top;                /* summary: rows in the top-country / top-ASN tables; 0 -> 10 */
    report_as_name_fn as_name;
    void *as_name_ctx;
    /* The remediation (effectiveness) report instead of victim rows (docs/reports.md): formats
     * csv, summary, summary-json; since/until then select decisions and commands by their time
     * and cut the observation off at until. */
    bool remediation;
};

/* The CSV header, in order (REPORTS.md section 1: the current Shadowserver page's order, with
 * `severity` between device_model and dst_ip). */
#define REPORT_CSV_NCOLUMNS 31
extern const char *const report_csv_columns[REPORT_CSV_NCOLUMNS];

/* Writes the report. With opt->remediation, the remediation report (to `out`, or to
 * out_dir/remediation.{csv,txt,json}). With out_dir, files are created there (the directory must
 * exist) and `out` is unused; without it, everything goes to `out` (a split then needs out_dir:
 * error). Returns the number of bot rows written (summaries: 0) or < 0 with a message. */
int64_t report_write(struct registry *reg, const struct report_options *opt, FILE *out, char *err,
                     size_t errlen);

/* One row at a time, for callers that select the bots themselves (the portal hands an authority
 * only its own victims): the header (CSV only; nothing for IntelMQ), then one row per bot in
 * opt->format (REPORT_CSV or REPORT_INTELMQ), with report_write's defaults. 0 or -1. */
void report_write_header(const struct report_options *opt, FILE *out);
int report_write_row(const struct report_options *opt, const struct registry_bot *bot, FILE *out,
                     char *err, size_t errlen);

/* Parses "YYYY-MM-DD", "YYYY-MM-DD HH:MM:SS" or "YYYY-MM-DDTHH:MM:SS[Z]" as UTC. A bare date
 * given as an end bound (end_of_day) means the end of that day, so --until 2026-01-31 includes
 * the 31st. Returns 0 or -1. */
int report_parse_time(const char *text, bool end_of_day, uint64_t *out_us, char *err,
                      size_t errlen);

/* Country code as used in file names: two upper-case letters/digits, else "ZZ". */
void report_cc_name(const char *cc, char out[3]);

#endif
