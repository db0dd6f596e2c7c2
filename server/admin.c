#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <http_parser.h>
#include <openssl/crypto.h>

#include "channels.h"
#include "config.h"
#include "httpd.h"
#include "utf8.h"

/* The routes; a request's tag in server/httpd.c, which logs it with each response. */
enum { ROUTE_NONE, ROUTE_PUBLISH, ROUTE_METRICS, ROUTE_HEALTHZ, ROUTE_STATS };

struct wsp_admin_s {
    wsp_httpd_t *http;
    const wsp_admin_ops_t *ops;
    void *user;
    size_t token_len; /* 0: no token required */
    /* Zero-padded to the full size: the comparison always reads all of it. */
    unsigned char token[WSP_CONFIG_TOKEN_MAX];
};

static size_t auth_trim_len(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return len;
}

/* 1 when the request carries exactly one "Authorization: Bearer <token>" equal to a's token.
 * The comparison reads all WSP_CONFIG_TOKEN_MAX bytes of both zero-padded buffers and folds
 * the length check in without a branch, so its time depends on neither the token's bytes
 * nor its length. Only a presented value longer than any token returns early, which tells
 * the peer nothing about the token. */
static int req_authorized(const wsp_admin_t *a, const wsp_httpd_req_t *r)
{
    if (r->auth_count != 1 || r->auth_over)
        return 0;
    size_t len = auth_trim_len(r->auth, r->auth_len);
    if (len < 7 || strncasecmp(r->auth, "Bearer ", 7) != 0)
        return 0;
    size_t i = 7;
    while (i < len && r->auth[i] == ' ')
        i++;
    size_t tlen = len - i;
    if (tlen > WSP_CONFIG_TOKEN_MAX)
        return 0;
    unsigned char cand[WSP_CONFIG_TOKEN_MAX] = {0};
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
static void req_target(const wsp_httpd_req_t *r, size_t *path_len, const char **query,
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

static int path_is(const wsp_httpd_req_t *r, size_t path_len, const char *want)
{
    return path_len == strlen(want) && memcmp(r->url, want, path_len) == 0;
}

/* The httpd's on_head: routes and checks everything the head decides, in this order (the
 * first failing check answers): route 404, method 405, token 401, channel 400, framing 411,
 * size 413. Keeps the body only of a publish that passed all of them. */
static void on_admin_head(void *user, wsp_httpd_req_t *r)
{
    wsp_admin_t *a = user;
    size_t path_len, query_len;
    const char *query;
    req_target(r, &path_len, &query, &query_len);
    if (path_is(r, path_len, "/publish")) {
        r->tag = ROUTE_PUBLISH;
        r->allow = "POST";
    } else {
        r->allow = "GET, HEAD";
        if (path_is(r, path_len, "/metrics"))
            r->tag = ROUTE_METRICS;
        else if (path_is(r, path_len, "/healthz"))
            r->tag = ROUTE_HEALTHZ;
        else if (path_is(r, path_len, "/stats"))
            r->tag = ROUTE_STATS;
    }
    if (r->tag == ROUTE_NONE) {
        wsp_httpd_fail(r, 404, "not found");
        return;
    }
    if (r->tag != ROUTE_PUBLISH) {
        if (r->method != HTTP_GET && r->method != HTTP_HEAD)
            wsp_httpd_fail(r, 405, "method not allowed");
        return; /* a GET body, if any, is read and dropped */
    }
    const char *ch;
    size_t chlen;
    if (r->method != HTTP_POST)
        wsp_httpd_fail(r, 405, "method not allowed");
    else if (a->token_len > 0 && !req_authorized(a, r))
        wsp_httpd_fail(r, 401, "unauthorized"); /* before any other answer: no probing */
    else if (query_channel(query, query_len, &ch, &chlen) < 0)
        wsp_httpd_fail(r, 400, "invalid channel");
    else if (!r->has_length && !r->chunked)
        wsp_httpd_fail(r, 411, "length required");
    else if (r->has_length && r->content_length > WSP_HTTPD_BODY_MAX)
        wsp_httpd_fail(r, 413, "payload too large"); /* now, not after 64 KiB of it arrived */
    else
        r->want_body = 1;
}

static void req_publish(wsp_admin_t *a, wsp_httpd_conn_t *c, const wsp_httpd_req_t *r,
                        const wsp_buf_t *b, int keep)
{
    const uint8_t *body = b->len ? (const uint8_t *)b->data : (const uint8_t *)"";
    /* An empty body is published: an empty text frame is a valid message. */
    if (!wsp_utf8_valid(body, b->len)) {
        wsp_httpd_respond_error(c, 400, "body is not valid UTF-8", keep);
        return;
    }
    size_t path_len, query_len;
    const char *query, *ch;
    size_t chlen;
    req_target(r, &path_len, &query, &query_len);
    (void)query_channel(query, query_len, &ch, &chlen); /* validated in on_admin_head() */
    uint64_t seq = 0, conns = 0;
    int rv = a->ops->publish(a->user, ch, chlen, body, b->len, &seq, &conns);
    if (rv == -EAGAIN) {
        wsp_httpd_respond_error(c, 503, "draining", keep);
    } else if (rv < 0) {
        char err[96];
        if (uv_strerror_r(rv, err, sizeof err) == NULL)
            snprintf(err, sizeof err, "error %d", rv);
        for (char *s = err; *s; s++)
            if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
                *s = ' '; /* stays a JSON string whatever the message holds */
        wsp_httpd_respond_error(c, 500, err, keep);
    } else {
        char json[96];
        int n = snprintf(json, sizeof json, "{\"seq\":%" PRIu64 ",\"connections\":%" PRIu64 "}",
                         seq, conns);
        wsp_httpd_respond(c, 202, "application/json", NULL, json, (size_t)n, keep);
    }
}

/* Answers /metrics or /stats from what fill appended to the reused body buffer b. */
static void req_dump(wsp_admin_t *a, wsp_httpd_conn_t *c, int (*fill)(void *, wsp_buf_t *),
                     const char *ctype, wsp_buf_t *b, int keep)
{
    b->len = 0;
    b->oom = 0;
    int rv = fill(a->user, b);
    if (rv < 0 || b->oom) {
        wsp_httpd_respond_error(c, 500, rv < 0 ? "internal error" : "out of memory", keep);
        return;
    }
    wsp_httpd_respond(c, 200, ctype, NULL, b->data ? b->data : "", b->len, keep);
}

/* The httpd's on_request: a request that passed on_admin_head(), complete. */
static void on_admin_request(void *user, wsp_httpd_conn_t *c, const wsp_httpd_req_t *r,
                             wsp_buf_t *body, int keep)
{
    wsp_admin_t *a = user;
    const wsp_admin_ops_t *ops = a->ops;
    if (r->tag == ROUTE_PUBLISH)
        req_publish(a, c, r, body, keep);
    else if (r->tag == ROUTE_METRICS)
        req_dump(a, c, ops->metrics, "text/plain; version=0.0.4; charset=utf-8", body, keep);
    else if (r->tag == ROUTE_STATS)
        req_dump(a, c, ops->stats, "application/json", body, keep);
    else if (ops->healthy(a->user))
        wsp_httpd_respond(c, 200, "text/plain; charset=utf-8", NULL, "ok\n", 3, keep);
    else
        wsp_httpd_respond(c, 503, "text/plain; charset=utf-8", NULL, "draining\n", 9, keep);
}

static void admin_free(wsp_admin_t *a)
{
    OPENSSL_cleanse(a->token, sizeof a->token);
    free(a);
}

/* The httpd's on_closed: every connection is gone, nothing calls us any more. */
static void on_admin_closed(void *user) { admin_free(user); }

static const wsp_httpd_handler_t admin_handler = {
    .on_head = on_admin_head,
    .on_request = on_admin_request,
    .on_closed = on_admin_closed,
};

/* wsp_admin_start() on host:port, or wsp_admin_adopt() on fd when fd >= 0. */
static int admin_open(wsp_admin_t **out, uv_loop_t *loop, const char *host, int port, int fd,
                      const char *token, const wsp_admin_ops_t *ops, void *user)
{
    *out = NULL;
    size_t tlen = token ? strlen(token) : 0;
    int bad = ops == NULL || ops->publish == NULL || ops->metrics == NULL || ops->stats == NULL ||
              ops->healthy == NULL || (token && !wsp_config_token_ok(token, tlen));
    /* once per process; freed in on_admin_closed() */
    wsp_admin_t *a = bad ? NULL : calloc(1, sizeof *a);
    if (a == NULL) {
        if (fd >= 0)
            close(fd); /* adopted: ours even on failure */
        return bad ? -EINVAL : -ENOMEM;
    }
    a->ops = ops;
    a->user = user;
    a->token_len = tlen;
    if (tlen > 0)
        memcpy(a->token, token, tlen);
    int rv = fd >= 0 ? wsp_httpd_adopt(&a->http, loop, fd, &admin_handler, a)
                     : wsp_httpd_start(&a->http, loop, host, port, &admin_handler, a);
    if (rv < 0) {
        admin_free(a);
        return rv;
    }
    *out = a;
    return 0;
}

int wsp_admin_start(wsp_admin_t **out, uv_loop_t *loop, const char *host, int port,
                    const char *token, const wsp_admin_ops_t *ops, void *user)
{
    return admin_open(out, loop, host, port, -1, token, ops, user);
}

int wsp_admin_adopt(wsp_admin_t **out, uv_loop_t *loop, int fd, const char *token,
                    const wsp_admin_ops_t *ops, void *user)
{
    if (fd < 0) {
        *out = NULL;
        return -EBADF;
    }
    return admin_open(out, loop, NULL, 0, fd, token, ops, user);
}

int wsp_admin_fd(const wsp_admin_t *a) { return wsp_httpd_fd(a->http); }

int wsp_admin_port(const wsp_admin_t *a) { return wsp_httpd_port(a->http); }

void wsp_admin_stop(wsp_admin_t *a)
{
    if (a != NULL)
        wsp_httpd_stop(a->http); /* idempotent; a is freed once it has closed */
}
