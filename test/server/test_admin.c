#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* The admin API and its HTTP plumbing are compiled into the test, as h2o's unit tests do,
 * only to shrink httpd's timeouts (server/httpd_int.h) from 30 s and 10 s and to count its
 * connections; everything is driven through the public API. The static wsp_server library's
 * httpd.o, httpd_parse.o and admin.o are then never pulled in. The request timeout is also
 * the stalled-write deadline: the slow-reader tests hold a ~7 MiB answer mid-write, which a
 * loaded machine (other test runs on 2 cores) can stall for a few hundred ms, so it stays
 * well above that. */
#define WSP_HTTPD_IDLE_MS 400
#define WSP_HTTPD_REQUEST_MS 1500
#define WSP_HTTPD_LINGER_MS 300
#include "admin.c"
#include "httpd.c"
#include "httpd_parse.c"

/* ---- fake owner ---- */

typedef struct fake_s {
    int publish_calls, metrics_calls, stats_calls, healthy_calls;
    int publish_rv, metrics_rv, healthy;
    int channel_null;
    char channel[128];
    size_t channel_len;
    uint8_t *payload; /* copy of the last payload */
    size_t len;
    uint64_t seq, conns;
    const char *metrics, *stats;
    size_t metrics_repeat; /* metrics text appended this many times (for a big response) */
    /* POST /publish?user= (issue #16) */
    int user_calls, user_rv, user_sync; /* user_sync: answer before returning */
    char sub[80];
    size_t sub_len;
    uint64_t user_conns;
    wsp_pubwait_done_fn done; /* a deferred answer the test completes */
    void *done_ctx;
} fake_t;

static fake_t fake;

/* Keeps a copy of the last payload published. */
static void fake_keep(fake_t *f, const uint8_t *payload, size_t len)
{
    free(f->payload);
    f->payload = malloc(len + 1);
    assert_non_null(f->payload);
    memcpy(f->payload, payload, len);
    f->len = len;
}

static int fake_publish(void *user, const char *channel, size_t channel_len, const uint8_t *payload,
                        size_t len, uint64_t *seq, uint64_t *conns)
{
    fake_t *f = user;
    f->publish_calls++;
    f->channel_null = channel == NULL;
    f->channel_len = channel_len;
    if (channel)
        memcpy(f->channel, channel, channel_len < sizeof f->channel ? channel_len : 0);
    fake_keep(f, payload, len);
    if (f->publish_rv < 0)
        return f->publish_rv;
    *seq = ++f->seq;
    *conns = f->conns;
    return 0;
}

static int fake_metrics(void *user, wsp_buf_t *out)
{
    fake_t *f = user;
    f->metrics_calls++;
    if (f->metrics_rv < 0)
        return f->metrics_rv;
    for (size_t i = 0; i < (f->metrics_repeat ? f->metrics_repeat : 1); i++)
        wsp_buf_append(out, f->metrics, strlen(f->metrics));
    return 0;
}

static int fake_stats(void *user, wsp_buf_t *out)
{
    fake_t *f = user;
    f->stats_calls++;
    return wsp_buf_append(out, f->stats, strlen(f->stats));
}

static int fake_healthy(void *user)
{
    fake_t *f = user;
    f->healthy_calls++;
    return f->healthy;
}

static int fake_publish_user(void *user, const char *sub, size_t sub_len, const uint8_t *payload,
                             size_t len, wsp_pubwait_done_fn done, void *ctx)
{
    fake_t *f = user;
    f->user_calls++;
    assert_true(sub_len >= 1 && sub_len <= sizeof f->sub);
    memcpy(f->sub, sub, sub_len);
    f->sub_len = sub_len;
    fake_keep(f, payload, len);
    if (f->user_rv < 0)
        return f->user_rv;
    if (f->user_sync) {
        done(ctx, 0, f->user_conns, 1);
    } else {
        f->done = done;
        f->done_ctx = ctx;
    }
    return 0;
}

static const wsp_admin_ops_t fake_ops = {fake_publish, fake_metrics, fake_stats, fake_healthy,
                                         fake_publish_user};

/* ---- the server under test, on a loop this thread drives between socket calls ---- */

static uv_loop_t loop;
static wsp_admin_t *admin;
static int port;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits up to ms for the loop to have work, then runs what is ready. */
static void pump(int ms)
{
    struct pollfd p = {.fd = uv_backend_fd(&loop), .events = POLLIN};
    (void)poll(&p, 1, ms);
    uv_run(&loop, UV_RUN_NOWAIT);
}

/* Runs the loop until cond() holds or 10 s pass (a loaded machine may take long to accept):
 * the bounded wait every "the server has done X" below uses, never a fixed number of pumps.
 * Returns cond()'s last answer. */
static int pump_until(int (*cond)(void))
{
    for (int i = 0; i < 2000 && !cond(); i++)
        pump(5);
    return cond();
}

/* One admin connection, writing a queued answer and no longer reading behind it. */
static int one_conn_writing(void)
{
    wsp_httpd_conn_t *ac = admin->http->conns;
    return ac != NULL && ac->next == NULL && ac->writing && !ac->reading;
}

