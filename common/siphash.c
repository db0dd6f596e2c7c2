/* SipHash-2-4, from the paper's description (https://131002.net/siphash/siphash.pdf): two
 * compression rounds per 8-byte word, four finalisation rounds. Written out rather than
 * taken from libcrypto's EVP_MAC "SIPHASH": that fetches and allocates per call (about a
 * microsecond), this is tens of nanoseconds for a 64-byte input. */
#include "siphash.h"

#include <string.h>

static inline uint64_t rotl(uint64_t x, int b) { return x << b | x >> (64 - b); }

/* Little-endian load, whatever the host's order. */
static inline uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* One SipRound on the state v[0..3]. */
static inline void sipround(uint64_t v[4])
{
    v[0] += v[1];
    v[1] = rotl(v[1], 13) ^ v[0];
    v[0] = rotl(v[0], 32);
    v[2] += v[3];
    v[3] = rotl(v[3], 16) ^ v[2];
    v[0] += v[3];
    v[3] = rotl(v[3], 21) ^ v[0];
    v[2] += v[1];
    v[1] = rotl(v[1], 17) ^ v[2];
    v[2] = rotl(v[2], 32);
}

/* Absorbs one 8-byte word: SipHash-2-4's two compression rounds. */
static inline void compress(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sipround(v);
    sipround(v);
    v[0] ^= m;
}

uint64_t wsp_siphash(const uint8_t key[16], const void *p, size_t len)
{
    const uint8_t *in = p;
    uint64_t k0 = le64(key), k1 = le64(key + 8);
    uint64_t v[4] = {
        k0 ^ 0x736f6d6570736575ULL, /* "somepseudorandomlygeneratedbytes" */
        k1 ^ 0x646f72616e646f6dULL,
        k0 ^ 0x6c7967656e657261ULL,
        k1 ^ 0x7465646279746573ULL,
    };
    size_t words = len / 8;
    for (size_t i = 0; i < words; i++)
        compress(v, le64(in + 8 * i));
    /* The last word: the remaining 0..7 bytes, zero-padded, length mod 256 in the top byte. */
    uint8_t tail[8] = {0};
    if (len % 8) /* never memcpy from NULL, even 0 bytes */
        memcpy(tail, in + 8 * words, len % 8);
    compress(v, le64(tail) | (uint64_t)(len & 0xff) << 56);
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++) /* four finalisation rounds */
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}
