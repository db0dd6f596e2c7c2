#include "reexec.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "handover.h"

extern char **environ;

static char reexec_path[PATH_MAX];
static char **reexec_argv;

int wsp_reexec_record(int argc, char **argv)
{
    (void)argc;
    reexec_argv = argv;
    ssize_t n = readlink("/proc/self/exe", reexec_path, sizeof(reexec_path) - 1);
    if (n < 0)
        return -errno;
    reexec_path[n] = '\0';
    return 0;
}

const char *wsp_reexec_path(void) { return reexec_path; }

char **wsp_reexec_env(int fd, const char *epoch)
{
    static char var[sizeof(WSP_REEXEC_ENV) + 12];
    static char evar[sizeof(WSP_REEXEC_EPOCH_ENV) + 64];
    snprintf(var, sizeof(var), WSP_REEXEC_ENV "=%d", fd);
    snprintf(evar, sizeof(evar), WSP_REEXEC_EPOCH_ENV "=%.40s", epoch ? epoch : "");
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof(*env)); /* once per upgrade */
    if (env == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], WSP_REEXEC_ENV "=", sizeof(WSP_REEXEC_ENV)) != 0 &&
            strncmp(environ[i], WSP_REEXEC_EPOCH_ENV "=", sizeof(WSP_REEXEC_EPOCH_ENV)) != 0)
            env[k++] = environ[i];
    env[k++] = var;
    if (epoch && *epoch)
        env[k] = evar;
    return env;
}

const char *wsp_reexec_inherited_epoch(void)
{
    static char ep[64];
    const char *v = getenv(WSP_REEXEC_EPOCH_ENV);
    if (v == NULL || strlen(v) >= sizeof(ep))
        return NULL;
    strcpy(ep, v);
    (void)unsetenv(WSP_REEXEC_EPOCH_ENV); /* only fails for a bad name */
    return ep;
}

int wsp_reexec_spawn(uv_loop_t *loop, uv_process_t *proc, int sock, const char *epoch,
                     uv_exit_cb exit_cb)
{
    if (reexec_path[0] == '\0' || reexec_argv == NULL)
        return -ENOENT;
    char **env = wsp_reexec_env(WSP_REEXEC_FD, epoch);
    if (env == NULL)
        return -ENOMEM;
    uv_stdio_container_t stdio[4];
    _Static_assert(WSP_REEXEC_FD == 3, "stdio[3] is the handover socket");
    stdio[0].flags = UV_IGNORE;
    for (int i = 1; i < 4; i++) {
        stdio[i].flags = UV_INHERIT_FD;
        stdio[i].data.fd = i < 3 ? i : sock;
    }
    uv_process_options_t opts;
    memset(&opts, 0, sizeof(opts));
    opts.file = reexec_path;
    opts.args = reexec_argv;
    opts.env = env;
    opts.exit_cb = exit_cb;
    opts.stdio_count = 4;
    opts.stdio = stdio;
    int rv = uv_spawn(loop, proc, &opts);
    free(env);
    return rv;
}

int wsp_reexec_inherited(void)
{
    const char *v = getenv(WSP_REEXEC_ENV);
    if (v == NULL)
        return -1;
    char *end;
    long n = strtol(v, &end, 10);
    int fd = *v && *end == '\0' && n >= 3 && n < 1024 ? (int)n : -1;
    (void)unsetenv(WSP_REEXEC_ENV); /* only fails for a bad name */
    /* Inherited without close-on-exec: no later child may get it. */
    if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
        return -1;
    return fd;
}

int wsp_reexec_socketpair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    int size = 2 * WSP_HO_DGRAM_MAX;
    for (int i = 0; i < 2; i++)
        if (setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) != 0 ||
            setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &size, sizeof(size)) != 0) {
            int err = -errno;
            close(sv[0]);
            close(sv[1]);
            return err;
        }
    return 0;
}

