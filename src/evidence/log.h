/* log.h -- the evidence log: RFC 6962 Merkle tree, C2SP tlog-tiles on disk, signed checkpoints,
 * proofs and evidence bundles. The whole contract of src/evidence/ (see docs/evidence.md). */
#ifndef SINKD_EVIDENCE_LOG_H
#define SINKD_EVIDENCE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EVLOG_HASH_SIZE 32
#define EVLOG_ENTRY_MAX 65535 /* C2SP tlog-tiles: entries are framed with a uint16 length */
#define EVLOG_TILE_HEIGHT 8   /* C2SP tlog-tiles: fixed tile height */
#define EVLOG_TILE_WIDTH 256  /* hashes in a full tile */
#define EVLOG_PROOF_MAX 64    /* a proof in a tree of size < 2^63 has fewer hashes */
#define EVLOG_NAME_MAX 200    /* longest key name / origin accepted */
#define EVLOG_NOTE_MAX 8192   /* longest signed note read or written */
#define EVLOG_SIGS_MAX 16     /* signature lines accepted in a note (C2SP signed-note: >= 16) */
#define EVLOG_PATH_MAX 4096

/* Error codes (negative). Each function also fills the optional err buffer. */
#define EVLOG_EINVAL (-1)   /* bad argument or malformed input */
#define EVLOG_EIO (-2)      /* a system call failed */
#define EVLOG_ECRYPTO (-3)  /* libcrypto failed */
#define EVLOG_EVERIFY (-4)  /* a signature, proof, hash or consistency check failed */
#define EVLOG_ECORRUPT (-5) /* on-disk data is damaged in a way recovery must not repair */
#define EVLOG_ENOMEM (-6)
#define EVLOG_EFULL (-7) /* a bound was reached (staged batch, entry size) */

/* ---- RFC 6962 / RFC 9162 Merkle tree (SHA-256) -------------------------------------------- */

/* RFC 6962 §2.1: leaf = SHA-256(0x00 || entry), node = SHA-256(0x01 || left || right). */
void evlog_leaf_hash(const uint8_t *entry, size_t len, uint8_t out[EVLOG_HASH_SIZE]);
void evlog_node_hash(const uint8_t left[EVLOG_HASH_SIZE], const uint8_t right[EVLOG_HASH_SIZE],
                     uint8_t out[EVLOG_HASH_SIZE]);

/* Source of stored hashes: the hash of the complete subtree of 2^level leaves starting at leaf
 * index << level. Returns 0 or a negative code (and may fill err). */
typedef int (*evlog_hash_reader)(void *ctx, unsigned level, uint64_t index,
                                 uint8_t out[EVLOG_HASH_SIZE], char *err, size_t errlen);

/* MTH(D[0:size]) (SHA-256("") for size 0). */
int evlog_tree_hash(evlog_hash_reader rd, void *ctx, uint64_t size, uint8_t out[EVLOG_HASH_SIZE],
                    char *err, size_t errlen);
/* RFC 6962 §2.1.1 audit path of leaf `index` in a tree of `size`; *n receives the hash count. */
int evlog_prove_inclusion(evlog_hash_reader rd, void *ctx, uint64_t index, uint64_t size,
                          uint8_t proof[EVLOG_PROOF_MAX][EVLOG_HASH_SIZE], size_t *n, char *err,
                          size_t errlen);
/* RFC 6962 §2.1.2 consistency proof from old_size to new_size (0 < old <= new, else empty). */
int evlog_prove_consistency(evlog_hash_reader rd, void *ctx, uint64_t old_size, uint64_t new_size,
                            uint8_t proof[EVLOG_PROOF_MAX][EVLOG_HASH_SIZE], size_t *n, char *err,
                            size_t errlen);
