/* proto_lznt1_test.c -- LZNT1 (MS-XCA 2.5): specification examples, every token split, stored
 * and compressed chunks, multi-chunk streams, and every decoder error. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto/plugx/lznt1.h"

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

static uint8_t in[70000], comp[80000], out[70000];

/* Offset bits for a token at chunk position pos, computed as MS-XCA states it:
 * max(4, ceil(log2(pos))), independently of the codec's loop. */
static unsigned ref_offset_bits(size_t pos)
{
    unsigned bits = 0;
    while (((size_t)1 << bits) < pos) {
        bits++;
    }
    return bits < 4 ? 4 : bits;
}

static void put_token(uint8_t *p, size_t pos, size_t offset, size_t length)
{
    unsigned lbits = 16 - ref_offset_bits(pos);
    uint16_t t = (uint16_t)(((offset - 1) << lbits) | (length - 3));
    p[0] = (uint8_t)t;
    p[1] = (uint8_t)(t >> 8);
}

static void put_header(uint8_t *p, size_t data_len, int compressed)
{
    uint16_t h = (uint16_t)(0x3000 | (data_len - 1) | (compressed ? 0x8000 : 0));
    p[0] = (uint8_t)h;
    p[1] = (uint8_t)(h >> 8);
}

static void round_trip(const uint8_t *data, size_t n)
{
    ptrdiff_t c = lznt1_compress(data, n, comp, lznt1_compress_bound(n));
    assert_true(c >= 0);
    assert_true((size_t)c <= lznt1_compress_bound(n));
    ptrdiff_t d = lznt1_decompress(comp, (size_t)c, out, n);
    assert_int_equal(d, n);
    if (n > 0) {
        assert_memory_equal(out, data, n);
    }
}

static void fill_random(uint8_t *b, size_t n, uint32_t seed)
{
    uint32_t x = seed | 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        b[i] = (uint8_t)x;
    }
}

static void test_empty(void **state)
{
    (void)state;
    assert_int_equal(lznt1_decompress(comp, 0, out, sizeof(out)), 0);
    assert_int_equal(lznt1_compress(in, 0, comp, 0), 0);
    assert_int_equal(lznt1_compress_bound(0), 0);
    /* A zero chunk header ends the stream, whatever follows. */
    const uint8_t term[] = {0x00, 0x00, 0xFF, 0xFF};
    assert_int_equal(lznt1_decompress(term, sizeof(term), out, sizeof(out)), 0);
}

static void test_spec_examples(void **state)
{
    uint8_t plain[200], c[100];
    (void)state;

    /* Stored "hello" (PLUGX.md): decompresses, and is exactly what the compressor emits. */
    size_t pn = load_vector("lznt1_hello_plain", plain, sizeof(plain));
    size_t cn = load_vector("lznt1_hello_comp", c, sizeof(c));
    assert_int_equal(lznt1_decompress(c, cn, out, sizeof(out)), pn);
    assert_memory_equal(out, plain, pn);
    assert_int_equal(lznt1_compress(plain, pn, comp, sizeof(comp)), cn);
    assert_memory_equal(comp, c, cn);

    /* MS-XCA 3.3: 142 bytes to 59 with overlapping copies. */
    pn = load_vector("lznt1_msxca_plain", plain, sizeof(plain));
    cn = load_vector("lznt1_msxca_comp", c, sizeof(c));
    assert_int_equal(pn, 142);
    assert_int_equal(cn, 59);
    assert_int_equal(lznt1_decompress(c, cn, out, sizeof(out)), 142);
    assert_memory_equal(out, plain, 142);
    ptrdiff_t ours = lznt1_compress(plain, pn, comp, sizeof(comp));
    assert_true(ours > 0 && ours <= 70); /* really compressed, close to Windows' 59 */
    assert_int_equal(comp[1] & 0xF0, 0xB0);
    round_trip(plain, pn);
    /* Every truncation of the example is reported. */
    for (size_t len = 1; len < cn; len++) {
        assert_int_equal(lznt1_decompress(c, len, out, sizeof(out)), LZNT1_E_TRUNCATED);
    }
    /* Output cap one short of the result. */
    assert_int_equal(lznt1_decompress(c, cn, out, 141), LZNT1_E_OVERFLOW);

    /* Literal-only compressed chunk (docs.rs/lznt1). */
    pn = load_vector("lznt1_hw_plain", plain, sizeof(plain));
    cn = load_vector("lznt1_hw_comp", c, sizeof(c));
    assert_int_equal(lznt1_decompress(c, cn, out, sizeof(out)), pn);
    assert_memory_equal(out, plain, pn);
}

