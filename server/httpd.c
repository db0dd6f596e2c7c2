#include "httpd.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <http_parser.h>

#include "alloc.h"
#include "httpd_int.h"
#include "log.h"
#include "net.h"

static void httpd_close(wsp_httpd_conn_t *c);
static void httpd_unref(wsp_httpd_t *s)
{
    if (--s->refs > 0 || !s->stopping)
        return;
    const wsp_httpd_handler_t *h = s->h;
    void *user = s->user;
    int started = s->started;
    free(s);
    if (started)
        h->on_closed(user);
}

/* ---- timers and reading ---- */

static void on_httpd_timer(uv_timer_t *t)
{
    wsp_httpd_conn_t *c = t->data;
    WSP_LOG(WSP_LOG_DEBUG, "event=admin_timeout in_request=%d lingering=%d", c->in_request,
            c->lingering);
    httpd_close(c);
}

void wsp__httpd_timer(wsp_httpd_conn_t *c, uint64_t ms)
{
    if (c->closing)
        return;
    if (uv_timer_start(&c->timer, on_httpd_timer, ms, 0) < 0)
        httpd_close(c); /* an admin connection without a deadline is not worth keeping */
}

char *wsp_httpd_io_rbuf(wsp_httpd_conn_t *c, size_t *cap)
{
    if (c->lingering) { /* what arrives now is dropped: reuse the whole buffer */
        *cap = sizeof c->in;
        return c->in;
    }
    /* Reading is stopped while unparsed input waits, so this is normally all of c->in; a
     * zero-length buffer makes libuv report UV_ENOBUFS, which closes. */
    *cap = sizeof c->in - c->in_len;
    return c->in + c->in_len;
}

static void on_httpd_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    (void)hint;
    buf->base = wsp_httpd_io_rbuf(h->data, &buf->len);
}

void wsp_httpd_io_read(wsp_httpd_conn_t *c, ssize_t nread)
{
    if (nread < 0) { /* EOF or error: the peer is gone or done; nothing is owed to it */
        httpd_close(c);
        return;
    }
    if (c->lingering || nread == 0)
        return;
    c->in_len += (size_t)nread;
    wsp__httpd_process(c);
}

static void on_httpd_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    wsp_httpd_io_read(s->data, nread);
}

void wsp__httpd_read_start(wsp_httpd_conn_t *c)
{
    if (c->reading || c->closing)
        return;
    if ((c->io ? c->io->read(c->io_user, 1)
               : uv_read_start((uv_stream_t *)&c->tcp, on_httpd_alloc, on_httpd_read)) < 0) {
        httpd_close(c);
        return;
    }
    c->reading = 1;
}

/* Stops reading: a peer that does not read our responses must not make us buffer its
 * pipelined requests. */
static void httpd_read_stop(wsp_httpd_conn_t *c)
{
    if (!c->reading)
        return;
    c->reading = 0;
    if ((c->io ? c->io->read(c->io_user, 0) : uv_read_stop((uv_stream_t *)&c->tcp)) < 0)
        httpd_close(c);
}

/* ---- closing ---- */

void wsp_httpd_io_closed(wsp_httpd_conn_t *c)
{
    if (--c->handles > 0)
        return;
    wsp_httpd_t *s = c->s;
    wsp_buf_free(&c->body);
    wsp_buf_free(&c->out);
    free(c);
    httpd_unref(s);
}

static void on_httpd_conn_closed(uv_handle_t *h) { wsp_httpd_io_closed(h->data); }

/* Starts closing c; idempotent, safe from any callback (c lives until both handles closed). */
static void httpd_close(wsp_httpd_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = 1;
    wsp_httpd_t *s = c->s;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->io)
        c->io->close(c->io_user);
    else
        uv_close((uv_handle_t *)&c->tcp, on_httpd_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_httpd_conn_closed);
}

