#ifndef WSP_CONN_INT_H
#define WSP_CONN_INT_H

/* Internal to the connection module, which spans three files: server/conn.c (the connection
 * itself), server/conn_admit.c (the HTTP upgrade's buffering, parsing and admission) and
 * server/conn_tls.c (what TLS adds to it, issue #18). Each calls the others only through
 * these; the struct stays private to conn.c. Owning shard thread only. */

#include <stddef.h>
#include <stdint.h>

#include "channels.h"
#include "pmd.h"
#include "resume.h"
#include "shard_conn.h" /* wsp_conn_t, through table.h: not conn.h, which would be a cycle */
#include "tlsconn.h"
#include "upgrade.h"

/* What admission grants a connection: its channels, its identity (a verified token), the
 * subprotocol (wspush.v1) and the extension (permessage-deflate) it gets. */
typedef struct wsp__conn_grant_s {
    wsp_chanlist_t channels; /* what to join: ?channels=, or the token's claim */
    int authed;              /* a token was verified: auth holds what it grants */
    wsp_auth_grant_t auth;
    uint8_t framed;         /* the wspush.v1 subprotocol (issue #17) */
    wsp_resume_ask_t ask;   /* wspush.v1: its channels and ?since=&epoch= */
    wsp_pmd_t pmd;          /* permessage-deflate as agreed (issue #19); pmd.on false: none */
    const char *pmd_answer; /* its Sec-WebSocket-Extensions answer (static), NULL: none */
} wsp__conn_grant_t;

/* conn.c */

/* The shard c belongs to. */
wsp_shard_conn_t *wsp__conn_shard(const wsp_conn_t *c);

/* The TLS state of a TLS connection (NULL once freed). */
wsp_tlsconn_t *wsp__conn_tlsx(const wsp_conn_t *c);

/* Bytes queued in c's libuv write queue. */
size_t wsp__conn_queued(const wsp_conn_t *c);

/* Where c keeps its per-state pointer: the handshake buffer while in HANDSHAKE. */
void **wsp__conn_data(wsp_conn_t *c);

/* 1 when c holds a --max-conns slot (else it is to be answered 503). */
int wsp__conn_reserved(const wsp_conn_t *c);

/* Writes len bytes as they are (already sealed, or a handshake's output), queueing a copy of
 * what the socket does not take. 0 or a negative errno. */
int wsp__conn_write_raw(wsp_conn_t *c, const void *p, size_t len);

/* Writes len bytes of WebSocket or HTTP, sealed first on a TLS connection (whose handshake
 * must be done). 0 or a negative errno. */
int wsp__conn_write_copy(wsp_conn_t *c, const void *p, size_t len);

/* Client frames of an OPEN connection, fed to its parser; acts on what it says. */
void wsp__conn_feed(wsp_conn_t *c, const uint8_t *p, size_t n);

/* Handshake, step 3: writes the 101 for r, moves c to OPEN and applies what g grants. 0 or a
 * negative errno (the caller closes c). */
int wsp__conn_upgrade(wsp_conn_t *c, const wsp_upgrade_req_t *r, const wsp__conn_grant_t *g);

/* Plaintext from the peer: the HTTP upgrade, then WebSocket frames. 1 once c takes no more. */
int wsp__conn_input(wsp_conn_t *c, const uint8_t *p, size_t n);

/* Records reason (WSP_CLOSE_*) unless one is recorded, then lets what is queued (an alert)
 * go out and closes, within a second or two. */
void wsp__conn_fail(wsp_conn_t *c, int reason);

/* conn_admit.c */

/* Bytes of a connection in HANDSHAKE: buffer -> parse -> admit -> upgrade, then the frames
 * that came with the request. */
void wsp__conn_handshake(wsp_conn_t *c, const uint8_t *p, size_t n);

/* Answers an HTTP error status and closes once it is written. */
void wsp__conn_reject(wsp_conn_t *c, int status);

/* conn_tls.c */

/* Bytes received on a TLS connection: handshake, then records. */
void wsp__conn_tls_read(wsp_conn_t *c, const uint8_t *p, size_t n);

/* From c's close callback: counts a TLS handshake that never ended (reason is the close's
 * WSP_CLOSE_*), gives back its slot and frees the TLS state. */
void wsp__conn_tls_free(wsp_conn_t *c, int reason);

#endif
