#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "jwt.h"

/* Keys come from the openssl CLI and reference tokens from PyJWT, both made by
 * jwt_fixtures.py (next to this file) into a fresh directory for every run. */

extern char **environ;

/* libjwt 1.10 (<jwt.h>, which common/jwt.h shadows on the include path), as a second
 * verifier of the tokens we mint: the three calls used, as its header declares them. */
typedef struct jwt jwt_t;
int jwt_decode(jwt_t **jwt, const char *token, const unsigned char *key, int key_len);
const char *jwt_get_grant(jwt_t *jwt, const char *grant);
void jwt_free(jwt_t *jwt);

#define AUD "wspush"
#define ISS "issuer-1"
static const wsp_jwt_policy_t plain = {NULL, NULL, 5};
static const wsp_jwt_policy_t strict = {AUD, ISS, 5};

static struct {
    char dir[64];
    char script[4096];
    char text[1 << 16]; /* pyjwt.txt: "NAME TOKEN" lines, split in place */
    const char *name[128], *tok[128];
    int n;
} fx;

/* Runs argv[0] with argv; returns its exit status, or -1. */
static int run(char *const argv[])
{
    pid_t pid;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static char *path(const char *file)
{
    static char p[4][256];
    static int i;
    i = (i + 1) % 4; /* a few at once: load(a) and load(b) in one expression */
    snprintf(p[i], sizeof(p[i]), "%s/%s", fx.dir, file);
    return p[i];
}

static char *slurp(const char *file, size_t *len)
{
    FILE *f = fopen(path(file), "rb");
    assert_non_null(f);
    static char buf[4][8192];
    static int i;
    i = (i + 1) % 4;
    *len = fread(buf[i], 1, sizeof(buf[i]) - 1, f);
    buf[i][*len] = '\0';
    fclose(f);
    return buf[i];
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(fx.script, sizeof(fx.script), "%s", __FILE__);
    char *slash = strrchr(fx.script, '/');
    snprintf(slash != NULL ? slash + 1 : fx.script, 64, "jwt_fixtures.py");
    const char *tmp = getenv("TMPDIR");
    snprintf(fx.dir, sizeof(fx.dir), "%s/wspush-jwt-XXXXXX", tmp != NULL ? tmp : "/tmp");
    if (mkdtemp(fx.dir) == NULL)
        return -1;
    char *argv[] = {"/usr/bin/python3", fx.script, "gen", fx.dir, NULL};
    if (run(argv) != 0)
        return -1;
    FILE *f = fopen(path("pyjwt.txt"), "r");
    if (f == NULL)
        return -1;
    fx.text[fread(fx.text, 1, sizeof(fx.text) - 1, f)] = '\0';
    fclose(f);
    char *save = NULL, *sp;
    for (char *l = strtok_r(fx.text, "\n", &save); l != NULL && fx.n < 128 && (sp = strchr(l, ' '));
         l = strtok_r(NULL, "\n", &save)) {
        *sp = '\0';
        fx.name[fx.n] = l;
        fx.tok[fx.n++] = sp + 1;
    }
    return fx.n > 40 ? 0 : -1;
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(fx.dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static const char *tok(const char *name)
{
    for (int i = 0; i < fx.n; i++)
        if (strcmp(fx.name[i], name) == 0)
            return fx.tok[i];
    fail_msg("no fixture token %s", name);
    return NULL;
}

static wsp_jwt_key_t *load(int alg, const char *file, int private_key)
{
    wsp_jwt_key_t *k = NULL;
    char err[256] = "";
    int rv = wsp_jwt_key_load(&k, alg, path(file), private_key, err, sizeof(err));
    if (rv != 0)
        fail_msg("%s %s: %s", wsp_jwt_alg_name(alg), file, err);
    return k;
}

static int verify_at(const wsp_jwt_key_t *k, const wsp_jwt_policy_t *p, const char *t, int64_t now,
                     wsp_jwt_claims_t *c)
{
    return wsp_jwt_verify(k, p, t, strlen(t), now, c);
}

#define verify(k, p, t, c) verify_at((k), (p), (t), time(NULL), (c))

static void test_names(void **state)
{
    (void)state;
    for (int a = WSP_JWT_HS256; a <= WSP_JWT_ES384; a++)
        assert_int_equal(wsp_jwt_alg_parse(wsp_jwt_alg_name(a)), a);
    assert_int_equal(wsp_jwt_alg_parse("none"), -EINVAL);
    assert_int_equal(wsp_jwt_alg_parse("hs256"), -EINVAL);
    assert_int_equal(wsp_jwt_alg_parse("ES512"), -EINVAL);
    assert_int_equal(wsp_jwt_alg_parse(NULL), -EINVAL);
    assert_null(wsp_jwt_alg_name(0));
    assert_null(wsp_jwt_alg_name(WSP_JWT_ES384 + 1));
    static const char *want[] = {"missing",       "malformed", "signature", "algorithm", "expired",
                                 "not_yet_valid", "audience",  "issuer",    "too_large"};
    int rv[] = {WSP_JWT_MISSING,   WSP_JWT_MALFORMED, WSP_JWT_SIGNATURE,
                WSP_JWT_ALGORITHM, WSP_JWT_EXPIRED,   WSP_JWT_NOT_YET_VALID,
                WSP_JWT_AUDIENCE,  WSP_JWT_ISSUER,    WSP_JWT_TOO_LARGE};
    for (int i = 0; i < WSP_JWT_REASONS; i++) {
        assert_int_equal(-rv[i] - 1, i); /* the counter index the header promises */
        assert_string_equal(wsp_jwt_reason_name(rv[i]), want[i]);
    }
    assert_string_equal(wsp_jwt_reason_name(0), "ok");
    assert_string_equal(wsp_jwt_reason_name(-10), "unknown");
    assert_string_equal(wsp_jwt_reason_name(1), "unknown");
}

/* What each PyJWT token must give, with which key and policy. */
static const struct {
    const char *name;
    int alg;
    const char *key;
    const wsp_jwt_policy_t *policy;
    int want;
    const char *sub; /* for the accepted ones */
} pyjwt_cases[] = {
    {"ok-HS256", WSP_JWT_HS256, "hs.key", &plain, 0, "user-HS256"},
    {"ok-HS384", WSP_JWT_HS384, "hs.key", &plain, 0, "user-HS384"},
    {"ok-HS512", WSP_JWT_HS512, "hs.key", &plain, 0, "user-HS512"},
    {"ok-RS256", WSP_JWT_RS256, "rsa.pub", &plain, 0, "user-RS256"},
    {"ok-RS384", WSP_JWT_RS384, "rsa.pub", &plain, 0, "user-RS384"},
    {"ok-RS512", WSP_JWT_RS512, "rsa.pub", &plain, 0, "user-RS512"},
    {"ok-RS256", WSP_JWT_RS256, "rsa-pkcs1.pub", &plain, 0, "user-RS256"}, /* RSA PUBLIC KEY */
    {"ok-ES256", WSP_JWT_ES256, "ec256.pub", &plain, 0, "user-ES256"},
    {"ok-ES384", WSP_JWT_ES384, "ec384.pub", &plain, 0, "user-ES384"},
    {"ok-float-exp", WSP_JWT_HS256, "hs.key", &plain, 0, "user-1"},
    {"ok-aud-iss", WSP_JWT_HS256, "hs.key", &strict, 0, "user-1"},
    {"ok-aud-array", WSP_JWT_HS256, "hs.key", &strict, 0, "user-1"},
    {"ok-sub-64", WSP_JWT_HS256, "hs.key", &plain, 0, NULL},
    {"ok-sub-utf8", WSP_JWT_HS256, "hs.key", &plain, 0, NULL},
    {"ok-kid-typ", WSP_JWT_HS256, "hs.key", &plain, 0, "user-1"},
    {"nbf-past", WSP_JWT_HS256, "hs.key", &plain, 0, "user-1"},
    {"aud-wrong", WSP_JWT_HS256, "hs.key", &plain, 0, "user-1"}, /* no aud policy: ignored */
    {"aud-number", WSP_JWT_HS256, "hs.key", &plain, 0, "user-1"},
    {"bad-sig-hs", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_SIGNATURE, NULL},
    {"bad-sig-es", WSP_JWT_ES256, "ec256.pub", &plain, WSP_JWT_SIGNATURE, NULL},
    {"bad-sig-rs", WSP_JWT_RS256, "rsa.pub", &plain, WSP_JWT_SIGNATURE, NULL},
    {"ok-ES256", WSP_JWT_ES256, "ec256b.pub", &plain, WSP_JWT_SIGNATURE, NULL},
    {"alg-none", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_ALGORITHM, NULL},
    {"alg-none", WSP_JWT_ES256, "ec256.pub", &plain, WSP_JWT_ALGORITHM, NULL},
    {"alg-hs384", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_ALGORITHM, NULL},
    {"alg-rs256", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_ALGORITHM, NULL},
    {"ok-ES256", WSP_JWT_RS256, "rsa.pub", &plain, WSP_JWT_ALGORITHM, NULL},
    {"ok-HS256", WSP_JWT_ES256, "ec256.pub", &plain, WSP_JWT_ALGORITHM, NULL},
    {"expired", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_EXPIRED, NULL},
    {"nbf-future", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_NOT_YET_VALID, NULL},
    {"iat-future", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_NOT_YET_VALID, NULL},
    {"aud-wrong", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_AUDIENCE, NULL},
    {"aud-wrong-array", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_AUDIENCE, NULL},
    {"aud-longer", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_AUDIENCE, NULL},
    {"aud-missing", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_AUDIENCE, NULL},
    {"aud-number", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_MALFORMED, NULL},
    {"aud-array-number", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_MALFORMED, NULL},
    {"iss-wrong", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_ISSUER, NULL},
    {"iss-missing", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_ISSUER, NULL},
    {"iss-longer", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_ISSUER, NULL},
    {"iss-number", WSP_JWT_HS256, "hs.key", &strict, WSP_JWT_MALFORMED, NULL},
    {"sub-missing", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"sub-65", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"sub-empty", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"sub-number", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"exp-string", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"exp-missing", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"exp-bool", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"nbf-string", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"channels-9", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"channels-non-string", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"channels-name-65", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"channels-name-empty", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
    {"channels-string", WSP_JWT_HS256, "hs.key", &plain, WSP_JWT_MALFORMED, NULL},
};

static void test_pyjwt_tokens(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(pyjwt_cases) / sizeof(pyjwt_cases[0]); i++) {
        wsp_jwt_key_t *k = load(pyjwt_cases[i].alg, pyjwt_cases[i].key, 0);
        wsp_jwt_claims_t c;
        int rv = verify(k, pyjwt_cases[i].policy, tok(pyjwt_cases[i].name), &c);
        if (rv != pyjwt_cases[i].want)
            fail_msg("%s with %s: %s, want %s", pyjwt_cases[i].name, pyjwt_cases[i].key,
                     wsp_jwt_reason_name(rv), wsp_jwt_reason_name(pyjwt_cases[i].want));
        if (rv == 0 && pyjwt_cases[i].sub != NULL)
            assert_string_equal(c.sub, pyjwt_cases[i].sub);
        wsp_jwt_key_free(k);
    }
}

static void test_pyjwt_claims(void **state)
{
    (void)state;
    wsp_jwt_key_t *k = load(WSP_JWT_HS256, "hs.key", 0);
    wsp_jwt_claims_t c;
    assert_int_equal(verify(k, &plain, tok("ok-channels"), &c), 0);
    assert_true(c.channels_present);
    assert_int_equal(c.n_channels, 2);
    assert_string_equal(c.channels[0], "news");
    assert_string_equal(c.channels[1], "sport:eu");
    assert_int_equal(c.channel_len[1], 8);
    assert_int_equal(c.sub_len, 6);
    assert_true(c.exp > time(NULL) + 3000 && c.exp <= time(NULL) + 3600);
    assert_int_equal(verify(k, &plain, tok("ok-channels-empty"), &c), 0);
    assert_true(c.channels_present);
    assert_int_equal(c.n_channels, 0);
    assert_int_equal(verify(k, &plain, tok("ok-channels-8"), &c), 0);
    assert_int_equal(c.n_channels, 8);
    assert_string_equal(c.channels[7], "c7");
    assert_int_equal(verify(k, &plain, tok("ok-channel-64"), &c), 0);
    assert_int_equal(c.channel_len[0], 64);
    assert_int_equal(strlen(c.channels[0]), 64);
    assert_int_equal(verify(k, &plain, tok("ok-HS256"), &c), 0);
    assert_false(c.channels_present);
    assert_int_equal(c.n_channels, 0);
    assert_int_equal(verify(k, &plain, tok("ok-sub-64"), &c), 0);
    assert_int_equal(c.sub_len, 64);
    assert_int_equal(strlen(c.sub), 64);
    assert_int_equal(verify(k, &plain, tok("ok-sub-utf8"), &c), 0);
    assert_int_equal(c.sub_len, 64);
    assert_memory_equal(c.sub, "\xc3\xbc\xc3\xbc", 4);
    assert_int_equal(verify(k, &plain, tok("ok-float-exp"), &c), 0);
    int64_t exp = c.exp; /* 3600.25 s after PyJWT's now: rounded up */
    assert_int_equal(verify(k, &plain, tok("ok-HS256"), &c), 0);
    assert_int_equal(exp, c.exp + 1);
    /* Failure leaves the caller's claims alone. */
    wsp_jwt_claims_t before;
    memset(&c, 0x5A, sizeof(c));
    memcpy(&before, &c, sizeof(c));
    assert_int_equal(verify(k, &plain, tok("channels-9"), &c), WSP_JWT_MALFORMED);
    assert_int_equal(verify(k, &plain, tok("expired"), &c), WSP_JWT_EXPIRED);
    assert_memory_equal(&c, &before, sizeof(c));
    assert_int_equal(verify(k, &plain, tok("ok-HS256"), NULL), 0); /* claims optional */
    wsp_jwt_key_free(k);
}

/* A token from raw parts; sig may be NULL for an empty signature part. */
static void raw_token(char *out, size_t cap, const char *hdr, const char *pl, const void *sig,
                      size_t sig_len)
{
    int h = wsp_jwt_b64url_encode(hdr, strlen(hdr), out, cap);
    assert_true(h > 0);
    out[h] = '.';
    int p = wsp_jwt_b64url_encode(pl, strlen(pl), out + h + 1, cap - (size_t)h - 1);
    assert_true(p > 0);
    size_t k = (size_t)h + 1 + (size_t)p;
    out[k++] = '.';
    assert_true(wsp_jwt_b64url_encode(sig, sig_len, out + k, cap - k) >= 0);
}

/* The compact form and base64url, on our own HS256 token. */
static void test_form(void **state)
{
    (void)state;
    wsp_jwt_key_t *k = load(WSP_JWT_HS256, "hs.key", 0);
    char t[2048], claims[256];
    time_t now = time(NULL);
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld}", (long long)now + 60);
    assert_int_equal(wsp_jwt_verify(k, &plain, "", 0, now, NULL), WSP_JWT_MISSING);
    assert_int_equal(wsp_jwt_verify(k, &plain, NULL, 0, now, NULL), WSP_JWT_MISSING);
    int n = wsp_jwt_sign(k, claims, t, sizeof(t));
    assert_true(n > 0);
    assert_int_equal(verify(k, &plain, t, NULL), 0);
    /* Each part's base64url: a character outside the alphabet, padding, a non-canonical
     * last digit (unused bits set), a length of 1 mod 4. */
    char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.');
    char bad[4096];
    const size_t at[] = {2, (size_t)(d1 - t) + 3, (size_t)(d2 - t) + 3};
    for (int i = 0; i < 3; i++) {
        strcpy(bad, t);
        bad[at[i]] = '!';
        assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_MALFORMED);
        bad[at[i]] = '+'; /* standard base64, not base64url */
        assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_MALFORMED);
    }
    snprintf(bad, sizeof(bad), "%s=", t);
    assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_MALFORMED);
    snprintf(bad, sizeof(bad), "%sA", t); /* 43 + 1 digits: 0 mod 4 but the sig is 33 bytes */
    assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_SIGNATURE);
    snprintf(bad, sizeof(bad), "%sAA", t); /* 1 mod 4, even with zero bits */
    assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_MALFORMED);
    strcpy(bad, t); /* a 32-byte MAC ends in a digit with 2 unused bits: set one */
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    char *last = bad + strlen(bad) - 1;
    *last = digits[(strchr(digits, *last) - digits) ^ 1];
    assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_MALFORMED);
    strcpy(bad, t); /* a flipped bit of the MAC itself */
    bad[(d2 - t) + 5] = bad[(d2 - t) + 5] == 'A' ? 'B' : 'A';
    assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_SIGNATURE);
    /* Not three parts. */
    snprintf(bad, sizeof(bad), "%.*s", (int)(d2 - t), t);
    assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_MALFORMED);
    snprintf(bad, sizeof(bad), "%s.AAAA", t);
    assert_int_equal(verify(k, &plain, bad, NULL), WSP_JWT_MALFORMED);
    assert_int_equal(verify(k, &plain, "..", NULL), WSP_JWT_MALFORMED);
    assert_int_equal(verify(k, &plain, "no dots", NULL), WSP_JWT_MALFORMED);
    /* The token is read only within len: the same bytes pass with the right length. */
    snprintf(bad, sizeof(bad), "%s.garbage", t);
    assert_int_equal(wsp_jwt_verify(k, &plain, bad, (size_t)n, now, NULL), 0);
    wsp_jwt_key_free(k);
}

