/* wspush-bench: the C1000K load generator. The parent parses and checks the arguments, forks
 * worker processes (the open-file cap is per process), merges their shared-memory figures
 * into the reference tool's report, and stops them at --duration or on SIGINT. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "args.h"
#include "fleet.h"
#include "jwt.h"
#include "net.h"
#include "report.h"
#include "stats.h"
#include "tally.h"
#include "tokens.h"

#define LOOP_NS 50000000ull          /* the parent wakes every 50 ms */
#define STATUS_NS 250000000ull       /* status file and terminal progress */
#define STOP_GRACE_NS 10000000000ull /* workers get 10 s to finish after SIGTERM */

static volatile sig_atomic_t g_stop;      /* SIGINT/SIGTERM */
static volatile sig_atomic_t g_stop_ramp; /* SIGUSR2 */
static volatile sig_atomic_t g_resume;    /* SIGHUP: --recover's dropped connections return */

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

static void on_resume(int sig)
{
    (void)sig;
    g_resume = 1;
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
            "ramp_done=%d\nmessages=%llu\nmax_seq=%llu\nerrors=%llu\npid=%d\n"
            "dropped=%llu\nresumed=%llu\nrecovered=%llu\nnot_recovered=%llu\nreplayed=%llu\n",
            (double)(now - r->start_ns) / 1e9, (unsigned long long)r->cfg->conns,
            (unsigned long long)s->active, (unsigned long long)s->setups,
            (unsigned long long)s->resolved, (unsigned long long)s->inflight, r->ramp_done,
            (unsigned long long)s->messages, (unsigned long long)s->max_seq,
            (unsigned long long)wsp_report_errors(s), (int)getpid(), (unsigned long long)s->dropped,
            (unsigned long long)s->resumed, (unsigned long long)s->recovered,
            (unsigned long long)s->not_recovered, (unsigned long long)s->replayed);
    if (fclose(f) == 0)
        (void)rename(tmp, path); /* readers see the old or the new file, never half */
}

/* What the parent loop carries between wake-ups. */
typedef struct mon_s {
    const wsp_bench_cfg_t *cfg;
    wsp_report_t *rep;
    wsp_fleet_t *fleet;
    int tty;
    uint64_t next_status, next_report, next_plain;
    uint64_t prev_setups, prev_setups_ns;
    double inst_rate; /* setups per second over the last 0.5 s */
} mon_t;

/* The ramp line: once when it is done, else progress (a live line on a terminal). */
static void print_ramp(mon_t *m, uint64_t now)
{
    wsp_report_t *rep = m->rep;
    const wsp_wstats_t *s = rep->sum;
    unsigned long long conns = m->cfg->conns, errors = wsp_report_errors(s);
    double t = (double)(now - rep->start_ns) / 1e9;
    if (!rep->ramp_done &&
        (s->resolved >= m->cfg->conns || (m->fleet->ctl->stop_ramp && s->inflight == 0))) {
        rep->ramp_done = 1;
        rep->ramp_done_t = t;
        double span = s->last_setup_us > s->first_connect_us
                          ? (double)(s->last_setup_us - s->first_connect_us) / 1e6
                          : 0;
        printf("%sramp done t=%.2f connected=%llu target=%llu seconds=%.2f rate=%.0f "
               "errors=%llu\n",
               m->tty ? "\r\033[K" : "", t, (unsigned long long)s->setups, conns, span,
               span > 0 ? (double)s->setups / span : 0, errors);
    } else if (!rep->ramp_done && m->tty) {
        printf("\r\033[Kconnected %llu/%llu  setup %.0f/s  in flight %llu  errors %llu  t=%.1fs",
               (unsigned long long)s->active, conns, m->inst_rate, (unsigned long long)s->inflight,
               errors, t);
    } else if (!rep->ramp_done && now >= m->next_plain) {
        m->next_plain = now + 1000000000ull;
        printf("progress t=%.1f connected=%llu target=%llu setup_rate=%.0f inflight=%llu "
               "errors=%llu\n",
               t, (unsigned long long)s->active, conns, m->inst_rate,
               (unsigned long long)s->inflight, errors);
    }
    fflush(stdout);
}

