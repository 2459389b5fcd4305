/* evidence_seal_test.c -- personal fields sealed per record: the key schedule against values
 * computed independently (Python's cryptography HKDFExpand), sealing and opening back to the very
 * bytes, no personal byte left in a sealed record, a record that does not open at another index
 * or with a changed clear field, the per-epoch pseudonym, erased and lost keys (a key made again
 * gets another id: old records read as "no key", never as damage), the epoch file parser, and
 * erasure of exactly the epochs that ended before the time and not too recently. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "event/event.h"
#include "evidence/log.h"
#include "evidence/seal.h"
#include "util/hex.h"

#define DAY 86400u
#define T0 1796515200u /* a UTC midnight */

static char *make_state(void)
{
    static char dir[64];
    snprintf(dir, sizeof dir, "/tmp/sinkd-seal-test.XXXXXX");
    assert_non_null(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *dir)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static int contact(uint8_t *out, size_t cap, uint64_t time_us, const char *host, const char *bot)
{
    struct record rec;
    memset(&rec, 0, sizeof rec);
    rec.kind = RECORD_CONTACT;
    struct contact *c = &rec.u.contact;
    c->time_us = time_us;
    snprintf(c->node, sizeof c->node, "n1");
    net_addr_parse_ip("198.51.100.77", &c->src);
    c->src.port = 49152;
    net_addr_parse_ip("192.0.2.1", &c->dst);
    c->dst.port = 443;
    c->transport = CONTACT_TRANSPORT_TCP;
    snprintf(c->family, sizeof c->family, "plugx");
    c->msg_type = CONTACT_MSG_MACHINE_INFO;
    snprintf(c->bot.host, sizeof c->bot.host, "%s", host);
    snprintf(c->bot.user, sizeof c->bot.user, "jdoe-victim");
    snprintf(c->bot.os, sizeof c->bot.os, "10.0.19045");
    snprintf(c->bot_key, sizeof c->bot_key, "%s", bot);
    snprintf(c->cc, sizeof c->cc, "NG");
    c->asn = 37148;
    return event_encode(&rec, out, cap);
}

static bool contains(const uint8_t *hay, size_t n, const void *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++) {
        if (memcmp(hay + i, needle, m) == 0) {
            return true;
        }
    }
    return false;
}

static void write_key(const char *dir, uint32_t start, const uint8_t key[32])
{
    char path[256];
    snprintf(path, sizeof path, "%s/keys", dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/keys/epochs", dir);
    mkdir(path, 0700);
    uint32_t id = seal_key_id(key);
    snprintf(path, sizeof path, "%s/keys/epochs/%u-%08x.key", dir, start, id);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    char b64[64];
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < 30; i += 3) {
        uint32_t v = (uint32_t)key[i] << 16 | (uint32_t)key[i + 1] << 8 | key[i + 2];
        b64[o++] = tbl[v >> 18];
        b64[o++] = tbl[(v >> 12) & 63];
        b64[o++] = tbl[(v >> 6) & 63];
        b64[o++] = tbl[v & 63];
    }
    uint32_t v = (uint32_t)key[30] << 16 | (uint32_t)key[31] << 8;
    b64[o++] = tbl[v >> 18];
    b64[o++] = tbl[(v >> 12) & 63];
    b64[o++] = tbl[(v >> 6) & 63];
    b64[o++] = '=';
    b64[o] = '\0';
    fprintf(f, "sinkd epoch key v1\nstart %u\nend %u\nkey %s\n", start, start + DAY, b64);
    fclose(f);
}

/* The key schedule is what seal.h says, checked against values computed with Python's
 * cryptography (HKDFExpand over SHA-256) from the same inputs. */
