#include "tlsconn.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

/* Internal to this file: the connection takes no more input (it is closing); drop the rest. */
#define TLSCONN_DROP 2

wsp_tlsconn_t *wsp_tlsconn_new(void)
{
    /* Per TLS connection, for its whole life: the record layer's state lives here. */
    return calloc(1, sizeof(wsp_tlsconn_t));
}

static void tlsconn_fail(wsp_tlsconn_t *t, int reason)
{
    wsp_tls_hs_free(t->hs); /* ~35 KB back at once, not at the close */
    t->hs = NULL;
    t->state = WSP_TLSCONN_FAILED;
    t->flags = (uint8_t)((t->flags & 0x0Fu) | (unsigned)reason << 4);
}

/* Writes everything the handshake has for the peer. 0 or what io->write returned. */
static int hs_flush(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const wsp_tlsconn_io_t *io,
                    void *user)
{
    size_t n;
    while ((n = wsp_tls_hs_take(t->hs, r->out, WSP_TLSCONN_OUT)) > 0) {
        int rv = io->write(user, r->out, n);
        if (rv < 0)
            return rv;
    }
    return 0;
}

/* Runs the handshake over p[0..n). Returns 1 once it completed (*used bytes of p belonged to
 * it; the rest are records), 0 for more, or a negative errno as wsp_tlsconn_input(). */
static int hs_input(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const uint8_t *p, size_t n,
                    size_t *used, const wsp_tlsconn_io_t *io, void *user)
{
    *used = n;
    if (t->hs == NULL) {
        if ((t->hs = wsp_tlsterm_hs_new(r->term)) == NULL)
            return -ENOMEM;
        t->state = WSP_TLSCONN_HS;
    }
    int rv = wsp_tls_hs_feed(t->hs, p, n, used);
    int wrv = hs_flush(t, r, io, user); /* an alert, when it failed */
    if (rv < 0) {
        tlsconn_fail(t, wsp_tls_hs_reason(t->hs));
        return -EPROTO;
    }
    if (wrv < 0)
        return wrv;
    if (rv == 0)
        return 0;
    wsp_tls_info_t info;
    rv = wsp_tls_hs_detach(t->hs, &t->rec, &info);
    if (rv < 0) {
        tlsconn_fail(t, WSP_TLS_FAIL_INTERNAL);
        return -EPROTO;
    }
    wsp_tls_hs_free(t->hs);
    t->hs = NULL;
    t->state = WSP_TLSCONN_OPEN;
    rv = io->ready(user, &info);
    return rv < 0 ? rv : 1;
}

/* Seals one alert and writes it, unless the kernel holds the sending keys. */
static void send_alert(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, uint8_t desc,
                       const wsp_tlsconn_io_t *io, void *user)
{
    if (t->flags & WSP_TLSCONN_F_KTLS)
        return; /* the kernel's sequence numbers: we cannot seal; the close says enough */
    ssize_t n = wsp_tlsrec_alert(&t->rec, r->cx, desc, r->out, WSP_TLSCONN_OUT);
    if (n > 0)
        (void)io->write(user, r->out, (size_t)n); /* best effort: the connection closes */
}

/* A record that is not application data: KeyUpdate, alert, renegotiation. */
static int record_control(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, wsp_tlsrec_in_t *in,
                          const wsp_tlsconn_io_t *io, void *user)
{
    size_t outlen = 0;
    /* With kTLS the kernel owns our write key: a KeyUpdate that asks for ours cannot be
     * answered (no room given: tlsrec refuses it before changing anything). */
    size_t cap = t->flags & WSP_TLSCONN_F_KTLS ? 0 : WSP_TLSCONN_OUT;
    int rv = wsp_tlsrec_control(&t->rec, r->cx, in, r->pt, r->out, cap, &outlen);
    if (rv == 0)
        return outlen > 0 ? io->write(user, r->out, outlen) : 0;
    switch (rv) {
    case -ESHUTDOWN: /* close_notify: answer with ours */
        send_alert(t, r, WSP_TLS_AL_CLOSE_NOTIFY, io, user);
        return WSP_TLSCONN_CLOSED;
    case -ECONNRESET: /* the peer's alert: nothing to answer */
        return rv;
    case -ENOBUFS:
        return -EKEYREJECTED;
    case -EOPNOTSUPP:
        send_alert(t, r, in->alert, io, user);
        return rv;
    default:
        send_alert(t, r, in->alert, io, user);
        return -EBADMSG;
    }
}

/* Opens one record at p[0..n) (*used its length): -EAGAIN when incomplete (in->need says how
 * much it needs), 0 when it was handed on, > 0 or < 0 as wsp_tlsconn_input() returns. */
static int record(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const uint8_t *p, size_t n,
                  wsp_tlsrec_in_t *in, const wsp_tlsconn_io_t *io, void *user)
{
    int rv = wsp_tlsrec_open(&t->rec, r->cx, p, n, r->pt, WSP_TLSREC_OPEN_MAX, in);
    if (rv == -EAGAIN)
        return rv;
    if (rv < 0) {
        send_alert(t, r, in->alert, io, user);
        return -EBADMSG;
    }
    if (in->type != WSP_TLS_CT_APPDATA)
        return record_control(t, r, in, io, user);
    if (in->len > 0 && io->plain(user, r->pt, in->len) != 0)
        return TLSCONN_DROP;
    return 0;
}

/* Completes the kept partial record with bytes from *p (advancing it): WSP_TLSCONN_MORE when
 * it is still incomplete (everything consumed), else what record() returned for it. */
