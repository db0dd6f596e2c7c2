/* The shard's side of a live upgrade (issue #20): the old process's shard stops accepting and
 * sends its connections (server/handoff.c), the new one's listens once the first datagram
 * came and adopts them. Part of the shard module (server/shard_int.h). */
#include "shard.h"

#include <errno.h>
#include <stdlib.h>

#include "alloc.h"
#include "conn.h"
#include "handoff.h"
#include "log.h"
#include "shard_int.h"

/* A connection whose parser holds part of a client frame, or in the middle of its TLS
 * handshake (whose OpenSSL state cannot move), gets this long to complete it before it is
 * closed (1001, or without a word mid-handshake) instead of handed over. */
#define WSP_SHARD_HO_WAIT_MS 2000

/* Old process: sends what can move; ends the handover once nothing waits or the wait is
 * over. What stays (mid-frame or mid-TLS-handshake past the wait, or everything after a
 * failed send) is closed as at shutdown, and the thread ends once its last connection is
 * gone. */
void wsp__shard_handover_step(wsp_shard_t *sh)
{
    unsigned left = 0;
    int rv = sh->ho.buf ? wsp_handoff_send(&sh->ho, &sh->sc, &left) : -ENOMEM;
    if (rv == 0 && left > 0 && uv_now(&sh->loop) < sh->ho_deadline_ms)
        return; /* the step timer tries again */
    if (rv == 0)
        rv = wsp_handoff_end(&sh->ho);
    WSP_LOG(rv < 0 || left ? WSP_LOG_WARN : WSP_LOG_INFO,
            "shard=%u event=handover_sent conns=%llu closing=%llu error=%s", sh->sc.id,
            (unsigned long long)sh->ho.moved,
            (unsigned long long)sh->ho.closed + (rv < 0 ? sh->sc.table[WSP_SHARD_T_OPEN].n : left),
            rv < 0 ? uv_err_name(rv) : "none");
    wsp_handoff_free(&sh->ho);
    sh->handing = 2;
    /* What stayed OPEN (mid-frame past the wait, or all after a failed send) drains now; the
     * handed ones are closing and leave the tables in their close callbacks. */
    wsp_table_t *tb = &sh->sc.table[WSP_SHARD_T_OPEN];
    for (uint32_t i = tb->n; i-- > 0;)
        if (i < tb->n && wsp_conn_state(tb->v[i]) == WSP_CONN_OPEN)
            wsp_conn_drain(tb->v[i], 1001);
    /* What is still in its handshake (a TLS one past the wait, or all after a failed send) is
     * closed as at shutdown: the client connects again, to the new process. */
    wsp_table_t *tt = &sh->sc.table[WSP_SHARD_T_TIMED];
    for (uint32_t i = tt->n; i-- > 0;)
        if (wsp_conn_state(tt->v[i]) == WSP_CONN_HANDSHAKE)
            wsp_conn_close_why(tt->v[i], WSP_CLOSE_SHUTDOWN);
    sh->stopping = 1; /* the thread ends once the tables are empty */
    sh->drain_per_step = 1;
    sh->stop_deadline_ms = uv_now(&sh->loop) + (uint64_t)WSP_SHARD_FLUSH_S * 1000;
    atomic_store_explicit(&sh->ho_done, 1, memory_order_release);
    (void)uv_async_send(sh->exited_async); /* only fails for a non-async handle */
    wsp__shard_maybe_finish(sh);
}

/* Old process, shard 0: what recovery needs in the new process (issue #17), as it is now:
 * after the last broadcast posted here, before the first one queued for the new process.
 * Every shard recorded the same messages; one copy goes. Redis keeps its own. */
static void shard_snapshot(wsp_shard_t *sh)
{
    if (sh->sc.id != 0 || sh->sc.fetchq != NULL || sh->sc.chans.entries == 0)
        return;
    int rv = wsp_uphist_snapshot(&sh->ho_hist, &sh->sc.chans);
    WSP_LOG(rv < 0 ? WSP_LOG_ERROR : WSP_LOG_INFO,
            "shard=%u event=handover_history entries=%u channels=%u error=%s", sh->sc.id,
            sh->ho_hist.n, sh->ho_hist.nnames, rv < 0 ? uv_err_name(rv) : "none");
}

void wsp__shard_begin_handover(wsp_shard_t *sh)
{
    sh->handing = 1;
    shard_snapshot(sh);
    (void)wsp_handoff_init(&sh->ho, sh->ho.sock); /* -ENOMEM: the first step fails it */
    /* Stop accepting: the new process listens on the same socket, so a connection in the
     * backlog waits for it instead of being refused. */
    uv_close((uv_handle_t *)&sh->listener, NULL);
    sh->ho_deadline_ms = uv_now(&sh->loop) + WSP_SHARD_HO_WAIT_MS;
    if (!uv_is_active((uv_handle_t *)&sh->step_timer) &&
        uv_timer_start(&sh->step_timer, wsp__shard_on_step, WSP_SHARD_STEP_MS, WSP_SHARD_STEP_MS) <
            0)
        sh->ho_deadline_ms = 0; /* no retries: one pass */
    wsp__shard_handover_step(sh);
}

/* New process: the old shard's datagrams. The first means it stopped accepting: listen. */
void wsp__shard_on_ho_readable(uv_poll_t *p, int status, int events)
{
    (void)events;
    wsp_shard_t *sh = WSP_CONTAINER_OF(p, wsp_shard_t, ho_poll);
    if (sh->adopting == 1) {
        sh->adopting = 2;
        int rv =
            uv_listen((uv_stream_t *)&sh->listener, WSP_SHARD_BACKLOG, wsp__shard_on_connection);
        if (rv < 0)
            WSP_LOG(WSP_LOG_ERROR, "shard=%u event=listen_failed error=%s", sh->sc.id,
                    uv_err_name(rv));
    }
    int ended = 0;
    int rv = status < 0 ? status : wsp_handoff_recv(&sh->ho, &sh->sc, &sh->loop, &ended);
    if (rv == 0 && !ended)
        return;
    WSP_LOG(rv < 0 ? WSP_LOG_ERROR : WSP_LOG_INFO,
            "shard=%u event=handover_adopted conns=%llu failed=%llu token_misfit=%llu error=%s",
            sh->sc.id, (unsigned long long)sh->ho.moved, (unsigned long long)sh->ho.failed,
            (unsigned long long)sh->ho.misfit, rv < 0 ? uv_err_name(rv) : "none");
    (void)uv_poll_stop(p); /* cannot fail on an initialised handle */
    uv_close((uv_handle_t *)p, NULL);
    wsp_handoff_free(&sh->ho); /* after the poll stopped watching the socket */
    atomic_store_explicit(&sh->ho_done, 1, memory_order_release);
    (void)uv_async_send(sh->exited_async); /* only fails for a non-async handle */
}

int wsp_shard_handover_done(const wsp_shard_t *sh)
{
    return atomic_load_explicit(&sh->ho_done, memory_order_acquire);
}

wsp_uphist_t *wsp_shard_history(wsp_shard_t *sh) { return &sh->ho_hist; }

void wsp__shard_restore(wsp_shard_t *sh, const void *h)
{
    const wsp_uphist_t *uh = h;
    uint64_t failed = wsp_uphist_restore(uh, &sh->sc.chans, uv_now(&sh->loop));
    WSP_LOG(failed ? WSP_LOG_WARN : WSP_LOG_INFO,
            "shard=%u event=history_restored entries=%u kept=%llu failed=%llu", sh->sc.id, uh->n,
            (unsigned long long)sh->sc.chans.entries, (unsigned long long)failed);
}
