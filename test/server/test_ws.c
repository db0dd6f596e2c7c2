/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "frame.h"
#include "ws.h"
#include "ws_test.h"

static void test_ping_pong(void **state)
{
    (void)state;
    uint8_t f[256], pl[125];
    for (size_t i = 0; i < sizeof(pl); i++)
        pl[i] = (uint8_t)(i * 7);
    const size_t lens[] = {0, 5, 125};
    for (size_t k = 0; k < 3; k++) {
        wsp_ws_t *ws = NULL;
        struct sink s = {0};
        int code = -1;
        size_t n = client_frame(f, 0x89, pl, lens[k]);
        assert_int_equal(feed(&ws, &s, f, n, &code), WSP_WS_OK);
        assert_int_equal(code, 0);
        assert_one_pong(&s, pl, lens[k]);
        assert_null(ws); /* idle again: nothing kept */
    }
}

static void test_ping_bytewise(void **state)
{
    (void)state;
    uint8_t f[64];
    size_t n = client_frame(f, 0x89, "hello, world", 12);
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    for (size_t i = 0; i + 1 < n; i++) {
        assert_int_equal(feed(&ws, &s, f + i, 1, NULL), WSP_WS_OK);
        assert_non_null(ws); /* a partial frame keeps the parser */
        assert_int_equal(s.len, 0);
    }
    assert_int_equal(feed(&ws, &s, f + n - 1, 1, NULL), WSP_WS_OK);
    assert_one_pong(&s, "hello, world", 12);
    assert_null(ws);
}

static void test_empty_feed_keeps_idle(void **state)
{
    (void)state;
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    int code = -1;
    assert_int_equal(feed(&ws, &s, NULL, 0, &code), WSP_WS_OK);
    assert_int_equal(code, 0);
    assert_null(ws);
}

static void test_two_pings_one_buffer(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = client_frame(b, 0x89, "one", 3);
    n += client_frame(b + n, 0x89, "two!", 4);
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    assert_int_equal(feed(&ws, &s, b, n, NULL), WSP_WS_OK);
    size_t off = 0;
    struct sframe f1 = next_frame(&s, &off), f2 = next_frame(&s, &off);
    assert_int_equal(off, s.len);
    assert_int_equal(f1.b0, 0x8A);
    assert_int_equal(f1.len, 3);
    assert_memory_equal(f1.payload, "one", 3);
    assert_int_equal(f2.b0, 0x8A);
    assert_int_equal(f2.len, 4);
    assert_memory_equal(f2.payload, "two!", 4);
    assert_null(ws);
}

static void test_text_then_ping(void **state)
{
    (void)state;
    uint8_t b[128];
    size_t n = client_frame(b, 0x81, "some text", 9);
    n += client_frame(b + n, 0x89, "pp", 2);
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    assert_int_equal(feed(&ws, &s, b, n, NULL), WSP_WS_OK);
    assert_one_pong(&s, "pp", 2);
    assert_null(ws);
}

static void test_pong_from_client_ignored(void **state)
{
    (void)state;
    uint8_t b[16];
    expect_quiet_idle(b, client_frame(b, 0x8A, "x", 1));
}

/* Answers to our pings take a path without parser state; what follows them still goes
 * through the full parser, and an unmasked or oversized pong is still an error. */
static void test_pong_fast_path(void **state)
{
    (void)state;
    uint8_t b[512], pl[125];
    memset(pl, 'q', sizeof(pl));
    size_t n = client_frame(b, 0x8A, NULL, 0);
    n += client_frame(b + n, 0x8A, pl, 125);
    n += client_frame(b + n, 0x8A, "x", 1);
    expect_quiet_idle(b, n); /* three pongs: no state, no output */

    size_t m = n + client_frame(b + n, 0x89, "hi", 2); /* pongs, then a ping */
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    int code = -1;
    assert_int_equal(feed(&ws, &s, b, m, &code), WSP_WS_OK);
    assert_one_pong(&s, "hi", 2);
    assert_null(ws);

    m = n + client_frame(b + n, 0x81, "partial", 7) - 3; /* pongs, then half a text frame */
    s.len = 0;
    assert_int_equal(feed(&ws, &s, b, m, &code), WSP_WS_OK);
    assert_non_null(ws); /* the partial frame keeps state */
    assert_int_equal(feed(&ws, &s, b + m, 3, &code), WSP_WS_OK);
    assert_null(ws);
    assert_int_equal(s.len, 0);

    n = client_frame(b, 0x8A, "x", 1);
    b[1] &= 0x7Fu; /* unmasked */
    expect_close(b, n - 4, 1002);
    n = client_frame(b, 0x8A, pl, 125);
    b[0] = 0x0A; /* a fragmented pong */
    expect_close(b, n, 1002);
}

