/* server/pubhold.c: what a live upgrade's new process holds from Redis until its takeover
 * (issue #20). The old process delivered everything up to its marker; the release hands back
 * exactly what follows it, in order, or waits for it (dropping what still precedes it); with
 * no marker, a lost link or an overflow everything held is handed back (never less). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "pubhold.h"

/* What the release handed back, as "kind:name:payload" joined with spaces. */
typedef struct got_s {
    char s[512];
    unsigned n;
} got_t;

static void on_msg(void *ud, const wsp_pubhold_msg_t *m)
{
    got_t *g = ud;
    size_t at = strlen(g->s);
    snprintf(g->s + at, sizeof(g->s) - at, "%s%c:%.*s:%.*s:%llu", at ? " " : "",
             m->kind == WSP_PUBHOLD_USER ? 'u' : 'm', m->name ? (int)m->name_len : 1,
             m->name ? m->name : "-", (int)m->len, (const char *)m->payload,
             (unsigned long long)m->cseq);
    g->n++;
}

static int take(wsp_pubhold_t *h, int kind, const char *name, const char *payload)
{
    wsp_pubhold_msg_t m = {.kind = kind,
                           .name = name,
                           .name_len = name ? strlen(name) : 0,
                           .payload = (const uint8_t *)payload,
                           .len = strlen(payload),
                           .cseq = kind == WSP_PUBHOLD_MSG && name ? 7 : 0,
                           .epoch = kind == WSP_PUBHOLD_MSG && name ? "ep" : NULL,
                           .epoch_len = kind == WSP_PUBHOLD_MSG && name ? 2 : 0};
    return wsp_pubhold_take(h, &m);
}

/* a, the marker (after another process's token), b, user c: b and c are handed, in order. */
static void test_cut_at_marker(void **state)
{
    (void)state;
    wsp_pubhold_t h;
    wsp_pubhold_start(&h, 0);
    assert_true(wsp_pubhold_active(&h));
    assert_int_equal(take(&h, WSP_PUBHOLD_MSG, NULL, "a"), 1);
    assert_int_equal(take(&h, WSP_PUBHOLD_SYNC, NULL, "99.3"), 1); /* another worker's */
    assert_int_equal(take(&h, WSP_PUBHOLD_MSG, "news", "a2"), 1);
    assert_int_equal(take(&h, WSP_PUBHOLD_SYNC, NULL, "41.12"), 1);
    assert_int_equal(take(&h, WSP_PUBHOLD_MSG, "news", "b"), 1);
    assert_int_equal(take(&h, WSP_PUBHOLD_USER, "alice", "c"), 1);
    got_t g = {0};
    assert_int_equal(wsp_pubhold_release(&h, "41.12", 5, on_msg, &g), WSP_PUBHOLD_CUT_FOUND);
    assert_string_equal(g.s, "m:news:b:7 u:alice:c:0");
    assert_int_equal(h.skipped, 2);
    assert_int_equal(h.handed, 2);
    assert_false(wsp_pubhold_active(&h)); /* what comes now is delivered as it comes */
    assert_null(h.head);
    assert_int_equal(h.bytes, 0);
}

/* A marker token that merely starts like ours ("41.1" versus "41.12") is not ours. */
static void test_marker_exact(void **state)
{
    (void)state;
    wsp_pubhold_t h;
    wsp_pubhold_start(&h, 0);
    take(&h, WSP_PUBHOLD_SYNC, NULL, "41.12");
    take(&h, WSP_PUBHOLD_MSG, NULL, "x");
    take(&h, WSP_PUBHOLD_SYNC, NULL, "41.1");
    take(&h, WSP_PUBHOLD_MSG, NULL, "y");
    got_t g = {0};
    assert_int_equal(wsp_pubhold_release(&h, "41.1", 4, on_msg, &g), WSP_PUBHOLD_CUT_FOUND);
    assert_string_equal(g.s, "m:-:y:0");
}

/* Released before the marker came: all held preceded it (dropped), and so does what comes
 * until it; after it, nothing is held any more. */