/* JSON: bad, not an object, duplicates, \u0000, "alg" missing or not a string, "crit"; and
 * which reason wins when several apply. */
static void test_json(void **state)
{
    (void)state;
    wsp_jwt_key_t *k = load(WSP_JWT_HS256, "hs.key", 0);
    char t[2048], claims[256];
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld}", (long long)time(NULL) + 60);
    const char *hs = "{\"alg\":\"HS256\"}";
    static const struct {
        const char *hdr, *pl;
        int want;
    } j[] = {
        {"{\"alg\":\"HS256\"", NULL, WSP_JWT_MALFORMED},
        {"[\"HS256\"]", NULL, WSP_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"alg\":\"HS256\"}", NULL, WSP_JWT_MALFORMED},
        {"{\"typ\":\"JWT\"}", NULL, WSP_JWT_MALFORMED},
        {"{\"alg\":256}", NULL, WSP_JWT_MALFORMED},
        {"{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", NULL, WSP_JWT_MALFORMED},
        {"{\"alg\":\"HS256\"} ", NULL, 0}, /* whitespace is JSON */
        {"{\"alg\":\"HS257\"}", NULL, WSP_JWT_ALGORITHM},
        {"{\"alg\":\"hs256\"}", NULL, WSP_JWT_ALGORITHM},
        {"{\"alg\":\"HS2560\"}", NULL, WSP_JWT_ALGORITHM},
        {"{\"alg\":\"HS25\"}", NULL, WSP_JWT_ALGORITHM},
        {"{\"alg\":\"HS256\\u0000\"}", NULL, WSP_JWT_MALFORMED},
        {NULL, "{\"sub\":\"u\",\"exp\":", WSP_JWT_MALFORMED},
        {NULL, "[1]", WSP_JWT_MALFORMED},
        {NULL, "\"sub\"", WSP_JWT_MALFORMED},
        {NULL, "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":9999999999}", WSP_JWT_MALFORMED},
        {NULL, "{\"sub\":\"a\\u0000b\",\"exp\":9999999999}", WSP_JWT_MALFORMED},
        {NULL, "{\"sub\":\"u\",\"exp\":99999999999999999999}", WSP_JWT_MALFORMED},
        {NULL, "{\"sub\":\"u\",\"exp\":1e300}", WSP_JWT_MALFORMED},
        {NULL, "{\"sub\":\"u\",\"exp\":9223372036854775807}", 0},
        {NULL, "{\"sub\":\"u\",\"exp\":-9223372036854775807}", WSP_JWT_EXPIRED},
        {NULL, "{\"sub\":\"u\",\"exp\":9999999999,\"nbf\":-9223372036854775807}", 0},
        {NULL, "{\"sub\":\"u\",\"exp\":9999999999,\"iat\":null}", WSP_JWT_MALFORMED},
    };
    for (size_t i = 0; i < sizeof(j) / sizeof(j[0]); i++) {
        int n = wsp_jwt_sign_header(k, j[i].hdr ? j[i].hdr : hs, j[i].pl ? j[i].pl : claims, t,
                                    sizeof(t));
        assert_true(n > 0);
        int rv = verify(k, &plain, t, NULL);
        if (rv != j[i].want)
            fail_msg("case %zu: %s, want %s", i, wsp_jwt_reason_name(rv),
                     wsp_jwt_reason_name(j[i].want));
    }
    /* A bad payload with a bad signature is malformed: the cheap check comes first. And a
     * forged signature with the wrong alg is algorithm, never signature. */
    raw_token(t, sizeof(t), hs, "{\"sub\":", "x", 1);
    assert_int_equal(verify(k, &plain, t, NULL), WSP_JWT_MALFORMED);
    raw_token(t, sizeof(t), "{\"alg\":\"none\"}", claims, NULL, 0);
    assert_int_equal(verify(k, &plain, t, NULL), WSP_JWT_ALGORITHM);
    raw_token(t, sizeof(t), "{\"alg\":\"RS256\"}", claims, "sig", 3);
    assert_int_equal(verify(k, &plain, t, NULL), WSP_JWT_ALGORITHM);
    raw_token(t, sizeof(t), hs, claims, NULL, 0); /* right alg, no signature */
    assert_int_equal(verify(k, &plain, t, NULL), WSP_JWT_SIGNATURE);
    wsp_jwt_key_free(k);
}

