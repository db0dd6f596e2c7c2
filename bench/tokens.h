#ifndef WSP_TOKENS_H
#define WSP_TOKENS_H

/* The bench's JWTs (issue #16): one per connection slot, each for its own sub ("bench-<slot>"),
 * all minted by the parent BEFORE any worker forks, so that signing is never part of the
 * measured setup rate (ES256 costs ~24 us and RS256 ~290 us per token here, about what a
 * setup costs). Workers inherit the tokens through fork and only read them. */

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "args.h"

typedef struct wsp_tokens_s {
    char *blob;    /* every token, each NUL-terminated */
    uint32_t *off; /* [n]: where token i starts in blob */
    uint64_t n;    /* cfg->conns */
    double mint_s; /* wall time the minting took */
} wsp_tokens_t;

/* Mints cfg->conns tokens with cfg->jwt_alg and the key in cfg->jwt_key (the HS secret, or an
 * RS/ES private key): claims {"sub":"bench-<slot>","iat":now,"exp":now + cfg->jwt_exp} and
 * aud/iss when given. Returns 0, or a negative errno with one line in err (no key bytes).
 * Parent process, before forking. */
int wsp_tokens_mint(wsp_tokens_t *t, const wsp_bench_cfg_t *cfg, char *err, size_t errlen);

/* Token of connection slot i (NUL-terminated) and its length. Any process after the mint. */
static inline const char *wsp_tokens_get(const wsp_tokens_t *t, uint64_t i, size_t *len)
{
    const char *p = t->blob + t->off[i];
    *len = strlen(p);
    return p;
}

/* Frees what wsp_tokens_mint() allocated. */
void wsp_tokens_free(wsp_tokens_t *t);

#endif
