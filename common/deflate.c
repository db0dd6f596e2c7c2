#include "deflate.h"

#include <errno.h>
#include <libdeflate.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"

struct wsp_deflate_s {
    struct libdeflate_compressor *c; /* NULL in an inflate-only context */
    struct libdeflate_decompressor *d;
    uint8_t *buf; /* scratch: compressed output, or a message's input with its tail */
    size_t cap;
};

/* What RFC 7692 section 7.2.2 appends (the rest of an empty stored block whose header bits end
 * the message), then an empty final stored block (BFINAL=1, BTYPE=00): libdeflate decodes
 * whole streams only and needs a BFINAL block to know where one ends. Stored, not an empty
 * block of fixed codes ({0x03, 0x00}, shorter): that one makes libdeflate rebuild its fixed
 * Huffman tables after every dynamic block, 6.1 instead of 4.0 us per 2 KiB zlib-compressed
 * message (CPU time, this machine, 2026-12-06). */
static const uint8_t tail[] = {0x00, 0x00, 0xff, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff};

wsp_deflate_t *wsp_deflate_new(int level)
{
    if (level < 0 || level > 12)
        return NULL;
    wsp_deflate_t *z = calloc(1, sizeof(*z));
    if (z == NULL)
        return NULL;
    z->d = libdeflate_alloc_decompressor();
    if (level > 0)
        z->c = libdeflate_alloc_compressor(level);
    if (z->d == NULL || (level > 0 && z->c == NULL)) {
        wsp_deflate_free(z);
        return NULL;
    }
    return z;
}

void wsp_deflate_free(wsp_deflate_t *z)
{
    if (z == NULL)
        return;
    libdeflate_free_compressor(z->c);
    libdeflate_free_decompressor(z->d);
    free(z->buf);
    free(z);
}

/* Grows the scratch buffer to at least n bytes; it only grows, to the largest message seen,
 * so that a steady stream of messages allocates nothing. */
static int reserve(wsp_deflate_t *z, size_t n)
{
    if (n <= z->cap)
        return 0;
    uint8_t *b = realloc(z->buf, n);
    if (b == NULL)
        return -ENOMEM;
    z->buf = b;
    z->cap = n;
    return 0;
}

/* Compresses p[0..len) into z->buf as RFC 7692 section 7.2.1 wants it; returns the length or 0
 * on OOM. */
static size_t compress_payload(wsp_deflate_t *z, const void *p, size_t len)
{
    if (len == 0) { /* section 7.2.3.6: an empty stored block's header bits alone */
        if (reserve(z, 1) < 0)
            return 0;
        z->buf[0] = 0x00;
        return 1;
    }
    size_t bound = libdeflate_deflate_compress_bound(z->c, len);
    if (bound > SIZE_MAX - 1 || reserve(z, bound + 1) < 0)
        return 0;
    size_t n = libdeflate_deflate_compress(z->c, p, len, z->buf, bound);
    if (n == 0) /* cannot happen with the bound: treat as a failed allocation */
        return 0;
    /* libdeflate ends the stream with a BFINAL=1 block, which section 7.2.3.4 allows. Section
     * 7.2.1 then appends an empty stored block and drops its 00 00 ff ff, leaving its header
     * bits: one zero byte. A receiver that resets its inflater at the end of a stream and goes
     * on (Chromium) needs that byte to read the appended 00 00 ff ff as an empty block. */
    z->buf[n++] = 0x00;
    return n;
}

int wsp_deflate_frame(wsp_deflate_t *z, unsigned opcode, const void *payload, size_t len,
                      wsp_msg_t **out)
{
    *out = NULL;
    if (z->c == NULL || (opcode != WSP_OP_TEXT && opcode != WSP_OP_BINARY))
        return -EINVAL; /* control frames are never compressed (RFC 7692 section 6.1) */
    size_t n = compress_payload(z, payload, len);
    if (n == 0)
        return -ENOMEM;
    uint8_t hdr[WSP_FRAME_HDR_MAX];
    size_t h = wsp_frame_header(hdr, opcode, n, NULL);
    hdr[0] |= WSP_FRAME_RSV1;
    /* One allocation per broadcast, shared by every deflate connection like the plain frame;
     * compressed into scratch first since the header's length depends on the output's. */
    wsp_msg_t *m = wsp_msg_new(h + n);
    if (m == NULL)
        return -ENOMEM;
    memcpy(m->bytes, hdr, h);
    memcpy(m->bytes + h, z->buf, n);
    *out = m;
    return 0;
}

int wsp_deflate_inflate(wsp_deflate_t *z, const uint8_t *in, size_t len, uint8_t *out, size_t cap,
                        size_t *out_len)
{
    *out_len = 0;
    if (len > SIZE_MAX - sizeof(tail))
        return -EMSGSIZE;
    size_t total = len + sizeof(tail);
    if (reserve(z, total) < 0)
        return -ENOMEM;
    if (len > 0)
        memcpy(z->buf, in, len);
    memcpy(z->buf + len, tail, sizeof(tail));
    size_t pos = 0, done = 0;
    /* One stream normally: the message's blocks, the completed empty stored block, our final
     * block. A sender that flushes with BFINAL=1 (section 7.2.3.4) ends a stream inside the
     * message; what follows is inflated as a new stream without the previous one's window, as
     * an inflater reset at the end of a stream would (Chromium's does). */
    do {
        size_t used_in = 0, used_out = 0;
        /* The output bound goes in up front: libdeflate stops with INSUFFICIENT_SPACE as soon
         * as one more byte would not fit, so a bomb costs at most cap bytes of work. */
        enum libdeflate_result r = libdeflate_deflate_decompress_ex(
            z->d, z->buf + pos, total - pos, out + done, cap - done, &used_in, &used_out);
        if (r == LIBDEFLATE_INSUFFICIENT_SPACE)
            return -EMSGSIZE;
        if (r != LIBDEFLATE_SUCCESS)
            return -EBADMSG;
        pos += used_in; /* >= 1: a block header is at least 3 bits */
        done += used_out;
    } while (pos < len);
    *out_len = done;
    return 0;
}
