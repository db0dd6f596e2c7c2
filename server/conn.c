#include "conn.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "log.h"
#include "upgrade.h"
#include "ws.h"

/* Flags. */
enum {
    WSP_CONN_F_UPGRADED = 1u << 0, /* tcp.data is a wsp_ws_t (else a handshake buffer) */
    WSP_CONN_F_RESERVED = 1u << 1, /* holds a --max-conns slot */
    WSP_CONN_F_IN_WS = 1u << 2,    /* inside wsp_ws_feed(): closing must wait */
    WSP_CONN_F_CLOSE_PENDING = 1u << 3,
    WSP_CONN_F_SHUTDOWN = 1u << 4, /* FIN sent; waiting for the peer's EOF or the deadline */
};

#define WSP_CONN_NO_TABLE 0xFFu
#define WSP_CONN_DRAIN_SECONDS 5

/* 256 bytes: the allocator's 256 B size class. tcp.data carries the one per-state pointer
 * (handshake buffer, then the on-demand wslay state) so the struct needs no extra word, and
 * the owning shard is tcp.loop->data. */
struct wsp_conn_s {
    uv_tcp_t tcp;     /* first member: libuv hands &tcp back to every callback */
    uint32_t idx;     /* slot in the shard table named by `table` */
    uint8_t state;    /* WSP_CONN_* */
    uint8_t flags;    /* WSP_CONN_F_* */
    uint8_t deadline; /* shard tick at which a HANDSHAKE or DRAINING connection is dropped */
    uint8_t table;    /* WSP_SHARD_T_* or WSP_CONN_NO_TABLE */
};
static_assert(sizeof(struct wsp_conn_s) <= 256, "bytes per connection: update docs/BENCHMARKS.md");

/* A partial handshake, kept only while the request is incomplete. */
typedef struct wsp_hsbuf_s {
    uint32_t len, cap;
    uint8_t data[];
} wsp_hsbuf_t;

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

static inline wsp_shard_t *conn_shard(const wsp_conn_t *c) { return wsp_shard_of(c->tcp.loop); }

static inline uv_stream_t *conn_stream(wsp_conn_t *c) { return (uv_stream_t *)&c->tcp; }

int wsp_conn_state(const wsp_conn_t *c) { return c->state; }

void wsp_conn_set_idx(wsp_conn_t *c, uint32_t idx) { c->idx = idx; }

int wsp_conn_expired(const wsp_conn_t *c, uint8_t tick)
{
    if (c->state != WSP_CONN_HANDSHAKE && c->state != WSP_CONN_DRAINING)
        return 0;
    /* Byte-sized ticks: the signed difference is right for deadlines < 128 s away. */
    return (int8_t)(uint8_t)(tick - c->deadline) >= 0;
}

static int conn_move(wsp_conn_t *c, int table)
{
    wsp_shard_t *sh = conn_shard(c);
    if (c->table == table)
        return 0;
    uint32_t idx;
    int rv = wsp_shard_track(sh, table, c, &idx);
    if (rv < 0)
        return rv;
    if (c->table != WSP_CONN_NO_TABLE)
        wsp_shard_untrack(sh, c->table, c->idx);
    c->table = (uint8_t)table;
    c->idx = idx;
    return 0;
}

void wsp_conn_close(wsp_conn_t *c)
{
    if (c->state == WSP_CONN_CLOSING)
        return;
    if (c->flags & WSP_CONN_F_IN_WS) { /* wslay still uses the state: close on the way out */
        c->flags |= WSP_CONN_F_CLOSE_PENDING;
        return;
    }
    if (c->state == WSP_CONN_OPEN)
        atomic_fetch_sub_explicit(&wsp_shard_counters(conn_shard(c))->open, 1,
                                  memory_order_relaxed);
    c->state = WSP_CONN_CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_conn_close); /* on_conn_close() is the only free() */
}

