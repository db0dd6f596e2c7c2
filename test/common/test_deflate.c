/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "deflate.h"
#include "frame.h"
#include "sample_json.h"

static wsp_deflate_t *z;

static int setup(void **state)
{
    (void)state;
    z = wsp_deflate_new(WSP_DEFLATE_LEVEL);
    return z == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    wsp_deflate_free(z);
    return 0;
}

/* A frame's header length and payload length (unmasked server frames). */
static size_t frame_hdr(const wsp_msg_t *m, size_t *plen)
{
    const uint8_t *b = m->bytes;
    size_t l7 = b[1] & 0x7Fu, h = 2;
    if (l7 < 126) {
        *plen = l7;
        return h;
    }
    size_t ext = l7 == 126 ? 2 : 8;
    *plen = 0;
    for (size_t i = 0; i < ext; i++)
        *plen = *plen << 8 | b[2 + i];
    return h + ext;
}

/* Compresses p[0..len) into a frame, checks its header and returns a malloc'd copy of the
 * compressed payload, its length in *clen. */
static uint8_t *compress_payload(const void *p, size_t len, size_t *clen)
{
    wsp_msg_t *m = NULL;
    assert_int_equal(wsp_deflate_frame(z, WSP_OP_TEXT, p, len, &m), 0);
    assert_non_null(m);
    assert_int_equal(wsp_msg_refs(m), 1);
    assert_int_equal(m->bytes[0], 0x80u | WSP_FRAME_RSV1 | WSP_OP_TEXT); /* FIN, RSV1, text */
    assert_int_equal(m->bytes[1] & 0x80u, 0);                            /* unmasked */
    size_t h = frame_hdr(m, clen);
    assert_int_equal(h + *clen, m->len);
    uint8_t *c = malloc(*clen ? *clen : 1);
    assert_non_null(c);
    memcpy(c, m->bytes + h, *clen);
    wsp_msg_unref(m);
    return c;
}

/* Inflates c[0..clen) as RFC 7692 section 7.2.2 says a receiver does, with zlib (window
 * 2^bits), handing it at most step output bytes per call so that back-references go through
 * zlib's window of 2^bits bytes. Returns the length or -1 if zlib fails. */
static long zlib_inflate(const uint8_t *c, size_t clen, unsigned bits, uint8_t *out, size_t cap,
                         size_t step)
{
    z_stream s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(inflateInit2(&s, -(int)bits), Z_OK);
    uint8_t *in = malloc(clen + 4);
    assert_non_null(in);
    memcpy(in, c, clen);
    memcpy(in + clen, "\x00\x00\xff\xff", 4);
    s.next_in = in;
    s.avail_in = (uInt)(clen + 4);
    long rv = 0;
    while (s.avail_in > 0) {
        size_t room = cap - s.total_out;
        s.next_out = out + s.total_out;
        s.avail_out = (uInt)(room < step ? room : step);
        int r = inflate(&s, Z_SYNC_FLUSH);
        if (r == Z_STREAM_END)
            break; /* a BFINAL block: what follows is the 7.2.1 empty block */
        if (r != Z_OK || (s.avail_out > 0 && s.avail_in > 0)) { /* Z_BUF_ERROR: over cap */
            rv = -1;
            break;
        }
    }
    if (rv == 0)
        rv = (long)s.total_out;
    inflateEnd(&s);
    free(in);
    return rv;
}

