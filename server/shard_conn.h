#ifndef WSP_SHARD_CONN_H
#define WSP_SHARD_CONN_H

/* The part of a shard its connections use: the tables they live in, the shard's channels, the
 * process-wide admission limits, the shard's counters, its tick and read buffer, and the rate
 * limit of per-connection log lines. A shard (server/shard.c) embeds one and points its loop's
 * data at it, so conn.c reaches it from any handle (wsp_shard_conn_of()). It sits below both:
 * a shard calls its connections (server/conn.h), a connection calls only this, and tells the
 * shard that it is gone through one callback (on_conn_freed). Internal to shard.c and conn.c,
 * but for wsp_limits_t, which the coordinator owns (shard.h passes it on); owning shard
 * thread only, except the atomics of wsp_limits_t. */

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "auth.h"
#include "chan.h"
#include "config.h"
#include "metrics.h"
#include "resume.h"
#include "table.h"
#include "tlsconn.h"
#include "ws.h"

/* The tables: TIMED holds HANDSHAKE and DRAINING connections, swept every second for
 * deadlines; OPEN holds exactly the upgraded connections that receive broadcasts. A
 * connection that chose channels is also in each channel's subscribers. */
enum { WSP_SHARD_T_TIMED = 0, WSP_SHARD_T_OPEN = 1, WSP_SHARD_T_N };

/* Process-wide admission limits, shared by every shard of a process (the coordinator owns
 * it). Accepting pauses at fd_budget sockets, below the nofile limit: libuv's EMFILE
 * fallback (one reserved descriptor per loop) is not safe with several loops in a process,
 * and a shard at EMFILE could spin in accept() for good. */
typedef struct wsp_limits_s {
    uint64_t max_conns;         /* connections admitted; more are answered 503 */
    uint64_t fd_budget;         /* accepted sockets of any state; more wait in the backlog */
    atomic_uint_fast64_t conns; /* admitted connections now */
    atomic_uint_fast64_t fds;   /* accepted sockets now */
    /* TLS (issue #18): accepted connections whose TLS handshake has not ended, each up to
     * ~35 KB of OpenSSL state; at tls_hs_max accepting waits, as at the fd budget. */
    uint64_t tls_hs_max;
    atomic_uint_fast64_t tls_hs;
} wsp_limits_t;

typedef struct wsp_shard_conn_s wsp_shard_conn_t;

struct wsp_shard_conn_s {
    const wsp_config_t *cfg;
    unsigned id;             /* the shard's, for the logs */
    uint8_t tick;            /* seconds since start, mod 256: byte-sized deadlines */
    uint8_t log_tick;        /* tick of the last per-connection log line */
    uint64_t log_suppressed; /* lines not written since */
    wsp_table_t table[WSP_SHARD_T_N];
    wsp_chan_table_t chans;
    wsp_limits_t *lim;        /* the coordinator's */
    wsp_shard_stats_t *stats; /* the shard's counters */
    uint8_t *rbuf;            /* WSP_SHARD_RBUF bytes: one read buffer for every socket */
    wsp_auth_shard_t *auth;   /* token auth (issue #16): the key, the arrays beside OPEN; NULL
                                 without --auth-jwt-alg */
    wsp_tlsconn_res_t *tls;   /* the listener speaks TLS (issue #18); NULL: plain ws:// */
    wsp_ws_pmd_t pmd;         /* inflates client messages of permessage-deflate connections (#19) */
    /* Called once a connection and its socket are freed, or a TLS handshake slot is given
     * back: the shard resumes a listener paused at the fd budget or the TLS handshake limit,
     * or finishes stopping. */
    void (*on_conn_freed)(wsp_shard_conn_t *sc);
    /* issue #17: how wspush.v1 connections come in (server/arrival.c, set by the shard) */
    int (*arrive)(wsp_shard_conn_t *sc, wsp_conn_t *c, const wsp_resume_ask_t *a);
    void (*gone)(wsp_shard_conn_t *sc, wsp_conn_t *c);
    uv_loop_t *loop;            /* the shard's: uv_now() is the history's clock */
    wsp_chan_pos_t *pos;        /* the process's positions (the coordinator's); NULL: none */
    wsp_resume_queue_t *fetchq; /* Redis fetches go to the coordinator here; NULL: no Redis */
    int peers;                  /* other processes deliver the same channels (--procs) */
    wsp_resume_t *pending;      /* connections waiting to come in, a list */
    uint32_t npending;
};

/* One read buffer for all of a shard's sockets: every read is consumed before the next. */
#define WSP_SHARD_RBUF (64 * 1024)

/* The shard a loop belongs to (loop->data). */
static inline wsp_shard_conn_t *wsp_shard_conn_of(const uv_loop_t *loop) { return loop->data; }

/* 1 when a per-connection event may be logged now: at most one line per shard per tick. */
int wsp_shard_conn_log_ok(wsp_shard_conn_t *sc);

/* Takes a connection slot against --max-conns; -EMFILE over it. */
int wsp_shard_conn_reserve(wsp_shard_conn_t *sc);

/* Gives back a slot taken by wsp_shard_conn_reserve(). */
void wsp_shard_conn_release(wsp_shard_conn_t *sc);

/* Counts an accepted socket against the fd budget; wsp_shard_conn_freed() gives it back. */
void wsp_shard_conn_fd_taken(wsp_shard_conn_t *sc);

/* A connection (and its socket) was freed: gives back its place in the fd budget and calls
 * on_conn_freed. */
void wsp_shard_conn_freed(wsp_shard_conn_t *sc);

/* 1 while the process holds fd_budget accepted sockets or more, or (TLS) tls_hs_max
 * connections in their TLS handshake: accepting waits. */
int wsp_shard_conn_over_budget(const wsp_shard_conn_t *sc);

/* 1 while tls_hs_max TLS handshakes are in progress in the process. */
int wsp_shard_conn_tls_full(const wsp_shard_conn_t *sc);

/* Takes a TLS handshake slot for a connection about to be accepted, held until
 * wsp_shard_conn_tls_end(). 0, or -EBUSY when tls_hs_max are taken (shards race for the
 * last ones: this is the exact check, wsp_shard_conn_tls_full() only a hint). */
int wsp_shard_conn_tls_begin(wsp_shard_conn_t *sc);

/* Its handshake ended (done, failed or closed): the slot is free, accepting may resume. */
void wsp_shard_conn_tls_end(wsp_shard_conn_t *sc);

/* Counts a TLS handshake failure (WSP_TLS_FAIL_*) and logs it, rate-limited. */
void wsp_shard_conn_tls_failed(wsp_shard_conn_t *sc, int reason);

#endif
