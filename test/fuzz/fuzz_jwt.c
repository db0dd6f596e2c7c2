/* Fuzzes the token and claims path of common/jwt.c: wsp_jwt_verify() gets whatever a client
 * puts in Authorization, ?token= or the cookie (up to 4 KiB, and beyond to hit the cap).
 *
 * Input: [ctl][rest]. ctl bits 0-1 pick the mode, bit 2 a policy with aud and iss, bits 3-7
 * the leeway (0..31 s); now is fixed at 1,700,000,000.
 *   0: rest is a token, verified with an HS256 key;
 *   1: rest is a token, verified with an ES256 key (a fixed public key: its private key was
 *      thrown away, so no input can carry a valid signature; the seeds reach the ECDSA check);
 *   2: rest is "HEADER\nCLAIMS" JSON text, signed with the HS256 key, then verified;
 *   3: rest is CLAIMS JSON text, signed with the standard header, then verified.
 * Modes 2 and 3 put arbitrary JSON behind a valid signature, where the claim checks are.
 *
 * Checked: the result is 0 or one of the nine reasons; too_large and missing by length alone;
 * the claims untouched on failure and well-formed on success; modes 2 and 3 never fail on
 * the signature; anything accepted in mode 0 is accepted by libjwt 1.10 with the same secret too
 * (our HMAC check is no weaker than an independent one), and its sub and exp are the claims'
 * own (read again with jansson). */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "jwt.h"

/* libjwt 1.10's <jwt.h> is shadowed by common/jwt.h on the include path: the calls used. */
typedef struct jwt jwt_t;
int jwt_decode(jwt_t **jwt, const char *token, const unsigned char *key, int key_len);
void jwt_free(jwt_t *jwt);

#define NOW 1700000000
static const char secret[] = "fuzz-only-hs256-secret-not-for-production-use!!";
/* A P-256 public key made with `openssl ecparam -name prime256v1 -genkey | openssl pkey
 * -pubout`; the private key was not kept. */
static const char es256_pub[] = "-----BEGIN PUBLIC KEY-----\n"
                                "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEhEwGj1762yfh2aeIQ5fMfCHhaJJh\n"
                                "3AFoT6DqeVEq+/ZlOsPNEcy+PKeeghVJKgyzUwqPQ4TVCUuqYMfvh1ZWyA==\n"
                                "-----END PUBLIC KEY-----\n";

static wsp_jwt_key_t *hs, *es;

static void keys_init(void)
{
    if (hs != NULL)
        return;
    char err[256];
    WSP_FUZZ_CHECK(
        wsp_jwt_key_from_mem(&hs, WSP_JWT_HS256, secret, strlen(secret), 0, err, sizeof(err)) == 0);
    WSP_FUZZ_CHECK(wsp_jwt_key_from_mem(&es, WSP_JWT_ES256, es256_pub, strlen(es256_pub), 0, err,
                                        sizeof(err)) == 0);
}

static void check_claims(const wsp_jwt_claims_t *c)
{
    WSP_FUZZ_CHECK(c->sub_len >= 1 && c->sub_len <= WSP_JWT_SUB_MAX);
    WSP_FUZZ_CHECK(strlen(c->sub) == c->sub_len);
    WSP_FUZZ_CHECK(c->n_channels <= WSP_JWT_CHANNELS_MAX);
    WSP_FUZZ_CHECK(c->channels_present || c->n_channels == 0);
    for (unsigned i = 0; i < c->n_channels; i++) {
        WSP_FUZZ_CHECK(c->channel_len[i] >= 1 && c->channel_len[i] <= WSP_JWT_CHANNEL_MAX);
        WSP_FUZZ_CHECK(strlen(c->channels[i]) == c->channel_len[i]);
    }
}

/* Verifies token[0..len) and checks what holds for any input; returns the result. */
static int verify(const wsp_jwt_key_t *k, const wsp_jwt_policy_t *p, const char *token, size_t len,
                  wsp_jwt_claims_t *c)
{
    wsp_jwt_claims_t before;
    memset(c, 0xA5, sizeof(*c));
    memcpy(&before, c, sizeof(before));
    int rv = wsp_jwt_verify(k, p, token, len, NOW, c);
    WSP_FUZZ_CHECK(rv <= 0 && rv >= -WSP_JWT_REASONS);
    WSP_FUZZ_CHECK((len == 0) == (rv == WSP_JWT_MISSING));
    WSP_FUZZ_CHECK((len > WSP_JWT_TOKEN_MAX) == (rv == WSP_JWT_TOO_LARGE));
    if (rv == 0)
        check_claims(c);
    else
        WSP_FUZZ_CHECK(memcmp(c, &before, sizeof(before)) == 0);
    return rv;
}

