#ifndef WSP_FETCH_H
#define WSP_FETCH_H

/* Recovery fetches under --redis (issue #17): a shard that cannot decide a wspush.v1
 * connection's way in from its own history (server/resume.h) posts it to its coordinator,
 * which asks Redis through the publisher's Redis connection (shards never talk to Redis):
 * the fetch script returns the epoch, each channel's number and the stream's messages after
 * the client's since, then a barrier makes sure that every message published before the
 * fetch has reached this process's subscriber, so has been handed to the shards before the
 * answer. The answer (framed frames built here, positions learnt) goes back to the shard.
 * Coordinator thread. */

#include "chan.h"
#include "config.h"
#include "redis.h"
#include "resume.h"

/* What a fetch needs from the coordinator. */
typedef struct wsp_fetch_ops_s {
    /* The Redis link, or NULL (not configured, stopping). */
    wsp_redis_t *(*redis)(void *user);
    /* Redis is in another epoch than the shards: tell them (a broadcast) before the answer. */
    void (*epoch)(void *user, const char *epoch, size_t epoch_len);
    /* The answer is in r->res: post r back to shard r->shard. */
    void (*done)(void *user, wsp_resume_t *r);
} wsp_fetch_ops_t;

/* Fetches what r->ask needs (every channel's number, and the messages after each since) and
 * calls ops->done(user, r) once, always (r->res.status < 0 when it could not). cfg, pos and
 * ops outlive the fetch. Coordinator thread. */
void wsp_fetch_run(wsp_resume_t *r, const wsp_config_t *cfg, wsp_chan_pos_t *pos,
                   const wsp_fetch_ops_t *ops, void *user);

#endif
