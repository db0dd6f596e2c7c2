#include "stats.h"

#include <string.h>

const char *const wsp_stats_err_names[WSP_ERR_KINDS] = {
    "connect", "handshake_status", "handshake_invalid", "closed",      "protocol",
    "timeout", "bad_message",      "worker_died",       "not_resumed", "tls",
};

const char *const wsp_stats_auth_names[WSP_AUTH_REASONS] = {
    "missing",  "malformed", "signature", "algorithm",         "expired", "not_yet_valid",
    "audience", "issuer",    "too_large", "forbidden_channel", "other",
};

int wsp_stats_auth_index(const char *w, size_t n)
{
    for (int i = 0; i < WSP_AUTH_REASONS - 1; i++)
        if (strlen(wsp_stats_auth_names[i]) == n && memcmp(w, wsp_stats_auth_names[i], n) == 0)
            return i;
    return WSP_AUTH_REASONS - 1;
}

void wsp_stats_init(wsp_wstats_t *s)
{
    memset(s, 0, sizeof(*s));
    wsp_hist_init(&s->latency);
    wsp_hist_init(&s->tls_hs);
}

void wsp_stats_code_add(wsp_codes_t *t, uint32_t code, uint64_t n)
{
    for (int i = 0; i < WSP_CODES; i++) {
        if (t->code[i] == code || t->count[i] == 0) {
            t->code[i] = code;
            t->count[i] += n;
            return;
        }
    }
    t->other += n;
}

static void codes_merge(wsp_codes_t *dst, const wsp_codes_t *src)
{
    for (int i = 0; i < WSP_CODES; i++)
        if (src->count[i])
            wsp_stats_code_add(dst, src->code[i], src->count[i]);
    dst->other += src->other;
}

static uint64_t min_nz(uint64_t a, uint64_t b) { return a == 0 ? b : b == 0 ? a : a < b ? a : b; }

static uint64_t max_u(uint64_t a, uint64_t b) { return a > b ? a : b; }

void wsp_stats_merge(wsp_wstats_t *dst, const wsp_wstats_t *src)
{
    dst->active += src->active;
    dst->setups += src->setups;
    dst->resolved += src->resolved;
    dst->inflight += src->inflight;
    dst->retries += src->retries;
    dst->messages += src->messages;
    dst->pings += src->pings;
    dst->seq_overflow += src->seq_overflow;
    dst->max_seq = max_u(dst->max_seq, src->max_seq);
    dst->first_connect_us = min_nz(dst->first_connect_us, src->first_connect_us);
    dst->last_setup_us = max_u(dst->last_setup_us, src->last_setup_us);
    dst->closed_in_handshake += src->closed_in_handshake;
    if (src->last_errno)
        dst->last_errno = src->last_errno;
    dst->cpu_user_us += src->cpu_user_us;
    dst->cpu_sys_us += src->cpu_sys_us;
    dst->hellos += src->hellos;
    dst->dropped += src->dropped;
    dst->resumed += src->resumed;
    dst->recovered += src->recovered;
    dst->not_recovered += src->not_recovered;
    dst->replayed += src->replayed;
    dst->resume_start_us = min_nz(dst->resume_start_us, src->resume_start_us);
    dst->replay_end_us = max_u(dst->replay_end_us, src->replay_end_us);
    dst->deflate_conns += src->deflate_conns;
    dst->z_msgs += src->z_msgs;
    dst->z_wire_bytes += src->z_wire_bytes;
    dst->z_plain_bytes += src->z_plain_bytes;
    for (int i = 0; i < WSP_ERR_KINDS; i++)
        dst->err[i] += src->err[i];
    for (int i = 0; i < WSP_AUTH_REASONS; i++)
        dst->auth_fail[i] += src->auth_fail[i];
    codes_merge(&dst->closed_codes, &src->closed_codes);
    codes_merge(&dst->statuses, &src->statuses);
    wsp_hist_merge(&dst->latency, &src->latency);
    dst->tls_full += src->tls_full;
    dst->tls_resumed += src->tls_resumed;
    wsp_hist_merge(&dst->tls_hs, &src->tls_hs);
    uint64_t used = max_u(src->max_seq, src->seq_top);
    dst->seq_top = max_u(dst->seq_top, src->seq_top);
    uint64_t top = used < WSP_SEQ_MAX ? used + 1 : WSP_SEQ_MAX;
    for (uint64_t i = 0; i < top; i++) {
        const wsp_seq_stat_t *s = &src->seq[i];
        wsp_seq_stat_t *d = &dst->seq[i];
        d->got += s->got;
        d->dup += s->dup;
        d->missing += s->missing;
        d->time_min_ms = min_nz(d->time_min_ms, s->time_min_ms);
        d->time_max_ms = max_u(d->time_max_ms, s->time_max_ms);
        d->first_us = min_nz(d->first_us, s->first_us);
        d->last_us = max_u(d->last_us, s->last_us);
    }
}
