#include "worker.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "alloc.h"
#include "frame.h"
#include "net.h"
#include "rx.h"
#include "uring.h"

#define HS_BUF 1024 /* a 101 answer is ~130 bytes; longer headers are refused */
#define MAX_EVENTS 1024
#define SMALL_BATCH 64         /* fewer events than this per epoll_wait() are worth coalescing */
#define SWEEP_NS 100000000ull  /* handshake deadlines are checked every 100 ms */
#define BACKOFF_NS 50000000ull /* first retry after 50 ms, doubling */
#define URING_BUF 1024 /* per batched receive: a tick is ~40 bytes; more is read by recv() */

enum { C_FREE = 0, C_CONNECTING, C_HANDSHAKE, C_OPEN };
enum { C_F_FRAG = 1 }; /* inside a fragmented data message */

/* What a connection carries between reads, allocated only while a frame or a fragmented
 * message is split across reads (rare: a tick is one small frame). */
typedef struct pend_s {
    wsp_rx_t rx;              /* the split frame */
    uint8_t msg[WSP_RX_KEEP]; /* the first bytes of a fragmented message, for its tick */
    uint8_t mlen;
} pend_t;

/* Per connection, indexed by fd: the raw-epoll reference client needed 19 B, we keep 24. */
typedef struct conn_s {
    pend_t *pend;      /* NULL in the common case */
    uint32_t last_seq; /* highest seq received, for duplicates and gaps */
    uint32_t est_ms;   /* when the 101 arrived, ms after the worker started */
    uint16_t hs;       /* handshake context while CONNECTING or HANDSHAKE */
    uint8_t state, flags;
} conn_t;
static_assert(sizeof(conn_t) == 24, "bytes per connection: update docs");

/* One per connect or handshake in flight; at most --concurrency of them. */
typedef struct hs_s {
    uint64_t deadline_ns;
    uint64_t slot;
    int fd; /* -1 = free */
    unsigned retries;
    char accept[32]; /* expected Sec-WebSocket-Accept, NUL-terminated */
    unsigned rlen;
    char rbuf[HS_BUF];
} hs_t;

typedef struct retry_s {
    uint64_t slot;
    uint64_t due_ns;
} retry_t;

/* One FIFO per retry level: every entry of a level has the same backoff, so each ring is in
 * due order. */
typedef struct ring_s {
    retry_t *e;
    size_t cap, head, len;
} ring_t;

typedef struct worker_s {
    const wsp_bench_cfg_t *cfg;
    wsp_wstats_t *st;
    const wsp_ctl_t *ctl;
    int ep;
    uint64_t next_slot, end_slot;
    conn_t *conn;
    size_t nconn;
    hs_t *hs;
    uint16_t *hs_free;
    size_t nfree;
    ring_t *retry; /* [cfg->retries + 1], level 0 unused */
    double tokens, per_ns;
    uint64_t last_refill_ns;
    uint64_t epoch0_ms;
    uint64_t rng;
    char req_head[512]; /* the upgrade request up to the key */
    size_t req_head_len;
    wsp_uring_t *ring;   /* --io-uring on: batched receives */
    int *ufd;            /* per batch slot: the connection's fd */
    uint8_t *ubuf;       /* per batch slot: URING_BUF bytes */
    uint8_t rbuf[65536]; /* one read buffer for every connection */
} worker_t;

