#include "liveup.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "channels.h"
#include "jwt.h"
#include "log.h"
#include "net.h"
#include "redis.h"
#include "reexec.h"

/* A broadcast kept for later: published by the old process while handing over, or sent by
 * the supervisor to a new worker that has not taken over yet. */
struct liveup_queued_s {
    struct liveup_queued_s *next;
    uint64_t seq;
    uint8_t chan_len;
    char chan[WSP_CHANNEL_NAME_MAX];
    uint64_t cseq; /* the channel's number and epoch (issue #17) */
    uint8_t epoch_len;
    char epoch[WSP_CONFIG_EPOCH_MAX];
    uint32_t len;
    uint8_t payload[];
};

/* Appends a copy of a broadcast to the queue ending at *tail. Returns 0 or -ENOMEM. */
static int liveup_queue(liveup_queued_t ***tail, const char *chan, size_t chan_len,
                        const uint8_t *payload, size_t len, uint64_t seq, const wsp_pub_chseq_t *cs)
{
    if (chan_len > WSP_CHANNEL_NAME_MAX || (cs && cs->epoch_len > WSP_CONFIG_EPOCH_MAX))
        return -EINVAL;
    /* Only while a live upgrade runs: one per broadcast, not per connection. */
    liveup_queued_t *e = malloc(sizeof(*e) + len);
    if (e == NULL)
        return -ENOMEM;
    e->next = NULL;
    e->seq = seq;
    e->chan_len = (uint8_t)chan_len;
    if (chan_len)
        memcpy(e->chan, chan, chan_len);
    e->cseq = cs ? cs->seq : 0;
    e->epoch_len = cs ? (uint8_t)cs->epoch_len : 0;
    if (e->epoch_len)
        memcpy(e->epoch, cs->epoch, e->epoch_len);
    e->len = (uint32_t)len;
    memcpy(e->payload, payload, len);
    **tail = e;
    *tail = &e->next;
    return 0;
}

static void liveup_queue_free(liveup_queued_t **head, liveup_queued_t ***tail)
{
    while (*head) {
        liveup_queued_t *e = *head;
        *head = e->next;
        free(e);
    }
    *tail = head;
}

/* --- live upgrade (issue #20): the old process --- */

static void on_liveup_closed(uv_handle_t *h)
{
    wsp_liveup_t *lu = h->data;
    lu->closing--;
}

static void liveup_close(wsp_liveup_t *lu, uv_handle_t *h)
{
    if (h->loop == NULL || uv_is_closing(h))
        return; /* never initialised (the struct is zeroed), or closing */
    h->data = lu;
    lu->closing++;
    uv_close(h, on_liveup_closed);
}

/* Closes the control socket and its watcher. */
static void liveup_close_ctl(wsp_liveup_t *lu)
{
    liveup_close(lu, (uv_handle_t *)&lu->ctl_poll);
    if (lu->ctl >= 0)
        close(lu->ctl);
    lu->ctl = -1;
}

/* The upgrade failed before anything was handed over: this process keeps serving. */
static void liveup_fail(wsp_liveup_t *lu, const char *why, int err)
{
    WSP_LOG(WSP_LOG_ERROR,
            "event=upgrade_failed reason=%s error=%s path=%s pid=%d "
            "msg=\"this process keeps serving\"",
            why, err ? uv_err_name(err) : "none", wsp_reexec_path(), (int)lu->peer_pid);
    if (lu->child.loop && !uv_is_closing((uv_handle_t *)&lu->child))
        (void)uv_process_kill(&lu->child, SIGKILL); /* ESRCH: it is gone already */
    liveup_close(lu, (uv_handle_t *)&lu->timer);
    liveup_close_ctl(lu);
    for (unsigned i = 0; lu->ho_socks && i < lu->nshards; i++)
        if (lu->ho_socks[i] >= 0) {
            close(lu->ho_socks[i]);
            lu->ho_socks[i] = -1;
        }
    lu->state = WSP_UP_NONE;
}

static void on_liveup_child_exit(uv_process_t *p, int64_t status, int sig)
{
    wsp_liveup_t *lu = WSP_CONTAINER_OF(p, wsp_liveup_t, child);
    if (lu->state == WSP_UP_SPAWNED) {
        char why[48];
        snprintf(why, sizeof(why), sig ? "new_binary_signal_%d" : "new_binary_exit_%d",
                 sig ? sig : (int)status);
        liveup_fail(lu, why, 0);
    } else if (lu->state != WSP_UP_NONE) {
        WSP_LOG(WSP_LOG_ERROR, "event=upgrade_new_process_died pid=%d status=%d signal=%d", p->pid,
                (int)status, sig);
    }
    liveup_close(lu, (uv_handle_t *)p);
}

static void on_liveup_timeout(uv_timer_t *t)
{
    wsp_liveup_t *lu = WSP_CONTAINER_OF(t, wsp_liveup_t, timer);
    if (lu->state == WSP_UP_SPAWNED)
        liveup_fail(lu, "timeout", -ETIMEDOUT);
}

/* A datagram being filled on the control socket. */
typedef struct liveup_writer_s {
    wsp_liveup_t *lu;
    wsp_ho_writer_t *w;
    uint8_t *buf;
} liveup_writer_t;

