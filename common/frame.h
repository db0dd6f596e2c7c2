#ifndef WSP_FRAME_H
#define WSP_FRAME_H

/* WebSocket frame encoding (RFC 6455 section 5.2): headers, masking, and a server frame
 * encoded once into a shared message. Pure; any thread. */

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

/* RFC 6455 opcodes. */
enum {
    WSP_OP_CONT = 0x0,
    WSP_OP_TEXT = 0x1,
    WSP_OP_BINARY = 0x2,
    WSP_OP_CLOSE = 0x8,
    WSP_OP_PING = 0x9,
    WSP_OP_PONG = 0xA,
};

#define WSP_FRAME_HDR_MAX 14

/* RSV1 in a header's first byte: "compressed" under permessage-deflate (RFC 7692 section 6),
 * set on a message's first frame only. */
#define WSP_FRAME_RSV1 0x40u

/* Writes the header of a final (FIN) frame with opcode and payload length len into out
 * (>= WSP_FRAME_HDR_MAX bytes). mask non-NULL sets the mask bit and key (client frames).
 * Returns the header length, 2 to 14. Pure; any thread. */
size_t wsp_frame_header(uint8_t *out, unsigned opcode, uint64_t len, const uint8_t *mask);

/* XORs p[0..len) with mask, starting at key byte offset % 4. Pure; any thread. */
void wsp_frame_mask(uint8_t *p, size_t len, const uint8_t mask[4], size_t offset);

/* Encodes payload once as a complete unmasked server frame in a new message with one
 * reference (the caller's). Returns NULL on OOM. Any thread. */
wsp_msg_t *wsp_frame_msg(unsigned opcode, const void *payload, size_t len);

#endif
