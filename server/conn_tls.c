/* What TLS adds to a connection (issue #18), the second file of the connection module
 * (server/conn_int.h): the handshake slot, the handshake's outcome (counted, the 503 of a
 * connection over --max-conns, kTLS), received records into the plaintext path, the
 * broadcast sealed for the io_uring pass, and the close. The TLS machinery itself is
 * server/tlsconn.c; the struct of a connection stays private to conn.c. */
#include <errno.h>
#include <uv.h>

#include "conn.h"
#include "conn_int.h"

/* A TLS connection's handshake slot goes back at the first of: done, failed, closed. */
static void conn_tls_slot_end(wsp_conn_t *c)
{
    wsp_tlsconn_t *x = wsp__conn_tlsx(c);
    if (x->flags & WSP_TLSCONN_F_SLOT) {
        x->flags &= (uint8_t)~WSP_TLSCONN_F_SLOT;
        wsp_shard_conn_tls_end(wsp__conn_shard(c));
    }
}

static int on_conn_tls_write(void *user, const uint8_t *p, size_t n)
{
    return wsp__conn_write_raw(user, p, n);
}

static int on_conn_tls_plain(void *user, const uint8_t *p, size_t n)
{
    return wsp__conn_input(user, p, n);
}

/* The TLS handshake is done; the HTTP upgrade comes next, inside it. */
static int on_conn_tls_ready(void *user, const wsp_tls_info_t *info)
{
    wsp_conn_t *c = user;
    wsp_shard_conn_t *sc = wsp__conn_shard(c);
    wsp_tlsconn_t *x = wsp__conn_tlsx(c);
    conn_tls_slot_end(c);
    atomic_fetch_add_explicit(info->resumed ? &sc->stats->tls_resumed : &sc->stats->tls_full, 1,
                              memory_order_relaxed);
    uv_os_fd_t fd;
    /* kTLS only with nothing queued here: the kernel would seal those bytes a second time. */
    int k = wsp_tlsterm_ktls(sc->tls->term) && wsp__conn_queued(c) == 0 &&
            uv_fileno((const uv_handle_t *)(const void *)c, &fd) == 0 &&
            wsp_tlsconn_ktls(x, fd) == 0;
    atomic_fetch_add_explicit(k ? &sc->stats->tls_ktls : &sc->stats->tls_user, 1,
                              memory_order_relaxed);
    if (!wsp__conn_reserved(c))
        wsp__conn_reject(c, 503); /* over --max-conns: answered now that it can be read */
    return 0;
}

static const wsp_tlsconn_io_t conn_tls_io = {
    .write = on_conn_tls_write,
    .ready = on_conn_tls_ready,
    .plain = on_conn_tls_plain,
};

void wsp__conn_tls_read(wsp_conn_t *c, const uint8_t *p, size_t n)
{
    wsp_shard_conn_t *sc = wsp__conn_shard(c);
    wsp_tlsconn_t *x = wsp__conn_tlsx(c);
    int rv = wsp_tlsconn_input(x, sc->tls, p, n, &conn_tls_io, c);
    if (rv == WSP_TLSCONN_MORE)
        return;
    if (rv == -ECONNRESET || rv == -ENOMEM) { /* the peer's alert, or ours: nothing to flush */
        wsp_conn_close_why(c, rv == -ENOMEM ? WSP_CLOSE_ERROR : WSP_CLOSE_TLS);
        return;
    }
    if (rv == -EPROTO) { /* the handshake failed: its alert is written */
        conn_tls_slot_end(c);
        wsp_shard_conn_tls_failed(sc, wsp_tlsconn_fail_reason(x));
    } else if (rv == -EOPNOTSUPP) {
        wsp_shard_conn_tls_failed(sc, WSP_TLS_FAIL_RENEGOTIATION);
    }
    if (x->state == WSP_TLSCONN_OPEN)
        x->state = WSP_TLSCONN_DONE; /* an alert or our close_notify went out: nothing more */
    if (rv == WSP_TLSCONN_CLOSED)
        wsp_conn_drain(c, 0); /* the peer's close_notify, answered: flush, then FIN */
    else
        wsp__conn_fail(c, rv == -EPROTO ? WSP_CLOSE_HS_FAILED : WSP_CLOSE_TLS);
}

void wsp__conn_tls_free(wsp_conn_t *c, int reason)
{
    wsp_tlsconn_t *x = wsp__conn_tlsx(c);
    if (x->state == WSP_TLSCONN_NEW || x->state == WSP_TLSCONN_HS) {
        /* Closed before its handshake ended: by the deadline, by the peer, or by an error of
         * ours. A shutdown is none of these. */
        int fail = reason == WSP_CLOSE_HS_TIMEOUT ? WSP_TLS_FAIL_TIMEOUT
                   : reason == WSP_CLOSE_CLIENT   ? WSP_TLS_FAIL_EOF
                   : reason == WSP_CLOSE_ERROR    ? WSP_TLS_FAIL_INTERNAL
                                                  : WSP_TLS_FAIL_NONE;
        if (fail != WSP_TLS_FAIL_NONE)
            wsp_shard_conn_tls_failed(wsp__conn_shard(c), fail);
    }
    conn_tls_slot_end(c);
    wsp_tlsconn_free(x);
}

ssize_t wsp_conn_seal(wsp_conn_t *c, const wsp_msg_t *m, uint8_t *out, size_t cap)
{
    wsp_tlsconn_t *x = wsp__conn_tlsx(c);
    if (x == NULL || (x->flags & WSP_TLSCONN_F_KTLS))
        return 0; /* the frame itself: the kernel seals it */
    ssize_t n = wsp_tlsconn_seal(x, wsp__conn_shard(c)->tls, m->bytes, m->len, out, cap);
    if (n > 0) {
        x->sent = out;
        x->sent_len = (uint32_t)n;
    }
    return n;
}

int wsp_conn_seal_sent(wsp_conn_t *c, int res)
{
    wsp_tlsconn_t *x = wsp__conn_tlsx(c);
    const uint8_t *p = x->sent;
    size_t len = x->sent_len;
    x->sent = NULL;
    if (res == (int)len)
        return 1;
    /* The rest (all of it if the send never ran): these very bytes, copied, since their
     * sequence numbers are spent; sealing again would skip them. */
    if (res == -ECANCELED || res == -EAGAIN)
        res = 0;
    if (res < 0)
        return res;
    int rv = wsp__conn_write_raw(c, p + res, len - (size_t)res);
    return rv < 0 ? rv : 0;
}
