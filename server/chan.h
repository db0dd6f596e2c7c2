#ifndef WSP_CHAN_H
#define WSP_CHAN_H

/* Channels and their state, the one home of per-channel state (issue #17 added positions and
 * history):
 * - a shard's channel table (wsp_chan_table_t, in server/shard_conn.h): for each channel its
 *   subscribers in this shard, its position (the last sequence number this shard processed)
 *   and its recent history (the framed frames of the last --history-size messages, no older
 *   than --history-ttl). A channel exists while it has subscribers or history entries; a
 *   walk keeps it allocated until it ends. Owning shard thread only.
 * - a process's positions (wsp_chan_pos_t): every channel's last sequence number as the
 *   coordinator handed it to the shards, with the broadcast's place in that order, so that a
 *   shard can tell a channel's position where it has no entry of its own. Coordinator writes,
 *   shards read, under its lock (once per connection, never per message).
 * - a publisher's counters (wsp_chan_seqs_t): the next sequence number of each channel.
 *   Owner thread only.
 * - the process-wide history budget (wsp_chan_hist_t): --history-max-bytes over every shard,
 *   each frame counted once although every shard references it.
 * The default channel ("time") has no subscriber table: it is every OPEN connection that did
 * not opt out; it has a position and history like any channel. The other places channels
 * appear: server/channels.c parses names and the ?channels= query, server/redis.c maps a
 * channel to the Redis channel NAME:<chan> and its stream. */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "framed.h"
#include "msg.h"
#include "table.h"

typedef struct wsp_chan_s wsp_chan_t;

/* The history settings and their process-wide accounting, shared by a process's shards (the
 * coordinator owns it). units is what every shard's history costs, in bytes x nshards: a
 * shard adds a frame's bytes once (every shard references the same frame: on average each
 * frame counts once) and its own bookkeeping nshards times. */
typedef struct wsp_chan_hist_s {
    uint32_t size;      /* messages per channel; 0 = history off */
    uint64_t ttl_ms;    /* 0 = no age limit */
    uint64_t max_bytes; /* the budget, over every shard of the process */
    unsigned nshards;
    atomic_uint_fast64_t units;
} wsp_chan_hist_t;

/* The channels of one shard and its place in the broadcast order. All zero: empty, history
 * off, no epoch known; wsp_chan_table_init() sets the rest. */
typedef struct wsp_chan_table_s {
    wsp_chan_t **buckets; /* a power of two of them, or NULL */
    uint32_t n, nbuckets;
    /* issue #17: positions and history */
    wsp_chan_hist_t *hist; /* NULL: no history (tests) */
    wsp_chan_t **heap;     /* channels with history, by their oldest entry's age */
    uint32_t nheap, capheap;
    uint64_t rec;      /* entries recorded so far: their order */
    uint64_t units;    /* this shard's part of hist->units */
    uint64_t entries;  /* history entries held */
    uint64_t evicted;  /* entries dropped for the byte budget */
    uint64_t g;        /* the last broadcast processed (wsp_chan_pos_note()'s number) */
    uint8_t epoch_len; /* 0: no epoch known yet */
    char epoch[WSP_FRAMED_EPOCH_MAX + 1];
} wsp_chan_table_t;

/* Sets up an empty table whose history follows hist (NULL: none) in epoch[0..epoch_len)
 * (0: unknown until a broadcast says). Shard thread (or before it runs). */
void wsp_chan_table_init(wsp_chan_table_t *t, wsp_chan_hist_t *hist, const char *epoch,
                         size_t epoch_len);

/* Adds c to the channel name[0..len) of t (created on first use), and returns the channel
 * in *ch and c's slot in it in *idx. Returns 0, -EINVAL for a name longer than
 * WSP_CHANNEL_NAME_MAX, or -ENOMEM (c is then not subscribed). */
int wsp_chan_subscribe(wsp_chan_table_t *t, const char *name, size_t len, wsp_conn_t *c,
                       wsp_chan_t **ch, uint32_t *idx);

/* Removes slot idx from ch; an emptied channel without history is freed unless a walk is on
 * it. Returns the connection moved into idx, whose slot the caller updates, or NULL. */
