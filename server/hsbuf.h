#ifndef WSP_HSBUF_H
#define WSP_HSBUF_H

/* A partial HTTP upgrade request, kept only while it is incomplete (most arrive in one
 * segment and are parsed straight from the shard's read buffer): the per-connection buffer
 * server/conn.c hangs on tcp.data during the handshake, capped at WSP_UPGRADE_MAX_HEADER.
 * A live upgrade hands its bytes to the new process, which keeps them here again. Owning
 * shard thread. */

#include <stddef.h>
#include <stdint.h>

typedef struct wsp_hsbuf_s {
    uint32_t len, cap;
    uint8_t data[];
} wsp_hsbuf_t;

/* Handshake, step 1: the bytes to parse. With no buffer in *slot, p[0..n) itself; else p is
 * appended to it (the buffer grows, at most up to the header cap: the parser answers 431 past
 * it). Sets *req and *len to what to parse and *taken to how much of p[0..n) that holds.
 * Returns 0 or -ENOMEM. */
int wsp_hsbuf_append(wsp_hsbuf_t **slot, const uint8_t *p, size_t n, const uint8_t **req,
                     size_t *len, size_t *taken);

/* The request is incomplete: keeps p[0..n) in a new buffer in *slot (nothing to do when
 * wsp_hsbuf_append() appended it already). Returns 0 or -ENOMEM. */
int wsp_hsbuf_keep(wsp_hsbuf_t **slot, const uint8_t *p, size_t n);

#endif
