#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"

/* The copy the last parse() read: names point into it, so it lives until the next call. */
static char *last;

/* Parses a heap copy of exactly strlen(q) bytes, so ASan catches a read past the query. */
static int parse(const char *q, wsp_chanlist_t *out)
{
    free(last);
    size_t len = strlen(q);
    last = malloc(len > 0 ? len : 1);
    assert_non_null(last);
    memcpy(last, q, len);
    return wsp_channels_parse_query(last, len, out);
}

static int teardown(void **state)
{
    (void)state;
    free(last);
    last = NULL;
    return 0;
}

static int valid(const char *s) { return wsp_channel_valid(s, strlen(s)); }

static void assert_name(const wsp_chanlist_t *l, unsigned i, const char *want)
{
    assert_true(i < l->n);
    assert_int_equal(l->v[i].len, strlen(want));
    assert_memory_equal(l->v[i].name, want, strlen(want));
}

static void test_valid_each_class(void **state)
{
    (void)state;
    assert_true(valid("abcxyz"));
    assert_true(valid("ABCXYZ"));
    assert_true(valid("0123456789"));
    assert_true(valid("_"));
    assert_true(valid("."));
    assert_true(valid(":"));
    assert_true(valid("-"));
    assert_true(valid("news.eu:fr_1-b"));
    assert_true(valid(WSP_CHANNEL_DEFAULT));
}

static void test_valid_length(void **state)
{
    (void)state;
    char name[WSP_CHANNEL_NAME_MAX + 2];
    memset(name, 'a', sizeof name);
    assert_true(wsp_channel_valid(name, 1));
    assert_true(wsp_channel_valid(name, WSP_CHANNEL_NAME_MAX));
    assert_false(wsp_channel_valid(name, WSP_CHANNEL_NAME_MAX + 1));
    assert_false(wsp_channel_valid(name, 0));
    assert_false(wsp_channel_valid(NULL, 0));
}

static void test_invalid_chars(void **state)
{
    (void)state;
    assert_false(valid("a b"));
    assert_false(valid(" a"));
    assert_false(valid("a%20b"));
    assert_false(valid("caf\xc3\xa9")); /* "café": bytes >= 0x80 */
    assert_false(valid("\xff"));
    assert_false(valid("a/b"));
    assert_false(valid("a,b"));
    assert_false(valid("a=b"));
    assert_false(valid("a&b"));
    assert_false(valid("a+b"));
    assert_false(valid("a\"b"));
    assert_false(valid("a\tb"));
    assert_false(wsp_channel_valid("a\0b", 3)); /* the length counts, not a NUL */
}

static void test_query_none_gives_default(void **state)
{
    (void)state;
    wsp_chanlist_t l;
    assert_int_equal(wsp_channels_parse_query(NULL, 0, &l), 0);
    assert_int_equal(l.n, 1);
    assert_name(&l, 0, WSP_CHANNEL_DEFAULT);
    assert_int_equal(parse("", &l), 0);
    assert_int_equal(l.n, 1);
    assert_name(&l, 0, WSP_CHANNEL_DEFAULT);
    assert_int_equal(parse("x=1&y=2", &l), 0);
    assert_int_equal(l.n, 1);
    assert_name(&l, 0, WSP_CHANNEL_DEFAULT);
    /* Only the exact key counts. */
    assert_int_equal(parse("channel=a&Channels=b&channelsx=c&xchannels=d", &l), 0);
    assert_int_equal(l.n, 1);
    assert_name(&l, 0, WSP_CHANNEL_DEFAULT);
}

static void test_query_list(void **state)
{
    (void)state;
    wsp_chanlist_t l;
    assert_int_equal(parse("channels=a,b", &l), 0);
    assert_int_equal(l.n, 2);
    assert_name(&l, 0, "a");
    assert_name(&l, 1, "b");
    /* Names point into the query itself: no copies. */
    assert_ptr_equal(l.v[0].name, last + strlen("channels="));
    assert_int_equal(parse("channels=time", &l), 0);
    assert_int_equal(l.n, 1);
    assert_name(&l, 0, "time");
}

static void test_query_duplicates_merged(void **state)
{
    (void)state;
    wsp_chanlist_t l;
    assert_int_equal(parse("channels=a,b,a,b,a", &l), 0);
    assert_int_equal(l.n, 2);
    assert_name(&l, 0, "a");
    assert_name(&l, 1, "b");
    /* Nine items but eight distinct names fit. */
    assert_int_equal(parse("channels=a,b,c,d,e,f,g,h,a", &l), 0);
    assert_int_equal(l.n, 8);
    /* A prefix is not a duplicate. */
    assert_int_equal(parse("channels=ab,a", &l), 0);
    assert_int_equal(l.n, 2);
}

