#include "uphist.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bcast.h"
#include "frame.h"

/* v (*cap elements of size bytes, n used) with room for one more: v itself, or a larger copy
 * (doubling from first), or NULL on ENOMEM (v unchanged). Once per upgrade, not per message. */
static void *grow(void *v, uint32_t *cap, uint32_t n, size_t size, uint32_t first)
{
    if (n < *cap)
        return v;
    uint32_t c = *cap ? *cap * 2 : first;
    void *p = realloc(v, c * size);
    if (p != NULL)
        *cap = c;
    return p;
}

/* Room for one more entry and one more name. */
static int uphist_grow(wsp_uphist_t *h)
{
    wsp_uphist_ent_t *v = grow(h->v, &h->cap, h->n, sizeof(*v), 256);
    if (v == NULL)
        return -ENOMEM;
    h->v = v;
    wsp_uphist_name_t *nm = grow(h->names, &h->capnames, h->nnames, sizeof(*nm), 16);
    if (nm == NULL)
        return -ENOMEM;
    h->names = nm;
    return 0;
}

/* Appends an entry holding frame (the caller's reference, now h's) on channel name[0..len);
 * same says the channel is the last entry's. */
static void uphist_push(wsp_uphist_t *h, const char *name, size_t len, int same, uint64_t seq,
                        uint64_t rec, uint64_t t_ms, wsp_msg_t *frame)
{
    if (!same || h->nnames == 0) {
        wsp_uphist_name_t *nm = &h->names[h->nnames++];
        nm->len = (uint8_t)len;
        memcpy(nm->s, name, len);
    }
    h->v[h->n++] = (wsp_uphist_ent_t){frame, seq, rec, t_ms, h->nnames - 1};
}

static int on_uphist_entry(void *arg, const char *name, size_t len, uint64_t seq, uint64_t rec,
                           uint64_t t_ms, wsp_msg_t *frame)
{
    wsp_uphist_t *h = arg;
    if (uphist_grow(h) < 0)
        return -ENOMEM;
    uphist_push(h, name, len, name == h->last, seq, rec, t_ms, wsp_msg_ref(frame));
    h->last = name; /* the table's: the same pointer for every entry of one channel */
    return 0;
}

static int uphist_by_rec(const void *a, const void *b)
{
    uint64_t x = ((const wsp_uphist_ent_t *)a)->rec, y = ((const wsp_uphist_ent_t *)b)->rec;
    return x < y ? -1 : x > y;
}

int wsp_uphist_snapshot(wsp_uphist_t *h, const wsp_chan_table_t *t)
{
    memcpy(h->epoch, t->epoch, t->epoch_len);
    h->epoch[t->epoch_len] = '\0';
    h->epoch_len = t->epoch_len;
    int rv = wsp_chan_hist_each(t, on_uphist_entry, h);
    h->last = NULL;
    if (rv < 0) {
        wsp_uphist_free(h);
        return rv;
    }
    /* By channel from the table; the new process records them in the old one's order, so
     * its --history-max-bytes drops the same messages first. */
    if (h->n > 1)
        qsort(h->v, h->n, sizeof(*h->v), uphist_by_rec);
    return 0;
}

int wsp_uphist_put(const wsp_uphist_t *h, uint64_t now_ms, wsp_ho_writer_t *w,
                   wsp_uphist_flush_fn flush, void *arg, uint64_t *skipped)
{
    for (uint32_t i = 0; i < h->n; i++) {
        const wsp_uphist_ent_t *e = &h->v[i];
        const wsp_uphist_name_t *nm = &h->names[e->name];
        size_t len;
        const uint8_t *msg = wsp_bcast_frame_payload(e->frame, &len);
        wsp_ho_hist_t r = {.seq = e->seq,
                           .age_ms = now_ms > e->t_ms ? now_ms - e->t_ms : 0,
                           .chan = nm->s,
                           .chan_len = nm->len,
                           .epoch = h->epoch,
                           .epoch_len = h->epoch_len,
                           .len = (uint32_t)len,
                           .msg = msg};
        int rv = wsp_ho_put_hist(w, &r);
        if (rv == -ENOBUFS && w->nrec > 0) {
            if ((rv = flush(arg)) < 0)
                return rv;
            rv = wsp_ho_put_hist(w, &r);
        }
        if (rv < 0) /* larger than a datagram (or not a valid entry): its channel restarts */
            (*skipped)++;
    }
    return 0;
}

int wsp_uphist_add(wsp_uphist_t *h, const wsp_ho_hist_t *r, const char *epoch, size_t elen,
                   uint64_t now_ms)
{
    if (r->epoch_len != elen || memcmp(r->epoch, epoch, elen) != 0)
        return -ESTALE;
    if (r->chan_len > WSP_CHANNEL_NAME_MAX)
        return -EINVAL;
    if (uphist_grow(h) < 0)
        return -ENOMEM;
    /* Once per entry carried over, at the upgrade: the frame every shard's history shares. */
    wsp_msg_t *frame = wsp_frame_msg(WSP_OP_TEXT, r->msg, r->len);
    if (frame == NULL)
        return -ENOMEM;
    const wsp_uphist_name_t *last = h->nnames ? &h->names[h->nnames - 1] : NULL;
    int same = last && last->len == r->chan_len && memcmp(last->s, r->chan, r->chan_len) == 0;
    uint64_t t_ms = now_ms > r->age_ms ? now_ms - r->age_ms : 0;
    uphist_push(h, r->chan, r->chan_len, same, r->seq, h->n, t_ms, frame);
    return 0;
}

uint64_t wsp_uphist_restore(const wsp_uphist_t *h, wsp_chan_table_t *t, uint64_t now_ms)
{
    uint64_t failed = 0;
    for (uint32_t i = 0; i < h->n; i++) {
        const wsp_uphist_ent_t *e = &h->v[i];
        const wsp_uphist_name_t *nm = &h->names[e->name];
        if (wsp_chan_restore(t, nm->s, nm->len, e->seq, e->frame, e->t_ms, now_ms) < 0)
            failed++;
    }
    return failed;
}

wsp_uphist_t *wsp_uphist_move(wsp_uphist_t *h)
{
    wsp_uphist_t *d = malloc(sizeof(*d)); /* once per upgrade */
    if (d == NULL)
        return NULL;
    *d = *h;
    memset(h, 0, sizeof(*h));
    return d;
}

void wsp_uphist_free(wsp_uphist_t *h)
{
    for (uint32_t i = 0; i < h->n; i++)
        wsp_msg_unref(h->v[i].frame);
    free(h->v);
    free(h->names);
    memset(h, 0, sizeof(*h));
}

void wsp_uphist_destroy(void *p)
{
    wsp_uphist_free(p);
    free(p);
}
