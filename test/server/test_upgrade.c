#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upgrade.h"

/* The RFC 6455 §1.3 handshake, with a query added. The RFC gives the SHA-1 as b3 7a 4f 2c c0 62
 * 4f 16 90 f6 46 06 cf 38 59 45 b2 be c4 ea, whose base64 is ACCEPT. */
#define KEY "dGhlIHNhbXBsZSBub25jZQ=="
#define ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
static const char valid[] = "GET /chat?room=1&x=2 HTTP/1.1\r\n"
                            "Host: server.example.com\r\n"
                            "Upgrade: websocket\r\n"
                            "Connection: Upgrade\r\n"
                            "Sec-WebSocket-Key: " KEY "\r\n"
                            "Origin: http://example.com\r\n"
                            "Sec-WebSocket-Version: 13\r\n"
                            "\r\n";

/* The copy the last parse_n() read: req points into it, so it lives until the next call. */
static uint8_t *last;

/* Parses exactly len bytes from a heap copy, so ASan catches any read past what arrived. */
static int parse_n(const void *s, size_t len, wsp_upgrade_req_t *req, int *status)
{
    free(last);
    last = malloc(len > 0 ? len : 1);
    assert_non_null(last);
    memcpy(last, s, len);
    *status = 0;
    return wsp_upgrade_parse(last, len, req, status);
}

static int teardown(void **state)
{
    (void)state;
    free(last);
    last = NULL;
    return 0;
}

static int parse(const char *s, wsp_upgrade_req_t *req, int *status)
{
    return parse_n(s, strlen(s), req, status);
}

/* The status a complete request s is answered with, or 101 if it is accepted. */
static int status_of(const char *s)
{
    wsp_upgrade_req_t req;
    int status;
    int rv = parse(s, &req, &status);
    if (rv == (int)strlen(s))
        return 101;
    assert_int_equal(rv, -EBADMSG);
    return status;
}

/* A request from its request line and fields; NULL leaves a field out. */
static const char *build(const char *line, const char *host, const char *upgrade,
                         const char *connection, const char *key, const char *version)
{
    static char b[2048];
    int n = snprintf(b, sizeof(b), "%s\r\n", line);
    if (host != NULL)
        n += snprintf(b + n, sizeof(b) - (size_t)n, "Host: %s\r\n", host);
    if (upgrade != NULL)
        n += snprintf(b + n, sizeof(b) - (size_t)n, "Upgrade: %s\r\n", upgrade);
    if (connection != NULL)
        n += snprintf(b + n, sizeof(b) - (size_t)n, "Connection: %s\r\n", connection);
    if (key != NULL)
        n += snprintf(b + n, sizeof(b) - (size_t)n, "Sec-WebSocket-Key: %s\r\n", key);
    if (version != NULL)
        n += snprintf(b + n, sizeof(b) - (size_t)n, "Sec-WebSocket-Version: %s\r\n", version);
    snprintf(b + n, sizeof(b) - (size_t)n, "\r\n");
    return b;
}

#define LINE "GET / HTTP/1.1"
#define OK_REQ(line) build(line, "h", "websocket", "Upgrade", KEY, "13")

static void test_accept_rfc_example(void **state)
{
    (void)state;
    char out[WSP_UPGRADE_ACCEPT_LEN + 1];
    memset(out, 'x', sizeof(out));
    assert_int_equal(wsp_upgrade_accept(KEY, strlen(KEY), out), 0);
    assert_string_equal(out, ACCEPT);
}

static void test_parse_valid(void **state)
{
    (void)state;
    wsp_upgrade_req_t req;
    int status;
    assert_int_equal(parse(valid, &req, &status), (int)strlen(valid));
    assert_int_equal(req.path_len, 5);
    assert_memory_equal(req.path, "/chat", 5);
    assert_int_equal(req.query_len, 10);
    assert_memory_equal(req.query, "room=1&x=2", 10);
    assert_int_equal(req.key_len, 24);
    assert_memory_equal(req.key, KEY, 24);
}

static void test_parse_byte_by_byte(void **state)
{
    (void)state;
    size_t n = strlen(valid);
    wsp_upgrade_req_t req;
    int status;
    for (size_t i = 0; i < n; i++)
        assert_int_equal(parse_n(valid, i, &req, &status), -EAGAIN);
    assert_int_equal(parse_n(valid, n, &req, &status), (int)n);
}

