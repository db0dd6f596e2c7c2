#ifndef WSP_JWT_H
#define WSP_JWT_H

/* JSON Web Tokens (RFC 7519) in compact JWS form (RFC 7515), for one configured algorithm:
 * verification (the server, one token per upgrade) and minting (the load generator, tests).
 * Generic: knows nothing of connections, channels or the server. Never logs; key bytes never
 * appear in any error text it writes.
 *
 * Parsing is strict base64url (no padding, no stray characters, canonical trailing bits) and
 * jansson (libjwt's own JSON parser) with duplicate member names refused; signatures are
 * checked with libcrypto against a key parsed once at load time. libjwt 1.10's jwt_decode()
 * is not used. With a key it re-parses the PEM on every call: per token, ES256 ~505 us
 * against ~67 us here, RS256 ~417 against ~21, HS256 ~5.2 against ~3.5 (medians of 5, thread
 * CPU, jemalloc, same run on the dev machine). Without a key (parsing only) it accepts bad
 * base64url (it skips invalid characters), padding and four-part tokens, reports every alg
 * as "none", cannot tell an unknown "alg" from bad JSON, and hands claims out only by
 * re-serialising each one: jwt_decode() plus the claims took ~5 us, twice our whole parse. */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Algorithms (RFC 7518 section 3.1); 0 is never a valid one ("none" is always refused). */
enum {
    WSP_JWT_HS256 = 1,
    WSP_JWT_HS384,
    WSP_JWT_HS512,
    WSP_JWT_RS256,
    WSP_JWT_RS384,
    WSP_JWT_RS512,
    WSP_JWT_ES256,
    WSP_JWT_ES384,
};

/* Why a token was refused: negative, one per reason of issue #16 (the metric label and the 401
 * body's word is wsp_jwt_reason_name()). Not errno values; -reason - 1 indexes a counter table
 * of WSP_JWT_REASONS entries. */
enum {
    WSP_JWT_MISSING = -1,       /* empty token */
    WSP_JWT_MALFORMED = -2,     /* not JWS compact form, bad base64url or JSON, bad claims */
    WSP_JWT_SIGNATURE = -3,     /* the signature does not verify with the configured key */
    WSP_JWT_ALGORITHM = -4,     /* header "alg" is not the configured algorithm ("none" too) */
    WSP_JWT_EXPIRED = -5,       /* exp <= now - leeway */
    WSP_JWT_NOT_YET_VALID = -6, /* nbf or iat > now + leeway */
    WSP_JWT_AUDIENCE = -7,      /* policy has aud: the token's aud does not name it */
    WSP_JWT_ISSUER = -8,        /* policy has iss: the token's iss is not it */
    WSP_JWT_TOO_LARGE = -9,     /* more than WSP_JWT_TOKEN_MAX bytes */
};
#define WSP_JWT_REASONS 9

#define WSP_JWT_TOKEN_MAX 4096   /* bytes of a compact token (issue #16 item 2) */
#define WSP_JWT_SECRET_MAX 4096  /* bytes of an HS* secret */
#define WSP_JWT_SUB_MAX 64       /* bytes of "sub" */
#define WSP_JWT_CHANNELS_MAX 8   /* entries of "channels": server/channels.h's list size */
#define WSP_JWT_CHANNEL_MAX 64   /* bytes of one "channels" entry: a channel name's cap */
#define WSP_JWT_LEEWAY_MAX 86400 /* seconds; a larger policy leeway is clamped to it */

typedef struct wsp_jwt_key_s wsp_jwt_key_t;

/* What the server checks besides the signature. aud/iss NULL: not checked (and their claims'
 * types are not looked at either). */
typedef struct wsp_jwt_policy_s {
    const char *aud; /* the token's "aud" (string or array of strings) must contain it */
    const char *iss; /* the token's "iss" must be exactly it */
    int64_t leeway;  /* seconds of clock skew allowed on exp, nbf and iat; 0..LEEWAY_MAX */
} wsp_jwt_policy_t;

/* The claims a verified token hands the server: fixed-size, nothing to free. Strings are
 * NUL-terminated (JSON strings with \u0000 are refused as malformed) and valid UTF-8. */
typedef struct wsp_jwt_claims_s {
    int64_t exp;           /* seconds since the epoch (a fractional exp is rounded up) */
    bool channels_present; /* the "channels" claim was there (possibly empty) */
    uint8_t sub_len;       /* 1..WSP_JWT_SUB_MAX */
    uint8_t n_channels;    /* 0..WSP_JWT_CHANNELS_MAX */
    uint8_t channel_len[WSP_JWT_CHANNELS_MAX]; /* each 1..WSP_JWT_CHANNEL_MAX */
    char sub[WSP_JWT_SUB_MAX + 1];             /* the "sub" claim */
    /* In token order, as sent: the caller checks the channel-name alphabet (the server's
     * rule, not this module's) and removes duplicates. */
    char channels[WSP_JWT_CHANNELS_MAX][WSP_JWT_CHANNEL_MAX + 1];
} wsp_jwt_claims_t;

