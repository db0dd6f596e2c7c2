#ifndef WSP_TLSTEST_H
#define WSP_TLSTEST_H

/* Shared by test_tlsrec.c and test_tlshs.c: certificates made at test time, and a real
 * OpenSSL client over memory BIOs against our server handshake and detached record layer. */

#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "tlshs.h"
#include "tlsrec.h"

#define TT_INBUF (256 * 1024)

/* One client/server pair, all in memory. */
typedef struct tt_pair_s {
    SSL *cl;             /* the OpenSSL client */
    BIO *cl_in, *cl_out; /* what the client reads / writes (owned by cl) */
    wsp_tls_hs_t *hs;    /* our server handshake, NULL after detach */
    wsp_tlsrec_t rec;    /* our server record layer after detach */
    wsp_tls_info_t info; /* what the handshake negotiated */
    EVP_CIPHER_CTX *cx;  /* the "shard's" cipher context */
    uint8_t *in;         /* client bytes the server has not consumed yet */
    size_t nin;
    int hs_rv; /* last wsp_tls_hs_feed() result */
} tt_pair_t;

/* Makes the certificates (test/common/mkcerts.sh) in a new temporary directory once per
 * process; returns that directory. Aborts the test on failure. */
const char *tt_certs(void);

/* tt_certs()/name, in a static buffer per call slot (0..3). */
const char *tt_path(int slot, const char *name);

/* Removes the certificate directory (call from the group teardown). */
void tt_certs_cleanup(void);

/* A server context for cert/key names in tt_certs(); aborts the test if it fails. */
wsp_tls_ctx_t *tt_server_ctx(const char *cert, const char *key);

/* A client context trusting ca (a name in tt_certs(), or NULL for no verification), versions
 * min..max (TLS1_2_VERSION...), a TLS 1.2 cipher list and TLS 1.3 suites (NULL: defaults). */
SSL_CTX *tt_client_ctx(const char *ca, int minv, int maxv, const char *ciphers, const char *suites);

/* Starts a pair: a client SSL from cctx (resuming sess if not NULL), a server handshake on
 * sctx. */
void tt_pair_init(tt_pair_t *p, SSL_CTX *cctx, wsp_tls_ctx_t *sctx, SSL_SESSION *sess);

/* Runs the handshake both ways until the server is done or failed and the client has nothing
 * more to say; returns the server's last feed result (1 done, -EPROTO failed). */
int tt_handshake(tt_pair_t *p);

/* tt_handshake() that must succeed, then detach: asserts along the way. */
void tt_connect(tt_pair_t *p);

/* Moves every byte the client wrote to the server's input. */
void tt_cl_flush(tt_pair_t *p);

/* Moves every byte the server handshake wants to send to the client. */
void tt_hs_flush(tt_pair_t *p);

/* The client writes its ClientHello (and waits for an answer); its bytes go to the server's
 * input. */
void tt_cl_hello(tt_pair_t *p);

/* Seals msg with the server record layer and hands it to the client. */
void tt_srv_send(tt_pair_t *p, const uint8_t *msg, size_t len);

/* Reads exactly len bytes of application data at the client; asserts. */
void tt_cl_read(tt_pair_t *p, uint8_t *out, size_t len);

/* The client writes msg (SSL_write), then its bytes go to the server's input. */
void tt_cl_write(tt_pair_t *p, const uint8_t *msg, size_t len);

/* Opens every complete record in the server's input, appending application data to out
 * (*n bytes so far, cap), acting on control records (KeyUpdate replies go to the client).
 * Returns 0 once the input holds no complete record, or the first error of
 * wsp_tlsrec_open()/wsp_tlsrec_control(); *alert gets the record's alert field. */
int tt_srv_recv(tt_pair_t *p, uint8_t *out, size_t cap, size_t *n, uint8_t *alert);

/* close_notify from the client, which the server sees as EOF, then ours, which the client
 * sees as a clean end; asserts. */
void tt_close(tt_pair_t *p);

/* Frees everything of the pair. */
void tt_pair_free(tt_pair_t *p);

/* Deterministic filler bytes. */
void tt_fill(uint8_t *p, size_t n, uint32_t seed);

#endif
