#ifndef WSP_METRICS_H
#define WSP_METRICS_H

/* The server's counters and their two renderings, Prometheus text (/metrics) and JSON
 * (/stats). Counters live in plain memory that a supervisor can map into every worker (a
 * memfd), so one /metrics covers all workers and shards. Lock-free atomics are address-free,
 * so they work across processes. Writers: the owning shard or coordinator, relaxed. Readers:
 * anyone. */

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"
#include "tlshs.h"

#define WSP_METRICS_MAX_SHARDS 64

/* Why a connection was closed. */
enum {
    WSP_CLOSE_CLIENT = 0,    /* the peer closed (close frame, EOF, reset) */
    WSP_CLOSE_HS_TIMEOUT,    /* no upgrade within --handshake-timeout */
    WSP_CLOSE_HS_FAILED,     /* answered with an HTTP error */
    WSP_CLOSE_REFUSED,       /* over --max-conns: 503 */
    WSP_CLOSE_SLOW_CONSUMER, /* over --max-pending: 1008 */
    WSP_CLOSE_PROTOCOL,      /* 1002 */
    WSP_CLOSE_TOO_BIG,       /* 1009 */
    WSP_CLOSE_INVALID_UTF8,  /* 1007 */
    WSP_CLOSE_PING_TIMEOUT,  /* no answer to a ping by the next round */
    WSP_CLOSE_SHUTDOWN,      /* 1001 on SIGTERM */
    WSP_CLOSE_ERROR,         /* a write or setup error on our side */
    WSP_CLOSE_TOKEN_EXPIRED, /* 4001: the token's exp + leeway passed (issue #16) */
    WSP_CLOSE_TOKEN_INVALID, /* 4003: a refresh with an invalid token or another sub */
    WSP_CLOSE_TLS,           /* a TLS failure: handshake, bad record, alert, renegotiation */
    WSP_CLOSE_HANDOVER,      /* handed to a new process by a live upgrade (#20) */
    WSP_CLOSE__N,
};

/* HTTP statuses a handshake can fail with. */
enum {
    WSP_HS_400 = 0,
    WSP_HS_404,
    WSP_HS_405,
    WSP_HS_426,
    WSP_HS_431,
    WSP_HS_503,
    WSP_HS_401, /* no valid token (issue #16) */
    WSP_HS_403, /* a channel the token does not grant */
    WSP_HS__N
};

/* Why an upgrade was refused by token auth (issue #16): the nine reasons of common/jwt.h
 * (index -reason - 1, so WSP_JWT_MISSING is 0), then a channel outside the token's claim. */
#define WSP_AUTH_FAIL_CHANNEL 9
#define WSP_AUTH_FAIL__N 10

typedef atomic_uint_fast64_t wsp_counter_t;

/* One shard's counters. */
typedef struct wsp_shard_stats_s {
    _Alignas(64) wsp_counter_t open; /* gauge: upgraded connections receiving broadcasts */
    wsp_counter_t accepted;
    wsp_counter_t upgraded;
    wsp_counter_t closed[WSP_CLOSE__N];
    wsp_counter_t hs_failed[WSP_HS__N];
    wsp_counter_t broadcasts;   /* passes made */
    wsp_counter_t msgs_written; /* frames handed to the kernel or queued */
    wsp_counter_t bytes_written;
    wsp_counter_t pings;          /* pings sent */
    wsp_counter_t slow_consumers; /* connections given close 1008 for --max-pending */
    wsp_counter_t uring_sends;    /* broadcast frames sent through the shard's io_uring */
    wsp_counter_t uring_enters;   /* io_uring_enter calls that carried them */
    wsp_counter_t uring_short;    /* io_uring sends that left bytes for the libuv path */
    /* issue #16: token auth */
    wsp_counter_t auth_failed[WSP_AUTH_FAIL__N]; /* upgrades refused 401/403, by reason */
    wsp_counter_t auth_refreshes;                /* {"refresh":...} that moved a token's expiry */
    wsp_counter_t user_msgs;                     /* user messages written (POST ?user=) */
    /* issue #17: history and recovery */
    wsp_counter_t hist_entries;    /* gauge: history entries this shard holds */
    wsp_counter_t hist_evicted;    /* entries dropped for --history-max-bytes */
    wsp_counter_t framed;          /* wspush.v1 connections upgraded */
    wsp_counter_t recovered;       /* channels recovered (since= honoured) */
    wsp_counter_t not_recovered;   /* channels asked for and not recovered */
    wsp_counter_t replayed;        /* messages replayed to recovering connections */
    wsp_counter_t recover_waits;   /* connections that waited to come in */
    wsp_counter_t recover_fetches; /* of them, fetches from Redis */
    /* TLS (issue #18) */
    wsp_counter_t tls_handshaking;              /* gauge: accepted, TLS handshake not ended */
    wsp_counter_t tls_full;                     /* handshakes completed in full */
    wsp_counter_t tls_resumed;                  /* handshakes resumed from a session ticket */
    wsp_counter_t tls_user;                     /* sessions sealed record by record here */
    wsp_counter_t tls_ktls;                     /* sessions whose sends went to kernel TLS:
                                                   must follow tls_user (metrics.c) */
    wsp_counter_t tls_paused;                   /* accepts paused at --tls-max-handshakes */
    wsp_counter_t tls_fail[WSP_TLS_FAIL_COUNT]; /* by WSP_TLS_FAIL_* (index 0 unused) */
    /* permessage-deflate (issue #19) */
    wsp_counter_t deflate_upgraded;  /* connections that negotiated it */
    wsp_counter_t deflate_builds;    /* payloads compressed by this shard (once per broadcast) */
    wsp_counter_t deflate_in_bytes;  /* their bytes before compression */
    wsp_counter_t deflate_out_bytes; /* their bytes after (frame payloads, headers excluded) */
    wsp_counter_t deflate_ns;        /* time spent compressing them */
    wsp_counter_t deflate_written;   /* compressed frames written: part of msgs_written */
    wsp_counter_t inflated;          /* compressed client messages inflated */
} wsp_shard_stats_t;

