/* registry_claims_test.c -- the remediation once-per-bot rule across nodes (registry.h claims):
 * one node holds each (bot, authorisation); asking again is safe; two nodes racing over the same
 * bots get one winner per pair; a lost or stuck database fails the claim (closed: no send) within
 * the timeout, and a claim after the stuck one's answer came works again. Run on SQLite and, as
 * registry_claims_test_pg, on a real PostgreSQL (tests/unit/registry_target.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry/registry.h"
#include "registry_target.h"

#define KEYS 300

static void tmp_target(char *out, size_t cap)
{
    char dir[] = "/tmp/sinkd-claims-XXXXXX";
    assert_non_null(mkdtemp(dir));
    test_registry_target(out, cap, dir);
}

static void key_of(unsigned i, char out[33])
{
    snprintf(out, 33, "%08x%024x", 0xb0700000u + i, i * 7u);
}

static struct registry_claims *open_node(const char *target, const char *node)
{
    char err[256];
    struct registry_claims *c = NULL;
    int rc = registry_claims_open(&c, target, node, err, sizeof(err));
    if (rc != 0) {
        fail_msg("registry_claims_open: %s", err);
    }
    return c;
}

static void test_one_holder(void **state)
{
    (void)state;
    char target[256], err[256], holder[64], key[33];
    tmp_target(target, sizeof(target));
    struct registry_claims *a = open_node(target, "node-a"), *b = open_node(target, "node-b");
    key_of(1, key);
    assert_int_equal(
        registry_claim_command(a, key, "auth-1", 1000, holder, sizeof(holder), err, sizeof(err)),
        1);
    assert_string_equal(holder, "node-a");
    /* The bot moved to node b: b may not command it again under the same authorisation. */
    assert_int_equal(
        registry_claim_command(b, key, "auth-1", 2000, holder, sizeof(holder), err, sizeof(err)),
        0);
    assert_string_equal(holder, "node-a");
    /* Asking again (a retry, a second session on a) is answered the same. */
    assert_int_equal(registry_claim_command(a, key, "auth-1", 3000, NULL, 0, err, sizeof(err)), 1);
    /* Another authorisation is another claim; "" is one too. */
    assert_int_equal(registry_claim_command(b, key, "auth-2", 4000, NULL, 0, err, sizeof(err)), 1);
    assert_int_equal(
        registry_claim_command(a, key, "auth-2", 5000, holder, sizeof(holder), err, sizeof(err)),
        0);
    assert_string_equal(holder, "node-b");
    assert_int_equal(registry_claim_command(a, key, "", 6000, NULL, 0, err, sizeof(err)), 1);
    /* A claim survives its node's connection: a new handle of b still finds a's. */
    registry_claims_close(b);
    b = open_node(target, "node-b");
    assert_int_equal(
        registry_claim_command(b, key, "auth-1", 7000, holder, sizeof(holder), err, sizeof(err)),
        0);
    assert_string_equal(holder, "node-a");
    /* Bad input is an error, never a claim. */
    assert_true(registry_claim_command(a, "not-a-key", "auth-1", 1, NULL, 0, err, sizeof(err)) < 0);
    assert_non_null(strstr(err, "not a bot key"));
    struct registry_claims *bad = NULL;
    assert_true(registry_claims_open(&bad, target, "", err, sizeof(err)) < 0);
    assert_true(registry_claims_open(&bad, target, "a-node-name-longer-than-31-chars", err,
                                     sizeof(err)) < 0);
    assert_null(bad);
    registry_claims_close(a);
    registry_claims_close(b);
}

struct racer {
    const char *target, *node;
    int won[KEYS];
    int errors;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct registry_claims *c = NULL;
    char err[256], key[33];
    if (registry_claims_open(&c, r->target, r->node, err, sizeof(err)) != 0) {
        r->errors = KEYS;
        return NULL;
    }
    for (unsigned i = 0; i < KEYS; i++) {
        key_of(1000 + i, key);
        int rc = registry_claim_command(c, key, "auth-1", i, NULL, 0, err, sizeof(err));
        if (rc < 0) {
            r->errors++;
        } else {
            r->won[i] = rc;
        }
    }
    registry_claims_close(c);
    return NULL;
}

