#ifndef WSP_HANDOFF_H
#define WSP_HANDOFF_H

/* A shard's side of a live upgrade (issue #20): the old process's shard sends every
 * connection it can move (server/conn.c describes each) over its own SOCK_SEQPACKET socket to
 * the new process's shard of the same index, which adopts them; up to WSP_HO_FDS_MAX
 * connections per datagram (server/handover.h), each with its descriptor (SCM_RIGHTS). A
 * connection is closed in the old process only after the datagram holding it was sent, so
 * each is in exactly one process at any time. Owning shard thread only. */

#include <stdint.h>
#include <uv.h>

#include "handover.h"
#include "shard_conn.h"

typedef struct wsp_handoff_s {
    int sock;         /* this shard's socket to the other process; closed by wsp_handoff_free */
    uint8_t *buf;     /* WSP_HO_DGRAM_MAX: the datagram being built or received */
    uint8_t *scratch; /* one connection's queued bytes */
    wsp_ho_writer_t w;
    int secret; /* buf holds TLS keys (tag 0x02): wiped once sent, never left in memory */
    unsigned n; /* connections in the datagram being built */
    wsp_conn_t *batch[WSP_HO_FDS_MAX];
    int fds[WSP_HO_FDS_MAX];
    uint64_t moved;  /* connections sent (old) or adopted (new) */
    uint64_t failed; /* adopted records that could not become connections (new) */
    uint64_t closed; /* old: closed instead of sent (state not carried, or too much queued) */
    uint64_t misfit; /* new: adopted, closing with 4001: a token state that does not fit */
} wsp_handoff_t;

/* Takes sock (the handoff's from here on, even on failure). Returns 0 or -ENOMEM. */
int wsp_handoff_init(wsp_handoff_t *h, int sock);

/* Closes the socket and frees the buffers. Idempotent. */
void wsp_handoff_free(wsp_handoff_t *h);

/* Old process: sends every connection of sc that can move now (OPEN and HANDSHAKE ones) and
 * closes each once sent. *left counts those that must wait (part of a client frame in the
 * parser); draining ones finish here. Returns 0 or a negative errno from sending (what was not
 * sent is still open here). */
int wsp_handoff_send(wsp_handoff_t *h, wsp_shard_conn_t *sc, unsigned *left);

/* Old process: tells the new shard that nothing more comes. Returns 0 or a negative errno. */
int wsp_handoff_end(wsp_handoff_t *h);

/* New process: adopts what the socket holds now (it does not block) into sc on loop; *ended
 * turns 1 at the old shard's end. Returns 0, -EPIPE when the old process went away before its
 * end, or another negative errno. */
int wsp_handoff_recv(wsp_handoff_t *h, wsp_shard_conn_t *sc, uv_loop_t *loop, int *ended);

#endif
