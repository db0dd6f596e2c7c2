#include "arrival.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Shard ticks a connection may wait before it gets what is known then. */
#define WSP_ARRIVAL_TICKS 3

static void arrival_wait(wsp_shard_conn_t *sc, wsp_resume_t *r)
{
    r->prev = NULL;
    r->next = sc->pending;
    if (sc->pending)
        sc->pending->prev = r;
    sc->pending = r;
    sc->npending++;
}

static void arrival_unwait(wsp_shard_conn_t *sc, wsp_resume_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        sc->pending = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->prev = r->next = NULL;
    sc->npending--;
}

/* Posts r's fetch to the coordinator: r is borrowed until it comes back as an answer. */
static void arrival_fetch(wsp_shard_conn_t *sc, wsp_resume_t *r)
{
    r->state = WSP_RESUME_S_FETCHING;
    r->shard = sc->id;
    atomic_fetch_add_explicit(&sc->stats->recover_fetches, 1, memory_order_relaxed);
    wsp_resume_queue_push(sc->fetchq, r);
}

/* Decides r's way in now (final: with what is known) and, once decided, sends the hello and
 * the frames owed, then joins, all in this turn of the loop. Returns WSP_RESUME_* or a
 * negative errno (c is to be closed). */
static int arrival_try(wsp_shard_conn_t *sc, wsp_conn_t *c, wsp_resume_t *r, int final)
{
    if (wsp_conn_state(c) != WSP_CONN_OPEN)
        return -ESHUTDOWN;
    wsp_resume_ctx_t x = {&sc->chans, sc->pos,          sc->fetchq != NULL,
                          sc->peers,  uv_now(sc->loop), final};
    wsp_resume_plan_t plan;
    int rv = wsp_resume_decide(r, &x, &plan);
    if (rv != WSP_RESUME_DONE)
        return rv;
    atomic_fetch_add_explicit(&sc->stats->recovered, plan.recovered, memory_order_relaxed);
    atomic_fetch_add_explicit(&sc->stats->not_recovered, plan.refused, memory_order_relaxed);
    atomic_fetch_add_explicit(&sc->stats->replayed, plan.n, memory_order_relaxed);
    wsp_chanlist_t cl = {.n = r->ask.n};
    for (unsigned i = 0; i < r->ask.n; i++) {
        cl.v[i].name = r->ask.ch[i].name;
        cl.v[i].len = r->ask.ch[i].len;
    }
    if ((rv = wsp_conn_send_all(c, &plan.hello, 1)) == 0 &&
        (rv = wsp_conn_send_all(c, plan.frames, plan.n)) == 0)
        rv = wsp_conn_join(c, &cl);
    wsp_resume_plan_free(&plan);
    return rv < 0 ? rv : WSP_RESUME_DONE;
}

int wsp_arrival_start(wsp_shard_conn_t *sc, wsp_conn_t *c, const wsp_resume_ask_t *a)
{
    wsp_resume_t r;
    memset(&r, 0, sizeof(r));
    r.conn = c;
    r.ask = *a;
    atomic_fetch_add_explicit(&sc->stats->framed, 1, memory_order_relaxed);
    int rv = arrival_try(sc, c, &r, 0);
    if (rv == WSP_RESUME_DONE || rv < 0)
        return rv;
    wsp_resume_t *w = wsp_resume_dup(&r);
    if (w == NULL)
        return -ENOMEM;
    w->deadline = (uint8_t)(sc->tick + WSP_ARRIVAL_TICKS);
    wsp_conn_wait(c);
    arrival_wait(sc, w);
    atomic_fetch_add_explicit(&sc->stats->recover_waits, 1, memory_order_relaxed);
    if (rv == WSP_RESUME_FETCH)
        arrival_fetch(sc, w);
    return 0;
}

void wsp_arrival_gone(wsp_shard_conn_t *sc, wsp_conn_t *c)
{
    wsp_resume_t *r = sc->pending;
    while (r && r->conn != c) /* O(waiting): only when a waiting connection goes */
        r = r->next;
    if (r == NULL)
        return;
    r->conn = NULL;
    if (r->state == WSP_RESUME_S_WAITING) { /* else its fetch comes back first */
        arrival_unwait(sc, r);
        wsp_resume_free(r);
    }
}

void wsp_arrival_retry(wsp_shard_conn_t *sc, wsp_resume_t *answers, int tick)
{
    for (wsp_resume_t *r = answers; r; r = r->qnext)
        wsp_resume_fetched(r, &sc->chans);
    wsp_resume_t *next;
    for (wsp_resume_t *r = sc->pending; r; r = next) {
        next = r->next; /* r may be freed below; sending never frees another connection */
        if (r->state == WSP_RESUME_S_FETCHING)
            continue;
        wsp_conn_t *c = r->conn;
        int final = tick && (int8_t)(uint8_t)(sc->tick - r->deadline) >= 0;
        int rv = c ? arrival_try(sc, c, r, final) : -ESHUTDOWN;
        if (rv == WSP_RESUME_WAIT)
            continue;
        if (rv == WSP_RESUME_FETCH) {
            arrival_fetch(sc, r);
            continue;
        }
        arrival_unwait(sc, r);
        wsp_resume_free(r);
        if (c && rv < 0)
            wsp_conn_close_why(c, WSP_CLOSE_ERROR);
    }
}

void wsp_arrival_free(wsp_shard_conn_t *sc)
{
    while (sc->pending) {
        wsp_resume_t *r = sc->pending;
        arrival_unwait(sc, r);
        wsp_resume_free(r);
    }
}
