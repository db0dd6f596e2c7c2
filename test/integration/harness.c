/* The harness's processes: the wspush server it starts, waits for and stops by pid, its log,
 * and other binaries run to completion (harness.h documents each function). */
#include "harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"

const char *wsp_it_binary;

int64_t wsp_it_now_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t wsp_it_epoch_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail for CLOCK_REALTIME */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void wsp_it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int wsp_it_left_ms(int64_t deadline)
{
    int64_t d = deadline - wsp_it_now_ms();
    return d > 0 ? (int)d : 0;
}

int wsp_it_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    rl.rlim_cur = rl.rlim_max;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0 ? 0 : -errno;
}

/* ---- processes ---- */

/* The whole file as a malloc'd C string ("" when empty); NULL on error. */
static char *read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    wsp_buf_t b = {0};
    int rv = wsp_buf_append(&b, "", 0); /* an empty file is "", not NULL */
    char chunk[4096];
    ssize_t r;
    while (rv == 0 && (r = read(fd, chunk, sizeof(chunk))) != 0) {
        if (r < 0)
            rv = errno == EINTR ? 0 : -errno;
        else
            rv = wsp_buf_append(&b, chunk, (size_t)r);
    }
    close(fd);
    if (rv < 0)
        wsp_buf_free(&b);
    return b.data;
}

/* A temp file for a child's output; returns its fd (path filled) or a negative errno. */
static int temp_file(char *path, size_t cap, const char *what)
{
    const char *dir = getenv("TMPDIR");
    if (dir == NULL || *dir == '\0')
        dir = "/tmp";
    int n = snprintf(path, cap, "%s/wspush-it-%s-XXXXXX", dir, what);
    if (n < 0 || (size_t)n >= cap)
        return -ENAMETOOLONG;
    int fd = mkostemp(path, O_CLOEXEC);
    return fd >= 0 ? fd : -errno;
}

/* Forks and execs argv[0] with stdin from /dev/null and the given stdout/stderr fds. The
 * child dies with us (PR_SET_PDEATHSIG): a crashed or timed-out test leaves no server behind. */
static pid_t spawn(char *const *argv, int out_fd, int err_fd)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid != 0)
        return pid < 0 ? -errno : pid;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        _exit(127);
    int in = open("/dev/null", O_RDONLY);
    if (in < 0 || dup2(in, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(err_fd, 2) < 0)
        _exit(127);
    execv(argv[0], argv);
    _exit(127);
}

static int decode_status(int st)
{
    if (WIFEXITED(st))
        return WEXITSTATUS(st);
    if (WIFSIGNALED(st))
        return -128 - WTERMSIG(st);
    return -ECHILD;
}

/* Waits for pid up to timeout_ms, SIGKILLs it after. Returns as wsp_it_server_wait(). */
static int wait_pid(pid_t pid, int timeout_ms)
{
    int64_t deadline = wsp_it_now_ms() + timeout_ms;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return decode_status(st);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (wsp_it_now_ms() >= deadline)
            break;
        wsp_it_sleep_ms(5);
    }
    fprintf(stderr, "harness: pid %d did not exit in %d ms: SIGKILL\n", (int)pid, timeout_ms);
    (void)kill(pid, SIGKILL); /* our own child: it cannot have been reaped yet */
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return -ETIMEDOUT;
}

/* Finds "port=<N>" on an event=listening line; 0 when absent. */
static int listening_port(const char *log)
{
    const char *l = strstr(log, "event=listening ");
    if (l == NULL)
        return 0;
    const char *eol = strchr(l, '\n');
    const char *p = strstr(l, " port=");
    if (p == NULL || eol == NULL || p > eol) /* only a whole line counts */
        return 0;
    return atoi(p + 6);
}

int wsp_it_server_start(wsp_it_server_t *s, const char *const *extra)
{
    memset(s, 0, sizeof(*s));
    /* --admin on an ephemeral port: tests run in parallel and must not share 8081. */
    const char *argv[64] = {wsp_it_binary, "--threads",  "2", "--port",  "0",          "--bind",
                            "127.0.0.1",   "--interval", "0", "--admin", "127.0.0.1:0"};
    size_t n = 11;
    /* ctest runs the suite once per send path: WSP_IT_IO_URING=on|off|auto. */
    const char *uring = getenv("WSP_IT_IO_URING");
    if (uring != NULL && *uring != '\0') {
        argv[n++] = "--io-uring";
        argv[n++] = uring;
    }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (n + 1 >= sizeof(argv) / sizeof(argv[0]))
            return -E2BIG;
        argv[n++] = extra[i];
    }
    argv[n] = NULL;
    if (wsp_it_binary == NULL)
        return -EINVAL;
    int fd = temp_file(s->log_path, sizeof(s->log_path), "log");
    if (fd < 0)
        return fd;
    pid_t pid = spawn((char *const *)(uintptr_t)argv, fd, fd);
    close(fd);
    if (pid < 0) {
        unlink(s->log_path);
        s->log_path[0] = '\0';
        return pid;
    }
    s->pid = pid;
    int64_t deadline = wsp_it_now_ms() + 10000;
    for (;;) {
        char *log = read_file(s->log_path);
        int port = log != NULL ? listening_port(log) : 0;
        free(log);
        if (port > 0) {
            s->port = port;
            return 0;
        }
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            s->pid = 0;
            s->result = decode_status(st);
            fprintf(stderr, "harness: wspush exited (%d) before listening\n", s->result);
            (void)wsp_it_server_stop(s); /* prints and removes the log */
            return -ECHILD;
        }
        if (wsp_it_now_ms() >= deadline)
            break;
        wsp_it_sleep_ms(10);
    }
    fprintf(stderr, "harness: no event=listening line in 10 s\n");
    (void)kill(pid, SIGKILL);
    (void)wait_pid(pid, 10000);
    s->pid = 0;
    s->result = -ETIMEDOUT;
    (void)wsp_it_server_stop(s);
    return -ETIMEDOUT;
}