static void test_parse_leaves_trailing_bytes(void **state)
{
    (void)state;
    char b[sizeof(valid) + 8];
    size_t n = strlen(valid);
    memcpy(b, valid, n);
    memcpy(b + n, "\x81\x85\x37\xfa\x21\x3d\x7f\x9f", 8); /* a client's first frame, pipelined */
    wsp_upgrade_req_t req;
    int status;
    assert_int_equal(parse_n(b, n + 8, &req, &status), (int)n);
    assert_memory_equal(req.key, KEY, 24);
}

static void test_parse_bare_lf_lenient(void **state)
{
    (void)state;
    assert_int_equal(status_of("GET / HTTP/1.1\nHost: h\nUpgrade: websocket\nConnection: upgrade\n"
                               "Sec-WebSocket-Key: " KEY "\nSec-WebSocket-Version: 13\n\n"),
                     101);
}

static void test_parse_case_and_ows(void **state)
{
    (void)state;
    assert_int_equal(status_of("GET / HTTP/1.1\r\nhOsT:h\r\nUPGRADE: \tWebSocket \r\n"
                               "connection:UPGRADE\r\nsec-websocket-key:   " KEY "\t \r\n"
                               "SEC-WEBSOCKET-VERSION:13  \r\n\r\n"),
                     101);
    wsp_upgrade_req_t req;
    int status;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key:   " KEY "  \r\nSec-WebSocket-Version: 13\r\n\r\n",
                      &req, &status) > 0);
    assert_int_equal(req.key_len, 24); /* trimmed */
    assert_memory_equal(req.key, KEY, 24);
}

/* Token auth's headers (issue #16): the last value of each, trimmed, and how many came. */
static void test_auth_headers(void **state)
{
    (void)state;
    wsp_upgrade_req_t req;
    int status;
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"
                      "authorization:  Bearer a.b.c \r\nCookie: x=1; wspush_token=t\r\n\r\n",
                      &req, &status) > 0);
    assert_int_equal(req.authorization_count, 1);
    assert_int_equal(req.authorization_len, 12);
    assert_memory_equal(req.authorization, "Bearer a.b.c", 12);
    assert_int_equal(req.cookie_count, 1);
    assert_int_equal(req.cookie_len, 19);
    assert_memory_equal(req.cookie, "x=1; wspush_token=t", 19);
    assert_true(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"
                      "Cookie: a\r\nCookie: b\r\nCookie: c\r\n\r\n",
                      &req, &status) > 0);
    assert_int_equal(req.authorization_count, 0);
    assert_null(req.authorization);
    assert_int_equal(req.cookie_count, 2); /* saturates: two is already ambiguous */
    assert_memory_equal(req.cookie, "c", 1);
}

static void test_method(void **state)
{
    (void)state;
    assert_int_equal(status_of(OK_REQ("POST / HTTP/1.1")), 405);
    assert_int_equal(status_of(OK_REQ("get / HTTP/1.1")), 405); /* methods are case-sensitive */
    /* 405 outranks the missing fields, but not a broken request line or field. */
    assert_int_equal(status_of(build("PUT /x HTTP/1.1", NULL, NULL, NULL, NULL, NULL)), 405);
    assert_int_equal(status_of(OK_REQ("POST  / HTTP/1.1")), 400);
    assert_int_equal(status_of("POST / HTTP/1.1\r\nBroken\r\n\r\n"), 400);
}

static void test_version(void **state)
{
    (void)state;
    assert_int_equal(status_of(OK_REQ("GET / HTTP/1.0")), 400);
    assert_int_equal(status_of(OK_REQ("GET / HTTP/2.0")), 400);
    assert_int_equal(status_of(OK_REQ("GET / HTTP/1.10")), 400);
    assert_int_equal(status_of(OK_REQ("GET / http/1.1")), 400);
    assert_int_equal(status_of(OK_REQ("GET /")), 400);
}

static void test_host(void **state)
{
    (void)state;
    assert_int_equal(status_of(build(LINE, NULL, "websocket", "Upgrade", KEY, "13")), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n"),
                     400);
}