/* Broadcast duration buckets, seconds (first shard start to last shard end). */
#define WSP_METRICS_BCAST_BUCKETS 12

/* One process's counters (a worker, or the only process). */
typedef struct wsp_proc_stats_s {
    wsp_counter_t pid;
    wsp_counter_t nshards;
    wsp_counter_t up;            /* 1 while the process runs */
    wsp_counter_t redis_up;      /* gauge */
    wsp_counter_t redis_dropped; /* messages dropped: not UTF-8 or too large */
    wsp_counter_t rss_bytes;     /* gauge, sampled once a second */
    wsp_counter_t open_fds;      /* gauge, sampled once a second */
    wsp_counter_t publishes;     /* broadcasts started by this process */
    wsp_counter_t bcast_count;
    wsp_counter_t bcast_sum_us;
    wsp_counter_t bcast_bucket[WSP_METRICS_BCAST_BUCKETS]; /* non-cumulative counts */
    wsp_shard_stats_t shard[WSP_METRICS_MAX_SHARDS];
    wsp_counter_t redis_resolve_failures; /* the Redis host did not resolve (#20) */
    wsp_counter_t hist_bytes; /* gauge, sampled once a second: the history's memory (#17) */
    wsp_counter_t tls_path;   /* gauge, WSP_METRICS_TLS_*: how TLS records are sent (#18) */
} wsp_proc_stats_t;

/* wsp_proc_stats_t.tls_path: no TLS, records sealed in user space, kernel TLS. */
enum { WSP_METRICS_TLS_OFF = 0, WSP_METRICS_TLS_USER = 1, WSP_METRICS_TLS_KTLS = 2 };

/* Upper bounds of the broadcast duration buckets, seconds. */
extern const double wsp_metrics_bcast_bounds[WSP_METRICS_BCAST_BUCKETS];

/* Records one broadcast's duration. Owning process's coordinator. */
void wsp_metrics_bcast_observe(wsp_proc_stats_t *p, uint64_t ns);

/* Samples RSS and, when with_fds, the open fds of the calling process into p (counting fds
 * walks /proc/self/fd: ~1 ms at 20K sockets, so callers do it rarely). Returns 0 or a
 * negative errno. */
int wsp_metrics_sample_self(wsp_proc_stats_t *p, int with_fds);

/* Zeroes the gauges of p (a restarted worker reuses its slot: counters continue). */
void wsp_metrics_reset_gauges(wsp_proc_stats_t *p);

/* Appends the Prometheus text exposition for procs[0..n) (workers labelled by index).
 * Returns 0 or -ENOMEM. */
int wsp_metrics_render(const wsp_proc_stats_t *procs, unsigned n, wsp_buf_t *out);

/* The open connections (the open gauge) summed over every shard of procs[0..n): for /stats
 * and the admin API's publish answer. */
uint64_t wsp_metrics_sum_open(const wsp_proc_stats_t *procs, unsigned n);

/* Appends /stats JSON for procs[0..n). Returns 0 or -ENOMEM. */
int wsp_metrics_stats_json(const wsp_proc_stats_t *procs, unsigned n, int draining, wsp_buf_t *out);

/* The label of auth failure reason i (WSP_AUTH_FAIL_*): "missing" ... "too_large",
 * "forbidden_channel". */
const char *wsp_metrics_auth_reason(int i);

/* Maps a WebSocket close code we sent to a WSP_CLOSE_* reason. */
int wsp_metrics_close_reason(int code);

/* Maps an HTTP status to a WSP_HS_* index (400 for anything unknown). */
int wsp_metrics_hs_index(int status);

#endif