static void test_key_schedule_vectors(void **state)
{
    (void)state;
    char *dir = make_state();
    uint8_t key[32];
    for (int i = 0; i < 32; i++) {
        key[i] = (uint8_t)i;
    }
    assert_int_equal(seal_key_id(key), 0xccf7ffe4u);
    write_key(dir, T0, key);
    struct seal_keyring *k = NULL;
    char err[256];
    assert_int_equal(seal_keyring_open(&k, dir, true, 0, err, sizeof err), 0);
    uint8_t rec[EVENT_RECORD_MAX], sealed[4096];
    int n = contact(rec, sizeof rec, (uint64_t)T0 * 1000000u + 100123456u, "DESKTOP-VICTIM01",
                    "0123456789abcdef0123456789abcdef");
    size_t slen = 0;
    assert_int_equal(seal_record(k, 7, (uint64_t)T0 * 1000000u + 100200000u, rec, (size_t)n, sealed,
                                 sizeof sealed, &slen, err, sizeof err),
                     1);
    uint8_t rk[32], rn[12];
    assert_int_equal(seal_record_key(k, 7, sealed, slen, rk, rn, err, sizeof err), SEAL_OPENED);
    char hx[65];
    hex_encode(rk, 32, hx);
    assert_string_equal(hx, "249d9cfa4d152f71cdbac957a00c556a0ac29a92a695708a1c75cf31119ae58b");
    hex_encode(rn, 12, hx);
    assert_string_equal(hx, "2968eceb280d767f13897043");
    struct record r;
    assert_int_equal(event_decode(sealed, slen, &r, err, sizeof err), 0);
    assert_int_equal(r.seal.epoch, T0);
    assert_int_equal(r.seal.key_id, 0xccf7ffe4u);
    assert_true(r.seal.has_bot_ref);
    hex_encode(r.seal.bot_ref, 8, hx);
    assert_string_equal(hx, "9a925122e284f12e");
    seal_keyring_free(k);
    rm_rf(dir);
}

static void test_seal_and_open(void **state)
{
    (void)state;
    char *dir = make_state();
    struct seal_keyring *w = NULL, *r = NULL;
    char err[256];
    assert_int_equal(seal_keyring_open(&w, dir, true, 0, err, sizeof err), 0);
    uint64_t now = (uint64_t)T0 * 1000000u + 5000000u;
    uint8_t rec[EVENT_RECORD_MAX], sealed[4096], opened[4096];
    int n = contact(rec, sizeof rec, now, "DESKTOP-VICTIM01", "0123456789abcdef0123456789abcdef");
    size_t slen = 0, olen = 0;
    assert_int_equal(
        seal_record(w, 42, now, rec, (size_t)n, sealed, sizeof sealed, &slen, err, sizeof err), 1);
    /* nothing personal in the leaf: names, the address bytes and port, the bot key */
    assert_false(contains(sealed, slen, "DESKTOP-VICTIM01", 16));
    assert_false(contains(sealed, slen, "jdoe-victim", 11));
    assert_false(contains(sealed, slen, "0123456789abcdef", 16));
    static const uint8_t src[] = {198, 51, 100, 77, 0xc0, 0x00};
    assert_false(contains(sealed, slen, src, sizeof src));
    /* the clear fields stay readable without any key */
    struct record d;
    assert_int_equal(event_decode(sealed, slen, &d, err, sizeof err), 0);
    assert_string_equal(d.u.contact.cc, "NG");
    assert_int_equal(d.u.contact.asn, 37148);
    assert_string_equal(d.u.contact.bot.os, "10.0.19045");
    assert_int_equal(d.u.contact.time_us, now);
    assert_string_equal(d.u.contact.bot.host, "");
    assert_int_equal(d.u.contact.src.family, 0);
    /* opened with the state's keys: exactly the bytes it had */
    assert_int_equal(seal_keyring_open(&r, dir, false, 0, err, sizeof err), 0);
    assert_int_equal(seal_open(r, 42, sealed, slen, opened, sizeof opened, &olen, err, sizeof err),
                     SEAL_OPENED);
    assert_int_equal(olen, (size_t)n);
    assert_memory_equal(opened, rec, olen);
    /* at another index it does not open: the key is the record's own */
    assert_true(seal_open(r, 43, sealed, slen, opened, sizeof opened, &olen, err, sizeof err) < 0);
    /* a changed clear field (the country) breaks the seal: it is authenticated */
    uint8_t bad[4096];
    memcpy(bad, sealed, slen);
    for (size_t i = 0; i + 4 < slen; i++) {
        if (memcmp(bad + i, "\x12\x00\x02NG", 5) == 0) {
            bad[i + 4] = 'H';
            break;
        }
    }
    assert_true(seal_open(r, 42, bad, slen, opened, sizeof opened, &olen, err, sizeof err) < 0);
    /* the per-record key opens it alone, as a bundle's verifier would */
    uint8_t rk[32], rn[12];
    assert_int_equal(seal_record_key(r, 42, sealed, slen, rk, rn, err, sizeof err), SEAL_OPENED);
    assert_int_equal(
        seal_open_with_key(rk, rn, sealed, slen, opened, sizeof opened, &olen, err, sizeof err), 0);
    assert_memory_equal(opened, rec, (size_t)n);
    /* a record with nothing personal is left as it is */
    struct record note;
    memset(&note, 0, sizeof note);
    note.kind = RECORD_NODE_STARTED;
    note.u.note.time_us = now;
    n = event_encode(&note, rec, sizeof rec);
    assert_int_equal(
        seal_record(w, 44, now, rec, (size_t)n, sealed, sizeof sealed, &slen, err, sizeof err), 0);
    seal_keyring_free(w);
    seal_keyring_free(r);
    rm_rf(dir);
}