static void start_with(const char *token)
{
    memset(&fake, 0, sizeof fake);
    fake.healthy = 1;
    fake.conns = 3;
    fake.metrics = "# HELP x A thing.\n# TYPE x gauge\nx 1\n";
    fake.stats = "{\"connections\":3}";
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(wsp_admin_start(&admin, &loop, "127.0.0.1", 0, token, &fake_ops, &fake), 0);
    port = wsp_admin_port(admin);
    assert_true(port > 0);
}

static int setup(void **state)
{
    (void)state;
    start_with(NULL);
    return 0;
}

static int setup_token(void **state)
{
    (void)state;
    start_with("s3cret-token");
    return 0;
}

/* Stops, runs the loop dry, and asserts nothing is left: ASan reports any leak. */
static int teardown(void **state)
{
    (void)state;
    wsp_admin_stop(admin);
    admin = NULL;
    uint64_t deadline = now_ms() + 2000;
    while (uv_run(&loop, UV_RUN_NOWAIT) != 0 && now_ms() < deadline)
        pump(5);
    assert_int_equal(uv_loop_close(&loop), 0);
    free(fake.payload);
    fake.payload = NULL;
    return 0;
}

/* ---- a minimal blocking-free HTTP client ---- */

typedef struct cli_s {
    int fd;
    size_t len, cap;
    char *buf; /* grows: a test reads a ~7 MiB response */
} cli_t;

typedef struct resp_s {
    int status;
    char head[8192]; /* status line and headers, NUL-terminated */
    char *body;      /* NUL-terminated; free()d by resp_free() */
    size_t body_len;
} resp_t;

/* rcvbuf > 0 pins the client's receive buffer (SO_RCVBUF, before connect so that the
 * window scale agrees); 0 leaves the kernel's autotuning. */
static cli_t *cli_open_rcvbuf(int rcvbuf)
{
    cli_t *c = malloc(sizeof *c);
    assert_non_null(c);
    c->len = 0;
    c->cap = 4096;
    c->buf = malloc(c->cap);
    assert_non_null(c->buf);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c->fd >= 0);
    if (rcvbuf > 0)
        assert_int_equal(setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Completes from the kernel's backlog: the server accepts when the loop next runs. */
    assert_int_equal(connect(c->fd, (struct sockaddr *)&sin, sizeof sin), 0);
    pump(0);
    return c;
}

static cli_t *cli_open(void) { return cli_open_rcvbuf(0); }

/* The largest send buffer TCP autotuning gives a socket: net.ipv4.tcp_wmem's third field. */
static size_t tcp_wmem_max(void)
{
    unsigned long lo, def, max;
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r");
    assert_non_null(f);
    assert_int_equal(fscanf(f, "%lu %lu %lu", &lo, &def, &max), 3);
    fclose(f);
    return max;
}

#define METRICS_LINE "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde\n"

/* A client that does not read for now, and a /metrics answer that cannot fit in the kernel
 * between it and the server, so the server must queue the write and wait. The server's send
 * buffer grows up to tcp_wmem's maximum (4 MiB by default: a 4 MiB answer sometimes left in
 * one go, and then no queued write was ever seen); the client's receive buffer is pinned at
 * 1 MiB (what getsockopt then reports: doubled, capped by net.core.rmem_max), large enough
 * that reading the answer back takes few rounds, since all of it must arrive within
 * WSP_HTTPD_REQUEST_MS of the queued write (64 KiB made it miss that on a loaded machine).
 * The answer is what both hold and 1 MiB more (a send buffer's payload is less than its
 * size). */
static cli_t *cli_open_slow(void)
{
    cli_t *c = cli_open_rcvbuf(1 << 20);
    int rcv = 0;
    socklen_t len = sizeof rcv;
    assert_int_equal(getsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcv, &len), 0);
    fake.metrics = METRICS_LINE;
    fake.metrics_repeat = (tcp_wmem_max() + (size_t)rcv + (1 << 20)) / (sizeof METRICS_LINE - 1);
    return c;
}

static void cli_close(cli_t *c)
{
    close(c->fd);
    free(c->buf);
    free(c);
    pump(0);
}

/* Sends len bytes, running the server while the socket is full. Returns 0, or -errno when
 * the server closed on us (what a 413 does). */
static int cli_send(cli_t *c, const void *p, size_t len)
{
    const char *s = p;
    uint64_t deadline = now_ms() + 3000;
    while (len > 0) {
        ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            s += n;
            len -= (size_t)n;
            continue;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return -errno;
        assert_true(now_ms() < deadline);
        pump(5);
    }
    pump(0);
    return 0;
}

static void cli_sends(cli_t *c, const char *s) { assert_int_equal(cli_send(c, s, strlen(s)), 0); }

/* Reads what is available; returns bytes read, 0 at EOF, -EAGAIN when nothing yet. */
static ssize_t cli_recv_some(cli_t *c)
{
    if (c->cap - c->len < 4096) {
        c->cap *= 2;
        c->buf = realloc(c->buf, c->cap);
        assert_non_null(c->buf);
    }
    /* One byte is kept free so a test can NUL-terminate what arrived. */
    ssize_t n = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, MSG_DONTWAIT);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : -errno;
    c->len += (size_t)n;
    return n;
}

static const char *find_header(const char *head, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p && p[2] != '\0'; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, name, n) == 0 && p[2 + n] == ':')
            return p + 2 + n + 1 + strspn(p + 2 + n + 1, " ");
    return NULL;
}

