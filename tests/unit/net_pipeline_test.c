/* net_pipeline_test.c -- the evidence writer's worker rings: a burst pages in slots far into the
 * ring, and once load is low again and a rewind has completed, those pages are given back to
 * the kernel while the ring keeps working; the group-commit delay ends with the burst. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <uv.h>

#include "evidence/log.h"
#include "net/pipeline.h"

#define SKEY                                                                                       \
    "PRIVATE+KEY+example.com/testlog+3814a360+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz\n"

struct fixture {
    char dir[64];
    struct evlog *log;
    uv_loop_t loop;
    uv_async_t wake;
    struct pipeline *pipe;
    struct pipe_ring *ring;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/net_pipeline_test.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    char path[160];
    snprintf(path, sizeof path, "%s/keys", f->dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/keys/log.key", f->dir);
    FILE *k = fopen(path, "w");
    assert_non_null(k);
    fputs(SKEY, k);
    fclose(k);
    char err[512];
    struct evlog_options opt = {.origin = "example.com/testlog"};
    if (evlog_open(&f->log, f->dir, &opt, NULL, err, sizeof err) != 0) {
        fail_msg("open: %s", err);
    }
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_async_init(&f->loop, &f->wake, NULL), 0);
    uv_async_t *wakes[1] = {&f->wake};
    if (pipeline_start(&f->pipe, f->log, 1, 8192, wakes, stderr, err, sizeof err) != 0) {
        fail_msg("pipeline: %s", err);
    }
    f->ring = pipeline_ring(f->pipe, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char err[512];
    pipeline_stop(f->pipe);
    pipeline_free(f->pipe);
    assert_int_equal(evlog_close(f->log, err, sizeof err), 0);
    uv_close((uv_handle_t *)&f->wake, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void publish(struct fixture *f, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        struct pipe_slot *slot = pipe_reserve(f->ring);
        assert_non_null(slot);
        slot->owner = NULL;
        slot->kind = 0;
        slot->reply_len = 0;
        slot->record_len = 100;
        memset(slot->record, 'x', 100);
        pipe_publish(f->pipe, f->ring);
    }
}

/* Waits (at most 10 s) until n more slots are durable and releases them. */
static void complete(struct fixture *f, unsigned n)
{
    struct timespec nap = {0, 1000000};
    for (unsigned got = 0, waited = 0; got < n;) {
        if (pipe_next_durable(f->ring) != NULL) {
            pipe_release(f->ring);
            got++;
        } else {
            assert_true(++waited < 10000);
            nanosleep(&nap, NULL);
        }
    }
}

/* Resident pages among the whole pages of slots [from, to). */
static size_t resident(const struct pipe_ring *ring, size_t from, size_t to)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = ((uintptr_t)&ring->slots[from] + page - 1) & ~(page - 1);
    uintptr_t b = (uintptr_t)&ring->slots[to] & ~(page - 1);
    size_t n = (b - a) / page, count = 0;
    unsigned char *vec = malloc(n);
    assert_non_null(vec);
    assert_int_equal(mincore((void *)a, b - a, vec), 0);
    for (size_t i = 0; i < n; i++) {
        count += vec[i] & 1;
    }
    free(vec);
    return count;
}

static void test_burst_pages_given_back(void **state)
{
    struct fixture *f = *state;
    /* A burst: 3,000 records in flight at once, as when a crowd of bots connects together. */
    publish(f, 3000);
    complete(f, 3000);
    size_t lo = PIPE_REWIND_AT + PIPE_RELEASE_MIN, hi = 2990;
    size_t burst = resident(f->ring, lo, hi);
    assert_true(burst > 0);
    /* Low load again: the next record rewinds to slot 0; once the rewind is completed, the
     * slots the burst used beyond PIPE_REWIND_AT are no longer resident. */
    publish(f, 1);
    complete(f, 1);
    assert_int_equal(resident(f->ring, lo, hi), 0);
    /* The ring still works, and low load stays in its first slots. */
    for (int i = 0; i < 2000; i++) {
        publish(f, 1);
        complete(f, 1);
    }
    assert_int_equal(resident(f->ring, lo, hi), 0);
    assert_int_equal(atomic_load(&pipeline_stats(f->pipe)->entries), 5001);
}

/* The group-commit delay pauses only while commits keep finding records waiting: once a burst
 * is committed and the writer has caught up, a lone record is committed at once. */
static void test_commit_delay_ends_with_the_burst(void **state)
{
    struct fixture *f = *state;
    const struct pipeline_stats *st = pipeline_stats(f->pipe);
    pipeline_set_commit_delay(f->pipe, 100000); /* 100 ms: a pause cannot go unnoticed */
    publish(f, 500);
    complete(f, 500);
    assert_true(atomic_load(&st->max_batch) >= 2 * PIPE_DELAY_LOADED);
    struct timespec settle = {0, 200000000}; /* the writer finds nothing left, and idles */
    nanosleep(&settle, NULL);
    uint64_t delayed = atomic_load(&st->delayed);
    for (int i = 0; i < 5; i++) {
        publish(f, 1);
        complete(f, 1);
        nanosleep(&settle, NULL);
    }
    assert_int_equal(atomic_load(&st->delayed), delayed);
    assert_int_equal(atomic_load(&st->entries), 505);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_pages_given_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_delay_ends_with_the_burst, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