static void test_too_large(void **state)
{
    (void)state;
    wsp_jwt_key_t *k = load(WSP_JWT_HS256, "hs.key", 0);
    static char t[8192], claims[6000];
    time_t now = time(NULL);
    /* Padded with a claim to exactly 4096 and 4097 bytes: the cap is on the token's bytes. */
    int seen = 0;
    for (int pad = 2900; pad < 3100; pad++) {
        snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"x\":\"%0*d\"}",
                 (long long)now + 60, pad, 0);
        int n = wsp_jwt_sign(k, claims, t, sizeof(t));
        assert_true(n > 0);
        assert_int_equal(verify(k, &plain, t, NULL), n > WSP_JWT_TOKEN_MAX ? WSP_JWT_TOO_LARGE : 0);
        seen |= (n == WSP_JWT_TOKEN_MAX) | (n == WSP_JWT_TOKEN_MAX + 1) << 1;
    }
    assert_int_equal(seen, 3);
    /* 5 KiB, and 5 KiB of garbage: too_large before anything parses. */
    snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld,\"x\":\"%05000d\"}",
             (long long)now + 60, 0);
    assert_true(wsp_jwt_sign(k, claims, t, sizeof(t)) > 5000);
    assert_int_equal(verify(k, &plain, t, NULL), WSP_JWT_TOO_LARGE);
    memset(t, '!', 5120);
    assert_int_equal(wsp_jwt_verify(k, &plain, t, 5120, now, NULL), WSP_JWT_TOO_LARGE);
    assert_int_equal(wsp_jwt_verify(k, &plain, t, 4097, now, NULL), WSP_JWT_TOO_LARGE);
    assert_int_equal(wsp_jwt_verify(k, &plain, t, 4096, now, NULL), WSP_JWT_MALFORMED);
    wsp_jwt_key_free(k);
}

