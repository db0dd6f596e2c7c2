/* Fuzzes the live upgrade's record reader (server/handover.c): the new process parses every
 * datagram the old one sends. Input: one datagram. Checks, besides memory safety, that every
 * record lies inside the datagram, that each decoded record re-encodes to exactly the body it
 * was decoded from (a CONN: its fixed part exactly; skippable tags are dropped and tags 0x01 (a
 * token) and 0x02 (TLS) are written right after the fixed part, so the whole re-encodes to what
 * decodes the same again: encoding it once more gives the same bytes), that decoded TLS fields
 * point inside the body, and that decoding is deterministic. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "handover.h"

/* The bytes of a CONN body before its tags. */
static size_t conn_fixed(const wsp_ho_conn_t *c)
{
    size_t n = 4 + 4 + (size_t)c->hs_len + 4 + (size_t)c->pending_len + 1;
    for (unsigned i = 0; i < c->nchan; i++)
        n += 1 + (size_t)c->chan[i].len;
    return n;
}

/* A CONN's re-encoding p[0..n) decodes to what encodes to the same bytes again. */
static void check_conn_stable(const uint8_t *p, size_t n)
{
    static uint8_t buf[WSP_HO_DGRAM_MAX + 64];
    wsp_ho_conn_t c;
    WSP_FUZZ_CHECK(wsp_ho_get_conn(p, (uint32_t)n, &c) == 0);
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    WSP_FUZZ_CHECK(wsp_ho_put_conn(&w, &c) == 0);
    WSP_FUZZ_CHECK(w.len - WSP_HO_HDR - WSP_HO_REC_HDR == n);
    WSP_FUZZ_CHECK(memcmp(buf + WSP_HO_HDR + WSP_HO_REC_HDR, p, n) == 0);
}

/* A decoded MARK. */
typedef struct mark_s {
    const char *tok;
    size_t len;
} mark_t;

/* Re-encodes one decoded record with the writer and compares it with body. */
static void check_again(uint8_t type, const uint8_t *body, uint32_t len, const void *rec)
{
    static uint8_t buf[WSP_HO_DGRAM_MAX + 64];
    wsp_ho_writer_t w;
    wsp_ho_begin(&w, buf, sizeof(buf));
    int rv = -EINVAL;
    if (type == WSP_HO_HELLO)
        rv = wsp_ho_put_hello(&w, rec);
    else if (type == WSP_HO_CONN)
        rv = wsp_ho_put_conn(&w, rec);
    else if (type == WSP_HO_BCAST)
        rv = wsp_ho_put_bcast(&w, rec);
    else if (type == WSP_HO_END)
        rv = wsp_ho_put_end(&w, rec);
    else if (type == WSP_HO_CSEQ)
        rv = wsp_ho_put_cseq(&w, rec);
    else if (type == WSP_HO_HIST)
        rv = wsp_ho_put_hist(&w, rec);
    else if (type == WSP_HO_KEY)
        rv = wsp_ho_put_key(&w, rec);
    else if (type == WSP_HO_MARK)
        rv = wsp_ho_put_mark(&w, ((const mark_t *)rec)->tok, ((const mark_t *)rec)->len);
    WSP_FUZZ_CHECK(rv == 0 && w.nrec == 1);
    size_t n = w.len - WSP_HO_HDR - WSP_HO_REC_HDR;
    WSP_FUZZ_CHECK(buf[WSP_HO_HDR] == type);
    WSP_FUZZ_CHECK(type == WSP_HO_CONN ? n <= len : n == len);
    size_t same = type == WSP_HO_CONN ? conn_fixed(rec) : n;
    WSP_FUZZ_CHECK(same <= n && memcmp(buf + WSP_HO_HDR + WSP_HO_REC_HDR, body, same) == 0);
    if (type == WSP_HO_CONN)
        check_conn_stable(buf + WSP_HO_HDR + WSP_HO_REC_HDR, n);
}

/* p[0..n) lies inside body[0..len) (or is empty). */
static int inside(const uint8_t *p, size_t n, const uint8_t *body, uint32_t len)
{
    return n == 0 || (p >= body && p + n <= body + len);
}

/* The decoded TLS fields point inside the body. */
static void check_tls(const wsp_ho_tls_t *t, const uint8_t *body, uint32_t len)
{
    WSP_FUZZ_CHECK(t->state <= WSP_HO_TLS_OPEN);
    if (t->state != WSP_HO_TLS_OPEN)
        return;
    WSP_FUZZ_CHECK(t->keylen > 0 && t->keylen <= WSP_HO_TLS_KEY_MAX &&
                   t->secretlen <= WSP_HO_TLS_SECRET_MAX && t->part_len <= WSP_HO_TLS_PART_MAX);
    const wsp_ho_tls_dir_t *d[2] = {&t->rd, &t->wr};
    for (int i = 0; i < 2; i++)
        WSP_FUZZ_CHECK(inside(d[i]->key, t->keylen, body, len) &&
                       inside(d[i]->iv, WSP_HO_TLS_IV, body, len) &&
                       inside(d[i]->secret, t->secretlen, body, len));
    WSP_FUZZ_CHECK(inside(t->part, t->part_len, body, len));
}

