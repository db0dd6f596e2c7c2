#ifndef WSP_PUBLISHER_H
#define WSP_PUBLISHER_H

/* The publisher core: what decides that a broadcast happens, and numbers it. One per process
 * that publishes, on that process's main loop: the single process (coordinator.c), the
 * supervisor under --procs (supervisor.c), or a supervised worker, which relays what its
 * supervisor numbered. It owns the wall-clock tick, the signals (SIGUSR1 broadcasts,
 * SIGHUP reloads, SIGINT/SIGTERM stop), the admin API's operations (server/admin.c), the
 * Redis link (server/redis.c) and the sequence numbers: this is the one place a broadcast gets
 * its seq, and (issue #17) its sequence number in its channel, with the process's epoch (the
 * supervisor's under --procs); under --redis the Redis script numbers channel messages.
 * Its owner delivers what it publishes: to the process's shards (coordinator) or to every
 * worker (supervisor). */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "chan.h"
#include "config.h"
#include "metrics.h"
#include "redis.h"

typedef struct wsp_pub_s wsp_pub_t;

/* Which process the publisher runs in. */
enum {
    WSP_PUB_SINGLE = 0, /* numbers, ticks, serves the admin API, subscribes to Redis */
    WSP_PUB_SUPERVISOR, /* numbers, ticks, serves the admin API, only publishes to Redis */
    WSP_PUB_WORKER,     /* relays the supervisor's broadcasts; numbers only Redis messages */
};

/* wsp_pub_open() returns -(WSP_PUB_EADMIN + errno) when the admin listener could not be
 * opened, and wsp_coord_run()/wsp_super_run() pass it on, so that main() can say which port
 * failed. */
#define WSP_PUB_EADMIN 10000

/* A message's place in its channel (issue #17): its sequence number there (0: none, as for
 * a raw Redis message or a tick under --redis) and the epoch the number belongs to. */
typedef struct wsp_pub_chseq_s {
    uint64_t seq;
    const char *epoch;
    size_t epoch_len;
} wsp_pub_chseq_t;

/* What the publisher asks of its owner; every call on the owner's loop thread. */
typedef struct wsp_pub_ops_s {
    /* Delivers payload as broadcast seq on chan (NULL/0 = the default channel), at cs in its
     * channel; reason names the source for the logs. Returns 0 or a negative errno. */
    int (*deliver)(void *user, const char *chan, size_t chan_len, const uint8_t *payload,
                   size_t len, uint64_t seq, const wsp_pub_chseq_t *cs, const char *reason);
    /* The Redis subscription went up or down (may be NULL): what it told before is stale. */
    void (*link)(void *user, int up);
    /* SIGUSR1 in a worker: ask the supervisor, which numbers the time messages. */
    void (*trigger)(void *user);
    /* SIGINT or SIGTERM arrived: the owner starts stopping (and calls wsp_pub_stop()). */
    void (*stop)(void *user, int signum);
    /* SIGUSR2 arrived: a live upgrade (issue #20); NULL where the owner does none. */
    void (*upgrade)(void *user);
    /* Delivers payload to the connections of the user sub (issue #16): on the process's
     * shards (coordinator) or through every worker (supervisor). Each process that delivers
     * hands tag back to wsp_pub_user_reached() once. Returns how many such reports to expect,
     * or a negative errno. */
    int (*deliver_user)(void *user, const char *sub, size_t sub_len, const uint8_t *payload,
                        size_t len, uint64_t tag);
    /* How many processes deliver (and report) a user message coming back from Redis: 1, or
     * the supervisor's live workers. */
    unsigned (*redis_reporters)(void *user);
    /* A worker's report of a user message delivered: to be passed on to the supervisor. */
    void (*reached)(void *user, uint64_t tag, uint64_t conns);
} wsp_pub_ops_t;

/* What SIGHUP runs: a module re-reads its files (a certificate, a key) for what starts
 * afterwards, and logs how it went. */
typedef void (*wsp_pub_reload_fn)(void *arg);

/* The most reload functions one publisher runs. */
#define WSP_PUB_RELOADS 4

/* Adds fn(arg) to what SIGHUP runs, after those added before. 0, or -ENOSPC past
 * WSP_PUB_RELOADS. Loop thread, before the loop runs. */
int wsp_pub_on_reload(wsp_pub_t *p, wsp_pub_reload_fn fn, void *arg);

/* Creates the publisher of a process of role (WSP_PUB_*) on loop: its tick timer and signal
 * handlers, nothing armed yet. stats[0..nstats) are the counters the admin API reports (the
 * process's own, or every worker's); cfg, stats and ops are the caller's and outlive p.
 * Returns 0 or a negative errno. Loop thread. */
int wsp_pub_new(wsp_pub_t **out, uv_loop_t *loop, const wsp_config_t *cfg, int role,
                const wsp_proc_stats_t *stats, unsigned nstats, const wsp_pub_ops_t *ops,
                void *user);

/* Opens the admin API (--admin; never in a worker) and the Redis link (--redis). Returns 0,
 * -(WSP_PUB_EADMIN + errno) for the admin listener, or a negative errno. Loop thread. */
int wsp_pub_open(wsp_pub_t *p);

