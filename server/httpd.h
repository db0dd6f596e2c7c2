#ifndef WSP_HTTPD_H
#define WSP_HTTPD_H

/* A small HTTP/1.1 server on a libuv loop: the plumbing under the admin API
 * (server/admin.c). Keep-alive connections; pipelined requests answered one at a time, in
 * order, at once or later (wsp_httpd_defer()); parsing by http_parser; every size and time bounded
 * (head 8 KiB, URL 2 KiB, body 64 KiB, idle, request, stalled-write and linger deadlines,
 * WSP_HTTPD_MAX_CONNS connections). It routes nothing: a handler decides from each request's head
 * whether it wants the body, and answers each complete request. Loop thread only. */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"

#define WSP_HTTPD_BODY_MAX 65536 /* a larger body is answered 413 */
#define WSP_HTTPD_URL_MAX 2048   /* a longer target is answered 414 */
#define WSP_HTTPD_AUTH_MAX 272   /* an Authorization value kept: a 256-byte token and scheme */

typedef struct wsp_httpd_s wsp_httpd_t;
typedef struct wsp_httpd_conn_s wsp_httpd_conn_t;

/* A request as the handler sees it. Everything up to url is reset when a request begins. */
typedef struct wsp_httpd_req_s {
    int status;              /* 0, or the error status decided (wsp_httpd_fail()) */
    const char *error;       /* its JSON error text */
    const char *allow;       /* the Allow value for a 405 */
    uint64_t content_length; /* with has_length */
    unsigned method;         /* enum http_method */
    uint8_t has_length;      /* Content-Length: the body's size is known up front */
    uint8_t chunked;         /* Transfer-Encoding: chunked */
    uint8_t is_head;         /* HEAD: responses carry no body */
    uint8_t want_body;       /* set by the handler: keep the body (else read and dropped) */
    uint8_t tag;             /* the handler's own mark, e.g. its route; logged with responses */
    uint8_t url_over;        /* the target did not fit url[] */
    uint8_t auth_count;      /* Authorization headers seen, saturating at 2 */
    uint8_t auth_over;       /* the (last) Authorization value did not fit auth[] */
    uint16_t url_len, auth_len;
    char url[WSP_HTTPD_URL_MAX];
    char auth[WSP_HTTPD_AUTH_MAX]; /* the last Authorization value */
} wsp_httpd_req_t;

/* What the server asks of its owner; every call on the loop thread. */
typedef struct wsp_httpd_handler_s {
    /* A head is complete (method, target, headers, body framing): route and check it. Either
     * call wsp_httpd_fail() (the answer goes out once the body is read and dropped, or at once
     * when the body could be long), or set req->want_body, or neither (no body expected). */
    void (*on_head)(void *user, wsp_httpd_req_t *req);
    /* A request passed on_head() and is complete; body holds it (when wanted) and may be
     * reused to build the answer. Answer it with wsp_httpd_respond*() before returning. keep:
     * the connection may stay open after the answer. */
    void (*on_request)(void *user, wsp_httpd_conn_t *c, const wsp_httpd_req_t *req, wsp_buf_t *body,
                       int keep);
    /* After wsp_httpd_stop(): everything has closed and been freed. */
    void (*on_closed)(void *user);
} wsp_httpd_handler_t;

/* Listens on host:port (numeric address, no SO_REUSEPORT: a second process must not silently
 * share the port) on loop. Returns 0, or a negative errno (-EADDRINUSE, -EINVAL for a bad
 * address, ...) after which on_closed is never called. Loop thread. */
int wsp_httpd_start(wsp_httpd_t **out, uv_loop_t *loop, const char *host, int port,
                    const wsp_httpd_handler_t *h, void *user);

/* As wsp_httpd_start(), on fd, a listening socket made elsewhere (a live upgrade's, issue #20);
 * fd is the server's from here on, even on failure. Loop thread. */
int wsp_httpd_adopt(wsp_httpd_t **out, uv_loop_t *loop, int fd, const wsp_httpd_handler_t *h,
                    void *user);

/* The listening socket's descriptor (still the server's), or -EBADF. Loop thread. */
int wsp_httpd_fd(const wsp_httpd_t *s);

/* The bound port (useful with port 0). Loop thread. */
int wsp_httpd_port(const wsp_httpd_t *s);

/* Closes the listener and every connection; frees everything once their close callbacks ran
 * (run the loop afterwards), then calls on_closed. Idempotent; NULL is fine. Loop thread. */
void wsp_httpd_stop(wsp_httpd_t *s);

