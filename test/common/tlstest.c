/* cmocka.h needs these first. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "tlstest.h"

static char certdir[64];

const char *tt_certs(void)
{
    if (certdir[0])
        return certdir;
    snprintf(certdir, sizeof(certdir), "/tmp/wsp-tls-XXXXXX");
    assert_non_null(mkdtemp(certdir));
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "%s %s", WSP_MKCERTS, certdir);
    assert_int_equal(system(cmd), 0);
    return certdir;
}

const char *tt_path(int slot, const char *name)
{
    static char paths[4][128];
    assert_true(slot >= 0 && slot < 4);
    snprintf(paths[slot], sizeof(paths[slot]), "%s/%s", tt_certs(), name);
    return paths[slot];
}

void tt_certs_cleanup(void)
{
    if (!certdir[0])
        return;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", certdir);
    assert_int_equal(system(cmd), 0);
    certdir[0] = 0;
}

wsp_tls_ctx_t *tt_server_ctx(const char *cert, const char *key)
{
    char err[256] = "";
    wsp_tls_ctx_t *c = wsp_tls_ctx_new(tt_path(0, cert), tt_path(1, key), err, sizeof(err));
    if (c == NULL)
        fail_msg("server context: %s", err);
    return c;
}

SSL_CTX *tt_client_ctx(const char *ca, int minv, int maxv, const char *ciphers, const char *suites)
{
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    assert_non_null(c);
    assert_int_equal(SSL_CTX_set_min_proto_version(c, minv), 1);
    assert_int_equal(SSL_CTX_set_max_proto_version(c, maxv), 1);
    if (ciphers != NULL)
        assert_int_equal(SSL_CTX_set_cipher_list(c, ciphers), 1);
    if (suites != NULL)
        assert_int_equal(SSL_CTX_set_ciphersuites(c, suites), 1);
    if (ca != NULL) {
        assert_int_equal(SSL_CTX_load_verify_locations(c, tt_path(2, ca), NULL), 1);
        SSL_CTX_set_verify(c, SSL_VERIFY_PEER, NULL);
    }
    /* No client session cache: SSL_free() without a shutdown would mark a cached session not
     * resumable; the resumption tests hold their own reference instead. */
    return c;
}

void tt_pair_init(tt_pair_t *p, SSL_CTX *cctx, wsp_tls_ctx_t *sctx, SSL_SESSION *sess)
{
    memset(p, 0, sizeof(*p));
    p->cl = SSL_new(cctx);
    assert_non_null(p->cl);
    p->cl_in = BIO_new(BIO_s_mem());
    p->cl_out = BIO_new(BIO_s_mem());
    assert_non_null(p->cl_in);
    assert_non_null(p->cl_out);
    SSL_set_bio(p->cl, p->cl_in, p->cl_out);
    SSL_set_connect_state(p->cl);
    assert_int_equal(SSL_set_tlsext_host_name(p->cl, "localhost"), 1);
    assert_int_equal(SSL_set1_host(p->cl, "localhost"), 1);
    if (sess != NULL)
        assert_int_equal(SSL_set_session(p->cl, sess), 1);
    p->hs = wsp_tls_hs_new(sctx);
    assert_non_null(p->hs);
    p->cx = EVP_CIPHER_CTX_new();
    assert_non_null(p->cx);
    p->in = malloc(TT_INBUF);
    assert_non_null(p->in);
}

void tt_cl_flush(tt_pair_t *p)
{
    size_t room = TT_INBUF - p->nin;
    int n = BIO_read(p->cl_out, p->in + p->nin, (int)room);
    if (n > 0)
        p->nin += (size_t)n;
    assert_int_equal(BIO_ctrl_pending(p->cl_out), 0); /* TT_INBUF is enough for any test */
}

static void srv_consume(tt_pair_t *p, size_t used)
{
    assert_true(used <= p->nin);
    memmove(p->in, p->in + used, p->nin - used);
    p->nin -= used;
}

void tt_hs_flush(tt_pair_t *p)
{
    uint8_t buf[4096];
    size_t n;
    while ((n = wsp_tls_hs_take(p->hs, buf, sizeof(buf))) > 0)
        assert_int_equal(BIO_write(p->cl_in, buf, (int)n), (int)n);
    assert_int_equal(wsp_tls_hs_pending(p->hs), 0);
}

int tt_handshake(tt_pair_t *p)
{
    p->hs_rv = 0;
    for (int round = 0; round < 16; round++) {
        int cr = SSL_do_handshake(p->cl);
        int cerr = cr == 1 ? SSL_ERROR_NONE : SSL_get_error(p->cl, cr); /* before BIO calls */
        tt_cl_flush(p);
        size_t used = 0;
        p->hs_rv = wsp_tls_hs_feed(p->hs, p->in, p->nin, &used);
        srv_consume(p, used);
        tt_hs_flush(p);
        if (p->hs_rv < 0)
            return p->hs_rv;
        if (p->hs_rv == 1 && cr == 1)
            return 1;
        if (cr <= 0 && cerr != SSL_ERROR_WANT_READ) {
            /* the client gave up (and its alert is on the way): one more server round */
            tt_cl_flush(p);
            p->hs_rv = wsp_tls_hs_feed(p->hs, p->in, p->nin, &used);
            srv_consume(p, used);
            ERR_clear_error();
            return p->hs_rv;
        }
    }
    fail_msg("handshake did not finish in 16 rounds");
    return -1;
}

