/* server/uphist.c: a live upgrade's history (issue #20 with #17), from an old shard's table
 * through HIST records (as many datagrams as it takes) into a new shard's table: same
 * messages in the same order, each entry keeping its age, and the new process's own bounds
 * (--history-size, --history-ttl, --history-max-bytes) applied. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan_test.h"
#include "uphist.h"

/* The receiving side: every datagram flushed is decoded into h at now (the new clock). */
typedef struct sink_s {
    wsp_ho_writer_t *w;
    uint8_t *buf;
    size_t cap;
    wsp_uphist_t h;
    uint64_t now;
    unsigned dgrams;
} sink_t;

static int on_flush(void *arg)
{
    sink_t *s = arg;
    wsp_ho_reader_t r;
    uint8_t type;
    const uint8_t *body;
    uint32_t len;
    assert_int_equal(wsp_ho_open(&r, s->buf, s->w->len), 0);
    int rv;
    while ((rv = wsp_ho_next(&r, &type, &body, &len)) == 1) {
        assert_int_equal(type, WSP_HO_HIST);
        wsp_ho_hist_t e;
        assert_int_equal(wsp_ho_get_hist(body, len, &e), 0);
        assert_int_equal(wsp_uphist_add(&s->h, &e, EPOCH, 2, s->now), 0);
    }
    assert_int_equal(rv, 0);
    s->dgrams++;
    wsp_ho_begin(s->w, s->buf, s->cap);
    return 0;
}

/* Sends old's history at old_now through datagrams of cap bytes into s (at s->now). */
static uint64_t carry(wsp_chan_table_t *old, uint64_t old_now, size_t cap, sink_t *s)
{
    wsp_uphist_t snap = {0};
    assert_int_equal(wsp_uphist_snapshot(&snap, old), 0);
    static uint8_t buf[8192];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, cap);
    s->w = &w;
    s->buf = buf;
    s->cap = cap;
    uint64_t skipped = 0;
    assert_int_equal(wsp_uphist_put(&snap, old_now, &w, on_flush, s, &skipped), 0);
    if (w.nrec)
        on_flush(s);
    wsp_uphist_free(&snap);
    return skipped;
}

/* a1 b1 a2 b2 a3 at 100..500 ms in the old process; sent at 1000; restored at 50000 on
 * another clock: the same messages, each as old as it was, in the old recording order. */
static void old_table(wsp_chan_table_t *t, wsp_chan_hist_t *h)
{
    wsp_chan_table_init(t, h, EPOCH, 2);
    static const char order[] = "ababa";
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(rec(t, (char[]){order[i], 0}, i / 2 + 1, 100 * (i + 1), 0), 0);
}

/* The old table's history carried into s (restored at s->now); the old table is gone. */
static void carry_old(sink_t *s)
{
    wsp_chan_hist_t oh = hist_of(100, 0, 1 << 20, 1);
    wsp_chan_table_t old;
    old_table(&old, &oh);
    assert_int_equal(carry(&old, 1000, 8192, s), 0);
    wsp_chan_table_free(&old);
}

