#include "report.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "jwt.h"
#include "tokens.h"

#define SERIES_MAX 4000 /* points at most */

void wsp_report_init(wsp_report_t *r, const wsp_bench_cfg_t *cfg, uint64_t now_ns)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->sum = wsp_xmalloc(sizeof(*r->sum));
    wsp_stats_init(r->sum);
    wsp_meter_init(&r->msg_meter, now_ns);
    wsp_meter_init(&r->setup_meter, now_ns);
    r->start_ns = now_ns;
    /* every status sample (0.25 s) for short runs, coarser for long ones */
    r->series_step = cfg->duration / SERIES_MAX > 0.25 ? cfg->duration / SERIES_MAX : 0.25;
    r->cap = (size_t)(cfg->duration / r->series_step) + 16;
    r->series = wsp_xcalloc(r->cap, sizeof(wsp_series_pt_t));
    r->stopped_by = "duration";
}

void wsp_report_free(wsp_report_t *r)
{
    free(r->sum);
    free(r->series);
    r->sum = NULL;
    r->series = NULL;
}

void wsp_report_merge(wsp_report_t *r, wsp_wstats_t *const *blocks, unsigned n)
{
    wsp_stats_init(r->sum);
    for (unsigned i = 0; i < n; i++)
        wsp_stats_merge(r->sum, blocks[i]);
}

uint64_t wsp_report_errors(const wsp_wstats_t *s)
{
    uint64_t e = 0;
    for (int i = 0; i < WSP_ERR_KINDS; i++)
        e += s->err[i];
    return e;
}

void wsp_report_sample(wsp_report_t *r, uint64_t now_ns)
{
    const wsp_wstats_t *s = r->sum;
    if (s->setups > r->marked_setups) {
        wsp_meter_mark(&r->setup_meter, s->setups - r->marked_setups, now_ns);
        r->marked_setups = s->setups;
    }
    if (s->messages > r->marked_msgs) {
        wsp_meter_mark(&r->msg_meter, s->messages - r->marked_msgs, now_ns);
        r->marked_msgs = s->messages;
    }
    double t = (double)(now_ns - r->start_ns) / 1e9;
    if (t >= r->next_series_t && r->nseries < r->cap) {
        r->series[r->nseries++] =
            (wsp_series_pt_t){t, s->active, s->setups, wsp_report_errors(s), s->messages};
        r->next_series_t += r->series_step;
    }
}

static double ms(uint64_t us) { return (double)us / 1000.0; }

static void print_codes(FILE *f, const char *what, const wsp_codes_t *t)
{
    int any = 0;
    for (int i = 0; i < WSP_CODES; i++) {
        if (t->count[i] == 0)
            continue;
        fprintf(f, "%s%u=%llu", any ? " " : "                          ", t->code[i],
                (unsigned long long)t->count[i]);
        any = 1;
    }
    if (t->other)
        fprintf(f, "%sother=%llu", any ? " " : "                          ",
                (unsigned long long)t->other);
    if (any || t->other)
        fprintf(f, "  (%s)\n", what);
}

/* A meter as a report line or as a JSON member. */
static void put_meter(FILE *f, int json, const char *name, wsp_meter_t *m, uint64_t now)
{
    unsigned long long n = m->count;
    double mean = wsp_meter_mean_rate(m, now), r1 = wsp_meter_rate(m, 0, now),
           r5 = wsp_meter_rate(m, 1, now), r15 = wsp_meter_rate(m, 2, now);
    if (json)
        fprintf(f,
                "  \"%s\": {\"count\": %llu, \"mean_rate\": %.3f, \"m1_rate\": %.3f, "
                "\"m5_rate\": %.3f, \"m15_rate\": %.3f},\n",
                name, n, mean, r1, r5, r15);
    else
        fprintf(f,
                "%-26scount = %llu  mean rate = %.1f  1-minute rate = %.1f  5-minute rate = "
                "%.1f  15-minute rate = %.1f  events/second\n",
                name, n, mean, r1, r5, r15);
}

