#include "tlshs.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/* Server preference, strongest first within a size: AES-GCM where the CPU has AES
 * instructions, ChaCha20 for clients that put it first (SSL_OP_PRIORITIZE_CHACHA). No CBC, no
 * static RSA, no DHE: the record layer (tlsrec.c) implements exactly these. */
#define TLS12_SUITES                                                                               \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
#define TLS13_SUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384"
#define GROUPS "X25519:P-256:P-384"

struct wsp_tls_ctx_s {
    SSL_CTX *ssl;
};

enum { HS_RUNNING, HS_DONE, HS_FAILED, HS_DETACHED };

struct wsp_tls_hs_s {
    SSL *ssl;         /* owns rbio and wbio; NULL once detached */
    BIO *rbio, *wbio; /* memory BIOs: client bytes in, our bytes out */
    uint64_t t0, hs_ns;
    uint64_t taken;   /* output bytes the caller took so far */
    uint64_t scanned; /* output offset up to which records were counted */
    uint64_t wr_mark; /* 1.3: output offset where our application key starts (keylog) */
    uint32_t fed;     /* complete records fed to OpenSSL */
    uint32_t rd_mark; /* 1.3: records fed when the client's application key started */
    uint32_t rd_ccs;  /* 1.2: records fed after the client's ChangeCipherSpec */
    uint32_t wr_recs; /* records written under our application (1.2: post-CCS) key */
    uint16_t left;    /* body bytes of the current input record not fed yet */
    uint8_t hdr[WSP_TLSREC_HDR], hlen;
    uint8_t state, reason, alpn_fail, seen_rd_ccs, seen_wr_ccs;
    uint8_t have; /* bit 0: client secret, bit 1: server secret (TLS 1.3) */
    uint8_t seclen;
    uint8_t csecret[48], ssecret[48];
};

static int ex_idx = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;

static void ex_alloc(void) { ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL); }

static wsp_tls_hs_t *hs_of(const SSL *s) { return ex_idx < 0 ? NULL : SSL_get_ex_data(s, ex_idx); }

static uint64_t now_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_MONOTONIC, &ts); /* CLOCK_MONOTONIC cannot fail on Linux */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

const char *wsp_tls_fail_name(int reason)
{
    static const char *const names[WSP_TLS_FAIL_COUNT] = {
        "none",     "not_tls", "version", "no_shared_cipher", "alpn", "client_alert", "protocol",
        "internal", "timeout", "eof",     "renegotiation"};
    return reason >= 0 && reason < WSP_TLS_FAIL_COUNT ? names[reason] : "unknown";
}

/* --- context ------------------------------------------------------------------------------ */

/* Only http/1.1: a client that offers ALPN without it (say "h2" only) gets the fatal
 * no_application_protocol that RFC 7301 3.2 asks for rather than a connection it cannot use. */
static int on_alpn(SSL *s, const unsigned char **out, unsigned char *outlen,
                   const unsigned char *in, unsigned int inlen, void *arg)
{
    (void)arg;
    for (unsigned i = 0; i < inlen && in[i] <= inlen - i - 1; i += 1u + in[i]) {
        if (in[i] == 8 && memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = 8;
            return SSL_TLSEXT_ERR_OK;
        }
    }
    wsp_tls_hs_t *h = hs_of(s);
    if (h != NULL)
        h->alpn_fail = 1;
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

static int unhex(const char *s, uint8_t *out, size_t max)
{
    size_t n = 0;
    for (; s[0] && s[1] && n < max; s += 2) {
        int hi = s[0] <= '9' ? s[0] - '0' : (s[0] | 32) - 'a' + 10;
        int lo = s[1] <= '9' ? s[1] - '0' : (s[1] | 32) - 'a' + 10;
        if (hi < 0 || hi > 15 || lo < 0 || lo > 15)
            return -1;
        out[n++] = (uint8_t)(hi << 4 | lo);
    }
    return *s ? -1 : (int)n;
}

/* TLS 1.3 traffic secrets are only handed out through the key log: keep the two application
 * secrets (binary, in the handshake; never logged) and note where our application key starts
 * in the output, since our Finished is already written when OpenSSL logs it. */
static void on_keylog(const SSL *s, const char *line)
{
    static const char cl[] = "CLIENT_TRAFFIC_SECRET_0 ", sv[] = "SERVER_TRAFFIC_SECRET_0 ";
    wsp_tls_hs_t *h = hs_of(s);
    int client = strncmp(line, cl, sizeof(cl) - 1) == 0;
    if (h == NULL || (!client && strncmp(line, sv, sizeof(sv) - 1) != 0))
        return;
    const char *hex = strrchr(line, ' ');
    uint8_t *dst = client ? h->csecret : h->ssecret;
    int n = unhex(hex + 1, dst, sizeof(h->csecret));
    if (n != 32 && n != 48)
        return; /* detach fails for want of the secret */
    h->seclen = (uint8_t)n;
    if (client) {
        h->have |= 1;
        h->rd_mark = h->fed;
    } else {
        h->have |= 2;
        h->wr_mark = h->taken + BIO_ctrl_pending(h->wbio);
    }
}

/* Opens path to tell "missing or unreadable" apart from "not PEM" in one clear line. */
static int readable(const char *what, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
        return 0;
    }
    fclose(f);
    return 1;
}