/* Compresses with zlib as most clients do (sync flush, tail removed, RFC 7692 7.2.1). */
static uint8_t *zlib_compress(const uint8_t *p, size_t len, size_t *clen)
{
    z_stream s;
    memset(&s, 0, sizeof(s));
    assert_int_equal(deflateInit2(&s, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&s, len) + 16;
    uint8_t *c = malloc(cap);
    assert_non_null(c);
    s.next_in = (uint8_t *)p;
    s.avail_in = (uInt)len;
    s.next_out = c;
    s.avail_out = (uInt)cap;
    assert_int_equal(deflate(&s, Z_SYNC_FLUSH), Z_OK);
    assert_int_equal(s.avail_in, 0);
    *clen = s.total_out;
    assert_true(*clen >= 4);
    assert_memory_equal(c + *clen - 4, "\x00\x00\xff\xff", 4);
    *clen -= 4;
    deflateEnd(&s);
    return c;
}

/* Inflates c[0..clen) with wsp_deflate_inflate() into a buffer of exactly cap bytes (so that
 * ASan sees a write past it). */
static int our_inflate(const uint8_t *c, size_t clen, size_t cap, uint8_t **out, size_t *olen)
{
    *out = malloc(cap ? cap : 1);
    assert_non_null(*out);
    return wsp_deflate_inflate(z, c, clen, *out, cap, olen);
}

static void test_new(void **state)
{
    (void)state;
    assert_null(wsp_deflate_new(-1));
    assert_null(wsp_deflate_new(13));
    wsp_deflate_free(NULL);
    wsp_deflate_t *d = wsp_deflate_new(0); /* inflate only */
    assert_non_null(d);
    wsp_msg_t *m = (wsp_msg_t *)(uintptr_t)1; /* must be reset to NULL */
    assert_int_equal(wsp_deflate_frame(d, WSP_OP_TEXT, "x", 1, &m), -EINVAL);
    assert_null(m);
    uint8_t out[8];
    size_t n;
    assert_int_equal(wsp_deflate_inflate(d, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7, out,
                                         sizeof(out), &n),
                     0);
    assert_int_equal(n, 5);
    assert_memory_equal(out, "Hello", 5);
    wsp_deflate_free(d);
    for (int level = 1; level <= 12; level++) {
        d = wsp_deflate_new(level);
        assert_non_null(d);
        assert_int_equal(wsp_deflate_frame(d, WSP_OP_BINARY, "x", 1, &m), 0);
        assert_int_equal(m->bytes[0], 0x80u | WSP_FRAME_RSV1 | WSP_OP_BINARY);
        wsp_msg_unref(m);
        wsp_deflate_free(d);
    }
}

/* Control frames are never compressed (RFC 7692 section 6.1). */
static void test_control_opcodes(void **state)
{
    (void)state;
    const unsigned ops[] = {WSP_OP_CONT, WSP_OP_CLOSE, WSP_OP_PING, WSP_OP_PONG, 0x3, 0xF};
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        wsp_msg_t *m = NULL;
        assert_int_equal(wsp_deflate_frame(z, ops[i], "x", 1, &m), -EINVAL);
        assert_null(m);
    }
}

/* libdeflate ends each stream with a BFINAL=1 block (RFC 7692 section 7.2.3.4), then 7.2.1's
 * empty stored block minus its 00 00 ff ff leaves one zero byte. Inputs as short as "Hello"
 * libdeflate stores as they are (7.2.3.3's stored block, with BFINAL set); longer ones get a
 * compressed block, here one dynamic-Huffman block (BFINAL=1, BTYPE=10: low bits 101). */
static void test_hello(void **state)
{
    (void)state;
    wsp_msg_t *m = NULL;
    assert_int_equal(wsp_deflate_frame(z, WSP_OP_TEXT, "Hello", 5, &m), 0);
    assert_int_equal(m->len, 13);
    assert_memory_equal(m->bytes,
                        "\xc1\x0b\x01\x05\x00\xfa\xff"
                        "Hello"
                        "\x00",
                        13);
    wsp_msg_unref(m);
    static char json[4096];
    size_t jlen = wsp_sample_json(json, sizeof(json), 1750, 1), clen;
    uint8_t *c = compress_payload(json, jlen, &clen);
    assert_int_equal(c[0] & 7, 5);
    assert_int_equal(c[clen - 1], 0x00);
    free(c);
}

