#include "pick.h"

#include <assert.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "conn.h"
#include "pmd.h"

static_assert(WSP_CONN_X_KIND == 3u && WSP_CONN_X_DEFLATE == (unsigned)WSP_BCAST_DEFLATE,
              "bits 0-1 of what a connection negotiated are its broadcast frame kind");
static_assert((WSP_CONN_X_KIND | WSP_CONN_X_WBITS) == WSP_PICK_XF_MASK,
              "the frame depends on the negotiated bits 0-4 alone");

/* What a compressed kind's build needs: the calling shard (its compressor and counters) and
 * the frame whose payload it compresses. */
typedef struct pick_zjob_s {
    wsp_pick_shard_t *ps;
    const wsp_msg_t *src;
} pick_zjob_t;

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    (void)clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* cannot fail for this clock */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* wsp_bcast_build_fn of DEFLATE and FRAMED_DEFLATE: the source frame's payload compressed
 * once into a frame of its own, or NULL (out of memory, or no smaller: the uncompressed frame
 * is then every shard's). The compressor is made here, so only a shard that builds has one. */
static wsp_msg_t *build_deflate(const wsp_bcast_t *b, void *ctx)
{
    (void)b;
    pick_zjob_t *j = ctx;
    wsp_pick_shard_t *ps = j->ps;
    if (ps->z == NULL && (ps->z = wsp_deflate_new(WSP_DEFLATE_LEVEL)) == NULL)
        return NULL;
    size_t len, zlen;
    const uint8_t *payload = wsp_bcast_frame_payload(j->src, &len);
    wsp_msg_t *m;
    uint64_t t0 = thread_cpu_ns();
    int rv = wsp_deflate_frame(ps->z, j->src->bytes[0] & 0x0Fu, payload, len, &m);
    uint64_t ns = thread_cpu_ns() - t0;
    if (rv < 0)
        return NULL;
    wsp_bcast_frame_payload(m, &zlen);
    wsp_shard_stats_t *st = ps->stats;
    atomic_fetch_add_explicit(&st->deflate_builds, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->deflate_in_bytes, len, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->deflate_out_bytes, zlen, memory_order_relaxed);
    atomic_fetch_add_explicit(&st->deflate_ns, ns, memory_order_relaxed);
    if (m->len >= j->src->len) { /* incompressible: the plain frame is the better one */
        wsp_msg_unref(m);
        return NULL;
    }
    return m;
}

/* The kind of uncompressed frame (PLAIN, or FRAMED once #17 brings its builder) a
 * connection asking for kind (PLAIN or FRAMED) gets, built if need be. */
static unsigned pick_source(wsp_pick_t *p, unsigned kind)
{
    if (kind == WSP_BCAST_PLAIN || p->ps->framed == NULL)
        return WSP_BCAST_PLAIN;
    if (p->frame[WSP_BCAST_FRAMED] == NULL)
        p->frame[WSP_BCAST_FRAMED] =
            wsp_bcast_frame_build(p->b, WSP_BCAST_FRAMED, p->ps->framed, NULL);
    return p->frame[WSP_BCAST_FRAMED] ? WSP_BCAST_FRAMED : WSP_BCAST_PLAIN;
}

void wsp_pick_begin(wsp_pick_t *p, wsp_bcast_t *b, wsp_pick_shard_t *ps)
{
    memset(p->kind_of, WSP_PICK_UNRESOLVED, sizeof(p->kind_of));
    memset(p->frame, 0, sizeof(p->frame));
    p->b = b;
    p->ps = ps;
    p->frame[WSP_BCAST_PLAIN] = wsp_bcast_frame(b, WSP_BCAST_PLAIN); /* every broadcast has it */
    p->kind_of[0] = WSP_BCAST_PLAIN;
}

unsigned wsp__pick_resolve(wsp_pick_t *p, unsigned xf)
{
    unsigned want = xf & WSP_CONN_X_KIND;
    unsigned kind = pick_source(p, want & ~WSP_CONN_X_DEFLATE);
    if (want & WSP_CONN_X_DEFLATE) {
        size_t len;
        wsp_bcast_frame_payload(p->frame[kind], &len);
        unsigned wbits = 8 + ((xf & WSP_CONN_X_WBITS) >> WSP_CONN_X_WBITS_SHIFT);
        /* DEFLATE compresses the plain frame, FRAMED_DEFLATE the framed one. */
        unsigned zkind = kind | WSP_BCAST_DEFLATE;
        if (len >= p->ps->min_bytes && wsp_pmd_fits(wbits, len)) {
            if (p->frame[zkind] == NULL) {
                pick_zjob_t job = {p->ps, p->frame[kind]};
                p->frame[zkind] = wsp_bcast_frame_build(p->b, zkind, build_deflate, &job);
            }
            if (p->frame[zkind])
                kind = zkind;
        }
    }
    p->kind_of[xf] = (uint8_t)kind;
    return kind;
}

void wsp_pick_shard_free(wsp_pick_shard_t *ps)
{
    wsp_deflate_free(ps->z);
    ps->z = NULL;
}