/* The broadcast figures of seq k, relative to its earliest server time. */
static void seq_times(const wsp_seq_stat_t *s, double *first, double *last, double *spread)
{
    double base = (double)s->time_min_ms * 1000.0;
    *first = s->first_us ? ((double)s->first_us - base) / 1000.0 : 0;
    *last = s->last_us ? ((double)s->last_us - base) / 1000.0 : 0;
    *spread = (double)(s->time_max_ms - s->time_min_ms);
}

/* How many of code the server's closes carried. */
static uint64_t code_count(const wsp_codes_t *t, uint32_t code)
{
    for (int i = 0; i < WSP_CODES; i++)
        if (t->code[i] == code)
            return t->count[i];
    return 0;
}

/* Token auth (issue #16): the tokens, the refusals by reason, the closes by reason. */
static void print_auth(FILE *f, const wsp_report_t *r)
{
    const wsp_wstats_t *s = r->sum;
    const wsp_tokens_t *t = r->cfg->tokens;
    if (t == NULL)
        return;
    fprintf(f, "%-26s%s, %llu minted in %.2f s before the ramp; refused 401 = %llu, 403 = %llu",
            "Token auth", wsp_jwt_alg_name(r->cfg->jwt_alg), (unsigned long long)t->n, t->mint_s,
            (unsigned long long)code_count(&s->statuses, 401),
            (unsigned long long)code_count(&s->statuses, 403));
    int any = 0;
    for (int i = 0; i < WSP_AUTH_REASONS; i++)
        if (s->auth_fail[i])
            fprintf(f, "%s%s=%llu", any++ ? " " : " (", wsp_stats_auth_names[i],
                    (unsigned long long)s->auth_fail[i]);
    fprintf(f, "%s; closed 4001 (expired) = %llu, 4003 (invalid refresh) = %llu\n", any ? ")" : "",
            (unsigned long long)code_count(&s->closed_codes, 4001),
            (unsigned long long)code_count(&s->closed_codes, 4003));
}

/* The connections and the errors. */
static void print_conns(FILE *f, const wsp_report_t *r)
{
    const wsp_wstats_t *s = r->sum;
    fprintf(f, "%-26scount = %llu  (target %llu, setups %llu, retries %llu)\n", "Active WebSockets",
            (unsigned long long)s->active, (unsigned long long)r->cfg->conns,
            (unsigned long long)s->setups, (unsigned long long)s->retries);
    fprintf(f, "%-26scount = %llu ", "WebSocket Errors", (unsigned long long)wsp_report_errors(s));
    for (int i = 0; i < WSP_ERR_KINDS; i++)
        fprintf(f, " %s=%llu", wsp_stats_err_names[i], (unsigned long long)s->err[i]);
    fputc('\n', f);
    print_codes(f, "closed by server, by close code; 1006 = no close frame", &s->closed_codes);
    print_codes(f, "handshake answers, by HTTP status", &s->statuses);
    print_auth(f, r);
    if (s->err[WSP_ERR_CONNECT] && s->last_errno)
        fprintf(f, "%26slast connect error: %s\n", "", strerror((int)s->last_errno));
    if (r->dead_open)
        fprintf(f,
                "%26s%llu connections were open in workers that died: what they did not get "
                "is missing\n",
                "", (unsigned long long)r->dead_open);
}

/* wss://: the TLS handshakes, full and resumed, and how long they took. */
static void print_tls(FILE *f, const wsp_report_t *r)
{
    const wsp_wstats_t *s = r->sum;
    const wsp_hist_t *h = &s->tls_hs;
    fprintf(f,
            "%-26sfull = %llu  resumed = %llu  min = %.3f  median = %.3f  90%% <= %.3f  99%% "
            "<= %.3f  max = %.3f\n",
            "TLS handshakes (ms)", (unsigned long long)s->tls_full,
            (unsigned long long)s->tls_resumed, ms(h->count ? h->min : 0),
            ms(wsp_hist_quantile(h, 0.5)), ms(wsp_hist_quantile(h, 0.9)),
            ms(wsp_hist_quantile(h, 0.99)), ms(h->max));
}

