/* server/ws.c with permessage-deflate negotiated (issue #19): RSV1 on a data message's first
 * frame means compressed, the message is inflated whole once complete (the 4 KiB limit on the
 * inflated size: 1009; not DEFLATE: 1002; text not UTF-8: 1007), RSV1 anywhere else is 1002,
 * and the shard's one decompressor serves every message. zlib compresses as clients do (raw
 * DEFLATE, sync flush, the 00 00 ff ff tail dropped: RFC 7692 section 7.2.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "frame.h"
#include "ws.h"
#include "ws_test.h"

static wsp_ws_pmd_t pmd;

static int setup(void **state)
{
    (void)state;
    memset(&pmd, 0, sizeof(pmd));
    feed_pmd = &pmd;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wsp_deflate_free(pmd.z);
    memset(&pmd, 0, sizeof(pmd));
    feed_pmd = NULL;
    return 0;
}

/* Compresses p[0..len) as a client's message payload into out; level 0 makes stored blocks.
 * Returns the compressed length. */
static size_t zcompress(uint8_t *out, size_t cap, const void *p, size_t len, int level)
{
    z_stream z = {0};
    assert_int_equal(deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_SYNC_FLUSH), Z_OK);
    assert_int_equal(z.avail_in, 0);
    size_t n = cap - z.avail_out;
    deflateEnd(&z);
    assert_true(n >= 4 && memcmp(out + n - 4, "\x00\x00\xff\xff", 4) == 0);
    return n - 4;
}

/* A client frame with RSV1 set on first byte b0 (FIN and opcode as given). */
static size_t zframe(uint8_t *out, uint8_t b0, const void *z, size_t zlen)
{
    return client_frame(out, (uint8_t)(b0 | WSP_FRAME_RSV1), z, zlen);
}

/* Feeds buf whole, then byte by byte: both take it quietly and end idle. */
static void expect_quiet_both_ways(const uint8_t *buf, size_t len)
{
    expect_quiet_idle(buf, len);
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    for (size_t i = 0; i < len; i++)
        assert_int_equal(feed(&ws, &s, buf + i, 1, NULL), WSP_WS_OK);
    assert_int_equal(s.len, 0);
    assert_null(ws);
}

static void test_compressed_text(void **state)
{
    (void)state;
    static const char msg[] = "{\"subscribe\":\"news\",\"note\":\"hello hello hello hello\"}";
    uint8_t z[256], b[512];
    size_t zn = zcompress(z, sizeof(z), msg, strlen(msg), 6);
    size_t n = zframe(b, 0x81, z, zn);
    expect_quiet_both_ways(b, n);
    assert_int_equal(pmd.inflated, 2);
    wsp_deflate_t *made = pmd.z;
    assert_non_null(made);      /* the shard's decompressor, made on first use */
    n = zframe(b, 0x82, z, zn); /* binary: no UTF-8 rule */
    expect_quiet_idle(b, n);
    assert_ptr_equal(pmd.z, made); /* and kept: no state per connection or message */
    assert_int_equal(pmd.inflated, 3);
    /* Uncompressed messages still pass on a deflate connection, RSV1 being per message. */
    n = client_frame(b, 0x81, msg, strlen(msg));
    expect_quiet_idle(b, n);
    assert_int_equal(pmd.inflated, 3);
    expect_close(b, client_frame(b, 0x81, "\xFF", 1), 1007);
}

static void test_compressed_fragmented(void **state)
{
    (void)state;
    char msg[3000];
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (char)('a' + (i * 7 + i / 13) % 26);
    uint8_t z[4096], b[8192];
    size_t zn = zcompress(z, sizeof(z), msg, sizeof(msg), 6);
    size_t a = zn / 3, c = zn / 2;
    size_t n = zframe(b, 0x01, z, a);              /* RSV1 on the first frame only */
    n += client_frame(b + n, 0x89, "mid", 3);      /* a ping between the fragments */
    n += client_frame(b + n, 0x00, z + a, c - a);  /* continuation, RSV1 clear */
    n += client_frame(b + n, 0x80, z + c, zn - c); /* the final one */
    wsp_ws_t *ws = NULL;
    struct sink s = {0};
    assert_int_equal(feed(&ws, &s, b, n, NULL), WSP_WS_OK);
    assert_one_pong(&s, "mid", 3);
    assert_null(ws);
    assert_int_equal(pmd.inflated, 1);
    for (size_t i = 0; i < n; i++) /* byte by byte: the same */
        assert_int_equal(feed(&ws, &s, b + i, 1, NULL), WSP_WS_OK);
    assert_null(ws);
    assert_int_equal(pmd.inflated, 2);
}

