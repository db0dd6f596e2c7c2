/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pmd.h"

#define ANSWER "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

/* Parses one header value; returns wsp_pmd_parse()'s result. */
static int parse1(wsp_pmd_list_t *l, const char *v)
{
    wsp_pmd_init(l);
    return wsp_pmd_parse(l, v, strlen(v));
}

/* The server's answer to one header value: NULL (declined) or the string; fails the test if
 * the value does not parse. */
static const char *answer(const char *v, wsp_pmd_t *out)
{
    wsp_pmd_list_t l;
    assert_int_equal(parse1(&l, v), 0);
    return wsp_pmd_accept(&l, out);
}

static void test_no_offer(void **state)
{
    (void)state;
    const char *none[] = {"",
                          "   ",
                          ",",
                          " , ,\t",
                          "x-webkit-deflate-frame",
                          "deflate-frame; max_window_bits=10",
                          "permessage-bzip2"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        wsp_pmd_t p;
        p.on = true;
        assert_null(answer(none[i], &p));
        assert_false(p.on);
    }
}

/* Every combination of the four parameters (RFC 7692 section 7.1) is accepted, answered with
 * both no_context_takeover parameters, and server_max_window_bits echoed when offered. */
static void test_each_combination(void **state)
{
    (void)state;
    for (unsigned mask = 0; mask < 16; mask++) {
        for (unsigned cvalue = 0; cvalue < 2; cvalue++) {
            char v[256];
            snprintf(v, sizeof(v), "permessage-deflate%s%s%s%s",
                     mask & 1 ? "; server_no_context_takeover" : "",
                     mask & 2 ? "; client_no_context_takeover" : "",
                     mask & 4 ? "; server_max_window_bits=10" : "",
                     mask & 8
                         ? (cvalue ? "; client_max_window_bits=12" : "; client_max_window_bits")
                         : "");
            wsp_pmd_t p;
            const char *a = answer(v, &p);
            assert_non_null(a);
            assert_true(p.on && p.server_no_context_takeover && p.client_no_context_takeover);
            if (mask & 4) {
                assert_string_equal(a, ANSWER "; server_max_window_bits=10");
                assert_int_equal(p.server_max_window_bits, 10);
            } else {
                assert_string_equal(a, ANSWER);
                assert_int_equal(p.server_max_window_bits, 15);
            }
            assert_int_equal(p.client_max_window_bits, (mask & 8) && cvalue ? 12 : 15);
        }
    }
}

/* The negotiation examples of RFC 7692 (sections 5.2 and 7.1). */
static void test_rfc_examples(void **state)
{
    (void)state;
    wsp_pmd_t p;
    assert_string_equal(answer("permessage-deflate", &p), ANSWER);
    assert_string_equal(answer("permessage-deflate; client_max_window_bits", &p), ANSWER);
    /* Section 5.2: two offers, the first asking for a 1 KiB server window. */
    assert_string_equal(answer("permessage-deflate; client_max_window_bits; "
                               "server_max_window_bits=10, "
                               "permessage-deflate; client_max_window_bits",
                               &p),
                        ANSWER "; server_max_window_bits=10");
    assert_int_equal(p.server_max_window_bits, 10);
    assert_string_equal(answer("permessage-deflate; server_no_context_takeover", &p), ANSWER);
    for (unsigned b = 8; b <= 15; b++) {
        char v[64], want[128];
        snprintf(v, sizeof(v), "permessage-deflate; server_max_window_bits=%u", b);
        snprintf(want, sizeof(want), ANSWER "; server_max_window_bits=%u", b);
        assert_string_equal(answer(v, &p), want);
        assert_int_equal(p.server_max_window_bits, b);
    }
}

/* An offer we must decline (RFC 7692 section 7: unknown, duplicated or invalid parameter) is
 * skipped for the next one, and is never an error. */
