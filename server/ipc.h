#ifndef WSP_IPC_H
#define WSP_IPC_H

/* The supervisor <-> worker protocol, as bytes: packet headers, the channel + message
 * payload of a broadcast, and a reader that reassembles packets from a stream. Pure (no I/O):
 * server/link.c moves the bytes. */

#include <stddef.h>
#include <stdint.h>

/* Packets between the supervisor and its workers over a stream socketpair:
 * [type:1][seq:8 LE][len:4 LE][payload:len]. */
enum {
    WSP_IPC_BROADCAST = 'B', /* supervisor -> worker: broadcast payload as text, this seq */
    WSP_IPC_TRIGGER = 'T',   /* worker -> supervisor: broadcast the time now (SIGUSR1) */
    WSP_IPC_PUBLISH = 'P',   /* worker -> supervisor: broadcast payload on every worker */
    /* issue #16: messages for one user. USER's payload is packed as a broadcast's, with the
     * user id (a token's sub, 1..64 bytes) where the channel goes; seq is the request's tag. */
    WSP_IPC_USER = 'U',    /* supervisor -> worker: payload for the user's connections */
    WSP_IPC_REACHED = 'R', /* worker -> supervisor: [conns:8 LE] reached for the tag in seq */
    /* supervisor -> worker: hand over to the new worker whose pid is seq; its control socket
     * comes with the packet (SCM_RIGHTS). Issue #20. */
    WSP_IPC_UPGRADE = 'H',
};

#define WSP_IPC_HDR 13
/* A broadcast's payload: [channel length:1][channel][epoch length:1][epoch][channel seq:8 LE]
 * [message] (a publish's: [channel length:1][channel][message]), 64 KiB messages at most. */
#define WSP_IPC_MAX_PAYLOAD (64 * 1024 + 1 + 255 + 1 + 255 + 8)

/* Writes a header into out (WSP_IPC_HDR bytes). Pure; any thread. */
void wsp_ipc_header(uint8_t *out, uint8_t type, uint64_t seq, uint32_t len);

/* Packs a channel (NULL/0 = the default) and a message into out[0..cap) as a BROADCAST or
 * PUBLISH payload. Returns its length or -ENOBUFS. Pure; any thread. */
int wsp_ipc_pack_channel(uint8_t *out, size_t cap, const char *chan, size_t chan_len,
                         const uint8_t *msg, size_t len);

/* Splits such a payload; *chan is NULL for the default channel. Returns 0 or -EBADMSG.
 * Pure; any thread. */
int wsp_ipc_split_channel(const uint8_t *p, size_t len, const char **chan, size_t *chan_len,
                          const uint8_t **msg, size_t *msg_len);

/* Packs a BROADCAST payload: the channel, its number in the channel (cseq, issue #17; 0 =
 * none) and that number's epoch[0..epoch_len), then the message. Returns its length or
 * -ENOBUFS. Pure; any thread. */
int wsp_ipc_pack_broadcast(uint8_t *out, size_t cap, const char *chan, size_t chan_len,
                           uint64_t cseq, const char *epoch, size_t epoch_len, const uint8_t *msg,
                           size_t len);

/* Splits a BROADCAST payload; *chan is NULL for the default channel, *epoch points into p.
 * Returns 0 or -EBADMSG. Pure; any thread. */
int wsp_ipc_split_broadcast(const uint8_t *p, size_t len, const char **chan, size_t *chan_len,
                            uint64_t *cseq, const char **epoch, size_t *epoch_len,
                            const uint8_t **msg, size_t *msg_len);

/* Called for each complete packet; payload is valid only during the call. */
typedef void (*wsp_ipc_packet_fn)(void *user, uint8_t type, uint64_t seq, const uint8_t *payload,
                                  uint32_t len);

/* Reassembles packets from a byte stream. */
typedef struct wsp_ipc_reader_s {
    uint8_t *buf; /* partial packet, NULL when none */
    size_t len, cap;
} wsp_ipc_reader_t;

/* Feeds bytes; calls fn for each complete packet. Returns 0, -EBADMSG for an unknown type or
 * an oversized length (the stream is unusable then), or -ENOMEM. Owner thread only. */
int wsp_ipc_feed(wsp_ipc_reader_t *r, const uint8_t *p, size_t n, wsp_ipc_packet_fn fn, void *user);

/* Frees what the reader holds; it may be fed again afterwards. Owner thread only. */
void wsp_ipc_reset(wsp_ipc_reader_t *r);

#endif
