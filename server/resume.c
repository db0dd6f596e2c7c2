#include "resume.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

int wsp_resume_ask(wsp_resume_ask_t *a, const wsp_chanlist_t *cl, const wsp_framed_resume_t *rs)
{
    memset(a, 0, sizeof(*a));
    for (unsigned i = 0; i < cl->n; i++) {
        memcpy(a->ch[i].name, cl->v[i].name, cl->v[i].len);
        a->ch[i].len = (uint8_t)cl->v[i].len;
        if (cl->v[i].len == sizeof(WSP_CHANNEL_DEFAULT) - 1 &&
            memcmp(cl->v[i].name, WSP_CHANNEL_DEFAULT, cl->v[i].len) == 0)
            a->wants_default = 1;
    }
    a->n = (uint8_t)cl->n;
    for (unsigned k = 0; k < rs->n; k++) {
        unsigned i = 0;
        while (i < a->n && !(a->ch[i].len == rs->v[k].len &&
                             memcmp(a->ch[i].name, rs->v[k].name, rs->v[k].len) == 0))
            i++;
        if (i == a->n)
            return -EINVAL; /* a position in a channel it does not ask for */
        a->ch[i].has_since = 1;
        a->ch[i].since = rs->v[k].since;
    }
    if (rs->epoch && rs->n > 0) {
        memcpy(a->epoch, rs->epoch, rs->epoch_len);
        a->epoch_len = (uint8_t)rs->epoch_len;
    }
    return 0;
}

/* A channel's position for this shard: from its own state, else from the process's. */
static int chan_top(const wsp_resume_ctx_t *x, const char *name, size_t len, uint32_t gen,
                    uint64_t *top, wsp_chan_t **chs)
{
    wsp_chan_table_t *t = x->chans;
    *chs = wsp_chan_find(t, name, len);
    if (*chs && wsp_chan_known(*chs, gen, top))
        return WSP_CHAN_POS_KNOWN;
    if (x->pos == NULL)
        return WSP_CHAN_POS_UNKNOWN;
    int st = wsp_chan_pos_lookup(x->pos, name, len, t->g, gen, top);
    if (st == WSP_CHAN_POS_KNOWN && *chs)
        wsp_chan_learn(t, *chs, *top, gen);
    return st;
}

/* How one resumed channel is served: frames from the fetch (Redis) then from the history. */
typedef struct chan_plan_s {
    wsp_chan_t *chs;
    uint64_t local_from; /* history after this seq */
    uint32_t nfetch, nlocal;
} chan_plan_t;

/* Whether the fetch's answer and then the history hold every message of channel i after
 * since up to top; fills p. */
static int fetched_covers(const wsp_resume_t *r, const wsp_resume_ctx_t *x, unsigned i,
                          uint64_t since, uint64_t top, chan_plan_t *p)
{
    if (!r->fetched || r->res.status != 0)
        return 0;
    uint64_t ft = r->res.ch[i].top;
    if (ft < since || ft > top || r->res.ch[i].n != ft - since)
        return 0;
    int k = top == ft ? 0
            : p->chs  ? wsp_chan_replay(x->chans, p->chs, ft, x->now_ms, NULL, UINT_MAX)
                      : -1;
    if (k < 0)
        return 0;
    p->nfetch = r->res.ch[i].n;
    p->local_from = ft;
    p->nlocal = (uint32_t)k;
    return 1;
}

/* Builds the plan once everything is decided: the hello, and the frames with references. */
static int plan_build(const wsp_resume_t *r, const wsp_resume_ctx_t *x,
                      const wsp_framed_top_t *tops, const chan_plan_t *cp, uint64_t total,
                      wsp_resume_plan_t *plan)
{
    memset(plan, 0, sizeof(*plan));
    /* Once per connection that recovers: the frames it is owed, in order. */
    if (total > 0 && (plan->frames = malloc(total * sizeof(*plan->frames))) == NULL)
        return -ENOMEM;
    for (unsigned i = 0; i < r->ask.n; i++) {
        if (!tops[i].resumed)
            continue;
        if (tops[i].recovered) {
            plan->recovered++;
            for (uint32_t k = 0; k < cp[i].nfetch; k++)
                plan->frames[plan->n++] = wsp_msg_ref(r->res.ch[i].frames[k]);
            if (cp[i].nlocal > 0) {
                int k = wsp_chan_replay(x->chans, cp[i].chs, cp[i].local_from, x->now_ms,
                                        plan->frames + plan->n, cp[i].nlocal);
                for (int j = 0; j < k; j++)
                    wsp_msg_ref(plan->frames[plan->n++]);
            }
        } else {
            plan->refused++;
        }
    }
    plan->hello = wsp_framed_hello(x->chans->epoch, tops, r->ask.n);
    if (plan->hello == NULL) {
        wsp_resume_plan_free(plan);
        return -ENOMEM;
    }
    return WSP_RESUME_DONE;
}

