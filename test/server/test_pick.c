/* server/pick.c: the frame each connection gets from a broadcast. A permessage-deflate
 * connection gets the payload compressed once per broadcast (whichever shard builds it,
 * every shard shares it), or the plain frame when the payload is under --deflate-min-bytes,
 * longer than the window the client allowed, or incompressible; FRAMED_DEFLATE compresses
 * the framed frame of the wspush.v1 builder (a stand-in here: issue #17 brings the real one).
 * zlib inflates what was built. Two shards race for one build (label "threaded"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "bcast.h"
#include "conn.h"
#include "frame.h"
#include "pick.h"

#define XF_DEFLATE(wbits) (WSP_CONN_X_DEFLATE | ((unsigned)((wbits)-8) << WSP_CONN_X_WBITS_SHIFT))

static wsp_shard_stats_t stats[2];
static atomic_int framed_builds;

/* The stand-in for #17's framing: {"framed":<payload>}. */
static wsp_msg_t *build_framed(const wsp_bcast_t *b, void *ctx)
{
    assert_null(ctx);
    atomic_fetch_add(&framed_builds, 1);
    size_t len;
    const uint8_t *p = wsp_bcast_payload(b, &len);
    char *s = malloc(len + 16);
    assert_non_null(s);
    memcpy(s, "{\"framed\":", 10);
    memcpy(s + 10, p, len);
    s[10 + len] = '}';
    wsp_msg_t *m = wsp_frame_msg(WSP_OP_TEXT, s, len + 11);
    free(s);
    return m;
}

static void shard_init(wsp_pick_shard_t *ps, unsigned i, uint32_t min_bytes)
{
    memset(ps, 0, sizeof(*ps));
    memset(&stats[i], 0, sizeof(stats[i]));
    ps->min_bytes = min_bytes;
    ps->stats = &stats[i];
}

