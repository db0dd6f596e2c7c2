#ifndef WSP_WORKER_H
#define WSP_WORKER_H

#include <signal.h>
#include <stdint.h>

#include "args.h"
#include "bconn.h"
#include "stats.h"

/* Opens connection slots [first, end) of the run with raw epoll, answers pings, records every
 * tick in st and every connection in table (table_len entries, indexed by fd, zeroed; both in
 * memory the parent shares), until *stop is set (the SIGTERM handler); then stores its CPU
 * time in st and closes everything, leaving table as it was. Returns 0, or a negative errno
 * if the worker could not start. Worker process only, one thread. */
int wsp_worker_run(const wsp_bench_cfg_t *cfg, uint64_t first, uint64_t end, wsp_wstats_t *st,
                   const wsp_ctl_t *ctl, wsp_bconn_t *table, size_t table_len,
                   volatile sig_atomic_t *stop);

#endif
