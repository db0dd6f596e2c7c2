#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>

/* Included, not linked, to reach the counters for the overflow test (as h2o's unit tests do);
 * the test defines every wsp_spsc_ symbol, so the linker never pulls spsc.o from wsp_common. */
#include "spsc.c"

/* Non-NULL pointers that carry a number: the ring rejects nothing but stores only pointers. */
static void *val(uintptr_t i) { return (void *)(i + 1); }

static uintptr_t num(void *p) { return (uintptr_t)p - 1; }

static void test_capacity_rounding(void **state)
{
    (void)state;
    static const size_t cases[][2] = {{0, 2}, {1, 2},       {2, 2},       {3, 4},      {4, 4},
                                      {5, 8}, {1000, 1024}, {1024, 1024}, {1025, 2048}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wsp_spsc_t *q = wsp_spsc_new(cases[i][0]);
        assert_non_null(q);
        if (q == NULL) /* cmocka's asserts are not noreturn: tell the optimizer */
            return;
        assert_int_equal(wsp_spsc_capacity(q), cases[i][1]);
        wsp_spsc_free(q);
    }
    assert_null(wsp_spsc_new(((size_t)1 << 30) + 1));
    wsp_spsc_free(NULL); /* like free(): callers' error paths rely on it */
}

static void test_empty_pop_is_null(void **state)
{
    (void)state;
    wsp_spsc_t *q = wsp_spsc_new(4);
    assert_non_null(q);
    assert_null(wsp_spsc_pop(q));
    assert_int_equal(wsp_spsc_push(q, val(0)), 0);
    assert_int_equal(num(wsp_spsc_pop(q)), 0);
    assert_null(wsp_spsc_pop(q));
    assert_null(wsp_spsc_pop(q));
    wsp_spsc_free(q);
}

static void test_fifo_and_full(void **state)
{
    (void)state;
    wsp_spsc_t *q = wsp_spsc_new(8);
    assert_non_null(q);
    for (uintptr_t i = 0; i < 8; i++)
        assert_int_equal(wsp_spsc_push(q, val(i)), 0);
    assert_int_equal(wsp_spsc_push(q, val(8)), -ENOBUFS);
    assert_int_equal(wsp_spsc_push(q, val(8)), -ENOBUFS); /* full stays full, nothing lost */
    assert_int_equal(num(wsp_spsc_pop(q)), 0);
    assert_int_equal(wsp_spsc_push(q, val(8)), 0); /* one slot freed, one push fits */
    assert_int_equal(wsp_spsc_push(q, val(9)), -ENOBUFS);
    for (uintptr_t i = 1; i <= 8; i++)
        assert_int_equal(num(wsp_spsc_pop(q)), i);
    assert_null(wsp_spsc_pop(q));
    wsp_spsc_free(q);
}

static void test_wraparound(void **state)
{
    (void)state;
    wsp_spsc_t *q = wsp_spsc_new(4);
    assert_non_null(q);
    uintptr_t in = 0, out = 0;
    /* Batch sizes 1..4 that do not divide the capacity evenly, so every slot offset is hit. */
    for (int round = 0; round < 10000; round++) {
        int batch = 1 + round % 4;
        for (int i = 0; i < batch; i++)
            assert_int_equal(wsp_spsc_push(q, val(in++)), 0);
        for (int i = 0; i < batch; i++)
            assert_int_equal(num(wsp_spsc_pop(q)), out++);
        assert_null(wsp_spsc_pop(q));
    }
    wsp_spsc_free(q);
}

/* head and tail are free-running unsigned counters; crossing UINT_MAX must change nothing. */
static void test_counter_overflow(void **state)
{
    (void)state;
    wsp_spsc_t *q = wsp_spsc_new(4);
    assert_non_null(q);
    atomic_store(&q->head, UINT_MAX - 5);
    atomic_store(&q->tail, UINT_MAX - 5);
    uintptr_t in = 0, out = 0;
    for (int round = 0; round < 8; round++) {
        while (wsp_spsc_push(q, val(in)) == 0)
            in++;
        assert_int_equal(in - out, 4); /* full at exactly the capacity, across the wrap too */
        for (int i = 0; i < 3; i++)
            assert_int_equal(num(wsp_spsc_pop(q)), out++);
    }
    while (out < in)
        assert_int_equal(num(wsp_spsc_pop(q)), out++);
    assert_null(wsp_spsc_pop(q));
    assert_true(atomic_load(&q->head) < UINT_MAX - 5); /* really wrapped */
    wsp_spsc_free(q);
}

#define N_VALUES 1000000u

static void *producer(void *arg)
{
    wsp_spsc_t *q = arg;
    for (uintptr_t i = 0; i < N_VALUES; i++)
        while (wsp_spsc_push(q, val(i)) == -ENOBUFS)
            sched_yield(); /* full: let the consumer run, even on one CPU */
    return NULL;
}

/* The producer never asserts: a cmocka failure longjmps, which only the main thread may do. */
static void test_two_threads(void **state)
{
    (void)state;
    wsp_spsc_t *q = wsp_spsc_new(64); /* small, so both full and empty happen often */
    assert_non_null(q);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, q), 0);
    uintptr_t want = 0, bad = 0;
    while (want < N_VALUES) {
        void *p = wsp_spsc_pop(q);
        if (p == NULL) {
            sched_yield();
            continue;
        }
        if (num(p) != want && bad == 0)
            bad = want + 1; /* keep draining so the producer can finish */
        want++;
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(bad, 0);
    assert_null(wsp_spsc_pop(q));
    wsp_spsc_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_capacity_rounding), cmocka_unit_test(test_empty_pop_is_null),
        cmocka_unit_test(test_fifo_and_full),     cmocka_unit_test(test_wraparound),
        cmocka_unit_test(test_counter_overflow),  cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
