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
    const char *v;
    size_t vlen;
    int n = wsp_channels_query_param(q, len, "channel", &v, &vlen);
    *name = NULL;
    *nlen = 0;
    if (n == 0)
        return 0;
    if (n > 1 || !wsp_channel_valid(v, vlen)) /* also "channel" without a value */
        return -EINVAL;
    *name = v;
    *nlen = vlen;
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Finds `user` in the query q[0..len) and percent-decodes it into out[0..WSP_ADMIN_USER_MAX]
 * (a sub may hold any bytes; '+' stays '+'): 0 with *olen 0 when absent, 1 when found,
 * -EINVAL when repeated, empty, longer than WSP_ADMIN_USER_MAX decoded bytes or badly
 * encoded. */
static int query_user(const char *q, size_t len, char *out, size_t *olen)
{
    const char *v;
    size_t vlen;
    int found = wsp_channels_query_param(q, len, "user", &v, &vlen);
    *olen = 0;
    if (found == 0)
        return 0;
    if (found > 1 || vlen == 0)
        return -EINVAL; /* repeated, "user" or "user=" */
    size_t n = 0;
    for (size_t j = 0; j < vlen; j++) {
        int c = (unsigned char)v[j];
        if (c == '%') {
            int hi = j + 2 < vlen ? hexval(v[j + 1]) : -1;
            int lo = j + 2 < vlen ? hexval(v[j + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -EINVAL;
            c = hi * 16 + lo;
            j += 2;
        }
        if (n == WSP_ADMIN_USER_MAX)
            return -EINVAL;
        out[n++] = (char)c;
    }
    *olen = n;
    return 1;
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
    size_t chlen, ulen;
    char sub[WSP_ADMIN_USER_MAX];
    int has_user = 0;
    if (r->method != HTTP_POST)
        wsp_httpd_fail(r, 405, "method not allowed");
    else if (a->token_len > 0 && !req_authorized(a, r))
        wsp_httpd_fail(r, 401, "unauthorized"); /* before any other answer: no probing */
    else if (query_channel(query, query_len, &ch, &chlen) < 0)
        wsp_httpd_fail(r, 400, "invalid channel");
    else if ((has_user = query_user(query, query_len, sub, &ulen)) < 0)
        wsp_httpd_fail(r, 400, "invalid user");
    else if (has_user && ch != NULL)
        wsp_httpd_fail(r, 400, "channel and user exclude each other");
    else if (has_user && a->ops->publish_user == NULL)
        wsp_httpd_fail(r, 400, "no user publishing here");
    else if (!r->has_length && !r->chunked)
        wsp_httpd_fail(r, 411, "length required");
    else if (r->has_length && r->content_length > WSP_HTTPD_BODY_MAX)
        wsp_httpd_fail(r, 413, "payload too large"); /* now, not after 64 KiB of it arrived */
    else
        r->want_body = 1;
}

/* A publish that failed with rv: 503 while draining, else 500 with the error's text. */
static void respond_publish_error(wsp_httpd_conn_t *c, int rv, int keep)
{
    if (rv == -EAGAIN) {
        wsp_httpd_respond_error(c, 503, "draining", keep);
        return;
    }
    char err[96];
    if (uv_strerror_r(rv, err, sizeof err) == NULL)
        snprintf(err, sizeof err, "error %d", rv);
    for (char *s = err; *s; s++)
        if (*s == '"' || *s == '\\' || (unsigned char)*s < 0x20)
            *s = ' '; /* stays a JSON string whatever the message holds */
    wsp_httpd_respond_error(c, 500, err, keep);
}

/* A POST /publish?user= waiting for its delivery reports: which request to answer. */
typedef struct admin_wait_s {
    wsp_admin_t *a;
    uint64_t id; /* wsp_httpd_defer()'s */
    int keep;
} admin_wait_t;

static void on_admin_user_done(void *ctx, int status, uint64_t conns, int complete)
{
    admin_wait_t *w = ctx;
    wsp_httpd_conn_t *c = wsp_httpd_find(w->a->http, w->id);
    if (c != NULL && status < 0) {
        wsp_httpd_respond_error(c, 503, "draining", w->keep);
    } else if (c != NULL) {
        char json[96];
        int n = snprintf(json, sizeof json, "{\"connections\":%" PRIu64 ",\"complete\":%s}", conns,
                         complete ? "true" : "false");
        wsp_httpd_respond(c, 202, "application/json", NULL, json, (size_t)n, w->keep);
    }
    free(w);
}

/* POST /publish?user=: answered when the delivery reports are in (issue #16). */
static void req_publish_user(wsp_admin_t *a, wsp_httpd_conn_t *c, const char *sub, size_t sublen,
                             const uint8_t *body, size_t len, int keep)
{
    /* One per user publish, freed when it is answered. */
    admin_wait_t *w = malloc(sizeof(*w));
    if (w == NULL) {
        wsp_httpd_respond_error(c, 500, "out of memory", keep);
        return;
    }
    w->a = a;
    w->keep = keep;
    w->id = wsp_httpd_defer(c); /* before publishing: the answer may come at once */
    int rv = a->ops->publish_user(a->user, sub, sublen, body, len, on_admin_user_done, w);
    if (rv < 0) {
        free(w);
        respond_publish_error(c, rv, keep);
    }
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
    size_t chlen, ulen;
    char sub[WSP_ADMIN_USER_MAX];
    req_target(r, &path_len, &query, &query_len);
    /* Both validated in on_admin_head(). */
    if (query_user(query, query_len, sub, &ulen) == 1) {
        req_publish_user(a, c, sub, ulen, body, b->len, keep);
        return;
    }
    (void)query_channel(query, query_len, &ch, &chlen);
    uint64_t seq = 0, conns = 0;
    int rv = a->ops->publish(a->user, ch, chlen, body, b->len, &seq, &conns);
    if (rv < 0) {
        respond_publish_error(c, rv, keep);
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
