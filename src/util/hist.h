/* hist.h -- fixed-size log-bucket histogram for latencies: 16 sub-buckets per power of two
 * (<= 6.25% error), no allocation, mergeable by adding buckets. */
#ifndef SINKD_UTIL_HIST_H
#define SINKD_UTIL_HIST_H

#include <stddef.h>
#include <stdint.h>

#define HIST_SUB 16
#define HIST_BUCKETS (HIST_SUB + 40 * HIST_SUB)

struct hist {
    uint64_t buckets[HIST_BUCKETS];
    uint64_t count;
    uint64_t max;
};

void hist_add(struct hist *h, uint64_t value);
/* Smallest bucket upper bound with at least p (0..1] of the values at or below it, capped at the
 * exact maximum; 0 when empty. */
uint64_t hist_percentile(const struct hist *h, double p);

#endif
