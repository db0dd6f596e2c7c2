#include "spsc.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

struct wsp_spsc_s {
    /* head and tail on their own cache lines: the consumer writes one, the producer the other. */
    _Alignas(64) atomic_uint head; /* next slot to pop; written by the consumer */
    _Alignas(64) atomic_uint tail; /* next slot to push; written by the producer */
    _Alignas(64) unsigned mask;
    void **slot;
};

wsp_spsc_t *wsp_spsc_new(size_t capacity)
{
    if (capacity > (1u << 30))
        return NULL;
    size_t n = 2;
    while (n < capacity)
        n <<= 1;
    wsp_spsc_t *q = aligned_alloc(64, sizeof(*q));
    if (q == NULL)
        return NULL;
    q->slot = calloc(n, sizeof(void *));
    if (q->slot == NULL) {
        free(q);
        return NULL;
    }
    atomic_init(&q->head, 0);
    atomic_init(&q->tail, 0);
    q->mask = (unsigned)(n - 1);
    return q;
}

void wsp_spsc_free(wsp_spsc_t *q)
{
    if (q == NULL)
        return;
    free(q->slot);
    free(q);
}

int wsp_spsc_push(wsp_spsc_t *q, void *p)
{
    unsigned t = atomic_load_explicit(&q->tail, memory_order_relaxed);
    unsigned h = atomic_load_explicit(&q->head, memory_order_acquire);
    if (t - h > q->mask) /* free-running counters: compare the difference only */
        return -ENOBUFS;
    q->slot[t & q->mask] = p;
    atomic_store_explicit(&q->tail, t + 1, memory_order_release); /* publishes the slot */
    return 0;
}

void *wsp_spsc_pop(wsp_spsc_t *q)
{
    unsigned h = atomic_load_explicit(&q->head, memory_order_relaxed);
    unsigned t = atomic_load_explicit(&q->tail, memory_order_acquire); /* pairs with push */
    if (t == h)
        return NULL;
    void *p = q->slot[h & q->mask];
    /* release: the producer may reuse the slot only after we have read it */
    atomic_store_explicit(&q->head, h + 1, memory_order_release);
    return p;
}

size_t wsp_spsc_capacity(const wsp_spsc_t *q)
{
    return (size_t)q->mask + 1;
}
