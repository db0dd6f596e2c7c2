#include "msg.h"

#include <stdlib.h>

wsp_msg_t *wsp_msg_new(size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    /* One allocation per broadcast, not per connection: the whole point of encode-once. */
    wsp_msg_t *m = malloc(sizeof(*m) + len);
    if (m == NULL)
        return NULL;
    atomic_init(&m->refs, 1);
    m->len = (uint32_t)len;
    return m;
}

wsp_msg_t *wsp_msg_ref(wsp_msg_t *m)
{
    /* Relaxed is enough to add: the caller already holds a reference that keeps m alive. */
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

void wsp_msg_unref(wsp_msg_t *m)
{
    /* acq_rel: every thread's last use happens-before the free in whichever thread drops last. */
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        free(m);
}

unsigned wsp_msg_refs(const wsp_msg_t *m)
{
    return atomic_load_explicit(&m->refs, memory_order_acquire);
}