/* Two nodes decide for the same bots at the same moment: each pair has exactly one holder. */
static void test_race(void **state)
{
    (void)state;
    char target[256];
    tmp_target(target, sizeof(target));
    /* Make the table before the race (SQLite: one writer at a time, opened in turn). */
    registry_claims_close(open_node(target, "node-a"));
    static struct racer a, b;
    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    a.target = b.target = target;
    a.node = "node-a";
    b.node = "node-b";
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, race, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, race, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (test_registry_is_pg()) {
        assert_int_equal(a.errors + b.errors, 0);
    }
    int both = 0, none = 0, wa = 0;
    for (int i = 0; i < KEYS; i++) {
        both += a.won[i] && b.won[i];
        none += !a.won[i] && !b.won[i];
        wa += a.won[i];
    }
    assert_int_equal(both, 0);
    /* On SQLite a claim that met the other writer's lock fails (closed): no winner, never two. */
    if (test_registry_is_pg()) {
        assert_int_equal(none, 0);
    }
    printf("race: node-a won %d, node-b %d of %d pairs\n", wa, KEYS - wa - none, KEYS);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* PostgreSQL only: a claim that cannot be answered fails within the timeout, and the next one,
 * once the database answers again, works; a lost connection fails every claim. */
static void test_fail_closed(void **state)
{
    (void)state;
    if (!test_registry_is_pg()) {
        skip();
    }
    char target[256], err[256], key[33], sql[256];
    tmp_target(target, sizeof(target));
    struct registry_claims *a = open_node(target, "node-a");
    key_of(7, key);
    /* Another session inserts the same pair and keeps its transaction open: a's insert waits on
     * it (what a stuck node or a paused database looks like from a). */
    PGconn *blocker = PQconnectdb(target);
    assert_int_equal(PQstatus(blocker), CONNECTION_OK);
    snprintf(sql, sizeof(sql),
             "BEGIN; INSERT INTO command_claim VALUES(decode('%s', 'hex'), 'auth-1', 'node-x',"
             " 1)",
             key);
    PGresult *r = PQexec(blocker, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    double t0 = now_s();
    assert_true(registry_claim_command(a, key, "auth-1", 1, NULL, 0, err, sizeof(err)) < 0);
    double waited = now_s() - t0;
    assert_true(waited >= REGISTRY_CLAIM_TIMEOUT_MS / 1000.0 * 0.9);
    assert_true(waited < REGISTRY_CLAIM_TIMEOUT_MS / 1000.0 + 3);
    /* The blocker gives up its row: the pair is free, and a's next claim gets it. */
    r = PQexec(blocker, "ROLLBACK");
    PQclear(r);
    char holder[64];
    int rc = -1;
    for (int i = 0; i < 50 && rc < 0; i++) { /* the earlier answer may take a moment */
        rc = registry_claim_command(a, key, "auth-1", 2, holder, sizeof(holder), err, sizeof(err));
        if (rc < 0) {
            usleep(100000);
        }
    }
    assert_int_equal(rc, 1);
    /* The database process stops answering (SIGSTOP: a paused or wedged server, whose own
     * statement timeout cannot fire): the claim fails at the client's deadline; once the
     * process runs again, the late answer is read and dropped, and claims work again. */
    r = PQexec(blocker, "SELECT pid FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
                        " AND datname = current_database()");
    assert_int_equal(PQntuples(r), 1);
    pid_t backend = (pid_t)atoi(PQgetvalue(r, 0, 0));
    PQclear(r);
    assert_int_equal(kill(backend, SIGSTOP), 0);
    key_of(9, key);
    t0 = now_s();
    rc = registry_claim_command(a, key, "auth-1", 5, NULL, 0, err, sizeof(err));
    waited = now_s() - t0;
    kill(backend, SIGCONT);
    assert_true(rc < 0);
    assert_non_null(strstr(err, "no answer"));
    assert_true(waited >= REGISTRY_CLAIM_TIMEOUT_MS / 1000.0 * 0.9);
    assert_true(waited < REGISTRY_CLAIM_TIMEOUT_MS / 1000.0 + 1);
    rc = -1;
    for (int i = 0; i < 50 && rc < 0; i++) {
        rc = registry_claim_command(a, key, "auth-1", 6, holder, sizeof(holder), err, sizeof(err));
        if (rc < 0) {
            usleep(100000);
        }
    }
    /* The timed-out claim may have reached the table before the stop: held by a either way. */
    assert_int_equal(rc, 1);
    /* The connection is cut: every claim fails from now on (closed), quickly. */
    r = PQexec(blocker, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE pid <> pg_backend_pid() AND datname = current_database()");
    PQclear(r);
    PQfinish(blocker);
    key_of(8, key);
    t0 = now_s();
    assert_true(registry_claim_command(a, key, "auth-1", 3, NULL, 0, err, sizeof(err)) < 0);
    assert_true(now_s() - t0 < REGISTRY_CLAIM_TIMEOUT_MS / 1000.0 + 1);
    assert_true(registry_claim_command(a, key, "auth-1", 4, NULL, 0, err, sizeof(err)) < 0);
    registry_claims_close(a);
}

struct waiting_claim {
    struct registry_claims *c;
    char key[33];
    char holder[64];
    int rc;
};

static void *claim_thread(void *arg)
{
    struct waiting_claim *w = arg;
    char err[256];
    w->rc = registry_claim_command(w->c, w->key, "auth-1", 1, w->holder, sizeof(w->holder), err,
                                   sizeof(err));
    return NULL;
}

/* PostgreSQL only: another node's claim commits while this node's claim waits on its row. The
 * waiting statement's own snapshot does not show it; the claim must still name the other node,
 * not fail and not win. */
static void test_claim_committed_meanwhile(void **state)
{
    (void)state;
    if (!test_registry_is_pg()) {
        skip();
    }
    char target[256], sql[256];
    tmp_target(target, sizeof(target));
    static struct waiting_claim w;
    memset(&w, 0, sizeof(w));
    w.c = open_node(target, "node-a");
    key_of(11, w.key);
    PGconn *other = PQconnectdb(target);
    snprintf(sql, sizeof(sql),
             "BEGIN; INSERT INTO command_claim VALUES(decode('%s', 'hex'), 'auth-1', 'node-b', 1)",
             w.key);
    PGresult *r = PQexec(other, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, claim_thread, &w), 0);
    usleep(300000);
    PQclear(PQexec(other, "COMMIT"));
    pthread_join(t, NULL);
    assert_int_equal(w.rc, 0);
    assert_string_equal(w.holder, "node-b");
    PQfinish(other);
    registry_claims_close(w.c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_holder),
        cmocka_unit_test(test_race),
        cmocka_unit_test(test_fail_closed),
        cmocka_unit_test(test_claim_committed_meanwhile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
