#include "metrics.h"

#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"

const double wsp_metrics_bcast_bounds[WSP_METRICS_BCAST_BUCKETS] = {
    0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60,
};

static const char *const close_names[WSP_CLOSE__N] = {
    "client",   "handshake_timeout", "handshake_failed", "refused",      "slow_consumer",
    "protocol", "too_big",           "invalid_utf8",     "ping_timeout", "shutdown",
    "error",    "token_expired",     "token_invalid",    "tls",          "handover",
};

static const char *const hs_names[WSP_HS__N] = {"400", "404", "405", "426",
                                                "431", "503", "401", "403"};

/* common/jwt.h's reason words in its order, then the 403. */
static const char *const auth_names[WSP_AUTH_FAIL__N] = {
    "missing",       "malformed", "signature", "algorithm", "expired",
    "not_yet_valid", "audience",  "issuer",    "too_large", "forbidden_channel",
};

const char *wsp_metrics_auth_reason(int i)
{
    return i >= 0 && i < WSP_AUTH_FAIL__N ? auth_names[i] : "unknown";
}

#define LOAD(c) ((unsigned long long)atomic_load_explicit(&(c), memory_order_relaxed))

void wsp_metrics_bcast_observe(wsp_proc_stats_t *p, uint64_t ns)
{
    double s = (double)ns / 1e9;
    int i = 0;
    while (i < WSP_METRICS_BCAST_BUCKETS && s > wsp_metrics_bcast_bounds[i])
        i++;
    if (i < WSP_METRICS_BCAST_BUCKETS) /* beyond the last bound counts only in +Inf */
        atomic_fetch_add_explicit(&p->bcast_bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->bcast_count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->bcast_sum_us, ns / 1000, memory_order_relaxed);
}

int wsp_metrics_sample_self(wsp_proc_stats_t *p, int with_fds)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -errno;
    unsigned long size = 0, resident = 0;
    int n = fscanf(f, "%lu %lu", &size, &resident);
    fclose(f);
    if (n != 2)
        return -EIO;
    long page = sysconf(_SC_PAGESIZE);
    atomic_store_explicit(&p->rss_bytes, (uint64_t)resident * (uint64_t)(page > 0 ? page : 4096),
                          memory_order_relaxed);
    if (!with_fds)
        return 0;
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -errno;
    uint64_t fds = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            fds++;
    closedir(d);
    atomic_store_explicit(&p->open_fds, fds ? fds - 1 : 0, memory_order_relaxed); /* the DIR */
    return 0;
}

void wsp_metrics_reset_gauges(wsp_proc_stats_t *p)
{
    for (unsigned s = 0; s < WSP_METRICS_MAX_SHARDS; s++)
        atomic_store_explicit(&p->shard[s].open, 0, memory_order_relaxed);
    atomic_store_explicit(&p->redis_up, 0, memory_order_relaxed);
    atomic_store_explicit(&p->up, 0, memory_order_relaxed);
}

uint64_t wsp_metrics_sum_open(const wsp_proc_stats_t *procs, unsigned n)
{
    uint64_t sum = 0;
    for (unsigned w = 0; w < n; w++) {
        unsigned ns = (unsigned)LOAD(procs[w].nshards);
        for (unsigned s = 0; s < ns && s < WSP_METRICS_MAX_SHARDS; s++)
            sum += LOAD(procs[w].shard[s].open);
    }
    return sum;
}

/* The sum of one shard counter (at offset in wsp_shard_stats_t) over every shard. */
static unsigned long long sum_shards(const wsp_proc_stats_t *procs, unsigned n, size_t offset)
{
    unsigned long long sum = 0;
    for (unsigned w = 0; w < n; w++)
        for (unsigned s = 0; s < LOAD(procs[w].nshards) && s < WSP_METRICS_MAX_SHARDS; s++)
            sum += atomic_load_explicit(
                (const wsp_counter_t *)(const void *)((const char *)&procs[w].shard[s] + offset),
                memory_order_relaxed);
    return sum;
}

/* One counter family summed over every shard, a series per label value: count counters
 * side by side from offset in wsp_shard_stats_t, labelled names[i]. */
static void render_labelled_family(wsp_buf_t *out, const wsp_proc_stats_t *procs, unsigned n,
                                   const char *name, const char *help, const char *label,
                                   const char *const *names, int count, size_t offset)
{
    wsp_buf_printf(out, "# HELP %s %s\n# TYPE %s counter\n", name, help, name);
    for (int i = 0; i < count; i++)
        wsp_buf_printf(out, "%s{%s=\"%s\"} %llu\n", name, label, names[i],
                       sum_shards(procs, n, offset + (size_t)i * sizeof(wsp_counter_t)));
}

