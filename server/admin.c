#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <http_parser.h>
#include <openssl/crypto.h>

#include "alloc.h"
#include "channels.h"
#include "log.h"
#include "net.h"
#include "utf8.h"

/* Limits. #ifndef so the unit test can shrink the timeouts. */
#ifndef WSP_ADMIN_MAX_CONNS
#define WSP_ADMIN_MAX_CONNS 64 /* more are accepted and closed at once */
#endif
#ifndef WSP_ADMIN_IDLE_MS
#define WSP_ADMIN_IDLE_MS 30000 /* keep-alive connection with no request in progress */
#endif
#ifndef WSP_ADMIN_REQUEST_MS
#define WSP_ADMIN_REQUEST_MS 10000 /* first byte to complete request; also a stalled response */
#endif
#ifndef WSP_ADMIN_LINGER_MS
#define WSP_ADMIN_LINGER_MS 2000 /* draining the peer's input after our last response */
#endif
#define WSP_ADMIN_HEAD_MAX 8192  /* request line + headers + blank line */
#define WSP_ADMIN_BODY_MAX 65536 /* POST /publish payload */
#define WSP_ADMIN_URL_MAX 2048   /* longer is 414; a publish target needs under 100 */
#define WSP_ADMIN_TOKEN_MAX 256
#define WSP_ADMIN_RBUF 8192 /* per connection: unparsed input survives a pending write */

struct wsp_admin_s {
    uv_tcp_t listener;
    uv_loop_t *loop;
    const wsp_admin_ops_t *ops;
    void *user;
    struct admin_conn_s *conns; /* live (not closing) connections */
    unsigned nconns;            /* length of conns: what WSP_ADMIN_MAX_CONNS bounds */
    unsigned refs;              /* listener + connections + refused sockets not yet closed */
    int stopping;
    int port;
    size_t token_len; /* 0: no token required */
    /* Zero-padded to the full size: the comparison always reads all of it. */
    unsigned char token[WSP_ADMIN_TOKEN_MAX];
};

enum { ROUTE_NONE, ROUTE_PUBLISH, ROUTE_METRICS, ROUTE_HEALTHZ, ROUTE_STATS };
enum { HDR_OTHER, HDR_AUTH, HDR_EXPECT };
/* Why http_parser_execute() returned paused: the parser callbacks only record, the
 * caller acts, so no response or close happens in the middle of the parser. */
enum { PAUSE_NONE, PAUSE_HEADERS, PAUSE_BODY, PAUSE_DONE };

/* The current request. Everything up to url is reset when a message begins. */
typedef struct admin_req_s {
    size_t head_bytes;  /* since the previous request ended, until this one's headers did */
    uint64_t body_seen; /* body bytes received, kept or discarded */
    int status;         /* 0, or the error status decided before the body ended */
    const char *error;  /* its JSON error text */
    const char *allow;  /* Allow: value for a 405 */
    uint16_t url_len, name_len, auth_len, expect_len;
    uint8_t route, hdr, auth_count;
    uint8_t headers_done, in_value, discard, url_over, name_over, auth_over, oom, is_head;
    char url[WSP_ADMIN_URL_MAX];
    char name[16]; /* the header names we look for are shorter */
    char auth[WSP_ADMIN_TOKEN_MAX + 16];
    char expect[16];
} admin_req_t;

typedef struct admin_conn_s {
    uv_tcp_t tcp;     /* libuv hands &tcp back to the stream callbacks */
    uv_timer_t timer; /* idle, request, stalled-write or linger deadline */
    uv_write_t wreq;  /* at most one write in flight: parsing waits for it */
    uv_shutdown_t sreq;
    wsp_admin_t *a;
    struct admin_conn_s *prev, *next;
    http_parser parser;
    uint8_t handles; /* tcp and timer: freed when both close callbacks ran */
    uint8_t closing, reading, writing, lingering, close_after, in_request, pause;
    size_t in_off, in_len;
    wsp_buf_t body; /* POST body, or the /metrics and /stats output; reused per request */
    wsp_buf_t out;  /* the response being written; reused per request */
    admin_req_t req;
    char in[WSP_ADMIN_RBUF];
} admin_conn_t;

static void conn_close(admin_conn_t *c);
static void conn_process(admin_conn_t *c);

