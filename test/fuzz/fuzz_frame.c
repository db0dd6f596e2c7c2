/* Fuzzes client-frame handling (server/ws.c over wslay): wsp_ws_feed() over a byte stream fed
 * in pieces, as reads would deliver it. Input: [split control byte][sink control byte][stream].
 * The sink records what the server writes; with the sink control's top bit set it refuses
 * (-ENOBUFS) once (ctl & 0x3F) * 8 bytes are written, as conn.c does over --max-pending. Bit 6
 * of the sink control negotiates permessage-deflate (issue #19): RSV1 marks a compressed
 * message, inflated (bounded) with one decompressor per run, as a shard has.
 * Checks, besides memory safety and leaks:
 * - every written byte is a well-formed server frame: FIN, no RSV, unmasked, a pong or one
 *   final close, control-sized, with a valid close code and a UTF-8 reason;
 * - the close code reported is the one written;
 * - the read boundaries change nothing: with a sink that never refuses, the bytes written,
 *   the outcome and the messages inflated equal those of feeding the whole stream at once;
 * - after WSP_WS_CLOSE the peer is ignored: WSP_WS_CLOSE again, nothing written;
 * - the sink is never called outside wsp_ws_feed(). */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "frame.h"
#include "fuzz.h"
#include "utf8.h"
#include "ws.h"

struct sink {
    uint8_t *buf;
    size_t len, cap;
    size_t budget; /* SIZE_MAX: never refuses */
    bool in_feed;
};

static int on_sink_write(void *user, const uint8_t *buf, size_t len)
{
    struct sink *s = user;
    WSP_FUZZ_CHECK(s->in_feed);
    WSP_FUZZ_CHECK(len > 0);
    if (len > s->budget - s->len)
        return -ENOBUFS;
    WSP_FUZZ_CHECK(len <= s->cap - s->len); /* pongs never outgrow the pings they answer */
    memcpy(s->buf + s->len, buf, len);
    s->len += len;
    return 0;
}

static bool close_code_ok(unsigned code)
{
    if (code >= 3000 && code <= 4999)
        return true;
    return code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006;
}

/* Checks s->buf holds only well-formed server frames; returns the close code written: -1 for
 * no close frame, 0 for an empty close. cut: the sink refused a write, so the last frame may
 * lack its payload (wslay writes header and payload separately; conn.c then closes TCP). */
static int check_output(const struct sink *s, bool cut)
{
    size_t off = 0;
    int close = -1;
    while (off < s->len) {
        WSP_FUZZ_CHECK(close == -1); /* nothing after a close */
        if (cut && s->len - off < 2)
            break;
        WSP_FUZZ_CHECK(s->len - off >= 2);
        const uint8_t *p = s->buf + off;
        unsigned op = p[0] & 0x0Fu;
        size_t n = p[1] & 0x7Fu;
        WSP_FUZZ_CHECK((p[0] & 0xF0u) == 0x80u); /* FIN, no RSV */
        WSP_FUZZ_CHECK((p[1] & 0x80u) == 0);     /* a server never masks */
        WSP_FUZZ_CHECK(op == WSP_OP_PONG || op == WSP_OP_CLOSE);
        WSP_FUZZ_CHECK(n <= 125);
        if (cut && s->len - off - 2 < n)
            break;
        WSP_FUZZ_CHECK(s->len - off - 2 >= n);
        if (op == WSP_OP_CLOSE) {
            WSP_FUZZ_CHECK(n != 1);
            close = 0;
            if (n >= 2) {
                close = p[2] << 8 | p[3];
                WSP_FUZZ_CHECK(close_code_ok((unsigned)close));
                WSP_FUZZ_CHECK(wsp_utf8_valid(p + 4, n - 2));
            }
        }
        off += 2 + n;
    }
    return close;
}

struct outcome {
    int last;          /* what the last feed returned */
    int code;          /* the close code reported, 0 if none */
    int fails;         /* feeds that returned a negative errno: at most one, the last */
    uint64_t inflated; /* compressed messages inflated (permessage-deflate) */
};

/* Feeds s[0..n) in pieces chosen by ctl, as conn.c would: stop at a negative return, keep
 * feeding (to check it is ignored) after WSP_WS_CLOSE. pmd: permessage-deflate negotiated. */
