#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static wsp_proc_stats_t *make(unsigned n)
{
    wsp_proc_stats_t *p = calloc(n, sizeof(*p));
    assert_non_null(p);
    return p;
}

static void test_render(void **state)
{
    (void)state;
    wsp_proc_stats_t *p = make(2);
    atomic_store(&p[0].nshards, 2);
    atomic_store(&p[1].nshards, 1);
    atomic_store(&p[0].shard[0].open, 5);
    atomic_store(&p[0].shard[1].open, 7);
    atomic_store(&p[1].shard[0].open, 11);
    atomic_store(&p[0].shard[1].closed[WSP_CLOSE_SLOW_CONSUMER], 3);
    atomic_store(&p[1].shard[0].closed[WSP_CLOSE_SLOW_CONSUMER], 1);
    atomic_store(&p[0].shard[1].slow_consumers, 3);
    atomic_store(&p[1].shard[0].slow_consumers, 1);
    atomic_store(&p[1].shard[0].hs_failed[WSP_HS_404], 2);
    atomic_store(&p[0].shard[1].deflate_builds, 2);
    atomic_store(&p[0].shard[1].deflate_ns, 25000);
    wsp_metrics_bcast_observe(&p[0], 3000000);      /* 3 ms: the 0.005 bucket */
    wsp_metrics_bcast_observe(&p[0], 120000000000); /* 120 s: only +Inf */
    wsp_buf_t b = {0};
    assert_int_equal(wsp_metrics_render(p, 2, &b), 0);
    const char *want[] = {
        "# TYPE wspush_connections gauge\n",
        "wspush_connections{worker=\"0\",shard=\"0\"} 5\n",
        "wspush_connections{worker=\"0\",shard=\"1\"} 7\n",
        "wspush_connections{worker=\"1\",shard=\"0\"} 11\n",
        "wspush_connections_closed_total{reason=\"slow_consumer\"} 4\n",
        "wspush_slow_consumer_closes_total 4\n",
        "wspush_handshake_failures_total{status=\"404\"} 2\n",
        "wspush_broadcast_duration_seconds_bucket{worker=\"0\",le=\"0.001\"} 0\n",
        "wspush_broadcast_duration_seconds_bucket{worker=\"0\",le=\"0.005\"} 1\n",
        "wspush_broadcast_duration_seconds_bucket{worker=\"0\",le=\"60\"} 1\n",
        "wspush_broadcast_duration_seconds_bucket{worker=\"0\",le=\"+Inf\"} 2\n",
        "wspush_broadcast_duration_seconds_count{worker=\"0\"} 2\n",
        "# TYPE process_open_fds gauge\n",
        "# TYPE wspush_deflate_broadcasts_total counter\n",
        "wspush_deflate_broadcasts_total{worker=\"0\",shard=\"1\"} 2\n",
        "wspush_deflate_compress_seconds_total{worker=\"0\",shard=\"1\"} 0.000025000\n",
        "wspush_deflate_compress_seconds_total{worker=\"1\",shard=\"0\"} 0.000000000\n",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(b.data, want[i]) == NULL)
            fail_msg("missing: %s", want[i]);
    /* shard 1 of worker 1 does not exist: nothing rendered for it */
    assert_null(strstr(b.data, "worker=\"1\",shard=\"1\""));
    assert_int_equal(wsp_metrics_sum_open(p, 2), 23);
    wsp_buf_free(&b);
    assert_int_equal(wsp_metrics_stats_json(p, 2, 1, &b), 0);
    assert_non_null(strstr(b.data, "{\"draining\":true,\"connections\":23,"));
    wsp_buf_free(&b);
    free(p);
}

static void test_maps(void **state)
{
    (void)state;
    assert_int_equal(wsp_metrics_close_reason(1002), WSP_CLOSE_PROTOCOL);
    assert_int_equal(wsp_metrics_close_reason(1007), WSP_CLOSE_INVALID_UTF8);
    assert_int_equal(wsp_metrics_close_reason(1009), WSP_CLOSE_TOO_BIG);
    assert_int_equal(wsp_metrics_close_reason(1000), WSP_CLOSE_CLIENT);
    assert_int_equal(wsp_metrics_hs_index(431), WSP_HS_431);
    assert_int_equal(wsp_metrics_hs_index(999), WSP_HS_400);
}

static void test_sample_self(void **state)
{
    (void)state;
    wsp_proc_stats_t *p = make(1);
    assert_int_equal(wsp_metrics_sample_self(p, 1), 0);
    assert_true(atomic_load(&p->rss_bytes) > 0);
    assert_true(atomic_load(&p->open_fds) >= 3); /* stdio at least */
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_maps),
        cmocka_unit_test(test_sample_self),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