/* One family with a value per shard; a counter of nanoseconds (in_ns) is rendered in
 * seconds. */
static void render_shard_family(wsp_buf_t *out, const wsp_proc_stats_t *procs, unsigned n,
                                const char *name, const char *type, const char *help, size_t offset,
                                int in_ns)
{
    wsp_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (unsigned w = 0; w < n; w++) {
        unsigned ns = (unsigned)LOAD(procs[w].nshards);
        for (unsigned s = 0; s < ns && s < WSP_METRICS_MAX_SHARDS; s++) {
            const wsp_counter_t *c =
                (const wsp_counter_t *)(const void *)((const char *)&procs[w].shard[s] + offset);
            unsigned long long v = atomic_load_explicit(c, memory_order_relaxed);
            if (in_ns)
                wsp_buf_printf(out, "%s{worker=\"%u\",shard=\"%u\"} %.9f\n", name, w, s,
                               (double)v / 1e9);
            else
                wsp_buf_printf(out, "%s{worker=\"%u\",shard=\"%u\"} %llu\n", name, w, s, v);
        }
    }
}

/* One family with a value per process. */
static void render_proc_family(wsp_buf_t *out, const wsp_proc_stats_t *procs, unsigned n,
                               const char *name, const char *type, const char *help, size_t offset)
{
    wsp_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    for (unsigned w = 0; w < n; w++) {
        const wsp_counter_t *c =
            (const wsp_counter_t *)(const void *)((const char *)&procs[w] + offset);
        wsp_buf_printf(out, "%s{worker=\"%u\"} %llu\n", name, w,
                       (unsigned long long)atomic_load_explicit(c, memory_order_relaxed));
    }
}

/* One metric family read from a fixed offset of the per-shard or per-process counters; ns:
 * a per-shard counter of nanoseconds, rendered in seconds. */
typedef struct metrics_family_s {
    const char *name, *type, *help;
    size_t offset;
    int ns;
} metrics_family_t;

#define FAMILY_SHARD(name, type, help, field)                                                      \
    {                                                                                              \
        name, type, help, offsetof(wsp_shard_stats_t, field), 0                                    \
    }
#define FAMILY_SHARD_NS(name, help, field)                                                         \
    {                                                                                              \
        name, "counter", help, offsetof(wsp_shard_stats_t, field), 1                               \
    }
#define FAMILY_PROC(name, type, help, field)                                                       \
    {                                                                                              \
        name, type, help, offsetof(wsp_proc_stats_t, field), 0                                     \
    }

static const metrics_family_t conn_families[] = {
    FAMILY_SHARD("wspush_connections", "gauge",
                 "Upgraded WebSocket connections receiving broadcasts.", open),
    FAMILY_SHARD("wspush_connections_accepted_total", "counter", "TCP connections accepted.",
                 accepted),
    FAMILY_SHARD("wspush_connections_upgraded_total", "counter",
                 "Connections upgraded to WebSocket (101 sent).", upgraded),
};

static const metrics_family_t send_families[] = {
    FAMILY_SHARD("wspush_broadcast_passes_total", "counter",
                 "Broadcast passes over a shard's connections.", broadcasts),
    FAMILY_SHARD("wspush_messages_written_total", "counter",
                 "Broadcast frames written (to the kernel or queued).", msgs_written),
    FAMILY_SHARD("wspush_bytes_written_total", "counter", "Bytes of broadcast frames written.",
                 bytes_written),
    FAMILY_SHARD("wspush_pings_total", "counter", "WebSocket pings sent.", pings),
    FAMILY_SHARD("wspush_uring_sends_total", "counter",
                 "Broadcast frames sent with batched io_uring sends (--io-uring).", uring_sends),
    FAMILY_SHARD("wspush_uring_submits_total", "counter",
                 "io_uring_enter calls that carried the batched sends.", uring_enters),
    FAMILY_SHARD("wspush_uring_short_sends_total", "counter",
                 "io_uring sends the socket did not take whole; the rest went through the libuv "
                 "write queue.",
                 uring_short),
    FAMILY_SHARD("wspush_auth_refreshes_total", "counter",
                 "Token refreshes that moved a connection's expiry.", auth_refreshes),
    FAMILY_SHARD("wspush_user_messages_total", "counter",
                 "User messages (POST /publish?user=) written to a connection.", user_msgs),
};