static uint64_t epoch_us(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail for CLOCK_REALTIME */
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t rng_next(worker_t *w)
{
    /* xorshift64*: keys need to differ, not to be secret */
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1Dull;
}

/* ---- sending ---- */

/* Writes a masked control frame; best effort, a dead socket shows up on the next read. */
static void send_control(worker_t *w, int fd, unsigned op, const uint8_t *payload, size_t len)
{
    uint8_t buf[WSP_FRAME_HDR_MAX + 125];
    uint32_t r = (uint32_t)rng_next(w);
    uint8_t mask[4];
    memcpy(mask, &r, 4);
    if (len > 125)
        len = 125;
    size_t h = wsp_frame_header(buf, op, len, mask);
    if (len)
        memcpy(buf + h, payload, len);
    wsp_frame_mask(buf + h, len, mask, 0);
    ssize_t n = send(fd, buf, h + len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

static void send_close(worker_t *w, int fd, unsigned code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    send_control(w, fd, WSP_OP_CLOSE, p, 2);
}

/* ---- connection lifetime ---- */

static void hs_release(worker_t *w, unsigned i)
{
    w->hs[i].fd = -1;
    w->hs_free[w->nfree++] = (uint16_t)i;
    w->st->inflight--;
}

static void ring_push(ring_t *r, uint64_t slot, uint64_t due)
{
    assert(r->len < r->cap); /* each slot sits in at most one ring */
    r->e[(r->head + r->len) % r->cap] = (retry_t){slot, due};
    r->len++;
}

/* Closes fd, whatever its state; the caller counted why. */
static void conn_drop(worker_t *w, int fd)
{
    conn_t *c = &w->conn[fd];
    if (c->state == C_CONNECTING || c->state == C_HANDSHAKE)
        hs_release(w, c->hs);
    else if (c->state == C_OPEN)
        w->st->active--;
    free(c->pend);
    memset(c, 0, sizeof(*c));
    (void)close(fd); /* nothing to do about a failed close of a socket */
}

/* A connect that failed: retry with backoff, or count it. */
static void connect_failed(worker_t *w, int fd, uint64_t slot, unsigned retries, int err,
                           uint64_t now)
{
    if (fd >= 0)
        conn_drop(w, fd);
    w->st->last_errno = (uint64_t)err;
    if (retries < w->cfg->retries && !w->ctl->stop_ramp) {
        w->st->retries++;
        ring_push(&w->retry[retries + 1], slot, now + (BACKOFF_NS << retries));
    } else {
        w->st->err[WSP_ERR_CONNECT]++;
        w->st->resolved++;
    }
}

/* Ends a handshake with an error of the given kind. */
static void hs_fail(worker_t *w, int fd, int kind)
{
    w->st->err[kind]++;
    w->st->resolved++;
    conn_drop(w, fd);
}

/* Writes the upgrade request. Returns 1 if sent, 0 if not connected yet (wait for EPOLLOUT),
 * -1 if the connection failed (counted, closed). */
static int send_request(worker_t *w, int fd, uint64_t now)
{
    conn_t *c = &w->conn[fd];
    hs_t *h = &w->hs[c->hs];
    uint8_t raw[16];
    uint64_t r1 = rng_next(w), r2 = rng_next(w);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    char req[sizeof(w->req_head) + 64];
    memcpy(req, w->req_head, w->req_head_len);
    char *key = req + w->req_head_len;
    EVP_EncodeBlock((unsigned char *)key, raw, 16); /* 24 characters */
    char cat[24 + 36];
    memcpy(cat, key, 24);
    memcpy(cat + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, sizeof(cat), sha);
    EVP_EncodeBlock((unsigned char *)h->accept, sha, SHA_DIGEST_LENGTH); /* 28 + NUL */
    memcpy(key + 24, "\r\n\r\n", 4);
    size_t len = w->req_head_len + 28;
    ssize_t n = send(fd, req, len, MSG_NOSIGNAL);
    if (n == (ssize_t)len) {
        c->state = C_HANDSHAKE;
        return 1;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0; /* not connected yet: wait for EPOLLOUT */
    if (n >= 0) {
        hs_fail(w, fd, WSP_ERR_HANDSHAKE_INVALID); /* a 200-byte write cut short: give up */
        return -1;
    }
    connect_failed(w, fd, h->slot, h->retries, errno, now);
    return -1;
}

static int start_connect(worker_t *w, uint64_t slot, unsigned retries, uint64_t now)
{
    const wsp_bench_cfg_t *cfg = w->cfg;
    if (w->st->first_connect_us == 0)
        w->st->first_connect_us = epoch_us();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        connect_failed(w, -1, slot, retries, errno, now);
        return -1;
    }
    if ((size_t)fd >= w->nconn) {
        (void)close(fd);
        connect_failed(w, -1, slot, retries, EMFILE, now);
        return -1;
    }
    int one = 1;
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(wsp_args_source(cfg, slot));
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(cfg->port)};
    dst.sin_addr.s_addr = htonl(cfg->dst_addr);
    /* Let connect() pick the port by 4-tuple: each source then has the whole port range per
     * destination, instead of bind() reserving one port per socket. */
    if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one)) != 0 ||
        bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0 && errno != EINPROGRESS)) {
        int err = errno;
        (void)close(fd);
        connect_failed(w, -1, slot, retries, err, now);
        return -1;
    }
    unsigned i = w->hs_free[--w->nfree];
    hs_t *h = &w->hs[i];
    h->deadline_ns = now + (uint64_t)(cfg->handshake_timeout * 1e9);
    h->slot = slot;
    h->fd = fd;
    h->retries = retries;
    h->rlen = 0;
    w->st->inflight++;
    conn_t *c = &w->conn[fd];
    c->state = C_CONNECTING;
    c->hs = (uint16_t)i;
    /* On loopback the handshake has usually completed when connect() returns: send the
     * upgrade now and skip an EPOLLOUT wake-up; if not yet connected, wait for EPOLLOUT.
     * Edge-triggered: EPOLLIN per arrival, and a short read means the socket is drained, so
     * no read ends in EAGAIN in the common case. */
    int sent = send_request(w, fd, now);
    if (sent < 0)
        return -1; /* counted and closed */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET | (sent ? 0u : EPOLLOUT), .data.fd = fd};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        connect_failed(w, fd, slot, retries, errno, now);
        return -1;
    }
    return 0;
}

