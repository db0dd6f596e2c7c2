#ifndef WSP_TLSREF_H
#define WSP_TLSREF_H

/* A second, independent TLS 1.3 record sealer for the tests and the fuzz target: it seals an
 * arbitrary TLSInnerPlaintext (content, type, padding: any bytes), which the record layer
 * itself never produces, under the write side of a wsp_tlsrec_t. Written from RFC 8446 5.2
 * and 5.3 straight onto EVP, without tlsrec.c's helpers. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>

#include "tlsrec.h"

/* Seals inner[0..n) as one TLS 1.3 record at out (n + 21 bytes) with t's write key and
 * sequence, then advances the sequence. Returns the record length, or 0 on failure. */
static inline size_t tlsref_seal13(wsp_tlsrec_t *t, const uint8_t *inner, size_t n, uint8_t *out)
{
    const EVP_CIPHER *c = t->suite == 0x1301   ? EVP_aes_128_gcm()
                          : t->suite == 0x1302 ? EVP_aes_256_gcm()
                                               : EVP_chacha20_poly1305();
    size_t clen = n + 16;
    out[0] = 23;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(clen >> 8);
    out[4] = (uint8_t)clen;
    uint8_t nonce[12];
    memcpy(nonce, t->wr.iv, 12);
    for (int i = 0; i < 8; i++)
        nonce[11 - i] ^= (uint8_t)(t->wr.seq >> (8 * i));
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    int l = 0, ok = cx != NULL && EVP_EncryptInit_ex(cx, c, NULL, t->wr.key, nonce) == 1 &&
                    EVP_EncryptUpdate(cx, NULL, &l, out, 5) == 1 &&
                    (n == 0 || EVP_EncryptUpdate(cx, out + 5, &l, inner, (int)n) == 1) &&
                    EVP_EncryptFinal_ex(cx, out + 5 + n, &l) == 1 &&
                    EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_GET_TAG, 16, out + 5 + n) == 1;
    EVP_CIPHER_CTX_free(cx);
    if (!ok)
        return 0;
    t->wr.seq++;
    return 5 + clen;
}

/* The client's view of a server state s: read and write swapped. */
static inline void tlsref_mirror(wsp_tlsrec_t *c, const wsp_tlsrec_t *s)
{
    *c = *s;
    c->rd = s->wr;
    c->wr = s->rd;
}

#endif