static void test_fallback(void **state)
{
    (void)state;
    static const char *const declined[] = {
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits=9",
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=1a",
        "permessage-deflate; server_max_window_bits=-9",
        "permessage-deflate; server_max_window_bits=\"010\"",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; client_max_window_bits=99",
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=\"x\"",
        "permessage-deflate; Server_No_Context_Takeover", /* parameter names too */
    };
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++) {
        wsp_pmd_t p;
        assert_null(answer(declined[i], &p));
        assert_false(p.on);
        char v[256];
        snprintf(v, sizeof(v), "%s, permessage-deflate; server_max_window_bits=9", declined[i]);
        assert_string_equal(answer(v, &p), ANSWER "; server_max_window_bits=9");
    }
    /* Several bad offers, another extension, then a good one: the first good one wins. */
    wsp_pmd_t p;
    assert_string_equal(answer("x-foo, permessage-deflate; a, permessage-deflate; "
                               "server_max_window_bits=16, permessage-deflate; "
                               "server_max_window_bits=12, permessage-deflate",
                               &p),
                        ANSWER "; server_max_window_bits=12");
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "permessage-deflate;",
        ";",
        "; permessage-deflate",
        "permessage-deflate;;",
        "permessage-deflate; =10",
        "permessage-deflate permessage-deflate",
        "permessage-deflate; server_max_window_bits=",
        "permessage-deflate; server_max_window_bits= ,",
        "permessage-deflate; server_max_window_bits=10 11",
        "permessage-deflate; server_max_window_bits=\"10",
        "permessage-deflate; server_max_window_bits=\"\"",
        "permessage-deflate; server_max_window_bits=\"1 0\"",
        "permessage-deflate; server_max_window_bits=\"10\\\"",
        "permessage-deflate; x=\"a,b\"",
        "permessage-deflate; x=a/b",
        "permessage-deflate; x=\"a\"b",
        "permessage-deflate, x-foo; a=\"\\\x01\"", /* quoted-pair of a CTL */
        "permessage-deflate\r\n",
        "permessage\x01-deflate",
        "perm\xc3\xa9ssage-deflate",
        "(permessage-deflate)",
        "x-foo; bar=\"baz qux\", permessage-deflate", /* bad anywhere is bad */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wsp_pmd_list_t l;
        assert_int_equal(parse1(&l, bad[i]), -EBADMSG);
    }
    /* A NUL inside the value is not a character of the grammar. */
    wsp_pmd_list_t l;
    wsp_pmd_init(&l);
    assert_int_equal(wsp_pmd_parse(&l, "permessage-deflate\0", 19), -EBADMSG);
}

static void test_quoted_and_whitespace(void **state)
{
    (void)state;
    wsp_pmd_t p;
    assert_string_equal(answer("permessage-deflate; server_max_window_bits=\"10\"", &p),
                        ANSWER "; server_max_window_bits=10");
    assert_string_equal(answer("permessage-deflate; server_max_window_bits=\"1\\1\"", &p),
                        ANSWER "; server_max_window_bits=11");
    assert_string_equal(answer("permessage-deflate; client_max_window_bits=\"9\"", &p), ANSWER);
    assert_int_equal(p.client_max_window_bits, 9);
    assert_string_equal(answer(" \t permessage-deflate \t; \tserver_max_window_bits \t=\t 13 \t, "
                               " x-foo ; a = \"b\" ; c ,\t",
                               &p),
                        ANSWER "; server_max_window_bits=13");
    assert_string_equal(answer(",,permessage-deflate,,", &p), ANSWER);
    /* Another extension's quoted parameters only need to be well-formed. */
    assert_string_equal(answer("x-foo; a=\"!#$%&'*+-.^_`|~\", permessage-deflate", &p), ANSWER);
}

/* RFC 6455 gives extension names no case rule and RFC 7230 tokens are case-sensitive: another
 * case is another extension, ignored (not an error). */
static void test_case(void **state)
{
    (void)state;
    static const char *const other[] = {"Permessage-Deflate", "PERMESSAGE-DEFLATE",
                                        "permessage-Deflate; server_no_context_takeover"};
    for (size_t i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        wsp_pmd_list_t l;
        assert_int_equal(parse1(&l, other[i]), 0);
        assert_int_equal(l.n_pmd, 0);
        assert_int_equal(l.n_other, 1);
        wsp_pmd_t p;
        assert_null(wsp_pmd_accept(&l, &p));
    }
}

/* Several header lines mean the same as one comma-joined value. */
static void test_several_lines(void **state)
{
    (void)state;
    static const char *const lines[] = {"x-foo; a=1", "",
                                        "permessage-deflate; foo, permessage-deflate; "
                                        "server_max_window_bits=12",
                                        "permessage-deflate"};
    const char *joined = "x-foo; a=1, , permessage-deflate; foo, permessage-deflate; "
                         "server_max_window_bits=12, permessage-deflate";
    wsp_pmd_list_t a, b;
    wsp_pmd_init(&a);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
        assert_int_equal(wsp_pmd_parse(&a, lines[i], strlen(lines[i])), 0);
    assert_int_equal(parse1(&b, joined), 0);
    assert_int_equal(a.n_pmd, 3);
    assert_int_equal(a.n_other, 1);
    assert_memory_equal(&a, &b, sizeof(a));
    wsp_pmd_t p;
    assert_string_equal(wsp_pmd_accept(&a, &p), ANSWER "; server_max_window_bits=12");
    /* A bad line makes the whole header bad. */
    assert_int_equal(wsp_pmd_parse(&a, "permessage-deflate;", 19), -EBADMSG);
}

