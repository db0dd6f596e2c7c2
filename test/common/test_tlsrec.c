/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>

#include "tlsref.h"
#include "tlstest.h"

static EVP_CIPHER_CTX *cx;

static size_t unhex(const char *s, uint8_t *out)
{
    size_t n = 0;
    for (; s[0] && s[1]; s += 2) {
        unsigned v;
        assert_int_equal(sscanf(s, "%2x", &v), 1);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* --- known answers: RFC 8448 section 3 (simple 1-RTT handshake, TLS_AES_128_GCM_SHA256) ---- */

static void test_rfc8448(void **state)
{
    (void)state;
    uint8_t c_ap[32], s_ap[32], want[128], payload[50], out[128], plain[WSP_TLSREC_OPEN_MAX];
    unhex("9e40646ce79a7f9dc05af8889bce6552875afa0b06df0087f792ebb7c17504a5", c_ap);
    unhex("a11af9f05531f856ad47116b45a950328204b4f44bfb6b3a4b4f1f3fcb631643", s_ap);
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)i;
    wsp_tlsrec_t t;
    assert_int_equal(wsp_tlsrec_init13(&t, 0x1301, c_ap, s_ap), 0);
    assert_int_equal(unhex("9f02283b6c9c07efc26bb9f2ac92e356", want), 16);
    assert_memory_equal(t.wr.key, want, 16);
    assert_int_equal(unhex("cf782b88dd83549aadf1e984", want), 12);
    assert_memory_equal(t.wr.iv, want, 12);
    assert_int_equal(unhex("17422dda596ed5d9acd890e3c63f5051", want), 16);
    assert_memory_equal(t.rd.key, want, 16);
    assert_int_equal(unhex("5b78923dee08579033e523d9", want), 12);
    assert_memory_equal(t.rd.iv, want, 12);
    /* The server's application data record, after the ticket took sequence 0. */
    t.wr.seq = 1;
    size_t n = unhex("17030300432e937e11ef4ac740e538ad36005fc4a46932fc3225d05f82aa1b36e30efa"
                     "f97d90e6dffc602dcb501a59a8fcc49c4bf2e5f0a21c0047c2abf332540dd032e167c2"
                     "955d",
                     want);
    assert_int_equal(wsp_tlsrec_seal(&t, cx, payload, sizeof(payload), out, sizeof(out)), n);
    assert_memory_equal(out, want, n);
    assert_int_equal(t.wr.seq, 2);
    /* The client's application data record, sequence 0. */
    n = unhex("1703030043a23f7054b62c94d0affafe8228ba55cbefacea42f914aa66bcab3f2b9819a8a5b4"
              "6b395bd54a9a20441e2b62974e1f5a6292a2977014bd1e3deae63aeebb21694915e4",
              want);
    wsp_tlsrec_in_t r;
    assert_int_equal(wsp_tlsrec_open(&t, cx, want, n, plain, sizeof(plain), &r), 0);
    assert_int_equal(r.used, n);
    assert_int_equal(r.type, WSP_TLS_CT_APPDATA);
    assert_int_equal(r.len, sizeof(payload));
    assert_memory_equal(plain, payload, sizeof(payload));
    assert_int_equal(t.rd.seq, 1);
}

/* --- all suites, between two instances of the record layer ---------------------------------- */

static const uint16_t suites13[] = {0x1301, 0x1302, 0x1303};
static const uint16_t suites12[] = {0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8};

/* A server state and its client's, for any suite. */
static void make_pair(uint16_t suite, wsp_tlsrec_t *srv, wsp_tlsrec_t *cli)
{
    uint8_t a[48], b[48], cr[32], sr[32];
    tt_fill(a, sizeof(a), suite);
    tt_fill(b, sizeof(b), suite + 1u);
    tt_fill(cr, sizeof(cr), 3);
    tt_fill(sr, sizeof(sr), 4);
    if (suite >> 8 == 0x13) {
        assert_int_equal(wsp_tlsrec_init13(srv, suite, a, b), 0);
        assert_int_equal(wsp_tlsrec_init13(cli, suite, b, a), 0);
    } else {
        assert_int_equal(wsp_tlsrec_init12(srv, suite, a, cr, sr, 1), 0);
        assert_int_equal(wsp_tlsrec_init12(cli, suite, a, cr, sr, 0), 0);
    }
    assert_memory_equal(&srv->wr, &cli->rd, sizeof(srv->wr));
    assert_memory_equal(&srv->rd, &cli->wr, sizeof(srv->rd));
    assert_memory_not_equal(srv->wr.key, srv->rd.key, sizeof(srv->wr.key));
}

/* Seals len bytes at a, opens them all at b; checks sizes, record count and sequences. */
static void pass(wsp_tlsrec_t *a, wsp_tlsrec_t *b, size_t len, uint32_t seed)
{
    uint8_t *msg = malloc(len + 1), *got = malloc(len + 1);
    size_t cap = wsp_tlsrec_sealed_size(a, len);
    uint8_t *rec = malloc(cap + 64);
    assert_non_null(msg);
    assert_non_null(got);
    assert_non_null(rec);
    tt_fill(msg, len, seed);
    size_t nrec = (len + WSP_TLSREC_FRAGMENT - 1) / WSP_TLSREC_FRAGMENT;
    uint64_t wseq = a->wr.seq, rseq = b->rd.seq;
    if (cap > 0)
        assert_int_equal(wsp_tlsrec_seal(a, cx, msg, len, rec, cap - 1), -ENOBUFS);
    assert_int_equal(wsp_tlsrec_seal(a, cx, msg, len, rec, cap + 64), (ssize_t)cap);
    assert_int_equal(a->wr.seq, wseq + nrec);
    static uint8_t plain[WSP_TLSREC_OPEN_MAX];
    size_t off = 0, glen = 0;
    while (off < cap) {
        wsp_tlsrec_in_t r;
        assert_int_equal(wsp_tlsrec_open(b, cx, rec + off, cap - off, plain, sizeof(plain), &r), 0);
        assert_int_equal(r.type, WSP_TLS_CT_APPDATA);
        assert_true(r.len <= WSP_TLSREC_FRAGMENT);
        memcpy(got + glen, plain, r.len);
        glen += r.len;
        off += r.used;
    }
    assert_int_equal(glen, len);
    assert_memory_equal(got, msg, len);
    assert_int_equal(b->rd.seq, rseq + nrec);
    free(msg);
    free(got);
    free(rec);
}

static const size_t sizes[] = {0, 1, 30, 2048, 16384, 16385, 65536};

static void test_all_suites(void **state)
{
    (void)state;
    const uint16_t *lists[] = {suites13, suites12};
    size_t counts[] = {3, 6};
    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < counts[l]; i++) {
            wsp_tlsrec_t s, c;
            make_pair(lists[l][i], &s, &c);
            assert_non_null(wsp_tlsrec_suite_name(s.suite));
            for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
                pass(&s, &c, sizes[k], (uint32_t)k);
                pass(&c, &s, sizes[k], (uint32_t)k + 50);
            }
            /* 30 bytes: 1.3 adds 22, 1.2 GCM 29 (explicit nonce), 1.2 ChaCha20 21. */
            size_t want = l == 0 ? 52 : s.aead == 2 ? 51 : 59;
            assert_int_equal(wsp_tlsrec_sealed_size(&s, 30), want);
        }
    }
    wsp_tlsrec_t t;
    uint8_t k[48] = {0};
    assert_int_equal(wsp_tlsrec_init13(&t, 0xC02B, k, k), -EINVAL); /* a 1.2 suite */
    assert_int_equal(wsp_tlsrec_init12(&t, 0x1301, k, k, k, 1), -EINVAL);
    assert_int_equal(wsp_tlsrec_init13(&t, 0x1304, k, k), -EINVAL); /* AES-CCM: not ours */
    assert_null(wsp_tlsrec_suite_name(0x009C));
}

