#ifndef WSP_METER_H
#define WSP_METER_H

#include <stdint.h>

/* A Dropwizard (Codahale) Meter: count, mean rate and exponentially weighted 1-, 5- and
 * 15-minute rates, ticked every 5 s with alpha = 1 - exp(-5 s / 60 s / minutes). Rates are
 * in events per second. Times are monotonic nanoseconds the caller passes in, so tests drive
 * the clock. One thread. */
#define WSP_METER_TICK_NS 5000000000ull

typedef struct wsp_meter_s {
    uint64_t count;
    uint64_t uncounted; /* marks since the last tick */
    uint64_t start_ns;  /* for the mean rate */
    uint64_t last_tick_ns;
    double rate[3];  /* 1, 5, 15 minutes */
    int initialized; /* the first tick sets the rates instead of blending */
} wsp_meter_t;

/* Starts an empty meter at now_ns. */
void wsp_meter_init(wsp_meter_t *m, uint64_t now_ns);

/* Records n events; ticks first if 5 s or more passed since the last tick. */
void wsp_meter_mark(wsp_meter_t *m, uint64_t n, uint64_t now_ns);

/* Runs every 5-second tick due by now_ns, as Dropwizard's tickIfNecessary(): the first
 * folds in the marks since the last tick, the others fold in zero. */
void wsp_meter_tick_to(wsp_meter_t *m, uint64_t now_ns);

/* count / seconds since start; 0 before any time passed. */
double wsp_meter_mean_rate(const wsp_meter_t *m, uint64_t now_ns);

/* EWMA rate over 1, 5 or 15 minutes (i = 0, 1, 2), events per second, after ticking. */
double wsp_meter_rate(wsp_meter_t *m, int i, uint64_t now_ns);

#endif
