/* The scripts' requests and the barriers of the Redis module (server/redis_int.h): a
 * publish through the publish script, a recovery's fetch through the fetch script (issue #17;
 * the scripts are in server/stream.h), each an EVALSHA sent again after a NOSCRIPT, and the
 * barriers that tell a recovery when every message published before it has arrived. The
 * publisher's loop only. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/hiredis.h>

#include "channels.h"
#include "framed.h"
#include "log.h"
#include "redis.h"
#include "redis_int.h"
#include "stream.h"

/* A token came back on the sync channel: every barrier of ours up to it has passed. Another
 * process's ("<its pid>.<n>") passes none. */
void wsp__redis_barriers_pass(wsp_redis_t *r, const char *tok, size_t len)
{
    size_t pl = strlen(r->tokpfx);
    if (len <= pl || memcmp(tok, r->tokpfx, pl) != 0)
        return;
    uint64_t t = 0;
    for (size_t i = pl; i < len && i < pl + 20 && tok[i] >= '0' && tok[i] <= '9'; i++)
        t = t * 10 + (uint64_t)(tok[i] - '0');
    while (r->bhead && r->bhead->token <= t) {
        rbarrier_t *b = r->bhead;
        r->bhead = b->next;
        if (r->bhead == NULL)
            r->btail = NULL;
        b->fn(b->ud, 0);
        free(b);
    }
}

#define RREQ_ARGS 32 /* EVALSHA, sha, numkeys, 1 + 8 keys, 2 + 2 * 8 arguments */

/* One EVALSHA: its arguments are kept (one allocation, off the per-message path: a publish
 * or a recovery fetch) so that a NOSCRIPT can load the script and send it again. */
typedef struct rreq_s {
    wsp_redis_t *r;
    int fetch;   /* the fetch script (else publish) */
    int retried; /* NOSCRIPT was answered once already */
    wsp_redis_fetch_fn fn;
    void *ud;
    wsp_redis_span_t *spans;
    unsigned nspans;
    int argc;
    const char *argv[RREQ_ARGS];
    size_t lens[RREQ_ARGS];
    char data[];
} rreq_t;

/* Collects arguments before the request is allocated. */
typedef struct rargs_s {
    int argc;
    size_t total;
    const char *p[RREQ_ARGS];
    size_t n[RREQ_ARGS];
} rargs_t;

static void rargs_add(rargs_t *a, const void *p, size_t n)
{
    a->p[a->argc] = p;
    a->n[a->argc++] = n;
    a->total += n;
}

static void rargs_str(rargs_t *a, const char *s) { rargs_add(a, s, strlen(s)); }

static rreq_t *rreq_new(wsp_redis_t *r, const rargs_t *a)
{
    rreq_t *q = calloc(1, sizeof(*q) + a->total + 1);
    if (q == NULL)
        return NULL;
    q->r = r;
    q->argc = a->argc;
    char *d = q->data;
    for (int i = 0; i < a->argc; i++) {
        memcpy(d, a->p[i], a->n[i]);
        q->argv[i] = d;
        q->lens[i] = a->n[i];
        d += a->n[i];
    }
    return q;
}

static void on_rreq_reply(redisAsyncContext *ac, void *reply, void *priv);

static int rreq_send(rreq_t *q)
{
    int err;
    redisAsyncContext *ac = wsp__redis_pub(q->r, &err);
    if (ac == NULL)
        return err;
    return redisAsyncCommandArgv(ac, on_rreq_reply, q, q->argc, q->argv, q->lens) == REDIS_OK
               ? 0
               : -ENOMEM;
}

static void rreq_fetch_reply(rreq_t *q, const redisReply *rep);

static void on_rreq_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    rreq_t *q = priv;
    redisReply *rep = reply;
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0 &&
        !q->retried && q->r->pub) {
        /* The script cache was flushed: load it, then the same call again, in order. */
        q->retried = 1;
        if (redisAsyncCommand(q->r->pub, NULL, NULL, "SCRIPT LOAD %s",
                              q->fetch ? wsp_stream_fetch_lua : wsp_stream_publish_lua) ==
                REDIS_OK &&
            rreq_send(q) == 0)
            return;
    }
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
        WSP_LOG(WSP_LOG_WARN, "event=redis_script_failed script=%s error=\"%s\"",
                q->fetch ? "fetch" : "publish", rep ? rep->str : "link lost");
    else if (!q->fetch)
        WSP_LOG(WSP_LOG_DEBUG, "event=redis_published seq=%lld",
                rep->type == REDIS_REPLY_INTEGER ? rep->integer : -1);
    if (q->fetch)
        rreq_fetch_reply(q, rep && rep->type != REDIS_REPLY_ERROR ? rep : NULL);
    free(q);
}

