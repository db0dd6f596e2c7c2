/* The coordinator's side of a shard's broadcast ring (part of the shard module,
 * server/shard_int.h): posting, and the backlog a full ring overflows into. A shard falls
 * behind when its thread is descheduled or busy (a pass over many connections, a live
 * upgrade's fork under a sanitizer): an accepted publish then waits here instead of being
 * lost (issue #20: upgrade.race lost acknowledged publishes on a full ring). Coordinator
 * thread only. */
#include "shard.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#ifdef WSP_TEST_HOOKS
#include <stdio.h>
#include <unistd.h>

#include "log.h"
#endif

#include "bcast.h"
#include "shard_int.h"

/* Broadcasts one shard may have waiting here, past its ring's 64: then it is skipped (logged
 * by the coordinator) rather than growing without bound. */
#define WSP_SHARD_BACKLOG_MAX 4096

static void shard_ask_handover(wsp_shard_t *sh)
{
    /* ho.sock was set before: the shard reads it after the flag (release/acquire). */
    atomic_store_explicit(&sh->ho_requested, 1, memory_order_release);
    (void)uv_async_send(&sh->wake); /* only fails for a handle that is not an async */
}

void wsp_shard_flush(wsp_shard_t *sh)
{
    int moved = 0;
    while (sh->bl_n > 0 && wsp_spsc_push(sh->ring, sh->backlog[sh->bl_head]) == 0) {
        sh->bl_head = (sh->bl_head + 1) % sh->bl_cap;
        sh->bl_n--;
        moved = 1;
    }
    if (moved)
        (void)uv_async_send(&sh->wake); /* only fails for a handle that is not an async */
    if (sh->bl_n == 0 && sh->ho_pending) {
        sh->ho_pending = 0;
        shard_ask_handover(sh);
    }
}

/* Appends b to the backlog, growing it (doubling, in order) up to the bound. */
static int shard_backlog_add(wsp_shard_t *sh, wsp_bcast_t *b)
{
    if (sh->bl_n == sh->bl_cap) {
        if (sh->bl_cap >= WSP_SHARD_BACKLOG_MAX)
            return -ENOBUFS;
        uint32_t cap = sh->bl_cap ? sh->bl_cap * 2 : 64;
        wsp_bcast_t **v = malloc(cap * sizeof(*v)); /* only while a shard lags: not per message */
        if (v == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < sh->bl_n; i++)
            v[i] = sh->backlog[(sh->bl_head + i) % sh->bl_cap];
        free(sh->backlog);
        sh->backlog = v;
        sh->bl_cap = cap;
        sh->bl_head = 0;
    }
    sh->backlog[(sh->bl_head + sh->bl_n) % sh->bl_cap] = b;
    sh->bl_n++;
    return 0;
}

int wsp_shard_post(wsp_shard_t *sh, wsp_bcast_t *b)
{
    if (sh->bl_n > 0)
        wsp_shard_flush(sh); /* what waits goes first: order is per shard */
    if (sh->bl_n == 0) {
        int rv = wsp_spsc_push(sh->ring, b);
        if (rv == 0) {
            (void)uv_async_send(&sh->wake); /* only fails for a handle that is not an async */
            return 0;
        }
        if (rv != -ENOBUFS)
            return rv;
    }
    return shard_backlog_add(sh, b);
}

int wsp_shard_backlog_drop(wsp_shard_t *sh)
{
    int reap = 0;
    for (; sh->bl_n > 0; sh->bl_n--, sh->bl_head = (sh->bl_head + 1) % sh->bl_cap)
        reap |= wsp_bcast_cancel(sh->backlog[sh->bl_head], 1);
    return reap;
}

void wsp_shard_handover(wsp_shard_t *sh, int sock)
{
    sh->ho.sock = sock;
    if (sh->bl_n > 0) { /* after the broadcasts still waiting here: wsp_shard_flush() asks */
        sh->ho_pending = 1;
        return;
    }
    shard_ask_handover(sh);
}

#ifdef WSP_TEST_HOOKS
void wsp__shard_test_stall(wsp_shard_t *sh)
{
    static atomic_int once; /* the first wake-up of the named shard, once per process */
    const char *v = getenv("WSP_TEST_SHARD_STALL");
    char path[256];
    unsigned id;
    if (v == NULL || sscanf(v, "%u:%255s", &id, path) != 2 || id != sh->sc.id ||
        atomic_exchange(&once, 1))
        return;
    WSP_LOG(WSP_LOG_INFO, "shard=%u event=test_shard_stalled until=%s", id, path);
    for (int i = 0; i < 3000 && access(path, F_OK) != 0; i++)
        uv_sleep(10);
    WSP_LOG(WSP_LOG_INFO, "shard=%u event=test_shard_resumed", id);
}
#endif
