#include "chan.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "channels.h"

struct wsp_chan_s {
    wsp_table_t subs;
    wsp_chan_t *next; /* hash chain */
    int walking;      /* a broadcast walks subs: an empty channel is freed after the walk */
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

int wsp_chan_subscribe(wsp_chan_table_t *t, const char *name, size_t len, wsp_conn_t *c,
                       wsp_chan_t **out, uint32_t *idx)
{
    wsp_chan_t *ch = wsp_chan_find(t, name, len);
    if (ch == NULL) {
        if (len > WSP_CHANNEL_NAME_MAX)
            return -EINVAL;
        if (t->n >= t->nbuckets && chan_grow(t) < 0)
            return -ENOMEM;
        /* One per channel name in use in this shard; freed when its last subscriber goes. */
        ch = calloc(1, sizeof(*ch));
        if (ch == NULL)
            return -ENOMEM;
        memcpy(ch->name, name, len);
        ch->len = (uint8_t)len;
        uint32_t k = chan_hash(name, len) & (t->nbuckets - 1);
        ch->next = t->buckets[k];
        t->buckets[k] = ch;
        t->n++;
    }
    int rv = wsp_table_push(&ch->subs, c, idx);
    if (rv < 0) {
        if (ch->subs.n == 0 && !ch->walking)
            chan_free(t, ch);
        return rv;
    }
    *out = ch;
    return 0;
}

wsp_conn_t *wsp_chan_unsubscribe(wsp_chan_table_t *t, wsp_chan_t *ch, uint32_t idx)
{
    wsp_conn_t *moved = wsp_table_remove(&ch->subs, idx);
    if (ch->subs.n == 0 && !ch->walking)
        chan_free(t, ch);
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
    if (ch->subs.n == 0)
        chan_free(t, ch);
}

void wsp_chan_table_free(wsp_chan_table_t *t)
{
    for (uint32_t i = 0; i < t->nbuckets; i++) {
        wsp_chan_t *ch = t->buckets[i];
        while (ch) {
            wsp_chan_t *next = ch->next;
            wsp_table_free(&ch->subs);
            free(ch);
            ch = next;
        }
    }
    free(t->buckets);
    t->buckets = NULL;
    t->n = t->nbuckets = 0;
}
