#include "hsbuf.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "upgrade.h"

/* The size of a handshake buffer for need bytes: doubling from cap, at most the header cap. */
static uint32_t hsbuf_cap(uint32_t cap, size_t need)
{
    while (cap < need)
        cap *= 2;
    return cap > WSP_UPGRADE_MAX_HEADER ? WSP_UPGRADE_MAX_HEADER : cap;
}

int wsp_hsbuf_append(wsp_hsbuf_t **slot, const uint8_t *p, size_t n, const uint8_t **req,
                     size_t *len, size_t *taken)
{
    wsp_hsbuf_t *hb = *slot;
    *req = p;
    *len = *taken = n;
    if (hb == NULL)
        return 0;
    size_t room = WSP_UPGRADE_MAX_HEADER - hb->len;
    *taken = n < room ? n : room;
    if (hb->len + *taken > hb->cap) {
        uint32_t cap = hsbuf_cap(hb->cap * 2, hb->len + *taken);
        wsp_hsbuf_t *nb = realloc(hb, sizeof(*hb) + cap);
        if (nb == NULL)
            return -ENOMEM;
        hb = nb;
        hb->cap = cap;
        *slot = hb;
    }
    memcpy(hb->data + hb->len, p, *taken);
    hb->len += (uint32_t)*taken;
    *req = hb->data;
    *len = hb->len;
    return 0;
}

int wsp_hsbuf_keep(wsp_hsbuf_t **slot, const uint8_t *p, size_t n)
{
    if (*slot != NULL)
        return 0; /* wsp_hsbuf_append() appended it already */
    uint32_t cap = hsbuf_cap(512, n);
    wsp_hsbuf_t *hb = malloc(sizeof(*hb) + cap);
    if (hb == NULL)
        return -ENOMEM;
    hb->cap = cap;
    hb->len = (uint32_t)(n < cap ? n : cap);
    memcpy(hb->data, p, hb->len);
    *slot = hb;
    return 0;
}
