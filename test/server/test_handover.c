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
    uint8_t type;
    const uint8_t *body;
    uint32_t len;
    assert_int_equal(wsp_ho_open(&r, buf, w.len), 0);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
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

/* A HIST record (issue #17's history carried over) decodes to exactly what was put; every
 * cut, a length past the end, a trailing byte, seq 0, an empty channel or epoch is refused. */
static void test_hist(void **state)
{
    (void)state;
    uint8_t buf[256];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    static const char msg[] = "{\"ch\":\"news\",\"seq\":41,\"data\":\"x\"}";
    wsp_ho_hist_t h = {.seq = 41,
                       .age_ms = 1234567,
                       .chan = "news",
                       .chan_len = 4,
                       .epoch = "e0abcd",
                       .epoch_len = 6,
                       .len = sizeof(msg) - 1,
                       .msg = (const uint8_t *)msg};
    assert_int_equal(wsp_ho_put_hist(&w, &h), 0);
    wsp_ho_hist_t bad = h;
    bad.seq = 0;
    assert_int_equal(wsp_ho_put_hist(&w, &bad), -EINVAL);
    bad = h;
    bad.chan_len = 0;
    assert_int_equal(wsp_ho_put_hist(&w, &bad), -EINVAL);
    assert_int_equal(w.nrec, 1);
    wsp_ho_reader_t r;
    uint8_t type;
    uint32_t len;
    const uint8_t *body = first_record(&r, buf, w.len, WSP_HO_HIST, &len);
    assert_int_equal(len, 8 + 8 + 1 + 4 + 1 + 6 + 4 + sizeof(msg) - 1);
    wsp_ho_hist_t g;
    assert_int_equal(wsp_ho_get_hist(body, len, &g), 0);
    assert_true(g.seq == 41 && g.age_ms == 1234567);
    assert_int_equal(g.chan_len, 4);
    assert_memory_equal(g.chan, "news", 4);
    assert_int_equal(g.epoch_len, 6);
    assert_memory_equal(g.epoch, "e0abcd", 6);
    assert_int_equal(g.len, sizeof(msg) - 1);
    assert_memory_equal(g.msg, msg, sizeof(msg) - 1);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 0);
    for (uint32_t cut = 0; cut < len; cut++) /* truncated anywhere */
        assert_int_equal(wsp_ho_get_hist(body, cut, &g), -EBADMSG);
    uint8_t b2[256];
    memcpy(b2, body, len);
    b2[len] = 0;
    assert_int_equal(wsp_ho_get_hist(b2, len + 1, &g), -EBADMSG); /* a trailing byte */
    b2[16] = 200;                                                 /* channel past the end */
    assert_int_equal(wsp_ho_get_hist(b2, len, &g), -EBADMSG);
    memcpy(b2, body, len);
    b2[8 + 8 + 1 + 4 + 1 + 6] = 0xff; /* message length past the end */
    assert_int_equal(wsp_ho_get_hist(b2, len, &g), -EBADMSG);
    memcpy(b2, body, len);
    memset(b2, 0, 8); /* seq 0 */
    assert_int_equal(wsp_ho_get_hist(b2, len, &g), -EBADMSG);
    /* An empty channel or epoch: the lengths still add up, the record is refused. */
    static const uint8_t nochan[8 + 8 + 1 + 1 + 1 + 4] = {1, [17] = 1, 'e'};
    assert_int_equal(wsp_ho_get_hist(nochan, sizeof(nochan), &g), -EBADMSG);
    static const uint8_t noepoch[8 + 8 + 1 + 1 + 1 + 4] = {1, [16] = 1, 'c', 0};
    assert_int_equal(wsp_ho_get_hist(noepoch, sizeof(noepoch), &g), -EBADMSG);
    static const uint8_t ok[8 + 8 + 1 + 1 + 1 + 1 + 4] = {1, [16] = 1, 'c', 1, 'e'};
    assert_int_equal(wsp_ho_get_hist(ok, sizeof(ok), &g), 0); /* the smallest valid one */
    assert_int_equal(g.len, 0);
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
 * with the most channels a client may choose (8, server/channels.h), of the longest name. */
static void test_capacity(void **state)
{
    (void)state;
    uint8_t *buf = malloc(WSP_HO_DGRAM_MAX);
    assert_non_null(buf);
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, WSP_HO_DGRAM_MAX);
    wsp_ho_conn_t c = {.state = WSP_HO_ST_OPEN, .nchan = 8};
    static const char name[64] = "0123456789012345678901234567890123456789012345678901234567890123";
    for (unsigned i = 0; i < 8; i++)
        c.chan[i] = (wsp_ho_chan_t){name, 64};
    for (unsigned i = 0; i < WSP_HO_FDS_MAX; i++)
        assert_int_equal(wsp_ho_put_conn(&w, &c), 0);
    free(buf);
}

