#include "publisher.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "alloc.h"
#include "log.h"
#include "net.h"
#include "pubhold.h"
#include "pubwait.h"
#include "siphash.h"

#define WSP_PUB_WAIT_STEP_MS                                                                       \
    100 /* the waiting user publishes' deadlines are checked this often                            \
         */

struct wsp_pub_s {
    uv_timer_t tick;
    uv_timer_t wait_timer; /* deadlines of the user publishes waiting for reports */
    uv_signal_t sig_usr1, sig_int, sig_term, sig_usr2;
    uv_signal_t sig_hup; /* reloads: each module's own function (wsp_pub_on_reload()) */
    struct {
        wsp_pub_reload_fn fn;
        void *arg;
    } reload[WSP_PUB_RELOADS];
    unsigned nreload;
    uv_loop_t *loop;
    const wsp_config_t *cfg;
    int role;
    int stopping;
    int closed;
    uint64_t seq;          /* the last number given (or relayed) */
    uint64_t next_tick_ms; /* wall-clock target of the armed tick */
    const wsp_proc_stats_t *stats;
    unsigned nstats;
    const wsp_pub_ops_t *ops;
    void *user;
    wsp_admin_t *admin;    /* NULL without --admin, in a worker, or once closed */
    wsp_redis_t *redis;    /* NULL without --redis or once stopped */
    wsp_pubwait_t waiting; /* POST /publish?user= requests waiting for delivery reports */
    uint64_t user_id;      /* the last id given to a directly delivered user message */
    wsp_chan_seqs_t cseqs; /* each channel's last number, when this process numbers them */
    int admin_fd;          /* a live upgrade's admin listener to open instead of binding; -1 */
    /* A live upgrade's new process (issue #20): subscribed before READY, holding what comes
     * until the takeover; the link moves to redis then. */
    wsp_redis_t *hold_redis;
    wsp_pubhold_t hold;
    void (*hold_up)(void *ud); /* the subscription is complete: READY may go */
    void *hold_ud;
    int redis_muted; /* a live upgrade's old process past its marker: Redis is the new one's */
};

/* The default channel has no name on the wire: "time" from an admin ?channel= or a Redis
 * NAME:time is the default channel, not a named channel nobody could subscribe to. */
static void pub_channel(const char **chan, size_t *chan_len)
{
    if (*chan && *chan_len == sizeof(WSP_CHANNEL_DEFAULT) - 1 &&
        memcmp(*chan, WSP_CHANNEL_DEFAULT, *chan_len) == 0) {
        *chan = NULL;
        *chan_len = 0;
    }
}

/* Numbers and hands over: the only place a seq is given. */
static int pub_hand(wsp_pub_t *p, const char *chan, size_t chan_len, const uint8_t *payload,
                    size_t len, const wsp_pub_chseq_t *cs, const char *reason, uint64_t *seq)
{
    p->seq++;
    if (seq)
        *seq = p->seq;
    return p->ops->deliver(p->user, chan, chan_len, payload, len, p->seq, cs, reason);
}

/* A message this process publishes: numbered in its channel here (the single process, the
 * supervisor), except under --redis, where only the Redis script numbers channels and what
 * is published locally (the ticks) has no number there. */
static int pub_deliver(wsp_pub_t *p, const char *chan, size_t chan_len, const uint8_t *payload,
                       size_t len, const char *reason, uint64_t *seq)
{
    pub_channel(&chan, &chan_len);
    wsp_pub_chseq_t cs = {0, NULL, 0};
    if (p->role != WSP_PUB_WORKER && p->redis == NULL && p->cfg->redis_host[0] == '\0') {
        cs.seq = chan ? wsp_chan_seqs_next(&p->cseqs, chan, chan_len)
                      : wsp_chan_seqs_next(&p->cseqs, WSP_CHANNEL_DEFAULT,
                                           sizeof(WSP_CHANNEL_DEFAULT) - 1);
        cs.epoch = p->cfg->epoch;
        cs.epoch_len = strlen(p->cfg->epoch);
    }
    return pub_hand(p, chan, chan_len, payload, len, &cs, reason, seq);
}

int wsp_pub_published(const wsp_pub_t *p) { return p->seq > 0; }

int wsp_pub_publish(wsp_pub_t *p, const char *chan, size_t chan_len, const uint8_t *payload,
                    size_t len, const char *reason, uint64_t *seq)
{
    if (p->stopping)
        return -EAGAIN;
    return pub_deliver(p, chan, chan_len, payload, len, reason, seq);
}