/* Sends the datagram filled so far and starts the next one in the same buffer. */
static int on_liveup_flush(void *arg)
{
    liveup_writer_t *lw = arg;
    int rv = wsp_reexec_send(lw->lu->ctl, lw->buf, lw->w->len, NULL, 0);
    if (rv == 0)
        wsp_ho_begin(lw->w, lw->buf, WSP_HO_DGRAM_MAX);
    return rv;
}

/* One channel's last number, before END: the new process numbers on from it (issue #17). */
static int on_liveup_cseq(void *arg, const char *name, size_t len, uint64_t seq)
{
    liveup_writer_t *lw = arg;
    wsp_ho_cseq_t c = {.seq = seq, .name = name, .len = (uint8_t)len};
    int rv = wsp_ho_put_cseq(lw->w, &c);
    if (rv == -ENOBUFS && (rv = on_liveup_flush(lw)) == 0)
        rv = wsp_ho_put_cseq(lw->w, &c);
    return rv;
}

/* The history shard 0 held when it stopped taking broadcasts (issue #17), oldest first: the
 * new process records it before anything it publishes. Redis keeps its own. */
static int liveup_send_history(wsp_liveup_t *lu, liveup_writer_t *lw)
{
    wsp_uphist_t *h = wsp_shard_history(lu->shards[0]);
    uint64_t skipped = 0;
    uv_update_time(lu->loop); /* the shards' clock: the entries' ages count to now */
    int rv = wsp_uphist_put(h, uv_now(lu->loop), lw->w, on_liveup_flush, lw, &skipped);
    WSP_LOG(rv < 0 || skipped ? WSP_LOG_WARN : WSP_LOG_INFO,
            "event=upgrade_history_sent entries=%u channels=%u skipped=%llu error=%s", h->n,
            h->nnames, (unsigned long long)skipped, rv < 0 ? uv_err_name(rv) : "none");
    wsp_uphist_free(h);
    return rv;
}

/* Every shard sent its connections: the broadcasts queued meanwhile and END go to the new
 * process, which publishes from here on; this one stops publishing and drains what stayed. */
static void liveup_end(wsp_liveup_t *lu)
{
    static uint8_t buf[WSP_HO_DGRAM_MAX]; /* the coordinator thread's, once per upgrade */
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    liveup_writer_t lw = {.lu = lu, .w = &w, .buf = buf};
    int rv = liveup_send_history(lu, &lw);
    unsigned nq = 0;
    for (liveup_queued_t *e = lu->q; e && rv == 0; e = e->next, nq++) {
        wsp_ho_bcast_t b = {.seq = e->seq,
                            .chan = e->chan,
                            .chan_len = e->chan_len,
                            .payload = e->payload,
                            .len = e->len,
                            .cseq = e->cseq,
                            .epoch = e->epoch,
                            .epoch_len = e->epoch_len};
        if ((rv = wsp_ho_put_bcast(&w, &b)) == -ENOBUFS && (rv = on_liveup_flush(&lw)) == 0)
            rv = wsp_ho_put_bcast(&w, &b);
    }
    if (rv == 0)
        rv = wsp_chan_seqs_each(wsp_pub_chan_seqs(lu->pub), on_liveup_cseq, &lw);
    if (rv == 0 && lu->mark_len && (rv = wsp_ho_put_mark(&w, lu->mark, lu->mark_len)) == -ENOBUFS &&
        (rv = on_liveup_flush(&lw)) == 0)
        rv = wsp_ho_put_mark(&w, lu->mark, lu->mark_len);
    wsp_ho_end_t end = {.seq = wsp_pub_seq(lu->pub),
                        .sup_seq = lu->sup_seq,
                        .next_tick_ms = wsp_pub_next_tick(lu->pub)};
    if (rv == 0 && (rv = wsp_ho_put_end(&w, &end)) == -ENOBUFS && (rv = on_liveup_flush(&lw)) == 0)
        rv = wsp_ho_put_end(&w, &end);
    /* systemd must know the new main process before this one exits: it would stop the unit. */
    char state[48];
    snprintf(state, sizeof(state), "MAINPID=%d", (int)lu->peer_pid);
    int nrv = lu->cfg->worker_fd < 0 ? wsp_reexec_notify_barrier(state, 5000) : 0;
    if (nrv < 0)
        WSP_LOG(WSP_LOG_WARN, "event=sd_notify_failed error=%s", uv_err_name(nrv));
    if (rv == 0)
        rv = wsp_reexec_send(lu->ctl, buf, w.len, NULL, 0);
    liveup_queue_free(&lu->q, &lu->qtail);
    lu->state = WSP_UP_HANDED;
    wsp_pub_stop(lu->pub);
    wsp_pub_close(lu->pub); /* the new process serves the admin API on the same socket */
    liveup_close_ctl(lu);
    lu->on_handed(lu->user);
    WSP_LOG(rv < 0 ? WSP_LOG_ERROR : WSP_LOG_INFO,
            "event=upgrade_handed_over pid=%d seq=%llu queued=%u redis_marker=%s handover_ms=%llu "
            "total_ms=%llu error=%s",
            (int)lu->peer_pid, (unsigned long long)end.seq, nq, lu->mark_len ? lu->mark : "-",
            (unsigned long long)((wsp_net_mono_ns() - lu->ready_ns) / 1000000),
            (unsigned long long)((wsp_net_mono_ns() - lu->t0_ns) / 1000000),
            rv < 0 ? uv_err_name(rv) : "none");
}

static void on_liveup_end_timer(uv_timer_t *t)
{
    liveup_end(WSP_CONTAINER_OF(t, wsp_liveup_t, timer));
}

