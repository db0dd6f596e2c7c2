/* Client frames against the real binary: control frames, size limits, every protocol error and
 * invalid UTF-8, odd handshake segmentation. One server for the whole file: after all the
 * abuse it must still upgrade, broadcast and shut down cleanly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "harness.h"

#define T WSP_IT_TIMEOUT_MS

static wsp_it_server_t srv;  /* the file's one server, started by the group setup */
static wsp_it_frame_t frame; /* 8 KiB: not on the stack */

static void open_client(wsp_it_client_t *c)
{
    assert_int_equal(wsp_it_ws_connect(c, srv.port, "/", T), 0);
}

/* The next frame is a close with code (-1: an empty close), then the server closes TCP. */
static void expect_close(wsp_it_client_t *c, int code, const char *what)
{
    int rv = wsp_it_read_frame(c, &frame, T);
    if (rv != 0 || frame.opcode != WSP_OP_CLOSE || frame.close_code != code)
        fprintf(stderr, "case '%s': read %d, opcode %u, close code %d, want close %d\n", what, rv,
                frame.opcode, frame.close_code, code);
    assert_int_equal(rv, 0);
    assert_int_equal(frame.opcode, WSP_OP_CLOSE);
    assert_true(frame.fin);
    assert_false(frame.masked);
    assert_int_equal(frame.close_code, code);
    if (code == -1)
        assert_int_equal(frame.len, 0);
    assert_int_equal(wsp_it_expect_eof(c, T), 0);
}

static void expect_pong(wsp_it_client_t *c, const void *p, size_t len)
{
    assert_int_equal(wsp_it_read_frame(c, &frame, T), 0);
    assert_int_equal(frame.opcode, WSP_OP_PONG);
    assert_true(frame.fin);
    assert_false(frame.masked);
    assert_int_equal(frame.len, len);
    if (len)
        assert_memory_equal(frame.payload, p, len);
}

/* A ping round trip: proves the server parsed everything sent before it and kept the conn. */
static void expect_alive(wsp_it_client_t *c)
{
    assert_int_equal(wsp_it_send_frame(c, WSP_OP_PING, "alive?", 6, T), 0);
    expect_pong(c, "alive?", 6);
}

/* Reads the next frame as a broadcast. */
static void expect_broadcast(wsp_it_client_t *c)
{
    assert_int_equal(wsp_it_read_frame(c, &frame, T), 0);
    assert_int_equal(frame.opcode, WSP_OP_TEXT);
    assert_true(frame.fin);
    uint64_t t, seq;
    assert_int_equal(wsp_it_parse_time_msg(frame.payload, frame.len, &t, &seq), 0);
    assert_true(seq >= 1);
}

static void test_ping_pong(void **state)
{
    (void)state;
    wsp_it_client_t c;
    open_client(&c);
    uint8_t big[125];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_PING, "hello", 5, T), 0);
    expect_pong(&c, "hello", 5);
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_PING, NULL, 0, T), 0);
    expect_pong(&c, NULL, 0);
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_PING, big, sizeof(big), T), 0);
    expect_pong(&c, big, sizeof(big));
    /* Two pings in one write: two pongs, in order. */
    uint8_t two[64];
    wsp_it_fopts_t ping = {.opcode = WSP_OP_PING};
    int n1 = wsp_it_frame_build(two, sizeof(two), &ping, "one", 3);
    assert_true(n1 > 0);
    int n2 = wsp_it_frame_build(two + n1, sizeof(two) - (size_t)n1, &ping, "two", 3);
    assert_true(n2 > 0);
    assert_int_equal(wsp_it_send_raw(&c, two, (size_t)(n1 + n2), T), 0);
    expect_pong(&c, "one", 3);
    expect_pong(&c, "two", 3);
    /* An unsolicited pong is allowed (RFC 6455 5.5.3) and ignored. */
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_PONG, "x", 1, T), 0);
    expect_alive(&c);
    wsp_it_close(&c);
}

