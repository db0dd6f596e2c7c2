#include "redis.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "alloc.h"
#include "channels.h"
#include "framed.h"
#include "log.h"
#include "redis_int.h"
#include "stream.h"
#include "utf8.h"

#define WSP_REDIS_BACKOFF_MIN_MS 100
#define WSP_REDIS_BACKOFF_MAX_MS 5000
#define WSP_REDIS_CONNECT_TIMEOUT_MS 5000 /* hiredis 0.14 has no async connect timeout */
#define WSP_REDIS_SUB_MAX 64              /* a user id: a token's sub (common/jwt.h) */
#define WSP_REDIS_SUBSCRIPTIONS 3         /* NAME, NAME:*, the sync channel */

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
        wsp__redis_barriers_pass(r, payload->str, payload->len);
        if (r->sync_fn && !r->stopping)
            r->sync_fn(r->user, payload->str, payload->len);
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
    wsp__redis_barriers_fail(r, -ENOTCONN); /* their tokens can no longer come back */
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
                "event=redis_resolve_failed host=%s error=%s detail=\"%s\" failures=%llu "
                "retry_ms=%llu",
                r->cfg->redis_host, uv_err_name(status), uv_strerror(status),
                (unsigned long long)r->resolve_failures, (unsigned long long)r->backoff_ms);
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
            (int)sizeof(r->sync) ||
        snprintf(r->tokpfx, sizeof(r->tokpfx), "%d.", (int)getpid()) >= (int)sizeof(r->tokpfx)) {
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
redisAsyncContext *wsp__redis_pub(wsp_redis_t *r, int *err)
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

void wsp_redis_set_user_fn(wsp_redis_t *r, wsp_redis_user_fn fn) { r->user_fn = fn; }

void wsp_redis_set_sync_fn(wsp_redis_t *r, wsp_redis_sync_fn fn) { r->sync_fn = fn; }

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
    redisAsyncContext *ac = wsp__redis_pub(r, &err);
    if (ac == NULL)
        return err;
    /* A plain PUBLISH: a user's messages have no sequence and no history (issue #16). */
    int rv =
        redisAsyncCommand(ac, on_redis_user_published, NULL, "PUBLISH %b:#%b %b", r->cfg->channel,
                          strlen(r->cfg->channel), sub, sub_len, payload, len);
    return rv == REDIS_OK ? 0 : -ENOMEM;
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
