#ifndef WSP_FLEET_H
#define WSP_FLEET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "args.h"
#include "bconn.h"
#include "stats.h"
#include "tally.h"

/* The bench's worker processes as the parent sees them: the shared memory they write (one
 * figures block and one connection table each, one control block from the parent), forking
 * them, noticing the ones that end early, stopping the rest, and counting at the end what
 * their open connections missed. Parent process only. */
typedef struct wsp_fleet_s {
    const wsp_bench_cfg_t *cfg;
    uint8_t *shm; /* every shared block, one mapping */
    size_t shm_len;
    wsp_ctl_t *ctl;
    wsp_wstats_t **blocks; /* [cfg->procs], worker i writes blocks[i] */
    wsp_bconn_t **tables;  /* [cfg->procs], worker i's connections by fd */
    size_t table_len;      /* entries per table */
    pid_t *pids;           /* [cfg->procs], 0 once reaped */
    unsigned started;      /* workers forked: blocks [0, started) are in use */
    unsigned alive;
} wsp_fleet_t;

/* Maps the shared blocks for cfg's workers, before any fork. Returns 0 or a negative errno. */
int wsp_fleet_map(wsp_fleet_t *f, const wsp_bench_cfg_t *cfg);

/* Forks the workers; worker i opens connection slots [conns * i / procs, conns * (i + 1) /
 * procs). Returns 0, or a negative errno if a fork failed (the workers forked so far run). */
int wsp_fleet_fork(wsp_fleet_t *f);

/* Reaps the workers that ended, without waiting: each one that ended early counts as a
 * worker_died error in its block, which then shows no active connection, nothing in flight,
 * and its slots given up (the ramp can end). Returns how many ended now. */
unsigned wsp_fleet_reap(wsp_fleet_t *f);

/* Asks every live worker to stop (SIGTERM), waits up to grace_ns, then kills the rest; one
 * killed before its figures were final counts as worker_died. Returns how many did. */
unsigned wsp_fleet_stop(wsp_fleet_t *f, uint64_t grace_ns);

/* Once every worker stopped: counts in each worker's block what its open connections missed
 * of w's broadcasts (bench/tally.h), those of a worker that died included; stores how many
 * connections the workers that died had open in *dead_open. Returns the missing count. */
uint64_t wsp_fleet_tally(wsp_fleet_t *f, const wsp_tally_win_t *w, uint64_t *dead_open);

/* Unmaps and frees what wsp_fleet_map() set up. */
void wsp_fleet_free(wsp_fleet_t *f);

#endif