wsp_conn_t *wsp_chan_unsubscribe(wsp_chan_table_t *t, wsp_chan_t *ch, uint32_t idx);

/* The channel name[0..len) of t, or NULL when this shard has no state for it. */
wsp_chan_t *wsp_chan_find(const wsp_chan_table_t *t, const char *name, size_t len);

/* ch's name (not NUL-terminated); *len gets its length. */
const char *wsp_chan_name(const wsp_chan_t *ch, size_t *len);

/* Starts a walk over ch's subscribers and returns them: ch stays allocated, even emptied,
 * until wsp_chan_walk_end(). */
wsp_table_t *wsp_chan_walk_begin(wsp_chan_t *ch);

/* Ends the walk; frees ch if it has no subscriber and no history left. */
void wsp_chan_walk_end(wsp_chan_table_t *t, wsp_chan_t *ch);

/* Frees every channel of t, its history and the table itself. */
void wsp_chan_table_free(wsp_chan_table_t *t);

/* --- positions and history (issue #17) --- */

/* Notes that the shard processed broadcast number g (any broadcast, sequenced or not). */
static inline void wsp_chan_position(wsp_chan_table_t *t, uint64_t g) { t->g = g; }

/* Records a sequenced broadcast: message seq (> 0) of channel name[0..len) in epoch[0..elen),
 * Redis link generation gen, published at now_ms (monotonic), whose framed frame is frame
 * (NULL: history off). A new epoch drops every channel's history and position first; a seq
 * that does not follow the channel's known position drops its history (never served across
 * a gap). Appends frame (taking a reference) when history is on, then drops what
 * --history-size, --history-ttl and --history-max-bytes no longer allow, oldest first.
 * Returns 0 or -ENOMEM (the message is then not in the history: the position still moved,
 * and the history restarts after it). */
int wsp_chan_record(wsp_chan_table_t *t, const char *name, size_t len, uint64_t seq,
                    const char *epoch, size_t elen, uint32_t gen, wsp_msg_t *frame,
                    uint64_t now_ms);

/* Records an entry a live upgrade carried over (issue #20): message seq of channel
 * name[0..len) in the table's epoch, first published at t_ms (this process's uv_now clock),
 * as wsp_chan_record() does at now_ms: appended (a reference taken) after the channel's
 * position, or the channel's history starts again with it; then --history-size, --history-ttl
 * (from t_ms: the entry keeps its age) and --history-max-bytes drop the oldest. Returns 0,
 * or -ENOMEM (not kept). Shard thread, in the order the old process recorded them. */
int wsp_chan_restore(wsp_chan_table_t *t, const char *name, size_t len, uint64_t seq,
                     wsp_msg_t *frame, uint64_t t_ms, uint64_t now_ms);

/* Calls fn for every history entry of t, each channel's oldest first: its channel, seq, place
 * in the table's recording order, time (uv_now ms) and frame (t's reference: fn takes its own
 * to keep it). Stops at fn's first negative return, which it returns; else 0. Shard thread. */
typedef int (*wsp_chan_hist_fn)(void *arg, const char *name, size_t len, uint64_t seq, uint64_t rec,
                                uint64_t t_ms, wsp_msg_t *frame);
int wsp_chan_hist_each(const wsp_chan_table_t *t, wsp_chan_hist_fn fn, void *arg);

/* Drops the entries older than --history-ttl (the shard's 1 s tick). */
void wsp_chan_expire(wsp_chan_table_t *t, uint64_t now_ms);

/* ch's position when this shard knows it in link generation gen (Redis; pass the entry's own
 * otherwise): 1 with *top set, else 0. */
int wsp_chan_known(const wsp_chan_t *ch, uint32_t gen, uint64_t *top);

/* Sets ch's position to top in link generation gen (from the process positions or a Redis
 * fetch). A position beyond the newest history entry drops the history (it no longer ends
 * where the channel is). */
void wsp_chan_learn(wsp_chan_table_t *t, wsp_chan_t *ch, uint64_t top, uint32_t gen);

