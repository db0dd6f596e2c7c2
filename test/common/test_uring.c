/* common/uring.c against real sockets: batched sends and receives complete within the flush,
 * a full or empty socket answers -EAGAIN at once (never parked in the kernel), the batch
 * bound, errors per operation, and the forced-failure hooks the fallback tests rely on (this
 * test links wsp_common_testhooks, compiled with WSP_TEST_HOOKS). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "uring.h"

#define NPAIRS 8

typedef struct result_s {
    int n;
    void *ud[64];
    int res[64];
} result_t;

static void on_result(void *ud, int res, void *arg)
{
    result_t *r = arg;
    assert_true(r->n < 64);
    r->ud[r->n] = ud;
    r->res[r->n] = res;
    r->n++;
}

/* The result reported for ud; fails the test when there is none or more than one. */
static int result_of(const result_t *r, void *ud)
{
    int found = -1;
    for (int i = 0; i < r->n; i++)
        if (r->ud[i] == ud) {
            assert_int_equal(found, -1);
            found = i;
        }
    assert_true(found >= 0);
    return r->res[found];
}

static wsp_uring_t *ring_or_skip(unsigned entries)
{
    wsp_uring_t *r = NULL;
    int rv = wsp_uring_new(&r, entries);
    assert_int_equal(rv, 0); /* CI runs where io_uring works: a failure here is a finding */
    assert_non_null(r);
    return r;
}

static void pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static void test_send_batch(void **state)
{
    (void)state;
    wsp_uring_t *r = ring_or_skip(16);
    int sv[NPAIRS][2];
    static const char msg[] = "{\"time\":1,\"seq\":1}";
    for (int i = 0; i < NPAIRS; i++) {
        pair(sv[i]);
        assert_int_equal(wsp_uring_send(r, sv[i][0], msg, sizeof(msg) - 1, &sv[i]), 0);
    }
    assert_int_equal(wsp_uring_queued(r), NPAIRS);
    result_t res = {0};
    assert_int_equal(wsp_uring_flush(r, on_result, &res), NPAIRS);
    assert_int_equal(res.n, NPAIRS);
    assert_int_equal(wsp_uring_queued(r), 0);
    for (int i = 0; i < NPAIRS; i++) {
        assert_int_equal(result_of(&res, &sv[i]), (int)sizeof(msg) - 1);
        char buf[64];
        assert_int_equal(read(sv[i][1], buf, sizeof(buf)), (ssize_t)sizeof(msg) - 1);
        assert_memory_equal(buf, msg, sizeof(msg) - 1);
        close(sv[i][0]);
        close(sv[i][1]);
    }
    const wsp_uring_stats_t *st = wsp_uring_stats(r);
    assert_int_equal(st->ops, NPAIRS);
    assert_true(st->enters >= 1 && st->enters <= 2);          /* one kernel entry for the batch */
    assert_int_equal(wsp_uring_flush(r, on_result, &res), 0); /* nothing queued: no entry */
    wsp_uring_free(r);
}

