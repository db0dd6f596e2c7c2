/* wspush-entry: the container image's ENTRYPOINT (deploy/Containerfile).
 *
 * 1. Threads. Runs wspush with --threads from $WSP_THREADS, or else from the CPUs this
 *    container may use: the affinity mask, capped by the cgroup CPU quota (podman/docker
 *    --cpus). wspush's own default, the online CPUs, counts the host's CPUs, which in a
 *    container limited to 2 CPUs of a 64-CPU host means 64 shards fighting for 2 CPUs.
 *    Our --threads goes first, so a --threads among the arguments still wins (wspush: later
 *    flags win).
 * 2. PID 1. In its own PID namespace the entrypoint is PID 1. wspush must not be: a --procs
 *    worker takes getppid() == 1 to mean "my supervisor is gone" and exits, so a supervisor
 *    that is PID 1 restarts its workers forever. So when we are PID 1 we stay, as a minimal
 *    init: fork wspush, forward every signal to it, reap every zombie, and exit with its
 *    status (128 + signal if it was killed). Otherwise (systemd, podman run --init, a shell)
 *    we simply exec wspush.
 *
 * No shell is needed: the image is FROM scratch. */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef WSP_ENTRY_BIN
#define WSP_ENTRY_BIN "/usr/bin/wspush"
#endif
#define WSP_ENTRY_MAX_THREADS 1024 /* what wspush --threads accepts (server/config.c) */
#define WSP_ENTRY_AUTO_MAX 64      /* the default never goes past docs/OPERATIONS.md's 1..64 */

/* Reads the first line of path into buf; 0 or -1. */
static int entry_read_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    char *s = fgets(buf, (int)len, f);
    (void)fclose(f); /* read-only: nothing to flush */
    if (s == NULL)
        return -1;
    buf[strcspn(buf, "\n")] = '\0';
    return 0;
}

/* CPUs allowed by a quota of quota/period microseconds, rounded up; 0 = no limit. */
static unsigned entry_quota_cpus(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > WSP_ENTRY_MAX_THREADS ? WSP_ENTRY_MAX_THREADS : (unsigned)n;
}

/* cgroup v2: "QUOTA PERIOD" or "max PERIOD" in cpu.max; 0 = no limit or unreadable. */
static unsigned entry_cgroup2_dir(const char *dir)
{
    char path[4096], line[128];
    if (snprintf(path, sizeof(path), "/sys/fs/cgroup%s/cpu.max", dir) >= (int)sizeof(path) ||
        entry_read_line(path, line, sizeof(line)) != 0)
        return 0;
    long long quota, period;
    if (sscanf(line, "%lld %lld", &quota, &period) != 2)
        return 0; /* "max 100000": unlimited */
    return entry_quota_cpus(quota, period);
}

/* The tightest cpu.max from our cgroup up to the root: a limit may sit on a parent (a
 * systemd slice, the pod). Inside a container's cgroup namespace our cgroup is "/". */
static unsigned entry_cgroup2_cpus(void)
{
    char line[4096];
    if (entry_read_line("/proc/self/cgroup", line, sizeof(line)) != 0 ||
        strncmp(line, "0::", 3) != 0)
        return 0; /* not the unified hierarchy */
    char *dir = line + 3;
    unsigned best = 0;
    for (;;) {
        unsigned n = entry_cgroup2_dir(strcmp(dir, "/") == 0 ? "" : dir);
        if (n && (best == 0 || n < best))
            best = n;
        char *slash = strrchr(dir, '/');
        if (slash == NULL || slash == dir)
            break;
        *slash = '\0';
    }
    unsigned root = entry_cgroup2_dir("");
    return root && (best == 0 || root < best) ? root : best;
}