/* The history entries of ch after since, up to its position, as frames into out[0..max)
 * (out NULL: only counts them): returns how many (0 when since is the position), or -1 when
 * the history does not hold every one of them (too old, expired at now_ms, a gap, or more
 * than max). The frames stay ch's: the caller takes its own references before ch can
 * change. */
int wsp_chan_replay(const wsp_chan_table_t *t, const wsp_chan_t *ch, uint64_t since,
                    uint64_t now_ms, wsp_msg_t **out, unsigned max);

/* --- the process's positions --- */

enum { WSP_CHAN_POS_UNKNOWN = 0, WSP_CHAN_POS_KNOWN, WSP_CHAN_POS_BEHIND };

typedef struct wsp_chan_map_s wsp_chan_map_t;

/* Every channel's last sequence number as broadcast by this process's coordinator. */
typedef struct wsp_chan_pos_s {
    uv_mutex_t lock;
    wsp_chan_map_t *map;
    uint64_t g;       /* broadcasts numbered so far (coordinator) */
    uint64_t epoch_g; /* the first broadcast of the current epoch */
    int complete;     /* a channel not in the map is at 0 (nothing published this epoch) */
    atomic_uint gen;  /* Redis link generation: positions of an older one are stale */
    char epoch[WSP_FRAMED_EPOCH_MAX + 1];
} wsp_chan_pos_t;

/* Sets up p in epoch[0..elen) (0: unknown); complete as above. Returns 0 or a negative errno.
 * Before any thread uses it. */
int wsp_chan_pos_init(wsp_chan_pos_t *p, const char *epoch, size_t elen, int complete);

/* Frees p. After every thread is done with it. */
void wsp_chan_pos_free(wsp_chan_pos_t *p);

/* Numbers the next broadcast and, when seq > 0, records it as channel name[0..len)'s position
 * in epoch[0..elen) and link generation gen (a new epoch forgets every other channel: with
 * Redis, positions are then unknown until seen). Returns the broadcast's number. Coordinator,
 * for each broadcast in the order it posts them. */
uint64_t wsp_chan_pos_note(wsp_chan_pos_t *p, const char *name, size_t len, uint64_t seq,
                           const char *epoch, size_t elen, uint32_t gen);

/* Raises channel name[0..len)'s position to top in generation gen, as of the last broadcast
 * numbered (a Redis fetch learnt it). Coordinator. */
void wsp_chan_pos_learn(wsp_chan_pos_t *p, const char *name, size_t len, uint64_t top,
                        uint32_t gen);

/* Channel name[0..len)'s position for a shard that has processed up to broadcast g: KNOWN with
 * *top, BEHIND when the shard has yet to process a broadcast that moved it (ask again after
 * the next ones), or UNKNOWN. gen is the current link generation (0 without Redis). Any
 * thread. */
int wsp_chan_pos_lookup(wsp_chan_pos_t *p, const char *name, size_t len, uint64_t g, uint32_t gen,
                        uint64_t *top);

/* --- a publisher's counters --- */

typedef struct wsp_chan_seqs_s {
    wsp_chan_map_t *map;
} wsp_chan_seqs_t;

/* The next sequence number of channel name[0..len) (1 for its first message), or 0 when out
 * of memory (the message then goes out without one). Owner thread. */
uint64_t wsp_chan_seqs_next(wsp_chan_seqs_t *s, const char *name, size_t len);

/* Frees the counters. Owner thread. */
void wsp_chan_seqs_free(wsp_chan_seqs_t *s);

/* Calls fn for each channel's last number (a live upgrade hands them over, issue #20); stops
 * at fn's first negative return, which it returns; else 0. Owner thread. */
typedef int (*wsp_chan_seqs_fn)(void *arg, const char *name, size_t len, uint64_t seq);
int wsp_chan_seqs_each(const wsp_chan_seqs_t *s, wsp_chan_seqs_fn fn, void *arg);

/* Makes channel name[0..len)'s last number at least seq (the next is seq + 1). Returns 0,
 * -EINVAL for a name too long, or -ENOMEM. Owner thread. */
int wsp_chan_seqs_set(wsp_chan_seqs_t *s, const char *name, size_t len, uint64_t seq);

#endif
