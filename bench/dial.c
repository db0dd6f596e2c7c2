/* The connect side of a bench worker: slots to sockets, the upgrade request and its answer,
 * retries with backoff, handshake deadlines, and the pace of the ramp. Once a connection is
 * OPEN, worker.c reads it. */
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tokens.h"
#include "worker_int.h"

#define BACKOFF_NS 50000000ull  /* first retry after 50 ms, doubling */
#define WSP_DIAL_TOKEN_MAX 2048 /* bench/tokens.c's cap on one token */

static void hs_release(wsp_worker_t *w, unsigned i)
{
    w->hs[i].fd = -1;
    w->hs_free[w->nfree++] = (uint16_t)i;
    w->st->inflight--;
}

static void ring_push(wsp_ring_t *r, uint64_t slot, uint64_t due)
{
    assert(r->len < r->cap); /* each slot sits in at most one ring */
    r->e[(r->head + r->len) % r->cap] = (wsp_retry_t){slot, due};
    r->len++;
}

void wsp__dial_drop(wsp_worker_t *w, int fd)
{
    wsp_bconn_t *c = &w->conn[fd];
    if (c->state == WSP_BCONN_CONNECTING || c->state == WSP_BCONN_HANDSHAKE)
        hs_release(w, c->hs);
    else if (c->state == WSP_BCONN_OPEN)
        w->st->active--;
    if (w->ssl)
        wsp__tlsc_drop(w, fd);
    free(c->pend);
    memset(c, 0, sizeof(*c));
    (void)close(fd); /* nothing to do about a failed close of a socket */
}

/* A connect that failed: retry with backoff, or count it. */
static void connect_failed(wsp_worker_t *w, int fd, uint64_t slot, unsigned retries, int err,
                           uint64_t now)
{
    if (fd >= 0)
        wsp__dial_drop(w, fd);
    w->st->last_errno = (uint64_t)err;
    if (retries < w->cfg->retries && !w->ctl->stop_ramp) {
        w->st->retries++;
        ring_push(&w->retry[retries + 1], slot, now + (BACKOFF_NS << retries));
    } else {
        w->st->err[WSP_ERR_CONNECT]++;
        w->st->resolved++;
        if (w->resume_since)
            w->resume_since[slot - w->first] = 0; /* counted here, not as not resumed */
    }
}

/* Ends a handshake with an error of the given kind. */
static void hs_fail(wsp_worker_t *w, int fd, int kind)
{
    w->st->err[kind]++;
    w->st->resolved++;
    wsp__dial_drop(w, fd);
}

/* Writes the upgrade request. Returns 1 if sent, 0 if not connected yet (wait for EPOLLOUT),
 * -1 if the connection failed (counted, closed). */
static int send_request(wsp_worker_t *w, int fd, uint64_t now)
{
    wsp_bconn_t *c = &w->conn[fd];
    wsp_hs_t *h = &w->hs[c->hs];
    uint8_t raw[16];
    uint64_t r1 = wsp__worker_rng(w), r2 = wsp__worker_rng(w);
    memcpy(raw, &r1, 8);
    memcpy(raw + 8, &r2, 8);
    /* The request line (with ?since=&epoch= for a dropped connection that comes back), the
     * head, the key, then the slot's token when there are tokens. */
    char req[sizeof(w->req_head) + 384 + 64 + WSP_DIAL_TOKEN_MAX];
    uint32_t since = w->resume_since ? w->resume_since[h->slot - w->first] : 0;
    int ln = since ? snprintf(req, 384, "GET %s%csince=time:%u&epoch=%s HTTP/1.1", w->cfg->path,
                              strchr(w->cfg->path, '?') ? '&' : '?', since - 1, w->epoch)
                   : snprintf(req, 384, "GET %s HTTP/1.1", w->cfg->path);
    memcpy(req + ln, w->req_head, w->req_head_len);
    char *key = req + ln + w->req_head_len;
    EVP_EncodeBlock((unsigned char *)key, raw, 16); /* 24 characters */
    char cat[24 + 36];
    memcpy(cat, key, 24);
    memcpy(cat + 24, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
    unsigned char sha[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)cat, sizeof(cat), sha);
    EVP_EncodeBlock((unsigned char *)h->accept, sha, SHA_DIGEST_LENGTH); /* 28 + NUL */
    size_t len = (size_t)ln + w->req_head_len + 24;
    const wsp_tokens_t *tk = w->cfg->tokens;
    size_t tlen = 0;
    const char *tok = tk ? wsp_tokens_get(tk, h->slot, &tlen) : NULL;
    if (tok != NULL && tlen <= WSP_DIAL_TOKEN_MAX) {
        memcpy(req + len, "\r\nAuthorization: Bearer ", 24);
        memcpy(req + len + 24, tok, tlen);
        len += 24 + tlen;
    }
    memcpy(req + len, "\r\n\r\n", 4);
    len += 4;
    ssize_t n = w->ssl ? wsp__tlsc_send(w, fd, req, len) : send(fd, req, len, MSG_NOSIGNAL);
    if (n == (ssize_t)len) {
        c->state = WSP_BCONN_HANDSHAKE;
        return 1;
    }
    /* wss://: the TLS handshake is done, so the socket is connected: a retry of SSL_write()
     * would have to repeat these very bytes, and a 200-byte write never waits here anyway. */
    if (n < 0 && (errno == EAGAIN || errno == EINTR) && !w->ssl)
        return 0; /* not connected yet: wait for EPOLLOUT */
    if (n >= 0 || w->ssl) {
        hs_fail(w, fd, WSP_ERR_HANDSHAKE_INVALID); /* a 200-byte write cut short: give up */
        return -1;
    }
    connect_failed(w, fd, h->slot, h->retries, errno, now);
    return -1;
}

