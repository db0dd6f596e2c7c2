#include "redis.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "channels.h"
#include "framed.h"
#include "log.h"
#include "stream.h"
#include "utf8.h"

#define WSP_REDIS_BACKOFF_MIN_MS 100
#define WSP_REDIS_BACKOFF_MAX_MS 5000
#define WSP_REDIS_CONNECT_TIMEOUT_MS 5000 /* hiredis 0.14 has no async connect timeout */
#define WSP_REDIS_SUB_MAX 64              /* a user id: a token's sub (common/jwt.h) */
#define WSP_REDIS_KEY_MAX 256             /* --channel is < 128 bytes, a channel name <= 64 */
#define WSP_REDIS_SUBSCRIPTIONS 3         /* NAME, NAME:*, the sync channel */

/* A barrier in flight: completed when its token comes back on the sync channel. */
typedef struct rbarrier_s {
    struct rbarrier_s *next;
    uint64_t token;
    wsp_redis_barrier_fn fn;
    void *ud;
} rbarrier_t;

struct wsp_redis_s {
    uv_timer_t retry;     /* first member: the close callback frees the struct through it */
    uv_getaddrinfo_t gai; /* one resolution of cfg->redis_host at a time, on libuv's threadpool */
    uv_loop_t *loop;
    const wsp_config_t *cfg;
    redisAsyncContext *ac;  /* subscriber; NULL while disconnected */
    redisAsyncContext *pub; /* publisher, made on first use; NULL while disconnected */
    wsp_redis_msg_fn fn;
    wsp_redis_link_fn link;
    wsp_redis_user_fn user_fn; /* NAME:#<sub> (issue #16); NULL: dropped */
    void *user;
    uint64_t backoff_ms;
    uint64_t dropped;
    int up;            /* subscribed to all three */
    int stopping;      /* wsp_redis_stop() called */
    int was_up;        /* for the log: "lost" versus "still unreachable" */
    unsigned confirms; /* subscriptions confirmed on this connection */
    rbarrier_t *bhead, *btail;
    uint64_t tokens; /* barriers sent */
    char sha_publish[41], sha_fetch[41];
    char meta[WSP_REDIS_KEY_MAX]; /* NAME:hist */
    char sync[WSP_REDIS_KEY_MAX]; /* NAME.sync.<epoch>: this process's own channel */
    /* Resolving: the coordinator's loop never waits for a name. */
    char addr[INET6_ADDRSTRLEN]; /* what the host last resolved to; "" until the first time */
    int resolving;               /* gai in flight */
    int sub_waiting;             /* the subscriber connects once it completes */
    int resolve_failing;         /* the last resolution failed: logged once per run */
    int timer_closed;            /* stopped: freed once no resolution is in flight either */
    uint64_t resolve_failures;
};

static void redis_connect(wsp_redis_t *r);
static void redis_resolve(wsp_redis_t *r);
static void redis_connect_addr(wsp_redis_t *r);
static void redis_schedule(wsp_redis_t *r);

/* Our own libuv adapter. Debian's hiredis 0.14 adapters/libuv.h ignores a poll error status,
 * which is how libuv reports a refused non-blocking connect: hiredis would then wait forever.
 * Here an error hands the socket to hiredis, which reads SO_ERROR and gives up cleanly. */
typedef struct wsp_redis_ev_s {
    uv_poll_t poll;
    redisAsyncContext *ac; /* NULL once hiredis has cleaned up */
    int events;
} wsp_redis_ev_t;

static void on_redis_poll(uv_poll_t *h, int status, int events)
{
    wsp_redis_ev_t *ev = h->data;
    if (status < 0)
        events = ev->events; /* refused, reset: let hiredis find out from the socket */
    if (ev->ac != NULL && (events & UV_READABLE))
        redisAsyncHandleRead(ev->ac);
    if (ev->ac != NULL && (events & UV_WRITABLE))
        redisAsyncHandleWrite(ev->ac);
}

static void redis_ev_update(wsp_redis_ev_t *ev, int events)
{
    ev->events = events;
    int rv =
        ev->events ? uv_poll_start(&ev->poll, ev->events, on_redis_poll) : uv_poll_stop(&ev->poll);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=redis_poll_failed error=%s", uv_err_name(rv));
}

static void on_redis_add_read(void *p)
{
    wsp_redis_ev_t *ev = p;
    redis_ev_update(ev, ev->events | UV_READABLE);
}