/* --- against a real OpenSSL client ----------------------------------------------------------- */

static const struct {
    int version;
    const char *ciphers, *suites, *cert;
} peers[] = {
    {TLS1_3_VERSION, NULL, "TLS_AES_128_GCM_SHA256", "ec"},
    {TLS1_3_VERSION, NULL, "TLS_AES_256_GCM_SHA384", "ec"},
    {TLS1_3_VERSION, NULL, "TLS_CHACHA20_POLY1305_SHA256", "rsa"},
    {TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", NULL, "ec"},
    {TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", NULL, "rsa"},
    {TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", NULL, "ec"},
};

static SSL_CTX *cctxs[6];
static wsp_tls_ctx_t *sctxs[6];

static void connect_peer(tt_pair_t *p, size_t i)
{
    if (cctxs[i] == NULL) {
        cctxs[i] = tt_client_ctx("ca.pem", peers[i].version, peers[i].version, peers[i].ciphers,
                                 peers[i].suites);
        sctxs[i] = tt_server_ctx(!strcmp(peers[i].cert, "ec") ? "ec.pem" : "rsa.pem",
                                 !strcmp(peers[i].cert, "ec") ? "ec.key" : "rsa.key");
    }
    tt_pair_init(p, cctxs[i], sctxs[i], NULL);
    tt_connect(p);
}

/* Server to client, then client to server, len bytes. */
static void both_ways(tt_pair_t *p, size_t len, uint32_t seed)
{
    uint8_t *msg = malloc(len + 1), *got = malloc(len + 1);
    assert_non_null(msg);
    assert_non_null(got);
    tt_fill(msg, len, seed);
    tt_srv_send(p, msg, len);
    tt_cl_read(p, got, len);
    assert_memory_equal(got, msg, len);
    tt_fill(msg, len, seed + 1);
    tt_cl_write(p, msg, len);
    size_t n = 0;
    uint8_t alert;
    assert_int_equal(tt_srv_recv(p, got, len + 1, &n, &alert), 0);
    assert_int_equal(n, len);
    assert_memory_equal(got, msg, len);
    free(msg);
    free(got);
}

static void test_openssl_traffic(void **state)
{
    (void)state;
    static const size_t lens[] = {1, 30, 16384, 16385, 65536};
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        tt_pair_t p;
        connect_peer(&p, i);
        for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++)
            both_ways(&p, lens[k], (uint32_t)(i * 10 + k));
        tt_close(&p);
        tt_pair_free(&p);
    }
}

/* The client updates its keys (RFC 8446 4.6.3), with and without asking us to; traffic goes
 * on both ways, and a requested update gets ours back. */
static void test_key_update_from_client(void **state)
{
    (void)state;
    for (size_t i = 0; i < 3; i++) {
        tt_pair_t p;
        connect_peer(&p, i);
        both_ways(&p, 30, 1);
        for (int round = 0; round < 3; round++) {
            int req = round == 1 ? SSL_KEY_UPDATE_REQUESTED : SSL_KEY_UPDATE_NOT_REQUESTED;
            uint8_t rd_key[32], wr_key[32];
            memcpy(rd_key, p.rec.rd.key, sizeof(rd_key));
            memcpy(wr_key, p.rec.wr.key, sizeof(wr_key));
            assert_int_equal(SSL_key_update(p.cl, req), 1);
            both_ways(&p, 100, (uint32_t)round);
            assert_memory_not_equal(p.rec.rd.key, rd_key, sizeof(rd_key));
            if (req == SSL_KEY_UPDATE_REQUESTED)
                assert_memory_not_equal(p.rec.wr.key, wr_key, sizeof(wr_key));
            else
                assert_memory_equal(p.rec.wr.key, wr_key, sizeof(wr_key));
            both_ways(&p, 16385, (uint32_t)round + 9);
        }
        tt_close(&p);
        tt_pair_free(&p);
    }
}

/* We update ours; when we ask, OpenSSL answers with its own update on its next write. */
static void test_key_update_from_server(void **state)
{
    (void)state;
    tt_pair_t p;
    connect_peer(&p, 0);
    for (int req = 0; req <= 1; req++) {
        uint8_t rec[WSP_TLSREC_CONTROL_MAX], rd_key[32];
        memcpy(rd_key, p.rec.rd.key, sizeof(rd_key));
        ssize_t n = wsp_tlsrec_key_update(&p.rec, p.cx, req, rec, sizeof(rec));
        assert_true(n > 0);
        assert_int_equal(p.rec.wr.seq, 0);
        assert_int_equal(BIO_write(p.cl_in, rec, (int)n), (int)n);
        both_ways(&p, 64, (uint32_t)req);
        if (req)
            assert_memory_not_equal(p.rec.rd.key, rd_key, sizeof(rd_key));
        else
            assert_memory_equal(p.rec.rd.key, rd_key, sizeof(rd_key));
    }
    tt_close(&p);
    tt_pair_free(&p);
    wsp_tlsrec_t s, c;
    make_pair(0xC02B, &s, &c);
    uint8_t rec[WSP_TLSREC_CONTROL_MAX];
    assert_int_equal(wsp_tlsrec_key_update(&s, cx, 0, rec, sizeof(rec)), -EPROTO); /* 1.2 */
}

/* One direction as a live upgrade carries it: the sequence number, keylen bytes of key, the
 * IV, secretlen bytes of secret (server/conn_ho.c). */
static void carry_dir(wsp_tlsrec_dir_t *to, const wsp_tlsrec_dir_t *from, size_t keylen,
                      size_t secretlen)
{
    to->seq = from->seq;
    memcpy(to->key, from->key, keylen);
    memcpy(to->iv, from->iv, sizeof(to->iv));
    memcpy(to->secret, from->secret, secretlen);
}

/* The record layer rebuilt from the fields a live upgrade carries goes on with OpenSSL's
 * client where the original stopped, both ways, a KeyUpdate each way included; fields that
 * do not add up are refused and the state wiped. */
static void test_resume(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(peers) / sizeof(peers[0]); i++) {
        tt_pair_t p;
        connect_peer(&p, i);
        both_ways(&p, 100, (uint32_t)i);
        int t13 = p.rec.version == 0x0304;
        size_t sl = t13 ? p.rec.hashlen : 0;
        wsp_tlsrec_t r;
        memset(&r, 0xA5, sizeof(r)); /* only the carried fields may count */
        r.suite = p.rec.suite;
        r.version = p.rec.version;
        r.keylen = p.rec.keylen;
        carry_dir(&r.rd, &p.rec.rd, r.keylen, sl);
        carry_dir(&r.wr, &p.rec.wr, r.keylen, sl);
        wsp_tlsrec_t bad = r;
        assert_int_equal(wsp_tlsrec_resume(&r, sl), 0);
        assert_int_equal(r.aead, p.rec.aead);
        assert_int_equal(r.hashlen, p.rec.hashlen);
        OPENSSL_cleanse(&p.rec, sizeof(p.rec));
        p.rec = r;
        both_ways(&p, 16385, (uint32_t)i + 20);
        if (t13) {
            uint8_t rd_key[32];
            memcpy(rd_key, p.rec.rd.key, sizeof(rd_key));
            assert_int_equal(SSL_key_update(p.cl, SSL_KEY_UPDATE_REQUESTED), 1);
            both_ways(&p, 64, (uint32_t)i + 30); /* the client's, then ours in answer */
            assert_memory_not_equal(p.rec.rd.key, rd_key, sizeof(rd_key));
            both_ways(&p, 64, (uint32_t)i + 40);
        }
        wsp_tlsrec_t b = bad;
        b.keylen = bad.keylen == 16 ? 32 : 16;
        assert_int_equal(wsp_tlsrec_resume(&b, sl), -EINVAL);
        assert_int_equal(b.suite, 0); /* wiped */
        b = bad;
        b.version = t13 ? 0x0303 : 0x0304;
        assert_int_equal(wsp_tlsrec_resume(&b, sl), -EINVAL);
        b = bad;
        assert_int_equal(wsp_tlsrec_resume(&b, t13 ? 0 : 32), -EINVAL);
        b = bad;
        b.suite = 0x1304; /* AES-CCM: not ours */
        assert_int_equal(wsp_tlsrec_resume(&b, sl), -EINVAL);
        tt_close(&p);
        tt_pair_free(&p);
    }
}