/* A message in more than WSP_WS_MAX_FRAGMENTS frames is closed with 1009, however small. */
static void test_fragment_cap(void **state)
{
    (void)state;
    static uint8_t b[(WSP_WS_MAX_FRAGMENTS + 2) * 6];
    for (int over = 0; over <= 1; over++) {
        size_t frames = WSP_WS_MAX_FRAGMENTS + (size_t)over, n = 0;
        n += client_frame(b + n, 0x01, NULL, 0); /* text, not FIN */
        for (size_t i = 1; i + 1 < frames; i++)
            n += client_frame(b + n, 0x00, NULL, 0); /* empty continuations */
        n += client_frame(b + n, 0x80, NULL, 0);     /* the final continuation */
        if (over) {
            expect_close(b, n, 1009);
        } else {
            expect_quiet_idle(b, n);
        }
    }
}

static void test_close_echo(void **state)
{
    (void)state;
    uint8_t b[64];
    expect_close(b, client_close(b, 1000), 1000);
    expect_close(b, client_close(b, 4000), 4000);
    expect_close(b,
                 client_frame(b, 0x88,
                              "\x03\xE9"
                              "bye",
                              5),
                 1001);
    expect_close(b, client_frame(b, 0x88, NULL, 0), 0); /* no code in, none out */
    expect_close_bytewise(b, client_close(b, 1000), 1000);

    size_t n = client_close(b, 1000); /* what follows a close is never answered */
    n += client_frame(b + n, 0x89, "late", 4);
    expect_close(b, n, 1000);

    n = client_frame(b, 0x89, "early", 5); /* what precedes it is */
    n += client_close(b + n, 1000);
    expect_pongs_close(b, n, 1, 1000);
}

/* Feeds buf in two pieces split at cut; returns the second feed's result. */
static int feed_split(wsp_ws_t **ws, struct sink *s, const uint8_t *buf, size_t len, size_t cut,
                      int *code)
{
    assert_int_equal(feed(ws, s, buf, cut, code), WSP_WS_OK);
    assert_non_null(*ws);
    return feed(ws, s, buf + cut, len - cut, code);
}

static void test_close_split_reason(void **state)
{
    (void)state;
    /* wslay checks a close reason's UTF-8 per chunk, skipping each chunk's first two bytes:
     * ws.c hands it close frames whole, wherever the reads split them. */
    uint8_t b[64];
    size_t n = client_frame(b, 0x88, "\x03\xE8\xC3\xA9", 4); /* 1000 "\u00e9" */
    for (size_t cut = 1; cut < n; cut++) {
        wsp_ws_t *ws = NULL;
        struct sink s = {0};
        int code = -1;
        assert_int_equal(feed_split(&ws, &s, b, n, cut, &code), WSP_WS_CLOSE);
        assert_int_equal(code, 1000);
        size_t off = 0;
        struct sframe f = next_frame(&s, &off);
        assert_int_equal(f.b0, 0x88);
        assert_int_equal(f.len, 4);
        assert_memory_equal(f.payload, "\x03\xE8\xC3\xA9", 4); /* the reason is echoed too */
        wsp_ws_free(ws);
    }
    n = client_frame(b, 0x88, "\x03\xE8\x41\xFF\xFF", 5);
    for (size_t cut = 1; cut < n; cut++) {
        wsp_ws_t *ws = NULL;
        struct sink s = {0};
        int code = -1;
        assert_int_equal(feed_split(&ws, &s, b, n, cut, &code), WSP_WS_CLOSE);
        assert_int_equal(code, 1007);
        assert_one_close(&s, 1007);
        wsp_ws_free(ws);
    }
    expect_close_bytewise(b, n, 1007);

    n = client_frame(b, 0x89, "pi", 2); /* a ping before a split close is answered at once */
    size_t c = n + 3;
    n += client_frame(b + n, 0x88, "\x03\xE8\xC3\xA9", 4);
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    int code = -1;
    assert_int_equal(feed(&ws, &s, b, c, &code), WSP_WS_OK);
    assert_one_pong(&s, "pi", 2);
    s.len = 0;
    assert_int_equal(feed(&ws, &s, b + c, n - c, &code), WSP_WS_CLOSE);
    assert_int_equal(code, 1000);
    wsp_ws_free(ws);
}