/* A non-blocking socket from the slot's source address towards the server; -1 if it
 * failed (counted, retried). */
static int open_socket(wsp_worker_t *w, uint64_t slot, unsigned retries, uint64_t now)
{
    const wsp_bench_cfg_t *cfg = w->cfg;
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
    return fd;
}

/* wss://: one step of fd's TLS handshake; once done, the upgrade request. 1 when it was
 * sent, 0 while the handshake goes on, -1 if the connection failed (counted, closed). */
static int tls_step(wsp_worker_t *w, int fd, uint64_t now)
{
    wsp_hs_t *h = &w->hs[w->conn[fd].hs];
    int err = 0;
    int r = wsp__tlsc_handshake(w, fd, now, &err);
    if (r == 0)
        return 0;
    if (r == -1) {
        connect_failed(w, fd, h->slot, h->retries, err, now);
        return -1;
    }
    if (r == -2) {
        hs_fail(w, fd, WSP_ERR_TLS);
        return -1;
    }
    return send_request(w, fd, now);
}

static int start_connect(wsp_worker_t *w, uint64_t slot, unsigned retries, uint64_t now)
{
    if (w->st->first_connect_us == 0)
        w->st->first_connect_us = wsp__worker_epoch_us();
    int fd = open_socket(w, slot, retries, now);
    if (fd < 0)
        return -1;
    unsigned i = w->hs_free[--w->nfree];
    wsp_hs_t *h = &w->hs[i];
    h->deadline_ns = now + (uint64_t)(w->cfg->handshake_timeout * 1e9);
    h->slot = slot;
    h->fd = fd;
    h->retries = retries;
    h->rlen = 0;
    w->st->inflight++;
    wsp_bconn_t *c = &w->conn[fd];
    c->state = WSP_BCONN_CONNECTING;
    c->hs = (uint16_t)i;
    /* On loopback the handshake has usually completed when connect() returns: send the
     * upgrade now and skip an EPOLLOUT wake-up; if not yet connected, wait for EPOLLOUT.
     * Edge-triggered: EPOLLIN per arrival, and a short read means the socket is drained, so
     * no read ends in EAGAIN in the common case. */
    int sent = w->ssl ? 0 : send_request(w, fd, now); /* wss://: TLS first */
    if (sent < 0)
        return -1; /* counted and closed */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET | (sent ? 0u : EPOLLOUT), .data.fd = fd};
    if (epoll_ctl(w->ep, EPOLL_CTL_ADD, fd, &ev) != 0) {
        connect_failed(w, fd, slot, retries, errno, now);
        return -1;
    }
    if (w->ssl) /* the ClientHello now, or at EPOLLOUT if not connected yet */
        return tls_step(w, fd, now) < 0 ? -1 : 0;
    return 0;
}

/* ---- the answer ---- */

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

/* The next header line of p[0..n) from *pos on named name (lowercase, with its colon): its
 * value, trimmed, in *v and *vlen. Returns 0 when there is none. */
static int next_header(const char *p, size_t n, const char *name, size_t *pos, const char **v,
                       size_t *vlen)
{
    const size_t nl = strlen(name);
    for (size_t i = *pos; i + 2 + nl < n; i++) {
        if (p[i] != '\n' || strncasecmp(p + i + 1, name, nl) != 0)
            continue;
        size_t j = i + 1 + nl;
        while (j < n && (p[j] == ' ' || p[j] == '\t'))
            j++;
        size_t k = j;
        while (k < n && p[k] != '\r' && p[k] != '\n')
            k++;
        *pos = k;
        while (k > j && (p[k - 1] == ' ' || p[k - 1] == '\t'))
            k--;
        *v = p + j;
        *vlen = k - j;
        return 1;
    }
    return 0;
}

