#include "uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#ifdef WSP_TEST_HOOKS
#include <stdatomic.h>
#include <stdio.h>
#endif

/* A flush retries io_uring_enter this often on EINTR/EAGAIN/EBUSY before giving up. */
#define WSP_URING_RETRIES 64

struct wsp_uring_s {
    struct io_uring ring;
    unsigned queued, cap;
    int broken;    /* a negative errno once the kernel refused the ring: never submit again */
    void **ud;     /* per queued operation, by queue position (the kernel's user_data) */
    uint8_t *done; /* per queued operation: its result was delivered */
    wsp_uring_stats_t stats;
};

/* Newest first: each set is what the kernel after it understands. SUBMIT_ALL (5.18) keeps
 * submitting past a bad entry so every queued operation gets a result; COOP_TASKRUN (5.19)
 * spares the owner thread interrupts for task work it collects anyway when it enters. Not
 * SINGLE_ISSUER: a server shard's ring is created by the coordinator thread and used by the
 * shard thread, which that flag refuses (-EEXIST on every submit). */
static const unsigned uring_setup_flags[] = {
    IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN,
    0,
};

#ifdef WSP_TEST_HOOKS
/* Fault injection, compiled only into test builds (uring.h). */

/* WSP_TEST_URING_FAIL=<errno>: the error every wsp_uring_new() returns; 0 = none. */
static int hook_new_error(void)
{
    const char *v = getenv("WSP_TEST_URING_FAIL");
    if (v == NULL || *v == '\0')
        return 0;
    int e = atoi(v);
    return e > 0 ? -e : -ENOSYS;
}

/* WSP_TEST_URING_FAIL_SUBMIT=<n>:<errno>: the error the n-th submission of the process
 * returns, counting from 1 while the variable is set (unset resets the count); 0 = none. */
static int hook_submit_error(void)
{
    static atomic_uint submits;
    const char *v = getenv("WSP_TEST_URING_FAIL_SUBMIT");
    unsigned n, e;
    if (v == NULL || sscanf(v, "%u:%u", &n, &e) != 2 || n == 0 || e == 0) {
        atomic_store_explicit(&submits, 0, memory_order_relaxed);
        return 0;
    }
    return atomic_fetch_add_explicit(&submits, 1, memory_order_relaxed) + 1 == n ? -(int)e : 0;
}
#else
static inline int hook_new_error(void) { return 0; }
#endif

static void uring_free_mem(wsp_uring_t *r)
{
    free(r->ud);
    free(r->done);
    free(r);
}

int wsp_uring_new(wsp_uring_t **out, unsigned entries)
{
    *out = NULL;
    if (entries == 0 || entries > 32768 || (entries & (entries - 1)) != 0)
        return -EINVAL;
    int forced = hook_new_error();
    if (forced < 0)
        return forced;
    wsp_uring_t *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->cap = entries;
    r->ud = calloc(entries, sizeof(*r->ud));
    r->done = calloc(entries, 1);
    if (r->ud == NULL || r->done == NULL) {
        uring_free_mem(r);
        return -ENOMEM;
    }
    int rv = -EINVAL;
    for (size_t i = 0; rv == -EINVAL && i < sizeof(uring_setup_flags) / sizeof(*uring_setup_flags);
         i++)
        rv = io_uring_queue_init(entries, &r->ring, uring_setup_flags[i]);
    if (rv < 0) {
        uring_free_mem(r);
        return rv;
    }
    *out = r;
    return 0;
}

void wsp_uring_free(wsp_uring_t *r)
{
    if (r == NULL)
        return;
    io_uring_queue_exit(&r->ring);
    uring_free_mem(r);
}

int wsp_uring_probe(void)
{
    wsp_uring_t *r;
    int rv = wsp_uring_new(&r, 8);
    if (rv < 0)
        return rv;
    /* A ring is not enough: seccomp profiles may allow io_uring_setup and refuse
     * io_uring_enter. Submit one no-op and wait for it. */
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (sqe == NULL) {
        wsp_uring_free(r);
        return -ENOMEM;
    }
    io_uring_prep_nop(sqe);
    rv = io_uring_submit_and_wait(&r->ring, 1);
    wsp_uring_free(r);
    return rv < 0 ? rv : 0;
}

