#include "upgrade.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

/* More fields than any browser sends; a peer sending more is probing, not upgrading. */
#define WSP_UPGRADE_MAX_FIELDS 100

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; /* RFC 6455 §1.3 */

/* RFC 7230 §3.2.6 tchar: what a method and a header name may be made of. */
static int is_tchar(uint8_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static int is_ctl(uint8_t c) { return c < 0x20 || c == 0x7f; }

static int is_ows(uint8_t c) { return c == ' ' || c == '\t'; }

static uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + ('a' - 'A')) : c; }

/* ASCII-only: strncasecmp() follows the locale, header names and tokens do not. */
static int ieq(const uint8_t *p, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower(p[i]) != (uint8_t)lit[i])
            return 0;
    return 1;
}

static void trim(const uint8_t **p, size_t *n)
{
    while (*n > 0 && is_ows((*p)[0])) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && is_ows((*p)[*n - 1]))
        (*n)--;
}

/* Whether the comma-separated list p[0..n) (RFC 7230 §7 #rule: empty elements allowed) holds
 * token, case-insensitively ("Connection: keep-alive, Upgrade" must match "upgrade"), or
 * exactly when exact (a subprotocol token). */
static int list_has(const uint8_t *p, size_t n, const char *token, int exact)
{
    while (n > 0) {
        const uint8_t *comma = memchr(p, ',', n);
        size_t el = comma != NULL ? (size_t)(comma - p) : n;
        const uint8_t *e = p;
        size_t en = el;
        trim(&e, &en);
        if (exact ? en == strlen(token) && memcmp(e, token, en) == 0 : ieq(e, en, token))
            return 1;
        if (comma == NULL)
            break;
        p += el + 1;
        n -= el + 1;
    }
    return 0;
}

static int is_b64(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* RFC 6455 §4.2.1 item 5: base64 of exactly 16 bytes is 22 alphabet characters then "==".
 * The 4 unused bits of the last character are not checked: decoders ignore them too. */
static int key_ok(const uint8_t *k, size_t n)
{
    if (n != 24 || k[22] != '=' || k[23] != '=')
        return 0;
    for (size_t i = 0; i < 22; i++)
        if (!is_b64(k[i]))
            return 0;
    return 1;
}

/* The quick pass, run on every call: finds the end of the header block and rejects what
 * cannot become a request as early as possible, so a TLS ClientHello or binary junk gets its
 * 400 at once instead of holding a slot until 8 KiB arrive. Stateless by API, so a peer
 * sending byte by byte costs O(n^2) over at most 8 KiB: cheaper than the reads themselves.
 * Returns 0 with *end set, -EAGAIN, or the HTTP status to answer. */
static int scan_block(const uint8_t *buf, size_t len, size_t *end)
{
    size_t lim = len < WSP_UPGRADE_MAX_HEADER ? len : WSP_UPGRADE_MAX_HEADER;
    size_t line_start = 0, lines = 0;
    int in_method = 1; /* still in the request line's first token */
    for (size_t i = 0; i < lim; i++) {
        uint8_t c = buf[i];
        if (c == '\n') {
            size_t e = (i > line_start && buf[i - 1] == '\r') ? i - 1 : i;
            if (e == line_start) { /* empty line: the block ends here */
                *end = i + 1;
                return 0;
            }
            if (++lines > WSP_UPGRADE_MAX_FIELDS + 1) /* + 1: the request line */
                return 431;
            line_start = i + 1;
            in_method = 0;
        } else if (c == '\r') {
            if (i + 1 < len && buf[i + 1] != '\n') /* a bare CR is no line end (RFC 7230 §3.5) */
                return 400;
        } else if (in_method) {
            if (c == ' ' && i > 0)
                in_method = 0;
            else if (!is_tchar(c))
                return 400;
        } else if (is_ctl(c) && c != '\t') {
            return 400;
        }
    }
    return len >= WSP_UPGRADE_MAX_HEADER ? 431 : -EAGAIN;
}

/* Next line of a block known to end in an empty line, without its CR LF (or bare LF). */
static void next_line(const uint8_t *buf, size_t *pos, const uint8_t **line, size_t *n)
{
    const uint8_t *p = buf + *pos;
    const uint8_t *nl = p;
    while (*nl != '\n')
        nl++;
    *line = p;
    *n = (size_t)(nl - p);
    if (*n > 0 && p[*n - 1] == '\r')
        (*n)--;
    *pos += (size_t)(nl - p) + 1;
}

/* RFC 7230 §3.1.1 request-line in origin-form. Returns 0 or 400. */
static int parse_request_line(const uint8_t *l, size_t n, wsp_upgrade_req_t *req, int *is_get,
                              int *is_11)
{
    const uint8_t *sp1 = memchr(l, ' ', n);
    if (sp1 == NULL || sp1 == l)
        return 400;
    for (const uint8_t *p = l; p < sp1; p++)
        if (!is_tchar(*p))
            return 400;
    const uint8_t *t = sp1 + 1, *end = l + n;
    const uint8_t *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (sp2 == NULL || sp2 == t || *t != '/') /* '/' first: no absolute-form or '*' */
        return 400;
    const uint8_t *q = NULL;
    for (const uint8_t *p = t; p < sp2; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '#') /* RFC 6455 §3: no fragments */
            return 400;
        if (*p == '?' && q == NULL)
            q = p;
    }
    const uint8_t *v = sp2 + 1;
    size_t vn = (size_t)(end - v);
    if (vn != 8 || memcmp(v, "HTTP/", 5) != 0 || v[5] < '0' || v[5] > '9' || v[6] != '.' ||
        v[7] < '0' || v[7] > '9')
        return 400;
    *is_get = (size_t)(sp1 - l) == 3 && memcmp(l, "GET", 3) == 0; /* methods are case-sensitive */
    *is_11 = memcmp(v, "HTTP/1.1", 8) == 0;
    req->path = (const char *)t;
    req->path_len = (size_t)((q != NULL ? q : sp2) - t);
    req->query = q != NULL ? (const char *)q + 1 : NULL;
    req->query_len = q != NULL ? (size_t)(sp2 - q - 1) : 0;
    return 0;
}

