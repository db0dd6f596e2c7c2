#include "fleet.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "net.h"
#include "worker.h"

static volatile sig_atomic_t worker_stop; /* in a worker: SIGTERM */

static void on_worker_term(int sig)
{
    (void)sig;
    worker_stop = 1;
}

static size_t page_round(size_t n)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    return (n + page - 1) / page * page;
}

/* Entries of a connection table: the worker's fds are below its open-file limit, and it holds
 * at most one socket per slot, plus what it inherited; an fd beyond the table is refused as
 * EMFILE (a connect error). Mapped, not touched: pages cost only once used. */
static size_t table_entries(const wsp_bench_cfg_t *cfg)
{
    size_t n = (size_t)((cfg->conns + cfg->procs - 1) / cfg->procs) + 4096;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY && rl.rlim_max < n)
        n = (size_t)rl.rlim_max;
    return n;
}

int wsp_fleet_map(wsp_fleet_t *f, const wsp_bench_cfg_t *cfg)
{
    memset(f, 0, sizeof(*f));
    f->cfg = cfg;
    /* One figures block and one connection table per worker, shared before fork: the worker
     * writes, the parent reads. */
    size_t ctl_sz = page_round(sizeof(wsp_ctl_t));
    size_t blk_sz = page_round(sizeof(wsp_wstats_t));
    f->table_len = table_entries(cfg);
    size_t tab_sz = page_round(f->table_len * sizeof(wsp_bconn_t));
    f->shm_len = ctl_sz + (blk_sz + tab_sz) * cfg->procs;
    f->shm = mmap(NULL, f->shm_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (f->shm == MAP_FAILED) {
        f->shm = NULL;
        return -errno;
    }
    f->ctl = (wsp_ctl_t *)(void *)f->shm;
    f->blocks = wsp_xcalloc(cfg->procs, sizeof(*f->blocks));
    f->tables = wsp_xcalloc(cfg->procs, sizeof(*f->tables));
    f->pids = wsp_xcalloc(cfg->procs, sizeof(*f->pids));
    uint8_t *tabs = f->shm + ctl_sz + blk_sz * cfg->procs;
    for (unsigned i = 0; i < cfg->procs; i++) {
        f->blocks[i] = (wsp_wstats_t *)(void *)(f->shm + ctl_sz + blk_sz * i);
        wsp_stats_init(f->blocks[i]);
        f->tables[i] = (wsp_bconn_t *)(void *)(tabs + tab_sz * i); /* zeroed: all FREE */
    }
    return 0;
}

/* The first connection slot of worker i (of cfg->procs; i = procs: the end). */
static uint64_t first_slot(const wsp_bench_cfg_t *cfg, unsigned i)
{
    return cfg->conns * i / cfg->procs;
}

/* A worker's whole life; returns its exit status. */
static int run_worker(const wsp_fleet_t *f, unsigned i, pid_t parent)
{
    const wsp_bench_cfg_t *cfg = f->cfg;
    /* Die with the parent; Ctrl-C reaches the whole process group, but only the parent
     * decides when the run ends, so the workers ignore SIGINT, SIGUSR2 and SIGHUP. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        return 1;
    signal(SIGINT, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_worker_term;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGTERM, &sa, NULL);       /* a valid signal number: cannot fail */
    alarm((unsigned)ceil(cfg->duration) + 60); /* a lifetime bound even if the parent hangs */
    int rv = wsp_worker_run(cfg, first_slot(cfg, i), first_slot(cfg, i + 1), f->blocks[i], f->ctl,
                            f->tables[i], f->table_len, &worker_stop);
    if (rv < 0) {
        fprintf(stderr, "wspush-bench: worker %d: %s\n", (int)getpid(), strerror(-rv));
        return 1;
    }
    return 0;
}

int wsp_fleet_fork(wsp_fleet_t *f)
{
    pid_t self = getpid();
    for (unsigned i = 0; i < f->cfg->procs; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(run_worker(f, i, self));
        if (pid < 0)
            return -errno;
        f->pids[i] = pid;
        f->started++;
        f->alive++;
    }
    return 0;
}

/* The index of worker pid, or -1. */
static int worker_of(const wsp_fleet_t *f, pid_t pid)
{
    for (unsigned i = 0; i < f->started; i++)
        if (f->pids[i] == pid)
            return (int)i;
    return -1;
}

unsigned wsp_fleet_reap(wsp_fleet_t *f)
{
    unsigned ended = 0;
    int ws;
    pid_t pid;
    while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
        int i = worker_of(f, pid);
        if (i < 0)
            continue;
        f->pids[i] = 0;
        f->alive--;
        ended++;
        wsp_wstats_t *b = f->blocks[i];
        b->err[WSP_ERR_WORKER]++;
        b->active = 0; /* its connections died with it; the writer is gone */
        b->inflight = 0;
        /* Its slots will never be opened: given up, so that the ramp can end. */
        b->resolved = first_slot(f->cfg, (unsigned)i + 1) - first_slot(f->cfg, (unsigned)i);
        fprintf(stderr, "wspush-bench: worker %d ended early (%s %d)\n", (int)pid,
                WIFSIGNALED(ws) ? "signal" : "exit",
                WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
    }
    return ended;
}

/* Kills the workers still alive once the grace is over; returns how many lacked final
 * figures. */
static unsigned kill_rest(wsp_fleet_t *f)
{
    unsigned lost = 0;
    for (unsigned i = 0; i < f->started; i++) {
        if (f->pids[i] <= 0)
            continue;
        (void)kill(f->pids[i], SIGKILL);
        if (__atomic_load_n(&f->blocks[i]->figures_final, __ATOMIC_ACQUIRE))
            continue; /* only its sockets were still closing */
        fprintf(stderr, "wspush-bench: worker %d did not stop: killed\n", (int)f->pids[i]);
        f->blocks[i]->err[WSP_ERR_WORKER]++;
        lost++;
    }
    return lost;
}

unsigned wsp_fleet_stop(wsp_fleet_t *f, uint64_t grace_ns)
{
    for (unsigned i = 0; i < f->started; i++)
        if (f->pids[i] > 0)
            (void)kill(f->pids[i], SIGTERM); /* our own child: cannot fail but for ESRCH */
    unsigned lost = 0;
    uint64_t deadline = wsp_net_mono_ns() + grace_ns;
    while (f->alive > 0) {
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid > 0) {
            int i = worker_of(f, pid);
            if (i >= 0) {
                f->pids[i] = 0;
                f->alive--;
            }
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            break;
        if (wsp_net_mono_ns() >= deadline) {
            lost += kill_rest(f);
            deadline = UINT64_MAX;
        }
        struct timespec ts = {0, 20000000};
        (void)nanosleep(&ts, NULL);
    }
    return lost;
}

uint64_t wsp_fleet_tally(wsp_fleet_t *f, const wsp_tally_win_t *w, uint64_t *dead_open)
{
    uint64_t missed = 0;
    *dead_open = 0;
    for (unsigned i = 0; i < f->started; i++) {
        wsp_wstats_t *b = f->blocks[i];
        uint64_t open;
        missed += wsp_tally_table(f->tables[i], f->table_len, b->epoch0_ms, w, b->seq, &open);
        if (w->hi > b->seq_top)
            b->seq_top = w->hi; /* so that merging reads what the tally wrote */
        if (b->err[WSP_ERR_WORKER])
            *dead_open += open;
    }
    return missed;
}

void wsp_fleet_free(wsp_fleet_t *f)
{
    free(f->blocks);
    free(f->tables);
    free(f->pids);
    if (f->shm)
        (void)munmap(f->shm, f->shm_len); /* exiting anyway */
    memset(f, 0, sizeof(*f));
}
