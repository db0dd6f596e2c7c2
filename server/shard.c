#include "shard.h"

#include "shard_int.h"

#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alloc.h"
#include "arrival.h"
#include "chan.h"
#include "conn.h"
#include "log.h"
#include "net.h"
#include "pick.h"
#include "spsc.h"
#include "table.h"
#include "uring.h"

#define WSP_SHARD_RING 64 /* broadcasts a shard may lag behind */
/* Sends per io_uring_enter in a broadcast pass: 0.66x the CPU of one send() each at 128 here
 * already, 0.62-0.70x from 1,024 on; a bigger batch only costs ring memory (SQ + CQ, 48 KiB). */
#define WSP_SHARD_URING 1024
/* TLS with io_uring: the batch's sealed records live here until the batch is reaped. 1,024
 * ticks of ~60 B sealed take 60 KiB; bigger frames fill it first, which sends the batch
 * early. A 64 KiB frame sealed (65.7 KB) always fits. */
#define WSP_SHARD_ARENA (256 * 1024)

/* One pass over a broadcast: the frame each connection gets, and what was written. */
typedef struct wsp_shard_batch_s {
    wsp_shard_t *sh;
    wsp_pick_t pick;
    uint64_t failed;
    /* Frames written per kind (pick.frame[kind]): one increment per connection; bytes and
     * compressed frames are summed from them after the pass. */
    uint64_t written[WSP_BCAST_NKINDS];
    size_t arena_used; /* bytes of sh->arena the queued sends point into */
} wsp_shard_batch_t;

/* An io_uring send's user data: the connection, with the kind of frame it was sent in the
 * two low bits and, for records sealed here for a TLS connection, WSP_SHARD_SEALED in the
 * third (malloc aligns a connection to 16 bytes at least): its completion knows the frame
 * and the path without asking the connection again, so plain sends pay nothing for TLS. */
#define WSP_SHARD_SEALED ((uintptr_t)4)
static_assert(WSP_BCAST_NKINDS <= 4 && _Alignof(max_align_t) >= 8, "kind and tag fit low bits");
static inline void *shard_ud(wsp_conn_t *c, unsigned kind) { return (char *)c + kind; }

static void on_shard_wake(uv_async_t *a);
static void on_shard_tick(uv_timer_t *t);
static void on_shard_handle_close(uv_handle_t *h);
static void shard_drain_step(wsp_shard_t *sh);

static inline wsp_shard_t *shard_of(wsp_shard_conn_t *sc)
{
    return WSP_CONTAINER_OF(sc, wsp_shard_t, sc);
}

int wsp_shard_exited(const wsp_shard_t *sh)
{
    return atomic_load_explicit(&sh->exited, memory_order_acquire);
}

/* Closes the shard's own handles once a stopping shard has no connection left; the loop then
 * runs out of handles and the thread ends. */
void wsp__shard_maybe_finish(wsp_shard_t *sh)
{
    if (!sh->stopping || sh->handles_closing || sh->sc.table[WSP_SHARD_T_TIMED].n ||
        sh->sc.table[WSP_SHARD_T_OPEN].n)
        return;
    sh->handles_closing = 1;
    if (sh->adopting && !uv_is_closing((uv_handle_t *)&sh->ho_poll)) {
        uv_close((uv_handle_t *)&sh->ho_poll, NULL); /* stopped while adopting */
        wsp_handoff_free(&sh->ho);
    }
    uv_close((uv_handle_t *)&sh->wake, NULL);
    uv_close((uv_handle_t *)&sh->tick_timer, NULL);
    uv_close((uv_handle_t *)&sh->step_timer, NULL);
}

/* A connection of this shard was freed (wsp_shard_conn_freed() gave its fd back). */
static void on_shard_conn_freed(wsp_shard_conn_t *sc)
{
    wsp_shard_t *sh = shard_of(sc);
    /* A listener paused at the budget resumes here (or, if another shard freed the socket,
     * on this shard's next tick). */
    if (sh->accept_blocked && !sh->stopping && !sh->handing &&
        !wsp_shard_conn_over_budget(&sh->sc)) {
        sh->accept_blocked = 0;
        wsp__shard_on_connection((uv_stream_t *)&sh->listener, 0);
    }
    wsp__shard_maybe_finish(sh);
}

/* Writes the frame of kind (given out by wsp_pick_kind()) to c the libuv way: one
 * uv_try_write, the rest queued. */
static void shard_send_uv(wsp_conn_t *c, unsigned kind, wsp_shard_batch_t *bt)
{
    int rv = wsp_conn_send(c, bt->pick.frame[kind]);
    if (rv == 0) {
        bt->written[kind]++;
        return;
    }
    bt->failed++;
    if (rv != -ENOBUFS) /* -ENOBUFS: draining with 1008 already */
        wsp_conn_close_why(c, WSP_CLOSE_ERROR);
}

/* One direct send of records sealed for c (wsp_conn_seal()): a short send queues a copy of
 * the rest, never a new seal (its sequence numbers are spent). */
