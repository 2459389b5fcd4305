/* enrich_swap_test.c -- the reload handle: references keep swapped-out tables alive until their
 * last reader releases them, and readers keep looking up while another thread swaps many times
 * (run under ASan: a use after free or a leak fails the test). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "enrich/enrich.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define GENERATIONS 4 /* distinct tag files; swaps cycle through them */
#define SWAPS 300
#define READERS 3

static char dir[] = "/tmp/enrich_swap_test_XXXXXX";
static char tag_paths[GENERATIONS][4200];

static int setup(void **state)
{
    (void)state;
    if (mkdtemp(dir) == NULL) {
        return -1;
    }
    for (int g = 0; g < GENERATIONS; g++) {
        snprintf(tag_paths[g], sizeof(tag_paths[g]), "%s/gen%d.csv", dir, g);
        FILE *f = fopen(tag_paths[g], "w");
        if (f == NULL) {
            return -1;
        }
        /* Many prefixes so each table is a few allocations worth freeing. */
        for (int i = 0; i < 200; i++) {
            fprintf(f, "10.%d.0.0/16,gen%d\n", i, g);
        }
        fclose(f);
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static struct enrich_tables *load_gen(int g)
{
    char err[256];
    struct enrich_tables *t = NULL;
    const char *tags[] = {tag_paths[g], NULL};
    struct enrich_config cfg = {NULL, NULL, NULL, tags, NULL, NULL};
    assert_int_equal(enrich_load(&t, &cfg, err, sizeof(err)), 0);
    return t;
}

static void lookup_tags(const struct enrich_tables *t, const char *ip, char out[ENRICH_TAGS_MAX])
{
    struct net_addr a;
    struct enrich_result r;
    net_addr_parse_ip(ip, &a);
    enrich_lookup(t, &a, &r);
    memcpy(out, r.tags, ENRICH_TAGS_MAX);
}

static void test_reference_outlives_swap(void **state)
{
    (void)state;
    struct enrich_handle h;
    char tags[ENRICH_TAGS_MAX];
    enrich_handle_init(&h, NULL);
    assert_null(enrich_handle_acquire(&h)); /* no tables yet */
    enrich_handle_swap(&h, load_gen(0));
    const struct enrich_tables *a = enrich_handle_acquire(&h);
    const struct enrich_tables *a2 = enrich_handle_acquire(&h);
    assert_non_null(a);
    assert_ptr_equal(a, a2);
    enrich_handle_swap(&h, load_gen(1));
    const struct enrich_tables *b = enrich_handle_acquire(&h);
    assert_ptr_not_equal(a, b);
    /* a is no longer current but still held twice: still readable. */
    lookup_tags(a, "10.7.0.1", tags);
    assert_string_equal(tags, "gen0");
    enrich_handle_release(&h, a);
    lookup_tags(a2, "10.7.0.1", tags);
    assert_string_equal(tags, "gen0");
    enrich_handle_release(&h, a2); /* last reference: freed here (ASan/LSan check) */
    lookup_tags(b, "10.7.0.1", tags);
    assert_string_equal(tags, "gen1");
    /* Destroy while b is held: b lives until released. */
    enrich_handle_destroy(&h);
    lookup_tags(b, "10.7.0.1", tags);
    assert_string_equal(tags, "gen1");
    enrich_handle_release(&h, b);
    assert_null(enrich_handle_acquire(&h));
}

struct reader {
    struct enrich_handle *h;
    volatile int *stop;
    long lookups, mismatches, nulls;
};

static void *reader_main(void *arg)
{
    struct reader *r = arg;
    char first[ENRICH_TAGS_MAX], again[ENRICH_TAGS_MAX];
    unsigned i = 0;
    /* Bounded in count as well as by the stop flag. */
    while (!*r->stop && r->lookups < 50000000) {
        const struct enrich_tables *t = enrich_handle_acquire(r->h);
        if (t == NULL) {
            r->nulls++;
            continue;
        }
        char ip[32];
        snprintf(ip, sizeof(ip), "10.%u.1.2", i++ % 200);
        lookup_tags(t, ip, first);
        if ((i & 63) == 0) {
            sched_yield(); /* hold the reference across a likely swap */
        }
        lookup_tags(t, ip, again);
        /* One table gives one answer, and it is one of the generations. */
        if (strcmp(first, again) != 0 || strncmp(first, "gen", 3) != 0) {
            r->mismatches++;
        }
        enrich_handle_release(r->h, t);
        r->lookups += 2;
    }
    return NULL;
}

static void test_swap_under_concurrent_readers(void **state)
{
    (void)state;
    struct enrich_handle h;
    volatile int stop = 0;
    pthread_t tid[READERS];
    struct reader readers[READERS];
    enrich_handle_init(&h, load_gen(0));
    for (int i = 0; i < READERS; i++) {
        readers[i] = (struct reader){&h, &stop, 0, 0, 0};
        assert_int_equal(pthread_create(&tid[i], NULL, reader_main, &readers[i]), 0);
    }
    for (int s = 1; s <= SWAPS; s++) {
        /* Fresh tables each time: ownership passes to the handle, the old ones get freed. */
        enrich_handle_swap(&h, load_gen(s % GENERATIONS));
        if (s % 10 == 0) {
            usleep(1000);
        }
    }
    stop = 1;
    long total = 0;
    for (int i = 0; i < READERS; i++) {
        pthread_join(tid[i], NULL);
        assert_int_equal(readers[i].mismatches, 0);
        assert_int_equal(readers[i].nulls, 0);
        total += readers[i].lookups;
    }
    assert_true(total > 1000);
    char tags[ENRICH_TAGS_MAX];
    const struct enrich_tables *t = enrich_handle_acquire(&h);
    lookup_tags(t, "10.3.0.0", tags);
    assert_string_equal(tags, "gen0"); /* SWAPS % GENERATIONS */
    enrich_handle_release(&h, t);
    enrich_handle_destroy(&h); /* frees the last tables: LSan reports any table left behind */
    printf("  %d swaps, %ld lookups by %d readers\n", SWAPS, total, READERS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_outlives_swap),
        cmocka_unit_test(test_swap_under_concurrent_readers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
