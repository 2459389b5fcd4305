/* evidence_seal_fuzz.c -- libFuzzer harness for what sealing parses: an epoch key file or
 * tombstone (DIR/keys/epochs, anyone with the directory can write one), a record whose sealed
 * fields are opened with a key (a bundle's seal_key: the record and the key both come from
 * outside), and the seal tags of a record (event_decode). A key file accepted must print back
 * to itself; an opened record must decode and encode to the same bytes; a decoded sealed
 * record must encode to its input. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event/event.h"
#include "evidence/seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct seal_epoch_file f;
    char err[128];
    if (seal_epoch_parse((const char *)data, size, &f, err, sizeof(err)) == 0) {
        if (f.end <= f.start || (f.erased && f.key_id != 0)) {
            __builtin_trap();
        }
    }
    static const uint8_t key[SEAL_KEY_SIZE] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    static const uint8_t nonce[SEAL_NONCE_SIZE] = {12, 13, 14};
    uint8_t out[4096];
    size_t olen = 0;
    if (seal_open_with_key(key, nonce, data, size, out, sizeof(out), &olen, err, sizeof(err)) ==
        0) {
        /* Only a forgery of AES-GCM gets here; if it does, the result must still be sane. */
        struct record rec;
        if (olen > sizeof(out) || event_decode(out, olen, &rec, err, sizeof(err)) != 0) {
            __builtin_trap();
        }
    }
    uint32_t epoch = 0;
    uint64_t t = 0;
    (void)seal_inspect(data, size, &epoch, &t);
    struct record *rec = malloc(sizeof(*rec));
    if (rec != NULL && event_decode(data, size, rec, err, sizeof(err)) == 0 &&
        rec->seal.epoch != 0) {
        uint8_t back[EVENT_RECORD_MAX + EVENT_SEALED_MAX];
        int n = event_encode(rec, back, sizeof(back));
        if (n < 0 || (size_t)n != size || memcmp(back, data, size) != 0) {
            __builtin_trap();
        }
    }
    free(rec);
    return 0;
}
