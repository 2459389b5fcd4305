/* evidence_note_fuzz.c -- libFuzzer harness: signed-note opening (log signatures and witness
 * cosignatures), checkpoint and key parsers. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "evidence/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* example.com/testlog verifier key (TLOG.md example B) */
    static const char vkey[] =
        "example.com/testlog+3814a360+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
    struct evlog_verifier v;
    if (evlog_verifier_parse(vkey, sizeof vkey - 1, &v, NULL, 0) != 0) {
        __builtin_trap();
    }
    const char *text = (const char *)data;
    struct evlog_checkpoint cp;
    size_t tl;
    char err[256];
    if (evlog_note_open(text, size, &v, &tl, err, sizeof err) == 0 && tl > size) {
        __builtin_trap();
    }
    evlog_checkpoint_open(text, size, &v, &cp, err, sizeof err);
    /* A witness key (TLOG.md section 5): cosignature lines parsed and checked. */
    static const char wkey[] =
        "witness.example.com/w1+a0059f11+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4";
    struct evlog_verifier w;
    uint64_t when;
    if (evlog_verifier_parse(wkey, sizeof wkey - 1, &w, NULL, 0) != 0 || !w.witness) {
        __builtin_trap();
    }
    if (evlog_note_open_at(text, size, &w, &tl, &when, err, sizeof err) == 0 && tl > size) {
        __builtin_trap();
    }
    if (evlog_checkpoint_parse(text, size, &cp, err, sizeof err) == 0) {
        /* a parsed checkpoint formats back to a prefix of the input (extensions aside) */
        char out[512];
        int n = evlog_checkpoint_format(&cp, out, sizeof out);
        if (n < 0 || (size_t)n > size || memcmp(out, text, (size_t)n) != 0) {
            __builtin_trap();
        }
    }
    struct evlog_verifier v2;
    if (evlog_verifier_parse(text, size, &v2, err, sizeof err) == 0) {
        char out[512];
        int n = evlog_verifier_format(&v2, out, sizeof out);
        if (n < 0 || (size_t)n > size || memcmp(out, text, (size_t)n) != 0) {
            __builtin_trap();
        }
    }
    struct evlog_signer s;
    evlog_signer_parse(text, size, &s, err, sizeof err);
    return 0;
}
