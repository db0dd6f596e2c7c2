/* A connection's side of a live upgrade (issue #20): described for the new process, closed
 * once sent, adopted there. Part of the connection module (server/conn_int.h).
 *
 * What moves: the socket, the state (HTTP handshake so far with its deadline, or OPEN with
 * its channels), the bytes libuv still queues for the peer, and for a TLS connection (issue
 * #18, CONN tag 0x02) its record layer: version, suite, keys, IVs, both sequence numbers and
 * the TLS 1.3 traffic secrets (KeyUpdate), and a record the peer sent in part. A TLS
 * connection whose queued bytes are sealed records moves them as they are: their sequence
 * numbers are spent. One that has not begun its TLS handshake moves too (the new process runs
 * the handshake); one in the middle of it cannot (OpenSSL's state is not carried): it waits
 * like a connection mid-frame (server/shard_ho.c). Not carried yet: a token's deadline and
 * user id (the shard's auth arrays), and a kTLS connection (the kernel holds its sending
 * keys and sequence number; this machine's kernel has no tls ULP to test reading them back):
 * those are closed with 1001 as at shutdown. */
#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "auth.h"
#include "chan.h"
#include "channels.h"
#include "conn_int.h"
#include "hsbuf.h"

/* Copies what libuv still holds for c, in order, into out[0..cap): of each queued write the
 * bytes the kernel has not taken. libuv 1.44 keeps them in the stream's write queue
 * (uv_write_t.queue), advancing bufs[write_index] in place on a partial write; read only.
 * Returns the length, or -E2BIG. */
static ssize_t conn_pending_copy(wsp_conn_t *c, uint8_t *out, size_t cap)
{
    void **head = (void **)c->tcp.write_queue;
    size_t n = 0;
    for (void **q = head[0]; q != head; q = q[0]) {
        uv_write_t *req = (uv_write_t *)((char *)q - offsetof(uv_write_t, queue));
        for (unsigned i = req->write_index; i < req->nbufs; i++) {
            if (req->bufs[i].len > cap - n)
                return -E2BIG;
            memcpy(out + n, req->bufs[i].base, req->bufs[i].len);
            n += req->bufs[i].len;
        }
    }
    return (ssize_t)n;
}

static void conn_tls_dir(wsp_ho_tls_dir_t *to, const wsp_tlsrec_dir_t *from)
{
    to->seq = from->seq;
    to->key = from->key;
    to->iv = from->iv;
    to->secret = from->secret;
}

/* Describes c's TLS state in *t, pointing into it. 0, -EAGAIN in the middle of the TLS
 * handshake, -ENOTSUP when not carried (kTLS, or TLS over: an alert went out). */
static int conn_handover_tls(wsp_conn_t *c, wsp_ho_tls_t *t)
{
    const wsp_tlsconn_t *x = conn_tlsx(c);
    if (x->flags & WSP_TLSCONN_F_KTLS)
        return -ENOTSUP;
    if (x->state == WSP_TLSCONN_NEW) {
        t->state = WSP_HO_TLS_NEW;
        return 0;
    }
    if (x->state == WSP_TLSCONN_HS)
        return -EAGAIN; /* OpenSSL's handshake state cannot move: wait until it is done */
    if (x->state != WSP_TLSCONN_OPEN)
        return -ENOTSUP;
    const wsp_tlsrec_t *r = &x->rec;
    t->state = WSP_HO_TLS_OPEN;
    t->version = r->version;
    t->suite = r->suite;
    t->keylen = r->keylen;
    t->secretlen = r->version == 0x0304 ? r->hashlen : 0;
    conn_tls_dir(&t->rd, &r->rd);
    conn_tls_dir(&t->wr, &r->wr);
    t->part = x->part;
    t->part_len = x->part_len;
    return 0;
}

