#ifndef WSP_TABLE_H
#define WSP_TABLE_H

/* A table of connections: a growable array with O(1) swap-removal. Walks go from the end
 * down, so that a connection leaving the table during a walk only moves an entry already
 * visited. A shard keeps its TIMED and OPEN connections in two (server/shard_conn.h), each
 * channel its subscribers in one (server/chan.c); every connection remembers its own slot
 * (server/conn.c). The body is public: the broadcast pass walks v[] directly. Owning shard
 * thread only. */

#include <stdint.h>

typedef struct wsp_conn_s wsp_conn_t;

typedef struct wsp_table_s {
    wsp_conn_t **v;
    uint32_t n, cap;
} wsp_table_t; /* all zero: empty */

/* Appends c and stores its slot in *idx. Returns 0, or -ENOMEM (t unchanged). */
int wsp_table_push(wsp_table_t *t, wsp_conn_t *c, uint32_t *idx);

/* Removes slot idx by moving the last entry into it. Returns the connection now at idx, whose
 * slot the caller must update, or NULL when idx was the last entry. */
wsp_conn_t *wsp_table_remove(wsp_table_t *t, uint32_t idx);

/* Frees the array; the connections are not touched. */
void wsp_table_free(wsp_table_t *t);

#endif
