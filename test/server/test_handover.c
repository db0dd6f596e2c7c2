#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "handover.h"

/* One datagram holding a HELLO, two CONNs (a handshake, an open one with channels and queued
 * bytes), a BCAST, a SHARD_END and an END decodes to exactly what was put. */
static void test_round_trip(void **state)
{
    (void)state;
    static uint8_t buf[4096];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    wsp_ho_hello_t h = {.pid = 4242, .shards = 3, .port = 8080, .admin = 1, .seq = 1ull << 40};
    assert_int_equal(wsp_ho_put_hello(&w, &h), 0);
    static const char req[] = "GET /?channels=a HTTP/1.1\r\nHost: x\r\n";
    wsp_ho_conn_t hs = {.state = WSP_HO_ST_HANDSHAKE,
                        .ttl = 9,
                        .hs = (const uint8_t *)req,
                        .hs_len = sizeof(req) - 1,
                        .flags = WSP_HO_F_RESERVED};
    assert_int_equal(wsp_ho_put_conn(&w, &hs), 0);
    static const uint8_t tail[] = {0x81, 0x03, 'a', 'b', 'c'};
    wsp_ho_conn_t op = {.state = WSP_HO_ST_OPEN,
                        .flags = WSP_HO_F_NO_DEFAULT | WSP_HO_F_PING_OUT,
                        .xf = 0x41,
                        .pending = tail,
                        .pending_len = sizeof(tail),
                        .nchan = 2};
    op.chan[0] = (wsp_ho_chan_t){"news", 4};
    op.chan[1] = (wsp_ho_chan_t){"sport.eu", 8};
    assert_int_equal(wsp_ho_put_conn(&w, &op), 0);
    wsp_ho_bcast_t b = {.seq = 77,
                        .chan = "news",
                        .chan_len = 4,
                        .payload = (const uint8_t *)"hello",
                        .len = 5,
                        .cseq = 12,
                        .epoch = "e1x",
                        .epoch_len = 3};
    assert_int_equal(wsp_ho_put_bcast(&w, &b), 0);
    assert_int_equal(wsp_ho_put_empty(&w, WSP_HO_SHARD_END), 0);
    wsp_ho_cseq_t q = {.seq = 41, .name = "news", .len = 4};
    assert_int_equal(wsp_ho_put_cseq(&w, &q), 0);
    wsp_ho_end_t e = {.seq = 78, .sup_seq = 12, .next_tick_ms = 1795755960000ull};
    assert_int_equal(wsp_ho_put_end(&w, &e), 0);
    assert_int_equal(w.nrec, 7);

    wsp_ho_reader_t r;
    assert_int_equal(wsp_ho_open(&r, buf, w.len), 0);
    uint8_t type;
    const uint8_t *body;
    uint32_t len;
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(type, WSP_HO_HELLO);
    wsp_ho_hello_t h2;
    assert_int_equal(wsp_ho_get_hello(body, len, &h2), 0);
    assert_int_equal(h2.pid, 4242);
    assert_int_equal(h2.shards, 3);
    assert_int_equal(h2.port, 8080);
    assert_int_equal(h2.admin, 1);
    assert_true(h2.seq == 1ull << 40);

    wsp_ho_conn_t c;
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(type, WSP_HO_CONN);
    assert_int_equal(wsp_ho_get_conn(body, len, &c), 0);
    assert_int_equal(c.state, WSP_HO_ST_HANDSHAKE);
    assert_int_equal(c.ttl, 9);
    assert_int_equal(c.flags, WSP_HO_F_RESERVED);
    assert_int_equal(c.hs_len, sizeof(req) - 1);
    assert_memory_equal(c.hs, req, c.hs_len);
    assert_int_equal(c.pending_len, 0);
    assert_int_equal(c.nchan, 0);

    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(wsp_ho_get_conn(body, len, &c), 0);
    assert_int_equal(c.state, WSP_HO_ST_OPEN);
    assert_int_equal(c.flags, WSP_HO_F_NO_DEFAULT | WSP_HO_F_PING_OUT);
    assert_int_equal(c.xf, 0x41);
    assert_int_equal(c.pending_len, sizeof(tail));
    assert_memory_equal(c.pending, tail, sizeof(tail));
    assert_int_equal(c.nchan, 2);
    assert_int_equal(c.chan[0].len, 4);
    assert_memory_equal(c.chan[0].name, "news", 4);
    assert_int_equal(c.chan[1].len, 8);
    assert_memory_equal(c.chan[1].name, "sport.eu", 8);

    wsp_ho_bcast_t b2;
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(type, WSP_HO_BCAST);
    assert_int_equal(wsp_ho_get_bcast(body, len, &b2), 0);
    assert_int_equal(b2.seq, 77);
    assert_int_equal(b2.chan_len, 4);
    assert_memory_equal(b2.chan, "news", 4);
    assert_int_equal(b2.len, 5);
    assert_memory_equal(b2.payload, "hello", 5);
    assert_int_equal(b2.cseq, 12);
    assert_int_equal(b2.epoch_len, 3);
    assert_memory_equal(b2.epoch, "e1x", 3);

    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(type, WSP_HO_SHARD_END);
    assert_int_equal(len, 0);
    wsp_ho_cseq_t q2;
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(type, WSP_HO_CSEQ);
    assert_int_equal(wsp_ho_get_cseq(body, len, &q2), 0);
    assert_int_equal(q2.seq, 41);
    assert_int_equal(q2.len, 4);
    assert_memory_equal(q2.name, "news", 4);
    assert_int_equal(wsp_ho_get_cseq(body, len - 1, &q2), -EBADMSG);
    wsp_ho_end_t e2;
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(wsp_ho_get_end(body, len, &e2), 0);
    assert_true(e2.seq == 78 && e2.sup_seq == 12 && e2.next_tick_ms == 1795755960000ull);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 0);
}

