/* The HTTP side of the handshake against the real binary: error statuses, each with
 * Connection: close and a closed socket; the handshake timeout; --max-conns. */
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

/* Sends req raw, expects status with Connection: close, then the server closing the socket.
 * The response head goes into head when non-NULL. A send refused because the server already
 * answered and closed (503 at accept) is fine: the response is what is asserted. */
static void expect_status(int port, const void *req, size_t len, int status, const char *what,
                          char *head, size_t cap)
{
    char buf[4096], v[256];
    if (head == NULL) {
        head = buf;
        cap = sizeof(buf);
    }
    wsp_it_client_t c;
    assert_int_equal(wsp_it_connect(&c, port, T), 0);
    int rv = wsp_it_send_raw(&c, req, len, T);
    assert_true(rv == 0 || rv == -EPIPE || rv == -ECONNRESET);
    int st = wsp_it_read_head(&c, head, cap, T);
    if (st != status)
        fprintf(stderr, "case '%s': status %d, want %d\n", what, st, status);
    assert_int_equal(st, status);
    assert_int_equal(wsp_it_header(head, "Connection", v, sizeof(v)), 0);
    assert_true(wsp_it_list_has(v, "close"));
    assert_int_equal(wsp_it_drain_until_closed(&c, T), 0);
    wsp_it_close(&c);
}

/* A valid upgrade request except for what the arguments change. */
static int request(char *out, size_t cap, const char *method, const char *path, const char *version,
                   const char *extra)
{
    int n = snprintf(out, cap,
                     "%s %s HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: %s\r\n"
                     "%s\r\n",
                     method, path, version, extra);
    assert_true(n > 0 && (size_t)n < cap);
    return n;
}

static void test_error_statuses(void **state)
{
    wsp_it_server_t *srv = *state;
    const char *const args[] = {"--path", "/ws", NULL};
    assert_int_equal(wsp_it_server_start(srv, args), 0);
    char req[1024], head[4096], v[256];
    int n;

    /* The endpoint itself, with and without a query string. */
    wsp_it_client_t c;
    assert_int_equal(wsp_it_ws_connect(&c, srv->port, "/ws", T), 0);
    wsp_it_close(&c);
    assert_int_equal(wsp_it_ws_connect(&c, srv->port, "/ws?token=1", T), 0);
    wsp_it_close(&c);

    n = request(req, sizeof(req), "GET", "/", "13", "");
    expect_status(srv->port, req, (size_t)n, 404, "path /", NULL, 0);
    n = request(req, sizeof(req), "GET", "/wsx", "13", "");
    expect_status(srv->port, req, (size_t)n, 404, "path /wsx", NULL, 0);
    n = request(req, sizeof(req), "POST", "/ws", "13", "");
    expect_status(srv->port, req, (size_t)n, 405, "POST", head, sizeof(head));
    assert_int_equal(wsp_it_header(head, "Allow", v, sizeof(v)), 0);
    assert_string_equal(v, "GET");
    n = request(req, sizeof(req), "GET", "/ws", "8", "");
    expect_status(srv->port, req, (size_t)n, 426, "version 8", head, sizeof(head));
    assert_int_equal(wsp_it_header(head, "Sec-WebSocket-Version", v, sizeof(v)), 0);
    assert_string_equal(v, "13"); /* RFC 6455 4.4: say which version we speak */

    static const char garbage[] = "hello there\r\n\r\n";
    expect_status(srv->port, garbage, sizeof(garbage) - 1, 400, "garbage line", NULL, 0);
    static const uint8_t tls[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03};
    expect_status(srv->port, tls, sizeof(tls), 400, "TLS ClientHello", NULL, 0);
    static const char http10[] = "GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\n"
                                 "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                 "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    expect_status(srv->port, http10, sizeof(http10) - 1, 400, "HTTP/1.0", NULL, 0);
    static const char nokey[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                                "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    expect_status(srv->port, nokey, sizeof(nokey) - 1, 400, "no key", NULL, 0);

    /* More than 8 KiB of header block, complete or not. */
    static char big[10000];
    size_t hl = (size_t)request(big, sizeof(big), "GET", "/ws", "13", "");
    hl -= 2; /* reopen the block: drop its final CRLF */
    size_t pad = 9000;
    memcpy(big + hl, "X-Pad: ", 7);
    memset(big + hl + 7, 'a', pad);
    memcpy(big + hl + 7 + pad, "\r\n\r\n", 4);
    assert_true(hl + 7 + pad + 4 <= sizeof(big));
    expect_status(srv->port, big, hl + 7 + pad + 4, 431, "9000-byte field", NULL, 0);
    expect_status(srv->port, big, 8200, 431, "8200 bytes, no end", NULL, 0);

    /* Still serving after all of it. */
    assert_int_equal(wsp_it_ws_connect(&c, srv->port, "/ws", T), 0);
    wsp_it_close(&c);
    assert_int_equal(wsp_it_server_stop(srv), 0);
}

static void test_handshake_timeout(void **state)
{
    wsp_it_server_t *srv = *state;
    const char *const args[] = {"--handshake-timeout", "1", NULL};
    assert_int_equal(wsp_it_server_start(srv, args), 0);
    /* Upgraded before the others connect: its handshake deadline passes before theirs. */
    wsp_it_client_t up;
    assert_int_equal(wsp_it_ws_connect(&up, srv->port, "/", T), 0);

    wsp_it_client_t silent, partial;
    assert_int_equal(wsp_it_connect(&silent, srv->port, T), 0);
    assert_int_equal(wsp_it_connect(&partial, srv->port, T), 0);
    static const char half[] = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    int rv = wsp_it_send_raw(&partial, half, sizeof(half) - 1, T);
    assert_true(rv == 0 || rv == -EPIPE || rv == -ECONNRESET); /* may be closed already */
    /* A bound against a hang, not a speed check: the server should close at 1-2 s. */
    assert_int_equal(wsp_it_drain_until_closed(&silent, T), 0);
    assert_int_equal(wsp_it_drain_until_closed(&partial, T), 0);
    wsp_it_close(&silent);
    wsp_it_close(&partial);

    /* The deadline is for the handshake only: the upgraded connection lives on. */
    assert_int_equal(wsp_it_send_frame(&up, WSP_OP_PING, "still", 5, T), 0);
    static wsp_it_frame_t f;
    assert_int_equal(wsp_it_read_frame(&up, &f, T), 0);
    assert_int_equal(f.opcode, WSP_OP_PONG);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.payload, "still", 5);
    wsp_it_close(&up);
    assert_int_equal(wsp_it_server_stop(srv), 0);
}