/* RFC 9162 §2.1.3.2 / §2.1.4.2 iterative verifiers: 0 if the proof holds, EVLOG_EVERIFY if not. */
int evlog_verify_inclusion(uint64_t index, uint64_t size, const uint8_t leaf[EVLOG_HASH_SIZE],
                           const uint8_t (*proof)[EVLOG_HASH_SIZE], size_t n,
                           const uint8_t root[EVLOG_HASH_SIZE]);
int evlog_verify_consistency(uint64_t old_size, uint64_t new_size,
                             const uint8_t old_root[EVLOG_HASH_SIZE],
                             const uint8_t new_root[EVLOG_HASH_SIZE],
                             const uint8_t (*proof)[EVLOG_HASH_SIZE], size_t n);

/* Incremental tree: the right frontier (one complete subtree hash per set bit of size). Appending
 * costs one leaf hash plus, amortised, one node hash. */
struct evlog_frontier {
    uint64_t size;
    uint8_t hash[64][EVLOG_HASH_SIZE]; /* hash[i] = subtree of 2^i leaves, valid iff size bit i */
};
void evlog_frontier_init(struct evlog_frontier *f);

/* A reusable SHA-256 context for hot paths (avoids libcrypto's per-call algorithm fetch). One per
 * thread. */
struct evlog_hasher;
struct evlog_hasher *evlog_hasher_new(void);
void evlog_hasher_free(struct evlog_hasher *h);
void evlog_hasher_leaf(struct evlog_hasher *h, const uint8_t *entry, size_t len,
                       uint8_t out[EVLOG_HASH_SIZE]);
void evlog_hasher_node(struct evlog_hasher *h, const uint8_t left[EVLOG_HASH_SIZE],
                       const uint8_t right[EVLOG_HASH_SIZE], uint8_t out[EVLOG_HASH_SIZE]);

/* Adds one leaf hash; calls done(ctx, tile_level, index, hash) for the leaf (tile level 0) and
 * for every complete subtree formed whose height is a multiple of the tile height (the hashes
 * tiles store); done may be NULL, h may be NULL (slower one-shot hashing). */
void evlog_frontier_push(struct evlog_frontier *f, struct evlog_hasher *h,
                         const uint8_t leaf[EVLOG_HASH_SIZE],
                         void (*done)(void *ctx, unsigned level, uint64_t index,
                                      const uint8_t hash[EVLOG_HASH_SIZE]),
                         void *ctx);
void evlog_frontier_root(const struct evlog_frontier *f, uint8_t out[EVLOG_HASH_SIZE]);

/* ---- C2SP tlog-tiles ---------------------------------------------------------------------- */

#define EVLOG_TILE_ENTRIES (-1) /* `level` value naming the entry bundles (tile/entries/...) */

/* "tile/<L>/<N>[.p/<W>]" or "tile/entries/<N>[.p/<W>]" (width 256 = full, 1..255 = partial);
 * N in 3-digit groups, all but the last prefixed 'x'. Returns the length or EVLOG_EINVAL. */
int evlog_tile_path(int level, uint64_t n, unsigned width, char *out, size_t cap);

/* Reads stored hashes from a tlog-tiles directory for a tree of `size` (falls back from a
 * missing partial tile to the full tile, as C2SP clients do). Usable as evlog_hash_reader. */
struct evlog_tile_reader;
int evlog_tile_reader_open(struct evlog_tile_reader **out, const char *log_dir, uint64_t size,
                           char *err, size_t errlen);
int evlog_tile_reader_hash(void *reader, unsigned level, uint64_t index,
                           uint8_t out[EVLOG_HASH_SIZE], char *err, size_t errlen);
void evlog_tile_reader_close(struct evlog_tile_reader *r);

/* ---- C2SP signed-note, keys and checkpoints ----------------------------------------------- */

/* golang.org/x/mod sumdb/note key formats:
 *   signer   PRIVATE+KEY+<name>+<8 hex keyid>+<base64(0x01 || seed32)>
 *   verifier <name>+<8 hex keyid>+<base64(0x01 || pub32)>
 * key ID = SHA-256(name || 0x0A || 0x01 || pub32)[:4] big-endian. */