void wsp_pub_time(wsp_pub_t *p, const char *reason)
{
    if (p->stopping)
        return;
    char payload[96];
    int n = snprintf(payload, sizeof(payload), "{\"time\":%" PRIu64 ",\"seq\":%" PRIu64 "}",
                     wsp_net_epoch_ms(), p->seq + 1);
    (void)pub_deliver(p, NULL, 0, (const uint8_t *)payload, (size_t)n, reason, NULL);
}

void wsp_pub_relay(wsp_pub_t *p, const char *chan, size_t chan_len, const uint8_t *payload,
                   size_t len, uint64_t seq, const wsp_pub_chseq_t *cs, const char *reason)
{
    if (p->stopping)
        return;
    if (seq > p->seq)
        p->seq = seq;
    (void)p->ops->deliver(p->user, chan, chan_len, payload, len, seq, cs, reason);
}

/* --- the tick --- */

static void pub_arm_tick(wsp_pub_t *p);

static void on_pub_tick(uv_timer_t *t)
{
    wsp_pub_t *p = WSP_CONTAINER_OF(t, wsp_pub_t, tick);
    uint64_t now = wsp_net_epoch_ms();
    if (now < p->next_tick_ms) { /* the monotonic timer ran ahead of the wall clock */
        int rv = uv_timer_start(&p->tick, on_pub_tick, p->next_tick_ms - now, 0);
        if (rv < 0)
            WSP_LOG(WSP_LOG_ERROR, "event=tick_failed error=%s", uv_err_name(rv));
        return;
    }
    wsp_pub_time(p, "tick");
    pub_arm_tick(p);
}

/* Arms the next tick on the next wall-clock multiple of the interval (:00 for 60 s). */
static void pub_arm_tick(wsp_pub_t *p)
{
    if (p->cfg->interval == 0 || p->stopping || p->role == WSP_PUB_WORKER)
        return; /* a supervised worker gets its ticks from the supervisor */
    uint64_t per = (uint64_t)p->cfg->interval * 1000u;
    uint64_t now = wsp_net_epoch_ms();
    p->next_tick_ms = (now / per + 1) * per;
    int rv = uv_timer_start(&p->tick, on_pub_tick, p->next_tick_ms - now, 0);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=tick_failed error=%s", uv_err_name(rv));
}

void wsp_pub_start(wsp_pub_t *p) { pub_arm_tick(p); }

void wsp_pub_resume(wsp_pub_t *p, uint64_t seq, uint64_t next_tick_ms)
{
    if (seq > p->seq)
        p->seq = seq;
    uint64_t now = wsp_net_epoch_ms();
    if (next_tick_ms == 0 || p->cfg->interval == 0 || p->role == WSP_PUB_WORKER) {
        pub_arm_tick(p);
        return;
    }
    /* The tick the old process had armed, even if it is due already: none is lost. */
    p->next_tick_ms = next_tick_ms;
    int rv = uv_timer_start(&p->tick, on_pub_tick, next_tick_ms > now ? next_tick_ms - now : 0, 0);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=tick_failed error=%s", uv_err_name(rv));
}

uint64_t wsp_pub_seq(const wsp_pub_t *p) { return p->seq; }

wsp_chan_seqs_t *wsp_pub_chan_seqs(wsp_pub_t *p) { return &p->cseqs; }

uint64_t wsp_pub_next_tick(const wsp_pub_t *p)
{
    return uv_is_active((const uv_handle_t *)&p->tick) ? p->next_tick_ms : 0;
}

void wsp_pub_adopt_admin(wsp_pub_t *p, int fd) { p->admin_fd = fd; }

int wsp_pub_admin_fd(const wsp_pub_t *p) { return p->admin ? wsp_admin_fd(p->admin) : -1; }

/* --- signals --- */

int wsp_pub_on_reload(wsp_pub_t *p, wsp_pub_reload_fn fn, void *arg)
{
    if (p->nreload == WSP_PUB_RELOADS)
        return -ENOSPC;
    p->reload[p->nreload].fn = fn;
    p->reload[p->nreload].arg = arg;
    p->nreload++;
    return 0;
}

