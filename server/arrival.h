#ifndef WSP_ARRIVAL_H
#define WSP_ARRIVAL_H

/* A wspush.v1 connection's way in, on its shard (issue #17): the decision
 * (server/resume.c), then, in the same turn of the shard's loop, its hello, the messages it
 * missed and its join (server/conn.h); or, when the shard cannot decide yet, the wait (joined
 * to nothing) in the shard's list of waiting connections, a fetch from Redis through the
 * coordinator, and another try after each batch of broadcasts, each fetch's answer and at
 * the deadline. The shard plugs wsp_arrival_start() and wsp_arrival_gone() into its
 * shard_conn (arrive, gone) for conn.c. Owning shard thread only. */

#include "conn.h"
#include "resume.h"
#include "shard_conn.h"

/* Brings in c, just upgraded with wspush.v1 and asking a. Returns 0 (in, or waiting) or a
 * negative errno (the caller closes c). */
int wsp_arrival_start(wsp_shard_conn_t *sc, wsp_conn_t *c, const wsp_resume_ask_t *a);

/* c, which was waiting, closes or drains: it never comes in. */
void wsp_arrival_gone(wsp_shard_conn_t *sc, wsp_conn_t *c);

/* Takes the fetches' answers (a list linked by qnext, maybe NULL), then tries every waiting
 * connection again; tick: the shard's tick passed, deadlines apply. */
void wsp_arrival_retry(wsp_shard_conn_t *sc, wsp_resume_t *answers, int tick);

/* Frees what every waiting connection kept (the shard's end: the coordinator has given
 * every fetch back). */
void wsp_arrival_free(wsp_shard_conn_t *sc);

#endif