/* Old: the marker came back (status 0: everything Redis sent before it is queued), could not
 * be sent, or its time ran out: END goes, with MARK only in the first case. From here on what
 * Redis sends is the new process's. Called inside hiredis's callbacks: END goes from the loop
 * (liveup_end() stops the Redis link and, with nothing left to drain, the whole loop). */
static void on_liveup_marked(void *ud, int status)
{
    wsp_liveup_t *lu = ud;
    if (lu->state != WSP_UP_HANDING || lu->marking != WSP_UP_MARK_OUT)
        return;                     /* late: END went without it */
    lu->marking = WSP_UP_MARK_DONE; /* a shard event before END must not send another */
    wsp_pub_mute_redis(lu->pub);
    if (status < 0) {
        WSP_LOG(WSP_LOG_WARN,
                "event=upgrade_redis_marker_failed error=%s msg=\"the new process delivers "
                "all it held: a message Redis sent both may arrive twice\"",
                uv_err_name(status));
        lu->mark[0] = '\0';
        lu->mark_len = 0;
    }
    int rv = uv_timer_start(&lu->timer, on_liveup_end_timer, 0, 0);
    if (rv < 0) { /* cannot fail for an initialised timer; if it did, END must still go */
        WSP_LOG(WSP_LOG_ERROR, "event=upgrade_timer_failed error=%s", uv_err_name(rv));
        liveup_end(lu);
    }
}

static void on_liveup_mark_timeout(uv_timer_t *t)
{
    on_liveup_marked(WSP_CONTAINER_OF(t, wsp_liveup_t, timer), -ETIMEDOUT);
}

/* Old: every shard handed over. Under --redis, with a new process that holds (READY said so),
 * the marker goes out first; END when it is back. */
static void liveup_finish(wsp_liveup_t *lu)
{
    if (lu->marking != WSP_UP_MARK_NONE)
        return; /* out, or back with END due from the loop */
    wsp_redis_t *r = wsp_pub_redis(lu->pub);
    if (!(lu->ready_flags & WSP_HO_READY_REDIS) || r == NULL) {
        liveup_end(lu);
        return;
    }
    lu->marking = WSP_UP_MARK_OUT;
    int rv = uv_timer_start(&lu->timer, on_liveup_mark_timeout, WSP_LIVEUP_MARK_MS, 0);
    if (rv < 0) {
        lu->marking = WSP_UP_MARK_DONE;
        liveup_end(lu);
        return;
    }
    wsp_redis_mark(r, on_liveup_marked, lu, lu->mark, sizeof(lu->mark)); /* may call back now */
    if (lu->marking == WSP_UP_MARK_OUT)
        lu->mark_len = strlen(lu->mark);
}

/* The new process is ready: stop publishing (queue instead) and hand the shards over. */
static void liveup_handover(wsp_liveup_t *lu)
{
    lu->ready_ns = wsp_net_mono_ns();
    lu->state = WSP_UP_HANDING;
    (void)uv_timer_stop(&lu->timer);   /* cannot fail */
    (void)uv_poll_stop(&lu->ctl_poll); /* nothing more to read from the new one */
    WSP_LOG(WSP_LOG_INFO, "event=upgrade_handover pid=%d shards=%u", (int)lu->peer_pid,
            lu->nshards);
    for (unsigned i = 0; i < lu->nshards; i++) {
        wsp_shard_handover(lu->shards[i], lu->ho_socks[i]);
        lu->ho_socks[i] = -1;
    }
}

/* The HELLO: the port, the listeners, the shards' sockets (the new process's ends) and the
 * admin API's listener, all in one datagram. */
static int liveup_hello(wsp_liveup_t *lu, const int *theirs)
{
    uint8_t buf[128];
    int fds[2 * WSP_CONFIG_MAX_THREADS + 1];
    unsigned n = 0;
    for (unsigned i = 0; i < lu->nshards; i++)
        fds[n++] = lu->lfds[i];
    for (unsigned i = 0; i < lu->nshards; i++)
        fds[n++] = theirs[i];
    int afd = wsp_pub_admin_fd(lu->pub);
    if (afd >= 0)
        fds[n++] = afd;
    wsp_ho_hello_t h = {.pid = (uint32_t)getpid(),
                        .shards = (uint16_t)lu->nshards,
                        .port = (uint16_t)lu->port,
                        .admin = afd >= 0,
                        .seq = wsp_pub_seq(lu->pub)};
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    int rv = wsp_ho_put_hello(&w, &h);
    if (rv == 0 && lu->auth) { /* the user-id key: the ids the connections carry stay valid */
        const char *alg = wsp_jwt_alg_name(lu->cfg->auth_jwt_alg);
        wsp_ho_key_t k = {.alg = alg, .alg_len = (uint8_t)strlen(alg)};
        wsp_auth_sipkey(lu->auth, k.sipkey);
        rv = wsp_ho_put_key(&w, &k);
        OPENSSL_cleanse(k.sipkey, sizeof(k.sipkey));
    }
    if (rv == 0)
        rv = wsp_reexec_send(lu->ctl, buf, w.len, fds, n);
    OPENSSL_cleanse(buf, sizeof(buf)); /* the key does not linger on the stack */
    return rv;
}

/* Socketpairs: control (ours in lu->ctl, theirs in *ctl_theirs; unless ctl_theirs is NULL) and
 * one per shard (ours in lu->ho_socks, theirs in theirs[]). */
