/* server/chan.c: a shard's channels and their history (size, ttl, byte budget, eviction
 * order, gaps, epochs, replay), the process's positions and a publisher's counters. */
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

static void test_size_and_replay(void **state)
{
    (void)state;
    wsp_chan_hist_t h = hist_of(5, 0, 1 << 20, 1);
    wsp_chan_table_t t;
    wsp_chan_table_init(&t, &h, EPOCH, 2);
    for (uint64_t s = 1; s <= 10; s++)
        assert_int_equal(rec(&t, "a", s, 0, 0), 0);
    assert_int_equal(t.entries, 5);
    check_replay(&t, "a", 5, 5, 0);   /* 6..10 */
    check_replay(&t, "a", 7, 3, 0);   /* 8..10 */
    check_replay(&t, "a", 10, 0, 0);  /* nothing missed */
    check_replay(&t, "a", 4, -1, 0);  /* 5 is gone */
    check_replay(&t, "a", 11, -1, 0); /* ahead of the channel */
    wsp_chan_t *ch = wsp_chan_find(&t, "a", 1);
    uint64_t top = 0;
    assert_true(wsp_chan_known(ch, 0, &top));
    assert_int_equal(top, 10);
    assert_false(wsp_chan_known(ch, 1, &top)); /* another Redis link generation */
    wsp_msg_t *few[2];
    assert_int_equal(wsp_chan_replay(&t, ch, 5, 0, few, 2), -1); /* more than max */
    wsp_chan_table_free(&t);
    assert_int_equal(atomic_load(&h.units), 0);
}

static void test_ttl(void **state)
{
    (void)state;
    wsp_chan_hist_t h = hist_of(100, 1000, 1 << 20, 1);
    wsp_chan_table_t t;
    wsp_chan_table_init(&t, &h, EPOCH, 2);
    for (uint64_t s = 1; s <= 5; s++)
        rec(&t, "a", s, s * 100, 0);    /* recorded at 100, 200, ..., 500 ms */
    check_replay(&t, "a", 0, 5, 1100);  /* the oldest is 1000 ms old: still in */
    check_replay(&t, "a", 0, -1, 1101); /* expired, though not yet swept */
    check_replay(&t, "a", 1, 4, 1101);
    wsp_chan_expire(&t, 1250); /* 100 and 200 are older than 1000 ms */
    assert_int_equal(t.entries, 3);
    check_replay(&t, "a", 2, 3, 1250);
    rec(&t, "a", 6, 1450, 0); /* recording sweeps too: 300 and 400 go */
    assert_int_equal(t.entries, 2);
    check_replay(&t, "a", 4, 2, 1450);
    wsp_chan_expire(&t, 100000);
    assert_int_equal(t.entries, 0);
    /* No subscriber and no history left: the channel is gone, its position with it. */
    assert_null(wsp_chan_find(&t, "a", 1));
    wsp_chan_table_free(&t);
    assert_int_equal(atomic_load(&h.units), 0);
}

static void test_gap_and_epoch(void **state)
{
    (void)state;
    wsp_chan_hist_t h = hist_of(100, 0, 1 << 20, 1);
    wsp_chan_table_t t;
    wsp_chan_table_init(&t, &h, EPOCH, 2);
    rec(&t, "a", 1, 0, 0);
    rec(&t, "a", 2, 0, 0);
    rec(&t, "a", 4, 0, 0); /* 3 never came: never served across it */
    check_replay(&t, "a", 1, -1, 0);
    check_replay(&t, "a", 2, -1, 0);
    check_replay(&t, "a", 3, 1, 0);
    rec(&t, "a", 4, 0, 0); /* the same again: nothing changes */
    assert_int_equal(t.entries, 1);
    rec(&t, "b", 1, 0, 0);
    /* A new epoch: every channel's history and position are of the old one. */
    wsp_msg_t *m = frame_of("b", 1, 0);
    assert_int_equal(wsp_chan_record(&t, "b", 1, 1, "e2", 2, 0, m, 0), 0);
    wsp_msg_unref(m);
    assert_string_equal(t.epoch, "e2");
    assert_null(wsp_chan_find(&t, "a", 1));
    assert_int_equal(t.entries, 1);
    check_replay(&t, "b", 0, 1, 0);
    /* A silent epoch change (seq 0) clears as well. */
    assert_int_equal(wsp_chan_record(&t, "b", 1, 0, "e3", 2, 0, NULL, 0), 0);
    assert_int_equal(t.entries, 0);
    wsp_chan_table_free(&t);
}