/* Opens the datagram buf[0..n) into r and returns its first record's body, which must be of
 * type want. */
static const uint8_t *first_record(wsp_ho_reader_t *r, const uint8_t *buf, size_t n, uint8_t want,
                                   uint32_t *len)
{
    uint8_t type;
    const uint8_t *body;
    assert_int_equal(wsp_ho_open(r, buf, n), 0);
    assert_int_equal(wsp_ho_next(r, &type, &body, len), 1);
    assert_int_equal(type, want);
    return body;
}

/* A default-channel broadcast decodes with a NULL channel. */
static void test_default_channel(void **state)
{
    (void)state;
    uint8_t buf[128];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    wsp_ho_bcast_t b = {.seq = 1, .payload = (const uint8_t *)"{}", .len = 2};
    assert_int_equal(wsp_ho_put_bcast(&w, &b), 0);
    wsp_ho_reader_t r;
    uint32_t len;
    const uint8_t *body = first_record(&r, buf, w.len, WSP_HO_BCAST, &len);
    wsp_ho_bcast_t b2;
    assert_int_equal(wsp_ho_get_bcast(body, len, &b2), 0);
    assert_null(b2.chan);
    assert_int_equal(b2.chan_len, 0);
    assert_null(b2.epoch);
}

/* A full datagram refuses the next record and stays as it was: the caller sends and
 * starts another. */
static void test_full(void **state)
{
    (void)state;
    uint8_t buf[WSP_HO_HDR + 2 * (WSP_HO_REC_HDR + 24) + 20];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    wsp_ho_end_t e = {.seq = 1};
    assert_int_equal(wsp_ho_put_end(&w, &e), 0);
    assert_int_equal(wsp_ho_put_end(&w, &e), 0);
    size_t len = w.len;
    assert_int_equal(wsp_ho_put_end(&w, &e), -ENOBUFS);
    assert_int_equal(w.len, len);
    assert_int_equal(w.nrec, 2);
    wsp_ho_conn_t c = {.state = WSP_HO_ST_OPEN, .nchan = WSP_HO_CHAN_MAX + 1};
    assert_int_equal(wsp_ho_put_conn(&w, &c), -EINVAL);
}

