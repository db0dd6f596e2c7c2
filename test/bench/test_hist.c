/* Histogram percentiles against known distributions, merging across processes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "hist.h"

static wsp_hist_t *hist_new(void)
{
    wsp_hist_t *h = malloc(sizeof(*h));
    assert_non_null(h);
    wsp_hist_init(h);
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The nearest-rank quantile of sorted v[0..n). */
static uint64_t exact_quantile(const uint64_t *v, size_t n, double q)
{
    size_t rank = (size_t)ceil(q * (double)n);
    return v[rank ? rank - 1 : 0];
}

static void assert_within(uint64_t got, uint64_t want, double rel)
{
    double err = fabs((double)got - (double)want);
    if (err > rel * (double)want + 0.5) /* +0.5: exact integers below 256 */
        fail_msg("got %llu want %llu (%.3f%% off)", (unsigned long long)got,
                 (unsigned long long)want, 100.0 * err / (double)want);
}

static const double qs[] = {0.5, 0.75, 0.9, 0.95, 0.98, 0.99, 0.999, 0.9999};

static void check_quantiles(uint64_t *v, size_t n)
{
    wsp_hist_t *h = hist_new();
    for (size_t i = 0; i < n; i++)
        wsp_hist_record(h, v[i]);
    qsort(v, n, sizeof(*v), cmp_u64);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        assert_within(wsp_hist_quantile(h, qs[i]), exact_quantile(v, n, qs[i]), 0.01);
    assert_int_equal(h->min, v[0]);
    assert_int_equal(h->max, v[n - 1]);
    assert_int_equal(h->count, n);
    free(h);
}

static void test_buckets_cover_values(void **state)
{
    (void)state;
    uint64_t prev = 0;
    for (unsigned i = 1; i < WSP_HIST_BUCKETS; i++) {
        uint64_t lo = wsp_hist_lower(i);
        assert_true(lo > prev); /* strictly increasing */
        assert_int_equal(wsp_hist_index(lo), i);
        assert_int_equal(wsp_hist_index(lo - 1), i - 1);
        /* a bucket is at most 1/128 of its lower bound wide: <= 0.8% error */
        if (i + 1 < WSP_HIST_BUCKETS && lo >= 256)
            assert_true((double)(wsp_hist_lower(i + 1) - lo) / (double)lo <= 1.0 / 128 + 1e-12);
        prev = lo;
    }
    assert_true(wsp_hist_lower(WSP_HIST_BUCKETS - 1) < WSP_HIST_MAX);
    assert_int_equal(wsp_hist_index(WSP_HIST_MAX), WSP_HIST_BUCKETS - 1);
    assert_int_equal(wsp_hist_index(UINT64_MAX), WSP_HIST_BUCKETS - 1);
    for (uint64_t v = 0; v < 256; v++)
        assert_int_equal(wsp_hist_index(v), v); /* small values are exact */
}

static void test_uniform(void **state)
{
    (void)state;
    size_t n = 1000000;
    uint64_t *v = malloc(n * sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = 1 + (i * 7919) % n; /* a permutation of 1..n: order must not matter */
    check_quantiles(v, n);
    free(v);
}

static void test_exponential(void **state)
{
    (void)state;
    /* inverse CDF at evenly spaced probabilities: an exact exponential sample, mean 20 ms */
    size_t n = 200000;
    uint64_t *v = malloc(n * sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint64_t)(-20000.0 * log(1.0 - ((double)i + 0.5) / (double)n));
    check_quantiles(v, n);
    free(v);
}

static void test_lognormal_wide(void **state)
{
    (void)state;
    /* spans microseconds to minutes: exp of evenly spaced values over [0, 18] */
    size_t n = 100000;
    uint64_t *v = malloc(n * sizeof(*v));
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = (uint64_t)exp(18.0 * (double)((i * 31) % n) / (double)n);
    check_quantiles(v, n);
    free(v);
}

static void test_mean_stddev(void **state)
{
    (void)state;
    wsp_hist_t *h = hist_new();
    assert_int_equal(wsp_hist_quantile(h, 0.5), 0);
    assert_true(wsp_hist_mean(h) == 0.0 && wsp_hist_stddev(h) == 0.0);
    const uint64_t v[] = {2000, 4000, 4000, 4000, 5000, 5000, 7000, 9000}; /* mean 5000, sd 2000 */
    for (size_t i = 0; i < 8; i++)
        wsp_hist_record(h, v[i]);
    assert_true(fabs(wsp_hist_mean(h) - 5000.0) < 1e-9);
    assert_true(fabs(wsp_hist_stddev(h) - 2000.0) < 1e-6);
    assert_int_equal(wsp_hist_quantile(h, 0.0), 2000);
    assert_int_equal(wsp_hist_quantile(h, 1.0), 9000);
    free(h);
}

static void test_clamps_huge_values(void **state)
{
    (void)state;
    wsp_hist_t *h = hist_new();
    wsp_hist_record(h, 5);
    wsp_hist_record(h, WSP_HIST_MAX * 4);
    assert_int_equal(h->bucket[WSP_HIST_BUCKETS - 1], 1);
    assert_int_equal(h->max, WSP_HIST_MAX * 4); /* max stays exact */
    assert_int_equal(wsp_hist_quantile(h, 0.99), WSP_HIST_MAX * 4);
    assert_int_equal(wsp_hist_quantile(h, 0.5), 5);
    free(h);
}

static void test_merge_equals_single(void **state)
{
    (void)state;
    enum { PROCS = 5, N = 300000 };
    wsp_hist_t *one = hist_new(), *sum = hist_new(), *part[PROCS];
    for (int p = 0; p < PROCS; p++)
        part[p] = hist_new();
    for (uint64_t i = 0; i < N; i++) {
        uint64_t v = (i * 2654435761u) % 5000000u; /* up to 5 s, scattered */
        wsp_hist_record(one, v);
        wsp_hist_record(part[i % PROCS], v);
    }
    for (int p = 0; p < PROCS; p++)
        wsp_hist_merge(sum, part[p]);
    assert_memory_equal(sum->bucket, one->bucket, sizeof(one->bucket));
    assert_int_equal(sum->count, one->count);
    assert_int_equal(sum->sum, one->sum);
    assert_int_equal(sum->min, one->min);
    assert_int_equal(sum->max, one->max);
    assert_true(fabs(sum->sumsq - one->sumsq) <= 1e-9 * one->sumsq);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        assert_int_equal(wsp_hist_quantile(sum, qs[i]), wsp_hist_quantile(one, qs[i]));
    for (int p = 0; p < PROCS; p++)
        free(part[p]);
    free(one);
    free(sum);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_cover_values), cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_exponential),          cmocka_unit_test(test_lognormal_wide),
        cmocka_unit_test(test_mean_stddev),          cmocka_unit_test(test_clamps_huge_values),
        cmocka_unit_test(test_merge_equals_single),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