static void shard_sealed_sent(wsp_shard_batch_t *bt, wsp_conn_t *c, unsigned kind, int res)
{
    int rv = wsp_conn_seal_sent(c, res);
    if (rv >= 0) {
        if (rv == 0 && res != -ECANCELED)
            atomic_fetch_add_explicit(&bt->sh->sc.stats->uring_short, 1, memory_order_relaxed);
        bt->written[kind]++;
        return;
    }
    bt->failed++;
    wsp_conn_close_why(c, WSP_CLOSE_ERROR);
}

/* One io_uring send's result. A short send or -EAGAIN hands the rest to libuv, which queues
 * it behind nothing (the queue was empty) and so keeps the byte order. */
static void on_shard_sent(void *ud, int res, void *arg)
{
    wsp_shard_batch_t *bt = arg;
    uintptr_t tag = (uintptr_t)ud & (WSP_SHARD_SEALED | 3u); /* shard_ud() */
    unsigned kind = tag & 3u;
    wsp_conn_t *c = (void *)((char *)ud - tag);
    if (tag & WSP_SHARD_SEALED) {
        shard_sealed_sent(bt, c, kind, res);
        return;
    }
    wsp_msg_t *m = bt->pick.frame[kind];
    if (res == (int)m->len) {
        bt->written[kind]++;
        return;
    }
    if (res == -ECANCELED) { /* the ring failed before this send ran: the libuv way */
        shard_send_uv(c, kind, bt);
        return;
    }
    if (res >= 0 || res == -EAGAIN) {
        atomic_fetch_add_explicit(&bt->sh->sc.stats->uring_short, 1, memory_order_relaxed);
        if (wsp_conn_send_rest(c, m, res > 0 ? (size_t)res : 0) == 0) {
            bt->written[kind]++;
            return;
        }
    }
    bt->failed++;
    wsp_conn_close_why(c, WSP_CLOSE_ERROR);
}

/* Submits the queued io_uring sends and reports them into bt. A ring the kernel refuses is
 * dropped for good: the shard goes on with one send per connection. */
static void shard_uring_flush(wsp_shard_t *sh, wsp_shard_batch_t *bt)
{
    const wsp_uring_stats_t *st = wsp_uring_stats(sh->uring);
    uint64_t enters = st->enters, ops = st->ops;
    int rv = wsp_uring_flush(sh->uring, on_shard_sent, bt);
    bt->arena_used = 0; /* every send reaped: the sealed records are no longer needed */
    atomic_fetch_add_explicit(&sh->sc.stats->uring_enters, st->enters - enters,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&sh->sc.stats->uring_sends, st->ops - ops, memory_order_relaxed);
    if (rv < 0) {
        WSP_LOG(WSP_LOG_ERROR, "shard=%u event=io_uring_failed error=%s path=uv_try_write",
                sh->sc.id, uv_err_name(rv));
        wsp_uring_free(sh->uring);
        sh->uring = NULL;
    }
}

/* Queues the frame of kind for c (socket fd) in the io_uring batch, first sealed into the
 * arena when c seals its own records (TLS without kTLS): one encrypt per connection. Sends
 * the batch first when it, or the arena, is full. 0 when queued or handed to libuv behind
 * nothing; -EAGAIN: not queued, nothing sealed (send the libuv way); another negative errno:
 * close c. */
static int shard_queue(wsp_shard_t *sh, wsp_shard_batch_t *bt, wsp_conn_t *c, int fd, unsigned kind)
{
    if (wsp_uring_queued(sh->uring) >= WSP_SHARD_URING)
        shard_uring_flush(sh, bt);
    wsp_msg_t *m = bt->pick.frame[kind];
    const uint8_t *buf = m->bytes;
    size_t len = m->len;
    uintptr_t tag = kind;
    if (sh->uring && sh->arena) {
        ssize_t n =
            wsp_conn_seal(c, m, sh->arena + bt->arena_used, WSP_SHARD_ARENA - bt->arena_used);
        if (n == -ENOBUFS && bt->arena_used > 0) { /* the arena is full: send, then reuse it */
            shard_uring_flush(sh, bt);
            n = sh->uring ? wsp_conn_seal(c, m, sh->arena, WSP_SHARD_ARENA) : -EAGAIN;
        }
        if (n < 0)
            return (int)n;
        if (n > 0) {
            buf = sh->arena + bt->arena_used;
            len = (size_t)n;
            bt->arena_used += (size_t)n;
            tag |= WSP_SHARD_SEALED;
        }
    }
    if (sh->uring && wsp_uring_send(sh->uring, fd, buf, len, (char *)c + tag) == 0)
        return 0;
    if (tag & WSP_SHARD_SEALED) { /* sealed but not queued (cannot happen): send as is */
        shard_sealed_sent(bt, c, kind, -ECANCELED);
        return 0;
    }
    return -EAGAIN;
}