static int part_input(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const uint8_t **p, size_t *n,
                      const wsp_tlsconn_io_t *io, void *user)
{
    /* The buffer holds exactly what the record needs: the header while it is incomplete, then
     * (grown as soon as the header is whole) all of it. */
    size_t cap = t->part_len < WSP_TLSREC_HDR
                     ? WSP_TLSREC_HDR
                     : WSP_TLSREC_HDR + ((size_t)t->part[3] << 8 | t->part[4]);
    for (;;) {
        wsp_tlsrec_in_t in;
        int rv = record(t, r, t->part, t->part_len, &in, io, user);
        if (rv != -EAGAIN) {
            free(t->part); /* a record boundary: nothing kept between records */
            t->part = NULL;
            t->part_len = 0;
            return rv;
        }
        if (in.need > cap) {
            uint8_t *np = realloc(t->part, in.need);
            if (np == NULL)
                return -ENOMEM;
            t->part = np;
            cap = in.need;
        }
        size_t take = in.need - t->part_len < *n ? in.need - t->part_len : *n;
        memcpy(t->part + t->part_len, *p, take);
        t->part_len = (uint16_t)(t->part_len + take);
        *p += take;
        *n -= take;
        if (t->part_len < in.need)
            return WSP_TLSCONN_MORE;
    }
}

/* Opens the records in p[0..n); keeps an incomplete last one. */
static int records_input(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const uint8_t *p, size_t n,
                         const wsp_tlsconn_io_t *io, void *user)
{
    if (t->part != NULL) {
        int rv = part_input(t, r, &p, &n, io, user);
        if (rv != 0)
            return rv;
    }
    while (n > 0) {
        wsp_tlsrec_in_t in;
        int rv = record(t, r, p, n, &in, io, user);
        if (rv == -EAGAIN) { /* rare: a record split across reads. Kept until it completes */
            if ((t->part = malloc(in.need)) == NULL)
                return -ENOMEM;
            memcpy(t->part, p, n);
            t->part_len = (uint16_t)n;
            return WSP_TLSCONN_MORE;
        }
        if (rv != 0)
            return rv;
        p += in.used;
        n -= in.used;
    }
    return WSP_TLSCONN_MORE;
}

int wsp_tlsconn_input(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const uint8_t *p, size_t n,
                      const wsp_tlsconn_io_t *io, void *user)
{
    if (t->state == WSP_TLSCONN_FAILED)
        return -EPROTO;
    if (t->state != WSP_TLSCONN_OPEN) {
        size_t used;
        int rv = hs_input(t, r, p, n, &used, io, user);
        if (rv <= 0)
            return rv;
        p += used; /* the handshake stopped right after its last record */
        n -= used;
    }
    int rv = records_input(t, r, p, n, io, user);
    return rv == TLSCONN_DROP ? WSP_TLSCONN_MORE : rv;
}

ssize_t wsp_tlsconn_seal(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const uint8_t *p, size_t n,
                         uint8_t *out, size_t cap)
{
    ssize_t rv = wsp_tlsrec_seal(&t->rec, r->cx, p, n, out, cap);
    if (rv != -EKEYEXPIRED || t->rec.version != 0x0304)
        return rv;
    /* TLS 1.3 at 2^24.5 records under one key: move to the next one (RFC 8446 5.5). */
    if (cap < WSP_TLSREC_CONTROL_MAX + wsp_tlsrec_sealed_size(&t->rec, n))
        return -ENOBUFS;
    ssize_t k = wsp_tlsrec_key_update(&t->rec, r->cx, 0, out, cap);
    if (k < 0)
        return k;
    rv = wsp_tlsrec_seal(&t->rec, r->cx, p, n, out + k, cap - (size_t)k);
    return rv < 0 ? rv : k + rv;
}

size_t wsp_tlsconn_close_notify(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r)
{
    if (t->state != WSP_TLSCONN_OPEN || (t->flags & WSP_TLSCONN_F_KTLS))
        return 0;
    ssize_t n = wsp_tlsrec_alert(&t->rec, r->cx, WSP_TLS_AL_CLOSE_NOTIFY, r->out, WSP_TLSCONN_OUT);
    return n > 0 ? (size_t)n : 0;
}

int wsp_tlsconn_ktls(wsp_tlsconn_t *t, int fd)
{
    /* Sending only: the kernel's receive side would hand us alerts and KeyUpdates through
     * control messages libuv's reads do not take; received records stay ours. */
    int rv = wsp_tlsrec_ktls_enable(&t->rec, fd, 0);
    if (rv == 0)
        t->flags |= WSP_TLSCONN_F_KTLS;
    return rv;
}

int wsp_tlsconn_resume(wsp_tlsconn_t *t, const wsp_tlsrec_t *rec, const uint8_t *part, size_t n)
{
    if (n > 0) {
        /* Sized as part_input() keeps it: the header until it is whole, then the record. */
        size_t need =
            n < WSP_TLSREC_HDR ? WSP_TLSREC_HDR : WSP_TLSREC_HDR + ((size_t)part[3] << 8 | part[4]);
        if (n >= need)
            return -EBADMSG; /* a whole record would have been opened, not kept */
        /* Per connection that had part of a record in flight when the upgrade came: rare. */
        if ((t->part = malloc(need)) == NULL)
            return -ENOMEM;
        memcpy(t->part, part, n);
        t->part_len = (uint16_t)n;
    }
    t->rec = *rec;
    t->state = WSP_TLSCONN_OPEN;
    return 0;
}

void wsp_tlsconn_free(wsp_tlsconn_t *t)
{
    if (t == NULL)
        return;
    wsp_tls_hs_free(t->hs);
    free(t->part);
    OPENSSL_cleanse(&t->rec, sizeof(t->rec)); /* keys do not linger in freed memory */
    free(t);
}