/* Copies header name's value into out ("" when absent). */
static const char *header(const resp_t *r, const char *name, char *out, size_t cap)
{
    const char *v = find_header(r->head, name);
    if (v == NULL) {
        out[0] = '\0';
        return out;
    }
    size_t n = strcspn(v, "\r");
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
    return out;
}

/* Takes one complete response off c's buffer: 1 when done, 0 when more is needed. */
static int resp_take(cli_t *c, resp_t *r)
{
    const char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    size_t head_len = (size_t)(end - c->buf) + 4;
    assert_true(head_len < sizeof r->head);
    memcpy(r->head, c->buf, head_len);
    r->head[head_len] = '\0';
    assert_int_equal(sscanf(r->head, "HTTP/1.1 %d ", &r->status), 1);
    const char *cl = find_header(r->head, "Content-Length");
    size_t body_len = 0;
    if (r->status >= 200)
        assert_non_null(cl);
    if (cl)
        body_len = strtoul(cl, NULL, 10);
    if (c->len < head_len + body_len)
        return 0;
    r->body = malloc(body_len + 1);
    assert_non_null(r->body);
    memcpy(r->body, c->buf + head_len, body_len);
    r->body[body_len] = '\0';
    r->body_len = body_len;
    memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
    c->len -= head_len + body_len;
    return 1;
}

/* Reads one response (an interim 1xx counts as one), running the server meanwhile. */
static void cli_response(cli_t *c, resp_t *r)
{
    memset(r, 0, sizeof *r);
    uint64_t deadline = now_ms() + 3000;
    for (;;) {
        if (resp_take(c, r))
            return;
        ssize_t n = cli_recv_some(c);
        if (n == 0 || (n < 0 && n != -EAGAIN))
            fail_msg("connection ended before a full response (%zd); have %zu bytes", n, c->len);
        if (n == -EAGAIN) {
            assert_true(now_ms() < deadline);
            pump(5);
        }
    }
}

static void resp_free(resp_t *r)
{
    free(r->body);
    r->body = NULL;
}

/* 1 when the server closes c within ms (EOF or reset), reading past any data. */
static int cli_closed_within(cli_t *c, int ms)
{
    uint64_t deadline = now_ms() + (uint64_t)ms;
    while (now_ms() < deadline) {
        c->len = 0;
        ssize_t n = cli_recv_some(c);
        if (n == 0 || n == -ECONNRESET)
            return 1;
        if (n == -EAGAIN)
            pump(5);
    }
    return 0;
}

/* Sends one request on a fresh connection and returns its response. */
static void request(const char *req, resp_t *r)
{
    cli_t *c = cli_open();
    cli_sends(c, req);
    cli_response(c, r);
    cli_close(c);
}

/* A publish head; the body, if any, follows the macro as another literal. */
#define POST_PUBLISH(query, extra, len)                                                            \
    "POST /publish" query " HTTP/1.1\r\nHost: x\r\n" extra "Content-Length: " len "\r\n\r\n"

static void assert_json_error(const resp_t *r, int status, const char *error)
{
    char want[160], ct[128];
    snprintf(want, sizeof want, "{\"error\":\"%s\"}", error);
    assert_int_equal(r->status, status);
    assert_string_equal(r->body, want);
    assert_string_equal(header(r, "Content-Type", ct, sizeof ct), "application/json");
}

/* Connections the server holds open (reached through the included module). */
static int a_conns(void) { return (int)admin->http->nconns; }

/* ---- publish ---- */

static void test_publish_no_token(void **state)
{
    (void)state;
    resp_t r;
    request("POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", &r);
    char ct[128];
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"seq\":1,\"connections\":3}");
    assert_string_equal(header(&r, "Content-Type", ct, sizeof ct), "application/json");
    assert_int_equal(fake.publish_calls, 1);
    assert_true(fake.channel_null);
    assert_int_equal(fake.len, 5);
    assert_memory_equal(fake.payload, "hello", 5);
    resp_free(&r);

    request("POST /publish?x=1&channel=news.eu HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"seq\":2,\"connections\":3}");
    assert_false(fake.channel_null);
    assert_int_equal(fake.channel_len, 7);
    assert_memory_equal(fake.channel, "news.eu", 7);
    resp_free(&r);
}

