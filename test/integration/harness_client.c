/* The harness's WebSocket client: a blocking-with-deadline socket, frames built and parsed
 * byte by byte (harness.h documents each function). */
#include "harness.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "frame.h"

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 §1.3 */

/* ---- the client ---- */

int wsp_it_connect(wsp_it_client_t *c, int port, int timeout_ms)
{
    c->fd = -1;
    c->len = 0;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* Tests write frames and single bytes that must leave at once. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (errno != EINPROGRESS) {
            int e = -errno;
            close(fd);
            return e;
        }
        struct pollfd p = {fd, POLLOUT, 0};
        int r;
        while ((r = poll(&p, 1, timeout_ms)) < 0 && errno == EINTR)
            ;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        if (r == 0)
            soerr = ETIMEDOUT;
        else if (r < 0)
            soerr = errno;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            close(fd);
            return -soerr;
        }
    }
    c->fd = fd;
    return 0;
}

void wsp_it_close(wsp_it_client_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

/* Waits until fd is ready for events (POLLIN or POLLOUT) or deadline passes. 0 (ready, or
 * interrupted: the caller retries its call), -ETIMEDOUT or another errno. */
static int wait_ready(int fd, short events, int64_t deadline)
{
    struct pollfd pf = {fd, events, 0};
    int r = poll(&pf, 1, wsp_it_left_ms(deadline));
    if (r < 0 && errno != EINTR)
        return -errno;
    return r == 0 ? -ETIMEDOUT : 0;
}

int wsp_it_send_raw(wsp_it_client_t *c, const void *p, size_t len, int timeout_ms)
{
    int64_t deadline = wsp_it_now_ms() + timeout_ms;
    const uint8_t *b = p;
    while (len > 0) {
        ssize_t n = send(c->fd, b, len, MSG_NOSIGNAL);
        if (n > 0) {
            b += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno != EAGAIN)
            return -errno;
        int rv = wait_ready(c->fd, POLLOUT, deadline);
        if (rv < 0)
            return rv;
    }
    return 0;
}

int wsp_it_send_bytewise(wsp_it_client_t *c, const void *p, size_t len, int timeout_ms)
{
    int64_t deadline = wsp_it_now_ms() + timeout_ms;
    for (size_t i = 0; i < len; i++) {
        int rv = wsp_it_send_raw(c, (const uint8_t *)p + i, 1, wsp_it_left_ms(deadline));
        if (rv < 0)
            return rv;
        wsp_it_sleep_ms(1); /* let each byte arrive as its own segment and read */
    }
    return 0;
}

int wsp_it_upgrade_request(char *out, size_t cap, const char *path, char key[25])
{
    uint8_t raw[16];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -EIO;
    if (EVP_EncodeBlock((unsigned char *)key, raw, sizeof(raw)) != 24)
        return -EIO;
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: 127.0.0.1\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "\r\n",
                     path, key);
    if (n < 0 || (size_t)n >= cap)
        return -ENOBUFS;
    return n;
}

int wsp_it_accept_for(const char *key, char out[29])
{
    char buf[128];
    int n = snprintf(buf, sizeof(buf), "%s%s", key, ws_guid);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (n < 0 || (size_t)n >= sizeof(buf) ||
        EVP_Digest(buf, (size_t)n, md, &mdlen, EVP_sha1(), NULL) != 1 || mdlen != 20)
        return -EIO;
    return EVP_EncodeBlock((unsigned char *)out, md, 20) == 28 ? 0 : -EIO;
}

/* Reads more bytes into c->buf, waiting at most until deadline. 0, WSP_IT_EOF, -ETIMEDOUT,
 * -ENOBUFS (buffer full) or another errno. */
static int fill(wsp_it_client_t *c, int64_t deadline)
{
    if (c->len == sizeof(c->buf))
        return -ENOBUFS;
    for (;;) {
        ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
        if (r > 0) {
            c->len += (size_t)r;
            return 0;
        }
        if (r == 0 || errno == ECONNRESET)
            return WSP_IT_EOF;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        int rv = wait_ready(c->fd, POLLIN, deadline);
        if (rv < 0)
            return rv;
    }
}