static int liveup_sockets(wsp_liveup_t *lu, int *ctl_theirs, int *theirs)
{
    int sv[2];
    int rv = 0;
    if (ctl_theirs) { /* else the supervisor made it */
        if ((rv = wsp_reexec_socketpair(sv)) < 0)
            return rv;
        lu->ctl = sv[0];
        *ctl_theirs = sv[1];
    }
    for (unsigned i = 0; i < lu->nshards; i++) {
        if ((rv = wsp_reexec_socketpair(sv)) < 0)
            return rv;
        lu->ho_socks[i] = sv[0];
        theirs[i] = sv[1];
    }
    /* A new process that stops reading must not block a shard for good. */
    for (unsigned i = 0; i < lu->nshards && rv == 0; i++)
        rv = wsp_reexec_timeout(lu->ho_socks[i], lu->cfg->upgrade_timeout * 1000);
    return rv < 0 ? rv : wsp_reexec_timeout(lu->ctl, lu->cfg->upgrade_timeout * 1000);
}

static void on_liveup_ctl(uv_poll_t *p, int status, int events);

/* Starts an upgrade: with ctl < 0 (SIGUSR2) makes the control socket and starts the binary
 * at our path; in a supervised worker ctl is the control socket of the new worker the
 * supervisor started (pid peer). Then the shards' sockets and HELLO; READY is awaited. */
static void liveup_begin(wsp_liveup_t *lu, int ctl, uint32_t peer)
{
    int ctl_theirs = -1, theirs[WSP_CONFIG_MAX_THREADS];
    for (unsigned i = 0; i < lu->nshards; i++)
        theirs[i] = lu->ho_socks[i] = -1;
    lu->state = WSP_UP_SPAWNED;
    lu->marking = WSP_UP_MARK_NONE; /* an earlier attempt failed before READY: none went */
    lu->mark_len = 0;
    lu->mark[0] = '\0';
    lu->ready_flags = 0;
    lu->t0_ns = wsp_net_mono_ns();
    lu->ctl = ctl;
    lu->peer_pid = peer;
    int rv = liveup_sockets(lu, ctl < 0 ? &ctl_theirs : NULL, theirs);
    const char *why = "sockets";
    if (rv == 0 && ctl < 0) {
        why = "spawn";
        rv = wsp_reexec_spawn(lu->loop, &lu->child, ctl_theirs, lu->cfg->epoch,
                              on_liveup_child_exit);
        lu->peer_pid = rv == 0 ? (uint32_t)lu->child.pid : 0;
        if (rv < 0 && lu->child.loop) /* uv_spawn() initialised the handle anyway */
            liveup_close(lu, (uv_handle_t *)&lu->child);
    }
    if (rv == 0 && (rv = liveup_hello(lu, theirs)) < 0)
        why = "hello";
    for (unsigned i = 0; i < lu->nshards; i++)
        if (theirs[i] >= 0)
            close(theirs[i]); /* the new process has them now, or never will */
    if (ctl_theirs >= 0)
        close(ctl_theirs);
    if (rv == 0 && ((rv = uv_poll_init(lu->loop, &lu->ctl_poll, lu->ctl)) < 0 ||
                    (rv = uv_poll_start(&lu->ctl_poll, UV_READABLE, on_liveup_ctl)) < 0 ||
                    (rv = uv_timer_init(lu->loop, &lu->timer)) < 0 ||
                    (rv = uv_timer_start(&lu->timer, on_liveup_timeout,
                                         lu->cfg->upgrade_timeout * 1000ull, 0)) < 0))
        why = "watch";
    if (rv < 0) {
        liveup_fail(lu, why, rv);
        return;
    }
    WSP_LOG(WSP_LOG_INFO, "event=upgrade_started pid=%d path=%s timeout_s=%u", (int)lu->peer_pid,
            wsp_reexec_path(), lu->cfg->upgrade_timeout);
}

void wsp_liveup_start(wsp_liveup_t *lu)
{
    if (lu->state != WSP_UP_NONE || lu->closing || lu->cfg->worker_fd >= 0) {
        WSP_LOG(WSP_LOG_WARN, "event=upgrade_ignored reason=%s",
                lu->cfg->worker_fd >= 0 ? "worker_signal_the_supervisor" : "busy");
        return;
    }
    liveup_begin(lu, -1, 0);
}

void wsp_liveup_offer(wsp_liveup_t *lu, int ctl, uint32_t peer)
{
    if (lu->state != WSP_UP_NONE || lu->closing) {
        WSP_LOG(WSP_LOG_WARN, "event=upgrade_ignored reason=busy");
        close(ctl); /* the new worker sees EOF and gives up */
        return;
    }
    liveup_begin(lu, ctl, peer);
}

/* --- live upgrade: the new process --- */

/* Publishes a kept broadcast with the numbers it was given. */
static void liveup_relay(wsp_liveup_t *lu, const liveup_queued_t *e, const char *reason)
{
    wsp_pub_chseq_t cs = {.seq = e->cseq, .epoch = e->epoch, .epoch_len = e->epoch_len};
    wsp_pub_relay(lu->pub, e->chan_len ? e->chan : NULL, e->chan_len, e->payload, e->len, e->seq,
                  &cs, reason);
}

/* New process: one HIST record (issue #17). An entry of another epoch, or with history off
 * or under --redis here, is dropped (counted): the new process serves without it. */