static void admin_unref(wsp_admin_t *a)
{
    if (--a->refs == 0 && a->stopping) {
        OPENSSL_cleanse(a->token, sizeof a->token);
        free(a);
    }
}

/* ---- timers and reading ---- */

static void on_conn_timer(uv_timer_t *t)
{
    admin_conn_t *c = t->data;
    WSP_LOG(WSP_LOG_DEBUG, "event=admin_timeout in_request=%d lingering=%d", c->in_request,
            c->lingering);
    conn_close(c);
}

static void conn_timer(admin_conn_t *c, uint64_t ms)
{
    if (c->closing)
        return;
    if (uv_timer_start(&c->timer, on_conn_timer, ms, 0) < 0)
        conn_close(c); /* an admin connection without a deadline is not worth keeping */
}

static void on_conn_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    admin_conn_t *c = h->data;
    if (c->lingering) { /* what arrives now is dropped: reuse the whole buffer */
        *buf = uv_buf_init(c->in, sizeof c->in);
        return;
    }
    /* Reading is stopped while unparsed input waits, so this is normally all of c->in; a
     * zero-length buffer makes libuv report UV_ENOBUFS, which closes. */
    *buf = uv_buf_init(c->in + c->in_len, (unsigned)(sizeof c->in - c->in_len));
}

static void on_conn_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    admin_conn_t *c = s->data;
    if (nread < 0) { /* EOF or error: the peer is gone or done; nothing is owed to it */
        conn_close(c);
        return;
    }
    if (c->lingering || nread == 0)
        return;
    c->in_len += (size_t)nread;
    conn_process(c);
}

static void conn_read_start(admin_conn_t *c)
{
    if (c->reading || c->closing)
        return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_conn_alloc, on_conn_read) < 0) {
        conn_close(c);
        return;
    }
    c->reading = 1;
}

/* Stops reading: a peer that does not read our responses must not make us buffer its
 * pipelined requests. */
static void conn_read_stop(admin_conn_t *c)
{
    if (!c->reading)
        return;
    c->reading = 0;
    if (uv_read_stop((uv_stream_t *)&c->tcp) < 0)
        conn_close(c);
}

/* ---- closing ---- */

static void on_conn_closed(uv_handle_t *h)
{
    admin_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    wsp_admin_t *a = c->a;
    wsp_buf_free(&c->body);
    wsp_buf_free(&c->out);
    free(c);
    admin_unref(a);
}

/* Starts closing c; idempotent, safe from any callback (c lives until both handles closed). */
static void conn_close(admin_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    wsp_admin_t *a = c->a;
    if (c->prev)
        c->prev->next = c->next;
    else
        a->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    a->nconns--;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_conn_shutdown(uv_shutdown_t *req, int status)
{
    admin_conn_t *c = req->handle->data;
    if (status < 0) /* UV_ECANCELED when already closing; conn_close() is idempotent */
        conn_close(c);
}

/* After the last response: FIN once it is written, then read and drop until the peer's EOF,
 * so the kernel does not answer unread input with an RST that could destroy the response. */
static void conn_linger(admin_conn_t *c)
{
    c->lingering = 1;
    c->in_off = c->in_len = 0;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_conn_shutdown) < 0) {
        conn_close(c);
        return;
    }
    conn_timer(c, WSP_ADMIN_LINGER_MS);
    conn_read_start(c);
}

/* ---- writing ---- */

/* c->out has been written completely. */
static void conn_sent(admin_conn_t *c)
{
    if (c->close_after)
        conn_linger(c);
    else if (!c->in_request)
        conn_timer(c, WSP_ADMIN_IDLE_MS);
}

static void on_conn_write(uv_write_t *req, int status)
{
    admin_conn_t *c = req->handle->data;
    c->writing = 0;
    if (c->closing)
        return; /* UV_ECANCELED from uv_close(): the close callbacks free c */
    if (status < 0) {
        conn_close(c);
        return;
    }
    conn_sent(c);
    conn_process(c); /* pipelined requests waited for this response */
}

/* Writes c->out: one try_write for the common small response, else a queued write during
 * which parsing and reading pause. */
