/* proto_plugx_test.c -- PlugX codec: keystream vectors, framing round trips, detection, every
 * decoder error, machine-information bodies and the plugx_family conversation. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/sha.h>

#include "proto/plugx/lznt1.h"
#include "proto/plugx/plugx.h"

#define PKT_MAX (PLUGX_HEADER_SIZE + 70000)

/* Reads <name> from tests/vectors/plugx-vectors.txt as bytes; returns the length. */
static size_t load_vector(const char *name, uint8_t *out, size_t cap)
{
    const char *src = getenv("SINKD_SOURCE_DIR");
    char path[4096], line[8192];
    size_t n = 0;
    int found = 0;

    assert_non_null(src);
    snprintf(path, sizeof(path), "%s/tests/vectors/plugx-vectors.txt", src);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char *sp = strchr(line, ' ');
        if (line[0] == '#' || sp == NULL || (size_t)(sp - line) != strlen(name) ||
            strncmp(line, name, strlen(name)) != 0) {
            continue;
        }
        for (char *p = sp + 1; p[0] && p[1] && p[0] != '\n'; p += 2) {
            unsigned v;
            assert_int_equal(sscanf(p, "%2x", &v), 1);
            assert_true(n < cap);
            out[n++] = (uint8_t)v;
        }
        found = 1;
    }
    fclose(f);
    assert_true(found);
    return n;
}

/* Family C transcribed independently from PLUGX.md, in plain uint32 arithmetic. */
static void ref_keystream_c(const uint32_t k[4], uint32_t key, uint8_t *out, size_t n)
{
    uint32_t a = key ^ k[0], c = key ^ k[1];
    for (size_t i = 0; i < n; i++) {
        a += k[2];
        c -= k[3];
        uint32_t b = (a & 0xFF) - ((a >> 8) & 0xFF);
        b ^= (a >> 16) & 0xFF;
        b -= (a >> 24) & 0xFF;
        b ^= c & 0xFF;
        b -= (c >> 8) & 0xFF;
        b ^= (c >> 16) & 0xFF;
        b -= (c >> 24) & 0xFF;
        out[i] = (uint8_t)b;
    }
}

/* Textbook RC4 over the documented model: key = configured key || packet key (LE). */
static void ref_keystream_rc4(const uint8_t *cfgkey, size_t klen, uint32_t key, uint8_t *out,
                              size_t n)
{
    uint8_t s[256], k[68];
    memcpy(k, cfgkey, klen);
    for (int i = 0; i < 4; i++) {
        k[klen + (size_t)i] = (uint8_t)(key >> (8 * i));
    }
    for (int i = 0; i < 256; i++) {
        s[i] = (uint8_t)i;
    }
    for (int i = 0, j = 0; i < 256; i++) {
        j = (j + s[i] + k[(size_t)i % (klen + 4)]) & 0xFF;
        uint8_t t = s[i];
        s[i] = s[j];
        s[j] = t;
    }
    for (size_t m = 0, i = 0, j = 0; m < n; m++) {
        i = (i + 1) & 0xFF;
        j = (j + s[i]) & 0xFF;
        uint8_t t = s[i];
        s[i] = s[j];
        s[j] = t;
        out[m] = s[(s[i] + s[j]) & 0xFF];
    }
}

/* Builds a packet from clear fields with plugx_keystream() only (independent of plugx_encode),
 * so tests can declare inconsistent sizes. */
static size_t seal(const struct plugx_config *cfg, enum plugx_cipher cipher, uint32_t key,
                   uint32_t flags, uint16_t comp, uint16_t decomp, uint32_t job,
                   const uint8_t *body, size_t body_len, uint8_t *out)
{
    static uint8_t ks[PKT_MAX];
    out[0] = (uint8_t)key;
    out[1] = (uint8_t)(key >> 8);
    out[2] = (uint8_t)(key >> 16);
    out[3] = (uint8_t)(key >> 24);
    for (int i = 0; i < 4; i++) {
        out[4 + i] = (uint8_t)(flags >> (8 * i));
        out[12 + i] = (uint8_t)(job >> (8 * i));
    }
    out[8] = (uint8_t)comp;
    out[9] = (uint8_t)(comp >> 8);
    out[10] = (uint8_t)decomp;
    out[11] = (uint8_t)(decomp >> 8);
    if (body_len > 0) {
        memcpy(out + 16, body, body_len);
    }
    plugx_keystream(cfg, cipher, key, ks, 16 + body_len);
    for (size_t i = 4; i < 16; i++) {
        out[i] ^= ks[i];
    }
    size_t ks_at = (flags & PLUGX_FLAG_SHARED_RUN) ? 16 : 0;
    for (size_t i = 0; i < body_len; i++) {
        out[16 + i] ^= ks[ks_at + i];
    }
    return 16 + body_len;
}

static void conn_fresh(struct plugx_conn *c)
{
    memset(c, 0, sizeof(*c));
    c->cipher = -1;
}

static uint8_t scratch[PROTO_SCRATCH_SIZE];
static uint8_t pkt[PKT_MAX];

static void test_keystream_vectors(void **state)
{
    struct plugx_config cfg;
    uint8_t want[16], got[16];
    (void)state;

    plugx_config_default(&cfg);
    assert_int_equal(load_vector("ks_a_12345678", want, sizeof(want)), 16);
    plugx_keystream(&cfg, PLUGX_CIPHER_A, 0x12345678, got, 16);
    assert_memory_equal(got, want, 16);
    assert_int_equal(load_vector("ks_b_12345678", want, sizeof(want)), 16);
    plugx_keystream(&cfg, PLUGX_CIPHER_B, 0x12345678, got, 16);
    assert_memory_equal(got, want, 16);
}

