#ifndef WSP_BCONN_H
#define WSP_BCONN_H

#include <assert.h>
#include <stdint.h>

/* One client connection of a bench worker, in a table indexed by its fd. The worker is the
 * only writer; the table lives in shared memory so that at the end the parent counts what
 * each connection still open missed (bench/tally.c), also for a worker that died. Header
 * only: the record and its states. */

enum { WSP_BCONN_FREE = 0, WSP_BCONN_CONNECTING, WSP_BCONN_HANDSHAKE, WSP_BCONN_OPEN };

/* flags: bits 0-2 are the worker's (bench/worker_int.h: a fragmented message, the wspush.v1
 * hello, a resumed connection); the server accepted permessage-deflate (--deflate, issue
 * #19): RSV1 means compressed. */
enum { WSP_BCONN_F_DEFLATE = 1u << 3 };

struct wsp_bpend_s; /* the worker's carry-over of a split frame; never read by the parent */

/* The raw-epoll reference client needed 19 B per connection; we keep 24. */
typedef struct wsp_bconn_s {
    struct wsp_bpend_s *pend; /* NULL in the common case */
    uint32_t first_seq;       /* first broadcast received if not 1; 0 = none yet, or 1 */
    uint32_t last_seq;        /* highest broadcast received, for duplicates and gaps */
    uint32_t est_ms;          /* when the 101 arrived, ms after the worker's epoch0_ms */
    uint16_t hs;              /* handshake context while CONNECTING or HANDSHAKE */
    uint8_t state, flags;
} wsp_bconn_t;
static_assert(sizeof(wsp_bconn_t) == 24, "bytes per connection: update docs");

#endif