/* issue #17: history and recovery */
static const metrics_family_t hist_families[] = {
    FAMILY_SHARD("wspush_history_entries", "gauge",
                 "History entries a shard holds (each references a frame shared by every shard).",
                 hist_entries),
    FAMILY_SHARD("wspush_history_evicted_total", "counter",
                 "History entries dropped, oldest first, to stay within --history-max-bytes.",
                 hist_evicted),
    FAMILY_SHARD("wspush_framed_connections_total", "counter",
                 "Connections upgraded with the wspush.v1 subprotocol.", framed),
    FAMILY_SHARD("wspush_recovery_replayed_total", "counter",
                 "Messages replayed to connections that resumed with since=.", replayed),
    FAMILY_SHARD("wspush_recovery_waits_total", "counter",
                 "wspush.v1 connections that waited before their hello (the shard was behind, the "
                 "client ahead, or Redis had to be asked).",
                 recover_waits),
    FAMILY_SHARD("wspush_recovery_fetches_total", "counter",
                 "Of those, the ones that fetched positions or messages from Redis.",
                 recover_fetches),
};

static const char *const recovery_names[] = {"recovered", "not_recovered"};

static const metrics_family_t proc_families[] = {
    FAMILY_PROC("wspush_redis_up", "gauge", "1 while subscribed to Redis (0 without --redis).",
                redis_up),
    FAMILY_PROC("wspush_redis_dropped_total", "counter",
                "Redis messages dropped: not valid UTF-8 or over 64 KiB.", redis_dropped),
    FAMILY_PROC("wspush_up", "gauge", "1 while the worker process runs.", up),
    FAMILY_PROC("process_resident_memory_bytes", "gauge",
                "Resident memory of the worker process (sampled once a second).", rss_bytes),
    FAMILY_PROC("process_open_fds", "gauge",
                "Open file descriptors of the worker process (sampled every 10 s).", open_fds),
    FAMILY_PROC("wspush_redis_resolve_failures_total", "counter",
                "Resolutions of the --redis host that failed (each is retried with backoff).",
                redis_resolve_failures),
    FAMILY_PROC("wspush_history_bytes", "gauge",
                "Memory the history holds in the worker process: frames counted once, every "
                "shard's bookkeeping (sampled once a second; bound: --history-max-bytes).",
                hist_bytes),
};

/* TLS (issue #18): handshakes per worker by kind, failures by reason, in-progress handshakes,
 * sessions by send path, accept pauses, and each worker's path. */
static void render_tls(wsp_buf_t *out, const wsp_proc_stats_t *procs, unsigned n)
{
    static const char *const paths[] = {"off", "user_records", "ktls"};
    const char *reasons[WSP_TLS_FAIL_COUNT - 1];
    for (int i = 1; i < WSP_TLS_FAIL_COUNT; i++)
        reasons[i - 1] = wsp_tls_fail_name(i);
    wsp_buf_printf(out, "# HELP wspush_tls_handshakes_total TLS handshakes completed, by kind "
                        "(full, or resumed from a session ticket).\n"
                        "# TYPE wspush_tls_handshakes_total counter\n");
    for (unsigned w = 0; w < n; w++) {
        unsigned long long full = 0, resumed = 0;
        for (unsigned s = 0; s < LOAD(procs[w].nshards) && s < WSP_METRICS_MAX_SHARDS; s++) {
            full += LOAD(procs[w].shard[s].tls_full);
            resumed += LOAD(procs[w].shard[s].tls_resumed);
        }
        wsp_buf_printf(out,
                       "wspush_tls_handshakes_total{worker=\"%u\",kind=\"full\"} %llu\n"
                       "wspush_tls_handshakes_total{worker=\"%u\",kind=\"resumed\"} %llu\n",
                       w, full, w, resumed);
    }
    render_labelled_family(out, procs, n, "wspush_tls_handshake_failures_total",
                           "TLS connections closed before their handshake completed, or for a "
                           "renegotiation attempt, by reason.",
                           "reason", reasons, WSP_TLS_FAIL_COUNT - 1,
                           offsetof(wsp_shard_stats_t, tls_fail) + sizeof(wsp_counter_t));
    render_labelled_family(out, procs, n, "wspush_tls_sessions_total",
                           "TLS sessions established, by how their records are sent.", "path",
                           paths + 1, 2, offsetof(wsp_shard_stats_t, tls_user));
    wsp_buf_printf(out,
                   "# HELP wspush_tls_handshakes_in_progress Accepted TLS connections whose "
                   "handshake has not ended (bounded by --tls-max-handshakes).\n"
                   "# TYPE wspush_tls_handshakes_in_progress gauge\n"
                   "wspush_tls_handshakes_in_progress %llu\n"
                   "# HELP wspush_tls_accept_paused_total Times a shard stopped accepting because "
                   "--tls-max-handshakes handshakes were in progress.\n"
                   "# TYPE wspush_tls_accept_paused_total counter\n"
                   "wspush_tls_accept_paused_total %llu\n",
                   sum_shards(procs, n, offsetof(wsp_shard_stats_t, tls_handshaking)),
                   sum_shards(procs, n, offsetof(wsp_shard_stats_t, tls_paused)));
    wsp_buf_printf(out, "# HELP wspush_tls_path How the worker sends TLS records: 1 for the "
                        "path it uses (off, user_records or ktls).\n"
                        "# TYPE wspush_tls_path gauge\n");
    for (unsigned w = 0; w < n; w++)
        for (unsigned p = 0; p < 3; p++)
            wsp_buf_printf(out, "wspush_tls_path{worker=\"%u\",path=\"%s\"} %d\n", w, paths[p],
                           LOAD(procs[w].tls_path) == p);
}

