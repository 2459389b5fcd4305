/* seal.h -- victims' personal data sealed in the leaf: each record's personal fields encrypted
 * under a key of its epoch (one UTC day by default), with a per-record key derived from the
 * epoch key over the record's index, so that a bundle discloses exactly the records it proves
 * and destroying an epoch key erases that epoch's personal data while the tree, counts and times
 * stay verifiable (docs/evidence.md, "Sealed personal data").
 *
 * Leaf: version, kind, the clear fields (time, kind, family, country, ASN, sector, counts,
 * verdicts, hashes), then tag 80 (epoch start, u32 POSIX seconds, and the u32 id of the epoch
 * key: the first 4 bytes of SHA-256("sinkd epoch key id v1" || key)), tag 81 (8-byte per-epoch
 * pseudonym of the bot key; for a contact or heartbeats record without one, of the key
 * event_bot_key gives its address) and tag 82: AES-256-GCM(K, N, personal TLVs, AAD = every byte
 * before tag 82) || tag, where K || N = HKDF-Expand-SHA256(epoch key, "sinkd seal v1" || index (u64
 * BE)
 * || time_us (u64 BE, the record's tag 1), 44). The pseudonym is HKDF-Expand-SHA256(epoch key,
 * "sinkd bot-ref v1" || bot key, 8). Epoch keys: DIR/keys/epochs/<start>-<id>.key (0600), never
 * in a leaf; a key lost and made again for the same epoch has another id, so a record never
 * meets a key it was not sealed with. An erased epoch leaves DIR/keys/epochs/<start>.erased (no
 * key material). */
#ifndef SINKD_EVIDENCE_SEAL_H
#define SINKD_EVIDENCE_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEAL_EPOCH_S_DEFAULT 86400u /* one UTC day */
/* DIR/keys/epochs/epoch_seconds, if present, sets another length for the epochs a writer begins
 * from then on (10 s is for tests; a week at most). */
#define SEAL_EPOCH_S_MIN 10u
#define SEAL_EPOCH_S_MAX (7u * 86400u)
#define SEAL_KEY_SIZE 32
#define SEAL_NONCE_SIZE 12
#define SEAL_TAG_SIZE 16
#define SEAL_EPOCH_DIR "keys/epochs"
#define SEAL_FILE_MAX 512 /* an epoch key or tombstone file */

/* Whether a field of a record kind is personal data (sealed). */
bool seal_tag_personal(uint8_t kind, uint8_t tag);

/* The epoch keys of a state directory, with the crypto contexts that use them: one per thread. */
struct seal_keyring;
/* writer: creates DIR/keys/epochs (0700) and the current epoch's key when needed, with epochs
 * of epoch_s seconds aligned to the UTC epoch (0: DIR/keys/epochs/epoch_seconds, else
 * SEAL_EPOCH_S_DEFAULT); else read only. */
int seal_keyring_open(struct seal_keyring **out, const char *state_dir, bool writer,
                      uint32_t epoch_s, char *err, size_t errlen);
void seal_keyring_free(struct seal_keyring *k);

/* Seals `in` (one canonical record, entry `index`) under the epoch of now_us into out. Returns
 * 1 when sealed (*outlen set), 0 when there is nothing to seal (not a record, or no personal
 * field: store `in` as it is), negative on error (no epoch key could be made: store nothing). */
int seal_record(struct seal_keyring *k, uint64_t index, uint64_t now_us, const uint8_t *in,
                size_t len, uint8_t *out, size_t cap, size_t *outlen, char *err, size_t errlen);

enum seal_state {
    SEAL_PLAIN = 0,  /* not sealed: `in` as it is */
    SEAL_OPENED = 1, /* opened: out holds the record as it was before sealing */
    SEAL_ERASED = 2, /* its epoch was erased (a tombstone says so): `in` as it is */
    SEAL_NO_KEY = 3, /* no key here (lost, or not readable by this user): `in` as it is */
};
/* Opens entry `index` with the epoch keys. Returns an enum seal_state (out holds the bytes to
 * use in every case), or negative when the record is damaged (the sealed fields do not open
 * with their key, or are not personal fields of the kind in order). */
int seal_open(struct seal_keyring *k, uint64_t index, const uint8_t *in, size_t len, uint8_t *out,
              size_t cap, size_t *outlen, char *err, size_t errlen);

/* The per-record key and nonce of entry `index` (what a bundle discloses for it). Returns
 * SEAL_OPENED with them, SEAL_PLAIN (not sealed), SEAL_ERASED/SEAL_NO_KEY, or negative. */
int seal_record_key(struct seal_keyring *k, uint64_t index, const uint8_t *in, size_t len,
                    uint8_t key[SEAL_KEY_SIZE], uint8_t nonce[SEAL_NONCE_SIZE], char *err,
                    size_t errlen);

/* Pure: opens a sealed record with its per-record key and nonce (bundles, the fuzzer). 0 with
 * the record as it was before sealing in out, negative if it does not open or is malformed. */
int seal_open_with_key(const uint8_t key[SEAL_KEY_SIZE], const uint8_t nonce[SEAL_NONCE_SIZE],
                       const uint8_t *in, size_t len, uint8_t *out, size_t cap, size_t *outlen,
                       char *err, size_t errlen);

/* Pure: whether `in` is sealed (1, with its epoch and record time), not (0), or malformed (-1). */
int seal_inspect(const uint8_t *in, size_t len, uint32_t *epoch, uint64_t *time_us);

/* ---- epoch key files ---------------------------------------------------------------------- */

struct seal_epoch_file {
    uint32_t start, end; /* [start, end), POSIX seconds */
    uint32_t key_id;     /* of the key (0 for a tombstone) */
    bool erased;         /* a tombstone: no key */
    uint64_t erased_at;  /* tombstone: when (POSIX seconds) */
    uint8_t key[SEAL_KEY_SIZE];
};
/* Pure parser of an epoch key file ("sinkd epoch key v1\nstart S\nend E\nkey BASE64\n") or a
 * tombstone ("sinkd epoch erased v1\nstart S\nend E\nerased T\n"). 0 or -1 with err. */
int seal_epoch_parse(const char *text, size_t len, struct seal_epoch_file *out, char *err,
                     size_t errlen);

/* The id of an epoch key (tag 80 names it). */
uint32_t seal_key_id(const uint8_t key[SEAL_KEY_SIZE]);

/* Every epoch key and tombstone of DIR/keys/epochs, by start (no key material). *out is
 * malloc'd. */
int seal_epochs_list(const char *state_dir, struct seal_epoch_file **out, size_t *n, char *err,
                     size_t errlen);

/* The epoch length of a state directory: DIR/keys/epochs/epoch_seconds if it holds one in
 * SEAL_EPOCH_S_MIN..SEAL_EPOCH_S_MAX, else SEAL_EPOCH_S_DEFAULT (the epochs a writer begins). */
uint32_t seal_epoch_seconds(const char *state_dir);

/* Destroys the key of every epoch that ended at or before before_s (and no later than
 * not_after_s, so the epoch being written is never touched): writes the tombstone, overwrites
 * and removes the key file, fsyncs the directory. *erased (may be NULL) receives how many. */
int seal_epochs_erase(const char *state_dir, uint64_t before_s, uint64_t not_after_s,
                      uint64_t now_s, size_t *erased, uint32_t *first_start, uint32_t *last_end,
                      char *err, size_t errlen);

#endif
