/* The main() of every integration test: the wspush binary from argv[1], then the file's cmocka
 * group (WSP_IT_SUITE). In the harness archive, so a test that defines its own main() wins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>

#include "harness.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s PATH_TO_WSPUSH\n", argv[0]);
        return 2;
    }
    wsp_it_binary = argv[1];
    const wsp_it_suite_t *s = &wsp_it_suite;
    return _cmocka_run_group_tests(s->name, s->tests, s->count, s->setup, s->teardown);
}