static void on_redis_del_read(void *p)
{
    wsp_redis_ev_t *ev = p;
    redis_ev_update(ev, ev->events & ~UV_READABLE);
}

static void on_redis_add_write(void *p)
{
    wsp_redis_ev_t *ev = p;
    redis_ev_update(ev, ev->events | UV_WRITABLE);
}

static void on_redis_del_write(void *p)
{
    wsp_redis_ev_t *ev = p;
    redis_ev_update(ev, ev->events & ~UV_WRITABLE);
}

static void on_redis_ev_closed(uv_handle_t *h) { free(h->data); }

static void on_redis_cleanup(void *p)
{
    wsp_redis_ev_t *ev = p;
    ev->ac = NULL; /* hiredis is freeing the context */
    uv_close((uv_handle_t *)&ev->poll, on_redis_ev_closed);
}

static int redis_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
    wsp_redis_ev_t *ev = calloc(1, sizeof(*ev));
    if (ev == NULL)
        return -ENOMEM;
    int rv = uv_poll_init(loop, &ev->poll, ac->c.fd);
    if (rv < 0) {
        free(ev);
        return rv;
    }
    ev->poll.data = ev;
    ev->ac = ac;
    ac->ev.data = ev;
    ac->ev.addRead = on_redis_add_read;
    ac->ev.delRead = on_redis_del_read;
    ac->ev.addWrite = on_redis_add_write;
    ac->ev.delWrite = on_redis_del_write;
    ac->ev.cleanup = on_redis_cleanup;
    return 0;
}

/* The retry timer: the next attempt after a backoff, or the deadline of a connect that has
 * not subscribed in time (hiredis 0.14 has no timeout of its own, and a SYN to an address
 * that drops it is retried for minutes): that attempt is dropped and the next one resolves
 * the host again. */
static void on_redis_retry(uv_timer_t *t)
{
    wsp_redis_t *r = (wsp_redis_t *)(void *)t;
    redisAsyncContext *ac = r->ac;
    if (ac != NULL && !r->up) {
        WSP_LOG(WSP_LOG_WARN, "event=redis_unreachable host=%s addr=%s port=%d error=\"%s\"",
                r->cfg->redis_host, r->addr, r->cfg->redis_port, "connect timeout");
        int connected = (ac->c.flags & REDIS_CONNECTED) != 0;
        if (!connected) /* hiredis then calls no callback: forget it here */
            r->ac = NULL;
        redisAsyncFree(ac); /* connected: on_redis_disconnect() forgets it and reschedules */
        if (!connected)
            redis_schedule(r);
        return;
    }
    redis_connect(r);
}

static void redis_schedule(wsp_redis_t *r)
{
    if (r->stopping)
        return;
    int rv = uv_timer_start(&r->retry, on_redis_retry, r->backoff_ms, 0);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=redis_retry_failed error=%s", uv_err_name(rv));
    r->backoff_ms *= 2;
    if (r->backoff_ms > WSP_REDIS_BACKOFF_MAX_MS)
        r->backoff_ms = WSP_REDIS_BACKOFF_MAX_MS;
}

static void redis_barriers_fail(wsp_redis_t *r, int status);

