#ifndef WSP_FRAMED_H
#define WSP_FRAMED_H

/* The wspush.v1 subprotocol as bytes (issue #17): what a client that offered it receives
 * and what its resume query says. A message: {"ch":"<channel>","seq":<n>,"data":"<payload as
 * a JSON string>"} ("seq":null for a message published without a sequence number); before
 * any message, one hello: {"epoch":"E","top":{"a":57,"b":null},"recovered":{"a":true}}; the
 * resume query: ?since=a:41,b:7&epoch=E. Pure: no state, no I/O, no logging; any thread. */

#include <stddef.h>
#include <stdint.h>

#include "channels.h"
#include "msg.h"

/* The subprotocol token a client offers in Sec-WebSocket-Protocol. */
#define WSP_FRAMED_PROTOCOL "wspush.v1"
/* An epoch is 1..32 of [A-Za-z0-9_-]: opaque to clients, never needs escaping. */
#define WSP_FRAMED_EPOCH_MAX 32

/* The framed payload's exact length for a message of len bytes on channel chan[0..chan_len)
 * (its name, "time" for the default channel) numbered seq (0: none, "seq":null). p must be
 * valid UTF-8 (every published payload is checked before it gets here). Pure. */
size_t wsp_framed_len(size_t chan_len, uint64_t seq, const uint8_t *p, size_t len);

/* Writes that payload into out (wsp_framed_len() bytes) and returns its length. Pure. */
size_t wsp_framed_write(uint8_t *out, const char *chan, size_t chan_len, uint64_t seq,
                        const uint8_t *p, size_t len);

/* The framed message as a complete text frame in a new message with one reference (the
 * caller's), or NULL on OOM. One allocation per broadcast and process (shared by every
 * framed connection), or per message a recovery fetched from Redis. Any thread. */
wsp_msg_t *wsp_framed_msg(const char *chan, size_t chan_len, uint64_t seq, const uint8_t *p,
                          size_t len);

/* One channel of a hello: its name, its top (known 0: unknown, "null") and, when the client
 * asked to resume it, whether it was recovered. */
typedef struct wsp_framed_top_s {
    const char *name;
    size_t len;
    uint64_t top;
    uint8_t known;     /* top is this server's position in the channel */
    uint8_t resumed;   /* the client sent a since= for it: "recovered" says how it went */
    uint8_t recovered; /* every message after its since follows the hello */
} wsp_framed_top_t;

/* The hello as a complete text frame in a new message with one reference, or NULL on OOM:
 * {"epoch":"<epoch>","top":{...}} and, when any channel was resumed, "recovered":{...}.
 * Names are channel names (no escaping needed); epoch is at most WSP_FRAMED_EPOCH_MAX valid
 * bytes (wsp_framed_epoch_valid()). One allocation per framed connection. Any thread. */
wsp_msg_t *wsp_framed_hello(const char *epoch, const wsp_framed_top_t *v, unsigned n);

/* 1 when e[0..len) is a valid epoch: 1..WSP_FRAMED_EPOCH_MAX of [A-Za-z0-9_-]. Pure. */
int wsp_framed_epoch_valid(const char *e, size_t len);

/* Writes a fresh random epoch (16 lowercase hex digits and a NUL) into out. Returns 0 or a
 * negative errno (getrandom failed). Any thread. */
int wsp_framed_epoch_new(char out[17]);

/* What a resume query asks: a since per channel, and the epoch it is in. */
typedef struct wsp_framed_resume_s {
    unsigned n; /* 0: no since= */
    struct {
        const char *name; /* points into the query */
        size_t len;
        uint64_t since; /* the last seq the client has of this channel */
    } v[WSP_CHANNELS_MAX];
    const char *epoch; /* into the query; NULL when absent */
    size_t epoch_len;
} wsp_framed_resume_t;

/* Parses the resume parameters of a query string (without '?'; NULL/0 = none): `since` is a
 * comma-separated list of 1..WSP_CHANNELS_MAX CHANNEL:SEQ items (a channel name may hold ':':
 * the last one splits; SEQ is decimal, at most 19 digits), each channel at most once; `epoch`
 * is a valid epoch and required with since. Other parameters are ignored. Returns 0 or
 * -EINVAL (malformed, repeated parameter, since without epoch); *out is written only on
 * success. Pure. */
int wsp_framed_parse_resume(const char *query, size_t len, wsp_framed_resume_t *out);

#endif
