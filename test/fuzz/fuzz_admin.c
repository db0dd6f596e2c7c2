/* Fuzzes the admin HTTP API (server/admin.c over server/httpd.c) without a socket, through
 * httpd's transport seam (wsp_httpd_open(), server/httpd.h): one persistent loop holds two
 * admin servers (one with a bearer token, one without; their listeners are never used) and
 * fake ops; each input opens one connection over an in-memory transport and feeds it the
 * stream in pieces, then the client's EOF, while the transport plays the peer: it takes
 * what the server writes through a window of the input's choosing (so writes queue and
 * reading pauses, as on a slow network), completes writes, shutdowns and the close in
 * libuv's order, and may let a deadline pass between pieces. The parsing, keep-alive,
 * pipelining, limits, deadlines and routes are the code that serves sockets.
 * Input: [split control (fuzz.h)][ops control (OPS_*)][client byte stream].
 *
 * Checked beyond memory safety: what the client reads is a sequence of complete
 * "HTTP/1.1 NNN" responses with a status admin.c can give in this mode, the reason it gives
 * for it, one Content-Length that frames the body (or no body after a HEAD), and nothing after
 * a "Connection: close" (a deadline may cut the last one short); publish() only sees valid
 * UTF-8 of at most 64 KiB, a valid channel that the request named, and, on the server with a
 * token, no more calls than the input holds tokens; publish_user() a user id of 1..64 bytes;
 * every successful publish is answered 202
 * unless a deadline cut it off; the server never stalls (every step delivers input, completes
 * an operation, or the connection is closed), the client's EOF always closes the connection,
 * and then it is freed (connection count 0, no handle left but the listeners), so nothing
 * leaks from one input to the next. test/server/test_admin.c covers what only a socket has:
 * accepting, refusing past the connection cap, libuv's callbacks. */
#include "fuzz.h"

/* Compiled in, as test/server/test_admin.c does, to read the connection count and reference
 * count (a->http->nconns, a->http->refs) without a test-only accessor, and to let a deadline
 * pass (on_httpd_timer()) without waiting for it. */
#include "admin.c"
#include "httpd.c"
#include "httpd_parse.c"

#define FUZZ_TOKEN "fuzz-token"
#define FUZZ_BIG_METRICS 32768
#define FUZZ_RBUF (1u << 17) /* received bytes not yet checked: one response and a bit */

/* The ops control byte: how the fake owner answers, and which server the client talks to. */
enum {
    OPS_DRAINING = 1 << 0,       /* healthy() is 0: /healthz 503 */
    OPS_PUBLISH_EAGAIN = 1 << 1, /* publish() says draining: 503 */
    OPS_PUBLISH_FAIL = 1 << 2,   /* publish() fails: 500 */
    OPS_METRICS_FAIL = 1 << 3,   /* 500 */
    OPS_STATS_FAIL = 1 << 4,     /* 500 */
    OPS_BIG = 1 << 5,            /* 32 KiB /metrics, the peer takes 1..4096 bytes a step */
    OPS_NO_TOKEN = 1 << 6,       /* the server without a token */
    OPS_DEADLINES = 1 << 7,      /* an armed deadline may pass between steps */
};

static const char metrics_text[] = "# HELP wsp_fuzz A thing.\n# TYPE wsp_fuzz gauge\nwsp_fuzz 1\n";
static const char stats_text[] = "{\"connections\":3}";
static char big_metrics[FUZZ_BIG_METRICS];

/* What the current input may cause, and what it caused. */
typedef struct fake_s {
    unsigned mode;
    const uint8_t *in; /* the client stream */
    size_t in_len;
    size_t tokens; /* occurrences of the token in it, CR, LF, SP and HT removed (folding) */
    int has_head;  /* "HEAD" occurs: a response may come without its body */
    unsigned publish_ok;
} fake_t;

static fake_t fake;
static uv_loop_t loop;
static wsp_admin_t *servers[2]; /* [0] with FUZZ_TOKEN, [1] without */

/* What every publish, to a channel or a user, must satisfy, and how the fake answers it:
 * 0 (counted as accepted) or the mode's error. */