void wsp_httpd_io_shutdown(wsp_httpd_conn_t *c, int status)
{
    if (status < 0) /* UV_ECANCELED when already closing; httpd_close() is idempotent */
        httpd_close(c);
}

static void on_httpd_shutdown(uv_shutdown_t *req, int status)
{
    wsp_httpd_io_shutdown(req->handle->data, status);
}

/* After the last response: FIN once it is written, then read and drop until the peer's EOF,
 * so the kernel does not answer unread input with an RST that could destroy the response. */
static void httpd_linger(wsp_httpd_conn_t *c)
{
    c->lingering = 1;
    c->in_off = c->in_len = 0;
    if ((c->io ? c->io->shutdown(c->io_user)
               : uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_httpd_shutdown)) < 0) {
        httpd_close(c);
        return;
    }
    wsp__httpd_timer(c, WSP_HTTPD_LINGER_MS);
    wsp__httpd_read_start(c);
}

/* ---- writing ---- */

/* c->out has been written completely. */
static void httpd_sent(wsp_httpd_conn_t *c)
{
    if (c->close_after)
        httpd_linger(c);
    else if (!c->in_request)
        wsp__httpd_timer(c, WSP_HTTPD_IDLE_MS);
}

void wsp_httpd_io_written(wsp_httpd_conn_t *c, int status)
{
    c->writing = 0;
    if (c->closing)
        return; /* UV_ECANCELED from uv_close(): the close callbacks free c */
    if (status < 0) {
        httpd_close(c);
        return;
    }
    httpd_sent(c);
    wsp__httpd_process(c); /* pipelined requests waited for this response */
}

static void on_httpd_write(uv_write_t *req, int status)
{
    wsp_httpd_io_written(req->handle->data, status);
}

/* Writes c->out: one try_write for the common small response, else a queued write during
 * which parsing and reading pause. */
void wsp__httpd_send(wsp_httpd_conn_t *c)
{
    if (c->closing) /* the handler stopped the server */
        return;
    if (c->out.oom) {
        httpd_close(c);
        return;
    }
    uv_stream_t *s = (uv_stream_t *)&c->tcp;
    uv_buf_t b = uv_buf_init(c->out.data, (unsigned)c->out.len);
    int n = c->io ? c->io->try_write(c->io_user, b.base, b.len) : uv_try_write(s, &b, 1);
    if (n == (int)c->out.len) {
        httpd_sent(c);
        return;
    }
    if (n < 0 && n != UV_EAGAIN) {
        httpd_close(c);
        return;
    }
    size_t done = n > 0 ? (size_t)n : 0;
    b = uv_buf_init(c->out.data + done, (unsigned)(c->out.len - done));
    if ((c->io ? c->io->write(c->io_user, b.base, b.len)
               : uv_write(&c->wreq, s, &b, 1, on_httpd_write)) < 0) {
        httpd_close(c);
        return;
    }
    c->writing = 1;
    httpd_read_stop(c);
    if (!c->in_request)
        wsp__httpd_timer(c, WSP_HTTPD_REQUEST_MS); /* a peer that never reads is dropped */
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

uint64_t wsp_httpd_defer(wsp_httpd_conn_t *c)
{
    c->deferred = 1;
    c->id = ++c->s->next_id;
    httpd_read_stop(c); /* pipelined requests wait in the kernel meanwhile */
    wsp__httpd_timer(c, WSP_HTTPD_REQUEST_MS);
    return c->id;
}

wsp_httpd_conn_t *wsp_httpd_find(wsp_httpd_t *s, uint64_t id)
{
    for (wsp_httpd_conn_t *c = s->conns; c; c = c->next) /* at most WSP_HTTPD_MAX_CONNS */
        if (c->deferred && c->id == id)
            return c;
    return NULL;
}

/* Builds one complete response in c->out and sends it. */
void wsp_httpd_respond(wsp_httpd_conn_t *c, int status, const char *ctype, const char *extra,
                       const char *body, size_t len, int keep)
{
    int was_deferred = c->deferred;
    c->deferred = 0;
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
        (void)wsp_buf_append(&c->out, body, len); /* OOM is sticky: wsp__httpd_send() checks it */
    c->close_after = !keep;
    WSP_LOG(WSP_LOG_DEBUG, "event=admin_response status=%d route=%d bytes=%zu keep=%d", status,
            c->req.tag, len, keep);
    wsp__httpd_send(c);
    if (was_deferred && !c->closing && !c->in_handler)
        wsp__httpd_process(c); /* what was pipelined behind it, and reading again */
}

void wsp_httpd_respond_error(wsp_httpd_conn_t *c, int status, const char *error, int keep)
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
    wsp_httpd_respond(c, status, "application/json", extra, body, len, keep);
}