/* ---- frames ---- */

typedef struct frame_ctx_s {
    worker_t *w;
    int fd;
    unsigned close_code;
    uint64_t now_us;
} frame_ctx_t;

static uint64_t seq_time(const worker_t *w, uint64_t k)
{
    uint64_t t = w->st->seq[k].time_min_ms;
    uint64_t g = w->ctl->seq_time_ms[k];
    return t == 0 ? g : (g != 0 && g < t) ? g : t;
}

/* Counts seqs in (from, to) this connection should have had but did not. */
static void count_missing(worker_t *w, const conn_t *c, uint64_t from, uint64_t to)
{
    uint64_t est = w->epoch0_ms + c->est_ms;
    if (to > WSP_SEQ_MAX)
        to = WSP_SEQ_MAX;
    for (uint64_t k = to; k-- > from + 1;) {
        uint64_t t = seq_time(w, k);
        if (t != 0 && t <= est)
            break; /* sent before this connection was open: older ones too */
        if (t != 0)
            w->st->seq[k].missing++;
    }
}

static void on_tick(frame_ctx_t *x, conn_t *c, const uint8_t *p, size_t len)
{
    worker_t *w = x->w;
    wsp_wstats_t *st = w->st;
    uint64_t t, seq;
    if (wsp_rx_parse_tick(p, len, &t, &seq) < 0) {
        st->err[WSP_ERR_BAD_MESSAGE]++;
        return;
    }
    st->messages++;
    uint64_t sent_us = t * 1000u;
    wsp_hist_record(&st->latency, x->now_us > sent_us ? x->now_us - sent_us : 0);
    if (seq > st->max_seq)
        st->max_seq = seq;
    if (seq >= WSP_SEQ_MAX || seq > UINT32_MAX) {
        st->seq_overflow++;
        return;
    }
    wsp_seq_stat_t *s = &st->seq[seq];
    if (seq <= c->last_seq) {
        s->dup++; /* TCP keeps order: an old seq again is a duplicate */
        return;
    }
    if (seq > c->last_seq + 1u)
        count_missing(w, c, c->last_seq, seq);
    c->last_seq = (uint32_t)seq;
    s->got++;
    if (s->time_min_ms == 0 || t < s->time_min_ms)
        s->time_min_ms = t;
    if (t > s->time_max_ms)
        s->time_max_ms = t;
    if (s->first_us == 0 || x->now_us < s->first_us)
        s->first_us = x->now_us;
    if (x->now_us > s->last_us)
        s->last_us = x->now_us;
}

#define FRAME_CLOSE 1 /* the server sent a close frame */

/* Appends the start of a fragment to the message prefix kept for its tick. */
static void frag_keep(pend_t *pd, const uint8_t *p, size_t len)
{
    size_t k = WSP_RX_KEEP - pd->mlen < len ? WSP_RX_KEEP - pd->mlen : len;
    memcpy(pd->msg + pd->mlen, p, k);
    pd->mlen = (uint8_t)(pd->mlen + k);
}