/* permessage-deflate (issue #19). */
static const metrics_family_t deflate_families[] = {
    FAMILY_SHARD("wspush_deflate_connections_total", "counter",
                 "Connections upgraded with permessage-deflate.", deflate_upgraded),
    FAMILY_SHARD("wspush_deflate_broadcasts_total", "counter",
                 "Broadcast payloads compressed: once per broadcast and process, by the first "
                 "shard that needed it.",
                 deflate_builds),
    FAMILY_SHARD("wspush_deflate_input_bytes_total", "counter",
                 "Payload bytes of the compressed broadcasts, before compression.",
                 deflate_in_bytes),
    FAMILY_SHARD("wspush_deflate_output_bytes_total", "counter",
                 "Payload bytes of the compressed broadcasts, after compression.",
                 deflate_out_bytes),
    FAMILY_SHARD_NS("wspush_deflate_compress_seconds_total",
                    "Time spent compressing broadcast payloads.", deflate_ns),
    FAMILY_SHARD("wspush_deflate_messages_written_total", "counter",
                 "Compressed broadcast frames written (part of wspush_messages_written_total).",
                 deflate_written),
    FAMILY_SHARD("wspush_inflated_messages_total", "counter",
                 "Compressed client messages inflated.", inflated),
};

int wsp_metrics_render(const wsp_proc_stats_t *procs, unsigned n, wsp_buf_t *out)
{
    for (size_t i = 0; i < WSP_ARRAY_SIZE(conn_families); i++) {
        const metrics_family_t *f = &conn_families[i];
        render_shard_family(out, procs, n, f->name, f->type, f->help, f->offset, f->ns);
    }
    render_labelled_family(out, procs, n, "wspush_connections_closed_total",
                           "Connections closed, by reason.", "reason", close_names, WSP_CLOSE__N,
                           offsetof(wsp_shard_stats_t, closed));
    render_labelled_family(out, procs, n, "wspush_handshake_failures_total",
                           "Upgrade requests answered with an HTTP error, by status.", "status",
                           hs_names, WSP_HS__N, offsetof(wsp_shard_stats_t, hs_failed));
    render_labelled_family(out, procs, n, "wspush_auth_failures_total",
                           "Upgrades refused by token auth (401, or 403 for a channel the token "
                           "does not grant), by reason.",
                           "reason", auth_names, WSP_AUTH_FAIL__N,
                           offsetof(wsp_shard_stats_t, auth_failed));
    wsp_buf_printf(out,
                   "# HELP wspush_slow_consumer_closes_total Connections given close 1008 "
                   "for exceeding --max-pending (counted when decided).\n"
                   "# TYPE wspush_slow_consumer_closes_total counter\n"
                   "wspush_slow_consumer_closes_total %llu\n",
                   sum_shards(procs, n, offsetof(wsp_shard_stats_t, slow_consumers)));
    for (size_t i = 0; i < WSP_ARRAY_SIZE(send_families); i++) {
        const metrics_family_t *f = &send_families[i];
        render_shard_family(out, procs, n, f->name, f->type, f->help, f->offset, f->ns);
    }
    render_proc_family(out, procs, n, "wspush_broadcasts_total", "counter",
                       "Broadcasts started by the process.", offsetof(wsp_proc_stats_t, publishes));

    wsp_buf_printf(out, "# HELP wspush_broadcast_duration_seconds One broadcast, from the first "
                        "shard's start to the last shard's end.\n"
                        "# TYPE wspush_broadcast_duration_seconds histogram\n");
    for (unsigned w = 0; w < n; w++) {
        unsigned long long cum = 0;
        for (int b = 0; b < WSP_METRICS_BCAST_BUCKETS; b++) {
            cum += LOAD(procs[w].bcast_bucket[b]);
            wsp_buf_printf(out,
                           "wspush_broadcast_duration_seconds_bucket{worker=\"%u\",le=\"%g\"} "
                           "%llu\n",
                           w, wsp_metrics_bcast_bounds[b], cum);
        }
        wsp_buf_printf(out,
                       "wspush_broadcast_duration_seconds_bucket{worker=\"%u\",le=\"+Inf\"} %llu\n"
                       "wspush_broadcast_duration_seconds_sum{worker=\"%u\"} %.6f\n"
                       "wspush_broadcast_duration_seconds_count{worker=\"%u\"} %llu\n",
                       w, LOAD(procs[w].bcast_count), w, (double)LOAD(procs[w].bcast_sum_us) / 1e6,
                       w, LOAD(procs[w].bcast_count));
    }
    for (size_t i = 0; i < WSP_ARRAY_SIZE(hist_families); i++) {
        const metrics_family_t *f = &hist_families[i];
        render_shard_family(out, procs, n, f->name, f->type, f->help, f->offset, f->ns);
    }
    render_labelled_family(out, procs, n, "wspush_recoveries_total",
                           "Channels wspush.v1 clients asked to resume, by result.", "result",
                           recovery_names, 2, offsetof(wsp_shard_stats_t, recovered));
    for (size_t i = 0; i < WSP_ARRAY_SIZE(proc_families); i++) {
        const metrics_family_t *f = &proc_families[i];
        render_proc_family(out, procs, n, f->name, f->type, f->help, f->offset);
    }
    render_tls(out, procs, n);
    for (size_t i = 0; i < WSP_ARRAY_SIZE(deflate_families); i++) {
        const metrics_family_t *f = &deflate_families[i];
        render_shard_family(out, procs, n, f->name, f->type, f->help, f->offset, f->ns);
    }
    return out->oom ? -ENOMEM : 0;
}