static int liveup_hist(wsp_liveup_t *lu, const uint8_t *body, uint32_t len)
{
    wsp_ho_hist_t r;
    int rv = wsp_ho_get_hist(body, len, &r);
    if (rv < 0)
        return rv;
    if (lu->cfg->history_size == 0 || lu->cfg->redis_host[0] != '\0' || lu->on_history == NULL)
        rv = -ENOTSUP;
    else
        rv =
            wsp_uphist_add(&lu->hist, &r, lu->cfg->epoch, strlen(lu->cfg->epoch), uv_now(lu->loop));
    lu->hist_dropped += rv < 0;
    return 0;
}

/* New process, at the takeover: the history carried over goes to every shard, ahead of the
 * broadcasts relayed next (the same rings, in order). Posted even when empty: connections
 * that came in before wait for it (server/coordinator.c). */
static void liveup_restore(wsp_liveup_t *lu)
{
    uint32_t n = lu->hist.n, nch = lu->hist.nnames;
    wsp_uphist_t *h = n ? wsp_uphist_move(&lu->hist) : NULL;
    int rv = lu->on_history ? lu->on_history(lu->user, h) : 0; /* h is the callee's */
    rv = n && h == NULL ? -ENOMEM : rv;
    wsp_uphist_free(&lu->hist); /* still here only when it could not move */
    if (n || lu->hist_dropped || rv < 0)
        WSP_LOG(rv < 0 || lu->hist_dropped ? WSP_LOG_WARN : WSP_LOG_INFO,
                "event=upgrade_history entries=%u channels=%u dropped=%llu error=%s", n, nch,
                (unsigned long long)lu->hist_dropped, rv < 0 ? uv_err_name(rv) : "none");
}

/* Everything arrived: publish what the old process queued, then what the supervisor sent
 * meanwhile that the old one had not delivered, and serve: numbering, tick, admin API, Redis. */
static void liveup_takeover(wsp_liveup_t *lu)
{
    lu->state = WSP_UP_NONE;
    uint64_t conns = 0, queued = 0;
    for (unsigned i = 0; i < lu->nshards; i++)
        conns += atomic_load_explicit(&lu->stats->shard[i].open, memory_order_relaxed);
    liveup_restore(lu);
    for (liveup_queued_t *e = lu->q; e; e = e->next, queued++)
        liveup_relay(lu, e, "handover");
    for (liveup_queued_t *e = lu->supq; e; e = e->next)
        if (e->seq > lu->end.sup_seq) {
            lu->sup_seq = e->seq;
            liveup_relay(lu, e, "supervisor");
        }
    liveup_queue_free(&lu->q, &lu->qtail);
    liveup_queue_free(&lu->supq, &lu->supqtail);
    wsp_pub_resume(lu->pub, lu->end.seq, lu->end.next_tick_ms);
    int rv = wsp_pub_open(lu->pub);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=upgrade_publisher_failed error=%s",
                uv_err_name(rv <= -WSP_PUB_EADMIN ? rv + WSP_PUB_EADMIN : rv));
    /* After what the old process received before its marker: what Redis sent us after it. */
    wsp_pub_release(lu->pub, lu->mark_len ? lu->mark : NULL, lu->mark_len);
    liveup_close_ctl(lu);
    WSP_LOG(WSP_LOG_INFO,
            "event=listening bind=%s port=%d threads=%u path=%s interval=%u admin_port=%d",
            lu->cfg->bind, lu->port, lu->nshards, lu->cfg->path, lu->cfg->interval,
            wsp_pub_admin_port(lu->pub));
    WSP_LOG(WSP_LOG_INFO,
            "event=upgrade_complete from_pid=%d conns=%llu queued=%llu seq=%llu adopt_ms=%llu",
            (int)lu->peer_pid, (unsigned long long)conns, (unsigned long long)queued,
            (unsigned long long)lu->end.seq,
            (unsigned long long)((wsp_net_mono_ns() - lu->t0_ns) / 1000000));
    /* The old process named us MAINPID already; READY=1 again ends the reload. A worker's
     * supervisor stays the main process. */
    if (lu->cfg->worker_fd < 0 && (rv = wsp_reexec_notify("READY=1")) < 0)
        WSP_LOG(WSP_LOG_WARN, "event=sd_notify_failed error=%s", uv_err_name(rv));
}