/* A TLS 1.2 client that renegotiates sends a ClientHello under the record keys: refused. */
static void test_renegotiation(void **state)
{
    (void)state;
    for (size_t i = 3; i < 6; i++) {
        tt_pair_t p;
        connect_peer(&p, i);
        both_ways(&p, 30, 1);
        assert_int_equal(SSL_renegotiate(p.cl), 1);
        assert_true(SSL_do_handshake(p.cl) <= 0);
        tt_cl_flush(&p);
        uint8_t buf[64], alert = 0;
        size_t n = 0;
        assert_int_equal(tt_srv_recv(&p, buf, sizeof(buf), &n, &alert), -EOPNOTSUPP);
        assert_int_equal(alert, WSP_TLS_AL_NO_RENEGOTIATION);
        tt_pair_free(&p);
    }
}

/* A fatal alert we seal reaches the client as that alert. */
static void test_alert_to_client(void **state)
{
    (void)state;
    for (size_t i = 0; i < 6; i += 3) {
        tt_pair_t p;
        connect_peer(&p, i);
        uint8_t rec[WSP_TLSREC_CONTROL_MAX], buf[8];
        ssize_t n = wsp_tlsrec_alert(&p.rec, p.cx, WSP_TLS_AL_UNEXPECTED_MESSAGE, rec, 4);
        assert_int_equal(n, -ENOBUFS);
        n = wsp_tlsrec_alert(&p.rec, p.cx, WSP_TLS_AL_UNEXPECTED_MESSAGE, rec, sizeof(rec));
        assert_true(n > 0);
        assert_int_equal(BIO_write(p.cl_in, rec, (int)n), (int)n);
        assert_true(SSL_read(p.cl, buf, sizeof(buf)) <= 0);
        assert_int_equal(ERR_GET_REASON(ERR_peek_error()),
                         SSL_AD_REASON_OFFSET + WSP_TLS_AL_UNEXPECTED_MESSAGE);
        ERR_clear_error();
        tt_pair_free(&p);
    }
}

