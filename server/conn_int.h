#ifndef WSP_CONN_INT_H
#define WSP_CONN_INT_H

/* Internal to the connection module, which spans four files: server/conn.c (the connection
 * itself), server/conn_admit.c (the HTTP upgrade's buffering, parsing and admission),
 * server/conn_tls.c (what TLS adds to it, issue #18) and server/conn_ho.c (its side of a live
 * upgrade, issue #20, which needs the struct itself: it is here, with its small accessors).
 * Each calls the others only through these. Owning shard thread only. */

#include <stddef.h>
#include <stdint.h>

#include "channels.h"
#include "pmd.h"
#include "resume.h"
#include <assert.h>
#include <uv.h>

#include "channels.h"
#include "shard_conn.h" /* wsp_conn_t, through table.h: not conn.h, which would be a cycle */
#include "tlsconn.h"
#include "ws.h"

/* What a connection is and holds besides its state (wsp_conn_s.flags, one byte). */
enum {
    WSP_CONN_F_UPGRADED = 1u << 0, /* tcp.data is parser state (else a handshake buffer) */
    WSP_CONN_F_RESERVED = 1u << 1, /* holds a --max-conns slot */
    WSP_CONN_F_IN_WS = 1u << 2,    /* inside wsp_ws_feed(): closing must wait */
    /* wsp_conn_close() came while IN_WS: conn_feed() closes once wslay has returned */
    WSP_CONN_F_CLOSE_PENDING = 1u << 3,
    WSP_CONN_F_SHUTDOWN = 1u << 4,   /* FIN sent; waiting for the peer's EOF or the deadline */
    WSP_CONN_F_PING_OUT = 1u << 5,   /* a ping is unanswered (no byte since it was sent) */
    WSP_CONN_F_EXT = 1u << 6,        /* tcp.data is a wsp_connext_t (chose channels) */
    WSP_CONN_F_NO_DEFAULT = 1u << 7, /* chose channels without the default one */
};

/* What the upgrade negotiated (wsp_conn_s.xf, the byte beside the table slot). Bits are
 * given out per feature so that the features never compete for them:
 *   bit 0    wspush.v1 subprotocol: broadcasts in the framed form (issue #17)
 *   bit 1    permessage-deflate (issue #19)
 *   bits 2-4 permessage-deflate server_max_window_bits - 8 (issue #19)
 *   bit 5    TLS (issue #18)
 *   bit 6    authenticated by a token (issue #16)
 *   bit 7    free
 * Bits 0 and 1 together are the connection's broadcast frame kind (server/bcast.h). */
#define WSP_CONN_X_AUTH (1u << 6) /* its deadline and user id are in the shard's auth arrays */

#define WSP_CONN_X_FRAMED 1u /* xf bit 0: wspush.v1 (WSP_BCAST_FRAMED) */

/* st bit 4: a wspush.v1 connection waits to come in (server/arrival.c): it receives nothing
 * until it has its hello (issue #17). */
#define WSP_CONN_S_WAITING 0x10u

enum {
    /* TLS: tcp.data is a wsp_tlsconn_t (server/tlsconn.h) for the connection's whole life;
     * what a plain connection keeps in tcp.data is in its data slot (conn_data()). */
    WSP_CONN_X_TLS = 1u << 5,
};

#define WSP_CONN_NO_TABLE 3u
#define WSP_CONN_DRAIN_SECONDS 5

/* 256 bytes: the allocator's 256 B size class. tcp.data carries the one per-state pointer
 * (handshake buffer, then the on-demand wslay state or the channel extension) so the struct
 * needs no extra word, and the owning shard is tcp.loop->data. */
struct wsp_conn_s {
    uv_tcp_t tcp;      /* first member: libuv hands &tcp back to every callback */
    uint32_t idx : 24; /* slot in the shard table named by the table bits (< WSP_TABLE_MAX) */
    uint32_t xf : 8;   /* WSP_CONN_X_*: what the upgrade negotiated */
    uint8_t st;        /* state (bits 0-1, WSP_CONN_*) and table (bits 2-3, WSP_SHARD_T_*) */
    uint8_t flags;     /* WSP_CONN_F_* */
    uint8_t deadline;  /* shard tick at which a HANDSHAKE or DRAINING connection is dropped */
    uint8_t reason;    /* WSP_CLOSE_* + 1 once decided; 0 = not yet */
};
static_assert(sizeof(struct wsp_conn_s) <= 256, "bytes per connection: update docs/BENCHMARKS.md");

/* Only for connections that chose channels: their subscriptions and the parser state. */
typedef struct wsp_connext_s {
    wsp_ws_t *ws;
    uint8_t n;
    struct {
        wsp_chan_t *ch;
        uint32_t idx;
    } sub[];
} wsp_connext_t;

static inline unsigned conn_state(const wsp_conn_t *c) { return c->st & 3u; }
static inline unsigned conn_table(const wsp_conn_t *c) { return (c->st >> 2) & 3u; }
static inline void conn_set_state(wsp_conn_t *c, unsigned s)
{
    c->st = (uint8_t)((c->st & ~3u) | s);
}
static inline void conn_set_table(wsp_conn_t *c, unsigned t)
{
    c->st = (uint8_t)((c->st & ~12u) | (t << 2));
}

static inline wsp_shard_conn_t *conn_shard(const wsp_conn_t *c)
{
    return wsp_shard_conn_of(c->tcp.loop);
}