/* Writes to every connection of tb the frame it gets (bt->pick: plain, framed, or compressed
 * for a permessage-deflate connection), from the end down: a slow consumer leaves the table
 * during the walk (swap-remove), which only moves an already visited entry. With a ring,
 * idle sockets get their frame through batched io_uring sends, all completed before this
 * returns (so no connection can be freed while its send is in flight); a connection with
 * queued libuv writes keeps the libuv path, behind its queue. */
static void shard_walk(wsp_shard_t *sh, wsp_table_t *tb, int time_only, wsp_shard_batch_t *bt)
{
    for (uint32_t i = tb->n; i-- > 0;) {
        wsp_conn_t *c = tb->v[i];
        if (time_only && !wsp_conn_wants_default(c))
            continue;
        unsigned kind = wsp_pick_kind(&bt->pick, wsp_conn_xf(c));
        int fd = sh->uring ? wsp_conn_direct_fd(c) : -1;
        int q = fd < 0 ? -EAGAIN : shard_queue(sh, bt, c, fd, kind);
        if (q == -EAGAIN) { /* not queued: never skip a connection */
            shard_send_uv(c, kind, bt);
        } else if (q < 0) {
            bt->failed++;
            wsp_conn_close_why(c, WSP_CLOSE_ERROR);
        }
    }
    if (sh->uring && wsp_uring_queued(sh->uring))
        shard_uring_flush(sh, bt);
}

/* Notes b in the shard's positions and history (issue #17): its place in the process's
 * order, and a sequenced message's frame in its channel's history. */
static void shard_note(wsp_shard_t *sh, wsp_bcast_t *b)
{
    const wsp_bcast_pos_t *bp = wsp_bcast_pos(b);
    wsp_chan_table_t *t = &sh->sc.chans;
    wsp_chan_position(t, bp->g);
    if (wsp_bcast_history(b)) /* a live upgrade's (issue #20), before anything published here */
        wsp__shard_restore(sh, wsp_bcast_history(b));
    if (bp->seq == 0 && bp->epoch_len == 0)
        return;
    size_t clen;
    const char *c = wsp_bcast_channel(b, &clen);
    if (c == NULL) {
        c = WSP_CHANNEL_DEFAULT;
        clen = sizeof(WSP_CHANNEL_DEFAULT) - 1;
    }
    /* The framed form is what a recovery replays: built once per broadcast and process. */
    wsp_msg_t *framed = bp->seq && t->hist && t->hist->size ? wsp_bcast_framed(b) : NULL;
    int rv = wsp_chan_record(t, c, clen, bp->seq, bp->epoch, bp->epoch_len, bp->gen, framed,
                             uv_now(&sh->loop));
    if (rv < 0 && wsp_shard_conn_log_ok(&sh->sc))
        WSP_LOG(WSP_LOG_WARN, "shard=%u event=history_record_failed channel=%.*s error=%s",
                sh->sc.id, (int)clen, c, uv_err_name(rv));
}

/* A message for one user (issue #16): the connections of its user id, found by walking one
 * chain of the auth arrays, gathered first (a send that fails moves slots) and then written
 * as any pass writes. Returns how many connections it was offered to. */
static uint32_t shard_user_pass(wsp_shard_t *sh, uint64_t uid, wsp_shard_batch_t *bt)
{
    wsp_auth_shard_t *as = sh->sc.auth;
    wsp_table_t *open = &sh->sc.table[WSP_SHARD_T_OPEN];
    if (as == NULL)
        return 0; /* no token auth: nobody is a user */
    sh->users.n = 0;
    for (uint32_t s = wsp_authidx_find(&as->idx, uid, WSP_AUTHIDX_END); s != WSP_AUTHIDX_END;
         s = wsp_authidx_find(&as->idx, uid, s)) {
        uint32_t slot;
        if (wsp_table_push(&sh->users, open->v[s], &slot) < 0) /* amortised, kept per shard */
            bt->failed++;
    }
    uint32_t n = sh->users.n;
    uint64_t written0 = 0, written1 = 0;
    for (unsigned k = 0; k < WSP_BCAST_NKINDS; k++)
        written0 += bt->written[k];
    shard_walk(sh, &sh->users, 0, bt);
    for (unsigned k = 0; k < WSP_BCAST_NKINDS; k++)
        written1 += bt->written[k];
    atomic_fetch_add_explicit(&sh->sc.stats->user_msgs, written1 - written0, memory_order_relaxed);
    return n;
}

/* One shard's pass over b: the default channel walks OPEN, a named one its subscribers, a
 * user message that user's connections. */
