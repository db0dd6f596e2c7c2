/* Token auth's checks (server/auth.c): where the token is found, what the claims grant
 * (channels against ?channels=, user id, deadline), the 401/403 answers, the refresh message
 * and the key reload. Tokens are minted with common/jwt.c from an HS256 secret written to a
 * temporary file; the signature and claim checks themselves are test_jwt's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth.h"
#include "metrics.h"

#define SECRET "test-auth-secret-0123456789abcdef0123456789"
#define SECRET2 "another-secret-after-sighup-0123456789abcdef"

static char keyfile[64];
static wsp_config_t cfg;
static wsp_auth_t *auth;
static wsp_auth_shard_t *as;
static wsp_jwt_key_t *signer; /* mints with the file's current secret */
static int64_t now;

static void write_key(const char *secret)
{
    FILE *f = fopen(keyfile, "w");
    assert_non_null(f);
    fprintf(f, "%s\n", secret);
    assert_int_equal(fclose(f), 0);
    char err[256];
    wsp_jwt_key_free(signer);
    assert_int_equal(
        wsp_jwt_key_from_mem(&signer, WSP_JWT_HS256, secret, strlen(secret), 0, err, sizeof(err)),
        0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(keyfile, sizeof(keyfile), "/tmp/wsp-test-auth-XXXXXX");
    int fd = mkstemp(keyfile);
    assert_true(fd >= 0);
    close(fd);
    write_key(SECRET);
    memset(&cfg, 0, sizeof(cfg));
    cfg.auth_jwt_alg = WSP_JWT_HS256;
    snprintf(cfg.auth_jwt_key, sizeof(cfg.auth_jwt_key), "%s", keyfile);
    cfg.auth_leeway = 5;
    char err[256];
    assert_int_equal(wsp_auth_new(&auth, &cfg, 1, err, sizeof(err)), 0);
    as = wsp_auth_shard(auth, 0);
    now = (int64_t)time(NULL);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    wsp_auth_free(auth);
    wsp_jwt_key_free(signer);
    signer = NULL;
    unlink(keyfile);
    return 0;
}

/* A token for claims_json (printf-style, so exp can be computed). */
static const char *token(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *token(const char *fmt, ...)
{
    static char out[2][4096];
    static int which;
    char claims[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(claims, sizeof(claims), fmt, ap);
    va_end(ap);
    which ^= 1;
    assert_true(wsp_jwt_sign(signer, claims, out[which], sizeof(out[which])) > 0);
    return out[which];
}

/* Parses an upgrade request for target with the extra header lines (static buffer). */
static const wsp_upgrade_req_t *request(const char *target, const char *headers)
{
    static char buf[8192];
    static wsp_upgrade_req_t r;
    int n = snprintf(buf, sizeof(buf),
                     "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\n%s\r\n",
                     target, headers);
    assert_true(n > 0 && (size_t)n < sizeof(buf));
    int status = 0;
    assert_true(wsp_upgrade_parse((const uint8_t *)buf, (size_t)n, &r, &status) > 0);
    return &r;
}

/* Admits target + headers; returns the status, the grant in *g. */
static int admit(const char *target, const char *headers, wsp_auth_grant_t *g)
{
    const wsp_upgrade_req_t *r = request(target, headers);
    wsp_chanlist_t asked;
    if (wsp_channels_parse_query(r->query, r->query_len, &asked) < 0)
        return 400;
    return wsp_auth_admit(as, r, &asked, now, g);
}

static void assert_token(const char *target, const char *headers, const char *want)
{
    const char *tok = NULL;
    size_t len = 0;
    assert_int_equal(wsp_auth_token_find(request(target, headers), &tok, &len), 0);
    assert_int_equal(len, strlen(want));
    assert_memory_equal(tok, want, len);
}

static void assert_token_rv(const char *target, const char *headers, int rv)
{
    const char *tok;
    size_t len;
    assert_int_equal(wsp_auth_token_find(request(target, headers), &tok, &len), rv);
}

static void test_token_sources(void **state)
{
    (void)state;
    assert_token("/", "Authorization: Bearer abc.def.ghi\r\n", "abc.def.ghi");
    assert_token("/", "Authorization: bearer   abc\r\n", "abc"); /* the scheme is not case-bound */
    assert_token("/?a=1&token=q.q.q&b=2", "", "q.q.q");
    assert_token("/", "Cookie: a=b; wspush_token=c.c.c; d=e\r\n", "c.c.c");
    assert_token("/", "Cookie: wspush_token=\"c.c\"\r\n", "c.c"); /* a quoted value */
    /* The order: header, then query, then cookie; a non-Bearer Authorization is not ours. */
    assert_token("/?token=q", "Authorization: Bearer h\r\nCookie: wspush_token=c\r\n", "h");
    assert_token("/?token=q", "Cookie: wspush_token=c\r\n", "q");
    assert_token("/?token=q", "Authorization: Basic dXNlcg==\r\n", "q");
    assert_token("/?token", "", ""); /* present and empty: the verifier says missing */
    /* Absent, and ambiguous. */
    assert_token_rv("/?tokens=x", "Cookie: wspush_tokens=x; xwspush_token=y\r\n", -ENOENT);
    assert_token_rv("/?token=a&token=b", "", -EBADMSG);
    assert_token_rv("/", "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n", -EBADMSG);
    assert_token_rv("/", "Cookie: wspush_token=a; wspush_token=b\r\n", -EBADMSG);
    assert_token_rv("/", "Cookie: a=1\r\nCookie: wspush_token=b\r\n", -EBADMSG);
}

static void test_admit_ok(void **state)
{
    (void)state;
    wsp_auth_grant_t g;
    char hdr[4200];
    snprintf(hdr, sizeof(hdr), "Authorization: Bearer %s\r\n",
             token("{\"sub\":\"alice\",\"exp\":%lld}", (long long)now + 60));
    assert_int_equal(admit("/", hdr, &g), 0);
    assert_true(g.uid == wsp_auth_uid(auth, "alice", 5));
    assert_true(g.uid != wsp_auth_uid(auth, "alicf", 5));
    assert_int_equal(g.deadline, (uint32_t)(now + 60 + 5)); /* exp + leeway */
    assert_int_equal(g.channels.n, 1);                      /* no claim: the default */
    assert_memory_equal(g.channels.v[0].name, "time", 4);
}

/* The "channels" claim against ?channels=: a subset or 403; without the query the claim's
 * channels (an empty claim: none at all); without the claim no restriction. */
static void test_admit_channels(void **state)
{
    (void)state;
    wsp_auth_grant_t g;
    long long exp = (long long)now + 60;
    char q[4200];
    const char *news =
        token("{\"sub\":\"u\",\"exp\":%lld,\"channels\":[\"news\",\"time\",\"news\"]}", exp);
    snprintf(q, sizeof(q), "/?token=%s", news);
    assert_int_equal(admit(q, "", &g), 0);
    assert_int_equal(g.channels.n, 2); /* duplicates merged */
    assert_memory_equal(g.channels.v[0].name, "news", 4);
    assert_memory_equal(g.channels.v[1].name, "time", 4);
    snprintf(q, sizeof(q), "/?channels=news&token=%s", news);
    assert_int_equal(admit(q, "", &g), 0);
    assert_int_equal(g.channels.n, 1);
    snprintf(q, sizeof(q), "/?channels=news,sport&token=%s", news);
    assert_int_equal(admit(q, "", &g), 403);
    assert_int_equal(g.fail, WSP_AUTH_FAIL_CHANNEL);

    const char *none = token("{\"sub\":\"u\",\"exp\":%lld,\"channels\":[]}", exp);
    snprintf(q, sizeof(q), "/?token=%s", none);
    assert_int_equal(admit(q, "", &g), 0);
    assert_int_equal(g.channels.n, 0); /* only its user's messages */
    snprintf(q, sizeof(q), "/?channels=time&token=%s", none);
    assert_int_equal(admit(q, "", &g), 403);

    const char *any = token("{\"sub\":\"u\",\"exp\":%lld}", exp);
    snprintf(q, sizeof(q), "/?channels=sport,time&token=%s", any);
    assert_int_equal(admit(q, "", &g), 0);
    assert_int_equal(g.channels.n, 2);

    const char *bad = token("{\"sub\":\"u\",\"exp\":%lld,\"channels\":[\"a b\"]}", exp);
    snprintf(q, sizeof(q), "/?token=%s", bad); /* not a channel name here: malformed */
    assert_int_equal(admit(q, "", &g), 401);
    assert_int_equal(g.fail, -WSP_JWT_MALFORMED - 1);
}

/* Each refusal maps to its counter label. */
static void test_admit_refused(void **state)
{
    (void)state;
    wsp_auth_grant_t g;
    char q[4200];
    assert_int_equal(admit("/", "", &g), 401);
    assert_string_equal(wsp_metrics_auth_reason(g.fail), "missing");
    assert_int_equal(admit("/?token=a&token=b", "", &g), 401);
    assert_string_equal(wsp_metrics_auth_reason(g.fail), "malformed");
    snprintf(q, sizeof(q), "/?token=%s", token("{\"sub\":\"u\",\"exp\":%lld}", (long long)now - 6));
    assert_int_equal(admit(q, "", &g), 401);
    assert_string_equal(wsp_metrics_auth_reason(g.fail), "expired");
    snprintf(q, sizeof(q), "/?token=%s", token("{\"sub\":\"u\",\"exp\":%lld}", (long long)now - 4));
    assert_int_equal(admit(q, "", &g), 0); /* within the leeway */
    snprintf(q, sizeof(q), "/?token=%s", token("{\"exp\":%lld}", (long long)now + 60));
    assert_int_equal(admit(q, "", &g), 401);
    assert_string_equal(wsp_metrics_auth_reason(g.fail), "malformed"); /* no sub */
}

static void test_response(void **state)
{
    (void)state;
    char out[512];
    int n = wsp_auth_response(401, 4, out, sizeof(out)); /* expired */
    assert_true(n > 0 && (size_t)n == strlen(out));
    assert_non_null(strstr(out, "HTTP/1.1 401 Unauthorized\r\n"));
    assert_non_null(strstr(out, "WWW-Authenticate: Bearer\r\n"));
    assert_non_null(strstr(out, "Connection: close\r\n"));
    const char *body = strstr(out, "\r\n\r\n") + 4;
    assert_string_equal(body, "{\"error\":\"expired\"}");
    assert_non_null(strstr(out, "Content-Length: 19\r\n"));
    n = wsp_auth_response(403, WSP_AUTH_FAIL_CHANNEL, out, sizeof(out));
    assert_true(n > 0);
    assert_non_null(strstr(out, "HTTP/1.1 403 Forbidden\r\n"));
    assert_null(strstr(out, "WWW-Authenticate"));
    assert_string_equal(strstr(out, "\r\n\r\n") + 4, "{\"error\":\"forbidden_channel\"}");
    assert_int_equal(wsp_auth_response(401, 0, out, 40), -ENOBUFS);
}

static int refresh(const char *msg, uint64_t uid, uint32_t *deadline)
{
    return wsp_auth_refresh(as, (const uint8_t *)msg, strlen(msg), uid, now, deadline);
}

static void test_refresh(void **state)
{
    (void)state;
    uint64_t alice = wsp_auth_uid(auth, "alice", 5);
    uint32_t d = 0;
    char msg[4200];
    snprintf(msg, sizeof(msg), "{\"refresh\":\"%s\"}",
             token("{\"sub\":\"alice\",\"exp\":%lld}", (long long)now + 600));
    assert_int_equal(refresh(msg, alice, &d), 0);
    assert_int_equal(d, (uint32_t)(now + 605));
    /* Another user's valid token, an invalid one: 4003. */
    snprintf(msg, sizeof(msg), "{\"refresh\":\"%s\"}",
             token("{\"sub\":\"bob\",\"exp\":%lld}", (long long)now + 600));
    assert_int_equal(refresh(msg, alice, &d), -EACCES);
    assert_int_equal(refresh("{\"refresh\":\"x.y.z\"}", alice, &d), -EACCES);
    assert_int_equal(refresh("{\"refresh\":\"\"}", alice, &d), -EACCES);
    /* Not a refresh: dropped as before. */
    static const char *const others[] = {
        "hello",           "{}",
        "{\"refresh\":1}", "{\"refresh\":\"a\",\"x\":1}",
        "[\"refresh\"]",   "{\"refresh\":\"a\",\"refresh\":\"b\"}"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        assert_int_equal(refresh(others[i], alice, &d), 1);
    assert_int_equal(d, (uint32_t)(now + 605));
}

/* SIGHUP's reload: new connections verify with the new key once the shard takes it; a bad
 * file keeps the key in use. */
static void test_reload(void **state)
{
    (void)state;
    wsp_auth_grant_t g;
    char q[4200];
    long long exp = (long long)now + 60;
    snprintf(q, sizeof(q), "/?token=%s", token("{\"sub\":\"u\",\"exp\":%lld}", exp));
    write_key(SECRET2);
    assert_int_equal(admit(q, "", &g), 0); /* not reloaded yet */
    assert_int_equal(wsp_auth_reload(auth), 0);
    assert_int_equal(admit(q, "", &g), 401); /* the old key's token */
    assert_string_equal(wsp_metrics_auth_reason(g.fail), "signature");
    snprintf(q, sizeof(q), "/?token=%s", token("{\"sub\":\"u\",\"exp\":%lld}", exp));
    assert_int_equal(admit(q, "", &g), 0);
    FILE *f = fopen(keyfile, "w"); /* empty: not a key */
    assert_non_null(f);
    fclose(f);
    assert_true(wsp_auth_reload(auth) < 0);
    assert_int_equal(admit(q, "", &g), 0); /* still the second key */
    /* Two reloads before the shard looks: the first key posted is dropped, not leaked. */
    write_key(SECRET);
    assert_int_equal(wsp_auth_reload(auth), 0);
    assert_int_equal(wsp_auth_reload(auth), 0);
    wsp_auth_shard_sync(as);
    snprintf(q, sizeof(q), "/?token=%s", token("{\"sub\":\"u\",\"exp\":%lld}", exp));
    assert_int_equal(admit(q, "", &g), 0);
}

/* A live upgrade (issue #20): the new process's auth takes the old one's user-id key, so the
 * ids its connections carry match what it computes (user messages, refreshes). */
static void test_adopt_sipkey(void **state)
{
    (void)state;
    wsp_auth_t *next;
    char err[256];
    assert_int_equal(wsp_auth_new(&next, &cfg, 1, err, sizeof(err)), 0);
    uint64_t alice = wsp_auth_uid(auth, "alice", 5);
    assert_int_equal(wsp_auth_carried(auth), 0);
    assert_int_equal(wsp_auth_carried(next), 0);
    assert_true(wsp_auth_uid(next, "alice", 5) != alice); /* its own random key: 2^-64 */
    uint8_t key[16];
    wsp_auth_sipkey(auth, key);
    wsp_auth_adopt_sipkey(next, key);
    assert_int_equal(wsp_auth_carried(next), 1);
    assert_true(wsp_auth_uid(next, "alice", 5) == alice);
    assert_true(wsp_auth_uid(next, "bob", 3) == wsp_auth_uid(auth, "bob", 3));
    /* A carried connection's refresh for the same sub is accepted by the new process. */
    char msg[4200];
    snprintf(msg, sizeof(msg), "{\"refresh\":\"%s\"}",
             token("{\"sub\":\"alice\",\"exp\":%lld}", (long long)now + 600));
    uint32_t d = 0;
    assert_int_equal(wsp_auth_refresh(wsp_auth_shard(next, 0), (const uint8_t *)msg, strlen(msg),
                                      alice, now, &d),
                     0);
    assert_int_equal(d, (uint32_t)(now + 605));
    wsp_auth_free(next);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_token_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admit_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admit_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admit_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_response, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refresh, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_adopt_sipkey, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