struct evlog_signer {
    char name[EVLOG_NAME_MAX + 1];
    uint32_t keyid;
    uint8_t seed[32];
    uint8_t pub[32];
};
struct evlog_verifier {
    char name[EVLOG_NAME_MAX + 1];
    /* A witness's key (C2SP tlog-cosignature, type 0x04: <name>+<keyid>+base64(0x04 || pub32),
     * key ID over type 0x04), whose "signatures" are cosignatures: keyid || time (u64 BE) ||
     * Ed25519 over "cosignature/v1\ntime <time>\n" + note text. Otherwise a log key (0x01). */
    bool witness;
    uint32_t keyid;
    uint8_t pub[32];
};

/* Key names: non-empty, printable ASCII/UTF-8 without spaces or '+'. */
bool evlog_key_name_valid(const char *name);
int evlog_signer_from_seed(const char *name, const uint8_t seed[32], struct evlog_signer *out,
                           char *err, size_t errlen);
void evlog_signer_verifier(const struct evlog_signer *s, struct evlog_verifier *out);
/* Parsers are pure over (text, len); trailing "\n" is allowed. */
int evlog_signer_parse(const char *text, size_t len, struct evlog_signer *out, char *err,
                       size_t errlen);
int evlog_verifier_parse(const char *text, size_t len, struct evlog_verifier *out, char *err,
                         size_t errlen);
/* Formatters return the length written (no newline) or EVLOG_EINVAL if cap is too small. */
int evlog_signer_format(const struct evlog_signer *s, char *out, size_t cap);
int evlog_verifier_format(const struct evlog_verifier *v, char *out, size_t cap);
/* Reads a key file (first line). */
int evlog_signer_load(const char *path, struct evlog_signer *out, char *err, size_t errlen);
int evlog_verifier_load(const char *path, struct evlog_verifier *out, char *err, size_t errlen);

/* Signs `text` (must end in '\n') as a C2SP signed note: text "\n" "— name base64(keyid||sig)\n".
 * Returns the note length or a negative code. */
int evlog_note_sign(const struct evlog_signer *s, const char *text, size_t len, char *out,
                    size_t cap, char *err, size_t errlen);
/* Verifies a signed note with one known key (C2SP signed-note rules: unknown signatures are
 * ignored, a known one must verify, at least one must). On success *text_len is the length of
 * the signed text (a prefix of note). A witness key checks its cosignature. */
int evlog_note_open(const char *note, size_t len, const struct evlog_verifier *v, size_t *text_len,
                    char *err, size_t errlen);
/* The same; for a witness key *cosigned_at receives the time its cosignature states. */
int evlog_note_open_at(const char *note, size_t len, const struct evlog_verifier *v,
                       size_t *text_len, uint64_t *cosigned_at, char *err, size_t errlen);

struct evlog_checkpoint {
    char origin[EVLOG_NAME_MAX + 1];
    uint64_t size;
    uint8_t root[EVLOG_HASH_SIZE];
};
/* C2SP tlog-checkpoint body: origin, decimal size, base64 root, each ending in '\n'. */
int evlog_checkpoint_format(const struct evlog_checkpoint *c, char *out, size_t cap);
/* Parses a checkpoint text (extension lines after the root are allowed and ignored). */
int evlog_checkpoint_parse(const char *text, size_t len, struct evlog_checkpoint *out, char *err,
                           size_t errlen);
/* evlog_note_open + evlog_checkpoint_parse; also requires origin == key name and a log key. */
int evlog_checkpoint_open(const char *note, size_t len, const struct evlog_verifier *v,
                          struct evlog_checkpoint *out, char *err, size_t errlen);

/* Writes <keys_dir>/log.key (0600, signer) and <keys_dir>/log.vkey (0644, verifier) for a fresh
 * Ed25519 key named `origin`. Refuses to overwrite an existing key. */