static int fake_accept(wsp_admin_t **srv, const uint8_t *payload, size_t len)
{
    WSP_FUZZ_CHECK(payload != NULL && len <= WSP_HTTPD_BODY_MAX);
    WSP_FUZZ_CHECK(wsp_utf8_valid(payload, len));
    if (srv == &servers[0]) /* each authorized request carried the token once */
        WSP_FUZZ_CHECK(fake.tokens-- > 0);
    if (fake.mode & OPS_PUBLISH_EAGAIN)
        return -EAGAIN;
    if (fake.mode & OPS_PUBLISH_FAIL)
        return -EIO;
    fake.publish_ok++;
    return 0;
}

static int fake_publish(void *user, const char *channel, size_t channel_len, const uint8_t *payload,
                        size_t len, uint64_t *seq, uint64_t *conns)
{
    if (channel == NULL) {
        WSP_FUZZ_CHECK(channel_len == 0);
    } else {
        WSP_FUZZ_CHECK(wsp_channel_valid(channel, channel_len));
        char want[sizeof "channel=" + WSP_CHANNEL_NAME_MAX];
        memcpy(want, "channel=", 8);
        memcpy(want + 8, channel, channel_len); /* valid: at most 64 bytes */
        WSP_FUZZ_CHECK(memmem(fake.in, fake.in_len, want, 8 + channel_len) != NULL);
    }
    int rv = fake_accept(user, payload, len);
    if (rv < 0)
        return rv;
    *seq = fake.publish_ok;
    *conns = 3;
    return 0;
}

static int fake_metrics(void *user, wsp_buf_t *out)
{
    (void)user;
    if (fake.mode & OPS_METRICS_FAIL)
        return -EIO;
    if (fake.mode & OPS_BIG)
        return wsp_buf_append(out, big_metrics, sizeof big_metrics);
    return wsp_buf_append(out, metrics_text, sizeof metrics_text - 1);
}

static int fake_stats(void *user, wsp_buf_t *out)
{
    (void)user;
    if (fake.mode & OPS_STATS_FAIL)
        return -ENOMEM;
    return wsp_buf_append(out, stats_text, sizeof stats_text - 1);
}

static int fake_healthy(void *user)
{
    (void)user;
    return !(fake.mode & OPS_DRAINING);
}

/* POST /publish?user=: answered at once, as a publisher with every report in would. */
static int fake_publish_user(void *user, const char *sub, size_t sub_len, const uint8_t *payload,
                             size_t len, wsp_pubwait_done_fn done, void *ctx)
{
    WSP_FUZZ_CHECK(sub != NULL && sub_len >= 1 && sub_len <= WSP_ADMIN_USER_MAX);
    int rv = fake_accept(user, payload, len);
    if (rv == 0)
        done(ctx, 0, 3, 1);
    return rv;
}

static const wsp_admin_ops_t fake_ops = {fake_publish, fake_metrics, fake_stats, fake_healthy,
                                         fake_publish_user};

/* ---- the response checker ---- */

typedef struct client_s {
    int eof;
    int cut;       /* a deadline passed: the last response may be cut short at EOF */
    int closed;    /* a "Connection: close" response was read: nothing may follow */
    unsigned n202; /* publishes answered */
    size_t len;    /* bytes in rbuf */
    uint8_t *rbuf; /* FUZZ_RBUF bytes */
} client_t;

/* 1 when admin.c can answer with status in the current mode. */
WSP_FUZZ_HARNESS static int status_expected(int status)
{
    static const int always[] = {100, 200, 400, 404, 405, 411, 413, 414, 431};
    unsigned m = fake.mode;
    if (status == 202)
        return !(m & (OPS_PUBLISH_EAGAIN | OPS_PUBLISH_FAIL));
    if (status == 401)
        return !(m & OPS_NO_TOKEN);
    if (status == 500) /* only from a failing owner: the fuzzer cannot make a malloc fail */
        return (m & (OPS_PUBLISH_FAIL | OPS_METRICS_FAIL | OPS_STATS_FAIL)) != 0;
    if (status == 503)
        return (m & (OPS_DRAINING | OPS_PUBLISH_EAGAIN)) != 0;
    for (size_t i = 0; i < WSP_ARRAY_SIZE(always); i++)
        if (status == always[i])
            return 1;
    return 0;
}