/* The reason index of a token auth refusal's body {"error":"<reason>"} (what of it arrived
 * with the headers: the server writes the answer at once). */
static int auth_reason(const char *body, size_t n)
{
    static const char pre[] = "{\"error\":\"";
    const size_t pl = sizeof(pre) - 1;
    if (n < pl || memcmp(body, pre, pl) != 0)
        return WSP_AUTH_REASONS - 1;
    const char *end = memchr(body + pl, '"', n - pl);
    return end ? wsp_stats_auth_index(body + pl, (size_t)(end - body - pl)) : WSP_AUTH_REASONS - 1;
}

/* Whether the headers in p[0..n) carry the field name (lowercase, with its colon) with the
 * value want[0..wl), on its first line of that name. */
static int field_is(const char *p, size_t n, const char *name, const char *want, size_t wl)
{
    size_t pos = 0, len;
    const char *v;
    return next_header(p, n, name, &pos, &v, &len) && len == wl && memcmp(v, want, wl) == 0;
}

/* Whether the headers in p[0..n) carry Sec-WebSocket-Accept: want. */
static int accept_ok(const char *p, size_t n, const char *want)
{
    return field_is(p, n, "sec-websocket-accept:", want, 28);
}

/* --deflate: what the answer p[0..n) says to the offer, every Sec-WebSocket-Extensions line
 * read (common/pmd.c): 1 accepted, 0 declined, -1 an answer the client must fail (RFC 7692
 * section 7.1). Without --deflate nothing was offered and nothing is read. */
static int pmd_answer(const wsp_worker_t *w, const char *p, size_t n)
{
    wsp_pmd_list_t l;
    wsp_pmd_init(&l);
    size_t pos = 0, len;
    const char *v;
    while (next_header(p, n, "sec-websocket-extensions:", &pos, &v, &len))
        if (wsp_pmd_parse(&l, v, len) < 0)
            return -1;
    wsp_pmd_t got;
    int rv = wsp_pmd_check(&w->pmd_offer, &l, &got);
    return rv < 0 ? -1 : rv;
}

/* The complete answer headers (hlen bytes) of fd: fails it, or makes it OPEN and hands the
 * frames behind the 101 (got bytes read in all, the last read took n of space) to worker.c. */
static void hs_answer(wsp_worker_t *w, int fd, size_t hlen, size_t n, size_t space)
{
    wsp_bconn_t *c = &w->conn[fd];
    wsp_hs_t *h = &w->hs[c->hs];
    int status = parse_status(h->rbuf, hlen);
    if (status != 101) {
        if (status == 401 || status == 403) /* token auth: why, from the body */
            w->st->auth_fail[auth_reason(h->rbuf + hlen, h->rlen - hlen)]++;
        if (status > 0) {
            wsp_stats_code_add(&w->st->statuses, (uint32_t)status, 1);
            hs_fail(w, fd, WSP_ERR_HANDSHAKE_STATUS);
        } else {
            hs_fail(w, fd, WSP_ERR_HANDSHAKE_INVALID);
        }
        return;
    }
    int pmd = w->zd ? pmd_answer(w, h->rbuf, hlen) : 0;
    if (!accept_ok(h->rbuf, hlen, h->accept) || pmd < 0 ||
        (w->cfg->framed && !field_is(h->rbuf, hlen, "sec-websocket-protocol:", "wspush.v1", 9))) {
        hs_fail(w, fd, WSP_ERR_HANDSHAKE_INVALID);
        return;
    }
    if (pmd) {
        c->flags |= WSP_BCONN_F_DEFLATE;
        w->st->deflate_conns++;
    }
    uint64_t now_us = wsp__worker_epoch_us();
    size_t extra = h->rlen - hlen;
    if (extra) /* frames right behind the 101 */
        memcpy(w->rbuf, h->rbuf + hlen, extra);
    uint64_t slot = h->slot;
    hs_release(w, c->hs);
    c->state = WSP_BCONN_OPEN;
    c->est_ms = (uint32_t)(now_us / 1000u - w->epoch0_ms);
    if (w->cfg->framed)
        c->flags |= WSP_BCONN_F_HELLO;
    if (w->slot_of) { /* --recover */
        w->slot_of[fd] = (uint32_t)slot;
        uint32_t since = w->resume_since[slot - w->first];
        if (since) { /* it was dropped: it has everything up to since - 1 already */
            c->last_seq = since - 1;
            c->first_seq = w->resume_first[slot - w->first];
            c->flags |= WSP_BCONN_F_RESUMED;
            w->resume_since[slot - w->first] = 0;
            w->st->resumed++;
        }
    }
    w->st->active++;
    w->st->setups++;
    w->st->resolved++;
    w->st->last_setup_us = now_us;
    if (extra && wsp__worker_frames(w, fd, w->rbuf, extra, now_us) < 0)
        return;
    /* The buffer filled up: there may be more. wss://: OpenSSL may hold more whatever the
     * size of the last read, and edge-triggered epoll will not say so. */
    if (n == space || w->ssl)
        wsp__worker_read(w, fd);
}

