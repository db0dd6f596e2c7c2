/* Fuzzes token auth's own parsing (server/auth.c): where an upgrade request's token is
 * (Authorization, ?token=, the wspush_token cookie), what its "channels" claim grants against
 * ?channels=, and the {"refresh":"<jwt>"} message. The token's signature and claims parser is
 * fuzz_jwt's; here a fixed HS256 key signs what modes 2 and 3 need signed.
 *
 * Input: [mode][rest]; now is fixed at 1,700,000,000, leeway 5 s.
 *   0: rest is a whole upgrade request; the token is looked for and admitted;
 *   1: rest is a client text message, handled as a refresh for user "user-1";
 *   2: rest is "QUERY\nCLAIMS": CLAIMS is signed and sent as ?QUERY&token=..., then admitted;
 *   3: rest is CLAIMS, signed and sent as {"refresh":"<token>"} for user "user-1".
 *
 * Checked: a found token lies inside the request, inside the source that wins (Authorization
 * with the Bearer scheme, else the query, else the Cookie header); admission answers 0, 401
 * with one of the nine reasons, or 403 for a channel; what it grants are valid channel names,
 * each asked for or in the claim (a subset of the claim when both); the deadline is exp + 5
 * and the user id is the sub's; a refresh answers 0 only for a token that verifies with sub
 * "user-1", -EACCES for any other token, 1 for what is not a refresh. */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "auth.h"
#include "fuzz.h"
#include "metrics.h"

#define NOW 1700000000
static const char secret[] = "fuzz-only-auth-hs256-secret-not-for-production!!";

static wsp_config_t cfg;
static wsp_auth_t *auth;
static wsp_auth_shard_t *as;
static wsp_jwt_key_t *signer;
static uint64_t user1;

static void init(void)
{
    if (auth != NULL)
        return;
    char path[] = "/tmp/wsp-fuzz-auth-XXXXXX";
    int fd = mkstemp(path);
    WSP_FUZZ_CHECK(fd >= 0);
    WSP_FUZZ_CHECK(write(fd, secret, strlen(secret)) == (ssize_t)strlen(secret));
    close(fd);
    cfg.auth_jwt_alg = WSP_JWT_HS256;
    strcpy(cfg.auth_jwt_key, path);
    cfg.auth_leeway = 5;
    char err[256];
    WSP_FUZZ_CHECK(wsp_auth_new(&auth, &cfg, 1, err, sizeof(err)) == 0);
    unlink(path);
    as = wsp_auth_shard(auth, 0);
    WSP_FUZZ_CHECK(wsp_jwt_key_from_mem(&signer, WSP_JWT_HS256, secret, strlen(secret), 0, err,
                                        sizeof(err)) == 0);
    user1 = wsp_auth_uid(auth, "user-1", 6);
}

static int inside(const char *p, size_t n, const char *in, size_t in_len)
{
    return in != NULL && p >= in && p + n <= in + in_len;
}

/* Where the token came from must be the source that wins. */
static void check_token(const wsp_upgrade_req_t *r, const uint8_t *buf, size_t len)
{
    const char *tok;
    size_t n;
    int rv = wsp_auth_token_find(r, &tok, &n);
    WSP_FUZZ_CHECK(rv == 0 || rv == -ENOENT || rv == -EBADMSG);
    if (rv != 0)
        return;
    WSP_FUZZ_CHECK(inside(tok, n, (const char *)buf, len));
    int bearer = r->authorization_count == 1 && r->authorization_len >= 6 &&
                 strncasecmp(r->authorization, "bearer", 6) == 0 &&
                 (r->authorization_len == 6 || r->authorization[6] == ' ');
    if (bearer)
        WSP_FUZZ_CHECK(inside(tok, n, r->authorization, r->authorization_len));
    else if (!inside(tok, n, r->query, r->query_len))
        WSP_FUZZ_CHECK(inside(tok, n, r->cookie, r->cookie_len));
}

static int listed(const wsp_chanlist_t *l, const char *name, size_t len)
{
    for (unsigned i = 0; i < l->n; i++)
        if (l->v[i].len == len && memcmp(l->v[i].name, name, len) == 0)
            return 1;
    return 0;
}