static void on_conn_close(uv_handle_t *h)
{
    wsp_conn_t *c = WSP_CONTAINER_OF(h, wsp_conn_t, tcp);
    wsp_shard_t *sh = conn_shard(c);
    if (c->table != WSP_CONN_NO_TABLE)
        wsp_shard_untrack(sh, c->table, c->idx);
    if (c->flags & WSP_CONN_F_UPGRADED)
        wsp_ws_free(c->tcp.data);
    else
        free(c->tcp.data);
    if (c->flags & WSP_CONN_F_RESERVED)
        wsp_shard_conn_release(sh);
    atomic_fetch_add_explicit(&wsp_shard_counters(sh)->closed, 1, memory_order_relaxed);
    free(c);
    wsp_shard_conn_freed(sh);
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
        wsp_conn_close(c);
        return;
    }
    if (c->state == WSP_CONN_DRAINING && uv_stream_get_write_queue_size(conn_stream(c)) == 0)
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
    /* Rare (closing connections only): one small allocation, freed in on_conn_shutdown. */
    uv_shutdown_t *req = malloc(sizeof(*req));
    if (req == NULL || uv_shutdown(req, conn_stream(c), on_conn_shutdown) < 0) {
        free(req);
        wsp_conn_close(c);
    }
}

/* Writes len bytes, copying what the socket does not take into a queued request so that
 * nothing written later can overtake it. Returns 0 or a negative errno. */
static int conn_write_copy(wsp_conn_t *c, const void *p, size_t len)
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

int wsp_conn_send(wsp_conn_t *c, wsp_msg_t *m)
{
    wsp_shard_t *sh = conn_shard(c);
    uv_stream_t *s = conn_stream(c);
    size_t queued = uv_stream_get_write_queue_size(s);
    if (queued + m->len > wsp_shard_config(sh)->max_pending) {
        atomic_fetch_add_explicit(&wsp_shard_counters(sh)->slow_closed, 1, memory_order_relaxed);
        wsp_conn_drain(c, 1008); /* slow consumer: best-effort close frame behind the queue */
        return -ENOBUFS;
    }
    uv_buf_t b = uv_buf_init((char *)m->bytes, m->len);
    int n = uv_try_write(s, &b, 1);
    if (n == (int)b.len)
        return 0; /* the common case: one syscall, no allocation */
    if (n < 0 && n != UV_EAGAIN)
        return n;
    size_t done = n > 0 ? (size_t)n : 0;
    /* The socket is full: queue the tail, holding a reference to the shared frame bytes
     * ("the buffers must remain valid until the callback is called"). */
    wsp_wreq_t *w = malloc(sizeof(*w));
    if (w == NULL)
        return -ENOMEM;
    w->msg = wsp_msg_ref(m);
    b = uv_buf_init((char *)m->bytes + done, m->len - (unsigned)done);
    int rv = uv_write(&w->req, s, &b, 1, on_conn_write);
    if (rv < 0) { /* libuv will never call on_conn_write: undo here */
        wsp_msg_unref(w->msg);
        free(w);
    }
    return rv;
}

void wsp_conn_drain(wsp_conn_t *c, uint16_t code)
{
    if (c->state == WSP_CONN_DRAINING || c->state == WSP_CONN_CLOSING)
        return;
    wsp_shard_t *sh = conn_shard(c);
    if (code != 0) {
        uint8_t frame[4] = {0x88, 0x02, (uint8_t)(code >> 8), (uint8_t)code};
        if (conn_write_copy(c, frame, sizeof(frame)) < 0) {
            wsp_conn_close(c);
            return;
        }
    }
    /* Out of the OPEN table first: it must stop receiving broadcasts. */
    if (conn_move(c, WSP_SHARD_T_TIMED) < 0) {
        wsp_conn_close(c);
        return;
    }
    if (c->state == WSP_CONN_OPEN)
        atomic_fetch_sub_explicit(&wsp_shard_counters(sh)->open, 1, memory_order_relaxed);
    c->state = WSP_CONN_DRAINING;
    /* +1: the current tick is already partly over; this gives at least the full time. */
    c->deadline = (uint8_t)(wsp_shard_tick(sh) + WSP_CONN_DRAIN_SECONDS + 1);
    if (uv_stream_get_write_queue_size(conn_stream(c)) == 0)
        conn_linger(c); /* everything is in the kernel already */
}

/* The handshake failed: answer status and close once it is written. */
static void conn_reject(wsp_conn_t *c, int status)
{
    size_t len;
    const char *resp = wsp_upgrade_error(status, &len);
    if (conn_write_copy(c, resp, len) < 0) {
        wsp_conn_close(c);
        return;
    }
    wsp_conn_drain(c, 0);
}

