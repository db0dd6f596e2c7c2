/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/rand.h>

#include "tlstest.h"

/* --- OpenSSL's heap, counted: every allocation carries its size in front -------------------- */

static atomic_long live_bytes;

#define HDR_SZ 16 /* keeps OpenSSL's alignment */

static void *cnt_malloc(size_t n, const char *file, int line)
{
    (void)file, (void)line;
    uint8_t *p = malloc(n + HDR_SZ);
    if (p == NULL)
        return NULL;
    memcpy(p, &n, sizeof(n));
    atomic_fetch_add(&live_bytes, (long)n);
    return p + HDR_SZ;
}

static void cnt_free(void *q, const char *file, int line)
{
    (void)file, (void)line;
    if (q == NULL)
        return;
    uint8_t *p = (uint8_t *)q - HDR_SZ;
    size_t n;
    memcpy(&n, p, sizeof(n));
    atomic_fetch_sub(&live_bytes, (long)n);
    free(p);
}

static void *cnt_realloc(void *q, size_t n, const char *file, int line)
{
    if (q == NULL)
        return cnt_malloc(n, file, line);
    if (n == 0) {
        cnt_free(q, file, line);
        return NULL;
    }
    uint8_t *p = (uint8_t *)q - HDR_SZ;
    size_t old;
    memcpy(&old, p, sizeof(old));
    uint8_t *np = realloc(p, n + HDR_SZ);
    if (np == NULL)
        return NULL;
    memcpy(np, &n, sizeof(n));
    atomic_fetch_add(&live_bytes, (long)n - (long)old);
    return np + HDR_SZ;
}

/* --- context ------------------------------------------------------------------------------ */

static void expect_ctx_error(const char *cert, const char *key, const char *want)
{
    char err[256] = "";
    wsp_tls_ctx_t *c = wsp_tls_ctx_new(tt_path(0, cert), tt_path(1, key), err, sizeof(err));
    assert_null(c);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" does not say \"%s\"", err, want);
    assert_null(strchr(err, '\n')); /* one line */
    assert_null(strstr(err, "BEGIN"));
    assert_int_equal(ERR_peek_error(), 0); /* nothing left on this thread's queue */
}

static void test_ctx_errors(void **state)
{
    (void)state;
    expect_ctx_error("missing.pem", "ec.key", "No such file or directory");
    expect_ctx_error("ec.pem", "missing.key", "missing.key: No such file");
    expect_ctx_error("garbage.pem", "ec.key", "not a PEM certificate");
    expect_ctx_error("ec.pem", "garbage.pem", "not a PEM private key");
    expect_ctx_error("ec.pem", "other.key", "does not match certificate");
    expect_ctx_error("rsa.pem", "ec.key", "does not match certificate");
    expect_ctx_error("ec.key", "ec.key", "not a PEM certificate");
    wsp_tls_ctx_t *c = tt_server_ctx("ec.pem", "ec.key");
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN] = {1};
    assert_int_equal(wsp_tls_ctx_set_ticket_keys(c, keys), 0);
    wsp_tls_ctx_free(c);
    wsp_tls_ctx_free(NULL);
}

/* The chain file's intermediate lets a client that trusts only the root verify us; the leaf
 * alone does not, and that client's alert is the failure reason. */
static void test_chain(void **state)
{
    (void)state;
    SSL_CTX *cc = tt_client_ctx("ca.pem", TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL);
    wsp_tls_ctx_t *chain = tt_server_ctx("chain.pem", "chain.key");
    tt_pair_t p;
    tt_pair_init(&p, cc, chain, NULL);
    tt_connect(&p);
    assert_int_equal(SSL_get_verify_result(p.cl), X509_V_OK);
    tt_pair_free(&p);

    wsp_tls_ctx_t *leaf = tt_server_ctx("leaf.pem", "chain.key");
    tt_pair_init(&p, cc, leaf, NULL);
    assert_int_equal(tt_handshake(&p), -EPROTO);
    assert_string_equal(wsp_tls_fail_name(wsp_tls_hs_reason(p.hs)), "client_alert");
    tt_pair_free(&p);
    wsp_tls_ctx_free(leaf);
    wsp_tls_ctx_free(chain);
    SSL_CTX_free(cc);
}

/* --- every suite, both versions ------------------------------------------------------------- */

