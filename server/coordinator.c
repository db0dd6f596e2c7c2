#include "coordinator.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "alloc.h"
#include "channels.h"
#include "frame.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "redis.h"
#include "shard.h"

/* In a supervised worker the supervisor's shared metrics memory is this descriptor. */
#define WSP_WORKER_METRICS_FD 4

typedef struct wsp_coord_s wsp_coord_t;

struct wsp_bcast_s {
    wsp_msg_t *msg;      /* one reference, dropped when every shard is done */
    wsp_coord_t *co;     /* whom the last shard wakes */
    unsigned shards;     /* shards it was posted to */
    atomic_uint pending; /* shards still walking their connections */
    atomic_uint_fast64_t first_start, last_end, written, failed;
    wsp_bcast_t *next; /* coordinator's in-flight list */
    uint8_t chan_len;  /* 0 = the default channel */
    char chan[WSP_CHANNEL_NAME_MAX + 1];
};

struct wsp_coord_s {
    uv_loop_t loop;
    uv_signal_t sig_usr1, sig_int, sig_term;
    uv_timer_t tick;
    uv_timer_t sample; /* metrics gauges once a second */
    unsigned samples;
    uv_async_t done;   /* a broadcast finished */
    uv_async_t exited; /* a shard's thread is ending */
    const wsp_config_t *cfg;
    wsp_shard_t **shards;
    unsigned nshards;
    unsigned joined;
    uint64_t seq;
    uint64_t next_tick_ms; /* wall-clock target of the armed tick */
    wsp_bcast_t *inflight;
    int stopping;
    wsp_limits_t lim;
    wsp_redis_t *redis; /* NULL without --redis */
    wsp_admin_t *admin; /* NULL without --admin or in a supervised worker */
    uv_pipe_t sup;      /* to the supervisor, in a supervised worker */
    int sup_open;
    wsp_ipc_reader_t sup_reader;
    wsp_proc_stats_t *stats; /* this process's counters: own memory, or the supervisor's */
    int stats_mapped;
    size_t stats_map_len;
    void *stats_map;
};

wsp_msg_t *wsp_bcast_msg(const wsp_bcast_t *b) { return b->msg; }

const char *wsp_bcast_channel(const wsp_bcast_t *b, size_t *len)
{
    *len = b->chan_len;
    return b->chan_len ? b->chan : NULL;
}

