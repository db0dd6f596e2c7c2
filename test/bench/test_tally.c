/* Delivery accounting (bench/tally.c): which broadcasts a connection counts for, at the end
 * and in a gap, and the run's totals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "tally.h"

/* Three broadcasts sent at t = 1000, 2000 and 3000 ms, each received by someone. */
static wsp_seq_stat_t *sent3(void)
{
    wsp_seq_stat_t *seq = calloc(WSP_SEQ_MAX, sizeof(*seq));
    assert_non_null(seq);
    for (int k = 1; k <= 3; k++) {
        seq[k].got = 1;
        seq[k].time_min_ms = 1000u * (unsigned)k;
    }
    return seq;
}

static wsp_bconn_t open_conn(uint32_t first, uint32_t last)
{
    wsp_bconn_t c;
    memset(&c, 0, sizeof(c));
    c.state = WSP_BCONN_OPEN;
    c.first_seq = first == 1 ? 0 : first; /* as the worker stores it */
    c.last_seq = last;
    return c;
}

static wsp_seq_stat_t out[WSP_SEQ_MAX]; /* what a test's tally writes */

/* The missing counts of seqs 1..5 as a number: digit k = missing of seq k. */
static unsigned missing_of(const wsp_seq_stat_t *t)
{
    unsigned v = 0;
    for (int k = 1; k <= 5; k++)
        v = v * 10 + (unsigned)t[k].missing;
    return v;
}

static void test_window(void **state)
{
    (void)state;
    wsp_seq_stat_t *seq = calloc(WSP_SEQ_MAX, sizeof(*seq));
    wsp_tally_win_t w;
    wsp_tally_window(&w, seq, -1);
    assert_true(w.lo > w.hi); /* nothing received, nothing given: nothing expected */
    assert_false(w.given);
    seq[2].got = seq[5].got = 1;
    wsp_tally_window(&w, seq, -1);
    assert_int_equal(w.lo, 2);
    assert_int_equal(w.hi, 5);
    wsp_tally_window(&w, seq, 3); /* given: 1..3 whatever was received */
    assert_true(w.given);
    assert_int_equal(w.lo, 1);
    assert_int_equal(w.hi, 3);
    wsp_tally_window(&w, seq, 0);
    assert_true(w.lo > w.hi);
    free(seq);
}

/* Tallies one connection open at the end (first and last seq received, upgraded at est ms)
 * against seq with broadcasts 1..expect; checks the count returned against the table and
 * returns the table as missing_of() digits. */
static unsigned tally_one(const wsp_seq_stat_t *seq, int64_t expect, uint32_t first, uint32_t last,
                          uint64_t est)
{
    memset(out, 0, sizeof(out));
    wsp_tally_win_t w;
    wsp_tally_window(&w, seq, expect);
    wsp_bconn_t c = open_conn(first, last);
    uint64_t n = wsp_tally_conn(&c, est, &w, out), sum = 0;
    for (uint64_t k = 0; k < WSP_SEQ_MAX; k++)
        sum += out[k].missing;
    assert_int_equal(n, sum);
    return missing_of(out);
}

/* A connection that received broadcasts: nothing if it got them all; after the last one it
 * received, every later one, whatever the times (it was open); nothing beyond
 * --expect-broadcasts, but what came before its first one still counts. */
static void test_after_and_beyond(void **state)
{
    (void)state;
    wsp_seq_stat_t *seq = sent3();
    assert_int_equal(tally_one(seq, 3, 1, 3, 500), 0);
    assert_int_equal(tally_one(seq, 3, 1, 1, 2500), 1100); /* est after T(2): still open */
    assert_int_equal(tally_one(seq, 2, 3, 5, 500), 11000);
    free(seq);
}