/* The new process's control socket: queued broadcasts, then END. */
static int liveup_read(wsp_liveup_t *lu)
{
    static uint8_t buf[WSP_HO_DGRAM_MAX]; /* the coordinator thread's */
    for (;;) {
        unsigned nfds = 0;
        int fds[1];
        ssize_t n = wsp_reexec_recv(lu->ctl, buf, sizeof(buf), fds, 0, &nfds, MSG_DONTWAIT);
        if (n == -EAGAIN)
            return 0;
        if (n <= 0)
            return n == 0 ? -EPIPE : (int)n;
        wsp_ho_reader_t r;
        uint8_t type;
        const uint8_t *body;
        uint32_t len;
        int rv = wsp_ho_open(&r, buf, (size_t)n);
        while (rv == 0 && (rv = wsp_ho_next(&r, &type, &body, &len)) == 1) {
            wsp_ho_bcast_t b;
            if (type == WSP_HO_END) {
                rv = wsp_ho_get_end(body, len, &lu->end);
                lu->state = rv == 0 ? WSP_UP_ENDED : lu->state;
            } else if (type == WSP_HO_CSEQ) {
                wsp_ho_cseq_t c;
                if ((rv = wsp_ho_get_cseq(body, len, &c)) == 0)
                    rv = wsp_chan_seqs_set(wsp_pub_chan_seqs(lu->pub), c.name, c.len, c.seq);
            } else if (type == WSP_HO_BCAST && (rv = wsp_ho_get_bcast(body, len, &b)) == 0) {
                wsp_pub_chseq_t cs = {.seq = b.cseq, .epoch = b.epoch, .epoch_len = b.epoch_len};
                rv = liveup_queue(&lu->qtail, b.chan, b.chan_len, b.payload, b.len, b.seq, &cs);
            } else if (type == WSP_HO_HIST) {
                rv = liveup_hist(lu, body, len);
            } else if (type == WSP_HO_MARK) {
                const char *tok;
                size_t tlen;
                if ((rv = wsp_ho_get_mark(body, len, &tok, &tlen)) == 0) {
                    memcpy(lu->mark, tok, tlen);
                    lu->mark[tlen] = '\0';
                    lu->mark_len = tlen;
                }
            } else if (type != WSP_HO_BCAST && type != WSP_HO_CSEQ) {
                rv = -EBADMSG;
            }
        }
        if (rv < 0)
            return rv;
        if (lu->state == WSP_UP_ENDED)
            return 0;
    }
}

static int liveup_all_handed(const wsp_liveup_t *lu)
{
    for (unsigned i = 0; i < lu->nshards; i++)
        if (!wsp_shard_handover_done(lu->shards[i]))
            return 0;
    return 1;
}

/* READY came: hand over, unless this process serves TLS (issue #18) and the new one would
 * not adopt TLS connections (no --tls-cert, or a binary older than that): the upgrade fails
 * and this process keeps serving, rather than closing every wss:// client. */
static void liveup_got_ready(wsp_liveup_t *lu, const uint8_t *body, uint32_t len)
{
    uint8_t flags;
    (void)wsp_ho_get_ready(body, len, &flags); /* never fails */
    lu->ready_flags = flags;
    if (lu->cfg->tls_cert[0] != '\0' && !(flags & WSP_HO_READY_TLS))
        liveup_fail(lu, "new_process_without_tls", -EPROTONOSUPPORT);
    else
        liveup_handover(lu);
}

static void on_liveup_ctl(uv_poll_t *p, int status, int events)
{
    (void)events;
    wsp_liveup_t *lu = WSP_CONTAINER_OF(p, wsp_liveup_t, ctl_poll);
    if (lu->state == WSP_UP_SPAWNED) { /* old: the only thing to come is READY */
        static uint8_t buf[64];
        unsigned nfds = 0;
        int fds[1];
        ssize_t n = status < 0
                        ? status
                        : wsp_reexec_recv(lu->ctl, buf, sizeof(buf), fds, 0, &nfds, MSG_DONTWAIT);
        wsp_ho_reader_t r;
        uint8_t type = 0;
        const uint8_t *body;
        uint32_t len;
        if (n == -EAGAIN)
            return;
        if (n > 0 && wsp_ho_open(&r, buf, (size_t)n) == 0 &&
            wsp_ho_next(&r, &type, &body, &len) == 1 && type == WSP_HO_READY) {
            liveup_got_ready(lu, body, len);
        } else if (n <= 0 && lu->child.loop && !uv_is_closing((uv_handle_t *)&lu->child)) {
            /* Our child closed the socket: its exit (or the timeout) will say why. */
            (void)uv_poll_stop(p); /* cannot fail */
        } else {
            liveup_fail(lu, "no_ready", n < 0 ? (int)n : n == 0 ? -EPIPE : -EBADMSG);
        }
        return;
    }
    int rv = status < 0 ? status : liveup_read(lu);
    if (rv < 0) { /* the old process went away: serve what came */
        WSP_LOG(WSP_LOG_ERROR, "event=upgrade_control_lost error=%s", uv_err_name(rv));
        lu->state = WSP_UP_ENDED;
    }
    if (lu->state == WSP_UP_ENDED) {
        (void)uv_poll_stop(p); /* cannot fail */
        if (liveup_all_handed(lu))
            liveup_takeover(lu);
    }
}

/* The records after HELLO in its datagram: token auth's key, when the old process runs auth.
 * Anything else is refused: the upgrade fails and the old process keeps serving. */
static int liveup_hello_rest(wsp_liveup_t *lu, wsp_ho_reader_t *r)
{
    uint8_t type;
    const uint8_t *body;
    uint32_t len;
    int rv;
    while ((rv = wsp_ho_next(r, &type, &body, &len)) == 1) {
        wsp_ho_key_t k;
        if (type != WSP_HO_KEY || lu->key != 0 || wsp_ho_get_key(body, len, &k) < 0)
            return -EBADMSG;
        const char *mine = lu->cfg->auth_jwt_alg ? wsp_jwt_alg_name(lu->cfg->auth_jwt_alg) : "";
        lu->key = strlen(mine) == k.alg_len && memcmp(mine, k.alg, k.alg_len) == 0 ? 1 : -1;
        if (lu->key == 1)
            memcpy(lu->sipkey, k.sipkey, sizeof(lu->sipkey));
        OPENSSL_cleanse(k.sipkey, sizeof(k.sipkey));
    }
    return rv;
}