static void on_pub_signal(uv_signal_t *s, int signum)
{
    wsp_pub_t *p = s->data;
    if (signum == SIGUSR2) { /* a live upgrade: the owner's, if it does them */
        if (p->ops->upgrade && !p->stopping)
            p->ops->upgrade(p->user);
        else
            WSP_LOG(WSP_LOG_WARN, "event=upgrade_ignored reason=%s",
                    p->stopping ? "stopping" : "not_here");
        return;
    }
    if (signum == SIGHUP) { /* the one reload handler: every module's reload, in order */
        WSP_LOG(WSP_LOG_INFO, "event=reload signal=SIGHUP reloads=%u", p->nreload);
        for (unsigned i = 0; i < p->nreload; i++)
            p->reload[i].fn(p->reload[i].arg);
        return;
    }
    if (signum != SIGUSR1) {
        p->ops->stop(p->user, signum);
        return;
    }
    if (p->stopping)
        return;
    if (p->role == WSP_PUB_WORKER) /* the supervisor numbers broadcasts for every worker */
        p->ops->trigger(p->user);
    else
        wsp_pub_time(p, "sigusr1");
}

static int pub_signal(wsp_pub_t *p, uv_signal_t *s, int signum)
{
    int rv = uv_signal_init(p->loop, s);
    if (rv < 0)
        return rv;
    s->data = p;
    return uv_signal_start(s, on_pub_signal, signum);
}

/* --- the admin API's operations --- */

static int on_admin_publish(void *user, const char *channel, size_t channel_len,
                            const uint8_t *payload, size_t len, uint64_t *seq, uint64_t *conns)
{
    wsp_pub_t *p = user;
    if (p->stopping)
        return -EAGAIN;
    *conns = wsp_metrics_sum_open(p->stats, p->nstats);
    if (p->redis) { /* through Redis, so that every process and machine delivers it */
        *seq = 0;
        return wsp_redis_publish(p->redis, channel, channel_len, payload, len);
    }
    return pub_deliver(p, channel, channel_len, payload, len, "admin", seq);
}

/* --- messages for one user (issue #16) --- */

/* The tag of a user message that goes through Redis: what every receiver can compute from
 * the message alone (pubwait.h). A fixed key: it only pairs reports with requests. */
static uint64_t pub_digest(const char *sub, size_t sub_len, const uint8_t *payload, size_t len)
{
    static const uint8_t k0[16] = {0};
    uint8_t k1[16] = {0};
    uint64_t h = wsp_siphash(k0, sub, sub_len);
    memcpy(k1, &h, sizeof(h));
    return wsp_siphash(k1, payload, len) | WSP_PUBWAIT_DIGEST;
}

static void on_pub_wait(uv_timer_t *t)
{
    wsp_pub_t *p = WSP_CONTAINER_OF(t, wsp_pub_t, wait_timer);
    wsp_pubwait_expire(&p->waiting, uv_now(p->loop));
    if (p->waiting.n == 0)
        (void)uv_timer_stop(&p->wait_timer); /* cannot fail for an initialised timer */
}

/* The admin API's POST /publish?user=: Redis when configured (every machine delivers), else
 * the owner delivers; the answer waits for this machine's reports. */
static int on_admin_publish_user(void *user, const char *sub, size_t sub_len,
                                 const uint8_t *payload, size_t len, wsp_pubwait_done_fn done,
                                 void *ctx)
{
    wsp_pub_t *p = user;
    if (p->stopping)
        return -EAGAIN;
    uint64_t tag = p->redis ? pub_digest(sub, sub_len, payload, len) : ++p->user_id;
    /* Waiting before delivering: a report may come before deliver_user() returns. */
    wsp_pubwait_entry_t *e =
        wsp_pubwait_add(&p->waiting, tag, uv_now(p->loop) + WSP_ADMIN_USER_WAIT_MS, done, ctx);
    if (e == NULL)
        return -ENOMEM;
    int n;
    if (p->redis) {
        n = wsp_redis_publish_user(p->redis, sub, sub_len, payload, len);
        if (n == 0)
            n = (int)p->ops->redis_reporters(p->user);
    } else {
        n = p->ops->deliver_user(p->user, sub, sub_len, payload, len, tag);
    }
    if (n < 0) {
        wsp_pubwait_drop(&p->waiting, e);
        return n;
    }
    if (!uv_is_active((uv_handle_t *)&p->wait_timer)) {
        int rv =
            uv_timer_start(&p->wait_timer, on_pub_wait, WSP_PUB_WAIT_STEP_MS, WSP_PUB_WAIT_STEP_MS);
        if (rv < 0) /* no deadline without it: answer now with what came */
            WSP_LOG(WSP_LOG_ERROR, "event=publish_wait_timer_failed error=%s", uv_err_name(rv));
    }
    wsp_pubwait_expect(&p->waiting, e, (unsigned)n); /* may answer now */
    return 0;
}