/* A compressed chunk of pos distinct literals, then one token with the largest offset (pos)
 * and the largest length the split allows (capped by the 4096-byte chunk). */
static void check_split(size_t pos)
{
    size_t o = 2, lit = 0;
    unsigned lbits = 16 - ref_offset_bits(pos);
    size_t length = ((size_t)1 << lbits) - 1 + 3;
    if (length > LZNT1_CHUNK_SIZE - pos) {
        length = LZNT1_CHUNK_SIZE - pos;
    }
    uint8_t expect[LZNT1_CHUNK_SIZE];
    fill_random(expect, pos, (uint32_t)pos);
    while (lit < pos) {
        size_t group = pos - lit < 8 ? pos - lit : 8;
        uint8_t flags = 0;
        size_t flag_at = o++;
        memcpy(comp + o, expect + lit, group);
        o += group;
        lit += group;
        if (group < 8) {
            flags = (uint8_t)(1u << group); /* the token shares the last flag byte */
            put_token(comp + o, pos, pos, length);
            o += 2;
        }
        comp[flag_at] = flags;
    }
    if (pos % 8 == 0) {
        comp[o++] = 0x01;
        put_token(comp + o, pos, pos, length);
        o += 2;
    }
    put_header(comp, o - 2, 1);
    for (size_t i = 0; i < length; i++) {
        expect[pos + i] = expect[i];
    }
    ptrdiff_t d = lznt1_decompress(comp, o, out, sizeof(out));
    if (d != (ptrdiff_t)(pos + length)) {
        fail_msg("pos %zu: got %td, want %zu", pos, d, pos + length);
    }
    assert_memory_equal(out, expect, pos + length);
    /* One byte more offset than output so far is before the chunk start. */
    if (ref_offset_bits(pos + 1) == ref_offset_bits(pos) && pos < (size_t)1
                                                                      << ref_offset_bits(pos)) {
        put_token(comp + o - 2, pos, pos + 1, 3);
        assert_int_equal(lznt1_decompress(comp, o, out, sizeof(out)), LZNT1_E_OFFSET);
    }
}

static void test_every_token_split(void **state)
{
    (void)state;
    /* Both sides of each threshold where a length bit becomes an offset bit. */
    for (size_t t = 16; t <= 2048; t *= 2) {
        check_split(t - 1);
        check_split(t);
        check_split(t + 1);
    }
    check_split(1);
    check_split(3000);
    check_split(3600); /* 12 offset bits, 4 length bits */
}

static void test_overlapping_copy(void **state)
{
    (void)state;
    /* "ab" then copy offset 2 length 9: "ababababab a" pattern; offset 1 length 10 after that. */
    uint8_t c[] = {0, 0, 0x0C, 'a', 'b', 0, 0, 0, 0};
    put_token(c + 5, 2, 2, 9);
    put_token(c + 7, 11, 1, 10);
    put_header(c, sizeof(c) - 2, 1);
    assert_int_equal(lznt1_decompress(c, sizeof(c), out, sizeof(out)), 21);
    assert_memory_equal(out, "abababababaaaaaaaaaaa", 21);
}

