#ifndef WSP_MSG_H
#define WSP_MSG_H

/* An immutable, refcounted byte buffer: the only thing that crosses threads. The body is
 * public on purpose: the broadcast pass reads len and bytes for every connection. */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wsp_msg_s {
    atomic_uint refs;
    uint32_t len;
    uint8_t bytes[]; /* len bytes, never written after wsp_msg_new() returns to the caller */
} wsp_msg_t;

/* Allocates a message of len bytes with one reference, owned by the caller, who fills bytes
 * before sharing it. Returns NULL on OOM. Any thread. */
wsp_msg_t *wsp_msg_new(size_t len);

/* Adds a reference and returns m. Any thread holding a reference. */
wsp_msg_t *wsp_msg_ref(wsp_msg_t *m);

/* Drops a reference; the last one frees m. Any thread holding a reference. */
void wsp_msg_unref(wsp_msg_t *m);

/* Current reference count, for tests and assertions only (racy by nature). */
unsigned wsp_msg_refs(const wsp_msg_t *m);

#endif
