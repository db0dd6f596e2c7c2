#include "link.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

int wsp_link_init(wsp_link_t *l, uv_loop_t *loop, int ipc)
{
    memset(&l->rd, 0, sizeof(l->rd));
    return uv_pipe_init(loop, &l->pipe, ipc);
}

static void on_link_write(uv_write_t *req, int status)
{
    (void)status; /* a dead peer shows as EOF on the read side */
    free(req);
}

int wsp_link_send(wsp_link_t *l, uint8_t type, uint64_t seq, const uint8_t *payload, uint32_t len)
{
    /* Per packet, off the hot path (one per broadcast and worker): request, header, copy. */
    uv_write_t *req = malloc(sizeof(*req) + WSP_IPC_HDR + len);
    if (req == NULL)
        return -ENOMEM;
    uint8_t *p = (uint8_t *)(req + 1);
    wsp_ipc_header(p, type, seq, len);
    if (len)
        memcpy(p + WSP_IPC_HDR, payload, len);
    uv_buf_t b = uv_buf_init((char *)p, WSP_IPC_HDR + len);
    int rv = uv_write(req, (uv_stream_t *)&l->pipe, &b, 1, on_link_write);
    if (rv < 0)
        free(req);
    return rv;
}

static void on_link_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char rbuf[16384]; /* the process's main loop thread only; consumed before the next */
    *buf = uv_buf_init(rbuf, sizeof(rbuf));
}

static void link_end(wsp_link_t *l, int protocol, int err)
{
    (void)uv_read_stop((uv_stream_t *)&l->pipe); /* cannot fail on an open pipe */
    l->on_end(l->user, protocol, err);
}

static void on_link_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    wsp_link_t *l = WSP_CONTAINER_OF(s, wsp_link_t, pipe);
    if (nread == 0)
        return;
    if (nread < 0) {
        link_end(l, 0, (int)nread);
        return;
    }
    int rv = wsp_ipc_feed(&l->rd, (const uint8_t *)buf->base, (size_t)nread, l->on_packet, l->user);
    if (rv < 0)
        link_end(l, 1, rv);
}

int wsp_link_read_start(wsp_link_t *l, wsp_ipc_packet_fn fn, wsp_link_end_fn end, void *user)
{
    l->on_packet = fn;
    l->on_end = end;
    l->user = user;
    return uv_read_start((uv_stream_t *)&l->pipe, on_link_alloc, on_link_read);
}

void wsp_link_reset(wsp_link_t *l) { wsp_ipc_reset(&l->rd); }
