/* Fuzzes the detached record layer (common/tlsrec.c) as the server reads it: records opened
 * one at a time from a stream fed in pieces, control records acted on (alerts, TLS 1.3
 * KeyUpdate, TLS 1.2 renegotiation), with a fixed key state per suite.
 *
 * Input: [split control][suite][items...]; suite % 9 picks one of the nine suites. Each item is
 * [op][len hi][len lo][len bytes]; op % 4 says what the client side puts on the wire:
 *   0  the bytes as they are (garbage, truncation, forged headers)
 *   1  application data sealed by the client's wsp_tlsrec_t
 *   2  TLS 1.3: the bytes as a whole TLSInnerPlaintext (any type, padding) sealed by an
 *      independent sealer (test/common/tlsref.h); TLS 1.2: an alert, description = 1st byte
 *   3  a KeyUpdate from the client (update_requested if op & 4; TLS 1.2: refused, skipped)
 * Checks, besides memory safety and leaks:
 * - open() consumes nothing and changes nothing on an error, and sets an alert;
 * - a record opened never holds more than 2^14 bytes of plaintext, and used <= bytes given;
 * - when the client put only well-formed records on the wire (ops 1 and 3), every record
 *   opens, the application data arrives whole and in order, and nothing fails;
 * - every KeyUpdate we answer opens at the client, and the keys on both sides stay in step;
 * - the read boundaries change nothing (same outcome as the whole stream at once). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tlsrec.h"
#include "tlswire.h"

#define MAXIN (1 << 18)

static EVP_CIPHER_CTX *cx;
static uint8_t wire[MAXIN], expect[MAXIN], got[MAXIN], plain[WSP_TLSREC_OPEN_MAX];

struct outcome {
    int rv; /* 0: stream used up; else the first error */
    size_t got, records;
};

/* The stream a client puts on the wire: tlswire.h (shared with fuzz_tlsconn.c). */
static size_t build(wsp_tlsrec_t *cli, const uint8_t *p, size_t n, bool *clean, size_t *nexp)
{
    return tlswire_build(cli, cx, p, n, wire, MAXIN, expect, clean, nexp);
}

/* The client reads what we answered (KeyUpdates): each must open and act. */
static void client_reads(wsp_tlsrec_t *cli, const uint8_t *b, size_t n)
{
    wsp_tlsrec_in_t r;
    WSP_FUZZ_CHECK(wsp_tlsrec_open(cli, cx, b, n, plain, sizeof(plain), &r) == 0);
    WSP_FUZZ_CHECK(r.used == n && r.type == WSP_TLS_CT_HANDSHAKE);
    uint8_t out[WSP_TLSREC_CONTROL_MAX];
    size_t ol = 1;
    WSP_FUZZ_CHECK(wsp_tlsrec_control(cli, cx, &r, plain, out, sizeof(out), &ol) == 0);
    WSP_FUZZ_CHECK(ol == 0); /* ours never asks back */
}

/* Opens records from the server's buffer until it needs more; 1 to go on, 0 when done. */
static int drain(wsp_tlsrec_t *srv, wsp_tlsrec_t *cli, const uint8_t *buf, size_t *off, size_t end,
                 struct outcome *o)
{
    for (;;) {
        wsp_tlsrec_in_t r;
        wsp_tlsrec_t before = *srv;
        int rv = wsp_tlsrec_open(srv, cx, buf + *off, end - *off, plain, sizeof(plain), &r);
        if (rv == -EAGAIN) {
            WSP_FUZZ_CHECK(r.need > end - *off && r.need <= WSP_TLSREC_RECORD_MAX);
            return 1;
        }
        if (rv < 0) {
            WSP_FUZZ_CHECK(r.used == 0 && memcmp(&before, srv, sizeof(before)) == 0);
            WSP_FUZZ_CHECK(r.alert != WSP_TLS_AL_CLOSE_NOTIFY);
            o->rv = rv;
            return 0;
        }
        WSP_FUZZ_CHECK(r.used > WSP_TLSREC_HDR && r.used <= end - *off);
        WSP_FUZZ_CHECK(r.len <= WSP_TLSREC_FRAGMENT);
        WSP_FUZZ_CHECK(srv->rd.seq == before.rd.seq + 1);
        *off += r.used;
        o->records++;
        if (r.type == WSP_TLS_CT_APPDATA) {
            memcpy(got + o->got, plain, r.len);
            o->got += r.len;
            continue;
        }
        uint8_t reply[WSP_TLSREC_CONTROL_MAX];
        size_t ol = 0;
        rv = wsp_tlsrec_control(srv, cx, &r, plain, reply, sizeof(reply), &ol);
        if (ol > 0)
            client_reads(cli, reply, ol);
        if (rv < 0) {
            o->rv = rv;
            return 0;
        }
    }
}

static struct outcome run(uint16_t suite, const uint8_t *p, size_t n, uint8_t split, bool *clean,
                          size_t *nexp)
{
    wsp_tlsrec_t srv, cli;
    tlswire_states(suite, &srv, &cli);
    size_t w = build(&cli, p, n, clean, nexp);
    struct outcome o = {0};
    wsp_fuzz_split_t sp;
    wsp_fuzz_split_init(&sp, split);
    size_t off = 0, end = 0;
    while (end < w) {
        end += wsp_fuzz_split_next(&sp, w - end);
        if (!drain(&srv, &cli, wire, &off, end, &o))
            break;
    }
    if (*clean && off == w) /* all read: both sides' keys agree (op 2 may hide a KeyUpdate) */
        WSP_FUZZ_CHECK(memcmp(&srv.rd, &cli.wr, sizeof(srv.rd)) == 0 &&
                       memcmp(&srv.wr, &cli.rd, sizeof(srv.wr)) == 0);
    if (o.rv != 0) { /* the alert we would send seals */
        uint8_t al[WSP_TLSREC_CONTROL_MAX];
        WSP_FUZZ_CHECK(wsp_tlsrec_alert(&srv, cx, WSP_TLS_AL_UNEXPECTED_MESSAGE, al, sizeof(al)) >
                       0);
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (cx == NULL && (cx = EVP_CIPHER_CTX_new()) == NULL)
        abort();
    if (size < 2)
        return 0;
    uint16_t suite = tlswire_suites[data[1] % 9];
    bool clean;
    size_t nexp;
    struct outcome a = run(suite, data + 2, size - 2, data[0], &clean, &nexp);
    if (clean) {
        WSP_FUZZ_CHECK(a.rv == 0 && a.got == nexp);
        WSP_FUZZ_CHECK(memcmp(got, expect, nexp) == 0);
    }
    if (data[0] != 0) { /* the same stream whole */
        struct outcome b = run(suite, data + 2, size - 2, 0, &clean, &nexp);
        WSP_FUZZ_CHECK(a.rv == b.rv && a.got == b.got && a.records == b.records);
    }
    return 0;
}
