/* wspush-bench: the C1000K load generator. The parent parses and checks the arguments, forks
 * worker processes (the open-file cap is per process), merges their shared-memory figures
 * into the reference tool's report, and stops them at --duration or on SIGINT. */
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
#include "args.h"
#include "net.h"
#include "report.h"
#include "stats.h"
#include "worker.h"

#define LOOP_NS 50000000ull          /* the parent wakes every 50 ms */
#define STATUS_NS 250000000ull       /* status file and terminal progress */
#define STOP_GRACE_NS 10000000000ull /* workers get 10 s to finish after SIGTERM */

static volatile sig_atomic_t g_stop;      /* parent: SIGINT/SIGTERM; worker: SIGTERM */
static volatile sig_atomic_t g_stop_ramp; /* parent: SIGUSR2 */

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void on_stop_ramp(int sig)
{
    (void)sig;
    g_stop_ramp = 1;
}

static void set_handler(int sig, void (*fn)(int))
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = fn;
    sigemptyset(&sa.sa_mask);
    (void)sigaction(sig, &sa, NULL); /* valid signal numbers: cannot fail */
}

static uint64_t mem_available(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return (uint64_t)kb * 1024u;
}

static void write_status(const char *path, const wsp_report_t *r, uint64_t now)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return; /* a status file is a convenience: the run goes on without it */
    const wsp_wstats_t *s = r->sum;
    fprintf(f,
            "t=%.2f\ntarget=%llu\nactive=%llu\nsetups=%llu\nresolved=%llu\ninflight=%llu\n"
            "ramp_done=%d\nmessages=%llu\nmax_seq=%llu\nerrors=%llu\npid=%d\n",
            (double)(now - r->start_ns) / 1e9, (unsigned long long)r->cfg->conns,
            (unsigned long long)s->active, (unsigned long long)s->setups,
            (unsigned long long)s->resolved, (unsigned long long)s->inflight, r->ramp_done,
            (unsigned long long)s->messages, (unsigned long long)s->max_seq,
            (unsigned long long)wsp_report_errors(s), (int)getpid());
    if (fclose(f) == 0)
        (void)rename(tmp, path); /* readers see the old or the new file, never half */
}