/* Takes the next submission slot for ud; NULL with *err set when none can be had. */
static struct io_uring_sqe *uring_queue(wsp_uring_t *r, void *ud, int *err)
{
    *err = r->broken ? r->broken : -ENOSPC;
    if (r->broken || r->queued == r->cap)
        return NULL;
    struct io_uring_sqe *sqe = io_uring_get_sqe(&r->ring);
    if (sqe == NULL) /* cannot happen: one flush empties the whole queue */
        return NULL;
    r->ud[r->queued] = ud;
    r->done[r->queued] = 0;
    r->queued++;
    return sqe;
}

int wsp_uring_send(wsp_uring_t *r, int fd, const void *buf, size_t len, void *ud)
{
    int rv;
    struct io_uring_sqe *sqe = uring_queue(r, ud, &rv);
    if (sqe == NULL)
        return rv;
    /* MSG_DONTWAIT: a full socket completes at once with -EAGAIN instead of parking the
     * send in the kernel, so nothing outlives the flush and ordering stays ours. */
    io_uring_prep_send(sqe, fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, r->queued - 1); /* the slot: see uring_reap() */
    return 0;
}

int wsp_uring_recv(wsp_uring_t *r, int fd, void *buf, size_t len, void *ud)
{
    int rv;
    struct io_uring_sqe *sqe = uring_queue(r, ud, &rv);
    if (sqe == NULL)
        return rv;
    io_uring_prep_recv(sqe, fd, buf, len, MSG_DONTWAIT);
    io_uring_sqe_set_data64(sqe, r->queued - 1);
    return 0;
}

unsigned wsp_uring_queued(const wsp_uring_t *r) { return r->queued; }

const wsp_uring_stats_t *wsp_uring_stats(const wsp_uring_t *r) { return &r->stats; }

/* Hands every available completion to cb; returns how many. */
static unsigned uring_reap(wsp_uring_t *r, wsp_uring_cb cb, void *arg)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&r->ring, head, cqe)
    {
        uint64_t i = io_uring_cqe_get_data64(cqe);
        n++;
        if (i >= r->queued || r->done[i]) /* not ours (cannot happen): skip, never crash */
            continue;
        r->done[i] = 1;
        cb(r->ud[i], cqe->res, arg);
    }
    io_uring_cq_advance(&r->ring, n);
    return n;
}

/* io_uring_submit_and_wait(), where a test build may refuse a submission (one that carries
 * entries: a wait alone is never failed, the kernel would not fail it after running them). */
static int uring_enter(wsp_uring_t *r, unsigned wait)
{
#ifdef WSP_TEST_HOOKS
    if (io_uring_sq_ready(&r->ring) > 0) {
        int forced = hook_submit_error();
        if (forced < 0)
            return forced;
    }
#endif
    return io_uring_submit_and_wait(&r->ring, wait);
}

int wsp_uring_flush(wsp_uring_t *r, wsp_uring_cb cb, void *arg)
{
    unsigned want = r->queued, got = 0;
    if (want == 0)
        return 0;
    int tries = 0, rv = 0;
    while (got < want) {
        /* The first call submits everything; later ones only wait (a non-blocking socket
         * operation normally completes inside the submitting call). */
        rv = uring_enter(r, want - got);
        r->stats.enters++;
        if (rv < 0 &&
            !((rv == -EINTR || rv == -EAGAIN || rv == -EBUSY) && ++tries < WSP_URING_RETRIES))
            break;
        got += uring_reap(r, cb, arg); /* -EBUSY: reaping makes the room it asked for */
    }
    if (got < want) {
        /* The kernel refuses the ring: what it did not complete may still sit in the
         * submission queue. Never submit again (it would run against the caller's freed
         * buffers) and report each such operation as not done. */
        r->broken = rv < 0 ? rv : -EIO;
        for (unsigned i = 0; i < want; i++)
            if (!r->done[i]) {
                r->done[i] = 1;
                cb(r->ud[i], -ECANCELED, arg);
            }
    }
    r->queued = 0;
    r->stats.ops += got; /* what the kernel ran: -ECANCELED ones never reached it */
    return got < want ? r->broken : (int)want;
}