WSP_FUZZ_HARNESS static int bytes_are(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

WSP_FUZZ_HARNESS static int all_digits(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return n > 0;
}

/* Checks a body sent with status: one of the few the fake owner and admin.c can give. */
WSP_FUZZ_HARNESS static void check_body(int status, const uint8_t *b, size_t n)
{
    if (status == 200) {
        const char *m = metrics_text;
        size_t mlen = sizeof metrics_text - 1;
        if (fake.mode & OPS_BIG) {
            m = big_metrics;
            mlen = sizeof big_metrics;
        }
        WSP_FUZZ_CHECK(bytes_are(b, n, "ok\n") || bytes_are(b, n, stats_text) ||
                       (n == mlen && memcmp(b, m, n) == 0));
    } else if (status == 202 && bytes_are(b, n, "{\"connections\":3,\"complete\":true}")) {
        /* a user publish (fake_publish_user's answer) */
    } else if (status == 202) {
        static const char pre[] = "{\"seq\":", post[] = ",\"connections\":3}";
        size_t pl = sizeof pre - 1, ql = sizeof post - 1;
        WSP_FUZZ_CHECK(n > pl + ql && memcmp(b, pre, pl) == 0 && memcmp(b + n - ql, post, ql) == 0);
        WSP_FUZZ_CHECK(all_digits(b + pl, n - pl - ql));
    } else if (status == 503 && bytes_are(b, n, "draining\n")) {
        WSP_FUZZ_CHECK(fake.mode & OPS_DRAINING);
    } else { /* {"error":"..."} */
        WSP_FUZZ_CHECK(n >= 13 && memcmp(b, "{\"error\":\"", 10) == 0 &&
                       memcmp(b + n - 2, "\"}", 2) == 0);
    }
}

/* Checks one response at p[0..n); returns its length, or 0 when more bytes are needed. */
WSP_FUZZ_HARNESS static size_t check_response(const uint8_t *p, size_t n, int at_eof, client_t *cl)
{
    static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
    WSP_FUZZ_CHECK(!cl->closed); /* nothing after Connection: close */
    const uint8_t *end = memmem(p, n < 1024 ? n : 1024, "\r\n\r\n", 4);
    if (end == NULL) {
        WSP_FUZZ_CHECK(n < 1024 && !at_eof); /* our heads are short; no truncated one */
        return 0;
    }
    size_t head = (size_t)(end - p) + 4;
    WSP_FUZZ_CHECK(head > 13 && memcmp(p, "HTTP/1.1 ", 9) == 0 && all_digits(p + 9, 3) &&
                   p[12] == ' ');
    int status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    WSP_FUZZ_CHECK(status_expected(status));
    const char *reason = status == 100 ? "Continue" : status_reason(status);
    size_t rlen = strlen(reason);
    WSP_FUZZ_CHECK(head >= 13 + rlen + 2 && memcmp(p + 13, reason, rlen) == 0 &&
                   memcmp(p + 13 + rlen, "\r\n", 2) == 0);
    if (status == 100) {
        WSP_FUZZ_CHECK(bytes_are(p, head, cont));
        return head;
    }
    unsigned n_len = 0, n_type = 0, n_cache = 0, n_conn = 0, n_auth = 0, n_allow = 0;
    size_t clen = 0;
    int says_close = 0;
    for (size_t i = 13 + rlen + 2; i < head - 2;) { /* one "Name: value\r\n" per round */
        const uint8_t *eol = memmem(p + i, head - i, "\r\n", 2);
        size_t ll = (size_t)(eol - (p + i));
        const uint8_t *colon = memchr(p + i, ':', ll);
        WSP_FUZZ_CHECK(colon != NULL && colon + 1 < eol && colon[1] == ' ');
        size_t nl = (size_t)(colon - (p + i));
        const uint8_t *v = colon + 2;
        size_t vl = ll - nl - 2;
        if (nl == 14 && memcmp(p + i, "Content-Length", 14) == 0) {
            WSP_FUZZ_CHECK(all_digits(v, vl) && vl <= 6);
            for (size_t k = 0; k < vl; k++)
                clen = clen * 10 + (size_t)(v[k] - '0');
            n_len++;
        } else if (nl == 12 && memcmp(p + i, "Content-Type", 12) == 0) {
            n_type++;
        } else if (nl == 13 && memcmp(p + i, "Cache-Control", 13) == 0) {
            n_cache++;
        } else if (nl == 10 && memcmp(p + i, "Connection", 10) == 0) {
            WSP_FUZZ_CHECK(bytes_are(v, vl, "close") || bytes_are(v, vl, "keep-alive"));
            says_close = bytes_are(v, vl, "close");
            n_conn++;
        } else if (nl == 16 && memcmp(p + i, "WWW-Authenticate", 16) == 0) {
            WSP_FUZZ_CHECK(bytes_are(v, vl, "Bearer"));
            n_auth++;
        } else if (nl == 5 && memcmp(p + i, "Allow", 5) == 0) {
            WSP_FUZZ_CHECK(bytes_are(v, vl, "POST") || bytes_are(v, vl, "GET, HEAD"));
            n_allow++;
        } else {
            WSP_FUZZ_CHECK(!"unexpected response header");
        }
        i += ll + 2;
    }
    WSP_FUZZ_CHECK(n_len == 1 && n_type == 1 && n_cache == 1 && n_conn <= 1);
    WSP_FUZZ_CHECK(n_auth == (status == 401) && n_allow == (status == 405));
    int bodiless = 0;
    if (clen > 0) {
        if (n == head && !at_eof)
            return 0; /* the body, or the next response, is still to come */
        /* No body of ours starts with 'H': an 'H' (or the end) here is the next response
         * after a HEAD's bodiless one. */
        if (n == head || p[head] == 'H') {
            WSP_FUZZ_CHECK(fake.has_head);
            bodiless = 1;
            clen = 0;
        }
    }
    if (n - head < clen) {
        WSP_FUZZ_CHECK(!at_eof); /* truncated */
        WSP_FUZZ_CHECK(head + clen <= FUZZ_RBUF);
        return 0;
    }
    if (!bodiless)
        check_body(status, p + head, clen);
    cl->n202 += status == 202;
    cl->closed = says_close;
    return head + clen;
}

/* Checks and drops every complete response in cl->rbuf; at EOF nothing may remain. */
WSP_FUZZ_HARNESS static void check_responses(client_t *cl)
{
    size_t off = 0, used;
    int at_eof = cl->eof && !cl->cut;
    while (off < cl->len && (used = check_response(cl->rbuf + off, cl->len - off, at_eof, cl)))
        off += used;
    memmove(cl->rbuf, cl->rbuf + off, cl->len - off);
    cl->len -= off;
    WSP_FUZZ_CHECK(!at_eof || cl->len == 0);
}

/* ---- the peer: an in-memory transport ---- */

/* One connection's transport, as the peer sees it. */
typedef struct mem_s {
    wsp_httpd_conn_t *c;
    client_t *cl;
    const uint8_t *in; /* the client stream still to deliver */
    size_t in_left;
    wsp_fuzz_split_t split; /* piece sizes of the stream */
    uint32_t rng;           /* windows and deadlines */
    int reading, eof_sent, enobufs, closing, closed, shut_pending;
    const char *wp; /* a pending write: what is left of it */
    size_t wlen;
} mem_t;

WSP_FUZZ_HARNESS static uint32_t mem_rand(mem_t *m)
{
    m->rng ^= m->rng << 13; /* xorshift32 */
    m->rng ^= m->rng >> 17;
    m->rng ^= m->rng << 5;
    return m->rng;
}

/* What the peer's receive window takes now: everything, or with OPS_BIG 0..4096 bytes (at
 * least 1 when a queued write waits for the peer to read: a step must progress). */
WSP_FUZZ_HARNESS static size_t mem_window(mem_t *m, size_t least)
{
    if (!(fake.mode & OPS_BIG))
        return SIZE_MAX;
    size_t n = mem_rand(m) % 4097;
    return n > least ? n : least;
}

/* The client receives p[0..n) and checks every response completed by it. */
WSP_FUZZ_HARNESS static void client_take(client_t *cl, const char *p, size_t n)
{
    WSP_FUZZ_CHECK(!cl->eof && n <= FUZZ_RBUF - cl->len); /* nothing after EOF; bounded */
    memcpy(cl->rbuf + cl->len, p, n);
    cl->len += n;
    check_responses(cl);
}

WSP_FUZZ_HARNESS static void client_eof(client_t *cl)
{
    cl->eof = 1;
    check_responses(cl);
}

static int on_mem_read(void *user, int on)
{
    mem_t *m = user;
    WSP_FUZZ_CHECK(!m->closing);
    m->reading = on;
    return 0;
}

/* As uv_try_write: never around a pending write, never after the shutdown or close. */
static int on_mem_try_write(void *user, const char *p, size_t len)
{
    mem_t *m = user;
    WSP_FUZZ_CHECK(!m->closing && !m->shut_pending && m->wp == NULL && !m->cl->eof);
    size_t n = mem_window(m, 0);
    n = n < len ? n : len;
    if (n == 0)
        return UV_EAGAIN;
    client_take(m->cl, p, n);
    return (int)n;
}

static int on_mem_write(void *user, const char *p, size_t len)
{
    mem_t *m = user;
    WSP_FUZZ_CHECK(!m->closing && !m->shut_pending && m->wp == NULL && len > 0);
    m->wp = p;
    m->wlen = len;
    return 0;
}

static int on_mem_shutdown(void *user)
{
    mem_t *m = user;
    WSP_FUZZ_CHECK(!m->closing && !m->shut_pending);
    m->shut_pending = 1;
    return 0;
}

static void on_mem_close(void *user)
{
    mem_t *m = user;
    WSP_FUZZ_CHECK(!m->closing);
    m->closing = 1;
}

static const wsp_httpd_io_t mem_io = {on_mem_read, on_mem_try_write, on_mem_write, on_mem_shutdown,
                                      on_mem_close};

/* The close completes as libuv's does: a pending write, then a pending shutdown, are
 * cancelled, then the transport reports closed; the timer closes on the next loop turn. */
static void mem_finish_close(mem_t *m)
{
    if (m->wp != NULL) {
        m->wp = NULL;
        wsp_httpd_io_written(m->c, UV_ECANCELED);
    }
    if (m->shut_pending) {
        m->shut_pending = 0;
        wsp_httpd_io_shutdown(m->c, UV_ECANCELED);
    }
    m->closed = 1;
    if (!m->cl->eof)
        client_eof(m->cl); /* the server's end is gone: the peer reads EOF */
    wsp_httpd_io_closed(m->c);
}

/* Delivers the next piece of input (or the client's EOF once it is all in). */
static void mem_deliver(mem_t *m)
{
    if (m->in_left == 0) {
        m->eof_sent = 1;
        wsp_httpd_io_read(m->c, UV_EOF);
        return;
    }
    size_t cap;
    char *buf = wsp_httpd_io_rbuf(m->c, &cap);
    if (cap == 0) { /* libuv reports a zero-length buffer as UV_ENOBUFS */
        m->enobufs = 1;
        wsp_httpd_io_read(m->c, UV_ENOBUFS);
        return;
    }
    size_t k = wsp_fuzz_split_next(&m->split, m->in_left);
    k = k < cap ? k : cap;
    memcpy(buf, m->in, k);
    m->in += k;
    m->in_left -= k;
    wsp_httpd_io_read(m->c, (ssize_t)k);
}

/* One step of the peer: the first of close, write, shutdown and input that can progress,
 * a deadline passing first when the input says so. 0 when nothing could: a stall. */
static int mem_step(mem_t *m)
{
    if (m->closing) {
        mem_finish_close(m);
        return 1;
    }
    if ((fake.mode & OPS_DEADLINES) && (mem_rand(m) & 7) == 0 &&
        uv_is_active((uv_handle_t *)&m->c->timer)) {
        WSP_FUZZ_CHECK(uv_timer_stop(&m->c->timer) == 0);
        m->cl->cut = 1;
        on_httpd_timer(&m->c->timer); /* the deadline passed; it closes */
        return 1;
    }
    if (m->wp != NULL) { /* the peer reads what it can of the queued write */
        size_t n = mem_window(m, 1);
        n = n < m->wlen ? n : m->wlen;
        client_take(m->cl, m->wp, n);
        m->wp += n;
        if ((m->wlen -= n) == 0) {
            m->wp = NULL;
            wsp_httpd_io_written(m->c, 0);
        }
        return 1;
    }
    int input = m->reading && !m->eof_sent;
    if (m->shut_pending && !(input && (mem_rand(m) & 1))) { /* FIN after the last byte */
        m->shut_pending = 0;
        client_eof(m->cl);
        wsp_httpd_io_shutdown(m->c, 0);
        return 1;
    }
    if (input) { /* also while the FIN is on its way: either may come first */
        mem_deliver(m);
        return 1;
    }
    return 0;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(unsigned *)arg)++;
}

