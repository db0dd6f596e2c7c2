#include "framed.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "frame.h"

/* Bytes p[i] takes inside a JSON string: RFC 8259 section 7 requires escaping the quote, the
 * backslash and U+0000..U+001F; everything else (UTF-8 included) goes as it is. */
static size_t esc_len(uint8_t c)
{
    if (c == '"' || c == '\\' || c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t')
        return 2;
    return c < 0x20 ? 6 : 1; /* \u00XX */
}

static size_t esc_write(uint8_t *out, uint8_t c)
{
    static const char hex[] = "0123456789abcdef";
    const char *named = NULL;
    switch (c) {
    case '"':
        named = "\\\"";
        break;
    case '\\':
        named = "\\\\";
        break;
    case '\b':
        named = "\\b";
        break;
    case '\f':
        named = "\\f";
        break;
    case '\n':
        named = "\\n";
        break;
    case '\r':
        named = "\\r";
        break;
    case '\t':
        named = "\\t";
        break;
    default:
        break;
    }
    if (named) {
        memcpy(out, named, 2);
        return 2;
    }
    if (c < 0x20) {
        memcpy(out, "\\u00", 4);
        out[4] = (uint8_t)hex[c >> 4];
        out[5] = (uint8_t)hex[c & 15];
        return 6;
    }
    out[0] = c;
    return 1;
}

/* Decimal digits of v (v > 0), or of "null" for 0. */
static size_t seq_len(uint64_t seq)
{
    if (seq == 0)
        return 4;
    size_t n = 0;
    for (; seq; seq /= 10)
        n++;
    return n;
}

static const char head_ch[] = "{\"ch\":\"",
                  head_seq[] = "\",\"seq\":", head_data[] = ",\"data\":\"";

size_t wsp_framed_len(size_t chan_len, uint64_t seq, const uint8_t *p, size_t len)
{
    size_t n = sizeof(head_ch) - 1 + chan_len + sizeof(head_seq) - 1 + seq_len(seq) +
               sizeof(head_data) - 1 + 2; /* the closing quote and brace */
    for (size_t i = 0; i < len; i++)
        n += esc_len(p[i]);
    return n;
}

size_t wsp_framed_write(uint8_t *out, const char *chan, size_t chan_len, uint64_t seq,
                        const uint8_t *p, size_t len)
{
    uint8_t *o = out;
    memcpy(o, head_ch, sizeof(head_ch) - 1);
    o += sizeof(head_ch) - 1;
    memcpy(o, chan, chan_len);
    o += chan_len;
    memcpy(o, head_seq, sizeof(head_seq) - 1);
    o += sizeof(head_seq) - 1;
    if (seq == 0) {
        memcpy(o, "null", 4);
        o += 4;
    } else {
        char digits[24];
        int dn = snprintf(digits, sizeof(digits), "%llu", (unsigned long long)seq);
        memcpy(o, digits, (size_t)dn);
        o += dn;
    }
    memcpy(o, head_data, sizeof(head_data) - 1);
    o += sizeof(head_data) - 1;
    for (size_t i = 0; i < len; i++)
        o += esc_write(o, p[i]);
    *o++ = '"';
    *o++ = '}';
    return (size_t)(o - out);
}

wsp_msg_t *wsp_framed_msg(const char *chan, size_t chan_len, uint64_t seq, const uint8_t *p,
                          size_t len)
{
    size_t plen = wsp_framed_len(chan_len, seq, p, len);
    uint8_t hdr[WSP_FRAME_HDR_MAX];
    size_t hl = wsp_frame_header(hdr, WSP_OP_TEXT, plen, NULL);
    wsp_msg_t *m = wsp_msg_new(hl + plen);
    if (m == NULL)
        return NULL;
    memcpy(m->bytes, hdr, hl);
    size_t w = wsp_framed_write(m->bytes + hl, chan, chan_len, seq, p, len);
    (void)w; /* == plen: the two passes agree byte for byte (test_framed checks it) */
    return m;
}

int wsp_framed_epoch_valid(const char *e, size_t len)
{
    if (e == NULL || len == 0 || len > WSP_FRAMED_EPOCH_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)e[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

int wsp_framed_epoch_new(char out[17])
{
    uint8_t r[8];
    ssize_t n = getrandom(r, sizeof(r), 0);
    if (n != (ssize_t)sizeof(r))
        return n < 0 ? -errno : -EIO;
    for (int i = 0; i < 8; i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return 0;
}

/* Appends a channel map ("top" or "recovered") to the hello being written at *o. */
static char *hello_map(char *o, const char *key, const wsp_framed_top_t *v, unsigned n, int rec)
{
    o += sprintf(o, ",\"%s\":{", key);
    int first = 1;
    for (unsigned i = 0; i < n; i++) {
        if (rec && !v[i].resumed)
            continue;
        o += sprintf(o, "%s\"%.*s\":", first ? "" : ",", (int)v[i].len, v[i].name);
        if (rec)
            o += sprintf(o, "%s", v[i].recovered ? "true" : "false");
        else if (v[i].known)
            o += sprintf(o, "%llu", (unsigned long long)v[i].top);
        else
            o += sprintf(o, "null");
        first = 0;
    }
    *o++ = '}';
    return o;
}

wsp_msg_t *wsp_framed_hello(const char *epoch, const wsp_framed_top_t *v, unsigned n)
{
    /* Bounded: at most WSP_CHANNELS_MAX names of WSP_CHANNEL_NAME_MAX bytes, each with a
     * 20-digit top and a "false", and an epoch of WSP_FRAMED_EPOCH_MAX. */
    char body[64 + WSP_FRAMED_EPOCH_MAX + WSP_CHANNELS_MAX * 2 * (WSP_CHANNEL_NAME_MAX + 32)];
    if (n > WSP_CHANNELS_MAX)
        return NULL;
    size_t elen = strnlen(epoch, WSP_FRAMED_EPOCH_MAX);
    char *o = body + sprintf(body, "{\"epoch\":\"%.*s\"", (int)elen, epoch);
    int any = 0;
    for (unsigned i = 0; i < n; i++)
        any |= v[i].resumed;
    o = hello_map(o, "top", v, n, 0);
    if (any)
        o = hello_map(o, "recovered", v, n, 1);
    *o++ = '}';
    return wsp_frame_msg(WSP_OP_TEXT, body, (size_t)(o - body));
}

/* Parses a decimal sequence number: 1..19 digits. Returns 0 or -EINVAL. */
static int parse_seq(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return -EINVAL;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Parses since's value (CHANNEL:SEQ,...) into r. Returns 0 or -EINVAL. */
static int parse_since(const char *v, size_t len, wsp_framed_resume_t *r)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && v[i] != ',')
            continue;
        const char *item = v + start;
        size_t il = i - start;
        start = i + 1;
        const char *colon = NULL;
        for (size_t k = il; k-- > 0;)
            if (item[k] == ':') {
                colon = item + k;
                break;
            }
        if (colon == NULL || r->n == WSP_CHANNELS_MAX)
            return -EINVAL;
        size_t nl = (size_t)(colon - item);
        uint64_t seq;
        if (!wsp_channel_valid(item, nl) || parse_seq(colon + 1, il - nl - 1, &seq) < 0)
            return -EINVAL;
        for (unsigned k = 0; k < r->n; k++)
            if (r->v[k].len == nl && memcmp(r->v[k].name, item, nl) == 0)
                return -EINVAL; /* twice: which one would the client mean? */
        r->v[r->n].name = item;
        r->v[r->n].len = nl;
        r->v[r->n].since = seq;
        r->n++;
    }
    return 0;
}

int wsp_framed_parse_resume(const char *query, size_t len, wsp_framed_resume_t *out)
{
    wsp_framed_resume_t r = {.n = 0, .epoch = NULL, .epoch_len = 0};
    const char *v = NULL;
    size_t vlen = 0;
    int rv = wsp_channels_query_param(query, len, "since", &v, &vlen);
    if (rv > 1 || (rv == 1 && (vlen == 0 || parse_since(v, vlen, &r) < 0)))
        return -EINVAL;
    rv = wsp_channels_query_param(query, len, "epoch", &v, &vlen);
    if (rv > 1 || (rv == 1 && !wsp_framed_epoch_valid(v, vlen)))
        return -EINVAL;
    if (rv == 1) {
        r.epoch = v;
        r.epoch_len = vlen;
    }
    if (r.n > 0 && r.epoch == NULL)
        return -EINVAL; /* a position without its epoch cannot be checked */
    *out = r;
    return 0;
}