/* The header of an accepted token, as a JSON object (libcrypto's base64 after mapping the
 * URL-safe digits back and padding). */
static json_t *header_of(const char *token)
{
    unsigned char b64[WSP_JWT_TOKEN_MAX + 4], raw[WSP_JWT_TOKEN_MAX];
    size_t n = strcspn(token, ".");
    for (size_t i = 0; i < n; i++)
        b64[i] = token[i] == '-' ? '+' : token[i] == '_' ? '/' : (unsigned char)token[i];
    while (n % 4)
        b64[n++] = '=';
    int len = EVP_DecodeBlock(raw, b64, (int)n);
    WSP_FUZZ_CHECK(len >= 0);
    while (n > 0 && b64[--n] == '=')
        len--; /* EVP_DecodeBlock counts the padding's zero bytes */
    return json_loadb((const char *)raw, (size_t)len, 0, NULL);
}

/* An accepted HS256 token must verify with libjwt and the same secret, unless it has a "typ"
 * libjwt 1.10 refuses (a string other than "JWT", case aside). */
static void libjwt_agrees(const char *token, size_t len)
{
    char t[WSP_JWT_TOKEN_MAX + 1];
    memcpy(t, token, len);
    t[len] = '\0';
    jwt_t *j = NULL;
    int rv = jwt_decode(&j, t, (const unsigned char *)secret, (int)strlen(secret));
    jwt_free(j);
    if (rv == 0)
        return;
    json_t *h = header_of(t);
    WSP_FUZZ_CHECK(h != NULL);
    const char *typ = json_string_value(json_object_get(h, "typ"));
    WSP_FUZZ_CHECK(typ != NULL && strcasecmp(typ, "JWT") != 0);
    json_decref(h);
}

/* The claims jansson reads from the JSON we signed: sub and an integer exp must match. */
static void claims_agree(const char *claims_json, const wsp_jwt_claims_t *c)
{
    json_t *o = json_loads(claims_json, JSON_REJECT_DUPLICATES, NULL);
    WSP_FUZZ_CHECK(o != NULL);
    json_t *sub = json_object_get(o, "sub"), *exp = json_object_get(o, "exp");
    WSP_FUZZ_CHECK(json_is_string(sub) && json_string_length(sub) == c->sub_len &&
                   memcmp(json_string_value(sub), c->sub, c->sub_len) == 0);
    WSP_FUZZ_CHECK(!json_is_integer(exp) || json_integer_value(exp) == c->exp);
    WSP_FUZZ_CHECK(c->exp > NOW - 32); /* the largest leeway */
    json_decref(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    keys_init();
    if (size == 0)
        return 0;
    uint8_t ctl = data[0];
    wsp_jwt_policy_t p = {NULL, NULL, ctl >> 3};
    if (ctl & 4) {
        p.aud = "wspush";
        p.iss = "issuer-1";
    }
    const char *rest = (const char *)data + 1;
    size_t n = size - 1;
    wsp_jwt_claims_t c;
    int mode = ctl & 3;
    if (mode < 2) {
        int rv = verify(mode == 0 ? hs : es, &p, rest, n, &c);
        WSP_FUZZ_CHECK(mode == 0 || rv != 0); /* nobody holds the ES256 private key */
        if (mode == 0 && rv == 0)
            libjwt_agrees(rest, n);
        return 0;
    }
    /* Text up to the first NUL: what wsp_jwt_sign() takes. */
    static char text[8192], token[16384];
    size_t tn = strnlen(rest, n < sizeof(text) - 1 ? n : sizeof(text) - 1);
    memcpy(text, rest, tn);
    text[tn] = '\0';
    char *claims = text;
    int len;
    if (mode == 2) {
        char *nl = strchr(text, '\n');
        if (nl == NULL)
            return 0;
        *nl = '\0';
        claims = nl + 1;
        len = wsp_jwt_sign_header(hs, text, claims, token, sizeof(token));
    } else {
        len = wsp_jwt_sign(hs, claims, token, sizeof(token));
    }
    WSP_FUZZ_CHECK(len >= 0 && (size_t)len == strlen(token));
    int rv = verify(hs, &p, token, (size_t)len, &c);
    WSP_FUZZ_CHECK(rv != WSP_JWT_SIGNATURE); /* whatever the header says, we signed it */
    if (rv == 0)
        claims_agree(claims, &c);
    return 0;
}
