#ifndef WSP_REPORT_H
#define WSP_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "args.h"
#include "meter.h"
#include "stats.h"
#include "tally.h"

/* One point of the time series the plots are made from. */
typedef struct wsp_series_pt_s {
    double t; /* seconds since start */
    uint64_t active, setups, errors, messages;
} wsp_series_pt_t;

/* The parent's view of the run: the merged worker figures, the meters fed from them, and the
 * time series. Parent process only. */
typedef struct wsp_report_s {
    const wsp_bench_cfg_t *cfg;
    wsp_wstats_t *sum; /* merged figures of every worker */
    wsp_meter_t msg_meter, setup_meter;
    uint64_t start_ns, start_epoch_ms;
    uint64_t marked_setups, marked_msgs; /* what the meters have seen */
    wsp_series_pt_t *series;
    size_t nseries, cap;
    double series_step; /* seconds between points */
    double next_series_t;
    const char *stopped_by;       /* "duration", "signal" */
    double cpu_user_s, cpu_sys_s; /* all bench processes, set at the end */
    int ramp_done;
    double ramp_done_t;
    int tallied;              /* set at the end: win, delivery and dead_open are final */
    wsp_tally_win_t win;      /* the broadcasts expected */
    wsp_tally_sum_t delivery; /* expected, delivered, missing, ... over win */
    uint64_t dead_open;       /* connections open in workers that died */
} wsp_report_t;

/* Prepares r for a run of cfg starting now. */
void wsp_report_init(wsp_report_t *r, const wsp_bench_cfg_t *cfg, uint64_t now_ns);

/* Frees what wsp_report_init() allocated. */
void wsp_report_free(wsp_report_t *r);

/* Replaces r->sum with the merge of n worker blocks. */
void wsp_report_merge(wsp_report_t *r, wsp_wstats_t *const *blocks, unsigned n);

/* Feeds the meters and, when due, the time series from r->sum. */
void wsp_report_sample(wsp_report_t *r, uint64_t now_ns);

/* Total errors of every kind. */
uint64_t wsp_report_errors(const wsp_wstats_t *s);

/* Prints the reference tool's figures for the whole run so far. */
void wsp_report_print(FILE *f, wsp_report_t *r, uint64_t now_ns, int final);

/* Whether the run delivered: tallied, no error, nothing missing, duplicated or unexpected. */
int wsp_report_ok(const wsp_report_t *r);

/* Prints the one-line verdict: "wspush-bench: ok: ..." or "wspush-bench: FAIL: ..." with the
 * counts and the missing seqs. */
void wsp_report_verdict(FILE *f, const wsp_report_t *r);

/* Writes the final report, the delivery verdict, the per-broadcast table, the series and the
 * configuration as JSON to path. Returns 0 or a negative errno. */
int wsp_report_json(const char *path, wsp_report_t *r, uint64_t now_ns);

#endif
