#include "tlsrec.h"

#include <assert.h>
#include <errno.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>

/* 216 bytes: with the connection's ~300 B this stays far under the 4,096 B target. */
static_assert(sizeof(wsp_tlsrec_t) <= 224, "bytes per TLS connection: update the report");

enum { AEAD_AES128GCM, AEAD_AES256GCM, AEAD_CHACHA, AEAD_COUNT };

#define TAG 16     /* every suite here has a 16-byte tag */
#define EXPLICIT 8 /* TLS 1.2 GCM: the explicit nonce carried in each record */
#define TLS12 0x0303
#define TLS13 0x0304

static const struct suite {
    uint16_t id, version;
    uint8_t aead, keylen, hashlen;
    const char *name;
} suites[] = {
    {0x1301, TLS13, AEAD_AES128GCM, 16, 32, "TLS_AES_128_GCM_SHA256"},
    {0x1302, TLS13, AEAD_AES256GCM, 32, 48, "TLS_AES_256_GCM_SHA384"},
    {0x1303, TLS13, AEAD_CHACHA, 32, 32, "TLS_CHACHA20_POLY1305_SHA256"},
    {0xC02B, TLS12, AEAD_AES128GCM, 16, 32, "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"},
    {0xC02F, TLS12, AEAD_AES128GCM, 16, 32, "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
    {0xC02C, TLS12, AEAD_AES256GCM, 32, 48, "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"},
    {0xC030, TLS12, AEAD_AES256GCM, 32, 48, "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
    {0xCCA9, TLS12, AEAD_CHACHA, 32, 32, "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
    {0xCCA8, TLS12, AEAD_CHACHA, 32, 32, "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"},
};

/* Algorithms fetched once per process: EVP_EncryptInit_ex() with the legacy EVP_aes_128_gcm()
 * would fetch the provider's implementation again on every call, once per connection per
 * broadcast. */
static struct {
    EVP_CIPHER *cipher[AEAD_COUNT];
    EVP_KDF *hkdf, *prf;
    int ok;
} algs;
static pthread_once_t algs_once = PTHREAD_ONCE_INIT;

static void algs_fetch(void)
{
    static const char *const names[AEAD_COUNT] = {"AES-128-GCM", "AES-256-GCM",
                                                  "ChaCha20-Poly1305"};
    algs.ok = 1;
    for (int i = 0; i < AEAD_COUNT; i++)
        if ((algs.cipher[i] = EVP_CIPHER_fetch(NULL, names[i], NULL)) == NULL)
            algs.ok = 0;
    algs.hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    algs.prf = EVP_KDF_fetch(NULL, "TLS1-PRF", NULL);
    if (algs.hkdf == NULL || algs.prf == NULL)
        algs.ok = 0;
}

static int algs_ready(void) { return pthread_once(&algs_once, algs_fetch) == 0 && algs.ok; }

static const struct suite *suite_find(uint16_t id)
{
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++)
        if (suites[i].id == id)
            return &suites[i];
    return NULL;
}

const char *wsp_tlsrec_suite_name(uint16_t suite)
{
    const struct suite *s = suite_find(suite);
    return s ? s->name : NULL;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static const char *md_name(const wsp_tlsrec_t *t) { return t->hashlen == 48 ? "SHA384" : "SHA256"; }

/* HKDF-Expand-Label(secret, label, "", n) of RFC 8446 section 7.1, the HkdfLabel built here
 * and expanded by OpenSSL's HKDF in expand-only mode. */
static int expand_label(const wsp_tlsrec_t *t, const uint8_t *secret, const char *label,
                        uint8_t *out, size_t n)
{
    uint8_t info[2 + 1 + 6 + 16 + 1];
    size_t ll = strlen(label);
    assert(ll <= 16 && n <= 255);
    info[0] = 0;
    info[1] = (uint8_t)n;
    info[2] = (uint8_t)(6 + ll);
    memcpy(info + 3, "tls13 ", 6);
    memcpy(info + 9, label, ll);
    info[9 + ll] = 0; /* empty context */
    int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
    OSSL_PARAM ps[] = {
        OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_name(t), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)secret, t->hashlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info, 10 + ll),
        OSSL_PARAM_construct_end(),
    };
    EVP_KDF_CTX *k = EVP_KDF_CTX_new(algs.hkdf);
    int ok = k != NULL && EVP_KDF_derive(k, out, n, ps) == 1;
    EVP_KDF_CTX_free(k);
    return ok ? 0 : -EIO;
}

/* Derives d's key and IV from d->secret (RFC 8446 section 7.3); sequence 0. */
static int dir_derive13(const wsp_tlsrec_t *t, wsp_tlsrec_dir_t *d)
{
    d->seq = 0;
    if (expand_label(t, d->secret, "key", d->key, t->keylen) < 0 ||
        expand_label(t, d->secret, "iv", d->iv, sizeof(d->iv)) < 0)
        return -EIO;
    return 0;
}

static int init_common(wsp_tlsrec_t *t, uint16_t suite, uint16_t version)
{
    memset(t, 0, sizeof(*t));
    const struct suite *s = suite_find(suite);
    if (s == NULL || s->version != version)
        return -EINVAL;
    if (!algs_ready())
        return -EIO;
    t->suite = suite;
    t->version = version;
    t->aead = s->aead;
    t->keylen = s->keylen;
    t->hashlen = s->hashlen;
    return 0;
}

int wsp_tlsrec_init13(wsp_tlsrec_t *t, uint16_t suite, const uint8_t *rd_secret,
                      const uint8_t *wr_secret)
{
    int rv = init_common(t, suite, TLS13);
    if (rv < 0)
        return rv;
    memcpy(t->rd.secret, rd_secret, t->hashlen);
    memcpy(t->wr.secret, wr_secret, t->hashlen);
    if (dir_derive13(t, &t->rd) < 0 || dir_derive13(t, &t->wr) < 0) {
        OPENSSL_cleanse(t, sizeof(*t));
        return -EIO;
    }
    return 0;
}

int wsp_tlsrec_init12(wsp_tlsrec_t *t, uint16_t suite, const uint8_t master[48],
                      const uint8_t client_random[32], const uint8_t server_random[32], int server)
{
    int rv = init_common(t, suite, TLS12);
    if (rv < 0)
        return rv;
    /* key_block = PRF(master, "key expansion", server_random + client_random): no MAC keys
     * for AEAD suites, then client and server keys, then client and server fixed IVs (4 bytes
     * of salt for GCM, RFC 5288; the 12-byte IV for ChaCha20, RFC 7905). */
    uint8_t seed[13 + 64], kb[2 * 32 + 2 * 12];
    memcpy(seed, "key expansion", 13);
    memcpy(seed + 13, server_random, 32);
    memcpy(seed + 45, client_random, 32);
    size_t ivlen = t->aead == AEAD_CHACHA ? 12 : 4, kl = t->keylen;
    OSSL_PARAM ps[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)md_name(t), 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SECRET, (void *)master, 48),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SEED, seed, sizeof(seed)),
        OSSL_PARAM_construct_end(),
    };
    EVP_KDF_CTX *k = EVP_KDF_CTX_new(algs.prf);
    int ok = k != NULL && EVP_KDF_derive(k, kb, 2 * kl + 2 * ivlen, ps) == 1;
    EVP_KDF_CTX_free(k);
    if (ok) {
        wsp_tlsrec_dir_t *cl = server ? &t->rd : &t->wr, *sv = server ? &t->wr : &t->rd;
        memcpy(cl->key, kb, kl);
        memcpy(sv->key, kb + kl, kl);
        memcpy(cl->iv, kb + 2 * kl, ivlen);
        memcpy(sv->iv, kb + 2 * kl + ivlen, ivlen);
    }
    OPENSSL_cleanse(kb, sizeof(kb));
    if (!ok)
        OPENSSL_cleanse(t, sizeof(*t));
    return ok ? 0 : -EIO;
}

