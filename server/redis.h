#ifndef WSP_REDIS_H
#define WSP_REDIS_H

/* The Redis link of a publisher (server/publisher.c), on its loop: a subscriber that
 * connects, SUBSCRIBEs to cfg->channel and to the sync channel of its epoch, PSUBSCRIBEs to
 * cfg->channel:* and reconnects with backoff (100 ms doubling to 5 s) whenever the link is
 * down, and a publishing connection made on first use, which also runs the fetches of
 * recoveries (issue #17; keys and scripts in server/stream.h). The host is resolved on
 * libuv's threadpool (uv_getaddrinfo), never on the loop, before every connection of the
 * subscriber and after the publishing connection fails, so a host that moves is followed; a
 * name that does not resolve is logged, counted and retried with the same backoff. Channel naming:
 * the Redis channel NAME (--channel) carries the default client channel, NAME:<chan> the client
 * channel <chan>; names are checked by server/channels.c, and a shard's channels live in
 * server/chan.c. NAME:#<sub> carries a message for the connections of one user (issue #16): <sub>
 * is everything after "NAME:#", 1..64 bytes of anything (':' and '#' included), never confused with
 * a channel since channel names have no '#'; such messages are plain PUBLISHes, never numbered. */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"

typedef struct wsp_redis_s wsp_redis_t;

/* Called for each message that is valid UTF-8 of at most WSP_CONFIG_MAX_PUBLISH bytes
 * (others are dropped, logged and counted). A message on the Redis channel NAME (--channel)
 * is for the default client channel: chan is NULL; one on NAME:<chan> is for client channel
 * <chan> (a valid channel name, else dropped). A message the publish script sent
 * (server/stream.h) comes with its number in its channel, cseq, and its epoch; a raw PUBLISH
 * with cseq 0 and no epoch. Pointers are valid only during the call. Loop thread. */
typedef void (*wsp_redis_msg_fn)(void *user, const char *chan, size_t chan_len,
                                 const uint8_t *payload, size_t len, uint64_t cseq,
                                 const char *epoch, size_t epoch_len);

/* Called when the subscription is complete (up 1) and when it is lost (up 0). */
typedef void (*wsp_redis_link_fn)(void *user, int up);

/* Called for each message on NAME:#<sub>: a message for the user sub (1..64 bytes, any bytes),
 * with the same checks as above. Pointers are valid only during the call. Loop thread. */
typedef void (*wsp_redis_user_fn)(void *user, const char *sub, size_t sub_len,
                                  const uint8_t *payload, size_t len);

/* Called for each message on the sync channel NAME.sync.<epoch>: barrier tokens ("<pid>.<n>")
 * of this process and of every other one in the same epoch (the workers of one supervisor,
 * both ends of a live upgrade). Pointers are valid only during the call. Loop thread. */
typedef void (*wsp_redis_sync_fn)(void *user, const char *tok, size_t len);

/* Starts the subscriber (fn non-NULL) or only a publisher (fn NULL: the supervisor); an
 * unreachable Redis is not an error (it retries). link may be NULL. Returns 0 or -ENOMEM.
 * Loop thread. */
int wsp_redis_start(wsp_redis_t **out, uv_loop_t *loop, const wsp_config_t *cfg,
                    wsp_redis_msg_fn fn, wsp_redis_link_fn link, void *user);

/* Sets what gets user messages (NAME:#<sub>); without it they are dropped and counted. Call
 * right after wsp_redis_start(), before the loop runs. Loop thread. */
void wsp_redis_set_user_fn(wsp_redis_t *r, wsp_redis_user_fn fn);

/* Sets what sees the sync channel's messages (a live upgrade's new process, looking for the
 * old one's marker); NULL: none. Loop thread. */
void wsp_redis_set_sync_fn(wsp_redis_t *r, wsp_redis_sync_fn fn);

/* Disconnects and frees r once its handles have closed (run the loop afterwards).
 * Loop thread. */
