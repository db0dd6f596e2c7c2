/* Publishes waiting for their delivery reports (server/pubwait.c): ids and digests, reports
 * before and after the expected count is known, deadlines, cancellation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>

#include "pubwait.h"

typedef struct answer_s {
    int calls, status, complete;
    uint64_t conns;
} answer_t;

static void on_done(void *ctx, int status, uint64_t conns, int complete)
{
    answer_t *a = ctx;
    a->calls++;
    a->status = status;
    a->conns = conns;
    a->complete = complete;
}

static void test_ids(void **state)
{
    (void)state;
    wsp_pubwait_t w = {0};
    answer_t a = {0}, b = {0};
    wsp_pubwait_entry_t *ea = wsp_pubwait_add(&w, 1, 100, on_done, &a);
    wsp_pubwait_entry_t *eb = wsp_pubwait_add(&w, 2, 100, on_done, &b);
    assert_non_null(ea);
    assert_non_null(eb);
    /* A report before the count is known (a fast worker) is kept. */
    assert_int_equal(wsp_pubwait_report(&w, 1, 4), 1);
    wsp_pubwait_expect(&w, ea, 2);
    assert_int_equal(a.calls, 0);
    assert_int_equal(wsp_pubwait_report(&w, 1, 3), 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.conns, 7);
    assert_true(a.complete);
    assert_int_equal(wsp_pubwait_report(&w, 1, 3), 0); /* late: answered already */
    wsp_pubwait_expect(&w, eb, 0);                     /* no process to hear from */
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.conns, 0);
    assert_true(b.complete);
    assert_int_equal(w.n, 0);
}

/* Identical messages through Redis share a digest: reports fill the oldest entry first. */
static void test_digests(void **state)
{
    (void)state;
    wsp_pubwait_t w = {0};
    answer_t a = {0}, b = {0};
    uint64_t d = 0x1234 | WSP_PUBWAIT_DIGEST;
    wsp_pubwait_expect(&w, wsp_pubwait_add(&w, d, 100, on_done, &a), 2);
    wsp_pubwait_expect(&w, wsp_pubwait_add(&w, d, 100, on_done, &b), 2);
    assert_int_equal(wsp_pubwait_report(&w, d, 1), 1);
    assert_int_equal(wsp_pubwait_report(&w, d, 2), 1);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.conns, 3);
    assert_int_equal(wsp_pubwait_report(&w, d | 1, 5), 0); /* another message */
    assert_int_equal(wsp_pubwait_report(&w, d, 5), 1);
    assert_int_equal(b.calls, 0);
    assert_int_equal(w.n, 1);
    wsp_pubwait_expire(&w, 99);
    assert_int_equal(b.calls, 0);
    wsp_pubwait_expire(&w, 100); /* the deadline: what came, incomplete */
    assert_int_equal(b.calls, 1);
    assert_int_equal(b.conns, 5);
    assert_false(b.complete);
    assert_int_equal(b.status, 0);
    assert_int_equal(w.n, 0);
}

static void test_drop_and_cancel(void **state)
{
    (void)state;
    wsp_pubwait_t w = {0};
    answer_t a = {0}, b = {0}, c = {0};
    wsp_pubwait_entry_t *ea = wsp_pubwait_add(&w, 1, 100, on_done, &a);
    assert_non_null(wsp_pubwait_add(&w, 2, 100, on_done, &b));
    assert_non_null(wsp_pubwait_add(&w, 3, 100, on_done, &c));
    wsp_pubwait_drop(&w, ea); /* the publish failed: the caller answers, not us */
    assert_int_equal(a.calls, 0);
    assert_int_equal(w.n, 2);
    wsp_pubwait_cancel_all(&w);
    assert_int_equal(b.calls + c.calls, 2);
    assert_int_equal(b.status, -ECANCELED);
    assert_int_equal(c.status, -ECANCELED);
    assert_int_equal(w.n, 0);
    assert_null(w.head);
    assert_null(w.tail);
    /* Still usable after being emptied from the middle and the ends. */
    wsp_pubwait_expect(&w, wsp_pubwait_add(&w, 9, 1, on_done, &a), 1);
    assert_int_equal(wsp_pubwait_report(&w, 9, 1), 1);
    assert_int_equal(a.calls, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ids),
        cmocka_unit_test(test_digests),
        cmocka_unit_test(test_drop_and_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