/* A token came back on the sync channel: every barrier up to it has passed. */
static void redis_barriers_pass(wsp_redis_t *r, const char *tok, size_t len)
{
    uint64_t t = 0;
    for (size_t i = 0; i < len && i < 20 && tok[i] >= '0' && tok[i] <= '9'; i++)
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

/* A subscription confirmed: the link is up once all three are. */
static void redis_confirmed(wsp_redis_t *r)
{
    if (++r->confirms != WSP_REDIS_SUBSCRIPTIONS)
        return;
    r->up = 1;
    r->was_up = 1;
    r->backoff_ms = WSP_REDIS_BACKOFF_MIN_MS;
    (void)uv_timer_stop(&r->retry); /* the connect deadline; cannot fail */
    WSP_LOG(WSP_LOG_INFO, "event=redis_subscribed host=%s port=%d channel=%s", r->cfg->redis_host,
            r->cfg->redis_port, r->cfg->channel);
    if (r->link)
        r->link(r->user, 1);
}

/* Checks a message and hands it over: the envelope of a sequenced message is opened first. */
static void redis_deliver(wsp_redis_t *r, const char *chan, size_t chan_len, const uint8_t *p,
                          size_t len, int named)
{
    uint64_t cseq = 0;
    const char *epoch = NULL;
    size_t elen = 0;
    const uint8_t *body = p;
    size_t blen = len;
    int env = wsp_stream_parse(p, len, &cseq, &epoch, &elen, &body, &blen);
    const char *why = NULL;
    if (env < 0)
        why = "bad_envelope";
    else if (blen > WSP_CONFIG_MAX_PUBLISH)
        why = "too_large";
    else if (!wsp_utf8_valid(body, blen))
        why = "invalid_utf8";
    /* NAME:#<sub>: a user's message (raw: users have no sequence); channel names never hold '#'. */
    int for_user = named && chan_len > 0 && chan[0] == '#';
    if (for_user &&
        (env > 0 || r->user_fn == NULL || chan_len < 2 || chan_len > 1 + WSP_REDIS_SUB_MAX))
        why = "invalid_user";
    else if (named && !for_user && !wsp_channel_valid(chan, chan_len))
        why = "invalid_channel";
    if (why) {
        r->dropped++;
        WSP_LOG(WSP_LOG_WARN, "event=redis_message_dropped bytes=%zu reason=%s dropped=%llu", len,
                why, (unsigned long long)r->dropped);
        return;
    }
    if (for_user)
        r->user_fn(r->user, chan + 1, chan_len - 1, body, blen);
    else
        r->fn(r->user, named ? chan : NULL, named ? chan_len : 0, body, blen, cseq, epoch, elen);
}

static void on_redis_message(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    wsp_redis_t *r = priv;
    redisReply *rep = reply;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3)
        return; /* NULL: the context is going away */
    redisReply *kind = rep->element[0];
    if (kind->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(kind->str, "subscribe") == 0 || strcmp(kind->str, "psubscribe") == 0) {
        redis_confirmed(r);
        return;
    }
    /* message: [kind, channel, payload]; pmessage: [kind, pattern, channel, payload] */
    int pm = strcmp(kind->str, "pmessage") == 0;
    if (!pm && strcmp(kind->str, "message") != 0)
        return;
    if (rep->elements < (size_t)(pm ? 4 : 3))
        return;
    redisReply *channel = rep->element[pm ? 2 : 1];
    redisReply *payload = rep->element[pm ? 3 : 2];
    if (payload->type != REDIS_REPLY_STRING || channel->type != REDIS_REPLY_STRING)
        return;
    if (!pm && strcmp(channel->str, r->sync) == 0) {
        redis_barriers_pass(r, payload->str, payload->len);
        return;
    }
    size_t plen = strlen(r->cfg->channel) + 1; /* NAME:<chan> */
    redis_deliver(r, pm ? channel->str + plen : NULL, pm ? channel->len - plen : 0,
                  (const uint8_t *)payload->str, payload->len, pm);
}

static void on_redis_connect(const redisAsyncContext *ac, int status)
{
    wsp_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees ac after this callback. */
        r->ac = NULL;
        if (r->was_up || r->backoff_ms == WSP_REDIS_BACKOFF_MIN_MS)
            WSP_LOG(WSP_LOG_WARN,
                    "event=redis_unreachable host=%s addr=%s port=%d error=\"%s\" retry_ms=%llu",
                    r->cfg->redis_host, r->addr, r->cfg->redis_port, ac->errstr,
                    (unsigned long long)r->backoff_ms);
        r->was_up = 0;
        redis_schedule(r);
        return;
    }
    WSP_LOG(WSP_LOG_INFO, "event=redis_connected host=%s port=%d", r->cfg->redis_host,
            r->cfg->redis_port);
}

static void on_redis_disconnect(const redisAsyncContext *ac, int status)
{
    wsp_redis_t *r = ac->data;
    r->ac = NULL; /* hiredis frees ac after this callback */
    int was = r->up;
    r->up = 0;
    redis_barriers_fail(r, -ENOTCONN); /* their tokens can no longer come back */
    if (was && r->link)
        r->link(r->user, 0);
    if (r->stopping)
        return;
    WSP_LOG(WSP_LOG_WARN, "event=redis_link_lost status=%d subscribed=%d error=\"%s\"", status, was,
            ac->errstr[0] ? ac->errstr : "closed");
    redis_schedule(r);
}

