#ifndef WSP_ADMIN_H
#define WSP_ADMIN_H

/* The admin API, on the loop of the process's publisher (server/publisher.c): the single
 * process or the supervisor. Routes and answers here; HTTP/1.1 itself (keep-alive,
 * pipelining, limits, timeouts) is server/httpd.c:
 *   POST /publish[?channel=NAME]  body = the message (<= 64 KiB, valid UTF-8)
 *        -> 202 {"seq":N,"connections":N}; 400/413 with {"error":"..."}; 401 without the
 *           bearer token when one is configured
 *   POST /publish?user=ID  the same for the connections of one user (a token's sub, issue
 *        #16; ID percent-decoded, 1..64 bytes): answered once this machine's processes
 *        report their delivery (at most WSP_ADMIN_USER_WAIT_MS later)
 *        -> 202 {"connections":N,"complete":true|false}
 *   GET /metrics  -> Prometheus text exposition (text/plain; version=0.0.4)
 *   GET /healthz  -> 200 "ok" while serving, 503 "draining" while draining
 *   GET /stats    -> JSON
 * Other paths 404, wrong methods 405 (with Allow). */

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "pubwait.h"

/* The longest user id of POST /publish?user= (a token's sub: common/jwt.h's cap). */
#define WSP_ADMIN_USER_MAX 64
/* How long POST /publish?user= waits for the delivery reports before answering with what it
 * has ("complete":false). */
#define WSP_ADMIN_USER_WAIT_MS 2000

typedef struct wsp_admin_s wsp_admin_t;

/* What the admin API asks of its owner; every call happens on the owner's loop thread. */
typedef struct wsp_admin_ops_s {
    /* Publishes payload (valid UTF-8, <= 64 KiB, already checked) on channel (a valid name,
     * or NULL for the default channel). Fills *seq and *conns (connections it is offered
     * to, as far as known). Returns 0, -EAGAIN while draining, or a negative errno. */
    int (*publish)(void *user, const char *channel, size_t channel_len, const uint8_t *payload,
                   size_t len, uint64_t *seq, uint64_t *conns);
    /* Appends the Prometheus text exposition to out. Returns 0 or a negative errno. */
    int (*metrics)(void *user, wsp_buf_t *out);
    /* Appends the /stats JSON object to out. Returns 0 or a negative errno. */
    int (*stats)(void *user, wsp_buf_t *out);
    /* 1 while serving, 0 while draining. */
    int (*healthy)(void *user);
    /* Publishes payload (checked as above) to the connections of the user sub[0..sub_len)
     * (1..WSP_ADMIN_USER_MAX bytes, any bytes; issue #16). NULL: not offered (400). Returns 0,
     * after which done(ctx, ...) is called exactly once, maybe before this returns; or -EAGAIN
     * while draining, or a negative errno (done is then never called). */
    int (*publish_user)(void *user, const char *sub, size_t sub_len, const uint8_t *payload,
                        size_t len, wsp_pubwait_done_fn done, void *ctx);
} wsp_admin_ops_t;

/* Listens on host:port (numeric address) on loop. token (NULL = none) is the required
 * bearer token for POST /publish (wsp_config_token_ok()), compared in constant time; it is
 * copied. Returns 0 or a
 * negative errno (-EADDRINUSE, -EINVAL for a bad address, ...). Loop thread. */
int wsp_admin_start(wsp_admin_t **out, uv_loop_t *loop, const char *host, int port,
                    const char *token, const wsp_admin_ops_t *ops, void *user);

/* As wsp_admin_start(), on fd, the listening socket of the process a live upgrade replaced
 * (issue #20); fd is the API's from here on, even on failure. Loop thread. */
int wsp_admin_adopt(wsp_admin_t **out, uv_loop_t *loop, int fd, const char *token,
                    const wsp_admin_ops_t *ops, void *user);

/* The listening socket's descriptor (still the API's), for a live upgrade. Loop thread. */
int wsp_admin_fd(const wsp_admin_t *a);

/* The bound port (useful with port 0). Loop thread. */
int wsp_admin_port(const wsp_admin_t *a);

/* Closes the listener and every admin connection; frees once their close callbacks ran
 * (run the loop afterwards). NULL is fine. Loop thread. */
void wsp_admin_stop(wsp_admin_t *a);

#endif