static inline uv_stream_t *conn_stream(wsp_conn_t *c) { return (uv_stream_t *)&c->tcp; }

static inline wsp_shard_stats_t *conn_stats(const wsp_conn_t *c) { return conn_shard(c)->stats; }

static inline int conn_tls(const wsp_conn_t *c) { return (c->xf & WSP_CONN_X_TLS) != 0; }

static inline wsp_tlsconn_t *conn_tlsx(const wsp_conn_t *c) { return c->tcp.data; }

/* Where the per-state pointer (handshake buffer, wslay state, extension) lives: tcp.data, or
 * the data slot of a TLS connection's wsp_tlsconn_t. */
static inline void **conn_data(wsp_conn_t *c)
{
    return conn_tls(c) ? &conn_tlsx(c)->data : &c->tcp.data;
}

/* 1 when c's writes are sealed here (TLS without kTLS): never for a plain connection. */
static inline int conn_seals(const wsp_conn_t *c)
{
    return conn_tls(c) && !(conn_tlsx(c)->flags & WSP_TLSCONN_F_KTLS);
}

/* conn.c, for conn_ho.c (the live upgrade, issue #20) */

/* Where the on-demand parser state lives: the data slot, or the channel extension. */
wsp_ws_t **wsp__conn_ws_slot(wsp_conn_t *c);

/* Moves c into shard table t (from the one it is in, if any). 0 or -ENOMEM (c unmoved). */
int wsp__conn_move(wsp_conn_t *c, unsigned table);

/* Joins the channels of cl (none: the default channel). 0 or a negative errno. */
int wsp__conn_subscribe(wsp_conn_t *c, const wsp_chanlist_t *cl);

/* The read callbacks of every connection. */
void wsp__conn_on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
void wsp__conn_on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf);
#include "upgrade.h"

/* What admission grants a connection: its channels, its identity (a verified token), the
 * subprotocol (wspush.v1) and the extension (permessage-deflate) it gets. */
typedef struct wsp__conn_grant_s {
    wsp_chanlist_t channels; /* what to join: ?channels=, or the token's claim */
    int authed;              /* a token was verified: auth holds what it grants */
    wsp_auth_grant_t auth;
    uint8_t framed;         /* the wspush.v1 subprotocol (issue #17) */
    wsp_resume_ask_t ask;   /* wspush.v1: its channels and ?since=&epoch= */
    wsp_pmd_t pmd;          /* permessage-deflate as agreed (issue #19); pmd.on false: none */
    const char *pmd_answer; /* its Sec-WebSocket-Extensions answer (static), NULL: none */
} wsp__conn_grant_t;

/* conn.c */

/* The shard c belongs to. */
wsp_shard_conn_t *wsp__conn_shard(const wsp_conn_t *c);

/* The TLS state of a TLS connection (NULL once freed). */
wsp_tlsconn_t *wsp__conn_tlsx(const wsp_conn_t *c);

/* Bytes queued in c's libuv write queue. */
size_t wsp__conn_queued(const wsp_conn_t *c);

/* Where c keeps its per-state pointer: the handshake buffer while in HANDSHAKE. */
void **wsp__conn_data(wsp_conn_t *c);

/* 1 when c holds a --max-conns slot (else it is to be answered 503). */
int wsp__conn_reserved(const wsp_conn_t *c);

/* Writes len bytes as they are (already sealed, or a handshake's output), queueing a copy of
 * what the socket does not take. 0 or a negative errno. */
int wsp__conn_write_raw(wsp_conn_t *c, const void *p, size_t len);

/* Writes len bytes of WebSocket or HTTP, sealed first on a TLS connection (whose handshake
 * must be done). 0 or a negative errno. */
int wsp__conn_write_copy(wsp_conn_t *c, const void *p, size_t len);

/* Client frames of an OPEN connection, fed to its parser; acts on what it says. */
void wsp__conn_feed(wsp_conn_t *c, const uint8_t *p, size_t n);

/* Handshake, step 3: writes the 101 for r, moves c to OPEN and applies what g grants. 0 or a
 * negative errno (the caller closes c). */
int wsp__conn_upgrade(wsp_conn_t *c, const wsp_upgrade_req_t *r, const wsp__conn_grant_t *g);

/* Plaintext from the peer: the HTTP upgrade, then WebSocket frames. 1 once c takes no more. */
int wsp__conn_input(wsp_conn_t *c, const uint8_t *p, size_t n);

/* Records reason (WSP_CLOSE_*) unless one is recorded, then lets what is queued (an alert)
 * go out and closes, within a second or two. */
void wsp__conn_fail(wsp_conn_t *c, int reason);

/* conn_admit.c */

/* Bytes of a connection in HANDSHAKE: buffer -> parse -> admit -> upgrade, then the frames
 * that came with the request. */
void wsp__conn_handshake(wsp_conn_t *c, const uint8_t *p, size_t n);

/* Answers an HTTP error status and closes once it is written. */
void wsp__conn_reject(wsp_conn_t *c, int status);

/* conn_tls.c */

/* Bytes received on a TLS connection: handshake, then records. */
void wsp__conn_tls_read(wsp_conn_t *c, const uint8_t *p, size_t n);

/* From c's close callback: counts a TLS handshake that never ended (reason is the close's
 * WSP_CLOSE_*), gives back its slot and frees the TLS state. */
void wsp__conn_tls_free(wsp_conn_t *c, int reason);

#endif