static void redis_maybe_free(wsp_redis_t *r)
{
    if (r->timer_closed && !r->resolving)
        free(r);
}

/* The first IPv4 address of res, else its first IPv6 one (the order hiredis itself tries),
 * as text into r->addr. Returns 0 or -EAFNOSUPPORT. */
static int redis_pick_addr(wsp_redis_t *r, const struct addrinfo *res)
{
    const struct addrinfo *pick = NULL;
    for (const struct addrinfo *a = res; a != NULL && pick == NULL; a = a->ai_next)
        if (a->ai_family == AF_INET)
            pick = a;
    for (const struct addrinfo *a = res; a != NULL && pick == NULL; a = a->ai_next)
        if (a->ai_family == AF_INET6)
            pick = a;
    char text[sizeof r->addr];
    if (pick == NULL || uv_ip_name(pick->ai_addr, text, sizeof text) != 0)
        return -EAFNOSUPPORT;
    if (strcmp(text, r->addr) != 0) /* the first time, or the host moved */
        WSP_LOG(WSP_LOG_INFO, "event=redis_resolved host=%s addr=%s previous=%s",
                r->cfg->redis_host, text, r->addr[0] ? r->addr : "none");
    memcpy(r->addr, text, sizeof text);
    return 0;
}

static void on_redis_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    wsp_redis_t *r = WSP_CONTAINER_OF(req, wsp_redis_t, gai);
    r->resolving = 0;
    int sub = r->sub_waiting;
    r->sub_waiting = 0;
    if (status == 0)
        status = redis_pick_addr(r, res);
    uv_freeaddrinfo(res); /* NULL is fine */
    if (r->stopping) {
        redis_maybe_free(r);
        return;
    }
    if (status < 0) {
        r->resolve_failures++;
        /* Once per run of failures (as redis_unreachable), then only counted. */
        WSP_LOG(r->resolve_failing ? WSP_LOG_DEBUG : WSP_LOG_WARN,
                "event=redis_resolve_failed host=%s error=%s failures=%llu retry_ms=%llu",
                r->cfg->redis_host, uv_err_name(status), (unsigned long long)r->resolve_failures,
                (unsigned long long)r->backoff_ms);
        r->resolve_failing = 1;
        if (sub)
            redis_schedule(r);
        return;
    }
    if (r->resolve_failing)
        WSP_LOG(WSP_LOG_INFO, "event=redis_resolve_recovered host=%s addr=%s failures=%llu",
                r->cfg->redis_host, r->addr, (unsigned long long)r->resolve_failures);
    r->resolve_failing = 0;
    if (sub && r->ac == NULL)
        redis_connect_addr(r);
}

/* Starts resolving cfg->redis_host on libuv's threadpool unless a resolution is in flight;
 * on_redis_resolved() then connects the subscriber if it waits. A failure to start is one
 * more failed resolution. */
static void redis_resolve(wsp_redis_t *r)
{
    if (r->resolving || r->stopping)
        return;
    char port[8];
    snprintf(port, sizeof port, "%d", r->cfg->redis_port);
    struct addrinfo hints = {0};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    r->resolving = 1;
    int rv = uv_getaddrinfo(r->loop, &r->gai, on_redis_resolved, r->cfg->redis_host, port, &hints);
    if (rv < 0) /* libuv never calls back: report it the same way, now */
        on_redis_resolved(&r->gai, rv, NULL);
}

