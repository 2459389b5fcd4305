/* log_internal.h -- what the evidence log's own files share (log.c: journal, commit, recovery,
 * checkpoints; tile_writer.c: the thread that writes tiles and publishes checkpoints;
 * cp_retention.c: the checkpoint retention it runs; log_reader.c: the journal reader). Not part of
 * the module contract: evidence/log.h is. */
#ifndef SINKD_EVIDENCE_LOG_INTERNAL_H
#define SINKD_EVIDENCE_LOG_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event/event.h"
#include "evidence/access.h"
#include "evidence/log.h"
#include "evidence/seal.h"

/* A sealed record: the record (< EVENT_RECORD_MAX) and its seal tags. */
#define EVLOG_SEAL_BUF (EVENT_RECORD_MAX + 128)

/* Journal: a 16-byte file header ("SNKDWAL1", durable length u64 BE), then batches:
 *   header  "BTCH" count:u32 first:u64 payload_len:u64                     (24 bytes)
 *   payload count x (len:u16 BE || entry)          -- the tlog-tiles bundle framing
 *   trailer "CMIT" 0:u32 size_after:u64 root:32                            (48 bytes)
 * The trailer is the commit record: the tree root after the batch, so replay detects a torn or
 * altered tail by re-hashing. All integers big-endian. */
#define WAL_MAGIC "SNKDWAL1"
#define WAL_HDR 16
#define BATCH_HDR 24
#define BATCH_TRL 48
#define BATCH_MAX_ENTRIES (1u << 24)
#define STAGE_CAP_START ((size_t)1 << 16) /* the batch buffer, grown by doubling under load */
#define DEFAULT_BATCH_BYTES (64u << 20)
#define DEFAULT_TILE_QUEUE_BYTES (256u << 20)
#define TILE_RETRY_MS 1000 /* the tile writer retries a failed write this often */
#define TILE_WRITER_NICE 5
#define OVERLAP_MIN_BYTES (256u << 10)
#define DEFAULT_CP_ENTRIES 100000u
#define DEFAULT_CP_MS 1000u
#define CHECKPOINTS_MAX 10000000u
#define TILE_LEVELS 8
#define TILE_SLOTS (TILE_LEVELS + 1) /* hash tiles of levels 0..7, then entry bundles */
#define TILE_BYTES (EVLOG_TILE_WIDTH * EVLOG_HASH_SIZE)
#define PARTIALS_UNKNOWN UINT64_MAX

/* Work for the tile writer: a tile or entry bundle (full or partial) to write, or a signed
 * checkpoint to publish once everything queued before it is on disk. */
enum job_kind { JOB_TILE, JOB_CHECKPOINT };
struct tile_job {
    struct tile_job *next;
    enum job_kind kind;
    int level; /* 0..7, or EVLOG_TILE_ENTRIES for an entry bundle */
    uint64_t n;
    unsigned width;  /* EVLOG_TILE_WIDTH for a full tile */
    uint8_t *data;   /* owned: hashes, bundle bytes or the signed note */
    size_t len, cap; /* cap: allocated bytes (a full bundle buffer is reused on rollback) */
    uint64_t size;   /* JOB_CHECKPOINT: the tree size it commits to */
};

struct job_list {
    struct tile_job *head, *tail;
    size_t bytes;
};

/* The tile writer: a thread that turns the in-memory hashes into C2SP files, so creating files
 * (slow on some file systems) never sits on evlog_commit's path. Durability rests on the
 * journal alone; a checkpoint is published only after the tiles it names are on disk. */
struct tile_writer {
    pthread_t thread;
    bool started;
    pthread_mutex_t mu;
    pthread_cond_t work; /* jobs queued, or stop */
    pthread_cond_t idle; /* a job finished or failed */
    struct job_list queue;
    bool stop;
    int err;          /* last failure (retried every TILE_RETRY_MS), 0 once a retry succeeds */
    uint64_t err_seq; /* failures so far (reported once each) */
    char msg[256];
    uint64_t published; /* size of the newest checkpoint on disk */
    uint64_t files;     /* tiles and bundles written */
    /* used by one thread at a time: replay during open, then the writer thread */
    uint64_t partials_of[TILE_SLOTS]; /* 1 + tile with partials on disk, 0 none, or unknown */
};

