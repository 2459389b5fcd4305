/* access.h -- every read of victims' data on the record (Law Enforcement Directive Art. 25), and
 * the path by which processes that do not own the log hand it records: a durable spool in the
 * state directory that the log's one writer drains (docs/evidence.md, "Access records").
 *
 * A reader (a CLI command, the portal) builds its output where nobody sees it yet, digests it,
 * submits its access record, and only then hands the output out:
 *
 *     struct access_output *o;  access_output_open(&o, state, ...);
 *     ... write to access_output_stream(o) ...
 *     access_output_digest(o, sha, &bytes, ...);
 *     access_record_build(&rec, operator, "contacts --all", scope, rows, sha, why, ...);
 *     access_submit(state, &rec, &receipt, ...);       durable before anything is shown
 *     access_output_copy(o, stdout, ...);  access_output_close(o);
 */
#ifndef SINKD_EVIDENCE_ACCESS_H
#define SINKD_EVIDENCE_ACCESS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "event/event.h"
#include "evidence/log.h"

#define ACCESS_SPOOL_DIR "spool"   /* DIR/spool/: records waiting for the log's writer */
#define ACCESS_SPOOL_FILE_MAX 4096 /* bytes of one spooled record file (records are < 2048) */
#define ACCESS_DRAIN_MAX 256       /* records one drain appends (the rest: the next pass) */
#define ACCESS_DRAIN_EVERY_MS 200  /* how often a running writer looks at the spool */
#define ACCESS_JUSTIFICATION_MIN 8 /* characters: "--justification x" is not a reason */

/* ---- the access record -------------------------------------------------------------------- */

/* Fills rec (kind RECORD_ACCESS): the time now, this host's name as node, operator_name or, when
 * NULL or empty, the invoking user ("alice", or "alice (sudo)" for root run through sudo), what
 * was run, its scope and filters, rows handed out, the SHA-256 of the output and the
 * justification. A justification or operator that does not fit its field, or a justification
 * shorter than ACCESS_JUSTIFICATION_MIN, is refused (EVLOG_EINVAL, err says which); what and
 * scope, which sinkd composes, are cut to fit with a trailing "...". No victim data belongs
 * in any of these except scope, which the log seals like a personal field. */
int access_record_build(struct record *rec, const char *operator_name, const char *what,
                        const char *scope, uint64_t rows, const uint8_t output_sha256[32],
                        const char *justification, char *err, size_t errlen);

/* The invoking user: "alice", or "alice (sudo)" for root run through sudo, or "uid N". It is
 * the real uid noted by access_note_invoking_user when that ran, else the real uid now. */
void access_invoking_user(char *out, size_t len);

/* Notes the real uid (once; later calls keep the first): call it before the process gives up
 * its identity (setuid to the state directory's owner), so that the records it makes
 * afterwards still name the user who ran it, not the owner it became. */
void access_note_invoking_user(void);

/* Checks a justification and an operator name as access_record_build would: 0 or EVLOG_EINVAL
 * (for a usage error before any work is done). */
int access_check_args(const char *operator_name, const char *justification, char *err,
                      size_t errlen);

/* ---- output held back until its record is durable ----------------------------------------- */

struct access_output;
/* An unnamed temporary file in DIR/spool (O_TMPFILE: nothing is left if the process dies, and
 * victims' data never goes to /tmp). */
int access_output_open(struct access_output **out, const char *state_dir, char *err, size_t errlen);
FILE *access_output_stream(struct access_output *o);
/* Flushes and digests everything written so far. */
int access_output_digest(struct access_output *o, uint8_t sha256[32], uint64_t *bytes, char *err,
                         size_t errlen);
/* Copies the whole output to `to` (after the record is durable). */
int access_output_copy(struct access_output *o, FILE *to, char *err, size_t errlen);
void access_output_close(struct access_output *o);

/* Digest of the files under dir as handed out: SHA-256 over the lines "<sha256 hex>  <path>\n"
 * (sha256sum's format) of every regular file, paths relative to dir in byte order, so that
 * `(cd DIR && find . -type f -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum) |
 * sha256sum` gives the same digest. *files (may be NULL) receives the file count. */
int access_dir_digest(const char *dir, uint8_t sha256[32], uint64_t *files, char *err,
                      size_t errlen);

/* ---- the spool ---------------------------------------------------------------------------- */

/* Writes rec durably into DIR/spool/ (temporary file, fsync, rename, directory fsync; owned by
 * the state directory's owner when run as root), for the log's writer to append. Only access,
 * erasure and the portal's record kinds (12..15) are accepted. */
int access_spool(const char *state_dir, const struct record *rec, char *err, size_t errlen);

struct access_receipt {
    bool appended;       /* appended by this call (no writer was running) */
    uint64_t appended_n; /* records appended by this call (others' spooled records too) */
    long writer_pid;     /* else: the writer that will append it (serve), from log.lock */
    char writer[96];     /* its command */
};

/* When no process holds DIR/log.lock, takes it (as a brief holder), opens the log, appends
 * everything spooled, publishes a checkpoint and lets go; when one does (a running serve), leaves
 * the records to it and names it in the receipt. */
int access_flush(const char *state_dir, struct access_receipt *receipt, char *err, size_t errlen);

/* access_spool + access_flush: after it returns 0 the record is durable in the spool, and in
 * the log unless receipt->writer_pid names the writer that will append it within
 * ACCESS_DRAIN_EVERY_MS. */
int access_submit(const char *state_dir, const struct record *rec, struct access_receipt *receipt,
                  char *err, size_t errlen);

/* The writer's side (called by evlog_maybe_checkpoint and evlog_close on the writer's thread):
 * appends the spooled records, oldest first, commits, and removes their files. Each file is
 * first renamed to "<name>.at-<index>" (and the directory fsync'd) so that after a crash between
 * the commit and the removal the record is recognised in the log instead of appended twice. A
 * file that is not an acceptable record is renamed "<name>.bad", kept, and reported in err.
 * With `now_ms` it looks only every ACCESS_DRAIN_EVERY_MS and only if the directory changed;
 * now_ms == 0 looks now. Returns records appended, or a negative code. */
/* The pure checks the drain applies to what it finds in DIR/spool/ (anyone who can write there
 * can put anything there; fuzz/evidence_spool_fuzz.c): a file name
 * "<16 digits>-<pid>-<8 hex>.rec[.at-<index>]" (at most 100 characters), and a file's content,
 * which must decode as one record of a kind the spool accepts. */
bool access_spool_name_parse(const char *name, bool *claimed, uint64_t *at);
bool access_spool_accepts(const uint8_t *buf, size_t len, struct record *rec);

struct access_drain_state {
    uint64_t checked_ms;
    struct timespec mtime; /* of DIR/spool when it was last emptied */
    bool leftovers;        /* the last pass left files behind (bounded pass, failure) */
};
int access_spool_drain(struct evlog *log, const char *state_dir, struct access_drain_state *st,
                       uint64_t now_ms, char *err, size_t errlen);

#endif