static void consume(wsp_it_client_t *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

int wsp_it_read_head(wsp_it_client_t *c, char *head, size_t cap, int timeout_ms)
{
    int64_t deadline = wsp_it_now_ms() + timeout_ms;
    for (;;) {
        for (size_t i = 0; i + 4 <= c->len; i++) {
            if (memcmp(c->buf + i, "\r\n\r\n", 4) != 0)
                continue;
            size_t n = i + 4;
            if (n + 1 > cap)
                return -EMSGSIZE;
            memcpy(head, c->buf, n);
            head[n] = '\0';
            consume(c, n);
            int status = 0;
            if (n < 13 || memcmp(head, "HTTP/1.1 ", 9) != 0 ||
                sscanf(head + 9, "%3d", &status) != 1 || head[12] != ' ')
                return -EBADMSG;
            return status;
        }
        int rv = fill(c, deadline);
        if (rv == -ENOBUFS)
            return -EMSGSIZE;
        if (rv < 0)
            return rv;
    }
}

int wsp_it_header(const char *head, const char *name, char *val, size_t cap)
{
    size_t nl = strlen(name);
    const char *l = strstr(head, "\r\n");
    while (l != NULL) {
        l += 2;
        const char *eol = strstr(l, "\r\n");
        if (eol == NULL || eol == l)
            break;
        if ((size_t)(eol - l) > nl && l[nl] == ':' && strncasecmp(l, name, nl) == 0) {
            const char *v = l + nl + 1;
            while (v < eol && (*v == ' ' || *v == '\t'))
                v++;
            const char *e = eol;
            while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            size_t n = (size_t)(e - v);
            if (n >= cap)
                n = cap - 1;
            memcpy(val, v, n);
            val[n] = '\0';
            return 0;
        }
        l = eol;
    }
    return -ENOENT;
}

int wsp_it_list_has(const char *value, const char *token)
{
    size_t tn = strlen(token);
    const char *p = value;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - p) == tn && strncasecmp(p, token, tn) == 0)
            return 1;
        p = e;
    }
    return 0;
}

int wsp_it_read_101(wsp_it_client_t *c, const char *key, int timeout_ms)
{
    char head[2048], v[256], want[29];
    int st = wsp_it_read_head(c, head, sizeof(head), timeout_ms);
    if (st < 0)
        return st;
    if (wsp_it_accept_for(key, want) < 0)
        return -EIO;
    if (st != 101 || wsp_it_header(head, "Upgrade", v, sizeof(v)) < 0 ||
        !wsp_it_list_has(v, "websocket") || wsp_it_header(head, "Connection", v, sizeof(v)) < 0 ||
        !wsp_it_list_has(v, "upgrade") ||
        wsp_it_header(head, "Sec-WebSocket-Accept", v, sizeof(v)) < 0 || strcmp(v, want) != 0) {
        fprintf(stderr, "harness: bad upgrade response (want accept %s):\n%s", want, head);
        return -EPROTO;
    }
    return 0;
}

int wsp_it_ws_connect(wsp_it_client_t *c, int port, const char *path, int timeout_ms)
{
    int64_t deadline = wsp_it_now_ms() + timeout_ms;
    char req[1024], key[25];
    int n = wsp_it_upgrade_request(req, sizeof(req), path, key);
    if (n < 0)
        return n;
    int rv = wsp_it_connect(c, port, timeout_ms);
    if (rv == 0)
        rv = wsp_it_send_raw(c, req, (size_t)n, wsp_it_left_ms(deadline));
    if (rv == 0)
        rv = wsp_it_read_101(c, key, wsp_it_left_ms(deadline));
    if (rv < 0)
        wsp_it_close(c);
    return rv;
}

int wsp_it_frame_build(uint8_t *out, size_t cap, const wsp_it_fopts_t *o, const void *p, size_t len)
{
    if (cap < len + WSP_FRAME_HDR_MAX)
        return -ENOBUFS;
    uint8_t mask[4];
    if (!o->unmasked && getrandom(mask, sizeof(mask), 0) != (ssize_t)sizeof(mask))
        return -EIO;
    size_t h = wsp_frame_header(out, o->opcode, len, o->unmasked ? NULL : mask);
    out[0] = (uint8_t)((o->no_fin ? 0 : 0x80u) | (o->rsv & 0x70u) | (o->opcode & 0x0Fu));
    if (len)
        memcpy(out + h, p, len);
    if (!o->unmasked)
        wsp_frame_mask(out + h, len, mask, 0);
    return (int)(h + len);
}

int wsp_it_send_frame_ex(wsp_it_client_t *c, const wsp_it_fopts_t *o, const void *p, size_t len,
                         int timeout_ms)
{
    size_t cap = len + WSP_FRAME_HDR_MAX;
    uint8_t *buf = malloc(cap);
    if (buf == NULL)
        return -ENOMEM;
    int n = wsp_it_frame_build(buf, cap, o, p, len);
    int rv = n < 0 ? n : wsp_it_send_raw(c, buf, (size_t)n, timeout_ms);
    free(buf);
    return rv;
}

int wsp_it_send_frame(wsp_it_client_t *c, unsigned opcode, const void *p, size_t len,
                      int timeout_ms)
{
    wsp_it_fopts_t o = {.opcode = opcode};
    return wsp_it_send_frame_ex(c, &o, p, len, timeout_ms);
}

int wsp_it_send_close(wsp_it_client_t *c, unsigned code, const char *reason, int timeout_ms)
{
    uint8_t p[125] = {(uint8_t)(code >> 8), (uint8_t)code};
    size_t rn = reason != NULL ? strlen(reason) : 0;
    if (rn > sizeof(p) - 2)
        return -EMSGSIZE;
    if (rn)
        memcpy(p + 2, reason, rn);
    return wsp_it_send_frame(c, WSP_OP_CLOSE, p, 2 + rn, timeout_ms);
}