/* How many of chan's newest messages the history holds: the longest replay that works. */
static uint64_t kept_of(wsp_chan_table_t *t, const char *chan, uint64_t top)
{
    wsp_chan_t *ch = wsp_chan_find(t, chan, strlen(chan));
    uint64_t k = 0;
    while (ch && k < top && wsp_chan_replay(t, ch, top - k - 1, 0, NULL, 1000) >= 0)
        k++;
    return k;
}

/* The byte budget drops the oldest entries of the shard first, whatever their channel, and
 * the accounting counts each frame once per process: every shard adds its share. */
static void test_budget_order(void **state)
{
    (void)state;
    const uint64_t max = 20000;
    wsp_chan_hist_t h = hist_of(1000, 0, max, 2);
    wsp_chan_table_t t0, t1;
    wsp_chan_table_init(&t0, &h, EPOCH, 2);
    wsp_chan_table_init(&t1, &h, EPOCH, 2);
    const char *chans[3] = {"a", "b", "c"};
    uint64_t seq[3] = {0, 0, 0};
    int order[3][200];              /* order[k][s]: when message s of channel k was published */
    for (int i = 0; i < 150; i++) { /* ~1 KiB messages round robin, then a burst on "c" */
        int k = i < 90 ? i % 3 : 2;
        order[k][++seq[k]] = i;
        for (int s = 0; s < 2; s++) { /* both shards record the same frame */
            wsp_msg_t *m = frame_of(chans[k], seq[k], 1000);
            wsp_chan_record(s ? &t1 : &t0, chans[k], 1, seq[k], EPOCH, 2, 0, m, 0);
            wsp_msg_unref(m);
            /* Over the budget by at most the message just added, never more. */
            assert_true(atomic_load(&h.units) <= max * 2 + 2 * 2048);
        }
    }
    assert_true(atomic_load(&h.units) <= max * 2); /* frames once: the shards' average */
    /* Each shard decides against the shared count as it records, so the two may differ by
     * the message the other has not recorded yet, never more. */
    assert_true(t0.evicted > 0 && t1.evicted > 0);
    assert_true(t0.evicted + 2 >= t1.evicted && t1.evicted + 2 >= t0.evicted);
    /* Oldest first, in each shard: everything kept was published after everything dropped. */
    for (int sh = 0; sh < 2; sh++) {
        wsp_chan_table_t *t = sh ? &t1 : &t0;
        int newest_dropped = -1, oldest_kept = 1000;
        uint64_t total = 0;
        for (int k = 0; k < 3; k++) {
            uint64_t kept = kept_of(t, chans[k], seq[k]);
            total += kept;
            for (uint64_t s = 1; s <= seq[k]; s++) {
                if (s > seq[k] - kept)
                    oldest_kept = order[k][s] < oldest_kept ? order[k][s] : oldest_kept;
                else
                    newest_dropped = order[k][s] > newest_dropped ? order[k][s] : newest_dropped;
            }
        }
        assert_int_equal(total, t->entries);
        assert_int_equal(t->evicted, 150 - total);
        assert_true(newest_dropped >= 0 && newest_dropped < oldest_kept);
        assert_int_equal(oldest_kept, 150 - (int)total);
    }
    wsp_chan_table_free(&t0);
    wsp_chan_table_free(&t1);
    assert_int_equal(atomic_load(&h.units), 0);
}

