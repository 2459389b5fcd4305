/* evidence_note_test.c -- signed notes, key formats and checkpoints against x/mod and TLOG.md. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "evidence/log.h"

#define PN_SKEY "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
#define PN_VKEY "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
#define ENOCH_VKEY "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
#define PN_TEXT                                                                                    \
    "If you think cryptography is the answer to your problem,\n"                                   \
    "then you don't know what your problem is.\n"
#define PN_SIG                                                                                     \
    "\xe2\x80\x94 PeterNeumann "                                                                   \
    "x08go/ZJkuBS9UG/"                                                                             \
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
#define ENOCH_SIG                                                                                  \
    "\xe2\x80\x94 EnochRoot "                                                                      \
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/"                                                 \
    "5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n"

static void test_peter_neumann(void **state)
{
    (void)state;
    struct evlog_signer s;
    struct evlog_verifier v, v2;
    char buf[1024];
    assert_int_equal(evlog_signer_parse(PN_SKEY, strlen(PN_SKEY), &s, NULL, 0), 0);
    assert_int_equal(s.keyid, 0xc74f20a3);
    evlog_signer_verifier(&s, &v);
    assert_int_equal(evlog_verifier_format(&v, buf, sizeof buf), (int)strlen(PN_VKEY));
    assert_string_equal(buf, PN_VKEY);
    assert_int_equal(evlog_signer_format(&s, buf, sizeof buf), (int)strlen(PN_SKEY));
    assert_string_equal(buf, PN_SKEY);
    assert_int_equal(evlog_verifier_parse(PN_VKEY "\n", strlen(PN_VKEY) + 1, &v2, NULL, 0), 0);
    assert_memory_equal(&v, &v2, sizeof v);

    int n = evlog_note_sign(&s, PN_TEXT, strlen(PN_TEXT), buf, sizeof buf, NULL, 0);
    const char *want = PN_TEXT "\n" PN_SIG;
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(buf, want);

    size_t tl;
    assert_int_equal(evlog_note_open(buf, (size_t)n, &v, &tl, NULL, 0), 0);
    assert_int_equal(tl, strlen(PN_TEXT));

    /* Two signatures: each key verifies its own; unknown ones are ignored. */
    const char *both = PN_TEXT "\n" PN_SIG ENOCH_SIG;
    struct evlog_verifier enoch;
    assert_int_equal(evlog_verifier_parse(ENOCH_VKEY, strlen(ENOCH_VKEY), &enoch, NULL, 0), 0);
    assert_int_equal(evlog_note_open(both, strlen(both), &v, &tl, NULL, 0), 0);
    assert_int_equal(evlog_note_open(both, strlen(both), &enoch, &tl, NULL, 0), 0);
    /* Only an unknown key's signature: rejected. */
    const char *only_enoch = PN_TEXT "\n" ENOCH_SIG;
    assert_int_equal(evlog_note_open(only_enoch, strlen(only_enoch), &v, &tl, NULL, 0),
                     EVLOG_EVERIFY);
}

static void test_note_tamper(void **state)
{
    (void)state;
    struct evlog_verifier v;
    assert_int_equal(evlog_verifier_parse(PN_VKEY, strlen(PN_VKEY), &v, NULL, 0), 0);
    const char *good = PN_TEXT "\n" PN_SIG;
    size_t len = strlen(good), tl;
    char buf[1024];
    char err[256];
    /* Every single-byte change anywhere must be rejected. */
    for (size_t i = 0; i < len; i++) {
        memcpy(buf, good, len);
        buf[i] ^= 0x01;
        assert_int_not_equal(evlog_note_open(buf, len, &v, &tl, err, sizeof err), 0);
    }
    for (size_t l = 0; l < len; l++) {
        assert_int_not_equal(evlog_note_open(good, l, &v, &tl, err, sizeof err), 0);
    }
}

