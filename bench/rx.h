#ifndef WSP_RX_H
#define WSP_RX_H

#include <stddef.h>
#include <stdint.h>

/* Client-side reader of server frames (RFC 6455): unmasked, any length. Complete frames are
 * handed over in place; a frame split across reads is carried in a wsp_rx_t that keeps the
 * header and the first WSP_RX_KEEP payload bytes (enough for a tick message and for any
 * control frame) and skips the rest, or, given a buffer (ext), all of it up to WSP_RX_EXT
 * bytes: a compressed message can only be inflated whole. RSV1 is passed on in the opcode,
 * for the caller to judge (it means "compressed" once permessage-deflate is negotiated, and
 * is an error otherwise): judging it here would cost the plain path a test per read. Pure,
 * no allocation, no logging. */
#define WSP_RX_KEEP 125u
#define WSP_RX_EXT (16u * 1024)

typedef struct wsp_rx_frame_s {
    unsigned opcode; /* with WSP_FRAME_RSV1 (0x40) or'ed in when the frame had RSV1 set */
    int fin;
    const uint8_t *payload; /* the payload, or its first WSP_RX_KEEP bytes if it was split */
    size_t len;             /* bytes at payload */
    uint64_t full_len;      /* the frame's payload length */
} wsp_rx_frame_t;

typedef struct wsp_rx_s {
    uint64_t plen, pgot; /* payload length and bytes seen, once the header is complete */
    uint8_t *ext;        /* NULL, or WSP_RX_EXT bytes of the caller's for a split frame */
    uint32_t elen;       /* payload bytes kept in ext */
    uint8_t hdr[14];
    uint8_t hlen; /* header bytes collected */
    uint8_t in_payload;
    uint8_t klen; /* payload bytes kept */
    uint8_t keep[WSP_RX_KEEP];
} wsp_rx_t;

/* Called for each complete frame; a non-zero return stops wsp_rx_feed(), which returns it. */
typedef int (*wsp_rx_cb)(void *arg, const wsp_rx_frame_t *f);

/* Starts rx at a frame boundary; ext is left as it is: the caller sets it (NULL or a
 * buffer) before the first feed. */
static inline void wsp_rx_reset(wsp_rx_t *rx)
{
    rx->hlen = 0;
    rx->in_payload = 0;
    rx->klen = 0;
}

/* Whether rx is between frames (nothing carried over). */
static inline int wsp_rx_idle(const wsp_rx_t *rx) { return rx->hlen == 0 && !rx->in_payload; }

/* Feeds n bytes; calls cb for every frame completed. Returns 0, -EPROTO for a frame a
 * server must not send (RSV2 or RSV3, mask bit, unknown opcode, a fragmented or long control
 * frame, a length with the top bit set), or cb's non-zero return. After an error rx is
 * undefined: reset it or drop the connection. */
int wsp_rx_feed(wsp_rx_t *rx, const uint8_t *p, size_t n, wsp_rx_cb cb, void *arg);

/* Finds "time":<digits> and "seq":<digits> in a JSON object, in any order, with optional
 * spaces. Returns 0 and both values, or -EBADMSG. Not a JSON parser: enough for ticks. */
int wsp_rx_parse_tick(const uint8_t *p, size_t n, uint64_t *time_ms, uint64_t *seq);

/* The same for a wspush.v1 message {"ch":..,"seq":<n>,"data":"{\"time\":<t>,...}"}: seq
 * is the message's number in its channel (the first "seq" outside the data string), time the
 * tick's inside it (escaped quotes). Returns 0, or -EBADMSG (also for "seq":null). */
int wsp_rx_parse_framed(const uint8_t *p, size_t n, uint64_t *time_ms, uint64_t *seq);

/* What a wspush.v1 hello {"epoch":"E","top":{"c":<n>|null,...},"recovered":{"c":true,...}}
 * says: the epoch (up to 32 bytes, NUL-terminated), the first channel's top (known 0 for
 * null), and how many channels it reports recovered and not. */
typedef struct wsp_rx_hello_s {
    char epoch[33];
    uint64_t top;
    int known;
    unsigned recovered, refused;
} wsp_rx_hello_t;

/* Parses a hello into *h. Returns 0 or -EBADMSG (not a hello). */
int wsp_rx_parse_hello(const uint8_t *p, size_t n, wsp_rx_hello_t *h);

#endif