/* Decodes one whole frame at the start of c->buf into f. 1 when one was decoded, 0 when more
 * bytes are needed, -EMSGSIZE when it cannot fit. */
static int parse_frame(wsp_it_client_t *c, wsp_it_frame_t *f)
{
    const uint8_t *b = c->buf;
    if (c->len < 2)
        return 0;
    size_t h = 2;
    uint64_t plen = b[1] & 0x7Fu;
    if (plen == 126)
        h = 4;
    else if (plen == 127)
        h = 10;
    int masked = (b[1] & 0x80u) != 0;
    if (c->len < h + (masked ? 4 : 0))
        return 0;
    if (h > 2) {
        plen = 0;
        for (size_t i = 2; i < h; i++)
            plen = plen << 8 | b[i];
    }
    const uint8_t *mask = b + h;
    if (masked)
        h += 4;
    if (plen > WSP_IT_MAX_PAYLOAD || h + plen > sizeof(c->buf))
        return -EMSGSIZE;
    if (c->len < h + plen)
        return 0;
    f->fin = (b[0] & 0x80u) != 0;
    f->rsv = b[0] & 0x70u;
    f->opcode = b[0] & 0x0Fu;
    f->masked = masked;
    f->len = (size_t)plen;
    memcpy(f->payload, b + h, f->len);
    if (masked) {
        uint8_t m[4];
        memcpy(m, mask, 4);
        wsp_frame_mask(f->payload, f->len, m, 0);
    }
    f->payload[f->len] = '\0';
    f->close_code = f->opcode == WSP_OP_CLOSE && f->len >= 2
                        ? (int)((unsigned)f->payload[0] << 8 | f->payload[1])
                        : -1;
    consume(c, h + f->len);
    return 1;
}

int wsp_it_read_frame(wsp_it_client_t *c, wsp_it_frame_t *f, int timeout_ms)
{
    int64_t deadline = wsp_it_now_ms() + timeout_ms;
    for (;;) {
        int rv = parse_frame(c, f);
        if (rv != 0)
            return rv < 0 ? rv : 0;
        rv = fill(c, deadline);
        if (rv < 0)
            return rv;
    }
}

int wsp_it_expect_eof(wsp_it_client_t *c, int timeout_ms)
{
    if (c->len > 0)
        return -EBADMSG;
    int rv = fill(c, wsp_it_now_ms() + timeout_ms);
    if (rv == WSP_IT_EOF)
        return 0;
    return rv == 0 ? -EBADMSG : rv;
}

int wsp_it_drain_until_closed(wsp_it_client_t *c, int timeout_ms)
{
    int64_t deadline = wsp_it_now_ms() + timeout_ms;
    for (;;) {
        c->len = 0; /* discarded */
        int rv = fill(c, deadline);
        if (rv == WSP_IT_EOF)
            return 0;
        if (rv < 0)
            return rv;
    }
}

int wsp_it_count_readable(wsp_it_client_t *const *cs, size_t n, int ms)
{
    struct pollfd *p = calloc(n ? n : 1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    int buffered = 0;
    for (size_t i = 0; i < n; i++) {
        p[i].fd = cs[i]->fd;
        p[i].events = POLLIN;
        buffered += cs[i]->len > 0;
    }
    int64_t deadline = wsp_it_now_ms() + ms;
    int r;
    while ((r = poll(p, n, wsp_it_left_ms(deadline))) < 0 && errno == EINTR)
        ;
    int ready = 0;
    for (size_t i = 0; i < n && r > 0; i++)
        ready += cs[i]->len == 0 && p[i].revents != 0;
    free(p);
    return r < 0 ? -errno : buffered + ready;
}

/* Parses 1..19 decimal digits at *p, advancing it. 0 or -EBADMSG. */
static int parse_u64(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t x = 0;
    while (s < end && *s >= '0' && *s <= '9' && s - *p < 19)
        x = x * 10 + (uint64_t)(*s++ - '0');
    if (s == *p)
        return -EBADMSG;
    *p = s;
    *v = x;
    return 0;
}

/* Matches the literal lit at *p, advancing it. */
static int match(const char **p, const char *end, const char *lit)
{
    size_t n = strlen(lit);
    if ((size_t)(end - *p) < n || memcmp(*p, lit, n) != 0)
        return 0;
    *p += n;
    return 1;
}

int wsp_it_parse_time_msg(const uint8_t *buf, size_t len, uint64_t *time_ms, uint64_t *seq)
{
    const char *p = (const char *)buf, *end = p + len;
    if (!match(&p, end, "{\"time\":") || parse_u64(&p, end, time_ms) < 0 ||
        !match(&p, end, ",\"seq\":") || parse_u64(&p, end, seq) < 0 || !match(&p, end, "}") ||
        p != end)
        return -EBADMSG;
    return 0;
}
