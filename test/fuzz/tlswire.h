#ifndef WSP_TLSWIRE_H
#define WSP_TLSWIRE_H

/* What fuzz_tlsrec.c and fuzz_tlsconn.c share: a fixed server/client key state per suite, and
 * the byte stream a client puts on the wire, built from fuzz input items. Header only.
 *
 * Items: [op][len hi][len lo][len bytes]; op % 4 says what goes on the wire:
 *   0  the bytes as they are (garbage, truncation, forged headers)
 *   1  application data sealed by the client's wsp_tlsrec_t
 *   2  TLS 1.3: the bytes as a whole TLSInnerPlaintext (any type, padding) sealed by an
 *      independent sealer (test/common/tlsref.h); TLS 1.2: an alert, description = 1st byte
 *   3  a KeyUpdate from the client (update_requested if op & 4; TLS 1.2: skipped) */

#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "tlsrec.h"
#include "tlsref.h"

static const uint16_t tlswire_suites[] = {0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F,
                                          0xC02C, 0xC030, 0xCCA9, 0xCCA8};

/* The server's and the client's record state for suite, from fixed secrets. */
static inline void tlswire_states(uint16_t suite, wsp_tlsrec_t *srv, wsp_tlsrec_t *cli)
{
    uint8_t a[48], b[48], cr[32], sr[32];
    memset(a, 0xA5, sizeof(a));
    memset(b, 0x5A, sizeof(b));
    memset(cr, 1, sizeof(cr));
    memset(sr, 2, sizeof(sr));
    if (suite >> 8 == 0x13) {
        WSP_FUZZ_CHECK(wsp_tlsrec_init13(srv, suite, a, b) == 0);
        WSP_FUZZ_CHECK(wsp_tlsrec_init13(cli, suite, b, a) == 0);
    } else {
        WSP_FUZZ_CHECK(wsp_tlsrec_init12(srv, suite, a, cr, sr, 1) == 0);
        WSP_FUZZ_CHECK(wsp_tlsrec_init12(cli, suite, a, cr, sr, 0) == 0);
    }
}

/* Builds the client's byte stream from the items into wire[0..cap); returns its length. The
 * application bytes sealed go to expect (*nexp of them); *clean: only well-formed records. */
static inline size_t tlswire_build(wsp_tlsrec_t *cli, EVP_CIPHER_CTX *cx, const uint8_t *p,
                                   size_t n, uint8_t *wire, size_t cap, uint8_t *expect,
                                   bool *clean, size_t *nexp)
{
    size_t w = 0;
    *clean = true;
    *nexp = 0;
    while (n >= 3) {
        uint8_t op = p[0];
        size_t len = (size_t)p[1] << 8 | p[2];
        p += 3, n -= 3;
        len = len < n ? len : n;
        ssize_t s = 0;
        if (op % 4 == 0 && len <= cap - w) {
            memcpy(wire + w, p, len);
            s = (ssize_t)len;
            *clean = *clean && len == 0;
        } else if (op % 4 == 1 && wsp_tlsrec_sealed_size(cli, len) <= cap - w) {
            s = wsp_tlsrec_seal(cli, cx, p, len, wire + w, cap - w);
            WSP_FUZZ_CHECK(s == (ssize_t)wsp_tlsrec_sealed_size(cli, len));
            memcpy(expect + *nexp, p, len);
            *nexp += len;
        } else if (op % 4 == 2 && cli->version == 0x0304 && len + 21 <= cap - w) {
            s = (ssize_t)tlsref_seal13(cli, p, len, wire + w);
            WSP_FUZZ_CHECK(s > 0);
            *clean = false;
        } else if (op % 4 == 2 && len > 0 && WSP_TLSREC_CONTROL_MAX <= cap - w) {
            s = wsp_tlsrec_alert(cli, cx, p[0], wire + w, cap - w);
            *clean = false;
        } else if (op % 4 == 3 && cli->version == 0x0304 && WSP_TLSREC_CONTROL_MAX <= cap - w) {
            s = wsp_tlsrec_key_update(cli, cx, op & 4, wire + w, cap - w);
        }
        WSP_FUZZ_CHECK(s >= 0);
        w += (size_t)s;
        p += len, n -= len;
    }
    return w;
}

#endif
