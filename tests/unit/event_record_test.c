/* event_record_test.c -- canonical record encoding: round trips, canonical form, hostile input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event/event.h"

static struct record sample_contact(void)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_CONTACT;
    struct contact *c = &r.u.contact;
    c->time_us = 1732353313123456ull;
    strcpy(c->node, "node-1");
    net_addr_parse_ip("198.51.100.7", &c->src);
    c->src.port = 49152;
    net_addr_parse_ip("2001:db8::443", &c->dst);
    c->dst.port = 443;
    c->transport = CONTACT_TRANSPORT_HTTP;
    strcpy(c->family, "plugx");
    c->command = 0x1001;
    c->msg_type = CONTACT_MSG_MACHINE_INFO;
    strcpy(c->bot.host, "DESKTOP-7F3K2Q");
    strcpy(c->bot.user, "ad\xc3\xa9le"); /* UTF-8 survives */
    strcpy(c->bot.os, "6.1.7601 SP1");
    strcpy(c->bot.local_ip, "192.168.1.23");
    strcpy(c->bot.campaign, "usb-worm");
    strcpy(c->bot.version, "20190301");
    event_bot_key(c, c->bot_key);
    memset(c->body_sha256, 0xab, 32);
    strcpy(c->cc, "NG");
    c->asn = 36873;
    strcpy(c->tags, "hospital");
    c->enrich_id = 0xdeadbeef;
    return r;
}

static void test_contact_round_trip(void **state)
{
    (void)state;
    struct record in = sample_contact();
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&in, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(buf[0], EVENT_RECORD_VERSION);
    assert_int_equal(buf[1], RECORD_CONTACT);
    struct record out;
    char err[128];
    assert_int_equal(event_decode(buf, (size_t)n, &out, err, sizeof(err)), 0);
    assert_memory_equal(&in, &out, sizeof(in));
    /* Canonical: re-encoding gives the same bytes. */
    uint8_t again[EVENT_RECORD_MAX];
    assert_int_equal(event_encode(&out, again, sizeof(again)), n);
    assert_memory_equal(buf, again, (size_t)n);
}

static void test_every_kind_round_trips(void **state)
{
    (void)state;
    for (uint8_t kind = RECORD_DECISION; kind <= RECORD_PORTAL_DECISION; kind++) {
        struct record in;
        memset(&in, 0, sizeof(in));
        in.kind = kind;
        if (kind == RECORD_DECISION) {
            in.u.decision.time_us = 5;
            strcpy(in.u.decision.bot_key, "00112233445566778899aabbccddeeff");
            strcpy(in.u.decision.authorisation, "fr-2024-07");
            in.u.decision.verdict = VERDICT_DRY_RUN;
            in.u.decision.command = 0x1005;
            memset(in.u.decision.policy_sha256, 7, 32);
        } else if (kind == RECORD_COMMAND_SENT || kind == RECORD_COMMAND_FAILED) {
            in.u.command.time_us = 6;
            in.u.command.command = 0x1005;
            strcpy(in.u.command.error, kind == RECORD_COMMAND_FAILED ? "reset" : "");
            in.u.command.action = ACTION_COLLECT;
        } else if (kind == RECORD_HEARTBEATS) {
            struct heartbeats *h = &in.u.heartbeats;
            h->time_us = 9;
            h->first_time_us = 8;
            net_addr_parse_ip("203.0.113.9", &h->src);
            h->transport = CONTACT_TRANSPORT_HTTP_HEADER;
            strcpy(h->family, "plugx");
            strcpy(h->bot_key, "00112233445566778899aabbccddeeff");
            strcpy(h->cc, "IN");
            h->count = 60;
            memset(h->heartbeats_sha256, 3, 32);
        } else if (kind == RECORD_ACCESS) {
            struct access_record *a = &in.u.access;
            a->time_us = 10;
            strcpy(a->operator_name, "portal:ng-cert");
            strcpy(a->what, "GET /api/v1/victims?format=csv");
            strcpy(a->scope, "countries=NG");
            a->rows = 1ull << 40;
            memset(a->output_sha256, 4, 32);
            strcpy(a->justification, "case 2024/117");
        } else if (kind == RECORD_ERASURE) {
            struct erasure_record *e = &in.u.erasure;
            e->time_us = 11;
            e->before_us = 1;
            strcpy(e->operator_name, "dpo");
            strcpy(e->legal_basis, "retention: 180 days");
            strcpy(e->detail, "epochs 2024-07-01..2024-07-09");
        } else if (kind == RECORD_PORTAL_REQUEST || kind == RECORD_PORTAL_DECISION) {
            struct portal_request_record *r = &in.u.portal_request;
            r->time_us = 12;
            strcpy(r->operator_name, kind == RECORD_PORTAL_REQUEST ? "portal:ng-cert" : "alice");
            strcpy(r->authority, "ng-cert");
            r->request_id = 3;
            strcpy(r->scope, "countries=NG networks=102.88.0.0/15");
            r->not_before_us = 1;
            r->not_after_us = 2;
            strcpy(r->legal_reference, "FHC/L/CS/1/2026");
            r->state =
                kind == RECORD_PORTAL_REQUEST ? PORTAL_REQUEST_SUBMITTED : PORTAL_REQUEST_APPROVED;
            strcpy(r->authorisation, "portal-3-*");
            memset(r->policy_sha256, 5, 32);
        } else {
            in.u.note.time_us = 7;
            strcpy(in.u.note.detail, "{\"listen\":[\"127.0.0.1:443\"]}");
            in.u.note.id = 3;
        }
        uint8_t buf[EVENT_RECORD_MAX];
        int n = event_encode(&in, buf, sizeof(buf));
        assert_true(n > 2);
        struct record out;
        assert_int_equal(event_decode(buf, (size_t)n, &out, NULL, 0), 0);
        assert_memory_equal(&in, &out, sizeof(in));
        assert_string_not_equal(event_kind_name(kind), "unknown");
    }
}