void tt_cl_hello(tt_pair_t *p)
{
    assert_int_equal(SSL_do_handshake(p->cl), -1);
    assert_int_equal(SSL_get_error(p->cl, -1), SSL_ERROR_WANT_READ);
    tt_cl_flush(p);
    assert_true(p->nin > 0);
}

void tt_connect(tt_pair_t *p)
{
    assert_int_equal(tt_handshake(p), 1);
    int rv = wsp_tls_hs_detach(p->hs, &p->rec, &p->info);
    assert_int_equal(rv, 0);
    wsp_tls_hs_free(p->hs);
    p->hs = NULL;
}

void tt_srv_send(tt_pair_t *p, const uint8_t *msg, size_t len)
{
    size_t cap = wsp_tlsrec_sealed_size(&p->rec, len);
    uint8_t *buf = malloc(cap + 1);
    assert_non_null(buf);
    ssize_t n = wsp_tlsrec_seal(&p->rec, p->cx, msg, len, buf, cap);
    assert_int_equal(n, (ssize_t)cap); /* the size function is exact */
    assert_int_equal(BIO_write(p->cl_in, buf, (int)n), (int)n);
    free(buf);
}

void tt_cl_read(tt_pair_t *p, uint8_t *out, size_t len)
{
    size_t got = 0;
    while (got < len) {
        int n = SSL_read(p->cl, out + got, (int)(len - got));
        if (n <= 0)
            fail_msg("client SSL_read: error %d after %zu of %zu bytes", SSL_get_error(p->cl, n),
                     got, len);
        got += (size_t)n;
    }
}

void tt_cl_write(tt_pair_t *p, const uint8_t *msg, size_t len)
{
    assert_int_equal(SSL_write(p->cl, msg, (int)len), (int)len);
    tt_cl_flush(p);
}

int tt_srv_recv(tt_pair_t *p, uint8_t *out, size_t cap, size_t *n, uint8_t *alert)
{
    static uint8_t plain[WSP_TLSREC_OPEN_MAX];
    for (;;) {
        wsp_tlsrec_in_t r;
        int rv = wsp_tlsrec_open(&p->rec, p->cx, p->in, p->nin, plain, sizeof(plain), &r);
        *alert = r.alert;
        if (rv == -EAGAIN)
            return 0;
        if (rv < 0)
            return rv;
        srv_consume(p, r.used);
        if (r.type == WSP_TLS_CT_APPDATA) {
            assert_true(*n + r.len <= cap);
            memcpy(out + *n, plain, r.len);
            *n += r.len;
            continue;
        }
        uint8_t reply[WSP_TLSREC_CONTROL_MAX];
        size_t rlen = 0;
        rv = wsp_tlsrec_control(&p->rec, p->cx, &r, plain, reply, sizeof(reply), &rlen);
        *alert = r.alert;
        if (rlen > 0)
            assert_int_equal(BIO_write(p->cl_in, reply, (int)rlen), (int)rlen);
        if (rv < 0)
            return rv;
    }
}

void tt_close(tt_pair_t *p)
{
    assert_int_equal(SSL_shutdown(p->cl), 0);
    tt_cl_flush(p);
    uint8_t buf[16], alert;
    size_t n = 0;
    assert_int_equal(tt_srv_recv(p, buf, sizeof(buf), &n, &alert), -ESHUTDOWN);
    assert_int_equal(n, 0);
    uint8_t rec[WSP_TLSREC_CONTROL_MAX];
    ssize_t rl = wsp_tlsrec_alert(&p->rec, p->cx, WSP_TLS_AL_CLOSE_NOTIFY, rec, sizeof(rec));
    assert_true(rl > 0);
    assert_int_equal(BIO_write(p->cl_in, rec, (int)rl), (int)rl);
    assert_int_equal(SSL_read(p->cl, buf, sizeof(buf)), 0);
    assert_int_equal(SSL_get_error(p->cl, 0), SSL_ERROR_ZERO_RETURN);
    assert_int_equal(SSL_shutdown(p->cl), 1);
}

void tt_pair_free(tt_pair_t *p)
{
    SSL_free(p->cl);
    wsp_tls_hs_free(p->hs);
    EVP_CIPHER_CTX_free(p->cx);
    free(p->in);
    memset(p, 0, sizeof(*p));
    ERR_clear_error();
}

void tt_fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t s = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        p[i] = (uint8_t)s;
    }
}