/* A message bigger than the whole budget does not stay, and takes the rest with it. */
static void test_budget_huge(void **state)
{
    (void)state;
    wsp_chan_hist_t h = hist_of(100, 0, 2000, 1);
    wsp_chan_table_t t;
    wsp_chan_table_init(&t, &h, EPOCH, 2);
    rec(&t, "a", 1, 0, 10);
    rec(&t, "a", 2, 0, 3000);
    assert_int_equal(t.entries, 0);
    assert_int_equal(t.evicted, 2);
    assert_null(wsp_chan_find(&t, "a", 1));
    wsp_chan_table_free(&t);
    assert_int_equal(atomic_load(&h.units), 0);
}

/* Subscribers keep a channel and its position; history keeps it without subscribers. */
static void test_subscribers_and_learn(void **state)
{
    (void)state;
    wsp_chan_hist_t h = hist_of(10, 0, 1 << 20, 1);
    wsp_chan_table_t t;
    wsp_chan_table_init(&t, &h, EPOCH, 2);
    wsp_conn_t *c1 = (wsp_conn_t *)(uintptr_t)0x1000;
    wsp_chan_t *ch;
    uint32_t idx;
    assert_int_equal(wsp_chan_subscribe(&t, "s", 1, c1, &ch, &idx), 0);
    uint64_t top = 0;
    assert_false(wsp_chan_known(ch, 0, &top)); /* created by a subscriber: not known yet */
    wsp_chan_learn(&t, ch, 41, 0);
    assert_true(wsp_chan_known(ch, 0, &top));
    assert_int_equal(top, 41);
    rec(&t, "s", 42, 0, 0);
    rec(&t, "s", 43, 0, 0);
    check_replay(&t, "s", 41, 2, 0);
    wsp_chan_learn(&t, ch, 43, 0); /* no news: the history stays */
    check_replay(&t, "s", 41, 2, 0);
    wsp_chan_learn(&t, ch, 50, 0); /* a jump: the history no longer ends at the position */
    check_replay(&t, "s", 41, -1, 0);
    check_replay(&t, "s", 50, 0, 0);
    assert_null(wsp_chan_unsubscribe(&t, ch, idx));
    assert_null(wsp_chan_find(&t, "s", 1)); /* no subscriber, no history */
    rec(&t, "s", 51, 0, 0);
    ch = wsp_chan_find(&t, "s", 1);
    assert_non_null(ch); /* kept by its history */
    assert_int_equal(wsp_chan_subscribe(&t, "s", 1, c1, &ch, &idx), 0);
    assert_null(wsp_chan_unsubscribe(&t, ch, idx));
    assert_non_null(wsp_chan_find(&t, "s", 1));
    /* History off: positions move, nothing is kept. */
    wsp_chan_hist_t off = hist_of(0, 0, 1 << 20, 1);
    wsp_chan_table_t t2;
    wsp_chan_table_init(&t2, &off, EPOCH, 2);
    assert_int_equal(wsp_chan_subscribe(&t2, "s", 1, c1, &ch, &idx), 0);
    assert_int_equal(rec(&t2, "s", 1, 0, 0), 0);
    assert_int_equal(rec(&t2, "x", 1, 0, 0), 0); /* no subscriber: no state */
    assert_null(wsp_chan_find(&t2, "x", 1));
    assert_true(wsp_chan_known(ch, 0, &top));
    assert_int_equal(top, 1);
    check_replay(&t2, "s", 0, -1, 0);
    check_replay(&t2, "s", 1, 0, 0);
    assert_null(wsp_chan_unsubscribe(&t2, ch, idx));
    wsp_chan_table_free(&t2);
    wsp_chan_table_free(&t);
    assert_int_equal(atomic_load(&h.units), 0);
}