static void test_keystream_c_and_rc4_match_reference(void **state)
{
    struct plugx_config cfg;
    uint8_t want[300], got[300];
    const uint32_t keys[] = {0, 1, 0x12345678, 0xFFFFFFFF, 0x80000000};
    (void)state;

    plugx_config_default(&cfg);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        ref_keystream_c(cfg.c_consts, keys[k], want, sizeof(want));
        plugx_keystream(&cfg, PLUGX_CIPHER_C, keys[k], got, sizeof(got));
        assert_memory_equal(got, want, sizeof(want));
        ref_keystream_rc4(cfg.rc4_key, cfg.rc4_key_len, keys[k], want, sizeof(want));
        plugx_keystream(&cfg, PLUGX_CIPHER_RC4, keys[k], got, sizeof(got));
        assert_memory_equal(got, want, sizeof(want));
    }
    /* Other constants give another stream: they really are configuration. */
    cfg.c_consts[2] = 0x1234;
    plugx_keystream(&cfg, PLUGX_CIPHER_C, 7, got, 16);
    ref_keystream_c((const uint32_t[]){0x0133543C, 0xD, 0x77, 0x59F5}, 7, want, 16);
    assert_memory_not_equal(got, want, 16);
}

/* Family C against vectors printed by tests/python/plugx_family_c.py, a transcription of the
 * public decoder's arithmetic (MITRE chopshop plugx_tcp_decode) that is not sinkd's code: the
 * default constants, the keystream, the header, and a body with the keystream restarted or
 * shared. */
static void test_family_c_public_decoder_vectors(void **state)
{
    static const uint8_t body[] = "sinkd family C vector";
    const size_t body_len = sizeof(body) - 1;
    struct plugx_config cfg;
    struct plugx_conn conn;
    struct plugx_packet p;
    uint8_t want[128], got[128];
    (void)state;

    plugx_config_default(&cfg);
    assert_int_equal(cfg.c_consts[0], 0x0133543C);
    assert_int_equal(cfg.c_consts[1], 0xD);
    assert_int_equal(cfg.c_consts[2], 0x77);
    assert_int_equal(cfg.c_consts[3], 0x59F5);
    assert_int_equal(load_vector("ks_c_12345678", want, sizeof(want)), 32);
    plugx_keystream(&cfg, PLUGX_CIPHER_C, 0x12345678, got, 32);
    assert_memory_equal(got, want, 32);

    assert_int_equal(load_vector("hdr_c_12345678", want, sizeof(want)), 16);
    assert_int_equal(
        plugx_encode(&cfg, PLUGX_CIPHER_C, 0x12345678, 1, 0, NULL, 0, true, got, sizeof(got)), 16);
    assert_memory_equal(got, want, 16);

    const char *names[] = {"pkt_c_restart_a1b2c3d4", "pkt_c_shared_a1b2c3d4"};
    const uint32_t flags[] = {PLUGX_FLAG_UNCOMPRESSED | 0x1000,
                              PLUGX_FLAG_SHARED_RUN | PLUGX_FLAG_UNCOMPRESSED | 0x1000};
    for (int i = 0; i < 2; i++) {
        size_t n = load_vector(names[i], want, sizeof(want));
        assert_int_equal(n, 16 + body_len);
        assert_int_equal(plugx_encode(&cfg, PLUGX_CIPHER_C, 0xA1B2C3D4, flags[i], 7, body, body_len,
                                      false, got, sizeof(got)),
                         (ptrdiff_t)n);
        assert_memory_equal(got, want, n);
        /* detection picks family C for the public decoder's bytes, and the body comes back */
        conn_fresh(&conn);
        assert_int_equal(plugx_decode(&cfg, &conn, want, n, &p, scratch, sizeof(scratch), NULL, 0),
                         (ptrdiff_t)n);
        assert_int_equal(conn.cipher, PLUGX_CIPHER_C);
        assert_int_equal(p.flags, flags[i]);
        assert_int_equal(p.job, 7);
        assert_int_equal(p.body_len, body_len);
        assert_memory_equal(p.body, body, body_len);
    }
}

static void test_header_vectors_encode_and_detect(void **state)
{
    struct plugx_config cfg;
    struct plugx_conn conn;
    struct plugx_packet p;
    uint8_t want[16], out[64];
    const char *names[] = {"hdr_a_12345678", "hdr_b_12345678"};
    const enum plugx_cipher ciphers[] = {PLUGX_CIPHER_A, PLUGX_CIPHER_B};
    (void)state;

    plugx_config_default(&cfg);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(load_vector(names[i], want, sizeof(want)), 16);
        /* Empty compressed body: comp 0, decomp 0, no extra flag bits. */
        assert_int_equal(plugx_encode(&cfg, ciphers[i], 0x12345678, 0x00000001, 0, NULL, 0, true,
                                      out, sizeof(out)),
                         16);
        assert_memory_equal(out, want, 16);
        conn_fresh(&conn);
        assert_int_equal(plugx_decode(&cfg, &conn, want, 16, &p, scratch, sizeof(scratch), NULL, 0),
                         16);
        assert_int_equal(conn.cipher, ciphers[i]);
        assert_int_equal(p.command, 1);
        assert_int_equal(p.flags, 1);
        assert_int_equal(p.key, 0x12345678);
        assert_int_equal(p.body_len, 0);
        assert_int_equal(conn.packets, 1);
    }
}

