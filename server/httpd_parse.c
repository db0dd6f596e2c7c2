/* Requests of the httpd module (server/httpd_int.h): http-parser's callbacks only record
 * (the URL, the Authorization and Expect headers, the body the handler wants); the caller
 * acts at each pause point: the head goes to the handler's on_head, a complete request to
 * its on_request, a request the parser refuses or that breaks a limit is answered 4xx and
 * closes. Pipelined requests are parsed one at a time, after the previous answer is written.
 * The loop's thread only. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>

#include "httpd.h"
#include "httpd_int.h"
#include "log.h"

static wsp_httpd_conn_t *parser_conn(http_parser *p) { return p->data; }

static int on_http_begin(http_parser *p)
{
    wsp_httpd_conn_t *c = parser_conn(p);
    size_t head = c->ps.head_bytes; /* leading CRLFs count against the head too */
    memset(&c->req, 0, offsetof(wsp_httpd_req_t, url));
    memset(&c->ps, 0, offsetof(httpd_parse_t, name));
    c->ps.head_bytes = head;
    c->in_request = 1;
    wsp__httpd_timer(c, WSP_HTTPD_REQUEST_MS); /* the whole request, not per read */
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
    wsp_httpd_req_t *r = &parser_conn(p)->req;
    append_capped(r->url, &r->url_len, sizeof r->url, &r->url_over, at, len);
    return 0;
}

static int on_http_field(http_parser *p, const char *at, size_t len)
{
    httpd_parse_t *ps = &parser_conn(p)->ps;
    if (ps->in_value) { /* a field after a value starts the next header */
        ps->in_value = 0;
        ps->name_len = 0;
        ps->name_over = 0;
    }
    append_capped(ps->name, &ps->name_len, sizeof ps->name, &ps->name_over, at, len);
    return 0;
}

static int name_is(const httpd_parse_t *ps, const char *want)
{
    size_t n = strlen(want);
    return !ps->name_over && ps->name_len == n && strncasecmp(ps->name, want, n) == 0;
}

/* Keeps the two headers anyone here reads: Authorization (the handler) and Expect. */
static int on_http_value(http_parser *p, const char *at, size_t len)
{
    wsp_httpd_conn_t *c = parser_conn(p);
    httpd_parse_t *ps = &c->ps;
    wsp_httpd_req_t *r = &c->req;
    if (!ps->in_value) {
        ps->in_value = 1;
        ps->hdr = HDR_OTHER;
        if (name_is(ps, "authorization")) {
            ps->hdr = HDR_AUTH;
            if (r->auth_count < 2) /* saturates: two tokens are ambiguous, refused by admin.c */
                r->auth_count++;
            r->auth_len = 0;
        } else if (name_is(ps, "expect")) {
            ps->hdr = HDR_EXPECT;
            ps->expect_len = 0;
        }
    }
    if (ps->hdr == HDR_AUTH) {
        append_capped(r->auth, &r->auth_len, sizeof r->auth, &r->auth_over, at, len);
    } else if (ps->hdr == HDR_EXPECT) {
        uint8_t over = 0; /* an unknown expectation is ignored, as RFC 9110 allows */
        append_capped(ps->expect, &ps->expect_len, sizeof ps->expect, &over, at, len);
    }
    return 0;
}

static int on_http_headers(http_parser *p)
{
    wsp_httpd_conn_t *c = parser_conn(p);
    c->ps.headers_done = 1;
    c->pause = PAUSE_HEADERS;
    http_parser_pause(p, 1);
    return 0;
}

static int on_http_body(http_parser *p, const char *at, size_t len)
{
    wsp_httpd_conn_t *c = parser_conn(p);
    c->ps.body_seen += len;
    if (c->ps.body_seen > WSP_HTTPD_BODY_MAX) { /* chunked, or a discarded body: stop here */
        c->pause = PAUSE_BODY;
        http_parser_pause(p, 1);
        return 0;
    }
    if (c->req.want_body && wsp_buf_append(&c->body, at, len) < 0) {
        c->ps.oom = 1;
        c->pause = PAUSE_BODY;
        http_parser_pause(p, 1);
    }
    return 0;
}

static int on_http_complete(http_parser *p)
{
    wsp_httpd_conn_t *c = parser_conn(p);
    c->pause = PAUSE_DONE;
    http_parser_pause(p, 1);
    return 0;
}

static const http_parser_settings httpd_settings = {
    .on_message_begin = on_http_begin,
    .on_url = on_http_url,
    .on_header_field = on_http_field,
    .on_header_value = on_http_value,
    .on_headers_complete = on_http_headers,
    .on_body = on_http_body,
    .on_message_complete = on_http_complete,
};

static size_t trim_len(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return len;
}

void wsp_httpd_fail(wsp_httpd_req_t *req, int status, const char *error)
{
    req->status = status;
    req->error = error;
}

