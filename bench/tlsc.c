/* The wss:// side of a bench worker (issue #18): ordinary OpenSSL client SSL objects over the
 * worker's non-blocking sockets, one per connection (client memory is not what is measured;
 * SSL_MODE_RELEASE_BUFFERS keeps an idle one small all the same). TLS 1.3 unless told
 * otherwise; each new connection offers the latest session ticket the worker received, so a
 * ramp after the first connection is made of resumed handshakes unless --tls-resume off.
 * Handshake times (from the first SSL_do_handshake(), right after connect(), to its end) go
 * to a histogram; full and resumed handshakes are counted. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "net.h"
#include "worker_int.h"

/* A session ticket arrived (TLS 1.3: after the handshake, read with the first data): it
 * replaces the one kept for the next connection. */
static int on_new_session(SSL *s, SSL_SESSION *sess)
{
    wsp_worker_t *w = SSL_CTX_get_app_data(SSL_get_SSL_CTX(s));
    SSL_SESSION_free(w->sess);
    w->sess = sess;
    return 1; /* the reference is ours now */
}

int wsp__tlsc_init(wsp_worker_t *w)
{
    const wsp_bench_cfg_t *cfg = w->cfg;
    SSL_CTX *c = SSL_CTX_new(TLS_client_method());
    if (c == NULL)
        return -ENOMEM;
    w->tls = c;
    static const unsigned char alpn[] = "\x08http/1.1";
    if (SSL_CTX_set_min_proto_version(c, cfg->tls_version) != 1 ||
        SSL_CTX_set_max_proto_version(c, cfg->tls_version) != 1 ||
        SSL_CTX_set_alpn_protos(c, alpn, sizeof(alpn) - 1) != 0 ||
        (cfg->tls_ca && SSL_CTX_load_verify_locations(c, cfg->tls_ca, NULL) != 1))
        return -EINVAL;
    SSL_CTX_set_verify(c, cfg->tls_ca ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS);
    /* No internal cache: the worker keeps one session itself (on_new_session). */
    SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(c, on_new_session);
    SSL_CTX_set_app_data(c, w);
    w->ssl = calloc(w->nconn, sizeof(*w->ssl));
    return w->ssl ? 0 : -ENOMEM;
}

/* Offers the latest ticket on s, as a copy: an OpenSSL client that resumed a TLS 1.3
 * session marks that session not resumable (RFC 8446's single use), and the worker's one
 * must stay usable for the connections that start before the next ticket arrives. */
static int tlsc_resume(wsp_worker_t *w, SSL *s)
{
    if (!w->cfg->tls_resume || w->sess == NULL)
        return 0;
    SSL_SESSION *d = SSL_SESSION_dup(w->sess);
    int rv = d != NULL && SSL_set_session(s, d) == 1 ? 0 : -1;
    SSL_SESSION_free(d); /* s holds its own reference */
    return rv;
}

/* A new client for fd: the server's name checked (an IP literal as such, never as SNI). */
static SSL *tlsc_new(wsp_worker_t *w, int fd)
{
    const char *host = w->cfg->host;
    SSL *s = SSL_new(w->tls);
    if (s == NULL)
        return NULL;
    int ip = host[0] >= '0' && host[0] <= '9';
    if (SSL_set_fd(s, fd) != 1 ||
        (ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s), host) != 1
            : SSL_set_tlsext_host_name(s, host) != 1 || SSL_set1_host(s, host) != 1) ||
        tlsc_resume(w, s) < 0) {
        SSL_free(s);
        return NULL;
    }
    SSL_set_connect_state(s);
    return s;
}

int wsp__tlsc_handshake(wsp_worker_t *w, int fd, uint64_t now, int *err)
{
    SSL *s = w->ssl[fd];
    wsp_hs_t *h = &w->hs[w->conn[fd].hs];
    if (s == NULL) {
        if ((s = w->ssl[fd] = tlsc_new(w, fd)) == NULL)
            return -2;
        h->tls_t0_ns = now;
    }
    ERR_clear_error();
    errno = 0;
    int r = SSL_do_handshake(s);
    if (r == 1) {
        wsp_hist_record(&w->st->tls_hs, (wsp_net_mono_ns() - h->tls_t0_ns) / 1000u);
        if (SSL_session_reused(s))
            w->st->tls_resumed++;
        else
            w->st->tls_full++;
        return 1;
    }
    int e = SSL_get_error(s, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    *err = errno;
    ERR_clear_error();
    /* A socket error (refused, reset): the TCP connection failed, which is retried. */
    return e == SSL_ERROR_SYSCALL && *err != 0 ? -1 : -2;
}

/* Maps an SSL_read/SSL_write result that is not a byte count to recv()/send() terms. */
static ssize_t tlsc_result(SSL *s, int r)
{
    int e = SSL_get_error(s, r);
    ERR_clear_error();
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        errno = EAGAIN;
        return -1;
    }
    if (e == SSL_ERROR_ZERO_RETURN) /* close_notify */
        return 0;
    if (!(e == SSL_ERROR_SYSCALL && errno != 0))
        errno = EPROTO; /* a TLS error, or EOF without close_notify */
    return -1;
}

ssize_t wsp__tlsc_recv(wsp_worker_t *w, int fd, void *buf, size_t len)
{
    SSL *s = w->ssl[fd];
    errno = 0;
    int r = SSL_read(s, buf, len > INT_MAX ? INT_MAX : (int)len);
    return r > 0 ? r : tlsc_result(s, r);
}

ssize_t wsp__tlsc_send(wsp_worker_t *w, int fd, const void *buf, size_t len)
{
    SSL *s = w->ssl[fd];
    errno = 0;
    int r = SSL_write(s, buf, len > INT_MAX ? INT_MAX : (int)len);
    return r > 0 ? r : tlsc_result(s, r);
}

void wsp__tlsc_drop(wsp_worker_t *w, int fd)
{
    SSL *s = w->ssl[fd];
    if (s == NULL)
        return;
    /* As if shut down cleanly, without I/O: SSL_free() would otherwise mark the session
     * this connection holds as not resumable, and it may be the one kept for the next. */
    SSL_set_shutdown(s, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(s);
    w->ssl[fd] = NULL;
}

void wsp__tlsc_free(wsp_worker_t *w)
{
    SSL_SESSION_free(w->sess);
    w->sess = NULL;
    SSL_CTX_free(w->tls);
    w->tls = NULL;
    free(w->ssl);
    w->ssl = NULL;
}