/* --deflate: how many connections got permessage-deflate, and what compression saved. */
static void print_deflate(FILE *f, const wsp_report_t *r)
{
    const wsp_wstats_t *s = r->sum;
    if (!r->cfg->deflate)
        return;
    fprintf(f,
            "%-26saccepted on %llu of %llu connections; %llu compressed messages: %llu bytes "
            "received, %llu inflated (%.3f); %llu uncompressed messages\n",
            "permessage-deflate", (unsigned long long)s->deflate_conns,
            (unsigned long long)s->setups, (unsigned long long)s->z_msgs,
            (unsigned long long)s->z_wire_bytes, (unsigned long long)s->z_plain_bytes,
            s->z_plain_bytes ? (double)s->z_wire_bytes / (double)s->z_plain_bytes : 0,
            (unsigned long long)(s->messages - s->z_msgs));
}

/* Latency, the meters, the ramp. */
static void print_rates(FILE *f, wsp_report_t *r, uint64_t now)
{
    const wsp_wstats_t *s = r->sum;
    const wsp_hist_t *h = &s->latency;
    fprintf(f, "%-26scount = %llu  min = %.3f  max = %.3f  mean = %.3f  stddev = %.3f\n",
            "Message latency (ms)", (unsigned long long)h->count, ms(h->count ? h->min : 0),
            ms(h->max), wsp_hist_mean(h) / 1000.0, wsp_hist_stddev(h) / 1000.0);
    fprintf(f,
            "%26smedian = %.3f  75%% <= %.3f  95%% <= %.3f  98%% <= %.3f  99%% <= %.3f  "
            "99.9%% <= %.3f\n",
            "", ms(wsp_hist_quantile(h, 0.5)), ms(wsp_hist_quantile(h, 0.75)),
            ms(wsp_hist_quantile(h, 0.95)), ms(wsp_hist_quantile(h, 0.98)),
            ms(wsp_hist_quantile(h, 0.99)), ms(wsp_hist_quantile(h, 0.999)));
    put_meter(f, 0, "Message Rate", &r->msg_meter, now);
    put_meter(f, 0, "Setup Rate", &r->setup_meter, now);
    if (s->setups && s->last_setup_us > s->first_connect_us) {
        double span = (double)(s->last_setup_us - s->first_connect_us) / 1e6;
        fprintf(f, "%-26s%llu upgraded in %.2f s = %.0f/s%s\n", "Ramp",
                (unsigned long long)s->setups, span, (double)s->setups / span,
                r->ramp_done ? "" : " (ramp still running)");
    }
}

/* The highest seq of the per-broadcast table, and whether seq k is in it: every seq a
 * connection got or missed, and at the end every seq expected. */
static uint64_t seq_top(const wsp_report_t *r)
{
    uint64_t top = r->sum->max_seq;
    if (r->tallied && r->win.hi > top)
        top = r->win.hi;
    return top < WSP_SEQ_MAX ? top : WSP_SEQ_MAX - 1;
}

static int seq_shown(const wsp_report_t *r, uint64_t k)
{
    const wsp_seq_stat_t *q = &r->sum->seq[k];
    return q->got || q->missing || q->dup || (r->tallied && k >= r->win.lo && k <= r->win.hi);
}

static void print_broadcasts(FILE *f, const wsp_report_t *r)
{
    const wsp_wstats_t *s = r->sum;
    uint64_t top = seq_top(r), shown = 0;
    for (uint64_t k = 1; k <= top; k++)
        shown += seq_shown(r, k);
    if (shown) {
        fprintf(f, "%-26s%6s %9s %8s %6s %10s %10s\n", "Broadcasts (ms after send)", "seq", "got",
                "missing", "dup", "first", "last");
        uint64_t skip = shown > 20 ? shown - 20 : 0; /* the JSON has all of them */
        for (uint64_t k = 1; k <= top; k++) {
            const wsp_seq_stat_t *q = &s->seq[k];
            if (!seq_shown(r, k) || (skip && skip--))
                continue;
            double first, last, spread;
            seq_times(q, &first, &last, &spread);
            fprintf(f, "%26s%6llu %9llu %8llu %6llu %10.3f %10.3f\n", "", (unsigned long long)k,
                    (unsigned long long)q->got, (unsigned long long)q->missing,
                    (unsigned long long)q->dup, first, last);
        }
    }
    if (s->seq_overflow)
        fprintf(f, "%26s%llu messages with seq >= %d are not in the table\n", "",
                (unsigned long long)s->seq_overflow, WSP_SEQ_MAX);
}

