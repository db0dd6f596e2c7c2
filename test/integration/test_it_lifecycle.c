/* Process lifecycle of the real binary: graceful shutdown on SIGTERM/SIGINT and the command
 * line (help, version, bad flags, a port in use). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "frame.h"
#include "harness.h"

#define T WSP_IT_TIMEOUT_MS
#define NCLIENTS 50

/* Every client reads a close 1001 and then the server's end of the connection. */
static void shutdown_with(wsp_it_server_t *srv, int sig, size_t nclients)
{
    assert_int_equal(wsp_it_raise_nofile(), 0);
    assert_int_equal(wsp_it_server_start(srv, NULL), 0);
    wsp_it_client_t *cs = calloc(nclients, sizeof(*cs));
    assert_non_null(cs);
    for (size_t i = 0; i < nclients; i++)
        assert_int_equal(wsp_it_ws_connect(&cs[i], srv->port, "/", T), 0);
    /* One connection still in its handshake: closed too, without a frame. */
    wsp_it_client_t half;
    assert_int_equal(wsp_it_connect(&half, srv->port, T), 0);
    static const char part[] = "GET / HTTP/1.1\r\n";
    assert_int_equal(wsp_it_send_raw(&half, part, sizeof(part) - 1, T), 0);
    /* Whether a shard has accepted it yet or it still waits in a listener's queue, it must be
     * closed either way: by shard_begin_stop() or by the listener's close. */
    wsp_it_client_t late; /* upgraded after the half-open one */
    assert_int_equal(wsp_it_ws_connect(&late, srv->port, "/", T), 0);

    assert_int_equal(wsp_it_server_signal(srv, sig), 0);
    static wsp_it_frame_t f;
    for (size_t i = 0; i < nclients + 1; i++) {
        wsp_it_client_t *c = i < nclients ? &cs[i] : &late;
        assert_int_equal(wsp_it_read_frame(c, &f, T), 0);
        assert_int_equal(f.opcode, WSP_OP_CLOSE);
        assert_int_equal(f.close_code, 1001);
        assert_int_equal(wsp_it_expect_eof(c, T), 0);
        wsp_it_close(c);
    }
    assert_int_equal(wsp_it_drain_until_closed(&half, T), 0);
    wsp_it_close(&half);
    free(cs);
    /* Exit 0 within the drain bound (5 s) plus slack for slow sanitizer builds. */
    assert_int_equal(wsp_it_server_wait(srv, 15000), 0);
    char *log = wsp_it_server_log(srv);
    assert_non_null(log);
    const char *const stopped[] = {"event=stopped", NULL};
    assert_int_equal(wsp_it_count_lines(log, stopped), 1);
    free(log);
}

static void test_sigterm(void **state) { shutdown_with(*state, SIGTERM, NCLIENTS); }

static void test_sigint(void **state) { shutdown_with(*state, SIGINT, 3); }

static void test_sigterm_idle(void **state)
{
    wsp_it_server_t *srv = *state;
    assert_int_equal(wsp_it_server_start(srv, NULL), 0);
    assert_int_equal(wsp_it_server_signal(srv, SIGTERM), 0);
    assert_int_equal(wsp_it_server_wait(srv, 15000), 0);
}

static void test_help(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    const char *const args[] = {"--help", NULL};
    assert_int_equal(wsp_it_run(wsp_it_binary, args, T, &out, &err), 0);
    assert_non_null(out);
    assert_non_null(err);
    assert_non_null(strstr(out, "usage: wspush"));
    assert_non_null(strstr(out, "--port"));
    assert_string_equal(err, "");
    free(out);
    free(err);
}

static void test_version(void **state)
{
    (void)state;
    char *out = NULL, *err = NULL;
    const char *const args[] = {"--version", NULL};
    assert_int_equal(wsp_it_run(wsp_it_binary, args, T, &out, &err), 0);
    assert_non_null(out);
    assert_non_null(err);
    assert_int_equal(strncmp(out, "wspush ", 7), 0);
    assert_true(strlen(out) > 8 && strchr(out, '\n') == out + strlen(out) - 1); /* one line */
    assert_string_equal(err, "");
    free(out);
    free(err);
}

