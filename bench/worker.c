/* A bench worker process: one raw edge-triggered epoll loop over its connections. This file
 * holds the loop and the per-message path (read, frames, ticks, the figures they feed);
 * dial.c opens the connections. */
#include "worker.h"

#include <assert.h>
#include <errno.h>
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
#include "tally.h"
#include "worker_int.h"

#define MAX_EVENTS 1024
#define SMALL_BATCH 64        /* fewer events than this per epoll_wait() are worth coalescing */
#define SWEEP_NS 100000000ull /* handshake deadlines are checked every 100 ms */
#define URING_BUF 1024        /* per batched receive: a tick is ~40 bytes; more is read by recv() */

/* What a connection carries between reads, allocated only while a frame or a fragmented
 * message is split across reads (rare: a tick is one small frame), or while it receives a
 * replay (--recover). */
typedef struct wsp_bpend_s {
    wsp_rx_t rx;              /* the split frame */
    uint8_t msg[WSP_RX_KEEP]; /* the first bytes of a fragmented message, for its tick */
    uint8_t mlen;
    uint32_t replay_top; /* messages up to here are the replay of a resume; 0: none */
    uint8_t zbuf[];      /* --deflate: WSP_RX_EXT bytes, rx.ext (a compressed frame whole) */
} wsp_bpend_t;

/* A connection's carry-over, zeroed: rx idle. With --deflate it keeps a split frame whole. */
static wsp_bpend_t *pend_new(const wsp_worker_t *w)
{
    wsp_bpend_t *pd = calloc(1, sizeof(wsp_bpend_t) + (w->zd ? WSP_RX_EXT : 0));
    if (pd && w->zd)
        pd->rx.ext = pd->zbuf;
    return pd;
}

/* ---- sending ---- */