/* --- tag 0x02: a TLS connection (issue #18) --- */

static const uint8_t tls_key[2][32] = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
                                       {0xF1, 0xF2, 0xF3, 0xF4, 0xF5, 0xF6, 0xF7, 0xF8}};
static const uint8_t tls_iv[2][12] = {{0x11, 0x12, 0x13}, {0x21, 0x22, 0x23, 0x24}};
static const uint8_t tls_secret[2][48] = {{0x31, [31] = 0x3F}, {0x41, [47] = 0x4F}};
static const uint8_t tls_part[7] = {0x17, 0x03, 0x03, 0x00, 0x40, 0xAA, 0xBB};

/* An OPEN TLS 1.3 connection (AES-256, SHA-384 secrets) with part of a record. */
static wsp_ho_conn_t tls_conn(void)
{
    wsp_ho_conn_t c = {.state = WSP_HO_ST_OPEN, .xf = 0x20, .nchan = 1};
    c.chan[0] = (wsp_ho_chan_t){"news", 4};
    c.tls = (wsp_ho_tls_t){
        .state = WSP_HO_TLS_OPEN,
        .version = 0x0304,
        .suite = 0x1302,
        .keylen = 32,
        .secretlen = 48,
        .rd = {.seq = 7, .key = tls_key[0], .iv = tls_iv[0], .secret = tls_secret[0]},
        .wr = {.seq = 1ull << 33, .key = tls_key[1], .iv = tls_iv[1], .secret = tls_secret[1]},
        .part = tls_part,
        .part_len = sizeof(tls_part)};
    return c;
}

static void tls_dir_equal(const wsp_ho_tls_dir_t *a, const wsp_ho_tls_dir_t *b,
                          const wsp_ho_tls_t *t)
{
    assert_true(a->seq == b->seq);
    assert_memory_equal(a->key, b->key, t->keylen);
    assert_memory_equal(a->iv, b->iv, WSP_HO_TLS_IV);
    if (t->secretlen)
        assert_memory_equal(a->secret, b->secret, t->secretlen);
}

/* Encodes c alone in buf; returns the CONN body (and its length in *len). */
static const uint8_t *put_one(uint8_t *buf, size_t cap, const wsp_ho_conn_t *c, uint32_t *len)
{
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, cap);
    assert_int_equal(wsp_ho_put_conn(&w, c), 0);
    wsp_ho_reader_t r;
    uint8_t type;
    const uint8_t *body;
    assert_int_equal(wsp_ho_open(&r, buf, w.len), 0);
    assert_int_equal(wsp_ho_next(&r, &type, &body, len), 1);
    assert_int_equal(type, WSP_HO_CONN);
    return body;
}

/* Every field of the record layer comes back as put: TLS 1.3 with secrets and part of a
 * record, TLS 1.2 without either, and a connection whose TLS handshake has not begun. */
static void test_tls_round_trip(void **state)
{
    (void)state;
    uint8_t buf[1024];
    uint32_t len;
    wsp_ho_conn_t in = tls_conn(), out;
    for (int v = 0; v < 2; v++) {
        if (v == 1) { /* TLS 1.2, AES-128-GCM: no secrets, nothing in part */
            in.tls.version = 0x0303;
            in.tls.suite = 0xC02F;
            in.tls.keylen = 16;
            in.tls.secretlen = 0;
            in.tls.part_len = 0;
        }
        const uint8_t *body = put_one(buf, sizeof(buf), &in, &len);
        assert_int_equal(wsp_ho_get_conn(body, len, &out), 0);
        assert_int_equal(out.state, WSP_HO_ST_OPEN);
        assert_int_equal(out.xf, 0x20);
        assert_int_equal(out.nchan, 1);
        assert_memory_equal(out.chan[0].name, "news", 4);
        const wsp_ho_tls_t *t = &out.tls;
        assert_int_equal(t->state, WSP_HO_TLS_OPEN);
        assert_int_equal(t->version, in.tls.version);
        assert_int_equal(t->suite, in.tls.suite);
        assert_int_equal(t->keylen, in.tls.keylen);
        assert_int_equal(t->secretlen, in.tls.secretlen);
        tls_dir_equal(&t->rd, &in.tls.rd, t);
        tls_dir_equal(&t->wr, &in.tls.wr, t);
        assert_int_equal(t->part_len, in.tls.part_len);
        if (t->part_len)
            assert_memory_equal(t->part, tls_part, sizeof(tls_part));
        /* The key material lies inside the body (the caller wipes the datagram). */
        assert_true(t->wr.secret >= body && t->wr.secret + t->secretlen <= body + len);
    }
    wsp_ho_conn_t fresh = {.state = WSP_HO_ST_HANDSHAKE, .ttl = 4, .xf = 0x20};
    fresh.tls.state = WSP_HO_TLS_NEW;
    const uint8_t *body = put_one(buf, sizeof(buf), &fresh, &len);
    assert_int_equal(wsp_ho_get_conn(body, len, &out), 0);
    assert_int_equal(out.tls.state, WSP_HO_TLS_NEW);
    assert_int_equal(out.ttl, 4);
    /* A plain connection has no tag and decodes with none. */
    wsp_ho_conn_t plain = {.state = WSP_HO_ST_OPEN};
    body = put_one(buf, sizeof(buf), &plain, &len);
    assert_int_equal(len, 4 + 4 + 4 + 1);
    assert_int_equal(wsp_ho_get_conn(body, len, &out), 0);
    assert_int_equal(out.tls.state, WSP_HO_TLS_NONE);
}

