#ifndef WSP_AUTH_H
#define WSP_AUTH_H

/* Token auth (issue #16): who may connect and what they may hear. With --auth-jwt-alg every
 * upgrade carries a JWT (Authorization: Bearer, ?token=, or the cookie wspush_token, in that
 * order) that conn_admit() (server/conn.c) checks here before the 101: signature with exactly
 * the configured algorithm and key (common/jwt.c), exp/nbf/iat/aud/iss, then the "channels"
 * claim against ?channels=. An admitted connection is known to its shard by a user id, the
 * SipHash of its "sub" under a random per-process key (a live upgrade's new process goes on
 * with the old one's, issue #20), and a deadline (exp + leeway), both in
 * the shard's arrays beside its OPEN table (server/authidx.h): the shard's 1 s tick closes
 * what expired (4001), a {"refresh":"<jwt>"} message for the same sub moves the deadline,
 * anything else claiming to be one closes with 4003, and a message for a user walks one
 * hash chain.
 *
 * One wsp_auth_t per serving process (the coordinator's), with one wsp_auth_shard_t per shard.
 * The key is parsed once and shared read-only by every shard; SIGHUP re-reads the file
 * (wsp_auth_reload(), coordinator thread) and POSTS the new key to each shard's mailbox,
 * which the shard takes on its next handshake or tick; the old key is freed by whichever
 * thread drops its last reference. Connections already open keep their deadline. */

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "authidx.h"
#include "channels.h"
#include "config.h"
#include "jwt.h"
#include "upgrade.h"

typedef struct wsp_auth_s wsp_auth_t;
typedef struct wsp_authkey_s wsp_authkey_t; /* a verify key with a reference count */

/* A shard's part: its key, the mailbox a reload posts to, and its per-connection arrays.
 * Owning shard thread only, but for `posted` (atomic). */
typedef struct wsp_auth_shard_s {
    const wsp_auth_t *auth;
    wsp_authkey_t *key;              /* what this shard verifies with; one reference */
    _Atomic(wsp_authkey_t *) posted; /* a newer key not yet taken (one reference), or NULL */
    wsp_authidx_t idx;               /* parallel to the shard's OPEN table */
} wsp_auth_shard_t;

/* What a token grants a connection admitted by wsp_auth_admit(). */
typedef struct wsp_auth_grant_s {
    uint64_t uid;            /* SipHash of sub under the process key */
    uint32_t deadline;       /* exp + leeway, seconds since the epoch (clamped to 32 bits) */
    int fail;                /* when refused: WSP_AUTH_FAIL_* (server/metrics.h) */
    wsp_chanlist_t channels; /* what to join; names point into claims or the request */
    wsp_jwt_claims_t claims;
} wsp_auth_grant_t;

/* Loads the key named by cfg (which must have auth_jwt_alg set) and makes the process's auth
 * for nshards shards, with a fresh random SipHash key. Returns 0, or a negative errno with one
 * line in err (path and algorithm, never key bytes). Main or coordinator thread, before the
 * shards start; cfg outlives *out. */
int wsp_auth_new(wsp_auth_t **out, const wsp_config_t *cfg, unsigned nshards, char *err,
                 size_t errlen);

/* Shard i's part (i < nshards); it lives as long as a. Any thread (the pointer only). */
wsp_auth_shard_t *wsp_auth_shard(wsp_auth_t *a, unsigned i);

/* Re-reads the key file: on success every shard gets the new key for its next handshake and
 * 0 is returned; on failure the old key stays, an error is logged (no key bytes) and a
 * negative errno is returned. Coordinator thread (SIGHUP). */
int wsp_auth_reload(wsp_auth_t *a);

/* The user id of sub[0..len) in this process. Any thread. */
uint64_t wsp_auth_uid(const wsp_auth_t *a, const char *sub, size_t len);

/* The user-id key (16 bytes) into out: a live upgrade hands it to the new process (issue #20).
 * Coordinator thread. */
void wsp_auth_sipkey(const wsp_auth_t *a, uint8_t out[16]);

/* A live upgrade's new process: user ids are made with the old process's key from here on, so
 * that the ids its connections carry stay valid (wsp_auth_carried() then says 1). Coordinator
 * thread, before the shards start. */
void wsp_auth_adopt_sipkey(wsp_auth_t *a, const uint8_t key[16]);

/* 1 when the key is the old process's (wsp_auth_adopt_sipkey()): carried user ids are valid
 * here. Any thread (set before the shards start). */
int wsp_auth_carried(const wsp_auth_t *a);

/* Frees a, every shard's key references and arrays: after the shards were joined. NULL is
 * fine. Coordinator thread. */
void wsp_auth_free(wsp_auth_t *a);

/* Takes a key a reload posted, if any. Owning shard thread (each handshake, each tick). */
void wsp_auth_shard_sync(wsp_auth_shard_t *as);

/* Finds the request's token: Authorization: Bearer, then the query parameter token, then the
 * cookie wspush_token; the first present wins, even empty. Returns 0 with *tok and *len (pointing
 * into the request), -ENOENT when none is present, -EBADMSG when the source is ambiguous (two
 * Authorization or Cookie headers, a repeated parameter or cookie). Pure; any thread. */
int wsp_auth_token_find(const wsp_upgrade_req_t *r, const char **tok, size_t *len);

/* Admission: the token of r against the shard's key and the policy at time now (seconds),
 * then its "channels" claim against what ?channels= asked (asked: the parsed query, the
 * default channel when absent). Returns 0 with *g filled, 401 or 403 with g->fail set.
 * Owning shard thread. */
int wsp_auth_admit(wsp_auth_shard_t *as, const wsp_upgrade_req_t *r, const wsp_chanlist_t *asked,
                   int64_t now, wsp_auth_grant_t *g);

/* The complete HTTP answer to a refused upgrade: status 401 (with WWW-Authenticate: Bearer)
 * or 403, body {"error":"<reason of fail>"}, Connection: close. Returns its length or
 * -ENOBUFS. Pure; any thread. */
int wsp_auth_response(int status, int fail, char *out, size_t cap);

/* A complete client text message msg[0..len): when it is exactly {"refresh":"<jwt>"} and the
 * token is valid for the user uid, *deadline gets its new deadline and 0 is returned; an
 * invalid token or another user's gives -EACCES (close with 4003); any other message 1
 * (not a refresh: dropped as before). Owning shard thread. */
int wsp_auth_refresh(wsp_auth_shard_t *as, const uint8_t *msg, size_t len, uint64_t uid,
                     int64_t now, uint32_t *deadline);

#endif
