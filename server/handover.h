#ifndef WSP_HANDOVER_H
#define WSP_HANDOVER_H

/* The live upgrade's record format (issue #20): what an old wspush process tells the new one
 * over SOCK_SEQPACKET Unix sockets, one datagram at a time, with the descriptors (SCM_RIGHTS)
 * its records stand for. Pure (no I/O): server/handoff.c and server/reexec.c move the
 * datagrams. The new process parses what the old one wrote, so the reader checks every length
 * (test/fuzz/fuzz_handover.c).
 *
 * A datagram: [magic "WSPH":4][version:1][records:2 LE], then that many records, each
 * [type:1][length:4 LE][body:length]. Integers are little-endian. A CONN record stands for the
 * next descriptor of the datagram, in order. A CONN body ends with optional tagged fields
 * [tag:1][length:2 LE][value]: a tag with bit 7 set may be skipped by a reader that does not
 * know it, any other unknown tag refuses the record, so an upgrade to a binary that would drop
 * state it cannot carry fails (the old process keeps serving) instead of losing it. Known tags:
 * 0x01 a token's state (issue #16): [uid:8][deadline:4], exactly once at most, OPEN only. */

#include <stddef.h>
#include <stdint.h>

#define WSP_HO_MAGIC 0x48505357u /* "WSPH", little-endian */
#define WSP_HO_VERSION 1
#define WSP_HO_HDR 7
#define WSP_HO_REC_HDR 5
/* One datagram at most: the reader's buffer; the sockets' send buffers are sized for it. */
#define WSP_HO_DGRAM_MAX (192 * 1024)
/* Descriptors per datagram: the kernel takes at most 253 (SCM_MAX_FD). */
#define WSP_HO_FDS_MAX 250
/* Channels a connection may carry (server/channels.h's WSP_CHANNELS_MAX is 8). */
#define WSP_HO_CHAN_MAX 16

/* Record types. */
enum {
    WSP_HO_HELLO = 1,     /* old -> new: the port, shards, seq; fds: listeners, shard sockets */
    WSP_HO_READY = 2,     /* new -> old: listeners adopted, loops running; empty */
    WSP_HO_CONN = 3,      /* old shard -> new shard: one connection; one fd */
    WSP_HO_SHARD_END = 4, /* old shard -> new shard: every connection of the shard sent; empty */
    WSP_HO_BCAST = 5,     /* old -> new: a broadcast published while handing over */
    WSP_HO_END = 6,       /* old -> new: every shard handed over; the numbering to go on with */
    WSP_HO_CSEQ = 7,      /* old -> new, before END: one channel's last number (issue #17) */
    WSP_HO_KEY = 8,       /* old -> new, in HELLO's datagram: token auth's user-id key (#16) */
};

/* A CONN body's tagged fields (bit 7 set: skippable). */
enum {
    WSP_HO_TAG_AUTH = 0x01, /* required: the token's user id and deadline */
};

/* A connection's state as handed over. */
enum { WSP_HO_ST_HANDSHAKE = 0, WSP_HO_ST_OPEN = 1 };

/* Flags of a CONN record. */
enum {
    WSP_HO_F_NO_DEFAULT = 1u << 0, /* chose channels without the default one */
    WSP_HO_F_PING_OUT = 1u << 1,   /* a ping is unanswered */
    WSP_HO_F_RESERVED = 1u << 2,   /* holds a --max-conns slot */
};

typedef struct wsp_ho_hello_s {
    uint32_t pid;    /* the old process */
    uint16_t shards; /* listeners, then as many shard sockets, are the datagram's first fds */
    uint16_t port;   /* the port they listen on */
    uint8_t admin;   /* 1: the admin API's listener is the datagram's last fd */
    uint64_t seq;    /* the last broadcast number given so far (informational) */
} wsp_ho_hello_t;

/* Token auth's key (issue #16): a user id is the SipHash of "sub" under it, so the new process
 * goes on with the old one's to keep the carried ids valid; only for the same algorithm. */
#define WSP_HO_SIPKEY 16
#define WSP_HO_ALG_MAX 32
typedef struct wsp_ho_key_s {
    const char *alg; /* its name ("HS256"), not NUL-terminated; 1..WSP_HO_ALG_MAX bytes */
    uint8_t alg_len;
    uint8_t sipkey[WSP_HO_SIPKEY];
} wsp_ho_key_t;

typedef struct wsp_ho_chan_s {
    const char *name; /* not NUL-terminated; points into the datagram when decoded */
    uint8_t len;
} wsp_ho_chan_t;

