#include "hist.h"

#include <math.h>
#include <string.h>

void wsp_hist_init(wsp_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned wsp_hist_index(uint64_t v)
{
    if (v < (2u << WSP_HIST_SUB_BITS))
        return (unsigned)v;
    if (v >= WSP_HIST_MAX)
        return WSP_HIST_BUCKETS - 1;
    unsigned shift = (unsigned)(63 - __builtin_clzll(v)) - WSP_HIST_SUB_BITS;
    /* v >> shift is in [128, 256): the top 8 bits; each shift level adds 128 buckets */
    return (shift << WSP_HIST_SUB_BITS) + (unsigned)(v >> shift);
}

uint64_t wsp_hist_lower(unsigned i)
{
    if (i < (2u << WSP_HIST_SUB_BITS))
        return i;
    unsigned shift = (i >> WSP_HIST_SUB_BITS) - 1;
    uint64_t sub = (i & ((1u << WSP_HIST_SUB_BITS) - 1)) + (1u << WSP_HIST_SUB_BITS);
    return sub << shift;
}

void wsp_hist_merge(wsp_hist_t *dst, const wsp_hist_t *src)
{
    for (unsigned i = 0; i < WSP_HIST_BUCKETS; i++)
        dst->bucket[i] += src->bucket[i];
    dst->count += src->count;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t wsp_hist_quantile(const wsp_hist_t *h, double q)
{
    if (h->count == 0)
        return 0;
    if (q <= 0)
        return h->min;
    if (q >= 1)
        return h->max;
    uint64_t rank = (uint64_t)ceil(q * (double)h->count); /* 1-based nearest rank */
    if (rank == 0)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < WSP_HIST_BUCKETS; i++) {
        seen += h->bucket[i];
        if (seen < rank)
            continue;
        if (i == WSP_HIST_BUCKETS - 1)
            return h->max; /* the overflow bucket has no upper bound */
        uint64_t lo = wsp_hist_lower(i);
        uint64_t hi = wsp_hist_lower(i + 1);
        uint64_t mid = lo + (hi - lo - 1) / 2;
        if (mid < h->min)
            mid = h->min;
        if (mid > h->max)
            mid = h->max;
        return mid;
    }
    return h->max; /* bucket counts torn by a concurrent writer: the top is the best answer */
}

double wsp_hist_mean(const wsp_hist_t *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}

double wsp_hist_stddev(const wsp_hist_t *h)
{
    if (h->count == 0)
        return 0.0;
    double mean = wsp_hist_mean(h);
    double var = h->sumsq / (double)h->count - mean * mean;
    return var > 0 ? sqrt(var) : 0.0;
}
