/* Fuzzes one server TLS connection after its handshake (server/tlsconn.c): the reassembly of
 * records split across reads (kept only while incomplete), their hand-over to the
 * connection, control records (KeyUpdate, alerts, renegotiation) and the answers written.
 * The connection starts OPEN with a fixed key state per suite (no handshake: tlsconn's own
 * code is what is under test; the handshake driver has fuzz_tlshs).
 *
 * Input: [split control][suite][items...], as fuzz_tlsrec (test/fuzz/tlswire.h). Checks,
 * besides memory safety and leaks:
 * - input() returns MORE, CLOSED or one of its documented errors, and after an error or
 *   CLOSED the connection is not fed again (as server/conn_tls.c does);
 * - the read boundaries change nothing: same result, same plaintext as the stream whole;
 * - a stream of well-formed records only arrives whole and in order, ends with MORE, with no
 *   partial record kept, and the read keys end where the client's write keys are;
 * - what the connection writes (KeyUpdate answers, alerts) is whole records. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "tlsconn.h"
#include "tlswire.h"

#define MAXIN (1 << 18)

static uint8_t wire[MAXIN], expect[MAXIN], pt[WSP_TLSREC_OPEN_MAX], out[WSP_TLSCONN_OUT];
static wsp_tlsconn_res_t res;

struct sink {
    uint8_t got[MAXIN];
    size_t ngot, written, writes;
};
static struct sink whole, split;

static int on_write(void *user, const uint8_t *p, size_t n)
{
    struct sink *s = user;
    /* whole records: a header whose length covers exactly what is written */
    for (size_t off = 0; off < n;) {
        WSP_FUZZ_CHECK(n - off >= WSP_TLSREC_HDR);
        off += WSP_TLSREC_HDR + ((size_t)p[off + 3] << 8 | p[off + 4]);
        WSP_FUZZ_CHECK(off <= n);
    }
    s->written += n;
    s->writes++;
    return 0;
}

static int on_ready(void *user, const wsp_tls_info_t *info)
{
    (void)user;
    (void)info;
    WSP_FUZZ_CHECK(0); /* already OPEN: no handshake may complete */
    return 0;
}

static int on_plain(void *user, const uint8_t *p, size_t n)
{
    struct sink *s = user;
    WSP_FUZZ_CHECK(n > 0 && n <= WSP_TLSREC_FRAGMENT && s->ngot + n <= MAXIN);
    memcpy(s->got + s->ngot, p, n);
    s->ngot += n;
    return 0;
}

static const wsp_tlsconn_io_t io = {.write = on_write, .ready = on_ready, .plain = on_plain};

/* Feeds the stream in pieces chosen by split; returns the first non-MORE result (or MORE). */
static int run(uint16_t suite, const uint8_t *p, size_t n, uint8_t ctl, struct sink *s, bool *clean,
               size_t *nexp)
{
    wsp_tlsrec_t srv, cli;
    tlswire_states(suite, &srv, &cli);
    size_t w = tlswire_build(&cli, res.cx, p, n, wire, MAXIN, expect, clean, nexp);
    wsp_tlsconn_t *t = wsp_tlsconn_new();
    WSP_FUZZ_CHECK(t != NULL);
    t->rec = srv;
    t->state = WSP_TLSCONN_OPEN;
    memset(s, 0, sizeof(*s));
    wsp_fuzz_split_t sp;
    wsp_fuzz_split_init(&sp, ctl);
    int rv = WSP_TLSCONN_MORE;
    for (size_t off = 0; off < w && rv == WSP_TLSCONN_MORE;) {
        size_t k = wsp_fuzz_split_next(&sp, w - off);
        rv = wsp_tlsconn_input(t, &res, wire + off, k, &io, s);
        off += k;
    }
    WSP_FUZZ_CHECK(rv == WSP_TLSCONN_MORE || rv == WSP_TLSCONN_CLOSED || rv == -EBADMSG ||
                   rv == -ECONNRESET || rv == -EOPNOTSUPP);
    if (*clean && rv == WSP_TLSCONN_MORE) {
        WSP_FUZZ_CHECK(t->part == NULL);
        WSP_FUZZ_CHECK(memcmp(&t->rec.rd, &cli.wr, sizeof(cli.wr)) == 0);
    }
    wsp_tlsconn_free(t);
    return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (res.cx == NULL) {
        res.cx = EVP_CIPHER_CTX_new();
        res.pt = pt;
        res.out = out;
        if (res.cx == NULL)
            abort();
    }
    if (size < 2)
        return 0;
    uint16_t suite = tlswire_suites[data[1] % 9];
    bool clean;
    size_t nexp;
    int a = run(suite, data + 2, size - 2, data[0], &split, &clean, &nexp);
    if (clean) {
        WSP_FUZZ_CHECK(a == WSP_TLSCONN_MORE && split.ngot == nexp);
        WSP_FUZZ_CHECK(memcmp(split.got, expect, nexp) == 0);
    }
    if (data[0] != 0) { /* the same stream whole */
        int b = run(suite, data + 2, size - 2, 0, &whole, &clean, &nexp);
        WSP_FUZZ_CHECK(a == b && split.ngot == whole.ngot && split.written == whole.written);
        WSP_FUZZ_CHECK(memcmp(split.got, whole.got, whole.ngot) == 0);
    }
    return 0;
}
