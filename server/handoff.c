#include "handoff.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "conn.h"
#include "reexec.h"

int wsp_handoff_init(wsp_handoff_t *h, int sock)
{
    memset(h, 0, sizeof(*h));
    h->sock = sock;
    /* Once per shard and upgrade. */
    h->buf = malloc(WSP_HO_DGRAM_MAX);
    h->scratch = malloc(WSP_HO_DGRAM_MAX / 2);
    if (h->buf == NULL || h->scratch == NULL)
        return -ENOMEM;
    wsp_ho_begin(&h->w, h->buf, WSP_HO_DGRAM_MAX);
    return 0;
}

/* Wipes the datagram when it held TLS keys: sent, or never to be. */
static void handoff_wipe(wsp_handoff_t *h, size_t len)
{
    if (h->secret)
        OPENSSL_cleanse(h->buf, len);
    h->secret = 0;
}

void wsp_handoff_free(wsp_handoff_t *h)
{
    handoff_wipe(h, h->w.len);
    if (h->sock >= 0)
        close(h->sock);
    h->sock = -1;
    free(h->buf);
    free(h->scratch);
    h->buf = h->scratch = NULL;
}

/* Sends the datagram built so far; its connections are then the new process's. */
static int handoff_flush(wsp_handoff_t *h)
{
    if (h->w.nrec == 0)
        return 0;
    int rv = wsp_reexec_send(h->sock, h->buf, h->w.len, h->fds, h->n);
    handoff_wipe(h, h->w.len); /* on failure too: the handover ends, nothing is sent again */
    if (rv < 0)
        return rv;
    for (unsigned i = 0; i < h->n; i++)
        wsp_conn_handed(h->batch[i]);
    h->moved += h->n;
    h->n = 0;
    wsp_ho_begin(&h->w, h->buf, WSP_HO_DGRAM_MAX);
    return 0;
}

/* Puts c into the datagram, sending the datagram first when it is full. Returns 0, 1 when c
 * must wait, or a negative errno from sending. */
static int handoff_one(wsp_handoff_t *h, wsp_conn_t *c)
{
    wsp_ho_conn_t hc;
    int fd;
    int rv = wsp_conn_handover(c, &hc, &fd, h->scratch, WSP_HO_DGRAM_MAX / 2);
    if (rv == -EALREADY)
        return 0; /* draining or closing: it finishes in this process */
    if (rv == -EAGAIN)
        return 1;
    if (rv == -ENOTSUP) { /* state not carried yet: closed as at shutdown, the client returns */
        h->closed++;
        wsp_conn_drain(c, 1001);
        return 0;
    }
    if (rv < 0) { /* more queued than a datagram carries: a slow consumer */
        h->closed++;
        wsp_conn_drain(c, 1008);
        return 0;
    }
    if (h->n == WSP_HO_FDS_MAX || (rv = wsp_ho_put_conn(&h->w, &hc)) == -ENOBUFS) {
        if ((rv = handoff_flush(h)) < 0)
            return rv;
        /* c's description points into its own memory, unchanged by the flush. */
        rv = wsp_ho_put_conn(&h->w, &hc);
    }
    if (rv < 0) {
        wsp_conn_drain(c, 1001); /* cannot be described: closed as at shutdown */
        return 0;
    }
    h->secret |= hc.tls.state == WSP_HO_TLS_OPEN;
    h->batch[h->n] = c;
    h->fds[h->n++] = fd;
    return 0;
}

int wsp_handoff_send(wsp_handoff_t *h, wsp_shard_conn_t *sc, unsigned *left)
{
    *left = 0;
    /* TIMED first: a connection drained during the OPEN walk joins TIMED behind it. From the
     * end down, so that one leaving a table only moves an entry already visited. */
    for (int t = WSP_SHARD_T_TIMED; t <= WSP_SHARD_T_OPEN; t++) {
        wsp_table_t *tb = &sc->table[t];
        for (uint32_t i = tb->n; i-- > 0;) {
            if (i >= tb->n)
                continue;
            int rv = handoff_one(h, tb->v[i]);
            if (rv < 0)
                return rv;
            *left += (unsigned)rv;
        }
    }
    return handoff_flush(h);
}

int wsp_handoff_end(wsp_handoff_t *h)
{
    int rv = wsp_ho_put_empty(&h->w, WSP_HO_SHARD_END);
    if (rv == -ENOBUFS && (rv = handoff_flush(h)) == 0)
        rv = wsp_ho_put_empty(&h->w, WSP_HO_SHARD_END);
    return rv < 0 ? rv : handoff_flush(h);
}

/* Adopts the connections of one datagram; fds[0..nfds) are its descriptors, all consumed. */
static int handoff_adopt(wsp_handoff_t *h, wsp_shard_conn_t *sc, uv_loop_t *loop, size_t len,
                         const int *fds, unsigned nfds, int *ended)
{
    wsp_ho_reader_t r;
    unsigned k = 0;
    int rv = wsp_ho_open(&r, h->buf, len);
    uint8_t type;
    const uint8_t *body;
    uint32_t blen;
    while (rv == 0 && (rv = wsp_ho_next(&r, &type, &body, &blen)) == 1) {
        rv = 0;
        if (type == WSP_HO_SHARD_END) {
            *ended = 1;
            continue;
        }
        wsp_ho_conn_t hc;
        if (type != WSP_HO_CONN || k == nfds) {
            rv = -EBADMSG;
            break;
        }
        int fd = fds[k++];
        int arv = wsp_ho_get_conn(body, blen, &hc);
        h->secret |= arv < 0 || hc.tls.state == WSP_HO_TLS_OPEN; /* TLS keys: wiped below */
        if (arv < 0)
            close(fd);
        else
            arv = wsp_conn_adopt(sc, loop, fd, &hc); /* it closed fd on failure */
        if (arv < 0)
            h->failed++;
        else if (arv > 0)
            h->misfit++;
        else
            h->moved++;
    }
    while (k < nfds) /* descriptors no record stood for */
        close(fds[k++]);
    handoff_wipe(h, len);
    return rv;
}

int wsp_handoff_recv(wsp_handoff_t *h, wsp_shard_conn_t *sc, uv_loop_t *loop, int *ended)
{
    while (!*ended) {
        int fds[WSP_HO_FDS_MAX];
        unsigned nfds = 0;
        ssize_t n = wsp_reexec_recv(h->sock, h->buf, WSP_HO_DGRAM_MAX, fds, WSP_HO_FDS_MAX, &nfds,
                                    MSG_DONTWAIT);
        if (n == -EAGAIN || n == -EWOULDBLOCK)
            return 0;
        if (n == 0)
            return -EPIPE;
        if (n < 0)
            return (int)n;
        int rv = handoff_adopt(h, sc, loop, (size_t)n, fds, nfds, ended);
        if (rv < 0)
            return rv;
    }
    return 0;
}