/* Offers past WSP_PMD_MAX_ELEMS are counted, never chosen. */
static void test_many_offers(void **state)
{
    (void)state;
    char v[1024] = "";
    for (unsigned i = 0; i < WSP_PMD_MAX_ELEMS; i++)
        strcat(v, "permessage-deflate; x, ");
    strcat(v, "permessage-deflate");
    wsp_pmd_list_t l;
    assert_int_equal(parse1(&l, v), 0);
    assert_int_equal(l.n_pmd, WSP_PMD_MAX_ELEMS + 1);
    wsp_pmd_t p;
    assert_null(wsp_pmd_accept(&l, &p));
}

static void test_fits(void **state)
{
    (void)state;
    assert_true(wsp_pmd_fits(8, 0));
    assert_true(wsp_pmd_fits(8, 256));
    assert_false(wsp_pmd_fits(8, 257));
    assert_true(wsp_pmd_fits(14, 16384));
    assert_false(wsp_pmd_fits(14, 16385));
    assert_true(wsp_pmd_fits(15, 32768));
    assert_true(wsp_pmd_fits(15, (size_t)1 << 30)); /* libdeflate's own window */
}

static void test_offer_format(void **state)
{
    (void)state;
    char out[256];
    wsp_pmd_params_t w = {0};
    assert_int_equal(wsp_pmd_offer(&w, out, sizeof(out)), 18);
    assert_string_equal(out, "permessage-deflate");
    w = (wsp_pmd_params_t){.server_no_context_takeover = true,
                           .client_no_context_takeover = true,
                           .server_max_window_bits = 10,
                           .client_max_window_bits = WSP_PMD_BITS_NOVALUE};
    const char *want = "permessage-deflate; server_no_context_takeover; "
                       "client_no_context_takeover; server_max_window_bits=10; "
                       "client_max_window_bits";
    assert_int_equal(wsp_pmd_offer(&w, out, sizeof(out)), (int)strlen(want));
    assert_string_equal(out, want);
    /* Exactly enough room, and one byte less. */
    assert_int_equal(wsp_pmd_offer(&w, out, strlen(want) + 1), (int)strlen(want));
    assert_int_equal(wsp_pmd_offer(&w, out, strlen(want)), -ENOBUFS);
    assert_int_equal(wsp_pmd_offer(&w, out, 0), -ENOBUFS);
    w.server_max_window_bits = 16;
    assert_int_equal(wsp_pmd_offer(&w, out, sizeof(out)), -EINVAL);
    w.server_max_window_bits = WSP_PMD_BITS_NOVALUE; /* only the client's may lack a value */
    assert_int_equal(wsp_pmd_offer(&w, out, sizeof(out)), -EINVAL);
    w.server_max_window_bits = 0;
    w.client_max_window_bits = 7;
    assert_int_equal(wsp_pmd_offer(&w, out, sizeof(out)), -EINVAL);
    /* Every offer we format parses back to what was asked, and the server accepts it. */
    for (unsigned mask = 0; mask < 16; mask++) {
        wsp_pmd_params_t q = {.server_no_context_takeover = mask & 1,
                              .client_no_context_takeover = (mask & 2) != 0,
                              .server_max_window_bits = mask & 4 ? 11 : 0,
                              .client_max_window_bits = mask & 8 ? 9 : WSP_PMD_BITS_NOVALUE};
        int n = wsp_pmd_offer(&q, out, sizeof(out));
        assert_true(n > 0);
        wsp_pmd_list_t l;
        wsp_pmd_init(&l);
        assert_int_equal(wsp_pmd_parse(&l, out, (size_t)n), 0);
        assert_int_equal(l.n_pmd, 1);
        assert_memory_equal(&l.elem[0], &q, sizeof(q));
    }
}

/* The client's check of an answer to its offer. */
static int check(const wsp_pmd_params_t *offered, const char *ans, wsp_pmd_t *out)
{
    wsp_pmd_list_t l;
    assert_int_equal(parse1(&l, ans), 0);
    return wsp_pmd_check(offered, &l, out);
}

