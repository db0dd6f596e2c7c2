#ifndef WSP_TLSREC_H
#define WSP_TLSREC_H

/* A TLS record layer over explicit state: no socket, no SSL object. After the handshake
 * (common/tlshs.c) the server keeps only a wsp_tlsrec_t per connection and seals and opens
 * records itself, as kernel TLS does in the kernel. TLS 1.3 (TLS_AES_128_GCM_SHA256,
 * TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256) and the TLS 1.2 ECDHE AEAD suites
 * (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305); nothing else.
 *
 * Every call that encrypts or decrypts takes the calling thread's EVP_CIPHER_CTX (a shard owns
 * one, from EVP_CIPHER_CTX_new()) and re-keys it for the connection: an EVP context per
 * connection would cost more than the whole state below. */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/evp.h>

/* Record content types (RFC 8446 section 5.1). */
enum {
    WSP_TLS_CT_CCS = 20,
    WSP_TLS_CT_ALERT = 21,
    WSP_TLS_CT_HANDSHAKE = 22,
    WSP_TLS_CT_APPDATA = 23,
};

/* Alert descriptions this layer sends or reports (RFC 8446 section 6). */
enum {
    WSP_TLS_AL_CLOSE_NOTIFY = 0,
    WSP_TLS_AL_UNEXPECTED_MESSAGE = 10,
    WSP_TLS_AL_BAD_RECORD_MAC = 20,
    WSP_TLS_AL_RECORD_OVERFLOW = 22,
    WSP_TLS_AL_ILLEGAL_PARAMETER = 47,
    WSP_TLS_AL_DECODE_ERROR = 50,
    WSP_TLS_AL_PROTOCOL_VERSION = 70,
    WSP_TLS_AL_INTERNAL_ERROR = 80,
    WSP_TLS_AL_NO_RENEGOTIATION = 100,
};

#define WSP_TLSREC_HDR 5                  /* type, version, length */
#define WSP_TLSREC_FRAGMENT 16384         /* 2^14: most plaintext bytes in one record */
#define WSP_TLSREC_OPEN_MAX 16385         /* wsp_tlsrec_open()'s out: 1.3 inner plaintext bound */
#define WSP_TLSREC_RECORD_MAX 18437       /* longest record accepted: 5 + 2^14 + 2048 (TLS 1.2) */
#define WSP_TLSREC_CONTROL_MAX 32         /* one sealed alert or KeyUpdate, any suite */
#define WSP_TLSREC_AESGCM_LIMIT 23726566u /* records per AES-GCM key: 2^24.5 (RFC 8446 5.5) */

/* One direction: key, IV, next sequence number and (TLS 1.3) the traffic secret. */
typedef struct wsp_tlsrec_dir_s {
    uint64_t seq;       /* the next record's sequence number; never repeats under one key */
    uint8_t key[32];    /* AEAD key (16 or 32 bytes used) */
    uint8_t iv[12];     /* 1.3 and ChaCha20: the IV XORed with seq; 1.2 GCM: the 4-byte salt */
    uint8_t secret[48]; /* TLS 1.3 application traffic secret, for KeyUpdate; 0 for 1.2 */
} wsp_tlsrec_dir_t;

/* A connection's whole record-layer state. No pointer inside: copy or serialise it as bytes
 * (host byte order: same machine only). */
typedef struct wsp_tlsrec_s {
    wsp_tlsrec_dir_t rd, wr; /* what the peer sends us, what we send */
    uint16_t suite;          /* IANA cipher suite id, e.g. 0x1301 */
    uint16_t version;        /* 0x0303 TLS 1.2, 0x0304 TLS 1.3 */
    uint8_t aead;            /* internal: which AEAD (tlsrec.c) */
    uint8_t keylen, hashlen; /* AEAD key bytes; hash bytes of the suite (secret length) */
} wsp_tlsrec_t;

/* One opened record, from wsp_tlsrec_open(). */
typedef struct wsp_tlsrec_in_s {
    size_t used;   /* input bytes the record took; 0 unless the call returned 0 */
    size_t need;   /* -EAGAIN: bytes the record needs in all (header, then whole record) */
    size_t len;    /* plaintext bytes written to out */
    uint8_t type;  /* content type (TLS 1.3: the inner type) */
    uint8_t alert; /* on an error: the alert to send (wsp_tlsrec_alert); -ECONNRESET: the peer's */
} wsp_tlsrec_in_t;

/* The IANA name of a suite this layer supports ("TLS_AES_128_GCM_SHA256", ...), NULL for any
 * other. Pure; any thread. */
const char *wsp_tlsrec_suite_name(uint16_t suite);

/* TLS 1.3: fills t from the application traffic secrets (t's hash length each): rd_secret the
 * peer's, wr_secret ours; both sequence numbers 0. -EINVAL for a suite that is not TLS 1.3
 * AEAD, -EIO when OpenSSL fails. Any thread; t is the caller's. */
int wsp_tlsrec_init13(wsp_tlsrec_t *t, uint16_t suite, const uint8_t *rd_secret,
                      const uint8_t *wr_secret);

/* TLS 1.2: fills t from the 48-byte master secret and the hello randoms through the PRF's key
 * block (RFC 5246 6.3); server != 0 writes with the server's keys. Sequence numbers 0 (the
 * caller sets them). -EINVAL for another suite, -EIO when OpenSSL fails. Any thread. */
int wsp_tlsrec_init12(wsp_tlsrec_t *t, uint16_t suite, const uint8_t master[48],
                      const uint8_t client_random[32], const uint8_t server_random[32], int server);