static void on_exit_teardown(void)
{
    wsp_admin_stop(servers[0]);
    wsp_admin_stop(servers[1]);
    for (int i = 0; i < 100 && uv_run(&loop, UV_RUN_NOWAIT) != 0; i++)
        ;
    WSP_FUZZ_CHECK(uv_loop_close(&loop) == 0);
}

static void fuzz_init(void)
{
    static int done;
    if (done)
        return;
    done = 1;
    size_t off = sizeof metrics_text - 1;
    memcpy(big_metrics, metrics_text, off);
    for (; off < sizeof big_metrics; off++) /* "wsp_fuzz_pad 0\n" lines, cut anywhere */
        big_metrics[off] = "wsp_fuzz_pad 0\n"[off % 15];
    WSP_FUZZ_CHECK(uv_loop_init(&loop) == 0);
    WSP_FUZZ_CHECK(wsp_admin_start(&servers[0], &loop, "127.0.0.1", 0, FUZZ_TOKEN, &fake_ops,
                                   &servers[0]) == 0);
    WSP_FUZZ_CHECK(
        wsp_admin_start(&servers[1], &loop, "127.0.0.1", 0, NULL, &fake_ops, &servers[1]) == 0);
    WSP_FUZZ_CHECK(atexit(on_exit_teardown) == 0);
}

