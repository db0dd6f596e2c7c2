/* Fuzzes inflating client messages (common/deflate.c). Input:
 *   [bound][form][bit lo][bit hi][data]
 * bound: the bound is bound * 64 bytes for bound < 0x80 (0..8128), else bound - 0x80
 * (0..127); the output buffer has exactly that size so that ASan sees a write past it.
 * form & 3: 0: data is the message payload as it comes; 1: data compressed by zlib the way
 * most clients send it (sync flush, 00 00 ff ff removed); 2: the same in two flushed blocks;
 * 3: a BFINAL stream and one zero byte (libdeflate senders). (form >> 2) & 7: zlib's level
 * (0..7, 0 stores). form & 0x80: flip the bit at (bit hi << 8 | bit lo) of the payload;
 * form & 0x40: cut the payload's last third.
 * libdeflate and zlib are uninstrumented system libraries, so coverage sees only our side:
 * the forms make zlib produce real streams from mutated plain text, to run the checks on.
 * Checks, besides memory safety and leaks:
 * - the result is 0 (within the bound), -EMSGSIZE or -EBADMSG, nothing else;
 * - a well-formed message (forms 1-3, neither flipped nor cut) inflates to data exactly, or
 *   -EMSGSIZE exactly when data is longer than the bound;
 * - agreement with zlib inflating the payload plus 00 00 ff ff as RFC 7692 section 7.2.2 says,
 *   restarting at the end of each DEFLATE stream as Chromium does: when zlib ends at a block
 *   boundary with all input used, we return the same bytes, or -EMSGSIZE exactly when they are
 *   more than the bound; when zlib produces more than the bound, we return -EMSGSIZE;
 * - a result is stable: the same payload within exactly its length inflates again, and one
 *   byte less is -EMSGSIZE;
 * - data as a message compresses (wsp_deflate_frame()) and inflates back to itself. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <zlib.h>

#include "deflate.h"
#include "frame.h"
#include "fuzz.h"

static wsp_deflate_t *z;

enum ref { REF_OK, REF_LONG, REF_OTHER };

/* zlib's reading of p[0..len) + 00 00 ff ff into out[0..cap] (one byte more than the bound, to
 * see it overflow); *olen: bytes produced. */
static enum ref reference(const uint8_t *p, size_t len, uint8_t *out, size_t cap, size_t *olen)
{
    size_t total = len + 4, pos = 0;
    uint8_t *in = malloc(total);
    WSP_FUZZ_CHECK(in != NULL);
    memcpy(in, p, len);
    memcpy(in + len, "\x00\x00\xff\xff", 4);
    z_stream s;
    memset(&s, 0, sizeof(s));
    WSP_FUZZ_CHECK(inflateInit2(&s, -15) == Z_OK);
    enum ref res = REF_OTHER;
    *olen = 0;
    for (;;) {
        s.next_in = in + pos;
        s.avail_in = (uInt)(total - pos);
        s.next_out = out + *olen;
        s.avail_out = (uInt)(cap + 1 - *olen);
        int r = inflate(&s, Z_SYNC_FLUSH);
        *olen = cap + 1 - s.avail_out;
        pos = total - s.avail_in;
        if (*olen > cap) {
            res = REF_LONG;
            break;
        }
        if (r == Z_STREAM_END && pos < total) {
            WSP_FUZZ_CHECK(inflateReset(&s) == Z_OK); /* a new stream, no window */
            continue;
        }
        if (r == Z_STREAM_END || ((r == Z_OK || r == Z_BUF_ERROR) && pos == total &&
                                  (s.data_type & 128))) /* 128: at a block boundary */
            res = REF_OK;
        break;
    }
    inflateEnd(&s);
    free(in);
    return res;
}

static void check_against_zlib(const uint8_t *p, size_t len, size_t cap, int rv, const uint8_t *out,
                               size_t olen)
{
    uint8_t *ref = malloc(cap + 1);
    WSP_FUZZ_CHECK(ref != NULL);
    size_t rlen = 0;
    enum ref r = reference(p, len, ref, cap, &rlen);
    if (r == REF_OK) {
        WSP_FUZZ_CHECK(rv == 0);
        WSP_FUZZ_CHECK(olen == rlen && memcmp(out, ref, olen) == 0);
    } else if (r == REF_LONG) {
        WSP_FUZZ_CHECK(rv == -EMSGSIZE);
    }
    free(ref);
}