static const struct {
    int version;
    const char *ciphers, *suites, *cert;
    uint16_t id;
} cases[] = {
    {TLS1_3_VERSION, NULL, "TLS_AES_128_GCM_SHA256", "ec", 0x1301},
    {TLS1_3_VERSION, NULL, "TLS_AES_256_GCM_SHA384", "ec", 0x1302},
    {TLS1_3_VERSION, NULL, "TLS_CHACHA20_POLY1305_SHA256", "ec", 0x1303},
    {TLS1_3_VERSION, NULL, "TLS_AES_128_GCM_SHA256", "rsa", 0x1301},
    {TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256", NULL, "ec", 0xC02B},
    {TLS1_2_VERSION, "ECDHE-ECDSA-AES256-GCM-SHA384", NULL, "ec", 0xC02C},
    {TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", NULL, "ec", 0xCCA9},
    {TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256", NULL, "rsa", 0xC02F},
    {TLS1_2_VERSION, "ECDHE-RSA-AES256-GCM-SHA384", NULL, "rsa", 0xC030},
    {TLS1_2_VERSION, "ECDHE-RSA-CHACHA20-POLY1305", NULL, "rsa", 0xCCA8},
};

static SSL_CTX *case_client(size_t i)
{
    return tt_client_ctx("ca.pem", cases[i].version, cases[i].version, cases[i].ciphers,
                         cases[i].suites);
}

static wsp_tls_ctx_t *case_server(size_t i)
{
    char cert[16], key[16];
    snprintf(cert, sizeof(cert), "%s.pem", cases[i].cert);
    snprintf(key, sizeof(key), "%s.key", cases[i].cert);
    return tt_server_ctx(cert, key);
}

/* One message each way proves both keys and both sequence numbers agree with OpenSSL's. */
static void exchange(tt_pair_t *p, uint32_t seed)
{
    uint8_t msg[100], got[100];
    tt_fill(msg, sizeof(msg), seed);
    tt_srv_send(p, msg, sizeof(msg));
    tt_cl_read(p, got, sizeof(got));
    assert_memory_equal(got, msg, sizeof(msg));
    tt_fill(msg, sizeof(msg), seed + 1);
    tt_cl_write(p, msg, sizeof(msg));
    size_t n = 0;
    uint8_t alert;
    assert_int_equal(tt_srv_recv(p, got, sizeof(got), &n, &alert), 0);
    assert_int_equal(n, sizeof(msg));
    assert_memory_equal(got, msg, sizeof(msg));
}

static void test_suites(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        SSL_CTX *cc = case_client(i);
        assert_int_equal(SSL_CTX_set_alpn_protos(cc, (const uint8_t *)"\x02h2\x08http/1.1", 12), 0);
        wsp_tls_ctx_t *sc = case_server(i);
        tt_pair_t p;
        tt_pair_init(&p, cc, sc, NULL);
        tt_connect(&p);
        int t13 = cases[i].version == TLS1_3_VERSION;
        assert_int_equal(p.info.version, t13 ? 0x0304 : 0x0303);
        assert_int_equal(p.info.suite, cases[i].id);
        assert_int_equal(p.info.resumed, 0);
        assert_int_equal(p.info.alpn, 1);
        assert_true(p.info.hs_ns > 0);
        assert_non_null(wsp_tlsrec_suite_name(p.info.suite));
        /* What OpenSSL did, counted: 1.3 wrote one ticket record under the new key; 1.2's
         * Finished took sequence 0 each way. The exchange below proves OpenSSL agrees. */
        assert_int_equal(p.rec.wr.seq, 1);
        assert_int_equal(p.rec.rd.seq, t13 ? 0 : 1);
        const uint8_t *alpn;
        unsigned alen;
        SSL_get0_alpn_selected(p.cl, &alpn, &alen);
        assert_int_equal(alen, 8);
        assert_memory_equal(alpn, "http/1.1", 8);
        exchange(&p, (uint32_t)i);
        exchange(&p, (uint32_t)i + 100);
        tt_pair_free(&p);
        wsp_tls_ctx_free(sc);
        SSL_CTX_free(cc);
    }
}

/* TLS 1.3 lets the client write right after its Finished: those bytes must be left over for
 * the record layer, not swallowed by the handshake. */
static void test_leftover(void **state)
{
    (void)state;
    SSL_CTX *cc = tt_client_ctx("ca.pem", TLS1_3_VERSION, TLS1_3_VERSION, NULL, NULL);
    wsp_tls_ctx_t *sc = tt_server_ctx("ec.pem", "ec.key");
    tt_pair_t p;
    tt_pair_init(&p, cc, sc, NULL);
    size_t used;
    tt_cl_hello(&p);
    assert_int_equal(wsp_tls_hs_feed(p.hs, p.in, p.nin, &used), 0);
    assert_int_equal(used, p.nin);
    p.nin = 0;
    assert_true(wsp_tls_hs_pending(p.hs) > 0);
    tt_hs_flush(&p);
    assert_int_equal(SSL_do_handshake(p.cl), 1); /* Finished written, client done */
    static const char req[] = "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    tt_cl_write(&p, (const uint8_t *)req, sizeof(req) - 1);
    size_t before = p.nin;
    assert_int_equal(wsp_tls_hs_feed(p.hs, p.in, p.nin, &used), 1);
    assert_true(used < before);
    memmove(p.in, p.in + used, p.nin - used);
    p.nin -= used;
    assert_int_equal(wsp_tls_hs_detach(p.hs, &p.rec, &p.info), -EBUSY); /* the ticket waits */
    tt_hs_flush(&p);
    assert_int_equal(wsp_tls_hs_detach(p.hs, &p.rec, &p.info), 0);
    uint8_t got[64];
    size_t glen = 0;
    uint8_t alert;
    assert_int_equal(tt_srv_recv(&p, got, sizeof(got), &glen, &alert), 0);
    assert_int_equal(glen, sizeof(req) - 1);
    assert_memory_equal(got, req, glen);
    assert_int_equal(p.nin, 0);
    exchange(&p, 7);
    tt_pair_free(&p);
    wsp_tls_ctx_free(sc);
    SSL_CTX_free(cc);
}

/* A client whose first key share is for a group we do not take gets a HelloRetryRequest: an
 * extra round trip and more records before the application key, still counted right. */
static void test_hello_retry(void **state)
{
    (void)state;
    SSL_CTX *cc = tt_client_ctx("ca.pem", TLS1_3_VERSION, TLS1_3_VERSION, NULL, NULL);
    assert_int_equal(SSL_CTX_set1_groups_list(cc, "P-521:X25519"), 1);
    wsp_tls_ctx_t *sc = tt_server_ctx("ec.pem", "ec.key");
    tt_pair_t p;
    tt_pair_init(&p, cc, sc, NULL);
    tt_cl_hello(&p);
    size_t used;
    assert_int_equal(wsp_tls_hs_feed(p.hs, p.in, p.nin, &used), 0);
    p.nin = 0;
    size_t hrr = wsp_tls_hs_pending(p.hs);
    assert_true(hrr > 0 && hrr < 200); /* a HelloRetryRequest (and CCS), not our whole flight */
    tt_hs_flush(&p);
    assert_int_equal(tt_handshake(&p), 1);
    assert_int_equal(wsp_tls_hs_detach(p.hs, &p.rec, &p.info), 0);
    assert_int_equal(p.rec.wr.seq, 1);
    exchange(&p, 5);
    tt_close(&p);
    tt_pair_free(&p);
    wsp_tls_ctx_free(sc);
    SSL_CTX_free(cc);
}

/* --- resumption ------------------------------------------------------------------------------ */

/* A full handshake whose client keeps the ticket; returns the client's session. */
static SSL_SESSION *first_session(SSL_CTX *cc, wsp_tls_ctx_t *sc)
{
    tt_pair_t p;
    tt_pair_init(&p, cc, sc, NULL);
    tt_connect(&p);
    assert_int_equal(p.info.resumed, 0);
    exchange(&p, 1); /* the client reads the TLS 1.3 ticket on the way */
    SSL_SESSION *s = SSL_get1_session(p.cl);
    assert_non_null(s);
    assert_int_equal(SSL_SESSION_is_resumable(s), 1);
    tt_close(&p); /* OpenSSL marks a session not resumable if SSL_free() comes first */
    assert_int_equal(SSL_SESSION_is_resumable(s), 1);
    tt_pair_free(&p);
    return s;
}

static void resume(SSL_CTX *cc, wsp_tls_ctx_t *sc, SSL_SESSION *s, int want)
{
    tt_pair_t p;
    tt_pair_init(&p, cc, sc, s);
    tt_connect(&p);
    assert_int_equal(p.info.resumed, want);
    assert_int_equal(SSL_session_reused(p.cl), want);
    exchange(&p, 2);
    exchange(&p, 3);
    tt_close(&p);
    tt_pair_free(&p);
}

static void test_resumption(void **state)
{
    (void)state;
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN], other[WSP_TLS_TICKET_KEYS_LEN];
    assert_int_equal(RAND_bytes(keys, sizeof(keys)), 1);
    assert_int_equal(RAND_bytes(other, sizeof(other)), 1);
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_CTX *cc = tt_client_ctx("ca.pem", v, v, NULL, NULL);
        wsp_tls_ctx_t *a = tt_server_ctx("ec.pem", "ec.key");
        wsp_tls_ctx_t *b = tt_server_ctx("ec.pem", "ec.key");
        wsp_tls_ctx_t *c = tt_server_ctx("ec.pem", "ec.key");
        assert_int_equal(wsp_tls_ctx_set_ticket_keys(a, keys), 0);
        assert_int_equal(wsp_tls_ctx_set_ticket_keys(b, keys), 0);
        assert_int_equal(wsp_tls_ctx_set_ticket_keys(c, other), 0);
        SSL_SESSION *s = first_session(cc, a);
        resume(cc, a, s, 1); /* same context */
        resume(cc, b, s, 1); /* another process or a reload: same keys */
        resume(cc, c, s, 0); /* other keys: a full handshake, still fine */
        SSL_SESSION_free(s);
        wsp_tls_ctx_free(a);
        wsp_tls_ctx_free(b);
        wsp_tls_ctx_free(c);
        SSL_CTX_free(cc);
    }
}