static int run_worker(const wsp_bench_cfg_t *cfg, pid_t parent, uint64_t first, uint64_t end,
                      wsp_wstats_t *st, const wsp_ctl_t *ctl)
{
    /* Die with the parent; Ctrl-C reaches the whole process group, but only the parent
     * decides when the run ends, so the workers ignore SIGINT and SIGUSR2. */
    (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        return 1;
    signal(SIGINT, SIG_IGN);
    signal(SIGUSR2, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    set_handler(SIGTERM, on_stop);
    alarm((unsigned)ceil(cfg->duration) + 60); /* a lifetime bound even if the parent hangs */
    int rv = wsp_worker_run(cfg, first, end, st, ctl, &g_stop);
    if (rv < 0) {
        fprintf(stderr, "wspush-bench: worker %d: %s\n", (int)getpid(), strerror(-rv));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    wsp_args_limits_t lim = {0, mem_available()};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
        lim.nofile = rl.rlim_max;
    static wsp_bench_cfg_t cfg;
    char err[512];
    int rv = wsp_args_parse(&cfg, argc, argv, &lim, err, sizeof(err));
    if (rv == 1) {
        fputs(wsp_args_usage, stdout);
        return 0;
    }
    if (rv < 0) {
        fprintf(stderr, "wspush-bench: %s\n", err);
        return 2;
    }

    /* One block per worker, shared before fork: the worker writes, the parent reads. */
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t ctl_sz = (sizeof(wsp_ctl_t) + page - 1) / page * page;
    size_t blk_sz = (sizeof(wsp_wstats_t) + page - 1) / page * page;
    size_t total = ctl_sz + blk_sz * cfg.procs;
    uint8_t *shm = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shm == MAP_FAILED) {
        fprintf(stderr, "wspush-bench: mmap %zu bytes: %s\n", total, strerror(errno));
        return 1;
    }
    wsp_ctl_t *ctl = (wsp_ctl_t *)(void *)shm;
    wsp_wstats_t **blocks = wsp_xcalloc(cfg.procs, sizeof(*blocks));
    pid_t *pids = wsp_xcalloc(cfg.procs, sizeof(*pids));
    for (unsigned i = 0; i < cfg.procs; i++) {
        blocks[i] = (wsp_wstats_t *)(void *)(shm + ctl_sz + blk_sz * i);
        wsp_stats_init(blocks[i]);
    }

    set_handler(SIGINT, on_stop);
    set_handler(SIGTERM, on_stop);
    set_handler(SIGUSR2, on_stop_ramp);
    signal(SIGPIPE, SIG_IGN);
    int tty = isatty(STDOUT_FILENO);
    printf("wspush-bench: %llu connections to %s, %u worker process(es), %.0f s\n",
           (unsigned long long)cfg.conns, cfg.url, cfg.procs, cfg.duration);
    fflush(stdout);

    static wsp_report_t rep;
    uint64_t start = wsp_net_mono_ns();
    wsp_report_init(&rep, &cfg, start);
    rep.start_epoch_ms = wsp_net_epoch_ms();
    pid_t self = getpid();
    unsigned started = 0;
    int status = 0;
    for (unsigned i = 0; i < cfg.procs; i++) {
        uint64_t first = cfg.conns * i / cfg.procs, end = cfg.conns * (i + 1) / cfg.procs;
        pid_t pid = fork();
        if (pid == 0)
            _exit(run_worker(&cfg, self, first, end, blocks[i], ctl));
        if (pid < 0) {
            fprintf(stderr, "wspush-bench: fork: %s\n", strerror(errno));
            g_stop = 1;
            status = 1;
            break;
        }
        pids[i] = pid;
        started++;
    }

    uint64_t end_ns = start + (uint64_t)(cfg.duration * 1e9);
    uint64_t next_status = start, next_report = start + (uint64_t)(cfg.report_interval * 1e9);
    uint64_t next_plain = start + 1000000000ull;
    uint64_t prev_setups = 0, prev_setups_ns = start;
    double inst_rate = 0;
    unsigned alive = started;
    uint64_t now = start;
    while (!g_stop && alive > 0) {
        struct timespec ts = {0, (long)LOOP_NS};
        (void)nanosleep(&ts, NULL); /* EINTR: a signal to look at */
        now = wsp_net_mono_ns();
        if (now >= end_ns)
            break;
        int ws;
        pid_t pid;
        while ((pid = waitpid(-1, &ws, WNOHANG)) > 0) {
            for (unsigned i = 0; i < started; i++) {
                if (pids[i] != pid)
                    continue;
                pids[i] = 0;
                alive--;
                blocks[i]->err[WSP_ERR_WORKER]++;
                blocks[i]->active = 0; /* its connections died with it; the writer is gone */
                blocks[i]->inflight = 0;
                fprintf(stderr, "wspush-bench: worker %d ended early (%s %d)\n", (int)pid,
                        WIFSIGNALED(ws) ? "signal" : "exit",
                        WIFSIGNALED(ws) ? WTERMSIG(ws) : WEXITSTATUS(ws));
                status = 1;
            }
        }
        if (g_stop_ramp && !ctl->stop_ramp) {
            ctl->stop_ramp = 1;
            printf("wspush-bench: SIGUSR2: no new connections from now on\n");
        }
        if (now < next_status)
            continue;
        next_status = now + STATUS_NS;
        wsp_report_merge(&rep, blocks, started);
        wsp_report_sample(&rep, now);
        const wsp_wstats_t *s = rep.sum;
        if (now - prev_setups_ns >= 500000000ull) { /* the setup rate over the last 0.5 s */
            inst_rate = (double)(s->setups - prev_setups) / ((double)(now - prev_setups_ns) / 1e9);
            prev_setups = s->setups;
            prev_setups_ns = now;
        }
        double t = (double)(now - start) / 1e9;
        if (!rep.ramp_done && (s->resolved >= cfg.conns || (ctl->stop_ramp && s->inflight == 0))) {
            rep.ramp_done = 1;
            rep.ramp_done_t = t;
            double span = s->last_setup_us > s->first_connect_us
                              ? (double)(s->last_setup_us - s->first_connect_us) / 1e6
                              : 0;
            printf("%sramp done t=%.2f connected=%llu target=%llu seconds=%.2f rate=%.0f "
                   "errors=%llu\n",
                   tty ? "\r\033[K" : "", t, (unsigned long long)s->setups,
                   (unsigned long long)cfg.conns, span, span > 0 ? (double)s->setups / span : 0,
                   (unsigned long long)wsp_report_errors(s));
        } else if (!rep.ramp_done && tty) {
            printf("\r\033[Kconnected %llu/%llu  setup %.0f/s  in flight %llu  errors %llu  "
                   "t=%.1fs",
                   (unsigned long long)s->active, (unsigned long long)cfg.conns, inst_rate,
                   (unsigned long long)s->inflight, (unsigned long long)wsp_report_errors(s), t);
        } else if (!rep.ramp_done && now >= next_plain) {
            next_plain = now + 1000000000ull;
            printf("progress t=%.1f connected=%llu target=%llu setup_rate=%.0f inflight=%llu "
                   "errors=%llu\n",
                   t, (unsigned long long)s->active, (unsigned long long)cfg.conns, inst_rate,
                   (unsigned long long)s->inflight, (unsigned long long)wsp_report_errors(s));
        }
        fflush(stdout);
        if (cfg.status_file)
            write_status(cfg.status_file, &rep, now);
        if (now >= next_report) {
            next_report = now + (uint64_t)(cfg.report_interval * 1e9);
            if (!cfg.quiet) {
                if (tty && !rep.ramp_done)
                    printf("\r\033[K");
                wsp_report_print(stdout, &rep, now, 0);
            }
        }
    }
    if (g_stop)
        rep.stopped_by = "signal";

    /* Tell the workers every seq anyone saw, so each counts what its connections missed. */
    wsp_report_merge(&rep, blocks, started);
    uint64_t top = rep.sum->max_seq < WSP_SEQ_MAX ? rep.sum->max_seq + 1 : WSP_SEQ_MAX;
    for (uint64_t k = 0; k < top; k++)
        ctl->seq_time_ms[k] = rep.sum->seq[k].time_min_ms;
    ctl->max_seq = rep.sum->max_seq;
    ctl->stop_ramp = 1;
    for (unsigned i = 0; i < started; i++)
        if (pids[i] > 0)
            (void)kill(pids[i], SIGTERM); /* our own child: cannot fail but for ESRCH */
    uint64_t deadline = wsp_net_mono_ns() + STOP_GRACE_NS;
    while (alive > 0) {
        int ws;
        pid_t pid = waitpid(-1, &ws, WNOHANG);
        if (pid > 0) {
            for (unsigned i = 0; i < started; i++)
                if (pids[i] == pid) {
                    pids[i] = 0;
                    alive--;
                }
            continue;
        }
        if (pid < 0 && errno == ECHILD)
            break;
        if (wsp_net_mono_ns() >= deadline) {
            for (unsigned i = 0; i < started; i++)
                if (pids[i] > 0) {
                    (void)kill(pids[i], SIGKILL);
                    if (__atomic_load_n(&blocks[i]->figures_final, __ATOMIC_ACQUIRE))
                        continue; /* only its sockets were still closing */
                    fprintf(stderr, "wspush-bench: worker %d did not stop: killed\n", (int)pids[i]);
                    blocks[i]->err[WSP_ERR_WORKER]++;
                    status = 1;
                }
            deadline = UINT64_MAX;
        }
        struct timespec ts = {0, 20000000};
        (void)nanosleep(&ts, NULL);
    }
    now = wsp_net_mono_ns();
    wsp_report_merge(&rep, blocks, started);
    wsp_report_sample(&rep, now);
    struct rusage self_ru, kids;
    if (getrusage(RUSAGE_SELF, &self_ru) == 0 && getrusage(RUSAGE_CHILDREN, &kids) == 0) {
        rep.cpu_user_s = (double)(self_ru.ru_utime.tv_sec + kids.ru_utime.tv_sec) +
                         (double)(self_ru.ru_utime.tv_usec + kids.ru_utime.tv_usec) / 1e6;
        rep.cpu_sys_s = (double)(self_ru.ru_stime.tv_sec + kids.ru_stime.tv_sec) +
                        (double)(self_ru.ru_stime.tv_usec + kids.ru_stime.tv_usec) / 1e6;
    }
    if (tty && !rep.ramp_done)
        printf("\r\033[K");
    wsp_report_print(stdout, &rep, now, 1);
    if (cfg.status_file)
        write_status(cfg.status_file, &rep, now);
    if (cfg.json) {
        rv = wsp_report_json(cfg.json, &rep, now);
        if (rv < 0) {
            fprintf(stderr, "wspush-bench: writing %s: %s\n", cfg.json, strerror(-rv));
            status = 1;
        }
    }
    wsp_report_free(&rep);
    free(blocks);
    free(pids);
    (void)munmap(shm, total); /* exiting anyway */
    return status;
}
