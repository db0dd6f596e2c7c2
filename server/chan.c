#include "chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"

#define NO_HEAP UINT32_MAX

/* One history entry: the framed frame (one reference), its place in the shard's recording
 * order (the budget drops the lowest first) and when it was recorded. Its seq is implied:
 * the entries of a channel are contiguous and the newest is the channel's position. */
typedef struct hent_s {
    wsp_msg_t *frame;
    uint64_t rec;
    uint64_t t_ms;
} hent_t;

struct wsp_chan_s {
    wsp_table_t subs;
    wsp_chan_t *next; /* hash chain */
    hent_t *ring;     /* history, a power-of-two ring; NULL when empty */
    uint32_t cap, head, count;
    uint32_t hidx; /* slot in the table's heap, NO_HEAP without history */
    uint32_t gen;  /* Redis link generation of top */
    uint64_t top;  /* the last seq processed (valid when known) */
    int walking;   /* a broadcast walks subs: the channel outlives the walk */
    uint8_t known; /* top is this shard's position in the channel */
    uint8_t len;
    char name[WSP_CHANNEL_NAME_MAX + 1];
};

/* FNV-1a: channel names are short and chosen by clients; the table only needs spread. */
static uint32_t chan_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h;
}

/* --- the budget's arithmetic --- */

/* What malloc gives for n bytes: jemalloc's size classes (16-byte steps to 128, then four
 * classes per doubling), so that the budget counts what the process really holds. */
static uint64_t size_class(uint64_t n)
{
    if (n <= 16)
        return 16;
    if (n <= 128)
        return (n + 15) & ~(uint64_t)15;
    uint64_t p = 128;
    while (p * 2 < n)
        p *= 2;
    uint64_t step = p / 4;
    return (n + step - 1) / step * step;
}

static uint64_t frame_cost(const wsp_msg_t *m) { return size_class(sizeof(*m) + m->len); }

/* Adds to the shard's and the process's accounting: frame bytes once, this shard's own
 * bookkeeping (rings, channels kept for their history, the heap) nshards times. */
static void units_add(wsp_chan_table_t *t, int64_t frames, int64_t own)
{
    if (t->hist == NULL)
        return;
    int64_t d = frames + own * (int64_t)t->hist->nshards;
    t->units += (uint64_t)d;
    atomic_fetch_add_explicit(&t->hist->units, (uint_fast64_t)d, memory_order_relaxed);
}

/* --- the heap of channels with history, by their oldest entry --- */

static uint64_t heap_key(const wsp_chan_t *ch) { return ch->ring[ch->head].rec; }

static void heap_set(wsp_chan_table_t *t, uint32_t i, wsp_chan_t *ch)
{
    t->heap[i] = ch;
    ch->hidx = i;
}