/* ---- accepting ---- */

static void on_refused_closed(uv_handle_t *h)
{
    wsp_httpd_t *s = h->data;
    free(h);
    httpd_unref(s);
}

/* Accepts and closes at once: leaving the peer in the backlog would stall the listener,
 * since libuv stops polling it until someone calls uv_accept(). */
static void httpd_refuse(wsp_httpd_t *s)
{
    uv_tcp_t *t = malloc(sizeof *t); /* per refused peer; freed in on_refused_closed() */
    if (t == NULL)
        return; /* out of memory: the listener pauses, the least bad outcome here */
    if (uv_tcp_init(s->loop, t) < 0) {
        free(t);
        return;
    }
    t->data = s;
    s->refs++;
    /* Closed either way; a failed accept only means the peer already left. */
    (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)t);
    uv_close((uv_handle_t *)t, on_refused_closed);
}

/* Links c into s and starts its timer, whatever the transport. Returns 0, or a negative
 * errno with c unlinked and one handle (the transport) left to close. */
static int httpd_conn_link(wsp_httpd_t *s, wsp_httpd_conn_t *c)
{
    c->s = s;
    c->timer.data = c;
    c->handles = 2; /* the transport and the timer: c is freed when both have closed */
    s->refs++;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    int rv = uv_timer_init(s->loop, &c->timer);
    if (rv < 0) { /* cannot fail in libuv 1.44; still undone */
        c->handles = 1;
        c->closing = 1;
        s->conns = c->next;
        if (c->next)
            c->next->prev = NULL;
        s->nconns--;
    }
    return rv;
}

/* A linked connection starts: a fresh parser, the idle deadline, reading. */
static void httpd_conn_begin(wsp_httpd_conn_t *c)
{
    http_parser_init(&c->parser, HTTP_REQUEST);
    c->parser.data = c;
    wsp__httpd_timer(c, WSP_HTTPD_IDLE_MS);
    wsp__httpd_read_start(c);
}

static void on_httpd_connection(uv_stream_t *server, int status)
{
    wsp_httpd_t *s = WSP_CONTAINER_OF(server, wsp_httpd_t, listener);
    if (status < 0) {
        WSP_LOG(WSP_LOG_DEBUG, "event=admin_accept_error error=%s", uv_err_name(status));
        return;
    }
    if (s->nconns >= WSP_HTTPD_MAX_CONNS) {
        WSP_LOG(WSP_LOG_DEBUG, "event=admin_refused conns=%u", s->nconns);
        httpd_refuse(s);
        return;
    }
    /* Per connection (at most WSP_HTTPD_MAX_CONNS); freed in wsp_httpd_io_closed(). */
    wsp_httpd_conn_t *c = calloc(1, sizeof *c);
    if (c == NULL || uv_tcp_init(s->loop, &c->tcp) < 0) {
        free(c);
        httpd_refuse(s);
        return;
    }
    c->tcp.data = c;
    if (httpd_conn_link(s, c) < 0) {
        uv_close((uv_handle_t *)&c->tcp, on_httpd_conn_closed);
        httpd_refuse(s);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
        httpd_close(c);
        return;
    }
    /* Without it a keep-alive client's second response can wait for a delayed ACK. Only a
     * latency hint: a failure changes nothing else. */
    (void)uv_tcp_nodelay(&c->tcp, 1);
    httpd_conn_begin(c);
}