static void test_text_and_binary_dropped(void **state)
{
    (void)state;
    static uint8_t pl[WSP_WS_MAX_MSG], b[WSP_WS_MAX_MSG + 16];
    memset(pl, 'a', sizeof(pl));
    expect_quiet_idle(b, client_frame(b, 0x81, pl, WSP_WS_MAX_MSG));
    expect_quiet_idle(b, client_frame(b, 0x81, "\xE2\x82\xAC", 3));
    expect_quiet_idle(b, client_frame(b, 0x81, NULL, 0));
    expect_quiet_idle(b, client_frame(b, 0x82, "\xFF\x00\xC0", 3)); /* binary: no UTF-8 */
    for (size_t i = 0; i < sizeof(pl); i++)
        pl[i] = (uint8_t)(i * 13);
    expect_quiet_idle(b, client_frame(b, 0x82, pl, WSP_WS_MAX_MSG));
}

/* ---- the text sink (token refresh, issue #16) ---- */

/* What the text sink saw: every message joined, and the close code it answers with. */
struct texts {
    uint8_t all[2 * WSP_WS_MAX_MSG];
    size_t len;
    int calls, answer;
    struct sink out; /* &out is the user pointer: the write sink's, and on_text finds t from it */
};

static int on_text(void *user, const uint8_t *msg, size_t len)
{
    struct texts *t = (struct texts *)((char *)user - offsetof(struct texts, out));
    assert_true(t->len + len <= sizeof(t->all));
    memcpy(t->all + t->len, msg, len);
    t->len += len;
    t->calls++;
    return t->answer;
}

static int feed_text(wsp_ws_t **ws, struct texts *t, const uint8_t *buf, size_t len, int *code)
{
    return wsp_ws_feed(ws, buf, len, on_sink_write, on_text, &t->out, NULL, code);
}

static void test_text_sink(void **state)
{
    (void)state;
    static uint8_t pl[WSP_WS_MAX_MSG], b[2 * WSP_WS_MAX_MSG + 64];
    static struct texts t;
    memset(&t, 0, sizeof(t));
    wsp_ws_t *ws = NULL;
    /* Whole, then fragmented around a ping and fed byte by byte, then binary (not text). */
    size_t n = client_frame(b, 0x81, "{\"refresh\":1}", 13);
    assert_int_equal(feed_text(&ws, &t, b, n, NULL), WSP_WS_OK);
    assert_null(ws); /* idle again: nothing kept */
    n = client_frame(b, 0x01, "he", 2);
    n += client_frame(b + n, 0x89, "p", 1);
    n += client_frame(b + n, 0x00, "l", 1);
    n += client_frame(b + n, 0x80, "lo", 2);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(feed_text(&ws, &t, b + i, 1, NULL), WSP_WS_OK);
    assert_null(ws);
    assert_one_pong(&t.out, "p", 1);
    n = client_frame(b, 0x82, "bin", 3);
    assert_int_equal(feed_text(&ws, &t, b, n, NULL), WSP_WS_OK);
    assert_int_equal(t.calls, 2);
    assert_int_equal(t.len, 13 + 5);
    assert_memory_equal(t.all, "{\"refresh\":1}hello", 18);
    /* The largest message, and an empty one. */
    memset(pl, 'r', sizeof(pl));
    t.len = 0;
    n = client_frame(b, 0x81, pl, sizeof(pl));
    n += client_frame(b + n, 0x81, NULL, 0);
    assert_int_equal(feed_text(&ws, &t, b, n, NULL), WSP_WS_OK);
    assert_int_equal(t.calls, 4);
    assert_int_equal(t.len, sizeof(pl));
    assert_memory_equal(t.all, pl, sizeof(pl));
    assert_null(ws);
}