/* --- failures -------------------------------------------------------------------------------- */

static void expect_not_tls(wsp_tls_ctx_t *sc, const uint8_t *b, size_t n)
{
    wsp_tls_hs_t *h = wsp_tls_hs_new(sc);
    assert_non_null(h);
    size_t used;
    assert_int_equal(wsp_tls_hs_feed(h, b, n, &used), -EPROTO);
    assert_true(used <= WSP_TLSREC_HDR); /* decided from the first bytes */
    assert_int_equal(wsp_tls_hs_reason(h), WSP_TLS_FAIL_NOT_TLS);
    assert_string_equal(wsp_tls_fail_name(wsp_tls_hs_reason(h)), "not_tls");
    assert_int_equal(wsp_tls_hs_pending(h), 0); /* no alert for something that is not TLS */
    assert_int_equal(wsp_tls_hs_feed(h, b, n, &used), -EPROTO); /* stays failed */
    assert_int_equal(used, 0);
    wsp_tls_hs_free(h);
}

static void test_not_tls(void **state)
{
    (void)state;
    wsp_tls_ctx_t *sc = tt_server_ctx("ec.pem", "ec.key");
    static const char get[] = "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n\r\n";
    expect_not_tls(sc, (const uint8_t *)get, sizeof(get) - 1);
    uint8_t noise[512];
    for (uint32_t seed = 1; seed < 50; seed++) {
        tt_fill(noise, sizeof(noise), seed);
        if (noise[0] == 0x16 && noise[1] == 3)
            continue; /* looks like a TLS record: not this test's case */
        expect_not_tls(sc, noise, sizeof(noise));
    }
    static const uint8_t sslv2[] = {0x80, 0x2e, 0x01, 0x03, 0x01}; /* SSLv2-format hello */
    expect_not_tls(sc, sslv2, sizeof(sslv2));
    /* A record header claiming 64 KiB is refused at once, not buffered. */
    static const uint8_t huge[] = {0x16, 0x03, 0x01, 0xFF, 0xFF, 0x01};
    wsp_tls_hs_t *h = wsp_tls_hs_new(sc);
    size_t used;
    assert_int_equal(wsp_tls_hs_feed(h, huge, sizeof(huge), &used), -EPROTO);
    assert_string_equal(wsp_tls_fail_name(wsp_tls_hs_reason(h)), "protocol");
    wsp_tls_hs_free(h);
    wsp_tls_ctx_free(sc);
}