/* What the header fields said beyond what the request carries (wsp_upgrade_req_t): counts and
 * flags for the checks, collected first so that framing errors win over the rest. */
struct fields {
    int host, upgrade, connection, version_seen, version_bad, key_count;
};

/* One header field line: a header the caller needs goes into r, what the checks need into f.
 * Returns 0 or 400. */
static int parse_field(const uint8_t *l, size_t n, wsp_upgrade_req_t *r, struct fields *f)
{
    if (is_ows(l[0])) /* obs-fold: RFC 7230 §3.2.4 lets a server reject it with 400 */
        return 400;
    const uint8_t *colon = memchr(l, ':', n);
    if (colon == NULL || colon == l)
        return 400;
    size_t nn = (size_t)(colon - l);
    for (size_t i = 0; i < nn; i++)
        if (!is_tchar(l[i])) /* also rejects "Host :", a classic smuggling vector */
            return 400;
    const uint8_t *v = colon + 1;
    size_t vn = (size_t)(l + n - v);
    trim(&v, &vn);

    if (ieq(l, nn, "host")) {
        f->host++;
    } else if (ieq(l, nn, "upgrade")) {
        f->upgrade |= list_has(v, vn, "websocket", 0);
    } else if (ieq(l, nn, "connection")) {
        f->connection |= list_has(v, vn, "upgrade", 0);
    } else if (ieq(l, nn, "sec-websocket-key")) {
        f->key_count++;
        r->key = (const char *)v;
        r->key_len = vn;
    } else if (ieq(l, nn, "sec-websocket-protocol")) {
        /* Subprotocol tokens compare exactly (RFC 6455 section 4.1): no case folding. */
        if (list_has(v, vn, "wspush.v1", 1))
            r->subprotocols |= WSP_UPGRADE_SP_WSPUSH_V1;
    } else if (ieq(l, nn, "sec-websocket-version")) {
        f->version_seen = 1;
        if (vn != 2 || memcmp(v, "13", 2) != 0)
            f->version_bad = 1;
    } else if (ieq(l, nn, "authorization")) {
        r->authorization = (const char *)v;
        r->authorization_len = vn;
        if (r->authorization_count < 2)
            r->authorization_count++;
    } else if (ieq(l, nn, "cookie")) {
        r->cookie = (const char *)v;
        r->cookie_len = vn;
        if (r->cookie_count < 2)
            r->cookie_count++;
    } else if (ieq(l, nn, "sec-websocket-extensions")) {
        if (r->n_ext < WSP_UPGRADE_EXT_LINES) {
            r->ext[r->n_ext] = (const char *)v;
            r->ext_len[r->n_ext] = vn;
        }
        r->n_ext++; /* at most WSP_UPGRADE_MAX_FIELDS: scan_block() counts the lines */
    }
    return 0;
}

/* The full parse of a complete block: framing (400/431), then method (405), then the
 * RFC 6455 §4.2.1 requirements (400, 426 for the version). Returns 0 or a status. */
static int parse_block(const uint8_t *buf, wsp_upgrade_req_t *req)
{
    size_t pos = 0, n;
    const uint8_t *l;
    int is_get, is_11;
    wsp_upgrade_req_t r = {0}; /* headers not sent stay NULL / 0 */
    next_line(buf, &pos, &l, &n);
    int st = parse_request_line(l, n, &r, &is_get, &is_11);
    if (st != 0)
        return st;

    struct fields f = {0};
    for (;;) {
        next_line(buf, &pos, &l, &n);
        if (n == 0)
            break;
        st = parse_field(l, n, &r, &f);
        if (st != 0)
            return st;
    }
    if (f.host > 1 || f.key_count > 1) /* RFC 7230 §5.4; two keys would be ambiguous */
        return 400;

    if (!is_get)
        return 405;
    if (!is_11 || f.host == 0 || !f.upgrade || !f.connection || f.key_count == 0 ||
        !key_ok((const uint8_t *)r.key, r.key_len))
        return 400;
    if (!f.version_seen || f.version_bad)
        return 426; /* RFC 6455 §4.4: the 426 response lists the version we speak */
    *req = r;
    return 0;
}