static void hs_read(wsp_worker_t *w, int fd)
{
    wsp_hs_t *h = &w->hs[w->conn[fd].hs];
    for (;;) {
        size_t space = WSP_HS_BUF - 1 - h->rlen;
        if (space == 0) {
            hs_fail(w, fd, WSP_ERR_HANDSHAKE_INVALID); /* headers too long */
            return;
        }
        ssize_t n = w->ssl ? wsp__tlsc_recv(w, fd, h->rbuf + h->rlen, space)
                           : recv(fd, h->rbuf + h->rlen, space, 0);
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
            if ((size_t)n < space && !w->ssl) /* wss://: until OpenSSL says EAGAIN */
                return;
            continue;
        }
        hs_answer(w, fd, (size_t)(end - h->rbuf) + 4, (size_t)n, space);
        return;
    }
}

void wsp__dial_event(wsp_worker_t *w, int fd, uint32_t events, uint64_t now)
{
    wsp_bconn_t *c = &w->conn[fd];
    if (c->state == WSP_BCONN_HANDSHAKE) {
        if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            hs_read(w, fd);
        return;
    }
    if (c->state != WSP_BCONN_CONNECTING)
        return;
    wsp_hs_t *h = &w->hs[c->hs];
    if (events & EPOLLERR) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0)
            err = ECONNREFUSED;
        connect_failed(w, fd, h->slot, h->retries, err, now);
        return;
    }
    if (w->ssl) { /* wss://: the TLS handshake reads and writes as it needs */
        if (tls_step(w, fd, now) > 0 && (events & (EPOLLIN | EPOLLHUP)))
            hs_read(w, fd);
        return;
    }
    if (!(events & EPOLLOUT) || send_request(w, fd, now) <= 0)
        return;
    if (events & (EPOLLIN | EPOLLHUP))
        hs_read(w, fd);
}

/* ---- the ramp and the deadlines ---- */

void wsp__dial_again(wsp_worker_t *w, uint64_t slot, uint32_t last_seq, uint32_t first_seq)
{
    w->resume_since[slot - w->first] = last_seq + 1;
    w->resume_first[slot - w->first] = first_seq;
    ring_push(&w->again, slot, 0);
}

void wsp__dial_ramp(wsp_worker_t *w, uint64_t now)
{
    if (w->ctl->resume && w->again.len) { /* SIGHUP: the dropped ones come back first */
        if (w->st->resume_start_us == 0)
            w->st->resume_start_us = wsp__worker_epoch_us();
        while (w->again.len && w->nfree > 0) {
            uint64_t slot = w->again.e[w->again.head].slot;
            w->again.head = (w->again.head + 1) % w->again.cap;
            w->again.len--;
            start_connect(w, slot, 0, now);
        }
    }
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
            wsp_ring_t *r = &w->retry[lv];
            if (r->len && r->e[r->head].due_ns <= now) {
                retries = lv;
                break;
            }
        }
        if (retries) {
            wsp_ring_t *r = &w->retry[retries];
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

void wsp__dial_sweep(wsp_worker_t *w, uint64_t now)
{
    for (size_t i = 0; i < w->cfg->concurrency; i++) {
        wsp_hs_t *h = &w->hs[i];
        if (h->fd >= 0 && now >= h->deadline_ns)
            hs_fail(w, h->fd, WSP_ERR_TIMEOUT);
    }
}

int wsp__dial_over(const wsp_worker_t *w)
{
    if (w->st->inflight > 0 || (w->ctl->resume && w->again.len))
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

int wsp__dial_wait_ms(const wsp_worker_t *w, uint64_t now)
{
    if (w->ctl->resume && w->again.len && w->nfree > 0)
        return 0;
    if (w->ctl->stop_ramp || w->nfree == 0)
        return 100;
    int ms = 100;
    if (w->next_slot < w->end_slot) {
        if (w->per_ns == 0 || w->tokens >= 1.0)
            return 0;
        ms = (int)((1.0 - w->tokens) / w->per_ns / 1e6) + 1;
    }
    for (unsigned lv = 1; lv <= w->cfg->retries; lv++) {
        const wsp_ring_t *r = &w->retry[lv];
        if (r->len) {
            uint64_t due = r->e[r->head].due_ns;
            int d = due <= now ? 0 : (int)((due - now) / 1000000u) + 1;
            if (d < ms)
                ms = d;
        }
    }
    return ms < 100 ? ms : 100;
}