/* The sink's close code goes out as our close; what follows it is not parsed. */
static void test_text_sink_closes(void **state)
{
    (void)state;
    static struct texts t;
    memset(&t, 0, sizeof(t));
    t.answer = 4003;
    uint8_t b[128];
    size_t n = client_frame(b, 0x81, "bad", 3);
    n += client_frame(b + n, 0x89, "p", 1);
    n += client_frame(b + n, 0x81, "again", 5);
    wsp_ws_t *ws = NULL;
    int code = 0;
    assert_int_equal(feed_text(&ws, &t, b, n, &code), WSP_WS_CLOSE);
    assert_int_equal(code, 4003);
    assert_int_equal(t.calls, 1);
    assert_one_close(&t.out, 4003); /* no pong: reading stopped at the close */
    wsp_ws_free(ws);
    /* Invalid UTF-8 never reaches the sink: 1007 as before. */
    memset(&t, 0, sizeof(t));
    ws = NULL;
    n = client_frame(b, 0x81, "\xC3\x28", 2);
    assert_int_equal(feed_text(&ws, &t, b, n, &code), WSP_WS_CLOSE);
    assert_int_equal(code, 1007);
    assert_int_equal(t.calls, 0);
    wsp_ws_free(ws);
}

static void test_large_message_in_pieces(void **state)
{
    (void)state;
    static uint8_t pl[WSP_WS_MAX_MSG], b[WSP_WS_MAX_MSG + 16];
    memset(pl, 'z', sizeof(pl));
    size_t n = client_frame(b, 0x81, pl, sizeof(pl));
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    for (size_t off = 0; off < n; off += 1000) {
        size_t k = n - off < 1000 ? n - off : 1000;
        assert_int_equal(feed(&ws, &s, b + off, k, NULL), WSP_WS_OK);
        if (off + k < n)
            assert_non_null(ws);
    }
    assert_int_equal(s.len, 0);
    assert_null(ws);
}

static void test_too_big(void **state)
{
    (void)state;
    static uint8_t pl[2 * WSP_WS_MAX_MSG], b[2 * WSP_WS_MAX_MSG + 32];
    memset(pl, 'a', sizeof(pl));
    expect_close(b, client_frame(b, 0x81, pl, WSP_WS_MAX_MSG + 1), 1009);
    expect_close(b, client_frame(b, 0x82, pl, WSP_WS_MAX_MSG + 1), 1009);
}

static void test_too_big_header_only(void **state)
{
    (void)state;
    /* The length alone condemns a frame: 1009 before any payload arrives. */
    uint8_t b[16];
    size_t n = wsp_frame_header(b, WSP_OP_BINARY, 1ull << 40, key);
    expect_close(b, n, 1009);
    n = wsp_frame_header(b, WSP_OP_TEXT, 70000, key);
    expect_close_bytewise(b, n, 1009);
}

static void test_too_big_fragmented(void **state)
{
    (void)state;
    static uint8_t pl[WSP_WS_MAX_MSG], b[2 * WSP_WS_MAX_MSG + 64];
    memset(pl, 'a', sizeof(pl));
    size_t half = WSP_WS_MAX_MSG / 2;
    size_t n = client_frame(b, 0x01, pl, half);
    n += client_frame(b + n, 0x80, pl, half); /* exactly the limit: fine */
    expect_quiet_idle(b, n);

    n = client_frame(b, 0x01, pl, half);
    n += client_frame(b + n, 0x89, "ctl", 3); /* control payloads do not count */
    n += client_frame(b + n, 0x00, pl, half - 1);
    n += client_frame(b + n, 0x80, "x", 1);
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    assert_int_equal(feed(&ws, &s, b, n, NULL), WSP_WS_OK);
    assert_one_pong(&s, "ctl", 3);
    assert_null(ws);

    n = client_frame(b, 0x01, pl, half);
    n += client_frame(b + n, 0x80, pl, half + 1);
    expect_close(b, n, 1009);
}

static void test_fragmented_ok(void **state)
{
    (void)state;
    uint8_t b[128];
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    size_t n = client_frame(b, 0x01, "Hello, ", 7);
    assert_int_equal(feed(&ws, &s, b, n, NULL), WSP_WS_OK);
    assert_non_null(ws); /* the message is open: wslay must remember it */
    n = client_frame(b, 0x89, "mid", 3);
    assert_int_equal(feed(&ws, &s, b, n, NULL), WSP_WS_OK);
    assert_one_pong(&s, "mid", 3);
    assert_non_null(ws);
    s.len = 0;
    n = client_frame(b, 0x00, "wor", 3);
    n += client_frame(b + n, 0x80, "ld", 2);
    assert_int_equal(feed(&ws, &s, b, n, NULL), WSP_WS_OK);
    assert_int_equal(s.len, 0);
    assert_null(ws);
}