int wsp_redis_publish(wsp_redis_t *r, const char *chan, size_t chan_len, const uint8_t *payload,
                      size_t len)
{
    if (r->stopping)
        return -ESHUTDOWN;
    char key[WSP_REDIS_KEY_MAX], field[WSP_REDIS_KEY_MAX], pubchan[WSP_REDIS_KEY_MAX];
    char maxlen[24], ttl[24];
    if (wsp_stream_key(key, sizeof(key), r->cfg->channel, chan, chan_len) < 0 ||
        wsp_stream_field(field, sizeof(field), chan, chan_len) < 0 ||
        snprintf(pubchan, sizeof(pubchan), "%s%s%.*s", r->cfg->channel, chan ? ":" : "",
                 (int)chan_len, chan ? chan : "") >= (int)sizeof(pubchan))
        return -EINVAL;
    snprintf(maxlen, sizeof(maxlen), "%u", r->cfg->history_size);
    snprintf(ttl, sizeof(ttl), "%llu", (unsigned long long)r->cfg->history_ttl * 1000);
    rargs_t a = {0};
    rargs_str(&a, "EVALSHA");
    rargs_str(&a, r->sha_publish);
    rargs_str(&a, "2");
    rargs_str(&a, r->meta);
    rargs_str(&a, key);
    rargs_str(&a, field);
    rargs_str(&a, pubchan);
    rargs_add(&a, payload, len);
    rargs_str(&a, maxlen);
    rargs_str(&a, ttl);
    /* The epoch to set if Redis has none: a new one every time, never this process's, so
     * that numbers starting again after Redis lost its hash always come with another. */
    char fresh[17];
    if (wsp_framed_epoch_new(fresh) < 0)
        return -EIO;
    rargs_str(&a, fresh);
    rreq_t *q = rreq_new(r, &a);
    if (q == NULL)
        return -ENOMEM;
    int rv = rreq_send(q);
    if (rv < 0)
        free(q);
    return rv;
}

/* --- recoveries: the fetch script, and barriers --- */

