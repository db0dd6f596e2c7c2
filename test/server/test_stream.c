/* server/stream.c: the Redis layout of sequenced channels: keys, the envelope a sequenced
 * message travels in, stream entry IDs, and the scripts' SHA-1s. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "stream.h"

static void test_keys(void **state)
{
    (void)state;
    char b[64];
    assert_int_equal(wsp_stream_meta_key(b, sizeof(b), "wspush"), 11);
    assert_string_equal(b, "wspush:hist");
    assert_int_equal(wsp_stream_key(b, sizeof(b), "wspush", "news", 4), 16);
    assert_string_equal(b, "wspush:hist:news");
    wsp_stream_key(b, sizeof(b), "wspush", NULL, 0);
    assert_string_equal(b, "wspush:hist:time"); /* the default channel has a name here */
    wsp_stream_field(b, sizeof(b), "a:b", 3);
    assert_string_equal(b, "s:a:b");
    wsp_stream_field(b, sizeof(b), NULL, 0);
    assert_string_equal(b, "s:time");
    assert_int_equal(wsp_stream_meta_key(b, 11, "wspush"), -ENOBUFS);
}

static int parse(const char *s, size_t n, uint64_t *seq, const char **e, size_t *el,
                 const uint8_t **p, size_t *pl)
{
    return wsp_stream_parse((const uint8_t *)s, n, seq, e, el, p, pl);
}

static void test_envelope(void **state)
{
    (void)state;
    uint64_t seq;
    const char *e;
    size_t el, pl;
    const uint8_t *p;
    static const char env[] = "\xffwsp1;Ab_-9;42;{\"x\":1}";
    assert_int_equal(parse(env, sizeof(env) - 1, &seq, &e, &el, &p, &pl), 1);
    assert_int_equal(seq, 42);
    assert_int_equal(el, 5);
    assert_memory_equal(e, "Ab_-9", 5);
    assert_int_equal(pl, 7);
    assert_memory_equal(p, "{\"x\":1}", 7);
    static const char empty[] = "\xffwsp1;e;1;";
    assert_int_equal(parse(empty, sizeof(empty) - 1, &seq, &e, &el, &p, &pl), 1);
    assert_int_equal(pl, 0);
    /* A payload may hold ';' */
    static const char semi[] = "\xffwsp1;e;7;a;b";
    assert_int_equal(parse(semi, sizeof(semi) - 1, &seq, &e, &el, &p, &pl), 1);
    assert_int_equal(pl, 3);
    /* Raw messages: anything not starting with 0xFF (which UTF-8 never has). */
    assert_int_equal(parse("hello", 5, &seq, &e, &el, &p, &pl), 0);
    assert_int_equal(parse("", 0, &seq, &e, &el, &p, &pl), 0);
    static const char *const bad[] = {
        "\xff",           "\xffwsp2;e;1;x",
        "\xffwsp1;",      "\xffwsp1;e;1",
        "\xffwsp1;;1;x",  "\xffwsp1;e e;1;x",
        "\xffwsp1;e;0;x", "\xffwsp1;e;x;x",
        "\xffwsp1;e;;x",  "\xffwsp1;e;12345678901234567890;x",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], strlen(bad[i]), &seq, &e, &el, &p, &pl), -EBADMSG);
}

static void test_ids_and_shas(void **state)
{
    (void)state;
    uint64_t seq;
    assert_int_equal(wsp_stream_id("17-0", 4, &seq), 0);
    assert_int_equal(seq, 17);
    assert_int_equal(wsp_stream_id("17-1", 4, &seq), -EBADMSG);
    assert_int_equal(wsp_stream_id("-0", 2, &seq), -EBADMSG);
    assert_int_equal(wsp_stream_id("1x-0", 4, &seq), -EBADMSG);
    char a[41], b[41];
    assert_int_equal(wsp_stream_shas(a, b), 0);
    assert_int_equal(strlen(a), 40);
    assert_int_equal(strlen(b), 40);
    assert_string_not_equal(a, b);
    assert_int_equal(strspn(a, "0123456789abcdef"), 40);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_ids_and_shas),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
