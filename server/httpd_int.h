#ifndef WSP_HTTPD_INT_H
#define WSP_HTTPD_INT_H

/* Internal to the httpd module, which spans two files: server/httpd.c (connections, over a
 * socket or another transport: reading, writing, deadlines, closing, responses) and
 * server/httpd_parse.c (each request through http-parser, up to the handler). Each calls the
 * other only through these. The loop's thread only. */

#include <stddef.h>
#include <stdint.h>

#include <http_parser.h>
#include <uv.h>

#include "buf.h"
#include "httpd.h"

/* Limits. #ifndef so the unit test can shrink the timeouts. */
#ifndef WSP_HTTPD_MAX_CONNS
#define WSP_HTTPD_MAX_CONNS 64 /* more are accepted and closed at once */
#endif
#ifndef WSP_HTTPD_IDLE_MS
#define WSP_HTTPD_IDLE_MS 30000 /* keep-alive connection with no request in progress */
#endif
#ifndef WSP_HTTPD_REQUEST_MS
#define WSP_HTTPD_REQUEST_MS 10000 /* first byte to complete request; also a stalled response */
#endif
#ifndef WSP_HTTPD_LINGER_MS
#define WSP_HTTPD_LINGER_MS 2000 /* draining the peer's input after our last response */
#endif
#define WSP_HTTPD_HEAD_MAX 8192 /* request line + headers + blank line */
#define WSP_HTTPD_RBUF 8192     /* per connection: unparsed input survives a pending write */

struct wsp_httpd_s {
    uv_tcp_t listener;
    uv_loop_t *loop;
    const wsp_httpd_handler_t *h;
    void *user;
    wsp_httpd_conn_t *conns; /* live (not closing) connections */
    unsigned nconns;         /* length of conns: what WSP_HTTPD_MAX_CONNS bounds */
    unsigned refs;           /* listener + connections + refused sockets not yet closed */
    uint64_t next_id;        /* ids of deferred requests (wsp_httpd_defer()) */
    int stopping;
    int started; /* wsp_httpd_start() succeeded: on_closed is owed */
    int port;
};

enum { HDR_OTHER, HDR_AUTH, HDR_EXPECT };
/* Why http_parser_execute() returned paused: the parser callbacks only record, the
 * caller acts, so no response or close happens in the middle of the parser. */
enum { PAUSE_NONE, PAUSE_HEADERS, PAUSE_BODY, PAUSE_DONE };

/* Parsing state of the current request, beside what the handler sees (wsp_httpd_req_t). */
typedef struct httpd_parse_s {
    size_t head_bytes;  /* since the previous request ended, until this one's headers did */
    uint64_t body_seen; /* body bytes received, kept or discarded */
    uint16_t name_len, expect_len;
    uint8_t hdr, headers_done, in_value, name_over, oom;
    char name[16]; /* the header names we look for are shorter */
    char expect[16];
} httpd_parse_t;

struct wsp_httpd_conn_s {
    uv_tcp_t tcp;     /* libuv hands &tcp back to the stream callbacks */
    uv_timer_t timer; /* idle, request, stalled-write or linger deadline */
    uv_write_t wreq;  /* at most one write in flight: parsing waits for it */
    uv_shutdown_t sreq;
    /* NULL for tcp, else the transport that stands in for every libuv call on it */
    const wsp_httpd_io_t *io;
    void *io_user;
    wsp_httpd_t *s;
    wsp_httpd_conn_t *prev, *next;
    http_parser parser;
    uint8_t handles; /* tcp and timer: freed when both close callbacks ran */
    uint8_t closing, reading, writing, lingering, close_after, in_request, pause;
    uint8_t deferred;   /* the handler answers the current request later */
    uint8_t in_handler; /* inside on_request: wsp__httpd_process() goes on after it */
    uint64_t id;        /* while deferred: what wsp_httpd_find() looks for */
    size_t in_off, in_len;
    wsp_buf_t body; /* POST body, or a response body the handler builds; reused per request */
    wsp_buf_t out;  /* the response being written; reused per request */
    httpd_parse_t ps;
    wsp_httpd_req_t req;
    char in[WSP_HTTPD_RBUF];
};

/* httpd.c */

/* Sets c's one deadline ms from now (closes c when it cannot). */
void wsp__httpd_timer(wsp_httpd_conn_t *c, uint64_t ms);

/* Reads again, unless c reads already or is closing (closes c when it cannot). */
void wsp__httpd_read_start(wsp_httpd_conn_t *c);

/* Writes c->out; parsing and reading pause while a write is queued. */
void wsp__httpd_send(wsp_httpd_conn_t *c);

/* httpd_parse.c */

/* Parses c's buffered input until it is used up or a response is being written; reads
 * again when it may. */
void wsp__httpd_process(wsp_httpd_conn_t *c);

#endif
