#include "ws.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "frame.h"
#include "utf8.h"

/* wslay parses payloads (unmasking, UTF-8, close codes) and writes pong/close replies. Frame
 * headers are also followed here, byte by byte, for three reasons:
 * - idle detection: wslay has no "idle" query, and its context costs ~8.7 KB per connection
 *   (obuf[4096] + ibuf[4096]). wslay reads until our recv callback comes up short, so once a
 *   feed returns it has consumed every byte we gave it; if the byte stream ends at a frame
 *   boundary, outside a fragmented message, with no reply queued, it holds nothing we need
 *   and is freed.
 * - header errors: wslay 1.1.1's frame layer answers a fragmented or >125-byte control frame
 *   and a non-minimal length with an empty close (no 1002) and WSLAY_ERR_CALLBACK_FAILURE,
 *   and echoes a 1-byte close as an empty close. Checking headers first, and handing wslay
 *   only the bytes before a bad header, lets us queue the right code ourselves.
 * - close reasons: wslay skips the first two bytes of every payload chunk when it checks a
 *   close reason's UTF-8, so a close split across reads gets a false 1007 or has an invalid
 *   reason echoed. An incomplete close frame (131 bytes at most) is held back until whole. */
#define WS_CLOSE_FRAME_MAX (2 + 4 + 125)

struct wsp_ws_s {
    wslay_event_context_ptr ctx; /* NULL when idle (then so is this struct) or once closed */
    /* The cursor: set only while wsp_ws_feed() runs, so callbacks never see stale pointers.
     * wslay reads the last pre_len bytes of held first, then in[0..in_len). */
    size_t pre_len;
    const uint8_t *in;
    size_t in_len;
    wsp_ws_write_fn write;
    wsp_ws_text_fn text; /* NULL: text messages are dropped unread */
    void *user;
    uint8_t *tbuf;    /* the text message being joined for text; only while one arrives */
    uint16_t tlen;    /* its bytes so far */
    bool msg_text;    /* the data message in progress is text (and text is set) */
    bool frame_text;  /* the frame in progress belongs to it */
    int werr;         /* what write returned when it failed; 0 otherwise */
    uint64_t rem;     /* payload bytes of the current frame not yet seen */
    uint32_t msg_len; /* payload bytes so far of the fragmented data message in progress */
    uint32_t frags;   /* frames so far of that message */
    uint8_t hdr[10];  /* the current header up to its extended length (the mask key is skipped) */
    uint8_t hdr_len;  /* header bytes seen, mask key included; 0 at a frame boundary */
    bool in_msg;      /* a data message is fragmented: only continuations may follow */
    bool closed;      /* a close was written or the sink failed: the peer is ignored */
    uint8_t held_len; /* bytes of an incomplete close frame in held, kept from wslay */
    uint8_t held[WS_CLOSE_FRAME_MAX];
    /* permessage-deflate (issue #19); pmd is NULL unless negotiated, and set for each feed.
     * scan() runs ahead of wslay, so each keeps its own view of the message in progress. */
    wsp_ws_pmd_t *pmd;
    bool zscan;    /* scan(): the data message in progress came with RSV1 */
    bool zin;      /* wslay: the data message it reads is compressed */
    bool zctrl;    /* wslay: the frame it reads is a control frame */
    uint32_t zlen; /* compressed bytes of that message so far, in zbuf */
    uint8_t *zbuf; /* WSP_WS_MAX_ZMSG bytes, allocated with the first compressed byte */
};

enum { WS_CLOSE_PROTOCOL = 1002, WS_CLOSE_INVALID_UTF8 = 1007, WS_CLOSE_TOO_BIG = 1009 };

