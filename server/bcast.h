#ifndef WSP_BCAST_H
#define WSP_BCAST_H

/* One broadcast in flight: what the coordinator hands every shard of its process, and what
 * the shards report back. The coordinator creates it (wsp_bcast_new), posts the same pointer
 * to every shard's ring and keeps it on its in-flight list; each shard reads it during its
 * pass and calls wsp_bcast_done() once; the last one wakes the coordinator through the done
 * handle given at creation, and the coordinator reaps it (wsp_bcast_reap). Shards write
 * nothing in it but its atomics, and neither side knows the other's module: this is the
 * whole interface between the coordinator and the shards' passes.
 *
 * Frames: a broadcast is encoded once and the same bytes go to every connection of every
 * shard. A pass asks for the frame of the kind each connection was upgraded for
 * (wsp_bcast_frame). The other kinds (the {"ch":..,"seq":..,"data":..} frame for clients of
 * the wspush.v1 subprotocol, a permessage-deflate frame) are built lazily, once per
 * broadcast, by the first shard that needs one, shared by all shards through their reference
 * counts and freed with the broadcast. */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "framed.h"
#include "msg.h"

typedef struct wsp_bcast_s wsp_bcast_t;

/* Frame kinds: what a connection receives (see above). The kind is two bits of the
 * connection (server/conn.c, wsp_conn_s.xf): bit 0 the wspush.v1 framing (issue #17), bit 1
 * permessage-deflate (issue #19). Which kind a connection gets for one broadcast, and the
 * builders of the compressed kinds, are server/pick.c's. */
enum {
    WSP_BCAST_PLAIN = 0,
    WSP_BCAST_FRAMED = 1,         /* {"ch":..,"seq":..,"data":..} */
    WSP_BCAST_DEFLATE = 2,        /* the plain payload, compressed (RSV1) */
    WSP_BCAST_FRAMED_DEFLATE = 3, /* the framed payload, compressed */
    WSP_BCAST_NKINDS
};

/* One shard's pass over a broadcast. */
typedef struct wsp_bcast_report_s {
    uint64_t start_ns, end_ns; /* monotonic; both 0 when the shard did not walk (stopping) */
    uint64_t written, failed;  /* connections */
} wsp_bcast_report_t;

/* What every shard reported, summed, once the last one is done. */
typedef struct wsp_bcast_result_s {
    unsigned shards;          /* shards it was posted to, skipped ones included */
    uint64_t written, failed; /* connections, over every shard */
    uint64_t ns;              /* first shard's start to last shard's end; 0 if none walked */
} wsp_bcast_result_t;

/* Encodes payload once as a text frame and makes a broadcast of it for shards shards, on
 * channel chan[0..chan_len) (NULL/0 = the default channel), numbered seq. done is signalled
 * by the last shard to report. Returns 0, -EINVAL for a channel name over
 * WSP_CHANNEL_NAME_MAX or -ENOMEM. Coordinator thread; *out is the coordinator's until it
 * is posted and tracked. */
int wsp_bcast_new(wsp_bcast_t **out, const char *chan, size_t chan_len, const uint8_t *payload,
                  size_t len, uint64_t seq, unsigned shards, uv_async_t *done);

/* The frame for connections of kind (WSP_BCAST_*): one reference owned by b, valid until the
 * caller's wsp_bcast_done(b). A shard that keeps the bytes beyond that (a queued tail) takes a
 * reference of its own. The plain kind always exists; another kind is NULL until built by
 * wsp_bcast_frame_build(). Shard thread, between popping b and wsp_bcast_done(b). */
wsp_msg_t *wsp_bcast_frame(wsp_bcast_t *b, unsigned kind);

/* Makes the frame of one kind for b from b's payload (wsp_bcast_payload()), channel and seq;
 * ctx is the calling shard's (a compressor, say). Returns a new message with one reference,
 * which b takes, or NULL (out of memory, or the kind does not apply to this payload). */
typedef wsp_msg_t *(*wsp_bcast_build_fn)(const wsp_bcast_t *b, void *ctx);

/* The frame of kind, built by build(b, ctx) on first use: exactly once per broadcast, by the
 * first shard that asks; a shard that asks while another builds waits for it (a build is one
 * encode or one compression of one payload, microseconds). Returns the frame (owned by b, as
 * wsp_bcast_frame()) or NULL when the build returned NULL, for every shard that asks. Shard
 * thread, between popping b and wsp_bcast_done(b). */
wsp_msg_t *wsp_bcast_frame_build(wsp_bcast_t *b, unsigned kind, wsp_bcast_build_fn build,
                                 void *ctx);

/* The payload b was made from: the plain frame's bytes after its header. Valid while b is
 * held. Any thread holding b. */
const uint8_t *wsp_bcast_payload(const wsp_bcast_t *b, size_t *len);