static void conn_send(admin_conn_t *c)
{
    if (c->closing) /* an ops callback stopped the server */
        return;
    if (c->out.oom) {
        conn_close(c);
        return;
    }
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = uv_try_write(s, &b, 1);
    if (n == (int)c->out.len) {
        conn_sent(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        conn_close(c);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    b = uv_buf_init(c->out.data + done, (unsigned)(c->out.len - done));
    if (uv_write(&c->wreq, s, &b, 1, on_conn_write) < 0) {
        conn_close(c);
        return;
    }
    c->writing = 1;
    conn_read_stop(c);
    if (!c->in_request)
        conn_timer(c, WSP_ADMIN_REQUEST_MS); /* a peer that never reads is dropped */
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

/* Builds one complete response in c->out and sends it; keep = keep the connection open. */
static void conn_respond(admin_conn_t *c, int status, const char *ctype, const char *extra,
                         const char *body, size_t len, int keep)
{
    const char *conn_hdr = "";
    if (!keep)
        conn_hdr = "Connection: close\r\n";
    else if (c->parser.http_major == 1 && c->parser.http_minor == 0)
        conn_hdr = "Connection: keep-alive\r\n"; /* HTTP/1.0 closes unless told otherwise */
    c->out.len = 0;
    c->out.oom = 0;
    (void)wsp_buf_printf(&c->out,
                         "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                         "Cache-Control: no-store\r\n%s%s\r\n",
                         status, status_reason(status), ctype, len, extra ? extra : "", conn_hdr);
    if (!c->req.is_head)
        (void)wsp_buf_append(&c->out, body, len); /* OOM is sticky: conn_send() checks it */
    c->close_after = !keep;
    WSP_LOG(WSP_LOG_DEBUG, "event=admin_response status=%d route=%d bytes=%zu keep=%d", status,
            c->req.route, len, keep);
    conn_send(c);
}

static void conn_respond_json_error(admin_conn_t *c, int status, const char *error, int keep)
{
    char body[160];
    int n = snprintf(body, sizeof body, "{\"error\":\"%s\"}", error);
    const char *extra = NULL;
    if (status == 401)
        extra = "WWW-Authenticate: Bearer\r\n";
    char allow[48];
    if (status == 405) {
        snprintf(allow, sizeof allow, "Allow: %s\r\n", c->req.allow);
        extra = allow;
    }
    size_t len = n > 0 && (size_t)n < sizeof body ? (size_t)n : 0;
    conn_respond(c, status, "application/json", extra, body, len, keep);
}

/* ---- parser callbacks: record only ---- */

static admin_conn_t *parser_conn(http_parser *p) { return p->data; }

static int on_http_begin(http_parser *p)
{
    admin_conn_t *c = parser_conn(p);
    size_t head = c->req.head_bytes; /* leading CRLFs count against the head too */
    memset(&c->req, 0, offsetof(admin_req_t, url));
    c->req.head_bytes = head;
    c->in_request = 1;
    conn_timer(c, WSP_ADMIN_REQUEST_MS); /* the whole request, not per read */
    return 0;
}

static void append_capped(char *dst, uint16_t *dlen, size_t cap, uint8_t *over, const char *at,
                          size_t len)
{
    if (*over || len > cap - *dlen) {
        *over = 1;
        return;
    }
    memcpy(dst + *dlen, at, len);
    *dlen = (uint16_t)(*dlen + len);
}

static int on_http_url(http_parser *p, const char *at, size_t len)
{
    admin_req_t *r = &parser_conn(p)->req;
    append_capped(r->url, &r->url_len, sizeof r->url, &r->url_over, at, len);
    return 0;
}

static int on_http_field(http_parser *p, const char *at, size_t len)
{
    admin_req_t *r = &parser_conn(p)->req;
    if (r->in_value) { /* a field after a value starts the next header */
        r->in_value = 0;
        r->name_len = 0;
        r->name_over = 0;
    }
    append_capped(r->name, &r->name_len, sizeof r->name, &r->name_over, at, len);
    return 0;
}

static int name_is(const admin_req_t *r, const char *want)
{
    size_t n = strlen(want);
    return !r->name_over && r->name_len == n && strncasecmp(r->name, want, n) == 0;
}

static int on_http_value(http_parser *p, const char *at, size_t len)
{
    admin_req_t *r = &parser_conn(p)->req;
    if (!r->in_value) {
        r->in_value = 1;
        r->hdr = HDR_OTHER;
        if (name_is(r, "authorization")) {
            r->hdr = HDR_AUTH;
            if (r->auth_count < 2) /* saturates: two tokens are ambiguous, refused below */
                r->auth_count++;
            r->auth_len = 0;
        } else if (name_is(r, "expect")) {
            r->hdr = HDR_EXPECT;
            r->expect_len = 0;
        }
    }
    if (r->hdr == HDR_AUTH) {
        append_capped(r->auth, &r->auth_len, sizeof r->auth, &r->auth_over, at, len);
    } else if (r->hdr == HDR_EXPECT) {
        uint8_t over = 0; /* an unknown expectation is ignored, as RFC 9110 allows */
        append_capped(r->expect, &r->expect_len, sizeof r->expect, &over, at, len);
    }
    return 0;
}

static int on_http_headers(http_parser *p)
{
    admin_conn_t *c = parser_conn(p);
    c->req.headers_done = 1;
    c->pause = PAUSE_HEADERS;
    http_parser_pause(p, 1);
    return 0;
}

static int on_http_body(http_parser *p, const char *at, size_t len)
{
    admin_conn_t *c = parser_conn(p);
    admin_req_t *r = &c->req;
    r->body_seen += len;
    if (r->body_seen > WSP_ADMIN_BODY_MAX) { /* chunked, or a discarded body: stop here */
        c->pause = PAUSE_BODY;
        http_parser_pause(p, 1);
        return 0;
    }
    if (!r->discard && wsp_buf_append(&c->body, at, len) < 0) {
        r->oom = 1;
        c->pause = PAUSE_BODY;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_http_complete(http_parser *p)
{
    admin_conn_t *c = parser_conn(p);
    c->pause = PAUSE_DONE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings admin_http_settings = {
    .on_message_begin = on_http_begin,
    .on_url = on_http_url,
    .on_header_field = on_http_field,
    .on_header_value = on_http_value,
    .on_headers_complete = on_http_headers,
    .on_body = on_http_body,
    .on_message_complete = on_http_complete,
};

/* ---- request handling ---- */

static size_t trim_len(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return len;
}

/* 1 when the request carries exactly one "Authorization: Bearer <token>" equal to a's token.
 * The comparison reads all WSP_ADMIN_TOKEN_MAX bytes of both zero-padded buffers and folds
 * the length check in without a branch, so its time depends on neither the token's bytes
 * nor its length. Only a presented value longer than any token returns early, which tells
 * the peer nothing about the token. */
static int req_authorized(const wsp_admin_t *a, const admin_req_t *r)
{
    if (r->auth_count != 1 || r->auth_over)
        return 0;
    size_t len = trim_len(r->auth, r->auth_len);
    if (len < 7 || strncasecmp(r->auth, "Bearer ", 7) != 0)
        return 0;
    size_t i = 7;
    while (i < len && r->auth[i] == ' ')
        i++;
    size_t tlen = len - i;
    if (tlen > WSP_ADMIN_TOKEN_MAX)
        return 0;
    unsigned char cand[WSP_ADMIN_TOKEN_MAX] = {0};
    memcpy(cand, r->auth + i, tlen);
    int same = CRYPTO_memcmp(cand, a->token, sizeof cand) == 0;
    return same & (tlen == a->token_len);
}

/* Finds `channel` in the query q[0..len): 0 with *name NULL when absent, -EINVAL when
 * repeated, empty or invalid. */
static int query_channel(const char *q, size_t len, const char **name, size_t *nlen)
{
    static const char key[] = "channel=";
    const size_t klen = sizeof key - 1;
    *name = NULL;
    *nlen = 0;
    if (q == NULL) /* no '?' in the target; q + 0 below would be undefined on NULL */
        return 0;
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && q[i] != '&')
            continue;
        const char *p = q + start;
        size_t plen = i - start;
        start = i + 1;
        if (plen == klen - 1 && memcmp(p, key, klen - 1) == 0)
            return -EINVAL; /* "channel" without a value */
        if (plen < klen || memcmp(p, key, klen) != 0)
            continue;
        if (*name != NULL)
            return -EINVAL;
        *name = p + klen;
        *nlen = plen - klen;
        if (!wsp_channel_valid(*name, *nlen))
            return -EINVAL;
    }
    return 0;
}

/* Splits the request target at '?'. */
static void req_target(const admin_req_t *r, size_t *path_len, const char **query,
                       size_t *query_len)
{
    const char *q = memchr(r->url, '?', r->url_len);
    *path_len = q ? (size_t)(q - r->url) : r->url_len;
    *query = q ? q + 1 : NULL;
    *query_len = q ? r->url_len - *path_len - 1 : 0;
    /* A fragment is never sent by a conforming client; if one is, it is not ours. */
    const char *f = memchr(r->url, '#', *path_len);
    if (f)
        *path_len = (size_t)(f - r->url);
    if (*query && (f = memchr(*query, '#', *query_len)) != NULL)
        *query_len = (size_t)(f - *query);
}

static int path_is(const admin_req_t *r, size_t path_len, const char *want)
{
    return path_len == strlen(want) && memcmp(r->url, want, path_len) == 0;
}

static void req_fail(admin_req_t *r, int status, const char *error)
{
    r->status = status;
    r->error = error;
}

/* Routes and checks everything the headers decide: records an error status in c->req, or
 * clears discard when the body is to be kept. */
static void req_check(admin_conn_t *c)
{
    admin_req_t *r = &c->req;
    const http_parser *p = &c->parser;
    if (r->url_over) {
        req_fail(r, 414, "uri too long");
        return;
    }
    r->is_head = p->method == HTTP_HEAD; /* known only now: a bad request line gets a body */
    size_t path_len, query_len;
    const char *query;
    req_target(r, &path_len, &query, &query_len);
    if (path_is(r, path_len, "/publish")) {
        r->route = ROUTE_PUBLISH;
        r->allow = "POST";
    } else {
        r->allow = "GET, HEAD";
        if (path_is(r, path_len, "/metrics"))
            r->route = ROUTE_METRICS;
        else if (path_is(r, path_len, "/healthz"))
            r->route = ROUTE_HEALTHZ;
        else if (path_is(r, path_len, "/stats"))
            r->route = ROUTE_STATS;
    }
    if (r->route == ROUTE_NONE) {
        req_fail(r, 404, "not found");
        return;
    }
    if (r->route != ROUTE_PUBLISH) {
        if (p->method != HTTP_GET && p->method != HTTP_HEAD)
            req_fail(r, 405, "method not allowed");
        return; /* a GET body, if any, is read and dropped */
    }
    const char *ch;
    size_t chlen;
    if (p->method != HTTP_POST)
        req_fail(r, 405, "method not allowed");
    else if (c->a->token_len > 0 && !req_authorized(c->a, r))
        req_fail(r, 401, "unauthorized"); /* before any other answer: no probing without it */
    else if (query_channel(query, query_len, &ch, &chlen) < 0)
        req_fail(r, 400, "invalid channel");
    else if (!(p->flags & (F_CONTENTLENGTH | F_CHUNKED)))
        req_fail(r, 411, "length required");
    else if ((p->flags & F_CONTENTLENGTH) && p->content_length > WSP_ADMIN_BODY_MAX)
        req_fail(r, 413, "payload too large"); /* now, not after 64 KiB of it arrived */
    else
        r->discard = 0;
}

/* Acts on the headers before any body byte is read. */
static void req_headers(admin_conn_t *c)
{
    admin_req_t *r = &c->req;
    const http_parser *p = &c->parser;
    r->discard = 1;
    req_check(c);
    int expect = r->expect_len >= 12 && trim_len(r->expect, r->expect_len) == 12 &&
                 strncasecmp(r->expect, "100-continue", 12) == 0;
    if (r->status != 0) {
        /* Answer at once and close when the rest could be long or may never come (a client
         * awaiting 100 Continue); a short body is read and dropped to keep the connection. */
        if (expect || r->status == 413 || r->status == 414 ||
            ((p->flags & F_CONTENTLENGTH) && p->content_length > WSP_ADMIN_BODY_MAX)) {
            c->in_request = 0;
            conn_respond_json_error(c, r->status, r->error, 0);
        }
        return;
    }
    if (expect && !r->discard) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->out.len = 0;
        c->out.oom = 0;
        (void)wsp_buf_append(&c->out, cont, sizeof cont - 1); /* OOM: conn_send() closes */
        conn_send(c);
    }
}

static void req_publish(admin_conn_t *c, int keep)
{
    wsp_admin_t *a = c->a;
    const uint8_t *body = c->body.len ? (const uint8_t *)c->body.data : (const uint8_t *)"";
    /* An empty body is published: an empty text frame is a valid message. */
    if (!wsp_utf8_valid(body, c->body.len)) {
        conn_respond_json_error(c, 400, "body is not valid UTF-8", keep);
        return;
    }
    size_t path_len, query_len;
    const char *query, *ch;
    size_t chlen;
    req_target(&c->req, &path_len, &query, &query_len);
    (void)query_channel(query, query_len, &ch, &chlen); /* validated in req_headers() */
    uint64_t seq = 0, conns = 0;
    int rv = a->ops->publish(a->user, ch, chlen, body, c->body.len, &seq, &conns);
    if (rv == -EAGAIN) {
        conn_respond_json_error(c, 503, "draining", keep);
    } else if (rv < 0) {
        char err[96];
        if (uv_strerror_r(rv, err, sizeof err) == NULL)
            snprintf(err, sizeof err, "error %d", rv);
        for (char *s = err; *s; s++)
            if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
                *s = ' '; /* stays a JSON string whatever the message holds */
        conn_respond_json_error(c, 500, err, keep);
    } else {
        char json[96];
        int n = snprintf(json, sizeof json, "{\"seq\":%" PRIu64 ",\"connections\":%" PRIu64 "}",
                         seq, conns);
        conn_respond(c, 202, "application/json", NULL, json, (size_t)n, keep);
    }
}

/* Answers /metrics or /stats from what fill appended to the reused body buffer. */
static void req_dump(admin_conn_t *c, int (*fill)(void *, wsp_buf_t *), const char *ctype, int keep)
{
    c->body.len = 0;
    c->body.oom = 0;
    int rv = fill(c->a->user, &c->body);
    if (rv < 0 || c->body.oom) {
        conn_respond_json_error(c, 500, rv < 0 ? "internal error" : "out of memory", keep);
        return;
    }
    conn_respond(c, 200, ctype, NULL, c->body.data ? c->body.data : "", c->body.len, keep);
}

static void req_complete(admin_conn_t *c)
{
    admin_req_t *r = &c->req;
    const wsp_admin_ops_t *ops = c->a->ops;
    int keep = http_should_keep_alive(&c->parser) && !c->parser.upgrade;
    c->in_request = 0;
    if (r->status != 0) {
        conn_respond_json_error(c, r->status, r->error, keep);
    } else if (r->route == ROUTE_PUBLISH) {
        req_publish(c, keep);
    } else if (r->route == ROUTE_METRICS) {
        req_dump(c, ops->metrics, "text/plain; version=0.0.4; charset=utf-8", keep);
    } else if (r->route == ROUTE_STATS) {
        req_dump(c, ops->stats, "application/json", keep);
    } else if (ops->healthy(c->a->user)) {
        conn_respond(c, 200, "text/plain; charset=utf-8", NULL, "ok\n", 3, keep);
    } else {
        conn_respond(c, 503, "text/plain; charset=utf-8", NULL, "draining\n", 9, keep);
    }
    /* The next request starts afresh; the buffers keep their capacity for it. */
    r->headers_done = 0;
    r->head_bytes = 0;
    c->body.len = 0;
}

/* Answers a request the parser refused, and closes. */
static void conn_parse_error(admin_conn_t *c, enum http_errno e)
{
    WSP_LOG(WSP_LOG_DEBUG, "event=admin_bad_request error=%s", http_errno_name(e));
    c->in_request = 0;
    if (e == HPE_HEADER_OVERFLOW)
        conn_respond_json_error(c, 431, "request header fields too large", 0);
    else
        conn_respond_json_error(c, 400, "bad request", 0);
}

/* Parses buffered input, one pause point at a time, until it is used up or a response is
 * being written (pipelined requests wait, so answers leave in request order). */
static void conn_process(admin_conn_t *c)
{
    while (!c->closing && !c->writing && !c->close_after && c->in_off < c->in_len) {
        admin_req_t *r = &c->req;
        int in_head = !r->headers_done;
        size_t avail = c->in_len - c->in_off;
        c->pause = PAUSE_NONE;
        size_t n = http_parser_execute(&c->parser, &admin_http_settings, c->in + c->in_off, avail);
        c->in_off += n;
        if (c->closing)
            break;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED)
            http_parser_pause(&c->parser, 0);
        if (in_head) {
            /* Pausing in on_headers_complete leaves the head's final LF unparsed: count it. */
            r->head_bytes += n + (c->pause == PAUSE_HEADERS);
            if (r->head_bytes > WSP_ADMIN_HEAD_MAX) {
                c->in_request = 0;
                conn_respond_json_error(c, 431, "request header fields too large", 0);
                break;
            }
        }
        if (e != HPE_OK && e != HPE_PAUSED) {
            conn_parse_error(c, e);
            break;
        }
        if (e == HPE_OK && n < avail) { /* only after an Upgrade; never spin on it */
            conn_parse_error(c, HPE_UNKNOWN);
            break;
        }
        if (c->pause == PAUSE_HEADERS) {
            req_headers(c);
        } else if (c->pause == PAUSE_BODY) {
            c->in_request = 0;
            if (r->oom)
                conn_respond_json_error(c, 500, "out of memory", 0);
            else if (r->status != 0)
                conn_respond_json_error(c, r->status, r->error, 0);
            else
                conn_respond_json_error(c, 413, "payload too large", 0);
        } else if (c->pause == PAUSE_DONE) {
            req_complete(c);
        }
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    if (!c->writing && !c->closing)
        conn_read_start(c);
}

/* ---- accepting ---- */

static void on_refused_closed(uv_handle_t *h)
{
    wsp_admin_t *a = h->data;
    free(h);
    admin_unref(a);
}

/* Accepts and closes at once: leaving the peer in the backlog would stall the listener,
 * since libuv stops polling it until someone calls uv_accept(). */
static void admin_refuse(wsp_admin_t *a)
{
    uv_tcp_t *t = malloc(sizeof *t); /* per refused peer; freed in on_refused_closed() */
    if (t == NULL)
        return; /* out of memory: the listener pauses, the least bad outcome here */
    if (uv_tcp_init(a->loop, t) < 0) {
        free(t);
        return;
    }
    t->data = a;
    a->refs++;
    /* Closed either way; a failed accept only means the peer already left. */
    (void)uv_accept((uv_stream_t *)&a->listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_refused_closed);
}

static void on_admin_connection(uv_stream_t *server, int status)
{
    wsp_admin_t *a = WSP_CONTAINER_OF(server, wsp_admin_t, listener);
    if (status < 0) {
        WSP_LOG(WSP_LOG_DEBUG, "event=admin_accept_error error=%s", uv_err_name(status));
        return;
    }
    if (a->nconns >= WSP_ADMIN_MAX_CONNS) {
        WSP_LOG(WSP_LOG_DEBUG, "event=admin_refused conns=%u", a->nconns);
        admin_refuse(a);
        return;
    }
    /* Per connection (at most WSP_ADMIN_MAX_CONNS); freed in on_conn_closed(). */
    admin_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL) {
        admin_refuse(a);
        return;
    }
    if (uv_tcp_init(a->loop, &c->tcp) < 0) {
        free(c);
        admin_refuse(a);
        return;
    }
    c->a = a;
    c->tcp.data = c;
    c->timer.data = c;
    c->parser.data = c;
    c->handles = 2;
    a->refs++;
    c->next = a->conns;
    if (a->conns)
        a->conns->prev = c;
    a->conns = c;
    a->nconns++;
    if (uv_timer_init(a->loop, &c->timer) < 0) { /* cannot fail in libuv 1.44; still undone */
        c->handles = 1;
        c->closing = 1;
        a->conns = c->next;
        if (c->next)
            c->next->prev = NULL;
        a->nconns--;
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        admin_refuse(a);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    /* Without it a keep-alive client's second response can wait for a delayed ACK. Only a
     * latency hint: a failure changes nothing else. */
    (void)uv_tcp_nodelay(&c->tcp, 1);
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    conn_timer(c, WSP_ADMIN_IDLE_MS);
    conn_read_start(c);
}

/* ---- public API ---- */

/* 1 when t[0..len) can be a token: 1..256 visible ASCII bytes, all a header value and an
 * unquoted command-line argument can carry. */
static int token_ok(const char *t, size_t len)
{
    if (len == 0 || len > WSP_ADMIN_TOKEN_MAX)
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= 0x20 || (unsigned char)t[i] >= 0x7f)
            return 0;
    return 1;
}

/* Binds a listening socket without SO_REUSEPORT: a second process must not silently share
 * the admin port. Numeric addresses only. Returns the fd or a negative errno. */
static int admin_bind(const char *host, int port)
{
    int fd;
    int rv = wsp_net_bind(host, port, 0, &fd);
    if (rv < 0)
        return rv;
    if (listen(fd, 64) != 0) {
        rv = -errno;
        close(fd);
        return rv;
    }
    return fd;
}

static void on_listener_closed(uv_handle_t *h)
{
    admin_unref(WSP_CONTAINER_OF(h, wsp_admin_t, listener));
}

int wsp_admin_start(wsp_admin_t **out, uv_loop_t *loop, const char *host, int port,
                    const char *token, const wsp_admin_ops_t *ops, void *user)
{
    *out = NULL;
    if (loop == NULL || host == NULL || ops == NULL || ops->publish == NULL ||
        ops->metrics == NULL || ops->stats == NULL || ops->healthy == NULL || port < 0 ||
        port > 65535)
        return -EINVAL;
    size_t tlen = token ? strlen(token) : 0;
    if (token && !token_ok(token, tlen))
        return -EINVAL;
    /* Bound before any handle exists, so the usual failures (address in use, bad address)
     * leave nothing for the loop to clean up. */
    int fd = admin_bind(host, port);
    if (fd < 0)
        return fd;
    int bound = wsp_net_local_port(fd);
    wsp_admin_t *a = calloc(1, sizeof *a); /* once per process */
    if (bound < 0 || a == NULL) {
        close(fd);
        free(a);
        return bound < 0 ? bound : -ENOMEM;
    }
    int rv = uv_tcp_init(loop, &a->listener);
    if (rv < 0) {
        close(fd);
        free(a);
        return rv;
    }
    a->loop = loop;
    a->ops = ops;
    a->user = user;
    a->port = bound;
    a->refs = 1; /* the listener */
    a->token_len = tlen;
    if (tlen > 0)
        memcpy(a->token, token, tlen);
    rv = uv_tcp_open(&a->listener, fd);
    if (rv < 0)
        close(fd); /* not yet owned by the handle */
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&a->listener, 64, on_admin_connection);
    if (rv < 0) {
        /* Only reachable on a libuv failure: the handle exists, so a is freed by its close
         * callback once the caller runs the loop. */
        a->stopping = 1;
        uv_close((uv_handle_t *)&a->listener, on_listener_closed);
        return rv;
    }
    *out = a;
    return 0;
}

int wsp_admin_port(const wsp_admin_t *a) { return a->port; }

void wsp_admin_stop(wsp_admin_t *a)
{
    if (a == NULL || a->stopping)
        return;
    a->stopping = 1;
    uv_close((uv_handle_t *)&a->listener, on_listener_closed);
    while (a->conns) /* conn_close() unlinks the head */
        conn_close(a->conns);
}

int wsp_admin_read_token(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -errno;
    /* Enough for a 256-byte token, a CR and generous trailing blanks; more is refused. */
    char line[WSP_ADMIN_TOKEN_MAX + 64];
    size_t n = fread(line, 1, sizeof line, f);
    int err = ferror(f) ? -EIO : 0;
    fclose(f);
    size_t len = 0;
    while (len < n && line[len] != '\n')
        len++;
    if (err == 0 && len == sizeof line)
        err = -EINVAL; /* no newline in reach: the first line is too long */
    while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r' ||
                       line[len - 1] == '\v' || line[len - 1] == '\f'))
        len--;
    if (err == 0 && !token_ok(line, len))
        err = -EINVAL;
    if (err == 0 && len + 1 > cap)
        err = -ENOBUFS;
    if (err == 0) {
        memcpy(out, line, len);
        out[len] = '\0';
    }
    OPENSSL_cleanse(line, sizeof line); /* the secret does not linger on the stack */
    return err;
}
