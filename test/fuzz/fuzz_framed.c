/* Fuzzes what issue #17 parses and encodes (server/framed.c, server/stream.c). The first byte
 * picks the mode, the rest is the input:
 *   0: a query string for wsp_framed_parse_resume() (every wspush.v1 upgrade request): on
 *      success every name is a valid channel name inside the query, at most
 *      WSP_CHANNELS_MAX and none twice, the epoch valid and inside the query (required with a
 *      since); on failure the caller's result untouched.
 *   1: a payload for the framed encoder: the two passes agree on the length, and for valid
 *      UTF-8 the output is a JSON object whose "data" string decodes to the payload itself.
 *   2: a Redis pub/sub message for wsp_stream_parse(): an envelope's parts lie inside it, its
 *      epoch is valid and its seq > 0; anything without 0xFF first is raw.
 *   3: an epoch candidate for wsp_framed_hello(): a hello is built for a valid one. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "framed.h"
#include "fuzz.h"
#include "stream.h"
#include "utf8.h"

static int inside(const uint8_t *base, size_t n, const void *p, size_t len)
{
    const uint8_t *q = p;
    return q >= base && q + len <= base + n;
}

static void fuzz_resume(const uint8_t *q, size_t n)
{
    wsp_framed_resume_t r, before;
    memset(&r, 0x5A, sizeof(r));
    memcpy(&before, &r, sizeof(r));
    int rv = wsp_framed_parse_resume((const char *)q, n, &r);
    WSP_FUZZ_CHECK(rv == 0 || rv == -EINVAL);
    if (rv < 0) {
        WSP_FUZZ_CHECK(memcmp(&r, &before, sizeof(r)) == 0);
        return;
    }
    WSP_FUZZ_CHECK(r.n <= WSP_CHANNELS_MAX);
    WSP_FUZZ_CHECK(r.n == 0 || r.epoch != NULL);
    if (r.epoch) {
        WSP_FUZZ_CHECK(inside(q, n, r.epoch, r.epoch_len));
        WSP_FUZZ_CHECK(wsp_framed_epoch_valid(r.epoch, r.epoch_len));
    }
    for (unsigned i = 0; i < r.n; i++) {
        WSP_FUZZ_CHECK(inside(q, n, r.v[i].name, r.v[i].len));
        WSP_FUZZ_CHECK(wsp_channel_valid(r.v[i].name, r.v[i].len));
        WSP_FUZZ_CHECK(r.v[i].since <= 9999999999999999999ull);
        for (unsigned j = 0; j < i; j++)
            WSP_FUZZ_CHECK(r.v[j].len != r.v[i].len ||
                           memcmp(r.v[j].name, r.v[i].name, r.v[i].len) != 0);
    }
}

/* Decodes the JSON string at s (after its opening quote) into out; returns its length, or -1
 * for what is not valid JSON string syntax. *end gets the offset past the closing quote. */
static long json_string(const uint8_t *s, size_t n, uint8_t *out, size_t *end)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            *end = i + 1;
            return (long)o;
        }
        if (s[i] < 0x20)
            return -1;
        if (s[i] != '\\') {
            out[o++] = s[i];
            continue;
        }
        if (++i >= n || s[i] == 0)
            return -1;
        const char *named = s[i] != 'u' ? strchr(from, s[i]) : NULL;
        if (named) {
            out[o++] = (uint8_t)to[named - from];
            continue;
        }
        if (s[i] != 'u' || i + 4 >= n || memcmp(s + i + 1, "00", 2) != 0)
            return -1;
        unsigned v = 0;
        for (int k = 3; k <= 4; k++) {
            uint8_t h = s[i + k];
            if (!((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f')))
                return -1;
            v = v * 16 + (unsigned)(h <= '9' ? h - '0' : h - 'a' + 10);
        }
        out[o++] = (uint8_t)v;
        i += 4;
    }
    return -1;
}

static void fuzz_encode(const uint8_t *p, size_t n)
{
    uint64_t seq = n ? p[0] * 1000003ull : 0;
    size_t len = wsp_framed_len(4, seq, p, n);
    uint8_t *out = malloc(len + 1);
    uint8_t *dec = malloc(n + 1);
    WSP_FUZZ_CHECK(out != NULL && dec != NULL);
    WSP_FUZZ_CHECK(wsp_framed_write(out, "news", 4, seq, p, n) == len);
    if (wsp_utf8_valid(p, n)) {
        const uint8_t *d = memmem(out, len, ",\"data\":\"", 9);
        WSP_FUZZ_CHECK(d != NULL && memcmp(out, "{\"ch\":\"news\",\"seq\":", 19) == 0);
        size_t off = (size_t)(d - out) + 9, end = 0;
        long got = json_string(out + off, len - off, dec, &end);
        WSP_FUZZ_CHECK(got == (long)n && memcmp(dec, p, n) == 0);
        WSP_FUZZ_CHECK(off + end + 1 == len && out[len - 1] == '}');
        wsp_msg_t *m = wsp_framed_msg("news", 4, seq, p, n);
        WSP_FUZZ_CHECK(m != NULL && m->len >= len &&
                       memcmp(m->bytes + m->len - len, out, len) == 0);
        wsp_msg_unref(m);
    }
    free(out);
    free(dec);
}

static void fuzz_envelope(const uint8_t *p, size_t n)
{
    uint64_t seq = 0;
    const char *e = NULL;
    size_t el = 0, pl = 0;
    const uint8_t *body = NULL;
    int rv = wsp_stream_parse(p, n, &seq, &e, &el, &body, &pl);
    WSP_FUZZ_CHECK(rv == 0 || rv == 1 || rv == -EBADMSG);
    WSP_FUZZ_CHECK(rv != 0 || n == 0 || p[0] != 0xFF);
    if (rv == 1) {
        WSP_FUZZ_CHECK(seq > 0 && wsp_framed_epoch_valid(e, el));
        WSP_FUZZ_CHECK(inside(p, n, e, el) && inside(p, n, body, pl));
        WSP_FUZZ_CHECK(body + pl == p + n);
    }
}

static void fuzz_hello(const uint8_t *p, size_t n)
{
    char epoch[WSP_FRAMED_EPOCH_MAX + 1];
    if (!wsp_framed_epoch_valid((const char *)p, n))
        return;
    memcpy(epoch, p, n);
    epoch[n] = '\0';
    wsp_framed_top_t v[2] = {{"a", 1, n, 1, 1, n & 1}, {"time", 4, 0, n & 2, 0, 0}};
    wsp_msg_t *m = wsp_framed_hello(epoch, v, 2);
    WSP_FUZZ_CHECK(m != NULL && memmem(m->bytes, m->len, epoch, n) != NULL);
    wsp_msg_unref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    switch (data[0] % 4) {
    case 0:
        fuzz_resume(p, n);
        break;
    case 1:
        fuzz_encode(p, n);
        break;
    case 2:
        fuzz_envelope(p, n);
        break;
    default:
        fuzz_hello(p, n);
        break;
    }
    return 0;
}