static void fill_body(uint8_t *b, size_t n, int kind)
{
    uint32_t x = 0x9E3779B9u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = kind == 0 ? (uint8_t)("PlugX machine information "[i % 26]) : (uint8_t)x;
    }
}

static void test_round_trip_every_cipher_and_mode(void **state)
{
    struct plugx_config cfg;
    static uint8_t body[20000];
    const size_t sizes[] = {0, 1, 5, 100, 4096, 4097, 20000};
    (void)state;

    plugx_config_default(&cfg);
    uint32_t key = 0xA5A50001;
    for (int c = 0; c < PLUGX_CIPHER_COUNT; c++) {
        for (int shared = 0; shared < 2; shared++) {
            for (int compress = 0; compress < 2; compress++) {
                for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
                    for (int kind = 0; kind < 2; kind++) {
                        struct plugx_conn conn;
                        struct plugx_packet p;
                        char err[128] = "";
                        uint32_t flags = 0x1001 | (shared ? PLUGX_FLAG_SHARED_RUN : 0);
                        fill_body(body, sizes[s], kind);
                        key = key * 2654435761u + 1;
                        ptrdiff_t n = plugx_encode(&cfg, (enum plugx_cipher)c, key, flags, 0xC0FFEE,
                                                   body, sizes[s], compress, pkt, sizeof(pkt));
                        assert_true(n >= 16);
                        conn_fresh(&conn);
                        ptrdiff_t d = plugx_decode(&cfg, &conn, pkt, (size_t)n, &p, scratch,
                                                   sizeof(scratch), err, sizeof(err));
                        if (d != n) {
                            fail_msg("cipher %d shared %d compress %d size %zu: %td (%s)", c,
                                     shared, compress, sizes[s], d, err);
                        }
                        assert_int_equal(conn.cipher, c);
                        assert_int_equal(p.cipher, c);
                        assert_int_equal(p.command, 0x1001);
                        assert_int_equal(p.job, 0xC0FFEE);
                        assert_int_equal(p.key, key);
                        assert_int_equal(p.body_len, sizes[s]);
                        assert_int_equal(!!(p.flags & PLUGX_FLAG_UNCOMPRESSED), !compress);
                        assert_int_equal(!!(p.flags & PLUGX_FLAG_SHARED_RUN), shared);
                        if (sizes[s] > 0) {
                            assert_memory_equal(p.body, body, sizes[s]);
                        }
                        if (compress && kind == 0 && sizes[s] >= 100) {
                            assert_true(p.comp_size < sizes[s] / 2); /* really compressed */
                        }
                        /* The body is encrypted: plaintext does not appear on the wire. */
                        if (sizes[s] >= 100 && !compress) {
                            assert_memory_not_equal(pkt + 16, body, 100);
                        }
                    }
                }
            }
        }
    }
}

static void test_shared_run_changes_body_keystream(void **state)
{
    struct plugx_config cfg;
    uint8_t a[64], b[64], ks[48];
    const uint8_t body[16] = "0123456789abcdef";
    (void)state;

    plugx_config_default(&cfg);
    assert_int_equal(
        plugx_encode(&cfg, PLUGX_CIPHER_A, 99, 0x1000, 0, body, 16, false, a, sizeof(a)), 32);
    assert_int_equal(plugx_encode(&cfg, PLUGX_CIPHER_A, 99, 0x1000 | PLUGX_FLAG_SHARED_RUN, 0, body,
                                  16, false, b, sizeof(b)),
                     32);
    plugx_keystream(&cfg, PLUGX_CIPHER_A, 99, ks, sizeof(ks));
    for (int i = 0; i < 16; i++) {
        assert_int_equal(a[16 + i], body[i] ^ ks[i]);
        assert_int_equal(b[16 + i], body[i] ^ ks[16 + i]);
    }
}

static void test_need_more_at_every_prefix(void **state)
{
    struct plugx_config cfg;
    uint8_t body[300];
    (void)state;

    plugx_config_default(&cfg);
    fill_body(body, sizeof(body), 0);
    for (int compress = 0; compress < 2; compress++) {
        ptrdiff_t n = plugx_encode(&cfg, PLUGX_CIPHER_C, 0x01020304, 0x1001, 7, body, sizeof(body),
                                   compress, pkt, sizeof(pkt));
        assert_true(n > 16);
        /* Two packets back to back: the decoder consumes exactly the first. */
        memcpy(pkt + n, pkt, (size_t)n);
        for (ptrdiff_t len = 0; len < n; len++) {
            struct plugx_conn conn;
            struct plugx_packet p;
            conn_fresh(&conn);
            assert_int_equal(
                plugx_decode(&cfg, &conn, pkt, (size_t)len, &p, scratch, sizeof(scratch), NULL, 0),
                PROTO_NEED_MORE);
            assert_int_equal(conn.cipher, -1);
            assert_int_equal(conn.packets, 0);
        }
        struct plugx_conn conn;
        struct plugx_packet p;
        conn_fresh(&conn);
        assert_int_equal(
            plugx_decode(&cfg, &conn, pkt, 2 * (size_t)n, &p, scratch, sizeof(scratch), NULL, 0),
            n);
        assert_int_equal(
            plugx_decode(&cfg, &conn, pkt + n, (size_t)n, &p, scratch, sizeof(scratch), NULL, 0),
            n);
        assert_int_equal(conn.packets, 2);
    }
}