static void test_stored_and_multiple_chunks(void **state)
{
    (void)state;
    /* Random data does not compress: stored chunks 0x3FFF and a short one. */
    fill_random(in, 5000, 7);
    ptrdiff_t c = lznt1_compress(in, 5000, comp, sizeof(comp));
    assert_int_equal(c, 5000 + 4);
    assert_int_equal(comp[0] | comp[1] << 8, 0x3FFF);
    assert_int_equal(comp[4098] | comp[4099] << 8, 0x3000 | (903));
    round_trip(in, 5000);

    /* Compressible text over several chunks: every chunk compressed, decodable on its own. */
    for (size_t i = 0; i < 20000; i++) {
        in[i] = (uint8_t)("the quick brown fox jumps over the lazy dog "[(i * 7 / 5) % 44]);
    }
    c = lznt1_compress(in, 20000, comp, sizeof(comp));
    assert_true(c > 0 && c < 20000 / 4);
    size_t at = 0, chunks = 0, total = 0;
    while (at < (size_t)c) {
        uint16_t h = (uint16_t)(comp[at] | comp[at + 1] << 8);
        assert_int_equal(h & 0xF000, 0xB000);
        size_t dl = (size_t)(h & 0xFFF) + 1;
        ptrdiff_t d = lznt1_decompress(comp + at, dl + 2, out, sizeof(out));
        assert_true(d > 0 && d <= LZNT1_CHUNK_SIZE);
        total += (size_t)d;
        at += dl + 2;
        chunks++;
    }
    assert_int_equal(chunks, 5);
    assert_int_equal(total, 20000);
    round_trip(in, 20000);

    /* Long runs use maximum-length matches: 64 KiB of zeros is tiny. */
    memset(in, 0, 65535);
    c = lznt1_compress(in, 65535, comp, sizeof(comp));
    assert_true(c > 0 && c < 400);
    round_trip(in, 65535);

    /* Mixed stored and compressed chunks, every size around the chunk boundary. */
    const size_t sizes[] = {1, 2, 3, 4095, 4096, 4097, 8191, 8192, 8193, 65535};
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        fill_random(in, sizes[s], (uint32_t)s);
        memset(in + sizes[s] / 2, 'z', sizes[s] / 4);
        round_trip(in, sizes[s]);
    }
}

static void test_decoder_errors(void **state)
{
    (void)state;
    /* Header truncated, data truncated. */
    const uint8_t one[] = {0x04};
    assert_int_equal(lznt1_decompress(one, 1, out, sizeof(out)), LZNT1_E_TRUNCATED);
    const uint8_t stored_short[] = {0x04, 0x30, 'h', 'e'};
    assert_int_equal(lznt1_decompress(stored_short, 4, out, sizeof(out)), LZNT1_E_TRUNCATED);
    /* Signature bits other than 0b011. */
    const uint16_t bad_sig[] = {0x0004, 0x1004, 0x7004, 0xC004};
    for (size_t i = 0; i < 4; i++) {
        uint8_t c[8] = {(uint8_t)bad_sig[i], (uint8_t)(bad_sig[i] >> 8), 'h', 'e', 'l', 'l', 'o'};
        assert_int_equal(lznt1_decompress(c, 7, out, sizeof(out)), LZNT1_E_SIGNATURE);
    }
    /* A copy token as the first item of a chunk, and one split over the chunk end. */
    uint8_t tok0[] = {0, 0, 0x01, 0x00, 0x00};
    put_header(tok0, 3, 1);
    assert_int_equal(lznt1_decompress(tok0, sizeof(tok0), out, sizeof(out)), LZNT1_E_OFFSET);
    uint8_t half[] = {0, 0, 0x02, 'a', 0x00};
    put_header(half, 3, 1);
    assert_int_equal(lznt1_decompress(half, sizeof(half), out, sizeof(out)), LZNT1_E_TRUNCATED);
    /* An offset cannot reach into the previous chunk. */
    uint8_t two[] = {0, 0, 'a', 'b', 'c', 0, 0, 0x01, 0, 0};
    put_header(two, 3, 0);
    put_header(two + 5, 3, 1);
    put_token(two + 8, 1, 1, 3); /* offset 1 at pos 0 of the second chunk */
    assert_int_equal(lznt1_decompress(two, sizeof(two), out, sizeof(out)), LZNT1_E_OFFSET);

    /* More than 4096 bytes from one chunk: by a literal after a full chunk, and by a copy. */
    uint8_t c1[] = {0, 0, 0x02, 'a', 0, 0, 'y'};
    put_header(c1, sizeof(c1) - 2, 1);
    put_token(c1 + 4, 1, 1, 4095); /* 1 + 4095 = 4096: the chunk is full */
    assert_int_equal(lznt1_decompress(c1, sizeof(c1), out, sizeof(out)), LZNT1_E_CHUNK);
    put_header(c1, sizeof(c1) - 3, 1); /* without the extra literal it is exactly full */
    assert_int_equal(lznt1_decompress(c1, sizeof(c1) - 1, out, sizeof(out)), 4096);
    uint8_t c2[] = {0, 0, 0x02, 'a', 0, 0};
    put_header(c2, 4, 1);
    put_token(c2 + 4, 1, 1, 4098); /* 1 + 4098 > 4096 */
    assert_int_equal(lznt1_decompress(c2, sizeof(c2), out, sizeof(out)), LZNT1_E_CHUNK);
}