/* Malformed datagrams and records are refused, never read past. */
static void test_bad(void **state)
{
    (void)state;
    uint8_t buf[256];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    wsp_ho_conn_t c = {.state = WSP_HO_ST_OPEN, .nchan = 1};
    c.chan[0] = (wsp_ho_chan_t){"abc", 3};
    assert_int_equal(wsp_ho_put_conn(&w, &c), 0);
    wsp_ho_reader_t r;
    uint8_t type;
    const uint8_t *body;
    uint32_t len;
    assert_int_equal(wsp_ho_open(&r, buf, 3), -EBADMSG);
    buf[4] = 2;
    assert_int_equal(wsp_ho_open(&r, buf, w.len), -EPROTO);
    buf[4] = WSP_HO_VERSION;
    assert_int_equal(wsp_ho_open(&r, buf, w.len - 1), 0);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), -EBADMSG); /* cut record */
    assert_int_equal(wsp_ho_open(&r, buf, w.len), 0);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    wsp_ho_conn_t d;
    assert_int_equal(wsp_ho_get_conn(body, len - 1, &d), -EBADMSG); /* name past the end */
    /* A required tag this version does not know refuses; a skippable one passes. */
    uint8_t ext[300];
    memcpy(ext, body, len);
    memcpy(ext + len, "\x7e\x01\x00z", 4);
    assert_int_equal(wsp_ho_get_conn(ext, len + 4, &d), -EPROTO);
    ext[len] = 0x81;
    assert_int_equal(wsp_ho_get_conn(ext, len + 4, &d), 0);
    assert_int_equal(wsp_ho_get_conn(ext, len + 3, &d), -EBADMSG); /* tag value cut */
    /* An OPEN connection with handshake bytes, a bad state, an empty name: refused. */
    ext[4] = 1;
    memcpy(ext + 5, "\0\0\0", 3);
    assert_int_equal(wsp_ho_get_conn(ext, len, &d), -EBADMSG);
    memcpy(ext, body, len);
    ext[0] = 2;
    assert_int_equal(wsp_ho_get_conn(ext, len, &d), -EBADMSG);
    /* A count of records larger than what the datagram holds. */
    assert_int_equal(wsp_ho_open(&r, buf, w.len), 0);
    r.left = 2;
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), -EBADMSG);
    /* Bytes after the last counted record. */
    assert_int_equal(wsp_ho_open(&r, buf, w.len + 1), 0);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), -EBADMSG);
    wsp_ho_hello_t h;
    static const uint8_t zero[17];
    assert_int_equal(wsp_ho_get_hello(zero, 17, &h), -EBADMSG); /* no shard */
    assert_int_equal(wsp_ho_get_hello(zero, 16, &h), -EBADMSG);
    wsp_ho_end_t e;
    assert_int_equal(wsp_ho_get_end(zero, 16, &e), -EBADMSG);
    wsp_ho_bcast_t b;
    static const uint8_t zero23[23];
    assert_int_equal(wsp_ho_get_bcast(zero23, 21, &b), -EBADMSG);
    assert_int_equal(wsp_ho_get_bcast(zero23, 23, &b), -EBADMSG); /* trailing byte */
    assert_int_equal(wsp_ho_get_bcast(zero23, 22, &b), 0);
}

/* Puts one CONN into buf and returns its body. */
static const uint8_t *one_conn(uint8_t *buf, size_t cap, const wsp_ho_conn_t *c, uint32_t *len)
{
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, cap);
    assert_int_equal(wsp_ho_put_conn(&w, c), 0);
    wsp_ho_reader_t r;
    return first_record(&r, buf, w.len, WSP_HO_CONN, len);
}