/* Completes a t whose suite, version, keylen, keys, IVs, sequence numbers and (TLS 1.3)
 * secrets were filled field by field from elsewhere (a live upgrade: server/conn_ho.c):
 * checks that suite and version are a pair this layer supports and that keylen and secretlen
 * (0 for TLS 1.2) are the suite's, then sets what follows from the suite (aead, hashlen).
 * 0, -EINVAL (t wiped) or -EIO (OpenSSL's algorithms cannot be fetched). Any thread. */
int wsp_tlsrec_resume(wsp_tlsrec_t *t, size_t secretlen);

/* Exact bytes wsp_tlsrec_seal() writes for len bytes of application data: one record per
 * 2^14 bytes or part of it (0 for len 0). Pure; any thread. */
size_t wsp_tlsrec_sealed_size(const wsp_tlsrec_t *t, size_t len);

/* Seals p[0..len) as application_data records (no padding) at out, which must not overlap p.
 * Returns the bytes written (wsp_tlsrec_sealed_size(t, len)); -ENOBUFS if cap is smaller;
 * -EKEYEXPIRED if the records would take the write sequence past the AEAD's limit, less two
 * kept for a KeyUpdate and an alert (nothing written: TLS 1.3 may wsp_tlsrec_key_update() and
 * retry, TLS 1.2 must close); -EIO on a crypto failure. No allocation. Owner thread; cx is
 * that thread's. */
ssize_t wsp_tlsrec_seal(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, const uint8_t *p, size_t len,
                        uint8_t *out, size_t cap);

/* Opens ONE record from in[0..len) into out (cap >= WSP_TLSREC_OPEN_MAX, else -ENOBUFS; no
 * overlap with in). 0: r->used, r->type, r->len are set and the read sequence advanced.
 * -EAGAIN: incomplete, r->need says how many bytes the record needs. Errors leave t as it was
 * and set r->alert:
 * -EBADMSG bad_record_mac (or too short to hold a tag), -EMSGSIZE record_overflow, -EPROTO
 * (protocol_version: legacy version not 0x0303; unexpected_message: CCS, an unknown type, a
 * TLS 1.3 record that is not application_data outside or holds no type inside),
 * -EKEYEXPIRED (the peer's sequence would wrap), -EIO (internal_error). Owner thread. */
int wsp_tlsrec_open(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, const uint8_t *in, size_t len,
                    uint8_t *out, size_t cap, wsp_tlsrec_in_t *r);

/* Acts on an opened record that is not application data (r and its plaintext p from
 * wsp_tlsrec_open()). 0: a TLS 1.3 KeyUpdate: the read key moved on; if the peer requested
 * one, our KeyUpdate is sealed at out (*outlen bytes, send before any later record; cap >=
 * WSP_TLSREC_CONTROL_MAX) and the write key moved on. -ESHUTDOWN: close_notify (EOF: answer
 * with a close_notify). -ECONNRESET: any other alert (r->alert is the peer's; send nothing).
 * -EOPNOTSUPP: TLS 1.2 renegotiation (a ClientHello); r->alert = no_renegotiation. -EPROTO:
 * any other message; r->alert says which alert. Owner thread. */
int wsp_tlsrec_control(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, wsp_tlsrec_in_t *r, const uint8_t *p,
                       uint8_t *out, size_t cap, size_t *outlen);

/* Seals one alert record (close_notify and no_renegotiation at warning level, anything else
 * fatal) at out; returns its length or -ENOBUFS, -EKEYEXPIRED, -EIO. Owner thread. */
ssize_t wsp_tlsrec_alert(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, uint8_t desc, uint8_t *out,
                         size_t cap);

/* TLS 1.3: seals a KeyUpdate (request != 0: update_requested) under the current write key,
 * then moves to the next write secret, key and IV with sequence 0 (RFC 8446 4.6.3). Returns
 * the record's length, -EPROTO for TLS 1.2, or as wsp_tlsrec_alert(). Owner thread. */
ssize_t wsp_tlsrec_key_update(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, int request, uint8_t *out,
                              size_t cap);

/* TLS 1.3: replaces the read (wr == 0) or write secret by HKDF-Expand-Label(secret,
 * "traffic upd", "", Hash.length) and derives its key and IV; sequence 0. -EPROTO for 1.2,
 * -EIO when OpenSSL fails. Owner thread. */
int wsp_tlsrec_update_secret(wsp_tlsrec_t *t, int wr);

/* Kernel TLS: writes the struct tls12_crypto_info_* for the write (tx != 0) or read
 * direction into buf (cap >= 56 bytes) and returns its length, or -EINVAL. Pure. */
int wsp_tlsrec_ktls_info(const wsp_tlsrec_t *t, int tx, void *buf, size_t cap);

/* Kernel TLS: attaches the "tls" ULP to the connected TCP socket fd and hands it the write
 * direction (and the read one if rx). 0, or -errno (-ENOENT: the kernel has no tls ULP; the
 * caller keeps sealing in user space). From then on the kernel owns those keys and sequence
 * numbers: t's copies are stale, so nothing may be sealed from t any more, including the
 * answer wsp_tlsrec_control() gives to a KeyUpdate that requests one (close such a connection
 * instead). NOT TESTED on the development machine (its kernel has no tls ULP). Owner thread. */
int wsp_tlsrec_ktls_enable(const wsp_tlsrec_t *t, int fd, int rx);

#endif