/* An HS256 token MACed with the bytes of a public key file: the algorithm-confusion attack
 * on a verifier that lets the token pick the algorithm. */
static void test_alg_confusion(void **state)
{
    (void)state;
    static const struct {
        int alg;
        const char *pub;
    } v[] = {{WSP_JWT_RS256, "rsa.pub"}, {WSP_JWT_ES256, "ec256.pub"}};
    for (int i = 0; i < 2; i++) {
        size_t pem_len;
        const char *pem = slurp(v[i].pub, &pem_len);
        char t[2048], claims[128];
        snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld}",
                 (long long)time(NULL) + 60);
        raw_token(t, sizeof(t), "{\"alg\":\"HS256\",\"typ\":\"JWT\"}", claims, NULL, 0);
        size_t signed_len = strlen(t) - 1;
        uint8_t mac[32];
        unsigned mac_len = 0;
        assert_non_null(
            HMAC(EVP_sha256(), pem, (int)pem_len, (const uint8_t *)t, signed_len, mac, &mac_len));
        assert_true(wsp_jwt_b64url_encode(mac, mac_len, t + signed_len + 1,
                                          sizeof(t) - signed_len - 1) > 0);
        wsp_jwt_key_t *k = load(v[i].alg, v[i].pub, 0);
        assert_int_equal(verify(k, &plain, t, NULL), WSP_JWT_ALGORITHM);
        wsp_jwt_key_free(k);
        /* And the key that would make it verify cannot be loaded. */
        char err[256];
        assert_int_equal(wsp_jwt_key_from_mem(&k, WSP_JWT_HS256, pem, pem_len, 0, err, sizeof(err)),
                         -EINVAL);
        assert_null(k);
        assert_non_null(strstr(err, "PEM"));
    }
}