/* Occurrences of the token in in[0..n) once CR, LF, SP and HT are dropped: http-parser joins
 * a folded header value's pieces, so a token may reach admin.c split across lines. The
 * stripped copy goes to a buffer kept between inputs (reachable, not a leak): an allocation
 * per input cost more than the scan. */
WSP_FUZZ_HARNESS static size_t count_tokens(const uint8_t *in, size_t n)
{
    static uint8_t *s;
    static size_t cap;
    if (n > cap) {
        uint8_t *grown = realloc(s, n);
        WSP_FUZZ_CHECK(grown != NULL);
        s = grown;
        cap = n;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] != '\r' && in[i] != '\n' && in[i] != ' ' && in[i] != '\t')
            s[m++] = in[i];
    size_t count = 0;
    const size_t tl = sizeof FUZZ_TOKEN - 1;
    for (const uint8_t *p = s;
         m > 0 && (p = memmem(p, m - (size_t)(p - s), FUZZ_TOKEN, tl)) != NULL; p += tl)
        count++;
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t rbuf[FUZZ_RBUF];
    fuzz_init();
    memset(&fake, 0, sizeof fake);
    fake.mode = size > 1 ? data[1] : 0;
    fake.in = size > 2 ? data + 2 : data;
    fake.in_len = size > 2 ? size - 2 : 0;
    fake.tokens = count_tokens(fake.in, fake.in_len);
    fake.has_head = memmem(fake.in, fake.in_len, "HEAD", 4) != NULL;
    wsp_admin_t *srv = servers[fake.mode & OPS_NO_TOKEN ? 1 : 0];

    client_t cl = {.rbuf = rbuf};
    mem_t m = {.cl = &cl, .in = fake.in, .in_left = fake.in_len};
    wsp_fuzz_split_init(&m.split, size > 0 ? data[0] : 0);
    m.rng = 0x2545F491u ^ (size > 0 ? data[0] : 0u) ^ (fake.mode << 8);
    WSP_FUZZ_CHECK(wsp_httpd_open(srv->http, &mem_io, &m, &m.c) == 0);
    WSP_FUZZ_CHECK(srv->http->nconns == 1);
    while (!m.closed)
        WSP_FUZZ_CHECK(mem_step(&m)); /* no progress: the server waits for nothing */
    /* Closed for a reason: the client's EOF, a deadline, a final answer, a full buffer. */
    WSP_FUZZ_CHECK(cl.eof && m.eof_sent + cl.cut + cl.closed + m.enobufs > 0);
    (void)uv_run(&loop, UV_RUN_NOWAIT); /* the timer's close callback frees the connection */
    const wsp_httpd_t *h = srv->http;
    WSP_FUZZ_CHECK(h->nconns == 0 && h->refs == 1); /* only the listener's reference */
    unsigned handles = 0;
    uv_walk(&loop, count_handle, &handles);
    WSP_FUZZ_CHECK(handles == 2); /* the two listeners: no timer left behind */
    /* every accepted publish was answered, unless a deadline cut the answer off */
    WSP_FUZZ_CHECK(cl.n202 == fake.publish_ok || (cl.cut && cl.n202 < fake.publish_ok));
    return 0;
}
