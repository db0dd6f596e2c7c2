#ifndef WSP_PICK_H
#define WSP_PICK_H

/* Which frame of a broadcast each connection gets in one shard's pass, and the builders of
 * the compressed kinds. A connection's kind is bits 0-1 of what its upgrade negotiated
 * (wsp_conn_xf(): WSP_BCAST_PLAIN, FRAMED, DEFLATE or FRAMED_DEFLATE, server/bcast.h). A
 * compressed kind gets its uncompressed kind's frame instead (RSV1 clear, which RFC 7692
 * allows per message) when the payload is under --deflate-min-bytes, longer than the window
 * the client allowed (server_max_window_bits, negotiated bits 2-4: wsp_pmd_fits()), not
 * smaller once compressed, or when compressing failed. Every kind is built through
 * wsp_bcast_frame_build(): at most once per broadcast in the process, by the first shard that
 * needs it, with that shard's compressor, and shared by all. The choice depends on the
 * negotiated bits 0-4 alone, so a pass resolves each of their 32 values at most once and
 * then costs two table loads per connection. Shard thread only. */

#include <stdint.h>

#include "bcast.h"
#include "deflate.h"
#include "metrics.h"

/* The negotiated bits (server/conn.h, WSP_CONN_X_*) that decide the frame. */
#define WSP_PICK_XF_BITS 5
#define WSP_PICK_XF_MASK ((1u << WSP_PICK_XF_BITS) - 1)

/* What a shard keeps from one pass to the next. */
typedef struct wsp_pick_shard_s {
    wsp_deflate_t *z;         /* the shard's compressor (653 KiB): made by the first build it
                                 makes, freed by wsp_pick_shard_free() */
    uint32_t min_bytes;       /* --deflate-min-bytes */
    wsp_shard_stats_t *stats; /* the deflate_* counters of its builds */
    /* The builder of WSP_BCAST_FRAMED, the wspush.v1 framing of issue #17, called with ctx
     * NULL; NULL until that lands (no connection negotiates the framing before it), and a
     * framed connection then gets the plain frame. FRAMED_DEFLATE compresses its frame. */
    wsp_bcast_build_fn framed;
} wsp_pick_shard_t;

/* kind_of[] before a value of the negotiated bits is resolved. */
#define WSP_PICK_UNRESOLVED 0xFFu

/* One pass over one broadcast. */
typedef struct wsp_pick_s {
    wsp_bcast_t *b;
    wsp_pick_shard_t *ps;
    /* Per value of the negotiated bits 0-4: the kind (WSP_BCAST_*) of the frame it gets, which
     * may be less than asked for (uncompressed); WSP_PICK_UNRESOLVED until first asked. */
    uint8_t kind_of[1u << WSP_PICK_XF_BITS];
    wsp_msg_t *frame[WSP_BCAST_NKINDS]; /* the frames of the kinds given out so far */
} wsp_pick_t;

/* Starts a pass of ps's shard over b: only the plain frame is known. */
void wsp_pick_begin(wsp_pick_t *p, wsp_bcast_t *b, wsp_pick_shard_t *ps);

/* Resolves (and builds, if this shard is the first to need it) the frame for the negotiated
 * bits xf (already masked); see wsp_pick_kind(). */
unsigned wsp__pick_resolve(wsp_pick_t *p, unsigned xf);

/* The kind of frame a connection whose upgrade negotiated xf (wsp_conn_xf()) gets: its frame
 * is p->frame[kind], owned by the broadcast, valid until the pass reports (wsp_bcast_done()).
 * Two bits: the pass may carry it in the low bits of a connection pointer. */
static inline unsigned wsp_pick_kind(wsp_pick_t *p, unsigned xf)
{
    unsigned k = p->kind_of[xf & WSP_PICK_XF_MASK];
    return k != WSP_PICK_UNRESOLVED ? k : wsp__pick_resolve(p, xf & WSP_PICK_XF_MASK);
}

/* The frame itself (see wsp_pick_kind()). Never NULL. */
static inline wsp_msg_t *wsp_pick_frame(wsp_pick_t *p, unsigned xf)
{
    return p->frame[wsp_pick_kind(p, xf)];
}

/* Frees what ps made (its compressor). The shard's thread, or any once it has been joined. */
void wsp_pick_shard_free(wsp_pick_shard_t *ps);

#endif