void wsp_redis_stop(wsp_redis_t *r);

/* Publishes payload for client channel chan (NULL = the default) on a separate publishing
 * connection (made on first use), so that every subscribed worker of every machine
 * broadcasts it: through the publish script (server/stream.h), which numbers it in its
 * channel, keeps it in the channel's stream and PUBLISHes it. Fire-and-forget: 0 means
 * queued. Returns 0, -EHOSTUNREACH while the host has never resolved (a resolution is
 * started), -ECONNREFUSED or -ENOMEM. Loop thread. */
int wsp_redis_publish(wsp_redis_t *r, const char *chan, size_t chan_len, const uint8_t *payload,
                      size_t len);

/* One channel asked of a fetch, and what Redis answered for it. */
typedef struct wsp_redis_span_s {
    const char *chan; /* NULL: the default channel */
    size_t chan_len;
    int64_t since; /* -1: its number only */
    /* the answer */
    uint64_t top;
    unsigned n; /* the entries after since that Redis still holds, in order */
    struct wsp_redis_ent_s {
        uint64_t seq, t_ms; /* its number; when Redis stored it (epoch ms) */
        const uint8_t *p;   /* the payload, valid during the callback */
        size_t len;
    } * ent;
} wsp_redis_span_t;

/* The answer to a fetch: status 0 with the epoch and spans[i].top/n/ent filled (valid only
 * during the call), or a negative errno (no connection, link lost, a bad reply). */
typedef void (*wsp_redis_fetch_fn)(void *ud, int status, const char *epoch, size_t epoch_len,
                                   wsp_redis_span_t *spans, unsigned n);

/* Runs the fetch script (server/stream.h) for spans[0..n) on the publishing connection: the
 * epoch and, per channel, its number and at most maxn entries after its since. fn is always
 * called once (maybe before this returns, with an error). Returns 0 when queued, else a
 * negative errno (fn was called). Loop thread. */
int wsp_redis_fetch(wsp_redis_t *r, wsp_redis_span_t *spans, unsigned n, unsigned maxn,
                    wsp_redis_fetch_fn fn, void *ud);

/* Called once every message PUBLISHed before the barrier was sent has reached this
 * subscriber (status 0), or when that can no longer be known (a negative errno). */
typedef void (*wsp_redis_barrier_fn)(void *ud, int status);

/* A barrier: PUBLISHes a token of this process's on the sync channel from the publishing
 * connection (after whatever was sent on it before) and calls fn when the subscriber
 * receives it, since Redis delivers in order. fn is always called once. Loop thread. */
void wsp_redis_barrier(wsp_redis_t *r, wsp_redis_barrier_fn fn, void *ud);

/* A barrier whose token ("<pid>.<n>", NUL-terminated) is written to tok[0..cap) (cap >= 24) when
 * it is sent, "" when it is not (fn then gets the error at once): a live upgrade's marker,
 * which the new process finds in what it held (server/pubhold.h). Loop thread. */
void wsp_redis_mark(wsp_redis_t *r, wsp_redis_barrier_fn fn, void *ud, char *tok, size_t cap);

/* Publishes payload for the connections of user sub[0..sub_len) on NAME:#<sub>, as
 * wsp_redis_publish(). Returns 0 or a negative errno. Loop thread. */
int wsp_redis_publish_user(wsp_redis_t *r, const char *sub, size_t sub_len, const uint8_t *payload,
                           size_t len);

/* 1 while subscribed. Loop thread. */
int wsp_redis_up(const wsp_redis_t *r);

/* Messages dropped because they were not valid UTF-8 or too large. Loop thread. */
uint64_t wsp_redis_dropped(const wsp_redis_t *r);

/* Resolutions of the host that failed (the name did not resolve, or to no usable address).
 * Loop thread. */
uint64_t wsp_redis_resolve_failures(const wsp_redis_t *r);

#endif