static void check_admit(const wsp_upgrade_req_t *r)
{
    wsp_chanlist_t asked;
    if (wsp_channels_parse_query(r->query, r->query_len, &asked) < 0)
        return; /* conn_admit() answers 400 first */
    static wsp_auth_grant_t g;
    int st = wsp_auth_admit(as, r, &asked, NOW, &g);
    WSP_FUZZ_CHECK(st == 0 || st == 401 || st == 403);
    if (st == 401)
        WSP_FUZZ_CHECK(g.fail >= 0 && g.fail < WSP_JWT_REASONS);
    if (st == 403)
        WSP_FUZZ_CHECK(g.fail == WSP_AUTH_FAIL_CHANNEL && g.claims.channels_present);
    if (st != 0)
        return;
    WSP_FUZZ_CHECK(g.uid == wsp_auth_uid(auth, g.claims.sub, g.claims.sub_len));
    WSP_FUZZ_CHECK(g.deadline == (uint32_t)(g.claims.exp + 5) || g.deadline == UINT32_MAX);
    wsp_chanlist_t claim = {.n = 0};
    for (unsigned i = 0; i < g.claims.n_channels && claim.n < WSP_CHANNELS_MAX; i++) {
        claim.v[claim.n].name = g.claims.channels[i];
        claim.v[claim.n].len = g.claims.channel_len[i];
        claim.n++;
    }
    for (unsigned i = 0; i < g.channels.n; i++) {
        const char *name = g.channels.v[i].name;
        size_t len = g.channels.v[i].len;
        WSP_FUZZ_CHECK(wsp_channel_valid(name, len));
        WSP_FUZZ_CHECK(listed(&asked, name, len) || listed(&claim, name, len));
        if (g.claims.channels_present)
            WSP_FUZZ_CHECK(listed(&claim, name, len));
    }
}

static void run_request(const uint8_t *buf, size_t len)
{
    wsp_upgrade_req_t r;
    int status;
    if (wsp_upgrade_parse(buf, len, &r, &status) <= 0)
        return;
    check_token(&r, buf, len);
    check_admit(&r);
}

static void run_refresh(const uint8_t *msg, size_t len, const char *signed_token, size_t tlen)
{
    uint32_t deadline = 7;
    int rv = wsp_auth_refresh(as, msg, len, user1, NOW, &deadline);
    WSP_FUZZ_CHECK(rv == 0 || rv == 1 || rv == -EACCES);
    WSP_FUZZ_CHECK(rv == 0 || deadline == 7);
    if (signed_token == NULL)
        return;
    wsp_jwt_claims_t c;
    int ok = wsp_jwt_verify(signer, &(wsp_jwt_policy_t){.leeway = 5}, signed_token, tlen, NOW,
                            &c) == 0 &&
             c.sub_len == 6 && memcmp(c.sub, "user-1", 6) == 0;
    WSP_FUZZ_CHECK(rv == (ok ? 0 : -EACCES));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init();
    if (size < 1)
        return 0;
    uint8_t mode = data[0] & 3;
    const uint8_t *p = data + 1;
    size_t n = size - 1;
    static char tok[8192], buf[16384];
    if (mode == 0) {
        run_request(p, n);
    } else if (mode == 1) {
        run_refresh(p, n, NULL, 0);
    } else {
        const uint8_t *nl = mode == 2 ? memchr(p, '\n', n) : NULL;
        if (mode == 2 && nl == NULL)
            return 0;
        const uint8_t *claims = nl ? nl + 1 : p;
        size_t clen = n - (size_t)(claims - p);
        char cj[4096];
        if (clen >= sizeof(cj) || memchr(claims, 0, clen) != NULL)
            return 0;
        memcpy(cj, claims, clen);
        cj[clen] = '\0';
        int tl = wsp_jwt_sign(signer, cj, tok, sizeof(tok));
        if (tl < 0)
            return 0;
        int bl;
        if (mode == 2)
            bl = snprintf(buf, sizeof(buf),
                          "GET /?%.*s&token=%s HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n",
                          (int)(nl - p), (const char *)p, tok);
        else
            bl = snprintf(buf, sizeof(buf), "{\"refresh\":\"%s\"}", tok);
        if (bl < 0 || (size_t)bl >= sizeof(buf))
            return 0;
        if (mode == 2)
            run_request((const uint8_t *)buf, (size_t)bl);
        else
            run_refresh((const uint8_t *)buf, (size_t)bl, tok, (size_t)tl);
    }
    return 0;
}