/* Before the first one received (or all): only those sent after the upgrade. */
static void test_head_by_time(void **state)
{
    (void)state;
    wsp_seq_stat_t *seq = sent3();
    assert_int_equal(tally_one(seq, 3, 0, 0, 500), 11100);
    assert_int_equal(tally_one(seq, 3, 0, 0, 1500), 1100); /* upgraded after T(1) */
    assert_int_equal(tally_one(seq, 3, 0, 0, 2000), 100);  /* T(2) == est: not open */
    assert_int_equal(tally_one(seq, 3, 3, 3, 500), 11000);
    assert_int_equal(tally_one(seq, 3, 3, 3, 1500), 1000);
    free(seq);
}

/* A broadcast nobody received has no time: it counts for every connection open at the end,
 * and an older one with a time still stops the walk. 4: given, never sent by anyone. */
static void test_nobody_received(void **state)
{
    (void)state;
    wsp_seq_stat_t *seq = sent3();
    seq[2].got = 0;
    seq[2].time_min_ms = 0;
    assert_int_equal(tally_one(seq, 4, 3, 3, 1500), 1010); /* 4 (after 3) and 2 */
    assert_int_equal(tally_one(seq, 4, 0, 0, 3500), 10);   /* upgraded after 3: only 4 */
    free(seq);
}

static void test_gap(void **state)
{
    (void)state;
    wsp_seq_stat_t *seq = calloc(WSP_SEQ_MAX, sizeof(*seq));
    wsp_tally_gap(seq, 1, 4);
    assert_int_equal(missing_of(seq), 1100);
    wsp_tally_gap(seq, 2, 3); /* consecutive: no gap */
    assert_int_equal(missing_of(seq), 1100);
    wsp_tally_gap(seq, WSP_SEQ_MAX - 2, WSP_SEQ_MAX + 100); /* the table's end bounds it */
    assert_int_equal(seq[WSP_SEQ_MAX - 1].missing, 1);
    free(seq);
}

/* Only OPEN connections count, their upgrade times relative to the worker's origin. */
static void test_table(void **state)
{
    (void)state;
    wsp_seq_stat_t *seq = sent3();
    memset(out, 0, sizeof(out));
    wsp_tally_win_t w;
    wsp_tally_window(&w, seq, 3);
    wsp_bconn_t tab[4];
    memset(tab, 0, sizeof(tab));
    tab[0] = open_conn(0, 0);
    tab[0].est_ms = 600; /* 900 + 600 = 1500: after T(1) */
    tab[1].state = WSP_BCONN_HANDSHAKE;
    tab[3] = open_conn(1, 2);
    uint64_t open = 0;
    assert_int_equal(wsp_tally_table(tab, 4, 900, &w, out, &open), 3);
    assert_int_equal(open, 2);
    assert_int_equal(missing_of(out), 1200);
    free(seq);
}

static void test_sum(void **state)
{
    (void)state;
    wsp_wstats_t *s = calloc(1, sizeof(*s));
    assert_non_null(s);
    s->seq[1].got = 10;
    s->seq[2].got = 8;
    s->seq[2].missing = 2;
    s->seq[2].dup = 1;
    s->seq[4].got = 3; /* beyond --expect-broadcasts 3 */
    s->seq_overflow = 1;
    wsp_tally_win_t w;
    wsp_tally_window(&w, s->seq, 3);
    s->seq[3].missing = 10; /* nobody got 3: the table counted it for all ten */
    wsp_tally_sum_t d;
    wsp_tally_sum(&w, s, &d);
    assert_int_equal(d.delivered, 18);
    assert_int_equal(d.missing, 12);
    assert_int_equal(d.expected, 30);
    assert_int_equal(d.duplicates, 1);
    assert_int_equal(d.unexpected, 4);
    assert_int_equal(d.missing_seqs, 2);
    wsp_tally_window(&w, s->seq, -1); /* as received: 1..4, nothing unexpected */
    wsp_tally_sum(&w, s, &d);
    assert_int_equal(d.delivered, 21);
    assert_int_equal(d.unexpected, 0);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window),       cmocka_unit_test(test_after_and_beyond),
        cmocka_unit_test(test_head_by_time), cmocka_unit_test(test_nobody_received),
        cmocka_unit_test(test_gap),          cmocka_unit_test(test_table),
        cmocka_unit_test(test_sum),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