/* A real ClientHello fed one byte at a time, then only half of one (a stall: the server's
 * timeout will end it, the driver just waits). */
static void test_split_and_truncated(void **state)
{
    (void)state;
    SSL_CTX *cc = tt_client_ctx("ca.pem", TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL);
    wsp_tls_ctx_t *sc = tt_server_ctx("ec.pem", "ec.key");
    tt_pair_t p;
    tt_pair_init(&p, cc, sc, NULL);
    tt_cl_hello(&p);
    size_t total = p.nin, used;
    for (size_t i = 0; i < total; i++) {
        assert_int_equal(wsp_tls_hs_feed(p.hs, p.in + i, 1, &used), 0);
        assert_int_equal(used, 1);
        if (i + 1 < total)
            assert_int_equal(wsp_tls_hs_pending(p.hs), 0);
    }
    assert_true(wsp_tls_hs_pending(p.hs) > 0); /* the whole ClientHello got an answer */
    p.nin = 0;
    tt_hs_flush(&p);
    assert_int_equal(tt_handshake(&p), 1);
    tt_pair_free(&p);

    tt_pair_init(&p, cc, sc, NULL);
    tt_cl_hello(&p);
    assert_int_equal(wsp_tls_hs_feed(p.hs, p.in, p.nin / 2, &used), 0);
    assert_int_equal(used, p.nin / 2);
    assert_int_equal(wsp_tls_hs_pending(p.hs), 0);
    assert_int_equal(wsp_tls_hs_reason(p.hs), WSP_TLS_FAIL_NONE);
    wsp_tlsrec_t t;
    wsp_tls_info_t info;
    assert_int_equal(wsp_tls_hs_detach(p.hs, &t, &info), -EINVAL);
    tt_pair_free(&p);
    wsp_tls_ctx_free(sc);
    SSL_CTX_free(cc);
}