static void check_round_trip(const uint8_t *p, size_t len)
{
    wsp_msg_t *m = NULL;
    WSP_FUZZ_CHECK(wsp_deflate_frame(z, WSP_OP_BINARY, p, len, &m) == 0);
    size_t h = (m->bytes[1] & 0x7Fu) < 126 ? 2 : (m->bytes[1] & 0x7Fu) == 126 ? 4 : 10;
    uint8_t *out = malloc(len ? len : 1);
    WSP_FUZZ_CHECK(out != NULL);
    size_t olen = 0;
    WSP_FUZZ_CHECK(wsp_deflate_inflate(z, m->bytes + h, m->len - h, out, len, &olen) == 0);
    WSP_FUZZ_CHECK(olen == len && memcmp(out, p, len) == 0);
    free(out);
    wsp_msg_unref(m);
}

/* zlib's raw DEFLATE of p[0..len) in the given form into a new buffer; *clen its length. */
static uint8_t *client_form(const uint8_t *p, size_t len, unsigned form, size_t *clen)
{
    z_stream s;
    memset(&s, 0, sizeof(s));
    WSP_FUZZ_CHECK(
        deflateInit2(&s, (int)((form >> 2) & 7), Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    size_t cap = deflateBound(&s, len) + 64;
    uint8_t *c = malloc(cap);
    WSP_FUZZ_CHECK(c != NULL);
    s.next_out = c;
    s.avail_out = (uInt)cap;
    size_t half = (form & 3) == 2 ? len / 2 : len;
    s.next_in = (Bytef *)(uintptr_t)p;
    s.avail_in = (uInt)half;
    WSP_FUZZ_CHECK(deflate(&s, (form & 3) == 3 ? Z_FINISH : Z_SYNC_FLUSH) ==
                   ((form & 3) == 3 ? Z_STREAM_END : Z_OK));
    if (half < len) {
        s.avail_in = (uInt)(len - half);
        WSP_FUZZ_CHECK(deflate(&s, Z_SYNC_FLUSH) == Z_OK);
    }
    *clen = cap - s.avail_out;
    deflateEnd(&s);
    if ((form & 3) == 3) {
        c[(*clen)++] = 0x00; /* the header bits of 7.2.1's empty block */
    } else {
        WSP_FUZZ_CHECK(*clen >= 4 && memcmp(c + *clen - 4, "\x00\x00\xff\xff", 4) == 0);
        *clen -= 4;
    }
    return c;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (z == NULL) { /* one per process, as one per shard: it lives until exit */
        z = wsp_deflate_new(WSP_DEFLATE_LEVEL);
        WSP_FUZZ_CHECK(z != NULL);
    }
    if (size < 4)
        return 0;
    size_t cap = data[0] < 0x80 ? (size_t)data[0] * 64 : (size_t)data[0] - 0x80;
    unsigned form = data[1], bit = (unsigned)data[3] << 8 | data[2];
    const uint8_t *d = data + 4;
    size_t dlen = size - 4, len = dlen;
    uint8_t *p = malloc(dlen ? dlen : 1);
    WSP_FUZZ_CHECK(p != NULL);
    if (dlen)
        memcpy(p, d, dlen);
    if (form & 3) {
        free(p);
        p = client_form(d, dlen, form, &len);
    }
    if ((form & 0x80) && len > 0)
        p[(bit / 8) % len] ^= (uint8_t)(1u << (bit % 8));
    if (form & 0x40)
        len -= len / 3;
    bool intact = (form & 3) != 0 && (form & 0xC0) == 0;

    uint8_t *out = malloc(cap ? cap : 1);
    WSP_FUZZ_CHECK(out != NULL);
    size_t olen = 1234;
    int rv = wsp_deflate_inflate(z, p, len, out, cap, &olen);
    WSP_FUZZ_CHECK(rv == 0 || rv == -EMSGSIZE || rv == -EBADMSG);
    WSP_FUZZ_CHECK(rv == 0 ? olen <= cap : olen == 0);
    if (intact) {
        WSP_FUZZ_CHECK(rv == (dlen <= cap ? 0 : -EMSGSIZE));
        WSP_FUZZ_CHECK(rv < 0 || (olen == dlen && memcmp(out, d, dlen) == 0));
    }
    check_against_zlib(p, len, cap, rv, out, olen);
    if (rv == 0) {
        uint8_t *again = malloc(olen ? olen : 1);
        WSP_FUZZ_CHECK(again != NULL);
        size_t n = 0;
        WSP_FUZZ_CHECK(wsp_deflate_inflate(z, p, len, again, olen, &n) == 0);
        WSP_FUZZ_CHECK(n == olen && memcmp(again, out, n) == 0);
        if (olen > 0)
            WSP_FUZZ_CHECK(wsp_deflate_inflate(z, p, len, again, olen - 1, &n) == -EMSGSIZE);
        free(again);
    }
    free(out);
    free(p);
    check_round_trip(d, dlen);
    return 0;
}
