#include "tlsterm.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "log.h"

#ifndef TCP_ULP
#define TCP_ULP 31 /* linux/tcp.h; glibc's netinet/tcp.h has it only from 2.37 */
#endif

struct wsp_tlsterm_s {
    pthread_mutex_t mu; /* guards cur: a shard must never SSL_new() on a freed context */
    wsp_tls_ctx_t *cur;
    int ktls;
    char *cert, *key;
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN];
};

int wsp_tlsterm_keys_random(uint8_t keys[WSP_TLS_TICKET_KEYS_LEN])
{
    return RAND_priv_bytes(keys, WSP_TLS_TICKET_KEYS_LEN) == 1 ? 0 : -EIO;
}

int wsp_tlsterm_keys_fd(const uint8_t keys[WSP_TLS_TICKET_KEYS_LEN])
{
    int fd = memfd_create("wspush-tls-ticket-keys", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return -errno;
    ssize_t n = pwrite(fd, keys, WSP_TLS_TICKET_KEYS_LEN, 0);
    /* Sealed: a worker reads exactly what the supervisor wrote, and nobody can change it. */
    if (n != WSP_TLS_TICKET_KEYS_LEN ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
        int err = n < 0 || n == WSP_TLS_TICKET_KEYS_LEN ? -errno : -EIO;
        close(fd);
        return err;
    }
    return fd;
}

int wsp_tlsterm_keys_read(int fd, uint8_t keys[WSP_TLS_TICKET_KEYS_LEN])
{
    ssize_t n = pread(fd, keys, WSP_TLS_TICKET_KEYS_LEN, 0);
    int err = n < 0 ? -errno : n != WSP_TLS_TICKET_KEYS_LEN ? -EIO : 0;
    close(fd);
    return err;
}

int wsp_tlsterm_ktls_probe(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    /* The kernel looks the ULP up (-ENOENT when it has none) before its init refuses a socket
     * that is not connected (-ENOTCONN): that refusal means the ULP is there. */
    int rv = setsockopt(fd, SOL_TCP, TCP_ULP, "tls", sizeof("tls")) == 0 ? 0 : -errno;
    close(fd);
    return rv == 0 || rv == -ENOTCONN ? 0 : rv;
}

/* Logs the certificate's subject, serial and expiry: what an operator checks after a reload.
 * The first certificate of the file is the server's. */
static void tlsterm_log_cert(const char *path, const char *event)
{
    FILE *f = fopen(path, "re");
    X509 *x = f ? PEM_read_X509(f, NULL, NULL, NULL) : NULL;
    if (f)
        fclose(f);
    BIO *b = BIO_new(BIO_s_mem());
    BIGNUM *bn = x ? ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL) : NULL;
    char *serial = bn ? BN_bn2hex(bn) : NULL;
    char *subject = x ? X509_NAME_oneline(X509_get_subject_name(x), NULL, 0) : NULL;
    char when[64] = "?";
    if (b && x && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
        int n = BIO_read(b, when, sizeof(when) - 1);
        when[n > 0 ? n : 0] = '\0';
    }
    WSP_LOG(WSP_LOG_INFO, "event=%s cert=%s subject=\"%s\" serial=%s not_after=\"%s\"", event, path,
            subject ? subject : "?", serial ? serial : "?", when);
    OPENSSL_free(subject);
    OPENSSL_free(serial);
    BN_free(bn);
    BIO_free(b);
    X509_free(x);
}

/* A context for cert and key with the ticket keys; NULL with one line in err. */
static wsp_tls_ctx_t *tlsterm_ctx(const char *cert, const char *key,
                                  const uint8_t keys[WSP_TLS_TICKET_KEYS_LEN], char *err,
                                  size_t errlen)
{
    wsp_tls_ctx_t *c = wsp_tls_ctx_new(cert, key, err, errlen);
    if (c != NULL && wsp_tls_ctx_set_ticket_keys(c, keys) < 0) {
        snprintf(err, errlen, "TLS setup failed: session ticket keys refused");
        wsp_tls_ctx_free(c);
        c = NULL;
    }
    return c;
}

int wsp_tlsterm_check(const char *cert, const char *key, char *err, size_t errlen)
{
    uint8_t keys[WSP_TLS_TICKET_KEYS_LEN] = {0}; /* thrown away with the context */
    wsp_tls_ctx_t *c = tlsterm_ctx(cert, key, keys, err, errlen);
    wsp_tls_ctx_free(c);
    return c ? 0 : -EINVAL;
}

int wsp_tlsterm_new(wsp_tlsterm_t **out, const char *cert, const char *key,
                    const uint8_t keys[WSP_TLS_TICKET_KEYS_LEN], int ktls, char *err, size_t errlen)
{
    *out = NULL;
    wsp_tlsterm_t *t = calloc(1, sizeof(*t)); /* once per process */
    if (t != NULL)
        t->mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER; /* cannot fail, unlike _init() */
    if (t == NULL || (t->cert = strdup(cert)) == NULL || (t->key = strdup(key)) == NULL) {
        snprintf(err, errlen, "TLS setup failed: out of memory");
        wsp_tlsterm_free(t);
        return -EINVAL;
    }
    memcpy(t->keys, keys, sizeof(t->keys));
    t->ktls = ktls;
    if ((t->cur = tlsterm_ctx(cert, key, t->keys, err, errlen)) == NULL) {
        wsp_tlsterm_free(t);
        return -EINVAL;
    }
    tlsterm_log_cert(cert, "tls_certificate");
    *out = t;
    return 0;
}

int wsp_tlsterm_reload(wsp_tlsterm_t *t)
{
    char err[512];
    err[0] = '\0';
    wsp_tls_ctx_t *c = tlsterm_ctx(t->cert, t->key, t->keys, err, sizeof(err));
    if (c == NULL) {
        WSP_LOG(WSP_LOG_ERROR,
                "event=tls_reload_failed error=\"%s\" msg=\"serving the previous "
                "certificate\"",
                err);
        return -EINVAL;
    }
    /* Swapped under the lock, freed outside it: handshakes already made on the old context
     * hold their own reference to it (wsp_tls_ctx_free() drops only ours). */
    pthread_mutex_lock(&t->mu);
    wsp_tls_ctx_t *old = t->cur;
    t->cur = c;
    pthread_mutex_unlock(&t->mu);
    wsp_tls_ctx_free(old);
    tlsterm_log_cert(t->cert, "tls_reloaded");
    return 0;
}

wsp_tls_hs_t *wsp_tlsterm_hs_new(wsp_tlsterm_t *t)
{
    /* One uncontended lock per handshake, next to a handshake's ~1 ms of CPU. */
    pthread_mutex_lock(&t->mu);
    wsp_tls_hs_t *h = wsp_tls_hs_new(t->cur);
    pthread_mutex_unlock(&t->mu);
    return h;
}

int wsp_tlsterm_ktls(const wsp_tlsterm_t *t) { return t->ktls; }

void wsp_tlsterm_free(wsp_tlsterm_t *t)
{
    if (t == NULL)
        return;
    wsp_tls_ctx_free(t->cur);
    pthread_mutex_destroy(&t->mu);
    free(t->cert);
    free(t->key);
    OPENSSL_cleanse(t->keys, sizeof(t->keys));
    free(t);
}
