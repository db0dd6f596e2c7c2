#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "chan.h"
#include "channels.h"
#include "conn_int.h"
#include "framed.h"
#include "log.h"
#include "net.h"
#include "pmd.h"
#include "table.h"
#include "tlsconn.h"
#include "upgrade.h"
#include "ws.h"

/* A queued write: the tail of a broadcast frame (holds a reference to msg) or a copy of
 * small protocol bytes (101 response, pong, close). Only exists when the socket is full. */
typedef struct wsp_wreq_s {
    uv_write_t req;
    wsp_msg_t *msg; /* NULL for a copy in data[] */
    uint8_t data[];
} wsp_wreq_t;

static void on_conn_close(uv_handle_t *h);
static void on_conn_write(uv_write_t *req, int status);
static void conn_linger(wsp_conn_t *c);

int wsp_conn_state(const wsp_conn_t *c) { return (int)conn_state(c); }

wsp_shard_conn_t *wsp__conn_shard(const wsp_conn_t *c) { return conn_shard(c); }

wsp_tlsconn_t *wsp__conn_tlsx(const wsp_conn_t *c) { return conn_tls(c) ? conn_tlsx(c) : NULL; }

void **wsp__conn_data(wsp_conn_t *c) { return conn_data(c); }

size_t wsp__conn_queued(const wsp_conn_t *c)
{
    return uv_stream_get_write_queue_size((const uv_stream_t *)&c->tcp);
}

int wsp__conn_reserved(const wsp_conn_t *c) { return (c->flags & WSP_CONN_F_RESERVED) != 0; }

int wsp_conn_wants_default(const wsp_conn_t *c) { return !(c->flags & WSP_CONN_F_NO_DEFAULT); }

/* A waiting connection that goes (closes, drains) never comes in: its shard forgets it. */
static void conn_forget_resume(wsp_conn_t *c)
{
    if (!(c->st & WSP_CONN_S_WAITING))
        return;
    c->st &= (uint8_t)~WSP_CONN_S_WAITING;
    conn_shard(c)->gone(conn_shard(c), c);
}
unsigned wsp_conn_xf(const wsp_conn_t *c) { return c->xf; }

/* Records c's new slot in channel ch after another connection left it. */
static void conn_set_chan_idx(wsp_conn_t *c, wsp_chan_t *ch, uint32_t idx)
{
    wsp_connext_t *x = *conn_data(c);
    for (unsigned i = 0; i < x->n; i++)
        if (x->sub[i].ch == ch)
            x->sub[i].idx = idx;
}

/* Where the on-demand parser state lives: tcp.data, or the channel extension. */
wsp_ws_t **wsp__conn_ws_slot(wsp_conn_t *c)
{
    if (c->flags & WSP_CONN_F_EXT)
        return &((wsp_connext_t *)*conn_data(c))->ws;
    return (wsp_ws_t **)conn_data(c);
}

int wsp_conn_expired(const wsp_conn_t *c, uint8_t tick)
{
    unsigned s = conn_state(c);
    if (s != WSP_CONN_HANDSHAKE && s != WSP_CONN_DRAINING)
        return 0;
    /* Byte-sized ticks: the signed difference is right for deadlines < 128 s away. */
    return (int8_t)(uint8_t)(tick - c->deadline) >= 0;
}

/* Leaves every channel: the connection no longer receives broadcasts. */
static void conn_unsubscribe_all(wsp_conn_t *c)
{
    if (!(c->flags & WSP_CONN_F_EXT))
        return;
    wsp_connext_t *x = *conn_data(c);
    while (x->n > 0) {
        x->n--;
        wsp_chan_t *ch = x->sub[x->n].ch;
        uint32_t idx = x->sub[x->n].idx;
        wsp_conn_t *moved = wsp_chan_unsubscribe(&conn_shard(c)->chans, ch, idx);
        if (moved)
            conn_set_chan_idx(moved, ch, idx);
    }
}

