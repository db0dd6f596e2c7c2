#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "utf8.h"

static int valid(const char *s, size_t n) { return wsp_utf8_valid((const uint8_t *)s, n); }

static void test_valid(void **state)
{
    (void)state;
    assert_true(valid("", 0));
    assert_true(valid("hello", 5));
    assert_true(valid("h\xc3\xa9llo", 6));     /* é */
    assert_true(valid("\xe2\x82\xac", 3));     /* € */
    assert_true(valid("\xf0\x9f\x98\x80", 4)); /* U+1F600 */
    assert_true(valid("\xf4\x8f\xbf\xbf", 4)); /* U+10FFFF */
    assert_true(valid("\xed\x9f\xbf", 3));     /* U+D7FF, below the surrogates */
    assert_true(valid("a\0b", 3));             /* NUL is valid UTF-8 */
}

static void test_invalid(void **state)
{
    (void)state;
    assert_false(valid("\x80", 1));             /* lone continuation */
    assert_false(valid("\xc3", 1));             /* truncated */
    assert_false(valid("\xc0\xaf", 2));         /* overlong '/' */
    assert_false(valid("\xc1\xbf", 2));         /* overlong */
    assert_false(valid("\xe0\x80\xaf", 3));     /* overlong */
    assert_false(valid("\xed\xa0\x80", 3));     /* surrogate U+D800 */
    assert_false(valid("\xf0\x80\x80\xaf", 4)); /* overlong */
    assert_false(valid("\xf4\x90\x80\x80", 4)); /* above U+10FFFF */
    assert_false(valid("\xf5\x80\x80\x80", 4)); /* invalid lead */
    assert_false(valid("\xff", 1));
    assert_false(valid("\xe2\x82", 2));     /* truncated at the end */
    assert_false(valid("\xe2\x28\xa1", 3)); /* bad continuation */
    assert_false(valid("ok\xc3\x28", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