static void test_close_echo(void **state)
{
    (void)state;
    static const unsigned codes[] = {1000, 1001, 1003, 1011, 3000, 4999};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        wsp_it_client_t c;
        open_client(&c);
        assert_int_equal(wsp_it_send_close(&c, codes[i], "bye", T), 0);
        char what[32];
        snprintf(what, sizeof(what), "close %u", codes[i]);
        expect_close(&c, (int)codes[i], what);
        wsp_it_close(&c);
    }
    /* No code at all: the reply carries none either (RFC 6455 5.5.1). */
    wsp_it_client_t c;
    open_client(&c);
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_CLOSE, NULL, 0, T), 0);
    expect_close(&c, -1, "empty close");
    wsp_it_close(&c);
}

static void test_data_accepted(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    wsp_it_client_t c;
    open_client(&c);

    memset(buf, 'a', sizeof(buf));
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_TEXT, buf, 4096, T), 0);
    expect_alive(&c);
    memset(buf, 0xFF, sizeof(buf)); /* binary: never UTF-8 checked */
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_BINARY, buf, 4096, T), 0);
    expect_alive(&c);
    for (size_t i = 0; i < sizeof(buf); i += 2) { /* 2048 x U+00E9: 4096 bytes */
        buf[i] = 0xC3;
        buf[i + 1] = 0xA9;
    }
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_TEXT, buf, 4096, T), 0);
    expect_alive(&c);
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_TEXT, NULL, 0, T), 0);
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_BINARY, NULL, 0, T), 0);
    expect_alive(&c);

    /* A fragmented message of 4096 in total, a ping between its fragments, and a character
     * split across them. */
    wsp_it_fopts_t first = {.opcode = WSP_OP_TEXT, .no_fin = 1};
    wsp_it_fopts_t middle = {.opcode = WSP_OP_CONT, .no_fin = 1};
    wsp_it_fopts_t last = {.opcode = WSP_OP_CONT};
    assert_int_equal(wsp_it_send_frame_ex(&c, &first, buf, 2047, T), 0); /* ends in 0xC3 */
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_PING, "mid", 3, T), 0);
    expect_pong(&c, "mid", 3);
    assert_int_equal(wsp_it_send_frame_ex(&c, &middle, buf + 2047, 1, T), 0); /* its 0xA9 */
    assert_int_equal(wsp_it_send_frame_ex(&c, &last, buf + 2048, 2048, T), 0);
    expect_alive(&c);

    /* Still OPEN: it receives a broadcast, and only that. */
    assert_int_equal(wsp_it_server_signal(&srv, SIGUSR1), 0);
    expect_broadcast(&c);
    expect_alive(&c);
    wsp_it_close(&c);
}

static void test_too_big(void **state)
{
    (void)state;
    static uint8_t buf[4097 + WSP_FRAME_HDR_MAX];
    memset(buf, 'a', sizeof(buf));
    wsp_it_client_t c;

    open_client(&c);
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_TEXT, buf, 4097, T), 0);
    expect_close(&c, 1009, "text 4097");
    wsp_it_close(&c);

    open_client(&c);
    assert_int_equal(wsp_it_send_frame(&c, WSP_OP_BINARY, buf, 4097, T), 0);
    expect_close(&c, 1009, "binary 4097");
    wsp_it_close(&c);

    open_client(&c); /* the limit is per message, not per frame */
    wsp_it_fopts_t first = {.opcode = WSP_OP_TEXT, .no_fin = 1};
    wsp_it_fopts_t last = {.opcode = WSP_OP_CONT};
    assert_int_equal(wsp_it_send_frame_ex(&c, &first, buf, 2048, T), 0);
    assert_int_equal(wsp_it_send_frame_ex(&c, &last, buf, 2049, T), 0);
    expect_close(&c, 1009, "fragmented 2048 + 2049");
    wsp_it_close(&c);

    /* Refused on the header: a 64-bit length of 70000 with only 100 payload bytes sent. */
    open_client(&c);
    uint8_t mask[4] = {1, 2, 3, 4};
    size_t h = wsp_frame_header(buf, WSP_OP_BINARY, 70000, mask);
    assert_int_equal(h, 14);
    assert_int_equal(wsp_it_send_raw(&c, buf, h + 100, T), 0);
    expect_close(&c, 1009, "binary header of 70000");
    wsp_it_close(&c);
}