/* --- hostile records ---------------------------------------------------------------------------
 */

static int open_one(wsp_tlsrec_t *t, const uint8_t *b, size_t n, wsp_tlsrec_in_t *r)
{
    static uint8_t plain[WSP_TLSREC_OPEN_MAX];
    return wsp_tlsrec_open(t, cx, b, n, plain, sizeof(plain), r);
}

/* Corrupt, truncated, oversize and out-of-place records, on every suite. Errors leave the
 * state as it was: the genuine record still opens afterwards. */
static void test_bad_records(void **state)
{
    (void)state;
    const uint16_t all[] = {0x1301, 0x1302, 0x1303, 0xC02B, 0xC02C, 0xCCA8};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        wsp_tlsrec_t s, c;
        make_pair(all[i], &s, &c);
        int t13 = s.version == 0x0304;
        uint8_t msg[100], rec[200], bad[200];
        tt_fill(msg, sizeof(msg), 5);
        ssize_t n = wsp_tlsrec_seal(&c, cx, msg, sizeof(msg), rec, sizeof(rec));
        assert_true(n > 0);
        wsp_tlsrec_in_t r;
        for (ssize_t pos = 5; pos < n; pos += 7) { /* body and tag */
            memcpy(bad, rec, (size_t)n);
            bad[pos] ^= 0x40;
            assert_int_equal(open_one(&s, bad, (size_t)n, &r), -EBADMSG);
            assert_int_equal(r.alert, WSP_TLS_AL_BAD_RECORD_MAC);
            assert_int_equal(r.used, 0);
        }
        memcpy(bad, rec, (size_t)n); /* the header is authenticated too (1.3 AAD, 1.2 length) */
        bad[4] ^= 1;
        assert_int_equal(open_one(&s, bad, (size_t)n, &r), bad[4] < rec[4] ? -EBADMSG : -EAGAIN);
        for (size_t cut = 0; cut < (size_t)n; cut++) {
            assert_int_equal(open_one(&s, rec, cut, &r), -EAGAIN);
            assert_int_equal(r.need, cut < 5 ? 5 : (size_t)n);
        }
        assert_int_equal(s.rd.seq, 0);
        memcpy(bad, rec, (size_t)n);
        bad[2] = 1; /* legacy version 0x0301 */
        assert_int_equal(open_one(&s, bad, (size_t)n, &r), -EPROTO);
        assert_int_equal(r.alert, WSP_TLS_AL_PROTOCOL_VERSION);
        static const uint8_t ccs[] = {20, 3, 3, 0, 1, 1};
        assert_int_equal(open_one(&s, ccs, sizeof(ccs), &r), -EPROTO);
        assert_int_equal(r.alert, WSP_TLS_AL_UNEXPECTED_MESSAGE);
        static const uint8_t heartbeat[] = {24, 3, 3, 0, 40};
        assert_int_equal(open_one(&s, heartbeat, sizeof(heartbeat), &r), -EPROTO);
        /* TLS 1.3 sends nothing but application_data outside after the handshake. */
        static const uint8_t hs[] = {22, 3, 3, 0, 40};
        assert_int_equal(open_one(&s, hs, sizeof(hs), &r), t13 ? -EPROTO : -EAGAIN);
        /* Oversize: refused from the header alone, before its body could arrive. */
        size_t limit = 16384 + (t13 ? 256 : 2048);
        uint8_t big[5] = {23, 3, 3, (uint8_t)((limit + 1) >> 8), (uint8_t)(limit + 1)};
        assert_int_equal(open_one(&s, big, sizeof(big), &r), -EMSGSIZE);
        assert_int_equal(r.alert, WSP_TLS_AL_RECORD_OVERFLOW);
        big[3] = (uint8_t)(limit >> 8), big[4] = (uint8_t)limit; /* allowed outside, not in */
        assert_int_equal(open_one(&s, big, sizeof(big), &r), -EMSGSIZE);
        uint8_t tiny[5 + 15] = {23, 3, 3, 0, 15}; /* shorter than a tag */
        assert_int_equal(open_one(&s, tiny, sizeof(tiny), &r), -EBADMSG);
        /* After all that the genuine record opens at sequence 0. */
        assert_int_equal(open_one(&s, rec, (size_t)n, &r), 0);
        assert_int_equal(r.used, (size_t)n);
        assert_int_equal(r.len, sizeof(msg));
        /* and a replay of it fails: the sequence moved on */
        assert_int_equal(open_one(&s, rec, (size_t)n, &r), -EBADMSG);
        uint8_t small[8];
        assert_int_equal(wsp_tlsrec_open(&s, cx, rec, (size_t)n, small, sizeof(small), &r),
                         -ENOBUFS);
    }
}