static void check_record(uint8_t type, const uint8_t *body, uint32_t len)
{
    union {
        wsp_ho_hello_t h;
        wsp_ho_conn_t c;
        wsp_ho_bcast_t b;
        wsp_ho_end_t e;
        wsp_ho_cseq_t q;
        wsp_ho_hist_t hi;
        wsp_ho_key_t k;
        mark_t m;
    } u;
    int rv;
    if (type == WSP_HO_HELLO)
        rv = wsp_ho_get_hello(body, len, &u.h);
    else if (type == WSP_HO_CONN)
        rv = wsp_ho_get_conn(body, len, &u.c);
    else if (type == WSP_HO_BCAST)
        rv = wsp_ho_get_bcast(body, len, &u.b);
    else if (type == WSP_HO_END)
        rv = wsp_ho_get_end(body, len, &u.e);
    else if (type == WSP_HO_CSEQ)
        rv = wsp_ho_get_cseq(body, len, &u.q);
    else if (type == WSP_HO_READY) {
        uint8_t flags;
        WSP_FUZZ_CHECK(wsp_ho_get_ready(body, len, &flags) == 0);
        return;
    } else if (type == WSP_HO_HIST)
        rv = wsp_ho_get_hist(body, len, &u.hi);
    else if (type == WSP_HO_KEY)
        rv = wsp_ho_get_key(body, len, &u.k);
    else if (type == WSP_HO_MARK) {
        rv = wsp_ho_get_mark(body, len, &u.m.tok, &u.m.len);
        WSP_FUZZ_CHECK(rv < 0 || (u.m.len > 0 && u.m.len <= WSP_HO_MARK_MAX &&
                                  inside((const uint8_t *)u.m.tok, u.m.len, body, len)));
    } else
        return; /* SHARD_END and unknown types carry nothing to decode */
    WSP_FUZZ_CHECK(rv == 0 || rv == -EBADMSG || rv == -EPROTO);
    if (rv < 0)
        return;
    if (type == WSP_HO_CONN) {
        const wsp_ho_conn_t *c = &u.c;
        WSP_FUZZ_CHECK(c->hs_len == 0 || (c->hs >= body && c->hs + c->hs_len <= body + len));
        WSP_FUZZ_CHECK(c->pending_len == 0 ||
                       (c->pending >= body && c->pending + c->pending_len <= body + len));
        for (unsigned i = 0; i < c->nchan; i++)
            WSP_FUZZ_CHECK(c->chan[i].len > 0 && (const uint8_t *)c->chan[i].name >= body &&
                           (const uint8_t *)c->chan[i].name + c->chan[i].len <= body + len);
        check_tls(&c->tls, body, len);
    }
    if (type == WSP_HO_KEY)
        WSP_FUZZ_CHECK(u.k.alg_len > 0 && u.k.alg_len <= WSP_HO_ALG_MAX &&
                       (const uint8_t *)u.k.alg == body + 1);
    if (type == WSP_HO_CONN)
        WSP_FUZZ_CHECK(!u.c.auth || u.c.state == WSP_HO_ST_OPEN);
    if (type == WSP_HO_HIST) {
        const wsp_ho_hist_t *h = &u.hi;
        WSP_FUZZ_CHECK(h->seq > 0 && h->chan_len > 0 && h->epoch_len > 0);
        WSP_FUZZ_CHECK((const uint8_t *)h->chan >= body && (const uint8_t *)h->epoch >= body);
        WSP_FUZZ_CHECK(h->len == 0 || h->msg + h->len == body + len);
    }
    check_again(type, body, len, &u);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wsp_ho_reader_t r;
    int rv = wsp_ho_open(&r, data, size);
    WSP_FUZZ_CHECK(rv == 0 || rv == -EBADMSG || rv == -EPROTO);
    if (rv < 0)
        return 0;
    uint8_t type;
    const uint8_t *body;
    uint32_t len;
    size_t seen = WSP_HO_HDR;
    while ((rv = wsp_ho_next(&r, &type, &body, &len)) == 1) {
        WSP_FUZZ_CHECK(body == data + seen + WSP_HO_REC_HDR && body + len <= data + size);
        seen += WSP_HO_REC_HDR + len;
        check_record(type, body, len);
    }
    WSP_FUZZ_CHECK(rv == 0 || rv == -EBADMSG);
    WSP_FUZZ_CHECK(rv != 0 || seen == size);
    return 0;
}
