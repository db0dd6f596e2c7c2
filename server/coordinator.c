#include "coordinator.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "alloc.h"
#include "auth.h"
#include "bcast.h"
#include "chan.h"
#include "channels.h"
#include "fetch.h"
#include "link.h"
#include "liveup.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "publisher.h"
#include "reexec.h"
#include "shard.h"

/* In a supervised worker the supervisor's shared metrics memory is this descriptor. */
#define WSP_WORKER_METRICS_FD 4

typedef struct wsp_coord_s {
    uv_loop_t loop;
    uv_timer_t sample; /* metrics gauges once a second */
    unsigned samples;
    uv_async_t done;   /* a broadcast finished */
    uv_async_t exited; /* a shard's thread is ending */
    const wsp_config_t *cfg;
    int loop_open;
    int port;
    int *fds;             /* bound listeners not yet handed to a shard (-1 once handed) */
    wsp_shard_t **shards; /* nshards created, started of them running, joined once ended */
    unsigned nshards, started, joined;
    int stopping;
    wsp_bcast_t *inflight;
    wsp_limits_t lim;
    wsp_tlsterm_t *tls; /* TLS (issue #18): main()'s; NULL for plain ws:// */
    wsp_pub_t *pub;
    wsp_auth_t *auth; /* token auth (issue #16); NULL without --auth-jwt-alg */
    wsp_link_t sup;   /* to the supervisor, in a supervised worker */
    int sup_open;
    wsp_proc_stats_t *stats; /* this process's counters: own memory, or the supervisor's */
    int stats_mapped;
    size_t stats_map_len;
    void *stats_map;
    /* issue #17: history, positions and Redis fetches, shared with the shards */
    wsp_chan_hist_t hist;
    wsp_chan_pos_t pos;
    int pos_init;
    wsp_resume_queue_t fetchq; /* shards -> coordinator (Redis only) */
    uv_async_t fetch_wake;
    int fetch_init;
    wsp_liveup_t up; /* live upgrade (issue #20) */
} wsp_coord_t;

/* --- broadcasts --- */

/* Logs a finished broadcast and records its duration. */
static void on_coord_reaped(void *user, const wsp_bcast_t *b, const wsp_bcast_result_t *r)
{
    wsp_coord_t *co = user;
    size_t clen;
    const char *chan = wsp_bcast_channel(b, &clen);
    uint64_t tag;
    if (wsp_bcast_user(b, NULL, &tag)) { /* a user's message: its delivery report */
        WSP_LOG(WSP_LOG_INFO,
                "event=user_message tag=%" PRIx64 " shards=%u written=%" PRIu64 " failed=%" PRIu64
                " total_ms=%.3f",
                tag, r->shards, r->written, r->failed, (double)r->ns / 1e6);
        wsp_pub_user_reached(co->pub, tag, r->written);
        return;
    }
    if (wsp_bcast_pos(b)->silent)
        return; /* written to nobody (an epoch, a live upgrade's history): not a broadcast */
    wsp_metrics_bcast_observe(co->stats, r->ns);
    WSP_LOG(WSP_LOG_INFO,
            "event=broadcast seq=%" PRIu64 " channel=%s shards=%u written=%" PRIu64
            " failed=%" PRIu64 " total_ms=%.3f",
            wsp_bcast_seq(b), chan ? chan : WSP_CHANNEL_DEFAULT, r->shards, r->written, r->failed,
            (double)r->ns / 1e6);
}

static void coord_reap(wsp_coord_t *co) { wsp_bcast_reap(&co->inflight, on_coord_reaped, co); }

/* A broadcast finished: a lagging shard has room in its ring again. */
static void on_coord_done(uv_async_t *a)
{
    wsp_coord_t *co = WSP_CONTAINER_OF(a, wsp_coord_t, done);
    for (unsigned i = 0; i < co->started; i++)
        wsp_shard_flush(co->shards[i]);
    coord_reap(co);
}