/* TLS 1.3 inner plaintext (RFC 8446 5.4): padding is stripped; no type at all, a type that
 * may not be there, or more than 2^14 + 1 bytes inside are errors. */
static void test_inner_plaintext(void **state)
{
    (void)state;
    wsp_tlsrec_t s, c;
    make_pair(0x1303, &s, &c);
    static uint8_t inner[16384 + 2], rec[16384 + 64];
    wsp_tlsrec_in_t r;
    memcpy(inner, "hi\x17\0\0\0\0", 7); /* "hi", application_data, 4 bytes of padding */
    size_t n = tlsref_seal13(&c, inner, 7, rec);
    assert_int_equal(open_one(&s, rec, n, &r), 0);
    assert_int_equal(r.type, WSP_TLS_CT_APPDATA);
    assert_int_equal(r.len, 2);
    memcpy(inner, "\x17", 1); /* zero-length application data: allowed */
    n = tlsref_seal13(&c, inner, 1, rec);
    assert_int_equal(open_one(&s, rec, n, &r), 0);
    assert_int_equal(r.len, 0);
    memset(inner, 0, 40); /* no content type */
    n = tlsref_seal13(&c, inner, 40, rec);
    assert_int_equal(open_one(&s, rec, n, &r), -EPROTO);
    assert_int_equal(r.alert, WSP_TLS_AL_UNEXPECTED_MESSAGE);
    c.wr.seq--;                           /* re-use the sequence the refused record took */
    n = tlsref_seal13(&c, inner, 0, rec); /* a tag and nothing else */
    assert_int_equal(open_one(&s, rec, n, &r), -EPROTO);
    c.wr.seq--;
    static const uint8_t types[] = {20, 24, 0xFF};
    for (size_t i = 0; i < sizeof(types); i++) {
        inner[0] = 'x';
        inner[1] = types[i];
        n = tlsref_seal13(&c, inner, 2, rec);
        assert_int_equal(open_one(&s, rec, n, &r), -EPROTO);
        assert_int_equal(r.alert, WSP_TLS_AL_UNEXPECTED_MESSAGE);
        c.wr.seq--;
    }
    memset(inner, 'a', sizeof(inner)); /* 2^14 + 1 bytes inside is the most there may be */
    inner[16384] = 23;
    n = tlsref_seal13(&c, inner, 16385, rec);
    assert_int_equal(open_one(&s, rec, n, &r), 0);
    assert_int_equal(r.len, 16384);
    inner[16384] = 'a';
    inner[16385] = 23;
    n = tlsref_seal13(&c, inner, 16386, rec);
    assert_int_equal(open_one(&s, rec, n, &r), -EMSGSIZE);
    assert_int_equal(r.alert, WSP_TLS_AL_RECORD_OVERFLOW);
}

