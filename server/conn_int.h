#ifndef WSP_CONN_INT_H
#define WSP_CONN_INT_H

/* Internal to the connection module, which spans two files: server/conn.c (the connection
 * itself) and server/conn_tls.c (what TLS adds to it, issue #18). Each calls the other only
 * through these; the struct stays private to conn.c. Owning shard thread only. */

#include <stddef.h>
#include <stdint.h>

#include "shard_conn.h" /* wsp_conn_t, through table.h: not conn.h, which would be a cycle */
#include "tlsconn.h"

/* conn.c */

/* The shard c belongs to. */
wsp_shard_conn_t *wsp__conn_shard(const wsp_conn_t *c);

/* The TLS state of a TLS connection (NULL once freed). */
wsp_tlsconn_t *wsp__conn_tlsx(const wsp_conn_t *c);

/* Bytes queued in c's libuv write queue. */
size_t wsp__conn_queued(const wsp_conn_t *c);

/* 1 when c holds a --max-conns slot (else it is to be answered 503). */
int wsp__conn_reserved(const wsp_conn_t *c);

/* Writes len bytes as they are (already sealed, or a handshake's output), queueing a copy of
 * what the socket does not take. 0 or a negative errno. */
int wsp__conn_write_raw(wsp_conn_t *c, const void *p, size_t len);

/* Plaintext from the peer: the HTTP upgrade, then WebSocket frames. 1 once c takes no more. */
int wsp__conn_input(wsp_conn_t *c, const uint8_t *p, size_t n);

/* Answers an HTTP error status and closes once it is written. */
void wsp__conn_reject(wsp_conn_t *c, int status);

/* Records reason (WSP_CLOSE_*) unless one is recorded, then lets what is queued (an alert)
 * go out and closes, within a second or two. */
void wsp__conn_fail(wsp_conn_t *c, int reason);

/* conn_tls.c */

/* Bytes received on a TLS connection: handshake, then records. */
void wsp__conn_tls_read(wsp_conn_t *c, const uint8_t *p, size_t n);

/* From c's close callback: counts a TLS handshake that never ended (reason is the close's
 * WSP_CLOSE_*), gives back its slot and frees the TLS state. */
void wsp__conn_tls_free(wsp_conn_t *c, int reason);

#endif
