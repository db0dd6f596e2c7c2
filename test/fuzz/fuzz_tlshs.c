/* Fuzzes the server handshake driver (common/tlshs.c, OpenSSL underneath) on whatever a client
 * sends first. Input: [split control][client byte stream], fed in pieces as reads would.
 * The server's certificate (ECDSA P-256, self-signed) is made in memory once per process and
 * loaded through files in a temporary directory, as the server loads its own.
 * Checks, besides memory safety and leaks:
 * - feed() returns 0, 1 or -EPROTO and never takes more than it is given;
 * - once failed it stays failed, takes nothing, and names a reason from NOT_TLS to INTERNAL;
 * - a stream that does not start 0x16 0x03 fails as not_tls, with nothing to send;
 * - while running, it takes every byte (record boundaries are its own business);
 * - the output drains completely; a handshake that completes (it cannot without the client's
 *   keys, but should it) detaches. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "fuzz.h"
#include "tlshs.h"

static wsp_tls_ctx_t *ctx;

/* Writes a fresh self-signed P-256 certificate and key to dir/c.pem and dir/k.pem. */
static int write_cert(const char *cert, const char *key)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *fc = fopen(cert, "w"), *fk = fopen(key, "w");
    int ok = pk != NULL && x != NULL && fc != NULL && fk != NULL &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1 &&
             X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
             X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL &&
             X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                                        (const unsigned char *)"localhost", -1, -1, 0) == 1 &&
             X509_set_issuer_name(x, X509_get_subject_name(x)) == 1 &&
             X509_set_pubkey(x, pk) == 1 && X509_sign(x, pk, EVP_sha256()) > 0 &&
             PEM_write_X509(fc, x) == 1 &&
             PEM_write_PrivateKey(fk, pk, NULL, NULL, 0, NULL, NULL) == 1;
    if (fc != NULL)
        ok = fclose(fc) == 0 && ok;
    if (fk != NULL)
        ok = fclose(fk) == 0 && ok;
    X509_free(x);
    EVP_PKEY_free(pk);
    return ok;
}

static void setup(void)
{
    char dir[] = "/tmp/wsp-fuzz-tlshs-XXXXXX", cert[64], key[64], err[256];
    if (mkdtemp(dir) == NULL)
        abort();
    snprintf(cert, sizeof(cert), "%s/c.pem", dir);
    snprintf(key, sizeof(key), "%s/k.pem", dir);
    int ok = write_cert(cert, key);
    if (ok && (ctx = wsp_tls_ctx_new(cert, key, err, sizeof(err))) == NULL)
        fprintf(stderr, "fuzz_tlshs: %s\n", err);
    unlink(cert);
    unlink(key);
    rmdir(dir);
    if (ctx == NULL)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (ctx == NULL)
        setup();
    if (size < 1)
        return 0;
    wsp_fuzz_split_t sp;
    wsp_fuzz_split_init(&sp, data[0]);
    const uint8_t *p = data + 1;
    size_t n = size - 1, off = 0;
    wsp_tls_hs_t *h = wsp_tls_hs_new(ctx);
    WSP_FUZZ_CHECK(h != NULL);
    int rv = 0;
    uint8_t out[4096];
    size_t sent = 0;
    while (off < n && rv == 0) {
        size_t len = wsp_fuzz_split_next(&sp, n - off), used = 99999;
        rv = wsp_tls_hs_feed(h, p + off, len, &used);
        WSP_FUZZ_CHECK(rv == 0 || rv == 1 || rv == -EPROTO);
        WSP_FUZZ_CHECK(used <= len);
        WSP_FUZZ_CHECK(rv != 0 || used == len);
        off += used;
        size_t k;
        while ((k = wsp_tls_hs_take(h, out, sizeof(out))) > 0)
            sent += k;
        WSP_FUZZ_CHECK(wsp_tls_hs_pending(h) == 0);
    }
    int reason = wsp_tls_hs_reason(h);
    if (rv == -EPROTO) {
        WSP_FUZZ_CHECK(reason > WSP_TLS_FAIL_NONE && reason <= WSP_TLS_FAIL_INTERNAL);
        size_t used = 1;
        WSP_FUZZ_CHECK(wsp_tls_hs_feed(h, p, n, &used) == -EPROTO && used == 0);
    } else {
        WSP_FUZZ_CHECK(reason == WSP_TLS_FAIL_NONE);
    }
    if (n > 0 && (p[0] != 0x16 || (n > 1 && p[1] != 3)))
        WSP_FUZZ_CHECK(reason == WSP_TLS_FAIL_NOT_TLS && sent == 0);
    if (rv == 1) {
        wsp_tlsrec_t t;
        wsp_tls_info_t info;
        WSP_FUZZ_CHECK(wsp_tls_hs_detach(h, &t, &info) == 0);
    }
    wsp_tls_hs_free(h);
    return 0;
}