static void heap_up(wsp_chan_table_t *t, uint32_t i)
{
    wsp_chan_t *ch = t->heap[i];
    while (i > 0 && heap_key(t->heap[(i - 1) / 2]) > heap_key(ch)) {
        heap_set(t, i, t->heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(t, i, ch);
}

static void heap_down(wsp_chan_table_t *t, uint32_t i)
{
    wsp_chan_t *ch = t->heap[i];
    for (;;) {
        uint32_t c = 2 * i + 1;
        if (c >= t->nheap)
            break;
        if (c + 1 < t->nheap && heap_key(t->heap[c + 1]) < heap_key(t->heap[c]))
            c++;
        if (heap_key(t->heap[c]) >= heap_key(ch))
            break;
        heap_set(t, i, t->heap[c]);
        i = c;
    }
    heap_set(t, i, ch);
}

static int heap_push(wsp_chan_table_t *t, wsp_chan_t *ch)
{
    if (t->nheap == t->capheap) {
        uint32_t cap = t->capheap ? t->capheap * 2 : 16;
        wsp_chan_t **h = realloc(t->heap, cap * sizeof(*h));
        if (h == NULL)
            return -ENOMEM;
        units_add(t, 0,
                  (int64_t)size_class(cap * sizeof(*h)) -
                      (int64_t)(t->capheap ? size_class(t->capheap * sizeof(*h)) : 0));
        t->heap = h;
        t->capheap = cap;
    }
    heap_set(t, t->nheap++, ch);
    heap_up(t, ch->hidx);
    units_add(t, 0, (int64_t)size_class(sizeof(*ch)));
    return 0;
}

static void heap_remove(wsp_chan_table_t *t, wsp_chan_t *ch)
{
    uint32_t i = ch->hidx;
    ch->hidx = NO_HEAP;
    units_add(t, 0, -(int64_t)size_class(sizeof(*ch)));
    if (--t->nheap == i)
        return;
    wsp_chan_t *moved = t->heap[t->nheap];
    heap_set(t, i, moved);
    heap_down(t, i);
    if (moved->hidx == i)
        heap_up(t, i);
}

/* --- channels --- */

wsp_chan_t *wsp_chan_find(const wsp_chan_table_t *t, const char *name, size_t len)
{
    if (t->nbuckets == 0)
        return NULL;
    wsp_chan_t *ch = t->buckets[chan_hash(name, len) & (t->nbuckets - 1)];
    while (ch && !(ch->len == len && memcmp(ch->name, name, len) == 0))
        ch = ch->next;
    return ch;
}

static int chan_grow(wsp_chan_table_t *t)
{
    uint32_t nb = t->nbuckets ? t->nbuckets * 2 : 64;
    wsp_chan_t **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        wsp_chan_t *ch = t->buckets[i];
        while (ch) {
            wsp_chan_t *next = ch->next;
            uint32_t k = chan_hash(ch->name, ch->len) & (nb - 1);
            ch->next = b[k];
            b[k] = ch;
            ch = next;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->nbuckets = nb;
    return 0;
}

/* The channel name[0..len), created (no subscriber, no history, position unknown) if absent.
 * NULL: -EINVAL for a bad length, or out of memory. */
static wsp_chan_t *chan_get(wsp_chan_table_t *t, const char *name, size_t len)
{
    wsp_chan_t *ch = wsp_chan_find(t, name, len);
    if (ch || len > WSP_CHANNEL_NAME_MAX)
        return ch;
    if (t->n >= t->nbuckets && chan_grow(t) < 0)
        return NULL;
    /* One per channel name in use in this shard; freed when it has no subscriber and no
     * history left. */
    ch = calloc(1, sizeof(*ch));
    if (ch == NULL)
        return NULL;
    memcpy(ch->name, name, len);
    ch->len = (uint8_t)len;
    ch->hidx = NO_HEAP;
    uint32_t k = chan_hash(name, len) & (t->nbuckets - 1);
    ch->next = t->buckets[k];
    t->buckets[k] = ch;
    t->n++;
    return ch;
}

static void chan_free(wsp_chan_table_t *t, wsp_chan_t *ch)
{
    wsp_chan_t **pp = &t->buckets[chan_hash(ch->name, ch->len) & (t->nbuckets - 1)];
    while (*pp != ch)
        pp = &(*pp)->next;
    *pp = ch->next;
    t->n--;
    wsp_table_free(&ch->subs);
    free(ch);
}

/* Frees ch once nothing keeps it: no subscriber, no history, no walk. */
static void chan_maybe_free(wsp_chan_table_t *t, wsp_chan_t *ch)
{
    if (ch->subs.n == 0 && ch->count == 0 && !ch->walking)
        chan_free(t, ch);
}

/* --- history --- */

static uint64_t ring_cost(uint32_t cap) { return cap ? size_class(cap * sizeof(hent_t)) : 0; }

/* Drops ch's oldest entry; an emptied channel leaves the heap and gives its ring back. */
static void ent_drop(wsp_chan_table_t *t, wsp_chan_t *ch)
{
    hent_t *e = &ch->ring[ch->head];
    units_add(t, -(int64_t)frame_cost(e->frame), 0);
    wsp_msg_unref(e->frame);
    ch->head = (ch->head + 1) & (ch->cap - 1);
    ch->count--;
    t->entries--;
    if (ch->count > 0) {
        heap_down(t, ch->hidx); /* its oldest is younger now */
        return;
    }
    heap_remove(t, ch);
    units_add(t, 0, -(int64_t)ring_cost(ch->cap));
    free(ch->ring);
    ch->ring = NULL;
    ch->cap = ch->head = 0;
}

/* Drops every entry of ch (a gap, a new epoch); ch itself stays. */
static void hist_clear(wsp_chan_table_t *t, wsp_chan_t *ch)
{
    while (ch->count > 0)
        ent_drop(t, ch);
}

/* Appends frame to ch's history. Returns 0 or -ENOMEM. */
static int ent_push(wsp_chan_table_t *t, wsp_chan_t *ch, wsp_msg_t *frame, uint64_t now_ms)
{
    if (ch->count == ch->cap) {
        /* Per channel, not per message: the ring doubles up to --history-size. */
        uint32_t cap = ch->cap ? ch->cap * 2 : 4;
        hent_t *r = malloc(cap * sizeof(*r));
        if (r == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < ch->count; i++)
            r[i] = ch->ring[(ch->head + i) & (ch->cap - 1)];
        units_add(t, 0, (int64_t)ring_cost(cap) - (int64_t)ring_cost(ch->cap));
        free(ch->ring);
        ch->ring = r;
        ch->cap = cap;
        ch->head = 0;
    }
    int first = ch->count == 0;
    ch->ring[(ch->head + ch->count) & (ch->cap - 1)] =
        (hent_t){wsp_msg_ref(frame), ++t->rec, now_ms};
    ch->count++;
    t->entries++;
    units_add(t, (int64_t)frame_cost(frame), 0);
    if (first && heap_push(t, ch) < 0) {
        ent_drop(t, ch); /* not in the heap: the budget could not reach it */
        return -ENOMEM;
    }
    return 0;
}

/* Drops entries, oldest first, while the process is over --history-max-bytes. */
static void hist_budget(wsp_chan_table_t *t)
{
    uint64_t limit = t->hist->max_bytes * t->hist->nshards;
    while (t->nheap > 0 && atomic_load_explicit(&t->hist->units, memory_order_relaxed) > limit) {
        wsp_chan_t *ch = t->heap[0];
        ent_drop(t, ch);
        t->evicted++;
        chan_maybe_free(t, ch);
    }
}

void wsp_chan_expire(wsp_chan_table_t *t, uint64_t now_ms)
{
    if (t->hist == NULL || t->hist->ttl_ms == 0)
        return;
    while (t->nheap > 0) {
        wsp_chan_t *ch = t->heap[0];
        if (now_ms - ch->ring[ch->head].t_ms <= t->hist->ttl_ms)
            break;
        ent_drop(t, ch);
        chan_maybe_free(t, ch);
    }
}

/* A new epoch: no position or history of the old one means anything. */
static void chan_new_epoch(wsp_chan_table_t *t, const char *epoch, size_t elen)
{
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        wsp_chan_t *ch = t->buckets[i];
        while (ch) {
            wsp_chan_t *next = ch->next;
            hist_clear(t, ch);
            ch->known = 0;
            chan_maybe_free(t, ch);
            ch = next;
        }
    }
    memcpy(t->epoch, epoch, elen);
    t->epoch[elen] = '\0';
    t->epoch_len = (uint8_t)elen;
}

/* Records message seq of channel name[0..len), published at t_ms, as of now_ms: what
 * wsp_chan_record() says once the epoch is settled. */
static int chan_record(wsp_chan_table_t *t, const char *name, size_t len, uint64_t seq,
                       uint32_t gen, wsp_msg_t *frame, uint64_t t_ms, uint64_t now_ms)
{
    if (seq == 0)
        return 0;
    int on = t->hist && t->hist->size > 0 && frame != NULL;
    wsp_chan_t *ch = on ? chan_get(t, name, len) : wsp_chan_find(t, name, len);
    if (ch == NULL)
        return on ? -ENOMEM : 0; /* no state here: the process's positions have it */
    if (ch->known && ch->gen == gen && seq <= ch->top)
        return 0; /* not newer than what this shard has: nothing to note */
    if (!ch->known || ch->gen != gen || seq != ch->top + 1)
        hist_clear(t, ch); /* never serve across a gap */
    ch->top = seq;
    ch->known = 1;
    ch->gen = gen;
    if (!on) {
        chan_maybe_free(t, ch); /* a gap may have emptied a history nothing else kept */
        return 0;
    }
    int rv = ent_push(t, ch, frame, t_ms);
    while (ch->count > t->hist->size)
        ent_drop(t, ch);
    if (ch->count == 0) { /* the push failed */
        chan_maybe_free(t, ch);
        return rv;
    }
    wsp_chan_expire(t, now_ms); /* these may free ch: not touched after them */
    hist_budget(t);
    return rv;
}

int wsp_chan_record(wsp_chan_table_t *t, const char *name, size_t len, uint64_t seq,
                    const char *epoch, size_t elen, uint32_t gen, wsp_msg_t *frame, uint64_t now_ms)
{
    if (elen > WSP_FRAMED_EPOCH_MAX)
        return -EINVAL;
    if (elen > 0 && (elen != t->epoch_len || memcmp(epoch, t->epoch, elen) != 0))
        chan_new_epoch(t, epoch, elen);
    return chan_record(t, name, len, seq, gen, frame, now_ms, now_ms);
}

int wsp_chan_restore(wsp_chan_table_t *t, const char *name, size_t len, uint64_t seq,
                     wsp_msg_t *frame, uint64_t t_ms, uint64_t now_ms)
{
    if (t_ms > now_ms)
        t_ms = now_ms; /* never younger than now: the TTL counts from the original time */
    return chan_record(t, name, len, seq, 0, frame, t_ms, now_ms);
}

int wsp_chan_hist_each(const wsp_chan_table_t *t, wsp_chan_hist_fn fn, void *arg)
{
    for (uint32_t i = 0; i < t->nbuckets; i++)
        for (const wsp_chan_t *ch = t->buckets[i]; ch; ch = ch->next)
            for (uint32_t k = 0; k < ch->count; k++) {
                const hent_t *e = &ch->ring[(ch->head + k) & (ch->cap - 1)];
                /* the entries are contiguous and the newest is the position */
                int rv = fn(arg, ch->name, ch->len, ch->top - ch->count + 1 + k, e->rec, e->t_ms,
                            e->frame);
                if (rv < 0)
                    return rv;
            }
    return 0;
}

int wsp_chan_known(const wsp_chan_t *ch, uint32_t gen, uint64_t *top)
{
    if (!ch->known || ch->gen != gen)
        return 0;
    *top = ch->top;
    return 1;
}

void wsp_chan_learn(wsp_chan_table_t *t, wsp_chan_t *ch, uint64_t top, uint32_t gen)
{
    if (!ch->known || top > ch->top) {
        if (ch->count > 0 && top > ch->top)
            hist_clear(t, ch); /* it no longer ends at the channel's position */
        ch->top = top;
    }
    ch->known = 1;
    ch->gen = gen;
}

int wsp_chan_replay(const wsp_chan_table_t *t, const wsp_chan_t *ch, uint64_t since,
                    uint64_t now_ms, wsp_msg_t **out, unsigned max)
{
    if (!ch->known || since > ch->top)
        return -1;
    uint64_t need = ch->top - since;
    if (need == 0)
        return 0;
    if (need > max || need > ch->count)
        return -1;
    uint32_t i0 = ch->count - (uint32_t)need; /* the entry numbered since + 1 */
    const hent_t *first = &ch->ring[(ch->head + i0) & (ch->cap - 1)];
    if (t->hist && t->hist->ttl_ms && now_ms - first->t_ms > t->hist->ttl_ms)
        return -1; /* expired, though not yet swept */
    for (uint32_t i = i0; out && i < ch->count; i++)
        out[i - i0] = ch->ring[(ch->head + i) & (ch->cap - 1)].frame;
    return (int)need;
}

/* --- subscribers --- */

void wsp_chan_table_init(wsp_chan_table_t *t, wsp_chan_hist_t *hist, const char *epoch,
                         size_t epoch_len)
{
    memset(t, 0, sizeof(*t));
    t->hist = hist;
    if (epoch_len > WSP_FRAMED_EPOCH_MAX)
        epoch_len = 0;
    memcpy(t->epoch, epoch ? epoch : "", epoch_len);
    t->epoch[epoch_len] = '\0';
    t->epoch_len = (uint8_t)epoch_len;
}

int wsp_chan_subscribe(wsp_chan_table_t *t, const char *name, size_t len, wsp_conn_t *c,
                       wsp_chan_t **out, uint32_t *idx)
{
    if (len > WSP_CHANNEL_NAME_MAX)
        return -EINVAL;
    wsp_chan_t *ch = chan_get(t, name, len);
    if (ch == NULL)
        return -ENOMEM;
    int rv = wsp_table_push(&ch->subs, c, idx);
    if (rv < 0) {
        chan_maybe_free(t, ch);
        return rv;
    }
    *out = ch;
    return 0;
}

wsp_conn_t *wsp_chan_unsubscribe(wsp_chan_table_t *t, wsp_chan_t *ch, uint32_t idx)
{
    wsp_conn_t *moved = wsp_table_remove(&ch->subs, idx);
    chan_maybe_free(t, ch);
    return moved;
}

const char *wsp_chan_name(const wsp_chan_t *ch, size_t *len)
{
    *len = ch->len;
    return ch->name;
}

wsp_table_t *wsp_chan_walk_begin(wsp_chan_t *ch)
{
    ch->walking = 1;
    return &ch->subs;
}

void wsp_chan_walk_end(wsp_chan_table_t *t, wsp_chan_t *ch)
{
    ch->walking = 0;
    chan_maybe_free(t, ch);
}

void wsp_chan_table_free(wsp_chan_table_t *t)
{
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        wsp_chan_t *ch = t->buckets[i];
        while (ch) {
            wsp_chan_t *next = ch->next;
            hist_clear(t, ch);
            wsp_table_free(&ch->subs);
            free(ch);
            ch = next;
        }
    }
    free(t->buckets);
    free(t->heap);
    units_add(t, -(int64_t)t->units, 0); /* what is left: the heap array */
    t->buckets = NULL;
    t->heap = NULL;
    t->n = t->nbuckets = t->nheap = t->capheap = 0;
}

/* --- name -> position maps: the process's positions, a publisher's counters --- */

typedef struct mapent_s {
    struct mapent_s *next;
    uint64_t seq, g;
    uint32_t gen;
    uint8_t len;
    char name[WSP_CHANNEL_NAME_MAX];
} mapent_t;

struct wsp_chan_map_s {
    mapent_t **b;
    uint32_t n, nb;
};

/* The entry of name[0..len) in *mp (made on first use when create), or NULL. */
static mapent_t *map_get(wsp_chan_map_t **mp, const char *name, size_t len, int create)
{
    wsp_chan_map_t *m = *mp;
    if (len > WSP_CHANNEL_NAME_MAX)
        return NULL;
    if (m && m->nb) {
        for (mapent_t *e = m->b[chan_hash(name, len) & (m->nb - 1)]; e; e = e->next)
            if (e->len == len && memcmp(e->name, name, len) == 0)
                return e;
    }
    if (!create)
        return NULL;
    if (m == NULL && (m = *mp = calloc(1, sizeof(*m))) == NULL)
        return NULL;
    if (m->n >= m->nb) { /* rehash into twice the buckets */
        uint32_t nb = m->nb ? m->nb * 2 : 64;
        mapent_t **b = calloc(nb, sizeof(*b));
        if (b == NULL)
            return NULL;
        for (uint32_t i = 0; i < m->nb; i++)
            for (mapent_t *e = m->b[i], *next; e; e = next) {
                next = e->next;
                uint32_t k = chan_hash(e->name, e->len) & (nb - 1);
                e->next = b[k];
                b[k] = e;
            }
        free(m->b);
        m->b = b;
        m->nb = nb;
    }
    /* Once per channel name ever published: off the per-message path. */
    mapent_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    memcpy(e->name, name, len);
    e->len = (uint8_t)len;
    uint32_t k = chan_hash(name, len) & (m->nb - 1);
    e->next = m->b[k];
    m->b[k] = e;
    m->n++;
    return e;
}

static void map_free(wsp_chan_map_t **mp)
{
    wsp_chan_map_t *m = *mp;
    if (m == NULL)
        return;
    for (uint32_t i = 0; i < m->nb; i++)
        for (mapent_t *e = m->b[i], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(m->b);
    free(m);
    *mp = NULL;
}

uint64_t wsp_chan_seqs_next(wsp_chan_seqs_t *s, const char *name, size_t len)
{
    mapent_t *e = map_get(&s->map, name, len, 1);
    return e ? ++e->seq : 0;
}

void wsp_chan_seqs_free(wsp_chan_seqs_t *s) { map_free(&s->map); }

int wsp_chan_seqs_each(const wsp_chan_seqs_t *s, wsp_chan_seqs_fn fn, void *arg)
{
    const wsp_chan_map_t *m = s->map;
    for (uint32_t i = 0; m && i < m->nb; i++)
        for (const mapent_t *e = m->b[i]; e; e = e->next) {
            int rv = fn(arg, e->name, e->len, e->seq);
            if (rv < 0)
                return rv;
        }
    return 0;
}

int wsp_chan_seqs_set(wsp_chan_seqs_t *s, const char *name, size_t len, uint64_t seq)
{
    mapent_t *e = map_get(&s->map, name, len, 1);
    if (e == NULL)
        return len > WSP_CHANNEL_NAME_MAX ? -EINVAL : -ENOMEM;
    if (seq > e->seq)
        e->seq = seq;
    return 0;
}

int wsp_chan_pos_init(wsp_chan_pos_t *p, const char *epoch, size_t elen, int complete)
{
    memset(p, 0, sizeof(*p));
    if (elen > WSP_FRAMED_EPOCH_MAX)
        return -EINVAL;
    memcpy(p->epoch, epoch ? epoch : "", elen);
    p->complete = complete;
    atomic_init(&p->gen, 0);
    return uv_mutex_init(&p->lock);
}

void wsp_chan_pos_free(wsp_chan_pos_t *p)
{
    map_free(&p->map);
    uv_mutex_destroy(&p->lock);
}

uint64_t wsp_chan_pos_note(wsp_chan_pos_t *p, const char *name, size_t len, uint64_t seq,
                           const char *epoch, size_t elen, uint32_t gen)
{
    uv_mutex_lock(&p->lock);
    uint64_t g = ++p->g;
    if (elen > 0 && elen <= WSP_FRAMED_EPOCH_MAX &&
        (elen != strlen(p->epoch) || memcmp(epoch, p->epoch, elen) != 0)) {
        map_free(&p->map); /* every position was of the old epoch */
        memcpy(p->epoch, epoch, elen);
        p->epoch[elen] = '\0';
        p->epoch_g = g;
    }
    mapent_t *e = seq ? map_get(&p->map, name, len, 1) : NULL;
    if (e) { /* no memory: lookups say UNKNOWN for it, which costs a recovery, not a message */
        e->seq = seq;
        e->g = g;
        e->gen = gen;
    }
    uv_mutex_unlock(&p->lock);
    return g;
}

void wsp_chan_pos_learn(wsp_chan_pos_t *p, const char *name, size_t len, uint64_t top, uint32_t gen)
{
    uv_mutex_lock(&p->lock);
    mapent_t *e = map_get(&p->map, name, len, 1);
    if (e && (e->gen != gen || top > e->seq || e->g == 0)) {
        e->seq = e->gen == gen && e->seq > top ? e->seq : top;
        e->gen = gen;
        e->g = p->g;
    }
    uv_mutex_unlock(&p->lock);
}

int wsp_chan_pos_lookup(wsp_chan_pos_t *p, const char *name, size_t len, uint64_t g, uint32_t gen,
                        uint64_t *top)
{
    int rv = WSP_CHAN_POS_UNKNOWN;
    uv_mutex_lock(&p->lock);
    mapent_t *e = map_get(&p->map, name, len, 0);
    if (p->epoch_g > g || (e && e->g > g)) {
        rv = WSP_CHAN_POS_BEHIND; /* the shard has yet to process what moved it */
    } else if (e && e->gen == gen) {
        *top = e->seq;
        rv = WSP_CHAN_POS_KNOWN;
    } else if (e == NULL && p->complete) {
        *top = 0;
        rv = WSP_CHAN_POS_KNOWN;
    }
    uv_mutex_unlock(&p->lock);
    return rv;
}