/* A live upgrade's new process (issue #20), before READY: subscribes to Redis now and holds
 * what comes (server/pubhold.h) until wsp_pub_release(); up(ud) is called once, when the
 * subscription is complete. Returns 0, -ENOTSUP without --redis (or in the supervisor), or a
 * negative errno. Loop thread. */
int wsp_pub_hold(wsp_pub_t *p, void (*up)(void *ud), void *ud);

/* The takeover, after wsp_pub_resume() and wsp_pub_open(): delivers what was held after the
 * old process's marker mark[0..mark_len) (NULL: none came, so all of it), drops what preceded
 * it (the old process delivered that) and logs the cut. No-op without a hold. Loop thread. */
void wsp_pub_release(wsp_pub_t *p, const char *mark, size_t mark_len);

/* A live upgrade's old process, its marker back: what Redis sends from here on is dropped (the
 * new process delivers it). Loop thread. */
void wsp_pub_mute_redis(wsp_pub_t *p);

/* Arms the tick on the next wall-clock multiple of --interval (never in a worker). Loop
 * thread, once the process serves. */
void wsp_pub_start(wsp_pub_t *p);

/* A live upgrade's new process takes over: numbering goes on after seq, and the tick is
 * armed for next_tick_ms (the old process's, 0 = the next multiple as wsp_pub_start()). Loop
 * thread, instead of wsp_pub_start(). */
void wsp_pub_resume(wsp_pub_t *p, uint64_t seq, uint64_t next_tick_ms);

/* The last number given, and the wall-clock ms of the armed tick (0: none), for a live
 * upgrade's handover. Loop thread. */
uint64_t wsp_pub_seq(const wsp_pub_t *p);

/* Each channel's last number, where this process numbers them (issue #17): a live upgrade
 * hands them over so that the new process goes on in the same epoch. Loop thread. */
wsp_chan_seqs_t *wsp_pub_chan_seqs(wsp_pub_t *p);
uint64_t wsp_pub_next_tick(const wsp_pub_t *p);

/* wsp_pub_open() opens the admin API on fd (a live upgrade's, now p's) instead of binding.
 * Loop thread, before wsp_pub_open(). */
void wsp_pub_adopt_admin(wsp_pub_t *p, int fd);

/* The admin API's listening socket (still p's), or -1 without one. Loop thread. */
int wsp_pub_admin_fd(const wsp_pub_t *p);

/* Numbers a broadcast here and delivers it. *seq (may be NULL) gets its number. Returns 0,
 * -EAGAIN while stopping, or what the owner's deliver returned. Loop thread. */
int wsp_pub_publish(wsp_pub_t *p, const char *chan, size_t chan_len, const uint8_t *payload,
                    size_t len, const char *reason, uint64_t *seq);

/* Publishes the time message {"time":<epoch ms>,"seq":<n>} on the default channel. Loop
 * thread. */
void wsp_pub_time(wsp_pub_t *p, const char *reason);

/* Delivers a broadcast the supervisor numbered seq (and cs in its channel); numbers given
 * here later follow it. Ignored while stopping. Loop thread of a worker. */
void wsp_pub_relay(wsp_pub_t *p, const char *chan, size_t chan_len, const uint8_t *payload,
                   size_t len, uint64_t seq, const wsp_pub_chseq_t *cs, const char *reason);

/* 1 once this publisher has numbered a broadcast: a worker started now cannot assume every
 * channel is at 0 (--worker-restart). Loop thread. */
int wsp_pub_published(const wsp_pub_t *p);

/* Delivers a user message the supervisor sent (tag: its id) to this worker's shards. Loop
 * thread of a worker. */
void wsp_pub_relay_user(wsp_pub_t *p, const char *sub, size_t sub_len, const uint8_t *payload,
                        size_t len, uint64_t tag);

/* A delivery report of the user message tagged tag: conns connections reached by one
 * process. In a worker it goes to the supervisor; elsewhere it counts toward the waiting
 * POST /publish?user= answer (server/pubwait.h). Loop thread. */
void wsp_pub_user_reached(wsp_pub_t *p, uint64_t tag, uint64_t conns);

/* Stops publishing: the tick and the Redis link stop, the admin API refuses to publish and
 * answers /healthz 503 until wsp_pub_close(). Idempotent; NULL is fine. Loop thread. */
void wsp_pub_stop(wsp_pub_t *p);

/* 1 once wsp_pub_stop() ran. Loop thread. */
int wsp_pub_stopping(const wsp_pub_t *p);

/* Closes the admin API, the Redis link and the publisher's handles. Idempotent; NULL is fine.
 * Run the loop afterwards, then wsp_pub_free(). Loop thread. */
void wsp_pub_close(wsp_pub_t *p);

/* Frees p once its handles have closed (after wsp_pub_close() and a run of the loop, or
 * after the loop was closed). NULL is fine. */
void wsp_pub_free(wsp_pub_t *p);

/* The admin API's bound port, or 0 without one. Loop thread. */
int wsp_pub_admin_port(const wsp_pub_t *p);

/* The Redis link, NULL without --redis or once stopped. Loop thread. */
wsp_redis_t *wsp_pub_redis(const wsp_pub_t *p);

#endif
