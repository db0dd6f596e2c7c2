#ifndef WSP_WORKER_INT_H
#define WSP_WORKER_INT_H

/* Internal to one bench worker process: the state its two halves share. worker.c runs the
 * epoll loop and reads the open connections (the per-message path); dial.c opens them
 * (connect, upgrade, retries, pacing). Not for the parent. */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/ssl.h>

#include "args.h"
#include "bconn.h"
#include "deflate.h"
#include "pmd.h"
#include "stats.h"
#include "uring.h"

#define WSP_HS_BUF 1024 /* a 101 answer is ~130 bytes; longer headers are refused */

/* --deflate: the largest message inflated (wspush publishes at most 64 KiB). A compressed
 * frame split across reads is kept up to WSP_RX_EXT bytes (wspush's 2 KiB JSON compresses to
 * ~760 bytes; a longer split frame counts as a bad message). */
#define WSP_WORKER_ZOUT (64 * 1024)

/* One per connect or handshake in flight; at most --concurrency of them. */
typedef struct wsp_hs_s {
    uint64_t deadline_ns;
    uint64_t slot;
    int fd; /* -1 = free */
    unsigned retries;
    uint64_t tls_t0_ns; /* wss://: when the TLS handshake started */
    char accept[32];    /* expected Sec-WebSocket-Accept, NUL-terminated */
    unsigned rlen;
    char rbuf[WSP_HS_BUF];
} wsp_hs_t;

typedef struct wsp_retry_s {
    uint64_t slot;
    uint64_t due_ns;
} wsp_retry_t;

/* One FIFO per retry level: every entry of a level has the same backoff, so each ring is in
 * due order. */
typedef struct wsp_ring_s {
    wsp_retry_t *e;
    size_t cap, head, len;
} wsp_ring_t;

typedef struct wsp_worker_s {
    const wsp_bench_cfg_t *cfg;
    wsp_wstats_t *st;
    const wsp_ctl_t *ctl;
    int ep;
    uint64_t next_slot, end_slot;
    wsp_bconn_t *conn;
    size_t nconn;
    wsp_hs_t *hs;
    uint16_t *hs_free;
    size_t nfree;
    wsp_ring_t *retry; /* [cfg->retries + 1], level 0 unused */
    double tokens, per_ns;
    uint64_t last_refill_ns;
    uint64_t epoch0_ms;
    uint64_t rng;
    char req_head[640]; /* the upgrade request after its request line, up to the key */
    size_t req_head_len;
    /* --deflate (issue #19); all NULL without it */
    wsp_pmd_params_t pmd_offer; /* what every upgrade offers */
    wsp_deflate_t *zd;          /* inflates compressed messages: one per worker */
    uint8_t *zout;              /* WSP_WORKER_ZOUT bytes: the message inflated */
    uint8_t *zsplit;            /* WSP_RX_EXT bytes: a compressed frame a read split */
    wsp_uring_t *ring;          /* --io-uring on: batched receives */
    int *ufd;                   /* per batch slot: the connection's fd */
    uint8_t *ubuf;              /* per batch slot: URING_BUF bytes */
    /* --recover (issue #17): a dropped connection's slot waits in again until SIGHUP, then
     * comes back with since = resume_since[slot - first] - 1 (0: nothing to resume) */
    uint64_t first;         /* this worker's first slot */
    uint32_t *slot_of;      /* by fd: the slot an OPEN connection came from */
    uint32_t *resume_since; /* by slot: last seq + 1 when it comes back resuming */
    uint32_t *resume_first; /* by slot: its first_seq, carried over */
    wsp_ring_t again;       /* dropped slots waiting for SIGHUP */
    char epoch[33];         /* from the first hello: every connection shares it */
    SSL_CTX *tls;           /* wss://: this worker's client context (NULL for ws://) */
    SSL **ssl;              /* wss://: per fd (nconn of them), the connection's SSL object */
    SSL_SESSION *sess;      /* wss://: the latest session ticket: new connections resume it */
    uint8_t rbuf[65536];    /* one read buffer for every connection */
} wsp_worker_t;

static inline uint64_t wsp__worker_epoch_us(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_REALTIME, &ts); /* cannot fail for CLOCK_REALTIME */
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* xorshift64*: keys and masks need to differ, not to be secret. */
static inline uint64_t wsp__worker_rng(wsp_worker_t *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1Dull;
}

/* worker.c */

/* Parses n received bytes of an OPEN connection. Returns 0, or -1 if it was closed. */
int wsp__worker_frames(wsp_worker_t *w, int fd, const uint8_t *p, size_t n, uint64_t now_us);

/* Reads an OPEN connection until the socket is drained (edge-triggered) or it closed. */
void wsp__worker_read(wsp_worker_t *w, int fd);

/* Bits of wsp_bconn_t.flags the per-message path sets (bit 3 is bconn.h's
 * WSP_BCONN_F_DEFLATE). */
enum {
    WSP_BCONN_F_FRAG = 1,    /* inside a fragmented data message */
    WSP_BCONN_F_HELLO = 2,   /* wspush.v1: the hello is still to come */
    WSP_BCONN_F_RESUMED = 4, /* --recover: came back with since= (dropped once already) */
};

/* dial.c */

/* Closes fd, whatever its state; the caller counted why. */
void wsp__dial_drop(wsp_worker_t *w, int fd);

/* Handles an epoll event of a connection that is CONNECTING or in its HANDSHAKE. */
void wsp__dial_event(wsp_worker_t *w, int fd, uint32_t events, uint64_t now);

/* Starts connects (new slots, due retries) as far as --concurrency and --rate allow. */
void wsp__dial_ramp(wsp_worker_t *w, uint64_t now);

/* Fails the handshakes past their deadline. */
void wsp__dial_sweep(wsp_worker_t *w, uint64_t now);

/* A dropped connection's slot, kept to come back with since= on SIGHUP (--recover). */
void wsp__dial_again(wsp_worker_t *w, uint64_t slot, uint32_t last_seq, uint32_t first_seq);

/* Whether this worker has nothing left to connect: no slot, handshake or retry pending. */
int wsp__dial_over(const wsp_worker_t *w);

/* Milliseconds epoll may sleep before the ramp has something to do. */
int wsp__dial_wait_ms(const wsp_worker_t *w, uint64_t now);

/* tlsc.c: the wss:// client, OpenSSL SSL objects over the worker's sockets */

/* Sets up w->tls and w->ssl for cfg (CA or no check, version, ALPN, session tickets).
 * Returns 0 or a negative errno. */
int wsp__tlsc_init(wsp_worker_t *w);

/* Starts (the first call) or continues fd's TLS handshake. 1 done (timed and counted), 0 in
 * progress, -1 the TCP connection failed (errno in *err: retry), -2 TLS failed. */
int wsp__tlsc_handshake(wsp_worker_t *w, int fd, uint64_t now, int *err);

/* As recv()/send() on fd's TLS connection: bytes, 0 at EOF, or -1 with errno (EAGAIN: try
 * again after the next event). */
ssize_t wsp__tlsc_recv(wsp_worker_t *w, int fd, void *buf, size_t len);
ssize_t wsp__tlsc_send(wsp_worker_t *w, int fd, const void *buf, size_t len);

/* Frees fd's SSL object, if any, keeping its session resumable (no I/O). */
void wsp__tlsc_drop(wsp_worker_t *w, int fd);

/* Frees the context and the latest session. */
void wsp__tlsc_free(wsp_worker_t *w);

#endif