static void test_await_marker(void **state)
{
    (void)state;
    wsp_pubhold_t h;
    wsp_pubhold_start(&h, 0);
    take(&h, WSP_PUBHOLD_MSG, NULL, "a");
    take(&h, WSP_PUBHOLD_SYNC, NULL, "41.11"); /* an earlier barrier of the old process */
    got_t g = {0};
    assert_int_equal(wsp_pubhold_release(&h, "41.12", 5, on_msg, &g), WSP_PUBHOLD_CUT_AWAIT);
    assert_int_equal(g.n, 0);
    assert_true(wsp_pubhold_active(&h));
    assert_int_equal(h.state, WSP_PUBHOLD_AWAIT);
    assert_int_equal(take(&h, WSP_PUBHOLD_MSG, NULL, "b"), 0);
    assert_int_equal(take(&h, WSP_PUBHOLD_USER, "bob", "c"), 0);
    assert_int_equal(take(&h, WSP_PUBHOLD_SYNC, NULL, "41.12"), 0);
    assert_false(wsp_pubhold_active(&h));
    assert_int_equal(h.skipped, 3);
}

/* No marker (an old process that sends none, or whose marker failed): everything handed. */
static void test_no_marker(void **state)
{
    (void)state;
    wsp_pubhold_t h;
    wsp_pubhold_start(&h, 0);
    take(&h, WSP_PUBHOLD_MSG, NULL, "a");
    take(&h, WSP_PUBHOLD_SYNC, NULL, "41.12");
    take(&h, WSP_PUBHOLD_MSG, NULL, "b");
    got_t g = {0};
    assert_int_equal(wsp_pubhold_release(&h, NULL, 0, on_msg, &g), WSP_PUBHOLD_CUT_NONE);
    assert_string_equal(g.s, "m:-:a:0 m:-:b:0");
    assert_false(wsp_pubhold_active(&h));
}

/* The link was lost while holding: a marker not among what was held may never come, so
 * nothing is awaited; one that is there still cuts exactly. */
static void test_broken(void **state)
{
    (void)state;
    wsp_pubhold_t h;
    wsp_pubhold_start(&h, 0);
    take(&h, WSP_PUBHOLD_MSG, NULL, "a");
    wsp_pubhold_broken(&h);
    take(&h, WSP_PUBHOLD_MSG, NULL, "b");
    got_t g = {0};
    assert_int_equal(wsp_pubhold_release(&h, "41.12", 5, on_msg, &g), WSP_PUBHOLD_CUT_INEXACT);
    assert_string_equal(g.s, "m:-:a:0 m:-:b:0");

    wsp_pubhold_start(&h, 0);
    take(&h, WSP_PUBHOLD_SYNC, NULL, "41.12");
    take(&h, WSP_PUBHOLD_MSG, NULL, "c");
    wsp_pubhold_broken(&h);
    memset(&g, 0, sizeof(g));
    assert_int_equal(wsp_pubhold_release(&h, "41.12", 5, on_msg, &g), WSP_PUBHOLD_CUT_FOUND);
    assert_string_equal(g.s, "m:-:c:0");

    /* Awaiting when the link goes: the marker cannot come any more, the wait ends. */
    wsp_pubhold_start(&h, 0);
    assert_int_equal(wsp_pubhold_release(&h, "41.12", 5, on_msg, &g), WSP_PUBHOLD_CUT_AWAIT);
    wsp_pubhold_broken(&h);
    assert_false(wsp_pubhold_active(&h));
}

/* Over the byte budget the oldest go (counted); the newest always stays; the cut is then
 * inexact unless the marker survived. */
static void test_budget(void **state)
{
    (void)state;
    wsp_pubhold_t h;
    wsp_pubhold_start(&h, 200);
    char p[8];
    for (int i = 0; i < 20; i++) {
        snprintf(p, sizeof(p), "m%02d", i);
        assert_int_equal(take(&h, WSP_PUBHOLD_MSG, NULL, p), 1);
        assert_true(h.bytes <= 200);
    }
    assert_true(h.overflow > 0);
    assert_true(h.bytes <= 200);
    got_t g = {0};
    assert_int_equal(wsp_pubhold_release(&h, "41.12", 5, on_msg, &g), WSP_PUBHOLD_CUT_INEXACT);
    assert_int_equal(g.n + h.overflow, 20);
    assert_non_null(strstr(g.s, "m:-:m19:0")); /* the newest */
    assert_null(strstr(g.s, "m:-:m00:0"));     /* the oldest went */

    /* A single entry larger than the budget is still kept: only older ones give way. */
    wsp_pubhold_start(&h, 8);
    assert_int_equal(take(&h, WSP_PUBHOLD_MSG, NULL, "larger than eight"), 1);
    assert_int_equal(h.overflow, 0);
    wsp_pubhold_clear(&h);
    assert_false(wsp_pubhold_active(&h));
    assert_null(h.head);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cut_at_marker), cmocka_unit_test(test_marker_exact),
        cmocka_unit_test(test_await_marker),  cmocka_unit_test(test_no_marker),
        cmocka_unit_test(test_broken),        cmocka_unit_test(test_budget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