/* One bad input: up to two frames sent in one write. */
struct bad_case {
    const char *name;
    wsp_it_fopts_t o[2];
    const char *p[2];
    size_t len[2];
    int nframes;
};

/* Table shorthands: a well-formed frame of opcode op, or one with the given deviations. */
#define OP(op)                                                                                     \
    {                                                                                              \
        .opcode = (op)                                                                             \
    }
#define OPX(op, ...)                                                                               \
    {                                                                                              \
        .opcode = (op), __VA_ARGS__                                                                \
    }

/* The close payloads: a code (big-endian) and no reason. */
static const char c_0[] = "\x00\x00", c_999[] = "\x03\xe7", c_1004[] = "\x03\xec",
                  c_1005[] = "\x03\xed", c_1006[] = "\x03\xee", c_1015[] = "\x03\xf7",
                  c_1016[] = "\x03\xf8", c_2999[] = "\x0b\xb7", c_5000[] = "\x13\x88",
                  c_65535[] = "\xff\xff";

static void run_cases(const struct bad_case *cases, size_t n, int code)
{
    static uint8_t wire[2 * (200 + WSP_FRAME_HDR_MAX)];
    for (size_t i = 0; i < n; i++) {
        const struct bad_case *k = &cases[i];
        wsp_it_client_t c;
        open_client(&c);
        size_t len = 0;
        for (int j = 0; j < k->nframes; j++) {
            int m =
                wsp_it_frame_build(wire + len, sizeof(wire) - len, &k->o[j], k->p[j], k->len[j]);
            assert_true(m > 0);
            len += (size_t)m;
        }
        assert_int_equal(wsp_it_send_raw(&c, wire, len, T), 0);
        expect_close(&c, code, k->name);
        wsp_it_close(&c);
    }
}

