#ifndef WSP_TALLY_H
#define WSP_TALLY_H

#include <stddef.h>
#include <stdint.h>

#include "bconn.h"
#include "stats.h"

/* Delivery accounting: which broadcasts each connection should have received, and which it
 * missed. Broadcast k is the message with "seq": k; T(k) is the earliest "time" (the server's
 * clock, ms) any connection received with it.
 *
 * The broadcasts expected are seqs 1..N with --expect-broadcasts N, else the lowest to the
 * highest seq any connection received. A connection counts for broadcast k when it received
 * k, or when it did not and
 *   (a) it received a broadcast before k and one after k (a gap; counted as it happens), or
 *   (b) it was open at the end of the run (for a worker that died: when it died) and it
 *       received a broadcast before k, or the bench had its 101 before T(k), or no
 *       connection received k at all (then T(k) is unknown and k counts for every
 *       connection open at the end).
 * A connection the server closed, or the bench dropped, counts only under (a): its close is
 * an error of its own. expected = delivered + missing, summed over the broadcasts expected.
 * Pure, no allocation, no I/O. */

/* The broadcasts expected and what the merged figures know about them. */
typedef struct wsp_tally_win_s {
    uint64_t lo, hi;           /* seqs lo..hi; none when lo > hi */
    int given;                 /* --expect-broadcasts was given: other seqs are unexpected */
    const wsp_seq_stat_t *seq; /* the merged per-seq table: got and T(k) = time_min_ms */
} wsp_tally_win_t;

/* The run's totals. */
typedef struct wsp_tally_sum_s {
    uint64_t expected, delivered, missing, duplicates;
    uint64_t unexpected;   /* with --expect-broadcasts: messages of any other seq */
    uint64_t missing_seqs; /* broadcasts of the window some connection missed */
} wsp_tally_sum_t;

/* Counts, in a worker's table, broadcasts (last, next) as missing: a connection that had
 * received last >= 1 got next. Worker thread; per gap, never per message. */
static inline void wsp_tally_gap(wsp_seq_stat_t *seq, uint64_t last, uint64_t next)
{
    for (uint64_t k = last + 1; k < next && k < WSP_SEQ_MAX; k++)
        seq[k].missing++;
}

/* Sets w from the merged per-seq table: seqs 1..expect when expect >= 0 (at most
 * WSP_SEQ_MAX - 1), else the lowest and the highest seq received. */
void wsp_tally_window(wsp_tally_win_t *w, const wsp_seq_stat_t *merged, int64_t expect);

/* Counts in out[k].missing every broadcast of w that c, open at the end, missed under (b);
 * est_ms is when the bench had its 101 (epoch ms). Returns how many. */
uint64_t wsp_tally_conn(const wsp_bconn_t *c, uint64_t est_ms, const wsp_tally_win_t *w,
                        wsp_seq_stat_t *out);

/* wsp_tally_conn() for every OPEN connection of a worker's table of n entries (est_ms
 * relative to epoch0_ms). Stores the number of open connections in *open. Returns how many
 * broadcasts they missed. */
uint64_t wsp_tally_table(const wsp_bconn_t *tab, size_t n, uint64_t epoch0_ms,
                         const wsp_tally_win_t *w, wsp_seq_stat_t *out, uint64_t *open);

/* Sums the merged figures s over w. */
void wsp_tally_sum(const wsp_tally_win_t *w, const wsp_wstats_t *s, wsp_tally_sum_t *out);

#endif