static int control(wsp_tlsrec_t *t, uint8_t type, const char *p, size_t len, size_t *outlen,
                   uint8_t *alert)
{
    wsp_tlsrec_in_t r = {.type = type, .len = len};
    uint8_t out[WSP_TLSREC_CONTROL_MAX];
    int rv = wsp_tlsrec_control(t, cx, &r, (const uint8_t *)p, out, sizeof(out), outlen);
    *alert = r.alert;
    return rv;
}

static void test_control(void **state)
{
    (void)state;
    wsp_tlsrec_t s, c, s12, c12;
    make_pair(0x1301, &s, &c);
    make_pair(0xC02F, &s12, &c12);
    size_t ol;
    uint8_t al;
    assert_int_equal(control(&s, 21, "\x01\x00", 2, &ol, &al), -ESHUTDOWN);
    assert_int_equal(control(&s, 21, "\x02\x28", 2, &ol, &al), -ECONNRESET);
    assert_int_equal(al, 40); /* the peer's handshake_failure */
    assert_int_equal(control(&s, 21, "\x02", 1, &ol, &al), -EPROTO);
    assert_int_equal(al, WSP_TLS_AL_DECODE_ERROR);
    assert_int_equal(control(&s, 21, "\x01\x00\x01\x00", 4, &ol, &al), -EPROTO);
    assert_int_equal(control(&s12, 21, "\x01\x5a", 2, &ol, &al), -ECONNRESET); /* warning */
    /* KeyUpdate: well-formed or not. */
    assert_int_equal(control(&s, 22, "\x18\x00\x00\x01\x02", 5, &ol, &al), -EPROTO);
    assert_int_equal(al, WSP_TLS_AL_ILLEGAL_PARAMETER);
    assert_int_equal(control(&s, 22, "\x18\x00\x00\x02\x00\x00", 6, &ol, &al), -EPROTO);
    assert_int_equal(al, WSP_TLS_AL_DECODE_ERROR);
    assert_int_equal(control(&s, 22, "\x18\x00\x00", 3, &ol, &al), -EPROTO); /* fragment */
    assert_int_equal(al, WSP_TLS_AL_DECODE_ERROR);
    assert_int_equal(control(&s, 22, "\x18\x00\x00\x01\x00\x18\x00\x00\x01\x00", 10, &ol, &al),
                     -EPROTO);
    assert_int_equal(control(&s, 22, "", 0, &ol, &al), -EPROTO);
    assert_int_equal(al, WSP_TLS_AL_UNEXPECTED_MESSAGE);
    assert_int_equal(control(&s, 22, "\x04\x00\x00\x00", 4, &ol, &al), -EPROTO); /* NST */
    assert_int_equal(control(&s, 22, "\x01\x00\x00\x00", 4, &ol, &al), -EPROTO); /* hello */
    assert_int_equal(al, WSP_TLS_AL_UNEXPECTED_MESSAGE);
    assert_int_equal(control(&s, 23, "x", 1, &ol, &al), -EPROTO);
    assert_int_equal(s.rd.seq, 0); /* none of these changed the read key */
    /* TLS 1.2: a ClientHello is renegotiation; anything else is unexpected. */
    assert_int_equal(control(&s12, 22, "\x01\x00\x00\x00", 4, &ol, &al), -EOPNOTSUPP);
    assert_int_equal(al, WSP_TLS_AL_NO_RENEGOTIATION);
    assert_int_equal(control(&s12, 22, "\x00\x00\x00\x00", 4, &ol, &al), -EPROTO);
    assert_int_equal(control(&s12, 22, "\x18\x00\x00\x01\x00", 5, &ol, &al), -EPROTO);
    /* A requested update needs room for our answer: refused before anything changes. */
    wsp_tlsrec_in_t r = {.type = 22, .len = 5};
    uint8_t out[8];
    assert_int_equal(wsp_tlsrec_control(&s, cx, &r, (const uint8_t *)"\x18\x00\x00\x01\x01", out,
                                        sizeof(out), &ol),
                     -ENOBUFS);
    assert_memory_equal(&s.rd, &c.wr, sizeof(s.rd));
    /* The same through real records: the client asks, we answer, both keys move. */
    uint8_t rec[64], plain[WSP_TLSREC_OPEN_MAX], reply[WSP_TLSREC_CONTROL_MAX];
    ssize_t n = wsp_tlsrec_key_update(&c, cx, 1, rec, sizeof(rec));
    assert_true(n > 0);
    assert_int_equal(wsp_tlsrec_open(&s, cx, rec, (size_t)n, plain, sizeof(plain), &r), 0);
    assert_int_equal(r.type, WSP_TLS_CT_HANDSHAKE);
    assert_int_equal(wsp_tlsrec_control(&s, cx, &r, plain, reply, sizeof(reply), &ol), 0);
    assert_true(ol > 0);
    assert_int_equal(wsp_tlsrec_open(&c, cx, reply, ol, plain, sizeof(plain), &r), 0);
    assert_int_equal(wsp_tlsrec_control(&c, cx, &r, plain, out, sizeof(out), &ol), 0);
    assert_int_equal(ol, 0); /* not requested back */
    assert_memory_equal(&s.rd, &c.wr, sizeof(s.rd));
    assert_memory_equal(&s.wr, &c.rd, sizeof(s.wr));
    pass(&s, &c, 100, 1);
    pass(&c, &s, 100, 2);
}