static void test_check_answer(void **state)
{
    (void)state;
    wsp_pmd_t p;
    wsp_pmd_params_t plain = {.client_max_window_bits = WSP_PMD_BITS_NOVALUE}; /* browsers' */
    assert_int_equal(check(&plain, "", &p), 0);
    assert_false(p.on);
    assert_int_equal(check(&plain, ANSWER, &p), 1);
    assert_true(p.on && p.server_no_context_takeover && p.client_no_context_takeover);
    assert_int_equal(p.server_max_window_bits, 15);
    assert_int_equal(p.client_max_window_bits, 15);
    /* Without server_no_context_takeover the server may keep its window: recorded. */
    assert_int_equal(check(&plain, "permessage-deflate", &p), 1);
    assert_false(p.server_no_context_takeover);
    /* A server may limit its own window unasked, and the client's once offered. */
    assert_int_equal(check(&plain,
                           "permessage-deflate; server_max_window_bits=9; "
                           "client_max_window_bits=10",
                           &p),
                     1);
    assert_int_equal(p.server_max_window_bits, 9);
    assert_int_equal(p.client_max_window_bits, 10);

    wsp_pmd_params_t strict = {.server_no_context_takeover = true,
                               .client_no_context_takeover = true,
                               .server_max_window_bits = 12,
                               .client_max_window_bits = 11};
    assert_int_equal(check(&strict, ANSWER "; server_max_window_bits=12", &p), 1);
    assert_int_equal(p.client_max_window_bits, 11); /* offered, so kept though not answered */
    assert_int_equal(check(&strict, ANSWER "; server_max_window_bits=10", &p), 1);
    /* Offering client_no_context_takeover commits the client even if the answer omits it. */
    assert_int_equal(check(&strict,
                           "permessage-deflate; server_no_context_takeover; "
                           "server_max_window_bits=12",
                           &p),
                     1);
    assert_true(p.client_no_context_takeover);

    const struct {
        const wsp_pmd_params_t *offered;
        const char *answer;
    } fail[] = {
        {&plain, "x-foo"},
        {&plain, "permessage-deflate, x-foo"},
        {&plain, "permessage-deflate, permessage-deflate"},
        {&plain, "permessage-deflate; foo"},
        {&plain, "permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
        {&plain, "permessage-deflate; client_max_window_bits"}, /* a value is required */
        {&plain, "permessage-deflate; server_max_window_bits=16"},
        {&strict, ANSWER "; server_max_window_bits=13"},            /* larger than offered */
        {&strict, ANSWER},                                          /* limit not answered */
        {&strict, "permessage-deflate; server_max_window_bits=12"}, /* context takeover kept */
        {&strict, ANSWER "; server_max_window_bits=12; client_max_window_bits=12"},
        {&(wsp_pmd_params_t){0}, ANSWER "; client_max_window_bits=12"}, /* not offered */
    };
    for (size_t i = 0; i < sizeof(fail) / sizeof(fail[0]); i++) {
        p.on = true;
        assert_int_equal(check(fail[i].offered, fail[i].answer, &p), -EPROTO);
        assert_false(p.on);
    }
}

/* What the server answers is what a client that offered it accepts. */
static void test_server_answer_passes_client_check(void **state)
{
    (void)state;
    for (unsigned mask = 0; mask < 16; mask++) {
        for (unsigned bits = 8; bits <= 15; bits++) {
            wsp_pmd_params_t q = {.server_no_context_takeover = mask & 1,
                                  .client_no_context_takeover = (mask & 2) != 0,
                                  .server_max_window_bits = mask & 4 ? (uint8_t)bits : 0,
                                  .client_max_window_bits =
                                      mask & 8 ? (uint8_t)bits : WSP_PMD_BITS_NOVALUE};
            char offer[256];
            assert_true(wsp_pmd_offer(&q, offer, sizeof(offer)) > 0);
            wsp_pmd_t server, client;
            const char *a = answer(offer, &server);
            assert_non_null(a);
            assert_int_equal(check(&q, a, &client), 1);
            assert_memory_equal(&server, &client, sizeof(server));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_offer),
        cmocka_unit_test(test_each_combination),
        cmocka_unit_test(test_rfc_examples),
        cmocka_unit_test(test_fallback),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_quoted_and_whitespace),
        cmocka_unit_test(test_case),
        cmocka_unit_test(test_several_lines),
        cmocka_unit_test(test_many_offers),
        cmocka_unit_test(test_fits),
        cmocka_unit_test(test_offer_format),
        cmocka_unit_test(test_check_answer),
        cmocka_unit_test(test_server_answer_passes_client_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
