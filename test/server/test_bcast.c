/* server/bcast.c: the broadcast object, its build-once frame kinds, its payload and the
 * shards' reports. Two threads race for one build (label "threaded": TSan runs it). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "bcast.h"
#include "frame.h"

static atomic_int builds;

/* A stand-in for a frame variant: the payload reversed, built slowly enough that a second
 * shard asks while the first still builds. */
static wsp_msg_t *build_reversed(const wsp_bcast_t *b, void *ctx)
{
    (void)ctx;
    atomic_fetch_add(&builds, 1);
    size_t len;
    const uint8_t *p = wsp_bcast_payload(b, &len);
    uint8_t *rev = malloc(len ? len : 1);
    if (rev == NULL)
        return NULL;
    for (size_t i = 0; i < len; i++)
        rev[i] = p[len - 1 - i];
    for (volatile int spin = 0; spin < 200000; spin++)
        ;
    wsp_msg_t *m = wsp_frame_msg(WSP_OP_TEXT, rev, len);
    free(rev);
    return m;
}

static wsp_msg_t *build_nothing(const wsp_bcast_t *b, void *ctx)
{
    (void)b;
    (void)ctx;
    atomic_fetch_add(&builds, 1);
    return NULL;
}

typedef struct racer_s {
    wsp_bcast_t *b;
    wsp_bcast_build_fn fn;
    wsp_msg_t *got;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    r->got = wsp_bcast_frame_build(r->b, WSP_BCAST_FRAMED, r->fn, NULL);
    return NULL;
}

static wsp_bcast_t *make(const char *payload, size_t len, unsigned shards)
{
    wsp_bcast_t *b;
    assert_int_equal(wsp_bcast_new(&b, "news", 4, (const uint8_t *)payload, len, 7, shards, NULL),
                     0);
    return b;
}

static void test_payload_every_header_size(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        char *p = malloc(sizes[i] + 1);
        assert_non_null(p);
        for (size_t k = 0; k < sizes[i]; k++)
            p[k] = (char)('a' + k % 26);
        wsp_bcast_t *b = make(p, sizes[i], 1);
        size_t len;
        const uint8_t *got = wsp_bcast_payload(b, &len);
        assert_int_equal(len, sizes[i]);
        if (sizes[i])
            assert_memory_equal(got, p, sizes[i]);
        size_t clen;
        assert_memory_equal(wsp_bcast_channel(b, &clen), "news", 4);
        assert_int_equal(clen, 4);
        assert_int_equal(wsp_bcast_seq(b), 7);
        wsp_bcast_free_all(&b);
        free(p);
    }
}

static void test_kind_built_once_under_a_race(void **state)
{
    (void)state;
    for (int round = 0; round < 20; round++) {
        atomic_store(&builds, 0);
        wsp_bcast_t *b = make("hello", 5, 2);
        assert_null(wsp_bcast_frame(b, WSP_BCAST_FRAMED)); /* not built yet */
        racer_t r[2] = {{b, build_reversed, NULL}, {b, build_reversed, NULL}};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, race, &r[0]), 0);
        race(&r[1]);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_int_equal(atomic_load(&builds), 1);
        assert_non_null(r[0].got);
        assert_ptr_equal(r[0].got, r[1].got);
        assert_ptr_equal(wsp_bcast_frame(b, WSP_BCAST_FRAMED), r[0].got);
        assert_int_equal(r[0].got->len, 7);
        assert_memory_equal(r[0].got->bytes + 2, "olleh", 5);
        wsp_bcast_free_all(&b); /* frees the built kind too (ASan would say otherwise) */
    }
}

static void test_failed_build_is_null_for_everyone(void **state)
{
    (void)state;
    atomic_store(&builds, 0);
    wsp_bcast_t *b = make("x", 1, 2);
    racer_t r[2] = {{b, build_nothing, NULL}, {b, build_nothing, NULL}};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, race, &r[0]), 0);
    race(&r[1]);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(atomic_load(&builds), 1);
    assert_null(r[0].got);
    assert_null(r[1].got);
    assert_null(wsp_bcast_frame(b, WSP_BCAST_FRAMED));
    assert_non_null(wsp_bcast_frame(b, WSP_BCAST_PLAIN));
    wsp_bcast_free_all(&b);
}

static void test_reports_sum_and_reap(void **state)
{
    (void)state;
    wsp_bcast_t *list = NULL;
    wsp_bcast_t *b = make("y", 1, 3);
    wsp_bcast_track(&list, b);
    wsp_bcast_report_t r1 = {.start_ns = 100, .end_ns = 300, .written = 5, .failed = 1};
    wsp_bcast_report_t r2 = {.start_ns = 50, .end_ns = 200, .written = 7, .failed = 0};
    wsp_bcast_done(b, &r1);
    wsp_bcast_done(b, &r2);
    wsp_bcast_reap(&list, NULL, NULL); /* one shard still holds it */
    assert_ptr_equal(list, b);
    assert_int_equal(wsp_bcast_cancel(b, 1), 1); /* the third never got it */
    wsp_bcast_reap(&list, NULL, NULL);
    assert_null(list);
}

/* A message for one user (issue #16): its user id and report tag travel with it. */
static void test_user_target(void **state)
{
    (void)state;
    wsp_bcast_t *b;
    assert_int_equal(wsp_bcast_new(&b, NULL, 0, (const uint8_t *)"hi", 2, 0, 1, NULL), 0);
    uint64_t uid = 1, tag = 1;
    assert_int_equal(wsp_bcast_user(b, &uid, &tag), 0); /* a channel's, by default */
    wsp_bcast_set_user(b, 0xABCDEF0123456789ull, 77);
    assert_int_equal(wsp_bcast_user(b, &uid, &tag), 1);
    assert_true(uid == 0xABCDEF0123456789ull);
    assert_int_equal(tag, 77);
    assert_int_equal(wsp_bcast_user(b, NULL, NULL), 1);
    wsp_bcast_free_all(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_every_header_size),
        cmocka_unit_test(test_kind_built_once_under_a_race),
        cmocka_unit_test(test_failed_build_is_null_for_everyone),
        cmocka_unit_test(test_reports_sum_and_reap),
        cmocka_unit_test(test_user_target),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