/* Takes c out of its shard table (swap with the last entry, whose slot is updated). */
static void conn_untrack(wsp_conn_t *c)
{
    unsigned t = conn_table(c);
    wsp_shard_conn_t *sc = conn_shard(c);
    /* The auth arrays are parallel to OPEN: the same swap-removal moves the same entry. */
    if (t == WSP_SHARD_T_OPEN && (c->xf & WSP_CONN_X_AUTH))
        wsp_authidx_remove(&sc->auth->idx, c->idx);
    wsp_conn_t *moved = wsp_table_remove(&sc->table[t], c->idx);
    if (moved)
        moved->idx = c->idx;
    conn_set_table(c, WSP_CONN_NO_TABLE);
}

/* Moves c into shard table t (from the one it is in, if any). 0 or -ENOMEM (c unmoved). */
int wsp__conn_move(wsp_conn_t *c, unsigned table)
{
    unsigned cur = conn_table(c);
    if (cur == table)
        return 0;
    uint32_t idx;
    int rv = wsp_table_push(&conn_shard(c)->table[table], c, &idx);
    if (rv < 0)
        return rv;
    if (cur != WSP_CONN_NO_TABLE)
        conn_untrack(c);
    conn_set_table(c, table);
    c->idx = idx;
    if (cur == WSP_SHARD_T_OPEN)
        conn_unsubscribe_all(c);
    return 0;
}

void wsp_conn_close(wsp_conn_t *c)
{
    unsigned s = conn_state(c);
    if (s == WSP_CONN_CLOSING)
        return;
    if (c->flags & WSP_CONN_F_IN_WS) { /* wslay still uses the state: close on the way out */
        c->flags |= WSP_CONN_F_CLOSE_PENDING;
        return;
    }
    if (s == WSP_CONN_OPEN)
        atomic_fetch_sub_explicit(&conn_stats(c)->open, 1, memory_order_relaxed);
    conn_set_state(c, WSP_CONN_CLOSING);
    uv_close((uv_handle_t *)&c->tcp, on_conn_close); /* on_conn_close() is the only free() */
}

void wsp_conn_close_why(wsp_conn_t *c, int reason)
{
    if (c->reason == 0)
        c->reason = (uint8_t)(reason + 1);
    wsp_conn_close(c);
}

static void on_conn_close(uv_handle_t *h)
{
    wsp_conn_t *c = WSP_CONTAINER_OF(h, wsp_conn_t, tcp);
    wsp_shard_conn_t *sc = conn_shard(c);
    conn_forget_resume(c);
    conn_unsubscribe_all(c);
    if (conn_table(c) != WSP_CONN_NO_TABLE)
        conn_untrack(c);
    if (c->flags & WSP_CONN_F_UPGRADED) {
        wsp_ws_free(*wsp__conn_ws_slot(c));
        if (c->flags & WSP_CONN_F_EXT)
            free(*conn_data(c));
    } else {
        free(*conn_data(c));
    }
    int reason = c->reason ? c->reason - 1 : WSP_CLOSE_CLIENT;
    if (conn_tls(c))
        wsp__conn_tls_free(c, reason);
    if (c->flags & WSP_CONN_F_RESERVED)
        wsp_shard_conn_release(sc);
    atomic_fetch_add_explicit(&sc->stats->closed[reason], 1, memory_order_relaxed);
    free(c);
    wsp_shard_conn_freed(sc);
}

static void on_conn_write(uv_write_t *req, int status)
{
    wsp_wreq_t *w = WSP_CONTAINER_OF(req, wsp_wreq_t, req);
    wsp_conn_t *c = WSP_CONTAINER_OF(req->handle, wsp_conn_t, tcp);
    if (w->msg)
        wsp_msg_unref(w->msg);
    free(w);
    /* UV_ECANCELED: the handle is closing and c lives until on_conn_close(). */
    if (status < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_CLIENT); /* the peer reset or went away */
        return;
    }
    if (conn_state(c) == WSP_CONN_DRAINING && uv_stream_get_write_queue_size(conn_stream(c)) == 0)
        conn_linger(c); /* the final response or close frame is in the kernel */
}