/* Numbers b in the process's order and records its channel's position (issue #17). */
static void coord_place(wsp_coord_t *co, wsp_bcast_t *b, const char *chan, size_t chan_len,
                        const wsp_pub_chseq_t *cs, int silent)
{
    wsp_bcast_pos_t bp = {.seq = cs->seq, .silent = (uint8_t)silent};
    if (cs->epoch_len > 0 && cs->epoch_len <= WSP_FRAMED_EPOCH_MAX) {
        memcpy(bp.epoch, cs->epoch, cs->epoch_len);
        bp.epoch_len = (uint8_t)cs->epoch_len;
    } else {
        bp.seq = 0; /* a number without its epoch means nothing */
    }
    bp.gen = atomic_load_explicit(&co->pos.gen, memory_order_relaxed);
    if (chan == NULL) {
        chan = WSP_CHANNEL_DEFAULT;
        chan_len = sizeof(WSP_CHANNEL_DEFAULT) - 1;
    }
    bp.g = wsp_chan_pos_note(&co->pos, chan, chan_len, bp.seq, bp.epoch, bp.epoch_len, bp.gen);
    wsp_bcast_set_pos(b, &bp);
}

/* Hands b to every shard (one WSP_SHARD_BACKLOG_MAX broadcasts behind skips it). */
static void coord_post(wsp_coord_t *co, wsp_bcast_t *b)
{
    wsp_bcast_track(&co->inflight, b);
    unsigned skipped = 0;
    for (unsigned i = 0; i < co->nshards; i++) {
        int rv = wsp_shard_post(co->shards[i], b);
        if (rv < 0) {
            /* The shard is thousands of broadcasts behind: it would only fall further. */
            WSP_LOG(WSP_LOG_WARN, "event=broadcast_shard_skipped seq=%" PRIu64 " shard=%u error=%s",
                    wsp_bcast_seq(b), i, uv_err_name(rv));
            skipped++;
        }
    }
    if (wsp_bcast_cancel(b, skipped))
        coord_reap(co);
}

/* The publisher's deliver: one broadcast, encoded once, to every shard of this process. */
static int on_coord_deliver(void *user, const char *chan, size_t chan_len, const uint8_t *payload,
                            size_t len, uint64_t seq, const wsp_pub_chseq_t *cs, const char *reason)
{
    wsp_coord_t *co = user;
    /* A live upgrade keeps it for the new process (issue #20). */
    int rv = wsp_liveup_deliver(&co->up, chan, chan_len, payload, len, seq, cs, reason);
    if (rv != 0)
        return rv < 0 ? rv : 0;
    wsp_bcast_t *b;
    rv = wsp_bcast_new(&b, chan, chan_len, payload, len, seq, co->nshards, &co->done);
    if (rv == -ENOMEM)
        WSP_LOG(WSP_LOG_ERROR, "event=broadcast_skipped reason=%s error=ENOMEM", reason);
    if (rv < 0)
        return rv;
    coord_place(co, b, chan, chan_len, cs, 0);
    atomic_fetch_add_explicit(&co->stats->publishes, 1, memory_order_relaxed);
    WSP_LOG(WSP_LOG_DEBUG,
            "event=broadcast_start seq=%" PRIu64 " chseq=%" PRIu64 " reason=%s bytes=%zu", seq,
            cs->seq, reason, len);
    coord_post(co, b);
    return 0;
}

/* A live upgrade's new process, at the takeover (issue #20): the history the old process
 * carried over (h; NULL: none) goes to every shard in one silent broadcast, ahead of the ones
 * relayed next. It is this process's first broadcast: arrivals waited for it. */
static int on_coord_history(void *user, wsp_uphist_t *h)
{
    wsp_coord_t *co = user;
    wsp_bcast_t *b;
    int rv = wsp_bcast_new(&b, NULL, 0, NULL, 0, 0, co->nshards, &co->done);
    if (rv < 0) {
        if (h)
            wsp_uphist_destroy(h);
        return rv;
    }
    if (h)
        wsp_bcast_set_history(b, h, wsp_uphist_destroy);
    wsp_pub_chseq_t cs = {0};
    coord_place(co, b, NULL, 0, &cs, 1);
    coord_post(co, b);
    return 0;
}

/* The publisher's deliver_user (issue #16): the message, encoded once, to every shard, each
 * of which writes it to that user's connections; the reap reports back with tag. One report
 * (this process's). Without token auth nobody is a user: the shards find no one. */
static int on_coord_deliver_user(void *user, const char *sub, size_t sub_len,
                                 const uint8_t *payload, size_t len, uint64_t tag)
{
    wsp_coord_t *co = user;
    /* Stopping, the shards are going away; handing over (issue #20), connections move: the
     * caller reports 0 (a user message is not queued for the new process). */
    if (co->stopping || wsp_liveup_busy(&co->up))
        return -EAGAIN;
    wsp_bcast_t *b;
    int rv = wsp_bcast_new(&b, NULL, 0, payload, len, 0, co->nshards, &co->done);
    if (rv < 0)
        return rv;
    wsp_bcast_set_user(b, co->auth ? wsp_auth_uid(co->auth, sub, sub_len) : 0, tag);
    coord_post(co, b);
    return 1;
}

