#ifndef WSP_CONN_H
#define WSP_CONN_H

/* A client connection, from accept to free, on the thread of the shard that accepted it:
 * the HTTP upgrade (buffer -> admit -> upgrade), broadcasts written to it (directly, or
 * queued when the socket is full), the client's frames (server/ws.c), pings, draining and
 * closing. The shard (server/shard.c) calls these; a connection reaches its shard only
 * through server/shard_conn.h. */

#include <stdint.h>
#include <uv.h>

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

/* Accepts one connection from the shard's listener and starts reading its handshake.
 * Returns 0 or a negative errno (the connection, if any, is already being closed). Shard. */
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

/* Queues a close frame with code, stops broadcasts to c and closes TCP once it is flushed or
 * after 5 s. Idempotent; owning shard thread. */
void wsp_conn_drain(wsp_conn_t *c, uint16_t code);

/* Starts closing c; safe to call twice and from any error path. Owning shard thread only. */
void wsp_conn_close(wsp_conn_t *c);

/* As wsp_conn_close(), recording why (WSP_CLOSE_*) unless a reason was recorded already. */
void wsp_conn_close_why(wsp_conn_t *c, int reason);

/* Sends a ping, or closes c (ping timeout) when the previous one got no answer: any bytes
 * from the peer count as an answer. Returns 0 when a ping was sent. Owning shard thread. */
int wsp_conn_ping(wsp_conn_t *c);

/* 1 when c receives the default channel (no ?channels=, or "time" among them). Shard. */
int wsp_conn_wants_default(const wsp_conn_t *c);

/* c's WSP_CONN_* state. Owning shard thread. */
int wsp_conn_state(const wsp_conn_t *c);

/* 1 when c has a deadline (HANDSHAKE or DRAINING) that tick has reached. Shard thread. */
int wsp_conn_expired(const wsp_conn_t *c, uint8_t tick);

/* Live upgrade (issue #20). Describes c for the new process in *h (pointers into c's
 * memory and into scratch[0..cap), valid until c changes) and gives its socket in *fd.
 * Returns 0, -EAGAIN when c cannot move yet (its parser holds part of a client frame),
 * -EALREADY when it never moves (draining or closing: it finishes here), or -E2BIG when its
 * queued bytes exceed cap.
 * Owning shard thread. */
int wsp_conn_handover(wsp_conn_t *c, wsp_ho_conn_t *h, int *fd, uint8_t *scratch, size_t cap);

/* c went to the new process (its descriptor was sent): it is closed here without a byte
 * written or read, counted as handed over. Owning shard thread. */
void wsp_conn_handed(wsp_conn_t *c);

/* Makes a connection of sc's shard on loop from socket fd (now the connection's, even on
 * failure) and what the old process said of it: its state, queued bytes (written first),
 * channels and handshake so far. Returns 0 or a negative errno (fd then closed). Owning
 * shard thread. */
int wsp_conn_adopt(wsp_shard_conn_t *sc, uv_loop_t *loop, int fd, const wsp_ho_conn_t *h);

#endif
