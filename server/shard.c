#include "shard.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "conn.h"
#include "log.h"
#include "net.h"
#include "spsc.h"

#define WSP_SHARD_RING 64          /* broadcasts a shard may lag behind */
#define WSP_SHARD_RBUF (64 * 1024) /* one read buffer for all of a shard's sockets */
#define WSP_SHARD_BACKLOG 4096     /* the kernel caps it at net.core.somaxconn */
#define WSP_SHARD_DRAIN_MS 5000    /* how long a stopping shard waits for writes */

typedef struct wsp_shard_table_s {
    wsp_conn_t **v;
    uint32_t n, cap;
} wsp_shard_table_t;

struct wsp_shard_s {
    uv_loop_t loop; /* loop.data = the shard */
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t tick_timer;
    uv_timer_t drain_timer;
    uv_thread_t thread;
    unsigned id;
    unsigned nhandles; /* handles initialised, closed in reverse on teardown */
    const wsp_config_t *cfg;
    wsp_spsc_t *ring;
    atomic_int stop_requested;
    int stopping;        /* shard thread only */
    int handles_closing; /* shard thread only */
    int accept_blocked;  /* an accepted connection is waiting for memory */
    int loop_close_rv;
    int started;
    uint8_t tick;
    uint8_t log_tick;
    uint64_t log_suppressed;
    wsp_shard_table_t table[2];
    atomic_uint_fast64_t *proc_conns;
    uint64_t max_conns;
    uint8_t *rbuf;
    wsp_shard_stats_t stats;
};

static void on_shard_wake(uv_async_t *a);
static void on_shard_tick(uv_timer_t *t);
static void on_shard_drain_timeout(uv_timer_t *t);
static void on_shard_connection(uv_stream_t *server, int status);
static void on_shard_handle_close(uv_handle_t *h);

wsp_shard_t *wsp_shard_of(const uv_loop_t *loop) { return loop->data; }

const wsp_config_t *wsp_shard_config(const wsp_shard_t *sh) { return sh->cfg; }

unsigned wsp_shard_id(const wsp_shard_t *sh) { return sh->id; }

wsp_shard_stats_t *wsp_shard_counters(wsp_shard_t *sh) { return &sh->stats; }

const wsp_shard_stats_t *wsp_shard_stats(const wsp_shard_t *sh) { return &sh->stats; }

uint8_t wsp_shard_tick(const wsp_shard_t *sh) { return sh->tick; }

uv_buf_t wsp_shard_rbuf(wsp_shard_t *sh) { return uv_buf_init((char *)sh->rbuf, WSP_SHARD_RBUF); }

int wsp_shard_stopping(const wsp_shard_t *sh) { return sh->stopping; }

int wsp_shard_log_ok(wsp_shard_t *sh)
{
    /* Peers must not fill the disk: one per-connection line per shard per tick. */
    if (sh->log_tick == sh->tick) {
        sh->log_suppressed++;
        return 0;
    }
    sh->log_tick = sh->tick;
    return 1;
}

int wsp_shard_track(wsp_shard_t *sh, int t, wsp_conn_t *c, uint32_t *idx)
{
    wsp_shard_table_t *tb = &sh->table[t];
    if (tb->n == tb->cap) {
        uint32_t cap = tb->cap ? tb->cap * 2 : 1024;
        wsp_conn_t **v = realloc(tb->v, (size_t)cap * sizeof(*v));
        if (v == NULL)
            return -ENOMEM;
        tb->v = v;
        tb->cap = cap;
    }
    *idx = tb->n;
    tb->v[tb->n++] = c;
    return 0;
}

void wsp_shard_untrack(wsp_shard_t *sh, int t, uint32_t idx)
{
    wsp_shard_table_t *tb = &sh->table[t];
    /* Swap with the last entry. Walks that may untrack go from the end down, so the entry
     * moved into idx has been visited already. */
    wsp_conn_t *last = tb->v[--tb->n];
    if (idx != tb->n) {
        tb->v[idx] = last;
        wsp_conn_set_idx(last, idx);
    }
}

