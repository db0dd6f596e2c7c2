/* A tiny blocking TLS echo server made of common/tlshs.c and common/tlsrec.c only, for the
 * interop test with foreign TLS stacks (test_tls_python.py: Python's ssl module and openssl
 * s_client). One connection at a time on 127.0.0.1, on a port the kernel picks.
 *
 * usage: tlspeer CERT KEY
 * stdout: "port N", then one line per connection when it ends:
 *   conn version=0x0304 suite=TLS_AES_128_GCM_SHA256 resumed=0 alpn=1 keyupdates=2
 *        requested=1 bytes=123 end=close_notify
 *   conn failed reason=not_tls
 * Application data is echoed back as it comes, one record per record received. The process
 * ends after 120 s at the latest (alarm), or when stdin closes between connections. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tlshs.h"
#include "tlsrec.h"

#define INCAP (1 << 17)

static uint8_t in[INCAP], plain[WSP_TLSREC_OPEN_MAX], out[WSP_TLSREC_OPEN_MAX + 64];
static size_t nin;

static int send_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads more client bytes; 0 at EOF or error. */
static int more(int fd)
{
    if (nin == INCAP)
        return 0;
    ssize_t r = recv(fd, in + nin, INCAP - nin, 0);
    if (r <= 0)
        return 0;
    nin += (size_t)r;
    return 1;
}

static void consume(size_t used)
{
    memmove(in, in + used, nin - used);
    nin -= used;
}

/* Runs the handshake; 1 done, 0 failed (already reported). */
static int handshake(int fd, wsp_tls_hs_t *h)
{
    int rv = 0;
    while (rv == 0) {
        if (!more(fd)) {
            printf("conn failed reason=eof\n");
            return 0;
        }
        size_t used;
        rv = wsp_tls_hs_feed(h, in, nin, &used);
        consume(used);
        size_t n;
        while ((n = wsp_tls_hs_take(h, out, sizeof(out))) > 0)
            if (send_all(fd, out, n) < 0)
                rv = -EPIPE;
    }
    if (rv < 0)
        printf("conn failed reason=%s\n", wsp_tls_fail_name(wsp_tls_hs_reason(h)));
    return rv == 1;
}

static void send_alert(int fd, wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, uint8_t desc)
{
    ssize_t n = wsp_tlsrec_alert(t, cx, desc, out, sizeof(out));
    if (n > 0)
        (void)send_all(fd, out, (size_t)n); /* best effort: we close anyway */
}

/* Echoes records until the connection ends; returns how it ended. */
static const char *records(int fd, wsp_tlsrec_t *t, EVP_CIPHER_CTX *cx, unsigned *kups,
                           unsigned *req, size_t *bytes)
{
    for (;;) {
        wsp_tlsrec_in_t r;
        int rv = wsp_tlsrec_open(t, cx, in, nin, plain, sizeof(plain), &r);
        if (rv == -EAGAIN) {
            if (!more(fd))
                return "eof";
            continue;
        }
        if (rv < 0) {
            send_alert(fd, t, cx, r.alert);
            return "bad_record";
        }
        consume(r.used);
        if (r.type == WSP_TLS_CT_APPDATA) {
            *bytes += r.len;
            ssize_t n = wsp_tlsrec_seal(t, cx, plain, r.len, out, sizeof(out));
            if (n < 0 || send_all(fd, out, (size_t)n) < 0)
                return "send_failed";
            continue;
        }
        size_t ol = 0;
        rv = wsp_tlsrec_control(t, cx, &r, plain, out, sizeof(out), &ol);
        if (ol > 0 && send_all(fd, out, ol) < 0)
            return "send_failed";
        if (rv == 0) {
            (*kups)++;
            *req += ol > 0;
            continue;
        }
        if (rv == -ESHUTDOWN) {
            send_alert(fd, t, cx, WSP_TLS_AL_CLOSE_NOTIFY);
            return "close_notify";
        }
        if (rv == -ECONNRESET)
            return "peer_alert";
        send_alert(fd, t, cx, r.alert);
        return rv == -EOPNOTSUPP ? "renegotiation" : "protocol";
    }
}

static void serve(int fd, wsp_tls_ctx_t *ctx, EVP_CIPHER_CTX *cx)
{
    nin = 0;
    wsp_tls_hs_t *h = wsp_tls_hs_new(ctx);
    if (h == NULL) {
        printf("conn failed reason=oom\n");
        return;
    }
    wsp_tlsrec_t t;
    wsp_tls_info_t info;
    if (!handshake(fd, h)) {
        wsp_tls_hs_free(h);
        return;
    }
    int rv = wsp_tls_hs_detach(h, &t, &info);
    wsp_tls_hs_free(h);
    if (rv < 0) {
        printf("conn failed reason=detach_%d\n", rv);
        return;
    }
    unsigned kups = 0, req = 0;
    size_t bytes = 0;
    const char *end = records(fd, &t, cx, &kups, &req, &bytes);
    printf("conn version=0x%04x suite=%s resumed=%u alpn=%u keyupdates=%u requested=%u "
           "bytes=%zu end=%s\n",
           info.version, wsp_tlsrec_suite_name(info.suite), info.resumed, info.alpn, kups, req,
           bytes, end);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s CERT KEY\n", argv[0]);
        return 2;
    }
    alarm(120); /* a test helper never outlives its test */
    setvbuf(stdout, NULL, _IOLBF, 0);
    char err[256];
    wsp_tls_ctx_t *ctx = wsp_tls_ctx_new(argv[1], argv[2], err, sizeof(err));
    EVP_CIPHER_CTX *cx = EVP_CIPHER_CTX_new();
    if (ctx == NULL || cx == NULL) {
        fprintf(stderr, "tlspeer: %s\n", ctx == NULL ? err : "no cipher context");
        return 1;
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(l, 8) != 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) != 0) {
        perror("tlspeer: listen");
        return 1;
    }
    printf("port %d\n", ntohs(sa.sin_port));
    struct pollfd pf[2] = {{.fd = l, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    for (;;) {
        if (poll(pf, 2, -1) < 0 && errno != EINTR)
            break;
        if (pf[1].revents) /* stdin closed (or written to): the test is over */
            break;
        if (!(pf[0].revents & POLLIN))
            continue;
        int fd = accept(l, NULL, NULL);
        if (fd < 0)
            continue;
        struct timeval tv = {.tv_sec = 10};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)); /* a stuck client */
        serve(fd, ctx, cx);
        close(fd);
    }
    close(l);
    EVP_CIPHER_CTX_free(cx);
    wsp_tls_ctx_free(ctx);
    return 0;
}
