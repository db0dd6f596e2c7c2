#ifndef WSP_AUTHIDX_H
#define WSP_AUTHIDX_H

/* What a shard keeps per authenticated connection (issue #16), in arrays PARALLEL to its OPEN
 * table (server/shard_conn.h): slot i here is the connection at OPEN slot i, and a removal
 * moves the last entry into the freed slot exactly as the table does (wsp_table_remove()).
 * Per slot: the token's deadline (exp + leeway, epoch seconds) for the expiry scan on the
 * shard's 1 s tick, the user id (SipHash of "sub" under the process's key, never the string),
 * and the next slot of the same hash bucket, so that a message for one user walks one chain
 * of ~16 slots instead of the table. 16 bytes per connection plus 4 bytes per bucket (one
 * bucket per 16 slots of capacity): no allocation per connection, and three flat arrays a
 * live upgrade can hand over as they are. Owning shard thread only. */

#include <stdint.h>

#define WSP_AUTHIDX_END UINT32_MAX /* no slot: the end of a chain */
#define WSP_AUTHIDX_CHAIN 16       /* slots of capacity per bucket */

typedef struct wsp_authidx_s {
    uint32_t *deadline; /* [cap]: exp + leeway, seconds since the epoch */
    uint64_t *uid;      /* [cap]: SipHash of sub under the process key */
    uint32_t *next;     /* [cap]: next slot in uid's bucket, or WSP_AUTHIDX_END */
    uint32_t *head;     /* [nbuckets]: first slot of each bucket, or WSP_AUTHIDX_END */
    uint32_t n, cap;    /* slots in use (== the OPEN table's n), allocated */
    uint32_t nbuckets;  /* a power of two, about cap / WSP_AUTHIDX_CHAIN */
} wsp_authidx_t;        /* all zero: empty */

/* Makes room for want slots (arrays doubling, buckets rehashed when they grow), so that the
 * next wsp_authidx_add() cannot fail. Returns 0 or -ENOMEM (x unchanged). */
int wsp_authidx_reserve(wsp_authidx_t *x, uint32_t want);

/* Appends slot x->n with uid and deadline; room must have been reserved. Returns the slot. */
uint32_t wsp_authidx_add(wsp_authidx_t *x, uint64_t uid, uint32_t deadline);

/* Removes slot i by moving the last slot into it (the OPEN table's swap-removal), unlinking i
 * and relinking the moved entry under its new slot. Walks at most two chains. */
void wsp_authidx_remove(wsp_authidx_t *x, uint32_t i);

/* The first slot at or after the chain position `from` (a slot, or WSP_AUTHIDX_END to start
 * at the bucket's head) whose uid is uid; WSP_AUTHIDX_END when none. Walk a user's slots as
 * for (s = wsp_authidx_find(x, uid, END); s != END; s = wsp_authidx_find(x, uid, s)). */
uint32_t wsp_authidx_find(const wsp_authidx_t *x, uint64_t uid, uint32_t from);

/* The highest slot below `below` whose deadline is <= now, or WSP_AUTHIDX_END. The expiry
 * scan walks down from x->n, so that removing what it finds only moves visited entries. */
uint32_t wsp_authidx_expired(const wsp_authidx_t *x, uint32_t below, uint32_t now);

/* Checks every invariant (chains cover each slot once, in the right bucket, no cycle). Returns
 * 0 or -EINVAL. O(n + nbuckets): for tests. */
int wsp_authidx_check(const wsp_authidx_t *x);

/* Frees the arrays; x is empty again. */
void wsp_authidx_free(wsp_authidx_t *x);

#endif