static void test_error_too_large(void **state)
{
    struct plugx_config cfg;
    struct plugx_conn conn;
    struct plugx_packet p;
    static uint8_t body[1000];
    char err[128];
    (void)state;

    plugx_config_default(&cfg);
    cfg.max_body = 100;
    /* comp_size above the limit, on a new connection and on one whose cipher is known. */
    fill_body(body, sizeof(body), 1);
    ptrdiff_t n =
        plugx_encode(&cfg, PLUGX_CIPHER_B, 5, 0x1001, 0, body, 200, false, pkt, sizeof(pkt));
    assert_int_equal(n, 216);
    conn_fresh(&conn);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, (size_t)n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_TOO_LARGE);
    assert_non_null(strstr(err, "comp_size"));
    conn.cipher = PLUGX_CIPHER_B;
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, 16, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_TOO_LARGE);
    /* decomp_size above the limit while comp_size is small. */
    memset(body, 0, sizeof(body));
    n = plugx_encode(&cfg, PLUGX_CIPHER_B, 6, 0x1001, 0, body, 1000, true, pkt, sizeof(pkt));
    assert_true(n > 16 && n < 16 + 100);
    conn_fresh(&conn);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, (size_t)n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_TOO_LARGE);
    assert_non_null(strstr(err, "decomp_size"));
    /* The same packets pass with the default limit. */
    plugx_config_default(&cfg);
    conn_fresh(&conn);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, (size_t)n, &p, scratch, sizeof(scratch), NULL, 0), n);
    /* Encoder: bodies over the 16-bit wire limit. */
    assert_int_equal(
        plugx_encode(&cfg, PLUGX_CIPHER_A, 1, 0x1000, 0, scratch, 65536, false, pkt, sizeof(pkt)),
        PROTO_E_TOO_LARGE);
    assert_int_equal(plugx_encode(&cfg, PLUGX_CIPHER_A, 1, 0x1000, 0, body, 10, false, pkt, 20),
                     PROTO_E_SPACE);
    assert_int_equal(plugx_encode(&cfg, PLUGX_CIPHER_A, 1, 0x1000, 0, NULL, 0, false, pkt, 15),
                     PROTO_E_SPACE);
}

static void test_error_cipher(void **state)
{
    struct plugx_config cfg;
    struct plugx_conn conn;
    struct plugx_packet p;
    uint8_t garbage[16];
    char err[128];
    (void)state;

    plugx_config_default(&cfg);
    for (int i = 0; i < 16; i++) {
        garbage[i] = (uint8_t)(0xF0 ^ (i * 37));
    }
    conn_fresh(&conn);
    assert_int_equal(
        plugx_decode(&cfg, &conn, garbage, 16, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_CIPHER);
    assert_int_equal(plugx_family.detect(&cfg, garbage, 16), -1);
    assert_int_equal(conn.cipher, -1);
    /* A packet of a disabled family is not accepted. */
    ptrdiff_t n = plugx_encode(&cfg, PLUGX_CIPHER_A, 77, 0x1000, 0, NULL, 0, false, pkt, 64);
    cfg.ciphers_enabled = 1u << PLUGX_CIPHER_B;
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, (size_t)n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_CIPHER);
    assert_int_equal(plugx_family.detect(&cfg, pkt, (size_t)n), -1);
    /* A connection whose remembered cipher has since been disabled. */
    conn.cipher = PLUGX_CIPHER_A;
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, (size_t)n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_CIPHER);
    /* RC4 enabled without a key is not tried. */
    plugx_config_default(&cfg);
    n = plugx_encode(&cfg, PLUGX_CIPHER_RC4, 78, 0x1000, 0, NULL, 0, false, pkt, 64);
    cfg.rc4_key_len = 0;
    conn_fresh(&conn);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, (size_t)n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_CIPHER);
    assert_int_equal(
        plugx_encode(&cfg, (enum plugx_cipher)9, 1, 0x1000, 0, NULL, 0, false, pkt, 64),
        PROTO_E_CIPHER);
}