int wsp_it_server_signal(wsp_it_server_t *s, int sig)
{
    if (s->pid <= 0)
        return -ESRCH;
    return kill(s->pid, sig) == 0 ? 0 : -errno;
}

int wsp_it_server_wait(wsp_it_server_t *s, int timeout_ms)
{
    if (s->pid <= 0)
        return s->result;
    s->result = wait_pid(s->pid, timeout_ms);
    s->pid = 0;
    return s->result;
}

char *wsp_it_server_log(const wsp_it_server_t *s)
{
    return s->log_path[0] ? read_file(s->log_path) : NULL;
}

/* Whether line[0..n) contains every needle. */
static int line_has_all(const char *line, size_t n, const char *const *needles)
{
    for (size_t i = 0; needles[i] != NULL; i++) {
        size_t k = strlen(needles[i]);
        int found = 0;
        for (size_t j = 0; j + k <= n && !found; j++)
            found = memcmp(line + j, needles[i], k) == 0;
        if (!found)
            return 0;
    }
    return 1;
}

int wsp_it_count_lines(const char *text, const char *const *needles)
{
    int count = 0;
    while (*text) {
        const char *eol = strchr(text, '\n');
        size_t n = eol != NULL ? (size_t)(eol - text) : strlen(text);
        count += line_has_all(text, n, needles);
        text += n + (eol != NULL);
    }
    return count;
}

int wsp_it_server_wait_log(const wsp_it_server_t *s, const char *const *needles, int timeout_ms)
{
    int64_t deadline = wsp_it_now_ms() + timeout_ms;
    for (;;) {
        char *log = wsp_it_server_log(s);
        int n = log != NULL ? wsp_it_count_lines(log, needles) : 0;
        free(log);
        if (n > 0)
            return 0;
        if (wsp_it_now_ms() >= deadline)
            return -ETIMEDOUT;
        wsp_it_sleep_ms(10);
    }
}

int wsp_it_server_stop(wsp_it_server_t *s)
{
    if (s->pid > 0) {
        (void)wsp_it_server_signal(s, SIGTERM);
        (void)wsp_it_server_wait(s, 15000); /* the drain takes up to 5 s */
    }
    if (s->log_path[0]) {
        if (s->result != 0) {
            char *log = wsp_it_server_log(s);
            fprintf(stderr, "harness: wspush result %d; its log:\n%s", s->result,
                    log ? log : "(unreadable)\n");
            free(log);
        }
        unlink(s->log_path);
        s->log_path[0] = '\0';
    }
    return s->result;
}

int wsp_it_fixture_setup(void **state)
{
    wsp_it_server_t *s = calloc(1, sizeof(*s));
    *state = s;
    return s != NULL ? 0 : -1;
}

int wsp_it_fixture_teardown(void **state)
{
    wsp_it_server_t *s = *state;
    if (s != NULL)
        (void)wsp_it_server_stop(s); /* the test asserted what it wanted already */
    free(s);
    *state = NULL;
    return 0;
}

int wsp_it_run(const char *bin, const char *const *args, int timeout_ms, char **out, char **err)
{
    const char *argv[64] = {bin};
    size_t n = 1;
    for (size_t i = 0; args != NULL && args[i] != NULL; i++) {
        if (n + 1 >= sizeof(argv) / sizeof(argv[0]))
            return -E2BIG;
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    char opath[128], epath[128];
    int ofd = temp_file(opath, sizeof(opath), "out");
    if (ofd < 0)
        return ofd;
    int efd = temp_file(epath, sizeof(epath), "err");
    if (efd < 0) {
        close(ofd);
        unlink(opath);
        return efd;
    }
    pid_t pid = spawn((char *const *)(uintptr_t)argv, ofd, efd);
    close(ofd);
    close(efd);
    int rv = pid < 0 ? pid : wait_pid(pid, timeout_ms);
    *out = read_file(opath);
    *err = read_file(epath);
    unlink(opath);
    unlink(epath);
    return rv;
}