void wsp_pub_relay_user(wsp_pub_t *p, const char *sub, size_t sub_len, const uint8_t *payload,
                        size_t len, uint64_t tag)
{
    /* Even while stopping: the supervisor waits for this worker's report. */
    int rv = p->ops->deliver_user(p->user, sub, sub_len, payload, len, tag);
    if (rv < 0)
        wsp_pub_user_reached(p, tag, 0);
}

void wsp_pub_user_reached(wsp_pub_t *p, uint64_t tag, uint64_t conns)
{
    if (p->role == WSP_PUB_WORKER)
        p->ops->reached(p->user, tag, conns);
    else
        (void)wsp_pubwait_report(&p->waiting, tag, conns); /* 0: not ours, or too late */
}

/* A live upgrade's new process holds what Redis sends until its takeover (server/pubhold.h):
 * while the hold is active a message of kind goes there (kept, or dropped as the old
 * process's) and 1 is returned; 0: deliver it now. */
static int pub_held(wsp_pub_t *p, int kind, const char *name, size_t name_len,
                    const uint8_t *payload, size_t len, uint64_t cseq, const char *epoch,
                    size_t epoch_len)
{
    if (!wsp_pubhold_active(&p->hold))
        return 0;
    int awaiting = p->hold.state == WSP_PUBHOLD_AWAIT;
    wsp_pubhold_msg_t m = {.kind = kind,
                           .name = name,
                           .name_len = name_len,
                           .payload = payload,
                           .len = len,
                           .cseq = cseq,
                           .epoch = epoch,
                           .epoch_len = epoch_len};
    (void)wsp_pubhold_take(&p->hold, &m); /* -ENOMEM is counted (overflow) */
    if (awaiting && p->hold.state == WSP_PUBHOLD_OFF)
        WSP_LOG(WSP_LOG_INFO, "event=upgrade_redis_marker_arrived skipped=%llu",
                (unsigned long long)p->hold.skipped);
    return 1;
}

/* A Redis message for one user: delivered here, reported under its digest. */
static void pub_user_deliver(wsp_pub_t *p, const char *sub, size_t sub_len, const uint8_t *payload,
                             size_t len)
{
    uint64_t tag = pub_digest(sub, sub_len, payload, len);
    if (p->ops->deliver_user(p->user, sub, sub_len, payload, len, tag) < 0)
        wsp_pub_user_reached(p, tag, 0);
}

static void on_pub_redis_user(void *user, const char *sub, size_t sub_len, const uint8_t *payload,
                              size_t len)
{
    wsp_pub_t *p = user;
    if (p->redis_muted)
        return;
    if (!pub_held(p, WSP_PUBHOLD_USER, sub, sub_len, payload, len, 0, NULL, 0))
        pub_user_deliver(p, sub, sub_len, payload, len);
}

static int on_admin_metrics(void *user, wsp_buf_t *out)
{
    wsp_pub_t *p = user;
    return wsp_metrics_render(p->stats, p->nstats, out);
}

static int on_admin_stats(void *user, wsp_buf_t *out)
{
    wsp_pub_t *p = user;
    return wsp_metrics_stats_json(p->stats, p->nstats, p->stopping, out);
}

static int on_admin_healthy(void *user) { return !((wsp_pub_t *)user)->stopping; }

static const wsp_admin_ops_t pub_admin_ops = {
    .publish = on_admin_publish,
    .publish_user = on_admin_publish_user,
    .metrics = on_admin_metrics,
    .stats = on_admin_stats,
    .healthy = on_admin_healthy,
};

/* A Redis message: numbered here, in every process that subscribes; its number in its
 * channel is the Redis script's (cseq 0 for a raw PUBLISH: not recoverable). */
static void on_pub_redis(void *user, const char *chan, size_t chan_len, const uint8_t *payload,
                         size_t len, uint64_t cseq, const char *epoch, size_t epoch_len)
{
    wsp_pub_t *p = user;
    if (p->stopping || p->redis_muted)
        return;
    pub_channel(&chan, &chan_len);
    if (pub_held(p, WSP_PUBHOLD_MSG, chan, chan_len, payload, len, cseq, epoch, epoch_len))
        return;
    wsp_pub_chseq_t cs = {cseq, epoch, epoch_len};
    (void)pub_hand(p, chan, chan_len, payload, len, &cs, "redis", NULL);
}