/* Edges of exp, nbf and iat around now and the leeway, on our own tokens. */
static void test_leeway(void **state)
{
    (void)state;
    wsp_jwt_key_t *k = load(WSP_JWT_HS256, "hs.key", 0);
    const int64_t now = 1700000000;
    static const struct {
        const char *claim;
        int64_t at; /* relative to now */
        int64_t leeway;
        int want;
    } e[] = {
        {"exp", -5, 5, WSP_JWT_EXPIRED}, /* exp + leeway == now: expired */
        {"exp", -4, 5, 0},
        {"exp", 0, 0, WSP_JWT_EXPIRED},
        {"exp", 1, 0, 0},
        {"exp", -6, 5, WSP_JWT_EXPIRED},
        {"exp", -86399, 100000, 0}, /* leeway clamped to WSP_JWT_LEEWAY_MAX ... */
        {"exp", -86400, 100000, WSP_JWT_EXPIRED},
        {"exp", 0, -3, WSP_JWT_EXPIRED}, /* ... and a negative one to 0 */
        {"nbf", 5, 5, 0},                /* nbf - leeway == now: valid */
        {"nbf", 6, 5, WSP_JWT_NOT_YET_VALID},
        {"nbf", 0, 0, 0},
        {"nbf", 1, 0, WSP_JWT_NOT_YET_VALID},
        {"iat", 5, 5, 0},
        {"iat", 6, 5, WSP_JWT_NOT_YET_VALID},
        {"iat", 1, 0, WSP_JWT_NOT_YET_VALID},
    };
    for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++) {
        char claims[256], t[1024];
        int64_t exp = strcmp(e[i].claim, "exp") == 0 ? now + e[i].at : now + 3600;
        int n = snprintf(claims, sizeof(claims), "{\"sub\":\"u\",\"exp\":%lld", (long long)exp);
        if (strcmp(e[i].claim, "exp") != 0)
            n += snprintf(claims + n, sizeof(claims) - (size_t)n, ",\"%s\":%lld", e[i].claim,
                          (long long)(now + e[i].at));
        snprintf(claims + n, sizeof(claims) - (size_t)n, "}");
        assert_true(wsp_jwt_sign(k, claims, t, sizeof(t)) > 0);
        wsp_jwt_policy_t p = {NULL, NULL, e[i].leeway};
        int rv = verify_at(k, &p, t, now, NULL);
        if (rv != e[i].want)
            fail_msg("%s at now%+lld, leeway %lld: %s, want %s", e[i].claim, (long long)e[i].at,
                     (long long)e[i].leeway, wsp_jwt_reason_name(rv),
                     wsp_jwt_reason_name(e[i].want));
    }
    /* Fractions: exp = now + 0.5 is still valid at now, exp = now - 0.5 is not; nbf = now +
     * 0.5 is in the future. */
    const char *frac[] = {"{\"sub\":\"u\",\"exp\":1700000000.5}",
                          "{\"sub\":\"u\",\"exp\":1699999999.5}",
                          "{\"sub\":\"u\",\"exp\":1800000000,\"nbf\":1700000000.5}"};
    const int want[] = {0, WSP_JWT_EXPIRED, WSP_JWT_NOT_YET_VALID};
    wsp_jwt_policy_t p0 = {NULL, NULL, 0};
    for (int i = 0; i < 3; i++) {
        char t[1024];
        assert_true(wsp_jwt_sign(k, frac[i], t, sizeof(t)) > 0);
        assert_int_equal(verify_at(k, &p0, t, now, NULL), want[i]);
    }
    wsp_jwt_key_free(k);
}