/* --- sequence limits (RFC 8446 5.5) ------------------------------------------------------------
 */

static void test_seq_limit(void **state)
{
    (void)state;
    uint8_t msg[16385], rec[2 * 16384 + 128], al[WSP_TLSREC_CONTROL_MAX];
    tt_fill(msg, sizeof(msg), 9);
    const uint16_t gcm[] = {0x1301, 0xC02B};
    for (size_t i = 0; i < 2; i++) {
        wsp_tlsrec_t s, c;
        make_pair(gcm[i], &s, &c);
        const uint64_t lim = WSP_TLSREC_AESGCM_LIMIT;
        s.wr.seq = c.rd.seq = lim - 3;
        /* two records would leave less than the two kept for KeyUpdate and alert */
        assert_int_equal(wsp_tlsrec_seal(&s, cx, msg, 16385, rec, sizeof(rec)), -EKEYEXPIRED);
        assert_int_equal(s.wr.seq, lim - 3);
        pass(&s, &c, 30, 1);
        assert_int_equal(s.wr.seq, lim - 2);
        assert_int_equal(wsp_tlsrec_seal(&s, cx, msg, 1, rec, sizeof(rec)), -EKEYEXPIRED);
        assert_int_equal(wsp_tlsrec_seal(&s, cx, msg, 0, rec, sizeof(rec)), 0);
        if (s.version == 0x0304) { /* rekey: a fresh key at sequence 0 */
            ssize_t n = wsp_tlsrec_key_update(&s, cx, 0, rec, sizeof(rec));
            assert_true(n > 0);
            wsp_tlsrec_in_t r;
            assert_int_equal(open_one(&c, rec, (size_t)n, &r), 0);
            size_t ol;
            assert_int_equal(wsp_tlsrec_control(&c, cx, &r, (const uint8_t *)"\x18\x00\x00\x01\x00",
                                                al, sizeof(al), &ol),
                             0);
            assert_int_equal(s.wr.seq, 0);
            pass(&s, &c, 16385, 3);
        } else {
            assert_int_equal(wsp_tlsrec_key_update(&s, cx, 0, rec, sizeof(rec)), -EPROTO);
        }
        s.wr.seq = lim - 2; /* the reserve: exactly two control records, then nothing */
        assert_true(wsp_tlsrec_alert(&s, cx, WSP_TLS_AL_CLOSE_NOTIFY, al, sizeof(al)) > 0);
        assert_true(wsp_tlsrec_alert(&s, cx, WSP_TLS_AL_CLOSE_NOTIFY, al, sizeof(al)) > 0);
        assert_int_equal(wsp_tlsrec_alert(&s, cx, WSP_TLS_AL_CLOSE_NOTIFY, al, sizeof(al)),
                         -EKEYEXPIRED);
        s.wr.seq = lim + 5; /* set from outside beyond the limit: still refused */
        assert_int_equal(wsp_tlsrec_seal(&s, cx, msg, 1, rec, sizeof(rec)), -EKEYEXPIRED);
    }
    /* ChaCha20-Poly1305: only the 64-bit wrap; the read side refuses to wrap too. */
    wsp_tlsrec_t s, c;
    make_pair(0x1303, &s, &c);
    s.wr.seq = c.rd.seq = UINT64_MAX - 3;
    pass(&s, &c, 30, 4);
    assert_int_equal(wsp_tlsrec_seal(&s, cx, msg, 1, rec, sizeof(rec)), -EKEYEXPIRED);
    assert_true(wsp_tlsrec_alert(&s, cx, WSP_TLS_AL_CLOSE_NOTIFY, al, sizeof(al)) > 0);
    ssize_t n = wsp_tlsrec_alert(&s, cx, WSP_TLS_AL_CLOSE_NOTIFY, al, sizeof(al));
    assert_true(n > 0);
    assert_int_equal(s.wr.seq, UINT64_MAX);
    c.rd.seq = UINT64_MAX;
    wsp_tlsrec_in_t r;
    assert_int_equal(open_one(&c, al, (size_t)n, &r), -EKEYEXPIRED);
}

/* --- kernel TLS ------------------------------------------------------------------------------- */

