#include "bcast.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"
#include "frame.h"

/* A kind's build state (wsp_bcast_s.state): the first shard to move NONE to BUILDING builds,
 * then publishes READY or FAILED with a release store; the others wait for that store. */
enum { BCAST_NONE = 0, BCAST_BUILDING, BCAST_READY, BCAST_FAILED };

struct wsp_bcast_s {
    /* One reference per kind built; NULL for a kind not built (yet). PLAIN is built by
     * wsp_bcast_new(); the others by wsp_bcast_frame_build(), written before state[kind]
     * turns READY. */
    wsp_msg_t *frame[WSP_BCAST_NKINDS];
    atomic_int state[WSP_BCAST_NKINDS];
    uv_async_t *done;    /* whom the last shard wakes */
    uint64_t seq;        /* the publisher's number */
    unsigned shards;     /* shards it was posted to */
    atomic_uint pending; /* shards still holding it */
    atomic_uint_fast64_t first_start, last_end, written, failed;
    wsp_bcast_t *next; /* the coordinator's in-flight list */
    uint64_t uid, tag; /* a user message (issue #16): its user id and delivery report tag */
    uint8_t user;      /* 1: for the user uid, not for a channel */
    wsp_bcast_pos_t pos;
    void *hist;                 /* a live upgrade's carried history, or NULL */
    void (*hist_free)(void *p); /* frees it with b */
    uint8_t chan_len;           /* 0 = the default channel */
    char chan[WSP_CHANNEL_NAME_MAX + 1];
};

int wsp_bcast_new(wsp_bcast_t **out, const char *chan, size_t chan_len, const uint8_t *payload,
                  size_t len, uint64_t seq, unsigned shards, uv_async_t *done)
{
    *out = NULL;
    if (chan_len > WSP_CHANNEL_NAME_MAX)
        return -EINVAL;
    /* One allocation and one encoding per broadcast, never per connection. */
    wsp_msg_t *m = wsp_frame_msg(WSP_OP_TEXT, payload, len);
    wsp_bcast_t *b = calloc(1, sizeof(*b));
    if (m == NULL || b == NULL) {
        if (m)
            wsp_msg_unref(m);
        free(b);
        return -ENOMEM;
    }
    b->frame[WSP_BCAST_PLAIN] = m;
    for (unsigned k = 0; k < WSP_BCAST_NKINDS; k++)
        atomic_init(&b->state[k], k == WSP_BCAST_PLAIN ? BCAST_READY : BCAST_NONE);
    b->done = done;
    b->seq = seq;
    b->shards = shards;
    b->chan_len = (uint8_t)chan_len;
    if (chan_len)
        memcpy(b->chan, chan, chan_len);
    b->chan[chan_len] = '\0';
    atomic_init(&b->pending, shards);
    atomic_init(&b->first_start, UINT64_MAX);
    atomic_init(&b->last_end, 0);
    atomic_init(&b->written, 0);
    atomic_init(&b->failed, 0);
    *out = b;
    return 0;
}

wsp_msg_t *wsp_bcast_frame(wsp_bcast_t *b, unsigned kind)
{
    if (atomic_load_explicit(&b->state[kind], memory_order_acquire) != BCAST_READY)
        return NULL;
    return b->frame[kind];
}

wsp_msg_t *wsp_bcast_frame_build(wsp_bcast_t *b, unsigned kind, wsp_bcast_build_fn build, void *ctx)
{
    int st = atomic_load_explicit(&b->state[kind], memory_order_acquire);
    if (st == BCAST_NONE &&
        atomic_compare_exchange_strong_explicit(&b->state[kind], &st, BCAST_BUILDING,
                                                memory_order_acquire, memory_order_acquire)) {
        b->frame[kind] = build(b, ctx);
        atomic_store_explicit(&b->state[kind], b->frame[kind] ? BCAST_READY : BCAST_FAILED,
                              memory_order_release);
        return b->frame[kind];
    }
    /* Another shard builds it: one encode or compression, so wait rather than build twice. */
    while ((st = atomic_load_explicit(&b->state[kind], memory_order_acquire)) == BCAST_BUILDING)
        sched_yield();
    return st == BCAST_READY ? b->frame[kind] : NULL;
}

const uint8_t *wsp_bcast_frame_payload(const wsp_msg_t *m, size_t *len)
{
    /* Server frames are unmasked: 2 header bytes, then 2 or 8 of extended length. */
    size_t hdr = (m->bytes[1] & 0x7f) == 126 ? 4 : (m->bytes[1] & 0x7f) == 127 ? 10 : 2;
    *len = m->len - hdr;
    return m->bytes + hdr;
}

const uint8_t *wsp_bcast_payload(const wsp_bcast_t *b, size_t *len)
{
    return wsp_bcast_frame_payload(b->frame[WSP_BCAST_PLAIN], len);
}