static void test_partial_frame_keeps_state(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = client_frame(b, 0x81, "abcdefgh", 8);
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    assert_int_equal(feed(&ws, &s, b, 2, NULL), WSP_WS_OK); /* half a header */
    assert_non_null(ws);
    assert_int_equal(feed(&ws, &s, b + 2, 7, NULL), WSP_WS_OK); /* header + some payload */
    assert_non_null(ws);
    assert_int_equal(feed(&ws, &s, b + 9, n - 9, NULL), WSP_WS_OK);
    assert_null(ws);
    assert_int_equal(s.len, 0);
}

/* One protocol error case: a client byte stream that must get a 1002. */
struct bad_case {
    const char *name;
    uint8_t b[200];
    size_t n;
    int pongs; /* pongs answering pings ahead of the bad frame */
};

static size_t build_bad(size_t i, struct bad_case *c)
{
    uint8_t *b = c->b, big[126] = {0};
    size_t n = 0;
    c->pongs = 0;
    switch (i) {
    case 0:
        c->name = "unmasked";
        n = wsp_frame_header(b, WSP_OP_TEXT, 2, NULL);
        memcpy(b + n, "hi", 2);
        n += 2;
        break;
    case 1:
        c->name = "rsv1";
        n = client_frame(b, 0x80 | 0x40 | 0x1, "hi", 2);
        break;
    case 2:
        c->name = "rsv2";
        n = client_frame(b, 0x80 | 0x20 | 0x1, "hi", 2);
        break;
    case 3:
        c->name = "rsv3 on ping";
        n = client_frame(b, 0x80 | 0x10 | 0x9, "hi", 2);
        break;
    case 4:
        c->name = "reserved data opcode";
        n = client_frame(b, 0x83, "hi", 2);
        break;
    case 5:
        c->name = "reserved control opcode";
        n = client_frame(b, 0x8B, "hi", 2);
        break;
    case 6:
        c->name = "fragmented ping";
        n = client_frame(b, 0x09, "hi", 2);
        break;
    case 7:
        c->name = "ping of 126 bytes";
        n = client_frame(b, 0x89, big, 126);
        break;
    case 8:
        c->name = "continuation without start";
        n = client_frame(b, 0x80, "hi", 2);
        break;
    case 9:
        c->name = "text inside fragmented text";
        n = client_frame(b, 0x01, "a", 1);
        n += client_frame(b + n, 0x81, "b", 1);
        break;
    case 10:
        c->name = "binary inside fragmented text";
        n = client_frame(b, 0x01, "a", 1);
        n += client_frame(b + n, 0x82, "b", 1);
        break;
    case 11:
        c->name = "continuation after a complete message";
        n = client_frame(b, 0x81, "a", 1);
        n += client_frame(b + n, 0x80, "b", 1);
        break;
    case 12:
        c->name = "close with 1 byte";
        n = client_frame(b, 0x88, "\x03", 1);
        break;
    case 13:
        c->name = "close 1005";
        n = client_close(b, 1005);
        break;
    case 14:
        c->name = "close 1006";
        n = client_close(b, 1006);
        break;
    case 15:
        c->name = "close 1004";
        n = client_close(b, 1004);
        break;
    case 16:
        c->name = "close 999";
        n = client_close(b, 999);
        break;
    case 17:
        c->name = "close 2000";
        n = client_close(b, 2000);
        break;
    case 18:
        c->name = "close 5000";
        n = client_close(b, 5000);
        break;
    case 19:
        c->name = "close 0";
        n = client_close(b, 0);
        break;
    case 20:
        c->name = "16-bit length below 126";
        b[0] = 0x81;
        b[1] = 0x80 | 126;
        b[2] = 0;
        b[3] = 5;
        memcpy(b + 4, key, 4);
        memcpy(b + 8, "hello", 5);
        wsp_frame_mask(b + 8, 5, key, 0);
        n = 13;
        break;
    case 21:
        c->name = "64-bit length below 65536";
        b[0] = 0x82;
        b[1] = 0x80 | 127;
        memset(b + 2, 0, 8);
        b[9] = 5;
        memcpy(b + 10, key, 4);
        memcpy(b + 14, "hello", 5);
        n = 19;
        break;
    case 22:
        c->name = "64-bit length with the top bit";
        b[0] = 0x82;
        b[1] = 0x80 | 127;
        memset(b + 2, 0, 8);
        b[2] = 0x80;
        memcpy(b + 10, key, 4);
        n = 14;
        break;
    case 23:
        c->name = "ping, then a fragmented close";
        c->pongs = 1;
        n = client_frame(b, 0x89, "ok", 2);
        n += client_frame(b + n, 0x08, "\x03\xE8", 2);
        break;
    default:
        return 0;
    }
    c->n = n;
    return n;
}

