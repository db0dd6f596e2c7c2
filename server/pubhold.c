#include "pubhold.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct wsp_pubhold_ent_s {
    wsp_pubhold_ent_t *next;
    uint8_t kind;
    uint8_t named; /* name is a name (else the default channel) */
    uint8_t name_len, epoch_len;
    uint32_t len;
    uint64_t cseq;
    char data[]; /* name, epoch, payload */
};

void wsp_pubhold_start(wsp_pubhold_t *h, size_t max_bytes)
{
    memset(h, 0, sizeof(*h));
    h->tail = &h->head;
    h->max_bytes = max_bytes ? max_bytes : WSP_PUBHOLD_MAX_BYTES;
    h->state = WSP_PUBHOLD_HOLD;
}

int wsp_pubhold_active(const wsp_pubhold_t *h) { return h->state != WSP_PUBHOLD_OFF; }

static size_t ent_size(const wsp_pubhold_ent_t *e)
{
    return sizeof(*e) + e->name_len + e->epoch_len + e->len;
}

static void pubhold_pop(wsp_pubhold_t *h)
{
    wsp_pubhold_ent_t *e = h->head;
    h->head = e->next;
    if (h->head == NULL)
        h->tail = &h->head;
    h->bytes -= ent_size(e);
    free(e);
}

static int is_mark(const wsp_pubhold_t *h, int kind, const void *p, size_t len)
{
    return kind == WSP_PUBHOLD_SYNC && h->mark_len > 0 && len == h->mark_len &&
           memcmp(p, h->mark, len) == 0;
}

int wsp_pubhold_take(wsp_pubhold_t *h, const wsp_pubhold_msg_t *m)
{
    if (h->state == WSP_PUBHOLD_AWAIT) {
        if (is_mark(h, m->kind, m->payload, m->len))
            h->state = WSP_PUBHOLD_OFF; /* what comes next is the new process's alone */
        else if (m->kind != WSP_PUBHOLD_SYNC)
            h->skipped++;
        return 0;
    }
    if (m->name_len > UINT8_MAX || m->epoch_len > UINT8_MAX || m->len > UINT32_MAX)
        return -EINVAL; /* never: Redis messages are checked before (server/redis.c) */
    /* Only while an upgrade's new process waits for its takeover: one per Redis message. */
    wsp_pubhold_ent_t *e = malloc(sizeof(*e) + m->name_len + m->epoch_len + m->len);
    if (e == NULL) {
        h->overflow++;
        return -ENOMEM;
    }
    e->next = NULL;
    e->kind = (uint8_t)m->kind;
    e->named = m->name != NULL;
    e->name_len = (uint8_t)m->name_len;
    e->epoch_len = (uint8_t)m->epoch_len;
    e->len = (uint32_t)m->len;
    e->cseq = m->cseq;
    if (m->name_len)
        memcpy(e->data, m->name, m->name_len);
    if (m->epoch_len)
        memcpy(e->data + m->name_len, m->epoch, m->epoch_len);
    if (m->len)
        memcpy(e->data + m->name_len + m->epoch_len, m->payload, m->len);
    *h->tail = e;
    h->tail = &e->next;
    h->bytes += ent_size(e);
    h->held++;
    while (h->bytes > h->max_bytes && h->head != e) { /* the oldest go first */
        pubhold_pop(h);
        h->overflow++;
    }
    return 1;
}

void wsp_pubhold_broken(wsp_pubhold_t *h)
{
    if (h->state == WSP_PUBHOLD_HOLD)
        h->broken = 1;
    else if (h->state == WSP_PUBHOLD_AWAIT)
        h->state = WSP_PUBHOLD_OFF;
}

wsp_pubhold_cut_t wsp_pubhold_release(wsp_pubhold_t *h, const char *mark, size_t mark_len,
                                      void (*fn)(void *ud, const wsp_pubhold_msg_t *m), void *ud)
{
    wsp_pubhold_cut_t cut = WSP_PUBHOLD_CUT_NONE;
    wsp_pubhold_ent_t *at = NULL; /* the marker among the kept */
    if (mark != NULL && mark_len > 0 && mark_len <= sizeof(h->mark)) {
        memcpy(h->mark, mark, mark_len);
        h->mark_len = mark_len;
        for (wsp_pubhold_ent_t *e = h->head; e != NULL && at == NULL; e = e->next)
            if (is_mark(h, e->kind, e->data + e->name_len + e->epoch_len, e->len))
                at = e;
        if (at != NULL)
            cut = WSP_PUBHOLD_CUT_FOUND;
        else if (h->overflow || h->broken)
            cut = WSP_PUBHOLD_CUT_INEXACT; /* it may have been among what was lost */
        else
            cut = WSP_PUBHOLD_CUT_AWAIT; /* Redis sends it later: all kept preceded it */
    }
    /* Found: hand what follows the marker; none or inexact: hand all; await: hand none. */
    int handing = cut == WSP_PUBHOLD_CUT_NONE || cut == WSP_PUBHOLD_CUT_INEXACT;
    for (wsp_pubhold_ent_t *e = h->head; e != NULL; e = e->next) {
        if (e == at)
            handing = 1;
        if (e->kind == WSP_PUBHOLD_SYNC)
            continue;
        if (!handing) { /* the old process received it before the marker: delivered there */
            h->skipped++;
            continue;
        }
        wsp_pubhold_msg_t m = {.kind = e->kind,
                               .name = e->named ? e->data : NULL,
                               .name_len = e->name_len,
                               .epoch = e->epoch_len ? e->data + e->name_len : NULL,
                               .epoch_len = e->epoch_len,
                               .payload = (const uint8_t *)e->data + e->name_len + e->epoch_len,
                               .len = e->len,
                               .cseq = e->cseq};
        h->handed++;
        fn(ud, &m);
    }
    wsp_pubhold_clear(h);
    h->state = cut == WSP_PUBHOLD_CUT_AWAIT ? WSP_PUBHOLD_AWAIT : WSP_PUBHOLD_OFF;
    return cut;
}

void wsp_pubhold_clear(wsp_pubhold_t *h)
{
    while (h->head != NULL)
        pubhold_pop(h);
    h->tail = &h->head;
    h->state = WSP_PUBHOLD_OFF;
}
