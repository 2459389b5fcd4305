/* enrich_bench.c -- measures enrichment table load time, memory and lookups per second per core
 * (built and run by bench/enrich.sh). */
#include "enrich/enrich.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#define ADDRS (1u << 20) /* random addresses, reused round-robin (too big to stay in L2) */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kib(void)
{
    long size = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &size, &rss) != 2) {
            rss = 0;
        }
        fclose(f);
    }
    return rss * 4; /* 4 KiB pages */
}

static struct net_addr *random_v4(uint64_t seed)
{
    struct net_addr *a = calloc(ADDRS, sizeof(*a));
    if (a == NULL) {
        return NULL;
    }
    for (unsigned i = 0; i < ADDRS; i++) {
        seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17; /* xorshift64 */
        a[i].family = AF_INET;
        memcpy(a[i].ip, &seed, 4);
    }
    return a;
}

enum mode { MODE_FULL, MODE_HANDLE };

struct run {
    const struct enrich_tables *tables;
    struct enrich_handle *handle;
    const struct net_addr *addrs;
    double seconds;
    enum mode mode;
    uint64_t lookups, checksum;
};

static void *run_lookups(void *arg)
{
    struct run *r = arg;
    struct enrich_result res;
    double start = now_s(), end = start + r->seconds;
    uint64_t n = 0, sum = 0;
    while (now_s() < end) {
        for (unsigned i = 0; i < 65536; i++, n++) {
            const struct net_addr *a = &r->addrs[n & (ADDRS - 1)];
            if (r->mode == MODE_HANDLE) {
                const struct enrich_tables *t = enrich_handle_acquire(r->handle);
                enrich_lookup(t, a, &res);
                enrich_handle_release(r->handle, t);
            } else {
                enrich_lookup(r->tables, a, &res);
            }
            sum += res.asn + (uint8_t)res.cc[0] + (uint8_t)res.tags[0];
        }
    }
    r->lookups = n;
    r->seconds = now_s() - start;
    r->checksum = sum;
    return NULL;
}

static double measure(const struct enrich_tables *t, struct enrich_handle *h, enum mode mode,
                      const struct net_addr *addrs, int threads, double seconds)
{
    pthread_t tid[64];
    struct run runs[64];
    double total = 0;
    for (int i = 0; i < threads; i++) {
        runs[i] = (struct run){t, h, addrs, seconds, mode, 0, 0};
        pthread_create(&tid[i], NULL, run_lookups, &runs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(tid[i], NULL);
        total += (double)runs[i].lookups / runs[i].seconds;
    }
    return total;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s MMDB ASN4 ASN6 TAGS [THREADS] [SECONDS]\n", argv[0]);
        return 2;
    }
    int threads = argc > 5 ? atoi(argv[5]) : 1;
    double seconds = argc > 6 ? atof(argv[6]) : 2.0;
    if (threads < 1 || threads > 64) {
        threads = 1;
    }
    const char *tags[] = {argv[4], NULL};
    struct enrich_config full = {argv[1], argv[2], argv[3], tags, NULL, NULL};
    struct enrich_config no_geo = {NULL, argv[2], argv[3], tags, NULL, NULL};
    struct enrich_config geo_only = {argv[1], NULL, NULL, NULL, NULL, NULL};
    char err[512], desc[1024];
    struct enrich_tables *t = NULL, *t2 = NULL, *t3 = NULL;

    long rss0 = rss_kib();
    double t0 = now_s();
    if (enrich_load(&t, &full, err, sizeof(err)) != 0) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }
    double load = now_s() - t0;
    long rss1 = rss_kib();
    struct enrich_stats st;
    enrich_tables_stats(t, &st);
    enrich_tables_describe(t, desc, sizeof(desc));
    printf("load: %.3f s, RSS +%ld KiB (incl. touched MMDB pages), tables heap %.1f MiB, "
           "mmdb mapped %.1f MiB\n",
           load, rss1 - rss0, (double)st.memory_bytes / 1048576.0,
           (double)st.mmdb_bytes / 1048576.0);
    printf("rows: cc4 %zu, asn4 %zu, asn6 %zu (overlaps resolved %zu), AS entries %zu, name pool "
           "%zu B, tag "
           "rules %zu "
           "(v4 ranges %zu, v6 ranges %zu, ASNs %zu)\n",
           st.cc_v4_ranges, st.asn_v4_ranges, st.asn_v6_ranges, st.asn_overlaps, st.as_entries,
           st.name_pool_bytes, st.tag_rules, st.tag_v4_ranges, st.tag_v6_ranges, st.tag_asns);
    printf("id %08x: %s\n", enrich_tables_id(t), desc);
    if (enrich_load(&t2, &no_geo, err, sizeof(err)) != 0 ||
        enrich_load(&t3, &geo_only, err, sizeof(err)) != 0) {
        fprintf(stderr, "load: %s\n", err);
        return 1;
    }
    struct net_addr *addrs = random_v4(0x9e3779b97f4a7c15ULL);
    if (addrs == NULL) {
        return 1;
    }
    struct enrich_handle h;
    enrich_handle_init(&h, t);
    printf("random IPv4, %d thread(s), %.1f s each:\n", threads, seconds);
    double full_rate = measure(t, NULL, MODE_FULL, addrs, threads, seconds);
    printf("  country+ASN+tags:                 %6.2f M lookups/s (%.2f M/s per thread)\n",
           full_rate / 1e6, full_rate / 1e6 / threads);
    double handle_rate = measure(NULL, &h, MODE_HANDLE, addrs, threads, seconds);
    printf("  acquire+lookup+release per call:  %6.2f M lookups/s (%.2f M/s per thread)\n",
           handle_rate / 1e6, handle_rate / 1e6 / threads);
    double asn_rate = measure(t2, NULL, MODE_FULL, addrs, threads, seconds);
    printf("  ASN+tags only (no MMDB):          %6.2f M lookups/s (%.2f M/s per thread)\n",
           asn_rate / 1e6, asn_rate / 1e6 / threads);
    double geo_rate = measure(t3, NULL, MODE_FULL, addrs, threads, seconds);
    printf("  country only (IPv4 table of MMDB):%6.2f M lookups/s (%.2f M/s per thread)\n",
           geo_rate / 1e6, geo_rate / 1e6 / threads);
    enrich_handle_destroy(&h);
    enrich_free(t2);
    enrich_free(t3);
    free(addrs);
    return 0;
}
