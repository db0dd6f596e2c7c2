#ifndef WSP_REDIS_INT_H
#define WSP_REDIS_INT_H

/* Internal to the Redis module, which spans two files: server/redis.c (the subscriber, the
 * publishing connection, user messages) and server/redis_script.c (the EVALSHA requests of
 * the publish and fetch scripts, and the barriers of recoveries). Each calls the other only
 * through these. The publisher's loop only. */

#include <netinet/in.h>
#include <stdint.h>

#include <hiredis/async.h>
#include <uv.h>

#include "config.h"
#include "redis.h"

#define WSP_REDIS_KEY_MAX 256 /* --channel is < 128 bytes, a channel name <= 64 */

/* A barrier in flight: completed when its token comes back on the sync channel. */
typedef struct rbarrier_s {
    struct rbarrier_s *next;
    uint64_t token;
    wsp_redis_barrier_fn fn;
    void *ud;
} rbarrier_t;

struct wsp_redis_s {
    uv_timer_t retry;     /* first member: the close callback frees the struct through it */
    uv_getaddrinfo_t gai; /* one resolution of cfg->redis_host at a time, on libuv's threadpool */
    uv_loop_t *loop;
    const wsp_config_t *cfg;
    redisAsyncContext *ac;  /* subscriber; NULL while disconnected */
    redisAsyncContext *pub; /* publisher, made on first use; NULL while disconnected */
    wsp_redis_msg_fn fn;
    wsp_redis_link_fn link;
    wsp_redis_user_fn user_fn; /* NAME:#<sub> (issue #16); NULL: dropped */
    wsp_redis_sync_fn sync_fn; /* every message on the sync channel (issue #20); or NULL */
    void *user;
    uint64_t backoff_ms;
    uint64_t dropped;
    int up;            /* subscribed to all three */
    int stopping;      /* wsp_redis_stop() called */
    int was_up;        /* for the log: "lost" versus "still unreachable" */
    unsigned confirms; /* subscriptions confirmed on this connection */
    rbarrier_t *bhead, *btail;
    uint64_t tokens; /* barriers sent */
    char tokpfx[24]; /* "<pid>.": a token of ours; the sync channel is the epoch's, shared by
                      * every worker of a supervisor and both ends of a live upgrade */
    char sha_publish[41], sha_fetch[41];
    char meta[WSP_REDIS_KEY_MAX]; /* NAME:hist */
    char sync[WSP_REDIS_KEY_MAX]; /* NAME.sync.<epoch>: barriers' tokens */
    /* Resolving: the coordinator's loop never waits for a name. */
    char addr[INET6_ADDRSTRLEN]; /* what the host last resolved to; "" until the first time */
    int resolving;               /* gai in flight */
    int sub_waiting;             /* the subscriber connects once it completes */
    int resolve_failing;         /* the last resolution failed: logged once per run */
    int timer_closed;            /* stopped: freed once no resolution is in flight either */
    uint64_t resolve_failures;
};

/* redis.c */

/* The publishing connection, made on first use. NULL with *err a negative errno when there
 * is none (not resolved yet, refused, out of memory). */
redisAsyncContext *wsp__redis_pub(wsp_redis_t *r, int *err);

/* redis_script.c */

/* A token came back on the sync channel: every barrier up to it passes. */
void wsp__redis_barriers_pass(wsp_redis_t *r, const char *tok, size_t len);

/* Fails every barrier in flight with status: their tokens can no longer come back. */
void wsp__redis_barriers_fail(wsp_redis_t *r, int status);

#endif