int evlog_keygen(const char *keys_dir, const char *origin, char *err, size_t errlen);

/* ---- the log (one writer thread owns it) -------------------------------------------------- */

struct evlog_options {
    const char *origin;          /* checkpoint origin = key name; NULL: taken from the key */
    uint64_t checkpoint_entries; /* publish after this many new entries (0: 100000) */
    uint64_t checkpoint_ms;      /* ... or after this many ms with new entries (0: 1000) */
    bool create_key;             /* generate <state>/keys/log.key if <state>/keys has none */
    size_t max_batch_bytes;      /* staged bytes before evlog_append says EVLOG_EFULL (0: 64 MiB) */
    size_t max_tile_queue_bytes; /* tiles/bundles not yet written by the tile writer before
                                    evlog_commit waits for it (0: 256 MiB, ~1.1 M 200-byte
                                    entries) */
    /* Personal data is sealed in every record that has some (evidence/seal.h), under epoch keys
     * in <state>/keys/epochs made as needed, epochs of seal_epoch_s seconds (0: one UTC day).
     * seal_off stores entries as given (benchmarks of the bare log, logs of other data). */
    bool seal_off;
    uint32_t seal_epoch_s;
    /* Checkpoint retention (issue 20; docs/evidence.md "Checkpoint retention"): checkpoints/<size>
     * files older than this many seconds (by mtime) are removed, except the newest of each UTC
     * hour, the newest overall and those with a timestamp request or reply or a cosignature.
     * 0: every checkpoint is kept. serve's --checkpoint-keep-hours sets it (default 24 h). */
    uint64_t checkpoint_keep_s;
    /* Journal compaction (docs/evidence.md "Journal compaction"): once a published checkpoint
     * covers this many journal bytes past the journal base, entries whose full entry bundles are
     * on disk leave the journal (its prefix is punched out; readers and recovery take them from
     * the bundles). 0: 1 MiB; UINT64_MAX: never. */
    uint64_t compact_bytes;
};

/* What open found (for the operator's log line). */
struct evlog_recovery {
    uint64_t size;          /* durable entries after recovery */
    uint64_t cut_bytes;     /* bytes of a torn tail removed from the journal */
    uint64_t checkpoints;   /* published checkpoints checked against the recovered tree */
    uint64_t tiles_written; /* tiles / bundles (re)written from the journal */
    uint64_t base;          /* entries below it were compacted out of the journal (0: none) */
};

struct evlog;
/* Opens (creating if needed) <state_dir>/journal and <state_dir>/log. Replays the journal,
 * checks every batch's commit record, cuts a torn last batch (reported in *rec, never silently
 * kept), rebuilds the tree and refuses to open (EVLOG_ECORRUPT) unless the tree matches every
 * checkpoint in log/checkpoints/. rec may be NULL. */
int evlog_open(struct evlog **out, const char *state_dir, const struct evlog_options *opt,
               struct evlog_recovery *rec, char *err, size_t errlen);
/* The latest time an erasure record appended through this handle (by its writer, or drained from
 * the spool: `sinkd erase` while serve runs) erased personal data before; 0 if none. Safe from
 * any thread. serve uses it to strip personal data from rolled-up counts of that time. */
uint64_t evlog_erased_before_us(struct evlog *log);
/* Stages one entry (0..65535 bytes) in memory; not durable until evlog_commit. *index_out (may be
 * NULL) receives its leaf index. */
int evlog_append(struct evlog *log, const uint8_t *entry, size_t len, uint64_t *index_out);
/* Makes every staged entry durable: one write + fdatasync of the journal (group commit). Tiles
 * and entry bundles are written afterwards by the log's tile writer thread. If the journal
 * write fails (disk full) nothing changes and the call may be retried; if the tile writer is
 * max_tile_queue_bytes behind it waits, or fails (retryable) while the tile writer is failing. */
