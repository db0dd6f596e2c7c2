#ifndef WSP_UPGRADE_H
#define WSP_UPGRADE_H

/* The HTTP/1.1 WebSocket upgrade (RFC 6455 section 4.2) as a pure parser over the bytes
 * received: the request line and header fields, what they must hold, the 101 response and
 * the error responses. Policy (which path, which channels, later a token) is conn.c's
 * (conn_admit()); this module only says what the request carries. */

#include <stddef.h>
#include <stdint.h>

/* The largest header block accepted; a longer one is answered 431. */
#define WSP_UPGRADE_MAX_HEADER 8192

/* Length of a Sec-WebSocket-Accept value (base64 of a SHA-1), without a terminator. */
#define WSP_UPGRADE_ACCEPT_LEN 28

/* Sec-WebSocket-Extensions lines kept (issue #19); n_ext still counts every line, so that
 * admission can refuse a request with more rather than ignore part of what it offered. */
#define WSP_UPGRADE_EXT_LINES 8

/* What a valid upgrade request carries; pointers point into the parsed buffer. A header a
 * later check needs (Authorization, Cookie, Sec-WebSocket-Protocol, Sec-WebSocket-Extensions)
 * becomes a pointer and length here, filled by parse_field() in upgrade.c. */
typedef struct wsp_upgrade_req_s {
    const char *path; /* request target up to '?' (origin-form) */
    size_t path_len;
    const char *query; /* after '?', without it; NULL when absent */
    size_t query_len;
    const char *key; /* Sec-WebSocket-Key, trimmed */
    size_t key_len;
    /* Token auth (issue #16): the last Authorization and Cookie values, trimmed, and how many
     * of each were sent (server/auth.c refuses two: ambiguous). */
    const char *authorization;
    size_t authorization_len;
    const char *cookie;
    size_t cookie_len;
    uint8_t authorization_count, cookie_count; /* saturate at 2 */
    /* Sec-WebSocket-Protocol (every such field, RFC 6455 section 11.3.4): the subprotocols
     * offered that this server speaks, WSP_UPGRADE_SP_* bits */
    unsigned subprotocols;
    /* Sec-WebSocket-Extensions (issue #19): every line in order, values trimmed; the first
     * WSP_UPGRADE_EXT_LINES are kept, n_ext counts them all. */
    const char *ext[WSP_UPGRADE_EXT_LINES];
    size_t ext_len[WSP_UPGRADE_EXT_LINES];
    unsigned n_ext;
} wsp_upgrade_req_t;

/* Subprotocols a request can offer: wspush.v1 (issue #17, server/framed.h). */
#define WSP_UPGRADE_SP_WSPUSH_V1 1u

/* Parses an HTTP/1.1 WebSocket upgrade request at the start of buf[0..len), as much as has
 * arrived. Returns the length of the complete header block (> 0) when it is a valid upgrade
 * (fills *req), -EAGAIN when more bytes are needed (len < WSP_UPGRADE_MAX_HEADER), or
 * -EBADMSG with *status set to the HTTP status to answer: 400, 405, 426 or 431. Re-parsing
 * the same growing buffer is allowed. Pure; any thread. */
int wsp_upgrade_parse(const uint8_t *buf, size_t len, wsp_upgrade_req_t *req, int *status);

/* Computes Sec-WebSocket-Accept for key[0..len) into out (WSP_UPGRADE_ACCEPT_LEN bytes + NUL).
 * Returns 0 or -EIO if libcrypto fails. Any thread. */
int wsp_upgrade_accept(const char *key, size_t len, char *out);

/* Writes the 101 Switching Protocols response for key into out[0..cap), with
 * Sec-WebSocket-Protocol: protocol when protocol is not NULL, and extra (header lines each
 * ending in CRLF, such as a Sec-WebSocket-Extensions answer; NULL for none) before the empty
 * line. Returns its length, or a negative errno (-ENOBUFS when cap is too small). Any
 * thread. */
int wsp_upgrade_response(const char *key, size_t key_len, const char *protocol, const char *extra,
                         char *out, size_t cap);

/* Returns a static, complete error response (with Connection: close) for status 400, 404,
 * 405, 426, 431 or 503 and its length in *len; any other status gives the 400 response. */
const char *wsp_upgrade_error(int status, size_t *len);

#endif