/* One pseudonym per bot per epoch: equal within, different across epochs. */
static void test_bot_ref(void **state)
{
    (void)state;
    char *dir = make_state();
    struct seal_keyring *w = NULL;
    char err[256];
    assert_int_equal(seal_keyring_open(&w, dir, true, 0, err, sizeof err), 0);
    uint8_t rec[EVENT_RECORD_MAX], s[3][4096];
    size_t len[3];
    uint64_t t[3] = {(uint64_t)T0 * 1000000u + 1, (uint64_t)T0 * 1000000u + 7200000000u,
                     (uint64_t)(T0 + DAY) * 1000000u + 1};
    for (int i = 0; i < 3; i++) {
        int n = contact(rec, sizeof rec, t[i], "PC-1", "ffffffffffffffffffffffffffffffff");
        assert_int_equal(seal_record(w, (uint64_t)i, t[i], rec, (size_t)n, s[i], sizeof s[i],
                                     &len[i], err, sizeof err),
                         1);
    }
    struct record a, b, c;
    assert_int_equal(event_decode(s[0], len[0], &a, err, sizeof err), 0);
    assert_int_equal(event_decode(s[1], len[1], &b, err, sizeof err), 0);
    assert_int_equal(event_decode(s[2], len[2], &c, err, sizeof err), 0);
    assert_memory_equal(a.seal.bot_ref, b.seal.bot_ref, 8);
    assert_memory_not_equal(a.seal.bot_ref, c.seal.bot_ref, 8);
    assert_int_equal(a.seal.epoch, T0);
    assert_int_equal(c.seal.epoch, T0 + DAY);
    seal_keyring_free(w);
    rm_rf(dir);
}

/* A bot known only by its address (a passive sinkhole's, no bot key) gets a per-epoch
 * pseudonym too, of the key event_bot_key derives from its address: the same as an identified
 * record carrying that key, another for another address. Without it, contacts --summary could
 * not count such bots once their epoch is erased. */