static int on_frame(void *arg, const wsp_rx_frame_t *f)
{
    frame_ctx_t *x = arg;
    conn_t *c = &x->w->conn[x->fd];
    switch (f->opcode) {
    case WSP_OP_TEXT:
    case WSP_OP_BINARY:
        if (c->flags & C_F_FRAG)
            return -EPROTO; /* a new message inside a fragmented one */
        if (f->fin) {
            on_tick(x, c, f->payload, f->len);
            return 0;
        }
        if (c->pend == NULL && (c->pend = calloc(1, sizeof(pend_t))) == NULL)
            return -ENOMEM; /* costs this connection only; calloc left pend->rx idle */
        c->pend->mlen = 0;
        frag_keep(c->pend, f->payload, f->len);
        c->flags |= C_F_FRAG;
        return 0;
    case WSP_OP_CONT:
        if (!(c->flags & C_F_FRAG))
            return -EPROTO;
        frag_keep(c->pend, f->payload, f->len);
        if (f->fin) {
            c->flags &= (uint8_t)~C_F_FRAG;
            on_tick(x, c, c->pend->msg, c->pend->mlen);
        }
        return 0;
    case WSP_OP_PING:
        send_control(x->w, x->fd, WSP_OP_PONG, f->payload, f->len);
        x->w->st->pings++;
        return 0;
    case WSP_OP_PONG:
        return 0;
    default: /* WSP_OP_CLOSE: wsp_rx_feed() passes no other opcode */
        if (f->len == 1)
            return -EPROTO;
        x->close_code = f->len >= 2 ? (unsigned)f->payload[0] << 8 | f->payload[1] : 1005;
        return FRAME_CLOSE;
    }
}

/* Parses n received bytes of an OPEN connection. Returns 0, or -1 if it was closed. */
static int conn_frames(worker_t *w, int fd, const uint8_t *p, size_t n, uint64_t now_us)
{
    conn_t *c = &w->conn[fd];
    frame_ctx_t x = {w, fd, 0, now_us};
    int rv;
    if (c->pend) {
        rv = wsp_rx_feed(&c->pend->rx, p, n, on_frame, &x);
    } else {
        wsp_rx_t tmp; /* the common case: nothing carried over, nothing allocated */
        wsp_rx_reset(&tmp);
        rv = wsp_rx_feed(&tmp, p, n, on_frame, &x);
        if (rv == 0 && !wsp_rx_idle(&tmp)) {
            if (c->pend == NULL && (c->pend = calloc(1, sizeof(pend_t))) == NULL)
                rv = -ENOMEM;
            else
                memcpy(&c->pend->rx, &tmp, sizeof(tmp)); /* pend may hold a fragment */
        }
    }
    if (rv == 0) {
        if (c->pend && wsp_rx_idle(&c->pend->rx) && !(c->flags & C_F_FRAG)) {
            free(c->pend);
            c->pend = NULL;
        }
        return 0;
    }
    if (rv == FRAME_CLOSE) {
        send_close(w, fd, x.close_code == 1005 ? 1000 : x.close_code); /* echo (RFC 6455 5.5.1) */
        w->st->err[WSP_ERR_CLOSED]++;
        wsp_stats_code_add(&w->st->closed_codes, x.close_code, 1);
    } else {
        send_close(w, fd, 1002);
        w->st->err[WSP_ERR_PROTOCOL]++; /* or out of memory for a split frame: as lost */
    }
    conn_drop(w, fd);
    return -1;
}

static void closed_abnormally(worker_t *w, int fd)
{
    w->st->err[WSP_ERR_CLOSED]++;
    wsp_stats_code_add(&w->st->closed_codes, 1006, 1);
    conn_drop(w, fd);
}

static void on_event(worker_t *w, int fd, uint32_t events, uint64_t now);

