#ifndef WSP_CONN_H
#define WSP_CONN_H

/* A client connection, from accept to free, on the thread of the shard that accepted it:
 * the HTTP upgrade (buffer -> admit -> upgrade), broadcasts written to it (directly, or
 * queued when the socket is full), the client's frames (server/ws.c), pings, draining and
 * closing. The shard (server/shard.c) calls these; a connection reaches its shard only
 * through server/shard_conn.h. */

#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "channels.h"
#include "handover.h"
#include "msg.h"
#include "shard_conn.h"

/* Connection states; changed only in conn.c. */
enum {
    WSP_CONN_HANDSHAKE = 0, /* waiting for the HTTP upgrade request */
    WSP_CONN_OPEN = 1,      /* upgraded: receives broadcasts */
    WSP_CONN_DRAINING = 2,  /* a final response or close frame is queued; closes when flushed */
    WSP_CONN_CLOSING = 3,   /* uv_close() called; freed in the close callback */
};

/* What the upgrade negotiated (wsp_conn_xf()); the bit plan is above struct wsp_conn_s. */
#define WSP_CONN_X_KIND 3u           /* bits 0-1: the broadcast frame kind (WSP_BCAST_*) */
#define WSP_CONN_X_DEFLATE (1u << 1) /* permessage-deflate (issue #19) */
#define WSP_CONN_X_WBITS_SHIFT 2     /* bits 2-4: its server_max_window_bits - 8 */
#define WSP_CONN_X_WBITS (7u << 2)

/* Accepts one connection from the shard's listener and starts reading its handshake.
 * Returns 0 or a negative errno (the connection, if any, is already being closed); -ENOMEM
 * and -EBUSY (TLS: --tls-max-handshakes in progress) leave it unaccepted. Shard. */
int wsp_conn_accept(wsp_shard_conn_t *sc, uv_stream_t *server);

/* Writes m (a complete frame) to c, queueing what the socket does not take with a reference
 * to m. Returns 0, -ENOBUFS when more than --max-pending bytes would be queued (c is then
 * draining with close 1008), or a negative errno (caller closes). Owning shard thread. */
int wsp_conn_send(wsp_conn_t *c, wsp_msg_t *m);

/* Queues m's bytes from offset done on with libuv (a reference to m held until written):
 * the rest of a frame a direct send did not finish. Returns 0 or a negative errno (caller
 * closes). Owning shard thread. */
int wsp_conn_send_rest(wsp_conn_t *c, wsp_msg_t *m, size_t done);

/* c's socket when c is OPEN and nothing waits in its libuv write queue, so a frame may be
 * sent on it directly (the io_uring pass); else -1. Owning shard thread. */
int wsp_conn_direct_fd(wsp_conn_t *c);

/* For a direct send (the io_uring pass) to a TLS connection that seals its own records:
 * seals m into out[0..cap) (which must stay valid until the send's result is in) and
 * returns the length to send; 0 when c sends m itself (plain, or the kernel seals);
 * -ENOBUFS when cap is too small (send the batch, then retry); another negative errno:
 * close c. The sequence number is spent from here on. Owning shard thread. */
ssize_t wsp_conn_seal(wsp_conn_t *c, const wsp_msg_t *m, uint8_t *out, size_t cap);

/* The result of the direct send of what wsp_conn_seal() sealed: 1 when all of it went out;
 * 0 when the rest (all of it for -EAGAIN, or -ECANCELED: never sent) was queued the libuv
 * way, as a copy: it cannot be sealed again; or a negative errno (close c). Shard. */
int wsp_conn_seal_sent(wsp_conn_t *c, int res);

/* Queues a close frame with code, stops broadcasts to c and closes TCP once it is flushed or
 * after 5 s. Idempotent; owning shard thread. */
void wsp_conn_drain(wsp_conn_t *c, uint16_t code);

/* c's token expired (issue #16): drains it with close 4001, counted as token_expired.
 * Owning shard thread. */
void wsp_conn_expire(wsp_conn_t *c);

/* Starts closing c; safe to call twice and from any error path. Owning shard thread only. */
void wsp_conn_close(wsp_conn_t *c);

/* As wsp_conn_close(), recording why (WSP_CLOSE_*) unless a reason was recorded already. */
void wsp_conn_close_why(wsp_conn_t *c, int reason);

/* Sends a ping, or closes c (ping timeout) when the previous one got no answer: any bytes
 * from the peer count as an answer. Returns 0 when a ping was sent. Owning shard thread. */
int wsp_conn_ping(wsp_conn_t *c);

/* What c's upgrade negotiated: the WSP_CONN_X_* bits (0 for a plain connection). Shard. */
unsigned wsp_conn_xf(const wsp_conn_t *c);

/* 1 when c receives the default channel (no ?channels=, or "time" among them). Shard. */
int wsp_conn_wants_default(const wsp_conn_t *c);

/* Writes every frame of m[0..n) in order (a hello, a replay): as many as the socket takes in
 * one writev, the rest queued behind with references (a replay counts against
 * --max-pending only for the broadcasts after it). Returns 0 or a negative errno (caller
 * closes). Owning shard thread. */
int wsp_conn_send_all(wsp_conn_t *c, wsp_msg_t *const *m, unsigned n);

/* A wspush.v1 connection waits to come in: it receives no broadcast until wsp_conn_join()
 * (server/arrival.c). Owning shard thread. */
void wsp_conn_wait(wsp_conn_t *c);

/* c joins the channels of cl: broadcasts reach it from here on. Returns 0 or a negative
 * errno (caller closes). Owning shard thread. */
int wsp_conn_join(wsp_conn_t *c, const wsp_chanlist_t *cl);

/* c's WSP_CONN_* state. Owning shard thread. */
int wsp_conn_state(const wsp_conn_t *c);

/* 1 when c has a deadline (HANDSHAKE or DRAINING) that tick has reached. Shard thread. */
int wsp_conn_expired(const wsp_conn_t *c, uint8_t tick);

/* Live upgrade (issue #20). Describes c for the new process in *h (pointers into c's
 * memory and into scratch[0..cap), valid until c changes) and gives its socket in *fd.
 * A TLS connection's record layer is described too (pointers into its state: key material
 * the caller must not leave in its buffers). Returns 0, -EAGAIN when c cannot move yet (its
 * parser holds part of a client frame, a wspush.v1 connection has not joined yet, or it is in
 * the middle of its TLS handshake), -EALREADY when it never moves (draining or closing: it
 * finishes here), -ENOTSUP for state the handover does not carry yet (kTLS), or -E2BIG
 * when its queued bytes exceed cap. A token's user id and deadline go in h->auth.
 * Owning shard thread. */
int wsp_conn_handover(wsp_conn_t *c, wsp_ho_conn_t *h, int *fd, uint8_t *scratch, size_t cap);

/* c went to the new process (its descriptor was sent): it is closed here without a byte
 * written or read, counted as handed over. Owning shard thread. */
void wsp_conn_handed(wsp_conn_t *c);

/* Makes a connection of sc's shard on loop from socket fd (now the connection's, even on
 * failure) and what the old process said of it: its state, queued bytes (written first, as
 * they are), channels, token, handshake so far and TLS record layer. Returns 0; 1 when its
 * token state does not fit this process (a token without token auth here or with another
 * algorithm, or none where one is needed): closing with 4001 as an expired token; or a
 * negative errno (fd then closed; -EPROTONOSUPPORT: a TLS connection and no --tls-cert here).
 * Owning shard thread. */
int wsp_conn_adopt(wsp_shard_conn_t *sc, uv_loop_t *loop, int fd, const wsp_ho_conn_t *h);

#endif
