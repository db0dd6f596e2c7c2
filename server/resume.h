#ifndef WSP_RESUME_H
#define WSP_RESUME_H

/* How a wspush.v1 connection comes in (issue #17): its hello, the messages it missed, then
 * live ones, with no gap and no duplicate. A shard decides from its own channel table (its
 * position in each channel and its history: server/chan.c) and its process's positions;
 * because the shard also processes every broadcast, a decision and the join that follows in
 * the same turn of its loop are exact: what the hello reports is what the shard processed,
 * and broadcasts still in its ring come after, live. When the shard cannot decide yet (it is
 * behind the process in a channel, the client is ahead of it, or, under --redis, only Redis
 * knows a position or holds the messages), the connection waits (not joined, so it receives
 * nothing) in a wsp_resume_t until the shard catches up, a Redis fetch comes back
 * (server/fetch.c), or its deadline passes. Connections (server/conn.c) execute what is
 * decided; nothing here touches a socket. Owning shard thread, except the fetch's result
 * fields and the queues (their own contracts). */

#include <stdint.h>
#include <uv.h>

#include "chan.h"
#include "channels.h"
#include "framed.h"
#include "msg.h"

/* What a wspush.v1 connection asked for at its upgrade, copied out of the request. */
typedef struct wsp_resume_ask_s {
    uint8_t n;             /* channels, the default one ("time") included */
    uint8_t wants_default; /* it receives the default channel */
    uint8_t epoch_len;     /* the client's epoch; 0 without a since */
    char epoch[WSP_FRAMED_EPOCH_MAX + 1];
    struct {
        uint8_t len, has_since;
        uint64_t since;
        char name[WSP_CHANNEL_NAME_MAX + 1];
    } ch[WSP_CHANNELS_MAX];
} wsp_resume_ask_t;

/* Fills a from the channels a connection chose and its resume query. Returns 0, or -EINVAL
 * when a since names a channel the connection did not choose. Pure. */
int wsp_resume_ask(wsp_resume_ask_t *a, const wsp_chanlist_t *cl, const wsp_framed_resume_t *rs);

/* What Redis said for one fetch (written by the coordinator, read by the shard once posted
 * back): per channel its position and the framed messages after the since asked for. */
typedef struct wsp_resume_res_s {
    int status;   /* 0, or a negative errno: nothing below is valid */
    uint32_t gen; /* the Redis link generation the answer belongs to */
    uint8_t epoch_len;
    char epoch[WSP_FRAMED_EPOCH_MAX + 1];
    struct {
        uint64_t top;       /* the channel's position in Redis */
        uint32_t n;         /* frames[0..n) are messages since + 1 .. since + n */
        wsp_msg_t **frames; /* one reference each; NULL when n is 0 */
    } ch[WSP_CHANNELS_MAX];
} wsp_resume_res_t;

typedef struct wsp_resume_s wsp_resume_t;

/* A connection waiting to come in. The shard owns it and keeps it in its pending list until
 * it frees it; while its fetch is with the coordinator, the coordinator writes only res and
 * then posts it back (until then the shard touches only prev, next, conn and state). */
struct wsp_resume_s {
    wsp_resume_t *prev, *next; /* the shard's pending list */
    void *conn;                /* the connection; NULL once it closed. Shard only */
    uint8_t state;             /* WSP_RESUME_S_*; shard only */
    uint8_t deadline;          /* shard tick after which it decides with what it knows */
    uint8_t fetched;           /* res holds an answer (one fetch per connection) */
    unsigned shard;            /* whose queue the answer goes back to */
    wsp_resume_t *qnext;       /* a queue's link */
    wsp_resume_ask_t ask;      /* read-only once a fetch is posted */
    wsp_resume_res_t res;
};

enum { WSP_RESUME_S_WAITING = 0, WSP_RESUME_S_FETCHING };

/* What a decision comes to. */
enum { WSP_RESUME_DONE = 0, WSP_RESUME_WAIT, WSP_RESUME_FETCH };

/* What the shard knows to decide with. */
typedef struct wsp_resume_ctx_s {
    wsp_chan_table_t *chans;
    wsp_chan_pos_t *pos;
    int redis;       /* positions and messages may be in Redis only: a fetch can ask */
    int peers;       /* other processes deliver the same channels and may be ahead (--procs) */
    uint64_t now_ms; /* monotonic, for --history-ttl */
    int final;       /* the deadline passed: decide with what is known now */
} wsp_resume_ctx_t;

/* What a connection gets once decided: the hello, then the frames to replay in order, then
 * it joins its channels. */
typedef struct wsp_resume_plan_s {
    wsp_msg_t *hello;   /* one reference, the caller's */
    wsp_msg_t **frames; /* n frames, one reference each, the caller's; NULL when n is 0 */
    unsigned n;
    unsigned recovered; /* channels recovered */
    unsigned refused;   /* channels asked for and not recovered */
} wsp_resume_plan_t;

/* Decides r's way in with x: DONE (*plan filled; free it with wsp_resume_plan_free() once
 * sent), WAIT (ask again after the shard's next broadcasts or at the deadline), or FETCH (post
 * r to the coordinator; after the answer, ask again). Returns those, or -ENOMEM. Shard. */
int wsp_resume_decide(wsp_resume_t *r, const wsp_resume_ctx_t *x, wsp_resume_plan_t *plan);

/* Drops the references a plan holds. */
void wsp_resume_plan_free(wsp_resume_plan_t *plan);

/* Applies a fetch's answer to the shard's channels (positions Redis told), once posted back.
 * Shard. */
void wsp_resume_fetched(wsp_resume_t *r, wsp_chan_table_t *t);

/* Allocates a pending copy of r (the first decision is made on the stack). NULL on OOM. */
wsp_resume_t *wsp_resume_dup(const wsp_resume_t *r);

/* Frees r and what its answer holds. Shard (or whoever holds it last). */
void wsp_resume_free(wsp_resume_t *r);

/* --- the queues between the shards and the coordinator --- */

/* A multi-producer queue of fetches with a wake-up for its consumer. */
typedef struct wsp_resume_queue_s {
    uv_mutex_t lock;
    wsp_resume_t *head, *tail;
    uv_async_t *wake; /* the consumer's */
} wsp_resume_queue_t;

/* Sets up q; wake is signalled on every push. Returns 0 or a negative errno. */
int wsp_resume_queue_init(wsp_resume_queue_t *q, uv_async_t *wake);

/* Frees q; what is still queued is not freed: a wsp_resume_t always belongs to its shard's
 * pending list (the shard frees it), the coordinator only borrows it for its fetch. */
void wsp_resume_queue_free(wsp_resume_queue_t *q);

/* Appends r and wakes the consumer. Any thread. */
void wsp_resume_queue_push(wsp_resume_queue_t *q, wsp_resume_t *r);

/* Takes everything queued, oldest first (a list linked by qnext). Consumer thread. */
wsp_resume_t *wsp_resume_queue_take(wsp_resume_queue_t *q);

#endif