static int on_conn_ws_write(void *user, const uint8_t *buf, size_t len)
{
    wsp_conn_t *c = user;
    /* A peer that sends pings but never reads must not grow our queue without bound. */
    if (uv_stream_get_write_queue_size(conn_stream(c)) + len >
        wsp_shard_config(conn_shard(c))->max_pending) {
        atomic_fetch_add_explicit(&wsp_shard_counters(conn_shard(c))->slow_closed, 1,
                                  memory_order_relaxed);
        return -ENOBUFS;
    }
    return conn_write_copy(c, buf, len);
}

/* Feeds client frames to the on-demand parser and acts on what it says, outside of it. */
static void conn_feed(wsp_conn_t *c, const uint8_t *p, size_t n)
{
    if (n == 0 || c->state != WSP_CONN_OPEN)
        return;
    wsp_ws_t *ws = c->tcp.data;
    int code = 0;
    c->flags |= WSP_CONN_F_IN_WS;
    int rv = wsp_ws_feed(&ws, p, n, on_conn_ws_write, c, &code);
    c->flags &= (uint8_t)~WSP_CONN_F_IN_WS;
    c->tcp.data = ws;
    if (c->flags & WSP_CONN_F_CLOSE_PENDING) {
        wsp_conn_close(c);
        return;
    }
    if (rv == WSP_WS_CLOSE) {
        if (code == 1002 || code == 1007 || code == 1009) /* our verdict, not an echo */
            atomic_fetch_add_explicit(&wsp_shard_counters(conn_shard(c))->proto_closed, 1,
                                      memory_order_relaxed);
        wsp_conn_drain(c, 0); /* the close frame is written already */
    } else if (rv < 0) {
        wsp_conn_close(c);
    }
}

static void conn_handshake(wsp_conn_t *c, const uint8_t *p, size_t n)
{
    wsp_shard_t *sh = conn_shard(c);
    const wsp_config_t *cfg = wsp_shard_config(sh);
    wsp_hsbuf_t *hb = c->tcp.data;
    const uint8_t *req = p;
    size_t reqlen = n, taken = n;
    if (hb != NULL) {
        /* Append at most up to the header cap: the parser answers 431 past it. */
        size_t room = WSP_UPGRADE_MAX_HEADER - hb->len;
        taken = n < room ? n : room;
        if (hb->len + taken > hb->cap) {
            uint32_t cap = hb->cap * 2;
            while (cap < hb->len + taken)
                cap *= 2;
            if (cap > WSP_UPGRADE_MAX_HEADER)
                cap = WSP_UPGRADE_MAX_HEADER;
            wsp_hsbuf_t *nb = realloc(hb, sizeof(*hb) + cap);
            if (nb == NULL) {
                wsp_conn_close(c);
                return;
            }
            hb = nb;
            hb->cap = cap;
            c->tcp.data = hb;
        }
        memcpy(hb->data + hb->len, p, taken);
        hb->len += (uint32_t)taken;
        req = hb->data;
        reqlen = hb->len;
    }
    wsp_upgrade_req_t r;
    int status = 400;
    int rv = wsp_upgrade_parse(req, reqlen, &r, &status);
    if (rv == -EAGAIN) {
        if (hb == NULL) {
            /* A partial request (rare: most arrive in one segment) is kept per connection
             * until it completes or the handshake times out. */
            uint32_t cap = 512;
            while (cap < n)
                cap *= 2;
            if (cap > WSP_UPGRADE_MAX_HEADER)
                cap = WSP_UPGRADE_MAX_HEADER;
            hb = malloc(sizeof(*hb) + cap);
            if (hb == NULL) {
                wsp_conn_close(c);
                return;
            }
            hb->cap = cap;
            hb->len = (uint32_t)(n < cap ? n : cap);
            memcpy(hb->data, p, hb->len);
            c->tcp.data = hb;
        }
        return;
    }
    wsp_shard_stats_t *st = wsp_shard_counters(sh);
    if (rv < 0 || r.path_len != strlen(cfg->path) || memcmp(r.path, cfg->path, r.path_len) != 0) {
        if (rv >= 0)
            status = 404;
        atomic_fetch_add_explicit(&st->hs_failed, 1, memory_order_relaxed);
        if (wsp_shard_log_ok(sh))
            WSP_LOG(WSP_LOG_INFO, "shard=%u event=handshake_failed status=%d", wsp_shard_id(sh),
                    status);
        conn_reject(c, status);
        return;
    }
    char resp[256];
    int len = wsp_upgrade_response(r.key, r.key_len, resp, sizeof(resp));
    if (len < 0 || conn_write_copy(c, resp, (size_t)len) < 0 ||
        conn_move(c, WSP_SHARD_T_OPEN) < 0) {
        wsp_conn_close(c);
        return;
    }
    c->tcp.data = NULL; /* from now on: the on-demand wslay state */
    c->flags |= WSP_CONN_F_UPGRADED;
    c->state = WSP_CONN_OPEN;
    atomic_fetch_add_explicit(&st->upgraded, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->open, 1, memory_order_relaxed);
    /* Frames that came with the request are processed, not lost: first what the handshake
     * buffer holds past the request, then what did not fit into it. */
    conn_feed(c, req + rv, reqlen - (size_t)rv);
    conn_feed(c, p + taken, n - taken);
    free(hb);
}