/* An empty message compresses to the single octet 0x00 (section 7.2.3.6). */
static void test_empty(void **state)
{
    (void)state;
    wsp_msg_t *m = NULL;
    assert_int_equal(wsp_deflate_frame(z, WSP_OP_TEXT, NULL, 0, &m), 0);
    assert_int_equal(m->len, 3);
    assert_memory_equal(m->bytes, "\xc1\x01\x00", 3);
    wsp_msg_unref(m);
    uint8_t out[1];
    size_t n = 99;
    assert_int_equal(wsp_deflate_inflate(z, (const uint8_t *)"\x00", 1, out, 0, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(zlib_inflate((const uint8_t *)"\x00", 1, 15, out, 0, 1), 0);
    /* No payload at all is not DEFLATE: not even the header bits of a block. */
    assert_int_equal(wsp_deflate_inflate(z, (const uint8_t *)"", 0, out, sizeof(out), &n),
                     -EBADMSG);
}

/* The payload examples of RFC 7692 section 7.2.3, inflated. */
static void test_rfc_examples(void **state)
{
    (void)state;
    static const struct {
        const char *c;
        size_t len;
    } ex[] = {
        {"\xf2\x48\xcd\xc9\xc9\x07\x00", 7},                  /* 7.2.3.1 */
        {"\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 11}, /* 7.2.3.3 */
        {"\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8},              /* 7.2.3.4 */
        {"\xf3\x48\xcd\xc9\xc9\x07\x00", 7}, /* BFINAL, empty block dropped whole */
        {"\xf2\x48\x05\x00\x00\x00\xff\xff\xca\xc9\xc9\x07\x00", 13}, /* 7.2.3.5 */
    };
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        uint8_t *out;
        size_t n;
        assert_int_equal(our_inflate((const uint8_t *)ex[i].c, ex[i].len, 5, &out, &n), 0);
        assert_int_equal(n, 5);
        assert_memory_equal(out, "Hello", 5);
        free(out);
    }
    /* 7.2.3.2's second message refers back into the first: with no context takeover there is
     * nothing to refer to. */
    uint8_t *out;
    size_t n;
    assert_int_equal(our_inflate((const uint8_t *)"\xf2\x00\x11\x00\x00", 5, 64, &out, &n),
                     -EBADMSG);
    free(out);
}

/* Round trips both ways against zlib: our frames inflate with zlib as the RFC describes, and
 * zlib's sync-flushed messages (most clients') inflate with ours. */
static void test_zlib_round_trips(void **state)
{
    (void)state;
    static char json[70000];
    size_t jlen = wsp_sample_json(json, sizeof(json), 65536 - 512, 7);
    uint8_t *rnd = malloc(65536);
    assert_non_null(rnd);
    uint32_t s = 12345;
    for (size_t i = 0; i < 65536; i++) {
        s = s * 1664525u + 1013904223u;
        rnd[i] = (uint8_t)(s >> 24);
    }
    const struct {
        const uint8_t *p;
        size_t len;
    } cases[] = {{(const uint8_t *)"x", 1},
                 {(const uint8_t *)json, 125},
                 {(const uint8_t *)json, 2048},
                 {(const uint8_t *)json, jlen}, /* ~64 KiB */
                 {rnd, 4096},
                 {rnd, 65536}}; /* incompressible: a compressed frame over 65535 bytes */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = cases[i].len, clen;
        uint8_t *c = compress_payload(cases[i].p, len, &clen);
        uint8_t *out = malloc(len + 1);
        assert_non_null(out);
        assert_int_equal(zlib_inflate(c, clen, 15, out, len + 1, len + 1), (long)len);
        assert_memory_equal(out, cases[i].p, len);
        free(out);
        size_t n;
        assert_int_equal(our_inflate(c, clen, len, &out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, cases[i].p, len);
        free(out);
        free(c);

        c = zlib_compress(cases[i].p, len, &clen);
        assert_int_equal(our_inflate(c, clen, len, &out, &n), 0); /* fills out exactly */
        assert_int_equal(n, len);
        assert_memory_equal(out, cases[i].p, len);
        free(out);
        assert_int_equal(our_inflate(c, clen, len - 1, &out, &n), -EMSGSIZE);
        free(out);
        free(c);
    }
    free(rnd);
}

/* The inflated size is bounded exactly: cap bytes pass, cap - 1 do not. */
static void test_exact_bound(void **state)
{
    (void)state;
    static char json[8192];
    size_t jlen = wsp_sample_json(json, sizeof(json), 4096, 3);
    for (size_t len = 4090; len <= 4096 && len <= jlen; len++) {
        size_t clen, n;
        uint8_t *c = compress_payload(json, len, &clen), *out;
        assert_int_equal(our_inflate(c, clen, len, &out, &n), 0);
        assert_int_equal(n, len);
        assert_memory_equal(out, json, len);
        free(out);
        assert_int_equal(our_inflate(c, clen, len - 1, &out, &n), -EMSGSIZE);
        free(out);
        free(c);
    }
}

/* libdeflate's allocations, counted while a bomb is inflated. */
static size_t lib_allocs;

static void *on_lib_malloc(size_t n)
{
    lib_allocs++;
    return malloc(n);
}

/* 1 MiB of zeros compresses to ~1 KiB; inflating it against a 4 KiB bound stops at the bound
 * with -EMSGSIZE, in the caller's 4 KiB, allocating nothing. */
static void test_bomb(void **state)
{
    (void)state;
    size_t big = (size_t)1 << 20, clen;
    uint8_t *zeros = calloc(1, big);
    assert_non_null(zeros);
    uint8_t *c = compress_payload(zeros, big, &clen);
    free(zeros);
    assert_true(clen < 4096);
    size_t before = lib_allocs, n = 99;
    uint8_t *out;
    assert_int_equal(our_inflate(c, clen, 4096, &out, &n), -EMSGSIZE);
    assert_int_equal(n, 0);
    assert_int_equal(lib_allocs, before);
    free(out);
    /* zlib's own sync-flushed bomb too. */
    zeros = calloc(1, big);
    assert_non_null(zeros);
    free(c);
    c = zlib_compress(zeros, big, &clen);
    free(zeros);
    assert_int_equal(our_inflate(c, clen, 4096, &out, &n), -EMSGSIZE);
    free(out);
    free(c);
}

static void test_corrupt(void **state)
{
    (void)state;
    static const struct {
        const char *c;
        size_t len;
    } bad[] = {
        {"\xff", 1},                                 /* BTYPE 11 is reserved */
        {"\x07\x00", 2},                             /* BTYPE 11 again, BFINAL set */
        {"\x00\x05\x00\xfa\xfe\x48\x65", 7},         /* stored LEN and NLEN disagree */
        {"\x00\x05\x00\xfa\xff\x48\x65", 7},         /* stored block cut short */
        {"\xf2\x48\xcd\xc9\xc9\x07\x00\x12\x34", 9}, /* garbage after the block */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint8_t *out;
        size_t n;
        assert_int_equal(our_inflate((const uint8_t *)bad[i].c, bad[i].len, 4096, &out, &n),
                         -EBADMSG);
        free(out);
    }
    /* A real message cut in half. */
    static char json[4096];
    size_t jlen = wsp_sample_json(json, sizeof(json), 2000, 5), clen, n;
    uint8_t *c = compress_payload(json, jlen, &clen), *out;
    assert_int_equal(our_inflate(c, clen / 2, 4096, &out, &n), -EBADMSG);
    free(out);
    free(c);
}

/* server_max_window_bits=N is honoured by compressing only payloads of at most 2^N bytes
 * (wsp_pmd_fits()): a stream that short cannot refer back farther than 2^N - 1 bytes. zlib
 * inflates them with a 2^N-byte window, one output byte per call so that every
 * back-reference goes through that window. The control case shows the rule is needed:
 * libdeflate refers 650 bytes back in a 1200-byte payload, which a 2^8 window refuses. */
static void test_window_bits(void **state)
{
    (void)state;
    uint8_t *p = malloc(32768), *out = malloc(32768 + 1);
    assert_non_null(p);
    assert_non_null(out);
    uint32_t s = 99;
    for (unsigned bits = 8; bits <= 15; bits++) {
        size_t len = (size_t)1 << bits;
        /* Random letters (4 bits each, so that a compressed block always pays), with a
         * 64-byte run copied from the start to the end: the longest distance allowed. */
        for (size_t i = 0; i < len; i++) {
            s = s * 1664525u + 1013904223u;
            p[i] = (uint8_t)('a' + (s >> 24) % 16);
        }
        memcpy(p + len - 64, p, 64);
        size_t clen;
        uint8_t *c = compress_payload(p, len, &clen);
        assert_true(clen < len); /* the copy was found */
        assert_int_equal(zlib_inflate(c, clen, bits, out, len + 1, 1), (long)len);
        assert_memory_equal(out, p, len);
        free(c);
    }
    size_t len = 1200, clen;
    for (size_t i = 0; i < len; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (uint8_t)('a' + (s >> 24) % 16);
    }
    memcpy(p + 650, p, 500);
    uint8_t *c = compress_payload(p, len, &clen);
    assert_true(clen < len - 500);
    assert_int_equal(zlib_inflate(c, clen, 15, out, len + 1, 1), (long)len);
    assert_int_equal(zlib_inflate(c, clen, 8, out, len + 1, 1), -1);
    free(c);
    free(p);
    free(out);
}

int main(void)
{
    /* Before any libdeflate object exists, as libdeflate requires. */
    libdeflate_set_memory_allocator(on_lib_malloc, free);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new),          cmocka_unit_test(test_control_opcodes),
        cmocka_unit_test(test_hello),        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_rfc_examples), cmocka_unit_test(test_zlib_round_trips),
        cmocka_unit_test(test_exact_bound),  cmocka_unit_test(test_bomb),
        cmocka_unit_test(test_corrupt),      cmocka_unit_test(test_window_bits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