/* A TLS CONN cut anywhere inside its tag is refused, never read past; cut right before the
 * tag it is a plain connection, which is why the tag's value must be whole. */
static void test_tls_truncated(void **state)
{
    (void)state;
    uint8_t buf[1024], cut[1024];
    uint32_t len;
    wsp_ho_conn_t in = tls_conn(), out;
    const uint8_t *body = put_one(buf, sizeof(buf), &in, &len);
    uint32_t fixed = 4 + 4 + 4 + 1 + 1 + 4; /* through the channel "news" */
    for (uint32_t n = fixed + 1; n < len; n++) {
        memcpy(cut, body, n); /* a copy of exactly n bytes: ASan sees any read past it */
        assert_int_equal(wsp_ho_get_conn(cut, n, &out), -EBADMSG);
    }
    memcpy(cut, body, fixed);
    assert_int_equal(wsp_ho_get_conn(cut, fixed, &out), 0);
    assert_int_equal(out.tls.state, WSP_HO_TLS_NONE);
}

/* What the format cannot carry is refused by the writer; what does not add up, by the
 * reader; and a reader without tag 0x02 refuses it (a required tag), never drops it. */
static void test_tls_refused(void **state)
{
    (void)state;
    uint8_t buf[1024], ext[1024];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    wsp_ho_conn_t c = tls_conn(), out;
    c.tls.keylen = WSP_HO_TLS_KEY_MAX + 1;
    assert_int_equal(wsp_ho_put_conn(&w, &c), -EINVAL);
    c = tls_conn();
    c.tls.part_len = WSP_HO_TLS_PART_MAX + 1;
    assert_int_equal(wsp_ho_put_conn(&w, &c), -EINVAL);
    c = tls_conn();
    c.tls.state = 3;
    assert_int_equal(wsp_ho_put_conn(&w, &c), -EINVAL);
    assert_int_equal(w.nrec, 0);
    uint32_t len;
    c = tls_conn();
    const uint8_t *body = put_one(buf, sizeof(buf), &c, &len);
    uint32_t tag = 4 + 4 + 4 + 1 + 1 + 4; /* where tag 0x02 starts */
    assert_int_equal(body[tag], WSP_HO_TAG_TLS);
    assert_false(body[tag] & 0x80); /* required: an older reader refuses the record */
    memcpy(ext, body, len);
    ext[tag] = 0x03; /* what a reader does with a required tag it does not know */
    assert_int_equal(wsp_ho_get_conn(ext, len, &out), -EPROTO);
    memcpy(ext, body, len);
    ext[tag + 3] = 3; /* no such TLS state */
    assert_int_equal(wsp_ho_get_conn(ext, len, &out), -EBADMSG);
    memcpy(ext, body, len);
    ext[tag + 3 + 5] = 0; /* keylen 0 */
    assert_int_equal(wsp_ho_get_conn(ext, len, &out), -EBADMSG);
    ext[tag + 3 + 5] = WSP_HO_TLS_KEY_MAX + 1;
    assert_int_equal(wsp_ho_get_conn(ext, len, &out), -EBADMSG);
    memcpy(ext, body, len);
    ext[tag + 3 + 6] = WSP_HO_TLS_SECRET_MAX + 1;
    assert_int_equal(wsp_ho_get_conn(ext, len, &out), -EBADMSG);
    /* The tag twice. */
    memcpy(ext, body, len);
    memcpy(ext + len, body + tag, len - tag);
    assert_int_equal(wsp_ho_get_conn(ext, len + (len - tag), &out), -EBADMSG);
    /* A value longer than its fields. */
    memcpy(ext, body, len);
    ext[tag + 1]++;
    ext[len] = 0;
    assert_int_equal(wsp_ho_get_conn(ext, len + 1, &out), -EBADMSG);
    /* TLS not yet begun, yet bytes of an HTTP request or for the peer: in the clear. */
    wsp_ho_conn_t fresh = {.state = WSP_HO_ST_HANDSHAKE, .hs = (const uint8_t *)"GET", .hs_len = 3};
    fresh.tls.state = WSP_HO_TLS_NEW;
    body = put_one(buf, sizeof(buf), &fresh, &len);
    assert_int_equal(wsp_ho_get_conn(body, len, &out), -EBADMSG);
    fresh.state = WSP_HO_ST_OPEN;
    fresh.hs_len = 0;
    body = put_one(buf, sizeof(buf), &fresh, &len);
    assert_int_equal(wsp_ho_get_conn(body, len, &out), -EBADMSG);
}

