#ifndef WSP_WORKER_INT_H
#define WSP_WORKER_INT_H

/* Internal to one bench worker process: the state its two halves share. worker.c runs the
 * epoll loop and reads the open connections (the per-message path); dial.c opens them
 * (connect, upgrade, retries, pacing). Not for the parent. */

#include <stddef.h>
#include <stdint.h>
#include <time.h>

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
    char accept[32]; /* expected Sec-WebSocket-Accept, NUL-terminated */
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
    char req_head[640]; /* the upgrade request up to the key */
    size_t req_head_len;
    /* --deflate (issue #19); all NULL without it */
    wsp_pmd_params_t pmd_offer; /* what every upgrade offers */
    wsp_deflate_t *zd;          /* inflates compressed messages: one per worker */
    uint8_t *zout;              /* WSP_WORKER_ZOUT bytes: the message inflated */
    uint8_t *zsplit;            /* WSP_RX_EXT bytes: a compressed frame a read split */
    wsp_uring_t *ring;          /* --io-uring on: batched receives */
    int *ufd;                   /* per batch slot: the connection's fd */
    uint8_t *ubuf;              /* per batch slot: URING_BUF bytes */
    uint8_t rbuf[65536];        /* one read buffer for every connection */
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

/* dial.c */

/* Closes fd, whatever its state; the caller counted why. */
void wsp__dial_drop(wsp_worker_t *w, int fd);

/* Handles an epoll event of a connection that is CONNECTING or in its HANDSHAKE. */
void wsp__dial_event(wsp_worker_t *w, int fd, uint32_t events, uint64_t now);

/* Starts connects (new slots, due retries) as far as --concurrency and --rate allow. */
void wsp__dial_ramp(wsp_worker_t *w, uint64_t now);

/* Fails the handshakes past their deadline. */
void wsp__dial_sweep(wsp_worker_t *w, uint64_t now);

/* Whether this worker has nothing left to connect: no slot, handshake or retry pending. */
int wsp__dial_over(const wsp_worker_t *w);

/* Milliseconds epoll may sleep before the ramp has something to do. */
int wsp__dial_wait_ms(const wsp_worker_t *w, uint64_t now);

#endif
