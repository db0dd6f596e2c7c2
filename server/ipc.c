#include "ipc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void wsp_ipc_header(uint8_t *out, uint8_t type, uint64_t seq, uint32_t len)
{
    out[0] = type;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(seq >> (8 * i));
    for (int i = 0; i < 4; i++)
        out[9 + i] = (uint8_t)(len >> (8 * i));
}

static int ipc_parse_header(const uint8_t *p, uint8_t *type, uint64_t *seq, uint32_t *len)
{
    *type = p[0];
    if (*type != WSP_IPC_BROADCAST && *type != WSP_IPC_TRIGGER && *type != WSP_IPC_PUBLISH &&
        *type != WSP_IPC_USER && *type != WSP_IPC_REACHED && *type != WSP_IPC_UPGRADE)
        return -EBADMSG;
    *seq = 0;
    for (int i = 0; i < 8; i++)
        *seq |= (uint64_t)p[1 + i] << (8 * i);
    *len = 0;
    for (int i = 0; i < 4; i++)
        *len |= (uint32_t)p[9 + i] << (8 * i);
    return *len > WSP_IPC_MAX_PAYLOAD ? -EBADMSG : 0;
}

static int ipc_buffer(wsp_ipc_reader_t *r, const uint8_t *p, size_t n)
{
    if (r->len + n > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n)
            cap *= 2;
        uint8_t *b = realloc(r->buf, cap);
        if (b == NULL)
            return -ENOMEM;
        r->buf = b;
        r->cap = cap;
    }
    memcpy(r->buf + r->len, p, n);
    r->len += n;
    return 0;
}

int wsp_ipc_feed(wsp_ipc_reader_t *r, const uint8_t *p, size_t n, wsp_ipc_packet_fn fn, void *user)
{
    uint8_t type = 0;
    uint64_t seq = 0;
    uint32_t len = 0;
    while (n > 0) {
        if (r->len == 0 && n >= WSP_IPC_HDR) {
            /* Fast path: whole packets straight from the caller's buffer. */
            if (ipc_parse_header(p, &type, &seq, &len) < 0)
                return -EBADMSG;
            if (n >= WSP_IPC_HDR + (size_t)len) {
                fn(user, type, seq, p + WSP_IPC_HDR, len);
                p += WSP_IPC_HDR + len;
                n -= WSP_IPC_HDR + len;
                continue;
            }
        }
        /* A partial packet: buffer just enough to finish the header, then the payload. */
        size_t want = WSP_IPC_HDR;
        if (r->len >= WSP_IPC_HDR) {
            if (ipc_parse_header(r->buf, &type, &seq, &len) < 0)
                return -EBADMSG;
            want = WSP_IPC_HDR + len;
        }
        size_t take = want - r->len < n ? want - r->len : n;
        int rv = ipc_buffer(r, p, take);
        if (rv < 0)
            return rv;
        p += take;
        n -= take;
        if (r->len == WSP_IPC_HDR) {
            if (ipc_parse_header(r->buf, &type, &seq, &len) < 0)
                return -EBADMSG;
            want = WSP_IPC_HDR + len;
        }
        if (r->len == want && r->len >= WSP_IPC_HDR) {
            (void)ipc_parse_header(r->buf, &type, &seq, &len); /* checked above */
            r->len = 0;
            fn(user, type, seq, r->buf + WSP_IPC_HDR, len);
        }
    }
    return 0;
}

void wsp_ipc_reset(wsp_ipc_reader_t *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

int wsp_ipc_pack_channel(uint8_t *out, size_t cap, const char *chan, size_t chan_len,
                         const uint8_t *msg, size_t len)
{
    if (chan_len > 255 || 1 + chan_len + len > cap || 1 + chan_len + len > WSP_IPC_MAX_PAYLOAD)
        return -ENOBUFS;
    out[0] = (uint8_t)chan_len;
    if (chan_len)
        memcpy(out + 1, chan, chan_len);
    if (len)
        memcpy(out + 1 + chan_len, msg, len);
    return (int)(1 + chan_len + len);
}

int wsp_ipc_split_channel(const uint8_t *p, size_t len, const char **chan, size_t *chan_len,
                          const uint8_t **msg, size_t *msg_len)
{
    if (len < 1 || (size_t)p[0] + 1 > len)
        return -EBADMSG;
    *chan_len = p[0];
    *chan = p[0] ? (const char *)p + 1 : NULL;
    *msg = p + 1 + p[0];
    *msg_len = len - 1 - p[0];
    return 0;
}

int wsp_ipc_pack_broadcast(uint8_t *out, size_t cap, const char *chan, size_t chan_len,
                           uint64_t cseq, const char *epoch, size_t epoch_len, const uint8_t *msg,
                           size_t len)
{
    size_t need = 1 + chan_len + 1 + epoch_len + 8 + len;
    if (chan_len > 255 || epoch_len > 255 || need > cap || need > WSP_IPC_MAX_PAYLOAD)
        return -ENOBUFS;
    uint8_t *o = out;
    *o++ = (uint8_t)chan_len;
    if (chan_len)
        memcpy(o, chan, chan_len);
    o += chan_len;
    *o++ = (uint8_t)epoch_len;
    if (epoch_len)
        memcpy(o, epoch, epoch_len);
    o += epoch_len;
    for (int i = 0; i < 8; i++)
        *o++ = (uint8_t)(cseq >> (8 * i));
    if (len)
        memcpy(o, msg, len);
    return (int)need;
}

int wsp_ipc_split_broadcast(const uint8_t *p, size_t len, const char **chan, size_t *chan_len,
                            uint64_t *cseq, const char **epoch, size_t *epoch_len,
                            const uint8_t **msg, size_t *msg_len)
{
    if (len < 1 || (size_t)p[0] + 2 > len)
        return -EBADMSG;
    size_t cl = p[0], el = p[1 + cl];
    if (1 + cl + 1 + el + 8 > len)
        return -EBADMSG;
    *chan_len = cl;
    *chan = cl ? (const char *)p + 1 : NULL;
    *epoch_len = el;
    *epoch = (const char *)p + 2 + cl;
    const uint8_t *s = p + 2 + cl + el;
    *cseq = 0;
    for (int i = 0; i < 8; i++)
        *cseq |= (uint64_t)s[i] << (8 * i);
    *msg = s + 8;
    *msg_len = len - (2 + cl + el + 8);
    return 0;
}
