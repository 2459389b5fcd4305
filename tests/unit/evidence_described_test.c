/* evidence_described_test.c -- a heartbeats record naming the leaf that describes its bot is
 * handed out filled in from that leaf by a reader that asks for it, read from the leaf's entry
 * bundle (cached) or, while that is not full, from the journal; a named leaf that cannot tell (its
 * key not here, not a bot's description, not earlier) leaves the record as it is, and a reader that
 * did not ask gets the record as the log holds it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event/event.h"
#include "evidence/described.h"
#include "evidence/log.h"
#include "evlog_fixture.h"

#define S 1000000ull

static bool same_endpoint(const struct net_addr *a, const struct net_addr *b)
{
    return net_addr_equal_ip(a, b) && a->port == b->port;
}

static void append(struct evlog *log, const struct record *rec, uint64_t want)
{
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(rec, buf, sizeof(buf));
    assert_true(n > 0);
    uint64_t idx;
    assert_int_equal(evlog_append(log, buf, (size_t)n, &idx), 0);
    assert_int_equal(idx, want);
}

static struct record poll_contact(void)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = event_now_us();
    snprintf(c->node, sizeof(c->node), "n1");
    assert_int_equal(net_addr_parse_ip("198.51.100.7", &c->src), 0);
    c->src.port = 40000;
    assert_int_equal(net_addr_parse_ip("192.0.2.1", &c->dst), 0);
    c->dst.port = 443;
    c->transport = CONTACT_TRANSPORT_TCP;
    snprintf(c->family, sizeof(c->family), "plugx");
    c->msg_type = CONTACT_MSG_HELLO;
    snprintf(c->cc, sizeof(c->cc), "FR");
    c->asn = 3215;
    c->enrich_id = 7;
    return r;
}

static struct record naming(uint64_t leaf)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_HEARTBEATS;
    struct heartbeats *h = &r.u.heartbeats;
    h->time_us = event_now_us();
    h->first_time_us = h->time_us - S;
    h->count = 12;
    memset(h->heartbeats_sha256, 0xAB, 32);
    snprintf(h->cc, sizeof(h->cc), "FR");
    h->asn = 3215;
    h->described_in = leaf;
    return r;
}

/* Reads entries from `start` (filled in when `fill`); returns entry `want` decoded. */
static struct record read_at(const char *dir, uint64_t start, bool fill, uint64_t want)
{
    struct evlog_reader *r = NULL;
    char err[256];
    assert_int_equal(evlog_reader_open(&r, dir, start, err, sizeof(err)), 0);
    if (fill) {
        assert_int_equal(evlog_reader_fill_described(r), 0);
    }
    const uint8_t *e;
    size_t len;
    uint64_t idx;
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    int rc;
    while ((rc = evlog_reader_next(r, &e, &len, &idx, err, sizeof(err))) == 1) {
        if (idx == want) {
            assert_int_equal(event_decode(e, len, &rec, err, sizeof(err)), 0);
            break;
        }
    }
    assert_int_equal(rc, 1);
    evlog_reader_close(r);
    return rec;
}

/* Reads entry `want` as the log holds it (opened) and hands it to a described of its own. */
static struct record pass_through(struct described *d, const char *dir, uint64_t want)
{
    struct evlog_reader *r = NULL;
    char err[256];
    assert_int_equal(evlog_reader_open(&r, dir, want, err, sizeof(err)), 0);
    const uint8_t *e;
    size_t len;
    uint64_t idx;
    assert_int_equal(evlog_reader_next(r, &e, &len, &idx, err, sizeof(err)), 1);
    assert_int_equal(idx, want);
    assert_int_equal(described_pass(d, idx, &e, &len, err, sizeof(err)), 1);
    struct record rec;
    assert_int_equal(event_decode(e, len, &rec, err, sizeof(err)), 0);
    evlog_reader_close(r);
    return rec;
}