static void on_conn_shutdown(uv_shutdown_t *req, int status)
{
    wsp_conn_t *c = WSP_CONTAINER_OF(req->handle, wsp_conn_t, tcp);
    free(req);
    if (status < 0)
        wsp_conn_close(c); /* includes UV_ECANCELED: closing already, a no-op */
}

/* Everything final is written: send FIN and keep reading until the peer's EOF (or the
 * deadline), so that unread client bytes never turn our last response into a reset. */
static void conn_linger(wsp_conn_t *c)
{
    if (c->flags & WSP_CONN_F_SHUTDOWN)
        return;
    c->flags |= WSP_CONN_F_SHUTDOWN;
    /* TLS: a close_notify goes before the FIN, so the client knows nothing was cut off. */
    size_t cn = conn_tls(c) ? wsp_tlsconn_close_notify(conn_tlsx(c), conn_shard(c)->tls) : 0;
    if (cn > 0 && wsp__conn_write_raw(c, conn_shard(c)->tls->out, cn) < 0) {
        wsp_conn_close(c);
        return;
    }
    /* Rare (closing connections only): one small allocation, freed in on_conn_shutdown. */
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL || uv_shutdown(req, conn_stream(c), on_conn_shutdown) < 0) {
        free(req);
        wsp_conn_close(c);
    }
}

/* Writes len bytes as they are, copying what the socket does not take into a queued request
 * so that nothing written later can overtake it. Returns 0 or a negative errno. */
int wsp__conn_write_raw(wsp_conn_t *c, const void *p, size_t len)
{
    uv_stream_t *s = conn_stream(c);
    uv_buf_t b = uv_buf_init((char *)(uintptr_t)p, (unsigned)len);
    int n = uv_try_write(s, &b, 1);
    if (n == (int)len)
        return 0;
    if (n < 0 && n != UV_EAGAIN)
        return n;
    size_t done = n > 0 ? (size_t)n : 0;
    /* Rare: the socket buffer is full. One allocation for the tail, freed in on_conn_write. */
    wsp_wreq_t *w = malloc(sizeof(*w) + (len - done));
    if (w == NULL)
        return -ENOMEM;
    w->msg = NULL;
    memcpy(w->data, (const uint8_t *)p + done, len - done);
    b = uv_buf_init((char *)w->data, (unsigned)(len - done));
    int rv = uv_write(&w->req, s, &b, 1, on_conn_write);
    if (rv < 0) /* libuv will never call on_conn_write: undo here */
        free(w);
    return rv;
}

/* Writes len bytes of WebSocket or HTTP, sealed first on a TLS connection (whose handshake
 * must be done: nothing goes out in the clear there). Returns 0 or a negative errno. */
int wsp__conn_write_copy(wsp_conn_t *c, const void *p, size_t len)
{
    if (!conn_seals(c))
        return wsp__conn_write_raw(c, p, len);
    wsp_tlsconn_t *x = conn_tlsx(c);
    const wsp_tlsconn_res_t *r = conn_shard(c)->tls;
    if (x->state != WSP_TLSCONN_OPEN)
        return -EPROTO;
    ssize_t n = wsp_tlsconn_seal(x, r, p, len, r->out, WSP_TLSCONN_OUT);
    return n < 0 ? (int)n : wsp__conn_write_raw(c, r->out, (size_t)n);
}

/* 1 (and c draining with 1008) when len more bytes would queue behind over --max-pending:
 * the cap is on the backlog, a message may be larger than it. */