static void test_decode_rejects_non_canonical(void **state)
{
    (void)state;
    struct record in = sample_contact();
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&in, buf, sizeof(buf));
    struct record out;
    char err[128];

    uint8_t bad[EVENT_RECORD_MAX];
    memcpy(bad, buf, (size_t)n);
    bad[0] = 2; /* unknown version */
    assert_int_equal(event_decode(bad, (size_t)n, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "version"));

    memcpy(bad, buf, (size_t)n);
    bad[1] = 99; /* unknown kind */
    assert_int_equal(event_decode(bad, (size_t)n, &out, err, sizeof(err)), -1);

    /* A truncation inside a field is refused; one at a field boundary decodes to a shorter,
     * different record (the log's own length framing is what detects that), never to the
     * original and never by reading past the end (ASan watches). */
    int refused = 0;
    for (int cut = 0; cut < n; cut++) {
        uint8_t *copy = malloc((size_t)cut + 1);
        memcpy(copy, buf, (size_t)cut);
        int rc = event_decode(copy, (size_t)cut, &out, err, sizeof(err));
        if (rc == 0) {
            assert_memory_not_equal(&in, &out, sizeof(in));
        } else {
            refused++;
        }
        free(copy);
    }
    assert_true(refused > n - 30);

    /* Fields out of order (swap the first two fields) are refused. */
    size_t f1 = 2, l1 = 3 + ((size_t)buf[3] << 8 | buf[4]);
    size_t f2 = f1 + l1, l2 = 3 + ((size_t)buf[f2 + 1] << 8 | buf[f2 + 2]);
    memcpy(bad, buf, (size_t)n);
    memcpy(bad + f1, buf + f2, l2);
    memcpy(bad + f1 + l2, buf + f1, l1);
    assert_int_equal(event_decode(bad, (size_t)n, &out, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "order"));

    /* A string holding a NUL is refused. */
    memcpy(bad, buf, (size_t)n);
    size_t node_value = f2 + 3; /* field 2 = node */
    assert_int_equal(buf[f2], 2);
    bad[node_value] = 0;
    assert_int_equal(event_decode(bad, (size_t)n, &out, err, sizeof(err)), -1);
}

static void test_encode_refuses_small_buffer(void **state)
{
    (void)state;
    struct record in = sample_contact();
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&in, buf, sizeof(buf));
    assert_int_equal(event_encode(&in, buf, (size_t)n - 1), -1);
}

static void test_bot_key_stable_and_identity_based(void **state)
{
    (void)state;
    struct record a = sample_contact();
    struct record b = sample_contact();
    char ka[33], kb[33];
    b.u.contact.src.ip[3] ^= 1; /* same machine from another address */
    b.u.contact.time_us++;
    event_bot_key(&a.u.contact, ka);
    event_bot_key(&b.u.contact, kb);
    assert_string_equal(ka, kb);
    assert_int_equal(strlen(ka), 32);
    strcpy(b.u.contact.bot.host, "OTHER-PC");
    event_bot_key(&b.u.contact, kb);
    assert_string_not_equal(ka, kb);
    /* Without identity the key follows the source address. */
    memset(&a.u.contact.bot, 0, sizeof(a.u.contact.bot));
    memset(&b.u.contact.bot, 0, sizeof(b.u.contact.bot));
    event_bot_key(&a.u.contact, ka);
    event_bot_key(&b.u.contact, kb);
    assert_string_not_equal(ka, kb);
}