int wsp_upgrade_parse(const uint8_t *buf, size_t len, wsp_upgrade_req_t *req, int *status)
{
    size_t end = 0;
    int st = scan_block(buf, len, &end);
    if (st == 0)
        st = parse_block(buf, req);
    if (st == 0)
        return (int)end; /* <= WSP_UPGRADE_MAX_HEADER: bytes after it belong to the WebSocket */
    if (st == -EAGAIN)
        return -EAGAIN;
    *status = st;
    return -EBADMSG;
}

int wsp_upgrade_accept(const char *key, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    /* Two updates instead of a concatenation buffer: no bound on len to document. */
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -EIO;
    int ok = EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
             EVP_DigestUpdate(ctx, key, len) == 1 &&
             EVP_DigestUpdate(ctx, ws_guid, sizeof(ws_guid) - 1) == 1 &&
             EVP_DigestFinal_ex(ctx, md, &mdlen) == 1 && mdlen == 20;
    EVP_MD_CTX_free(ctx);
    if (!ok)
        return -EIO;
    /* 20 bytes encode to exactly WSP_UPGRADE_ACCEPT_LEN characters plus the NUL it writes. */
    if (EVP_EncodeBlock((unsigned char *)out, md, 20) != WSP_UPGRADE_ACCEPT_LEN)
        return -EIO;
    return 0;
}

int wsp_upgrade_response(const char *key, size_t key_len, const char *protocol, const char *extra,
                         char *out, size_t cap)
{
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: ";
    static const char proto[] = "\r\nSec-WebSocket-Protocol: ";
    size_t hn = sizeof(head) - 1, xn = extra ? strlen(extra) : 0;
    size_t pn = protocol ? sizeof(proto) - 1 + strlen(protocol) : 0;
    size_t total = hn + WSP_UPGRADE_ACCEPT_LEN + pn + 2 + xn + 2;
    if (cap < total + 1) /* + 1: always NUL-terminated, so a caller may log it */
        return -ENOBUFS;
    char accept[WSP_UPGRADE_ACCEPT_LEN + 1];
    int rv = wsp_upgrade_accept(key, key_len, accept);
    if (rv < 0)
        return rv;
    char *p = out;
    memcpy(p, head, hn);
    p += hn;
    memcpy(p, accept, WSP_UPGRADE_ACCEPT_LEN);
    p += WSP_UPGRADE_ACCEPT_LEN;
    if (protocol) {
        memcpy(p, proto, sizeof(proto) - 1);
        memcpy(p + sizeof(proto) - 1, protocol, pn - (sizeof(proto) - 1));
        p += pn;
    }
    memcpy(p, "\r\n", 2);
    p += 2;
    if (xn)
        memcpy(p, extra, xn);
    memcpy(p + xn, "\r\n", 3);
    return (int)total;
}

/* Content-Length is spelled out by hand; test_upgrade checks it against each body. */
#define WSP_ERR(status_line, extra, conn, clen, body)                                              \
    "HTTP/1.1 " status_line "\r\n" extra "Content-Type: text/plain\r\n"                            \
    "Content-Length: " clen "\r\nConnection: " conn "\r\n\r\n" body

static const struct {
    int status;
    const char *text;
} errors[] = {
    {400, WSP_ERR("400 Bad Request", "", "close", "12", "Bad Request\n")},
    {404, WSP_ERR("404 Not Found", "", "close", "10", "Not Found\n")},
    {405,
     WSP_ERR("405 Method Not Allowed", "Allow: GET\r\n", "close", "19", "Method Not Allowed\n")},
    /* RFC 7231 §6.5.15 wants Upgrade in a 426, and RFC 7230 §6.7 then "upgrade" in Connection;
     * close stays first so the connection is plainly not kept. */
    {426, WSP_ERR("426 Upgrade Required", "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n",
                  "close, Upgrade", "17", "Upgrade Required\n")},
    {431, WSP_ERR("431 Request Header Fields Too Large", "", "close", "32",
                  "Request Header Fields Too Large\n")},
    {503, WSP_ERR("503 Service Unavailable", "Retry-After: 5\r\n", "close", "20",
                  "Service Unavailable\n")},
};

const char *wsp_upgrade_error(int status, size_t *len)
{
    size_t i = 0;
    for (size_t j = 0; j < sizeof(errors) / sizeof(errors[0]); j++)
        if (errors[j].status == status)
            i = j;
    *len = strlen(errors[i].text); /* error paths only: not worth a length column */
    return errors[i].text;
}