int evlog_commit(struct evlog *log, char *err, size_t errlen);
/* Commits, then, if the policy says one is due and the previous one is on disk, signs a
 * checkpoint and hands it to the tile writer, which publishes it once its tiles are durable.
 * Returns 1 if one was queued, 0 if not, negative on error (including a tile writer failure,
 * reported once per failed attempt; the writer retries every second). */
int evlog_maybe_checkpoint(struct evlog *log, uint64_t now_ms, char *err, size_t errlen);
/* Commits and publishes a checkpoint for the current size, and returns once it and every tile
 * are on disk. 1 if a new one was published, 0 if the size was already published. */
int evlog_checkpoint(struct evlog *log, uint64_t now_ms, char *err, size_t errlen);
uint64_t evlog_size(const struct evlog *log);   /* durable entries */
uint64_t evlog_staged(const struct evlog *log); /* staged, not yet durable */
/* The journal base: entries below it were compacted out of the journal (0: none). */
uint64_t evlog_journal_base(const struct evlog *log);
/* Root of the durable tree. */
void evlog_root(const struct evlog *log, uint8_t out[EVLOG_HASH_SIZE]);
/* Checkpoint files removed so far by this handle's retention (evlog_options.checkpoint_keep_s).
 * Safe from any thread. A removal that failed is reported once by evlog_maybe_checkpoint. */
uint64_t evlog_checkpoints_removed(struct evlog *log);
/* Commit + final checkpoint (waits for the tile writer) + free. Returns the first error (err
 * filled) or 0. */
int evlog_close(struct evlog *log, char *err, size_t errlen);

/* Reader of durable entries (any thread or process, concurrently with the writer). */
struct evlog_reader;
int evlog_reader_open(struct evlog_reader **out, const char *state_dir, uint64_t start_index,
                      char *err, size_t errlen);
/* 1: entry, len and index set (valid until the next call); 0: no more durable entries now (call
 * again later for newer ones); negative: error. A sealed entry is handed out opened with the
 * state directory's epoch keys (the bytes it had before sealing); one whose key is erased or not
 * readable here as it is in the log (it decodes with its clear fields and `seal` set). */
int evlog_reader_next(struct evlog_reader *r, const uint8_t **entry, size_t *len, uint64_t *index,
                      char *err, size_t errlen);
/* What the last entry returned was: enum seal_state (evidence/seal.h): 0 plain, 1 opened,
 * 2 sealed under an erased epoch, 3 sealed and no key here. */
int evlog_reader_seal_state(const struct evlog_reader *r);
/* From now on a heartbeats record that names the leaf describing its bot (described_in) is
 * handed out filled in from that leaf (evidence/described.h): for readers that ask who polled
 * (the registry, contacts, prove's selection, the portal), never for what is proved or exported
 * as the log holds it. 0, or EVLOG_ENOMEM. */
int evlog_reader_fill_described(struct evlog_reader *r);
void evlog_reader_close(struct evlog_reader *r);

/* Pure parser of the journal framing (used by recovery, the reader and the fuzzer). Given the
 * bytes of one batch starting at buf, returns the batch length (> 0) and fills first and count if
 * it is complete and well formed, 0 if more bytes are needed, negative if malformed. Does not
 * check the commit root (that needs hashing). */
int evlog_journal_parse_batch(const uint8_t *buf, size_t len, uint64_t *first, uint32_t *count);

/* The journal base (<state>/journal/base), written by compaction: entries below `index` are no
 * longer in the journal but in the log's full entry bundles; the journal's batches start at byte
 * `offset` (the batch holding entry `index`); recovery starts from `tree` (the tree of size
 * `index`) and the partly filled hash tiles of levels 1..7 at that size. */
