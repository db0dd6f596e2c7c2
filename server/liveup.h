#ifndef WSP_LIVEUP_H
#define WSP_LIVEUP_H

/* A serving process's live upgrade (issue #20), both ends, on the coordinator's loop.
 *
 * Old process: SIGUSR2 (wsp_liveup_start) makes one SOCK_SEQPACKET control socket and one per
 * shard, starts the binary at this one's path again (server/reexec.h) and sends it HELLO: the
 * port, the listeners, the new shards' sockets and the admin API's listener (SCM_RIGHTS). If
 * it is not READY within --upgrade-timeout, or exits, this process keeps serving and logs why.
 * On READY every broadcast published here is queued instead of delivered, and each shard, after
 * the broadcasts already posted to it, stops accepting and sends its connections
 * (server/handoff.c). When all shards are done the queued broadcasts and END (the numbering,
 * the next tick) go to the new process; this one stops publishing and closes its admin API,
 * and exits once what stayed (draining connections) is gone.
 *
 * With token auth HELLO's datagram carries the user-id key (WSP_HO_KEY): the new process makes
 * user ids with it, so that those its connections carry stay valid.
 *
 * Under --redis the old process's last act before END is a marker on Redis (server/pubhold.h):
 * it hands over what Redis sent it before the marker; the new process, subscribed since before
 * READY, delivers what came after it. Each Redis message reaches each client once.
 *
 * New process: wsp_liveup_adopt_hello() instead of binding; its shards adopt what comes on
 * their sockets; nothing is published until END has come and every shard has adopted all
 * (a supervised worker queues what the supervisor sends meanwhile). Then the old process's
 * queued broadcasts are published, the supervisor's that the old one had not delivered
 * (by seq), and the publisher opens (admin API on the inherited listener, Redis, tick).
 *
 * Coordinator thread only. */

#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "config.h"
#include "handover.h"
#include "metrics.h"
#include "publisher.h"
#include "shard.h"
#include "uphist.h"

typedef struct liveup_queued_s liveup_queued_t;

/* New: how long READY waits for the Redis subscription (then goes without the exact cut). */
#define WSP_LIVEUP_HOLD_MS 3000
/* Old: how long END waits for the marker to come back from Redis (then goes without it). */
#define WSP_LIVEUP_MARK_MS 2000

/* The old process's Redis marker (wsp_liveup_t.marking). */
enum {
    WSP_UP_MARK_NONE = 0, /* not sent */
    WSP_UP_MARK_OUT,      /* published; END waits for it to come back */
    WSP_UP_MARK_DONE,     /* back (or given up): END is due; never a second one */
};

/* Where an upgrade stands (wsp_liveup_t.state). */
enum {
    WSP_UP_NONE = 0, /* serving */
    WSP_UP_SPAWNED,  /* old: the new binary runs, not yet ready */
    WSP_UP_HANDING,  /* old: the shards send their connections; broadcasts are queued */
    WSP_UP_HANDED,   /* old: all sent and END too; what stays drains, then exit 0 */
    WSP_UP_ADOPTING, /* new: shards adopt; nothing is published yet */
    WSP_UP_ENDED,    /* new: END came; waiting for the last shard to adopt */
};

typedef struct wsp_liveup_s {
    uv_loop_t *loop;
    const wsp_config_t *cfg;
    wsp_pub_t *pub;
    wsp_shard_t **shards;
    wsp_proc_stats_t *stats;
    unsigned nshards;
    int port;
    void (*on_handed)(void *user); /* old: END was sent; the owner stops serving */
    void *user;
    int state;          /* WSP_UP_* */
    int closing;        /* handles still closing: no new upgrade meanwhile */
    int ctl;            /* the control socket to the other process, or -1 */
    int admin_fd;       /* new: the admin listener to adopt, or -1 */
    int *lfds;          /* the listeners' descriptors (the shards own them): the owner fills */
    int *ho_socks;      /* old: our ends of the shards' sockets; new: the shards' until taken */
    uv_process_t child; /* old: the new binary */
    uv_poll_t ctl_poll; /* the control socket is readable */
    uv_timer_t timer;   /* old: the new binary's time to be ready */
    uint32_t peer_pid;  /* the other process */
    uint64_t t0_ns;     /* monotonic: SIGUSR2 (old) or HELLO (new) */
    uint64_t ready_ns;  /* old: READY came; broadcasts paused from here */
    uint64_t sup_seq;   /* the last supervisor broadcast delivered (or queued by the old) */
    wsp_ho_end_t end;   /* new: what the old process said last */
    wsp_auth_t *auth;   /* token auth (issue #16): its key goes to the new process; or NULL */
    int key;            /* new: 1 the old process's key came for our algorithm, -1 for another */
    uint8_t sipkey[WSP_HO_SIPKEY];     /* new: that key until wsp_liveup_auth() takes it */
    liveup_queued_t *q, **qtail;       /* broadcasts kept for later, oldest first */
    liveup_queued_t *supq, **supqtail; /* new worker: the supervisor's, until the takeover */
    wsp_uphist_t hist;                 /* new: the history carried over (issue #17) */
    uint64_t hist_dropped;             /* new: entries not kept (history off, another epoch) */
    int (*on_history)(void *user, wsp_uphist_t *h); /* new: hands h to the shards (h its) */
    /* Under --redis (server/pubhold.h): the new process subscribes before READY and says so
     * (WSP_HO_READY_REDIS); the old one then PUBLISHes a marker once its shards are done and
     * hands over what it received before it, in MARK. */
    uint8_t ready_flags; /* old: what READY said */
    int marking;         /* old: WSP_UP_MARK_* */
    int ready_sent;      /* new: READY went (the subscription completed, or its time ran out) */
    char mark[WSP_HO_MARK_MAX + 1]; /* the marker ("": none) */
    size_t mark_len;
} wsp_liveup_t;

