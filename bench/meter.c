#include "meter.h"

#include <math.h>
#include <string.h>

static const double wsp__meter_minutes[3] = {1.0, 5.0, 15.0};

void wsp_meter_init(wsp_meter_t *m, uint64_t now_ns)
{
    memset(m, 0, sizeof(*m));
    m->start_ns = now_ns;
    m->last_tick_ns = now_ns;
}

static void meter_tick(wsp_meter_t *m)
{
    double instant = (double)m->uncounted / (WSP_METER_TICK_NS / 1e9);
    m->uncounted = 0;
    for (int i = 0; i < 3; i++) {
        double alpha = 1.0 - exp(-5.0 / 60.0 / wsp__meter_minutes[i]);
        if (m->initialized)
            m->rate[i] += alpha * (instant - m->rate[i]);
        else
            m->rate[i] = instant;
    }
    m->initialized = 1;
}

void wsp_meter_tick_to(wsp_meter_t *m, uint64_t now_ns)
{
    if (now_ns < m->last_tick_ns + WSP_METER_TICK_NS)
        return;
    uint64_t ticks = (now_ns - m->last_tick_ns) / WSP_METER_TICK_NS;
    m->last_tick_ns += ticks * WSP_METER_TICK_NS;
    /* A run of hours with no marks needs only enough ticks to decay to zero. */
    if (ticks > 100000)
        ticks = 100000;
    for (uint64_t i = 0; i < ticks; i++)
        meter_tick(m);
}

void wsp_meter_mark(wsp_meter_t *m, uint64_t n, uint64_t now_ns)
{
    wsp_meter_tick_to(m, now_ns);
    m->count += n;
    m->uncounted += n;
}

double wsp_meter_mean_rate(const wsp_meter_t *m, uint64_t now_ns)
{
    if (now_ns <= m->start_ns)
        return 0.0;
    return (double)m->count / ((double)(now_ns - m->start_ns) / 1e9);
}

double wsp_meter_rate(wsp_meter_t *m, int i, uint64_t now_ns)
{
    wsp_meter_tick_to(m, now_ns);
    return (i >= 0 && i < 3) ? m->rate[i] : 0.0;
}