/* Writes a masked control frame; best effort, a dead socket shows up on the next read. */
static void send_control(wsp_worker_t *w, int fd, unsigned op, const uint8_t *payload, size_t len)
{
    uint8_t buf[WSP_FRAME_HDR_MAX + 125];
    uint32_t r = (uint32_t)wsp__worker_rng(w);
    uint8_t mask[4];
    memcpy(mask, &r, 4);
    if (len > 125)
        len = 125;
    size_t h = wsp_frame_header(buf, op, len, mask);
    if (len)
        memcpy(buf + h, payload, len);
    wsp_frame_mask(buf + h, len, mask, 0);
    ssize_t n = w->ssl ? wsp__tlsc_send(w, fd, buf, h + len)
                       : send(fd, buf, h + len, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

static void send_close(wsp_worker_t *w, int fd, unsigned code)
{
    uint8_t p[2] = {(uint8_t)(code >> 8), (uint8_t)code};
    send_control(w, fd, WSP_OP_CLOSE, p, 2);
}

/* ---- frames ---- */

typedef struct frame_ctx_s {
    wsp_worker_t *w;
    int fd;
    unsigned close_code;
    int drop; /* --recover: the connection closes after this frame */
    uint64_t now_us;
} frame_ctx_t;

/* One message numbered seq, sent at t (server ms): counted for its seq; its latency unless it
 * is part of a replay (sent long ago, on purpose). */
static void on_seq(frame_ctx_t *x, wsp_bconn_t *c, uint64_t t, uint64_t seq)
{
    wsp_worker_t *w = x->w;
    wsp_wstats_t *st = w->st;
    st->messages++;
    if (c->pend && c->pend->replay_top && seq <= c->pend->replay_top) {
        st->replayed++;
        if (x->now_us > st->replay_end_us)
            st->replay_end_us = x->now_us;
        if (seq == c->pend->replay_top)
            c->pend->replay_top = 0; /* the replay is over: pend may go */
    } else {
        uint64_t sent_us = t * 1000u;
        wsp_hist_record(&st->latency, x->now_us > sent_us ? x->now_us - sent_us : 0);
    }
    if (w->cfg->recover_at > 0 && !(c->flags & WSP_BCONN_F_RESUMED) &&
        seq >= (uint64_t)w->cfg->recover_at)
        x->drop = 1; /* after its accounting: it has this one */
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
    if (seq > c->last_seq + 1u) { /* one compare per message, as before first_seq existed */
        if (c->last_seq == 0)
            c->first_seq = (uint32_t)seq; /* what came before it is judged at the end */
        else
            wsp_tally_gap(st->seq, c->last_seq, seq); /* open at last, so open for the gap */
    }
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

/* A wspush.v1 hello: the epoch (for resumes), and for a resume what it says and where its
 * replay ends. */
static void on_hello(frame_ctx_t *x, wsp_bconn_t *c, const uint8_t *p, size_t len)
{
    wsp_worker_t *w = x->w;
    wsp_rx_hello_t h;
    c->flags &= (uint8_t)~WSP_BCONN_F_HELLO;
    if (wsp_rx_parse_hello(p, len, &h) < 0) {
        w->st->err[WSP_ERR_BAD_MESSAGE]++;
        return;
    }
    w->st->hellos++;
    if (w->epoch[0] == '\0')
        memcpy(w->epoch, h.epoch, sizeof(w->epoch));
    if (!(c->flags & WSP_BCONN_F_RESUMED))
        return;
    w->st->recovered += h.recovered;
    w->st->not_recovered += h.refused;
    if (h.recovered && h.known && h.top > c->last_seq) {
        /* Only for a connection that resumes: where its replay ends; freed once it has. */
        if (c->pend == NULL && (c->pend = calloc(1, sizeof(wsp_bpend_t))) == NULL)
            return; /* costs the replay's marking only: those count as live messages */
        c->pend->replay_top = (uint32_t)h.top;
    }
}

/* A data message: a plain tick, or (--framed) a hello or a framed message. */
static void on_tick(frame_ctx_t *x, wsp_bconn_t *c, const uint8_t *p, size_t len)
{
    uint64_t t, seq;
    if (!x->w->cfg->framed) {
        if (wsp_rx_parse_tick(p, len, &t, &seq) < 0)
            x->w->st->err[WSP_ERR_BAD_MESSAGE]++;
        else
            on_seq(x, c, t, seq);
    } else if (c->flags & WSP_BCONN_F_HELLO) {
        on_hello(x, c, p, len);
    } else if (wsp_rx_parse_framed(p, len, &t, &seq) < 0) {
        x->w->st->err[WSP_ERR_BAD_MESSAGE]++;
    } else {
        on_seq(x, c, t, seq);
    }
}

#define FRAME_CLOSE 1 /* the server sent a close frame */
#define FRAME_DROP 2  /* --recover: this connection closes now, to come back later */

/* Appends the start of a fragment to the message prefix kept for its tick. */
static void frag_keep(wsp_bpend_t *pd, const uint8_t *p, size_t len)
{
    size_t k = WSP_RX_KEEP - pd->mlen < len ? WSP_RX_KEEP - pd->mlen : len;
    memcpy(pd->msg + pd->mlen, p, k);
    pd->mlen = (uint8_t)(pd->mlen + k);
}

/* --deflate: a compressed message, inflated whole (the client's share of the CPU), then read
 * as a tick. wspush sends each compressed message as one frame: a fragmented one is refused
 * like any frame the bench cannot follow. */
static int on_compressed(frame_ctx_t *x, wsp_bconn_t *c, const wsp_rx_frame_t *f)
{
    wsp_worker_t *w = x->w;
    if (!(c->flags & WSP_BCONN_F_DEFLATE) || (c->flags & WSP_BCONN_F_FRAG) || !f->fin)
        return -EPROTO; /* RSV1 the server never agreed to, or inside a fragmented message */
    if (f->len < f->full_len) { /* split across reads and over WSP_RX_EXT */
        w->st->err[WSP_ERR_BAD_MESSAGE]++;
        return 0;
    }
    size_t n = 0;
    if (wsp_deflate_inflate(w->zd, f->payload, f->len, w->zout, WSP_WORKER_ZOUT, &n) < 0)
        return -EPROTO; /* not DEFLATE, or over 64 KiB inflated: no server should send it */
    w->st->z_msgs++;
    w->st->z_wire_bytes += f->full_len;
    w->st->z_plain_bytes += n;
    on_tick(x, c, w->zout, n);
    return 0;
}

static int on_frame(void *arg, const wsp_rx_frame_t *f)
{
    frame_ctx_t *x = arg;
    wsp_bconn_t *c = &x->w->conn[x->fd];
    switch (f->opcode) {
    case WSP_OP_TEXT:
    case WSP_OP_BINARY:
        if (c->flags & WSP_BCONN_F_FRAG)
            return -EPROTO; /* a new message inside a fragmented one */
        if (f->fin) {
            on_tick(x, c, f->payload, f->len);
            return x->drop ? FRAME_DROP : 0;
        }
        if (c->pend == NULL && (c->pend = pend_new(x->w)) == NULL)
            return -ENOMEM; /* costs this connection only; calloc left pend->rx idle */
        c->pend->mlen = 0;
        frag_keep(c->pend, f->payload, f->len);
        c->flags |= WSP_BCONN_F_FRAG;
        return 0;
    case WSP_OP_CONT:
        if (!(c->flags & WSP_BCONN_F_FRAG))
            return -EPROTO;
        frag_keep(c->pend, f->payload, f->len);
        if (f->fin) {
            c->flags &= (uint8_t)~WSP_BCONN_F_FRAG;
            on_tick(x, c, c->pend->msg, c->pend->mlen);
        }
        return x->drop ? FRAME_DROP : 0;
    case WSP_OP_PING:
        send_control(x->w, x->fd, WSP_OP_PONG, f->payload, f->len);
        x->w->st->pings++;
        return 0;
    case WSP_OP_PONG:
        return 0;
    case WSP_OP_TEXT | WSP_FRAME_RSV1: /* compressed, or a protocol error without --deflate */
    case WSP_OP_BINARY | WSP_FRAME_RSV1:
        return on_compressed(x, c, f);
    default: /* WSP_OP_CLOSE, or RSV1 on a continuation or a control frame */
        if (f->opcode != WSP_OP_CLOSE)
            return -EPROTO;
        if (f->len == 1)
            return -EPROTO;
        x->close_code = f->len >= 2 ? (unsigned)f->payload[0] << 8 | f->payload[1] : 1005;
        return FRAME_CLOSE;
    }
}

int wsp__worker_frames(wsp_worker_t *w, int fd, const uint8_t *p, size_t n, uint64_t now_us)
{
    wsp_bconn_t *c = &w->conn[fd];
    frame_ctx_t x = {w, fd, 0, 0, now_us};
    int rv;
    if (c->pend) {
        rv = wsp_rx_feed(&c->pend->rx, p, n, on_frame, &x);
    } else {
        wsp_rx_t tmp; /* the common case: nothing carried over, nothing allocated */
        wsp_rx_reset(&tmp);
        tmp.ext = w->zsplit; /* NULL without --deflate */
        rv = wsp_rx_feed(&tmp, p, n, on_frame, &x);
        if (rv == 0 && !wsp_rx_idle(&tmp)) {
            if (c->pend == NULL && (c->pend = pend_new(w)) == NULL) {
                rv = -ENOMEM;
            } else {
                uint8_t *ext = c->pend->rx.ext;
                memcpy(&c->pend->rx, &tmp, sizeof(tmp)); /* pend may hold a fragment */
                c->pend->rx.ext = ext;
                if (ext && tmp.in_payload) /* --deflate: what came so far, from w->zsplit */
                    memcpy(ext, tmp.ext, tmp.elen);
            }
        }
    }
    if (rv == 0) {
        if (c->pend && wsp_rx_idle(&c->pend->rx) && !(c->flags & WSP_BCONN_F_FRAG) &&
            c->pend->replay_top == 0) {
            free(c->pend);
            c->pend = NULL;
        }
        return 0;
    }
    if (rv == FRAME_DROP) { /* no close frame: as a network that went away */
        w->st->dropped++;
        wsp__dial_again(w, w->slot_of[fd], c->last_seq, c->first_seq);
        wsp__dial_drop(w, fd);
        return -1;
    }
    if (rv == FRAME_CLOSE) {
        send_close(w, fd, x.close_code == 1005 ? 1000 : x.close_code); /* echo (RFC 6455 5.5.1) */
        w->st->err[WSP_ERR_CLOSED]++;
        wsp_stats_code_add(&w->st->closed_codes, x.close_code, 1);
    } else {
        send_close(w, fd, 1002);
        w->st->err[WSP_ERR_PROTOCOL]++; /* or out of memory for a split frame: as lost */
    }
    wsp__dial_drop(w, fd);
    return -1;
}

static void closed_abnormally(wsp_worker_t *w, int fd)
{
    w->st->err[WSP_ERR_CLOSED]++;
    wsp_stats_code_add(&w->st->closed_codes, 1006, 1);
    wsp__dial_drop(w, fd);
}

/* wss://: reads until OpenSSL has nothing more (edge-triggered: a short read says nothing,
 * records may wait inside it). */
static void worker_tls_read(wsp_worker_t *w, int fd)
{
    for (;;) {
        ssize_t n = wsp__tlsc_recv(w, fd, w->rbuf, sizeof(w->rbuf));
        if (n > 0) {
            if (wsp__worker_frames(w, fd, w->rbuf, (size_t)n, wsp__worker_epoch_us()) < 0)
                return;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        closed_abnormally(w, fd); /* EOF without a close frame, a reset, a TLS error */
        return;
    }
}

void wsp__worker_read(wsp_worker_t *w, int fd)
{
    if (w->ssl) { /* wss://: one predictable branch per read, none per message */
        worker_tls_read(w, fd);
        return;
    }
    for (;;) {
        ssize_t n = recv(fd, w->rbuf, sizeof(w->rbuf), 0);
        if (n > 0) {
            if (wsp__worker_frames(w, fd, w->rbuf, (size_t)n, wsp__worker_epoch_us()) < 0)
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

/* One epoll event: an open connection to read, or one that dial.c is opening. */
static void on_event(wsp_worker_t *w, int fd, uint32_t events, uint64_t now)
{
    if (w->conn[fd].state != WSP_BCONN_OPEN)
        wsp__dial_event(w, fd, events, now);
    else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        wsp__worker_read(w, fd);
}

/* One batched receive's result (ud = the batch slot). A full buffer may have more behind
 * it: the ordinary recv() loop drains it (edge-triggered). */
static void on_batch_recv(void *ud, int res, void *arg)
{
    wsp_worker_t *w = arg;
    size_t i = (size_t)(uintptr_t)ud;
    int fd = w->ufd[i];
    if (res == -EAGAIN || res == -EINTR)
        return; /* nothing there after all: the next edge brings it */
    if (res <= 0) {
        closed_abnormally(w, fd);
        return;
    }
    if (wsp__worker_frames(w, fd, w->ubuf + i * URING_BUF, (size_t)res, wsp__worker_epoch_us()) < 0)
        return;
    if (res == URING_BUF)
        wsp__worker_read(w, fd);
}

/* Handles one epoll batch: open connections' data through one io_uring submission, every
 * other event (handshakes, errors) the ordinary way. */
static void batch_events(wsp_worker_t *w, const struct epoll_event *evs, int n, uint64_t now)
{
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        if (w->conn[fd].state != WSP_BCONN_OPEN || !(evs[i].events & EPOLLIN) ||
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
            if (w->conn[evs[i].data.fd].state == WSP_BCONN_OPEN)
                wsp__worker_read(w, evs[i].data.fd);
    }
}

/* At the end: the figures are final once the CPU time is in; the parent counts what the
 * connections still open missed, from the table it shares with us. */
static void finish(wsp_worker_t *w)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        w->st->cpu_user_us =
            (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec;
        w->st->cpu_sys_us = (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
    }
    /* Dropped connections still waiting to come back (no SIGHUP, or their connect gave up
     * after the retries, which counted it as a connect error already): lost. */
    if (w->resume_since)
        for (uint64_t i = 0; i < w->end_slot - w->first; i++)
            if (w->resume_since[i])
                w->st->err[WSP_ERR_NOT_RESUMED]++;
    /* Every figure is final: closing 15,000 sockets (with 60 other workers doing the same on
     * two cores) may outlast the parent's grace, and being killed then is not an error. */
    __atomic_store_n(&w->st->figures_final, 1, __ATOMIC_RELEASE);
    for (size_t fd = 0; fd < w->nconn; fd++) {
        wsp_bconn_t *c = &w->conn[fd];
        if (c->state == WSP_BCONN_FREE)
            continue;
        if (w->ssl)
            wsp__tlsc_drop(w, (int)fd);
        free(c->pend);
        (void)close((int)fd); /* closing is all that is left; the kernel sends FIN */
    }
}

/* --deflate: the offer browsers make ("permessage-deflate; client_max_window_bits") as a
 * header line into ext[0..cap), and what inflating needs. Returns 0 or a negative errno. */
static int worker_deflate_init(wsp_worker_t *w, char *ext, size_t cap)
{
    w->pmd_offer = (wsp_pmd_params_t){.client_max_window_bits = WSP_PMD_BITS_NOVALUE};
    char offer[80];
    int n = wsp_pmd_offer(&w->pmd_offer, offer, sizeof(offer));
    if (n < 0)
        return n;
    snprintf(ext, cap, "Sec-WebSocket-Extensions: %s\r\n", offer); /* 69 bytes */
    w->zd = wsp_deflate_new(0);
    w->zout = malloc(WSP_WORKER_ZOUT);
    w->zsplit = malloc(WSP_RX_EXT);
    return w->zd && w->zout && w->zsplit ? 0 : -ENOMEM;
}

/* Sets up w for slots [first, end) of the run. Returns 0 or a negative errno. */
static int worker_init(wsp_worker_t *w, const wsp_bench_cfg_t *cfg, uint64_t first, uint64_t end)
{
    uint64_t nofile = 0;
    int rv = wsp_net_raise_nofile(&nofile);
    if (rv < 0)
        return rv;
    w->cfg = cfg;
    w->next_slot = first;
    w->end_slot = end;
    w->first = first;
    if (cfg->recover_at > 0) { /* a few bytes per slot and per fd, for resumes */
        w->slot_of = wsp_xcalloc(w->nconn, sizeof(*w->slot_of));
        w->resume_since = wsp_xcalloc(end - first, sizeof(*w->resume_since));
        w->resume_first = wsp_xcalloc(end - first, sizeof(*w->resume_first));
        w->again.cap = end - first;
        w->again.e = wsp_xcalloc(end - first, sizeof(wsp_retry_t));
    }
    if (nofile < w->nconn)
        w->nconn = nofile; /* an fd at or above nconn is refused (EMFILE) */
    w->hs = wsp_xcalloc(cfg->concurrency, sizeof(wsp_hs_t));
    w->hs_free = wsp_xcalloc(cfg->concurrency, sizeof(uint16_t));
    for (size_t i = 0; i < cfg->concurrency; i++) {
        w->hs[i].fd = -1;
        w->hs_free[w->nfree++] = (uint16_t)(cfg->concurrency - 1 - i);
    }
    w->retry = wsp_xcalloc(cfg->retries + 1, sizeof(wsp_ring_t));
    for (unsigned lv = 1; lv <= cfg->retries; lv++) {
        w->retry[lv].cap = end - first;
        w->retry[lv].e = wsp_xcalloc(end - first, sizeof(wsp_retry_t));
    }
    w->per_ns = cfg->rate > 0 ? cfg->rate / cfg->procs / 1e9 : 0;
    w->epoch0_ms = wsp_net_epoch_ms();
    w->st->epoch0_ms = w->epoch0_ms;
    w->rng = wsp_net_mono_ns() ^ ((uint64_t)getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    char ext[128] = "";
    if (cfg->deflate && (rv = worker_deflate_init(w, ext, sizeof(ext))) < 0)
        return rv;
    /* After the request line (dial.c writes it: a resume adds its query): the headers up to
     * the key. */
    int hl = snprintf(w->req_head, sizeof(w->req_head),
                      "\r\nHost: %s:%u\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n%s%s"
                      "Sec-WebSocket-Key: ",
                      cfg->host, (unsigned)cfg->port,
                      cfg->framed ? "Sec-WebSocket-Protocol: wspush.v1\r\n" : "", ext);
    assert(hl > 0 && (size_t)hl < sizeof(w->req_head));
    w->req_head_len = (size_t)hl;
    w->ep = epoll_create1(EPOLL_CLOEXEC);
    if (w->ep < 0)
        return -errno;
    if (cfg->tls && (rv = wsp__tlsc_init(w)) < 0)
        return rv;
    if (cfg->io_uring) { /* asked for: no silent fallback, the run measures this path */
        if ((rv = wsp_uring_new(&w->ring, MAX_EVENTS)) < 0)
            return rv;
        w->ufd = wsp_xcalloc(MAX_EVENTS, sizeof(*w->ufd));
        w->ubuf = wsp_xcalloc(MAX_EVENTS, URING_BUF);
    }
    return 0;
}

/* Runs the epoll loop until *stop. Returns 0 or a negative errno. */
static int worker_loop(wsp_worker_t *w, volatile sig_atomic_t *stop)
{
    const wsp_bench_cfg_t *cfg = w->cfg;
    struct epoll_event evs[MAX_EVENTS];
    uint64_t now = wsp_net_mono_ns();
    w->last_refill_ns = now;
    uint64_t next_sweep = now + SWEEP_NS;
    while (!*stop) {
        int n = epoll_wait(w->ep, evs, MAX_EVENTS, wsp__dial_wait_ms(w, now));
        if (n < 0 && errno != EINTR)
            return -errno;
        now = wsp_net_mono_ns();
        if (w->ring != NULL && n > 0)
            batch_events(w, evs, n, now);
        else
            for (int i = 0; i < n; i++)
                on_event(w, evs[i].data.fd, evs[i].events, now);
        wsp__dial_ramp(w, now);
        /* A broadcast arrives a few messages per wake-up when the bench is faster than the
         * server: each wake-up is a context switch that costs more than the recv(). Once
         * this worker's ramp is over, let a small batch become a big one. */
        if (n > 0 && n < SMALL_BATCH && cfg->coalesce_us && wsp__dial_over(w)) {
            struct timespec ts = {0, (long)cfg->coalesce_us * 1000};
            (void)nanosleep(&ts, NULL); /* EINTR: SIGTERM, seen at the loop's top */
        }
        if (now >= next_sweep) {
            wsp__dial_sweep(w, now);
            next_sweep = now + SWEEP_NS;
        }
    }
    return 0;
}

int wsp_worker_run(const wsp_bench_cfg_t *cfg, uint64_t first, uint64_t end, wsp_wstats_t *st,
                   const wsp_ctl_t *ctl, wsp_bconn_t *table, size_t table_len,
                   volatile sig_atomic_t *stop)
{
    wsp_worker_t *w = wsp_xcalloc(1, sizeof(*w));
    w->st = st;
    w->ctl = ctl;
    w->conn = table;
    w->nconn = table_len;
    int rv = worker_init(w, cfg, first, end);
    if (rv == 0)
        rv = worker_loop(w, stop);
    if (rv < 0)
        return rv; /* the process exits: nothing to free */
    finish(w);
    wsp_uring_free(w->ring);
    wsp__tlsc_free(w);
    wsp_deflate_free(w->zd);
    free(w->zout);
    free(w->zsplit);
    return 0;
}