/* Sets lu up for a process of cfg on loop; ctl >= 0 is the inherited control socket of a new
 * process (now lu's). */
void wsp_liveup_init(wsp_liveup_t *lu, uv_loop_t *loop, const wsp_config_t *cfg, int ctl);

/* New process: reads HELLO (bounded by --upgrade-timeout): the listeners go to fds[0..threads)
 * (now the caller's), the port to *port; the shards' sockets stay in lu->ho_socks. Returns 0,
 * -EINVAL when the old process runs another number of shards, or a negative errno. */
int wsp_liveup_adopt_hello(wsp_liveup_t *lu, int *fds, int *port);

/* This process's token auth (NULL: none), once made and before the shards start: a new process
 * makes user ids with the old one's key from here on when both run the same algorithm (else
 * the connections that carry a token close with 4001 on adoption, server/conn_ho.c); an old
 * one hands auth's key on with HELLO. */
void wsp_liveup_auth(wsp_liveup_t *lu, wsp_auth_t *auth);

/* What the coordinator made since: the publisher, the shards, the counters, the port, and
 * what to call when the old process has handed everything over. */
void wsp_liveup_attach(wsp_liveup_t *lu, wsp_pub_t *pub, wsp_shard_t **shards,
                       wsp_proc_stats_t *stats, int port, void (*on_handed)(void *), void *user);

/* New process: at the takeover, before anything is published, fn(user, h) hands the history
 * the old process carried over (a wsp_uphist_move() allocation, fn's even on failure; NULL
 * when there is none) to the shards. Without fn (or with history off, or under --redis) the
 * history is dropped. */
void wsp_liveup_on_history(wsp_liveup_t *lu, int (*fn)(void *user, wsp_uphist_t *h));

/* New process, once its shards run: READY to the old one; under --redis once subscribed (or
 * after WSP_LIVEUP_HOLD_MS without). Returns 0 or a negative errno. */
int wsp_liveup_ready(wsp_liveup_t *lu);

/* 1 while this process is a new one adopting. */
int wsp_liveup_adopting(const wsp_liveup_t *lu);

/* New process: the inherited admin listener (now the caller's), or -1. */
int wsp_liveup_take_admin(wsp_liveup_t *lu);

/* SIGUSR2: starts an upgrade (logged and ignored while one runs, or in a supervised worker).
 */
void wsp_liveup_start(wsp_liveup_t *lu);

/* A supervised worker: the supervisor started a new worker (pid peer) to take this one's
 * place, and sent its control socket ctl (now lu's). Starts the handover as SIGUSR2 does. */
void wsp_liveup_offer(wsp_liveup_t *lu, int ctl, uint32_t peer);

/* 1 once this (old) process has handed everything over. */
int wsp_liveup_handed(const wsp_liveup_t *lu);

/* 1 while this (old) process hands over: END has not gone yet (its shards may have ended, the
 * Redis marker still out), so the loop must not finish. */
int wsp_liveup_handing(const wsp_liveup_t *lu);

/* Before delivering a broadcast: 0 = deliver it now; 1 = queued for the new process; or a
 * negative errno (not delivered: a new process before its takeover). */
int wsp_liveup_deliver(wsp_liveup_t *lu, const char *chan, size_t chan_len, const uint8_t *payload,
                       size_t len, uint64_t seq, const wsp_pub_chseq_t *cs, const char *reason);

/* 1 while broadcasts are not delivered here directly (handing over, or a new process before
 * its takeover). */
int wsp_liveup_busy(const wsp_liveup_t *lu);

/* A supervisor broadcast arrived: 0 = relay it now (its seq is recorded); 1 = kept until the
 * takeover. */
int wsp_liveup_supervisor(wsp_liveup_t *lu, const char *chan, size_t chan_len,
                          const uint8_t *payload, size_t len, uint64_t seq,
                          const wsp_pub_chseq_t *cs);

/* A shard sent or adopted all it had (or its thread ends): may finish the upgrade. */
void wsp_liveup_shard_event(wsp_liveup_t *lu);

/* The process stops: an upgrade not yet committed (no READY) is called off. */
void wsp_liveup_cancel(wsp_liveup_t *lu);

/* Closes what lu still holds and frees it. After the loop's handles are closed. */
void wsp_liveup_free(wsp_liveup_t *lu);

#endif