static void test_positions(void **state)
{
    (void)state;
    wsp_chan_pos_t p;
    assert_int_equal(wsp_chan_pos_init(&p, EPOCH, 2, 1), 0);
    uint64_t top = 99;
    /* Complete: a channel never published is at 0. */
    assert_int_equal(wsp_chan_pos_lookup(&p, "a", 1, 0, 0, &top), WSP_CHAN_POS_KNOWN);
    assert_int_equal(top, 0);
    uint64_t g1 = wsp_chan_pos_note(&p, "a", 1, 1, EPOCH, 2, 0);
    uint64_t g2 = wsp_chan_pos_note(&p, "time", 4, 0, NULL, 0, 0); /* unsequenced */
    uint64_t g3 = wsp_chan_pos_note(&p, "a", 1, 2, EPOCH, 2, 0);
    assert_true(g1 < g2 && g2 < g3);
    assert_int_equal(wsp_chan_pos_lookup(&p, "a", 1, g2, 0, &top), WSP_CHAN_POS_BEHIND);
    assert_int_equal(wsp_chan_pos_lookup(&p, "a", 1, g3, 0, &top), WSP_CHAN_POS_KNOWN);
    assert_int_equal(top, 2);
    assert_int_equal(wsp_chan_pos_lookup(&p, "b", 1, g3, 0, &top), WSP_CHAN_POS_KNOWN);
    assert_int_equal(top, 0);
    /* A new epoch forgets; positions unknown... until seen, when not complete. */
    wsp_chan_pos_free(&p);
    assert_int_equal(wsp_chan_pos_init(&p, NULL, 0, 0), 0);
    assert_int_equal(wsp_chan_pos_lookup(&p, "a", 1, 0, 0, &top), WSP_CHAN_POS_UNKNOWN);
    g1 = wsp_chan_pos_note(&p, "a", 1, 7, "r1", 2, 3);
    assert_string_equal(p.epoch, "r1");
    assert_int_equal(wsp_chan_pos_lookup(&p, "a", 1, g1 - 1, 3, &top), WSP_CHAN_POS_BEHIND);
    assert_int_equal(wsp_chan_pos_lookup(&p, "a", 1, g1, 3, &top), WSP_CHAN_POS_KNOWN);
    assert_int_equal(top, 7);
    assert_int_equal(wsp_chan_pos_lookup(&p, "a", 1, g1, 4, &top), WSP_CHAN_POS_UNKNOWN);
    wsp_chan_pos_learn(&p, "b", 1, 12, 4); /* a fetch told */
    assert_int_equal(wsp_chan_pos_lookup(&p, "b", 1, g1, 4, &top), WSP_CHAN_POS_KNOWN);
    assert_int_equal(top, 12);
    wsp_chan_pos_learn(&p, "b", 1, 10, 4); /* never backwards within a generation */
    assert_int_equal(wsp_chan_pos_lookup(&p, "b", 1, g1, 4, &top), WSP_CHAN_POS_KNOWN);
    assert_int_equal(top, 12);
    g2 = wsp_chan_pos_note(&p, "c", 1, 1, "r2", 2, 4); /* Redis's epoch changed */
    assert_int_equal(wsp_chan_pos_lookup(&p, "b", 1, g1, 4, &top), WSP_CHAN_POS_BEHIND);
    assert_int_equal(wsp_chan_pos_lookup(&p, "b", 1, g2, 4, &top), WSP_CHAN_POS_UNKNOWN);
    wsp_chan_pos_free(&p);
}

static void test_counters(void **state)
{
    (void)state;
    wsp_chan_seqs_t s = {0};
    assert_int_equal(wsp_chan_seqs_next(&s, "a", 1), 1);
    assert_int_equal(wsp_chan_seqs_next(&s, "a", 1), 2);
    assert_int_equal(wsp_chan_seqs_next(&s, "b", 1), 1);
    char name[16];
    for (int i = 0; i < 500; i++) { /* the map grows */
        int n = snprintf(name, sizeof(name), "c%d", i);
        assert_int_equal(wsp_chan_seqs_next(&s, name, (size_t)n), 1);
    }
    assert_int_equal(wsp_chan_seqs_next(&s, "a", 1), 3);
    wsp_chan_seqs_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_and_replay), cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_gap_and_epoch),   cmocka_unit_test(test_budget_order),
        cmocka_unit_test(test_budget_huge),     cmocka_unit_test(test_subscribers_and_learn),
        cmocka_unit_test(test_positions),       cmocka_unit_test(test_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
