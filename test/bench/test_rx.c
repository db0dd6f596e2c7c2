/* The client frame reader: any length, any split, bad frames refused; the tick parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "rx.h"

typedef struct got_s {
    int n;
    unsigned op[16];
    int fin[16];
    uint64_t full[16];
    uint8_t head[16][WSP_RX_KEEP];
    size_t len[16];
} got_t;

static int on_frame(void *arg, const wsp_rx_frame_t *f)
{
    got_t *g = arg;
    assert_true(g->n < 16);
    g->op[g->n] = f->opcode;
    g->fin[g->n] = f->fin;
    g->full[g->n] = f->full_len;
    size_t k = f->len < WSP_RX_KEEP ? f->len : WSP_RX_KEEP;
    memcpy(g->head[g->n], f->payload, k);
    g->len[g->n] = k;
    g->n++;
    return 0;
}

/* Builds an unmasked server frame with a payload of len bytes of pattern. */
static size_t make_frame(uint8_t *out, unsigned op, const void *p, uint64_t len)
{
    size_t h = wsp_frame_header(out, op, len, NULL);
    if (p)
        memcpy(out + h, p, len);
    else
        for (uint64_t i = 0; i < len; i++)
            out[h + i] = (uint8_t)(i * 7);
    return h + len;
}

/* Feeds buf in chunks of step bytes (0 = all at once). */
static int feed(got_t *g, const uint8_t *buf, size_t n, size_t step)
{
    wsp_rx_t rx;
    wsp_rx_reset(&rx);
    rx.ext = NULL;
    memset(g, 0, sizeof(*g));
    if (step == 0)
        step = n;
    for (size_t i = 0; i < n; i += step) {
        int rv = wsp_rx_feed(&rx, buf + i, n - i < step ? n - i : step, on_frame, g);
        if (rv)
            return rv;
    }
    assert_true(wsp_rx_idle(&rx));
    return 0;
}

static void test_lengths_and_splits(void **state)
{
    (void)state;
    const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, 200000};
    const size_t steps[] = {0, 1, 2, 3, 7, 4096};
    size_t cap = 3 * 200100;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    got_t *g = malloc(sizeof(*g));
    assert_non_null(g);
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        /* three frames back to back: text of len, a ping, a text tick */
        size_t n = make_frame(buf, WSP_OP_TEXT, NULL, lens[l]);
        n += make_frame(buf + n, WSP_OP_PING, "hi", 2);
        n += make_frame(buf + n, WSP_OP_TEXT, "{\"time\":1,\"seq\":2}", 18);
        for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
            if (steps[s] == 1 && lens[l] > 70000)
                continue; /* byte by byte through 200 KB proves nothing more */
            assert_int_equal(feed(g, buf, n, steps[s]), 0);
            assert_int_equal(g->n, 3);
            assert_int_equal(g->op[0], WSP_OP_TEXT);
            assert_int_equal(g->full[0], lens[l]);
            size_t kept = lens[l] < WSP_RX_KEEP ? (size_t)lens[l] : WSP_RX_KEEP;
            assert_true(g->len[0] >= kept);
            for (size_t i = 0; i < kept; i++)
                assert_int_equal(g->head[0][i], (uint8_t)(i * 7));
            assert_int_equal(g->op[1], WSP_OP_PING);
            assert_int_equal(g->len[1], 2);
            assert_memory_equal(g->head[1], "hi", 2);
            assert_int_equal(g->op[2], WSP_OP_TEXT);
            assert_memory_equal(g->head[2], "{\"time\":1,\"seq\":2}", 18);
            assert_true(g->fin[2]);
        }
    }
    free(g);
    free(buf);
}

static void test_fragments_pass_through(void **state)
{
    (void)state;
    uint8_t buf[64] = {0x01, 0x02, 'a', 'b', 0x80, 0x01, 'c'}; /* text !FIN, then CONT FIN */
    got_t g;
    assert_int_equal(feed(&g, buf, 7, 0), 0);
    assert_int_equal(g.n, 2);
    assert_false(g.fin[0]);
    assert_int_equal(g.op[1], WSP_OP_CONT);
    assert_true(g.fin[1]);
}