/* The seqs of the window some connection missed, comma-separated; at most max of them, then
 * how many more (max 0: all). */
static void put_missing_seqs(FILE *f, const wsp_report_t *r, uint64_t max)
{
    uint64_t n = 0;
    for (uint64_t k = r->win.lo; k <= r->win.hi; k++) {
        if (r->sum->seq[k].missing == 0)
            continue;
        if (max == 0 || n < max)
            fprintf(f, "%s%llu", n ? ", " : "", (unsigned long long)k);
        n++;
    }
    if (max && n > max)
        fprintf(f, " and %llu more", (unsigned long long)(n - max));
}

static void print_delivery(FILE *f, const wsp_report_t *r)
{
    const wsp_tally_sum_t *d = &r->delivery;
    fprintf(f, "%-26sexpected = %llu  delivered = %llu  missing = %llu  duplicates = %llu",
            "Delivery", (unsigned long long)d->expected, (unsigned long long)d->delivered,
            (unsigned long long)d->missing, (unsigned long long)d->duplicates);
    if (r->win.given)
        fprintf(f, "  unexpected = %llu  (broadcasts 1-%llu expected)\n",
                (unsigned long long)d->unexpected, (unsigned long long)r->win.hi);
    else if (r->win.lo <= r->win.hi)
        fprintf(f, "  (broadcasts %llu-%llu, as received)\n", (unsigned long long)r->win.lo,
                (unsigned long long)r->win.hi);
    else
        fprintf(f, "  (no broadcast received)\n");
    if (d->missing) {
        fprintf(f, "%26smissing seqs: ", "");
        put_missing_seqs(f, r, 20);
        fputc('\n', f);
    }
}

/* The seconds from the first reconnect to the last replayed message (0: none). */
static double replay_span(const wsp_wstats_t *s)
{
    return s->replay_end_us > s->resume_start_us && s->resume_start_us
               ? (double)(s->replay_end_us - s->resume_start_us) / 1e6
               : 0;
}

/* --recover: what came back and how fast. */
static void print_recovery(FILE *f, const wsp_report_t *r)
{
    const wsp_wstats_t *s = r->sum;
    if (!r->cfg->framed)
        return;
    double span = replay_span(s);
    fprintf(f,
            "%-26shellos = %llu  dropped = %llu  resumed = %llu  recovered = %llu  "
            "not recovered = %llu\n",
            "wspush.v1", (unsigned long long)s->hellos, (unsigned long long)s->dropped,
            (unsigned long long)s->resumed, (unsigned long long)s->recovered,
            (unsigned long long)s->not_recovered);
    if (s->resumed)
        fprintf(f,
                "%26sreplayed = %llu in %.3f s (first reconnect to last replayed message) = "
                "%.0f messages/s\n",
                "", (unsigned long long)s->replayed, span,
                span > 0 ? (double)s->replayed / span : 0);
}

void wsp_report_print(FILE *f, wsp_report_t *r, uint64_t now, int final)
{
    double t = (double)(now - r->start_ns) / 1e9;
    fprintf(f, "-- wspush-bench t=%.1fs%s ", t, final ? " final" : "");
    for (int i = 0; i < 50; i++)
        fputc('-', f);
    fputc('\n', f);
    print_conns(f, r);
    print_recovery(f, r);
    if (r->cfg->tls)
        print_tls(f, r);
    print_rates(f, r, now);
    print_deflate(f, r);
    print_broadcasts(f, r);
    if (r->tallied)
        print_delivery(f, r);
    fflush(f);
}

