#include "tokens.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jwt.h"
#include "net.h"

/* A compact token of this bench's claims is < 600 bytes for RS512 with 4096-bit keys (the
 * signature's 683 base64 characters at 8192 bits still fit): generous, and checked. */
#define TOKEN_MAX 2048

int wsp_tokens_mint(wsp_tokens_t *t, const wsp_bench_cfg_t *cfg, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    wsp_jwt_key_t *key;
    int rv = wsp_jwt_key_load(&key, cfg->jwt_alg, cfg->jwt_key, 1, err, errlen);
    if (rv < 0)
        return rv;
    uint64_t t0 = wsp_net_mono_ns();
    long long now = (long long)(wsp_net_epoch_ms() / 1000);
    size_t cap = (size_t)cfg->conns * 256 + TOKEN_MAX, used = 0;
    t->blob = malloc(cap);
    t->off = malloc((size_t)cfg->conns * sizeof(*t->off));
    t->n = cfg->conns;
    char aud[300] = "", iss[300] = "", claims[sizeof(aud) + sizeof(iss) + 128];
    if (cfg->jwt_aud)
        snprintf(aud, sizeof(aud), ",\"aud\":\"%s\"", cfg->jwt_aud);
    if (cfg->jwt_iss)
        snprintf(iss, sizeof(iss), ",\"iss\":\"%s\"", cfg->jwt_iss);
    for (uint64_t i = 0; rv == 0 && i < cfg->conns; i++) {
        if (t->blob == NULL || t->off == NULL) {
            rv = -ENOMEM;
            break;
        }
        if (cap - used < TOKEN_MAX) { /* tokens longer than 256 bytes: RS keys */
            char *b = realloc(t->blob, cap * 2);
            if (b == NULL) {
                rv = -ENOMEM;
                break;
            }
            t->blob = b;
            cap *= 2;
        }
        snprintf(claims, sizeof(claims), "{\"sub\":\"bench-%llu\",\"iat\":%lld,\"exp\":%lld%s%s}",
                 (unsigned long long)i, now, now + (long long)cfg->jwt_exp, aud, iss);
        int n = wsp_jwt_sign(key, claims, t->blob + used, TOKEN_MAX);
        if (n < 0) {
            rv = n;
            break;
        }
        t->off[i] = (uint32_t)used;
        used += (size_t)n + 1;
    }
    wsp_jwt_key_free(key);
    t->mint_s = (double)(wsp_net_mono_ns() - t0) / 1e9;
    if (rv < 0) {
        snprintf(err, errlen, "minting tokens: %s",
                 rv == -EINVAL ? "--jwt-key must be the HS secret or an RS/ES private key"
                               : strerror(-rv));
        wsp_tokens_free(t);
    }
    return rv;
}

void wsp_tokens_free(wsp_tokens_t *t)
{
    free(t->blob);
    free(t->off);
    memset(t, 0, sizeof(*t));
}