typedef struct wsp_ho_conn_s {
    uint8_t state;   /* WSP_HO_ST_* */
    uint8_t flags;   /* WSP_HO_F_* */
    uint8_t xf;      /* the negotiated feature byte (server/conn.c, wsp_conn_s.xf) */
    uint8_t ttl;     /* HANDSHAKE: seconds left of --handshake-timeout */
    uint32_t hs_len; /* HANDSHAKE: the part of the request read so far */
    const uint8_t *hs;
    uint32_t pending_len; /* bytes queued for the peer that the kernel has not taken */
    const uint8_t *pending;
    uint8_t nchan;
    wsp_ho_chan_t chan[WSP_HO_CHAN_MAX];
    uint8_t auth;      /* OPEN: 1 when admitted by a token (tag 0x01), with: */
    uint64_t uid;      /* the user id (SipHash of "sub" under the WSP_HO_KEY key) */
    uint32_t deadline; /* the token's exp + leeway, seconds since the epoch */
} wsp_ho_conn_t;

typedef struct wsp_ho_bcast_s {
    uint64_t seq;
    const char *chan; /* NULL with chan_len 0: the default channel */
    uint8_t chan_len;
    uint32_t len;
    const uint8_t *payload;
    uint64_t cseq;     /* the channel's own number (issue #17; 0: none) */
    const char *epoch; /* and its epoch (not NUL-terminated; NULL with epoch_len 0: none) */
    uint8_t epoch_len;
} wsp_ho_bcast_t;

typedef struct wsp_ho_cseq_s {
    uint64_t seq;
    const char *name; /* not NUL-terminated */
    uint8_t len;      /* 1..255 */
} wsp_ho_cseq_t;

typedef struct wsp_ho_end_s {
    uint64_t seq;          /* the last number given: the new process goes on from it */
    uint64_t sup_seq;      /* a worker: the last supervisor broadcast it delivered or passed on */
    uint64_t next_tick_ms; /* wall-clock ms of the next tick; 0 = none armed */
} wsp_ho_end_t;

/* Builds one datagram in a caller's buffer. */
typedef struct wsp_ho_writer_s {
    uint8_t *buf;
    size_t cap, len;
    uint16_t nrec;
} wsp_ho_writer_t;

/* Starts a datagram in buf[0..cap) (cap >= WSP_HO_HDR). Pure. */
void wsp_ho_begin(wsp_ho_writer_t *w, uint8_t *buf, size_t cap);

/* Appends one record; the writer is unchanged on failure. Each returns 0, -ENOBUFS when the
 * datagram has no room for it (send it and start another) or -EINVAL for a value the format
 * cannot carry. Pure. */
int wsp_ho_put_empty(wsp_ho_writer_t *w, uint8_t type);
int wsp_ho_put_hello(wsp_ho_writer_t *w, const wsp_ho_hello_t *h);
int wsp_ho_put_conn(wsp_ho_writer_t *w, const wsp_ho_conn_t *c);
int wsp_ho_put_bcast(wsp_ho_writer_t *w, const wsp_ho_bcast_t *b);
int wsp_ho_put_end(wsp_ho_writer_t *w, const wsp_ho_end_t *e);
int wsp_ho_put_cseq(wsp_ho_writer_t *w, const wsp_ho_cseq_t *c);
int wsp_ho_put_key(wsp_ho_writer_t *w, const wsp_ho_key_t *k);

/* Walks the records of one received datagram. */
typedef struct wsp_ho_reader_s {
    const uint8_t *p;
    size_t len, off;
    uint16_t left; /* records not yet returned */
} wsp_ho_reader_t;

/* Opens datagram p[0..len). Returns 0, -EBADMSG (not a handover datagram) or -EPROTO (another
 * version). Pure. */
int wsp_ho_open(wsp_ho_reader_t *r, const uint8_t *p, size_t len);

/* The next record: 1 with *type and its body, 0 after the last one (and then only when the
 * datagram ends exactly there), or -EBADMSG. Pure. */
int wsp_ho_next(wsp_ho_reader_t *r, uint8_t *type, const uint8_t **body, uint32_t *len);

/* Decode one record's body; pointers in the result point into body. Each returns 0, -EBADMSG
 * for a malformed body or -EPROTO for a required field this version does not know. Pure. */
int wsp_ho_get_hello(const uint8_t *body, uint32_t len, wsp_ho_hello_t *h);
int wsp_ho_get_conn(const uint8_t *body, uint32_t len, wsp_ho_conn_t *c);
int wsp_ho_get_bcast(const uint8_t *body, uint32_t len, wsp_ho_bcast_t *b);
int wsp_ho_get_end(const uint8_t *body, uint32_t len, wsp_ho_end_t *e);
int wsp_ho_get_cseq(const uint8_t *body, uint32_t len, wsp_ho_cseq_t *c);
int wsp_ho_get_key(const uint8_t *body, uint32_t len, wsp_ho_key_t *k);

#endif
