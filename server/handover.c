#include "handover.h"

#include <errno.h>
#include <string.h>

/* --- little-endian bytes --- */

static void put_le(uint8_t *p, uint64_t v, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A cursor over a body being decoded: every read checks the bytes left. */
typedef struct ho_cur_s {
    const uint8_t *p;
    size_t len, off;
    int bad;
} ho_cur_t;

static uint64_t cur_int(ho_cur_t *c, unsigned n)
{
    if (c->bad || c->len - c->off < n) {
        c->bad = 1;
        return 0;
    }
    uint64_t v = get_le(c->p + c->off, n);
    c->off += n;
    return v;
}

static const uint8_t *cur_bytes(ho_cur_t *c, size_t n)
{
    if (c->bad || c->len - c->off < n) {
        c->bad = 1;
        return NULL;
    }
    const uint8_t *p = c->p + c->off;
    c->off += n;
    return p;
}

/* --- writing --- */

void wsp_ho_begin(wsp_ho_writer_t *w, uint8_t *buf, size_t cap)
{
    w->buf = buf;
    w->cap = cap;
    w->len = WSP_HO_HDR;
    w->nrec = 0;
    put_le(buf, WSP_HO_MAGIC, 4);
    buf[4] = WSP_HO_VERSION;
    put_le(buf + 5, 0, 2);
}

/* Reserves a record of type with a body of len bytes; returns where the body goes, or NULL
 * when the datagram has no room (the writer is unchanged). */
static uint8_t *ho_record(wsp_ho_writer_t *w, uint8_t type, size_t len)
{
    if (w->nrec == UINT16_MAX || len > UINT32_MAX || w->cap - w->len < WSP_HO_REC_HDR ||
        w->cap - w->len - WSP_HO_REC_HDR < len)
        return NULL;
    uint8_t *p = w->buf + w->len;
    p[0] = type;
    put_le(p + 1, len, 4);
    w->len += WSP_HO_REC_HDR + len;
    w->nrec++;
    put_le(w->buf + 5, w->nrec, 2);
    return p + WSP_HO_REC_HDR;
}

int wsp_ho_put_empty(wsp_ho_writer_t *w, uint8_t type)
{
    return ho_record(w, type, 0) ? 0 : -ENOBUFS;
}

int wsp_ho_put_hello(wsp_ho_writer_t *w, const wsp_ho_hello_t *h)
{
    uint8_t *p = ho_record(w, WSP_HO_HELLO, 4 + 2 + 2 + 1 + 8);
    if (p == NULL)
        return -ENOBUFS;
    put_le(p, h->pid, 4);
    put_le(p + 4, h->shards, 2);
    put_le(p + 6, h->port, 2);
    p[8] = h->admin;
    put_le(p + 9, h->seq, 8);
    return 0;
}

/* The value of tag 0x02 for t: its length, or 0 when t is none the format can carry. */
static size_t ho_tls_size(const wsp_ho_tls_t *t)
{
    if (t->state == WSP_HO_TLS_NEW)
        return 1;
    if (t->state != WSP_HO_TLS_OPEN || t->keylen == 0 || t->keylen > WSP_HO_TLS_KEY_MAX ||
        t->secretlen > WSP_HO_TLS_SECRET_MAX || t->part_len > WSP_HO_TLS_PART_MAX)
        return 0;
    return 1 + 6 + 2 * (8 + (size_t)t->keylen + WSP_HO_TLS_IV + t->secretlen) + 2 + t->part_len;
}

static uint8_t *ho_tls_dir_put(uint8_t *p, const wsp_ho_tls_t *t, const wsp_ho_tls_dir_t *d)
{
    put_le(p, d->seq, 8);
    p += 8;
    memcpy(p, d->key, t->keylen);
    p += t->keylen;
    memcpy(p, d->iv, WSP_HO_TLS_IV);
    p += WSP_HO_TLS_IV;
    if (t->secretlen)
        memcpy(p, d->secret, t->secretlen);
    return p + t->secretlen;
}

/* Writes tag 0x02 with its n value bytes (ho_tls_size()) at p. */
static void ho_tls_put(uint8_t *p, const wsp_ho_tls_t *t, size_t n)
{
    *p++ = WSP_HO_TAG_TLS;
    put_le(p, n, 2);
    p += 2;
    *p++ = t->state;
    if (t->state != WSP_HO_TLS_OPEN)
        return;
    put_le(p, t->version, 2);
    put_le(p + 2, t->suite, 2);
    p[4] = t->keylen;
    p[5] = t->secretlen;
    p = ho_tls_dir_put(p + 6, t, &t->rd);
    p = ho_tls_dir_put(p, t, &t->wr);
    put_le(p, t->part_len, 2);
    if (t->part_len)
        memcpy(p + 2, t->part, t->part_len);
}

/* The bytes of a CONN body's tagged token state: [tag][length:2][uid:8][deadline:4]. */
#define HO_TAG_AUTH_LEN (3 + 12)

int wsp_ho_put_conn(wsp_ho_writer_t *w, const wsp_ho_conn_t *c)
{
    size_t tls = c->tls.state == WSP_HO_TLS_NONE ? 0 : ho_tls_size(&c->tls);
    if (c->nchan > WSP_HO_CHAN_MAX || c->state > WSP_HO_ST_OPEN ||
        (c->tls.state != WSP_HO_TLS_NONE && tls == 0) || (c->auth && c->state != WSP_HO_ST_OPEN))
        return -EINVAL;
    size_t len = 4 + 4 + (size_t)c->hs_len + 4 + (size_t)c->pending_len + 1;
    for (unsigned i = 0; i < c->nchan; i++)
        len += 1 + (size_t)c->chan[i].len;
    if (tls)
        len += 3 + tls;
    if (c->auth)
        len += HO_TAG_AUTH_LEN;
    uint8_t *p = ho_record(w, WSP_HO_CONN, len);
    if (p == NULL)
        return -ENOBUFS;
    p[0] = c->state;
    p[1] = c->flags;
    p[2] = c->xf;
    p[3] = c->ttl;
    put_le(p + 4, c->hs_len, 4);
    p += 8;
    if (c->hs_len)
        memcpy(p, c->hs, c->hs_len);
    p += c->hs_len;
    put_le(p, c->pending_len, 4);
    p += 4;
    if (c->pending_len)
        memcpy(p, c->pending, c->pending_len);
    p += c->pending_len;
    *p++ = c->nchan;
    for (unsigned i = 0; i < c->nchan; i++) {
        *p++ = c->chan[i].len;
        memcpy(p, c->chan[i].name, c->chan[i].len);
        p += c->chan[i].len;
    }
    if (c->auth) { /* required: a reader that cannot keep a token's state refuses the record */
        p[0] = WSP_HO_TAG_AUTH;
        put_le(p + 1, 12, 2);
        put_le(p + 3, c->uid, 8);
        put_le(p + 11, c->deadline, 4);
        p += HO_TAG_AUTH_LEN;
    }
    if (tls)
        ho_tls_put(p, &c->tls, tls);
    return 0;
}

int wsp_ho_put_bcast(wsp_ho_writer_t *w, const wsp_ho_bcast_t *b)
{
    uint8_t *p = ho_record(w, WSP_HO_BCAST,
                           8 + 1 + (size_t)b->chan_len + 4 + (size_t)b->len + 8 + 1 + b->epoch_len);
    if (p == NULL)
        return -ENOBUFS;
    put_le(p, b->seq, 8);
    p[8] = b->chan_len;
    if (b->chan_len)
        memcpy(p + 9, b->chan, b->chan_len);
    p += 9 + b->chan_len;
    put_le(p, b->len, 4);
    if (b->len)
        memcpy(p + 4, b->payload, b->len);
    p += 4 + b->len;
    put_le(p, b->cseq, 8);
    p[8] = b->epoch_len;
    if (b->epoch_len)
        memcpy(p + 9, b->epoch, b->epoch_len);
    return 0;
}

int wsp_ho_put_end(wsp_ho_writer_t *w, const wsp_ho_end_t *e)
{
    uint8_t *p = ho_record(w, WSP_HO_END, 24);
    if (p == NULL)
        return -ENOBUFS;
    put_le(p, e->seq, 8);
    put_le(p + 8, e->sup_seq, 8);
    put_le(p + 16, e->next_tick_ms, 8);
    return 0;
}

/* --- reading --- */

int wsp_ho_open(wsp_ho_reader_t *r, const uint8_t *p, size_t len)
{
    if (len < WSP_HO_HDR || get_le(p, 4) != WSP_HO_MAGIC)
        return -EBADMSG;
    if (p[4] != WSP_HO_VERSION)
        return -EPROTO;
    r->p = p;
    r->len = len;
    r->off = WSP_HO_HDR;
    r->left = (uint16_t)get_le(p + 5, 2);
    return 0;
}

int wsp_ho_next(wsp_ho_reader_t *r, uint8_t *type, const uint8_t **body, uint32_t *len)
{
    if (r->left == 0)
        return r->off == r->len ? 0 : -EBADMSG;
    if (r->len - r->off < WSP_HO_REC_HDR)
        return -EBADMSG;
    const uint8_t *p = r->p + r->off;
    uint64_t n = get_le(p + 1, 4);
    if (r->len - r->off - WSP_HO_REC_HDR < n)
        return -EBADMSG;
    *type = p[0];
    *body = p + WSP_HO_REC_HDR;
    *len = (uint32_t)n;
    r->off += WSP_HO_REC_HDR + n;
    r->left--;
    return 1;
}

int wsp_ho_get_hello(const uint8_t *body, uint32_t len, wsp_ho_hello_t *h)
{
    if (len != 17)
        return -EBADMSG;
    h->pid = (uint32_t)get_le(body, 4);
    h->shards = (uint16_t)get_le(body + 4, 2);
    h->port = (uint16_t)get_le(body + 6, 2);
    h->admin = body[8];
    h->seq = get_le(body + 9, 8);
    return h->admin > 1 || h->shards == 0 ? -EBADMSG : 0;
}

static void ho_tls_dir_get(ho_cur_t *c, const wsp_ho_tls_t *t, wsp_ho_tls_dir_t *d)
{
    d->seq = cur_int(c, 8);
    d->key = cur_bytes(c, t->keylen);
    d->iv = cur_bytes(c, WSP_HO_TLS_IV);
    d->secret = cur_bytes(c, t->secretlen);
}

/* Decodes the value v[0..n) of tag 0x02 into t: 0 or -EBADMSG. */
static int ho_tls_get(const uint8_t *v, size_t n, wsp_ho_tls_t *t)
{
    ho_cur_t c = {.p = v, .len = n};
    t->state = (uint8_t)cur_int(&c, 1);
    if (t->state == WSP_HO_TLS_OPEN) {
        t->version = (uint16_t)cur_int(&c, 2);
        t->suite = (uint16_t)cur_int(&c, 2);
        t->keylen = (uint8_t)cur_int(&c, 1);
        t->secretlen = (uint8_t)cur_int(&c, 1);
        if (t->keylen == 0 || t->keylen > WSP_HO_TLS_KEY_MAX ||
            t->secretlen > WSP_HO_TLS_SECRET_MAX)
            return -EBADMSG;
        ho_tls_dir_get(&c, t, &t->rd);
        ho_tls_dir_get(&c, t, &t->wr);
        t->part_len = (uint16_t)cur_int(&c, 2);
        t->part = cur_bytes(&c, t->part_len);
        if (t->part_len > WSP_HO_TLS_PART_MAX)
            return -EBADMSG;
    } else if (t->state != WSP_HO_TLS_NEW) {
        return -EBADMSG;
    }
    return c.bad || c.off != c.len ? -EBADMSG : 0;
}

/* The tagged fields after the fixed part of a CONN body: the token's state (0x01, once, OPEN
 * only) and TLS (0x02, once at most) are known; other required ones refuse the record,
 * skippable ones (bit 7) pass. */
static int ho_conn_tags(ho_cur_t *c, wsp_ho_conn_t *out)
{
    while (!c->bad && c->off < c->len) {
        uint8_t tag = (uint8_t)cur_int(c, 1);
        uint64_t n = cur_int(c, 2);
        const uint8_t *v = cur_bytes(c, n);
        if (c->bad)
            break;
        if (tag == WSP_HO_TAG_TLS) {
            if (out->tls.state != WSP_HO_TLS_NONE || ho_tls_get(v, n, &out->tls) < 0)
                return -EBADMSG;
        } else if (tag == WSP_HO_TAG_AUTH) {
            if (n != 12 || out->auth || out->state != WSP_HO_ST_OPEN)
                return -EBADMSG;
            out->auth = 1;
            out->uid = get_le(v, 8);
            out->deadline = (uint32_t)get_le(v + 8, 4);
        } else if (!(tag & 0x80)) {
            return -EPROTO;
        }
    }
    if (c->bad)
        return -EBADMSG;
    /* Nothing is written or read in the clear before a TLS handshake. */
    if (out->tls.state == WSP_HO_TLS_NEW &&
        (out->state != WSP_HO_ST_HANDSHAKE || out->hs_len != 0 || out->pending_len != 0))
        return -EBADMSG;
    return 0;
}

int wsp_ho_get_conn(const uint8_t *body, uint32_t len, wsp_ho_conn_t *out)
{
    ho_cur_t c = {.p = body, .len = len};
    memset(out, 0, sizeof(*out));
    out->state = (uint8_t)cur_int(&c, 1);
    out->flags = (uint8_t)cur_int(&c, 1);
    out->xf = (uint8_t)cur_int(&c, 1);
    out->ttl = (uint8_t)cur_int(&c, 1);
    out->hs_len = (uint32_t)cur_int(&c, 4);
    out->hs = cur_bytes(&c, out->hs_len);
    out->pending_len = (uint32_t)cur_int(&c, 4);
    out->pending = cur_bytes(&c, out->pending_len);
    out->nchan = (uint8_t)cur_int(&c, 1);
    if (c.bad || out->state > WSP_HO_ST_OPEN || out->nchan > WSP_HO_CHAN_MAX ||
        (out->state == WSP_HO_ST_OPEN && out->hs_len != 0))
        return -EBADMSG;
    for (unsigned i = 0; i < out->nchan; i++) {
        out->chan[i].len = (uint8_t)cur_int(&c, 1);
        out->chan[i].name = (const char *)cur_bytes(&c, out->chan[i].len);
        if (!c.bad && out->chan[i].len == 0)
            return -EBADMSG;
    }
    if (c.bad)
        return -EBADMSG;
    return ho_conn_tags(&c, out);
}

int wsp_ho_get_bcast(const uint8_t *body, uint32_t len, wsp_ho_bcast_t *b)
{
    ho_cur_t c = {.p = body, .len = len};
    b->seq = cur_int(&c, 8);
    b->chan_len = (uint8_t)cur_int(&c, 1);
    b->chan = (const char *)cur_bytes(&c, b->chan_len);
    b->len = (uint32_t)cur_int(&c, 4);
    b->payload = cur_bytes(&c, b->len);
    b->cseq = cur_int(&c, 8);
    b->epoch_len = (uint8_t)cur_int(&c, 1);
    b->epoch = (const char *)cur_bytes(&c, b->epoch_len);
    if (c.bad || c.off != c.len)
        return -EBADMSG;
    if (b->chan_len == 0)
        b->chan = NULL;
    if (b->epoch_len == 0)
        b->epoch = NULL;
    return 0;
}

int wsp_ho_get_end(const uint8_t *body, uint32_t len, wsp_ho_end_t *e)
{
    if (len != 24)
        return -EBADMSG;
    e->seq = get_le(body, 8);
    e->sup_seq = get_le(body + 8, 8);
    e->next_tick_ms = get_le(body + 16, 8);
    return 0;
}

int wsp_ho_put_cseq(wsp_ho_writer_t *w, const wsp_ho_cseq_t *c)
{
    if (c->len == 0)
        return -EINVAL;
    uint8_t *p = ho_record(w, WSP_HO_CSEQ, 8 + 1 + (size_t)c->len);
    if (p == NULL)
        return -ENOBUFS;
    put_le(p, c->seq, 8);
    p[8] = c->len;
    memcpy(p + 9, c->name, c->len);
    return 0;
}

int wsp_ho_get_cseq(const uint8_t *body, uint32_t len, wsp_ho_cseq_t *c)
{
    if (len < 10 || body[8] == 0 || (uint32_t)body[8] + 9 != len)
        return -EBADMSG;
    c->seq = get_le(body, 8);
    c->len = body[8];
    c->name = (const char *)body + 9;
    return 0;
}

int wsp_ho_put_ready(wsp_ho_writer_t *w, uint8_t flags)
{
    uint8_t *p = ho_record(w, WSP_HO_READY, 1);
    if (p == NULL)
        return -ENOBUFS;
    p[0] = flags;
    return 0;
}

int wsp_ho_get_ready(const uint8_t *body, uint32_t len, uint8_t *flags)
{
    /* A later version may add bytes after the flags: they are not this version's to read. */
    *flags = len ? body[0] : 0;
    return 0;
}

int wsp_ho_put_hist(wsp_ho_writer_t *w, const wsp_ho_hist_t *h)
{
    if (h->seq == 0 || h->chan_len == 0 || h->epoch_len == 0)
        return -EINVAL;
    uint8_t *p = ho_record(w, WSP_HO_HIST,
                           8 + 8 + 1 + (size_t)h->chan_len + 1 + h->epoch_len + 4 + (size_t)h->len);
    if (p == NULL)
        return -ENOBUFS;
    put_le(p, h->seq, 8);
    put_le(p + 8, h->age_ms, 8);
    p[16] = h->chan_len;
    memcpy(p + 17, h->chan, h->chan_len);
    p += 17 + h->chan_len;
    p[0] = h->epoch_len;
    memcpy(p + 1, h->epoch, h->epoch_len);
    p += 1 + h->epoch_len;
    put_le(p, h->len, 4);
    if (h->len)
        memcpy(p + 4, h->msg, h->len);
    return 0;
}

int wsp_ho_get_hist(const uint8_t *body, uint32_t len, wsp_ho_hist_t *h)
{
    ho_cur_t c = {.p = body, .len = len};
    h->seq = cur_int(&c, 8);
    h->age_ms = cur_int(&c, 8);
    h->chan_len = (uint8_t)cur_int(&c, 1);
    h->chan = (const char *)cur_bytes(&c, h->chan_len);
    h->epoch_len = (uint8_t)cur_int(&c, 1);
    h->epoch = (const char *)cur_bytes(&c, h->epoch_len);
    h->len = (uint32_t)cur_int(&c, 4);
    h->msg = cur_bytes(&c, h->len);
    if (c.bad || c.off != c.len || h->seq == 0 || h->chan_len == 0 || h->epoch_len == 0)
        return -EBADMSG;
    return 0;
}

int wsp_ho_put_key(wsp_ho_writer_t *w, const wsp_ho_key_t *k)
{
    if (k->alg_len == 0 || k->alg_len > WSP_HO_ALG_MAX)
        return -EINVAL;
    uint8_t *p = ho_record(w, WSP_HO_KEY, 1 + (size_t)k->alg_len + WSP_HO_SIPKEY);
    if (p == NULL)
        return -ENOBUFS;
    p[0] = k->alg_len;
    memcpy(p + 1, k->alg, k->alg_len);
    memcpy(p + 1 + k->alg_len, k->sipkey, WSP_HO_SIPKEY);
    return 0;
}

int wsp_ho_get_key(const uint8_t *body, uint32_t len, wsp_ho_key_t *k)
{
    if (len < 1 || body[0] == 0 || body[0] > WSP_HO_ALG_MAX ||
        (uint32_t)body[0] + 1 + WSP_HO_SIPKEY != len)
        return -EBADMSG;
    k->alg_len = body[0];
    k->alg = (const char *)body + 1;
    memcpy(k->sipkey, body + 1 + k->alg_len, WSP_HO_SIPKEY);
    return 0;
}

int wsp_ho_put_mark(wsp_ho_writer_t *w, const char *tok, size_t len)
{
    if (len == 0 || len > WSP_HO_MARK_MAX)
        return -EINVAL;
    uint8_t *p = ho_record(w, WSP_HO_MARK, len);
    if (p == NULL)
        return -ENOBUFS;
    memcpy(p, tok, len);
    return 0;
}

int wsp_ho_get_mark(const uint8_t *body, uint32_t len, const char **tok, size_t *tok_len)
{
    if (len == 0 || len > WSP_HO_MARK_MAX)
        return -EBADMSG;
    *tok = (const char *)body;
    *tok_len = len;
    return 0;
}
