/* Fuzzes the admin HTTP API (server/admin.c over server/httpd.c) through its only entry
 * point, a TCP connection:
 * one persistent loop holds two admin servers on 127.0.0.1 (one with a bearer token, one
 * without) and fake ops; each input opens a client socket, writes the stream in pieces
 * (running the loop between them), shuts its write side and runs the loop until it reads EOF.
 * Input: [split control (fuzz.h)][ops control (OPS_*)][client byte stream].
 *
 * Checked beyond memory safety: what the client reads is a sequence of complete
 * "HTTP/1.1 NNN" responses with a status admin.c can give in this mode, the reason it gives
 * for it, one Content-Length that frames the body (or no body after a HEAD), and nothing after
 * a "Connection: close"; publish() only sees valid UTF-8 of at most 64 KiB, a valid channel
 * that the request named, and, on the server with a token, no more calls than the input holds
 * tokens; publish_user() a user id of 1..64 bytes; every successful publish is answered 202; and
 * once the client has its EOF the connection is closed and freed (connection count 0, no handle
 * left but the listeners), so nothing leaks from one input to the next. No input can stall on a
 * timer: the client's shutdown is an EOF, which closes an admin connection whatever state it is in.
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>

#include "fuzz.h"

/* Compiled in, as test/server/test_admin.c does, to read the connection count and reference
 * count (a->http->nconns, a->http->refs) without a test-only accessor. */
#include "admin.c"
#include "httpd.c"

#define FUZZ_TOKEN "fuzz-token"
#define FUZZ_IDLE_ROUNDS 300 /* 10 ms polls with nothing ready: 3 s without progress fails */
#define FUZZ_BIG_METRICS 32768
#define FUZZ_RBUF (1u << 17) /* received bytes not yet checked: one response and a bit */

/* The ops control byte: how the fake owner answers, and which server the client talks to. */
enum {
    OPS_DRAINING = 1 << 0,       /* healthy() is 0: /healthz 503 */
    OPS_PUBLISH_EAGAIN = 1 << 1, /* publish() says draining: 503 */
    OPS_PUBLISH_FAIL = 1 << 2,   /* publish() fails: 500 */
    OPS_METRICS_FAIL = 1 << 3,   /* 500 */
    OPS_STATS_FAIL = 1 << 4,     /* 500 */
    OPS_BIG = 1 << 5,            /* 32 KiB /metrics, 4 KiB socket buffers: writes queue */
    OPS_NO_TOKEN = 1 << 6,       /* the server without a token */
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
    int fd;
    int eof;
    int closed;    /* a "Connection: close" response was read: nothing may follow */
    unsigned n202; /* publishes answered */
    size_t len;    /* bytes in rbuf */
    uint8_t *rbuf; /* FUZZ_RBUF bytes */
} client_t;

/* 1 when admin.c can answer with status in the current mode. */
static int status_expected(int status)
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

static int bytes_are(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}

static int all_digits(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return 0;
    return n > 0;
}

/* Checks a body sent with status: one of the few the fake owner and admin.c can give. */
static void check_body(int status, const uint8_t *b, size_t n)
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
static size_t check_response(const uint8_t *p, size_t n, int at_eof, client_t *cl)
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
static void check_responses(client_t *cl)
{
    size_t off = 0, used;
    while (off < cl->len && (used = check_response(cl->rbuf + off, cl->len - off, cl->eof, cl)))
        off += used;
    memmove(cl->rbuf, cl->rbuf + off, cl->len - off);
    cl->len -= off;
    WSP_FUZZ_CHECK(!cl->eof || cl->len == 0);
}

/* ---- the client, and the loop between its socket calls ---- */