int wsp_conn_handover(wsp_conn_t *c, wsp_ho_conn_t *h, int *fd, uint8_t *scratch, size_t cap)
{
    unsigned s = conn_state(c);
    uv_os_fd_t ofd;
    if ((s != WSP_CONN_OPEN && s != WSP_CONN_HANDSHAKE) || uv_fileno((uv_handle_t *)&c->tcp, &ofd))
        return -EALREADY;
    memset(h, 0, sizeof(*h));
    int rv = conn_tls(c) ? conn_handover_tls(c, &h->tls) : 0;
    if (rv < 0)
        return rv;
    if ((c->flags & WSP_CONN_F_UPGRADED) && *wsp__conn_ws_slot(c) != NULL)
        return -EAGAIN; /* part of a client frame sits in wslay: wait until it is whole */
    if (c->st & WSP_CONN_S_WAITING)
        return -EAGAIN; /* a wspush.v1 connection coming in: wait until it has joined */
    h->state = s == WSP_CONN_OPEN ? WSP_HO_ST_OPEN : WSP_HO_ST_HANDSHAKE;
    /* The token's state goes as its own field: the new process sets the bit once its arrays
     * hold the entry. */
    h->xf = (uint8_t)(c->xf & ~WSP_CONN_X_AUTH);
    h->flags = (uint8_t)(((c->flags & WSP_CONN_F_NO_DEFAULT) ? WSP_HO_F_NO_DEFAULT : 0) |
                         ((c->flags & WSP_CONN_F_PING_OUT) ? WSP_HO_F_PING_OUT : 0) |
                         ((c->flags & WSP_CONN_F_RESERVED) ? WSP_HO_F_RESERVED : 0));
    ssize_t n = conn_pending_copy(c, scratch, cap);
    if (n < 0)
        return (int)n;
    h->pending = scratch;
    h->pending_len = (uint32_t)n;
    if (s == WSP_CONN_HANDSHAKE) {
        wsp_hsbuf_t *hb = *conn_data(c);
        h->ttl = (uint8_t)(c->deadline - conn_shard(c)->tick);
        if (hb) {
            h->hs = hb->data;
            h->hs_len = hb->len;
        }
    } else if (c->xf & WSP_CONN_X_AUTH) { /* OPEN: its slot in the auth arrays is c->idx */
        assert(conn_table(c) == WSP_SHARD_T_OPEN);
        const wsp_authidx_t *x = &conn_shard(c)->auth->idx;
        h->auth = 1;
        h->uid = x->uid[c->idx];
        h->deadline = x->deadline[c->idx];
    }
    if (s == WSP_CONN_OPEN && (c->flags & WSP_CONN_F_EXT)) {
        wsp_connext_t *x = *conn_data(c); /* TLS: the data slot of its wsp_tlsconn_t */
        for (unsigned i = 0; i < x->n && i < WSP_HO_CHAN_MAX; i++) {
            size_t len;
            h->chan[i].name = wsp_chan_name(x->sub[i].ch, &len);
            h->chan[i].len = (uint8_t)len;
        }
        h->nchan = x->n < WSP_HO_CHAN_MAX ? x->n : WSP_HO_CHAN_MAX;
    }
    *fd = ofd;
    return 0;
}

void wsp_conn_handed(wsp_conn_t *c)
{
    /* The socket lives on in the new process: closing our descriptor sends nothing. */
    wsp_conn_close_why(c, WSP_CLOSE_HANDOVER);
}

/* An adopted OPEN connection goes into the OPEN table and, when it came with a token, into
 * the auth arrays at the same slot, as wsp__conn_upgrade() admits one. Its deadline is
 * enforced by the tick from here on: one already past closes there with 4001. Returns 0 or a
 * negative errno. */
static int conn_adopt_open(wsp_conn_t *c, const wsp_ho_conn_t *h)
{
    wsp_auth_shard_t *as = conn_shard(c)->auth;
    /* Room beside OPEN first: once in OPEN the connection must have its auth entry. */
    int rv = h->auth ? wsp_authidx_reserve(&as->idx, as->idx.n + 1) : 0;
    if (rv < 0 || (rv = wsp__conn_move(c, WSP_SHARD_T_OPEN)) < 0)
        return rv;
    if (h->auth) { /* the same slot as OPEN's: both just appended */
        uint32_t slot = wsp_authidx_add(&as->idx, h->uid, h->deadline);
        assert(slot == c->idx);
        (void)slot;
        c->xf |= WSP_CONN_X_AUTH;
    }
    return 0;
}

