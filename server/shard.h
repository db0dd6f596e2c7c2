#ifndef WSP_SHARD_H
#define WSP_SHARD_H

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "coordinator.h"

typedef struct wsp_shard_s wsp_shard_t;
typedef struct wsp_conn_s wsp_conn_t;

/* Counters a shard keeps; written by its thread, read relaxed by anyone. */
typedef struct wsp_shard_stats_s {
    atomic_uint_fast64_t accepted;       /* connections accepted */
    atomic_uint_fast64_t upgraded;       /* 101 sent */
    atomic_uint_fast64_t closed;         /* connections freed */
    atomic_uint_fast64_t hs_failed;      /* handshakes answered with an HTTP error */
    atomic_uint_fast64_t hs_timeout;     /* handshakes that ran out of time */
    atomic_uint_fast64_t refused;        /* over --max-conns: answered 503 */
    atomic_uint_fast64_t slow_closed;    /* closed with 1008 for --max-pending */
    atomic_uint_fast64_t proto_closed;   /* closed by the frame parser (1002/1007/1009) */
    atomic_uint_fast64_t broadcasts;     /* passes made */
    atomic_uint_fast64_t msgs_written;   /* broadcast frames handed to the kernel or queued */
    atomic_uint_fast64_t bytes_written;  /* their bytes */
    atomic_uint_fast64_t open;           /* gauge: connections in OPEN */
} wsp_shard_stats_t;

/* Tables a shard keeps its connections in: TIMED holds HANDSHAKE and DRAINING connections,
 * swept every second for deadlines; OPEN holds exactly the connections a broadcast walks. */
enum { WSP_SHARD_T_TIMED = 0, WSP_SHARD_T_OPEN = 1 };

/* Creates shard id over the bound socket listen_fd (ownership passes to the shard, even on
 * failure). proc_conns is the process-wide connection count checked against max_conns.
 * Returns 0 or a negative errno. Coordinator thread, before wsp_shard_start(). */
int wsp_shard_new(wsp_shard_t **out, unsigned id, const wsp_config_t *cfg, int listen_fd,
                  atomic_uint_fast64_t *proc_conns, uint64_t max_conns);

/* Starts the shard's thread, which listens and runs its loop. Returns 0 or a negative errno.
 * Coordinator thread. */
int wsp_shard_start(wsp_shard_t *sh);

/* Queues b for the shard's next pass and wakes it; the shard calls wsp_bcast_done(b) once.
 * Returns 0, or -ENOBUFS when the shard's ring is full (b not queued). Coordinator only. */
int wsp_shard_post(wsp_shard_t *sh, wsp_bcast_t *b);

/* Asks the shard to stop accepting, close every connection with 1001, wait up to 5 s for
 * writes to flush and end its thread. Coordinator thread; then wsp_shard_join(). */
void wsp_shard_stop(wsp_shard_t *sh);

/* Waits for the shard's thread; the shard's loop is closed. Returns 0 or a negative errno. */
int wsp_shard_join(wsp_shard_t *sh);

/* Frees a shard that was never started or has been joined. Coordinator thread. */
void wsp_shard_free(wsp_shard_t *sh);

/* The shard's counters (live for the shard's lifetime). Any thread. */
const wsp_shard_stats_t *wsp_shard_stats(const wsp_shard_t *sh);

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
/* Takes a connection slot against --max-conns; -EMFILE over it. */
int wsp_shard_conn_reserve(wsp_shard_t *sh);
/* Gives back a slot taken by wsp_shard_conn_reserve(). */
void wsp_shard_conn_release(wsp_shard_t *sh);
/* Called by conn.c after a connection is freed; lets a stopping shard finish. */
void wsp_shard_conn_freed(wsp_shard_t *sh);
/* 1 while the shard is stopping (no new connections). */
int wsp_shard_stopping(const wsp_shard_t *sh);

#endif