int wsp_report_ok(const wsp_report_t *r)
{
    const wsp_tally_sum_t *d = &r->delivery;
    return r->tallied && wsp_report_errors(r->sum) == 0 && d->missing == 0 && d->duplicates == 0 &&
           d->unexpected == 0 && r->sum->not_recovered == 0;
}

void wsp_report_verdict(FILE *f, const wsp_report_t *r)
{
    const wsp_tally_sum_t *d = &r->delivery;
    unsigned long long errors = wsp_report_errors(r->sum);
    if (wsp_report_ok(r)) {
        fprintf(f,
                "wspush-bench: ok: every connection got every broadcast it was open for, once "
                "(expected = delivered = %llu), 0 errors\n",
                (unsigned long long)d->delivered);
    } else {
        fprintf(f, "wspush-bench: FAIL: %llu missing", (unsigned long long)d->missing);
        if (d->missing) {
            fprintf(f, " (seqs ");
            put_missing_seqs(f, r, 20);
            fputc(')', f);
        }
        fprintf(f,
                ", %llu duplicates, %llu unexpected, %llu errors, %llu not recovered (of %llu "
                "expected)\n",
                (unsigned long long)d->duplicates, (unsigned long long)d->unexpected, errors,
                (unsigned long long)r->sum->not_recovered, (unsigned long long)d->expected);
    }
    fflush(f);
}

static void json_codes(FILE *f, const wsp_codes_t *t)
{
    fputc('{', f);
    int any = 0;
    for (int i = 0; i < WSP_CODES; i++) {
        if (t->count[i] == 0)
            continue;
        fprintf(f, "%s\"%u\": %llu", any ? ", " : "", t->code[i], (unsigned long long)t->count[i]);
        any = 1;
    }
    if (t->other)
        fprintf(f, "%s\"other\": %llu", any ? ", " : "", (unsigned long long)t->other);
    fputc('}', f);
}

/* Writes s as a JSON string; our strings are paths and URLs, but escape anyway. */
static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; s && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

/* "config": what the run was asked to do. */
static void json_config(FILE *f, const wsp_bench_cfg_t *c)
{
    char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];
    struct in_addr ia = {htonl(c->src_first)}, ib = {htonl(c->src_last)};
    inet_ntop(AF_INET, &ia, a, sizeof(a));
    inet_ntop(AF_INET, &ib, b, sizeof(b));
    fprintf(f, "  \"config\": {\"url\": ");
    json_str(f, c->url);
    fprintf(f,
            ", \"conns\": %llu, \"duration_s\": %.3f, \"procs\": %u, \"sources\": \"%s-%s\", "
            "\"per_source\": %d, \"concurrency\": %u, \"rate\": %.3f, \"report_interval_s\": "
            "%.3f, \"handshake_timeout_s\": %.3f, \"retries\": %u, \"coalesce_us\": %u, "
            "\"framed\": %s, \"recover\": %lld, \"tls\": %s, \"tls_version\": \"%s\", "
            "\"tls_resume\": %s, \"tls_verify\": %s, \"deflate\": %s},\n",
            (unsigned long long)c->conns, c->duration, c->procs, a, b, WSP_ARGS_PER_SOURCE,
            c->concurrency, c->rate, c->report_interval, c->handshake_timeout, c->retries,
            c->coalesce_us, c->framed ? "true" : "false", (long long)c->recover_at,
            c->tls ? "true" : "false", c->tls_version == 0x0303 ? "1.2" : "1.3",
            c->tls_resume ? "true" : "false", c->tls_ca ? "true" : "false",
            c->deflate ? "true" : "false");
}