static void test_bad_frames(void **state)
{
    (void)state;
    got_t g;
    const uint8_t masked[] = {0x81, 0x82, 1, 2, 3, 4, 'a', 'b'};
    const uint8_t rsv[] = {0xA1, 0x00}; /* RSV2 (RSV1 is the caller's to judge) */
    const uint8_t rsv3[] = {0x91, 0x00};
    const uint8_t opcode3[] = {0x83, 0x00};
    const uint8_t opcodeB[] = {0x8B, 0x00};
    const uint8_t long_ping[] = {0x89, 0x7E, 0x00, 0x80};
    const uint8_t frag_close[] = {0x08, 0x00};
    const uint8_t huge[] = {0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0};
    const struct {
        const uint8_t *p;
        size_t n;
    } bad[] = {{masked, sizeof(masked)},
               {rsv, sizeof(rsv)},
               {rsv3, sizeof(rsv3)},
               {opcode3, sizeof(opcode3)},
               {opcodeB, sizeof(opcodeB)},
               {long_ping, sizeof(long_ping)},
               {frag_close, sizeof(frag_close)},
               {huge, sizeof(huge)}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (size_t step = 0; step < 3; step++) {
            wsp_rx_t rx;
            wsp_rx_reset(&rx);
            rx.ext = NULL;
            memset(&g, 0, sizeof(g));
            int rv = 0;
            size_t st = step ? step : bad[i].n;
            for (size_t j = 0; j < bad[i].n && rv == 0; j += st)
                rv = wsp_rx_feed(&rx, bad[i].p + j, bad[i].n - j < st ? bad[i].n - j : st, on_frame,
                                 &g);
            assert_int_equal(rv, -EPROTO);
            assert_int_equal(g.n, 0);
        }
    }
}

/* RSV1 is passed on in the opcode, whatever the opcode: permessage-deflate's caller judges
 * it (compressed on a message's first frame, an error elsewhere or without the extension). */
static void test_rsv1(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t n = make_frame(buf, WSP_OP_TEXT, "abc", 3);
    buf[0] |= WSP_FRAME_RSV1;
    n += make_frame(buf + n, WSP_OP_PING, "p", 1);
    size_t m = make_frame(buf + n, WSP_OP_CLOSE, "\x03\xe8", 2);
    buf[n] |= WSP_FRAME_RSV1;
    n += m;
    got_t g;
    for (size_t step = 0; step <= 3; step++) {
        assert_int_equal(feed(&g, buf, n, step), 0);
        assert_int_equal(g.n, 3);
        assert_int_equal(g.op[0], WSP_OP_TEXT | WSP_FRAME_RSV1);
        assert_memory_equal(g.head[0], "abc", 3);
        assert_int_equal(g.op[1], WSP_OP_PING);
        assert_int_equal(g.op[2], WSP_OP_CLOSE | WSP_FRAME_RSV1);
    }
}

/* What one frame handed over: where its payload was, how much of it, and how long it was. */
typedef struct whole_s {
    int calls;
    const uint8_t *payload;
    size_t len;
    uint64_t full;
} whole_t;

static int on_whole(void *arg, const wsp_rx_frame_t *f)
{
    whole_t *w = arg;
    w->calls++;
    w->payload = f->payload;
    w->len = f->len;
    w->full = f->full_len;
    return 0;
}

/* With rx.ext, a split frame reaches the callback whole (up to WSP_RX_EXT bytes), not its
 * first WSP_RX_KEEP bytes; a whole frame is handed over in place as before. */
static void test_split_whole(void **state)
{
    (void)state;
    static uint8_t buf[2 * WSP_RX_EXT], ext[WSP_RX_EXT];
    static uint8_t pat[WSP_RX_EXT + 100];
    for (size_t i = 0; i < sizeof(pat); i++)
        pat[i] = (uint8_t)(i * 13);
    size_t n = make_frame(buf, WSP_OP_TEXT, pat, 900);
    buf[0] |= WSP_FRAME_RSV1;
    size_t steps[] = {1, 2, 100, 500, 903, 904};
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        wsp_rx_t rx;
        wsp_rx_reset(&rx);
        rx.ext = ext;
        whole_t w = {0};
        for (size_t i = 0; i < n; i += steps[k])
            assert_int_equal(
                wsp_rx_feed(&rx, buf + i, n - i < steps[k] ? n - i : steps[k], on_whole, &w), 0);
        assert_int_equal(w.calls, 1);
        assert_ptr_equal(w.payload, steps[k] >= n ? buf + 4 : ext);
        assert_int_equal(w.len, 900);
        assert_int_equal(w.full, 900);
        assert_memory_equal(w.payload, pat, 900);
    }
    /* Over WSP_RX_EXT: the frame still ends, with what fitted (len < full_len). */
    n = make_frame(buf, WSP_OP_TEXT, pat, sizeof(pat));
    wsp_rx_t rx;
    wsp_rx_reset(&rx);
    rx.ext = ext;
    whole_t w = {0};
    for (size_t i = 0; i < n; i += 1000)
        assert_int_equal(wsp_rx_feed(&rx, buf + i, n - i < 1000 ? n - i : 1000, on_whole, &w), 0);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.len, WSP_RX_EXT);
    assert_int_equal(w.full, sizeof(pat));
    assert_memory_equal(w.payload, pat, WSP_RX_EXT);
}

static int stop_at_first(void *arg, const wsp_rx_frame_t *f)
{
    (void)f;
    (*(int *)arg)++;
    return 42;
}