/* Connects the subscriber to the address just resolved and queues its subscriptions. */
static void redis_connect_addr(wsp_redis_t *r)
{
    /* Numeric: hiredis's own getaddrinfo() returns at once. */
    redisAsyncContext *ac = redisAsyncConnect(r->addr, r->cfg->redis_port);
    if (ac == NULL) {
        redis_schedule(r);
        return;
    }
    if (ac->err) {
        WSP_LOG(WSP_LOG_WARN, "event=redis_unreachable host=%s addr=%s port=%d error=\"%s\"",
                r->cfg->redis_host, r->addr, r->cfg->redis_port, ac->errstr);
        redisAsyncFree(ac);
        redis_schedule(r);
        return;
    }
    ac->data = r;
    if (redis_attach(ac, r->loop) < 0 ||
        redisAsyncSetConnectCallback(ac, on_redis_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_redis_disconnect) != REDIS_OK) {
        redisAsyncFree(ac);
        redis_schedule(r);
        return;
    }
    r->ac = ac;
    r->confirms = 0;
    /* Queued now, sent once connected; pub/sub ignores the database number. NAME carries
     * the default client channel, NAME:<chan> the named ones (names: server/channels.c; a
     * shard's channels and their state: server/chan.c); the sync channel carries only this
     * process's barriers. */
    if (redisAsyncCommand(ac, on_redis_message, r, "SUBSCRIBE %b", r->cfg->channel,
                          strlen(r->cfg->channel)) != REDIS_OK ||
        redisAsyncCommand(ac, on_redis_message, r, "PSUBSCRIBE %b:*", r->cfg->channel,
                          strlen(r->cfg->channel)) != REDIS_OK ||
        redisAsyncCommand(ac, on_redis_message, r, "SUBSCRIBE %s", r->sync) != REDIS_OK) {
        r->ac = NULL;
        redisAsyncFree(ac);
        redis_schedule(r);
        return;
    }
    int rv = uv_timer_start(&r->retry, on_redis_retry, WSP_REDIS_CONNECT_TIMEOUT_MS, 0);
    if (rv < 0)
        WSP_LOG(WSP_LOG_ERROR, "event=redis_timer_failed error=%s", uv_err_name(rv));
}

/* Every (re)connection of the subscriber resolves the host again: its address may have
 * changed (a failover, a rescheduled container). */
static void redis_connect(wsp_redis_t *r)
{
    if (r->stopping || r->ac != NULL || r->fn == NULL)
        return;
    r->sub_waiting = 1;
    redis_resolve(r);
}

int wsp_redis_start(wsp_redis_t **out, uv_loop_t *loop, const wsp_config_t *cfg,
                    wsp_redis_msg_fn fn, wsp_redis_link_fn link, void *user)
{
    wsp_redis_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    if (wsp_stream_shas(r->sha_publish, r->sha_fetch) < 0 ||
        wsp_stream_meta_key(r->meta, sizeof(r->meta), cfg->channel) < 0 ||
        snprintf(r->sync, sizeof(r->sync), "%s.sync.%s", cfg->channel, cfg->epoch) >=
            (int)sizeof(r->sync)) {
        free(r);
        return -ENOMEM;
    }
    int rv = uv_timer_init(loop, &r->retry);
    if (rv < 0) {
        free(r);
        return rv;
    }
    r->loop = loop;
    r->cfg = cfg;
    r->fn = fn;
    r->link = link;
    r->user = user;
    r->backoff_ms = WSP_REDIS_BACKOFF_MIN_MS;
    *out = r;
    if (fn != NULL)
        redis_connect(r);
    else
        redis_resolve(r); /* a publisher alone: the address is ready for the first publish */
    return 0;
}

static void on_redis_closed(uv_handle_t *h)
{
    wsp_redis_t *r = (wsp_redis_t *)(void *)h; /* the timer is the struct's first member */
    r->timer_closed = 1;
    redis_maybe_free(r);
}

static void on_redis_pub_connect(const redisAsyncContext *ac, int status)
{
    wsp_redis_t *r = ac->data;
    if (status != REDIS_OK) {
        r->pub = NULL; /* hiredis frees ac after this callback; the next publish retries */
        WSP_LOG(WSP_LOG_WARN,
                "event=redis_publish_unreachable host=%s addr=%s port=%d error=\"%s\"",
                r->cfg->redis_host, r->addr, r->cfg->redis_port, ac->errstr);
        redis_resolve(r); /* the host may have moved: the next publish uses the new address */
    }
}

static void on_redis_pub_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    wsp_redis_t *r = ac->data;
    r->pub = NULL;    /* hiredis frees ac after this callback; the next publish reconnects */
    redis_resolve(r); /* to the address the host has then */
}

/* The publishing connection, made on first use; its first commands load both scripts, so
 * that EVALSHA finds them (a NOSCRIPT later, after a SCRIPT FLUSH, loads them again). */