static unsigned on_coord_redis_reporters(void *user)
{
    (void)user;
    return 1; /* this process: its subscriber delivers and reports */
}

/* SIGHUP: the key file again (the shards take it on their next handshake or tick). */
static void on_coord_reload(void *arg)
{
    wsp_coord_t *co = arg;
    if (co->auth)
        (void)wsp_auth_reload(co->auth); /* a failure keeps the old key and is logged */
}

/* --- recoveries under --redis (issue #17) --- */

static wsp_redis_t *on_fetch_redis(void *user)
{
    wsp_coord_t *co = user;
    return co->stopping ? NULL : wsp_pub_redis(co->pub);
}

/* Redis is in another epoch than the one the shards last heard of: a silent broadcast tells
 * them, in order, before the fetch's answer. */
static void on_fetch_epoch(void *user, const char *epoch, size_t epoch_len)
{
    wsp_coord_t *co = user;
    wsp_bcast_t *b;
    if (co->stopping || wsp_bcast_new(&b, NULL, 0, NULL, 0, 0, co->nshards, &co->done) < 0)
        return; /* the answer then finds the shard in another epoch: not recovered */
    wsp_pub_chseq_t cs = {0, epoch, epoch_len};
    coord_place(co, b, NULL, 0, &cs, 1);
    WSP_LOG(WSP_LOG_INFO, "event=epoch_changed epoch=%.*s source=fetch", (int)epoch_len, epoch);
    coord_post(co, b);
}

static void on_fetch_done(void *user, wsp_resume_t *r)
{
    wsp_coord_t *co = user;
    if (co->joined == 0) /* else the shard has ended: it frees r with its pending list */
        wsp_shard_post_resume(co->shards[r->shard], r);
}

static const wsp_fetch_ops_t coord_fetch_ops = {
    .redis = on_fetch_redis,
    .epoch = on_fetch_epoch,
    .done = on_fetch_done,
};

static void on_coord_fetch(uv_async_t *a)
{
    wsp_coord_t *co = WSP_CONTAINER_OF(a, wsp_coord_t, fetch_wake);
    wsp_resume_t *r = wsp_resume_queue_take(&co->fetchq);
    while (r) {
        wsp_resume_t *next = r->qnext; /* r goes back to its shard, maybe at once */
        wsp_fetch_run(r, co->cfg, &co->pos, &coord_fetch_ops, co);
        r = next;
    }
}

/* The Redis subscription went up or down: positions learnt before are stale from now on. */
static void on_coord_link(void *user, int up)
{
    wsp_coord_t *co = user;
    unsigned gen = atomic_fetch_add_explicit(&co->pos.gen, 1, memory_order_acq_rel) + 1;
    WSP_LOG(WSP_LOG_INFO, "event=redis_link_generation gen=%u up=%d", gen, up);
}

/* --- the supervisor, in a supervised worker --- */

static void coord_stop(wsp_coord_t *co, const char *why);

static void on_coord_free_handle(uv_handle_t *h) { free(h); }

static void on_coord_trigger(void *user)
{
    wsp_coord_t *co = user;
    int rv = wsp_link_send(&co->sup, WSP_IPC_TRIGGER, 0, NULL, 0);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=supervisor_write_failed error=%s", uv_err_name(rv));
}

/* The supervisor replaces this worker (issue #20): the control socket of the new worker came
 * with the packet (SCM_RIGHTS; the link is an IPC pipe); its pid is the packet's seq. */
