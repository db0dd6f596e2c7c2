#ifndef WSP_SIPHASH_H
#define WSP_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-2-4 (Aumasson and Bernstein, 2012) of p[0..len) under the 128-bit key: the 64-bit
 * output, as the reference implementation's bytes read little-endian. A keyed hash, so that
 * peers choosing the input (a token's "sub") cannot aim collisions at a table without the key.
 * Pure; any thread. */
uint64_t wsp_siphash(const uint8_t key[16], const void *p, size_t len);

#endif