int wsp_resume_decide(wsp_resume_t *r, const wsp_resume_ctx_t *x, wsp_resume_plan_t *plan)
{
    const wsp_resume_ask_t *a = &r->ask;
    wsp_chan_table_t *t = x->chans;
    uint32_t gen = x->redis ? atomic_load_explicit(&x->pos->gen, memory_order_acquire) : 0;
    int can_fetch = x->redis && !r->fetched && !x->final;
    int epoch_ok = a->epoch_len > 0 && a->epoch_len == t->epoch_len &&
                   memcmp(a->epoch, t->epoch, a->epoch_len) == 0;
    wsp_framed_top_t tops[WSP_CHANNELS_MAX];
    chan_plan_t cp[WSP_CHANNELS_MAX];
    int wait = 0, fetch = 0;
    uint64_t total = 0;
    memset(cp, 0, sizeof(cp));
    for (unsigned i = 0; i < a->n; i++) {
        tops[i] = (wsp_framed_top_t){a->ch[i].name, a->ch[i].len, 0, 0, a->ch[i].has_since, 0};
        uint64_t top = 0;
        int st = chan_top(x, a->ch[i].name, a->ch[i].len, gen, &top, &cp[i].chs);
        if (st != WSP_CHAN_POS_KNOWN) {
            wait |= st == WSP_CHAN_POS_BEHIND;
            fetch |= st == WSP_CHAN_POS_UNKNOWN && can_fetch;
            continue;
        }
        tops[i].known = 1;
        tops[i].top = top;
        uint64_t since = a->ch[i].since;
        if (!a->ch[i].has_since || !epoch_ok)
            continue;
        if (since > top) {
            /* The client is ahead of this shard: it processed more elsewhere. The shard
             * catches up (its process is further on), Redis knows, or a peer process may
             * still be ahead of ours (--procs): wait for the deadline. */
            uint64_t ptop;
            int ps =
                x->pos ? wsp_chan_pos_lookup(x->pos, a->ch[i].name, a->ch[i].len, t->g, gen, &ptop)
                       : WSP_CHAN_POS_UNKNOWN;
            wait |= ps == WSP_CHAN_POS_BEHIND || x->peers;
            fetch |= can_fetch;
            continue;
        }
        int k = cp[i].chs ? wsp_chan_replay(t, cp[i].chs, since, x->now_ms, NULL, UINT_MAX)
                          : (since == top ? 0 : -1);
        if (k >= 0) {
            cp[i].local_from = since;
            cp[i].nlocal = (uint32_t)k;
        } else if (!fetched_covers(r, x, i, since, top, &cp[i])) {
            fetch |= can_fetch;
            continue;
        }
        tops[i].recovered = 1;
        total += cp[i].nfetch + cp[i].nlocal;
    }
    if (fetch)
        return WSP_RESUME_FETCH;
    if (wait && !x->final)
        return WSP_RESUME_WAIT;
    return plan_build(r, x, tops, cp, total, plan);
}

void wsp_resume_plan_free(wsp_resume_plan_t *plan)
{
    for (unsigned i = 0; i < plan->n; i++)
        wsp_msg_unref(plan->frames[i]);
    free(plan->frames);
    if (plan->hello)
        wsp_msg_unref(plan->hello);
    memset(plan, 0, sizeof(*plan));
}

void wsp_resume_fetched(wsp_resume_t *r, wsp_chan_table_t *t)
{
    r->fetched = 1;
    r->state = WSP_RESUME_S_WAITING;
    if (r->res.status != 0)
        return;
    if (r->res.epoch_len != t->epoch_len || memcmp(r->res.epoch, t->epoch, t->epoch_len) != 0) {
        r->res.status = -ESTALE; /* the shard is not in Redis's epoch (yet): unusable */
        return;
    }
    for (unsigned i = 0; i < r->ask.n; i++) {
        wsp_chan_t *ch = wsp_chan_find(t, r->ask.ch[i].name, r->ask.ch[i].len);
        if (ch)
            wsp_chan_learn(t, ch, r->res.ch[i].top, r->res.gen);
    }
}

wsp_resume_t *wsp_resume_dup(const wsp_resume_t *r)
{
    /* Only for a connection that cannot come in at once: freed when it does. */
    wsp_resume_t *d = malloc(sizeof(*d));
    if (d)
        memcpy(d, r, sizeof(*d));
    return d;
}

void wsp_resume_free(wsp_resume_t *r)
{
    if (r == NULL)
        return;
    for (unsigned i = 0; i < WSP_CHANNELS_MAX; i++) {
        for (uint32_t k = 0; k < r->res.ch[i].n; k++)
            wsp_msg_unref(r->res.ch[i].frames[k]);
        free(r->res.ch[i].frames);
    }
    free(r);
}

int wsp_resume_queue_init(wsp_resume_queue_t *q, uv_async_t *wake)
{
    q->head = q->tail = NULL;
    q->wake = wake;
    return uv_mutex_init(&q->lock);
}

void wsp_resume_queue_free(wsp_resume_queue_t *q)
{
    q->head = q->tail = NULL; /* what is queued is its shard's, freed with its pending list */
    uv_mutex_destroy(&q->lock);
}

void wsp_resume_queue_push(wsp_resume_queue_t *q, wsp_resume_t *r)
{
    r->qnext = NULL;
    uv_mutex_lock(&q->lock);
    if (q->tail)
        q->tail->qnext = r;
    else
        q->head = r;
    q->tail = r;
    uv_mutex_unlock(&q->lock);
    int rv = uv_async_send(q->wake);
    (void)rv; /* only fails for a handle that is not an async */
}

wsp_resume_t *wsp_resume_queue_take(wsp_resume_queue_t *q)
{
    uv_mutex_lock(&q->lock);
    wsp_resume_t *r = q->head;
    q->head = q->tail = NULL;
    uv_mutex_unlock(&q->lock);
    return r;
}
