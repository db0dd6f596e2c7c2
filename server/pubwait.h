#ifndef WSP_PUBWAIT_H
#define WSP_PUBWAIT_H

/* Publishes that wait for their delivery reports (issue #16): POST /publish?user= answers
 * with the connections it reached on this machine, which only the delivering processes know
 * once their shards are done (the coordinator's reap; each worker's report under --procs;
 * after the round trip through Redis with --redis). The publisher (server/publisher.c) keeps
 * one list: an entry per waiting request, completed when the reports it expects have come, or
 * by its deadline with what came so far. No I/O, no clock of its own: the caller passes the
 * time. One thread (the publisher's loop).
 *
 * Tags: a delivery comes back with the tag it was sent with. A request delivered directly
 * (in process, or to the workers through the supervisor's pipe) has a unique id (tag below
 * WSP_PUBWAIT_DIGEST); one that goes through Redis cannot carry an id (any publisher may write
 * to Redis), so its tag is a digest of user and message with WSP_PUBWAIT_DIGEST set, and a
 * report for a digest goes to the oldest waiting entry of that digest that still expects one:
 * two identical messages to the same user in flight at once may swap their counts. */

#include <stdint.h>

#define WSP_PUBWAIT_DIGEST (1ull << 63)

/* The answer: status 0, or -ECANCELED when the publisher closes first; conns reached (summed
 * over the reports); complete 1 when every expected report came before the deadline. Called
 * exactly once per entry. */
typedef void (*wsp_pubwait_done_fn)(void *ctx, int status, uint64_t conns, int complete);

typedef struct wsp_pubwait_entry_s wsp_pubwait_entry_t;

typedef struct wsp_pubwait_s {
    wsp_pubwait_entry_t *head, *tail; /* oldest first */
    unsigned n;
} wsp_pubwait_t; /* all zero: empty */

/* Adds an entry for tag that answers by deadline_ms through done(ctx); it expects an unknown
 * number of reports until wsp_pubwait_expect() (reports may come before that). Returns the
 * entry, or NULL when out of memory. */
wsp_pubwait_entry_t *wsp_pubwait_add(wsp_pubwait_t *w, uint64_t tag, uint64_t deadline_ms,
                                     wsp_pubwait_done_fn done, void *ctx);

/* The entry expects n reports in all: it completes now if they have all come. */
void wsp_pubwait_expect(wsp_pubwait_t *w, wsp_pubwait_entry_t *e, unsigned n);

/* Removes e without answering (the publish failed; the caller answers). */
void wsp_pubwait_drop(wsp_pubwait_t *w, wsp_pubwait_entry_t *e);

/* One delivery report: conns reached for tag. Returns 1 when an entry took it, else 0 (not
 * ours, or late). */
int wsp_pubwait_report(wsp_pubwait_t *w, uint64_t tag, uint64_t conns);

/* Answers every entry whose deadline is <= now_ms with what it has (complete 0). */
void wsp_pubwait_expire(wsp_pubwait_t *w, uint64_t now_ms);

/* Answers every entry with -ECANCELED. */
void wsp_pubwait_cancel_all(wsp_pubwait_t *w);

#endif
