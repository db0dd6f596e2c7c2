#ifndef WSP_ALLOC_H
#define WSP_ALLOC_H

/* Allocation that aborts on OOM (startup tables and small fixed objects only) and two small
 * macros every module uses. */

#include <stddef.h>

/* Casts a member pointer back to its container; through void * so -Wcast-align stays quiet. */
#define WSP_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

#define WSP_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* malloc that aborts with a message on OOM: startup tables and small fixed objects only.
 * Per-connection allocations use plain malloc and cost one connection on failure. Any thread. */
void *wsp_xmalloc(size_t n) __attribute__((malloc, returns_nonnull));

/* calloc that aborts on OOM; same rules as wsp_xmalloc(). Any thread. */
void *wsp_xcalloc(size_t count, size_t size) __attribute__((malloc, returns_nonnull));

#endif
