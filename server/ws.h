#ifndef WSP_WS_H
#define WSP_WS_H

/* Client-frame handling for OPEN connections, over wslay: pings get pongs, data messages are
 * checked and dropped (text ones handed to a sink first when there is one), a close is echoed,
 * protocol errors get their close code. An idle connection owns no state: the wslay context exists
 * only while a frame or message is incomplete or a reply is queued. */

#include <stddef.h>
#include <stdint.h>

#include "deflate.h"

/* The parser state of one connection. */
typedef struct wsp_ws_s wsp_ws_t;

/* The largest client text/binary message accepted (and dropped); larger closes with 1009. */
#define WSP_WS_MAX_MSG 4096

/* The most frames one client message may come in; more closes with 1009 (empty fragments
 * would otherwise keep a message, and a core, busy forever without reaching 4 KiB). */
#define WSP_WS_MAX_FRAGMENTS 1024

/* The largest compressed client message (permessage-deflate) on the wire; the 4 KiB limit
 * applies to what it inflates to. The slack lets a client send a 4 KiB message it could not
 * compress: stored blocks cost 5 bytes each, and a flush may add an empty one. */
#define WSP_WS_MAX_ZMSG (WSP_WS_MAX_MSG + 64)

/* permessage-deflate for the connections that negotiated it (issue #19): one per shard, shared
 * by all its connections, since a client message is inflated whole, as it completes, with no
 * state kept between messages (client_no_context_takeover). */
typedef struct wsp_ws_pmd_s {
    wsp_deflate_t *z;  /* decompressor: made by wsp_ws_feed() on first use; the owner frees it */
    uint64_t inflated; /* compressed messages inflated so far */
} wsp_ws_pmd_t;

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
 * pmd is NULL unless the connection negotiated permessage-deflate, and then the same for every
 * feed: RSV1 is accepted on a data message's first frame, the message is inflated with pmd->z
 * once complete (over 4 KiB inflated: 1009; not valid DEFLATE: 1002; text not UTF-8: 1007)
 * and a text one then handed to text; without it RSV1 is 1002, as it is on a control frame or
 * a continuation in any case. Returns WSP_WS_OK, WSP_WS_CLOSE, or a negative errno (-ENOMEM,
 * or what write returned: close TCP now). *close_code, when non-NULL, receives the close code
 * written (0 if none). Owning shard thread only; never calls back after returning. */
int wsp_ws_feed(wsp_ws_t **ws, const uint8_t *buf, size_t len, wsp_ws_write_fn write,
                wsp_ws_text_fn text, void *user, wsp_ws_pmd_t *pmd, int *close_code);

/* Frees ws (NULL is fine). Owning shard thread only, from the connection's close callback. */
void wsp_ws_free(wsp_ws_t *ws);

#endif