/* 1 when what c carries about a token does not fit this process: a token's state without
 * token auth here, or with another algorithm (the old process's user ids mean nothing under
 * our key); or no token where every connection needs one. Such a connection is closed as an
 * expired token is (4001): its client comes back with a token for this process. */
static int conn_adopt_auth_misfit(const wsp_shard_conn_t *sc, const wsp_ho_conn_t *h)
{
    if (h->state != WSP_HO_ST_OPEN)
        return 0; /* a handshake is admitted by this process */
    if (h->auth)
        return sc->auth == NULL || !wsp_auth_carried(sc->auth->auth);
    return sc->auth != NULL;
}

/* The state of an adopted connection: OPEN with its channels (and token), or HANDSHAKE with
 * its deadline and the request so far. Returns 0, 1 when it must close with 4001 (its token
 * state does not fit: conn_adopt_auth_misfit()) or a negative errno (the caller closes c). */
static int conn_adopt_state(wsp_conn_t *c, const wsp_ho_conn_t *h)
{
    wsp_shard_conn_t *sc = conn_shard(c);
    if (h->state == WSP_HO_ST_HANDSHAKE) {
        int rv = wsp__conn_move(c, WSP_SHARD_T_TIMED);
        c->deadline = (uint8_t)(sc->tick + (h->ttl > 0 ? h->ttl : 1));
        if (rv < 0 || h->hs_len == 0)
            return rv;
        return wsp_hsbuf_keep((wsp_hsbuf_t **)conn_data(c), h->hs, h->hs_len);
    }
    if (conn_adopt_auth_misfit(sc, h))
        return 1; /* never OPEN here: no broadcast reaches it, the auth arrays stay parallel */
    wsp_chanlist_t cl = {0};
    if (!(h->flags & WSP_HO_F_NO_DEFAULT)) {
        cl.v[0].name = WSP_CHANNEL_DEFAULT;
        cl.v[cl.n++].len = sizeof(WSP_CHANNEL_DEFAULT) - 1;
    }
    for (unsigned i = 0; i < h->nchan; i++) {
        if (cl.n == WSP_CHANNELS_MAX || !wsp_channel_valid(h->chan[i].name, h->chan[i].len))
            return -EBADMSG;
        cl.v[cl.n].name = h->chan[i].name;
        cl.v[cl.n++].len = h->chan[i].len;
    }
    int rv = conn_adopt_open(c, h);
    if (rv < 0)
        return rv;
    c->flags |= WSP_CONN_F_UPGRADED;
    conn_set_state(c, WSP_CONN_OPEN);
    atomic_fetch_add_explicit(&sc->stats->open, 1, memory_order_relaxed);
    return wsp__conn_subscribe(c, &cl);
}

static void conn_tls_dir_set(wsp_tlsrec_dir_t *to, const wsp_ho_tls_dir_t *from,
                             const wsp_ho_tls_t *t)
{
    to->seq = from->seq;
    memcpy(to->key, from->key, t->keylen);
    memcpy(to->iv, from->iv, WSP_HO_TLS_IV);
    if (t->secretlen)
        memcpy(to->secret, from->secret, t->secretlen);
}

/* The TLS state of an adopted connection, as the handshake would leave it: OPEN with the
 * record layer the old process had (its keys go through a local only, wiped), or NEW with a
 * handshake slot. 0 or a negative errno (*out then NULL). */