static void test_bot_ref_by_address(void **state)
{
    (void)state;
    char *dir = make_state();
    struct seal_keyring *w = NULL;
    char err[256];
    assert_int_equal(seal_keyring_open(&w, dir, true, 0, err, sizeof err), 0);
    uint64_t t = (uint64_t)T0 * 1000000u + 1;
    uint8_t rec[EVENT_RECORD_MAX], s[3][4096];
    size_t len[3];
    struct record r[3];
    int n = contact(rec, sizeof rec, t, "", "");
    assert_int_equal(event_decode(rec, (size_t)n, &r[0], err, sizeof err), 0);
    char by_addr[33];
    memset(&r[0].u.contact.bot, 0, sizeof r[0].u.contact.bot); /* its address's key */
    event_bot_key(&r[0].u.contact, by_addr);
    assert_int_equal(
        seal_record(w, 0, t, rec, (size_t)n, s[0], sizeof s[0], &len[0], err, sizeof err), 1);
    n = contact(rec, sizeof rec, t + 5, "", by_addr);
    assert_int_equal(
        seal_record(w, 1, t + 5, rec, (size_t)n, s[1], sizeof s[1], &len[1], err, sizeof err), 1);
    n = contact(rec, sizeof rec, t + 9, "", "");
    assert_int_equal(event_decode(rec, (size_t)n, &r[2], err, sizeof err), 0);
    net_addr_parse_ip("198.51.100.78", &r[2].u.contact.src);
    n = event_encode(&r[2], rec, sizeof rec);
    assert_int_equal(
        seal_record(w, 2, t + 9, rec, (size_t)n, s[2], sizeof s[2], &len[2], err, sizeof err), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(event_decode(s[i], len[i], &r[i], err, sizeof err), 0);
        assert_true(r[i].seal.has_bot_ref);
    }
    assert_memory_equal(r[0].seal.bot_ref, r[1].seal.bot_ref, 8);
    assert_memory_not_equal(r[0].seal.bot_ref, r[2].seal.bot_ref, 8);
    seal_keyring_free(w);
    rm_rf(dir);
}

/* Erased: tombstone, key gone, records read as erased; a key lost and made again gets another
 * id, and the records of the lost key read as "no key", not as damage. */