/* Parses one channel's entries ([[id, [field, value, ...]], ...]) into sp->ent. */
static int fetch_entries(wsp_redis_span_t *sp, const redisReply *ents, struct wsp_redis_ent_s *e)
{
    sp->ent = e;
    sp->n = 0;
    for (size_t k = 0; k < ents->elements; k++) {
        const redisReply *it = ents->element[k];
        if (it->type != REDIS_REPLY_ARRAY || it->elements != 2 ||
            it->element[0]->type != REDIS_REPLY_STRING || it->element[1]->type != REDIS_REPLY_ARRAY)
            return -EBADMSG;
        struct wsp_redis_ent_s *x = &e[sp->n];
        if (wsp_stream_id(it->element[0]->str, it->element[0]->len, &x->seq) < 0)
            return -EBADMSG;
        x->p = NULL;
        x->t_ms = 0;
        const redisReply *f = it->element[1];
        for (size_t j = 0; j + 1 < f->elements; j += 2) {
            const redisReply *name = f->element[j], *val = f->element[j + 1];
            if (name->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
                return -EBADMSG;
            if (name->len == 1 && name->str[0] == 'd') {
                x->p = (const uint8_t *)val->str;
                x->len = val->len;
            } else if (name->len == 1 && name->str[0] == 't') {
                x->t_ms = strtoull(val->str, NULL, 10);
            }
        }
        if (x->p == NULL)
            return -EBADMSG;
        sp->n++;
    }
    return 0;
}

/* The fetch's reply: {epoch, top_1, entries_1, ...}, checked and handed to fn. */
static void rreq_fetch_reply(rreq_t *q, const redisReply *rep)
{
    int st = rep ? 0 : -EIO;
    if (st == 0 && (rep->type != REDIS_REPLY_ARRAY || rep->elements != 1 + 2 * q->nspans ||
                    rep->element[0]->type != REDIS_REPLY_STRING))
        st = -EBADMSG;
    size_t total = 0;
    for (unsigned i = 0; st == 0 && i < q->nspans; i++) {
        const redisReply *top = rep->element[1 + 2 * i], *ents = rep->element[2 + 2 * i];
        if (top->type != REDIS_REPLY_INTEGER || top->integer < 0 || ents->type != REDIS_REPLY_ARRAY)
            st = -EBADMSG;
        else
            total += ents->elements;
    }
    /* One array for every entry of the answer, for the callback's duration. */
    struct wsp_redis_ent_s *e = st == 0 ? malloc((total ? total : 1) * sizeof(*e)) : NULL;
    if (st == 0 && e == NULL)
        st = -ENOMEM;
    for (unsigned i = 0, used = 0; st == 0 && i < q->nspans; i++) {
        q->spans[i].top = (uint64_t)rep->element[1 + 2 * i]->integer;
        st = fetch_entries(&q->spans[i], rep->element[2 + 2 * i], e + used);
        used += q->spans[i].n;
    }
    if (st == 0)
        q->fn(q->ud, 0, rep->element[0]->str, rep->element[0]->len, q->spans, q->nspans);
    else
        q->fn(q->ud, st, NULL, 0, q->spans, q->nspans);
    free(e);
}

int wsp_redis_fetch(wsp_redis_t *r, wsp_redis_span_t *spans, unsigned n, unsigned maxn,
                    wsp_redis_fetch_fn fn, void *ud)
{
    char keys[WSP_CHANNELS_MAX][WSP_REDIS_KEY_MAX], fields[WSP_CHANNELS_MAX][WSP_REDIS_KEY_MAX];
    char since[WSP_CHANNELS_MAX][24], nkeys[8], maxs[24];
    int rv = r->stopping ? -ESHUTDOWN : n == 0 || n > WSP_CHANNELS_MAX ? -EINVAL : 0;
    rargs_t a = {0};
    rargs_str(&a, "EVALSHA");
    rargs_str(&a, r->sha_fetch);
    snprintf(nkeys, sizeof(nkeys), "%u", n + 1);
    rargs_str(&a, nkeys);
    rargs_str(&a, r->meta);
    for (unsigned i = 0; rv == 0 && i < n; i++) {
        if (wsp_stream_key(keys[i], sizeof(keys[i]), r->cfg->channel, spans[i].chan,
                           spans[i].chan_len) < 0 ||
            wsp_stream_field(fields[i], sizeof(fields[i]), spans[i].chan, spans[i].chan_len) < 0)
            rv = -EINVAL;
        else
            rargs_str(&a, keys[i]);
    }
    char fresh[17];
    if (rv == 0 && wsp_framed_epoch_new(fresh) < 0)
        rv = -EIO;
    rargs_str(&a, rv == 0 ? fresh : ""); /* as for a publish: a new one if Redis has none */
    snprintf(maxs, sizeof(maxs), "%u", maxn);
    rargs_str(&a, maxs);
    for (unsigned i = 0; rv == 0 && i < n; i++) {
        snprintf(since[i], sizeof(since[i]), "%lld", (long long)spans[i].since);
        rargs_str(&a, fields[i]);
        rargs_str(&a, since[i]);
    }
    rreq_t *q = rv == 0 ? rreq_new(r, &a) : NULL;
    if (rv == 0 && q == NULL)
        rv = -ENOMEM;
    if (q) {
        q->fetch = 1;
        q->fn = fn;
        q->ud = ud;
        q->spans = spans;
        q->nspans = n;
        if ((rv = rreq_send(q)) < 0)
            free(q);
    }
    if (rv < 0)
        fn(ud, rv, NULL, 0, spans, n);
    return rv;
}

void wsp__redis_barriers_fail(wsp_redis_t *r, int status)
{
    rbarrier_t *b = r->bhead;
    r->bhead = r->btail = NULL;
    while (b) {
        rbarrier_t *next = b->next;
        b->fn(b->ud, status);
        free(b);
        b = next;
    }
}

static void on_barrier_sent(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)priv;
    redisReply *rep = reply;
    wsp_redis_t *r = ac->data;
    /* Not published (link lost, an error): its token will never come back. */
    if ((rep == NULL || rep->type == REDIS_REPLY_ERROR) && r->bhead)
        wsp__redis_barriers_fail(r, -EIO);
}

void wsp_redis_mark(wsp_redis_t *r, wsp_redis_barrier_fn fn, void *ud, char *out, size_t cap)
{
    int err = -ENOTCONN;
    redisAsyncContext *ac = r->up && !r->stopping ? wsp__redis_pub(r, &err) : NULL;
    /* One per recovery fetch (or live upgrade), freed when its token returns. */
    rbarrier_t *b = ac ? calloc(1, sizeof(*b)) : NULL;
    char tok[48];
    if (b)
        snprintf(tok, sizeof(tok), "%s%llu", r->tokpfx, (unsigned long long)(r->tokens + 1));
    if (out && cap)
        out[0] = '\0';
    if (b == NULL ||
        redisAsyncCommand(ac, on_barrier_sent, NULL, "PUBLISH %s %s", r->sync, tok) != REDIS_OK) {
        free(b);
        fn(ud, ac ? -ENOMEM : err);
        return;
    }
    if (out && cap > strlen(tok))
        memcpy(out, tok, strlen(tok) + 1);
    b->token = ++r->tokens;
    b->fn = fn;
    b->ud = ud;
    if (r->btail)
        r->btail->next = b;
    else
        r->bhead = b;
    r->btail = b;
}

void wsp_redis_barrier(wsp_redis_t *r, wsp_redis_barrier_fn fn, void *ud)
{
    wsp_redis_mark(r, fn, ud, NULL, 0);
}
