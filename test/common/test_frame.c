/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "msg.h"

/* Payload lengths around each RFC 6455 length-encoding switch, and the header size each needs
 * unmasked. */
static const struct {
    uint64_t len;
    size_t hdr;
} cases[] = {{0, 2}, {125, 2}, {126, 4}, {65535, 4}, {65536, 10}};

static const uint8_t key[4] = {0xA1, 0xB2, 0xC3, 0xD4};

/* Reads the payload length back from an unmasked or masked header. */
static uint64_t header_len(const uint8_t *h)
{
    uint64_t l7 = h[1] & 0x7Fu;
    if (l7 < 126)
        return l7;
    size_t ext = l7 == 126 ? 2 : 8;
    uint64_t len = 0;
    for (size_t i = 0; i < ext; i++)
        len = len << 8 | h[2 + i];
    return len;
}

static void test_header_unmasked(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t h[WSP_FRAME_HDR_MAX];
        memset(h, 0xEE, sizeof(h));
        size_t n = wsp_frame_header(h, WSP_OP_TEXT, cases[i].len, NULL);
        assert_int_equal(n, cases[i].hdr);
        assert_int_equal(h[0], 0x81); /* FIN + text, no RSV */
        assert_int_equal(h[1] & 0x80, 0);
        assert_int_equal(header_len(h), cases[i].len);
        assert_int_equal(h[n], 0xEE); /* nothing written past the header */
    }
    uint8_t h[WSP_FRAME_HDR_MAX];
    assert_int_equal(wsp_frame_header(h, WSP_OP_BINARY, 126, NULL), 4);
    assert_memory_equal(h, "\x82\x7E\x00\x7E", 4);
    assert_int_equal(wsp_frame_header(h, WSP_OP_CLOSE, 65535, NULL), 4);
    assert_memory_equal(h, "\x88\x7E\xFF\xFF", 4);
    assert_int_equal(wsp_frame_header(h, WSP_OP_PING, 65536, NULL), 10);
    assert_memory_equal(h, "\x89\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(wsp_frame_header(h, WSP_OP_PONG, 125, NULL), 2);
    assert_memory_equal(h, "\x8A\x7D", 2);
}

static void test_header_masked(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t h[WSP_FRAME_HDR_MAX];
        size_t n = wsp_frame_header(h, WSP_OP_BINARY, cases[i].len, key);
        assert_int_equal(n, cases[i].hdr + 4);
        assert_int_equal(h[0], 0x82);
        assert_int_equal(h[1] & 0x80, 0x80);
        assert_int_equal(header_len(h), cases[i].len);
        assert_memory_equal(h + n - 4, key, 4); /* the key ends the header */
    }
}

static void test_mask_round_trip(void **state)
{
    (void)state;
    uint8_t orig[37], p[37];
    for (size_t i = 0; i < sizeof(orig); i++)
        orig[i] = (uint8_t)(i * 31 + 5);
    memcpy(p, orig, sizeof(p));
    wsp_frame_mask(p, sizeof(p), key, 0);
    for (size_t i = 0; i < sizeof(p); i++)
        assert_int_equal(p[i], orig[i] ^ key[i % 4]);
    /* Unmasking in pieces continues the key from each piece's offset. */
    wsp_frame_mask(p, 7, key, 0);
    wsp_frame_mask(p + 7, 10, key, 7);
    wsp_frame_mask(p + 17, sizeof(p) - 17, key, 17);
    assert_memory_equal(p, orig, sizeof(p));
    wsp_frame_mask(p, 0, key, 3); /* empty: touches nothing */
    assert_memory_equal(p, orig, sizeof(p));
}

static void test_msg(void **state)
{
    (void)state;
    uint8_t *pl = malloc(65536);
    assert_non_null(pl);
    for (size_t i = 0; i < 65536; i++)
        pl[i] = (uint8_t)(i ^ (i >> 8));
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = (size_t)cases[i].len;
        wsp_msg_t *m = wsp_frame_msg(WSP_OP_TEXT, len ? pl : NULL, len);
        assert_non_null(m);
        assert_int_equal(wsp_msg_refs(m), 1); /* the caller's reference only */
        assert_int_equal(m->len, cases[i].hdr + len);
        uint8_t h[WSP_FRAME_HDR_MAX];
        size_t n = wsp_frame_header(h, WSP_OP_TEXT, len, NULL);
        assert_memory_equal(m->bytes, h, n);
        if (len)
            assert_memory_equal(m->bytes + n, pl, len);
        wsp_msg_unref(m);
    }
    free(pl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_unmasked),
        cmocka_unit_test(test_header_masked),
        cmocka_unit_test(test_mask_round_trip),
        cmocka_unit_test(test_msg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