int wsp_shard_conn_reserve(wsp_shard_t *sh)
{
    uint_fast64_t n = atomic_fetch_add_explicit(sh->proc_conns, 1, memory_order_relaxed);
    if (n >= sh->max_conns) {
        atomic_fetch_sub_explicit(sh->proc_conns, 1, memory_order_relaxed);
        return -EMFILE;
    }
    return 0;
}

void wsp_shard_conn_release(wsp_shard_t *sh)
{
    atomic_fetch_sub_explicit(sh->proc_conns, 1, memory_order_relaxed);
}

/* Closes the shard's own handles once a stopping shard has no connection left; the loop then
 * runs out of handles and the thread ends. */
static void shard_maybe_finish(wsp_shard_t *sh)
{
    if (!sh->stopping || sh->handles_closing || sh->table[0].n || sh->table[1].n)
        return;
    sh->handles_closing = 1;
    uv_close((uv_handle_t *)&sh->wake, NULL);
    uv_close((uv_handle_t *)&sh->tick_timer, NULL);
    uv_close((uv_handle_t *)&sh->drain_timer, NULL);
}

void wsp_shard_conn_freed(wsp_shard_t *sh) { shard_maybe_finish(sh); }

static void shard_pass(wsp_shard_t *sh, wsp_bcast_t *b)
{
    wsp_msg_t *m = wsp_bcast_msg(b);
    wsp_shard_table_t *tb = &sh->table[WSP_SHARD_T_OPEN];
    uint32_t n = tb->n;
    uint64_t written = 0, failed = 0;
    uint64_t t0 = wsp_net_mono_ns();
    /* From the end down: a slow consumer leaves the table during the walk (swap-remove). */
    for (uint32_t i = n; i-- > 0;) {
        wsp_conn_t *c = tb->v[i];
        int rv = wsp_conn_send(c, m);
        if (rv == 0) {
            written++;
            continue;
        }
        failed++;
        if (rv != -ENOBUFS) /* -ENOBUFS: draining with 1008 already */
            wsp_conn_close(c);
    }
    uint64_t t1 = wsp_net_mono_ns();
    atomic_fetch_add_explicit(&sh->stats.broadcasts, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->stats.msgs_written, written, memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->stats.bytes_written, written * m->len, memory_order_relaxed);
    WSP_LOG(WSP_LOG_INFO,
            "shard=%u event=shard_broadcast seq=%llu conns=%u written=%llu failed=%llu "
            "pass_ms=%.3f",
            sh->id, (unsigned long long)m->seq, n, (unsigned long long)written,
            (unsigned long long)failed, (double)(t1 - t0) / 1e6);
    wsp_bcast_done(b, t0, t1, written, failed);
}

static void shard_close_all(wsp_shard_t *sh)
{
    /* wsp_conn_close() never untracks (on_conn_close does), so plain walks are safe. */
    for (int t = 0; t < 2; t++)
        for (uint32_t i = sh->table[t].n; i-- > 0;)
            wsp_conn_close(sh->table[t].v[i]);
}

static void shard_begin_stop(wsp_shard_t *sh)
{
    sh->stopping = 1;
    uv_close((uv_handle_t *)&sh->listener, NULL); /* stop accepting */
    wsp_shard_table_t *tb = &sh->table[WSP_SHARD_T_OPEN];
    uint32_t n = tb->n;
    /* From the end down: each drained connection moves to the TIMED table. */
    for (uint32_t i = n; i-- > 0;)
        wsp_conn_drain(tb->v[i], 1001);
    wsp_shard_table_t *tt = &sh->table[WSP_SHARD_T_TIMED];
    for (uint32_t i = tt->n; i-- > 0;)
        if (wsp_conn_state(tt->v[i]) == WSP_CONN_HANDSHAKE)
            wsp_conn_close(tt->v[i]);
    WSP_LOG(WSP_LOG_INFO, "shard=%u event=shard_stopping closing=%u", sh->id, n);
    int rv = uv_timer_start(&sh->drain_timer, on_shard_drain_timeout, WSP_SHARD_DRAIN_MS, 0);
    if (rv < 0) /* cannot wait: close now rather than hang */
        shard_close_all(sh);
    shard_maybe_finish(sh);
}

