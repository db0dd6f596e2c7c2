#ifndef WSP_TEST_WS_TEST_H
#define WSP_TEST_WS_TEST_H

/* What the server/ws.c tests share (test_ws.c, test_ws_pmd.c): a sink for what the server
 * writes, client frames, and the checks of the server's pongs and closes. Include after
 * cmocka.h. */

#include <stdbool.h>
#include <string.h>

#include "frame.h"
#include "ws.h"

/* Captures what wsp_ws_feed() writes; fail makes every write return that errno. */
struct sink {
    uint8_t buf[16384];
    size_t len;
    int fail;
};

static inline int on_sink_write(void *user, const uint8_t *buf, size_t len)
{
    struct sink *s = user;
    if (s->fail)
        return s->fail;
    assert_true(s->len + len <= sizeof(s->buf));
    memcpy(s->buf + s->len, buf, len);
    s->len += len;
    return 0;
}

static const uint8_t key[4] = {0x37, 0xFA, 0x21, 0x3D};

/* Writes a masked client frame whose first byte is b0 (FIN, RSV, opcode as given). */
static inline size_t client_frame(uint8_t *out, uint8_t b0, const void *payload, size_t len)
{
    size_t h = wsp_frame_header(out, b0 & 0x0Fu, len, key);
    out[0] = b0;
    if (len)
        memcpy(out + h, payload, len);
    wsp_frame_mask(out + h, len, key, 0);
    return h + len;
}

/* Writes a masked close frame with code (and no reason). */
static inline size_t client_close(uint8_t *out, unsigned code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    return client_frame(out, 0x88, p, 2);
}

struct sframe {
    uint8_t b0;
    size_t len;
    const uint8_t *payload;
};

/* Decodes the server frame at s->buf + *off and advances *off past it. */
static inline struct sframe next_frame(const struct sink *s, size_t *off)
{
    const uint8_t *p = s->buf + *off;
    size_t n = s->len - *off;
    assert_true(n >= 2);
    assert_int_equal(p[1] & 0x80, 0); /* server frames are never masked */
    struct sframe f = {.b0 = p[0], .len = p[1] & 0x7Fu};
    assert_true(f.len <= 125); /* pongs and closes only */
    size_t h = 2;
    assert_true(n >= h + f.len);
    f.payload = p + h;
    *off += h + f.len;
    return f;
}

/* Asserts the sink holds pongs pongs, then one close frame carrying code (0: no code). */
static inline void assert_close_after(const struct sink *s, int pongs, int code)
{
    size_t off = 0;
    for (int i = 0; i < pongs; i++)
        assert_int_equal(next_frame(s, &off).b0, 0x8A);
    struct sframe f = next_frame(s, &off);
    assert_int_equal(off, s->len);
    assert_int_equal(f.b0, 0x88);
    if (code == 0) {
        assert_int_equal(f.len, 0);
        return;
    }
    assert_true(f.len >= 2);
    assert_int_equal(f.payload[0] << 8 | f.payload[1], code);
}

static inline void assert_one_close(const struct sink *s, int code)
{
    assert_close_after(s, 0, code);
}

/* Asserts the sink holds exactly one pong carrying payload. */
static inline void assert_one_pong(const struct sink *s, const void *payload, size_t len)
{
    size_t off = 0;
    struct sframe f = next_frame(s, &off);
    assert_int_equal(off, s->len);
    assert_int_equal(f.b0, 0x8A);
    assert_int_equal(f.len, len);
    if (len)
        assert_memory_equal(f.payload, payload, len);
}

/* The permessage-deflate state feed() passes (NULL: not negotiated, the default). */
static wsp_ws_pmd_t *feed_pmd;

static inline int feed(wsp_ws_t **ws, struct sink *s, const uint8_t *buf, size_t len, int *code)
{
    return wsp_ws_feed(ws, buf, len, on_sink_write, NULL, s, feed_pmd, code);
}

/* Feeds buf whole, expects pongs pongs and a close with code, then that later bytes are
 * ignored. */
static inline void expect_pongs_close(const uint8_t *buf, size_t len, int pongs, int code)
{
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    int got = -1;
    assert_int_equal(feed(&ws, &s, buf, len, &got), WSP_WS_CLOSE);
    assert_int_equal(got, code);
    assert_close_after(&s, pongs, code);
    assert_non_null(ws); /* the closed state is kept so later bytes are ignored */

    uint8_t ping[16];
    size_t n = client_frame(ping, 0x89, "p", 1);
    s.len = 0;
    assert_int_equal(feed(&ws, &s, ping, n, &got), WSP_WS_CLOSE);
    assert_int_equal(got, 0);
    assert_int_equal(s.len, 0);
    wsp_ws_free(ws);
}

static inline void expect_close(const uint8_t *buf, size_t len, int code)
{
    expect_pongs_close(buf, len, 0, code);
}

/* Feeds buf one byte at a time until a step returns other than WSP_WS_OK. */
static inline void expect_pongs_close_bytewise(const uint8_t *buf, size_t len, int pongs, int code)
{
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    int got = -1, rv = WSP_WS_OK;
    size_t i = 0;
    while (i < len && rv == WSP_WS_OK)
        rv = feed(&ws, &s, buf + i++, 1, &got);
    assert_int_equal(rv, WSP_WS_CLOSE);
    assert_int_equal(got, code);
    assert_close_after(&s, pongs, code);
    wsp_ws_free(ws);
}

static inline void expect_close_bytewise(const uint8_t *buf, size_t len, int code)
{
    expect_pongs_close_bytewise(buf, len, 0, code);
}

/* Feeds buf whole and expects silence, no error and no state left behind. */
static inline void expect_quiet_idle(const uint8_t *buf, size_t len)
{
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    int code = -1;
    assert_int_equal(feed(&ws, &s, buf, len, &code), WSP_WS_OK);
    assert_int_equal(code, 0);
    assert_int_equal(s.len, 0);
    assert_null(ws);
}

#endif