static void open_read(worker_t *w, int fd)
{
    for (;;) {
        ssize_t n = recv(fd, w->rbuf, sizeof(w->rbuf), 0);
        if (n > 0) {
            if (conn_frames(w, fd, w->rbuf, (size_t)n, epoch_us()) < 0)
                return;
            if ((size_t)n < sizeof(w->rbuf))
                return; /* short read: drained (edge-triggered) */
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        closed_abnormally(w, fd); /* EOF without a close frame, or a reset */
        return;
    }
}

/* One batched receive's result (ud = the batch slot). A full buffer may have more behind
 * it: the ordinary recv() loop drains it (edge-triggered). */
static void on_batch_recv(void *ud, int res, void *arg)
{
    worker_t *w = arg;
    size_t i = (size_t)(uintptr_t)ud;
    int fd = w->ufd[i];
    if (res == -EAGAIN || res == -EINTR)
        return; /* nothing there after all: the next edge brings it */
    if (res <= 0) {
        closed_abnormally(w, fd);
        return;
    }
    if (conn_frames(w, fd, w->ubuf + i * URING_BUF, (size_t)res, epoch_us()) < 0)
        return;
    if (res == URING_BUF)
        open_read(w, fd);
}

/* Handles one epoll batch: open connections' data through one io_uring submission, every
 * other event (handshakes, errors) the ordinary way. */
static void batch_events(worker_t *w, const struct epoll_event *evs, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (w->conn[fd].state != C_OPEN || !(evs[i].events & EPOLLIN) ||
            wsp_uring_recv(w->ring, fd, w->ubuf + (size_t)i * URING_BUF, URING_BUF,
                           (void *)(uintptr_t)i) < 0) {
            on_event(w, fd, evs[i].events, now);
            continue;
        }
        w->ufd[i] = fd;
    }
    if (wsp_uring_flush(w->ring, on_batch_recv, w) < 0) {
        /* The kernel refused the ring (each queued receive was reported -ECANCELED and
         * skipped): recv() from here on, and read what those connections hold now. */
        wsp_uring_free(w->ring);
        w->ring = NULL;
        for (int i = 0; i < n; i++)
            if (w->conn[evs[i].data.fd].state == C_OPEN)
                open_read(w, evs[i].data.fd);
    }
}

/* ---- handshake ---- */

/* Status code of "HTTP/1.x NNN ...", or -1. */
static int parse_status(const char *p, size_t n)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || p[8] != ' ')
        return -1;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        code = code * 10 + (p[i] - '0');
    }
    return code;
}

/* Whether the headers in p[0..n) carry Sec-WebSocket-Accept: want. */
static int accept_ok(const char *p, size_t n, const char *want)
{
    static const char name[] = "sec-websocket-accept:";
    const size_t nl = sizeof(name) - 1;
    for (size_t i = 0; i + 2 + nl < n; i++) {
        if (p[i] != '\n' || strncasecmp(p + i + 1, name, nl) != 0)
            continue;
        size_t j = i + 1 + nl;
        while (j < n && (p[j] == ' ' || p[j] == '\t'))
            j++;
        size_t k = j;
        while (k < n && p[k] != '\r' && p[k] != ' ' && p[k] != '\t')
            k++;
        return k - j == 28 && memcmp(p + j, want, 28) == 0;
    }
    return 0;
}

static void hs_read(worker_t *w, int fd)
{
    conn_t *c = &w->conn[fd];
    hs_t *h = &w->hs[c->hs];
    for (;;) {
        size_t space = HS_BUF - 1 - h->rlen;
        if (space == 0) {
            hs_fail(w, fd, WSP_ERR_HANDSHAKE_INVALID); /* headers too long */
            return;
        }
        ssize_t n = recv(fd, h->rbuf + h->rlen, space, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            w->st->closed_in_handshake++;
            wsp_stats_code_add(&w->st->closed_codes, 1006, 1);
            hs_fail(w, fd, WSP_ERR_CLOSED);
            return;
        }
        h->rlen += (unsigned)n;
        h->rbuf[h->rlen] = '\0';
        char *end = strstr(h->rbuf, "\r\n\r\n");
        if (end == NULL) {
            if ((size_t)n < space)
                return;
            continue;
        }
        size_t hlen = (size_t)(end - h->rbuf) + 4;
        int status = parse_status(h->rbuf, hlen);
        if (status != 101) {
            if (status > 0) {
                wsp_stats_code_add(&w->st->statuses, (uint32_t)status, 1);
                hs_fail(w, fd, WSP_ERR_HANDSHAKE_STATUS);
            } else {
                hs_fail(w, fd, WSP_ERR_HANDSHAKE_INVALID);
            }
            return;
        }
        if (!accept_ok(h->rbuf, hlen, h->accept)) {
            hs_fail(w, fd, WSP_ERR_HANDSHAKE_INVALID);
            return;
        }
        uint64_t now_us = epoch_us();
        size_t extra = h->rlen - hlen;
        if (extra) /* frames right behind the 101 */
            memcpy(w->rbuf, h->rbuf + hlen, extra);
        hs_release(w, c->hs);
        c->state = C_OPEN;
        c->est_ms = (uint32_t)(now_us / 1000u - w->epoch0_ms);
        w->st->active++;
        w->st->setups++;
        w->st->resolved++;
        w->st->last_setup_us = now_us;
        if (extra && conn_frames(w, fd, w->rbuf, extra, now_us) < 0)
            return;
        if ((size_t)n == space)
            open_read(w, fd); /* the buffer filled up: there may be more */
        return;
    }
}

