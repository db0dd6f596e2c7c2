#ifndef WSP_CHAN_H
#define WSP_CHAN_H

/* Channels as a shard owns them: for each channel name its connections chose, the channel's
 * state in this shard. Today that is its subscribers; per-channel state to come (sequence
 * numbers, recent history for recovery) lives here too, and nowhere else. A shard keeps its
 * channels in one table (wsp_chan_table_t, in server/shard_conn.h); a channel is created by
 * its first subscriber and freed with its last, never during a walk.
 * The other two places channels appear: server/channels.c parses names and the ?channels=
 * query of a connection (and the admin API's ?channel=), and server/redis.c maps a channel
 * to the Redis channel NAME:<chan>. The default channel ("time") has no entry here: it is
 * every OPEN connection that did not opt out. Owning shard thread only. */

#include <stddef.h>
#include <stdint.h>

#include "table.h"

typedef struct wsp_chan_s wsp_chan_t;

/* The channels of one shard: a hash table sized to the channels in use. All zero: empty. */
typedef struct wsp_chan_table_s {
    wsp_chan_t **buckets; /* a power of two of them, or NULL */
    uint32_t n, nbuckets;
} wsp_chan_table_t;

/* Adds c to the channel name[0..len) of t (created on first use), and returns the channel
 * in *ch and c's slot in it in *idx. Returns 0, -EINVAL for a name longer than
 * WSP_CHANNEL_NAME_MAX, or -ENOMEM (c is then not subscribed). */
int wsp_chan_subscribe(wsp_chan_table_t *t, const char *name, size_t len, wsp_conn_t *c,
                       wsp_chan_t **ch, uint32_t *idx);

/* Removes slot idx from ch; an emptied channel is freed unless a walk is on it. Returns the
 * connection moved into idx, whose slot in ch the caller updates, or NULL. */
wsp_conn_t *wsp_chan_unsubscribe(wsp_chan_table_t *t, wsp_chan_t *ch, uint32_t idx);

/* The channel name[0..len) of t, or NULL when no connection of this shard chose it. */
wsp_chan_t *wsp_chan_find(const wsp_chan_table_t *t, const char *name, size_t len);

/* ch's name (not NUL-terminated); *len gets its length. */
const char *wsp_chan_name(const wsp_chan_t *ch, size_t *len);

/* Starts a walk over ch's subscribers and returns them: ch stays allocated, even emptied,
 * until wsp_chan_walk_end(). */
wsp_table_t *wsp_chan_walk_begin(wsp_chan_t *ch);

/* Ends the walk; frees ch if it has no subscriber left. */
void wsp_chan_walk_end(wsp_chan_table_t *t, wsp_chan_t *ch);

/* Frees every channel of t and the table itself (none remain after a shard has drained). */
void wsp_chan_table_free(wsp_chan_table_t *t);

#endif
