#ifndef WSP_UPHIST_H
#define WSP_UPHIST_H

/* A live upgrade's history (issues #20 and #17): every channel's recent messages move from
 * the old process to the new one, so that a wspush.v1 client that comes back after the
 * upgrade with a since= from before it is recovered as if one process had served it.
 *
 * Old process: shard 0, when it stops taking broadcasts for the handover (after the last one
 * posted to it: the rest are queued for the new process), takes a snapshot of its history
 * (wsp_uphist_snapshot: a reference to each frame, no copy). Every shard records the same
 * messages, so one shard's is enough. The coordinator sends it before END as HIST records,
 * oldest first, each with its age (wsp_uphist_put).
 * New process: the coordinator keeps what comes (wsp_uphist_add: each message framed once,
 * its time set back by its age). At the takeover one silent broadcast carries it to every
 * shard, ahead of the broadcasts the old process queued, and each shard records it
 * (wsp_uphist_restore) under its own --history-size, --history-ttl (an entry keeps its age)
 * and --history-max-bytes, which drop the oldest beyond them; with history off nothing is
 * kept. Under --redis nothing moves: Redis holds the history and the new process fetches it
 * from there. */

#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "channels.h"
#include "framed.h"
#include "handover.h"
#include "msg.h"

typedef struct wsp_uphist_ent_s {
    wsp_msg_t *frame; /* the framed frame; one reference, the snapshot's */
    uint64_t seq;
    uint64_t rec;  /* old process: the shard's recording order, by which the snapshot sorts */
    uint64_t t_ms; /* when published, on the loops' clock (uv_now) */
    uint32_t name; /* its channel: an index into names */
} wsp_uphist_ent_t;

typedef struct wsp_uphist_name_s {
    uint8_t len;
    char s[WSP_CHANNEL_NAME_MAX];
} wsp_uphist_name_t;

/* Entries in the order the old process recorded them (each channel's contiguous in seq).
 * All zero: empty. */
typedef struct wsp_uphist_s {
    wsp_uphist_ent_t *v;
    uint32_t n, cap;
    wsp_uphist_name_t *names;
    uint32_t nnames, capnames;
    const char *last; /* the snapshot's last channel name (the table's), to share its index */
    uint8_t epoch_len;
    char epoch[WSP_FRAMED_EPOCH_MAX + 1];
} wsp_uphist_t;

/* Old process: fills the empty h with every history entry of t (a reference to each frame),
 * sorted by t's recording order, in t's epoch. Returns 0 or -ENOMEM (h then empty). Shard
 * thread. */
int wsp_uphist_snapshot(wsp_uphist_t *h, const wsp_chan_table_t *t);

/* Sends the datagram in w and starts another in the same buffer: 0 or a negative errno. */
typedef int (*wsp_uphist_flush_fn)(void *arg);

/* Old process: appends one HIST record per entry of h to w, each aged now_ms - its time,
 * flushing with flush(arg) when w is full; an entry too big for an empty datagram is left
 * out and counted in *skipped (the new process then serves its channel only from after it).
 * Returns 0 or flush's error. Any thread that owns h and w. */
int wsp_uphist_put(const wsp_uphist_t *h, uint64_t now_ms, wsp_ho_writer_t *w,
                   wsp_uphist_flush_fn flush, void *arg, uint64_t *skipped);

/* New process: appends the entry of a decoded HIST record, its message framed again and its
 * time now_ms - its age. Returns 0, -ESTALE when it is of another epoch than
 * epoch[0..elen) (never restored: its numbers would mean nothing here), -EINVAL for a
 * channel name too long, or -ENOMEM. Owner thread. */
int wsp_uphist_add(wsp_uphist_t *h, const wsp_ho_hist_t *r, const char *epoch, size_t elen,
                   uint64_t now_ms);

/* Records every entry of h in t (wsp_chan_restore(), which takes its own references) as of
 * now_ms; returns how many it could not keep for want of memory. Shard thread; h is only
 * read, so every shard may restore from one h at once. */
uint64_t wsp_uphist_restore(const wsp_uphist_t *h, wsp_chan_table_t *t, uint64_t now_ms);

/* Moves h's contents into a new allocation (h is left empty); NULL on ENOMEM (h unchanged). */
wsp_uphist_t *wsp_uphist_move(wsp_uphist_t *h);

/* Drops h's references and frees its arrays; h is left empty. Owner thread. */
void wsp_uphist_free(wsp_uphist_t *h);

/* Frees an h from wsp_uphist_move() and what it holds (a broadcast's free function). */
void wsp_uphist_destroy(void *h);

#endif