static void test_protocol_errors(void **state)
{
    (void)state;
    static char long_payload[126];
    memset(long_payload, 'p', sizeof(long_payload));
    long_payload[0] = 0x03; /* as a close: code 1000 then a 124-byte reason */
    long_payload[1] = (char)0xE8;
    static const struct bad_case cases[] = {
        {"unmasked text", {OPX(WSP_OP_TEXT, .unmasked = 1)}, {"hi"}, {2}, 1},
        {"unmasked ping", {OPX(WSP_OP_PING, .unmasked = 1)}, {"hi"}, {2}, 1},
        {"RSV1", {OPX(WSP_OP_TEXT, .rsv = 0x40)}, {"hi"}, {2}, 1},
        {"RSV2", {OPX(WSP_OP_TEXT, .rsv = 0x20)}, {"hi"}, {2}, 1},
        {"RSV3", {OPX(WSP_OP_BINARY, .rsv = 0x10)}, {"hi"}, {2}, 1},
        {"RSV1 on ping", {OPX(WSP_OP_PING, .rsv = 0x40)}, {"hi"}, {2}, 1},
        {"opcode 0x3", {OP(0x3)}, {"hi"}, {2}, 1},
        {"opcode 0x7", {OP(0x7)}, {"hi"}, {2}, 1},
        {"opcode 0xB", {OP(0xB)}, {"hi"}, {2}, 1},
        {"opcode 0xF", {OP(0xF)}, {NULL}, {0}, 1},
        {"fragmented ping", {OPX(WSP_OP_PING, .no_fin = 1)}, {"hi"}, {2}, 1},
        {"fragmented pong", {OPX(WSP_OP_PONG, .no_fin = 1)}, {"hi"}, {2}, 1},
        {"fragmented close", {OPX(WSP_OP_CLOSE, .no_fin = 1)}, {"\x03\xe8"}, {2}, 1},
        {"ping of 126 bytes", {OP(WSP_OP_PING)}, {long_payload}, {126}, 1},
        {"close of 126 bytes", {OP(WSP_OP_CLOSE)}, {long_payload}, {126}, 1},
        {"continuation without start", {OP(WSP_OP_CONT)}, {"x"}, {1}, 1},
        {"non-final continuation without start", {OPX(WSP_OP_CONT, .no_fin = 1)}, {"x"}, {1}, 1},
        {"text inside a fragmented text",
         {OPX(WSP_OP_TEXT, .no_fin = 1), OP(WSP_OP_TEXT)},
         {"a", "b"},
         {1, 1},
         2},
        {"binary inside a fragmented binary",
         {OPX(WSP_OP_BINARY, .no_fin = 1), OP(WSP_OP_BINARY)},
         {"a", "b"},
         {1, 1},
         2},
        {"close of 1 byte", {OP(WSP_OP_CLOSE)}, {"\x03"}, {1}, 1},
        {"close code 0", {OP(WSP_OP_CLOSE)}, {c_0}, {2}, 1},
        {"close code 999", {OP(WSP_OP_CLOSE)}, {c_999}, {2}, 1},
        {"close code 1004", {OP(WSP_OP_CLOSE)}, {c_1004}, {2}, 1},
        {"close code 1005", {OP(WSP_OP_CLOSE)}, {c_1005}, {2}, 1},
        {"close code 1006", {OP(WSP_OP_CLOSE)}, {c_1006}, {2}, 1},
        {"close code 1015", {OP(WSP_OP_CLOSE)}, {c_1015}, {2}, 1},
        {"close code 1016", {OP(WSP_OP_CLOSE)}, {c_1016}, {2}, 1},
        {"close code 2999", {OP(WSP_OP_CLOSE)}, {c_2999}, {2}, 1},
        {"close code 5000", {OP(WSP_OP_CLOSE)}, {c_5000}, {2}, 1},
        {"close code 65535", {OP(WSP_OP_CLOSE)}, {c_65535}, {2}, 1},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), 1002);

    /* A 16-bit length field holding 5: RFC 6455 5.2 wants the minimal encoding. */
    wsp_it_client_t c;
    open_client(&c);
    static const uint8_t nonminimal[] = {0x81, 0xFE, 0x00, 0x05, 0,   0,  0,
                                         0,    'h',  'e',  'l',  'l', 'o'};
    assert_int_equal(wsp_it_send_raw(&c, nonminimal, sizeof(nonminimal), T), 0);
    expect_close(&c, 1002, "non-minimal 16-bit length");
    wsp_it_close(&c);

    /* A ping before the bad frame in the same write is still answered, then the close. */
    open_client(&c);
    uint8_t wire[64];
    wsp_it_fopts_t ping = {.opcode = WSP_OP_PING}, bad = {.opcode = 0x3};
    int n1 = wsp_it_frame_build(wire, sizeof(wire), &ping, "first", 5);
    assert_true(n1 > 0);
    int n2 = wsp_it_frame_build(wire + n1, sizeof(wire) - (size_t)n1, &bad, NULL, 0);
    assert_true(n2 > 0);
    assert_int_equal(wsp_it_send_raw(&c, wire, (size_t)(n1 + n2), T), 0);
    expect_pong(&c, "first", 5);
    expect_close(&c, 1002, "ping then opcode 0x3");
    wsp_it_close(&c);
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"0xFF", {OP(WSP_OP_TEXT)}, {"ok\xff"}, {3}, 1},
        {"bad continuation byte", {OP(WSP_OP_TEXT)}, {"\xc3\x28"}, {2}, 1},
        {"overlong '/'", {OP(WSP_OP_TEXT)}, {"\xc0\xaf"}, {2}, 1},
        {"surrogate U+D800", {OP(WSP_OP_TEXT)}, {"\xed\xa0\x80"}, {3}, 1},
        {"above U+10FFFF", {OP(WSP_OP_TEXT)}, {"\xf4\x90\x80\x80"}, {4}, 1},
        {"truncated at the end of the message", {OP(WSP_OP_TEXT)}, {"ab\xe2\x82"}, {4}, 1},
        {"invalid across fragments",
         {OPX(WSP_OP_TEXT, .no_fin = 1), OP(WSP_OP_CONT)},
         {"a\xc3", "\x28"},
         {2, 1},
         2},
        {"close reason", {OP(WSP_OP_CLOSE)}, {"\x03\xe8\xff"}, {3}, 1},
    };
    run_cases(cases, sizeof(cases) / sizeof(cases[0]), 1007);
}