/* The sync channel: while holding, its messages are kept in order with the others; the old
 * process's marker among them is where its deliveries end and ours begin. */
static void on_pub_redis_sync(void *user, const char *tok, size_t len)
{
    (void)pub_held(user, WSP_PUBHOLD_SYNC, NULL, 0, (const uint8_t *)tok, len, 0, NULL, 0);
}

static void on_pub_redis_link(void *user, int up)
{
    wsp_pub_t *p = user;
    if (!up && wsp_pubhold_active(&p->hold)) { /* what was missed meanwhile: no exact cut */
        WSP_LOG(WSP_LOG_WARN, "event=upgrade_redis_hold_broken state=%d held=%llu", p->hold.state,
                (unsigned long long)p->hold.held);
        wsp_pubhold_broken(&p->hold);
    }
    if (p->ops->link)
        p->ops->link(p->user, up);
    if (up && p->hold_up) {
        void (*fn)(void *) = p->hold_up;
        p->hold_up = NULL;
        fn(p->hold_ud);
    }
}

/* One held message after the marker: as if it came now. */
static void on_pub_held(void *ud, const wsp_pubhold_msg_t *m)
{
    wsp_pub_t *p = ud;
    if (m->kind == WSP_PUBHOLD_USER) {
        pub_user_deliver(p, m->name, m->name_len, m->payload, m->len);
        return;
    }
    wsp_pub_chseq_t cs = {m->cseq, m->epoch, m->epoch_len};
    (void)pub_hand(p, m->name, m->name_len, m->payload, m->len, &cs, "redis", NULL);
}

/* Starts a subscriber: the link of a process that subscribes, or (hold) of a live upgrade's
 * new process before READY. */
static int pub_redis_start(wsp_pub_t *p, wsp_redis_t **out)
{
    int rv = wsp_redis_start(out, p->loop, p->cfg, on_pub_redis, on_pub_redis_link, p);
    if (rv == 0) {
        wsp_redis_set_user_fn(*out, on_pub_redis_user);
        wsp_redis_set_sync_fn(*out, on_pub_redis_sync);
    }
    return rv;
}

int wsp_pub_hold(wsp_pub_t *p, void (*up)(void *ud), void *ud)
{
    if (p->cfg->redis_host[0] == '\0' || p->role == WSP_PUB_SUPERVISOR || p->redis || p->hold_redis)
        return -ENOTSUP;
    wsp_pubhold_start(&p->hold, 0);
    p->hold_up = up;
    p->hold_ud = ud;
    int rv = pub_redis_start(p, &p->hold_redis);
    if (rv < 0) {
        wsp_pubhold_clear(&p->hold);
        p->hold_up = NULL;
    }
    return rv;
}

void wsp_pub_mute_redis(wsp_pub_t *p) { p->redis_muted = 1; }

void wsp_pub_release(wsp_pub_t *p, const char *mark, size_t mark_len)
{
    if (!wsp_pubhold_active(&p->hold) || p->hold.state != WSP_PUBHOLD_HOLD)
        return;
    p->hold_up = NULL;
    static const char *const cuts[] = {"found", "awaited", "none", "inexact"};
    wsp_pubhold_cut_t cut = wsp_pubhold_release(&p->hold, mark, mark_len, on_pub_held, p);
    /* Exact only when the marker cut it and nothing held was lost (an allocation that failed
     * leaves a hole that may be on either side of the marker). */
    int exact = (cut == WSP_PUBHOLD_CUT_FOUND || cut == WSP_PUBHOLD_CUT_AWAIT) &&
                p->hold.overflow == 0 && !p->hold.broken;
    WSP_LOG(exact ? WSP_LOG_INFO : WSP_LOG_WARN,
            "event=upgrade_redis_cut marker=%s held=%llu skipped=%llu delivered=%llu "
            "overflow=%llu link_lost=%d",
            cuts[cut], (unsigned long long)p->hold.held, (unsigned long long)p->hold.skipped,
            (unsigned long long)p->hold.handed, (unsigned long long)p->hold.overflow,
            p->hold.broken);
}

/* --- life cycle --- */