static void atomic_min_u64(atomic_uint_fast64_t *a, uint64_t v)
{
    uint_fast64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v < cur && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

static void atomic_max_u64(atomic_uint_fast64_t *a, uint64_t v)
{
    uint_fast64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

void wsp_bcast_done(wsp_bcast_t *b, uint64_t start_ns, uint64_t end_ns, uint64_t written,
                    uint64_t failed)
{
    wsp_coord_t *co = b->co; /* read before the release below: b may be freed after it */
    if (start_ns) {
        atomic_min_u64(&b->first_start, start_ns);
        atomic_max_u64(&b->last_end, end_ns);
    }
    atomic_fetch_add_explicit(&b->written, written, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->failed, failed, memory_order_relaxed);
    /* acq_rel: our updates above happen-before the coordinator's read of them. */
    if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1) {
        int rv = uv_async_send(&co->done);
        (void)rv; /* only fails for a non-async handle */
    }
}

static void bcast_free(wsp_bcast_t *b)
{
    wsp_msg_unref(b->msg);
    free(b);
}

/* Logs and frees every finished broadcast. Coordinator thread. */
static void coord_reap(wsp_coord_t *co)
{
    wsp_bcast_t **pp = &co->inflight;
    while (*pp) {
        wsp_bcast_t *b = *pp;
        if (atomic_load_explicit(&b->pending, memory_order_acquire) != 0) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        uint64_t first = atomic_load_explicit(&b->first_start, memory_order_relaxed);
        uint64_t last = atomic_load_explicit(&b->last_end, memory_order_relaxed);
        uint64_t ns = last > first && first != UINT64_MAX ? last - first : 0;
        wsp_metrics_bcast_observe(co->stats, ns);
        WSP_LOG(WSP_LOG_INFO,
                "event=broadcast seq=%" PRIu64 " channel=%s shards=%u written=%" PRIu64
                " failed=%" PRIu64 " total_ms=%.3f",
                b->msg->seq, b->chan_len ? b->chan : WSP_CHANNEL_DEFAULT, b->shards,
                (uint64_t)atomic_load_explicit(&b->written, memory_order_relaxed),
                (uint64_t)atomic_load_explicit(&b->failed, memory_order_relaxed), (double)ns / 1e6);
        bcast_free(b);
    }
}

static void on_coord_done(uv_async_t *a) { coord_reap(WSP_CONTAINER_OF(a, wsp_coord_t, done)); }

/* Encodes payload once as a text frame and hands the same bytes to every shard. */
static int coord_publish(wsp_coord_t *co, const char *chan, size_t chan_len, const uint8_t *payload,
                         size_t len, uint64_t seq, const char *reason)
{
    if (chan_len > WSP_CHANNEL_NAME_MAX)
        return -EINVAL;
    wsp_msg_t *m = wsp_frame_msg(WSP_OP_TEXT, payload, len);
    wsp_bcast_t *b = malloc(sizeof(*b));
    if (m == NULL || b == NULL) {
        WSP_LOG(WSP_LOG_ERROR, "event=broadcast_skipped reason=%s error=ENOMEM", reason);
        if (m)
            wsp_msg_unref(m);
        free(b);
        return -ENOMEM;
    }
    m->seq = seq;
    b->msg = m;
    b->co = co;
    b->shards = co->nshards;
    b->chan_len = (uint8_t)chan_len;
    if (chan_len)
        memcpy(b->chan, chan, chan_len);
    b->chan[chan_len] = '\0';
    atomic_init(&b->pending, co->nshards);
    atomic_init(&b->first_start, UINT64_MAX);
    atomic_init(&b->last_end, 0);
    atomic_init(&b->written, 0);
    atomic_init(&b->failed, 0);
    b->next = co->inflight;
    co->inflight = b;
    atomic_fetch_add_explicit(&co->stats->publishes, 1, memory_order_relaxed);
    WSP_LOG(WSP_LOG_DEBUG, "event=broadcast_start seq=%" PRIu64 " reason=%s bytes=%zu", seq, reason,
            len);
    unsigned skipped = 0;
    for (unsigned i = 0; i < co->nshards; i++) {
        int rv = wsp_shard_post(co->shards[i], b);
        if (rv < 0) {
            /* The shard is 64 broadcasts behind: it would only fall further behind. */
            WSP_LOG(WSP_LOG_WARN, "event=broadcast_shard_skipped seq=%" PRIu64 " shard=%u error=%s",
                    seq, i, uv_err_name(rv));
            skipped++;
        }
    }
    if (skipped && atomic_fetch_sub_explicit(&b->pending, skipped, memory_order_acq_rel) == skipped)
        coord_reap(co);
    return 0;
}

/* The time message, numbered by this process. */
static void coord_broadcast(wsp_coord_t *co, const char *reason)
{
    char payload[96];
    co->seq++;
    int n = snprintf(payload, sizeof(payload), "{\"time\":%" PRIu64 ",\"seq\":%" PRIu64 "}",
                     wsp_net_epoch_ms(), co->seq);
    (void)coord_publish(co, NULL, 0, (const uint8_t *)payload, (size_t)n, co->seq, reason);
}

static void on_coord_redis(void *user, const char *chan, size_t chan_len, const uint8_t *payload,
                           size_t len)
{
    wsp_coord_t *co = user;
    if (co->stopping)
        return;
    co->seq++;
    (void)coord_publish(co, chan, chan_len, payload, len, co->seq, "redis");
}

static void coord_arm_tick(wsp_coord_t *co);

static void on_coord_tick(uv_timer_t *t)
{
    wsp_coord_t *co = WSP_CONTAINER_OF(t, wsp_coord_t, tick);
    uint64_t now = wsp_net_epoch_ms();
    if (now < co->next_tick_ms) { /* the monotonic timer ran ahead of the wall clock */
        int rv = uv_timer_start(&co->tick, on_coord_tick, co->next_tick_ms - now, 0);
        if (rv < 0)
            WSP_LOG(WSP_LOG_ERROR, "event=tick_failed error=%s", uv_err_name(rv));
        return;
    }
    coord_broadcast(co, "tick");
    coord_arm_tick(co);
}

/* Arms the next tick on the next wall-clock multiple of the interval (:00 for 60 s). */
static void coord_arm_tick(wsp_coord_t *co)
{
    if (co->cfg->interval == 0 || co->stopping || co->sup_open)
        return; /* a supervised worker gets its ticks from the supervisor */
    uint64_t per = (uint64_t)co->cfg->interval * 1000u;
    uint64_t now = wsp_net_epoch_ms();
    co->next_tick_ms = (now / per + 1) * per;
    int rv = uv_timer_start(&co->tick, on_coord_tick, co->next_tick_ms - now, 0);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=tick_failed error=%s", uv_err_name(rv));
}

static void on_coord_sample(uv_timer_t *t)
{
    wsp_coord_t *co = WSP_CONTAINER_OF(t, wsp_coord_t, sample);
    /* RSS every second (one small read); open fds every 10 s (a walk of /proc/self/fd). */
    int rv = wsp_metrics_sample_self(co->stats, co->samples++ % 10 == 0);
    (void)rv; /* /proc unreadable: the gauges keep their last value */
    atomic_store_explicit(&co->stats->redis_up, co->redis ? (uint64_t)wsp_redis_up(co->redis) : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&co->stats->redis_dropped, co->redis ? wsp_redis_dropped(co->redis) : 0,
                          memory_order_relaxed);
}

static void coord_stop(wsp_coord_t *co, const char *why);

static void on_coord_sup_write(uv_write_t *req, int status)
{
    (void)status; /* a dead supervisor shows as EOF on the read side */
    free(req);
}

/* Sends a packet to the supervisor. Coordinator thread. */
static void coord_send_supervisor(wsp_coord_t *co, uint8_t type, uint64_t seq,
                                  const uint8_t *payload, uint32_t len)
{
    uv_write_t *req = malloc(sizeof(*req) + WSP_IPC_HDR + len);
    if (req == NULL) {
        WSP_LOG(WSP_LOG_ERROR, "event=supervisor_write_failed error=ENOMEM");
        return;
    }
    uint8_t *p = (uint8_t *)(req + 1);
    wsp_ipc_header(p, type, seq, len);
    if (len)
        memcpy(p + WSP_IPC_HDR, payload, len);
    uv_buf_t b = uv_buf_init((char *)p, WSP_IPC_HDR + len);
    int rv = uv_write(req, (uv_stream_t *)&co->sup, &b, 1, on_coord_sup_write);
    if (rv < 0) {
        free(req);
        WSP_LOG(WSP_LOG_ERROR, "event=supervisor_write_failed error=%s", uv_err_name(rv));
    }
}

static void on_coord_sup_packet(void *user, uint8_t type, uint64_t seq, const uint8_t *payload,
                                uint32_t len)
{
    wsp_coord_t *co = user;
    const char *chan;
    size_t chan_len;
    const uint8_t *msg;
    size_t msg_len;
    if (type != WSP_IPC_BROADCAST || co->stopping)
        return;
    if (wsp_ipc_split_channel(payload, len, &chan, &chan_len, &msg, &msg_len) < 0) {
        WSP_LOG(WSP_LOG_ERROR, "event=supervisor_protocol_error reason=channel");
        return;
    }
    if (seq > co->seq)
        co->seq = seq;
    (void)coord_publish(co, chan, chan_len, msg, msg_len, seq, "supervisor");
}

static void on_coord_sup_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char rbuf[16384]; /* coordinator thread only */
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void on_coord_sup_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    wsp_coord_t *co = WSP_CONTAINER_OF(s, wsp_coord_t, sup);
    if (nread == 0)
        return;
    if (nread < 0) {
        /* The supervisor is gone: a worker never outlives it. */
        WSP_LOG(WSP_LOG_WARN, "event=supervisor_lost error=%s", uv_err_name((int)nread));
        coord_stop(co, "supervisor_lost");
        return;
    }
    if (wsp_ipc_feed(&co->sup_reader, (const uint8_t *)buf->base, (size_t)nread,
                     on_coord_sup_packet, co) < 0) {
        WSP_LOG(WSP_LOG_ERROR, "event=supervisor_protocol_error");
        coord_stop(co, "supervisor_protocol_error");
    }
}

