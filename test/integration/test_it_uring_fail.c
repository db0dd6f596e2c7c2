/* A forced io_uring failure in the middle of a broadcast pass, against the real server built
 * with its test hooks (wspush-testhooks, common/uring.h): every connection still gets the
 * broadcast exactly once, the shard says so (event=io_uring_failed) and goes on without the
 * ring. And the shipped wspush, which has no hooks, ignores the hooks' variables.
 * argv[1] is the shipped wspush; $WSP_IT_TESTHOOKS names wspush-testhooks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "harness.h"

/* One shard submits its sends 1,024 at a time: with 2,200 connections a pass takes three
 * submissions. The second is refused, so the pass has sends that ran on the ring before the
 * failure, sends the refused batch held (redone the libuv way), and sends after it. */
#define NCLIENTS 2200
#define T WSP_IT_TIMEOUT_MS

static const char *hooked_binary(void)
{
    const char *b = getenv("WSP_IT_TESTHOOKS");
    if (b == NULL || *b == '\0')
        fail_msg("WSP_IT_TESTHOOKS (the path of wspush-testhooks) is not set");
    return b;
}

static wsp_it_client_t **connect_all(const wsp_it_server_t *srv, size_t n)
{
    wsp_it_client_t **cs = calloc(n, sizeof(*cs));
    assert_non_null(cs);
    for (size_t i = 0; i < n; i++) {
        cs[i] = malloc(sizeof(*cs[i]));
        assert_non_null(cs[i]);
        assert_int_equal(wsp_it_ws_connect(cs[i], srv->port, "/", T), 0);
    }
    return cs;
}

static void close_all(wsp_it_client_t **cs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wsp_it_close(cs[i]);
        free(cs[i]);
    }
    free(cs);
}

/* Reads the next frame of every client: the time message numbered seq. A client that got a
 * broadcast twice would read the earlier seq again here. */
static void expect_seq(wsp_it_client_t **cs, size_t n, uint64_t seq)
{
    static wsp_it_frame_t f;
    for (size_t i = 0; i < n; i++) {
        uint64_t ms, got = 0;
        assert_int_equal(wsp_it_read_frame(cs[i], &f, T), 0);
        assert_int_equal(f.opcode, WSP_OP_TEXT);
        assert_int_equal(wsp_it_parse_time_msg(f.payload, f.len, &ms, &got), 0);
        if (got != seq)
            fail_msg("client %zu: seq %llu, expected %llu", i, (unsigned long long)got,
                     (unsigned long long)seq);
    }
}

/* Log lines of srv holding every needle. */
static int log_lines(const wsp_it_server_t *srv, const char *const *needles)
{
    char *log = wsp_it_server_log(srv);
    assert_non_null(log);
    int n = wsp_it_count_lines(log, needles);
    free(log);
    return n;
}

static void test_ring_fails_mid_pass(void **state)
{
    wsp_it_server_t *srv = *state;
    assert_int_equal(wsp_it_raise_nofile(), 0);
    const char *shipped = wsp_it_binary;
    wsp_it_binary = hooked_binary();
    /* The second submission of the process is refused with EPERM, as a seccomp profile
     * tightened under a running server would. */
    assert_int_equal(setenv("WSP_TEST_URING_FAIL_SUBMIT", "2:1", 1), 0);
    const char *const args[] = {"--threads", "1", "--io-uring", "on", NULL};
    int rv = wsp_it_server_start(srv, args);
    assert_int_equal(unsetenv("WSP_TEST_URING_FAIL_SUBMIT"), 0);
    wsp_it_binary = shipped;
    assert_int_equal(rv, 0);
    const char *const ring[] = {"event=send_path", "path=io_uring", NULL};
    assert_int_equal(log_lines(srv, ring), 1);
    wsp_it_client_t **cs = connect_all(srv, NCLIENTS);

    assert_int_equal(wsp_it_server_signal(srv, SIGUSR1), 0);
    expect_seq(cs, NCLIENTS, 1);
    const char *const done1[] = {"event=broadcast seq=1 ", NULL};
    assert_int_equal(wsp_it_server_wait_log(srv, done1, T), 0);
    const char *const failed[] = {"event=io_uring_failed", "error=EPERM", "path=uv_try_write",
                                  NULL};
    assert_int_equal(log_lines(srv, failed), 1);
    /* The first batch went through the ring; every connection counts once as written. */
    const char *const pass1[] = {
        "event=shard_broadcast", "seq=1 ", "conns=2200 ", "written=2200 ", "failed=0 ",
        "uring_sends=1024 ",     NULL};
    assert_int_equal(log_lines(srv, pass1), 1);
    const char *const whole1[] = {"event=broadcast seq=1 ", "written=2200 ", "failed=0 ", NULL};
    assert_int_equal(log_lines(srv, whole1), 1);

    /* The next broadcast is the next frame of every client (nothing was sent twice), and the
     * shard sends it without a ring. */
    assert_int_equal(wsp_it_server_signal(srv, SIGUSR1), 0);
    expect_seq(cs, NCLIENTS, 2);
    const char *const done2[] = {"event=broadcast seq=2 ", NULL};
    assert_int_equal(wsp_it_server_wait_log(srv, done2, T), 0);
    const char *const pass2[] = {"event=shard_broadcast", "seq=2 ", "written=2200 ", "failed=0 ",
                                 "uring_sends=0 ",        NULL};
    assert_int_equal(log_lines(srv, pass2), 1);
    assert_int_equal(log_lines(srv, failed), 1); /* said once */
    close_all(cs, NCLIENTS);
    assert_int_equal(wsp_it_server_stop(srv), 0);
}

/* The shipped binary has no hooks: the variables that make wspush-testhooks refuse io_uring
 * change nothing, and --io-uring on starts and sends through the rings. */
static void test_shipped_binary_ignores_hooks(void **state)
{
    wsp_it_server_t *srv = *state;
    assert_int_equal(setenv("WSP_TEST_URING_FAIL", "1", 1), 0);
    assert_int_equal(setenv("WSP_TEST_URING_FAIL_SUBMIT", "1:1", 1), 0);
    const char *const args[] = {"--io-uring", "on", NULL};
    int rv = wsp_it_server_start(srv, args);
    assert_int_equal(unsetenv("WSP_TEST_URING_FAIL"), 0);
    assert_int_equal(unsetenv("WSP_TEST_URING_FAIL_SUBMIT"), 0);
    assert_int_equal(rv, 0);
    const char *const ring[] = {"event=send_path", "path=io_uring", NULL};
    assert_int_equal(log_lines(srv, ring), 2);
    wsp_it_client_t **cs = connect_all(srv, 4);
    assert_int_equal(wsp_it_server_signal(srv, SIGUSR1), 0);
    expect_seq(cs, 4, 1);
    const char *const done[] = {"event=broadcast seq=1 ", "written=4 ", NULL};
    assert_int_equal(wsp_it_server_wait_log(srv, done, T), 0);
    const char *const failed[] = {"event=io_uring_failed", NULL};
    assert_int_equal(log_lines(srv, failed), 0);
    close_all(cs, 4);
    assert_int_equal(wsp_it_server_stop(srv), 0);
}

/* The hooked binary comes from $WSP_IT_TESTHOOKS (test/integration/CMakeLists.txt). */
static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_ring_fails_mid_pass, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_shipped_binary_ignores_hooks, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
};

WSP_IT_SUITE(tests, NULL, NULL);
