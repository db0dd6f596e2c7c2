#ifndef WSP_SHARD_H
#define WSP_SHARD_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "coordinator.h"
#include "metrics.h"

typedef struct wsp_shard_s wsp_shard_t;
typedef struct wsp_conn_s wsp_conn_t;
typedef struct wsp_chan_s wsp_chan_t; /* a named channel's subscribers in one shard */

/* Tables a shard keeps its connections in: TIMED holds HANDSHAKE and DRAINING connections,
 * swept every second for deadlines; OPEN holds exactly the upgraded connections that receive
 * broadcasts. A connection that chose channels is also in each channel's table. */
enum { WSP_SHARD_T_TIMED = 0, WSP_SHARD_T_OPEN = 1 };

/* Process-wide admission limits, shared by every shard of a process (the coordinator owns
 * it). Accepting pauses at fd_budget sockets, below the nofile limit: libuv's EMFILE
 * fallback (one reserved descriptor per loop) is not safe with several loops in a process,
 * and a shard at EMFILE could spin in accept() for good. */
typedef struct wsp_limits_s {
    uint64_t max_conns;         /* connections admitted; more are answered 503 */
    uint64_t fd_budget;         /* accepted sockets of any state; more wait in the backlog */
    atomic_uint_fast64_t conns; /* admitted connections now */
    atomic_uint_fast64_t fds;   /* accepted sockets now */
} wsp_limits_t;

/* Creates shard id over the bound socket listen_fd (ownership passes to the shard, even on
 * failure). lim holds the process-wide limits; stats are the shard's counters (both owned by
 * the caller, outliving the shard); exited is signalled when the shard's thread is about to
 * end. Returns 0 or a negative errno. Coordinator thread, before wsp_shard_start(). */
int wsp_shard_new(wsp_shard_t **out, unsigned id, const wsp_config_t *cfg, int listen_fd,
                  wsp_limits_t *lim, wsp_shard_stats_t *stats, uv_async_t *exited);

/* Starts the shard's thread, which listens and runs its loop. Returns 0 or a negative errno.
 * Coordinator thread. */
int wsp_shard_start(wsp_shard_t *sh);

/* Queues b for the shard's next pass and wakes it; the shard calls wsp_bcast_done(b) once.
 * Returns 0, or -ENOBUFS when the shard's ring is full (b not queued). Coordinator only. */
int wsp_shard_post(wsp_shard_t *sh, wsp_bcast_t *b);

/* Asks the shard to stop accepting and close every connection with 1001, spread over
 * --drain-seconds, then to end its thread (at the latest --drain-seconds + 5 s later).
 * Coordinator thread; wsp_shard_exited() turns true, then wsp_shard_join(). */
void wsp_shard_stop(wsp_shard_t *sh);

/* 1 once the shard's thread is about to end (joining will not block long). Any thread. */
int wsp_shard_exited(const wsp_shard_t *sh);

/* Waits for the shard's thread; the shard's loop is closed. Returns 0 or a negative errno. */
int wsp_shard_join(wsp_shard_t *sh);

/* Frees a shard that was never started or has been joined. Coordinator thread. */
void wsp_shard_free(wsp_shard_t *sh);

/* --- for conn.c: the owning shard's thread only --- */

/* The shard a loop belongs to (loop->data). */
wsp_shard_t *wsp_shard_of(const uv_loop_t *loop);
const wsp_config_t *wsp_shard_config(const wsp_shard_t *sh);
unsigned wsp_shard_id(const wsp_shard_t *sh);
/* Mutable counters of the shard. */
wsp_shard_stats_t *wsp_shard_counters(wsp_shard_t *sh);
/* The current 1-second tick, for byte-sized deadlines. */
uint8_t wsp_shard_tick(const wsp_shard_t *sh);
/* The shard-wide read buffer handed to every uv_read_start() of the shard. */
uv_buf_t wsp_shard_rbuf(wsp_shard_t *sh);
/* 1 when a per-connection event may be logged now: at most one line per shard per second. */
int wsp_shard_log_ok(wsp_shard_t *sh);
/* Adds c to table t and returns its slot in *idx; -ENOMEM leaves it out. */
int wsp_shard_track(wsp_shard_t *sh, int t, wsp_conn_t *c, uint32_t *idx);
/* Removes slot idx from table t (swap with the last entry, whose index is updated). */
void wsp_shard_untrack(wsp_shard_t *sh, int t, uint32_t idx);
/* Adds c to channel name[0..len) (created on first use); returns the channel and c's slot.
 * -ENOMEM leaves it out. */
int wsp_shard_subscribe(wsp_shard_t *sh, const char *name, size_t len, wsp_conn_t *c,
                        wsp_chan_t **ch, uint32_t *idx);
/* Removes slot idx from ch (swap with the last, whose index is updated through
 * wsp_conn_set_chan_idx); an empty channel is freed. */
void wsp_shard_unsubscribe(wsp_shard_t *sh, wsp_chan_t *ch, uint32_t idx);
/* Takes a connection slot against --max-conns; -EMFILE over it. */
int wsp_shard_conn_reserve(wsp_shard_t *sh);
/* Gives back a slot taken by wsp_shard_conn_reserve(). */
void wsp_shard_conn_release(wsp_shard_t *sh);
/* Counts an accepted socket against the fd budget (wsp_shard_conn_freed() gives it back). */
void wsp_shard_fd_taken(wsp_shard_t *sh);
/* Called by conn.c after a connection (and its socket) is freed: gives back its place in the
 * fd budget, resumes a paused listener and lets a stopping shard finish. */
void wsp_shard_conn_freed(wsp_shard_t *sh);

#endif