static void test_callback_stops(void **state)
{
    (void)state;
    uint8_t buf[16];
    size_t n = make_frame(buf, WSP_OP_CLOSE, "\x03\xe8", 2);
    n += make_frame(buf + n, WSP_OP_TEXT, "x", 1);
    wsp_rx_t rx;
    wsp_rx_reset(&rx);
    rx.ext = NULL;
    int calls = 0;
    assert_int_equal(wsp_rx_feed(&rx, buf, n, stop_at_first, &calls), 42);
    assert_int_equal(calls, 1);
}

static int tick(const char *s, uint64_t *t, uint64_t *q)
{
    return wsp_rx_parse_tick((const uint8_t *)s, strlen(s), t, q);
}

static void test_parse_tick(void **state)
{
    (void)state;
    uint64_t t = 0, q = 0;
    assert_int_equal(tick("{\"time\":1732680000123,\"seq\":42}", &t, &q), 0);
    assert_int_equal(t, 1732680000123ull);
    assert_int_equal(q, 42);
    assert_int_equal(tick("{ \"seq\" : 7 , \"time\" : 99 }", &t, &q), 0);
    assert_int_equal(t, 99);
    assert_int_equal(q, 7);
    assert_int_equal(tick("{\"note\":\"\\\"time\\\":5\",\"time\":3,\"seq\":4}", &t, &q), 0);
    assert_int_equal(t, 3);
    assert_int_equal(tick("{\"time\":1}", &t, &q), -EBADMSG);
    assert_int_equal(tick("{\"seq\":1}", &t, &q), -EBADMSG);
    assert_int_equal(tick("{\"time\":\"1\",\"seq\":1}", &t, &q), -EBADMSG);
    assert_int_equal(tick("{\"time\":-1,\"seq\":1}", &t, &q), -EBADMSG);
    assert_int_equal(tick("{\"time\":99999999999999999999,\"seq\":1}", &t, &q), -EBADMSG);
    assert_int_equal(tick("", &t, &q), -EBADMSG);
    assert_int_equal(tick("\"time", &t, &q), -EBADMSG);
    assert_int_equal(tick("garbage \x01\xff", &t, &q), -EBADMSG);
}

static int framed(const char *s, uint64_t *t, uint64_t *q)
{
    return wsp_rx_parse_framed((const uint8_t *)s, strlen(s), t, q);
}

/* A wspush.v1 message: the seq is the frame's, the time the tick's inside the string. */
static void test_parse_framed(void **state)
{
    (void)state;
    uint64_t t = 0, q = 0;
    assert_int_equal(
        framed(
            "{\"ch\":\"time\",\"seq\":12,\"data\":\"{\\\"time\\\":1795755922337,\\\"seq\\\":13}\"}",
            &t, &q),
        0);
    assert_int_equal(q, 12);
    assert_int_equal(t, 1795755922337ull);
    assert_int_equal(framed("{\"ch\":\"a:b\",\"seq\":1,\"data\":\"{\\\"time\\\":5}\"}", &t, &q), 0);
    assert_int_equal(q, 1);
    assert_int_equal(t, 5);
    /* No number (a raw Redis message), no tick inside, not the framed form. */
    assert_int_equal(framed("{\"ch\":\"time\",\"seq\":null,\"data\":\"{\\\"time\\\":5}\"}", &t, &q),
                     -EBADMSG);
    assert_int_equal(framed("{\"ch\":\"time\",\"seq\":3,\"data\":\"hello\"}", &t, &q), -EBADMSG);
    assert_int_equal(framed("{\"time\":1,\"seq\":1}", &t, &q), -EBADMSG);
    assert_int_equal(framed("", &t, &q), -EBADMSG);
}

static int hello(const char *s, wsp_rx_hello_t *h)
{
    return wsp_rx_parse_hello((const uint8_t *)s, strlen(s), h);
}

static void test_parse_hello(void **state)
{
    (void)state;
    wsp_rx_hello_t h;
    assert_int_equal(hello("{\"epoch\":\"0a1b\",\"top\":{\"time\":57}}", &h), 0);
    assert_string_equal(h.epoch, "0a1b");
    assert_true(h.known);
    assert_int_equal(h.top, 57);
    assert_int_equal(h.recovered + h.refused, 0);
    assert_int_equal(hello("{\"epoch\":\"e\",\"top\":{\"time\":null,\"b\":3},"
                           "\"recovered\":{\"time\":true,\"b\":false}}",
                           &h),
                     0);
    assert_false(h.known);
    assert_int_equal(h.recovered, 1);
    assert_int_equal(h.refused, 1);
    assert_int_equal(hello("{\"ch\":\"time\",\"seq\":1,\"data\":\"x\"}", &h), -EBADMSG);
    assert_int_equal(hello("{\"epoch\":\"e\"}", &h), -EBADMSG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_framed),       cmocka_unit_test(test_parse_hello),
        cmocka_unit_test(test_lengths_and_splits), cmocka_unit_test(test_fragments_pass_through),
        cmocka_unit_test(test_bad_frames),         cmocka_unit_test(test_callback_stops),
        cmocka_unit_test(test_parse_tick),         cmocka_unit_test(test_rsv1),
        cmocka_unit_test(test_split_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