int wsp_tlsrec_resume(wsp_tlsrec_t *t, size_t secretlen)
{
    const struct suite *s = suite_find(t->suite);
    if (s == NULL || s->version != t->version || t->keylen != s->keylen ||
        secretlen != (s->version == TLS13 ? s->hashlen : 0u)) {
        OPENSSL_cleanse(t, sizeof(*t));
        return -EINVAL;
    }
    t->aead = s->aead;
    t->hashlen = s->hashlen;
    /* The ciphers are fetched on a process's first handshake: an adopted connection may come
     * before any. */
    return algs_ready() ? 0 : -EIO;
}

/* Record expansion: bytes a record adds to its plaintext. */
static size_t overhead(const wsp_tlsrec_t *t)
{
    if (t->version == TLS13)
        return WSP_TLSREC_HDR + 1 + TAG; /* inner content type */
    return WSP_TLSREC_HDR + TAG + (t->aead == AEAD_CHACHA ? 0 : EXPLICIT);
}

size_t wsp_tlsrec_sealed_size(const wsp_tlsrec_t *t, size_t len)
{
    size_t nrec = len / WSP_TLSREC_FRAGMENT + (len % WSP_TLSREC_FRAGMENT != 0);
    return len + nrec * overhead(t);
}

/* Highest write sequence number + 1 one key may reach: AES-GCM's safety margin of RFC 8446
 * section 5.5 (2^24.5 full-size records, which bounds our smaller ones too; applied to TLS
 * 1.2 GCM as well), or the 64-bit wrap for ChaCha20-Poly1305. */