static void test_error_decompress(void **state)
{
    struct plugx_config cfg;
    struct plugx_conn conn;
    struct plugx_packet p;
    static uint8_t plain[5000], comp[6000];
    char err[128];
    (void)state;

    plugx_config_default(&cfg);
    memset(plain, 0, sizeof(plain));
    ptrdiff_t clen = lznt1_compress(plain, 4096, comp, sizeof(comp));
    assert_true(clen > 0 && clen < 100);

    /* Declared size larger than what the body gives. */
    size_t n =
        seal(&cfg, PLUGX_CIPHER_A, 11, 0x1001, (uint16_t)clen, 4097, 0, comp, (size_t)clen, pkt);
    conn_fresh(&conn);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_DECOMPRESS);
    assert_non_null(strstr(err, "shorter"));

    /* Bomb: 4096 bytes out of a body that declares 100; scratch past 100 is never touched. */
    n = seal(&cfg, PLUGX_CIPHER_A, 12, 0x1001, (uint16_t)clen, 100, 0, comp, (size_t)clen, pkt);
    memset(scratch, 0xAA, sizeof(scratch));
    conn_fresh(&conn);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_DECOMPRESS);
    assert_non_null(strstr(err, "more than decomp_size"));
    for (size_t i = 100; i < sizeof(scratch); i++) {
        assert_int_equal(scratch[i], 0xAA);
    }

    /* Uncompressed body whose sizes disagree. */
    conn.cipher = PLUGX_CIPHER_A;
    n = seal(&cfg, PLUGX_CIPHER_A, 13, 0x1001 | PLUGX_FLAG_UNCOMPRESSED, 10, 12, 0, plain, 10, pkt);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_DECOMPRESS);

    /* Corrupt LZNT1: bad chunk signature; truncated chunk header. */
    uint8_t bad[4] = {0x10, 0x00, 'x', 'y'};
    n = seal(&cfg, PLUGX_CIPHER_A, 14, 0x1001, 4, 2, 0, bad, 4, pkt);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_DECOMPRESS);
    assert_non_null(strstr(err, "signature"));
    n = seal(&cfg, PLUGX_CIPHER_A, 15, 0x1001, 1, 0, 0, bad, 1, pkt);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_DECOMPRESS);
    /* A chunk that claims more data than the body holds. */
    uint8_t trunc[5] = {0x09, 0x30, 'a', 'b', 'c'};
    n = seal(&cfg, PLUGX_CIPHER_A, 16, 0x1001, 5, 10, 0, trunc, 5, pkt);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_DECOMPRESS);

    /* Scratch smaller than the declared size: a caller bug, reported as such. */
    n = plugx_encode(&cfg, PLUGX_CIPHER_A, 17, 0x1001, 0, plain, 500, true, pkt, sizeof(pkt));
    assert_int_equal(plugx_decode(&cfg, &conn, pkt, n, &p, scratch, 499, err, sizeof(err)),
                     PROTO_E_SPACE);
    assert_int_equal(plugx_decode(&cfg, &conn, pkt, n, &p, scratch, 500, err, sizeof(err)),
                     (ptrdiff_t)n);

    /* A terminating zero chunk header ends the body early: the rest is ignored. */
    uint8_t term[9] = {0x02, 0x30, 'a', 'b', 'c', 0x00, 0x00, 0x55, 0x55};
    n = seal(&cfg, PLUGX_CIPHER_A, 18, 0x1001, 9, 3, 0, term, 9, pkt);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        (ptrdiff_t)n);
    assert_memory_equal(p.body, "abc", 3);
}

static void test_error_malformed_on_known_connection(void **state)
{
    struct plugx_config cfg;
    struct plugx_conn conn;
    struct plugx_packet p;
    char err[128];
    (void)state;

    plugx_config_default(&cfg);
    conn_fresh(&conn);
    conn.cipher = PLUGX_CIPHER_C;
    size_t n = seal(&cfg, PLUGX_CIPHER_C, 21, 0x1000 | 0x04000000, 0, 0, 0, NULL, 0, pkt);
    assert_int_equal(
        plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)),
        PROTO_E_MALFORMED);
    assert_non_null(strstr(err, "flag"));
    /* Known ids across the documented ranges are accepted everywhere. Other ids cannot pick a
     * new connection's family (detection needs a known id), but on a connection whose family is
     * known they are that family's packets: a build's own command (the seized variant's
     * self-delete, say 0xFD01) must reach the bot that obeys it. */
    const uint16_t ok[] = {0x0, 0x8, 0x1000, 0x1008, 0x2000, 0x7100, 0xC001, 0xE0FF};
    const uint16_t other[] = {0x9, 0x0FFF, 0x1009, 0x1FFF, 0x2200, 0xE100, 0xF000, 0xFD01};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        n = seal(&cfg, PLUGX_CIPHER_C, 23, ok[i], 0, 0, 0, NULL, 0, pkt);
        assert_int_equal(plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), NULL, 0),
                         16);
    }
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        n = seal(&cfg, PLUGX_CIPHER_C, 24, other[i], 0, 0, 0, NULL, 0, pkt);
        assert_int_equal(plugx_decode(&cfg, &conn, pkt, n, &p, scratch, sizeof(scratch), NULL, 0),
                         16);
        assert_int_equal(p.command, other[i]);
        struct plugx_conn fresh;
        conn_fresh(&fresh);
        assert_true(
            plugx_decode(&cfg, &fresh, pkt, n, &p, scratch, sizeof(scratch), err, sizeof(err)) < 0);
        assert_int_equal(fresh.cipher, -1);
    }
}

static void test_detection_and_remembered_cipher(void **state)
{
    struct plugx_config cfg;
    (void)state;

    plugx_config_default(&cfg);
    for (int c = 0; c < PLUGX_CIPHER_COUNT; c++) {
        struct plugx_conn conn;
        struct plugx_packet p;
        uint8_t first[64], second[64];
        ptrdiff_t n = plugx_encode(&cfg, (enum plugx_cipher)c, 0x5000 + (uint32_t)c, 0x1000, 0,
                                   NULL, 0, false, first, sizeof(first));
        assert_int_equal(plugx_family.detect(&cfg, first, 15), 0);
        assert_int_equal(plugx_family.detect(&cfg, first, (size_t)n), 1);
        conn_fresh(&conn);
        assert_int_equal(
            plugx_decode(&cfg, &conn, first, (size_t)n, &p, scratch, sizeof(scratch), NULL, 0), n);
        assert_int_equal(conn.cipher, c);
        /* A later packet in another family is not re-detected: it fails. */
        int other = (c + 1) % PLUGX_CIPHER_COUNT;
        n = plugx_encode(&cfg, (enum plugx_cipher)other, 0x7777, 0x1000, 0, NULL, 0, false, second,
                         sizeof(second));
        assert_true(plugx_decode(&cfg, &conn, second, (size_t)n, &p, scratch, sizeof(scratch), NULL,
                                 0) < 0);
        assert_int_equal(conn.cipher, c);
        assert_int_equal(conn.packets, 1);
    }
}

