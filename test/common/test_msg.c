#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "msg.h"

#define N_THREADS 4
#define N_ROUNDS 100000

static void test_new_has_one_ref(void **state)
{
    (void)state;
    wsp_msg_t *m = wsp_msg_new(16);
    assert_non_null(m);
    assert_int_equal(wsp_msg_refs(m), 1);
    assert_int_equal(m->len, 16);
    memset(m->bytes, 0xab, 16); /* the whole payload is writable: ASan checks the size */
    wsp_msg_unref(m);

    wsp_msg_t *empty = wsp_msg_new(0); /* an empty broadcast is still a message */
    assert_non_null(empty);
    assert_int_equal(empty->len, 0);
    wsp_msg_unref(empty);
}

static void test_new_too_large(void **state)
{
    (void)state;
#if SIZE_MAX > UINT32_MAX
    assert_null(wsp_msg_new((size_t)UINT32_MAX + 1)); /* len is a uint32_t */
#else
    skip();
#endif
}

static void test_ref_unref_counts(void **state)
{
    (void)state;
    wsp_msg_t *m = wsp_msg_new(8);
    assert_non_null(m);
    assert_ptr_equal(wsp_msg_ref(m), m);
    assert_int_equal(wsp_msg_refs(m), 2);
    assert_ptr_equal(wsp_msg_ref(m), m);
    assert_int_equal(wsp_msg_refs(m), 3);
    wsp_msg_unref(m);
    assert_int_equal(wsp_msg_refs(m), 2);
    wsp_msg_unref(m);
    assert_int_equal(wsp_msg_refs(m), 1);
    wsp_msg_unref(m); /* frees: LeakSanitizer would report otherwise, ASan any later use */
}

/* Each worker owns one reference handed over before it starts, churns N_ROUNDS pairs while
 * reading the payload, then drops its own: the shard pattern, ref per queue, unref when done. */
static void *worker(void *arg)
{
    wsp_msg_t *m = arg;
    unsigned sum = 0;
    for (int i = 0; i < N_ROUNDS; i++) {
        wsp_msg_t *r = wsp_msg_ref(m);
        sum += r->bytes[(unsigned)i % r->len];
        wsp_msg_unref(r);
    }
    wsp_msg_unref(m);
    return (void *)(uintptr_t)sum;
}

static void run_workers(wsp_msg_t *m, int drop_first)
{
    pthread_t t[N_THREADS];
    for (int i = 0; i < N_THREADS; i++)
        wsp_msg_ref(m); /* before the thread exists: it must never see a count of 0 */
    for (int i = 0; i < N_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, m), 0);
    if (drop_first)
        wsp_msg_unref(m); /* now whichever worker finishes last frees m */
    for (int i = 0; i < N_THREADS; i++) {
        void *sum;
        assert_int_equal(pthread_join(t[i], &sum), 0);
        assert_int_equal((uintptr_t)sum, (uintptr_t)N_ROUNDS * 7u);
    }
}

static wsp_msg_t *new_sevens(void)
{
    wsp_msg_t *m = wsp_msg_new(64);
    assert_non_null(m);
    memset(m->bytes, 7, 64); /* written before sharing, as the contract requires */
    return m;
}

static void test_threads_count_back(void **state)
{
    (void)state;
    wsp_msg_t *m = new_sevens();
    run_workers(m, 0);
    assert_int_equal(wsp_msg_refs(m), 1); /* 4 x 100k pairs and 4 drops: no update lost */
    wsp_msg_unref(m);
}

static void test_threads_last_unref_frees(void **state)
{
    (void)state;
    run_workers(new_sevens(), 1); /* ASan/LSan: no leak, no use after free; TSan: no race */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_has_one_ref),          cmocka_unit_test(test_new_too_large),
        cmocka_unit_test(test_ref_unref_counts),         cmocka_unit_test(test_threads_count_back),
        cmocka_unit_test(test_threads_last_unref_frees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