static void test_undecoded_contact(void **state)
{
    (void)state;
    struct record in = sample_contact();
    struct contact *c = &in.u.contact;
    c->msg_type = CONTACT_MSG_UNDECODED;
    memset(&c->bot, 0, sizeof(c->bot));
    c->command = 0;
    c->size = 5000;
    c->head_len = CONTACT_HEAD_MAX;
    memset(c->head_sha256, 0x5a, 32);
    strcpy(c->reason, "no cipher family decrypts this");
    c->suppressed = 12;
    uint8_t buf[EVENT_RECORD_MAX];
    int n = event_encode(&in, buf, sizeof(buf));
    assert_true(n > 0);
    struct record out;
    assert_int_equal(event_decode(buf, (size_t)n, &out, NULL, 0), 0);
    assert_memory_equal(&in, &out, sizeof(in));
    json_t *o = event_to_json(&out);
    assert_string_equal(json_string_value(json_object_get(o, "type")), "undecoded");
    assert_int_equal(json_integer_value(json_object_get(o, "size")), 5000);
    assert_int_equal(json_integer_value(json_object_get(o, "suppressed")), 12);
    json_decref(o);
    /* A decoded contact does not carry the undecoded caller's fields in its JSON. */
    struct record plain = sample_contact();
    o = event_to_json(&plain);
    assert_null(json_object_get(o, "size"));
    assert_null(json_object_get(o, "reason"));
    json_decref(o);
}

static void test_json_of_new_kinds(void **state)
{
    (void)state;
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_DECISION;
    r.u.decision.time_us = 1;
    r.u.decision.verdict = VERDICT_ALREADY_REHEARSED;
    json_t *o = event_to_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "action")), "uninstall");
    assert_string_equal(json_string_value(json_object_get(o, "verdict")), "already-rehearsed");
    json_decref(o);
    r.u.decision.action = ACTION_COLLECT;
    o = event_to_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "action")), "collect");
    json_decref(o);

    memset(&r, 0, sizeof(r));
    r.kind = RECORD_HEARTBEATS;
    r.u.heartbeats.time_us = 1732353313123456ull;
    r.u.heartbeats.first_time_us = 1732353253123456ull;
    r.u.heartbeats.count = 2;
    r.u.heartbeats.transport = CONTACT_TRANSPORT_HTTP_HEADER;
    o = event_to_json(&r);
    assert_string_equal(json_string_value(json_object_get(o, "kind")), "heartbeats");
    assert_string_equal(json_string_value(json_object_get(o, "first_time")),
                        "2024-11-23T09:14:13.123456Z");
    assert_string_equal(json_string_value(json_object_get(o, "transport")), "http-header");
    assert_int_equal(json_integer_value(json_object_get(o, "count")), 2);
    json_decref(o);

    memset(&r, 0, sizeof(r));
    r.kind = RECORD_ACCESS;
    r.u.access.rows = 42;
    o = event_to_json(&r);
    assert_int_equal(json_integer_value(json_object_get(o, "rows")), 42);
    json_decref(o);
}

static void test_json_rendering(void **state)
{
    (void)state;
    struct record in = sample_contact();
    json_t *o = event_to_json(&in);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "src_ip")), "198.51.100.7");
    assert_int_equal(json_integer_value(json_object_get(o, "src_port")), 49152);
    assert_string_equal(json_string_value(json_object_get(o, "dst_ip")), "2001:db8::443");
    assert_string_equal(json_string_value(json_object_get(o, "transport")), "http");
    assert_string_equal(json_string_value(json_object_get(o, "type")), "machine-info");
    assert_string_equal(json_string_value(json_object_get(o, "command")), "0x1001");
    assert_string_equal(json_string_value(json_object_get(o, "time")),
                        "2024-11-23T09:15:13.123456Z");
    assert_string_equal(json_string_value(json_object_get(o, "user")), "ad\xc3\xa9le");
    json_decref(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contact_round_trip),
        cmocka_unit_test(test_every_kind_round_trips),
        cmocka_unit_test(test_decode_rejects_non_canonical),
        cmocka_unit_test(test_encode_refuses_small_buffer),
        cmocka_unit_test(test_bot_key_stable_and_identity_based),
        cmocka_unit_test(test_json_rendering),
        cmocka_unit_test(test_undecoded_contact),
        cmocka_unit_test(test_json_of_new_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