/* Decides req's answer from its head: status with the JSON error text error. From on_head. */
void wsp_httpd_fail(wsp_httpd_req_t *req, int status, const char *error);

/* Answers the current request of c: status, Content-Type ctype, extra header lines (NULL or
 * "Name: value\r\n"...), body[0..len) (not sent after a HEAD); the connection stays open when
 * keep. The bytes are copied. From on_request. */
void wsp_httpd_respond(wsp_httpd_conn_t *c, int status, const char *ctype, const char *extra,
                       const char *body, size_t len, int keep);

/* Answers with {"error":"<error>"} (error must need no JSON escaping), adding
 * WWW-Authenticate to a 401 and Allow to a 405. From on_request. */
void wsp_httpd_respond_error(wsp_httpd_conn_t *c, int status, const char *error, int keep);

/* ---- a connection over another byte stream than a TCP socket ----
 * The seam that runs the whole HTTP layer without sockets (test/fuzz/fuzz_admin.c drives it
 * in memory): a connection opened with wsp_httpd_open() is parsed, limited, timed out,
 * answered and closed by the very code that serves accepted sockets; only its five libuv
 * stream calls go to the transport below instead. Each operation behaves as its libuv
 * counterpart on a stream and completes the same way: never inside the call, later, through
 * the wsp_httpd_io_*() functions (which libuv's callbacks call for a socket). Every call on
 * the loop thread. */
typedef struct wsp_httpd_io_s {
    /* uv_read_start (on) / uv_read_stop: while on, input may be delivered with
     * wsp_httpd_io_rbuf() and wsp_httpd_io_read(). 0 or a negative errno (closes). */
    int (*read)(void *user, int on);
    /* uv_try_write: takes what it can of p[0..len) now; bytes taken, UV_EAGAIN, or a
     * negative errno (closes). */
    int (*try_write)(void *user, const char *p, size_t len);
    /* uv_write: takes p[0..len), valid until wsp_httpd_io_written(). 0 or a negative errno. */
    int (*write)(void *user, const char *p, size_t len);
    /* uv_shutdown: EOF after the pending write; completes with wsp_httpd_io_shutdown(). */
    int (*shutdown)(void *user);
    /* uv_close: a pending write, then a pending shutdown, complete with UV_ECANCELED, then
     * wsp_httpd_io_closed() reports the transport closed. Called once. */
    void (*close)(void *user);
} wsp_httpd_io_t;

/* Opens a connection of s over io (user is passed to every operation), as if the listener
 * had accepted it: it starts reading at once. *out is valid until io's close has completed.
 * Returns 0, -EBUSY (stopping, or WSP_HTTPD_MAX_CONNS connections open) or -ENOMEM.
 * Loop thread. */
int wsp_httpd_open(wsp_httpd_t *s, const wsp_httpd_io_t *io, void *user, wsp_httpd_conn_t **out);

/* Where the next input goes and how much fits (*cap; 0: deliver UV_ENOBUFS, which closes),
 * as libuv's alloc callback asks. Loop thread. */
char *wsp_httpd_io_rbuf(wsp_httpd_conn_t *c, size_t *cap);

/* n bytes were put at wsp_httpd_io_rbuf(), or n < 0: EOF (UV_EOF) or an error. */
void wsp_httpd_io_read(wsp_httpd_conn_t *c, ssize_t n);

/* The write completed (0), failed, or was cancelled by the close (UV_ECANCELED). */
void wsp_httpd_io_written(wsp_httpd_conn_t *c, int status);

/* The shutdown completed (0), failed, or was cancelled by the close (UV_ECANCELED). */
void wsp_httpd_io_shutdown(wsp_httpd_conn_t *c, int status);

/* The transport closed: the last call for c, which may be freed inside. */
void wsp_httpd_io_closed(wsp_httpd_conn_t *c);
/* From on_request: the answer to c's current request comes later (a publish waiting for its
 * delivery reports). c reads and parses nothing more until then; the request's deadline
 * (10 s) still holds. Returns an id for wsp_httpd_find(). The handler must answer it, with
 * wsp_httpd_respond*() on what wsp_httpd_find() returns, unless that is NULL (gone). */
uint64_t wsp_httpd_defer(wsp_httpd_conn_t *c);

/* The connection of a deferred request by its id, or NULL when it closed meanwhile (or the
 * server is stopping). Loop thread. */
wsp_httpd_conn_t *wsp_httpd_find(wsp_httpd_t *s, uint64_t id);

#endif