/* Parses an algorithm name ("HS256" ... "ES384", case-sensitive as RFC 7515 says); returns
 * the WSP_JWT_* value or -EINVAL ("none" included). Pure; any thread. */
int wsp_jwt_alg_parse(const char *name);

/* The name of alg ("HS256" ...), or NULL for an unknown value. Static storage; any thread. */
const char *wsp_jwt_alg_name(int alg);

/* The short word for a wsp_jwt_verify() result ("missing" ... "too_large"; "ok" for 0,
 * "unknown" otherwise): metrics labels and the 401 body. Static storage; any thread. */
const char *wsp_jwt_reason_name(int rv);

/* Loads the key for alg from path into *out (caller frees with wsp_jwt_key_free()). HS*: the
 * file's bytes are the secret, minus ONE trailing "\n" or "\r\n" (what `echo` and editors
 * add), then 1..WSP_JWT_SECRET_MAX bytes, and not PEM text (an HS key holding a public key is
 * the algorithm-confusion setup); private_key is ignored (one secret signs and verifies).
 * RS*: an RSA key of 2048 (RFC 7518 section 3.3) to 8192 bits; ES256/ES384: an EC key on
 * P-256/P-384. For those, private_key = 0 wants a PEM public key (-----BEGIN PUBLIC KEY-----,
 * what `openssl pkey -pubout` writes, or PKCS#1's RSA PUBLIC KEY) and verifies; 1 wants a PEM
 * private key (PKCS#8 or traditional; encrypted keys are refused, never prompted for) and
 * mints, and verifies too. Returns 0 or a negative errno, with a one-line reason in err (path
 * and algorithm, never key bytes) when errlen > 0. Any thread; the file is read whole (at
 * most 64 KiB) and the copy wiped. */
int wsp_jwt_key_load(wsp_jwt_key_t **out, int alg, const char *path, int private_key, char *err,
                     size_t errlen);

/* wsp_jwt_key_load() from len bytes in memory (the file's contents, same rules); err names
 * the key "key". The bytes are not kept. Any thread. */
int wsp_jwt_key_from_mem(wsp_jwt_key_t **out, int alg, const void *bytes, size_t len,
                         int private_key, char *err, size_t errlen);

/* The key's algorithm (WSP_JWT_*). Any thread. */
int wsp_jwt_key_alg(const wsp_jwt_key_t *key);

/* 1 when an HS* secret is shorter than the hash output (RFC 7518 section 3.2 wants at least
 * that much; loading allows it so that existing deployments still start, and the caller may
 * warn), else 0. Any thread. */
int wsp_jwt_key_weak(const wsp_jwt_key_t *key);

/* Frees key (NULL is fine). No verify or sign may still be using it. */
void wsp_jwt_key_free(wsp_jwt_key_t *key);

/* Verifies token[0..len) (no NUL needed) with key under policy (NULL: no aud/iss, leeway 0)
 * at time now (seconds since the epoch). Returns 0 and fills *claims (when not NULL) or
 * returns a WSP_JWT_* reason and leaves *claims untouched. Precedence, cheap checks first, the
 * signature before any claim is believed: missing, too_large, malformed (form, base64url,
 * header JSON, "alg" absent or not a string, "crit" present), algorithm, malformed (payload
 * not a JSON object), signature (wrong length for the algorithm, or does not verify),
 * malformed (claims: exp absent or not a number, nbf/iat not numbers, sub not a string of
 * 1..64 bytes, channels not an array of at most 8 strings of 1..64 bytes, aud/iss of the
 * wrong type when the policy checks them), expired, not_yet_valid (nbf, then iat), audience,
 * issuer. An allocation or libcrypto failure fails closed with the reason of the step it hit.
 * Allocates only for the call (jansson's trees, one duplicated libcrypto context) and frees
 * all of it before returning. Concurrent calls with the same key are fine (it is only read);
 * any thread. */
int wsp_jwt_verify(const wsp_jwt_key_t *key, const wsp_jwt_policy_t *policy, const char *token,
                   size_t len, int64_t now, wsp_jwt_claims_t *claims);

/* Mints a compact token for claims_json (used as given, not checked: tests mint bad claims
 * on purpose) with the header {"alg":"<key's alg>","typ":"JWT"}, signed with key (an HS*
 * key, or an RS/ES key loaded with private_key = 1). Writes it NUL-terminated to out[0..cap);
 * returns its length, or -ENOSPC (cap too small), -EINVAL (a public key) or -EIO (libcrypto
 * failed, out of memory included). Any thread, concurrently with the same key. */
int wsp_jwt_sign(const wsp_jwt_key_t *key, const char *claims_json, char *out, size_t cap);

/* wsp_jwt_sign() with header_json used as given instead of the standard header: tests and
 * tools that need a token the verifier must refuse (another "alg", "crit"). */
int wsp_jwt_sign_header(const wsp_jwt_key_t *key, const char *header_json, const char *claims_json,
                        char *out, size_t cap);

/* Writes base64url (RFC 4648 section 5, no padding) of p[0..n) NUL-terminated to out[0..cap);
 * returns its length or -ENOSPC. Pure; any thread. */
int wsp_jwt_b64url_encode(const void *p, size_t n, char *out, size_t cap);

#endif
