#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "net.h"

static void test_bind_ephemeral(void **state)
{
    (void)state;
    int fd = -1;
    assert_int_equal(wsp_net_bind_reuseport("127.0.0.1", 0, &fd), 0);
    assert_true(fd >= 0);
    int port = wsp_net_local_port(fd);
    assert_true(port > 0 && port <= 65535);
    /* Shards hand the fd to uv_tcp_open(), which expects non-blocking; workers must not inherit
     * it across exec. */
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(close(fd), 0);
}

static void test_two_binds_share_port(void **state)
{
    (void)state;
    int a = -1, b = -1;
    assert_int_equal(wsp_net_bind_reuseport("127.0.0.1", 0, &a), 0);
    assert_int_equal(listen(a, 16), 0);
    int port = wsp_net_local_port(a);
    assert_true(port > 0);
    assert_int_equal(wsp_net_bind_reuseport("127.0.0.1", port, &b), 0);
    assert_int_equal(listen(b, 16), 0); /* both listening: one accept queue per shard */
    assert_int_equal(wsp_net_local_port(b), port);
    assert_int_equal(close(b), 0);
    assert_int_equal(close(a), 0);
}

static void test_bad_address(void **state)
{
    (void)state;
    /* Not "1.2.3": glibc's getaddrinfo() takes inet_aton() shorthand even with AI_NUMERICHOST. */
    static const char *bad[] = {"999.1.1.1", "localhost", "", "::g", "1.2.3.4.5"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int fd = -1;
        assert_int_equal(wsp_net_bind_reuseport(bad[i], 0, &fd), -EINVAL);
        assert_int_equal(fd, -1); /* untouched on failure */
    }
    int fd = -1;
    assert_int_equal(wsp_net_bind_reuseport("127.0.0.1", -1, &fd), -EINVAL);
    assert_int_equal(wsp_net_bind_reuseport("127.0.0.1", 65536, &fd), -EINVAL);
    assert_int_equal(fd, -1);
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    int fd = -1;
    int rv = wsp_net_bind_reuseport("::1", 0, &fd);
    if (rv == -EAFNOSUPPORT || rv == -EADDRNOTAVAIL) /* containers often run without IPv6 */
        skip();
    assert_int_equal(rv, 0);
    assert_true(wsp_net_local_port(fd) > 0);
    assert_int_equal(close(fd), 0);
}

static void test_port_in_use(void **state)
{
    (void)state;
    /* A plain listener, as another program would hold the port: no SO_REUSEPORT to share. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = 0};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(l, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(l, 4), 0);
    int port = wsp_net_local_port(l);
    assert_true(port > 0);
    int fd = -1;
    assert_int_equal(wsp_net_bind_reuseport("127.0.0.1", port, &fd), -EADDRINUSE);
    assert_int_equal(fd, -1);
    assert_int_equal(close(l), 0);
}

/* A plain listener (the admin API's): listening at once, and no second one on its port. */
static void test_listen_exclusive(void **state)
{
    (void)state;
    int fd = -1, fd2 = -1;
    assert_int_equal(wsp_net_listen("127.0.0.1", 0, 8, &fd), 0);
    int port = wsp_net_local_port(fd);
    assert_true(port > 0);
    int v = 0;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &v, &len), 0);
    assert_int_equal(v, 1);
    assert_int_equal(wsp_net_listen("127.0.0.1", port, 8, &fd2), -EADDRINUSE);
    assert_int_equal(wsp_net_bind_reuseport("127.0.0.1", port, &fd2), -EADDRINUSE);
    assert_int_equal(fd2, -1);
    assert_int_equal(wsp_net_listen("localhost", 0, 8, &fd2), -EINVAL);
    assert_int_equal(close(fd), 0);
}

static void test_local_port_errors(void **state)
{
    (void)state;
    assert_int_equal(wsp_net_local_port(-1), -EBADF);
    int p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(wsp_net_local_port(p[0]), -ENOTSOCK);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(close(p[1]), 0);
}

static void test_raise_nofile(void **state)
{
    (void)state;
    uint64_t limit = 0;
    assert_int_equal(wsp_net_raise_nofile(&limit), 0);
    assert_true(limit >= 1);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    assert_true(rl.rlim_cur == (rlim_t)limit);
    assert_true(rl.rlim_cur == rl.rlim_max);
}