/* A JSON-ish payload of len bytes that compresses well. */
static char *payload(size_t len)
{
    char *p = malloc(len + 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = "{\"note\":\"hello, world\",\"n\":12345}"[i % 33];
    return p;
}

static wsp_bcast_t *make(const void *p, size_t len, unsigned shards)
{
    wsp_bcast_t *b;
    assert_int_equal(wsp_bcast_new(&b, NULL, 0, p, len, 1, shards, NULL), 0);
    return b;
}

/* Frees b as the coordinator would once every shard gave it up (no done handle to wake). */
static void reap(wsp_bcast_t *b, unsigned shards)
{
    assert_int_equal(wsp_bcast_cancel(b, shards), 1);
    wsp_bcast_reap(&b, NULL, NULL);
    assert_null(b);
}

/* Asserts m is a compressed text frame that inflates to want[0..len). */
static void assert_inflates_to(const wsp_msg_t *m, const void *want, size_t len)
{
    assert_int_equal(m->bytes[0], 0x80 | WSP_FRAME_RSV1 | WSP_OP_TEXT);
    size_t zlen;
    const uint8_t *z = wsp_bcast_frame_payload(m, &zlen);
    uint8_t *in = malloc(zlen + 4), *out = malloc(len + 1);
    assert_non_null(in);
    assert_non_null(out);
    memcpy(in, z, zlen);
    memcpy(in + zlen, "\x00\x00\xff\xff", 4); /* RFC 7692 section 7.2.2 */
    z_stream s = {0};
    assert_int_equal(inflateInit2(&s, -15), Z_OK);
    s.next_in = in;
    s.avail_in = (uInt)(zlen + 4);
    s.next_out = out;
    s.avail_out = (uInt)(len + 1);
    int rv = inflate(&s, Z_SYNC_FLUSH);
    assert_true(rv == Z_OK || rv == Z_STREAM_END);
    assert_int_equal(len + 1 - s.avail_out, len);
    assert_memory_equal(out, want, len);
    inflateEnd(&s);
    free(in);
    free(out);
}

static void test_plain_and_deflate(void **state)
{
    (void)state;
    wsp_pick_shard_t ps;
    shard_init(&ps, 0, 256);
    char *p = payload(2048);
    wsp_bcast_t *b = make(p, 2048, 1);
    wsp_pick_t pk;
    wsp_pick_begin(&pk, b, &ps);
    wsp_msg_t *plain = wsp_pick_frame(&pk, 0);
    assert_ptr_equal(plain, wsp_bcast_frame(b, WSP_BCAST_PLAIN));
    assert_null(ps.z); /* no compressor until a deflate connection needs one */
    wsp_msg_t *z = wsp_pick_frame(&pk, XF_DEFLATE(15));
    assert_non_null(ps.z);
    assert_ptr_equal(z, wsp_bcast_frame(b, WSP_BCAST_DEFLATE));
    assert_inflates_to(z, p, 2048);
    assert_true(z->len < plain->len / 3);
    /* Every window that holds 2 KiB gets the same frame, built once. */
    for (unsigned w = 11; w <= 15; w++)
        assert_ptr_equal(wsp_pick_frame(&pk, XF_DEFLATE(w)), z);
    assert_int_equal(atomic_load(&stats[0].deflate_builds), 1);
    assert_int_equal(atomic_load(&stats[0].deflate_in_bytes), 2048);
    size_t zlen;
    wsp_bcast_frame_payload(z, &zlen);
    assert_int_equal(atomic_load(&stats[0].deflate_out_bytes), zlen);
    assert_true(atomic_load(&stats[0].deflate_ns) > 0);
    /* Bits above the five that decide are ignored (TLS, auth: other features' bits). */
    assert_ptr_equal(wsp_pick_frame(&pk, XF_DEFLATE(15) | 0xE0u), z);
    assert_ptr_equal(wsp_pick_frame(&pk, 0x60u), plain);
    reap(b, 1);
    free(p);
    wsp_pick_shard_free(&ps);
}

/* A window of 2^w bytes holds payloads up to 2^w: longer ones go plain (wsp_pmd_fits()). */
static void test_window_bits(void **state)
{
    (void)state;
    wsp_pick_shard_t ps;
    shard_init(&ps, 0, 0);
    const size_t lens[] = {511, 512, 513};
    for (size_t i = 0; i < 3; i++) {
        char *p = payload(lens[i]);
        wsp_bcast_t *b = make(p, lens[i], 1);
        wsp_pick_t pk;
        wsp_pick_begin(&pk, b, &ps);
        wsp_msg_t *m9 = wsp_pick_frame(&pk, XF_DEFLATE(9));
        wsp_msg_t *m15 = wsp_pick_frame(&pk, XF_DEFLATE(15));
        assert_inflates_to(m15, p, lens[i]);
        if (lens[i] <= 512)
            assert_ptr_equal(m9, m15);
        else
            assert_ptr_equal(m9, wsp_bcast_frame(b, WSP_BCAST_PLAIN));
        reap(b, 1);
        free(p);
    }
    assert_int_equal(atomic_load(&stats[0].deflate_builds), 3);
    wsp_pick_shard_free(&ps);
}

/* Under --deflate-min-bytes, and for what does not compress, the plain frame. */
static void test_threshold_and_incompressible(void **state)
{
    (void)state;
    wsp_pick_shard_t ps;
    shard_init(&ps, 0, 256);
    char *p = payload(300);
    wsp_bcast_t *b = make(p, 255, 1);
    wsp_pick_t pk;
    wsp_pick_begin(&pk, b, &ps);
    assert_ptr_equal(wsp_pick_frame(&pk, XF_DEFLATE(15)), wsp_bcast_frame(b, WSP_BCAST_PLAIN));
    assert_null(ps.z);
    reap(b, 1);
    b = make(p, 256, 1); /* at the threshold: compressed */
    wsp_pick_begin(&pk, b, &ps);
    assert_inflates_to(wsp_pick_frame(&pk, XF_DEFLATE(15)), p, 256);
    reap(b, 1);
    free(p);

    uint8_t noise[1024];
    uint32_t x = 7;
    for (size_t i = 0; i < sizeof(noise); i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (uint8_t)(x >> 16);
    }
    b = make(noise, sizeof(noise), 1);
    wsp_pick_begin(&pk, b, &ps);
    assert_ptr_equal(wsp_pick_frame(&pk, XF_DEFLATE(15)), wsp_bcast_frame(b, WSP_BCAST_PLAIN));
    assert_null(wsp_bcast_frame(b, WSP_BCAST_DEFLATE)); /* tried once, for every shard */
    assert_int_equal(atomic_load(&stats[0].deflate_builds), 2);
    reap(b, 1);
    wsp_pick_shard_free(&ps);
}

/* FRAMED_DEFLATE compresses the framed frame; without a framing builder it is DEFLATE. */
static void test_framed_deflate(void **state)
{
    (void)state;
    wsp_pick_shard_t ps;
    shard_init(&ps, 0, 256);
    atomic_store(&framed_builds, 0);
    char *p = payload(1000);
    wsp_bcast_t *b = make(p, 1000, 1);
    wsp_pick_t pk;
    wsp_pick_begin(&pk, b, &ps);
    wsp_msg_t *z = wsp_pick_frame(&pk, WSP_BCAST_FRAMED | XF_DEFLATE(15));
    assert_ptr_equal(z, wsp_pick_frame(&pk, XF_DEFLATE(15))); /* no framing yet */
    assert_inflates_to(z, p, 1000);
    assert_ptr_equal(wsp_pick_frame(&pk, WSP_BCAST_FRAMED), wsp_bcast_frame(b, WSP_BCAST_PLAIN));
    reap(b, 1);

    ps.framed = build_framed;
    b = make(p, 1000, 1);
    wsp_pick_begin(&pk, b, &ps);
    wsp_msg_t *framed = wsp_pick_frame(&pk, WSP_BCAST_FRAMED);
    assert_ptr_equal(framed, wsp_bcast_frame(b, WSP_BCAST_FRAMED));
    size_t flen;
    const uint8_t *fp = wsp_bcast_frame_payload(framed, &flen);
    assert_int_equal(flen, 1011);
    wsp_msg_t *fz = wsp_pick_frame(&pk, WSP_BCAST_FRAMED | XF_DEFLATE(15));
    assert_ptr_equal(fz, wsp_bcast_frame(b, WSP_BCAST_FRAMED_DEFLATE));
    assert_inflates_to(fz, fp, flen);
    wsp_msg_t *dz = wsp_pick_frame(&pk, XF_DEFLATE(15));
    assert_ptr_equal(dz, wsp_bcast_frame(b, WSP_BCAST_DEFLATE));
    assert_inflates_to(dz, p, 1000);
    /* The framed payload is 1,011 bytes: a 2^9 window gets it framed but uncompressed. */
    assert_ptr_equal(wsp_pick_frame(&pk, WSP_BCAST_FRAMED | XF_DEFLATE(9)), framed);
    assert_int_equal(atomic_load(&framed_builds), 1);
    reap(b, 1);
    free(p);
    wsp_pick_shard_free(&ps);
}

typedef struct racer_s {
    wsp_bcast_t *b;
    wsp_pick_shard_t ps;
    wsp_msg_t *got;
} racer_t;

static void *race(void *arg)
{
    racer_t *r = arg;
    wsp_pick_t pk;
    wsp_pick_begin(&pk, r->b, &r->ps);
    r->got = wsp_pick_frame(&pk, XF_DEFLATE(15));
    return NULL;
}

/* Two shards ask at once: one compresses, both send the same frame. */
static void test_two_shards(void **state)
{
    (void)state;
    char *p = payload(4000);
    for (int round = 0; round < 20; round++) {
        wsp_bcast_t *b = make(p, 4000, 2);
        racer_t r[2];
        pthread_t t[2];
        for (unsigned i = 0; i < 2; i++) {
            shard_init(&r[i].ps, i, 256);
            r[i].b = b;
            assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
        }
        for (unsigned i = 0; i < 2; i++)
            assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_ptr_equal(r[0].got, r[1].got);
        assert_inflates_to(r[0].got, p, 4000);
        assert_int_equal(
            atomic_load(&stats[0].deflate_builds) + atomic_load(&stats[1].deflate_builds), 1);
        /* Only the shard that built holds a compressor. */
        assert_true((r[0].ps.z == NULL) != (r[1].ps.z == NULL));
        reap(b, 2);
        wsp_pick_shard_free(&r[0].ps);
        wsp_pick_shard_free(&r[1].ps);
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain_and_deflate),
        cmocka_unit_test(test_window_bits),
        cmocka_unit_test(test_threshold_and_incompressible),
        cmocka_unit_test(test_framed_deflate),
        cmocka_unit_test(test_two_shards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