static void coord_upgrade_offer(wsp_coord_t *co, uint32_t peer)
{
    uv_stream_t *link = (uv_stream_t *)&co->sup.pipe;
    uv_pipe_t *tmp = NULL;
    uv_os_fd_t fd = -1;
    int rv = uv_pipe_pending_count(&co->sup.pipe) > 0 ? 0 : -ENOENT;
    /* One pipe handle to take the descriptor from libuv; closed at once. */
    if (rv == 0 && (tmp = malloc(sizeof(*tmp))) == NULL)
        rv = -ENOMEM;
    if (rv == 0 && (rv = uv_pipe_init(&co->loop, tmp, 0)) < 0) {
        free(tmp);
        tmp = NULL;
    }
    if (rv == 0 && (rv = uv_accept(link, (uv_stream_t *)tmp)) == 0 &&
        (rv = uv_fileno((uv_handle_t *)tmp, &fd)) == 0 && (fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)) < 0)
        rv = -errno;
    if (tmp)
        uv_close((uv_handle_t *)tmp, on_coord_free_handle);
    if (rv < 0) {
        WSP_LOG(WSP_LOG_ERROR, "event=upgrade_failed reason=no_socket error=%s", uv_err_name(rv));
        return;
    }
    /* libuv made it non-blocking; the handover's sends block with a timeout instead. */
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) != 0)
        WSP_LOG(WSP_LOG_WARN, "event=upgrade_socket_flags error=%s", uv_err_name(-errno));
    wsp_liveup_offer(&co->up, fd, peer);
}

/* A worker's delivery report of a user message, to the supervisor that waits for it. */
static void on_coord_reached(void *user, uint64_t tag, uint64_t conns)
{
    wsp_coord_t *co = user;
    uint8_t p[8];
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(conns >> (8 * i));
    int rv = co->sup_open ? wsp_link_send(&co->sup, WSP_IPC_REACHED, tag, p, sizeof(p)) : 0;
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=supervisor_write_failed error=%s", uv_err_name(rv));
}

static void on_coord_sup_packet(void *user, uint8_t type, uint64_t seq, const uint8_t *payload,
                                uint32_t len)
{
    wsp_coord_t *co = user;
    const char *chan;
    size_t chan_len;
    const uint8_t *msg;
    size_t msg_len;
    if (type == WSP_IPC_UPGRADE && !co->stopping) {
        coord_upgrade_offer(co, (uint32_t)seq);
        return;
    }
    if (type == WSP_IPC_USER) {
        if (wsp_ipc_split_channel(payload, len, &chan, &chan_len, &msg, &msg_len) < 0 ||
            chan_len == 0) {
            WSP_LOG(WSP_LOG_ERROR, "event=supervisor_protocol_error reason=user");
            return;
        }
        wsp_pub_relay_user(co->pub, chan, chan_len, msg, msg_len, seq);
        return;
    }
    wsp_pub_chseq_t cs;
    if (type != WSP_IPC_BROADCAST || co->stopping)
        return;
    if (wsp_ipc_split_broadcast(payload, len, &chan, &chan_len, &cs.seq, &cs.epoch, &cs.epoch_len,
                                &msg, &msg_len) < 0) {
        WSP_LOG(WSP_LOG_ERROR, "event=supervisor_protocol_error reason=channel");
        return;
    }
    if (wsp_liveup_supervisor(&co->up, chan, chan_len, msg, msg_len, seq, &cs))
        return; /* a new worker: published once it takes over */
    wsp_pub_relay(co->pub, chan, chan_len, msg, msg_len, seq, &cs, "supervisor");
}

static void on_coord_sup_end(void *user, int protocol, int err)
{
    wsp_coord_t *co = user;
    if (protocol) {
        WSP_LOG(WSP_LOG_ERROR, "event=supervisor_protocol_error");
        coord_stop(co, "supervisor_protocol_error");
        return;
    }
    /* The supervisor is gone: a worker never outlives it. */
    WSP_LOG(WSP_LOG_WARN, "event=supervisor_lost error=%s", uv_err_name(err));
    coord_stop(co, "supervisor_lost");
}

static int coord_link_supervisor(wsp_coord_t *co)
{
    int rv = wsp_link_init(&co->sup, &co->loop, 1); /* IPC: an upgrade's socket comes this way */
    if (rv < 0)
        return rv;
    if ((rv = uv_pipe_open(&co->sup.pipe, co->cfg->worker_fd)) < 0 ||
        (rv = wsp_link_read_start(&co->sup, on_coord_sup_packet, on_coord_sup_end, co)) < 0)
        return rv;
    co->sup_open = 1;
    return 0;
}

/* --- stopping --- */

