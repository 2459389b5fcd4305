/* hist.c -- fixed-size log-bucket latency histogram (16 sub-buckets per power of two). */
#include "util/hist.h"

static size_t bucket_of(uint64_t v)
{
    if (v < HIST_SUB) {
        return (size_t)v; /* small values are exact */
    }
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* v >= 16, so e >= 4 */
    size_t idx = HIST_SUB + (size_t)(e - 4) * HIST_SUB + (size_t)((v >> (e - 4)) & (HIST_SUB - 1));
    return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

static uint64_t bucket_upper(size_t idx)
{
    if (idx < HIST_SUB) {
        return idx;
    }
    unsigned e = (unsigned)((idx - HIST_SUB) / HIST_SUB) + 4;
    uint64_t sub = (idx - HIST_SUB) % HIST_SUB;
    uint64_t lower = (HIST_SUB + sub) << (e - 4);
    return lower + (1ull << (e - 4)) - 1;
}

void hist_add(struct hist *h, uint64_t value)
{
    h->buckets[bucket_of(value)]++;
    h->count++;
    if (value > h->max) {
        h->max = value;
    }
}

uint64_t hist_percentile(const struct hist *h, double p)
{
    if (h->count == 0) {
        return 0;
    }
    double want = p * (double)h->count;
    uint64_t target = (uint64_t)want;
    if ((double)target < want || target == 0) {
        target++; /* ceil, and at least one value */
    }
    uint64_t seen = 0;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= target) {
            if (i == HIST_BUCKETS - 1) {
                return h->max; /* the last bucket also holds everything above its range */
            }
            uint64_t up = bucket_upper(i);
            return up < h->max ? up : h->max;
        }
    }
    return h->max;
}