static void test_machine_info_round_trip(void **state)
{
    struct plugx_machine_info mi;
    struct bot_identity id;
    uint8_t body[1024];
    (void)state;

    memset(&mi, 0, sizeof(mi));
    snprintf(mi.id.host, sizeof(mi.id.host), "DESKTOP-\xC3\xA9T\xC3\x89");
    snprintf(mi.id.user, sizeof(mi.id.user), "\xF0\x9F\x98\x80user");
    snprintf(mi.id.campaign, sizeof(mi.id.campaign), "usb-worm");
    snprintf(mi.id.version, sizeof(mi.id.version), "20190306");
    snprintf(mi.id.local_ip, sizeof(mi.id.local_ip), "192.168.1.20");
    mi.os_major = 6;
    mi.os_minor = 1;
    mi.os_build = 7601;
    mi.service_pack = 1;
    mi.cpu_mhz = 2400;
    mi.memory_mb = 4096;
    mi.system_time = 133000000000000000ull;
    ptrdiff_t n = plugx_machine_info_encode(&mi, body, sizeof(body));
    assert_int_equal(n, 36 + 2 * (11 + 1) + 2 * (6 + 1) + 2 * (8 + 1) + 2 * (8 + 1));
    /* Layout spot checks (docs/plugx.md): os_build at 8, IPv4 at 32, host at 36. */
    assert_int_equal(body[8] | body[9] << 8, 7601);
    assert_memory_equal(body + 32, "\xC0\xA8\x01\x14", 4);
    assert_memory_equal(body + 36, "D\0E\0", 4);
    assert_int_equal(plugx_machine_info_parse(body, (size_t)n, &id), 0);
    assert_string_equal(id.host, mi.id.host);
    assert_string_equal(id.user, mi.id.user);
    assert_string_equal(id.campaign, "usb-worm");
    assert_string_equal(id.version, "20190306");
    assert_string_equal(id.os, "6.1.7601 SP1");
    assert_string_equal(id.local_ip, "192.168.1.20");
    /* Too small an output buffer at every length. */
    for (ptrdiff_t cap = 0; cap < n; cap++) {
        assert_int_equal(plugx_machine_info_encode(&mi, body, (size_t)cap), PROTO_E_SPACE);
    }
    /* Invalid UTF-8 is replaced, not passed through. */
    snprintf(mi.id.host, sizeof(mi.id.host),
             "a\xFF"
             "b\xC3");
    n = plugx_machine_info_encode(&mi, body, sizeof(body));
    assert_true(n > 0);
    assert_int_equal(plugx_machine_info_parse(body, (size_t)n, &id), 0);
    assert_string_equal(id.host, "a\xEF\xBF\xBD"
                                 "b\xEF\xBF\xBD");
}

static size_t put16(uint8_t *b, size_t at, const uint16_t *units, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        b[at + 2 * i] = (uint8_t)units[i];
        b[at + 2 * i + 1] = (uint8_t)(units[i] >> 8);
    }
    return at + 2 * n;
}

static void test_machine_info_utf16_edge_cases(void **state)
{
    uint8_t body[1024];
    struct bot_identity id;
    uint16_t units[200];
    (void)state;

    /* Model layout with a 100-unit host of U+00E9: truncated on a code point boundary. */
    memset(body, 0, 36);
    body[0] = 10;
    for (int i = 0; i < 100; i++) {
        units[i] = 0x00E9;
    }
    units[100] = 0;
    size_t at = put16(body, 36, units, 101);
    /* user: a lone high surrogate, then a lone low surrogate, then 'x' */
    const uint16_t user[] = {0xD83D, 'y', 0xDE00, 'x', 0};
    at = put16(body, at, user, 5);
    at = put16(body, at, (const uint16_t[]){0, 0}, 2);
    assert_int_equal(plugx_machine_info_parse(body, at, &id), 0);
    assert_int_equal(strlen(id.host), 62);
    for (int i = 0; i < 62; i += 2) {
        assert_memory_equal(id.host + i, "\xC3\xA9", 2);
    }
    assert_string_equal(id.user, "\xEF\xBF\xBDy\xEF\xBF\xBDx");
    assert_string_equal(id.os, "10.0.0 SP0");
    assert_string_equal(id.local_ip, "");
    /* One byte less is not the model; the fallback trusts only mostly-ASCII runs, and these
     * strings are not, so there is no identity rather than a guessed one. */
    assert_int_equal(plugx_machine_info_parse(body, at - 1, &id), -1);
    /* With an ASCII user the fallback finds it (as the first string: host). */
    at = put16(body, 36 + 202, (const uint16_t[]){'e', 'v', 'e', 0, 0, 0}, 6);
    assert_int_equal(plugx_machine_info_parse(body, at - 1, &id), 0);
    assert_string_equal(id.host, "eve");
    assert_string_equal(id.user, "");
}