/* Our tokens for every algorithm verify with our verifier, with libjwt 1.10 and with PyJWT;
 * a tampered one with none of them. */
static void test_mint_interop(void **state)
{
    (void)state;
    static const struct {
        int alg;
        const char *priv, *pub;
    } v[] = {
        {WSP_JWT_HS256, "hs.key", "hs.key"},       {WSP_JWT_HS384, "hs.key", "hs.key"},
        {WSP_JWT_HS512, "hs.key", "hs.key"},       {WSP_JWT_RS256, "rsa.pem", "rsa.pub"},
        {WSP_JWT_RS384, "rsa.pem", "rsa.pub"},     {WSP_JWT_RS512, "rsa.pem", "rsa.pub"},
        {WSP_JWT_ES256, "ec256.pem", "ec256.pub"}, {WSP_JWT_ES384, "ec384.pem", "ec384.pub"},
    };
    FILE *list = fopen(path("ours.txt"), "w");
    assert_non_null(list);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        wsp_jwt_key_t *signer = load(v[i].alg, v[i].priv, 1);
        wsp_jwt_key_t *verifier = load(v[i].alg, v[i].pub, 0);
        assert_int_equal(wsp_jwt_key_alg(signer), v[i].alg);
        char claims[256], t[2048], sub[32];
        snprintf(sub, sizeof(sub), "ours-%s", wsp_jwt_alg_name(v[i].alg));
        snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":%lld,\"channels\":[\"a\"]}", sub,
                 (long long)time(NULL) + 600);
        int n = wsp_jwt_sign(signer, claims, t, sizeof(t));
        assert_true(n > 0 && (size_t)n == strlen(t));
        wsp_jwt_claims_t c;
        assert_int_equal(verify(verifier, &plain, t, &c), 0);
        assert_string_equal(c.sub, sub);
        assert_int_equal(verify(signer, &plain, t, NULL), 0); /* a private key verifies too */
        size_t key_len;
        char *key = slurp(v[i].pub, &key_len);
        if (v[i].alg <= WSP_JWT_HS512)
            key_len = strcspn(key, "\n");
        jwt_t *j = NULL;
        assert_int_equal(jwt_decode(&j, t, (const unsigned char *)key, (int)key_len), 0);
        assert_string_equal(jwt_get_grant(j, "sub"), sub);
        jwt_free(j);
        fprintf(list, "ok %s %s %s %s\n", wsp_jwt_alg_name(v[i].alg), path(v[i].pub), t, sub);
        char *d2 = strrchr(t, '.');
        d2[4] = d2[4] == 'A' ? 'B' : 'A'; /* one signature bit */
        assert_int_equal(verify(verifier, &plain, t, NULL), WSP_JWT_SIGNATURE);
        j = NULL;
        assert_int_not_equal(jwt_decode(&j, t, (const unsigned char *)key, (int)key_len), 0);
        jwt_free(j);
        fprintf(list, "bad %s %s %s %s\n", wsp_jwt_alg_name(v[i].alg), path(v[i].pub), t, sub);
        wsp_jwt_key_free(signer);
        wsp_jwt_key_free(verifier);
    }
    assert_int_equal(fclose(list), 0);
    char *argv[] = {"/usr/bin/python3", fx.script, "check", path("ours.txt"), NULL};
    assert_int_equal(run(argv), 0);
}