/* Checkpoint retention (cp_retention.c), run by the tile writer after it publishes a
 * checkpoint: checkpoints/<size> files older than keep_s (by mtime) are removed unless they are
 * the newest of their UTC hour, the newest overall, or have timestamps/<size>.tsq, .tsr or
 * cosignatures/<size>. At most one run per CP_PRUNE_EVERY_S, each bounded (CP_PRUNE_SCAN_MAX
 * files looked at, CP_PRUNE_UNLINKS_MAX removed); a run that stopped at a bound goes on after
 * CP_PRUNE_AGAIN_S. */
#define CP_PRUNE_EVERY_S 600u
#define CP_PRUNE_AGAIN_S 10u
#define CP_PRUNE_SCAN_MAX (1u << 18)
#define CP_PRUNE_UNLINKS_MAX 4096u
struct cp_retention {
    uint64_t keep_s;     /* keep-all window; 0: keep every checkpoint (no run) */
    uint64_t next_run_s; /* CLOCK_MONOTONIC seconds; 0: at the first checkpoint published */
    bool failing;        /* the last run failed (a streak of failures is reported once) */
    /* under tw.mu: */
    uint64_t removed;           /* checkpoint files removed by this handle */
    uint64_t err_seq, err_seen; /* failing streaks begun / reported */
    char msg[256];              /* the first failure of the streak */
};

struct evlog {
    /* The latest time an erasure record appended through this handle erased personal data
     * before (evlog_erased_before_us): read by other threads. */
    _Atomic uint64_t erased_before_us;
    char state[EVLOG_PATH_MAX];
    char logdir[EVLOG_PATH_MAX];
    int wal_fd;
    int log_fd; /* the log directory, for syncfs and directory fsync */
    uint64_t wal_len;
    struct evlog_signer signer;
    struct evlog_verifier verifier;
    struct evlog_hasher *hasher;
    struct evlog_frontier tree; /* durable tree (during evlog_commit: including the batch) */
    uint8_t *tile[TILE_LEVELS]; /* the tile being filled at each level (TILE_BYTES each) */
    uint8_t *bundle;            /* entry bundle of the current level-0 tile */
    size_t bundle_len, bundle_cap;
    struct job_list pending; /* full tiles completed by the batch being committed */
    int add_err;             /* allocation failure while hashing a batch */
    /* staged batch: BATCH_HDR reserved, then payload */
    uint8_t *stage;
    size_t stage_len, stage_cap, stage_max;
    uint32_t staged;
    size_t tile_queue_max;
    /* checkpoint policy and state */
    uint64_t cp_entries, cp_ms;
    uint64_t cp_size, cp_time_ms; /* newest checkpoint handed to the tile writer */
    bool cp_time_set;
    uint64_t err_seq_seen;
    bool broken;     /* the journal may be ahead of or behind the in-memory tree */
    bool recovering; /* replaying: write tiles only where missing or after the last checkpoint */
    uint64_t rewrite_from;  /* during replay: tiles ending after this leaf index are rewritten */
    uint64_t tiles_written; /* during replay */
    struct tile_writer tw;
    struct access_drain_state spool; /* records other processes handed in (access.h) */
    struct seal_keyring *seal;       /* NULL: entries stored as given (seal.h) */
    uint8_t seal_buf[EVLOG_SEAL_BUF];
    char seal_err[256];            /* why the last record could not be sealed */
    struct cp_retention retention; /* the tile writer's; see above */
    /* Journal compaction (journal_base.c): entries below base_index live in the entry bundles
     * only; the journal's live batches start at byte base_off. */
    uint64_t base_index, base_off;
    uint64_t compact_bytes;
    struct batch_mark *marks; /* batches from the base on that hold an entry on a bundle edge */
    size_t nmarks, marks_cap;
    uint64_t compact_failed_at; /* base a compaction failed at: retried once it moves on */
    bool punch_unsupported;     /* the file system cannot punch holes: the base still bounds
                                   recovery, the bytes stay */
    int compact_lock_fd;        /* journal/compact.lock, -1 until the first compaction */
};

/* log.c's helpers, shared with the other two files. */
/* err = "WHAT PATH: strerror(errno)"; returns EVLOG_EIO. */
int evlog_sys_err(char *err, size_t errlen, const char *what, const char *path);
/* mkdir -p (0755); -1 with errno. */
int evlog_mkdirs(const char *path);
/* fsync(2) of a directory; -1 with errno. */
int evlog_fsync_dir(const char *dir);
/* A batch buffer back to STAGE_CAP_START once batches of `used` bytes are small again. */
void evlog_shrink_after_burst(uint8_t **buf, size_t *cap, size_t used);

