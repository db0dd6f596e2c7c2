#ifndef WSP_URING_H
#define WSP_URING_H

/* A small io_uring batch: queue many non-blocking sends or receives, enter the kernel once,
 * get every result back in the same call. Nothing stays in flight between two flushes, so
 * the caller's objects (ud) only have to live until wsp_uring_flush() returns. One thread
 * owns a ring; it is never shared. */

#include <stddef.h>
#include <stdint.h>

typedef struct wsp_uring_s wsp_uring_t;

/* One result: ud as queued, res = bytes transferred or a negative errno (-EAGAIN when the
 * socket was full or empty: the operation never waits). */
typedef void (*wsp_uring_cb)(void *ud, int res, void *arg);

/* Counters, for metrics. Owner thread. */
typedef struct wsp_uring_stats_s {
    uint64_t ops;    /* operations completed */
    uint64_t enters; /* io_uring_enter calls (kernel entries) */
} wsp_uring_stats_t;

/* Test hooks: built with WSP_TEST_HOOKS (the test builds' wspush-testhooks and unit tests,
 * never the shipped wspush), the environment injects faults:
 *   WSP_TEST_URING_FAIL=<errno>            wsp_uring_new() (so the probe too) fails with it;
 *   WSP_TEST_URING_FAIL_SUBMIT=<n>:<errno> the n-th submission of the process (counted from 1
 *                                          while the variable is set) fails with it, as a
 *                                          kernel refusing the ring in the middle of a pass. */

/* Creates a ring of entries slots (a power of two, 1..32768). Returns 0 or a negative errno:
 * -ENOSYS (old kernel), -EPERM (kernel.io_uring_disabled, seccomp), -ENOMEM. Any thread; the
 * ring then belongs to the caller. */
int wsp_uring_new(wsp_uring_t **out, unsigned entries);

/* Frees r; nothing is in flight outside wsp_uring_flush(). Owner thread. */
void wsp_uring_free(wsp_uring_t *r);

/* Creates and frees a small ring: 0 when io_uring works here, else wsp_uring_new()'s error.
 * Any thread. */
int wsp_uring_probe(void);

/* Queues send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT); buf must stay valid until the
 * next flush returns. -ENOSPC when the batch is full: flush, then queue again. Owner. */
int wsp_uring_send(wsp_uring_t *r, int fd, const void *buf, size_t len, void *ud);

/* Queues recv(fd, buf, len, MSG_DONTWAIT), as wsp_uring_send(). Owner thread. */
int wsp_uring_recv(wsp_uring_t *r, int fd, void *buf, size_t len, void *ud);

/* Operations queued since the last flush. Owner thread. */
unsigned wsp_uring_queued(const wsp_uring_t *r);

/* Submits everything queued, waits for all of it and calls cb(ud, res, arg) once for each, in
 * completion order. Returns the number of operations, or a negative errno when the kernel
 * refused the ring: every operation without a result is then reported with -ECANCELED (not
 * done) and the ring refuses further work with that errno. Owner thread. */
int wsp_uring_flush(wsp_uring_t *r, wsp_uring_cb cb, void *arg);

/* The ring's counters. Owner thread. */
const wsp_uring_stats_t *wsp_uring_stats(const wsp_uring_t *r);

#endif