static int conn_over_pending(wsp_conn_t *c, size_t len)
{
    size_t queued = uv_stream_get_write_queue_size(conn_stream(c));
    if (queued == 0 || queued + len <= conn_shard(c)->cfg->max_pending)
        return 0;
    if (c->reason == 0)
        c->reason = WSP_CLOSE_SLOW_CONSUMER + 1;
    atomic_fetch_add_explicit(&conn_stats(c)->slow_consumers, 1, memory_order_relaxed);
    wsp_conn_drain(c, 1008); /* slow consumer: best-effort close frame behind the queue */
    return 1;
}

int wsp_conn_send(wsp_conn_t *c, wsp_msg_t *m)
{
    uv_stream_t *s = conn_stream(c);
    if (conn_seals(c)) { /* one seal per connection: its own sequence number and key */
        wsp_tlsconn_t *x = conn_tlsx(c);
        const wsp_tlsconn_res_t *r = conn_shard(c)->tls;
        if (conn_over_pending(c, wsp_tlsrec_sealed_size(&x->rec, m->len)))
            return -ENOBUFS;
        ssize_t n = wsp_tlsconn_seal(x, r, m->bytes, m->len, r->out, WSP_TLSCONN_OUT);
        return n < 0 ? (int)n : wsp__conn_write_raw(c, r->out, (size_t)n);
    }
    if (conn_over_pending(c, m->len))
        return -ENOBUFS;
    uv_buf_t b = uv_buf_init((char *)m->bytes, m->len);
    int n = uv_try_write(s, &b, 1);
    if (n == (int)b.len)
        return 0; /* the common case: one syscall, no allocation */
    if (n < 0 && n != UV_EAGAIN)
        return n;
    return wsp_conn_send_rest(c, m, n > 0 ? (size_t)n : 0);
}

int wsp_conn_send_rest(wsp_conn_t *c, wsp_msg_t *m, size_t done)
{
    /* The socket is full: queue the tail, holding a reference to the shared frame bytes
     * ("the buffers must remain valid until the callback is called"). */
    wsp_wreq_t *w = malloc(sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->msg = wsp_msg_ref(m);
    uv_buf_t b = uv_buf_init((char *)m->bytes + done, m->len - (unsigned)done);
    int rv = uv_write(&w->req, conn_stream(c), &b, 1, on_conn_write);
    if (rv < 0) { /* libuv will never call on_conn_write: undo here */
        wsp_msg_unref(w->msg);
        free(w);
    }
    return rv;
}

int wsp_conn_direct_fd(wsp_conn_t *c)
{
    uv_stream_t *s = conn_stream(c);
    uv_os_fd_t fd;
    /* Anything queued in libuv must go first: only an idle socket may be written around it. */
    if (conn_state(c) != WSP_CONN_OPEN || uv_stream_get_write_queue_size(s) != 0 ||
        uv_fileno((uv_handle_t *)s, &fd) != 0)
        return -1;
    return fd;
}

void wsp_conn_drain(wsp_conn_t *c, uint16_t code)
{
    unsigned s = conn_state(c);
    if (s == WSP_CONN_DRAINING || s == WSP_CONN_CLOSING)
        return;
    if (code != 0) {
        if (c->reason == 0)
            c->reason = (uint8_t)(wsp_metrics_close_reason(code) + 1);
        uint8_t frame[4] = {0x88, 0x02, (uint8_t)(code >> 8), (uint8_t)code};
        if (wsp__conn_write_copy(c, frame, sizeof(frame)) < 0) {
            wsp_conn_close(c);
            return;
        }
    }
    conn_forget_resume(c); /* a connection that goes never comes in */
    /* Out of the OPEN table (and every channel) first: it must stop receiving broadcasts. */
    if (wsp__conn_move(c, WSP_SHARD_T_TIMED) < 0) {
        wsp_conn_close(c);
        return;
    }
    if (s == WSP_CONN_OPEN)
        atomic_fetch_sub_explicit(&conn_stats(c)->open, 1, memory_order_relaxed);
    conn_set_state(c, WSP_CONN_DRAINING);
    /* +1: the current tick is already partly over; this gives at least the full time. */
    c->deadline = (uint8_t)(conn_shard(c)->tick + WSP_CONN_DRAIN_SECONDS + 1);
    if (uv_stream_get_write_queue_size(conn_stream(c)) == 0)
        conn_linger(c); /* everything is in the kernel already */
}

void wsp_conn_expire(wsp_conn_t *c)
{
    if (c->reason == 0)
        c->reason = WSP_CLOSE_TOKEN_EXPIRED + 1;
    wsp_conn_drain(c, 4001);
}

int wsp_conn_ping(wsp_conn_t *c)
{
    if (conn_state(c) != WSP_CONN_OPEN)
        return -EINVAL;
    if (c->flags & WSP_CONN_F_PING_OUT) { /* silent for a whole round */
        wsp_conn_close_why(c, WSP_CLOSE_PING_TIMEOUT);
        return -ETIMEDOUT;
    }
    static const uint8_t ping[2] = {0x89, 0x00}; /* FIN ping, empty payload */
    int rv = wsp__conn_write_copy(c, ping, sizeof(ping));
    if (rv < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_ERROR);
        return rv;
    }
    c->flags |= WSP_CONN_F_PING_OUT;
    return 0;
}