const char *wsp_bcast_channel(const wsp_bcast_t *b, size_t *len)
{
    *len = b->chan_len;
    return b->chan_len ? b->chan : NULL;
}

uint64_t wsp_bcast_seq(const wsp_bcast_t *b) { return b->seq; }

void wsp_bcast_set_user(wsp_bcast_t *b, uint64_t uid, uint64_t tag)
{
    b->user = 1;
    b->uid = uid;
    b->tag = tag;
}

int wsp_bcast_user(const wsp_bcast_t *b, uint64_t *uid, uint64_t *tag)
{
    if (uid)
        *uid = b->uid;
    if (tag)
        *tag = b->tag;
    return b->user;
}

void wsp_bcast_set_pos(wsp_bcast_t *b, const wsp_bcast_pos_t *pos) { b->pos = *pos; }

const wsp_bcast_pos_t *wsp_bcast_pos(const wsp_bcast_t *b) { return &b->pos; }

void wsp_bcast_set_history(wsp_bcast_t *b, void *h, void (*free_fn)(void *h))
{
    b->hist = h;
    b->hist_free = free_fn;
}

const void *wsp_bcast_history(const wsp_bcast_t *b) { return b->hist; }

wsp_msg_t *wsp_bcast_build_framed(const wsp_bcast_t *b, void *ctx)
{
    (void)ctx;
    size_t len;
    const uint8_t *p = wsp_bcast_payload(b, &len);
    if (b->chan_len)
        return wsp_framed_msg(b->chan, b->chan_len, b->pos.seq, p, len);
    return wsp_framed_msg(WSP_CHANNEL_DEFAULT, sizeof(WSP_CHANNEL_DEFAULT) - 1, b->pos.seq, p, len);
}

wsp_msg_t *wsp_bcast_framed(wsp_bcast_t *b)
{
    return wsp_bcast_frame_build(b, WSP_BCAST_FRAMED, wsp_bcast_build_framed, NULL);
}

static void atomic_min_u64(atomic_uint_fast64_t *a, uint64_t v)
{
    uint_fast64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v < cur && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

static void atomic_max_u64(atomic_uint_fast64_t *a, uint64_t v)
{
    uint_fast64_t cur = atomic_load_explicit(a, memory_order_relaxed);
    while (v > cur && !atomic_compare_exchange_weak_explicit(a, &cur, v, memory_order_relaxed,
                                                             memory_order_relaxed))
        ;
}

void wsp_bcast_done(wsp_bcast_t *b, const wsp_bcast_report_t *r)
{
    uv_async_t *done = b->done; /* read before the release below: b may be freed after it */
    if (r->start_ns) {
        atomic_min_u64(&b->first_start, r->start_ns);
        atomic_max_u64(&b->last_end, r->end_ns);
    }
    atomic_fetch_add_explicit(&b->written, r->written, memory_order_relaxed);
    atomic_fetch_add_explicit(&b->failed, r->failed, memory_order_relaxed);
    /* acq_rel: our updates above happen-before the coordinator's read of them. */
    if (atomic_fetch_sub_explicit(&b->pending, 1, memory_order_acq_rel) == 1) {
        int rv = uv_async_send(done);
        (void)rv; /* only fails for a non-async handle */
    }
}

int wsp_bcast_cancel(wsp_bcast_t *b, unsigned n)
{
    return n && atomic_fetch_sub_explicit(&b->pending, n, memory_order_acq_rel) == n;
}

void wsp_bcast_track(wsp_bcast_t **list, wsp_bcast_t *b)
{
    b->next = *list;
    *list = b;
}

static void bcast_free(wsp_bcast_t *b)
{
    for (unsigned k = 0; k < WSP_BCAST_NKINDS; k++)
        if (b->frame[k]) /* a queued tail may still hold a reference of its own */
            wsp_msg_unref(b->frame[k]);
    if (b->hist)
        b->hist_free(b->hist);
    free(b);
}

void wsp_bcast_reap(wsp_bcast_t **list, wsp_bcast_reap_fn fn, void *user)
{
    wsp_bcast_t **pp = list;
    while (*pp) {
        wsp_bcast_t *b = *pp;
        if (atomic_load_explicit(&b->pending, memory_order_acquire) != 0) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        uint64_t first = atomic_load_explicit(&b->first_start, memory_order_relaxed);
        uint64_t last = atomic_load_explicit(&b->last_end, memory_order_relaxed);
        wsp_bcast_result_t r = {
            .shards = b->shards,
            .written = atomic_load_explicit(&b->written, memory_order_relaxed),
            .failed = atomic_load_explicit(&b->failed, memory_order_relaxed),
            .ns = last > first && first != UINT64_MAX ? last - first : 0,
        };
        if (fn)
            fn(user, b, &r);
        bcast_free(b);
    }
}

void wsp_bcast_free_all(wsp_bcast_t **list)
{
    while (*list) {
        wsp_bcast_t *b = *list;
        *list = b->next;
        bcast_free(b);
    }
}