/* The 4 KiB limit is on what a message inflates to; a bomb stops there. */
static void test_bomb(void **state)
{
    (void)state;
    static uint8_t big[1 << 20], z[8192], b[16384];
    size_t zn = zcompress(z, sizeof(z), big, WSP_WS_MAX_MSG, 9);
    expect_quiet_idle(b, zframe(b, 0x82, z, zn)); /* exactly 4 KiB: fine */
    zn = zcompress(z, sizeof(z), big, WSP_WS_MAX_MSG + 1, 9);
    expect_close(b, zframe(b, 0x82, z, zn), 1009);
    zn = zcompress(z, sizeof(z), big, sizeof(big), 9); /* 1 MiB of zeros in ~1 KiB */
    size_t n = zframe(b, 0x82, z, zn);
    expect_close(b, n, 1009);
    expect_close_bytewise(b, n, 1009);
}

/* What may go on the wire: a 4 KiB message in stored blocks (incompressible, or a client that
 * does not compress) fits; the first frame header past WSP_WS_MAX_ZMSG is 1009 at once. */
static void test_wire_limit(void **state)
{
    (void)state;
    static uint8_t msg[WSP_WS_MAX_MSG], z[8192], b[16384];
    uint32_t x = 1;
    for (size_t i = 0; i < sizeof(msg); i++) {
        x = x * 1103515245u + 12345u;
        msg[i] = (uint8_t)(x >> 16);
    }
    size_t zn = zcompress(z, sizeof(z), msg, sizeof(msg), 0);
    assert_true(zn > WSP_WS_MAX_MSG && zn <= WSP_WS_MAX_ZMSG);
    expect_quiet_idle(b, zframe(b, 0x82, z, zn));
    size_t n = zframe(b, 0x82, z, WSP_WS_MAX_ZMSG + 1); /* the header says too long */
    expect_close(b, 4 + 4, 1009);
    expect_close(b, n, 1009);
    /* A plain message keeps its 4 KiB limit on a deflate connection. */
    expect_close(b, client_frame(b, 0x82, z, WSP_WS_MAX_MSG + 1), 1009);
}

