#include "rx.h"

#include <errno.h>
#include <string.h>

#include "frame.h"

/* The frame's opcode with RSV1 kept: the caller judges it (see rx.h). */
#define RX_OPMASK (0x0Fu | WSP_FRAME_RSV1)

/* Header length implied by the first two bytes, or -EPROTO. */
static int header_check(const uint8_t *h)
{
    unsigned op = h[0] & 0x0Fu;
    if (h[0] & 0x30u) /* RSV2, RSV3: no extension of ours uses them */
        return -EPROTO;
    if (h[1] & 0x80u) /* servers never mask (RFC 6455 5.1) */
        return -EPROTO;
    unsigned l7 = h[1] & 0x7Fu;
    if (op >= 0x8) {
        if (op > 0xA || !(h[0] & 0x80u) || l7 > 125)
            return -EPROTO;
    } else if (op > 0x2) {
        return -EPROTO;
    }
    return l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
}

static int header_len(const uint8_t *h, uint64_t *plen)
{
    unsigned l7 = h[1] & 0x7Fu;
    if (l7 < 126) {
        *plen = l7;
    } else if (l7 == 126) {
        *plen = ((uint64_t)h[2] << 8) | h[3];
    } else {
        uint64_t v = 0;
        for (int i = 0; i < 8; i++)
            v = (v << 8) | h[2 + i];
        if (v >> 63)
            return -EPROTO;
        *plen = v;
    }
    return 0;
}

int wsp_rx_feed(wsp_rx_t *rx, const uint8_t *p, size_t n, wsp_rx_cb cb, void *arg)
{
    size_t i = 0;
    while (i < n) {
        if (!rx->in_payload && rx->hlen == 0 && n - i >= 2) {
            /* Fast path: the whole frame is in the buffer, hand it over in place. */
            int hl = header_check(p + i);
            if (hl < 0)
                return hl;
            if (n - i >= (size_t)hl) {
                uint64_t plen;
                if (header_len(p + i, &plen) < 0)
                    return -EPROTO;
                if (plen <= n - i - (size_t)hl) {
                    wsp_rx_frame_t f = {p[i] & RX_OPMASK, (p[i] & 0x80u) != 0, p + i + hl,
                                        (size_t)plen, plen};
                    i += (size_t)hl + (size_t)plen;
                    int rv = cb(arg, &f);
                    if (rv)
                        return rv;
                    continue;
                }
            }
        }
        if (!rx->in_payload) {
            /* Slow path: collect the header byte by byte across reads. */
            rx->hdr[rx->hlen++] = p[i++];
            if (rx->hlen < 2)
                continue;
            int hl = header_check(rx->hdr);
            if (hl < 0)
                return hl;
            if (rx->hlen < hl)
                continue;
            if (header_len(rx->hdr, &rx->plen) < 0)
                return -EPROTO;
            rx->pgot = 0;
            rx->klen = 0;
            rx->elen = 0;
            rx->in_payload = 1;
        }
        uint64_t want = rx->plen - rx->pgot;
        size_t take = (uint64_t)(n - i) < want ? n - i : (size_t)want;
        if (rx->ext) { /* all of it that fits: a compressed message is inflated whole */
            size_t k = WSP_RX_EXT - rx->elen < take ? WSP_RX_EXT - rx->elen : take;
            memcpy(rx->ext + rx->elen, p + i, k);
            rx->elen += (uint32_t)k;
        } else if (rx->klen < WSP_RX_KEEP) {
            size_t k = WSP_RX_KEEP - rx->klen < take ? WSP_RX_KEEP - rx->klen : take;
            memcpy(rx->keep + rx->klen, p + i, k);
            rx->klen = (uint8_t)(rx->klen + k);
        }
        rx->pgot += take;
        i += take;
        if (rx->pgot == rx->plen) {
            wsp_rx_frame_t f = {rx->hdr[0] & RX_OPMASK, (rx->hdr[0] & 0x80u) != 0,
                                rx->ext ? rx->ext : rx->keep, rx->ext ? rx->elen : rx->klen,
                                rx->plen};
            wsp_rx_reset(rx);
            int rv = cb(arg, &f);
            if (rv)
                return rv;
        }
    }
    return 0;
}