static void on_event(worker_t *w, int fd, uint32_t events, uint64_t now)
{
    conn_t *c = &w->conn[fd];
    switch (c->state) {
    case C_CONNECTING: {
        hs_t *h = &w->hs[c->hs];
        if (events & EPOLLERR) {
            int err = 0;
            socklen_t len = sizeof(err);
            if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0)
                err = ECONNREFUSED;
            connect_failed(w, fd, h->slot, h->retries, err, now);
            return;
        }
        if (!(events & EPOLLOUT) || send_request(w, fd, now) <= 0)
            return;
        if (!(events & (EPOLLIN | EPOLLHUP)))
            return;
        hs_read(w, fd);
        return;
    }
    case C_HANDSHAKE:
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            hs_read(w, fd);
        return;
    case C_OPEN:
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            open_read(w, fd);
        return;
    default:
        return;
    }
}

/* ---- the ramp and the deadlines ---- */

static void ramp(worker_t *w, uint64_t now)
{
    if (w->ctl->stop_ramp)
        return;
    if (w->per_ns > 0) {
        w->tokens += (double)(now - w->last_refill_ns) * w->per_ns;
        double cap = w->per_ns * 5e7 > 1.0 ? w->per_ns * 5e7 : 1.0; /* 50 ms of burst */
        if (w->tokens > cap)
            w->tokens = cap;
    }
    w->last_refill_ns = now;
    while (w->nfree > 0 && (w->per_ns == 0 || w->tokens >= 1.0)) {
        uint64_t slot;
        unsigned retries = 0;
        for (unsigned lv = 1; lv <= w->cfg->retries; lv++) {
            ring_t *r = &w->retry[lv];
            if (r->len && r->e[r->head].due_ns <= now) {
                retries = lv;
                break;
            }
        }
        if (retries) {
            ring_t *r = &w->retry[retries];
            slot = r->e[r->head].slot;
            r->head = (r->head + 1) % r->cap;
            r->len--;
        } else if (w->next_slot < w->end_slot) {
            slot = w->next_slot++;
        } else {
            return;
        }
        if (w->per_ns > 0)
            w->tokens -= 1.0;
        start_connect(w, slot, retries, now);
    }
}

static void sweep(worker_t *w, uint64_t now)
{
    for (size_t i = 0; i < w->cfg->concurrency; i++) {
        hs_t *h = &w->hs[i];
        if (h->fd >= 0 && now >= h->deadline_ns)
            hs_fail(w, h->fd, WSP_ERR_TIMEOUT);
    }
}

/* Whether this worker has nothing left to connect: no slot, handshake or retry pending. */
static int ramp_over(const worker_t *w)
{
    if (w->st->inflight > 0)
        return 0;
    if (w->ctl->stop_ramp)
        return 1;
    if (w->next_slot < w->end_slot)
        return 0;
    for (unsigned lv = 1; lv <= w->cfg->retries; lv++)
        if (w->retry[lv].len)
            return 0;
    return 1;
}

/* Milliseconds epoll may sleep before the ramp has something to do. */
static int ramp_wait_ms(const worker_t *w, uint64_t now)
{
    if (w->ctl->stop_ramp || w->nfree == 0)
        return 100;
    int ms = 100;
    if (w->next_slot < w->end_slot) {
        if (w->per_ns == 0 || w->tokens >= 1.0)
            return 0;
        ms = (int)((1.0 - w->tokens) / w->per_ns / 1e6) + 1;
    }
    for (unsigned lv = 1; lv <= w->cfg->retries; lv++) {
        const ring_t *r = &w->retry[lv];
        if (r->len) {
            uint64_t due = r->e[r->head].due_ns;
            int d = due <= now ? 0 : (int)((due - now) / 1000000u) + 1;
            if (d < ms)
                ms = d;
        }
    }
    return ms < 100 ? ms : 100;
}

/* At the end: seqs an open connection never got, counted against the parent's list of
 * every seq seen by any worker. */
