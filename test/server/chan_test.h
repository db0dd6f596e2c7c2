#ifndef WSP_TEST_CHAN_TEST_H
#define WSP_TEST_CHAN_TEST_H

/* What the tests of channel history share (test_chan.c, test_uphist.c): settings, numbered
 * frames whose payload says which message they are ("chan#seq"), recording one, and the
 * check of a replay. Include after cmocka.h. */

#include <stdio.h>
#include <string.h>

#include "bcast.h"
#include "chan.h"
#include "frame.h"

#define EPOCH "e1"

static inline wsp_chan_hist_t hist_of(uint32_t size, uint64_t ttl_ms, uint64_t max, unsigned shards)
{
    wsp_chan_hist_t h = {.size = size, .ttl_ms = ttl_ms, .max_bytes = max, .nshards = shards};
    atomic_init(&h.units, 0);
    return h;
}

/* A frame whose payload says which message it is, padded with pad dots. */
static inline wsp_msg_t *frame_of(const char *chan, uint64_t seq, size_t pad)
{
    char p[4096];
    int n = snprintf(p, sizeof(p), "%s#%llu", chan, (unsigned long long)seq);
    memset(p + n, '.', pad);
    return wsp_frame_msg(WSP_OP_TEXT, p, (size_t)n + pad);
}

/* Records message seq of chan with a fresh frame (the table takes its own reference). */
static inline int rec(wsp_chan_table_t *t, const char *chan, uint64_t seq, uint64_t now, size_t pad)
{
    wsp_msg_t *m = frame_of(chan, seq, pad);
    assert_non_null(m);
    int rv = wsp_chan_record(t, chan, strlen(chan), seq, EPOCH, 2, 0, m, now);
    wsp_msg_unref(m);
    return rv;
}

/* Checks that replaying chan after since gives exactly since+1..top, or -1 when want is -1. */
static inline void check_replay(wsp_chan_table_t *t, const char *chan, uint64_t since, int want,
                                uint64_t now)
{
    wsp_chan_t *ch = wsp_chan_find(t, chan, strlen(chan));
    if (want < 0 && ch == NULL)
        return;
    assert_non_null(ch);
    wsp_msg_t *out[256];
    int n = wsp_chan_replay(t, ch, since, now, out, 256);
    assert_int_equal(n, want);
    assert_int_equal(wsp_chan_replay(t, ch, since, now, NULL, 256), want);
    for (int i = 0; i < n; i++) {
        char p[64];
        int pn = snprintf(p, sizeof(p), "%s#%llu", chan, (unsigned long long)(since + 1 + i));
        size_t len;
        assert_memory_equal(wsp_bcast_frame_payload(out[i], &len), p, (size_t)pn);
    }
}

#endif