static struct outcome run(uint8_t ctl, const uint8_t *s, size_t n, struct sink *out, bool pmd)
{
    struct outcome o = {WSP_WS_OK, 0, 0, 0};
    wsp_ws_pmd_t zstate = {0};
    wsp_ws_pmd_t *z = pmd ? &zstate : NULL;
    wsp_ws_t *ws = NULL;
    wsp_fuzz_split_t sp;
    wsp_fuzz_split_init(&sp, ctl);
    size_t off = 0;
    bool closed = false;
    while (off < n) {
        size_t k = wsp_fuzz_split_next(&sp, n - off);
        size_t before = out->len;
        int code = -1;
        out->in_feed = true;
        int rv = wsp_ws_feed(&ws, s + off, k, on_sink_write, NULL, out, z, &code);
        out->in_feed = false;
        off += k;
        WSP_FUZZ_CHECK(code >= 0);
        if (closed) {
            WSP_FUZZ_CHECK(rv == WSP_WS_CLOSE && code == 0 && out->len == before);
            continue;
        }
        o.last = rv;
        if (rv < 0) {
            WSP_FUZZ_CHECK(code == 0);
            o.fails++;
            break; /* conn.c closes TCP now */
        }
        WSP_FUZZ_CHECK(rv == WSP_WS_OK || rv == WSP_WS_CLOSE);
        if (rv == WSP_WS_OK) {
            WSP_FUZZ_CHECK(code == 0);
            continue;
        }
        closed = true;
        o.code = code;
        WSP_FUZZ_CHECK(ws != NULL); /* the state stays until the close callback frees it */
    }
    /* A zero-length read changes nothing. */
    size_t before = out->len;
    if (o.fails == 0) {
        out->in_feed = true;
        int rv = wsp_ws_feed(&ws, s, 0, on_sink_write, NULL, out, z, NULL);
        out->in_feed = false;
        WSP_FUZZ_CHECK(rv == (closed ? WSP_WS_CLOSE : WSP_WS_OK) && out->len == before);
    }
    wsp_ws_free(ws);
    o.inflated = zstate.inflated;
    wsp_deflate_free(zstate.z);
    int written = check_output(out, o.last == -ENOBUFS);
    if (closed)
        WSP_FUZZ_CHECK(written == o.code);
    else if (o.fails == 0)
        WSP_FUZZ_CHECK(written == -1);
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t *s = data + 2;
    size_t n = size - 2;
    uint8_t *b1 = malloc(n + 256), *b2 = malloc(n + 256);
    WSP_FUZZ_CHECK(b1 != NULL && b2 != NULL);
    struct sink whole = {b1, 0, n + 256, SIZE_MAX, false};
    struct sink split = {b2, 0, n + 256, SIZE_MAX, false};
    if (data[1] & 0x80u)
        split.budget = (size_t)(data[1] & 0x3Fu) * 8;
    bool pmd = (data[1] & 0x40u) != 0;
    struct outcome o1 = run(0, s, n, &whole, pmd);
    struct outcome o2 = run(data[0], s, n, &split, pmd);
    WSP_FUZZ_CHECK(o1.last != -ENOBUFS); /* the whole-stream sink never refuses */
    WSP_FUZZ_CHECK(pmd || (o1.inflated == 0 && o2.inflated == 0));
    if (split.budget == SIZE_MAX) {
        WSP_FUZZ_CHECK(o1.last == o2.last && o1.code == o2.code && o1.fails == o2.fails);
        WSP_FUZZ_CHECK(o1.inflated == o2.inflated);
        WSP_FUZZ_CHECK(whole.len == split.len && memcmp(whole.buf, split.buf, whole.len) == 0);
    } else {
        /* A refusing sink only cuts the same output short. */
        WSP_FUZZ_CHECK(split.len <= whole.len && memcmp(whole.buf, split.buf, split.len) == 0);
        if (o2.last != -ENOBUFS)
            WSP_FUZZ_CHECK(o1.last == o2.last && o1.code == o2.code && split.len == whole.len);
    }
    free(b1);
    free(b2);
    return 0;
}