static void test_protocol_errors(void **state)
{
    (void)state;
    struct bad_case c;
    size_t i = 0;
    for (; build_bad(i, &c) > 0; i++) {
        print_message("1002: %s\n", c.name);
        expect_pongs_close(c.b, c.n, c.pongs, 1002);
        expect_pongs_close_bytewise(c.b, c.n, c.pongs, 1002);
    }
    assert_int_equal(i, 24);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    uint8_t b[128];
    expect_close(b, client_frame(b, 0x81, "\xFF", 1), 1007);
    expect_close(b, client_frame(b, 0x81, "ok\xC3\x28", 4), 1007);
    expect_close(b, client_frame(b, 0x81, "\xED\xA0\x80", 3), 1007); /* a surrogate */
    expect_close(b, client_frame(b, 0x81, "\xE2\x82", 2), 1007);     /* truncated at the end */
    expect_close(b, client_frame(b, 0x88, "\x03\xE8\xFF", 3), 1007); /* close reason */

    size_t n = client_frame(b, 0x01, "\xE2\x82", 2); /* split across fragments */
    n += client_frame(b + n, 0x80, "\x28", 1);
    expect_close(b, n, 1007);
    expect_close_bytewise(b, n, 1007);

    n = client_frame(b, 0x01, "a\xE2", 2); /* the message ends inside a character */
    n += client_frame(b + n, 0x00, "\x82", 1);
    n += client_frame(b + n, 0x80, "", 0);
    expect_close(b, n, 1007);
}

static void test_utf8_split_valid(void **state)
{
    (void)state;
    uint8_t b[128];
    size_t n = client_frame(b, 0x01, "\xE2\x82", 2);
    size_t m = client_frame(b + n, 0x80, "\xAC", 1);
    expect_quiet_idle(b, n + m);

    wsp_ws_t *ws = NULL; /* the same, one feed per fragment */
    struct sink s = {0};
    assert_int_equal(feed(&ws, &s, b, n, NULL), WSP_WS_OK);
    assert_non_null(ws);
    assert_int_equal(feed(&ws, &s, b + n, m, NULL), WSP_WS_OK);
    assert_null(ws);
    assert_int_equal(s.len, 0);
}

static void test_invalid_utf8_across_feeds(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = client_frame(b, 0x01, "\xF0\x9F", 2);
    size_t m = client_frame(b + n, 0x80, "\x41", 1);
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    int code = -1;
    assert_int_equal(feed(&ws, &s, b, n, &code), WSP_WS_OK);
    assert_non_null(ws);
    assert_int_equal(feed(&ws, &s, b + n, m, &code), WSP_WS_CLOSE);
    assert_int_equal(code, 1007);
    assert_one_close(&s, 1007);
    wsp_ws_free(ws);
}

/* A client stream with its idle points: offsets after which the server holds no state. */
struct stream {
    uint8_t b[2048];
    size_t n;
    bool idle[2048 + 1];
};

static void add(struct stream *st, uint8_t b0, const void *p, size_t len, bool idle_after)
{
    st->n += client_frame(st->b + st->n, b0, p, len);
    assert_true(st->n <= sizeof(st->b));
    st->idle[st->n] = idle_after;
}

