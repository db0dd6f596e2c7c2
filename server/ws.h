#ifndef WSP_WS_H
#define WSP_WS_H

/* Client-frame handling for OPEN connections, over wslay: pings get pongs, data messages are
 * checked and dropped (text ones handed to a sink first when there is one), a close is echoed,
 * protocol errors get their close code. An idle connection owns no state: the wslay context exists
 * only while a frame or message is incomplete or a reply is queued. */

#include <stddef.h>
#include <stdint.h>

/* The parser state of one connection. */
typedef struct wsp_ws_s wsp_ws_t;

/* The largest client text/binary message accepted (and dropped); larger closes with 1009. */
#define WSP_WS_MAX_MSG 4096

/* The most frames one client message may come in; more closes with 1009 (empty fragments
 * would otherwise keep a message, and a core, busy forever without reaching 4 KiB). */
#define WSP_WS_MAX_FRAGMENTS 1024

/* Sink for bytes the protocol writes (pong, close). It must take all len bytes, queueing what
 * the socket refuses, so frames never interleave with broadcasts. Returns 0 or a negative
 * errno. Called only from inside wsp_ws_feed(). */
typedef int (*wsp_ws_write_fn)(void *user, const uint8_t *buf, size_t len);

/* Called with each complete client text message (valid UTF-8, at most WSP_WS_MAX_MSG bytes,
 * its fragments joined) when a sink is given. Returns 0 to go on, or a close code (e.g. 4003)
 * that is then sent, after which the peer is ignored (wsp_ws_feed() returns WSP_WS_CLOSE with
 * that code). It must not close the connection itself. Called only from inside
 * wsp_ws_feed(). */
typedef int (*wsp_ws_text_fn)(void *user, const uint8_t *msg, size_t len);

/* Outcome of wsp_ws_feed(). */
enum {
    WSP_WS_OK = 0,    /* keep the connection open */
    WSP_WS_CLOSE = 1, /* a close frame was written (echo or error): flush, then close TCP */
};

/* Feeds buf[0..len) from the peer. *ws is created on demand when it is NULL and freed (set
 * back to NULL) once the parser is idle again at a frame boundary. Replies go through write;
 * complete text messages to text (NULL: dropped, as binary ones always are); both get user.
 * Returns WSP_WS_OK, WSP_WS_CLOSE, or a negative errno (-ENOMEM, or what write returned:
 * close TCP now). *close_code, when non-NULL, receives the close code written (0 if none).
 * Owning shard thread only; never calls back after returning. */
int wsp_ws_feed(wsp_ws_t **ws, const uint8_t *buf, size_t len, wsp_ws_write_fn write,
                wsp_ws_text_fn text, void *user, int *close_code);

/* Frees ws (NULL is fine). Owning shard thread only, from the connection's close callback. */
void wsp_ws_free(wsp_ws_t *ws);

#endif
