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
    WSP_CLOSE_HANDOVER,      /* handed to a new process by a live upgrade (#20) */
    WSP_CLOSE__N,
};

/* HTTP statuses a handshake can fail with. */
enum { WSP_HS_400 = 0, WSP_HS_404, WSP_HS_405, WSP_HS_426, WSP_HS_431, WSP_HS_503, WSP_HS__N };

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
} wsp_proc_stats_t;

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

/* Maps a WebSocket close code we sent to a WSP_CLOSE_* reason. */
int wsp_metrics_close_reason(int code);

/* Maps an HTTP status to a WSP_HS_* index (400 for anything unknown). */
int wsp_metrics_hs_index(int status);

#endif