/* tile_writer.c: jobs, and the thread that runs them. */
/* The partials_of slot of a tile level (EVLOG_TILE_ENTRIES: the entry bundles). */
int evlog_tile_slot(int level);
struct tile_job *evlog_job_new(enum job_kind kind, int level, uint64_t n, unsigned width);
void evlog_job_free(struct tile_job *j);
void evlog_jobs_push(struct job_list *l, struct tile_job *j);
void evlog_jobs_free(struct job_list *l);
/* The tile writer thread's body (pthread_create with the log as argument, at evlog_open). */
void *evlog_tile_writer_main(void *arg);
/* Hands the jobs of l to the tile writer's queue (or, before its thread started, during replay,
 * runs them here); l is emptied. */
int evlog_tw_submit(struct evlog *log, struct job_list *l, char *err, size_t errlen);
/* Waits until the tile writer has run every queued job, or failed one. */
int evlog_tw_wait_idle(struct evlog *log, char *err, size_t errlen);
/* Stops the tile writer's thread once its queue is empty (or at once if a job fails), then frees
 * what is left queued: a tile not written is rebuilt from the journal at the next open. */
void evlog_tw_stop(struct evlog *log);

/* cp_retention.c. A retention run, if one is due (tile writer thread, after publishing the
 * checkpoint of newest_size). Failures are kept for evlog_cp_retention_error, never returned:
 * they never stop a checkpoint. */
void evlog_cp_retention_run(struct evlog *log, uint64_t newest_size);
/* A retention failure not reported yet: EVLOG_EIO with err naming the file, else 0. */
int evlog_cp_retention_error(struct evlog *log, char *err, size_t errlen);
/* journal_base.c: the journal base and compaction (docs/evidence.md "Journal compaction"). */
#define DEFAULT_COMPACT_BYTES (1u << 20)
struct batch_mark {
    uint64_t first; /* index of the batch's first entry */
    uint32_t count;
    uint64_t off; /* journal byte where the batch starts */
};
/* Notes a batch that reached the journal (committed or replayed) at byte off, if it holds an
 * entry whose index is a multiple of EVLOG_TILE_WIDTH (a base can only fall there). Returns 0,
 * or EVLOG_ENOMEM (the mark is lost: compaction waits for the next one). */
int evlog_mark_batch(struct evlog *log, uint64_t first, uint32_t count, uint64_t off);
/* Opens sealed entries with a state directory's epoch keys, for the log's readers (the reader,
 * evidence/described.c); the keyring is opened at the first sealed entry. */
struct evlog_unsealer {
    const char *state;
    struct seal_keyring *seal;
    bool failed; /* no keyring here: sealed entries are handed out as they are */
    uint8_t opened[EVLOG_SEAL_BUF];
};
/* Entry idx: replaced by its opened bytes (in u->opened) when it is sealed and its key is here.
 * Returns an enum seal_state (evidence/seal.h), or EVLOG_ECORRUPT with err ("entry N: why")
 * when its seal does not open with its own key (damage). */
int evlog_unseal(struct evlog_unsealer *u, uint64_t idx, const uint8_t **entry, size_t *len,
                 char *err, size_t errlen);
void evlog_unsealer_release(struct evlog_unsealer *u);

/* Reads a file of at most max bytes whole into *out (malloc'd): 0, 1 if it does not exist, or a
 * negative code naming it. */
int evlog_read_whole(const char *path, size_t max, uint8_t **out, size_t *len, char *err,
                     size_t errlen);
/* Reads <state>/journal/base: 0 with *out (malloc'd, caller frees) if it exists, 1 if there is
 * none, or a negative code naming the file. */
int evlog_base_read(const char *state, struct evlog_journal_base **out, char *err, size_t errlen);
/* Opens (creating) journal/compact.lock, which copies of a live state directory hold shared. */
int evlog_compact_lock_open(struct evlog *log, char *err, size_t errlen);
/* At open: the full entry bundle and level-0 tile just below the journal base exist (else a
 * copy taken while compacting lost entries): 0, or EVLOG_ECORRUPT saying so. */
int evlog_base_bundles_present(const struct evlog *log, char *err, size_t errlen);
/* Moves the journal base up to the newest bundle edge at or below `published` (the size of a
 * checkpoint on disk, so its tiles and bundles are durable) once that drops at least
 * compact_bytes of journal, unless a copy holds journal/compact.lock: writes journal/base (after
 * checking it reproduces the commit root of the batch it starts at), then punches the journal's
 * prefix out. 1 if it compacted, 0 if not due, negative on failure (the journal is then unchanged
 * or merely not yet punched). */
int evlog_compact(struct evlog *log, uint64_t published, char *err, size_t errlen);

#endif