/* --handshake-timeout is the time a client gets, so one that completes its upgrade well within
 * it is upgraded, whenever it connects. Ten clients connect 100 ms apart (spanning a whole
 * second, so every phase of the server's 1 s tick) and each sends its request 600 ms after its
 * connect: 400 ms of margin, far above scheduling noise. */
static void test_handshake_within_timeout(void **state)
{
    wsp_it_server_t *srv = *state;
    const char *const args[] = {"--handshake-timeout", "1", NULL};
    assert_int_equal(wsp_it_server_start(srv, args), 0);
    enum { N = 10, STEP_MS = 100, DELAY_STEPS = 6 };
    wsp_it_client_t c[N];
    char req[N][512], key[N][25];
    int len[N];
    for (int i = 0; i < N; i++) {
        len[i] = wsp_it_upgrade_request(req[i], sizeof(req[i]), "/", key[i]);
        assert_true(len[i] > 0);
    }
    int sent_ok[N] = {0};
    for (int step = 0; step < N + DELAY_STEPS; step++) {
        if (step < N)
            assert_int_equal(wsp_it_connect(&c[step], srv->port, T), 0);
        int i = step - DELAY_STEPS;
        if (i >= 0) /* a reset here means the server already dropped it: asserted below */
            sent_ok[i] = wsp_it_send_raw(&c[i], req[i], (size_t)len[i], T) == 0;
        wsp_it_sleep_ms(STEP_MS);
    }
    int upgraded = 0;
    for (int i = 0; i < N; i++) {
        int rv = sent_ok[i] ? wsp_it_read_101(&c[i], key[i], T) : -EPIPE;
        if (rv != 0)
            fprintf(stderr,
                    "client %d: request sent 600 ms after connect, got %d instead of "
                    "a 101 (timeout 1 s)\n",
                    i, rv);
        upgraded += rv == 0;
        wsp_it_close(&c[i]);
    }
    assert_int_equal(upgraded, N);
    assert_int_equal(wsp_it_server_stop(srv), 0);
}

static void test_max_conns(void **state)
{
    wsp_it_server_t *srv = *state;
    const char *const args[] = {"--max-conns", "3", NULL};
    assert_int_equal(wsp_it_server_start(srv, args), 0);
    wsp_it_client_t c[3];
    for (int i = 0; i < 3; i++)
        assert_int_equal(wsp_it_ws_connect(&c[i], srv->port, "/", T), 0);
    char req[1024], key[25], head[4096], v[64];
    int n = wsp_it_upgrade_request(req, sizeof(req), "/", key);
    assert_true(n > 0);
    expect_status(srv->port, req, (size_t)n, 503, "4th connection", head, sizeof(head));
    assert_int_equal(wsp_it_header(head, "Retry-After", v, sizeof(v)), 0);

    /* The three are unharmed. */
    static wsp_it_frame_t f;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wsp_it_send_frame(&c[i], WSP_OP_PING, "k", 1, T), 0);
        assert_int_equal(wsp_it_read_frame(&c[i], &f, T), 0);
        assert_int_equal(f.opcode, WSP_OP_PONG);
    }
    /* A closed connection frees its slot once the server has seen the close: retry until a
     * new client upgrades, bounded. */
    assert_int_equal(wsp_it_send_close(&c[0], 1000, NULL, T), 0);
    assert_int_equal(wsp_it_read_frame(&c[0], &f, T), 0);
    assert_int_equal(f.close_code, 1000);
    assert_int_equal(wsp_it_expect_eof(&c[0], T), 0);
    wsp_it_close(&c[0]);
    int64_t deadline = wsp_it_now_ms() + T;
    int rv;
    do {
        rv = wsp_it_ws_connect(&c[0], srv->port, "/", T);
        if (rv != 0)
            wsp_it_sleep_ms(20);
    } while (rv != 0 && wsp_it_now_ms() < deadline);
    assert_int_equal(rv, 0);
    for (int i = 0; i < 3; i++)
        wsp_it_close(&c[i]);
    assert_int_equal(wsp_it_server_stop(srv), 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_error_statuses, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_handshake_timeout, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_handshake_within_timeout, wsp_it_fixture_setup,
                                    wsp_it_fixture_teardown),
    cmocka_unit_test_setup_teardown(test_max_conns, wsp_it_fixture_setup, wsp_it_fixture_teardown),
};
WSP_IT_SUITE(tests, NULL, NULL);