void wsp__conn_fail(wsp_conn_t *c, int reason)
{
    if (c->reason == 0)
        c->reason = (uint8_t)(reason + 1);
    wsp_conn_drain(c, 0);
    /* A refused client gets a second, not five, to read the answer and hang up: its socket
     * counts against the fd budget meanwhile. */
    if (conn_state(c) == WSP_CONN_DRAINING)
        c->deadline = (uint8_t)(conn_shard(c)->tick + 2);
}

static int on_conn_ws_write(void *user, const uint8_t *buf, size_t len)
{
    wsp_conn_t *c = user;
    /* A peer that sends pings but never reads must not grow our queue without bound. */
    size_t queued = uv_stream_get_write_queue_size(conn_stream(c));
    if (queued > 0 && queued + len > conn_shard(c)->cfg->max_pending) {
        if (c->reason == 0)
            c->reason = WSP_CLOSE_SLOW_CONSUMER + 1;
        atomic_fetch_add_explicit(&conn_stats(c)->slow_consumers, 1, memory_order_relaxed);
        return -ENOBUFS;
    }
    return wsp__conn_write_copy(c, buf, len);
}

/* A complete client text message, inside the parser: a token refresh moves the deadline, an
 * invalid one closes with 4003 (ws.c sends it); anything else is dropped. */
static int on_conn_ws_text(void *user, const uint8_t *msg, size_t len)
{
    wsp_conn_t *c = user;
    wsp_shard_conn_t *sc = conn_shard(c);
    if (!(c->xf & WSP_CONN_X_AUTH) || conn_state(c) != WSP_CONN_OPEN)
        return 0;
    wsp_authidx_t *x = &sc->auth->idx;
    uint32_t deadline;
    int64_t now = (int64_t)(wsp_net_epoch_ms() / 1000);
    int rv = wsp_auth_refresh(sc->auth, msg, len, x->uid[c->idx], now, &deadline);
    if (rv > 0)
        return 0;
    if (rv == 0) {
        x->deadline[c->idx] = deadline;
        atomic_fetch_add_explicit(&sc->stats->auth_refreshes, 1, memory_order_relaxed);
        return 0;
    }
    if (c->reason == 0)
        c->reason = WSP_CLOSE_TOKEN_INVALID + 1;
    return 4003;
}