/* READY says whether the new process adopts TLS connections; an empty one (an older binary)
 * says it does not. */
static void test_ready(void **state)
{
    (void)state;
    uint8_t buf[32], flags = 0xFF;
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    assert_int_equal(wsp_ho_put_ready(&w, WSP_HO_READY_TLS), 0);
    assert_int_equal(wsp_ho_put_empty(&w, WSP_HO_READY), 0);
    wsp_ho_reader_t r;
    uint8_t type;
    uint32_t len;
    const uint8_t *body = first_record(&r, buf, w.len, WSP_HO_READY, &len);
    assert_int_equal(wsp_ho_get_ready(body, len, &flags), 0);
    assert_int_equal(flags, WSP_HO_READY_TLS);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(wsp_ho_get_ready(body, len, &flags), 0);
    assert_int_equal(flags, 0);
}

/* MARK: the old process's Redis marker, round trip; empty or longer than WSP_HO_MARK_MAX
 * refused on both sides. And READY's Redis flag next to the TLS one. */
static void test_mark(void **state)
{
    (void)state;
    uint8_t buf[256];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    assert_int_equal(wsp_ho_put_mark(&w, "4242.17", 7), 0);
    assert_int_equal(wsp_ho_put_mark(&w, "", 0), -EINVAL);
    char longest[WSP_HO_MARK_MAX + 1];
    memset(longest, '7', sizeof(longest));
    assert_int_equal(wsp_ho_put_mark(&w, longest, WSP_HO_MARK_MAX + 1), -EINVAL);
    assert_int_equal(wsp_ho_put_mark(&w, longest, WSP_HO_MARK_MAX), 0);
    assert_int_equal(wsp_ho_put_ready(&w, WSP_HO_READY_TLS | WSP_HO_READY_REDIS), 0);
    assert_int_equal(w.nrec, 3);
    wsp_ho_reader_t r;
    uint32_t len;
    const uint8_t *body = first_record(&r, buf, w.len, WSP_HO_MARK, &len);
    const char *tok;
    size_t tlen;
    assert_int_equal(wsp_ho_get_mark(body, len, &tok, &tlen), 0);
    assert_int_equal(tlen, 7);
    assert_memory_equal(tok, "4242.17", 7);
    assert_int_equal(wsp_ho_get_mark(body, 0, &tok, &tlen), -EBADMSG);
    uint8_t type;
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    assert_int_equal(type, WSP_HO_MARK);
    assert_int_equal(wsp_ho_get_mark(body, len, &tok, &tlen), 0);
    assert_int_equal(tlen, WSP_HO_MARK_MAX);
    uint8_t ext[WSP_HO_MARK_MAX + 1];
    memset(ext, '7', sizeof(ext));
    assert_int_equal(wsp_ho_get_mark(ext, sizeof(ext), &tok, &tlen), -EBADMSG);
    assert_int_equal(wsp_ho_next(&r, &type, &body, &len), 1);
    uint8_t flags = 0;
    assert_int_equal(wsp_ho_get_ready(body, len, &flags), 0);
    assert_int_equal(flags, WSP_HO_READY_TLS | WSP_HO_READY_REDIS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mark),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_default_channel),
        cmocka_unit_test(test_full),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_capacity),
        cmocka_unit_test(test_tls_round_trip),
        cmocka_unit_test(test_tls_truncated),
        cmocka_unit_test(test_tls_refused),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_hist),
        cmocka_unit_test(test_conn_auth),
        cmocka_unit_test(test_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