static void shard_pass(wsp_shard_t *sh, wsp_bcast_t *b)
{
    wsp_shard_stats_t *st = sh->sc.stats;
    wsp_shard_batch_t bt = {.sh = sh};
    wsp_pick_begin(&bt.pick, b, &sh->pick);
    size_t clen;
    const char *cname = wsp_bcast_channel(b, &clen);
    wsp_bcast_report_t rep = {0};
    uint32_t n = 0;
    /* Only this thread writes its counters: plain before/after deltas for the log line. */
    uint64_t us0 = atomic_load_explicit(&st->uring_sends, memory_order_relaxed);
    uint64_t ushort0 = atomic_load_explicit(&st->uring_short, memory_order_relaxed);
    uint64_t zns0 = atomic_load_explicit(&st->deflate_ns, memory_order_relaxed);
    rep.start_ns = wsp_net_mono_ns();
    uint64_t uid;
    int user = wsp_bcast_user(b, &uid, NULL);
    if (!user) /* a user message is in no channel's order (its g is 0) */
        shard_note(sh, b);
    if (user) {
        n = shard_user_pass(sh, uid, &bt);
        cname = "#user"; /* the log names no user */
        clen = 5;
    } else if (wsp_bcast_pos(b)->silent) {
        /* only an epoch for the positions: nobody to write to */
    } else if (cname == NULL) { /* the default channel: every open connection not opted out */
        n = sh->sc.table[WSP_SHARD_T_OPEN].n;
        shard_walk(sh, &sh->sc.table[WSP_SHARD_T_OPEN], 1, &bt);
    } else {
        wsp_chan_t *ch = wsp_chan_find(&sh->sc.chans, cname, clen);
        if (ch) {
            wsp_table_t *subs = wsp_chan_walk_begin(ch);
            n = subs->n;
            shard_walk(sh, subs, 0, &bt);
            wsp_chan_walk_end(&sh->sc.chans, ch);
        }
    }
    rep.end_ns = wsp_net_mono_ns();
    uint64_t bytes = 0, compressed = 0;
    for (unsigned k = 0; k < WSP_BCAST_NKINDS; k++) {
        rep.written += bt.written[k];
        bytes += bt.written[k] ? bt.written[k] * bt.pick.frame[k]->len : 0;
        compressed += (k & WSP_BCAST_DEFLATE) ? bt.written[k] : 0;
    }
    rep.failed = bt.failed;
    atomic_fetch_add_explicit(&st->broadcasts, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->msgs_written, rep.written, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->bytes_written, bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->deflate_written, compressed, memory_order_relaxed);
    WSP_LOG(
        WSP_LOG_INFO,
        "shard=%u event=shard_broadcast seq=%llu channel=%.*s conns=%u written=%llu "
        "failed=%llu uring_sends=%llu uring_short=%llu pass_ms=%.3f compressed=%llu "
        "compress_us=%.1f",
        sh->sc.id, (unsigned long long)wsp_bcast_seq(b), cname ? (int)clen : 4,
        cname ? cname : "time", n, (unsigned long long)rep.written, (unsigned long long)rep.failed,
        (unsigned long long)(atomic_load_explicit(&st->uring_sends, memory_order_relaxed) - us0),
        (unsigned long long)(atomic_load_explicit(&st->uring_short, memory_order_relaxed) -
                             ushort0),
        (double)(rep.end_ns - rep.start_ns) / 1e6, (unsigned long long)compressed,
        (double)(atomic_load_explicit(&st->deflate_ns, memory_order_relaxed) - zns0) / 1e3);
    wsp_bcast_done(b, &rep);
}

static void shard_close_all(wsp_shard_t *sh)
{
    /* wsp_conn_close() never untracks (on_conn_close does), so plain walks are safe. */
    for (int t = 0; t < WSP_SHARD_T_N; t++)
        for (uint32_t i = sh->sc.table[t].n; i-- > 0;)
            wsp_conn_close_why(sh->sc.table[t].v[i], WSP_CLOSE_SHUTDOWN);
}

/* One drain slice: close 1001 to the next few open connections; past the deadline, close
 * whatever is left. */
static void shard_drain_step(wsp_shard_t *sh)
{
    if (uv_now(&sh->loop) >= sh->stop_deadline_ms) {
        uint32_t left = sh->sc.table[WSP_SHARD_T_TIMED].n + sh->sc.table[WSP_SHARD_T_OPEN].n;
        if (left)
            WSP_LOG(WSP_LOG_WARN, "shard=%u event=drain_timeout closing=%u", sh->sc.id, left);
        shard_close_all(sh);
        (void)uv_timer_stop(&sh->step_timer); /* cannot fail */
        return;
    }
    wsp_table_t *tb = &sh->sc.table[WSP_SHARD_T_OPEN];
    /* From the end: each drained connection leaves the OPEN table. */
    for (uint32_t k = 0; k < sh->drain_per_step && tb->n > 0; k++)
        wsp_conn_drain(tb->v[tb->n - 1], 1001);
}