/* Feeds client frames to the on-demand parser and acts on what it says, outside of it. */
void wsp__conn_feed(wsp_conn_t *c, const uint8_t *p, size_t n)
{
    if (n == 0 || conn_state(c) != WSP_CONN_OPEN)
        return;
    c->flags &= (uint8_t)~WSP_CONN_F_PING_OUT; /* any byte from the peer shows it is alive */
    wsp_ws_t **slot = wsp__conn_ws_slot(c);
    wsp_ws_t *ws = *slot;
    int code = 0;
    wsp_shard_conn_t *sc = conn_shard(c);
    wsp_ws_pmd_t *pmd = (c->xf & WSP_CONN_X_DEFLATE) ? &sc->pmd : NULL;
    c->flags |= WSP_CONN_F_IN_WS;
    /* Without token auth text messages are dropped unread, as they always were. */
    wsp_ws_text_fn text = conn_shard(c)->auth ? on_conn_ws_text : NULL;
    int rv = wsp_ws_feed(&ws, p, n, on_conn_ws_write, text, c, pmd, &code);
    c->flags &= (uint8_t)~WSP_CONN_F_IN_WS;
    *slot = ws;
    if (pmd) /* this thread is the only writer: the running total */
        atomic_store_explicit(&sc->stats->inflated, pmd->inflated, memory_order_relaxed);
    if (c->flags & WSP_CONN_F_CLOSE_PENDING) {
        wsp_conn_close(c);
        return;
    }
    if (rv == WSP_WS_CLOSE) {
        if (c->reason == 0)
            c->reason = (uint8_t)(wsp_metrics_close_reason(code) + 1);
        wsp_conn_drain(c, 0); /* the close frame is written already */
    } else if (rv < 0) {
        wsp_conn_close_why(c, rv == -ENOBUFS ? WSP_CLOSE_SLOW_CONSUMER : WSP_CLOSE_ERROR);
    }
}

/* Joins the channels chosen in the query; a connection without ?channels= costs nothing. */
int wsp__conn_subscribe(wsp_conn_t *c, const wsp_chanlist_t *cl)
{
    int wants_default = 0;
    unsigned named = 0;
    for (unsigned i = 0; i < cl->n; i++) {
        if (cl->v[i].len == sizeof(WSP_CHANNEL_DEFAULT) - 1 &&
            memcmp(cl->v[i].name, WSP_CHANNEL_DEFAULT, cl->v[i].len) == 0)
            wants_default = 1;
        else
            named++;
    }
    if (!wants_default)
        c->flags |= WSP_CONN_F_NO_DEFAULT;
    if (named == 0)
        return 0;
    /* Only for connections that chose channels: the subscriptions and the parser slot. */
    wsp_connext_t *x = malloc(sizeof(*x) + named * sizeof(x->sub[0]));
    if (x == NULL)
        return -ENOMEM;
    void **slot = conn_data(c);
    x->ws = *slot;
    x->n = 0;
    *slot = x;
    c->flags |= WSP_CONN_F_EXT;
    for (unsigned i = 0; i < cl->n; i++) {
        if (cl->v[i].len == sizeof(WSP_CHANNEL_DEFAULT) - 1 &&
            memcmp(cl->v[i].name, WSP_CHANNEL_DEFAULT, cl->v[i].len) == 0)
            continue;
        int rv = wsp_chan_subscribe(&conn_shard(c)->chans, cl->v[i].name, cl->v[i].len, c,
                                    &x->sub[x->n].ch, &x->sub[x->n].idx);
        if (rv < 0)
            return rv;
        x->n++;
    }
    return 0;
}

int wsp_conn_send_all(wsp_conn_t *c, wsp_msg_t *const *m, unsigned n)
{
    unsigned i = 0;
    while (i < n) {
        uv_buf_t b[64];
        unsigned k = 0;
        size_t total = 0;
        for (; k < 64 && i + k < n; k++) {
            b[k] = uv_buf_init((char *)m[i + k]->bytes, m[i + k]->len);
            total += m[i + k]->len;
        }
        int w = uv_try_write(conn_stream(c), b, k);
        if (w == (int)total) {
            i += k;
            continue;
        }
        if (w < 0 && w != UV_EAGAIN)
            return w;
        size_t done = w > 0 ? (size_t)w : 0;
        for (; i < n; i++) { /* the socket is full: queue the rest, in order */
            if (done >= m[i]->len) {
                done -= m[i]->len;
                continue;
            }
            int rv = wsp_conn_send_rest(c, m[i], done);
            if (rv < 0)
                return rv;
            done = 0;
        }
    }
    return 0;
}