static void test_query_max(void **state)
{
    (void)state;
    wsp_chanlist_t l;
    assert_int_equal(parse("channels=a,b,c,d,e,f,g,h", &l), 0);
    assert_int_equal(l.n, WSP_CHANNELS_MAX);
    assert_name(&l, 7, "h");
    assert_int_equal(parse("channels=a,b,c,d,e,f,g,h,i", &l), -EINVAL);
}

static void test_query_empty_items(void **state)
{
    (void)state;
    wsp_chanlist_t l;
    assert_int_equal(parse("channels=", &l), -EINVAL);
    assert_int_equal(parse("channels", &l), -EINVAL);
    assert_int_equal(parse("channels&x=1", &l), -EINVAL);
    assert_int_equal(parse("channels=a,", &l), -EINVAL);
    assert_int_equal(parse("channels=,a", &l), -EINVAL);
    assert_int_equal(parse("channels=a,,b", &l), -EINVAL);
    assert_int_equal(parse("channels=,", &l), -EINVAL);
}

static void test_query_invalid_names(void **state)
{
    (void)state;
    wsp_chanlist_t l;
    assert_int_equal(parse("channels=a%20b", &l), -EINVAL); /* not decoded */
    assert_int_equal(parse("channels=a+b", &l), -EINVAL);
    assert_int_equal(parse("channels=caf\xc3\xa9", &l), -EINVAL);
    char q[128] = "channels=";
    memset(q + strlen(q), 'x', WSP_CHANNEL_NAME_MAX);
    assert_int_equal(parse(q, &l), 0);
    assert_int_equal(l.v[0].len, WSP_CHANNEL_NAME_MAX);
    strcat(q, "x");
    assert_int_equal(parse(q, &l), -EINVAL);
}

static void test_query_other_params_ignored(void **state)
{
    (void)state;
    wsp_chanlist_t l;
    assert_int_equal(parse("x=1&channels=a&y=2", &l), 0);
    assert_int_equal(l.n, 1);
    assert_name(&l, 0, "a");
    assert_int_equal(parse("&&channels=a,b&", &l), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(parse("x=%zz&channels=a", &l), 0); /* junk elsewhere is not ours */
    assert_int_equal(l.n, 1);
}

static void test_query_repeated(void **state)
{
    (void)state;
    wsp_chanlist_t l = {.n = 5};
    assert_int_equal(parse("channels=a&channels=b", &l), -EINVAL);
    assert_int_equal(parse("channels=a&x=1&channels=a", &l), -EINVAL);
    assert_int_equal(l.n, 5); /* untouched on failure */
}

static void test_query_length_bounds(void **state)
{
    (void)state;
    wsp_chanlist_t l;
    /* len, not a NUL, ends the query. */
    const char q[] = "channels=a,b";
    assert_int_equal(wsp_channels_parse_query(q, strlen("channels=a"), &l), 0);
    assert_int_equal(l.n, 1);
    assert_name(&l, 0, "a");
    assert_int_equal(wsp_channels_parse_query(q, 0, &l), 0);
    assert_name(&l, 0, WSP_CHANNEL_DEFAULT);
}

/* The one query-parameter lookup (the channel list, the admin API, the token). */
static void test_query_param(void **state)
{
    (void)state;
    const char *v = NULL;
    size_t n = 99;
    assert_int_equal(wsp_channels_query_param(NULL, 0, "token", &v, &n), 0);
    assert_int_equal(wsp_channels_query_param("tokens=a&xtoken=b&tok=c", 23, "token", &v, &n), 0);
    assert_int_equal(wsp_channels_query_param("a=1&token=x.y&b", 15, "token", &v, &n), 1);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "x.y", 3);
    assert_int_equal(wsp_channels_query_param("token", 5, "token", &v, &n), 1);
    assert_int_equal(n, 0);
    assert_int_equal(wsp_channels_query_param("token=&b", 8, "token", &v, &n), 1);
    assert_int_equal(n, 0);
    assert_int_equal(wsp_channels_query_param("token=1&token=2&token=3", 23, "token", &v, &n), 2);
    assert_int_equal(n, 1);
    assert_memory_equal(v, "1", 1); /* the first one's */
    assert_int_equal(wsp_channels_query_param("x=token=1", 9, "token", &v, &n), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_each_class),
        cmocka_unit_test(test_valid_length),
        cmocka_unit_test(test_invalid_chars),
        cmocka_unit_test_teardown(test_query_none_gives_default, teardown),
        cmocka_unit_test_teardown(test_query_list, teardown),
        cmocka_unit_test_teardown(test_query_duplicates_merged, teardown),
        cmocka_unit_test_teardown(test_query_max, teardown),
        cmocka_unit_test_teardown(test_query_empty_items, teardown),
        cmocka_unit_test_teardown(test_query_invalid_names, teardown),
        cmocka_unit_test_teardown(test_query_other_params_ignored, teardown),
        cmocka_unit_test_teardown(test_query_repeated, teardown),
        cmocka_unit_test_teardown(test_query_length_bounds, teardown),
        cmocka_unit_test(test_query_param),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
