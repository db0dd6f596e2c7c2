#ifndef WSP_FUZZ_H
#define WSP_FUZZ_H

/* Shared by the fuzz targets: the libFuzzer entry point (also driven by replay.c's main() in
 * builds without libFuzzer), a check that survives NDEBUG, and input splitting. */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Runs one input; always returns 0 (libFuzzer reserves other values). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* On a target's own bookkeeping and checkers (never on code that calls into the code under
 * test): no coverage instrumentation, so that libFuzzer's time and features go to the code
 * under test. noinline: inlined into an instrumented caller, the body would be instrumented
 * there. */
#if defined(__clang__) && __clang_major__ >= 13
#define WSP_FUZZ_HARNESS __attribute__((no_sanitize("coverage"), noinline))
#else
#define WSP_FUZZ_HARNESS
#endif

/* A broken invariant is a finding: say which, then abort so libFuzzer saves the input. */
#define WSP_FUZZ_CHECK(cond)                                                                       \
    ((cond)                                                                                        \
         ? (void)0                                                                                 \
         : (fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond), abort()))

/* Chunk sizes for feeding a stream in pieces. One control byte picks the split, so mutating
 * the stream's bytes keeps it: 0 = everything at once; otherwise pseudo-random sizes in
 * 1..2^(ctl % 16) (ctl % 16 == 0: one byte at a time), the sequence seeded by ctl. */
typedef struct wsp_fuzz_split_s {
    uint32_t state;
    uint32_t max;
} wsp_fuzz_split_t;

static inline void wsp_fuzz_split_init(wsp_fuzz_split_t *s, uint8_t ctl)
{
    s->state = 0x9E3779B9u ^ ((uint32_t)ctl * 0x01000193u);
    s->max = ctl == 0 ? 0 : 1u << (ctl % 16);
}

/* The next chunk length, 1..left (left > 0). */
static inline size_t wsp_fuzz_split_next(wsp_fuzz_split_t *s, size_t left)
{
    if (s->max == 0)
        return left;
    s->state ^= s->state << 13; /* xorshift32 */
    s->state ^= s->state >> 17;
    s->state ^= s->state << 5;
    size_t n = 1 + s->state % s->max;
    return n < left ? n : left;
}

#endif