/* The HELLO, read before anything else is set up: which port and listeners, which sockets
 * the shards adopt from, the admin API's listener, token auth's key. Returns 0 or a negative
 * errno. */
int wsp_liveup_adopt_hello(wsp_liveup_t *lu, int *fds_out, int *port)
{
    uint8_t buf[128];
    int fds[2 * WSP_CONFIG_MAX_THREADS + 1];
    unsigned nfds = 0;
    int rv = wsp_reexec_timeout(lu->ctl, lu->cfg->upgrade_timeout * 1000);
    ssize_t n = rv < 0 ? rv
                       : wsp_reexec_recv(lu->ctl, buf, sizeof(buf), fds,
                                         2 * WSP_CONFIG_MAX_THREADS + 1, &nfds, 0);
    if (n <= 0)
        return n == 0 ? -EPIPE : (int)n;
    wsp_ho_reader_t r;
    wsp_ho_hello_t h = {0};
    uint8_t type = 0;
    const uint8_t *body;
    uint32_t len;
    rv = wsp_ho_open(&r, buf, (size_t)n);
    if (rv == 0 && (rv = wsp_ho_next(&r, &type, &body, &len)) == 1)
        rv = type == WSP_HO_HELLO ? wsp_ho_get_hello(body, len, &h) : -EBADMSG;
    if (rv == 0)
        rv = liveup_hello_rest(lu, &r);
    OPENSSL_cleanse(buf, sizeof(buf)); /* the key does not linger on the stack */
    if (rv == 0 && (h.shards != lu->cfg->threads || nfds != 2u * h.shards + h.admin))
        rv = -EINVAL; /* started with other arguments than the old process */
    for (unsigned i = 0; i < nfds; i++) {
        if (rv < 0)
            close(fds[i]);
        else if (i < h.shards)
            fds_out[i] = fds[i];
        else if (i < 2u * h.shards)
            lu->ho_socks[i - h.shards] = fds[i];
        else
            lu->admin_fd = fds[i];
    }
    if (rv < 0)
        return rv;
    *port = lu->port = h.port;
    lu->peer_pid = h.pid;
    lu->state = WSP_UP_ADOPTING;
    lu->t0_ns = wsp_net_mono_ns();
    WSP_LOG(WSP_LOG_INFO, "event=upgrade_adopting from_pid=%d port=%d shards=%u auth_key=%s",
            (int)h.pid, lu->port, h.shards,
            lu->key == 1  ? "same_algorithm"
            : lu->key < 0 ? "other_algorithm"
                          : "none");
    return 0;
}

void wsp_liveup_auth(wsp_liveup_t *lu, wsp_auth_t *auth)
{
    lu->auth = auth;
    if (lu->key == 1 && auth != NULL)
        wsp_auth_adopt_sipkey(auth, lu->sipkey);
    else if (lu->key != 0)
        WSP_LOG(WSP_LOG_WARN,
                "event=upgrade_auth_misfit reason=%s msg=\"connections the old process "
                "admitted by token close with 4001\"",
                auth == NULL ? "no_auth" : "other_algorithm");
    OPENSSL_cleanse(lu->sipkey, sizeof(lu->sipkey));
    lu->key = 0;
}

/* --- the coordinator's side --- */

void wsp_liveup_init(wsp_liveup_t *lu, uv_loop_t *loop, const wsp_config_t *cfg, int ctl)
{
    memset(lu, 0, sizeof(*lu));
    lu->loop = loop;
    lu->cfg = cfg;
    lu->ctl = ctl;
    lu->admin_fd = -1;
    lu->nshards = cfg->threads;
    lu->lfds = wsp_xcalloc(cfg->threads, sizeof(int));
    lu->ho_socks = wsp_xcalloc(cfg->threads, sizeof(int));
    for (unsigned i = 0; i < cfg->threads; i++)
        lu->lfds[i] = lu->ho_socks[i] = -1;
    lu->qtail = &lu->q;
    lu->supqtail = &lu->supq;
}

void wsp_liveup_attach(wsp_liveup_t *lu, wsp_pub_t *pub, wsp_shard_t **shards,
                       wsp_proc_stats_t *stats, int port, void (*on_handed)(void *), void *user)
{
    lu->pub = pub;
    lu->shards = shards;
    lu->stats = stats;
    lu->port = port;
    lu->on_handed = on_handed;
    lu->user = user;
}

/* New: READY goes, saying what this process adopts beyond the plain connections every
 * version takes. Returns 0 or a negative errno. */
static int liveup_send_ready(wsp_liveup_t *lu, uint8_t redis)
{
    if (lu->ready_sent)
        return 0;
    lu->ready_sent = 1;
    if (lu->timer.loop != NULL)
        (void)uv_timer_stop(&lu->timer); /* cannot fail */
    uint8_t buf[16];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    uint8_t flags = (lu->cfg->tls_cert[0] != '\0' ? WSP_HO_READY_TLS : 0) | redis;
    int rv;
    if ((rv = wsp_ho_put_ready(&w, flags)) < 0 ||
        (rv = wsp_reexec_send(lu->ctl, buf, w.len, NULL, 0)) < 0 ||
        (rv = uv_poll_init(lu->loop, &lu->ctl_poll, lu->ctl)) < 0 ||
        (rv = uv_poll_start(&lu->ctl_poll, UV_READABLE, on_liveup_ctl)) < 0)
        return rv;
    if (lu->cfg->redis_host[0] != '\0')
        WSP_LOG(redis ? WSP_LOG_INFO : WSP_LOG_WARN, "event=upgrade_ready redis_held=%d%s",
                redis != 0,
                redis ? ""
                      : " msg=\"not subscribed to Redis in time: a Redis message around the "
                        "handover may be lost or doubled\"");
    return 0;
}