static void shard_begin_stop(wsp_shard_t *sh)
{
    sh->stopping = 1;
    uv_close((uv_handle_t *)&sh->listener, NULL); /* stop accepting */
    wsp_table_t *tt = &sh->sc.table[WSP_SHARD_T_TIMED];
    for (uint32_t i = tt->n; i-- > 0;)
        if (wsp_conn_state(tt->v[i]) == WSP_CONN_HANDSHAKE)
            wsp_conn_close_why(tt->v[i], WSP_CLOSE_SHUTDOWN);
    uint32_t n = sh->sc.table[WSP_SHARD_T_OPEN].n;
    /* Spread the closes so that clients do not all reconnect at the same moment. */
    uint64_t steps = (uint64_t)sh->sc.cfg->drain_seconds * 1000 / WSP_SHARD_STEP_MS;
    sh->drain_per_step = steps ? (uint32_t)((n + steps - 1) / steps) : n;
    if (sh->drain_per_step == 0)
        sh->drain_per_step = 1;
    sh->stop_deadline_ms =
        uv_now(&sh->loop) + ((uint64_t)sh->sc.cfg->drain_seconds + WSP_SHARD_FLUSH_S) * 1000;
    WSP_LOG(WSP_LOG_INFO, "shard=%u event=shard_stopping closing=%u drain_seconds=%u", sh->sc.id, n,
            sh->sc.cfg->drain_seconds);
    shard_drain_step(sh); /* the first slice now */
    int rv =
        uv_timer_start(&sh->step_timer, wsp__shard_on_step, WSP_SHARD_STEP_MS, WSP_SHARD_STEP_MS);
    if (rv < 0) /* cannot pace: close now rather than hang */
        shard_close_all(sh);
    wsp__shard_maybe_finish(sh);
}

/* One ping slice: every open connection is visited once per --ping-interval. One still
 * waiting since the previous round is closed; the others get a ping. */
static void shard_ping_step(wsp_shard_t *sh)
{
    wsp_table_t *tb = &sh->sc.table[WSP_SHARD_T_OPEN];
    uint32_t steps = sh->sc.cfg->ping_interval * 1000 / WSP_SHARD_STEP_MS;
    if (sh->ping_step++ == 0) /* a round starts: its size decides the slice */
        sh->ping_per_step = (tb->n + steps - 1) / steps;
    /* Slots move when connections leave, so a round is approximate: a connection may be
     * skipped once and is then checked in the next round. */
    for (uint32_t k = 0; k < sh->ping_per_step && sh->ping_cursor < tb->n; k++) {
        wsp_conn_t *c = tb->v[sh->ping_cursor++];
        if (wsp_conn_ping(c) == 0)
            atomic_fetch_add_explicit(&sh->sc.stats->pings, 1, memory_order_relaxed);
    }
    if (sh->ping_step >= steps) { /* the round took the whole interval: start the next */
        sh->ping_step = 0;
        sh->ping_cursor = 0;
    }
}

void wsp__shard_on_step(uv_timer_t *t)
{
    wsp_shard_t *sh = WSP_CONTAINER_OF(t, wsp_shard_t, step_timer);
    if (sh->handing == 1)
        wsp__shard_handover_step(sh);
    else if (sh->stopping)
        shard_drain_step(sh);
    else
        shard_ping_step(sh);
}

/* The connections waiting to come in (issue #17): the fetches that came back (after the
 * broadcasts posted before them: the ring is drained before this), then another try each. */
static void shard_arrivals(wsp_shard_t *sh, int tick)
{
    wsp_resume_t *answers = sh->results_init ? wsp_resume_queue_take(&sh->results) : NULL;
    wsp_arrival_retry(&sh->sc, answers, tick);
}

static void on_shard_wake(uv_async_t *a)
{
    wsp_shard_t *sh = WSP_CONTAINER_OF(a, wsp_shard_t, wake);
    /* The handover request is read BEFORE the ring is drained: the coordinator posts every
     * broadcast it delivers here before it stores the request (release), so once the request
     * is seen (acquire) the drain below includes all of them. Read after the drain, a request
     * stored while the drain ran would send the connections away with broadcasts still in the
     * ring, which the next wake-up would then pass to nobody (issue #20: upgrade.race lost
     * six acknowledged publishes on one shard's connections). */
    int ho = atomic_load_explicit(&sh->ho_requested, memory_order_acquire);
#ifdef WSP_TEST_HOOKS
    wsp__shard_test_stall(sh);
#endif
    /* uv_async_send() coalesces: drain everything queued. */
    wsp_bcast_t *b;
    while ((b = wsp_spsc_pop(sh->ring)) != NULL)
        shard_pass(sh, b);
    if (sh->sc.pending)
        shard_arrivals(sh, 0);
    if (ho && !sh->handing && !sh->stopping)
        wsp__shard_begin_handover(sh);
    if (atomic_load_explicit(&sh->stop_requested, memory_order_acquire) && !sh->stopping &&
        !sh->handing)
        shard_begin_stop(sh);
}