/* Reads digits after optional spaces, a colon and optional spaces at p[*i]. */
static int parse_value(const uint8_t *p, size_t n, size_t *i, uint64_t *out)
{
    size_t j = *i;
    while (j < n && p[j] == ' ')
        j++;
    if (j >= n || p[j] != ':')
        return -EBADMSG;
    j++;
    while (j < n && p[j] == ' ')
        j++;
    if (j >= n || p[j] < '0' || p[j] > '9')
        return -EBADMSG;
    uint64_t v = 0;
    int digits = 0;
    while (j < n && p[j] >= '0' && p[j] <= '9') {
        if (++digits > 19) /* would overflow: not a time or a seq */
            return -EBADMSG;
        v = v * 10 + (uint64_t)(p[j] - '0');
        j++;
    }
    *out = v;
    *i = j;
    return 0;
}

int wsp_rx_parse_tick(const uint8_t *p, size_t n, uint64_t *time_ms, uint64_t *seq)
{
    int have = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '"')
            continue;
        if (n - i >= 6 && memcmp(p + i, "\"time\"", 6) == 0) {
            i += 6;
            if (parse_value(p, n, &i, time_ms) < 0)
                return -EBADMSG;
            have |= 1;
        } else if (n - i >= 5 && memcmp(p + i, "\"seq\"", 5) == 0) {
            i += 5;
            if (parse_value(p, n, &i, seq) < 0)
                return -EBADMSG;
            have |= 2;
        } else {
            /* skip any other string, so a value "time" inside it cannot match */
            i++;
            while (i < n && p[i] != '"') {
                if (p[i] == '\\')
                    i++;
                i++;
            }
            continue;
        }
        if (have == 3)
            return 0;
        i--; /* the loop's i++ must not skip the byte after the value */
    }
    return -EBADMSG;
}

/* The first occurrence of needle[0..len) in p[0..n) at or after *i; its end in *i. */
static int find(const uint8_t *p, size_t n, size_t *i, const char *needle, size_t len)
{
    for (size_t j = *i; j + len <= n; j++) {
        if (p[j] == (uint8_t)needle[0] && memcmp(p + j, needle, len) == 0) {
            *i = j + len;
            return 0;
        }
    }
    return -EBADMSG;
}

int wsp_rx_parse_framed(const uint8_t *p, size_t n, uint64_t *time_ms, uint64_t *seq)
{
    size_t i = 0;
    /* {"ch":"<name>","seq":<n>,"data":"...": a channel name holds no quote. */
    if (n < 8 || memcmp(p, "{\"ch\":\"", 7) != 0)
        return -EBADMSG;
    i = 7;
    while (i < n && p[i] != '"')
        i++;
    if (find(p, n, &i, "\"seq\"", 5) < 0 || parse_value(p, n, &i, seq) < 0)
        return -EBADMSG;
    if (find(p, n, &i, "\\\"time\\\":", 9) < 0)
        return -EBADMSG;
    i--; /* parse_value wants the colon */
    return parse_value(p, n, &i, time_ms);
}

int wsp_rx_parse_hello(const uint8_t *p, size_t n, wsp_rx_hello_t *h)
{
    memset(h, 0, sizeof(*h));
    size_t i = 0;
    if (n < 11 || memcmp(p, "{\"epoch\":\"", 10) != 0)
        return -EBADMSG;
    i = 10;
    size_t e = 0;
    while (i < n && p[i] != '"' && e < sizeof(h->epoch) - 1)
        h->epoch[e++] = (char)p[i++];
    if (i >= n || p[i] != '"' || find(p, n, &i, "\"top\":{", 7) < 0)
        return -EBADMSG;
    size_t j = i;
    if (find(p, n, &j, "\":", 2) == 0 && j < n && p[j] >= '0' && p[j] <= '9') {
        j--;
        h->known = parse_value(p, n, &j, &h->top) == 0;
    }
    if (find(p, n, &i, "\"recovered\":{", 13) < 0)
        return 0; /* nothing was asked */
    for (; i < n && p[i] != '}'; i++) {
        if (n - i >= 4 && memcmp(p + i, "true", 4) == 0)
            h->recovered++;
        else if (n - i >= 5 && memcmp(p + i, "false", 5) == 0)
            h->refused++;
    }
    return 0;
}
