/* record_fixture.h -- for unit tests that build a registry from hand-made log records: the
 * fixture (a temporary registry), and the decision and command records that remediation tests
 * feed it. Header-only (static inline) so each test links only what it uses. */
#ifndef SINKD_TESTS_RECORD_FIXTURE_H
#define SINKD_TESTS_RECORD_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "registry/registry.h"

struct record_fixture {
    char dir[64];
    char db[128];
    struct registry *reg;
    uint64_t idx; /* log index of the next record */
};

/* Encodes r and applies it as the next log entry. */
static inline void fixture_put(struct record_fixture *fx, const struct record *r)
{
    uint8_t buf[EVENT_RECORD_MAX];
    char err[256];
    int n = event_encode(r, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(registry_apply(fx->reg, fx->idx++, buf, (size_t)n, err, sizeof(err)), 1);
}

/* A remediation decision about the bot with key `key` under authorisation `auth`. */
static inline void fixture_decision(struct record_fixture *fx, uint64_t t, const char key[33],
                                    const char *auth, uint8_t verdict)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = RECORD_DECISION;
    r.u.decision.time_us = t;
    memcpy(r.u.decision.bot_key, key, 33);
    snprintf(r.u.decision.authorisation, sizeof(r.u.decision.authorisation), "%s", auth);
    r.u.decision.verdict = verdict;
    fixture_put(fx, &r);
}

/* A command-sent or command-failed record (kind); error is the failure text or NULL. */
static inline void fixture_command(struct record_fixture *fx, uint64_t t, const char key[33],
                                   const char *auth, uint8_t kind, const char *error)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.kind = kind;
    r.u.command.time_us = t;
    memcpy(r.u.command.bot_key, key, 33);
    snprintf(r.u.command.authorisation, sizeof(r.u.command.authorisation), "%s", auth);
    if (error != NULL) {
        snprintf(r.u.command.error, sizeof(r.u.command.error), "%s", error);
    }
    fixture_put(fx, &r);
}

#endif