/* The upgrade request one byte per segment, then a ping and a close the same way. */
static void test_handshake_bytewise(void **state)
{
    (void)state;
    char req[512], key[25];
    int n = wsp_it_upgrade_request(req, sizeof(req), "/", key);
    assert_true(n > 0);
    wsp_it_client_t c;
    assert_int_equal(wsp_it_connect(&c, srv.port, T), 0);
    assert_int_equal(wsp_it_send_bytewise(&c, req, (size_t)n, T), 0);
    assert_int_equal(wsp_it_read_101(&c, key, T), 0);

    uint8_t wire[64];
    wsp_it_fopts_t ping = {.opcode = WSP_OP_PING}, close = {.opcode = WSP_OP_CLOSE};
    int m = wsp_it_frame_build(wire, sizeof(wire), &ping, "slow", 4);
    assert_true(m > 0);
    assert_int_equal(wsp_it_send_bytewise(&c, wire, (size_t)m, T), 0);
    expect_pong(&c, "slow", 4);
    m = wsp_it_frame_build(wire, sizeof(wire), &close, "\x03\xe8split", 7);
    assert_true(m > 0);
    assert_int_equal(wsp_it_send_bytewise(&c, wire, (size_t)m, T), 0);
    expect_close(&c, 1000, "close byte by byte");
    wsp_it_close(&c);
}

/* Frames in the same write as the request are processed after the 101, not lost. */
static void test_frames_with_request(void **state)
{
    (void)state;
    char wire[1024], key[25];
    int n = wsp_it_upgrade_request(wire, sizeof(wire), "/", key);
    assert_true(n > 0);
    wsp_it_fopts_t ping = {.opcode = WSP_OP_PING};
    int m = wsp_it_frame_build((uint8_t *)wire + n, sizeof(wire) - (size_t)n, &ping, "early", 5);
    assert_true(m > 0);
    wsp_it_client_t c;
    assert_int_equal(wsp_it_connect(&c, srv.port, T), 0);
    assert_int_equal(wsp_it_send_raw(&c, wire, (size_t)(n + m), T), 0);
    assert_int_equal(wsp_it_read_101(&c, key, T), 0);
    expect_pong(&c, "early", 5);
    expect_alive(&c);
    wsp_it_close(&c);

    /* Request, ping and close in one write: 101, pong, close echo, EOF. */
    n = wsp_it_upgrade_request(wire, sizeof(wire), "/", key);
    assert_true(n > 0);
    m = wsp_it_frame_build((uint8_t *)wire + n, sizeof(wire) - (size_t)n, &ping, "p", 1);
    assert_true(m > 0);
    wsp_it_fopts_t close = {.opcode = WSP_OP_CLOSE};
    int k = wsp_it_frame_build((uint8_t *)wire + n + m, sizeof(wire) - (size_t)(n + m), &close,
                               "\x03\xe8", 2);
    assert_true(k > 0);
    assert_int_equal(wsp_it_connect(&c, srv.port, T), 0);
    assert_int_equal(wsp_it_send_raw(&c, wire, (size_t)(n + m + k), T), 0);
    assert_int_equal(wsp_it_read_101(&c, key, T), 0);
    expect_pong(&c, "p", 1);
    expect_close(&c, 1000, "request + ping + close");
    wsp_it_close(&c);
}

