#include "frame.h"

#include <string.h>

size_t wsp_frame_header(uint8_t *out, unsigned opcode, uint64_t len, const uint8_t *mask)
{
    size_t n;
    out[0] = (uint8_t)(0x80u | (opcode & 0x0Fu));
    uint8_t mbit = mask ? 0x80u : 0;
    if (len < 126) {
        out[1] = (uint8_t)(mbit | len);
        n = 2;
    } else if (len <= 0xFFFF) {
        out[1] = (uint8_t)(mbit | 126);
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        n = 4;
    } else {
        out[1] = (uint8_t)(mbit | 127);
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        n = 10;
    }
    if (mask) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void wsp_frame_mask(uint8_t *p, size_t len, const uint8_t mask[4], size_t offset)
{
    for (size_t i = 0; i < len; i++)
        p[i] ^= mask[(offset + i) & 3];
}

wsp_msg_t *wsp_frame_msg(unsigned opcode, const void *payload, size_t len)
{
    uint8_t hdr[WSP_FRAME_HDR_MAX];
    size_t h = wsp_frame_header(hdr, opcode, len, NULL);
    wsp_msg_t *m = wsp_msg_new(h + len);
    if (m == NULL)
        return NULL;
    memcpy(m->bytes, hdr, h);
    if (len)
        memcpy(m->bytes + h, payload, len);
    return m;
}
