/* Fuzzes the live upgrade's record reader (server/handover.c): the new process parses every
 * datagram the old one sends. Input: one datagram. Checks, besides memory safety, that every
 * record lies inside the datagram, that each decoded record re-encodes to exactly the body it
 * was decoded from (a CONN's fixed part exactly; its tagged fields re-encode to the known ones
 * only, which decode to the same values: skipped tags are dropped), and that decoding is
 * deterministic. */
#include <errno.h>
#include <string.h>

#include "fuzz.h"
#include "handover.h"

/* A CONN re-encoded: the fixed part as it came, then the known tagged fields, which decode
 * to what the original did. */
static void check_conn_again(const uint8_t *body, uint32_t len, const uint8_t *again, size_t n,
                             const wsp_ho_conn_t *c)
{
    size_t fixed = n - (c->auth ? 15 : 0); /* the token's state: [0x01][12][uid][deadline] */
    WSP_FUZZ_CHECK(fixed <= len && memcmp(again, body, fixed) == 0);
    wsp_ho_conn_t d;
    WSP_FUZZ_CHECK(wsp_ho_get_conn(again, (uint32_t)n, &d) == 0);
    WSP_FUZZ_CHECK(d.auth == c->auth && d.uid == c->uid && d.deadline == c->deadline);
}

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
    else if (type == WSP_HO_KEY)
        rv = wsp_ho_put_key(&w, rec);
    WSP_FUZZ_CHECK(rv == 0 && w.nrec == 1);
    size_t n = w.len - WSP_HO_HDR - WSP_HO_REC_HDR;
    const uint8_t *again = buf + WSP_HO_HDR + WSP_HO_REC_HDR;
    WSP_FUZZ_CHECK(buf[WSP_HO_HDR] == type);
    if (type == WSP_HO_CONN) {
        check_conn_again(body, len, again, n, rec);
        return;
    }
    WSP_FUZZ_CHECK(n == len && memcmp(again, body, n) == 0);
}

static void check_record(uint8_t type, const uint8_t *body, uint32_t len)
{
    union {
        wsp_ho_hello_t h;
        wsp_ho_conn_t c;
        wsp_ho_bcast_t b;
        wsp_ho_end_t e;
        wsp_ho_cseq_t q;
        wsp_ho_key_t k;
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
    else if (type == WSP_HO_KEY)
        rv = wsp_ho_get_key(body, len, &u.k);
    else
        return; /* READY, SHARD_END and unknown types carry nothing to decode */
    WSP_FUZZ_CHECK(rv == 0 || rv == -EBADMSG || rv == -EPROTO);
    if (rv < 0)
        return;
    if (type == WSP_HO_KEY)
        WSP_FUZZ_CHECK(u.k.alg_len > 0 && u.k.alg_len <= WSP_HO_ALG_MAX &&
                       (const uint8_t *)u.k.alg == body + 1);
    if (type == WSP_HO_CONN) {
        const wsp_ho_conn_t *c = &u.c;
        WSP_FUZZ_CHECK(!c->auth || c->state == WSP_HO_ST_OPEN);
        WSP_FUZZ_CHECK(c->hs_len == 0 || (c->hs >= body && c->hs + c->hs_len <= body + len));
        WSP_FUZZ_CHECK(c->pending_len == 0 ||
                       (c->pending >= body && c->pending + c->pending_len <= body + len));
        for (unsigned i = 0; i < c->nchan; i++)
            WSP_FUZZ_CHECK(c->chan[i].len > 0 && (const uint8_t *)c->chan[i].name >= body &&
                           (const uint8_t *)c->chan[i].name + c->chan[i].len <= body + len);
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
