#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "buf.h"

static void test_append_printf(void **state)
{
    (void)state;
    wsp_buf_t b = {0};
    assert_int_equal(wsp_buf_append(&b, "ab", 2), 0);
    assert_int_equal(wsp_buf_printf(&b, "%d-%s", 42, "x"), 0);
    assert_int_equal(b.len, 6);
    assert_string_equal(b.data, "ab42-x");
    wsp_buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_grows(void **state)
{
    (void)state;
    wsp_buf_t b = {0};
    char chunk[1000];
    memset(chunk, 'z', sizeof(chunk));
    for (int i = 0; i < 100; i++)
        assert_int_equal(wsp_buf_append(&b, chunk, sizeof(chunk)), 0);
    for (int i = 0; i < 1000; i++)
        assert_int_equal(wsp_buf_printf(&b, "%04d", i), 0);
    assert_int_equal(b.len, 100000 + 4000);
    assert_true(b.cap > b.len);
    assert_int_equal(b.data[b.len], '\0');
    assert_memory_equal(b.data + 100000 + 4 * 999, "0999", 4);
    wsp_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_printf),
        cmocka_unit_test(test_grows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
