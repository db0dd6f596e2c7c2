#include "pubwait.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#define EXPECT_UNKNOWN UINT_MAX

struct wsp_pubwait_entry_s {
    wsp_pubwait_entry_t *next;
    uint64_t tag, deadline_ms, conns;
    unsigned expected, got;
    wsp_pubwait_done_fn done;
    void *ctx;
};

static void unlink_entry(wsp_pubwait_t *w, wsp_pubwait_entry_t *e)
{
    wsp_pubwait_entry_t **pp = &w->head, *prev = NULL;
    while (*pp != e) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    *pp = e->next;
    if (w->tail == e)
        w->tail = prev;
    w->n--;
}

/* Unlinks e, then answers: done may add entries (a new request), never remove this one. */
static void finish(wsp_pubwait_t *w, wsp_pubwait_entry_t *e, int status, int complete)
{
    unlink_entry(w, e);
    e->done(e->ctx, status, e->conns, complete);
    free(e);
}

wsp_pubwait_entry_t *wsp_pubwait_add(wsp_pubwait_t *w, uint64_t tag, uint64_t deadline_ms,
                                     wsp_pubwait_done_fn done, void *ctx)
{
    /* One per waiting admin request (at most the admin API's 64 connections). */
    wsp_pubwait_entry_t *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->tag = tag;
    e->deadline_ms = deadline_ms;
    e->expected = EXPECT_UNKNOWN;
    e->done = done;
    e->ctx = ctx;
    if (w->tail)
        w->tail->next = e;
    else
        w->head = e;
    w->tail = e;
    w->n++;
    return e;
}

void wsp_pubwait_expect(wsp_pubwait_t *w, wsp_pubwait_entry_t *e, unsigned n)
{
    e->expected = n;
    if (e->got >= n)
        finish(w, e, 0, 1);
}

void wsp_pubwait_drop(wsp_pubwait_t *w, wsp_pubwait_entry_t *e)
{
    unlink_entry(w, e);
    free(e);
}

int wsp_pubwait_report(wsp_pubwait_t *w, uint64_t tag, uint64_t conns)
{
    for (wsp_pubwait_entry_t *e = w->head; e; e = e->next) {
        if (e->tag != tag || e->got >= e->expected)
            continue; /* a digest's report goes to the oldest entry still expecting one */
        e->got++;
        e->conns += conns;
        if (e->got >= e->expected)
            finish(w, e, 0, 1);
        return 1;
    }
    return 0;
}

void wsp_pubwait_expire(wsp_pubwait_t *w, uint64_t now_ms)
{
    wsp_pubwait_entry_t *e = w->head;
    while (e) {
        wsp_pubwait_entry_t *next = e->next;
        if (e->deadline_ms <= now_ms)
            finish(w, e, 0, 0);
        e = next;
    }
}

void wsp_pubwait_cancel_all(wsp_pubwait_t *w)
{
    while (w->head)
        finish(w, w->head, -ECANCELED, 0);
}