int wsp_httpd_open(wsp_httpd_t *s, const wsp_httpd_io_t *io, void *io_user, wsp_httpd_conn_t **out)
{
    if (s->stopping || s->nconns >= WSP_HTTPD_MAX_CONNS)
        return -EBUSY;
    wsp_httpd_conn_t *c = calloc(1, sizeof *c); /* as an accepted connection's */
    if (c == NULL)
        return -ENOMEM;
    c->io = io;
    c->io_user = io_user;
    int rv = httpd_conn_link(s, c);
    if (rv < 0) {
        wsp_httpd_io_closed(c); /* the transport never started: nothing to wait for */
        return rv;
    }
    *out = c;
    httpd_conn_begin(c);
    return 0;
}

static void on_httpd_listener_closed(uv_handle_t *h)
{
    httpd_unref(WSP_CONTAINER_OF(h, wsp_httpd_t, listener));
}

int wsp_httpd_start(wsp_httpd_t **out, uv_loop_t *loop, const char *host, int port,
                    const wsp_httpd_handler_t *h, void *user)
{
    *out = NULL;
    if (loop == NULL || host == NULL || h == NULL || port < 0 || port > 65535)
        return -EINVAL;
    /* Bound before any handle exists, so the usual failures (address in use, bad address)
     * leave nothing for the loop to clean up. No SO_REUSEPORT: a second process must not
     * silently share the port. */
    int fd, rv = wsp_net_listen(host, port, 64, &fd);
    if (rv < 0)
        return rv;
    return wsp_httpd_adopt(out, loop, fd, h, user);
}

int wsp_httpd_adopt(wsp_httpd_t **out, uv_loop_t *loop, int fd, const wsp_httpd_handler_t *h,
                    void *user)
{
    *out = NULL;
    int rv;
    int bound = wsp_net_local_port(fd);
    wsp_httpd_t *s = calloc(1, sizeof *s); /* once per process */
    if (bound < 0 || s == NULL) {
        close(fd);
        free(s);
        return bound < 0 ? bound : -ENOMEM;
    }
    rv = uv_tcp_init(loop, &s->listener);
    if (rv < 0) {
        close(fd);
        free(s);
        return rv;
    }
    s->loop = loop;
    s->h = h;
    s->user = user;
    s->port = bound;
    s->refs = 1; /* the listener */
    rv = uv_tcp_open(&s->listener, fd);
    if (rv < 0)
        close(fd); /* not yet owned by the handle */
    if (rv == 0)
        rv = uv_listen((uv_stream_t *)&s->listener, 64, on_httpd_connection);
    if (rv < 0) {
        /* Only reachable on a libuv failure: the handle exists, so s is freed by its close
         * callback once the caller runs the loop (without on_closed: nothing started). */
        s->stopping = 1;
        uv_close((uv_handle_t *)&s->listener, on_httpd_listener_closed);
        return rv;
    }
    s->started = 1;
    *out = s;
    return 0;
}

int wsp_httpd_fd(const wsp_httpd_t *s)
{
    uv_os_fd_t fd;
    return uv_fileno((const uv_handle_t *)&s->listener, &fd) == 0 ? fd : -EBADF;
}

int wsp_httpd_port(const wsp_httpd_t *s) { return s->port; }

void wsp_httpd_stop(wsp_httpd_t *s)
{
    if (s == NULL || s->stopping)
        return;
    s->stopping = 1;
    uv_close((uv_handle_t *)&s->listener, on_httpd_listener_closed);
    while (s->conns) /* httpd_close() unlinks the head */
        httpd_close(s->conns);
}