int wsp_pub_new(wsp_pub_t **out, uv_loop_t *loop, const wsp_config_t *cfg, int role,
                const wsp_proc_stats_t *stats, unsigned nstats, const wsp_pub_ops_t *ops,
                void *user)
{
    wsp_pub_t *p = wsp_xcalloc(1, sizeof(*p)); /* once per process */
    p->loop = loop;
    p->cfg = cfg;
    p->role = role;
    p->stats = stats;
    p->nstats = nstats;
    p->ops = ops;
    p->user = user;
    p->admin_fd = -1;
    int rv = uv_timer_init(loop, &p->tick);
    if (rv < 0) {
        free(p);
        return rv;
    }
    /* From here on the timer exists: the owner's teardown closes whatever was initialised. */
    *out = p;
    if ((rv = uv_timer_init(loop, &p->wait_timer)) < 0 ||
        (rv = pub_signal(p, &p->sig_usr1, SIGUSR1)) < 0 ||
        (rv = pub_signal(p, &p->sig_int, SIGINT)) < 0 ||
        (rv = pub_signal(p, &p->sig_term, SIGTERM)) < 0 ||
        (rv = pub_signal(p, &p->sig_hup, SIGHUP)) < 0 ||
        (rv = pub_signal(p, &p->sig_usr2, SIGUSR2)) < 0)
        return rv;
    return 0;
}

int wsp_pub_open(wsp_pub_t *p)
{
    const wsp_config_t *cfg = p->cfg;
    int rv;
    const char *token = cfg->admin_token[0] ? cfg->admin_token : NULL;
    if (p->hold_redis) { /* a live upgrade's new process subscribed before READY: the link */
        p->redis = p->hold_redis;
        p->hold_redis = NULL;
    }
    if (p->admin_fd >= 0) { /* the listener a live upgrade handed over */
        rv = wsp_admin_adopt(&p->admin, p->loop, p->admin_fd, token, &pub_admin_ops, p);
        p->admin_fd = -1;
        if (rv < 0)
            return -(WSP_PUB_EADMIN - rv);
    } else if (p->role != WSP_PUB_WORKER && cfg->admin_host[0] != '\0') {
        rv = wsp_admin_start(&p->admin, p->loop, cfg->admin_host, cfg->admin_port, token,
                             &pub_admin_ops, p);
        if (rv < 0)
            return -(WSP_PUB_EADMIN - rv); /* main() names the admin port */
    }
    if (cfg->redis_host[0] == '\0' || p->redis)
        return 0;
    /* The supervisor only publishes: its workers subscribe, each for itself. */
    if (p->role == WSP_PUB_SUPERVISOR)
        return wsp_redis_start(&p->redis, p->loop, cfg, NULL, on_pub_redis_link, p);
    return pub_redis_start(p, &p->redis);
}

void wsp_pub_stop(wsp_pub_t *p)
{
    if (p == NULL || p->stopping)
        return;
    p->stopping = 1;
    (void)uv_timer_stop(&p->tick); /* cannot fail for an initialised timer */
    wsp_redis_stop(p->redis);
    wsp_redis_stop(p->hold_redis);
    p->redis = p->hold_redis = NULL;
    wsp_pubhold_clear(&p->hold);
}

int wsp_pub_stopping(const wsp_pub_t *p) { return p->stopping; }

void wsp_pub_close(wsp_pub_t *p)
{
    if (p == NULL || p->closed)
        return;
    p->closed = 1;
    wsp_pubwait_cancel_all(&p->waiting); /* answered 503 while the admin API still exists */
    wsp_admin_stop(p->admin);            /* /healthz answered 503 until here */
    p->admin = NULL;
    wsp_redis_stop(p->redis);
    wsp_redis_stop(p->hold_redis);
    p->redis = p->hold_redis = NULL;
    wsp_pubhold_clear(&p->hold);
    uv_handle_t *hs[] = {(uv_handle_t *)&p->tick,     (uv_handle_t *)&p->wait_timer,
                         (uv_handle_t *)&p->sig_usr1, (uv_handle_t *)&p->sig_int,
                         (uv_handle_t *)&p->sig_term, (uv_handle_t *)&p->sig_hup,
                         (uv_handle_t *)&p->sig_usr2};
    for (size_t i = 0; i < WSP_ARRAY_SIZE(hs); i++)
        if (hs[i]->loop != NULL && !uv_is_closing(hs[i])) /* initialised: p was zeroed */
            uv_close(hs[i], NULL); /* the memory is p's: wsp_pub_free() frees it */
}

void wsp_pub_free(wsp_pub_t *p)
{
    if (p)
        wsp_chan_seqs_free(&p->cseqs);
    free(p);
}

int wsp_pub_admin_port(const wsp_pub_t *p) { return p->admin ? wsp_admin_port(p->admin) : 0; }

wsp_redis_t *wsp_pub_redis(const wsp_pub_t *p) { return p->redis; }