static void test_corrupt(void **state)
{
    (void)state;
    uint8_t b[256];
    /* BTYPE 11 (reserved); a stored block whose LEN and NLEN disagree; a Huffman block cut
     * off where the stream cannot end. */
    static const uint8_t reserved[] = {0x07, 0x00};
    static const uint8_t stored_bad[] = {0x00, 0x05, 0x00, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'};
    uint8_t z[128];
    size_t zn = zcompress(z, sizeof(z), "hello hello hello hello", 23, 6);
    expect_close(b, zframe(b, 0x81, reserved, sizeof(reserved)), 1002);
    expect_close(b, zframe(b, 0x81, stored_bad, sizeof(stored_bad)), 1002);
    expect_close(b, zframe(b, 0x82, z, zn / 2), 1002);
    expect_close_bytewise(b, zframe(b, 0x82, reserved, sizeof(reserved)), 1002);
    /* Compressed text that inflates to bad UTF-8. */
    zn = zcompress(z, sizeof(z), "ok\xC3\x28", 4, 6);
    expect_close(b, zframe(b, 0x81, z, zn), 1007);
    zn = zcompress(z, sizeof(z), "ok\xC3\x28", 4, 6);
    expect_quiet_idle(b, zframe(b, 0x82, z, zn)); /* binary: anything goes */
}

/* RSV1 belongs to a data message's first frame; RSV2 and RSV3 to no extension of ours. */
static void test_rsv_rules(void **state)
{
    (void)state;
    uint8_t b[256], z[64];
    size_t zn = zcompress(z, sizeof(z), "abc", 3, 6);
    expect_close(b, zframe(b, 0x89, "p", 1), 1002); /* a compressed ping */
    expect_close(b, zframe(b, 0x8A, "", 0), 1002);  /* pong */
    expect_close(b, zframe(b, 0x88, "\x03\xE8", 2), 1002);
    size_t n = zframe(b, 0x01, z, 1);
    n += zframe(b + n, 0x80, z + 1, zn - 1); /* RSV1 on the continuation */
    expect_close(b, n, 1002);
    expect_close_bytewise(b, n, 1002);
    expect_close(b, client_frame(b, 0xA1, "x", 1), 1002); /* RSV2 */
    expect_close(b, client_frame(b, 0x91, "x", 1), 1002); /* RSV3 */
    expect_close(b, client_frame(b, 0xC1 | 0x20, "x", 1), 1002);
    /* Without the extension, RSV1 is a protocol error like the others. */
    feed_pmd = NULL;
    expect_close(b, zframe(b, 0x81, z, zn), 1002);
    expect_close_bytewise(b, zframe(b, 0x81, z, zn), 1002);
    feed_pmd = &pmd;
    assert_int_equal(pmd.inflated, 0);
}

/* An empty message compressed is one byte, 0x00. */
static void test_empty_compressed(void **state)
{
    (void)state;
    uint8_t b[64], z[16];
    expect_quiet_idle(b, zframe(b, 0x81, "\x00", 1)); /* section 7.2.3.6's empty message */
    size_t zn = zcompress(z, sizeof(z), "", 0, 6);
    expect_quiet_idle(b, zframe(b, 0x81, z, zn)); /* what zlib makes of it: the same */
    assert_int_equal(pmd.inflated, 2);
    /* No byte at all is not DEFLATE (not even a block header): corrupt, like any other. */
    expect_close(b, zframe(b, 0x81, "", 0), 1002);
}

/* Any read boundaries give the same replies and the same inflated count. */
static void test_random_splits_pmd(void **state)
{
    (void)state;
    static uint8_t b[16384], z[4096];
    char text[2000];
    for (size_t i = 0; i < sizeof(text); i++)
        text[i] = (char)('A' + (i * 31 + i / 7) % 26);
    size_t zn = zcompress(z, sizeof(z), text, sizeof(text), 6), n = 0;
    n += zframe(b + n, 0x81, z, zn);
    n += client_frame(b + n, 0x89, "1", 1);
    n += zframe(b + n, 0x02, z, 10);
    n += client_frame(b + n, 0x80, z + 10, zn - 10);
    n += client_frame(b + n, 0x81, "plain", 5);
    n += zframe(b + n, 0x81, "\x07\x00", 2); /* corrupt: 1002 ends it */
    struct sink whole = {0};
    wsp_ws_t *ws = NULL;
    int code = -1;
    assert_int_equal(feed(&ws, &whole, b, n, &code), WSP_WS_CLOSE);
    assert_int_equal(code, 1002);
    wsp_ws_free(ws);
    assert_close_after(&whole, 1, 1002);
    assert_int_equal(pmd.inflated, 2);
    uint32_t seed = 99;
    for (int round = 0; round < 200; round++) {
        struct sink s = {0};
        ws = NULL;
        int rv = WSP_WS_OK;
        for (size_t at = 0; at < n && rv == WSP_WS_OK;) {
            seed = seed * 1103515245u + 12345u;
            size_t k = 1 + (seed >> 16) % (round < 100 ? 9 : 700);
            k = k < n - at ? k : n - at;
            rv = feed(&ws, &s, b + at, k, &code);
            at += k;
        }
        assert_int_equal(rv, WSP_WS_CLOSE);
        assert_int_equal(code, 1002);
        assert_int_equal(s.len, whole.len);
        assert_memory_equal(s.buf, whole.buf, whole.len);
        wsp_ws_free(ws);
    }
    assert_int_equal(pmd.inflated, 2 + 200 * 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_compressed_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compressed_fragmented, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bomb, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rsv_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_compressed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_random_splits_pmd, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