/* A token's state (tag 0x01) goes with an OPEN connection and comes back exactly; without it
 * a connection decodes with auth 0. A cut, a wrong length, a second copy or a handshake that
 * claims one is refused; a reader that does not know the tag refuses the record. */
static void test_conn_auth(void **state)
{
    (void)state;
    uint8_t buf[512];
    wsp_ho_conn_t c = {.state = WSP_HO_ST_OPEN,
                       .xf = 0x01,
                       .nchan = 1,
                       .auth = 1,
                       .uid = 0x0123456789abcdefull,
                       .deadline = 0xfedcba98u};
    c.chan[0] = (wsp_ho_chan_t){"news", 4};
    uint32_t len;
    const uint8_t *body = one_conn(buf, sizeof(buf), &c, &len);
    wsp_ho_conn_t d;
    assert_int_equal(wsp_ho_get_conn(body, len, &d), 0);
    assert_int_equal(d.auth, 1);
    assert_true(d.uid == 0x0123456789abcdefull);
    assert_int_equal(d.deadline, 0xfedcba98u);
    assert_int_equal(d.nchan, 1);
    assert_memory_equal(d.chan[0].name, "news", 4);
    /* The field's bytes: [0x01][12 LE][uid LE][deadline LE], last in the body. */
    static const uint8_t tag[] = {0x01, 12,   0,    0xef, 0xcd, 0xab, 0x89, 0x67,
                                  0x45, 0x23, 0x01, 0x98, 0xba, 0xdc, 0xfe};
    assert_true(len > sizeof(tag));
    assert_memory_equal(body + len - sizeof(tag), tag, sizeof(tag));
    /* Cut anywhere inside the field: refused, never read past. */
    for (uint32_t cut = 1; cut < sizeof(tag); cut++)
        assert_int_equal(wsp_ho_get_conn(body, len - cut, &d), -EBADMSG);
    /* Without the field: no token. */
    assert_int_equal(wsp_ho_get_conn(body, len - sizeof(tag), &d), 0);
    assert_int_equal(d.auth, 0);
    assert_true(d.uid == 0 && d.deadline == 0);
    /* Twice, or a length other than 12: refused. */
    uint8_t ext[600];
    memcpy(ext, body, len);
    memcpy(ext + len, tag, sizeof(tag));
    assert_int_equal(wsp_ho_get_conn(ext, len + sizeof(tag), &d), -EBADMSG);
    memcpy(ext, body, len);
    ext[len - sizeof(tag) + 1] = 11;
    assert_int_equal(wsp_ho_get_conn(ext, len - 1, &d), -EBADMSG);
    /* After a skippable field it is still found. */
    memcpy(ext, body, len - sizeof(tag));
    memcpy(ext + len - sizeof(tag), "\x81\x01\x00z", 4);
    memcpy(ext + len - sizeof(tag) + 4, tag, sizeof(tag));
    assert_int_equal(wsp_ho_get_conn(ext, len + 4, &d), 0);
    assert_true(d.auth == 1 && d.uid == 0x0123456789abcdefull && d.deadline == 0xfedcba98u);
    /* A reader that does not know tag 0x01 (this version with it unknown: an unknown required
     * tag) refuses rather than drops it: shown with the tag renamed. */
    memcpy(ext, body, len);
    ext[len - sizeof(tag)] = 0x7e;
    assert_int_equal(wsp_ho_get_conn(ext, len, &d), -EPROTO);
    /* A handshake has no token state: the writer refuses, the reader too. */
    wsp_ho_conn_t hs = {.state = WSP_HO_ST_HANDSHAKE, .auth = 1};
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    assert_int_equal(wsp_ho_put_conn(&w, &hs), -EINVAL);
    assert_int_equal(w.nrec, 0);
    hs.auth = 0;
    body = one_conn(buf, sizeof(buf), &hs, &len);
    memcpy(ext, body, len);
    memcpy(ext + len, tag, sizeof(tag));
    assert_int_equal(wsp_ho_get_conn(ext, len + sizeof(tag), &d), -EBADMSG);
}