static void on_conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    /* One read buffer per shard: every read is consumed before the next is made. */
    *buf = wsp_shard_rbuf(wsp_shard_of(h->loop));
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    wsp_conn_t *c = WSP_CONTAINER_OF(s, wsp_conn_t, tcp);
    if (nread == 0)
        return; /* EAGAIN */
    if (nread < 0) {
        wsp_conn_close(c); /* EOF or error */
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    switch (c->state) {
    case WSP_CONN_HANDSHAKE:
        conn_handshake(c, p, (size_t)nread);
        break;
    case WSP_CONN_OPEN:
        conn_feed(c, p, (size_t)nread);
        break;
    default:
        break; /* draining or closing: discard */
    }
}

int wsp_conn_accept(wsp_shard_t *sh, uv_stream_t *server)
{
    wsp_conn_t *c = malloc(sizeof(*c));
    if (c == NULL)
        return -ENOMEM; /* not accepted: the shard retries on its next tick */
    memset(c, 0, sizeof(*c));
    c->table = WSP_CONN_NO_TABLE;
    c->state = WSP_CONN_HANDSHAKE;
    int rv = uv_tcp_init(server->loop, &c->tcp);
    if (rv < 0) {
        free(c);
        return -ENOMEM; /* uv_tcp_init only fails to allocate; nothing was accepted */
    }
    c->tcp.data = NULL;
    wsp_shard_stats_t *st = wsp_shard_counters(sh);
    rv = uv_accept(server, (uv_stream_t *)&c->tcp);
    if (rv < 0) {
        wsp_conn_close(c);
        return rv;
    }
    atomic_fetch_add_explicit(&st->accepted, 1, memory_order_relaxed);
    uint32_t idx;
    rv = wsp_shard_track(sh, WSP_SHARD_T_TIMED, c, &idx);
    if (rv < 0) {
        wsp_conn_close(c);
        return rv;
    }
    c->table = WSP_SHARD_T_TIMED;
    c->idx = idx;
    /* +1: the current tick is already partly over; this gives at least the full timeout. */
    c->deadline = (uint8_t)(wsp_shard_tick(sh) + wsp_shard_config(sh)->handshake_timeout + 1);
    rv = uv_read_start((uv_stream_t *)&c->tcp, on_conn_alloc, on_conn_read);
    if (rv < 0) {
        wsp_conn_close(c);
        return rv;
    }
    if (wsp_shard_conn_reserve(sh) < 0) {
        atomic_fetch_add_explicit(&st->refused, 1, memory_order_relaxed);
        conn_reject(c, 503);
        return 0;
    }
    c->flags |= WSP_CONN_F_RESERVED;
    /* Small frames must leave at once; Nagle would hold the second of two close broadcasts. */
    rv = uv_tcp_nodelay(&c->tcp, 1);
    if (rv < 0) {
        wsp_conn_close(c);
        return rv;
    }
    return 0;
}
