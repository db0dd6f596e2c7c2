#ifndef WSP_SHARD_INT_H
#define WSP_SHARD_INT_H

/* Internal to the shard module, which spans two files: server/shard.c (the shard's thread,
 * loop, listener, passes, drain, pings) and server/shard_ho.c (its side of a live upgrade,
 * issue #20). Each calls the other only through these. Owning shard thread only, but for the
 * atomics. */

#include <stdatomic.h>
#include <stdint.h>
#include <uv.h>

#include "bcast.h"
#include "config.h"
#include "handoff.h"
#include "metrics.h"
#include "pick.h"
#include "resume.h"
#include "shard_conn.h"
#include "spsc.h"
#include "tlsconn.h"
#include "uphist.h"
#include "uring.h"

/* As server/shard.h says (not included: that would be a cycle in the include graph). */
typedef struct wsp_shard_s wsp_shard_t;

#define WSP_SHARD_BACKLOG 4096 /* the kernel caps it at net.core.somaxconn */
#define WSP_SHARD_STEP_MS 100  /* drain and ping slices */
#define WSP_SHARD_FLUSH_S 5    /* after the drain window, time for the last writes */

struct wsp_shard_s {
    wsp_shard_conn_t sc; /* what its connections see: loop.data points here */
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_async_t wake;
    uv_timer_t tick_timer;
    uv_timer_t step_timer; /* drain slices while stopping, ping slices otherwise */
    uv_thread_t thread;
    unsigned nhandles; /* handles initialised, closed on teardown */
    wsp_spsc_t *ring;
    atomic_int stop_requested;
    atomic_int exited;
    uv_async_t *exited_async; /* the coordinator's */
    int stopping;             /* shard thread only */
    int handles_closing;      /* shard thread only */
    int accept_blocked;       /* an accepted connection is waiting for memory */
    int listen_fd;            /* until the listener handle owns it; -1 after */
    int loop_open;
    int loop_close_rv;
    int started;
    uint64_t stop_deadline_ms; /* loop time by which every connection is closed */
    uint32_t drain_per_step;
    uint32_t ping_cursor;       /* next OPEN slot to ping in this round */
    uint32_t ping_step;         /* steps into the current round */
    uint32_t ping_per_step;     /* connections per step in this round */
    wsp_uring_t *uring;         /* NULL: one uv_try_write per connection */
    wsp_table_t users;          /* a user message's connections, gathered for its pass */
    wsp_resume_queue_t results; /* Redis fetches coming back from the coordinator */
    int results_init;
    wsp_tlsconn_res_t tls; /* TLS (sc.tls points here): cipher context and buffers */
    uint8_t *arena;        /* TLS with io_uring: WSP_SHARD_ARENA bytes of sealed records */
    wsp_pick_shard_t pick; /* the frame kinds' builders: the compressor (#19) */
    /* live upgrade (issue #20) */
    wsp_handoff_t ho;        /* the socket to the other process's shard, while it is used */
    uv_poll_t ho_poll;       /* new process: that socket is readable */
    atomic_int ho_requested; /* old process: the coordinator asks for the handover */
    atomic_int ho_done;      /* every connection sent (old) or adopted (new) */
    int handing;             /* old, shard thread: 1 while sending, 2 once sent */
    int adopting;            /* new, shard thread: 1 until the first datagram, 2 after */
    uint64_t ho_deadline_ms; /* old: when connections still mid-frame are closed instead */
    /* Coordinator thread only (server/shard_post.c): broadcasts the ring had no room for,
     * oldest first, so that a stalled shard delays an accepted publish instead of losing it;
     * and a handover asked for while some still waited here (asked once they are in the ring).
     */
    wsp_bcast_t **backlog;
    uint32_t bl_head, bl_n, bl_cap;
    int ho_pending;
    wsp_uphist_t ho_hist;    /* old, shard 0: its history when the handover began */
};

/* shard.c */

/* Closes the shard's own handles once a stopping shard has no connection left. */
void wsp__shard_maybe_finish(wsp_shard_t *sh);

/* The step timer: drain, ping or handover slices. */
void wsp__shard_on_step(uv_timer_t *t);

/* The listener has a connection to accept. */
void wsp__shard_on_connection(uv_stream_t *server, int status);

/* shard_ho.c */

/* Old process: sends what can move; ends the handover once nothing waits or the wait is
 * over. */
void wsp__shard_handover_step(wsp_shard_t *sh);

/* Old process: stops accepting and starts sending. */
void wsp__shard_begin_handover(wsp_shard_t *sh);

/* New process: records the history a live upgrade carried over (a wsp_uphist_t). */
void wsp__shard_restore(wsp_shard_t *sh, const void *h);

/* New process: the old shard's datagrams arrived (the first: listen). */
void wsp__shard_on_ho_readable(uv_poll_t *p, int status, int events);

#ifdef WSP_TEST_HOOKS
/* Test builds only (wspush-testhooks): WSP_TEST_SHARD_STALL=<shard>:<path> makes that shard's
 * first wake-up block until the file path exists (at most 30 s), so that a test can make it
 * fall behind its broadcast ring deterministically (server/shard_post.c). */
void wsp__shard_test_stall(wsp_shard_t *sh);
#endif

#endif