int wsp_conn_join(wsp_conn_t *c, const wsp_chanlist_t *cl)
{
    c->st &= (uint8_t)~WSP_CONN_S_WAITING;
    c->flags &= (uint8_t)~WSP_CONN_F_NO_DEFAULT; /* wsp__conn_subscribe() decides it again */
    return wsp__conn_subscribe(c, cl);
}

void wsp_conn_wait(wsp_conn_t *c)
{
    c->st |= WSP_CONN_S_WAITING;
    c->flags |= WSP_CONN_F_NO_DEFAULT; /* no broadcast before its hello */
}

/* Handshake, step 3: writes the 101, moves c to OPEN and applies what was granted. Returns 0
 * or a negative errno (the caller closes c). */
int wsp__conn_upgrade(wsp_conn_t *c, const wsp_upgrade_req_t *r, const wsp__conn_grant_t *g)
{
    char extra[160]; /* the longest permessage-deflate answer is 101 bytes */
    extra[0] = '\0';
    if (g->pmd_answer)
        (void)snprintf(extra, sizeof(extra), "Sec-WebSocket-Extensions: %s\r\n", g->pmd_answer);
    char resp[448];
    wsp_shard_conn_t *sc = conn_shard(c);
    int len = wsp_upgrade_response(r->key, r->key_len, g->framed ? WSP_FRAMED_PROTOCOL : NULL,
                                   extra, resp, sizeof(resp));
    if (len < 0)
        return len;
    /* Room beside OPEN first: once in OPEN the connection must have its auth entry. */
    int rv = g->authed ? wsp_authidx_reserve(&sc->auth->idx, sc->auth->idx.n + 1) : 0;
    if (rv < 0 || (rv = wsp__conn_write_copy(c, resp, (size_t)len)) < 0 ||
        (rv = wsp__conn_move(c, WSP_SHARD_T_OPEN)) < 0)
        return rv;
    if (g->authed) { /* the same slot as OPEN's: both just appended */
        uint32_t slot = wsp_authidx_add(&sc->auth->idx, g->auth.uid, g->auth.deadline);
        assert(slot == c->idx);
        (void)slot;
        c->xf |= WSP_CONN_X_AUTH;
    }
    c->flags |= WSP_CONN_F_UPGRADED; /* tcp.data: the on-demand wslay state (or extension) */
    conn_set_state(c, WSP_CONN_OPEN);
    wsp_shard_stats_t *st = conn_stats(c);
    if (g->pmd.on) { /* every broadcast frame and client message follows from these bits */
        c->xf |= WSP_CONN_X_DEFLATE | (unsigned)(g->pmd.server_max_window_bits - 8)
                                          << WSP_CONN_X_WBITS_SHIFT;
        atomic_fetch_add_explicit(&st->deflate_upgraded, 1, memory_order_relaxed);
    }
    atomic_fetch_add_explicit(&st->upgraded, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->open, 1, memory_order_relaxed);
    if (g->framed) {
        c->xf |= WSP_CONN_X_FRAMED; /* broadcasts in the framed form, after a hello */
        return conn_shard(c)->arrive(conn_shard(c), c, &g->ask);
    }
    return wsp__conn_subscribe(c, &g->channels);
}

void wsp__conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    /* One read buffer per shard: every read is consumed before the next is made. */
    *buf = uv_buf_init((char *)wsp_shard_conn_of(h->loop)->rbuf, WSP_SHARD_RBUF);
}

