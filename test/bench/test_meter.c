/* Meter math against hand-computed EWMA values (Dropwizard's EWMATest figures). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>

#include "meter.h"

#define S 1000000000ull

static void assert_near(double got, double want)
{
    if (fabs(got - want) > 1e-8)
        fail_msg("got %.10f want %.10f", got, want);
}

static void test_first_tick_sets_rate(void **state)
{
    (void)state;
    wsp_meter_t m;
    wsp_meter_init(&m, 100 * S);
    wsp_meter_mark(&m, 3, 100 * S);
    assert_near(wsp_meter_rate(&m, 0, 104 * S), 0.0); /* no tick before 5 s */
    /* 3 events in one 5 s interval: 0.6/s for every window */
    for (int i = 0; i < 3; i++)
        assert_near(wsp_meter_rate(&m, i, 105 * S), 0.6);
}

static void test_decay_one_minute(void **state)
{
    (void)state;
    wsp_meter_t m;
    wsp_meter_init(&m, 0);
    wsp_meter_mark(&m, 3, 0);
    wsp_meter_tick_to(&m, 5 * S);
    /* one minute later: 12 ticks of alpha = 1 - exp(-5/60/minutes) each, so the rate is
     * 0.6 * exp(-1 / minutes): 0.22072766 (1 min), 0.49123845 (5), 0.56130419 (15) */
    assert_near(wsp_meter_rate(&m, 0, 65 * S), 0.6 * exp(-1.0));
    assert_near(wsp_meter_rate(&m, 0, 65 * S), 0.2207276647028654);
    assert_near(wsp_meter_rate(&m, 1, 65 * S), 0.4912384518467888);
    assert_near(wsp_meter_rate(&m, 2, 65 * S), 0.5613041910189706);
    /* two minutes */
    assert_near(wsp_meter_rate(&m, 0, 125 * S), 0.0812011699419349);
    assert_near(wsp_meter_rate(&m, 1, 125 * S), 0.4021920276213836);
    assert_near(wsp_meter_rate(&m, 2, 125 * S), 0.5251039914257685);
}

static void test_blending(void **state)
{
    (void)state;
    wsp_meter_t m;
    wsp_meter_init(&m, 0);
    wsp_meter_mark(&m, 50, 1 * S);  /* 10/s in the first interval */
    wsp_meter_mark(&m, 100, 6 * S); /* ticks first, then 20/s in the second */
    wsp_meter_tick_to(&m, 10 * S);
    double a1 = 1.0 - exp(-5.0 / 60.0);
    assert_near(m.rate[0], 10.0 + a1 * (20.0 - 10.0)); /* 10.7995558537 */
    assert_near(m.rate[0], 10.7995558537067);
    assert_int_equal(m.count, 150);
    assert_int_equal(m.uncounted, 0);
}

static void test_mean_rate(void **state)
{
    (void)state;
    wsp_meter_t m;
    wsp_meter_init(&m, 7 * S);
    assert_near(wsp_meter_mean_rate(&m, 7 * S), 0.0);
    wsp_meter_mark(&m, 250, 8 * S);
    assert_near(wsp_meter_mean_rate(&m, 17 * S), 25.0); /* 250 events over 10 s */
}

static void test_long_idle_decays_to_zero(void **state)
{
    (void)state;
    wsp_meter_t m;
    wsp_meter_init(&m, 0);
    wsp_meter_mark(&m, 1000, 0);
    assert_true(wsp_meter_rate(&m, 2, 5 * S) > 0);
    assert_true(wsp_meter_rate(&m, 2, 86400ull * 30 * S) < 1e-12); /* a month later */
    assert_int_equal(m.count, 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_tick_sets_rate),
        cmocka_unit_test(test_decay_one_minute),
        cmocka_unit_test(test_blending),
        cmocka_unit_test(test_mean_rate),
        cmocka_unit_test(test_long_idle_decays_to_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