void wsp__shard_on_connection(uv_stream_t *server, int status)
{
    wsp_shard_t *sh = shard_of(wsp_shard_conn_of(server->loop));
    if (status < 0) {
        /* libuv already dropped the connection (EMFILE trick) or the accept failed. */
        if (wsp_shard_conn_log_ok(&sh->sc))
            WSP_LOG(WSP_LOG_WARN, "shard=%u event=accept_failed error=%s", sh->sc.id,
                    uv_err_name(status));
        return;
    }
    if (wsp_shard_conn_over_budget(&sh->sc)) {
        /* Not accepted: libuv stops watching this listener until we accept, and the
         * kernel's backlog holds the rest. Resumed when a socket or a TLS handshake slot is
         * freed, or on the tick. */
        sh->accept_blocked = 1;
        int tls = wsp_shard_conn_tls_full(&sh->sc);
        if (tls)
            atomic_fetch_add_explicit(&sh->sc.stats->tls_paused, 1, memory_order_relaxed);
        if (wsp_shard_conn_log_ok(&sh->sc))
            WSP_LOG(WSP_LOG_WARN, "shard=%u event=accept_paused reason=%s budget=%llu", sh->sc.id,
                    tls ? "tls_handshakes" : "fd_budget",
                    (unsigned long long)(tls ? sh->sc.lim->tls_hs_max : sh->sc.lim->fd_budget));
        return;
    }
    int rv = wsp_conn_accept(&sh->sc, server);
    if (rv == -EBUSY) { /* another shard took the last TLS handshake slot */
        sh->accept_blocked = 1;
        atomic_fetch_add_explicit(&sh->sc.stats->tls_paused, 1, memory_order_relaxed);
    } else if (rv == -ENOMEM) {
        /* Left unaccepted: libuv pauses this listener until we accept; the tick retries. */
        sh->accept_blocked = 1;
        if (wsp_shard_conn_log_ok(&sh->sc))
            WSP_LOG(WSP_LOG_ERROR, "shard=%u event=accept_paused error=ENOMEM", sh->sc.id);
    } else if (rv < 0 && wsp_shard_conn_log_ok(&sh->sc)) {
        WSP_LOG(WSP_LOG_INFO, "shard=%u event=conn_setup_failed error=%s", sh->sc.id,
                uv_err_name(rv));
    }
}

/* Token auth on the 1 s tick: a key posted by SIGHUP is taken, and every connection whose
 * token's exp + leeway has passed is closed with 4001: one sequential scan of the deadlines
 * beside OPEN, from the end (a drained connection's slot gets an entry already looked at). */
static void shard_expire(wsp_shard_t *sh)
{
    wsp_auth_shard_t *as = sh->sc.auth;
    if (as == NULL)
        return;
    wsp_auth_shard_sync(as);
    uint32_t now = (uint32_t)(wsp_net_epoch_ms() / 1000);
    wsp_table_t *open = &sh->sc.table[WSP_SHARD_T_OPEN];
    for (uint32_t i = wsp_authidx_expired(&as->idx, as->idx.n, now); i != WSP_AUTHIDX_END;
         i = wsp_authidx_expired(&as->idx, i, now))
        wsp_conn_expire(open->v[i]);
}

static void on_shard_tick(uv_timer_t *t)
{
    wsp_shard_t *sh = WSP_CONTAINER_OF(t, wsp_shard_t, tick_timer);
    sh->sc.tick++;
    shard_expire(sh);
    if (sh->accept_blocked && !sh->stopping && !sh->handing) {
        sh->accept_blocked = 0;
        wsp__shard_on_connection((uv_stream_t *)&sh->listener, 0);
    }
    if (sh->sc.log_suppressed && sh->sc.log_tick != sh->sc.tick) {
        WSP_LOG(WSP_LOG_INFO, "shard=%u event=logs_suppressed count=%llu", sh->sc.id,
                (unsigned long long)sh->sc.log_suppressed);
        sh->sc.log_suppressed = 0;
    }
    /* History: the expired go; the gauges for /metrics. Waiting connections' deadlines. */
    wsp_chan_expire(&sh->sc.chans, uv_now(&sh->loop));
    atomic_store_explicit(&sh->sc.stats->hist_entries, sh->sc.chans.entries, memory_order_relaxed);
    atomic_store_explicit(&sh->sc.stats->hist_evicted, sh->sc.chans.evicted, memory_order_relaxed);
    if (sh->sc.pending)
        shard_arrivals(sh, 1);
    /* Only HANDSHAKE and DRAINING connections live here: idle OPEN ones cost nothing. */
    wsp_table_t *tb = &sh->sc.table[WSP_SHARD_T_TIMED];
    for (uint32_t i = tb->n; i-- > 0;) {
        wsp_conn_t *c = tb->v[i];
        if (!wsp_conn_expired(c, sh->sc.tick))
            continue;
        wsp_conn_close_why(c, wsp_conn_state(c) == WSP_CONN_HANDSHAKE ? WSP_CLOSE_HS_TIMEOUT
                                                                      : WSP_CLOSE_CLIENT);
    }
}