static void test_output_caps(void **state)
{
    (void)state;
    /* Decompression bomb guard: the cap is respected byte for byte, nothing written past it. */
    memset(in, 0, 4096);
    ptrdiff_t c = lznt1_compress(in, 4096, comp, sizeof(comp));
    assert_true(c > 0 && c < 64);
    memset(out, 0xAA, 200);
    assert_int_equal(lznt1_decompress(comp, (size_t)c, out, 100), LZNT1_E_OVERFLOW);
    for (size_t i = 100; i < 200; i++) {
        assert_int_equal(out[i], 0xAA);
    }
    assert_int_equal(lznt1_decompress(comp, (size_t)c, out, 4096), 4096);
    assert_int_equal(lznt1_decompress(comp, (size_t)c, out, 0), LZNT1_E_OVERFLOW);
    /* Stored chunk larger than the cap; literal past the cap. */
    const uint8_t hello[] = {0x04, 0x30, 'h', 'e', 'l', 'l', 'o'};
    assert_int_equal(lznt1_decompress(hello, sizeof(hello), out, 4), LZNT1_E_OVERFLOW);
    const uint8_t lits[] = {0x03, 0xB0, 0x00, 'a', 'b', 'c'};
    assert_int_equal(lznt1_decompress(lits, sizeof(lits), out, 2), LZNT1_E_OVERFLOW);
    assert_int_equal(lznt1_decompress(lits, sizeof(lits), out, 3), 3);

    /* Compressor: every output capacity below what it needs is refused. */
    fill_random(in, 300, 3);
    ptrdiff_t need = lznt1_compress(in, 300, comp, sizeof(comp));
    assert_int_equal(need, 302);
    for (ptrdiff_t cap = 0; cap < need; cap++) {
        assert_int_equal(lznt1_compress(in, 300, comp, (size_t)cap), LZNT1_E_OVERFLOW);
    }
    assert_int_equal(lznt1_compress_bound(4096), 4098);
    assert_int_equal(lznt1_compress_bound(4097), 4101);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_spec_examples),
        cmocka_unit_test(test_every_token_split),
        cmocka_unit_test(test_overlapping_copy),
        cmocka_unit_test(test_stored_and_multiple_chunks),
        cmocka_unit_test(test_decoder_errors),
        cmocka_unit_test(test_output_caps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