static void test_bad_flags(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"--bogus", NULL},
        {"--threads", "0", NULL},
        {"--port", "65536", NULL},
        {"--port", NULL},
        {"--interval", "-1", NULL},
        {"--handshake-timeout", "0", NULL},
        {"stray", NULL},
        {"--log-level", "loud", NULL},
        {"--path", "noslash", NULL},
        {"--io-uring", "maybe", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *out = NULL, *err = NULL;
        int rv = wsp_it_run(wsp_it_binary, cases[i], T, &out, &err);
        if (rv != 2)
            fprintf(stderr, "case %s: exit %d\n", cases[i][0], rv);
        assert_int_equal(rv, 2);
        assert_non_null(out);
        assert_non_null(err);
        assert_non_null(strstr(err, "usage: wspush"));
        assert_string_equal(out, "");
        free(out);
        free(err);
    }
}

/* Whether line[0..n) holds port as a whole number (not inside a longer one). */
static int mentions(const char *line, size_t n, const char *port)
{
    size_t k = strlen(port);
    for (size_t i = 0; i + k <= n; i++) {
        if (memcmp(line + i, port, k) != 0)
            continue;
        int before = i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9';
        int after = i + k < n && line[i + k] >= '0' && line[i + k] <= '9';
        if (!before && !after)
            return 1;
    }
    return 0;
}

