#ifndef WSP_SPSC_H
#define WSP_SPSC_H

/* A bounded lock-free single-producer single-consumer ring of pointers: how the coordinator
 * hands broadcasts to a shard. */

#include <stddef.h>

typedef struct wsp_spsc_s wsp_spsc_t;

/* Creates a ring holding at least capacity pointers (rounded up to a power of two, >= 2).
 * Returns NULL on OOM or a capacity over 2^30. Any thread, before sharing. */
wsp_spsc_t *wsp_spsc_new(size_t capacity);

/* Frees q; the caller drains it first. No thread may use q afterwards. */
void wsp_spsc_free(wsp_spsc_t *q);

/* Appends p (non-NULL); -ENOBUFS when full. Producer thread only. */
int wsp_spsc_push(wsp_spsc_t *q, void *p);

/* Removes the oldest pointer, or returns NULL when empty. Consumer thread only. */
void *wsp_spsc_pop(wsp_spsc_t *q);

/* The ring's capacity (a power of two). Any thread. */
size_t wsp_spsc_capacity(const wsp_spsc_t *q);

#endif
