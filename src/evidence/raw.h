/* raw.h -- `serve --keep-raw`: the decrypted, decompressed body of each message a bot sent,
 * kept once per distinct content as state/raw/<first 2 hex>/<SHA-256 in hex>. The name is the
 * SHA-256 the message's contact record carries (body_sha256), so the signed log vouches for
 * every stored body and `sha256sum` alone shows a file is intact; researchers re-parse bodies
 * whose layout (PLUGX.md) is not confirmed. Capture is best effort and never waits for the
 * disk (no fsync): a body that cannot be kept (budget spent, disk short of its reserve, an I/O
 * error) is counted, and its contact record, which holds the hash, is unaffected
 * (docs/evidence.md). */
#ifndef SINKD_EVIDENCE_RAW_H
#define SINKD_EVIDENCE_RAW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "util/keyset.h"

#define RAW_DIR "raw"
#define RAW_BODY_MAX (1024 * 1024) /* larger than any decodable body; bigger files are damaged */

struct raw_store_config {
    uint64_t max_bytes; /* what this run may add; 0: no limit of its own */
    /* Capture stops while the filesystem has less free than this (checked every
     * RAW_STATFS_EVERY stores), so the bodies never take the space the log needs. */
    uint64_t reserve_bytes;
};

struct raw_store_stats {
    uint64_t stored, stored_bytes; /* new files written by this run */
    uint64_t duplicates;           /* bodies already kept */
    uint64_t skipped;              /* not kept: budget, reserve or an error */
    bool full;      /* capture stopped: the budget is spent (for the run) or the disk is short of
                     * its reserve (until a later reading finds the space back) */
    int last_errno; /* of the last failed store, 0 if none */
};

/* Creates state_dir/raw and its 256 subdirectories (so no directory is made after the
 * sandbox is up). One store is shared by every worker thread. */
struct raw_store;
int raw_store_open(struct raw_store **out, const char *state_dir,
                   const struct raw_store_config *cfg, char *err, size_t errlen);
/* Keeps body under its hash unless a file of that name exists. Safe from several threads.
 * Returns 1 stored, 0 already kept, -1 not kept (counted in the stats; the caller goes on). */
int raw_store_put(struct raw_store *s, const uint8_t sha256[32], const uint8_t *body, size_t len);
void raw_store_stats(struct raw_store *s, struct raw_store_stats *out);
void raw_store_close(struct raw_store *s);

/* ---- offline check (`sinkd raw check`) ---------------------------------------------------- */

struct raw_check_result {
    uint64_t files, bytes;
    uint64_t damaged;      /* content does not hash to the name, or unreadable, or too large */
    uint64_t stray;        /* names that are not <2 hex>/<64 hex> (e.g. a crash's temp file) */
    uint64_t unreferenced; /* intact files no contact in the log names */
    uint64_t contacts;     /* contact records read from the log */
    uint64_t with_body;    /* ... whose body is kept */
    uint64_t distinct_bodies, distinct_missing;
};

/* Called for each damaged or stray file, with its path under state_dir and why. */
typedef void (*raw_check_report_fn)(void *ctx, const char *path, const char *why);

/* Reads every durable contact of state_dir's log and every file under state_dir/raw. Returns 0
 * (the figures are in *out, damage included) or -1 when the log or the directory cannot be
 * read. */
int raw_check(const char *state_dir, struct raw_check_result *out, raw_check_report_fn report,
              void *ctx, char *err, size_t errlen);

/* Walks dir/raw (a state directory or an evidence bundle): every file must hash to its name.
 * Counts files, bytes, damaged and stray ones (each reported), and intact files whose hash's
 * first KEYSET_KEY bytes are not in `referenced` (NULL: none counted); adds each intact file's
 * to `kept` if non-NULL. A missing dir/raw is an error. Leaves the contact figures alone. */
int raw_check_dir(const char *dir, const struct keyset *referenced, struct keyset *kept,
                  struct raw_check_result *out, raw_check_report_fn report, void *ctx, char *err,
                  size_t errlen);

/* Copies the body named sha256 from from_dir/raw to to_dir/raw (same layout, directories
 * made as needed) once it has hashed it to its name. 1 copied, 0 not kept in from_dir, -1
 * with err (damaged, or I/O). */
int raw_copy(const char *from_dir, const char *to_dir, const uint8_t sha256[32], char *err,
             size_t errlen);

/* ---- re-reading kept bodies (`sinkd raw check --reparse`) ------------------------------- */

/* A protocol family's identity parser, supplied by the caller (evidence/ knows no protocol):
 * 0 with *out filled, -1 if the body yields no identity, 1 if `family` is not one it parses. */
typedef int (*raw_identity_fn)(void *ctx, const char *family, const uint8_t *body, size_t len,
                               struct bot_identity *out);
/* Called for each contact whose kept body reads differently: the first field that differs. */
typedef void (*raw_mismatch_fn)(void *ctx, uint64_t index, const char *field, const char *recorded,
                                const char *reread);

struct raw_reparse_result {
    uint64_t identified;     /* contacts whose identity came from their own body (machine-info) */
    uint64_t reparsed;       /* ... whose kept body was read and parsed again */
    uint64_t matched;        /* ... and gave the recorded identity, field for field */
    uint64_t mismatched;     /* ... and gave another (each reported) */
    uint64_t missing_body;   /* ... whose body is not kept */
    uint64_t damaged;        /* ... whose kept file does not hash to the recorded body_sha256 */
    uint64_t unknown_family; /* ... of a family `parse` does not know */
};

/* For every durable machine-info contact of state_dir's log: reads its kept body, checks its
 * hash, parses it with `parse` and compares host, user, os, local_ip, campaign and version with
 * the record. Shows that the recorded fields are what these bytes say (or, after a parser
 * change, which records would now read differently). 0, or -1 when the log cannot be read. */
int raw_reparse(const char *state_dir, raw_identity_fn parse, void *parse_ctx,
                raw_mismatch_fn report, void *report_ctx, struct raw_reparse_result *out, char *err,
                size_t errlen);

/* "ab/ab12...": the relative name of a body under raw/ (68 bytes with the NUL). */
#define RAW_NAME_LEN 68
void raw_name(const uint8_t sha256[32], char out[RAW_NAME_LEN]);
/* Parses a relative name back to the hash; false for anything else (lowercase hex only, the
 * subdirectory must be the hash's first byte). */
bool raw_parse_name(const char *name, uint8_t sha256[32]);

#endif