static int conn_adopt_tls(wsp_shard_conn_t *sc, const wsp_ho_conn_t *h, wsp_tlsconn_t **out)
{
    const wsp_ho_tls_t *t = &h->tls;
    *out = NULL;
    if (sc->tls == NULL)
        return -EPROTONOSUPPORT; /* no --tls-cert here: the old process refuses first */
    if (t->state == WSP_HO_TLS_NEW && wsp_shard_conn_tls_begin(sc) < 0)
        return -EBUSY; /* --tls-max-handshakes in progress: cannot take one more */
    wsp_tlsconn_t *x = wsp_tlsconn_new();
    if (x == NULL) {
        if (t->state == WSP_HO_TLS_NEW)
            wsp_shard_conn_tls_end(sc);
        return -ENOMEM;
    }
    if (t->state == WSP_HO_TLS_NEW) {
        x->flags |= WSP_TLSCONN_F_SLOT; /* given back when its handshake ends */
        *out = x;
        return 0;
    }
    wsp_tlsrec_t r = {.suite = t->suite, .version = t->version, .keylen = t->keylen};
    conn_tls_dir_set(&r.rd, &t->rd, t);
    conn_tls_dir_set(&r.wr, &t->wr, t);
    int rv = wsp_tlsrec_resume(&r, t->secretlen);
    if (rv == 0)
        rv = wsp_tlsconn_resume(x, &r, t->part, t->part_len);
    OPENSSL_cleanse(&r, sizeof(r));
    if (rv < 0) {
        wsp_tlsconn_free(x);
        return rv;
    }
    *out = x;
    return 0;
}

int wsp_conn_adopt(wsp_shard_conn_t *sc, uv_loop_t *loop, int fd, const wsp_ho_conn_t *h)
{
    wsp_tlsconn_t *x = NULL;
    int rv = 0;
    if ((h->tls.state != WSP_HO_TLS_NONE) != ((h->xf & WSP_CONN_X_TLS) != 0))
        rv = -EBADMSG; /* TLS in one place and not the other */
    else if (h->tls.state != WSP_HO_TLS_NONE)
        rv = conn_adopt_tls(sc, h, &x);
    wsp_conn_t *c = rv == 0 ? malloc(sizeof(*c)) : NULL;
    if (rv == 0)
        rv = c ? uv_tcp_init(loop, &c->tcp) : -ENOMEM;
    if (rv < 0) {
        if (x && (x->flags & WSP_TLSCONN_F_SLOT))
            wsp_shard_conn_tls_end(sc);
        wsp_tlsconn_free(x);
        free(c);
        close(fd);
        return rv;
    }
    memset((char *)c + sizeof(c->tcp), 0, sizeof(*c) - sizeof(c->tcp));
    conn_set_table(c, WSP_CONN_NO_TABLE);
    conn_set_state(c, WSP_CONN_HANDSHAKE);
    c->tcp.data = x; /* TLS: what the connection keeps goes in x->data, as at accept */
    c->xf = h->xf & ~WSP_CONN_X_AUTH; /* set again with the auth entry (conn_adopt_open()) */
    c->flags = (uint8_t)(((h->flags & WSP_HO_F_PING_OUT) ? WSP_CONN_F_PING_OUT : 0));
    wsp_shard_conn_fd_taken(sc); /* given back in on_conn_close(), whatever happens next */
    if ((rv = uv_tcp_open(&c->tcp, fd)) < 0)
        close(fd); /* not the handle's: closing it below does not */
    /* The bytes the old process had queued go first, as they are (TLS: sealed already, their
     * sequence numbers spent): nothing may overtake them. */
    if (rv == 0 && h->pending_len)
        rv = wsp__conn_write_raw(c, h->pending, h->pending_len);
    int closing = 0;
    if (rv == 0 && (rv = conn_adopt_state(c, h)) > 0) {
        closing = 1;
        rv = 0;
    }
    if (rv == 0)
        rv = uv_read_start((uv_stream_t *)&c->tcp, wsp__conn_on_alloc, wsp__conn_on_read);
    if (rv < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_ERROR);
        return rv;
    }
    if ((h->flags & WSP_HO_F_RESERVED) && wsp_shard_conn_reserve(sc) == 0)
        c->flags |= WSP_CONN_F_RESERVED; /* over the new --max-conns it stays, without a slot */
    if (closing)
        wsp_conn_expire(c); /* the close frame after what the old process had queued */
    return closing;
}