#define EVLOG_BASE_LEVELS 7
struct evlog_journal_base {
    uint64_t index;  /* a multiple of EVLOG_TILE_WIDTH */
    uint64_t offset; /* journal byte of the batch that holds entry `index` */
    struct evlog_frontier tree;
    /* upper[L-1]: the first (index >> 8L) % 256 hashes of the level-L tile being filled */
    uint8_t upper[EVLOG_BASE_LEVELS][EVLOG_TILE_WIDTH][EVLOG_HASH_SIZE];
};
/* Pure parser of journal/base (recovery, the reader and the fuzzer): 0, or EVLOG_ECORRUPT with
 * err saying what is wrong (bad magic, length, checksum, an index not on a bundle boundary). */
int evlog_journal_base_parse(const uint8_t *buf, size_t len, struct evlog_journal_base *out,
                             char *err, size_t errlen);

/* ---- RFC 3161 timestamps of checkpoints --------------------------------------------------- */

/* A time-stamping authority's signed statement that a checkpoint existed at a time: the tree,
 * and so every entry in it, existed no later than that. The imprint is SHA-256 of the exact
 * bytes of log/checkpoints/<size> (the signed note), so `openssl ts -verify -data
 * checkpoints/<size> -in timestamps/<size>.tsr -CAfile CA` checks it without sinkd. Stored as
 * log/timestamps/<size>.tsq (the DER request, with its nonce) and <size>.tsr (the DER reply,
 * written once, never replaced). */
#define EVLOG_TS_REQ_MAX 4096          /* longest request read back */
#define EVLOG_TS_RESP_MAX (256 * 1024) /* longest reply accepted (certificates included) */

struct evlog_timestamp {
    int64_t time;       /* genTime, POSIX seconds (fractions dropped) */
    char time_text[32]; /* genTime as ISO 8601 UTC, e.g. 2026-12-02T16:40:00Z */
    char serial[80];    /* the TSA's serial number of this token, hex */
    char policy[80];    /* the TSA policy OID the token was issued under */
    char tsa[256];      /* subject of the signing certificate (RFC 2253) */
    bool chain_checked; /* the signer chained to ca_file at genTime, for timeStamping */
};

/* Builds a DER TimeStampReq (version 1, SHA-256 imprint of `digest`, a fresh random 64-bit
 * nonce, certReq set so the reply carries the TSA certificate). *out is malloc'd. */
int evlog_ts_request(const uint8_t digest[EVLOG_HASH_SIZE], uint8_t **out, size_t *len, char *err,
                     size_t errlen);
/* Checks a DER TimeStampResp: status granted, one DER object and nothing after it, token
 * version 1, SHA-256 imprint equal to `digest`, the CMS signature valid for the certificate the
 * token carries; if req is not NULL, the request's imprint is `digest` too and both nonces are
 * equal; if ca_file is not NULL, the signer chains to a CA in that PEM file at genTime and may
 * sign timestamps (extendedKeyUsage timeStamping), with OpenSSL's RFC 3161 checks (ESS signing
 * certificate). Fills *out (may be NULL) on success. EVLOG_EVERIFY names the failed check. */
int evlog_ts_check(const uint8_t digest[EVLOG_HASH_SIZE], const uint8_t *req, size_t req_len,
                   const uint8_t *resp, size_t resp_len, const char *ca_file,
                   struct evlog_timestamp *out, char *err, size_t errlen);

/* Writes a request for checkpoints/<size> (size 0: the latest checkpoint) to
 * log/timestamps/<size>.tsq, replacing a pending request for that size; *size_out receives the
 * size and *req (malloc'd) the request. Returns 0, or 1 (with *size_out set, err saying so,
 * nothing written) if that checkpoint has a reply already, or a negative code. */
int evlog_ts_prepare(const char *log_dir, uint64_t size, uint64_t *size_out, uint8_t **req,
                     size_t *req_len, char *err, size_t errlen);
/* The size of the newest pending request (a .tsq without its .tsr) in *size_out; EVLOG_EINVAL if
 * there is none. */