static void on_shard_drain_timeout(uv_timer_t *t)
{
    wsp_shard_t *sh = WSP_CONTAINER_OF(t, wsp_shard_t, drain_timer);
    uint32_t left = sh->table[0].n + sh->table[1].n;
    if (left)
        WSP_LOG(WSP_LOG_WARN, "shard=%u event=drain_timeout closing=%u", sh->id, left);
    shard_close_all(sh);
}

static void on_shard_wake(uv_async_t *a)
{
    wsp_shard_t *sh = WSP_CONTAINER_OF(a, wsp_shard_t, wake);
    /* uv_async_send() coalesces: drain everything queued. */
    wsp_bcast_t *b;
    while ((b = wsp_spsc_pop(sh->ring)) != NULL)
        shard_pass(sh, b);
    if (atomic_load_explicit(&sh->stop_requested, memory_order_acquire) && !sh->stopping)
        shard_begin_stop(sh);
}

static void on_shard_connection(uv_stream_t *server, int status)
{
    wsp_shard_t *sh = wsp_shard_of(server->loop);
    if (status < 0) {
        /* libuv already dropped the connection (EMFILE trick) or the accept failed. */
        if (wsp_shard_log_ok(sh))
            WSP_LOG(WSP_LOG_WARN, "shard=%u event=accept_failed error=%s", sh->id,
                    uv_err_name(status));
        return;
    }
    int rv = wsp_conn_accept(sh, server);
    if (rv == -ENOMEM) {
        /* Left unaccepted: libuv pauses this listener until we accept; the tick retries. */
        sh->accept_blocked = 1;
        if (wsp_shard_log_ok(sh))
            WSP_LOG(WSP_LOG_ERROR, "shard=%u event=accept_paused error=ENOMEM", sh->id);
    } else if (rv < 0 && wsp_shard_log_ok(sh)) {
        WSP_LOG(WSP_LOG_INFO, "shard=%u event=conn_setup_failed error=%s", sh->id, uv_err_name(rv));
    }
}

static void on_shard_tick(uv_timer_t *t)
{
    wsp_shard_t *sh = WSP_CONTAINER_OF(t, wsp_shard_t, tick_timer);
    sh->tick++;
    if (sh->accept_blocked && !sh->stopping) {
        sh->accept_blocked = 0;
        on_shard_connection((uv_stream_t *)&sh->listener, 0);
    }
    if (sh->log_suppressed && sh->log_tick != sh->tick) {
        WSP_LOG(WSP_LOG_INFO, "shard=%u event=logs_suppressed count=%llu", sh->id,
                (unsigned long long)sh->log_suppressed);
        sh->log_suppressed = 0;
    }
    /* Only HANDSHAKE and DRAINING connections live here: idle OPEN ones cost nothing. */
    wsp_shard_table_t *tb = &sh->table[WSP_SHARD_T_TIMED];
    for (uint32_t i = tb->n; i-- > 0;) {
        wsp_conn_t *c = tb->v[i];
        if (!wsp_conn_expired(c, sh->tick))
            continue;
        if (wsp_conn_state(c) == WSP_CONN_HANDSHAKE)
            atomic_fetch_add_explicit(&sh->stats.hs_timeout, 1, memory_order_relaxed);
        wsp_conn_close(c);
    }
}

static void shard_main(void *arg)
{
    wsp_shard_t *sh = arg;
    int rv = uv_run(&sh->loop, UV_RUN_DEFAULT);
    (void)rv; /* non-zero only if handles remain, which uv_loop_close() reports below */
    /* Broadcasts queued after the last wake still owe their report. */
    wsp_bcast_t *b;
    while ((b = wsp_spsc_pop(sh->ring)) != NULL)
        wsp_bcast_done(b, 0, 0, 0, 0);
    sh->loop_close_rv = uv_loop_close(&sh->loop);
}

static void on_shard_handle_close(uv_handle_t *h) { (void)h; }