/* The connections: how many, the ramp. */
static void json_conns(FILE *f, const wsp_report_t *r, uint64_t now)
{
    const wsp_wstats_t *s = r->sum;
    fprintf(f, "  \"start_epoch_ms\": %llu,\n  \"elapsed_s\": %.3f,\n  \"stopped_by\": \"%s\",\n",
            (unsigned long long)r->start_epoch_ms, (double)(now - r->start_ns) / 1e9,
            r->stopped_by);
    fprintf(f, "  \"active\": %llu,\n  \"setups\": %llu,\n  \"retries\": %llu,\n",
            (unsigned long long)s->active, (unsigned long long)s->setups,
            (unsigned long long)s->retries);
    double span = s->last_setup_us > s->first_connect_us
                      ? (double)(s->last_setup_us - s->first_connect_us) / 1e6
                      : 0;
    fprintf(f,
            "  \"ramp\": {\"target\": %llu, \"done\": %s, \"connected\": %llu, \"seconds\": "
            "%.3f, \"rate_per_s\": %.1f},\n",
            (unsigned long long)r->cfg->conns, r->ramp_done ? "true" : "false",
            (unsigned long long)s->setups, span, span > 0 ? (double)s->setups / span : 0);
}

/* "recovery": --framed and --recover's figures. */
static void json_recovery(FILE *f, const wsp_wstats_t *s)
{
    double span = replay_span(s);
    fprintf(f,
            "  \"recovery\": {\"hellos\": %llu, \"dropped\": %llu, \"resumed\": %llu, "
            "\"recovered\": %llu, \"not_recovered\": %llu, \"replayed\": %llu, "
            "\"resume_start_epoch_us\": %llu, \"replay_end_epoch_us\": %llu, \"seconds\": %.3f, "
            "\"replayed_per_s\": %.1f},\n",
            (unsigned long long)s->hellos, (unsigned long long)s->dropped,
            (unsigned long long)s->resumed, (unsigned long long)s->recovered,
            (unsigned long long)s->not_recovered, (unsigned long long)s->replayed,
            (unsigned long long)s->resume_start_us, (unsigned long long)s->replay_end_us, span,
            span > 0 ? (double)s->replayed / span : 0);
}

static void json_errors(FILE *f, const wsp_wstats_t *s)
{
    fprintf(f, "  \"errors\": {\"total\": %llu", (unsigned long long)wsp_report_errors(s));
    for (int i = 0; i < WSP_ERR_KINDS; i++)
        fprintf(f, ", \"%s\": %llu", wsp_stats_err_names[i], (unsigned long long)s->err[i]);
    fprintf(f, ", \"closed_in_handshake\": %llu, \"closed_codes\": ",
            (unsigned long long)s->closed_in_handshake);
    json_codes(f, &s->closed_codes);
    fprintf(f, ", \"handshake_statuses\": ");
    json_codes(f, &s->statuses);
    fprintf(f, ", \"last_connect_error\": ");
    json_str(f, s->last_errno ? strerror((int)s->last_errno) : "");
    fprintf(f, "},\n");
}

/* "auth": the tokens and what token auth refused or closed (null without --jwt-alg). */
static void json_auth(FILE *f, const wsp_report_t *r)
{
    const wsp_wstats_t *s = r->sum;
    const wsp_tokens_t *t = r->cfg->tokens;
    if (t == NULL) {
        fprintf(f, "  \"auth\": null,\n");
        return;
    }
    fprintf(f,
            "  \"auth\": {\"alg\": \"%s\", \"tokens\": %llu, \"mint_s\": %.3f, \"exp_s\": %u, "
            "\"refused_401\": %llu, \"refused_403\": %llu, \"reasons\": {",
            wsp_jwt_alg_name(r->cfg->jwt_alg), (unsigned long long)t->n, t->mint_s, r->cfg->jwt_exp,
            (unsigned long long)code_count(&s->statuses, 401),
            (unsigned long long)code_count(&s->statuses, 403));
    for (int i = 0; i < WSP_AUTH_REASONS; i++)
        fprintf(f, "%s\"%s\": %llu", i ? ", " : "", wsp_stats_auth_names[i],
                (unsigned long long)s->auth_fail[i]);
    fprintf(f, "}, \"closed_4001_expired\": %llu, \"closed_4003_invalid\": %llu},\n",
            (unsigned long long)code_count(&s->closed_codes, 4001),
            (unsigned long long)code_count(&s->closed_codes, 4003));
}