static void test_erase_and_lost_keys(void **state)
{
    (void)state;
    char *dir = make_state();
    struct seal_keyring *w = NULL, *r = NULL;
    char err[256];
    assert_int_equal(seal_keyring_open(&w, dir, true, 0, err, sizeof err), 0);
    uint8_t rec[EVENT_RECORD_MAX], d1[4096], d2[4096], d3[4096], out[4096];
    size_t l1, l2, l3, olen;
    uint64_t day1 = (uint64_t)T0 * 1000000u + 10, day2 = (uint64_t)(T0 + DAY) * 1000000u + 10;
    int n = contact(rec, sizeof rec, day1, "PC-A", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa");
    assert_int_equal(seal_record(w, 0, day1, rec, (size_t)n, d1, sizeof d1, &l1, err, sizeof err),
                     1);
    n = contact(rec, sizeof rec, day2, "PC-B", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
    assert_int_equal(seal_record(w, 1, day2, rec, (size_t)n, d2, sizeof d2, &l2, err, sizeof err),
                     1);
    seal_keyring_free(w);
    /* the first day only, and only once it ended more than the grace ago */
    size_t erased = 0;
    uint32_t first = 0, last = 0;
    assert_int_equal(seal_epochs_erase(dir, T0 + DAY + 3600, T0 + DAY - 1, T0 + DAY + 3600, &erased,
                                       &first, &last, err, sizeof err),
                     0);
    assert_int_equal(erased, 0); /* ended less than the grace ago */
    assert_int_equal(seal_epochs_erase(dir, T0 + DAY + 3600, T0 + 2 * DAY, T0 + 2 * DAY, &erased,
                                       &first, &last, err, sizeof err),
                     0);
    assert_int_equal(erased, 1);
    assert_int_equal(first, T0);
    assert_int_equal(last, T0 + DAY);
    struct seal_epoch_file *list = NULL;
    size_t nl = 0;
    assert_int_equal(seal_epochs_list(dir, &list, &nl, err, sizeof err), 0);
    assert_int_equal(nl, 2);
    assert_true(list[0].erased && list[0].start == T0 && list[0].erased_at == T0 + 2 * DAY);
    assert_false(list[1].erased);
    free(list);
    assert_int_equal(seal_keyring_open(&r, dir, false, 0, err, sizeof err), 0);
    assert_int_equal(seal_open(r, 0, d1, l1, out, sizeof out, &olen, err, sizeof err), SEAL_ERASED);
    assert_memory_equal(out, d1, l1); /* handed out as it is */
    assert_int_equal(seal_open(r, 1, d2, l2, out, sizeof out, &olen, err, sizeof err), SEAL_OPENED);
    seal_keyring_free(r);
    /* an erased epoch is never written again */
    assert_int_equal(seal_keyring_open(&w, dir, true, 0, err, sizeof err), 0);
    assert_true(seal_record(w, 2, day1 + 5, rec, (size_t)n, d3, sizeof d3, &l3, err, sizeof err) <
                0);
    assert_non_null(strstr(err, "was erased"));
    seal_keyring_free(w);
    /* day 2's key lost; the writer makes another (another id) */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -f %s/keys/epochs/%u-*.key", dir, T0 + DAY);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(seal_keyring_open(&w, dir, true, 0, err, sizeof err), 0);
    assert_int_equal(
        seal_record(w, 3, day2 + 5, rec, (size_t)n, d3, sizeof d3, &l3, err, sizeof err), 1);
    seal_keyring_free(w);
    assert_int_equal(seal_keyring_open(&r, dir, false, 0, err, sizeof err), 0);
    assert_int_equal(seal_open(r, 1, d2, l2, out, sizeof out, &olen, err, sizeof err), SEAL_NO_KEY);
    assert_int_equal(seal_open(r, 3, d3, l3, out, sizeof out, &olen, err, sizeof err), SEAL_OPENED);
    seal_keyring_free(r);
    rm_rf(dir);
}

static void test_epoch_file_parser(void **state)
{
    (void)state;
    struct seal_epoch_file f;
    char err[128];
    static const char good[] = "sinkd epoch key v1\nstart 1796515200\nend 1796601600\nkey "
                               "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n";
    assert_int_equal(seal_epoch_parse(good, strlen(good), &f, err, sizeof err), 0);
    assert_int_equal(f.start, 1796515200u);
    assert_int_equal(f.key[31], 31);
    assert_int_equal(f.key_id, 0xccf7ffe4u);
    static const char tomb[] = "sinkd epoch erased v1\nstart 1796515200\nend 1796601600\nerased "
                               "1797000000\n";
    assert_int_equal(seal_epoch_parse(tomb, strlen(tomb), &f, err, sizeof err), 0);
    assert_true(f.erased);
    const char *bad[] = {
        "sinkd epoch key v2\nstart 1\nend 2\nkey AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "sinkd epoch key v1\nstart 2\nend 1\nkey AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "sinkd epoch key v1\nstart 01\nend 2\nkey AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
        "sinkd epoch key v1\nstart 1\nend 2\nkey AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh==\n",
        "sinkd epoch key v1\nstart 1\nend 2\nkey AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        "sinkd epoch key v1\nstart 1\nend 2\nkey AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\nx",
        "sinkd epoch key v1\nstart 99999999999\nend 2\nkey AAECAwQF\n",
        "sinkd epoch erased v1\nstart 1\nend 2\n",
        "",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (seal_epoch_parse(bad[i], strlen(bad[i]), &f, err, sizeof err) == 0) {
            fail_msg("accepted bad epoch file %zu", i);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_schedule_vectors),
        cmocka_unit_test(test_seal_and_open),
        cmocka_unit_test(test_bot_ref),
        cmocka_unit_test(test_bot_ref_by_address),
        cmocka_unit_test(test_erase_and_lost_keys),
        cmocka_unit_test(test_epoch_file_parser),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