/* The payload of m, one complete unmasked server frame (any kind's), and its length in *len.
 * Valid while m is held. Pure; any thread holding m. */
const uint8_t *wsp_bcast_frame_payload(const wsp_msg_t *m, size_t *len);

/* The channel b is for, or NULL for the default channel; *len gets its length. Any thread
 * holding b. */
const char *wsp_bcast_channel(const wsp_bcast_t *b, size_t *len);

/* b's sequence number, as the publisher (server/publisher.c) assigned it. Any thread holding
 * b. */
uint64_t wsp_bcast_seq(const wsp_bcast_t *b);

/* Makes b a message for one user (issue #16) instead of a channel: every shard writes it to
 * the connections whose token's sub hashes to uid (server/auth.h), and the coordinator hands
 * tag back to the publisher when reaping it (the delivery report of POST /publish?user=).
 * Coordinator thread, before posting b. */
void wsp_bcast_set_user(wsp_bcast_t *b, uint64_t uid, uint64_t tag);

/* 1 when b is for one user (its uid and tag in *uid, *tag; either may be NULL), else 0. Any
 * thread holding b. */
int wsp_bcast_user(const wsp_bcast_t *b, uint64_t *uid, uint64_t *tag);

/* Where a broadcast stands in its channel (issue #17), set by the coordinator before it
 * posts b. */
typedef struct wsp_bcast_pos_s {
    uint64_t seq;      /* the channel's sequence number; 0 = none ("seq":null, not recorded) */
    uint64_t g;        /* its number in the process's broadcast order (wsp_chan_pos_note()) */
    uint32_t gen;      /* the Redis link generation it arrived in (0 without Redis) */
    uint8_t silent;    /* only says that the epoch changed: no connection gets it */
    uint8_t epoch_len; /* 0: says nothing about the epoch */
    char epoch[WSP_FRAMED_EPOCH_MAX + 1];
} wsp_bcast_pos_t;

/* Sets b's place (a copy of *pos). Coordinator thread, before posting b. */
void wsp_bcast_set_pos(wsp_bcast_t *b, const wsp_bcast_pos_t *pos);

/* b's place in its channel. Any thread holding b. */
const wsp_bcast_pos_t *wsp_bcast_pos(const wsp_bcast_t *b);

/* Makes b carry a live upgrade's history (server/uphist.h, issue #20) to every shard, which
 * records it before anything posted after b; free_fn(h) runs when b is freed. Coordinator
 * thread, before posting b. */
void wsp_bcast_set_history(wsp_bcast_t *b, void *h, void (*free_fn)(void *h));

/* The history b carries (read-only for the shards), or NULL. Any thread holding b. */
const void *wsp_bcast_history(const wsp_bcast_t *b);

/* Builds b's WSP_BCAST_FRAMED frame ({"ch":..,"seq":..,"data":..}) from its payload, channel
 * and position (ctx unused): the wsp_bcast_build_fn of that kind, for
 * wsp_bcast_frame_build() and server/pick.c. NULL when out of memory. Any thread. */
wsp_msg_t *wsp_bcast_build_framed(const wsp_bcast_t *b, void *ctx);

/* The WSP_BCAST_FRAMED frame of b ({"ch":..,"seq":..,"data":..}, server/framed.h), built on
 * first use as wsp_bcast_frame_build() does; NULL when out of memory. Shard thread, between
 * popping b and wsp_bcast_done(b). */
wsp_msg_t *wsp_bcast_framed(wsp_bcast_t *b);

/* Reports one shard's pass over b and gives up that shard's hold on b; the last shard wakes
 * the coordinator. b may be freed as soon as this returns. Shard thread, once per b. */
void wsp_bcast_done(wsp_bcast_t *b, const wsp_bcast_report_t *r);

/* Gives up the holds of n shards that never got b (their ring was full). Returns 1 when no
 * shard holds b any more (reap now), else 0. Coordinator thread, after posting. */
int wsp_bcast_cancel(wsp_bcast_t *b, unsigned n);

/* Puts b on an in-flight list (the coordinator's; *list NULL when empty). Coordinator. */
void wsp_bcast_track(wsp_bcast_t **list, wsp_bcast_t *b);

/* Called by wsp_bcast_reap() for each finished broadcast, just before it is freed. */
typedef void (*wsp_bcast_reap_fn)(void *user, const wsp_bcast_t *b, const wsp_bcast_result_t *r);

/* Unlinks every broadcast of *list that all its shards have reported, hands it to fn (may be
 * NULL) and frees it. Coordinator thread. */
void wsp_bcast_reap(wsp_bcast_t **list, wsp_bcast_reap_fn fn, void *user);

/* Frees every broadcast of *list, finished or not: only when no shard can hold one (a failed
 * start, or after every shard was joined). Coordinator thread. */
void wsp_bcast_free_all(wsp_bcast_t **list);

#endif