static void test_checkpoint_example_b(void **state)
{
    (void)state;
    struct evlog_signer s;
    uint8_t seed[32];
    struct evlog_signer pn;
    assert_int_equal(evlog_signer_parse(PN_SKEY, strlen(PN_SKEY), &pn, NULL, 0), 0);
    memcpy(seed, pn.seed, 32);
    assert_int_equal(evlog_signer_from_seed("example.com/testlog", seed, &s, NULL, 0), 0);
    char key[256];
    struct evlog_verifier v;
    evlog_signer_verifier(&s, &v);
    evlog_verifier_format(&v, key, sizeof key);
    assert_string_equal(
        key, "example.com/testlog+3814a360+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
    evlog_signer_format(&s, key, sizeof key);
    assert_string_equal(
        key,
        "PRIVATE+KEY+example.com/testlog+3814a360+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz");

    struct evlog_checkpoint cp = {.origin = "example.com/testlog", .size = 8};
    static const uint8_t root8[32] = {0x5d, 0xc9, 0xda, 0x79, 0xa7, 0x06, 0x59, 0xa9,
                                      0xad, 0x55, 0x9c, 0xb7, 0x01, 0xde, 0xd9, 0xa2,
                                      0xab, 0x9d, 0x82, 0x3a, 0xad, 0x2f, 0x49, 0x60,
                                      0xcf, 0xe3, 0x70, 0xef, 0xf4, 0x60, 0x43, 0x28};
    memcpy(cp.root, root8, 32);
    char text[512], note[1024];
    int tl = evlog_checkpoint_format(&cp, text, sizeof text);
    assert_string_equal(text,
                        "example.com/testlog\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n");
    int n = evlog_note_sign(&s, text, (size_t)tl, note, sizeof note, NULL, 0);
    assert_string_equal(note,
                        "example.com/testlog\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
                        "\xe2\x80\x94 example.com/testlog "
                        "OBSjYCxDpu8fyr7NuKXgNXWu25Ks4wrlnX0eQ6wwwqxrq024FLZEvzeTT+"
                        "bFbmvjSu2f7p78iGvweJAOSG9YRH8huA0=\n");
    struct evlog_checkpoint got;
    assert_int_equal(evlog_checkpoint_open(note, (size_t)n, &v, &got, NULL, 0), 0);
    assert_int_equal(got.size, 8);
    assert_memory_equal(got.root, root8, 32);
    assert_string_equal(got.origin, "example.com/testlog");

    /* Cosigned copy from TLOG.md §5: the witness line is an unknown key and is ignored. */
    const char *cosigned =
        "example.com/testlog\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"
        "\xe2\x80\x94 example.com/testlog "
        "OBSjYCxDpu8fyr7NuKXgNXWu25Ks4wrlnX0eQ6wwwqxrq024FLZEvzeTT+"
        "bFbmvjSu2f7p78iGvweJAOSG9YRH8huA0=\n"
        "\xe2\x80\x94 witness.example.com/w1 "
        "oAWfEQAAAABlU/EAil1tGGAqUrcfo0OkGrVvQFluu78DwnpZZ/"
        "O9W8NwAo4zoXfwHOU9qkL3od5+YRiOalOhp3f+9o6NwU7Wgjw3Aw==\n";
    assert_int_equal(evlog_checkpoint_open(cosigned, strlen(cosigned), &v, &got, NULL, 0), 0);
}

static char *vectors_path(void)
{
    static char path[4096];
    const char *src = getenv("SINKD_SOURCE_DIR");
    snprintf(path, sizeof path, "%s/tests/vectors/tlog-vectors.txt", src != NULL ? src : ".");
    return path;
}

static void test_go_vector_checkpoint(void **state)
{
    (void)state;
    FILE *f = fopen(vectors_path(), "r");
    assert_non_null(f);
    char line[1024], skey[256] = "", vkey[256] = "", cp[2048] = "";
    bool in_cp = false;
    while (fgets(line, sizeof line, f) != NULL) {
        if (sscanf(line, "signer_key %255s", skey) == 1 ||
            sscanf(line, "verifier_key %255s", vkey) == 1) {
            continue;
        }
        if (strcmp(line, "checkpoint_begin\n") == 0) {
            in_cp = true;
        } else if (strcmp(line, "checkpoint_end\n") == 0) {
            in_cp = false;
        } else if (in_cp) {
            strcat(cp, line);
        }
    }
    fclose(f);
    /* seed = SHA-256("sinkd test signing key, never use for real") */
    const char *phrase = "sinkd test signing key, never use for real";
    uint8_t seed[32];
    SHA256((const uint8_t *)phrase, strlen(phrase), seed);
    struct evlog_signer s, parsed;
    assert_int_equal(evlog_signer_from_seed("sinkd.example/test-log", seed, &s, NULL, 0), 0);
    assert_int_equal(evlog_signer_parse(skey, strlen(skey), &parsed, NULL, 0), 0);
    assert_memory_equal(&s, &parsed, sizeof s);
    struct evlog_verifier v;
    assert_int_equal(evlog_verifier_parse(vkey, strlen(vkey), &v, NULL, 0), 0);
    assert_memory_equal(v.pub, s.pub, 32);
    struct evlog_checkpoint c;
    char err[256];
    assert_int_equal(evlog_checkpoint_open(cp, strlen(cp), &v, &c, err, sizeof err), 0);
    assert_int_equal(c.size, 1100);
    /* Re-sign the text: Ed25519 is deterministic, so the note is reproduced byte for byte. */
    char text[256], note[1024];
    int tl = evlog_checkpoint_format(&c, text, sizeof text);
    int n = evlog_note_sign(&s, text, (size_t)tl, note, sizeof note, NULL, 0);
    assert_int_equal(n, (int)strlen(cp));
    assert_string_equal(note, cp);
}

/* C2SP tlog-cosignature vector (TLOG.md section 5, verified there with Go): example B cosigned by
 * witness.example.com/w1 at time 1700000000. */
#define EXB_TEXT "example.com/testlog\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
#define EXB_LOG_SIG                                                                                \
    "\xe2\x80\x94 example.com/testlog "                                                            \
    "OBSjYCxDpu8fyr7NuKXgNXWu25Ks4wrlnX0eQ6wwwqxrq024FLZEvzeTT+bFbmvj"                             \
    "Su2f7p78iGvweJAOSG9YRH8huA0=\n"
#define EXB_WITNESS_SIG                                                                            \
    "\xe2\x80\x94 witness.example.com/w1 "                                                         \
    "oAWfEQAAAABlU/EAil1tGGAqUrcfo0OkGrVvQFluu78DwnpZZ/O9W8NwAo4z"                                 \
    "oXfwHOU9qkL3od5+YRiOalOhp3f+9o6NwU7Wgjw3Aw==\n"
#define EXB_LOG_VKEY "example.com/testlog+3814a360+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
#define W1_VKEY "witness.example.com/w1+a0059f11+BAOhB7/zzhC+HXDdGOdLwJln5NYwm6UNXx3chmQSVTG4"

static void test_cosignature_vector(void **state)
{
    (void)state;
    struct evlog_verifier w, log;
    assert_int_equal(evlog_verifier_parse(W1_VKEY, strlen(W1_VKEY), &w, NULL, 0), 0);
    assert_true(w.witness);
    assert_int_equal(w.keyid, 0xa0059f11);
    char key[256];
    assert_true(evlog_verifier_format(&w, key, sizeof key) > 0);
    assert_string_equal(key, W1_VKEY);
    assert_int_equal(evlog_verifier_parse(EXB_LOG_VKEY, strlen(EXB_LOG_VKEY), &log, NULL, 0), 0);
    assert_false(log.witness);

    const char *note = EXB_TEXT "\n" EXB_LOG_SIG EXB_WITNESS_SIG;
    size_t tl;
    uint64_t when = 0;
    assert_int_equal(evlog_note_open_at(note, strlen(note), &w, &tl, &when, NULL, 0), 0);
    assert_int_equal(when, 1700000000);
    assert_int_equal(tl, strlen(EXB_TEXT));
    /* The log's own key still opens it (the witness line is an unknown signature to it). */
    struct evlog_checkpoint cp;
    assert_int_equal(evlog_checkpoint_open(note, strlen(note), &log, &cp, NULL, 0), 0);
    /* A witness key is not a log key. */
    char err[256];
    assert_int_equal(evlog_checkpoint_open(note, strlen(note), &w, &cp, err, sizeof err),
                     EVLOG_EINVAL);
    /* Without the witness line: not cosigned. */
    const char *plain = EXB_TEXT "\n" EXB_LOG_SIG;
    assert_int_equal(evlog_note_open(plain, strlen(plain), &w, &tl, NULL, 0), EVLOG_EVERIFY);
    /* Another time in the line (the signed message changes), another size: both rejected. */
    char bad[1024];
    snprintf(bad, sizeof bad, "%s", note);
    char *t = strstr(bad, "oAWfEQAAAABlU/E") + 12; /* inside the 8-byte time */
    *t = *t == 'l' ? 'm' : 'l';
    assert_int_equal(evlog_note_open(bad, strlen(bad), &w, &tl, err, sizeof err), EVLOG_EVERIFY);
    assert_non_null(strstr(err, "cosignature by witness.example.com/w1 does not verify"));
    snprintf(bad, sizeof bad, "%s", note);
    bad[20] = '9';
    assert_int_equal(evlog_note_open(bad, strlen(bad), &w, &tl, NULL, 0), EVLOG_EVERIFY);
    /* A log-type (0x01) signature line under the witness's name and key ID is not a
     * cosignature. */
    struct evlog_signer sgn;
    uint8_t seed[32] = {0};
    assert_int_equal(evlog_signer_from_seed("witness.example.com/w1", seed, &sgn, NULL, 0), 0);
    assert_int_not_equal(sgn.keyid, w.keyid); /* key IDs differ by type */
}

static void test_parse_errors(void **state)
{
    (void)state;
    struct evlog_verifier v;
    struct evlog_signer s;
    struct evlog_checkpoint c;
    const char *bad_vkeys[] = {
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", /* wrong id */
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", /* uppercase */
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  /* bad b64 */
        "PeterNeumann+c74f20a3+Alpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW", /* type 02 */
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",             /* no name */
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "",
    };
    for (size_t i = 0; i < sizeof bad_vkeys / sizeof bad_vkeys[0]; i++) {
        char err[256] = "";
        assert_int_not_equal(
            evlog_verifier_parse(bad_vkeys[i], strlen(bad_vkeys[i]), &v, err, sizeof err), 0);
        assert_true(err[0] != '\0');
    }
    assert_int_not_equal(evlog_signer_parse(PN_VKEY, strlen(PN_VKEY), &s, NULL, 0), 0);
    const char *bad_cps[] = {
        "o\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQy=\n",
        "o\n-8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=",
        "\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n99999999999999999999\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n",
        "o\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n\n"};
    for (size_t i = 0; i < sizeof bad_cps / sizeof bad_cps[0]; i++) {
        assert_int_not_equal(evlog_checkpoint_parse(bad_cps[i], strlen(bad_cps[i]), &c, NULL, 0),
                             0);
    }
    const char *ok = "o\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\next\n";
    assert_int_equal(evlog_checkpoint_parse(ok, strlen(ok), &c, NULL, 0), 0);
    assert_int_equal(c.size, 0);
}

static void test_keygen(void **state)
{
    (void)state;
    char dir[] = "/tmp/evidence_note_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char keys[4200], path[4300];
    snprintf(keys, sizeof keys, "%s/keys", dir);
    char err[256];
    assert_int_equal(evlog_keygen(keys, "sinkd.example/node1", err, sizeof err), 0);
    assert_int_not_equal(evlog_keygen(keys, "sinkd.example/node1", err, sizeof err), 0);
    struct evlog_signer s;
    struct evlog_verifier v;
    snprintf(path, sizeof path, "%s/log.key", keys);
    assert_int_equal(evlog_signer_load(path, &s, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/log.vkey", keys);
    assert_int_equal(evlog_verifier_load(path, &v, err, sizeof err), 0);
    assert_memory_equal(s.pub, v.pub, 32);
    assert_int_equal(s.keyid, v.keyid);
    char note[512];
    int n = evlog_note_sign(&s, "hello\n", 6, note, sizeof note, NULL, 0);
    size_t tl;
    assert_int_equal(evlog_note_open(note, (size_t)n, &v, &tl, NULL, 0), 0);
    assert_int_not_equal(evlog_keygen(keys, "bad name", err, sizeof err), 0);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peter_neumann),        cmocka_unit_test(test_note_tamper),
        cmocka_unit_test(test_checkpoint_example_b), cmocka_unit_test(test_go_vector_checkpoint),
        cmocka_unit_test(test_parse_errors),         cmocka_unit_test(test_keygen),
        cmocka_unit_test(test_cosignature_vector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