static void on_coord_sample(uv_timer_t *t)
{
    wsp_coord_t *co = WSP_CONTAINER_OF(t, wsp_coord_t, sample);
    /* RSS every second (one small read); open fds every 10 s (a walk of /proc/self/fd). */
    int rv = wsp_metrics_sample_self(co->stats, co->samples++ % 10 == 0);
    (void)rv; /* /proc unreadable: the gauges keep their last value */
    const wsp_redis_t *r = wsp_pub_redis(co->pub);
    atomic_store_explicit(&co->stats->redis_up, r ? (uint64_t)wsp_redis_up(r) : 0,
                          memory_order_relaxed);
    uint64_t units = atomic_load_explicit(&co->hist.units, memory_order_relaxed);
    atomic_store_explicit(&co->stats->hist_bytes, co->nshards ? units / co->nshards : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&co->stats->redis_dropped, r ? wsp_redis_dropped(r) : 0,
                          memory_order_relaxed);
    atomic_store_explicit(&co->stats->redis_resolve_failures, r ? wsp_redis_resolve_failures(r) : 0,
                          memory_order_relaxed);
}

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
    for (unsigned i = 0; i < co->nshards; i++)
        (void)wsp_shard_backlog_drop(co->shards[i]); /* coord_reap() below takes what is due */
    coord_reap(co);
    wsp_pub_close(co->pub); /* /healthz answered 503 until here */
    uv_walk(&co->loop, coord_close_walk, NULL);
}

/* A shard's thread is ending, or (live upgrade) a shard sent or adopted all it had. */
static void on_coord_exited(uv_async_t *a)
{
    wsp_coord_t *co = WSP_CONTAINER_OF(a, wsp_coord_t, exited);
    wsp_liveup_shard_event(&co->up);
    if (wsp_liveup_handing(&co->up)) /* END not sent yet (the Redis marker): on_coord_handed() */
        return;
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
    wsp_liveup_cancel(&co->up);
    co->stopping = 1;
    WSP_LOG(WSP_LOG_INFO, "event=shutdown signal=%s drain_seconds=%u", why, co->cfg->drain_seconds);
    wsp_pub_stop(co->pub); /* no more ticks, no more Redis */
    if (co->sup_open)
        (void)uv_read_stop((uv_stream_t *)&co->sup.pipe); /* cannot fail on an open pipe */
    /* The loop keeps running (the admin API answers /healthz 503) until every shard has
     * drained and ended: on_coord_exited() then finishes. */
    for (unsigned i = 0; i < co->nshards; i++)
        wsp_shard_stop(co->shards[i]);
}

/* Live upgrade, old process: END is sent; the new process publishes from here on. */
static void on_coord_handed(void *user)
{
    wsp_coord_t *co = user;
    co->stopping = 1;
    if (co->sup_open)
        (void)uv_read_stop((uv_stream_t *)&co->sup.pipe); /* cannot fail on an open pipe */
    /* The shards may all have ended while END waited: look again, from the loop. */
    int rv = uv_async_send(&co->exited);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=coord_wake_failed error=%s", uv_err_name(rv));
}

static void on_coord_upgrade(void *user) { wsp_liveup_start(&((wsp_coord_t *)user)->up); }

static void on_coord_signal_stop(void *user, int signum)
{
    coord_stop(user, signum == SIGINT ? "SIGINT" : "SIGTERM");
}

/* SIGHUP: a new TLS certificate and key for the handshakes that start from now on. */
static void on_coord_reload_tls(void *arg)
{
    wsp_coord_t *co = arg;
    (void)wsp_tlsterm_reload(co->tls); /* logs; a bad pair keeps the current one */
}

static const wsp_pub_ops_t coord_pub_ops = {
    .deliver = on_coord_deliver,
    .link = on_coord_link,
    .trigger = on_coord_trigger,
    .stop = on_coord_signal_stop,
    .upgrade = on_coord_upgrade,
    .deliver_user = on_coord_deliver_user,
    .redis_reporters = on_coord_redis_reporters,
    .reached = on_coord_reached,
};

/* --- open, start, serve, teardown --- */

/* Logs what the kernel made of --sndbuf: it doubles the value and caps it at
 * net.core.wmem_max, which an operator should hear about. */
static void coord_log_sockopts(const wsp_config_t *cfg, int fd)
{
    int eff = cfg->sndbuf ? wsp_net_sndbuf(fd) : 0;
    int capped = eff >= 0 && (uint64_t)eff < 2 * (uint64_t)cfg->sndbuf;
    WSP_LOG(capped ? WSP_LOG_WARN : WSP_LOG_INFO,
            "event=socket_options sndbuf=%" PRIu32 " sndbuf_effective=%d%s tcp_user_timeout_s=%u "
            "tcp_keepalive_s=%u",
            cfg->sndbuf, eff, capped ? " capped_by=net.core.wmem_max" : "", cfg->tcp_user_timeout,
            cfg->tcp_keepalive);
}

