#ifndef WSP_PUBHOLD_H
#define WSP_PUBHOLD_H

/* What a live upgrade's new process receives from Redis before it serves (issue #20). Plain
 * pub/sub has no way to tell two subscribers' streams apart, so the new process subscribes
 * before it says READY and holds what comes; once every shard has handed over, the old
 * process PUBLISHes a marker on the sync channel both share (server/redis.h's barrier) and
 * hands over exactly what it received before the marker. Redis sends every subscriber the same
 * order, so the new process delivers exactly what follows the marker in what it held (and
 * drops what still precedes it, if the marker has not come yet): each message once.
 *
 * A plain queue with a byte budget; the publisher's loop only (server/publisher.c). */

#include <stddef.h>
#include <stdint.h>

/* What an entry is: a broadcast (NAME, NAME:<chan>), a user's message (NAME:#<sub>), or a
 * message on the sync channel (a barrier's token, maybe the marker). */
enum { WSP_PUBHOLD_MSG = 0, WSP_PUBHOLD_USER = 1, WSP_PUBHOLD_SYNC = 2 };

/* Where the hold stands. */
enum {
    WSP_PUBHOLD_OFF = 0, /* not holding: Redis messages are delivered as they come */
    WSP_PUBHOLD_HOLD,    /* before the takeover: everything is kept */
    WSP_PUBHOLD_AWAIT,   /* released before the marker came: messages are dropped until it */
};

/* The most bytes a hold keeps (payloads and names): past it the oldest entries go. */
#define WSP_PUBHOLD_MAX_BYTES (64u << 20)

/* A marker: "<pid>.<n>", as server/redis.h's barrier tokens. */
#define WSP_PUBHOLD_MARK_MAX 48

typedef struct wsp_pubhold_ent_s wsp_pubhold_ent_t;

/* One kept message as wsp_pubhold_release() hands it back; pointers valid during the call. */
typedef struct wsp_pubhold_msg_s {
    int kind;         /* WSP_PUBHOLD_MSG or WSP_PUBHOLD_USER (sync entries are never handed) */
    const char *name; /* the channel (NULL: the default) or the user id */
    size_t name_len;
    const uint8_t *payload;
    size_t len;
    uint64_t cseq; /* the Redis script's number; 0 for a raw PUBLISH */
    const char *epoch;
    size_t epoch_len;
} wsp_pubhold_msg_t;

typedef struct wsp_pubhold_s {
    int state; /* WSP_PUBHOLD_* */
    wsp_pubhold_ent_t *head, **tail;
    size_t bytes, max_bytes;
    uint64_t held;     /* entries kept (sync ones too) */
    uint64_t overflow; /* entries dropped for the budget: the cut can no longer be exact */
    uint64_t skipped;  /* messages dropped as delivered by the old process (before the marker) */
    uint64_t handed;   /* messages handed back by the release */
    int broken;        /* the subscription was lost while holding: no marker can be trusted */
    char mark[WSP_PUBHOLD_MARK_MAX];
    size_t mark_len;
} wsp_pubhold_t;

/* Starts holding with a budget of max_bytes (0: WSP_PUBHOLD_MAX_BYTES). Loop thread. */
void wsp_pubhold_start(wsp_pubhold_t *h, size_t max_bytes);

/* 1 while a message from Redis must go to wsp_pubhold_take() rather than be delivered. */
int wsp_pubhold_active(const wsp_pubhold_t *h);

/* A message from Redis while active: kept (HOLD) or dropped (AWAIT; a SYNC entry equal to
 * the marker ends the wait). Returns 1 kept, 0 dropped or ended the wait, -ENOMEM (dropped,
 * counted as overflow). Loop thread. */
int wsp_pubhold_take(wsp_pubhold_t *h, const wsp_pubhold_msg_t *m);

/* The subscription was lost: while holding, the cut is no longer exact (release delivers
 * everything kept); while awaiting, the marker can no longer come (the wait ends). */
void wsp_pubhold_broken(wsp_pubhold_t *h);

/* What happened at the release, for the log. */
typedef enum {
    WSP_PUBHOLD_CUT_FOUND = 0, /* the marker was among the kept: exact */
    WSP_PUBHOLD_CUT_AWAIT,     /* not yet come: everything kept preceded it; waiting */
    WSP_PUBHOLD_CUT_NONE,      /* no marker given: everything kept delivered */
    WSP_PUBHOLD_CUT_INEXACT,   /* given but overflow or a lost link: everything delivered */
} wsp_pubhold_cut_t;

/* The takeover: with mark (the old process's marker, mark_len <= WSP_PUBHOLD_MARK_MAX) the kept
 * messages up to and including it are dropped and the rest handed to fn in order; without it
 * (NULL), or when the cut cannot be exact, all are handed. Frees what was kept. Returns the
 * cut made. Loop thread. */
wsp_pubhold_cut_t wsp_pubhold_release(wsp_pubhold_t *h, const char *mark, size_t mark_len,
                                      void (*fn)(void *ud, const wsp_pubhold_msg_t *m), void *ud);

/* Frees what is kept and stops holding. Idempotent. */
void wsp_pubhold_clear(wsp_pubhold_t *h);

#endif
