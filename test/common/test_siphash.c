#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

#include "siphash.h"

/* The reference implementation's vectors_sip64 (github.com/veorq/SipHash, vectors.h): key
 * 00 01 .. 0f, input 00 01 .. (i - 1) for i = 0..63, the 8 output bytes. Entry 15 is the
 * paper's Appendix A example, 0xa129ca6149be45e5. */
static const char *const vectors[64] = {
    "310e0edd47db6f72", "fd67dc93c539f874", "5a4fa9d909806c0d", "2d7efbd796666785",
    "b7877127e09427cf", "8da699cd64557618", "cee3fe586e46c9cb", "37d1018bf50002ab",
    "6224939a79f5f593", "b0e4a90bdf82009e", "f3b9dd94c5bb5d7a", "a7ad6b22462fb3f4",
    "fbe50e86bc8f1e75", "903d84c02756ea14", "eef27a8e90ca23f7", "e545be4961ca29a1",
    "db9bc2577fcc2a3f", "9447be2cf5e99a69", "9cd38d96f0b3c14b", "bd6179a71dc96dbb",
    "98eea21af25cd6be", "c7673b2eb0cbf2d0", "883ea3e395675393", "c8ce5ccd8c030ca8",
    "94af49f6c650adb8", "eab8858ade92e1bc", "f315bb5bb835d817", "adcf6b0763612e2f",
    "a5c91da7acaa4dde", "716595876650a2a6", "28ef495c53a387ad", "42c341d8fa92d832",
    "ce7cf2722f512771", "e37859f94623f3a7", "381205bb1ab0e012", "ae97a10fd434e015",
    "b4a31508beff4d31", "81396229f0907902", "4d0cf49ee5d4dcca", "5c73336a76d8bf9a",
    "d0a704536ba93e0e", "925958fcd6420cad", "a915c29bc8067318", "952b79f3bc0aa6d4",
    "f21df2e41d4535f9", "87577519048f53a9", "10a56cf5dfcd9adb", "eb75095ccd986cd0",
    "51a9cb9ecba312e6", "96afadfc2ce666c7", "72fe52975a4364ee", "5a1645b276d592a1",
    "b274cb8ebf87870a", "6f9bb4203de7b381", "eaecb2a30b22a87f", "9924a43cc1315724",
    "bd838d3aafbf8db7", "0b1a2a3265d51aea", "135079a3231ce660", "932b2846e4d70666",
    "e1915f5cb1eca46c", "f325965ca16d629f", "575ff28e60381be5", "724506eb4c328a95",
};

/* The vector's bytes as the uint64_t wsp_siphash() returns: little-endian. */
static uint64_t vector(int i)
{
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--) {
        char hex[3] = {vectors[i][2 * b], vectors[i][2 * b + 1], 0};
        v = v << 8 | strtoul(hex, NULL, 16);
    }
    return v;
}

static void test_reference_vectors(void **state)
{
    (void)state;
    uint8_t key[16], in[64];
    for (int i = 0; i < 16; i++)
        key[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        in[i] = (uint8_t)i;
    for (int i = 0; i < 64; i++)
        assert_int_equal(wsp_siphash(key, in, (size_t)i), vector(i));
    assert_int_equal(wsp_siphash(key, in, 15), 0xa129ca6149be45e5ULL);
    assert_int_equal(wsp_siphash(key, NULL, 0), vector(0));
}

/* libcrypto's SipHash (EVP_MAC "SIPHASH", 8-byte output, 2-4 rounds by default) as a second
 * implementation, for lengths past the vectors' 63 bytes and other keys. */
static uint64_t openssl_siphash(const uint8_t key[16], const uint8_t *p, size_t n)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "SIPHASH", NULL);
    EVP_MAC_CTX *c = EVP_MAC_CTX_new(mac);
    size_t size = 8;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &size),
                           OSSL_PARAM_construct_end()};
    uint8_t out[8];
    size_t len = 0;
    assert_int_equal(EVP_MAC_init(c, key, 16, params), 1);
    assert_int_equal(EVP_MAC_update(c, p, n), 1);
    assert_int_equal(EVP_MAC_final(c, out, &len, sizeof(out)), 1);
    assert_int_equal(len, 8);
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(mac);
    uint64_t v = 0;
    for (int b = 7; b >= 0; b--)
        v = v << 8 | out[b];
    return v;
}

static void test_against_libcrypto(void **state)
{
    (void)state;
    uint8_t key[16], in[1100];
    uint32_t x = 2463534242u; /* xorshift32: fixed, so a failure reproduces */
    for (size_t i = 0; i < sizeof(in); i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        in[i] = (uint8_t)x;
    }
    for (size_t n = 0; n <= sizeof(in) - 16; n += n < 80 ? 1 : 37) {
        memcpy(key, in + n % 64, 16);
        assert_int_equal(wsp_siphash(key, in + 16, n), openssl_siphash(key, in + 16, n));
    }
    /* One key bit or one input bit changes the output. */
    memcpy(key, in, 16);
    uint64_t h = wsp_siphash(key, in + 16, 40);
    key[15] ^= 0x80;
    assert_int_not_equal(wsp_siphash(key, in + 16, 40), h);
    key[15] ^= 0x80;
    in[16 + 39] ^= 1;
    assert_int_not_equal(wsp_siphash(key, in + 16, 40), h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_vectors),
        cmocka_unit_test(test_against_libcrypto),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