static void shard_main(void *arg)
{
    wsp_shard_t *sh = arg;
    int rv = uv_run(&sh->loop, UV_RUN_DEFAULT);
    (void)rv; /* non-zero only if handles remain, which uv_loop_close() reports below */
    /* Broadcasts queued after the last wake still owe their report. */
    wsp_bcast_t *b;
    static const wsp_bcast_report_t none = {0}; /* not walked: counts nothing */
    while ((b = wsp_spsc_pop(sh->ring)) != NULL)
        wsp_bcast_done(b, &none);
    sh->loop_close_rv = uv_loop_close(&sh->loop);
    atomic_store_explicit(&sh->exited, 1, memory_order_release);
    rv = uv_async_send(sh->exited_async);
    (void)rv; /* only fails for a non-async handle */
}

static void on_shard_handle_close(uv_handle_t *h) { (void)h; }

/* Closes what a shard that never ran holds: the listening socket if no handle took it, the
 * handles initialised so far and the loop. */
static void shard_teardown(wsp_shard_t *sh)
{
    if (sh->listen_fd >= 0)
        close(sh->listen_fd);
    sh->listen_fd = -1;
    if (!sh->loop_open)
        return;
    uv_handle_t *hs[] = {(uv_handle_t *)&sh->wake, (uv_handle_t *)&sh->tick_timer,
                         (uv_handle_t *)&sh->step_timer, (uv_handle_t *)&sh->listener,
                         (uv_handle_t *)&sh->ho_poll};
    for (unsigned i = 0; i < sh->nhandles; i++)
        uv_close(hs[i], on_shard_handle_close);
    (void)uv_run(&sh->loop, UV_RUN_DEFAULT); /* runs the close callbacks */
    sh->loop_close_rv = uv_loop_close(&sh->loop);
    sh->loop_open = 0;
}

/* The loop and its handles: wake-up, 1 s tick, step timer, listener. Whatever fails is
 * undone by shard_teardown(). */
static int shard_open(wsp_shard_t *sh)
{
    int rv = uv_loop_init(&sh->loop);
    if (rv < 0)
        return rv;
    sh->loop_open = 1;
    sh->loop.data = &sh->sc; /* what conn.c finds through any handle */
    if ((rv = uv_async_init(&sh->loop, &sh->wake, on_shard_wake)) < 0)
        return rv;
    sh->nhandles++;
    if ((rv = uv_timer_init(&sh->loop, &sh->tick_timer)) < 0)
        return rv;
    sh->nhandles++;
    if ((rv = uv_timer_init(&sh->loop, &sh->step_timer)) < 0)
        return rv;
    sh->nhandles++;
    if ((rv = uv_tcp_init(&sh->loop, &sh->listener)) < 0)
        return rv;
    sh->nhandles++;
    if ((rv = uv_tcp_open(&sh->listener, sh->listen_fd)) < 0)
        return rv;
    sh->listen_fd = -1;     /* the handle owns it now */
    if (sh->ho.sock >= 0) { /* a live upgrade's: listen once the old shard stopped accepting */
        if ((rv = uv_poll_init(&sh->loop, &sh->ho_poll, sh->ho.sock)) < 0)
            return rv;
        sh->nhandles++;
        sh->adopting = 1;
        rv = uv_poll_start(&sh->ho_poll, UV_READABLE, wsp__shard_on_ho_readable);
    } else {
        rv = uv_listen((uv_stream_t *)&sh->listener, WSP_SHARD_BACKLOG, wsp__shard_on_connection);
    }
    if (rv < 0)
        return rv;
    if ((rv = uv_timer_start(&sh->tick_timer, on_shard_tick, 1000, 1000)) < 0)
        return rv;
    if (sh->sc.cfg->ping_interval)
        rv = uv_timer_start(&sh->step_timer, wsp__shard_on_step, WSP_SHARD_STEP_MS,
                            WSP_SHARD_STEP_MS);
    return rv;
}

/* Picks how the pass sends: a ring of its own (--io-uring auto or on), else uv_try_write. */
static int shard_send_path(wsp_shard_t *sh)
{
    const wsp_config_t *cfg = sh->sc.cfg;
    if (cfg->io_uring != WSP_CONFIG_URING_OFF) {
        int rv = wsp_uring_new(&sh->uring, WSP_SHARD_URING);
        if (rv < 0 && cfg->io_uring == WSP_CONFIG_URING_ON)
            return rv;
        if (rv < 0)
            WSP_LOG(WSP_LOG_WARN, "shard=%u event=io_uring_unavailable error=%s", sh->sc.id,
                    uv_err_name(rv));
    }
    WSP_LOG(WSP_LOG_INFO, "shard=%u event=send_path path=%s", sh->sc.id,
            sh->uring ? "io_uring" : "uv_try_write");
    return 0;
}

/* TLS: the shard's cipher context, its buffers and (with io_uring) the arena. 0 or -ENOMEM. */
static int shard_tls_init(wsp_shard_t *sh, wsp_tlsterm_t *tls)
{
    sh->tls.term = tls;
    sh->tls.cx = EVP_CIPHER_CTX_new();
    sh->tls.pt = malloc(WSP_TLSREC_OPEN_MAX);
    sh->tls.out = malloc(WSP_TLSCONN_OUT);
    sh->arena = sh->uring ? malloc(WSP_SHARD_ARENA) : NULL;
    if (sh->tls.cx == NULL || sh->tls.pt == NULL || sh->tls.out == NULL ||
        (sh->uring && sh->arena == NULL))
        return -ENOMEM;
    sh->sc.tls = &sh->tls;
    return 0;
}