/* A request that arrives in two writes, the second also carrying a ping: the server buffers
 * the partial request, and the frame bytes after it must survive that. Once with a small
 * request, once with one of 8188 bytes, so that the ping straddles the 8 KiB cap of the
 * handshake buffer. */
static void test_split_request_with_frames(void **state)
{
    (void)state;
    static char wire[9000];
    for (int big = 0; big < 2; big++) {
        char key[25];
        int n = wsp_it_upgrade_request(wire, sizeof(wire), "/", key);
        assert_true(n > 0);
        size_t len = (size_t)n - 2; /* reopen the block to add a padding field */
        if (big) {
            size_t pad = 8188 - (size_t)n - 9; /* "X-Pad: " + pad + CRLF + the final CRLF */
            memcpy(wire + len, "X-Pad: ", 7);
            memset(wire + len + 7, 'a', pad);
            memcpy(wire + len + 7 + pad, "\r\n", 2);
            len += 7 + pad + 2;
        }
        memcpy(wire + len, "\r\n", 2);
        len += 2;
        assert_true(big ? len == 8188 : len < 512); /* a valid request: under 8192 */
        wsp_it_fopts_t ping = {.opcode = WSP_OP_PING};
        int m = wsp_it_frame_build((uint8_t *)wire + len, sizeof(wire) - len, &ping, "split", 5);
        assert_true(m > 0);
        size_t first = len - 3; /* the request's tail goes with the ping */
        wsp_it_client_t c;
        assert_int_equal(wsp_it_connect(&c, srv.port, T), 0);
        assert_int_equal(wsp_it_send_raw(&c, wire, first, T), 0);
        wsp_it_sleep_ms(20); /* most likely two reads; one read is as valid */
        assert_int_equal(wsp_it_send_raw(&c, wire + first, len + (size_t)m - first, T), 0);
        assert_int_equal(wsp_it_read_101(&c, key, T), 0);
        expect_pong(&c, "split", 5);
        expect_alive(&c);
        wsp_it_close(&c);
    }
}

/* Last: after everything above, the server still upgrades, broadcasts and stops with 1001. */
static void test_still_serving(void **state)
{
    (void)state;
    wsp_it_client_t c;
    open_client(&c);
    assert_int_equal(wsp_it_server_signal(&srv, SIGUSR1), 0);
    expect_broadcast(&c);
    expect_alive(&c);
    assert_int_equal(wsp_it_server_signal(&srv, SIGTERM), 0);
    expect_close(&c, 1001, "shutdown");
    wsp_it_close(&c);
    assert_int_equal(wsp_it_server_wait(&srv, 15000), 0);
}

static int group_setup(void **state)
{
    (void)state;
    return wsp_it_server_start(&srv, NULL) == 0 ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    (void)wsp_it_server_stop(&srv); /* test_still_serving asserted the exit */
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ping_pong),
    cmocka_unit_test(test_close_echo),
    cmocka_unit_test(test_data_accepted),
    cmocka_unit_test(test_too_big),
    cmocka_unit_test(test_protocol_errors),
    cmocka_unit_test(test_invalid_utf8),
    cmocka_unit_test(test_handshake_bytewise),
    cmocka_unit_test(test_frames_with_request),
    cmocka_unit_test(test_split_request_with_frames),
    cmocka_unit_test(test_still_serving),
};
WSP_IT_SUITE(tests, group_setup, group_teardown);