/* Every STATUS_NS: merge the workers' figures, then progress, status file and report. */
static void monitor(mon_t *m, uint64_t now)
{
    wsp_report_t *rep = m->rep;
    m->next_status = now + STATUS_NS;
    wsp_report_merge(rep, m->fleet->blocks, m->fleet->started);
    wsp_report_sample(rep, now);
    const wsp_wstats_t *s = rep->sum;
    if (now - m->prev_setups_ns >= 500000000ull) {
        m->inst_rate =
            (double)(s->setups - m->prev_setups) / ((double)(now - m->prev_setups_ns) / 1e9);
        m->prev_setups = s->setups;
        m->prev_setups_ns = now;
    }
    print_ramp(m, now);
    if (m->cfg->status_file)
        write_status(m->cfg->status_file, rep, now);
    if (now >= m->next_report) {
        m->next_report = now + (uint64_t)(m->cfg->report_interval * 1e9);
        if (!m->cfg->quiet) {
            if (m->tty && !rep->ramp_done)
                printf("\r\033[K");
            wsp_report_print(stdout, rep, now, 0);
        }
    }
}

/* The parent's loop: until --duration, a signal, or no worker left. Returns 1 if a worker
 * ended early, else 0. */
static int run(mon_t *m)
{
    wsp_fleet_t *fl = m->fleet;
    uint64_t start = m->rep->start_ns;
    uint64_t end_ns = start + (uint64_t)(m->cfg->duration * 1e9);
    m->next_status = start;
    m->next_report = start + (uint64_t)(m->cfg->report_interval * 1e9);
    m->next_plain = start + 1000000000ull;
    m->prev_setups_ns = start;
    int died = 0;
    while (!g_stop && fl->alive > 0) {
        struct timespec ts = {0, (long)LOOP_NS};
        (void)nanosleep(&ts, NULL); /* EINTR: a signal to look at */
        uint64_t now = wsp_net_mono_ns();
        if (now >= end_ns)
            break;
        if (wsp_fleet_reap(fl) > 0)
            died = 1;
        if (g_stop_ramp && !fl->ctl->stop_ramp) {
            fl->ctl->stop_ramp = 1;
            printf("wspush-bench: SIGUSR2: no new connections from now on\n");
        }
        if (g_resume && !fl->ctl->resume) {
            fl->ctl->resume = 1;
            printf("wspush-bench: SIGHUP: dropped connections come back with since=\n");
        }
        if (now >= m->next_status)
            monitor(m, now);
    }
    if (g_stop)
        m->rep->stopped_by = "signal";
    return died;
}

/* The bench processes' CPU time, parent and workers, into rep. */
static void take_cpu(wsp_report_t *rep)
{
    struct rusage self_ru, kids;
    if (getrusage(RUSAGE_SELF, &self_ru) != 0 || getrusage(RUSAGE_CHILDREN, &kids) != 0)
        return;
    rep->cpu_user_s = (double)(self_ru.ru_utime.tv_sec + kids.ru_utime.tv_sec) +
                      (double)(self_ru.ru_utime.tv_usec + kids.ru_utime.tv_usec) / 1e6;
    rep->cpu_sys_s = (double)(self_ru.ru_stime.tv_sec + kids.ru_stime.tv_sec) +
                     (double)(self_ru.ru_stime.tv_usec + kids.ru_stime.tv_usec) / 1e6;
}

/* Once every worker stopped: which broadcasts were expected, and what each connection still
 * open (in a live or a dead worker) missed of them (bench/tally.h). */
static void tally(wsp_report_t *rep, wsp_fleet_t *fl)
{
    wsp_report_merge(rep, fl->blocks, fl->started);
    wsp_tally_win_t win;
    wsp_tally_window(&win, rep->sum->seq, rep->cfg->expect_bcasts);
    wsp_fleet_tally(fl, &win, &rep->dead_open);
    wsp_report_merge(rep, fl->blocks, fl->started);
    win.seq = rep->sum->seq; /* the merge replaced the table's contents, not the table */
    rep->win = win;
    wsp_tally_sum(&win, rep->sum, &rep->delivery);
    rep->tallied = 1;
}

