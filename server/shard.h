#ifndef WSP_SHARD_H
#define WSP_SHARD_H

/* A shard: one thread with its own libuv loop and its own SO_REUSEPORT listener, owning every
 * connection it accepts for that connection's whole life (server/conn.c). The coordinator
 * (server/coordinator.c) creates, starts, stops and joins shards and posts broadcasts
 * (server/bcast.h) to them through a lock-free ring; a shard walks its connections for each
 * and reports back through the broadcast. What a shard's connections use of it is in
 * server/shard_conn.h. */

#include <uv.h>

#include "bcast.h"
#include "config.h"
#include "metrics.h"
#include "shard_conn.h"
#include "tlsterm.h"
#include "uphist.h"

typedef struct wsp_shard_s wsp_shard_t;

/* Creates shard id over the bound socket listen_fd (ownership passes to the shard, even on
 * failure). ho_sock >= 0 (also the shard's) makes it a live upgrade's new shard: it adopts
 * the connections the old process's shard sends there, and listens once that one stopped
 * accepting (wsp_shard_handover_done() turns true when all came). lim holds the process-wide
 * limits; stats are the shard's counters; auth is the
 * shard's part of token auth (NULL without it; all three owned by the caller, outliving the
 * shard); exited is signalled when the shard's thread is about to end; tls, when not NULL,
 * makes the listener speak TLS only (the caller's, outliving the shard). Returns 0 or a
 * negative errno. Coordinator thread, before wsp_shard_start(). */
int wsp_shard_new(wsp_shard_t **out, unsigned id, const wsp_config_t *cfg, int listen_fd,
                  int ho_sock, wsp_limits_t *lim, wsp_shard_stats_t *stats, wsp_auth_shard_t *auth,
                  uv_async_t *exited, wsp_tlsterm_t *tls);

/* What a shard needs for history and recovery (issue #17), the coordinator's. */
typedef struct wsp_shard_hist_s {
    wsp_chan_hist_t *hist;      /* settings and the process-wide budget */
    wsp_chan_pos_t *pos;        /* the process's positions */
    wsp_resume_queue_t *fetchq; /* where Redis fetches go; NULL without --redis */
    const char *epoch;          /* the epoch until a broadcast says otherwise; NULL: unknown */
    int peers;                  /* other processes deliver the same channels (--procs) */
} wsp_shard_hist_t;

/* Gives sh its history settings (everything h points to outlives sh). Returns 0 or a negative
 * errno. Coordinator thread, after wsp_shard_new(), before wsp_shard_start(). */
int wsp_shard_set_history(wsp_shard_t *sh, const wsp_shard_hist_t *h);

/* Hands a fetch's answer (r->res) back to r's shard and wakes it. Coordinator thread. */
void wsp_shard_post_resume(wsp_shard_t *sh, wsp_resume_t *r);

/* Starts the shard's thread, which listens and runs its loop. Returns 0 or a negative errno.
 * Coordinator thread. */
int wsp_shard_start(wsp_shard_t *sh);

/* Queues b for the shard's next pass and wakes it; the shard calls wsp_bcast_done(b) once.
 * A full ring keeps b (and what follows, in order) in the shard's backlog until
 * wsp_shard_flush() finds room. Returns 0, or -ENOBUFS when the backlog is full too
 * (WSP_SHARD_BACKLOG_MAX broadcasts behind: b not queued) or -ENOMEM. Coordinator only. */
int wsp_shard_post(wsp_shard_t *sh, wsp_bcast_t *b);

/* Moves what waits in the backlog into the ring while it has room (and then asks for a
 * handover that waited for it). Coordinator thread, e.g. whenever a broadcast finishes. */
void wsp_shard_flush(wsp_shard_t *sh);

/* After the shard's thread was joined: gives up the backlog's holds (wsp_bcast_cancel() of
 * each) and returns 1 when one of them is then due for reaping. Coordinator thread. */
int wsp_shard_backlog_drop(wsp_shard_t *sh);

/* Asks the shard to stop accepting and close every connection with 1001, spread over
 * --drain-seconds, then to end its thread (at the latest --drain-seconds + 5 s later).
 * Coordinator thread; wsp_shard_exited() turns true, then wsp_shard_join(). */
void wsp_shard_stop(wsp_shard_t *sh);

/* Live upgrade, old process: after the broadcasts already posted, the shard stops accepting,
 * sends every connection over sock (now the shard's) to the new process's shard, and ends its
 * thread once what had to stay has closed; exited is signalled when all was sent
 * (wsp_shard_handover_done()). Coordinator thread. */
void wsp_shard_handover(wsp_shard_t *sh, int sock);

/* 1 once every connection was sent (old process) or adopted (new process). Any thread. */
int wsp_shard_handover_done(const wsp_shard_t *sh);

/* Live upgrade, old process, once wsp_shard_handover_done(): the history shard 0 held when it
 * stopped taking broadcasts (issue #17; empty for other shards, under --redis or with history
 * off). The caller may send it and empty it with wsp_uphist_free(); else the shard frees it.
 * Coordinator thread. */
wsp_uphist_t *wsp_shard_history(wsp_shard_t *sh);

/* 1 once the shard's thread is about to end (joining will not block long). Any thread. */
int wsp_shard_exited(const wsp_shard_t *sh);

/* Waits for the shard's thread; the shard's loop is closed. Returns 0 or a negative errno.
 * Coordinator thread. */
int wsp_shard_join(wsp_shard_t *sh);

/* Frees a shard that was never started or has been joined. Coordinator thread. */
void wsp_shard_free(wsp_shard_t *sh);

#endif
