#include "shard_conn.h"

#include <errno.h>

#include "log.h"

int wsp_shard_conn_log_ok(wsp_shard_conn_t *sc)
{
    /* Peers must not fill the disk: one per-connection line per shard per tick. */
    if (sc->log_tick == sc->tick) {
        sc->log_suppressed++;
        return 0;
    }
    sc->log_tick = sc->tick;
    return 1;
}

int wsp_shard_conn_reserve(wsp_shard_conn_t *sc)
{
    uint_fast64_t n = atomic_fetch_add_explicit(&sc->lim->conns, 1, memory_order_relaxed);
    if (n >= sc->lim->max_conns) {
        atomic_fetch_sub_explicit(&sc->lim->conns, 1, memory_order_relaxed);
        return -EMFILE;
    }
    return 0;
}

void wsp_shard_conn_release(wsp_shard_conn_t *sc)
{
    atomic_fetch_sub_explicit(&sc->lim->conns, 1, memory_order_relaxed);
}

void wsp_shard_conn_fd_taken(wsp_shard_conn_t *sc)
{
    atomic_fetch_add_explicit(&sc->lim->fds, 1, memory_order_relaxed);
}

int wsp_shard_conn_over_budget(const wsp_shard_conn_t *sc)
{
    return atomic_load_explicit(&sc->lim->fds, memory_order_relaxed) >= sc->lim->fd_budget ||
           wsp_shard_conn_tls_full(sc);
}

int wsp_shard_conn_tls_full(const wsp_shard_conn_t *sc)
{
    return sc->tls != NULL &&
           atomic_load_explicit(&sc->lim->tls_hs, memory_order_relaxed) >= sc->lim->tls_hs_max;
}

int wsp_shard_conn_tls_begin(wsp_shard_conn_t *sc)
{
    uint_fast64_t n = atomic_fetch_add_explicit(&sc->lim->tls_hs, 1, memory_order_relaxed);
    if (n >= sc->lim->tls_hs_max) {
        atomic_fetch_sub_explicit(&sc->lim->tls_hs, 1, memory_order_relaxed);
        return -EBUSY;
    }
    atomic_fetch_add_explicit(&sc->stats->tls_handshaking, 1, memory_order_relaxed);
    return 0;
}

void wsp_shard_conn_tls_end(wsp_shard_conn_t *sc)
{
    atomic_fetch_sub_explicit(&sc->lim->tls_hs, 1, memory_order_relaxed);
    atomic_fetch_sub_explicit(&sc->stats->tls_handshaking, 1, memory_order_relaxed);
    sc->on_conn_freed(sc); /* room again: a listener paused at the limit resumes */
}

void wsp_shard_conn_tls_failed(wsp_shard_conn_t *sc, int reason)
{
    if (reason <= WSP_TLS_FAIL_NONE || reason >= WSP_TLS_FAIL_COUNT)
        reason = WSP_TLS_FAIL_INTERNAL;
    atomic_fetch_add_explicit(&sc->stats->tls_fail[reason], 1, memory_order_relaxed);
    if (wsp_shard_conn_log_ok(sc))
        WSP_LOG(WSP_LOG_INFO, "shard=%u event=tls_handshake_failed reason=%s", sc->id,
                wsp_tls_fail_name(reason));
}

void wsp_shard_conn_freed(wsp_shard_conn_t *sc)
{
    atomic_fetch_sub_explicit(&sc->lim->fds, 1, memory_order_relaxed);
    sc->on_conn_freed(sc);
}
