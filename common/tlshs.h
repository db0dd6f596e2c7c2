#ifndef WSP_TLSHS_H
#define WSP_TLSHS_H

/* Server-side TLS handshake over memory buffers, then detach: OpenSSL runs the handshake with
 * a transient SSL object; at completion the traffic keys go into a wsp_tlsrec_t (a few hundred
 * bytes) and the SSL object is freed. An idle SSL object after the handshake would still hold
 * ~14 KB even with SSL_MODE_RELEASE_BUFFERS. No socket, no event loop here. */

#include <stddef.h>
#include <stdint.h>

#include "tlsrec.h"

typedef struct wsp_tls_ctx_s wsp_tls_ctx_t;
typedef struct wsp_tls_hs_s wsp_tls_hs_t;

#define WSP_TLS_TICKET_KEYS_LEN 80 /* ticket key name 16, HMAC secret 32, AES key 32 */

/* Why a handshake failed: the label set of wspush_tls_handshake_failures_total{reason}. This
 * module reports NOT_TLS through INTERNAL; the server counts TIMEOUT, EOF and RENEGOTIATION. */
enum {
    WSP_TLS_FAIL_NONE = 0,
    WSP_TLS_FAIL_NOT_TLS,       /* "not_tls": the first bytes are no TLS handshake record */
    WSP_TLS_FAIL_VERSION,       /* "version": the client offers nothing from TLS 1.2 up */
    WSP_TLS_FAIL_CIPHER,        /* "no_shared_cipher": no common suite, group or sigalg */
    WSP_TLS_FAIL_ALPN,          /* "alpn": ALPN offered without http/1.1 */
    WSP_TLS_FAIL_PEER_ALERT,    /* "client_alert": the client aborted, e.g. untrusted cert */
    WSP_TLS_FAIL_PROTOCOL,      /* "protocol": any other malformed or unexpected message */
    WSP_TLS_FAIL_INTERNAL,      /* "internal": out of memory, OpenSSL failure */
    WSP_TLS_FAIL_TIMEOUT,       /* "timeout": the server's handshake deadline passed */
    WSP_TLS_FAIL_EOF,           /* "eof": the client closed mid-handshake */
    WSP_TLS_FAIL_RENEGOTIATION, /* "renegotiation": a TLS 1.2 renegotiation attempt */
    WSP_TLS_FAIL_COUNT
};

/* What a completed handshake negotiated, for logs and metrics. */
typedef struct wsp_tls_info_s {
    uint64_t hs_ns;   /* wall time from the first byte received to completion */
    uint16_t version; /* 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
    uint16_t suite;   /* IANA id; wsp_tlsrec_suite_name() names it */
    uint8_t resumed;  /* 1: the session resumed from a ticket */
    uint8_t alpn;     /* 1: http/1.1 was selected through ALPN (0: the client sent none) */
} wsp_tls_info_t;

/* The short label of a WSP_TLS_FAIL_* reason ("not_tls", ...); "unknown" out of range. Pure. */
const char *wsp_tls_fail_name(int reason);

/* A server context from a PEM certificate (chain allowed) and key: TLS 1.2 and 1.3, AEAD ECDHE
 * suites only, stateless session tickets (random keys until set), no renegotiation, no 0-RTT,
 * ALPN http/1.1. NULL on failure, with one line in err (a path and why; never key bytes).
 * Reload = a new context. Any thread; the result is shared read-only by all threads. */
wsp_tls_ctx_t *wsp_tls_ctx_new(const char *cert_path, const char *key_path, char *err,
                               size_t errlen);

/* Sets the 80-byte ticket keys so that processes, and contexts after a reload, resume each
 * other's sessions. 0 or -EIO. Call before the context is shared between threads. */
int wsp_tls_ctx_set_ticket_keys(wsp_tls_ctx_t *c, const uint8_t keys[WSP_TLS_TICKET_KEYS_LEN]);

/* Drops the caller's reference; handshakes still running keep what they need. Any thread. */
void wsp_tls_ctx_free(wsp_tls_ctx_t *c);

/* A new server handshake on context c (which may be freed afterwards). NULL on OOM. The
 * handshake belongs to the calling thread until freed. */
wsp_tls_hs_t *wsp_tls_hs_new(wsp_tls_ctx_t *c);

/* Feeds bytes received from the client, record by record, and stops right after the record
 * that completes the handshake: *used says how many bytes it took; the rest is the record
 * layer's first input. Returns 0 (needs more), 1 (done: send the output, then detach) or
 * -EPROTO (failed: wsp_tls_hs_reason(); the output may hold an alert worth sending). */
int wsp_tls_hs_feed(wsp_tls_hs_t *h, const uint8_t *in, size_t len, size_t *used);

/* Bytes waiting to be sent to the client. Owner thread. */
size_t wsp_tls_hs_pending(const wsp_tls_hs_t *h);

/* Moves up to cap waiting bytes to out; returns how many. Owner thread. */
size_t wsp_tls_hs_take(wsp_tls_hs_t *h, uint8_t *out, size_t cap);

/* WSP_TLS_FAIL_* after a failure, WSP_TLS_FAIL_NONE otherwise. Owner thread. */
int wsp_tls_hs_reason(const wsp_tls_hs_t *h);

/* After feed returned 1 and every waiting byte was taken: fills t with the traffic keys and
 * sequence numbers and info with what was negotiated, then frees the SSL object (h still needs
 * wsp_tls_hs_free()). -EBUSY while output waits, -EINVAL before completion, -EIO if OpenSSL
 * does not give the secrets. Owner thread. */
int wsp_tls_hs_detach(wsp_tls_hs_t *h, wsp_tlsrec_t *t, wsp_tls_info_t *info);

/* Frees h and anything of the handshake it still holds; NULL is fine. Owner thread. */
void wsp_tls_hs_free(wsp_tls_hs_t *h);

#endif