/* Stops the workers and writes the final report. Returns 0 if the run delivered (every
 * broadcast to every connection open for it, once, no error), else 1. */
static int finish(mon_t *m)
{
    wsp_report_t *rep = m->rep;
    wsp_fleet_t *fl = m->fleet;
    fl->ctl->stop_ramp = 1;
    int status = wsp_fleet_stop(fl, STOP_GRACE_NS) > 0;
    uint64_t now = wsp_net_mono_ns();
    tally(rep, fl);
    wsp_report_sample(rep, now);
    take_cpu(rep);
    if (m->tty && !rep->ramp_done)
        printf("\r\033[K");
    wsp_report_print(stdout, rep, now, 1);
    if (m->cfg->status_file)
        write_status(m->cfg->status_file, rep, now);
    if (m->cfg->json) {
        int rv = wsp_report_json(m->cfg->json, rep, now);
        if (rv < 0) {
            fprintf(stderr, "wspush-bench: writing %s: %s\n", m->cfg->json, strerror(-rv));
            status = 1;
        }
    }
    wsp_report_verdict(stdout, rep);
    return status || !wsp_report_ok(rep);
}

/* The arguments, or the exit status to leave with (-1 = go on). */
static int parse(wsp_bench_cfg_t *cfg, int argc, char **argv)
{
    struct rlimit rl;
    wsp_args_limits_t lim = {0, mem_available()};
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_max != RLIM_INFINITY)
        lim.nofile = rl.rlim_max;
    char err[512];
    int rv = wsp_args_parse(cfg, argc, argv, &lim, err, sizeof(err));
    if (rv == 1) {
        fputs(wsp_args_usage, stdout);
        return 0;
    }
    if (rv < 0) {
        fprintf(stderr, "wspush-bench: %s\n", err);
        return 2;
    }
    return -1;
}

int main(int argc, char **argv)
{
    static wsp_bench_cfg_t cfg;
    int rv = parse(&cfg, argc, argv);
    if (rv >= 0)
        return rv;
    static wsp_fleet_t fleet;
    if ((rv = wsp_fleet_map(&fleet, &cfg)) < 0) {
        fprintf(stderr, "wspush-bench: mmap: %s\n", strerror(-rv));
        return 1;
    }
    /* Every token before any worker exists: signing is no part of the measured ramp. */
    static wsp_tokens_t tokens;
    if (cfg.jwt_alg) {
        char err[256];
        if ((rv = wsp_tokens_mint(&tokens, &cfg, err, sizeof(err))) < 0) {
            fprintf(stderr, "wspush-bench: %s\n", err);
            wsp_fleet_free(&fleet);
            return 1;
        }
        cfg.tokens = &tokens;
        printf("wspush-bench: minted %llu %s tokens in %.2f s, before the ramp\n",
               (unsigned long long)tokens.n, wsp_jwt_alg_name(cfg.jwt_alg), tokens.mint_s);
    }
    set_handler(SIGINT, on_stop);
    set_handler(SIGTERM, on_stop);
    set_handler(SIGUSR2, on_stop_ramp);
    set_handler(SIGHUP, on_resume);
    signal(SIGPIPE, SIG_IGN);
    printf("wspush-bench: %llu connections to %s, %u worker process(es), %.0f s\n",
           (unsigned long long)cfg.conns, cfg.url, cfg.procs, cfg.duration);
    fflush(stdout);

    static wsp_report_t rep;
    wsp_report_init(&rep, &cfg, wsp_net_mono_ns());
    rep.start_epoch_ms = wsp_net_epoch_ms();
    int status = 0;
    if ((rv = wsp_fleet_fork(&fleet)) < 0) {
        fprintf(stderr, "wspush-bench: fork: %s\n", strerror(-rv));
        g_stop = 1;
        status = 1;
    }
    mon_t mon = {.cfg = &cfg, .rep = &rep, .fleet = &fleet, .tty = isatty(STDOUT_FILENO)};
    status |= run(&mon);
    status |= finish(&mon);
    wsp_report_free(&rep);
    wsp_fleet_free(&fleet);
    wsp_tokens_free(&tokens);
    return status;
}