/* New, under --redis, from the loop: READY once subscribed, or out of time. A failure stops
 * this process (as an operator's SIGTERM would): the old one times out and keeps serving. */
static void liveup_ready_later(wsp_liveup_t *lu, uint8_t redis)
{
    int rv = liveup_send_ready(lu, redis);
    if (rv < 0) {
        WSP_LOG(WSP_LOG_ERROR,
                "event=upgrade_ready_failed error=%s msg=\"this process stops; the old one "
                "keeps serving\"",
                uv_err_name(rv));
        (void)kill(getpid(), SIGTERM);
    }
}

static void on_liveup_held(void *ud) { liveup_ready_later(ud, WSP_HO_READY_REDIS); }

static void on_liveup_hold_timeout(uv_timer_t *t)
{
    liveup_ready_later(WSP_CONTAINER_OF(t, wsp_liveup_t, timer), 0);
}

int wsp_liveup_ready(wsp_liveup_t *lu)
{
    if (lu->cfg->redis_host[0] == '\0')
        return liveup_send_ready(lu, 0);
    /* Subscribed before READY, holding what comes: the old one's marker then cuts exactly. */
    int rv;
    if ((rv = uv_timer_init(lu->loop, &lu->timer)) < 0 ||
        (rv = uv_timer_start(&lu->timer, on_liveup_hold_timeout, WSP_LIVEUP_HOLD_MS, 0)) < 0 ||
        (rv = wsp_pub_hold(lu->pub, on_liveup_held, lu)) < 0) {
        WSP_LOG(WSP_LOG_WARN, "event=upgrade_redis_hold_failed error=%s", uv_err_name(rv));
        return liveup_send_ready(lu, 0);
    }
    return 0;
}

int wsp_liveup_busy(const wsp_liveup_t *lu)
{
    return lu->state == WSP_UP_HANDING || lu->state >= WSP_UP_ADOPTING;
}

int wsp_liveup_deliver(wsp_liveup_t *lu, const char *chan, size_t chan_len, const uint8_t *payload,
                       size_t len, uint64_t seq, const wsp_pub_chseq_t *cs, const char *reason)
{
    if (lu->state == WSP_UP_HANDING) { /* the new process publishes it */
        int rv = liveup_queue(&lu->qtail, chan, chan_len, payload, len, seq, cs);
        return rv < 0 ? rv : 1;
    }
    if (lu->state >= WSP_UP_ADOPTING) {
        WSP_LOG(WSP_LOG_WARN, "event=broadcast_skipped reason=%s error=upgrading", reason);
        return -EAGAIN;
    }
    return 0;
}

int wsp_liveup_supervisor(wsp_liveup_t *lu, const char *chan, size_t chan_len,
                          const uint8_t *payload, size_t len, uint64_t seq,
                          const wsp_pub_chseq_t *cs)
{
    if (lu->state < WSP_UP_ADOPTING) {
        lu->sup_seq = seq;
        return 0;
    }
    if (liveup_queue(&lu->supqtail, chan, chan_len, payload, len, seq, cs) < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=broadcast_skipped reason=supervisor error=ENOMEM");
    return 1;
}

void wsp_liveup_shard_event(wsp_liveup_t *lu)
{
    if (lu->state == WSP_UP_HANDING && liveup_all_handed(lu))
        liveup_finish(lu);
    if (lu->state == WSP_UP_ENDED && liveup_all_handed(lu))
        liveup_takeover(lu);
}

void wsp_liveup_cancel(wsp_liveup_t *lu)
{
    if (lu->state == WSP_UP_SPAWNED)
        liveup_fail(lu, "stopping", 0);
}

void wsp_liveup_on_history(wsp_liveup_t *lu, int (*fn)(void *user, wsp_uphist_t *h))
{
    lu->on_history = fn;
}

int wsp_liveup_adopting(const wsp_liveup_t *lu) { return lu->state == WSP_UP_ADOPTING; }

int wsp_liveup_handed(const wsp_liveup_t *lu) { return lu->state == WSP_UP_HANDED; }

int wsp_liveup_handing(const wsp_liveup_t *lu) { return lu->state == WSP_UP_HANDING; }

int wsp_liveup_take_admin(wsp_liveup_t *lu)
{
    int fd = lu->admin_fd;
    lu->admin_fd = -1;
    return fd;
}

void wsp_liveup_free(wsp_liveup_t *lu)
{
    OPENSSL_cleanse(lu->sipkey, sizeof(lu->sipkey));
    for (unsigned i = 0; lu->ho_socks && i < lu->nshards; i++)
        if (lu->ho_socks[i] >= 0)
            close(lu->ho_socks[i]);
    if (lu->ctl >= 0)
        close(lu->ctl);
    if (lu->admin_fd >= 0)
        close(lu->admin_fd);
    liveup_queue_free(&lu->q, &lu->qtail);
    liveup_queue_free(&lu->supq, &lu->supqtail);
    wsp_uphist_free(&lu->hist);
    free(lu->lfds);
    free(lu->ho_socks);
    lu->lfds = lu->ho_socks = NULL;
    lu->ctl = lu->admin_fd = -1;
}
