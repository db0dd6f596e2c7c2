/* The admission step of a connection, the third file of the connection module
 * (server/conn_int.h): the bytes of an HTTP upgrade request are buffered and parsed, then
 * admitted or refused with an HTTP status; conn.c's wsp__conn_upgrade() makes an admitted
 * request a connection; the buffer of a request split over several reads is server/hsbuf.c.
 * Owning shard thread only. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "channels.h"
#include "conn.h"
#include "conn_int.h"
#include "framed.h"
#include "hsbuf.h"
#include "log.h"
#include "metrics.h"
#include "net.h"
#include "pmd.h"
#include "resume.h"
#include "upgrade.h"

/* The handshake failed: answer status with resp[0..len) and close once it is written. */
static void conn_refuse(wsp_conn_t *c, int status, const char *resp, size_t len)
{
    atomic_fetch_add_explicit(&wsp__conn_shard(c)->stats->hs_failed[wsp_metrics_hs_index(status)],
                              1, memory_order_relaxed);
    int why = status == 503 ? WSP_CLOSE_REFUSED : WSP_CLOSE_HS_FAILED;
    if (wsp__conn_write_copy(c, resp, len) < 0) {
        wsp_conn_close_why(c, why);
        return;
    }
    wsp__conn_fail(c, why);
}

void wsp__conn_reject(wsp_conn_t *c, int status)
{
    size_t len;
    const char *resp = wsp_upgrade_error(status, &len);
    conn_refuse(c, status, resp, len);
}

/* Token auth refused the upgrade: 401 or 403 with its reason, counted by reason. */
static void conn_reject_auth(wsp_conn_t *c, int status, int fail)
{
    char resp[256];
    int len = wsp_auth_response(status, fail, resp, sizeof(resp));
    atomic_fetch_add_explicit(&wsp__conn_shard(c)->stats->auth_failed[fail], 1,
                              memory_order_relaxed);
    if (len < 0) { /* cannot happen with these reasons: the plain answer then */
        wsp__conn_reject(c, status);
        return;
    }
    conn_refuse(c, status, resp, (size_t)len);
}

/* permessage-deflate (RFC 7692): the first offer we can honour, in the order of every
 * Sec-WebSocket-Extensions line, or none; an offer we cannot honour is declined by taking the
 * next (wsp_pmd_accept()). Returns 0 or 400 for a header that breaks RFC 6455 section 9.1's
 * grammar, or more lines than the parser keeps. With --deflate off nothing is read: the
 * request is treated as it was before the extension existed. */
static int conn_admit_pmd(const wsp_shard_conn_t *sc, const wsp_upgrade_req_t *r,
                          wsp__conn_grant_t *g)
{
    g->pmd.on = false;
    g->pmd_answer = NULL;
    if (!sc->cfg->deflate || r->n_ext == 0)
        return 0;
    if (r->n_ext > WSP_UPGRADE_EXT_LINES)
        return 400;
    wsp_pmd_list_t l;
    wsp_pmd_init(&l);
    for (unsigned i = 0; i < r->n_ext; i++)
        if (wsp_pmd_parse(&l, r->ext[i], r->ext_len[i]) < 0)
            return 400;
    g->pmd_answer = wsp_pmd_accept(&l, &g->pmd);
    return 0;
}

/* Handshake, step 2: whether a complete, valid upgrade request may become a connection. This
 * is the single place where a check says yes, or no with an HTTP status; it only decides, and
 * records what it grants in *g. Today: the path (404), the ?channels= list (400, before
 * the upgrade, so that the client sees why), with --auth-jwt-alg the token (401; 403 for a
 * channel its claim does not grant: server/auth.c), the wspush.v1 resume point (400) and
 * permessage-deflate (400 for a malformed Sec-WebSocket-Extensions). To come here:
 * per-client limits (429). The process's connection limit (--max-conns: 503) is taken at
 * accept, before any byte. Returns 0 or the HTTP status. */
static int conn_admit(wsp_shard_conn_t *sc, const wsp_upgrade_req_t *r, wsp__conn_grant_t *g)
{
    const char *path = sc->cfg->path;
    g->authed = 0;
    if (r->path_len != strlen(path) || memcmp(r->path, path, r->path_len) != 0)
        return 404;
    if (wsp_channels_parse_query(r->query, r->query_len, &g->channels) < 0)
        return 400;
    if (sc->auth != NULL) {
        int64_t now = (int64_t)(wsp_net_epoch_ms() / 1000);
        int status = wsp_auth_admit(sc->auth, r, &g->channels, now, &g->auth);
        if (status != 0)
            return status;
        g->channels = g->auth.channels;
        g->authed = 1;
    }
    /* wspush.v1 when offered; a resume point without it, or for a channel not chosen, is a
     * client bug worth a 400 rather than messages it cannot place. */
    wsp_framed_resume_t rs;
    g->framed = (r->subprotocols & WSP_UPGRADE_SP_WSPUSH_V1) != 0;
    if (wsp_framed_parse_resume(r->query, r->query_len, &rs) < 0 || (rs.n > 0 && !g->framed))
        return 400;
    if (g->framed && wsp_resume_ask(&g->ask, &g->channels, &rs) < 0)
        return 400;
    return conn_admit_pmd(sc, r, g);
}

/* Bytes of a connection in HANDSHAKE: buffer -> parse -> admit -> upgrade, then the frames
 * that came with the request. */
void wsp__conn_handshake(wsp_conn_t *c, const uint8_t *p, size_t n)
{
    wsp_shard_conn_t *sc = wsp__conn_shard(c);
    const uint8_t *req;
    size_t reqlen, taken;
    if (wsp_hsbuf_append((wsp_hsbuf_t **)wsp__conn_data(c), p, n, &req, &reqlen, &taken) < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_ERROR);
        return;
    }
    wsp_upgrade_req_t r;
    int status = 400;
    int rv = wsp_upgrade_parse(req, reqlen, &r, &status);
    if (rv == -EAGAIN) {
        if (wsp_hsbuf_keep((wsp_hsbuf_t **)wsp__conn_data(c), p, n) < 0)
            wsp_conn_close_why(c, WSP_CLOSE_ERROR);
        return;
    }
    wsp__conn_grant_t g;
    if (rv >= 0 && (status = conn_admit(sc, &r, &g)) != 0)
        rv = -EBADMSG;
    if (rv < 0) {
        int authfail = status == 401 || status == 403; /* the reason, never the token */
        if (wsp_shard_conn_log_ok(sc))
            WSP_LOG(WSP_LOG_INFO, "shard=%u event=handshake_failed status=%d%s%s", sc->id, status,
                    authfail ? " reason=" : "",
                    authfail ? wsp_metrics_auth_reason(g.auth.fail) : "");
        if (authfail)
            conn_reject_auth(c, status, g.auth.fail);
        else
            wsp__conn_reject(c, status);
        return;
    }
    wsp_hsbuf_t *hb = *wsp__conn_data(c); /* ours from here: req may point into it */
    *wsp__conn_data(c) = NULL;
    if (wsp__conn_upgrade(c, &r, &g) < 0) {
        wsp_conn_close_why(c, WSP_CLOSE_ERROR);
    } else {
        /* Frames that came with the request are processed, not lost: first what the
         * handshake buffer holds past the request, then what did not fit into it. */
        wsp__conn_feed(c, req + rv, reqlen - (size_t)rv);
        wsp__conn_feed(c, p + taken, n - taken);
    }
    free(hb);
}