int wsp_shard_new(wsp_shard_t **out, unsigned id, const wsp_config_t *cfg, int listen_fd,
                  int ho_sock, wsp_limits_t *lim, wsp_shard_stats_t *stats, wsp_auth_shard_t *auth,
                  uv_async_t *exited, wsp_tlsterm_t *tls)
{
    wsp_shard_t *sh = wsp_xcalloc(1, sizeof(*sh));
    sh->ho.sock = -1;
    atomic_init(&sh->ho_requested, 0);
    atomic_init(&sh->ho_done, 0);
    if (ho_sock >= 0 && wsp_handoff_init(&sh->ho, ho_sock) < 0) {
        wsp_handoff_free(&sh->ho); /* closes ho_sock */
        close(listen_fd);
        free(sh);
        return -ENOMEM;
    }
    sh->sc.id = id;
    sh->sc.auth = auth;
    sh->sc.cfg = cfg;
    sh->sc.lim = lim;
    sh->sc.stats = stats;
    sh->sc.log_tick = 0xFF;
    sh->sc.on_conn_freed = on_shard_conn_freed;
    sh->sc.arrive = wsp_arrival_start;
    sh->sc.gone = wsp_arrival_gone;
    sh->sc.loop = &sh->loop;
    sh->pick.min_bytes = cfg->deflate_min_bytes;
    sh->pick.stats = stats;
    sh->pick.framed = wsp_bcast_build_framed;
    sh->listen_fd = listen_fd;
    sh->exited_async = exited;
    atomic_init(&sh->stop_requested, 0);
    atomic_init(&sh->exited, 0);
    sh->ring = wsp_spsc_new(WSP_SHARD_RING);
    sh->sc.rbuf = malloc(WSP_SHARD_RBUF);
    int rv = sh->ring && sh->sc.rbuf ? 0 : -ENOMEM;
    if (rv == 0)
        rv = shard_open(sh);
    if (rv == 0)
        rv = shard_send_path(sh);
    if (rv == 0 && tls)
        rv = shard_tls_init(sh, tls);
    if (rv < 0) {
        wsp_shard_free(sh); /* never started: tears down what shard_open() made */
        return rv;
    }
    *out = sh;
    return 0;
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

int wsp_shard_set_history(wsp_shard_t *sh, const wsp_shard_hist_t *h)
{
    wsp_chan_table_init(&sh->sc.chans, h->hist, h->epoch, h->epoch ? strlen(h->epoch) : 0);
    sh->sc.pos = h->pos;
    sh->sc.fetchq = h->fetchq;
    sh->sc.peers = h->peers;
    int rv = wsp_resume_queue_init(&sh->results, &sh->wake);
    sh->results_init = rv == 0;
    return rv;
}

void wsp_shard_post_resume(wsp_shard_t *sh, wsp_resume_t *r)
{
    wsp_resume_queue_push(&sh->results, r);
}

void wsp_shard_stop(wsp_shard_t *sh)
{
    atomic_store_explicit(&sh->stop_requested, 1, memory_order_release);
    (void)uv_async_send(&sh->wake); /* only fails for a handle that is not an async: a bug */
}

int wsp_shard_join(wsp_shard_t *sh)
{
    int rv = uv_thread_join(&sh->thread);
    return rv < 0 ? rv : sh->loop_close_rv;
}

void wsp_shard_free(wsp_shard_t *sh)
{
    if (sh == NULL)
        return;
    if (!sh->started)
        shard_teardown(sh); /* created but never run: its handles and loop are still open */
    wsp_handoff_free(&sh->ho);
    /* Connections that were waiting: their fetches are back (the coordinator closed its
     * Redis link before freeing shards), so every wsp_resume_t is the shard's alone. */
    wsp_arrival_free(&sh->sc);
    if (sh->results_init)
        wsp_resume_queue_free(&sh->results);
    wsp_chan_table_free(&sh->sc.chans); /* no subscriber left after a stop; history freed */
    wsp_uphist_free(&sh->ho_hist);      /* a live upgrade's snapshot, if never sent */
    wsp_pick_shard_free(&sh->pick);
    wsp_deflate_free(sh->sc.pmd.z);
    wsp_uring_free(sh->uring);
    wsp_spsc_free(sh->ring);
    free(sh->backlog); /* emptied by wsp_shard_backlog_drop() after the join */
    for (int t = 0; t < WSP_SHARD_T_N; t++)
        wsp_table_free(&sh->sc.table[t]);
    wsp_table_free(&sh->users);
    free(sh->sc.rbuf);
    EVP_CIPHER_CTX_free(sh->tls.cx);
    free(sh->tls.pt);
    free(sh->tls.out);
    free(sh->arena);
    free(sh);
}