static void test_ktls_info(void **state)
{
    (void)state;
    wsp_tlsrec_t s, c;
    uint8_t buf[64];
    make_pair(0x1301, &s, &c);
    s.wr.seq = 0x0102030405060708ull;
    struct tls12_crypto_info_aes_gcm_128 g;
    assert_int_equal(wsp_tlsrec_ktls_info(&s, 1, buf, sizeof(buf)), sizeof(g));
    memcpy(&g, buf, sizeof(g));
    assert_int_equal(g.info.version, TLS_1_3_VERSION);
    assert_int_equal(g.info.cipher_type, TLS_CIPHER_AES_GCM_128);
    assert_memory_equal(g.key, s.wr.key, 16);
    assert_memory_equal(g.salt, s.wr.iv, 4);
    assert_memory_equal(g.iv, s.wr.iv + 4, 8);
    assert_memory_equal(g.rec_seq, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
    assert_int_equal(wsp_tlsrec_ktls_info(&s, 0, buf, sizeof(buf)), sizeof(g));
    memcpy(&g, buf, sizeof(g));
    assert_memory_equal(g.key, s.rd.key, 16);
    assert_memory_equal(g.rec_seq, "\0\0\0\0\0\0\0\0", 8);
    assert_int_equal(wsp_tlsrec_ktls_info(&s, 1, buf, sizeof(g) - 1), -EINVAL);

    make_pair(0xC02C, &s, &c); /* TLS 1.2 AES-256-GCM: iv = the next explicit nonce = seq */
    s.wr.seq = 1;
    struct tls12_crypto_info_aes_gcm_256 g2;
    assert_int_equal(wsp_tlsrec_ktls_info(&s, 1, buf, sizeof(buf)), sizeof(g2));
    memcpy(&g2, buf, sizeof(g2));
    assert_int_equal(g2.info.version, TLS_1_2_VERSION);
    assert_int_equal(g2.info.cipher_type, TLS_CIPHER_AES_GCM_256);
    assert_memory_equal(g2.key, s.wr.key, 32);
    assert_memory_equal(g2.salt, s.wr.iv, 4);
    assert_memory_equal(g2.iv, "\0\0\0\0\0\0\0\x01", 8);
    assert_memory_equal(g2.rec_seq, "\0\0\0\0\0\0\0\x01", 8);

    make_pair(0xCCA8, &s, &c);
    struct tls12_crypto_info_chacha20_poly1305 cc;
    assert_int_equal(wsp_tlsrec_ktls_info(&s, 1, buf, sizeof(buf)), sizeof(cc));
    memcpy(&cc, buf, sizeof(cc));
    assert_int_equal(cc.info.cipher_type, TLS_CIPHER_CHACHA20_POLY1305);
    assert_memory_equal(cc.key, s.wr.key, 32);
    assert_memory_equal(cc.iv, s.wr.iv, 12);
}

/* Where the kernel has no tls ULP (this machine), enabling fails with -ENOENT and the caller
 * keeps the user-space path. Where it has one, the kernel's record must open here. */
static void test_ktls_enable(void **state)
{
    (void)state;
    int l = socket(AF_INET, SOCK_STREAM, 0), a = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(l >= 0 && a >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(l, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(l, 1), 0);
    assert_int_equal(getsockname(l, (struct sockaddr *)&sa, &sl), 0);
    assert_int_equal(connect(a, (struct sockaddr *)&sa, sizeof(sa)), 0);
    int b = accept(l, NULL, NULL);
    assert_true(b >= 0);
    wsp_tlsrec_t s, c;
    make_pair(0x1301, &s, &c);
    int rv = wsp_tlsrec_ktls_enable(&s, b, 0);
    if (rv == -ENOENT) {
        print_message("kernel has no tls ULP: user-space records (kTLS path untested)\n");
    } else {
        assert_int_equal(rv, 0);
        assert_int_equal(send(b, "hello", 5, 0), 5);
        uint8_t rec[64];
        ssize_t n = recv(a, rec, sizeof(rec), MSG_WAITALL);
        assert_int_equal(n, 5 + 5 + 1 + 16);
        wsp_tlsrec_in_t r;
        assert_int_equal(open_one(&c, rec, (size_t)n, &r), 0);
        assert_int_equal(r.len, 5);
    }
    close(a);
    close(b);
    close(l);
}

static int setup(void **state)
{
    (void)state;
    cx = EVP_CIPHER_CTX_new();
    return cx == NULL ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < 6; i++) {
        SSL_CTX_free(cctxs[i]);
        wsp_tls_ctx_free(sctxs[i]);
    }
    EVP_CIPHER_CTX_free(cx);
    tt_certs_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc8448),
        cmocka_unit_test(test_all_suites),
        cmocka_unit_test(test_openssl_traffic),
        cmocka_unit_test(test_key_update_from_client),
        cmocka_unit_test(test_key_update_from_server),
        cmocka_unit_test(test_resume),
        cmocka_unit_test(test_renegotiation),
        cmocka_unit_test(test_alert_to_client),
        cmocka_unit_test(test_bad_records),
        cmocka_unit_test(test_inner_plaintext),
        cmocka_unit_test(test_control),
        cmocka_unit_test(test_seq_limit),
        cmocka_unit_test(test_ktls_info),
        cmocka_unit_test(test_ktls_enable),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