int evlog_ts_pending(const char *log_dir, uint64_t *size_out, char *err, size_t errlen);
/* Checks a reply with evlog_ts_check against checkpoints/<size> and timestamps/<size>.tsq, then
 * stores it as timestamps/<size>.tsr (durably; never over an existing one). */
int evlog_ts_store(const char *log_dir, uint64_t size, const uint8_t *resp, size_t resp_len,
                   const char *ca_file, struct evlog_timestamp *out, char *err, size_t errlen);
/* Checks every timestamps/<size>.tsr against checkpoints/<size> and, where kept, <size>.tsq;
 * calls each() (may be NULL) per reply in size order. Returns the number checked (0 if there is
 * no timestamps/ directory) or a negative code naming the file. Signatures of the checkpoints
 * themselves are evlog_verify_dir's job. */
int evlog_ts_verify_dir(const char *log_dir, const char *ca_file,
                        void (*each)(void *ctx, uint64_t size, const struct evlog_timestamp *ts),
                        void *ctx, char *err, size_t errlen);

/* ---- witness cosignatures (C2SP tlog-witness, tlog-cosignature) ------------------------------ */

/* log/cosignatures/<size> is checkpoints/<size>, byte for byte, followed by the cosignature lines
 * of every witness that cosigned it: one C2SP signed note that C2SP clients read as is. */

/* Body of a tlog-witness add-checkpoint request for checkpoints/<size> (size 0: the latest):
 * "old <old>\n", the consistency proof from old to size as base64 lines, "\n", the checkpoint.
 * old = UINT64_MAX: the largest size w has validly cosigned here (0 if none). *body is
 * malloc'd. Returns 0, or 1 (nothing built) if w has cosigned that checkpoint already. */
int evlog_witness_request(const char *log_dir, const struct evlog_verifier *w, uint64_t size,
                          uint64_t old, uint64_t *size_out, uint64_t *old_out, char **body,
                          size_t *len, char *err, size_t errlen);
/* Adds the witness's reply lines that name w to cosignatures/<size> (durably, replacing the
 * file), only if the result verifies with w; *time_out (may be NULL) gets its cosignature time. */
int evlog_witness_store(const char *log_dir, uint64_t size, const struct evlog_verifier *w,
                        const char *reply, size_t reply_len, uint64_t *time_out, char *err,
                        size_t errlen);
/* Checks every cosignatures/<size>: it extends checkpoints/<size> byte for byte, and every line
 * by one of the nw witness keys verifies; each() per valid cosignature. A witness in ws without
 * any cosignature is an error too (asked to check it, there is nothing to check). Returns the
 * number of cosignatures verified or a negative code naming the file. */
int evlog_cosignatures_verify_dir(const char *log_dir, const struct evlog_verifier *ws, size_t nw,
                                  void (*each)(void *ctx, uint64_t size,
                                               const struct evlog_verifier *w, uint64_t time),
                                  void *ctx, char *err, size_t errlen);

/* ---- offline verification and evidence bundles -------------------------------------------- */

struct evlog_verify_report {
    uint64_t entries;     /* entries checked (size of the latest checkpoint) */
    uint64_t checkpoints; /* checkpoints whose signature, root and consistency were checked */
    uint64_t tiles;       /* tile and bundle files checked */
};
/* Checks a tlog-tiles directory: every checkpoint's signature, every entry against the level-0
 * tiles, every tile against the level below, every checkpoint root against the recomputed tree
 * and consistency proofs between consecutive checkpoints. On failure returns EVLOG_EVERIFY (or
 * another negative code) with err naming the file, entry index and byte. */
int evlog_verify_dir(const char *log_dir, const struct evlog_verifier *v,
                     struct evlog_verify_report *rep, char *err, size_t errlen);