/* Bytes from the peer (decrypted on a TLS connection). 1 once c takes no more. */
int wsp__conn_input(wsp_conn_t *c, const uint8_t *p, size_t n)
{
    switch (conn_state(c)) {
    case WSP_CONN_HANDSHAKE:
        wsp__conn_handshake(c, p, n);
        return 0;
    case WSP_CONN_OPEN:
        wsp__conn_feed(c, p, n);
        return 0;
    default:
        return 1; /* draining or closing: discard */
    }
}

void wsp__conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    wsp_conn_t *c = WSP_CONTAINER_OF(s, wsp_conn_t, tcp);
    if (nread == 0)
        return; /* EAGAIN */
    if (nread < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_CLIENT); /* EOF or error */
        return;
    }
    unsigned st = conn_state(c);
    if (st != WSP_CONN_HANDSHAKE && st != WSP_CONN_OPEN)
        return; /* draining or closing: discard, undecrypted */
    if (conn_tls(c))
        wsp__conn_tls_read(c, (const uint8_t *)buf->base, (size_t)nread);
    else
        wsp__conn_input(c, (const uint8_t *)buf->base, (size_t)nread);
}

int wsp_conn_accept(wsp_shard_conn_t *sc, uv_stream_t *server)
{
    /* TLS: a handshake slot from here until its handshake ends; none free: not accepted. */
    if (sc->tls && wsp_shard_conn_tls_begin(sc) < 0)
        return -EBUSY;
    wsp_conn_t *c = malloc(sizeof(*c));
    wsp_tlsconn_t *x = sc->tls ? wsp_tlsconn_new() : NULL;
    if (c == NULL || (sc->tls && x == NULL)) {
        free(c);
        free(x);
        if (sc->tls)
            wsp_shard_conn_tls_end(sc);
        return -ENOMEM; /* not accepted: the shard retries on its next tick */
    }
    memset(c, 0, sizeof(*c));
    conn_set_table(c, WSP_CONN_NO_TABLE);
    conn_set_state(c, WSP_CONN_HANDSHAKE);
    int rv = uv_tcp_init(server->loop, &c->tcp);
    if (rv < 0) {
        free(c);
        free(x);
        if (sc->tls)
            wsp_shard_conn_tls_end(sc);
        return -ENOMEM; /* uv_tcp_init only fails to allocate; nothing was accepted */
    }
    c->tcp.data = x;
    if (x != NULL) { /* TLS: the slot taken above goes with the connection */
        c->xf |= WSP_CONN_X_TLS;
        x->flags |= WSP_TLSCONN_F_SLOT;
    }
    wsp_shard_conn_fd_taken(sc); /* given back in on_conn_close(), whatever happens next */
    rv = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rv < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_ERROR);
        return rv;
    }
    /* TCP_NODELAY and keepalive come from the listener: accepted sockets inherit them, which
     * saves two syscalls per connection. */
    atomic_fetch_add_explicit(&sc->stats->accepted, 1, memory_order_relaxed);
    rv = wsp__conn_move(c, WSP_SHARD_T_TIMED);
    if (rv < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_ERROR);
        return rv;
    }
    /* +1: the current tick is already partly over; this gives at least the full timeout. */
    c->deadline = (uint8_t)(sc->tick + sc->cfg->handshake_timeout + 1);
    rv = uv_read_start((uv_stream_t *)&c->tcp, wsp__conn_on_alloc, wsp__conn_on_read);
    if (rv < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_ERROR);
        return rv;
    }
    if (wsp_shard_conn_reserve(sc) < 0) {
        if (!conn_tls(c))             /* TLS: answered once the handshake makes it readable */
            wsp__conn_reject(c, 503); /* before any byte: over --max-conns nothing else matters */
        return 0;
    }
    c->flags |= WSP_CONN_F_RESERVED;
    return 0;
}