static void test_batch_bound(void **state)
{
    (void)state;
    wsp_uring_t *r = ring_or_skip(4);
    int sv[2];
    pair(sv);
    for (int i = 0; i < 4; i++)
        assert_int_equal(wsp_uring_send(r, sv[0], "x", 1, NULL), 0);
    assert_int_equal(wsp_uring_send(r, sv[0], "x", 1, NULL), -ENOSPC);
    result_t res = {0};
    assert_int_equal(wsp_uring_flush(r, on_result, &res), 4);
    assert_int_equal(wsp_uring_send(r, sv[0], "y", 1, NULL), 0); /* room again */
    assert_int_equal(wsp_uring_flush(r, on_result, &res), 1);
    char buf[8];
    assert_int_equal(read(sv[1], buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "xxxxy", 5);
    close(sv[0]);
    close(sv[1]);
    wsp_uring_free(r);
}

/* The property the broadcast pass depends on: a full socket must not park the send. */
static void test_full_socket_eagain(void **state)
{
    (void)state;
    wsp_uring_t *r = ring_or_skip(8);
    int sv[2];
    pair(sv);
    int small = 4096;
    assert_int_equal(setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    char chunk[4096];
    memset(chunk, 'z', sizeof(chunk));
    size_t filled = 0;
    for (int i = 0; i < 100000; i++) { /* bounded: a 4 KiB buffer fills in a few writes */
        ssize_t n = write(sv[0], chunk, sizeof(chunk));
        if (n < 0) {
            assert_int_equal(errno, EAGAIN);
            break;
        }
        filled += (size_t)n;
    }
    assert_true(filled > 0);
    result_t res = {0};
    assert_int_equal(wsp_uring_send(r, sv[0], chunk, sizeof(chunk), &sv[0]), 0);
    assert_int_equal(wsp_uring_flush(r, on_result, &res), 1);
    assert_int_equal(result_of(&res, &sv[0]), -EAGAIN);
    close(sv[0]);
    close(sv[1]);
    wsp_uring_free(r);
}

static void test_recv(void **state)
{
    (void)state;
    wsp_uring_t *r = ring_or_skip(8);
    int a[2], b[2];
    pair(a);
    pair(b);
    assert_int_equal(write(a[1], "hello", 5), 5);
    char ba[16], bb[16];
    assert_int_equal(wsp_uring_recv(r, a[0], ba, sizeof(ba), &a), 0);
    assert_int_equal(wsp_uring_recv(r, b[0], bb, sizeof(bb), &b), 0); /* nothing to read */
    result_t res = {0};
    assert_int_equal(wsp_uring_flush(r, on_result, &res), 2);
    assert_int_equal(result_of(&res, &a), 5);
    assert_memory_equal(ba, "hello", 5);
    assert_int_equal(result_of(&res, &b), -EAGAIN);
    close(a[1]); /* EOF reads as 0 */
    assert_int_equal(wsp_uring_recv(r, a[0], ba, sizeof(ba), &a), 0);
    res.n = 0;
    assert_int_equal(wsp_uring_flush(r, on_result, &res), 1);
    assert_int_equal(result_of(&res, &a), 0);
    close(a[0]);
    close(b[0]);
    close(b[1]);
    wsp_uring_free(r);
}

/* Errors come back per operation and do not stop the rest of the batch. */
static void test_errors_per_op(void **state)
{
    (void)state;
    wsp_uring_t *r = ring_or_skip(8);
    int ok[2], gone[2];
    pair(ok);
    pair(gone);
    close(gone[1]); /* a peer that left: EPIPE, and no SIGPIPE (MSG_NOSIGNAL) */
    int notsock = open("/dev/null", O_RDONLY | O_CLOEXEC);
    assert_true(notsock >= 0);
    assert_int_equal(wsp_uring_send(r, gone[0], "a", 1, &gone), 0);
    assert_int_equal(wsp_uring_send(r, notsock, "b", 1, &notsock), 0);
    assert_int_equal(wsp_uring_send(r, ok[0], "c", 1, &ok), 0);
    result_t res = {0};
    assert_int_equal(wsp_uring_flush(r, on_result, &res), 3);
    assert_int_equal(result_of(&res, &gone), -EPIPE);
    assert_int_equal(result_of(&res, &notsock), -ENOTSOCK);
    assert_int_equal(result_of(&res, &ok), 1);
    close(notsock);
    close(gone[0]);
    close(ok[0]);
    close(ok[1]);
    wsp_uring_free(r);
}

static void test_bad_entries(void **state)
{
    (void)state;
    wsp_uring_t *r = (wsp_uring_t *)&r;
    assert_int_equal(wsp_uring_new(&r, 0), -EINVAL);
    assert_null(r);
    assert_int_equal(wsp_uring_new(&r, 3), -EINVAL);
    assert_int_equal(wsp_uring_new(&r, 65536), -EINVAL);
    wsp_uring_free(NULL);
}

static void test_forced_failure(void **state)
{
    (void)state;
    assert_int_equal(wsp_uring_probe(), 0);
    assert_int_equal(setenv("WSP_TEST_URING_FAIL", "1", 1), 0); /* EPERM */
    wsp_uring_t *r = (wsp_uring_t *)&r;
    assert_int_equal(wsp_uring_new(&r, 8), -EPERM);
    assert_null(r);
    assert_int_equal(wsp_uring_probe(), -EPERM);
    assert_int_equal(setenv("WSP_TEST_URING_FAIL", "38", 1), 0); /* ENOSYS: an old kernel */
    assert_int_equal(wsp_uring_probe(), -ENOSYS);
    assert_int_equal(unsetenv("WSP_TEST_URING_FAIL"), 0);
    assert_int_equal(wsp_uring_probe(), 0);
}

/* The n-th submission refused: what ran before stands, the refused batch comes back as not
 * done (-ECANCELED) with nothing sent, and the ring refuses all further work. */
static void test_forced_submit_failure(void **state)
{
    (void)state;
    wsp_uring_t *r = ring_or_skip(8);
    int sv[2];
    pair(sv);
    assert_int_equal(setenv("WSP_TEST_URING_FAIL_SUBMIT", "2:5", 1), 0); /* EIO, second */
    result_t res = {0};
    assert_int_equal(wsp_uring_send(r, sv[0], "a", 1, &sv[0]), 0);
    assert_int_equal(wsp_uring_flush(r, on_result, &res), 1); /* the first runs */
    assert_int_equal(result_of(&res, &sv[0]), 1);
    res.n = 0;
    assert_int_equal(wsp_uring_send(r, sv[0], "b", 1, &sv[0]), 0);
    assert_int_equal(wsp_uring_send(r, sv[0], "c", 1, &sv[1]), 0);
    assert_int_equal(wsp_uring_flush(r, on_result, &res), -EIO);
    assert_int_equal(res.n, 2);
    assert_int_equal(result_of(&res, &sv[0]), -ECANCELED);
    assert_int_equal(result_of(&res, &sv[1]), -ECANCELED);
    assert_int_equal(wsp_uring_send(r, sv[0], "d", 1, NULL), -EIO);
    assert_int_equal(unsetenv("WSP_TEST_URING_FAIL_SUBMIT"), 0);
    char buf[8];
    assert_int_equal(read(sv[1], buf, sizeof(buf)), 1); /* "a" only: b and c never ran */
    assert_int_equal(buf[0], 'a');
    close(sv[0]);
    close(sv[1]);
    wsp_uring_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_batch),         cmocka_unit_test(test_batch_bound),
        cmocka_unit_test(test_full_socket_eagain), cmocka_unit_test(test_recv),
        cmocka_unit_test(test_errors_per_op),      cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_forced_failure),     cmocka_unit_test(test_forced_submit_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
