/* The bench's tokens (bench/tokens.c): one per slot, each for its own sub, verifying with the
 * key's public half, exp where asked. The HS secret is written here; the EC key is made with
 * the openssl CLI (Debian's openssl, which `make test` installs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "jwt.h"
#include "tokens.h"

static char dir[] = "/tmp/wsp-test-tokens-XXXXXX";
static char hs[128], ec[128], ecpub[128];

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(hs, sizeof(hs), "%s/hs.key", dir);
    snprintf(ec, sizeof(ec), "%s/ec.pem", dir);
    snprintf(ecpub, sizeof(ecpub), "%s/ec.pub", dir);
    FILE *f = fopen(hs, "w");
    assert_non_null(f);
    fputs("bench-test-secret-0123456789abcdef0123456789\n", f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null"
             " && openssl pkey -in %s -pubout -out %s 2>/dev/null",
             ec, ec, ecpub);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(hs);
    unlink(ec);
    unlink(ecpub);
    rmdir(dir);
    return 0;
}

/* Mints n tokens with alg/key, verifies each with verify_key: sub bench-<i>, exp as asked. */
static void mint_and_check(int alg, const char *key, const char *verify_key, uint64_t n)
{
    wsp_bench_cfg_t cfg = {.conns = n, .jwt_alg = alg, .jwt_key = key, .jwt_exp = 77};
    cfg.jwt_aud = "app";
    wsp_tokens_t t;
    char err[256];
    assert_int_equal(wsp_tokens_mint(&t, &cfg, err, sizeof(err)), 0);
    assert_int_equal(t.n, n);
    wsp_jwt_key_t *k;
    assert_int_equal(wsp_jwt_key_load(&k, alg, verify_key, 0, err, sizeof(err)), 0);
    wsp_jwt_policy_t pol = {.aud = "app"};
    int64_t now = (int64_t)time(NULL);
    for (uint64_t i = 0; i < n; i++) {
        size_t len;
        const char *tok = wsp_tokens_get(&t, i, &len);
        wsp_jwt_claims_t c;
        assert_int_equal(wsp_jwt_verify(k, &pol, tok, len, now, &c), 0);
        char want[32];
        snprintf(want, sizeof(want), "bench-%llu", (unsigned long long)i);
        assert_string_equal(c.sub, want);
        assert_true(c.exp >= now + 76 && c.exp <= now + 77);
    }
    wsp_jwt_key_free(k);
    wsp_tokens_free(&t);
    assert_null(t.blob);
}

static void test_hs256(void **state)
{
    (void)state;
    mint_and_check(WSP_JWT_HS256, hs, hs, 3000); /* past the first blob size: it grows */
}

static void test_es256(void **state)
{
    (void)state;
    mint_and_check(WSP_JWT_ES256, ec, ecpub, 50);
}

static void test_public_key_refused(void **state)
{
    (void)state;
    wsp_bench_cfg_t cfg = {.conns = 1, .jwt_alg = WSP_JWT_ES256, .jwt_key = ecpub, .jwt_exp = 1};
    wsp_tokens_t t;
    char err[256] = "";
    assert_true(wsp_tokens_mint(&t, &cfg, err, sizeof(err)) < 0);
    assert_true(err[0] != '\0');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256),
        cmocka_unit_test(test_es256),
        cmocka_unit_test(test_public_key_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