int wsp_metrics_stats_json(const wsp_proc_stats_t *procs, unsigned n, int draining, wsp_buf_t *out)
{
    wsp_buf_printf(out, "{\"draining\":%s,\"connections\":%llu,\"workers\":[",
                   draining ? "true" : "false", (unsigned long long)wsp_metrics_sum_open(procs, n));
    for (unsigned w = 0; w < n; w++) {
        const wsp_proc_stats_t *p = &procs[w];
        wsp_buf_printf(out,
                       "%s{\"worker\":%u,\"pid\":%llu,\"up\":%llu,\"rss_bytes\":%llu,"
                       "\"open_fds\":%llu,\"redis_up\":%llu,\"broadcasts\":%llu,\"shards\":[",
                       w ? "," : "", w, LOAD(p->pid), LOAD(p->up), LOAD(p->rss_bytes),
                       LOAD(p->open_fds), LOAD(p->redis_up), LOAD(p->publishes));
        unsigned ns = (unsigned)LOAD(p->nshards);
        for (unsigned s = 0; s < ns && s < WSP_METRICS_MAX_SHARDS; s++) {
            const wsp_shard_stats_t *st = &p->shard[s];
            unsigned long long closed = 0;
            for (int r = 0; r < WSP_CLOSE__N; r++)
                closed += LOAD(st->closed[r]);
            wsp_buf_printf(out,
                           "%s{\"shard\":%u,\"connections\":%llu,\"accepted\":%llu,"
                           "\"closed\":%llu,\"messages_written\":%llu}",
                           s ? "," : "", s, LOAD(st->open), LOAD(st->accepted), closed,
                           LOAD(st->msgs_written));
        }
        wsp_buf_printf(out, "]}");
    }
    wsp_buf_printf(out, "]}\n");
    return out->oom ? -ENOMEM : 0;
}

int wsp_metrics_close_reason(int code)
{
    switch (code) {
    case 1002:
        return WSP_CLOSE_PROTOCOL;
    case 1007:
        return WSP_CLOSE_INVALID_UTF8;
    case 1009:
        return WSP_CLOSE_TOO_BIG;
    case 1008:
        return WSP_CLOSE_SLOW_CONSUMER;
    case 1001:
        return WSP_CLOSE_SHUTDOWN;
    default:
        return WSP_CLOSE_CLIENT; /* an echo of the client's own close */
    }
}

int wsp_metrics_hs_index(int status)
{
    switch (status) {
    case 404:
        return WSP_HS_404;
    case 405:
        return WSP_HS_405;
    case 426:
        return WSP_HS_426;
    case 431:
        return WSP_HS_431;
    case 503:
        return WSP_HS_503;
    case 401:
        return WSP_HS_401;
    case 403:
        return WSP_HS_403;
    default:
        return WSP_HS_400;
    }
}