static void test_upgrade_header(void **state)
{
    (void)state;
    assert_int_equal(status_of(build(LINE, "h", NULL, "Upgrade", KEY, "13")), 400);
    assert_int_equal(status_of(build(LINE, "h", "h2c", "Upgrade", KEY, "13")), 400);
    assert_int_equal(status_of(build(LINE, "h", "websockets", "Upgrade", KEY, "13")), 400);
    assert_int_equal(status_of(build(LINE, "h", "WebSocket", "Upgrade", KEY, "13")), 101);
    assert_int_equal(status_of(build(LINE, "h", "foo/2, websocket", "Upgrade", KEY, "13")), 101);
}

static void test_connection_header(void **state)
{
    (void)state;
    assert_int_equal(status_of(build(LINE, "h", "websocket", NULL, KEY, "13")), 400);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "keep-alive", KEY, "13")), 400);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "upgraded", KEY, "13")), 400);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "keep-alive, Upgrade", KEY, "13")),
                     101);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "upgrade,keep-alive", KEY, "13")),
                     101);
    assert_int_equal(status_of(build(LINE, "h", "websocket", " , ,Upgrade,", KEY, "13")), 101);
}

static void test_key(void **state)
{
    (void)state;
    const char *bad[] = {
        "not base64 at all!!!!!==", "dGhlIHNhbXBsZQ==", /* 10 bytes */
        "dGhlIHNhbXBsZSBub25jZSEh",                     /* 18 bytes, no padding */
        "dGhlIHNhbXBsZSBub25jZ===", "dGhlIHNhbXBsZSBub25j*Q==", "dGhlIHNhbXBsZSBub25jZQ==dGhl", "",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(status_of(build(LINE, "h", "websocket", "Upgrade", bad[i], "13")), 400);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "Upgrade", NULL, "13")), 400);
    assert_int_equal(status_of("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                               "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n"),
                     400);
    /* A bad key is a 400 even when the version would earn a 426. */
    assert_int_equal(status_of(build(LINE, "h", "websocket", "Upgrade", "x", "8")), 400);
}

static void test_ws_version(void **state)
{
    (void)state;
    assert_int_equal(status_of(build(LINE, "h", "websocket", "Upgrade", KEY, "8")), 426);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "Upgrade", KEY, NULL)), 426);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "Upgrade", KEY, "13, 8")), 426);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "Upgrade", KEY, "130")), 426);
    assert_int_equal(status_of(build(LINE, "h", "websocket", "Upgrade", KEY, "")), 426);
}

static void test_too_large(void **state)
{
    (void)state;
    static char b[WSP_UPGRADE_MAX_HEADER + 512];
    size_t n = strlen(valid) - 2; /* without the final CR LF */
    memcpy(b, valid, n);
    memcpy(b + n, "X-Pad: ", 7); /* one huge field: the size limit, not the field count */
    memset(b + n + 7, 'a', sizeof(b) - n - 7);
    wsp_upgrade_req_t req;
    int status;
    /* Never terminated: still waiting below the limit, 431 at it. */
    assert_int_equal(parse_n(b, WSP_UPGRADE_MAX_HEADER - 1, &req, &status), -EAGAIN);
    assert_int_equal(parse_n(b, WSP_UPGRADE_MAX_HEADER, &req, &status), -EBADMSG);
    assert_int_equal(status, 431);
    /* Terminated, but one byte past the limit. */
    memcpy(b + WSP_UPGRADE_MAX_HEADER - 3, "\r\n\r\n", 4);
    assert_int_equal(parse_n(b, WSP_UPGRADE_MAX_HEADER + 1, &req, &status), -EBADMSG);
    assert_int_equal(status, 431);
}

static void test_header_block_at_limit(void **state)
{
    (void)state;
    static char b[WSP_UPGRADE_MAX_HEADER];
    size_t n = strlen(valid) - 2;
    memcpy(b, valid, n);
    memcpy(b + n, "X-Pad: ", 7);
    n += 7;
    memset(b + n, 'a', sizeof(b) - n - 4);
    memcpy(b + sizeof(b) - 4, "\r\n\r\n", 4);
    wsp_upgrade_req_t req;
    int status;
    assert_int_equal(parse_n(b, sizeof(b), &req, &status), WSP_UPGRADE_MAX_HEADER);
}