static void test_port_in_use(void **state)
{
    (void)state;
    /* A plain listener, no SO_REUSEPORT: wspush's reuseport bind cannot join it. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 1), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    char port[16];
    snprintf(port, sizeof(port), "%d", ntohs(sa.sin_port));

    const char *const args[] = {"--port", port, "--bind", "127.0.0.1", "--threads", "2", NULL};
    char *out = NULL, *err = NULL;
    int rv = wsp_it_run(wsp_it_binary, args, T, &out, &err);
    close(fd);
    assert_non_null(out);
    assert_non_null(err);
    if (rv != 1)
        fprintf(stderr, "exit %d, stderr:\n%s", rv, err);
    assert_int_equal(rv, 1);
    int lines = 0;
    const char *l = err;
    while (*l) {
        const char *eol = strchr(l, '\n');
        size_t n = eol ? (size_t)(eol - l) : strlen(l);
        if (mentions(l, n, port)) {
            lines++;
            assert_non_null(strstr(l, "in use"));
        }
        l += n + (eol != NULL);
    }
    if (lines != 1)
        fprintf(stderr, "stderr:\n%s", err);
    assert_int_equal(lines, 1);
    assert_null(strstr(err, "event=listening"));
    free(out);
    free(err);
}

/* Each shard logs its send path once at startup; counts the shards that chose path. */
static int shards_on_path(const wsp_it_server_t *srv, const char *path)
{
    char *log = wsp_it_server_log(srv);
    assert_non_null(log);
    const char *const needles[] = {"event=send_path", path, NULL};
    int n = wsp_it_count_lines(log, needles);
    free(log);
    return n;
}

/* Every client gets the SIGUSR1 broadcast, whatever path sends it. */
static void broadcast_reaches(wsp_it_server_t *srv, size_t n)
{
    wsp_it_client_t cs[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(wsp_it_ws_connect(&cs[i], srv->port, "/", T), 0);
    assert_int_equal(wsp_it_server_signal(srv, SIGUSR1), 0);
    static wsp_it_frame_t f;
    for (size_t i = 0; i < n; i++) {
        uint64_t ms, seq;
        assert_int_equal(wsp_it_read_frame(&cs[i], &f, T), 0);
        assert_int_equal(f.opcode, WSP_OP_TEXT);
        assert_int_equal(wsp_it_parse_time_msg(f.payload, f.len, &ms, &seq), 0);
        wsp_it_close(&cs[i]);
    }
}

/* io_uring refused (the probe forced to fail with EPERM, as kernel.io_uring_disabled or a
 * container's seccomp profile would): auto says so and broadcasts with one send per
 * connection; on refuses to start, naming the reason. The fault is injected by the test
 * build's hooks (common/uring.h): this test runs wspush-testhooks. */
static void test_io_uring_unavailable(void **state)
{
    wsp_it_server_t *srv = *state;
    const char *shipped = wsp_it_binary;
    wsp_it_binary = getenv("WSP_IT_TESTHOOKS");
    assert_non_null(wsp_it_binary);
    assert_int_equal(setenv("WSP_TEST_URING_FAIL", "1", 1), 0); /* EPERM */
    const char *const autoargs[] = {"--io-uring", "auto", NULL};
    int rv = wsp_it_server_start(srv, autoargs);
    if (rv == 0) {
        const char *const why[] = {"event=io_uring_unavailable", "error=EPERM", NULL};
        rv = wsp_it_server_wait_log(srv, why, T);
    }
    const char *const onargs[] = {"--io-uring", "on",      "--port", "0", "--bind",
                                  "127.0.0.1",  "--admin", "off",    NULL};
    char *out = NULL, *err = NULL;
    int onrv = wsp_it_run(wsp_it_binary, onargs, T, &out, &err);
    assert_int_equal(unsetenv("WSP_TEST_URING_FAIL"), 0);
    wsp_it_binary = shipped;
    assert_int_equal(rv, 0);
    assert_int_equal(shards_on_path(srv, "path=uv_try_write"), 2);
    assert_int_equal(shards_on_path(srv, "path=io_uring"), 0);
    broadcast_reaches(srv, 4);
    assert_int_equal(wsp_it_server_stop(srv), 0);

    assert_non_null(out);
    assert_non_null(err);
    if (onrv != 1)
        fprintf(stderr, "--io-uring on without io_uring: exit %d, stderr:\n%s", onrv, err);
    assert_int_equal(onrv, 1);
    assert_non_null(strstr(err, "--io-uring on: io_uring is not available here"));
    assert_non_null(strstr(err, strerror(EPERM)));
    assert_null(strstr(err, "event=listening"));
    free(out);
    free(err);
}

/* Where io_uring works (this machine, CI), on and auto use it in every shard. */
static void test_io_uring_used(void **state)
{
    wsp_it_server_t *srv = *state;
    const char *const args[] = {"--io-uring", "auto", NULL};
    assert_int_equal(wsp_it_server_start(srv, args), 0);
    assert_int_equal(shards_on_path(srv, "path=io_uring"), 2);
    broadcast_reaches(srv, 4);
    /* The shards log their passes before the coordinator logs the broadcast as done. */
    const char *const done[] = {"event=broadcast seq=1 ", NULL};
    assert_int_equal(wsp_it_server_wait_log(srv, done, T), 0);
    char *log = wsp_it_server_log(srv);
    assert_non_null(log);
    unsigned long long sends = 0;
    for (const char *p = log; (p = strstr(p, " uring_sends=")) != NULL; p++)
        sends += strtoull(p + 13, NULL, 10);
    int failed = strstr(log, "event=io_uring_failed") != NULL;
    free(log);
    assert_int_equal(sends, 4); /* every frame went through the rings */
    assert_false(failed);
    assert_int_equal(wsp_it_server_stop(srv), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_sigterm, wsp_it_fixture_setup, wsp_it_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_sigint, wsp_it_fixture_setup, wsp_it_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_sigterm_idle, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
    cmocka_unit_test(test_help),
    cmocka_unit_test(test_version),
    cmocka_unit_test(test_bad_flags),
    cmocka_unit_test(test_port_in_use),
    cmocka_unit_test_setup_teardown(test_io_uring_unavailable, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_io_uring_used, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
};
WSP_IT_SUITE(tests, NULL, NULL);