/* The first OpenSSL reason on the error queue (e.g. "no start line"), then clears the queue. */
static const char *ssl_reason(void)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    ERR_clear_error();
    return r ? r : "unknown error";
}

/* SSL_CTX_use_PrivateKey_file() refuses a key of another certificate itself: say so the same
 * way as SSL_CTX_check_private_key() would. */
static int key_mismatch(void)
{
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                              ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
}

static int ctx_setup(SSL_CTX *s)
{
    SSL_CTX_set_options(s, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_PRIORITIZE_CHACHA |
                               SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Stateless tickets need no session cache; TLS 1.3 tickets are sent one per connection
     * by hand at completion (see complete()), so none automatically. */
    SSL_CTX_set_session_cache_mode(s, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(s, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(s, 0); /* record by record: nothing past the client's Finished */
    SSL_CTX_set_alpn_select_cb(s, on_alpn, NULL);
    SSL_CTX_set_keylog_callback(s, on_keylog);
    return SSL_CTX_set_min_proto_version(s, TLS1_2_VERSION) == 1 &&
           SSL_CTX_set_max_proto_version(s, TLS1_3_VERSION) == 1 &&
           SSL_CTX_set_cipher_list(s, TLS12_SUITES) == 1 &&
           SSL_CTX_set_ciphersuites(s, TLS13_SUITES) == 1 &&
           SSL_CTX_set1_groups_list(s, GROUPS) == 1 && SSL_CTX_set_num_tickets(s, 0) == 1 &&
           SSL_CTX_set_max_early_data(s, 0) == 1;
}

wsp_tls_ctx_t *wsp_tls_ctx_new(const char *cert_path, const char *key_path, char *err,
                               size_t errlen)
{
    if (!readable("certificate", cert_path, err, errlen) || !readable("key", key_path, err, errlen))
        return NULL;
    if (pthread_once(&ex_once, ex_alloc) != 0 || ex_idx < 0) {
        snprintf(err, errlen, "TLS setup failed: no SSL ex_data index");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *s = SSL_CTX_new(TLS_server_method());
    if (s == NULL || !ctx_setup(s)) {
        snprintf(err, errlen, "TLS setup failed: %s", ssl_reason());
    } else if (SSL_CTX_use_certificate_chain_file(s, cert_path) != 1) {
        snprintf(err, errlen, "certificate %s: not a PEM certificate chain (%s)", cert_path,
                 ssl_reason());
    } else if (SSL_CTX_use_PrivateKey_file(s, key_path, SSL_FILETYPE_PEM) != 1 && !key_mismatch()) {
        snprintf(err, errlen, "key %s: not a PEM private key (%s)", key_path, ssl_reason());
    } else if (SSL_CTX_check_private_key(s) != 1) {
        ERR_clear_error();
        snprintf(err, errlen, "key %s does not match certificate %s", key_path, cert_path);
    } else {
        wsp_tls_ctx_t *c = malloc(sizeof(*c));
        if (c != NULL) {
            c->ssl = s;
            return c;
        }
        snprintf(err, errlen, "TLS setup failed: out of memory");
    }
    SSL_CTX_free(s);
    return NULL;
}

int wsp_tls_ctx_set_ticket_keys(wsp_tls_ctx_t *c, const uint8_t keys[WSP_TLS_TICKET_KEYS_LEN])
{
    uint8_t k[WSP_TLS_TICKET_KEYS_LEN];
    memcpy(k, keys, sizeof(k)); /* the macro takes a non-const pointer */
    long ok = SSL_CTX_set_tlsext_ticket_keys(c->ssl, k, sizeof(k));
    OPENSSL_cleanse(k, sizeof(k));
    return ok == 1 ? 0 : -EIO;
}

void wsp_tls_ctx_free(wsp_tls_ctx_t *c)
{
    if (c == NULL)
        return;
    SSL_CTX_free(c->ssl); /* SSL objects hold their own reference */
    free(c);
}

/* --- handshake ---------------------------------------------------------------------------- */

wsp_tls_hs_t *wsp_tls_hs_new(wsp_tls_ctx_t *c)
{
    wsp_tls_hs_t *h = calloc(1, sizeof(*h)); /* per handshake; freed by wsp_tls_hs_free() */
    if (h == NULL)
        return NULL;
    h->ssl = SSL_new(c->ssl);
    h->rbio = BIO_new(BIO_s_mem()); /* empty reads ask to retry: more bytes may come */
    h->wbio = BIO_new(BIO_s_mem());
    if (h->ssl == NULL || h->rbio == NULL || h->wbio == NULL ||
        SSL_set_ex_data(h->ssl, ex_idx, h) != 1) {
        BIO_free(h->rbio);
        BIO_free(h->wbio);
        SSL_free(h->ssl);
        free(h);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_bio(h->ssl, h->rbio, h->wbio);
    SSL_set_accept_state(h->ssl);
    h->wr_mark = UINT64_MAX;
    return h;
}

static int fail(wsp_tls_hs_t *h, int reason)
{
    h->state = HS_FAILED;
    h->reason = (uint8_t)reason;
    ERR_clear_error(); /* the queue is per thread: leave nothing for the next connection */
    return -EPROTO;
}

/* Counts the records OpenSSL appended to the output since the last scan: after our CCS (TLS
 * 1.2) or after the keylog's mark (TLS 1.3) they are under the application key. A memory BIO
 * write never blocks, so every call leaves whole records. */
static void scan_out(wsp_tls_hs_t *h)
{
    char *p = NULL;
    long n = BIO_get_mem_data(h->wbio, &p);
    uint64_t end = h->taken + (n > 0 ? (uint64_t)n : 0);
    int t13 = SSL_version(h->ssl) == TLS1_3_VERSION;
    while (h->scanned + WSP_TLSREC_HDR <= end) {
        const uint8_t *r = (const uint8_t *)p + (h->scanned - h->taken);
        if (t13 ? h->scanned >= h->wr_mark : h->seen_wr_ccs)
            h->wr_recs++;
        if (!t13 && r[0] == WSP_TLS_CT_CCS) {
            h->seen_wr_ccs = 1;
            h->wr_recs = 0;
        }
        h->scanned += WSP_TLSREC_HDR + ((size_t)r[3] << 8 | r[4]);
    }
}

/* Maps OpenSSL's first libssl reason to a WSP_TLS_FAIL_* label. */
static int classify(const wsp_tls_hs_t *h, int ssl_err)
{
    if (h->alpn_fail)
        return WSP_TLS_FAIL_ALPN;
    if (ssl_err != SSL_ERROR_SSL)
        return WSP_TLS_FAIL_PROTOCOL;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        int r = ERR_GET_REASON(e);
        if (r == ERR_GET_REASON(ERR_R_MALLOC_FAILURE))
            return WSP_TLS_FAIL_INTERNAL;
        if (ERR_GET_LIB(e) != ERR_LIB_SSL)
            continue;
        if (r >= SSL_AD_REASON_OFFSET && r < SSL_AD_REASON_OFFSET + 256)
            return WSP_TLS_FAIL_PEER_ALERT; /* reasons of alerts received */
        switch (r) {
        case SSL_R_UNSUPPORTED_PROTOCOL:
        case SSL_R_VERSION_TOO_LOW:
            return WSP_TLS_FAIL_VERSION;
        case SSL_R_NO_SHARED_CIPHER:
        case SSL_R_NO_SHARED_GROUPS:
        case SSL_R_NO_SUITABLE_GROUPS:
        case SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS:
        case SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM:
            return WSP_TLS_FAIL_CIPHER;
        default:
            return WSP_TLS_FAIL_PROTOCOL;
        }
    }
    return WSP_TLS_FAIL_PROTOCOL;
}

/* The handshake just finished. TLS 1.3: issue the one ticket now, while we still know how
 * many records go out under the application key before the record layer takes over. */
static int complete(wsp_tls_hs_t *h)
{
    if (SSL_version(h->ssl) == TLS1_3_VERSION) {
        if (SSL_new_session_ticket(h->ssl) != 1 || SSL_do_handshake(h->ssl) != 1) {
            scan_out(h);
            return fail(h, WSP_TLS_FAIL_INTERNAL);
        }
        scan_out(h);
    }
    h->hs_ns = now_ns() - h->t0;
    h->state = HS_DONE;
    return 1;
}

static int step(wsp_tls_hs_t *h)
{
    ERR_clear_error();
    int r = SSL_do_handshake(h->ssl);
    int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(h->ssl, r); /* before any other BIO call */
    scan_out(h);
    if (r == 1)
        return complete(h);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    return fail(h, classify(h, e));
}

/* One complete record went to OpenSSL: count it, then let OpenSSL read it. */
static int record_fed(wsp_tls_hs_t *h)
{
    h->fed++;
    h->hlen = 0;
    if (h->hdr[0] == WSP_TLS_CT_CCS) {
        h->seen_rd_ccs = 1;
        h->rd_ccs = 0;
    } else if (h->seen_rd_ccs) {
        h->rd_ccs++;
    }
    return step(h);
}

/* Adds header bytes; 1 when the header is whole and fed, 0 for more, <0 on failure. A
 * ClientHello record starts 0x16 0x03: anything else ("GET ", noise) is not TLS, decided
 * from the first two bytes without waking OpenSSL. */
static int take_header(wsp_tls_hs_t *h, const uint8_t *in, size_t len, size_t *i)
{
    size_t n = WSP_TLSREC_HDR - h->hlen;
    n = n < len - *i ? n : len - *i;
    memcpy(h->hdr + h->hlen, in + *i, n);
    h->hlen = (uint8_t)(h->hlen + n);
    *i += n;
    if (h->fed == 0 && (h->hdr[0] != WSP_TLS_CT_HANDSHAKE || (h->hlen > 1 && h->hdr[1] != 3)))
        return fail(h, WSP_TLS_FAIL_NOT_TLS);
    if (h->hlen < WSP_TLSREC_HDR)
        return 0;
    h->left = (uint16_t)(h->hdr[3] << 8 | h->hdr[4]);
    if (h->left > WSP_TLSREC_RECORD_MAX - WSP_TLSREC_HDR) /* refuse before buffering it */
        return fail(h, WSP_TLS_FAIL_PROTOCOL);
    if (BIO_write(h->rbio, h->hdr, WSP_TLSREC_HDR) != WSP_TLSREC_HDR)
        return fail(h, WSP_TLS_FAIL_INTERNAL);
    return 1;
}

int wsp_tls_hs_feed(wsp_tls_hs_t *h, const uint8_t *in, size_t len, size_t *used)
{
    *used = 0;
    if (h->state != HS_RUNNING)
        return h->state == HS_FAILED ? -EPROTO : 1;
    if (len > 0 && h->t0 == 0)
        h->t0 = now_ns();
    size_t i = 0;
    int rv = 0;
    while (i < len && rv == 0) {
        if (h->hlen < WSP_TLSREC_HDR && (rv = take_header(h, in, len, &i)) <= 0)
            break;
        rv = 0;
        size_t n = h->left < len - i ? h->left : len - i;
        if (n > 0 && BIO_write(h->rbio, in + i, (int)n) != (int)n) {
            rv = fail(h, WSP_TLS_FAIL_INTERNAL);
            break;
        }
        h->left = (uint16_t)(h->left - n);
        i += n;
        if (h->left == 0)
            rv = record_fed(h); /* stops the loop once done (1) or failed */
    }
    *used = i;
    return rv;
}

size_t wsp_tls_hs_pending(const wsp_tls_hs_t *h)
{
    return h->ssl != NULL ? BIO_ctrl_pending(h->wbio) : 0;
}

size_t wsp_tls_hs_take(wsp_tls_hs_t *h, uint8_t *out, size_t cap)
{
    if (h->ssl == NULL || cap == 0)
        return 0;
    int n = BIO_read(h->wbio, out, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (n <= 0)
        return 0;
    h->taken += (uint64_t)n;
    return (size_t)n;
}

int wsp_tls_hs_reason(const wsp_tls_hs_t *h) { return h->reason; }

/* Fills t from what OpenSSL negotiated, with the sequence numbers the handshake left. */
static int keys_out(wsp_tls_hs_t *h, wsp_tlsrec_t *t, uint16_t suite)
{
    SSL *s = h->ssl;
    if (SSL_version(s) == TLS1_3_VERSION) {
        if (h->have != 3)
            return -EIO;
        int rv = wsp_tlsrec_init13(t, suite, h->csecret, h->ssecret);
        if (rv < 0)
            return rv;
        if (t->hashlen != h->seclen) {
            OPENSSL_cleanse(t, sizeof(*t));
            return -EIO;
        }
        t->rd.seq = h->fed - h->rd_mark; /* 0: feeding stopped at the client's Finished */
        t->wr.seq = h->wr_recs;          /* the ticket's record(s) */
        return 0;
    }
    uint8_t ms[48], cr[32], sr[32];
    size_t n = SSL_SESSION_get_master_key(SSL_get_session(s), ms, sizeof(ms));
    if (n != sizeof(ms) || SSL_get_client_random(s, cr, sizeof(cr)) != sizeof(cr) ||
        SSL_get_server_random(s, sr, sizeof(sr)) != sizeof(sr)) {
        OPENSSL_cleanse(ms, sizeof(ms));
        return -EIO;
    }
    int rv = wsp_tlsrec_init12(t, suite, ms, cr, sr, 1);
    OPENSSL_cleanse(ms, sizeof(ms));
    t->rd.seq = h->rd_ccs; /* each side's Finished went out under sequence 0 */
    t->wr.seq = h->wr_recs;
    return rv;
}

int wsp_tls_hs_detach(wsp_tls_hs_t *h, wsp_tlsrec_t *t, wsp_tls_info_t *info)
{
    if (h->state != HS_DONE)
        return -EINVAL;
    if (BIO_ctrl_pending(h->wbio) != 0)
        return -EBUSY;
    const SSL_CIPHER *c = SSL_get_current_cipher(h->ssl);
    uint16_t suite = c != NULL ? SSL_CIPHER_get_protocol_id(c) : 0;
    int rv = keys_out(h, t, suite);
    const unsigned char *alpn = NULL;
    unsigned alpnlen = 0;
    SSL_get0_alpn_selected(h->ssl, &alpn, &alpnlen);
    memset(info, 0, sizeof(*info));
    info->hs_ns = h->hs_ns;
    info->version = SSL_version(h->ssl) == TLS1_3_VERSION ? 0x0304 : 0x0303;
    info->suite = suite;
    info->resumed = SSL_session_reused(h->ssl) == 1;
    info->alpn = alpnlen > 0;
    OPENSSL_cleanse(h->csecret, sizeof(h->csecret));
    OPENSSL_cleanse(h->ssecret, sizeof(h->ssecret));
    SSL_free(h->ssl);
    h->ssl = NULL;
    h->state = HS_DETACHED;
    ERR_clear_error();
    return rv;
}

void wsp_tls_hs_free(wsp_tls_hs_t *h)
{
    if (h == NULL)
        return;
    SSL_free(h->ssl);
    OPENSSL_cleanse(h, sizeof(*h));
    free(h);
}
