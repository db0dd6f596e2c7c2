#ifndef WSP_TLSCONN_H
#define WSP_TLSCONN_H

/* One TLS connection (issue #18): the handshake while it runs (common/tlshs.c, ~35 KB), then
 * the detached record layer (common/tlsrec.c: keys and sequence numbers, 216 B, no SSL
 * object) for the rest of the connection's life. Received bytes go through the handshake,
 * then are opened record by record and the plaintext is handed back to the connection (the
 * HTTP upgrade, then WebSocket frames); a record split across reads is kept here only until
 * it completes. What the connection writes is sealed once, here, before it reaches the
 * socket. server/conn.c drives it and keeps it behind tcp.data; the shard lends it per-thread
 * buffers and its cipher context (wsp_tlsconn_res_t). No socket calls here, but for kTLS.
 * Owning shard thread only. */

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tlshs.h"
#include "tlsrec.h"
#include "tlsterm.h"

/* Room for one write sealed at once: a 64 KiB frame (the largest broadcast) in 5 records. */
#define WSP_TLSCONN_OUT (80 * 1024)

/* What a shard lends its TLS connections: used only for the length of one call. */
typedef struct wsp_tlsconn_res_s {
    wsp_tlsterm_t *term; /* the process's context: handshakes are made on it */
    EVP_CIPHER_CTX *cx;  /* the shard's, re-keyed for each record (common/tlsrec.h) */
    uint8_t *pt;         /* WSP_TLSREC_OPEN_MAX bytes: the plaintext of one opened record */
    uint8_t *out;        /* WSP_TLSCONN_OUT bytes: sealed bytes and handshake output */
} wsp_tlsconn_res_t;

/* Where a connection's TLS is (wsp_tlsconn_t.state). */
enum {
    WSP_TLSCONN_NEW = 0, /* accepted, no byte yet: no handshake object */
    WSP_TLSCONN_HS,      /* handshaking */
    WSP_TLSCONN_OPEN,    /* detached: records */
    WSP_TLSCONN_FAILED,  /* the handshake failed (counted) */
    WSP_TLSCONN_DONE,    /* a fatal alert or our close_notify went out: no more records */
};

/* wsp_tlsconn_t.flags */
enum {
    WSP_TLSCONN_F_SLOT = 1u << 0, /* holds one of the process's --tls-max-handshakes slots */
    WSP_TLSCONN_F_KTLS = 1u << 1, /* the kernel seals what is sent: write plaintext */
};

/* 256 bytes, the allocator's 256 B class: with the 256 B connection, an idle TLS connection
 * owns 512 B of user space. The body is public for conn.c's data slot. */
typedef struct wsp_tlsconn_s {
    wsp_tlsrec_t rec;    /* valid from WSP_TLSCONN_OPEN on (the kernel's once F_KTLS sends) */
    void *data;          /* what a plain connection keeps in tcp.data (server/conn.c) */
    wsp_tls_hs_t *hs;    /* the handshake, only while WSP_TLSCONN_HS */
    uint8_t *part;       /* an incomplete record, only while one is: freed when it completes */
    const uint8_t *sent; /* a broadcast sealed into the shard's io_uring arena, in flight */
    uint32_t sent_len;
    uint16_t part_len;
    uint8_t state; /* WSP_TLSCONN_* */
    uint8_t flags; /* WSP_TLSCONN_F_* in bits 0-3; the handshake's failure reason in bits 4-7 */
} wsp_tlsconn_t;
static_assert(sizeof(wsp_tlsconn_t) <= 256, "bytes per TLS connection: update docs/TUNING.md");

/* What the connection does with what TLS hands it; called only from wsp_tlsconn_input(). */
typedef struct wsp_tlsconn_io_s {
    /* Writes bytes already protected (handshake output, sealed records) after everything
     * written before: 0 or a negative errno. */
    int (*write)(void *user, const uint8_t *p, size_t n);
    /* The handshake completed and the keys are detached: 0 to go on, or a negative errno. */
    int (*ready)(void *user, const wsp_tls_info_t *info);
    /* Application data, decrypted: 0 to go on, non-zero when the connection takes no more
     * (the rest of the input is dropped). */
    int (*plain)(void *user, const uint8_t *p, size_t n);
} wsp_tlsconn_io_t;

/* wsp_tlsconn_input() returns these (>= 0) or a negative errno. */
enum {
    WSP_TLSCONN_MORE = 0,   /* all consumed (or kept): wait for more bytes */
    WSP_TLSCONN_CLOSED = 1, /* the peer's close_notify: ours is written, close after it */
};

/* A new connection's TLS state (NEW, nothing else allocated), or NULL. Shard thread. */
wsp_tlsconn_t *wsp_tlsconn_new(void);

/* Feeds n received bytes: through the handshake (creating it on the first byte), then record
 * by record into io->plain. Returns WSP_TLSCONN_MORE or _CLOSED, or: -EPROTO, the handshake
 * failed (wsp_tlsconn_fail_reason() says why; its alert is written); -EBADMSG, a bad record
 * (our alert written); -ECONNRESET, the peer's alert; -EOPNOTSUPP, a TLS 1.2 renegotiation
 * (no_renegotiation written); -EKEYREJECTED, a KeyUpdate we cannot answer (kTLS); -ENOMEM;
 * or what io's functions returned. On any error the connection must close. Shard thread. */
int wsp_tlsconn_input(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const uint8_t *p, size_t n,
                      const wsp_tlsconn_io_t *io, void *user);

/* WSP_TLS_FAIL_* once the handshake failed, else WSP_TLS_FAIL_NONE. */
static inline int wsp_tlsconn_fail_reason(const wsp_tlsconn_t *t) { return t->flags >> 4; }

/* Seals n bytes of application data for t into out[0..cap) and returns the length: the
 * record bytes to send, in order, before any later write. A TLS 1.3 key whose record limit is
 * near is replaced first (a KeyUpdate record leads the output). -ENOBUFS when cap is too
 * small, -EKEYEXPIRED (TLS 1.2 at its limit: close), -EIO. t must be OPEN without F_KTLS. */
ssize_t wsp_tlsconn_seal(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r, const uint8_t *p, size_t n,
                         uint8_t *out, size_t cap);

/* Seals a close_notify alert into r->out; returns its length, or 0 when none can be sent
 * (no keys yet, or the kernel holds them). */
size_t wsp_tlsconn_close_notify(wsp_tlsconn_t *t, const wsp_tlsconn_res_t *r);

/* Hands t's sending keys to the kernel for socket fd (the tls ULP, TLS_TX); from then on
 * plaintext is written and the kernel seals it. Only while nothing of t's is queued in user
 * space: the kernel would seal those bytes again. 0 or a negative errno (t keeps sealing).
 * NOT TESTED on the development machine, whose kernel has no tls ULP. Shard thread. */
int wsp_tlsconn_ktls(wsp_tlsconn_t *t, int fd);

/* Live upgrade (issue #20): makes t, a connection's new TLS state, OPEN with the record layer
 * rec (complete: wsp_tlsrec_resume()) and the part of a record its peer had sent, part[0..n)
 * (n 0: none), as the old process had them. 0, -EBADMSG when part is not the beginning of a
 * record, or -ENOMEM. Shard thread. */
int wsp_tlsconn_resume(wsp_tlsconn_t *t, const wsp_tlsrec_t *rec, const uint8_t *part, size_t n);

/* Frees t and anything it still holds; NULL is fine. Shard thread. */
void wsp_tlsconn_free(wsp_tlsconn_t *t);

#endif