/* The messages: counts, latency, rates, the bench's own CPU. */
static void json_messages(FILE *f, wsp_report_t *r, uint64_t now)
{
    const wsp_wstats_t *s = r->sum;
    const wsp_hist_t *h = &s->latency;
    fprintf(f,
            "  \"messages\": {\"count\": %llu, \"pings_answered\": %llu, \"max_seq\": %llu, "
            "\"seq_overflow\": %llu},\n",
            (unsigned long long)s->messages, (unsigned long long)s->pings,
            (unsigned long long)s->max_seq, (unsigned long long)s->seq_overflow);
    fprintf(f,
            "  \"latency_ms\": {\"count\": %llu, \"min\": %.3f, \"max\": %.3f, \"mean\": %.3f, "
            "\"stddev\": %.3f, \"p50\": %.3f, \"p75\": %.3f, \"p90\": %.3f, \"p95\": %.3f, "
            "\"p98\": %.3f, \"p99\": %.3f, \"p999\": %.3f},\n",
            (unsigned long long)h->count, ms(h->count ? h->min : 0), ms(h->max),
            wsp_hist_mean(h) / 1000.0, wsp_hist_stddev(h) / 1000.0, ms(wsp_hist_quantile(h, 0.5)),
            ms(wsp_hist_quantile(h, 0.75)), ms(wsp_hist_quantile(h, 0.90)),
            ms(wsp_hist_quantile(h, 0.95)), ms(wsp_hist_quantile(h, 0.98)),
            ms(wsp_hist_quantile(h, 0.99)), ms(wsp_hist_quantile(h, 0.999)));
    put_meter(f, 1, "message_rate", &r->msg_meter, now);
    put_meter(f, 1, "setup_rate", &r->setup_meter, now);
    fprintf(f,
            "  \"bench_cpu\": {\"user_s\": %.3f, \"sys_s\": %.3f, \"us_per_message_overall\": "
            "%.3f},\n",
            r->cpu_user_s, r->cpu_sys_s,
            s->messages ? (r->cpu_user_s + r->cpu_sys_s) * 1e6 / (double)s->messages : 0);
    if (!r->cfg->deflate) {
        fprintf(f, "  \"deflate\": null,\n");
        return;
    }
    fprintf(f,
            "  \"deflate\": {\"offered\": %llu, \"accepted\": %llu, \"compressed_messages\": "
            "%llu, \"compressed_bytes\": %llu, \"inflated_bytes\": %llu, "
            "\"uncompressed_messages\": %llu},\n",
            (unsigned long long)s->setups, (unsigned long long)s->deflate_conns,
            (unsigned long long)s->z_msgs, (unsigned long long)s->z_wire_bytes,
            (unsigned long long)s->z_plain_bytes, (unsigned long long)(s->messages - s->z_msgs));
}

/* "tls": the handshakes (all zero for ws://). */
static void json_tls(FILE *f, const wsp_wstats_t *s)
{
    const wsp_hist_t *h = &s->tls_hs;
    fprintf(f,
            "  \"tls\": {\"full\": %llu, \"resumed\": %llu, \"handshake_ms\": {\"count\": %llu, "
            "\"min\": %.3f, \"max\": %.3f, \"mean\": %.3f, \"p50\": %.3f, \"p90\": %.3f, "
            "\"p99\": %.3f, \"p999\": %.3f}},\n",
            (unsigned long long)s->tls_full, (unsigned long long)s->tls_resumed,
            (unsigned long long)h->count, ms(h->count ? h->min : 0), ms(h->max),
            wsp_hist_mean(h) / 1000.0, ms(wsp_hist_quantile(h, 0.5)), ms(wsp_hist_quantile(h, 0.9)),
            ms(wsp_hist_quantile(h, 0.99)), ms(wsp_hist_quantile(h, 0.999)));
}