static void test_machine_info_fallback(void **state)
{
    uint8_t body[256];
    struct bot_identity id;
    (void)state;

    /* Unknown layout: binary junk around two UTF-16LE strings. */
    memset(body, 0, sizeof(body));
    for (int i = 0; i < 10; i++) {
        body[i] = (uint8_t)(0x01 + i);
    }
    const uint16_t host[] = {'W', 'I', 'N', '-', '7', 0};
    const uint16_t user[] = {'b', 'o', 'b', 0};
    size_t at = put16(body, 20, host, 6);
    body[at] = 0x03; /* junk unit between the strings */
    at = put16(body, at + 6, user, 4);
    assert_int_equal(plugx_machine_info_parse(body, at, &id), 0);
    assert_string_equal(id.host, "WIN-7");
    assert_string_equal(id.user, "bob");
    assert_string_equal(id.os, "");
    /* Odd alignment. */
    memmove(body + 1, body, at);
    body[0] = 0x07;
    memset(body + 1, 0, 20);
    assert_int_equal(plugx_machine_info_parse(body, at + 1, &id), 0);
    assert_string_equal(id.host, "WIN-7");
    assert_string_equal(id.user, "bob");
    /* Nothing text-like: no identity. */
    memset(body, 0, sizeof(body));
    assert_int_equal(plugx_machine_info_parse(body, sizeof(body), &id), -1);
    assert_string_equal(id.host, "");
    assert_int_equal(plugx_machine_info_parse(body, 0, &id), -1);
}

/* Bot side of the conversation: decodes what the server sends. */
static void bot_read(const struct plugx_config *cfg, struct plugx_conn *bot, const uint8_t *buf,
                     ptrdiff_t n, uint16_t want_cmd, uint32_t want_job, int want_cipher)
{
    struct plugx_packet p;
    static uint8_t s[PROTO_SCRATCH_SIZE];
    assert_true(n >= 16 && (size_t)n <= plugx_family.max_reply);
    assert_int_equal(plugx_decode(cfg, bot, buf, (size_t)n, &p, s, sizeof(s), NULL, 0), n);
    assert_int_equal(p.command, want_cmd);
    assert_int_equal(p.job, want_job);
    assert_int_equal(p.cipher, want_cipher);
    assert_int_equal(p.body_len, 0);
}

static void test_family_conversation(void **state)
{
    struct plugx_config cfg;
    struct plugx_conn server, bot;
    struct proto_message msg;
    struct plugx_machine_info mi;
    uint8_t body[512], reply[128], reply2[128], sha[32];
    (void)state;

    plugx_config_default(&cfg);
    assert_true(plugx_family.conn_state_size <= 32);
    assert_int_equal(plugx_family.identify_command, 0x1001);
    assert_string_equal(plugx_family.name, "plugx");
    for (int c = 0; c < PLUGX_CIPHER_COUNT; c++) {
        plugx_family.conn_init(&cfg, &server, 42 + (uint64_t)c);
        assert_int_equal(server.cipher, -1);
        conn_fresh(&bot);
        /* No reply before anything was decoded. */
        assert_int_equal(plugx_family.encode_command(&cfg, &server, 0x1007, reply, sizeof(reply)),
                         0);

        /* 1. poll on a new connection: HELLO, answered "nothing to do": a passive sinkhole
         *    asks for nothing (machine information only under a collect authorisation). */
        ptrdiff_t n = plugx_encode(&cfg, (enum plugx_cipher)c, 1000, 0x1000, 0xAB, NULL, 0, true,
                                   pkt, sizeof(pkt));
        assert_int_equal(plugx_family.decode(&cfg, &server, pkt, (size_t)n, &msg, scratch,
                                             sizeof(scratch), NULL, 0),
                         n);
        assert_int_equal(msg.msg_type, CONTACT_MSG_HELLO);
        assert_int_equal(msg.command, 0x1000);
        assert_int_equal(msg.has_identity, 0);
        SHA256(NULL, 0, sha);
        assert_memory_equal(msg.body_sha256, sha, 32);
        ptrdiff_t r = plugx_family.encode_reply(&cfg, &server, &msg, reply, sizeof(reply));
        bot_read(&cfg, &bot, reply, r, 0x1000, 0xAB, c);
        assert_int_equal(plugx_family.encode_reply(&cfg, &server, &msg, reply, 15), PROTO_E_SPACE);

        /* 2. machine information. */
        memset(&mi, 0, sizeof(mi));
        snprintf(mi.id.host, sizeof(mi.id.host), "HOST-%d", c);
        snprintf(mi.id.user, sizeof(mi.id.user), "user");
        mi.os_major = 10;
        mi.os_build = 19045;
        ptrdiff_t blen = plugx_machine_info_encode(&mi, body, sizeof(body));
        n = plugx_encode(&cfg, (enum plugx_cipher)c, 1001, 0x1001 | PLUGX_FLAG_SHARED_RUN, 0xCD,
                         body, (size_t)blen, true, pkt, sizeof(pkt));
        assert_int_equal(plugx_family.decode(&cfg, &server, pkt, (size_t)n, &msg, scratch,
                                             sizeof(scratch), NULL, 0),
                         n);
        assert_int_equal(msg.msg_type, CONTACT_MSG_MACHINE_INFO);
        assert_int_equal(msg.has_identity, 1);
        assert_string_equal(msg.bot.host, mi.id.host);
        assert_string_equal(msg.bot.os, "10.0.19045 SP0");
        assert_int_equal(msg.body_len, blen);
        SHA256(body, (size_t)blen, sha);
        assert_memory_equal(msg.body_sha256, sha, 32);
        r = plugx_family.encode_reply(&cfg, &server, &msg, reply, sizeof(reply));
        bot_read(&cfg, &bot, reply, r, 0x1000, 0xCD, c);
        assert_true(((reply[4] ^ 0) != 0) || 1); /* header is encrypted; checked via decode */

        /* 3. later poll: HEARTBEAT, answered with 0x1000; reply keys vary. */
        n = plugx_encode(&cfg, (enum plugx_cipher)c, 1002, 0x1002, 0xEF, NULL, 0, false, pkt,
                         sizeof(pkt));
        assert_int_equal(plugx_family.decode(&cfg, &server, pkt, (size_t)n, &msg, scratch,
                                             sizeof(scratch), NULL, 0),
                         n);
        assert_int_equal(msg.msg_type, CONTACT_MSG_HEARTBEAT);
        r = plugx_family.encode_reply(&cfg, &server, &msg, reply, sizeof(reply));
        bot_read(&cfg, &bot, reply, r, 0x1000, 0xEF, c);
        ptrdiff_t r2 = plugx_family.encode_reply(&cfg, &server, &msg, reply2, sizeof(reply2));
        assert_int_equal(r2, r);
        assert_memory_not_equal(reply, reply2, 4);

        /* Other commands are OTHER; 0x1001 without an identity later is OTHER too. */
        n = plugx_encode(&cfg, (enum plugx_cipher)c, 1003, 0x1003, 0, NULL, 0, false, pkt,
                         sizeof(pkt));
        assert_int_equal(plugx_family.decode(&cfg, &server, pkt, (size_t)n, &msg, scratch,
                                             sizeof(scratch), NULL, 0),
                         n);
        assert_int_equal(msg.msg_type, CONTACT_MSG_OTHER);

        /* 4. a server command (the authorised self-delete id, or identify_command): the id the
         *    caller gives, job 0; ids PlugX cannot carry are refused. */
        r = plugx_family.encode_command(&cfg, &server, 0x1007, reply, sizeof(reply));
        bot_read(&cfg, &bot, reply, r, 0x1007, 0, c);
        r = plugx_family.encode_command(&cfg, &server, plugx_family.identify_command, reply,
                                        sizeof(reply));
        bot_read(&cfg, &bot, reply, r, 0x1001, 0, c);
        assert_true(plugx_family.encode_command(&cfg, &server, 0, reply, sizeof(reply)) < 0);
        assert_true(plugx_family.encode_command(&cfg, &server, 0x10000, reply, sizeof(reply)) < 0);
    }
}