static void test_too_many_fields(void **state)
{
    (void)state;
    static char b[4096];
    size_t n = strlen(valid) - 2;
    memcpy(b, valid, n);
    for (int i = 0; i < 100 - 6; i++) { /* valid has 6 fields: 100 in all */
        memcpy(b + n, "X-A: b\r\n", 8);
        n += 8;
    }
    memcpy(b + n, "\r\n", 2);
    wsp_upgrade_req_t req;
    int status;
    assert_int_equal(parse_n(b, n + 2, &req, &status), (int)n + 2);
    memcpy(b + n, "X-A: b\r\n\r\n", 10);
    assert_int_equal(parse_n(b, n + 10, &req, &status), -EBADMSG);
    assert_int_equal(status, 431);
}

static void test_garbage(void **state)
{
    (void)state;
    wsp_upgrade_req_t req;
    int status;
    assert_int_equal(parse_n("\x00\x01\x02\x03", 4, &req, &status), -EBADMSG);
    assert_int_equal(status, 400);
    assert_int_equal(status_of("hello\r\n\r\n"), 400);
    assert_int_equal(status_of("\r\n"), 400);
    assert_int_equal(status_of("GET / HTTP/1.1 extra\r\nHost: h\r\n\r\n"), 400);
    /* TLS to a plaintext port: rejected from the first bytes, without waiting for 8 KiB. */
    static const uint8_t hello[] = {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01,
                                    0xfc, 0x03, 0x03, 0x5a, 0x0d, 0x0a, 0x0d, 0x0a};
    for (size_t i = 1; i <= sizeof(hello); i++) {
        assert_int_equal(parse_n(hello, i, &req, &status), -EBADMSG);
        assert_int_equal(status, 400);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    const char *bad[] = {
        "GET / HTTP/1.1\r\nHost h\r\n\r\n",              /* no colon */
        "GET / HTTP/1.1\r\nHost : h\r\n\r\n",            /* space in name */
        "GET / HTTP/1.1\r\nX Y: z\r\n\r\n",              /* space in name */
        "GET / HTTP/1.1\r\n: z\r\n\r\n",                 /* empty name */
        "GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",  /* obs-fold */
        "GET / HTTP/1.1\r\nHost: a\x01z\r\n\r\n",        /* control char */
        "GET / HTTP/1.1\r\nHost: a\x7fz\r\n\r\n",        /* DEL */
        "GET / HTTP/1.1\r\nHost: a\rz\r\n\r\n",          /* bare CR */
        "GET chat HTTP/1.1\r\nHost: h\r\n\r\n",          /* not origin-form */
        "GET http://h/chat HTTP/1.1\r\nHost: h\r\n\r\n", /* absolute-form */
        "GET * HTTP/1.1\r\nHost: h\r\n\r\n",             /* asterisk-form */
        "GET /a#frag HTTP/1.1\r\nHost: h\r\n\r\n",       /* fragment */
        "GET /\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n",     /* raw non-ASCII target */
        "GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n",            /* tab as separator */
        " GET / HTTP/1.1\r\nHost: h\r\n\r\n",            /* leading space */
        "G(T / HTTP/1.1\r\nHost: h\r\n\r\n",             /* not a token */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        print_message("case %zu\n", i);
        assert_int_equal(status_of(bad[i]), 400);
    }
}

static void test_query(void **state)
{
    (void)state;
    wsp_upgrade_req_t req;
    int status;
    assert_true(parse(OK_REQ("GET /p HTTP/1.1"), &req, &status) > 0);
    assert_int_equal(req.path_len, 2);
    assert_memory_equal(req.path, "/p", 2);
    assert_null(req.query);
    assert_int_equal(req.query_len, 0);

    assert_true(parse(OK_REQ("GET /p? HTTP/1.1"), &req, &status) > 0);
    assert_int_equal(req.path_len, 2);
    assert_non_null(req.query);
    assert_int_equal(req.query_len, 0);

    assert_true(parse(OK_REQ("GET /?a=b?c HTTP/1.1"), &req, &status) > 0);
    assert_int_equal(req.path_len, 1);
    assert_int_equal(req.query_len, 5);
    assert_memory_equal(req.query, "a=b?c", 5);
}

/* Every single-byte change of a valid request parses to a defined outcome, within bounds. */
static void test_mutations(void **state)
{
    (void)state;
    static const uint8_t vals[] = {0x00, '\r', '\n', ' ', ':', ',', '?', 'A', 0x80, 0xff};
    char b[sizeof(valid)];
    size_t n = strlen(valid);
    for (size_t i = 0; i < n; i++) {
        for (size_t v = 0; v < sizeof(vals); v++) {
            memcpy(b, valid, n);
            b[i] = (char)vals[v];
            for (size_t len = n - 1; len <= n; len++) {
                wsp_upgrade_req_t req;
                int status;
                int rv = parse_n(b, len, &req, &status);
                if (rv > 0) {
                    assert_true((size_t)rv <= len);
                } else if (rv == -EBADMSG) {
                    assert_true(status == 400 || status == 405 || status == 426 || status == 431);
                } else {
                    assert_int_equal(rv, -EAGAIN);
                }
            }
        }
    }
}

static void test_response(void **state)
{
    (void)state;
    char out[256];
    int n = wsp_upgrade_response(KEY, strlen(KEY), NULL, NULL, out, sizeof(out));
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " ACCEPT "\r\n\r\n";
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
    assert_int_equal(wsp_upgrade_response(KEY, strlen(KEY), NULL, NULL, out, strlen(want)),
                     -ENOBUFS);
    assert_int_equal(wsp_upgrade_response(KEY, strlen(KEY), NULL, NULL, out, strlen(want) + 1), n);
    assert_int_equal(wsp_upgrade_response(KEY, strlen(KEY), NULL, "", out, sizeof(out)), n);
    assert_string_equal(out, want);
    /* With the subprotocol chosen (issue #17): one more field, nothing else changes. */
    static const char want_p[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                 "Upgrade: websocket\r\n"
                                 "Connection: Upgrade\r\n"
                                 "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                                 "Sec-WebSocket-Protocol: wspush.v1\r\n\r\n";
    n = wsp_upgrade_response(KEY, strlen(KEY), "wspush.v1", NULL, out, sizeof(out));
    assert_int_equal(n, (int)strlen(want_p));
    assert_string_equal(out, want_p);
    assert_int_equal(wsp_upgrade_response(KEY, strlen(KEY), "wspush.v1", NULL, out, strlen(want_p)),
                     -ENOBUFS);
}

/* Sec-WebSocket-Protocol: every field and every list element counts, the token compares
 * exactly (RFC 6455 sections 4.1, 11.3.4), and other subprotocols are not ours. */
static void test_subprotocols(void **state)
{
    (void)state;
    static const struct {
        const char *fields;
        unsigned want;
    } cases[] = {
        {"", 0},
        {"Sec-WebSocket-Protocol: wspush.v1\r\n", WSP_UPGRADE_SP_WSPUSH_V1},
        {"sec-websocket-protocol:  chat ,wspush.v1 , x\r\n", WSP_UPGRADE_SP_WSPUSH_V1},
        {"Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: wspush.v1\r\n",
         WSP_UPGRADE_SP_WSPUSH_V1},
        {"Sec-WebSocket-Protocol: WSPUSH.V1\r\n", 0},
        {"Sec-WebSocket-Protocol: wspush.v10, wspush\r\n", 0},
        {"Sec-WebSocket-Protocol:\r\n", 0},
        {"X-Sec-WebSocket-Protocol: wspush.v1\r\n", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char b[1024];
        snprintf(b, sizeof(b),
                 "GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
                 cases[i].fields);
        wsp_upgrade_req_t req;
        int status;
        assert_int_equal(parse(b, &req, &status), (int)strlen(b));
        assert_int_equal(req.subprotocols, cases[i].want);
    }
}

/* Extra header lines (a Sec-WebSocket-Extensions answer) go before the empty line. */
static void test_response_extra(void **state)
{
    (void)state;
    char out[256];
    static const char extra[] = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " ACCEPT "\r\n"
                               "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n";
    int n = wsp_upgrade_response(KEY, strlen(KEY), NULL, extra, out, sizeof(out));
    assert_int_equal(n, (int)strlen(want));
    assert_string_equal(out, want);
    assert_int_equal(wsp_upgrade_response(KEY, strlen(KEY), NULL, extra, out, strlen(want)),
                     -ENOBUFS);
    assert_int_equal(wsp_upgrade_response(KEY, strlen(KEY), NULL, extra, out, strlen(want) + 1), n);
}

/* Every Sec-WebSocket-Extensions line, in order, trimmed; names match in any case; the lines
 * past WSP_UPGRADE_EXT_LINES are counted, not kept. */
static void test_extensions(void **state)
{
    (void)state;
    wsp_upgrade_req_t req;
    int status;
    assert_true(parse(valid, &req, &status) > 0);
    assert_int_equal(req.n_ext, 0);
    static const char two[] = "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                              "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                              "Sec-WebSocket-Extensions:  permessage-deflate; x=1 \r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "sec-websocket-EXTENSIONS:\tfoo, bar\r\n"
                              "Sec-WebSocket-Extensions:\r\n\r\n";
    assert_int_equal(parse(two, &req, &status), (int)strlen(two));
    assert_int_equal(req.n_ext, 3);
    assert_int_equal(req.ext_len[0], strlen("permessage-deflate; x=1"));
    assert_memory_equal(req.ext[0], "permessage-deflate; x=1", req.ext_len[0]);
    assert_int_equal(req.ext_len[1], strlen("foo, bar"));
    assert_memory_equal(req.ext[1], "foo, bar", req.ext_len[1]);
    assert_int_equal(req.ext_len[2], 0);

    char many[2048];
    int n = snprintf(many, sizeof(many),
                     "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: " KEY "\r\n"
                     "Sec-WebSocket-Version: 13\r\n");
    for (int i = 0; i < WSP_UPGRADE_EXT_LINES + 3; i++)
        n += snprintf(many + n, sizeof(many) - (size_t)n, "Sec-WebSocket-Extensions: e%d\r\n", i);
    n += snprintf(many + n, sizeof(many) - (size_t)n, "\r\n");
    assert_int_equal(parse(many, &req, &status), n);
    assert_int_equal(req.n_ext, WSP_UPGRADE_EXT_LINES + 3);
    char last_kept[8];
    snprintf(last_kept, sizeof(last_kept), "e%d", WSP_UPGRADE_EXT_LINES - 1);
    assert_int_equal(req.ext_len[WSP_UPGRADE_EXT_LINES - 1], strlen(last_kept));
    assert_memory_equal(req.ext[WSP_UPGRADE_EXT_LINES - 1], last_kept, strlen(last_kept));
}

static void test_errors(void **state)
{
    (void)state;
    static const int statuses[] = {400, 404, 405, 426, 431, 503};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        size_t len = 0;
        const char *r = wsp_upgrade_error(statuses[i], &len);
        assert_non_null(r);
        assert_int_equal(len, strlen(r));
        char start[16];
        snprintf(start, sizeof(start), "HTTP/1.1 %d ", statuses[i]);
        assert_memory_equal(r, start, strlen(start));
        assert_non_null(strstr(r, "\r\nConnection: close"));
        assert_non_null(strstr(r, "\r\nContent-Type: text/plain\r\n"));
        const char *cl = strstr(r, "\r\nContent-Length: ");
        assert_non_null(cl);
        const char *body = strstr(r, "\r\n\r\n");
        assert_non_null(body);
        body += 4;
        assert_int_equal(strtoul(cl + 18, NULL, 10), strlen(body));
        assert_true(strlen(body) > 0);
    }
    size_t len;
    assert_non_null(strstr(wsp_upgrade_error(405, &len), "\r\nAllow: GET\r\n"));
    assert_non_null(strstr(wsp_upgrade_error(426, &len), "\r\nSec-WebSocket-Version: 13\r\n"));
    assert_non_null(strstr(wsp_upgrade_error(503, &len), "\r\nRetry-After: 5\r\n"));
    size_t len400;
    const char *r400 = wsp_upgrade_error(400, &len400);
    assert_ptr_equal(wsp_upgrade_error(999, &len), r400);
    assert_int_equal(len, len400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_rfc_example),
        cmocka_unit_test(test_parse_valid),
        cmocka_unit_test(test_parse_byte_by_byte),
        cmocka_unit_test(test_parse_leaves_trailing_bytes),
        cmocka_unit_test(test_parse_bare_lf_lenient),
        cmocka_unit_test(test_parse_case_and_ows),
        cmocka_unit_test(test_auth_headers),
        cmocka_unit_test(test_method),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_host),
        cmocka_unit_test(test_upgrade_header),
        cmocka_unit_test(test_connection_header),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_ws_version),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_header_block_at_limit),
        cmocka_unit_test(test_too_many_fields),
        cmocka_unit_test(test_garbage),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_query),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_response),
        cmocka_unit_test(test_subprotocols),
        cmocka_unit_test(test_response_extra),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