static void test_random_splits(void **state)
{
    (void)state;
    static struct stream st;
    uint8_t text[300], big[200];
    for (size_t i = 0; i < sizeof(text); i += 3)
        memcpy(text + i, "\xE2\x82\xAC", 3); /* 100 euro signs */
    memset(big, 'b', sizeof(big));
    add(&st, 0x81, text, sizeof(text), true); /* 16-bit length */
    add(&st, 0x89, "a", 1, true);
    add(&st, 0x02, "\x00\xFF", 2, false);
    add(&st, 0x89, big, 125, false);
    add(&st, 0x00, big, 200, false);
    add(&st, 0x80, NULL, 0, true);
    add(&st, 0x01, text, 4, false); /* splits a euro sign across fragments */
    add(&st, 0x80, text + 4, 8, true);
    add(&st, 0x8A, NULL, 0, true);
    add(&st, 0x88, "\x03\xE8\xC3\xA9", 4, false);

    struct sink whole = {0};
    wsp_ws_t *ws = NULL;
    int code = -1;
    assert_int_equal(feed(&ws, &whole, st.b, st.n, &code), WSP_WS_CLOSE);
    assert_int_equal(code, 1000);
    wsp_ws_free(ws);
    size_t off = 0; /* pong "a", pong big[0..125), then the close */
    assert_int_equal(next_frame(&whole, &off).len, 1);
    assert_int_equal(next_frame(&whole, &off).len, 125);
    assert_close_after(&whole, 2, 1000);

    uint32_t seed = 12345;
    for (int round = 0; round < 300; round++) {
        struct sink s = {0};
        ws = NULL;
        int rv = WSP_WS_OK;
        size_t at = 0;
        while (at < st.n) {
            seed = seed * 1103515245u + 12345u;
            size_t k = 1 + (seed >> 16) % (round < 100 ? 7 : 60);
            if (k > st.n - at)
                k = st.n - at;
            rv = feed(&ws, &s, st.b + at, k, &code);
            at += k;
            if (at == st.n)
                break;
            assert_int_equal(rv, WSP_WS_OK);
            if (st.idle[at])
                assert_null(ws);
            else
                assert_non_null(ws);
        }
        assert_int_equal(rv, WSP_WS_CLOSE);
        assert_int_equal(code, 1000);
        assert_int_equal(s.len, whole.len);
        assert_memory_equal(s.buf, whole.buf, whole.len);
        wsp_ws_free(ws);
    }
}

static void test_write_failure(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = client_frame(b, 0x89, "hi", 2);
    wsp_ws_t *ws = NULL;
    struct sink s = {.fail = -EPIPE};
    int code = -1;
    assert_int_equal(feed(&ws, &s, b, n, &code), -EPIPE);
    assert_int_equal(code, 0);
    /* The conn closes TCP now; should more bytes come first, they are ignored. */
    assert_int_equal(feed(&ws, &s, b, n, &code), WSP_WS_CLOSE);
    wsp_ws_free(ws);

    ws = NULL;
    n = client_close(b, 1000);
    assert_int_equal(feed(&ws, &s, b, n, &code), -EPIPE);
    wsp_ws_free(ws);

    ws = NULL;
    n = client_frame(b, 0x81, "\xFF", 1); /* failing to send wslay's own close */
    assert_int_equal(feed(&ws, &s, b, n, &code), -EPIPE);
    wsp_ws_free(ws);

    ws = NULL;
    n = client_frame(b, 0x8B, "", 0); /* failing to send the close ws.c queues */
    assert_int_equal(feed(&ws, &s, b, n, &code), -EPIPE);
    wsp_ws_free(ws);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ping_pong),
        cmocka_unit_test(test_ping_bytewise),
        cmocka_unit_test(test_empty_feed_keeps_idle),
        cmocka_unit_test(test_two_pings_one_buffer),
        cmocka_unit_test(test_text_then_ping),
        cmocka_unit_test(test_pong_from_client_ignored),
        cmocka_unit_test(test_pong_fast_path),
        cmocka_unit_test(test_fragment_cap),
        cmocka_unit_test(test_close_echo),
        cmocka_unit_test(test_close_split_reason),
        cmocka_unit_test(test_text_and_binary_dropped),
        cmocka_unit_test(test_text_sink),
        cmocka_unit_test(test_text_sink_closes),
        cmocka_unit_test(test_large_message_in_pieces),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_too_big_header_only),
        cmocka_unit_test(test_too_big_fragmented),
        cmocka_unit_test(test_fragmented_ok),
        cmocka_unit_test(test_partial_frame_keeps_state),
        cmocka_unit_test(test_protocol_errors),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_utf8_split_valid),
        cmocka_unit_test(test_invalid_utf8_across_feeds),
        cmocka_unit_test(test_random_splits),
        cmocka_unit_test(test_write_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
