#ifndef WSP_LINK_H
#define WSP_LINK_H

/* One end of the supervisor <-> worker socketpair on a libuv loop: packets out (copied,
 * fire-and-forget) and packets in, reassembled by server/ipc.c. The supervisor holds one per
 * worker (supervisor.c), a worker one to its supervisor (coordinator.c). Main loop thread of
 * the process only. */

#include <stdint.h>
#include <uv.h>

#include "ipc.h"

/* Called once when the link stops reading for good: the peer closed or failed (protocol 0,
 * err = libuv's error, UV_EOF on a clean close), or sent what is not a packet (protocol 1,
 * err = what wsp_ipc_feed() returned). */
typedef void (*wsp_link_end_fn)(void *user, int protocol, int err);

typedef struct wsp_link_s {
    uv_pipe_t pipe; /* first member; pipe.data is left to the owner */
    wsp_ipc_reader_t rd;
    wsp_ipc_packet_fn on_packet;
    wsp_link_end_fn on_end;
    void *user;
} wsp_link_t;

/* Initialises l's pipe handle on loop (open it with uv_pipe_open() or hand it to uv_spawn()).
 * ipc 1 receives descriptors too (a worker: the control socket of a live upgrade, issue #20,
 * read with uv_pipe_pending_count() and uv_accept() in the packet callback). Returns 0 or a
 * negative errno. */
int wsp_link_init(wsp_link_t *l, uv_loop_t *loop, int ipc);

/* Starts reading: fn for each packet, end once reading stops (see above). Returns 0 or a
 * negative errno. */
int wsp_link_read_start(wsp_link_t *l, wsp_ipc_packet_fn fn, wsp_link_end_fn end, void *user);

/* Queues one packet; the bytes are copied (one allocation per packet, freed once written). A
 * failed write shows up on the read side. Returns 0 or a negative errno. */
int wsp_link_send(wsp_link_t *l, uint8_t type, uint64_t seq, const uint8_t *payload, uint32_t len);

/* Frees the partial packet the reader holds. Call after the pipe has closed. */
void wsp_link_reset(wsp_link_t *l);

#endif
