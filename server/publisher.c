#include "publisher.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "admin.h"
#include "alloc.h"
#include "log.h"
#include "net.h"

struct wsp_pub_s {
    uv_timer_t tick;
    uv_signal_t sig_usr1, sig_int, sig_term, sig_usr2;
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
    wsp_admin_t *admin; /* NULL without --admin, in a worker, or once closed */
    wsp_redis_t *redis; /* NULL without --redis or once stopped */
    int admin_fd;       /* a live upgrade's admin listener to open instead of binding; -1 */
};

/* Numbers and hands over: the only place a seq is given. */
static int pub_deliver(wsp_pub_t *p, const char *chan, size_t chan_len, const uint8_t *payload,
                       size_t len, const char *reason, uint64_t *seq)
{
    p->seq++;
    if (seq)
        *seq = p->seq;
    return p->ops->deliver(p->user, chan, chan_len, payload, len, p->seq, reason);
}

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
                   size_t len, uint64_t seq, const char *reason)
{
    if (p->stopping)
        return;
    if (seq > p->seq)
        p->seq = seq;
    (void)p->ops->deliver(p->user, chan, chan_len, payload, len, seq, reason);
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

uint64_t wsp_pub_next_tick(const wsp_pub_t *p)
{
    return uv_is_active((const uv_handle_t *)&p->tick) ? p->next_tick_ms : 0;
}

void wsp_pub_adopt_admin(wsp_pub_t *p, int fd) { p->admin_fd = fd; }

int wsp_pub_admin_fd(const wsp_pub_t *p) { return p->admin ? wsp_admin_fd(p->admin) : -1; }

/* --- signals --- */

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
    .metrics = on_admin_metrics,
    .stats = on_admin_stats,
    .healthy = on_admin_healthy,
};

/* A Redis message: numbered here, in every process that subscribes. */
static void on_pub_redis(void *user, const char *chan, size_t chan_len, const uint8_t *payload,
                         size_t len)
{
    (void)wsp_pub_publish(user, chan, chan_len, payload, len, "redis", NULL);
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
    if ((rv = pub_signal(p, &p->sig_usr1, SIGUSR1)) < 0 ||
        (rv = pub_signal(p, &p->sig_int, SIGINT)) < 0 ||
        (rv = pub_signal(p, &p->sig_term, SIGTERM)) < 0 ||
        (rv = pub_signal(p, &p->sig_usr2, SIGUSR2)) < 0)
        return rv;
    return 0;
}

int wsp_pub_open(wsp_pub_t *p)
{
    const wsp_config_t *cfg = p->cfg;
    int rv;
    const char *token = cfg->admin_token[0] ? cfg->admin_token : NULL;
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
    if (cfg->redis_host[0] == '\0')
        return 0;
    /* The supervisor only publishes: its workers subscribe, each for itself. */
    return wsp_redis_start(&p->redis, p->loop, cfg,
                           p->role == WSP_PUB_SUPERVISOR ? NULL : on_pub_redis, p);
}

void wsp_pub_stop(wsp_pub_t *p)
{
    if (p == NULL || p->stopping)
        return;
    p->stopping = 1;
    (void)uv_timer_stop(&p->tick); /* cannot fail for an initialised timer */
    wsp_redis_stop(p->redis);
    p->redis = NULL;
}

int wsp_pub_stopping(const wsp_pub_t *p) { return p->stopping; }

void wsp_pub_close(wsp_pub_t *p)
{
    if (p == NULL || p->closed)
        return;
    p->closed = 1;
    wsp_admin_stop(p->admin); /* /healthz answered 503 until here */
    p->admin = NULL;
    wsp_redis_stop(p->redis);
    p->redis = NULL;
    uv_handle_t *hs[] = {(uv_handle_t *)&p->tick, (uv_handle_t *)&p->sig_usr1,
                         (uv_handle_t *)&p->sig_int, (uv_handle_t *)&p->sig_term,
                         (uv_handle_t *)&p->sig_usr2};
    for (size_t i = 0; i < WSP_ARRAY_SIZE(hs); i++)
        if (hs[i]->loop != NULL && !uv_is_closing(hs[i])) /* initialised: p was zeroed */
            uv_close(hs[i], NULL); /* the memory is p's: wsp_pub_free() frees it */
}

void wsp_pub_free(wsp_pub_t *p) { free(p); }

int wsp_pub_admin_port(const wsp_pub_t *p) { return p->admin ? wsp_admin_port(p->admin) : 0; }

const wsp_redis_t *wsp_pub_redis(const wsp_pub_t *p) { return p->redis; }