/* A listener tuned by t, a client connected to it and the accepted socket: *lfd, *cfd, *afd. */
static void accept_tuned(const wsp_net_tune_t *t, int *lfd, int *cfd, int *afd)
{
    assert_int_equal(wsp_net_bind_reuseport("127.0.0.1", 0, lfd), 0);
    assert_int_equal(wsp_net_tune_listener(*lfd, t), 0);
    assert_int_equal(listen(*lfd, 4), 0);
    int port = wsp_net_local_port(*lfd);
    *cfd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(*cfd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(*cfd, (struct sockaddr *)&a, sizeof(a)), 0);
    *afd = -1;
    for (int i = 0; i < 200 && *afd < 0; i++) { /* the listener is non-blocking */
        *afd = accept(*lfd, NULL, NULL);
        if (*afd < 0)
            usleep(5000);
    }
    assert_true(*afd >= 0);
}

static int sockopt_int(int fd, int level, int name)
{
    int v = -1;
    socklen_t len = sizeof(v);
    assert_int_equal(getsockopt(fd, level, name, &v, &len), 0);
    return v;
}

/* The server sets TCP_NODELAY, keepalive, TCP_USER_TIMEOUT and SO_SNDBUF once on its
 * listeners and relies on Linux copying them to every accepted socket: check that it does. */
static void test_tuned_listener_is_inherited(void **state)
{
    (void)state;
    const wsp_net_tune_t t = {.keepalive_s = 77, .user_timeout_ms = 12345, .sndbuf = 20000};
    int lfd, cfd, afd;
    accept_tuned(&t, &lfd, &cfd, &afd);
    assert_int_equal(sockopt_int(afd, IPPROTO_TCP, TCP_NODELAY), 1);
    assert_int_equal(sockopt_int(afd, SOL_SOCKET, SO_KEEPALIVE), 1);
    assert_int_equal(sockopt_int(afd, IPPROTO_TCP, TCP_KEEPIDLE), 77);
    assert_int_equal(sockopt_int(afd, IPPROTO_TCP, TCP_KEEPINTVL), 30);
    assert_int_equal(sockopt_int(afd, IPPROTO_TCP, TCP_KEEPCNT), 4);
    assert_int_equal(sockopt_int(afd, IPPROTO_TCP, TCP_USER_TIMEOUT), 12345);
    /* Linux doubles SO_SNDBUF; reading it back on the accepted socket shows it was copied
     * (an autotuned socket reports what autotuning chose, not 40,000). */
    assert_int_equal(sockopt_int(afd, SOL_SOCKET, SO_SNDBUF), 40000);
    assert_int_equal(wsp_net_sndbuf(afd), 40000);
    assert_int_equal(wsp_net_sndbuf(lfd), 40000);
    close(afd);
    close(cfd);
    close(lfd);
}

/* Zeroes set nothing: no keepalive, the kernel's TCP_USER_TIMEOUT (0) and an autotuned
 * send buffer, unlike the tuned listener above. */
static void test_untuned_defaults(void **state)
{
    (void)state;
    const wsp_net_tune_t t = {0};
    int lfd, cfd, afd;
    accept_tuned(&t, &lfd, &cfd, &afd);
    assert_int_equal(sockopt_int(afd, IPPROTO_TCP, TCP_NODELAY), 1);
    assert_int_equal(sockopt_int(afd, SOL_SOCKET, SO_KEEPALIVE), 0);
    assert_int_equal(sockopt_int(afd, IPPROTO_TCP, TCP_USER_TIMEOUT), 0);
    /* Nothing was asked: whatever the kernel chose, not the tuned listener's 40,000. */
    assert_int_not_equal(sockopt_int(afd, SOL_SOCKET, SO_SNDBUF), 40000);
    assert_int_equal(wsp_net_sndbuf(-1), -EBADF);
    close(afd);
    close(cfd);
    close(lfd);
}

static void test_clocks(void **state)
{
    (void)state;
    uint64_t ms = wsp_net_epoch_ms();
    assert_true(ms > UINT64_C(1700000000000)); /* after Nov 2023: not seconds, not zero */
    uint64_t now_ms = (uint64_t)time(NULL) * 1000u;
    assert_true(ms + 5000 > now_ms && ms < now_ms + 5000);
    uint64_t a = wsp_net_mono_ns();
    uint64_t b = wsp_net_mono_ns();
    assert_true(a > 0);
    assert_true(b >= a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bind_ephemeral),
        cmocka_unit_test(test_two_binds_share_port),
        cmocka_unit_test(test_bad_address),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_listen_exclusive),
        cmocka_unit_test(test_local_port_errors),
        cmocka_unit_test(test_raise_nofile),
        cmocka_unit_test(test_clocks),
        cmocka_unit_test(test_tuned_listener_is_inherited),
        cmocka_unit_test(test_untuned_defaults),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