/* cgroup v1, as a container sees its own cpu controller; 0 = no limit or unreadable. */
static unsigned entry_cgroup1_cpus(void)
{
    static const char *const dirs[] = {"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpu,cpuacct"};
    for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
        char path[256], q[64], p[64];
        snprintf(path, sizeof(path), "%s/cpu.cfs_quota_us", dirs[i]);
        if (entry_read_line(path, q, sizeof(q)) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/cpu.cfs_period_us", dirs[i]);
        if (entry_read_line(path, p, sizeof(p)) != 0)
            continue;
        return entry_quota_cpus(atoll(q), atoll(p));
    }
    return 0;
}

/* The CPUs we may run on, capped by the cgroup quota; at least 1. */
static unsigned entry_cpus(void)
{
    cpu_set_t set;
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = online > 0 ? (unsigned)online : 1;
    if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0)
        n = (unsigned)CPU_COUNT(&set);
    unsigned quota = entry_cgroup2_cpus();
    if (quota == 0)
        quota = entry_cgroup1_cpus();
    if (quota && quota < n)
        n = quota;
    if (n > WSP_ENTRY_AUTO_MAX)
        n = WSP_ENTRY_AUTO_MAX;
    return n ? n : 1;
}

/* $WSP_THREADS as a number in 1..1024; 0 when unset or empty, -1 when malformed. */
static int entry_env_threads(void)
{
    const char *s = getenv("WSP_THREADS");
    if (s == NULL || *s == '\0')
        return 0;
    unsigned long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > WSP_ENTRY_MAX_THREADS)
            return -1;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    return v >= 1 && v <= WSP_ENTRY_MAX_THREADS ? (int)v : -1;
}

/* PID 1: run argv as our only child, forward signals, reap everything; never returns. */
static void entry_init(char **argv)
{
    sigset_t all, old;
    sigfillset(&all);
    /* Blocked before fork, so that no signal is lost between fork and sigwaitinfo(). A
     * blocked signal reaches PID 1 even without a handler; an ignored one would not. */
    if (sigprocmask(SIG_BLOCK, &all, &old) != 0) {
        perror("wspush-entry: sigprocmask");
        exit(1);
    }
    pid_t child = fork();
    if (child < 0) {
        perror("wspush-entry: fork");
        exit(1);
    }
    if (child == 0) {
        (void)sigprocmask(SIG_SETMASK, &old, NULL); /* cannot fail with a valid set */
        execv(argv[0], argv);
        fprintf(stderr, "wspush-entry: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    for (;;) {
        siginfo_t si;
        int sig = sigwaitinfo(&all, &si);
        if (sig < 0)
            continue; /* EINTR */
        if (sig != SIGCHLD) {
            (void)kill(child, sig); /* ESRCH: it is exiting, SIGCHLD follows */
            continue;
        }
        int st;
        pid_t p;
        while ((p = waitpid(-1, &st, WNOHANG)) > 0) {
            if (p != child)
                continue; /* an orphan re-parented to us: reaped, nothing else */
            if (WIFSIGNALED(st))
                exit(128 + WTERMSIG(st));
            exit(WEXITSTATUS(st));
        }
    }
}

int main(int argc, char **argv)
{
    int threads = entry_env_threads();
    if (threads < 0) {
        fprintf(stderr, "wspush-entry: WSP_THREADS wants 1..%d, got '%s'\n", WSP_ENTRY_MAX_THREADS,
                getenv("WSP_THREADS"));
        return 2;
    }
    if (threads == 0)
        threads = (int)entry_cpus();
    char nbuf[16];
    snprintf(nbuf, sizeof(nbuf), "%d", threads);
    char **args = calloc((size_t)argc + 3, sizeof(char *));
    if (args == NULL) {
        fprintf(stderr, "wspush-entry: out of memory\n");
        return 1;
    }
    int k = 0;
    args[k++] = WSP_ENTRY_BIN;
    args[k++] = "--threads";
    args[k++] = nbuf;
    for (int i = 1; i < argc; i++)
        args[k++] = argv[i];
    args[k] = NULL;
    if (getpid() == 1)
        entry_init(args);
    execv(args[0], args);
    fprintf(stderr, "wspush-entry: cannot run %s: %s\n", args[0], strerror(errno));
    return 127;
}
