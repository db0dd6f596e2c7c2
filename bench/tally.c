#include "tally.h"

#include <string.h>

void wsp_tally_window(wsp_tally_win_t *w, const wsp_seq_stat_t *merged, int64_t expect)
{
    memset(w, 0, sizeof(*w));
    w->seq = merged;
    if (expect >= 0) {
        w->given = 1;
        w->lo = 1;
        w->hi = (uint64_t)expect < WSP_SEQ_MAX ? (uint64_t)expect : WSP_SEQ_MAX - 1;
        return;
    }
    w->lo = 1;
    w->hi = 0;
    for (uint64_t k = 1; k < WSP_SEQ_MAX; k++) {
        if (merged[k].got == 0)
            continue;
        if (w->hi == 0)
            w->lo = k;
        w->hi = k;
    }
}

uint64_t wsp_tally_conn(const wsp_bconn_t *c, uint64_t est_ms, const wsp_tally_win_t *w,
                        wsp_seq_stat_t *out)
{
    uint64_t n = 0;
    /* After the last one it received: it was open since, TCP keeps order, so it missed
     * every later one. */
    if (c->last_seq > 0)
        for (uint64_t k = c->last_seq + 1 > w->lo ? c->last_seq + 1 : w->lo; k <= w->hi; k++) {
            out[k].missing++;
            n++;
        }
    /* Before the first one it received (or all, if none): the ones sent after its upgrade.
     * Times grow with seqs, so once one was sent before, every older one was too. The worker
     * leaves first_seq 0 when the first one was 1. */
    uint64_t first = c->first_seq ? c->first_seq : c->last_seq ? 1 : 0;
    uint64_t top = first > 0 && first - 1 < w->hi ? first - 1 : w->hi;
    for (uint64_t k = top; k >= w->lo && k > 0; k--) {
        uint64_t t = w->seq[k].time_min_ms;
        if (t != 0 && t <= est_ms)
            break;
        out[k].missing++;
        n++;
    }
    return n;
}

uint64_t wsp_tally_table(const wsp_bconn_t *tab, size_t n, uint64_t epoch0_ms,
                         const wsp_tally_win_t *w, wsp_seq_stat_t *out, uint64_t *open)
{
    uint64_t missed = 0;
    *open = 0;
    for (size_t fd = 0; fd < n; fd++) {
        if (tab[fd].state != WSP_BCONN_OPEN)
            continue;
        (*open)++;
        missed += wsp_tally_conn(&tab[fd], epoch0_ms + tab[fd].est_ms, w, out);
    }
    return missed;
}

void wsp_tally_sum(const wsp_tally_win_t *w, const wsp_wstats_t *s, wsp_tally_sum_t *out)
{
    memset(out, 0, sizeof(*out));
    for (uint64_t k = 0; k < WSP_SEQ_MAX; k++) {
        const wsp_seq_stat_t *q = &s->seq[k];
        out->duplicates += q->dup;
        if (k < w->lo || k > w->hi) {
            out->unexpected += w->given ? q->got : 0;
            continue;
        }
        out->delivered += q->got;
        out->missing += q->missing;
        out->missing_seqs += q->missing > 0;
    }
    if (w->given)
        out->unexpected += s->seq_overflow;
    out->expected = out->delivered + out->missing;
}