static void test_filled_in(void **state)
{
    (void)state;
    char *dir = evlog_fixture_state("evidence_described_test");
    struct evlog_options opt = {.origin = "example.com/testlog", .checkpoint_entries = 1};
    struct evlog *log = NULL;
    char err[256];
    assert_int_equal(evlog_open(&log, dir, &opt, NULL, err, sizeof(err)), 0);
    struct record note;
    memset(&note, 0, sizeof(note));
    note.kind = RECORD_NODE_STARTED;
    note.u.note.time_us = event_now_us();
    snprintf(note.u.note.node, sizeof(note.u.note.node), "n1");
    append(log, &note, 0);
    struct record first = poll_contact();
    append(log, &first, 1);
    struct record named = naming(1);
    append(log, &named, 2);
    struct record of_naming = naming(2); /* names a record that describes nobody */
    append(log, &of_naming, 3);
    struct record later = naming(9); /* names no earlier leaf */
    append(log, &later, 4);
    /* Past the first full entry bundle, then a leaf and its naming record in the partial one. */
    for (uint64_t i = 5; i < 300; i++) {
        append(log, &note, i);
    }
    struct record fresh = poll_contact();
    fresh.u.contact.src.port = 40002;
    append(log, &fresh, 300);
    struct record named_fresh = naming(300);
    append(log, &named_fresh, 301);
    assert_int_equal(evlog_commit(log, err, sizeof(err)), 0);
    assert_true(evlog_checkpoint(log, 0, err, sizeof(err)) >= 0);
    assert_int_equal(evlog_close(log, err, sizeof(err)), 0);

    /* From the start: filled in from the leaf; the leaf's port, its own counts. */
    struct record got = read_at(dir, 0, true, 2);
    struct heartbeats *h = &got.u.heartbeats;
    assert_int_equal(got.kind, RECORD_HEARTBEATS);
    assert_string_equal(h->node, "n1");
    assert_true(same_endpoint(&h->src, &first.u.contact.src));
    assert_true(same_endpoint(&h->dst, &first.u.contact.dst));
    assert_int_equal(h->transport, CONTACT_TRANSPORT_TCP);
    assert_string_equal(h->family, "plugx");
    assert_int_equal(h->enrich_id, 7);
    assert_int_equal(h->count, 12);
    assert_int_equal(h->described_in, 1);
    /* A reader that starts after the leaf reads it from the log all the same. */
    got = read_at(dir, 2, true, 2);
    assert_true(same_endpoint(&got.u.heartbeats.src, &first.u.contact.src));
    assert_string_equal(got.u.heartbeats.family, "plugx");
    got = read_at(dir, 301, true, 301);
    assert_true(same_endpoint(&got.u.heartbeats.src, &fresh.u.contact.src));
    /* Not asked: as the log holds it. */
    got = read_at(dir, 0, false, 2);
    assert_int_equal(got.u.heartbeats.src.family, 0);
    assert_string_equal(got.u.heartbeats.family, "");
    /* Names what describes nobody, or no earlier leaf: as it is. */
    got = read_at(dir, 0, true, 3);
    assert_int_equal(got.u.heartbeats.src.family, 0);
    got = read_at(dir, 0, true, 4);
    assert_int_equal(got.u.heartbeats.src.family, 0);
    assert_int_equal(got.u.heartbeats.count, 12);

    /* Where the leaves come from: a full entry bundle, read once and then cached; the journal
     * while the leaf's bundle is not full. */
    struct described *d = described_new(dir);
    assert_non_null(d);
    struct described_stats st;
    got = pass_through(d, dir, 2);
    assert_string_equal(got.u.heartbeats.family, "plugx");
    got = pass_through(d, dir, 2);
    assert_string_equal(got.u.heartbeats.node, "n1");
    described_stats(d, &st);
    assert_int_equal(st.filled, 2);
    assert_int_equal(st.bundle_reads, 1);
    assert_int_equal(st.journal_reads, 0);
    got = pass_through(d, dir, 301);
    assert_int_equal(got.u.heartbeats.src.port, 40002);
    got = pass_through(d, dir, 3);
    described_stats(d, &st);
    assert_int_equal(st.journal_reads, 1);
    assert_int_equal(st.filled, 3);
    assert_int_equal(st.unfilled, 1);
    described_free(d);

    /* Without the epoch keys the leaf cannot say who: the record stays as it is. */
    char keys[160], away[160];
    snprintf(keys, sizeof(keys), "%s/keys/epochs", dir);
    snprintf(away, sizeof(away), "%s/epochs.away", dir);
    assert_int_equal(rename(keys, away), 0);
    got = read_at(dir, 0, true, 2);
    assert_int_equal(got.u.heartbeats.src.family, 0);
    assert_string_equal(got.u.heartbeats.node, "");
    got = read_at(dir, 300, true, 301);
    assert_int_equal(got.u.heartbeats.src.family, 0);
    evlog_fixture_rm(dir);
}

/* The pure fill: from a poll's contact or a describing heartbeats record only. */
static void test_fill(void **state)
{
    (void)state;
    struct record leaf = poll_contact();
    struct heartbeats hb = naming(1).u.heartbeats;
    assert_int_equal(described_fill(&hb, &leaf), 0);
    assert_string_equal(hb.family, "plugx");
    assert_int_equal(hb.src.port, 40000);
    leaf.u.contact.msg_type = CONTACT_MSG_MACHINE_INFO;
    assert_int_equal(described_fill(&hb, &leaf), -1);
    struct record hbleaf = naming(0);
    assert_int_equal(described_fill(&hb, &hbleaf), -1); /* describes nobody: no address */
    hbleaf.u.heartbeats.src = leaf.u.contact.src;
    assert_int_equal(described_fill(&hb, &hbleaf), 0);
    hbleaf.u.heartbeats.described_in = 3; /* itself a naming record */
    assert_int_equal(described_fill(&hb, &hbleaf), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_filled_in),
        cmocka_unit_test(test_fill),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
