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
 * state it cannot carry fails (the old process keeps serving) instead of losing it.
 *
 * Tag 0x02 (required), a TLS connection (issue #18): [state:1], then for state 1 (accepted,
 * its TLS handshake not begun) nothing; for state 2 (the handshake done) the record layer,
 * field by field: [version:2][suite:2][keylen:1][secretlen:1], for the read direction and then
 * the write direction [seq:8][key:keylen][iv:12][secret:secretlen] (secretlen 0 for TLS 1.2;
 * TLS 1.3 needs the traffic secrets for KeyUpdate), then [part_len:2][part]: a record the peer
 * has sent in part. A connection mid-handshake has no such form (it waits, server/conn_ho.c).
 * Tag 0x01 (required), a token's state (issue #16): [uid:8][deadline:4], exactly once at most,
 * OPEN only. READY's body, empty from a binary older than tag 0x02,
 * is [flags:1]: WSP_HO_READY_TLS when the new process serves TLS and adopts TLS
 * connections. */

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
    WSP_HO_HIST = 9,      /* old -> new, before END: one history entry (issue #17), oldest first */
    WSP_HO_MARK = 10,     /* old -> new, before END: the Redis marker (server/pubhold.h) */
};

/* A CONN body's tagged fields (bit 7 set: skippable). */
enum {
    WSP_HO_TAG_AUTH = 0x01, /* required: the token's user id and deadline */
};

/* A connection's state as handed over. */
enum { WSP_HO_ST_HANDSHAKE = 0, WSP_HO_ST_OPEN = 1 };

/* Required CONN tags (bit 7 clear). */
#define WSP_HO_TAG_TLS 0x02

/* READY flags. */
#define WSP_HO_READY_TLS 0x01u
/* Subscribed to Redis before READY and holding what comes: send MARK (server/pubhold.h). */
#define WSP_HO_READY_REDIS 0x02u

/* A MARK's token: 1..WSP_HO_MARK_MAX bytes ("<pid>.<n>", server/redis.h). */
#define WSP_HO_MARK_MAX 47

/* A TLS connection's state as handed over (wsp_ho_tls_t.state). */
enum { WSP_HO_TLS_NONE = 0, WSP_HO_TLS_NEW = 1, WSP_HO_TLS_OPEN = 2 };

#define WSP_HO_TLS_IV 12          /* IV bytes carried per direction, whatever the suite uses */
#define WSP_HO_TLS_KEY_MAX 32     /* AEAD key bytes at most */
#define WSP_HO_TLS_SECRET_MAX 48  /* TLS 1.3 traffic secret bytes at most (SHA-384) */
#define WSP_HO_TLS_PART_MAX 18437 /* the longest record a peer may send (common/tlsrec.h) */

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

/* One direction of a TLS record layer: pointers to keylen, WSP_HO_TLS_IV and secretlen
 * bytes (into the sender's state when encoding, into the datagram when decoded). */
typedef struct wsp_ho_tls_dir_s {
    uint64_t seq; /* the next record's sequence number */
    const uint8_t *key, *iv, *secret;
} wsp_ho_tls_dir_t;

/* Tag 0x02: what a TLS connection carries. Semantics (suite and lengths agree) are checked
 * by common/tlsrec.c's wsp_tlsrec_resume(), not here. */
typedef struct wsp_ho_tls_s {
    uint8_t state;     /* WSP_HO_TLS_*; NONE: a plain connection, no tag */
    uint16_t version;  /* OPEN: 0x0303 or 0x0304 */
    uint16_t suite;    /* OPEN: the IANA cipher suite */
    uint8_t keylen;    /* OPEN: 1..WSP_HO_TLS_KEY_MAX */
    uint8_t secretlen; /* OPEN: 0..WSP_HO_TLS_SECRET_MAX */
    wsp_ho_tls_dir_t rd, wr;
    uint16_t part_len; /* OPEN: 0..WSP_HO_TLS_PART_MAX */
    const uint8_t *part;
} wsp_ho_tls_t;

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
    wsp_ho_tls_t tls;  /* tag 0x02 unless tls.state is WSP_HO_TLS_NONE */
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

/* One history entry: message seq of a channel in an epoch, age_ms old when sent, and the
 * message as a wspush.v1 client receives it ({"ch":..,"seq":..,"data":..}: the history keeps
 * only that form). Body: [seq:8][age_ms:8][chan_len:1][chan][epoch_len:1][epoch][len:4][msg]. */
typedef struct wsp_ho_hist_s {
    uint64_t seq;      /* >= 1 */
    uint64_t age_ms;   /* how long ago it was published */
    const char *chan;  /* not NUL-terminated; "time" for the default channel */
    uint8_t chan_len;  /* >= 1 */
    const char *epoch; /* not NUL-terminated */
    uint8_t epoch_len; /* >= 1 */
    uint32_t len;
    const uint8_t *msg;
} wsp_ho_hist_t;

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
int wsp_ho_put_ready(wsp_ho_writer_t *w, uint8_t flags);
int wsp_ho_put_hist(wsp_ho_writer_t *w, const wsp_ho_hist_t *h);
int wsp_ho_put_key(wsp_ho_writer_t *w, const wsp_ho_key_t *k);
int wsp_ho_put_mark(wsp_ho_writer_t *w, const char *tok, size_t len);

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
/* READY's flags (WSP_HO_READY_*); an empty body, from an older binary, is 0. Always 0. */
int wsp_ho_get_ready(const uint8_t *body, uint32_t len, uint8_t *flags);
int wsp_ho_get_hist(const uint8_t *body, uint32_t len, wsp_ho_hist_t *h);
int wsp_ho_get_key(const uint8_t *body, uint32_t len, wsp_ho_key_t *k);
/* MARK: *tok points into body, *len is 1..WSP_HO_MARK_MAX. */
int wsp_ho_get_mark(const uint8_t *body, uint32_t len, const char **tok, size_t *tok_len);

#endif
