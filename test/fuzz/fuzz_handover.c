/* Fuzzes the live upgrade's record reader (server/handover.c): the new process parses every
 * datagram the old one sends. Input: one datagram. Checks, besides memory safety, that every
 * record lies inside the datagram, that each decoded record re-encodes to exactly the body it
 * was decoded from (version 1 has no tagged field: a decoded CONN with skipped tags re-encodes
 * shorter, never differently), and that decoding is deterministic. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "handover.h"

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
    WSP_FUZZ_CHECK(rv == 0 && w.nrec == 1);
    size_t n = w.len - WSP_HO_HDR - WSP_HO_REC_HDR;
    WSP_FUZZ_CHECK(buf[WSP_HO_HDR] == type);
    WSP_FUZZ_CHECK(type == WSP_HO_CONN ? n <= len : n == len);
    WSP_FUZZ_CHECK(memcmp(buf + WSP_HO_HDR + WSP_HO_REC_HDR, body, n) == 0);
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
    else if (type == WSP_HO_HIST)
        rv = wsp_ho_get_hist(body, len, &u.hi);
    else
        return; /* READY, SHARD_END and unknown types carry nothing to decode */
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
    }
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