/* Binds one reuseport socket per shard on one port: with --port 0 the first picks it.
 * TCP_NODELAY, keepalive, TCP_USER_TIMEOUT and SO_SNDBUF are set here once: accepted
 * sockets inherit them. */
static int coord_bind_all(wsp_coord_t *co)
{
    const wsp_config_t *cfg = co->cfg;
    const wsp_net_tune_t tune = {.keepalive_s = cfg->tcp_keepalive,
                                 .user_timeout_ms = cfg->tcp_user_timeout * 1000u,
                                 .sndbuf = cfg->sndbuf};
    co->port = cfg->port;
    for (unsigned i = 0; i < cfg->threads; i++) {
        int rv = wsp_net_bind_reuseport(cfg->bind, co->port, &co->fds[i]);
        if (rv == 0)
            rv = wsp_net_tune_listener(co->fds[i], &tune);
        if (rv == 0 && i == 0)
            coord_log_sockopts(cfg, co->fds[0]);
        if (rv == 0 && co->port == 0) {
            rv = wsp_net_local_port(co->fds[i]);
            if (rv > 0) {
                co->port = rv;
                rv = 0;
            }
        }
        if (rv < 0)
            return rv; /* what was bound is closed by coord_teardown() */
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
            /* A restarted worker reuses its slot; a live upgrade's new worker shares it with
             * the old one, whose gauges move over connection by connection. */
            if (co->up.ctl < 0)
                wsp_metrics_reset_gauges(co->stats);
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
    atomic_store_explicit(&co->stats->tls_path,
                          !co->tls                    ? WSP_METRICS_TLS_OFF
                          : wsp_tlsterm_ktls(co->tls) ? WSP_METRICS_TLS_KTLS
                                                      : WSP_METRICS_TLS_USER,
                          memory_order_relaxed);
    return 0;
}

static void coord_stats_free(wsp_coord_t *co)
{
    if (co->stats == NULL)
        return;
    if (co->stats_mapped && wsp_liveup_handed(&co->up)) {
        /* A live upgrade's new worker serves from this slot now. */
        (void)munmap(co->stats_map, co->stats_map_len); /* cannot fail for our own mapping */
    } else if (co->stats_mapped) {
        atomic_store_explicit(&co->stats->up, 0, memory_order_relaxed);
        wsp_metrics_reset_gauges(co->stats);
        (void)munmap(co->stats_map, co->stats_map_len); /* cannot fail for our own mapping */
    } else {
        atomic_store_explicit(&co->stats->up, 0, memory_order_relaxed);
        free(co->stats);
    }
    co->stats = NULL;
}

/* History settings, the process's positions and, under --redis, the fetch queue (issue #17).
 * Without Redis the epoch is this process's (or its supervisor's) and every channel starts at
 * 0, unless this worker started after its supervisor published; with Redis both are Redis's,
 * unknown until it says. */
static int coord_history_init(wsp_coord_t *co)
{
    const wsp_config_t *cfg = co->cfg;
    int redis = cfg->redis_host[0] != '\0';
    co->hist.size = cfg->history_size;
    co->hist.ttl_ms = (uint64_t)cfg->history_ttl * 1000;
    co->hist.max_bytes = cfg->history_max_bytes;
    co->hist.nshards = cfg->threads;
    atomic_init(&co->hist.units, 0);
    int rv = wsp_chan_pos_init(&co->pos, redis ? NULL : cfg->epoch, redis ? 0 : strlen(cfg->epoch),
                               !redis && !cfg->worker_restart);
    if (rv < 0)
        return rv;
    co->pos_init = 1;
    /* A live upgrade's new process: its shards know nothing until the takeover's first
     * broadcast, which brings the old process's history (on_coord_history()): a wspush.v1
     * connection that comes in before waits for it (BEHIND) instead of being refused. */
    if (co->up.ctl >= 0 && !redis)
        co->pos.epoch_g = 1;
    if (!redis)
        return 0;
    if ((rv = uv_async_init(&co->loop, &co->fetch_wake, on_coord_fetch)) < 0 ||
        (rv = wsp_resume_queue_init(&co->fetchq, &co->fetch_wake)) < 0)
        return rv;
    co->fetch_init = 1;
    return 0;
}

/* Everything that can fail before a thread runs: counters, listeners, the loop, the shards. */
static int coord_open(wsp_coord_t *co)
{
    const wsp_config_t *cfg = co->cfg;
    int rv = coord_stats_init(co);
    if (rv == 0) /* a live upgrade's new process gets its listeners from the old one */
        rv = co->up.ctl >= 0 ? wsp_liveup_adopt_hello(&co->up, co->fds, &co->port)
                             : coord_bind_all(co);
    if (rv < 0 || (rv = uv_loop_init(&co->loop)) < 0)
        return rv;
    co->loop_open = 1;
    /* The exit notification must exist before any shard can end. */
    if ((rv = uv_async_init(&co->loop, &co->exited, on_coord_exited)) < 0 ||
        (rv = coord_history_init(co)) < 0)
        return rv;
    if (cfg->auth_jwt_alg) {
        char err[256];
        if ((rv = wsp_auth_new(&co->auth, cfg, cfg->threads, err, sizeof(err))) < 0) {
            WSP_LOG(WSP_LOG_ERROR, "event=auth_key_failed error=\"%s\"", err); /* no key bytes */
            return rv;
        }
        WSP_LOG(WSP_LOG_INFO, "event=auth alg=%s key=%s leeway=%u aud=%s iss=%s",
                wsp_jwt_alg_name(cfg->auth_jwt_alg), cfg->auth_jwt_key, cfg->auth_leeway,
                cfg->auth_jwt_aud[0] ? "checked" : "-", cfg->auth_jwt_iss[0] ? "checked" : "-");
    }
    wsp_liveup_auth(&co->up, co->auth); /* a new process's user ids: the old one's key */
    int redis = cfg->redis_host[0] != '\0';
    wsp_shard_hist_t h = {&co->hist, &co->pos, redis ? &co->fetchq : NULL,
                          redis ? NULL : cfg->epoch, !redis && cfg->worker_fd >= 0};
    for (unsigned i = 0; i < cfg->threads; i++) {
        int fd = co->fds[i], ho = co->up.ho_socks[i];
        co->up.lfds[i] = fd;                  /* for a live upgrade's HELLO: the shard owns it */
        co->fds[i] = co->up.ho_socks[i] = -1; /* the shard owns them now, even if it fails */
        rv = wsp_shard_new(&co->shards[i], i, cfg, fd, ho, &co->lim, &co->stats->shard[i],
                           co->auth ? wsp_auth_shard(co->auth, i) : NULL, &co->exited, co->tls);
        if (rv < 0)
            return rv;
        co->nshards++;
        if ((rv = wsp_shard_set_history(co->shards[i], &h)) < 0)
            return rv;
    }
    return 0;
}

/* The coordinator's own handles, the publisher (signals, admin API, Redis), the supervisor's
 * link, then the shards' threads. */
static int coord_start(wsp_coord_t *co)
{
    const wsp_config_t *cfg = co->cfg;
    int rv;
    if ((rv = uv_async_init(&co->loop, &co->done, on_coord_done)) < 0 ||
        (rv = uv_timer_init(&co->loop, &co->sample)) < 0 ||
        (rv = uv_timer_start(&co->sample, on_coord_sample, 0, 1000)) < 0)
        return rv;
    int role = cfg->worker_fd >= 0 ? WSP_PUB_WORKER : WSP_PUB_SINGLE;
    if ((rv = wsp_pub_new(&co->pub, &co->loop, cfg, role, co->stats, 1, &coord_pub_ops, co)) < 0)
        return rv;
    if (co->tls && (rv = wsp_pub_on_reload(co->pub, on_coord_reload_tls, co)) < 0)
        return rv;
    if (co->auth && (rv = wsp_pub_on_reload(co->pub, on_coord_reload, co)) < 0)
        return rv;
    if (role == WSP_PUB_WORKER && (rv = coord_link_supervisor(co)) < 0)
        return rv;
    wsp_liveup_attach(&co->up, co->pub, co->shards, co->stats, co->port, on_coord_handed, co);
    wsp_liveup_on_history(&co->up, on_coord_history);
    if (wsp_liveup_adopting(&co->up)) /* the publisher opens once everything is adopted */
        wsp_pub_adopt_admin(co->pub, wsp_liveup_take_admin(&co->up));
    else if ((rv = wsp_pub_open(co->pub)) < 0) {
        return rv;
    }
    for (; co->started < co->nshards; co->started++)
        if ((rv = wsp_shard_start(co->shards[co->started])) < 0)
            return rv;
    /* Loops run: a new process is ready; the old one stops accepting and hands over. */
    return wsp_liveup_adopting(&co->up) ? wsp_liveup_ready(&co->up) : 0;
}

static void coord_serve(wsp_coord_t *co)
{
    const wsp_config_t *cfg = co->cfg;
    if (!wsp_liveup_adopting(&co->up)) { /* else after the takeover (server/liveup.c) */
        WSP_LOG(WSP_LOG_INFO,
                "event=listening bind=%s port=%d threads=%u path=%s interval=%u admin_port=%d",
                cfg->bind, co->port, co->nshards, cfg->path, cfg->interval,
                wsp_pub_admin_port(co->pub));
        wsp_pub_start(co->pub);
        if (cfg->worker_fd < 0 && wsp_reexec_notify("READY=1") < 0)
            WSP_LOG(WSP_LOG_WARN, "event=sd_notify_failed");
    }
    (void)uv_run(&co->loop, UV_RUN_DEFAULT); /* until coord_finish() closed everything */
    if (co->joined == 0)                     /* the loop ended early */
        coord_finish(co);
}

/* The one way out, from wherever coord_open() or coord_start() stopped (rv < 0) or after
 * coord_serve() (rv 0): stops what runs, closes what is open, frees everything. */
static int coord_teardown(wsp_coord_t *co, int rv)
{
    if (co->started > 0 && co->joined == 0) {
        /* A failed start with some shards running: stop them and wait the ordinary way. */
        coord_stop(co, "startup_failed");
        for (unsigned i = 0; i < co->started; i++)
            (void)wsp_shard_join(co->shards[i]);
        co->joined = co->nshards;
    }
    wsp_pub_close(co->pub);
    for (unsigned i = 0; i < co->nshards; i++) {
        if (co->shards[i])
            (void)wsp_shard_backlog_drop(co->shards[i]); /* freed with inflight below */
        wsp_shard_free(co->shards[i]);
    }
    wsp_auth_free(co->auth);           /* every shard is gone: no one holds its keys or arrays */
    wsp_bcast_free_all(&co->inflight); /* only on a failed start: none is left otherwise */
    for (unsigned i = 0; i < co->cfg->threads; i++)
        if (co->fds[i] >= 0)
            close(co->fds[i]);
    if (co->loop_open) {
        uv_walk(&co->loop, coord_close_walk, NULL);
        (void)uv_run(&co->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
        int crv = uv_loop_close(&co->loop);
        if (crv < 0)
            WSP_LOG(WSP_LOG_ERROR, "event=loop_close_failed error=%s", uv_err_name(crv));
    }
    wsp_link_reset(&co->sup);
    wsp_liveup_free(&co->up);
    wsp_pub_free(co->pub);
    if (co->fetch_init)
        wsp_resume_queue_free(&co->fetchq);
    if (co->pos_init)
        wsp_chan_pos_free(&co->pos);
    if (rv == 0)
        WSP_LOG(WSP_LOG_INFO, "event=stopped");
    coord_stats_free(co);
    free(co->fds);
    free(co->shards);
    free(co);
    return rv;
}

int wsp_coord_run(const wsp_config_t *cfg, uint64_t max_conns, uint64_t fd_budget,
                  wsp_tlsterm_t *tls, int ho_fd)
{
    if (cfg->threads > WSP_METRICS_MAX_SHARDS)
        return -EINVAL;
    wsp_coord_t *co = wsp_xcalloc(1, sizeof(*co));
    co->cfg = cfg;
    co->lim.max_conns = max_conns;
    co->lim.fd_budget = fd_budget;
    co->lim.tls_hs_max = cfg->tls_max_handshakes;
    co->tls = tls;
    atomic_init(&co->lim.conns, 0);
    atomic_init(&co->lim.fds, 0);
    atomic_init(&co->lim.tls_hs, 0);
    co->fds = wsp_xcalloc(cfg->threads, sizeof(int));
    for (unsigned i = 0; i < cfg->threads; i++)
        co->fds[i] = -1;
    wsp_liveup_init(&co->up, &co->loop, cfg, ho_fd);
    co->shards = wsp_xcalloc(cfg->threads, sizeof(*co->shards));
    int rv = coord_open(co);
    if (rv == 0)
        rv = coord_start(co);
    if (rv == 0)
        coord_serve(co);
    return coord_teardown(co, rv);
}