static ssize_t on_wslay_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                             void *user_data)
{
    (void)flags;
    wsp_ws_t *ws = user_data;
    if (ws->pre_len + ws->in_len == 0) { /* input exhausted: wslay_event_recv() returns */
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    /* As much as fits in one go: wslay stops reading after a short read that leaves a header
     * incomplete, so a short read must only ever mean "nothing more". */
    size_t n = len < ws->pre_len ? len : ws->pre_len;
    memcpy(buf, ws->held + ws->held_len - ws->pre_len, n);
    ws->pre_len -= n;
    size_t m = len - n < ws->in_len ? len - n : ws->in_len;
    if (m) {
        memcpy(buf + n, ws->in, m);
        ws->in += m;
        ws->in_len -= m;
    }
    return (ssize_t)(n + m);
}

static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len,
                             int flags, void *user_data)
{
    (void)flags;
    wsp_ws_t *ws = user_data;
    int rv = ws->write(ws->user, data, len); /* the sink takes all or fails: no short writes */
    if (rv < 0) {
        ws->werr = rv;
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

/* With no buffering, wslay hands data payloads over in chunks (already unmasked; UTF-8
 * checked unless compressed). A message is kept only when someone reads it: a compressed one
 * (permessage-deflate, issue #19) in zbuf, inflated once complete; a text one for the text
 * sink (token refresh, issue #16) in tbuf. scan() bounds both before wslay sees a byte. */
static void on_wslay_frame_start(wslay_event_context_ptr ctx,
                                 const struct wslay_event_on_frame_recv_start_arg *arg,
                                 void *user_data)
{
    (void)ctx;
    wsp_ws_t *ws = user_data;
    ws->zctrl = (arg->opcode & 0x08u) != 0;
    if (!ws->zctrl && arg->opcode != WSLAY_CONTINUATION_FRAME) { /* a data message starts */
        ws->zin = ws->pmd != NULL && (arg->rsv & WSLAY_RSV1_BIT) != 0;
        ws->zlen = 0;
        ws->msg_text = ws->text != NULL && arg->opcode == WSLAY_TEXT_FRAME;
        ws->tlen = 0;
    }
    /* A control frame between two fragments is not part of the message. */
    ws->frame_text = ws->msg_text && !ws->zctrl;
}

/* Appends p[0..n) to *buf (cap bytes, allocated on first use) at *len. 0 or -ENOMEM. */
static int ws_keep(uint8_t **buf, size_t cap, const uint8_t *p, size_t n, size_t *len)
{
    /* Only while such a message arrives: costs one connection if it fails. */
    if (*buf == NULL && (*buf = malloc(cap)) == NULL)
        return -ENOMEM;
    if (n > cap - *len)
        n = cap - *len; /* unreachable: scan() closed a longer message with 1009 first */
    memcpy(*buf + *len, p, n);
    *len += n;
    return 0;
}

static void on_wslay_chunk(wslay_event_context_ptr ctx,
                           const struct wslay_event_on_frame_recv_chunk_arg *arg, void *user_data)
{
    wsp_ws_t *ws = user_data;
    if (ws->zctrl || arg->data_length == 0 || ws->werr < 0 || !(ws->zin || ws->frame_text))
        return;
    size_t len = ws->zin ? ws->zlen : ws->tlen;
    int rv = ws->zin ? ws_keep(&ws->zbuf, WSP_WS_MAX_ZMSG, arg->data, arg->data_length, &len)
                     : ws_keep(&ws->tbuf, WSP_WS_MAX_MSG, arg->data, arg->data_length, &len);
    if (rv < 0) {
        ws->werr = rv;
        wslay_event_shutdown_read(ctx);
        ws->frame_text = ws->msg_text = false;
        return;
    }
    if (ws->zin)
        ws->zlen = (uint32_t)len;
    else
        ws->tlen = (uint16_t)len;
}

/* Inflates the compressed message in zbuf into out (WSP_WS_MAX_MSG bytes, which bounds a
 * bomb); returns 0 with *n set, a close code or -ENOMEM. */
static int ws_inflate(wsp_ws_t *ws, unsigned opcode, uint8_t *out, size_t *n)
{
    wsp_ws_pmd_t *pmd = ws->pmd;
    if (pmd->z == NULL && (pmd->z = wsp_deflate_new(0)) == NULL) /* 11 KiB, once per shard */
        return -ENOMEM;
    *n = 0;
    int rv = wsp_deflate_inflate(pmd->z, ws->zbuf, ws->zlen, out, WSP_WS_MAX_MSG, n);
    ws->zlen = 0;
    if (rv == -EMSGSIZE)
        return WS_CLOSE_TOO_BIG;
    if (rv == -EBADMSG) /* RFC 7692 section 8: fail the connection */
        return WS_CLOSE_PROTOCOL;
    if (rv < 0)
        return rv;
    pmd->inflated++;
    /* wslay skips UTF-8 checks on compressed text: the inflated text is checked here. */
    return opcode == WSP_OP_TEXT && !wsp_utf8_valid(out, *n) ? WS_CLOSE_INVALID_UTF8 : 0;
}

/* A whole data message: inflated if compressed, then a text one handed to the sink. */
static void on_wslay_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg,
                         void *user_data)
{
    wsp_ws_t *ws = user_data;
    if ((arg->opcode & 0x08u) || ws->werr < 0)
        return; /* control frames: wslay answers them */
    int code = 0;
    if (arg->rsv & WSLAY_RSV1_BIT) {
        uint8_t out[WSP_WS_MAX_MSG];
        size_t n;
        code = ws_inflate(ws, arg->opcode, out, &n);
        if (code == 0 && ws->msg_text)
            code = ws->text(ws->user, out, n);
    } else if (ws->msg_text) {
        code = ws->text(ws->user, ws->tbuf ? ws->tbuf : (const uint8_t *)"", ws->tlen);
    }
    free(ws->tbuf);
    ws->tbuf = NULL;
    ws->tlen = 0;
    ws->msg_text = ws->frame_text = false;
    if (code == 0)
        return;
    /* Not a close from inside wslay: a close frame queued (ours, or the sink's verdict), and
     * nothing more is read. */
    wslay_event_shutdown_read(ctx);
    if (code < 0) {
        ws->werr = code;
        return;
    }
    int rv = wslay_event_queue_close(ctx, (uint16_t)code, NULL, 0);
    (void)rv; /* NO_MORE_MSG: a close is queued already and wins; NOMEM: closed without one */
}

/* wslay copies this into each context; one table for all connections. */
static const struct wslay_event_callbacks wsp_ws_callbacks = {
    .recv_callback = on_wslay_recv,
    .send_callback = on_wslay_send,
    .on_frame_recv_start_callback = on_wslay_frame_start,
    .on_frame_recv_chunk_callback = on_wslay_chunk,
    .on_msg_recv_callback = on_wslay_msg,
};

static int wslay_to_errno(int rv)
{
    switch (rv) {
    case WSLAY_ERR_NOMEM:
        return -ENOMEM;
    case WSLAY_ERR_WANT_READ:
    case WSLAY_ERR_WANT_WRITE:
    case WSLAY_ERR_WOULDBLOCK:
        return -EAGAIN;
    case WSLAY_ERR_INVALID_ARGUMENT:
    case WSLAY_ERR_INVALID_CALLBACK:
        return -EINVAL;
    case WSLAY_ERR_NO_MORE_MSG:
        return -ESHUTDOWN;
    default: /* WSLAY_ERR_PROTO, or CALLBACK_FAILURE from wslay's frame layer: not our sink */
        return -EPROTO;
    }
}

static size_t hdr_ext_len(const wsp_ws_t *ws)
{
    unsigned l7 = ws->hdr[1] & 0x7Fu;
    return l7 == 126 ? 2 : l7 == 127 ? 8 : 0;
}

static uint64_t hdr_payload_len(const wsp_ws_t *ws)
{
    size_t ext = hdr_ext_len(ws);
    if (ext == 0)
        return ws->hdr[1] & 0x7Fu;
    uint64_t len = 0;
    for (size_t i = 0; i < ext; i++)
        len = len << 8 | ws->hdr[2 + i];
    return len;
}

/* Checks what the first two header bytes say; returns 0 or a close code. */
static int check_hdr_start(const wsp_ws_t *ws)
{
    unsigned fin = ws->hdr[0] & 0x80u, op = ws->hdr[0] & 0x0Fu, l7 = ws->hdr[1] & 0x7Fu;
    /* RSV1 means "compressed" on a data message's first frame once permessage-deflate is
     * negotiated (RFC 7692 section 6); any other RSV bit is an extension we never agreed to. */
    unsigned rsv_ok = ws->pmd && (op == WSP_OP_TEXT || op == WSP_OP_BINARY) ? WSP_FRAME_RSV1 : 0;
    if ((ws->hdr[0] & 0x70u & ~rsv_ok) || !(ws->hdr[1] & 0x80u)) /* bad RSV; unmasked */
        return WS_CLOSE_PROTOCOL;
    switch (op) {
    case WSP_OP_CONT:
        return ws->in_msg ? 0 : WS_CLOSE_PROTOCOL;
    case WSP_OP_TEXT:
    case WSP_OP_BINARY:
        return ws->in_msg ? WS_CLOSE_PROTOCOL : 0;
    case WSP_OP_CLOSE: /* a control frame fits one unfragmented frame; a close code is two bytes */
        return fin && l7 <= 125 && l7 != 1 ? 0 : WS_CLOSE_PROTOCOL;
    case WSP_OP_PING:
    case WSP_OP_PONG:
        return fin && l7 <= 125 ? 0 : WS_CLOSE_PROTOCOL;
    default:
        return WS_CLOSE_PROTOCOL; /* reserved opcode */
    }
}

/* Checks the payload length once known; returns 0 or a close code. */
static int check_hdr_len(const wsp_ws_t *ws)
{
    size_t ext = hdr_ext_len(ws);
    uint64_t len = hdr_payload_len(ws);
    if ((ext == 2 && len < 126) || (ext == 8 && (len <= 0xFFFF || len >> 63)))
        return WS_CLOSE_PROTOCOL; /* RFC 6455 5.2: the minimal length encoding, MSB 0 */
    /* A compressed message may take a little more on the wire; inflating checks 4 KiB. */
    bool z = ws->in_msg ? ws->zscan : (ws->hdr[0] & WSP_FRAME_RSV1) != 0;
    uint64_t max = z ? WSP_WS_MAX_ZMSG : WSP_WS_MAX_MSG;
    if (!(ws->hdr[0] & 0x08u) && len > max - (uint64_t)ws->msg_len)
        return WS_CLOSE_TOO_BIG; /* data frame: counts toward the whole message */
    if (!(ws->hdr[0] & 0x08u) && ws->in_msg && ws->frags >= WSP_WS_MAX_FRAGMENTS)
        return WS_CLOSE_TOO_BIG; /* a continuation past the fragment cap */
    return 0;
}

/* What scan() found. */
struct scan_res {
    size_t used;  /* bytes followed: all, or up to the end of a ping or a bad header's byte */
    int code;     /* 0, or the close code for the first bad header (scanning stops there) */
    size_t start; /* offset of the last frame that began in p: the bad one if code */
    bool fresh;   /* a frame began in p, so the one in progress before it has ended */
};

/* Follows frame boundaries over p[0..n), checking each header as soon as wslay could. Stops
 * after a ping: wslay drops queued pongs once it queues a close, so a ping's pong is written
 * before the frames after it are parsed, whatever the read boundaries. */
static struct scan_res scan(wsp_ws_t *ws, const uint8_t *p, size_t n)
{
    struct scan_res r = {.used = n};
    size_t i = 0;
    while (i < n) {
        if (ws->rem > 0) {
            size_t k = ws->rem < n - i ? (size_t)ws->rem : n - i;
            ws->rem -= k;
            i += k;
        } else {
            if (ws->hdr_len == 0) {
                r.start = i;
                r.fresh = true;
            }
            if (ws->hdr_len < sizeof(ws->hdr))
                ws->hdr[ws->hdr_len] = p[i];
            ws->hdr_len++;
            i++;
            if (ws->hdr_len < 2)
                continue;
            size_t ext = hdr_ext_len(ws);
            int code = 0;
            if (ws->hdr_len == 2)
                code = check_hdr_start(ws);
            if (code == 0 && ws->hdr_len == 2 + ext)
                code = check_hdr_len(ws);
            if (code) {
                r.code = code;
                r.used = i;
                return r;
            }
            if (ws->hdr_len < 2 + ext + 4) /* mask key still to come */
                continue;
            ws->rem = hdr_payload_len(ws);
            ws->hdr_len = 0;
            if (!(ws->hdr[0] & 0x08u)) { /* data frame: track the message it belongs to */
                if (!ws->in_msg)
                    ws->zscan = (ws->hdr[0] & WSP_FRAME_RSV1) != 0;
                ws->frags = ws->in_msg ? ws->frags + 1 : 1;
                ws->in_msg = !(ws->hdr[0] & 0x80u);
                ws->msg_len = ws->in_msg ? ws->msg_len + (uint32_t)ws->rem : 0;
                if (!ws->in_msg)
                    ws->frags = 0;
            }
        }
        if (ws->hdr_len == 0 && ws->rem == 0 && (ws->hdr[0] & 0x0Fu) == WSP_OP_PING && i < n) {
            r.used = i;
            return r;
        }
    }
    return r;
}

/* Frees the wslay context and ignores the peer from now on; the small struct stays. */
static void ws_shut(wsp_ws_t *ws)
{
    wslay_event_context_free(ws->ctx);
    ws->ctx = NULL;
    ws->closed = true;
}

static int ws_new(wsp_ws_t **out, bool pmd)
{
    /* Per connection, only while a frame is incomplete: costs one connection on failure. */
    wsp_ws_t *ws = calloc(1, sizeof(*ws));
    if (ws == NULL)
        return -ENOMEM;
    if (wslay_event_context_server_init(&ws->ctx, &wsp_ws_callbacks, ws) != 0) {
        free(ws);
        return -ENOMEM; /* its only failures are allocations (-1 from the frame context) */
    }
    /* No message buffering: scan() enforces WSP_WS_MAX_MSG and messages are dropped anyway,
     * so wslay allocates nothing per data frame. It still checks UTF-8 and buffers control
     * frames. The limit is a backstop (per frame when not buffering). With permessage-deflate
     * wslay also lets RSV1 through, on a message's first data frame only (never a control
     * frame or a continuation), and skips the UTF-8 check of compressed text. */
    wslay_event_config_set_no_buffering(ws->ctx, 1);
    wslay_event_config_set_max_recv_msg_length(ws->ctx, pmd ? WSP_WS_MAX_ZMSG : WSP_WS_MAX_MSG);
    if (pmd)
        wslay_event_config_set_allowed_rsv_bits(ws->ctx, WSLAY_RSV1_BIT);
    *out = ws;
    return 0;
}

/* Runs wslay over p[0..r->used), just followed by scan(); returns 0 or a WSLAY_ERR_*. wslay's
 * input stops before a bad header and before a close frame still incomplete (hold); held
 * bytes go first once their close frame is whole (a frame began after it, or the stream sits
 * at a boundary). */
static int run_wslay(wsp_ws_t *ws, const uint8_t *p, const struct scan_res *r, bool in_frame,
                     bool hold)
{
    ws->pre_len = ws->held_len > 0 && (r->fresh || !in_frame) ? ws->held_len : 0;
    ws->in = p;
    ws->in_len = r->code || hold ? (r->fresh ? r->start : 0) : r->used;
    bool pre = ws->pre_len > 0;
    int rv = wslay_event_recv(ws->ctx);
    if (pre)
        ws->held_len = 0; /* handed over whole */
    if (rv == 0)
        rv = wslay_event_send(ws->ctx);
    if (rv == 0 && r->code) {
        /* NO_MORE_MSG: wslay already queued a close for an earlier frame; that one wins. */
        rv = wslay_event_queue_close(ws->ctx, (uint16_t)r->code, NULL, 0);
        if (rv == 0 || rv == WSLAY_ERR_NO_MORE_MSG)
            rv = wslay_event_send(ws->ctx);
    }
    ws->pre_len = 0;
    ws->in = NULL;
    ws->in_len = 0;
    return rv;
}

/* Fast path for the answers to our pings: whole masked pongs (FIN, no RSV, <= 125 bytes) at
 * a frame boundary need no parser state, which would cost a wslay context (~8.7 KB allocated
 * and zeroed) per pong. A pong's payload needs no validation. Returns how many bytes at the
 * start of buf are such pongs. */
static size_t skip_pongs(const uint8_t *buf, size_t len)
{
    size_t skip = 0;
    while (len - skip >= 6 && buf[skip] == (0x80u | WSP_OP_PONG) && (buf[skip + 1] & 0x80u) &&
           (buf[skip + 1] & 0x7Fu) <= 125 && len - skip >= 6u + (buf[skip + 1] & 0x7Fu))
        skip += 6u + (buf[skip + 1] & 0x7Fu);
    return skip;
}

int wsp_ws_feed(wsp_ws_t **wsp, const uint8_t *buf, size_t len, wsp_ws_write_fn write,
                wsp_ws_text_fn text, void *user, wsp_ws_pmd_t *pmd, int *close_code)
{
    if (close_code)
        *close_code = 0;
    wsp_ws_t *ws = *wsp;
    if (ws != NULL && ws->closed)
        return WSP_WS_CLOSE; /* a close was written: what the peer sends now is moot */
    if (len == 0)
        return WSP_WS_OK;
    if (ws == NULL) {
        size_t skip = skip_pongs(buf, len);
        if (skip == len)
            return WSP_WS_OK;
        buf += skip; /* the rest starts at a frame boundary */
        len -= skip;
        int rv = ws_new(&ws, pmd != NULL);
        if (rv < 0)
            return rv;
        *wsp = ws;
    }

    ws->write = write;
    ws->text = text;
    ws->user = user;
    ws->pmd = pmd;
    ws->werr = 0;
    size_t off = 0;
    struct scan_res sr;
    bool in_frame, hold;
    int rv;
    for (;;) { /* one round per ping, see scan() */
        sr = scan(ws, buf + off, len - off);
        in_frame = ws->hdr_len > 0 || ws->rem > 0;
        hold = !sr.code && in_frame && (ws->hdr[0] & 0x0Fu) == WSP_OP_CLOSE;
        rv = run_wslay(ws, buf + off, &sr, in_frame, hold);
        if (rv < 0 || sr.code || off + sr.used == len || !wslay_event_get_read_enabled(ws->ctx))
            break;
        off += sr.used;
    }
    ws->write = NULL;
    ws->text = NULL;
    ws->user = NULL;
    ws->pmd = NULL;

    if (ws->werr < 0) {
        ws_shut(ws);
        return ws->werr;
    }
    if (rv < 0) {
        ws_shut(ws);
        return wslay_to_errno(rv);
    }
    if (wslay_event_get_close_sent(ws->ctx)) {
        unsigned code = wslay_event_get_status_code_sent(ws->ctx);
        if (close_code) /* 1005 is wslay's "no code in the frame": we echoed an empty close */
            *close_code = code == WSLAY_CODE_NO_STATUS_RCVD ? 0 : (int)code;
        ws_shut(ws);
        return WSP_WS_CLOSE;
    }
    if (hold) {
        size_t from = off + (sr.fresh ? sr.start : 0);
        if (sr.fresh)
            ws->held_len = 0;
        if (ws->held_len + (len - from) > sizeof(ws->held)) { /* scan() bounds close frames */
            ws_shut(ws);
            return -EPROTO;
        }
        memcpy(ws->held + ws->held_len, buf + from, len - from);
        ws->held_len = (uint8_t)(ws->held_len + (len - from));
        return WSP_WS_OK;
    }
    ws->held_len = 0;
    if (!in_frame && !ws->in_msg && wslay_event_get_queued_msg_count(ws->ctx) == 0) {
        wsp_ws_free(ws); /* idle again: an idle connection owns no wslay state */
        *wsp = NULL;
    }
    return WSP_WS_OK;
}

void wsp_ws_free(wsp_ws_t *ws)
{
    if (ws == NULL)
        return;
    wslay_event_context_free(ws->ctx);
    free(ws->tbuf);
    free(ws->zbuf);
    free(ws);
}