/* err must not quote the key: no 12-byte run of the key's bytes (PEM lines are 64). */
static void assert_no_key_bytes(const char *err, const char *key, size_t len)
{
    for (size_t i = 0; i + 12 <= len; i++) {
        if (memchr(key + i, '\n', 12) != NULL || memchr(key + i, '-', 12) != NULL)
            continue; /* PEM armour is public text, e.g. "PUBLIC KEY" */
        for (const char *e = err; *e != '\0'; e++)
            assert_false(strncmp(e, key + i, 12) == 0);
    }
}

/* Loading fails with -EINVAL and an err holding hint but no key bytes. */
static void refused(int alg, const char *file, int private_key, const char *hint)
{
    wsp_jwt_key_t *k = (wsp_jwt_key_t *)1;
    char err[512] = "";
    int rv = wsp_jwt_key_load(&k, alg, path(file), private_key, err, sizeof(err));
    if (rv != -EINVAL || strstr(err, hint) == NULL)
        fail_msg("%s %s private=%d: %d \"%s\", want -EINVAL with \"%s\"", wsp_jwt_alg_name(alg),
                 file, private_key, rv, err, hint);
    assert_null(k);
    assert_non_null(strstr(err, path(file))); /* names the file */
    size_t len;
    const char *key = slurp(file, &len);
    assert_no_key_bytes(err, key, len);
}