int wsp_reexec_timeout(int sock, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    if (setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0 ||
        setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0)
        return -errno;
    return 0;
}

int wsp_reexec_send(int sock, const void *buf, size_t len, const int *fds, unsigned nfds)
{
    if (nfds > WSP_HO_FDS_MAX)
        return -EINVAL;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * WSP_HO_FDS_MAX)];
    } ctl;
    struct iovec iov = {.iov_base = (void *)(uintptr_t)buf, .iov_len = len};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    if (nfds > 0) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.b;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    for (;;) {
        ssize_t n = sendmsg(sock, &m, MSG_NOSIGNAL);
        if (n == (ssize_t)len)
            return 0;
        if (n >= 0)
            return -EMSGSIZE; /* a datagram goes whole or not at all */
        if (errno != EINTR)
            return -errno;
    }
}

/* Closes every descriptor a control message brought (a refused datagram). */
static void reexec_close_cmsg(struct msghdr *m)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            close(fd);
        }
    }
}

ssize_t wsp_reexec_recv(int sock, void *buf, size_t cap, int *fds, unsigned maxfds, unsigned *nfds,
                        int flags)
{
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int) * WSP_HO_FDS_MAX)];
    } ctl;
    struct iovec iov = {.iov_base = buf, .iov_len = cap};
    struct msghdr m = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b, .msg_controllen = sizeof(ctl.b)};
    ssize_t n;
    do
        n = recvmsg(sock, &m, flags | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    *nfds = 0;
    int bad = (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c && !bad; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        if (*nfds + k > maxfds) {
            bad = 1;
            break;
        }
        memcpy(fds + *nfds, CMSG_DATA(c), k * sizeof(int));
        *nfds += (unsigned)k;
    }
    if (bad) {
        reexec_close_cmsg(&m);
        *nfds = 0;
        return -EBADMSG;
    }
    return n;
}

/* Sends state to $NOTIFY_SOCKET with fd (SCM_RIGHTS) if fd >= 0. 1 when there is no
 * such socket, 0 when sent, or a negative errno. */
static int reexec_notify_fd(const char *state, int fd)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || (path[0] != '/' && path[0] != '@'))
        return 1;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    size_t len = strlen(path);
    if (len >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0'; /* an abstract socket */
    int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    union {
        struct cmsghdr h;
        char b[CMSG_SPACE(sizeof(int))];
    } ctl;
    struct iovec iov = {.iov_base = (void *)(uintptr_t)state, .iov_len = strlen(state)};
    struct msghdr m = {.msg_name = &sa,
                       .msg_namelen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len),
                       .msg_iov = &iov,
                       .msg_iovlen = 1};
    if (fd >= 0) {
        memset(&ctl, 0, sizeof(ctl));
        m.msg_control = ctl.b;
        m.msg_controllen = sizeof(ctl.b);
        struct cmsghdr *c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &fd, sizeof(int));
    }
    int err = sendmsg(s, &m, MSG_NOSIGNAL) < 0 ? -errno : 0;
    close(s);
    return err;
}

int wsp_reexec_notify(const char *state)
{
    int rv = reexec_notify_fd(state, -1);
    return rv > 0 ? 0 : rv;
}

int wsp_reexec_notify_barrier(const char *state, int timeout_ms)
{
    int rv = reexec_notify_fd(state, -1);
    if (rv != 0)
        return rv > 0 ? 0 : rv;
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0)
        return -errno;
    /* systemd closes the write end once it has processed everything sent before it. */
    rv = reexec_notify_fd("BARRIER=1", p[1]);
    close(p[1]);
    if (rv == 0) {
        struct pollfd pf = {.fd = p[0], .events = POLLIN};
        int n;
        do
            n = poll(&pf, 1, timeout_ms);
        while (n < 0 && errno == EINTR);
        rv = n < 0 ? -errno : n == 0 ? -ETIMEDOUT : 0;
    }
    close(p[0]);
    return rv;
}