/* "broadcasts": one entry per seq. */
static void json_broadcasts(FILE *f, const wsp_report_t *r)
{
    fprintf(f, "  \"broadcasts\": [");
    uint64_t top = seq_top(r);
    int any = 0;
    for (uint64_t k = 1; k <= top; k++) {
        const wsp_seq_stat_t *q = &r->sum->seq[k];
        if (!seq_shown(r, k))
            continue;
        double first, last, spread;
        seq_times(q, &first, &last, &spread);
        fprintf(f,
                "%s\n    {\"seq\": %llu, \"got\": %llu, \"missing\": %llu, \"duplicates\": %llu, "
                "\"time_ms\": %llu, \"first_ms\": %.3f, \"last_ms\": %.3f, \"time_spread_ms\": "
                "%.0f}",
                any ? "," : "", (unsigned long long)k, (unsigned long long)q->got,
                (unsigned long long)q->missing, (unsigned long long)q->dup,
                (unsigned long long)q->time_min_ms, first, last, spread);
        any = 1;
    }
    fprintf(f, "%s],\n", any ? "\n  " : "");
}

/* The delivery verdict: what bench/tally.h counted. */
static void json_delivery(FILE *f, const wsp_report_t *r)
{
    const wsp_tally_sum_t *d = &r->delivery;
    if (r->win.given)
        fprintf(f, "  \"expect_broadcasts\": %llu,\n", (unsigned long long)r->win.hi);
    else
        fprintf(f, "  \"expect_broadcasts\": null,\n");
    fprintf(f,
            "  \"expected\": %llu,\n  \"delivered\": %llu,\n  \"missing\": %llu,\n"
            "  \"duplicates\": %llu,\n  \"unexpected\": %llu,\n  \"seq_first\": %llu,\n"
            "  \"seq_last\": %llu,\n  \"dead_worker_conns\": %llu,\n  \"missing_seqs\": [",
            (unsigned long long)d->expected, (unsigned long long)d->delivered,
            (unsigned long long)d->missing, (unsigned long long)d->duplicates,
            (unsigned long long)d->unexpected, (unsigned long long)r->win.lo,
            (unsigned long long)r->win.hi, (unsigned long long)r->dead_open);
    put_missing_seqs(f, r, 0);
    fprintf(f, "],\n  \"ok\": %s,\n", wsp_report_ok(r) ? "true" : "false");
}

/* "latency_cdf" and "series": what bench/plot.sh draws. */
static void json_plots(FILE *f, const wsp_report_t *r)
{
    const wsp_hist_t *h = &r->sum->latency;
    fprintf(f, "  \"latency_cdf\": [");
    uint64_t seen = 0;
    int any = 0;
    for (unsigned i = 0; i < WSP_HIST_BUCKETS && h->count; i++) {
        if (h->bucket[i] == 0)
            continue;
        seen += h->bucket[i];
        uint64_t hi = i + 1 < WSP_HIST_BUCKETS ? wsp_hist_lower(i + 1) : wsp_hist_lower(i) + 1;
        fprintf(f, "%s[%.3f, %.6f]", any ? ", " : "", ms(hi), (double)seen / (double)h->count);
        any = 1;
    }
    fprintf(f, "],\n  \"series\": [");
    for (size_t i = 0; i < r->nseries; i++) {
        const wsp_series_pt_t *p = &r->series[i];
        fprintf(f,
                "%s\n    {\"t\": %.2f, \"active\": %llu, \"setups\": %llu, \"errors\": %llu, "
                "\"messages\": %llu}",
                i ? "," : "", p->t, (unsigned long long)p->active, (unsigned long long)p->setups,
                (unsigned long long)p->errors, (unsigned long long)p->messages);
    }
    fprintf(f, "%s]\n", r->nseries ? "\n  " : "");
}

int wsp_report_json(const char *path, wsp_report_t *r, uint64_t now)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -errno;
    fprintf(f, "{\n  \"tool\": \"wspush-bench\",\n  \"version\": \"%s\",\n", WSP_VERSION);
    json_config(f, r->cfg);
    json_conns(f, r, now);
    json_errors(f, r->sum);
    json_auth(f, r);
    json_recovery(f, r->sum);
    json_messages(f, r, now);
    json_tls(f, r->sum);
    json_delivery(f, r);
    json_broadcasts(f, r);
    json_plots(f, r);
    fprintf(f, "}\n");
    if (ferror(f)) {
        fclose(f);
        return -EIO;
    }
    return fclose(f) == 0 ? 0 : -errno;
}
