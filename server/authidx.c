#include "authidx.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The table's own bound (server/table.c): slots fit in 24 bits. */
#define WSP_AUTHIDX_MAX (1u << 24)

static inline uint32_t bucket_of(const wsp_authidx_t *x, uint64_t uid)
{
    /* uid is a keyed SipHash: its low bits are as good as any. */
    return (uint32_t)uid & (x->nbuckets - 1);
}

/* The link that points at slot i: its bucket's head or its predecessor's next. */
static uint32_t *link_to(wsp_authidx_t *x, uint32_t i)
{
    uint32_t *p = &x->head[bucket_of(x, x->uid[i])];
    while (*p != i)
        p = &x->next[*p]; /* i is in this chain: the walk ends there */
    return p;
}

/* Rebuilds every chain for nb buckets (into heads, which has room for nb). */
static void rehash(wsp_authidx_t *x, uint32_t *heads, uint32_t nb)
{
    for (uint32_t b = 0; b < nb; b++)
        heads[b] = WSP_AUTHIDX_END;
    x->head = heads;
    x->nbuckets = nb;
    for (uint32_t i = 0; i < x->n; i++) {
        uint32_t b = bucket_of(x, x->uid[i]);
        x->next[i] = heads[b];
        heads[b] = i;
    }
}

/* One array grown to cap entries of size each. 0 or -ENOMEM (*p unchanged). */
static int grow(void **p, uint32_t cap, size_t size)
{
    void *q = realloc(*p, (size_t)cap * size);
    if (q == NULL)
        return -ENOMEM;
    *p = q;
    return 0;
}

int wsp_authidx_reserve(wsp_authidx_t *x, uint32_t want)
{
    if (want <= x->cap)
        return 0;
    if (want > WSP_AUTHIDX_MAX)
        return -ENOMEM;
    uint32_t cap = x->cap ? x->cap : 64;
    while (cap < want)
        cap *= 2;
    /* Doubling, as the OPEN table does: amortised O(1) per connection. A failure half way
     * leaves the larger arrays in place with the old cap: still consistent. */
    if (grow((void **)&x->deadline, cap, sizeof(*x->deadline)) < 0 ||
        grow((void **)&x->uid, cap, sizeof(*x->uid)) < 0 ||
        grow((void **)&x->next, cap, sizeof(*x->next)) < 0)
        return -ENOMEM;
    uint32_t nb = cap / WSP_AUTHIDX_CHAIN; /* cap is a power of two >= 64 */
    if (nb != x->nbuckets) {
        uint32_t *heads = malloc((size_t)nb * sizeof(*heads));
        if (heads == NULL)
            return -ENOMEM;
        free(x->head);
        rehash(x, heads, nb);
    }
    x->cap = cap;
    return 0;
}

uint32_t wsp_authidx_add(wsp_authidx_t *x, uint64_t uid, uint32_t deadline)
{
    uint32_t i = x->n++;
    x->uid[i] = uid;
    x->deadline[i] = deadline;
    uint32_t b = bucket_of(x, uid);
    x->next[i] = x->head[b];
    x->head[b] = i;
    return i;
}

void wsp_authidx_remove(wsp_authidx_t *x, uint32_t i)
{
    uint32_t last = x->n - 1;
    uint32_t *p = link_to(x, i);
    *p = x->next[i]; /* i is out of its chain */
    if (i != last) {
        /* The last entry becomes slot i: whoever linked to it links to i now. */
        p = link_to(x, last);
        *p = i;
        x->next[i] = x->next[last];
        x->uid[i] = x->uid[last];
        x->deadline[i] = x->deadline[last];
    }
    x->n--;
}

uint32_t wsp_authidx_find(const wsp_authidx_t *x, uint64_t uid, uint32_t from)
{
    if (x->nbuckets == 0)
        return WSP_AUTHIDX_END;
    uint32_t s = from == WSP_AUTHIDX_END ? x->head[bucket_of(x, uid)] : x->next[from];
    while (s != WSP_AUTHIDX_END && x->uid[s] != uid)
        s = x->next[s];
    return s;
}

uint32_t wsp_authidx_expired(const wsp_authidx_t *x, uint32_t below, uint32_t now)
{
    if (below > x->n)
        below = x->n;
    for (uint32_t i = below; i-- > 0;)
        if (x->deadline[i] <= now)
            return i;
    return WSP_AUTHIDX_END;
}

int wsp_authidx_check(const wsp_authidx_t *x)
{
    if (x->n > x->cap || (x->cap && x->nbuckets != x->cap / WSP_AUTHIDX_CHAIN))
        return -EINVAL;
    uint8_t *seen = calloc(x->n ? x->n : 1, 1); /* tests only */
    if (seen == NULL)
        return -ENOMEM;
    uint32_t count = 0;
    int rv = 0;
    for (uint32_t b = 0; b < x->nbuckets && rv == 0; b++) {
        for (uint32_t s = x->head[b]; s != WSP_AUTHIDX_END && rv == 0; s = x->next[s]) {
            /* a stale slot, a wrong bucket, a slot twice (or a cycle) */
            if (s >= x->n || bucket_of(x, x->uid[s]) != b || seen[s]) {
                rv = -EINVAL;
            } else {
                seen[s] = 1;
                count++;
            }
        }
    }
    free(seen);
    return rv == 0 && count == x->n ? 0 : -EINVAL;
}

void wsp_authidx_free(wsp_authidx_t *x)
{
    free(x->deadline);
    free(x->uid);
    free(x->next);
    free(x->head);
    memset(x, 0, sizeof(*x));
}