static void expect_failure(SSL_CTX *cc, const char *reason)
{
    wsp_tls_ctx_t *sc = tt_server_ctx("ec.pem", "ec.key");
    tt_pair_t p;
    tt_pair_init(&p, cc, sc, NULL);
    assert_int_equal(tt_handshake(&p), -EPROTO);
    assert_string_equal(wsp_tls_fail_name(wsp_tls_hs_reason(p.hs)), reason);
    assert_int_equal(ERR_peek_error(), 0);
    tt_pair_free(&p);
    wsp_tls_ctx_free(sc);
    SSL_CTX_free(cc);
}

static void test_failure_reasons(void **state)
{
    (void)state;
    /* TLS 1.1 only (level 0 lets this client build such a hello at all). */
    expect_failure(tt_client_ctx(NULL, TLS1_1_VERSION, TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0", NULL),
                   "version");
    /* CBC with RSA key exchange only: nothing we offer. */
    expect_failure(tt_client_ctx(NULL, TLS1_2_VERSION, TLS1_2_VERSION, "AES128-SHA", NULL),
                   "no_shared_cipher");
    expect_failure(
        tt_client_ctx(NULL, TLS1_3_VERSION, TLS1_3_VERSION, NULL, "TLS_AES_128_CCM_SHA256"),
        "no_shared_cipher");
    SSL_CTX *h2 = tt_client_ctx(NULL, TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL);
    assert_int_equal(SSL_CTX_set_alpn_protos(h2, (const uint8_t *)"\x02h2", 3), 0);
    expect_failure(h2, "alpn");
    /* A client that does not trust our CA aborts: its alert is the reason. */
    expect_failure(tt_client_ctx("other-ca.pem", TLS1_3_VERSION, TLS1_3_VERSION, NULL, NULL),
                   "client_alert");
    expect_failure(tt_client_ctx("other-ca.pem", TLS1_2_VERSION, TLS1_2_VERSION, NULL, NULL),
                   "client_alert");
    /* No ALPN at all is fine. */
    SSL_CTX *cc = tt_client_ctx("ca.pem", TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL);
    wsp_tls_ctx_t *sc = tt_server_ctx("ec.pem", "ec.key");
    tt_pair_t p;
    tt_pair_init(&p, cc, sc, NULL);
    tt_connect(&p);
    assert_int_equal(p.info.alpn, 0);
    tt_pair_free(&p);
    wsp_tls_ctx_free(sc);
    SSL_CTX_free(cc);
}

/* --- memory ---------------------------------------------------------------------------------- */

#define NCONN 64

/* OpenSSL heap bytes per server handshake: after the ClientHello with our flight taken (the
 * handshake waits for the client's Finished), at completion, and after detach (none: the
 * detached state is the caller's wsp_tlsrec_t). Printed for the report; asserted loosely. */
static void test_memory(void **state)
{
    (void)state;
    for (int v = TLS1_2_VERSION; v <= TLS1_3_VERSION; v++) {
        SSL_CTX *cc = tt_client_ctx("ca.pem", v, v, NULL, NULL);
        wsp_tls_ctx_t *sc = tt_server_ctx("ec.pem", "ec.key");
        static tt_pair_t ps[NCONN];
        tt_pair_init(&ps[0], cc, sc, NULL); /* warm-up: one-time allocations stay out */
        tt_connect(&ps[0]);
        tt_pair_free(&ps[0]);
        for (int i = 0; i < NCONN; i++)
            tt_pair_init(&ps[i], cc, sc, NULL);
        long waiting = 0, done = 0;
        for (int i = 0; i < NCONN; i++) {
            size_t used;
            tt_cl_hello(&ps[i]);
            long b = atomic_load(&live_bytes);
            assert_int_equal(wsp_tls_hs_feed(ps[i].hs, ps[i].in, ps[i].nin, &used), 0);
            ps[i].nin = 0;
            tt_hs_flush(&ps[i]);
            waiting += atomic_load(&live_bytes) - b;
        }
        for (int i = 0; i < NCONN; i++) {
            assert_int_equal(tt_handshake(&ps[i]), 1);
            long b = atomic_load(&live_bytes);
            assert_int_equal(wsp_tls_hs_detach(ps[i].hs, &ps[i].rec, &ps[i].info), 0);
            wsp_tls_hs_free(ps[i].hs);
            ps[i].hs = NULL;
            done += b - atomic_load(&live_bytes);
        }
        print_message("memory TLS 1.%d, ECDSA P-256: OpenSSL heap per server handshake "
                      "waiting for the client's Finished %ld B, at completion %ld B; after "
                      "detach 0 B of OpenSSL's + sizeof(wsp_tlsrec_t) %zu B\n",
                      v - TLS1_VERSION, waiting / NCONN, done / NCONN, sizeof(wsp_tlsrec_t));
        assert_true(waiting / NCONN > 4096); /* what detaching saves is real... */
        assert_true(done / NCONN > 4096);
        for (int i = 0; i < NCONN; i++) {
            exchange(&ps[i], (uint32_t)i); /* ...and the detached connections still work */
            tt_pair_free(&ps[i]);
        }
        wsp_tls_ctx_free(sc);
        SSL_CTX_free(cc);
    }
}

/* After detach nothing of OpenSSL's stays: the heap returns to where it was before the
 * handshake, once the client side is gone too. */
static void test_detach_frees_all(void **state)
{
    (void)state;
    SSL_CTX *cc = tt_client_ctx("ca.pem", TLS1_2_VERSION, TLS1_3_VERSION, NULL, NULL);
    wsp_tls_ctx_t *sc = tt_server_ctx("ec.pem", "ec.key");
    tt_pair_t p;
    tt_pair_init(&p, cc, sc, NULL); /* warm-up: lazily fetched algorithms stay for good */
    tt_connect(&p);
    tt_pair_free(&p);
    long base = atomic_load(&live_bytes);
    for (int i = 0; i < 20; i++) {
        tt_pair_init(&p, cc, sc, NULL);
        tt_connect(&p);
        exchange(&p, (uint32_t)i);
        tt_pair_free(&p);
    }
    assert_int_equal(atomic_load(&live_bytes), base);
    wsp_tls_ctx_free(sc);
    SSL_CTX_free(cc);
}

static int teardown(void **state)
{
    (void)state;
    tt_certs_cleanup();
    return 0;
}

int main(void)
{
    /* Before OpenSSL allocates anything: count its heap. */
    if (CRYPTO_set_mem_functions(cnt_malloc, cnt_realloc, cnt_free) != 1) {
        fprintf(stderr, "CRYPTO_set_mem_functions failed\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_errors),       cmocka_unit_test(test_chain),
        cmocka_unit_test(test_suites),           cmocka_unit_test(test_leftover),
        cmocka_unit_test(test_hello_retry),      cmocka_unit_test(test_resumption),
        cmocka_unit_test(test_not_tls),          cmocka_unit_test(test_split_and_truncated),
        cmocka_unit_test(test_failure_reasons),  cmocka_unit_test(test_memory),
        cmocka_unit_test(test_detach_frees_all),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
