#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

int wsp_net_bind(const char *host, int port, int reuseport, int *fd)
{
    if (port < 0 || port > 65535)
        return -EINVAL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%d", port);
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
    /* Numeric only: a name would make startup depend on DNS. */
    if (getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL)
        return -EINVAL;
    int s = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s < 0) {
        int err = -errno;
        freeaddrinfo(ai);
        return err;
    }
    int one = 1;
    /* SO_REUSEADDR: a restart must not wait for the old process's TIME_WAIT sockets. Unlike
     * lwan, fail when SO_REUSEPORT is refused: the shards could not share the port. */
    if (setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (reuseport && setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(s, ai->ai_addr, ai->ai_addrlen) != 0) {
        int err = -errno;
        freeaddrinfo(ai);
        close(s);
        return err;
    }
    freeaddrinfo(ai);
    *fd = s;
    return 0;
}

int wsp_net_listen(const char *host, int port, int backlog, int *fd)
{
    int s, rv = wsp_net_bind(host, port, 0, &s);
    if (rv < 0)
        return rv;
    if (listen(s, backlog) != 0) {
        rv = -errno;
        close(s);
        return rv;
    }
    *fd = s;
    return 0;
}

int wsp_net_bind_reuseport(const char *host, int port, int *fd)
{
    return wsp_net_bind(host, port, 1, fd);
}

int wsp_net_tune_listener(int fd, const wsp_net_tune_t *t)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0)
        return -errno;
    if (t->keepalive_s > 0) {
        int idle = (int)t->keepalive_s, intvl = idle < 30 ? idle : 30, cnt = 4;
        if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one)) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl)) != 0 ||
            setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt)) != 0)
            return -errno;
    }
    /* 0 is the kernel's own default for both: setting nothing leaves it so. */
    unsigned uto = t->user_timeout_ms;
    if (uto > 0 && setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &uto, sizeof(uto)) != 0)
        return -errno;
    int sndbuf = t->sndbuf > INT_MAX / 2 ? INT_MAX / 2 : (int)t->sndbuf;
    if (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf)) != 0)
        return -errno;
    return 0;
}

int wsp_net_sndbuf(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, &len) != 0)
        return -errno;
    return v;
}

int wsp_net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -errno;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -EAFNOSUPPORT;
}

int wsp_net_raise_nofile(uint64_t *limit)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return -errno;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            return -errno;
    }
    *limit = (uint64_t)rl.rlim_cur;
    return 0;
}

uint64_t wsp_net_epoch_ms(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail for CLOCK_REALTIME */
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t wsp_net_mono_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* cannot fail for CLOCK_MONOTONIC */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