/* --- the admin API of a single-process server --- */

static int on_admin_publish(void *user, const char *channel, size_t channel_len,
                            const uint8_t *payload, size_t len, uint64_t *seq, uint64_t *conns)
{
    wsp_coord_t *co = user;
    if (co->stopping)
        return -EAGAIN;
    *conns = wsp_metrics_sum_open(co->stats, 1);
    if (co->redis) { /* through Redis, so that every process and machine delivers it */
        *seq = 0;
        return wsp_redis_publish(co->redis, channel, channel_len, payload, len);
    }
    co->seq++;
    *seq = co->seq;
    return coord_publish(co, channel, channel_len, payload, len, co->seq, "admin");
}

static int on_admin_metrics(void *user, wsp_buf_t *out)
{
    wsp_coord_t *co = user;
    return wsp_metrics_render(co->stats, 1, out);
}

static int on_admin_stats(void *user, wsp_buf_t *out)
{
    wsp_coord_t *co = user;
    return wsp_metrics_stats_json(co->stats, 1, co->stopping, out);
}

static int on_admin_healthy(void *user) { return !((wsp_coord_t *)user)->stopping; }

static const wsp_admin_ops_t wsp_coord_admin_ops = {
    .publish = on_admin_publish,
    .metrics = on_admin_metrics,
    .stats = on_admin_stats,
    .healthy = on_admin_healthy,
};