static void finish(worker_t *w)
{
    uint64_t max = w->ctl->max_seq > w->st->max_seq ? w->ctl->max_seq : w->st->max_seq;
    w->st->max_seq = max;
    for (size_t fd = 0; fd < w->nconn; fd++) {
        conn_t *c = &w->conn[fd];
        if (c->state == C_OPEN && max > c->last_seq)
            count_missing(w, c, c->last_seq, max + 1);
    }
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        w->st->cpu_user_us =
            (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec;
        w->st->cpu_sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
    }
    /* Every figure is final: closing 15,000 sockets (with 60 other workers doing the same on
     * two cores) may outlast the parent's grace, and being killed then is not an error. */
    __atomic_store_n(&w->st->figures_final, 1, __ATOMIC_RELEASE);
    for (size_t fd = 0; fd < w->nconn; fd++) {
        conn_t *c = &w->conn[fd];
        if (c->state == C_FREE)
            continue;
        free(c->pend);
        (void)close((int)fd); /* closing is all that is left; the kernel sends FIN */
    }
}

int wsp_worker_run(const wsp_bench_cfg_t *cfg, uint64_t first, uint64_t end, wsp_wstats_t *st,
                   const wsp_ctl_t *ctl, volatile sig_atomic_t *stop)
{
    uint64_t nofile = 0;
    int rv = wsp_net_raise_nofile(&nofile);
    if (rv < 0)
        return rv;
    worker_t *w = wsp_xcalloc(1, sizeof(*w));
    w->cfg = cfg;
    w->st = st;
    w->ctl = ctl;
    w->next_slot = first;
    w->end_slot = end;
    w->nconn = nofile;
    w->conn = wsp_xcalloc(w->nconn, sizeof(conn_t));
    w->hs = wsp_xcalloc(cfg->concurrency, sizeof(hs_t));
    w->hs_free = wsp_xcalloc(cfg->concurrency, sizeof(uint16_t));
    for (size_t i = 0; i < cfg->concurrency; i++) {
        w->hs[i].fd = -1;
        w->hs_free[w->nfree++] = (uint16_t)(cfg->concurrency - 1 - i);
    }
    w->retry = wsp_xcalloc(cfg->retries + 1, sizeof(ring_t));
    for (unsigned lv = 1; lv <= cfg->retries; lv++) {
        w->retry[lv].cap = end - first;
        w->retry[lv].e = wsp_xcalloc(end - first, sizeof(retry_t));
    }
    w->per_ns = cfg->rate > 0 ? cfg->rate / cfg->procs / 1e9 : 0;
    w->epoch0_ms = wsp_net_epoch_ms();
    w->rng = wsp_net_mono_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    int hl = snprintf(w->req_head, sizeof(w->req_head),
                      "GET %s HTTP/1.1\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                      "Sec-WebSocket-Key: ",
                      cfg->path, cfg->host, (unsigned)cfg->port);
    assert(hl > 0 && (size_t)hl < sizeof(w->req_head)); /* the path is at most 255 bytes */
    w->req_head_len = (size_t)hl;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0)
        return -errno;
    if (cfg->io_uring) { /* asked for: no silent fallback, the run measures this path */
        if ((rv = wsp_uring_new(&w->ring, MAX_EVENTS)) < 0)
            return rv;
        w->ufd = wsp_xcalloc(MAX_EVENTS, sizeof(*w->ufd));
        w->ubuf = wsp_xcalloc(MAX_EVENTS, URING_BUF);
    }

    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = wsp_net_mono_ns();
    w->last_refill_ns = now;
    uint64_t next_sweep = now + SWEEP_NS;
    while (!*stop) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, ramp_wait_ms(w, now));
        if (n < 0 && errno != EINTR)
            return -errno;
        now = wsp_net_mono_ns();
        if (w->ring != NULL && n > 0)
            batch_events(w, evs, n, now);
        else
            for (int i = 0; i < n; i++)
                on_event(w, evs[i].data.fd, evs[i].events, now);
        ramp(w, now);
        /* A broadcast arrives a few messages per wake-up when the bench is faster than the
         * server: each wake-up is a context switch that costs more than the recv(). Once
         * this worker's ramp is over, let a small batch become a big one. */
        if (n > 0 && n < SMALL_BATCH && cfg->coalesce_us && ramp_over(w)) {
            struct timespec ts = {0, (long)cfg->coalesce_us * 1000};
            (void)nanosleep(&ts, NULL); /* EINTR: SIGTERM, seen at the loop's top */
        }
        if (now >= next_sweep) {
            sweep(w, now);
            next_sweep = now + SWEEP_NS;
        }
    }
    finish(w);
    wsp_uring_free(w->ring);
    return 0;
}