/* Acts on the headers before any body byte is read: the handler routes and checks them. */
static void httpd_head(wsp_httpd_conn_t *c)
{
    wsp_httpd_req_t *r = &c->req;
    const http_parser *p = &c->parser;
    r->method = p->method;
    r->has_length = (p->flags & F_CONTENTLENGTH) != 0;
    r->chunked = (p->flags & F_CHUNKED) != 0;
    r->content_length = r->has_length ? p->content_length : 0;
    r->want_body = 0;
    if (r->url_over) {
        wsp_httpd_fail(r, 414, "uri too long");
    } else {
        r->is_head = p->method == HTTP_HEAD; /* known only now: a bad request line gets a body */
        c->s->h->on_head(c->s->user, r);
    }
    const httpd_parse_t *ps = &c->ps;
    int expect = ps->expect_len >= 12 && trim_len(ps->expect, ps->expect_len) == 12 &&
                 strncasecmp(ps->expect, "100-continue", 12) == 0;
    if (r->status != 0) {
        /* Answer at once and close when the rest could be long or may never come (a client
         * awaiting 100 Continue); a short body is read and dropped to keep the connection. */
        if (expect || r->status == 413 || r->status == 414 ||
            ((p->flags & F_CONTENTLENGTH) && p->content_length > WSP_HTTPD_BODY_MAX)) {
            c->in_request = 0;
            wsp_httpd_respond_error(c, r->status, r->error, 0);
        }
        return;
    }
    if (expect && r->want_body) {
        static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
        c->out.len = 0;
        c->out.oom = 0;
        (void)wsp_buf_append(&c->out, cont, sizeof cont - 1); /* OOM: wsp__httpd_send() closes */
        wsp__httpd_send(c);
    }
}

/* A whole request is in: an error decided from its head, or the handler's answer. */
static void httpd_complete(wsp_httpd_conn_t *c)
{
    wsp_httpd_req_t *r = &c->req;
    int keep = http_should_keep_alive(&c->parser) && !c->parser.upgrade;
    c->in_request = 0;
    if (r->status != 0)
        wsp_httpd_respond_error(c, r->status, r->error, keep);
    else {
        c->in_handler = 1;
        c->s->h->on_request(c->s->user, c, r, &c->body, keep);
        c->in_handler = 0;
    }
    /* The next request starts afresh; the buffers keep their capacity for it. */
    c->ps.headers_done = 0;
    c->ps.head_bytes = 0;
    c->body.len = 0;
}

/* Answers a request the parser refused, and closes. */
static void httpd_parse_error(wsp_httpd_conn_t *c, enum http_errno e)
{
    WSP_LOG(WSP_LOG_DEBUG, "event=admin_bad_request error=%s", http_errno_name(e));
    c->in_request = 0;
    if (e == HPE_HEADER_OVERFLOW)
        wsp_httpd_respond_error(c, 431, "request header fields too large", 0);
    else
        wsp_httpd_respond_error(c, 400, "bad request", 0);
}

/* Parses buffered input, one pause point at a time, until it is used up or a response is
 * being written (pipelined requests wait, so answers leave in request order). */
void wsp__httpd_process(wsp_httpd_conn_t *c)
{
    while (!c->closing && !c->writing && !c->close_after && !c->deferred && c->in_off < c->in_len) {
        wsp_httpd_req_t *r = &c->req;
        httpd_parse_t *ps = &c->ps;
        int in_head = !ps->headers_done;
        size_t avail = c->in_len - c->in_off;
        c->pause = PAUSE_NONE;
        size_t n = http_parser_execute(&c->parser, &httpd_settings, c->in + c->in_off, avail);
        c->in_off += n;
        if (c->closing)
            break;
        enum http_errno e = HTTP_PARSER_ERRNO(&c->parser);
        if (e == HPE_PAUSED)
            http_parser_pause(&c->parser, 0);
        if (in_head) {
            /* Pausing in on_headers_complete leaves the head's final LF unparsed: count it. */
            ps->head_bytes += n + (c->pause == PAUSE_HEADERS);
            if (ps->head_bytes > WSP_HTTPD_HEAD_MAX) {
                c->in_request = 0;
                wsp_httpd_respond_error(c, 431, "request header fields too large", 0);
                break;
            }
        }
        if (e != HPE_OK && e != HPE_PAUSED) {
            httpd_parse_error(c, e);
            break;
        }
        if (e == HPE_OK && n < avail) { /* only after an Upgrade; never spin on it */
            httpd_parse_error(c, HPE_UNKNOWN);
            break;
        }
        if (c->pause == PAUSE_HEADERS) {
            httpd_head(c);
        } else if (c->pause == PAUSE_BODY) {
            c->in_request = 0;
            if (ps->oom)
                wsp_httpd_respond_error(c, 500, "out of memory", 0);
            else if (r->status != 0)
                wsp_httpd_respond_error(c, r->status, r->error, 0);
            else
                wsp_httpd_respond_error(c, 413, "payload too large", 0);
        } else if (c->pause == PAUSE_DONE) {
            httpd_complete(c);
        }
    }
    if (c->in_off == c->in_len)
        c->in_off = c->in_len = 0;
    if (!c->writing && !c->closing && !c->deferred)
        wsp__httpd_read_start(c);
}