/* Reads what is there; returns 1 if anything (or EOF) came. */
static int client_read(client_t *cl)
{
    int got = 0;
    while (!cl->eof) {
        WSP_FUZZ_CHECK(cl->len < FUZZ_RBUF);
        ssize_t r = recv(cl->fd, cl->rbuf + cl->len, FUZZ_RBUF - cl->len, MSG_DONTWAIT);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) { /* the admin never resets a connection: only "nothing yet" is fine */
            WSP_FUZZ_CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
            break;
        }
        got = 1;
        cl->eof = r == 0;
        cl->len += (size_t)r;
        check_responses(cl);
    }
    return got;
}

/* Runs what is ready on the loop and reads; when nothing was, first waits up to 10 ms for
 * either. Returns 0 when that wait found nothing to do. */
static int pump(client_t *cl)
{
    int timeout = uv_backend_timeout(&loop);
    struct pollfd pf[2] = {{.fd = uv_backend_fd(&loop), .events = POLLIN},
                           {.fd = cl->fd, .events = POLLIN}};
    int ready = poll(pf, 2, timeout >= 0 && timeout < 10 ? timeout : 10);
    WSP_FUZZ_CHECK(ready >= 0 || errno == EINTR);
    (void)uv_run(&loop, UV_RUN_NOWAIT); /* 0 or "more to do": either is fine here */
    return client_read(cl) || ready != 0 || timeout == 0;
}

/* Sends p[0..n), running the server while the socket is full (it may be reading nothing
 * while a response waits for us). */
static void client_send(client_t *cl, const uint8_t *p, size_t n)
{
    unsigned idle = 0;
    while (n > 0) {
        ssize_t w = send(cl->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            idle = 0;
            continue;
        }
        WSP_FUZZ_CHECK(w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR));
        if (!pump(cl))
            WSP_FUZZ_CHECK(++idle < FUZZ_IDLE_ROUNDS); /* the server stopped reading for good */
    }
}

/* A connected client socket, or -errno from a failed connect(). */
static int client_try_open(int port, int small_rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    WSP_FUZZ_CHECK(fd >= 0);
    if (small_rcvbuf) { /* before connect: the window is negotiated from it */
        int sz = 4096;
        WSP_FUZZ_CHECK(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof sz) == 0);
    }
    int one = 1; /* each piece leaves at once, not after the previous one's delayed ACK */
    WSP_FUZZ_CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
    /* The client closes first, so each input leaves a TIME_WAIT socket for 60 s: at a
     * thousand inputs a second the ports from 127.0.0.1 to the admin would run out. A new
     * source address from 127.2.0.0/16 each time (port chosen at connect) never reuses a pair. */
    static uint16_t src;
    src++;
    struct sockaddr_in from = {.sin_family = AF_INET};
    from.sin_addr.s_addr = htonl(0x7f020000u | src);
    WSP_FUZZ_CHECK(setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) == 0);
    WSP_FUZZ_CHECK(bind(fd, (struct sockaddr *)&from, sizeof from) == 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* Completes from the kernel's backlog: the admin accepts when the loop next runs. */
    int err = connect(fd, (struct sockaddr *)&sin, sizeof sin) == 0 ? 0 : -errno;
    if (err == -EINTR) { /* libFuzzer's timeout alarm (SIGALRM, no SA_RESTART): it goes on */
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        socklen_t len = sizeof err;
        while (poll(&pf, 1, 1000) < 0 && errno == EINTR)
            ;
        WSP_FUZZ_CHECK(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0);
        err = -err;
    }
    if (err == 0)
        return fd;
    WSP_FUZZ_CHECK(close(fd) == 0);
    return err;
}

/* Connects, retrying for up to a second. A connect() that fails does so before admin.c sees
 * anything, so it is the machine's limits, not a finding (twice in ~170,000 inputs here,
 * errno not recorded, before this retry and the EINTR case above). */
static int client_open(int port, int small_rcvbuf)
{
    int fd = -EINVAL;
    for (int i = 0; i < 100 && (fd = client_try_open(port, small_rcvbuf)) < 0; i++) {
        fprintf(stderr, "fuzz_admin: connect: %s; retrying\n", strerror(-fd));
        WSP_FUZZ_CHECK(usleep(10000) == 0 || errno == EINTR);
    }
    WSP_FUZZ_CHECK(fd >= 0);
    return fd;
}

