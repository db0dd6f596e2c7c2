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

/* The uncompressed frame of kind (PLAIN or FRAMED). */
static wsp_msg_t *pick_source(wsp_pick_t *p, unsigned kind)
{
    wsp_msg_t *plain = p->by_xf[WSP_BCAST_PLAIN];
    if (kind == WSP_BCAST_PLAIN || p->ps->framed == NULL)
        return plain;
    wsp_msg_t *m = wsp_bcast_frame_build(p->b, WSP_BCAST_FRAMED, p->ps->framed, NULL);
    return m ? m : plain;
}

void wsp_pick_begin(wsp_pick_t *p, wsp_bcast_t *b, wsp_pick_shard_t *ps)
{
    memset(p->by_xf, 0, sizeof(p->by_xf));
    p->b = b;
    p->ps = ps;
    p->by_xf[0] = wsp_bcast_frame(b, WSP_BCAST_PLAIN); /* every broadcast has it */
}

wsp_msg_t *wsp__pick_resolve(wsp_pick_t *p, unsigned xf)
{
    unsigned kind = xf & WSP_CONN_X_KIND;
    wsp_msg_t *src = pick_source(p, kind & ~WSP_CONN_X_DEFLATE), *m = src;
    if (kind & WSP_CONN_X_DEFLATE) {
        size_t len;
        wsp_bcast_frame_payload(src, &len);
        unsigned wbits = 8 + ((xf & WSP_CONN_X_WBITS) >> WSP_CONN_X_WBITS_SHIFT);
        if (len >= p->ps->min_bytes && wsp_pmd_fits(wbits, len)) {
            /* FRAMED_DEFLATE only compresses the framed frame: plain stays DEFLATE's source. */
            unsigned zkind = src == p->by_xf[WSP_BCAST_PLAIN] ? WSP_BCAST_DEFLATE : kind;
            pick_zjob_t job = {p->ps, src};
            wsp_msg_t *z = wsp_bcast_frame_build(p->b, zkind, build_deflate, &job);
            if (z)
                m = z;
        }
    }
    p->by_xf[xf] = m;
    return m;
}

void wsp_pick_shard_free(wsp_pick_shard_t *ps)
{
    wsp_deflate_free(ps->z);
    ps->z = NULL;
}
