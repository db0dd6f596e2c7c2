#include "fetch.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "framed.h"
#include "log.h"
#include "net.h"

/* One fetch in flight: its request to Redis and the barrier behind it. */
typedef struct fetch_s {
    wsp_resume_t *r;
    const wsp_config_t *cfg;
    wsp_chan_pos_t *pos;
    const wsp_fetch_ops_t *ops;
    void *user;
    int pending; /* the script's reply and the barrier */
    int status;  /* the barrier's */
    wsp_redis_span_t spans[WSP_CHANNELS_MAX];
} fetch_t;

static void fetch_release(wsp_resume_res_t *res)
{
    for (unsigned i = 0; i < WSP_CHANNELS_MAX; i++) {
        for (uint32_t k = 0; k < res->ch[i].n; k++)
            wsp_msg_unref(res->ch[i].frames[k]);
        free(res->ch[i].frames);
        res->ch[i].frames = NULL;
        res->ch[i].n = 0;
    }
}

/* Both replies are in: positions learnt, the shards told of a new epoch, the answer posted. */
static void fetch_finish(fetch_t *f)
{
    wsp_resume_t *r = f->r;
    if (f->status < 0 && r->res.status == 0)
        r->res.status = f->status;
    if (r->res.status == 0) {
        wsp_chan_pos_t *pos = f->pos;
        if (strlen(pos->epoch) != r->res.epoch_len ||
            memcmp(pos->epoch, r->res.epoch, r->res.epoch_len) != 0)
            f->ops->epoch(f->user, r->res.epoch, r->res.epoch_len);
        for (unsigned i = 0; i < r->ask.n; i++)
            wsp_chan_pos_learn(pos, r->ask.ch[i].name, r->ask.ch[i].len, r->res.ch[i].top,
                               r->res.gen);
    } else {
        fetch_release(&r->res);
    }
    f->ops->done(f->user, r);
    free(f);
}

/* The frames of channel i's entries, when they are exactly the messages after its since
 * (consecutive, not expired by --history-ttl); otherwise none, and the shard says false. */
static int fetch_frames(fetch_t *f, unsigned i, const wsp_redis_span_t *sp, uint64_t now_ms)
{
    wsp_resume_res_t *res = &f->r->res;
    res->ch[i].top = sp->top;
    if (sp->since < 0 || sp->n == 0 || sp->n != sp->top - (uint64_t)sp->since)
        return 0;
    uint64_t ttl = (uint64_t)f->cfg->history_ttl * 1000;
    if (ttl && sp->ent[0].t_ms && now_ms > sp->ent[0].t_ms + ttl)
        return 0;
    for (unsigned k = 0; k < sp->n; k++)
        if (sp->ent[k].seq != (uint64_t)sp->since + 1 + k)
            return 0;
    /* Per recovery from Redis: the frames it is owed, encoded once for it. */
    wsp_msg_t **fr = calloc(sp->n, sizeof(*fr));
    if (fr == NULL)
        return -ENOMEM;
    res->ch[i].frames = fr;
    const char *name = f->r->ask.ch[i].name;
    size_t len = f->r->ask.ch[i].len;
    for (unsigned k = 0; k < sp->n; k++) {
        if ((fr[k] = wsp_framed_msg(name, len, sp->ent[k].seq, sp->ent[k].p, sp->ent[k].len)) ==
            NULL)
            return -ENOMEM;
        res->ch[i].n = k + 1;
    }
    return 0;
}

static void on_fetched(void *ud, int status, const char *epoch, size_t elen,
                       wsp_redis_span_t *spans, unsigned n)
{
    fetch_t *f = ud;
    wsp_resume_res_t *res = &f->r->res;
    if (status == 0 && !wsp_framed_epoch_valid(epoch, elen))
        status = -EBADMSG;
    if (status == 0) {
        memcpy(res->epoch, epoch, elen);
        res->epoch[elen] = '\0';
        res->epoch_len = (uint8_t)elen;
        uint64_t now = wsp_net_epoch_ms();
        for (unsigned i = 0; i < n && status == 0; i++)
            status = fetch_frames(f, i, &spans[i], now);
    }
    if (status < 0) {
        WSP_LOG(WSP_LOG_WARN, "event=recovery_fetch_failed error=%d", status);
        res->status = status;
    }
    if (--f->pending == 0)
        fetch_finish(f);
}

static void on_fetch_barrier(void *ud, int status)
{
    fetch_t *f = ud;
    if (status < 0)
        f->status = status;
    if (--f->pending == 0)
        fetch_finish(f);
}

void wsp_fetch_run(wsp_resume_t *r, const wsp_config_t *cfg, wsp_chan_pos_t *pos,
                   const wsp_fetch_ops_t *ops, void *user)
{
    memset(&r->res, 0, sizeof(r->res));
    wsp_redis_t *redis = ops->redis(user);
    /* One per fetch: freed when both its replies are in. */
    fetch_t *f = redis ? calloc(1, sizeof(*f)) : NULL;
    if (f == NULL) {
        r->res.status = redis ? -ENOMEM : -ENOTCONN;
        ops->done(user, r);
        return;
    }
    f->r = r;
    f->cfg = cfg;
    f->pos = pos;
    f->ops = ops;
    f->user = user;
    f->pending = 2;
    r->res.gen = atomic_load_explicit(&pos->gen, memory_order_acquire);
    for (unsigned i = 0; i < r->ask.n; i++) {
        f->spans[i].chan = r->ask.ch[i].name;
        f->spans[i].chan_len = r->ask.ch[i].len;
        f->spans[i].since = r->ask.ch[i].has_since ? (int64_t)r->ask.ch[i].since : -1;
    }
    /* The script, then the barrier, in this order on one connection: when the barrier's
     * token is back, whatever was published before the script ran has reached us. */
    (void)wsp_redis_fetch(redis, f->spans, r->ask.n, cfg->history_size, on_fetched, f);
    wsp_redis_barrier(redis, on_fetch_barrier, f); /* f may be freed from here */
}