/* A new table with h, s's entries restored into it at now. */
static void restored(wsp_chan_table_t *t, wsp_chan_hist_t *h, const sink_t *s, uint64_t now)
{
    wsp_chan_table_init(t, h, EPOCH, 2);
    assert_int_equal(wsp_uphist_restore(&s->h, t, now), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    sink_t s = {.now = 50000};
    carry_old(&s);
    assert_int_equal(s.dgrams, 1);
    assert_int_equal(s.h.n, 5);
    static const char order[] = "ababa";
    for (unsigned i = 0; i < 5; i++) {
        const wsp_uphist_ent_t *e = &s.h.v[i];
        assert_int_equal(s.h.names[e->name].s[0], order[i]);
        assert_int_equal(e->seq, i / 2 + 1);
        assert_int_equal(e->t_ms, 50000 - (1000 - 100 * (i + 1))); /* the same age */
    }
    wsp_chan_hist_t nh = hist_of(100, 0, 1 << 20, 1);
    wsp_chan_table_t t;
    restored(&t, &nh, &s, 50000);
    assert_int_equal(t.entries, 5);
    check_replay(&t, "a", 0, 3, 50000);
    check_replay(&t, "b", 1, 1, 50000);
    /* The next message goes on after the carried ones, with no gap. */
    assert_int_equal(rec(&t, "a", 4, 50001, 0), 0);
    check_replay(&t, "a", 0, 4, 50001);
    /* The frames are the old ones, byte for byte. */
    wsp_msg_t *n[4];
    assert_int_equal(wsp_chan_replay(&t, wsp_chan_find(&t, "a", 1), 0, 50001, n, 4), 4);
    for (unsigned i = 0; i < 3; i++) {
        wsp_msg_t *o = frame_of("a", i + 1, 0);
        assert_int_equal(o->len, n[i]->len);
        assert_memory_equal(o->bytes, n[i]->bytes, o->len);
        wsp_msg_unref(o);
    }
    wsp_uphist_free(&s.h);
    wsp_chan_table_free(&t);
    assert_int_equal(atomic_load(&nh.units), 0);
}

/* Smaller bounds in the new process drop the oldest: --history-size per channel, the TTL
 * counted from the original time; with history off nothing is kept. */
static void test_new_bounds(void **state)
{
    (void)state;
    sink_t s = {.now = 50000};
    carry_old(&s);
    wsp_chan_hist_t small = hist_of(2, 0, 1 << 20, 1);
    wsp_chan_table_t t;
    restored(&t, &small, &s, 50000);
    check_replay(&t, "a", 1, 2, 50000);
    check_replay(&t, "a", 0, -1, 50000); /* a1 went */
    check_replay(&t, "b", 0, 2, 50000);
    wsp_chan_table_free(&t);
    /* --history-ttl 1 s: a1 was published 1050 ms before, b1 950 ms. */
    wsp_chan_hist_t ttl = hist_of(100, 1000, 1 << 20, 1);
    restored(&t, &ttl, &s, 50150);
    assert_int_equal(t.entries, 4);
    check_replay(&t, "a", 0, -1, 50150);
    check_replay(&t, "a", 1, 2, 50150);
    check_replay(&t, "b", 0, 2, 50150);
    wsp_chan_table_free(&t);
    wsp_chan_hist_t off = hist_of(0, 0, 1 << 20, 1);
    restored(&t, &off, &s, 50000);
    assert_int_equal(t.entries, 0);
    wsp_chan_table_free(&t);
    wsp_uphist_free(&s.h);
}

/* The byte budget: the oldest entries of the old recording order go first, whatever their
 * channel. */
static void test_budget(void **state)
{
    (void)state;
    wsp_chan_hist_t oh = hist_of(100, 0, 1 << 20, 1);
    wsp_chan_table_t old;
    wsp_chan_table_init(&old, &oh, EPOCH, 2);
    for (uint64_t k = 1; k <= 10; k++) {
        assert_int_equal(rec(&old, "a", k, k, 500), 0);
        assert_int_equal(rec(&old, "b", k, k, 500), 0);
    }
    sink_t s = {.now = 100};
    assert_int_equal(carry(&old, 10, 8192, &s), 0);
    assert_true(s.dgrams > 1); /* 20 entries of ~560 B: several datagrams of 8 KiB */
    wsp_chan_hist_t tight = hist_of(100, 0, 6000, 1);
    wsp_chan_table_t t;
    restored(&t, &tight, &s, 100);
    assert_true(t.entries > 0 && t.entries < 20);
    assert_true(atomic_load(&tight.units) <= 6000);
    uint64_t na = t.entries / 2, nb = t.entries - na; /* interleaved: b keeps as many or one more */
    check_replay(&t, "a", 10 - na, (int)na, 100);
    check_replay(&t, "b", 10 - nb, (int)nb, 100);
    wsp_chan_table_free(&t);
    wsp_uphist_free(&s.h);
    wsp_chan_table_free(&old);
}

/* An entry too big for a datagram is left out: its channel's older entries are then not
 * served across the gap, the newer ones are. Another epoch or a long name is refused. */
static void test_skipped_and_refused(void **state)
{
    (void)state;
    wsp_chan_hist_t oh = hist_of(100, 0, 1 << 20, 1);
    wsp_chan_table_t old;
    wsp_chan_table_init(&old, &oh, EPOCH, 2);
    for (uint64_t k = 1; k <= 3; k++)
        assert_int_equal(rec(&old, "a", k, k, k == 2 ? 3000 : 0), 0);
    sink_t s = {.now = 10};
    assert_int_equal(carry(&old, 5, 1024, &s), 1);
    assert_int_equal(s.h.n, 2);
    wsp_chan_hist_t nh = hist_of(100, 0, 1 << 20, 1);
    wsp_chan_table_t t;
    restored(&t, &nh, &s, 10);
    check_replay(&t, "a", 2, 1, 10);
    check_replay(&t, "a", 1, -1, 10);
    wsp_chan_table_free(&t);
    wsp_ho_hist_t r = {.seq = 1, .chan = "a", .chan_len = 1, .epoch = "e2", .epoch_len = 2};
    assert_int_equal(wsp_uphist_add(&s.h, &r, EPOCH, 2, 10), -ESTALE);
    static const char longname[65] =
        "0123456789012345678901234567890123456789012345678901234567890123";
    r = (wsp_ho_hist_t){.seq = 1, .chan = longname, .chan_len = 65, .epoch = EPOCH, .epoch_len = 2};
    assert_int_equal(wsp_uphist_add(&s.h, &r, EPOCH, 2, 10), -EINVAL);
    assert_int_equal(s.h.n, 2);
    wsp_uphist_t *moved = wsp_uphist_move(&s.h);
    assert_non_null(moved);
    assert_int_equal(s.h.n, 0);
    assert_int_equal(moved->n, 2);
    wsp_uphist_destroy(moved);
    wsp_chan_table_free(&old);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_new_bounds),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_skipped_and_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
