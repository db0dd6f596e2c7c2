#include "auth.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include <openssl/crypto.h>

#include "alloc.h"
#include "log.h"
#include "metrics.h"
#include "siphash.h"

static_assert(WSP_AUTH_FAIL__N == WSP_JWT_REASONS + 1, "metrics.h: one label per jwt.h reason");

struct wsp_authkey_s {
    atomic_uint refs;
    wsp_jwt_key_t *key;
};

struct wsp_auth_s {
    const wsp_config_t *cfg;
    wsp_jwt_policy_t policy;
    uint8_t sipkey[16]; /* random per process, or the old one's after a live upgrade */
    int carried;        /* sipkey came from the old process (issue #20) */
    unsigned nshards;
    wsp_auth_shard_t *shards;
};

/* ---- keys ---- */

static void authkey_unref(wsp_authkey_t *k)
{
    /* acq_rel: every verify with k on any shard happens before the free. */
    if (k != NULL && atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) == 1) {
        wsp_jwt_key_free(k->key);
        free(k);
    }
}

/* Loads the configured key file into a key with refs references. 0 or a negative errno. */
static int authkey_load(const wsp_config_t *cfg, unsigned refs, wsp_authkey_t **out, char *err,
                        size_t errlen)
{
    wsp_jwt_key_t *key;
    int rv = wsp_jwt_key_load(&key, cfg->auth_jwt_alg, cfg->auth_jwt_key, 0, err, errlen);
    if (rv < 0)
        return rv;
    wsp_authkey_t *k = malloc(sizeof(*k)); /* once per key (re)load */
    if (k == NULL) {
        wsp_jwt_key_free(key);
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    k->key = key;
    atomic_init(&k->refs, refs);
    if (wsp_jwt_key_weak(key))
        WSP_LOG(WSP_LOG_WARN,
                "event=auth_key_weak alg=%s path=%s msg=\"an HS secret shorter than the hash "
                "output (RFC 7518 section 3.2)\"",
                wsp_jwt_alg_name(cfg->auth_jwt_alg), cfg->auth_jwt_key);
    *out = k;
    return 0;
}

int wsp_auth_new(wsp_auth_t **out, const wsp_config_t *cfg, unsigned nshards, char *err,
                 size_t errlen)
{
    *out = NULL;
    wsp_authkey_t *k;
    int rv = authkey_load(cfg, nshards, &k, err, errlen);
    if (rv < 0)
        return rv;
    wsp_auth_t *a = wsp_xcalloc(1, sizeof(*a)); /* once per process */
    a->cfg = cfg;
    a->policy.aud = cfg->auth_jwt_aud[0] ? cfg->auth_jwt_aud : NULL;
    a->policy.iss = cfg->auth_jwt_iss[0] ? cfg->auth_jwt_iss : NULL;
    a->policy.leeway = cfg->auth_leeway;
    /* 16 bytes never block once the kernel's pool is initialised (it is, long before a
     * server starts); a short read is treated as a failure. */
    if (getrandom(a->sipkey, sizeof(a->sipkey), 0) != (ssize_t)sizeof(a->sipkey)) {
        snprintf(err, errlen, "getrandom failed");
        wsp_jwt_key_free(k->key); /* none of its references was handed out */
        free(k);
        free(a);
        return -EIO;
    }
    a->nshards = nshards;
    a->shards = wsp_xcalloc(nshards, sizeof(*a->shards));
    for (unsigned i = 0; i < nshards; i++) {
        a->shards[i].auth = a;
        a->shards[i].key = k; /* one of the nshards references */
        atomic_init(&a->shards[i].posted, NULL);
    }
    *out = a;
    return 0;
}

wsp_auth_shard_t *wsp_auth_shard(wsp_auth_t *a, unsigned i) { return &a->shards[i]; }

int wsp_auth_reload(wsp_auth_t *a)
{
    char err[256];
    wsp_authkey_t *k;
    int rv = authkey_load(a->cfg, a->nshards, &k, err, sizeof(err));
    if (rv < 0) {
        /* err names the path and the algorithm, never key bytes (common/jwt.h). */
        WSP_LOG(WSP_LOG_ERROR,
                "event=auth_key_reload_failed error=\"%s\" msg=\"keeping the "
                "previous key\"",
                err);
        return rv;
    }
    for (unsigned i = 0; i < a->nshards; i++) {
        /* A key posted earlier and not yet taken is replaced: its reference was the shard's. */
        wsp_authkey_t *old =
            atomic_exchange_explicit(&a->shards[i].posted, k, memory_order_acq_rel);
        authkey_unref(old);
    }
    WSP_LOG(WSP_LOG_INFO, "event=auth_key_reloaded alg=%s path=%s",
            wsp_jwt_alg_name(a->cfg->auth_jwt_alg), a->cfg->auth_jwt_key);
    return 0;
}

void wsp_auth_shard_sync(wsp_auth_shard_t *as)
{
    /* A plain load first: a reload is rare, a handshake is not. */
    if (atomic_load_explicit(&as->posted, memory_order_relaxed) == NULL)
        return;
    wsp_authkey_t *k = atomic_exchange_explicit(&as->posted, NULL, memory_order_acq_rel);
    if (k == NULL)
        return;
    authkey_unref(as->key);
    as->key = k;
}

uint64_t wsp_auth_uid(const wsp_auth_t *a, const char *sub, size_t len)
{
    return wsp_siphash(a->sipkey, sub, len);
}

void wsp_auth_sipkey(const wsp_auth_t *a, uint8_t out[16])
{
    memcpy(out, a->sipkey, sizeof(a->sipkey));
}

void wsp_auth_adopt_sipkey(wsp_auth_t *a, const uint8_t key[16])
{
    memcpy(a->sipkey, key, sizeof(a->sipkey));
    a->carried = 1;
}

int wsp_auth_carried(const wsp_auth_t *a) { return a->carried; }

void wsp_auth_free(wsp_auth_t *a)
{
    if (a == NULL)
        return;
    for (unsigned i = 0; i < a->nshards; i++) {
        authkey_unref(a->shards[i].key);
        authkey_unref(atomic_exchange(&a->shards[i].posted, NULL));
        wsp_authidx_free(&a->shards[i].idx);
    }
    free(a->shards);
    OPENSSL_cleanse(a->sipkey, sizeof(a->sipkey));
    free(a);
}

/* ---- where the token is ---- */

static size_t trim_end(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

/* The wspush_token cookie in a Cookie value c[0..n) ("a=b; wspush_token=...; c=d", RFC 6265
 * section 4.2.1): 0 with the value (quotes removed), -ENOENT, or -EBADMSG when repeated. */
static int cookie_token(const char *c, size_t n, const char **v, size_t *vlen)
{
    static const char name[] = "wspush_token";
    const size_t nl = sizeof(name) - 1;
    int found = 0;
    size_t i = 0;
    while (i < n) {
        while (i < n && (c[i] == ' ' || c[i] == '\t'))
            i++;
        size_t start = i;
        while (i < n && c[i] != ';')
            i++;
        const char *p = c + start;
        size_t plen = trim_end(p, i - start);
        i++; /* past ';' */
        if (plen < nl + 1 || memcmp(p, name, nl) != 0 || p[nl] != '=')
            continue;
        if (found++)
            return -EBADMSG;
        *v = p + nl + 1;
        *vlen = plen - nl - 1;
        if (*vlen >= 2 && (*v)[0] == '"' && (*v)[*vlen - 1] == '"') { /* a quoted value */
            (*v)++;
            *vlen -= 2;
        }
    }
    return found ? 0 : -ENOENT;
}

/* The token of "Bearer <token>" (scheme case-insensitive, RFC 6750 section 2.1): 0 with it,
 * or -ENOENT for another scheme. */
static int bearer(const char *a, size_t n, const char **tok, size_t *len)
{
    if (n < 6 || strncasecmp(a, "Bearer", 6) != 0 || (n > 6 && a[6] != ' '))
        return -ENOENT;
    size_t i = 6;
    while (i < n && a[i] == ' ')
        i++;
    *tok = a + i;
    *len = n - i;
    return 0;
}

int wsp_auth_token_find(const wsp_upgrade_req_t *r, const char **tok, size_t *len)
{
    if (r->authorization_count > 1)
        return -EBADMSG;
    if (r->authorization_count == 1 &&
        bearer(r->authorization, r->authorization_len, tok, len) == 0)
        return 0;
    int n = wsp_channels_query_param(r->query, r->query_len, "token", tok, len);
    if (n > 1)
        return -EBADMSG;
    if (n == 1)
        return 0;
    if (r->cookie_count > 1)
        return -EBADMSG;
    if (r->cookie_count == 1)
        return cookie_token(r->cookie, r->cookie_len, tok, len);
    return -ENOENT;
}

/* ---- admission ---- */

static int chanlist_has(const wsp_chanlist_t *l, const char *name, size_t len)
{
    for (unsigned i = 0; i < l->n; i++)
        if (l->v[i].len == len && memcmp(l->v[i].name, name, len) == 0)
            return 1;
    return 0;
}

/* The claim's channels as a list (duplicates merged). -EINVAL when a name is not a valid
 * channel name: the token is then malformed for this server. */
static int claim_channels(const wsp_jwt_claims_t *c, wsp_chanlist_t *out)
{
    out->n = 0;
    for (unsigned i = 0; i < c->n_channels; i++) {
        const char *name = c->channels[i];
        if (!wsp_channel_valid(name, c->channel_len[i]))
            return -EINVAL;
        if (chanlist_has(out, name, c->channel_len[i]))
            continue;
        out->v[out->n].name = name;
        out->v[out->n].len = c->channel_len[i];
        out->n++;
    }
    return 0;
}

static uint32_t deadline_of(int64_t exp, unsigned leeway)
{
    int64_t d = exp + (int64_t)leeway;
    return d > (int64_t)UINT32_MAX ? UINT32_MAX : d < 0 ? 0 : (uint32_t)d;
}

int wsp_auth_admit(wsp_auth_shard_t *as, const wsp_upgrade_req_t *r, const wsp_chanlist_t *asked,
                   int64_t now, wsp_auth_grant_t *g)
{
    const wsp_auth_t *a = as->auth;
    const char *tok = NULL;
    size_t len = 0;
    int rv = wsp_auth_token_find(r, &tok, &len);
    if (rv == 0) {
        wsp_auth_shard_sync(as);
        rv = wsp_jwt_verify(as->key->key, &a->policy, tok, len, now, &g->claims);
    } else {
        rv = rv == -ENOENT ? WSP_JWT_MISSING : WSP_JWT_MALFORMED;
    }
    wsp_chanlist_t granted;
    if (rv == 0 && claim_channels(&g->claims, &granted) < 0)
        rv = WSP_JWT_MALFORMED;
    if (rv < 0) {
        g->fail = -rv - 1;
        return 401;
    }
    const char *v;
    size_t vlen;
    int chose = wsp_channels_query_param(r->query, r->query_len, "channels", &v, &vlen) > 0;
    if (chose && g->claims.channels_present) {
        for (unsigned i = 0; i < asked->n; i++) {
            if (!chanlist_has(&granted, asked->v[i].name, asked->v[i].len)) {
                g->fail = WSP_AUTH_FAIL_CHANNEL;
                return 403;
            }
        }
    }
    /* Without ?channels= the token decides; a token without the claim restricts nothing. */
    g->channels = !chose && g->claims.channels_present ? granted : *asked;
    g->uid = wsp_auth_uid(a, g->claims.sub, g->claims.sub_len);
    g->deadline = deadline_of(g->claims.exp, a->cfg->auth_leeway);
    g->fail = 0;
    return 0;
}

int wsp_auth_response(int status, int fail, char *out, size_t cap)
{
    char body[64];
    int n = snprintf(body, sizeof(body), "{\"error\":\"%s\"}", wsp_metrics_auth_reason(fail));
    int m = snprintf(out, cap,
                     "HTTP/1.1 %s\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n%s",
                     status == 403 ? "403 Forbidden" : "401 Unauthorized",
                     status == 403 ? "" : "WWW-Authenticate: Bearer\r\n", n, body);
    return m < 0 || (size_t)m >= cap ? -ENOBUFS : m;
}

/* ---- refresh ---- */

int wsp_auth_refresh(wsp_auth_shard_t *as, const uint8_t *msg, size_t len, uint64_t uid,
                     int64_t now, uint32_t *deadline)
{
    /* jansson over at most WSP_WS_MAX_MSG bytes: the only client message with a meaning. */
    json_t *j = json_loadb((const char *)msg, len, JSON_REJECT_DUPLICATES, NULL);
    json_t *t =
        j && json_is_object(j) && json_object_size(j) == 1 ? json_object_get(j, "refresh") : NULL;
    if (t == NULL || !json_is_string(t)) {
        json_decref(j);
        return 1; /* not a refresh: dropped as any other message */
    }
    const wsp_auth_t *a = as->auth;
    wsp_jwt_claims_t c;
    wsp_auth_shard_sync(as);
    int rv = wsp_jwt_verify(as->key->key, &a->policy, json_string_value(t), json_string_length(t),
                            now, &c);
    json_decref(j);
    if (rv < 0 || wsp_auth_uid(a, c.sub, c.sub_len) != uid)
        return -EACCES;
    *deadline = deadline_of(c.exp, a->cfg->auth_leeway);
    return 0;
}