static void count_handle(uv_handle_t *h, void *arg)
{
    (void)h;
    (*(unsigned *)arg)++;
}

/* Runs the loop until no admin connection is left, closed and freed; bounded. */
static void settle(client_t *cl)
{
    unsigned idle = 0;
    const wsp_httpd_t *h0 = servers[0]->http, *h1 = servers[1]->http;
    while (h0->nconns + h1->nconns > 0 || h0->refs + h1->refs > 2)
        if (!pump(cl))
            WSP_FUZZ_CHECK(++idle < FUZZ_IDLE_ROUNDS); /* the peer's EOF must close */
    unsigned handles = 0;
    uv_walk(&loop, count_handle, &handles);
    WSP_FUZZ_CHECK(handles == 2); /* the two listeners: no timer or socket left behind */
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
    WSP_FUZZ_CHECK(signal(SIGPIPE, SIG_IGN) != SIG_ERR); /* as main() does */
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
 * a folded header value's pieces, so a token may reach admin.c split across lines. */
static size_t count_tokens(const uint8_t *in, size_t n)
{
    uint8_t *s = malloc(n ? n : 1);
    WSP_FUZZ_CHECK(s != NULL);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (in[i] != '\r' && in[i] != '\n' && in[i] != ' ' && in[i] != '\t')
            s[m++] = in[i];
    size_t count = 0;
    const size_t tl = sizeof FUZZ_TOKEN - 1;
    for (const uint8_t *p = s; (p = memmem(p, m - (size_t)(p - s), FUZZ_TOKEN, tl)) != NULL;
         p += tl)
        count++;
    free(s);
    return count;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t rbuf[FUZZ_RBUF];
    fuzz_init();
    wsp_fuzz_split_t split;
    wsp_fuzz_split_init(&split, size > 0 ? data[0] : 0);
    memset(&fake, 0, sizeof fake);
    fake.mode = size > 1 ? data[1] : 0;
    fake.in = size > 2 ? data + 2 : data;
    fake.in_len = size > 2 ? size - 2 : 0;
    fake.tokens = count_tokens(fake.in, fake.in_len);
    fake.has_head = memmem(fake.in, fake.in_len, "HEAD", 4) != NULL;
    wsp_admin_t *srv = servers[fake.mode & OPS_NO_TOKEN ? 1 : 0];

    client_t cl = {.fd = client_open(wsp_admin_port(srv), fake.mode & OPS_BIG), .rbuf = rbuf};
    (void)pump(&cl); /* accepts: the connection is in the listener's backlog */
    WSP_FUZZ_CHECK(srv->http->nconns == 1);
    if (fake.mode & OPS_BIG) { /* a slow network: the admin's writes queue, reading stops */
        uv_os_fd_t afd;
        int sz = 4096;
        WSP_FUZZ_CHECK(uv_fileno((uv_handle_t *)&srv->http->conns->tcp, &afd) == 0);
        WSP_FUZZ_CHECK(setsockopt(afd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof sz) == 0);
    }
    for (size_t off = 0; off < fake.in_len;) {
        size_t k = wsp_fuzz_split_next(&split, fake.in_len - off);
        client_send(&cl, fake.in + off, k);
        off += k;
        (void)pump(&cl); /* the admin sees this piece before the next */
    }
    WSP_FUZZ_CHECK(shutdown(cl.fd, SHUT_WR) == 0);
    unsigned idle = 0;
    while (!cl.eof)
        if (!pump(&cl))
            WSP_FUZZ_CHECK(++idle < FUZZ_IDLE_ROUNDS); /* the admin must close after our EOF */
    settle(&cl);
    WSP_FUZZ_CHECK(close(cl.fd) == 0);
    WSP_FUZZ_CHECK(cl.n202 == fake.publish_ok); /* every accepted publish was answered */
    return 0;
}