/* The user-id key record: round trip; a wrong length, an empty or too long algorithm name
 * refused; the writer refuses what the reader would. */
static void test_key(void **state)
{
    (void)state;
    uint8_t buf[256];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    wsp_ho_hello_t h = {.pid = 7, .shards = 2, .port = 80};
    assert_int_equal(wsp_ho_put_hello(&w, &h), 0);
    wsp_ho_key_t k = {.alg = "ES256", .alg_len = 5};
    for (unsigned i = 0; i < WSP_HO_SIPKEY; i++)
        k.sipkey[i] = (uint8_t)(0xa0 + i);
    assert_int_equal(wsp_ho_put_key(&w, &k), 0);
    wsp_ho_key_t bad = {.alg = "", .alg_len = 0};
    assert_int_equal(wsp_ho_put_key(&w, &bad), -EINVAL);
    bad.alg = "0123456789012345678901234567890123";
    bad.alg_len = WSP_HO_ALG_MAX + 1;
    assert_int_equal(wsp_ho_put_key(&w, &bad), -EINVAL);
    assert_int_equal(w.nrec, 2);
    wsp_ho_reader_t r;
    uint32_t len;
    const uint8_t *body = first_record(&r, buf, w.len, WSP_HO_HELLO, &len);
    uint8_t type;
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(type, WSP_HO_KEY);
    assert_int_equal(len, 1 + 5 + WSP_HO_SIPKEY);
    wsp_ho_key_t k2;
    assert_int_equal(wsp_ho_get_key(body, len, &k2), 0);
    assert_int_equal(k2.alg_len, 5);
    assert_memory_equal(k2.alg, "ES256", 5);
    assert_memory_equal(k2.sipkey, k.sipkey, WSP_HO_SIPKEY);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 0);
    assert_int_equal(wsp_ho_get_key(body, len - 1, &k2), -EBADMSG);
    assert_int_equal(wsp_ho_get_key(body, 0, &k2), -EBADMSG);
    uint8_t ext[64];
    memcpy(ext, body, len);
    ext[len] = 0;
    assert_int_equal(wsp_ho_get_key(ext, len + 1, &k2), -EBADMSG); /* a trailing byte */
    ext[0] = 0;
    assert_int_equal(wsp_ho_get_key(ext, 1 + WSP_HO_SIPKEY, &k2), -EBADMSG); /* no name */
    ext[0] = WSP_HO_ALG_MAX + 1;
    assert_int_equal(wsp_ho_get_key(ext, len, &k2), -EBADMSG);
}

/* A datagram of WSP_HO_DGRAM_MAX holds as many connections as it may carry descriptors, each
 * with the most channels a client may choose (8, server/channels.h), of the longest name, and
 * a token's state. */
static void test_capacity(void **state)
{
    (void)state;
    uint8_t *buf = malloc(WSP_HO_DGRAM_MAX);
    assert_non_null(buf);
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, WSP_HO_DGRAM_MAX);
    wsp_ho_conn_t c = {.state = WSP_HO_ST_OPEN, .nchan = 8, .auth = 1, .uid = ~0ull};
    static const char name[64] = "0123456789012345678901234567890123456789012345678901234567890123";
    for (unsigned i = 0; i < 8; i++)
        c.chan[i] = (wsp_ho_chan_t){name, 64};
    for (unsigned i = 0; i < WSP_HO_FDS_MAX; i++)
        assert_int_equal(wsp_ho_put_conn(&w, &c), 0);
    free(buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip), cmocka_unit_test(test_default_channel),
        cmocka_unit_test(test_full),       cmocka_unit_test(test_bad),
        cmocka_unit_test(test_capacity),   cmocka_unit_test(test_conn_auth),
        cmocka_unit_test(test_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