static void test_publish_empty_body(void **state)
{
    (void)state;
    resp_t r;
    request("POST /publish HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_int_equal(r.status, 202);
    assert_int_equal(fake.publish_calls, 1);
    assert_int_equal(fake.len, 0);
    resp_free(&r);
}

static void test_publish_token(void **state)
{
    (void)state;
    resp_t r;
    char v[128];
    /* No header, and every wrong variant: 401 with the challenge, publish never called. */
    const char *bad[] = {
        "",
        "Authorization: Bearer s3cret-tokeN\r\n",  /* same length, last byte differs */
        "Authorization: Bearer x3cret-token\r\n",  /* same length, first byte differs */
        "Authorization: Bearer s3cret-toke\r\n",   /* a prefix */
        "Authorization: Bearer s3cret-token2\r\n", /* longer */
        "Authorization: Bearer \r\n",
        "Authorization: Basic s3cret-token\r\n",
        "Authorization: s3cret-token\r\n",
        "Authorization: Bearer s3cret-token\r\nAuthorization: Bearer s3cret-token\r\n",
    };
    for (size_t i = 0; i < WSP_ARRAY_SIZE(bad); i++) {
        char req[512];
        snprintf(req, sizeof req, "POST /publish HTTP/1.1\r\n%sContent-Length: 5\r\n\r\nhello",
                 bad[i]);
        request(req, &r);
        assert_json_error(&r, 401, "unauthorized");
        assert_string_equal(header(&r, "WWW-Authenticate", v, sizeof v), "Bearer");
        resp_free(&r);
    }
    assert_int_equal(fake.publish_calls, 0);

    request(POST_PUBLISH("", "Authorization: Bearer s3cret-token\r\n", "2") "ok", &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"seq\":1,\"connections\":3}");
    resp_free(&r);
    /* The scheme is case-insensitive (RFC 9110 §11.1); trailing blanks are not the token. */
    request(POST_PUBLISH("", "authorization: bearer   s3cret-token  \r\n", "2") "ok", &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    assert_int_equal(fake.publish_calls, 2);

    /* GET endpoints need no token. */
    request("GET /metrics HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    request("GET /healthz HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
}

static void test_publish_unauthorized_keeps_connection(void **state)
{
    (void)state;
    /* A short body after a 401 is read and dropped; the connection stays usable. */
    cli_t *c = cli_open();
    resp_t r;
    cli_sends(c, POST_PUBLISH("", "", "5") "hello");
    cli_response(c, &r);
    assert_int_equal(r.status, 401);
    resp_free(&r);
    cli_sends(c, POST_PUBLISH("", "Authorization: Bearer s3cret-token\r\n", "5") "hello");
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    cli_close(c);
}

static void test_publish_too_large(void **state)
{
    (void)state;
    resp_t r;
    /* Refused on the Content-Length alone: no body byte is sent, and the connection closes. */
    cli_t *c = cli_open();
    cli_sends(c, POST_PUBLISH("", "", "65537"));
    cli_response(c, &r);
    assert_json_error(&r, 413, "payload too large");
    char v[64];
    assert_string_equal(header(&r, "Connection", v, sizeof v), "close");
    resp_free(&r);
    assert_true(cli_closed_within(c, 1000));
    cli_close(c);

    /* Exactly the cap is fine. */
    char *big = malloc(65536);
    assert_non_null(big);
    memset(big, 'a', 65536);
    c = cli_open();
    cli_sends(c, POST_PUBLISH("", "", "65536"));
    assert_int_equal(cli_send(c, big, 65536), 0);
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    assert_int_equal(fake.len, 65536);
    resp_free(&r);
    cli_close(c);

    /* A chunked body is counted as it streams in. */
    c = cli_open();
    cli_sends(c, "POST /publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
    int rv = 0;
    for (int i = 0; i < 3 && rv == 0; i++) {
        cli_sends(c, "8000\r\n");
        rv = cli_send(c, big, 0x8000);
        if (rv == 0)
            rv = cli_send(c, "\r\n", 2);
    }
    cli_response(c, &r);
    assert_json_error(&r, 413, "payload too large");
    resp_free(&r);
    assert_true(cli_closed_within(c, 1000));
    cli_close(c);
    assert_int_equal(fake.publish_calls, 1);
    free(big);
}

static void test_publish_chunked(void **state)
{
    (void)state;
    resp_t r;
    request("POST /publish HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n",
            &r);
    assert_int_equal(r.status, 202);
    assert_int_equal(fake.len, 7);
    assert_memory_equal(fake.payload, "abcdefg", 7);
    resp_free(&r);
}

static void test_publish_length_required(void **state)
{
    (void)state;
    resp_t r;
    request("POST /publish HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_json_error(&r, 411, "length required");
    resp_free(&r);
    /* Content-Length with chunked is a smuggling vector: refused by the parser. */
    request("POST /publish HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
            "0\r\n\r\n",
            &r);
    assert_json_error(&r, 400, "bad request");
    resp_free(&r);
    assert_int_equal(fake.publish_calls, 0);
}

static void test_publish_invalid_utf8(void **state)
{
    (void)state;
    cli_t *c = cli_open();
    resp_t r;
    cli_sends(c, POST_PUBLISH("", "", "3") "a\xc0\xaf"); /* an overlong '/' */
    cli_response(c, &r);
    assert_json_error(&r, 400, "body is not valid UTF-8");
    resp_free(&r);
    cli_sends(c, POST_PUBLISH("", "", "4") "\xed\xa0\x80x"); /* a surrogate */
    cli_response(c, &r);
    assert_json_error(&r, 400, "body is not valid UTF-8");
    resp_free(&r);
    cli_sends(c, POST_PUBLISH("", "", "5") "caf\xc3\xa9");
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    assert_int_equal(fake.publish_calls, 1);
    cli_close(c);
}

/* Each of queries[0..n) (a publish's "?...") is answered 400 with error. */
static void assert_queries_400(const char *const *queries, size_t n, const char *error)
{
    for (size_t i = 0; i < n; i++) {
        char req[256];
        snprintf(req, sizeof req, "POST /publish%s HTTP/1.1\r\nContent-Length: 1\r\n\r\nx",
                 queries[i]);
        resp_t r;
        request(req, &r);
        assert_json_error(&r, 400, error);
        resp_free(&r);
    }
}

static void test_publish_bad_channel(void **state)
{
    (void)state;
    static const char *const queries[] = {
        "?channel=",        "?channel", "?channel=a%20b", "?channel=a,b", "?channel=a&channel=b",
        "?channel=\xc3\xa9"};
    assert_queries_400(queries, WSP_ARRAY_SIZE(queries), "invalid channel");
    char req[256] = "POST /publish?channel=";
    memset(req + strlen(req), 'c', 65);
    strcat(req, " HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
    resp_t r;
    request(req, &r);
    assert_json_error(&r, 400, "invalid channel");
    resp_free(&r);
    assert_int_equal(fake.publish_calls, 0);
}

/* A target without '?' reaches query_channel() with NULL: it used to compute NULL + 0, which
 * clang's UBSan aborts on (fuzz_admin's first finding; gcc's UBSan does not check it). */
static void test_query_channel_no_query(void **state)
{
    (void)state;
    const char *name = "x";
    size_t len = 1;
    assert_int_equal(query_channel(NULL, 0, &name, &len), 0);
    assert_null(name);
    assert_int_equal(len, 0);
    assert_int_equal(query_channel("a=1&channel=news", 16, &name, &len), 0);
    assert_int_equal(len, 4);
    assert_memory_equal(name, "news", 4);
}

static void test_publish_draining_and_errors(void **state)
{
    (void)state;
    resp_t r;
    fake.publish_rv = -EAGAIN;
    request(POST_PUBLISH("", "", "1") "x", &r);
    assert_json_error(&r, 503, "draining");
    resp_free(&r);
    fake.publish_rv = -EIO;
    request(POST_PUBLISH("", "", "1") "x", &r);
    assert_int_equal(r.status, 500);
    assert_string_equal(r.body, "{\"error\":\"i/o error\"}");
    resp_free(&r);
    assert_int_equal(fake.publish_calls, 2);
}

static void test_publish_expect_continue(void **state)
{
    (void)state;
    cli_t *c = cli_open();
    resp_t r;
    cli_sends(c, POST_PUBLISH("", "Expect: 100-continue\r\n", "3"));
    cli_response(c, &r);
    assert_int_equal(r.status, 100);
    resp_free(&r);
    cli_sends(c, "abc");
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    assert_memory_equal(fake.payload, "abc", 3);
    resp_free(&r);
    cli_close(c);
}

/* ---- POST /publish?user= (issue #16): answered when the delivery reports are in ---- */

static void test_publish_user_at_once(void **state)
{
    (void)state;
    resp_t r;
    fake.user_sync = 1;
    fake.user_conns = 5;
    /* Percent-decoded into any bytes: ':' '#' NUL and a UTF-8 byte pair. */
    request(POST_PUBLISH("?user=a%3Ab%23c%00%C3%A9+x", "", "2") "hi", &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"connections\":5,\"complete\":true}");
    resp_free(&r);
    assert_int_equal(fake.user_calls, 1);
    assert_int_equal(fake.publish_calls, 0);
    assert_int_equal(fake.sub_len, 10);
    assert_memory_equal(fake.sub, "a:b#c\0\xc3\xa9+x", 10);
    assert_memory_equal(fake.payload, "hi", 2);
    fake.user_rv = -EAGAIN;
    request(POST_PUBLISH("?user=u", "", "1") "x", &r);
    assert_json_error(&r, 503, "draining");
    resp_free(&r);
}

static int user_calls_want = 1;
static int user_called(void) { return fake.user_calls == user_calls_want && fake.done != NULL; }

/* The answer waits for the reports; a request pipelined behind it waits for that answer. */
static void test_publish_user_later(void **state)
{
    (void)state;
    cli_t *c = cli_open();
    resp_t r;
    cli_sends(c, POST_PUBLISH("?user=u1", "", "3") "one"
                                                   "GET /healthz HTTP/1.1\r\n\r\n");
    assert_true(pump_until(user_called));
    pump(20);
    assert_int_equal(cli_recv_some(c), -EAGAIN); /* nothing answered yet */
    assert_int_equal(fake.healthy_calls, 0);     /* nor the request behind it parsed */
    fake.done(fake.done_ctx, 0, 7, 0);           /* the deadline, with one report short */
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"connections\":7,\"complete\":false}");
    resp_free(&r);
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* The publisher closing first: 503. */
    fake.done = NULL;
    cli_sends(c, POST_PUBLISH("?user=u2", "", "3") "two");
    user_calls_want = 2;
    assert_true(pump_until(user_called));
    user_calls_want = 1;
    fake.done(fake.done_ctx, -ECANCELED, 0, 0);
    cli_response(c, &r);
    assert_json_error(&r, 503, "draining");
    resp_free(&r);
    cli_close(c);
}

static int no_admin_conn(void) { return a_conns() == 0; }

/* The client left before the answer: the late answer finds no one and frees its context. */
static void test_publish_user_client_gone(void **state)
{
    (void)state;
    cli_t *c = cli_open();
    cli_sends(c, POST_PUBLISH("?user=u1", "", "1") "x");
    assert_true(pump_until(user_called));
    cli_close(c);
    assert_true(pump_until(no_admin_conn));
    fake.done(fake.done_ctx, 0, 1, 1); /* ASan: nothing leaks, nothing is touched */
}

static void test_publish_user_bad(void **state)
{
    (void)state;
    static const char *const queries[] = {
        "?user=",    "?user",          "?user=%",           "?user=%4",
        "?user=%zz", "?user=a&user=b", "?user=a&x=1&user=a"};
    assert_queries_400(queries, WSP_ARRAY_SIZE(queries), "invalid user");
    char req[512] = "POST /publish?user=";
    for (int i = 0; i < 65; i++)
        strcat(req, i % 2 ? "%41" : "b"); /* 65 decoded bytes: one too many */
    strcat(req, " HTTP/1.1\r\nContent-Length: 1\r\n\r\nx");
    resp_t r;
    request(req, &r);
    assert_json_error(&r, 400, "invalid user");
    resp_free(&r);
    request(POST_PUBLISH("?user=a&channel=b", "", "1") "x", &r);
    assert_json_error(&r, 400, "channel and user exclude each other");
    resp_free(&r);
    assert_int_equal(fake.user_calls + fake.publish_calls, 0);
}

/* ---- GET endpoints, routing ---- */

static void test_metrics(void **state)
{
    (void)state;
    resp_t r;
    char ct[128];
    request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type", ct, sizeof ct),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_string_equal(r.body, fake.metrics);
    assert_int_equal(fake.metrics_calls, 1);
    resp_free(&r);

    fake.metrics_rv = -ENOMEM;
    request("GET /metrics HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 500);
    resp_free(&r);

    /* HEAD: the same headers, no body. */
    fake.metrics_rv = 0;
    cli_t *c = cli_open();
    cli_sends(c, "HEAD /metrics HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
    uint64_t deadline = now_ms() + 2000;
    while (memmem(c->buf, c->len, "ok\n", 3) == NULL && now_ms() < deadline)
        if (cli_recv_some(c) <= 0)
            pump(5);
    c->buf[c->len] = '\0';
    char want[64];
    snprintf(want, sizeof want, "Content-Length: %zu\r\n", strlen(fake.metrics));
    assert_non_null(strstr(c->buf, want));
    assert_null(strstr(c->buf, "# HELP")); /* no body after HEAD */
    assert_non_null(strstr(c->buf, "\r\n\r\nHTTP/1.1 200 OK\r\n"));
    cli_close(c);
}

static void test_healthz(void **state)
{
    (void)state;
    resp_t r;
    request("GET /healthz HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    resp_free(&r);
    fake.healthy = 0;
    request("GET /healthz HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 503);
    assert_string_equal(r.body, "draining\n");
    resp_free(&r);
}

static void test_stats(void **state)
{
    (void)state;
    resp_t r;
    char ct[128];
    request("GET /stats HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Content-Type", ct, sizeof ct), "application/json");
    assert_string_equal(r.body, "{\"connections\":3}");
    assert_int_equal(fake.stats_calls, 1);
    resp_free(&r);
}

static void test_not_found_and_method(void **state)
{
    (void)state;
    resp_t r;
    char v[64];
    request("GET /nope HTTP/1.1\r\n\r\n", &r);
    assert_json_error(&r, 404, "not found");
    resp_free(&r);
    request("GET /metrics/ HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 404);
    resp_free(&r);
    request("POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", &r);
    assert_json_error(&r, 405, "method not allowed");
    assert_string_equal(header(&r, "Allow", v, sizeof v), "GET, HEAD");
    resp_free(&r);
    request("GET /publish HTTP/1.1\r\n\r\n", &r);
    assert_json_error(&r, 405, "method not allowed");
    assert_string_equal(header(&r, "Allow", v, sizeof v), "POST");
    resp_free(&r);
    request("DELETE /stats HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 405);
    resp_free(&r);
    /* A query does not change the route. */
    request("GET /healthz?verbose=1 HTTP/1.1\r\n\r\n", &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    request("NOTAMETHOD / HTTP/1.1\r\n\r\n", &r);
    assert_json_error(&r, 400, "bad request");
    resp_free(&r);
    char big[3000] = "GET /";
    memset(big + 5, 'a', 2100);
    strcat(big, " HTTP/1.1\r\n\r\n");
    request(big, &r);
    assert_int_equal(r.status, 414);
    resp_free(&r);
}

/* ---- connection handling ---- */

static void test_keep_alive(void **state)
{
    (void)state;
    cli_t *c = cli_open();
    resp_t r;
    char v[64];
    cli_sends(c, "GET /healthz HTTP/1.1\r\n\r\n");
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Connection", v, sizeof v), "");
    resp_free(&r);
    cli_sends(c, POST_PUBLISH("", "", "1") "x");
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    resp_free(&r);
    cli_sends(c, "GET /stats HTTP/1.1\r\n\r\n");
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    assert_int_equal(a_conns(), 1);
    cli_close(c);
}

static void test_pipelined(void **state)
{
    (void)state;
    cli_t *c = cli_open();
    resp_t r;
    cli_sends(c, POST_PUBLISH("", "", "3") "one" POST_PUBLISH("", "",
                                                              "3") "two"
                                                                   "GET /healthz HTTP/1.1\r\n\r\n");
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"seq\":1,\"connections\":3}");
    resp_free(&r);
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    assert_string_equal(r.body, "{\"seq\":2,\"connections\":3}");
    resp_free(&r);
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    resp_free(&r);
    assert_memory_equal(fake.payload, "two", 3);
    cli_close(c);
}

static void test_pipelined_behind_slow_reader(void **state)
{
    (void)state;
    /* A metrics answer larger than the kernel can hold cannot leave in one try_write, so the
     * requests behind it must wait for the queued write and still come out in order. */
    cli_t *c = cli_open_slow();
    resp_t r;
    cli_sends(c, "GET /metrics HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n");
    /* The server writes what the socket takes, then waits: the queued-write path, not one
     * try_write, with the pipelined request held back. */
    assert_true(pump_until(one_conn_writing));
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, (sizeof METRICS_LINE - 1) * fake.metrics_repeat);
    resp_free(&r);
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok\n");
    resp_free(&r);
    cli_close(c);
}

static void test_byte_by_byte(void **state)
{
    (void)state;
    const char *req = POST_PUBLISH("?channel=time", "X-Long-Header: aaaaaaaaaaaaaa\r\n",
                                   "11") "hello world"
                                         "GET /healthz HTTP/1.1\r\n\r\n";
    cli_t *c = cli_open();
    resp_t r;
    for (size_t i = 0; req[i] != '\0'; i++) {
        assert_int_equal(cli_send(c, req + i, 1), 0);
        pump(0);
    }
    cli_response(c, &r);
    assert_int_equal(r.status, 202);
    assert_int_equal(fake.len, 11);
    assert_memory_equal(fake.payload, "hello world", 11);
    assert_memory_equal(fake.channel, "time", 4);
    resp_free(&r);
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cli_close(c);
}

static void test_connection_close(void **state)
{
    (void)state;
    cli_t *c = cli_open();
    resp_t r;
    char v[64];
    /* The request after the closing one is never answered. */
    cli_sends(c, "GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\nGET /stats HTTP/1.1\r\n\r\n");
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    assert_string_equal(header(&r, "Connection", v, sizeof v), "close");
    resp_free(&r);
    assert_true(cli_closed_within(c, 1000));
    assert_int_equal(fake.stats_calls, 0);
    cli_close(c);

    /* HTTP/1.0 closes by default, stays with keep-alive. */
    c = cli_open();
    cli_sends(c, "GET /healthz HTTP/1.0\r\n\r\n");
    cli_response(c, &r);
    assert_string_equal(header(&r, "Connection", v, sizeof v), "close");
    resp_free(&r);
    assert_true(cli_closed_within(c, 1000));
    cli_close(c);
    c = cli_open();
    cli_sends(c, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cli_response(c, &r);
    assert_string_equal(header(&r, "Connection", v, sizeof v), "keep-alive");
    resp_free(&r);
    cli_sends(c, "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    cli_response(c, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    cli_close(c);
}

/* A GET whose head is exactly len bytes. */
static char *head_of(size_t len)
{
    const char *pre = "GET /healthz HTTP/1.1\r\nX-Pad: ";
    char *s = malloc(len + 1);
    assert_non_null(s);
    size_t fixed = strlen(pre) + 4; /* the pad header's CRLF and the blank line */
    assert_true(len > fixed);
    memcpy(s, pre, strlen(pre));
    memset(s + strlen(pre), 'p', len - fixed);
    memcpy(s + len - 4, "\r\n\r\n", 5);
    return s;
}

static void test_header_cap(void **state)
{
    (void)state;
    resp_t r;
    char *s = head_of(8192);
    request(s, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    free(s);
    s = head_of(8193);
    request(s, &r);
    assert_json_error(&r, 431, "request header fields too large");
    resp_free(&r);
    free(s);
    /* Sent in pieces too, and far over the cap: answered as soon as it is crossed. */
    s = head_of(40000);
    cli_t *c = cli_open();
    (void)cli_send(c, s, 9000);
    cli_response(c, &r);
    assert_int_equal(r.status, 431);
    resp_free(&r);
    assert_true(cli_closed_within(c, 1000));
    cli_close(c);
    free(s);
}

static void test_max_connections(void **state)
{
    (void)state;
    cli_t *c[WSP_HTTPD_MAX_CONNS + 1];
    resp_t r;
    for (int i = 0; i < WSP_HTTPD_MAX_CONNS; i++)
        c[i] = cli_open();
    for (int i = 0; i < 10; i++)
        pump(1);
    assert_int_equal(a_conns(), WSP_HTTPD_MAX_CONNS);
    c[WSP_HTTPD_MAX_CONNS] = cli_open();
    assert_true(cli_closed_within(c[WSP_HTTPD_MAX_CONNS], 1000));
    cli_close(c[WSP_HTTPD_MAX_CONNS]);
    /* The first 64 still work. */
    cli_sends(c[0], "GET /healthz HTTP/1.1\r\n\r\n");
    cli_response(c[0], &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    /* One leaves, one more fits. */
    cli_close(c[1]);
    for (int i = 0; i < 10 && a_conns() == WSP_HTTPD_MAX_CONNS; i++)
        pump(1);
    c[1] = cli_open();
    cli_sends(c[1], "GET /healthz HTTP/1.1\r\n\r\n");
    cli_response(c[1], &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    for (int i = 0; i < WSP_HTTPD_MAX_CONNS; i++)
        cli_close(c[i]);
}

static void test_timeouts(void **state)
{
    (void)state;
    /* Idle keep-alive connection: closed after WSP_HTTPD_IDLE_MS, not before. */
    cli_t *c = cli_open();
    resp_t r;
    cli_sends(c, "GET /healthz HTTP/1.1\r\n\r\n");
    cli_response(c, &r);
    resp_free(&r);
    uint64_t t0 = now_ms();
    assert_true(cli_closed_within(c, 3000));
    assert_true(now_ms() - t0 >= WSP_HTTPD_IDLE_MS - 100); /* loop time is cached */
    cli_close(c);

    /* A request trickling in must complete within WSP_HTTPD_REQUEST_MS of its first byte,
     * however often bytes arrive. */
    c = cli_open();
    t0 = now_ms();
    cli_sends(c, "GET /healthz HTTP/1.1\r\n");
    int closed = 0;
    while (!closed && now_ms() - t0 < 3000) {
        if (cli_send(c, "X: y\r\n", 6) < 0)
            break;
        closed = cli_closed_within(c, 50);
    }
    assert_true(closed);
    assert_true(now_ms() - t0 < WSP_HTTPD_REQUEST_MS + 2000); /* slack for a loaded box */
    cli_close(c);
}

/* Three admin connections, exactly one of them writing. */
static int three_conns_one_writing(void)
{
    int n = 0, writing = 0;
    for (wsp_httpd_conn_t *ac = admin->http->conns; ac; ac = ac->next, n++)
        writing += ac->writing;
    return n == 3 && writing == 1;
}

static void test_stop_with_connections(void **state)
{
    (void)state;
    /* Mid-request, idle, and mid-write (an answer the client never reads) at once. */
    cli_t *idle = cli_open(), *partial = cli_open(), *slow = cli_open_slow();
    cli_sends(partial, "POST /publish HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc");
    cli_sends(slow, "GET /metrics HTTP/1.1\r\n\r\n");
    assert_true(pump_until(three_conns_one_writing));
    teardown(state);  /* asserts uv_loop_close() == 0; ASan checks nothing leaked */
    start_with(NULL); /* a fresh loop for the helpers below and the group teardown */
    assert_true(cli_closed_within(idle, 1000));
    assert_true(cli_closed_within(partial, 1000));
    assert_true(cli_closed_within(slow, 1000));
    cli_close(idle);
    cli_close(partial);
    cli_close(slow);
}

/* ---- start and token file ---- */

static void test_start_errors(void **state)
{
    (void)state;
    uv_loop_t l;
    wsp_admin_t *a = NULL;
    assert_int_equal(uv_loop_init(&l), 0);
    assert_int_equal(wsp_admin_start(&a, &l, "not-an-ip", 0, NULL, &fake_ops, NULL), -EINVAL);
    assert_null(a);
    assert_int_equal(wsp_admin_start(&a, &l, "localhost", 0, NULL, &fake_ops, NULL), -EINVAL);
    assert_int_equal(wsp_admin_start(&a, &l, "127.0.0.1", 70000, NULL, &fake_ops, NULL), -EINVAL);
    assert_int_equal(wsp_admin_start(&a, &l, "127.0.0.1", port, NULL, &fake_ops, NULL),
                     -EADDRINUSE);
    assert_int_equal(wsp_admin_start(&a, &l, "127.0.0.1", 0, "", &fake_ops, NULL), -EINVAL);
    assert_int_equal(wsp_admin_start(&a, &l, "127.0.0.1", 0, "a b", &fake_ops, NULL), -EINVAL);
    char tok[WSP_CONFIG_TOKEN_MAX + 2];
    memset(tok, 't', sizeof tok);
    tok[WSP_CONFIG_TOKEN_MAX + 1] = '\0';
    assert_int_equal(wsp_admin_start(&a, &l, "127.0.0.1", 0, tok, &fake_ops, NULL), -EINVAL);
    tok[WSP_CONFIG_TOKEN_MAX] = '\0';
    assert_int_equal(wsp_admin_start(&a, &l, "::1", 0, tok, &fake_ops, NULL), 0);
    assert_true(wsp_admin_port(a) > 0);
    wsp_admin_stop(a);
    wsp_admin_stop(NULL);
    assert_int_equal(uv_run(&l, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&l), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_publish_no_token, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_empty_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_token, setup_token, teardown),
        cmocka_unit_test_setup_teardown(test_publish_unauthorized_keeps_connection, setup_token,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_publish_too_large, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_chunked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_length_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_invalid_utf8, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_bad_channel, setup, teardown),
        cmocka_unit_test(test_query_channel_no_query),
        cmocka_unit_test_setup_teardown(test_publish_draining_and_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_expect_continue, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_user_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_user_later, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_user_client_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_publish_user_bad, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_healthz, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_found_and_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_keep_alive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelined_behind_slow_reader, setup, teardown),
        cmocka_unit_test_setup_teardown(test_byte_by_byte, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connection_close, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_connections, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