static void coord_close_walk(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

/* Every shard has ended: join them, report the last broadcasts, close our handles. */
static void coord_finish(wsp_coord_t *co)
{
    for (unsigned i = 0; i < co->nshards; i++) {
        int jrv = wsp_shard_join(co->shards[i]);
        if (jrv < 0)
            WSP_LOG(WSP_LOG_ERROR, "event=shard_join_failed shard=%u error=%s", i,
                    uv_err_name(jrv));
    }
    co->joined = co->nshards;
    coord_reap(co);
    wsp_admin_stop(co->admin); /* /healthz answered 503 until here */
    co->admin = NULL;
    uv_walk(&co->loop, coord_close_walk, NULL);
}

static void on_coord_exited(uv_async_t *a)
{
    wsp_coord_t *co = WSP_CONTAINER_OF(a, wsp_coord_t, exited);
    for (unsigned i = 0; i < co->nshards; i++)
        if (!wsp_shard_exited(co->shards[i]))
            return;
    if (co->joined == 0)
        coord_finish(co);
}

static void coord_stop(wsp_coord_t *co, const char *why)
{
    if (co->stopping)
        return;
    co->stopping = 1;
    WSP_LOG(WSP_LOG_INFO, "event=shutdown signal=%s drain_seconds=%u", why, co->cfg->drain_seconds);
    (void)uv_timer_stop(&co->tick); /* cannot fail for an initialised timer */
    wsp_redis_stop(co->redis);
    co->redis = NULL;
    if (co->sup_open)
        (void)uv_read_stop((uv_stream_t *)&co->sup); /* cannot fail on an open pipe */
    /* The loop keeps running (the admin API answers /healthz 503) until every shard has
     * drained and ended: on_coord_exited() then finishes. */
    for (unsigned i = 0; i < co->nshards; i++)
        wsp_shard_stop(co->shards[i]);
}

static void on_coord_signal(uv_signal_t *s, int signum)
{
    wsp_coord_t *co = s->data;
    if (signum == SIGUSR1) {
        if (co->stopping)
            return;
        if (co->sup_open) /* the supervisor numbers broadcasts for every worker */
            coord_send_supervisor(co, WSP_IPC_TRIGGER, 0, NULL, 0);
        else
            coord_broadcast(co, "sigusr1");
        return;
    }
    coord_stop(co, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

static int coord_signal(wsp_coord_t *co, uv_signal_t *s, int signum)
{
    int rv = uv_signal_init(&co->loop, s);
    if (rv < 0)
        return rv;
    s->data = co;
    return uv_signal_start(s, on_coord_signal, signum);
}

/* Binds one reuseport socket per shard on one port: with --port 0 the first picks it.
 * TCP_NODELAY and keepalive are set here once: accepted sockets inherit them. */
static int coord_bind_all(const wsp_config_t *cfg, int *fds, int *port)
{
    *port = cfg->port;
    for (unsigned i = 0; i < cfg->threads; i++) {
        int rv = wsp_net_bind_reuseport(cfg->bind, *port, &fds[i]);
        if (rv == 0)
            rv = wsp_net_tune_listener(fds[i], cfg->tcp_keepalive);
        if (rv == 0 && *port == 0) {
            rv = wsp_net_local_port(fds[i]);
            if (rv > 0) {
                *port = rv;
                rv = 0;
            }
        }
        if (rv < 0) {
            close(fds[i]);
            while (i-- > 0)
                close(fds[i]);
            return rv;
        }
    }
    return 0;
}

/* The counters: this process's own memory, or its slot in the supervisor's memfd. */
static int coord_stats_init(wsp_coord_t *co)
{
    const wsp_config_t *cfg = co->cfg;
    if (cfg->worker_fd >= 0) {
        size_t len = (size_t)(cfg->worker_id + 1) * sizeof(wsp_proc_stats_t);
        void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, WSP_WORKER_METRICS_FD, 0);
        if (p != MAP_FAILED) {
            close(WSP_WORKER_METRICS_FD);
            co->stats_map = p;
            co->stats_map_len = len;
            co->stats = (wsp_proc_stats_t *)p + cfg->worker_id;
            co->stats_mapped = 1;
            wsp_metrics_reset_gauges(co->stats); /* a restarted worker reuses its slot */
        }
    }
    if (co->stats == NULL) {
        co->stats = calloc(1, sizeof(*co->stats));
        if (co->stats == NULL)
            return -ENOMEM;
    }
    atomic_store_explicit(&co->stats->pid, (uint64_t)getpid(), memory_order_relaxed);
    atomic_store_explicit(&co->stats->nshards, cfg->threads, memory_order_relaxed);
    atomic_store_explicit(&co->stats->up, 1, memory_order_relaxed);
    return 0;
}

static void coord_stats_free(wsp_coord_t *co)
{
    if (co->stats == NULL)
        return;
    atomic_store_explicit(&co->stats->up, 0, memory_order_relaxed);
    if (co->stats_mapped) {
        wsp_metrics_reset_gauges(co->stats);
        (void)munmap(co->stats_map, co->stats_map_len); /* cannot fail for our own mapping */
    } else {
        free(co->stats);
    }
    co->stats = NULL;
}

int wsp_bcast_run(const wsp_config_t *cfg, uint64_t max_conns, uint64_t fd_budget)
{
    if (cfg->threads > WSP_METRICS_MAX_SHARDS)
        return -EINVAL;
    wsp_coord_t *co = wsp_xcalloc(1, sizeof(*co));
    co->cfg = cfg;
    co->lim.max_conns = max_conns;
    co->lim.fd_budget = fd_budget;
    atomic_init(&co->lim.conns, 0);
    atomic_init(&co->lim.fds, 0);
    int rv = coord_stats_init(co);
    if (rv < 0) {
        free(co);
        return rv;
    }
    int *fds = wsp_xcalloc(cfg->threads, sizeof(int));
    co->shards = wsp_xcalloc(cfg->threads, sizeof(*co->shards));
    int port;
    rv = coord_bind_all(cfg, fds, &port); /* closes what it opened when it fails */
    if (rv == 0 && (rv = uv_loop_init(&co->loop)) < 0)
        for (unsigned i = 0; i < cfg->threads; i++)
            close(fds[i]);
    if (rv < 0) {
        free(fds);
        free(co->shards);
        coord_stats_free(co);
        free(co);
        return rv;
    }
    /* The exit notification must exist before any shard can end. */
    if ((rv = uv_async_init(&co->loop, &co->exited, on_coord_exited)) < 0) {
        for (unsigned i = 0; i < cfg->threads; i++)
            close(fds[i]);
        free(fds);
        goto out;
    }
    for (unsigned i = 0; i < cfg->threads; i++) {
        if (rv == 0)
            rv = wsp_shard_new(&co->shards[i], i, cfg, fds[i], &co->lim, &co->stats->shard[i],
                               &co->exited);
        else
            close(fds[i]); /* an earlier shard failed: nobody will own it */
        if (rv == 0)
            co->nshards++;
    }
    free(fds);
    if (rv < 0)
        goto out;
    if ((rv = uv_async_init(&co->loop, &co->done, on_coord_done)) < 0 ||
        (rv = uv_timer_init(&co->loop, &co->tick)) < 0 ||
        (rv = uv_timer_init(&co->loop, &co->sample)) < 0 ||
        (rv = uv_timer_start(&co->sample, on_coord_sample, 0, 1000)) < 0 ||
        (rv = coord_signal(co, &co->sig_usr1, SIGUSR1)) < 0 ||
        (rv = coord_signal(co, &co->sig_int, SIGINT)) < 0 ||
        (rv = coord_signal(co, &co->sig_term, SIGTERM)) < 0)
        goto out;
    if (cfg->worker_fd >= 0) {
        if ((rv = uv_pipe_init(&co->loop, &co->sup, 0)) < 0 ||
            (rv = uv_pipe_open(&co->sup, cfg->worker_fd)) < 0 ||
            (rv = uv_read_start((uv_stream_t *)&co->sup, on_coord_sup_alloc, on_coord_sup_read)) <
                0)
            goto out;
        co->sup_open = 1;
    } else if (cfg->admin_host[0] != '\0') {
        if ((rv = wsp_admin_start(&co->admin, &co->loop, cfg->admin_host, cfg->admin_port,
                                  cfg->admin_token[0] ? cfg->admin_token : NULL,
                                  &wsp_coord_admin_ops, co)) < 0) {
            rv = -(WSP_EADMIN - rv); /* main() names the admin port */
            goto out;
        }
    }
    if (cfg->redis_host[0] != '\0' &&
        (rv = wsp_redis_start(&co->redis, &co->loop, cfg, on_coord_redis, co)) < 0)
        goto out;
    unsigned started = 0;
    for (; started < co->nshards; started++)
        if ((rv = wsp_shard_start(co->shards[started])) < 0)
            break;
    if (rv == 0) {
        WSP_LOG(WSP_LOG_INFO,
                "event=listening bind=%s port=%d threads=%u path=%s interval=%u admin_port=%d",
                cfg->bind, port, co->nshards, cfg->path, cfg->interval,
                co->admin ? wsp_admin_port(co->admin) : 0);
        coord_arm_tick(co);
        (void)uv_run(&co->loop, UV_RUN_DEFAULT); /* until coord_finish() closed everything */
    } else {
        /* Some shards run: stop them and wait the ordinary way. */
        coord_stop(co, "startup_failed");
        for (unsigned i = 0; i < started; i++)
            (void)wsp_shard_join(co->shards[i]);
        co->joined = co->nshards;
    }
    if (co->joined == 0 && started == co->nshards && rv == 0) /* the loop ended early */
        coord_finish(co);
out:
    wsp_admin_stop(co->admin);
    co->admin = NULL;
    wsp_redis_stop(co->redis); /* on a failed start; coord_stop() did it otherwise */
    co->redis = NULL;
    wsp_ipc_reset(&co->sup_reader);
    for (unsigned i = 0; i < co->nshards; i++)
        wsp_shard_free(co->shards[i]);
    while (co->inflight) { /* only on a failed start */
        wsp_bcast_t *b = co->inflight;
        co->inflight = b->next;
        bcast_free(b);
    }
    uv_walk(&co->loop, coord_close_walk, NULL);
    (void)uv_run(&co->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    int crv = uv_loop_close(&co->loop);
    if (crv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=loop_close_failed error=%s", uv_err_name(crv));
    if (rv == 0)
        WSP_LOG(WSP_LOG_INFO, "event=stopped");
    coord_stats_free(co);
    free(co->shards);
    free(co);
    return rv;
}