static void write_file(const char *file, const void *p, size_t n)
{
    FILE *f = fopen(path(file), "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);
}

/* The HS256 token of a fixed claim under secret[0..n): equal tokens mean equal secrets. */
static int hs_token(const char *secret, size_t n, char *t, size_t cap)
{
    wsp_jwt_key_t *k = NULL;
    char err[256];
    int rv = wsp_jwt_key_from_mem(&k, WSP_JWT_HS256, secret, n, 0, err, sizeof(err));
    if (rv < 0)
        return rv;
    rv = wsp_jwt_sign(k, "{\"sub\":\"u\"}", t, cap);
    wsp_jwt_key_free(k);
    return rv;
}

static void test_key_rules(void **state)
{
    (void)state;
    char a[512], b[512];
    assert_true(hs_token("abc", 3, a, sizeof(a)) > 0); /* one line ending dropped, no more */
    assert_true(hs_token("abc\n", 4, b, sizeof(b)) > 0);
    assert_string_equal(a, b);
    assert_true(hs_token("abc\r\n", 5, b, sizeof(b)) > 0);
    assert_string_equal(a, b);
    assert_true(hs_token("abc\n\n", 5, b, sizeof(b)) > 0);
    assert_string_not_equal(a, b);
    assert_true(hs_token("abc ", 4, b, sizeof(b)) > 0);
    assert_string_not_equal(a, b);
    assert_true(hs_token("a\0c", 3, b, sizeof(b)) > 0); /* any bytes */
    assert_int_equal(hs_token("", 0, a, sizeof(a)), -EINVAL);
    assert_int_equal(hs_token("\n", 1, a, sizeof(a)), -EINVAL);
    assert_int_equal(hs_token("\r\n", 2, a, sizeof(a)), -EINVAL);
    static char big[WSP_JWT_SECRET_MAX + 2];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = "s3cr3t-k3y-"[i % 11];
    assert_true(hs_token(big, WSP_JWT_SECRET_MAX, a, sizeof(a)) > 0);
    big[WSP_JWT_SECRET_MAX] = '\n';
    assert_true(hs_token(big, WSP_JWT_SECRET_MAX + 1, a, sizeof(a)) > 0);
    big[WSP_JWT_SECRET_MAX] = 'x';
    write_file("big.key", big, WSP_JWT_SECRET_MAX + 1);
    refused(WSP_JWT_HS256, "big.key", 0, "longer than 4096");
    write_file("empty.key", "\n", 1);
    refused(WSP_JWT_HS256, "empty.key", 0, "empty");
    refused(WSP_JWT_HS256, "rsa.pub", 0, "PEM");
    refused(WSP_JWT_HS512, "ec256.pem", 1, "PEM");
    const int weak_alg[] = {WSP_JWT_HS256, WSP_JWT_HS512, WSP_JWT_ES256}; /* hs.key: 58 B */
    for (int i = 0; i < 3; i++) {
        wsp_jwt_key_t *k = load(weak_alg[i], i < 2 ? "hs.key" : "ec256.pub", 0);
        assert_int_equal(wsp_jwt_key_weak(k), i == 1);
        wsp_jwt_key_free(k);
    }
    /* Types, sizes, curves, and public against private. */
    refused(WSP_JWT_RS256, "rsa.pem", 0, "a private key");
    refused(WSP_JWT_RS256, "rsa.pub", 1, "a public key");
    refused(WSP_JWT_RS256, "rsa1024.pub", 0, "not 1024");
    refused(WSP_JWT_RS384, "ec256.pub", 0, "needs an RSA key, not EC");
    refused(WSP_JWT_ES256, "ec384.pub", 0, "on prime256v1, not secp384r1");
    refused(WSP_JWT_ES256, "k256.pub", 0, "not secp256k1");
    refused(WSP_JWT_ES384, "ec256.pem", 1, "on secp384r1, not prime256v1");
    refused(WSP_JWT_ES256, "ed25519.pub", 0, "needs an EC key");
    refused(WSP_JWT_ES256, "rsa.pub", 0, "needs an EC key, not RSA");
    refused(WSP_JWT_ES256, "ec256-encrypted.pem", 1, "encrypted");
    refused(WSP_JWT_ES256, "ec256.pub", 1, "a public key");
    refused(WSP_JWT_ES256, "hs.key", 0, "no PEM public key");
    static char huge[70000];
    memset(huge, 'A', sizeof(huge));
    write_file("huge.pem", huge, sizeof(huge));
    refused(WSP_JWT_RS256, "huge.pem", 0, "larger than");
    /* EC PARAMETERS before the key, as `openssl ecparam -genkey` writes it. */
    wsp_jwt_key_t *k = load(WSP_JWT_ES256, "ec256-traditional.pem", 1);
    char t[1024];
    assert_true(wsp_jwt_sign(k, "{\"sub\":\"u\",\"exp\":9999999999}", t, sizeof(t)) > 0);
    assert_int_equal(verify(k, &plain, t, NULL), 0);
    wsp_jwt_key_free(k);
    char err[256] = "";
    assert_int_equal(wsp_jwt_key_load(&k, WSP_JWT_HS256, path("nope"), 0, err, sizeof(err)),
                     -ENOENT);
    assert_non_null(strstr(err, path("nope")));
    assert_int_equal(wsp_jwt_key_from_mem(&k, 0, "abc", 3, 0, err, sizeof(err)), -EINVAL);
    assert_int_equal(wsp_jwt_key_from_mem(&k, 99, "abc", 3, 0, NULL, 0), -EINVAL);
    wsp_jwt_key_free(NULL);
}

static void test_sign_errors(void **state)
{
    (void)state;
    static const struct {
        int alg;
        const char *file;
    } v[] = {{WSP_JWT_HS256, "hs.key"}, {WSP_JWT_ES256, "ec256.pem"}};
    for (int i = 0; i < 2; i++) {
        wsp_jwt_key_t *k = load(v[i].alg, v[i].file, 1);
        char t[1024];
        int n = wsp_jwt_sign(k, "{\"sub\":\"u\"}", t, sizeof(t));
        assert_true(n > 0);
        for (size_t cap = 0; cap <= (size_t)n; cap++) /* every cap short of the NUL */
            assert_int_equal(wsp_jwt_sign(k, "{\"sub\":\"u\"}", t, cap), -ENOSPC);
        assert_int_equal(wsp_jwt_sign(k, "{\"sub\":\"u\"}", t, (size_t)n + 1), n);
        wsp_jwt_key_free(k);
    }
    wsp_jwt_key_t *k = load(WSP_JWT_ES256, "ec256.pub", 0);
    char t[1024];
    assert_int_equal(wsp_jwt_sign(k, "{}", t, sizeof(t)), -EINVAL);
    wsp_jwt_key_free(k);
    assert_int_equal(wsp_jwt_b64url_encode("abcd", 4, t, 6), -ENOSPC); /* "YWJjZA" + NUL */
    assert_int_equal(wsp_jwt_b64url_encode("abcd", 4, t, 7), 6);
    assert_string_equal(t, "YWJjZA");
    assert_int_equal(wsp_jwt_b64url_encode("\xfb\xff", 2, t, sizeof(t)), 3);
    assert_string_equal(t, "-_8"); /* the URL-safe digits */
}

/* Shard threads verify with one shared key: two threads at once, good and tampered tokens. */
struct shared {
    const wsp_jwt_key_t *k;
    char good[1024], bad[1024];
};

static void *verify_many(void *arg)
{
    const struct shared *sh = arg;
    for (int i = 0; i < 200; i++)
        if (verify(sh->k, &plain, sh->good, NULL) != 0 || verify(sh->k, &plain, sh->bad, NULL) == 0)
            return arg;
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    const char *files[][2] = {{"hs.key", "hs.key"}, {"ec256.pem", "ec256.pub"}};
    for (int a = 0; a < 2; a++) {
        int alg = a == 0 ? WSP_JWT_HS256 : WSP_JWT_ES256;
        wsp_jwt_key_t *signer = load(alg, files[a][0], 1), *k = load(alg, files[a][1], 0);
        struct shared sh = {.k = k};
        assert_true(wsp_jwt_sign(signer, "{\"sub\":\"u\",\"exp\":9999999999}", sh.good, 1024) > 0);
        strcpy(sh.bad, sh.good);
        char *c = sh.bad + strlen(sh.bad) - 5;
        *c = *c == 'A' ? 'B' : 'A'; /* one signature bit */
        pthread_t th[2];
        void *rv[2];
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&th[i], NULL, verify_many, &sh), 0);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(pthread_join(th[i], &rv[i]), 0);
            assert_null(rv[i]);
        }
        wsp_jwt_key_free(signer);
        wsp_jwt_key_free(k);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),         cmocka_unit_test(test_pyjwt_tokens),
        cmocka_unit_test(test_pyjwt_claims),  cmocka_unit_test(test_form),
        cmocka_unit_test(test_json),          cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_alg_confusion), cmocka_unit_test(test_leeway),
        cmocka_unit_test(test_mint_interop),  cmocka_unit_test(test_key_rules),
        cmocka_unit_test(test_sign_errors),   cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