static void test_family_first_packet_machine_info_and_old_ids(void **state)
{
    struct plugx_config cfg;
    struct plugx_conn server, bot;
    struct proto_message msg;
    struct plugx_machine_info mi;
    uint8_t body[256], reply[128];
    (void)state;

    plugx_config_default(&cfg);
    /* A bot that opens with its machine information is identified at once: reply 0x1000. */
    plugx_family.conn_init(&cfg, &server, 0);
    assert_true(server.rng != 0);
    memset(&mi, 0, sizeof(mi));
    snprintf(mi.id.host, sizeof(mi.id.host), "PC1");
    ptrdiff_t blen = plugx_machine_info_encode(&mi, body, sizeof(body));
    ptrdiff_t n = plugx_encode(&cfg, PLUGX_CIPHER_B, 9, 0x1001, 3, body, (size_t)blen, false, pkt,
                               sizeof(pkt));
    assert_int_equal(
        plugx_family.decode(&cfg, &server, pkt, (size_t)n, &msg, scratch, sizeof(scratch), NULL, 0),
        n);
    assert_int_equal(msg.msg_type, CONTACT_MSG_MACHINE_INFO);
    conn_fresh(&bot);
    bot_read(&cfg, &bot, reply, plugx_family.encode_reply(&cfg, &server, &msg, reply, 128), 0x1000,
             3, PLUGX_CIPHER_B);

    /* An old build (ids 0x0-0x8) is answered in its own numbering. */
    plugx_family.conn_init(&cfg, &server, 1);
    n = plugx_encode(&cfg, PLUGX_CIPHER_A, 10, 0x0, 4, NULL, 0, false, pkt, sizeof(pkt));
    assert_int_equal(
        plugx_family.decode(&cfg, &server, pkt, (size_t)n, &msg, scratch, sizeof(scratch), NULL, 0),
        n);
    assert_int_equal(msg.msg_type, CONTACT_MSG_HELLO);
    conn_fresh(&bot);
    bot_read(&cfg, &bot, reply, plugx_family.encode_reply(&cfg, &server, &msg, reply, 128), 0x0, 4,
             PLUGX_CIPHER_A);
    bot_read(&cfg, &bot, reply, plugx_family.encode_command(&cfg, &server, 0x1005, reply, 128), 0x5,
             0, PLUGX_CIPHER_A);
    /* Errors pass through unchanged. */
    assert_int_equal(
        plugx_family.decode(&cfg, &server, pkt, 10, &msg, scratch, sizeof(scratch), NULL, 0),
        PROTO_NEED_MORE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keystream_vectors),
        cmocka_unit_test(test_keystream_c_and_rc4_match_reference),
        cmocka_unit_test(test_family_c_public_decoder_vectors),
        cmocka_unit_test(test_header_vectors_encode_and_detect),
        cmocka_unit_test(test_round_trip_every_cipher_and_mode),
        cmocka_unit_test(test_shared_run_changes_body_keystream),
        cmocka_unit_test(test_need_more_at_every_prefix),
        cmocka_unit_test(test_error_too_large),
        cmocka_unit_test(test_error_cipher),
        cmocka_unit_test(test_error_decompress),
        cmocka_unit_test(test_error_malformed_on_known_connection),
        cmocka_unit_test(test_detection_and_remembered_cipher),
        cmocka_unit_test(test_machine_info_round_trip),
        cmocka_unit_test(test_machine_info_utf16_edge_cases),
        cmocka_unit_test(test_machine_info_fallback),
        cmocka_unit_test(test_family_conversation),
        cmocka_unit_test(test_family_first_packet_machine_info_and_old_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
