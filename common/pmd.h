#ifndef WSP_PMD_H
#define WSP_PMD_H

/* permessage-deflate negotiation (RFC 7692 section 7.1) over Sec-WebSocket-Extensions values
 * (RFC 6455 section 9.1). Used by the server to answer an offer and by the load generator to
 * make one and check the answer. Pure: no allocation, no I/O, any thread.
 *
 * The server always answers server_no_context_takeover (every connection shares one compressed
 * frame per broadcast) and client_no_context_takeover (a client message inflates without state
 * kept between messages), so every valid offer can be honoured: server_max_window_bits=N is
 * honoured by compressing only payloads of at most 2^N bytes (wsp_pmd_fits()), and
 * client_max_window_bits is left out of the answer (the client may then use any window: we
 * inflate one whole message at a time, which any window allows). */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* client_max_window_bits given without a value (allowed in an offer, not in an answer). */
#define WSP_PMD_BITS_NOVALUE 1

/* permessage-deflate elements kept per list; more are counted but not stored. */
#define WSP_PMD_MAX_ELEMS 8

/* One permessage-deflate element (an offer, or an answer) as parsed. */
typedef struct wsp_pmd_params_s {
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 8..15, 0 when absent */
    uint8_t client_max_window_bits; /* 8..15, WSP_PMD_BITS_NOVALUE, 0 when absent */
    bool bad; /* an unknown, duplicated or invalid parameter: decline (or fail an answer) */
} wsp_pmd_params_t;

/* Sec-WebSocket-Extensions as parsed so far: its permessage-deflate elements in order. */
typedef struct wsp_pmd_list_s {
    wsp_pmd_params_t elem[WSP_PMD_MAX_ELEMS]; /* the first WSP_PMD_MAX_ELEMS of them */
    unsigned n_pmd;   /* permessage-deflate elements seen (may exceed WSP_PMD_MAX_ELEMS) */
    unsigned n_other; /* elements naming another extension */
} wsp_pmd_list_t;

/* What was agreed for one connection. */
typedef struct wsp_pmd_s {
    bool on; /* permessage-deflate is in use: RSV1 means compressed */
    bool server_no_context_takeover;
    bool client_no_context_takeover;
    uint8_t server_max_window_bits; /* 8..15: the window of server-to-client messages */
    uint8_t client_max_window_bits; /* 8..15: the window of client-to-server messages */
} wsp_pmd_t;

/* Empties l before the first wsp_pmd_parse(). Pure; any thread. */
void wsp_pmd_init(wsp_pmd_list_t *l);

/* Parses one Sec-WebSocket-Extensions field value v[0..len) and appends its elements to l;
 * several header lines are parsed one after the other, as one comma-joined value. Empty list
 * elements (and an empty value) are ignored (RFC 7230 section 7). Returns 0, or -EBADMSG when
 * the value breaks RFC 6455 section 9.1's grammar (the server answers 400); l then holds what
 * came before the error. Names compare case-sensitively. Pure; any thread. */
int wsp_pmd_parse(wsp_pmd_list_t *l, const char *v, size_t len);

/* Server: picks the first permessage-deflate offer in l that is valid (every valid offer can be
 * honoured) and returns the exact Sec-WebSocket-Extensions value to answer (static, without
 * CRLF), filling *out; returns NULL with out->on false when there is none to accept. Pure. */
const char *wsp_pmd_accept(const wsp_pmd_list_t *l, wsp_pmd_t *out);

/* Whether a payload of len bytes may be compressed for a peer that limited the server's window
 * to 2^window_bits: a stream shorter than the window never reaches back farther than it, and
 * libdeflate always compresses with a 32 KiB window. Send it uncompressed otherwise. Pure. */
static inline bool wsp_pmd_fits(unsigned window_bits, size_t len)
{
    return window_bits >= 15 || len <= (size_t)1 << window_bits;
}

/* Client: writes the offer for the parameters in *want into out[0..cap) with a NUL; returns its
 * length, or -ENOBUFS (cap too small), -EINVAL (a window outside 8..15). Pure; any thread. */
int wsp_pmd_offer(const wsp_pmd_params_t *want, char *out, size_t cap);

/* Client: checks the server's answer l (all its Sec-WebSocket-Extensions lines parsed) against
 * the one offer *offered, per RFC 7692 section 7.1. Returns 1 with *out filled (accepted), 0
 * (declined: no extension in the answer), or -EPROTO: the client must fail the connection (an
 * extension not offered, two answers, a parameter it did not allow). Pure; any thread. */
int wsp_pmd_check(const wsp_pmd_params_t *offered, const wsp_pmd_list_t *l, wsp_pmd_t *out);

#endif
