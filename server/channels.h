#ifndef WSP_CHANNELS_H
#define WSP_CHANNELS_H

/* Channel names and the ?channels= query: which channels a client chose at connect time
 * (?channels=a,b; no query = the default channel). Pure parsing, no state. The other places
 * channels appear: a shard's channel table and each channel's state there (server/chan.c),
 * and the Redis channel NAME:<chan> that carries a channel's messages (server/redis.c). */

#include <stddef.h>
#include <stdint.h>

#define WSP_CHANNELS_MAX 8      /* channels per connection */
#define WSP_CHANNEL_NAME_MAX 64 /* bytes per name: [A-Za-z0-9_.:-]{1,64} */
/* The default channel: it receives the ticks, and is what a connection without a query gets. */
#define WSP_CHANNEL_DEFAULT "time"

typedef struct wsp_chanlist_s {
    unsigned n;
    struct {
        const char *name; /* points into the parsed query */
        size_t len;
    } v[WSP_CHANNELS_MAX];
} wsp_chanlist_t;

/* 1 when name[0..len) is a valid channel name ([A-Za-z0-9_.:-]{1,64}). Pure; any thread. */
int wsp_channel_valid(const char *name, size_t len);

/* Finds parameter key in the query q[0..n) (without '?'; NULL/0 = none), matching "key=..." or
 * a bare "key". Returns how often it occurs (0, 1, or 2 for "more than once") and sets *v,
 * *vlen to the first one's raw value (empty for "key" and "key="). Pure; any thread. */
int wsp_channels_query_param(const char *q, size_t n, const char *key, const char **v,
                             size_t *vlen);

/* Parses a request's query string (without '?'; NULL/0 = none) into out. The parameter
 * `channels` holds a comma-separated list of 1..WSP_CHANNELS_MAX valid names; duplicates are
 * merged; other parameters are ignored; no `channels` parameter gives the default channel.
 * Percent-encoding is not decoded (the name alphabet needs none). Returns 0 or -EINVAL
 * (empty list, empty or invalid name, too many, parameter repeated). Pure; any thread. */
int wsp_channels_parse_query(const char *query, size_t len, wsp_chanlist_t *out);

#endif