static redisAsyncContext *redis_pub(wsp_redis_t *r, int *err)
{
    if (r->pub)
        return r->pub;
    if (r->addr[0] == '\0') { /* never resolved (yet): try again, refuse this one */
        redis_resolve(r);
        *err = -EHOSTUNREACH;
        return NULL;
    }
    redisAsyncContext *ac = redisAsyncConnect(r->addr, r->cfg->redis_port);
    *err = -ENOMEM;
    if (ac == NULL)
        return NULL;
    if (ac->err) {
        WSP_LOG(WSP_LOG_WARN,
                "event=redis_publish_unreachable host=%s addr=%s port=%d error=\"%s\"",
                r->cfg->redis_host, r->addr, r->cfg->redis_port, ac->errstr);
        redisAsyncFree(ac);
        *err = -ECONNREFUSED;
        return NULL;
    }
    ac->data = r;
    if (redis_attach(ac, r->loop) < 0 ||
        redisAsyncSetConnectCallback(ac, on_redis_pub_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_redis_pub_disconnect) != REDIS_OK ||
        redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", wsp_stream_publish_lua) != REDIS_OK ||
        redisAsyncCommand(ac, NULL, NULL, "SCRIPT LOAD %s", wsp_stream_fetch_lua) != REDIS_OK) {
        redisAsyncFree(ac);
        return NULL;
    }
    r->pub = ac;
    return ac;
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
    redisAsyncContext *ac = redis_pub(q->r, &err);
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

void wsp_redis_set_user_fn(wsp_redis_t *r, wsp_redis_user_fn fn) { r->user_fn = fn; }

static void on_redis_user_published(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)ac;
    (void)priv;
    const redisReply *rep = reply;
    if (rep == NULL || rep->type == REDIS_REPLY_ERROR)
        WSP_LOG(WSP_LOG_WARN, "event=redis_publish_failed kind=user error=\"%s\"",
                rep ? rep->str : "link lost");
}

int wsp_redis_publish_user(wsp_redis_t *r, const char *sub, size_t sub_len, const uint8_t *payload,
                           size_t len)
{
    if (r->stopping)
        return -ESHUTDOWN;
    int err;
    redisAsyncContext *ac = redis_pub(r, &err);
    if (ac == NULL)
        return err;
    /* A plain PUBLISH: a user's messages have no sequence and no history (issue #16). */
    int rv =
        redisAsyncCommand(ac, on_redis_user_published, NULL, "PUBLISH %b:#%b %b", r->cfg->channel,
                          strlen(r->cfg->channel), sub, sub_len, payload, len);
    return rv == REDIS_OK ? 0 : -ENOMEM;
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

static void redis_barriers_fail(wsp_redis_t *r, int status)
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
        redis_barriers_fail(r, -EIO);
}

void wsp_redis_barrier(wsp_redis_t *r, wsp_redis_barrier_fn fn, void *ud)
{
    int err = -ENOTCONN;
    redisAsyncContext *ac = r->up && !r->stopping ? redis_pub(r, &err) : NULL;
    /* One per recovery fetch, freed when its token returns. */
    rbarrier_t *b = ac ? calloc(1, sizeof(*b)) : NULL;
    char tok[24];
    if (b)
        snprintf(tok, sizeof(tok), "%llu", (unsigned long long)(r->tokens + 1));
    if (b == NULL ||
        redisAsyncCommand(ac, on_barrier_sent, NULL, "PUBLISH %s %s", r->sync, tok) != REDIS_OK) {
        free(b);
        fn(ud, ac ? -ENOMEM : err);
        return;
    }
    b->token = ++r->tokens;
    b->fn = fn;
    b->ud = ud;
    if (r->btail)
        r->btail->next = b;
    else
        r->bhead = b;
    r->btail = b;
}

void wsp_redis_stop(wsp_redis_t *r)
{
    if (r == NULL)
        return;
    r->stopping = 1;
    if (r->pub) {
        redisAsyncContext *ac = r->pub;
        r->pub = NULL;
        redisAsyncFree(ac);
    }
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        redisAsyncFree(ac); /* calls on_redis_disconnect, closes the adapter's poll handle */
    }
    /* A resolution that has not started is cancelled (its callback sees UV_ECANCELED); one
     * that runs cannot be, and the loop waits for it: getaddrinfo()'s own timeouts bound it. */
    if (r->resolving)
        (void)uv_cancel((uv_req_t *)&r->gai); /* UV_EBUSY while it runs: waited for */
    uv_close((uv_handle_t *)&r->retry, on_redis_closed);
}

int wsp_redis_up(const wsp_redis_t *r) { return r->up; }

uint64_t wsp_redis_dropped(const wsp_redis_t *r) { return r->dropped; }

uint64_t wsp_redis_resolve_failures(const wsp_redis_t *r) { return r->resolve_failures; }