/* Closes the handles initialised so far (on a failed start) and the loop. */
static void shard_teardown(wsp_shard_t *sh)
{
    uv_handle_t *hs[] = {(uv_handle_t *)&sh->wake, (uv_handle_t *)&sh->tick_timer,
                         (uv_handle_t *)&sh->drain_timer, (uv_handle_t *)&sh->listener};
    for (unsigned i = 0; i < sh->nhandles; i++)
        uv_close(hs[i], on_shard_handle_close);
    (void)uv_run(&sh->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    sh->loop_close_rv = uv_loop_close(&sh->loop);
}

int wsp_shard_new(wsp_shard_t **out, unsigned id, const wsp_config_t *cfg, int listen_fd,
                  atomic_uint_fast64_t *proc_conns, uint64_t max_conns)
{
    wsp_shard_t *sh = wsp_xcalloc(1, sizeof(*sh));
    sh->id = id;
    sh->cfg = cfg;
    sh->proc_conns = proc_conns;
    sh->max_conns = max_conns;
    sh->log_tick = 0xFF;
    atomic_init(&sh->stop_requested, 0);
    sh->ring = wsp_spsc_new(WSP_SHARD_RING);
    sh->rbuf = malloc(WSP_SHARD_RBUF);
    int rv = uv_loop_init(&sh->loop);
    if (rv < 0 || sh->ring == NULL || sh->rbuf == NULL) {
        if (rv == 0)
            (void)uv_loop_close(&sh->loop);
        close(listen_fd);
        wsp_spsc_free(sh->ring);
        free(sh->rbuf);
        free(sh);
        return rv < 0 ? rv : -ENOMEM;
    }
    sh->loop.data = sh;
    if ((rv = uv_async_init(&sh->loop, &sh->wake, on_shard_wake)) < 0)
        goto fail;
    sh->nhandles++;
    if ((rv = uv_timer_init(&sh->loop, &sh->tick_timer)) < 0)
        goto fail;
    sh->nhandles++;
    if ((rv = uv_timer_init(&sh->loop, &sh->drain_timer)) < 0)
        goto fail;
    sh->nhandles++;
    if ((rv = uv_tcp_init(&sh->loop, &sh->listener)) < 0)
        goto fail;
    sh->nhandles++;
    if ((rv = uv_tcp_open(&sh->listener, listen_fd)) < 0)
        goto fail;
    listen_fd = -1; /* the handle owns it now */
    if ((rv = uv_listen((uv_stream_t *)&sh->listener, WSP_SHARD_BACKLOG, on_shard_connection)) < 0)
        goto fail;
    if ((rv = uv_timer_start(&sh->tick_timer, on_shard_tick, 1000, 1000)) < 0)
        goto fail;
    *out = sh;
    return 0;
fail:
    if (listen_fd >= 0)
        close(listen_fd);
    shard_teardown(sh);
    wsp_spsc_free(sh->ring);
    free(sh->rbuf);
    free(sh);
    return rv;
}

int wsp_shard_start(wsp_shard_t *sh)
{
    /* The creating thread's signal mask is inherited: signals belong to the coordinator. */
    sigset_t all, old;
    sigfillset(&all);
    int rv = pthread_sigmask(SIG_BLOCK, &all, &old);
    if (rv != 0)
        return -rv;
    rv = uv_thread_create(&sh->thread, shard_main, sh);
    if (rv == 0)
        sh->started = 1;
    int rv2 = pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rv < 0)
        return rv;
    return rv2 != 0 ? -rv2 : 0;
}

int wsp_shard_post(wsp_shard_t *sh, wsp_bcast_t *b)
{
    int rv = wsp_spsc_push(sh->ring, b);
    if (rv < 0)
        return rv;
    return uv_async_send(&sh->wake);
}

void wsp_shard_stop(wsp_shard_t *sh)
{
    atomic_store_explicit(&sh->stop_requested, 1, memory_order_release);
    int rv = uv_async_send(&sh->wake);
    (void)rv; /* only fails for a handle that is not an async: a bug, not a runtime error */
}

int wsp_shard_join(wsp_shard_t *sh)
{
    int rv = uv_thread_join(&sh->thread);
    if (rv < 0)
        return rv;
    return sh->loop_close_rv;
}

void wsp_shard_free(wsp_shard_t *sh)
{
    if (sh == NULL)
        return;
    if (!sh->started)
        shard_teardown(sh); /* created but never run: its handles and loop are still open */
    wsp_spsc_free(sh->ring);
    free(sh->table[0].v);
    free(sh->table[1].v);
    free(sh->rbuf);
    free(sh);
}