/* Calls fn(ctx, index, entry, len) for entries 0..size-1 of a published log, in order, read from
 * its entry bundles (tile/entries/...): the bytes evlog_verify_dir checks against the tiles and
 * the checkpoints. Stops at fn's first non-zero return, which it returns; a missing or truncated
 * bundle is EVLOG_EVERIFY (or the read's code) with err naming it. src/evidence/entries.c. */
int evlog_entries_walk(const char *log_dir, uint64_t size,
                       int (*fn)(void *ctx, uint64_t index, const uint8_t *entry, size_t len),
                       void *ctx, char *err, size_t errlen);
/* The parser under it: the first w entries of one entry bundle (each a 2-byte big-endian length
 * and its bytes), numbered from `first`. EVLOG_EVERIFY with err naming the byte when one is
 * truncated; fn's first non-zero return otherwise. Pure (fuzz/evidence_entries_fuzz.c). */
int evlog_entry_bundle_parse(const uint8_t *b, size_t len, unsigned w, uint64_t first,
                             int (*fn)(void *ctx, uint64_t index, const uint8_t *entry, size_t len),
                             void *ctx, char *err, size_t errlen);

/* Writes an evidence bundle to out_dir (created; must not exist or be empty): entries/<i>.bin,
 * bundle.json (inclusion proofs to the latest checkpoint, or to checkpoints/<at_size> if
 * at_size != 0), checkpoint, log.vkey, README.txt, checkpoint.tsr / .tsq if that checkpoint
 * has an RFC 3161 timestamp, checkpoint.cosigned if witnesses cosigned it, and raw/<ab>/<hash>
 * for each contact entry whose body `serve --keep-raw` kept (evidence/raw.h).
 * `describe(ctx, entry, len, out, cap)` may add a human rendering (entries/<i>.json); may be
 * NULL. */
int evlog_bundle_write(const char *state_dir, uint64_t at_size, const uint64_t *indices, size_t n,
                       const char *out_dir,
                       int (*describe)(void *ctx, const uint8_t *entry, size_t len, char **out),
                       void *describe_ctx, char *err, size_t errlen);

#define EVLOG_BUNDLE_WITNESSES_MAX 16
struct evlog_bundle_report {
    uint64_t entries;                 /* entries whose inclusion was verified */
    uint64_t tree_size;               /* checkpoint size they were proved against */
    bool timestamped;                 /* checkpoint.tsr present and checked */
    struct evlog_timestamp timestamp; /* what it says, if timestamped */
    uint64_t bodies;                  /* raw/ message bodies, each named by a contact entry */
    uint64_t opened;     /* sealed entries opened with the seal_key the bundle gives for them */
    size_t cosignatures; /* witnesses whose line in checkpoint.cosigned verified */
    const struct evlog_verifier *cosigned_by[EVLOG_BUNDLE_WITNESSES_MAX];
    uint64_t cosigned_at[EVLOG_BUNDLE_WITNESSES_MAX];
};
/* Verifies a bundle directory against its own log.vkey (or `v` if non-NULL); its
 * checkpoint.tsr if present (evlog_ts_check; ca_file may be NULL); and its checkpoint.cosigned,
 * which must extend `checkpoint` and carry a valid line of each of the nw witnesses (with
 * witnesses given it must be there); and its raw/ if present, where every file must hash to its
 * name and be the body_sha256 of one of its contact entries. */
int evlog_bundle_verify(const char *dir, const struct evlog_verifier *v, const char *ca_file,
                        const struct evlog_verifier *witnesses, size_t nw,
                        struct evlog_bundle_report *rep, char *err, size_t errlen);
/* Pure check of a bundle.json manifest text (used by verify and the fuzzer): parses it and
 * verifies every proof against `cp`, with entry bytes supplied by the manifest's leaf hashes. */
int evlog_bundle_parse_manifest(const char *json, size_t len, struct evlog_checkpoint *cp_out,
                                uint64_t *entries_out, char *err, size_t errlen);

#endif