static uint64_t wr_limit(const wsp_tlsrec_t *t)
{
    return t->aead == AEAD_CHACHA ? UINT64_MAX : WSP_TLSREC_AESGCM_LIMIT;
}

/* The per-record nonce: IV XOR the 64-bit sequence, right-aligned (RFC 8446 5.3, RFC 7905),
 * or for TLS 1.2 GCM the salt then the explicit part, which is the sequence (RFC 5288). */
static void make_nonce(const wsp_tlsrec_t *t, const wsp_tlsrec_dir_t *d, uint8_t n[12])
{
    if (t->version == TLS12 && t->aead != AEAD_CHACHA) {
        memcpy(n, d->iv, 4);
        put_be64(n + 4, d->seq);
        return;
    }
    memcpy(n, d->iv, 12);
    for (int i = 0; i < 8; i++)
        n[11 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* TLS 1.2's additional data: seq, type, version, plaintext length (RFC 5246 6.2.3.3). */
static void aad12(uint8_t a[13], uint64_t seq, uint8_t type, size_t len)
{
    put_be64(a, seq);
    a[8] = type;
    a[9] = 3;
    a[10] = 3;
    a[11] = (uint8_t)(len >> 8);
    a[12] = (uint8_t)len;
}

/* Keys cx for this record. Same cipher as the last call on cx: pass none, so OpenSSL only
 * changes key and nonce instead of resetting the context. */
static int aead_init(EVP_CIPHER_CTX *cx, const wsp_tlsrec_t *t, const wsp_tlsrec_dir_t *d,
                     const uint8_t nonce[12], int enc)
{
    const EVP_CIPHER *c = algs.cipher[t->aead];
    if (EVP_CIPHER_CTX_get0_cipher(cx) == c)
        c = NULL;
    return EVP_CipherInit_ex(cx, c, NULL, d->key, nonce, enc) == 1 ? 0 : -EIO;
}

/* Seals one record of type ct (n <= 2^14 bytes) at out; returns its length. */
static ssize_t seal_one(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, uint8_t ct, const uint8_t *p, size_t n,
                        uint8_t *out)
{
    wsp_tlsrec_dir_t *d = &t->wr;
    int t13 = t->version == TLS13;
    size_t clen = n + overhead(t) - WSP_TLSREC_HDR;
    out[0] = t13 ? WSP_TLS_CT_APPDATA : ct; /* 1.3 hides the type inside */
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(clen >> 8);
    out[4] = (uint8_t)clen;
    uint8_t nonce[12], a12[13];
    make_nonce(t, d, nonce);
    uint8_t *body = out + WSP_TLSREC_HDR;
    if (!t13 && t->aead != AEAD_CHACHA) {
        memcpy(body, nonce + 4, EXPLICIT);
        body += EXPLICIT;
    }
    const uint8_t *aad = out; /* 1.3: the record header */
    int alen = WSP_TLSREC_HDR, la = 0, l1 = 0, l2 = 0;
    size_t m = n; /* bytes to encrypt */
    if (t13) {
        /* TLSInnerPlaintext built in out and encrypted in place: one EVP update instead of a
         * second one for the type byte, 5% fewer instructions at 30 bytes (callgrind). */
        if (n > 0)
            memcpy(body, p, n);
        body[n] = ct;
        p = body;
        m = n + 1;
    } else {
        aad12(a12, d->seq, ct, n);
        aad = a12;
        alen = sizeof(a12);
    }
    if (aead_init(cx, t, d, nonce, 1) < 0 || EVP_EncryptUpdate(cx, NULL, &la, aad, alen) != 1 ||
        (m > 0 && EVP_EncryptUpdate(cx, body, &l1, p, (int)m) != 1) ||
        EVP_EncryptFinal_ex(cx, body + m, &l2) != 1 || (size_t)(l1 + l2) != m ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_GET_TAG, TAG, body + m) != 1)
        return -EIO;
    d->seq++;
    return (ssize_t)(WSP_TLSREC_HDR + clen);
}

ssize_t wsp_tlsrec_seal(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, const uint8_t *p, size_t len,
                        uint8_t *out, size_t cap)
{
    size_t need = wsp_tlsrec_sealed_size(t, len);
    if (need > cap)
        return -ENOBUFS;
    uint64_t nrec = need > len ? (need - len) / overhead(t) : 0;
    /* Two records stay in reserve under every key, for a KeyUpdate and an alert. */
    if (t->wr.seq >= wr_limit(t) || nrec + 2 > wr_limit(t) - t->wr.seq)
        return -EKEYEXPIRED;
    size_t off = 0;
    for (size_t i = 0; i < len; i += WSP_TLSREC_FRAGMENT) {
        size_t n = len - i < WSP_TLSREC_FRAGMENT ? len - i : WSP_TLSREC_FRAGMENT;
        ssize_t r = seal_one(t, cx, WSP_TLS_CT_APPDATA, p + i, n, out + off);
        if (r < 0)
            return r;
        off += (size_t)r;
    }
    return (ssize_t)off;
}

/* One control record (alert, KeyUpdate): may use the two reserved sequence numbers. */
static ssize_t seal_control(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, uint8_t ct, const uint8_t *p,
                            size_t n, uint8_t *out, size_t cap)
{
    if (wsp_tlsrec_sealed_size(t, n) > cap)
        return -ENOBUFS;
    if (t->wr.seq >= wr_limit(t))
        return -EKEYEXPIRED;
    return seal_one(t, cx, ct, p, n, out);
}

ssize_t wsp_tlsrec_alert(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, uint8_t desc, uint8_t *out,
                         size_t cap)
{
    int warning = desc == WSP_TLS_AL_CLOSE_NOTIFY || desc == WSP_TLS_AL_NO_RENEGOTIATION;
    uint8_t a[2] = {warning ? 1 : 2, desc};
    return seal_control(t, cx, WSP_TLS_CT_ALERT, a, sizeof(a), out, cap);
}

int wsp_tlsrec_update_secret(wsp_tlsrec_t *t, int wr)
{
    if (t->version != TLS13)
        return -EPROTO;
    wsp_tlsrec_dir_t *d = wr ? &t->wr : &t->rd;
    uint8_t next[48];
    int rv = expand_label(t, d->secret, "traffic upd", next, t->hashlen);
    if (rv == 0) {
        memcpy(d->secret, next, t->hashlen);
        rv = dir_derive13(t, d);
    }
    OPENSSL_cleanse(next, sizeof(next));
    return rv;
}

ssize_t wsp_tlsrec_key_update(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, int request, uint8_t *out,
                              size_t cap)
{
    if (t->version != TLS13)
        return -EPROTO;
    uint8_t m[5] = {24 /* key_update */, 0, 0, 1, request ? 1 : 0};
    ssize_t n = seal_control(t, cx, WSP_TLS_CT_HANDSHAKE, m, sizeof(m), out, cap);
    if (n < 0)
        return n;
    int rv = wsp_tlsrec_update_secret(t, 1);
    return rv < 0 ? rv : n;
}

static int fail(wsp_tlsrec_in_t *r, int err, uint8_t alert)
{
    r->alert = alert;
    return err;
}

/* Bytes of a record body that are not (inner) plaintext: the tag, and TLS 1.2 GCM's
 * explicit nonce. */
static size_t body_extra(const wsp_tlsrec_t *t)
{
    return TAG + (t->version == TLS12 && t->aead != AEAD_CHACHA ? EXPLICIT : 0);
}

/* Checks the header of the record at in: 0, or an error as wsp_tlsrec_open() returns. */
static int check_header(const wsp_tlsrec_t *t, const uint8_t *in, wsp_tlsrec_in_t *r)
{
    int t13 = t->version == TLS13;
    size_t clen = (size_t)in[3] << 8 | in[4];
    if (in[1] != 3 || in[2] != 3)
        return fail(r, -EPROTO, WSP_TLS_AL_PROTOCOL_VERSION);
    /* After the handshake TLS 1.3 sends only application_data outside (RFC 8446 5: a CCS
     * then is unexpected_message); TLS 1.2 also alert and handshake records. */
    if (t13 ? in[0] != WSP_TLS_CT_APPDATA : in[0] < WSP_TLS_CT_ALERT || in[0] > WSP_TLS_CT_APPDATA)
        return fail(r, -EPROTO, WSP_TLS_AL_UNEXPECTED_MESSAGE);
    if (clen > WSP_TLSREC_FRAGMENT + (t13 ? 256u : 2048u)) /* RFC 8446 5.2, RFC 5246 6.2.3 */
        return fail(r, -EMSGSIZE, WSP_TLS_AL_RECORD_OVERFLOW);
    if (clen < body_extra(t)) /* no room for a tag: cannot authenticate */
        return fail(r, -EBADMSG, WSP_TLS_AL_BAD_RECORD_MAC);
    /* 1.3: the whole TLSInnerPlaintext may not pass 2^14 + 1 (RFC 8446 5.4). */
    if (clen - body_extra(t) > WSP_TLSREC_FRAGMENT + (t13 ? 1u : 0u))
        return fail(r, -EMSGSIZE, WSP_TLS_AL_RECORD_OVERFLOW);
    return 0;
}

/* Decrypts the whole record at in into out; returns the ciphertext's plaintext length. */
static int decrypt(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, const uint8_t *in, uint8_t *out,
                   wsp_tlsrec_in_t *r)
{
    wsp_tlsrec_dir_t *d = &t->rd;
    int t13 = t->version == TLS13;
    size_t clen = (size_t)in[3] << 8 | in[4];
    const uint8_t *body = in + WSP_TLSREC_HDR;
    size_t plen = clen - body_extra(t);
    uint8_t nonce[12], a12[13], tag[TAG];
    make_nonce(t, d, nonce);
    if (!t13 && t->aead != AEAD_CHACHA) {
        memcpy(nonce + 4, body, EXPLICIT); /* the peer's explicit nonce, whatever it chose */
        body += EXPLICIT;
    }
    const uint8_t *aad = in;
    int alen = WSP_TLSREC_HDR, la = 0, l1 = 0, l2 = 0;
    if (!t13) {
        aad12(a12, d->seq, in[0], plen);
        aad = a12;
        alen = sizeof(a12);
    }
    memcpy(tag, body + plen, TAG);
    if (aead_init(cx, t, d, nonce, 0) < 0 || EVP_DecryptUpdate(cx, NULL, &la, aad, alen) != 1 ||
        (plen > 0 && EVP_DecryptUpdate(cx, out, &l1, body, (int)plen) != 1) ||
        EVP_CIPHER_CTX_ctrl(cx, EVP_CTRL_AEAD_SET_TAG, TAG, tag) != 1)
        return fail(r, -EIO, WSP_TLS_AL_INTERNAL_ERROR);
    if (EVP_DecryptFinal_ex(cx, out + l1, &l2) != 1)
        return fail(r, -EBADMSG, WSP_TLS_AL_BAD_RECORD_MAC);
    return (int)plen;
}

int wsp_tlsrec_open(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, const uint8_t *in, size_t len,
                    uint8_t *out, size_t cap, wsp_tlsrec_in_t *r)
{
    memset(r, 0, sizeof(*r));
    if (len < WSP_TLSREC_HDR) {
        r->need = WSP_TLSREC_HDR;
        return -EAGAIN;
    }
    int rv = check_header(t, in, r);
    if (rv < 0)
        return rv;
    size_t whole = WSP_TLSREC_HDR + ((size_t)in[3] << 8 | in[4]);
    if (len < whole) {
        r->need = whole;
        return -EAGAIN;
    }
    if (cap < WSP_TLSREC_OPEN_MAX)
        return fail(r, -ENOBUFS, WSP_TLS_AL_INTERNAL_ERROR);
    if (t->rd.seq == UINT64_MAX)
        return fail(r, -EKEYEXPIRED, WSP_TLS_AL_INTERNAL_ERROR);
    int plen = decrypt(t, cx, in, out, r);
    if (plen < 0)
        return plen;
    uint8_t type = in[0];
    if (t->version == TLS13) {
        /* TLSInnerPlaintext: content, type, zero padding (RFC 8446 5.4). */
        while (plen > 0 && out[plen - 1] == 0)
            plen--;
        if (plen == 0)
            return fail(r, -EPROTO, WSP_TLS_AL_UNEXPECTED_MESSAGE);
        type = out[--plen];
        if (type < WSP_TLS_CT_ALERT || type > WSP_TLS_CT_APPDATA)
            return fail(r, -EPROTO, WSP_TLS_AL_UNEXPECTED_MESSAGE);
    }
    t->rd.seq++;
    r->used = whole;
    r->type = type;
    r->len = (size_t)plen;
    return 0;
}

/* A TLS 1.3 handshake record after the handshake: only a whole KeyUpdate is allowed (it ends
 * its record, RFC 8446 5.1; one split over two records is refused as decode_error). */
static int key_update_in(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, wsp_tlsrec_in_t *r, const uint8_t *p,
                         uint8_t *out, size_t cap, size_t *outlen)
{
    if (r->len == 0 || p[0] != 24 /* key_update */)
        return fail(r, -EPROTO, WSP_TLS_AL_UNEXPECTED_MESSAGE);
    if (r->len != 5 || p[1] != 0 || p[2] != 0 || p[3] != 1)
        return fail(r, -EPROTO, WSP_TLS_AL_DECODE_ERROR);
    if (p[4] > 1)
        return fail(r, -EPROTO, WSP_TLS_AL_ILLEGAL_PARAMETER);
    if (p[4] == 1 && cap < WSP_TLSREC_CONTROL_MAX)
        return fail(r, -ENOBUFS, WSP_TLS_AL_INTERNAL_ERROR);
    if (wsp_tlsrec_update_secret(t, 0) < 0)
        return fail(r, -EIO, WSP_TLS_AL_INTERNAL_ERROR);
    if (p[4] == 1) { /* ours goes under the current write key, then that key changes */
        ssize_t n = wsp_tlsrec_key_update(t, cx, 0, out, cap);
        if (n < 0)
            return fail(r, (int)n, WSP_TLS_AL_INTERNAL_ERROR);
        *outlen = (size_t)n;
    }
    return 0;
}

int wsp_tlsrec_control(wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, wsp_tlsrec_in_t *r, const uint8_t *p,
                       uint8_t *out, size_t cap, size_t *outlen)
{
    *outlen = 0;
    switch (r->type) {
    case WSP_TLS_CT_ALERT:
        /* One alert per record: TLS 1.3 forbids fragmenting or coalescing them. */
        if (r->len != 2)
            return fail(r, -EPROTO, WSP_TLS_AL_DECODE_ERROR);
        if (p[1] == WSP_TLS_AL_CLOSE_NOTIFY)
            return fail(r, -ESHUTDOWN, WSP_TLS_AL_CLOSE_NOTIFY);
        /* Any other alert ends the connection, warnings too (user_canceled precedes a
         * close_notify anyway; OpenSSL would ignore a TLS 1.2 warning). */
        return fail(r, -ECONNRESET, p[1]);
    case WSP_TLS_CT_HANDSHAKE:
        if (t->version == TLS13)
            return key_update_in(t, cx, r, p, out, cap, outlen);
        if (r->len > 0 && p[0] == 1 /* client_hello: renegotiation */)
            return fail(r, -EOPNOTSUPP, WSP_TLS_AL_NO_RENEGOTIATION);
        return fail(r, -EPROTO, WSP_TLS_AL_UNEXPECTED_MESSAGE);
    default:
        return fail(r, -EPROTO, WSP_TLS_AL_UNEXPECTED_MESSAGE);
    }
}

/* Fills one tls12_crypto_info_aes_gcm_{128,256}: both lay out info, iv, key, salt, rec_seq. */
#define KTLS_GCM(ci, kind, d, seq, t13)                                                            \
    do {                                                                                           \
        (ci).info.cipher_type = (kind);                                                            \
        memcpy((ci).key, (d)->key, sizeof((ci).key));                                              \
        memcpy((ci).salt, (d)->iv, 4);                                                             \
        memcpy((ci).iv, (t13) ? (d)->iv + 4 : (seq), 8);                                           \
        memcpy((ci).rec_seq, (seq), 8);                                                            \
    } while (0)

int wsp_tlsrec_ktls_info(const wsp_tlsrec_t *t, int tx, void *buf, size_t cap)
{
    const wsp_tlsrec_dir_t *d = tx ? &t->wr : &t->rd;
    uint8_t seq[8];
    put_be64(seq, d->seq);
    union {
        struct tls12_crypto_info_aes_gcm_128 g128;
        struct tls12_crypto_info_aes_gcm_256 g256;
        struct tls12_crypto_info_chacha20_poly1305 cc;
    } u;
    memset(&u, 0, sizeof(u));
    size_t n;
    /* TLS 1.3: salt and iv are the IV's two parts, the kernel XORs rec_seq in. TLS 1.2 GCM:
     * iv is the first explicit nonce, which the kernel increments per record as we do with
     * seq. ChaCha20: the whole 12-byte IV (RFC 7905). */
    switch (t->aead) {
    case AEAD_AES128GCM:
        KTLS_GCM(u.g128, TLS_CIPHER_AES_GCM_128, d, seq, t->version == TLS13);
        n = sizeof(u.g128);
        break;
    case AEAD_AES256GCM:
        KTLS_GCM(u.g256, TLS_CIPHER_AES_GCM_256, d, seq, t->version == TLS13);
        n = sizeof(u.g256);
        break;
    case AEAD_CHACHA:
        u.cc.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
        memcpy(u.cc.key, d->key, sizeof(u.cc.key));
        memcpy(u.cc.iv, d->iv, sizeof(u.cc.iv));
        memcpy(u.cc.rec_seq, seq, sizeof(seq));
        n = sizeof(u.cc);
        break;
    default:
        return -EINVAL;
    }
    u.g128.info.version = t->version; /* TLS_1_2_VERSION / TLS_1_3_VERSION: same numbers */
    if (cap < n)
        return -EINVAL;
    memcpy(buf, &u, n);
    OPENSSL_cleanse(&u, sizeof(u));
    return (int)n;
}

int wsp_tlsrec_ktls_enable(const wsp_tlsrec_t *t, int fd, int rx)
{
    /* UNTESTED here: this machine's kernel has no tls ULP, so only the -ENOENT path ran. */
    if (setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) != 0)
        return -errno;
    uint8_t buf[64];
    int rv = 0;
    for (int dir = 0; dir <= (rx ? 1 : 0) && rv == 0; dir++) {
        int n = wsp_tlsrec_ktls_info(t, dir == 0, buf, sizeof(buf));
        if (n < 0)
            rv = n;
        else if (setsockopt(fd, SOL_TLS, dir == 0 ? TLS_TX : TLS_RX, buf, (socklen_t)n) != 0)
            rv = -errno;
    }
    OPENSSL_cleanse(buf, sizeof(buf));
    return rv;
}
