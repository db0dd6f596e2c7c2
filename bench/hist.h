#ifndef WSP_HIST_H
#define WSP_HIST_H

#include <stdint.h>

/* A fixed-size log-linear histogram of non-negative integers (the bench records microseconds):
 * values below 256 are exact, above that each power of two is split into 128 buckets, so a
 * reported value is within 1/256 (0.4%) of the true one. Values at or above WSP_HIST_MAX
 * land in the last bucket; min and max stay exact. Plain memory, no pointers: it lives in a
 * MAP_SHARED block one worker writes and the parent merges, so merging is adding buckets. */
#define WSP_HIST_SUB_BITS 7
#define WSP_HIST_MAX_BITS 36 /* 2^36 us = 19 hours */
#define WSP_HIST_BUCKETS (((WSP_HIST_MAX_BITS - WSP_HIST_SUB_BITS - 1) << WSP_HIST_SUB_BITS) + 256)
#define WSP_HIST_MAX ((uint64_t)1 << WSP_HIST_MAX_BITS)

typedef struct wsp_hist_s {
    uint64_t count;
    uint64_t min, max; /* min is UINT64_MAX while count is 0 */
    uint64_t sum;
    double sumsq; /* for the standard deviation; double: squares of hours overflow uint64 */
    uint64_t bucket[WSP_HIST_BUCKETS];
} wsp_hist_t;

/* Empties h. Any thread. */
void wsp_hist_init(wsp_hist_t *h);

/* Bucket index of value v. Pure. */
unsigned wsp_hist_index(uint64_t v);

/* Lowest value of bucket i; bucket i holds [wsp_hist_lower(i), wsp_hist_lower(i + 1)). Pure. */
uint64_t wsp_hist_lower(unsigned i);

/* Adds one value. Single writer. */
static inline void wsp_hist_record(wsp_hist_t *h, uint64_t v)
{
    h->bucket[wsp_hist_index(v)]++;
    h->count++;
    h->sum += v;
    h->sumsq += (double)v * (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

/* Adds every value of src to dst: histograms of several processes merge exactly. */
void wsp_hist_merge(wsp_hist_t *dst, const wsp_hist_t *src);

/* The value at quantile q in [0, 1] (nearest rank), the middle of its bucket clamped to
 * [min, max]; 0 when empty. Pure. */
uint64_t wsp_hist_quantile(const wsp_hist_t *h, double q);

/* Mean and population standard deviation; 0 when empty. Pure. */
double wsp_hist_mean(const wsp_hist_t *h);
double wsp_hist_stddev(const wsp_hist_t *h);

#endif
